//! systemd's userspace TPM measurement log, read and written exactly as
//! systemd 257 does.
//!
//! # The file
//!
//! `/run/log/systemd/tpm2-measure.log` (or `$SYSTEMD_MEASURE_LOG_USERSPACE`),
//! RFC 7464 JSON text sequences: every record is `0x1E`, one compact JSON
//! object, `\n`. systemd writes a record for each PCR extension it makes
//! (`tpm2_userspace_log()` in `src/shared/tpm2-util.c`):
//!
//! ```text
//! \x1e{"pcr":11,"digests":[{"hashAlg":"sha1","digest":"b1b0…"},…],"content_type":"systemd","content":{"string":"enter-initrd","bootId":"6e4f6d9d94b64fdebcb5faa7da9a8038","timestamp":1982775332,"eventType":"phase"}}\n
//! ```
//!
//! * `digests`: one entry per bank extended, in the order extended; `digest`
//!   is lowercase hex of the value passed to `TPM2_PCR_Extend` (for a plain
//!   measurement, the bank's hash of the measured bytes).
//! * `content.string`: written only when there is a description. For
//!   `systemd-pcrextend` it is the C-escaped measured word (so it equals the
//!   measured bytes only when the word needs no escaping).
//! * `content.bootId`: always; the boot ID as 32 lowercase hex digits, no
//!   dashes (`SD_JSON_BUILD_ID128`).
//! * `content.timestamp`: always; `CLOCK_BOOTTIME` in microseconds.
//! * `content.eventType`: only when the caller passed one. systemd 257 knows
//!   `phase`, `filesystem`, `volume-key`, `machine-id` (the string table in
//!   `tpm2-util.c`); records made through the `io.systemd.PCRExtend` Varlink
//!   API have none.
//!
//! # What `systemd-pcrlock log` (257) does when it reads the file
//!
//! (`event_log_load_userspace()` and `event_log_record_parse_json()` in
//! `src/pcrlock/pcrlock.c`.) It takes `LOCK_SH`, splits on `0x1E` and parses
//! each record; any error fails the whole command: a JSON syntax error, an
//! empty record, a record that is not an object, `pcr` missing, not an
//! unsigned integer or ≥ 24, `digests` missing or not an array, an entry
//! without a string `hashAlg` or without `digest`, a digest that is not hex,
//! the same bank twice, a non-string `content_type`, and, for
//! `content_type` `"systemd"`, a missing or non-object `content` or a
//! non-string `string` or `eventType`.
//!
//! It is lenient elsewhere, and [`parse`] is deliberately stricter there (so
//! every record `parse` returns is one pcrlock accepts, not the reverse):
//!
//! | input | pcrlock 257 | [`parse`] |
//! |---|---|---|
//! | unknown `hashAlg` (not sha1/256/384/512, case-insensitive) | skips that digest | error |
//! | digest of the wrong length for its bank (≤ 64 bytes) | accepted | error |
//! | empty `digests` array | record kept, no banks | error |
//! | record containing a NUL byte | skipped, and (a systemd bug) so is every record after it; in the last record it loops forever | error |
//! | bytes before the first `0x1E` | prepended to the first record | error |
//! | no `0x1E` at all in a non-empty file | zero records, silently | error |
//! | `pcr` written as `11.0` or `1.1e1` | accepted | error |
//! | a key twice in an object | first one used | error |
//! | `bootId` / `timestamp` of another JSON type | ignored | error |
//!
//! Records are kept whatever their `content_type`, as pcrlock keeps them:
//! their digests count towards the PCR values. Only `"systemd"` content is
//! read ([`Content::Systemd`]); for any other type (or none) just the type is
//! kept ([`Content::Other`]) and the `content` object is dropped. Unknown
//! keys are ignored. Records for an NV index (`nv_index` instead of `pcr`,
//! written by systemd ≥ 258 for NvPCRs) are checked and then skipped: they
//! extend no PCR. (pcrlock 257 would refuse them; 258 reads them.)
//!
//! An unknown `eventType` is accepted by pcrlock 257 and the record is shown
//! (PCR, digests, description), exactly like a record without `eventType`:
//! the `event` and `F/U` columns stay empty and the digest is not checked
//! against `string` (no ✓/✗ in `match`). See [`VERIROOT_EVENT_TYPE`].
//!
//! # Writing
//!
//! [`LogWriter`] follows `tpm2_userspace_log_open()` / `tpm2_userspace_log()`:
//! lock the log *before* extending the PCR, mark it dirty with the sticky
//! bit for the extension and the write, clear the bit when the record is
//! safely on disk. A log found with the sticky bit already set was abandoned
//! mid-way by an earlier writer; systemd 257 then leaves it alone (no record,
//! bit stays set) and still extends the PCR, and so does `LogWriter`.

pub(crate) mod json;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{DirBuilder, File};
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::measure::bank::{self, HashAlg};
use json::Value;

/// Where systemd keeps the log (`tpm2_userspace_log_path()`).
pub const DEFAULT_LOG_PATH: &str = "/run/log/systemd/tpm2-measure.log";

/// The environment variable that overrides [`DEFAULT_LOG_PATH`], for
/// systemd's writers and for `systemd-pcrlock` alike.
pub const LOG_PATH_ENV: &str = "SYSTEMD_MEASURE_LOG_USERSPACE";

/// The `eventType` veriroot writes: `"filesystem"`.
///
/// systemd 257 knows only `phase`, `filesystem`, `volume-key` and
/// `machine-id` (`tpm2_userspace_event_type_table` in
/// `src/shared/tpm2-util.c`). For those, `systemd-pcrlock log` shows the type
/// in its `event` column, marks the record `U` (userspace) and checks the
/// digests against the hash of `string` (✓ in `match`). Any other string
/// is accepted too, but the record is then shown like one without a type:
/// no event, no `U`, no check. A composefs image digest names the root file
/// system, the same kind of thing `systemd-pcrextend --file-system=` measures
/// with this type, so veriroot uses it and keeps the check.
pub const VERIROOT_EVENT_TYPE: &str = "filesystem";

