#!/bin/bash
# Live migration over TCP (loopback of a network namespace the test creates). A 2-vCPU guest with
# a raw disk and a NIC (tap on a bridge; the destination has its own tap on the same bridge) keeps
# busy (guest/migrate.sh): a console ticker, a 16 MiB region rewritten and checked word by word,
# one TCP connection to the host carrying numbered lines. Faults first, each leaving the source
# running unharmed: nobody listening, a peer that hangs up after 2 MB, a destination with another
# configuration (it refuses), a stream corrupted on the way (the destination refuses), a destination
# killed mid-stream, a cancelled migration; SIGTERM stops a waiting destination. Then the real one: on the destination the ticker goes on
# from where it was (no reboot), the memory region still checks, the data written to the disk
# before the move reads back from the disk, the TCP connection goes on without a gap, the guest
# announced itself (gratuitous ARP: GUEST_ANNOUNCE), console input reaches the same shell loop,
# and the ACPI power button still powers it off.
# timeout: 1200
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || kv_skip "needs root (a network namespace, taps, a bridge)"
for t in socat python3 jq ss; do
	command -v $t >/dev/null || { kv_fail "$t is not installed (scripts/install-deps.sh)"; kv_finish; }
done

M=kvm-mig-$$
mig_cleanup() {
	kv_cleanup
	ip netns del "$M" 2>/dev/null
	return 0
}
trap mig_cleanup EXIT
inM() { ip netns exec "$M" "$@"; }
# The bridge's own address is fixed: by default a bridge takes the lowest MAC among its ports,
# and the destinations' taps coming and going would change it under the guest's ARP entry.
{ ip netns add "$M" && inM ip link set lo up && inM ip link add kvbr type bridge &&
	inM ip link set kvbr address 02:00:00:00:00:01 && inM ip addr add 192.0.2.1/24 dev kvbr &&
	inM ip link set kvbr up; } ||
	{ kv_fail "could not set up the namespace and bridge"; kv_finish; }
# kvmini runs in M: a wrapper keeps kv_start's interface (and the pid: exec).
real=$KVMINI
KVMINI=$T/kvmini-in-m
printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$M" "$real" >"$KVMINI"
chmod +x "$KVMINI"

SA=$T/a.sock
SB=$T/b.sock
PORT=$((20000 + RANDOM % 20000))
MAC=52:54:00:4d:49:47
truncate -s 64M "$T/disk.raw"
# set_args TAP [MEM]: ARGS, the configuration both sides share, with the side's own tap.
set_args() {
	ARGS=(run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" --mem "${2:-256M}" --cpus 2
		--disk "path=$T/disk.raw" --net "tap=$1,bridge=kvbr,mac=$MAC"
		--cmdline "$KV_CMDLINE kvmini.test=migrate")
}
ticks() { tr -d '\r' <"$T/$1.out" | sed -n 's/^KVMINI-TICK \([0-9]*\)$/\1/p' | tail -n 1; }
mem_gen() { tr -d '\r' <"$T/$1.out" | sed -n 's/^KVMINI-MEM-PASS gen=\([0-9]*\).*/\1/p' | tail -n 1; }
seq_last() { sed -n 's/^SEQ \([0-9]*\)$/\1/p' "$T/stream" | tail -n 1; }
listening() { inM ss -ltn 2>/dev/null | grep -q ":$1 "; }
wait_listening() { for _ in $(seq 1 300); do listening "$1" && return 0; sleep 0.2; done; return 1; }
ctl() { timeout 300 "$KVMINI" ctl "$@"; }

# net_diag SOCK: what a stalled stream needs looked at: the VM's NIC counters, the bridge, frames.
net_diag() {
	echo "  diagnostics: NIC counters of $1, the bridge, TCP counters, 5 s of frames on it"
	timeout 10 "$KVMINI" ctl "$1" stats >"$T/diag-stats.out" 2>&1
	{ jq -c '.return.nics' "$T/diag-stats.out" || head -c 600 "$T/diag-stats.out"; } 2>&1 | sed 's/^/    | /'
	{ inM ip -s -br link; inM bridge fdb show br kvbr; inM ss -tni; inM ip neigh;
		inM nstat -az | grep -E "CsumErr|InErrs|PAWS|AckSkipped|Backlog|RcvQDrop|OFODrop|TCPZeroWindowDrop"; } 2>&1 |
		grep -v permanent | sed 's/^/    | /'
	inM timeout 5 tcpdump -lnnvvei kvbr -c 20 2>&1 | sed 's/^/    | /'
}

