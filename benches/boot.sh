#!/usr/bin/env bash
# shellcheck disable=SC2031 # DIGEST is set in main, not in run_one's subshell
# Boot-path cost: `veriroot setup-root` against composefs-setup-root 0.9.4
# (the peer; `cargo install`ed into target/cache/peer), doing the same job
# in the same VM series: same kernel, same initrd, same disk and image
# (SHA-256 repository, /etc overlay, /var bind — the peer's defaults, which
# veriroot shares), real root read-write at /sysroot as in a systemd initrd.
#
#   benches/boot.sh              (or: make bench)
#   ROUNDS=3 benches/boot.sh     fewer boots, for a quick look
#
# Each boot runs ONE tool once, first thing after the root is mounted (see
# qemu/guest/bench-init): under TCG the first use of a kernel path costs
# 5-10x a later one, so only first runs compare. Boots alternate
# veriroot / peer / veriroot+TPM, ROUNDS times. The time of a run is the
# kernel clock between two /dev/kmsg markers around the process (start-up,
# dynamic loading, everything). veriroot runs without a TPM for the
# comparison (the peer measures nothing) and with swtpm for its TPM stage,
# reported separately. Prints medians and ratios; asserts no timing, but
# fails if either tool did not mount the verified image.
set -euo pipefail

cd "$(dirname "$0")/.."
QEMU_DIR=$PWD/qemu
VERIROOT_DIR=$PWD
export VERIROOT_DIR
# shellcheck source=qemu/lib/scenario.sh
source qemu/lib/scenario.sh

ROUNDS=${ROUNDS:-7}
PEER_VERSION=0.9.4
PEER=$VERIROOT_CACHE/peer/composefs-setup-root-$PEER_VERSION/bin/composefs-setup-root
OUT=$VERIROOT_DIR/target/bench/boot
SCENARIO=bench-boot
SCENARIO_DIR=$(vm_scenario_dir "$SCENARIO")

# The peer from the crate registry, as users get it. It links OpenSSL, so
# it is the glibc build (the musl target needs a vendored OpenSSL): its
# shared libraries go into the initrd with it.
peer_build() {
	[ -x "$PEER" ] && return 0
	log "building composefs-setup-root $PEER_VERSION with cargo install (a few minutes)"
	cargo install --quiet --locked composefs-setup-root --version "$PEER_VERSION" \
		--root "${PEER%/bin/*}"
}

# initrd_args_for_dynamic BIN DEST: --add arguments for BIN and its libraries.
initrd_args_for_dynamic() {
	local bin=$1 dest=$2 lib
	printf '%s\n' --add "$bin:$dest"
	while read -r lib; do
		printf '%s\n' --add "$(readlink -f "$lib"):$lib"
	done < <(ldd "$bin" | grep -o '/[^ ]*' | sort -u)
}

bench_initrd() {
	local args
	mapfile -t args < <(initrd_args_for_dynamic "$PEER" /bin/composefs-setup-root)
	initrd_build "$WORK/initrd-bench.img" "$QEMU_DIR/guest/bench-init" --modules "$MODULES" \
		--add "$VERIROOT_BIN:/bin/veriroot" --add /bin/busybox:/bin/busybox \
		--symlink busybox:/bin/sh "${args[@]}"
}

# Both tools expect the deployment's state directories.
prepare() { mkdir -p "$DISK_TREE/state/deploy/$DIGEST/etc" "$DISK_TREE/state/deploy/$DIGEST/var"; }

