#!/bin/bash
# The control socket (--api-sock) and `kvmini ctl`: info; pause stops the guest's clock-driven
# output and resume restarts it with no console input lost; illegal states, malformed requests
# and a client that disconnects mid-request get structured errors and leave the VM running;
# several clients at once (one watching events); stats move in step with known guest I/O;
# shutdown runs the guest's poweroff path and kvmini exits 0; reset reboots the guest; stop ends
# it; bad socket paths are refused with one line.
# timeout: 900
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

S=$T/api.sock
# ctl NAME ARGS...: kvmini ctl on $S; the reply in $T/ctl.NAME, the exit status in CTL_RC.
ctl() {
	local name=$1
	shift
	timeout 60 "$KVMINI" ctl "$S" "$@" >"$T/ctl.$name" 2>"$T/ctl.$name.err"
	CTL_RC=$?
}
# ctl_ok NAME ARGS...: ctl that must succeed.
ctl_ok() {
	ctl "$@"
	if [ "$CTL_RC" = 0 ] && jq -e '.return' "$T/ctl.$1" >/dev/null 2>&1; then
		kv_ok "ctl $2: succeeded"
	else
		kv_fail "ctl $2: expected success, saw exit $CTL_RC, reply '$(head -c 300 "$T/ctl.$1")', stderr '$(head -c 300 "$T/ctl.$1.err")'"
	fi
}
# ctl_err NAME CLASS ARGS...: ctl that must fail with an error of class CLASS.
ctl_err() {
	local name=$1 class=$2
	shift 2
	ctl "$name" "$@"
	local seen
	seen=$(jq -r '.error.class // empty' "$T/ctl.$name" 2>/dev/null)
	if [ "$CTL_RC" = 1 ] && [ "$seen" = "$class" ]; then
		kv_ok "ctl $1: refused with $class ($(jq -r .error.desc "$T/ctl.$name"))"
	else
		kv_fail "ctl $1: expected exit 1 and error class $class, saw exit $CTL_RC, reply '$(head -c 300 "$T/ctl.$name")'"
	fi
}
# raw NAME TEXT: TEXT sent as is with socat; the replies (events left out) in $T/raw.NAME.
raw() {
	printf '%s' "$2" | timeout 20 socat -t 3 - "UNIX-CONNECT:$S" 2>/dev/null | grep -v '"event"' >"$T/raw.$1"
}
raw_err() { # NAME CLASS TEXT
	raw "$1" "$3"
	local seen
	seen=$(jq -r '.error.class // empty' "$T/raw.$1" 2>/dev/null | head -n 1)
	[ "$seen" = "$2" ] && kv_ok "socat $1: error $2" ||
		kv_fail "socat $1: expected an error of class $2, saw '$(head -c 300 "$T/raw.$1")'"
}
ticks() { kv_count api KVMINI-TICK; }
state() {
	ctl state info
	jq -r .return.state "$T/ctl.state" 2>/dev/null
}