/// PCR indexes systemd accepts (`TPM2_PCRS_MAX`).
pub const PCR_COUNT: u32 = 24;

/// One measurement: a PCR extended with one digest per bank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// `pcr`: 0–23.
    pub pcr: u32,
    /// `digests`, in file order (systemd: the order the banks were extended).
    pub digests: Vec<(HashAlg, Vec<u8>)>,
    /// `content_type` and `content`.
    pub content: Content,
}

/// A record's `content_type` and, for systemd's own type, its `content`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// `"content_type":"systemd"` and its `content` object.
    Systemd(SystemdContent),
    /// Any other `content_type` (`None`: the key is absent). pcrlock uses
    /// only `pcr` and `digests` of such a record; its `content` is not kept.
    Other { content_type: Option<String> },
}

/// The `content` object of a `"systemd"` record; members in the order
/// systemd writes them. Each is written only when `Some`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemdContent {
    /// `string`: what was measured, for people (pcrlock's description).
    pub string: Option<String>,
    /// `bootId`: 32 lowercase hex digits (see [`boot_id`]).
    pub boot_id: Option<String>,
    /// `timestamp`: `CLOCK_BOOTTIME` in microseconds (see [`boottime_usec`]).
    pub timestamp_usec: Option<u64>,
    /// `eventType` (see [`VERIROOT_EVENT_TYPE`]).
    pub event_type: Option<String>,
}

impl Record {
    /// The record systemd writes when it measures `string` itself into
    /// `pcr`: each bank's digest of the string's bytes, `string` as the
    /// description, this boot's ID and the current `CLOCK_BOOTTIME`.
    ///
    /// pcrlock's ✓ check hashes `string`, so measure exactly these bytes.
    pub fn measure_string(
        pcr: u32,
        banks: &[HashAlg],
        string: &str,
        event_type: Option<&str>,
    ) -> Record {
        Record {
            pcr,
            digests: banks
                .iter()
                .map(|&alg| (alg, alg.digest(string.as_bytes())))
                .collect(),
            content: Content::Systemd(SystemdContent {
                string: Some(string.to_owned()),
                boot_id: boot_id(),
                timestamp_usec: boottime_usec(),
                event_type: event_type.map(str::to_owned),
            }),
        }
    }

    /// Whether this record may be written: everything [`parse`] checks,
    /// plus no NUL in any string (systemd's strings are C strings).
    /// [`LogWriter::append`] checks it too, but then the PCR has already
    /// been extended: check before extending.
    pub fn validate(&self) -> Result<(), ErrorKind> {
        if self.pcr >= PCR_COUNT {
            return Err(ErrorKind::PcrOutOfRange(self.pcr.into()));
        }
        if self.digests.is_empty() {
            return Err(ErrorKind::NoDigests);
        }
        for (i, (alg, d)) in self.digests.iter().enumerate() {
            if d.len() != alg.digest_len() {
                return Err(ErrorKind::DigestLength {
                    alg: *alg,
                    expected: alg.digest_len(),
                    found: d.len(),
                });
            }
            if self.digests[..i].iter().any(|(a, _)| a == alg) {
                return Err(ErrorKind::DuplicateBank(*alg));
            }
        }
        let nul = |field: &'static str, s: &Option<String>| match s {
            Some(s) if s.contains('\0') => Err(ErrorKind::NulInString(field)),
            _ => Ok(()),
        };
        match &self.content {
            Content::Systemd(c) => {
                nul("content.string", &c.string)?;
                nul("content.bootId", &c.boot_id)?;
                nul("content.eventType", &c.event_type)?;
            }
            Content::Other { content_type } => {
                nul("content_type", content_type)?;
                if content_type.as_deref() == Some("systemd") {
                    // Would be written without `content`, which pcrlock refuses.
                    return Err(ErrorKind::MissingField("content".into()));
                }
            }
        }
        Ok(())
    }
}

/// What is wrong with a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file does not start with the `0x1E` record separator.
    MissingSeparator,
    /// Nothing (or only whitespace) between two separators, or after the last.
    EmptyRecord,
    /// A NUL byte in the record.
    NulByte,
    /// Not UTF-8.
    InvalidUtf8,
    /// Not JSON.
    Syntax(String),
    /// A field of the wrong JSON type (`field` is a path: `digests[1].hashAlg`).
    WrongType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    MissingField(String),
    PcrOutOfRange(u64),
    /// Both `pcr` and `nv_index`.
    PcrAndNvIndex,
    /// A `hashAlg` other than sha1, sha256, sha384, sha512.
    UnknownHashAlg(String),
    /// A `digest` that is not an even number of hex digits.
    BadHex(HashAlg),
    DigestLength {
        alg: HashAlg,
        expected: usize,
        found: usize,
    },
    DuplicateBank(HashAlg),
    NoDigests,
    /// A NUL character in a string field (only from [`Record::validate`]).
    NulInString(&'static str),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::MissingSeparator => {
                f.write_str("does not start with the 0x1E record separator (RFC 7464)")
            }
            ErrorKind::EmptyRecord => f.write_str("empty record"),
            ErrorKind::NulByte => f.write_str("NUL byte in record"),
            ErrorKind::InvalidUtf8 => f.write_str("not UTF-8"),
            ErrorKind::Syntax(s) => write!(f, "bad JSON: {s}"),
            ErrorKind::WrongType {
                field,
                expected,
                found,
            } => write!(f, "'{field}' is {found}, expected {expected}"),
            ErrorKind::MissingField(field) => write!(f, "'{field}' missing"),
            ErrorKind::PcrOutOfRange(n) => {
                write!(f, "PCR {n} out of range (0-{})", PCR_COUNT - 1)
            }
            ErrorKind::PcrAndNvIndex => f.write_str("both 'pcr' and 'nv_index'"),
            ErrorKind::UnknownHashAlg(a) => write!(f, "unknown hashAlg \"{a}\""),
            ErrorKind::BadHex(a) => write!(f, "{a} digest is not hex"),
            ErrorKind::DigestLength {
                alg,
                expected,
                found,
            } => write!(f, "{alg} digest is {found} bytes, expected {expected}"),
            ErrorKind::DuplicateBank(a) => write!(f, "{a} digest given twice"),
            ErrorKind::NoDigests => f.write_str("no digests"),
            ErrorKind::NulInString(field) => write!(f, "NUL character in '{field}'"),
        }
    }
}

