# shellcheck shell=bash
# Scenario machinery shared by run-scenarios and demo: builds, the test
# images, the disk of a scenario, and the boot_* verbs scenario files use.
# Needs VERIROOT_DIR, QEMU_DIR, TESTS_DIR; sources the other libs.

# shellcheck source=qemu/lib/initrd.sh
source "$QEMU_DIR/lib/initrd.sh"
# shellcheck source=qemu/lib/vm.sh
source "$QEMU_DIR/lib/vm.sh"
# shellcheck source=qemu/lib/testimage.sh
source "$QEMU_DIR/lib/testimage.sh"
# shellcheck source=qemu/lib/disk.sh
source "$QEMU_DIR/lib/disk.sh"

BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}
# Where the scenarios' folders go (VERIROOT_SCENARIOS; default target/scenarios).
SCENARIOS_ROOT=${VERIROOT_SCENARIOS:-$VERIROOT_DIR/target/scenarios}
# host_veriroot's binary: the host's own (predictions and log replays are
# architecture-independent, so an aarch64 guest is checked by it too).
HOST_VERIROOT_BIN=$VERIROOT_DIR/target/$(uname -m)-unknown-linux-musl/release/veriroot

# scenario_select ARCH [KERNEL]: select the guest architecture
# (qemu/lib/arch.sh) and kernel (qemu/lib/kernel.sh: stable, the default,
# or current), and the paths that depend on them (_scenario_paths).
scenario_select() {
	arch_select "$1" || return 1
	kernel_select "${2:-stable}" || return 1
	_scenario_paths
}

# scenario_arch ARCH: scenario_select ARCH with the kernel already chosen.
scenario_arch() { scenario_select "$1" "${KERNEL_CHOICE:-stable}"; }

# _scenario_paths: GUEST_PREFIX, what NAMEs and log folders start with
# ("" for x86_64 with the stable kernel, "aarch64/", "k7.2/",
# "aarch64/k7.2/": the kernel's k<major>.<minor> once resolved, its choice's
# name before); WORK (the initrds and test images, built by prepare_all);
# VERIROOT_BIN (the guest's static initrd build, which every initrd boots:
# docs/design.md, "Two builds"); VERIROOT_FULL_BIN (the guest's full build,
# for the host commands the test initrds run: enable-verity, check, log);
# MODULES (what the initrds
# load; prepare_all adds the SIMD SHA-2 modules the kernel has).
# x86_64 with the stable kernel keeps the paths it always had.
# VERIROOT_EXTRA_MODULES: more module names the initrds must carry (the
# harness's own check of its failure report gives one that does not exist).
_scenario_paths() {
	GUEST_PREFIX=''
	[ "$VM_ARCH" = x86_64 ] || GUEST_PREFIX=$VM_ARCH/
	[ "$KERNEL_CHOICE" = stable ] || GUEST_PREFIX+=${KERNEL_LABEL:-$KERNEL_CHOICE}/
	WORK=$SCENARIOS_ROOT/${GUEST_PREFIX}.work
	VERIROOT_BIN=$VERIROOT_DIR/target/$RUST_TARGET/initrd/veriroot-initrd
	VERIROOT_FULL_BIN=$VERIROOT_DIR/target/$RUST_TARGET/release/veriroot
	MODULES="erofs overlay loop virtio_blk${ARCH_MODULES:+ $ARCH_MODULES}"
	MODULES+="${VERIROOT_EXTRA_MODULES:+ $VERIROOT_EXTRA_MODULES}"
}
scenario_select "$VM_ARCH" "$KERNEL_CHOICE"

# _scenario_hash_modules: add to MODULES the SIMD SHA-2 modules this kernel
# has (HASH_MODULES: those; the others are logged as absent).
_scenario_hash_modules() {
	local m
	HASH_MODULES=''
	for m in $ARCH_HASH_MODULES; do
		if kernel_has_module "$m"; then
			HASH_MODULES+="${HASH_MODULES:+ }$m"
		else
			log "kernel $KERNEL_VERSION has no $m: not in the initrds"
		fi
	done
	MODULES+="${HASH_MODULES:+ $HASH_MODULES}"
}

