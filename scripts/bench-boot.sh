#!/bin/bash
# bench-boot.sh [--runs N] [--build DIR] [--timeout S per boot, default 120] [--json FILE]: boot time of kvmini next to QEMU
# (-accel kvm, -M microvm and -M pc), same kernel, initrd, 2 vCPUs, 512 MiB, each guest running
# kvmini.test=basic and powering off. Measures, from process start, the wall time to the
# guest's KVMINI-INIT-START line and to the process's exit; prints the medians side by side.
# Runs are interleaved (kvmini, microvm, pc, kvmini, ...); failed runs are reported, left out
# of the medians and made up for (at most N more). Without a usable /dev/kvm everything
# runs inside ONE nested boot (tests/nested/nested-run.sh): then the numbers are emulated time,
# meaningful only as ratios within the same run (KVMINI_FORCE_NESTED=1 forces that route).
# Then, when strace is installed, the set-up time before the guest runs: from the VMM's execve to
# its first KVM_RUN ioctl, both as strace -f -ttt (--seccomp-bpf: only execve and ioctl stop the
# process) timestamps them; the VMM is killed there. kvmini does not report this time itself.
# Tracing slows each traced call a little, the same for both VMMs (QEMU makes more of them).
# --json FILE also writes the figures (per-run values, medians, ok/runs) there (scripts/bench-lib.sh).
# Not part of make check or CI.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=3 build=${BUILD:-build} tmo=120 inner=0 json=''
orig=("$@")
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--timeout) tmo=$2; shift 2 ;;
	--json) json=$(realpath -m "$2"); shift 2 ;;
	--inner) inner=1; shift ;;
	-h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-boot: unknown option $1" >&2; exit 2 ;;
	esac
done
cd "$root"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

if [ "$inner" = 0 ]; then
	bench_guest "$build"
	bench_nested bench-boot $((runs * 3 * 150 + 300)) "$build" "${orig[@]}"
fi
[ -c /dev/kvm ] || { echo "bench-boot: no /dev/kvm" >&2; exit 1; }
: "${KVMINI_KERNEL:?}" "${KVMINI_INITRD:?}"

cmdline="console=ttyS0 reboot=k panic=-1 kvmini.test=basic"
qemu_common=(qemu-system-x86_64 -accel kvm -cpu host -smp 2 -m 512 -nodefaults -no-user-config
	-nographic -serial stdio -no-reboot -kernel "$KVMINI_KERNEL" -initrd "$KVMINI_INITRD" -append "$cmdline")
names=()
declare -A cmd=()
if [ -x "$build/kvmini" ]; then
	names+=(kvmini)
	cmd[kvmini]="$(printf '%q ' "$build/kvmini" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
		--cmdline "$cmdline" --cpus 2 --mem 512M --no-reboot)"
else
	echo "bench-boot: $build/kvmini does not exist (make it first): measuring QEMU only" >&2
fi
# microvm: the stock kernel finds no virtio-mmio devices there anyway; it needs the legacy PIC,
# PIT, RTC and the ISA serial port, and no option ROMs.
names+=("qemu-microvm" "qemu-pc")
cmd[qemu-microvm]="$(printf '%q ' "${qemu_common[@]}" -M microvm,x-option-roms=off,rtc=on,pit=on,pic=on,isa-serial=on)"
cmd[qemu-pc]="$(printf '%q ' "${qemu_common[@]}" -M pc)"

work=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
declare -A inits=() exits=() oks=()

