# shellcheck shell=bash
# The measured boot chain of the uki-* scenarios: the Debian system of
# qemu/lib/debian.sh booted from a unified kernel image (UKI) under OVMF
# with Secure Boot and swtpm, firmware → signed UKI → systemd-stub (PCR 11)
# → dracut initramfs → veriroot (PCR 15) → the verified root.
#
#   source "$QEMU_DIR/lib/debian.sh"; source "$QEMU_DIR/lib/uki.sh"
#   uki_prepare                  tools, Secure Boot keys, enrolled variables
#   uki_make OUT "KARGS" [INITRD]
#                                UKI of the Debian kernel and initramfs (and
#                                the cpio INITRD appended to it) whose
#                                .cmdline is "root=LABEL=vt-root rw KARGS
#                                console=ttyS0 panic=-1 oops=panic", signed
#                                with the test db key (OUT.unsigned: before)
#   uki_make_signed OUT "KARGS"  uki_make, and a signed PCR 11 policy in it:
#                                the test PCR key's public half (.pcrpkey)
#                                and its signature of the UKI's PCR 11 at
#                                enter-initrd (.pcrsig), as `ukify
#                                --pcr-private-key` makes them
#   uki_boot UKI                 one boot from an ESP holding UKI as
#                                \EFI\BOOT\BOOTX64.EFI; as debian_boot
#   uki_pass UKI "CHECKS" [REGEX...]   / uki_refuse UKI REGEX...
#                                as debian_pass / debian_refuse
#   uki_firmware_refuses UKI     the firmware refuses to start it
#   uki_expect_pcrs PREFIX JSON  the "PREFIX: bank pcr hex" lines
#                                (VT-INITRD-PCR right after veriroot in the
#                                initrd; VT-PCR in the booted system or the
#                                emergency hook) equal JSON, in the banks JSON has
#   uki_check_systemd_measure UKI PHASE
#                                `veriroot predict --uki` agrees with
#                                systemd-measure (from the trixie tree) on the
#                                UKI's sections, in every bank
#
# Tools (fetched once into $VERIROOT_CACHE/uki/tools, keyed on nothing: delete
# the folder to refresh): trixie's systemd-ukify, systemd-boot-efi (the
# stub) and python3-pefile, downloaded with apt-get from the host's Debian
# mirror through a private apt configuration (the host's apt state is not
# touched) and unpacked; ukify runs with the host's /usr/bin/python3.
# Host packages (qemu/install-deps): ovmf, sbsigntool, openssl,
# python3-virt-firmware (virt-fw-vars, bookworm-backports).
#
# Knobs: UKI_BOOT_TIMEOUT (600 s), UKI_REFUSE_TIMEOUT (120 s), UKI_QEMU
# (extra QEMU options, default "-m 2048 -smp 1"), UKI_OVMF_CODE/UKI_OVMF_VARS.
#
# The signed PCR 11 policy: a test-only RSA 2048 key pair ($UKI_WORK/keys/
# pcr.key, pcr.pub); ukify signs with trixie's systemd-measure, run from
# the Debian tree's files with that tree's own dynamic loader (the host's
# glibc is older), through a wrapper in $UKI_WORK/measure-tool.
#
# Secure Boot: test-only PK, KEK and db keys (openssl, RSA 2048) made once
# per work directory; virt-fw-vars enrolls them (no Microsoft keys) into a
# copy of OVMF_VARS_4M.fd with Secure Boot enabled; each boot gets a fresh
# copy. OVMF_CODE_4M.secboot.fd needs q35 with SMM and secure pflash.

