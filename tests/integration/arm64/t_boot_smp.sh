#!/bin/sh
# Boots Debian's stock arm64 kernel with 2 vCPUs and 512 MiB, no console= on the command line
# (the device tree's stdout-path names the console); the guest's basic.sh reports what it sees
# (CPUs online, RAM, clock, dmesg: no Fatal/BUG:/Oops/Call Trace) and powers off: kvmini exits 0.
# timeout: 400
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

kv_run smp2 "$KV_BOOT_TIMEOUT" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE kvmini.test=basic" --cpus 2 --mem 512M
check_basic smp2 2 512
# The console works without console=: init's first line and the kernel's last one came through.
check_out smp2 KVMINI-INIT-START
check_out smp2 "reboot: Power down"
kv_finish
