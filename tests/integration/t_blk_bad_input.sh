#!/bin/bash
# virtio-blk, bad --disk input: each case must end kvmini with a non-zero status below 124 (no
# crash, no guest boot) and exactly one stderr line "kvmini: ..." that names the problem (one of
# the KEYWORDS, any case). Image problems: missing, a directory, not a regular file or block
# device, empty, a size not a multiple of 512, the same image twice, and an image in use by
# another kvmini (a guest is booted and kept waiting for that part; a read-only opener is
# refused too, since the running one holds it read-write). Option problems: no path=, unknown
# keys, bad values of readonly/cache/format/serial, too many disks.
# timeout: 400
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

K=(--kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" --cmdline "$KV_CMDLINE kvmini.test=basic" --mem 256M)
good=$T/good.img
truncate -s 16M "$good"
truncate -s 1000 "$T/odd.img"
: >"$T/empty.img"
mkdir -p "$T/a-directory"

# The image.
kv_bad "missing image" "no-such\\.img|no such file" run "${K[@]}" --disk "path=$T/no-such.img"
kv_bad "image is a directory" "directory" run "${K[@]}" --disk "path=$T/a-directory"
kv_bad "image is /dev/null (a character device)" "/dev/null" run "${K[@]}" --disk "path=/dev/null"
kv_bad "empty image" "empty\\.img" run "${K[@]}" --disk "path=$T/empty.img"
kv_bad "image size 1000, not a multiple of 512" "512" run "${K[@]}" --disk "path=$T/odd.img"
kv_bad "the same image twice" "given twice" run "${K[@]}" --disk "path=$good" --disk "path=$good"
# The option.
kv_bad "--disk without path=" "path" run "${K[@]}" --disk format=raw,readonly=on
kv_bad "--disk with an unknown key" "unknown key.*bogus" run "${K[@]}" --disk "path=$good,bogus=1"
kv_bad "--disk file= (a QEMU habit)" "unknown key.*file" run "${K[@]}" --disk "file=$good"
kv_bad "--disk readonly=bogus" "readonly" run "${K[@]}" --disk "path=$good,readonly=bogus"
kv_bad "--disk cache=directsync" "cache" run "${K[@]}" --disk "path=$good,cache=directsync"
kv_bad "--disk format=vmdk" "format" run "${K[@]}" --disk "path=$good,format=vmdk"
kv_bad "--disk serial longer than 20 bytes" "serial" run "${K[@]}" --disk "path=$good,serial=123456789012345678901"
kv_bad "--disk with an empty value" "disk" run "${K[@]}" --disk ""
disks=()
for i in $(seq 0 16); do
	truncate -s 1M "$T/many$i.img"
	disks+=(--disk "path=$T/many$i.img")
done
kv_bad "17 disks" "too many|at most" run "${K[@]}" "${disks[@]}"

# An image in use: a first kvmini holds it (its guest waits), a second one must be refused.
kv_hold_start holder $((KV_BOOT_TIMEOUT + 60)) run "${K[@]/kvmini.test=basic/kvmini.test=blk_hold}" --disk "path=$good"
if kv_wait_for holder KVMINI-BLK-HOLD "$KV_BOOT_TIMEOUT" 1 "$KV_PID"; then
	kv_ok "holder: the guest is up with the disk"
	holder=$KV_PID
	kv_bad "image in use by another kvmini (read-write)" "in use|locked" run "${K[@]}" --disk "path=$good"
	kv_bad "image in use by another kvmini (readonly=on)" "in use|locked" run "${K[@]}" --disk "path=$good,readonly=on"
	KV_PID=$holder
else
	kv_fail "holder: expected KVMINI-BLK-HOLD (a guest running with the disk), not seen"
fi
kv_release
kv_wait_pid "$KV_PID" 120
KV_LAST=holder
check_rc holder 0
check_out holder KVMINI-BLK-RELEASED
kv_finish
