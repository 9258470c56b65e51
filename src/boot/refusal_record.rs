//! The last refused boot, kept on the real root where the next boot (the
//! fallback image too: every image shares the repository) can read it:
//! `composefs/state/veriroot/last-refusal`. One record, overwritten by the
//! next refusal, so it never grows; a file and not an EFI variable because
//! it works on every firmware and every boot path veriroot has (a minimal
//! initrd without EFI too), and the state directory is already the place
//! where the machine's own writable data lives.
//!
//! The disk is the adversary here as everywhere: the record is written as
//! a fresh file renamed over the old one (never through a link planted at
//! its name), below directories opened without following symlinks; it is
//! read with a size cap, and what it says is escaped before it is shown.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;

use crate::boot::disk::{Base, DiskError, Symlinks};
use crate::text::escape_capped;

/// Below the real root: the repository's state directory.
pub const DIR: &str = "composefs/state/veriroot";
pub const FILE: &str = "last-refusal";
const TMP: &str = ".last-refusal.tmp";
/// Larger is not a record veriroot wrote.
const MAX_SIZE: u64 = 8192;
/// The reason's length in the record, in characters.
const MAX_REASON: usize = 2000;

/// What was refused, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Refusal {
    /// Seconds since the epoch (the machine's clock, which may be wrong).
    pub time: u64,
    /// `/proc/sys/kernel/random/boot_id` of the refused boot.
    pub boot_id: String,
    /// `pid1` or `setup-root`.
    pub mode: String,
    /// What happened next (`reboot`, …).
    pub action: String,
    /// The image the command line asked for, as it said it.
    pub image: String,
    /// The refusal message.
    pub reason: String,
}

impl Refusal {
    /// A refusal of this boot, now: the clock and the kernel's boot ID
    /// filled in (either may be missing in an early initrd: 0 and "").
    pub fn now(mode: &str, action: &str, image: String, reason: String) -> Refusal {
        Refusal {
            time: u64::try_from(
                rustix::time::clock_gettime(rustix::time::ClockId::Realtime).tv_sec,
            )
            .unwrap_or(0),
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            mode: mode.to_owned(),
            action: action.to_owned(),
            image,
            reason,
        }
    }

    /// The file's text: `KEY=value` lines, every value one escaped line.
    pub fn render(&self) -> String {
        let line = |s: &str| escape_capped(s, MAX_REASON);
        format!(
            "# veriroot: the last refused boot (overwritten by the next)\n\
             TIME={}\nBOOT_ID={}\nMODE={}\nACTION={}\nIMAGE={}\nREASON={}\n",
            self.time,
            line(&self.boot_id),
            line(&self.mode),
            line(&self.action),
            line(&self.image),
            line(&self.reason)
        )
    }

    /// Reads what `render` wrote; unknown keys are skipped (a later
    /// version's), a bad time reads as 0. The values are kept as stored
    /// (escaped by the writer); show them through `escape` anyway.
    pub fn parse(text: &str) -> Refusal {
        let mut r = Refusal::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.to_owned();
            match key {
                "TIME" => r.time = value.parse().unwrap_or(0),
                "BOOT_ID" => r.boot_id = value,
                "MODE" => r.mode = value,
                "ACTION" => r.action = value,
                "IMAGE" => r.image = value,
                "REASON" => r.reason = value,
                _ => {}
            }
        }
        r
    }
}

#[derive(Debug)]
pub enum RecordError {
    /// No `composefs/` on this root: not a repository to record on.
    NoRepository(PathBuf),
    Disk(DiskError),
    Write {
        path: PathBuf,
        errno: Errno,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::NoRepository(p) => {
                write!(f, "{} is not a composefs repository", p.display())
            }
            RecordError::Disk(e) => e.fmt(f),
            RecordError::Write { path, errno } => {
                write!(f, "cannot write {}: {errno}", path.display())
            }
        }
    }
}

impl std::error::Error for RecordError {}

fn open_root(sysroot: &Path) -> Result<rustix::fd::OwnedFd, RecordError> {
    rfs::open(
        sysroot,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| RecordError::Write {
        path: sysroot.to_owned(),
        errno,
    })
}

