#!/bin/bash
# qcow2, writing: one guest boot with 15 disks of 32 MiB written at once (guest qcow2_write.sh),
# then qemu-img judges the images: qemu-img check exit 0 (after a clean poweroff: neither
# corruption nor leaked clusters), no dirty or corrupt bit, and qemu's view equal to the guest's.
#   dd group (vda..vdk): the same O_DIRECT writes, discards and write-zeroes on every disk, all
#     starting from the same content (kv_qcow2_source): vda a raw image (the reference), then
#     qcow2 v3 64 KiB clusters, v3 4 KiB, v2 (compat 0.10), a chain qcow2 -> qcow2 -> raw
#     (kv_qcow2_chain: discards must hide the backing files' data), lazy refcounts left dirty by
#     a qemu-io that aborted (refcounts wrong on disk until repaired), zlib-compressed clusters
#     (written over, discarded), cache=none with 4 KiB clusters and a metadata cache too small
#     to hold them all, preallocation=metadata, extended L2 entries (2 KiB subclusters), an
#     internal snapshot (which must stay as it was: the source).
#     Each qcow2 must compare identical to the raw one (qemu-img compare) and the guest must
#     have read the same from all of them.
#   fs group (vdl..vdn): new empty qcow2 images of 4 KiB, 512 B (refcount table growth) and
#     2 MiB clusters: ext2, files written, deleted, fstrim, more files into the freed space.
#   fsb (vdo): an overlay on a qcow2 that holds an ext2 file system made on the host: files
#     changed, deleted, added, fstrim.
#   For both, the whole disk as the guest read it last = qemu's view (qemu-img convert), whose
#   file system e2fsck finds clean; the guest read its files the same before and after a
#   read-only remount. Backing files stay unchanged.
# timeout: 700
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
kv_need_qemu_img

src=$T/src.raw ref=$T/ref.raw
kv_qcow2_source "$src" 32 || kv_abort "setup: the source image"
cp "$src" "$ref"
names=() imgs=() disks=() group=()
# add NAME GROUP IMG [DISK-OPTS]
add() {
	names+=("$1") group+=("$2") imgs+=("$3")
	disks+=(--disk "path=$3${4:+,$4}")
}
# conv NAME DIR DISK-OPTS CONVERT-OPTS...: DIR/NAME.qcow2 converted from the source, dd group.
conv() {
	local name=$1 img=$2/$1.qcow2 opts=$3
	shift 3
	kv_q "$name" qemu-img convert -f raw -O qcow2 "$@" "$src" "$img" && add "$name" dd "$img" "$opts"
}

add ref dd "$ref" format=raw
conv v3-64k "$T" format=qcow2
conv v3-4k "$T" format=qcow2 -o cluster_size=4k
conv v2-64k "$T" format=qcow2 -o compat=0.10
kv_qcow2_chain "$src" "$T/chain" || kv_abort "setup: the backing chain"
add chain dd "$T/chain/top/top.qcow2" format=qcow2
# Lazy refcounts, dirty: qemu-io allocates clusters (writing the data they already read as) and
# aborts before it writes the refcounts: qemu-img check must find errors (it is repaired when
# opened read-write).
lazy=$T/lazy-dirty.qcow2
kv_q lazy-dirty qemu-img convert -f raw -O qcow2 -o lazy_refcounts=on "$src" "$lazy" || kv_finish
dd if="$src" of="$T/piece" bs=64k skip=$((17 << 4)) count=1 status=none
(
	ulimit -c 0
	qemu-io -f qcow2 -c 'write -P 0 6M 64k' -c "write -s $T/piece 17M 64k" -c 'write -P 0 27M 128k' -c abort "$lazy"
	true # (so that this subshell, not the test, reports the abort)
) >"$T/abort.out" 2>&1
qemu-img check "$lazy" >"$T/lazy-check.out" 2>&1
rc=$?
if [ "$rc" = 2 ] && qemu-img info --output=json "$lazy" | grep -q '"dirty-flag": true'; then
	kv_ok "setup: lazy-dirty.qcow2 is dirty with refcounts to repair (qemu-img check exit 2)"
