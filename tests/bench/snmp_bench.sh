#!/usr/bin/env bash
# snmp_bench.sh — SNMP benchmark of issue 4, called at the end of run.sh.
#
# On loopback only, everything under one temp dir:
#   1. a private MariaDB; custosd started once without SNMP applies the schema
#      and the declared groups (etc/custos.d), then stops
#   2. SNMP_BENCH_HOSTS (100,000) host rows inserted with one INSERT ... SELECT
#      from MariaDB's sequence engine: names, uids, serials, addresses, groups,
#      last contact, and a posture with one ClamAV entry, in a realistic mix of
#      OK / Warning / Critical / never reported
#   3. a private snmpd (master agentx, socket in the temp dir, UDP on a free
#      loopback port) and custosd with the subagent; waits until
#      custosHostsTotal.0 counts every row
#   4. SNMP_BENCH_AGENTS (300) agents enrol through agent_sim, one warm-up
#      sync each
#   5. varbinds/s: one full snmpbulkwalk -Cr50 of custosHostTable alone, timed
#      (lines out / seconds), with the CPU custosd and snmpd spent on it
#   6. sync p99: SNMP_BENCH_ROUNDS (3) rounds of SNMP_BENCH_SECS (8) s of
#      agent_sim syncs without a walk, then as long with bulk walks of
#      custosHostTable running in a loop; p99 per round and the median of the
#      rounds, so load from elsewhere on the machine falls on both alike
# Prints PASS/MISS per target and exits 0; non-zero only when the benchmark
# itself could not run. SNMP_BENCH_PERF=1 adds a perf profile of custosd and
# snmpd during the lone walk. Knobs: SNMP_BENCH_HOSTS, SNMP_BENCH_AGENTS,
# SNMP_BENCH_CONCURRENCY (4), SNMP_BENCH_SECS, SNMP_BENCH_ROUNDS,
# SNMP_BENCH_REPS (50, -Cr), BUILD.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
HOSTS=${SNMP_BENCH_HOSTS:-100000}
AGENTS=${SNMP_BENCH_AGENTS:-300}
CONC=${SNMP_BENCH_CONCURRENCY:-4}
SECS=${SNMP_BENCH_SECS:-8}
ROUNDS=${SNMP_BENCH_ROUNDS:-3}
REPS=${SNMP_BENCH_REPS:-50}
SIM=$BUILD/bench/agent_sim

CUSTOS=.1.3.6.1.4.1.32473.1.1
HOST_TABLE=$CUSTOS.3
HOSTS_TOTAL=$CUSTOS.2.1.0
VERSION=$CUSTOS.1.1.0
HOST_COLUMNS=13 # custosHostName .. custosHostThreats (columns 2..14)

die() {
	echo "snmp bench: $*" >&2
	exit 1
}

for tool in snmpd snmpget snmpbulkwalk mariadb; do
	command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] ||
	    die "$tool not found (apt-get install snmpd snmp mariadb-client)"
done
SNMPD=$(command -v snmpd || echo /usr/sbin/snmpd)

# ---- build (run.sh has built everything when it calls us) ----
[ -x "$BUILD/custosd" ] && [ -x "$BUILD/custosctl" ] ||
    make --no-print-directory BUILD="$BUILD" all >/dev/null || die "make all failed"
[ -x "$SIM" ] || make --no-print-directory BUILD="$BUILD" "$SIM" >/dev/null || die "cannot build $SIM"

# ---- processes and clean-up ----
WORK=$(mktemp -d /tmp/custos-snmpbench.XXXXXX)
PIDS=()
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local pid
	touch "$WORK/walk.stop" 2>/dev/null || true
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	if [ -s "$WORK/walk.pid" ]; then
		kill "$(cat "$WORK/walk.pid")" 2>/dev/null || true
	fi
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	appliance/mariadb.sh stop "$WORK/mariadb" >/dev/null 2>&1 || true
	rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
HZ=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of a process and all its threads
	sed -e 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