/// Writes `refusal` below `sysroot` (the real root); returns the file.
pub fn write(sysroot: &Path, refusal: &Refusal) -> Result<PathBuf, RecordError> {
    let root = open_root(sysroot)?;
    let base = Base::new(root.as_fd(), sysroot);
    match base.open_dir("composefs", Symlinks::Refuse) {
        Ok(_) => {}
        Err(e) if e.is_missing() => {
            return Err(RecordError::NoRepository(sysroot.join("composefs")))
        }
        Err(e) => return Err(RecordError::Disk(e)),
    }
    let dir = base.ensure_dir(DIR, 0o700).map_err(RecordError::Disk)?;
    let shown = sysroot.join(DIR).join(FILE);
    let err = |errno| RecordError::Write {
        path: shown.clone(),
        errno,
    };
    let flags = OFlags::WRONLY
        | OFlags::CREATE
        | OFlags::EXCL
        | OFlags::NOFOLLOW
        | OFlags::NONBLOCK
        | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(0o600);
    // O_EXCL: a fresh inode, never one the disk's owner linked here. A
    // leftover of an interrupted write is removed (not followed) first.
    let fd = match rfs::openat(&dir, TMP, flags, mode) {
        Err(Errno::EXIST) => {
            rfs::unlinkat(&dir, TMP, rfs::AtFlags::empty()).map_err(err)?;
            rfs::openat(&dir, TMP, flags, mode)
        }
        other => other,
    }
    .map_err(err)?;
    let mut file = File::from(fd);
    file.write_all(refusal.render().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| err(Errno::from_io_error(&e).unwrap_or(Errno::IO)))?;
    rfs::renameat(&dir, TMP, &dir, FILE).map_err(err)?;
    rfs::fsync(&dir).map_err(err)?;
    Ok(shown)
}

/// Writes the record and says where, or why not: a record that cannot be
/// written changes nothing about the refusal.
pub fn keep(sysroot: &Path, refusal: &Refusal) {
    match write(sysroot, refusal) {
        Ok(path) => log::info!("recorded the refusal in {}", path.display()),
        Err(e) => log::warn!("cannot record the refusal for the next boot: {e}"),
    }
}

/// The record below `sysroot`, if there is one.
pub fn read(sysroot: &Path) -> Result<Option<Refusal>, RecordError> {
    let root = open_root(sysroot)?;
    let base = Base::new(root.as_fd(), sysroot);
    let rel = format!("{DIR}/{FILE}");
    match base.read_file(&rel, Symlinks::Refuse, MAX_SIZE) {
        Ok(bytes) => Ok(Some(Refusal::parse(&String::from_utf8_lossy(&bytes)))),
        Err(e) if e.is_missing() => Ok(None),
        Err(e) => Err(RecordError::Disk(e)),
    }
}

/// `time` as `YYYY-MM-DD HH:MM:SS UTC` (no time-zone database in an initrd).
pub fn utc(time: u64) -> String {
    let days = time / 86_400;
    let secs = time % 86_400;
    // Days to a civil date (proleptic Gregorian), from 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Refusal {
        Refusal {
            time: 1_764_425_000,
            boot_id: "3f1c".into(),
            mode: "pid1".into(),
            action: "reboot".into(),
            image: "composefs=ab12".into(),
            reason: "refusing image x: its digest is\nforged\u{1b}[2J".into(),
        }
    }

    #[test]
    fn a_record_reads_back_escaped_one_line_each() {
        let text = sample().render();
        assert_eq!(text.lines().count(), 7, "{text}");
        let back = Refusal::parse(&text);
        assert_eq!(back.time, 1_764_425_000);
        assert_eq!(back.action, "reboot");
        assert_eq!(
            back.reason,
            "refusing image x: its digest is\\nforged\\x1b[2J"
        );
    }

    #[test]
    fn written_over_the_old_one_never_through_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(matches!(
            write(root, &sample()),
            Err(RecordError::NoRepository(_))
        ));
        std::fs::create_dir_all(root.join("composefs/state")).unwrap();
        // A hard link and a symlink at the names: neither target may change.
        std::fs::write(root.join("victim"), "keep").unwrap();
        std::fs::create_dir_all(root.join(DIR)).unwrap();
        std::fs::hard_link(root.join("victim"), root.join(DIR).join(FILE)).unwrap();
        std::os::unix::fs::symlink(root.join("victim"), root.join(DIR).join(TMP)).unwrap();
        let path = write(root, &sample()).unwrap();
        assert_eq!(path, root.join(DIR).join(FILE));
        assert_eq!(
            std::fs::read_to_string(root.join("victim")).unwrap(),
            "keep"
        );
        assert_eq!(read(root).unwrap().unwrap().image, "composefs=ab12");
        assert!(!root.join(DIR).join(TMP).exists());
        let second = Refusal {
            reason: "the second".into(),
            ..sample()
        };
        write(root, &second).unwrap();
        assert_eq!(read(root).unwrap().unwrap().reason, "the second");
    }

    #[test]
    fn a_symlinked_state_directory_or_a_huge_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("composefs/state")).unwrap();
        std::fs::create_dir_all(root.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(root.join("elsewhere"), root.join(DIR)).unwrap();
        assert!(matches!(write(root, &sample()), Err(RecordError::Disk(_))));
        assert!(std::fs::read_dir(root.join("elsewhere"))
            .unwrap()
            .next()
            .is_none());
        std::fs::remove_file(root.join(DIR)).unwrap();
        assert_eq!(read(root).unwrap(), None);
        std::fs::create_dir_all(root.join(DIR)).unwrap();
        let f = File::create(root.join(DIR).join(FILE)).unwrap();
        f.set_len(1 << 32).unwrap();
        assert!(matches!(read(root), Err(RecordError::Disk(_))));
    }

    #[test]
    fn times_print_as_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_764_425_000), "2025-11-29 14:03:20 UTC");
    }
}
