# shellcheck shell=bash
# Secrets sealed to veriroot's PCRs (issue 14; docs/sealing.md): the
# seal-* scenarios boot the Debian system of qemu/lib/debian.sh with a
# second disk, a LUKS2 volume made and enrolled in the guest by the
# tools a user runs (cryptsetup, systemd-cryptenroll with the values
# `veriroot predict --tpm2-pcrs` printed on the host, systemd-creds) and
# unlocked by systemd-cryptsetup from /etc/crypttab; the guest's checks
# are qemu/guest/seal-checks.
#
#   source "$QEMU_DIR/lib/debian.sh"; source "$QEMU_DIR/lib/seal.sh"
#   seal_prepare        in prepare(): debian_prepare, an empty 64 MiB
#                       second disk (/dev/vdb) and a TPM whose state lasts
#                       across the scenario's boots (vm_boot --tpm-state):
#                       what boot 1 seals, boot 2's TPM can unseal
#   seal_pcrs ARGS...   `veriroot predict ARGS --tpm2-pcrs` (sha256)
#   seal_pcr PCR [PREFIX]
#                       the last boot's sha256 PCR value, as the guest's
#                       seal-pcrs check printed it (VT-SEAL-PCR lines; or
#                       PREFIX's, e.g. VT-INITRD-PCR)
#   seal_expect_tries_refused N WHAT
#                       vt-seal-try's lines hold the TPM's refusal N times
#   seal_tpm_state      the last boot's owner hierarchy (enabled or not)
#
# The volume is made in the guest: on the host, formatting the opened
# volume would need device-mapper (a host device), and the TPM that must
# unseal it is the guest's anyway.

SEAL_DATA_SIZE=64M
# The TPM's refusal to unseal, in systemd's debug log. systemd 257 does
# not send TPM2_Unseal when it would fail: it has the TPM build the policy
# session over the current PCRs (TPM2_PolicyPCR), asks it for the session's
# digest and compares that with the digest sealed in the token: "Current
# policy digest does not match stored policy digest, cancelling TPM2
# authentication attempt" (seal-unlock, trixie 257.13). Should TPM2_Unseal
# be sent anyway, tpm2-tss decodes TPM2_RC_POLICY_FAIL ("a policy check
# failed"). A systemd-pcrlock policy (seal-unlock's seal-pcrlock) is a
# TPM2_PolicyOR over the allowed PCR states: the TPM refuses the OR itself
# when the session's PCR digest is none of them (TPM_RC_VALUE on its first
# parameter, "Failed to add OR policy to TPM: tpm:parameter(1):value is out
# of range or is not correct for the context").
SEAL_TPM_REFUSED='Current policy digest does not match stored policy digest|policy check failed|Failed to add OR policy to TPM: tpm:parameter\(1\):value is out of range'

# The refusal of a signed PCR 11 policy: systemd 257 has the TPM compute
# the PCR policy digest of the current values and looks for a signature
# of that digest, by the token's key, in the UKI's .pcrsig JSON; with none
# it does not ask the TPM to unseal (debian-encrypted-root, after the
# initrd: the UKI signs PCR 11 at enter-initrd only).
# shellcheck disable=SC2034 # read by the scenario files
SEAL_SIGNATURE_REFUSED="Couldn't find signature for this PCR bank, PCR index and public key"

# seal_expect_refused LABEL...: the last boot's VT-SEAL lines of each
# LABEL (a tool run by qemu/guest/seal-checks) hold the TPM's refusal.
seal_expect_refused() {
	local label
	for label in "$@"; do
		grep -aEq "^VT-SEAL: $label: .*($SEAL_TPM_REFUSED)" "$BOOT_LOG" || {
			echo "boot $BOOT_N: $label failed, but not on the TPM's refusal: $(grep -a "^VT-SEAL: $label: " "$BOOT_LOG" | grep -ai 'fail' | tail -n 2 | tr '\n' ' ' | cut -c1-300)"
			return 1
		}
	done
}

# seal_expect_tries_refused N WHAT: the last boot's unlabelled VT-SEAL
# lines (qemu/guest/seal-try, in the initramfs) hold the TPM's refusal at
# least N times: once per TPM2 token asked.
seal_expect_tries_refused() {
	[ "$(grep -aEc "^VT-SEAL: .*($SEAL_TPM_REFUSED)" "$BOOT_LOG")" -ge "$1" ] || {
		echo "boot $BOOT_N: $2 failed, but not on the TPM's refusal of $1 token(s): $(grep -a '^VT-SEAL: ' "$BOOT_LOG" | grep -ai 'fail\|error' | tail -n 2 | tr '\n' ' ' | cut -c1-300)"
		return 1
	}
}

