#!/bin/bash
# Live migration of an idle guest (at its shell, 2 vCPUs halted nearly all the time, 256 MiB, no
# devices) over TCP on loopback. A halted vCPU sleeps inside KVM_RUN without coming back to
# kvmini, so nothing in a migration may wait on a vCPU ioctl while the vCPUs run (KVM_GET_CPUID2
# did, and such migrations stalled until some exit came by, minutes later). The migration must
# end within 120 s; then the destination's shell answers and powers off.
# timeout: 600
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

SA=$T/a.sock
PORT=$((20000 + RANDOM % 20000))
args=(run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" --mem 256M --cpus 2 --cmdline "$KV_CMDLINE")
listening() { ss -ltn 2>/dev/null | grep -q ":$1 "; }

kv_hold_start src $((KV_BOOT_TIMEOUT + 300)) "${args[@]}" --api-sock "$SA"
SRC=$KV_PID
kv_wait_for src KVMINI-SHELL $((KV_BOOT_TIMEOUT + 60)) 1 "$SRC" || kv_abort "source: no shell"
sleep 5 # idle: no console output, no device, the vCPUs halted

exec 4>&3 # the source's console stays open while kv_hold_start gives fd 3 to the destination
kv_hold_start dst $((KV_BOOT_TIMEOUT + 300)) "${args[@]}" --incoming "tcp:127.0.0.1:$PORT"
DST=$KV_PID
for _ in $(seq 1 300); do listening $PORT && break; sleep 0.2; done
listening $PORT || kv_fail "the destination does not listen on $PORT: $(tail -n 2 "$T/dst.err" 2>/dev/null)"
timeout 120 "$KVMINI" ctl "$SA" migrate "tcp:127.0.0.1:$PORT" >"$T/m.out" 2>"$T/m.err"
rc=$?
[ $rc = 0 ] && kv_ok "an idle guest migrates: $(cat "$T/m.out")" ||
	kv_fail "migrate: expected exit 0 within 120 s, saw $rc: $(tail -n 3 "$T/m.err")"
kv_wait_pid "$SRC" 30
check_rc "the source exits 0 after handing over" 0
exec 4>&-

# shellcheck disable=SC2016 # the guest's shell expands it: the answer proves it ran
echo 'echo idle-moved-$((6 * 7))' >&3
kv_wait_for dst "idle-moved-42" 60 1 "$DST" && kv_ok "the destination's shell answers" ||
	kv_fail "destination: the shell did not answer: $(tail -n 3 "$T/dst.err" 2>/dev/null)"
check_eq "destination: the guest did not boot again" 0 "$(kv_count dst KVMINI-INIT-START)"
echo 'poweroff -f' >&3
kv_wait_pid "$DST" 60
check_rc "destination: poweroff" 0
exec 3>&-
kv_finish
