#!/bin/sh
# Guest side of scripts/bench-blk.sh, on /dev/vda (at least 256 MiB): O_DIRECT dd runs, each
# timed with /proc/uptime, printed as KVMINI-BENCH-NAME=seconds:bytes. busybox dd cannot seek at
# random, so the 4k runs read and write consecutive blocks at queue depth 1 (on an image that
# lives in the host's page cache, offsets do not change the cost: it is the per-request path).
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
echo KVMINI-BENCH-DONE
