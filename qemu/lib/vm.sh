# shellcheck shell=bash
# Boot the guest kernel under QEMU TCG with a serial log.
#
#   source qemu/lib/vm.sh          # also sources kernel.sh; call kernel_fetch first
#   vm_boot --name NAME --initrd FILE [--kernel FILE] [--append "ARGS"]
#           [--disk FILE]... [--tpm]
#           [--tpm-banks sha256[,...]] [--tpm-state DIR] [--timeout SECONDS] [--log FILE]
#           [--stop-on REGEX] [--blkdebug CONF] [--tpm-fault SPEC]
#           [-- EXTRA_QEMU_ARGS...]
#   vm_boot --name NAME --uefi CODE --uefi-vars VARS --esp DIR|IMAGE [--disk ...] ...
#
# --kernel: default $KERNEL_IMAGE (the bzImage). An uncompressed vmlinux (PVH
#   entry) would save ~2 s of self-decompression, but under PVH the guest's
#   ACPI fails as soon as a TPM is attached (no /dev/tpm0, no ACPI power off).
# The guest architecture is qemu/lib/arch.sh's selection (arch_select):
#   x86_64   qemu-system-x86_64 (pc), console ttyS0, TPM as tpm-tis (ACPI)
#   aarch64  qemu-system-aarch64 -M virt, console ttyAMA0, TPM as
#            tpm-tis-device (MMIO, in the device tree)
# Kernel command line: ARGS then "console=<console> panic=-1 oops=panic".
#   VM_PANIC_ARG='' leaves panic=-1 out (initramfs-tools reads it too: with
#   it, its panic reboots at once instead of running its panic scripts).
# --disk: raw virtio-blk, in order (/dev/vda, /dev/vdb, ...).
# --uefi CODE: boot firmware instead of a kernel (no --kernel/--initrd/
#   --append): OVMF's CODE read-only and a writable VARS copy as pflash, on
#   q35 with SMM and secure pflash (what OVMF's Secure Boot build needs); the
#   firmware boots \EFI\BOOT\BOOTX64.EFI from --esp DIR, a FAT
#   disk QEMU makes of DIR (SATA; writable: ide-hd refuses read-only
#   drives; the --disk ones stay virtio), or --esp IMAGE, a disk image
#   file attached the same way (what a boot loader that renames files
#   needs: qemu/lib/bootcount.sh).
# --tpm: a fresh swtpm (TPM 2.0) for this boot only, killed whatever happens;
#   unmanufactured, all four PCR banks active (sha1 sha256 sha384 sha512).
# --tpm-banks LIST: the same (implies --tpm) made by swtpm_setup with only
#   LIST active, e.g. sha256 (what swtpm_setup does by default); +0.6 s.
# --tpm-state DIR: (implies --tpm) swtpm keeps its state in DIR, created
#   if absent and kept afterwards: the next boot with the same DIR has the
#   same TPM (its seeds, so what it sealed; PCRs reset as at any power-on).
# --stop-on REGEX: stop QEMU once this boot's serial output matches REGEX
#   (grep -E), for a guest that halts and so never exits by itself.
# --blkdebug CONF: the first --disk goes through QEMU's blkdebug driver
#   with CONF (its [inject-error] rules: I/O errors on chosen sectors).
# --tpm-fault SPEC: (implies --tpm) QEMU reaches swtpm through
#   qemu/lib/tpm-fault, which injects SPEC (kill-after-extend=PCR[:N]:
#   swtpm is killed once it has answered the N-th PCR_Extend of PCR); its
#   log is tpm-fault.log next to swtpm.log.
# No network card (-nic none); add one after "--" if needed.
# Logs go to target/scenarios/NAME/ (aarch64: target/scenarios/aarch64/NAME/): serial.log (or --log FILE; appended,
# one separator line before and after each boot), qemu.stderr, swtpm.log.
# VM_VERBOSE=1 also copies the serial output to stderr as it comes.
#
# Returns 0  the guest powered off (QEMU exited, "reboot: Power down" logged)
#         2  QEMU exited but the guest did not power off: it panicked
#            (panic=-1 reboots, -no-reboot exits) or rebooted
#         3  stopped: the output matched --stop-on REGEX
#         124 timeout (QEMU killed)
#         1  QEMU or swtpm failed, or bad usage
#
# vm_boot runs in a subshell: its traps and variables do not leak into the
# caller, and it cannot set variables for it.

