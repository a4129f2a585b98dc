#!/bin/bash
# arm64-sysroot.sh [DIR]: the arm64 libraries `make ARCH=arm64` links statically, unpacked into
# DIR (default ~/.cache/kvmini/arm64-sysroot). The cross compiler itself is gcc-aarch64-linux-gnu
# (scripts/install-deps.sh). Debian's arm64 -dev packages are fetched with apt-get without
# touching the system's apt configuration or state: the package lists, apt's cache and the
# downloads live under DIR/apt, and the architecture is given on the command line. Each package is
# unpacked with dpkg-deb -x (no dpkg database, no multiarch). Every library must come as a static
# archive (.a), which each of these -dev packages has (Debian's libmnl-dev has none, which is why
# net/netlink.c speaks rtnetlink on a plain socket rather than through libmnl).
# Idempotent: DIR/.complete records what was made; delete DIR to start again.
set -euo pipefail

SYSROOT=${1:-$HOME/.cache/kvmini/arm64-sysroot}
CROSS_CC=${CROSS_CC:-aarch64-linux-gnu-gcc}
CROSS_AR=${CROSS_AR:-aarch64-linux-gnu-ar}
PACKAGES=(libfdt-dev libcap-ng-dev zlib1g-dev libzstd-dev libxxhash-dev libjansson-dev
	libseccomp-dev)
STAMP_TEXT="packages: ${PACKAGES[*]}"
LIBDIR=$SYSROOT/usr/lib/aarch64-linux-gnu

if [ -f "$SYSROOT/.complete" ] && [ "$(cat "$SYSROOT/.complete")" = "$STAMP_TEXT" ]; then
	exit 0
fi
command -v "$CROSS_CC" >/dev/null || {
	echo "arm64-sysroot: $CROSS_CC not found: run scripts/install-deps.sh (gcc-aarch64-linux-gnu)" >&2
	exit 1
}

APT=$SYSROOT/apt
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/debs"
apt_arm64=(-o APT::Architecture=arm64 -o APT::Architectures=arm64 -o "Dir::State::Lists=$APT/lists"
	-o "Dir::Cache=$APT/cache" -o Dir::State::status=/dev/null -o Debug::NoLocking=1)
echo "arm64-sysroot: apt-get update (arm64 lists in $APT/lists)"
apt-get "${apt_arm64[@]}" -q update >"$APT/update.log" 2>&1 || { cat "$APT/update.log" >&2; exit 1; }
(cd "$APT/debs" && apt-get "${apt_arm64[@]}" -q download "${PACKAGES[@]/%/:arm64}")
for deb in "$APT"/debs/*.deb; do
	dpkg-deb -x "$deb" "$SYSROOT"
done

missing=()
for l in fdt cap-ng z zstd xxhash jansson seccomp; do
	[ -f "$LIBDIR/lib$l.a" ] || missing+=("lib$l.a")
done
if [ ${#missing[@]} -ne 0 ]; then
	echo "arm64-sysroot: no static archive for ${missing[*]} in $LIBDIR" >&2
	exit 1
fi
echo "$STAMP_TEXT" >"$SYSROOT/.complete"
echo "arm64-sysroot: ready in $SYSROOT"
