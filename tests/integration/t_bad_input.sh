#!/bin/bash
# Bad command lines and unusable files: each must end kvmini with a non-zero status below 128
# (no crash) and exactly one stderr line "kvmini: ..." that names the problem.
# timeout: 300
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

K=$KVMINI_KERNEL
head -c 65536 /dev/urandom >"$T/random.bin"
truncate -s 128M "$T/big-initrd.img"

kv_bad "missing kernel file" kernel run --kernel "$T/no-such-kernel"
kv_bad "kernel is a directory" kernel run --kernel "$T"
kv_bad "kernel is random bytes" kernel run --kernel "$T/random.bin"
kv_bad "missing initrd" initrd run --kernel "$K" --initrd "$T/no-such-initrd"
kv_bad "initrd bigger than guest RAM" initrd run --kernel "$K" --initrd "$T/big-initrd.img" --mem 64M
kv_bad "--mem 0" mem run --kernel "$K" --mem 0
kv_bad "--mem 1K" mem run --kernel "$K" --mem 1K
kv_bad "--mem garbage" mem run --kernel "$K" --mem garbage
kv_bad "--mem 999T" mem run --kernel "$K" --mem 999T
kv_bad "--cpus 0" cpus run --kernel "$K" --cpus 0
kv_bad "--cpus 65" cpus run --kernel "$K" --cpus 65
kv_bad "--cpus abc" cpus run --kernel "$K" --cpus abc
kv_bad "unknown option" "unknown option" run --kernel "$K" --no-such-option
kv_bad "no --kernel" kernel run --mem 64M
kv_bad "--kvm-device /nonexistent" /nonexistent run --kernel "$K" --kvm-device /nonexistent

# These need a real /dev/kvm (the suite runs where there is one, nested if need be).
if [ -e /dev/kvm ]; then
	kv_bad "--kvm-device /dev/null" KVM run --kernel "$K" --kvm-device /dev/null
	if [ "$(id -u)" != 0 ]; then
		echo "  note: not root, cannot switch to an unprivileged user: permission case left out"
	elif setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'test -r /dev/kvm && test -w /dev/kvm'; then
		echo "  note: /dev/kvm is open to uid 65534 here ($(stat -c %A /dev/kvm)): permission case left out"
	else
		# Everything but /dev/kvm must be readable by the unprivileged user.
		d=$T/nobody
		mkdir -p "$d"
		cp "$KVMINI" "$d/kvmini"
		cp "$K" "$d/vmlinuz"
		chmod 755 "$T" "$d" "$d/kvmini"
		chmod 644 "$d/vmlinuz"
		printf '#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups %s/kvmini "$@"\n' "$d" >"$d/as-nobody"
		chmod 755 "$d/as-nobody"
		KVMINI=$d/as-nobody kv_bad "as uid 65534 with /dev/kvm $(stat -c '%A %U' /dev/kvm)" permission \
			run --kernel "$d/vmlinuz" --mem 64M
	fi
else
	kv_fail "/dev/kvm does not exist here: the --kvm-device /dev/null and permission cases cannot run"
fi

# --help
# (the text may go to stdout or stderr)
kv_cmd help 10 "$KVMINI" --help
cat "$T/help.err" >>"$T/help.out"
check_rc "kvmini --help" 0
check_out help "Ctrl-A x"
kv_cmd runhelp 10 "$KVMINI" run --help
cat "$T/runhelp.err" >>"$T/runhelp.out"
check_rc "kvmini run --help" 0
check_out runhelp "Ctrl-A x"
kv_finish
