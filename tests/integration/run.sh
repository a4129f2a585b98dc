#!/bin/bash
# run.sh BUILD_DIR: the integration tests, wherever they can run.
#   - /dev/kvm usable (tests/nested/nested-run.sh --check-kvm: it opens read-write, creates a VM
#     and boots a kernel): tests/integration/suite.sh BUILD_DIR here;
#   - otherwise: the whole suite inside ONE nested boot (tests/nested/nested-run.sh: an L1 guest
#     under QEMU's software emulation with an emulated AMD SVM CPU, whose kernel serves /dev/kvm);
#   - neither possible: a failure when CI=true, else a skip (exit 0) that says why.
# Then tests/integration/powercut.sh (durability across a power cut of the host: it needs an L1
# boot of its own, always nested) and one final line counting both:
#   integration: N passed, N failed
# The guest kernel is fetched and the initrd built here first (L1's root is read-only and has
# no network). Environment: KVMINI_NESTED_TIMEOUT (default 1800 s for the whole nested run),
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

# finish SUITE_OUTPUT SUITE_RC: runs the power-cut test and prints the total; exits.
finish() {
	local counts pass fail prc
	set +e
	counts=$(sed -n 's/^suite: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$1" | tail -n 1)
	if [ -z "$counts" ]; then
		echo "integration: the suite did not finish (exit $2)"
		counts="0 1"
	fi
	read -r pass fail <<<"$counts"
	"$here/powercut.sh" "$build"
	prc=$?
	case $prc in
	0) pass=$((pass + 1)) ;;
	77) [ "${CI:-}" = true ] && fail=$((fail + 1)) ;;
	*) fail=$((fail + 1)) ;;
	esac
	echo "integration: $pass passed, $fail failed"
	[ "$fail" = 0 ] && [ "$2" = 0 ] && exit 0
	[ "$2" = 0 ] && exit 1
	exit "$2"
}
suite_out=$(mktemp "${TMPDIR:-/tmp}/kvmini-suite.XXXXXX")
trap 'rm -f "$suite_out"' EXIT
export KVMINI_SUITE_LABEL=suite

prepare
if why=$("$root/tests/nested/nested-run.sh" --check-kvm); then
	echo "integration: /dev/kvm is usable ($why): running the suite directly"
	set +e
	"$here/suite.sh" "$build" | tee "$suite_out"
	finish "$suite_out" "${PIPESTATUS[0]}"
fi

missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v cpio >/dev/null || missing+=(cpio)
command -v perl >/dev/null || missing+=(perl)
[ ${#missing[@]} -eq 0 ] || cannot "$why, and the nested harness needs ${missing[*]} (scripts/install-deps.sh installs them)"

tmo=${KVMINI_NESTED_TIMEOUT:-1800}
echo "integration: $why: running the suite inside one nested L1 guest (QEMU TCG, emulated AMD SVM; limit ${tmo}s)"
set +e
"$root/tests/nested/nested-run.sh" --timeout "$tmo" -- "$here/suite.sh" "$build" | tee "$suite_out"
rc=${PIPESTATUS[0]}
if [ "$rc" = 125 ]; then
	# L1 itself failed (did not start, died or soft-locked), not a test: one more L1 boot.
	echo "integration: the nested L1 guest failed (see above): running the whole suite again in a fresh L1 boot"
	"$root/tests/nested/nested-run.sh" --timeout "$tmo" -- "$here/suite.sh" "$build" | tee "$suite_out"
	rc=${PIPESTATUS[0]}
fi
case $rc in
0) ;;
124) echo "integration: FAILED: the nested run timed out after ${tmo}s" ;;
125) echo "integration: FAILED: the nested L1 guest did not start or died (see the nested-run line above)" ;;
*) ;;
esac
finish "$suite_out" "$rc"
