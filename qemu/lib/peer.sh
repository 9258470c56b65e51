# shellcheck shell=bash
# The peer: composefs-setup-root (composefs-rs, the tool bootc's initramfs
# runs), built from the crate registry, and an initrd that runs either it
# or `veriroot setup-root` on the same disk (qemu/guest/bench-init). Used by
# the peer-same-job scenario and benches/boot.sh. Needs qemu/lib/scenario.sh.
#
#   peer_build                 cargo install, once (cached by version)
#   peer_initrd                $WORK/initrd-peer.img: both tools, bench-init
#   peer_prepare_disk          in prepare(): the state directories both expect
#   peer_boot TOOL TPM LOG     TOOL veriroot|peer, TPM yes|no; one boot, one
#                              run; fails unless TOOL mounted the verified
#                              image with /etc and /var; prints the run's ms

PEER_VERSION=0.9.4
PEER=$VERIROOT_CACHE/peer/composefs-setup-root-$PEER_VERSION/bin/composefs-setup-root

# The glibc build, as users get it from `cargo install`: it links OpenSSL,
# which the musl target would need vendored. Its shared libraries go into
# the initrd with it.
peer_build() {
	[ -x "$PEER" ] && return 0
	log "building composefs-setup-root $PEER_VERSION with cargo install (a few minutes)"
	cargo install --quiet --locked composefs-setup-root --version "$PEER_VERSION" \
		--root "${PEER%/bin/*}"
}

# _peer_dynamic_args BIN DEST: initrd_build --add arguments for BIN and its libraries.
_peer_dynamic_args() {
	local lib
	printf '%s\n' --add "$1:$2"
	while read -r lib; do
		printf '%s\n' --add "$(readlink -f "$lib"):$lib"
	done < <(ldd "$1" | grep -o '/[^ ]*' | sort -u)
}

peer_initrd() {
	local args
	peer_build || return 1
	mapfile -t args < <(_peer_dynamic_args "$PEER" /bin/composefs-setup-root)
	[ ${#args[@]} -ge 2 ] || return 1
	initrd_build "$WORK/initrd-peer.img" "$QEMU_DIR/guest/bench-init" --modules "$MODULES" \
		--add "$VERIROOT_BIN:/bin/veriroot" --add /bin/busybox:/bin/busybox \
		--symlink busybox:/bin/sh "${args[@]}"
}

peer_prepare_disk() {
	mkdir -p "$DISK_TREE/state/deploy/$DIGEST/etc" "$DISK_TREE/state/deploy/$DIGEST/var"
}

# _peer_kmsg_time LOG WORD: the kernel timestamp (s) of bench-init's marker.
_peer_kmsg_time() {
	grep -a -m1 "VT-BENCH-KMSG:.*vt-bench: $2" "$1" | sed 's/^[^[]*\[ *\([0-9.]*\)\].*/\1/'
}

peer_boot() {
	local tool=$1 with_tpm=$2 bootlog=$3 want start end
	local args=()
	[ "$with_tpm" = no ] || args=(--tpm)
	vm_boot --name "$SCENARIO" --initrd "$WORK/initrd-peer.img" --disk "$SCENARIO_DIR/disk.img" \
		"${args[@]}" --append "root=LABEL=vt-root rw composefs=$DIGEST vt.tool=$tool" \
		--timeout "$BOOT_TIMEOUT" --log "$bootlog.raw" || true
	tr -d '\r\000' <"$bootlog.raw" >"$bootlog" && rm -f "$bootlog.raw"
	grep -aq "VT-BENCH: rc=0 sysroot: composefs:$DIGEST /sysroot overlay ro,.*verity=require" "$bootlog" || {
		echo "$tool did not mount composefs:$DIGEST with verity=require at /sysroot (see $bootlog):" \
			"$(grep -a -m1 'VT-BENCH: rc=' "$bootlog")"
		return 1
	}
	# The same job: /etc overlaid and /var bound from the deployment's state.
	for want in ' /sysroot/etc overlay rw,' ' /sysroot/var ext4 rw,'; do
		grep -aq "VT-BENCH-MOUNT: .*$want" "$bootlog" || {
			echo "$tool: no mount matching '$want' (see $bootlog)"
			return 1
		}
	done
	start=$(_peer_kmsg_time "$bootlog" start)
	end=$(_peer_kmsg_time "$bootlog" end)
	if [ -z "$start" ] || [ -z "$end" ]; then
		echo "$tool: no timing markers in $bootlog"
		return 1
	fi
	awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f\n", (e - s) * 1000 }'
}

# peer_mount_shape LOG: mount point, type and ro/rw of each mount under
# /sysroot (the sources and layer syntax differ between the tools).
peer_mount_shape() {
	grep -a '^VT-BENCH-MOUNT: ' "$1" | awk '{ split($5, o, ","); print $3, $4, o[1] }'
}
