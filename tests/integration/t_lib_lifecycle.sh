#!/bin/bash
# The VM lifecycle through libkvmini (tests/integration/lib_lifecycle.c, built by make): the
# console as one socket, pause/resume (no ticks while paused, no input lost), events, reset, stop.
# timeout: 700
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

b=$KVMINI_BUILD/itests/lib_lifecycle
[ -x "$b" ] || { kv_fail "$b does not exist (make builds it)"; kv_finish; }
kv_cmd life $((KV_BOOT_TIMEOUT * 2 + 200)) "$b" "$KVMINI_KERNEL" "$KVMINI_INITRD"
cat "$T/life.out"
check_rc "library lifecycle" 0
check_out life "lifecycle: ok"
kv_finish
