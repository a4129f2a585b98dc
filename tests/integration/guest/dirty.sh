#!/bin/sh
# Guest side of scripts/bench-migrate.sh's "dirtying" case: kvmini-mem rewrites and checks a
# region for ever (size and rate from kvmini.dirty=MIB,MIB_PER_S on the kernel command line,
# default 64 MiB at 32 MiB/s); the host migrates the guest while it does.
arg=64,32
for a in $(cat /proc/cmdline); do
	case $a in kvmini.dirty=*) arg=${a#kvmini.dirty=} ;; esac
done
echo KVMINI-DIRTY-READY
kvmini-mem "${arg%,*}" "${arg#*,}"
sleep 600
