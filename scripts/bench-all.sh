#!/bin/bash
# bench-all.sh [--runs N] [--build DIR] [--only "boot mem blk net migrate"] [--out DIR] [--timeout S] [--replot]:
# every benchmark, kvmini next to QEMU, in one go (`make bench`): bench-boot, bench-mem, bench-blk,
# bench-net and bench-migrate, each alternating kvmini and QEMU runs, one after the other in the
# same boot of the test host. Without a usable /dev/kvm that host is ONE nested L1 guest
# (tests/nested/nested-run.sh, --timeout S for all of it); the figures are then emulated time:
# compare ratios only. Prints one table of medians and kvmini/QEMU ratios, and writes
# OUT/latest.json (every figure with its per-run values, ok/runs, the machine and versions),
# OUT/latest.txt (the table) and OUT/latest.svg (gnuplot: kvmini/QEMU ratio per figure).
# --replot: only the table and the plot again, from OUT/latest.json. OUT defaults to docs/bench. With --only, the other benches are kept from OUT/latest.json (marked so). A bench that failed or did not finish shows as FAILED, its
# figures as "failed", never as a number. Runs: --runs or $BENCH_RUNS (default 3). Also read:
# BENCH_NET_SECS (10), BENCH_NET_PINGS (50), BENCH_BLK_FORMATS ("raw qcow2"), BENCH_BLK_SECS (5, per
# fio job; fio when /usr/bin/fio exists, else dd), KVMINI_BENCH_L1_TRIES (4: L1 boots, when one
# wedges; --timeout bounds them all). Exits 1 when a whole bench failed. Not part of make check.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
all_benches="boot mem blk net migrate"
runs=${BENCH_RUNS:-3} build=${BUILD:-build} only=$all_benches out=docs/bench tmo='' inner=0 results='' replot=0
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--timeout) tmo=$2; shift 2 ;;
	--inner) inner=1 results=$2; shift 2 ;;
	--replot) replot=1; shift ;;
	-h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-all: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
# KVMINI_BENCH_*: the same settings as passed into a nested L1 (which gets only KVMINI_* variables).
secs=${KVMINI_BENCH_NET_SECS:-${BENCH_NET_SECS:-10}} pings=${KVMINI_BENCH_NET_PINGS:-${BENCH_NET_PINGS:-50}}
formats=${KVMINI_BENCH_BLK_FORMATS:-${BENCH_BLK_FORMATS:-raw qcow2}}
bsecs=${KVMINI_BENCH_BLK_SECS:-${BENCH_BLK_SECS:-5}}
# fio in the guest when Debian's fio is installed here (it is copied into the initramfs), else dd.
btool=${KVMINI_BENCH_BLK_TOOL:-dd}
[ -n "${KVMINI_BENCH_BLK_TOOL:-}" ] || [ ! -x /usr/bin/fio ] || btool=fio
for v in "$runs" "$secs" "$pings" "$bsecs" ${tmo:+"$tmo"}; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench-all: not a positive number: $v" >&2; exit 2; }
done
for b in $only; do
	case " $all_benches " in *" $b "*) ;; *) echo "bench-all: unknown bench $b ($all_benches)" >&2; exit 2 ;; esac
done
build=$(realpath -m "$build") out=$(realpath -m "$out")
cd "$root"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

# Inside the test host: each bench's inner mode in turn; each writes RESULTS/NAME.json and
# RESULTS/NAME.rc. One failing bench does not stop the others.
if [ "$inner" = 1 ]; then
	{
		echo "{"
		echo "\"kernel\": \"$(uname -r)\", \"cpus\": $(nproc),"
		echo "\"mem_kib\": $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo),"
		echo "\"cpu_model\": $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1 | jq -R .)"
		echo "}"
	} >"$results/host.json"
	for b in $only; do
		echo "bench-all: ---- $b ($(date -u +%H:%M:%S)) ----"
		args=(--inner --runs "$runs" --build "$build" --json "$results/$b.json")
		initrd=$KVMINI_INITRD
		case $b in
		blk) args+=(--formats "$formats" --tool "$btool" --secs "$bsecs") initrd=$KVMINI_BLK_INITRD ;;
		net) args+=(--secs "$secs" --pings "$pings") initrd=$KVMINI_NET_INITRD ;;
		esac
		rc=0
		KVMINI_INITRD=$initrd "scripts/bench-$b.sh" "${args[@]}" 2>&1 || rc=$?
		echo "$rc" >"$results/$b.rc"
	done
	exit 0
