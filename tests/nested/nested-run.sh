#!/bin/bash
# nested-run.sh [--arch x86_64|arm64] [--timeout S] [--mem MiB] [--cpus N] [--rw DIR]... [--ro DIR]...
#               [--disk FILE]... [--power-cut] [--] COMMAND [ARGS...]
#
# Runs COMMAND where /dev/kvm exists although this machine has none: inside an L1 guest that QEMU
# emulates in software (TCG) with an AMD SVM CPU (qemu64,+svm,+npt), so that L1's stock Debian
# kernel loads kvm-amd. Inside L1, COMMAND runs as root, chrooted into this machine's root
# filesystem (shared read-only over 9p), in the current directory. Shared read-write at their
# own paths: the project directory, /tmp and every --rw DIR. tmpfs: /run, /dev/shm, /var/tmp.
# lo is up; the kvm, kvm-amd, 9p, virtio, loop, ext4, tun, tap, macvtap, veth, bridge, 8021q,
# vhost and vsock modules are loaded. L1 has no network and HOME is read-only there.
#
# Environment inside: CI, HOME, PATH, TERM, LANG and every KVMINI_* variable are passed on;
# KVMINI_NESTED=1 and TMPDIR=/run are set. COMMAND's stdout and stderr come back together on
# stdout, live. With a terminal on stdin and stdout, COMMAND gets the terminal (Ctrl-C goes to
# COMMAND); otherwise its stdin is /dev/null.
#
# --disk FILE (repeatable): FILE (a raw image or block device here) becomes a virtio disk of L1,
# /dev/vda, /dev/vdb, ... in order (QEMU -drive format=raw,if=virtio,cache=writeback: what L1
# writes and flushes lands in this machine's page cache, which survives QEMU being killed). L1
# does not mount it: COMMAND does.
# --power-cut: when COMMAND prints the line KVMINI-POWER-CUT (alone on its line), QEMU is killed
# at once with SIGKILL, mid-flight: whatever L1 had not written to its disks (its dirty page
# cache) is lost, as in a power cut; nested-run.sh then exits 121. Without --power-cut the line
# is just output. COMMAND should print it and then wait (e.g. sleep) rather than go on.
#
# Exit status: COMMAND's; 121 after a --power-cut kill; 124 when --timeout (default 600 s) ran
# out; 125 when L1 did not start, died before COMMAND finished, or wedged: L1's kernel reports
# "BUG: soft lockup", or L1's heartbeat (a line every second on its second serial port) stops
# for 60 s. L1 is then stopped at once.
# Stalls: QEMU's emulated x86 CPU now and then loses the request for an interrupt its local APIC
# holds, and L1 stops (see the comment at watchdog below). After KVMINI_NESTED_POKE_S (2) s
# without a beat L1 gets a key press through QEMU's monitor, which brings it back; stderr counts
# the stalls at the end.
# Defaults: --mem $KVMINI_NESTED_MEM or 4096, --cpus $KVMINI_NESTED_CPUS or 1 (one L1 vCPU is
# far more reliable than two, and no slower: see the comment at cpus= below). The kernel comes from
# tests/guest/fetch-kernel.sh; L1's initramfs is cached in ~/.cache/kvmini/nested/.
# KVMINI_NESTED_DEBUG=1 keeps L1's whole console log in /tmp/kvmini-nested-last.log.
# KVMINI_NESTED_WEDGE_DIR=DIR: at a wedge, L1's vCPU registers and local APIC (QEMU monitor,
# three times a second apart), QEMU's threads and L1's console log are kept in DIR.
# KVMINI_NESTED_POKE_CMDS: the monitor commands (';'-separated) sent to a stalled L1.
# Experiments: KVMINI_NESTED_ACCEL (default tcg,thread=multi; thread=single was far worse),
# KVMINI_NESTED_L1_CMDLINE (added to L1's kernel command line), KVMINI_NESTED_KVM_PARAMS and
# KVMINI_NESTED_KVM_AMD_PARAMS (for L1's kvm and kvm-amd modules, e.g. halt_poll_ns=0, npt=0).
# With 2 L1 vCPUs about 1 guest boot in 5-20 hung or reset by itself whatever these were set to;
# with 1, none did in our runs. Callers should still retry a failed guest (suite.sh does).
#
# --arch arm64: L1 is an emulated arm64 host instead (qemu-system-aarch64 -M virt,virtualization=on,
# gic-version=3 -cpu max: EL2 and a GICv3 emulated, Debian's stock arm64 kernel from
# tests/guest/fetch-kernel.sh --arch arm64 with KVM built in). It cannot run this machine's x86
# programs: COMMAND runs under busybox sh (static arm64 busybox, every applet) in L1's own root
# (tests/nested/l1-initrd-arm64.sh), not chrooted; so COMMAND must be a busybox sh script or a
# static arm64 program. The project directory, /tmp and each --rw DIR are shared read-write at
# their own paths as above, each --ro DIR read-only at its own path, the host's root read-only at
# /host. PATH is busybox's, HOME=/root (in L1's root), TMPDIR=/run (a tmpfs); CI, TERM, LANG and KVMINI_*
# are passed on, KVMINI_NESTED=1 and KVMINI_NESTED_ARCH=arm64 set. The heartbeat goes over a virtio
# serial port (virt has one UART); timeout, wedge and soft-lockup handling and exit statuses are
# the same. Defaults: --cpus $KVMINI_NESTED_CPUS or 2.
# KVMINI_NESTED_ACCEL and KVMINI_NESTED_L1_CMDLINE apply; KVMINI_NESTED_ARM64_CPU (default
# max,pauth-impdef=on: QEMU's own pointer-authentication hash, much cheaper under TCG).
#
# nested-run.sh --check-kvm: is nesting needed? Exits 0 when this machine's own /dev/kvm can run
# guests, else 1; prints one line saying why on stdout. Usable means: it opens read-write,
# answers KVM_GET_API_VERSION with 12, creates a VM, and (when QEMU is installed) QEMU -accel kvm
# boots the stock kernel through its initcalls within 30 s (some VMs offer a /dev/kvm that creates VMs
# but hangs real guests). The verdict is cached until the next host boot;
# KVMINI_FORCE_NESTED=1 answers "not usable" at once.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
project=$(cd "$here/../.." && pwd)
cache=${KVMINI_CACHE:-$HOME/.cache/kvmini}/nested
say() { echo "nested-run: $*" >&2; }
usage() { sed -n '2,3p' "${BASH_SOURCE[0]}" | sed '1s/^# /usage: /; 2s/^#/      /' >&2; exit 2; }

