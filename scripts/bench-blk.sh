#!/bin/bash
# bench-blk.sh [--runs N] [--build DIR] [--timeout S per boot, default 300] [--formats "raw qcow2"] [--json FILE]
#              [--tool fio|dd, default fio when /usr/bin/fio exists] [--secs S per fio job, default 5]:
# virtio-blk throughput of kvmini next to QEMU (-accel kvm -M pc, virtio-blk-pci, aio=threads), same
# kernel, initrd, 2 vCPUs, 512 MiB, the same 512 MiB image per format (raw: zeroes; qcow2: made by
# qemu-img with preallocation=falloc, so that both measure steady-state I/O rather than cluster
# allocation, and so that every page of both images is already in tmpfs: with metadata-only
# preallocation the qcow2 file was sparse, and whichever VMM wrote it first paid for tmpfs
# allocating and zeroing its pages, 3x the time per 1 MiB write nested) on tmpfs with the host's page cache in front
# (cache=writeback for both: tmpfs under the nested host's 6.1 kernel has no O_DIRECT). The guest
# (tests/integration/guest/bench_blk.sh) runs O_DIRECT dd: 1 MiB sequential write and read, 4 KiB
# reads and writes at queue depth 1, random 4 KiB reads at depth 1 and 32 and writes at 1. Runs alternate kvmini, QEMU, kvmini, ...; prints medians
# (MB/s and IOPS) side by side with the kvmini/QEMU ratio. Without a usable /dev/kvm everything
# runs inside ONE nested boot: the figures are emulated, compare ratios only. Not part of make check.
# --tool fio (tests/integration/guest/bench_fio.sh; the initramfs gets Debian's fio and its libraries
# appended): libaio, direct=1, 4 KiB random read and write at queue depth 1 and 32, 1 MiB sequential
# read and write at depth 1, S seconds each: IOPS, MB/s, and the VMM process's host CPU time per
# I/O (utime+stime from /proc/PID/stat, sampled when the guest prints a job's BEGIN and END lines,
# divided by the I/Os fio did), also without its guest_time (the vCPUs running guest code), which
# leaves the VMM's own work: exits, device emulation, I/O submission.
# --json FILE also writes the figures (per-run values, medians, ok/runs) there (scripts/bench-lib.sh).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=3 build=${BUILD:-build} tmo=300 inner=0 formats="raw qcow2" json='' tool='' secs=5
orig=("$@")
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--timeout) tmo=$2; shift 2 ;;
	--formats) formats=$2; shift 2 ;;
	--tool) tool=$2; shift 2 ;;
	--secs) secs=$2; shift 2 ;;
	--json) json=$(realpath -m "$2"); shift 2 ;;
	--inner) inner=1; shift ;;
	-h | --help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-blk: unknown option $1" >&2; exit 2 ;;
	esac
done
if [ -z "$tool" ]; then
	tool="dd"
	[ -x /usr/bin/fio ] && tool=fio
fi
case $tool in fio | dd) ;; *) echo "bench-blk: unknown --tool $tool (fio or dd)" >&2; exit 2 ;; esac
for v in "$runs" "$tmo" "$secs"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench-blk: not a positive number: $v" >&2; exit 2; }
done
cd "$root"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

if [ "$inner" = 0 ]; then
	bench_guest "$build"
	if [ "$tool" = fio ]; then
		# The test initramfs plus fio and its libraries (cached in ~/.cache/kvmini/bench-blk/).
		initrd=$(realpath -m "$build/guest/initrd-bench-blk.cpio.gz")
		bench_extra_initrd "$KVMINI_INITRD" "$initrd" blk /usr/bin/fio
		KVMINI_INITRD=$initrd
	fi
	bench_nested bench-blk $(($(wc -w <<<"$formats") * runs * 2 * 200 + 300)) "$build" "${orig[@]}"
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
[ "$tool" = fio ] && cmdline="console=ttyS0 reboot=k panic=-1 kvmini.test=bench_fio kvmini.bench.secs=$secs"
declare -A cmd=()
names=()
for fmt in $formats; do
	img=$(mktemp "$dir/kvmini-bench-blk.XXXXXX.$fmt")
	imgs+=("$img")
	case $fmt in
	raw) dd if=/dev/zero of="$img" bs=1M count=512 status=none ;;
	qcow2) qemu-img create -q -f qcow2 -o preallocation=falloc "$img" 512M ;;
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
[ "$tool" = fio ] && tests=(randread-4k-qd1 randread-4k-qd32 randwrite-4k-qd1 randwrite-4k-qd32 seqread-1M seqwrite-1M)
declare -A vals=()
tck=$(getconf CLK_TCK)

