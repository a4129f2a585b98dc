#!/bin/bash
# SIGTERM is an orderly shutdown: kvmini presses the guest's ACPI power button, the guest's
# power-button handler (acpid in the test initramfs) powers off, kvmini exits 0. A guest that
# does not listen (acpid killed) is stopped after --shutdown-timeout with status 143 and a line
# saying so; a second SIGTERM stops at once.
# timeout: 600
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

args=(run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" --mem 256M)

kv_start polite $((KV_BOOT_TIMEOUT + 120)) "${args[@]}" --cmdline "$KV_CMDLINE kvmini.test=shutdown"
if kv_wait_for polite KVMINI-SHUTDOWN-READY $((KV_BOOT_TIMEOUT + 60)) 1 "$KV_PID"; then
	kill -TERM "$(kv_vmm_pid)"
fi
kv_wait_pid "$KV_PID" 90
check_rc "SIGTERM, guest listening" 0
check_out polite KVMINI-SHUTDOWN-ACPID=up
check_out polite KVMINI-POWER-BUTTON
check_out polite "reboot: Power down"
check_no_out polite KVMINI-SHUTDOWN-NOT-HEARD
if [ -s "$T/polite.err" ]; then kv_fail "polite: stderr not empty: $(head -c 300 "$T/polite.err")"; else kv_ok "polite: nothing on stderr"; fi

kv_start deaf $((KV_BOOT_TIMEOUT + 120)) "${args[@]}" --shutdown-timeout 5 \
	--cmdline "$KV_CMDLINE kvmini.test=shutdown kvmini.shutdown.deaf=1"
if kv_wait_for deaf KVMINI-SHUTDOWN-READY $((KV_BOOT_TIMEOUT + 60)) 1 "$KV_PID"; then
	start=$(date +%s)
	kill -TERM "$(kv_vmm_pid)"
	kv_wait_pid "$KV_PID" 60
	check_range "deaf: seconds from SIGTERM to exit (--shutdown-timeout 5)" 4 30 $(($(date +%s) - start))
else
	kv_wait_pid "$KV_PID" 10
fi
check_rc "SIGTERM, guest not listening" 143
check_out deaf KVMINI-SHUTDOWN-DEAF
check_no_out deaf KVMINI-POWER-BUTTON
grep -q "did not power off within 5 s of SIGTERM" "$T/deaf.err" && kv_ok "deaf: kvmini said why it stopped the guest" ||
	kv_fail "deaf: expected 'did not power off within 5 s of SIGTERM' on stderr, saw: $(head -c 300 "$T/deaf.err")"

kv_start twice $((KV_BOOT_TIMEOUT + 120)) "${args[@]}" --cmdline "$KV_CMDLINE kvmini.test=shutdown kvmini.shutdown.deaf=1"
if kv_wait_for twice KVMINI-SHUTDOWN-READY $((KV_BOOT_TIMEOUT + 60)) 1 "$KV_PID"; then
	vmm=$(kv_vmm_pid)
	kill -TERM "$vmm"
	sleep 1
	kill -TERM "$vmm"
fi
kv_wait_pid "$KV_PID" 20
check_rc "two SIGTERMs" 143
check_out twice KVMINI-SHUTDOWN-DEAF
kv_finish
