# shellcheck shell=bash
# Deterministic newc initramfs for QEMU guests.
#
#   source qemu/lib/initrd.sh
#   initrd_build OUT INIT_FILE [--modules "erofs overlay loop virtio_blk"]
#                [--add SRC:DEST]... [--symlink TARGET:DEST]...
#                [--compress gzip|none]
#
# Layout: /init (INIT_FILE, 0755); /dev /proc /sys /run /sysroot /tmp;
# /dev/console (c 5 1) and /dev/null (c 1 3), written as raw newc entries so
# no mknod (root) is needed; the listed modules plus everything modprobe would
# load with them (dependencies and softdeps), still .ko.xz, at
# /lib/modules/<ver>/<same relative path>, and a modules.dep covering exactly
# those files (depmod's order: a module's dependencies are listed after it,
# the one to load first last). Modules need kernel_fetch (called if
# KERNEL_VERSION is unset).
#
# --add SRC:DEST copies a file or a directory tree (SRC itself is followed if
# it is a symlink; symlinks inside a tree are kept). --symlink TARGET:DEST
# makes DEST a symlink to TARGET. DEST is an absolute path in the initrd.
# Modes are normalised (files 0755 if the owner may execute them, else 0644;
# directories 0755, /tmp 1777), owners are 0:0, mtimes are SOURCE_DATE_EPOCH
# (default 0) and entries are sorted: same inputs, same bytes.

_INITRD_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=qemu/lib/kernel.sh
source "$_INITRD_LIB_DIR/kernel.sh"

# _initrd_skeleton STAGE INIT_FILE
_initrd_skeleton() {
	mkdir -p "$1"/{dev,proc,sys,run,sysroot,tmp} &&
		cp -L "$2" "$1/init" &&
		chmod 0755 "$1/init"
}

# _initrd_module_paths "NAMES": absolute paths of the modules and all they pull in.
_initrd_module_paths() {
	local names=$1 out
	# -a: without it every name after the first is taken as a module parameter.
	# shellcheck disable=SC2086 # NAMES is a word list
	out=$(modprobe -d "$KERNEL_ROOT" -S "$KERNEL_VERSION" -a --show-depends $names) || return 1
	awk '$1 == "insmod" { print $2 }' <<<"$out" | LC_ALL=C sort -u
}

