//! The initrd boot path, in the order it runs. Everything here runs in the
//! initramfs; nothing here prints to stdout.
//!
//! | step | module |
//! |---|---|
//! | where the host is (injectable) | `paths` |
//! | the kernel command line: `composefs=`, `veriroot.sysext=` | `cmdline` |
//! | the initrd's configuration | `config`, `mount_modes` |
//! | the repository: open the image, compare its fs-verity digest | `repository` |
//! | extension images, verified like the root | `sysext_images` |
//! | per-deployment /etc and /var state | `state` |
//! | mount everything beside /sysroot, then move it there | `assemble` |
//! | verify → stage → measure → commit, for both modes | `setup` |
//! | hand-off as `/init` (PID 1) | `pid1` |
//! | hand-off as a systemd initrd unit (`veriroot setup-root`) | `setup_root` |
//! | what lies on the disk, opened as the adversary's | `disk` |
//! | an overall deadline: cap and stop instead of hanging | `watchdog` |
//! | after a refusal: emergency, power off, reboot or halt | `on_failure` |
//! | the last refusal, kept on the real root for the next boot | `refusal_record` |
#![forbid(unsafe_code)]

pub mod assemble;
pub mod cmdline;
pub mod config;
pub mod disk;
pub mod mount_modes;
pub mod on_failure;
pub mod paths;
pub mod pid1;
pub mod refusal_record;
pub mod repository;
pub mod setup;
pub mod setup_root;
pub mod signatures;
pub mod state;
pub mod sysext_images;
pub mod watchdog;
