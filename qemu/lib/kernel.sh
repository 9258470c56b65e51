# shellcheck shell=bash
# Guest kernel for the QEMU tests: Debian's cloud kernel from bookworm-backports,
# for the selected architecture (qemu/lib/arch.sh: cloud-amd64 or
# cloud-arm64), unpacked (not installed) into target/cache/kernel/<version>/.
#
#   source qemu/lib/kernel.sh
#   kernel_fetch
#   # -> KERNEL_VERSION  uname -r of the guest, e.g. 6.12.95+deb12-cloud-amd64
#   #    KERNEL_IMAGE    .../boot/vmlinuz-<version>
#   #    KERNEL_MODDIR   .../lib/modules/<version> (depmod already run)
#   #    KERNEL_ROOT     the unpacked package root (modprobe -d / depmod -b)
#   #    KERNEL_CONFIG   .../boot/config-<version>
#
# The version is resolved at run time through the linux-image-<flavour>
# metapackage (old versions vanish from the archive). Once a version is
# unpacked, later calls only read the local apt lists: no network.
# Knobs: KERNEL_SUITE (bookworm-backports), VERIROOT_KERNEL_VERSION=<uname -r>
# skips apt-cache entirely (offline, pinned) for the architecture whose
# flavour it ends with (e.g. ...-cloud-amd64); the other one resolves as usual.

_KERNEL_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=qemu/lib/arch.sh
source "$_KERNEL_LIB_DIR/arch.sh"
KERNEL_SUITE=${KERNEL_SUITE:-bookworm-backports}

# Print "<uname -r> <debian version>" of the kernel the metapackage points at
# in $KERNEL_SUITE, from the local apt lists; fail if the suite is unknown.
_kernel_resolve_local() {
	local meta=linux-image-$KERNEL_FLAVOUR show
	# Captured first: with pipefail, a reader that stops early fails the pipe.
	show=$(arch_apt apt-cache show "$meta/$KERNEL_SUITE" 2>/dev/null) || return 1
	sed -n '/^Depends:/{s/.*linux-image-\([^ ,]*-'"$KERNEL_FLAVOUR"'\) (= \([^)]*\)).*/\1 \2/p;q}' \
		<<<"$show" | grep .
}

# Same, running `apt-get update` once if the suite's lists are missing.
_kernel_resolve() {
	_kernel_resolve_local && return 0
	echo "kernel: no $KERNEL_SUITE lists for linux-image-$KERNEL_FLAVOUR; apt-get update" >&2
	arch_apt_update
	_kernel_resolve_local && return 0
	echo "kernel: cannot resolve linux-image-$KERNEL_FLAVOUR in $KERNEL_SUITE" \
		"(is the suite in /etc/apt/sources.list.d? run qemu/install-deps)" >&2
	return 1
}

# _kernel_download VERSION DEBVERSION DIR: fetch the unsigned image .deb into DIR.
_kernel_download() {
	local pkg=linux-image-$1-unsigned
	(cd "$3" && arch_apt apt-get download -q -o APT::Sandbox::User=root "$pkg=$2" >&2)
}

# _kernel_unpack DEB ROOT VERSION: unpack and index the modules.
_kernel_unpack() {
	dpkg-deb -x "$1" "$2"
	depmod -b "$2" "$3"
}

# _kernel_export ROOT VERSION: set the KERNEL_* variables for an unpacked tree.
_kernel_export() {
	KERNEL_ROOT=$1
	KERNEL_VERSION=$2
	KERNEL_IMAGE=$1/boot/vmlinuz-$2
	KERNEL_CONFIG=$1/boot/config-$2
	KERNEL_MODDIR=$1/lib/modules/$2
	export KERNEL_ROOT KERNEL_VERSION KERNEL_IMAGE KERNEL_CONFIG KERNEL_MODDIR
}

# _kernel_install VERSION DEBVERSION DIR: download + unpack into DIR/root,
# atomically (a half-done tree is never mistaken for a cached one).
_kernel_install() {
	local ver=$1 debver=$2 dir=$3 tmp
	mkdir -p "$(dirname "$dir")"
	tmp=$(mktemp -d "$dir.tmp.XXXXXX")
	if ! _kernel_download "$ver" "$debver" "$tmp" ||
		! _kernel_unpack "$tmp"/*.deb "$tmp/root" "$ver"; then
		rm -rf "$tmp"
		return 1
	fi
	rm -f "$tmp"/*.deb
	rm -rf "$dir"
	mv "$tmp" "$dir"
}

kernel_fetch() {
	local resolved ver debver dir
	if [ -n "${VERIROOT_KERNEL_VERSION:-}" ] && [ "${VERIROOT_KERNEL_VERSION%-"$KERNEL_FLAVOUR"}" != "$VERIROOT_KERNEL_VERSION" ]; then
		ver=$VERIROOT_KERNEL_VERSION debver=
	else
		resolved=$(_kernel_resolve) || return 1
		read -r ver debver <<<"$resolved"
	fi
	dir=$VERIROOT_CACHE/kernel/$ver
	if [ ! -f "$dir/root/boot/vmlinuz-$ver" ]; then
		if [ -z "$debver" ]; then
			echo "kernel: VERIROOT_KERNEL_VERSION=$ver is not in $VERIROOT_CACHE/kernel" >&2
			return 1
		fi
		echo "kernel: fetching linux-image-$ver-unsigned $debver" >&2
		_kernel_install "$ver" "$debver" "$dir" || return 1
	fi
	_kernel_export "$dir/root" "$ver"
}

# kernel_config_has SYMBOL VALUE: is CONFIG_SYMBOL=VALUE in the guest config?
kernel_config_has() {
	grep -qx "CONFIG_$1=$2" "$KERNEL_CONFIG"
}
