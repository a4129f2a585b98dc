#!/bin/bash
# bench-blk.sh [--runs N] [--build DIR] [--timeout S per boot, default 300] [--formats "raw qcow2"] [--json FILE]:
# virtio-blk throughput of kvmini next to QEMU (-accel kvm -M pc, virtio-blk-pci, aio=threads), same
# kernel, initrd, 2 vCPUs, 512 MiB, the same 512 MiB image per format (raw: zeroes; qcow2: made by
# qemu-img with preallocation=metadata, so that both measure steady-state I/O rather than cluster
# allocation) on tmpfs with the host's page cache in front
# (cache=writeback for both: tmpfs under the nested host's 6.1 kernel has no O_DIRECT). The guest
# (tests/integration/guest/bench_blk.sh) runs O_DIRECT dd: 1 MiB sequential write and read, 4 KiB
# reads and writes at queue depth 1, random 4 KiB reads at depth 1 and 32 and writes at 1. Runs alternate kvmini, QEMU, kvmini, ...; prints medians
# (MB/s and IOPS) side by side with the kvmini/QEMU ratio. Without a usable /dev/kvm everything
# runs inside ONE nested boot: the figures are emulated, compare ratios only. Not part of make check.
# --json FILE also writes the figures (per-run values, medians, ok/runs) there (scripts/bench-lib.sh).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=3 build=${BUILD:-build} tmo=300 inner=0 formats="raw qcow2" json=''
orig=("$@")
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--timeout) tmo=$2; shift 2 ;;
	--formats) formats=$2; shift 2 ;;
	--json) json=$(realpath -m "$2"); shift 2 ;;
	--inner) inner=1; shift ;;
	-h | --help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-blk: unknown option $1" >&2; exit 2 ;;
	esac
done
cd "$root"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

if [ "$inner" = 0 ]; then
	kdir=$(tests/guest/fetch-kernel.sh)
	initrd=$(realpath -m "$build/guest/initrd.cpio.gz")
	tests/guest/build-initrd.sh "$initrd"
	export KVMINI_KERNEL_DIR=$kdir KVMINI_KERNEL=$kdir/vmlinuz KVMINI_INITRD=$initrd
	if ! why=$(tests/nested/nested-run.sh --check-kvm); then
		echo "bench-blk: $why: running everything inside one nested L1 guest (emulated: compare ratios only)" >&2
		nf=$(wc -w <<<"$formats")
		exec tests/nested/nested-run.sh --timeout "${KVMINI_BENCH_TIMEOUT:-$((nf * runs * 2 * 200 + 300))}" -- \
			"$0" --inner "${orig[@]}" --build "$(realpath -m "$build")"
	fi
fi
[ -c /dev/kvm ] || { echo "bench-blk: no /dev/kvm" >&2; exit 1; }
[ -x "$build/kvmini" ] || { echo "bench-blk: $build/kvmini does not exist (make it first)" >&2; exit 1; }
: "${KVMINI_KERNEL:?}" "${KVMINI_INITRD:?}"

work=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-bench-blk.XXXXXX")
trap 'rm -rf "$work"' EXIT
dir=/dev/shm
[ -n "${KVMINI_NESTED:-}" ] && dir=/run
imgs=()
trap 'rm -rf "$work" "${imgs[@]}"' EXIT
cmdline="console=ttyS0 reboot=k panic=-1 kvmini.test=bench_blk"
declare -A cmd=()
names=()
for fmt in $formats; do
	img=$(mktemp "$dir/kvmini-bench-blk.XXXXXX.$fmt")
	imgs+=("$img")
	case $fmt in
	raw) dd if=/dev/zero of="$img" bs=1M count=512 status=none ;;
	qcow2) qemu-img create -q -f qcow2 -o preallocation=metadata "$img" 512M ;;
	*) echo "bench-blk: unknown format $fmt (raw or qcow2)" >&2; exit 2 ;;
	esac
	cmd[kvmini-$fmt]="$(printf '%q ' "$build/kvmini" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
		--cmdline "$cmdline" --cpus 2 --mem 512M --no-reboot --disk "path=$img,format=$fmt")"
	cmd[qemu-$fmt]="$(printf '%q ' qemu-system-x86_64 -accel kvm -cpu host -M pc -smp 2 -m 512 -nodefaults \
		-no-user-config -nographic -serial stdio -no-reboot -kernel "$KVMINI_KERNEL" -initrd "$KVMINI_INITRD" \
		-append "$cmdline" -drive "file=$img,format=$fmt,if=none,id=d0,cache=writeback,aio=threads" \
		-device virtio-blk-pci,drive=d0)"
	names+=("kvmini-$fmt" "qemu-$fmt")
