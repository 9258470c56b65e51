//! TPM 2.0 command and response bytes for the four commands veriroot sends.
//!
//! Pure functions over byte buffers, nothing else. Everything is big-endian
//! (TPM 2.0 Part 1 §18). A command is
//! `tag:u16 commandSize:u32 commandCode:u32 handles… [authorizationSize:u32
//! sessions…] parameters…`, and a response
//! `tag:u16 responseSize:u32 responseCode:u32 handles… [parameterSize:u32]
//! parameters… [sessions…]`; the bracketed parts exist only with
//! `TPM_ST_SESSIONS`.
//!
//! Written by hand rather than with the `tpm2-protocol` crate: four
//! commands are ~200 lines, the crate (1.2.x) needs rust 1.95 while this
//! crate promises 1.80, and its generic marshalling of the whole TPM type
//! system is more code in the initrd binary than these four commands.
//!
//! Responses come from a device we do not trust to be well-formed: every
//! size is checked against the bytes actually there, nothing is allocated
//! from a count the TPM sent, and trailing bytes are an error like missing
//! ones.

use std::fmt;

use crate::measure::bank::HashAlg;

use super::rc::ResponseCode;

pub const TPM_ST_NO_SESSIONS: u16 = 0x8001;
pub const TPM_ST_SESSIONS: u16 = 0x8002;

pub const TPM_CC_PCR_EXTEND: u32 = 0x0000_0182;
pub const TPM_CC_PCR_READ: u32 = 0x0000_017E;
pub const TPM_CC_GET_CAPABILITY: u32 = 0x0000_017A;
pub const TPM_CC_GET_RANDOM: u32 = 0x0000_017B;

pub const TPM_CAP_PCRS: u32 = 0x0000_0005;
/// The password authorization session (TPM 2.0 Part 1 §19.8.4).
pub const TPM_RS_PW: u32 = 0x4000_0009;

/// Size of a command or response header.
pub const HEADER_LEN: usize = 10;
/// The largest response accepted: the Linux driver's buffer (TPM_BUFSIZE).
pub const MAX_RESPONSE: usize = 4096;
/// PCRs a PC-client TPM has (and the smallest `sizeofSelect`, 3 bytes).
const PCR_SELECT_MIN: usize = 3;

/// The commands we send, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    GetCapability,
    PcrExtend,
    PcrRead,
    GetRandom,
}

impl Command {
    pub const fn code(self) -> u32 {
        match self {
            Command::GetCapability => TPM_CC_GET_CAPABILITY,
            Command::PcrExtend => TPM_CC_PCR_EXTEND,
            Command::PcrRead => TPM_CC_PCR_READ,
            Command::GetRandom => TPM_CC_GET_RANDOM,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Command::GetCapability => "TPM2_GetCapability",
            Command::PcrExtend => "TPM2_PCR_Extend",
            Command::PcrRead => "TPM2_PCR_Read",
            Command::GetRandom => "TPM2_GetRandom",
        }
    }

