# shellcheck shell=bash
# A real Debian system (trixie, or forky: DEBIAN_SUITE), booted from a
# verified composefs image through a dracut-built systemd initramfs that
# contains veriroot's dracut module: the debian-* and forky-* scenarios
# (issue 4's system test; issue 17 for forky).
#
#   DEBIAN_SUITE=forky                   before sourcing (default: trixie):
#                                        the suite of the tree, so of its
#                                        systemd, dracut and kernel
#   source "$QEMU_DIR/lib/debian.sh"     in a scenario file (after scenario.sh)
#   debian_prepare                       in prepare(): build (cached), then put
#                                        the repository and the deployment's
#                                        /var on the disk tree; sets DIGEST
#   debian_pass VARIANT "KARGS" "CHECKS" [REGEX...]
#                                        boot; qemu/guest/debian-check runs
#                                        CHECKS in the booted system and all
#                                        must pass (multi-user always runs)
#   debian_refuse VARIANT "KARGS" REGEX...
#                                        boot; must end in emergency.target
#                                        (the initramfs's test hook prints
#                                        VT-EMERGENCY and powers off)
#   debian_expect_refused REGEX...       debian_refuse's checks, for a boot
#                                        of debian_boot's own command line
#   debian_expect_pcrs EXPECTED_JSON [PREFIX]
#                                        the last boot's VT-PCR lines (or
#                                        PREFIX's, e.g. VT-INITRD-PCR) equal
#                                        EXPECTED_JSON, its PCRs and banks
#   debian_test_boot, debian_test_wrong_digest[_prepare|_reboot],
#   debian_test_sysext[_prepare]         the scenarios shared by the suites
#                                        (debian-boot and forky-boot, ...)
#
DEBIAN_SUITE=${DEBIAN_SUITE:-trixie}
# The tree's name (its tarball's and work folder's prefix): another tree of
# the same suite (qemu/lib/initramfs-tools.sh) must neither share nor
# delete this one's cached tarball.
DEBIAN_TREE=${DEBIAN_TREE:-$DEBIAN_SUITE}
# What builds the initramfs in the tree: dracut, or initramfs-tools
# (qemu/lib/initramfs-tools.sh): the package's trigger is checked with it.
DEBIAN_INITRAMFS=${DEBIAN_INITRAMFS:-dracut}
# What differs between the suites: the packages of the tree (the key of
# its cached tarball) and where systemd-pcrlock is.
case $DEBIAN_SUITE in
trixie)
	DEBIAN_PACKAGES=(
		systemd systemd-sysv udev dracut dracut-core kmod linux-image-cloud-amd64
		# systemd-pcrlock (in trixie's systemd package) dlopen()s tpm2-tss.
		libtss2-esys-3.0.2-0t64 libtss2-mu-4.0.1-0t64 libtss2-rc0t64 libtss2-tcti-device0t64
		# The seal-* scenarios (qemu/lib/seal.sh): LUKS2 volumes, unlocked by
		# systemd-cryptsetup, enrolled with systemd-cryptenroll.
		cryptsetup-bin systemd-cryptsetup
	)
	;;
forky)
	DEBIAN_PACKAGES=(
		systemd systemd-sysv udev dracut dracut-core kmod linux-image-cloud-amd64
		# Since Debian's 261-2, systemd-pcrlock, systemd-pcrextend and the
		# PCR units (systemd-pcrphase*, the NvPCR ones) are in systemd-tpm,
		# which depends on the tpm2-tss libraries systemd dlopen()s.
		systemd-tpm
	)
	;;
*)
	echo "debian: unknown DEBIAN_SUITE '$DEBIAN_SUITE' (known: trixie forky)" >&2
	DEBIAN_PACKAGES=()
	;;
esac
# shellcheck disable=SC2016 # "$1" in the hook is for mmdebstrap's shell
DEBIAN_MMDEBSTRAP_OPTS=(
	--variant=minbase
	--aptopt='Acquire::Retries "3"'
	--dpkgopt='path-exclude=/usr/share/man/*'
	--dpkgopt='path-exclude=/usr/share/doc/*'
	--dpkgopt='path-include=/usr/share/doc/*/copyright'
	--dpkgopt='path-exclude=/usr/share/locale/*'
	--dpkgopt='path-exclude=/usr/share/info/*'
	# The kernel's postinst ran dracut already: not the initramfs we test.
	--customize-hook='rm -f "$1"/boot/initrd.img-* "$1"/initrd.img "$1"/initrd.img.old'
)
# A testing suite's Release file carries Valid-Until (trixie's, a stable
# release, does not): from a mirror that is a frozen snapshot it has
# expired, and mmdebstrap's apt, which does not read the host's
# apt.conf.d, refuses it. Forky's tree takes the packages anyway, as
# signed; the option is part of the key, trixie's is unchanged.
[ "$DEBIAN_SUITE" = trixie ] || DEBIAN_MMDEBSTRAP_OPTS+=(--aptopt='Acquire::Check-Valid-Until "false"')
# signed: [trust] signatures = "required" and the build's test certificate
# (_debian_signing_key) in the initramfs; every build's repository carries
# the image's signature (_debian_sign), which the other variants ignore.
# Only trixie's build has it (debian-signed-boot): a dracut run less for
# forky's.
DEBIAN_VARIANTS=(default etc-transient)
[ "$DEBIAN_SUITE" != trixie ] || DEBIAN_VARIANTS+=(signed)
# What systemd-pcrextend dlopen()s (esys, rc, mu, the device TCTI) and
# what they link (sys): dracut --install does not resolve libraries' needs.
DEBIAN_INITRD_LIBS=$(printf '/usr/lib/x86_64-linux-gnu/libtss2-%s ' esys.so.0 rc.so.0 mu.so.0 tcti-device.so.0 sys.so.1)
# systemd-cryptsetup's TPM2 token plugin (trixie: in systemd-cryptsetup),
# which libcryptsetup loads to open a TPM2 keyslot: dracut's crypt modules
# install systemd-cryptsetup without it (its tpm2-tss module would add it,
# but only with tpm2-tools installed), so a refused boot's emergency mode
# could not even ask the TPM (seal-other-image's refused boot).
[ "$DEBIAN_SUITE" != trixie ] ||
	DEBIAN_INITRD_LIBS+=' /usr/lib/x86_64-linux-gnu/cryptsetup/libcryptsetup-token-systemd-tpm2.so'

