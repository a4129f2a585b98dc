#!/bin/sh
# Guest side of t_mem.sh: report the RAM this guest sees, then wait (at most 300 s) for a line on
# the console while the host looks at kvmini's memory: "reboot" reboots the guest (kvmini builds
# the machine, and its memory, anew), anything else (or nothing) ends the script: poweroff.
echo "KVMINI-MEMTOTAL-KB=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
# "Memory: 475616K/523896K available (...)": the second number is the RAM the kernel found.
echo "KVMINI-E820-TOTAL-KB=$(dmesg | sed -n 's|.*Memory: [0-9]*K/\([0-9]*\)K available.*|\1|p' | head -n 1)"
echo KVMINI-MEM-HOLD
# shellcheck disable=SC3045 # (busybox ash has read -t)
read -r -t 300 line || true
echo "KVMINI-MEM-GOT=$line"
if [ "$line" = reboot ]; then
	reboot -f
	sleep 60
fi
