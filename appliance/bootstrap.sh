#!/usr/bin/env bash
# Installs the Debian packages Custos needs to build, run and test, when any
# is missing. Idempotent and instant when everything is present. Shared by
# `make run`, `make test` and .ci/run.
set -eu

PACKAGES=(
	build-essential pkg-config
	libssl-dev openssl
	libevent-dev
	libmariadb-dev mariadb-server mariadb-client
	libconfig-dev libjansson-dev libcmocka-dev
	clamav clamav-daemon clamdscan
	libsnmp-dev snmpd snmp snmptrapd smitools erlang-snmp
	python3 iproute2 procps
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "bootstrap: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "bootstrap: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Packages must not start system services of their own (the appliance runs
# its own MariaDB under var/; clamd/freshclam are started by tests).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
	created_policy=1
fi
cleanup() { [ "$created_policy" = 1 ] && $SUDO rm -f "$policy"; }
trap cleanup EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "bootstrap: done"
