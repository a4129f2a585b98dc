#!/bin/bash
# bench-micro.sh [--requests N (20000)] [--build DIR] [--cases "blk-read blk-write net-tx net-rx"]
#                [--json FILE]:
# instructions per request of the device models' request path, without KVM: builds DIR/bench/reqpath
# (bench/micro/reqpath.c) if needed, runs it once per case under valgrind --tool=callgrind with
# instrumentation only around the measured loop, and prints case, requests, instructions per
# request (callgrind's total Ir / N). Counts user-space instructions only (no kernel work), so the
# figures depend on the code and the compiler, not on the machine's speed: a regression shows anywhere.
# --json FILE also writes them as JSON with the machine (uname -m), compiler and git commit.
# Needs valgrind. Not part of make check.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
requests=20000 build=${BUILD:-build} json="" cases="blk-read blk-write net-tx net-rx"
while [ $# -gt 0 ]; do
	case $1 in
	--requests) requests=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--cases) cases=$2; shift 2 ;;
	--json) json=$2; shift 2 ;;
	-h | --help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-micro: unknown option $1" >&2; exit 2 ;;
	esac
done
[[ $requests =~ ^[1-9][0-9]*$ ]] || { echo "bench-micro: --requests wants a positive integer" >&2; exit 2; }
if ! command -v valgrind >/dev/null || [ ! -e /usr/include/valgrind/callgrind.h ]; then
	echo "bench-micro: valgrind (with its headers) is not installed: scripts/install-deps.sh installs it" >&2
	exit 1
fi
cd "$root"
make --no-print-directory -s BUILD="$build" "$build/bench/reqpath"
bin=$build/bench/reqpath

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
declare -A ir
printf '%-10s %9s %22s\n' case requests "instructions/request"
for c in $cases; do
	out=$tmp/$c.callgrind
	if ! valgrind -q --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
		"$bin" --case "$c" --requests "$requests" >"$tmp/$c.log" 2>&1; then
		cat "$tmp/$c.log" >&2
		echo "bench-micro: $c failed under callgrind" >&2
		exit 1
	fi
	# "totals:" is the sum over the file's parts (one part here: no dumps before the end).
	total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$out")
	[ -n "$total" ] || { echo "bench-micro: no totals line in $c's callgrind output" >&2; exit 1; }
	ir[$c]=$(awk -v t="$total" -v n="$requests" 'BEGIN { printf "%.1f", t / n }')
	printf '%-10s %9d %22s\n' "$c" "$requests" "${ir[$c]}"
done

if [ -n "$json" ]; then
	esc() { sed 's/\\/\\\\/g; s/"/\\"/g' <<<"$1"; }
	cc_version=$(${CC:-cc} --version | head -1)
	commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
	git diff --quiet HEAD -- 2>/dev/null || commit="$commit-dirty"
	{
		printf '{\n  "machine": "%s",\n  "compiler": "%s",\n' "$(uname -m)" "$(esc "$cc_version")"
		printf '  "valgrind": "%s",\n  "commit": "%s",\n' "$(valgrind --version)" "$commit"
		printf '  "requests": %d,\n  "unit": "instructions per request (callgrind Ir)",\n  "cases": [' "$requests"
		sep=""
		for c in $cases; do
			printf '%s\n    {"case": "%s", "requests": %d, "instructions_per_request": %s}' \
				"$sep" "$c" "$requests" "${ir[$c]}"
			sep=","
		done
		printf '\n  ]\n}\n'
	} >"$json"
	echo "bench-micro: wrote $json"
fi