DEBIAN_CACHE=$VERIROOT_CACHE/debian
DEBIAN_WORK=$WORK/debian/$DEBIAN_TREE
DEBIAN_BOOT_TIMEOUT=${DEBIAN_BOOT_TIMEOUT:-600}
DEBIAN_ROOT_LABEL='vt-root'
# After vm_boot's own (-m 1024 -smp 1): QEMU takes the last one.
read -ra DEBIAN_QEMU_ARGS <<<"${DEBIAN_QEMU:--m 2048 -smp 2}"

# _debian_variant_config VARIANT: its /etc/veriroot/veriroot.conf (empty: none).
_debian_variant_config() {
	case $1 in
	default) ;;
	etc-transient) printf '[etc]\nmount = "transient"\n' ;;
	signed) printf '[trust]\nsignatures = "required"\n' ;;
	*)
		echo "debian: unknown variant '$1'" >&2
		return 1
		;;
	esac
}

# _debian_variant_certs VARIANT DIR: the certificates (paths, one a line)
# of the build DIR that VARIANT's tree has in /etc/veriroot/keys when
# dracut runs, so that veriroot's dracut module copies them.
_debian_variant_certs() {
	case $1 in
	signed) printf '%s\n' "$2/signing/vendor.pem" ;;
	esac
}

# _debian_signing_key DIR: the build's own test key pair, DIR/signing/
# vendor.{key,pem} (signing_key, qemu/lib/scenario.sh: ECDSA P-256, a
# self-signed certificate). Made once per build, so the certificate in the
# signed initramfs and the signature in the repository always match.
_debian_signing_key() {
	mkdir -p "$1/signing" && signing_key "$1/signing" vendor ec:P-256
}

# _debian_sign DIR: `fsverity sign` of the build's image (its sha512
# digest) with DIR/signing/vendor.key, into the repository's
# signatures/<digest>.sig (docs/formats.md, "Signed images"): on every
# disk made from the build (debian_prepare), read only when the
# initramfs's [trust] signatures asks.
_debian_sign() {
	local dir=$1 digest
	digest=$(cat "$dir/digest") || return 1
	ALGORITHM=sha512 REPO=$dir/repo SCENARIO_DIR=$dir/signing sign_image "$digest" vendor || return 1
	[ -s "$dir/repo/signatures/$digest.sig" ] || {
		echo "debian: fsverity sign wrote no signatures/$digest.sig" >&2
		return 1
	}
}

# _debian_mirror: debian_mirror (qemu/lib/arch.sh).
_debian_mirror() { debian_mirror; }

# _debian_time LABEL FILE CMD...: run CMD, log and record its wall time.
_debian_time() {
	local label=$1 file=$2 start rc=0 secs
	shift 2
	start=$EPOCHREALTIME
	"$@" || rc=$?
	secs=$(_vm_elapsed "$start")
	if [ "$rc" -eq 0 ]; then
		printf '%s %s\n' "$label" "$secs" >>"$file"
		log "debian: time $label: $secs s"
	else
		log "debian: $label failed after $secs s"
	fi
	return "$rc"
}

# _debian_tarball_path: sets DEBIAN_TARBALL, named by the key of what goes in.
_debian_tarball_path() {
	local key
	key=$(printf '%s\n' "$DEBIAN_SUITE" "${DEBIAN_PACKAGES[@]}" "${DEBIAN_MMDEBSTRAP_OPTS[@]}" |
		sha256sum | cut -c1-16)
	DEBIAN_TARBALL=$DEBIAN_CACHE/$DEBIAN_TREE-$key.tar
}

# _debian_tarball_build: mmdebstrap into DEBIAN_TARBALL (atomically).
_debian_tarball_build() {
	local mirror tmp
	# mmdebstrap picks the format from the name: keep ".tar" at the end.
	tmp=$DEBIAN_CACHE/.tmp.$$.${DEBIAN_TARBALL##*/}
	mirror=$(_debian_mirror) || return 1
	log "debian: building the $DEBIAN_SUITE tree with mmdebstrap from $mirror (log: $DEBIAN_TARBALL.log)"
	if ! mmdebstrap "${DEBIAN_MMDEBSTRAP_OPTS[@]}" --include="$(
		IFS=,
		echo "${DEBIAN_PACKAGES[*]}"
	)" "$DEBIAN_SUITE" "$tmp" "$mirror" >"$DEBIAN_TARBALL.log" 2>&1; then
		rm -f "$tmp"
		tail -n 20 "$DEBIAN_TARBALL.log" >&2
		return 1
	fi
	# Trees of another package list are not needed any more.
	find "$DEBIAN_CACHE" -maxdepth 1 -name "$DEBIAN_TREE-*.tar*" ! -name "${DEBIAN_TARBALL##*/}*" -delete
	mv "$tmp" "$DEBIAN_TARBALL"
}

# _debian_chroot TREE CMD...: CMD in a chroot of TREE with /proc, /sys and
# /dev, mounted in a private mount namespace: they are unmounted when CMD
# ends (the trap), and could not outlive the namespace anyway.
_debian_chroot() {
	# shellcheck disable=SC2016 # the script expands its own arguments
	unshare --mount --propagation private -- bash -c '
		set -euo pipefail
		tree=$1
		shift
		trap "umount -R \"\$tree/dev\" \"\$tree/sys\" \"\$tree/proc\" 2>/dev/null || true" EXIT
		mount -t proc proc "$tree/proc"
		mount -t sysfs sysfs "$tree/sys"
		mount --rbind /dev "$tree/dev"
		chroot "$tree" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
	' _debian_chroot "$@"
}

