#!/usr/bin/env bash
# `make bench`: every benchmark in one run, and docs/benchmarks.md's
# "Latest run" section rewritten from its output (between the two
# `make bench` marker comments), so no number there is copied by hand.
#
#   benches/report.sh            (or: make bench)
#   BENCHES="digest" benches/report.sh     only some (digest boot systemd size)
#   RUNS=3 ROUNDS=3 benches/report.sh      a quick look (passed down)
#
# Each part waits (up to QUIET_WAIT s) for the 1-minute load average to
# fall to 0.5 and is preceded by it; a part started at a load above 0.5
# is marked as not measured on a quiet machine (the ratios
# are then indicative only: other work shares the two cores). The whole
# output also goes to target/bench/report.md.
set -euo pipefail

cd "$(dirname "$0")/.."
DOC=docs/benchmarks.md
OUT=target/bench/report.md
BEGIN='<!-- make bench: begin (benches/report.sh writes this section) -->'
END='<!-- make bench: end -->'
BENCHES=${BENCHES:-digest boot systemd size}
QUIET_LOAD=0.5

load() { cut -d' ' -f1 /proc/loadavg; }

# settle: wait, at most QUIET_WAIT seconds (default 180), for the 1-minute
# load average to fall to QUIET_LOAD: a part's own boots keep it near 1
# for a minute after they end, which would mark the next part as measured
# on a busy machine. Prints the seconds waited.
settle() {
	local waited=0
	while awk -v l="$(load)" -v q="$QUIET_LOAD" 'BEGIN { exit !(l > q) }' &&
		[ "$waited" -lt "${QUIET_WAIT:-180}" ]; do
		sleep 10
		waited=$((waited + 10))
	done
	echo "$waited"
}

# part TITLE CMD...: a heading, the load at its start (after settle), CMD's output.
part() {
	local title=$1 l waited
	shift
	waited=$(settle)
	l=$(load)
	echo "### $title"
	echo
	if awk -v l="$l" -v q="$QUIET_LOAD" 'BEGIN { exit !(l > q) }'; then
		echo "**Load average $l at the start (above $QUIET_LOAD after $waited s of waiting): not a quiet machine, the numbers below are indicative only.**"
	else
		echo "Load average $l at the start (after $waited s waiting for it to fall to $QUIET_LOAD)."
	fi
	echo
	"$@"
	echo
}

# limit BINARY: make build's size limit for it (Makefile).
limit() {
	case $1 in
	initrd/*) sed -n 's/^MAX_INITRD_SIZE := //p' Makefile ;;
	*) sed -n 's/^MAX_SIZE := //p' Makefile ;;
	esac
}

sizes() {
	local arch f
	echo "| binary | bytes | limit |"
	echo "|---|---:|---:|"
	for arch in x86_64 aarch64; do
		for f in release/veriroot initrd/veriroot-initrd; do
			[ -f "target/$arch-unknown-linux-musl/$f" ] || continue
			echo "| $arch \`$f\` | $(stat -c %s "target/$arch-unknown-linux-musl/$f") | $(limit "$f") |"
		done
	done
}

report() {
	local b
	echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC') at commit $(git describe --always --dirty)," \
		"$(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1))," \
		"rustc $(rustc --version | cut -d' ' -f2)."
	echo
	for b in $BENCHES; do
		# shellcheck disable=SC2016 # backquotes for Markdown, not expansions
		case $b in
		digest) part '`veriroot digest` against `fsverity digest`' benches/digest.sh ;;
		boot) part '`veriroot setup-root` against `composefs-setup-root` (minimal initrd, TCG)' benches/boot.sh ;;
		systemd) part '`veriroot-setup-root.service` against `composefs-setup-root` (Debian systemd initrd, TCG)' benches/systemd-initrd.sh ;;
		size) part 'Binary sizes (stripped, static)' sizes ;;
		*)
			echo "report.sh: unknown benchmark '$b' (known: digest boot systemd size)" >&2
			return 1
			;;
		esac
	done
	echo "Load average at the end: $(load)."
}

main() {
	mkdir -p "$(dirname "$OUT")"
	report | tee "$OUT.tmp"
	mv "$OUT.tmp" "$OUT"
	if ! grep -qxF "$BEGIN" "$DOC" || ! grep -qxF "$END" "$DOC"; then
		echo "report.sh: $DOC lacks the marker lines; not rewritten" >&2
		exit 1
	fi
	awk -v begin="$BEGIN" -v end="$END" -v out="$OUT" '
		$0 == begin { print; print ""; while ((getline line < out) > 0) print line; print ""; skip = 1; next }
		$0 == end { skip = 0 }
		!skip' "$DOC" >"$DOC.tmp"
	mv "$DOC.tmp" "$DOC"
	echo "report.sh: $DOC rewritten between its markers (also in $OUT)" >&2
}

main "$@"
