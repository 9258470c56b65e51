//! systemd's userspace TPM measurement log: systemd's own records, the
//! writer protocol (lock, sticky bit, modes), and malformed input.

use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use rustix::fs::FlockOperation;
use rustix::io::Errno;
use veriroot::measure::eventlog::{
    boot_id, parse, replay, serialize, Appended, Content, ErrorKind, LogError, LogWriter, Record,
    SystemdContent, VERIROOT_EVENT_TYPE,
};
use veriroot::measure::HashAlg;

/// Written by systemd 257.13's `systemd-pcrextend` against a software TPM;
/// see `tests/fixtures/README.md`.
const SYSTEMD_LOG: &[u8] = include_bytes!("fixtures/systemd-257-tpm2-measure.log");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

fn log_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("run/log/systemd/tpm2-measure.log")
}

fn record(pcr: u32, string: &str) -> Record {
    Record::measure_string(pcr, &HashAlg::ALL, string, Some(VERIROOT_EVENT_TYPE))
}

#[test]
fn systemd_log_round_trips_and_replays_to_the_tpm_values() {
    let records = parse(SYSTEMD_LOG).unwrap();
    assert_eq!(records.len(), 5);
    assert_eq!(
        records.iter().map(|r| r.pcr).collect::<Vec<_>>(),
        [11, 9, 15, 12, 15]
    );
    let again: Vec<u8> = records.iter().flat_map(serialize).collect();
    assert_eq!(
        again, SYSTEMD_LOG,
        "re-serialized log differs from systemd's"
    );

    let event_types: Vec<Option<&str>> = records
        .iter()
        .map(|r| match &r.content {
            Content::Systemd(c) => c.event_type.as_deref(),
            Content::Other { .. } => panic!("not systemd content"),
        })
        .collect();
    assert_eq!(
        event_types,
        [
            Some("phase"),
            Some("phase"),
            Some("machine-id"),
            None,
            Some("filesystem")
        ]
    );

    // What the (software) TPM held afterwards, as systemd-pcrlock read it.
    let pcrs = replay(&records);
    let expect = [
        (
            9,
            HashAlg::Sha256,
            "2b6f4dce604ec70093c630b88043443d5161776cadcfad059af5133326dbec93",
        ),
        (
            11,
            HashAlg::Sha1,
            "af811c3fa62257b3fa8688cbc27b6288a83dec00",
        ),
        (
            11,
            HashAlg::Sha256,
            "d15b0e8e244e65c40f024e95773f2347ce4ef3ffe6b597c9a14b50bbab6df319",
        ),
        (
            12,
            HashAlg::Sha256,
            "742add3be43c4ed6288ec3fe51125ce27eceb424a12e57a4e34c482c86f7e213",
        ),
        (
            15,
            HashAlg::Sha256,
            "320fe6561cbf96a7a646945173b874571546728cfc9cfd4bc481c8294ad4d538",
        ),
        (
            15,
            HashAlg::Sha512,
            "a80cd10b8ef7ae7e6e6b3e26a985fc5754f09f479073c5372d8aec5e64e74c80\
             24f5ccc0511f3b21a957725b11d7182ae85b6042377e96a029d5eff6e68a425c",
        ),
    ];
    for (pcr, alg, value) in expect {
        assert_eq!(hex(&pcrs[&pcr][&alg]), value, "PCR {pcr} {alg}");
    }
    assert_eq!(pcrs[&9].len(), 1, "record 1 extended the sha256 bank only");
}

#[test]
fn writer_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_in(&dir);
    let first = record(15, "composefs:sha512:0123");
    let second = Record::measure_string(15, &[HashAlg::Sha256], "second \"one\"\n", None);

    let pending = LogWriter::open_locked(&path).unwrap();
    assert!(!pending.is_incomplete());
    assert_eq!(pending.path(), path);
    // Marked dirty while the PCR is being extended.
    assert_eq!(mode(&path), 0o1600);
    assert_eq!(pending.append(&first).unwrap(), Appended::Written);
    assert_eq!(mode(&path), 0o600);
    assert!(fs::metadata(&path).unwrap().is_file());

    // The directories systemd would create: 0755 (less the umask).
    let dir_mode = mode(path.parent().unwrap());
    assert_eq!(dir_mode & 0o700, 0o700);
    assert_eq!(dir_mode & !0o755, 0);

    let pending = LogWriter::open_locked(&path).unwrap();
    assert_eq!(pending.append(&second).unwrap(), Appended::Written);
    assert_eq!(mode(&path), 0o600);

    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes, [serialize(&first), serialize(&second)].concat());
    assert_eq!(parse(&bytes).unwrap(), vec![first.clone(), second]);
    assert_eq!(parse(&serialize(&first)).unwrap(), vec![first]);
}

