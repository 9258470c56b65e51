//! Reading what the sysext rules need, through verity: the root's
//! os-release and each extension's listing and extension-release are read
//! from detached overlays mounted with `verity=require` over the object
//! store (the EROFS alone holds only redirects for most files), never
//! from the writable state. The rules themselves are in `sysext`.

use std::fmt;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{Dir, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::boot::disk::openat2;
use crate::fsverity::digest::Digest;
use crate::sysext::rules::{self, ExtensionId, Release, SysextError, RELEASE_DIR};

/// Where a root image lists the extensions it wants merged: part of the
/// verified image, so as trusted as the image itself (never writable state).
pub const IMAGE_LIST: &str = "usr/lib/veriroot/extensions";

/// Release files are a few hundred bytes; a cap keeps a hostile one from
/// filling the initrd's memory.
const MAX_RELEASE: u64 = 64 * 1024;

#[derive(Debug)]
pub enum ExtensionError {
    Rule(SysextError),
    /// A file or directory of an image could not be read; for an image
    /// mounted with verity=require, EIO means a wrong or missing digest.
    Read {
        what: String,
        /// Below the image's root, e.g. `usr/lib/os-release`.
        path: String,
        errno: Errno,
    },
    /// The root image has no os-release to compare extensions with.
    NoOsRelease,
    /// The root image's extension list has a line that is not a digest.
    BadList {
        line: usize,
        problem: String,
    },
}

impl fmt::Display for ExtensionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtensionError::Rule(e) => e.fmt(f),
            ExtensionError::Read { what, path, errno } => {
                if *errno == Errno::FBIG {
                    return write!(
                        f,
                        "/{path} of {what} is larger than {MAX_RELEASE} bytes: a release \
                         file is a few lines; rebuild it"
                    );
                }
                write!(f, "cannot read /{path} of {what}: {errno}")?;
                if *errno == Errno::IO {
                    f.write_str(" (its object's fs-verity digest does not match the image: the repository is damaged or tampered with)")?;
                }
                Ok(())
            }
            ExtensionError::BadList { line, problem } => write!(
                f,
                "/{IMAGE_LIST} in the root image, line {line}: {problem}; expected one \
                 fs-verity digest (hex) per line, # comments: rebuild the image"
            ),
            ExtensionError::NoOsRelease => f.write_str(
                "the root image has neither /etc/os-release nor /usr/lib/os-release: system \
                 extensions cannot be checked against it; add an os-release to the image or \
                 drop veriroot.sysext=",
            ),
        }
    }
}

impl std::error::Error for ExtensionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExtensionError::Rule(e) => Some(e),
            ExtensionError::Read { errno, .. } => Some(errno),
            ExtensionError::NoOsRelease | ExtensionError::BadList { .. } => None,
        }
    }
}

/// Opens `path` below `root` as if `root` were `/` (symlinks included).
fn open_in(root: BorrowedFd<'_>, path: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
    openat2(
        root,
        path,
        flags | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    )
}

/// The names in directory `path` below `root`; `Ok(None)` if there is none.
fn list(root: BorrowedFd<'_>, path: &str) -> Result<Option<Vec<String>>, Errno> {
    let fd = match open_in(root, path, OFlags::DIRECTORY) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    let mut dir = Dir::read_from(&fd)?;
    while let Some(entry) = dir.read() {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    Ok(Some(names))
}

/// A small text file below `root`; `Ok(None)` if it does not exist.
/// Larger than `MAX_RELEASE` is EFBIG, read as nothing: a release file is
/// a few lines. O_NONBLOCK: a FIFO in an image never blocks the boot.
fn read_text(root: BorrowedFd<'_>, path: &str) -> Result<Option<String>, Errno> {
    let fd = match open_in(root, path, OFlags::NONBLOCK | OFlags::NOCTTY) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let stat = rustix::fs::fstat(&fd)?;
    if u64::try_from(stat.st_size).unwrap_or(u64::MAX) > MAX_RELEASE {
        return Err(Errno::FBIG);
    }
    let mut text = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_RELEASE)
        .read_to_end(&mut text)
        .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
    Ok(Some(String::from_utf8_lossy(&text).into_owned()))
}

/// The root image's os-release, where systemd looks: /etc first, then
/// /usr/lib (in an image /etc/os-release is normally a link to the latter).
pub fn root_release(root: impl AsFd) -> Result<Release, ExtensionError> {
    for path in ["etc/os-release", "usr/lib/os-release"] {
        match read_text(root.as_fd(), path) {
            Ok(Some(text)) => return Ok(Release::parse(&text)),
            Ok(None) => {}
            Err(errno) => {
                return Err(ExtensionError::Read {
                    what: "the root image".into(),
                    path: path.into(),
                    errno,
                })
            }
        }
    }
    Err(ExtensionError::NoOsRelease)
}

