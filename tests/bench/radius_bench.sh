#!/usr/bin/env bash
# radius_bench.sh — MAB throughput through FreeRADIUS + rlm_custos against the
# same FreeRADIUS answering the same requests from its files module (issue 5).
#
# custosd holds RADIUS_BENCH_HOSTS (100,000) healthy hosts, inserted into
# its database with one INSERT ... SELECT (each with its own MAC) and loaded
# at start. One FreeRADIUS (a copy of /etc/freeradius/3.0 running as
# freerad, which reaches the query socket through nac.socket_group; the
# module from build/nac) with two sites on loopback:
#   custos  the sample site of nac/freeradius: MAB accepted in authorize,
#           rlm_custos in post-auth asks custosd (query socket), which
#           answers from memory (each MAC asked is a known host's, spread
#           over the whole fleet: the Healthy profile, VLAN 100)
#   files   the same MAB requests answered from a files module whose entries
#           give each MAC the same three VLAN attributes
# radclient sends RADIUS_BENCH_REQS distinct MAB requests (with
# Message-Authenticator) RADIUS_BENCH_REPEAT times each, RADIUS_BENCH_PAR in
# parallel, alternating custos and files for RADIUS_BENCH_ROUNDS rounds; the
# ratio of the median rates is the result (target >= 0.85; the best-of
# ratio is shown beside it). Loopback only.
# reject_delay is 0 here, and only here: every request of the benchmark must
# be accepted (a reject ends it with an error), so the delay never shapes
# its figures, but a broken run would otherwise crawl through
# REQS * REPEAT rejects at one per second and per radclient slot.
# Each run also shows the CPU microseconds per request of FreeRADIUS,
# custosd and radclient (all three share the machine's CPUs).
# RADIUS_BENCH_PERF=1 adds a perf profile of custosd during the rounds.
# Exits 0 after printing; non-zero only when the benchmark could not run.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
REQS=${RADIUS_BENCH_REQS:-1000}
REPEAT=${RADIUS_BENCH_REPEAT:-20}
PAR=${RADIUS_BENCH_PAR:-64}
ROUNDS=${RADIUS_BENCH_ROUNDS:-4}
HOSTS=${RADIUS_BENCH_HOSTS:-100000}
SECRET=custos-bench-secret

die() {
	echo "radius bench: $*" >&2
	exit 1
}

command -v radclient >/dev/null || die "radclient missing (make deps)"
[ "$REQS" -ge 1 ] && [ "$HOSTS" -ge "$REQS" ] ||
    die "RADIUS_BENCH_REQS ($REQS) must be between 1 and RADIUS_BENCH_HOSTS ($HOSTS): every MAC asked is a known host's"
id freerad >/dev/null 2>&1 || die "no user freerad (the freeradius package creates it)"
[ -x /usr/sbin/freeradius ] || die "freeradius missing (make deps)"
make --no-print-directory nac >/dev/null 2>&1 || die "make nac failed (run it to see why)"
make --no-print-directory BUILD="$BUILD" all >/dev/null || die "make all failed"

. tests/bench/common.sh
bench_setup custos-radius-bench
AGENT_PORT=$(pick_port)
API_PORT=$(pick_port "$AGENT_PORT")
CUSTOS_PORT=$(pick_port "$AGENT_PORT" "$API_PORT")
FILES_PORT=$(pick_port "$AGENT_PORT" "$API_PORT" "$CUSTOS_PORT")
INNER_PORT=$(pick_port "$AGENT_PORT" "$API_PORT" "$CUSTOS_PORT" "$FILES_PORT")

