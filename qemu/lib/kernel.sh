# shellcheck shell=bash
# Guest kernel for the QEMU tests: a Debian cloud kernel for the selected
# architecture (qemu/lib/arch.sh: cloud-amd64 or cloud-arm64), unpacked
# (not installed) into $VERIROOT_CACHE/kernel/<version>/.
#
#   source qemu/lib/kernel.sh
#   kernel_select stable|current   (stable is selected when first sourced)
#   kernel_resolve                 -> KERNEL_VERSION, KERNEL_LABEL (no download)
#   kernel_fetch
#   # -> KERNEL_VERSION  uname -r of the guest, e.g. 6.12.95+deb12-cloud-amd64
#   #    KERNEL_LABEL    k<major>.<minor> of it, e.g. k7.2
#   #    KERNEL_IMAGE    the bootable image (vmlinuz)
#   #    KERNEL_MODDIR   <root>/lib/modules/<version> (depmod already run)
#   #    KERNEL_ROOT     the unpacked package root (modprobe -d / depmod -b)
#   #    KERNEL_CONFIG   the kernel's config
#   kernel_config_has SYMBOL VALUE
#   kernel_has_module NAME         the kernel has NAME, built in or as a module
#
# The kernels (KERNEL_CHOICE):
#   stable   linux-image-<flavour> of $KERNEL_SUITE (bookworm-backports): the
#            host's apt lists (arm64: private lists, qemu/lib/arch.sh)
#   current  the newest 7.x: linux-image-<flavour> of the first suite of
#            $KERNEL_CURRENT_SUITES ("forky sid") whose kernel is at least
#            $KERNEL_CURRENT_MIN (7): sid is taken only where forky lags.
#            Private apt lists of those suites in
#            $VERIROOT_CACHE/apt-kernel-current-<arch> (the host's apt is not
#            touched; the mirror is the one of debian.sources).
# The version is resolved at run time through the metapackage (old versions
# vanish from the archive). Once a version is unpacked, later calls only
# read the local apt lists: no network. If the lists name a version the
# archive no longer has, the lists are refreshed once and it is resolved
# again.
#
# Both packagings are supported: one linux-image-<ver>-unsigned with
# /boot/vmlinuz-<ver>, /boot/config-<ver> and /lib/modules/<ver>
# (bookworm-backports), or the split one of forky/sid, where
# linux-image-<ver> is empty and depends on linux-binary-<ver>
# (/usr/lib/modules/<ver>/vmlinuz), linux-modules-<ver> and linux-base-<ver>
# (config, System.map, modules.builtin*). The unpacked root gets a lib ->
# usr/lib link where it has only /usr/lib, so depmod -b and modprobe -d find
# the modules at <root>/lib/modules either way.
#
# Pinning (offline once cached; otherwise fetched if the lists still know
# it): VERIROOT_KERNEL_VERSION=<uname -r> for the stable kernel,
# VERIROOT_KERNEL_CURRENT_VERSION=<uname -r> for the current one; each
# applies to the architecture whose flavour it ends with (e.g.
# ...-cloud-amd64). Knobs: KERNEL_SUITE, KERNEL_CURRENT_SUITES,
# KERNEL_CURRENT_MIN.

_KERNEL_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=qemu/lib/arch.sh
source "$_KERNEL_LIB_DIR/arch.sh"
KERNEL_SUITE=${KERNEL_SUITE:-bookworm-backports}
KERNEL_CURRENT_SUITES=${KERNEL_CURRENT_SUITES:-forky sid}
KERNEL_CURRENT_MIN=${KERNEL_CURRENT_MIN:-7}
KERNEL_CHOICES=(stable current)

# kernel_select stable|current
kernel_select() {
	case $1 in
	stable | current) ;;
	*)
		echo "kernel: unknown kernel '$1' (known: ${KERNEL_CHOICES[*]})" >&2
		return 1
		;;
	esac
	KERNEL_CHOICE=$1
	unset KERNEL_VERSION KERNEL_DEBVERSION KERNEL_LABEL KERNEL_ROOT KERNEL_IMAGE KERNEL_CONFIG KERNEL_MODDIR
}