impl std::error::Error for ErrorKind {}

/// A record [`parse`] refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Which record (0-based, counting every record in the file).
    pub index: usize,
    /// Byte offset in the input: of the offending byte for syntax errors,
    /// otherwise of the record's `0x1E`.
    pub offset: usize,
    pub kind: ErrorKind,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "measurement log record {} (byte {}): {}",
            self.index, self.offset, self.kind
        )
    }
}

impl std::error::Error for ParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// One record as written to the log: `0x1E`, the JSON systemd's
/// `sd_json_variant_format(…, SD_JSON_FORMAT_SEQ)` produces (compact, keys in
/// systemd's order: `pcr`, `digests` (`hashAlg`, `digest`), `content_type`,
/// `content` (`string`, `bootId`, `timestamp`, `eventType`)), `\n`.
///
/// Byte for byte what systemd writes, except that DEL (0x7F) in a string is
/// escaped as `\u007f` (systemd writes it raw and then cannot parse it).
/// Does not check the record: see [`Record::validate`].
pub fn serialize(record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.push(0x1e);
    out.extend_from_slice(format!("{{\"pcr\":{},\"digests\":[", record.pcr).as_bytes());
    for (i, (alg, digest)) in record.digests.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"hashAlg\":");
        json::write_string(&mut out, alg.name());
        out.extend_from_slice(b",\"digest\":\"");
        out.extend_from_slice(crate::hex::encode(digest).as_bytes());
        out.extend_from_slice(b"\"}");
    }
    out.push(b']');
    match &record.content {
        Content::Systemd(c) => {
            out.extend_from_slice(b",\"content_type\":\"systemd\",\"content\":{");
            let mut first = true;
            let mut key = |out: &mut Vec<u8>, k: &str| {
                if !first {
                    out.push(b',');
                }
                first = false;
                json::write_string(out, k);
                out.push(b':');
            };
            if let Some(s) = &c.string {
                key(&mut out, "string");
                json::write_string(&mut out, s);
            }
            if let Some(s) = &c.boot_id {
                key(&mut out, "bootId");
                json::write_string(&mut out, s);
            }
            if let Some(t) = c.timestamp_usec {
                key(&mut out, "timestamp");
                out.extend_from_slice(t.to_string().as_bytes());
            }
            if let Some(s) = &c.event_type {
                key(&mut out, "eventType");
                json::write_string(&mut out, s);
            }
            out.push(b'}');
        }
        Content::Other {
            content_type: Some(t),
        } => {
            out.extend_from_slice(b",\"content_type\":");
            json::write_string(&mut out, t);
        }
        Content::Other { content_type: None } => {}
    }
    out.extend_from_slice(b"}\n");
    out
}

/// Parse a whole log (see the module documentation for what is accepted).
/// An empty input is an empty log.
pub fn parse(bytes: &[u8]) -> Result<Vec<Record>, ParseError> {
    let mut records = Vec::new();
    if bytes.is_empty() {
        return Ok(records);
    }
    if bytes[0] != 0x1e {
        return Err(ParseError {
            index: 0,
            offset: 0,
            kind: ErrorKind::MissingSeparator,
        });
    }
    let mut start = 0; // offset of this record's 0x1E
    for (index, chunk) in bytes[1..].split(|&b| b == 0x1e).enumerate() {
        let body = start + 1;
        let err = |offset: usize, kind: ErrorKind| ParseError {
            index,
            offset,
            kind,
        };
        if let Some(p) = chunk.iter().position(|&b| b == 0) {
            return Err(err(body + p, ErrorKind::NulByte));
        }
        let text = std::str::from_utf8(chunk)
            .map_err(|e| err(body + e.valid_up_to(), ErrorKind::InvalidUtf8))?;
        if text.trim_matches([' ', '\t', '\n', '\r']).is_empty() {
            return Err(err(start, ErrorKind::EmptyRecord));
        }
        let value =
            json::parse(text).map_err(|e| err(body + e.offset, ErrorKind::Syntax(e.what)))?;
        if let Some(record) = record_from_json(&value).map_err(|kind| err(start, kind))? {
            records.push(record);
        }
        start = body + chunk.len();
    }
    Ok(records)
}

fn wrong_type(field: impl Into<String>, expected: &'static str, found: &Value) -> ErrorKind {
    ErrorKind::WrongType {
        field: field.into(),
        expected,
        found: found.type_name(),
    }
}

fn get_string(obj: &Value, key: &str, path: &str) -> Result<Option<String>, ErrorKind> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(wrong_type(path, "a string", v)),
    }
}