seal_prepare() {
	debian_prepare || return 1
	rm -rf "$SCENARIO_DIR/tpm" "$SCENARIO_DIR/seal-data.img"
	truncate -s "$SEAL_DATA_SIZE" "$SCENARIO_DIR/seal-data.img" || return 1
	# shellcheck disable=SC2034 # read by debian_boot (qemu/lib/debian.sh)
	DEBIAN_VM_ARGS=(--disk "$SCENARIO_DIR/seal-data.img" --tpm-state "$SCENARIO_DIR/tpm")
}

seal_pcrs() {
	local out
	out=$(host_veriroot predict "$@" --tpm2-pcrs) || { echo "veriroot predict $* --tpm2-pcrs failed"; return 1; }
	log "seal: predicted policy for $*: $out"
	printf '%s\n' "$out"
}

seal_pcr() {
	local v prefix=${2:-VT-SEAL-PCR}
	v=$(grep -a "^$prefix: sha256 $1 " "$BOOT_LOG" | tail -n 1 | awk '{ print tolower($4) }')
	[ -n "$v" ] || { echo "boot $BOOT_N: no sha256 PCR $1 among the $prefix lines"; return 1; }
	printf '%s\n' "$v"
}

# seal_tpm_state: the last boot's TPM_PT_STARTUP_CLEAR as the guest's
# seal-pcrs check read it, and whether the owner hierarchy (shEnable,
# bit 1: systemd's SRK is in it) was enabled. SeaBIOS disables it after
# a TPM command failed it in the firmware; then every keyslot fails to
# load ("tpm:handle(1):the handle is not correct for the use"), which
# says nothing about the policy.
seal_tpm_state() {
	local v
	v=$(grep -a -m1 '^VT-SEAL-TPM: startup-clear ' "$BOOT_LOG" | awk '{ print $3 }')
	case $v in
	[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f])
		printf 'TPM_PT_STARTUP_CLEAR 0x%s (owner hierarchy %s)\n' "$v" \
			"$([ $((0x$v & 2)) -ne 0 ] && echo enabled || echo DISABLED)"
		;;
	*) printf 'TPM_PT_STARTUP_CLEAR not read\n' ;;
	esac
}

