# shellcheck shell=bash
# A scenario's disk: the real root's tree (DISK_TREE) as ext4 with 4 KiB
# blocks and fs-verity, provisioned (a boot of the provisioning initrd
# enables fs-verity on the repository: the host kernel cannot).
#
#   disk_make                 make_disk's work (qemu/lib/scenario.sh), after
#                             prepare(): SCENARIO_DIR/disk.img
#   DISK_BASE=FN DISK_BASE_ID=ID
#                             set by a prepare() whose tree starts from a
#                             known base (debian_prepare): FN DIR makes that
#                             base tree in DIR, ID names its contents
#
# Provisioning costs a boot per scenario, and for the Debian repository
# most of a minute of hashing under TCG. So disks are shared: the base tree
# a scenario starts from (without prepare(): the test repository; with
# debian_prepare: the Debian layout) is made into a disk and provisioned
# once per guest, in $WORK/disks/ID-SIZE/; a scenario's disk is a sparse
# copy of it plus what its prepare() changed: the paths added, changed or
# removed (rsync's dry run, with checksums), which a provisioning boot
# applies from a tar on a second disk before it enables fs-verity. Nothing
# changed: no boot at all. A scenario with NOVERITY or a .vt-provision
# script gets a disk of its own, provisioned in full, as does one whose
# prepare() set no base (its own tree may differ anywhere), or
# DISK_SHARED=no.

# disk_base_plain DIR: the tree every scenario without a prepare() boots:
# the test repository of ALGORITHM and an empty state directory.
disk_base_plain() {
	mkdir -p "$1/state" && cp -a "$WORK/repo-$ALGORITHM" "$1/composefs"
}

# disk_make: SCENARIO_DIR/disk.img from DISK_TREE (shared or not, above).
disk_make() {
	local unverified
	# shellcheck disable=SC2153 # NOVERITY: set by run_one or the scenario file
	unverified=$(printf '%s' "${NOVERITY[@]}")
	if [ "${DISK_SHARED:-yes}" = no ] || [ -z "${DISK_BASE_ID:-}" ] || [ -n "$unverified" ] ||
		[ -e "$DISK_TREE/.vt-provision" ]; then
		_disk_own
		return
	fi
	_disk_shared
}

# _disk_own: the scenario's own disk, provisioned in full.
_disk_own() {
	printf '%s\n' "${NOVERITY[@]}" >"$DISK_TREE/.vt-noverity"
	_disk_mkfs "$DISK_TREE" "$SCENARIO_DIR/disk.img" &&
		_disk_provision "$SCENARIO_DIR/disk.img" "$SCENARIO_DIR/provision.log"
}

# _disk_mkfs TREE IMAGE: ext4 of DISK_SIZE (default 128M), 4 KiB blocks
# (fs-verity needs the block size to be the page size), verity feature.
_disk_mkfs() {
	rm -f "$2"
	truncate -s "${DISK_SIZE:-128M}" "$2" &&
		mke2fs -q -t ext4 -b 4096 -O verity -L vt-root -d "$1" "$2"
}

# _disk_provision IMAGE LOG [DELTA]: the provisioning boot (with DELTA, the
# tar _disk_delta made, as /dev/vdb); it must print PROVISION OK.
_disk_provision() {
	local rc=0 delta=()
	[ -z "${3:-}" ] || delta=(--disk "$3")
	vm_boot --name "$SCENARIO" --initrd "$WORK/initrd-provision.img" --disk "$1" "${delta[@]}" \
		--timeout "$BOOT_TIMEOUT" --log "$2" || rc=$?
	grep -aq 'PROVISION OK' "$2" || {
		echo "provisioning boot failed (rc=$rc): $(grep -a -m1 'PROVISION FAIL' "$2" | tr -d '\r')"
		return 1
	}
}