# VMM CPU time in ticks from /proc/PID/stat: "utime+stime guest_time" (fields 14, 15, 43; the
# command name, field 2, has no spaces for kvmini and qemu-system-x86).
cpu_ticks() { awk '{ print $14 + $15, $43 }' "/proc/$1/stat" 2>/dev/null; }

# boot_done NAME RUN LOG RC: whether the guest finished its jobs; if not, says so with the log's tail.
boot_done() {
	grep -q KVMINI-BENCH-DONE "$3" && return 0
	echo "bench-blk: $1 run $2 failed (exit $4); last lines:" >&2
	tr -d '\r' <"$3" | tail -n 8 | sed 's/^/    /' >&2
	return 1
}

# measure_fio NAME RUN: one boot running bench_fio.sh; the VMM's CPU time is read at each job's
# BEGIN and END line (the guest idles 1 s after BEGIN so that the first read precedes the I/O).
measure_fio() {
	local log=$work/$1.$2.log rc bg vpid='' tp comm=kvmini seen=0 lines l t c g ios mbs iops
	local -A c0=() g0=() c1=() g1=()
	[[ $1 == qemu-* ]] && comm=qemu-system-x86
	eval "timeout -k 5 $tmo ${cmd[$1]}" </dev/null >"$log" 2>&1 &
	bg=$!
	while kill -0 "$bg" 2>/dev/null; do
		# The VMM: a child of the background shell or of the timeout it started.
		if [ -z "$vpid" ]; then
			tp=$(pgrep -d, -P "$bg" || true)
			vpid=$(pgrep -n -x "$comm" -P "$bg${tp:+,$tp}" || true)
		fi
		mapfile -t lines < <(tr -d '\r' <"$log" | grep -E '^KVMINI-FIO-(BEGIN|END) ' || true)
		while [ "$seen" -lt "${#lines[@]}" ]; do
			l=${lines[$seen]} seen=$((seen + 1))
			read -r c g < <(cpu_ticks "$vpid") || continue
			case $l in
			*BEGIN*) c0[${l##* }]=$c g0[${l##* }]=$g ;;
			*END*) c1[${l##* }]=$c g1[${l##* }]=$g ;;
			esac
		done
		sleep 0.2 # the guest idles 1 s after BEGIN; polling faster would take CPU from it (nested: one L1 vCPU)
	done
	rc=0
	wait "$bg" || rc=$?
	boot_done "$1" "$2" "$log" "$rc" || return 0
	local line="bench-blk: $1 run $2:"
	for t in "${tests[@]}"; do
		local v f
		v=$(tr -d '\r' <"$log" | sed -n "s/^KVMINI-FIO-$t=//p" | tail -n 1)
		if [[ $v != "3;"* ]]; then
			line+=" $t=[$v]"
			continue
		fi
		# terse v3: 6/7/8 read KiB, KiB/s, IOPS; 47/48/49 the same for writes.
		read -r ios mbs iops < <(awk -F';' -v bs="${t##*-}" '{ b = (bs ~ /M$/) ? 1048576 : 4096
			printf "%d %.1f %.0f\n", ($6 + $47) * 1024 / b, ($7 + $48) * 1024 / 1e6, $8 + $49 }' <<<"$v")
		if [[ $t == *4k* ]]; then vals[$1.$t]+="$iops "; else vals[$1.$t]+="$mbs "; fi
		line+=" $t=${iops}IOPS/${mbs}MB/s"
		if [ -n "${c0[$t]:-}" ] && [ -n "${c1[$t]:-}" ] && [ "$ios" -gt 0 ]; then
			f=$(awk -v a="${c0[$t]}" -v b="${c1[$t]}" -v n="$ios" -v h="$tck" 'BEGIN { printf "%.2f", (b - a) / h * 1e6 / n }')
			vals[$1.$t.cpu]+="$f "
			vals[$1.$t.own]+="$(awk -v a="${c0[$t]}" -v b="${c1[$t]}" -v ga="${g0[$t]}" -v gb="${g1[$t]}" -v n="$ios" -v h="$tck" \
				'BEGIN { printf "%.2f", ((b - a) - (gb - ga)) / h * 1e6 / n }') "
			line+=",cpu ${f}us/IO"
		fi
	done
	echo "$line" >&2
}

measure() { # NAME RUN
	local log=$work/$1.$2.log rc t
	set +e
	eval "timeout -k 5 $tmo ${cmd[$1]}" </dev/null >"$log" 2>&1
	rc=$?
	set -e
	boot_done "$1" "$2" "$log" "$rc" || return 0
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
	for n in "${names[@]}"; do
		if [ "$tool" = fio ]; then measure_fio "$n" "$r"; else measure "$n" "$r"; fi
	done
done
if [ -n "$json" ]; then
	figfile=$work/figs.jsonl
	for fmt in $formats; do
		for t in "${tests[@]}"; do
			unit=MB/s
			[[ $t == *4k* ]] && unit=IOPS
			# shellcheck disable=SC2086
			bench_fig "$figfile" "blk.$fmt.$t" "blk $fmt $t ($tool)" "$unit" higher "${vals[kvmini-$fmt.$t]:-}" \
				"$(wc -w <<<"${vals[kvmini-$fmt.$t]:-}")" "$runs" "${vals[qemu-$fmt.$t]:-}" \
				"$(wc -w <<<"${vals[qemu-$fmt.$t]:-}")" "$runs" pc
			[ "$tool" = fio ] || continue
			for c in cpu own; do
				label="host CPU us per I/O"
				[ $c = own ] && label="host CPU us per I/O without guest time"
				bench_fig "$figfile" "blk.$fmt.$t.$c" "blk $fmt $t: $label" us lower "${vals[kvmini-$fmt.$t.$c]:-}" \
					"$(wc -w <<<"${vals[kvmini-$fmt.$t.$c]:-}")" "$runs" "${vals[qemu-$fmt.$t.$c]:-}" \
					"$(wc -w <<<"${vals[qemu-$fmt.$t.$c]:-}")" "$runs" pc
			done
		done
	done
	bench_json "$json" blk "$figfile" "$(jq -nc --argjson r "$runs" --arg f "$formats" --arg d "$dir" \
		--arg tool "$tool" --argjson s "$secs" '{runs: $r, formats: $f, image_dir: $d, image_mib: 512, cpus: 2, mem_mib: 512,
		tool: $tool, fio_secs_per_job: (if $tool == "fio" then $s else null end),
		guest: (if $tool == "fio" then "fio libaio direct=1 (tests/integration/guest/bench_fio.sh)" else "O_DIRECT dd and kvmini-blkio (tests/integration/guest/bench_blk.sh)" end)}')"
fi

for fmt in $formats; do
	echo
	echo "virtio-blk, $fmt image, median of $runs run(s), 2 vCPUs, 512 MiB, image on $dir${KVMINI_NESTED:+ (nested under TCG: compare ratios only)}"
	printf '%-34s %12s %12s %14s\n' "" kvmini qemu "kvmini/qemu"
	rows=("${tests[@]}")
	if [ "$tool" = fio ]; then
		for t in "${tests[@]}"; do rows+=("$t.cpu" "$t.own"); done
	fi
	for t in "${rows[@]}"; do
		# shellcheck disable=SC2086
		k=$(median ${vals[kvmini-$fmt.$t]:-}) q=$(median ${vals[qemu-$fmt.$t]:-})
		case $t in
		*.cpu) label="${t%.cpu} (CPU us/IO)" ;;
		*.own) label="${t%.own} (CPU us/IO - guest)" ;;
		*4k*) label="$t (IOPS)" ;;
		*) label="$t (MB/s)" ;;
		esac
		ratio=$(awk -v a="$k" -v b="$q" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }')
		printf '%-34s %12s %12s %14s\n' "$label" "$k" "$q" "$ratio"
	done
done
