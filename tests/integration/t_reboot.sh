#!/bin/bash
# A guest reboot: with --no-reboot kvmini exits 0 after one boot; without it the guest starts
# again (we wait for the second KVMINI-INIT-START, then stop kvmini).
# timeout: 900
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

kv_run noreboot "$KV_BOOT_TIMEOUT" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE kvmini.test=reboot" --cpus 1 --mem 256M --no-reboot
check_rc noreboot 0
check_out noreboot KVMINI-REBOOTING
check_eq "noreboot: KVMINI-INIT-START count" 1 "$(kv_count noreboot KVMINI-INIT-START)"

kv_start reboot $((2 * KV_BOOT_TIMEOUT + 60)) run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE kvmini.test=reboot" --cpus 1 --mem 256M
if kv_wait_for reboot KVMINI-INIT-START $((2 * KV_BOOT_TIMEOUT)) 2 "$KV_PID"; then
	kv_ok "reboot: the guest started again after its reboot ($(($(date +%s) - KV_START))s)"
else
	if kill -0 "$KV_PID" 2>/dev/null; then
		kv_fail "reboot: expected KVMINI-INIT-START twice, saw it $(kv_count reboot KVMINI-INIT-START) time(s) in $((2 * KV_BOOT_TIMEOUT))s"
	else
		wait "$KV_PID"
		kv_fail "reboot: expected the guest to restart, kvmini exited with status $? after $(kv_count reboot KVMINI-INIT-START) boot(s)"
	fi
fi
kill "$KV_PID" 2>/dev/null
wait "$KV_PID" 2>/dev/null
kv_finish
