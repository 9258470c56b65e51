//! `veriroot predict --base-log LOG`: the PCR values veriroot's events
//! start from when something measured into the same PCRs before it in
//! the same boot, as systemd-cryptsetup does with `tpm2-measure-pcr=yes`
//! on an encrypted root (`cryptsetup:<volume>:<uuid>` into PCR 15, keyed
//! with the volume key: nobody without the key can compute it, so it is
//! read from a boot's log instead; docs/sealing.md, "Encrypted root").
//!
//! The base is every record of the log that comes before veriroot's first
//! one, in the PCRs veriroot's events extend. Records of other PCRs, and
//! everything from veriroot's first record on, are not part of it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::host::log::{read_capped, transpose, LogCommandError, MAX_LOG_SIZE};
use crate::measure::eventlog::{self, Content, Record};
use crate::measure::HashAlg;
use crate::text::escape;

/// The prefix of every string veriroot measures (`measure::events`).
const VERIROOT_PREFIX: &str = "veriroot:";

#[derive(Debug)]
pub enum BaseLogError {
    Read(LogCommandError),
    /// The log holds no veriroot record: which records precede veriroot's
    /// cannot be told (a log of a boot veriroot did not run in).
    NoVeriroot(PathBuf),
    /// A base record without a digest in a bank the prediction is for.
    MissingBank {
        path: PathBuf,
        record: usize,
        pcr: u32,
        bank: HashAlg,
    },
}

impl fmt::Display for BaseLogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaseLogError::Read(e) => e.fmt(f),
            BaseLogError::NoVeriroot(path) => write!(
                f,
                "{}: no veriroot record, so which records come before veriroot's cannot be told; \
                 give the log of a boot veriroot measured (/run/log/systemd/tpm2-measure.log)",
                path.display()
            ),
            BaseLogError::MissingBank {
                path,
                record,
                pcr,
                bank,
            } => write!(
                f,
                "{}: record #{record} (PCR {pcr}) has no {} digest; predict the banks it has (--banks)",
                path.display(),
                bank.name()
            ),
        }
    }
}

impl std::error::Error for BaseLogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BaseLogError::Read(e) => Some(e),
            _ => None,
        }
    }
}

/// One record of the base: its number in the log (from 1), its PCR and
/// what it says it measured (escaped: it comes from the log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseRecord {
    pub number: usize,
    pub pcr: u32,
    pub description: String,
}

/// The PCR values in `banks` after the base records of `path` (the PCRs
/// of `pcrs` only), and which records those were.
pub fn read(
    path: &Path,
    pcrs: &[u32],
    banks: &[HashAlg],
) -> Result<(PcrValues, Vec<BaseRecord>), BaseLogError> {
    let bytes = read_capped(path, MAX_LOG_SIZE).map_err(BaseLogError::Read)?;
    let records = eventlog::parse(&bytes).map_err(|error| {
        BaseLogError::Read(LogCommandError::Parse {
            path: path.to_owned(),
            error,
        })
    })?;
    base(&records, pcrs, banks).map_err(|e| match e {
        Missing::NoVeriroot => BaseLogError::NoVeriroot(path.to_owned()),
        Missing::Bank { record, pcr, bank } => BaseLogError::MissingBank {
            path: path.to_owned(),
            record,
            pcr,
            bank,
        },
    })
}

/// Per bank, per PCR.
pub type PcrValues = BTreeMap<HashAlg, BTreeMap<u32, Vec<u8>>>;

#[derive(Debug, PartialEq, Eq)]
enum Missing {
    NoVeriroot,
    Bank {
        record: usize,
        pcr: u32,
        bank: HashAlg,
    },
}

fn string_of(r: &Record) -> Option<&str> {
    match &r.content {
        Content::Systemd(c) => c.string.as_deref(),
        Content::Other { .. } => None,
    }
}

fn base(
    records: &[Record],
    pcrs: &[u32],
    banks: &[HashAlg],
) -> Result<(PcrValues, Vec<BaseRecord>), Missing> {
    let first = records
        .iter()
        .position(|r| string_of(r).is_some_and(|s| s.starts_with(VERIROOT_PREFIX)))
        .ok_or(Missing::NoVeriroot)?;
    let mut base = Vec::new();
    let mut taken = Vec::new();
    for (i, r) in records[..first].iter().enumerate() {
        if !pcrs.contains(&r.pcr) {
            continue;
        }
        // replay() passes over a bank a record lacks: here that would be a
        // wrong start, so it is refused.
        if let Some(&b) = banks
            .iter()
            .find(|b| !r.digests.iter().any(|(a, _)| a == *b))
        {
            return Err(Missing::Bank {
                record: i + 1,
                pcr: r.pcr,
                bank: b,
            });
        }
        base.push(r.clone());
        taken.push(BaseRecord {
            number: i + 1,
            pcr: r.pcr,
            description: escape(string_of(r).unwrap_or("(no string)")),
        });
    }
    let mut values = transpose(&eventlog::replay(&base));
    values.retain(|b, _| banks.contains(b));
    Ok((values, taken))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::eventlog::SystemdContent;

    fn record(pcr: u32, string: &str, digest: u8) -> Record {
        Record {
            pcr,
            digests: vec![
                (HashAlg::Sha256, vec![digest; 32]),
                (HashAlg::Sha1, vec![digest; 20]),
            ],
            content: Content::Systemd(SystemdContent {
                string: Some(string.into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn takes_the_records_before_veriroots_in_its_pcrs() {
        let log = [
            record(11, "enter-initrd", 1),
            record(15, "cryptsetup:root:1234", 2),
            record(15, "veriroot:image:sha512:ab", 3),
            record(15, "machine-id:00", 4),
        ];
        let (values, taken) = base(&log, &[15], &[HashAlg::Sha256]).unwrap();
        let want = crate::measure::bank::extend(HashAlg::Sha256, &[0; 32], &[2; 32]);
        assert_eq!(values[&HashAlg::Sha256][&15], want);
        assert_eq!(
            values[&HashAlg::Sha256].len(),
            1,
            "PCR 11 is not veriroot's"
        );
        assert_eq!(
            taken,
            vec![BaseRecord {
                number: 2,
                pcr: 15,
                description: "cryptsetup:root:1234".into()
            }]
        );
    }

    #[test]
    fn no_record_before_veriroots_is_an_empty_base() {
        let log = [record(15, "veriroot:image:sha512:ab", 3)];
        let (values, taken) = base(&log, &[15], &[HashAlg::Sha256]).unwrap();
        assert!(values.is_empty() && taken.is_empty());
    }

    #[test]
    fn a_log_without_veriroot_is_refused() {
        let log = [record(15, "cryptsetup:root:1234", 2)];
        assert_eq!(
            base(&log, &[15], &[HashAlg::Sha256]),
            Err(Missing::NoVeriroot)
        );
    }

    #[test]
    fn a_bank_the_record_lacks_is_refused() {
        let log = [
            record(15, "cryptsetup:root:1234", 2),
            record(15, "veriroot:image:sha512:ab", 3),
        ];
        assert_eq!(
            base(&log, &[15], &[HashAlg::Sha384]),
            Err(Missing::Bank {
                record: 1,
                pcr: 15,
                bank: HashAlg::Sha384
            })
        );
    }

    #[test]
    fn descriptions_from_the_log_are_escaped() {
        let log = [
            record(15, "cryptsetup:\u{1b}[2J", 2),
            record(15, "veriroot:image:sha512:ab", 3),
        ];
        let (_, taken) = base(&log, &[15], &[HashAlg::Sha1]).unwrap();
        assert!(!taken[0].description.contains('\u{1b}'));
    }
}
