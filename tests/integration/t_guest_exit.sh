#!/bin/bash
# Guest-to-host devices: a byte the guest writes to the exit-status port (0x501) becomes kvmini's
# exit status (3, and 0), and a guest kernel panic, reported through pvpanic (PCI 1b36:0011),
# ends kvmini with status 101 and "kvmini: the guest kernel panicked" on stderr instead of the
# reboot that the default panic=-1 asks for.
# timeout: 900
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

# exit_case NAME STATUS: one boot whose guest writes STATUS to the port.
exit_case() {
	local name=$1 status=$2
	kv_run "$name" "$KV_BOOT_TIMEOUT" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
		--cmdline "$KV_CMDLINE kvmini.test=guest_exit kvmini.exit=$status" --cpus 1 --mem 256M
	check_rc "$name" "$status"
	check_eq "$name: KVMINI-EXITING" "$status" "$(kv_field "$name" KVMINI-EXITING)"
	check_no_out "$name" KVMINI-NO-DEVPORT
	check_eq "$name: KVMINI-PORT-RESERVED (0x501 in /proc/ioports, from the DSDT)" 1 "$(kv_field "$name" KVMINI-PORT-RESERVED)"
	# The VM stopped at the write: neither the rest of the script nor the init's poweroff ran.
	check_no_out "$name" KVMINI-STILL-RUNNING
	check_no_out "$name" "reboot: Power down"
	check_eq "$name: stderr" "" "$(head -c 300 "$T/$name.err")"
}
exit_case exit3 3
exit_case exit0 0

# The panic: kvmini must exit by itself, once, without restarting the guest. A reboot loop is
# seen as a second KVMINI-INIT-START.
kv_start panic $((2 * KV_BOOT_TIMEOUT + 60)) run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE kvmini.test=guest_exit kvmini.exit=panic" --cpus 1 --mem 256M
if kv_wait_for panic KVMINI-INIT-START $((2 * KV_BOOT_TIMEOUT)) 2 "$KV_PID"; then
	kv_fail "panic: the guest booted again after its panic (kvmini restarted it)"
	kill "$KV_PID" 2>/dev/null
	wait "$KV_PID" 2>/dev/null
else
	kv_wait_pid "$KV_PID" 10
	check_rc panic 101
fi
check_eq "panic: KVMINI-PVPANIC-BOUND (pvpanic-pci driver bound)" yes "$(kv_field panic KVMINI-PVPANIC-BOUND)"
check_eq "panic: KVMINI-PVPANIC-CAP (PANICKED | CRASH_LOADED)" 3 "$(kv_field panic KVMINI-PVPANIC-CAP)"
check_out panic KVMINI-PANICKING
check_out panic "Kernel panic"
check_no_out panic KVMINI-STILL-RUNNING
check_eq "panic: KVMINI-INIT-START count" 1 "$(kv_count panic KVMINI-INIT-START)"
check_eq "panic: stderr" "kvmini: the guest kernel panicked" "$(head -c 300 "$T/panic.err")"
kv_finish