    /// The tag a successful response carries.
    const fn response_tag(self) -> u16 {
        match self {
            Command::PcrExtend => TPM_ST_SESSIONS,
            _ => TPM_ST_NO_SESSIONS,
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes are not a command we can build or a response we accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MarshalError {
    /// The response ended before a field of this name.
    Truncated(&'static str),
    /// Bytes left over after the last field.
    TrailingBytes(usize),
    /// `responseSize` is not the number of bytes received.
    SizeMismatch { header: u32, actual: usize },
    /// A success response with the wrong tag for the command.
    BadTag(u16),
    /// A field with a value the command cannot have produced.
    Unexpected(String),
    /// A command argument we cannot encode.
    Argument(String),
}

impl fmt::Display for MarshalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MarshalError::Truncated(what) => write!(f, "response truncated before {what}"),
            MarshalError::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the response"),
            MarshalError::SizeMismatch { header, actual } => write!(
                f,
                "response header says {header} bytes but {actual} were received"
            ),
            MarshalError::BadTag(tag) => write!(f, "unexpected response tag {tag:#06x}"),
            MarshalError::Unexpected(what) => f.write_str(what),
            MarshalError::Argument(what) => f.write_str(what),
        }
    }
}

// ---- building commands ----

/// A command under construction; `finish` writes `commandSize`.
struct Builder(Vec<u8>);

impl Builder {
    fn new(tag: u16, command: Command) -> Self {
        let mut b = Builder(Vec::with_capacity(64));
        b.u16(tag);
        b.u32(0); // commandSize, patched by finish
        b.u32(command.code());
        b
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    fn finish(mut self) -> Vec<u8> {
        let size = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        self.0[2..6].copy_from_slice(&size.to_be_bytes());
        self.0
    }
}

/// TPM2_GetCapability(TPM_CAP_PCRS): the PCR banks and which PCRs each has
/// allocated. `property` is ignored for this capability; the Linux kernel
/// sends 0 and a count of 1, and so do we.
pub fn get_capability_pcrs() -> Vec<u8> {
    let mut b = Builder::new(TPM_ST_NO_SESSIONS, Command::GetCapability);
    b.u32(TPM_CAP_PCRS); // capability
    b.u32(0); // property
    b.u32(1); // propertyCount
    b.finish()
}

/// TPM2_PCR_Extend(pcrHandle, TPML_DIGEST_VALUES).
///
/// A PCR handle has an authorization role of USER, so the command always
/// carries one authorization session, whichever PCR: the password session
/// `TPM_RS_PW` with the empty password (PCRs have an empty authValue).
/// Without it the TPM answers TPM_RC_AUTH_MISSING.
pub fn pcr_extend(pcr: u32, digests: &[(HashAlg, &[u8])]) -> Result<Vec<u8>, MarshalError> {
    let mut b = Builder::new(TPM_ST_SESSIONS, Command::PcrExtend);
    b.u32(pcr); // pcrHandle: PCR n is handle n (TPM_HT_PCR = 0x00)
    b.u32(9); // authorizationSize: the session below
    b.u32(TPM_RS_PW); // sessionHandle
    b.u16(0); // nonce: empty TPM2B_NONCE
    b.u8(0); // sessionAttributes: none (continueSession is moot for PW)
    b.u16(0); // hmac: the empty password, as a TPM2B_AUTH
    let count = u32::try_from(digests.len())
        .map_err(|_| MarshalError::Argument("too many digests".into()))?;
    b.u32(count); // TPML_DIGEST_VALUES.count
    for &(alg, digest) in digests {
        if digest.len() != alg.digest_len() {
            return Err(MarshalError::Argument(format!(
                "a {alg} digest is {} bytes, not {}",
                alg.digest_len(),
                digest.len()
            )));
        }
        b.u16(alg.tpm_id()); // TPMT_HA.hashAlg
        b.bytes(digest); // TPMT_HA.digest, its size implied by hashAlg
    }
    Ok(b.finish())
}

/// TPM2_PCR_Read for one PCR in one bank.
///
/// `sizeofSelect` is the usual 3 (PCRs 0–23) or as many bytes as `pcr`
/// needs, so a PCR the TPM does not have gets the TPM's own error.
pub fn pcr_read(pcr: u32, alg: HashAlg) -> Result<Vec<u8>, MarshalError> {
    let byte = usize::try_from(pcr / 8).unwrap_or(usize::MAX);
    let size = byte.saturating_add(1).max(PCR_SELECT_MIN);
    let size_u8 = u8::try_from(size)
        .map_err(|_| MarshalError::Argument(format!("PCR {pcr} cannot be selected")))?;
    let mut b = Builder::new(TPM_ST_NO_SESSIONS, Command::PcrRead);
    b.u32(1); // TPML_PCR_SELECTION.count
    b.u16(alg.tpm_id()); // TPMS_PCR_SELECTION.hash
    b.u8(size_u8); // sizeofSelect
    let mut select = vec![0u8; size];
    select[byte] = 1 << (pcr % 8);
    b.bytes(&select); // pcrSelect: bit (pcr % 8) of byte (pcr / 8)
    Ok(b.finish())
}

/// TPM2_GetRandom(bytesRequested).
pub fn get_random(bytes: u16) -> Vec<u8> {
    let mut b = Builder::new(TPM_ST_NO_SESSIONS, Command::GetRandom);
    b.u16(bytes);
    b.finish()
}

// ---- parsing responses ----

/// Reads fields off a response, never past its end.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], MarshalError> {
        if n > self.buf.len() {
            return Err(MarshalError::Truncated(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, MarshalError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, MarshalError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, MarshalError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A TPM2B: `size:u16` then that many bytes.
    fn tpm2b(&mut self, what: &'static str) -> Result<&'a [u8], MarshalError> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }
    fn finish(self) -> Result<(), MarshalError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(MarshalError::TrailingBytes(n)),
        }
    }
}

/// A response's header, checked against its length.
#[derive(Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub tag: u16,
    pub code: ResponseCode,
    /// Everything after the header.
    pub body: &'a [u8],
}

/// Split a whole response into header and body; `responseSize` must equal
/// `buf.len()`.
pub fn response(buf: &[u8]) -> Result<Response<'_>, MarshalError> {
    let mut r = Reader::new(buf);
    let tag = r.u16("the tag")?;
    let size = r.u32("responseSize")?;
    let code = ResponseCode(r.u32("responseCode")?);
    if usize::try_from(size).ok() != Some(buf.len()) {
        return Err(MarshalError::SizeMismatch {
            header: size,
            actual: buf.len(),
        });
    }
    Ok(Response {
        tag,
        code,
        body: r.buf,
    })
}

