# lib.sh: helpers for tests/integration/arm64/t_*.sh (sourced; busybox sh inside the emulated arm64
# host, see suite.sh). The same conventions as ../lib.sh: checks never stop a test, each prints
# "ok: ..." or "FAIL: ...", kv_finish exits 1 when any failed, kv_skip exits 77.
# suite.sh exports KVMINI, KVMINI_BUILD, KVMINI_KERNEL (the arm64 Image), KVMINI_INITRD and
# KVMINI_TEST_TMP.
# shellcheck shell=sh disable=SC3043,SC3040,SC2034 # (busybox sh has local and pipefail; variables for the tests)

set -u -o pipefail

: "${KVMINI:?KVMINI is not set (run tests through tests/integration/arm64/suite.sh)}"
: "${KVMINI_TEST_TMP:=$(mktemp -d)}"
T=$KVMINI_TEST_TMP
# No console=: the kernel takes its console from the device tree's stdout-path. quiet: every
# console byte is an MMIO exit, slow under emulation.
KV_CMDLINE="quiet panic=-1"
# One guest boot: ~10 s with init under emulation; slack for a loaded machine.
KV_BOOT_TIMEOUT=${KVMINI_BOOT_TIMEOUT:-180}
KV_FAILS=0
KV_LAST=""
KV_SHOWN=""

kv_ok() { echo "  ok: $*"; }
kv_fail() {
	echo "  FAIL: $*"
	KV_FAILS=$((KV_FAILS + 1))
	case " $KV_SHOWN " in *" $KV_LAST "*) return 0 ;; esac
	[ -z "$KV_LAST" ] && return 0
	KV_SHOWN="$KV_SHOWN $KV_LAST"
	kv_show "$KV_LAST"
}
kv_skip() { echo "SKIP: $*"; exit 77; }
kv_finish() {
	if [ "$KV_FAILS" -gt 0 ]; then
		echo "$KV_FAILS check(s) failed"
		exit 1
	fi
	exit 0
}

# kv_show NAME: the tail of run NAME's console output and stderr.
kv_show() {
	echo "  --- last 25 lines of $1's console output ($T/$1.out) ---"
	tr -d '\r' <"$T/$1.out" 2>/dev/null | tail -n 25 | sed 's/^/  | /'
	if [ -s "$T/$1.err" ]; then
		echo "  --- $1's stderr ---"
		tail -n 10 "$T/$1.err" | sed 's/^/  | /'
	fi
	echo "  ---"
}

# kv_timed TIMEOUT FLAG OUT ERR COMMAND...: runs COMMAND (stdin /dev/null, stdout to OUT, stderr
# to ERR); SIGTERM after TIMEOUT s, SIGKILL 10 s later, and FLAG created when that happened
# (busybox timeout gives no 124). Sets KV_RC (124 when timed out).
kv_timed() {
	local tmo="$1" flag="$2" out="$3" err="$4" pid w
	shift 4
	rm -f "$flag"
	"$@" </dev/null >"$out" 2>"$err" &
	pid=$!
	# The watcher polls each second so that it ends by itself soon after COMMAND (busybox here
	# has no pkill to stop a long sleep).
	(
		i=0
		while [ "$i" -lt "$tmo" ]; do
			kill -0 "$pid" 2>/dev/null || exit 0
			sleep 1
			i=$((i + 1))
		done
		kill -0 "$pid" 2>/dev/null || exit 0
		touch "$flag"
		kill "$pid" 2>/dev/null
		for i in 1 2 3 4 5 6 7 8 9 10; do
			sleep 1
			kill -0 "$pid" 2>/dev/null || exit 0
		done
		kill -9 "$pid" 2>/dev/null
	) &
	w=$!
	wait "$pid"
	KV_RC=$?
	wait "$w" 2>/dev/null
	[ ! -f "$flag" ] || KV_RC=124
	return 0
}

