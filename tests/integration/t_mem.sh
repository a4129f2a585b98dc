#!/bin/bash
# Guest memory options (--mem SIZE,hugepages=on,shared=on / merge=on), seen from the host while
# the guest runs: hugetlbfs pages taken (HugePages_Free less HugePages_Rsvd: hugetlbfs reserves
# the whole mapping at mmap, and pages leave "free" only when first touched), the memfd mapping
# in /proc/PID/maps, the VmFlags of the mapping in /proc/PID/smaps (ht: hugetlbfs, sh: shared,
# mg: mergeable); the guest's MemTotal; a reboot that maps the memory anew without needing twice
# the huge pages; a clean poweroff. Then the mistakes, each one stderr line. merge=on is tried
# on its own: KSM merges private memory only, so kvmini refuses it with hugepages or shared.
# Needs root (it reserves 160 huge pages in /proc/sys/vm/nr_hugepages and restores the old value).
# timeout: 900
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

NR=/proc/sys/vm/nr_hugepages
[ -w "$NR" ] || kv_skip "$NR is not writable (needs root and a kernel with hugetlbfs)"
old_nr=$(cat "$NR")
restore_nr() { echo "$old_nr" >"$NR" 2>/dev/null; }
trap 'kv_cleanup; restore_nr' EXIT

# 2 MiB huge pages that a new mapping could take: free, less those reserved by others.
huge_avail() { awk '/^HugePages_Free:/ { f = $2 } /^HugePages_Rsvd:/ { r = $2 } END { print f - r }' /proc/meminfo; }
# mapping_flags PID PATTERN: "SIZE_KB FLAGS..." of the first mapping of PID whose maps line
# matches PATTERN (an awk regex), e.g. "262144 rd wr sh mr mw me ms ht".
mapping_flags() {
	awk -v pat="$2" '
		/^[0-9a-f]+-[0-9a-f]+ / { hit = ($0 ~ pat) && !done; next }
		hit && /^Size:/ { size = $2 }
		hit && /^VmFlags:/ { sub(/^VmFlags: */, ""); print size, $0; done = 1; hit = 0 }' "/proc/$1/smaps"
}
# has_flag "FLAGS" FLAG
has_flag() { [[ " $1 " == *" $2 "* ]]; }

[ "$(grep -c '^Hugepagesize: *2048 kB' /proc/meminfo)" = 1 ] || kv_skip "the default huge page size is not 2 MiB"
echo 160 >"$NR"
[ "$(cat "$NR")" -ge 128 ] || kv_abort "setup: asked for 160 huge pages in $NR, got $(cat "$NR")"
base=$(huge_avail)
echo "  huge pages: $(cat "$NR") reserved, $base available"

