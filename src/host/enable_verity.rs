//! `veriroot enable-verity`: turn on fs-verity for every file of a
//! repository, e.g. after copying it or building it on a host whose
//! kernel has no fs-verity.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rustix::io::Errno;

use crate::boot::repository::{RepoError, Repository};
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

use crate::boot::disk::{Base, DiskError, Symlinks};
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
    /// An entry changed under the walk (now a symlink, a FIFO...).
    Disk(DiskError),
    /// `FS_IOC_ENABLE_VERITY` failed.
    Enable { path: PathBuf, errno: Errno },
}

impl fmt::Display for EnableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnableError::Repository(e) => e.fmt(f),
            EnableError::Disk(e) => write!(f, "cannot enable fs-verity: {e}"),
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
            EnableError::Disk(e) => Some(e),
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

/// Walks by directory fd: each entry's type is read without following it,
/// and a file is opened relative to its directory with symlinks refused
/// and its type checked on the fd, so a file swapped for a symlink while
/// the walk runs cannot make anything outside the repository read-only.
fn walk(dir: &Path, algorithm: Algorithm, summary: &mut Summary) -> Result<(), EnableError> {
    let fd = rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| EnableError::Walk {
        path: dir.to_owned(),
        error: errno.into(),
    })?;
    walk_fd(&fd, dir, algorithm, summary)
}

fn walk_fd(
    fd: &OwnedFd,
    dir: &Path,
    algorithm: Algorithm,
    summary: &mut Summary,
) -> Result<(), EnableError> {
    let walk_err = |path: &Path, errno: Errno| EnableError::Walk {
        path: path.to_owned(),
        error: errno.into(),
    };
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(fd).map_err(|e| walk_err(dir, e))? {
        let entry = entry.map_err(|e| walk_err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    names.sort();
    let base = Base::new(fd.as_fd(), dir);
    for name in names {
        let path = dir.join(&name);
        let stat = rfs::statat(fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| walk_err(&path, e))?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                let sub = base
                    .open_dir(&name, Symlinks::Refuse)
                    .map_err(EnableError::Disk)?;
                let sub = rfs::openat(
                    &sub,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| walk_err(&path, e))?;
                walk_fd(&sub, &path, algorithm, summary)?;
            }
            FileType::RegularFile => {
                let file = base
                    .open_file(&name, Symlinks::Refuse, None)
                    .map_err(EnableError::Disk)?;
                match verity_ioctl::enable(&file, algorithm) {
                    Ok(EnableOutcome::Enabled) => summary.enabled.push(path),
                    Ok(EnableOutcome::AlreadyEnabled) => summary.already += 1,
                    Err(errno) => return Err(EnableError::Enable { path, errno }),
                }
            }
            // images/<hex> links, and nothing else that could be a file.
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_fifos_are_never_opened_and_a_failure_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("composefs");
        std::fs::create_dir_all(repo.join("objects/ab")).unwrap();
        std::fs::create_dir_all(repo.join("images")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", repo.join("images/x")).unwrap();
        rfs::mkfifoat(
            rfs::CWD,
            repo.join("objects/ab/fifo"),
            Mode::from_raw_mode(0o600),
        )
        .unwrap();
        // Only a FIFO and a link: nothing to enable, nothing blocks.
        let summary = enable_tree(&repo, Algorithm::Sha256).unwrap();
        assert!(summary.enabled.is_empty() && summary.already == 0);
        // A regular file is enabled, or (no fs-verity on this host's
        // filesystem) the failure names it.
        std::fs::write(repo.join("objects/ab/cd"), b"x").unwrap();
        match enable_tree(&repo, Algorithm::Sha256) {
            Ok(s) => assert_eq!(s.enabled, [repo.join("objects/ab/cd")]),
            Err(e) => assert!(
                e.to_string()
                    .contains(&repo.join("objects/ab/cd").display().to_string()),
                "{e}"
            ),
        }
    }
}
