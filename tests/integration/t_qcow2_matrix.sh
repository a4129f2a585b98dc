#!/bin/bash
# qcow2, reading what qemu-img makes: 16 images of the same 16 MiB content, one guest boot with
# all of them (vda..vdp). The content: a raw source (kv_qcow2_source: compressible and random
# data, written zeroes, 4 KiB and 512-byte data/zero turns, holes) with a few qemu-io writes on
# top (POST below: zero clusters, partial-cluster writes, also over compressed clusters, a write
# into an unallocated cluster, zeroes with unmap); ref.raw is the source with the same writes.
# The images (qemu-img convert -O qcow2 -o ..., then POST): compat 0.10 (v2) and 1.1 (v3);
# clusters of 512 B, 4 KiB, 64 KiB and 2 MiB; refcount_bits 1, 16 and 64; compressed clusters
# (zlib and zstd, v2 and v3); preallocation metadata, falloc and full; extended_l2; lazy
# refcounts; a chain qcow2 (64k) -> qcow2 (4k) -> raw with relative backing paths in other
# directories (kvmini runs in /), the same overlay again with backing=off, and a chain of three
# qcow2 (4k -> 2M -> v2 512 B, relative and absolute paths, format probed). The chains' layers
# hold data that upper layers overwrite or hide with zero clusters. The guest (qcow2_read.sh)
# hashes each disk (md5, O_DIRECT) and must see exactly qemu's view: ref.raw's content, and for the
# backing=off disk the overlay alone (a copy rebased onto nothing). Afterwards every image and
# backing file passes qemu-img check (exit 0), the read-write ones are closed cleanly (no dirty
# bit) and still compare equal to ref.raw, and the read-only ones and the backing files are
# unchanged, byte for byte.
# timeout: 600
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
kv_need_qemu_img

src=$T/src.raw ref=$T/ref.raw
kv_qcow2_source "$src" 16 || kv_abort "setup: the source image"
POST=('write -z 2M 2M' 'write -P 0xa5 5000 3000' 'write -z 520k 4k' 'write -P 0x3c 6293504 2048' 'write -z -u 12M 2M')
{ cp "$src" "$ref" && kv_qio "$ref" raw "${POST[@]}"; } || kv_abort "setup: ref.raw"
refsum=$(kv_md5 "$ref")

disks=() names=() imgs=() want=() ro=()
# add NAME IMG DISK-OPTS WANT-MD5: one more disk (vda, vdb, ... in this order).
add() {
	names+=("$1") imgs+=("$2") want+=("$4")
	disks+=(--disk "path=$2${3:+,$3}")
	if [[ ,$3, == *,readonly=on,* ]]; then ro+=("$2"); fi
}
# mk NAME DISK-OPTS CONVERT-OPTS...: NAME.qcow2 = qemu-img convert of the source, then POST.
mk() {
	local name=$1 opts=$2 img=$T/$1.qcow2
	shift 2
	kv_q "$name" qemu-img convert -f raw -O qcow2 "$@" "$src" "$img" && kv_qio "$img" qcow2 "${POST[@]}" || return 1
	add "$name" "$img" "$opts" "$refsum"
}
mk v2-64k format=qcow2 -o compat=0.10
mk v2-4k-zlib format=qcow2,readonly=on -c -o compat=0.10,cluster_size=4k
mk v3-512-r1 format=qcow2,readonly=on,cache-size=128K -o compat=1.1,cluster_size=512,refcount_bits=1
mk v3-4k-r64 readonly=on -o cluster_size=4k,refcount_bits=64
mk v3-2M "" -o cluster_size=2M
mk v3-64k-zlib format=qcow2 -c -o compression_type=zlib
mk v3-4k-zstd format=qcow2 -c -o compression_type=zstd,cluster_size=4k
mk v3-2M-zstd format=qcow2,readonly=on -c -o compression_type=zstd,cluster_size=2M
mk prealloc-metadata format=qcow2 -o preallocation=metadata
mk prealloc-falloc format=qcow2 -o preallocation=falloc,cluster_size=4k
mk prealloc-full format=qcow2 -o preallocation=full
mk extended-l2 format=qcow2,readonly=on -o extended_l2=on
mk lazy-refcounts format=qcow2 -o lazy_refcounts=on

# Chain A: top (v3 64k, chainA/top/) -> mid (v3 4k, chainA/mid/) -> base.raw (chainA/), with
# relative backing paths (kv_qcow2_chain), and POST on top.
A=$T/chainA
base=$A/base.raw mid=$A/mid/mid.qcow2 top=$A/top/top.qcow2
{ kv_qcow2_chain "$src" "$A" && kv_qio "$top" qcow2 "${POST[@]}"; } || kv_abort "setup: chain A"
add chainA-top "$top" format=qcow2 "$refsum"
# The same overlay without its backing file: qemu's view of a copy rebased onto nothing.
cp "$top" "$A/top/top-nobacking.qcow2"
cp "$top" "$T/nobacking.qcow2"
{ kv_q "rebase onto nothing" qemu-img rebase -u -b '' "$T/nobacking.qcow2" && kv_qview "$T/nobacking.qcow2" "$T/nobacking.raw"; } || kv_abort "setup: the backing=off reference"
add chainA-top-backing-off "$A/top/top-nobacking.qcow2" format=qcow2,backing=off,readonly=on "$(kv_md5 "$T/nobacking.raw")"