# _debian_install_package TREE: veriroot goes in as a user's would, from
# its Debian package (`make deb`'s packaging/build-deb) with the tree's
# apt, offline (no dependencies to fetch: the tree has dracut). The
# package's update-initramfs trigger must make the tree's dracut rebuild
# /boot/initrd.img-<kver> with veriroot's module in it (then removed: the
# initramfs the boots use is built by _debian_dracut). An empty one is put
# there first, as on an installed system: forky's dracut answers the
# trigger with `update-initramfs -u`, which only updates initramfs images
# that exist (trixie's rebuilds the newest kernel's anyway). The tree's dpkg
# excludes /usr/share/man and /usr/share/doc (DEBIAN_MMDEBSTRAP_OPTS):
# veriroot's man page and docs are let in, as on a full system.
_debian_install_package() {
	local tree=$1 deb log=$1/../apt-install.log kver
	kver=$(ls "$tree/usr/lib/modules")
	deb=$("$VERIROOT_DIR/packaging/build-deb" amd64 "${tree%/tree}/deb") || return 1
	cp "$deb" "$tree/var/tmp/" && : >"$tree/boot/initrd.img-$kver" || return 1
	printf '%s\n' '# veriroot system test: the man page and docs of veriroot' \
		path-include=/usr/share/man/man8 path-include=/usr/share/man/man8/veriroot.8.gz \
		'path-include=/usr/share/doc/veriroot*' >"$tree/etc/dpkg/dpkg.cfg.d/zz-veriroot-test" || return 1
	if ! _debian_chroot "$tree" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		"/var/tmp/${deb##*/}" >"$log" 2>&1; then
		tail -n 20 "$log" >&2
		return 1
	fi
	rm -f "$tree/var/tmp/${deb##*/}"
	grep -q "^Processing triggers for $DEBIAN_INITRAMFS " "$log" || {
		echo "debian: installing ${deb##*/} did not trigger $DEBIAN_INITRAMFS (see $log)" >&2
		return 1
	}
	local lister=lsinitrd
	[ "$DEBIAN_INITRAMFS" = dracut ] || lister=lsinitramfs
	_debian_chroot "$tree" "$lister" "/boot/initrd.img-$kver" >"$log.lsinitrd" 2>&1 || return 1
	grep -Eq '(^| )usr/bin/veriroot$' "$log.lsinitrd" || {
		echo "debian: the initramfs the package's trigger rebuilt lacks veriroot (see $log.lsinitrd)" >&2
		return 1
	}
	rm -f "$tree"/boot/initrd.img-* "$tree/etc/dpkg/dpkg.cfg.d/zz-veriroot-test"
	log "debian: installed ${deb##*/} with apt; its trigger rebuilt the initramfs ($DEBIAN_INITRAMFS) with veriroot in it"
}

# _debian_customize TREE: the project's package, and the test's additions.
_debian_customize() {
	local tree=$1 inc=$1/var/tmp/vt-initrd
	_debian_install_package "$tree" &&
		mkdir -p "$tree/sysroot" "$tree/etc/systemd/system/multi-user.target.wants" \
			"$inc/etc/systemd/system/emergency.target.wants" &&
		printf 'veriroot-debian\n' >"$tree/etc/hostname" &&
		# Off the critical chain to multi-user.target (systemd-analyze in
		# debian-boot, every boot under TCG): Debian's getty-static (gettys
		# on tty2-6 where logind is absent; the test uses the serial lines),
		# 5.8 s; ldconfig.service, 4.3 s in each deployment's first boot
		# (ConditionNeedsUpdate=/etc): the image's /etc/ld.so.cache is built
		# with the image, as on any image-based system.
		ln -sfn /dev/null "$tree/etc/systemd/system/getty-static.service" &&
		ln -sfn /dev/null "$tree/etc/systemd/system/ldconfig.service" &&
		install -D -m 0755 "$QEMU_DIR/guest/debian-check" "$tree/usr/libexec/veriroot-test/debian-check" &&
		install -D -m 0644 "$QEMU_DIR/guest/seal-checks" "$tree/usr/libexec/veriroot-test/seal-checks" &&
		install -D -m 0755 "$QEMU_DIR/guest/tpm-dump" "$tree/usr/bin/vt-tpm-dump" || return 1
	# The checks run once the boot is finished (Type=simple: the boot's
	# job queue does not wait for them; the script waits for the boot).
	cat >"$tree/usr/lib/systemd/system/veriroot-test.service" <<-'UNIT' || return 1
		[Unit]
		Description=veriroot system test checks (qemu/guest/debian-check)
		After=multi-user.target

		[Service]
		Type=simple
		ExecStart=/usr/libexec/veriroot-test/debian-check
		StandardOutput=journal
		StandardError=journal

		[Install]
		WantedBy=multi-user.target
	UNIT
	ln -sfn /usr/lib/systemd/system/veriroot-test.service \
		"$tree/etc/systemd/system/multi-user.target.wants/veriroot-test.service" || return 1
	# The initramfs's emergency hook (dracut --include; not in the image).
	install -D -m 0755 "$QEMU_DIR/guest/debian-emergency" "$inc/usr/bin/vt-emergency" &&
		install -D -m 0755 "$QEMU_DIR/guest/seal-try" "$inc/usr/bin/vt-seal-try" || return 1
	cat >"$inc/etc/systemd/system/vt-emergency.service" <<-'UNIT' || return 1
		[Unit]
		Description=veriroot system test: report the refused boot, power off
		DefaultDependencies=no
		# Isolating emergency.target stops the PCR barrier, which measures
		# leave-initrd into PCR 11: an ordering makes that happen first.
		After=systemd-pcrphase-initrd.service

		[Service]
		Type=oneshot
		ExecStart=/usr/bin/vt-emergency
		StandardOutput=journal+console
		StandardError=journal+console
	UNIT
	ln -sfn ../vt-emergency.service "$inc/etc/systemd/system/emergency.target.wants/vt-emergency.service" || return 1
	# The PCRs right after veriroot, in the initrd (what uki-* compare with
	# `veriroot predict --uki`): after switch-root systemd extends PCR 15 too.
	install -D -m 0755 "$QEMU_DIR/guest/debian-initrd-pcrs" "$inc/usr/bin/vt-initrd-pcrs" || return 1
	mkdir -p "$inc/etc/systemd/system/initrd-root-fs.target.wants"
	cat >"$inc/etc/systemd/system/vt-initrd-pcrs.service" <<-'UNIT' || return 1
		[Unit]
		Description=veriroot system test: the PCRs right after veriroot
		DefaultDependencies=no
		After=veriroot-setup-root.service
		Before=initrd-root-fs.target

		[Service]
		# Once: isolating initrd-switch-root.target starts it again otherwise.
		Type=oneshot
		RemainAfterExit=yes
		ExecStart=/usr/bin/vt-initrd-pcrs
	UNIT
	ln -sfn ../vt-initrd-pcrs.service "$inc/etc/systemd/system/initrd-root-fs.target.wants/vt-initrd-pcrs.service"
}

