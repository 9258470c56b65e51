# shellcheck shell=bash
# Debian trixie with initramfs-tools instead of dracut (Debian's default;
# the two conflict, so this is a tree of its own, with its own cached
# tarball): veriroot installed from its package with apt, whose trigger
# makes update-initramfs rebuild the initramfs with veriroot's hook and
# boot script (initramfs-tools/); booted with the harness of
# qemu/lib/debian.sh (debian_prepare, debian_pass, debian_refuse,
# debian_expect_pcrs: the functions below replace what differs, the build).
#
#   source "$QEMU_DIR/lib/initramfs-tools.sh"   in a scenario file
#   itools_test_boot, itools_test_wrong_digest  the two scenarios' bodies
#
# In the initramfs, besides veriroot's own: a test hook
# (/etc/initramfs-tools/scripts/panic/vt-report) that initramfs-tools's
# panic runs before its shell: it prints the PCRs on the test channel,
# like the dracut initramfs's vt-emergency, and powers off.
DEBIAN_SUITE=trixie DEBIAN_TREE=initramfs-tools-trixie DEBIAN_INITRAMFS=initramfs-tools
# shellcheck source=qemu/lib/debian.sh
source "$QEMU_DIR/lib/debian.sh"
# busybox: initramfs-tools copies it into the initramfs (its shell, and
# poweroff/reboot for the boot script's refusal); the tree's systemd does
# not need tpm2-tss here (no pcrlock check on this tree).
DEBIAN_PACKAGES=(systemd systemd-sysv udev initramfs-tools busybox kmod linux-image-cloud-amd64)
DEBIAN_VARIANTS=(default)
DEBIAN_WORK=$WORK/debian/$DEBIAN_TREE

# _debian_key: the build's key, with this file and the initramfs-tools
# scripts (debian.sh's own covers the dracut side).
_debian_key() {
	{
		printf '%s\n' "${DEBIAN_TARBALL##*/}" "${DEBIAN_VARIANTS[@]}"
		cat "$VERIROOT_BIN" "$VERIROOT_FULL_BIN" "$VERIROOT_DIR/Makefile" \
			"$VERIROOT_DIR/initramfs-tools/hooks/veriroot" "$VERIROOT_DIR/initramfs-tools/scripts/local-bottom/veriroot" \
			"$VERIROOT_DIR/packaging/build-deb" "$VERIROOT_DIR"/packaging/debian/* \
			"$QEMU_DIR/guest/debian-check" "$QEMU_DIR/guest/tpm-dump" \
			"$QEMU_DIR/lib/debian.sh" "${BASH_SOURCE[0]}"
	} | sha256sum | cut -c1-16
}

# _itools_test_hook TREE: the panic hook (see the header).
_itools_test_hook() {
	local hook=$1/etc/initramfs-tools/scripts/panic/vt-report
	mkdir -p "${hook%/*}"
	cat >"$hook" <<-'HOOK'
		#!/bin/sh
		# veriroot system test (qemu/lib/initramfs-tools.sh): a panic, e.g.
		# veriroot's refusal: the PCRs on the test channel, then power off.
		case $1 in prereqs) exit 0 ;; esac
		say() { echo "$*" >/dev/ttyS1; }
		say "VT-EMERGENCY: START"
		for dir in /sys/class/tpm/tpm0/pcr-*; do
			for pcr in 7 11 13 15; do
				[ -r "$dir/$pcr" ] || continue
				read -r value <"$dir/$pcr"
				say "VT-PCR: ${dir##*/pcr-} $pcr $value"
			done
		done
		say "VT-EMERGENCY: DONE"
		sync
		poweroff -f
	HOOK
	chmod 0755 "$hook"
}

# _itools_mkinitramfs TREE KVER OUT: the tree's mkinitramfs; the initramfs
# must hold veriroot, its boot script, erofs and overlay, and the test hook.
_itools_mkinitramfs() {
	local tree=$1 kver=$2 out=$3 img=/var/tmp/vt-initramfs.img want
	if ! _debian_chroot "$tree" mkinitramfs -o "$img" "$kver" >"$out.mkinitramfs.log" 2>&1; then
		tail -n 20 "$out.mkinitramfs.log" >&2
		return 1
	fi
	_debian_chroot "$tree" lsinitramfs "$img" >"$out.lsinitramfs" 2>&1 || return 1
	mv "$tree$img" "$out"
	for want in '^usr/bin/veriroot$' '^scripts/local-bottom/veriroot$' '^scripts/panic/vt-report$' \
		"/kernel/fs/erofs/erofs.ko" "/kernel/fs/overlayfs/overlay.ko"; do
		grep -Eq -- "$want" "$out.lsinitramfs" || {
			echo "initramfs-tools: the initramfs lacks /$want/ (see $out.lsinitramfs)" >&2
			return 1
		}
	done
}

