//! Opening what lies on the real root, whose owner is the adversary: the
//! repository, its images, `meta.json`, the per-deployment state.
//!
//! Every open is relative to a directory fd, through openat2(2):
//! - symlinks are refused anywhere in the path (`RESOLVE_NO_SYMLINKS`), or,
//!   where the format has them (`images/<hex>` → `../objects/…`), followed
//!   only while they stay beneath the directory the open starts from
//!   (`RESOLVE_BENEATH`, no magic links);
//! - the first open is `O_PATH`: it has no side effect on a FIFO or a
//!   device node; the type is checked on that fd, and only a regular file
//!   is then opened for reading (through `/proc/self/fd`, the same inode);
//! - sizes are checked on the fd before anything is read.
//!
//! Errors say which path, and "symlink", "FIFO", "not a directory"...

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// What a path on the disk may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    /// None at all.
    Refuse,
    /// Some, but the path must stay beneath the starting directory.
    Beneath,
}

impl Symlinks {
    fn resolve(self) -> ResolveFlags {
        match self {
            Symlinks::Refuse => ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            Symlinks::Beneath => ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        }
    }
}

/// How often an openat2(2) that says EAGAIN is tried again (below).
const EAGAIN_TRIES: u32 = 100;

/// openat2(2), tried again where the kernel asks for it: a scoped lookup
/// (`RESOLVE_BENEATH`, `RESOLVE_IN_ROOT`) fails with EAGAIN when a rename or
/// a mount anywhere in the system raced it, and a systemd initrd mounts a
/// lot while veriroot runs (seen: `images/<hex>` refused with "Resource
/// temporarily unavailable" in a Debian boot). Bounded: after
/// [`EAGAIN_TRIES`] tries (the later ones 1 ms apart) EAGAIN is the answer.
pub fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &str,
    flags: OFlags,
    mode: Mode,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    retry_eagain(|| rfs::openat2(dirfd, path, flags, mode, resolve))
}

fn retry_eagain<T>(mut op: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    for attempt in 1..EAGAIN_TRIES {
        match op() {
            Err(Errno::AGAIN) => {
                if attempt > 10 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            done => return done,
        }
    }
    op()
}

/// Why something on the disk cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskProblem {
    Missing,
    /// A symlink where none is allowed.
    Symlink,
    /// A symlink leading out of the directory it must stay in.
    Escapes,
    NotADirectory,
    /// Not a regular file: "a FIFO", "a directory", "a character device"...
    NotAFile(&'static str),
    TooLarge {
        size: u64,
        max: u64,
    },
    Os(Errno),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskError {
    /// The path as the user sees it (`/sysroot/composefs/meta.json`).
    pub path: PathBuf,
    pub problem: DiskProblem,
}

impl DiskError {
    pub fn is_missing(&self) -> bool {
        self.problem == DiskProblem::Missing
    }
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.problem {
            DiskProblem::Missing => write!(f, "{p} does not exist"),
            DiskProblem::Symlink => write!(
                f,
                "{p} is or goes through a symlink: veriroot follows none on the real root \
                 (put the directory or file itself there)"
            ),
            DiskProblem::Escapes => write!(
                f,
                "{p} is a symlink that leads out of its directory: the repository's links \
                 must stay inside it (images/<hex> -> ../objects/...)"
            ),
            DiskProblem::NotADirectory => write!(f, "{p} is not a directory"),
            DiskProblem::NotAFile(kind) => write!(f, "{p} is {kind}, not a regular file"),
            DiskProblem::TooLarge { size, max } => write!(
                f,
                "{p} is {size} bytes, more than the {max} this file may have: refusing to read it"
            ),
            DiskProblem::Os(errno) => write!(f, "cannot open {p}: {errno}"),
        }
    }
}

impl std::error::Error for DiskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            DiskProblem::Os(errno) => Some(errno),
            _ => None,
        }
    }
}

/// A directory on the disk: `at` is where the path starts (trusted, e.g.
/// the /sysroot mount point), `shown` how the user knows it.
#[derive(Debug, Clone, Copy)]
pub struct Base<'a> {
    pub fd: BorrowedFd<'a>,
    pub shown: &'a Path,
}

