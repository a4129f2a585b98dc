#!/bin/sh
# Guest side of t_blk_bad_input.sh's "in use" case: report the disks, then wait (hold) while the
# host tries to open the same image from a second kvmini.
# shellcheck disable=SC1091 # (the initramfs path)
. /tests/blk_lib.sh
info vda
hold
echo KVMINI-BLK-DONE