# _kernel_apt CMD ARGS...: apt-get/apt-cache for the kernel's packages: the
# stable kernel through arch_apt, the current one through private lists of
# $KERNEL_CURRENT_SUITES for DEB_ARCH.
_kernel_apt() {
	if [ "$KERNEL_CHOICE" = stable ]; then
		arch_apt "$@"
		return
	fi
	local d
	d=$(_kernel_apt_dir)
	"$@" -o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
		-o Dir::State::Lists="$d/lists" -o Dir::Cache="$d/cache" -o Dir::State::status=/dev/null \
		-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
		-o APT::Architecture="$DEB_ARCH" -o APT::Architectures::="$DEB_ARCH" \
		-o APT::Sandbox::User=root -o Debug::NoLocking=1
}

_kernel_apt_dir() { printf '%s\n' "$VERIROOT_CACHE/apt-kernel-current-$DEB_ARCH"; }

# _kernel_apt_update: refresh the lists the resolution reads (one at a time:
# the cache may be shared by concurrent runs).
_kernel_apt_update() {
	if [ "$KERNEL_CHOICE" = stable ]; then
		arch_apt_update
		return
	fi
	local d mirror suite lock rc=0
	d=$(_kernel_apt_dir)
	mirror=$(debian_mirror) || return 1
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial" || return 1
	: >"$d/sources.list.tmp"
	for suite in $KERNEL_CURRENT_SUITES; do
		printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
			"$mirror" "$suite" >>"$d/sources.list.tmp"
	done
	mv "$d/sources.list.tmp" "$d/sources.list"
	echo "kernel: apt-get update ($KERNEL_CURRENT_SUITES, $DEB_ARCH) from $mirror" >&2
	exec {lock}>"$d/.lock"
	flock "$lock"
	_kernel_apt apt-get update -q >&2 || rc=$?
	exec {lock}>&-
	return "$rc"
}

# _kernel_meta_show SUITE: "<uname -r> <debian version>" the metapackage
# points at in SUITE, from the local lists.
_kernel_meta_show() {
	local meta=linux-image-$KERNEL_FLAVOUR show
	# Captured first: with pipefail, a reader that stops early fails the pipe.
	show=$(_kernel_apt apt-cache show "$meta/$1" 2>/dev/null) || return 1
	sed -n '/^Depends:/{s/.*linux-image-\([^ ,]*-'"$KERNEL_FLAVOUR"'\) (= \([^)]*\)).*/\1 \2/p;q}' \
		<<<"$show" | grep .
}

# _kernel_resolve_local: "<uname -r> <debian version>" for KERNEL_CHOICE.
_kernel_resolve_local() {
	local suite found
	if [ "$KERNEL_CHOICE" = stable ]; then
		_kernel_meta_show "$KERNEL_SUITE"
		return
	fi
	[ -f "$(_kernel_apt_dir)/sources.list" ] || return 1
	for suite in $KERNEL_CURRENT_SUITES; do
		found=$(_kernel_meta_show "$suite") || continue
		if [ "${found%%.*}" -ge "$KERNEL_CURRENT_MIN" ] 2>/dev/null; then
			printf '%s\n' "$found"
			return 0
		fi
		echo "kernel: $suite has $found, older than $KERNEL_CURRENT_MIN.x; trying the next suite" >&2
	done
	return 1
}

_kernel_suites() {
	if [ "$KERNEL_CHOICE" = stable ]; then echo "$KERNEL_SUITE"; else echo "$KERNEL_CURRENT_SUITES"; fi
}

