//! The hash algorithms of TPM PCR banks, and PCR arithmetic.
//!
//! A PCR bank is named by its TPM algorithm id on the wire and by systemd's
//! name (`sha256`, ...) in the userspace measurement log. `extend` and
//! `replay` predict what the TPM will hold, so a PCR value can be checked
//! (or a policy pre-calculated) without one.

use std::fmt;

use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};

/// A hash algorithm a PCR bank can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// Every algorithm, in TPM algorithm id order.
    pub const ALL: [HashAlg; 4] = [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];

    /// `TPM_ALG_ID` (TPM 2.0 Part 2, table 9).
    pub const fn tpm_id(self) -> u16 {
        match self {
            HashAlg::Sha1 => 0x0004,
            HashAlg::Sha256 => 0x000B,
            HashAlg::Sha384 => 0x000C,
            HashAlg::Sha512 => 0x000D,
        }
    }

    pub const fn from_tpm_id(id: u16) -> Option<Self> {
        match id {
            0x0004 => Some(HashAlg::Sha1),
            0x000B => Some(HashAlg::Sha256),
            0x000C => Some(HashAlg::Sha384),
            0x000D => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    /// systemd's name (`hashAlg` in the userspace measurement log).
    pub const fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        HashAlg::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Digest size in bytes: also the size of a PCR in this bank.
    pub const fn digest_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        self.digest_parts(&[data])
    }

    /// The digest of the concatenation of `parts`.
    fn digest_parts(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut h = D::new();
            for p in parts {
                h.update(p);
            }
            h.finalize().to_vec()
        }
        match self {
            HashAlg::Sha1 => run::<Sha1>(parts),
            HashAlg::Sha256 => run::<Sha256>(parts),
            HashAlg::Sha384 => run::<Sha384>(parts),
            HashAlg::Sha512 => run::<Sha512>(parts),
        }
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `TPM2_PCR_Extend` computes: `H(old || digest)`.
pub fn extend(alg: HashAlg, old: &[u8], digest: &[u8]) -> Vec<u8> {
    alg.digest_parts(&[old, digest])
}

/// The value of a PCR after extending each of `digests`, in order, from the
/// reset value (all zero bytes; PCRs 0–16 and 23 at TPM2_Startup(CLEAR)).
pub fn replay<'a>(alg: HashAlg, digests: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    digests
        .into_iter()
        .fold(vec![0; alg.digest_len()], |pcr, d| extend(alg, &pcr, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::hex::encode as hex;

    #[test]
    fn ids_and_names_round_trip() {
        for alg in HashAlg::ALL {
            assert_eq!(HashAlg::from_tpm_id(alg.tpm_id()), Some(alg));
            assert_eq!(HashAlg::from_name(alg.name()), Some(alg));
            assert_eq!(alg.digest(b"").len(), alg.digest_len());
            assert_eq!(alg.to_string(), alg.name());
        }
        assert_eq!(HashAlg::Sha256.tpm_id(), 0x000B);
        assert_eq!(HashAlg::from_tpm_id(0x0012), None); // TPM_ALG_SM3_256
        assert_eq!(HashAlg::from_name("SHA256"), None);
        assert_eq!(HashAlg::from_name("sha3-256"), None);
    }

    #[test]
    fn known_digests() {
        assert_eq!(
            hex(&HashAlg::Sha256.digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&HashAlg::Sha1.digest(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&HashAlg::Sha384.digest(b"abc")),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded163\
             1a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"
        );
        assert_eq!(
            hex(&HashAlg::Sha512.digest(b"abc")),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn extend_matches_python() {
        // python3:
        //   d = hashlib.sha256(b"veriroot").digest()
        //   hashlib.sha256(bytes(32) + d).hexdigest()
        let d = HashAlg::Sha256.digest(b"veriroot");
        assert_eq!(
            hex(&d),
            "b7a9597e59684173bee85e8727d3a6c66b0639779261a82f3211261368e0548d"
        );
        assert_eq!(
            hex(&extend(HashAlg::Sha256, &[0; 32], &d)),
            "e34ebc0f38e6f4df87432b39a833627bd21f11a2bf16f5aaeeef95f24a674a9c"
        );
    }

    #[test]
    fn replay_from_zero() {
        // python3:
        //   e = hashlib.sha1(bytes(20) + hashlib.sha1(b"veriroot").digest()).digest()
        //   hashlib.sha1(e + hashlib.sha1(b"second").digest()).hexdigest()
        let a = HashAlg::Sha1.digest(b"veriroot");
        let b = HashAlg::Sha1.digest(b"second");
        assert_eq!(
            hex(&replay(HashAlg::Sha1, [a.as_slice()])),
            "262ea8ca01a9b835eb26dec55c5a9c0ad11f0878"
        );
        assert_eq!(
            hex(&replay(HashAlg::Sha1, [a.as_slice(), b.as_slice()])),
            "fb473f68785ac690900a1535f7ab56a32a0dabcc"
        );
        // Nothing extended: the reset value.
        assert_eq!(replay(HashAlg::Sha512, []), vec![0; 64]);
    }
}
