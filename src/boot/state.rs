//! Per-deployment writable state on the real root:
//! `state/deploy/<hex>/etc/{upper,work}` and `state/deploy/<hex>/var`.

use std::fmt;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, Mode, CWD};
use rustix::io::Errno;

use crate::kernel::mount::open_path;

#[derive(Debug)]
pub struct StateError {
    pub path: PathBuf,
    pub errno: Errno,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot prepare state directory {}: {}",
            self.path.display(),
            self.errno
        )?;
        if self.errno == Errno::ROFS {
            write!(
                f,
                "; the real root is mounted read-only but /etc and /var live on it: \
                 boot with `rw`, or use transient /etc and /var"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for StateError {}

/// The deployment's state directory for an image.
pub fn deploy_dir(sysroot: &Path, digest_hex: &str) -> PathBuf {
    sysroot.join("state/deploy").join(digest_hex)
}

/// Makes `path` and its missing parents, each with `mode`, and opens it
/// (O_PATH). An existing directory keeps its mode: it is the user's.
pub fn ensure_dir(path: &Path, mode: u32) -> Result<OwnedFd, StateError> {
    let err = |errno| StateError {
        path: path.to_owned(),
        errno,
    };
    match open_path(CWD, path.to_str().ok_or_else(|| err(Errno::INVAL))?) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(err(e)),
    }
    if let Some(parent) = path.parent() {
        ensure_dir(parent, 0o755)?;
    }
    match rfs::mkdirat(CWD, path, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(err(e)),
    }
    // mkdir obeys the umask; the mode here is part of the contract
    // (upper 0755: the merged /etc takes its root's mode from it).
    rfs::chmod(path, Mode::from_raw_mode(mode)).map_err(err)?;
    open_path(CWD, path.to_str().ok_or_else(|| err(Errno::INVAL))?).map_err(err)
}
