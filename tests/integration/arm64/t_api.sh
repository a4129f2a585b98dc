#!/bin/sh
# The control socket on arm64 (busybox only: replies are matched with sed, not jq): info reports
# the VM (running, 2 vCPUs, 256 MiB, the disk); pause stops the guest's clock-driven ticks and a
# line typed meanwhile waits, resume restarts both; pausing twice is refused (InvalidState);
# stats count a known amount of guest disk I/O (guest/api.sh "io": 128 x 64 KiB reads, 64 x
# 64 KiB writes); shutdown presses the power button (the PL061's gpio-keys KEY_POWER): the
# guest's acpid powers off and kvmini exits 0. Stop is tried on a second VM as soon as its socket
# answers (no guest boot to wait for: each takes 10-20 s under emulation).
# timeout: 900
# shellcheck disable=SC3043,SC2015 # (busybox sh has local; A && ok || fail is meant)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
kv_need --api-sock

S=$T/api.sock
# ctl NAME ARGS...: kvmini ctl on $S, the reply in $T/ctl.NAME, the exit status in CTL_RC.
ctl() {
	local name="$1"
	shift
	timeout 60 "$KVMINI" ctl "$S" "$@" >"$T/ctl.$name" 2>"$T/ctl.$name.err"
	CTL_RC=$?
}
ctl_ok() { # NAME ARGS...
	ctl "$@"
	if [ "$CTL_RC" = 0 ] && grep -q '"return"' "$T/ctl.$1"; then
		kv_ok "ctl $2: succeeded"
	else
		kv_fail "ctl $2: expected success, saw exit $CTL_RC, '$(head -c 300 "$T/ctl.$1")' '$(head -c 300 "$T/ctl.$1.err")'"
	fi
}
ctl_err() { # NAME CLASS ARGS...
	local name="$1" class="$2"
	shift 2
	ctl "$name" "$@"
	if [ "$CTL_RC" = 1 ] && grep -q "\"class\": *\"$class\"" "$T/ctl.$name"; then
		kv_ok "ctl $1: refused with $class"
	else
		kv_fail "ctl $1: expected exit 1 and error class $class, saw exit $CTL_RC, '$(head -c 300 "$T/ctl.$name")'"
	fi
}
# num FILE KEY: the first number after "KEY": in FILE.
num() { sed -n "s/.*\"$2\": *\([0-9][0-9]*\).*/\1/p" "$1" | head -n 1; }
# disk_num FILE OBJ KEY: KEY's number inside the first disk's "OBJ": {...}.
disk_num() { sed -n "s/.*\"$2\": *{\([^}]*\)}.*/\1/p" "$1" | head -n 1 | sed -n "s/.*\"$3\": *\([0-9][0-9]*\).*/\1/p"; }
state() {
	ctl state info
	sed -n 's/.*"state": *"\([a-z]*\)".*/\1/p' "$T/ctl.state"
}
ticks() { kv_count api KVMINI-TICK; }
# wait_out STRING SECS: until the console shows STRING (1 when kvmini is gone or time is up).
wait_out() {
	local i=0
	while [ "$i" -lt "$2" ]; do
		[ "$(kv_count api "$1")" -gt 0 ] && return 0
		kill -0 "$VM" 2>/dev/null || return 1
		sleep 1
		i=$((i + 1))
	done
	return 1
}

# wait_exit SECS WHAT: waits up to SECS for kvmini ($VM) to end, then checks exit status 0 and
# that it removed its socket.
wait_exit() {
	local i=0
	while kill -0 "$VM" 2>/dev/null && [ "$i" -lt "$1" ]; do
		sleep 1
		i=$((i + 1))
	done
	wait "$VM"
	KV_RC=$?
	check_rc "$2" 0
	[ -e "$S" ] && kv_fail "the socket is still there after exit" || kv_ok "the socket was removed at exit"
}