# _debian_dracut TREE KVER VARIANT OUT [CERT...]: the tree's own dracut, in
# a chroot; VARIANT's veriroot.conf and the certificates CERT in the tree's
# /etc/veriroot (keys/) while it runs, as a user would have them there.
_debian_dracut() {
	local tree=$1 kver=$2 variant=$3 out=$4 conf img=/var/tmp/vt-initramfs.img cert
	shift 4
	conf=$(_debian_variant_config "$variant") || return 1
	rm -rf "$tree/etc/veriroot"
	if [ -n "$conf" ]; then
		mkdir -p "$tree/etc/veriroot"
		printf '%s' "$conf" >"$tree/etc/veriroot/veriroot.conf"
	fi
	for cert in "$@"; do
		install -D -m 0644 "$cert" "$tree/etc/veriroot/keys/${cert##*/}" || return 1
	done
	# systemd-pcrextend (the enter-initrd barrier in PCR 11 when booted from
	# a UKI) dlopen()s tpm2-tss; dracut's own tpm2-tss module is only taken
	# when tpm2-tools is installed, which this tree has not.
	if ! _debian_chroot "$tree" dracut --no-hostonly --force --kver "$kver" --add veriroot \
		--install "$DEBIAN_INITRD_LIBS" --include /var/tmp/vt-initrd / "$img" >"$out.dracut.log" 2>&1; then
		tail -n 20 "$out.dracut.log" >&2
		return 1
	fi
	rm -rf "$tree/etc/veriroot"
	_debian_chroot "$tree" lsinitrd "$img" >"$out.lsinitrd" 2>&1 || return 1
	_debian_chroot "$tree" lsinitrd -f etc/modules-load.d/veriroot.conf "$img" >"$out.modules-load" 2>&1 ||
		return 1
	mv "$tree$img" "$out"
	_debian_check_initramfs "$out.lsinitrd" "$conf" "$out.modules-load" "$tree" "$kver" || return 1
	for cert in "$@"; do
		grep -Eq " etc/veriroot/keys/${cert##*/}\$" "$out.lsinitrd" || {
			echo "debian: the $variant initramfs lacks etc/veriroot/keys/${cert##*/} (see $out.lsinitrd)" >&2
			return 1
		}
	done
}

# _debian_check_coexistence TREE KVER DIR: composefs-rs's dracut module
# (37composefs, whose unit composefs-setup-root.service mounts the root on
# the same karg at the same point) installed beside veriroot's: dracut must
# refuse to build an initramfs with both, naming the fix, and write none.
# A stand-in with that module's name and unit name (the real module ships
# only in composefs-rs's examples, not in a package): what veriroot's
# module reacts to is the name. Not booted: the refusal is at build time.
_debian_check_coexistence() {
	local tree=$1 kver=$2 dir=$3 mod=$1/usr/lib/dracut/modules.d/37composefs img=/var/tmp/vt-both.img
	local log=$3/coexistence.dracut.log
	mkdir -p "$mod" || return 1
	cat >"$mod/module-setup.sh" <<-'MODULE' || return 1
		#!/bin/bash
		# Stand-in for composefs-rs's 37composefs (qemu/lib/debian.sh).
		check() { return 0; }
		depends() { return 0; }
		install() {
		    inst_simple "$moddir/composefs-setup-root.service" "$systemdsystemunitdir/composefs-setup-root.service"
		}
	MODULE
	printf '[Unit]\nDescription=stand-in\n[Service]\nType=oneshot\nExecStart=/bin/true\n' \
		>"$mod/composefs-setup-root.service" || return 1
	if _debian_chroot "$tree" dracut --no-hostonly --force --kver "$kver" --add 'veriroot composefs' \
		"$img" >"$log" 2>&1; then
		rm -rf "$mod" "$tree$img"
		echo "debian: dracut built an initramfs with both veriroot's and composefs-rs's module (see $log)" >&2
		return 1
	fi
	rm -rf "$mod"
	if [ -e "$tree$img" ]; then
		rm -f "$tree$img"
		echo "debian: dracut failed but left $img with both modules (see $log)" >&2
		return 1
	fi
	grep -q "veriroot: refusing to build an initramfs with both veriroot and the 'composefs' dracut module: .*dracut --omit composefs" "$log" || {
		echo "debian: dracut refused, but not with veriroot's message (see $log)" >&2
		return 1
	}
	log "debian: dracut refused an initramfs with composefs-rs's module beside veriroot's: $(grep -o 'veriroot: refusing.*' "$log" | head -n 1)"
}

# _debian_module_size TREE KVER DIR: what veriroot's dracut module adds to
# the default initramfs: the same dracut run with the module omitted.
# Recorded in DIR/sizes and the harness log (docs/benchmarks.md).
_debian_module_size() {
	local tree=$1 kver=$2 dir=$3 img=/var/tmp/vt-initramfs-without.img with without
	if ! _debian_chroot "$tree" dracut --no-hostonly --force --kver "$kver" --omit veriroot \
		--include /var/tmp/vt-initrd / "$img" >"$dir/initramfs-without.dracut.log" 2>&1; then
		tail -n 20 "$dir/initramfs-without.dracut.log" >&2
		return 1
	fi
	with=$(stat -c %s "$dir/initramfs-default.img") || return 1
	without=$(stat -c %s "$tree$img") || return 1
	rm -f "$tree$img"
	printf 'initramfs-default %s\ninitramfs-without-veriroot %s\nveriroot-module %s\n' \
		"$with" "$without" "$((with - without))" >"$dir/sizes"
	log "debian: initramfs $with bytes, $without without veriroot's dracut module: +$((with - without)) bytes"
}

# The modules veriroot's dracut module lists in modules-load.d when the
# kernel has them (dracut/50veriroot/module-setup.sh).
DEBIAN_EARLY_MODULES='erofs overlay sha256_ssse3 sha512_ssse3 sha2_ce sha512_ce'

# _debian_check_modules_load MODULES_LOAD ROOT KVER: the dracut module's
# modules-load.d entry names every one of DEBIAN_EARLY_MODULES the kernel
# KVER (modules under ROOT/lib/modules) has, built in or as a module:
# trixie's 6.12 has erofs, overlay and the two x86 SIMD SHA-2 modules; 7.x
# has no SIMD SHA-2 modules;
# and none it lacks (the module asks with `instmods -c -s`, the checking
# form; the optional `-s` alone once listed all six on every kernel).
_debian_check_modules_load() {
	local file=$1 root=$2 kver=$3 m want='' got extra=''
	for m in $DEBIAN_EARLY_MODULES; do
		! modprobe -d "$root" -S "$kver" --show-depends "$m" >/dev/null 2>&1 || want+="$m "
	done
	for m in erofs overlay; do
		case " $want " in *" $m "*) ;; *)
			echo "debian: kernel $kver has no $m module: '$want'" >&2
			return 1
			;;
		esac
	done
	got=" $(grep -v '^#' "$file" | tr '\n' ' ') "
	for m in $want; do
		case $got in *" $m "*) ;; *)
			echo "debian: modules-load.d/veriroot.conf for $kver lacks $m, which the kernel has (see $file)" >&2
			return 1
			;;
		esac
	done
	for m in $got; do
		case " $want " in *" $m "*) ;; *) extra+="$m " ;; esac
	done
	if [ -n "$extra" ]; then
		echo "debian: modules-load.d/veriroot.conf for $kver names ${extra% }, which $kver does not have (see $file)" >&2
		return 1
	fi
}

