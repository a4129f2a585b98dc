#!/bin/bash
# virtio-blk, readonly=on: the guest sees a read-only disk (/sys/block/vda/ro = 1) whose data it
# can read; every write fails in the guest (O_DIRECT, buffered + fsync, discard) with an I/O
# error or, since the kernel itself refuses writes to a read-only disk, "Operation not
# permitted"; kvmini holds the image open read-only (checked in /proc while the guest waits); the
# image's content and timestamps are untouched.
# timeout: 500
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

img=$T/ro.img
head -c 32M /dev/urandom >"$img"
before=$(kv_sha "$img")
head4=$(kv_sha "$img" 0 4)
touch -d '2001-02-03 04:05:06' "$img"
mtime=$(stat -c %y "$img")

kv_hold_start ro $((KV_BOOT_TIMEOUT + 90)) run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE kvmini.test=blk_ro" --cpus 1 --mem 256M --disk "path=$img,readonly=on,serial=ro-disk"
if kv_wait_for ro KVMINI-BLK-HOLD $((KV_BOOT_TIMEOUT + 60)) 1 "$KV_PID"; then
	vmm=$(kv_vmm_pid)
	flags=$(kv_fd_flags "$vmm" "$img")
	bad=0
	for fl in $flags; do [ $((8#$fl & 3)) = 0 ] || bad=1; done
	if [ -z "$flags" ]; then
		kv_fail "kvmini (pid ${vmm:-?}) has no descriptor open on the image"
	elif [ "$bad" = 0 ]; then
		kv_ok "kvmini holds the image open read-only (flags $flags)"
	else
		kv_fail "kvmini's descriptors on the image: expected O_RDONLY only, saw flags $flags (octal)"
	fi
else
	kv_fail "ro: expected KVMINI-BLK-HOLD, not seen"
fi
kv_release
kv_wait_pid "$KV_PID" 120
check_rc ro 0
check_out ro KVMINI-BLK-DONE
check_eq "vda present" 1 "$(kv_field ro KVMINI-BLK-vda-PRESENT)"
check_eq "/sys/block/vda/ro" 1 "$(kv_field ro KVMINI-BLK-vda-RO)"
check_eq "vda size (sectors)" $((32 << 11)) "$(kv_field ro KVMINI-BLK-vda-SIZE)"
check_eq "vda serial" ro-disk "$(kv_field ro KVMINI-BLK-vda-SERIAL)"
check_eq "the guest reads the image's first 4 MiB" "$head4" "$(kv_field ro KVMINI-BLK-HEAD-SHA)"
for w in DIRECT-WRITE BUF-WRITE DISCARD; do
	rc=$(kv_field ro "KVMINI-BLK-$w-RC") err=$(kv_field ro "KVMINI-BLK-$w-ERR")
	if [ -z "$rc" ] || [ "$rc" = 0 ]; then
		kv_fail "$w: expected the guest's write to fail, saw exit status '${rc:-none}'"
	elif grep -qiE 'I/O error|Operation not permitted|Read-only|Permission denied|not supported' <<<"$err"; then
		kv_ok "$w fails in the guest: $err"
	else
		kv_fail "$w: expected an I/O error (or EPERM/EROFS), saw '$err' (exit $rc)"
	fi
done
check_eq "the guest reads the same data after its write attempts" "$head4" "$(kv_field ro KVMINI-BLK-HEAD-SHA-AFTER)"
check_no_out ro KVMINI-DMESG-BAD
check_eq "image sha256 (host)" "$before" "$(kv_sha "$img")"
check_eq "image mtime (host)" "$mtime" "$(stat -c %y "$img")"
check_eq "image size (host)" $((32 << 20)) "$(stat -c %s "$img")"
kv_finish
