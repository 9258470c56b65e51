#!/usr/bin/env bash
# shellcheck disable=SC2031 # DIGEST and PEER_INITRAMFS are set in main
# The systemd-initrd cost (issue 19): veriroot-setup-root.service against
# composefs-setup-root 0.9.4 (the peer, `cargo install`ed: qemu/lib/peer.sh)
# as the unit that mounts the composefs root, in the Debian trixie system
# test's dracut-built systemd initramfs (qemu/lib/debian.sh): the same
# kernel, the same Debian image (sha512, which the peer accepts on
# composefs=), the same disk, swtpm attached in every boot.
#
#   benches/systemd-initrd.sh            (or: make bench)
#   ROUNDS=1 benches/systemd-initrd.sh   one boot of each, to check it runs
#
# veriroot boots the system test's own initramfs (debian_boot's `default`
# variant). The peer boots a second one, built here (not in the shared
# build stages) by the same dracut in a scratch copy of the cached Debian
# tree, with --omit veriroot and a module that installs the peer's binary
# (inst_binary: its glibc libraries come from the tree) and a unit wired as
# composefs-rs's own dracut module wires it (After/Requires=sysroot.mount,
# Before=initrd-root-fs.target, ConditionKernelCommandLine=composefs,
# Type=oneshot). Everything else is the same as in veriroot's initramfs:
# the tss2 libraries, the test's emergency hook and its vt-initrd-pcrs
# unit, which reads the PCRs right after the root unit (ordered after the
# peer's unit here, as after veriroot's there).
#
# Boots alternate veriroot / peer, ROUNDS times. From each boot, the
# initrd's journal as the booted system prints it (qemu/guest/debian-check's
# `analyze` check: journalctl -o short-monotonic up to "Switching root";
# the initrd's units are gone after switch-root, so `systemctl show` has
# nothing to say about them):
#   unit      the root unit's "Starting" → "Finished" lines (fork, exec and
#             the whole run: verification, mounts and, for veriroot, the
#             TPM measurement)
#   sysroot   "Mounted sysroot.mount" → "Reached target initrd-root-fs.target"
#   initrd    systemd-analyze's "(initrd)" time (VT-INFO: Startup finished)
# Prints per-boot times, medians, ranges and the ratios veriroot/peer
# (the goal of issue 19: veriroot's unit ≤ 0.5× the peer's). Asserts no
# timing, but fails if a boot did not come up from the verified image
# through its own unit.
set -euo pipefail

cd "$(dirname "$0")/.."
QEMU_DIR=$PWD/qemu
VERIROOT_DIR=$PWD
export VERIROOT_DIR
# shellcheck source=qemu/lib/scenario.sh
source qemu/lib/scenario.sh
# shellcheck source=qemu/lib/peer.sh
source qemu/lib/peer.sh
# shellcheck source=qemu/lib/debian.sh
source qemu/lib/debian.sh

ROUNDS=${ROUNDS:-7}
OUT=$VERIROOT_DIR/target/bench/systemd-initrd
SCENARIO=bench-systemd-initrd
SCENARIO_DIR=$(vm_scenario_dir "$SCENARIO")
# Read by make_disk, as in initrd-tests/debian-boot.
ALGORITHM=sha512 DISK_SIZE=1G BOOT_TIMEOUT=600
NOVERITY=()
VERIROOT_UNIT=veriroot-setup-root.service
PEER_UNIT=composefs-setup-root.service
# What the booted system runs: / must be the verified image (check_root),
# and the initrd's journal is printed (check_analyze).
CHECKS='root analyze'

# prepare: make_disk's hook, as debian-boot's; the deployment's /etc state
# directory exists before the first boot, whichever tool boots first.
prepare() {
	debian_prepare || return 1
	mkdir -p "$DISK_TREE/state/deploy/$DIGEST/etc"
}