# The source runs on: its ticker, its memory workload and its TCP stream all move on.
source_alive() {
	local t g s
	t=$(ticks src) g=$(mem_gen src) s=$(seq_last)
	if kv_wait_for src "KVMINI-TICK $((t + 3))" 30 1 "$SRC" &&
		kv_wait_for src "KVMINI-MEM-PASS gen=$((g + 1)) " 60 1 "$SRC"; then
		sleep 1
		if [ "$(seq_last)" -gt "${s:-0}" ]; then
			kv_ok "$1: the source guest runs on (ticks, memory passes, TCP stream)"
		else
			kv_fail "$1: the source's TCP stream stopped at SEQ $s"
			net_diag "$SA"
		fi
	else
		kv_fail "$1: the source guest stopped"
	fi
	timeout 10 "$KVMINI" ctl "$SA" info >"$T/info" 2>&1
	check_eq "$1: source state" running "$(jq -r .return.state "$T/info")"
}

# start_dst NAME TAP [EXTRA-ARGS]: a destination listening on $PORT, in the background.
start_dst() {
	local name=$1 tap=$2
	shift 2
	set_args "$tap"
	kv_start "$name" 300 "${ARGS[@]}" "$@" --incoming "tcp:127.0.0.1:$PORT"
	DST=$KV_PID
	wait_listening $PORT || kv_fail "$name: the destination does not listen on $PORT"
}

# migrate_failed WHAT N [ARGS...]: `ctl migrate ARGS` had to fail: exit 1 (output in $T/mN.*).
migrate_failed() {
	local what=$1 n=$2 rc
	shift 2
	ctl "$SA" migrate "$@" >"$T/m$n.out" 2>"$T/m$n.err"
	rc=$?
	[ $rc = 1 ] && kv_ok "$what: the source says '$(tail -n 1 "$T/m$n.err")'" ||
		kv_fail "$what: expected exit 1, saw $rc: $(cat "$T/m$n.err")"
}

# dst_refused NAME PID WHAT [REGEX]: destination NAME exits non-zero (not a timeout), REGEX in
# its error, without having run the guest.
dst_refused() {
	local name=$1 pid=$2 what=$3 re=${4:-.}
	kv_wait_pid "$pid" 30
	[ "$KV_RC" -ne 0 ] && [ "$KV_RC" -lt 124 ] && grep -qE "$re" "$T/$name.err" &&
		kv_ok "$what: the destination exits $KV_RC: $(head -n 1 "$T/$name.err")" ||
		kv_fail "$what: destination exit $KV_RC, '$(head -c 300 "$T/$name.err")'"
	check_eq "$what: the destination did not run the guest" 0 "$(kv_count "$name" KVMINI-TICK)"
}

# The host end of the guest's TCP connection: one connection only (no fork).
inM socat -u TCP-LISTEN:5555,bind=192.0.2.1,reuseaddr OPEN:"$T/stream",creat,trunc &
KV_PIDS+=($!)

set_args mt0
kv_hold_start src $((KV_BOOT_TIMEOUT + 900)) "${ARGS[@]}" --api-sock "$SA"
SRC=$KV_PID
exec 4>&3 # the source's console input, kept while fd 3 is given to the destination later
if ! kv_wait_for src "KVMINI-STREAM-START" $((KV_BOOT_TIMEOUT + 90)) 1 "$SRC" ||
	! kv_wait_for src "KVMINI-MEM-PASS gen=2 " 60 1 "$SRC"; then
	kv_fail "source: the guest's workload did not start"
	kv_finish
fi
echo diskw >&4
kv_wait_for src KVMINI-DISKW-SHA 120 1 "$SRC" || kv_fail "source: expected KVMINI-DISKW-SHA"
disk_sha=$(kv_field src KVMINI-DISKW-SHA)

migrate_failed "nobody listening" 0 "tcp:127.0.0.1:$((PORT + 1))"

# A peer that reads 2 MB and hangs up.
inM timeout 60 socat -u "TCP-LISTEN:$((PORT + 2)),bind=127.0.0.1,reuseaddr" SYSTEM:"head -c 2000000 >/dev/null" &
KV_PIDS+=($!)
wait_listening $((PORT + 2))
migrate_failed "a peer that hangs up mid-stream" 1 "tcp:127.0.0.1:$((PORT + 2))"
source_alive "after a cut connection"

# A destination with another configuration refuses before anything runs.
set_args mt1 320M
kv_start dmem 120 "${ARGS[@]}" --incoming "tcp:127.0.0.1:$PORT"
wait_listening $PORT || kv_fail "dmem: the destination does not listen"
migrate_failed "a mismatched destination" 2 "tcp:127.0.0.1:$PORT"
dst_refused dmem "$KV_PID" "a mismatched destination" "256 MiB of memory, this one 320 MiB"
source_alive "after a refusal"

