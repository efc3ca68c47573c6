#!/bin/bash
# mariadb.sh — a private MariaDB server living entirely under one directory.
#
#   appliance/mariadb.sh start DIR [PORT]   initialise (first time) and start; no-op if running
#   appliance/mariadb.sh stop DIR           clean shutdown
#   appliance/mariadb.sh status DIR         exit 0 when running, 3 when stopped
#
# Layout under DIR: data/ (datadir), mysqld.sock, mysqld.pid, error.log,
# install.log, mariadbd.out, custos.password (0600). The database `custos` and
# the user custos@localhost (plus custos@127.0.0.1 with a PORT) get the password
# from custos.password. Root is root@localhost without a password, reachable
# only through the socket: this server is for `make run` and the tests, not
# for production. Nothing outside DIR is touched, so it works without root.
set -eu

PROG=${0##*/}
START_TIMEOUT=30
STOP_TIMEOUT=60

die() {
	echo "$PROG: $*" >&2
	exit 1
}

usage() {
	echo "usage: $PROG start DIR [PORT] | stop DIR | status DIR" >&2
	exit 2
}

need() {
	command -v "$1" >/dev/null 2>&1 ||
	    die "$1 not found; install mariadb-server and mariadb-client (apt-get install mariadb-server mariadb-client)"
}

# Sets the path variables for an absolute DIR.
set_paths() {
	DATA=$DIR/data
	SOCK=$DIR/mysqld.sock
	PIDF=$DIR/mysqld.pid
	ERRLOG=$DIR/error.log
	PWFILE=$DIR/custos.password
	# sun_path holds 107 bytes plus the NUL.
	[ ${#SOCK} -le 107 ] ||
	    die "socket path $SOCK is longer than 107 bytes; use a shorter DIR"
}

# Resolves DIR to an absolute path (creating it when asked).
resolve_dir() {
	if [ "${2:-}" = create ]; then
		mkdir -p -- "$1" || die "cannot create directory $1"
		chmod 0700 -- "$1" || die "cannot chmod $1"
	fi
	[ -d "$1" ] || die "$1 is not a directory (nothing was started there)"
	DIR=$(cd -- "$1" && pwd -P) || die "cannot enter $1"
	set_paths
}

# True when pid names a live process (a zombie left for a non-reaping init
# counts as gone).
alive() {
	local state
	kill -0 "$1" 2>/dev/null || return 1
	if [ -r "/proc/$1/stat" ]; then
		state=$(sed -e 's/^.*) //' -e 's/ .*//' "/proc/$1/stat" 2>/dev/null || true)
		[ "$state" != Z ] || return 1
	fi
	return 0
}

# Prints the pid from the pid file when that process is alive and is a
# MariaDB server; prints nothing otherwise.
server_pid() {
	local pid comm
	[ -f "$PIDF" ] || return 0
	pid=$(head -n 1 -- "$PIDF" 2>/dev/null | tr -cd '0-9') || return 0
	[ -n "$pid" ] || return 0
	alive "$pid" || return 0
	# Guard against a recycled pid after a crash.
	if [ -r "/proc/$pid/comm" ]; then
		comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
		case $comm in
		mariadbd|mysqld) ;;
		*) return 0 ;;
		esac
	fi
	echo "$pid"
}

ping_server() {
	mariadb-admin --no-defaults --socket="$SOCK" --user=root \
	    --connect-timeout=2 ping >/dev/null 2>&1
}

root_sql() {
	mariadb --no-defaults --socket="$SOCK" --user=root --batch \
	    --connect-timeout=5 -e "$1"
}

show_log_tail() {
	if [ -f "$ERRLOG" ]; then
		echo "--- last lines of $ERRLOG ---" >&2
		tail -n 20 -- "$ERRLOG" >&2 || true
	fi
}

is_root() {
	[ "$(id -u)" -eq 0 ]
}

# Options shared by the bootstrap and the server, so the redo log size
# chosen at initialisation matches the running server.
SERVER_OPTS=(--innodb-buffer-pool-size=64M --innodb-log-file-size=16M)

install_db() {
	local user_opt=()
	if is_root; then
		user_opt=(--user="$(id -un)")
	fi
	echo "initialising a new MariaDB datadir in $DATA"
	if ! mariadb-install-db --no-defaults --auth-root-authentication-method=normal \
	    --datadir="$DATA" "${user_opt[@]}" --skip-test-db "${SERVER_OPTS[@]}" \
	    >"$DIR/install.log" 2>&1; then
		echo "--- last lines of $DIR/install.log ---" >&2
		tail -n 20 -- "$DIR/install.log" >&2 || true
		rm -rf -- "$DATA"
		die "mariadb-install-db failed (see $DIR/install.log)"
	fi
}

make_password() {
	local pw
	[ -s "$PWFILE" ] && return 0
	pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n') ||
	    die "cannot read /dev/urandom for the custos password"
	[ ${#pw} -eq 32 ] || die "cannot generate the custos password"
	(umask 077 && printf '%s\n' "$pw" >"$PWFILE.tmp") ||
	    die "cannot write $PWFILE.tmp"
	chmod 0600 -- "$PWFILE.tmp" || die "cannot chmod $PWFILE.tmp"
	mv -f -- "$PWFILE.tmp" "$PWFILE" || die "cannot install $PWFILE"
}

# Idempotent, so a start after an interrupted first start completes it and a
# later start with a PORT adds the TCP account.
provision() {
	local pw port=$1 sql
	pw=$(head -n 1 -- "$PWFILE" | tr -cd '0-9a-f')
	[ ${#pw} -eq 32 ] || die "$PWFILE does not hold a 32-hex-digit password; delete it and DIR/data to start afresh"
	sql="CREATE DATABASE IF NOT EXISTS custos CHARACTER SET utf8mb4;"
	sql="$sql CREATE USER IF NOT EXISTS 'custos'@'localhost' IDENTIFIED BY '$pw';"
	sql="$sql ALTER USER 'custos'@'localhost' IDENTIFIED BY '$pw';"
	sql="$sql GRANT ALL ON custos.* TO 'custos'@'localhost';"
	if [ -n "$port" ]; then
		sql="$sql CREATE USER IF NOT EXISTS 'custos'@'127.0.0.1' IDENTIFIED BY '$pw';"
		sql="$sql ALTER USER 'custos'@'127.0.0.1' IDENTIFIED BY '$pw';"
		sql="$sql GRANT ALL ON custos.* TO 'custos'@'127.0.0.1';"
	fi
	root_sql "$sql" || die "cannot create database custos / user custos on $SOCK"
}

print_where() {
	local port=$1
	echo "MariaDB running (pid $(server_pid))"
	echo "  datadir:   $DATA"
	echo "  socket:    $SOCK"
	[ -n "$port" ] && echo "  tcp:       127.0.0.1:$port"
	echo "  error log: $ERRLOG"
	echo "  database:  custos, user custos, password in $PWFILE"
	return 0
}

cmd_start() {
	local port=${1:-} pid net_opt user_opt=() i
	need mariadb-install-db
	need mariadbd
	need mariadb-admin
	need mariadb
	if [ -n "$port" ]; then
		case $port in
		*[!0-9]*) die "port '$port' is not a number" ;;
		esac
		if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
			die "port $port is out of range 1-65535"
		fi
	fi

	pid=$(server_pid)
	if [ -n "$pid" ] && ping_server; then
		echo "MariaDB already running under $DIR (pid $pid)"
		return 0
	fi
	[ -n "$pid" ] && die "a server (pid $pid) holds $PIDF but does not answer on $SOCK; run '$PROG stop $DIR' first"
	rm -f -- "$PIDF" "$SOCK" "$SOCK.lock"

	[ -d "$DATA/mysql" ] || install_db
	make_password

	if [ -n "$port" ]; then
		net_opt=(--port="$port" --bind-address=127.0.0.1)
	else
		net_opt=(--skip-networking)
	fi
	if is_root; then
		user_opt=(--user="$(id -un)")
	fi
	setsid nohup mariadbd --no-defaults --datadir="$DATA" --socket="$SOCK" \
	    --pid-file="$PIDF" --log-error="$ERRLOG" "${net_opt[@]}" \
	    "${user_opt[@]}" "${SERVER_OPTS[@]}" \
	    </dev/null >"$DIR/mariadbd.out" 2>&1 &
	pid=$!

	i=0
	while ! ping_server; do
		if ! alive "$pid"; then
			show_log_tail
			die "mariadbd exited during start-up (see $ERRLOG)"
		fi
		i=$((i + 1))
		if [ "$i" -gt $((START_TIMEOUT * 4)) ]; then
			show_log_tail
			kill -TERM "$pid" 2>/dev/null || true
			die "mariadbd did not answer on $SOCK within ${START_TIMEOUT}s (see $ERRLOG)"
		fi
		sleep 0.25
	done
	provision "$port"
	print_where "$port"
}

cmd_stop() {
	local pid i
	pid=$(server_pid)
	if [ -z "$pid" ]; then
		rm -f -- "$PIDF"
		echo "MariaDB not running under $DIR"
		return 0
	fi
	if ! mariadb-admin --no-defaults --socket="$SOCK" --user=root \
	    --connect-timeout=5 shutdown >/dev/null 2>&1; then
		kill -TERM "$pid" 2>/dev/null || true
	fi
	i=0
	while alive "$pid"; do
		i=$((i + 1))
		if [ "$i" -gt $((STOP_TIMEOUT * 10)) ]; then
			show_log_tail
			die "mariadbd (pid $pid) did not stop within ${STOP_TIMEOUT}s; kill it with: kill -9 $pid"
		fi
		sleep 0.1
	done
	rm -f -- "$PIDF"
	echo "MariaDB under $DIR stopped"
}

cmd_status() {
	local pid
	pid=$(server_pid)
	if [ -n "$pid" ] && ping_server; then
		echo "MariaDB running under $DIR (pid $pid, socket $SOCK)"
		return 0
	fi
	if [ -n "$pid" ]; then
		echo "MariaDB process $pid under $DIR does not answer on $SOCK"
		return 1
	fi
	echo "MariaDB not running under $DIR"
	return 3
}

[ $# -ge 2 ] || usage
cmd=$1
case $cmd in
start)
	[ $# -le 3 ] || usage
	resolve_dir "$2" create
	cmd_start "${3:-}"
	;;
stop)
	[ $# -eq 2 ] || usage
	if [ ! -d "$2" ]; then
		echo "MariaDB not running under $2"
		exit 0
	fi
	resolve_dir "$2"
	cmd_stop
	;;
status)
	[ $# -eq 2 ] || usage
	if [ ! -d "$2" ]; then
		echo "MariaDB not running under $2"
		exit 3
	fi
	resolve_dir "$2"
	cmd_status
	;;
*)
	usage
	;;
esac