log() { echo "veriroot harness: $*" >&2; }

build() {
	log "building veriroot (static, full and initrd builds for $RUST_TARGET, the host's full one) and veriroot-mkimage"
	(cd "$VERIROOT_DIR" &&
		cargo build --quiet --release --target "$RUST_TARGET" -p veriroot --bin veriroot &&
		tools/build-initrd "$RUST_TARGET" --quiet &&
		{ [ "$HOST_VERIROOT_BIN" = "$VERIROOT_FULL_BIN" ] ||
			cargo build --quiet --release --target "$(uname -m)-unknown-linux-musl" -p veriroot --bin veriroot; } &&
		cargo build --quiet --release -p veriroot-mkimage)
}

# The three initrds: veriroot's initrd build as /init; busybox + the
# initrd build's setup-root (and the full build, for the test's own check
# and log); the provisioning one that enables fs-verity (full build).
build_initrds() {
	local modules=(--modules "$MODULES")
	local shell=(--add "$BUSYBOX:/bin/busybox" --symlink busybox:/bin/sh)
	initrd_build "$WORK/initrd-veriroot.img" "$VERIROOT_BIN" "${modules[@]}" &&
		initrd_build "$WORK/initrd-setup-root.img" "$QEMU_DIR/guest/setup-root-init" "${modules[@]}" "${shell[@]}" \
			--add "$VERIROOT_BIN:/bin/veriroot" --add "$VERIROOT_FULL_BIN:/bin/veriroot-full" \
			--add "$QEMU_DIR/guest/tpm-dump:/bin/vt-tpm-dump" &&
		initrd_build "$WORK/initrd-provision.img" "$QEMU_DIR/guest/provision-init" "${modules[@]}" "${shell[@]}" \
			--add "$VERIROOT_FULL_BIN:/bin/veriroot"
}

# One repository per algorithm, from the same tree. The shared disks made
# of the last ones (qemu/lib/disk.sh) go with them.
build_images() {
	rm -rf "$WORK"/disks/plain-*
	testimage_tree "$WORK/tree" "$BUSYBOX" || return 1
	local alg
	for alg in sha256 sha512; do
		rm -rf "$WORK/repo-$alg"
		testimage_repo "$alg" "$WORK/repo-$alg" "$WORK/tree" >"$WORK/digest-$alg" || return 1
	done
}

# --- helpers for scenario files ---------------------------------------------

object_of() { testimage_object "$REPO" "$ALGORITHM" "$1"; }

flip_byte() {
	local file=$1 offset=$2 byte
	byte=$(od -An -tu1 -j "$offset" -N1 "$file" | tr -d ' ')
	# shellcheck disable=SC2059
	printf "\\$(printf '%03o' $((byte ^ 0xff)))" |
		dd of="$file" bs=1 seek="$offset" conv=notrunc status=none
}

# mkimage SRC: commit another tree into the scenario's repository.
mkimage() { testimage_repo "$ALGORITHM" "$REPO" "$1"; }

# sysext_tree DIR NAME RELEASE: a system extension's tree with only its
# usr/lib/extension-release.d/extension-release.NAME (RELEASE, the file's
# lines); the caller adds the files it provides, then runs mkimage DIR.
sysext_tree() {
	local dir=$1 name=$2 release=$3
	rm -rf "$dir"
	mkdir -p "$dir/usr/lib/extension-release.d"
	printf '%s\n' "$release" >"$dir/usr/lib/extension-release.d/extension-release.$name"
}

