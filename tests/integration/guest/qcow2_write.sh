#!/bin/sh
# Guest side of t_qcow2_write.sh. The kernel command line names three groups of disks
# (comma-separated): kvmini.q.dd, kvmini.q.fs and kvmini.q.fsb. All disks are worked on at once
# (a background job per disk); each job ends with KVMINI-BLK-vdX-ERRORS (failed commands, the
# first one as -FIRST-ERROR) and KVMINI-BLK-vdX-MD5, the md5 of the whole disk read back with
# O_DIRECT after its last write. The disks are 32 MiB.
#   dd: the same block writes on every disk of the group, in the same order, from one 4 MiB
#       pool of random data, all O_DIRECT through busybox dd: (A) 4 concurrent streams of small
#       writes (512 B to 16 KiB at 512-byte offsets, stream k only in the 16 KiB stripes s with
#       s % 4 = k: disjoint, so the result does not depend on their order, yet they meet in the
#       same clusters); (B) 8 writes of 64 KiB to 1 MiB at 512-byte offsets; (C) blkdiscard of
#       [8, 10), [20, 21) and [27, 30) MiB, write-zeroes without unmap of [14, 15) MiB and of
#       12 KiB at 17 MiB + 4 KiB, write-zeroes that may unmap of [22, 24) MiB (kvmini-blkio);
#       (D) 8 small writes into the discarded ranges; then a FLUSH (fsync on the disk).
#       Discards are 1 MiB-aligned: a qcow2 image may leave the parts of a cluster it cannot
#       free as they were, which would read differently from the raw reference.
#   fs: ext2 (busybox mke2fs), files written (8 MiB a, 4 MiB b, 40 small ones), a deleted,
#       fstrim (DISCARD of the free blocks), 6 MiB c written (into the freed space), part of b
#       overwritten, every third small file deleted; FILES-SHA (b, c, the small files) taken
#       before and after a remount read-only with the caches dropped (FILES-SHA-RO); unmounted.
#   fsb: an ext2 file system made on the host, with /f1 (4 MiB) and /f2 (2 MiB), in the
#       disk's backing file: F1-SHA as found; 1 MiB of f1 overwritten, f2 deleted, 4 MiB n
#       written, fstrim; FILES-SHA (f1, n) before and after a read-only remount; unmounted.
# shellcheck disable=SC1091 # (the initramfs path)
. /tests/blk_lib.sh
quiet
list() { arg "$1" | tr ',' ' '; }
DD=$(list q.dd) FS=$(list q.fs) FSB=$(list q.fsb)
for d in $DD $FS $FSB; do info "$d"; done
M=1048576

# The write plans, the same for every disk of the group: "BYTES POOL-OFFSET DISK-OFFSET" lines.
dd if=/dev/urandom of=/tmp/pool bs=1M count=4 iflag=fullblock 2>/dev/null
size=$(($(cat "/sys/block/${DD%% *}/size" 2>/dev/null || echo 65536) * 512))
awk -v size="$size" 'BEGIN {
	srand(20240611); pool = 8192; stripes = size / 16384
	for (k = 0; k < 4; k++)
		for (i = 0; i < 12; i++) {
			o = int(rand() * 32); l = 1 + int(rand() * (32 - o))
			s = 4 * int(rand() * stripes / 4) + k
			printf "%d %d %d\n", l * 512, int(rand() * (pool - l)) * 512, s * 16384 + o * 512 > ("/tmp/planA" k)
		}
	for (i = 0; i < 8; i++) {
		l = 128 + int(rand() * 1921)
		printf "%d %d %d\n", l * 512, int(rand() * (pool - l)) * 512, int(rand() * (size / 512 - l)) * 512 > "/tmp/planB"
	}
	split("8 27 8 27 9 28 29 20", r, " ")
	for (i = 1; i <= 8; i++) {
		l = 1 + int(rand() * 64)
		printf "%d %d %d\n", l * 512, int(rand() * (pool - l)) * 512, r[i] * 1048576 + int(rand() * (2048 - l)) * 512 > "/tmp/planD"
	}
}'

# Each job counts its failed commands (errs) and keeps the first one's message (first).
# Streams of one job set tag to keep their output apart.
step() {
	"$@" >"/tmp/step.$d$tag.out" 2>&1 && return 0
	errs=$((errs + 1))
	[ -n "$first" ] || first="$*: $(grep -vE 'records (in|out)|bytes .* copied' "/tmp/step.$d$tag.out" | head -n 1)"
	return 1
}
# plan FILE: the writes of a plan on /dev/$d, in order.
plan() {
	while read -r n p o; do
		step dd if=/tmp/pool of="/dev/$d" bs="$n" count=1 iflag=skip_bytes skip="$p" \
			oflag=seek_bytes,direct seek="$o" conv=notrunc
	done <"$1"
}
finish() {
	step sync "/dev/$d"
	say "$d-ERRORS" "$errs"
	[ -z "$first" ] || say "$d-FIRST-ERROR" "$first"
	say "$d-MD5" "$(dmd5 "$d")"
}

