//! The `veriroot` binary: PID 1 in a minimal initrd, or a subcommand
//! (`cli` parses and dispatches; the work is in the library).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use veriroot::boot::{paths::HostPaths, pid1};
use veriroot::cli;

fn main() -> ExitCode {
    if rustix::process::getpid().is_init() {
        pid1::run();
    }
    let command = match cli::parse_args(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("veriroot: {e}\nTry 'veriroot --help'.");
            return ExitCode::from(2);
        }
    };
    match cli::run(command, &HostPaths::system()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("veriroot: {e}");
            ExitCode::FAILURE
        }
    }
}