# sysext_test_pair TOOLS OPT: the two extensions the guest's `sysext`
# check expects: vt-tools (a tool in /usr/bin, a file stored as an
# object, who=vt-tools) and vt-opt (/opt/vt-extra/hello.txt, who=vt-opt),
# meant to be stacked with vt-opt above vt-tools.
sysext_test_pair() {
	local t=$1 o=$2
	sysext_tree "$t" vt-tools $'ID=veriroot-test\nVERSION_ID=1\nARCHITECTURE=x86-64'
	mkdir -p "$t/usr/bin" "$t/usr/share/vt-sysext"
	printf '#!/bin/sh\necho vt-sysext-tool works\n' >"$t/usr/bin/vt-sysext-tool"
	chmod 0755 "$t/usr/bin/vt-sysext-tool"
	echo vt-tools >"$t/usr/share/vt-sysext/who"
	# Above the inline limit: an object in the store, read with verity.
	head -c 65536 <(seq 50000 90000) >"$t/usr/share/vt-sysext/big.bin"
	(cd "$t" && sha256sum usr/share/vt-sysext/big.bin usr/bin/vt-sysext-tool >usr/share/vt-sysext/SHA256SUMS)
	sysext_tree "$o" vt-opt 'ID=_any'
	mkdir -p "$o/opt/vt-extra" "$o/usr/share/vt-sysext"
	echo "hello from /opt" >"$o/opt/vt-extra/hello.txt"
	echo vt-opt >"$o/usr/share/vt-sysext/who"
}

# root_with_list DIR DIGEST...: the test tree plus the extension list
# usr/lib/veriroot/extensions naming DIGEST..., committed; prints its digest.
root_with_list() {
	local dir=$1
	shift
	rm -rf "$dir"
	cp -a "$TREE" "$dir"
	mkdir -p "$dir/usr/lib/veriroot"
	{
		echo "# system extensions of this image, lowest first"
		printf '%s\n' "$@"
	} >"$dir/usr/lib/veriroot/extensions"
	mkimage "$dir"
}

# swap_image: images/$DIGEST now resolves to another image (the test tree
# with one file changed), committed to the same repository; prints that
# image's digest.
swap_image() {
	local other=$SCENARIO_DIR/other-tree digest
	rm -rf "$other"
	cp -a "$TREE" "$other"
	echo "a different image" >"$other/usr/share/veriroot-test/small.txt"
	digest=$(mkimage "$other")
	ln -sfn "$(readlink "$REPO/images/$digest")" "$REPO/images/$DIGEST"
	echo "$digest"
}

