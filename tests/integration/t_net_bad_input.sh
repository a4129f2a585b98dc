#!/bin/bash
# Bad --net values and unusable interfaces: each must end kvmini with a non-zero status below 124
# and exactly one stderr line "kvmini: ..." naming the problem, before any guest runs. kvmini runs
# inside a network namespace this test creates, where it may create taps and macvtaps; the
# namespace must hold no tap or macvtap afterwards (nothing left behind by a failed start).
# timeout: 300
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || kv_skip "needs root (a network namespace with taps)"
A=kvn-bad-$$
trap 'kv_cleanup; ip netns del "$A" 2>/dev/null' EXIT
ip netns add "$A" && ip netns exec "$A" ip link set lo up || { kv_fail "cannot create a network namespace"; kv_finish; }
# An existing single-queue tap, a veth to hang macvtaps on, and a bridge.
ip netns exec "$A" ip tuntap add dev sq0 mode tap &&
	ip netns exec "$A" ip link add dm0 type veth peer name dm1 &&
	ip netns exec "$A" ip link add br0 type bridge || { kv_fail "cannot create the test interfaces"; kv_finish; }
real=$KVMINI
KVMINI=$T/kvmini-in-ns
printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$A" "$real" >"$KVMINI"
chmod +x "$KVMINI"

n=0
# bad WHAT KEYWORD ARGS...: one case; KEYWORD must appear (any case) after the "kvmini: " prefix.
bad() {
	local what=$1 keyword=$2 lines line
	shift 2
	n=$((n + 1))
	kv_run "bad$n" 30 "$@" >/dev/null
	KV_LAST=""
	lines=$(grep -c '' "$T/bad$n.err")
	line=$(head -n 1 "$T/bad$n.err")
	if [ "$KV_RC" -eq 0 ] || [ "$KV_RC" -ge 124 ]; then
		kv_fail "$what (kvmini $*): expected a non-zero exit status below 124, saw $KV_RC; stderr: $(head -c 300 "$T/bad$n.err")"
	elif [ "$lines" != 1 ]; then
		kv_fail "$what (kvmini $*): expected exactly one stderr line, saw $lines:"
		head -n 10 "$T/bad$n.err" | sed 's/^/    | /'
	elif [[ $line != "kvmini: "* ]]; then
		kv_fail "$what (kvmini $*): expected stderr to start with 'kvmini: ', saw '$line'"
	elif ! grep -qiF -- "$keyword" <<<"${line#kvmini: }"; then
		kv_fail "$what (kvmini $*): expected '$keyword' in the message, saw '$line'"
	else
		kv_ok "$what: exit $KV_RC, '$line'"
	fi
}

K=$KVMINI_KERNEL
bad "--net without a backend" "tap" run --kernel "$K" --net mac=52:54:00:00:00:01
bad "--net with two backends" "tap" run --kernel "$K" --net tap=t0,macvtap=dm0
bad "--net unknown key" "colour" run --kernel "$K" --net tap=t0,colour=red
bad "--net multicast MAC" "unicast" run --kernel "$K" --net tap=t0,mac=01:00:5e:00:00:01
bad "--net malformed MAC" "mac" run --kernel "$K" --net tap=t0,mac=52:54:00:zz:00:01
bad "--net queues=0" "queues" run --kernel "$K" --net tap=t0,queues=0
bad "--net queues=99" "queues" run --kernel "$K" --net tap=t0,queues=99
bad "--net interface name too long" "name" run --kernel "$K" --net tap=abcdefghijklmnopq
bad "--net bridge with macvtap" "bridge" run --kernel "$K" --net macvtap=dm0,bridge=br0
bad "--net bad macvtap mode" "mode" run --kernel "$K" --net macvtap=dm0,mode=sideways
bad "macvtap on a missing interface" "nosuch0" run --kernel "$K" --net macvtap=nosuch0
bad "tap on a missing bridge" "nobr0" run --kernel "$K" --net tap=t1,bridge=nobr0
bad "queues=2 on a single-queue tap" "single-queue" run --kernel "$K" --net tap=sq0,queues=2
bad "fd that is not a tap" "fd" run --kernel "$K" --net fd=0
bad "fd that is not open" "fd" run --kernel "$K" --net fd=77

left=$(ip netns exec "$A" ip -o link show | grep -cE 'macvtap|: t[01][:@]')
check_eq "interfaces left behind by the failed starts" 0 "$left"
kv_finish