/// `responseSize` from the first bytes of a response, for transports that
/// need to know how much more to read.
pub fn response_size(header: &[u8]) -> Option<usize> {
    let b = header.get(2..6)?;
    usize::try_from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok()
}

/// The parameters of a successful response to `command`, after its tag is
/// checked and, for a command with sessions, the session area is checked
/// and stripped. `resp.code` must be success.
fn parameters<'a>(command: Command, resp: &Response<'a>) -> Result<Reader<'a>, MarshalError> {
    if resp.tag != command.response_tag() {
        return Err(MarshalError::BadTag(resp.tag));
    }
    let mut r = Reader::new(resp.body);
    if resp.tag == TPM_ST_SESSIONS {
        let n = r.u32("parameterSize")?;
        let params = r.take(
            usize::try_from(n).unwrap_or(usize::MAX),
            "the end of the parameters",
        )?;
        // One TPMS_AUTH_RESPONSE for the one session sent.
        r.tpm2b("the session nonce")?;
        r.u8("the session attributes")?;
        r.tpm2b("the session hmac")?;
        r.finish()?;
        return Ok(Reader::new(params));
    }
    Ok(r)
}

/// A bank from TPM_CAP_PCRS: its algorithm id and which PCRs it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrBank {
    pub alg_id: u16,
    pub select: Vec<u8>,
}

impl PcrBank {
    /// A bank is active (allocated) if it has any PCR.
    pub fn is_active(&self) -> bool {
        self.select.iter().any(|&b| b != 0)
    }

    pub fn has_pcr(&self, pcr: u32) -> bool {
        let Ok(i) = usize::try_from(pcr / 8) else {
            return false;
        };
        self.select
            .get(i)
            .is_some_and(|b| b & (1 << (pcr % 8)) != 0)
    }
}

fn pcr_selections(r: &mut Reader<'_>) -> Result<Vec<PcrBank>, MarshalError> {
    let count = r.u32("TPML_PCR_SELECTION.count")?;
    let mut banks = Vec::new();
    for _ in 0..count {
        let alg_id = r.u16("TPMS_PCR_SELECTION.hash")?;
        let size = r.u8("sizeofSelect")?;
        let select = r.take(usize::from(size), "pcrSelect")?.to_vec();
        banks.push(PcrBank { alg_id, select });
    }
    Ok(banks)
}

/// The banks in a GetCapability(TPM_CAP_PCRS) response.
pub fn parse_get_capability_pcrs(resp: &Response<'_>) -> Result<Vec<PcrBank>, MarshalError> {
    let mut r = parameters(Command::GetCapability, resp)?;
    let _more_data = r.u8("moreData")?;
    let capability = r.u32("capability")?;
    if capability != TPM_CAP_PCRS {
        return Err(MarshalError::Unexpected(format!(
            "capability {capability:#x} instead of TPM_CAP_PCRS"
        )));
    }
    let banks = pcr_selections(&mut r)?;
    r.finish()?;
    Ok(banks)
}

/// A PCR_Extend response has no parameters; only its shape is checked.
pub fn parse_pcr_extend(resp: &Response<'_>) -> Result<(), MarshalError> {
    parameters(Command::PcrExtend, resp)?.finish()
}

