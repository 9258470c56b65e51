//! The fields of a detached PKCS#7 / CMS SignedData (RFC 5652) that
//! verifying it needs, as `fsverity sign` and `openssl cms|smime -sign`
//! write them:
//!
//! ```text
//! ContentInfo ::= SEQUENCE { contentType OID signedData, content [0] EXPLICIT SignedData }
//! SignedData ::= SEQUENCE { version INTEGER, digestAlgorithms SET,
//!     encapContentInfo SEQUENCE { eContentType OID, eContent [0] EXPLICIT OCTET STRING OPTIONAL },
//!     certificates [0] IMPLICIT OPTIONAL, crls [1] IMPLICIT OPTIONAL, signerInfos SET OF SignerInfo }
//! SignerInfo ::= SEQUENCE { version INTEGER, sid, digestAlgorithm AlgorithmIdentifier,
//!     signedAttrs [0] IMPLICIT SET OF Attribute OPTIONAL, signatureAlgorithm AlgorithmIdentifier,
//!     signature OCTET STRING, unsignedAttrs [1] IMPLICIT OPTIONAL }
//! ```
//!
//! The signer identifier (`sid`) and the certificates carried are not
//! trusted: the keys are the initrd's. Carried certificates only make an
//! error message more precise.

use crate::signature::der::{self, DerError, Reader};
use crate::signature::keys;

pub const OID_SIGNED_DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02];
pub const OID_DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01];
pub const OID_CONTENT_TYPE: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x03];
pub const OID_MESSAGE_DIGEST: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x04];

/// At most this many carried certificates are kept (for messages only).
pub const CARRIED_MAX: usize = 4;

/// One signer's part of a SignedData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerInfo<'a> {
    /// The digest algorithm's OID.
    pub digest_algorithm: &'a [u8],
    /// The signed attributes' whole `[0]` element, if any.
    pub signed_attrs: Option<&'a [u8]>,
    /// The signature algorithm's OID.
    pub signature_algorithm: &'a [u8],
    pub signature: &'a [u8],
}

/// What a SignedData says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedData<'a> {
    /// The content type the signature covers (id-data for fs-verity).
    pub content_type: &'a [u8],
    /// The signed content when it is attached (not detached).
    pub content: Option<&'a [u8]>,
    /// The SubjectPublicKeyInfo of each certificate carried.
    pub carried_keys: Vec<&'a [u8]>,
    pub signers: Vec<SignerInfo<'a>>,
}

/// Parses a DER ContentInfo holding a SignedData.
pub fn parse(bytes: &[u8]) -> Result<SignedData<'_>, ParseError> {
    let mut top = Reader::new(bytes);
    let mut info = top.expect(der::SEQUENCE)?.value;
    top.end()?;
    if info.expect(der::OID)?.value.bytes() != OID_SIGNED_DATA {
        return Err(ParseError::NotSignedData);
    }
    let mut explicit = info.expect(der::context(0))?.value;
    info.end()?;
    let mut sd = explicit.expect(der::SEQUENCE)?.value;
    explicit.end()?;
    sd.expect(der::INTEGER)?;
    sd.expect(der::SET)?;
    let mut encap = sd.expect(der::SEQUENCE)?.value;
    let content_type = encap.expect(der::OID)?.value.bytes();
    let content = match encap.optional(der::context(0))? {
        Some(e) => {
            let mut e = e.value;
            let octets = e.expect(der::OCTET_STRING)?.value.bytes();
            e.end()?;
            Some(octets)
        }
        None => None,
    };
    encap.end()?;
    let mut carried_keys = Vec::new();
    if let Some(certs) = sd.optional(der::context(0))? {
        let mut certs = certs.value;
        while !certs.is_empty() {
            let cert = certs.any()?;
            // Not a certificate veriroot can read (an attribute
            // certificate, ...): only messages lose detail.
            // A few are enough to name the signer in a message; a 64 KiB
            // file of tiny "certificates" must not become a 3000-key line.
            if let Ok(spki) = keys::spki_of(cert.raw) {
                if carried_keys.len() < CARRIED_MAX {
                    carried_keys.push(spki);
                }
            }
        }
    }
    sd.optional(der::context(1))?;
    let mut infos = sd.expect(der::SET)?.value;
    sd.end()?;
    let mut signers = Vec::new();
    while !infos.is_empty() {
        signers.push(signer_info(infos.expect(der::SEQUENCE)?.value)?);
    }
    Ok(SignedData {
        content_type,
        content,
        carried_keys,
        signers,
    })
}

fn signer_info(mut si: Reader<'_>) -> Result<SignerInfo<'_>, ParseError> {
    si.expect(der::INTEGER)?;
    // issuerAndSerialNumber (SEQUENCE) or [0] subjectKeyIdentifier.
    si.any()?;
    let digest_algorithm = algorithm(&mut si)?;
    let signed_attrs = si.optional(der::context(0))?.map(|a| a.raw);
    let signature_algorithm = algorithm(&mut si)?;
    let signature = si.expect(der::OCTET_STRING)?.value.bytes();
    si.optional(der::context(1))?;
    si.end()?;
    Ok(SignerInfo {
        digest_algorithm,
        signed_attrs,
        signature_algorithm,
        signature,
    })
}

/// An AlgorithmIdentifier's OID (its parameters, NULL or absent for the
/// algorithms veriroot knows, are not needed).
fn algorithm<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], ParseError> {
    Ok(r.expect(der::SEQUENCE)?
        .value
        .expect(der::OID)?
        .value
        .bytes())
}

/// The signed attributes that matter: the content type and the digest of
/// the content. Each must appear exactly once (RFC 5652, 11.1 and 11.2).
pub struct SignedAttrs<'a> {
    pub content_type: &'a [u8],
    pub message_digest: &'a [u8],
}

pub fn signed_attrs(raw: &[u8]) -> Result<SignedAttrs<'_>, ParseError> {
    let mut r = Reader::new(raw);
    let mut set = r.expect(der::context(0))?.value;
    let (mut content_type, mut message_digest) = (None, None);
    while !set.is_empty() {
        let mut attr = set.expect(der::SEQUENCE)?.value;
        let oid = attr.expect(der::OID)?.value.bytes();
        let mut values = attr.expect(der::SET)?.value;
        let (slot, tag) = match oid {
            OID_CONTENT_TYPE => (&mut content_type, der::OID),
            OID_MESSAGE_DIGEST => (&mut message_digest, der::OCTET_STRING),
            _ => continue,
        };
        let value = values.expect(tag)?.value.bytes();
        values.end()?;
        if slot.replace(value).is_some() {
            return Err(ParseError::Attribute("appears twice"));
        }
    }
    Ok(SignedAttrs {
        content_type: content_type.ok_or(ParseError::Attribute("content-type is missing"))?,
        message_digest: message_digest.ok_or(ParseError::Attribute("message-digest is missing"))?,
    })
}

/// Why bytes are no SignedData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Der(DerError),
    /// A ContentInfo of another type (enveloped data, ...).
    NotSignedData,
    /// A signed attribute that is missing or repeated.
    Attribute(&'static str),
}

impl From<DerError> for ParseError {
    fn from(e: DerError) -> Self {
        ParseError::Der(e)
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Der(e) => write!(f, "not a DER PKCS#7 SignedData: {e}"),
            ParseError::NotSignedData => f.write_str("a PKCS#7 ContentInfo, but not SignedData"),
            ParseError::Attribute(what) => write!(f, "its signed attribute {what}"),
        }
    }
}

impl std::error::Error for ParseError {}