/// Whether the image has an extension list, asked of its EROFS alone: names
/// and links are the verified metadata (only contents live in the object
/// store), so this needs no overlay.
pub fn has_image_list(erofs_root: impl AsFd) -> Result<bool, ExtensionError> {
    match open_in(erofs_root.as_fd(), IMAGE_LIST, OFlags::PATH) {
        Ok(_) => Ok(true),
        Err(Errno::NOENT | Errno::NOTDIR) => Ok(false),
        Err(errno) => Err(ExtensionError::Read {
            what: "the root image".into(),
            path: IMAGE_LIST.into(),
            errno,
        }),
    }
}

/// The extensions the root image lists, in order (lowest first); none if
/// it has no list.
pub fn image_list(root: impl AsFd) -> Result<Vec<Digest>, ExtensionError> {
    match read_text(root.as_fd(), IMAGE_LIST) {
        Ok(None) => Ok(Vec::new()),
        Ok(Some(text)) => parse_image_list(&text),
        Err(errno) => Err(ExtensionError::Read {
            what: "the root image".into(),
            path: IMAGE_LIST.into(),
            errno,
        }),
    }
}

/// One digest per line; blank lines and `#` comments are skipped.
pub fn parse_image_list(text: &str) -> Result<Vec<Digest>, ExtensionError> {
    let mut out: Vec<Digest> = Vec::new();
    // A set beside the list: the duplicate check stays linear however long
    // the list (the file is capped in size, the fuzzer is not).
    let mut seen = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |problem: String| ExtensionError::BadList {
            line: i + 1,
            problem,
        };
        let digest = Digest::from_hex(line).map_err(|e| bad(format!("'{line}': {e}")))?;
        if !seen.insert(digest.clone()) {
            return Err(bad(format!("'{line}' is listed twice")));
        }
        out.push(digest);
    }
    Ok(out)
}

