#!/bin/sh
# Guest side of t_guest_exit.sh. kvmini.exit=N writes byte N (0..255) to kvmini's exit-status
# port (0x501, through /dev/port); kvmini.exit=panic crashes the kernel (sysrq c), which pvpanic
# reports. Nothing after the write or the panic should run: the VM stops at once.
mode=
# shellcheck disable=SC2013 # the command line is words
for arg in $(cat /proc/cmdline); do
	case "$arg" in kvmini.exit=*) mode=${arg#kvmini.exit=} ;; esac
done
pvdev=
for d in /sys/bus/pci/drivers/pvpanic-pci/0000:*; do [ -e "$d" ] && pvdev=$d; done
echo "KVMINI-PVPANIC-BOUND=$([ -n "$pvdev" ] && echo yes || echo no)"
[ -z "$pvdev" ] || echo "KVMINI-PVPANIC-CAP=$(cat "$pvdev/capability" 2>/dev/null)"
# The DSDT's motherboard-resources device makes Linux reserve the exit-status port.
echo "KVMINI-PORT-RESERVED=$(grep -c '0501-0501 : pnp' /proc/ioports)"
case "$mode" in
panic)
	echo 1 >/proc/sys/kernel/sysrq
	echo KVMINI-PANICKING
	echo c >/proc/sysrq-trigger
	;;
[0-9]*)
	[ -e /dev/port ] || echo KVMINI-NO-DEVPORT
	echo "KVMINI-EXITING=$mode"
	# busybox printf takes \NNN octal escapes; conv=notrunc: no truncation of /dev/port.
	# shellcheck disable=SC2059 # the format is the escape that makes the byte
	printf "\\$(printf %o "$mode")" | dd of=/dev/port bs=1 seek=$((0x501)) count=1 conv=notrunc 2>/dev/null
	;;
*)
	echo "KVMINI-EXIT-BAD-MODE=$mode"
	;;
esac
# Only reached when the VM did not stop.
echo KVMINI-STILL-RUNNING