_VM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=qemu/lib/kernel.sh
source "$_VM_LIB_DIR/kernel.sh"

# vm_scenario_dir NAME: print the log directory of a scenario:
# $VERIROOT_SCENARIOS (default target/scenarios), then GUEST_PREFIX
# (qemu/lib/scenario.sh: "aarch64/", "k7.2/", ...; without it, the
# architecture's folder unless x86_64), then NAME.
vm_scenario_dir() {
	local prefix=${GUEST_PREFIX-}
	if [ -z "${GUEST_PREFIX+set}" ] && [ "$VM_ARCH" != x86_64 ]; then prefix=$VM_ARCH/; fi
	printf '%s\n' "${VERIROOT_SCENARIOS:-$VERIROOT_DIR/target/scenarios}/$prefix$1"
}

# vm_scenario_reset NAME: empty a scenario's log directory (logs are appended).
vm_scenario_reset() {
	local dir
	dir=$(vm_scenario_dir "$1") && rm -rf "$dir" && mkdir -p "$dir"
}

# _vm_parse ARGS...: set the _vm_* option variables.
_vm_parse() {
	_vm_name=vm _vm_initrd='' _vm_append='' _vm_tpm='' _vm_timeout=120 _vm_log=''
	_vm_tpm_banks='' _vm_kernel=${KERNEL_IMAGE:-} _vm_uefi='' _vm_vars='' _vm_esp='' _vm_stop_on=''
	_vm_disks=() _vm_extra=() _vm_blkdebug='' _vm_tpm_fault='' _vm_tpm_dir=''
	while [ $# -gt 0 ]; do
		case $1 in
		--tpm) _vm_tpm=1 && shift && continue ;;
		--tpm-banks) _vm_tpm=1 ;;
		--) shift && _vm_extra=("$@") && return 0 ;;
		esac
		if [ $# -lt 2 ]; then
			echo "vm_boot: unknown option or missing value: '$1'" >&2
			return 1
		fi
		case $1 in
		--name) _vm_name=$2 ;;
		--initrd) _vm_initrd=$2 ;;
		--kernel) _vm_kernel=$2 ;;
		--append) _vm_append=$2 ;;
		--disk) _vm_disks+=("$2") ;;
		--timeout) _vm_timeout=$2 ;;
		--log) _vm_log=$2 ;;
		--tpm-banks) _vm_tpm_banks=$2 ;;
		--uefi) _vm_uefi=$2 ;;
		--uefi-vars) _vm_vars=$2 ;;
		--esp) _vm_esp=$2 ;;
		--stop-on) _vm_stop_on=$2 ;;
		--blkdebug) _vm_blkdebug=$2 ;;
		--tpm-fault) _vm_tpm_fault=$2 _vm_tpm=1 ;;
		--tpm-state) _vm_tpm_dir=$2 _vm_tpm=1 ;;
		*)
			echo "vm_boot: unknown option '$1'" >&2
			return 1
			;;
		esac
		shift 2
	done
}

# _vm_check: the inputs exist.
_vm_check() {
	local f boot=("$_vm_kernel" "$_vm_initrd")
	if [ -n "$_vm_uefi" ]; then
		boot=("$_vm_uefi" "$_vm_vars")
		[ -d "$_vm_esp" ] || [ -f "$_vm_esp" ] ||
			{ echo "vm_boot: --uefi needs --esp DIR|IMAGE (got '$_vm_esp')" >&2; return 1; }
	fi
	for f in "${boot[@]}" "${_vm_disks[@]}"; do
		if [ -z "$f" ] || [ ! -f "$f" ]; then
			echo "vm_boot: missing file '${f}' (kernel_fetch run? --initrd given?)" >&2
			return 1
		fi
	done
}

# _vm_tpm_setup STATE BANKS SWTPM_LOG: manufacture a TPM with only BANKS active.
_vm_tpm_setup() {
	swtpm_setup --tpm2 --tpmstate "$1" --pcr-banks "$2" --logfile "$3" >/dev/null
}

