#!/bin/bash
# run.sh BUILD_DIR: the integration tests, wherever they can run.
#   - /dev/kvm usable (tests/nested/nested-run.sh --check-kvm: it opens read-write, creates a VM
#     and boots a kernel): tests/integration/suite.sh BUILD_DIR here;
#   - otherwise: the whole suite inside ONE nested boot (tests/nested/nested-run.sh: an L1 guest
#     under QEMU's software emulation with an emulated AMD SVM CPU, whose kernel serves /dev/kvm);
#     if L1 itself fails, a fresh boot resumes at the test that was running (up to 10 boots);
#   - neither possible: a failure when CI=true, else a skip (exit 0) that says why.
# Then tests/integration/powercut.sh (durability across a power cut of the host: it needs an L1
# boot of its own, always nested), tests/integration/arm64/run.sh BUILD_DIR/arm64 (the arm64
# suite in one emulated arm64 host) and one final line counting all three:
#   integration: N passed, N failed
# The guest kernel is fetched and the initrd built here first (L1's root is read-only and has
# no network). Environment: KVMINI_NESTED_TIMEOUT (default 3000 s for each nested boot),
# KVMINI_FORCE_NESTED=1 (take the nested route even when /dev/kvm is usable).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

cannot() {
	if [ "${CI:-}" = true ]; then
		echo "integration: FAILED: the integration tests cannot run here and CI=true requires them: $*"
		exit 1
	fi
	echo "integration: SKIPPED: $*"
	exit 0
}

prepare() {
	local kdir
	kdir=$("$root/tests/guest/fetch-kernel.sh") || cannot "could not fetch the guest kernel (tests/guest/fetch-kernel.sh failed; it needs apt and network once)"
	export KVMINI_KERNEL_DIR=$kdir KVMINI_KERNEL=$kdir/vmlinuz KVMINI_VMLINUX=
	[ -f "$kdir/vmlinux" ] && KVMINI_VMLINUX=$kdir/vmlinux
	export KVMINI_INITRD
	KVMINI_INITRD=$(realpath -m "$build/guest/initrd.cpio.gz")
	"$root/tests/guest/build-initrd.sh" "$KVMINI_INITRD" || cannot "could not build the guest initrd (tests/guest/build-initrd.sh failed)"
}

[ -x "$build/kvmini" ] || { echo "integration: FAILED: $build/kvmini does not exist (run make first)"; exit 1; }

# verdict NAME: true when the suite's output has a PASS, FAIL or SKIP line for test NAME.
verdict() { grep -qE "^(PASS|FAIL|SKIP) $1( |:|\$)" "$suite_out"; }
# finish SUITE_RC NOT_RUN: runs the power-cut test and prints the total (tests with a verdict
# in the suite's output, plus NOT_RUN tests that never got one, counted as failed); exits.
finish() {
	local pass fail prc
	set +e
	pass=$(grep -c '^PASS ' "$suite_out")
	fail=$(($(grep -c '^FAIL ' "$suite_out") + $2))
	grep -q '^suite: [0-9]* passed' "$suite_out" || echo "integration: the suite did not finish (exit $1)"
	[ "$1" = 0 ] || [ "$fail" != 0 ] || fail=1
	"$here/powercut.sh" "$build"
	prc=$?
	case $prc in
	0) pass=$((pass + 1)) ;;
	77) [ "${CI:-}" = true ] && fail=$((fail + 1)) ;;
	*) fail=$((fail + 1)) ;;
	esac
	"$here/arm64/run.sh" "$build/arm64" | tee "$suite_out.arm64"
	if ! grep -q '^arm64: SKIPPED' "$suite_out.arm64"; then
		read -r ap af < <(sed -n 's/^arm64: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$suite_out.arm64" | tail -n 1) || ap=0 af=1
		pass=$((pass + ap)) fail=$((fail + af))
	fi
	rm -f "$suite_out.arm64"
	echo "integration: $pass passed, $fail failed"
	[ "$fail" = 0 ] && [ "$1" = 0 ] && exit 0
	[ "$1" = 0 ] && exit 1
	exit "$1"
}
suite_out=$(mktemp "${TMPDIR:-/tmp}/kvmini-suite.XXXXXX")
trap 'rm -f "$suite_out"' EXIT
export KVMINI_SUITE_LABEL=suite

