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

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.errno)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn deploy_dir_is_per_image() {
        assert_eq!(
            deploy_dir(Path::new("/sysroot"), "ab12"),
            Path::new("/sysroot/state/deploy/ab12")
        );
    }

    #[test]
    fn missing_directories_get_their_modes_whatever_the_umask() {
        let root = tempfile::tempdir().unwrap();
        // The umask is the process's: 077 only takes group/other bits, which
        // no other unit test of this binary looks at.
        let old = rustix::process::umask(Mode::from_raw_mode(0o077));
        let work = root.path().join("state/deploy/ab/etc/work");
        let made = ensure_dir(&work, 0o700);
        let upper = root.path().join("state/deploy/ab/etc/upper");
        let made_upper = ensure_dir(&upper, 0o755);
        rustix::process::umask(old);
        made.unwrap();
        made_upper.unwrap();
        assert_eq!(mode(&work), 0o700);
        // upper 0755 even under umask 077: the merged /etc takes its mode.
        assert_eq!(mode(&upper), 0o755);
        assert_eq!(mode(&root.path().join("state/deploy/ab/etc")), 0o755);
        assert_eq!(mode(&root.path().join("state")), 0o755);
    }

    #[test]
    fn an_existing_directory_keeps_the_users_mode() {
        let root = tempfile::tempdir().unwrap();
        let var = root.path().join("var");
        std::fs::create_dir(&var).unwrap();
        std::fs::set_permissions(&var, std::fs::Permissions::from_mode(0o750)).unwrap();
        ensure_dir(&var, 0o755).unwrap();
        assert_eq!(mode(&var), 0o750);
    }

    #[test]
    fn a_file_in_the_way_is_an_error_naming_it() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        std::fs::write(&etc, "").unwrap();
        let e = ensure_dir(&etc.join("upper"), 0o755).unwrap_err();
        assert!(e.to_string().contains(etc.to_str().unwrap()), "{e}");
        assert_eq!(e.errno, Errno::NOTDIR);
    }
}