impl<'a> Base<'a> {
    pub fn new(fd: BorrowedFd<'a>, shown: &'a Path) -> Self {
        Base { fd, shown }
    }

    fn error(&self, rel: &str, problem: DiskProblem) -> DiskError {
        DiskError {
            path: self.shown.join(rel),
            problem,
        }
    }

    fn open_path(&self, rel: &str, symlinks: Symlinks, dir: bool) -> Result<OwnedFd, DiskError> {
        let mut flags = OFlags::PATH | OFlags::CLOEXEC;
        if dir {
            flags |= OFlags::DIRECTORY;
        }
        // No O_NOFOLLOW: with it a final symlink opens as itself (O_PATH)
        // or reads as ENOTDIR; RESOLVE_NO_SYMLINKS says ELOOP for any.
        openat2(self.fd, rel, flags, Mode::empty(), symlinks.resolve()).map_err(|errno| {
            self.error(
                rel,
                match errno {
                    Errno::NOENT => DiskProblem::Missing,
                    Errno::LOOP => DiskProblem::Symlink,
                    Errno::XDEV => DiskProblem::Escapes,
                    Errno::NOTDIR => DiskProblem::NotADirectory,
                    e => DiskProblem::Os(e),
                },
            )
        })
    }

    /// A directory below the base, as an `O_PATH` fd.
    pub fn open_dir(&self, rel: &str, symlinks: Symlinks) -> Result<OwnedFd, DiskError> {
        self.open_path(rel, symlinks, true)
    }

    /// A regular file below the base, open for reading; `max`: the
    /// largest size accepted.
    pub fn open_file(
        &self,
        rel: &str,
        symlinks: Symlinks,
        max: Option<u64>,
    ) -> Result<File, DiskError> {
        let fd = self.open_path(rel, symlinks, false)?;
        let stat = rfs::fstat(&fd).map_err(|e| self.error(rel, DiskProblem::Os(e)))?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => {}
            FileType::Symlink => return Err(self.error(rel, DiskProblem::Symlink)),
            other => return Err(self.error(rel, DiskProblem::NotAFile(kind(other)))),
        }
        let size = u64::try_from(stat.st_size).unwrap_or(0);
        if let Some(max) = max.filter(|&max| size > max) {
            return Err(self.error(rel, DiskProblem::TooLarge { size, max }));
        }
        // Re-opened through the fd: the same inode, whatever the path is now.
        let file = rfs::open(
            format!("/proc/self/fd/{}", fd.as_raw_fd()),
            OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.error(rel, DiskProblem::Os(e)))?;
        Ok(File::from(file))
    }

    /// A small regular file's bytes, at most `max` of them.
    pub fn read_file(&self, rel: &str, symlinks: Symlinks, max: u64) -> Result<Vec<u8>, DiskError> {
        let file = self.open_file(rel, symlinks, Some(max))?;
        let mut bytes = Vec::new();
        // take(): the file may have grown since it was measured.
        file.take(max)
            .read_to_end(&mut bytes)
            .map_err(|e| self.error(rel, DiskProblem::Os(io_errno(&e))))?;
        Ok(bytes)
    }

    /// `rel`, a chain of directories below the base, created if missing
    /// (the last with `mode`, the others 0755; an existing one keeps its
    /// mode: it is the user's), none a symlink. Returns the last.
    pub fn ensure_dir(&self, rel: &str, mode: u32) -> Result<OwnedFd, DiskError> {
        let mut dir: Option<OwnedFd> = None;
        let mut done = PathBuf::new();
        let names: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        for (i, &name) in names.iter().enumerate() {
            let mode = if i + 1 == names.len() { mode } else { 0o755 };
            done.push(name);
            let err = |problem| DiskError {
                path: self.shown.join(&done),
                problem,
            };
            if name == "." || name == ".." {
                return Err(err(DiskProblem::Escapes));
            }
            let at = dir.as_ref().map_or(self.fd, |d| d.as_fd());
            let created = match rfs::mkdirat(at, name, Mode::from_raw_mode(mode)) {
                Ok(()) => true,
                Err(Errno::EXIST) => false,
                Err(e) => return Err(err(DiskProblem::Os(e))),
            };
            let fd = openat2(
                at,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                Symlinks::Refuse.resolve(),
            )
            .map_err(|e| {
                err(match e {
                    Errno::LOOP => DiskProblem::Symlink,
                    Errno::NOTDIR => DiskProblem::NotADirectory,
                    e => DiskProblem::Os(e),
                })
            })?;
            if created {
                // mkdir obeys the umask; the mode is part of the contract.
                rfs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| err(DiskProblem::Os(e)))?;
            }
            dir = Some(fd);
        }
        dir.ok_or_else(|| self.error(rel, DiskProblem::Os(Errno::INVAL)))
    }
}