# _debian_check_initramfs LSINITRD_OUTPUT CONF MODULES_LOAD TREE KVER:
# veriroot's module is really in, and its modules-load.d entry names what
# this kernel has (for the trixie amd64 kernel, where all four are modules).
_debian_check_initramfs() {
	local list=$1 want
	_debian_check_modules_load "$3" "$4" "$5" || return 1
	for want in '^veriroot$' ' usr/bin/veriroot$' ' usr/lib/systemd/system/veriroot-setup-root.service$' \
		' usr/lib/x86_64-linux-gnu/libtss2-esys.so.0 ' ' usr/lib/x86_64-linux-gnu/libtss2-sys.so.1 ' \
		' usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0 ' \
		' etc/systemd/system/initrd-root-fs.target.wants/vt-initrd-pcrs.service -> ' \
		' etc/systemd/system/initrd-root-fs.target.wants/veriroot-setup-root.service -> ' \
		' etc/systemd/system/emergency.target.wants/vt-emergency.service -> '; do
		grep -Eq -- "$want" "$list" || {
			echo "debian: the initramfs lacks /$want/ (see $list)" >&2
			return 1
		}
	done
	if [ -n "$2" ]; then
		grep -Eq ' etc/veriroot/veriroot.conf$' "$list" || {
			echo "debian: the initramfs lacks etc/veriroot/veriroot.conf (see $list)" >&2
			return 1
		}
	fi
}

# _debian_build_into DIR: everything the boots need, from the tarball.
_debian_build_into() {
	local dir=$1 tree=$1/tree kver variant t=$1/timings
	mkdir -p "$tree"
	_debian_time unpack "$t" tar -C "$tree" --numeric-owner --xattrs --xattrs-include='*' -xpf "$DEBIAN_TARBALL" ||
		return 1
	kver=$(ls "$tree/usr/lib/modules")
	case $kver in *[[:space:]]* | '')
		echo "debian: expected one kernel in the tree, found '$kver'" >&2
		return 1
		;;
	esac
	printf '%s\n' "$kver" >"$dir/kver"
	# The tree's own kernel, in either packaging: /boot/vmlinuz-<ver>
	# (trixie's linux-image-<ver>) or /usr/lib/modules/<ver>/vmlinuz (forky's
	# split linux-binary-<ver>).
	local f vmlinuz=''
	for f in "$tree/usr/lib/modules/$kver/vmlinuz" "$tree/boot/vmlinuz-$kver"; do
		[ -f "$f" ] && vmlinuz=$f && break
	done
	[ -n "$vmlinuz" ] || {
		echo "debian: no vmlinuz for $kver in the $DEBIAN_SUITE tree (neither /boot nor /usr/lib/modules/$kver)" >&2
		return 1
	}
	log "debian: the $DEBIAN_SUITE tree's kernel $kver: ${vmlinuz#"$tree"}"
	cp "$vmlinuz" "$dir/vmlinuz"
	cp "$tree/usr/lib/os-release" "$dir/os-release"
	_debian_time install "$t" _debian_customize "$tree" || return 1
	_debian_signing_key "$dir" || return 1
	local -a certs
	for variant in "${DEBIAN_VARIANTS[@]}"; do
		mapfile -t certs < <(_debian_variant_certs "$variant" "$dir")
		_debian_time "dracut-$variant" "$t" _debian_dracut "$tree" "$kver" "$variant" \
			"$dir/initramfs-$variant.img" ${certs[@]+"${certs[@]}"} || return 1
	done
	_debian_time dracut-without "$t" _debian_module_size "$tree" "$kver" "$dir" || return 1
	_debian_time dracut-coexistence "$t" _debian_check_coexistence "$tree" "$kver" "$dir" || return 1
	rm -rf "$tree/var/tmp/vt-initrd"
	local left
	left=$(find "$tree/var/tmp" "$tree/tmp" -mindepth 1 -maxdepth 1 -printf '%p ')
	if [ -n "$left" ]; then
		echo "debian: dracut left files in the tree: $left" >&2
		return 1
	fi
	_debian_time image "$t" _debian_image "$dir" || return 1
	_debian_time sign "$t" _debian_sign "$dir" || return 1
	# The deployment's /var starts as the image's (bootc does the same).
	mv "$tree/var" "$dir/var"
	rm -rf "$tree"
}

_debian_image() {
	"$VERIROOT_DIR/target/release/veriroot-mkimage" --algorithm sha512 --repo "$1/repo" "$1/tree" >"$1/digest"
}

# _debian_key: the derived build's key (the tarball and every input).
_debian_key() {
	{
		printf '%s\n' "${DEBIAN_TARBALL##*/}" "${DEBIAN_VARIANTS[@]}"
		cat "$VERIROOT_BIN" "$VERIROOT_FULL_BIN" "$VERIROOT_DIR/units/veriroot-setup-root.service" \
			"$VERIROOT_DIR/dracut/50veriroot/module-setup.sh" "$VERIROOT_DIR/Makefile" \
			"$VERIROOT_DIR/packaging/build-deb" "$VERIROOT_DIR"/packaging/debian/* \
			"$QEMU_DIR/guest/debian-check" "$QEMU_DIR/guest/seal-checks" "$QEMU_DIR/guest/debian-emergency" \
			"$QEMU_DIR/guest/tpm-dump" "$QEMU_DIR/guest/debian-initrd-pcrs" "$QEMU_DIR/guest/seal-try" \
			"${BASH_SOURCE[0]}"
	} | sha256sum | cut -c1-16
}

# debian_build: sets DEBIAN_BUILD (the derived build's directory).
debian_build() {
	local lock rc=0 start=$EPOCHREALTIME
	mkdir -p "$DEBIAN_CACHE" "$DEBIAN_WORK"
	exec {lock}>"$DEBIAN_CACHE/.lock"
	flock "$lock"
	_debian_build_locked || rc=$?
	exec {lock}>&-
	[ "$rc" -eq 0 ] && log "debian: build ready in $(_vm_elapsed "$start") s: $DEBIAN_BUILD"
	return "$rc"
}

_debian_build_locked() {
	local key tmp
	_debian_tarball_path
	if [ -s "$DEBIAN_TARBALL" ]; then
		log "debian: reusing $DEBIAN_TARBALL"
	else
		_debian_time tree "$DEBIAN_CACHE/timings" _debian_tarball_build || return 1
	fi
	key=$(_debian_key) || return 1
	DEBIAN_BUILD=$DEBIAN_WORK/$key
	if [ -s "$DEBIAN_BUILD/digest" ]; then
		log "debian: reusing $DEBIAN_BUILD (its stages took, in s: $(tr '\n' ' ' <"$DEBIAN_BUILD/timings"))"
		return 0
	fi
	tmp=$DEBIAN_WORK/.tmp.$key
	rm -rf "$tmp"
	mkdir -p "$tmp"
	if ! _debian_build_into "$tmp"; then
		rm -rf "$tmp"
		return 1
	fi
	mv "$tmp" "$DEBIAN_BUILD"
	# Builds for other inputs (~220 MB each): keep the two newest, which a
	# concurrent run may still use; with them go their shared disks
	# (qemu/lib/disk.sh, debian_prepare's DISK_BASE_ID).
	find "$DEBIAN_WORK" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name '.tmp.*' -printf '%T@ %p\n' |
		sort -rn | tail -n +3 | cut -d' ' -f2- | while read -r old; do
		rm -rf "$old" "$WORK/disks/debian-$DEBIAN_TREE-${old##*/}-"*
	done
}

