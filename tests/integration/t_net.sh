#!/bin/bash
# virtio-net end to end, two guests at once, everything inside network namespaces this test
# creates (and deletes) with documentation-range addresses; nothing touches the machine's own
# interfaces. Namespace A holds kvmini and the guests' host side:
#   bridge kvbr (192.0.2.1/24) <- taps kt1 (g1: 2 vCPUs, queues=2, created multi-queue by kvmini
#   and enslaved with bridge=) and kt2 (g2, its first NIC);
#   veth vr <-> vb in namespace B (198.51.100.2/24), routed by A: vr has TSO/GSO off, so the
#   guest's large TCP segments are cut up in software on the way, and vb has receive checksum
#   offload off, so B's TCP checks every checksum;
#   veth vm <-> vp in namespace C (203.0.113.1/24): g2's second NIC is a macvtap on vm (bridge
#   mode), created by kvmini and removed when it exits.
# Checks: each guest pings the host / each other / the macvtap peer; 100 MiB of random data goes
# host -> g1 and back, both intact (sha256); the frames g1 sent through its tap averaged far above
# the MTU (TSO) and the ones it got did too (guest TSO); 16 MiB g1 -> B arrive intact with no
# checksum errors in B although A segmented g1's TSO frames in software on the way; g1's
# second queue pair interrupts in both directions; g2's tap deleted while it runs: kvmini says so
# and the guest's carrier drops; MACs are the stable defaults or the one given.
# timeout: 900
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || kv_skip "needs root (network namespaces, taps, bridges)"
command -v socat >/dev/null || { kv_fail "socat is not installed (scripts/install-deps.sh)"; kv_finish; }
command -v ethtool >/dev/null || { kv_fail "ethtool is not installed (scripts/install-deps.sh)"; kv_finish; }

A=kvn-a-$$ B=kvn-b-$$ C=kvn-c-$$
net_cleanup() {
	kv_cleanup
	for n in $A $B $C; do ip netns del "$n" 2>/dev/null; done
	return 0
}
trap net_cleanup EXIT
inA() { ip netns exec "$A" "$@"; }
inB() { ip netns exec "$B" "$@"; }
inC() { ip netns exec "$C" "$@"; }
setup() {
	ip netns add $A && ip netns add $B && ip netns add $C &&
		inA ip link set lo up && inB ip link set lo up && inC ip link set lo up &&
		inA ip link add kvbr type bridge && inA ip addr add 192.0.2.1/24 dev kvbr &&
		inA ip link set kvbr up &&
		inA ip link add vr type veth peer name vb netns $B &&
		inA ip addr add 198.51.100.1/24 dev vr && inA ip link set vr up &&
		inA ethtool -K vr tso off gso off >/dev/null &&
		inB ip addr add 198.51.100.2/24 dev vb && inB ip link set vb up &&
		inB ethtool -K vb rx off >/dev/null &&
		inB ip route add default via 198.51.100.1 &&
		inA sysctl -q -w net.ipv4.ip_forward=1 &&
		inA ip link add vm type veth peer name vp netns $C && inA ip link set vm up &&
		inC ip addr add 203.0.113.1/24 dev vp && inC ip link set vp up
}
setup || { kv_fail "could not set up the namespaces, bridge and veths"; kv_finish; }

# kvmini runs in A: a wrapper keeps kv_start's interface (and the pid: exec).
real=$KVMINI
KVMINI=$T/kvmini-in-a
printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$A" "$real" >"$KVMINI"
chmod +x "$KVMINI"

data=$T/data
head -c 100M /dev/urandom >"$data"
want=$(kv_sha "$data")
# A takes g1's copy back (5002) and sinks the multiqueue flows (5003); B takes 16 MiB routed
# (5006); C takes g2's data through the macvtap (5004).
inA socat -u TCP-LISTEN:5002,reuseaddr OPEN:"$T/back",creat,trunc &
KV_PIDS+=($!)
inA socat -u TCP-LISTEN:5003,reuseaddr,fork OPEN:/dev/null &
KV_PIDS+=($!)
inB socat -u TCP-LISTEN:5006,reuseaddr OPEN:"$T/tso",creat,trunc &
KV_PIDS+=($!)
inC socat -u TCP-LISTEN:5004,reuseaddr OPEN:"$T/mv",creat,trunc &
KV_PIDS+=($!)
csum0=$(inB nstat -az TcpInCsumErrors | awk '/TcpInCsumErrors/ { print $2 }')