# _vm_tpm_start STATE SWTPM_LOG: swtpm on STATE/sock, pid in STATE/pid.
_vm_tpm_start() {
	local i
	swtpm socket --tpm2 --tpmstate dir="$1" --ctrl type=unixio,path="$1/sock" \
		--daemon --pid file="$1/pid" --log file="$2",level=1 || return 1
	# 30 s: a loaded 2-core host (CI) is slow, not broken.
	for i in $(seq 300); do
		[ -S "$1/sock" ] && [ -s "$1/pid" ] && return 0
		[ "$i" = 300 ] || sleep 0.1
	done
	echo "vm_boot: swtpm did not come up in 30 s: $(_vm_last_line "$2") (see $2)" >&2
	return 1
}

# _vm_tpm_fault_start STATE LOG: qemu/lib/tpm-fault between QEMU
# (STATE/fault.sock) and swtpm (STATE/sock), injecting $_vm_tpm_fault.
_vm_tpm_fault_start() {
	local i
	# shellcheck disable=SC2094 # it appends its own lines, its tracebacks follow
	python3 "$_VM_LIB_DIR/tpm-fault" "$1/sock" "$1/fault.sock" "$1/pid" "$_vm_tpm_fault" "$2" \
		</dev/null >>"$2" 2>&1 &
	_vm_fault_pid=$!
	for i in $(seq 50); do
		[ -S "$1/fault.sock" ] && return 0
		[ "$i" = 50 ] || sleep 0.1
	done
	echo "vm_boot: tpm-fault did not come up (see $2)" >&2
	return 1
}

# _vm_pid_is PID NAME: is PID running NAME, not a zombie (guards pid reuse;
# a daemonised swtpm that exited stays a zombie if nobody reaps it)?
_vm_pid_is() {
	local st
	[ -n "$1" ] && st=$(cat "/proc/$1/status" 2>/dev/null) &&
		grep -q "^Name:[[:space:]]*$2\$" <<<"$st" &&
		! grep -q '^State:[[:space:]]*Z' <<<"$st"
}

# _vm_tpm_stop STATE [keep]: kill swtpm by its pid file, then remove STATE
# (keep: only its socket and pid file).
_vm_tpm_stop() {
	local pid='' i
	[ -d "$1" ] || return 0
	[ ! -s "$1/pid" ] || pid=$(cat "$1/pid")
	if _vm_pid_is "$pid" swtpm; then
		kill "$pid" 2>/dev/null || true
		for i in $(seq 20); do
			_vm_pid_is "$pid" swtpm || break
			[ "$i" = 20 ] && kill -9 "$pid" 2>/dev/null
			sleep 0.1
		done
	fi
	if [ "${2:-}" = keep ]; then
		rm -f "$1/sock" "$1/pid"
	else
		rm -rf "$1"
	fi
}

# _vm_qemu_cmd TPM_STATE: fill _vm_cmd with the full command line.
_vm_qemu_cmd() {
	local i
	_vm_cmd=(timeout --kill-after=10 "$_vm_timeout"
		"$VM_QEMU" "${VM_MACHINE[@]}" -smp 1 -m 1024 -nographic -no-reboot -nic none)
	if [ -n "$_vm_uefi" ]; then
		# UEFI boots are x86_64 only (OVMF; the uki-* scenarios).
		local _vm_esp_fat=''
		[ ! -d "$_vm_esp" ] || _vm_esp_fat=1
		_vm_cmd+=(-machine "q35,smm=on" -global "driver=cfi.pflash01,property=secure,value=on"
			-drive "if=pflash,format=raw,unit=0,readonly=on,file=$_vm_uefi"
			-drive "if=pflash,format=raw,unit=1,file=$_vm_vars"
			-drive "file=${_vm_esp_fat:+fat:rw:}$_vm_esp,format=raw,media=disk")
	else
		_vm_cmd+=(-kernel "$_vm_kernel" -initrd "$_vm_initrd"
			-append "${_vm_append:+$_vm_append }console=$VM_CONSOLE ${VM_PANIC_ARG-panic=-1 }oops=panic")
	fi
	for i in "${!_vm_disks[@]}"; do
		if [ "$i" = 0 ] && [ -n "$_vm_blkdebug" ]; then
			_vm_cmd+=(-drive "driver=raw,if=none,id=disk$i,file.driver=blkdebug,file.config=$_vm_blkdebug,file.image.filename=${_vm_disks[$i]}")
		else
			_vm_cmd+=(-drive "file=${_vm_disks[$i]},format=raw,if=none,id=disk$i")
		fi
		_vm_cmd+=(-device "virtio-blk-pci,drive=disk$i")
	done
	if [ -n "$1" ]; then
		local sock=$1/sock
		[ -z "$_vm_tpm_fault" ] || sock=$1/fault.sock
		_vm_cmd+=(-chardev "socket,id=chrtpm,path=$sock"
			-tpmdev "emulator,id=tpm0,chardev=chrtpm" -device "$VM_TPM_DEVICE,tpmdev=tpm0")
	fi
	_vm_cmd+=("${_vm_extra[@]}")
}

