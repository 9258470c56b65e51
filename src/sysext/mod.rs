//! System extensions merged into the verified root: systemd-sysext's rules
//! (`rules`, pure logic on file contents) and reading what they need
//! through `verity=require` overlays (`read`). Opening and verifying the
//! extension images is the boot path's (`boot::extensions`).
#![forbid(unsafe_code)]

pub mod read;
pub mod rules;
