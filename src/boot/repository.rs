//! The composefs repository on the real root (composefs-rs layout):
//!
//! ```text
//! composefs/meta.json            {"version":1,"algorithm":"fsverity-sha512-12",...}
//! composefs/objects/XX/<rest>    content-addressed by fs-verity digest
//! composefs/images/<hex>         -> ../objects/XX/<rest>, an EROFS image
//! ```
//!
//! Opening an image is where trust is decided: in secure mode the kernel's
//! fs-verity digest of the opened file must equal the one from the signed
//! command line, or nothing is mounted.

use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;

use crate::boot::cmdline::ImageRef;
use crate::boot::disk::{Base, DiskError, DiskProblem, Symlinks};
use crate::fsverity::digest::{Algorithm, Digest};
use crate::kernel::verity_ioctl::{self, Measured, VerityMeasureError};
use crate::measure::eventlog::json::{self, SyntaxError};

/// The repository's directory on the real root.
pub const REPOSITORY: &str = "composefs";

/// meta.json is a few hundred bytes.
const META_MAX: u64 = 64 * 1024;

/// The highest `meta.json` version whose meaning we know.
const META_VERSION: u64 = 1;

#[derive(Debug)]
pub enum RepoError {
    /// The repository directory itself.
    Open(DiskError),
    MetaMissing {
        path: PathBuf,
    },
    /// meta.json exists but cannot be read (or is no small regular file).
    MetaRead(DiskError),
    MetaInvalid {
        path: PathBuf,
        problem: MetaError,
    },
    MetaVersion {
        path: PathBuf,
        found: u64,
    },
    MetaNoVerity {
        path: PathBuf,
        cause: VerityMeasureError,
    },
    AlgorithmMismatch {
        path: PathBuf,
        repository: Algorithm,
        image_ref: ImageRef,
    },
    /// `images/<hex>` exists but is no usable regular file.
    Image(DiskError),
    ImageNoVerity {
        path: PathBuf,
        expected: Digest,
        cause: VerityMeasureError,
    },
    DigestMismatch {
        path: PathBuf,
        expected: Digest,
        found: Digest,
    },
    NoImage {
        tried: Vec<PathBuf>,
    },
    Objects(DiskError),
}

impl fmt::Display for RepoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RepoError::*;
        match self {
            Open(e) => write!(
                f,
                "cannot use the composefs repository: {e}; is the real root mounted and does \
                 it hold a composefs/ directory?"
            ),
            MetaMissing { path } => write!(
                f,
                "{} does not exist: a secure boot needs the repository's meta.json with \
                 fs-verity enabled (create it with `cfsctl init`, then run `veriroot \
                 enable-verity` on the repository)",
                path.display()
            ),
            MetaRead(e) => e.fmt(f),
            MetaInvalid { path, problem } => write!(f, "{}: {problem}", path.display()),
            MetaVersion { path, found } => write!(
                f,
                "{} has repository format version {found}; this veriroot understands \
                 version {META_VERSION} at most: refusing it (update veriroot)",
                path.display()
            ),
            MetaNoVerity { path, cause } => write!(
                f,
                "refusing a secure boot: the repository is not fs-verity protected: {}: \
                 {cause}; run `veriroot enable-verity {}` on a kernel with fs-verity, or \
                 boot with composefs=?<digest> to accept an unprotected repository",
                path.display(),
                path.parent().unwrap_or(path).display()
            ),
            AlgorithmMismatch {
                path,
                repository,
                image_ref,
            } => write!(
                f,
                "'{}' names a {} digest but the repository {} uses {}: the digest on the \
                 command line must be the image's {} fs-verity digest",
                image_ref.source,
                image_ref.digest.algorithm(),
                path.display(),
                repository.repository_name(),
                repository
            ),
            Image(e) => write!(f, "refusing the image: {e}"),
            ImageNoVerity {
                path,
                expected,
                cause,
            } => write!(
                f,
                "refusing image {}: {cause}, so its digest cannot be checked against \
                 {expected}; run `veriroot enable-verity {}` on a kernel with fs-verity",
                path.display(),
                path.parent()
                    .and_then(Path::parent)
                    .unwrap_or(path)
                    .display()
            ),
            DigestMismatch {
                path,
                expected,
                found,
            } => write!(
                f,
                "refusing image {}: its fs-verity digest is {found} but the kernel command \
                 line expects {expected}; the image was changed or replaced (rebuild it or \
                 boot an entry whose composefs= names this image)",
                path.display()
            ),
            NoImage { tried } => {
                write!(
                    f,
                    "none of the images named on the kernel command line exists:"
                )?;
                for p in tried {
                    write!(f, " {}", p.display())?;
                }
                write!(f, "; was the deployment written to this disk?")
            }
            Objects(e) => write!(f, "cannot use the object store: {e}"),
        }
    }
}

