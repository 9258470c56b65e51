//! veriroot: verify a composefs image against the kernel command line,
//! mount it as the new root and measure it into the TPM, in the initramfs.
//!
//! The boot path, in the order it runs (`boot`):
//!
//! 1. `boot::cmdline` parses `composefs=` / `composefs.digest=` and
//!    `veriroot.sysext=` into `ImageRef`s and `Digest`s;
//! 2. `boot::config` reads the initrd's configuration (TPM policy and PCR,
//!    how /etc and /var are mounted: `boot::mount_modes`);
//! 3. `boot::repository` opens the image in the composefs repository on
//!    the real root and compares its fs-verity digest, measured by the
//!    kernel (`kernel::verity_ioctl`), with the command line's;
//! 4. `boot::assemble` mounts EROFS + overlayfs `verity=require` and the
//!    state (`boot::state`) beside /sysroot through the new mount API
//!    (`kernel::mount`) and moves the finished tree onto /sysroot in one
//!    step;
//! 5. `measure` extends the PCRs (`measure::measurer`, through the `tpm`
//!    client) with the event strings of `measure::events` and writes
//!    systemd's measurement log (`measure::eventlog`);
//! 6. hand-off: `boot::pid1` switches root itself (veriroot as /init), or
//!    `boot::setup_root` exits for systemd's initrd.
//!
//! `boot::setup` runs steps 3–5 for both modes. System extensions
//! (`sysext`) are verified like the root and merged into its overlay.
//!
//! Around it: `kernel` holds every kernel interface (the only `unsafe`
//! code is `kernel::sys`), `fsverity` the digest type and the userspace
//! Merkle tree, `host` the tools that never run in the initrd (`check`,
//! `predict`, `log`, `digest`, `enable-verity`, UKI reading), `cli` the
//! command-line front end.
#![forbid(unsafe_code)]
// kernel::sys is the one module allowed `unsafe`: it overrides this with
// its own `allow`, which `forbid` would refuse, so the crate denies and
// each other module forbids.

pub mod boot;
pub mod cli;
pub(crate) mod fsverity;
// The fuzz targets' entry points (fuzz/): one per parser of untrusted
// bytes, so the internal modules can stay `pub(crate)`. Not an API.
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod hex;
pub(crate) mod host;
pub(crate) mod kernel;
pub(crate) mod logger;
pub mod measure;
pub(crate) mod signature;
pub(crate) mod sysext;
pub(crate) mod text;
pub mod tpm;
