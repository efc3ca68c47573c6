#!/usr/bin/env bash
# run.sh — `make bench`: agent-port throughput and memory (issue 2).
#
# On loopback only: a private MariaDB and a fresh custosd in a temp dir, then
# tests/bench/agent_sim (many agents in one process):
#   1. enroll BENCH_AGENTS identities (one token, 64 in flight)
#   2. warm-up: one sync per identity, so every host holds its posture
#   3. BENCH_SECS s each, alternating in 5 rounds: raw (connect + mutual TLS +
#      close against a bare TLS server with custosd's certificate, key, CA and
#      TLS context) and sync (connect + mutual TLS + sync + sync_ok + close
#      against custosd); then 5 s of syncs with Nagle left on, as
#      custos-agent does today, and single-agent latencies
#   4. hold: BENCH_AGENTS persistent connections, one sync each; custosd's
#            VmRSS before and after gives KiB per connected agent
# Then the other issues' benchmarks: policy engine, policy push to 10,000
# connected agents (policy_push_bench.sh), NAC, FreeRADIUS, SNMP.
# Prints a summary with PASS/MISS per target and exits 0; non-zero when the
# benchmark itself could not run, or when one of the other benchmarks could
# not (each is still run; the last line names the ones that failed). BENCH_PERF=1 adds a perf profile of
# custosd during the raw/sync comparison. See tests/bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
AGENTS=${BENCH_AGENTS:-10000}
SECS=${BENCH_SECS:-10}
CONC=${BENCH_CONCURRENCY:-32}
LOOP_IDS=${BENCH_LOOP_IDS:-2000} # identities the timed phases cycle through
PKGS=(openssl libevent libevent_openssl jansson)
SIM=$BUILD/bench/agent_sim

die() {
	echo "bench: $*" >&2
	exit 1
}

# ---- build ----
make --no-print-directory BUILD="$BUILD" all >/dev/null || die "make all failed"
mkdir -p "$BUILD/bench"
if [ ! -x "$SIM" ] || [ tests/bench/agent_sim.c -nt "$SIM" ] || [ "$BUILD/libcustos.a" -nt "$SIM" ]; then
	# shellcheck disable=SC2046 # pkg-config output is meant to split
	cc -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral \
	    -Wstrict-prototypes -Wmissing-prototypes -Wvla -D_GNU_SOURCE -Ilib -Idb -I. \
	    $(pkg-config --cflags "${PKGS[@]}") -o "$SIM" tests/bench/agent_sim.c "$BUILD/libcustos.a" \
	    $(pkg-config --libs "${PKGS[@]}") -lpthread || die "cannot build $SIM"
fi

