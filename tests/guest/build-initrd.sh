#!/bin/bash
# build-initrd.sh OUT.cpio.gz: the busybox initramfs for kvmini's test guests (L2).
#
# Contents: /bin/busybox (static; applet links are made at boot), /bin/kvmini-blkio (a small
# static helper for what busybox cannot do: write-zeroes requests and random O_DIRECT I/O; built
# from blkio_source below with ${CC:-cc} -static, left out with a warning when that fails),
# /bin/kvmini-tcp (bulk TCP send/receive in large writes, from tests/guest/kvmini-tcp.c),
# /bin/kvmini-mem (a self-checking memory-dirtying workload, tests/guest/kvmini-mem.c), the
# modules listed below taken from the kernel that fetch-kernel.sh caches (flat in /lib/modules,
# loaded in that order), every tests/integration/guest/*.sh as /tests/NAME.sh, and /init:
#   - prints KVMINI-INIT-START first (boot-time marker), mounts proc, sys, devtmpfs, loads modules,
#     starts busybox acpid: the power button (x86: ACPI; arm64: gpio-keys) prints KVMINI-POWER-BUTTON
#     and powers off;
#   - kernel command line has kvmini.test=NAME: runs /tests/NAME.sh, then `poweroff -f`;
#   - otherwise prints KVMINI-SHELL and runs an interactive shell on the console; `poweroff -f`
#     when it exits.
# The archive is cached in ~/.cache/kvmini/initrd/<hash of the inputs>.cpio.gz and OUT is only
# rewritten when the inputs changed. Environment: KVMINI_CACHE, KVMINI_KERNEL_DIR (a directory as
# printed by fetch-kernel.sh; default: run fetch-kernel.sh), KVMINI_BUSYBOX (default /bin/busybox).
#
# --arch arm64 (or KVMINI_GUEST_ARCH=arm64): the same initramfs for arm64 guests: Debian's
# busybox-static:arm64 (fetched with apt-arch.sh; KVMINI_BUSYBOX_ARM64 names another), the
# modules of fetch-kernel.sh --arch arm64 (KVMINI_KERNEL_DIR_ARM64 names another directory), in
# the order their dependencies need, and the helpers built with ${KVMINI_CC_ARM64:-aarch64-linux-gnu-gcc}
# (left out with a warning when it is missing).
set -euo pipefail

arch=${KVMINI_GUEST_ARCH:-x86_64}
if [ "${1:-}" = --arch ]; then
	arch=${2:?--arch needs x86_64 or arm64}
	shift 2
fi
[ $# -eq 1 ] || { echo "usage: $0 [--arch x86_64|arm64] OUT.cpio.gz" >&2; exit 2; }
out=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${KVMINI_CACHE:-$HOME/.cache/kvmini}/initrd
say() { echo "build-initrd: $*" >&2; }
die() { say "$*"; exit 1; }

MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk
failover net_failover virtio_net crc16 crc32c_generic mbcache jbd2 ext4 button evdev pvpanic pvpanic-pci"

case $arch in
x86_64 | amd64)
	arch=x86_64 cc=${CC:-cc}
	kdir=${KVMINI_KERNEL_DIR:-}
	[ -n "$kdir" ] || kdir=$("$here/fetch-kernel.sh")
	busybox=${KVMINI_BUSYBOX:-/bin/busybox}
	;;