# blkdebug_eio FILE...: print a blkdebug configuration (for BLKDEBUG,
# vm_boot --blkdebug) whose reads of the data blocks of each FILE (below
# its size; paths on the scenario's disk, read by debugfs after
# provisioning) fail with EIO. One rule per 4 KiB block, on its first
# 512-byte sector: the guest reads whole blocks, so any read of the block
# covers it. Holes have no blocks and get no rule.
blkdebug_eio() {
	local f size out disk=$SCENARIO_DIR/disk.img
	for f in "$@"; do
		size=$(debugfs -R "stat $f" "$disk" 2>/dev/null | sed -n 's/.*Size: \([0-9]*\).*/\1/p' | head -n 1)
		[ -n "$size" ] || { echo "debugfs: no size for $f" >&2; return 1; }
		# Leaf extents (level = depth): logical first - last, physical first.
		out=$(debugfs -R "ex $f" "$disk" 2>/dev/null | awk -v n=$(((size + 4095) / 4096)) '
			$1 ~ /^[0-9]+\/$/ && $1 + 0 == $2 + 0 {
				for (l = $5; l <= $7 && l < n; l++)
					printf "[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\nsector = \"%d\"\n\n", ($8 + l - $5) * 8
			}')
		[ -n "$out" ] || { echo "debugfs: no data blocks in $f" >&2; return 1; }
		printf '%s\n\n' "$out"
	done
}

# blkdebug_seen CONF: the last boot's kernel logged an I/O error on a
# sector CONF fails (the fault was injected, not just configured).
blkdebug_seen() {
	local s
	while read -r s; do
		grep -aq "I/O error, dev vda, sector $s " "$BOOT_LOG" && return 0
	done < <(sed -n 's/^sector = "\([0-9]*\)"/\1/p' "$1")
	echo "boot $BOOT_N: no I/O error logged on a sector of $(basename "$1")"
	return 1
}

# on_disk HOST_PATH: the path on the scenario's disk of a file in $DISK_TREE.
on_disk() { echo "/${1#"$DISK_TREE"/}"; }

BOOT_N=0
# _boot INITRD KARGS: one boot of the scenario's disk; sets BOOT_LOG, BOOT_RC.
_boot() {
	BOOT_N=$((BOOT_N + 1))
	BOOT_LOG=$SCENARIO_DIR/boot-$BOOT_N.log
	BOOT_RC=0
	local tpm=()
	case ${TPM:-all} in
	all) tpm=(--tpm) ;;
	none) ;;
	*) tpm=(--tpm-banks "$TPM") ;;
	esac
	# BLKDEBUG: a blkdebug configuration for the disk (I/O errors);
	# TPM_FAULT: a fault qemu/lib/tpm-fault injects into the TPM (vm.sh).
	[ -z "${BLKDEBUG:-}" ] || tpm+=(--blkdebug "$BLKDEBUG")
	[ -z "${TPM_FAULT:-}" ] || tpm+=(--tpm-fault "$TPM_FAULT")
	# veriroot.failure-delay=0: a refusal ends at once (the default waits
	# 10 s with the reason on the console); a scenario's own value wins.
	vm_boot --name "$SCENARIO" --initrd "$1" --disk "$SCENARIO_DIR/disk.img" "${tpm[@]}" \
		${STOP_ON:+--stop-on "$STOP_ON"} \
		--append "${ROOT_ARG:-root=LABEL=vt-root} rw veriroot.failure-delay=0 $2" \
		--timeout "$BOOT_TIMEOUT" --log "$BOOT_LOG.raw" || BOOT_RC=$?
	# The console has CRs, NULs and firmware escapes: keep plain text.
	tr -d '\r\000' <"$BOOT_LOG.raw" >"$BOOT_LOG" && rm -f "$BOOT_LOG.raw"
	cat "$BOOT_LOG" >>"$SCENARIO_DIR/serial.log"
	record_timings
}

# record_timings: veriroot's stage timings of this boot, one line per boot,
# appended to the scenario's "timings" artifact (nothing if it did not mount).
record_timings() {
	local line
	line=$(grep -a -o 'timings: parse .*' "$BOOT_LOG" | tail -n 1) || return 0
	echo "boot $BOOT_N: ${line#timings: }" >>"$SCENARIO_DIR/timings"
}

# _expect_lines REGEX...: each must match a line of this boot's log.
_expect_lines() {
	local re
	for re in "$@"; do
		grep -aEq -- "$re" "$BOOT_LOG" || { echo "boot $BOOT_N: no line matches /$re/"; return 1; }
	done
}

_expect_checks() {
	local c
	[ "$BOOT_RC" -eq 0 ] || { echo "boot $BOOT_N: vm_boot returned $BOOT_RC (124: timeout, 2: panic)"; return 1; }
	grep -aq 'VT: START' "$BOOT_LOG" || { echo "boot $BOOT_N: the image's init never ran: $(_why)"; return 1; }
	if grep -aq 'VT: FAIL' "$BOOT_LOG"; then
		echo "boot $BOOT_N: $(grep -a -m1 'VT: FAIL' "$BOOT_LOG" | tr -d '\r' | sed 's/.*VT: FAIL //')"
		return 1
	fi
	for c in $1; do
		grep -aq "VT: PASS $c" "$BOOT_LOG" || { echo "boot $BOOT_N: check $c did not pass"; return 1; }
	done
	grep -aq 'VT: DONE' "$BOOT_LOG" || { echo "boot $BOOT_N: checks did not finish"; return 1; }
}

_why() { grep -a -m1 -E 'veriroot: refusing|Kernel panic|FAIL' "$BOOT_LOG" | cut -c1-300; }

boot_pass() {
	local kargs=$1 checks=$2
	shift 2
	_boot "${INITRD_VERIROOT:-$WORK/initrd-veriroot.img}" "$kargs vt.checks=${checks// /,} vt.digest=$DIGEST"
	_expect_checks "$checks" && _expect_lines "$@"
}