# seal_second_image: in prepare(), after seal_prepare: a second valid image
# in the repository, standing in for an older (or the next) release: the
# Debian image's EROFS file with 4 KiB of zeros appended. The kernel reads
# only the blocks its superblock names, so it mounts the same files; its
# fs-verity digest, so PCR 15, differs. Its deployment gets the same /var
# as the first. Sets SEAL_OTHER (its digest).
seal_second_image() {
	local img tmp=$SCENARIO_DIR/second.img d
	img=$(readlink -f "$REPO/images/$DIGEST")
	[ -f "$img" ] || { echo "seal: $REPO/images/$DIGEST is not a file" >&2; return 1; }
	cp "$img" "$tmp" && truncate -s +4096 "$tmp" || return 1
	d=$(host_veriroot digest --hash sha512 "$tmp" | awk '{ print $1 }') || return 1
	d=${d#sha512:}
	mkdir -p "$REPO/objects/${d:0:2}" "$DISK_TREE/state/deploy/$d" &&
		mv "$tmp" "$REPO/objects/${d:0:2}/${d:2}" &&
		ln -s "../objects/${d:0:2}/${d:2}" "$REPO/images/$d" &&
		cp -a "$DEBIAN_BUILD/var" "$DISK_TREE/state/deploy/$d/var" || return 1
	# shellcheck disable=SC2034 # read by the scenario files
	SEAL_OTHER=$d
	log "seal: second image sha512:$d (the first with 4 KiB appended)"
}

# seal_pcrlock_check DIR DIGEST...: does systemd-pcrlock take veriroot's
# components? `veriroot predict --digest D --pcrlock` for each DIGEST,
# saved as the variants of 755-veriroot.pcrlock.d/, and the Debian tree's
# systemd-pcrlock (DEBIAN_SUITE's: trixie 257 in seal-unlock, forky 262
# in forky-boot) run on the host in a chroot of the tree's
# pcrlock, pcrextend and libraries (extracted into DIR/tree: no ESP there
# for make-policy to write to, nothing of the host's /run or /etc used),
# against a private swtpm (DIR/tpm): PCR 15 extended by systemd-pcrextend
# with the first image's events (its log in DIR), then `make-policy
# --pcr=15`: the policy's PCR 15 values must be exactly the predicted
# ones, one per image, nothing else (no zeros: the component must not be
# optional). pcrlock's output and the policy stay in DIR.
seal_pcrlock_check() (
	local dir=$1 tree=$1/tree comp d want got pid=''
	shift
	rm -rf "$dir" && mkdir -p "$tree" "$dir/tpm" || exit 1
	tar -C "$tree" -xf "$DEBIAN_TARBALL" ./lib64 ./usr/lib64 ./usr/bin/env ./usr/lib/x86_64-linux-gnu \
		./usr/lib/systemd/systemd-pcrlock ./usr/lib/systemd/systemd-pcrextend || exit 1
	mkdir -p "$tree/proc" "$tree/sys" "$tree/dev" "$tree/vt/comp/755-veriroot.pcrlock.d" || exit 1
	comp=$tree/vt/comp/755-veriroot.pcrlock.d
	for d in "$@"; do
		host_veriroot predict --digest "$d" --pcrlock >"$comp/$d.pcrlock" || exit 1
	done
	trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null' EXIT
	swtpm socket --tpm2 --tpmstate dir="$dir/tpm" --server type=unixio,path="$tree/vt/sock" \
		--ctrl type=unixio,path="$tree/vt/sock.ctrl" --flags startup-clear --daemon \
		--pid file="$dir/tpm/pid" --log file="$dir/swtpm.log" || exit 1
	pid=$(cat "$dir/tpm/pid")
	local env=(SYSTEMD_TPM2_DEVICE=swtpm:path=/vt/sock SYSTEMD_MEASURE_LOG_USERSPACE=/vt/tpm2-measure.log
		SYSTEMD_MEASURE_LOG_FIRMWARE=/vt/empty SYSTEMD_FORCE_MEASURE=1)
	: >"$tree/vt/empty"
	while read -r _ _ _ e; do
		_debian_chroot "$tree" "${env[@]}" /usr/lib/systemd/systemd-pcrextend --pcr=15 "$e" >>"$dir/pcrextend.log" 2>&1 || exit 1
	done < <(host_veriroot predict --digest "$1" --banks sha256 | grep '^event PCR 15: ')
	_debian_chroot "$tree" "${env[@]}" /usr/lib/systemd/systemd-pcrlock make-policy --pcr=15 \
		--components=/vt/comp --policy=/vt/policy.json --recovery-pin=hide --no-pager >"$dir/make-policy.log" 2>&1 || {
		echo "systemd-pcrlock make-policy failed: $(tail -n 1 "$dir/make-policy.log")"
		exit 1
	}
	cp "$tree/vt/policy.json" "$dir/policy.json"
	want=$(for d in "$@"; do host_veriroot predict --digest "$d" --banks sha256 | awk '/^PCR 15 sha256 / { print $4 }'; done | sort | paste -sd,)
	got=$(python3 -c 'import json,sys; print(",".join(sorted(v for p in json.load(open(sys.argv[1]))["pcrValues"] if p["pcr"] == 15 for v in p["values"])))' "$dir/policy.json")
	[ "$got" = "$want" ] || { echo "pcrlock's policy admits PCR 15 = $got, predicted $want"; exit 1; }
	rm -rf "$tree"
	log "seal: systemd-pcrlock ($DEBIAN_SUITE) make-policy admits PCR 15 = $got ($(grep -m1 'PCRs in protection mask' "$dir/make-policy.log"))"
)

# seal_forged_initrd OUT UKI: the forged initrd of seal-forged-initrd, a
# cpio (OUT) that uki_make appends to the Debian initramfs: it masks
# veriroot-setup-root.service (/etc/systemd/system/… → /dev/null; the
# unit itself is in /usr/lib) and runs qemu/guest/forge-pcr15 before the
# PCRs are read, with the PCR 15 events `veriroot predict --uki UKI` lists for the genuine UKI.
# Only the initrd differs from UKI: what systemd-stub measures into PCR 11.
seal_forged_initrd() {
	local out=$1 uki=$2 dir=$SCENARIO_DIR/forge units
	units=$dir/etc/systemd/system
	rm -rf "$dir" && mkdir -p "$units/initrd-root-fs.target.wants" "$dir/usr/bin" || return 1
	host_veriroot predict --uki "$uki" --banks sha256 | sed -n 's/^event PCR 15: //p' >"$dir/etc/vt-forge-events" ||
		return 1
	[ -s "$dir/etc/vt-forge-events" ] || { echo "seal: veriroot predict --uki listed no PCR 15 event" >&2; return 1; }
	ln -s /dev/null "$units/veriroot-setup-root.service" &&
		install -m 0755 "$QEMU_DIR/guest/forge-pcr15" "$dir/usr/bin/vt-forge-pcr15" || return 1
	cat >"$units/vt-forge-pcr15.service" <<-'UNIT' || return 1
		[Unit]
		Description=seal-forged-initrd: veriroot's PCR 15 events, without veriroot
		DefaultDependencies=no
		After=tpm2.target systemd-tpm2-setup-early.service systemd-pcrphase-initrd.service sysroot.mount
		Before=vt-initrd-pcrs.service initrd-root-fs.target

		[Service]
		Type=oneshot
		RemainAfterExit=yes
		ExecStart=/usr/bin/vt-forge-pcr15
	UNIT
	ln -s ../vt-forge-pcr15.service "$units/initrd-root-fs.target.wants/vt-forge-pcr15.service" || return 1
	(cd "$dir" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$out" || return 1
	log "seal: forged initrd $out: $(wc -l <"$dir/etc/vt-forge-events") PCR 15 event(s), veriroot's unit masked"
}
