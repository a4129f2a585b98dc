#!/bin/bash
# fetch-kernel-arm64.sh: the arm64 half of fetch-kernel.sh (run it as fetch-kernel.sh --arch
# arm64, see there): Debian's stock arm64 kernel into ~/.cache/kvmini/kernel-arm64/<version>/
# and that directory on stdout. It holds Image (uncompressed: what kvmini and QEMU load),
# vmlinuz (as packaged), modules/, config and version.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KVMINI_CACHE:-$HOME/.cache/kvmini}/kernel-arm64
say() { echo "fetch-kernel: $*" >&2; }
die() { say "$*"; exit 1; }
# shellcheck source-path=SCRIPTDIR source=apt-arch.sh
. "$here/apt-arch.sh"

newest_cached() {
	local d
	# shellcheck disable=SC2012
	d=$(ls -1d "$cache"/*/ 2>/dev/null | sed 's:/$::' | sort -V | tail -1)
	[ -n "$d" ] && [ -f "$d/Image" ] && [ -d "$d/modules" ] && echo "$d"
}
known() { [ -n "$(apt_arch_cache show --no-all-versions "$1:arm64" 2>/dev/null | head -c 1)" ]; }

pkg=${KVMINI_KERNEL_PKG_ARM64:-}
if [ -z "$pkg" ]; then
	apt_arch_init arm64 || true
	# The same ABI as the x86 guest kernel (this machine's apt), so both suites test one version.
	x86=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)-amd64$/\1/p' | head -1)
	if [ -n "$x86" ] && known "$x86-arm64"; then
		pkg=$x86-arm64
	else
		pkg=$(apt_arch_cache depends linux-image-arm64:arm64 2>/dev/null |
			sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-arm64\)$/\1/p' | head -1)
	fi
	if [ -z "$pkg" ]; then
		d=$(newest_cached) || die "the arm64 package lists name no linux-image-*-arm64 and nothing is cached (apt-get update failed? see above)"
		say "no arm64 package lists; using the cached $(basename "$d")"
		echo "$d"
		exit 0
	fi
else
	apt_arch_init arm64 || true
fi
ver=${pkg#linux-image-}
dir=$cache/$ver

if [ ! -f "$dir/Image" ] || [ ! -d "$dir/modules" ]; then
	mkdir -p "$cache"
	work=$(mktemp -d "$cache/.fetch.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	say "downloading $pkg (arm64)"
	apt_arch_extract "$pkg" "$work/x" || die "apt-get download $pkg:arm64 failed"
	mkdir -p "$work/out"
	cp "$work"/x/boot/vmlinuz-* "$work/out/vmlinuz"
	cp "$work"/x/boot/config-* "$work/out/config" 2>/dev/null || true
	# The arm64 boot protocol loads an uncompressed Image ("ARM\x64" at offset 56).
	case $(od -An -tx1 -N2 "$work/out/vmlinuz" | tr -d ' \n') in
	1f8b) gzip -dc "$work/out/vmlinuz" >"$work/out/Image" ;;
	*) ln "$work/out/vmlinuz" "$work/out/Image" ;;
	esac
	[ "$(od -An -c -j 56 -N4 "$work/out/Image" | tr -d ' \n')" = ARMd ] || die "$pkg: no arm64 Image magic at offset 56 of its kernel"
	mods=$(find "$work/x/lib/modules" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -1)
	[ -n "$mods" ] || die "$pkg has no lib/modules directory"
	mv "$mods" "$work/out/modules"
	cp "$work/x/.package" "$work/out/version"
	rm -rf "$dir"
	mv "$work/out" "$dir"
	rm -rf "$work"
	trap - EXIT
	say "arm64 kernel $ver cached in $dir"
fi
echo "$dir"
