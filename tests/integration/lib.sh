# lib.sh: helpers for tests/integration/t_*.sh (sourced). suite.sh exports KVMINI (the command),
# KVMINI_BUILD, KVMINI_KERNEL (bzImage), KVMINI_VMLINUX (ELF, may be empty), KVMINI_INITRD and
# KVMINI_TEST_TMP (a scratch directory for this test).
#
# Checks never stop a test: each prints "ok: ..." or "FAIL: ... expected ..., saw ...", and
# kv_finish exits 1 when any failed. A test exits 77 (kv_skip) to be reported as skipped.
# shellcheck shell=bash disable=SC2034

set -uo pipefail

: "${KVMINI:?KVMINI is not set (run tests through tests/integration/suite.sh)}"
: "${KVMINI_TEST_TMP:=$(mktemp -d)}"
T=$KVMINI_TEST_TMP
# The command line kvmini uses by default, to which tests add kvmini.test=NAME.
KV_CMDLINE="console=ttyS0 reboot=k panic=-1"
# Time limit for one guest boot: about 1-2 s with a real KVM, 15-30 s nested (under emulation).
KV_BOOT_TIMEOUT=${KVMINI_BOOT_TIMEOUT:-150}
# kv_wait_for gives up when a guest's console has been silent this long while it waits.
KV_STALL=${KVMINI_STALL_TIMEOUT:-60}
KV_FAILS=0
KV_LAST=""     # the run that checks refer to (for the output tail on failure)
KV_SHOWN=""    # runs whose tail has been shown already

