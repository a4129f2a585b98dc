# suite_loop.sh: the test loop that suite.sh (bash, x86) and arm64/suite.sh (busybox sh) share;
# sourced, POSIX sh.
#
# suite_loop PREFIX TEST...: runs each test file (path), retrying a failed one up to $retries
# times, and prints per test "PASS|SKIP|FAIL PREFIXNAME ..." and "RETRY PREFIXNAME ..." for each
# failed attempt that was retried; counts into pass, fail and skip. The caller sets logs (the log
# directory) and retries, and defines
#   run_test T LOG BUDGET   one attempt in a fresh $KVMINI_TEST_TMP, output in LOG; sets rc
#                           (124: ran past BUDGET seconds, 77: skipped)
#   keep_outputs DIR        copies the attempt's guest console output and stderr to DIR
# A test's budget is its "# timeout: SECONDS" line (default 300). Exit status 77 is a skip,
# except with CI=true, where it counts as a failure.
# shellcheck shell=sh disable=SC2154 # (logs, retries, rc: the caller's)
suite_loop() {
	_prefix=$1
	shift
	for t in "$@"; do
		name=$(basename "$t" .sh)
		budget=$(sed -n 's/^# timeout: *\([0-9][0-9]*\).*/\1/p' "$t" 2>/dev/null | head -n 1)
		budget=${budget:-300}
		log=$logs/$name.log
		start=$(date +%s)
		attempt=1
		run_test "$t" "$log" "$budget"
		while [ "$rc" != 0 ] && [ "$rc" != 77 ] && [ "$attempt" -le "$retries" ]; do
			# Under emulation a guest now and then hangs or resets for reasons of the emulator's
			# own; the failed attempt is reported, and kept, whatever the verdict.
			mv "$log" "$logs/$name.attempt$attempt.log"
			keep_outputs "$logs/$name.attempt$attempt"
			rm -rf "$KVMINI_TEST_TMP"
			echo "RETRY $_prefix$name: attempt $attempt failed (exit $rc): $(grep -m 3 -E '^ *(FAIL|TIMEOUT)' "$logs/$name.attempt$attempt.log" | sed 's/^ *//' | tr '\n' ' ')(log: $logs/$name.attempt$attempt.log)"
			attempt=$((attempt + 1))
			run_test "$t" "$log" "$budget"
		done
		secs=$(($(date +%s) - start))
		if [ "$rc" = 0 ]; then
			note=
			[ "$attempt" = 1 ] || note=", on attempt $attempt"
			echo "PASS $_prefix$name (${secs}s$note)"
			pass=$((pass + 1))
		elif [ "$rc" = 77 ] && [ "${CI:-}" != true ]; then
			echo "SKIP $_prefix$name: $(sed -n 's/^SKIP: //p' "$log" | tail -n 1)"
			skip=$((skip + 1))
		else
			[ "$rc" = 77 ] && echo "(skipped, which counts as a failure when CI=true)" >>"$log"
			keep_outputs "$logs/$name"
			echo "FAIL $_prefix$name (exit $rc, ${secs}s); guest output kept in $logs/$name/; last lines of $log:"
			tail -n 60 "$log" | sed 's/^/    /'
			fail=$((fail + 1))
		fi
		rm -rf "$KVMINI_TEST_TMP"
	done
}