# debian_dracut_kernel_check KERNEL: veriroot's dracut module on another
# kernel (qemu/lib/kernel.sh's KERNEL: current, the newest 7.x): the
# cached Debian tree is unpacked into the scenario's folder, gets `make
# install` and that kernel's modules, and its dracut builds an initramfs
# for it; the modules-load.d entry must name what that kernel has (on 7.x
# no SIMD SHA-2 module, which would fail systemd-modules-load) and the
# initramfs must hold veriroot, its unit and erofs/overlay. Not booted.
debian_dracut_kernel_check() {
	local choice=$1 tree=$SCENARIO_DIR/dracut-$1 out kroot kver
	out=$(
		kernel_select "$choice" && kernel_fetch >&2 && printf '%s %s\n' "$KERNEL_ROOT" "$KERNEL_VERSION"
	) || { echo "the $choice kernel cannot be fetched (see harness.log)"; return 1; }
	read -r kroot kver <<<"$out"
	_debian_tarball_path
	rm -rf "$tree" && mkdir -p "$tree" || return 1
	if ! tar -C "$tree" --numeric-owner --xattrs --xattrs-include='*' -xpf "$DEBIAN_TARBALL" ||
		! make -s -C "$VERIROOT_DIR" install DESTDIR="$tree" >&2 ||
		! cp -a "$kroot/lib/modules/$kver" "$tree/usr/lib/modules/$kver"; then
		rm -rf "$tree"
		echo "preparing a tree for $kver failed"
		return 1
	fi
	if ! _debian_chroot "$tree" dracut --no-hostonly --force --kver "$kver" --add veriroot \
		/var/tmp/vt-initramfs.img >"$SCENARIO_DIR/dracut-$choice.log" 2>&1; then
		rm -rf "$tree"
		echo "dracut with veriroot's module failed for $kver (see dracut-$choice.log)"
		return 1
	fi
	if ! _debian_chroot "$tree" lsinitrd /var/tmp/vt-initramfs.img >"$SCENARIO_DIR/dracut-$choice.lsinitrd" 2>&1 ||
		! _debian_chroot "$tree" lsinitrd -f etc/modules-load.d/veriroot.conf /var/tmp/vt-initramfs.img \
			>"$SCENARIO_DIR/dracut-$choice.modules-load" 2>&1; then
		rm -rf "$tree"
		echo "lsinitrd failed"
		return 1
	fi
	local rc=0 want
	_debian_check_modules_load "$SCENARIO_DIR/dracut-$choice.modules-load" "$tree" "$kver" 2>"$SCENARIO_DIR/dracut-$choice.why" || rc=1
	# Fixed strings: a Debian kernel version has a "+".
	for want in ' usr/bin/veriroot' ' usr/lib/systemd/system/veriroot-setup-root.service' \
		"/$kver/kernel/fs/erofs/erofs.ko" "/$kver/kernel/fs/overlayfs/overlay.ko"; do
		grep -Fq -- "$want" "$SCENARIO_DIR/dracut-$choice.lsinitrd" ||
			{ echo "the $kver initramfs lacks '$want'" >>"$SCENARIO_DIR/dracut-$choice.why"; rc=1; }
	done
	rm -rf "$tree"
	# The harness's own log lines (warnings) to its log; the first other
	# line is the reason.
	grep '^veriroot harness: ' "$SCENARIO_DIR/dracut-$choice.why" >&2 || true
	if [ "$rc" -ne 0 ]; then
		echo "dracut module on $kver: $(grep -v '^veriroot harness: ' "$SCENARIO_DIR/dracut-$choice.why" | head -n 1)"
		return 1
	fi
	log "debian: dracut module on $kver: modules-load.d names '$(grep -v '^#' "$SCENARIO_DIR/dracut-$choice.modules-load" | tr '\n' ' ')'"
}

