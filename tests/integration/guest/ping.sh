#!/bin/sh
# Guest side of a plain network check (tests/integration/arm64/t_net.sh): eth0 gets the address
# kvmini.net.addr (CIDR), then pings kvmini.net.host until it answers (60 s at most).
# One KVMINI-NET-KEY=value line each.
# shellcheck disable=SC2013 # (words, not lines)
arg() {
	for a in $(cat /proc/cmdline); do
		case $a in "kvmini.$1="*) echo "${a#kvmini."$1"=}" ;; esac
	done
}
say() { echo "KVMINI-NET-$1=$2"; }
dmesg -n 1
# shellcheck disable=SC2012 # (plain interface names)
say NICS "$(ls -d /sys/class/net/eth* 2>/dev/null | wc -l)"
say MAC0 "$(cat /sys/class/net/eth0/address 2>/dev/null)"
ip link set eth0 up
ip addr add "$(arg net.addr)" dev eth0
host=$(arg net.host)
rc=1 i=0
while [ "$i" -lt 60 ]; do
	if ping -c 1 -W 1 "$host" >/dev/null 2>&1; then rc=0; break; fi
	sleep 1
	i=$((i + 2))
done
say PING-HOST "$rc"
ping -c 3 -W 2 "$host" >/dev/null 2>&1
say PING3-HOST $?
say CARRIER "$(cat /sys/class/net/eth0/carrier 2>/dev/null)"
dmesg | grep -E 'Fatal|BUG:|Oops|Call Trace' | sed 's/^/KVMINI-DMESG-BAD: /'
echo KVMINI-NET-DONE
