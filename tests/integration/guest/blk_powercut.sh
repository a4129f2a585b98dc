#!/bin/sh
# Guest side of tests/integration/powercut.sh, on /dev/vda and, when present, /dev/vdb (powercut.sh
# gives a qcow2 image there): on each, an ext2 file system with /file (16 MiB from /dev/urandom,
# SHA and vdb-SHA = their sha256), sync, then fsync on each disk (a FLUSH request: the VMM must
# have the data on stable storage when it completes), then SYNCED; then it idles until the power
# cut. kvmini.blk.noflush=1 leaves out every FLUSH (the negative control: the data must be lost).
# shellcheck disable=SC1091 # (the initramfs path)
. /tests/blk_lib.sh
# The negative control mounts with nobarrier: ext2 is served by the ext4 driver, whose sync_fs
# would otherwise send a FLUSH on `sync` by itself.
opts=
[ "$(arg blk.noflush)" = 1 ] && opts="-o nobarrier"
disks=
for d in vda vdb; do
	info "$d" || continue
	disks="$disks $d"
	mkdir -p "/mnt/$d"
	run "$d-MKFS" mke2fs -F "/dev/$d"
	# shellcheck disable=SC2086
	run "$d-MOUNT" mount -t ext2 $opts "/dev/$d" "/mnt/$d"
	sum=$(dd if=/dev/urandom bs=1M count=16 iflag=fullblock 2>/dev/null | tee "/mnt/$d/file" | sha -)
	if [ "$d" = vda ]; then say SHA "$sum"; else say "$d-SHA" "$sum"; fi
done
sync
for d in $disks; do
	if [ "$(arg blk.noflush)" = 1 ]; then
		say "$d-FLUSH" skipped
	else
		run "$d-FLUSH" sync "/dev/$d"
	fi
done
echo KVMINI-BLK-SYNCED
sleep 600
