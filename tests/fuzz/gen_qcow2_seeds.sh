#!/bin/bash
# SPDX-License-Identifier: MIT
# Writes the seed corpus of tests/fuzz/fuzz_qcow2.c (its top comment documents
# the input format: an 8-byte header, then the image; keep the two in step):
# small valid images made by qemu-img and qemu-io (qemu-utils), mostly with
# 512-byte clusters so that they stay a few KiB.
#
#   tests/fuzz/gen_qcow2_seeds.sh [OUTDIR]   (default: tests/fuzz/corpus/qcow2)
#
# The images' data is deterministic text, but qemu-img stamps snapshots with
# the time, so rerunning changes those seeds.
set -euo pipefail

out=${1:-tests/fuzz/corpus/qcow2}
command -v qemu-img >/dev/null && command -v qemu-io >/dev/null ||
	{ echo "gen_qcow2_seeds.sh: needs qemu-img and qemu-io (qemu-utils)" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

# 64 KiB virtual: 1.2 KiB of text at 0, 512 bytes at 40 KiB, the rest a hole.
for i in $(seq 0 39); do printf 'kvmini qcow2 seed, line %04d\n' "$i"; done >data.txt
truncate -s 64K src.raw
dd if=data.txt of=src.raw conv=notrunc status=none
dd if=data.txt of=src.raw bs=512 count=1 seek=80 conv=notrunc status=none

# Header bytes (see fuzz_qcow2.c). Byte 0: RW=1, AUTO=2, SMALL_CACHE=4, FLUSH=8.
RO='\x00\x00\x00\x5a\x00\x00\x10\x4e'       # reads at sectors 0 and 90 and at the last one
RW='\x09\x03\x40\x50\x80\x00\xf0\x49'       # write 7 sectors at 3, discard 64 at 80, zeroes at the end; flush
RW_COW='\x09\x01\x40\x10\xc0\x02\x40\x40'    # write 1 sector at 1, zeroes at 16, write at 2; flush
AUTO_SMALL='\x06\x00\x00\x05\x00\x7f\x00\x3f' # probed format, tiny metadata cache: reads

# seed NAME HEADER IMAGE
seed() {
	{ printf "$2"; cat "$3"; } >"$out/$1"
}

conv() { # conv IMAGE [qemu-img convert options...]
	local img=$1
	shift
	rm -f "$img"
	qemu-img convert -O qcow2 "$@" src.raw "$img"
}

conv v2.img -o compat=0.10,cluster_size=512
seed v2-512 "$RO" v2.img
seed v2-512-rw "$RW" v2.img

conv v3.img -o cluster_size=512
seed v3-512 "$RO" v3.img
seed v3-512-rw "$RW" v3.img
seed v3-512-auto-small-cache "$AUTO_SMALL" v3.img

conv rc1.img -o cluster_size=512,refcount_bits=1
seed refcount1-512-rw "$RW" rc1.img
conv rc64.img -o cluster_size=512,refcount_bits=64
seed refcount64-512-rw "$RW_COW" rc64.img

conv zlib.img -c -o cluster_size=512,compression_type=zlib
seed zlib-512 "$RO" zlib.img
conv zstd.img -c -o cluster_size=512,compression_type=zstd
seed zstd-512 "$RO" zstd.img
seed zstd-512-rw "$RW_COW" zstd.img

conv lazy.img -o cluster_size=512,lazy_refcounts=on
seed lazy-512-rw "$RW" lazy.img
# The same with the dirty bit set (incompatible_features bit 0: byte 79): repaired on a read-write open.
printf '\x01' | dd of=lazy.img bs=1 seek=79 conv=notrunc status=none
seed lazy-dirty-512-rw "$RW" lazy.img

# Zero clusters with and without a host cluster, a discarded one, a partial write.
conv zero.img -o cluster_size=1024
qemu-io -f qcow2 -c 'write -z 0 1k' -c 'write -z -u 2k 1k' -c 'discard 40k 1k' -c 'write -P 0x5a 20k 512' \
	zero.img >/dev/null
seed zero-clusters-1k "$RO" zero.img

# Extended L2 entries need 16 KiB clusters at least: the biggest seed (one, read-write).
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=16384 extl2.img 64K
qemu-io -f qcow2 -c 'write -P 0x11 1k 512' -c 'write -z 4k 1k' -c 'write -P 0x12 9k 2k' extl2.img >/dev/null
seed extl2-16k-rw "$RW_COW" extl2.img

# A backing file name and format in the header (the fuzzer opens with backing=off).
qemu-img create -q -f qcow2 -o cluster_size=512 -b src.raw -F raw overlay.img 64K
qemu-io -f qcow2 -c 'write -P 0x33 1536 1024' overlay.img >/dev/null
seed backing-header-512 "$RO" overlay.img

# An internal snapshot: clusters with refcount 2, copied on write.
conv snap.img -o cluster_size=512
qemu-img snapshot -c snap snap.img
seed snapshot-512-rw "$RW" snap.img

# Preallocated metadata over 16 KiB.
qemu-img create -q -f qcow2 -o cluster_size=512,preallocation=metadata prealloc.img 16K
seed prealloc-metadata-512 "$RO" prealloc.img

ls -l "$out" | awk 'NR > 1 { n++; s += $5 } END { printf "gen_qcow2_seeds.sh: %d seeds, %d bytes\n", n, s }'