boot_refuse() {
	_boot "${INITRD_VERIROOT:-$WORK/initrd-veriroot.img}" "$1"
	shift
	[ "$BOOT_RC" -eq 0 ] || { echo "boot $BOOT_N: vm_boot returned $BOOT_RC (expected a clean power-off)"; return 1; }
	! grep -aq 'VT: START' "$BOOT_LOG" || { echo "boot $BOOT_N: the image's init ran, expected a refusal"; return 1; }
	_expect_lines 'veriroot: refusing to boot' 'veriroot: powering off' "$@"
}

# boot_refuse_then ACTION KARGS REGEX...: a PID 1 refusal that ends with
# veriroot.on-failure=ACTION (poweroff, reboot or halt; KARGS names it):
# the reason and the cap on the console, then ACTION as the kernel says it
# (-no-reboot: a reboot exits QEMU; a halted guest is stopped by --stop-on).
boot_refuse_then() {
	local action=$1 verb rc want
	case $action in
	poweroff) verb='powering off' rc=0 want='reboot: Power down' ;;
	reboot) verb='rebooting' rc=2 want='reboot: Restarting system' ;;
	halt) verb='halting' rc=3 want='reboot: System halted' ;;
	*) echo "boot_refuse_then: unknown action '$action'" && return 1 ;;
	esac
	if [ "$action" = halt ]; then
		STOP_ON='reboot: System halted' _boot "${INITRD_VERIROOT:-$WORK/initrd-veriroot.img}" "$2"
	else
		_boot "${INITRD_VERIROOT:-$WORK/initrd-veriroot.img}" "$2"
	fi
	shift 2
	[ "$BOOT_RC" -eq "$rc" ] || { echo "boot $BOOT_N: vm_boot returned $BOOT_RC, expected $rc ($action)"; return 1; }
	! grep -aq 'VT: START' "$BOOT_LOG" || { echo "boot $BOOT_N: the image's init ran, expected a refusal"; return 1; }
	_expect_lines 'veriroot: refusing to boot' "veriroot: $verb in [0-9]+ s \\(veriroot.on-failure=$action\\)" \
		"veriroot: $verb\$" "$want" "$@"
}

# disk_file PATH: a file of the scenario's disk (PATH from the real root's
# top), read with debugfs after the guest is gone.
disk_file() { debugfs -R "cat /$1" "$SCENARIO_DIR/disk.img" 2>/dev/null; }

setup_root_pass() {
	local kargs=$1 checks=$2
	shift 2
	_boot "$WORK/initrd-setup-root.img" "$kargs vt.checks=${checks// /,} vt.digest=$DIGEST"
	_expect_lines 'VT-INITRD: check rc=0' 'VT-CHECK: verdict: this system would boot the verified image' \
		'VT-INITRD: setup-root rc=0' && _expect_checks "$checks" && _expect_lines "$@"
}

# With CHECK_PASSES=1, `veriroot check` is expected to pass first: for
# what only the mount can show (a system extension's release rules).
setup_root_refuse() {
	_boot "$WORK/initrd-setup-root.img" "$1"
	shift
	! grep -aq 'VT: START' "$BOOT_LOG" || { echo "boot $BOOT_N: the image's init ran, expected a refusal"; return 1; }
	! grep -aq 'VT-INITRD: DIRTY' "$BOOT_LOG" || { echo "boot $BOOT_N: $(grep -a -m1 'DIRTY' "$BOOT_LOG")"; return 1; }
	local check=('VT-INITRD: check rc=1' 'VT-CHECK: verdict: this system would NOT boot verified')
	[ "${CHECK_PASSES:-0}" = 0 ] || check=('VT-INITRD: check rc=0' 'VT-CHECK: verdict: this system would boot the verified image')
	_expect_lines "${check[@]}" 'VT-INITRD: setup-root rc=1' 'VT-INITRD: CLEAN' "$@"
}