arm64 | aarch64)
	arch=arm64 cc=${KVMINI_CC_ARM64:-aarch64-linux-gnu-gcc}
	cache=$cache-arm64
	kdir=${KVMINI_KERNEL_DIR_ARM64:-}
	[ -n "$kdir" ] || kdir=$("$here/fetch-kernel.sh" --arch arm64)
	busybox=${KVMINI_BUSYBOX_ARM64:-}
	if [ -z "$busybox" ]; then
		# shellcheck source-path=SCRIPTDIR source=apt-arch.sh
		. "$here/apt-arch.sh"
		apt_arch_init arm64 || true
		busybox=$(apt_arch_unpacked busybox-static)/bin/busybox || die "could not fetch busybox-static:arm64"
	fi
	# Names, then every module they need, dependencies first (no pvpanic, no ACPI button here: the
	# power button is a gpio-keys key on the PL061, whose driver is built in; evdev passes it on).
	# shellcheck source-path=SCRIPTDIR source=kmods.sh
	. "$here/kmods.sh"
	MODULES=$(kmod_order "$kdir/modules" virtio_pci virtio_mmio virtio_blk virtio_net crc32c_generic ext4 gpio_keys evdev | tr '\n' ' ')
	;;
*) die "unknown --arch $arch (x86_64 or arm64)" ;;
esac
[ -d "$kdir/modules" ] || die "no modules directory in $kdir"
[ -x "$busybox" ] || die "$busybox not found: install busybox-static (scripts/install-deps.sh)"
if command -v readelf >/dev/null && readelf -l "$busybox" 2>/dev/null | grep -q 'Requesting program interpreter'; then
	die "$busybox is dynamically linked: install busybox-static"
fi
guest_tests=()
while IFS= read -r f; do guest_tests+=("$f"); done < <(find "$root/tests/integration/guest" -maxdepth 1 -name '*.sh' 2>/dev/null | sort)

# The guest helper /bin/kvmini-blkio (this script is part of the cache key, so is its source).
blkio_source() {
	cat <<'BLKIO_SOURCE'
/* kvmini-blkio: block I/O the test guests' busybox cannot do. Built into the test initramfs
 * by tests/guest/build-initrd.sh (static). Usage:
 *   kvmini-blkio zero DEV OFF LEN    fallocate(ZERO_RANGE|KEEP_SIZE): WRITE_ZEROES without unmap
 *                                    (the kernel falls back to writing zeroes without the feature)
 *   kvmini-blkio punch DEV OFF LEN   fallocate(PUNCH_HOLE|KEEP_SIZE): WRITE_ZEROES that may unmap,
 *                                    no fallback (fails with EOPNOTSUPP without the feature)
 *   kvmini-blkio read|write DEV BS COUNT JOBS: COUNT random BS-aligned O_DIRECT transfers over
 *                                    the whole device by JOBS processes (JOBS requests in flight);
 *                                    prints "ops=N secs=S iops=I mbps=M"
 * OFF, LEN, BS: bytes, with an optional k, M or G suffix. Exit 0, or 1 with a message on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t num(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'M': v <<= 20; end++; break;
	case 'G': v <<= 30; end++; break;
	}
	if (*end || end == s) {
		fprintf(stderr, "kvmini-blkio: not a number: %s\n", s);
		exit(2);
	}
	return v;
}

static int die(const char *what, const char *dev)
{
	fprintf(stderr, "kvmini-blkio: %s %s: %s\n", what, dev, strerror(errno));
	return 1;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int job(const char *dev, int wr, uint64_t bs, uint64_t count, uint64_t seed)
{
	int fd = open(dev, (wr ? O_RDWR : O_RDONLY) | O_DIRECT);
	uint64_t size, blocks, x = seed, i;
	void *buf;
	if (fd < 0)
		return die("open", dev);
	if (ioctl(fd, BLKGETSIZE64, &size) < 0) /* a regular file */
		size = (uint64_t)lseek(fd, 0, SEEK_END);
	blocks = size / bs;
	if (!blocks || posix_memalign(&buf, 4096, bs))
		return 1;
	for (i = 0; i < bs; i++)
		((unsigned char *)buf)[i] = (unsigned char)(i * 131 + seed);
	for (i = 0; i < count; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		off_t off = (off_t)((x % blocks) * bs);
		ssize_t n = wr ? pwrite(fd, buf, bs, off) : pread(fd, buf, bs, off);
		if (n != (ssize_t)bs) {
			if (n >= 0)
				errno = EIO;
			return die(wr ? "pwrite" : "pread", dev);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && (!strcmp(argv[1], "zero") || !strcmp(argv[1], "punch"))) {
		int fd = open(argv[2], O_WRONLY);
		int mode = FALLOC_FL_KEEP_SIZE | (argv[1][0] == 'z' ? FALLOC_FL_ZERO_RANGE : FALLOC_FL_PUNCH_HOLE);
		if (fd < 0)
			return die("open", argv[2]);
		if (fallocate(fd, mode, (off_t)num(argv[3]), (off_t)num(argv[4])) < 0)
			return die(argv[1], argv[2]);
		return 0;
	}
	if (argc == 6 && (!strcmp(argv[1], "read") || !strcmp(argv[1], "write"))) {
		int wr = argv[1][0] == 'w', fails = 0;
		uint64_t bs = num(argv[3]), count = num(argv[4]), jobs = num(argv[5]), j;
		double t0, secs;
		if (!bs || bs % 512 || !jobs || jobs > 256) {
			fprintf(stderr, "kvmini-blkio: bad BS or JOBS\n");
			return 2;
		}
		t0 = now();
		for (j = 0; j < jobs; j++) {
			pid_t p = fork();
			if (p == 0)
				_exit(job(argv[2], wr, bs, count / jobs + (j < count % jobs), 0x9E3779B97F4A7C15ull ^ (j + 1)));
			if (p < 0)
				return die("fork", argv[2]);
		}
		for (j = 0; j < jobs; j++) {
			int st;
			if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
				fails++;
		}
		secs = now() - t0;
		if (fails)
			return 1;
		printf("ops=%llu secs=%.3f iops=%.0f mbps=%.1f\n", (unsigned long long)count, secs,
		       count / secs, count * bs / secs / 1e6);
		return 0;
	}
	fprintf(stderr, "usage: kvmini-blkio zero|punch DEV OFF LEN | read|write DEV BS COUNT JOBS\n");
	return 2;
}
BLKIO_SOURCE
}

