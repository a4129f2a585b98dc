#!/bin/bash
# Live migration over TCP (loopback, inside the test host): the guest keeps ticking on the source
# during pre-copy, then goes on on the destination from where it was (no reboot: the ticker's count
# continues, console input reaches the same shell loop, its virtio-blk disk on the same raw image
# keeps working, the ACPI power button still powers it off). `kvmini ctl migrate` shows passes on
# stderr and prints the result (total time, downtime, bytes). A destination that is not there, and
# one that drops the connection mid-stream, leave the source running unharmed.
# timeout: 900
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

SA=$T/a.sock
SB=$T/b.sock
PORT=$((20000 + RANDOM % 20000))
truncate -s 64M "$T/disk.raw"
args=(run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" --mem 256M --cpus 2
	--disk "path=$T/disk.raw" --cmdline "$KV_CMDLINE kvmini.test=api")
ticks() { tr -d '\r' <"$T/$1.out" | sed -n 's/^KVMINI-TICK \([0-9]*\)$/\1/p' | tail -n 1; }
listening() { ss -ltn 2>/dev/null | grep -q ":$1 "; }

kv_hold_start src $((KV_BOOT_TIMEOUT + 400)) "${args[@]}" --api-sock "$SA"
SRC=$KV_PID
if ! kv_wait_for src "KVMINI-TICK 4" $((KV_BOOT_TIMEOUT + 60)) 1 "$SRC"; then
	kv_fail "source: the guest did not start ticking"
	kv_finish
fi
echo io >&3
kv_wait_for src KVMINI-IO-DONE 120 1 "$SRC" || kv_fail "source: expected KVMINI-IO-DONE"

# Nobody listening: an error, the source runs on.
timeout 60 "$KVMINI" ctl "$SA" migrate "tcp:127.0.0.1:$((PORT + 1))" >"$T/m0.out" 2>"$T/m0.err"
rc=$?
[ $rc = 1 ] && kv_ok "migrate to nobody: exit 1, '$(tail -n 1 "$T/m0.err")'" ||
	kv_fail "migrate to nobody: expected exit 1, saw $rc: $(cat "$T/m0.err")"

# A destination that reads 2 MB and hangs up: the source runs on.
timeout 60 socat -u "TCP-LISTEN:$((PORT + 2)),bind=127.0.0.1,reuseaddr" SYSTEM:"head -c 2000000 >/dev/null" &
KV_PIDS+=($!)
for _ in $(seq 1 50); do listening $((PORT + 2)) && break; sleep 0.1; done
timeout 120 "$KVMINI" ctl "$SA" migrate "tcp:127.0.0.1:$((PORT + 2))" >"$T/m1.out" 2>"$T/m1.err"
rc=$?
[ $rc = 1 ] && kv_ok "a destination that hangs up mid-stream: exit 1, '$(tail -n 1 "$T/m1.err")'" ||
	kv_fail "cut connection: expected exit 1, saw $rc: $(cat "$T/m1.err")"
before=$(ticks src)
kv_wait_for src "KVMINI-TICK $((before + 3))" 30 1 "$SRC" && kv_ok "the source guest still ticks after the failed migrations" ||
	kv_fail "the source guest stopped ticking after a failed migration"
timeout 10 "$KVMINI" ctl "$SA" info >"$T/info" 2>&1
check_eq "source state after the failed migrations" running "$(jq -r .return.state "$T/info")"

# The real one.
exec 4>&3 # the source's console stays open while kv_hold_start gives fd 3 to the destination
kv_hold_start dst $((KV_BOOT_TIMEOUT + 400)) "${args[@]}" --api-sock "$SB" --incoming "tcp:127.0.0.1:$PORT"
DST=$KV_PID
for _ in $(seq 1 300); do listening $PORT && break; sleep 0.2; done
listening $PORT && kv_ok "the destination listens on $PORT" || kv_fail "the destination does not listen on $PORT"
check_eq "the destination does not run the guest before the migration" 0 "$(kv_count dst KVMINI-TICK)"
timeout 300 "$KVMINI" ctl "$SA" migrate "tcp:127.0.0.1:$PORT" --max-downtime 500ms >"$T/m2.out" 2>"$T/m2.err"
rc=$?
sed 's/^/  | /' "$T/m2.err"
if [ $rc = 0 ]; then
	kv_ok "migrate: $(cat "$T/m2.out")"
	grep -q "migration pass 1" "$T/m2.err" && kv_ok "migrate showed its passes" || kv_fail "migrate: no progress lines on stderr"
	check_range "migrate: downtime (ms, nested)" 0 60000 "$(jq -r .data.downtime_ms "$T/m2.out")"
else
	kv_fail "migrate: expected exit 0, saw $rc: $(tail -n 3 "$T/m2.err")"
fi
kv_wait_pid "$SRC" 30
check_rc "the source exits 0 after handing over" 0
exec 4>&-
last=$(ticks src)
echo "  last tick on the source: $last"
if kv_wait_for dst "KVMINI-TICK $((last + 2))" 120 1 "$DST"; then
	first=$(tr -d '\r' <"$T/dst.out" | sed -n 's/^KVMINI-TICK \([0-9]*\)$/\1/p' | head -n 1)
	check_range "destination: the ticker goes on from the source's last ($last)" $((last + 1)) $((last + 2)) "$first"
	check_eq "destination: the guest did not boot again" 0 "$(kv_count dst KVMINI-INIT-START)"
	echo hello-after-migration >&3
	kv_wait_for dst "KVMINI-GOT hello-after-migration" 60 1 "$DST" && kv_ok "destination: console input reaches the guest" ||
		kv_fail "destination: expected KVMINI-GOT hello-after-migration"
	echo io >&3
	kv_wait_for dst KVMINI-IO-DONE 120 1 "$DST" && kv_ok "destination: virtio-blk I/O works" ||
		kv_fail "destination: expected KVMINI-IO-DONE"
	timeout 30 "$KVMINI" ctl "$SB" shutdown timeout=120 >/dev/null 2>&1
	kv_wait_pid "$DST" 150
	check_rc "destination: ACPI shutdown" 0
	check_out dst "reboot: Power down"
else
	kv_fail "destination: expected KVMINI-TICK $((last + 2))"
	kv_wait_pid "$DST" 10
fi
kv_release
kv_finish
