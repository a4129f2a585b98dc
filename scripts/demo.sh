#!/bin/bash
# demo.sh [kvmini run options...]: boots Debian's stock kernel with the test initramfs and an
# interactive shell on the console (quit: `poweroff -f` in the guest, or Ctrl-A x).
# Defaults: --cpus 2 --mem 512M; any option given here is passed on to `kvmini run` (the
# kernel, initrd and command line can be replaced too). Uses /dev/kvm when it is usable, else
# runs inside the nested harness (tests/nested/nested-run.sh), which is slow: everything runs
# under software emulation there. Environment: BUILD (default build), KVMINI_DEMO_TIMEOUT
# (nested only, default 3600 s), KVMINI_FORCE_NESTED=1 (nested even with a usable /dev/kvm).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${BUILD:-build}
kvmini=$build/kvmini
[ -x "$kvmini" ] || { echo "demo: $kvmini does not exist: run make first" >&2; exit 1; }

kdir=$(tests/guest/fetch-kernel.sh)
initrd=$build/guest/initrd.cpio.gz
tests/guest/build-initrd.sh "$initrd"
export KVMINI_KERNEL_DIR=$kdir


has() { # OPTION: was OPTION given on our command line?
	local a
	for a in "${args[@]}"; do [[ $a == "$1" || $a == "$1="* ]] && return 0; done
	return 1
}
args=("$@")
opts=()
has --kernel || opts+=(--kernel "$kdir/vmlinuz")
has --initrd || opts+=(--initrd "$initrd")
has --cmdline || opts+=(--cmdline "console=ttyS0 reboot=k panic=-1")
has --cpus || opts+=(--cpus 2)
has --mem || opts+=(--mem 512M)

if why=$(tests/nested/nested-run.sh --check-kvm); then
	echo "demo: booting with $kvmini (quit: 'poweroff -f' in the guest, or Ctrl-A x)" >&2
	exec "$kvmini" run "${opts[@]}" "${args[@]}"
fi
echo "demo: $why: booting inside the nested harness (an L1 guest under QEMU's" >&2
echo "demo: software emulation with an emulated AMD SVM CPU). Expect ~10 s for L1 and ~30 s for the" >&2
echo "demo: guest to reach its shell. Quit: 'poweroff -f' in the guest, or Ctrl-A x." >&2
exec tests/nested/nested-run.sh --timeout "${KVMINI_DEMO_TIMEOUT:-3600}" -- "$kvmini" run "${opts[@]}" "${args[@]}"