tmo=600 check_kvm=0 arch=x86_64
mem=${KVMINI_NESTED_MEM:-4096}
# One L1 vCPU: with two, L1 panicked ("corrupted stack end detected inside scheduler"),
# soft-locked or wedged in most full suite runs here, and 1 guest boot in 5-20 hung or reset;
# with one, 18 of 18 boots and full suite runs passed, just as fast (guests' vCPUs share it).
cpus=${KVMINI_NESTED_CPUS:-1}
rw=("$project" /tmp) ro=()
disks=() powercut=0 cpus_given=${KVMINI_NESTED_CPUS:-}
while [ $# -gt 0 ]; do
	case $1 in
	--arch)
		case $2 in
		x86_64 | amd64) arch=x86_64 ;;
		arm64 | aarch64) arch=arm64 ;;
		*) say "unknown --arch $2 (x86_64 or arm64)"; exit 2 ;;
		esac
		shift 2
		;;
	--timeout) tmo=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--cpus) cpus=$2 cpus_given=$2; shift 2 ;;
	--rw) rw+=("$(realpath "$2")"); shift 2 ;;
	# x86: the whole root is visible read-only already.
	--ro) ro+=("$(realpath "$2")"); shift 2 ;;
	--disk)
		[ -f "$2" ] || [ -b "$2" ] || { say "--disk $2: no such file or block device"; exit 2; }
		disks+=("$(realpath "$2")")
		shift 2
		;;
	--power-cut) powercut=1; shift ;;
	--check-kvm) check_kvm=1; shift ;;
	--) shift; break ;;
	-h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) say "unknown option $1"; usage ;;
	*) break ;;
	esac
done

