//! Per-deployment writable state on the real root:
//! `state/deploy/<hex>/etc/{upper,work}` and `state/deploy/<hex>/var`.
//!
//! fs-verity protects the image, not this: /etc and /var are exactly as
//! trustworthy as the real root itself (docs/design.md, threat model).
//! What veriroot does guarantee is that the state is what lies at these
//! paths on the real root's filesystem: every directory is created and
//! opened by fd from the real root's mount point, none may be a symlink
//! (`boot::disk`), and the mounts are given those fds, never a path the
//! kernel would resolve again.

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use crate::boot::disk::{Base, DiskError, DiskProblem, Symlinks};

/// The deployment's state directory for an image, relative to the real root.
pub fn deploy_rel(digest_hex: &str) -> PathBuf {
    Path::new("state/deploy").join(digest_hex)
}

/// A state directory that cannot be used.
#[derive(Debug)]
pub struct StateError(pub DiskError);

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot prepare state directory: {}", self.0)?;
        if self.0.problem == DiskProblem::Os(Errno::ROFS) {
            f.write_str(
                "; the real root is mounted read-only but /etc and /var live on it: \
                 boot with `rw`, or use transient /etc and /var",
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// `rel` below `base`, created (with `mode`, parents 0755) if missing.
pub fn ensure_dir(base: Base<'_>, rel: &Path, mode: u32) -> Result<OwnedFd, StateError> {
    base.ensure_dir(&rel.to_string_lossy(), mode)
        .map_err(StateError)
}

/// `rel` below `base`, which must exist already; `Ok(None)` if it does not.
pub fn existing_dir(base: Base<'_>, rel: &Path) -> Result<Option<OwnedFd>, StateError> {
    match base.open_dir(&rel.to_string_lossy(), Symlinks::Refuse) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.is_missing() => Ok(None),
        Err(e) => Err(StateError(e)),
    }
}

/// The real root's mount point as the base state paths start from.
pub fn open_root(sysroot: &Path) -> Result<OwnedFd, StateError> {
    rustix::fs::open(
        sysroot,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|errno| {
        StateError(DiskError {
            path: sysroot.to_owned(),
            problem: DiskProblem::Os(errno),
        })
    })
}

/// `/proc/self/fd/N` of a state directory, for the overlay's path options.
/// The kernel resolves it to that very directory: nothing on the disk can
/// redirect it.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    crate::kernel::mount::fd_path(fd.as_fd()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn deploy_dir_is_per_image() {
        assert_eq!(deploy_rel("ab12"), Path::new("state/deploy/ab12"));
    }

    #[test]
    fn missing_directories_get_their_modes_whatever_the_umask() {
        let root = tempfile::tempdir().unwrap();
        let fd = open_root(root.path()).unwrap();
        let base = Base::new(fd.as_fd(), Path::new("/sysroot"));
        // The umask is the process's: 077 only takes group/other bits, which
        // no other unit test of this binary looks at.
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        let work = ensure_dir(base, Path::new("state/deploy/ab/etc/work"), 0o700);
        let upper = ensure_dir(base, Path::new("state/deploy/ab/etc/upper"), 0o755);
        rustix::process::umask(old);
        work.unwrap();
        upper.unwrap();
        let p = |rel: &str| root.path().join(rel);
        assert_eq!(mode(&p("state/deploy/ab/etc/work")), 0o700);
        // upper 0755 even under umask 077: the merged /etc takes its mode.
        assert_eq!(mode(&p("state/deploy/ab/etc/upper")), 0o755);
        assert_eq!(mode(&p("state/deploy/ab/etc")), 0o755);
        assert_eq!(mode(&p("state")), 0o755);
    }

    #[test]
    fn an_existing_directory_keeps_the_users_mode() {
        let root = tempfile::tempdir().unwrap();
        let fd = open_root(root.path()).unwrap();
        let var = root.path().join("var");
        std::fs::create_dir(&var).unwrap();
        std::fs::set_permissions(&var, std::fs::Permissions::from_mode(0o750)).unwrap();
        ensure_dir(Base::new(fd.as_fd(), root.path()), Path::new("var"), 0o755).unwrap();
        assert_eq!(mode(&var), 0o750);
    }

    #[test]
    fn a_symlinked_or_plain_file_state_directory_is_refused_by_name() {
        let root = tempfile::tempdir().unwrap();
        let fd = open_root(root.path()).unwrap();
        let base = Base::new(fd.as_fd(), Path::new("/sysroot"));
        std::fs::create_dir_all(root.path().join("state/deploy/ab")).unwrap();
        symlink("/proc", root.path().join("state/deploy/ab/var")).unwrap();
        std::fs::write(root.path().join("state/deploy/ab/etc"), "").unwrap();
        let e = ensure_dir(base, Path::new("state/deploy/ab/var"), 0o755).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot prepare state directory: /sysroot/state/deploy/ab/var is or goes \
             through a symlink: veriroot follows none on the real root (put the directory \
             or file itself there)"
        );
        let e = existing_dir(base, Path::new("state/deploy/ab/var")).unwrap_err();
        assert_eq!(e.0.problem, DiskProblem::Symlink);
        let e = ensure_dir(base, Path::new("state/deploy/ab/etc/upper"), 0o755).unwrap_err();
        assert_eq!(e.0.problem, DiskProblem::NotADirectory);
        assert!(existing_dir(base, Path::new("state/deploy/ab/none"))
            .unwrap()
            .is_none());
    }
}
