#!/bin/bash
# powercut.sh BUILD_DIR: durability of flushed writes across a power cut (virtio-blk FLUSH must
# reach stable storage). Not a t_*.sh: it needs an L1 of its own, so run.sh runs it after the
# suite. Always takes the nested route (tests/nested/nested-run.sh), whatever /dev/kvm here is:
#   1. here: D, a 512 MiB sparse file with an ext4 file system (mkfs.ext4);
#   2. nested-run.sh --disk D --power-cut runs `powercut.sh --inner` in L1: it mounts D's file
#      system (L1's /dev/vda, default options), stops L1's periodic writeback (so that only
#      explicit flushes write anything: a missing fdatasync loses data for certain, not just
#      likely), creates a 64 MiB image /img there (written out, not sparse) and a 64 MiB qcow2
#      image /img.qcow2 (qemu-img create: it grows as the guest writes) and boots kvmini on them
#      (vda and vdb; guest blk_powercut.sh): on each, ext2, a 16 MiB random file, sync, a FLUSH
#      of the disk, SYNCED. Seeing that, it prints the guest's sha256s (KVMINI-PC-SHA=,
#      KVMINI-PC-QSHA=) and KVMINI-POWER-CUT: nested-run.sh kills QEMU at once (SIGKILL), with
#      kvmini and L2 still running;
#   3. here: a copy of D gets its journal replayed (e2fsck -fy), /img comes out with debugfs,
#      and /file out of that; its sha256 must be the guest's. If kvmini did not fdatasync on the
#      guest's FLUSH, the data was only in L1's page cache, lost with L1. /img.qcow2 comes out
#      too: qemu-img check must find no corruption (exit 0, or 3: leaked clusters only), and
#      /file in qemu's view of it (qemu-img convert) must have the guest's sha256: the FLUSH
#      must have made the image's metadata (L2 tables, refcounts, its size) durable as well.
# Prints one line as suite.sh does, "PASS powercut (Ns)" or "FAIL powercut (...)" with the
# log's tail, or "SKIP powercut: why"; exit 0, 1 or 77 (skipped: no QEMU, no e2fsprogs, no
# qemu-img). The log
# is BUILD_DIR/itest-logs/powercut.log. A run that never reached the power cut (L1 or the guest
# failed, a flake of the emulation) is retried once, shown as a RETRY line; a wrong hash is not.
# Environment: KVMINI_KERNEL/KVMINI_INITRD (else fetched/built as suite.sh does),
# KVMINI_POWERCUT_TIMEOUT (default 600 s for the nested run), KVMINI_POWERCUT_CONTROL=noflush
# (negative control: the guest skips its FLUSH; then this check should FAIL, proving it can).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

# --- inside L1 -------------------------------------------------------------------------------
if [ "${1:-}" = --inner ]; then
	export KVMINI=$2/kvmini KVMINI_TEST_TMP
	KVMINI_TEST_TMP=$(mktemp -d /run/kvmini-powercut.XXXXXX)
	# shellcheck source-path=SCRIPTDIR source=lib.sh
	. "$here/lib.sh"
	mnt=/run/powercut-fs
	mkdir -p "$mnt"
	[ -b /dev/vda ] || { echo "KVMINI-PC-ERROR=L1 has no /dev/vda (nested-run.sh --disk)"; exit 3; }
	mount /dev/vda "$mnt" || { echo "KVMINI-PC-ERROR=cannot mount L1's /dev/vda"; exit 3; }
	echo "L1: $(grep " $mnt " /proc/mounts)"
	# No periodic writeback in L1: its dirty pages reach the disk only when someone syncs.
	echo 0 >/proc/sys/vm/dirty_writeback_centisecs
	echo 360000 >/proc/sys/vm/dirty_expire_centisecs
	# Written out in full first: kvmini's writes then only overwrite blocks ext4 already has, so
	# nothing but an fdatasync takes them to L1's disk (writes that allocate blocks would be
	# written out by ext4's ordered-mode journal commit every 5 s, flush or no flush).
	dd if=/dev/zero of="$mnt/img" bs=1M count=64 conv=fsync status=none
	qemu-img create -f qcow2 "$mnt/img.qcow2" 64M >/dev/null || { echo "KVMINI-PC-ERROR=qemu-img create failed"; exit 3; }
	sync
	extra=
	[ "${KVMINI_POWERCUT_CONTROL:-}" != noflush ] || extra=" kvmini.blk.noflush=1"
	kv_start pc $((KV_BOOT_TIMEOUT + 120)) run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
		--cmdline "$KV_CMDLINE kvmini.test=blk_powercut$extra" --cpus 1 --mem 256M --disk "path=$mnt/img" \
		--disk "path=$mnt/img.qcow2,format=qcow2"
	if ! kv_wait_for pc KVMINI-BLK-SYNCED $((KV_BOOT_TIMEOUT + 100)) 1 "$KV_PID"; then
		kv_show pc 40
		echo "KVMINI-PC-ERROR=the guest did not reach SYNCED"
		exit 3
	fi
	tr -d '\r' <"$T/pc.out" | grep '^KVMINI-BLK-' | sed 's/^/L2: /'
	echo "KVMINI-PC-SHA=$(kv_field pc KVMINI-BLK-SHA)"
	echo "KVMINI-PC-QSHA=$(kv_field pc KVMINI-BLK-vdb-SHA)"
	echo "L1: the guest synced after $(($(date +%s) - KV_START))s; cutting the power"
	echo KVMINI-POWER-CUT
	sleep 60
	echo "KVMINI-PC-ERROR=still running 60s after KVMINI-POWER-CUT (was nested-run.sh given --power-cut?)"
	exit 3