# expect_fast_hash ALG: fs-verity hashed ALG (sha256|sha512) with the
# kernel's fastest code in the last boot, judged by what this kernel has:
# - a kernel with SIMD SHA-2 crypto modules (6.12: sha256_ssse3, sha2_ce,
#   ...; HASH_MODULES) logs `fs-verity: ALG using implementation "..."`
#   at its first check: it must name a SIMD one, not ALG-generic (the
#   initrd loaded the module first);
# - a kernel without them (7.x) hashes through the crypto library, which
#   picks the CPU's code itself (CONFIG_CRYPTO_LIB_<ALG>_ARCH=y, built in),
#   and logs nothing: there is no choice left to check. The check is
#   skipped with the reason (harness.log, SCENARIO_DIR/skipped), but fails
#   if such a kernel still logs a generic implementation or lacks the
#   architecture's library code.
expect_fast_hash() {
	local alg=$1 line up
	up=$(tr '[:lower:]' '[:upper:]' <<<"$alg")
	line=$(grep -a -o "fs-verity: $alg using implementation \"[^\"]*\"" "$BOOT_LOG" | head -n 1) || line=''
	if [ -n "$line" ]; then
		case $line in
		*"$alg-generic"*) echo "boot $BOOT_N: fs-verity hashes with the generic C code: $line"; return 1 ;;
		*'"'"$alg"-*) ;;
		*) echo "boot $BOOT_N: unexpected $line"; return 1 ;;
		esac
		[ -n "$HASH_MODULES" ] || log "$alg: $line without SIMD modules in the initrd (built in?)"
		return 0
	fi
	if [ -n "$HASH_MODULES" ]; then
		echo "boot $BOOT_N: kernel $KERNEL_VERSION has $HASH_MODULES but fs-verity logged no $alg implementation"
		return 1
	fi
	kernel_config_has "CRYPTO_LIB_${up}_ARCH" y || {
		echo "boot $BOOT_N: kernel $KERNEL_VERSION has neither SIMD $alg modules nor CONFIG_CRYPTO_LIB_${up}_ARCH=y"
		return 1
	}
	skip_check "fast-$alg" "kernel $KERNEL_VERSION has no $alg implementation to choose" \
		"(no SIMD crypto module; fs-verity uses the built-in library, CONFIG_CRYPTO_LIB_${up}_ARCH=y," \
		"and logs none)"
}

# skip_check NAME REASON...: a check this kernel cannot make, and why.
skip_check() {
	local name=$1
	shift
	printf 'skipped %s: %s\n' "$name" "$*" >>"$SCENARIO_DIR/skipped"
	log "${GUEST_PREFIX}$SCENARIO: skipped $name: $*"
}

# with_config TEXT [PATH]: later PID 1 boots use an initrd with TEXT at
# PATH (default /etc/veriroot/veriroot.conf); empty TEXT: the default
# initrd again.
with_config() {
	if [ -z "$1" ]; then
		unset INITRD_VERIROOT
		return 0
	fi
	local dest=${2:-/etc/veriroot/veriroot.conf}
	printf '%s' "$1" >"$SCENARIO_DIR/config"
	INITRD_VERIROOT=$SCENARIO_DIR/initrd-veriroot.img
	initrd_build "$INITRD_VERIROOT" "$VERIROOT_BIN" --modules "$MODULES" \
		--add "$SCENARIO_DIR/config:$dest" >&2
}

# with_trust TEXT KEYFILE...: like with_config TEXT (veriroot.conf), with
# each KEYFILE in the initrd's /etc/veriroot/keys/ under its own name: the
# trusted keys of [trust] signatures (docs/formats.md, "Signed images").
with_trust() {
	local text=$1 key
	shift
	printf '%s' "$text" >"$SCENARIO_DIR/config"
	local -a adds=(--add "$SCENARIO_DIR/config:/etc/veriroot/veriroot.conf")
	for key in "$@"; do
		adds+=(--add "$key:/etc/veriroot/keys/${key##*/}")
	done
	INITRD_VERIROOT=$SCENARIO_DIR/initrd-veriroot.img
	initrd_build "$INITRD_VERIROOT" "$VERIROOT_BIN" --modules "$MODULES" "${adds[@]}" >&2
}