# --- bad socket paths: one line, no guest ---
base=(run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD")
long=$T/$(printf 'x%.0s' $(seq 1 120))
kv_bad "socket path too long" "too long" "${base[@]}" --api-sock "$long"
touch "$T/a-file"
kv_bad "socket path is an existing file" "exists" "${base[@]}" --api-sock "$T/a-file"
kv_bad "socket path in a missing directory" "no such file" "${base[@]}" --api-sock "$T/nodir/api.sock"
timeout 5 "$KVMINI" ctl "$T/nothing.sock" info >/dev/null 2>"$T/ctl-nosock.err"
rc=$?
[ "$rc" = 1 ] && grep -q "cannot connect" "$T/ctl-nosock.err" && kv_ok "ctl without a VM: exit 1, '$(cat "$T/ctl-nosock.err")'" ||
	kv_fail "ctl without a VM: expected exit 1 and 'cannot connect', saw $rc '$(cat "$T/ctl-nosock.err")'"

# --- one VM driven through the socket ---
truncate -s 64M "$T/disk.raw"
kv_hold_start api $((KV_BOOT_TIMEOUT + 600)) "${base[@]}" --mem 256M,shared=on --cpus 2 --api-sock "$S" \
	--disk "path=$T/disk.raw" --cmdline "$KV_CMDLINE kvmini.test=api"
VMPID=""
if kv_wait_for api KVMINI-API-READY $((KV_BOOT_TIMEOUT + 60)) 1 "$KV_PID" && kv_wait_for api "KVMINI-TICK 3" 60 1 "$KV_PID"; then
	VMPID=$(kv_vmm_pid)
	timeout 600 "$KVMINI" ctl "$S" events >"$T/events" 2>"$T/events.err" &
	EVPID=$!
	KV_PIDS+=("$EVPID")

	ctl_ok info info
	check_eq "info: state" running "$(jq -r .return.state "$T/ctl.info")"
	check_eq "info: pid" "$VMPID" "$(jq -r .return.pid "$T/ctl.info")"
	check_eq "info: vcpus" 2 "$(jq -r .return.vcpus "$T/ctl.info")"
	check_range "info: setup_us (kvmini's set-up before the first KVM_RUN)" 1 60000000 "$(jq -r .return.setup_us "$T/ctl.info")"
	check_eq "info: memory bytes" $((256 << 20)) "$(jq -r .return.memory.bytes "$T/ctl.info")"
	check_eq "info: memory shared" true "$(jq -r .return.memory.shared "$T/ctl.info")"
	check_eq "info: disk path" "$T/disk.raw" "$(jq -r '.return.disks[0].path' "$T/ctl.info")"
	check_eq "info: disk format (probed)" raw "$(jq -r '.return.disks[0].format' "$T/ctl.info")"
	check_eq "info: api socket" "$S" "$(jq -r .return.api_socket "$T/ctl.info")"

	# Pause: the ticks stop, and a line typed meanwhile waits.
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
	if kv_wait_for api "KVMINI-TICK $((after + 3))" 30 1 "$KV_PID"; then
		kv_ok "resumed: ticks go on ($((after + 3)) seen)"
	else
		kv_fail "resumed: expected KVMINI-TICK $((after + 3)) within 30 s"
	fi
	kv_wait_for api "KVMINI-GOT hello-while-paused" 30 1 "$KV_PID" &&
		kv_ok "resumed: the line typed while paused reached the guest" ||
		kv_fail "resumed: expected 'KVMINI-GOT hello-while-paused'"
	ctl_err resume-again InvalidState resume
	check_eq "info after resume: state" running "$(state)"

	# Malformed and illegal requests: errors, the VM keeps running.
	raw_err parse ParseError '{"cmd": "info"
'
	raw_err notobj InvalidRequest '[1, 2]
'
	raw_err nocmd InvalidRequest '{"id": 7}
'
	raw_err cmdtype InvalidRequest '{"cmd": 5}
'
	raw_err unknown CommandNotFound '{"cmd": "launch-missiles"}
'
	raw_err argtype InvalidArgument '{"cmd": "shutdown", "args": {"timeout": "soon"}}
'
	raw_err argunknown InvalidArgument '{"cmd": "pause", "args": {"hard": true}}
'
	raw_err argsnotobj InvalidArgument '{"cmd": "pause", "args": 3}
'
	raw_err dup ParseError '{"cmd": "info", "cmd": "stop"}
'
	raw two $'{"cmd":"info"}\n{"cmd":"nope","id":"x"}\n'

	[ "$(jq -r '.return.state // empty' "$T/raw.two" | head -n 1)" = running ] &&
		[ "$(jq -r 'select(.id == "x") | .error.class' "$T/raw.two")" = CommandNotFound ] &&
		kv_ok "socat: two requests on one connection, answered in order with the id echoed" ||
		kv_fail "socat: two requests: expected an info reply then CommandNotFound with id x, saw '$(head -c 400 "$T/raw.two")'"
	raw partial '{"cmd": "pau'
	check_eq "a client that disconnects mid-request: no reply" "" "$(cat "$T/raw.partial")"
	head -c 70000 /dev/zero | tr '\0' 'x' >"$T/huge"
	raw_err toolong RequestTooLong "$(cat "$T/huge")"
	ctl_err badctl InvalidArgument pause hard=true
	# 16 clients at once (the event watcher and 15 idle ones): a 17th is refused, politely.
	idle=()
	for _ in $(seq 1 15); do
		sleep 60 | socat - "UNIX-CONNECT:$S" >/dev/null 2>&1 &
		idle+=($!)
		KV_PIDS+=($!)
	done
	sleep 5
	# Only reading: the refusal comes at once, before a request could be sent.
	timeout 20 socat -u "UNIX-CONNECT:$S" - 2>/dev/null | grep -v '"event"' >"$T/raw.busy"
	[ "$(jq -r '.error.class // empty' "$T/raw.busy" 2>/dev/null | head -n 1)" = TooManyClients ] &&
		kv_ok "a 17th client: refused with TooManyClients" ||
		kv_fail "a 17th client: expected a TooManyClients error, saw '$(head -c 300 "$T/raw.busy")'"
	kill "${idle[@]}" 2>/dev/null
	sleep 1
	check_eq "after the bad requests: state" running "$(state)"
	kv_wait_for api "KVMINI-TICK $((after + 8))" 30 1 "$KV_PID" && kv_ok "after the bad requests: the guest still ticks" ||
		kv_fail "after the bad requests: expected the guest to keep ticking"

	# Stats: counters move in step with a known amount of guest disk I/O.
	ctl_ok stats0 stats
	echo io >&3
	kv_wait_for api KVMINI-IO-DONE 120 1 "$KV_PID" || kv_fail "io: expected KVMINI-IO-DONE"
	ctl_ok stats1 stats
	d() { echo $(($(jq -r "$1" "$T/ctl.stats1") - $(jq -r "$1" "$T/ctl.stats0"))); }
	if jq -e '.return.disks[0]' "$T/ctl.stats1" >/dev/null 2>&1; then
		check_eq "stats: bytes read by the guest's 128 x 64 KiB reads" $((8 << 20)) "$(d '.return.disks[0].read.bytes')"
		check_eq "stats: read requests" 128 "$(d '.return.disks[0].read.requests')"
		check_eq "stats: bytes written by 64 x 64 KiB writes" $((4 << 20)) "$(d '.return.disks[0].write.bytes')"
		check_eq "stats: write requests" 64 "$(d '.return.disks[0].write.requests')"
		check_range "stats: notifications (kicks: at most one per request, fewer when the device was busy)" 1 200 "$(d '.return.disks[0].notifications')"
		check_range "stats: interrupts" 1 100000 "$(d '.return.disks[0].interrupts')"
		check_eq "stats: latency histogram counts every request" \
			"$(jq -r '.return.disks[0].requests' "$T/ctl.stats1")" \
			"$(jq -r '.return.disks[0].latency_us.buckets | map(.count) | add' "$T/ctl.stats1")"
		check_range "stats: vCPU 0 port I/O exits moved" 1 1000000000 "$(d '.return.vcpus[0].exits.io')"
	else
		kv_fail "stats: no disk counters in '$(head -c 300 "$T/ctl.stats1")'"
	fi

	# Shutdown: the guest's power-button handler powers off, kvmini exits 0.
	ctl_ok shutdown shutdown timeout=120
	kv_wait_pid "$KV_PID" 150
	check_rc "shutdown through the socket" 0
	check_out api KVMINI-POWER-BUTTON
	check_out api "reboot: Power down"
	[ -e "$S" ] && kv_fail "the socket is still there after exit" || kv_ok "the socket was removed at exit"
	wait "$EVPID" 2>/dev/null
	for ev in paused resumed shutdown-requested; do
		grep -q "\"event\":\"$ev\"" "$T/events" && kv_ok "events: a second client saw '$ev'" ||
			kv_fail "events: expected '$ev' in '$(head -c 500 "$T/events")'"
	done
	check_eq "events: the last one says why the VM stopped" poweroff "$(tail -n 1 "$T/events" | jq -r .data.reason)"
else
	kv_fail "api: the guest did not start ticking"
fi
kv_release
kv_wait_pid "$KV_PID" 10

# --- reset and stop ---
kv_start reset $((KV_BOOT_TIMEOUT * 2 + 200)) "${base[@]}" --mem 256M --api-sock "$S" --cmdline "$KV_CMDLINE kvmini.test=api"
if kv_wait_for reset KVMINI-API-READY $((KV_BOOT_TIMEOUT + 60)) 1 "$KV_PID"; then
	ctl_ok reset reset
	if kv_wait_for reset KVMINI-API-READY $((KV_BOOT_TIMEOUT + 60)) 2 "$KV_PID"; then
		kv_ok "reset: the guest booted a second time"
	else
		kv_fail "reset: expected a second KVMINI-API-READY"
	fi
	ctl_ok stop stop
	kv_wait_pid "$KV_PID" 30
	check_rc "stop through the socket" 0
	if timeout 10 "$KVMINI" ctl "$S" info >/dev/null 2>&1; then
		kv_fail "after stop: ctl still got a reply"
	else
		kv_ok "after stop: the socket is gone, ctl fails"
	fi
else
	kv_fail "reset: the guest did not boot"
	kv_wait_pid "$KV_PID" 10
fi
kv_finish
