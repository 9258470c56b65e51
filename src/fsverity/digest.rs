//! fs-verity digests as they appear on the kernel command line, in the
//! repository (file names) and from `FS_IOC_MEASURE_VERITY`.

use std::fmt;

/// The fs-verity hash algorithms composefs uses, always with 4 KiB blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// `FS_VERITY_HASH_ALG_*` from `<linux/fsverity.h>`.
    pub const fn kernel_id(self) -> u16 {
        match self {
            Algorithm::Sha256 => 1,
            Algorithm::Sha512 => 2,
        }
    }

    pub const fn from_kernel_id(id: u16) -> Option<Self> {
        match id {
            1 => Some(Algorithm::Sha256),
            2 => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    pub const fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    /// Length of the digest as hex: how the command line tells them apart.
    pub const fn hex_len(self) -> usize {
        self.digest_len() * 2
    }

    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The repository's `meta.json` spelling (`fsverity-<hash>-<log2 block>`).
    pub const fn repository_name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "fsverity-sha256-12",
            Algorithm::Sha512 => "fsverity-sha512-12",
        }
    }

    pub fn from_repository_name(name: &str) -> Option<Self> {
        [Algorithm::Sha256, Algorithm::Sha512]
            .into_iter()
            .find(|a| a.repository_name() == name)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An fs-verity file digest: algorithm plus the raw bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    bytes: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HexError {
    /// Neither 64 (SHA-256) nor 128 (SHA-512) hex digits.
    Length(usize),
    /// Not the length the named algorithm needs.
    WrongLength { found: usize, expected: usize },
    /// Not `[0-9a-fA-F]`; the byte offset of the first offender.
    NotHex(usize),
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::Length(n) => {
                write!(f, "{n} hex digits, expected 64 (sha256) or 128 (sha512)")
            }
            HexError::WrongLength { found, expected } => {
                write!(f, "{found} hex digits, expected {expected}")
            }
            HexError::NotHex(at) => write!(f, "not a hex digit at position {at}"),
        }
    }
}

impl std::error::Error for HexError {}

impl Digest {
    pub fn new(algorithm: Algorithm, bytes: &[u8]) -> Option<Self> {
        (bytes.len() == algorithm.digest_len()).then(|| Digest {
            algorithm,
            bytes: bytes.to_vec(),
        })
    }

    /// Parses a digest whose algorithm is implied by its length, as
    /// `composefs=` does. Upper-case digits are accepted; output is lower.
    pub fn from_hex(hex: &str) -> Result<Self, HexError> {
        let algorithm = match hex.len() {
            64 => Algorithm::Sha256,
            128 => Algorithm::Sha512,
            n => return Err(HexError::Length(n)),
        };
        Self::from_hex_as(algorithm, hex)
    }

    /// Parses a digest of a known algorithm.
    pub fn from_hex_as(algorithm: Algorithm, hex: &str) -> Result<Self, HexError> {
        if hex.len() != algorithm.hex_len() {
            return Err(HexError::WrongLength {
                found: hex.len(),
                expected: algorithm.hex_len(),
            });
        }
        let nibble = |i: usize, c: u8| crate::hex::nibble(c).ok_or(HexError::NotHex(i));
        let raw = hex.as_bytes();
        let mut bytes = Vec::with_capacity(algorithm.digest_len());
        for i in (0..raw.len()).step_by(2) {
            bytes.push(nibble(i, raw[i])? << 4 | nibble(i + 1, raw[i + 1])?);
        }
        Ok(Digest { algorithm, bytes })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.bytes)
    }
}

impl fmt::Display for Digest {
    /// `sha256:<hex>`, the form `fsverity digest` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_follows_from_length() {
        assert_eq!(
            Digest::from_hex(&"ab".repeat(32)).unwrap().algorithm(),
            Algorithm::Sha256
        );
        assert_eq!(
            Digest::from_hex(&"ab".repeat(64)).unwrap().algorithm(),
            Algorithm::Sha512
        );
        assert_eq!(Digest::from_hex(&"a".repeat(63)), Err(HexError::Length(63)));
        assert_eq!(Digest::from_hex(""), Err(HexError::Length(0)));
    }

    #[test]
    fn hex_round_trips_lowercased() {
        let upper = "0123456789ABCDEF".repeat(4);
        let d = Digest::from_hex(&upper).unwrap();
        assert_eq!(d.to_hex(), upper.to_lowercase());
        assert_eq!(d.as_bytes()[..2], [0x01, 0x23]);
        assert_eq!(d.to_string(), format!("sha256:{}", upper.to_lowercase()));
    }

    #[test]
    fn non_hex_is_located() {
        let mut s = "0".repeat(64);
        s.replace_range(10..11, "g");
        assert_eq!(Digest::from_hex(&s), Err(HexError::NotHex(10)));
        // Multi-byte UTF-8 must not panic on the byte-wise walk.
        let s = format!("{}é{}", "0".repeat(30), "0".repeat(32));
        assert_eq!(s.len(), 64);
        assert_eq!(Digest::from_hex(&s), Err(HexError::NotHex(30)));
    }

    #[test]
    fn repository_names() {
        assert_eq!(
            Algorithm::from_repository_name("fsverity-sha512-12"),
            Some(Algorithm::Sha512)
        );
        assert_eq!(Algorithm::from_repository_name("fsverity-sha256-16"), None);
        assert_eq!(Algorithm::Sha256.kernel_id(), 1);
    }
}
