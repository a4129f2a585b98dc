#!/bin/bash
# bench-net.sh [--runs N] [--build DIR] [--timeout S per boot, default 300] [--secs S, default 10]
#              [--pings N, default 50] [--engines "kvmini qemu-off qemu-on"] [--json FILE]:
# virtio-net of kvmini next to QEMU (-accel kvm -M pc, virtio-net-pci on a tap, vhost=off and
# vhost=on), same kernel, initrd (the test initramfs plus iperf3 and its libraries), 2 vCPUs,
# 512 MiB, the same MAC. Everything happens in a network namespace of its own (deleted at the end):
# tap kbt0 with 192.0.2.1/24 there, where an iperf3 server listens; the guest is 192.0.2.2/24
# (tests/integration/guest/bench_net.sh) and runs one TCP stream guest->host and host->guest
# (iperf3 -t SECS, first second omitted; the receiver's Gbit/s) and PINGS ICMP echoes 0.2 s apart
# (average round trip, ms). Runs alternate kvmini, QEMU vhost=off, vhost=on, kvmini, ...; prints
# medians side by side with the kvmini/QEMU ratios. Needs root. Without a usable /dev/kvm everything
# runs inside ONE nested boot: the figures are emulated, compare ratios only. Not part of make check.
# --json FILE also writes the figures (per-run values, medians, ok/runs) there (scripts/bench-lib.sh).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=3 build=${BUILD:-build} tmo=300 inner=0 secs=10 pings=50 engines="kvmini qemu-off qemu-on" json=''
orig=("$@")
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--timeout) tmo=$2; shift 2 ;;
	--secs) secs=$2; shift 2 ;;
	--pings) pings=$2; shift 2 ;;
	--engines) engines=$2; shift 2 ;;
	--json) json=$(realpath -m "$2"); shift 2 ;;
	--inner) inner=1; shift ;;
	-h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-net: unknown option $1" >&2; exit 2 ;;
	esac
done
for v in "$runs" "$tmo" "$secs" "$pings"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench-net: not a positive number: $v" >&2; exit 2; }
done
for e in $engines; do
	case $e in kvmini | qemu-off | qemu-on) ;; *) echo "bench-net: unknown engine $e (kvmini, qemu-off, qemu-on)" >&2; exit 2 ;; esac
done
cd "$root"

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

if [ "$inner" = 0 ]; then
	bench_guest "$build"
	# The test initramfs plus iperf3 and its libraries (cached in ~/.cache/kvmini/bench-net/).
	initrd=$(realpath -m "$build/guest/initrd-bench-net.cpio.gz")
	bench_extra_initrd "$KVMINI_INITRD" "$initrd" net /usr/bin/iperf3
	KVMINI_INITRD=$initrd
	bench_nested bench-net $(($(wc -w <<<"$engines") * runs * (120 + 2 * (secs + 2) + pings / 5) + 300)) "$build" "${orig[@]}"