# ---- processes and clean-up; limits: each side holds AGENTS sockets at once ----
. tests/bench/common.sh
bench_need_files "$AGENTS" BENCH_AGENTS
bench_setup custos-bench
# utime + stime of a process and all its threads, in clock ticks
cpu_ticks() {
	sed -e 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
# the same for the main thread alone (custosd's event loop)
main_ticks() {
	sed -e 's/^.*) //' "/proc/$1/task/$1/stat" | awk '{ print $12 + $13 }'
}
rss_kib() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}
HZ=$(getconf CLK_TCK)
# percentage of all CPUs idle over one second
idle_pct() {
	local a b
	a=$(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
	sleep 1
	b=$(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
	    d = y[2] - x[2]; printf "%d", (d > 0) ? 100 * (y[1] - x[1]) / d : 100 }'
}
field() { # KEY LINE: the value of KEY=... in a RESULT line
	sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"
}

AGENT_PORT=$(pick_port)
API_PORT=$(pick_port "$AGENT_PORT")
RAW_PORT=$(pick_port "$AGENT_PORT" "$API_PORT")
STATE=$WORK/state
IDS=$WORK/identities.pem

IDLE0=$(idle_pct)
if [ "$IDLE0" -lt 90 ]; then
	echo "bench: WARNING: the machine is only ${IDLE0}% idle before the start; other processes" \
	    "take CPU from both sides and the rates below are lower and noisier than on an idle machine"
fi
echo "bench: MariaDB and custosd in $WORK (agents :$AGENT_PORT, API :$API_PORT)"
appliance/mariadb.sh start "$WORK/mariadb" >"$WORK/mariadb.out" 2>&1 ||
    { cat "$WORK/mariadb.out" >&2; die "MariaDB did not start"; }

bench_custosd "$WORK/custosd.log" "$AGENTS"

# ---- 1. enrolment ----
bench_enroll "$AGENTS" bench
ENROLL_SECS=$(field secs "$ENROLL")
RSS_ENROLLED=$(rss_kib "$SRV")

# ---- 2. warm-up: every host gets its posture ----
echo "bench: warm-up, one sync per agent ($AGENTS)"
WARM=$("$SIM" sync -s "127.0.0.1:$AGENT_PORT" -f "$IDS" -c "$CONC" -n "$AGENTS") || die "warm-up failed"
echo "  $WARM"
sleep 2 # let the warm-up's database batch finish
RSS_POSTURE=$(rss_kib "$SRV")

# ---- 3. raw handshakes vs. full syncs, alternating ----
"$SIM" raw-server -s "127.0.0.1:$RAW_PORT" -C "$STATE/server.pem" -K "$STATE/server.key" \
    -A "$STATE/ca.pem" >"$WORK/raw-server.out" 2>&1 &
RAWSRV=$!
PIDS+=("$RAWSRV")
for _ in $(seq 50); do grep -q READY "$WORK/raw-server.out" 2>/dev/null && break; sleep 0.1; done
grep -q READY "$WORK/raw-server.out" || { cat "$WORK/raw-server.out" >&2; die "raw-server did not start"; }
echo "bench: raw mutual-TLS handshakes vs. full syncs, ${SECS}s each in 5 alternating rounds," \
    "$CONC concurrent, $LOOP_IDS identities"
DBPID=$(cat "$WORK/mariadb/mysqld.pid")
# Each server is idle while the other kind runs, so CPU over the whole
# comparison belongs to one kind.
r0=$(cpu_ticks "$RAWSRV")
s0=$(cpu_ticks "$SRV")
m0=$(main_ticks "$SRV")
d0=$(cpu_ticks "$DBPID")
if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null; then
	perf record -q -o "$WORK/perf.data" -p "$SRV" >/dev/null 2>&1 &
	PERF=$!
fi
CMP=$("$SIM" compare -s "127.0.0.1:$AGENT_PORT" -r "127.0.0.1:$RAW_PORT" -f "$IDS" -i "$LOOP_IDS" \
    -c "$CONC" -t "$SECS" -R 5) || die "raw/sync comparison failed"
r1=$(cpu_ticks "$RAWSRV")
s1=$(cpu_ticks "$SRV")
m1=$(main_ticks "$SRV")
d1=$(cpu_ticks "$DBPID")
RAW=$(grep 'mode=raw ' <<<"$CMP")
SYNC=$(grep 'mode=sync ' <<<"$CMP")
echo "  $RAW"
echo "  $SYNC"
RAW_CPU_MS=$(( (r1 - r0) * 1000 / HZ ))
SYNC_CPU_MS=$(( (s1 - s0) * 1000 / HZ ))
LOOP_CPU_MS=$(( (m1 - m0) * 1000 / HZ ))
DB_CPU_MS=$(( (d1 - d0) * 1000 / HZ ))
kill "$RAWSRV"
wait "$RAWSRV" 2>/dev/null || true
if [ -n "${PERF:-}" ]; then
	kill -INT "$PERF" 2>/dev/null || true
	wait "$PERF" || true
	echo "bench: custosd during the comparison (perf, self time by library, then top symbols):"
	perf report -q -i "$WORK/perf.data" --no-children --sort dso 2>/dev/null |
	    grep -v '^$' | head -n 10 || true
	perf report -q -i "$WORK/perf.data" --no-children --sort dso,sym 2>/dev/null |
	    grep -v '^$' | head -n 15 || true
fi

echo "bench: full syncs with Nagle on (as custos-agent today), 5s, $CONC concurrent"
NAGLE=$("$SIM" sync -N -s "127.0.0.1:$AGENT_PORT" -f "$IDS" -i "$LOOP_IDS" -c "$CONC" -t 5) ||
    die "Nagle sync phase failed"
echo "  $NAGLE"
NAGLE1=$("$SIM" sync -N -s "127.0.0.1:$AGENT_PORT" -f "$IDS" -i 100 -c 1 -t 2) ||
    die "single-agent sync phase failed"
NODELAY1=$("$SIM" sync -s "127.0.0.1:$AGENT_PORT" -f "$IDS" -i 100 -c 1 -t 2) ||
    die "single-agent sync phase failed"
echo "  one agent at a time, Nagle on:   $NAGLE1"
echo "  one agent at a time, TCP_NODELAY: $NODELAY1"
sleep 2

# ---- 4. persistent connections ----
echo "bench: holding $AGENTS persistent connections"
RSS0=$(rss_kib "$SRV")
"$SIM" hold -s "127.0.0.1:$AGENT_PORT" -f "$IDS" -n "$AGENTS" -c 64 -t 600 >"$WORK/hold.out" 2>"$WORK/hold.err" &
HOLD=$!
PIDS+=("$HOLD")
bench_wait_held "$WORK/hold.out" "$WORK/hold.err" "$HOLD" 1200 "$AGENTS connections"
RSS_HELD=$(rss_kib "$SRV")
sleep 3 # the syncs' database batch is written and freed
RSS1=$(rss_kib "$SRV")
kill -TERM "$HOLD"
wait "$HOLD" || true
HOLDRES=$(grep '^RESULT' "$WORK/hold.out" || true)
echo "  $(grep '^HELD' "$WORK/hold.out")"
echo "  $HOLDRES"
[ -s "$WORK/hold.err" ] && sed 's/^/  /' "$WORK/hold.err"

# ---- summary ----
rate_sync=$(field rate "$SYNC")
rate_raw=$(field rate "$RAW")
ops_sync=$(field ops "$SYNC")
ops_raw=$(field ops "$RAW")
ratio=$(awk -v a="$rate_sync" -v b="$rate_raw" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
ratio_ok=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.7) ? "PASS" : "MISS" }')
per_conn=$(awk -v a="$RSS0" -v b="$RSS1" -v n="$AGENTS" 'BEGIN { printf "%.1f", (b - a) / n }')
per_conn_peak=$(awk -v a="$RSS0" -v b="$RSS_HELD" -v n="$AGENTS" 'BEGIN { printf "%.1f", (b - a) / n }')
rss_ok=$(awk -v k="$per_conn" 'BEGIN { print (k <= 32) ? "PASS" : "MISS" }')
srv_ms_sync=$(awk -v c="$SYNC_CPU_MS" -v n="$ops_sync" 'BEGIN { printf "%.3f", (n > 0) ? c / n : 0 }')
srv_ms_raw=$(awk -v c="$RAW_CPU_MS" -v n="$ops_raw" 'BEGIN { printf "%.3f", (n > 0) ? c / n : 0 }')
loop_ms_sync=$(awk -v c="$LOOP_CPU_MS" -v n="$ops_sync" 'BEGIN { printf "%.3f", (n > 0) ? c / n : 0 }')
db_ms_sync=$(awk -v c="$DB_CPU_MS" -v n="$ops_sync" 'BEGIN { printf "%.3f", (n > 0) ? c / n : 0 }')
cl_ms_sync=$(awk -v c="$(field cpu_ms "$SYNC")" -v n="$ops_sync" 'BEGIN { printf "%.3f", (n > 0) ? c / n : 0 }')
cl_ms_raw=$(awk -v c="$(field cpu_ms "$RAW")" -v n="$ops_raw" 'BEGIN { printf "%.3f", (n > 0) ? c / n : 0 }')
# what the server alone could do: its CPU per raw handshake over its CPU
# (custosd + mariadbd) per sync; independent of the simulator's own cost
cpu_ratio=$(awk -v r="$srv_ms_raw" -v s="$srv_ms_sync" -v d="$db_ms_sync" \
    'BEGIN { printf "%.2f", (s + d > 0) ? r / (s + d) : 0 }')
