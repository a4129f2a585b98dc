#!/bin/bash
# fetch-kernel.sh: download Debian's stock x86-64 kernel (the package that linux-image-amd64
# depends on) into ~/.cache/kvmini/kernel/<version>/ and print that directory on stdout.
#
# The directory holds:
#   vmlinuz    the bzImage
#   vmlinux    the uncompressed ELF kernel taken out of the bzImage (for ELF/PVH boot); absent
#              when the extraction failed, with the reason in vmlinux.error
#   modules/   the package's /lib/modules/<version> tree
#   config     the kernel's .config
#   version    the package name and version
#
# Nothing is downloaded when the directory is already complete. Diagnostics go to stderr.
# Environment: KVMINI_CACHE (default ~/.cache/kvmini), KVMINI_KERNEL_PKG (a package name to use
# instead of asking apt which one linux-image-amd64 depends on).
#
# fetch-kernel.sh --arch arm64 (or KVMINI_GUEST_ARCH=arm64): Debian's stock arm64 kernel instead,
# in ~/.cache/kvmini/kernel-arm64/<version>/ (Image: the uncompressed arm64 Image; vmlinuz, modules/,
# config, version as above). apt's arm64 lists live in ~/.cache/kvmini/apt-arm64 (apt-arch.sh):
# this machine's apt configuration is left alone. The package is the x86 one's ABI with -arm64
# (linux-image-6.1.0-N-arm64) when the arm64 lists have it, else what linux-image-arm64 depends
# on; KVMINI_KERNEL_PKG_ARM64 names one instead.
set -euo pipefail

arch=${KVMINI_GUEST_ARCH:-x86_64}
if [ "${1:-}" = --arch ]; then
	arch=${2:?--arch needs x86_64 or arm64}
	shift 2
fi
case $arch in
x86_64 | amd64) ;;
arm64 | aarch64) exec "$(dirname "${BASH_SOURCE[0]}")/fetch-kernel-arm64.sh" ;;
*) echo "fetch-kernel: unknown --arch $arch (x86_64 or arm64)" >&2; exit 2 ;;
esac

cache=${KVMINI_CACHE:-$HOME/.cache/kvmini}/kernel
say() { echo "fetch-kernel: $*" >&2; }
die() { say "$*"; exit 1; }

# --- vmlinux extraction --------------------------------------------------------------------
u32le() { # FILE OFFSET -> decimal
	od -An -tu4 -j "$2" -N4 "$1" | tr -d ' \n'
}
extract_vmlinux() { # BZIMAGE OUTDIR -> 0 on success, else prints why on stderr
	local bz=$1 out=$2 setup_sects hdr pm_off off len magic tool tmp
	hdr=$(od -An -c -j 0x202 -N4 "$bz" | tr -d ' \n')
	[ "$hdr" = HdrS ] || { echo "no 'HdrS' setup header at 0x202: not a bzImage"; return 1; }
	setup_sects=$(od -An -tu1 -j 0x1f1 -N1 "$bz" | tr -d ' \n')
	[ "$setup_sects" -ne 0 ] || setup_sects=4
	pm_off=$(((setup_sects + 1) * 512))
	off=$((pm_off + $(u32le "$bz" $((0x248)))))
	len=$(u32le "$bz" $((0x24c)))
	[ "$len" -gt 4 ] || { echo "payload_length at 0x24c is $len: no compressed payload"; return 1; }
	[ $((off + len)) -le "$(stat -c %s "$bz")" ] || { echo "payload (offset $off, length $len) runs past the end of the file"; return 1; }
	magic=$(od -An -tx1 -j "$off" -N6 "$bz" | tr -d ' \n')
	case $magic in
	1f8b*) tool=(gzip -dc) ;;
	fd377a585a00) tool=(xz -dc --single-stream) ;;
	28b52ffd*) tool=(zstd -dcq) ;;
	5d0000*) tool=(xz -dc --format=lzma) ;;
	425a68*) tool=(bzip2 -dc) ;;
	02214c18*) tool=(lz4 -dc) ;;
	*) echo "unknown compression magic $magic at payload offset $off"; return 1 ;;
	esac
	command -v "${tool[0]}" >/dev/null || { echo "payload is ${tool[0]}-compressed but ${tool[0]} is not installed"; return 1; }
	# Every compressor but gzip gets the uncompressed size appended as 4 extra bytes: cut them off.
	[ "${tool[0]}" = gzip ] || len=$((len - 4))
	tmp=$out/vmlinux.part
	# gzip exits 2 on a mere warning (trailing garbage): judge by the result, not the status
	tail -c +$((off + 1)) "$bz" | head -c "$len" | "${tool[@]}" >"$tmp" 2>"$out/vmlinux.log" || true
	if [ "$(od -An -tx1 -N4 "$tmp" | tr -d ' \n')" != 7f454c46 ]; then
		echo "decompressing the ${tool[0]} payload did not give an ELF file: $(head -c 300 "$out/vmlinux.log")"
		rm -f "$tmp" "$out/vmlinux.log"
		return 1
	fi
	rm -f "$out/vmlinux.log"
	mv "$tmp" "$out/vmlinux"
}

