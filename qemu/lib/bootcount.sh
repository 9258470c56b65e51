# shellcheck shell=bash
# systemd-boot's boot counting with veriroot (issue 16): the fallback-*
# scenarios. OVMF with Secure Boot (the test keys of qemu/lib/uki.sh) boots
# trixie's systemd-boot (the systemd-boot-efi package uki.sh already
# fetched, signed here with the test db key) from a real FAT ESP on a GPT
# disk image: systemd-boot renames a counted entry's file at each try, so
# QEMU's vvfat directory ESP of uki_boot would not do. UKIs are Type #2
# entries in \EFI\Linux\.
#
#   source "$QEMU_DIR/lib/debian.sh"; source "$QEMU_DIR/lib/uki.sh"
#   source "$QEMU_DIR/lib/bootcount.sh"
#   bootcount_esp OUT FILE:NAME...   a GPT disk image OUT with one EFI system
#                                    partition (FAT32, made with mkfs.vfat
#                                    --offset and mtools: no loop mount),
#                                    systemd-boot as \EFI\BOOT\BOOTX64.EFI, a
#                                    loader.conf, each FILE as \EFI\Linux\NAME
#   bootcount_run ESP LABEL          ONE QEMU run: the guest's reboots reset the
#                                    machine in the same run (the firmware and
#                                    systemd-boot run again, the ESP and the
#                                    TPM's process persist), until it powers
#                                    off; BOOT_N, BOOT_LOG, BOOT_RC as debian_boot
#   bootcount_split                  the last run's console cut at each
#                                    firmware boot (run-N.kernel-K.log) and its
#                                    VT-INITRD-PCR lines cut at each repeat
#                                    (run-N.pcrs-K); prints the two counts
#   bootcount_entries ESP            the file names in \EFI\Linux\ (mtools)
#   bootcount_expect_pcrs K ARGS...  the K-th boot's PCRs in the initrd = `veriroot predict ARGS`
#   bootcount_sysext_bless DIR       an extension with systemd-bless-boot
#
# Host packages: dosfstools, fdisk (sfdisk), mtools (qemu/install-deps).

BOOTCOUNT_ESP_MIB=${BOOTCOUNT_ESP_MIB:-256}
# The partition starts at 1 MiB (sector 2048): mtools reaches it there.
BOOTCOUNT_ESP_OFFSET=1048576
# Three Debian boots under OVMF in one run (two refused, one to poweroff).
BOOTCOUNT_TIMEOUT=${BOOTCOUNT_TIMEOUT:-1500}
BOOTCOUNT_ESP_TYPE=C12A7328-F81F-11D2-BA4B-00A0C93EC93B

# _bootcount_m CMD ARGS...: an mtools command on the ESP partition of $_BC_IMG.
_bootcount_m() {
	local cmd=$1
	shift
	MTOOLS_SKIP_CHECK=1 "$cmd" -i "$_BC_IMG@@$BOOTCOUNT_ESP_OFFSET" "$@"
}