cpu_ok=$(awk -v r="$cpu_ratio" 'BEGIN { print (r >= 0.7) ? "PASS" : "MISS" }')
# with a core to spare for the database, custosd's event loop is the limit
loop_ratio=$(awk -v r="$srv_ms_raw" -v l="$loop_ms_sync" 'BEGIN { printf "%.2f", (l > 0) ? r / l : 0 }')
posture_kib=$(awk -v a="$RSS_ENROLLED" -v b="$RSS_POSTURE" -v n="$AGENTS" 'BEGIN { printf "%.1f", (b - a) / n }')
total_kib=$(awk -v b="$RSS1" -v n="$AGENTS" 'BEGIN { printf "%.1f", b / n }')
identities=$(field identities "$HOLDRES")
if [ "$identities" = "$AGENTS" ]; then
	shared="each connection its own enrolled host"
else
	shared="$AGENTS connections share $identities identities"
fi

cat <<EOF

=== custos bench (issue 2): $(nproc) CPUs (${IDLE0}% idle at start), simulator and server share them, loopback ===
enrolment:   $AGENTS agents in ${ENROLL_SECS}s ($(field rate "$ENROLL")/s)
syncs/s: $rate_sync   raw TLS handshakes/s: $rate_raw   ratio: $ratio (target >= 0.7) $ratio_ok
sync latency p50: $(field p50_ms "$SYNC") ms  p99: $(field p99_ms "$SYNC") ms   (raw handshake p50: $(field p50_ms "$RAW") ms  p99: $(field p99_ms "$RAW") ms)
    simulator sockets use TCP_NODELAY, as custos-agent and custosd do; with Nagle on: $(field rate "$NAGLE") syncs/s,
    p50 $(field p50_ms "$NAGLE") ms; one agent alone: p50 $(field p50_ms "$NAGLE1") ms with Nagle, $(field p50_ms "$NODELAY1") ms with TCP_NODELAY
