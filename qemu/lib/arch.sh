# shellcheck shell=bash
# The guest architecture: everything the harness does differently for an
# x86_64 or an aarch64 guest is chosen here, once.
#
#   source qemu/lib/arch.sh
#   arch_select x86_64|aarch64     (x86_64 is selected when this is first sourced)
#   # -> VM_ARCH         x86_64 | aarch64
#   #    RUST_TARGET     x86_64-unknown-linux-musl | aarch64-unknown-linux-musl
#   #    DEB_ARCH        amd64 | arm64 (Debian's name)
#   #    KERNEL_FLAVOUR  cloud-amd64 | cloud-arm64
#   #    VM_QEMU         qemu-system-x86_64 | qemu-system-aarch64
#   #    VM_MACHINE      array: machine and CPU options for QEMU
#   #    VM_CONSOLE      ttyS0 | ttyAMA0
#   #    VM_TPM_DEVICE   tpm-tis (ISA, ACPI) | tpm-tis-device (MMIO, device tree)
#   #    ARCH_MODULES    modules the guest needs beyond the harness's own:
#   #                    on arm64 the TPM TIS driver, a module in its cloud kernel
#   #    ARCH_HASH_MODULES
#   #                    the SIMD SHA-2 crypto modules, taken where the kernel
#   #                    has them (fs-verity keeps the implementation it finds
#   #                    at its first check: sha*-generic without them); 7.x
#   #                    kernels have none (SHA-2 through the crypto library)
#   arch_apt CMD ARGS...         apt-get/apt-cache for DEB_ARCH's packages: for a
#                                foreign architecture, with private lists in the
#                                cache (no `dpkg --add-architecture` on the host)
#   debian_mirror                the Debian archive the host uses (from
#                                /etc/apt/sources.list.d/debian.sources), or
#                                $DEBIAN_MIRROR
#   arch_busybox                 print the path of a static busybox for VM_ARCH
#                                (the host's, or Debian's busybox-static for
#                                DEB_ARCH, downloaded once into the cache)
#
# Knobs: VM_QEMU overrides the QEMU binary for x86_64 only (as before).

_ARCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VERIROOT_DIR=${VERIROOT_DIR:-$(cd "$_ARCH_LIB_DIR/../.." && pwd)}
VERIROOT_CACHE=${VERIROOT_CACHE:-$VERIROOT_DIR/target/cache}
ARCHES=(x86_64 aarch64)
_ARCH_VM_QEMU_X86=${VM_QEMU:-qemu-system-x86_64}

# shellcheck disable=SC2034,SC2054 # read by the other libs; commas are in QEMU words
arch_select() {
	case $1 in
	x86_64)
		DEB_ARCH=amd64 VM_QEMU=$_ARCH_VM_QEMU_X86 VM_CONSOLE=ttyS0 VM_TPM_DEVICE=tpm-tis
		VM_MACHINE=(-accel tcg -cpu max)
		ARCH_MODULES='' ARCH_HASH_MODULES='sha256_ssse3 sha512_ssse3'
		;;
	aarch64)
		# pauth-impdef: QEMU's own pointer-authentication hash instead of
		# QARMA, which TCG emulates slowly (QEMU docs, "cpu-features").
		DEB_ARCH=arm64 VM_QEMU=qemu-system-aarch64 VM_CONSOLE=ttyAMA0 VM_TPM_DEVICE=tpm-tis-device
		VM_MACHINE=(-M virt -accel tcg -cpu max,pauth-impdef=on)
		ARCH_MODULES='tpm_tis' ARCH_HASH_MODULES='sha2_ce sha512_ce'
		;;
	*)
		echo "arch: unknown architecture '$1' (known: ${ARCHES[*]})" >&2
		return 1
		;;
	esac
	VM_ARCH=$1
	RUST_TARGET=$1-unknown-linux-musl
	KERNEL_FLAVOUR=cloud-$DEB_ARCH
	# A kernel found for the other architecture is not this one's.
	unset KERNEL_VERSION KERNEL_DEBVERSION KERNEL_LABEL KERNEL_ROOT KERNEL_IMAGE KERNEL_CONFIG KERNEL_MODDIR
	_ARCH_SELECTED=1
}

