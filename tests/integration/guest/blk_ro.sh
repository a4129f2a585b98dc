#!/bin/sh
# Guest side of t_blk_readonly.sh, on a read-only /dev/vda: reads work (HEAD-SHA), every kind of
# write fails: O_DIRECT (DIRECT-WRITE), buffered + fsync (BUF-WRITE), discard (DISCARD); the data
# read afterwards is unchanged (HEAD-SHA-AFTER). Then waits (hold) while the host looks at the VMM.
# The kernel refuses these writes itself, since the device offers VIRTIO_BLK_F_RO; that kvmini
# fails a write request that does reach it is tests/unit/test_virtio_blk.c's job.
# shellcheck disable=SC1091 # (the initramfs path)
. /tests/blk_lib.sh
info vda
say HEAD-SHA "$(rsha vda 0 4)"
run DIRECT-WRITE dd if=/dev/zero of=/dev/vda bs=4k count=1 oflag=direct conv=notrunc
run BUF-WRITE dd if=/dev/zero of=/dev/vda bs=4k count=1 seek=256 conv=notrunc,fsync
run DISCARD blkdiscard -o 1048576 -l 1048576 /dev/vda
say HEAD-SHA-AFTER "$(rsha vda 0 4)"
hold
echo KVMINI-BLK-DONE
