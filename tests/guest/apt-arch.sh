# apt-arch.sh: Debian packages of another architecture (arm64) without touching this machine's
# apt configuration or state (sourced by fetch-kernel.sh, build-initrd.sh and nested-run.sh).
# Package lists, apt's binary caches and downloads all live under
# ${KVMINI_CACHE:-~/.cache/kvmini}/apt-ARCH/; the sources are the system's (sources.list*).
#   apt_arch_init ARCH        sets the apt options for ARCH; fetches the lists when absent or
#                             older than a week (KVMINI_APT_REFRESH=1: always)
#   apt_arch_cache ARGS...    apt-cache with them;  apt_arch_get ARGS...: apt-get with them
#   apt_arch_extract PKG DIR  downloads PKG (ARCH) and unpacks it into DIR (dpkg-deb -x); writes
#                             DIR/.package ("Package Version"); refreshes the lists once on failure
#   apt_arch_unpacked PKG     prints a cached unpacked copy of PKG's candidate version (download
#                             and unpack it first when missing)
# shellcheck shell=bash

apt_arch_init() {
	APT_ARCH=$1
	APT_ARCH_DIR=${KVMINI_CACHE:-$HOME/.cache/kvmini}/apt-$APT_ARCH
	mkdir -p "$APT_ARCH_DIR/lists/partial" "$APT_ARCH_DIR/cache/archives/partial"
	APT_ARCH_OPTS=(-o "APT::Architecture=$APT_ARCH" -o "APT::Architectures=$APT_ARCH"
		-o "Dir::State::Lists=$APT_ARCH_DIR/lists" -o "Dir::Cache=$APT_ARCH_DIR/cache"
		-o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=")
	# As root, apt hands downloads to user _apt, who may not reach $HOME: keep them root.
	[ "$(id -u)" != 0 ] || APT_ARCH_OPTS+=(-o APT::Sandbox::User=root)
	# The stamp, not the lists' own times: apt leaves those alone when nothing changed.
	if [ -n "${KVMINI_APT_REFRESH:-}" ] || ! ls "$APT_ARCH_DIR"/lists/*_Packages* >/dev/null 2>&1 ||
		[ -z "$(find "$APT_ARCH_DIR/updated" -mtime -7 2>/dev/null)" ]; then
		apt_arch_update || ls "$APT_ARCH_DIR"/lists/*_Packages* >/dev/null 2>&1
	fi
}
apt_arch_update() {
	echo "apt-arch: fetching the $APT_ARCH package lists into $APT_ARCH_DIR/lists" >&2
	apt-get "${APT_ARCH_OPTS[@]}" update -q >&2 && touch "$APT_ARCH_DIR/updated"
}
apt_arch_cache() { apt-cache "${APT_ARCH_OPTS[@]}" "$@"; }
apt_arch_get() { apt-get "${APT_ARCH_OPTS[@]}" "$@"; }

apt_arch_extract() {
	local pkg=$1 dir=$2 dl deb
	dl=$(mktemp -d "$APT_ARCH_DIR/.dl.XXXXXX")
	if ! (cd "$dl" && apt_arch_get download -q "$pkg:$APT_ARCH" >&2); then
		# Stale lists name a version the mirror dropped: refresh once.
		if ! apt_arch_update || ! (cd "$dl" && apt_arch_get download -q "$pkg:$APT_ARCH" >&2); then
			rm -rf "$dl"
			return 1
		fi
	fi
	deb=$(ls "$dl"/*.deb)
	mkdir -p "$dir"
	dpkg-deb -x "$deb" "$dir" && dpkg-deb -f "$deb" Package Version >"$dir/.package"
	local rc=$?
	rm -rf "$dl"
	return $rc
}

apt_arch_unpacked() {
	local pkg=$1 ver dir work
	ver=$(apt_arch_cache policy "$pkg:$APT_ARCH" 2>/dev/null | sed -n 's/^ *Candidate: //p')
	if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
		# No lists (offline): the newest copy unpacked before will do.
		# shellcheck disable=SC2012
		dir=$(ls -1d "$APT_ARCH_DIR/pkg/${pkg}_"* 2>/dev/null | sort -V | tail -n 1)
		[ -n "$dir" ] && echo "$dir" && return 0
		echo "apt-arch: apt knows no $APT_ARCH package $pkg" >&2
		return 1
	fi
	dir=$APT_ARCH_DIR/pkg/${pkg}_${ver//:/%}
	if [ ! -f "$dir/.package" ]; then
		mkdir -p "$APT_ARCH_DIR/pkg"
		work=$(mktemp -d "$APT_ARCH_DIR/pkg/.x.XXXXXX")
		apt_arch_extract "$pkg" "$work" || { rm -rf "$work"; return 1; }
		rm -rf "$dir"
		mv "$work" "$dir"
	fi
	echo "$dir"
}
