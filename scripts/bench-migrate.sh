#!/bin/bash
# bench-migrate.sh [--runs N] [--build DIR] [--dirty MIB,MIB_PER_S] [--json FILE]: live migration over TCP on
# 127.0.0.1, kvmini next to QEMU (-accel kvm -cpu host -M pc, migrate through QMP), the same
# kernel and initrd, 2 vCPUs, 256 MiB, no disk or NIC, downtime limit 300 ms on both, bandwidth
# unlimited on both (QEMU's max-bandwidth raised from its 128 MiB/s default). Two guests: idle (at
# its shell) and dirtying (kvmini-mem rewriting 64 MiB at 32 MiB/s, checking every word; a
# migration that corrupts it shows as KVMINI-MEM-BAD and fails the run). Prints the medians of
# total time, downtime and bytes sent side by side. Runs alternate (kvmini, qemu, kvmini, ...).
# Without a usable /dev/kvm everything runs inside ONE nested boot (tests/nested/nested-run.sh):
# the figures are then emulated time, meaningful only as ratios within the same run.
# --json FILE also writes the figures (per-run values, medians, ok/runs) there (scripts/bench-lib.sh).
# Not part of make check or CI.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=3 build=${BUILD:-build} inner=0 dirty=64,32 json=''
orig=("$@")
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--dirty) dirty=$2; shift 2 ;;
	--json) json=$(realpath -m "$2"); shift 2 ;;
	--inner) inner=1; shift ;;
	-h | --help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-migrate: unknown option $1" >&2; exit 2 ;;
	esac
done
cd "$root"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

if [ "$inner" = 0 ]; then
	bench_guest "$build"
	bench_nested bench-migrate $((runs * 4 * 120 + 300)) "$build" "${orig[@]}"
