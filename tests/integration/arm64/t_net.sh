#!/bin/sh
# virtio-net on arm64: kvmini creates a tap and enslaves it to a bridge this test makes in the
# emulated host (192.0.2.1/24, a documentation range; L1 has no other network); the guest
# (guest/ping.sh, 2 vCPUs) takes 192.0.2.2 and pings the host's end, then powers off (exit 0).
# timeout: 400
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || kv_skip "needs root (a bridge and a tap)"
kv_need --net
br=kvab$$ tap=kvat$$
# shellcheck disable=SC2317 # (run by the trap)
net_cleanup() {
	ip link del "$tap" 2>/dev/null
	ip link del "$br" 2>/dev/null
	return 0
}
trap net_cleanup EXIT
# busybox ip makes a bridge when the kernel has the module; brctl is the fallback.
if ! { ip link add "$br" type bridge 2>/dev/null || brctl addbr "$br"; } ||
	! ip addr add 192.0.2.1/24 dev "$br" || ! ip link set "$br" up; then
	kv_fail "could not set up bridge $br with 192.0.2.1/24"
	kv_finish
fi
rx0=$(cat "/sys/class/net/$br/statistics/rx_packets")

kv_run net "$KV_BOOT_TIMEOUT" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
	--cmdline "$KV_CMDLINE kvmini.test=ping kvmini.net.addr=192.0.2.2/24 kvmini.net.host=192.0.2.1" \
	--cpus 2 --mem 512M --net "tap=$tap,bridge=$br"
check_rc net 0
check_out net KVMINI-NET-DONE
check_eq "net: NICs" 1 "$(kv_field net KVMINI-NET-NICS)"
mac=$(kv_field net KVMINI-NET-MAC0)
case $mac in
52:54:00:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]) kv_ok "net: default MAC $mac" ;;
*) kv_fail "net: expected a default MAC 52:54:00:xx:xx:xx, saw '$mac'" ;;
esac
check_eq "net: eth0 carrier" 1 "$(kv_field net KVMINI-NET-CARRIER)"
check_eq "net: the guest pings the host's end (192.0.2.1)" 0 "$(kv_field net KVMINI-NET-PING-HOST)"
check_eq "net: 3 more pings" 0 "$(kv_field net KVMINI-NET-PING3-HOST)"
rx1=$(cat "/sys/class/net/$br/statistics/rx_packets")
check_range "net: packets the bridge received from the guest" 4 1000000 $((rx1 - rx0))
check_no_out net KVMINI-DMESG-BAD
kv_finish
