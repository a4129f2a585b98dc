#!/bin/sh
# Guest side of t_net.sh: virtio-net checks, one KVMINI-NET-KEY=value line each. The role comes
# from kvmini.net.role on the kernel command line:
#   g1: eth0 (2 queue pairs) on the host's bridge as 192.0.2.2; pings the host and g2, takes
#       100 MiB from the host and sends it back, sends 16 MiB of it to a peer routed behind the
#       host (198.51.100.2), then runs flows from both CPUs so that both queue pairs carry traffic;
#   g2: eth0 on the same bridge as 192.0.2.3 and eth1 on a macvtap as 203.0.113.2; pings g1 and
#       the macvtap's peer, sends it data, then waits for the host to delete eth0's tap and
#       reports the carrier.
# The host's cues arrive as lines on the console. Bulk data goes through kvmini-tcp (large writes,
# so that the guest's TCP builds large TSO frames; busybox nc writes in small pieces).
arg() {
	for a in $(cat /proc/cmdline); do
		case $a in "kvmini.$1="*) echo "${a#kvmini."$1"=}" ;; esac
	done
}
say() { echo "KVMINI-NET-$1=$2"; }
# ping_until HOST SECONDS: 0 once HOST answers.
ping_until() {
	i=0
	while [ "$i" -lt "$2" ]; do
		ping -c 1 -W 1 "$1" >/dev/null 2>&1 && return 0
		sleep 1
		i=$((i + 2))
	done
	return 1
}
# irqs NAME: interrupts of the MSI-X vector NAME (e.g. input.1), summed over the CPUs.
irqs() {
	awk -v n="$1" '$NF ~ "-" n "$" { s = 0; for (i = 2; i < NF; i++) if ($i ~ /^[0-9]+$/) s += $i; t += s } END { print t + 0 }' /proc/interrupts
}

dmesg -n 1
role=$(arg net.role)
for n in /sys/class/net/eth*; do ip link set "${n##*/}" up; done
say NICS "$(ls -d /sys/class/net/eth* 2>/dev/null | wc -l)"
say MAC0 "$(cat /sys/class/net/eth0/address)"
say FEATURES "$(cat /sys/class/net/eth0/device/features)"
say QUEUES "$(ls -d /sys/class/net/eth0/queues/rx-* | wc -l)"
say MTU "$(cat /sys/class/net/eth0/mtu)"

case $role in
g1)
	ip addr add 192.0.2.2/24 dev eth0
	ip route add default via 192.0.2.1
	ping_until 192.0.2.1 30
	say PING-HOST $?
	ping -c 3 -W 2 192.0.2.1 >/dev/null 2>&1
	say PING3-HOST $?
	ping_until 192.0.2.3 120
	say PING-G2 $?
	kvmini-tcp recv 5001 >/tmp/rx &
	pid=$!
	sleep 1
	echo KVMINI-NET-LISTEN
	wait "$pid"
	say RX-RC $?
	say RX-SIZE "$(wc -c </tmp/rx)"
	say RX-SHA "$(sha256sum /tmp/rx | cut -d' ' -f1)"
	kvmini-tcp send 192.0.2.1 5002 </tmp/rx
	say TX-RC $?
	# To B, routed: the host cuts these TSO frames up in software and B checks every checksum.
	head -c 16777216 /tmp/rx | kvmini-tcp send 198.51.100.2 5006
	say TSO-RC $?
	rm -f /tmp/rx
	# Several flows from each CPU: transmit queues follow the CPU, receive ones the flow hash.
	for i in 1 2 3 4 5 6 7 8; do
		taskset $((1 << (i % 2))) sh -c 'head -c 1048576 /dev/zero | nc 192.0.2.1 5003' &
	done
	wait
	for q in input.0 output.0 input.1 output.1; do say "IRQ-$q" "$(irqs "$q")"; done
	echo KVMINI-NET-G1-DONE
	;;
g2)
	ip addr add 192.0.2.3/24 dev eth0
	ip addr add 203.0.113.2/24 dev eth1
	ping_until 192.0.2.2 120
	say PING-G1 $?
	ping_until 203.0.113.1 30
	say PING-MV-PEER $?
	seq 1 200000 | nc 203.0.113.1 5004
	say MV-TX-RC $?
	echo KVMINI-NET-HOLD
	read -r -t 300 line
	c=1
	for i in 1 2 3 4 5 6 7 8 9 10; do
		c=$(cat /sys/class/net/eth0/carrier 2>/dev/null)
		[ "$c" = 0 ] && break
		sleep 1
	done
	say CARRIER-AFTER "$c"
	ping -c 1 -W 2 203.0.113.1 >/dev/null 2>&1
	say PING-MV-AFTER $?
	echo KVMINI-NET-G2-DONE
	;;
*)
	echo "KVMINI-NET-BAD-ROLE=$role"
	;;
esac
dmesg | grep -E 'Fatal|BUG:|Oops|Call Trace' | sed 's/^/KVMINI-DMESG-BAD: /'
