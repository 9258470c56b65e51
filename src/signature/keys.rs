//! Trusted public keys: X.509 certificates or bare SubjectPublicKeyInfo,
//! PEM or DER, one per file in `/etc/veriroot/keys/` (the initrd's, which
//! the boot chain measures). Only the public key is used: no chain, no
//! validity dates (an initrd has no trusted clock), no key usage. A key is
//! known by the SHA-256 of its SubjectPublicKeyInfo DER, the identity that
//! is measured (`veriroot:signer:`) and that `openssl pkey -pubin
//! -outform DER | sha256sum` prints.

use std::fmt;
use std::path::{Path, PathBuf};

use rsa::traits::PublicKeyParts;
use sha2::{Digest as _, Sha256};

use crate::signature::der::{self, DerError, Reader};

/// RSA keys below this are refused (NIST: 2048 bits at least); the `rsa`
/// crate refuses more than 4096.
pub const RSA_MIN_BITS: usize = 2048;

/// A key file larger than this is no certificate.
pub const KEY_FILE_MAX: u64 = 64 * 1024;

pub(crate) const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];

/// SHA-256 of a SubjectPublicKeyInfo's DER.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct KeyId(pub [u8; 32]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hex::encode(&self.0))
    }
}

#[derive(Clone, Debug)]
pub enum PublicKey {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

impl PublicKey {
    pub fn describe(&self) -> String {
        match self {
            PublicKey::Rsa(k) => format!("RSA-{}", k.n().bits()),
            PublicKey::P256(_) => "ECDSA P-256".to_owned(),
            PublicKey::P384(_) => "ECDSA P-384".to_owned(),
        }
    }
}

/// A key the initrd trusts, and where it came from.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    pub id: KeyId,
    pub key: PublicKey,
    pub source: PathBuf,
}

/// Why a key file cannot be used.
#[derive(Debug)]
pub enum KeyProblem {
    Read(std::io::Error),
    TooLarge(u64),
    /// A PEM block other than CERTIFICATE or PUBLIC KEY (e.g. a private key).
    PemLabel(String),
    /// No PEM block, or bad base64 inside it.
    Pem,
    Der(DerError),
    /// A key algorithm or curve veriroot does not verify with (its OID, hex).
    Algorithm(String),
    RsaTooSmall(usize),
    /// The key bytes are not a valid key of their algorithm.
    Invalid(&'static str),
}

#[derive(Debug)]
pub struct KeyError {
    pub path: PathBuf,
    pub problem: KeyProblem,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.problem {
            KeyProblem::Read(e) => write!(f, "cannot read the trusted key {p}: {e}"),
            KeyProblem::TooLarge(n) => write!(
                f,
                "the trusted key {p} is {n} bytes, more than the {KEY_FILE_MAX} a certificate \
                 may have"
            ),
            KeyProblem::PemLabel(l) => write!(
                f,
                "the trusted key {p} is a PEM \"{}\"; put a CERTIFICATE or a PUBLIC KEY there \
                 (never a private key)",
                crate::text::escape(l)
            ),
            KeyProblem::Pem => write!(
                f,
                "the trusted key {p} is neither DER nor a valid PEM CERTIFICATE / PUBLIC KEY"
            ),
            KeyProblem::Der(e) => write!(
                f,
                "the trusted key {p} is not an X.509 certificate or SubjectPublicKeyInfo: {e}"
            ),
            KeyProblem::Algorithm(oid) => write!(
                f,
                "the trusted key {p} uses algorithm or curve OID {oid}; veriroot verifies RSA \
                 (2048-4096 bits) and ECDSA P-256 / P-384"
            ),
            KeyProblem::RsaTooSmall(bits) => write!(
                f,
                "the trusted key {p} is RSA-{bits}; at least {RSA_MIN_BITS} bits are required"
            ),
            KeyProblem::Invalid(what) => write!(f, "the trusted key {p}: {what}"),
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            KeyProblem::Read(e) => Some(e),
            KeyProblem::Der(e) => Some(e),
            _ => None,
        }
    }
}

/// The SubjectPublicKeyInfo element of a DER certificate or of a bare
/// SubjectPublicKeyInfo: its raw bytes.
pub fn spki_of(der_bytes: &[u8]) -> Result<&[u8], DerError> {
    let mut top = Reader::new(der_bytes);
    let outer = top.expect(der::SEQUENCE)?;
    top.end()?;
    let mut inner = outer.value;
    let first = inner.any()?;
    if first.tag == der::SEQUENCE && first.value.peek_tag() == Some(der::OID) {
        // SubjectPublicKeyInfo ::= SEQUENCE { AlgorithmIdentifier, BIT STRING }
        return Ok(outer.raw);
    }
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
    // OPTIONAL, serial, signature, issuer, validity, subject, spki, ... } }
    if first.tag != der::SEQUENCE {
        return Err(DerError::Tag {
            offset: outer.value.offset(),
            expected: der::SEQUENCE,
            found: first.tag,
        });
    }
    let mut tbs = first.value;
    tbs.optional(der::context(0))?;
    tbs.expect(der::INTEGER)?;
    for _ in 0..4 {
        tbs.expect(der::SEQUENCE)?;
    }
    Ok(tbs.expect(der::SEQUENCE)?.raw)
}

pub fn key_id(spki: &[u8]) -> KeyId {
    KeyId(Sha256::digest(spki).into())
}

