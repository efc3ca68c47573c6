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
	snmpd snmp snmptrapd smitools erlang-snmp
	python3 iproute2 procps
	freeradius freeradius-utils libfreeradius-dev libtalloc-dev libpcre3-dev eapoltest dpkg-dev
)

# nac/overlay.sh runs `apt-get source freeradius`, which needs a deb-src
# entry. Adds one as a separate file, mirroring debian.sources, only when the
# system has none. Prints "added" when it wrote the file.
ensure_deb_src() {
	local src=/etc/apt/sources.list.d/debian.sources
	local list=/etc/apt/sources.list
	local S=""
	[ "$(id -u)" -ne 0 ] && S="sudo"
	if grep -qsE '^[[:space:]]*(deb-src[[:space:]]|Types:.*deb-src)' /etc/apt/sources.list \
	    /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; then
		return 0
	fi
	if [ -r "$src" ]; then
		# deb822 (containers, cloud images)
		sed -E 's/^Types:.*/Types: deb-src/' "$src" | $S tee /etc/apt/sources.list.d/custos-src.sources >/dev/null
	elif grep -qsE '^[[:space:]]*deb[[:space:]]' "$list"; then
		# one-line format (debootstrap roots, older installs)
		sed -nE 's/^[[:space:]]*deb([[:space:]])/deb-src\1/p' "$list" | $S tee /etc/apt/sources.list.d/custos-src.list >/dev/null
	else
		echo "bootstrap: found no Debian archive in $src or $list to derive a deb-src entry from; add one by hand" >&2
		return 0
	fi
	echo added
}

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
src_added=$(ensure_deb_src)
if [ ${#missing[@]} -eq 0 ]; then
	if [ -n "$src_added" ]; then
		echo "bootstrap: added a deb-src entry; updating package lists"
		if [ "$(id -u)" -eq 0 ]; then apt-get update -qq; else sudo apt-get update -qq; fi
	fi
	exit 0
fi

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
# (an if, not &&: the trap's status would become the script's exit status)
cleanup() { if [ "$created_policy" = 1 ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "bootstrap: done"