truncate -s 64M "$T/api.raw"
rm -f "$T/api.in" "$S"
mkfifo "$T/api.in"
KV_LAST=api
echo "run api: kvmini run ... --api-sock $S (in the background)"
"$KVMINI" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" --cmdline "$KV_CMDLINE kvmini.test=api" \
	--cpus 2 --mem 256M --disk "path=$T/api.raw" --api-sock "$S" <"$T/api.in" >"$T/api.out" 2>"$T/api.err" &
VM=$!
exec 3>"$T/api.in"
# shellcheck disable=SC2317 # (run by the trap)
api_cleanup() { kill -9 "$VM" 2>/dev/null; }
trap api_cleanup EXIT

if wait_out KVMINI-API-READY "$KV_BOOT_TIMEOUT" && wait_out "KVMINI-TICK 3" 60; then
	ctl_ok info info
	check_eq "info: state" running "$(state)"
	check_eq "info: pid" "$VM" "$(num "$T/ctl.info" pid)"
	check_eq "info: vcpus" 2 "$(num "$T/ctl.info" vcpus)"
	check_eq "info: memory bytes" $((256 << 20)) "$(num "$T/ctl.info" bytes)"
	grep -q "\"path\": *\"$T/api.raw\"" "$T/ctl.info" && kv_ok "info: the disk's path" ||
		kv_fail "info: expected the disk $T/api.raw in '$(head -c 400 "$T/ctl.info")'"

	ctl_ok pause pause
	sleep 1
	before=$(ticks)
	echo hello-while-paused >&3
	sleep 4
	after=$(ticks)
	check_eq "paused: no guest ticks in 4 s" "$before" "$after"
	check_eq "paused: the typed line not seen by the guest yet" 0 "$(kv_count api "KVMINI-GOT hello-while-paused")"
	check_eq "info while paused: state" paused "$(state)"
	ctl_err pause-again InvalidState pause
	ctl_ok resume resume
	wait_out "KVMINI-TICK $((after + 3))" 30 && kv_ok "resumed: ticks go on" ||
		kv_fail "resumed: expected KVMINI-TICK $((after + 3)) within 30 s"
	wait_out "KVMINI-GOT hello-while-paused" 30 && kv_ok "resumed: the line typed while paused reached the guest" ||
		kv_fail "resumed: expected 'KVMINI-GOT hello-while-paused'"

	ctl_ok stats0 stats
	echo io >&3
	wait_out KVMINI-IO-DONE 120 || kv_fail "io: expected KVMINI-IO-DONE"
	ctl_ok stats1 stats
	d() { echo $(($(disk_num "$T/ctl.stats1" "$1" "$2") - $(disk_num "$T/ctl.stats0" "$1" "$2"))); }
	check_eq "stats: bytes read by 128 x 64 KiB reads" $((8 << 20)) "$(d read bytes)"
	check_eq "stats: read requests" 128 "$(d read requests)"
	check_eq "stats: bytes written by 64 x 64 KiB writes" $((4 << 20)) "$(d write bytes)"
	check_eq "stats: write requests" 64 "$(d write requests)"

	# Shutdown: the power button; the guest's acpid handler prints the marker and powers off.
	ctl_ok shutdown shutdown timeout=120
	wait_exit 150 "shutdown through the socket"
	check_out api KVMINI-POWER-BUTTON
	check_out api "reboot: Power down"
else
	kv_fail "api: the guest did not start ticking"
fi
exec 3>&-
check_no_out api KVMINI-DMESG-BAD

# --- stop, on a second VM as soon as its socket answers ---
rm -f "$S"
KV_LAST=stop
echo "run stop: kvmini run ... --api-sock $S (in the background)"
"$KVMINI" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" --cmdline "$KV_CMDLINE kvmini.test=api" \
	--mem 256M --api-sock "$S" </dev/null >"$T/stop.out" 2>"$T/stop.err" &
VM=$!
i=0
until [ "$(state)" = running ] || [ "$i" -ge 60 ] || ! kill -0 "$VM" 2>/dev/null; do
	sleep 1
	i=$((i + 1))
done
check_eq "second VM: state" running "$(state)"
ctl_ok stop stop
wait_exit 30 "stop through the socket"
kv_finish
