//! The TPM2 policies a LUKS2 volume is sealed with, read from its header
//! (`veriroot check --luks DEV`): the `systemd-tpm2` tokens that
//! systemd-cryptenroll writes, and whether one binds veriroot's PCR 15
//! without what proves veriroot ran (docs/sealing.md).
//!
//! The header is the disk owner's: its size is bounded, its JSON read by
//! the strict reader, and its text escaped before it is printed.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::host::seal::{PCR_INITRD, PCR_KERNEL_BOOT};
use crate::measure::eventlog::json::{self, SyntaxError, Value};

/// The binary header before the JSON area (`struct luks2_hdr_disk`).
const BINARY_HEADER: usize = 4096;
/// The largest `hdr_size` cryptsetup allows (4 MiB of metadata).
const MAX_HEADER: u64 = 4 << 20;
const MAGIC: &[u8; 6] = b"LUKS\xba\xbe";

#[derive(Debug)]
pub enum LuksError {
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    NotLuks2 {
        path: PathBuf,
        found: String,
    },
    HeaderSize {
        path: PathBuf,
        size: u64,
    },
    Json {
        path: PathBuf,
        error: SyntaxError,
    },
}

impl fmt::Display for LuksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LuksError::Read { path, error } => {
                write!(f, "{}: reading the LUKS header: {error}", path.display())
            }
            LuksError::NotLuks2 { path, found } => write!(
                f,
                "{}: not a LUKS2 volume (its first bytes are {found}, expected the LUKS2 magic \
                 and version 2); give the device systemd-cryptenroll enrolled",
                path.display()
            ),
            LuksError::HeaderSize { path, size } => write!(
                f,
                "{}: LUKS2 header size {size} is outside 16 KiB..4 MiB: a damaged header",
                path.display()
            ),
            LuksError::Json { path, error } => {
                write!(f, "{}: the LUKS2 header's JSON: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for LuksError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LuksError::Read { error, .. } => Some(error),
            LuksError::Json { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// One `systemd-tpm2` token: what unseals its keyslot.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tpm2Token {
    pub id: String,
    pub keyslots: Vec<String>,
    /// `tpm2-pcrs`: bound to literal values (or those at enrolment).
    pub pcrs: Vec<u32>,
    /// `tpm2_pubkey_pcrs` (systemd spells it with underscores, as its
    /// other later keys): bound through a signed policy.
    pub pubkey_pcrs: Vec<u32>,
    /// `tpm2_pcrlock`: bound to systemd-pcrlock's NV index policy.
    pub pcrlock: bool,
}

impl Tpm2Token {
    /// Binds `pcr` but nothing that proves which initrd extended it: no
    /// PCR 9 or 11, literally or signed, and no pcrlock policy (which may
    /// cover them: veriroot cannot see which PCRs it locks).
    pub fn binds_alone(&self, pcr: u32) -> bool {
        let bound = |p| self.pcrs.contains(&p) || self.pubkey_pcrs.contains(&p);
        bound(pcr) && !bound(PCR_INITRD) && !bound(PCR_KERNEL_BOOT) && !self.pcrlock
    }
}

/// The header of `path` (a block device or an image file), its tokens.
pub fn read_tokens(path: &Path) -> Result<Vec<Tpm2Token>, LuksError> {
    let read = |error| LuksError::Read {
        path: path.to_owned(),
        error,
    };
    let mut file = std::fs::File::open(path).map_err(read)?;
    let mut head = Vec::new();
    // A shorter file is no LUKS2 volume: header_size says what it found.
    (&mut file)
        .take(BINARY_HEADER as u64)
        .read_to_end(&mut head)
        .map_err(read)?;
    let size = header_size(&head).map_err(|e| e.at(path))?;
    let mut rest = Vec::new();
    file.take(size - BINARY_HEADER as u64)
        .read_to_end(&mut rest)
        .map_err(read)?;
    head.extend_from_slice(&rest);
    parse(&head).map_err(|e| e.at(path))
}

/// Errors of the pure part, before a path is known.
#[derive(Debug)]
pub enum HeaderError {
    NotLuks2(String),
    Size(u64),
    Json(SyntaxError),
}

impl HeaderError {
    fn at(self, path: &Path) -> LuksError {
        let path = path.to_owned();
        match self {
            HeaderError::NotLuks2(found) => LuksError::NotLuks2 { path, found },
            HeaderError::Size(size) => LuksError::HeaderSize { path, size },
            HeaderError::Json(error) => LuksError::Json { path, error },
        }
    }
}

/// `hdr_size` of a LUKS2 binary header: the binary header and JSON area.
fn header_size(head: &[u8]) -> Result<u64, HeaderError> {
    let not = || HeaderError::NotLuks2(crate::hex::encode(&head[..head.len().min(8)]));
    if head.len() < BINARY_HEADER || &head[..6] != MAGIC || head[6..8] != [0, 2] {
        return Err(not());
    }
    let mut size = [0u8; 8];
    size.copy_from_slice(&head[8..16]);
    let size = u64::from_be_bytes(size);
    if !(16 << 10..=MAX_HEADER).contains(&size) {
        return Err(HeaderError::Size(size));
    }
    Ok(size)
}

/// The `systemd-tpm2` tokens of a LUKS2 header (binary header + JSON area).
pub fn parse(header: &[u8]) -> Result<Vec<Tpm2Token>, HeaderError> {
    let size = header_size(header)?;
    let end = usize::try_from(size)
        .unwrap_or(usize::MAX)
        .min(header.len());
    let area = header.get(BINARY_HEADER..end).unwrap_or_default();
    // The JSON text ends at the first NUL; the rest of the area is padding.
    let text = area.split(|&b| b == 0).next().unwrap_or_default();
    let text = String::from_utf8_lossy(text);
    let doc = json::parse(&text).map_err(HeaderError::Json)?;
    let Some(Value::Object(tokens)) = doc.get("tokens") else {
        return Ok(Vec::new());
    };
    let numbers = |v: Option<&Value>| -> Vec<u32> {
        match v {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|n| n.as_u64().and_then(|n| u32::try_from(n).ok()))
                .collect(),
            _ => Vec::new(),
        }
    };
    Ok(tokens
        .iter()
        .filter(|(_, t)| t.get("type").and_then(Value::as_str) == Some("systemd-tpm2"))
        .map(|(id, t)| Tpm2Token {
            id: id.clone(),
            keyslots: match t.get("keyslots") {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|k| k.as_str().map(crate::text::escape))
                    .collect(),
                _ => Vec::new(),
            },
            pcrs: numbers(t.get("tpm2-pcrs")),
            pubkey_pcrs: numbers(t.get("tpm2_pubkey_pcrs")),
            pcrlock: matches!(t.get("tpm2_pcrlock"), Some(Value::Bool(true))),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A LUKS2 header as cryptsetup lays it out: magic, version 2,
    /// hdr_size 16 KiB, the JSON area after 4 KiB, NUL padding.
    fn header(json: &str) -> Vec<u8> {
        let mut h = vec![0u8; 16 << 10];
        h[..6].copy_from_slice(MAGIC);
        h[6..8].copy_from_slice(&[0, 2]);
        h[8..16].copy_from_slice(&(16u64 << 10).to_be_bytes());
        h[BINARY_HEADER..BINARY_HEADER + json.len()].copy_from_slice(json.as_bytes());
        h
    }

    const TOKENS: &str = r#"{"keyslots":{},"tokens":{
        "0":{"type":"systemd-tpm2","keyslots":["1"],"tpm2-pcrs":[9,15],"tpm2-pcr-bank":"sha256"},
        "1":{"type":"systemd-tpm2","keyslots":["2"],"tpm2-pcrs":[15],"tpm2_pubkey_pcrs":[11]},
        "2":{"type":"systemd-tpm2","keyslots":["3"],"tpm2-pcrs":[7,15]},
        "3":{"type":"systemd-recovery","keyslots":["4"]},
        "4":{"type":"systemd-tpm2","keyslots":["5"],"tpm2-pcrs":[15],"tpm2_pcrlock":true}
    },"segments":{},"digests":{},"config":{}}"#;

    #[test]
    fn tokens_are_read_and_pcr_15_alone_is_found() {
        let tokens = parse(&header(TOKENS)).unwrap();
        let ids: Vec<&str> = tokens.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["0", "1", "2", "4"]);
        assert_eq!(tokens[0].pcrs, [9, 15]);
        assert_eq!(tokens[1].pubkey_pcrs, [11]);
        let alone: Vec<&str> = tokens
            .iter()
            .filter(|t| t.binds_alone(15))
            .map(|t| t.id.as_str())
            .collect();
        // 7+15: PCR 7 is the firmware's Secure Boot state, not the initrd.
        assert_eq!(alone, ["2"]);
        assert!(tokens[3].pcrlock);
    }

    #[test]
    fn not_a_luks2_header_is_refused_with_what_was_found() {
        let mut h = header(TOKENS);
        h[6..8].copy_from_slice(&[0, 1]);
        assert!(
            matches!(parse(&h), Err(HeaderError::NotLuks2(found)) if found == "4c554b53babe0001")
        );
        let mut h = header(TOKENS);
        h[8..16].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(matches!(parse(&h), Err(HeaderError::Size(s)) if s == 1 << 40));
        assert!(matches!(
            parse(&header("{\"tokens\":")),
            Err(HeaderError::Json(_))
        ));
    }
}