fn kind(t: FileType) -> &'static str {
    match t {
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Symlink => "a symlink",
        FileType::RegularFile => "a regular file",
        FileType::Unknown => "of an unknown type",
    }
}

fn io_errno(e: &std::io::Error) -> Errno {
    // read(2)'s own error: File::read returns no other kind.
    Errno::from_io_error(e).unwrap_or(Errno::IO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eagain_is_tried_again_a_bounded_number_of_times() {
        // A racing mount: EAGAIN twice, then the answer.
        let mut calls = 0;
        let r = retry_eagain(|| {
            calls += 1;
            if calls < 3 {
                Err(Errno::AGAIN)
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r, Ok(3));
        // Another error is the answer at once.
        let mut calls = 0;
        let r: Result<(), Errno> = retry_eagain(|| {
            calls += 1;
            Err(Errno::LOOP)
        });
        assert_eq!((r, calls), (Err(Errno::LOOP), 1));
        // EAGAIN for ever: given up after EAGAIN_TRIES, not a hang.
        let mut calls = 0;
        let r: Result<(), Errno> = retry_eagain(|| {
            calls += 1;
            Err(Errno::AGAIN)
        });
        assert_eq!((r, calls), (Err(Errno::AGAIN), EAGAIN_TRIES));
    }
    use std::os::unix::fs::{symlink, PermissionsExt};

    struct Disk {
        dir: tempfile::TempDir,
        fd: OwnedFd,
    }

    impl Disk {
        fn new() -> Disk {
            let dir = tempfile::tempdir().unwrap();
            let fd = rfs::open(
                dir.path(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .unwrap();
            Disk { dir, fd }
        }
        fn base(&self) -> Base<'_> {
            Base::new(self.fd.as_fd(), Path::new("/sysroot"))
        }
        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }
    }

    fn problem<T: fmt::Debug>(r: Result<T, DiskError>) -> DiskProblem {
        r.unwrap_err().problem
    }

    #[test]
    fn a_regular_file_is_read_and_its_size_bounded() {
        let d = Disk::new();
        std::fs::write(d.path("meta.json"), b"{}").unwrap();
        let b = d.base();
        assert_eq!(
            b.read_file("meta.json", Symlinks::Refuse, 2).unwrap(),
            b"{}"
        );
        let e = b.read_file("meta.json", Symlinks::Refuse, 1).unwrap_err();
        assert_eq!(e.problem, DiskProblem::TooLarge { size: 2, max: 1 });
        assert!(
            e.to_string().starts_with("/sysroot/meta.json is 2 bytes"),
            "{e}"
        );
        assert_eq!(
            problem(b.read_file("nope", Symlinks::Refuse, 9)),
            DiskProblem::Missing
        );
    }

    #[test]
    fn a_fifo_is_named_and_never_blocks() {
        let d = Disk::new();
        rfs::mkfifoat(&d.fd, "meta.json", Mode::from_raw_mode(0o600)).unwrap();
        let e = d
            .base()
            .read_file("meta.json", Symlinks::Refuse, 64)
            .unwrap_err();
        assert_eq!(e.problem, DiskProblem::NotAFile("a FIFO"));
        assert_eq!(
            e.to_string(),
            "/sysroot/meta.json is a FIFO, not a regular file"
        );
    }

    #[test]
    fn symlinks_are_refused_anywhere_in_the_path() {
        let d = Disk::new();
        std::fs::create_dir(d.path("real")).unwrap();
        std::fs::write(d.path("real/f"), b"x").unwrap();
        symlink("real/f", d.path("link")).unwrap();
        symlink("real", d.path("dirlink")).unwrap();
        let b = d.base();
        assert_eq!(
            problem(b.open_file("link", Symlinks::Refuse, None)),
            DiskProblem::Symlink
        );
        assert_eq!(
            problem(b.open_file("dirlink/f", Symlinks::Refuse, None)),
            DiskProblem::Symlink
        );
        assert_eq!(
            problem(b.open_dir("dirlink", Symlinks::Refuse)),
            DiskProblem::Symlink
        );
        assert!(b.open_file("real/f", Symlinks::Refuse, None).is_ok());
    }

    #[test]
    fn repository_links_must_stay_beneath() {
        let d = Disk::new();
        std::fs::create_dir_all(d.path("repo/objects/ab")).unwrap();
        std::fs::create_dir_all(d.path("repo/images")).unwrap();
        std::fs::write(d.path("repo/objects/ab/cd"), b"erofs").unwrap();
        std::fs::write(d.path("outside"), b"evil").unwrap();
        symlink("../objects/ab/cd", d.path("repo/images/good")).unwrap();
        symlink("../../outside", d.path("repo/images/out")).unwrap();
        symlink("/proc/self/exe", d.path("repo/images/abs")).unwrap();
        let repo_fd = d.base().open_dir("repo", Symlinks::Refuse).unwrap();
        let repo = Base::new(repo_fd.as_fd(), Path::new("/sysroot/composefs"));
        let mut f = repo
            .open_file("images/good", Symlinks::Beneath, None)
            .unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "erofs");
        assert_eq!(
            problem(repo.open_file("images/out", Symlinks::Beneath, None)),
            DiskProblem::Escapes
        );
        assert_eq!(
            problem(repo.open_file("images/abs", Symlinks::Beneath, None)),
            DiskProblem::Escapes
        );
    }

    #[test]
    fn directories_and_devices_are_not_files() {
        let d = Disk::new();
        std::fs::create_dir(d.path("images")).unwrap();
        let b = d.base();
        assert_eq!(
            problem(b.open_file("images", Symlinks::Refuse, None)),
            DiskProblem::NotAFile("a directory")
        );
        std::fs::write(d.path("plain"), b"").unwrap();
        assert_eq!(
            problem(b.open_dir("plain", Symlinks::Refuse)),
            DiskProblem::NotADirectory
        );
    }

    #[test]
    fn ensure_dir_creates_with_modes_and_refuses_symlinked_state() {
        let d = Disk::new();
        let b = d.base();
        b.ensure_dir("state/deploy/ab/etc/work", 0o700).unwrap();
        let mode =
            |rel: &str| std::fs::metadata(d.path(rel)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("state/deploy/ab/etc/work"), 0o700);
        assert_eq!(mode("state/deploy/ab/etc"), 0o755);
        std::fs::create_dir(d.path("elsewhere")).unwrap();
        symlink("../../../elsewhere", d.path("state/deploy/ab/var")).unwrap();
        let e = b.ensure_dir("state/deploy/ab/var", 0o755).unwrap_err();
        assert_eq!(e.problem, DiskProblem::Symlink);
        assert_eq!(e.path, Path::new("/sysroot/state/deploy/ab/var"));
        std::fs::write(d.path("state/deploy/ab/etc/upper"), b"").unwrap();
        assert_eq!(
            problem(b.ensure_dir("state/deploy/ab/etc/upper", 0o755)),
            DiskProblem::NotADirectory
        );
        assert_eq!(
            problem(b.ensure_dir("state/../x", 0o755)),
            DiskProblem::Escapes
        );
    }
}
