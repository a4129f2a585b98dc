#!/bin/bash
# build-initrd.sh OUT.cpio.gz: the busybox initramfs for kvmini's test guests (L2).
#
# Contents: /bin/busybox (static; applet links are made at boot), the modules listed below
# taken from the kernel that fetch-kernel.sh caches (flat in /lib/modules, loaded in that
# order), every tests/integration/guest/*.sh as /tests/NAME.sh, and /init:
#   - prints KVMINI-INIT-START first (boot-time marker), mounts proc, sys, devtmpfs, loads modules;
#   - kernel command line has kvmini.test=NAME: runs /tests/NAME.sh, then `poweroff -f`;
#   - otherwise prints KVMINI-SHELL and runs an interactive shell on the console; `poweroff -f`
#     when it exits.
# The archive is cached in ~/.cache/kvmini/initrd/<hash of the inputs>.cpio.gz and OUT is only
# rewritten when the inputs changed. Environment: KVMINI_CACHE, KVMINI_KERNEL_DIR (a directory as
# printed by fetch-kernel.sh; default: run fetch-kernel.sh), KVMINI_BUSYBOX (default /bin/busybox).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUT.cpio.gz" >&2; exit 2; }
out=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${KVMINI_CACHE:-$HOME/.cache/kvmini}/initrd
say() { echo "build-initrd: $*" >&2; }
die() { say "$*"; exit 1; }

MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk
failover net_failover virtio_net crc16 crc32c_generic mbcache jbd2 ext4 button evdev pvpanic pvpanic-pci"

kdir=${KVMINI_KERNEL_DIR:-}
[ -n "$kdir" ] || kdir=$("$here/fetch-kernel.sh")
[ -d "$kdir/modules" ] || die "no modules directory in $kdir"
busybox=${KVMINI_BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || die "$busybox not found: install busybox-static (scripts/install-deps.sh)"
if command -v readelf >/dev/null && readelf -l "$busybox" 2>/dev/null | grep -q 'Requesting program interpreter'; then
	die "$busybox is dynamically linked: install busybox-static"
fi
guest_tests=()
while IFS= read -r f; do guest_tests+=("$f"); done < <(find "$root/tests/integration/guest" -maxdepth 1 -name '*.sh' 2>/dev/null | sort)

# The cache key covers everything that goes into the archive.
key=$({
	sha256sum "${BASH_SOURCE[0]}" "$busybox" | cut -d' ' -f1
	echo "$kdir"
	cat "$kdir/version" 2>/dev/null || true
	for f in "${guest_tests[@]}"; do
		echo "${f##*/}"
		sha256sum <"$f"
	done
} | sha256sum | cut -c1-16)
cached=$cache/$key.cpio.gz

if [ ! -f "$cached" ]; then
	mkdir -p "$cache"
	work=$(mktemp -d "$cache/.build.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	r=$work/root
	mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,lib/modules,tests,etc}
	cp "$busybox" "$r/bin/busybox"
	loaded=()
	for m in $MODULES; do
		f=$(find "$kdir/modules/kernel" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" \) | head -1)
		if [ -z "$f" ]; then
			if grep -q "/$m.ko\$" "$kdir/modules/modules.builtin" 2>/dev/null; then continue; fi
			say "warning: module $m not found in $kdir/modules (left out)"
			continue
		fi
		# Busybox insmod takes plain ELF modules: uncompress what the kernel ships compressed.
		case $f in
		*.ko.xz) xz -dc "$f" >"$r/lib/modules/$m.ko" ;;
		*.ko.zst) zstd -dcq "$f" >"$r/lib/modules/$m.ko" ;;
		*.ko.gz) gzip -dc "$f" >"$r/lib/modules/$m.ko" ;;
		*) cp "$f" "$r/lib/modules/$m.ko" ;;
		esac
		loaded+=("$m")
	done
	echo "${loaded[*]}" >"$r/lib/modules/order"
	for f in "${guest_tests[@]}"; do
		install -m 755 "$f" "$r/tests/${f##*/}"
	done
	cat >"$r/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox echo KVMINI-INIT-START
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TERM=linux
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
ln -sf /proc/self/fd /dev/fd
mount -t tmpfs tmpfs /tmp
for m in $(cat /lib/modules/order); do
	insmod "/lib/modules/$m.ko" >/dev/null 2>&1
done
ip link set lo up 2>/dev/null
test=
for arg in $(cat /proc/cmdline); do
	case "$arg" in kvmini.test=*) test=${arg#kvmini.test=} ;; esac
done
if [ -n "$test" ]; then
	if [ -f "/tests/$test.sh" ]; then
		sh "/tests/$test.sh"
	else
		echo "KVMINI-TEST-MISSING=$test"
	fi
	poweroff -f
fi
echo KVMINI-SHELL
cd /root
export PS1='kvmini# '
# cttyhack makes the console the shell's controlling terminal (job control, Ctrl-C).
if [ -e /bin/cttyhack ]; then setsid cttyhack sh -l; else sh -l; fi
poweroff -f
INIT
	chmod 755 "$r/init"
	(cd "$r" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -6 >"$work/initrd.cpio.gz")
	mv "$work/initrd.cpio.gz" "$cached"
	rm -rf "$work"
	trap - EXIT
	say "built $cached (${#loaded[@]} modules, ${#guest_tests[@]} guest tests)"
fi

if ! cmp -s "$cached" "$out" 2>/dev/null; then
	mkdir -p "$(dirname "$out")"
	cp "$cached" "$out.part"
	mv "$out.part" "$out"
fi
