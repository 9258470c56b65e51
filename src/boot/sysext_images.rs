//! System extension images, opened from the root's repository and checked
//! exactly as the root image is (missing, no fs-verity, another digest:
//! refused). Whether their contents follow systemd-sysext's rules is asked
//! later, once they are mounted (`sysext`).

use std::fmt;
use std::fs::File;
use std::path::PathBuf;

use crate::boot::cmdline::ImageRef;
use crate::boot::repository::{self, RepoError, Repository};
use crate::boot::signatures::{SignatureRefusal, Signed, Trust};
use crate::fsverity::Digest;
use crate::kernel::verity_ioctl;

/// Who named an extension, for messages: the command line...
pub const NAMED_BY_KARG: &str = "veriroot.sysext=";
/// ...or the root image's own list (`sysext::read::IMAGE_LIST`).
pub const NAMED_BY_IMAGE: &str = "the root image's /usr/lib/veriroot/extensions";

#[derive(Debug)]
pub enum SysextImageError {
    /// A digest in another algorithm than the root's.
    Algorithm { sysext: Digest, root: Digest },
    /// The image is not in the repository.
    Missing {
        path: PathBuf,
        named_by: &'static str,
    },
    /// The image failed the same check as the root image.
    Verify(RepoError),
    /// `[trust] signatures` refused it.
    Signature(SignatureRefusal),
}

impl fmt::Display for SysextImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysextImageError::Algorithm { sysext, root } => write!(
                f,
                "veriroot.sysext={} is a {} digest but the root image's is {} ({root}): \
                 extensions live in the root's repository and are named by the same kind \
                 of digest",
                sysext.to_hex(),
                sysext.algorithm(),
                root.algorithm()
            ),
            SysextImageError::Missing { path, named_by } => write!(
                f,
                "the system extension {} named by {named_by} does not exist: add the image \
                 to the repository or stop naming it there",
                path.display()
            ),
            SysextImageError::Verify(e) => write!(f, "system extension: {e}"),
            SysextImageError::Signature(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SysextImageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SysextImageError::Verify(e) => Some(e),
            SysextImageError::Signature(e) => Some(e),
            _ => None,
        }
    }
}

/// Opens each extension image and checks its fs-verity digest as the
/// root's, in the order given. `root`: the verified root image, whose
/// algorithm and trust (`?`) the extensions share; `trust`: the signature
/// policy, which applies to extensions as to the root.
pub fn open_verified(
    repo: &Repository,
    root: &ImageRef,
    trust: &Trust,
    digests: &[Digest],
    named_by: &'static str,
) -> Result<Vec<(File, Digest)>, SysextImageError> {
    let mut out = Vec::new();
    for digest in digests {
        if digest.algorithm() != root.digest.algorithm() {
            return Err(SysextImageError::Algorithm {
                sysext: digest.clone(),
                root: root.digest.clone(),
            });
        }
        let image_ref = ImageRef {
            digest: digest.clone(),
            insecure: root.insecure,
            source: format!("veriroot.sysext={}", digest.to_hex()),
        };
        let (file, path) = repo
            .open_image(&image_ref)
            .map_err(SysextImageError::Verify)?
            .ok_or_else(|| SysextImageError::Missing {
                path: repo.image_path(digest),
                named_by,
            })?;
        repository::verify_image(&path, &image_ref, &verity_ioctl::measure(&file))
            .map_err(SysextImageError::Verify)?;
        trust
            .check(repo, &image_ref, Signed::Extension)
            .map_err(SysextImageError::Signature)?;
        log::info!("verified system extension {} = {digest}", path.display());
        out.push((file, digest.clone()));
    }
    Ok(out)
}