# --- which package -------------------------------------------------------------------------
pkg_of_meta() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -1
}
apt_update() {
	if [ "$(id -u)" = 0 ]; then
		apt-get update -q >&2
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo -n apt-get update -q >&2
	else
		return 1
	fi
}

newest_cached() {
	local d
	# shellcheck disable=SC2012
	d=$(ls -1d "$cache"/*/ 2>/dev/null | sed 's:/$::' | sort -V | tail -1)
	[ -n "$d" ] && [ -f "$d/vmlinuz" ] && [ -d "$d/modules" ] && echo "$d"
}

pkg=${KVMINI_KERNEL_PKG:-}
[ -n "$pkg" ] || pkg=$(pkg_of_meta || true)
if [ -z "$pkg" ]; then
	# No package lists, or no network to fetch them: a cached kernel is good enough.
	if d=$(newest_cached); then
		say "apt does not name linux-image-amd64's kernel; using the cached $(basename "$d")"
		pkg=linux-image-$(basename "$d")
	else
		say "apt has no package lists; running apt-get update"
		apt_update || die "cannot run apt-get update (not root, no passwordless sudo): run 'sudo apt-get update' or scripts/install-deps.sh first"
		pkg=$(pkg_of_meta) || true
		[ -n "$pkg" ] || die "apt-cache depends linux-image-amd64 names no linux-image-*-amd64 package"
	fi
fi
ver=${pkg#linux-image-}
dir=$cache/$ver

if [ ! -f "$dir/vmlinuz" ] || [ ! -d "$dir/modules" ]; then
	mkdir -p "$cache"
	work=$(mktemp -d "$cache/.fetch.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	# As root, apt would hand the download to user _apt, who may not reach $HOME: keep it root.
	sandbox=()
	[ "$(id -u)" != 0 ] || sandbox=(-o APT::Sandbox::User=root)
	say "downloading $pkg"
	(cd "$work" && apt-get "${sandbox[@]}" download -q "$pkg" >&2) || {
		say "apt-get download $pkg failed; refreshing package lists and trying again"
		apt_update || die "apt-get download $pkg failed and apt-get update cannot run here"
		(cd "$work" && apt-get "${sandbox[@]}" download -q "$pkg" >&2) || die "apt-get download $pkg failed"
	}
	deb=$(ls "$work"/*.deb)
	dpkg-deb -x "$deb" "$work/x"
	mkdir -p "$work/out"
	cp "$work"/x/boot/vmlinuz-* "$work/out/vmlinuz"
	cp "$work"/x/boot/config-* "$work/out/config" 2>/dev/null || true
	mods=$(find "$work/x/lib/modules" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -1)
	[ -n "$mods" ] || die "$deb has no lib/modules directory"
	mv "$mods" "$work/out/modules"
	dpkg-deb -f "$deb" Package Version >"$work/out/version"
	rm -rf "$dir"
	mv "$work/out" "$dir"
	rm -rf "$work"
	trap - EXIT
	say "kernel $ver cached in $dir"
fi

if [ ! -f "$dir/vmlinux" ] && [ ! -f "$dir/vmlinux.error" ]; then
	if why=$(extract_vmlinux "$dir/vmlinuz" "$dir"); then
		say "extracted the ELF vmlinux ($(stat -c %s "$dir/vmlinux") bytes)"
	else
		echo "$why" >"$dir/vmlinux.error"
	fi
fi
if [ -f "$dir/vmlinux.error" ] && [ ! -f "$dir/vmlinux" ]; then
	say "could not extract vmlinux from $dir/vmlinuz: $(cat "$dir/vmlinux.error") (delete $dir/vmlinux.error to retry)"
fi
echo "$dir"
