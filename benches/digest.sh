#!/usr/bin/env bash
# fs-verity digest speed: `veriroot digest` (the release musl binary) against
# `fsverity digest` (fsverity-utils), same files, same run, page cache warm.
# Prints a Markdown table of medians and the ratio veriroot/fsverity, and
# fails if the two ever print different digests.
#
#   benches/digest.sh            (or: make bench)
#   RUNS=3 benches/digest.sh     fewer repetitions, for a quick look
#
# Needs: fsverity, hyperfine, openssl (qemu/install-deps installs them).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${VERIROOT:-target/x86_64-unknown-linux-musl/release/veriroot}
DIR=target/bench # on the disk with the build, not a tmpfs /tmp
RUNS=${RUNS:-}
csv= # hyperfine's CSV export, a temporary file

for tool in fsverity hyperfine openssl; do
	command -v "$tool" >/dev/null || {
		echo "digest.sh: $tool not found; run qemu/install-deps" >&2
		exit 1
	}
done
[ -x "$BIN" ] || {
	echo "digest.sh: $BIN missing; run make build" >&2
	exit 1
}

# name bytes repetitions
SIZES=(
	"4KiB 4096 200"
	"1MiB 1048576 100"
	"64MiB 67108864 20"
	"1GiB 1073741824 10"
)

# Deterministic contents (AES-CTR keystream), so digests repeat across runs.
make_file() {
	local file=$1 bytes=$2
	if [ -f "$file" ] && [ "$(stat -c %s "$file")" -eq "$bytes" ]; then
		return 0
	fi
	# openssl dies of SIGPIPE when head has enough: not a failure.
	{ openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f \
		-iv 00000000000000000000000000000000 </dev/zero 2>/dev/null || true; } |
		head -c "$bytes" >"$file.tmp"
	[ "$(stat -c %s "$file.tmp")" -eq "$bytes" ] || {
		echo "digest.sh: could not write $file" >&2
		exit 1
	}
	mv "$file.tmp" "$file"
}

# median wall time (ms) of the Nth command in a hyperfine CSV export
median_ms() {
	awk -F, -v row="$(($2 + 1))" 'NR == row { printf "%.3f", $4 * 1000 }' "$1"
}

# mean CPU time, user + system (ms), of the Nth command
cpu_ms() {
	awk -F, -v row="$(($2 + 1))" 'NR == row { printf "%.1f", ($5 + $6) * 1000 }' "$1"
}

# hyperfine -N: no shell in between, so the 4 KiB case measures the tools.
bench() {
	local runs=$1 csv=$2
	shift 2
	hyperfine -N --style none -w "$((runs / 5 + 1))" -r "$runs" \
		--export-csv "$csv" "$@" >/dev/null
}

main() {
	local line name bytes runs file alg ours theirs f v r fc vc
	mkdir -p "$DIR"
	csv=$(mktemp)
	trap 'rm -f "$csv"' EXIT

	for line in "${SIZES[@]}"; do
		read -r name bytes runs <<<"$line"
		make_file "$DIR/$name" "$bytes"
		cat "$DIR/$name" >/dev/null # warm the page cache
	done

	echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)," \
		"SHA-NI $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no)," \
		"$(fsverity --version | head -n1), $(hyperfine --version)"
	echo "binary: $BIN ($(stat -c %s "$BIN") bytes)"
	echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	echo "Wall time, median; CPU time (user + system), mean."
	echo
	echo "| file | hash | fsverity digest (ms) | veriroot digest (ms) | veriroot/fsverity | CPU fsverity (ms) | CPU veriroot (ms) | runs |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|"
	for line in "${SIZES[@]}"; do
		read -r name bytes runs <<<"$line"
		runs=${RUNS:-$runs}
		file=$DIR/$name
		for alg in sha256 sha512; do
			theirs=$(fsverity digest --hash-alg="$alg" "$file")
			ours=$("$BIN" digest --hash "$alg" "$file")
			if [ "$ours" != "$theirs" ]; then
				printf 'digest.sh: %s %s differs:\n  fsverity: %s\n  veriroot: %s\n' \
					"$name" "$alg" "$theirs" "$ours" >&2
				exit 1
			fi
			bench "$runs" "$csv" "fsverity digest --hash-alg=$alg $file" \
				"$BIN digest --hash $alg $file"
			f=$(median_ms "$csv" 1)
			v=$(median_ms "$csv" 2)
			fc=$(cpu_ms "$csv" 1)
			vc=$(cpu_ms "$csv" 2)
			r=$(awk -v v="$v" -v f="$f" 'BEGIN { printf "%.2f", v / f }')
			echo "| $name | $alg | $f | $v | **$r** | $fc | $vc | $runs |"
		done
	done

	echo
	echo "One-core yardstick, the plain hash of the same 1 GiB file:"
	echo
	echo "| command | median (ms) | runs |"
	echo "|---|---:|---:|"
	runs=${RUNS:-10}
	for alg in sha256 sha512; do
		bench "$runs" "$csv" "openssl dgst -$alg $DIR/1GiB"
		echo "| openssl dgst -$alg | $(median_ms "$csv" 1) | $runs |"
	done
	echo
	echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

main "$@"