# kv_run NAME TIMEOUT KVMINI-ARGS...: kvmini with stdout to $T/NAME.out, stderr to $T/NAME.err;
# sets KV_RC (124 on timeout) and KV_SECS.
kv_run() {
	local name="$1" tmo="$2" start
	shift 2
	KV_LAST=$name
	echo "run $name: kvmini $*"
	start=$(date +%s)
	kv_timed "$tmo" "$T/$name.timedout" "$T/$name.out" "$T/$name.err" "$KVMINI" "$@"
	KV_SECS=$(($(date +%s) - start))
	echo "  exit $KV_RC after ${KV_SECS}s"
	[ "$KV_RC" != 124 ] || echo "  (timed out after ${tmo}s)"
}

# kv_count NAME STRING: lines of NAME's console output containing STRING.
kv_count() { tr -d '\r' <"$T/$1.out" 2>/dev/null | grep -cF -- "$2"; }
# kv_field NAME KEY: the value of the first "KEY=value" in NAME's console output.
kv_field() { tr -d '\r' <"$T/$1.out" 2>/dev/null | sed -n "s/^.*$2=//p" | head -n 1; }

check_eq() { # WHAT EXPECTED SEEN
	if [ "$2" = "$3" ]; then kv_ok "$1 = $3"; else kv_fail "$1: expected '$2', saw '$3'"; fi
}
check_range() { # WHAT LOW HIGH SEEN (integers)
	case $4 in '' | *[!0-9-]*) kv_fail "$1: expected a number within [$2, $3], saw '$4'"; return ;; esac
	if [ "$4" -ge "$2" ] && [ "$4" -le "$3" ]; then
		kv_ok "$1 = $4 (within [$2, $3])"
	else
		kv_fail "$1: expected a number within [$2, $3], saw '$4'"
	fi
}
check_rc() { # WHAT EXPECTED-RC
	if [ "$KV_RC" = "$2" ]; then kv_ok "$1: exit status $KV_RC"; else kv_fail "$1: expected exit status $2, saw $KV_RC"; fi
}
check_out() { # NAME STRING
	if [ "$(kv_count "$1" "$2")" -gt 0 ]; then kv_ok "$1 printed '$2'"; else kv_fail "$1: expected '$2' in the console output, not seen"; fi
}
check_no_out() { # NAME STRING
	local n
	n=$(kv_count "$1" "$2")
	if [ "$n" -eq 0 ]; then
		kv_ok "$1: no '$2' lines"
	else
		kv_fail "$1: expected no '$2' lines, saw $n:"
		tr -d '\r' <"$T/$1.out" | grep -F -- "$2" | head -n 10 | sed 's/^/    /'
	fi
}

# check_basic NAME CPUS MEM_MIB: the checks on a guest that ran kvmini.test=basic (../guest/basic.sh).
check_basic() {
	local name="$1" cpus="$2" mem_kb="$(($3 * 1024))" now online
	now=$(date +%s)
	online=0
	[ "$cpus" -eq 1 ] || online=0-$((cpus - 1))
	check_rc "$name" 0
	check_out "$name" KVMINI-BASIC-DONE
	check_eq "$name: KVMINI-NPROC" "$cpus" "$(kv_field "$name" KVMINI-NPROC)"
	check_eq "$name: KVMINI-ONLINE" "$online" "$(kv_field "$name" KVMINI-ONLINE)"
	check_range "$name: RAM the kernel found (dmesg Memory: .../NK)" $((mem_kb - 4096)) "$mem_kb" "$(kv_field "$name" KVMINI-E820-TOTAL-KB)"
	check_range "$name: KVMINI-MEMTOTAL-KB" $((mem_kb * 8 / 10)) "$mem_kb" "$(kv_field "$name" KVMINI-MEMTOTAL-KB)"
	check_range "$name: KVMINI-DATE (guest clock vs the host's $now)" $((now - 300)) $((now + 300)) "$(kv_field "$name" KVMINI-DATE)"
	check_no_out "$name" KVMINI-DMESG-BAD
}

# kv_need OPTION: fails the test at once when kvmini run --help does not mention OPTION.
kv_need() {
	# The help text first, no pipe: grep -q ending one early would SIGPIPE kvmini (pipefail).
	local help
	help=$("$KVMINI" run --help 2>&1)
	case $help in
	*"$1"*) ;;
	*)
		kv_fail "kvmini has no $1 option ('$KVMINI run --help' does not mention it)"
		kv_finish
		;;
	esac
}