# signing_key DIR NAME SPEC: a self-signed certificate DIR/NAME.pem and its
# key DIR/NAME.key, made by openssl (SPEC: rsa:2048, ec:P-256, ...).
signing_key() {
	local dir=$1 name=$2 spec=$3
	local -a newkey=(-newkey "$spec")
	[[ $spec == ec:* ]] && newkey=(-newkey ec -pkeyopt "ec_paramgen_curve:${spec#ec:}")
	openssl req -x509 -nodes -days 3650 -subj "/CN=veriroot-$name" "${newkey[@]}" \
		-keyout "$dir/$name.key" -out "$dir/$name.pem" 2>/dev/null
}

# sign_image DIGEST NAME [OUT]: `fsverity sign` of images/DIGEST in the
# repository with $SCENARIO_DIR/NAME.{key,pem}, into OUT (default the
# repository's signatures/DIGEST.sig, where veriroot looks for it).
sign_image() {
	local digest=$1 name=$2 out=${3:-$REPO/signatures/$1.sig}
	mkdir -p "${out%/*}"
	fsverity sign "$REPO/images/$digest" "$out" --hash-alg="$ALGORITHM" \
		--key="$SCENARIO_DIR/$name.key" --cert="$SCENARIO_DIR/$name.pem" >/dev/null
}

# host_veriroot ARGS: veriroot built for the host, run on the host.
host_veriroot() { "$HOST_VERIROOT_BIN" "$@"; }

# expect_tpm EXPECTED_JSON: the PCRs and measurement log the last boot
# printed are saved as tpm2-measure.log and pcrs.json (the PCRs the log
# names, every bank); both the PCRs and the log's replay must equal
# EXPECTED_JSON (what `veriroot predict --json` says).
expect_tpm() {
	local expected=$1 log=$SCENARIO_DIR/tpm2-measure.log json=$SCENARIO_DIR/pcrs.json
	grep -aq '^VT-LOG-END [0-9]' "$BOOT_LOG" || { echo "boot $BOOT_N: no measurement log printed: $(grep -a -m1 VT-LOG-END "$BOOT_LOG")"; return 1; }
	perl -ne 'print pack("H*", $1) if /^VT-LOG: ([0-9a-f]+)\s*$/' "$BOOT_LOG" >"$log"
	local size
	size=$(grep -a -m1 '^VT-LOG-END' "$BOOT_LOG" | awk '{ print $2 }')
	[ "$(stat -c %s "$log")" = "$size" ] || { echo "boot $BOOT_N: log is $(stat -c %s "$log") bytes, the guest had $size"; return 1; }
	grep -aq '^VT-LOG-END [0-9]* mode=600$' "$BOOT_LOG" || { echo "boot $BOOT_N: the log's mode is not 0600: $(grep -a -m1 VT-LOG-END "$BOOT_LOG")"; return 1; }
	local replay pcrs
	replay=$(host_veriroot log --json --no-tpm "$log") || { echo "boot $BOOT_N: veriroot log cannot parse the guest's log"; return 1; }
	pcrs=$(_pcrs_json "$replay")
	printf '%s\n' "$pcrs" >"$json"
	[ "$pcrs" = "$expected" ] || { echo "boot $BOOT_N: TPM PCRs $pcrs, predicted $expected"; return 1; }
	[ "$replay" = "$expected" ] || { echo "boot $BOOT_N: log replays to $replay, predicted $expected"; return 1; }
}