/// Applies every rule to one extension (its own overlay at `ext_root`)
/// and returns its name.
pub fn inspect(
    ext_root: impl AsFd,
    mut id: ExtensionId,
    root: &Release,
) -> Result<String, ExtensionError> {
    let ext_root = ext_root.as_fd();
    let read = |id: &ExtensionId, path: &str| {
        let what = id.to_string();
        let path = path.to_owned();
        move |errno| ExtensionError::Read { what, path, errno }
    };
    // The name first, so that every later message can use it.
    let releases = list(ext_root, RELEASE_DIR)
        .map_err(read(&id, RELEASE_DIR))?
        .unwrap_or_default();
    let name = rules::release_name(&id, releases.iter().map(String::as_str))
        .map_err(ExtensionError::Rule)?;
    id.name = Some(name.clone());
    let top = list(ext_root, ".")
        .map_err(read(&id, ""))?
        .unwrap_or_default();
    rules::check_hierarchies(&id, top.iter().map(String::as_str)).map_err(ExtensionError::Rule)?;
    if read_text(ext_root, "usr/lib/os-release")
        .map_err(read(&id, "usr/lib/os-release"))?
        .is_some()
    {
        return Err(ExtensionError::Rule(SysextError::ShipsOsRelease {
            ext: Box::new(id),
        }));
    }
    let path = format!("{RELEASE_DIR}/extension-release.{name}");
    let text = read_text(ext_root, &path)
        .map_err(read(&id, &path))?
        .unwrap_or_default();
    rules::check_release(
        &id,
        root,
        &Release::parse(&text),
        rules::native_architecture(),
    )
    .map_err(ExtensionError::Rule)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    fn id() -> ExtensionId {
        ExtensionId {
            name: None,
            digest: Digest::from_hex(&"cd".repeat(32)).unwrap(),
        }
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn open(dir: &Path) -> fs::File {
        fs::File::open(dir).unwrap()
    }

    const ROOT: &str = "ID=veriroot-test\nVERSION_ID=1\n";

    #[test]
    fn root_release_prefers_etc_and_resolves_links_inside_the_image() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "usr/lib/os-release", ROOT);
        fs::create_dir_all(d.path().join("etc")).unwrap();
        // An absolute link, as images carry: resolved inside the image.
        std::os::unix::fs::symlink("/usr/lib/os-release", d.path().join("etc/os-release")).unwrap();
        let r = root_release(open(d.path())).unwrap();
        assert_eq!(r.get("ID"), Some("veriroot-test"));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            root_release(open(empty.path())),
            Err(ExtensionError::NoOsRelease)
        ));
    }

    #[test]
    fn a_huge_extension_release_file_is_named_by_its_real_name() {
        let d = tempfile::tempdir().unwrap();
        let rel = "usr/lib/extension-release.d/extension-release.vt-big";
        write(d.path(), rel, ROOT);
        let f = fs::OpenOptions::new()
            .write(true)
            .open(d.path().join(rel))
            .unwrap();
        f.set_len(10 << 20).unwrap();
        let e = inspect(open(d.path()), id(), &Release::parse(ROOT))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("/{rel} of extension 'vt-big' (sha256:cdcd")),
            "{e}"
        );
        assert!(
            e.ends_with("is larger than 65536 bytes: a release file is a few lines; rebuild it"),
            "{e}"
        );
    }

    #[test]
    fn a_huge_release_file_is_refused_unread_and_a_fifo_never_blocks() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "usr/lib/os-release", ROOT);
        let f = fs::OpenOptions::new()
            .write(true)
            .open(d.path().join("usr/lib/os-release"))
            .unwrap();
        f.set_len(10 << 20).unwrap();
        let e = root_release(open(d.path())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/usr/lib/os-release of the root image is larger than 65536 bytes: a release \
             file is a few lines; rebuild it"
        );
        fs::remove_file(d.path().join("usr/lib/os-release")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            d.path().join("usr/lib/os-release"),
            Mode::from_raw_mode(0o600),
        )
        .unwrap();
        // Opens without a writer, reads nothing: an empty release.
        let r = root_release(open(d.path())).unwrap();
        assert_eq!(r.get("ID"), None);
    }

    #[test]
    fn image_list_is_digests_in_order() {
        let a = "a".repeat(64);
        let b = "b".repeat(128);
        let list = parse_image_list(&format!("# tools\n{a}\n\n  {b}  \n")).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].to_hex(), a);
        assert_eq!(list[1].to_hex(), b);
        let err = parse_image_list(&format!("{a}\nnot-hex\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2: 'not-hex'"), "{err}");
        let err = parse_image_list(&format!("{a}\n{a}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listed twice"), "{err}");
        let d = tempfile::tempdir().unwrap();
        assert_eq!(image_list(open(d.path())).unwrap(), vec![]);
        write(d.path(), IMAGE_LIST, &format!("{a}\n"));
        assert_eq!(image_list(open(d.path())).unwrap()[0].to_hex(), a);
    }

    #[test]
    fn the_list_is_looked_for_inside_the_image_only() {
        let d = tempfile::tempdir().unwrap();
        let image = d.path().join("image");
        fs::create_dir_all(image.join("usr/lib")).unwrap();
        assert!(!has_image_list(open(&image)).unwrap());
        // A link out of the image resolves inside it, as the kernel would
        // under the overlay: the host's file does not count.
        write(d.path(), "host/usr/lib/veriroot/extensions", "x\n");
        std::os::unix::fs::symlink(
            d.path().join("host/usr/lib/veriroot"),
            image.join("usr/lib/veriroot"),
        )
        .unwrap();
        assert!(!has_image_list(open(&image)).unwrap());
        fs::remove_file(image.join("usr/lib/veriroot")).unwrap();
        write(&image, IMAGE_LIST, "x\n");
        assert!(has_image_list(open(&image)).unwrap());
    }

    #[test]
    fn a_good_extension_is_named_by_its_release_file() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "usr/lib/extension-release.d/extension-release.tools",
            "ID=veriroot-test\nVERSION_ID=1\n",
        );
        write(d.path(), "usr/bin/tool", "x");
        write(d.path(), "opt/x/y", "y");
        let name = inspect(open(d.path()), id(), &Release::parse(ROOT)).unwrap();
        assert_eq!(name, "tools");
    }

    #[test]
    fn refusals_name_the_extension() {
        let root = Release::parse(ROOT);
        let d = tempfile::tempdir().unwrap();
        let err = inspect(open(d.path()), id(), &root).unwrap_err();
        assert!(
            err.to_string()
                .contains("has no /usr/lib/extension-release.d"),
            "{err}"
        );

        write(
            d.path(),
            "usr/lib/extension-release.d/extension-release.e",
            "ID=veriroot-test\nVERSION_ID=1\n",
        );
        write(d.path(), "etc/e.conf", "x");
        let err = inspect(open(d.path()), id(), &root)
            .unwrap_err()
            .to_string();
        assert!(err.contains("extension 'e' (sha256:cdcd"), "{err}");
        assert!(err.contains("provides /etc"), "{err}");

        fs::remove_dir_all(d.path().join("etc")).unwrap();
        write(d.path(), "usr/lib/os-release", "ID=other\n");
        let err = inspect(open(d.path()), id(), &root)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ships /usr/lib/os-release"), "{err}");

        fs::remove_file(d.path().join("usr/lib/os-release")).unwrap();
        write(
            d.path(),
            "usr/lib/extension-release.d/extension-release.e",
            "ID=veriroot-test\nVERSION_ID=2\n",
        );
        let err = inspect(open(d.path()), id(), &root)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "VERSION_ID='2' in its extension-release does not match the root's VERSION_ID='1'"
            ),
            "{err}"
        );
    }
}