UKI_SUITE=trixie
UKI_TOOL_PACKAGES=(systemd-ukify systemd-boot-efi python3-pefile)
UKI_CACHE=$VERIROOT_CACHE/uki
UKI_TOOLS=$UKI_CACHE/tools
UKI_WORK=$WORK/uki
UKI_OVMF_CODE=${UKI_OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.secboot.fd}
UKI_OVMF_VARS=${UKI_OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}
# How long to wait for firmware that refuses an image: it then sits in its
# boot menu; ~20 s reach it under TCG.
UKI_REFUSE_TIMEOUT=${UKI_REFUSE_TIMEOUT:-120}
UKI_CONSOLE='console=ttyS0 panic=-1 oops=panic'
# OVMF + the Debian system under TCG took 220 s to power off on a busy host.
UKI_BOOT_TIMEOUT=${UKI_BOOT_TIMEOUT:-600}
# uki_make's extra ukify options (uki_make_signed's).
_UKI_SIGN=()
# One vCPU: with two, a UEFI (q35, SMM) guest on a loaded host once hung in
# early boot with RCU stalls on its second CPU (no timer interrupts).
read -ra UKI_QEMU_ARGS <<<"${UKI_QEMU:--m 2048 -smp 1}"

# _uki_apt ARGS...: apt-get with a private configuration for $UKI_SUITE.
_uki_apt() {
	local d=$UKI_CACHE/apt
	"${_UKI_APT_CMD:-apt-get}" -q -o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
		-o Dir::State::Lists="$d/lists" -o Dir::Cache="$d/cache" -o Dir::State::status=/dev/null \
		-o APT::Sandbox::User=root -o Debug::NoLocking=1 "$@"
}