fi
[ -c /dev/kvm ] || { echo "bench-net: no /dev/kvm" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench-net: needs root (a network namespace and a tap)" >&2; exit 1; }
[ -x "$build/kvmini" ] || { echo "bench-net: $build/kvmini does not exist (make it first)" >&2; exit 1; }
command -v iperf3 >/dev/null || { echo "bench-net: iperf3 is not installed (apt-get install iperf3)" >&2; exit 1; }
: "${KVMINI_KERNEL:?}" "${KVMINI_INITRD:?}"

work=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-bench-net.XXXXXX")
ns=kvmini-bench-net-$$
spid=''
cleanup() {
	[ -z "$spid" ] || kill "$spid" 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
inns() { ip netns exec "$ns" "$@"; }
ip netns add "$ns"
inns ip link set lo up
inns ip tuntap add dev kbt0 mode tap
inns ip addr add 192.0.2.1/24 dev kbt0
inns ip link set kbt0 up

mac=52:54:00:12:34:56
cmdline="console=ttyS0 reboot=k panic=-1 kvmini.test=bench_net kvmini.bench.secs=$secs kvmini.bench.pings=$pings"
declare -A cmd=() na=()
qemu_cmd() { # VHOST
	printf '%q ' ip netns exec "$ns" qemu-system-x86_64 -accel kvm -M pc -cpu host -smp 2 -m 512 -nodefaults \
		-no-user-config -display none -serial stdio -no-reboot -kernel "$KVMINI_KERNEL" -initrd "$KVMINI_INITRD" \
		-append "$cmdline" -netdev "tap,id=n0,ifname=kbt0,script=no,downscript=no,vhost=$1" \
		-device "virtio-net-pci,netdev=n0,mac=$mac"
}
cmd[kvmini]="$(printf '%q ' ip netns exec "$ns" "$build/kvmini" run --kernel "$KVMINI_KERNEL" \
	--initrd "$KVMINI_INITRD" --cmdline "$cmdline" --cpus 2 --mem 512M --no-reboot --net "tap=kbt0,mac=$mac")"
cmd[qemu-off]=$(qemu_cmd off)
cmd[qemu-on]=$(qemu_cmd on)
if [ ! -c /dev/vhost-net ]; then
	na[qemu-on]="no /dev/vhost-net (vhost_net module not loaded or not available)"
elif ! : 2>/dev/null <>/dev/vhost-net; then
	na[qemu-on]="/dev/vhost-net does not open read-write"
fi
names=()
for e in $engines; do
	if [ -n "${na[$e]:-}" ]; then
		echo "bench-net: $e left out: ${na[$e]}" >&2
	else
		names+=("$e")
	fi
done
figs=(tx rx rtt)
# vals[ENGINE.FIG]: per-run figures; steal[ENGINE.tx|rx]: the guest's stolen CPU time (%) per run.
declare -A vals=() steal=()

measure() { # ENGINE RUN
	local log=$work/$1.$2.log rc f v line="bench-net: $1 run $2:"
	ip -n "$ns" neigh flush dev kbt0 2>/dev/null || true
	ip netns exec "$ns" iperf3 -s -B 192.0.2.1 >"$work/iperf3-server.$1.$2.log" 2>&1 &
	spid=$!
	set +e
	(eval "timeout -k 5 $tmo ${cmd[$1]}") </dev/null >"$log" 2>&1
	rc=$?
	set -e
	kill "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	spid=''
	if ! grep -q KVMINI-BENCH-DONE "$log"; then
		echo "bench-net: $1 run $2 failed (exit $rc); last lines:" >&2
		tr -d '\r' <"$log" | tail -n 8 | sed 's/^/    /' >&2
		return
	fi
	for f in "${figs[@]}"; do
		v=$(tr -d '\r' <"$log" | sed -n "s/^KVMINI-BENCH-NET-$f=//p" | tail -n 1)
		if [[ $v =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
			if [ "$f" = rtt ]; then
				line+=" $f=${v}ms"
				vals[$1.$f]+="$v "
			else
				line+=" $f=${v}Mbit/s"
				vals[$1.$f]+="$(awk -v m="$v" 'BEGIN { printf "%.3f", m / 1000 }') "
			fi
		else
			line+=" $f=[$v]"
		fi
	done
	for f in tx rx; do
		v=$(tr -d '\r' <"$log" | sed -n "s/^KVMINI-BENCH-NET-$f-steal=//p" | tail -n 1)
		[[ $v =~ ^[0-9]+$ ]] || continue
		line+=" $f-steal=$v%"
		steal[$1.$f]+="$v "
	done
	echo "$line" >&2
	tr -d '\r' <"$log" | grep '^KVMINI-DMESG-BAD' | sed "s/^/bench-net: $1 run $2: /" >&2 || true
}
median() {
	[ $# -gt 0 ] || { echo "-"; return; }
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }

for ((r = 1; r <= runs; r++)); do
	for n in "${names[@]}"; do measure "$n" "$r"; done
done
if [ -n "$json" ]; then
	figfile=$work/figs.jsonl
	for f in "${figs[@]}"; do
		case $f in
		tx) label="net guest->host TCP" unit=Gbit/s better=higher ;;
		rx) label="net host->guest TCP" unit=Gbit/s better=higher ;;
		rtt) label="net ping RTT" unit=ms better=lower ;;
		esac
		for q in qemu-off qemu-on; do
			qr=$runs kr=$runs
			case " ${names[*]} " in *" $q "*) ;; *) qr=0 ;; esac
			case " ${names[*]} " in *" kvmini "*) ;; *) kr=0 ;; esac
			bench_fig "$figfile" "net.$f.vhost-${q#qemu-}" "$label (vs QEMU vhost=${q#qemu-})" "$unit" "$better" \
				"${vals[kvmini.$f]:-}" "$(wc -w <<<"${vals[kvmini.$f]:-}")" "$kr" "${vals[$q.$f]:-}" \
				"$(wc -w <<<"${vals[$q.$f]:-}")" "$qr" "vhost=${q#qemu-}"
		done
	done
	st='{}'
	for k in "${!steal[@]}"; do
		st=$(jq -c --arg k "$k" --arg v "${steal[$k]}" '.[$k] = [$v | splits(" +") | select(length > 0) | tonumber]' <<<"$st")
	done
	bench_json "$json" net "$figfile" "$(jq -nc --argjson r "$runs" --argjson s "$secs" --argjson p "$pings" \
		--arg na "${na[qemu-on]:-}" --argjson st "$st" \
		'{runs: $r, iperf3_secs: $s, pings: $p, cpus: 2, mem_mib: 512, vhost_on_unavailable: $na, guest_steal_pct: $st}')"
