#!/bin/sh
# suite.sh BUILD_DIR [t_NAME...]: the arm64 integration tests (every tests/integration/arm64/t_*.sh,
# sorted, or the ones named) against BUILD_DIR/kvmini, under busybox sh inside the emulated arm64
# host that tests/integration/arm64/run.sh boots (tests/nested/nested-run.sh --arch arm64).
# Needs KVMINI_KERNEL (the arm64 Image) and KVMINI_INITRD (build-initrd.sh --arch arm64's) from
# run.sh: L1 has no apt and cannot run the x86 scripts that make them.
#
# Each test runs with a time budget from its "# timeout: SECONDS" line (default 300); a failed
# test runs once more (KVMINI_TEST_RETRIES, default 1: the emulated host now and then hangs a
# guest by itself), the failed attempt shown as a RETRY line. Exit status 77 means skipped (a
# failure when CI=true). Logs go to BUILD_DIR/itest-logs/. Prints PASS/FAIL/SKIP per test, as
# ../suite.sh does, and ends with
#   arm64: N passed, N failed
# (KVMINI_SUITE_LABEL replaces "arm64": run.sh counts resumed boots together.)
# shellcheck disable=SC3040 # (busybox sh has pipefail)
set -u -o pipefail

[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [t_NAME...]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
shift
export KVMINI="$build/kvmini" KVMINI_BUILD="$build"
: "${KVMINI_KERNEL:?KVMINI_KERNEL (the arm64 Image) is not set: run tests/integration/arm64/run.sh}"
: "${KVMINI_INITRD:?KVMINI_INITRD is not set: run tests/integration/arm64/run.sh}"
export KVMINI_KERNEL KVMINI_INITRD
export KVMINI_TEST_TMP=/
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

logs=$build/itest-logs
[ -n "${KVMINI_SUITE_RESUME:-}" ] || rm -rf "$logs" 2>/dev/null
mkdir -p "$logs" 2>/dev/null || logs=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-itest-logs.XXXXXX")

if [ $# -gt 0 ]; then
	tests=
	for n in "$@"; do tests="$tests $here/${n%.sh}.sh"; done
else
	tests=$(find "$here" -maxdepth 1 -name 't_*.sh' | LC_ALL=C sort)
fi
echo "arm64: kvmini=$KVMINI kernel=$KVMINI_KERNEL initrd=$KVMINI_INITRD ($(uname -m), $(nproc) CPUs)"
retries=${KVMINI_TEST_RETRIES:-1}
pass=0 fail=0 skip=0 rc=0

# run_test T LOG BUDGET: one attempt in a fresh scratch directory; sets rc.
run_test() {
	KVMINI_TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-$(basename "$1" .sh).XXXXXX")
	export KVMINI_TEST_TMP
	if [ -f "$1" ]; then
		kv_timed "$3" "$KVMINI_TEST_TMP.timedout" "$2" "$2.err" sh "$1"
		rc=$KV_RC
		cat "$2.err" >>"$2" 2>/dev/null
		rm -f "$2.err" "$KVMINI_TEST_TMP.timedout"
	else
		echo "no such test: $1" >"$2"
		rc=1
	fi
	[ "$rc" != 124 ] || echo "TIMEOUT: ran past its budget of ${3}s" >>"$2"
}
keep_outputs() { # DIR: the guests' console output and stderr of the attempt that just ran
	mkdir -p "$1" && cp "$KVMINI_TEST_TMP"/*.out "$KVMINI_TEST_TMP"/*.err "$1/" 2>/dev/null
	return 0
}

# shellcheck source-path=SCRIPTDIR source=../suite_loop.sh
. "$here/../suite_loop.sh"
# shellcheck disable=SC2086 # (the list of paths, split on white space)
suite_loop arm64/ $tests
[ "$skip" = 0 ] || echo "${KVMINI_SUITE_LABEL:-arm64}: $skip skipped"
echo "${KVMINI_SUITE_LABEL:-arm64}: $pass passed, $fail failed"
[ "$fail" = 0 ]
