# shellcheck shell=bash
# cfsctl, composefs-rs's own command-line tool, built from the crate
# registry, writing test repositories the way a user would: `cfsctl init`,
# `cfsctl create-image --bootable`, and the kernel argument from `cfsctl
# compute-karg`. Used by the cfsctl-boot scenario. Needs
# qemu/lib/scenario.sh (log, VERIROOT_CACHE).
#
#   cfsctl_build                cargo install, once (cached by version)
#   cfsctl_repo ALG REPO SRC OUT
#                               REPO (new) holds SRC as a bootable image,
#                               written by cfsctl; OUT.karg is the kernel
#                               argument cfsctl computed, OUT.id what
#                               create-image printed; fails if they name
#                               different digests
#   cfsctl_karg_digest KARG     the hex digest of a composefs.digest= or
#                               composefs= karg

# The version, in this one place. cfsctl is published as the crate
# `composefs-ctl` (binary `cfsctl`); the crate named `cfsctl` stopped at
# 0.3.0 (composefs 0.3). 0.9.4 is the newest release, the same one as the
# composefs crate tools/mkimage links and composefs-setup-root (the peer,
# qemu/lib/peer.sh), so a difference between them is the tool's, not the
# library's. bootc takes composefs-ctl from composefs-rs's git, not from
# the registry. Needs Rust 1.88.
CFSCTL_VERSION=0.9.4
CFSCTL=$VERIROOT_CACHE/cfsctl/composefs-ctl-$CFSCTL_VERSION-debug/bin/cfsctl

# Only the directory-tree commands are needed: the default features' OCI,
# containers-storage, ostree and FUSE back ends stay out (they add ~200
# crates); `pre-6.15` (default) is kept. The image writer is the same code
# either way (the composefs crate). The glibc build, with the system's
# OpenSSL (libssl-dev, pkg-config: qemu/install-deps). Unoptimised
# (--debug): the bytes it writes are the same, its speed on a test tree
# does not matter, and it costs half the CPU to build (2 min 55 s of CPU
# against 5 min 42 s for the release build, measured 2026-12-06), which
# in CI is time taken from the scenarios running beside it.
cfsctl_build() {
	[ -x "$CFSCTL" ] && return 0
	log "building cfsctl (composefs-ctl $CFSCTL_VERSION, unoptimised) with cargo install (a few minutes)"
	nice cargo install --quiet --locked --debug composefs-ctl --version "$CFSCTL_VERSION" \
		--no-default-features --features pre-6.15 --root "${CFSCTL%/bin/*}"
}

cfsctl_repo() {
	local alg=$1 repo=$2 src=$3 out=$4 id karg
	cfsctl_build || return 1
	rm -rf "$repo"
	# --insecure: this host's kernel has no fs-verity (the provisioning
	# boot enables it, meta.json included, as `veriroot enable-verity`
	# would on a real machine).
	"$CFSCTL" init --algorithm "fsverity-$alg-12" --insecure "$repo" >"$out.init" || return 1
	"$CFSCTL" --repo "$repo" create-image --bootable "$src" vt-cfsctl >"$out.id" || return 1
	"$CFSCTL" --repo "$repo" compute-karg "$src" >"$out.karg" || return 1
	id=$(cat "$out.id")
	karg=$(cat "$out.karg")
	[ "$id" = "$alg:$(cfsctl_karg_digest "$karg")" ] || {
		echo "cfsctl: create-image printed '$id', compute-karg '$karg'" >&2
		return 1
	}
}

cfsctl_karg_digest() { printf '%s\n' "${1##*[:=]}"; }
