#!/usr/bin/env bash
# Generates build/nac/overlay/: the FreeRADIUS headers that radiusd.h needs
# but Debian's libfreeradius-dev does not ship (connection.h, log.h, xlat.h,
# tmpl.h, clients.h, process.h, listen.h, automask.h, ...). They are taken
# from the source package of exactly the installed freeradius version, so
# the module is built against the very server that will load it.
#
#   nac/overlay.sh [BUILD_DIR]      (default: build)
#
# The source is cached in BUILD_DIR/nac/src and never committed. Instant when
# the overlay already matches the installed version.
set -eu

cd "$(dirname "$0")/.."
BUILD=${1:-build}
NAC="$BUILD/nac"
SRC="$NAC/src"
OVL="$NAC/overlay"

die() { echo "nac/overlay.sh: $*" >&2; exit 1; }

ver=$(dpkg-query -W -f='${Version}' freeradius 2>/dev/null) ||
	die "freeradius is not installed; run appliance/bootstrap.sh (make deps)"
[ -n "$ver" ] || die "freeradius is not installed; run appliance/bootstrap.sh (make deps)"
[ -r /usr/include/freeradius/radiusd.h ] ||
	die "libfreeradius-dev is not installed; run appliance/bootstrap.sh (make deps)"
devver=$(dpkg-query -W -f='${Version}' libfreeradius-dev)
[ "$devver" = "$ver" ] ||
	die "libfreeradius-dev $devver does not match freeradius $ver; upgrade both together"

if [ -f "$OVL/VERSION" ] && [ "$(cat "$OVL/VERSION")" = "$ver" ]; then
	exit 0
fi

# Upstream version without epoch and Debian revision, e.g. 3.2.1+dfsg.
upver=${ver#*:}
upver=${upver%-*}
tree="$SRC/freeradius-$upver"

if [ ! -f "$SRC/VERSION" ] || [ "$(cat "$SRC/VERSION")" != "$ver" ] || [ ! -d "$tree/src/include" ]; then
	command -v dpkg-source >/dev/null || die "dpkg-source missing; install dpkg-dev (make deps)"
	rm -rf "$SRC"
	mkdir -p "$SRC"
	echo "nac/overlay.sh: fetching the freeradius $ver source package"
	if ! (cd "$SRC" && apt-get source -qq "freeradius=$ver" >apt.log 2>&1); then
		cat "$SRC/apt.log" >&2
		die "apt-get source freeradius=$ver failed: a deb-src entry is needed" \
		    "(appliance/bootstrap.sh adds one) and 'apt-get update' must have run"
	fi
	[ -d "$tree/src/include" ] || die "unexpected source layout: no $tree/src/include"
	echo "$ver" >"$SRC/VERSION"
fi

# Only the headers Debian lacks: the installed ones (autoconf.h, features.h,
# ...) describe how the installed server was configured and must win.
tmp="$OVL.tmp"
rm -rf "$tmp"
mkdir -p "$tmp/freeradius"
n=0
for h in "$tree"/src/include/*.h; do
	b=$(basename "$h")
	[ -e "/usr/include/freeradius/$b" ] && continue
	# Upstream spells the include directory freeradius-devel; Debian renames it.
	sed 's|<freeradius-devel/|<freeradius/|g' "$h" >"$tmp/freeradius/$b"
	n=$((n + 1))
done
for need in automask.h connection.h log.h xlat.h tmpl.h clients.h process.h listen.h; do
	[ -e "/usr/include/freeradius/$need" ] || [ -e "$tmp/freeradius/$need" ] ||
		die "the $ver source has no src/include/$need"
done
echo "$ver" >"$tmp/VERSION"
rm -rf "$OVL"
mv "$tmp" "$OVL"
echo "nac/overlay.sh: $n headers for freeradius $ver in $OVL"
