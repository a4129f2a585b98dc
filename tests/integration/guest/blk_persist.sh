#!/bin/sh
# Guest side of t_blk_persist.sh, on /dev/vda. kvmini.blk.phase=write: make an ext2 file system
# (busybox mke2fs), write /file (8 MiB from /dev/urandom, its sha256 taken on the way:
# WRITE-SHA), sync and flush the disk, unmount, drop the caches, mount again read-only and hash
# it as read back from the disk (READ-SHA). kvmini.blk.phase=verify: mount read-only, READ-SHA.
# shellcheck disable=SC1091 # (the initramfs path)
. /tests/blk_lib.sh
phase=$(arg blk.phase)
say PHASE "$phase"
info vda
mkdir -p /mnt
case $phase in
write)
	run MKFS mke2fs -F /dev/vda
	run MOUNT mount -t ext2 /dev/vda /mnt
	sum=$(dd if=/dev/urandom bs=1M count=8 iflag=fullblock 2>/dev/null | tee /mnt/file | sha -)
	say WRITE-SHA "$sum"
	say FILE-BYTES "$(stat -c %s /mnt/file)"
	sync
	# fsync on the disk itself: sends a FLUSH (a plain sync does not on ext2).
	run FLUSH sync /dev/vda
	run UMOUNT umount /mnt
	echo 3 >/proc/sys/vm/drop_caches
	;;
esac
run MOUNT-RO mount -t ext2 -o ro /dev/vda /mnt
say READ-SHA "$(sha /mnt/file)"
umount /mnt
dmesg_check
echo KVMINI-BLK-DONE
