//! The initrd build of `veriroot` (installed in the initramfs as
//! `/usr/bin/veriroot` or `/init`): PID 1 and `setup-root` only. The host
//! commands (`check`, `enable-verity`, `digest`, `predict`, `log`) are not
//! reachable from here, so the linker drops them (docs/design.md, "Two
//! builds"); asked for one, it says which binary has it.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    veriroot::cli::main(veriroot::cli::run_initrd)
}