# one_boot TOOL TPM(yes|no) N: boots, checks the mount, records the time.
one_boot() {
	local tool=$1 with_tpm=$2 n=$3 bootlog start end
	bootlog=$OUT/$tool-$with_tpm-$n.log
	local args=()
	[ "$with_tpm" = no ] || args=(--tpm)
	vm_boot --name "$SCENARIO" --initrd "$WORK/initrd-bench.img" --disk "$SCENARIO_DIR/disk.img" \
		"${args[@]}" --append "root=LABEL=vt-root rw composefs=$DIGEST vt.tool=$tool" \
		--timeout "$BOOT_TIMEOUT" --log "$bootlog.raw" || true
	tr -d '\r\000' <"$bootlog.raw" >"$bootlog" && rm -f "$bootlog.raw"
	grep -aq 'VT-BENCH: MOUNTED' "$bootlog" || {
		echo "boot.sh: $tool did not mount the verified image (see $bootlog):" >&2
		grep -a -E 'VT-BENCH|refusing' "$bootlog" | head -n 20 >&2
		return 1
	}
	# The same job: /etc overlaid and /var bound from the deployment's state.
	local want
	for want in ' /sysroot/etc overlay ' ' /sysroot/var '; do
		grep -aq "VT-BENCH-MOUNT: .*$want" "$bootlog" || {
			echo "boot.sh: $tool: no mount matching '$want' (see $bootlog)" >&2
			return 1
		}
	done
	start=$(grep -a -m1 'VT-BENCH-KMSG:.*vt-bench: start' "$bootlog" | sed 's/^[^[]*\[ *\([0-9.]*\)\].*/\1/')
	end=$(grep -a -m1 'VT-BENCH-KMSG:.*vt-bench: end' "$bootlog" | sed 's/^[^[]*\[ *\([0-9.]*\)\].*/\1/')
	awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f\n", (e - s) * 1000 }' >>"$OUT/$tool-$with_tpm.ms"
	# veriroot's own stage line: "parse X ms, verify X ms, mount X ms, tpm X ms (...), total X ms"
	grep -a -o 'timings: parse .*' "$bootlog" >>"$OUT/$tool-$with_tpm.stages" || true
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# stage NAME FILE: the median of one stage over veriroot's stage lines.
stage() { grep -o "$1 [0-9.]*" "$2" | awk '{ print $2 }' | median; }
range() { sort -n "$1" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'; }

main() {
	peer_build
	prepare_all
	bench_initrd
	vm_scenario_reset "$SCENARIO"
	rm -rf "$OUT"
	mkdir -p "$OUT"
	ALGORITHM=sha256
	NOVERITY=()
	DIGEST=$(cat "$WORK/digest-$ALGORITHM")
	make_disk >&2
	local n
	for n in $(seq 1 "$ROUNDS"); do
		log "round $n of $ROUNDS"
		one_boot veriroot no "$n"
		one_boot peer no "$n"
		one_boot veriroot yes "$n"
	done
	local v p vm vt
	v=$(median <"$OUT/veriroot-no.ms")
	p=$(median <"$OUT/peer-no.ms")
	vm=$(awk -v a="$(stage verify "$OUT/veriroot-no.stages")" -v b="$(stage mount "$OUT/veriroot-no.stages")" \
		'BEGIN { printf "%.1f", a + b }')
	vt=$(stage tpm "$OUT/veriroot-yes.stages")
	{
		echo "Boot-path cost, first run in a fresh boot, $ROUNDS boots each (medians, ms; QEMU TCG):"
		echo
		echo "| run | whole process | range | ratio to peer |"
		echo "|---|---|---|---|"
		echo "| composefs-setup-root $PEER_VERSION | $p | $(range "$OUT/peer-no.ms") | 1.00 |"
		echo "| veriroot setup-root, no TPM | $v | $(range "$OUT/veriroot-no.ms") | $(awk -v a="$v" -v b="$p" 'BEGIN { printf "%.2f", a / b }') |"
		echo "| veriroot setup-root, swtpm | $(median <"$OUT/veriroot-yes.ms") | $(range "$OUT/veriroot-yes.ms") | - |"
		echo
		echo "veriroot's own stages without TPM: parse $(stage parse "$OUT/veriroot-no.stages"), verify $(stage verify "$OUT/veriroot-no.stages"), mount $(stage mount "$OUT/veriroot-no.stages") ms"
		echo "verify+mount $vm ms = $(awk -v a="$vm" -v b="$p" 'BEGIN { printf "%.2f", a / b }')x the peer's whole run (goal <= 0.8)"
		echo "TPM stage with swtpm (open + extend, 2 events x 4 banks): $vt ms"
	} | tee "$OUT/summary.md"
}

main "$@"
