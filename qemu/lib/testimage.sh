# shellcheck shell=bash
# The test OS image: busybox, the check script as /sbin/init, and files
# with known contents, turned into composefs repositories by the reference
# writer (veriroot-mkimage, i.e. the composefs crate).
#
#   testimage_tree DIR [BUSYBOX]
#                               write the tree (deterministic), with BUSYBOX
#                               (default /bin/busybox; e.g. Debian's arm64
#                               busybox-static for aarch64 guests)
#   testimage_repo ALG REPO SRC commit SRC into REPO, print the digest
#   testimage_object REPO ALG FILE
#                               print REPO's object path for FILE's contents

_TESTIMAGE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

testimage_tree() {
	local out=$1 busybox=${2:-/bin/busybox} applet
	# Every step is checked: callers run this where `set -e` does not apply.
	rm -rf "$out" &&
		mkdir -p "$out"/{bin,sbin,etc,var,sysroot,proc,sys,dev,run,tmp,usr/bin,usr/lib,usr/share/veriroot-test} &&
		chmod 1777 "$out/tmp" &&
		install -m 0755 "$busybox" "$out/bin/busybox" || return 1
	# The applet list from the host's busybox: a foreign one cannot run here,
	# and Debian builds busybox-static with one configuration for all
	# architectures (install-deps installs the host's from the same suite).
	for applet in $(/bin/busybox --list); do
		[ "$applet" = busybox ] || ln -sf busybox "$out/bin/$applet" || return 1
	done
	install -m 0755 "$_TESTIMAGE_DIR/guest/test-init" "$out/sbin/init" &&
		install -m 0755 "$_TESTIMAGE_DIR/guest/tpm-dump" "$out/usr/bin/vt-tpm-dump" &&
		printf 'veriroot-test\n' >"$out/etc/hostname" &&
		printf 'root:x:0:0:root:/:/bin/sh\n' >"$out/etc/passwd" &&
		printf 'from the image\n' >"$out/etc/vt-image-etc" &&
		printf 'ID=veriroot-test\nVERSION_ID=1\n' >"$out/usr/lib/os-release" || return 1
	# small.txt stays inline in the EROFS (<= 64 bytes); big.bin becomes an
	# object in the store, checked by overlayfs against its fs-verity digest.
	printf 'veriroot test image\n' >"$out/usr/share/veriroot-test/small.txt" &&
		head -c 131072 <(seq 1 40000) >"$out/usr/share/veriroot-test/big.bin" &&
		(cd "$out" && sha256sum usr/share/veriroot-test/small.txt usr/share/veriroot-test/big.bin \
			etc/hostname >usr/share/veriroot-test/SHA256SUMS) &&
		find "$out" -exec touch -h -d @1700000000 {} +
}

testimage_repo() {
	local alg=$1 repo=$2 src=$3
	"$VERIROOT_DIR/target/release/veriroot-mkimage" --algorithm "$alg" --repo "$repo" "$src"
}

testimage_object() {
	local repo=$1 alg=$2 file=$3 hex
	hex=$(fsverity digest --hash-alg="$alg" --block-size=4096 --compact "$file")
	printf '%s/objects/%s/%s\n' "$repo" "${hex:0:2}" "${hex:2}"
}