/// One record's JSON, checked; `None` for an NV index record.
fn record_from_json(v: &Value) -> Result<Option<Record>, ErrorKind> {
    if !matches!(v, Value::Object(_)) {
        return Err(wrong_type("record", "an object", v));
    }
    let pcr = match (v.get("pcr"), v.get("nv_index")) {
        (Some(_), Some(_)) => return Err(ErrorKind::PcrAndNvIndex),
        (Some(p), None) => {
            let n = p
                .as_u64()
                .ok_or_else(|| wrong_type("pcr", "an unsigned integer", p))?;
            if n >= u64::from(PCR_COUNT) {
                return Err(ErrorKind::PcrOutOfRange(n));
            }
            Some(n as u32)
        }
        (None, Some(n)) => {
            // systemd ≥ 258: `nv_index` < UINT32_MAX.
            match n.as_u64() {
                Some(i) if i < u64::from(u32::MAX) => None,
                _ => return Err(wrong_type("nv_index", "an unsigned 32-bit integer", n)),
            }
        }
        (None, None) => return Err(ErrorKind::MissingField("pcr".into())),
    };

    let digests_v = v
        .get("digests")
        .ok_or_else(|| ErrorKind::MissingField("digests".into()))?;
    let Value::Array(items) = digests_v else {
        return Err(wrong_type("digests", "an array", digests_v));
    };
    let mut digests: Vec<(HashAlg, Vec<u8>)> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = |k: &str| format!("digests[{i}].{k}");
        let a = item
            .get("hashAlg")
            .ok_or_else(|| ErrorKind::MissingField(field("hashAlg")))?;
        let name = a
            .as_str()
            .ok_or_else(|| wrong_type(field("hashAlg"), "a string", a))?;
        // systemd compares case-insensitively (strcaseeq in tpm2_hash_alg_from_string).
        let alg = HashAlg::from_name(&name.to_ascii_lowercase())
            .ok_or_else(|| ErrorKind::UnknownHashAlg(name.to_owned()))?;
        let d = item
            .get("digest")
            .ok_or_else(|| ErrorKind::MissingField(field("digest")))?;
        let hex = d
            .as_str()
            .ok_or_else(|| wrong_type(field("digest"), "a string", d))?;
        let bytes = crate::hex::decode(hex).ok_or(ErrorKind::BadHex(alg))?;
        if bytes.len() != alg.digest_len() {
            return Err(ErrorKind::DigestLength {
                alg,
                expected: alg.digest_len(),
                found: bytes.len(),
            });
        }
        if digests.iter().any(|(a, _)| *a == alg) {
            return Err(ErrorKind::DuplicateBank(alg));
        }
        digests.push((alg, bytes));
    }
    if digests.is_empty() {
        return Err(ErrorKind::NoDigests);
    }

    let content_type = get_string(v, "content_type", "content_type")?;
    let content = if content_type.as_deref() == Some("systemd") {
        let c = v
            .get("content")
            .ok_or_else(|| ErrorKind::MissingField("content".into()))?;
        if !matches!(c, Value::Object(_)) {
            return Err(wrong_type("content", "an object", c));
        }
        let timestamp_usec = match c.get("timestamp") {
            None => None,
            Some(t) => Some(
                t.as_u64()
                    .ok_or_else(|| wrong_type("content.timestamp", "an unsigned integer", t))?,
            ),
        };
        Content::Systemd(SystemdContent {
            string: get_string(c, "string", "content.string")?,
            boot_id: get_string(c, "bootId", "content.bootId")?,
            timestamp_usec,
            event_type: get_string(c, "eventType", "content.eventType")?,
        })
    } else {
        Content::Other { content_type }
    };

    Ok(pcr.map(|pcr| Record {
        pcr,
        digests,
        content,
    }))
}

/// The PCR values the records produce, per PCR and bank, each bank starting
/// from the TPM's reset value (all zero bytes; all `0xFF` for PCRs 17–22, as
/// pcrlock assumes) and extended with the records' digests in order.
///
/// Only this log: firmware and the boot loader extend some of the same PCRs
/// (11, for one, gets systemd-stub's measurements first), and those are in
/// the firmware's log. Like pcrlock, a bank that a record lacks is just not
/// extended by that record (systemd always writes every bank it extended).
pub fn replay(records: &[Record]) -> BTreeMap<u32, BTreeMap<HashAlg, Vec<u8>>> {
    let mut pcrs: BTreeMap<u32, BTreeMap<HashAlg, Vec<u8>>> = BTreeMap::new();
    for r in records {
        let banks = pcrs.entry(r.pcr).or_default();
        for (alg, digest) in &r.digests {
            let value = banks.entry(*alg).or_insert_with(|| {
                let fill = if (17..=22).contains(&r.pcr) { 0xff } else { 0 };
                vec![fill; alg.digest_len()]
            });
            *value = bank::extend(*alg, value, digest);
        }
    }
    pcrs
}

/// `$SYSTEMD_MEASURE_LOG_USERSPACE` if set (even if empty, as systemd),
/// otherwise [`DEFAULT_LOG_PATH`].
pub fn log_path() -> PathBuf {
    std::env::var_os(LOG_PATH_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LOG_PATH))
}

/// This boot's ID as systemd's `bootId` field has it: the UUID from
/// `/proc/sys/kernel/random/boot_id` as 32 lowercase hex digits without
/// dashes. `None` if /proc is not mounted or the file is malformed.
///
/// (systemd writes no record at all when it cannot read the boot ID, which
/// leaves its log marked incomplete; a veriroot record then simply has no
/// `bootId`, which pcrlock does not need.)
pub fn boot_id() -> Option<String> {
    boot_id_from(&std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?)
}

fn boot_id_from(uuid: &str) -> Option<String> {
    let uuid = uuid.trim_end_matches('\n');
    let b = uuid.as_bytes();
    let well_formed = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    well_formed.then(|| uuid.replace('-', "").to_ascii_lowercase())
}