prepare
if why=$("$root/tests/nested/nested-run.sh" --check-kvm); then
	echo "integration: /dev/kvm is usable ($why): running the suite directly"
	set +e
	"$here/suite.sh" "$build" | tee "$suite_out"
	finish "${PIPESTATUS[0]}" 0
fi

missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v cpio >/dev/null || missing+=(cpio)
command -v perl >/dev/null || missing+=(perl)
[ ${#missing[@]} -eq 0 ] || cannot "$why, and the nested harness needs ${missing[*]} (scripts/install-deps.sh installs them)"

# The whole x86 suite takes about 33 minutes in one L1 boot here (2 cores).
tmo=${KVMINI_NESTED_TIMEOUT:-3000}
echo "integration: $why: running the suite inside one nested L1 guest (QEMU TCG, emulated AMD SVM; limit ${tmo}s)"
# When L1 itself fails (exit 125: it did not start, died, or wedged with its vCPU stuck in a
# guest, which QEMU's emulated SVM does now and then) or the boot ran out of time (124), a fresh
# L1 boot resumes the suite at the test that was running; the tests that finished keep their
# verdicts. A test that was running at three such ends counts as failed and the suite goes on
# without it. At most KVMINI_NESTED_BOOTS (10) L1 boots, none started after
# KVMINI_NESTED_BUDGET (3600) seconds, and none allowed to run past that budget by more than
# 5 minutes, so that CI ends within its 90 minutes. (Before nested-run.sh revived stalled L1s
# with a key press, one CI run met 9 wedges; see the comment at its watchdog.)
mapfile -t all < <(find "$here" -maxdepth 1 -name 't_*.sh' -printf '%f\n' | sed 's/\.sh$//' | LC_ALL=C sort)
declare -A wedged=()
boots=0 rc=0 lost=0
max_boots=${KVMINI_NESTED_BOOTS:-10} budget_end=$((SECONDS + ${KVMINI_NESTED_BUDGET:-3600}))
set +e
while :; do
	remaining=()
	for n in "${all[@]}"; do
		verdict "$n" || remaining+=("$n")
	done
	[ ${#remaining[@]} -gt 0 ] || break
	boots=$((boots + 1))
	if [ "$boots" -gt 1 ]; then
		echo "integration: the nested L1 boot ended early (see above): resuming at ${remaining[0]} (${#remaining[@]} tests left) in a fresh L1 boot ($boots of at most $max_boots)"
		export KVMINI_SUITE_RESUME=1
	fi
	boot_tmo=$((budget_end - SECONDS))
	[ "$boot_tmo" -ge 300 ] || boot_tmo=300
	[ "$boot_tmo" -le "$tmo" ] || boot_tmo=$tmo
	"$root/tests/nested/nested-run.sh" --timeout "$boot_tmo" -- "$here/suite.sh" "$build" "${remaining[@]}" | tee -a "$suite_out"
	rc=${PIPESTATUS[0]}
	case $rc in
	124 | 125) [ "$boots" -lt "$max_boots" ] || break ;;
	*) break ;;
	esac
	if [ "$SECONDS" -ge "$budget_end" ]; then
		echo "integration: no fresh L1 boot after ${KVMINI_NESTED_BUDGET:-3600}s (KVMINI_NESTED_BUDGET)"
		break
	fi
	# The first test without a verdict was running when L1 failed; three times is its own failure.
	for n in "${remaining[@]}"; do
		verdict "$n" && continue
		wedged[$n]=$((${wedged[$n]:-0} + 1))
		[ "${wedged[$n]}" -lt 3 ] || echo "FAIL $n: the nested L1 guest failed three times while it ran" | tee -a "$suite_out"
		break
	done
done
for n in "${all[@]}"; do
	verdict "$n" || lost=$((lost + 1))
done
[ "$lost" = 0 ] || echo "integration: $lost tests got no verdict"
# The suite's own exit status when every test got one (the last boot's summary counts only its share).
[ "$rc" != 0 ] || [ "$lost" = 0 ] || rc=1
case $rc in
0) ;;
124) echo "integration: FAILED: the nested run timed out after ${boot_tmo}s" ;;
125) echo "integration: FAILED: the nested L1 guest did not start or died (see the nested-run line above)" ;;
*) ;;
esac
finish "$rc" "$lost"