impl std::error::Error for RepoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RepoError::Open(e)
            | RepoError::MetaRead(e)
            | RepoError::Image(e)
            | RepoError::Objects(e) => Some(e),
            RepoError::MetaInvalid { problem, .. } => Some(problem),
            RepoError::MetaNoVerity { cause, .. } | RepoError::ImageNoVerity { cause, .. } => {
                Some(cause)
            }
            RepoError::MetaMissing { .. }
            | RepoError::MetaVersion { .. }
            | RepoError::AlgorithmMismatch { .. }
            | RepoError::DigestMismatch { .. }
            | RepoError::NoImage { .. } => None,
        }
    }
}

/// Why `meta.json` says nothing usable.
#[derive(Debug, PartialEq, Eq)]
pub enum MetaError {
    Json(SyntaxError),
    NoVersion,
    NoAlgorithm,
    /// An algorithm name composefs does not define (as written, escaped when shown).
    UnknownAlgorithm(String),
    /// `features.incompatible` names a feature veriroot does not know: the
    /// repository may not be read as a version-1 one (composefs-rs's
    /// doc/repository.md; it defines none yet).
    IncompatibleFeature(String),
    /// `features.incompatible` is not a list of strings.
    BadFeatures,
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaError::Json(e) => write!(f, "not valid JSON: {e}"),
            MetaError::NoVersion => f.write_str("no numeric \"version\""),
            MetaError::NoAlgorithm => f.write_str("no \"algorithm\" string"),
            MetaError::UnknownAlgorithm(name) => write!(
                f,
                "algorithm \"{}\" is not fsverity-sha256-12 or fsverity-sha512-12",
                crate::text::escape(name)
            ),
            MetaError::IncompatibleFeature(name) => write!(
                f,
                "it needs the incompatible feature \"{}\", which this veriroot does not know \
                 (a newer repository format: update veriroot)",
                crate::text::escape(name)
            ),
            MetaError::BadFeatures => {
                f.write_str("\"features\".\"incompatible\" is not a list of strings")
            }
        }
    }
}

impl std::error::Error for MetaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MetaError::Json(e) => Some(e),
            _ => None,
        }
    }
}

/// What `meta.json` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub version: u64,
    pub algorithm: Algorithm,
}

impl Meta {
    /// Parses `meta.json`; unknown fields are allowed (composefs-rs adds
    /// them). The measurement log's strict reader: a duplicate key is
    /// refused (composefs-rs's serde structs refuse one too).
    pub fn parse(text: &[u8]) -> Result<Meta, MetaError> {
        let text = std::str::from_utf8(text).map_err(|e| {
            MetaError::Json(SyntaxError {
                offset: e.valid_up_to(),
                what: "not UTF-8".to_owned(),
            })
        })?;
        let value = json::parse(text).map_err(MetaError::Json)?;
        let version = value
            .get("version")
            .and_then(json::Value::as_u64)
            .ok_or(MetaError::NoVersion)?;
        let name = value
            .get("algorithm")
            .and_then(json::Value::as_str)
            .ok_or(MetaError::NoAlgorithm)?;
        let algorithm = Algorithm::from_repository_name(name)
            .ok_or_else(|| MetaError::UnknownAlgorithm(name.to_owned()))?;
        // Unknown compatible and read-only-compatible features are fine
        // for a reader; an incompatible one is not, and none is known.
        if let Some(list) = value.get("features").and_then(|f| f.get("incompatible")) {
            let json::Value::Array(items) = list else {
                return Err(MetaError::BadFeatures);
            };
            if let Some(item) = items.first() {
                let name = item.as_str().ok_or(MetaError::BadFeatures)?;
                return Err(MetaError::IncompatibleFeature(name.to_owned()));
            }
        }
        Ok(Meta { version, algorithm })
    }
}

