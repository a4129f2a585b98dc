#!/bin/sh
# Guest side of t_blk_two_disks.sh, on /dev/vda and /dev/vdb: for each, hash the first 4 MiB
# (HEAD-SHA, O_DIRECT), write 4 MiB of fresh random data at 8 MiB with O_DIRECT and fsync
# (WROTE-SHA), read it back (READ-SHA); then wait (hold) while the host looks at the VMM's
# open files.
# shellcheck disable=SC1091 # (the initramfs path)
. /tests/blk_lib.sh
for d in vda vdb; do
	info "$d" || continue
	say "$d-HEAD-SHA" "$(rsha "$d" 0 4)"
	dd if=/dev/urandom of="/tmp/w.$d" bs=1M count=4 iflag=fullblock 2>/dev/null
	say "$d-WROTE-SHA" "$(sha "/tmp/w.$d")"
	run "$d-WRITE" dd if="/tmp/w.$d" of="/dev/$d" bs=1M seek=8 oflag=direct conv=notrunc,fsync
	say "$d-READ-SHA" "$(rsha "$d" 8 4)"
	rm -f "/tmp/w.$d"
done
dmesg_check
hold
echo KVMINI-BLK-DONE