# --check-kvm ------------------------------------------------------------------------------
kvm_verdict() {
	local kdir bootid cache_file log rc
	if [ -n "${KVMINI_FORCE_NESTED:-}" ]; then echo "KVMINI_FORCE_NESTED is set"; return 1; fi
	if [ ! -e /dev/kvm ]; then echo "/dev/kvm is missing"; return 1; fi
	if ! perl -e 'open(my $f, "+<", "/dev/kvm") or exit 1; my $v = ioctl($f, 0xAE00, 0);
		exit 1 unless defined $v && $v == 12; exit(defined ioctl($f, 0xAE01, 0) ? 0 : 1)' 2>/dev/null; then
		echo "/dev/kvm ($(stat -c '%A %U:%G' /dev/kvm)) does not open read-write or cannot create a VM"
		return 1
	fi
	command -v qemu-system-x86_64 >/dev/null || { echo "/dev/kvm creates VMs (QEMU is not installed to try a boot)"; return 0; }
	bootid=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
	cache_file=${TMPDIR:-/tmp}/kvmini-kvm-check.$(id -u).$bootid.$(stat -c %i.%Z /dev/kvm)
	if [ -f "$cache_file" ]; then
		cat "$cache_file"
		grep -q '^usable' "$cache_file"
		return
	fi
	kdir=${KVMINI_KERNEL_DIR:-$("$project/tests/guest/fetch-kernel.sh")} || { echo "no kernel to try /dev/kvm with"; return 1; }
	log=$(mktemp)
	rc=0
	timeout -k 5 30 qemu-system-x86_64 -accel kvm -M pc -m 256 -nodefaults -no-user-config -display none \
		-serial stdio -no-reboot -kernel "$kdir/vmlinuz" -append "console=ttyS0 panic=-1" </dev/null >"$log" 2>&1 || rc=$?
	# Without an initrd the kernel ends in "VFS: Unable to mount root fs", after all its initcalls.
	if grep -qE 'Unable to mount root fs|Freeing unused kernel' "$log"; then
		echo "usable: QEMU -accel kvm booted a kernel on it" >"$cache_file.part"
	elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		echo "/dev/kvm creates VMs but a kernel did not boot on it within 30 s (QEMU -accel kvm)" >"$cache_file.part"
	else
		echo "/dev/kvm creates VMs but QEMU -accel kvm failed (exit $rc): $(grep 'qemu-system-x86_64:' "$log" | grep -v warning: | head -n 1)" >"$cache_file.part"
	fi
	rm -f "$log"
	mv "$cache_file.part" "$cache_file"
	cat "$cache_file"
	grep -q '^usable' "$cache_file"
}
if [ "$check_kvm" = 1 ]; then
	kvm_verdict
	exit
fi

[ $# -gt 0 ] || usage
for v in "$tmo" "$mem" "$cpus"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { say "not a positive number: $v"; exit 2; }
done

command -v perl >/dev/null || { say "perl is missing"; exit 125; }
if [ "$arch" = arm64 ]; then
	qemu=qemu-system-aarch64 qemu_comm=qemu-system-aar
	command -v $qemu >/dev/null || { say "$qemu is missing (qemu-system-arm): run scripts/install-deps.sh"; exit 125; }
	[ -n "$cpus_given" ] || cpus=2
	kdir=${KVMINI_KERNEL_DIR_ARM64:-$("$project/tests/guest/fetch-kernel.sh" --arch arm64)} || { say "no arm64 kernel for L1 (tests/guest/fetch-kernel.sh --arch arm64 failed)"; exit 125; }
	busybox=${KVMINI_BUSYBOX_ARM64:-}
	if [ -z "$busybox" ]; then
		# shellcheck source-path=SCRIPTDIR source=../guest/apt-arch.sh
		. "$project/tests/guest/apt-arch.sh"
		apt_arch_init arm64 || true
		busybox=$(apt_arch_unpacked busybox-static)/bin/busybox || { say "no arm64 busybox (busybox-static:arm64 could not be fetched)"; exit 125; }
	fi
else
	qemu=qemu-system-x86_64 qemu_comm=qemu-system-x86
	command -v $qemu >/dev/null || { say "$qemu is missing: run scripts/install-deps.sh"; exit 125; }
	kdir=${KVMINI_KERNEL_DIR:-$("$project/tests/guest/fetch-kernel.sh")} || { say "no kernel for L1 (tests/guest/fetch-kernel.sh failed)"; exit 125; }
	busybox=${KVMINI_BUSYBOX:-/bin/busybox}
fi
[ -x "$busybox" ] || { say "$busybox is missing: install busybox-static"; exit 125; }

# Modules for L1, in load order (dependencies first).
L1_MODULES="irqbypass kvm ccp kvm-amd virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev
virtio_pci virtio_blk 9pnet 9pnet_virtio netfs fscache 9p loop crc16 crc32c_generic libcrc32c mbcache jbd2 ext4
tun macvlan tap macvtap veth llc stp bridge garp mrp 8021q vhost_iotlb vhost vhost_net vsock
vmw_vsock_virtio_transport_common vhost_vsock"

# --- L1's initramfs (cached) ----------------------------------------------------------------
key=$({
	sha256sum "${BASH_SOURCE[0]}" "$busybox" | cut -d' ' -f1
	echo "$kdir"
	cat "$kdir/version" 2>/dev/null || true
} | sha256sum | cut -c1-16)
base_initrd=$cache/l1-$key.cpio.gz
if [ "$arch" = arm64 ]; then
	base_initrd=$("$here/l1-initrd-arm64.sh" "$kdir" "$busybox") || { say "could not build the arm64 L1 initramfs"; exit 125; }
elif [ ! -f "$base_initrd" ]; then
	mkdir -p "$cache"
	work=$(mktemp -d "$cache/.build.XXXXXX")
	r=$work/root
	mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,host,etc,lib/modules}
	cp "$busybox" "$r/bin/busybox"
	order=()
	for m in $L1_MODULES; do
		f=$(find "$kdir/modules/kernel" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" \) | head -1)
		if [ -z "$f" ]; then
			grep -q "/$m.ko\$" "$kdir/modules/modules.builtin" 2>/dev/null || say "warning: no module $m in $kdir"
			continue
		fi
		case $f in
		*.xz) xz -dc "$f" >"$r/lib/modules/$m.ko" ;;
		*.zst) zstd -dcq "$f" >"$r/lib/modules/$m.ko" ;;
		*) cp "$f" "$r/lib/modules/$m.ko" ;;
		esac
		order+=("$m")
	done
	echo "${order[*]}" >"$r/lib/modules/order"
	cat >"$r/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
