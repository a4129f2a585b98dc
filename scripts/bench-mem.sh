#!/bin/bash
# bench-mem.sh [--runs N] [--build DIR] [--mem MIB, default 128] [--settle S, default 5] [--json FILE]:
# the VMM's own resident memory, kvmini next to QEMU (-accel kvm -cpu host -M pc, -nodefaults),
# 1 vCPU, MIB of guest memory, the same kernel and initrd, no disk or NIC, the guest idle at its
# shell (KVMINI-SHELL, then S seconds). From /proc/PID/smaps: overhead = the process's whole Rss
# minus the Rss of the guest RAM mapping (the one mapping whose Size is exactly the guest's
# memory: guest pages the guest has touched); both also reported. Runs alternate kvmini, QEMU,
# ...; prints medians (MiB) and the kvmini/QEMU ratio. Without a usable /dev/kvm everything
# runs inside ONE nested boot (the memory figures do not depend on emulation speed, but L1's
# kernel and KVM do shape them). Not part of make check or CI.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=3 build=${BUILD:-build} inner=0 mem=128 settle=5 json=''
orig=("$@")
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--settle) settle=$2; shift 2 ;;
	--json) json=$(realpath -m "$2"); shift 2 ;;
	--inner) inner=1; shift ;;
	-h | --help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-mem: unknown option $1" >&2; exit 2 ;;
	esac
done
for v in "$runs" "$mem" "$settle"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench-mem: not a positive number: $v" >&2; exit 2; }
done
cd "$root"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

if [ "$inner" = 0 ]; then
	bench_guest "$build"
	bench_nested bench-mem $((runs * 2 * 180 + 300)) "$build" "${orig[@]}"
fi
[ -c /dev/kvm ] || { echo "bench-mem: no /dev/kvm" >&2; exit 1; }
[ -x "$build/kvmini" ] || { echo "bench-mem: $build/kvmini does not exist (make it first)" >&2; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "bench-mem: qemu-system-x86_64 is not installed" >&2; exit 1; }
: "${KVMINI_KERNEL:?}" "${KVMINI_INITRD:?}"

