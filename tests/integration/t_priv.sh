#!/bin/bash
# Least privilege (docs/SECURITY.md), as root: a running kvmini that created a tap, with a disk and
# a control socket, has no capability left in any set (bounding too), no_new_privs and seccomp
# filters on every thread, while its clean-up helper keeps its capabilities; after it powers off
# the tap and the socket are gone. kill -9 of kvmini with a macvtap it created: the helper still
# deletes the macvtap. --user nobody --jail DIR boots the guest to its shell, reboots it (a new
# machine built inside the jail, under the filters) and powers off with status 0. Bad --user,
# --group, --jail and --seccomp values get one line each.
# timeout: 900
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || kv_skip "needs root (capabilities to drop, taps, chroot)"
id nobody >/dev/null 2>&1 || kv_skip "no user nobody"

TAP=kvpt$$ VA=kvpv$$ VB=kvpw$$
TAP=${TAP:0:15} VA=${VA:0:15} VB=${VB:0:15}
priv_cleanup() {
	kv_cleanup
	ip link del "$TAP" 2>/dev/null
	ip link del "$VA" 2>/dev/null
	return 0
}
trap priv_cleanup EXIT
base=(run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD")

# --- bad values: one line, no guest ---
touch "$T/file"
kv_bad "unknown user" "no such user" "${base[@]}" --user kv-no-such-user
kv_bad "unknown group" "no such group" "${base[@]}" --group kv-no-such-group
kv_bad "uid without a passwd entry" "--group" "${base[@]}" --user 3999999
kv_bad "empty user" "--user" "${base[@]}" --user=
kv_bad "jail that does not exist" "no such directory" "${base[@]}" --jail "$T/nowhere"
kv_bad "jail that is a file" "not a directory" "${base[@]}" --jail "$T/file"
kv_bad "bad seccomp value" "seccomp.*on, off or log" "${base[@]}" --seccomp=maybe

# status FIELD PID|PID/task/TID: the field's value in /proc/.../status
status() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$2/status" 2>/dev/null; }
# check_sandboxed PID: every set empty, no_new_privs, a filter on every thread.
check_sandboxed() {
	local pid=$1 f t bad=0 n=0
	for f in CapInh CapPrm CapEff CapBnd CapAmb; do
		check_eq "$f of kvmini" 0000000000000000 "$(status "$f" "$pid")"
	done
	check_eq "NoNewPrivs of kvmini" 1 "$(status NoNewPrivs "$pid")"
	check_eq "Seccomp of kvmini" 2 "$(status Seccomp "$pid")"
	for t in /proc/"$pid"/task/*; do
		n=$((n + 1))
		t=${t#/proc/}
		if [ "$(status Seccomp "$t")" != 2 ] || [ "$(status CapEff "$t")" != 0000000000000000 ] ||
			[ "$(status CapBnd "$t")" != 0000000000000000 ] || [ "$(status NoNewPrivs "$t")" != 1 ]; then
			kv_fail "thread $t ($(cat "/proc/$t/comm")): Seccomp $(status Seccomp "$t"), CapEff $(status CapEff "$t"), CapBnd $(status CapBnd "$t"), NoNewPrivs $(status NoNewPrivs "$t")"
			bad=1
		fi
	done
	[ $bad = 1 ] || kv_ok "all $n threads: Seccomp 2, CapEff and CapBnd 0, NoNewPrivs 1"
	# vCPU, blk and net threads are among them by the time the guest has a shell
	[ "$n" -ge 6 ] && kv_ok "$n threads (vCPUs, device threads, API, supervisor, console)" ||
		kv_fail "expected at least 6 threads, saw $n"
}
# send TEXT: a line on the held guest's console
send() { echo "$1" >&3 2>/dev/null; }

# --- 1. root, a tap kvmini creates, a disk, a control socket ---
truncate -s 64M "$T/disk.img"
S=$T/api.sock
kv_hold_start tap 300 "${base[@]}" --cpus 2 --disk "path=$T/disk.img" --net "tap=$TAP" --api-sock "$S"
if kv_wait_for tap KVMINI-SHELL "$KV_BOOT_TIMEOUT"; then
	pid=$(kv_vmm_pid)
	check_sandboxed "$pid"
	ip link show "$TAP" >/dev/null 2>&1 && kv_ok "tap $TAP exists while kvmini runs" ||
		kv_fail "tap $TAP does not exist while kvmini runs"
	helper=$(pgrep -P "$pid" | head -n 1)
	if [ -n "$helper" ]; then
		check_eq "the helper's name" kvmini-helper "$(cat "/proc/$helper/comm")"
		[ "$(status CapEff "$helper")" != 0000000000000000 ] && kv_ok "the helper keeps its capabilities" ||
			kv_fail "the helper has no capabilities left"
		check_eq "the helper's open descriptors (stdio and its pipe)" 4 "$(ls "/proc/$helper/fd" | wc -l)"
	else
		kv_fail "no helper process under kvmini ($pid)"
	fi
	timeout 30 "$KVMINI" ctl "$S" info >"$T/info" 2>&1 && kv_ok "the control socket serves (info)" ||
		kv_fail "ctl info failed: $(head -c 300 "$T/info")"
	# The guest's disk I/O goes through the blk threads' filters.
	send 'dd if=/dev/zero of=/dev/vda bs=64k count=32 oflag=direct && sync && echo KVMINI-IO-$((1 + 1))'
	kv_wait_for tap KVMINI-IO-2 60 && kv_ok "guest disk I/O done" || kv_fail "guest disk I/O did not finish"
else
	kv_fail "the guest (tap) did not reach its shell"
fi
send "poweroff -f"
kv_wait_pid "$KV_PID" 120
check_eq "exit status after poweroff" 0 "$KV_RC"
grep -q seccomp "$T/tap.err" && kv_fail "seccomp on stderr: $(head -c 300 "$T/tap.err")"
exec 3>&-
ip link show "$TAP" >/dev/null 2>&1 && kv_fail "tap $TAP still exists after kvmini exited" ||
	kv_ok "tap $TAP is gone after kvmini exited"
[ -e "$S" ] && kv_fail "the control socket $S is left after kvmini exited" ||
	kv_ok "the control socket is removed after kvmini exited"

# --- 2. kill -9 with a macvtap kvmini created: the helper deletes it ---
if ip link add "$VA" type veth peer name "$VB" 2>/dev/null && ip link set "$VA" up; then
	kv_hold_start mvt 300 "${base[@]}" --net "macvtap=$VA"
	if kv_wait_for mvt KVMINI-SHELL "$KV_BOOT_TIMEOUT"; then
		pid=$(kv_vmm_pid)
		mv=$(ip -o link show type macvtap | grep -c "@$VA")
		check_eq "macvtaps on $VA while kvmini runs" 1 "$mv"
		check_eq "CapEff of kvmini (macvtap)" 0000000000000000 "$(status CapEff "$pid")"
		kill -9 "$pid"
		for _ in $(seq 50); do
			[ "$(ip -o link show type macvtap | grep -c "@$VA")" = 0 ] && break
			sleep 0.2
		done
		check_eq "macvtaps on $VA after kill -9 of kvmini" 0 "$(ip -o link show type macvtap | grep -c "@$VA")"
	else
		kv_fail "the guest (macvtap) did not reach its shell"
	fi
	kv_wait_pid "$KV_PID" 30
	exec 3>&-
else
	kv_fail "cannot make a veth pair for the macvtap case"
fi

# --- 3. --user nobody --jail DIR: boots, reboots, powers off ---
J=$T/jail
mkdir -p "$J"
chmod 755 "$T" "$J"
S2=$T/jail.sock
kv_hold_start jail 400 "${base[@]}" --disk "path=$T/disk.img" --user nobody --jail "$J" --api-sock "$S2"
if kv_wait_for jail KVMINI-SHELL "$KV_BOOT_TIMEOUT"; then
	pid=$(kv_vmm_pid)
	check_eq "kvmini's uid (nobody)" "$(id -u nobody)" "$(status Uid "$pid")"
	check_eq "kvmini's gid (nobody's group)" "$(id -g nobody)" "$(status Gid "$pid")"
	check_eq "kvmini's root directory" "$J" "$(readlink "/proc/$pid/root")"
	check_sandboxed "$pid"
	send "reboot -f"
	kv_wait_for jail KVMINI-SHELL "$KV_BOOT_TIMEOUT" 2 && kv_ok "the guest rebooted to its shell in the jail" ||
		kv_fail "the guest did not come back after reboot -f"
	check_sandboxed "$pid"
else
	kv_fail "the guest (--user nobody --jail) did not reach its shell"
fi
send "poweroff -f"
kv_wait_pid "$KV_PID" 120
check_eq "exit status after poweroff (--user nobody --jail)" 0 "$KV_RC"
exec 3>&-
grep -q seccomp "$T/jail.err" && kv_fail "seccomp on stderr: $(head -c 300 "$T/jail.err")"
[ -e "$S2" ] && kv_fail "the control socket $S2 is left after kvmini exited" ||
	kv_ok "the control socket outside the jail is removed after kvmini exited"

kv_finish
