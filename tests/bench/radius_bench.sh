#!/usr/bin/env bash
# radius_bench.sh — MAB throughput through FreeRADIUS + rlm_custos against the
# same FreeRADIUS answering the same requests from its files module (issue 5).
#
# One FreeRADIUS (a copy of /etc/freeradius/3.0, reject_delay 0, the module
# from build/nac) with two sites on loopback:
#   custos  the sample site of nac/freeradius: MAB accepted in authorize,
#           rlm_custos in post-auth asks custosd (query socket), which
#           answers from memory (the Unknown profile: VLAN 999)
#   files   the same MAB requests answered from a files module whose entries
#           give each MAC the same three VLAN attributes
# radclient sends RADIUS_BENCH_REQS distinct MAB requests (with
# Message-Authenticator) RADIUS_BENCH_REPEAT times each, RADIUS_BENCH_PAR in
# parallel, alternating custos and files for RADIUS_BENCH_ROUNDS rounds; the
# ratio of the best rates is the result (target >= 0.85). Loopback only.
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
SECRET=custos-bench-secret

die() {
	echo "radius bench: $*" >&2
	exit 1
}

command -v radclient >/dev/null || die "radclient missing (make deps)"
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

# ---- custosd with the NAC query socket ----
appliance/mariadb.sh start "$WORK/mariadb" >"$WORK/mariadb.out" 2>&1 ||
    { cat "$WORK/mariadb.out" >&2; die "MariaDB did not start"; }
cat >"$WORK/custosd.conf" <<EOF
server: { state_dir = "$WORK/state"; migrations_dir = "$PWD/db/migrations"; declare_dir = "$WORK/custos.d"; };
log: { level = "warn"; };
listen: { address = "127.0.0.1"; port = $AGENT_PORT; };
api: { address = "127.0.0.1"; port = $API_PORT; };
database: { socket = "$WORK/mariadb/mysqld.sock"; user = "custos"; password_file = "$WORK/mariadb/custos.password"; };
nac: {
  enabled = true;
  socket = "$WORK/nac.sock";
  socket_group = "";
  profiles = ( { token = "Unknown"; vlan = "999"; } );
  nas = ( { name = "switch1"; address = "127.0.0.1"; vendor = "cisco"; } );
};
EOF
mkdir -p "$WORK/custos.d"
"$BUILD/custosd" -c "$WORK/custosd.conf" >"$WORK/custosd.log" 2>&1 &
SRV=$!
PIDS+=("$SRV")
for _ in $(seq 100); do
	[ -S "$WORK/nac.sock" ] && break
	kill -0 "$SRV" 2>/dev/null || break
	sleep 0.1
done
[ -S "$WORK/nac.sock" ] || { tail -n 20 "$WORK/custosd.log" >&2; die "custosd did not open its query socket"; }

# ---- FreeRADIUS: both sites in one server ----
R=$WORK/raddb
cp -a /etc/freeradius/3.0 "$R"
mkdir -p "$WORK/log" "$WORK/run"
sed -i -E \
    -e "s|^raddbdir = .*|raddbdir = $R|" \
    -e "s|^logdir = .*|logdir = $WORK/log|" \
    -e "s|^run_dir = .*|run_dir = $WORK/run|" \
    -e "s|^libdir = .*|libdir = $PWD/build/nac:/usr/lib/freeradius|" \
    -e "s/^(\s*)(user|group) = freerad$/\1#\2 = freerad/" \
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

# the same MACs for both sites; files gives each the Unknown profile's VLAN
REQ=$WORK/mab.txt
: >"$REQ"
: >"$R/mods-config/files/mab"
for i in $(seq 1 "$REQS"); do
	mac=$(printf '02:00:5e:%02x:%02x:%02x' $((i >> 16 & 255)) $((i >> 8 & 255)) $((i & 255)))
	printf 'User-Name = "%s"\nUser-Password = "%s"\nCalling-Station-Id = "%s"\nService-Type = Call-Check\nNAS-IP-Address = 127.0.0.1\nNAS-Identifier = "switch1"\nNAS-Port = %d\nAcct-Session-Id = "bench-%d"\nMessage-Authenticator = 0x00\n\n' \
	    "$mac" "$mac" "$mac" "$i" "$i" >>"$REQ"
	printf '%s\tAuth-Type := Accept\n\tTunnel-Type = VLAN,\n\tTunnel-Medium-Type = IEEE-802,\n\tTunnel-Private-Group-Id = "999"\n\n' \
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
med() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
mratio=$(awk -v a="$(med "$c_all")" -v b="$(med "$f_all")" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
cpu_c="FreeRADIUS $(med "$cfr_all") + custosd $(med "$csrv_all") + radclient $(med "$crc_all")"
cpu_f="FreeRADIUS $(med "$ffr_all") + radclient $(med "$frc_all")"
ok=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.85) ? "PASS" : "MISS" }')
cat <<EOF

=== radius bench (issue 5): $(nproc) CPUs shared by radclient, FreeRADIUS and custosd, loopback ===
MAB through FreeRADIUS + rlm_custos: $best_c/s   from the files module: $best_f/s
ratio (best of $ROUNDS): $ratio (target >= 0.85) $ok   ratio of medians: $mratio
custosd CPU per query (event loop and all): $us_per_q us
CPU us per request (medians): custos: $cpu_c   files: $cpu_f
EOF
exit 0
