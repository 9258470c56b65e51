//! The few kernel interfaces rustix has no safe wrapper for: fs-verity and
//! loop-device ioctls. Every `unsafe` block of veriroot is here, in its own
//! crate, so that the `veriroot` crate itself can `forbid(unsafe_code)`.
//!
//! Architectures: the opcodes are built by rustix's `opcode` helpers, which
//! encode `_IOW`/`_IOWR` for the target (x86_64 and aarch64 share the
//! generic encoding; the values are asserted below at compile time, so a
//! build for either target checks them), and the structs hold only
//! fixed-size integers, laid out the same on every 64-bit Linux target.
//! Syscalls (`finit_module`, the mount API, `reboot`) go through rustix,
//! which has each architecture's syscall numbers.
#![deny(unsafe_op_in_unsafe_fn)]

use std::os::fd::{AsFd, BorrowedFd};

use rustix::io;
use rustix::ioctl::{self, opcode, Ioctl, IoctlOutput, Opcode, Setter, Updater};

/// `struct fsverity_digest` from `<linux/fsverity.h>`, with room for the
/// largest digest (SHA-512):
/// ```c
/// struct fsverity_digest { __u16 digest_algorithm; __u16 digest_size; __u8 digest[]; };
/// ```
#[repr(C)]
pub struct FsverityDigest {
    pub algorithm: u16,
    /// In: room in `digest`; out: the digest's length.
    pub size: u16,
    pub digest: [u8; 64],
}

/// `struct fsverity_enable_arg` from `<linux/fsverity.h>` (128 bytes).
#[repr(C)]
pub struct FsverityEnableArg {
    pub version: u32,
    pub hash_algorithm: u32,
    pub block_size: u32,
    pub salt_size: u32,
    pub salt_ptr: u64,
    pub sig_size: u32,
    pub reserved1: u32,
    pub sig_ptr: u64,
    pub reserved2: [u64; 11],
}

// The size in the opcode is that of the fixed header, as in the C macro.
const FS_IOC_MEASURE_VERITY: Opcode = opcode::read_write::<[u16; 2]>(b'f', 134);
const FS_IOC_ENABLE_VERITY: Opcode = opcode::write::<FsverityEnableArg>(b'f', 133);

// The kernel's ABI, checked when compiling for each target: the struct
// sizes of the C headers, and the opcodes <linux/fsverity.h> and
// <linux/loop.h> give on x86_64 and aarch64.
const _: () = {
    assert!(std::mem::size_of::<FsverityEnableArg>() == 128);
    assert!(std::mem::size_of::<LoopInfo64>() == 232);
    assert!(std::mem::size_of::<LoopConfig>() == 304);
    assert!(std::mem::size_of::<FsverityDigest>() == 68);
    // _IOWR('f', 134, struct fsverity_digest), _IOW('f', 133, struct fsverity_enable_arg)
    assert!(FS_IOC_MEASURE_VERITY == 0xc004_6686);
    assert!(FS_IOC_ENABLE_VERITY == 0x4080_6685);
};

/// `FS_IOC_MEASURE_VERITY`: the digest the kernel keeps for the file.
pub fn measure_verity(fd: BorrowedFd<'_>) -> io::Result<FsverityDigest> {
    let mut out = FsverityDigest {
        algorithm: 0,
        size: 64,
        digest: [0; 64],
    };
    // SAFETY: the opcode is FS_IOC_MEASURE_VERITY, whose argument is a
    // `struct fsverity_digest` followed by `size` bytes; `out` is that header
    // followed by exactly 64 bytes, and `size` says 64, so the kernel writes
    // within `out` (it fails with EOVERFLOW if the digest were larger).
    unsafe { ioctl::ioctl(fd, Updater::<FS_IOC_MEASURE_VERITY, _>::new(&mut out))? };
    Ok(out)
}

/// `FS_IOC_ENABLE_VERITY` with `block_size` and `hash_algorithm`, no salt
/// or signature: the parameters composefs digests assume.
pub fn enable_verity(fd: BorrowedFd<'_>, hash_algorithm: u32, block_size: u32) -> io::Result<()> {
    let arg = FsverityEnableArg {
        version: 1,
        hash_algorithm,
        block_size,
        salt_size: 0,
        salt_ptr: 0,
        sig_size: 0,
        reserved1: 0,
        sig_ptr: 0,
        reserved2: [0; 11],
    };
    // SAFETY: FS_IOC_ENABLE_VERITY takes a pointer to `struct
    // fsverity_enable_arg`, which `FsverityEnableArg` mirrors field for field
    // (128 bytes); the salt and signature pointers are null with zero sizes,
    // so the kernel reads nothing else.
    unsafe { ioctl::ioctl(fd, Setter::<FS_IOC_ENABLE_VERITY, _>::new(arg)) }
}

/// `struct loop_info64` from `<linux/loop.h>` (232 bytes).
#[repr(C)]
pub struct LoopInfo64 {
    pub device: u64,
    pub inode: u64,
    pub rdevice: u64,
    pub offset: u64,
    pub sizelimit: u64,
    pub number: u32,
    pub encrypt_type: u32,
    pub encrypt_key_size: u32,
    pub flags: u32,
    pub file_name: [u8; 64],
    pub crypt_name: [u8; 64],
    pub encrypt_key: [u8; 32],
    pub init: [u64; 2],
}

/// `struct loop_config` from `<linux/loop.h>` (304 bytes).
#[repr(C)]
pub struct LoopConfig {
    pub fd: u32,
    pub block_size: u32,
    pub info: LoopInfo64,
    pub reserved: [u64; 8],
}

pub const LO_FLAGS_READ_ONLY: u32 = 1;
pub const LO_FLAGS_AUTOCLEAR: u32 = 4;
pub const LO_FLAGS_DIRECT_IO: u32 = 16;

// <linux/loop.h> defines these as plain numbers (no _IOC direction or size
// bits), the same on every architecture.
const LOOP_CONFIGURE: Opcode = 0x4C0A;
const LOOP_CTL_GET_FREE: Opcode = 0x4C82;

/// `LOOP_CONFIGURE` (5.8+): attach, set flags and block size in one call.
pub fn loop_configure(loop_fd: BorrowedFd<'_>, config: LoopConfig) -> io::Result<()> {
    // SAFETY: LOOP_CONFIGURE takes a pointer to `struct loop_config`, which
    // `LoopConfig` mirrors (304 bytes, checked by a test); the kernel only
    // reads it.
    unsafe { ioctl::ioctl(loop_fd, Setter::<LOOP_CONFIGURE, _>::new(config)) }
}

/// `LOOP_CTL_GET_FREE` on `/dev/loop-control`: the number of a free loop
/// device, which the ioctl returns as its result rather than through memory.
pub fn loop_ctl_get_free(control: impl AsFd) -> io::Result<u32> {
    struct GetFree;
    // SAFETY: LOOP_CTL_GET_FREE takes no argument and touches no user
    // memory; its result is the return value, read in `output_from_ptr`.
    unsafe impl Ioctl for GetFree {
        type Output = u32;
        const IS_MUTATING: bool = false;
        fn opcode(&self) -> Opcode {
            LOOP_CTL_GET_FREE
        }
        fn as_ptr(&mut self) -> *mut std::ffi::c_void {
            std::ptr::null_mut()
        }
        unsafe fn output_from_ptr(out: IoctlOutput, _: *mut std::ffi::c_void) -> io::Result<u32> {
            u32::try_from(out).map_err(|_| io::Errno::RANGE)
        }
    }
    // SAFETY: see `GetFree`.
    unsafe { ioctl::ioctl(control.as_fd(), GetFree) }
}
