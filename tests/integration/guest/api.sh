#!/bin/sh
# Guest side of t_api.sh: a clock-driven tick every 0.5 s (it must stop while the VM is paused)
# and a loop over console input (none may be lost across a pause): "io" does a known amount of
# disk I/O for the stats check, "done" ends the loop, any other line is echoed back.
echo KVMINI-API-READY
# shellcheck disable=SC1091 # (the initramfs path)
. /tests/tick_lib.sh
start_ticker
while read -r line; do
	case $line in
	io)
		# 8 MiB read and 4 MiB written with O_DIRECT in 64 KiB requests: 128 reads, 64 writes.
		dd if=/dev/vda of=/dev/null bs=64k count=128 iflag=direct 2>/dev/null
		dd if=/dev/zero of=/dev/vda bs=64k count=64 seek=256 oflag=direct 2>/dev/null
		echo "KVMINI-IO-DONE"
		;;
	done) break ;;
	*) echo "KVMINI-GOT $line" ;;
	esac
done
# shellcheck disable=SC2154 # set by start_ticker (tick_lib.sh)
kill "$ticker"
echo KVMINI-API-END
sleep 600