/// The value of `pcr` in bank `alg` from a PCR_Read response, or `None` if
/// the TPM selected nothing (the bank has no such PCR allocated).
pub fn parse_pcr_read(
    resp: &Response<'_>,
    pcr: u32,
    alg: HashAlg,
) -> Result<Option<Vec<u8>>, MarshalError> {
    let mut r = parameters(Command::PcrRead, resp)?;
    let _update_counter = r.u32("pcrUpdateCounter")?;
    let selected = pcr_selections(&mut r)?;
    let count = r.u32("TPML_DIGEST.count")?;
    let mut digests = Vec::new();
    for _ in 0..count {
        digests.push(r.tpm2b("a PCR value")?);
    }
    r.finish()?;

    let ours = |b: &PcrBank| b.alg_id == alg.tpm_id() && b.has_pcr(pcr);
    let n_selected = selected.iter().filter(|b| b.is_active()).count();
    match (n_selected, digests.as_slice()) {
        (0, []) => Ok(None),
        (1, [value]) if selected.iter().any(ours) => {
            if value.len() != alg.digest_len() {
                return Err(MarshalError::Unexpected(format!(
                    "a {alg} PCR value of {} bytes",
                    value.len()
                )));
            }
            Ok(Some(value.to_vec()))
        }
        _ => Err(MarshalError::Unexpected(format!(
            "{} PCR values for a selection of {} banks, not PCR {pcr} of {alg}",
            digests.len(),
            selected.len()
        ))),
    }
}

