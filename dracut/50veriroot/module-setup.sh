#!/bin/bash
# dracut module: veriroot verifies the composefs image named on the kernel
# command line and mounts it as the new root, in a systemd initrd.
# Included whenever veriroot is installed (check returns 0): an initramfs
# that silently lacked the setup unit would boot the unverified real root.
# dracut provides moddir, initdir, systemdsystemunitdir and SYSTEMCTL.
# shellcheck disable=SC2154

# The binary the initramfs gets, as /usr/bin/veriroot: the initrd build
# (`make install` puts it in /usr/lib/veriroot: PID 1 and setup-root only,
# smaller; docs/design.md, "Two builds"), else the full veriroot, which
# runs setup-root too.
veriroot_binary() {
    local bin
    for bin in /usr/lib/veriroot/veriroot-initrd /usr/bin/veriroot; do
        if [[ -x "$dracutsysrootdir$bin" ]]; then
            echo "$bin"
            return 0
        fi
    done
    return 1
}

# called by dracut
check() {
    veriroot_binary >/dev/null || return 1
    return 0
}

# called by dracut
depends() {
    echo systemd
    return 0
}

# The dracut modules of composefs-rs (composefs-setup-root.service) and
# bootc (bootc-root-setup.service): their units mount the root on the same
# karg at the same point of the boot as veriroot's, so an initramfs with
# both would have two units racing to replace /sysroot. Exactly one may
# mount the root: refuse to build such an initramfs, naming the fix.
# (In installkernel, whose failure is fatal to dracut; install's is not.)
OTHER_ROOT_MODULES='composefs bootc'
veriroot_refuse_other_root_modules() {
    local m
    for m in $OTHER_ROOT_MODULES; do
        if dracut_module_included "$m"; then
            derror "veriroot: refusing to build an initramfs with both veriroot and the '$m' dracut module: both would mount the composefs root; omit one (dracut --omit $m, or --omit veriroot, or add omit_dracutmodules+=\" $m \" to /etc/dracut.conf.d/)"
            return 1
        fi
    done
    return 0
}

# called by dracut
installkernel() {
    veriroot_refuse_other_root_modules || return 1
    instmods erofs overlay loop
    # The TPM drivers, so the measurement does not depend on host-only
    # detection (built in on most x86 kernels, modules on arm64).
    hostonly='' instmods -s tpm_tis tpm_tis_core tpm_crb
    # Loaded by systemd-modules-load before sysroot.mount, so that veriroot
    # does not wait for on-demand loading (measured: ~1 s under TCG), and
    # fs-verity, which binds its hash implementation at first use for the
    # whole boot, gets the SIMD one instead of sha256-generic. Only modules
    # this kernel has are listed: a missing one would fail the service.
    local m conf="$initdir/etc/modules-load.d/veriroot.conf"
    mkdir -p "${conf%/*}"
    : >"$conf"
    for m in erofs overlay sha256_ssse3 sha512_ssse3 sha2_ce sha512_ce; do
        # -c: fail for a module this kernel lacks (plain -s is optional
        # and succeeds for any name).
        if hostonly='' instmods -c -s "$m"; then
            echo "$m" >>"$conf"
        fi
    done
}

# called by dracut
install() {
    local bin
    # With --no-kernel installkernel is not called: at least install no
    # second root-mounting unit (dracut goes on without it).
    veriroot_refuse_other_root_modules || return 1
    bin=$(veriroot_binary) || return 1
    inst_binary "$bin" /usr/bin/veriroot
    inst_simple "$systemdsystemunitdir/veriroot-setup-root.service"
    $SYSTEMCTL -q --root "$initdir" add-wants initrd-root-fs.target veriroot-setup-root.service
    # veriroot's own configuration, and composefs-setup-root's (read too).
    [[ -e /etc/veriroot/veriroot.conf ]] && inst_simple /etc/veriroot/veriroot.conf
    [[ -e /usr/lib/composefs/setup-root-conf.toml ]] && inst_simple /usr/lib/composefs/setup-root-conf.toml
    # The keys [trust] signatures trusts (docs/formats.md, "Signed images"):
    # what veriroot reads there, *.pem and *.der; certificates only, never
    # a private key (veriroot refuses a PEM private key by name).
    local key
    for key in /etc/veriroot/keys/*.pem /etc/veriroot/keys/*.der; do
        [[ -f $key ]] && inst_simple "$key"
    done
    return 0
}