/// The public key in a SubjectPublicKeyInfo.
pub fn parse_spki(spki: &[u8]) -> Result<PublicKey, KeyProblem> {
    let mut r = Reader::new(spki);
    let mut seq = r.expect(der::SEQUENCE).map_err(KeyProblem::Der)?.value;
    let mut alg = seq.expect(der::SEQUENCE).map_err(KeyProblem::Der)?.value;
    let oid = alg.expect(der::OID).map_err(KeyProblem::Der)?.value.bytes();
    let bits = seq.expect(der::BIT_STRING).map_err(KeyProblem::Der)?.value;
    seq.end().map_err(KeyProblem::Der)?;
    let key = match bits.bytes() {
        [0, key @ ..] => key,
        _ => return Err(KeyProblem::Invalid("the key's BIT STRING has unused bits")),
    };
    if oid == OID_RSA {
        let mut rk = Reader::new(key);
        let mut seq = rk.expect(der::SEQUENCE).map_err(KeyProblem::Der)?.value;
        let n = seq.expect(der::INTEGER).map_err(KeyProblem::Der)?.value;
        let e = seq.expect(der::INTEGER).map_err(KeyProblem::Der)?.value;
        let (Some(n), Some(e)) = (der::unsigned(n.bytes()), der::unsigned(e.bytes())) else {
            return Err(KeyProblem::Invalid("a negative RSA modulus or exponent"));
        };
        let n = rsa::BigUint::from_bytes_be(n);
        if n.bits() < RSA_MIN_BITS {
            return Err(KeyProblem::RsaTooSmall(n.bits()));
        }
        return rsa::RsaPublicKey::new(n, rsa::BigUint::from_bytes_be(e))
            .map(PublicKey::Rsa)
            .map_err(|_| KeyProblem::Invalid("not a valid RSA public key (at most 4096 bits)"));
    }
    if oid == OID_EC_PUBLIC_KEY {
        let curve = alg.expect(der::OID).map_err(KeyProblem::Der)?.value.bytes();
        let invalid = |_| KeyProblem::Invalid("not a point on the key's curve");
        return match curve {
            OID_P256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(key)
                .map(PublicKey::P256)
                .map_err(invalid),
            OID_P384 => p384::ecdsa::VerifyingKey::from_sec1_bytes(key)
                .map(PublicKey::P384)
                .map_err(invalid),
            other => Err(KeyProblem::Algorithm(crate::hex::encode(other))),
        };
    }
    Err(KeyProblem::Algorithm(crate::hex::encode(oid)))
}

/// A key file's bytes (PEM or DER) as a trusted key.
pub fn parse_key_file(path: &Path, bytes: &[u8]) -> Result<TrustedKey, KeyError> {
    let err = |problem| KeyError {
        path: path.to_owned(),
        problem,
    };
    let der_bytes = if bytes.first() == Some(&der::SEQUENCE) {
        bytes.to_vec()
    } else {
        pem_decode(bytes).map_err(err)?
    };
    let spki = spki_of(&der_bytes).map_err(|e| err(KeyProblem::Der(e)))?;
    let key = parse_spki(spki).map_err(err)?;
    Ok(TrustedKey {
        id: key_id(spki),
        key,
        source: path.to_owned(),
    })
}

/// The first PEM block's bytes, if it is a CERTIFICATE or a PUBLIC KEY.
fn pem_decode(bytes: &[u8]) -> Result<Vec<u8>, KeyProblem> {
    let text = std::str::from_utf8(bytes).map_err(|_| KeyProblem::Pem)?;
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or(KeyProblem::Pem)?;
    if label != "CERTIFICATE" && label != "PUBLIC KEY" {
        return Err(KeyProblem::PemLabel(label.to_owned()));
    }
    let end = format!("-----END {label}-----");
    let mut b64 = String::new();
    for line in lines.by_ref() {
        if line == end {
            return base64_decode(&b64).ok_or(KeyProblem::Pem);
        }
        b64.push_str(line);
    }
    Err(KeyProblem::Pem)
}

/// Standard base64 with padding (RFC 4648), as PEM uses it.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let last = i + 1 == bytes.len() / 4;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | u32::from(value(c)?);
        }
        n <<= 6 * pad;
        let [_, a, b, c] = n.to_be_bytes();
        out.extend_from_slice(&[a, b, c][..3 - pad]);
    }
    Some(out)
}

/// Every `*.pem` and `*.der` file in `dir`, sorted by name; a missing
/// directory is no keys. Any file that is not a usable key is an error:
/// a key that silently does not count would be a surprise at boot.
pub fn load_dir(dir: &Path) -> Result<Vec<TrustedKey>, KeyError> {
    let err = |path: &Path, problem| KeyError {
        path: path.to_owned(),
        problem,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err(dir, KeyProblem::Read(e))),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| err(dir, KeyProblem::Read(e)))?.path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pem" | "der")
        ) {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let size = std::fs::metadata(path)
                .map_err(|e| err(path, KeyProblem::Read(e)))?
                .len();
            if size > KEY_FILE_MAX {
                return Err(err(path, KeyProblem::TooLarge(size)));
            }
            let bytes = std::fs::read(path).map_err(|e| err(path, KeyProblem::Read(e)))?;
            parse_key_file(path, &bytes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_pem_writes_it() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(base64_decode("Zm9vYg==").unwrap(), b"foob");
        assert_eq!(base64_decode("Zm9vYmE=").unwrap(), b"fooba");
        assert_eq!(base64_decode("Zm9=YmE="), None);
        assert_eq!(base64_decode("Zm9"), None);
        assert_eq!(base64_decode("Zm9*"), None);
    }

    #[test]
    fn a_private_key_is_refused_by_name() {
        let e = parse_key_file(
            Path::new("/etc/veriroot/keys/k.pem"),
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("never a private key"), "{e}");
        assert!(e.to_string().contains("/etc/veriroot/keys/k.pem"), "{e}");
    }
}
