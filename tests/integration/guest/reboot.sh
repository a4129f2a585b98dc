#!/bin/sh
# Guest side of t_reboot.sh: reboot at once (the VMM restarts the guest, or exits with --no-reboot).
echo KVMINI-REBOOTING
reboot -f