fi

echo
echo "virtio-net on a tap, median of $runs run(s), 2 vCPUs, 512 MiB; iperf3 one TCP stream ${secs} s each way (Gbit/s at the receiver), ping: $pings ICMP echoes 0.2 s apart (average round trip)"
if [ -n "${KVMINI_NESTED:-}" ]; then
	echo "NESTED under TCG (no usable /dev/kvm here): the figures are emulated and say nothing about real speed; compare the ratios only"
fi
printf '%-24s %10s %16s %15s %11s %10s\n' figure kvmini "qemu(vhost=off)" "qemu(vhost=on)" kvmini/off kvmini/on
for f in "${figs[@]}"; do
	case $f in
	tx) label="guest->host TCP Gbit/s" ;;
	rx) label="host->guest TCP Gbit/s" ;;
	rtt) label="ping RTT ms" ;;
	esac
	declare -A med=()
	for e in kvmini qemu-off qemu-on; do
		if [ -n "${na[$e]:-}" ]; then
			med[$e]=n/a
		else
			# shellcheck disable=SC2086
			med[$e]=$(median ${vals[$e.$f]:-})
		fi
	done
	printf '%-24s %10s %16s %15s %11s %10s\n' "$label" "${med[kvmini]}" "${med[qemu-off]}" "${med[qemu-on]}" \
		"$(ratio "${med[kvmini]}" "${med[qemu-off]}")" "$(ratio "${med[kvmini]}" "${med[qemu-on]}")"
done
for f in tx rx; do
	declare -A med=()
	for e in kvmini qemu-off qemu-on; do
		# shellcheck disable=SC2086
		med[$e]=$(median ${steal[$e.$f]:-})
	done
	printf '%-24s %10s %16s %15s\n' "guest steal in $f %" "${med[kvmini]}" "${med[qemu-off]}" "${med[qemu-on]}"
done
echo "(ratios kvmini/QEMU: above 1 is better for kvmini in throughput, below 1 in round-trip time; guest"
echo " steal: the share of the guest's CPU time its vCPUs waited for a host CPU during the TCP runs)"
if [ -n "${na[qemu-on]:-}" ]; then echo "qemu(vhost=on): n/a: ${na[qemu-on]}"; fi