/// `CLOCK_BOOTTIME` in microseconds, for `timestamp`, as systemd writes it.
pub fn boottime_usec() -> Option<u64> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    let secs = u64::try_from(t.tv_sec).ok()?;
    let usec = u64::try_from(t.tv_nsec).ok()? / 1000;
    secs.checked_mul(1_000_000)?.checked_add(usec)
}

/// What [`LogWriter::append`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// The record is in the log and on disk; the log is clean again.
    Written,
    /// The log had the sticky bit set when it was opened (an earlier writer
    /// died between marking and clearing it): as systemd 257, nothing was
    /// written and the log stays marked incomplete.
    SkippedIncomplete,
}

/// A failed step of writing the log, with the log's path.
#[derive(Debug)]
pub enum LogError {
    Open {
        path: PathBuf,
        errno: Errno,
    },
    Lock {
        path: PathBuf,
        errno: Errno,
    },
    Stat {
        path: PathBuf,
        errno: Errno,
    },
    /// Not a regular file (systemd: `stat_verify_regular()`).
    NotRegular {
        path: PathBuf,
    },
    Chmod {
        path: PathBuf,
        errno: Errno,
    },
    Write {
        path: PathBuf,
        errno: Errno,
    },
    Sync {
        path: PathBuf,
        errno: Errno,
    },
    /// [`Record::validate`] refused the record.
    InvalidRecord {
        path: PathBuf,
        kind: ErrorKind,
    },
}

impl LogError {
    pub fn path(&self) -> &Path {
        match self {
            LogError::Open { path, .. }
            | LogError::Lock { path, .. }
            | LogError::Stat { path, .. }
            | LogError::NotRegular { path }
            | LogError::Chmod { path, .. }
            | LogError::Write { path, .. }
            | LogError::Sync { path, .. }
            | LogError::InvalidRecord { path, .. } => path,
        }
    }

    /// The errno, for the steps that have one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            LogError::Open { errno, .. }
            | LogError::Lock { errno, .. }
            | LogError::Stat { errno, .. }
            | LogError::Chmod { errno, .. }
            | LogError::Write { errno, .. }
            | LogError::Sync { errno, .. } => Some(*errno),
            LogError::NotRegular { .. } | LogError::InvalidRecord { .. } => None,
        }
    }
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path().display();
        match self {
            LogError::Open { errno, .. } => write!(f, "cannot open measurement log {p}: {errno}"),
            LogError::Lock { errno, .. } => write!(f, "cannot lock measurement log {p}: {errno}"),
            LogError::Stat { errno, .. } => write!(f, "cannot stat measurement log {p}: {errno}"),
            LogError::NotRegular { .. } => write!(f, "measurement log {p} is not a regular file"),
            LogError::Chmod { errno, .. } => {
                write!(f, "cannot change the mode of measurement log {p}: {errno}")
            }
            LogError::Write { errno, .. } => {
                write!(f, "cannot write to measurement log {p}: {errno}")
            }
            LogError::Sync { errno, .. } => write!(f, "cannot sync measurement log {p}: {errno}"),
            LogError::InvalidRecord { kind, .. } => {
                write!(f, "refusing to write an invalid record to {p}: {kind}")
            }
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Open { errno, .. }
            | LogError::Lock { errno, .. }
            | LogError::Stat { errno, .. }
            | LogError::Chmod { errno, .. }
            | LogError::Write { errno, .. }
            | LogError::Sync { errno, .. } => Some(errno),
            LogError::InvalidRecord { kind, .. } => Some(kind),
            LogError::NotRegular { .. } => None,
        }
    }
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_io_error(e).unwrap_or(Errno::IO)
}

const MODE_LOG: u32 = 0o600;
/// How long to wait for another writer's lock (systemd holds it for one
/// record: milliseconds).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
const S_ISVTX: u32 = 0o1000;

/// The log, opened and exclusively locked, ready for one record.
///
/// ```no_run
/// # use veriroot::measure::eventlog::*;
/// # use veriroot::measure::HashAlg;
/// let record = Record::measure_string(15, &[HashAlg::Sha256], "composefs:…", Some(VERIROOT_EVENT_TYPE));
/// record.validate()?;
/// let pending = LogWriter::open_locked(log_path())?; // locks, marks the log dirty
/// // … extend the PCR with record.digests …
/// pending.append(&record)?; // writes, syncs, marks clean, unlocks
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Dropping it without [`append`](LogWriter::append) releases the lock and
/// leaves the log marked incomplete (the sticky bit set), which is right when
/// the PCR extension failed or its outcome is unknown, and what systemd does
/// then. Open it only right before extending. systemd goes on to extend the
/// PCR when the log cannot be opened; a log error never stops a measurement.
#[derive(Debug)]
pub struct LogWriter {
    file: File,
    path: PathBuf,
    incomplete: bool,
}

