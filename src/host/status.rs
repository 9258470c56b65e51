//! `veriroot status`, in a booted system: the image it runs (the root
//! mount's source and options), what veriroot measured (its records in
//! systemd's measurement log), and the last refused boot, kept on the real
//! root (`boot/refusal_record.rs`) — the fallback image's view of why the
//! newer one did not boot.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::boot::refusal_record::{self, Refusal};
use crate::measure::eventlog::{self, Content};
use crate::text::escape;

#[derive(Debug)]
pub struct StatusArgs {
    /// The real root, as the booted system sees it (`/sysroot`).
    pub sysroot: PathBuf,
    /// The mount table to read (`/proc/self/mountinfo`).
    pub mountinfo: PathBuf,
    /// systemd's measurement log.
    pub log: PathBuf,
}

impl Default for StatusArgs {
    fn default() -> Self {
        StatusArgs {
            sysroot: "/sysroot".into(),
            mountinfo: "/proc/self/mountinfo".into(),
            log: eventlog::log_path(),
        }
    }
}

#[derive(Debug)]
pub enum StatusError {
    Mountinfo {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusError::Mountinfo { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for StatusError {}

/// The root mount: its source (`composefs:<hex>` when veriroot made it),
/// file-system type and superblock options.
#[derive(Debug, PartialEq, Eq)]
pub struct RootMount {
    pub source: String,
    pub fstype: String,
    pub options: String,
}

impl RootMount {
    /// The image digest, if veriroot mounted this root.
    pub fn image(&self) -> Option<&str> {
        (self.fstype == "overlay")
            .then(|| self.source.strip_prefix("composefs:"))
            .flatten()
    }

    /// Whether overlayfs enforces fs-verity digests on this root.
    pub fn verity_required(&self) -> bool {
        self.options.split(',').any(|o| o == "verity=require")
    }
}

/// The last mount at `/` of a `/proc/self/mountinfo` text.
pub fn root_mount(mountinfo: &str) -> Option<RootMount> {
    mountinfo.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut l = left.split(' ');
        let mount_point = l.nth(4)?;
        if mount_point != "/" {
            return None;
        }
        let mut r = right.split(' ');
        Some(RootMount {
            fstype: r.next()?.to_owned(),
            source: unescape_octal(r.next()?),
            options: r.next().unwrap_or_default().to_owned(),
        })
    })
}

/// mountinfo's `\040`-style escapes.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        let value = octal.map(|d| d.iter().fold(0u16, |v, c| v * 8 + u16::from(c - b'0')));
        match value.and_then(|v| u8::try_from(v).ok()) {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// veriroot's records of the measurement log (strings starting `veriroot:`).
fn veriroot_records(log: &Path) -> Result<Vec<(u32, String)>, String> {
    if !log.exists() {
        return Ok(Vec::new());
    }
    // As `veriroot log` reads it: size-capped, under systemd's lock.
    let bytes = crate::host::log::read_capped(log, crate::host::log::MAX_LOG_SIZE)
        .map_err(|e| e.to_string())?;
    let records = eventlog::parse(&bytes).map_err(|e| format!("{}: {e}", log.display()))?;
    Ok(records
        .iter()
        .filter_map(|r| match &r.content {
            Content::Systemd(c) => c
                .string
                .as_deref()
                .filter(|s| s.starts_with("veriroot:"))
                .map(|s| (r.pcr, s.to_owned())),
            Content::Other { .. } => None,
        })
        .collect())
}

/// One line for the record of a refused boot.
pub fn describe_refusal(r: &Refusal) -> String {
    format!(
        "{} (boot {}, {}, then {}): {}: {}",
        refusal_record::utc(r.time),
        escape(&r.boot_id),
        escape(&r.mode),
        escape(&r.action),
        if r.image.is_empty() {
            "no image named".to_owned()
        } else {
            escape(&r.image)
        },
        // The record keeps the whole message; it is escaped already, and
        // again here (a record is the disk's to forge).
        crate::text::escape_capped(&r.reason, 2000)
    )
}

/// Prints the status; exit 1 when the root is not a composefs image
/// veriroot mounted.
pub fn run(args: &StatusArgs) -> Result<ExitCode, StatusError> {
    let text =
        std::fs::read_to_string(&args.mountinfo).map_err(|error| StatusError::Mountinfo {
            path: args.mountinfo.clone(),
            error,
        })?;
    let root = root_mount(&text);
    let ok = match root.as_ref().and_then(|r| r.image().map(|i| (r, i))) {
        Some((r, image)) => {
            println!("image:     composefs:{}", escape(image));
            println!(
                "verity:    {}",
                if r.verity_required() {
                    "required (overlayfs verity=require: every file's fs-verity digest is enforced)"
                } else {
                    "NOT required (an insecure '?' image: file contents are not checked)"
                }
            );
            true
        }
        None => {
            let what = root.map_or("no root mount found".to_owned(), |r| {
                format!("{} ({})", escape(&r.source), escape(&r.fstype))
            });
            println!("image:     none: the root is {what}, not a composefs image");
            false
        }
    };
    match veriroot_records(&args.log) {
        Ok(records) if records.is_empty() => {
            println!("measured:  nothing by veriroot in {}", args.log.display())
        }
        Ok(records) => {
            for (pcr, s) in records {
                println!("measured:  PCR {pcr:>2} {}", escape(&s));
            }
        }
        Err(e) => println!("measured:  unknown: {e}"),
    }
    match refusal_record::read(&args.sysroot) {
        Ok(Some(r)) => println!("last refused boot: {}", describe_refusal(&r)),
        Ok(None) => println!(
            "last refused boot: none recorded in {}",
            args.sysroot.join(refusal_record::DIR).display()
        ),
        Err(e) => println!("last refused boot: unknown: {e}"),
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
61 1 0:40 / / ro,relatime shared:30 - overlay composefs:ab12 ro,lowerdir+=/run/x,datadir+=/run/y,redirect_dir=on,metacopy=on,verity=require
62 61 0:41 / /etc rw shared:31 - overlay overlay rw,lowerdir=/etc
";

    #[test]
    fn the_last_root_mount_is_the_image() {
        let r = root_mount(MOUNTINFO).unwrap();
        assert_eq!(r.image(), Some("ab12"));
        assert!(r.verity_required());
        let plain = root_mount(MOUNTINFO.lines().next().unwrap()).unwrap();
        assert_eq!(plain.image(), None);
        assert_eq!(plain.source, "/dev/vda");
        assert_eq!(root_mount("garbage\n"), None);
    }

    #[test]
    fn an_insecure_root_says_so() {
        let r =
            root_mount("61 1 0:40 / / ro - overlay composefs:ab12 ro,lowerdir=/x,metacopy=on\n")
                .unwrap();
        assert!(!r.verity_required());
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_octal("a\\040b\\134"), "a b\\");
        assert_eq!(unescape_octal("tail\\04"), "tail\\04");
        assert_eq!(unescape_octal("\\777é\\+12"), "\\777é\\+12");
    }

    #[test]
    fn a_forged_record_cannot_write_to_the_terminal() {
        let r = Refusal {
            time: 0,
            boot_id: "id\u{1b}[2J".into(),
            mode: "pid1".into(),
            action: "reboot".into(),
            image: String::new(),
            reason: "why\nnext".into(),
        };
        let line = describe_refusal(&r);
        assert!(!line.contains('\u{1b}') && !line.contains('\n'), "{line}");
        assert!(line.starts_with("1970-01-01 00:00:00 UTC (boot id\\x1b[2J, pid1, then reboot): no image named: why\\nnext"), "{line}");
    }
}