. /etc/run.conf
bail() { echo "KVMINI-L1-FAIL-$TOKEN: $*"; echo "KVMINI-L1-EXIT-$TOKEN=125"; poweroff -f; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /lib/modules/order); do
	# shellcheck disable=SC2086
	case $m in
	kvm) insmod /lib/modules/kvm.ko $KVM_PARAMS 2>/dev/null ;;
	kvm-amd) insmod /lib/modules/kvm-amd.ko $KVM_AMD_PARAMS 2>/dev/null ;;
	*) insmod "/lib/modules/$m.ko" 2>/dev/null ;;
	esac
done
ip link set lo up
[ -c /dev/kvm ] || bail "no /dev/kvm in L1 (kvm-amd did not load)"
o=trans=virtio,version=9p2000.L,msize=1048576
mount -t 9p -o "$o,cache=loose,ro" hostroot /host || bail "cannot mount the host root over 9p"
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts devpts /host/dev/pts
ln -sf /proc/self/fd /host/dev/fd
ln -sf /proc/self/fd/0 /host/dev/stdin
ln -sf /proc/self/fd/1 /host/dev/stdout
ln -sf /proc/self/fd/2 /host/dev/stderr
mount -t tmpfs shm /host/dev/shm
mount -t tmpfs run /host/run
mount -t tmpfs vartmp /host/var/tmp 2>/dev/null
i=0
while read -r path; do
	mount -t 9p -o "$o,cache=none" "rw$i" "/host$path" || bail "cannot mount $path over 9p"
	i=$((i + 1))
done </etc/rwlist
cp /etc/cmd /host/run/.kvmini-nested-cmd
# Heartbeat on the second serial port, every second: the host revives an L1 that stopped running
# its own code (a lost interrupt) within seconds, and stops one that stays stuck.
(while :; do echo . >/dev/ttyS1; sleep 1; done) >/dev/null 2>&1 &
echo "KVMINI-L1-READY-$TOKEN"
if [ "$INTERACTIVE" = 1 ]; then
	chroot /host /bin/bash /run/.kvmini-nested-cmd
else
	chroot /host /bin/bash /run/.kvmini-nested-cmd </dev/null
fi
echo "KVMINI-L1-EXIT-$TOKEN=$?"
poweroff -f
INIT
	chmod 755 "$r/init"
	(cd "$r" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 >"$work/l1.cpio.gz")
	mv "$work/l1.cpio.gz" "$base_initrd"
	rm -rf "$work"
fi