# host i's MAC (i < 2^24)
mac_of() {
	printf '02:00:5e:%02x:%02x:%02x' $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255))
}
# the token custosd's query socket gives MAC ($1), or nothing
nac_token() {
	python3 - "$WORK/nac.sock" "$1" <<'PY' 2>/dev/null || true
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(json.dumps({"mac": sys.argv[2], "nas_ip": "127.0.0.1", "phase": "authorize"}).encode() + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
print(json.loads(buf).get("token", ""))
PY
}

# ---- custosd with the NAC query socket and HOSTS healthy hosts ----
chmod 711 "$WORK" # FreeRADIUS (freerad) reaches the socket and its files in here
appliance/mariadb.sh start "$WORK/mariadb" >"$WORK/mariadb.out" 2>&1 ||
    { cat "$WORK/mariadb.out" >&2; die "MariaDB did not start"; }
DB=(mariadb --no-defaults --socket="$WORK/mariadb/mysqld.sock" --user=root --batch --skip-column-names custos)
cat >"$WORK/custosd.conf" <<EOF
server: { state_dir = "$WORK/state"; migrations_dir = "$PWD/db/migrations"; declare_dir = "$WORK/custos.d"; };
log: { level = "warn"; };
listen: { address = "127.0.0.1"; port = $AGENT_PORT; };
api: { address = "127.0.0.1"; port = $API_PORT; };
database: { socket = "$WORK/mariadb/mysqld.sock"; user = "custos"; password_file = "$WORK/mariadb/custos.password"; };
nac: {
  enabled = true;
  socket = "$WORK/nac.sock";
  socket_group = "freerad";
  profiles = ( { token = "Healthy"; vlan = "100"; }, { token = "Unknown"; vlan = "999"; } );
  nas = ( { name = "switch1"; address = "127.0.0.1"; vendor = "cisco"; } );
};
EOF
mkdir -p "$WORK/custos.d"
start_custosd() {
	"$BUILD/custosd" -c "$WORK/custosd.conf" >>"$WORK/custosd.log" 2>&1 &
	SRV=$!
	PIDS+=("$SRV")
	for _ in $(seq 100); do
		[ -S "$WORK/nac.sock" ] && return
		kill -0 "$SRV" 2>/dev/null || break
		sleep 0.1
	done
	tail -n 20 "$WORK/custosd.log" >&2
	die "custosd did not open its query socket"
}
# a first start applies the schema; the hosts go in while custosd is down
start_custosd
for _ in $(seq 300); do
	"${DB[@]}" -e "SELECT COUNT(*) FROM hosts" >/dev/null 2>&1 && break
	sleep 0.2
done
"${DB[@]}" -e "SELECT COUNT(*) FROM hosts" >/dev/null || die "custosd did not create its schema"
kill "$SRV"
wait "$SRV" || die "custosd did not stop cleanly after creating its schema"
rm -f "$WORK/nac.sock"
t0=$(date +%s)
n=$("${DB[@]}" -e "
SET @now = UNIX_TIMESTAMP();
INSERT INTO hosts (uid, name, hostname, cert_serial, enrolled_at, last_seen, last_ip, status, reasons,
    posture, posture_time, placed)
SELECT MD5(CONCAT('radius-bench-', seq)), CONCAT('rb-', LPAD(seq, 6, '0')),
    CONCAT('rb-', LPAD(seq, 6, '0'), '.example.com'), UPPER(LEFT(SHA1(CONCAT('rb-', seq)), 32)),
    @now - 86400, @now, CONCAT('10.', (seq >> 16) & 255, '.', (seq >> 8) & 255, '.', seq & 255), 0, 0,
    CONCAT('{\"system\": {\"hostname\": \"rb-', LPAD(seq, 6, '0'), '.example.com\", \"reboot_required\": false,',
        ' \"interfaces\": [{\"name\": \"eth0\", \"mac\": \"02:00:5e:',
        LOWER(LPAD(HEX((seq >> 16) & 255), 2, '0')), ':', LOWER(LPAD(HEX((seq >> 8) & 255), 2, '0')), ':',
        LOWER(LPAD(HEX(seq & 255), 2, '0')), '\", \"ipv4\": [\"10.', (seq >> 16) & 255, '.',
        (seq >> 8) & 255, '.', seq & 255, '\"]}]},',
        ' \"antivirus\": [{\"name\": \"clamav\", \"installed\": true, \"db_version\": 27480,',
        ' \"db_time\": ', @now - 3600, ', \"running\": true, \"rtp\": true}],',
        ' \"threats\": {\"unresolved\": 0}, \"errors\": []}'),
    @now, 1
FROM seq_1_to_$HOSTS;
SELECT COUNT(*) FROM hosts;" 2>"$WORK/insert.err") || { cat "$WORK/insert.err" >&2; die "cannot insert the host rows"; }
[ "$n" -ge "$HOSTS" ] || die "only $n host rows after the insert"
start_custosd
# the MACs asked: REQS hosts spread over the fleet
STEP=$((HOSTS / REQS))
FIRST=$(mac_of 1)
LAST=$(mac_of $((1 + (REQS - 1) * STEP)))
for _ in $(seq 600); do
	[ "$(nac_token "$LAST")" = Healthy ] && break
	kill -0 "$SRV" 2>/dev/null || break
	sleep 0.2
done
for m in "$FIRST" "$LAST"; do
	tok=$(nac_token "$m")
	[ "$tok" = Healthy ] || { tail -n 20 "$WORK/custosd.log" >&2; die "custosd gives $m the token '$tok', not Healthy"; }
done
echo "radius bench: $n hosts inserted and loaded by custosd in $(($(date +%s) - t0))s;" \
    "VmRSS $(awk '/^VmRSS:/ { print $2 }' "/proc/$SRV/status") KiB"

# ---- FreeRADIUS: both sites in one server ----
R=$WORK/raddb
cp -a /etc/freeradius/3.0 "$R"
mkdir -p "$WORK/log" "$WORK/run"
sed -i -E \
    -e "s|^raddbdir = .*|raddbdir = $R|" \
    -e "s|^logdir = .*|logdir = $WORK/log|" \
    -e "s|^run_dir = .*|run_dir = $WORK/run|" \
    -e "s|^libdir = .*|libdir = $PWD/build/nac:/usr/lib/freeradius|" \
    -e "s/^(\s*)reject_delay = .*/\1reject_delay = 0/" \
    "$R/radiusd.conf"
printf 'client localhost {\n\tipaddr = 127.0.0.1\n\tsecret = %s\n\trequire_message_authenticator = yes\n}\n' \
    "$SECRET" >"$R/clients.conf"
rm -f "$R"/sites-enabled/*
sed -e "s|^\tipaddr = \*$|\tipaddr = 127.0.0.1|" -e "s|^\tport = 0$|\tport = $CUSTOS_PORT|" \
    nac/freeradius/sites-available/custos >"$R/sites-available/custos"
grep -q "port = $CUSTOS_PORT" "$R/sites-available/custos" || die "cannot adapt the sample site's listen section"
ln -s ../sites-available/custos "$R/sites-enabled/custos"
sed -e "s|port = 18120|port = $INNER_PORT|" /etc/freeradius/3.0/sites-available/inner-tunnel \
    >"$R/sites-available/inner-tunnel"
ln -s ../sites-available/inner-tunnel "$R/sites-enabled/inner-tunnel"
sed -e "s|^\tsocket = .*|\tsocket = $WORK/nac.sock|" nac/freeradius/mods-available/custos \
    >"$R/mods-available/custos"
ln -s ../mods-available/custos "$R/mods-enabled/custos"

# the same MACs for both sites; files gives each the Healthy profile's VLAN
REQ=$WORK/mab.txt
: >"$REQ"
: >"$R/mods-config/files/mab"
for i in $(seq 1 "$REQS"); do
	mac=$(mac_of $((1 + (i - 1) * STEP)))
	printf 'User-Name = "%s"\nUser-Password = "%s"\nCalling-Station-Id = "%s"\nService-Type = Call-Check\nNAS-IP-Address = 127.0.0.1\nNAS-Identifier = "switch1"\nNAS-Port = %d\nAcct-Session-Id = "bench-%d"\nMessage-Authenticator = 0x00\n\n' \
	    "$mac" "$mac" "$mac" "$i" "$i" >>"$REQ"
	printf '%s\tAuth-Type := Accept\n\tTunnel-Type = VLAN,\n\tTunnel-Medium-Type = IEEE-802,\n\tTunnel-Private-Group-Id = "100"\n\n' \
	    "$mac" >>"$R/mods-config/files/mab"
done
cat >"$R/mods-available/files_mab" <<'EOF'
files files_mab {
	moddir = ${modconfdir}/files
	key = "%{%{Stripped-User-Name}:-%{User-Name}}"
	filename = ${moddir}/mab
}
EOF
ln -s ../mods-available/files_mab "$R/mods-enabled/files_mab"
cat >"$R/sites-enabled/files" <<EOF
server files {
listen {
	type = auth
	ipaddr = 127.0.0.1
	port = $FILES_PORT
}
authorize {
	filter_username
	preprocess
	files_mab
}
authenticate {
}
post-auth {
}
}
EOF
# FreeRADIUS's files belong to its user, as in /etc/freeradius
: >"$WORK/radius.log"
chown -R freerad:freerad "$R" "$WORK/log" "$WORK/run" "$WORK/radius.log"
/usr/sbin/freeradius -f -d "$R" -l "$WORK/radius.log" &
FR=$!
PIDS+=("$FR")
for _ in $(seq 100); do
	grep -q "Ready to process requests" "$WORK/radius.log" 2>/dev/null && break
	kill -0 "$FR" 2>/dev/null || break
	sleep 0.1
done
grep -q "Ready to process requests" "$WORK/radius.log" 2>/dev/null ||
    { tail -n 30 "$WORK/radius.log" >&2; die "FreeRADIUS did not start"; }

# one request of each kind must give the same attributes
one() { # PORT -> the reply's attribute lines
	printf '%s\n' "$(sed -n '1,9p' "$REQ")" |
	    radclient -x -r 1 -t 3 "127.0.0.1:$1" auth "$SECRET" 2>&1 |
	    sed -n '/^Received Access-Accept/,$p' | grep -v -e '^Received' -e 'Message-Authenticator' | sort
}
A=$(one "$CUSTOS_PORT")
B=$(one "$FILES_PORT")
[ -n "$A" ] || die "the custos site gave no Access-Accept"
[ "$A" = "$B" ] || die "the sites answer differently: custos [$A] files [$B]"

# utime + stime of a process, clock ticks
cpu_ticks() {
	sed -e 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
HZ=$(getconf CLK_TCK)
# CHILD_TICKS: utime + stime of the reaped children of this (sub)shell,
# clock ticks (no command substitution: that would be another subshell)
child_ticks() {
	local -a st
	read -r -a st <"/proc/$BASHPID/stat"
	CHILD_TICKS=$((st[15] + st[16]))
}
# run PORT -> "rate fr srv rc": requests per second and the CPU microseconds
# per request of FreeRADIUS, custosd and radclient (every request must be
# accepted)
run() {
	local t0 t1 out acc f0 f1 s0 s1 r0 r1
	f0=$(cpu_ticks "$FR")
	s0=$(cpu_ticks "$SRV")
	child_ticks
	r0=$CHILD_TICKS
	t0=$(date +%s.%N)
	out=$(radclient -q -s -c "$REPEAT" -p "$PAR" -r 3 -t 5 -f "$REQ" "127.0.0.1:$1" auth "$SECRET" 2>&1) || true
	t1=$(date +%s.%N)
	f1=$(cpu_ticks "$FR")
	s1=$(cpu_ticks "$SRV")
	child_ticks
	r1=$CHILD_TICKS
	acc=$(sed -n 's/.*Accepted *: *\([0-9]*\).*/\1/p' <<<"$out" | head -n 1)
	[ "${acc:-0}" -eq $((REQS * REPEAT)) ] ||
	    die "port $1: $acc of $((REQS * REPEAT)) accepted: $(tail -n 5 <<<"$out")"
	awk -v n="$acc" -v a="$t0" -v b="$t1" -v hz="$HZ" -v f=$((f1 - f0)) -v s=$((s1 - s0)) \
	    -v r=$((r1 - r0)) 'BEGIN { u = 1e6 / hz / n;
	    printf "%.0f %.1f %.1f %.1f", n / (b - a), f * u, s * u, r * u }'
}

