#!/bin/sh
# The arm64 host's /dev/kvm runs a guest without kvmini: kvm_smoke (kvm_smoke.c, built static by
# run.sh into BUILD/itests/) takes an MMIO exit and a PSCI SYSTEM_OFF. When this fails, the
# emulated host is at fault, not kvmini.
# timeout: 60
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

bin=$KVMINI_BUILD/itests/kvm_smoke
[ -x "$bin" ] || { kv_fail "$bin is missing (run.sh builds it with aarch64-linux-gnu-gcc)"; kv_finish; }
KV_LAST=smoke
kv_timed 30 "$T/smoke.timedout" "$T/smoke.out" "$T/smoke.err" "$bin"
check_rc smoke 0
check_out smoke "kvm_smoke: ok"
kv_finish
