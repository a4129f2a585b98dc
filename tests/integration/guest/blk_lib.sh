#!/bin/sh
# Helpers for the blk_*.sh guest scripts (sourced: . /tests/blk_lib.sh; run alone it just reports
# the disks). Results go to the console as KVMINI-BLK-KEY=value lines for the host's checks.
say() { echo "KVMINI-BLK-$1=$2"; }

# arg NAME: the value of kvmini.NAME=VALUE on the kernel command line (empty when absent).
arg() {
	# shellcheck disable=SC2013 # (words, not lines)
	for a in $(cat /proc/cmdline); do
		case $a in "kvmini.$1="*) echo "${a#*=}"; return ;; esac
	done
}

# info DEV: what the guest sees of /dev/DEV (sizes in 512-byte sectors; QUEUES is the number
# of request queues, /sys/block/DEV/mq/*; CACHE "write back" means the FLUSH feature).
info() {
	q=/sys/block/$1/queue
	if [ ! -b "/dev/$1" ]; then
		say "$1-PRESENT" 0
		return 1
	fi
	say "$1-PRESENT" 1
	say "$1-SIZE" "$(cat "/sys/block/$1/size")"
	say "$1-SERIAL" "$(cat "/sys/block/$1/serial" 2>&1)"
	say "$1-RO" "$(cat "/sys/block/$1/ro")"
	# shellcheck disable=SC2012 # (plain numeric names)
	say "$1-QUEUES" "$(ls "/sys/block/$1/mq" 2>/dev/null | wc -l)"
	say "$1-CACHE" "$(cat "$q/write_cache")"
	say "$1-LBS" "$(cat "$q/logical_block_size")"
	say "$1-DISCARD-MAX" "$(cat "$q/discard_max_bytes")"
	say "$1-WZ-MAX" "$(cat "$q/write_zeroes_max_bytes")"
}

# sha FILE: sha256 of FILE (or stdin with -).
sha() { sha256sum "$1" | cut -d' ' -f1; }
# rsha DEV SKIP_MIB COUNT_MIB: sha256 of COUNT_MIB MiB of /dev/DEV at SKIP_MIB MiB, read with
# O_DIRECT (from the disk, not the guest's page cache); "read-error" when the read fails.
rsha() {
	if dd if="/dev/$1" of=/tmp/rsha.bin bs=1M skip="$2" count="$3" iflag=direct 2>/tmp/rsha.err; then
		sha /tmp/rsha.bin
	else
		echo "read-error: $(tail -n 1 /tmp/rsha.err)"
	fi
	rm -f /tmp/rsha.bin
}

# dmd5 DEV: md5 of all of /dev/DEV (cheaper than sha256 under emulation), read with O_DIRECT
# and streamed (no copy in memory); "read-error: ..." when the read fails.
dmd5() {
	s=$({
		dd if="/dev/$1" bs=1M iflag=direct 2>"/tmp/dmd5.$1.err"
		echo $? >"/tmp/dmd5.$1.rc"
	} | md5sum | cut -d' ' -f1)
	if [ "$(cat "/tmp/dmd5.$1.rc")" = 0 ]; then
		echo "$s"
	else
		echo "read-error: $(tail -n 1 "/tmp/dmd5.$1.err")"
	fi
	rm -f "/tmp/dmd5.$1.err" "/tmp/dmd5.$1.rc"
}

# run KEY COMMAND...: runs COMMAND, prints KVMINI-BLK-KEY-RC=status and, when it failed, its
# last error line as KVMINI-BLK-KEY-ERR.
run() {
	k=$1
	shift
	"$@" >/tmp/run.out 2>&1
	rc=$?
	say "$k-RC" "$rc"
	# The first line that is not dd's statistics says why.
	[ "$rc" = 0 ] || say "$k-ERR" "$(grep -vE 'records (in|out)|bytes .* copied' /tmp/run.out | head -n 1)"
	return "$rc"
}

# hold: waits (at most kvmini.blk.hold seconds, default 300) for a line on the console, so that
# the host can look at the running VMM (kv_hold_start/kv_release in lib.sh).
hold() {
	t=$(arg blk.hold)
	echo KVMINI-BLK-HOLD
	# shellcheck disable=SC3045,SC2034 # (busybox ash has read -t)
	read -r -t "${t:-300}" line || true
	echo KVMINI-BLK-RELEASED
}

# quiet: kernel messages off the console: printed while several jobs print KVMINI-BLK lines,
# they can land inside one. kernel_errors then reports the I/O errors among them.
quiet() { dmesg -n 1; }
# kernel_errors: the kernel's I/O and file system errors, as KVMINI-BLK-KERNEL: lines.
kernel_errors() {
	dmesg | grep -E 'I/O error|EXT[2-4]-fs error|EXT[2-4]-fs .*(corrupt|checksum)' | sed 's/^/KVMINI-BLK-KERNEL: /'
}

# dmesg_check: kernel complaints (the lines the host must not see).
dmesg_check() {
	dmesg | grep -E 'Call Trace|BUG:|Oops|WARNING:' | sed 's/^/KVMINI-DMESG-BAD: /'
}

if [ "${0##*/}" = blk_lib.sh ]; then
	for d in /sys/block/vd*; do [ -e "$d" ] && info "${d##*/}"; done
fi