echo "radius bench: $((REQS * REPEAT)) MAB requests per run ($REQS distinct, $PAR in parallel), $ROUNDS rounds each, alternating"
run "$CUSTOS_PORT" >/dev/null  # warm-up: pool connections, caches
run "$FILES_PORT" >/dev/null
best_c=0 best_f=0 c_all="" f_all="" cfr_all="" csrv_all="" crc_all="" ffr_all="" frc_all=""
c0=$(cpu_ticks "$SRV")
if [ "${RADIUS_BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null; then
	perf record -q -o "$WORK/perf.data" -p "$SRV" >/dev/null 2>&1 &
	PERF=$!
fi
echo "  (CPU us per request: FreeRADIUS / custosd / radclient)"
for r in $(seq "$ROUNDS"); do
	read -r c cfr csrv crc <<<"$(run "$CUSTOS_PORT")"
	read -r f ffr fsrv frc <<<"$(run "$FILES_PORT")"
	echo "  round $r: custos $c/s ($cfr / $csrv / $crc)   files $f/s ($ffr / $fsrv / $frc)"
	c_all="$c_all $c"
	f_all="$f_all $f"
	cfr_all="$cfr_all $cfr" csrv_all="$csrv_all $csrv" crc_all="$crc_all $crc"
	ffr_all="$ffr_all $ffr" frc_all="$frc_all $frc"
	[ "$c" -gt "$best_c" ] && best_c=$c
	[ "$f" -gt "$best_f" ] && best_f=$f
done
c1=$(cpu_ticks "$SRV")
if [ -n "${PERF:-}" ]; then
	kill -INT "$PERF" 2>/dev/null || true
	wait "$PERF" || true
	echo "radius bench: custosd during the rounds (perf, top symbols):"
	perf report -q -i "$WORK/perf.data" --no-children --sort dso,sym 2>/dev/null |
	    grep -v '^$' | head -n 25 || true
fi
queries=$((ROUNDS * REQS * REPEAT))
us_per_q=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v n="$queries" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
ratio=$(awk -v a="$best_c" -v b="$best_f" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
med() { # the median (of an even count: the mean of the middle two)
	tr ' ' '\n' <<<"$1" | grep . | sort -n |
	    awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
mratio=$(awk -v a="$(med "$c_all")" -v b="$(med "$f_all")" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
cpu_c="FreeRADIUS $(med "$cfr_all") + custosd $(med "$csrv_all") + radclient $(med "$crc_all")"
cpu_f="FreeRADIUS $(med "$ffr_all") + radclient $(med "$frc_all")"
ok=$(awk -v r="$mratio" 'BEGIN { print (r >= 0.85) ? "PASS" : "MISS" }')
cat <<EOF

=== radius bench (issue 5): $(nproc) CPUs shared by radclient, FreeRADIUS and custosd, loopback ===
custosd holds $n hosts; each MAC asked is a known host's (Healthy profile)
MAB through FreeRADIUS + rlm_custos: median $(med "$c_all")/s (best $best_c/s)   from the files module: median $(med "$f_all")/s (best $best_f/s)
ratio of medians ($ROUNDS rounds): $mratio (target >= 0.85) $ok   best-of ratio: $ratio
custosd CPU per query (event loop and all): $us_per_q us
CPU us per request (medians): custos: $cpu_c   files: $cpu_f
EOF
exit 0