# _initrd_modules STAGE "NAMES": copy the modules and write their modules.dep.
_initrd_modules() {
	local stage=$1 names=$2 dst paths p rel
	[ -n "${KERNEL_VERSION:-}" ] || kernel_fetch || return 1
	dst=$stage/lib/modules/$KERNEL_VERSION
	paths=$(_initrd_module_paths "$names") || return 1
	while read -r p; do
		rel=${p#"$KERNEL_MODDIR"/}
		mkdir -p "$dst/$(dirname "$rel")" && cp "$p" "$dst/$rel" || return 1
	done <<<"$paths"
	_initrd_depmod "$stage"
}

# _initrd_depmod STAGE: modules.dep for the staged modules only, in the
# kernel's modules.order (so the output does not depend on readdir order).
_initrd_depmod() {
	local dst=$1/lib/modules/$KERNEL_VERSION
	(cd "$dst" && find kernel -name '*.ko*' | sed 's/\.ko\..*$/.ko/') >"$dst/.want" &&
		{ grep -Fxf "$dst/.want" "$KERNEL_MODDIR/modules.order" >"$dst/modules.order" || true; } &&
		cp "$KERNEL_MODDIR"/modules.builtin{,.modinfo} "$dst/" &&
		depmod -b "$1" "$KERNEL_VERSION" &&
		find "$dst" -maxdepth 1 -type f ! -name modules.dep -delete
}

# _initrd_add STAGE SRC:DEST
_initrd_add() {
	local src=${2%:*} dest=${2##*:}
	if [ "$src" = "$2" ] || [ "${dest#/}" = "$dest" ] || [ ! -e "$src" ]; then
		echo "initrd: --add wants EXISTING_SRC:/ABSOLUTE_DEST, got '$2'" >&2
		return 1
	fi
	mkdir -p "$1$(dirname "$dest")" &&
		rm -rf "${1:?}$dest" &&
		cp -R -H "$src" "$1$dest"
}

# _initrd_symlink STAGE TARGET:DEST
_initrd_symlink() {
	local target=${2%:*} dest=${2##*:}
	if [ "$target" = "$2" ] || [ "${dest#/}" = "$dest" ]; then
		echo "initrd: --symlink wants TARGET:/ABSOLUTE_DEST, got '$2'" >&2
		return 1
	fi
	mkdir -p "$1$(dirname "$dest")" &&
		ln -sfn "$target" "$1$dest"
}

# _initrd_normalise STAGE: modes and mtimes independent of umask and clock.
_initrd_normalise() {
	find "$1" -type d -exec chmod 0755 {} + &&
		find "$1" -type f -perm -u+x -exec chmod 0755 {} + &&
		find "$1" -type f ! -perm -u+x -exec chmod 0644 {} + &&
		chmod 1777 "$1/tmp" &&
		find "$1" -exec touch -h -d "@${SOURCE_DATE_EPOCH:-0}" {} +
}

# _initrd_newc_entry NAME MODE RDEVMAJOR RDEVMINOR: one data-less newc entry.
_initrd_newc_entry() {
	local namesize=$((${#1} + 1)) pad
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		0 "$2" 0 0 1 "${SOURCE_DATE_EPOCH:-0}" 0 0 0 "$3" "$4" "$namesize" 0 &&
		printf '%s\0' "$1" &&
		pad=$(((4 - (110 + namesize) % 4) % 4)) &&
		head -c "$pad" /dev/zero
}

# _initrd_devnodes: a second, concatenated archive with the two device nodes
# (the kernel unpacks concatenated archives; zero padding between is fine).
_initrd_devnodes() {
	_initrd_newc_entry dev/console $((8#020600)) 5 1 &&
		_initrd_newc_entry dev/null $((8#020666)) 1 3 &&
		_initrd_newc_entry 'TRAILER!!!' 0 0 0
}

# _initrd_cpio STAGE: the whole uncompressed archive on stdout.
_initrd_cpio() {
	(cd "$1" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
		cpio -o -H newc -R 0:0 --reproducible --quiet) &&
		_initrd_devnodes
}

# _initrd_compress gzip|none: stdin to stdout.
_initrd_compress() {
	case $1 in
	gzip) gzip -n -6 ;;
	none) cat ;;
	*)
		echo "initrd: unknown --compress '$1'" >&2
		return 1
		;;
	esac
}

initrd_build() {
	if [ $# -lt 2 ]; then
		echo "usage: initrd_build OUT INIT_FILE [--modules \"M...\"] [--add SRC:DEST]..." \
			"[--symlink TARGET:DEST]... [--compress gzip|none]" >&2
		return 2
	fi
	local out=$1 init=$2 modules='' compress=gzip stage rc=0
	local -a adds=() links=()
	shift 2
	while [ $# -gt 0 ]; do
		if [ $# -lt 2 ]; then
			echo "initrd_build: $1 needs a value" >&2
			return 2
		fi
		case $1 in
		--modules) modules=$2 ;;
		--add) adds+=("$2") ;;
		--symlink) links+=("$2") ;;
		--compress) compress=$2 ;;
		*)
			echo "initrd_build: unknown option '$1'" >&2
			return 2
			;;
		esac
		shift 2
	done
	stage=$(mktemp -d "${TMPDIR:-/tmp}/initrd.XXXXXX")
	_initrd_fill "$stage" "$init" "$modules" "${adds[@]/#/a}" "${links[@]/#/l}" &&
		mkdir -p "$(dirname "$out")" &&
		_initrd_cpio "$stage" | _initrd_compress "$compress" >"$out.tmp" &&
		mv "$out.tmp" "$out" || rc=1
	rm -rf "$stage" "$out.tmp"
	return "$rc"
}

# _initrd_fill STAGE INIT "MODULES" [aSRC:DEST | lTARGET:DEST]...
_initrd_fill() {
	local stage=$1 item
	_initrd_skeleton "$stage" "$2" || return 1
	[ -z "$3" ] || _initrd_modules "$stage" "$3" || return 1
	shift 3
	for item in "$@"; do
		case $item in
		a*) _initrd_add "$stage" "${item#a}" || return 1 ;;
		l*) _initrd_symlink "$stage" "${item#l}" || return 1 ;;
		esac
	done
	_initrd_normalise "$stage"
}