# _debian_build_into DIR: debian.sh's, with mkinitramfs for dracut.
_debian_build_into() {
	local dir=$1 tree=$1/tree kver t=$1/timings
	mkdir -p "$tree"
	_debian_time unpack "$t" tar -C "$tree" --numeric-owner --xattrs --xattrs-include='*' -xpf "$DEBIAN_TARBALL" ||
		return 1
	kver=$(ls "$tree/usr/lib/modules")
	case $kver in *[[:space:]]* | '')
		echo "initramfs-tools: expected one kernel in the tree, found '$kver'" >&2
		return 1
		;;
	esac
	printf '%s\n' "$kver" >"$dir/kver"
	cp "$tree/boot/vmlinuz-$kver" "$dir/vmlinuz" && cp "$tree/usr/lib/os-release" "$dir/os-release" || return 1
	_debian_time install "$t" _debian_customize "$tree" || return 1
	# The dracut initramfs's test units (debian.sh): not used here.
	rm -rf "$tree/var/tmp/vt-initrd"
	_itools_test_hook "$tree" || return 1
	_debian_time mkinitramfs "$t" _itools_mkinitramfs "$tree" "$kver" "$dir/initramfs-default.img" || return 1
	local left
	left=$(find "$tree/var/tmp" "$tree/tmp" -mindepth 1 -maxdepth 1 -printf '%p ')
	if [ -n "$left" ]; then
		echo "initramfs-tools: mkinitramfs left files in the tree: $left" >&2
		return 1
	fi
	_debian_time image "$t" _debian_image "$dir" || return 1
	mv "$tree/var" "$dir/var"
	rm -rf "$tree"
}

# itools_test_boot: the system comes up from the verified image through
# veriroot's initramfs-tools boot script (/ is composefs:<digest> with
# verity=require, /etc and /var wired, the package installed), PCR 15 and
# the measurement log (moved into the system's /run by initramfs-tools)
# equal `veriroot predict`.
itools_test_boot() {
	debian_pass default "" "no-failed root etcvar package tpm" \
		'veriroot: mounted sha512:[0-9a-f]{128}' || return 1
	expect_tpm "$(host_veriroot predict --digest "$DIGEST" --json)"
}

# itools_test_wrong_digest: images/<digest> resolves to another image:
# refused naming both digests, nothing booted, PCR 15 capped. Boot 1 asks
# for veriroot.on-failure=emergency: initramfs-tools's panic, whose test
# hook reports the PCRs and powers off (booted without the harness's
# panic=-1, VM_PANIC_ARG: with it the panic reboots at once, before its
# panic scripts). Boot 2 asks for nothing: the boot script's default
# powers off after the delay, no panic shell, the system never starts.
itools_test_wrong_digest() {
	local refused="veriroot: refusing to boot: .*its fs-verity digest is sha512:$DEBIAN_OTHER but the kernel command line expects sha512:$DIGEST"
	VM_PANIC_ARG='' debian_refuse default "veriroot.on-failure=emergency" "$refused" \
		'veriroot refused to boot' || return 1
	debian_expect_pcrs "$(host_veriroot predict --failure --json)" || return 1
	debian_boot default "composefs=$DIGEST veriroot.failure-delay=1"
	[ "$BOOT_RC" -eq 0 ] || { echo "boot $BOOT_N: vm_boot returned $BOOT_RC (expected the boot script's power-off)"; return 1; }
	! grep -aq 'VT: START\|VT-EMERGENCY' "$BOOT_LOG" ||
		{ echo "boot $BOOT_N: the Debian system or the panic scripts ran, expected a power-off"; return 1; }
	_expect_lines "$refused" 'veriroot: the unverified real root is not booted: poweroff in 1 s'
}
