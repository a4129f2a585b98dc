#!/bin/sh
# Guest side of t_migrate_qcow2.sh: a clock-driven tick every 0.5 s, and commands on the
# console, each answered with KVMINI-MQ-KEY=value lines (sha256 of data written and read back
# with O_DIRECT, from the disk and not the page cache) on /dev/vda (64 MiB):
#   w1 / w2  8 MiB of random data at 0 / 16 MiB: W1 / W2 (what was written), W1-READ / W2-READ
#   r1       [0, 8) MiB read back: R1
#   busy     a background writer of random 64 KiB blocks all over [32, 48) MiB until "stop"
#   stop     stops it: BUSY-WRITES (how many), B (sha256 of [32, 48) MiB once it stopped)
echo KVMINI-API-READY
# shellcheck disable=SC1091 # (the initramfs path)
. /tests/tick_lib.sh
start_ticker
say() { echo "KVMINI-MQ-$1=$2"; }
rsha() { dd if=/dev/vda bs=1M skip="$1" count="$2" iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1; }
write8() {
	dd if=/dev/urandom of=/tmp/w bs=1M count=8 2>/dev/null
	say "$1" "$(sha256sum /tmp/w | cut -d' ' -f1)"
	dd if=/tmp/w of=/dev/vda bs=1M seek="$2" oflag=direct conv=fsync 2>/dev/null || say "$1-ERROR" "write failed"
	say "$1-READ" "$(rsha "$2" 8)"
}
busy=
while read -r line; do
	case $line in
	w1) write8 W1 0 ;;
	w2) write8 W2 16 ;;
	r1) say R1 "$(rsha 0 8)" ;;
	busy)
		rm -f /tmp/stop
		(
			n=0
			while [ ! -e /tmp/stop ]; do
				dd if=/dev/urandom of=/dev/vda bs=64k count=1 seek=$((512 + n * 37 % 256)) oflag=direct 2>/dev/null ||
					echo "KVMINI-MQ-BUSY-ERROR=write $n failed"
				n=$((n + 1))
			done
			echo "$n" >/tmp/busy.n
		) &
		busy=$!
		say BUSY started
		;;
	stop)
		touch /tmp/stop
		[ -n "$busy" ] && wait "$busy"
		sync
		say BUSY-WRITES "$(cat /tmp/busy.n 2>/dev/null)"
		say B "$(rsha 32 16)"
		;;
	*) echo "KVMINI-GOT $line" ;;
	esac
done
# shellcheck disable=SC2154 # set by start_ticker (tick_lib.sh)
kill "$ticker"
sleep 600
