#!/bin/bash
# qcow2, kvmini killed mid-write: 3 rounds on the same three images, each a guest boot
# (qcow2_kill.sh) that writes to all of them at once without end, and kill -9 of kvmini 1-5 s
# (at random) after the guest says it is writing:
#   vda: v3, 4 KiB clusters, 256 MiB (L2 tables and refcount blocks keep being added): random
#        writes of 4, 8 and 12 KiB (by round) 8 at a time, 1 MiB discards;
#   vdb: v3 overlay (64 KiB clusters) on a qcow2 backing file (relative path): random writes
#        of 64, 80 and 96 KiB 4 at a time, write-zeroes;
#   vdc: v3, defaults (64 KiB clusters, refcount_bits=16), 64 MiB: sequential writes, and
#        chunks written one at a time with a FLUSH each.
# After each kill, qemu-img check must find no corruption in any image (exit 0, or 3: leaked
# clusters only), the backing file must be unchanged, and every chunk that a guest of this or an
# earlier round reported flushed must read back the same in qemu's view of vdc. The next round
# opens the images as the kill left them.
# timeout: 700
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
kv_need_qemu_img

a=$T/small-clusters.qcow2 base=$T/base.qcow2 b=$T/over/overlay.qcow2 c=$T/default.qcow2
mkdir -p "$T/over"
kv_qcow2_source "$T/src.raw" 64 || kv_abort "setup: the source image"
{
	kv_q vda qemu-img create -f qcow2 -o cluster_size=4k "$a" 256M &&
		kv_q base qemu-img convert -f raw -O qcow2 "$T/src.raw" "$base" &&
		kv_q vdb qemu-img create -f qcow2 -b ../base.qcow2 -F qcow2 "$b" &&
		kv_q vdc qemu-img create -f qcow2 "$c" 64M
} || kv_finish
base_sha=$(kv_sha "$base")

cd / || exit 1
for r in 1 2 3; do
	echo "round $r:"
	kv_start "kill$r" $((KV_BOOT_TIMEOUT + 120)) run --kernel "$KVMINI_KERNEL" --initrd "$KVMINI_INITRD" \
		--cmdline "$KV_CMDLINE kvmini.test=qcow2_kill kvmini.q.round=$r" --cpus 2 --mem 256M \
		--disk "path=$a" --disk "path=$b,format=qcow2" --disk "path=$c,format=qcow2"
	if kv_wait_for "kill$r" KVMINI-BLK-WRITING $((KV_BOOT_TIMEOUT + 60)) 1 "$KV_PID"; then
		s=$((RANDOM % 5 + 1))
		sleep "$s"
		vmm=$(kv_vmm_pid)
		if [ -n "$vmm" ] && kill -9 "$vmm" 2>/dev/null; then
			kv_ok "round $r: killed kvmini (kill -9) ${s}s after the guest started writing, $(kv_count "kill$r" KVMINI-BLK-CHUNK-) chunks flushed"
		else
			kv_fail "round $r: kvmini was gone before the kill"
		fi
	else
		kv_fail "round $r: expected KVMINI-BLK-WRITING, not seen"
	fi
	kv_wait_pid "$KV_PID" 30
	echo "  image files: vda $(($(stat -c %s "$a") >> 10)) KiB, vdb $(($(stat -c %s "$b") >> 10)) KiB, vdc $(($(stat -c %s "$c") >> 10)) KiB"
	check_no_out "kill$r" KVMINI-BLK-ERROR
	check_no_out "kill$r" KVMINI-DMESG-BAD
	kv_qcheck "round $r: vda (4 KiB clusters)" "$a" 0 3
	kv_qcheck "round $r: vdb (overlay)" "$b" 0 3
	kv_qcheck "round $r: vdc (defaults)" "$c" 0 3
	kv_qcheck "round $r: vdb's backing file" "$base" 0
	check_eq "round $r: vdb's backing file unchanged" "$base_sha" "$(kv_sha "$base")"
	# Every flushed chunk so far, in qemu's view of vdc.
	kv_qview "$c" "$T/vdc.raw" || continue
	n=0 bad=0
	for q in $(seq 1 "$r"); do
		while IFS='=' read -r key sha; do
			i=${key##*-}
			got=$(dd if="$T/vdc.raw" bs=256k skip=$((4 * (32 + 8 * (q - 1)) + i)) count=1 status=none | sha256sum | cut -d' ' -f1)
			n=$((n + 1))
			if [ "$got" != "$sha" ]; then
				bad=$((bad + 1))
				echo "    round $q's chunk $i: expected $sha, saw $got"
			fi
		done < <(tr -d '\r' <"$T/kill$q.out" | grep "^KVMINI-BLK-CHUNK-$q-[0-9]*=" | sed 's/^KVMINI-BLK-//')
	done
	if [ "$n" -gt 0 ] && [ "$bad" = 0 ]; then
		kv_ok "round $r: all $n chunks flushed so far read back the same (qemu's view of vdc)"
	else
		kv_fail "round $r: flushed chunks: expected all to read back the same (and at least one), saw $bad of $n differ"
	fi
	rm -f "$T/vdc.raw"
done
kv_finish