# measure NAME RUN: one boot; appends seconds to inits[NAME] / exits[NAME] when it succeeded.
measure() {
	local name=$1 r=$2 log=$work/$1.$2.log t0 t1 ti rc
	t0=$EPOCHREALTIME
	set +e
	eval "timeout -k 5 $tmo ${cmd[$name]}" </dev/null 2>&1 | tee "$log" |
		{ if grep -q KVMINI-INIT-START; then echo "$EPOCHREALTIME" >"$log.init"; fi; cat >/dev/null; }
	rc=${PIPESTATUS[0]}
	set -e
	t1=$EPOCHREALTIME
	ti=$(cat "$log.init" 2>/dev/null || echo "")
	if [ "$rc" = 0 ] && [ -n "$ti" ] && grep -q KVMINI-BASIC-DONE "$log"; then
		inits[$name]+="$(awk -v a="$t0" -v b="$ti" 'BEGIN { printf "%.3f", b - a }') "
		exits[$name]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') "
		oks[$name]=$((${oks[$name]:-0} + 1))
		printf 'bench-boot: %-13s run %d: init %6.2fs  exit %6.2fs\n' "$name" "$r" \
			"$(awk -v a="$t0" -v b="$ti" 'BEGIN { print b - a }')" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" >&2
	else
		echo "bench-boot: $name run $r failed (exit $rc); last lines:" >&2
		tr -d '\r' <"$log" | tail -n 8 | sed 's/^/    /' >&2
	fi
}
median() { # numbers... -> median, or "-"
	[ $# -gt 0 ] || { echo "-"; return; }
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A tries=()
for ((r = 1; r <= runs; r++)); do
	for n in "${names[@]}"; do
		measure "$n" "$r"
		tries[$n]=$r
	done
done
# Nested guests now and then hang or reset by themselves: make up for failed runs (at most
# as many again), so that the medians rest on $runs runs where possible.
for n in "${names[@]}"; do
	while [ "${oks[$n]:-0}" -lt "$runs" ] && [ "${tries[$n]}" -lt $((2 * runs)) ]; do
		tries[$n]=$((tries[$n] + 1))
		measure "$n" "${tries[$n]}"
	done
done

# setup NAME RUN: execve to first KVM_RUN under strace; appends milliseconds to setups[NAME].
declare -A setups=() soks=() stries=()
setup() {
	local name=$1 r=$2 st=$work/$1.$2.strace bg vpid='' i s
	stries[$name]=$((${stries[$name]:-0} + 1))
	eval "strace -f -ttt --seccomp-bpf -e trace=execve,ioctl -o $(printf %q "$st") ${cmd[$name]}" </dev/null >/dev/null 2>&1 &
	bg=$!
	for ((i = 0; i < 600; i++)); do
		grep -q 'KVM_RUN' "$st" 2>/dev/null && break
		kill -0 "$bg" 2>/dev/null || break
		sleep 0.1
	done
	# The VMM is the first pid strace names; killing it ends strace too.
	vpid=$(awk 'NR == 1 { print $1; exit }' "$st" 2>/dev/null || true)
	[ -z "$vpid" ] || kill -9 "$vpid" 2>/dev/null || true
	kill "$bg" 2>/dev/null || true
	wait "$bg" 2>/dev/null || true
	s=$(awk '$3 ~ /^execve\(/ && t0 == "" { t0 = $2 } /KVM_RUN/ && t0 != "" { printf "%.4f", $2 - t0; exit }' "$st" 2>/dev/null || true)
	if [[ $s =~ ^[0-9.]+$ ]]; then
		setups[$name]+="$(awk -v s="$s" 'BEGIN { printf "%.2f", s * 1000 }') " # ms: median() rounds to 0.01
		soks[$name]=$((${soks[$name]:-0} + 1))
		printf 'bench-boot: %-13s run %d: set-up before first KVM_RUN %.4fs (under strace)\n' "$name" "$r" "$s" >&2
	else
		echo "bench-boot: $name run $r: no KVM_RUN seen under strace" >&2
	fi
}
if command -v strace >/dev/null; then
	for ((r = 1; r <= runs; r++)); do
		for n in "${names[@]}"; do setup "$n" "$r"; done
	done
else
	echo "bench-boot: strace is not installed: no set-up time" >&2
fi

echo
echo "Boot time, median of $runs run(s), 2 vCPUs, 512 MiB, $(basename "$(dirname "$KVMINI_KERNEL")")${KVMINI_NESTED:+ (nested under TCG: compare ratios only)}"
printf '%-14s %14s %14s %8s %22s\n' "" "to init (s)" "to exit (s)" "ok/runs" "set-up, strace (ms)"
for n in "${names[@]}"; do
	# shellcheck disable=SC2086
	printf '%-14s %14s %14s %8s %22s\n' "$n" "$(median ${inits[$n]:-})" "$(median ${exits[$n]:-})" "${oks[$n]:-0}/${tries[$n]}" \
		"$(median ${setups[$n]:-})"
done

if [ -n "$json" ]; then
	figfile=$work/figs.jsonl
	for q in qemu-microvm qemu-pc; do
		bench_fig "$figfile" "boot.init.${q#qemu-}" "boot to first init line (vs QEMU ${q#qemu-})" s lower \
			"${inits[kvmini]:-}" "${oks[kvmini]:-0}" "${tries[kvmini]:-0}" "${inits[$q]:-}" "${oks[$q]:-0}" "${tries[$q]:-0}" "${q#qemu-}"
		bench_fig "$figfile" "boot.exit.${q#qemu-}" "boot to exit after poweroff (vs QEMU ${q#qemu-})" s lower \
			"${exits[kvmini]:-}" "${oks[kvmini]:-0}" "${tries[kvmini]:-0}" "${exits[$q]:-}" "${oks[$q]:-0}" "${tries[$q]:-0}" "${q#qemu-}"
		command -v strace >/dev/null || continue
		bench_fig "$figfile" "boot.setup.${q#qemu-}" "set-up before first KVM_RUN, strace (vs QEMU ${q#qemu-})" ms lower \
			"${setups[kvmini]:-}" "${soks[kvmini]:-0}" "${stries[kvmini]:-0}" "${setups[$q]:-}" "${soks[$q]:-0}" "${stries[$q]:-0}" "${q#qemu-}"
	done
	bench_json "$json" boot "$figfile" "$(jq -nc --argjson r "$runs" '{runs: $r, cpus: 2, mem_mib: 512, guest: "kvmini.test=basic, then poweroff"}')"
fi
