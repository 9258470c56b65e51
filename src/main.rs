//! The `veriroot` binary, the full build: PID 1 in a minimal initrd, or any
//! subcommand (`cli` parses and dispatches; the work is in the library).
//! The initrd's smaller build is `src/bin/veriroot-initrd.rs`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    veriroot::cli::main(veriroot::cli::run)
}