# A stream corrupted on the way by a relay between the two: a byte flipped 1 MB in and every
# MiB after it (a page a vCPU rewrites is sent again and mends itself: most of these are not).
start_dst dcor mt2
cat >"$T/relay.py" <<'EOF'
import socket, sys, threading
lport, dport, flip = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", lport))
ls.listen(1)
print("ready", flush=True)
a, _ = ls.accept()
b = socket.create_connection(("127.0.0.1", dport))
def pump(src, dst, flip):
    seen = 0
    while True:
        d = src.recv(65536)
        if not d:
            break
        while 0 <= flip - seen < len(d):
            d = bytearray(d)
            d[flip - seen] ^= 0x5a
            flip += 1 << 20
        seen += len(d)
        dst.sendall(d)
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
t = threading.Thread(target=pump, args=(b, a, -1), daemon=True)
t.start()
try:
    pump(a, b, flip)
except OSError:
    pass
t.join(timeout=30)
EOF
inM timeout 120 python3 "$T/relay.py" $((PORT + 3)) "$PORT" 1000000 >"$T/relay.out" 2>&1 &
KV_PIDS+=($!)
wait_listening $((PORT + 3))
migrate_failed "a corrupted stream" 3 "tcp:127.0.0.1:$((PORT + 3))"
dst_refused dcor "$DST" "a corrupted stream" "checksum|record [0-9]+"
source_alive "after a corrupted stream"

# A destination killed mid-stream (the bandwidth limit makes the first pass last ~10 s).
start_dst dkill mt3
ctl "$SA" migrate "tcp:127.0.0.1:$PORT" --bandwidth 8M >"$T/m4.out" 2>"$T/m4.err" &
mpid=$!
sleep 3
kill -0 $mpid 2>/dev/null && kv_ok "the migration is under way when the destination is killed" ||
	kv_fail "the throttled migration ended within 3 s: $(cat "$T/m4.err")"
kill -KILL "$(pgrep -P "$DST" | head -n 1)" 2>/dev/null
wait $mpid
rc=$?
[ $rc = 1 ] && kv_ok "destination killed: the source says '$(tail -n 1 "$T/m4.err")'" ||
	kv_fail "destination killed: expected exit 1, saw $rc: $(cat "$T/m4.err")"
kv_wait_pid "$DST" 10
source_alive "after the destination was killed"

# A cancelled migration: the destination gives up on a stream without an end.
start_dst dcan mt4
ctl "$SA" migrate "tcp:127.0.0.1:$PORT" --bandwidth 8M >"$T/m5.out" 2>"$T/m5.err" &
mpid=$!
sleep 3
timeout 10 "$KVMINI" ctl "$SA" migrate-cancel >"$T/cancel.out" 2>&1 || kv_fail "migrate-cancel: $(cat "$T/cancel.out")"
wait $mpid
rc=$?
[ $rc = 1 ] && grep -qi cancel "$T/m5.err" && kv_ok "cancelled: the migration says '$(tail -n 1 "$T/m5.err")'" ||
	kv_fail "cancel: expected exit 1 and 'cancel', saw $rc: $(cat "$T/m5.err")"
dst_refused dcan "$DST" "a cancelled migration"
source_alive "after a cancelled migration"
check_eq "source: no memory word went wrong" 0 "$(kv_count src KVMINI-MEM-BAD)"

# SIGTERM to a destination still waiting: it stops at once, saying so.
start_dst dsig mt6
kill -TERM "$(pgrep -P "$DST" | head -n 1)" 2>/dev/null
kv_wait_pid "$DST" 30
check_rc "a waiting destination stopped by SIGTERM" 143
grep -q "stopped while waiting for the source" "$T/dsig.err" && kv_ok "it says: $(head -n 1 "$T/dsig.err")" ||
	kv_fail "SIGTERM while waiting: '$(head -c 300 "$T/dsig.err")'"

