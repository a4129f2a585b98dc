#!/bin/bash
# suite.sh BUILD_DIR [t_NAME...]: runs the integration tests (every tests/integration/t_*.sh,
# sorted, or the ones named) against BUILD_DIR/kvmini. Needs a usable /dev/kvm: run.sh
# provides one (nested) when the machine has none.
#
# Each test runs under `timeout`; a test declares its own budget with a line "# timeout: SECONDS"
# (default 300). Exports KVMINI, KVMINI_BUILD, KVMINI_KERNEL, KVMINI_VMLINUX (may be empty),
# KVMINI_INITRD (fetched/built here unless already set) and KVMINI_TEST_TMP (a fresh directory
# per test). Exit status 77 from a test means skipped (a failure when CI=true). Logs go to
# BUILD_DIR/itest-logs/. Prints PASS/FAIL/SKIP per test and ends with
#   integration: N passed, N failed
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
if ! { rm -rf "$logs" && mkdir -p "$logs"; } 2>/dev/null; then
	logs=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-itest-logs.XXXXXX")
fi

if [ $# -gt 0 ]; then
	tests=()
	for n in "$@"; do tests+=("$here/${n%.sh}.sh"); done
else
	mapfile -t tests < <(find "$here" -maxdepth 1 -name 't_*.sh' | LC_ALL=C sort)
fi

echo "integration: kvmini=$KVMINI kernel=$KVMINI_KERNEL vmlinux=${KVMINI_VMLINUX:-none} initrd=$KVMINI_INITRD${KVMINI_NESTED:+ (nested: inside an emulated L1 host)}"
pass=0 fail=0 skip=0 tpid=
# A signal stops the running test too (its `timeout` passes it on to the test's processes).
trap '[ -z "$tpid" ] || kill "$tpid" 2>/dev/null; echo "integration: interrupted"; exit 130' INT
trap '[ -z "$tpid" ] || kill "$tpid" 2>/dev/null; echo "integration: terminated"; exit 143' TERM HUP
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	budget=$(sed -n 's/^# timeout: *\([0-9][0-9]*\).*/\1/p' "$t" 2>/dev/null | head -n 1)
	budget=${budget:-300}
	log=$logs/$name.log
	KVMINI_TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/kvmini-$name.XXXXXX")
	export KVMINI_TEST_TMP
	start=$(date +%s)
	if [ -f "$t" ]; then
		timeout -k 10 "$budget" bash "$t" >"$log" 2>&1 &
		tpid=$!
		wait "$tpid"
		rc=$?
		tpid=
	else
		echo "no such test: $t" >"$log"
		rc=1
	fi
	secs=$(($(date +%s) - start))
	[ "$rc" != 124 ] || echo "TIMEOUT: $name ran past its budget of ${budget}s" >>"$log"
	if [ "$rc" = 0 ]; then
		echo "PASS $name (${secs}s)"
		pass=$((pass + 1))
	elif [ "$rc" = 77 ] && [ "${CI:-}" != true ]; then
		echo "SKIP $name: $(sed -n 's/^SKIP: //p' "$log" | tail -n 1)"
		skip=$((skip + 1))
	else
		[ "$rc" = 77 ] && echo "(skipped, which counts as a failure when CI=true)" >>"$log"
		mkdir -p "$logs/$name" && find "$KVMINI_TEST_TMP" -maxdepth 1 \( -name '*.out' -o -name '*.err' \) -exec cp {} "$logs/$name/" \; 2>/dev/null
		echo "FAIL $name (exit $rc, ${secs}s); guest output kept in $logs/$name/; last lines of $log:"
		tail -n 60 "$log" | sed 's/^/    /'
		fail=$((fail + 1))
	fi
	rm -rf "$KVMINI_TEST_TMP"
done
[ "$skip" = 0 ] || echo "integration: $skip skipped"
echo "integration: $pass passed, $fail failed"
[ "$fail" = 0 ]
