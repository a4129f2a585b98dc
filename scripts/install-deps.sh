#!/bin/bash
# install-deps.sh: installs with apt-get everything kvmini needs to build and test (Debian 12).
# Idempotent: does nothing when every package is already installed (checked with dpkg-query);
# runs apt-get update only when a package is not known to apt or the install fails. Runs apt
# as root, through sudo when not root.
set -euo pipefail

PACKAGES=(
	# build
	build-essential gcc make pkg-config libcmocka-dev libfdt-dev libcap-ng-dev acpica-tools
	# least privilege: seccomp filters per thread (libcap-ng above drops the capabilities)
	libseccomp-dev
	# control socket: JSON requests, replies and events
	libjansson-dev
	# qcow2: deflate and zstd compressed clusters
	zlib1g-dev libzstd-dev
	# live migration and save/restore: XXH64 checks on the state stream
	libxxhash-dev
	# arm64 device tree unit test: dtc decompiles the generated blobs as an oracle
	device-tree-compiler
	# sanitizers, fuzzing, formatting
	clang libclang-rt-14-dev clang-format
	# tests: guests, the nested harness, initramfs, kernel unpacking
	qemu-system-x86 busybox-static cpio xz-utils zstd kmod util-linux procps
	# make ARCH=arm64 (the cross compiler; the arm64 libraries: scripts/arm64-sysroot.sh) and the
	# arm64 tests: the emulated arm64 host (qemu-system-aarch64) and static arm64 test programs
	qemu-system-arm gcc-aarch64-linux-gnu libc6-dev-arm64-cross
	# disk tests: mkfs.ext4, e2fsck and debugfs on images; coreutils (truncate, sha256sum, stat)
	e2fsprogs coreutils
	# qcow2 tests: qemu-img is the reference that makes, checks and compares images
	qemu-utils
	# network tests: they run inside the nested host, on network namespaces of its own
	iproute2 socat iperf3 ethtool tcpdump iputils-ping
	# control-socket tests: jq reads the JSON replies and events
	jq
	# migration tests: a relay that corrupts the stream, an ARP listener on the test bridge
	python3
	# request-path microbenchmark: callgrind and its client-request header (valgrind/callgrind.h)
	valgrind
	# make bench: the plot of docs/bench/latest.svg, fio in the block bench's guest, strace for
	# the set-up time before the first KVM_RUN
	gnuplot-nox fio strace
)

missing=()
for p in "${PACKAGES[@]}"; do
	if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" != "ii " ]; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#PACKAGES[@]} packages are installed"
	exit 0
fi
echo "install-deps: installing ${missing[*]}"

as_root=()
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || { echo "install-deps: not root and no sudo: run this as root" >&2; exit 1; }
	as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
apt_get() { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y "$@"; }

known=1
for p in "${missing[@]}"; do
	apt-cache show --no-all-versions "$p" >/dev/null 2>&1 || { known=0; break; }
done
if [ "$known" = 0 ]; then
	apt_get update
	apt_get install --no-install-recommends "${missing[@]}"
elif ! apt_get install --no-install-recommends "${missing[@]}"; then
	echo "install-deps: install failed; refreshing the package lists and trying again"
	apt_get update
	apt_get install --no-install-recommends "${missing[@]}"
fi
echo "install-deps: done"