# _kernel_resolve: the same, running `apt-get update` once if the lists
# cannot answer.
_kernel_resolve() {
	_kernel_resolve_local && return 0
	echo "kernel: no $(_kernel_suites) lists for linux-image-$KERNEL_FLAVOUR; apt-get update" >&2
	_kernel_apt_update || true
	_kernel_resolve_local && return 0
	echo "kernel: cannot resolve linux-image-$KERNEL_FLAVOUR in $(_kernel_suites)" \
		"(is the suite reachable from the mirror of /etc/apt/sources.list.d/debian.sources?" \
		"run qemu/install-deps)" >&2
	return 1
}

# _kernel_pin: the pinned version for KERNEL_CHOICE and this flavour, if any.
_kernel_pin() {
	local pin
	if [ "$KERNEL_CHOICE" = stable ]; then pin=${VERIROOT_KERNEL_VERSION:-}; else pin=${VERIROOT_KERNEL_CURRENT_VERSION:-}; fi
	[ -n "$pin" ] && [ "${pin%-"$KERNEL_FLAVOUR"}" != "$pin" ] && printf '%s\n' "$pin"
}

# _kernel_label VERSION: k<major>.<minor>
_kernel_label() {
	local mm
	mm=$(grep -o '^[0-9]*\.[0-9]*' <<<"$1") || return 1
	printf 'k%s\n' "$mm"
}

kernel_resolve() {
	local resolved ver debver=''
	if ver=$(_kernel_pin); then
		:
	else
		resolved=$(_kernel_resolve) || return 1
		read -r ver debver <<<"$resolved"
	fi
	KERNEL_VERSION=$ver KERNEL_DEBVERSION=$debver
	KERNEL_LABEL=$(_kernel_label "$ver") || {
		echo "kernel: cannot read a version from '$ver'" >&2
		return 1
	}
}

# _kernel_packages VERSION DEBVERSION: the packages holding the kernel, one
# "name=version" a line: the split packaging if linux-image-<ver> depends
# on linux-binary-<ver>, else linux-image-<ver>-unsigned.
_kernel_packages() {
	local ver=$1 debver=$2 show p
	show=$(_kernel_apt apt-cache show "linux-image-$ver=$debver" 2>/dev/null) || show=''
	if grep -q "^Depends:.*linux-binary-$ver " <<<"$show"; then
		for p in binary modules base; do printf 'linux-%s-%s=%s\n' "$p" "$ver" "$debver"; done
	else
		printf 'linux-image-%s-unsigned=%s\n' "$ver" "$debver"
	fi
}

# _kernel_pinned_debversion VERSION: the Debian version of a pinned kernel
# still in the lists.
_kernel_pinned_debversion() {
	local show
	show=$(_kernel_apt apt-cache show --no-all-versions "linux-image-$1" 2>/dev/null) || return 1
	sed -n 's/^Version: //p' <<<"$show" | grep .
}

# _kernel_download VERSION DEBVERSION DIR: fetch the .debs into DIR.
_kernel_download() {
	local pkgs
	mapfile -t pkgs < <(_kernel_packages "$1" "$2")
	echo "kernel: fetching ${pkgs[*]}" >&2
	(cd "$3" && _kernel_apt apt-get download -q -o APT::Sandbox::User=root "${pkgs[@]}" >&2)
}

# _kernel_unpack ROOT VERSION DEB...: unpack and index the modules.
_kernel_unpack() {
	local root=$1 ver=$2 deb
	shift 2
	for deb in "$@"; do
		dpkg-deb -x "$deb" "$root" || return 1
	done
	# Only /usr/lib/modules (the split packaging): the tools look in lib/.
	if [ ! -e "$root/lib" ] && [ -d "$root/usr/lib/modules" ]; then
		ln -s usr/lib "$root/lib" || return 1
	fi
	[ -n "$(_kernel_file "$root" "$ver" vmlinuz)" ] || {
		echo "kernel: no vmlinuz for $ver in the packages" >&2
		return 1
	}
	depmod -b "$root" "$ver"
}