else
	kv_fail "setup: lazy-dirty.qcow2: expected the dirty bit and qemu-img check exit 2, saw exit $rc"
fi
add lazy-dirty dd "$lazy" format=qcow2
conv zlib "$T" format=qcow2 -c -o compression_type=zlib
# cache=none (O_DIRECT) needs a file system that has it ($T inside the nested L1: a loop-mounted
# ext4, see kv_odirect_dir); 4 KiB clusters with a 16 KiB metadata cache, far less than the 16
# L2 tables and 4 refcount blocks it needs: the cache must evict, write back and reload.
if kv_odirect_dir >"$T/odirect.dir"; then
	conv direct "$(cat "$T/odirect.dir")" format=qcow2,cache=none,cache-size=16K -o cluster_size=4k
else
	echo "  note: cache=none left out (writeback): $KV_WHY"
	conv direct "$T" format=qcow2,cache-size=16K -o cluster_size=4k
fi
conv prealloc-metadata "$T" format=qcow2 -o preallocation=metadata
conv extended-l2 "$T" format=qcow2 -o extended_l2=on
# An internal snapshot: every cluster shared (refcount 2), so each write copies.
conv snapshot "$T" format=qcow2 && kv_q "snapshot" qemu-img snapshot -c before "$T/snapshot.qcow2"

for c in 4k 512 2M; do
	kv_q "fs-$c" qemu-img create -f qcow2 -o "cluster_size=$c" "$T/fs-$c.qcow2" 32M && add "fs-$c" fs "$T/fs-$c.qcow2" format=qcow2
done

# fsb: ext2 made here with /f1 (4 MiB) and /f2 (2 MiB), in a qcow2 backing file; the overlay
# refers to it as ../base.qcow2.
{ mkfs=$(kv_tool mkfs.ext4) && debugfs=$(kv_tool debugfs) && e2fsck=$(kv_tool e2fsck); } || kv_abort "setup: e2fsprogs is missing"
mkdir -p "$T/fsb/over"
fsbase=$T/fsb/base.qcow2 over=$T/fsb/over/over.qcow2
head -c 4M /dev/urandom >"$T/f1"
head -c 2M /dev/urandom >"$T/f2"
f1sha=$(kv_sha "$T/f1")
truncate -s 32M "$T/fsb.raw"
{
	"$mkfs" -q -F -t ext2 "$T/fsb.raw" >"$T/mkfs.out" 2>&1 &&
		"$debugfs" -w -R "write $T/f1 f1" "$T/fsb.raw" >"$T/debugfs.out" 2>&1 &&
		"$debugfs" -w -R "write $T/f2 f2" "$T/fsb.raw" >>"$T/debugfs.out" 2>&1 &&
		[ "$(kv_image_hash "$T/fsb.raw" /f1)" = "$f1sha" ]
} || kv_abort "setup: an ext2 file system with /f1 and /f2 ($(cat "$T/mkfs.out" "$T/debugfs.out" | head -n 3))"
{
	kv_q fsb-base qemu-img convert -f raw -O qcow2 "$T/fsb.raw" "$fsbase" &&
		kv_q fsb-overlay qemu-img create -f qcow2 -b ../base.qcow2 -F qcow2 "$over"
} || kv_finish
add fsb fsb "$over" format=qcow2
for i in "${!imgs[@]}"; do
	if [ "${group[i]}" != dd ] || [ "${names[i]}" = ref ]; then continue; fi
	qemu-img compare -f qcow2 -F raw "${imgs[i]}" "$ref" >"$T/qcompare.out" 2>&1 ||
		kv_fail "setup: ${names[i]}: qemu-img compare with the source: $(head -n 1 "$T/qcompare.out")"
done
[ "$KV_FAILS" = 0 ] || kv_finish
backing=("$T/chain/base.raw" "$T/chain/mid/mid.qcow2" "$fsbase")
declare -A before
for f in "${backing[@]}"; do before[$f]=$(kv_sha "$f"); done

letters=abcdefghijklmnop
dd_list='' fs_list='' fsb_list=''
for i in "${!imgs[@]}"; do
	d=vd${letters:i:1}
	case ${group[i]} in
	dd) dd_list+=${dd_list:+,}$d ;;
	fs) fs_list+=${fs_list:+,}$d ;;
	fsb) fsb_list+=${fsb_list:+,}$d ;;
	esac
