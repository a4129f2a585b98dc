#!/bin/bash
# virtio-blk, data that lasts: a sparse 128 MiB raw image, 2 vCPUs. Boot 1 (guest blk_persist.sh,
# phase write): the guest sees the disk as vda with the right size, serial, one request queue
# per vCPU and a write-back cache (FLUSH), makes an ext2 file system, writes an 8 MiB random
# file, flushes, remounts and reads it back. On the host: the same file from the image (debugfs)
# has the same sha256, and e2fsck finds the file system clean. Boot 2 (phase verify): a new kvmini
# on the same image reads the same file.
# timeout: 900
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

img=$T/persist.img
serial=kvmini-persist-0042
cpus=2
truncate -s 128M "$img"
tmo=$((KV_BOOT_TIMEOUT + 300))

kv_run write "$tmo" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE kvmini.test=blk_persist kvmini.blk.phase=write" --cpus "$cpus" --mem 512M \
	--disk "path=$img,format=raw,serial=$serial"
check_rc write 0
check_out write KVMINI-BLK-DONE
check_eq "write: vda present" 1 "$(kv_field write KVMINI-BLK-vda-PRESENT)"
check_eq "write: vda size (512-byte sectors)" $((128 << 11)) "$(kv_field write KVMINI-BLK-vda-SIZE)"
check_eq "write: vda serial (/sys/block/vda/serial)" "$serial" "$(kv_field write KVMINI-BLK-vda-SERIAL)"
check_eq "write: vda request queues (/sys/block/vda/mq/*, one per vCPU)" "$cpus" "$(kv_field write KVMINI-BLK-vda-QUEUES)"
check_eq "write: vda read-only" 0 "$(kv_field write KVMINI-BLK-vda-RO)"
check_eq "write: vda cache mode (FLUSH offered)" "write back" "$(kv_field write KVMINI-BLK-vda-CACHE)"
check_eq "write: vda logical block size" 512 "$(kv_field write KVMINI-BLK-vda-LBS)"
for k in MKFS MOUNT FLUSH UMOUNT MOUNT-RO; do
	check_eq "write: $k exit status" 0 "$(kv_field write "KVMINI-BLK-$k-RC")"
done
check_eq "write: file size in the guest" $((8 << 20)) "$(kv_field write KVMINI-BLK-FILE-BYTES)"
sum=$(kv_field write KVMINI-BLK-WRITE-SHA)
if [[ $sum =~ ^[0-9a-f]{64}$ ]]; then
	kv_ok "write: the guest wrote /file, sha256 $sum"
else
	kv_fail "write: expected the sha256 of the written file (KVMINI-BLK-WRITE-SHA), saw '$sum'"
	sum=none
fi
check_eq "write: /file read back after remount (guest)" "$sum" "$(kv_field write KVMINI-BLK-READ-SHA)"
check_no_out write KVMINI-DMESG-BAD
check_no_out write "I/O error"

# The host's view of the same image.
check_eq "image size on the host (unchanged)" $((128 << 20)) "$(stat -c %s "$img")"
check_eq "host: /file in the image (debugfs dump)" "$sum" "$(kv_image_hash "$img" /file)"
if e2fsck=$(kv_tool e2fsck); then
	"$e2fsck" -fn "$img" >"$T/e2fsck.out" 2>&1
	rc=$?
	if [ "$rc" = 0 ]; then
		kv_ok "host: e2fsck -fn finds the guest's file system clean"
	else
		kv_fail "host: e2fsck -fn exit status $rc (expected 0):"
		tail -n 8 "$T/e2fsck.out" | sed 's/^/    /'
	fi
fi

# A second kvmini on the same image (its lock released by the first) reads the same data.
kv_run verify "$tmo" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE kvmini.test=blk_persist kvmini.blk.phase=verify" --cpus "$cpus" --mem 512M \
	--disk "path=$img,serial=$serial"
check_rc verify 0
check_out verify KVMINI-BLK-DONE
check_eq "verify: MOUNT-RO exit status" 0 "$(kv_field verify KVMINI-BLK-MOUNT-RO-RC)"
check_eq "verify: /file after a new boot" "$sum" "$(kv_field verify KVMINI-BLK-READ-SHA)"
check_no_out verify KVMINI-DMESG-BAD
kv_finish
