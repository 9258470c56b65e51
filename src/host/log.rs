//! `veriroot log`: parse and replay systemd's userspace measurement log,
//! and compare the result with the TPM's PCRs where there is one.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::measure::eventlog::{self, Content, ParseError};
use crate::measure::events;
use crate::measure::HashAlg;
use crate::tpm::{Tpm, TpmError};

#[derive(Debug)]
pub enum LogCommandError {
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file is larger than `limit` bytes: not read further.
    TooLarge {
        path: PathBuf,
        limit: u64,
    },
    Parse {
        path: PathBuf,
        error: ParseError,
    },
    Tpm(TpmError),
}

/// The most `veriroot log` reads. systemd's log holds a few records per
/// boot (a few hundred bytes each); this is far beyond any real one and
/// keeps a wrong path (a disk image, /dev/zero) from filling memory.
pub const MAX_LOG_SIZE: u64 = 64 << 20;

/// How long a writer may hold the log's lock before `log` gives up.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The sticky bit: systemd's (and veriroot's) writers set it while they
/// append and leave it set when they could not finish.
fn marked_incomplete(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o1000 != 0)
        .unwrap_or(false)
}

impl fmt::Display for LogCommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogCommandError::Read { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            LogCommandError::TooLarge { path, limit } => write!(
                f,
                "{}: larger than {limit} bytes, the most a measurement log may have: not a \
                 measurement log",
                path.display()
            ),
            LogCommandError::Parse { path, error } => write!(f, "{}: {error}", path.display()),
            LogCommandError::Tpm(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for LogCommandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogCommandError::Read { error, .. } => Some(error),
            LogCommandError::TooLarge { .. } => None,
            LogCommandError::Parse { error, .. } => Some(error),
            LogCommandError::Tpm(e) => Some(e),
        }
    }
}