# _vm_run LOG STDERR_LOG OFFSET: run _vm_cmd in the background (so a signal
# to us can stop it: timeout puts QEMU in its own process group), echo its
# status; 3 if --stop-on matched the log after OFFSET and QEMU was stopped.
_vm_run() {
	local rc=0 tail_pid='' watch_pid='' stopped=$1.stopped
	rm -f "$stopped"
	"${_vm_cmd[@]}" </dev/null >>"$1" 2>>"$2" &
	_vm_pid=$!
	if [ "${VM_VERBOSE:-0}" = 1 ]; then
		tail -n 0 -s 0.2 --pid="$_vm_pid" -f "$1" >&2 &
		tail_pid=$!
	fi
	if [ -n "$_vm_stop_on" ]; then
		# Polled: the match is a line the guest prints as it stops.
		(
			while kill -0 "$_vm_pid" 2>/dev/null; do
				if grep -aqE -- "$_vm_stop_on" < <(tail -c "+$(($3 + 1))" "$1"); then
					: >"$stopped"
					kill "$_vm_pid" 2>/dev/null
					break
				fi
				sleep 0.5
			done
		) &
		watch_pid=$!
	fi
	wait "$_vm_pid" || rc=$?
	_vm_pid=''
	[ -z "$tail_pid" ] || wait "$tail_pid" || true
	[ -z "$watch_pid" ] || wait "$watch_pid" || true
	if [ -e "$stopped" ]; then
		rm -f "$stopped"
		return 3
	fi
	return "$rc"
}

# _vm_status RC LOG OFFSET: map timeout's status and the log to our codes.
_vm_status() {
	case $1 in
	3) return 3 ;;
	124 | 137) return 124 ;;
	0) ;;
	*) return 1 ;;
	esac
	# Not "tail | grep -q": with pipefail, grep quitting early can fail the pipe.
	if grep -aq 'reboot: Power down' < <(tail -c "+$(($3 + 1))" "$2"); then
		return 0
	fi
	return 2
}

# _vm_cleanup: EXIT trap of the vm_boot subshell.
_vm_cleanup() {
	if _vm_pid_is "${_vm_pid:-}" timeout; then
		kill "$_vm_pid" 2>/dev/null || true
		wait "$_vm_pid" 2>/dev/null || true
	fi
	if [ -n "${_vm_fault_pid:-}" ] && kill -0 "$_vm_fault_pid" 2>/dev/null; then
		kill "$_vm_fault_pid" 2>/dev/null || true
		wait "$_vm_fault_pid" 2>/dev/null || true
	fi
	[ -z "${_vm_tpm_state:-}" ] || _vm_tpm_stop "$_vm_tpm_state" ${_vm_tpm_dir:+keep}
}

