#!/bin/sh
# Guest side of scripts/bench-blk.sh --tool fio, on /dev/vda: fio jobs (libaio, direct=1, one job,
# time-based, over the whole disk), each framed by lines the host samples the VMM's CPU time at:
#   KVMINI-FIO-BEGIN NAME      then 1 s idle, so that the host reads /proc/PID/stat before I/O starts
#   KVMINI-FIO-NAME=TERSE      fio --minimal (terse v3: ';'-separated) line, or NAME=failed: REASON
#   KVMINI-FIO-END NAME        then 1 s idle before the next job
# and KVMINI-BENCH-DONE at the end. Needs /usr/bin/fio in the initramfs (bench-blk.sh appends it
# with its libraries). Jobs: 4 KiB random read and write at queue depth 1 and 32, 1 MiB sequential
# read and write at depth 1. kvmini.bench.secs=S on the kernel command line: seconds per job (5).
arg() {
	# shellcheck disable=SC2013 # words of the one-line /proc/cmdline
	for a in $(cat /proc/cmdline); do
		case $a in "kvmini.$1="*) echo "${a#kvmini."$1"=}" ;; esac
	done
}
secs=$(arg bench.secs)
: "${secs:=5}"
dmesg -n 1
job() { # NAME RW BS DEPTH
	echo "KVMINI-FIO-BEGIN $1"
	sleep 1
	if out=$(fio --name="$1" --filename=/dev/vda --rw="$2" --bs="$3" --iodepth="$4" --ioengine=libaio \
		--direct=1 --numjobs=1 --runtime="$secs" --time_based --randrepeat=0 --norandommap \
		--minimal 2>&1); then
		echo "KVMINI-FIO-END $1"
		echo "KVMINI-FIO-$1=$(echo "$out" | grep '^3;' | tail -n 1)"
	else
		echo "KVMINI-FIO-END $1"
		echo "KVMINI-FIO-$1=failed: $(echo "$out" | tail -n 1)"
	fi
	sleep 1
}
if ! command -v fio >/dev/null; then
	echo "KVMINI-FIO-randread-4k-qd1=failed: no fio in the initramfs"
else
	job randread-4k-qd1 randread 4k 1
	job randread-4k-qd32 randread 4k 32
	job randwrite-4k-qd1 randwrite 4k 1
	job randwrite-4k-qd32 randwrite 4k 32
	job seqread-1M read 1M 1
	job seqwrite-1M write 1M 1
fi
echo KVMINI-BENCH-DONE
