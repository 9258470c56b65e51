//! `[trust] signatures`: whether the image (and each system extension)
//! must carry a signature of its fs-verity digest by a key of the
//! initrd's `/etc/veriroot/keys/`, read from the repository's
//! `signatures/<hex>.sig` (docs/formats.md, "Signed images"). The file
//! is the disk's: opened without symlinks, a regular file, 64 KiB at most.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::boot::cmdline::ImageRef;
use crate::boot::config::SignaturePolicy;
use crate::boot::disk::DiskError;
use crate::boot::repository::Repository;
use crate::signature::keys::{self, KeyError};
use crate::signature::{self, KeyId, SignatureError, TrustedKey};

/// What a signature is asked of, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    Image,
    Extension,
}

impl Signed {
    fn name(self) -> &'static str {
        match self {
            Signed::Image => "image",
            Signed::Extension => "system extension",
        }
    }
}

/// Who vouched for a verified image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub id: KeyId,
    /// The trusted key's file.
    pub key_file: PathBuf,
    /// `RSA-4096`, `ECDSA P-256`...
    pub kind: String,
}

#[derive(Debug)]
pub enum SignatureRefusal {
    /// `composefs=?…` under `required`: an unverified tree cannot be signed for.
    Insecure { source: String },
    /// `required`, and no signature file.
    Missing { what: Signed, path: PathBuf },
    /// The signature file exists but cannot be read (symlink, too large...).
    Read { what: Signed, error: DiskError },
    /// It exists and does not verify.
    Invalid {
        what: Signed,
        path: PathBuf,
        error: SignatureError,
    },
    /// A key file in the initrd is unusable.
    Keys(KeyError),
    /// `required`, and the initrd has no keys.
    NoKeys { dir: PathBuf },
}

impl fmt::Display for SignatureRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureRefusal::Insecure { source } => write!(
                f,
                "refusing '{source}': the insecure '?' form is not allowed with [trust] \
                 signatures = \"required\" (remove the '?' and enable fs-verity on the \
                 repository)"
            ),
            SignatureRefusal::Missing { what, path } => write!(
                f,
                "refusing the {}: {} does not exist and [trust] signatures = \"required\"; \
                 sign the image's fs-verity digest (`fsverity sign IMAGE {} --key=KEY.pem \
                 --cert=CERT.pem`, docs/formats.md)",
                what.name(),
                path.display(),
                path.display()
            ),
            SignatureRefusal::Read { what, error } => {
                write!(f, "refusing the {}: its signature: {error}", what.name())
            }
            SignatureRefusal::Invalid { what, path, error } => write!(
                f,
                "refusing the {}: {}: {error}; sign this image's digest with a key whose \
                 certificate is in the initrd's /etc/veriroot/keys, or remove the file",
                what.name(),
                path.display()
            ),
            SignatureRefusal::Keys(e) => {
                write!(f, "{e}; fix or remove the file and rebuild the initrd")
            }
            SignatureRefusal::NoKeys { dir } => write!(
                f,
                "[trust] signatures = \"required\" but {} holds no *.pem or *.der key: put \
                 the signing certificate there and rebuild the initrd",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for SignatureRefusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SignatureRefusal::Read { error, .. } => Some(error),
            SignatureRefusal::Invalid { error, .. } => Some(error),
            SignatureRefusal::Keys(e) => Some(e),
            _ => None,
        }
    }
}

/// The policy with the initrd's keys.
#[derive(Debug, Clone)]
pub struct Trust {
    pub policy: SignaturePolicy,
    pub keys: Vec<TrustedKey>,
}

impl Trust {
    pub fn off() -> Trust {
        Trust {
            policy: SignaturePolicy::Off,
            keys: Vec::new(),
        }
    }

    /// Reads the keys of `dir` unless the policy is `off`; `required`
    /// with no key at all is refused here, before anything is opened.
    pub fn load(policy: SignaturePolicy, dir: &Path) -> Result<Trust, SignatureRefusal> {
        if policy == SignaturePolicy::Off {
            return Ok(Trust::off());
        }
        let keys = keys::load_dir(dir).map_err(SignatureRefusal::Keys)?;
        if keys.is_empty() && policy == SignaturePolicy::Required {
            return Err(SignatureRefusal::NoKeys {
                dir: dir.to_owned(),
            });
        }
        Ok(Trust { policy, keys })
    }

    /// Applies the policy to an image whose digest was already verified:
    /// `Ok(Some)` names the key that signed it, `Ok(None)` means no
    /// signature was needed (`off`, or `if-present` without one).
    pub fn check(
        &self,
        repo: &Repository,
        image_ref: &ImageRef,
        what: Signed,
    ) -> Result<Option<Signer>, SignatureRefusal> {
        if self.policy == SignaturePolicy::Off {
            return Ok(None);
        }
        if image_ref.insecure {
            if self.policy == SignaturePolicy::Required {
                return Err(SignatureRefusal::Insecure {
                    source: image_ref.source.clone(),
                });
            }
            // A signer measured for a tree the kernel does not enforce
            // would vouch for files nobody checks: not looked at.
            log::warn!(
                "'{}' is insecure: its signature, if any, is not checked or measured",
                image_ref.source
            );
            return Ok(None);
        }
        let digest = &image_ref.digest;
        let path = repo.signature_path(digest);
        let bytes = match repo.read_signature(digest) {
            Ok(Some(b)) => b,
            Ok(None) if self.policy == SignaturePolicy::IfPresent => return Ok(None),
            Ok(None) => return Err(SignatureRefusal::Missing { what, path }),
            Err(error) => return Err(SignatureRefusal::Read { what, error }),
        };
        let key = signature::verify(&bytes, digest, &self.keys).map_err(|error| {
            SignatureRefusal::Invalid {
                what,
                path: path.clone(),
                error,
            }
        })?;
        log::info!(
            "{} signed by trusted key {} ({}, {})",
            path.display(),
            key.id,
            key.key.describe(),
            key.source.display()
        );
        Ok(Some(Signer {
            id: key.id,
            key_file: key.source.clone(),
            kind: key.key.describe(),
        }))
    }
}
