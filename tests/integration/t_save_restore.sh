#!/bin/bash
# Save and restore: `kvmini ctl SOCK save FILE` writes the running guest's whole state and stops
# it; `kvmini run <same config> --restore FILE` goes on from there without booting: the guest's
# clock-driven ticker continues where it stopped, console input reaches the same shell loop, the
# virtio-blk disk keeps working (its rings continue), and the ACPI power button still powers it
# off. A restore into a different machine, from a damaged or a foreign file, is refused with one
# line; save never overwrites a file.
# timeout: 900
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

S=$T/api.sock
F=$T/vm.state
kv_need_qemu_img
truncate -s 64M "$T/disk.raw"
qemu-img create -q -f qcow2 "$T/disk.qcow2" 32M
args=(run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" --mem 256M --cpus 2
	--disk "path=$T/disk.raw" --disk "path=$T/disk.qcow2" --cmdline "$KV_CMDLINE kvmini.test=api")
ticks() { tr -d '\r' <"$T/$1.out" | sed -n 's/^KVMINI-TICK \([0-9]*\)$/\1/p' | tail -n 1; }

kv_hold_start src $((KV_BOOT_TIMEOUT + 300)) "${args[@]}" --api-sock "$S"
if kv_wait_for src "KVMINI-TICK 4" $((KV_BOOT_TIMEOUT + 60)) 1 "$KV_PID"; then
	echo io >&3
	kv_wait_for src KVMINI-IO-DONE 120 1 "$KV_PID" && kv_ok "source: disk I/O done before the save" ||
		kv_fail "source: expected KVMINI-IO-DONE"
	touch "$T/taken"
	timeout 30 "$KVMINI" ctl "$S" save "$T/taken" >"$T/ctl.exists" 2>&1
	[ $? = 1 ] && grep -q "File exists" "$T/ctl.exists" && kv_ok "save refuses an existing file" ||
		kv_fail "save to an existing file: expected exit 1 and 'File exists', saw '$(head -c 300 "$T/ctl.exists")'"
	start=$(date +%s%N)
	timeout 120 "$KVMINI" ctl "$S" save "$F" >"$T/ctl.save" 2>&1
	rc=$?
	echo "  save took $((($(date +%s%N) - start) / 1000000)) ms, $(stat -c %s "$F" 2>/dev/null) bytes"
	[ $rc = 0 ] && kv_ok "ctl save: $(cat "$T/ctl.save")" || kv_fail "ctl save: exit $rc, '$(head -c 300 "$T/ctl.save")'"
	kv_wait_pid "$KV_PID" 30
	check_rc "the source stops after a save" 0
	last=$(ticks src)
	echo "  last tick before the save: $last"
else
	kv_fail "source: the guest did not start ticking"
	last=0
fi
kv_release
kv_wait_pid "$KV_PID" 10
[ -s "$F" ] || { kv_fail "no state file"; kv_finish; }

# Refused restores: each one line, no guest.
kv_bad "restore into fewer vCPUs" "2 vCPUs, this one 1" run --kernel "$KVMINI_KERNEL" \
	--initrd "$KVMINI_INITRD" --mem 256M --cpus 1 --disk "path=$T/disk.raw" --disk "path=$T/disk.qcow2" \
	--restore "$F"
kv_bad "restore into less memory" "256 MiB of memory, this one 512 MiB" run --kernel "$KVMINI_KERNEL" \
	--initrd "$KVMINI_INITRD" --mem 512M --cpus 2 --disk "path=$T/disk.raw" --disk "path=$T/disk.qcow2" \
	--restore "$F"
kv_bad "restore without the disks" "2 disks, this one 0" run --kernel "$KVMINI_KERNEL" \
	--initrd "$KVMINI_INITRD" --mem 256M --cpus 2 --restore "$F"
head -c $(($(stat -c %s "$F") / 2)) "$F" >"$T/half.state"
kv_bad "restore from a truncated file" "ended inside|truncated" "${args[@]}" --restore "$T/half.state"
kv_bad "restore from a file that is not a state" "not a kvmini state stream" "${args[@]}" --restore "$T/disk.raw"
kv_bad "restore from a missing file" "No such file" "${args[@]}" --restore "$T/nothing.state"

# The real restore: the same machine goes on.
kv_hold_start dst $((KV_BOOT_TIMEOUT + 300)) "${args[@]}" --api-sock "$S" --restore "$F"
if kv_wait_for dst "KVMINI-TICK $((last + 2))" 120 1 "$KV_PID"; then
	first=$(tr -d '\r' <"$T/dst.out" | sed -n 's/^KVMINI-TICK \([0-9]*\)$/\1/p' | head -n 1)
	check_range "restored: the first tick goes on from the source's last ($last)" $((last + 1)) $((last + 2)) "$first"
	check_eq "restored: the guest did not boot again" 0 "$(kv_count dst KVMINI-INIT-START)"
	echo hello-after-restore >&3
	kv_wait_for dst "KVMINI-GOT hello-after-restore" 60 1 "$KV_PID" && kv_ok "restored: console input reaches the guest's shell loop" ||
		kv_fail "restored: expected 'KVMINI-GOT hello-after-restore'"
	echo io >&3
	kv_wait_for dst KVMINI-IO-DONE 120 1 "$KV_PID" && kv_ok "restored: virtio-blk I/O works (128 reads, 64 writes)" ||
		kv_fail "restored: expected KVMINI-IO-DONE after 'io'"
	timeout 30 "$KVMINI" ctl "$S" stats >"$T/stats" 2>&1
	check_eq "restored: disk reads counted on the destination" 128 "$(jq -r '.return.disks[0].read.requests' "$T/stats")"
	timeout 30 "$KVMINI" ctl "$S" shutdown timeout=120 >/dev/null 2>&1
	kv_wait_pid "$KV_PID" 150
	check_rc "restored: ACPI shutdown" 0
	check_out dst KVMINI-POWER-BUTTON
	check_out dst "reboot: Power down"
	qemu-img check -q "$T/disk.qcow2" >"$T/qcheck" 2>&1 && kv_ok "the qcow2 disk is consistent after save, restore and shutdown" ||
		kv_fail "qemu-img check on the qcow2 disk: $(head -c 300 "$T/qcheck")"
else
	kv_fail "restored: expected KVMINI-TICK $((last + 2)) within 120 s"
	kv_wait_pid "$KV_PID" 10
fi
kv_release
kv_finish
