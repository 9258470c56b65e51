//! `veriroot digest`: print files' fs-verity digests, computed from their
//! contents, in the format of `fsverity digest` (fsverity-utils).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::fsverity::digest::Algorithm;
use crate::fsverity::merkle;

/// One `sha256:<hex> FILE` line per file; a file that cannot be read is
/// reported on stderr and the others are still done. Exit 1 if any failed.
pub fn run(files: &[PathBuf], algorithm: Algorithm) -> Result<ExitCode, std::io::Error> {
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for path in files {
        match merkle::digest_path(algorithm, path) {
            // Only stdout's own failure ends the run (a closed pipe).
            Ok(d) => writeln!(out, "{d} {}", path.display())?,
            Err(e) => {
                eprintln!("veriroot: {}: {e}", path.display());
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
