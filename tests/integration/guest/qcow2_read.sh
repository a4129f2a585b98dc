#!/bin/sh
# Guest side of t_qcow2_matrix.sh: for every disk, what the guest sees (info) and the md5 of all
# of it as read back with O_DIRECT (KVMINI-BLK-vdX-MD5); no writes.
# shellcheck disable=SC1091 # (the initramfs path)
. /tests/blk_lib.sh
quiet
for p in /sys/block/vd*; do
	d=${p##*/}
	info "$d" || continue
	say "$d-MD5" "$(dmd5 "$d")"
done
kernel_errors
dmesg_check
echo KVMINI-BLK-DONE