# Chain B: q2 (v3 4k, chainB/) -> sub/q1.qcow2 (relative; v3 2M) -> q0 (absolute path; v2, 512 B
# clusters, converted from a copy of the source with junk that q1 and q2 overwrite or zero).
B=$T/chainB
mkdir -p "$B/sub"
q0=$B/sub/q0.qcow2 q1=$B/sub/q1.qcow2 q2=$B/q2.qcow2
cp "$src" "$T/junk.raw"
{
	kv_qio "$T/junk.raw" raw 'write -P 0x66 1M 1M' 'write -P 0x77 10M 2M' &&
		kv_q "chain B q0" qemu-img convert -f raw -O qcow2 -o compat=0.10,cluster_size=512 "$T/junk.raw" "$q0" &&
		kv_q "chain B q1" qemu-img create -f qcow2 -o cluster_size=2M -b "$q0" -F qcow2 "$q1" &&
		kv_qrestore "$src" "$q1" qcow2 $((1 << 20)) $((1 << 20)) &&
		kv_q "chain B q2" qemu-img create -f qcow2 -o cluster_size=4k -b sub/q1.qcow2 -F qcow2 "$q2" &&
		kv_qio "$q2" qcow2 'write -z 10M 2M' "${POST[@]}"
} || kv_abort "setup: chain B"
add chainB-q2 "$q2" "" "$refsum"
backing=("$base" "$mid" "$q0" "$q1")

# The construction itself, judged by qemu: every image reads as intended and checks clean.
for i in "${!imgs[@]}"; do
	if [ "${names[i]}" = chainA-top-backing-off ]; then continue; fi
	qemu-img compare -f qcow2 -F raw "${imgs[i]}" "$ref" >"$T/qcompare.out" 2>&1 ||
		kv_fail "setup: ${names[i]}: qemu-img compare with ref.raw: $(head -n 1 "$T/qcompare.out")"
done
for f in "${imgs[@]}" "$mid" "$q0" "$q1"; do
	qemu-img check "$f" >/dev/null 2>&1 || kv_fail "setup: qemu-img check ${f#"$T"/} fails before the boot"
done
for i in "${!imgs[@]}"; do
	case ${names[i]} in
	*-zlib | *-zstd)
		n=$(qemu-img check --output=json "${imgs[i]}" 2>/dev/null | sed -n 's/.*"compressed-clusters": *\([0-9]*\).*/\1/p')
		t=$(qemu-img info "${imgs[i]}" 2>/dev/null | sed -n 's/^ *compression type: *//p')
		t=${t:-zlib} # (v2 images do not say: zlib is all they have)
		if [ "${n:-0}" -eq 0 ] || [ "$t" != "${names[i]##*-}" ]; then
			kv_fail "setup: ${names[i]}: expected ${names[i]##*-}-compressed clusters, saw ${n:-no} $t-compressed clusters"
		fi
		;;
	esac
done
[ "$KV_FAILS" = 0 ] || kv_finish
kv_ok "setup: ${#imgs[@]} images, each reads as intended (qemu-img compare) and checks clean"
declare -A before
for f in "${ro[@]}" "${backing[@]}"; do before[$f]=$(kv_sha "$f"); done

cd / || exit 1 # relative backing paths must be resolved against the overlay's directory
kv_run matrix $((KV_BOOT_TIMEOUT + 150)) run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE kvmini.test=qcow2_read" --cpus 2 --mem 512M "${disks[@]}"
check_rc matrix 0
check_out matrix KVMINI-BLK-DONE
check_no_out matrix KVMINI-DMESG-BAD
check_no_out matrix KVMINI-BLK-KERNEL # (I/O and file system errors in the kernel log)
letters=abcdefghijklmnop
for i in "${!imgs[@]}"; do
	d=vd${letters:i:1}
	check_eq "$d (${names[i]}) size (sectors)" $((16 << 11)) "$(kv_field matrix "KVMINI-BLK-$d-SIZE")"
	check_eq "$d (${names[i]}) content read by the guest = qemu's view" "${want[i]}" "$(kv_field matrix "KVMINI-BLK-$d-MD5")"
done
for f in "${imgs[@]}" "$mid" "$q0" "$q1"; do kv_qcheck "after the boot: ${f#"$T"/}" "$f" 0; done
for i in "${!imgs[@]}"; do
	[[ " ${ro[*]} " == *" ${imgs[i]} "* ]] && continue
	kv_qclean "after the boot (read-write): ${names[i]}" "${imgs[i]}"
	kv_qcompare "after the boot (read-write): ${names[i]}" "${imgs[i]}" "$ref"
done
for f in "${ro[@]}" "${backing[@]}"; do
	check_eq "unchanged (read-only or a backing file): ${f#"$T"/}" "${before[$f]}" "$(kv_sha "$f")"
done
kv_finish
