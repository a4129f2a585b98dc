#!/bin/bash
# The console on a terminal: kvmini puts the tty in raw mode, Ctrl-A x quits (exit 0) while the
# guest is still running, and the terminal's mode is restored afterwards. `script` gives kvmini
# a pseudo-terminal as stdin/stdout, fed from a fifo.
# timeout: 500
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

command -v script >/dev/null || kv_fail "script (util-linux) is not installed"
trap "" PIPE
mkfifo "$T/tty-in"
# After kvmini exits, stty reports whether canonical mode came back (raw mode clears icanon).
inner="$(printf '%q ' "$KVMINI" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE" --cpus 1 --mem 256M); rc=\$?; echo; echo KVMINI-RC=\$rc; stty -a | grep -o -- '-\?icanon' | sed 's/^/KVMINI-STTY=/'"
KV_LAST=tty
KV_START=$(date +%s)
timeout -k 5 "$KV_BOOT_TIMEOUT" script -q -e -c "$inner" /dev/null <"$T/tty-in" >"$T/tty.out" 2>"$T/tty.err" &
KV_PID=$!
KV_PIDS+=("$KV_PID")
exec 3>"$T/tty-in"
if kv_wait_for tty KVMINI-SHELL "$KV_BOOT_TIMEOUT" 1 "$KV_PID"; then
	kv_ok "tty: shell is up after $(($(date +%s) - KV_START))s"
	sleep 1
	# A literal Ctrl-A (Ctrl-A Ctrl-A) followed by a command still reaches the guest intact.
	printf '\001\001echo tty-$((7*6))\r' >&3
	if kv_wait_for tty tty-42 60 1 "$KV_PID"; then
		kv_ok "tty: typed command ran in the guest"
	else
		kv_fail "tty: expected 'tty-42' after typing a command, not seen"
	fi
	printf '\001x' >&3
	kv_wait_pid "$KV_PID" 60
	check_rc tty 0
	check_eq "tty: kvmini's exit status after Ctrl-A x" 0 "$(kv_field tty KVMINI-RC)"
	check_eq "tty: terminal mode after kvmini exits" icanon "$(kv_field tty KVMINI-STTY)"
	check_no_out tty "reboot: Power down"
else
	kv_fail "tty: expected KVMINI-SHELL within ${KV_BOOT_TIMEOUT}s, not seen"
fi
exec 3>&-
kv_finish