# _kernel_file ROOT VERSION vmlinuz|config: the path in either packaging.
_kernel_file() {
	local f
	for f in "$1/boot/$3-$2" "$1/lib/modules/$2/$3"; do
		[ -f "$f" ] && printf '%s\n' "$f" && return 0
	done
	return 0
}

# _kernel_export ROOT VERSION: set the KERNEL_* variables for an unpacked tree.
_kernel_export() {
	KERNEL_ROOT=$1
	KERNEL_VERSION=$2
	KERNEL_IMAGE=$(_kernel_file "$1" "$2" vmlinuz)
	KERNEL_CONFIG=$(_kernel_file "$1" "$2" config)
	KERNEL_MODDIR=$1/lib/modules/$2
	KERNEL_LABEL=$(_kernel_label "$2")
	export KERNEL_ROOT KERNEL_VERSION KERNEL_IMAGE KERNEL_CONFIG KERNEL_MODDIR KERNEL_LABEL
}

# _kernel_install VERSION DEBVERSION DIR: download + unpack into DIR/root,
# atomically (a half-done tree is never mistaken for a cached one).
_kernel_install() {
	local ver=$1 debver=$2 dir=$3 tmp
	mkdir -p "$(dirname "$dir")" || return 1
	tmp=$(mktemp -d "$dir.tmp.XXXXXX") || return 1
	if ! _kernel_download "$ver" "$debver" "$tmp" ||
		! _kernel_unpack "$tmp/root" "$ver" "$tmp"/*.deb; then
		rm -rf "$tmp"
		return 1
	fi
	rm -f "$tmp"/*.deb
	rm -rf "$dir"
	mv "$tmp" "$dir"
}

kernel_fetch() {
	local dir
	[ -n "${KERNEL_VERSION:-}" ] || kernel_resolve || return 1
	dir=$VERIROOT_CACHE/kernel/$KERNEL_VERSION
	if [ -z "$(_kernel_file "$dir/root" "$KERNEL_VERSION" vmlinuz)" ]; then
		if [ -z "${KERNEL_DEBVERSION:-}" ]; then
			KERNEL_DEBVERSION=$(_kernel_pinned_debversion "$KERNEL_VERSION") || {
				echo "kernel: pinned $KERNEL_VERSION is neither in $VERIROOT_CACHE/kernel nor in the" \
					"$(_kernel_suites) lists" >&2
				return 1
			}
		fi
		if ! _kernel_install "$KERNEL_VERSION" "$KERNEL_DEBVERSION" "$dir"; then
			# The lists may be older than the archive: refresh, resolve, retry once.
			_kernel_pin >/dev/null && return 1
			echo "kernel: fetching $KERNEL_VERSION failed; refreshing the lists" >&2
			_kernel_apt_update || return 1
			unset KERNEL_VERSION
			kernel_resolve || return 1
			dir=$VERIROOT_CACHE/kernel/$KERNEL_VERSION
			if ! _kernel_install "$KERNEL_VERSION" "$KERNEL_DEBVERSION" "$dir"; then
				echo "kernel: cannot fetch linux-image-$KERNEL_FLAVOUR $KERNEL_VERSION from $(_kernel_suites)" >&2
				return 1
			fi
		fi
	fi
	_kernel_export "$dir/root" "$KERNEL_VERSION"
}

# kernel_config_has SYMBOL VALUE: is CONFIG_SYMBOL=VALUE in the guest config?
kernel_config_has() {
	grep -qx "CONFIG_$1=$2" "$KERNEL_CONFIG"
}

# kernel_has_module NAME: does the guest kernel have NAME (a module, or
# built in)? Needs kernel_fetch.
kernel_has_module() {
	modprobe -d "$KERNEL_ROOT" -S "$KERNEL_VERSION" --show-depends "$1" >/dev/null 2>&1
}

# Sourced again (libs source each other): keep the selection.
[ -n "${KERNEL_CHOICE:-}" ] || kernel_select stable