main_ticks() { # the main thread alone (custosd's event loop)
	sed -e 's/^.*) //' "/proc/$1/task/$1/stat" | awk '{ print $12 + $13 }'
}
field() { # KEY LINE: the value of KEY=... in a RESULT line
	sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"
}
ms_now() {
	date +%s%3N
}
idle_pct() { # percentage of all CPUs idle over one second
	local a b
	a=$(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
	sleep 1
	b=$(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
	    d = y[2] - x[2]; printf "%d", (d > 0) ? 100 * (y[1] - x[1]) / d : 100 }'
}

AGENT_PORT=$(pick_port)
API_PORT=$(pick_port "$AGENT_PORT")
SNMP_PORT=$(pick_port "$AGENT_PORT" "$API_PORT")
STATE=$WORK/state
IDS=$WORK/identities.pem
SNMPDIR=$WORK/snmp
AGENTX=$SNMPDIR/agentx.sock
DB=(mariadb --no-defaults --socket="$WORK/mariadb/mysqld.sock" --user=root --batch
    --skip-column-names custos)
SNMPOPTS=(-v2c -c public -t 5 -r 1 -On -Oq)
export MIBS="" SNMP_PERSISTENT_DIR="$SNMPDIR/persist" # no MIB files, nothing under /var/lib/snmp

IDLE0=$(idle_pct)
echo "snmp bench: MariaDB, snmpd and custosd in $WORK (agents :$AGENT_PORT, API :$API_PORT," \
    "SNMP udp:$SNMP_PORT), ${IDLE0}% idle at start"
appliance/mariadb.sh start "$WORK/mariadb" >"$WORK/mariadb.out" 2>&1 ||
    { cat "$WORK/mariadb.out" >&2; die "MariaDB did not start"; }

SRV=
start_custosd() { # LOG [extra -o options...]
	local log=$1 up=0
	shift
	"$BUILD/custosd" -c etc/custosd.conf -o server.state_dir="$STATE" \
	    -o database.socket="$WORK/mariadb/mysqld.sock" \
	    -o database.password_file="$WORK/mariadb/custos.password" \
	    -o listen.address=127.0.0.1 -o listen.port="$AGENT_PORT" -o api.port="$API_PORT" \
	    -o listen.idle_timeout=3600 "$@" >"$log" 2>&1 &
	SRV=$!
	PIDS+=("$SRV")
	for _ in $(seq 600); do
		if [ -f "$STATE/admin.password" ] && "${CTL[@]}" status >/dev/null 2>&1; then up=1; break; fi
		kill -0 "$SRV" 2>/dev/null || break
		sleep 0.2
	done
	[ $up = 1 ] || { tail -n 20 "$log" >&2; die "custosd did not come up"; }
}
stop_custosd() {
	kill -TERM "$SRV"
	wait "$SRV" 2>/dev/null || true
}
CTL=("$BUILD/custosctl" -o api.url="https://127.0.0.1:$API_PORT" -o api.ca_file="$STATE/ca.pem"
    -o api.password_file="$STATE/admin.password")

# ---- 1. schema, declared groups, and each group's policy ----
# custosd's first start applies the migrations and etc/custos.d. A second
# start with one sample host per group computes each group's policy (version
# and hash), which the bulk rows then carry: otherwise the load of 100,000
# hosts would find every policy changed and queue every row for writing.
t0=$(ms_now)
start_custosd "$WORK/custosd-schema.log"
stop_custosd
mapfile -t GIDS < <("${DB[@]}" -e "SELECT id FROM groups ORDER BY id LIMIT 3")
while [ "${#GIDS[@]}" -lt 3 ]; do GIDS+=(0); done
GIDS=(0 "${GIDS[@]}") # 0: Unassigned
rows=
for i in 0 1 2 3; do
	rows="$rows${rows:+, }(MD5('custos-bench-sample-$i'), 'bench-sample-$i', 'bench-sample-$i',"
	rows="$rows 'SAMPLE', 0, ${GIDS[$i]}, 1)"
done
"${DB[@]}" -e "INSERT INTO hosts (uid, name, hostname, cert_serial, enrolled_at, group_id, placed)
    VALUES $rows" || die "cannot insert the sample hosts"
start_custosd "$WORK/custosd-policy.log"
SAMPLE="FROM hosts WHERE name LIKE 'bench-sample-%'"
for _ in $(seq 100); do
	[ "$("${DB[@]}" -e "SELECT COUNT(*) $SAMPLE AND policy_hash <> ''")" = 4 ] && break
	sleep 0.2
done
stop_custosd
PVER="CASE gid"
PHASH="CASE gid"
while read -r g v h; do
	PVER="$PVER WHEN $g THEN $v"
	PHASH="$PHASH WHEN $g THEN '$h'"
done < <("${DB[@]}" -e "SELECT group_id, policy_version, policy_hash $SAMPLE AND policy_hash <> ''")
PVER="$PVER ELSE 0 END"
PHASH="$PHASH ELSE '' END"
"${DB[@]}" -e "DELETE $SAMPLE" || die "cannot delete the sample hosts"

# ---- 2. host rows ----
# k = seq % 100 picks the kind of host:
#   0-79 OK; 80-87 databases 4 days old (Warning); 88-89 reboot required
#   (Warning); 90-93 real-time protection off (Critical); 94-95 unresolved
#   threats (Critical); 96 databases 10 days old (Critical); 97 silent for
#   3 days (Warning); 98 enrolled, never reported (no posture); 99 ClamAV not
#   installed (Critical). status/reasons as daemon/status.h numbers them.
# wake_port stays 0: custosd never sends a wake-up datagram to these made-up
# 10.x addresses.
SQL=$(cat <<EOF
SET @now = UNIX_TIMESTAMP();
INSERT INTO hosts (uid, name, hostname, cert_serial, enrolled_at, last_seen, last_ip, wake_port,
    status, reasons, posture, posture_time, group_id, placed, policy_version, policy_hash,
    policy_applied_version)
SELECT uid, name, hostname, serial, @now - 2592000 - seq, seen, ip, 0,
    CASE WHEN k < 80 THEN 0 WHEN k < 90 OR k IN (97, 98) THEN 1 ELSE 2 END,
    CASE WHEN k < 80 THEN 0 WHEN k < 88 THEN 8 WHEN k < 90 THEN 32 WHEN k < 94 THEN 2
        WHEN k < 96 THEN 4 WHEN k = 96 THEN 8 WHEN k = 97 THEN 24 WHEN k = 98 THEN 64 ELSE 1 END,
    IF(k = 98, NULL, CONCAT(
        '{"system": {"hostname": "', hostname, '", "os": {"id": "debian", "version_id": "12",',
        ' "pretty_name": "Debian GNU/Linux 12 (bookworm)"}, "kernel": "6.1.0-28-amd64",',
        ' "arch": "x86_64", "uptime": ', 3600 + seq * 7 % 2592000, ', "reboot_required": ',
        IF(k IN (88, 89), 'true', 'false'), ', "interfaces": [{"name": "eth0", "mac": "52:54:00:',
        LPAD(HEX((seq >> 16) & 255), 2, '0'), ':', LPAD(HEX((seq >> 8) & 255), 2, '0'), ':',
        LPAD(HEX(seq & 255), 2, '0'), '", "ipv4": ["', ip, '"]}]},',
        ' "antivirus": [{"name": "clamav", "installed": ', IF(k = 99, 'false', 'true'),
        ', "db_version": 27480, "db_time": ', dbt, ', "running": ', IF(k BETWEEN 90 AND 93, 'false', 'true'),
        ', "rtp": ', IF(k BETWEEN 90 AND 93 OR k = 99, 'false', 'true'), '}],',
        ' "threats": {"unresolved": ', IF(k IN (94, 95), 1 + seq % 3, 0), '}, "errors": []}')),
    seen, gid, 1, $PVER, $PHASH, IF(k = 98, 0, $PVER)
FROM (SELECT seq, seq % 100 AS k,
        ELT(1 + seq % 4, ${GIDS[0]}, ${GIDS[1]}, ${GIDS[2]}, ${GIDS[3]}) AS gid,
        MD5(CONCAT('custos-bench-host-', seq)) AS uid,
        CONCAT(ELT(1 + seq % 5, 'ws', 'srv', 'web', 'db', 'lap'), '-',
            ELT(1 + (seq DIV 5) % 4, 'par', 'lyo', 'nyc', 'ber'), '-', LPAD(seq, 6, '0')) AS name,
        CONCAT(ELT(1 + seq % 5, 'ws', 'srv', 'web', 'db', 'lap'), '-', LPAD(seq, 6, '0'),
            '.corp.example.com') AS hostname,
        UPPER(LEFT(SHA1(CONCAT('serial-', seq)), 32)) AS serial,
        CONCAT('10.', (seq >> 16) & 255, '.', (seq >> 8) & 255, '.', seq & 255) AS ip,
        CASE WHEN seq % 100 = 98 THEN 0
            WHEN seq % 100 = 97 THEN @now - 262800 - seq % 3600
            ELSE @now - seq % 900 END AS seen,
        CASE WHEN seq % 100 BETWEEN 80 AND 87 THEN @now - 345600 - seq % 3600
            WHEN seq % 100 = 96 THEN @now - 864000
            WHEN seq % 100 = 97 THEN @now - 266400
            ELSE @now - 3600 - seq % 20000 END AS dbt
    FROM seq_1_to_$HOSTS) AS t;
SELECT COUNT(*) FROM hosts;
EOF
)
n=$("${DB[@]}" -e "$SQL" 2>"$WORK/insert.err") || { cat "$WORK/insert.err" >&2; die "cannot insert the host rows"; }
[ "$n" -ge "$HOSTS" ] || die "only $n host rows after the insert"
t1=$(ms_now)
echo "snmp bench: schema and $n host rows in $(( (t1 - t0) / 1000 )).$(( (t1 - t0) % 1000 / 100 ))s"

# ---- 3. snmpd and custosd with the subagent ----
mkdir -p "$SNMPDIR/persist"
cat >"$SNMPDIR/snmpd.conf" <<EOF
master agentx
agentXSocket $AGENTX
agentaddress udp:127.0.0.1:$SNMP_PORT
rocommunity public 127.0.0.1
EOF
"$SNMPD" -f -Lo -C -c "$SNMPDIR/snmpd.conf" -I -smux -p "$SNMPDIR/snmpd.pid" \
    >"$SNMPDIR/snmpd.log" 2>&1 &
SNMPD_PID=$!
PIDS+=("$SNMPD_PID")
for _ in $(seq 100); do [ -S "$AGENTX" ] && break; kill -0 "$SNMPD_PID" 2>/dev/null || break; sleep 0.1; done
[ -S "$AGENTX" ] || { tail -n 10 "$SNMPDIR/snmpd.log" >&2; die "snmpd did not open $AGENTX"; }

t0=$(ms_now)
start_custosd "$WORK/custosd.log" -o snmp.enabled=true -o snmp.agentx_socket="$AGENTX" \
    -o listen.max_connections=$((AGENTS + 1000))
total=0
for _ in $(seq 600); do
	total=$(snmpget "${SNMPOPTS[@]}" -t 1 -r 0 "127.0.0.1:$SNMP_PORT" "$HOSTS_TOTAL" 2>/dev/null |
	    awk '{ print $2 }') || true
	[ -n "$total" ] && [ "$total" -ge "$n" ] 2>/dev/null && break
	sleep 0.2
done
[ -n "$total" ] && [ "$total" -ge "$n" ] 2>/dev/null ||
    { tail -n 20 "$WORK/custosd.log" >&2; die "custosHostsTotal.0 is '$total', not $n"; }
t1=$(ms_now)
VER=$(snmpget "${SNMPOPTS[@]}" "127.0.0.1:$SNMP_PORT" "$VERSION" | cut -d' ' -f2-)
echo "snmp bench: custosd $VER loaded $total hosts and registered with snmpd in" \
    "$(( (t1 - t0) / 1000 )).$(( (t1 - t0) % 1000 / 100 ))s; VmRSS $(awk '/^VmRSS:/ { print $2 }' "/proc/$SRV/status") KiB"

# ---- 4. agents ----
TOKEN=$("${CTL[@]}" token create snmpbench --max-uses 0 2>"$WORK/token.err" | tail -n 1) || TOKEN=
[ -n "$TOKEN" ] || { cat "$WORK/token.err" >&2; tail -n 20 "$WORK/custosd.log" >&2; die "no enrolment token"; }
ENROLL=$("$SIM" enroll -s "127.0.0.1:$AGENT_PORT" -f "$IDS" -n "$AGENTS" -c 32 -T "$TOKEN") ||
    { tail -n 20 "$WORK/custosd.log" >&2; die "enrolment failed"; }
WARM=$("$SIM" sync -s "127.0.0.1:$AGENT_PORT" -f "$IDS" -c "$CONC" -n "$AGENTS") ||
    die "warm-up failed"
echo "snmp bench: $AGENTS agents enrolled ($(field rate "$ENROLL")/s) and synced once" \
    "($(field errors "$WARM") errors)"
sleep 2 # the warm-up's database batch and the snapshot with the new hosts

# ---- 5. one full walk alone ----
# walk OUT: a full bulk walk of custosHostTable into OUT; prints "lines ms"
walk() {
	local a b
	a=$(ms_now)
	snmpbulkwalk "${SNMPOPTS[@]}" -Cr"$REPS" "127.0.0.1:$SNMP_PORT" "$HOST_TABLE" >"$1" 2>"$1.err" || true
	b=$(ms_now)
	echo "$(wc -l <"$1") $((b - a))"
}
ROWS=$(snmpget "${SNMPOPTS[@]}" "127.0.0.1:$SNMP_PORT" "$HOSTS_TOTAL" | awk '{ print $2 }')
EXPECT=$((ROWS * HOST_COLUMNS))
echo "snmp bench: full snmpbulkwalk -Cr$REPS of custosHostTable alone ($ROWS rows x $HOST_COLUMNS columns)"
if [ "${SNMP_BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null; then
	perf record -q -o "$WORK/perf-custosd.data" -p "$SRV" >/dev/null 2>&1 &
	PERF1=$!
	perf record -q -o "$WORK/perf-snmpd.data" -p "$SNMPD_PID" >/dev/null 2>&1 &
	PERF2=$!
	PIDS+=("$PERF1" "$PERF2")
	sleep 0.5
fi
s0=$(cpu_ticks "$SRV")
m0=$(main_ticks "$SRV")
d0=$(cpu_ticks "$SNMPD_PID")
c0=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/$$/stat) # this shell's reaped children
ALONE=$(walk "$WORK/walk-alone.out")
s1=$(cpu_ticks "$SRV")
m1=$(main_ticks "$SRV")
d1=$(cpu_ticks "$SNMPD_PID")
c1=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/$$/stat)
read -r ALONE_LINES ALONE_MS <<<"$ALONE"
if [ -n "${PERF1:-}" ]; then
	kill -INT "$PERF1" "$PERF2" 2>/dev/null || true
	wait "$PERF1" "$PERF2" 2>/dev/null || true
	for who in custosd snmpd; do
		echo "snmp bench: $who during the walk (perf, self time by library and symbol):"
		perf report -q -i "$WORK/perf-$who.data" --no-children --sort dso,sym 2>/dev/null |
		    grep -v '^$' | grep -v '^ *|' | grep -v -- '---' | head -n 15 || true
	done
