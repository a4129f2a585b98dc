# kmods.sh: kernel module load order from a kernel package's modules/ tree (sourced). Debian's
# packages ship no modules.dep (depmod runs at install), so dependencies come from each module's
# own "depends=" (modinfo), which works for modules of any architecture.
#   kmod_order MODDIR NAME...: prints NAME and every module it needs, dependencies first, each
#   once; built-in ones (modules.builtin) are left out; a module that is missing gets a warning
#   on stderr and is left out.
# shellcheck shell=bash

kmod_file() { # MODDIR NAME: the module's file (NAME with - or _)
	local alt=${2//-/_}
	find "$1/kernel" \( -name "$2.ko" -o -name "$2.ko.*" -o -name "$alt.ko" -o -name "$alt.ko.*" \) | head -n 1
}

kmod_order() {
	local moddir=$1 n
	shift
	declare -A _kmod_done=()
	_kmod_visit() {
		local m=$1 f dep
		[ -z "${_kmod_done[$m]:-}" ] || return 0
		_kmod_done[$m]=1
		f=$(kmod_file "$moddir" "$m")
		if [ -z "$f" ]; then
			grep -qE "/(${m}|${m//-/_})\.ko\$" "$moddir/modules.builtin" 2>/dev/null ||
				echo "kmods: warning: no module $m in $moddir (left out)" >&2
			return 0
		fi
		for dep in $(modinfo -F depends "$f" 2>/dev/null | tr ',' ' '); do
			_kmod_visit "$dep"
		done
		echo "$m"
	}
	for n in "$@"; do _kmod_visit "$n"; done
}