# debian_prepare: in a scenario's prepare(), with make_disk's DISK_TREE and
# REPO: the Debian repository replaces the test one, the deployment's /var
# is the image's; DIGEST becomes the Debian image's.
debian_prepare() {
	[ "${#DEBIAN_PACKAGES[@]}" -gt 0 ] || {
		echo "unknown DEBIAN_SUITE '$DEBIAN_SUITE'"
		return 1
	}
	debian_build || {
		echo "building the Debian system failed (see harness.log)"
		return 1
	}
	DIGEST=$(cat "$DEBIAN_BUILD/digest")
	# The disk is a copy of this layout's, provisioned once (qemu/lib/disk.sh).
	# shellcheck disable=SC2034 # read by disk_make
	DISK_BASE=debian_disk_base DISK_BASE_ID=debian-$DEBIAN_TREE-${DEBIAN_BUILD##*/}-$ALGORITHM
	debian_disk_base "$DISK_TREE" || return 1
	log "debian: disk tree ready, $DEBIAN_SUITE, image sha512:$DIGEST, kernel $(cat "$DEBIAN_BUILD/kver")"
}

# debian_disk_base DIR: the real root's tree of the Debian build: its
# repository, and its image's deployment with the image's /var.
debian_disk_base() {
	local dir=$1 digest
	digest=$(cat "$DEBIAN_BUILD/digest") || return 1
	rm -rf "$dir/composefs" && mkdir -p "$dir/state/deploy/$digest" &&
		cp -a "$DEBIAN_BUILD/repo" "$dir/composefs" &&
		cp -a "$DEBIAN_BUILD/var" "$dir/state/deploy/$digest/var"
}

# debian_sysext_busybox DIR: a system extension made of a real Debian
# package: busybox-static (a static binary, so any Debian release's works)
# fetched with `apt-get download` from the host's archive into
# $VERIROOT_CACHE/sysext/ (cached), unpacked with dpkg-deb. Only usr/ is
# kept; a /bin file moves to /usr/bin, as on a merged-/usr system. Its
# extension-release matches the Debian tree's os-release: its ID= and, if
# it has one, its VERSION_ID= (trixie: 13; forky, a testing suite, has
# none, and then ID= is what systemd-sysext and veriroot compare). The
# tree's package list (DEBIAN_PACKAGES) is unchanged.
debian_sysext_busybox() {
	local dir=$1 cache=$VERIROOT_CACHE/sysext deb
	mkdir -p "$cache"
	deb=$(find "$cache" -maxdepth 1 -name 'busybox-static_*.deb' | sort | tail -n 1)
	if [ -z "$deb" ]; then
		(cd "$cache" && apt-get download busybox-static) >&2 || return 1
		deb=$(find "$cache" -maxdepth 1 -name 'busybox-static_*.deb' | sort | tail -n 1)
	fi
	[ -n "$deb" ] || { echo "debian: no busybox-static package in $cache" >&2; return 1; }
	rm -rf "$dir" "$dir.deb"
	dpkg-deb -x "$deb" "$dir.deb" || return 1
	mkdir -p "$dir/usr/bin" "$dir/usr/lib/extension-release.d"
	[ ! -d "$dir.deb/usr" ] || cp -a "$dir.deb/usr/." "$dir/usr/"
	[ ! -d "$dir.deb/bin" ] || cp -a "$dir.deb/bin/." "$dir/usr/bin/"
	rm -rf "$dir.deb"
	[ -x "$dir/usr/bin/busybox" ] || { echo "debian: $deb has no busybox binary" >&2; return 1; }
	grep -E '^(ID|VERSION_ID)=' "$DEBIAN_BUILD/os-release" >"$dir/usr/lib/extension-release.d/extension-release.vt-busybox" ||
		return 1
	log "debian: extension vt-busybox from ${deb##*/}: $(du -sh "$dir" | cut -f1)"
}

# debian_boot VARIANT KARGS: one boot of the scenario's disk with the tree's
# kernel and VARIANT's initramfs; sets BOOT_N, BOOT_LOG, BOOT_RC as _boot.
# The guest's second serial port (ttyS1) is the test channel: the guest
# scripts print their VT lines there, away from the console's getty prompt
# and emergency shell; it is appended to BOOT_LOG after the console.
debian_boot() {
	_debian_boot_with "$1" --kernel "$DEBIAN_BUILD/vmlinuz" --initrd "$DEBIAN_BUILD/initramfs-$1.img" \
		--append "root=LABEL=$DEBIAN_ROOT_LABEL rw $2"
}

# _debian_boot_with LABEL VM_BOOT_ARGS...: debian_boot with what to boot
# given as vm_boot options (the kernel and initramfs, or firmware and an ESP).
_debian_boot_with() {
	local label=$1 vt started prov
	shift
	if [ "$BOOT_N" -eq 0 ]; then
		# make_disk's provisioning boot (fs-verity enabled on the repository).
		# (none: the shared disk needed no change, qemu/lib/disk.sh).
		prov=$(grep -a -o 'powered off after [0-9.]* s' "$SCENARIO_DIR/provision.log" | tail -n 1 | sed 's/^powered off after //') || true
		log "debian: time provisioning: ${prov:-none (a copy of the shared disk)}"
	fi
	BOOT_N=$((BOOT_N + 1))
	BOOT_LOG=$SCENARIO_DIR/boot-$BOOT_N.log
	BOOT_RC=0
	vt=$SCENARIO_DIR/boot-$BOOT_N.vt
	rm -f "$vt"
	# DEBIAN_VM_ARGS: a scenario's own vm_boot options (qemu/lib/seal.sh:
	# a second disk, a TPM whose state lasts across the scenario's boots).
	vm_boot --name "$SCENARIO" "$@" --disk "$SCENARIO_DIR/disk.img" --tpm ${DEBIAN_VM_ARGS[@]+"${DEBIAN_VM_ARGS[@]}"} \
		--timeout "$DEBIAN_BOOT_TIMEOUT" \
		--log "$BOOT_LOG.raw" -- -monitor none -serial stdio -serial "file:$vt" \
		"${DEBIAN_QEMU_ARGS[@]}" || BOOT_RC=$?
	{
		tr -d '\r\000' <"$BOOT_LOG.raw"
		printf '===== test channel (guest ttyS1) =====\n'
		[ ! -f "$vt" ] || tr -d '\r\000' <"$vt"
	} >"$BOOT_LOG" && rm -f "$BOOT_LOG.raw" "$vt"
	cat "$BOOT_LOG" >>"$SCENARIO_DIR/serial.log"
	record_timings
	started=$(grep -a -m1 '^VT-INFO: Startup finished' "$BOOT_LOG" | sed 's/^VT-INFO: //; s/ *$//')
	log "debian: boot $BOOT_N ($label): ${started:-the Debian system did not start}; $(
		grep -a -o 'rc=[0-9]*, .* after [0-9.]* s' "$BOOT_LOG" | tail -n 1
	)"
}

debian_pass() {
	local variant=$1 kargs=$2 checks=$3
	shift 3
	debian_boot "$variant" "composefs=$DIGEST vt.checks=${checks// /,}${kargs:+ $kargs}"
	_expect_checks "multi-user $checks" && _expect_lines "$@"
}

debian_refuse() {
	local variant=$1 kargs=$2
	shift 2
	debian_boot "$variant" "composefs=$DIGEST${kargs:+ $kargs}"
	debian_expect_refused "$@"
}

debian_expect_refused() {
	[ "$BOOT_RC" -eq 0 ] || { echo "boot $BOOT_N: vm_boot returned $BOOT_RC (expected the emergency hook's power-off)"; return 1; }
	! grep -aq 'VT: START' "$BOOT_LOG" || { echo "boot $BOOT_N: the Debian system came up, expected a refusal"; return 1; }
	_expect_lines 'VT-EMERGENCY: START' 'VT-EMERGENCY: DONE' 'veriroot: refusing to boot' "$@"
}

