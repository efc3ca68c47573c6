#!/usr/bin/env bash
# Runs every unit test binary of one build and sums cmocka's counts.
# Appends "PASSED FAILED" to $CUSTOS_RESULTS when set.
set -u
BUILD=${1:-build}
pass=0; fail=0; failed=()
for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	out=$("$t" 2>&1); rc=$?
	printf '%s\n' "$out"
	p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
	f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -n 1)
	pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0}))
	if [ $rc -ne 0 ]; then
		failed+=("$(basename "$t")")
		# a crash before cmocka's summary still counts as a failure
		[ "${f:-0}" -eq 0 ] && fail=$((fail + 1))
	fi
done
echo "unit tests in $BUILD: $pass passed, $fail failed${failed:+ (failing: ${failed[*]})}"
[ -n "${CUSTOS_RESULTS:-}" ] && echo "$pass $fail" >>"$CUSTOS_RESULTS"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
