#!/bin/sh
# Guest side of scripts/bench-net.sh: eth0 as 192.0.2.2/24; the host (192.0.2.1, the tap's end)
# runs an iperf3 server. Needs /usr/bin/iperf3 in the initramfs (bench-net.sh appends it). Runs
#   iperf3 -c 192.0.2.1 -t SECS -O 1      guest -> host TCP (one stream; the first second omitted)
#   iperf3 -c 192.0.2.1 -t SECS -O 1 -R   host -> guest TCP
#   ping -c PINGS -i 0.2 192.0.2.1         ICMP echo round trip (56-byte payload)
# and prints KVMINI-BENCH-NET-tx=Mbit/s, KVMINI-BENCH-NET-rx=Mbit/s (the receiver's figure),
# KVMINI-BENCH-NET-rtt=ms (ping's average), or NAME=failed: REASON, then KVMINI-BENCH-DONE.
# With each throughput, KVMINI-BENCH-NET-NAME-steal=PERCENT: the share of the guest's CPU time
# stolen (its vCPUs runnable but not run by the host, from /proc/stat) during the run. Nested,
# the vCPU threads share the test host's CPUs with the VMM's I/O thread and the iperf3 server,
# and when that share is high the run measures the host's scheduling, not the device.
# Parameters from the kernel command line: kvmini.bench.secs (default 10), kvmini.bench.pings
# (default 50).
arg() {
	# shellcheck disable=SC2013 # words of the one-line /proc/cmdline
	for a in $(cat /proc/cmdline); do
		case $a in "kvmini.$1="*) echo "${a#kvmini."$1"=}" ;; esac
	done
}
say() { echo "KVMINI-BENCH-NET-$1=$2"; }
secs=$(arg bench.secs)
pings=$(arg bench.pings)
: "${secs:=10}" "${pings:=50}"

dmesg -n 1
ip link set eth0 up
ip addr add 192.0.2.2/24 dev eth0
i=0
until ping -c 1 -W 1 192.0.2.1 >/dev/null 2>&1; do
	i=$((i + 1))
	if [ "$i" -ge 60 ]; then
		say tx "failed: the host 192.0.2.1 does not answer pings"
		echo KVMINI-BENCH-DONE
		exit 0
	fi
	sleep 1
done
if ! command -v iperf3 >/dev/null || ! iperf3 --version >/dev/null 2>&1; then
	say tx "failed: no working iperf3 in the initramfs"
else
	# steal_total: "STOLEN TOTAL" CPU ticks, all CPUs, from /proc/stat's cpu line.
	steal_total() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print $9, t }' /proc/stat; }
	# iperf3 with -f m: the summary's receiver line ends "... NUM Mbits/sec receiver".
	iperf() { # NAME iperf3-args...
		name=$1
		shift
		st=$(steal_total)
		if iperf3 -c 192.0.2.1 -t "$secs" -O 1 -f m "$@" >/tmp/iperf.out 2>&1; then
			v=$(awk '/receiver/ { for (i = 2; i <= NF; i++) if ($i == "Mbits/sec") v = $(i - 1) } END { print v }' /tmp/iperf.out)
			[ -n "$v" ] || v="failed: no receiver line"
		else
			v="failed: $(tail -n 1 /tmp/iperf.out)"
		fi
		say "$name" "$v"
		say "$name-steal" "$(echo "$st $(steal_total)" | awk '{ t = $4 - $2; if (t > 0) printf "%.0f", 100 * ($3 - $1) / t; else print 0 }')"
	}
	iperf tx
	sleep 1
	iperf rx -R
fi
# busybox ping: "round-trip min/avg/max = 0.123/0.234/0.456 ms"
v=$(ping -c "$pings" -i 0.2 -q 192.0.2.1 2>&1 | sed -n 's|.*min/avg/max = [0-9.]*/\([0-9.]*\)/.*|\1|p')
say rtt "${v:-failed: no answers}"
dmesg | grep -E 'Fatal|BUG:|Oops|Call Trace' | sed 's/^/KVMINI-DMESG-BAD: /'
echo KVMINI-BENCH-DONE
