//! veriroot: verify a composefs image against the kernel command line and
//! mount it as the new root, in the initramfs.
//!
//! The boot path, one module per step:
//! `cmdline` → `repository` (open + verify) → `assemble` (via `mount`,
//! `state`) → hand-off (`init` as PID 1, or exit 0 under systemd).
#![deny(unsafe_code)]

pub mod assemble;
pub mod blockdev;
pub mod check;
pub mod cmdline;
pub mod commands;
pub mod commands_digest;
pub mod config;
pub mod digest;
pub mod enable;
pub mod eventlog;
pub mod extensions;
pub mod firmware;
pub mod fsverity;
pub mod hash;
pub mod init;
pub mod logger;
pub mod loopdev;
pub mod measure;
pub mod modules;
pub mod mount;
pub mod policy;
pub mod probe;
pub mod repository;
pub mod setup;
pub mod state;
mod sys;
pub mod sysext;
pub mod tpm;
pub mod uki;
pub mod verity;
