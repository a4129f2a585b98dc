#!/bin/sh
# The embeddable library on arm64: tests/integration/lib_lifecycle.c, cross-built static against
# build/arm64/libkvmini.a by `make ARCH=arm64`, drives a VM through libkvmini as on x86: the
# console as one socket, pause/resume (no ticks while paused, no input lost), events, reset, stop.
# timeout: 900
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

bin=$KVMINI_BUILD/itests/lib_lifecycle
[ -x "$bin" ] || { kv_fail "$bin is missing (make ARCH=arm64 builds it)"; kv_finish; }
KV_LAST=life
kv_timed $((KV_BOOT_TIMEOUT * 2 + 200)) "$T/life.timedout" "$T/life.out" "$T/life.err" "$bin" \
	"$KVMINI_KERNEL" "$KVMINI_INITRD"
sed 's/^/  | /' "$T/life.out"
check_rc "library lifecycle" 0
check_out life "lifecycle: ok"
kv_finish
