#!/bin/bash
# Auto-converge: a guest that dirties memory much faster than the link carries it (kvmini-mem
# rewriting 16 MiB as fast as it can, checked word by word; the migration held to 8 MB/s and a
# 50 ms pause) cannot be moved by pre-copy alone. Without --auto-converge the migration gives up
# at its timeout, says so and suggests --auto-converge, and the source runs on; with it, the
# vCPUs are throttled harder pass by pass until the rest fits the pause, the guest moves, and
# its memory checks go on passing on the destination at full speed.
# timeout: 900
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

SA=$T/a.sock SB=$T/b.sock
args=(run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" --mem 128M --cpus 2
	--cmdline "$KV_CMDLINE kvmini.test=dirty kvmini.dirty=16,100000")
limits=(--bandwidth 8M --max-downtime 50ms)
listening() { ss -ltn 2>/dev/null | grep -q ":$1 "; }
# start_dst NAME: a destination listening on a fresh port (PORT, DST).
start_dst() {
	PORT=$((20000 + RANDOM % 20000))
	kv_start "$1" $((KV_BOOT_TIMEOUT + 300)) "${args[@]}" --incoming "tcp:127.0.0.1:$PORT" "${@:2}"
	DST=$KV_PID
	for _ in $(seq 1 300); do listening $PORT && break; sleep 0.2; done
	listening $PORT || kv_abort "$1 does not listen on $PORT: $(tail -n 2 "$T/$1.err" 2>/dev/null)"
}

kv_start src $((KV_BOOT_TIMEOUT + 600)) "${args[@]}" --api-sock "$SA"
SRC=$KV_PID
kv_wait_for src "KVMINI-MEM-PASS" $((KV_BOOT_TIMEOUT + 60)) 2 "$SRC" ||
	kv_abort "source: kvmini-mem did not get going"

# 1. Pre-copy alone: the timeout, with the reason and the way out.
start_dst dst1
kv_cmd m1 120 "$KVMINI" ctl "$SA" migrate "tcp:127.0.0.1:$PORT" "${limits[@]}" --timeout 20
check_rc "without auto-converge: the migration fails" 1
kv_show m1 3
grep -q "did not converge within 20 s" "$T/m1.err" && grep -q -- "--auto-converge" "$T/m1.err" &&
	kv_ok "it says pre-copy did not converge, and suggests --auto-converge" ||
	kv_fail "no 'did not converge ... --auto-converge' line: $(tail -n 1 "$T/m1.err")"
grep -q "throttled" "$T/m1.err" && kv_fail "vCPUs throttled without --auto-converge"
kv_wait_pid "$DST" 60
[ "$KV_RC" != 0 ] && [ "$KV_RC" != 124 ] && kv_ok "the first destination exits $KV_RC, guest never run" ||
	kv_fail "the first destination: exit $KV_RC"
passes=$(kv_count src KVMINI-MEM-PASS)
kv_wait_for src "KVMINI-MEM-PASS" 60 $((passes + 2)) "$SRC" &&
	kv_ok "the source's guest goes on checking its memory ($passes passes, then 2 more)" ||
	kv_fail "the source's guest stopped after the failed migration"
timeout 10 "$KVMINI" ctl "$SA" info >"$T/info" 2>&1
check_eq "the source's state" running "$(jq -r .return.state "$T/info")"

# 2. With auto-converge: throttled until it fits, then moved.
start_dst dst2 --api-sock "$SB"
kv_cmd m2 300 "$KVMINI" ctl "$SA" migrate "tcp:127.0.0.1:$PORT" "${limits[@]}" --timeout 240 \
	--auto-converge
sed "s/^/  | /" "$T/m2.err"
[ "$KV_RC" = 0 ] && kv_ok "with --auto-converge the migration succeeds: $(cat "$T/m2.out")" ||
	kv_fail "with --auto-converge: exit $KV_RC: $(tail -n 1 "$T/m2.err")"
throttle=$(jq -r .data.throttle_pct "$T/m2.out" 2>/dev/null)
check_range "the vCPUs' throttle at the handover (%)" 20 99 "${throttle:-0}"
grep -q "vCPUs throttled to 20 %" "$T/m2.err" && kv_ok "progress shows the throttle starting at 20 %" ||
	kv_fail "no pass reported 'vCPUs throttled to 20 %'"
kv_wait_pid "$SRC" 30
check_rc "the source exits 0 after handing over" 0
n=$(kv_count dst2 KVMINI-MEM-PASS)
kv_wait_for dst2 "KVMINI-MEM-PASS" 120 $((n + 3)) "$DST" &&
	kv_ok "on the destination the memory checks go on: $(tr -d '\r' <"$T/dst2.out" | grep KVMINI-MEM-PASS | tail -n 1)" ||
	kv_fail "the destination's guest does not go on checking its memory"
check_eq "no memory word lost or stale (source)" 0 "$(kv_count src KVMINI-MEM-BAD)"
check_eq "no memory word lost or stale (destination)" 0 "$(kv_count dst2 KVMINI-MEM-BAD)"
check_eq "the destination's guest did not boot again" 0 "$(kv_count dst2 KVMINI-INIT-START)"
"$KVMINI" ctl "$SB" stop >/dev/null
kv_wait_pid "$DST" 60
check_rc "destination: stop" 0
kv_finish
