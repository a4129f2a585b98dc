#!/bin/bash
# virtio-blk, DISCARD and WRITE_ZEROES give space back: two sparse 64 MiB raw images on a file
# system with hole punching ($T: tmpfs inside the nested L1; skipped where $T cannot punch holes).
# The guest (blk_discard.sh) writes 40 MiB to vda and fills then deletes a 16 MiB file in an ext2
# file system on vdb, then waits while the host measures what each image allocates; then:
#   vda [0, 16) MiB: blkdiscard: must read as zeroes and be deallocated in the image;
#   vda [24, 32) MiB: write-zeroes allowing unmap (the kernel's WRITE_ZEROES with no fallback):
#       must succeed and read as zeroes (deallocation is the device's choice: reported);
#   vda [32, 40) MiB: write-zeroes without unmap: must read as zeroes;
#   vda [16, 24) MiB: untouched: the same data;
#   vdb: fstrim: must give back most of the deleted file's 16 MiB.
# The write-zeroes parts need the guest helper kvmini-blkio (tests/guest/build-initrd.sh builds
# it with a C compiler); without it they are left out with a note.
# timeout: 500
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

kv_can_punch "$T" || kv_skip "$T ($(stat -f -c %T "$T")) cannot punch holes: discard cannot give space back there"
a=$T/discard-a.img b=$T/discard-b.img
truncate -s 64M "$a" "$b"
M=1024 # KiB in a MiB

kv_hold_start discard $((KV_BOOT_TIMEOUT + 150)) run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE kvmini.test=blk_discard" --cpus 2 --mem 512M \
	--disk "path=$a,serial=discard-a" --disk "path=$b,serial=discard-b"
a1='' b1=''
if kv_wait_for discard KVMINI-BLK-HOLD $((KV_BOOT_TIMEOUT + 120)) 1 "$KV_PID"; then
	a1=$(kv_alloc_kib "$a") b1=$(kv_alloc_kib "$b")
	echo "  before discard: vda's image allocates ${a1} KiB, vdb's ${b1} KiB"
	echo "  vda's data ranges (KiB): $(kv_data_map "$a" | tr '\n' ' ')"
else
	kv_fail "discard: expected KVMINI-BLK-HOLD, not seen"
fi
kv_release
kv_wait_pid "$KV_PID" 180
check_rc discard 0
check_out discard KVMINI-BLK-DONE
check_no_out discard KVMINI-DMESG-BAD
check_no_out discard "I/O error"
for d in vda vdb; do
	dmax=$(kv_field discard "KVMINI-BLK-$d-DISCARD-MAX") wmax=$(kv_field discard "KVMINI-BLK-$d-WZ-MAX")
	check_range "$d: discard_max_bytes (DISCARD offered)" 512 $((1 << 62)) "$dmax"
	check_range "$d: write_zeroes_max_bytes (WRITE_ZEROES offered)" 512 $((1 << 62)) "$wmax"
done
for k in WRITE MKFS MOUNT FILL DISCARD FSTRIM; do
	check_eq "$k exit status" 0 "$(kv_field discard "KVMINI-BLK-$k-RC")"
done

# vda: contents.
keep=$(kv_field discard KVMINI-BLK-KEEP-SHA)
[[ $keep =~ ^[0-9a-f]{64}$ ]] || keep="(no KVMINI-BLK-KEEP-SHA)"
check_eq "vda [16, 24) MiB in the image (host) = what the guest wrote" "$keep" "$(kv_sha "$a" 16 8)"
check_eq "vda [16, 24) MiB read back by the guest after discard and write-zeroes" "$keep" "$(kv_field discard KVMINI-BLK-KEEP-SHA-AFTER)"
z16=$(kv_zero_sha 16) z8=$(kv_zero_sha 8)
check_eq "vda [0, 16) MiB after blkdiscard, read by the guest: zeroes" "$z16" "$(kv_field discard KVMINI-BLK-DISCARDED-SHA)"
check_eq "vda [0, 16) MiB after blkdiscard, in the image (host): zeroes" "$z16" "$(kv_sha "$a" 0 16)"
helper=1
if [ "$(kv_field discard KVMINI-BLK-HELPER)" = missing ]; then
	helper=0
	echo "  note: the guest has no kvmini-blkio (no C compiler when the initrd was built): write-zeroes parts left out"