bootcount_esp() {
	local out=$1 tmp=$1.tmp e file name sd_boot
	shift
	sd_boot=$UKI_TOOLS/usr/lib/systemd/boot/efi/systemd-bootx64.efi
	[ -f "$sd_boot" ] || { echo "bootcount: $sd_boot missing (uki_prepare ran?)"; return 1; }
	rm -f "$tmp" "$tmp.boot.efi"
	truncate -s "${BOOTCOUNT_ESP_MIB}M" "$tmp" || return 1
	printf 'label: gpt\nstart=2048, type=%s, name="vt-esp"\n' "$BOOTCOUNT_ESP_TYPE" |
		sfdisk -q "$tmp" >&2 || { echo "bootcount: sfdisk failed"; return 1; }
	# 1 MiB left at each end: the GPT and its backup.
	mkfs.vfat -F 32 -n VT-ESP --offset 2048 "$tmp" $(((BOOTCOUNT_ESP_MIB - 2) * 1024)) >&2 ||
		{ echo "bootcount: mkfs.vfat failed"; return 1; }
	sbsign --key "$UKI_WORK/keys/db.key" --cert "$UKI_WORK/keys/db.crt" --output "$tmp.boot.efi" "$sd_boot" >&2 ||
		{ echo "bootcount: signing systemd-boot failed"; return 1; }
	# No menu, no editor, only the entries put here (no firmware or
	# auto-detected ones): the default is the first entry in systemd-boot's
	# order, the newest, unless its tries are used up.
	printf 'timeout 0\neditor no\nauto-entries no\nauto-firmware no\n' >"$tmp.loader.conf"
	_BC_IMG=$tmp
	if ! { _bootcount_m mmd ::/EFI ::/EFI/BOOT ::/EFI/systemd ::/EFI/Linux ::/loader &&
		_bootcount_m mcopy "$tmp.boot.efi" ::/EFI/BOOT/BOOTX64.EFI &&
		_bootcount_m mcopy "$tmp.boot.efi" ::/EFI/systemd/systemd-bootx64.efi &&
		_bootcount_m mcopy "$tmp.loader.conf" ::/loader/loader.conf; }; then
		echo "bootcount: mtools failed"
		return 1
	fi
	for e in "$@"; do
		file=${e%%:*} name=${e#*:}
		_bootcount_m mcopy "$file" "::/EFI/Linux/$name" || { echo "bootcount: copying $name failed"; return 1; }
	done
	rm -f "$tmp.boot.efi" "$tmp.loader.conf"
	mv "$tmp" "$out"
	log "bootcount: $out: $(bootcount_entries "$out" | tr '\n' ' ')"
}

bootcount_entries() {
	_BC_IMG=$1 _bootcount_m mdir -b ::/EFI/Linux | sed 's|^.*/||'
}

bootcount_run() {
	local vars=$SCENARIO_DIR/vars.fd
	cp "$UKI_WORK/vars.fd" "$vars" || { echo "bootcount: copying $UKI_WORK/vars.fd failed"; return 1; }
	# After vm_boot's -no-reboot, which QEMU then ignores: a reset restarts
	# the firmware in the same run, as a machine's reboot does.
	# shellcheck disable=SC2034 # read by _debian_boot_with (dynamic scope)
	local DEBIAN_QEMU_ARGS=("${UKI_QEMU_ARGS[@]}" -action reboot=reset)
	DEBIAN_BOOT_TIMEOUT=$BOOTCOUNT_TIMEOUT _debian_boot_with "$2" --uefi "$UKI_OVMF_CODE" --uefi-vars "$vars" --esp "$1"
}

bootcount_split() {
	local base=$SCENARIO_DIR/run-$BOOT_N kernels groups
	rm -f "$base".kernel-* "$base".pcrs-*
	# The console up to the test channel's separator (debian_boot), cut
	# where the firmware starts the boot loader: systemd-stub's lines come
	# before the kernel's.
	kernels=$(awk -v base="$base" '
		/^===== test channel/ { exit }
		/^BdsDxe: starting Boot/ { n++ }
		n { print > (base ".kernel-" n ".log") }
		END { print n + 0 }' "$BOOT_LOG")
	# The hook prints every bank's PCRs 0-15 once per boot (a reboot may cut
	# it short): a bank and PCR seen again starts the next boot's group.
	groups=$(awk -v base="$base" '
		/^===== test channel/ { on = 1; next }
		on && /^VT-INITRD-PCR: / {
			k = $2 " " $3
			if (!n || (k in seen)) { n++; delete seen }
			seen[k] = 1
			print > (base ".pcrs-" n)
		}
		END { print n + 0 }' "$BOOT_LOG")
	echo "$kernels $groups"
}

# bootcount_expect_pcrs GROUP PREDICT_ARGS...: the GROUP-th boot's
# VT-INITRD-PCR lines (bootcount_split) equal `veriroot predict
# PREDICT_ARGS` in the banks printed (sysfs prints upper case); PCR 15 of
# sha256 at least must be there.
bootcount_expect_pcrs() {
	local file=$SCENARIO_DIR/run-$BOOT_N.pcrs-$1 banks want got
	shift
	banks=$(awk '$3 == 15 { print $2 }' "$file" 2>/dev/null | sort -u | paste -sd, -)
	case ",$banks," in
	*,sha256,*) ;;
	*) echo "run $BOOT_N, boot ${file##*-}: the initramfs hook printed no sha256 PCR 15 (banks: '$banks')" && return 1 ;;
	esac
	want=$(host_veriroot predict "$@" --banks "$banks" --json) ||
		{ echo "run $BOOT_N: veriroot predict $* --banks '$banks' failed (see harness.log)"; return 1; }
	awk '{ print "VT-PCR:", $2, $3, tolower($4) }' "$file" >"$file.lower"
	got=$(BOOT_LOG=$file.lower _pcrs_json "$want")
	[ "$got" = "$want" ] || { echo "run $BOOT_N, boot ${file##*-}: PCRs in the initrd $got, predicted $want"; return 1; }
}

# bootcount_sysext_bless DIR: a system extension holding trixie's
# systemd-bless-boot (its binary, generator and unit, from the systemd-boot
# package of the Debian tree's systemd version, downloaded once into
# $VERIROOT_CACHE/bootcount/ through uki.sh's private apt configuration).
# An extension rather than a package in the tree: the tree's package list
# is the key of the shared cached tarball. The package's other units
# (random seed, bootctl socket) need bootctl, which is not there: left out.
bootcount_sysext_bless() {
	local dir=$1 cache=$VERIROOT_CACHE/bootcount version deb f
	# awk reads to the end: had it exited at the match, tar could still be
	# writing, die of SIGPIPE, and under pipefail fail the whole pipeline
	# (fallback-blessed once failed so, silently, in a loaded CI run).
	version=$(tar -xOf "$DEBIAN_TARBALL" ./var/lib/dpkg/status |
		awk '/^Package: systemd$/ { p = 1 } p && !v && /^Version: / { v = $2 } END { print v }') ||
		{ echo "bootcount: reading systemd's version from $DEBIAN_TARBALL failed" >&2; return 1; }
	[ -n "$version" ] || { echo "bootcount: no systemd in $DEBIAN_TARBALL" >&2; return 1; }
	deb=$cache/systemd-boot_${version//:/%3a}_amd64.deb
	if [ ! -s "$deb" ]; then
		mkdir -p "$cache/tmp" && rm -f "$cache"/tmp/*.deb
		(cd "$cache/tmp" && _uki_apt download "systemd-boot=$version") >&2 ||
			{ echo "bootcount: downloading systemd-boot $version failed" >&2; return 1; }
		mv "$cache"/tmp/systemd-boot_*.deb "$deb" || return 1
	fi
	rm -rf "$dir" "$dir.deb"
	dpkg-deb -x "$deb" "$dir.deb" || return 1
	for f in usr/lib/systemd/systemd-bless-boot usr/lib/systemd/system-generators/systemd-bless-boot-generator \
		usr/lib/systemd/system/systemd-bless-boot.service; do
		install -D -m "$(stat -c %a "$dir.deb/$f")" "$dir.deb/$f" "$dir/$f" || return 1
	done
	rm -rf "$dir.deb"
	mkdir -p "$dir/usr/lib/extension-release.d"
	grep -E '^(ID|VERSION_ID)=' "$DEBIAN_BUILD/os-release" >"$dir/usr/lib/extension-release.d/extension-release.vt-bless-boot" ||
		return 1
	log "bootcount: extension vt-bless-boot from ${deb##*/}"
}