# _arch_native: is VM_ARCH the host's own (its packages in the host's apt lists)?
_arch_native() { [ "$DEB_ARCH" = "$(dpkg --print-architecture)" ]; }

# _arch_apt_dir: private apt state for a foreign DEB_ARCH.
_arch_apt_dir() { printf '%s\n' "$VERIROOT_CACHE/apt-$DEB_ARCH"; }

arch_apt() {
	if _arch_native; then
		"$@"
		return
	fi
	local dir
	dir=$(_arch_apt_dir)
	mkdir -p "$dir/lists/partial" || return 1
	# The host's sources, DEB_ARCH's indexes, no installed packages, and no
	# shared binary cache (the host's apt must not see these lists).
	"$@" -o APT::Architecture="$DEB_ARCH" -o APT::Architectures::="$DEB_ARCH" \
		-o Dir::State::Lists="$dir/lists" -o Dir::State::status=/dev/null \
		-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
		-o APT::Sandbox::User=root
}

# arch_apt_update: fetch DEB_ARCH's package lists (a foreign architecture's
# lists are private, so the host's `apt-get update` does not refresh them).
arch_apt_update() {
	echo "arch: apt-get update ($DEB_ARCH)" >&2
	arch_apt apt-get update -q >&2
}

# _arch_deb_version PACKAGE: the candidate version in DEB_ARCH's lists.
_arch_deb_version() {
	local out
	out=$(arch_apt apt-cache show --no-all-versions "$1" 2>/dev/null) || return 1
	sed -n 's/^Version: //p' <<<"$out" | grep .
}

arch_busybox() {
	if _arch_native; then
		printf '%s\n' /bin/busybox
		return 0
	fi
	local ver dir tmp
	ver=$(_arch_deb_version busybox-static) ||
		{ arch_apt_update && ver=$(_arch_deb_version busybox-static); } || {
		echo "arch: no busybox-static for $DEB_ARCH in the apt lists" >&2
		return 1
	}
	# No colon (the epoch): initrd_build --add splits SRC:DEST at one.
	dir=$VERIROOT_CACHE/busybox/${ver//:/_}-$DEB_ARCH
	if [ ! -x "$dir/bin/busybox" ]; then
		echo "arch: fetching busybox-static $ver ($DEB_ARCH)" >&2
		mkdir -p "$(dirname "$dir")" || return 1
		tmp=$(mktemp -d "$dir.tmp.XXXXXX") || return 1
		if ! (cd "$tmp" && arch_apt apt-get download -q "busybox-static=$ver" >&2) ||
			! dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/root"; then
			rm -rf "$tmp"
			return 1
		fi
		rm -rf "$dir"
		mv "$tmp/root" "$dir" && rm -rf "$tmp" || return 1
	fi
	printf '%s\n' "$dir/bin/busybox"
}

# debian_mirror: the Debian archive the host uses (the first stanza of
# debian.sources with a plain suite such as "bookworm"), unless DEBIAN_MIRROR.
debian_mirror() {
	if [ -n "${DEBIAN_MIRROR:-}" ]; then
		printf '%s\n' "$DEBIAN_MIRROR"
		return 0
	fi
	local src=/etc/apt/sources.list.d/debian.sources uri
	uri=$(awk 'BEGIN { RS = "" }
		{ uris = ""; plain = 0; n = split($0, l, "\n")
		  for (i = 1; i <= n; i++) {
		      if (l[i] ~ /^URIs:/) { split(l[i], w, /[ \t]+/); uris = w[2] }
		      if (l[i] ~ /^Suites:/) { m = split(l[i], s, /[ \t]+/)
		          for (j = 2; j <= m; j++) if (s[j] ~ /^[a-z]+$/) plain = 1 } }
		  if (plain && uris != "" && uris !~ /security/) { print uris; exit } }' "$src" 2>/dev/null)
	if [ -z "$uri" ]; then
		echo "debian: no Debian mirror found in $src; set DEBIAN_MIRROR" >&2
		return 1
	fi
	printf '%s\n' "$uri"
}

# Sourced again (libs source each other): keep the selection.
[ -n "${_ARCH_SELECTED:-}" ] || arch_select x86_64