# _pcrs_json REPLAY_JSON: the guest's VT-PCR values for the PCRs in the
# replay, in the same shape ({"bank":{"pcr":"hex"}}, banks sorted).
_pcrs_json() {
	local wanted bank pcr value out='' cur='' inner=''
	wanted=$(grep -o '"[0-9]*":' <<<"$1" | tr -d '":' | sort -un | tr '\n' ' ')
	while read -r bank pcr value; do
		case " $wanted " in *" $pcr "*) ;; *) continue ;; esac
		if [ "$bank" != "$cur" ]; then
			[ -z "$cur" ] || out+="\"$cur\":{$inner},"
			cur=$bank inner=''
		else
			inner+=","
		fi
		inner+="\"$pcr\":\"$value\""
	done < <(grep -a '^VT-PCR: ' "$BOOT_LOG" | awk '{ print $2, $3, $4 }' | sort -k1,1 -k2,2n)
	[ -z "$cur" ] || out+="\"$cur\":{$inner}"
	printf '{%s}\n' "$out"
}

# --- one scenario -------------------------------------------------------------

# make_disk: the real root's tree → ext4 (4 KiB blocks, verity) →
# provisioned (qemu/lib/disk.sh: shared where the tree is a known base).
make_disk() {
	DISK_TREE=$SCENARIO_DIR/root
	REPO=$DISK_TREE/composefs
	rm -rf "$DISK_TREE"
	mkdir -p "$DISK_TREE"
	disk_base_plain "$DISK_TREE" || return 1
	if declare -F prepare >/dev/null; then
		prepare || { echo "prepare() failed"; return 1; }
	else
		DISK_BASE=disk_base_plain DISK_BASE_ID=plain-$ALGORITHM
	fi
	disk_make
}

# run_one NAME: prints the reason on stdout if it fails.
run_one() (
	SCENARIO=$1
	SCENARIO_DIR=$(vm_scenario_dir "$SCENARIO")
	vm_scenario_reset "$SCENARIO"
	ALGORITHM=sha256
	NOVERITY=()
	# shellcheck disable=SC2034 # read by scenario files and make_disk's prepare()
	TREE=$WORK/tree
	# shellcheck source=/dev/null
	source "$TESTS_DIR/$SCENARIO"
	DIGEST=$(cat "$WORK/digest-$ALGORITHM")
	make_disk >"$SCENARIO_DIR/reason" 2>"$SCENARIO_DIR/harness.log" || exit 1
	scenario >"$SCENARIO_DIR/reason" 2>>"$SCENARIO_DIR/harness.log"
)

# prepare_all: everything the scenarios share, built once per guest
# (architecture and kernel). Every step is checked; on a failure it
# returns 1 with PREPARE_REASON saying which step and the last line it
# printed (the callers report it for every scenario it blocks).
prepare_all() {
	PREPARE_REASON=''
	log "preparing for $VM_ARCH guests, $KERNEL_CHOICE kernel"
	_prepare_step "building veriroot" build || return 1
	_prepare_step "the $KERNEL_CHOICE kernel (linux-image-$KERNEL_FLAVOUR)" kernel_fetch || return 1
	_scenario_paths
	log "kernel $KERNEL_VERSION ($KERNEL_CHOICE) for ${GUEST_PREFIX:-x86_64/}NAME, work in $WORK"
	_scenario_hash_modules
	_prepare_step "a static busybox for $VM_ARCH" _prepare_busybox || return 1
	_prepare_step "the work directory" mkdir -p "$WORK" || return 1
	_prepare_step "building the initrds" build_initrds || return 1
	_prepare_step "building the test images" build_images || return 1
}

_prepare_busybox() { BUSYBOX=$(arch_busybox); }

# _prepare_step WHAT CMD...: CMD in this shell (it may set variables), its
# stderr shown after it; on failure PREPARE_REASON="WHAT failed: <its last
# line>".
_prepare_step() {
	local what=$1 err rc=0 last
	shift
	err=$(mktemp "${TMPDIR:-/tmp}/veriroot-prepare.XXXXXX") || return 1
	"$@" 2>"$err" || rc=$?
	cat "$err" >&2
	if [ "$rc" -ne 0 ]; then
		last=$(grep -v '^[[:space:]]*$' "$err" | tail -n 1 | cut -c1-300)
		PREPARE_REASON="$what failed${last:+: $last}"
		log "$PREPARE_REASON"
	fi
	rm -f "$err"
	return "$rc"
}
