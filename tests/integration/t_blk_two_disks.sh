#!/bin/bash
# virtio-blk, two disks at once: vda (48 MiB, writeback) and vdb (32 MiB, cache=none: O_DIRECT),
# each with its own serial and 4 MiB of its own random data at the start. The guest (blk_two.sh)
# must see them in --disk order with their sizes and serials, read each one's data, write new
# data to each (O_DIRECT + fsync) and read it back; the host then finds that data in the right
# image and nothing else changed. While the guest waits, the host checks how kvmini opened the
# images: read-write, O_DIRECT only for cache=none.
# cache=none needs a file system with O_DIRECT: $T when it has it; inside the nested L1 (tmpfs
# and 9p only) an ext4 file system loop-mounted under $T; on a host whose $T lacks it, that part
# is left out (both disks writeback) with a note.
# timeout: 600
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

a=$T/a.img
if bdir=$(kv_odirect_dir); then
	bcache=none
else
	echo "  note: cache=none left out, vdb is writeback too: $KV_WHY"
	bdir=$T bcache=writeback
fi
b=$bdir/b.img
head -c 4M /dev/urandom >"$a"
truncate -s 48M "$a"
head -c 4M /dev/urandom >"$b"
truncate -s 32M "$b"
a_head=$(kv_sha "$a" 0 4) b_head=$(kv_sha "$b" 0 4)
a_rest=$(kv_sha "$a" 12 36) b_rest=$(kv_sha "$b" 12 20)

kv_hold_start two $((KV_BOOT_TIMEOUT + 120)) run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE kvmini.test=blk_two" --cpus 2 --mem 512M \
	--disk "path=$a,serial=disk-a" --disk "path=$b,format=raw,cache=$bcache,serial=disk-b"
if kv_wait_for two KVMINI-BLK-HOLD $((KV_BOOT_TIMEOUT + 60)) 1 "$KV_PID"; then
	vmm=$(kv_vmm_pid)
	for f in "$a" "$b"; do
		flags=$(kv_fd_flags "$vmm" "$f")
		want_direct=0
		[ "$f" = "$b" ] && [ "$bcache" = none ] && want_direct=1
		if [ -z "$flags" ]; then
			kv_fail "kvmini (pid ${vmm:-?}) has no descriptor open on $f"
			continue
		fi
		bad=0 direct=0
		for fl in $flags; do
			[ $((8#$fl & 3)) = 2 ] || bad=1 # O_RDWR
			[ $((8#$fl & 8#40000)) = 0 ] || direct=1
		done
		if [ "$bad" = 0 ] && [ "$direct" = "$want_direct" ]; then
			kv_ok "kvmini opened ${f##*/} read-write, O_DIRECT $([ "$direct" = 1 ] && echo on || echo off) (flags $flags)"
		else
			kv_fail "kvmini's descriptors on ${f##*/}: expected O_RDWR with O_DIRECT $([ "$want_direct" = 1 ] && echo on || echo off), saw flags $flags (octal)"
		fi
	done
else
	kv_fail "two: expected KVMINI-BLK-HOLD, not seen"
fi
kv_release
kv_wait_pid "$KV_PID" 120
check_rc two 0
check_out two KVMINI-BLK-DONE
check_no_out two KVMINI-DMESG-BAD
check_no_out two "I/O error"
for d in vda vdb; do
	case $d in
	vda) img=$a sectors=$((48 << 11)) serial=disk-a head=$a_head rest=$a_rest rest_mib=36 ;;
	vdb) img=$b sectors=$((32 << 11)) serial=disk-b head=$b_head rest=$b_rest rest_mib=20 ;;
	esac
	check_eq "$d present" 1 "$(kv_field two "KVMINI-BLK-$d-PRESENT")"
	check_eq "$d size (sectors)" "$sectors" "$(kv_field two "KVMINI-BLK-$d-SIZE")"
	check_eq "$d serial" "$serial" "$(kv_field two "KVMINI-BLK-$d-SERIAL")"
	check_eq "$d read-only" 0 "$(kv_field two "KVMINI-BLK-$d-RO")"
	check_eq "$d: the guest read ${img##*/}'s first 4 MiB" "$head" "$(kv_field two "KVMINI-BLK-$d-HEAD-SHA")"
	check_eq "$d: write exit status" 0 "$(kv_field two "KVMINI-BLK-$d-WRITE-RC")"
	wrote=$(kv_field two "KVMINI-BLK-$d-WROTE-SHA")
	[[ $wrote =~ ^[0-9a-f]{64}$ ]] || wrote="(no KVMINI-BLK-$d-WROTE-SHA)"
	check_eq "$d: the guest read back what it wrote" "$wrote" "$(kv_field two "KVMINI-BLK-$d-READ-SHA")"
	check_eq "$d: ${img##*/} holds the guest's data at 8 MiB (host)" "$wrote" "$(kv_sha "$img" 8 4)"
	check_eq "$d: ${img##*/}'s first 4 MiB unchanged (host)" "$head" "$(kv_sha "$img" 0 4)"
	check_eq "$d: ${img##*/} from 12 MiB on unchanged (host)" "$rest" "$(kv_sha "$img" 12 "$rest_mib")"
done
check_eq "a.img size (host)" $((48 << 20)) "$(stat -c %s "$a")"
check_eq "b.img size (host)" $((32 << 20)) "$(stat -c %s "$b")"
kv_finish