else
	check_eq "PUNCH (write-zeroes, unmap allowed, no fallback) exit status" 0 "$(kv_field discard KVMINI-BLK-PUNCH-RC)"
	[ "$(kv_field discard KVMINI-BLK-PUNCH-RC)" = 0 ] || echo "    the guest said: $(kv_field discard KVMINI-BLK-PUNCH-ERR)"
	check_eq "vda [24, 32) MiB after write-zeroes (unmap), read by the guest: zeroes" "$z8" "$(kv_field discard KVMINI-BLK-PUNCHED-SHA)"
	check_eq "vda [24, 32) MiB after write-zeroes (unmap), in the image (host): zeroes" "$z8" "$(kv_sha "$a" 24 8)"
	check_eq "ZERO (write-zeroes, no unmap) exit status" 0 "$(kv_field discard KVMINI-BLK-ZERO-RC)"
	check_eq "vda [32, 40) MiB after write-zeroes, read by the guest: zeroes" "$z8" "$(kv_field discard KVMINI-BLK-ZEROED-SHA)"
	check_eq "vda [32, 40) MiB after write-zeroes, in the image (host): zeroes" "$z8" "$(kv_sha "$a" 32 8)"
fi
check_eq "vda [40, 64) MiB never written (host): zeroes" "$(kv_zero_sha 24)" "$(kv_sha "$a" 40 24)"

# vda: allocation. Data may remain in [16, 40) MiB only: [16, 24) kept, [24, 40) zeroed by
# write-zeroes (allocated or not, the device's choice) or, without the helper, still written.
a2=$(kv_alloc_kib "$a")
map=$(kv_data_map "$a" | tr '\n' ' ')
echo "  after: vda's image allocates ${a2} KiB; data ranges (KiB): ${map:-none}"
if [ -n "$a1" ]; then
	if [ "$a2" -le $((a1 - 16 * M)) ]; then
		kv_ok "vda's image gave back at least 16 MiB (${a1} KiB -> ${a2} KiB)"
	else
		kv_fail "vda's image: expected at least 16 MiB fewer allocated after blkdiscard, saw ${a1} KiB -> ${a2} KiB"
	fi
fi
inside=1 unmapped=1
for r in $map; do
	s=${r%-*} e=${r#*-}
	if [ "$s" -lt $((16 * M)) ] || [ "$e" -gt $((40 * M)) ]; then inside=0; fi
	if [ "$s" -lt $((32 * M)) ] && [ "$e" -gt $((24 * M)) ]; then unmapped=0; fi
done
if [ "$inside" = 1 ]; then
	kv_ok "vda's image: no data allocated in the discarded range [0, 16) MiB nor past 40 MiB"
else
	kv_fail "vda's image: expected no data in [0, 16) MiB (discarded) or past 40 MiB, saw data ranges (KiB) $map"
fi
if [ "$helper" = 1 ]; then
	echo "  note: write-zeroes with unmap allowed $([ "$unmapped" = 1 ] && echo "deallocated [24, 32) MiB" || echo "left [24, 32) MiB allocated (allowed)")"
fi

# vdb: fstrim gave back the deleted file's blocks.
b2=$(kv_alloc_kib "$b")
echo "  vdb: fstrim said '$(kv_field discard KVMINI-BLK-FSTRIM-OUT)'; its image allocates ${b1:-?} KiB -> ${b2} KiB"
if [ -n "$b1" ]; then
	if [ "$b1" -ge $((16 * M)) ] && [ "$b2" -le $((b1 - 12 * M)) ]; then
		kv_ok "vdb's image gave back at least 12 MiB after fstrim (${b1} KiB -> ${b2} KiB)"
	else
		kv_fail "vdb's image: expected at least 16 MiB allocated before fstrim and 12 MiB fewer after, saw ${b1} KiB -> ${b2} KiB"
	fi
fi
if e2fsck=$(kv_tool e2fsck); then
	if "$e2fsck" -fn "$b" >"$T/e2fsck.out" 2>&1; then
		kv_ok "vdb's file system is clean after fstrim (e2fsck -fn)"
	else
		kv_fail "vdb's file system after fstrim: e2fsck -fn failed:"
		tail -n 8 "$T/e2fsck.out" | sed 's/^/    /'
	fi
fi
kv_finish
