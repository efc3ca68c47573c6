#!/usr/bin/env bash
# `make test`: unit tests of the normal and the sanitizer build and of
# rlm_custos's line protocol (build/nac/test_proto, built by `make nac`), then
# the integration tests against the sanitizer build (real MariaDB, real TLS).
# Lists every skipped test with its reason, then ends with one line
# "tests: N passed, M failed, K skipped" summing every test case.
set -u
cd "$(dirname "$0")/.."
CUSTOS_RESULTS=$(mktemp)
export CUSTOS_RESULTS
trap 'rm -f "$CUSTOS_RESULTS"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
echo "=== layering (tools/layers.py check: no include points up the layers of daemon/)"
if python3 tools/layers.py check; then
	echo "1 0 0" >>"$CUSTOS_RESULTS"
else
	echo "0 1 0" >>"$CUSTOS_RESULTS"; status=1
fi
echo "=== unit tests (build)"
tests/run-units.sh build || status=1
echo "=== unit tests (build/asan: AddressSanitizer + UndefinedBehaviorSanitizer)"
tests/run-units.sh build/asan || status=1
echo "=== unit tests (build/nac: rlm_custos line protocol)"
tests/run-units.sh build/nac/test_proto || status=1
echo "=== integration tests (build/asan)"
CUSTOS_BUILD=build/asan tests/integration/run.sh || status=1
pass=0; fail=0; skipped=0
echo
while read -r p f s; do
	case "$p" in
	skipped) echo "SKIPPED $f $s" ;;  # "skipped NAME: WHY"
	*) pass=$((pass + p)); fail=$((fail + f)); skipped=$((skipped + ${s:-0})) ;;
	esac
done <"$CUSTOS_RESULTS"
[ $status -ne 0 ] && [ $fail -eq 0 ] && fail=1
echo "tests: $pass passed, $fail failed, $skipped skipped"
exit $status
