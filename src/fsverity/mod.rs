//! fs-verity digests: the `Digest` type (command line, repository names,
//! what the kernel measures) and `merkle`, the digest computed in
//! userspace for `veriroot digest` (host only; the boot path always asks
//! the kernel, `kernel::verity_ioctl`).
#![forbid(unsafe_code)]

pub mod digest;
pub mod merkle;

pub use digest::{Algorithm, Digest};