# _peer_module DIR: the peer's dracut module, as composefs-rs's
# 37composefs (examples/*/extra/usr/lib/dracut/modules.d/37composefs)
# installs it, with the unit wired the same way. Its Description names this
# bench: debian-check's `analyze` prints the initrd's lines matching
# "veriroot", "Finished" or "Reached target", and the unit's "Starting"
# line must be among them.
_peer_module() {
	mkdir -p "$1" || return 1
	cat >"$1/module-setup.sh" <<-'MODULE' || return 1
		#!/bin/bash
		# composefs-setup-root in a systemd initramfs (veriroot's
		# benches/systemd-initrd.sh; as composefs-rs's 37composefs).
		# shellcheck disable=SC2154
		check() { require_binaries /usr/local/bin/composefs-setup-root || return 1; return 0; }
		depends() { echo systemd; return 0; }
		installkernel() { instmods erofs overlay; }
		install() {
		    inst_binary /usr/local/bin/composefs-setup-root /usr/bin/composefs-setup-root
		    inst_simple "$moddir/composefs-setup-root.service" "$systemdsystemunitdir/composefs-setup-root.service"
		    $SYSTEMCTL -q --root "$initdir" add-wants initrd-root-fs.target composefs-setup-root.service
		}
	MODULE
	cat >"$1/composefs-setup-root.service" <<-'UNIT'
		[Unit]
		Description=composefs-setup-root (the peer in veriroot's systemd-initrd bench)
		DefaultDependencies=no
		ConditionKernelCommandLine=composefs
		ConditionPathExists=/etc/initrd-release
		Requires=sysroot.mount
		After=sysroot.mount
		Before=initrd-root-fs.target initrd-switch-root.target
		OnFailure=emergency.target
		OnFailureJobMode=isolate

		[Service]
		Type=oneshot
		RemainAfterExit=yes
		ExecStart=/usr/bin/composefs-setup-root
		StandardInput=null
		StandardOutput=journal+console
		StandardError=journal+console
	UNIT
}

# _peer_include TREE: the test's initramfs additions (qemu/lib/debian.sh's
# _debian_customize puts them in veriroot's), taken from veriroot's
# initramfs itself so they cannot drift, into TREE/var/tmp/vt-initrd;
# vt-initrd-pcrs runs after the peer's unit, as after veriroot's.
_peer_include() {
	local tree=$1 inc=$1/var/tmp/vt-initrd f
	cp "$DEBIAN_BUILD/initramfs-default.img" "$tree/var/tmp/vt-default.img" || return 1
	mkdir -p "$inc/etc/systemd/system/emergency.target.wants" \
		"$inc/etc/systemd/system/initrd-root-fs.target.wants" \
		"$inc/etc/systemd/system/vt-initrd-pcrs.service.d" "$inc/usr/bin" || return 1
	for f in etc/systemd/system/vt-emergency.service etc/systemd/system/vt-initrd-pcrs.service \
		usr/bin/vt-emergency usr/bin/vt-initrd-pcrs; do
		_debian_chroot "$tree" lsinitrd -f "$f" /var/tmp/vt-default.img >"$inc/$f" || return 1
		[ -s "$inc/$f" ] || {
			echo "systemd-initrd.sh: veriroot's initramfs has no $f" >&2
			return 1
		}
	done
	rm -f "$tree/var/tmp/vt-default.img"
	chmod 0755 "$inc/usr/bin/vt-emergency" "$inc/usr/bin/vt-initrd-pcrs"
	printf '[Unit]\nAfter=%s\n' "$PEER_UNIT" >"$inc/etc/systemd/system/vt-initrd-pcrs.service.d/bench-peer.conf"
	ln -sfn ../vt-emergency.service "$inc/etc/systemd/system/emergency.target.wants/vt-emergency.service"
	ln -sfn ../vt-initrd-pcrs.service "$inc/etc/systemd/system/initrd-root-fs.target.wants/vt-initrd-pcrs.service"
}

# peer_initramfs: sets PEER_INITRAMFS, the peer's initramfs for
# DEBIAN_BUILD's kernel (cached in WORK by the Debian build, the peer's
# binary and this script).
peer_initramfs() {
	local dir=$WORK/bench-systemd-initrd key tree kver img=/var/tmp/vt-peer.img want
	peer_build || return 1
	_debian_tarball_path
	key=$({
		printf '%s\n' "${DEBIAN_BUILD##*/}" "${DEBIAN_TARBALL##*/}" "$DEBIAN_INITRD_LIBS"
		cat "$PEER" "${BASH_SOURCE[0]}"
	} | sha256sum | cut -c1-16)
	PEER_INITRAMFS=$dir/initramfs-peer-$key.img
	if [ -s "$PEER_INITRAMFS" ]; then
		log "systemd-initrd: reusing $PEER_INITRAMFS"
		return 0
	fi
	tree=$dir/tree
	rm -rf "$dir" && mkdir -p "$tree" || return 1
	log "systemd-initrd: building the peer's initramfs in a copy of the $DEBIAN_SUITE tree"
	tar -C "$tree" --numeric-owner --xattrs --xattrs-include='*' -xpf "$DEBIAN_TARBALL" || return 1
	kver=$(cat "$DEBIAN_BUILD/kver")
	install -D -m 0755 "$PEER" "$tree/usr/local/bin/composefs-setup-root" &&
		_peer_module "$tree/usr/lib/dracut/modules.d/37composefs" &&
		_peer_include "$tree" || return 1
	if ! _debian_chroot "$tree" dracut --no-hostonly --force --kver "$kver" --omit veriroot --add composefs \
		--install "$DEBIAN_INITRD_LIBS" --include /var/tmp/vt-initrd / "$img" >"$dir/dracut.log" 2>&1; then
		tail -n 20 "$dir/dracut.log" >&2
		return 1
	fi
	_debian_chroot "$tree" lsinitrd "$img" >"$dir/lsinitrd" 2>&1 || return 1
	for want in ' usr/bin/composefs-setup-root$' " usr/lib/systemd/system/$PEER_UNIT\$" \
		" etc/systemd/system/initrd-root-fs.target.wants/$PEER_UNIT -> " \
		' etc/systemd/system/vt-initrd-pcrs.service.d/bench-peer.conf$' \
		' usr/lib/x86_64-linux-gnu/libtss2-esys.so.0 '; do
		grep -Eq -- "$want" "$dir/lsinitrd" || {
			echo "systemd-initrd.sh: the peer's initramfs lacks /$want/ (see $dir/lsinitrd)" >&2
			return 1
		}
	done
	# Fixed strings: a Debian kernel version has a "+".
	for want in erofs/erofs.ko overlayfs/overlay.ko; do
		grep -Fq -- "/$kver/kernel/fs/$want" "$dir/lsinitrd" || {
			echo "systemd-initrd.sh: the peer's initramfs lacks $want (see $dir/lsinitrd)" >&2
			return 1
		}
	done
	! grep -Eq ' usr/bin/veriroot$' "$dir/lsinitrd" || {
		echo "systemd-initrd.sh: the peer's initramfs has veriroot in it (see $dir/lsinitrd)" >&2
		return 1
	}
	mv "$tree$img" "$PEER_INITRAMFS"
	rm -rf "$tree"
	log "systemd-initrd: the peer's initramfs: $PEER_INITRAMFS ($(stat -c %s "$PEER_INITRAMFS") bytes," \
		"veriroot's $(stat -c %s "$DEBIAN_BUILD/initramfs-default.img"))"
}

# _journal_ts WHAT: the monotonic time (s) of the first initrd journal
# line of this boot whose message starts with WHAT.
_journal_ts() {
	grep -a -F "]: $1" "$BOOT_LOG" | sed -n 's/^VT-INITRD: \[ *\([0-9.]*\)\] .*/\1/p' | head -n 1
}

# _span_ms TEXT: a systemd time span ("1min 2.345s", "850ms") in ms.
_span_ms() {
	awk '{ t = 0
		for (i = 1; i <= NF; i++) {
			v = $i
			if (v ~ /min$/) { sub(/min$/, "", v); t += v * 60000 }
			else if (v ~ /ms$/) { sub(/ms$/, "", v); t += v }
			else if (v ~ /s$/) { sub(/s$/, "", v); t += v * 1000 }
		}
		printf "%.1f\n", t }' <<<"$1"
}