# Every run is a background `timeout` process (so that a signal to this test is handled at
# once): stop them all when the test ends or is stopped.
KV_PIDS=()
KV_MOUNTS=() # mount points to unmount at the end (kv_loop_ext4), after the runs stopped
kv_cleanup() {
	local p i under
	for p in "${KV_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	# Also what is mounted under $T without being in KV_MOUNTS: kv_loop_ext4 called in a
	# subshell, as in bdir=$(kv_odirect_dir).
	under=$(awk -v t="$T/" 'index($2, t) == 1 { print $2 }' /proc/mounts 2>/dev/null | sort -r)
	if [ ${#KV_MOUNTS[@]} -gt 0 ] || [ -n "$under" ]; then
		for p in "${KV_PIDS[@]}"; do wait "$p" 2>/dev/null; done
		for ((i = ${#KV_MOUNTS[@]} - 1; i >= 0; i--)); do
			umount "${KV_MOUNTS[i]}" 2>/dev/null || umount -l "${KV_MOUNTS[i]}" 2>/dev/null
		done
		for p in $under; do
			grep -q " $p " /proc/mounts && { umount "$p" 2>/dev/null || umount -l "$p" 2>/dev/null; }
		done
	fi
	return 0
}
trap kv_cleanup EXIT
trap 'kv_cleanup; exit 143' TERM HUP
trap 'kv_cleanup; exit 130' INT

kv_ok() { echo "  ok: $*"; }
kv_fail() {
	echo "  FAIL: $*"
	KV_FAILS=$((KV_FAILS + 1))
	if [ -n "$KV_LAST" ] && [[ " $KV_SHOWN " != *" $KV_LAST "* ]]; then
		KV_SHOWN="$KV_SHOWN $KV_LAST"
		kv_show "$KV_LAST"
	fi
}
kv_skip() { echo "SKIP: $*"; exit 77; }
kv_finish() {
	if [ "$KV_FAILS" -gt 0 ]; then
		echo "$KV_FAILS check(s) failed"
		exit 1
	fi
	exit 0
}

# kv_show NAME [LINES]: the tail of run NAME's console output and stderr.
kv_show() {
	local n=${2:-25}
	echo "  --- last $n lines of $1's console output ($T/$1.out) ---"
	tr -d '\r' <"$T/$1.out" 2>/dev/null | tail -n "$n" | sed 's/^/  | /'
	if [ -s "$T/$1.err" ]; then
		echo "  --- $1's stderr ---"
		tail -n 10 "$T/$1.err" | sed 's/^/  | /'
	fi
	echo "  ---"
}

# kv_cmd NAME TIMEOUT COMMAND...: runs COMMAND with stdin from $KV_STDIN (default /dev/null),
# stdout to $T/NAME.out, stderr to $T/NAME.err. Sets KV_RC (124 on timeout) and KV_SECS.
kv_cmd() {
	local name=$1 tmo=$2 start
	shift 2
	KV_LAST=$name
	start=$(date +%s)
	echo "run $name: $*"
	timeout -k 5 "$tmo" "$@" <"${KV_STDIN:-/dev/null}" >"$T/$name.out" 2>"$T/$name.err" &
	KV_PIDS+=($!)
	wait $!
	KV_RC=$?
	KV_SECS=$(($(date +%s) - start))
	echo "  exit $KV_RC after ${KV_SECS}s"
	[ "$KV_RC" != 124 ] || echo "  (timed out after ${tmo}s)"
}

# kv_run NAME TIMEOUT KVMINI-ARGS...: kv_cmd with $KVMINI.
kv_run() {
	local name=$1 tmo=$2
	shift 2
	kv_cmd "$name" "$tmo" "$KVMINI" "$@"
}

# kv_start NAME TIMEOUT KVMINI-ARGS...: like kv_run, in the background; sets KV_PID (the
# `timeout` process: kill it to stop kvmini) and KV_START.
kv_start() {
	local name=$1 tmo=$2
	shift 2
	KV_LAST=$name
	echo "start $name: kvmini $*"
	KV_START=$(date +%s)
	timeout -k 5 "$tmo" "$KVMINI" "$@" <"${KV_STDIN:-/dev/null}" >"$T/$name.out" 2>"$T/$name.err" &
	KV_PID=$!
	KV_PIDS+=("$KV_PID")
}

# kv_wait_pid PID TIMEOUT: waits for a background run; sets KV_RC (124 when it had to be killed).
kv_wait_pid() {
	local pid=$1 end=$(($(date +%s) + $2))
	while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 0.2; done
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		KV_RC=124
		echo "  still running after $2s: killed"
	else
		wait "$pid"
		KV_RC=$?
		echo "  exit $KV_RC"
	fi
}

# kv_count NAME STRING: how many lines of NAME's console output contain STRING.
kv_count() { tr -d '\r' <"$T/$1.out" 2>/dev/null | grep -cF -- "$2"; }

# kv_wait_for NAME STRING TIMEOUT [COUNT [PID]]: waits until STRING appears COUNT times (default
# 1) in NAME's console output; fails early when PID has exited or the console stayed silent for
# $KV_STALL seconds (a hung guest). Returns 0 when seen.
kv_wait_for() {
	local name=$1 s=$2 now end=$(($(date +%s) + $3)) count=${4:-1} pid=${5:-} size last_size=-1 last_change
	last_change=$(date +%s)
	while now=$(date +%s) && [ "$now" -lt "$end" ]; do
		[ "$(kv_count "$name" "$s")" -ge "$count" ] && return 0
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			[ "$(kv_count "$name" "$s")" -ge "$count" ] && return 0
			echo "  (kvmini exited while waiting for '$s')"
			return 1
		fi
		size=$(stat -c %s "$T/$name.out" 2>/dev/null || echo 0)
		if [ "$size" != "$last_size" ]; then
			last_size=$size last_change=$now
		elif [ $((now - last_change)) -ge "$KV_STALL" ]; then
			echo "  (no console output for ${KV_STALL}s while waiting for '$s': the guest seems hung)"
			return 1
		fi
		sleep 0.2
	done
	echo "  (gave up waiting for '$s' after $3s)"
	return 1
}

# kv_field NAME KEY: the value in the first line of NAME's console output that has "KEY=value"
# (KEY may follow other output on the line, e.g. a prompt with terminal escapes).
kv_field() { tr -d '\r' <"$T/$1.out" 2>/dev/null | sed -n "s/^.*$2=//p" | head -n 1; }

check_eq() { # WHAT EXPECTED SEEN
	if [ "$2" = "$3" ]; then kv_ok "$1 = $3"; else kv_fail "$1: expected '$2', saw '$3'"; fi
}
check_range() { # WHAT LOW HIGH SEEN (integers)
	if [[ $4 =~ ^-?[0-9]+$ ]] && [ "$4" -ge "$2" ] && [ "$4" -le "$3" ]; then
		kv_ok "$1 = $4 (within [$2, $3])"
	else
		kv_fail "$1: expected a number within [$2, $3], saw '$4'"
	fi
}
check_rc() { # WHAT EXPECTED-RC
	if [ "$KV_RC" = "$2" ]; then kv_ok "$1: exit status $KV_RC"; else kv_fail "$1: expected exit status $2, saw $KV_RC"; fi
}
check_out() { # NAME STRING: NAME's console output contains STRING
	if [ "$(kv_count "$1" "$2")" -gt 0 ]; then kv_ok "$1 printed '$2'"; else kv_fail "$1: expected '$2' in the console output, not seen"; fi
}
check_no_out() { # NAME STRING: NAME's console output does not contain STRING
	local n
	n=$(kv_count "$1" "$2")
	if [ "$n" -eq 0 ]; then
		kv_ok "$1: no '$2' lines"
	else
		kv_fail "$1: expected no '$2' lines, saw $n:"
		tr -d '\r' <"$T/$1.out" | grep -F -- "$2" | head -n 10 | sed 's/^/    /'
	fi
}

# check_basic NAME CPUS MEM_MIB: the checks on a guest that ran kvmini.test=basic.
check_basic() {
	local name=$1 cpus=$2 mem_kb=$(($3 * 1024)) now
	now=$(date +%s)
	check_rc "$name" 0
	check_out "$name" KVMINI-BASIC-DONE
	check_eq "$name: KVMINI-NPROC" "$cpus" "$(kv_field "$name" KVMINI-NPROC)"
	check_eq "$name: KVMINI-ONLINE" "$([ "$cpus" -eq 1 ] && echo 0 || echo "0-$((cpus - 1))")" "$(kv_field "$name" KVMINI-ONLINE)"
	check_range "$name: KVMINI-E820-TOTAL-KB (RAM the kernel found)" $((mem_kb - 4096)) "$mem_kb" "$(kv_field "$name" KVMINI-E820-TOTAL-KB)"
	check_range "$name: KVMINI-MEMTOTAL-KB" $((mem_kb * 8 / 10)) "$mem_kb" "$(kv_field "$name" KVMINI-MEMTOTAL-KB)"
	check_range "$name: KVMINI-DATE (guest clock vs host's $now)" $((now - 300)) $((now + 300)) "$(kv_field "$name" KVMINI-DATE)"
	check_no_out "$name" KVMINI-DMESG-BAD
	check_out "$name" "reboot: Power down"
}

# --- disks (t_blk_*.sh) ---------------------------------------------------------------------
# The guest side (tests/integration/guest/blk_*.sh) prints KVMINI-BLK-KEY=value lines, read with
# kv_field NAME KVMINI-BLK-KEY; per disk: KVMINI-BLK-vda-SIZE (512-byte sectors), -SERIAL, -RO,
# -QUEUES (entries of /sys/block/vda/mq), -CACHE (queue/write_cache), -DISCARD-MAX, -WZ-MAX.

# kv_tool NAME: the path of an e2fsprogs/util-linux tool (debugfs, mkfs.ext4, e2fsck, losetup),
# also when PATH lacks the sbin directories; fails the test when it is missing.
kv_tool() {
	local p
	p=$(PATH=$PATH:/usr/sbin:/sbin command -v "$1") || {
		kv_fail "$1 is not installed (scripts/install-deps.sh: e2fsprogs, util-linux)"
		return 1
	}
	echo "$p"
}

# kv_md5 FILE: md5 of FILE (what the guests report where sha256 would cost too much).
kv_md5() { md5sum <"$1" | cut -d' ' -f1; }
# kv_sha FILE [SKIP_MIB COUNT_MIB]: sha256 of FILE, or of COUNT_MIB MiB at SKIP_MIB MiB.
kv_sha() {
	if [ $# -ge 3 ]; then
		dd if="$1" bs=1M skip="$2" count="$3" iflag=fullblock status=none | sha256sum | cut -d' ' -f1
	else
		sha256sum <"$1" | cut -d' ' -f1
	fi
}
# kv_zero_sha MIB: sha256 of MIB MiB of zeroes.
kv_zero_sha() { head -c "$(($1 << 20))" /dev/zero | sha256sum | cut -d' ' -f1; }

# kv_image_hash IMG PATH: sha256 of the file PATH inside the ext2/3/4 file system in IMG (read
# with debugfs, no mount); prints nothing when debugfs cannot dump it.
kv_image_hash() {
	local debugfs out=$T/image-hash.$$.out
	debugfs=$(kv_tool debugfs) || return 1
	rm -f "$out"
	# debugfs exits 0 whatever happens: only its messages tell.
	"$debugfs" -R "dump $2 $out" "$1" >"$T/image-hash.log" 2>&1
	if [ -f "$out" ] && ! grep -v '^debugfs [0-9]' "$T/image-hash.log" | grep -q .; then
		kv_sha "$out"
	else
		sed 's/^/  debugfs: /' "$T/image-hash.log" | grep -v '^  debugfs: debugfs [0-9]' >&2
	fi
	rm -f "$out"
}

# kv_alloc_kib FILE: KiB of storage allocated to FILE (what du shows; less than its size when sparse).
kv_alloc_kib() { echo $(($(stat -c '%b * %B' "$1") / 1024)); }

# kv_data_map FILE: FILE's data ranges (SEEK_DATA/SEEK_HOLE) as "START-END" in KiB, one per
# line; holes are left out. Every byte counts as data where the file system has no holes.
kv_data_map() {
	perl -e 'use Fcntl qw(SEEK_END); open(my $f, "<", $ARGV[0]) or die "$ARGV[0]: $!\n";
		my $size = sysseek($f, 0, SEEK_END); my $pos = 0;
		while ($pos < $size) {
			my $d = sysseek($f, $pos, 3); last unless defined $d; # SEEK_DATA
			my $h = sysseek($f, $d, 4); $h = $size unless defined $h; # SEEK_HOLE
			printf "%d-%d\n", $d / 1024, $h / 1024; $pos = $h;
		}' "$1"
}

# kv_can_punch DIR: hole punching works for files in DIR (tmpfs, ext4, xfs: yes; 9p: no).
kv_can_punch() {
	local f=$1/.kv-punch-probe ok=1
	head -c 65536 /dev/urandom >"$f" 2>/dev/null || return 1
	fallocate --punch-hole --offset 0 --length 65536 "$f" 2>/dev/null || ok=0
	[ "$ok" = 1 ] && [ "$(stat -c %b "$f")" -lt 128 ] || ok=0
	rm -f "$f"
	[ "$ok" = 1 ]
}
# kv_can_odirect DIR: files in DIR can be opened with O_DIRECT (tmpfs and 9p: no).
kv_can_odirect() {
	local f=$1/.kv-odirect-probe ok=0
	dd if=/dev/zero of="$f" bs=4096 count=1 oflag=direct status=none 2>/dev/null && ok=1
	rm -f "$f"
	[ "$ok" = 1 ]
}

# kv_loop_ext4 DIR MIB: a fresh ext4 file system of MIB MiB in a file, loop-mounted on DIR
# (needs root and the loop module: inside the nested L1 for O_DIRECT, which its tmpfs and 9p
# lack). Unmounted when the test ends. Returns non-zero when that is not possible.
kv_loop_ext4() {
	local dir=$1 mib=$2 mkfs
	mkfs=$(kv_tool mkfs.ext4) || return 1
	mkdir -p "$dir" && truncate -s "${mib}M" "$dir.img" && "$mkfs" -q -F "$dir.img" >/dev/null 2>&1 || return 1
	mount -o loop "$dir.img" "$dir" || return 1
	KV_MOUNTS+=("$dir")
}

# kv_odirect_dir: prints a directory for images that kvmini opens with cache=none (O_DIRECT):
# $T when its file system supports O_DIRECT, else, inside the nested L1 (KVMINI_NESTED=1),
# an ext4 file system loop-mounted under $T. Fails (with KV_WHY set) when neither works.
kv_odirect_dir() {
	KV_WHY=
	if kv_can_odirect "$T"; then
		echo "$T"
	elif [ -n "${KVMINI_NESTED:-}" ]; then
		if kv_loop_ext4 "$T/odirect" 256 >/dev/null && kv_can_odirect "$T/odirect"; then
			echo "$T/odirect"
		else
			KV_WHY="could not loop-mount an ext4 file system for O_DIRECT under $T"
			return 1
		fi
	else
		KV_WHY="$T ($(stat -f -c %T "$T")) does not support O_DIRECT (set TMPDIR to a directory on ext4 or xfs)"
		return 1
	fi
}

# kv_bad WHAT KEYWORDS KVMINI-ARGS...: one bad-input case. kvmini must exit with a non-zero status
# below 124 (no crash, no timeout) and exactly one stderr line "kvmini: ..." whose text matches
# KEYWORDS (an extended regex, any case), and no guest may have booted.
KV_BAD_N=0
kv_bad() {
	local what=$1 keyword=$2 name lines line
	shift 2
	KV_BAD_N=$((KV_BAD_N + 1))
	name=bad$KV_BAD_N
	kv_run "$name" 30 "$@" >/dev/null
	# shellcheck disable=SC2034 # (read by kv_fail) the messages below say all: no console dump
	KV_LAST=""
	lines=$(grep -c '' "$T/$name.err")
	line=$(head -n 1 "$T/$name.err")
	if [ "$KV_RC" -eq 0 ] || [ "$KV_RC" -ge 124 ]; then
		kv_fail "$what (kvmini $*): expected a non-zero exit status below 124, saw $KV_RC; stderr: $(head -c 300 "$T/$name.err")"
	elif [ "$lines" != 1 ]; then
		kv_fail "$what (kvmini $*): expected exactly one stderr line, saw $lines:"
		head -n 10 "$T/$name.err" | sed 's/^/    | /'
	elif [[ $line != "kvmini: "* ]]; then
		kv_fail "$what (kvmini $*): expected stderr to start with 'kvmini: ', saw '$line'"
	elif ! grep -qiE -- "$keyword" <<<"${line#kvmini: }"; then
		kv_fail "$what (kvmini $*): expected '$keyword' in the message, saw '$line'"
	else
		kv_ok "$what: exit $KV_RC, '$line'"
	fi
	if [ "$(kv_count "$name" KVMINI-INIT-START)" -gt 0 ]; then
		kv_fail "$what: the guest booted (KVMINI-INIT-START on the console)"
	fi
}

# kv_hold_start NAME TIMEOUT KVMINI-ARGS...: kv_start with console input from a fifo held open on
# fd 3, for guests that wait (blk_lib.sh's hold) until kv_release sends them a line.
kv_hold_start() {
	local name=$1
	trap "" PIPE # a write to the fifo after kvmini died must not kill the test
	rm -f "$T/$name.in"
	mkfifo "$T/$name.in"
	KV_STDIN=$T/$name.in kv_start "$@"
	exec 3>"$T/$name.in"
}
# kv_release: sends the held guest its line and closes its console input.
kv_release() {
	echo go >&3 2>/dev/null
	exec 3>&-
}

# kv_vmm_pid: the VMM process of the latest kv_start (the child of its `timeout` process).
kv_vmm_pid() { pgrep -P "$KV_PID" | head -n 1; }

# kv_fd_flags PID FILE: the open flags (octal, from /proc/PID/fdinfo) of each descriptor of
# process PID open on FILE, one per line.
kv_fd_flags() {
	local fd want
	want=$(realpath "$2")
	for fd in /proc/"$1"/fd/*; do
		[ "$(readlink "$fd" 2>/dev/null)" = "$want" ] || continue
		sed -n 's/^flags:[[:space:]]*//p' "/proc/$1/fdinfo/${fd##*/}"
	done
}

# --- qcow2 (t_qcow2_*.sh) -------------------------------------------------------------------
# qemu-img and qemu-io (Debian's qemu-utils) are the reference: they make the images, read them
# (qemu-img convert: "qemu's view" of an image as a raw file) and judge them (check, compare).

# kv_need_qemu_img: ends the test at once (a failure) when qemu-img or qemu-io is missing.
kv_need_qemu_img() {
	local t
	for t in qemu-img qemu-io; do
		command -v "$t" >/dev/null && continue
		kv_fail "$t is not installed (qemu-utils; scripts/install-deps.sh): the qcow2 tests need it as the reference"
		kv_finish
	done
}

# kv_q WHAT COMMAND...: runs a qemu-img/qemu-io COMMAND that builds a test's images; a failure
# fails the test (with COMMAND's output) and returns 1.
kv_q() {
	local what=$1
	shift
	if "$@" >"$T/q.out" 2>&1; then return 0; fi
	kv_fail "setup: $what: '$*' failed:"
	head -n 8 "$T/q.out" | sed 's/^/    | /'
	return 1
}

# kv_qio IMG FMT CMD...: qemu-io -f FMT IMG with one -c per CMD (e.g. 'write -P 0xa5 0 4k');
# a failure fails the test. Used on qcow2 images and on raw references alike.
kv_qio() {
	local img=$1 fmt=$2 c args=()
	shift 2
	for c in "$@"; do args+=(-c "$c"); done
	kv_q "qemu-io on ${img##*/}" qemu-io -f "$fmt" "${args[@]}" "$img"
}

# kv_qcow2_source FILE MIB: a raw image of MIB MiB (a multiple of 16) with what qcow2 images
# should have: in each 16 MiB, [0, 3) MiB hex text (compressible), [3, 4) written zeroes, [4, 5)
# random (incompressible), [5, 6) 4 KiB of random data and 4 KiB of zeroes in turn, [8, 9)
# repeated text (very compressible), [9, 10) 512-byte random/zero turns, [12, 13) random, the
# last 4 KiB random; the rest never written (holes).
kv_qcow2_source() {
	rm -f "$1"
	perl -e 'use strict; my ($file, $mib) = @ARGV; my $M = 1 << 20;
		open(my $f, ">", $file) or die "$file: $!\n"; open(my $r, "<", "/dev/urandom") or die;
		sub rnd { my $b; read($r, $b, $_[0]) == $_[0] or die; return $b }
		sub put { sysseek($f, $_[0], 0); syswrite($f, $_[1]) == length($_[1]) or die "write: $!\n" }
		sub turns { my ($n, $g) = @_; my $s = ""; $s .= rnd($g) . ("\0" x $g) while length($s) < $n; return $s }
		for (my $b = 0; $b < $mib * $M; $b += 16 * $M) {
			my $t = ""; $t .= unpack("H*", rnd(4096)) . "\n" while length($t) < 3 * $M;
			put($b, substr($t, 0, 3 * $M)); put($b + 3 * $M, "\0" x $M);
			put($b + 4 * $M, rnd($M)); put($b + 5 * $M, turns($M, 4096));
			my $y = ""; $y .= "kvmini qcow2 test line " . ($_ % 97) . "\n" for 0 .. 40000;
			put($b + 8 * $M, substr($y, 0, $M)); put($b + 9 * $M, turns($M, 512));
			put($b + 12 * $M, rnd($M)); put($b + 16 * $M - 4096, rnd(4096));
		}
		truncate($f, $mib * $M) or die; close($f) or die;' "$1" "$2" || {
		kv_fail "setup: could not write the source image $1"
		return 1
	}
}

# kv_qview IMG OUT: qemu's view of IMG (format probed, backing files followed) as raw file OUT.
kv_qview() { kv_q "qemu's view of ${1##*/}" qemu-img convert -O raw "$1" "$2"; }

# kv_qcheck WHAT IMG OK...: qemu-img check IMG; passes when its exit status is one of OK (0: clean,
# 3: leaked clusters only, 2: corruption, 1: the check could not run). Prints its summary.
kv_qcheck() {
	local what=$1 img=$2 rc ok oks
	shift 2
	oks=$*
	qemu-img check "$img" >"$T/qcheck.out" 2>&1
	rc=$?
	for ok in "$@"; do
		if [ "$rc" = "$ok" ]; then
			kv_ok "$what: qemu-img check exit $rc ($(grep -vE '^(ERROR|Leaked|$)' "$T/qcheck.out" | head -n 1))"
			return 0
		fi
	done
	kv_fail "$what: qemu-img check ${img##*/}: expected exit status ${oks// / or }, saw $rc:"
	head -n 12 "$T/qcheck.out" | sed 's/^/    | /'
	return 1
}

# kv_qcompare WHAT IMG REF: qemu-img compare IMG (qcow2) with REF (raw) must find them identical.
kv_qcompare() {
	local rc
	qemu-img compare -f qcow2 -F raw "$2" "$3" >"$T/qcompare.out" 2>&1
	rc=$?
	if [ "$rc" = 0 ]; then
		kv_ok "$1: qemu-img compare: identical to ${3##*/}"
	else
		kv_fail "$1: qemu-img compare ${2##*/} ${3##*/}: expected identical (exit 0), saw exit $rc: $(head -n 2 "$T/qcompare.out" | tr '\n' ' ')"
	fi
}

# kv_qrestore SRC IMG FMT OFF LEN: writes SRC's bytes [OFF, OFF + LEN) into IMG at OFF (qemu-io).
kv_qrestore() {
	dd if="$1" of="$T/piece" bs=64k iflag=skip_bytes,count_bytes skip="$4" count="$5" status=none &&
		kv_qio "$2" "$3" "write -s $T/piece $4 $5"
}

# kv_qcow2_chain SRC DIR: a backing chain whose top reads exactly as SRC (a kv_qcow2_source
# image): DIR/top/top.qcow2 (v3, 64 KiB clusters) -> DIR/mid/mid.qcow2 (v3, 4 KiB clusters) ->
# DIR/base.raw, each backing path relative to its overlay's directory ("../...") and with its
# format (-F). The lower layers hold data that the upper ones overwrite or hide behind zero
# clusters: base.raw has junk at 1, 6, 8 and 14 MiB; mid restores 1 MiB, zeroes 6 MiB and has
# junk at 10 MiB; top restores 8 MiB and zeroes 10 and 14 MiB.
kv_qcow2_chain() {
	local src=$1 dir=$2
	mkdir -p "$dir/mid" "$dir/top" && cp "$src" "$dir/base.raw" &&
		kv_qio "$dir/base.raw" raw 'write -P 0x11 1M 1M' 'write -P 0x22 6M 1M' 'write -P 0x33 14M 64k' 'write -P 0x44 8M 512k' &&
		kv_q "chain: mid" qemu-img create -f qcow2 -o cluster_size=4k -b ../base.raw -F raw "$dir/mid/mid.qcow2" &&
		kv_qrestore "$src" "$dir/mid/mid.qcow2" qcow2 $((1 << 20)) $((1 << 20)) &&
		kv_qio "$dir/mid/mid.qcow2" qcow2 'write -z 6M 1M' 'write -P 0x55 10M 64k' &&
		kv_q "chain: top" qemu-img create -f qcow2 -b ../mid/mid.qcow2 -F qcow2 "$dir/top/top.qcow2" &&
		kv_qrestore "$src" "$dir/top/top.qcow2" qcow2 $((8 << 20)) $((512 << 10)) &&
		kv_qio "$dir/top/top.qcow2" qcow2 'write -z 14M 64k' 'write -z 10M 64k'
}

# kv_abort WHY: fails the test at once (for set-up steps that cannot go on).
kv_abort() {
	kv_fail "$*"
	kv_finish
}

# kv_qclean WHAT IMG: qemu-img info finds IMG closed cleanly: no dirty bit (lazy refcounts) and
# no corrupt bit.
kv_qclean() {
	local info
	info=$(qemu-img info --output=json "$2" 2>&1)
	if grep -q '"dirty-flag": false' <<<"$info" && ! grep -q '"corrupt": true' <<<"$info"; then
		kv_ok "$1: closed cleanly (no dirty bit, no corrupt bit)"
	else
		kv_fail "$1: expected no dirty bit and no corrupt bit, saw: $(grep -E 'dirty-flag|corrupt' <<<"$info" | tr -d ' \n')"
	fi
}