fi
[ -c /dev/kvm ] || { echo "bench-migrate: no /dev/kvm" >&2; exit 1; }
: "${KVMINI_KERNEL:?}" "${KVMINI_INITRD:?}"
[ -x "$build/kvmini" ] || { echo "bench-migrate: $build/kvmini does not exist (make it first)" >&2; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { echo "bench-migrate: qemu-system-x86_64 is not installed" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-bench-mig.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
port=$((30000 + RANDOM % 20000))
declare -A totals=() downs=() bytes=() oks=() tries=()

# A QMP client: runs the migration and prints "total_ms downtime_ms bytes".
cat >"$work/qmp.py" <<'EOF'
import json, socket, sys, time
def connect(path):
    s = socket.socket(socket.AF_UNIX)
    for _ in range(100):
        try:
            s.connect(path)
            break
        except OSError:
            time.sleep(0.1)
    f = s.makefile("rw")
    json.loads(f.readline())  # greeting
    def cmd(name, **args):
        f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        f.flush()
        while True:
            r = json.loads(f.readline())
            if "return" in r or "error" in r:
                if "error" in r:
                    raise SystemExit("qmp %s: %s" % (name, r["error"]["desc"]))
                return r["return"]
    cmd("qmp_capabilities")
    return cmd
src = connect(sys.argv[1])
src("migrate-set-parameters", **{"downtime-limit": 300, "max-bandwidth": 100 << 30})
src("migrate", uri=sys.argv[2])
while True:
    m = src("query-migrate")
    if m.get("status") in ("completed", "failed", "cancelled"):
        break
    time.sleep(0.05)
if m["status"] != "completed":
    raise SystemExit("qemu migration %s: %s" % (m["status"], m.get("error-desc", "")))
print(m["total-time"], m["downtime"], m["ram"]["transferred"])
EOF

wait_for() { # FILE STRING SECONDS
	local end=$((SECONDS + $3))
	while [ $SECONDS -lt $end ]; do
		[ -f "$1" ] && tr -d '\r' <"$1" | grep -q -- "$2" && return 0
		sleep 0.2
	done
	return 1
}

# measure VMM CASE RUN: one migration; appends to totals/downs/bytes["VMM CASE"].
measure() {
	local vmm=$1 case=$2 r=$3 key="$1 $2" d=$work/$1.$2.$3 cmdline ready out ok=0
	mkdir -p "$d"
	port=$((port + 1))
	cmdline="console=ttyS0 reboot=k panic=-1"
	ready=KVMINI-SHELL
	if [ "$case" = dirtying ]; then
		cmdline+=" kvmini.test=dirty kvmini.dirty=$dirty"
		ready="KVMINI-MEM-PASS gen=2 "
	fi
	if [ "$vmm" = kvmini ]; then
		local base=("$build/kvmini" run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" --cpus 2 --mem 256M
			--cmdline "$cmdline")
		timeout 300 "${base[@]}" --incoming "tcp:127.0.0.1:$port" </dev/null >"$d/dst.out" 2>&1 &
		pids+=($!)
		timeout 300 "${base[@]}" --api-sock "$d/src.sock" </dev/null >"$d/src.out" 2>&1 &
		pids+=($!)
		if wait_for "$d/src.out" "$ready" 150 &&
			out=$(timeout 120 "$build/kvmini" ctl "$d/src.sock" migrate "tcp:127.0.0.1:$port" --max-downtime 300ms 2>"$d/ctl.err"); then
			read -r t dt b < <(jq -r '.data | "\(.total_ms) \(.downtime_ms) \(.bytes_sent)"' <<<"$out")
			ok=1
		fi
	else
		local base=(qemu-system-x86_64 -accel kvm -cpu host -M pc -smp 2 -m 256 -nodefaults -no-user-config
			-display none -kernel "$KVMINI_KERNEL" -initrd "$KVMINI_INITRD" -append "$cmdline")
		timeout 300 "${base[@]}" -serial "file:$d/dst.out" -incoming "tcp:127.0.0.1:$port" </dev/null >"$d/dst.err" 2>&1 &
		pids+=($!)
		timeout 300 "${base[@]}" -serial "file:$d/src.out" -qmp "unix:$d/src.qmp,server=on,wait=off" </dev/null >"$d/src.err" 2>&1 &
		pids+=($!)
		if wait_for "$d/src.out" "$ready" 150 &&
			out=$(timeout 120 python3 "$work/qmp.py" "$d/src.qmp" "tcp:127.0.0.1:$port" 2>"$d/ctl.err"); then
			read -r t dt b <<<"$out"
			ok=1
		fi
	fi
	# The dirtying guest must still check out on the destination.
	if [ $ok = 1 ] && [ "$case" = dirtying ]; then
		local g
		g=$(tr -d '\r' <"$d/src.out" | sed -n 's/^KVMINI-MEM-PASS gen=\([0-9]*\).*/\1/p' | tail -n 1)
		wait_for "$d/dst.out" "KVMINI-MEM-PASS gen=$((g + 2)) " 60 && ! grep -q KVMINI-MEM-BAD "$d/dst.out" || ok=0
	fi
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	pids=()
	if [ $ok = 1 ]; then
		totals[$key]+="$t " downs[$key]+="$dt " bytes[$key]+="$b "
		oks[$key]=$((${oks[$key]:-0} + 1))
		printf 'bench-migrate: %-7s %-9s run %d: total %6d ms  downtime %5d ms  %7.1f MiB\n' "$vmm" "$case" "$r" \
			"$t" "$dt" "$(awk -v b="$b" 'BEGIN { print b / 1048576 }')" >&2
	else
		echo "bench-migrate: $vmm $case run $r failed; last lines:" >&2
		tail -n 4 "$d"/ctl.err "$d"/*.out 2>/dev/null | tr -d '\r' | sed 's/^/    /' >&2
	fi
}
median() { # numbers... -> median, or "-"
	[ $# -gt 0 ] || { echo "-"; return; }
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.0f", v[(NR + 1) / 2]; else printf "%.0f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

for case in idle dirtying; do
	for ((r = 1; r <= runs; r++)); do
		for vmm in kvmini qemu; do
			measure "$vmm" "$case" "$r"
			tries["$vmm $case"]=$r
		done
	done
done

echo
echo "Live migration on 127.0.0.1, median of $runs run(s), 2 vCPUs, 256 MiB, downtime limit 300 ms${KVMINI_NESTED:+ (nested under TCG: compare ratios only)}"
printf '%-20s %10s %10s %10s %12s %8s\n' "" "total ms" "down ms" "MiB sent" "total ratio" "ok/runs"
for case in idle dirtying; do
	# shellcheck disable=SC2086
	q=$(median ${totals["qemu $case"]:-})
	for vmm in kvmini qemu; do
		key="$vmm $case"
		# shellcheck disable=SC2086
		tt=$(median ${totals[$key]:-}) mb=$(median ${bytes[$key]:-})
		ratio=-
		[ "$tt" != - ] && [ "$q" != - ] && ratio=$(awk -v a="$tt" -v b="$q" 'BEGIN { printf "%.2f", a / b }')
		# shellcheck disable=SC2086
		printf '%-20s %10s %10s %10s %12s %8s\n' "$vmm ($case)" "$tt" "$(median ${downs[$key]:-})" \
			"$([ "$mb" = - ] && echo - || awk -v b="$mb" 'BEGIN { printf "%.1f", b / 1048576 }')" "$ratio" \
			"${oks[$key]:-0}/${tries[$key]:-0}"
	done
done

if [ -n "$json" ]; then
	figfile=$work/figs.jsonl
	for case in idle dirtying; do
		k="kvmini $case" q="qemu $case"
		bench_fig "$figfile" "migrate.$case.total" "migrate $case: total time" ms lower "${totals[$k]:-}" \
			"${oks[$k]:-0}" "${tries[$k]:-0}" "${totals[$q]:-}" "${oks[$q]:-0}" "${tries[$q]:-0}" pc
		bench_fig "$figfile" "migrate.$case.downtime" "migrate $case: downtime" ms lower "${downs[$k]:-}" \
			"${oks[$k]:-0}" "${tries[$k]:-0}" "${downs[$q]:-}" "${oks[$q]:-0}" "${tries[$q]:-0}" pc
		bench_fig "$figfile" "migrate.$case.bytes" "migrate $case: bytes sent" MiB lower \
			"$(for b in ${bytes[$k]:-}; do awk -v b="$b" 'BEGIN { printf "%.1f ", b / 1048576 }'; done)" \
			"${oks[$k]:-0}" "${tries[$k]:-0}" \
			"$(for b in ${bytes[$q]:-}; do awk -v b="$b" 'BEGIN { printf "%.1f ", b / 1048576 }'; done)" \
			"${oks[$q]:-0}" "${tries[$q]:-0}" pc
	done
	bench_json "$json" migrate "$figfile" "$(jq -nc --argjson r "$runs" --arg d "$dirty" \
		'{runs: $r, cpus: 2, mem_mib: 256, downtime_limit_ms: 300, dirty_mib_and_mib_per_s: $d, transport: "tcp 127.0.0.1"}')"
fi