# _uki_tools_fetch: download and unpack the tools into UKI_TOOLS (atomically).
_uki_tools_fetch() {
	local d=$UKI_CACHE/apt mirror tmp deb
	mirror=$(_debian_mirror) || return 1
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
	printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
		"$mirror" "$UKI_SUITE" >"$d/sources.list"
	log "uki: fetching ${UKI_TOOL_PACKAGES[*]} from $UKI_SUITE ($mirror)"
	_uki_apt update >&2 || return 1
	tmp=$(mktemp -d "$UKI_CACHE/.tools.XXXXXX")
	if ! (cd "$tmp" && _uki_apt download "${UKI_TOOL_PACKAGES[@]}" >&2); then
		rm -rf "$tmp"
		return 1
	fi
	for deb in "$tmp"/*.deb; do
		dpkg-deb -x "$deb" "$tmp/root" || { rm -rf "$tmp"; return 1; }
		basename "$deb" >>"$tmp/root/.packages"
	done
	rm -rf "$UKI_TOOLS"
	mv "$tmp/root" "$UKI_TOOLS"
	rm -rf "$tmp"
}

# ukify ARGS...: trixie's ukify with its unpacked pefile, the host's python.
ukify() {
	PYTHONPATH=$UKI_TOOLS/usr/lib/python3/dist-packages /usr/bin/python3 "$UKI_TOOLS/usr/bin/ukify" "$@"
}

# _uki_keys DIR: test PK, KEK, db (DIR/NAME.key, DIR/NAME.crt, PEM).
_uki_keys() {
	local dir=$1 k
	mkdir -p "$dir"
	for k in PK KEK db; do
		[ -s "$dir/$k.crt" ] && continue
		openssl req -quiet -new -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
			-subj "/CN=veriroot test $k/" -keyout "$dir/$k.key" -out "$dir/$k.crt" 2>/dev/null || return 1
	done
}

# _uki_pcr_key DIR: the PCR policy signing key (DIR/pcr.key, DIR/pcr.pub).
_uki_pcr_key() {
	[ -s "$1/pcr.pub" ] && return 0
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1/pcr.key" 2>/dev/null &&
		openssl pkey -in "$1/pcr.key" -pubout -out "$1/pcr.pub"
}

# _uki_measure_tool: $UKI_WORK/measure-tool/systemd-measure, a wrapper
# running the Debian tree's systemd-measure (unpacked once beside it).
_uki_measure_tool() {
	local dir=$UKI_WORK/measure-tool lib
	[ -x "$dir/systemd-measure" ] && return 0
	_debian_tarball_path
	rm -rf "$dir" && mkdir -p "$dir/tree" || return 1
	tar -C "$dir/tree" -xf "$DEBIAN_TARBALL" ./usr/lib/x86_64-linux-gnu ./usr/lib/systemd/systemd-measure || return 1
	lib=$dir/tree/usr/lib/x86_64-linux-gnu
	printf '#!/bin/sh
exec %s/ld-linux-x86-64.so.2 --library-path %s:%s/systemd %s/tree/usr/lib/systemd/systemd-measure "$@"
' \
		"$lib" "$lib" "$lib" "$dir" >"$dir/systemd-measure.tmp" && chmod +x "$dir/systemd-measure.tmp" &&
		mv "$dir/systemd-measure.tmp" "$dir/systemd-measure"
}

# _uki_vars OUT: OVMF's variable store with the test keys, Secure Boot on.
_uki_vars() {
	local owner=5f7d3c8e-7a4c-4c1e-9d0b-766572696f6f # any GUID names the owner
	virt-fw-vars --input "$UKI_OVMF_VARS" --output "$1.tmp" --no-microsoft --secure-boot \
		--set-pk "$owner" "$UKI_WORK/keys/PK.crt" --add-kek "$owner" "$UKI_WORK/keys/KEK.crt" \
		--add-db "$owner" "$UKI_WORK/keys/db.crt" >"$1.log" 2>&1 || {
		cat "$1.log" >&2
		return 1
	}
	mv "$1.tmp" "$1"
}

# uki_prepare: one scenario at a time (scenarios may run in parallel, -j:
# the tools, keys and variables are shared by the guest's uki-* scenarios).
uki_prepare() {
	local lock rc=0
	mkdir -p "$UKI_CACHE" "$UKI_WORK" || return 1
	exec {lock}>"$UKI_WORK/.lock"
	flock "$lock"
	_uki_prepare_locked || rc=$?
	exec {lock}>&-
	return "$rc"
}

_uki_prepare_locked() {
	local f
	for f in "$UKI_OVMF_CODE" "$UKI_OVMF_VARS"; do
		[ -f "$f" ] || { echo "uki: $f missing (apt-get install ovmf; qemu/install-deps)"; return 1; }
	done
	for f in sbsign sbverify virt-fw-vars objcopy; do
		command -v "$f" >/dev/null || { echo "uki: $f missing (qemu/install-deps)"; return 1; }
	done
	if [ ! -x "$UKI_TOOLS/usr/bin/ukify" ]; then
		_uki_tools_fetch || { echo "uki: fetching ukify and the stub failed (see harness.log)"; return 1; }
	fi
	log "uki: tools $(tr '\n' ' ' <"$UKI_TOOLS/.packages")"
	if ! { _uki_keys "$UKI_WORK/keys" && _uki_pcr_key "$UKI_WORK/keys"; }; then
		echo "uki: making the test keys failed"
		return 1
	fi
	_uki_measure_tool || { echo "uki: unpacking systemd-measure from the Debian tree failed"; return 1; }
	[ -s "$UKI_WORK/vars.fd" ] || _uki_vars "$UKI_WORK/vars.fd" ||
		{ echo "uki: enrolling the keys with virt-fw-vars failed (see harness.log)"; return 1; }
}

# uki_make OUT "KARGS" [INITRD]: needs DEBIAN_BUILD (debian_prepare ran).
# INITRD: a cpio ukify appends to the default initramfs in the .initrd
# section (the kernel unpacks both; a later file replaces an earlier one).
uki_make() {
	local out=$1 kargs=$2 extra=("${_UKI_SIGN[@]}")
	[ -z "${3:-}" ] || extra+=(--initrd="$3")
	ukify build --linux="$DEBIAN_BUILD/vmlinuz" --initrd="$DEBIAN_BUILD/initramfs-default.img" "${extra[@]}" \
		--uname="$(cat "$DEBIAN_BUILD/kver")" --os-release=@"$DEBIAN_BUILD/os-release" \
		--stub="$UKI_TOOLS/usr/lib/systemd/boot/efi/linuxx64.efi.stub" \
		--cmdline="root=LABEL=$DEBIAN_ROOT_LABEL rw $kargs $UKI_CONSOLE" \
		--output="$out.unsigned" >&2 || { echo "ukify failed (see harness.log)"; return 1; }
	sbsign --key "$UKI_WORK/keys/db.key" --cert "$UKI_WORK/keys/db.crt" --output "$out" "$out.unsigned" >&2 ||
		{ echo "sbsign failed (see harness.log)"; return 1; }
	log "uki: $out: $(stat -c %s "$out") bytes, $(host_veriroot predict --uki "$out" --failure --banks sha256 |
		grep -c 'UKI section') sections measured"
}

# uki_make_signed OUT "KARGS": systemd-cryptenroll --tpm2-public-key-pcrs=11
# with that key admits any UKI it signed, at the phase signed (only
# enter-initrd: a secret bound so is out of reach once the initrd is left).
uki_make_signed() {
	local _UKI_SIGN=(--tools="$UKI_WORK/measure-tool" --pcr-private-key="$UKI_WORK/keys/pcr.key"
		--pcr-public-key="$UKI_WORK/keys/pcr.pub" --phases=enter-initrd --pcr-banks=sha256)
	uki_make "$@"
}

# uki_boot UKI: as debian_boot, but the firmware boots UKI.
uki_boot() {
	local esp=$SCENARIO_DIR/esp vars=$SCENARIO_DIR/vars.fd
	rm -rf "$esp"
	mkdir -p "$esp/EFI/BOOT"
	cp "$1" "$esp/EFI/BOOT/BOOTX64.EFI"
	cp "$UKI_WORK/vars.fd" "$vars"
	# shellcheck disable=SC2034 # read by _debian_boot_with (dynamic scope)
	local DEBIAN_QEMU_ARGS=("${UKI_QEMU_ARGS[@]}")
	DEBIAN_BOOT_TIMEOUT=${_UKI_TIMEOUT:-$UKI_BOOT_TIMEOUT} _debian_boot_with "uki ${1##*/}" --uefi "$UKI_OVMF_CODE" --uefi-vars "$vars" --esp "$esp"
}