/// The bytes of a GetRandom response (possibly fewer than asked for).
pub fn parse_get_random(resp: &Response<'_>) -> Result<Vec<u8>, MarshalError> {
    let mut r = parameters(Command::GetRandom, resp)?;
    let bytes = r.tpm2b("randomBytes")?.to_vec();
    r.finish()?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Response<'_> {
        response(bytes).unwrap()
    }

    #[test]
    fn get_capability_pcrs_command() {
        #[rustfmt::skip]
        let expected = [
            0x80, 0x01,             // TPM_ST_NO_SESSIONS
            0x00, 0x00, 0x00, 0x16, // commandSize 22
            0x00, 0x00, 0x01, 0x7A, // TPM_CC_GetCapability
            0x00, 0x00, 0x00, 0x05, // TPM_CAP_PCRS
            0x00, 0x00, 0x00, 0x00, // property
            0x00, 0x00, 0x00, 0x01, // propertyCount
        ];
        assert_eq!(get_capability_pcrs(), expected);
    }

    #[test]
    fn get_capability_pcrs_response() {
        #[rustfmt::skip]
        let resp = [
            0x80, 0x01,             // TPM_ST_NO_SESSIONS
            0x00, 0x00, 0x00, 0x2B, // responseSize 43
            0x00, 0x00, 0x00, 0x00, // TPM_RC_SUCCESS
            0x00,                   // moreData NO
            0x00, 0x00, 0x00, 0x05, // TPM_CAP_PCRS
            0x00, 0x00, 0x00, 0x04, // TPML_PCR_SELECTION.count 4
            0x00, 0x04, 0x03, 0xFF, 0xFF, 0xFF, // sha1, all 24 PCRs
            0x00, 0x0B, 0x03, 0xFF, 0xFF, 0xFF, // sha256, all 24 PCRs
            0x00, 0x0C, 0x03, 0x00, 0x00, 0x00, // sha384, none: inactive
            0x00, 0x0D, 0x03, 0x00, 0x00, 0x00, // sha512, none: inactive
        ];
        let banks = parse_get_capability_pcrs(&parse(&resp)).unwrap();
        let active: Vec<u16> = banks
            .iter()
            .filter(|b| b.is_active())
            .map(|b| b.alg_id)
            .collect();
        assert_eq!(active, [0x0004, 0x000B]);
        assert!(banks[1].has_pcr(23) && !banks[1].has_pcr(24));

        // Every shorter prefix is truncated (with a fixed-up size), and a
        // byte more is trailing garbage: no panic either way.
        for len in HEADER_LEN..resp.len() {
            let mut cut = resp[..len].to_vec();
            cut[2..6].copy_from_slice(&(len as u32).to_be_bytes());
            assert!(
                matches!(
                    parse_get_capability_pcrs(&parse(&cut)),
                    Err(MarshalError::Truncated(_))
                ),
                "{len}"
            );
        }
        let mut long = resp.to_vec();
        long.push(0);
        long[5] += 1;
        assert_eq!(
            parse_get_capability_pcrs(&parse(&long)),
            Err(MarshalError::TrailingBytes(1))
        );
    }

    #[test]
    fn hostile_counts_are_bounded_by_the_bytes() {
        #[rustfmt::skip]
        let resp = [
            0x80, 0x01, 0x00, 0x00, 0x00, 0x19, 0x00, 0x00, 0x00, 0x00,
            0x00,                   // moreData
            0x00, 0x00, 0x00, 0x05, // TPM_CAP_PCRS
            0xFF, 0xFF, 0xFF, 0xFF, // count 2^32-1
            0x00, 0x0B, 0xFF, 0x00, 0x00, 0x00, // sizeofSelect 255, 3 bytes there
        ];
        assert_eq!(
            parse_get_capability_pcrs(&parse(&resp)),
            Err(MarshalError::Truncated("pcrSelect"))
        );
    }

    #[test]
    fn response_header_checks() {
        // Shorter than a header.
        assert_eq!(
            response(&[0x80, 0x01, 0, 0]),
            Err(MarshalError::Truncated("responseSize"))
        );
        // Size field says more, or less, than was received.
        let short = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0, 0];
        assert_eq!(
            response(&short),
            Err(MarshalError::SizeMismatch {
                header: 12,
                actual: 10
            })
        );
        let long = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0, 0xAA];
        assert!(matches!(
            response(&long),
            Err(MarshalError::SizeMismatch { .. })
        ));
        // An error response: header only; TPM_RC_VALUE on handle 1.
        let err = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x84];
        let r = response(&err).unwrap();
        assert_eq!(r.code, ResponseCode(0x184));
        assert!(r.body.is_empty());
        assert_eq!(response_size(&err), Some(10));
        assert_eq!(response_size(&err[..5]), None);
    }

    #[test]
    fn pcr_extend_command() {
        let sha256 = [0x11; 32];
        let sha1 = [0x22; 20];
        let cmd = pcr_extend(
            15,
            &[(HashAlg::Sha256, &sha256[..]), (HashAlg::Sha1, &sha1[..])],
        )
        .unwrap();
        #[rustfmt::skip]
        let mut expected = vec![
            0x80, 0x02,             // TPM_ST_SESSIONS
            0x00, 0x00, 0x00, 0x57, // commandSize 87 = 10+4+4+9+4+34+22
            0x00, 0x00, 0x01, 0x82, // TPM_CC_PCR_Extend
            0x00, 0x00, 0x00, 0x0F, // pcrHandle: PCR 15
            0x00, 0x00, 0x00, 0x09, // authorizationSize 9
            0x40, 0x00, 0x00, 0x09, //   sessionHandle TPM_RS_PW
            0x00, 0x00,             //   nonce: size 0
            0x00,                   //   sessionAttributes
            0x00, 0x00,             //   hmac (password): size 0
            0x00, 0x00, 0x00, 0x02, // TPML_DIGEST_VALUES.count 2
            0x00, 0x0B,             // TPM_ALG_SHA256, then 32 bytes
        ];
        expected.extend_from_slice(&sha256);
        expected.extend_from_slice(&[0x00, 0x04]); // TPM_ALG_SHA1, then 20 bytes
        expected.extend_from_slice(&sha1);
        assert_eq!(cmd, expected);

        // A digest of the wrong length is refused before anything is sent.
        assert!(matches!(
            pcr_extend(15, &[(HashAlg::Sha384, &sha256[..])]),
            Err(MarshalError::Argument(_))
        ));
    }

    #[test]
    fn pcr_extend_response() {
        #[rustfmt::skip]
        let ok = [
            0x80, 0x02,             // TPM_ST_SESSIONS
            0x00, 0x00, 0x00, 0x13, // responseSize 19
            0x00, 0x00, 0x00, 0x00, // TPM_RC_SUCCESS
            0x00, 0x00, 0x00, 0x00, // parameterSize 0
            0x00, 0x00,             // nonce: size 0
            0x01,                   // sessionAttributes: continueSession
            0x00, 0x00,             // hmac: size 0
        ];
        assert_eq!(parse_pcr_extend(&parse(&ok)), Ok(()));
        // No session area at all.
        let mut bare = ok[..14].to_vec();
        bare[5] = 14;
        assert!(matches!(
            parse_pcr_extend(&parse(&bare)),
            Err(MarshalError::Truncated(_))
        ));
        // parameterSize larger than what follows.
        let mut big = ok;
        big[13] = 0x40;
        assert!(matches!(
            parse_pcr_extend(&parse(&big)),
            Err(MarshalError::Truncated(_))
        ));
        // Wrong tag for a command with sessions.
        let mut tag = ok;
        tag[1] = 0x01;
        assert_eq!(
            parse_pcr_extend(&parse(&tag)),
            Err(MarshalError::BadTag(TPM_ST_NO_SESSIONS))
        );
    }

    #[test]
    fn pcr_read_command() {
        #[rustfmt::skip]
        let expected = [
            0x80, 0x01,             // TPM_ST_NO_SESSIONS
            0x00, 0x00, 0x00, 0x14, // commandSize 20
            0x00, 0x00, 0x01, 0x7E, // TPM_CC_PCR_Read
            0x00, 0x00, 0x00, 0x01, // TPML_PCR_SELECTION.count 1
            0x00, 0x0B,             // TPM_ALG_SHA256
            0x03,                   // sizeofSelect 3
            0x00, 0x80, 0x00,       // PCR 15: byte 1, bit 7
        ];
        assert_eq!(pcr_read(15, HashAlg::Sha256).unwrap(), expected);
        // PCR 24 needs a fourth select byte.
        let cmd = pcr_read(24, HashAlg::Sha1).unwrap();
        assert_eq!(&cmd[14..], [0x00, 0x04, 0x04, 0x00, 0x00, 0x00, 0x01]);
        assert_eq!(&cmd[2..6], [0, 0, 0, 21]);
        // Beyond what a u8 sizeofSelect can reach.
        assert!(pcr_read(255 * 8, HashAlg::Sha1).is_err());
        assert!(pcr_read(u32::MAX, HashAlg::Sha1).is_err());
    }

    #[test]
    fn pcr_read_response() {
        #[rustfmt::skip]
        let mut ok = vec![
            0x80, 0x01,             // TPM_ST_NO_SESSIONS
            0x00, 0x00, 0x00, 0x3E, // responseSize 62
            0x00, 0x00, 0x00, 0x00, // TPM_RC_SUCCESS
            0x00, 0x00, 0x00, 0x07, // pcrUpdateCounter
            0x00, 0x00, 0x00, 0x01, // pcrSelectionOut.count 1
            0x00, 0x0B, 0x03, 0x00, 0x80, 0x00, // sha256, PCR 15
            0x00, 0x00, 0x00, 0x01, // pcrValues.count 1
            0x00, 0x20,             // TPM2B_DIGEST size 32
        ];
        ok.extend_from_slice(&[0xAB; 32]);
        assert_eq!(
            parse_pcr_read(&parse(&ok), 15, HashAlg::Sha256),
            Ok(Some(vec![0xAB; 32]))
        );
        // Not the PCR or bank we asked for.
        assert!(parse_pcr_read(&parse(&ok), 14, HashAlg::Sha256).is_err());
        assert!(parse_pcr_read(&parse(&ok), 15, HashAlg::Sha1).is_err());

        // A value of the wrong size for the bank.
        let mut short = ok.clone();
        short.truncate(ok.len() - 1);
        short[5] -= 1;
        short[29] = 31;
        assert!(matches!(
            parse_pcr_read(&parse(&short), 15, HashAlg::Sha256),
            Err(MarshalError::Unexpected(_))
        ));
        // The digest's size field claims more than is there.
        let mut lying = ok.clone();
        lying[29] = 0x40;
        assert_eq!(
            parse_pcr_read(&parse(&lying), 15, HashAlg::Sha256),
            Err(MarshalError::Truncated("a PCR value"))
        );

        // An inactive bank: nothing selected, no values.
        #[rustfmt::skip]
        let none = [
            0x80, 0x01, 0x00, 0x00, 0x00, 0x1C, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x07, // pcrUpdateCounter
            0x00, 0x00, 0x00, 0x01, // count 1
            0x00, 0x0C, 0x03, 0x00, 0x00, 0x00, // sha384, nothing selected
            0x00, 0x00, 0x00, 0x00, // pcrValues.count 0
        ];
        assert_eq!(parse_pcr_read(&parse(&none), 15, HashAlg::Sha384), Ok(None));
    }

    #[test]
    fn get_random_round_trip() {
        assert_eq!(
            get_random(8),
            [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7B, 0x00, 0x08]
        );
        #[rustfmt::skip]
        let resp = [
            0x80, 0x01, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x04,             // randomBytes size 4
            0xDE, 0xAD, 0xBE, 0xEF,
        ];
        assert_eq!(
            parse_get_random(&parse(&resp)),
            Ok(vec![0xDE, 0xAD, 0xBE, 0xEF])
        );
    }
}