# g2 holds at the end (KVMINI-NET-HOLD) until we deleted its tap: its console input is a fifo.
mkfifo "$T/g2.in"
kv_start g1 $((KV_BOOT_TIMEOUT + 600)) run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE kvmini.test=net kvmini.net.role=g1" --cpus 2 --mem 512M \
	--net tap=kt1,bridge=kvbr,queues=2
g1=$KV_PID
KV_STDIN=$T/g2.in kv_start g2 $((KV_BOOT_TIMEOUT + 600)) run --kernel "$KVMINI_KERNEL" \
	--initrd "$KVMINI_INITRD" --cmdline "$KV_CMDLINE kvmini.test=net kvmini.net.role=g2" --mem 256M \
	--net tap=kt2,bridge=kvbr,mac=52:54:00:0a:0b:0c --net macvtap=vm,mode=bridge
g2=$KV_PID
exec 4>"$T/g2.in"

# The guests print nothing while 100 MiB go each way: allow long silences.
KV_STALL=400
# host -> g1, once g1 listens.
kt1() { inA cat /sys/class/net/kt1/statistics/"$1"_bytes /sys/class/net/kt1/statistics/"$1"_packets | paste -sd' '; }
if kv_wait_for g1 KVMINI-NET-LISTEN $((KV_BOOT_TIMEOUT + 240)) 1 "$g1"; then
	read -r b0 p0 <<<"$(kt1 tx)"
	t0=$(date +%s.%N)
	inA socat -u -b 262144 FILE:"$data" TCP:192.0.2.2:5001,retry=10,interval=1 2>"$T/send.err"
	check_eq "host -> g1: socat exit status" 0 $?
	echo "  (host -> g1: 100 MiB in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s, for information)"
	read -r b1 p1 <<<"$(kt1 tx)"
	# What kvmini read from the tap for g1 (guest TSO: whole GSO frames) averaged well above the MTU.
	check_range "host -> g1: average frame kvmini received from the tap (bytes)" 3000 70000 $(((b1 - b0) / (p1 - p0 > 0 ? p1 - p0 : 1)))
	# g1 hashes what it got before it sends it back: the baseline for its own frames.
	read -r b0 p0 <<<"$(kt1 rx)"
else
	kv_fail "g1 did not start listening"
fi
t0=$(date +%s)
if kv_wait_for g1 KVMINI-NET-TX-RC 400 1 "$g1"; then
	echo "  (g1 -> host: 100 MiB within $(($(date +%s) - t0)) s, for information)"
	read -r b1 p1 <<<"$(kt1 rx)"
	check_range "g1 -> host: average frame kvmini wrote to the tap (bytes; TSO makes it far above the MTU)" 3000 70000 $(((b1 - b0) / (p1 - p0 > 0 ? p1 - p0 : 1)))
fi
kv_wait_for g1 KVMINI-NET-G1-DONE 400 1 "$g1"
if kv_wait_for g2 KVMINI-NET-HOLD 200 1 "$g2"; then
	inA ip link del kt2
	echo go >&4
fi
exec 4>&-
kv_wait_pid "$g1" 200
check_rc g1 0
KV_LAST=g2
kv_wait_pid "$g2" 200
check_rc g2 0

# g1
check_eq "g1: NICs" 1 "$(kv_field g1 KVMINI-NET-NICS)"
check_eq "g1: receive queues (queues=2)" 2 "$(kv_field g1 KVMINI-NET-QUEUES)"
mac1=$(kv_field g1 KVMINI-NET-MAC0)
if [[ $mac1 =~ ^52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$ ]]; then kv_ok "g1: default MAC $mac1"; else kv_fail "g1: expected a default MAC 52:54:00:xx:xx:xx, saw '$mac1'"; fi
# Negotiated virtio-net features (the guest's sysfs bit string: character N+1 is bit N).
f=$(kv_field g1 KVMINI-NET-FEATURES)
for b in CSUM:0 GUEST_CSUM:1 MAC:5 GUEST_TSO4:7 GUEST_TSO6:8 GUEST_ECN:9 HOST_TSO4:11 HOST_TSO6:12 \
	HOST_ECN:13 MRG_RXBUF:15 STATUS:16 CTRL_VQ:17 CTRL_RX:18 MQ:22 VERSION_1:32; do
	check_eq "g1: feature ${b%:*} negotiated" 1 "${f:${b#*:}:1}"
