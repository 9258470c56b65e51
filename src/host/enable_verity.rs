//! `veriroot enable-verity`: turn on fs-verity for every file of a
//! repository, e.g. after copying it or building it on a host whose
//! kernel has no fs-verity.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rustix::io::Errno;

use crate::boot::repository::{RepoError, Repository};
use crate::fsverity::digest::Algorithm;
use crate::kernel::verity_ioctl::{self, EnableOutcome};

#[derive(Debug)]
pub enum EnableError {
    /// The directory is not a repository, or its meta.json is unreadable.
    Repository(RepoError),
    /// Listing a directory or opening a file failed.
    Walk {
        path: PathBuf,
        error: std::io::Error,
    },
    /// `FS_IOC_ENABLE_VERITY` failed.
    Enable { path: PathBuf, errno: Errno },
}

impl fmt::Display for EnableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnableError::Repository(e) => e.fmt(f),
            EnableError::Walk { path, error } => {
                write!(f, "cannot enable fs-verity on {}: {error}", path.display())
            }
            EnableError::Enable { path, errno } => write!(
                f,
                "cannot enable fs-verity on {}: {errno}; {}",
                path.display(),
                verity_ioctl::enable_hint(*errno)
            ),
        }
    }
}

impl std::error::Error for EnableError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EnableError::Repository(e) => Some(e),
            EnableError::Walk { error, .. } => Some(error),
            EnableError::Enable { errno, .. } => Some(errno),
        }
    }
}

/// `veriroot enable-verity`: one line per file newly enabled, then a sum.
pub fn run(dir: &Path, algorithm: Option<Algorithm>) -> Result<ExitCode, EnableError> {
    let algorithm = match algorithm {
        Some(a) => a,
        None => repository_algorithm(dir)?,
    };
    let summary = enable_tree(dir, algorithm)?;
    for p in &summary.enabled {
        println!("enabled fs-verity ({algorithm}) on {}", p.display());
    }
    println!(
        "{}: {} file(s) newly enabled, {} already had fs-verity",
        dir.display(),
        summary.enabled.len(),
        summary.already
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Default)]
pub struct Summary {
    pub enabled: Vec<PathBuf>,
    pub already: usize,
}

/// The repository's algorithm from meta.json, SHA-512 (composefs-rs's
/// default) when it has none.
pub fn repository_algorithm(dir: &Path) -> Result<Algorithm, EnableError> {
    let repo = Repository::open(dir).map_err(EnableError::Repository)?;
    match repo.meta().map_err(EnableError::Repository)? {
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
    let io_err = |path: &Path, error| EnableError::Walk {
        path: path.to_owned(),
        error,
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
            match verity_ioctl::enable(&file, algorithm) {
                Ok(EnableOutcome::Enabled) => summary.enabled.push(path),
                Ok(EnableOutcome::AlreadyEnabled) => summary.already += 1,
                Err(errno) => return Err(EnableError::Enable { path, errno }),
            }
        }
    }
    Ok(())
}