impl LogWriter {
    /// `tpm2_userspace_log_open()`: create the parent directories (mode
    /// 0755; failures ignored, the open reports them), open the file with
    /// `O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC|O_NOCTTY|O_NOFOLLOW`, mode 0600,
    /// take `flock(LOCK_EX)` (blocking; readers take `LOCK_SH`), require a
    /// regular file, and set the sticky bit (mode `01600`) to mark the log
    /// dirty — unless it is already set: then the log is left as it is and
    /// [`append`](LogWriter::append) will write nothing.
    ///
    /// (systemd opens without `O_APPEND` and seeks to the end before its
    /// write; under the lock that is the same.)
    pub fn open_locked(path: impl AsRef<Path>) -> Result<LogWriter, LogError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = DirBuilder::new().recursive(true).mode(0o755).create(parent);
        }
        // O_NONBLOCK: a FIFO at the path fails (ENXIO) or is refused below,
        // instead of blocking the boot; O_NOFOLLOW: a symlink is refused.
        let fd = rustix::fs::open(
            &path,
            OFlags::WRONLY
                | OFlags::CREATE
                | OFlags::APPEND
                | OFlags::CLOEXEC
                | OFlags::NOCTTY
                | OFlags::NOFOLLOW
                | OFlags::NONBLOCK,
            Mode::from_raw_mode(MODE_LOG),
        )
        .map_err(|errno| LogError::Open {
            path: path.clone(),
            errno,
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|errno| LogError::Stat {
            path: path.clone(),
            errno,
        })?;
        if !FileType::from_raw_mode(st.st_mode).is_file() {
            return Err(LogError::NotRegular { path });
        }
        // Bounded: a writer that holds the lock for ever must not stall the boot.
        let start = std::time::Instant::now();
        loop {
            match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(Errno::INTR) => continue,
                Err(Errno::WOULDBLOCK) if start.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(errno) => return Err(LogError::Lock { path, errno }),
            }
        }
        // Again, under the lock: the sticky bit is the last writer's word.
        let st = rustix::fs::fstat(&fd).map_err(|errno| LogError::Stat {
            path: path.clone(),
            errno,
        })?;
        let incomplete = st.st_mode & S_ISVTX != 0;
        if !incomplete {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(MODE_LOG | S_ISVTX)).map_err(|errno| {
                LogError::Chmod {
                    path: path.clone(),
                    errno,
                }
            })?;
        }
        Ok(LogWriter {
            file: File::from(fd),
            path,
            incomplete,
        })
    }

    /// The sticky bit was already set when the log was opened.
    pub fn is_incomplete(&self) -> bool {
        self.incomplete
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `tpm2_userspace_log()`: append the record, `fsync`, clear the sticky
    /// bit (mode 0600), `fsync` the file and its directory; then unlock.
    /// Nothing is written to a log found incomplete. A failure leaves the
    /// sticky bit set.
    pub fn append(self, record: &Record) -> Result<Appended, LogError> {
        if self.incomplete {
            return Ok(Appended::SkippedIncomplete);
        }
        let path = &self.path;
        record.validate().map_err(|kind| LogError::InvalidRecord {
            path: path.clone(),
            kind,
        })?;
        (&self.file)
            .write_all(&serialize(record))
            .map_err(|e| LogError::Write {
                path: path.clone(),
                errno: io_errno(&e),
            })?;
        let sync = |e: std::io::Error| LogError::Sync {
            path: path.clone(),
            errno: io_errno(&e),
        };
        self.file.sync_all().map_err(sync)?;
        rustix::fs::fchmod(&self.file, Mode::from_raw_mode(MODE_LOG)).map_err(|errno| {
            LogError::Chmod {
                path: path.clone(),
                errno,
            }
        })?;
        // fsync_full(): the file, then its directory.
        self.file.sync_all().map_err(sync)?;
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let dir = rustix::fs::open(
                dir,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|errno| LogError::Sync {
                path: path.clone(),
                errno,
            })?;
            rustix::fs::fsync(&dir).map_err(|errno| LogError::Sync {
                path: path.clone(),
                errno,
            })?;
        }
        Ok(Appended::Written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records written by systemd 257.13 itself (Debian trixie's
    /// `systemd-pcrextend`, against a software TPM), copied byte for byte
    /// from the log it wrote (`tests/fixtures/systemd-257-tpm2-measure.log`,
    /// records 0, 1 and 3; how it was made: `tests/fixtures/README.md`):
    /// `systemd-pcrextend enter-initrd` (PCR 11, four banks, eventType
    /// `phase`); `systemd-pcrextend --bank=sha256 --pcr=9` of a word with a
    /// quote, backslash, tab, non-ASCII and DEL (systemd C-escapes it into
    /// `string`, which the JSON escapes again); and `varlinkctl call …
    /// io.systemd.PCRExtend.Extend '{"pcr":12,"text":"no event type"}'`,
    /// which writes no `eventType`.
    const SYSTEMD_RECORDS: &str = concat!(
        "\u{1e}",
        r#"{"pcr":11,"digests":[{"hashAlg":"sha1","digest":"b1b01d5f73f321eb70e76f8a0e241ac0a3fa4a6e"},{"hashAlg":"sha256","digest":"51e6b92f405d1f98d96e3de343d61d420ad6923b25de21d766f9298192f14fed"},{"hashAlg":"sha384","digest":"687eef3a3a8c716439b5ed583657e8668401630c321f2f35d19b953ddf20b68a96474d0c2e5f0e1757bfa5ba70b9fc32"},{"hashAlg":"sha512","digest":"ab0ddfdabe43f1d06b3e58fbe17439a0f7f552e9e228d85665d485ececf7e733bae4cd7e0a17e5456e2ee7e412f5a0f37de05a782cce781e173ee26958de7f30"}],"content_type":"systemd","content":{"string":"enter-initrd","bootId":"6e4f6d9d94b64fdebcb5faa7da9a8038","timestamp":1982775332,"eventType":"phase"}}"#,
        "\n",
        "\u{1e}",
        r#"{"pcr":9,"digests":[{"hashAlg":"sha256","digest":"ff00352d88abce21b1f89e73f0d431dd7cf3ec2a442fe2cea91d83820273ffe1"}],"content_type":"systemd","content":{"string":"q\\\"b\\\\s\\tt \\303\\274\\303\\261\\177/","bootId":"6e4f6d9d94b64fdebcb5faa7da9a8038","timestamp":2113330515,"eventType":"phase"}}"#,
        "\n",
        "\u{1e}",
        r#"{"pcr":12,"digests":[{"hashAlg":"sha1","digest":"107468333d54ffe890621a31fc57c2d30d5df8a6"},{"hashAlg":"sha256","digest":"585591ddc062cb74f7a5b07a1cb4668fd41f791896cc0fcb9d7b11c99a7f5022"},{"hashAlg":"sha384","digest":"729f9554bd6bfb7b068c1165739bc281cbb611a1bf63d2c0da36b981edf25811548e364486334e3d00ce9ddf96004c6f"},{"hashAlg":"sha512","digest":"c524192f04956aa1fdca2ac17dfcb687c80ba1d69ce8b1ab0b9bdfc11273a7d5f0f09c2cf3848e4f82e4472bbcc91413a4fea384945da5a5c4d90ee082ab6ae2"}],"content_type":"systemd","content":{"string":"no event type","bootId":"6e4f6d9d94b64fdebcb5faa7da9a8038","timestamp":2113385927}}"#,
        "\n",
    );

    #[test]
    fn systemd_records_round_trip_byte_for_byte() {
        let records = parse(SYSTEMD_RECORDS.as_bytes()).unwrap();
        assert_eq!(records.len(), 3);
        let r = &records[0];
        assert_eq!(r.pcr, 11);
        assert_eq!(
            r.digests.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            HashAlg::ALL
        );
        for (alg, d) in &r.digests {
            assert_eq!(*d, alg.digest(b"enter-initrd"));
        }
        assert_eq!(
            r.content,
            Content::Systemd(SystemdContent {
                string: Some("enter-initrd".into()),
                boot_id: Some("6e4f6d9d94b64fdebcb5faa7da9a8038".into()),
                timestamp_usec: Some(1982775332),
                event_type: Some("phase".into()),
            })
        );
        let Content::Systemd(c) = &records[1].content else {
            panic!("not systemd content");
        };
        assert_eq!(
            c.string.as_deref(),
            Some(r#"q\"b\\s\tt \303\274\303\261\177/"#)
        );
        assert_eq!(records[1].digests.len(), 1);
        let Content::Systemd(c) = &records[2].content else {
            panic!("not systemd content");
        };
        assert_eq!(c.event_type, None);
        let again: Vec<u8> = records.iter().flat_map(serialize).collect();
        assert_eq!(String::from_utf8(again).unwrap(), SYSTEMD_RECORDS);
    }

    #[test]
    fn serialize_orders_and_omits_like_systemd() {
        let r = Record {
            pcr: 9,
            digests: vec![(HashAlg::Sha1, vec![0xab; 20])],
            content: Content::Systemd(SystemdContent {
                string: None,
                boot_id: Some("00112233445566778899aabbccddeeff".into()),
                timestamp_usec: Some(0),
                event_type: None,
            }),
        };
        let expected = format!(
            "\x1e{{\"pcr\":9,\"digests\":[{{\"hashAlg\":\"sha1\",\"digest\":\"{}\"}}],\"content_type\":\"systemd\",\"content\":{{\"bootId\":\"00112233445566778899aabbccddeeff\",\"timestamp\":0}}}}\n",
            "ab".repeat(20)
        );
        assert_eq!(String::from_utf8(serialize(&r)).unwrap(), expected);
        assert_eq!(parse(expected.as_bytes()).unwrap(), vec![r]);

        let other = Record {
            pcr: 0,
            digests: vec![(HashAlg::Sha256, vec![0; 32])],
            content: Content::Other {
                content_type: Some("pcclient_std".into()),
            },
        };
        let bytes = serialize(&other);
        assert!(bytes.ends_with(b"],\"content_type\":\"pcclient_std\"}\n"));
        assert_eq!(parse(&bytes).unwrap(), vec![other]);
    }

    #[test]
    fn foreign_and_nv_index_records() {
        // Other content types are kept (their digests count), content dropped.
        let log = format!(
            "\x1e{{\"pcr\":4,\"digests\":[{{\"hashAlg\":\"SHA256\",\"digest\":\"{}\"}}],\"content_type\":\"ima\",\"content\":{{\"x\":1}}}}\n\
             \x1e{{\"pcr\":5,\"digests\":[{{\"hashAlg\":\"sha1\",\"digest\":\"{}\"}}]}}\n\
             \x1e{{\"nv_index\":25165824,\"digests\":[{{\"hashAlg\":\"sha256\",\"digest\":\"{}\"}}],\"content_type\":\"systemd\",\"content\":{{\"nvIndexName\":\"hardware\"}}}}\n",
            "AB".repeat(32),
            "00".repeat(20),
            "11".repeat(32)
        );
        let records = parse(log.as_bytes()).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].digests, vec![(HashAlg::Sha256, vec![0xab; 32])]);
        assert_eq!(
            records[0].content,
            Content::Other {
                content_type: Some("ima".into())
            }
        );
        assert_eq!(records[1].content, Content::Other { content_type: None });
    }

    #[test]
    fn errors_name_record_and_offset() {
        let good = SYSTEMD_RECORDS.as_bytes();
        let first_len = good.iter().skip(1).position(|&b| b == 0x1e).unwrap() + 1;
        let mut log = good[..first_len].to_vec();
        let bad_at = log.len();
        log.extend_from_slice(b"\x1e{\"pcr\":24,\"digests\":[]}\n");
        let e = parse(&log).unwrap_err();
        assert_eq!((e.index, e.offset), (1, bad_at));
        assert_eq!(e.kind, ErrorKind::PcrOutOfRange(24));
        assert!(e.to_string().contains("record 1"), "{e}");

        let mut log = good[..first_len].to_vec();
        log.extend_from_slice(b"\x1e{\"pcr\":1,}\n");
        let e = parse(&log).unwrap_err();
        assert_eq!(e.index, 1);
        assert_eq!(e.offset, bad_at + 10);
        assert!(matches!(e.kind, ErrorKind::Syntax(_)));
    }

    #[test]
    fn field_errors() {
        let sha1 = "00".repeat(20);
        let case = |json: String| parse(format!("\x1e{json}\n").as_bytes()).unwrap_err().kind;
        assert_eq!(
            case("[]".into()),
            wrong_type("record", "an object", &Value::Array(vec![]))
        );
        assert_eq!(
            case(format!(
                "{{\"digests\":[{{\"hashAlg\":\"sha1\",\"digest\":\"{sha1}\"}}]}}"
            )),
            ErrorKind::MissingField("pcr".into())
        );
        assert!(matches!(
            case(format!(
                "{{\"pcr\":11.0,\"digests\":[{{\"hashAlg\":\"sha1\",\"digest\":\"{sha1}\"}}]}}"
            )),
            ErrorKind::WrongType { .. }
        ));
        assert_eq!(
            case("{\"pcr\":1,\"nv_index\":2,\"digests\":[]}".into()),
            ErrorKind::PcrAndNvIndex
        );
        assert_eq!(
            case("{\"pcr\":1}".into()),
            ErrorKind::MissingField("digests".into())
        );
        assert_eq!(
            case("{\"pcr\":1,\"digests\":[]}".into()),
            ErrorKind::NoDigests
        );
        assert_eq!(
            case("{\"pcr\":1,\"digests\":[{\"digest\":\"00\"}]}".into()),
            ErrorKind::MissingField("digests[0].hashAlg".into())
        );
        assert_eq!(
            case("{\"pcr\":1,\"digests\":[{\"hashAlg\":\"sha1\"}]}".into()),
            ErrorKind::MissingField("digests[0].digest".into())
        );
        assert_eq!(
            case("{\"pcr\":1,\"digests\":[{\"hashAlg\":\"sha1\",\"digest\":\"0g\"}]}".into()),
            ErrorKind::BadHex(HashAlg::Sha1)
        );
        assert_eq!(
            case(format!(
                "{{\"pcr\":1,\"digests\":[{{\"hashAlg\":\"sha1\",\"digest\":\"{sha1}\"}},{{\"hashAlg\":\"sha1\",\"digest\":\"{sha1}\"}}]}}"
            )),
            ErrorKind::DuplicateBank(HashAlg::Sha1)
        );
        assert_eq!(
            case(format!(
                "{{\"pcr\":1,\"digests\":[{{\"hashAlg\":\"sha1\",\"digest\":\"{sha1}\"}}],\"content_type\":\"systemd\"}}"
            )),
            ErrorKind::MissingField("content".into())
        );
        assert!(matches!(
            case(format!(
                "{{\"pcr\":1,\"digests\":[{{\"hashAlg\":\"sha1\",\"digest\":\"{sha1}\"}}],\"content_type\":\"systemd\",\"content\":{{\"eventType\":7}}}}"
            )),
            ErrorKind::WrongType { field, .. } if field == "content.eventType"
        ));
        assert!(matches!(
            case(format!(
                "{{\"pcr\":1,\"digests\":[{{\"hashAlg\":\"sha1\",\"digest\":\"{sha1}\"}}],\"content_type\":\"systemd\",\"content\":{{\"timestamp\":-1}}}}"
            )),
            ErrorKind::WrongType { field, .. } if field == "content.timestamp"
        ));
    }

    #[test]
    fn validate_refuses_what_parse_refuses() {
        let mut r = Record::measure_string(15, &[HashAlg::Sha256], "x", None);
        assert_eq!(r.validate(), Ok(()));
        r.pcr = 24;
        assert_eq!(r.validate(), Err(ErrorKind::PcrOutOfRange(24)));
        r.pcr = 15;
        r.digests.push((HashAlg::Sha256, vec![0; 32]));
        assert_eq!(r.validate(), Err(ErrorKind::DuplicateBank(HashAlg::Sha256)));
        r.digests = vec![(HashAlg::Sha384, vec![0; 32])];
        assert!(matches!(r.validate(), Err(ErrorKind::DigestLength { .. })));
        r.digests.clear();
        assert_eq!(r.validate(), Err(ErrorKind::NoDigests));
        let mut r = Record::measure_string(15, &[HashAlg::Sha1], "a\0b", None);
        assert_eq!(r.validate(), Err(ErrorKind::NulInString("content.string")));
        r.content = Content::Other {
            content_type: Some("systemd".into()),
        };
        assert!(r.validate().is_err());
    }

    #[test]
    fn replay_extends_in_order() {
        let a = Record::measure_string(15, &[HashAlg::Sha256, HashAlg::Sha1], "a", None);
        let b = Record::measure_string(15, &[HashAlg::Sha256], "b", None);
        let c = Record::measure_string(20, &[HashAlg::Sha1], "c", None);
        let pcrs = replay(&[a, b, c]);
        let da = HashAlg::Sha256.digest(b"a");
        let db = HashAlg::Sha256.digest(b"b");
        assert_eq!(
            pcrs[&15][&HashAlg::Sha256],
            bank::extend(
                HashAlg::Sha256,
                &bank::extend(HashAlg::Sha256, &[0; 32], &da),
                &db
            )
        );
        assert_eq!(
            pcrs[&15][&HashAlg::Sha1],
            bank::extend(HashAlg::Sha1, &[0; 20], &HashAlg::Sha1.digest(b"a"))
        );
        assert_eq!(
            pcrs[&20][&HashAlg::Sha1],
            bank::extend(HashAlg::Sha1, &[0xff; 20], &HashAlg::Sha1.digest(b"c"))
        );
        assert_eq!(pcrs.len(), 2);
    }
}