fi
ALONE_RATE=$(awk -v l="$ALONE_LINES" -v t="$ALONE_MS" 'BEGIN { printf "%.0f", (t > 0) ? l * 1000 / t : 0 }')
WALK_CUSTOSD_MS=$(( (s1 - s0) * 1000 / HZ ))
WALK_SUBAGENT_MS=$(( ((s1 - s0) - (m1 - m0)) * 1000 / HZ ))
WALK_SNMPD_MS=$(( (d1 - d0) * 1000 / HZ ))
WALK_CLIENT_MS=$(( (c1 - c0) * 1000 / HZ ))
complete=yes
[ "$ALONE_LINES" -ge "$EXPECT" ] || complete="NO (expected $EXPECT; $(head -c 200 "$WORK/walk-alone.out.err"))"
echo "  $ALONE_LINES varbinds in ${ALONE_MS} ms: $ALONE_RATE varbinds/s; complete: $complete"
echo "  CPU: custosd $WALK_CUSTOSD_MS ms (other threads than the event loop: $WALK_SUBAGENT_MS ms)," \
    "snmpd $WALK_SNMPD_MS ms, snmpbulkwalk $WALK_CLIENT_MS ms"

# ---- 6. sync latency without and with walks ----
# walk_loop: full walks one after the other until walk.stop exists; each
# finished walk appends "lines ms" to walks.done; the running one's output
# is walk.cur (its start in walk.start)
walk_loop() {
	local a b pid
	while [ ! -e "$WORK/walk.stop" ]; do
		a=$(ms_now)
		echo "$a" >"$WORK/walk.start"
		snmpbulkwalk "${SNMPOPTS[@]}" -Cr"$REPS" "127.0.0.1:$SNMP_PORT" "$HOST_TABLE" \
		    >"$WORK/walk.cur" 2>/dev/null &
		pid=$!
		echo "$pid" >"$WORK/walk.pid"
		wait "$pid" || true
		b=$(ms_now)
		[ -e "$WORK/walk.stop" ] || echo "$(wc -l <"$WORK/walk.cur") $((b - a))" >>"$WORK/walks.done"
	done
}
echo "snmp bench: sync latency, $ROUNDS rounds of ${SECS}s without then ${SECS}s with bulk walks" \
    "of custosHostTable in a loop; $CONC agents in flight, $AGENTS identities"
