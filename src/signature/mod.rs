//! Signatures of fs-verity digests: a detached PKCS#7 / CMS SignedData
//! (DER) over `struct fsverity_formatted_digest`, what `fsverity sign`
//! writes and `openssl cms|smime -sign -binary` can write, verified with
//! the initrd's trusted keys (docs/formats.md, "Signed images").
//!
//! | module | job |
//! |---|---|
//! | `der` | a bounds-checked DER reader |
//! | `pkcs7` | the SignedData fields verification needs |
//! | `keys` | trusted keys (certificates / public keys, PEM or DER) and their identity |
//!
//! Pure: bytes in, a verdict out. Reading the files is the caller's.
#![forbid(unsafe_code)]

pub mod der;
pub mod keys;
pub mod pkcs7;

use std::fmt;

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest as _, Sha256, Sha384, Sha512};

use crate::fsverity::Digest;
pub use keys::{KeyId, PublicKey, TrustedKey};
use pkcs7::ParseError;

/// A signature file larger than this is refused unread: `fsverity sign`'s
/// are about 1–2 KiB with a certificate, a few hundred bytes without.
pub const SIGNATURE_MAX: u64 = 64 * 1024;

/// `struct fsverity_formatted_digest` (`<linux/fsverity.h>`):
/// `char magic[8] = "FSVerity"; __le16 digest_algorithm; __le16
/// digest_size; __u8 digest[];` — what is signed, so that a signature of
/// a SHA-256 digest cannot pass for one of a SHA-512 digest.
pub fn formatted_digest(digest: &Digest) -> Vec<u8> {
    let bytes = digest.as_bytes();
    let mut out = Vec::with_capacity(12 + bytes.len());
    out.extend_from_slice(b"FSVerity");
    out.extend_from_slice(&digest.algorithm().kernel_id().to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
const OID_SHA256_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B];
const OID_SHA384_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0C];
const OID_SHA512_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0D];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_ECDSA_SHA256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
const OID_ECDSA_SHA384: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03];
const OID_ECDSA_SHA512: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x04];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_oid(oid: &[u8]) -> Option<Hash> {
        match oid {
            OID_SHA256 => Some(Hash::Sha256),
            OID_SHA384 => Some(Hash::Sha384),
            OID_SHA512 => Some(Hash::Sha512),
            _ => None,
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha384 => Sha384::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Rsa,
    Ecdsa,
}

/// The signature algorithm's family; where its OID names a hash too, that
/// hash must be the signer's digest algorithm.
fn scheme(oid: &[u8], hash: Hash) -> Option<Scheme> {
    let (scheme, named) = match oid {
        keys::OID_RSA => (Scheme::Rsa, None),
        OID_SHA256_RSA => (Scheme::Rsa, Some(Hash::Sha256)),
        OID_SHA384_RSA => (Scheme::Rsa, Some(Hash::Sha384)),
        OID_SHA512_RSA => (Scheme::Rsa, Some(Hash::Sha512)),
        OID_EC_PUBLIC_KEY => (Scheme::Ecdsa, None),
        OID_ECDSA_SHA256 => (Scheme::Ecdsa, Some(Hash::Sha256)),
        OID_ECDSA_SHA384 => (Scheme::Ecdsa, Some(Hash::Sha384)),
        OID_ECDSA_SHA512 => (Scheme::Ecdsa, Some(Hash::Sha512)),
        _ => return None,
    };
    named.map_or(true, |n| n == hash).then_some(scheme)
}

/// Why a signature does not vouch for a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    Parse(ParseError),
    /// Not exactly one SignerInfo (fs-verity signatures have one).
    Signers(usize),
    /// The content type is not id-data.
    ContentType,
    /// The signature carries its content and it is not this digest's
    /// formatted digest.
    AttachedContent,
    /// A digest or signature algorithm veriroot does not verify (hex OIDs).
    Algorithm {
        digest: String,
        signature: String,
    },
    /// The signed attributes' message digest is not that of this image's
    /// formatted digest: signed for another image.
    OtherContent,
    /// No trusted key verifies it. `carried`: the keys of the certificates
    /// it carries, and whether each is trusted.
    NotVerified {
        carried: Vec<(KeyId, bool)>,
    },
    NoKeys,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureError::Parse(e) => e.fmt(f),
            SignatureError::Signers(n) => {
                write!(
                    f,
                    "it has {n} signers; an fs-verity signature has exactly one"
                )
            }
            SignatureError::ContentType => f.write_str(
                "its content type is not id-data (sign the formatted digest with -binary)",
            ),
            SignatureError::AttachedContent | SignatureError::OtherContent => f.write_str(
                "it signs other content than this image's fs-verity formatted digest: it \
                 was made for another image (or over the raw digest)",
            ),
            SignatureError::Algorithm { digest, signature } => write!(
                f,
                "it uses digest algorithm OID {digest} with signature algorithm OID \
                 {signature}; veriroot verifies RSA PKCS#1 v1.5 and ECDSA with SHA-256, \
                 SHA-384 or SHA-512"
            ),
            SignatureError::NotVerified { carried } => {
                f.write_str(
                    "no trusted key verifies it over this image's digest: it was made by \
                     an untrusted key, for another image, or it is corrupted",
                )?;
                for (id, trusted) in carried {
                    let t = if *trusted { "trusted" } else { "NOT trusted" };
                    write!(f, "; it carries a certificate of key {id} ({t})")?;
                }
                Ok(())
            }
            SignatureError::NoKeys => f.write_str("the initrd has no trusted keys"),
        }
    }
}