args=(run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" --cmdline "$KV_CMDLINE kvmini.test=mem")

# check_huge_boot NAME BOOT: the host-side checks while boot BOOT (1, 2) of NAME holds.
check_huge_boot() {
	local name=$1 boot=$2 pid fl
	pid=$(kv_vmm_pid)
	check_eq "$name boot $boot: huge pages taken (256 MiB / 2 MiB)" 128 $((base - $(huge_avail)))
	if grep -q '/memfd:kvmini-guest' "/proc/$pid/maps" 2>/dev/null; then
		kv_ok "$name boot $boot: /proc/$pid/maps has /memfd:kvmini-guest"
	else
		kv_fail "$name boot $boot: no /memfd:kvmini-guest mapping in /proc/$pid/maps"
	fi
	fl=$(mapping_flags "$pid" '/memfd:kvmini-guest')
	check_eq "$name boot $boot: size of the memfd mapping (KiB)" 262144 "${fl%% *}"
	if has_flag "$fl" ht && has_flag "$fl" sh; then
		kv_ok "$name boot $boot: VmFlags of the memfd mapping have ht and sh (${fl#* })"
	else
		kv_fail "$name boot $boot: expected ht (hugetlbfs) and sh (shared) in the VmFlags, saw '${fl#* }'"
	fi
}

# Huge pages in a shared memfd; the guest reboots once, then powers off.
kv_hold_start huge $((3 * KV_BOOT_TIMEOUT + 120)) "${args[@]}" --mem 256M,hugepages=on,shared=on
if kv_wait_for huge KVMINI-MEM-HOLD "$KV_BOOT_TIMEOUT" 1 "$KV_PID"; then
	check_huge_boot huge 1
	echo reboot >&3
	if kv_wait_for huge KVMINI-MEM-HOLD "$KV_BOOT_TIMEOUT" 2 "$KV_PID"; then
		check_eq "huge: KVMINI-INIT-START count after the reboot" 2 "$(kv_count huge KVMINI-INIT-START)"
		check_huge_boot huge 2
	else
		kv_fail "huge: the guest did not come back after its reboot"
	fi
fi
kv_release
kv_wait_pid "$KV_PID" 90
check_rc huge 0
check_range "huge: KVMINI-MEMTOTAL-KB" $((256 * 1024 * 8 / 10)) $((256 * 1024)) "$(kv_field huge KVMINI-MEMTOTAL-KB)"
check_range "huge: KVMINI-E820-TOTAL-KB (RAM the kernel found)" $((256 * 1024 - 4096)) $((256 * 1024)) "$(kv_field huge KVMINI-E820-TOTAL-KB)"
check_out huge "reboot: Power down"
check_eq "huge: stderr" "" "$(head -c 300 "$T/huge.err")"
check_eq "huge: huge pages given back after exit" "$base" "$(huge_avail)"

# merge=on: private memory marked mergeable (mg), or a clear error where the kernel has no KSM.
if [ -d /sys/kernel/mm/ksm ]; then
	kv_hold_start merge $((KV_BOOT_TIMEOUT + 120)) "${args[@]}" --mem 256M,merge=on
	if kv_wait_for merge KVMINI-MEM-HOLD "$KV_BOOT_TIMEOUT" 1 "$KV_PID"; then
		pid=$(kv_vmm_pid)
		# The guest RAM: the one mergeable mapping of 256 MiB.
		fl=$(awk '/^[0-9a-f]+-[0-9a-f]+ / { size = "" } /^Size:/ { size = $2 }
			/^VmFlags:/ && / mg/ && size == 262144 { sub(/^VmFlags: */, ""); print; exit }' "/proc/$pid/smaps")
		if has_flag "$fl" mg; then
			kv_ok "merge: the 256 MiB guest RAM mapping has mg in its VmFlags ($fl)"
		else
			kv_fail "merge: no 256 MiB mapping with mg (mergeable) in /proc/$pid/smaps"
		fi
		if grep -q '/memfd:kvmini-guest' "/proc/$pid/maps"; then
			kv_fail "merge: a memfd mapping without shared=on"
		else
			kv_ok "merge: no memfd (private memory)"
		fi
	fi
	kv_release
	kv_wait_pid "$KV_PID" 90
	check_rc merge 0
	check_range "merge: KVMINI-MEMTOTAL-KB" $((256 * 1024 * 8 / 10)) $((256 * 1024)) "$(kv_field merge KVMINI-MEMTOTAL-KB)"
	check_out merge "reboot: Power down"
else
	kv_bad "merge=on without KSM" "no KSM" "${args[@]}" --mem 256M,merge=on
fi

# Mistakes: one line each, no guest.
kv_bad "hugepages=on, size not a multiple of 2 MiB" "255M is not a multiple of 2 MiB" "${args[@]}" --mem 255M,hugepages=on
kv_bad "merge=on with hugepages=on and shared=on" "merge=on does not go with hugepages=on" \
	"${args[@]}" --mem 256M,hugepages=on,shared=on,merge=on
kv_bad "merge=on with shared=on" "merge=on does not go with shared=on" "${args[@]}" --mem 256M,shared=on,merge=on
kv_bad "--mem unknown key" "unknown key 'numa'" "${args[@]}" --mem 256M,numa=on
kv_bad "--mem hugepages=yes" "invalid hugepages 'yes': expected on or off" "${args[@]}" --mem 256M,hugepages=yes
kv_bad "--mem key twice" "key 'shared' given more than once" "${args[@]}" --mem 256M,shared=on,shared=off
n=$(cat "$NR")
kv_bad "more huge pages than reserved" \
	"not enough free 2 MiB huge pages for 512 MiB of guest memory \(need 256, have $base free; see /proc/sys/vm/nr_hugepages\)" \
	"${args[@]}" --mem 512M,hugepages=on
kv_bad "more huge pages than reserved, shared" "not enough free 2 MiB huge pages for 512 MiB" "${args[@]}" --mem 512M,hugepages=on,shared=on
check_eq "huge pages still all available" "$base" "$(huge_avail)"
check_eq "$NR unchanged by kvmini" "$n" "$(cat "$NR")"
restore_nr
check_eq "$NR restored" "$old_nr" "$(cat "$NR")"
kv_finish