#[test]
fn record_for_a_string_measures_its_bytes() {
    let r = record(15, "composefs:abc");
    assert_eq!(r.validate(), Ok(()));
    for (alg, d) in &r.digests {
        assert_eq!(*d, alg.digest(b"composefs:abc"));
    }
    let Content::Systemd(SystemdContent {
        string,
        boot_id: id,
        timestamp_usec,
        event_type,
    }) = &r.content
    else {
        panic!("not systemd content");
    };
    assert_eq!(string.as_deref(), Some("composefs:abc"));
    assert_eq!(event_type.as_deref(), Some("filesystem"));
    assert!(timestamp_usec.is_some());
    // systemd's bootId: 32 lowercase hex digits, no dashes.
    assert_eq!(*id, boot_id());
    let id = id.as_deref().expect("/proc/sys/kernel/random/boot_id");
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
}

#[test]
fn sticky_bit_already_set_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_in(&dir);
    LogWriter::open_locked(&path)
        .unwrap()
        .append(&record(15, "before"))
        .unwrap();
    let before = fs::read(&path).unwrap();

    // An earlier writer died between marking the log and clearing the mark.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o1600)).unwrap();
    let pending = LogWriter::open_locked(&path).unwrap();
    assert!(pending.is_incomplete());
    assert_eq!(
        pending.append(&record(15, "after")).unwrap(),
        Appended::SkippedIncomplete
    );
    assert_eq!(mode(&path), 0o1600, "the log stays marked incomplete");
    assert_eq!(fs::read(&path).unwrap(), before, "nothing appended");
}

#[test]
fn dropping_without_append_marks_the_log_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_in(&dir);
    drop(LogWriter::open_locked(&path).unwrap()); // e.g. the PCR extension failed
    assert_eq!(mode(&path), 0o1600);
    assert!(LogWriter::open_locked(&path).unwrap().is_incomplete());
}

#[test]
fn invalid_record_is_refused_and_the_log_stays_marked() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_in(&dir);
    let mut bad = record(15, "x");
    bad.digests[0].1.pop();
    let err = LogWriter::open_locked(&path)
        .unwrap()
        .append(&bad)
        .unwrap_err();
    assert!(matches!(
        &err,
        LogError::InvalidRecord {
            kind: ErrorKind::DigestLength { .. },
            ..
        }
    ));
    assert_eq!(err.path(), path);
    assert_eq!(fs::read(&path).unwrap(), b"");
    assert_eq!(mode(&path), 0o1600);
}

fn try_lock(path: &Path, op: FlockOperation) -> rustix::io::Result<File> {
    let f = File::open(path).unwrap();
    rustix::fs::flock(&f, op).map(|()| f)
}

#[test]
fn writer_holds_an_exclusive_lock_until_done() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_in(&dir);
    let pending = LogWriter::open_locked(&path).unwrap();
    // Another writer, and a reader like systemd-pcrlock (LOCK_SH), must wait.
    assert_eq!(
        try_lock(&path, FlockOperation::NonBlockingLockExclusive).unwrap_err(),
        Errno::WOULDBLOCK
    );
    assert_eq!(
        try_lock(&path, FlockOperation::NonBlockingLockShared).unwrap_err(),
        Errno::WOULDBLOCK
    );
    pending.append(&record(15, "one")).unwrap();
    let reader = try_lock(&path, FlockOperation::NonBlockingLockShared).unwrap();
    drop(reader);

    // Dropped without appending: unlocked too.
    drop(LogWriter::open_locked(&path).unwrap());
    try_lock(&path, FlockOperation::NonBlockingLockExclusive).unwrap();
}

#[test]
fn second_writer_waits_for_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_in(&dir);
    let first = record(15, "first");
    let second = record(15, "second");

    let pending = LogWriter::open_locked(&path).unwrap();
    let (started, wait_started) = mpsc::channel();
    let thread_path = path.clone();
    let thread_record = second.clone();
    let other = thread::spawn(move || {
        started.send(()).unwrap();
        // Blocks in flock(LOCK_EX) until `pending` is done.
        let w = LogWriter::open_locked(&thread_path).unwrap();
        w.append(&thread_record).unwrap()
    });
    wait_started.recv().unwrap();
    // Whenever the other thread reached open_locked, it cannot have written:
    // it holds no lock until this append has released ours.
    assert_eq!(pending.append(&first).unwrap(), Appended::Written);
    assert_eq!(other.join().unwrap(), Appended::Written);

    let records = parse(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(records, vec![first, second]);
}

#[test]
fn open_refuses_symlinks_and_non_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    fs::write(&target, b"").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = LogWriter::open_locked(&link).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::Open {
                errno: Errno::LOOP,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        mode(&target) & 0o1000,
        0,
        "the link's target was not touched"
    );

    let err = LogWriter::open_locked("/dev/null").unwrap_err();
    assert!(matches!(err, LogError::NotRegular { .. }), "{err}");
    assert!(err.to_string().contains("/dev/null"));

    let err = LogWriter::open_locked(dir.path()).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::ISDIR), "{err}");
}