# _disk_shared: a copy of the base's provisioned disk, plus the delta.
_disk_shared() {
	local base changes
	base=$WORK/disks/$DISK_BASE_ID-${DISK_SIZE:-128M}
	_disk_base "$base" || return 1
	changes=$(_disk_delta "$DISK_TREE" "$base/tree" "$SCENARIO_DIR/delta") || return 1
	cp --sparse=always "$base/disk.img" "$SCENARIO_DIR/disk.img" || return 1
	if [ "$changes" -eq 0 ]; then
		log "disk: the shared $DISK_BASE_ID disk as it is (its provisioning: $base/provision.log)"
		printf 'disk: a copy of the shared %s disk (%s/provision.log), unchanged\n' \
			"$DISK_BASE_ID" "$base" >"$SCENARIO_DIR/provision.log"
		rm -rf "$SCENARIO_DIR/delta"
		return 0
	fi
	log "disk: the shared $DISK_BASE_ID disk and $changes change(s) of prepare() (delta/list), provisioned"
	_disk_provision "$SCENARIO_DIR/disk.img" "$SCENARIO_DIR/provision.log" "$SCENARIO_DIR/delta/delta.tar"
}

# _disk_base DIR: the base's tree and provisioned disk in DIR, made once
# (under a lock: scenarios of the same base start together).
_disk_base() {
	local dir=$1 lock rc=0
	mkdir -p "${dir%/*}" || return 1
	exec {lock}>"$dir.lock"
	flock "$lock"
	if [ ! -s "$dir/disk.img" ]; then
		local start=$EPOCHREALTIME
		rm -rf "$dir" && mkdir -p "$dir/tree" || rc=1
		[ "$rc" -ne 0 ] || "$DISK_BASE" "$dir/tree" || { echo "making the $DISK_BASE_ID base tree failed"; rc=1; }
		if [ "$rc" -eq 0 ]; then
			: >"$dir/tree/.vt-noverity"
			_disk_mkfs "$dir/tree" "$dir/disk.img.tmp" &&
				_disk_provision "$dir/disk.img.tmp" "$dir/provision.log" &&
				mv "$dir/disk.img.tmp" "$dir/disk.img" || rc=1
			rm -f "$dir/tree/.vt-noverity"
		fi
		[ "$rc" -ne 0 ] || log "disk: the shared $DISK_BASE_ID disk made and provisioned in $(_vm_elapsed "$start") s"
	fi
	exec {lock}>&-
	return "$rc"
}

# _disk_delta TREE BASE OUT: what makes BASE into TREE, as OUT/delta.tar:
# first .vt-remove (the paths to remove before extracting: those gone from
# TREE and the non-directories that changed; one a line), then every
# changed or new path (not recursive: rsync lists each). Prints the number
# of changes. A name with an unprintable byte cannot be listed: refused.
_disk_delta() {
	local tree=$1 base=$2 out=$3 line path
	rm -rf "$out" && mkdir -p "$out" || return 1
	# -c: contents, not times (the copies are fresh); -n: nothing is done.
	rsync -rlpgoDc -n --delete --exclude=/.vt-noverity --out-format='%i %n' \
		"$tree/" "$base/" >"$out/rsync" || {
		echo "rsync could not compare $tree with $base" >&2
		return 1
	}
	# rsync escapes a name's unprintable bytes (\#ooo): such a name could not
	# be given to tar, nor read back by the guest, one a line.
	if grep -q '\\#[0-7][0-7][0-7]' "$out/rsync"; then
		echo "a path of $tree has an unprintable byte (rsync: $(grep -m1 '\\#[0-7][0-7][0-7]' "$out/rsync")): the delta cannot list it (set DISK_SHARED=no)" >&2
		return 1
	fi
	: >"$out/remove" && : >"$out/list" || return 1
	while IFS= read -r line; do
		# "%i " is 12 characters ("*deleting" is padded to the 11 of %i).
		path=${line:12}
		path=${path%/}
		case $line in
		'*deleting '*) printf '%s\n' "$path" >>"$out/remove" ;;
		??+++++++++*) printf '%s\n' "$path" >>"$out/list" ;; # new
		.d*) printf '%s\n' "$path" >>"$out/list" ;; # a directory's mode or owner
		cd*) printf '%s\n' "$path" >>"$out/list" ;;
		*) printf '%s\n' "$path" >>"$out/remove" && printf '%s\n' "$path" >>"$out/list" ;;
		esac
	done <"$out/rsync"
	cp "$out/remove" "$tree/.vt-remove" || return 1
	tar -C "$tree" --numeric-owner --no-recursion -cf "$out/delta.tar" .vt-remove \
		--verbatim-files-from -T "$out/list" || return 1
	rm -f "$tree/.vt-remove"
	wc -l <"$out/rsync"
}
