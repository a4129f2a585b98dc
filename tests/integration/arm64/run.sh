#!/bin/bash
# run.sh BUILD_DIR: the arm64 integration tests against BUILD_DIR/kvmini (an arm64 build, e.g.
# build/arm64), inside ONE emulated arm64 host (tests/nested/nested-run.sh --arch arm64; this
# machine is x86, so always nested). Prepares what L1 cannot make (it runs busybox only): the
# stock arm64 kernel (fetch-kernel.sh --arch arm64, shared read-only into L1), the arm64 test
# initramfs (BUILD_DIR/guest/initrd.cpio.gz), kvm_smoke (BUILD_DIR/itests/, cross-built static),
# an empty qcow2 image made by qemu-img (BUILD_DIR/guest/empty-128M.qcow2); then runs
# tests/integration/arm64/suite.sh there. If L1 itself fails (nested-run.sh exit 125), one more
# boot resumes at the first test without a verdict. Ends with one line:
#   arm64: N passed, N failed
# Missing BUILD_DIR/kvmini or tools: a failure when CI=true, else a skip (exit 0, "arm64: SKIPPED").
# Environment: KVMINI_ARM64_TIMEOUT (default 1800 s for each L1 boot), KVMINI_CC_ARM64.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [t_NAME...]" >&2; exit 2; }
build=$(realpath -m "$1")
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)

cannot() {
	if [ "${CI:-}" = true ]; then
		echo "FAIL arm64/prepare: $* (CI=true requires the arm64 tests)"
		echo "arm64: 0 passed, 1 failed"
		exit 1
	fi
	echo "arm64: SKIPPED: $*"
	exit 0
}

kvmini=$build/kvmini
[ -x "$kvmini" ] || cannot "$kvmini does not exist (make ARCH=arm64 builds it)"
# ELF e_machine 183 (0xb7) is AArch64; a dynamic one would find no libraries in L1.
[ "$(od -An -tu2 -j 18 -N2 "$kvmini" | tr -d ' ')" = 183 ] || cannot "$kvmini is not an arm64 program"
if readelf -l "$kvmini" 2>/dev/null | grep -q 'Requesting program interpreter'; then
	cannot "$kvmini is dynamically linked: the arm64 host has only busybox, it must be static"
fi
missing=()
command -v qemu-system-aarch64 >/dev/null || missing+=(qemu-system-arm)
command -v cpio >/dev/null || missing+=(cpio)
command -v perl >/dev/null || missing+=(perl)
command -v qemu-img >/dev/null || missing+=(qemu-utils)
cc=${KVMINI_CC_ARM64:-aarch64-linux-gnu-gcc}
command -v "$cc" >/dev/null || missing+=(gcc-aarch64-linux-gnu)
[ ${#missing[@]} -eq 0 ] || cannot "the arm64 tests need ${missing[*]} (scripts/install-deps.sh installs them)"

kdir=$("$root/tests/guest/fetch-kernel.sh" --arch arm64) || cannot "could not fetch the arm64 guest kernel (fetch-kernel.sh --arch arm64)"
export KVMINI_KERNEL_DIR_ARM64=$kdir
mkdir -p "$build/guest" "$build/itests"
initrd=$build/guest/initrd.cpio.gz
"$root/tests/guest/build-initrd.sh" --arch arm64 "$initrd" || cannot "could not build the arm64 initrd (build-initrd.sh --arch arm64)"
"$cc" -static -O2 -Wall -o "$build/itests/kvm_smoke" "$here/kvm_smoke.c" || cannot "could not build kvm_smoke with $cc"
qcow2=$build/guest/empty-128M.qcow2
[ -f "$qcow2" ] || qemu-img create -q -f qcow2 "$qcow2" 128M || cannot "qemu-img could not make $qcow2"

# What the suite in L1 needs (KVMINI_* variables go through); the x86 suite's are not for it.
unset KVMINI_SUITE_RESUME KVMINI_VMLINUX KVMINI_KERNEL_DIR
export KVMINI_KERNEL=$kdir/Image KVMINI_INITRD=$initrd KVMINI_QCOW2_TEMPLATE=$qcow2
export KVMINI_SUITE_LABEL=arm64-suite

out=$(mktemp "${TMPDIR:-/tmp}/kvmini-arm64.XXXXXX")
trap 'rm -f "$out"' EXIT
if [ $# -gt 0 ]; then
	all=("$@")
else
	mapfile -t all < <(find "$here" -maxdepth 1 -name 't_*.sh' -printf '%f\n' | sed 's/\.sh$//' | LC_ALL=C sort)
fi
verdict() { grep -qE "^(PASS|FAIL|SKIP) arm64/$1( |:|\$)" "$out"; }
tmo=${KVMINI_ARM64_TIMEOUT:-1800}
echo "arm64: running ${#all[@]} tests inside one emulated arm64 host (QEMU TCG, virt with EL2 and GICv3; limit ${tmo}s)"
boots=0 rc=0
set +e
while :; do
	remaining=()
	for n in "${all[@]}"; do verdict "$n" || remaining+=("$n"); done
	[ ${#remaining[@]} -gt 0 ] || break
	boots=$((boots + 1))
	if [ "$boots" -gt 1 ]; then
		echo "arm64: the emulated arm64 host failed (see above): resuming at ${remaining[0]} in a fresh boot ($boots of 2)"
		export KVMINI_SUITE_RESUME=1
	fi
	"$root/tests/nested/nested-run.sh" --arch arm64 --timeout "$tmo" --ro "$kdir" -- \
		"$here/suite.sh" "$build" "${remaining[@]}" | tee -a "$out"
	rc=${PIPESTATUS[0]}
	if [ "$rc" != 125 ] || [ "$boots" -ge 2 ]; then break; fi
done
set -e
pass=$(grep -c '^PASS arm64/' "$out" || true)
fail=$(grep -c '^FAIL arm64/' "$out" || true)
lost=0
for n in "${all[@]}"; do verdict "$n" || lost=$((lost + 1)); done
case $rc in
0 | 1) ;;
124) echo "arm64: FAILED: the emulated arm64 host ran past ${tmo}s" ;;
125) echo "arm64: FAILED: the emulated arm64 host did not start or died (see the nested-run line above)" ;;
*) echo "arm64: the suite ended with exit status $rc" ;;
esac
[ "$lost" = 0 ] || echo "arm64: $lost tests got no verdict (counted as failed)"
fail=$((fail + lost))
[ "$rc" = 0 ] || [ "$fail" != 0 ] || fail=1
echo "arm64: $pass passed, $fail failed"
[ "$fail" = 0 ]