fi

if [ "$replot" = 0 ]; then
	[ -x "$build/kvmini" ] || { echo "bench-all: $build/kvmini does not exist (make it first)" >&2; exit 1; }
	for t in jq qemu-system-x86_64; do
		command -v "$t" >/dev/null || { echo "bench-all: $t is not installed (scripts/install-deps.sh)" >&2; exit 1; }
	done
	kdir=$(tests/guest/fetch-kernel.sh)
	base=$build/guest/initrd.cpio.gz
	tests/guest/build-initrd.sh "$base"
	netinitrd=$build/guest/initrd-bench-net.cpio.gz
	case " $only " in *" net "*) bench_extra_initrd "$base" "$netinitrd" net /usr/bin/iperf3 ;; esac
	blkinitrd=$base
	if [ "$btool" = fio ]; then
		blkinitrd=$build/guest/initrd-bench-blk.cpio.gz
		case " $only " in *" blk "*) bench_extra_initrd "$base" "$blkinitrd" blk /usr/bin/fio ;; esac
	fi
	export KVMINI_KERNEL_DIR=$kdir KVMINI_KERNEL=$kdir/vmlinuz KVMINI_INITRD=$base KVMINI_NET_INITRD=$netinitrd \
		KVMINI_BLK_INITRD=$blkinitrd
	export KVMINI_BENCH_NET_SECS=$secs KVMINI_BENCH_NET_PINGS=$pings KVMINI_BENCH_BLK_FORMATS=$formats \
		KVMINI_BENCH_BLK_SECS=$bsecs KVMINI_BENCH_BLK_TOOL=$btool

	results=$(mktemp -d /tmp/kvmini-bench-all.XXXXXX) # /tmp: shared read-write with a nested L1
	trap 'rm -rf "$results"' EXIT
	nested=0 why='' l1rc=0 l1boots=0 l1tries=${KVMINI_BENCH_L1_TRIES:-4}
	if ! why=$(tests/nested/nested-run.sh --check-kvm); then
		nested=1
		if [ -z "$tmo" ]; then # the benches' own estimates, summed
			nf=$(wc -w <<<"$formats")
			tmo=300
			for b in $only; do
				case $b in
				boot) tmo=$((tmo + runs * 3 * 150)) ;;
				mem) tmo=$((tmo + runs * 2 * 180)) ;;
				blk) tmo=$((tmo + nf * runs * 2 * 200)) ;;
				net) tmo=$((tmo + 3 * runs * (120 + 2 * (secs + 2) + pings / 5))) ;;
				migrate) tmo=$((tmo + runs * 4 * 120)) ;;
				esac
			done
		fi
		echo "bench-all: $why: running every bench inside one nested L1 guest (emulated: compare ratios only; limit ${tmo} s)" >&2
		# QEMU's emulated SVM now and then wedges L1 for good (nested-run.sh exit 125): then one more L1
		# boot runs the benches that had not finished (whole; latest.json counts the L1 boots), up to 4 boots
		# (twice in a row during one bench run of 2026-12-05).
		# --timeout S bounds all L1 boots together.
		left=$only t0=$SECONDS
		while [ -n "$left" ] && [ "$l1boots" -lt "$l1tries" ] && [ $((tmo - (SECONDS - t0))) -ge 120 ]; do
			l1boots=$((l1boots + 1)) l1rc=0
			[ "$l1boots" = 1 ] || echo "bench-all: nested L1 boot $l1boots for: $left" >&2
			tests/nested/nested-run.sh --timeout $((tmo - (SECONDS - t0))) -- "$0" --inner "$results" --runs "$runs" --build "$build" \
				--only "$left" || l1rc=$?
			[ "$l1rc" = 125 ] || break
			left=$(for b in $left; do [ -f "$results/$b.rc" ] || printf '%s ' "$b"; done)
			left=${left% }
		done
	else
		"$0" --inner "$results" --runs "$runs" --build "$build" --only "$only" || l1rc=$?
	fi

	# Merge: every bench's JSON, or a failure record saying why there is none.
	merged=()
	for b in $only; do
		merged+=("$results/m.$b.json")
		if [ -f "$results/$b.json" ] && [ "$(cat "$results/$b.rc" 2>/dev/null)" = 0 ]; then
			cp "$results/$b.json" "$results/m.$b.json"
		else
			if [ -f "$results/$b.rc" ]; then
				reason="bench-$b.sh exited $(cat "$results/$b.rc")"
			elif [ "$nested" = 1 ]; then
				reason="not finished: the nested L1 ended first (nested-run.sh exit $l1rc$([ "$l1rc" = 125 ] && echo ": L1 wedged or died"; [ "$l1rc" = 124 ] && echo ": --timeout ran out"), $l1boots L1 boot(s))"
			else
				reason="not finished (exit $l1rc)"
			fi
			jq -n --arg b "$b" --arg r "$reason" '{bench: $b, failed: $r, figures: []}' >"$results/m.$b.json"
			# A bench that exited non-zero after writing its figures keeps them (each marks its own failures).
			if [ -f "$results/$b.json" ]; then
				jq --arg r "$reason" '. + {failed: $r}' "$results/$b.json" >"$results/m.$b.json"
			fi
		fi
	done
	[ -f "$results/host.json" ] || echo null >"$results/host.json"
	mkdir -p "$out"
	commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
	git diff --quiet HEAD 2>/dev/null || commit+=-dirty
	now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	for b in $only; do # each bench says when, at which commit and how many runs: see --only below
		jq --arg d "$now" --arg c "$commit" --argjson r "$runs" '. + {date: $d, kvmini_commit: $c, runs: $r}' \
			"$results/m.$b.json" >"$results/m.$b.json.t" && mv "$results/m.$b.json.t" "$results/m.$b.json"
	done
	# --only with an earlier OUT/latest.json: the benches not run now are kept from it, in the
	# usual order, each with its own date and commit (and the table says so).
	if [ -f "$out/latest.json" ] && [ "$(wc -w <<<"$only")" -lt "$(wc -w <<<"$all_benches")" ]; then
		merged=()
		for b in $all_benches; do
			if [[ " $only " == *" $b "* ]]; then
				merged+=("$results/m.$b.json")
			elif jq -e --arg b "$b" '.benches[] | select(.bench == $b)' "$out/latest.json" >/dev/null 2>&1; then
				jq --arg b "$b" '.date as $d | .kvmini_commit as $c | .benches[] | select(.bench == $b)
					| {date: $d, kvmini_commit: $c} + . + {kept_from_earlier_run: true}' "$out/latest.json" >"$results/m.$b.json"
				merged+=("$results/m.$b.json")
			fi
		done
	fi
	jq -s --argjson runs "$runs" --argjson nested "$nested" --argjson l1boots "$l1boots" --arg why "$why" --arg commit "$commit" \
		--arg date "$now" --arg qemu "$(qemu-system-x86_64 --version | head -n 1)" \
		--arg cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" --argjson cores "$(nproc)" \
		--argjson memk "$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)" --arg kernel "$(uname -r)" \
		--arg os "$(sed -n 's/^PRETTY_NAME=//p' /etc/os-release | tr -d '"')" --arg guestk "$(basename "$kdir")" \
		--slurpfile host "$results/host.json" --arg l1mem "${KVMINI_NESTED_MEM:-4096}" --arg l1cpus "${KVMINI_NESTED_CPUS:-1}" '
		{date: $date, runs: $runs, kvmini_commit: $commit, qemu: $qemu, guest_kernel: $guestk,
		 machine: {cpu_model: $cpu, cores: $cores, mem_kib: $memk, kernel: $kernel, os: $os},
		 nested: ($nested == 1), kvm_check: $why, l1_boots: $l1boots,
		 test_host: (if $nested == 1 then {what: "nested L1 guest: QEMU TCG, -cpu qemu64,+svm,+npt, kvm-amd", mem_mib: ($l1mem | tonumber), vcpus: ($l1cpus | tonumber)} else {what: "this machine"} end
			+ {seen_inside: $host[0]}),
		 benches: ., figures: [.[] | .bench as $b | .figures[] | {bench: $b} + .]}' \
		"${merged[@]}" >"$out/latest.json.part"
	mv "$out/latest.json.part" "$out/latest.json"
