#!/bin/sh
# Guest side of t_blk_discard.sh. Two 64 MiB disks:
#   vda: 40 MiB of random data written at 0 (O_DIRECT, fsync); KEEP-SHA hashes [16, 24) MiB.
#   vdb: an ext2 file system with a 16 MiB file written, synced, then deleted (blocks freed but
#        still allocated in the image).
# hold (the host measures what the images allocate), then:
#   vda: blkdiscard [0, 16) MiB (DISCARD); write-zeroes that may unmap on [24, 32) MiB (PUNCH:
#        fallocate PUNCH_HOLE on the disk, which the kernel sends as WRITE_ZEROES with the unmap
#        flag and no fallback); write-zeroes without unmap on [32, 40) MiB (ZERO: fallocate
#        ZERO_RANGE); each range hashed again as read back (O_DIRECT) afterwards.
#   vdb: fstrim on the mounted file system (FSTRIM), which discards its free blocks.
# shellcheck disable=SC1091 # (the initramfs path)
. /tests/blk_lib.sh
M=1048576
info vda
info vdb
mkdir -p /mnt
run WRITE dd if=/dev/urandom of=/dev/vda bs=1M count=40 iflag=fullblock oflag=direct conv=notrunc,fsync
say KEEP-SHA "$(rsha vda 16 8)"
run MKFS mke2fs -F /dev/vdb
run MOUNT mount -t ext2 /dev/vdb /mnt
run FILL dd if=/dev/urandom of=/mnt/file bs=1M count=16 iflag=fullblock conv=fsync
rm -f /mnt/file
sync
sync /dev/vdb
hold
run DISCARD blkdiscard -o 0 -l $((16 * M)) /dev/vda
say DISCARDED-SHA "$(rsha vda 0 16)"
if command -v kvmini-blkio >/dev/null; then
	run PUNCH kvmini-blkio punch /dev/vda $((24 * M)) $((8 * M))
	say PUNCHED-SHA "$(rsha vda 24 8)"
	run ZERO kvmini-blkio zero /dev/vda $((32 * M)) $((8 * M))
	say ZEROED-SHA "$(rsha vda 32 8)"
else
	say HELPER missing
fi
say KEEP-SHA-AFTER "$(rsha vda 16 8)"
run FSTRIM fstrim -v /mnt
say FSTRIM-OUT "$(cat /tmp/run.out)"
umount /mnt
dmesg_check
echo KVMINI-BLK-DONE
