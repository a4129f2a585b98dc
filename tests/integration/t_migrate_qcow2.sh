#!/bin/bash
# Live migration of a guest on a qcow2 image (over a raw backing file) over TCP on loopback: the
# destination opens the image at start but reads its metadata only after the handover; the
# source drains its requests and writes its metadata out before it lets the image go. The guest
# (2 vCPUs) writes 8 MiB and keeps a writer busy allocating clusters during the pre-copy; on the
# destination it reads the 8 MiB back, writes 8 MiB more and stops the writer; after its
# poweroff qemu-img check finds the image clean (no errors, no leaks) and qemu's view of it
# holds what both sides wrote, and the backing file's data where nobody wrote.
# timeout: 900
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

kv_need_qemu_img
SA=$T/a.sock
SB=$T/b.sock
PORT=$((20000 + RANDOM % 20000))
head -c 64M /dev/urandom >"$T/base.raw"
kv_q "the image" qemu-img create -f qcow2 -b base.raw -F raw "$T/disk.qcow2" 64M || kv_finish
args=(run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" --mem 256M --cpus 2
	--disk "path=$T/disk.qcow2" --cmdline "$KV_CMDLINE kvmini.test=mig_qcow2")
ticks() { tr -d '\r' <"$T/$1.out" | sed -n 's/^KVMINI-TICK \([0-9]*\)$/\1/p' | tail -n 1; }
listening() { ss -ltn 2>/dev/null | grep -q ":$1 "; }
mq() { kv_field "$1" "KVMINI-MQ-$2"; }

kv_hold_start src $((KV_BOOT_TIMEOUT + 500)) "${args[@]}" --api-sock "$SA"
SRC=$KV_PID
kv_wait_for src "KVMINI-TICK 4" $((KV_BOOT_TIMEOUT + 60)) 1 "$SRC" || kv_abort "source: the guest did not start ticking"
echo w1 >&3
kv_wait_for src "KVMINI-MQ-W1-READ=" 180 1 "$SRC" || kv_abort "source: no KVMINI-MQ-W1-READ"
w1=$(mq src W1) w2=- b=- # w2, b: set on the destination, if it runs
check_eq "source: 8 MiB written and read back" "$w1" "$(mq src W1-READ)"
echo busy >&3
kv_wait_for src "KVMINI-MQ-BUSY=started" 30 1 "$SRC" || kv_fail "source: the writer did not start"
sleep 3

exec 4>&3 # the source's console stays open while kv_hold_start gives fd 3 to the destination
kv_hold_start dst $((KV_BOOT_TIMEOUT + 500)) "${args[@]}" --api-sock "$SB" --incoming "tcp:127.0.0.1:$PORT"
DST=$KV_PID
for _ in $(seq 1 300); do listening $PORT && break; sleep 0.2; done
listening $PORT && kv_ok "the destination listens on $PORT with the qcow2 image open" ||
	kv_fail "the destination does not listen on $PORT: $(tail -n 2 "$T/dst.err" 2>/dev/null)"
timeout 300 "$KVMINI" ctl "$SA" migrate "tcp:127.0.0.1:$PORT" --max-downtime 500ms >"$T/m.out" 2>"$T/m.err"
rc=$?
sed 's/^/  | /' "$T/m.err" | tail -n 4
[ $rc = 0 ] && kv_ok "migrate with a qcow2 disk: $(cat "$T/m.out")" ||
	kv_fail "migrate: expected exit 0, saw $rc: $(tail -n 3 "$T/m.err")"
kv_wait_pid "$SRC" 30
check_rc "the source exits 0 after handing over" 0
exec 4>&-
check_eq "source: no I/O errors before the handover" 0 "$(kv_count src KVMINI-MQ-BUSY-ERROR)"
last=$(ticks src)
if kv_wait_for dst "KVMINI-TICK $((last + 2))" 120 1 "$DST"; then
	check_eq "destination: the guest did not boot again" 0 "$(kv_count dst KVMINI-INIT-START)"
	echo r1 >&3
	kv_wait_for dst "KVMINI-MQ-R1=" 120 1 "$DST" || kv_fail "destination: no KVMINI-MQ-R1"
	check_eq "destination: the 8 MiB written on the source read back" "$w1" "$(mq dst R1)"
	echo w2 >&3
	kv_wait_for dst "KVMINI-MQ-W2-READ=" 180 1 "$DST" || kv_fail "destination: no KVMINI-MQ-W2-READ"
	w2=$(mq dst W2)
	check_eq "destination: 8 MiB more written and read back" "$w2" "$(mq dst W2-READ)"
	echo stop >&3
	kv_wait_for dst "KVMINI-MQ-B=" 120 1 "$DST" || kv_fail "destination: the writer did not stop"
	b=$(mq dst B)
	check_range "the busy writer's 64 KiB writes, across the move" 2 100000000 "$(mq dst BUSY-WRITES)"
	check_eq "destination: no I/O errors" 0 "$(kv_count dst KVMINI-MQ-BUSY-ERROR)"
	timeout 30 "$KVMINI" ctl "$SB" shutdown timeout=120 >/dev/null 2>&1
	kv_wait_pid "$DST" 150
	check_rc "destination: ACPI shutdown" 0
	check_out dst "reboot: Power down"
else
	kv_fail "destination: expected KVMINI-TICK $((last + 2)): $(tail -n 3 "$T/dst.err" 2>/dev/null)"
	kv_wait_pid "$DST" 10
fi
kv_release

kv_qcheck "the image after the migration and the poweroff" "$T/disk.qcow2" 0
kv_qclean "the image after the migration and the poweroff" "$T/disk.qcow2"
if kv_qview "$T/disk.qcow2" "$T/view.raw"; then
	check_eq "qemu's view: [0, 8) MiB as written on the source" "$w1" "$(kv_sha "$T/view.raw" 0 8)"
	check_eq "qemu's view: [16, 24) MiB as written on the destination" "$w2" "$(kv_sha "$T/view.raw" 16 8)"
	check_eq "qemu's view: [32, 48) MiB as the busy writer left it" "$b" "$(kv_sha "$T/view.raw" 32 16)"
	check_eq "qemu's view: [48, 64) MiB from the backing file" "$(kv_sha "$T/base.raw" 48 16)" "$(kv_sha "$T/view.raw" 48 16)"
fi
kv_finish