else
	[ -f "$out/latest.json" ] || { echo "bench-all: --replot: no $out/latest.json" >&2; exit 1; }
	results=$(mktemp -d /tmp/kvmini-bench-all.XXXXXX)
	trap 'rm -rf "$results"' EXIT
fi

# The table, from latest.json (so that what is printed is what was recorded).
jq -r '
	def n: if . == null then "failed" elif . >= 100 then (. * 10 | round / 10 | tostring) else (. * 100 | round / 100 | tostring) end;
	"kvmini vs QEMU, median of \(.runs) run(s), \(.date), kvmini \(.kvmini_commit), \(.qemu), guest kernel \(.guest_kernel)",
	"machine: \(.machine.cpu_model), \(.machine.cores) cores, \(.machine.mem_kib / 1048576 | . * 10 | round / 10) GiB, Linux \(.machine.kernel)",
	(if .nested then "NESTED: benches ran inside an emulated (TCG) L1 host with kvm-amd (\(.l1_boots) L1 boot(s)): the figures are emulated time, compare ratios only" else empty end),
	"",
	(["figure", "unit", "kvmini", "qemu", "ratio", "better", "ok k/q"] | @tsv),
	(.benches[] | select(.kept_from_earlier_run) | "\(.bench): kept from an earlier run (\(.date), \(.kvmini_commit), \(.runs) run(s))"),
	(.benches[] | select(.failed) | "FAILED: \(.bench): \(.failed)"),
	(.figures[] | [.label, .unit, (.kvmini.median | n), (.qemu.median | n),
		(if .ratio == null then "-" else (.ratio * 100 | round / 100 | tostring) end), .better,
		"\(.kvmini.ok)/\(.kvmini.runs) \(.qemu.ok)/\(.qemu.runs)"] | @tsv)' "$out/latest.json" |
	awk -F'\t' 'NF < 2 { print; next } { printf "%-66s %-7s %9s %9s %7s %-7s %s\n", $1, $2, $3, $4, $5, $6, $7 }' >"$out/latest.txt"
