#!/usr/bin/env bash
# Runs every unit test binary of one build; prints a summary line.
set -u
BUILD=${1:-build}
pass=0; fail=0; failed=()
for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed+=("$(basename "$t")"); fi
done
echo "unit tests ($BUILD): $pass passed, $fail failed${failed:+ (${failed[*]})}"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
