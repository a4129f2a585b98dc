#!/bin/bash
# The console on a terminal: kvmini puts the tty in raw mode, Ctrl-A x quits (exit 0) while the
# guest is still running, and the terminal's mode is restored afterwards, also when kvmini is
# ended by a signal (SIGHUP) or dies of one (SIGSEGV, in the main or a vCPU thread). `script` gives kvmini a pseudo-terminal
# as stdin/stdout, fed from a fifo.
# timeout: 500
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

command -v script >/dev/null || kv_fail "script (util-linux) is not installed"
trap "" PIPE
# After kvmini exits, stty reports whether canonical mode came back (raw mode clears icanon).
inner="$(printf '%q ' "$KVMINI" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE" --cpus 1 --mem 256M); rc=\$?; echo; echo KVMINI-RC=\$rc; stty -a | grep -o -- '-\?icanon' | sed 's/^/KVMINI-STTY=/'"

# tty_start NAME: kvmini on a fresh pseudo-terminal, its input on fd 3.
tty_start() {
	rm -f "$T/$1-in"
	mkfifo "$T/$1-in"
	KV_LAST=$1
	KV_START=$(date +%s)
	timeout -k 5 "$KV_BOOT_TIMEOUT" script -q -e -c "$inner" /dev/null <"$T/$1-in" >"$T/$1.out" 2>"$T/$1.err" &
	KV_PID=$!
	KV_PIDS+=("$KV_PID")
	exec 3>"$T/$1-in"
}

# tty_check NAME RC: kvmini ended with RC and the terminal is back in canonical mode.
tty_check() {
	kv_wait_pid "$KV_PID" 60
	check_rc "$1" 0 # script's own status
	check_eq "$1: kvmini's exit status" "$2" "$(kv_field "$1" KVMINI-RC)"
	check_eq "$1: terminal mode after kvmini exits" icanon "$(kv_field "$1" KVMINI-STTY)"
	exec 3>&-
}

# 1. Ctrl-A x.
tty_start tty
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
	tty_check tty 0
	check_no_out tty "reboot: Power down"
else
	kv_fail "tty: expected KVMINI-SHELL within ${KV_BOOT_TIMEOUT}s, not seen"
	exec 3>&-
fi

# 2. Signals, once the guest kernel is printing (the terminal is raw by then): SIGHUP stops
# kvmini (128 + 1, one line saying so); SIGSEGV sent from outside plays a crash, which the fatal
# signal handler must also leave the terminal restored after (128 + 11, by the signal itself),
# whether the main thread or a sandboxed vCPU thread takes it (tgkill, x86-64's syscall 234,
# through perl).
for case in "hup HUP 129 -" "segv SEGV 139 -" "vcpusegv SEGV 139 vcpu"; do
	read -r name sig rc thread <<<"$case"
	tty_start "$name"
	if kv_wait_for "$name" "Linux version" 60 1 "$KV_PID"; then
		pid=$(pgrep -o -x kvmini)
		if [ "$thread" = - ]; then
			kill -s "$sig" "$pid" && kv_ok "$name: SIG$sig sent to kvmini ($pid)"
		else
			tid=$(grep -lx "$thread" /proc/"$pid"/task/*/comm | head -n 1 | cut -d/ -f5)
			[ -n "$tid" ] || kv_fail "$name: kvmini ($pid) has no thread named $thread"
			# (+ 0: perl's syscall() passes a string as a pointer)
			if perl -e 'exit(syscall(234, $ARGV[0] + 0, $ARGV[1] + 0, 11) == 0 ? 0 : 1)' "$pid" "$tid"; then
				kv_ok "$name: SIG$sig sent to kvmini's $thread thread ($pid/$tid)"
			else
				kv_fail "$name: tgkill($pid, $tid, SIG$sig) failed"
			fi
		fi
		tty_check "$name" "$rc"
	else
		kv_fail "$name: the guest kernel printed nothing within 60 s"
		exec 3>&-
	fi
done
check_out hup "kvmini: stopped by signal 1 (Hangup)"
kv_finish