# The real one. ARP on the bridge is captured from here on (gratuitous ARPs: the announcement).
inM timeout 600 tcpdump -lnnei kvbr arp >"$T/arp.out" 2>&1 &
KV_PIDS+=($!)
exec 5>&3
set_args mt5
kv_hold_start dst $((KV_BOOT_TIMEOUT + 400)) "${ARGS[@]}" --api-sock "$SB" --incoming "tcp:127.0.0.1:$PORT"
DST=$KV_PID
wait_listening $PORT && kv_ok "the destination listens on $PORT" || kv_fail "the destination does not listen on $PORT"
check_eq "the destination does not run the guest before the migration" 0 "$(kv_count dst KVMINI-TICK)"
seq_before=$(seq_last)
ctl "$SA" migrate "tcp:127.0.0.1:$PORT" --max-downtime 500ms >"$T/m.out" 2>"$T/m.err"
rc=$?
sed 's/^/  | /' "$T/m.err"
if [ $rc = 0 ]; then
	kv_ok "migrate: $(cat "$T/m.out")"
	grep -q "migration pass 1" "$T/m.err" && kv_ok "migrate showed its passes" || kv_fail "migrate: no progress lines on stderr"
	check_range "migrate: downtime (ms, nested)" 0 60000 "$(jq -r .data.downtime_ms "$T/m.out")"
else
	kv_fail "migrate: expected exit 0, saw $rc: $(tail -n 3 "$T/m.err")"
fi
kv_wait_pid "$SRC" 30
check_rc "the source exits 0 after handing over" 0
exec 4>&- 5>&-
last=$(ticks src) gen=$(mem_gen src)
echo "  source's last tick $last, last memory pass $gen, last line on the stream before: $seq_before"
if kv_wait_for dst "KVMINI-TICK $((last + 2))" 120 1 "$DST"; then
	first=$(tr -d '\r' <"$T/dst.out" | sed -n 's/^KVMINI-TICK \([0-9]*\)$/\1/p' | head -n 1)
	check_range "destination: the ticker goes on from the source's last ($last)" $((last + 1)) $((last + 2)) "$first"
	check_eq "destination: the guest did not boot again" 0 "$(kv_count dst KVMINI-INIT-START)"
	kv_wait_for dst "KVMINI-MEM-PASS gen=$((gen + 2)) " 120 1 "$DST" &&
		kv_ok "destination: the memory region checks on every pass ($(tr -d '\r' <"$T/dst.out" | grep -c KVMINI-MEM-PASS) passes)" ||
		kv_fail "destination: expected KVMINI-MEM-PASS gen=$((gen + 2))"
	check_eq "destination: no memory word went wrong" 0 "$(kv_count dst KVMINI-MEM-BAD)"
	echo diskr >&3
	kv_wait_for dst KVMINI-DISKR-SHA 120 1 "$DST"
	check_eq "destination: the data written before the move reads back from the disk" "$disk_sha" "$(kv_field dst KVMINI-DISKR-SHA)"
	check_eq "the data is in the image file" "$disk_sha" "$(kv_sha "$T/disk.raw" 16 4)"
	s0=$(seq_last)
	sleep 3
	s1=$(seq_last)
	check_range "the TCP stream goes on after the move (SEQ $s0 -> $s1)" $((s0 + 5)) 1000000 "$s1"
	if [ "${s1:-0}" -lt $((s0 + 5)) ]; then
		net_diag "$SB"
	fi
	# Every complete line (the last one may be half-written) is the one after the line before.
	check_eq "the TCP stream has every line once, in order" ok "$(sed '$d' "$T/stream" |
		awk '$1 != "SEQ" || $2 != n + 1 { print "line " NR ": " $0; bad = 1; exit } { n = $2 } END { if (!bad) print "ok" }')"
	check_eq "the guest's TCP connection never ended" 0 $(($(kv_count dst KVMINI-STREAM-END) + $(kv_count src KVMINI-STREAM-END)))
	n=$(grep -c "$MAC > ff:ff:ff:ff:ff:ff.*Request who-has 192.0.2.2 tell 192.0.2.2" "$T/arp.out")
	check_range "the guest announced itself after the move (gratuitous ARPs seen on the bridge)" 1 100 "$n"
	if [ "$n" = 0 ]; then
		echo irqs >&3
		sleep 3
		tr -d '\r' <"$T/dst.out" | grep "^KVMINI-IRQ" | sed 's/^/    | /'
		sed 's/^/    | /' "$T/arp.out"
		net_diag "$SB"
	fi
	echo hello-after-migration >&3
	kv_wait_for dst "KVMINI-GOT hello-after-migration" 60 1 "$DST" && kv_ok "destination: console input reaches the guest" ||
		kv_fail "destination: expected KVMINI-GOT hello-after-migration"
	timeout 30 "$KVMINI" ctl "$SB" shutdown timeout=120 >/dev/null 2>&1
	kv_wait_pid "$DST" 150
	check_rc "destination: ACPI shutdown" 0
	check_out dst "reboot: Power down"
else
	kv_fail "destination: expected KVMINI-TICK $((last + 2))"
	kv_wait_pid "$DST" 10
fi
kv_release
kv_finish
