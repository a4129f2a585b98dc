#!/bin/bash
# KVM's vCPU and VM-wide state (vmm/migration/kvm_state.c) moved between two VMs: a real-mode counting
# loop stopped in VM A goes on counting in a fresh VM B that got A's memory and saved state; corrupt or
# truncated state is refused (itests/kvm_state_roundtrip, built by make).
# timeout: 120
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

bin=$KVMINI_BUILD/itests/kvm_state_roundtrip
[ -x "$bin" ] || { kv_fail "$bin is missing (make builds it from tests/integration/kvm_state_roundtrip.c)"; kv_finish; }
kv_cmd kvmstate 90 "$bin"
sed 's/^/  | /' "$T/kvmstate.out" "$T/kvmstate.err"
check_rc kvmstate 0
check_out kvmstate KVM-STATE-ROUNDTRIP-OK
check_no_out kvmstate "FAIL:"
kv_finish