dd_job() {
	d=$1 errs=0 first='' tag=''
	for k in 0 1 2 3; do
		(
			tag=.$k
			plan "/tmp/planA$k"
			echo "$errs" >"/tmp/errs.$d.$k"
			echo "$first" >"/tmp/first.$d.$k"
		) &
	done
	wait
	for k in 0 1 2 3; do
		errs=$((errs + $(cat "/tmp/errs.$d.$k")))
		[ -n "$first" ] || first=$(cat "/tmp/first.$d.$k")
	done
	plan /tmp/planB
	step blkdiscard -o $((8 * M)) -l $((2 * M)) "/dev/$d"
	step blkdiscard -o $((20 * M)) -l $((1 * M)) "/dev/$d"
	step blkdiscard -o $((27 * M)) -l $((3 * M)) "/dev/$d"
	step kvmini-blkio zero "/dev/$d" $((14 * M)) $((1 * M))
	step kvmini-blkio zero "/dev/$d" $((17 * M + 4096)) 12288
	step kvmini-blkio punch "/dev/$d" $((22 * M)) $((2 * M))
	plan /tmp/planD
	finish
}

# files_sha DIR "NAMES": one sha256 over the named files of DIR (globs allowed), in order.
files_sha() {
	# shellcheck disable=SC2086 # (NAMES are words and globs)
	(cd "$1" && cat $2) | sha -
}

fs_job() {
	d=$1 errs=0 first='' tag='' m=/mnt/$1
	mkdir -p "$m"
	step mke2fs -F "/dev/$d"
	step mount -t ext2 "/dev/$d" "$m" || { finish; return; }
	step dd if=/dev/urandom of="$m/a" bs=1M count=8 iflag=fullblock
	step dd if=/dev/urandom of="$m/b" bs=1M count=4 iflag=fullblock
	i=1
	while [ $i -le 40 ]; do
		step dd if=/dev/urandom of="$m/s$i" bs=1k count=$((i * 37 % 61 + 1)) iflag=fullblock
		i=$((i + 1))
	done
	sync
	rm -f "$m/a"
	step fstrim "$m"
	step dd if=/dev/urandom of="$m/c" bs=1M count=6 iflag=fullblock conv=fsync
	step dd if=/dev/urandom of="$m/b" bs=64k count=4 seek=29 iflag=fullblock conv=notrunc
	i=3
	while [ $i -le 40 ]; do
		rm -f "$m/s$i"
		i=$((i + 3))
	done
	sync
	say "$d-FILES-SHA" "$(files_sha "$m" "b c s*")"
	step umount "$m"
	echo 3 >/proc/sys/vm/drop_caches
	step mount -t ext2 -o ro "/dev/$d" "$m"
	say "$d-FILES-SHA-RO" "$(files_sha "$m" "b c s*")"
	step umount "$m"
	finish
}

fsb_job() {
	d=$1 errs=0 first='' tag='' m=/mnt/$1
	mkdir -p "$m"
	step mount -t ext2 "/dev/$d" "$m" || { finish; return; }
	say "$d-F1-SHA" "$(sha "$m/f1")"
	step dd if=/dev/urandom of="$m/f1" bs=64k count=16 seek=16 iflag=fullblock conv=notrunc
	rm -f "$m/f2"
	step dd if=/dev/urandom of="$m/n" bs=1M count=4 iflag=fullblock
	sync
	step fstrim "$m"
	say "$d-FILES-SHA" "$(files_sha "$m" "f1 n")"
	step umount "$m"
	echo 3 >/proc/sys/vm/drop_caches
	step mount -t ext2 -o ro "/dev/$d" "$m"
	say "$d-FILES-SHA-RO" "$(files_sha "$m" "f1 n")"
	step umount "$m"
	finish
}

t0=$(cut -d. -f1 /proc/uptime)
for d in $DD; do dd_job "$d" & done
for d in $FS; do fs_job "$d" & done
for d in $FSB; do fsb_job "$d" & done
wait
say SECS $(($(cut -d. -f1 /proc/uptime) - t0))
kernel_errors
dmesg_check
echo KVMINI-BLK-DONE