P_WITHOUT=()
P_WITH=()
R_WITHOUT=()
R_WITH=()
WALK_VB=0
WALK_MS=0
: >"$WORK/walks.done"
for r in $(seq "$ROUNDS"); do
	A=$("$SIM" sync -s "127.0.0.1:$AGENT_PORT" -f "$IDS" -c "$CONC" -t "$SECS") || die "sync phase failed"
	rm -f "$WORK/walk.stop" "$WORK/walk.pid"
	walk_loop &
	LOOP=$!
	PIDS+=("$LOOP")
	sleep 0.3 # the walk is running when the syncs start
	B=$("$SIM" sync -s "127.0.0.1:$AGENT_PORT" -f "$IDS" -c "$CONC" -t "$SECS") || die "sync phase failed"
	touch "$WORK/walk.stop"
	stop=$(ms_now)
	[ -s "$WORK/walk.pid" ] && kill "$(cat "$WORK/walk.pid")" 2>/dev/null || true
	wait "$LOOP" 2>/dev/null || true
	# the walk cut short counts with what it had printed by then
	WALK_VB=$((WALK_VB + $(wc -l <"$WORK/walk.cur")))
	WALK_MS=$((WALK_MS + stop - $(cat "$WORK/walk.start")))
	P_WITHOUT+=("$(field p99_ms "$A")")
	P_WITH+=("$(field p99_ms "$B")")
	R_WITHOUT+=("$(field rate "$A")")
	R_WITH+=("$(field rate "$B")")
	echo "  round $r without: $A"
	echo "  round $r with:    $B"