# --- this run: an extra cpio with the command, the shares and a token -----------------------
run=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-nested.XXXXXX")
qpid='' wdpid=''
# shellcheck disable=SC2317
kill_qemu() {
	local p
	p=$(cat "$run/qemu.pid" 2>/dev/null) || p=
	if [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$qemu_comm" ]; then
		kill "$p" 2>/dev/null || true
	fi
}
# shellcheck disable=SC2317
cleanup() {
	[ -z "$wdpid" ] || kill "$wdpid" 2>/dev/null || true
	[ -z "$qpid" ] || kill_qemu
	rm -rf "$run"
}
# watchdog: L1 beats every second on its second serial port (a file here) once it is up (every
# 5 s on arm64). QEMU 7.2's emulated x86 CPU now and then loses the request for an interrupt its
# local APIC holds: the timer interrupt sits in the IRR, never taken, and L1 stops, halted or
# running one guest vCPU for good (seen 2026-12-05 with the monitor: IRR 236, PPR 0x10, IF=1, the
# vCPU thread asleep or spinning; QEMU 10.0 from bookworm-backports does it too). An NMI or a
# stop/cont does not bring it back; any new interrupt does, since the APIC is then polled again.
# So after $hb_late s without a beat L1 gets a key press through QEMU's monitor (i8042 IRQ 1),
# and again every 2 s while it stays quiet. No beat for $hb_limit s, or none within $hb_first s
# of the start, means L1 is wedged for good: it is stopped. Stalls revived are counted in
# $run/stalls ("SECONDS PRESSES" a line) and summed up on stderr at the end.
hb_first=180 hb_limit=60 hb_late=${KVMINI_NESTED_POKE_S:-2}
# arm64's L1 beats every 5 s and has no such stalls (nor a keyboard): no key presses there.
[ "$arch" = x86_64 ] || hb_late=$((hb_limit + 1))
# l1_monitor WAIT CMD...: sends each CMD (a line) to QEMU's monitor, its replies (waiting up to
# WAIT s for them) on stdout; fails when there is no monitor socket or no socat.
l1_monitor() {
	local wait=$1
	shift
	[ -S "$run/monitor" ] && command -v socat >/dev/null || return 1
	printf '%s\n' "$@" | timeout 5 socat -t "$wait" - "UNIX-CONNECT:$run/monitor" 2>&1
}
# l1_poke: a key press (shift: no character) to L1 through QEMU's monitor; its interrupt makes
# the emulated CPU poll its APIC again. KVMINI_NESTED_POKE_CMDS: other monitor commands (';').
l1_poke() {
	local cmds=${KVMINI_NESTED_POKE_CMDS:-sendkey shift}
	l1_monitor 1 "${cmds//;/$'\n'}" >/dev/null || true
}
# wedge_snapshot: with KVMINI_NESTED_WEDGE_DIR set, L1's vCPU state from QEMU's monitor (three
# times, a second apart: does it move, is it halted) goes to a file there, to find out why.
wedge_snapshot() {
	local dir=${KVMINI_NESTED_WEDGE_DIR:-} f
	[ -n "$dir" ] && [ -S "$run/monitor" ] && command -v socat >/dev/null || return 0
	mkdir -p "$dir"
	f=$dir/wedge-$(date +%Y%m%d-%H%M%S).txt
	local p t
	p=$(cat "$run/qemu.pid" 2>/dev/null) || p=
	for _ in 1 2 3; do
		l1_monitor 2 'info cpus' 'info registers' 'info lapic' >>"$f" || true
		# QEMU's own threads: is the vCPU thread running, halted in QEMU, or blocked on a lock?
		for t in /proc/"$p"/task/*; do
			[ -n "$p" ] && echo "thread ${t##*/} $(cat "$t/comm" 2>/dev/null) $(cut -d' ' -f3,14,15 "$t/stat" 2>/dev/null) wchan=$(cat "$t/wchan" 2>/dev/null)"
		done >>"$f"
		sleep 1
	done
	cp "$run/l1.log" "$f.l1log" 2>/dev/null || true
	echo "nested-run: L1's state at the wedge: $f" >&2
}
watchdog() {
	local size last=0 quiet=0 waited=0 pokes=0 why
	while sleep 1; do
		size=$(stat -c %s "$run/heartbeat" 2>/dev/null || echo 0)
		waited=$((waited + 1))
		if [ "$size" != "$last" ]; then
			if [ "$pokes" != 0 ]; then
				echo "$quiet $pokes" >>"$run/stalls"
				[ "$quiet" -lt 10 ] || echo "nested-run: L1 had stalled for ${quiet}s (a lost interrupt); it runs again after $pokes key presses" >&2
			fi
			last=$size quiet=0 pokes=0
		else
			quiet=$((quiet + 1))
		fi
		if [ "$size" != 0 ] && [ "$quiet" -ge "$hb_late" ] && [ $(((quiet - hb_late) % 2)) = 0 ]; then
			l1_poke
			pokes=$((pokes + 1))
		fi
		if { [ "$size" = 0 ] && [ "$waited" -ge "$hb_first" ]; } || { [ "$size" != 0 ] && [ "$quiet" -ge "$hb_limit" ]; }; then
			why="no heartbeat from L1 for ${quiet}s"
			[ "$pokes" = 0 ] || why+=", $pokes key presses did not revive it"
			echo "$why" >"$run/wedged"
			wedge_snapshot
			kill_qemu
			return
		fi
	done
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM HUP
token=$$x$RANDOM$RANDOM
interactive=0
[ -t 0 ] && [ -t 1 ] && interactive=1
mkdir -p "$run/x/etc"
# sq WORD: WORD quoted for any POSIX shell (arm64's L1 runs busybox sh, without bash's $'...').
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
if [ "$arch" = arm64 ]; then
	{
		printf 'cd %s || exit 125\n' "$(sq "$PWD")"
		printf 'export TMPDIR=/run HOME=/root PATH=/bin:/sbin:/usr/bin:/usr/sbin KVMINI_NESTED=1 KVMINI_NESTED_ARCH=arm64\n'
		for v in CI TERM LANG $(compgen -e | grep '^KVMINI_' || true); do
			case $v in KVMINI_NESTED | KVMINI_NESTED_ARCH) continue ;; esac
			[ -n "${!v+x}" ] && printf 'export %s=%s\n' "$v" "$(sq "${!v}")"
		done
		if [ "$interactive" = 1 ] && size=$(stty size 2>/dev/null); then
			printf 'stty rows %d cols %d 2>/dev/null\n' "${size% *}" "${size#* }"
		fi
		printf 'exec'
		for a in "$@"; do printf ' %s' "$(sq "$a")"; done
		printf '\n'
	} >"$run/x/etc/cmd"
