#!/usr/bin/env bash
# `make test`: unit tests of the normal and the sanitizer build, then the
# integration tests against the sanitizer build (real MariaDB, real TLS).
# Ends with one line "tests: N passed, M failed" summing every test case.
set -u
cd "$(dirname "$0")/.."
CUSTOS_RESULTS=$(mktemp)
export CUSTOS_RESULTS
trap 'rm -f "$CUSTOS_RESULTS"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
echo "=== unit tests (build)"
tests/run-units.sh build || status=1
echo "=== unit tests (build/asan: AddressSanitizer + UndefinedBehaviorSanitizer)"
tests/run-units.sh build/asan || status=1
echo "=== integration tests (build/asan)"
CUSTOS_BUILD=build/asan tests/integration/run.sh || status=1
pass=0; fail=0
while read -r p f; do pass=$((pass + p)); fail=$((fail + f)); done <"$CUSTOS_RESULTS"
[ $status -ne 0 ] && [ $fail -eq 0 ] && fail=1
echo
echo "tests: $pass passed, $fail failed"
exit $status