# debian_expect_pcrs EXPECTED_JSON [PREFIX]: sysfs prints PCRs in upper case.
debian_expect_pcrs() {
	local lower=$SCENARIO_DIR/boot-$BOOT_N.pcrs got prefix=${2:-VT-PCR}
	grep -a "^$prefix: " "$BOOT_LOG" | awk '{ print "VT-PCR:", $2, $3, tolower($4) }' >"$lower"
	got=$(BOOT_LOG=$lower _pcrs_json "$1")
	[ "$got" = "$1" ] || { echo "boot $BOOT_N: TPM PCRs $got, predicted $1"; return 1; }
}

# debian_machine_id: the machine ID the last boot printed.
debian_machine_id() {
	grep -a -m1 'VT: MACHINE-ID ' "$BOOT_LOG" | awk '{ print $3 }'
}

# The scenarios every suite runs: debian-boot and forky-boot call
# debian_test_boot, and so on; each file sets DEBIAN_SUITE (or not, for
# trixie), the disk's variables and its header, and adds what only it does.

# debian_test_boot: the system comes up from the verified image through
# veriroot-setup-root.service (multi-user.target, no failed unit, / is
# composefs:<digest> with verity=require, /etc and /var wired, veriroot's
# journal, the early modules as this kernel has them), its records are in
# systemd's measurement log, read by the suite's own systemd-pcrlock, and
# PCR 15 and the log equal `veriroot predict`; the machine ID and a /var
# file survive a reboot.
debian_test_boot() {
	local id
	debian_pass default "" "no-failed root etcvar journal early-modules tpm pcrlock persist-write package analyze" \
		'veriroot: mounted sha512:[0-9a-f]{128}' || return 1
	expect_tpm "$(host_veriroot predict --digest "$DIGEST" --json)" || return 1
	id=$(debian_machine_id)
	[ -n "$id" ] || { echo "boot 1 printed no machine ID"; return 1; }
	debian_pass default "vt.machine_id=$id" "no-failed root persist-check"
}

# debian_test_wrong_digest_prepare: in prepare(): images/<digest> resolves
# to another image (the small test tree, committed into the same sha512
# repository); DEBIAN_OTHER is its digest.
debian_test_wrong_digest_prepare() {
	debian_prepare || return 1
	# shellcheck disable=SC2153 # TREE: the small test tree, set by run_one
	DEBIAN_OTHER=$(mkimage "$TREE") || return 1
	ln -sfn "$(readlink "$REPO/images/$DEBIAN_OTHER")" "$REPO/images/$DIGEST"
}

# debian_test_wrong_digest: refused by veriroot-setup-root.service, naming
# both digests on the console and in its journal; emergency.target; PCR
# 15 of every bank is the capped value `veriroot predict --failure` gives.
debian_test_wrong_digest() {
	debian_refuse default "" \
		"^\[ *[0-9.]+\] veriroot\[[0-9]+\]: veriroot: refusing to boot: .*its fs-verity digest is sha512:$DEBIAN_OTHER but the kernel command line expects sha512:$DIGEST" \
		'VT-JOURNAL: .*veriroot-setup-root.service: Failed' || return 1
	debian_expect_pcrs "$(host_veriroot predict --failure --json)"
}

# debian_test_wrong_digest_reboot: the same refusal with
# veriroot.on-failure=reboot: no emergency.target, `systemctl reboot` after
# the delay (the guest reboots: QEMU's -no-reboot ends it), PCR 15 capped
# (the initramfs's vt-initrd-pcrs hook prints the PCRs on the way down),
# the refusal recorded on the real root.
debian_test_wrong_digest_reboot() {
	local record banks
	debian_boot default "composefs=$DIGEST veriroot.on-failure=reboot veriroot.failure-delay=1"
	[ "$BOOT_RC" -eq 2 ] || { echo "boot $BOOT_N: vm_boot returned $BOOT_RC, expected 2 (a reboot)"; return 1; }
	! grep -aq 'VT-EMERGENCY: START' "$BOOT_LOG" || { echo "boot $BOOT_N: emergency.target was reached, expected a reboot"; return 1; }
	! grep -aq 'VT: START' "$BOOT_LOG" || { echo "boot $BOOT_N: the Debian system came up, expected a refusal"; return 1; }
	_expect_lines "veriroot: refusing to boot: .*but the kernel command line expects sha512:$DIGEST" \
		'rebooting in 1 s \(veriroot.on-failure=reboot\)' 'reboot: Restarting system' || return 1
	# The hook prints while the reboot goes on: compare the banks it
	# printed to the end (PCR 15 is each bank's last line); sha256 at least.
	banks=$(grep -a '^VT-INITRD-PCR: ' "$BOOT_LOG" | awk '$3 == 15 { print $2 }' | sort -u | paste -sd, -)
	case ",$banks," in
	*,sha256,*) ;;
	*) echo "boot $BOOT_N: the initramfs hook printed no sha256 PCR 15 before the reboot (banks: '$banks')" && return 1 ;;
	esac
	debian_expect_pcrs "$(host_veriroot predict --failure --json --banks "$banks")" VT-INITRD-PCR || return 1
	record=$(disk_file composefs/state/veriroot/last-refusal)
	if ! { grep -qx 'MODE=setup-root' <<<"$record" && grep -qx 'ACTION=reboot' <<<"$record"; }; then
		echo "boot $BOOT_N: the record on the disk is not this refusal: $(tr '\n' '|' <<<"$record" | cut -c1-200)"
		return 1
	fi
}

# debian_test_sysext_prepare: in prepare(): the busybox-static extension
# (debian_sysext_busybox) committed into the repository; its digest in
# DEBIAN_SYSEXT.
debian_test_sysext_prepare() {
	debian_prepare || return 1
	debian_sysext_busybox "$SCENARIO_DIR/ext-busybox" || return 1
	DEBIAN_SYSEXT=$(mkimage "$SCENARIO_DIR/ext-busybox") || return 1
}

# debian_test_sysext: named by veriroot.sysext=, merged into the root's one
# overlay; busybox runs in the booted system, no unit failed, PCR 13 and
# the log equal `veriroot predict --sysext`.
debian_test_sysext() {
	local bb=$DEBIAN_SYSEXT
	debian_pass default "veriroot.sysext=$bb" "no-failed root sysext tpm" \
		"system extensions merged, lowest first: 'vt-busybox' \(sha512:$bb\)" || return 1
	expect_tpm "$(host_veriroot predict --digest "$DIGEST" --sysext "vt-busybox:$bb" --json)"
}