echo
cat "$out/latest.txt"

# The plot: one bar per figure, the kvmini/QEMU ratio; failed figures get a "failed" mark at 0.
if command -v gnuplot >/dev/null; then
	jq -r '(.figures[] | select(.better != "info") |
		[.label, (.ratio // 0), (if .ratio == null then "failed" else (.ratio * 100 | round / 100 | tostring) end),
		 (if .better == "higher" then 1 else 2 end)]),
		(.benches[] | select(.failed and (.figures | length) == 0) | ["\(.bench): FAILED", 0, "failed", 2])
		| @tsv' "$out/latest.json" >"$results/plot.dat"
	nfig=$(wc -l <"$results/plot.dat")
	if [ "$nfig" -gt 0 ]; then
		title=$(jq -r '"kvmini / QEMU, median of \(.runs) run(s), \(.kvmini_commit), \(.date)"
			+ (if .nested then " (NESTED under TCG: ratios only)" else "" end)' "$out/latest.json")
		gnuplot <<-EOF
			set terminal svg size $((500 + nfig * 28)),860 dynamic font "sans,10"
			set output "$out/latest.svg.part"
			set title "$title\\nblue: higher is better for kvmini; red: lower is better"
			set style fill solid 0.8 border -1
			set boxwidth 0.7
			set yrange [0:*]
			set ylabel "kvmini / QEMU"
			set xtics rotate by -60 left noenhanced font ",8"
			set bmargin 30
			set rmargin 22
			set grid ytics
			unset key
			set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 1.5 lc rgb "black"
			set datafile separator "\t"
			plot "$results/plot.dat" using 0:2:(\$4 == 1 ? 0x3366cc : 0xcc3333):xtic(stringcolumn(1)) with boxes lc rgb variable, \
			     "" using 0:(\$2 + 0.02):3 with labels rotate by 90 left font ",7"
		EOF
		mv "$out/latest.svg.part" "$out/latest.svg"
		echo "bench-all: wrote $out/latest.json, $out/latest.txt, $out/latest.svg" >&2
	fi
else
	echo "bench-all: gnuplot is not installed (scripts/install-deps.sh): no plot; wrote $out/latest.json, $out/latest.txt" >&2
fi
# make bench fails when a whole bench did (its figures are still written, as failed).
if jq -e '[.benches[] | select(.failed)] | length > 0' "$out/latest.json" >/dev/null; then
	echo "bench-all: some benches FAILED (see above)" >&2
	exit 1
fi
