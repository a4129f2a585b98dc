#!/bin/bash
# suite.sh BUILD_DIR [t_NAME...]: runs the integration tests (every tests/integration/t_*.sh,
# sorted, or the ones named) against BUILD_DIR/kvmini. Needs a usable /dev/kvm: run.sh
# provides one (nested) when the machine has none.
#
# Each test runs under `timeout`; a test declares its own budget with a line "# timeout: SECONDS"
# (default 300). Exports KVMINI, KVMINI_BUILD, KVMINI_KERNEL, KVMINI_VMLINUX (may be empty),
# KVMINI_INITRD (fetched/built here unless already set) and KVMINI_TEST_TMP (a fresh directory
# per test). Exit status 77 from a test means skipped (a failure when CI=true). Logs go to
# BUILD_DIR/itest-logs/. Inside the nested harness (KVMINI_NESTED=1) a failed test is run once
# more (KVMINI_TEST_RETRIES, default 1 there, 0 elsewhere): the emulated SVM now and then hangs
# or resets a guest by itself. The failed attempt is printed as a RETRY line and its logs kept. Prints PASS/FAIL/SKIP per test and ends with
#   integration: N passed, N failed
# (KVMINI_SUITE_LABEL replaces "integration": run.sh adds the power-cut test to the count.)
set -uo pipefail

[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [t_NAME...]" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=$(realpath "$1")
shift
export KVMINI=$build/kvmini KVMINI_BUILD=$build

if [ -z "${KVMINI_KERNEL:-}" ]; then
	kdir=$("$here/../guest/fetch-kernel.sh") || { echo "suite: cannot fetch the guest kernel"; echo "integration: 0 passed, 1 failed"; exit 1; }
	export KVMINI_KERNEL_DIR=$kdir KVMINI_KERNEL=$kdir/vmlinuz
	KVMINI_VMLINUX=
	[ -f "$kdir/vmlinux" ] && KVMINI_VMLINUX=$kdir/vmlinux
	export KVMINI_VMLINUX
fi
export KVMINI_VMLINUX=${KVMINI_VMLINUX:-}
if [ -z "${KVMINI_INITRD:-}" ]; then
	export KVMINI_INITRD=$build/guest/initrd.cpio.gz
	"$here/../guest/build-initrd.sh" "$KVMINI_INITRD" || { echo "suite: cannot build the guest initrd"; echo "integration: 0 passed, 1 failed"; exit 1; }
fi

logs=$build/itest-logs
# KVMINI_SUITE_RESUME=1 (run.sh, resuming in a fresh L1 boot): keep the earlier boots' logs.
[ -n "${KVMINI_SUITE_RESUME:-}" ] || rm -rf "$logs" 2>/dev/null
if ! mkdir -p "$logs" 2>/dev/null; then
	logs=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-itest-logs.XXXXXX")
fi

if [ $# -gt 0 ]; then
	tests=()
	for n in "$@"; do tests+=("$here/${n%.sh}.sh"); done
else
	mapfile -t tests < <(find "$here" -maxdepth 1 -name 't_*.sh' | LC_ALL=C sort)
fi

echo "integration: kvmini=$KVMINI kernel=$KVMINI_KERNEL vmlinux=${KVMINI_VMLINUX:-none} initrd=$KVMINI_INITRD${KVMINI_NESTED:+ (nested: inside an emulated L1 host)}"
pass=0 fail=0 skip=0 tpid='' rc=0
# Nested (emulated) runs retry a failed test once by default; KVMINI_TEST_RETRIES overrides.
retries=${KVMINI_TEST_RETRIES:-$([ -n "${KVMINI_NESTED:-}" ] && echo 1 || echo 0)}
# A signal stops the running test too (its `timeout` passes it on to the test's processes).
trap '[ -z "$tpid" ] || kill "$tpid" 2>/dev/null; echo "integration: interrupted"; exit 130' INT
trap '[ -z "$tpid" ] || kill "$tpid" 2>/dev/null; echo "integration: terminated"; exit 143' TERM HUP
# run_test T LOG BUDGET: one attempt; sets rc.
run_test() {
	KVMINI_TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-$(basename "$1" .sh).XXXXXX")
	export KVMINI_TEST_TMP
	if [ -f "$1" ]; then
		timeout -k 10 "$3" bash "$1" >"$2" 2>&1 &
		tpid=$!
		wait "$tpid"
		rc=$?
		tpid=
	else
		echo "no such test: $1" >"$2"
		rc=1
	fi
	[ "$rc" != 124 ] || echo "TIMEOUT: ran past its budget of ${3}s" >>"$2"
}
keep_outputs() { # DIR: keep the guests' console output and stderr of the attempt that just ran
	mkdir -p "$1" && find "$KVMINI_TEST_TMP" -maxdepth 1 \( -name '*.out' -o -name '*.err' \) -exec cp {} "$1/" \; 2>/dev/null
}

# shellcheck source-path=SCRIPTDIR source=suite_loop.sh
. "$here/suite_loop.sh"
suite_loop "" "${tests[@]}"
[ "$skip" = 0 ] || echo "integration: $skip skipped"
echo "${KVMINI_SUITE_LABEL:-integration}: $pass passed, $fail failed"
[ "$fail" = 0 ]
