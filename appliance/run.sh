#!/usr/bin/env bash
# `make run`: a private MariaDB under var/, custosd with etc/custosd.conf, and
# one local custos-agent enrolled with a fresh single-use token. Everything
# runs in the background; `make stop` (appliance/run.sh stop) ends it.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VAR=$ROOT/var
BUILD=${BUILD:-build}
mkdir -p "$VAR/log"

stop_pid() { # name pidfile
	if [ -f "$2" ] && kill -0 "$(cat "$2")" 2>/dev/null; then
		kill "$(cat "$2")"
		for _ in $(seq 50); do kill -0 "$(cat "$2")" 2>/dev/null || break; sleep 0.1; done
		echo "stopped $1"
	fi
	rm -f "$2"
}

if [ "${1:-}" = stop ]; then
	stop_pid custos-agent "$VAR/custos-agent.pid"
	stop_pid custosd "$VAR/custosd.pid"
	appliance/mariadb.sh stop "$VAR/mariadb" || true
	exit 0
fi

appliance/mariadb.sh start "$VAR/mariadb"

if [ -f "$VAR/custosd.pid" ] && kill -0 "$(cat "$VAR/custosd.pid")" 2>/dev/null; then
	echo "custosd already running (pid $(cat "$VAR/custosd.pid"))"
else
	"$BUILD/custosd" -t -c etc/custosd.conf >/dev/null
	nohup "$BUILD/custosd" -c etc/custosd.conf >>"$VAR/log/custosd.log" 2>&1 &
	echo $! >"$VAR/custosd.pid"
	echo "started custosd (pid $!), log: var/log/custosd.log"
fi

# Wait for the console API (the first start also creates the CA and admin).
ok=0
for _ in $(seq 100); do
	if "$BUILD/custosctl" status >/dev/null 2>&1; then ok=1; break; fi
	kill -0 "$(cat "$VAR/custosd.pid")" 2>/dev/null || break
	sleep 0.2
done
if [ $ok != 1 ]; then
	echo "custosd did not come up; last log lines:" >&2
	tail -n 20 "$VAR/log/custosd.log" >&2
	exit 1
fi

if [ -f "$VAR/custos-agent.pid" ] && kill -0 "$(cat "$VAR/custos-agent.pid")" 2>/dev/null; then
	echo "custos-agent already running (pid $(cat "$VAR/custos-agent.pid"))"
else
	enroll=()
	if [ ! -f "$VAR/agent/host.json" ]; then
		token=$("$BUILD/custosctl" token create "local-$(date +%s)" --days 1 --max-uses 1 | tail -n 1)
		enroll=(--server 127.0.0.1:13000 --token "$token")
	fi
	before=$(grep -c "synced with the server" "$VAR/log/custos-agent.log" 2>/dev/null || true)
	nohup "$BUILD/custos-agent" -c etc/custos-agent.conf "${enroll[@]}" >>"$VAR/log/custos-agent.log" 2>&1 &
	echo $! >"$VAR/custos-agent.pid"
	echo "started custos-agent (pid $!), log: var/log/custos-agent.log"
	# wait for this agent's first sync, so the table below is current
	for _ in $(seq 50); do
		now=$(grep -c "synced with the server" "$VAR/log/custos-agent.log" 2>/dev/null || true)
		[ "${now:-0}" -gt "${before:-0}" ] && break
		sleep 0.2
	done
fi

echo
"$BUILD/custosctl" hosts || true
cat <<MSG

Custos is running. Try:
  $BUILD/custosctl hosts                 every host, its status and reasons
  $BUILD/custosctl host NAME             one host in detail (--json for scripts)
  $BUILD/custosctl events                events the agents reported
  $BUILD/custos-agent -c etc/custos-agent.conf event --severity warning --kind test --message hello
  $BUILD/custosctl token create lab --days 7 --max-uses 10
  $BUILD/custosctl wake NAME             make an agent sync now (signed UDP wake-up)
  make stop                              stop agent, server and MariaDB
Logs are in var/log/; the admin password is in var/state/admin.password.
MSG
