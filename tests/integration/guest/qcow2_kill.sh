#!/bin/sh
# Guest side of t_qcow2_kill.sh (kvmini.q.round=R): writes on three disks without end, until the
# host kills kvmini (kill -9):
#   vda: random O_DIRECT writes of R * 4 KiB, 8 at a time (kvmini-blkio), and 1 MiB discards;
#   vdb: random O_DIRECT writes of (R + 3) * 16 KiB, 4 at a time, and 512 KiB write-zeroes;
#        (kvmini-blkio's offsets follow a fixed sequence of multiples of the size: a size per
#        round has each round write elsewhere);
#   vdc: 256 KiB O_DIRECT writes over [0, 32) MiB, in turn; and chunks: 256 KiB of fresh random
#        data each, written with O_DIRECT and a FLUSH (conv=fsync) one after the other at
#        32 + 8 * (R - 1) MiB on, each reported once written and flushed as CHUNK-R-I=sha256
#        (I from 0): the host finds them all after the kill. KVMINI-BLK-WRITING follows the
#        first chunk.
# shellcheck disable=SC1091 # (the initramfs path)
. /tests/blk_lib.sh
quiet
r=$(arg q.round)
M=1048576
for d in vda vdb vdc; do info "$d"; done
rnd() { echo $(($(od -An -N2 -tu2 /dev/urandom) % $1)); }
# Loops that end with the machine; their errors go to the console.
while :; do kvmini-blkio write /dev/vda $((r * 4096)) 100000 8 >/dev/null || echo "KVMINI-BLK-ERROR=vda random writes"; done &
while :; do kvmini-blkio write /dev/vdb $(((r + 3) * 16384)) 10000 4 >/dev/null || echo "KVMINI-BLK-ERROR=vdb random writes"; done &
while :; do
	blkdiscard -o $(($(rnd 64) * M)) -l $M /dev/vda || echo "KVMINI-BLK-ERROR=vda discard"
	kvmini-blkio zero /dev/vdb $(($(rnd 128) * M / 2)) $((M / 2)) || echo "KVMINI-BLK-ERROR=vdb write-zeroes"
done &
while :; do
	dd if=/dev/urandom of=/dev/vdc bs=256k count=128 oflag=direct conv=notrunc 2>/dev/null || echo "KVMINI-BLK-ERROR=vdc writes"
done &
i=0
while [ $i -lt 32 ]; do
	dd if=/dev/urandom of=/tmp/chunk bs=256k count=1 2>/dev/null
	if dd if=/tmp/chunk of=/dev/vdc bs=256k seek=$((4 * (32 + 8 * (r - 1)) + i)) oflag=direct conv=notrunc,fsync 2>/tmp/chunk.err; then
		say "CHUNK-$r-$i" "$(sha /tmp/chunk)"
	else
		say ERROR "vdc chunk $i: $(tail -n 1 /tmp/chunk.err)"
	fi
	[ $i != 0 ] || echo KVMINI-BLK-WRITING
	i=$((i + 1))
done
echo KVMINI-BLK-CHUNKS-DONE
sleep 600