uki_pass() {
	local uki=$1 checks=$2
	shift 2
	uki_boot "$uki"
	_expect_checks "multi-user $checks" && _expect_lines "$@"
}

uki_refuse() {
	local uki=$1
	shift
	uki_boot "$uki"
	[ "$BOOT_RC" -eq 0 ] || { echo "boot $BOOT_N: vm_boot returned $BOOT_RC (expected the emergency hook's power-off)"; return 1; }
	! grep -aq 'VT: START' "$BOOT_LOG" || { echo "boot $BOOT_N: the Debian system came up, expected a refusal"; return 1; }
	_expect_lines 'VT-EMERGENCY: START' 'VT-EMERGENCY: DONE' 'veriroot: refusing to boot' "$@"
}

# uki_firmware_refuses UKI: OVMF's boot manager refuses the image (Secure
# Boot: "Access Denied") and no kernel starts; the firmware then waits in
# its menu, so the boot ends by the timeout.
uki_firmware_refuses() {
	_UKI_TIMEOUT=$UKI_REFUSE_TIMEOUT uki_boot "$1"
	[ "$BOOT_RC" -eq 124 ] || { echo "boot $BOOT_N: vm_boot returned $BOOT_RC, expected the firmware to stop (timeout)"; return 1; }
	_expect_lines 'BdsDxe: failed to load Boot[0-9A-F]+ .*Access Denied' || return 1
	! grep -aEq 'EFI stub:|Linux version' "$BOOT_LOG" ||
		{ echo "boot $BOOT_N: a kernel started: $(grep -aE -m1 'EFI stub:|Linux version' "$BOOT_LOG")"; return 1; }
}

