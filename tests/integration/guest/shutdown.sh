#!/bin/sh
# Guest side of t_shutdown.sh: says it is up and waits to be shut down through the ACPI power
# button (the initramfs's acpid powers off). kvmini.shutdown.deaf=1: acpid is killed first, so the
# button goes unheard and only kvmini's timeout ends the VM.
for a in $(cat /proc/cmdline); do
	case $a in kvmini.shutdown.deaf=1) killall acpid; echo KVMINI-SHUTDOWN-DEAF ;; esac
done
pidof acpid >/dev/null && echo KVMINI-SHUTDOWN-ACPID=up
echo KVMINI-SHUTDOWN-READY
sleep 600
echo KVMINI-SHUTDOWN-NOT-HEARD
