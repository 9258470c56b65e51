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

# shellcheck source=qemu/lib/peer.sh
source qemu/lib/peer.sh

ROUNDS=${ROUNDS:-7}
OUT=$VERIROOT_DIR/target/bench/boot
SCENARIO=bench-boot
SCENARIO_DIR=$(vm_scenario_dir "$SCENARIO")

prepare() { peer_prepare_disk; }

# one_boot TOOL TPM(yes|no) N: one boot; records the run's time and stages.
one_boot() {
	local tool=$1 with_tpm=$2 n=$3 bootlog ms
	bootlog=$OUT/$tool-$with_tpm-$n.log
	ms=$(peer_boot "$tool" "$with_tpm" "$bootlog") || {
		echo "boot.sh: $ms" >&2
		return 1
	}
	echo "$ms" >>"$OUT/$tool-$with_tpm.ms"
	# veriroot's own stage line: "parse X ms, verify X ms, mount X ms, tpm X ms (...), total X ms"
	grep -a -o 'timings: parse .*' "$bootlog" >>"$OUT/$tool-$with_tpm.stages" || true
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# stage NAME FILE: the median of one stage over veriroot's stage lines.
stage() { grep -o "$1 [0-9.]*" "$2" | awk '{ print $2 }' | median; }
range() { sort -n "$1" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'; }

main() {
	prepare_all
	peer_initrd
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
