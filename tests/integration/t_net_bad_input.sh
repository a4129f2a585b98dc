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

K=$KVMINI_KERNEL
kv_bad "--net without a backend" "tap" run --kernel "$K" --net mac=52:54:00:00:00:01
kv_bad "--net with two backends" "tap" run --kernel "$K" --net tap=t0,macvtap=dm0
kv_bad "--net unknown key" "colour" run --kernel "$K" --net tap=t0,colour=red
kv_bad "--net multicast MAC" "unicast" run --kernel "$K" --net tap=t0,mac=01:00:5e:00:00:01
kv_bad "--net malformed MAC" "mac" run --kernel "$K" --net tap=t0,mac=52:54:00:zz:00:01
kv_bad "--net queues=0" "queues" run --kernel "$K" --net tap=t0,queues=0
kv_bad "--net queues=99" "queues" run --kernel "$K" --net tap=t0,queues=99
kv_bad "--net interface name too long" "name" run --kernel "$K" --net tap=abcdefghijklmnopq
kv_bad "--net bridge with macvtap" "bridge" run --kernel "$K" --net macvtap=dm0,bridge=br0
kv_bad "--net bad macvtap mode" "mode" run --kernel "$K" --net macvtap=dm0,mode=sideways
kv_bad "macvtap on a missing interface" "nosuch0" run --kernel "$K" --net macvtap=nosuch0
kv_bad "tap on a missing bridge" "nobr0" run --kernel "$K" --net tap=t1,bridge=nobr0
kv_bad "queues=2 on a single-queue tap" "single-queue" run --kernel "$K" --net tap=sq0,queues=2
kv_bad "fd that is not a tap" "fd" run --kernel "$K" --net fd=0
kv_bad "fd that is not open" "fd" run --kernel "$K" --net fd=77

left=$(ip netns exec "$A" ip -o link show | grep -cE 'macvtap|: t[01][:@]')
check_eq "interfaces left behind by the failed starts" 0 "$left"
kv_finish