#[test]
fn reader_and_writer_agree_with_a_log_opened_for_append_elsewhere() {
    // A log systemd started: our record goes after its records, untouched.
    let dir = tempfile::tempdir().unwrap();
    let path = log_in(&dir);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, SYSTEMD_LOG).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let ours = record(15, "composefs:0123");
    LogWriter::open_locked(&path)
        .unwrap()
        .append(&ours)
        .unwrap();
    assert_eq!(
        mode(&path),
        0o600,
        "systemd's fchmod() sets 0600 whatever it was"
    );
    let bytes = fs::read(&path).unwrap();
    assert_eq!(&bytes[..SYSTEMD_LOG.len()], SYSTEMD_LOG);
    let records = parse(&bytes).unwrap();
    assert_eq!(records.len(), 6);
    assert_eq!(records[5], ours);
}

#[test]
fn malformed_logs_are_refused() {
    let one = serialize(&record(15, "x"));

    // Missing 0x1E: JSON text without the RFC 7464 separator.
    let e = parse(&one[1..]).unwrap_err();
    assert_eq!(
        (e.index, e.offset, e.kind.clone()),
        (0, 0, ErrorKind::MissingSeparator)
    );

    // Bad JSON in the second record.
    let mut log = one.clone();
    log.extend_from_slice(b"\x1e{\"pcr\":15,\"digests\":[}\n");
    let e = parse(&log).unwrap_err();
    assert_eq!(e.index, 1);
    assert!(matches!(e.kind, ErrorKind::Syntax(_)), "{e}");
    assert_eq!(e.offset, one.len() + 1 + "{\"pcr\":15,\"digests\":[".len());

    // Empty records: "\x1e\x1e", and a trailing separator.
    assert_eq!(parse(b"\x1e\x1e").unwrap_err().kind, ErrorKind::EmptyRecord);
    let mut log = one.clone();
    log.push(0x1e);
    let e = parse(&log).unwrap_err();
    assert_eq!((e.index, e.kind), (1, ErrorKind::EmptyRecord));

    // NUL byte, not UTF-8.
    let mut log = one.clone();
    log.insert(5, 0);
    assert_eq!(parse(&log).unwrap_err().kind, ErrorKind::NulByte);
    let mut log = one.clone();
    log.insert(5, 0xff);
    assert_eq!(parse(&log).unwrap_err().kind, ErrorKind::InvalidUtf8);

    let sha256 = "00".repeat(32);
    let rec = |digests: String| format!("\x1e{{\"pcr\":15,\"digests\":[{digests}]}}\n");

    // Unknown hash name.
    let e = parse(
        rec(format!(
            "{{\"hashAlg\":\"sm3_256\",\"digest\":\"{sha256}\"}}"
        ))
        .as_bytes(),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnknownHashAlg("sm3_256".into()));
    assert!(e.to_string().contains("sm3_256"), "{e}");

    // Digest length wrong for its algorithm.
    let e = parse(
        rec(format!(
            "{{\"hashAlg\":\"sha384\",\"digest\":\"{sha256}\"}}"
        ))
        .as_bytes(),
    )
    .unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::DigestLength {
            alg: HashAlg::Sha384,
            expected: 48,
            found: 32
        }
    );
    assert!(
        e.to_string()
            .contains("sha384 digest is 32 bytes, expected 48"),
        "{e}"
    );

    // Odd number of hex digits.
    let e =
        parse(rec("{\"hashAlg\":\"sha256\",\"digest\":\"abc\"}".into()).as_bytes()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadHex(HashAlg::Sha256));

    // A duplicate key would be read differently by serde_json (last) and systemd (first).
    let e = parse(
        format!("\x1e{{\"pcr\":9,\"pcr\":15,\"digests\":[{{\"hashAlg\":\"sha256\",\"digest\":\"{sha256}\"}}]}}\n")
            .as_bytes(),
    )
    .unwrap_err();
    assert!(
        matches!(&e.kind, ErrorKind::Syntax(s) if s.contains("duplicate key")),
        "{e}"
    );

    // The empty log is fine.
    assert_eq!(parse(b"").unwrap(), vec![]);
}

#[test]
fn a_fifo_or_a_symlink_at_the_log_path_never_blocks_the_measurement() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_in(&dir);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    // No reader: opening for writing without O_NONBLOCK would hang here.
    let err = LogWriter::open_locked(&path).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::NXIO), "{err}");
    // With a reader it opens, and is refused as not a regular file.
    let _reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(&path)
        .unwrap();
    let err = LogWriter::open_locked(&path).unwrap_err();
    assert!(err.to_string().ends_with("is not a regular file"), "{err}");
    fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
    let err = LogWriter::open_locked(&path).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::LOOP), "{err}");
}

#[test]
fn a_lock_held_for_ever_is_given_up_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_in(&dir);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, b"").unwrap();
    let _held = try_lock(&path, FlockOperation::LockExclusive).unwrap();
    let start = std::time::Instant::now();
    let err = LogWriter::open_locked(&path).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::WOULDBLOCK), "{err}");
    // Bounded (5 s), and not given up on at once.
    let waited = start.elapsed();
    assert!(waited >= std::time::Duration::from_secs(4), "{waited:?}");
}