/// An open repository directory.
pub struct Repository {
    path: PathBuf,
    dir: OwnedFd,
}

/// An image whose identity has been checked as far as the mode demands.
#[derive(Debug)]
pub struct VerifiedImage {
    pub file: File,
    pub path: PathBuf,
    pub image_ref: ImageRef,
    /// The kernel's fs-verity digest, where the file has one.
    pub measured: Measured,
}

impl Repository {
    /// A repository at a path the user gave (host tools): the path is
    /// theirs, so it is followed like any other.
    pub fn open(path: &Path) -> Result<Self, RepoError> {
        let dir = rfs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| {
            RepoError::Open(DiskError {
                path: path.to_owned(),
                problem: match errno {
                    Errno::NOENT => DiskProblem::Missing,
                    Errno::NOTDIR => DiskProblem::NotADirectory,
                    e => DiskProblem::Os(e),
                },
            })
        })?;
        Ok(Repository {
            path: path.to_owned(),
            dir,
        })
    }

    /// The repository of the real root mounted at `sysroot` (the boot
    /// path, and `check`): `composefs/` on the disk, not a symlink.
    pub fn open_on_disk(sysroot: &Path) -> Result<Self, RepoError> {
        let root = rfs::open(
            sysroot,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| {
            RepoError::Open(DiskError {
                path: sysroot.to_owned(),
                problem: DiskProblem::Os(errno),
            })
        })?;
        let dir = Base::new(root.as_fd(), sysroot)
            .open_dir(REPOSITORY, Symlinks::Refuse)
            .map_err(RepoError::Open)?;
        Ok(Repository {
            path: sysroot.join(REPOSITORY),
            dir,
        })
    }

    fn base(&self) -> Base<'_> {
        Base::new(self.dir.as_fd(), &self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn meta_path(&self) -> PathBuf {
        self.path.join("meta.json")
    }

    /// Reads `meta.json` and measures it. `Ok(None)`: there is none.
    pub fn meta(&self) -> Result<Option<(Meta, Measured)>, RepoError> {
        let path = self.meta_path();
        // meta.json is tiny; the cap keeps a hostile one from eating the initrd's RAM.
        let file = match self
            .base()
            .open_file("meta.json", Symlinks::Refuse, Some(META_MAX))
        {
            Ok(f) => f,
            Err(e) if e.is_missing() => return Ok(None),
            Err(e) => return Err(RepoError::MetaRead(e)),
        };
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(&file, META_MAX), &mut text).map_err(
            |e| {
                RepoError::MetaRead(DiskError {
                    path: path.clone(),
                    problem: DiskProblem::Os(Errno::from_io_error(&e).unwrap_or(Errno::IO)),
                })
            },
        )?;
        let meta = Meta::parse(&text).map_err(|problem| RepoError::MetaInvalid {
            path: path.clone(),
            problem,
        })?;
        if meta.version > META_VERSION {
            return Err(RepoError::MetaVersion {
                path,
                found: meta.version,
            });
        }
        Ok(Some((meta, verity_ioctl::measure(&file))))
    }

    /// Checks what a secure boot of `image_ref` demands of the repository:
    /// `meta.json` present, fs-verity on it, same algorithm as the digest.
    pub fn check_secure(&self, image_ref: &ImageRef) -> Result<Meta, RepoError> {
        let path = self.meta_path();
        let (meta, measured) = self
            .meta()?
            .ok_or(RepoError::MetaMissing { path: path.clone() })?;
        if let Err(cause) = measured {
            return Err(RepoError::MetaNoVerity { path, cause });
        }
        self.check_algorithm(&meta, image_ref)?;
        Ok(meta)
    }

    pub fn check_algorithm(&self, meta: &Meta, image_ref: &ImageRef) -> Result<(), RepoError> {
        if meta.algorithm == image_ref.digest.algorithm() {
            return Ok(());
        }
        Err(RepoError::AlgorithmMismatch {
            path: self.meta_path(),
            repository: meta.algorithm,
            image_ref: image_ref.clone(),
        })
    }

    pub fn image_path(&self, digest: &Digest) -> PathBuf {
        self.path.join("images").join(digest.to_hex())
    }

    /// Opens `images/<hex>`, a symlink into `objects/` that must stay in
    /// the repository. `Ok(None)`: no such image.
    pub fn open_image(&self, image_ref: &ImageRef) -> Result<Option<(File, PathBuf)>, RepoError> {
        let rel = format!("images/{}", image_ref.digest.to_hex());
        match self.base().open_file(&rel, Symlinks::Beneath, None) {
            Ok(file) => Ok(Some((file, self.image_path(&image_ref.digest)))),
            Err(e) if e.is_missing() => Ok(None),
            Err(e) => Err(RepoError::Image(e)),
        }
    }

    /// `signatures/<hex>.sig` (docs/formats.md, "Signed images").
    pub fn signature_path(&self, digest: &Digest) -> PathBuf {
        self.path.join(signature_rel(digest))
    }

    /// The image's detached signature, if there is one: a regular file
    /// reached without any symlink, at most `SIGNATURE_MAX` bytes.
    pub fn read_signature(&self, digest: &Digest) -> Result<Option<Vec<u8>>, DiskError> {
        let rel = signature_rel(digest);
        match self
            .base()
            .read_file(&rel, Symlinks::Refuse, crate::signature::SIGNATURE_MAX)
        {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.is_missing() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens the object store as the overlay's data-only layer.
    pub fn objects(&self) -> Result<OwnedFd, RepoError> {
        self.base()
            .open_dir("objects", Symlinks::Refuse)
            .map_err(RepoError::Objects)
    }
}

fn signature_rel(digest: &Digest) -> String {
    format!("signatures/{}.sig", digest.to_hex())
}

/// Decides whether an opened image may be mounted for `image_ref`.
///
/// Secure: the measured digest must exist and equal the expected one.
/// Insecure: a missing digest is accepted (the caller warns), but a digest
/// that exists and differs is still refused: the command line named an image.
pub fn verify_image(
    path: &Path,
    image_ref: &ImageRef,
    measured: &Measured,
) -> Result<(), RepoError> {
    match measured {
        Ok(found) if *found == image_ref.digest => Ok(()),
        Ok(found) => Err(RepoError::DigestMismatch {
            path: path.to_owned(),
            expected: image_ref.digest.clone(),
            found: found.clone(),
        }),
        Err(_) if image_ref.insecure => Ok(()),
        Err(cause) => Err(RepoError::ImageNoVerity {
            path: path.to_owned(),
            expected: image_ref.digest.clone(),
            cause: clone_measure_error(cause),
        }),
    }
}

fn clone_measure_error(e: &VerityMeasureError) -> VerityMeasureError {
    match e {
        VerityMeasureError::NotEnabled => VerityMeasureError::NotEnabled,
        VerityMeasureError::Unsupported => VerityMeasureError::Unsupported,
        VerityMeasureError::UnknownAlgorithm(a) => VerityMeasureError::UnknownAlgorithm(*a),
        VerityMeasureError::Os(e) => VerityMeasureError::Os(*e),
    }
}

/// Walks the command line's images in order; the first that exists is the
/// one to boot, and it is verified or refused: a later candidate is never
/// tried in place of an existing image that failed.
pub fn select_image(repo: &Repository, refs: &[ImageRef]) -> Result<VerifiedImage, RepoError> {
    let mut tried = Vec::new();
    for image_ref in refs {
        let Some((file, path)) = repo.open_image(image_ref)? else {
            tried.push(repo.image_path(&image_ref.digest));
            continue;
        };
        if !image_ref.insecure {
            repo.check_secure(image_ref)?;
        } else if let Some((meta, _)) = repo.meta()? {
            repo.check_algorithm(&meta, image_ref)?;
        }
        let measured = verity_ioctl::measure(&file);
        verify_image(&path, image_ref, &measured)?;
        return Ok(VerifiedImage {
            file,
            path,
            image_ref: image_ref.clone(),
            measured,
        });
    }
    Err(RepoError::NoImage { tried })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::cmdline::Cmdline;

    fn image_ref(arg: &str) -> ImageRef {
        Cmdline::parse(arg).image_refs().unwrap().remove(0)
    }

    const HEX: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn meta_json_as_composefs_rs_writes_it() {
        let m = Meta::parse(br#"{"version":1,"algorithm":"fsverity-sha512-12","features":{"compatible":[],"read-only-compatible":["v1_erofs"],"incompatible":[]},"erofs_formats":{"default":1}}"#).unwrap();
        let future = br#"{"version":1,"algorithm":"fsverity-sha512-12","features":{"compatible":["x"],"read-only-compatible":["y"],"incompatible":["chunked\u001b"]}}"#;
        let e = Meta::parse(future).unwrap_err();
        assert_eq!(e, MetaError::IncompatibleFeature("chunked\u{1b}".into()));
        assert!(e.to_string().contains("\"chunked\\x1b\""), "{e}");
        let bad =
            br#"{"version":1,"algorithm":"fsverity-sha512-12","features":{"incompatible":"all"}}"#;
        assert_eq!(Meta::parse(bad).unwrap_err(), MetaError::BadFeatures);
        assert_eq!(
            m,
            Meta {
                version: 1,
                algorithm: Algorithm::Sha512
            }
        );
        let m = Meta::parse(br#"{"version":1,"algorithm":"fsverity-sha256-12","verity":false}"#)
            .unwrap();
        assert_eq!(m.algorithm, Algorithm::Sha256);
    }

    #[test]
    fn meta_json_errors_say_what_is_wrong() {
        let msg = |text: &[u8]| Meta::parse(text).unwrap_err().to_string();
        assert!(msg(b"{").contains("not valid JSON"));
        assert!(msg(b"\xff").contains("not valid JSON: not UTF-8 at byte 0"));
        let dup = br#"{"version":1,"algorithm":"fsverity-sha256-12","version":2}"#;
        assert!(msg(dup).contains("duplicate"), "{}", msg(dup));
        assert!(msg(br#"{"algorithm":"fsverity-sha256-12"}"#).contains("version"));
        assert!(msg(br#"{"version":1}"#).contains("algorithm"));
        assert!(msg(br#"{"version":1,"algorithm":"fsverity-sha256-16"}"#)
            .contains("fsverity-sha256-16"));
    }

    #[test]
    fn secure_verification_outcomes() {
        let r = image_ref(&format!("composefs={HEX}"));
        let p = Path::new("/sysroot/composefs/images/x");
        assert!(verify_image(p, &r, &Ok(r.digest.clone())).is_ok());
        let other = Digest::from_hex(&"2".repeat(64)).unwrap();
        let msg = verify_image(p, &r, &Ok(other)).unwrap_err().to_string();
        assert!(msg.contains(&format!("sha256:{}", "2".repeat(64))), "{msg}");
        assert!(msg.contains(&format!("expects sha256:{HEX}")), "{msg}");
        assert!(msg.contains("/sysroot/composefs/images/x"), "{msg}");
        let msg = verify_image(p, &r, &Err(VerityMeasureError::NotEnabled))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("fs-verity is not enabled"), "{msg}");
        assert!(msg.contains("veriroot enable-verity"), "{msg}");
    }

    #[test]
    fn insecure_accepts_missing_verity_but_not_a_wrong_digest() {
        let r = image_ref(&format!("composefs=?{HEX}"));
        let p = Path::new("/x");
        assert!(verify_image(p, &r, &Err(VerityMeasureError::NotEnabled)).is_ok());
        assert!(verify_image(p, &r, &Err(VerityMeasureError::Unsupported)).is_ok());
        let other = Digest::from_hex(&"2".repeat(64)).unwrap();
        assert!(matches!(
            verify_image(p, &r, &Ok(other)),
            Err(RepoError::DigestMismatch { .. })
        ));
    }
}