work=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-bench-mem.XXXXXX")
pid=''
cleanup() {
	[ -z "$pid" ] || kill "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
cmdline="console=ttyS0 reboot=k panic=-1"
declare -A over=() total=() guest=() oks=()

wait_for() { # FILE STRING SECONDS
	local end=$((SECONDS + $3))
	while [ $SECONDS -lt $end ]; do
		[ -f "$1" ] && tr -d '\r' <"$1" | grep -q -- "$2" && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.2
	done
	return 1
}

# measure VMM RUN: one boot to the shell, then smaps; appends MiB to over/total/guest[VMM].
measure() {
	local vmm=$1 r=$2 log=$work/$1.$2.out sm ok=0
	# Started straight from this shell (no timeout wrapper) so that $! is the VMM itself.
	if [ "$vmm" = kvmini ]; then
		"$build/kvmini" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" --cmdline "$cmdline" \
			--cpus 1 --mem "${mem}M" </dev/null >"$log" 2>&1 &
	else
		qemu-system-x86_64 -accel kvm -cpu host -M pc -smp 1 -m "$mem" -nodefaults -no-user-config \
			-display none -serial "file:$log" -kernel "$KVMINI_KERNEL" -initrd "$KVMINI_INITRD" \
			-append "$cmdline" </dev/null >"$log.err" 2>&1 &
	fi
	pid=$!
	if wait_for "$log" KVMINI-SHELL 180; then
		sleep "$settle"
		# Rss of every mapping summed, and Rss of the guest RAM mapping (Size = guest memory).
		sm=$(awk -v want=$((mem * 1024)) '
			/^Size:/ { size = $2 }
			/^Rss:/ { all += $2; if (size == want && $2 > g) g = $2; n += (size == want) }
			END { if (n >= 1) printf "%d %d %d\n", all, g, n }' "/proc/$pid/smaps" 2>/dev/null || true)
		[ -n "$sm" ] && ok=1
	fi
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=''
	if [ $ok = 1 ]; then
		local all g
		read -r all g _ <<<"$sm"
		over[$vmm]+="$(awk -v a="$all" -v g="$g" 'BEGIN { printf "%.2f", (a - g) / 1024 }') "
		total[$vmm]+="$(awk -v a="$all" 'BEGIN { printf "%.2f", a / 1024 }') "
		guest[$vmm]+="$(awk -v g="$g" 'BEGIN { printf "%.2f", g / 1024 }') "
		oks[$vmm]=$((${oks[$vmm]:-0} + 1))
		printf 'bench-mem: %-6s run %d: Rss %7.2f MiB, guest RAM mapping %7.2f MiB, overhead %6.2f MiB\n' "$vmm" "$r" \
			"$(awk -v a="$all" 'BEGIN { print a / 1024 }')" "$(awk -v g="$g" 'BEGIN { print g / 1024 }')" \
			"$(awk -v a="$all" -v g="$g" 'BEGIN { print (a - g) / 1024 }')" >&2
	else
		echo "bench-mem: $vmm run $r failed (no shell, or no $mem MiB mapping in smaps); last lines:" >&2
		tr -d '\r' <"$log" 2>/dev/null | tail -n 6 | sed 's/^/    /' >&2
	fi
}
median() {
	[ $# -gt 0 ] || { echo "-"; return; }
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

for ((r = 1; r <= runs; r++)); do
	for vmm in kvmini qemu; do measure "$vmm" "$r"; done
done

echo
echo "Resident memory (MiB), median of $runs run(s), 1 vCPU, $mem MiB, guest idle at its shell${KVMINI_NESTED:+ (nested: under the KVM of an emulated L1 host)}"
printf '%-34s %10s %10s %12s\n' "" kvmini qemu "kvmini/qemu"
for f in over total guest; do
	case $f in
	over) label="VMM overhead (Rss - guest RAM)" ;;
	total) label="process Rss" ;;
	guest) label="guest RAM mapping Rss" ;;
	esac
	declare -n arr=$f
	# shellcheck disable=SC2086
	k=$(median ${arr[kvmini]:-}) q=$(median ${arr[qemu]:-})
	printf '%-34s %10s %10s %12s\n' "$label" "$k" "$q" \
		"$(awk -v a="$k" -v b="$q" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }')"
	unset -n arr
done
echo "(ok/runs: kvmini ${oks[kvmini]:-0}/$runs, qemu ${oks[qemu]:-0}/$runs)"

if [ -n "$json" ]; then
	figfile=$work/figs.jsonl
	bench_fig "$figfile" mem.overhead "memory: VMM Rss minus guest RAM touched" MiB lower "${over[kvmini]:-}" \
		"${oks[kvmini]:-0}" "$runs" "${over[qemu]:-}" "${oks[qemu]:-0}" "$runs" pc
	bench_fig "$figfile" mem.rss "memory: process Rss" MiB lower "${total[kvmini]:-}" \
		"${oks[kvmini]:-0}" "$runs" "${total[qemu]:-}" "${oks[qemu]:-0}" "$runs" pc
	bench_fig "$figfile" mem.guest "memory: guest RAM touched (info)" MiB info "${guest[kvmini]:-}" \
		"${oks[kvmini]:-0}" "$runs" "${guest[qemu]:-}" "${oks[qemu]:-0}" "$runs" pc
	bench_json "$json" mem "$figfile" "$(jq -nc --argjson r "$runs" --argjson m "$mem" --argjson s "$settle" \
		'{runs: $r, cpus: 1, mem_mib: $m, settle_s: $s, guest: "idle at its shell", method: "smaps: sum of Rss minus Rss of the mapping whose Size is the guest memory size"}')"
fi
