#!/bin/bash
# l1-initrd-arm64.sh KDIR BUSYBOX: the initramfs of nested-run.sh --arch arm64's L1 (an emulated
# arm64 host), cached in ~/.cache/kvmini/nested/l1-arm64-<hash>.cpio.gz; prints its path.
#
# L1 cannot run this machine's x86 programs, so unlike the x86 L1 it does not chroot into the
# host's root: its root is this initramfs, busybox (static, arm64) with every applet linked, and
# COMMAND runs there under busybox sh. The host's root is mounted read-only at /host. KVM is built
# into Debian's arm64 kernel; the modules are KDIR's: virtio PCI and console, 9p, loop, ext4, and
# the network pieces the tests use (tun, tap, macvtap, veth, bridge, 8021q, vhost).
# nested-run.sh appends a second cpio with /etc/run.conf (TOKEN, INTERACTIVE), /etc/shares
# ("TAG rw|ro PATH" lines, parents first) and /etc/cmd (the COMMAND script).
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 KDIR BUSYBOX" >&2; exit 2; }
kdir=$1 busybox=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KVMINI_CACHE:-$HOME/.cache/kvmini}/nested
# shellcheck source-path=SCRIPTDIR source=../guest/kmods.sh
. "$here/../guest/kmods.sh"

mods=$(kmod_order "$kdir/modules" virtio_pci virtio_blk virtio_console 9p 9pnet_virtio loop ext4 \
	tun tap macvtap veth bridge 8021q vhost_net | tr '\n' ' ')
key=$({
	sha256sum "${BASH_SOURCE[0]}" "$busybox" | cut -d' ' -f1
	echo "$kdir $mods"
	cat "$kdir/version" 2>/dev/null || true
} | sha256sum | cut -c1-16)
out=$cache/l1-arm64-$key.cpio.gz
if [ -f "$out" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
r=$work/root
mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,host,etc,run,root,tmp,var/tmp,mnt,lib/modules}
cp "$busybox" "$r/bin/busybox"
for m in $mods; do
	f=$(kmod_file "$kdir/modules" "$m")
	case $f in
	*.xz) xz -dc "$f" >"$r/lib/modules/$m.ko" ;;
	*.zst) zstd -dcq "$f" >"$r/lib/modules/$m.ko" ;;
	*.gz) gzip -dc "$f" >"$r/lib/modules/$m.ko" ;;
	*) cp "$f" "$r/lib/modules/$m.ko" ;;
	esac
done
echo "$mods" >"$r/lib/modules/order"
cat >"$r/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
. /etc/run.conf
bail() { echo "KVMINI-L1-FAIL-$TOKEN: $*"; echo "KVMINI-L1-EXIT-$TOKEN=125"; poweroff -f; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs shm /dev/shm
mount -t tmpfs run /run
ln -sf /proc/self/fd /dev/fd
for m in $(cat /lib/modules/order); do
	insmod "/lib/modules/$m.ko" 2>/dev/null
done
ip link set lo up
[ -c /dev/kvm ] || bail "no /dev/kvm in L1 (dmesg: $(dmesg | grep -i kvm | tail -n 2 | tr '\n' ' '))"
o=trans=virtio,version=9p2000.L,msize=1048576
mount -t 9p -o "$o,cache=loose,ro" hostroot /host || bail "cannot mount the host root over 9p"
while read -r tag mode path; do
	mkdir -p "$path" && mount -t 9p -o "$o,cache=none,$mode" "$tag" "$path" || bail "cannot mount $path over 9p"
done </etc/shares
# Heartbeat on a virtio serial port (virt has one UART): the host stops an L1 that stopped running.
hb=
for p in /sys/class/virtio-ports/*; do
	[ "$(cat "$p/name" 2>/dev/null)" = kvmini.hb ] && hb=/dev/${p##*/}
done
[ -n "$hb" ] || bail "no heartbeat port (virtio_console)"
(while :; do echo . >"$hb"; sleep 5; done) >/dev/null 2>&1 &
echo "KVMINI-L1-READY-$TOKEN"
if [ "$INTERACTIVE" = 1 ]; then
	setsid cttyhack sh /etc/cmd
else
	sh /etc/cmd </dev/null
fi
echo "KVMINI-L1-EXIT-$TOKEN=$?"
poweroff -f
INIT
chmod 755 "$r/init"
(cd "$r" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 >"$work/l1.cpio.gz")
mv "$work/l1.cpio.gz" "$out"
echo "$out"