done
tests=(seqwrite-1M seqread-1M read-4k-qd1 write-4k-qd1 randread-4k-qd1 randread-4k-qd32 randwrite-4k-qd1)
declare -A vals=()

measure() { # NAME RUN
	local log=$work/$1.$2.log rc t
	set +e
	eval "timeout -k 5 $tmo ${cmd[$1]}" </dev/null >"$log" 2>&1
	rc=$?
	set -e
	if ! grep -q KVMINI-BENCH-DONE "$log"; then
		echo "bench-blk: $1 run $2 failed (exit $rc); last lines:" >&2
		tr -d '\r' <"$log" | tail -n 8 | sed 's/^/    /' >&2
		return
	fi
	local line="bench-blk: $1 run $2:"
	for t in "${tests[@]}"; do
		local v secs bytes
		v=$(tr -d '\r' <"$log" | sed -n "s/^KVMINI-BENCH-$t=//p" | tail -n 1)
		secs=${v%%:*} bytes=${v#*:}
		[[ $secs =~ ^[0-9.]+$ ]] && [ "$secs" != 0.00 ] || { line+=" $t=$v"; continue; }
		if [[ $t == *4k* ]]; then
			vals[$1.$t]+="$(awk -v s="$secs" -v b="$bytes" 'BEGIN { printf "%.0f", b / 4096 / s }') "
		else
			vals[$1.$t]+="$(awk -v s="$secs" -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 / s }') "
		fi
		line+=" $t=${secs}s"
	done
	echo "$line" >&2
}
median() {
	[ $# -gt 0 ] || { echo "-"; return; }
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

for ((r = 1; r <= runs; r++)); do
	for n in "${names[@]}"; do measure "$n" "$r"; done
done
if [ -n "$json" ]; then
	figfile=$work/figs.jsonl
	for fmt in $formats; do
		for t in "${tests[@]}"; do
			unit=MB/s
			[[ $t == *4k* ]] && unit=IOPS
			# shellcheck disable=SC2086
			bench_fig "$figfile" "blk.$fmt.$t" "blk $fmt $t" "$unit" higher "${vals[kvmini-$fmt.$t]:-}" \
				"$(wc -w <<<"${vals[kvmini-$fmt.$t]:-}")" "$runs" "${vals[qemu-$fmt.$t]:-}" \
				"$(wc -w <<<"${vals[qemu-$fmt.$t]:-}")" "$runs" pc
		done
	done
	bench_json "$json" blk "$figfile" "$(jq -nc --argjson r "$runs" --arg f "$formats" --arg d "$dir" \
		'{runs: $r, formats: $f, image_dir: $d, image_mib: 512, cpus: 2, mem_mib: 512, guest: "O_DIRECT dd and kvmini-blkio (tests/integration/guest/bench_blk.sh)"}')"
fi

for fmt in $formats; do
	echo
	echo "virtio-blk, $fmt image, median of $runs run(s), 2 vCPUs, 512 MiB, image on $dir${KVMINI_NESTED:+ (nested under TCG: compare ratios only)}"
	printf '%-14s %12s %12s %14s\n' "" kvmini qemu "kvmini/qemu"
	for t in "${tests[@]}"; do
		# shellcheck disable=SC2086
		k=$(median ${vals[kvmini-$fmt.$t]:-}) q=$(median ${vals[qemu-$fmt.$t]:-})
		unit="MB/s"
		[[ $t == *4k* ]] && unit=IOPS
		ratio=$(awk -v a="$k" -v b="$q" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }')
		printf '%-14s %12s %12s %14s\n' "$t ($unit)" "$k" "$q" "$ratio"
	done
done
