#!/bin/sh
# Guest side of tests/integration/powercut.sh: an ext2 file system on /dev/vda with /file (16 MiB
# from /dev/urandom, SHA = its sha256), sync, then fsync on the disk (a FLUSH request: the VMM
# must have the data on stable storage when it completes), then SYNCED; then it idles until the
# power cut. kvmini.blk.noflush=1 leaves out every FLUSH (the negative control: the data must be lost).
# shellcheck disable=SC1091 # (the initramfs path)
. /tests/blk_lib.sh
info vda
mkdir -p /mnt
run MKFS mke2fs -F /dev/vda
# The negative control mounts with nobarrier: ext2 is served by the ext4 driver, whose sync_fs
# would otherwise send a FLUSH on `sync` by itself.
opts=
[ "$(arg blk.noflush)" = 1 ] && opts="-o nobarrier"
# shellcheck disable=SC2086
run MOUNT mount -t ext2 $opts /dev/vda /mnt
sum=$(dd if=/dev/urandom bs=1M count=16 iflag=fullblock 2>/dev/null | tee /mnt/file | sha -)
sync
if [ "$(arg blk.noflush)" = 1 ]; then
	say FLUSH skipped
else
	run FLUSH sync /dev/vda
fi
say SHA "$sum"
echo KVMINI-BLK-SYNCED
sleep 600