# one_boot TOOL N: one boot through TOOL's unit; records its three times.
one_boot() {
	local tool=$1 n=$2 unit other kargs start end mounted reached initrd u s i
	kargs="composefs=$DIGEST vt.checks=${CHECKS// /,}"
	if [ "$tool" = veriroot ]; then
		unit=$VERIROOT_UNIT other=$PEER_UNIT
		debian_boot default "$kargs"
	else
		unit=$PEER_UNIT other=$VERIROOT_UNIT
		_debian_boot_with peer --kernel "$DEBIAN_BUILD/vmlinuz" --initrd "$PEER_INITRAMFS" \
			--append "root=LABEL=$DEBIAN_ROOT_LABEL rw $kargs"
	fi
	cp "$BOOT_LOG" "$OUT/$tool-$n.log"
	_expect_checks "multi-user $CHECKS" >&2 || {
		echo "systemd-initrd.sh: boot $BOOT_N ($tool) failed (see $OUT/$tool-$n.log)" >&2
		return 1
	}
	start=$(_journal_ts "Starting $unit")
	end=$(_journal_ts "Finished $unit")
	mounted=$(_journal_ts 'Mounted sysroot.mount')
	reached=$(_journal_ts 'Reached target initrd-root-fs.target')
	initrd=$(grep -a -m1 '^VT-INFO: Startup finished' "$BOOT_LOG" | grep -o '[^+]*(initrd)' | sed 's/(initrd)//') || true
	if [ -z "$start" ] || [ -z "$end" ] || [ -z "$mounted" ] || [ -z "$reached" ] || [ -z "$initrd" ]; then
		echo "systemd-initrd.sh: boot $BOOT_N ($tool): missing journal lines or systemd-analyze time" \
			"(start '$start', end '$end', sysroot '$mounted', root-fs '$reached', initrd '$initrd'; see $OUT/$tool-$n.log)" >&2
		return 1
	fi
	# Exactly one root unit ran: the other tool is not in this initramfs.
	[ -z "$(_journal_ts "Starting $other")" ] || {
		echo "systemd-initrd.sh: boot $BOOT_N ($tool): $other ran too (see $OUT/$tool-$n.log)" >&2
		return 1
	}
	u=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
	s=$(awk -v a="$mounted" -v b="$reached" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
	i=$(_span_ms "$initrd")
	echo "$u" >>"$OUT/$tool.unit"
	echo "$s" >>"$OUT/$tool.sysroot"
	echo "$i" >>"$OUT/$tool.initrd"
	printf '| %s | %s | %s | %s | %s |\n' "$n" "$tool" "$u" "$s" "$i" >>"$OUT/boots.md"
	# veriroot's own stage line: "parse X ms, verify X ms, mount X ms, tpm X ms (...), total X ms"
	[ "$tool" != veriroot ] || grep -a -o 'timings: parse .*' "$BOOT_LOG" | tail -n 1 >>"$OUT/veriroot.stages" || true
	log "systemd-initrd: boot $BOOT_N, $tool, round $n: unit $u ms, sysroot.mount → initrd-root-fs.target $s ms, initrd $i ms"
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
range() { sort -n "$1" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# stage NAME: the median of one of veriroot's stages over its stage lines.
stage() { grep -o "$1 [0-9.]*" "$OUT/veriroot.stages" | awk '{ print $2 }' | median; }

main() {
	prepare_all
	debian_build
	peer_initramfs
	vm_scenario_reset "$SCENARIO"
	rm -rf "$OUT"
	mkdir -p "$OUT"
	: >"$OUT/boots.md"
	make_disk >&2
	local n
	for n in $(seq 1 "$ROUNDS"); do
		log "round $n of $ROUNDS"
		one_boot veriroot "$n"
		one_boot peer "$n"
	done
	local what label v p
	{
		echo "The unit that mounts the composefs root in the Debian $DEBIAN_SUITE systemd initramfs" \
			"(dracut, kernel $(cat "$DEBIAN_BUILD/kver"), sha512 image, swtpm), $ROUNDS boots each" \
			"(medians, ms, range; QEMU TCG):"
		echo
		echo "| from the initrd's journal | veriroot | composefs-setup-root $PEER_VERSION | veriroot/peer |"
		echo "|---|---|---|---|"
		for what in unit sysroot initrd; do
			case $what in
			unit) label='root unit, Starting → Finished' ;;
			sysroot) label='Mounted sysroot.mount → initrd-root-fs.target' ;;
			initrd) label='whole initrd (systemd-analyze)' ;;
			esac
			v=$(median <"$OUT/veriroot.$what")
			p=$(median <"$OUT/peer.$what")
			echo "| $label | $v ($(range "$OUT/veriroot.$what")) | $p ($(range "$OUT/peer.$what")) | $(ratio "$v" "$p") |"
		done
		echo
		if [ -s "$OUT/veriroot.stages" ]; then
			echo "veriroot's own stages (medians, ms): parse $(stage parse), verify $(stage verify)," \
				"mount $(stage mount), tpm $(stage tpm), total $(stage total)"
		fi
		v=$(median <"$OUT/veriroot.unit")
		p=$(median <"$OUT/peer.unit")
		echo "veriroot's unit, TPM measurement included = $(ratio "$v" "$p")x the peer's unit (goal <= 0.5)"
		echo
		echo "Per boot (ms):"
		echo
		echo "| round | tool | unit | sysroot → root-fs | initrd |"
		echo "|---|---|---|---|---|"
		cat "$OUT/boots.md"
	} | tee "$OUT/summary.md"
}

main "$@"
