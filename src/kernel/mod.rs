//! The kernel interfaces veriroot uses, each behind a safe, typed wrapper
//! that turns errno into meaning where the syscall fails. The `unsafe`
//! ioctls themselves are in the `veriroot-kernel-sys` crate (kernel-sys/).
//!
//! | module | interface |
//! |---|---|
//! | `mount` | the new mount API: fs contexts, detached mounts |
//! | `loopdev` | read-only loop devices, for kernels without file-backed EROFS |
//! | `verity_ioctl` | `FS_IOC_MEASURE_VERITY` / `FS_IOC_ENABLE_VERITY` on open files |
//! | `features` | what the running kernel supports, asked by trying |
//! | `modules` | loading the initrd's modules in `modules.dep` order |
//! | `blockdev` | finding `root=` (superblocks of ext4 and btrfs), waiting for it |
//! | `firmware` | whether ACPI or the device tree describes a TPM |
#![forbid(unsafe_code)]

pub mod blockdev;
pub mod features;
pub mod firmware;
pub mod loopdev;
pub mod modules;
pub mod mount;
pub mod verity_ioctl;

pub(crate) use veriroot_kernel_sys as sys;