done
check_eq "g1 pings the host (192.0.2.1)" 0 "$(kv_field g1 KVMINI-NET-PING-HOST)"
check_eq "g1: 3 more pings to the host" 0 "$(kv_field g1 KVMINI-NET-PING3-HOST)"
check_eq "g1 pings g2 across the bridge" 0 "$(kv_field g1 KVMINI-NET-PING-G2)"
check_eq "host -> g1: bytes received" $((100 << 20)) "$(kv_field g1 KVMINI-NET-RX-SIZE)"
check_eq "host -> g1: sha256 of what g1 received" "$want" "$(kv_field g1 KVMINI-NET-RX-SHA)"
check_eq "g1 -> host: kvmini-tcp exit status" 0 "$(kv_field g1 KVMINI-NET-TX-RC)"
check_eq "g1 -> host: sha256 of what the host received" "$want" "$(kv_sha "$T/back" 2>/dev/null)"
check_eq "g1 -> B (routed, segmented in software): kvmini-tcp exit status" 0 "$(kv_field g1 KVMINI-NET-TSO-RC)"
check_eq "g1 -> B: sha256 of what B received" "$(kv_sha "$data" 0 16)" "$(kv_sha "$T/tso" 2>/dev/null)"
csum1=$(inB nstat -az TcpInCsumErrors | awk '/TcpInCsumErrors/ { print $2 }')
check_eq "B: TCP checksum errors (software-segmented copies of g1's TSO frames)" "${csum0:-0}" "${csum1:-0}"
for q in input.0 output.0 input.1 output.1; do
	n=$(kv_field g1 "KVMINI-NET-IRQ-$q")
	if [[ $n =~ ^[0-9]+$ ]] && [ "$n" -gt 0 ]; then kv_ok "g1: $q interrupts: $n"; else kv_fail "g1: expected $q interrupts (queue pair $((${q#*.} + 1)) in use), saw '$n'"; fi
done
check_no_out g1 KVMINI-DMESG-BAD

# g2
check_eq "g2: NICs" 2 "$(kv_field g2 KVMINI-NET-NICS)"
check_eq "g2: the MAC given" 52:54:00:0a:0b:0c "$(kv_field g2 KVMINI-NET-MAC0)"
check_eq "g2 pings g1 across the bridge" 0 "$(kv_field g2 KVMINI-NET-PING-G1)"
check_eq "g2 pings C's peer through its macvtap" 0 "$(kv_field g2 KVMINI-NET-PING-MV-PEER)"
check_eq "g2 -> C through the macvtap: nc exit status" 0 "$(kv_field g2 KVMINI-NET-MV-TX-RC)"
check_eq "g2 -> C: what C received" "$(seq 1 200000 | sha256sum | cut -d' ' -f1)" "$(kv_sha "$T/mv" 2>/dev/null)"
check_eq "g2: eth0's carrier after its tap was deleted" 0 "$(kv_field g2 KVMINI-NET-CARRIER-AFTER)"
check_eq "g2: the macvtap still works after that" 0 "$(kv_field g2 KVMINI-NET-PING-MV-AFTER)"
if grep -q "kt2 went away; the link is down" "$T/g2.err"; then kv_ok "kvmini reported the tap gone"; else kv_fail "kvmini did not report kt2 gone (stderr: $(head -c 300 "$T/g2.err"))"; fi
check_no_out g2 KVMINI-DMESG-BAD
left=$(inA ip -o link show type macvtap 2>/dev/null | wc -l)
check_eq "macvtaps left in A after g2 exited" 0 "$left"
kv_finish
