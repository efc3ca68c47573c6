#!/bin/sh
# Lints CUSTOS-MIB with smilint at the strictest level. smilint exits 0 even
# on errors, so any output is a failure. The SMIv2 base modules (SNMPv2-SMI,
# SNMPv2-TC, SNMPv2-CONF, INET-ADDRESS-MIB) come from Debian's erlang-snmp;
# Debian ships no other copy of them. Usage: snmp-mib/lint.sh [MIB-FILE]
set -u
here=$(cd "$(dirname "$0")" && pwd)
mib=${1:-$here/CUSTOS-MIB.txt}
if ! command -v smilint >/dev/null 2>&1; then
	echo "lint.sh: smilint not found; install the Debian package smitools" >&2
	exit 1
fi
base=
for d in /usr/lib/erlang/lib/snmp-*/mibs; do
	[ -f "$d/SNMPv2-SMI.mib" ] && base=$d
done
if [ -z "$base" ]; then
	echo "lint.sh: SNMPv2-SMI not found; install the Debian package erlang-snmp" >&2
	exit 1
fi
out=$(SMIPATH="$base:$(dirname "$mib")" smilint -s -m -l 6 "$mib" 2>&1)
if [ -n "$out" ]; then
	printf '%s\n' "$out"
	echo "lint.sh: $mib: smilint reported the problems above" >&2
	exit 1
fi
echo "lint.sh: $(basename "$mib") is clean (smilint -l 6)"