done
while read -r l t; do
	WALK_VB=$((WALK_VB + l))
	WALK_MS=$((WALK_MS + t))
done <"$WORK/walks.done"
FULL_DURING=$(wc -l <"$WORK/walks.done")

median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
P99_WITHOUT=$(median "${P_WITHOUT[@]}")
P99_WITH=$(median "${P_WITH[@]}")
RATE_WITHOUT=$(median "${R_WITHOUT[@]}")
RATE_WITH=$(median "${R_WITH[@]}")
DURING_RATE=$(awk -v l="$WALK_VB" -v t="$WALK_MS" 'BEGIN { printf "%.0f", (t > 0) ? l * 1000 / t : 0 }')
ratio=$(awk -v a="$P99_WITH" -v b="$P99_WITHOUT" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
p99_ok=$(awk -v r="$ratio" 'BEGIN { print (r > 0 && r <= 1.10) ? "PASS" : "MISS" }')
vb_ok=$(awk -v v="$ALONE_RATE" -v c="$complete" 'BEGIN { print (v >= 20000 && c == "yes") ? "PASS" : "MISS" }')
IDLE1=$(idle_pct)

cat <<EOF

=== custos SNMP bench (issue 4): $ROWS hosts, $(nproc) CPUs (${IDLE0}% idle at start, ${IDLE1}% at the end), loopback ===
hostTable walk alone: $ALONE_RATE varbinds/s (target >= 20,000) $vb_ok
    $ALONE_LINES varbinds in $ALONE_MS ms, snmpbulkwalk -v2c -Cr$REPS, complete: $complete
    CPU for the walk: custosd $WALK_CUSTOSD_MS ms (subagent thread $WALK_SUBAGENT_MS ms), snmpd $WALK_SNMPD_MS ms, snmpbulkwalk $WALK_CLIENT_MS ms
    during the syncs: $DURING_RATE varbinds/s ($FULL_DURING full walks finished, the rest cut short at each round's end)
sync p99 without walk: $P99_WITHOUT ms   with walk: $P99_WITH ms   ratio: $ratio (target <= 1.10) $p99_ok
    median of $ROUNDS rounds of ${SECS}s each, $CONC in flight; per round without: ${P_WITHOUT[*]} ms, with: ${P_WITH[*]} ms
    syncs/s without: $RATE_WITHOUT   with: $RATE_WITH
    (simulator, custosd, mariadbd, snmpd and snmpbulkwalk share the CPUs: CPU the walk takes
    is CPU the syncs lack, whatever custosd does)
EOF
exit 0
