#!/bin/bash
# The example harness (docs/examples/harness.c, built by make as BUILD/examples/harness) on the
# library: boots the test guest, waits for its shell on the console, runs a command whose answer
# only the guest can compute, checks it, powers the guest off. Then two VMs at once in one
# process, each driven by its own thread (no global state in libkvmini).
# timeout: 600
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

h=$KVMINI_BUILD/examples/harness
[ -x "$h" ] || { kv_fail "$h does not exist (make builds it)"; kv_finish; }

kv_cmd one $((KV_BOOT_TIMEOUT + 120)) "$h" "$KVMINI_KERNEL" "$KVMINI_INITRD"
check_rc "harness, one VM" 0
check_out one "harness: 1 of 1 VMs passed"
grep -q "vm0: ANSWER-42 seen, powered off" "$T/one.err" && kv_ok "vm0 answered 42 and powered off" ||
	kv_fail "vm0: expected 'ANSWER-42 seen, powered off' on stderr: $(tail -n 3 "$T/one.err")"

kv_cmd two $((KV_BOOT_TIMEOUT + 240)) "$h" "$KVMINI_KERNEL" "$KVMINI_INITRD" 2
check_rc "harness, two VMs in one process" 0
check_out two "harness: 2 of 2 VMs passed"
for i in 0 1; do
	grep -q "vm$i: ANSWER-$((42 + i)) seen, powered off" "$T/two.err" && kv_ok "vm$i answered $((42 + i))" ||
		kv_fail "vm$i: expected 'ANSWER-$((42 + i)) seen' on stderr: $(tail -n 3 "$T/two.err")"
done
kv_finish
