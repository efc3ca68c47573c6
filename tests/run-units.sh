#!/usr/bin/env bash
# Runs every unit test binary of one build (tests/run-units.sh BUILD runs
# BUILD/tests/test_*; other arguments name test binaries, e.g.
# build/nac/test_proto) and sums cmocka's counts: passed, failed and skipped.
# A skipped test is listed with its name and the reason it printed before
# skip() (a line "skipped: WHY"; "(no reason printed)" otherwise).
# Appends "PASSED FAILED SKIPPED" to $CUSTOS_RESULTS when set, and one line
# "skipped NAME: WHY" per skipped test.
set -u
BUILD=${1:-build}
if [ $# -le 1 ] && [ -d "$BUILD" ]; then
	label="$BUILD"
	set -- "$BUILD"/tests/test_*
else
	label="$*"
fi
pass=0; fail=0; skipped=0; failed=(); skips=()
for t in "$@"; do
	if [ ! -x "$t" ]; then
		# a named binary that is not there is a failure, not a silent pass
		case "$t" in *'*'*) continue ;; esac
		echo "$t: missing or not executable"
		failed+=("$(basename "$t")"); fail=$((fail + 1))
		continue
	fi
	out=$("$t" 2>&1); rc=$?
	printf '%s\n' "$out"
	p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
	f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
	s=$(printf '%s\n' "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' | tail -n 1)
	pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0})); skipped=$((skipped + ${s:-0}))
	# "[ RUN      ] name", the test's own "skipped: why", "[  SKIPPED ] name"
	while IFS= read -r line; do
		[ -n "$line" ] && skips+=("$(basename "$t")/$line")
	done < <(printf '%s\n' "$out" | awk '
		/^\[ RUN      \] / { cur = substr($0, 14); why = ""; next }
		/^skipped: /       { why = substr($0, 10); next }
		/^\[  SKIPPED \] / {
			name = substr($0, 14)
			if (name ~ /^[0-9]+ test\(s\)/ || name == "" || seen[name]++) next
			print name ": " (why != "" ? why : "(no reason printed)")
		}')
	if [ $rc -ne 0 ]; then
		failed+=("$(basename "$t")")
		# a crash before cmocka's summary still counts as a failure
		[ "${f:-0}" -eq 0 ] && fail=$((fail + 1))
	fi
done
for s in ${skips[@]+"${skips[@]}"}; do echo "SKIPPED $s"; done
echo "unit tests in $label: $pass passed, $fail failed, $skipped skipped${failed:+ (failing: ${failed[*]})}"
if [ -n "${CUSTOS_RESULTS:-}" ]; then
	echo "$pass $fail $skipped" >>"$CUSTOS_RESULTS"
	for s in ${skips[@]+"${skips[@]}"}; do echo "skipped $s" >>"$CUSTOS_RESULTS"; done
fi
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
