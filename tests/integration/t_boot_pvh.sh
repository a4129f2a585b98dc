#!/bin/bash
# Boots the uncompressed ELF vmlinux (taken out of the bzImage by fetch-kernel.sh) through its
# PVH entry point, with the same checks as t_boot_smp.sh.
# timeout: 450
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

if [ -z "${KVMINI_VMLINUX:-}" ] || [ ! -f "$KVMINI_VMLINUX" ]; then
	why=$(cat "$(dirname "$KVMINI_KERNEL")/vmlinux.error" 2>/dev/null || echo "KVMINI_VMLINUX is empty")
	kv_skip "no ELF vmlinux could be extracted from $KVMINI_KERNEL: $why"
fi
kv_run pvh "$KV_BOOT_TIMEOUT" run --kernel "$KVMINI_VMLINUX" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE kvmini.test=basic" --cpus 2 --mem 512M
check_basic pvh 2 512
kv_finish
