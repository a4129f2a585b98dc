#!/bin/bash
# The serial console in both directions: a command typed on kvmini's stdin runs in the guest's
# shell; and stdin at EOF ends console input, not the guest.
# timeout: 700
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

# 1. Typed input reaches the guest. The tty echoes the command as typed ("kvmini-$((6*7))"),
#    only the shell's answer contains "kvmini-42".
trap "" PIPE # a write to the fifo after kvmini died must not kill this script
mkfifo "$T/in"
KV_STDIN=$T/in kv_start console "$KV_BOOT_TIMEOUT" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE" --cpus 1 --mem 256M
exec 3>"$T/in"
if kv_wait_for console KVMINI-SHELL "$KV_BOOT_TIMEOUT" 1 "$KV_PID"; then
	kv_ok "console: shell is up after $(($(date +%s) - KV_START))s"
	sleep 1
	# shellcheck disable=SC2016
	echo 'echo kvmini-$((6*7))' >&3
	if kv_wait_for console kvmini-42 60 1 "$KV_PID"; then
		kv_ok "console: the guest ran the command sent on stdin (kvmini-42)"
	else
		kv_fail "console: expected 'kvmini-42' within 60s of sending 'echo kvmini-\$((6*7))', not seen"
	fi
	echo 'poweroff -f' >&3
else
	kv_fail "console: expected KVMINI-SHELL within ${KV_BOOT_TIMEOUT}s, not seen"
fi
kv_wait_pid "$KV_PID" 120
exec 3>&-
check_rc console 0
check_out console "reboot: Power down"

# 2. stdin at EOF from the start: the guest keeps running.
kv_start eof "$KV_BOOT_TIMEOUT" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE" --cpus 1 --mem 256M
if kv_wait_for eof KVMINI-SHELL "$KV_BOOT_TIMEOUT" 1 "$KV_PID"; then
	kv_ok "eof: shell is up with stdin at EOF"
	sleep 3
	if kill -0 "$KV_PID" 2>/dev/null; then
		kv_ok "eof: kvmini still running 3s after KVMINI-SHELL"
	else
		wait "$KV_PID"
		KV_RC=$?
		kv_fail "eof: expected kvmini to keep running with stdin at EOF, it exited with status $KV_RC"
	fi
else
	kv_fail "eof: expected KVMINI-SHELL within ${KV_BOOT_TIMEOUT}s, not seen"
fi
kill "$KV_PID" 2>/dev/null
wait "$KV_PID" 2>/dev/null
kv_finish