fi

# --- here ------------------------------------------------------------------------------------
[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build=$(realpath "$1")
logs=$build/itest-logs
mkdir -p "$logs" 2>/dev/null || logs=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-itest-logs.XXXXXX")
log=$logs/powercut.log
skip() { echo "SKIP powercut: $*"; exit 77; }

[ -x "$build/kvmini" ] || { echo "FAIL powercut: $build/kvmini does not exist"; exit 1; }
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is missing (the power cut needs the nested harness; scripts/install-deps.sh)"
tools=()
command -v qemu-img >/dev/null || skip "qemu-img is missing (qemu-utils; scripts/install-deps.sh)"
for t in mkfs.ext4 e2fsck debugfs; do
	p=$(PATH=$PATH:/usr/sbin:/sbin command -v "$t") || skip "$t is missing (e2fsprogs; scripts/install-deps.sh)"
	tools+=("$p")
done
mkfs=${tools[0]} e2fsck=${tools[1]} debugfs=${tools[2]}
if [ -z "${KVMINI_KERNEL:-}" ]; then
	kdir=$("$root/tests/guest/fetch-kernel.sh") || { echo "FAIL powercut: cannot fetch the guest kernel"; exit 1; }
	export KVMINI_KERNEL_DIR=$kdir KVMINI_KERNEL=$kdir/vmlinuz
fi
if [ -z "${KVMINI_INITRD:-}" ]; then
	export KVMINI_INITRD=$build/guest/initrd.cpio.gz
	"$root/tests/guest/build-initrd.sh" "$KVMINI_INITRD" || { echo "FAIL powercut: cannot build the guest initrd"; exit 1; }
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-powercut.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'echo "powercut: interrupted"; exit 130' INT
trap 'echo "powercut: terminated"; exit 143' TERM HUP

# once: one attempt, output to the log. 0 passed, 1 failed, 3 the power cut did not happen.
once() {
	local d=$work/l1disk.img rc sha qsha got size fails=0
	rm -f "$work"/*
	echo "powercut: $(date -u +%FT%TZ) kvmini=$build/kvmini${KVMINI_POWERCUT_CONTROL:+ control=$KVMINI_POWERCUT_CONTROL}"
	if ! truncate -s 512M "$d" || ! "$mkfs" -q -F "$d"; then
		echo "FAIL: mkfs.ext4 on $d failed"
		return 1
	fi
	"$root/tests/nested/nested-run.sh" --timeout "${KVMINI_POWERCUT_TIMEOUT:-600}" --disk "$d" --power-cut -- \
		"$here/powercut.sh" --inner "$build" </dev/null 2>&1
	rc=$?
	echo "nested-run.sh exit status $rc (121: the power cut happened)"
	[ "$rc" = 121 ] || return 3
	sha=$(sed -n 's/^KVMINI-PC-SHA=//p' "$log" | tail -n 1)
	[[ $sha =~ ^[0-9a-f]{64}$ ]] || { echo "FAIL: no sha256 from the guest (KVMINI-PC-SHA), saw '$sha'"; return 1; }
	qsha=$(sed -n 's/^KVMINI-PC-QSHA=//p' "$log" | tail -n 1)
	[[ $qsha =~ ^[0-9a-f]{64}$ ]] || { echo "FAIL: no sha256 from the guest for the qcow2 disk (KVMINI-PC-QSHA), saw '$qsha'"; return 1; }

	# L1's disk as a reboot would find it: journal replayed (on a copy: keep the original).
	cp --sparse=always "$d" "$work/l1disk.fsck.img"
	"$e2fsck" -fy "$work/l1disk.fsck.img" >"$work/e2fsck.out" 2>&1
	rc=$?
	sed 's/^/  e2fsck: /' "$work/e2fsck.out" | tail -n 12
	if [ "$rc" -ge 4 ]; then
		echo "FAIL: e2fsck -fy on L1's disk left errors (exit $rc)"
		return 1
	fi
	echo "  ok: e2fsck -fy on L1's disk: exit $rc (journal replayed)"
	"$debugfs" -R "dump /img $work/img" "$work/l1disk.fsck.img" >"$work/debugfs1.out" 2>&1
	size=$(stat -c %s "$work/img" 2>/dev/null || echo none)
	if [ "$size" != $((64 << 20)) ]; then
		echo "FAIL: /img from L1's disk: expected 67108864 bytes, saw $size"
		sed 's/^/  debugfs: /' "$work/debugfs1.out"
		return 1
	fi
	echo "  ok: kvmini's image /img recovered from L1's disk ($size bytes)"
	"$e2fsck" -fn "$work/img" 2>&1 | tail -n 6 | sed 's/^/  e2fsck (guest fs, read-only check): /'
	"$debugfs" -R "dump /file $work/file" "$work/img" >"$work/debugfs2.out" 2>&1
	got=$(sha256sum <"$work/file" 2>/dev/null | cut -d' ' -f1)
	if [ ! -f "$work/file" ]; then
		echo "FAIL: the guest's /file is not in the recovered image (lost with L1's page cache: was the guest's FLUSH made durable?)"
		sed 's/^/  debugfs: /' "$work/debugfs2.out"
		fails=1
	elif [ "$got" = "$sha" ]; then
		echo "  ok: the guest's /file survived the power cut: sha256 $got"
	else
		echo "FAIL: the guest's /file after the power cut: expected sha256 $sha, saw $got ($(stat -c %s "$work/file") bytes, $(tr -d '\0' <"$work/file" | head -c 1M | wc -c) non-zero bytes in the first MiB): flushed data was lost"
		fails=1
	fi

	# The qcow2 image: consistent, and /file in it as the guest wrote it.
	"$debugfs" -R "dump /img.qcow2 $work/img.qcow2" "$work/l1disk.fsck.img" >"$work/debugfs3.out" 2>&1
	if [ ! -s "$work/img.qcow2" ]; then
		echo "FAIL: /img.qcow2 is not on L1's disk after the power cut"
		sed 's/^/  debugfs: /' "$work/debugfs3.out"
		return 1
	fi
	echo "  ok: kvmini's qcow2 image /img.qcow2 recovered from L1's disk ($(stat -c %s "$work/img.qcow2") bytes)"
	qemu-img check "$work/img.qcow2" >"$work/qcheck.out" 2>&1
	rc=$?
	sed 's/^/  qemu-img check: /' "$work/qcheck.out" | tail -n 8
	if [ "$rc" = 0 ] || [ "$rc" = 3 ]; then
		echo "  ok: qemu-img check on /img.qcow2: exit $rc (0: clean, 3: leaked clusters only)"
	else
		echo "FAIL: qemu-img check on /img.qcow2 after the power cut: expected exit 0 or 3, saw $rc"
		fails=1
	fi
	if ! qemu-img convert -O raw "$work/img.qcow2" "$work/qimg.raw" >"$work/convert.out" 2>&1; then
		echo "FAIL: qemu-img convert of /img.qcow2 failed: $(head -n 2 "$work/convert.out")"
		return 1
	fi
	"$debugfs" -R "dump /file $work/qfile" "$work/qimg.raw" >"$work/debugfs4.out" 2>&1
	if [ ! -f "$work/qfile" ]; then
		echo "FAIL: the guest's /file is not in the qcow2 image after the power cut (was the guest's FLUSH made durable, with the image's metadata?)"
		sed 's/^/  debugfs: /' "$work/debugfs4.out"
		return 1
	fi
	got=$(sha256sum <"$work/qfile" | cut -d' ' -f1)
	if [ "$got" = "$qsha" ]; then
		echo "  ok: the guest's /file in the qcow2 image survived the power cut: sha256 $got"
	else
		echo "FAIL: the guest's /file in the qcow2 image after the power cut: expected sha256 $qsha, saw $got ($(stat -c %s "$work/qfile") bytes): flushed data was lost"
		fails=1
	fi
	return "$fails"
}

start=$(date +%s)
attempt=1
while :; do
	once >"$log" 2>&1
	rc=$?
	if [ "$rc" != 3 ] || [ "$attempt" != 1 ]; then break; fi
	mv "$log" "$logs/powercut.attempt$attempt.log"
	echo "RETRY powercut: attempt $attempt did not reach the power cut: $(grep -m 2 -E 'KVMINI-PC-ERROR|^nested-run' "$logs/powercut.attempt$attempt.log" | tr '\n' ' ')(log: $logs/powercut.attempt$attempt.log)"
	attempt=2
done
secs=$(($(date +%s) - start))
note=""
[ "$attempt" = 1 ] || note=", on attempt $attempt"
if [ "$rc" = 0 ]; then
	echo "PASS powercut (${secs}s$note)"
	exit 0
fi
echo "FAIL powercut (exit $rc, ${secs}s); last lines of $log:"
tail -n 60 "$log" | sed 's/^/    /'
exit 1
