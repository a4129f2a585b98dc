#!/bin/sh
# Guest side of scripts/bench-blk.sh, on /dev/vda (at least 256 MiB): O_DIRECT dd runs, each
# timed with /proc/uptime, printed as KVMINI-BENCH-NAME=seconds:bytes. busybox dd cannot seek at
# random, so those 4k runs read and write consecutive blocks at queue depth 1; kvmini-blkio (in
# the test initramfs) then does random 4k reads at queue depth 1 and 32 and random writes at 1.
now() { cut -d' ' -f1 /proc/uptime; }
bench() { # NAME BYTES dd-args...
	name=$1 bytes=$2
	shift 2
	t0=$(now)
	if dd "$@" 2>/tmp/dd.err; then
		echo "KVMINI-BENCH-$name=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'):$bytes"
	else
		echo "KVMINI-BENCH-$name=failed: $(head -n 1 /tmp/dd.err)"
	fi
}
bench seqwrite-1M $((256 << 20)) if=/dev/zero of=/dev/vda bs=1M count=256 oflag=direct conv=notrunc
bench seqread-1M $((256 << 20)) if=/dev/vda of=/dev/null bs=1M count=256 iflag=direct
bench read-4k-qd1 $((32 << 20)) if=/dev/vda of=/dev/null bs=4k count=8192 iflag=direct
bench write-4k-qd1 $((32 << 20)) if=/dev/zero of=/dev/vda bs=4k count=8192 oflag=direct conv=notrunc
# Random 4 KiB O_DIRECT I/O over the whole disk with kvmini-blkio (JOBS processes = queue depth).
rnd() { # NAME read|write COUNT JOBS
	if out=$(kvmini-blkio "$2" /dev/vda 4096 "$3" "$4" 2>&1); then
		secs=$(echo "$out" | sed -n 's/.*secs=\([0-9.]*\).*/\1/p')
		echo "KVMINI-BENCH-$1=$secs:$(($3 * 4096))"
	else
		echo "KVMINI-BENCH-$1=failed: $out"
	fi
}
if command -v kvmini-blkio >/dev/null; then
	rnd randread-4k-qd1 read 4096 1
	rnd randread-4k-qd32 read 16384 32
	rnd randwrite-4k-qd1 write 4096 1
fi
echo KVMINI-BENCH-DONE
