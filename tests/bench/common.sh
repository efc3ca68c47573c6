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
