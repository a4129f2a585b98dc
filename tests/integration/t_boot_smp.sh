#!/bin/bash
# Boots the stock Debian bzImage with 2 vCPUs/512 MiB and 4 vCPUs/1 GiB; the guest's basic.sh
# reports what it sees (CPUs online, RAM, clock, dmesg errors) and powers off.
# timeout: 900
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

for cfg in "2 512" "4 1024"; do
	read -r cpus mem <<<"$cfg"
	name=smp$cpus
	kv_run "$name" "$KV_BOOT_TIMEOUT" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
		--cmdline "$KV_CMDLINE kvmini.test=basic" --cpus "$cpus" --mem "${mem}M"
	check_basic "$name" "$cpus" "$mem"
done
kv_finish