/// `veriroot log`: parse and replay a measurement log; compare with the
/// live PCRs where a TPM is present.
pub fn run(
    path: Option<PathBuf>,
    json: bool,
    use_tpm: bool,
    tpm_devices: &[PathBuf],
) -> Result<ExitCode, LogCommandError> {
    let path = path.unwrap_or_else(eventlog::log_path);
    let bytes = read_capped(&path, MAX_LOG_SIZE)?;
    let records = eventlog::parse(&bytes).map_err(|error| LogCommandError::Parse {
        path: path.clone(),
        error,
    })?;
    let values = eventlog::replay(&records);
    let by_bank = transpose(&values);
    if marked_incomplete(&path) {
        eprintln!(
            "veriroot: {} is marked incomplete (sticky bit): a writer died or could not write, \
             so it may not account for every extension of the TPM's PCRs",
            path.display()
        );
    }
    if json {
        println!("{}", events::pcrs_json(&by_bank));
        return Ok(ExitCode::SUCCESS);
    }
    for (i, r) in records.iter().enumerate() {
        let what = match &r.content {
            Content::Systemd(c) => c.string.clone().unwrap_or_default(),
            Content::Other { content_type } => {
                format!("({} content)", content_type.as_deref().unwrap_or("no"))
            }
        };
        println!("#{:<3} PCR {:>2} {}", i + 1, r.pcr, what);
    }
    super::print_pcr_values(&by_bank);
    if !use_tpm {
        return Ok(ExitCode::SUCCESS);
    }
    let Some(mut tpm) = Tpm::open(tpm_devices).map_err(LogCommandError::Tpm)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut ok = true;
    for (bank, pcrs) in &by_bank {
        for (&pcr, value) in pcrs {
            let live = tpm.read(pcr, *bank).map_err(LogCommandError::Tpm)?;
            if &live == value {
                println!("PCR {pcr:>2} {:<6} matches the TPM", bank.name());
            } else {
                ok = false;
                println!(
                    "PCR {pcr:>2} {:<6} DOES NOT match the TPM ({}): {}",
                    bank.name(),
                    crate::hex::encode(&live),
                    first_mismatch(&records, pcr, *bank, &live)
                );
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The whole file, if it has at most `limit` bytes (reads at most one
/// byte more: works for pipes and character devices too).
pub(crate) fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, LogCommandError> {
    let read_error = |error| LogCommandError::Read {
        path: path.to_owned(),
        error,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    // As systemd-pcrlock reads it: under LOCK_SH, so a writer's record is
    // never read half-written; waited for at most LOCK_WAIT.
    let start = std::time::Instant::now();
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared) {
            Ok(()) => break,
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::WOULDBLOCK) if start.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => return Err(read_error(e.into())),
        }
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > limit {
        return Err(LogCommandError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

/// Which record the TPM's value stops reflecting.
fn first_mismatch(records: &[eventlog::Record], pcr: u32, bank: HashAlg, live: &[u8]) -> String {
    let mut value = vec![0u8; bank.digest_len()];
    if value == live {
        return "the TPM reflects none of this PCR's records".into();
    }
    for (i, r) in records.iter().enumerate().filter(|(_, r)| r.pcr == pcr) {
        if let Some((_, d)) = r.digests.iter().find(|(a, _)| *a == bank) {
            value = crate::measure::bank::extend(bank, &value, d);
        }
        if value == live {
            return format!("records after #{} are not in the TPM", i + 1);
        }
    }
    "no prefix of the log matches: the PCR was extended by something not in this log".into()
}

/// PCR → bank → value, as `eventlog::replay` gives it, to bank → PCR → value.
pub(crate) fn transpose(
    values: &BTreeMap<u32, BTreeMap<HashAlg, Vec<u8>>>,
) -> BTreeMap<HashAlg, BTreeMap<u32, Vec<u8>>> {
    let mut out: BTreeMap<HashAlg, BTreeMap<u32, Vec<u8>>> = BTreeMap::new();
    for (&pcr, banks) in values {
        for (&bank, v) in banks {
            out.entry(bank).or_default().insert(pcr, v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::eventlog::Record;
    use crate::measure::events::Event;

    fn record(pcr: u32, s: &str) -> Record {
        Record::measure_string(pcr, &[HashAlg::Sha256], s, None)
    }

    #[test]
    fn the_log_is_read_under_a_shared_lock_and_its_mark_seen() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, b"").unwrap();
        // Another reader does not stop us; a writer holding LOCK_EX would
        // (bounded: LOCK_WAIT), which tests/eventlog.rs shows for writers.
        let other = std::fs::File::open(&path).unwrap();
        rustix::fs::flock(&other, rustix::fs::FlockOperation::LockShared).unwrap();
        assert!(read_capped(&path, 10).unwrap().is_empty());
        assert!(!marked_incomplete(&path));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o1600)).unwrap();
        assert!(marked_incomplete(&path));
        drop(other);
        let writer = std::fs::File::open(&path).unwrap();
        rustix::fs::flock(&writer, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let start = std::time::Instant::now();
        let e = read_capped(&path, 10).unwrap_err();
        assert!(start.elapsed() >= LOCK_WAIT - std::time::Duration::from_millis(100));
        assert!(matches!(e, LogCommandError::Read { .. }), "{e}");
    }

    #[test]
    fn a_log_larger_than_the_limit_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, vec![b' '; 1001]).unwrap();
        let e = read_capped(&path, 1000).unwrap_err();
        assert!(
            matches!(e, LogCommandError::TooLarge { limit: 1000, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("larger than 1000 bytes"), "{e}");
        assert_eq!(read_capped(&path, 1001).unwrap().len(), 1001);
        // Through `run`, with the real limit: a file one byte over it.
        let big = std::fs::File::create(&path).unwrap();
        big.set_len(MAX_LOG_SIZE + 1).unwrap();
        let e = run(Some(path.clone()), true, false, &[]).unwrap_err();
        assert!(
            matches!(e, LogCommandError::TooLarge { limit, .. } if limit == MAX_LOG_SIZE),
            "{e:?}"
        );
        assert!(matches!(
            read_capped(&dir.path().join("absent"), 10),
            Err(LogCommandError::Read { .. })
        ));
    }

    #[test]
    fn first_mismatch_names_the_first_record_not_in_the_tpm() {
        let records = [
            record(15, "a"),
            record(14, "x"),
            record(15, "b"),
            record(15, "c"),
        ];
        let only_a = events::predict(
            &[Event {
                pcr: 15,
                string: "a".into(),
            }],
            &[HashAlg::Sha256],
        );
        let live = &only_a[&HashAlg::Sha256][&15];
        assert_eq!(
            first_mismatch(&records, 15, HashAlg::Sha256, live),
            "records after #1 are not in the TPM"
        );
        let zero = vec![0u8; 32];
        assert_eq!(
            first_mismatch(&records, 15, HashAlg::Sha256, &zero),
            "the TPM reflects none of this PCR's records"
        );
        let other = vec![1u8; 32];
        assert!(first_mismatch(&records, 15, HashAlg::Sha256, &other)
            .starts_with("no prefix of the log matches"));
    }
}