# The cache key covers everything that goes into the archive.
key=$({
	sha256sum "${BASH_SOURCE[0]}" "$busybox" "$here"/kvmini-*.c | cut -d' ' -f1
	[ "$arch" = x86_64 ] || echo "$arch $cc $MODULES"
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
	mkdir -p "$r/mnt"
	blkio_source >"$work/kvmini-blkio.c"
	if ! "$cc" -static -O2 -o "$r/bin/kvmini-blkio" "$work/kvmini-blkio.c" >"$work/cc.log" 2>&1; then
		say "warning: could not build the guest helper kvmini-blkio (static C with $cc; needs gcc and libc6-dev, or gcc-aarch64-linux-gnu for arm64): left out"
		sed 's/^/    /' "$work/cc.log" | head -n 5 >&2
		rm -f "$r/bin/kvmini-blkio"
	fi
	for src in "$here"/kvmini-*.c; do
		b=$(basename "$src" .c)
		if ! "$cc" -static -O2 -o "$r/bin/$b" "$src" >"$work/cc.log" 2>&1; then
			say "warning: could not build the guest helper $b (static C with $cc; needs gcc and libc6-dev, or gcc-aarch64-linux-gnu for arm64): left out"
			sed 's/^/    /' "$work/cc.log" | head -n 5 >&2
			rm -f "$r/bin/$b"
		fi
	done
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
	# The power button (KEY_POWER through evdev: x86's ACPI button module, arm64's gpio_keys): busybox
	# acpid runs this.
	mkdir -p "$r/etc/acpi/PWRF"
	printf '#!/bin/sh\necho KVMINI-POWER-BUTTON >/dev/console\nsync\npoweroff -f\n' >"$r/etc/acpi/PWRF/00000080"
	chmod 755 "$r/etc/acpi/PWRF/00000080"
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
# Power button -> /etc/acpi/PWRF/00000080 (poweroff), as a distribution's acpid or logind would.
acpid -c /etc/acpi -l /tmp/acpid.log 2>/dev/null
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