done
echo "  disks: $(for i in "${!imgs[@]}"; do printf 'vd%s=%s ' "${letters:i:1}" "${names[i]}"; done)"

cd / || exit 1 # relative backing paths must be resolved against the overlay's directory
kv_run write $((KV_BOOT_TIMEOUT + 250)) run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE kvmini.test=qcow2_write kvmini.q.dd=$dd_list kvmini.q.fs=$fs_list kvmini.q.fsb=$fsb_list" \
	--cpus 2 --mem 512M "${disks[@]}"
check_rc write 0
check_out write KVMINI-BLK-DONE
check_no_out write KVMINI-DMESG-BAD
check_no_out write KVMINI-BLK-KERNEL # (I/O and file system errors in the kernel log)
echo "  the guest's writes took $(kv_field write KVMINI-BLK-SECS) s"
refsum=$(kv_field write KVMINI-BLK-vda-MD5)
[[ $refsum =~ ^[0-9a-f]{32}$ ]] || refsum="(no KVMINI-BLK-vda-MD5)"
check_eq "vda (ref, raw): the image (host) = what the guest read" "$refsum" "$(kv_md5 "$ref")"
for i in "${!imgs[@]}"; do
	d=vd${letters:i:1} n=${names[i]} img=${imgs[i]}
	w="$d ($n)"
	check_eq "$w: size (sectors)" $((32 << 11)) "$(kv_field write "KVMINI-BLK-$d-SIZE")"
	check_eq "$w: failed commands in the guest" 0 "$(kv_field write "KVMINI-BLK-$d-ERRORS")"
	[ -z "$(kv_field write "KVMINI-BLK-$d-FIRST-ERROR")" ] || echo "    first: $(kv_field write "KVMINI-BLK-$d-FIRST-ERROR")"
	[ "$n" != ref ] || continue
	kv_qcheck "$w" "$img" 0
	kv_qclean "$w" "$img"
	sum=$(kv_field write "KVMINI-BLK-$d-MD5")
	if [ "${group[i]}" = dd ]; then
		check_eq "$w: the guest read what it read from vda (raw)" "$refsum" "$sum"
		kv_qcompare "$w" "$img" "$ref"
		continue
	fi
	kv_qview "$img" "$T/view.raw" || continue
	check_eq "$w: qemu's view = the disk as the guest read it last" "$sum" "$(kv_md5 "$T/view.raw")"
	files=$(kv_field write "KVMINI-BLK-$d-FILES-SHA")
	[[ $files =~ ^[0-9a-f]{64}$ ]] || files="(no KVMINI-BLK-$d-FILES-SHA)"
	check_eq "$w: the guest's files after a read-only remount" "$files" "$(kv_field write "KVMINI-BLK-$d-FILES-SHA-RO")"
	if "$e2fsck" -fn "$T/view.raw" >"$T/e2fsck.out" 2>&1; then
		kv_ok "$w: e2fsck -fn finds the file system in qemu's view clean"
	else
		kv_fail "$w: e2fsck -fn on qemu's view failed:"
		tail -n 8 "$T/e2fsck.out" | sed 's/^/    /'
	fi
	[ "${group[i]}" != fsb ] || check_eq "$w: /f1 as the guest found it in the backing file" "$f1sha" "$(kv_field write "KVMINI-BLK-$d-F1-SHA")"
	rm -f "$T/view.raw"
done
kv_q "the snapshot's content" qemu-img convert -O raw -l snapshot.name=before "$T/snapshot.qcow2" "$T/snap.raw" &&
	check_eq "snapshot: the internal snapshot 'before' = the source" "$(kv_md5 "$src")" "$(kv_md5 "$T/snap.raw")"
for f in "${backing[@]}"; do
	check_eq "backing file unchanged: ${f#"$T"/}" "${before[$f]}" "$(kv_sha "$f")"
	[[ $f != *.qcow2 ]] || kv_qcheck "backing file ${f#"$T"/}" "$f" 0
done
kv_finish
