#!/bin/sh
# Guest side of t_boot_*.sh: report what the guest sees, one KVMINI-KEY=value line each.
echo "KVMINI-NPROC=$(nproc)"
echo "KVMINI-ONLINE=$(cat /sys/devices/system/cpu/online)"
echo "KVMINI-MEMTOTAL-KB=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
# "Memory: 475616K/523896K available (...)": the second number is the RAM the kernel found.
echo "KVMINI-E820-TOTAL-KB=$(dmesg | sed -n 's|.*Memory: [0-9]*K/\([0-9]*\)K available.*|\1|p' | head -n 1)"
echo "KVMINI-DATE=$(date +%s)"
dmesg | grep -E 'Fatal|BUG:|Oops|Call Trace' | sed 's/^/KVMINI-DMESG-BAD: /'
echo KVMINI-BASIC-DONE