impl std::error::Error for SignatureError {}

/// Checks that `sig` (DER) is a signature of `digest`'s formatted digest
/// by one of `keys`, and returns that key.
pub fn verify<'k>(
    sig: &[u8],
    digest: &Digest,
    keys: &'k [TrustedKey],
) -> Result<&'k TrustedKey, SignatureError> {
    let sd = pkcs7::parse(sig).map_err(SignatureError::Parse)?;
    let [signer] = sd.signers.as_slice() else {
        return Err(SignatureError::Signers(sd.signers.len()));
    };
    if sd.content_type != pkcs7::OID_DATA {
        return Err(SignatureError::ContentType);
    }
    let content = formatted_digest(digest);
    if sd.content.is_some_and(|c| c != content) {
        return Err(SignatureError::AttachedContent);
    }
    let unsupported = || SignatureError::Algorithm {
        digest: crate::hex::encode(signer.digest_algorithm),
        signature: crate::hex::encode(signer.signature_algorithm),
    };
    let hash = Hash::from_oid(signer.digest_algorithm).ok_or_else(unsupported)?;
    let scheme = scheme(signer.signature_algorithm, hash).ok_or_else(unsupported)?;
    // What the signature is over: the content, or (RFC 5652, 5.4) the
    // signed attributes re-tagged as a SET, which hold the content's hash.
    let signed_hash = match signer.signed_attrs {
        None => hash.digest(&content),
        Some(raw) => {
            let attrs = pkcs7::signed_attrs(raw).map_err(SignatureError::Parse)?;
            if attrs.content_type != pkcs7::OID_DATA {
                return Err(SignatureError::ContentType);
            }
            if attrs.message_digest != hash.digest(&content) {
                return Err(SignatureError::OtherContent);
            }
            let mut set = raw.to_vec();
            set[0] = der::SET;
            hash.digest(&set)
        }
    };
    if keys.is_empty() {
        return Err(SignatureError::NoKeys);
    }
    let found = keys
        .iter()
        .find(|k| verifies(&k.key, scheme, hash, &signed_hash, signer.signature));
    found.ok_or_else(|| SignatureError::NotVerified {
        carried: sd
            .carried_keys
            .iter()
            .map(|spki| {
                let id = keys::key_id(spki);
                (id, keys.iter().any(|k| k.id == id))
            })
            .collect(),
    })
}

fn verifies(key: &PublicKey, scheme: Scheme, hash: Hash, hashed: &[u8], sig: &[u8]) -> bool {
    match (key, scheme) {
        (PublicKey::Rsa(k), Scheme::Rsa) => {
            let padding = match hash {
                Hash::Sha256 => rsa::Pkcs1v15Sign::new::<Sha256>(),
                Hash::Sha384 => rsa::Pkcs1v15Sign::new::<Sha384>(),
                Hash::Sha512 => rsa::Pkcs1v15Sign::new::<Sha512>(),
            };
            k.verify(padding, hashed, sig).is_ok()
        }
        (PublicKey::P256(k), Scheme::Ecdsa) => p256::ecdsa::Signature::from_der(sig)
            .is_ok_and(|s| k.verify_prehash(hashed, &s).is_ok()),
        (PublicKey::P384(k), Scheme::Ecdsa) => p384::ecdsa::Signature::from_der(sig)
            .is_ok_and(|s| k.verify_prehash(hashed, &s).is_ok()),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