# uki_expect_pcrs PREFIX EXPECTED_JSON: the last boot's "PREFIX bank pcr
# hex" lines, for the PCRs and banks of EXPECTED_JSON, equal it.
uki_expect_pcrs() {
	local prefix=$1 expected=$2 lines=$SCENARIO_DIR/boot-$BOOT_N.pcrs got bank
	grep -a "^$prefix: " "$BOOT_LOG" | awk '{ print "VT-PCR:", $2, $3, tolower($4) }' >"$lines.all"
	: >"$lines"
	for bank in $(grep -o '"sha[0-9]*":' <<<"$expected" | tr -d '":'); do
		grep "^VT-PCR: $bank " "$lines.all" >>"$lines" || true
	done
	[ -s "$lines" ] || { echo "boot $BOOT_N: no '$prefix' lines for the banks of $expected"; return 1; }
	got=$(BOOT_LOG=$lines _pcrs_json "$expected")
	[ "$got" = "$expected" ] || { echo "boot $BOOT_N: $prefix TPM PCRs $got, predicted $expected"; return 1; }
}

# uki_banks PREFIX: the banks the guest printed (OVMF may change the
# TPM's allocation), comma-separated for `veriroot predict --banks`.
uki_banks() {
	grep -a "^$1: " "$BOOT_LOG" | awk '{ print $2 }' | sort -u | paste -sd, -
}

# uki_check_systemd_measure UKI PHASE: the sections are cut out of UKI with
# objcopy and given to systemd 257's systemd-measure (in a chroot of the
# cached trixie tree, unpacked once into $UKI_WORK/measure-tree).
uki_check_systemd_measure() {
	# The sections in a folder of this scenario's own (scenarios run in parallel).
	local uki=$1 phase=$2 tree=$UKI_WORK/measure-tree dir=/var/tmp/vt-sections-$SCENARIO args=() s bank ours theirs
	local lock
	_debian_tarball_path
	exec {lock}>"$UKI_WORK/.measure-tree.lock"
	flock "$lock"
	if [ ! -x "$tree/usr/lib/systemd/systemd-measure" ]; then
		rm -rf "$tree.tmp"
		mkdir -p "$tree.tmp"
		if ! tar -C "$tree.tmp" --numeric-owner -xpf "$DEBIAN_TARBALL"; then
			exec {lock}>&-
			echo "uki: unpacking $DEBIAN_TARBALL failed"
			return 1
		fi
		mv "$tree.tmp" "$tree"
	fi
	exec {lock}>&-
	rm -rf "${tree:?}$dir" && mkdir -p "$tree$dir"
	for s in linux osrel cmdline initrd ucode splash dtb uname sbat pcrpkey; do
		objcopy -O binary --only-section=".$s" "$uki" "$tree$dir/$s" 2>/dev/null || continue
		[ -s "$tree$dir/$s" ] && args+=("--$s=$dir/$s")
	done
	for bank in sha1 sha256 sha384 sha512; do
		theirs=$(chroot "$tree" /usr/lib/systemd/systemd-measure calculate "${args[@]}" --bank="$bank" \
			--phase="$phase" | grep -o '^11:[a-z0-9]*=[0-9a-f]*' | cut -d= -f2) ||
			{ echo "systemd-measure failed"; return 1; }
		ours=$(host_veriroot predict --uki "$uki" --phase "$phase" --banks "$bank" --failure | awk '$2 == 11 { print $4 }')
		if [ -z "$theirs" ] || [ "$ours" != "$theirs" ]; then
			echo "PCR 11 $bank phase '$phase': veriroot predicts '$ours', systemd-measure '$theirs'"
			return 1
		fi
		log "uki: PCR 11 $bank ($phase): veriroot and systemd-measure agree: $ours"
	done
	rm -rf "${tree:?}$dir"
}