CPU per op:  raw-server $srv_ms_raw ms per handshake; custosd $srv_ms_sync ms per sync (event loop
             $loop_ms_sync ms, the rest its database thread) + mariadbd $db_ms_sync ms;
             simulator: raw $cl_ms_raw ms, sync $cl_ms_sync ms
server-only ratio: $cpu_ratio (raw-server CPU / custosd + mariadbd CPU) (target >= 0.7) $cpu_ok;
             $loop_ratio counting custosd's event loop alone (the limit when the database has a core)
             (the simulator shares the two CPUs, which dilutes the throughput ratio above;
             the server-only ratio is what a server with CPUs of its own would see)
server RSS per persistent agent: $per_conn KiB over $AGENTS connections (target <= 32 KiB) $rss_ok
    (custosd VmRSS $RSS0 -> $RSS1 KiB; $per_conn_peak KiB/agent right after the last sync; $shared)
    besides: each host's posture in memory $posture_kib KiB; total VmRSS / agents $total_kib KiB
concurrency $CONC, ${SECS}s of each kind in 5 alternating rounds, errors: raw $(field errors "$RAW"), sync $(field errors "$SYNC"), hold $(field errors "$HOLDRES")
EOF

# sub NAME COMMAND...: runs one of the other benchmarks; one that could not
# run is reported as FAILED (here and in the last line) and the run goes on
FAILED=()
sub() {
	local name=$1 rc=0
	shift
	"$@" || rc=$?
	if [ "$rc" != 0 ]; then
		echo "bench: $name FAILED: it could not run (exit $rc; its messages are above)" >&2
		FAILED+=("$name")
	fi
}

echo
echo "=== policy engine (issue 3): effective settings, 100,000 hosts / 1,000 groups / 10,000 policies ==="
sub policy_bench "$BUILD/bench/policy_bench"

echo
echo "=== policy push (issue 3): a policy change reaches 10,000 connected agents ==="
sub policy_push_bench env BUILD="$BUILD" tests/bench/policy_push_bench.sh

echo
echo "=== NAC decision time (issue 5): 100,000 hosts ==="
sub nac_bench "$BUILD/bench/nac_bench"

echo
echo "=== FreeRADIUS + rlm_custos vs. the files module (issue 5): 100,000 hosts ==="
sub radius_bench env BUILD="$BUILD" tests/bench/radius_bench.sh

echo
echo "=== SNMP (issue 4): hostTable bulk walk, sync p99 with and without it, 100,000 hosts ==="
sub snmp_bench env BUILD="$BUILD" tests/bench/snmp_bench.sh

echo
if [ ${#FAILED[@]} -gt 0 ]; then
	echo "bench: FAILED, could not run: ${FAILED[*]}" >&2
	exit 1
fi
echo "bench: every benchmark ran"
exit 0
