#!/usr/bin/env bash
# Integration tests: real custosd, custos-agent and custosctl on loopback with
# a private MariaDB. CUSTOS_BUILD names the build directory (default build);
# arguments name single tests (default: all). See tests/integration/README.md.
set -u
cd "$(dirname "$0")/../.."
export CUSTOS_BUILD=${CUSTOS_BUILD:-build}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Debian's interpreter: the suite needs nothing beyond its standard library.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
exec "$PY" -B tests/integration/run.py "$@"
