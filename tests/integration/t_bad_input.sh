#!/bin/bash
# Bad command lines and unusable files: each must end kvmini with a non-zero status below 128
# (no crash) and exactly one stderr line "kvmini: ..." that names the problem.
# timeout: 300
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

n=0
# bad WHAT KEYWORD ARGS...: one case; KEYWORD must appear (any case) after the "kvmini: " prefix.
bad() {
	local what=$1 keyword=$2 lines line
	shift 2
	n=$((n + 1))
	kv_run "bad$n" 30 "$@" >/dev/null
	# shellcheck disable=SC2034 # (read by kv_fail) the messages below say all: no console dump
	KV_LAST=""
	lines=$(grep -c '' "$T/bad$n.err")
	line=$(head -n 1 "$T/bad$n.err")
	if [ "$KV_RC" -eq 0 ] || [ "$KV_RC" -ge 124 ]; then
		kv_fail "$what (kvmini $*): expected a non-zero exit status below 124, saw $KV_RC; stderr: $(head -c 300 "$T/bad$n.err")"
	elif [ "$lines" != 1 ]; then
		kv_fail "$what (kvmini $*): expected exactly one stderr line, saw $lines:"
		head -n 10 "$T/bad$n.err" | sed 's/^/    | /'
	elif [[ $line != "kvmini: "* ]]; then
		kv_fail "$what (kvmini $*): expected stderr to start with 'kvmini: ', saw '$line'"
	elif ! grep -qiF -- "$keyword" <<<"${line#kvmini: }"; then
		kv_fail "$what (kvmini $*): expected '$keyword' in the message, saw '$line'"
	else
		kv_ok "$what: exit $KV_RC, '$line'"
	fi
}

K=$KVMINI_KERNEL
head -c 65536 /dev/urandom >"$T/random.bin"
truncate -s 128M "$T/big-initrd.img"

bad "missing kernel file" kernel run --kernel "$T/no-such-kernel"
bad "kernel is a directory" kernel run --kernel "$T"
bad "kernel is random bytes" kernel run --kernel "$T/random.bin"
bad "missing initrd" initrd run --kernel "$K" --initrd "$T/no-such-initrd"
bad "initrd bigger than guest RAM" initrd run --kernel "$K" --initrd "$T/big-initrd.img" --mem 64M
bad "--mem 0" mem run --kernel "$K" --mem 0
bad "--mem 1K" mem run --kernel "$K" --mem 1K
bad "--mem garbage" mem run --kernel "$K" --mem garbage
bad "--mem 999T" mem run --kernel "$K" --mem 999T
bad "--cpus 0" cpus run --kernel "$K" --cpus 0
bad "--cpus 65" cpus run --kernel "$K" --cpus 65
bad "--cpus abc" cpus run --kernel "$K" --cpus abc
bad "unknown option" "unknown option" run --kernel "$K" --no-such-option
bad "no --kernel" kernel run --mem 64M
bad "--kvm-device /nonexistent" /nonexistent run --kernel "$K" --kvm-device /nonexistent

# These need a real /dev/kvm (the suite runs where there is one, nested if need be).
if [ -e /dev/kvm ]; then
	bad "--kvm-device /dev/null" KVM run --kernel "$K" --kvm-device /dev/null
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
		KVMINI=$d/as-nobody bad "as uid 65534 with /dev/kvm $(stat -c '%A %U' /dev/kvm)" permission \
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
