#!/bin/sh
# Guest side of t_migrate.sh: what a guest being moved keeps doing, each part checkable from
# outside after the move.
#   - a clock-driven tick every 0.5 s on the console (KVMINI-TICK N);
#   - kvmini-mem: 16 MiB rewritten at 8 MiB/s and checked word by word on every pass
#     (KVMINI-MEM-PASS gen=G, or KVMINI-MEM-BAD and it stops);
#   - eth0 at 192.0.2.2/24: one TCP connection to 192.0.2.1:5555 carrying "SEQ N" every 0.2 s
#     (KVMINI-STREAM-END rc=R if it ever ends);
#   - console commands: "diskw" writes 4 MiB of random data at 16 MiB into /dev/vda (O_DIRECT)
#     and prints its sha256 (KVMINI-DISKW-SHA=), "diskr" reads that range back from the disk
#     (O_DIRECT, not the page cache) and prints its sha256 (KVMINI-DISKR-SHA=), "irqs" prints
#     the virtio configuration-change interrupt counts (KVMINI-IRQ ...), anything else is echoed
#     (KVMINI-GOT LINE).
echo KVMINI-MIGRATE-READY
# shellcheck disable=SC1091 # (the initramfs path)
. /tests/tick_lib.sh
start_ticker
kvmini-mem 16 8 &
ip link set eth0 up
ip addr add 192.0.2.2/24 dev eth0
(
	n=0
	until ping -c 1 -W 1 192.0.2.1 >/dev/null 2>&1 || [ $n -ge 60 ]; do n=$((n + 1)); done
	echo KVMINI-STREAM-START
	i=0
	while :; do
		i=$((i + 1))
		echo "SEQ $i"
		sleep 0.2
	done | nc 192.0.2.1 5555
	echo "KVMINI-STREAM-END rc=$?"
) &
while read -r line; do
	case $line in
	diskw)
		dd if=/dev/urandom of=/tmp/diskw bs=1M count=4 2>/dev/null
		dd if=/tmp/diskw of=/dev/vda bs=1M seek=16 oflag=direct conv=fsync 2>/dev/null
		echo "KVMINI-DISKW-SHA=$(sha256sum </tmp/diskw | cut -d' ' -f1)"
		;;
	diskr)
		echo "KVMINI-DISKR-SHA=$(dd if=/dev/vda bs=1M skip=16 count=4 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"
		;;
	irqs) grep -- -config /proc/interrupts | tr -s ' ' | sed 's/^/KVMINI-IRQ /' ;;
	*) echo "KVMINI-GOT $line" ;;
	esac
done
sleep 600
