# shellcheck shell=bash
# bench-lib.sh: sourced by the scripts/bench-*.sh scripts (not run by itself).
#   bench_fig FIGFILE ID LABEL UNIT BETTER KVALS KOK KRUNS QVALS QOK QRUNS QEMU_VARIANT
#       appends one figure (a JSON object on one line) to FIGFILE: the per-run values of kvmini
#       and of QEMU (space-separated numbers, failed runs left out), how many runs succeeded and
#       were tried, their medians (null when no run succeeded) and the kvmini/QEMU ratio of the
#       medians (null unless both exist). BETTER is "lower" or "higher".
#   bench_json OUT BENCH FIGFILE PARAMS_JSON
#       writes OUT: {bench, nested, params, figures: [...]} (figures as bench_fig wrote them).
#   bench_extra_initrd BASE OUT NAME BIN...
#       OUT = initramfs BASE with a second gzip'd newc archive appended holding each BIN at
#       /usr/bin/NAME-of-BIN and the libraries ldd names (the dynamic loader at its path), so
#       that Debian's dynamically linked tools (iperf3, fio) run in the busybox guest. The extra
#       archive is cached in ~/.cache/kvmini/bench-NAME/ by the hash of what it holds.
#   bench_guest BUILD
#       fetches the guest kernel and builds the test initramfs (BUILD/guest/initrd.cpio.gz);
#       exports KVMINI_KERNEL_DIR, KVMINI_KERNEL and KVMINI_INITRD.
#   bench_nested NAME TIMEOUT BUILD ARGS...
#       when this machine's /dev/kvm cannot run guests, runs the calling script again as
#       `SCRIPT --inner ARGS --build BUILD` inside ONE nested L1 guest (limit TIMEOUT seconds,
#       unless KVMINI_BENCH_TIMEOUT is set) and exits with its status; else returns.
# Needs jq.

bench_fig() {
	local figfile=$1
	shift
	jq -nc --arg id "$1" --arg lbl "$2" --arg unit "$3" --arg better "$4" \
		--arg kv "$5" --arg ko "$6" --arg kr "$7" --arg qv "$8" --arg qo "$9" --arg qr "${10}" --arg qn "${11}" '
		def nums: [splits(" +") | select(length > 0) | tonumber];
		def med: sort | if length == 0 then null elif length % 2 == 1 then .[(length - 1) / 2]
			else (.[length / 2 - 1] + .[length / 2]) / 2 end;
		def eng($v; $o; $r): ($v | nums) as $n | {median: ($n | med), values: $n, ok: ($o | tonumber), runs: ($r | tonumber)};
		{id: $id, "label": $lbl, unit: $unit, better: $better, qemu_variant: $qn,
		 kvmini: eng($kv; $ko; $kr), qemu: eng($qv; $qo; $qr)}
		| .ratio = (if .kvmini.median != null and .qemu.median != null and .qemu.median > 0
			then .kvmini.median / .qemu.median else null end)' >>"$figfile"
}

bench_json() {
	local out=$1 bench=$2 figfile=$3 params=$4
	[ -f "$figfile" ] || : >"$figfile"
	jq -s --arg b "$bench" --argjson p "$params" --arg nested "${KVMINI_NESTED:-}" \
		'{bench: $b, nested: ($nested != ""), params: $p, figures: .}' "$figfile" >"$out.part"
	mv "$out.part" "$out"
}

bench_extra_initrd() {
	local base=$1 out=$2 name=$3 bin libs=() all=() key cache cached w l
	shift 3
	for bin in "$@"; do
		[ -x "$bin" ] || { echo "bench: $bin is not installed (scripts/install-deps.sh)" >&2; return 1; }
		all+=("$bin")
		mapfile -t libs < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
		all+=("${libs[@]}")
	done
	key=$({
		for l in "${all[@]}"; do echo "$l"; sha256sum <"$l"; done
	} | sha256sum | cut -c1-16)
	cache=${KVMINI_CACHE:-$HOME/.cache/kvmini}/bench-$name
	cached=$cache/$name-$key.cpio.gz
	if [ ! -f "$cached" ]; then
		mkdir -p "$cache"
		w=$(mktemp -d "$cache/.build.XXXXXX")
		mkdir -p "$w/root/usr/bin"
		for bin in "$@"; do cp -L "$bin" "$w/root/usr/bin/${bin##*/}"; done
		for l in "${all[@]}"; do
			case " $* " in *" $l "*) continue ;; esac
			mkdir -p "$w/root${l%/*}"
			cp -L "$l" "$w/root$l"
		done
		(cd "$w/root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -6 >"$w/x.cpio.gz")
		mv "$w/x.cpio.gz" "$cached"
		rm -rf "$w"
	fi
	cat "$base" "$cached" >"$out.part"
	mv "$out.part" "$out"
}

bench_guest() {
	local kdir initrd
	kdir=$(tests/guest/fetch-kernel.sh)
	initrd=$(realpath -m "$1/guest/initrd.cpio.gz")
	tests/guest/build-initrd.sh "$initrd"
	export KVMINI_KERNEL_DIR=$kdir KVMINI_KERNEL=$kdir/vmlinuz KVMINI_INITRD=$initrd
}

bench_nested() {
	local name=$1 tmo=$2 build=$3 why
	shift 3
	why=$(tests/nested/nested-run.sh --check-kvm) && return 0
	echo "$name: $why: running everything inside one nested L1 guest (emulated: compare ratios only)" >&2
	exec tests/nested/nested-run.sh --timeout "${KVMINI_BENCH_TIMEOUT:-$tmo}" -- \
		"$0" --inner "$@" --build "$(realpath -m "$build")"
}