else
{
	printf 'cd %q || exit 125\n' "$PWD"
	printf 'export TMPDIR=/run KVMINI_NESTED=1\n'
	for v in CI HOME PATH TERM LANG $(compgen -e | grep '^KVMINI_' || true); do
		[ -n "${!v+x}" ] && [ "$v" != KVMINI_NESTED ] && printf 'export %s=%q\n' "$v" "${!v}"
	done
	if [ "$interactive" = 1 ] && size=$(stty size 2>/dev/null); then
		printf 'stty rows %d cols %d 2>/dev/null\n' "${size% *}" "${size#* }"
	fi
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$run/x/etc/cmd"
fi
printf 'TOKEN=%s\nINTERACTIVE=%s\nKVM_PARAMS=%q\nKVM_AMD_PARAMS=%q\n' "$token" "$interactive" \
	"${KVMINI_NESTED_KVM_PARAMS:-}" "${KVMINI_NESTED_KVM_AMD_PARAMS:-}" >"$run/x/etc/run.conf"
shares=()
i=0
: >"$run/x/etc/rwlist"
: >"$run/x/etc/shares"
declare -A seen=()
for d in "${rw[@]}"; do
	if [ ! -d "$d" ] || [ -n "${seen[$d]:-}" ]; then continue; fi
	seen[$d]=1
	echo "$d" >>"$run/x/etc/rwlist"
	echo "rw$i rw $d" >>"$run/x/etc/shares"
	shares+=(-virtfs "local,path=$d,mount_tag=rw$i,security_model=passthrough,multidevs=remap")
	i=$((i + 1))
done
# arm64: --ro DIRs too (x86's L1 sees this whole root read-only); mounted parents first.
if [ "$arch" = arm64 ]; then
	for d in "${ro[@]}"; do
		if [ ! -d "$d" ] || [ -n "${seen[$d]:-}" ]; then continue; fi
		seen[$d]=1
		echo "ro$i ro $d" >>"$run/x/etc/shares"
		shares+=(-virtfs "local,path=$d,mount_tag=ro$i,security_model=passthrough,readonly=on,multidevs=remap")
		i=$((i + 1))
	done
	sort -k3,3 -o "$run/x/etc/shares" "$run/x/etc/shares"
fi
(cd "$run/x" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1 >"$run/extra.cpio.gz")
cat "$base_initrd" "$run/extra.cpio.gz" >"$run/initrd.cpio.gz"

if [ "$interactive" = 1 ]; then
	serial=(-chardev "stdio,id=con,signal=off" -serial chardev:con)
else
	serial=(-chardev "stdio,id=con" -serial chardev:con)
fi

# The console carries firmware noise before the READY marker and \r\n line ends: pass on what
# lies between READY and EXIT, live (partial lines too), without \r; keep the rest for errors.
# shellcheck disable=SC2016
filter='
use strict; my ($tok, $rcfile, $logfile, $pidfile, $lockfile, $cutfile) = @ARGV; $| = 1;
open(my $log, ">", $logfile) or die; my $logged = 0;
my ($ready, $exit) = ("KVMINI-L1-READY-$tok\n", "KVMINI-L1-EXIT-$tok=");
my ($started, $done, $buf, $chunk, $scan, $inside) = (0, 0, "", "", "", 0);
while (sysread(STDIN, $chunk, 65536)) {
  next if $done;
  $chunk =~ tr/\r//d; $buf .= $chunk; $scan .= $chunk;
  # L1 kernel: "watchdog: BUG: soft lockup - CPU#1 stuck for 26s!": a vCPU of L1 is stuck in
  # an L2 guest for good (a flake of the emulated SVM); this L1 boot is lost, stop it now.
  while ($scan =~ s/^([^\n]*)\n//) {
    my $line = $1;
    $inside = 1 if $line eq "KVMINI-L1-READY-$tok";
    # --power-cut: COMMAND asks for L1 to be killed now (SIGKILL: no flush, no shutdown).
    if ($cutfile ne "" && $inside && $line eq "KVMINI-POWER-CUT") {
      if (open(my $p, "<", $pidfile)) { my $pid = <$p>; kill("KILL", $1) if $pid =~ /(\d+)/; }
      if (open(my $c, ">", $cutfile)) { print $c "$line\n"; close $c; }
      next;
    }
    next unless $line =~ /^\[\s*[\d.]+\] watchdog: BUG: soft lockup - CPU#\d+ stuck/;
    if (open(my $l, ">", $lockfile)) { print $l "$line\n"; close $l; }
    if (open(my $p, "<", $pidfile)) { my $pid = <$p>; kill("TERM", $1) if $pid =~ /(\d+)/; }
  }
  $scan = substr($scan, -4096) if length($scan) > 65536;
  if (!$started) {
    my $i = index($buf, $ready);
    if ($i < 0) {
      my $keep = length($buf) > 200 ? substr($buf, -200) : $buf;
      my $drop = substr($buf, 0, length($buf) - length($keep));
      if ($logged < (1 << 20)) { print $log $drop; $logged += length $drop; }
      $buf = $keep; next;
    }
    print $log substr($buf, 0, $i); $buf = substr($buf, $i + length $ready); $started = 1;
    print $log "(L1 ready)\n"; close $log;
  }
  my $i = index($buf, $exit);
  if ($i >= 0) {
    print substr($buf, 0, $i);
    if (substr($buf, $i + length $exit) =~ /^(\d+)\n/) {
      open(my $f, ">", $rcfile) or die; print $f "$1\n"; close $f; $done = 1; next;
    }
    $buf = substr($buf, $i); next;
  }
  # hold back a tail that may be the start of the EXIT marker
  my $hold = 0;
  for my $n (reverse 1 .. (length($exit) < length($buf) ? length($exit) : length($buf))) {
    if (substr($buf, -$n) eq substr($exit, 0, $n)) { $hold = $n; last; }
  }
  print substr($buf, 0, length($buf) - $hold); $buf = substr($buf, length($buf) - $hold);
}
print $buf if $started && !$done;
'

# --disk: virtio disks of L1 (commas in a QEMU option value are doubled).
drives=()
for d in "${disks[@]}"; do
	drives+=(-drive "file=${d//,/,,},format=raw,if=virtio,cache=writeback")
done
cutfile=
[ "$powercut" = 0 ] || cutfile=$run/powercut

# What differs between the two L1 machines; the heartbeat chardev is "hb" on both.
# shellcheck disable=SC2054 # (commas inside QEMU option values)
if [ "$arch" = arm64 ]; then
	machine=(-M virt,virtualization=on,gic-version=3 -cpu "${KVMINI_NESTED_ARM64_CPU:-max,pauth-impdef=on}"
		-kernel "$kdir/Image" -append "console=ttyAMA0 quiet loglevel=1 panic=-1 ${KVMINI_NESTED_L1_CMDLINE:-}")
	heartbeat=(-device virtio-serial-pci,id=vs -device virtserialport,bus=vs.0,chardev=hb,name=kvmini.hb)
else
	machine=(-M q35 -cpu qemu64,+svm,+npt -kernel "$kdir/vmlinuz"
		-append "console=ttyS0 quiet loglevel=1 panic=-1 ${KVMINI_NESTED_L1_CMDLINE:-}")
	heartbeat=(-serial chardev:hb)
fi
rcfile=$run/rc
l1log=$run/l1.log
exec 3<&0
set +e
(
	timeout --foreground -k 10 "$tmo" "$qemu" "${machine[@]}" -accel "${KVMINI_NESTED_ACCEL:-tcg,thread=multi}" \
		-smp "$cpus" -m "$mem" -initrd "$run/initrd.cpio.gz" \
		-virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap \
		"${shares[@]}" "${drives[@]}" -nodefaults -no-user-config -display none -no-reboot \
		"${serial[@]}" -chardev "file,id=hb,path=$run/heartbeat" "${heartbeat[@]}" \
		-monitor "unix:$run/monitor,server=on,wait=off" -pidfile "$run/qemu.pid" <&3 2>"$run/qemu.err"
	echo $? >"$run/qemu.rc"
) 2>>"$run/shell.err" | perl -e "$filter" "$token" "$rcfile" "$l1log" "$run/qemu.pid" "$run/softlockup" "$cutfile" &
qpid=$!
watchdog &
wdpid=$!
wait "$qpid"
kill "$wdpid" 2>/dev/null || true
wdpid=
if [ -s "$run/stalls" ]; then
	say "L1 stalled $(wc -l <"$run/stalls") times (QEMU's emulated CPU lost an interrupt; the longest for $(sort -n "$run/stalls" | tail -n 1 | cut -d' ' -f1)s), each time revived by a key press"
fi
set -e
exec 3<&-
qrc=$(cat "$run/qemu.rc" 2>/dev/null || echo 125)
flake="a known flake of QEMU's emulated SVM"
[ "$arch" = x86_64 ] || flake="under QEMU's emulated arm64 EL2"
if [ -n "${KVMINI_NESTED_DEBUG:-}" ]; then cp "$l1log" /tmp/kvmini-nested-last.log 2>/dev/null || true; fi
if [ -n "$cutfile" ] && [ -f "$cutfile" ]; then
	say "power cut: the command printed KVMINI-POWER-CUT, QEMU (L1) was killed with SIGKILL (qemu exit $qrc)"
	exit 121
fi
if [ -f "$rcfile" ]; then
	exit "$(cat "$rcfile")"
fi
if [ -f "$run/wedged" ]; then
	say "L1 stopped responding ($(cat "$run/wedged")): its vCPUs are stuck inside a guest, $flake; this L1 boot was stopped"
	exit 125
fi
if [ -f "$run/softlockup" ]; then
	say "L1 soft-locked ($(cat "$run/softlockup")): one of its vCPUs is stuck inside a guest, $flake; this L1 boot was stopped"
	exit 125
fi
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	say "timed out after ${tmo}s"
	exit 124
fi
if grep -q "KVMINI-L1-FAIL-$token" "$l1log" 2>/dev/null; then
	say "L1 could not run the command: $(sed -n "s/.*KVMINI-L1-FAIL-$token: //p" "$l1log" | head -1)"
elif grep -q '(L1 ready)' "$l1log" 2>/dev/null; then
	say "L1 stopped before the command finished (qemu exit $qrc)"
else
	say "L1 did not start (qemu exit $qrc); last console lines and qemu's stderr:"
	tail -n 15 "$l1log" >&2 2>/dev/null || true
	tail -n 5 "$run/qemu.err" >&2 2>/dev/null || true
fi
exit 125