vm_boot() (
	local dir log stderr_log offset err_offset start rc=0 what attempt
	_vm_tpm_state='' _vm_pid='' _vm_fault_pid=''
	trap _vm_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	_vm_parse "$@" || return 1
	_vm_check || return 1
	dir=$(vm_scenario_dir "$_vm_name")
	log=${_vm_log:-$dir/serial.log}
	stderr_log=$dir/qemu.stderr
	mkdir -p "$dir" "$(dirname "$log")" || return 1
	if [ -n "$_vm_tpm" ]; then
		if [ -n "$_vm_tpm_dir" ]; then
			# A socket or pid file left by a killed run would pass for ready.
			mkdir -p "$_vm_tpm_dir" && rm -f "$_vm_tpm_dir/sock" "$_vm_tpm_dir/pid" || return 1
			_vm_tpm_state=$_vm_tpm_dir
		else
			_vm_tpm_state=$(mktemp -d /tmp/veriroot-tpm.XXXXXX)
		fi &&
			{ [ -z "$_vm_tpm_banks" ] ||
				_vm_tpm_setup "$_vm_tpm_state" "$_vm_tpm_banks" "$dir/swtpm.log" ||
				{ echo "vm_boot: $_vm_name: swtpm_setup failed: $(_vm_last_line "$dir/swtpm.log")" >&2 && false; }; } &&
			_vm_tpm_start "$_vm_tpm_state" "$dir/swtpm.log" || return 1
		[ -z "$_vm_tpm_fault" ] || _vm_tpm_fault_start "$_vm_tpm_state" "$dir/tpm-fault.log" || return 1
	fi
	_vm_qemu_cmd "$_vm_tpm_state"
	touch "$stderr_log" || return 1
	for attempt in 1 2; do
		printf '===== vm_boot %s: start %s =====\n' "$_vm_name" "$(date -u +%FT%TZ)" >>"$log"
		offset=$(stat -c %s "$log") err_offset=$(stat -c %s "$stderr_log")
		start=$EPOCHREALTIME rc=0
		_vm_run "$log" "$stderr_log" "$offset" || rc=$?
		_vm_status "$rc" "$log" "$offset" || rc=$?
		# QEMU that failed before the guest printed a byte (a TPM socket
		# not ready, a host under load), or that aborted on one of its own
		# assertions (QEMU 10.0's TCG once did, 5 s into a Debian boot:
		# "physmem.c: iotlb_to_section: Assertion ... failed"), says nothing
		# of the guest: once more. Twice is reported.
		if [ "$rc" != 1 ] || [ "$attempt" = 2 ]; then break; fi
		if [ "$(stat -c %s "$log")" = "$offset" ]; then
			echo "vm_boot: $_vm_name: QEMU failed before the guest started ($(_vm_last_line "$stderr_log" "$err_offset")), starting it again" >&2
		elif grep -aqE '^qemu-system-[a-z0-9_]+: [^ ]+\.c:[0-9]+: [^ ]+: Assertion .* failed' < <(tail -c "+$((err_offset + 1))" "$stderr_log"); then
			echo "vm_boot: $_vm_name: QEMU aborted on its own assertion ($(_vm_last_line "$stderr_log" "$err_offset")), starting the boot again" >&2
			# The aborted boot's output is kept aside, not in the boot's log:
			# no check may read a line the retried boot did not print.
			tail -c "+$((offset + 1))" "$log" >"$log.aborted" && truncate -s "$offset" "$log" || return 1
			printf '\n===== vm_boot %s: QEMU aborted, its output moved to %s =====\n' "$_vm_name" "$log.aborted" >>"$log"
		else
			break
		fi
		if [ -n "$_vm_tpm_state" ] && ! _vm_pid_is "$(cat "$_vm_tpm_state/pid" 2>/dev/null)" swtpm; then
			rm -f "$_vm_tpm_state/sock" "$_vm_tpm_state/pid"
			_vm_tpm_start "$_vm_tpm_state" "$dir/swtpm.log" || return 1
		fi
	done
	case $rc in
	0) what='powered off' ;;
	2) what='exited without powering off (panic or reboot)' ;;
	3) what="stopped at /$_vm_stop_on/" ;;
	124) what="timed out (--timeout $_vm_timeout)" ;;
	*) what="QEMU failed: $(_vm_last_line "$stderr_log" "$err_offset") (see $stderr_log)" rc=1 ;;
	esac
	what="$what after $(_vm_elapsed "$start") s"
	printf '\n===== vm_boot %s: rc=%s, %s =====\n' "$_vm_name" "$rc" "$what" >>"$log"
	echo "vm_boot: $_vm_name: $what" >&2
	return "$rc"
)

# _vm_last_line FILE [OFFSET]: FILE's last non-empty line after OFFSET,
# printable characters only, at most 200: for a one-line reason.
_vm_last_line() {
	tail -c "+$((${2:-0} + 1))" "$1" 2>/dev/null | grep -a . | tail -n 1 | tr -cd '[:print:]' | cut -c 1-200
}

# _vm_elapsed START: seconds since START ($EPOCHREALTIME), one decimal.
_vm_elapsed() {
	local now=$EPOCHREALTIME
	awk -v a="$1" -v b="$now" 'BEGIN { printf "%.1f", b - a }'
}
