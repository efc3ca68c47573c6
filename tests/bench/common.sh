# common.sh — sourced by the benchmark scripts (from the repository root):
# a work directory that is removed on exit (kept with BENCH_KEEP=1, for its
# logs), background processes (PIDS) stopped, the private MariaDB stopped,
# and free loopback ports.

# bench_setup PREFIX: sets WORK and PIDS and installs the exit traps. A script
# may define bench_before_cleanup to stop things of its own first.
bench_setup() {
	WORK=$(mktemp -d "/tmp/$1.XXXXXX")
	PIDS=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

# shellcheck disable=SC2317 # called by the EXIT trap
bench_cleanup() {
	local pid
	if declare -F bench_before_cleanup >/dev/null; then
		bench_before_cleanup
	fi
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	appliance/mariadb.sh stop "$WORK/mariadb" >/dev/null 2>&1 || true
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "bench: kept $WORK" >&2
	else
		rm -rf -- "$WORK"
	fi
}

port_free() { # neither a TCP nor a UDP listener on 127.0.0.1/any
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null &&
	    [ -z "$(ss -Hlun "sport = :$1" 2>/dev/null)" ]
}

pick_port() { # below the ephemeral range, not in use, not in $*
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		case " $* " in *" $p "*) continue ;; esac
		port_free "$p" && { echo "$p"; return; }
	done
}

# bench_custosd LOG MAX_AGENTS [-o key=value ...]: custosd from
# etc/custosd.conf on $WORK's MariaDB with state in $STATE, agents on
# $AGENT_PORT and the API on $API_PORT (loopback), room for MAX_AGENTS
# connections (all from 127.0.0.1: the cap on unauthenticated connections per
# address is raised as well), its log in LOG; sets SRV (its pid, also in
# PIDS) and CTL (a custosctl command line for it) and waits until the API
# answers (loading 100,000 hosts takes a while). Needs die().
bench_custosd() {
	local log=$1 max=$2 up=0
	shift 2
	"$BUILD/custosd" -c etc/custosd.conf -o server.state_dir="$STATE" \
	    -o database.socket="$WORK/mariadb/mysqld.sock" \
	    -o database.password_file="$WORK/mariadb/custos.password" \
	    -o listen.address=127.0.0.1 -o listen.port="$AGENT_PORT" -o api.port="$API_PORT" \
	    -o listen.max_connections=$((max + 1000)) -o listen.idle_timeout=3600 \
	    -o listen.max_unauthenticated_per_address=$((max + 1000)) "$@" \
	    >"$log" 2>&1 &
	SRV=$!
	PIDS+=("$SRV")
	CTL=("$BUILD/custosctl" -o api.url="https://127.0.0.1:$API_PORT" -o api.ca_file="$STATE/ca.pem"
	    -o api.password_file="$STATE/admin.password")
	for _ in $(seq 600); do
		if [ -f "$STATE/admin.password" ] && "${CTL[@]}" status >/dev/null 2>&1; then
			up=1
			break
		fi
		kill -0 "$SRV" 2>/dev/null || break
		sleep 0.2
	done
	[ $up = 1 ] || { tail -n 20 "$log" >&2; die "custosd did not come up"; }
}

# bench_enroll N LABEL: an enrolment token and N agents enrolled by agent_sim
# ($SIM) into $IDS, 64 at a time; sets ENROLL (its RESULT line).
bench_enroll() {
	local token
	token=$("${CTL[@]}" token create bench --max-uses 0 | tail -n 1)
	[ -n "$token" ] || die "no enrolment token"
	echo "$2: enrolling $1 agents (64 in flight)"
	ENROLL=$("$SIM" enroll -s "127.0.0.1:$AGENT_PORT" -f "$IDS" -n "$1" -c 64 -T "$token") ||
	    { tail -n 20 "$WORK/custosd.log" >&2; die "enrolment failed"; }
	echo "  $ENROLL"
}

# bench_wait_held OUT ERR PID TENTHS WHAT: waits up to TENTHS tenths of a
# second for agent_sim (PID) to print its HELD line to OUT; dies with OUT and
# ERR otherwise.
bench_wait_held() {
	for _ in $(seq "$4"); do
		grep -q '^HELD' "$1" && return 0
		kill -0 "$3" 2>/dev/null || break
		sleep 0.1
	done
	cat "$1" "$2" >&2
	die "could not hold $5"
}

# bench_need_files N KNOB: raises the open-files limit to its hard limit and
# dies, naming KNOB, when it stays below N + 512.
bench_need_files() {
	local need=$(($1 + 512))
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
	[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge "$need" ] ||
	    die "open files limit $(ulimit -n) is below $need; raise it (ulimit -n) or set $2 lower"
}
