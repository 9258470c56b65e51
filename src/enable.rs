//! `veriroot enable-verity`: turn on fs-verity for every file of a
//! repository, e.g. after copying it or building it on a host whose
//! kernel has no fs-verity.

use std::fmt;
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use crate::digest::Algorithm;
use crate::repository::Repository;
use crate::verity::{self, EnableOutcome};

#[derive(Debug)]
pub struct EnableError {
    pub path: PathBuf,
    pub errno: Errno,
}

impl fmt::Display for EnableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot enable fs-verity on {}: {}; {}",
            self.path.display(),
            self.errno,
            verity::enable_hint(self.errno)
        )
    }
}

impl std::error::Error for EnableError {}

#[derive(Debug, Default)]
pub struct Summary {
    pub enabled: Vec<PathBuf>,
    pub already: usize,
}

/// The repository's algorithm from meta.json, SHA-512 (composefs-rs's
/// default) when it has none.
pub fn repository_algorithm(dir: &Path) -> Result<Algorithm, String> {
    let repo = Repository::open(dir).map_err(|e| e.to_string())?;
    match repo.meta().map_err(|e| e.to_string())? {
        Some((meta, _)) => Ok(meta.algorithm),
        None => Ok(Algorithm::Sha512),
    }
}

/// Enables fs-verity on every regular file below `dir` (symlinks are not
/// followed). Files that have it already are counted, not touched.
pub fn enable_tree(dir: &Path, algorithm: Algorithm) -> Result<Summary, EnableError> {
    let mut summary = Summary::default();
    walk(dir, algorithm, &mut summary)?;
    Ok(summary)
}

fn walk(dir: &Path, algorithm: Algorithm, summary: &mut Summary) -> Result<(), EnableError> {
    let io_err = |path: &Path, e: std::io::Error| EnableError {
        path: path.to_owned(),
        errno: Errno::from_io_error(&e).unwrap_or(Errno::IO),
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| io_err(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| io_err(&path, e))?;
        if kind.is_dir() {
            walk(&path, algorithm, summary)?;
        } else if kind.is_file() {
            let file = std::fs::File::open(&path).map_err(|e| io_err(&path, e))?;
            match verity::enable(&file, algorithm) {
                Ok(EnableOutcome::Enabled) => summary.enabled.push(path),
                Ok(EnableOutcome::AlreadyEnabled) => summary.already += 1,
                Err(errno) => return Err(EnableError { path, errno }),
            }
        }
    }
    Ok(())
}
