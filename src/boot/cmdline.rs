//! The kernel command line: splitting, and the composefs image references
//! in the forms composefs-rs and bootc write.
//!
//! - `composefs=<hex>`: 64 hex digits is SHA-256, 128 is SHA-512.
//! - `composefs.digest=v1-sha256-12:<hex>` / `v2-sha512-12:<hex>`: EROFS
//!   format version, hash, log2 of the fs-verity block size (only 12).
//! - A `?` right after `=` asks for insecure mode (no fs-verity required).
//! - `veriroot.sysext=<hex>[,<hex>...]`, repeatable: system extensions to
//!   merge, in stacking order (first named = lowest), see docs/sysext.md.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::fsverity::digest::{Algorithm, Digest, HexError};
use crate::text::escape;

/// A parsed command line: `key[=value]` parameters in order, plus what
/// follows `--` (arguments for init, not for the kernel or for us).
#[derive(Debug, Default, Clone)]
pub struct Cmdline {
    params: Vec<(String, Option<String>)>,
    init_args: Vec<String>,
}

/// One image the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub digest: Digest,
    /// `?` given: the repository may lack fs-verity, overlay without `verity=require`.
    pub insecure: bool,
    /// The parameter as written, for messages.
    pub source: String,
}

#[derive(Debug, PartialEq, Eq)]
pub struct MalformedArg {
    pub arg: String,
    pub expected: &'static str,
    pub problem: KargProblem,
}

/// What is wrong with one kernel argument's value.
#[derive(Debug, PartialEq, Eq)]
pub enum KargProblem {
    NoValue,
    EmptyItem,
    Digest(HexError),
    /// A list item that is not a digest.
    Item {
        item: String,
        error: HexError,
    },
    NamedTwice(String),
    NoColon,
    Format(String),
    Version(String),
    Hash(String),
    BlockSize(String),
    /// The digest after `composefs.digest=…:`.
    DigestOf {
        algorithm: Algorithm,
        error: HexError,
    },
}

impl fmt::Display for KargProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KargProblem::NoValue => f.write_str("no value"),
            KargProblem::EmptyItem => f.write_str("an empty item in the list"),
            KargProblem::Digest(e) => e.fmt(f),
            KargProblem::Item { item, error } => write!(f, "'{}': {error}", escape(item)),
            KargProblem::NamedTwice(item) => write!(f, "'{}' is named twice", escape(item)),
            KargProblem::NoColon => f.write_str("no ':' between the format and the digest"),
            KargProblem::Format(spec) => {
                write!(
                    f,
                    "format '{spec}' is not <version>-<hash>-<log2 block size>"
                )
            }
            KargProblem::Version(v) => write!(f, "unknown EROFS format version '{v}'"),
            KargProblem::Hash(h) => write!(f, "unknown hash '{h}'"),
            KargProblem::BlockSize(b) => write!(
                f,
                "block size 2^{} is not supported (composefs uses 4 KiB blocks, 12)",
                escape(b)
            ),
            KargProblem::DigestOf { algorithm, error } => write!(f, "{algorithm} digest: {error}"),
        }
    }
}

impl fmt::Display for MalformedArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed kernel argument '{}': {}; expected {}",
            escape(&self.arg),
            self.problem,
            self.expected
        )
    }
}

impl std::error::Error for MalformedArg {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.problem)
    }
}

impl std::error::Error for KargProblem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KargProblem::Digest(error)
            | KargProblem::Item { error, .. }
            | KargProblem::DigestOf { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// The command line's file (`/proc/cmdline`) cannot be read.
#[derive(Debug)]
pub struct ReadError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read {}: {}", self.path.display(), self.error)
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

type DigestParser = fn(&str) -> Result<Digest, KargProblem>;

const COMPOSEFS: &str = "composefs";
const COMPOSEFS_DIGEST: &str = "composefs.digest";
const EXPECT_COMPOSEFS: &str = "composefs=[?]<64 or 128 hex digits>";
const EXPECT_DIGEST: &str = "composefs.digest=[?]v{1,2}-sha{256,512}-12:<hex>";
/// The system extensions to merge (ours; no peer defines one).
pub const SYSEXT: &str = "veriroot.sysext";
const EXPECT_SYSEXT: &str =
    "veriroot.sysext=<hex>[,<hex>...] (fs-verity digests, 64 or 128 hex digits, as the root's)";

impl Cmdline {
    /// Reads and parses the command line from `path` (`/proc/cmdline`).
    pub fn read(path: &Path) -> Result<Cmdline, ReadError> {
        let text = std::fs::read_to_string(path).map_err(|error| ReadError {
            path: path.to_owned(),
            error,
        })?;
        Ok(Cmdline::parse(text.trim_end()))
    }

    /// Splits like the kernel and systemd: on whitespace, double quotes
    /// group and are removed, there is no escaping.
    pub fn parse(text: &str) -> Self {
        let mut cmdline = Cmdline::default();
        let mut words = split(text).into_iter();
        for word in words.by_ref() {
            if word == "--" {
                break;
            }
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (word, None),
            };
            cmdline.params.push((key, value));
        }
        cmdline.init_args = words.collect();
        cmdline
    }

    /// The value of the last `key=value` (later ones override, as in the kernel).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, v)| k == key && v.is_some())
            .and_then(|(_, v)| v.as_deref())
    }

    /// The first image argument as the command line wrote it
    /// (`composefs=…` or `composefs.digest=…`), for records; "" if none.
    pub fn image_asked(&self) -> String {
        ["composefs", "composefs.digest"]
            .iter()
            .find_map(|k| self.value(k).map(|v| format!("{k}={v}")))
            .unwrap_or_default()
    }

    /// Whether a bare `key` (no `=`) is present.
    pub fn flag(&self, key: &str) -> bool {
        self.params.iter().any(|(k, v)| k == key && v.is_none())
    }

    /// Which of two bare flags came last (`ro` vs `rw`).
    pub fn last_flag<'a>(&self, a: &'a str, b: &'a str) -> Option<&'a str> {
        self.params.iter().rev().find_map(|(k, v)| match v {
            None if k == a => Some(a),
            None if k == b => Some(b),
            _ => None,
        })
    }

    pub fn init_args(&self) -> &[String] {
        &self.init_args
    }

    /// Every `composefs=` / `composefs.digest=` in command-line order.
    /// One malformed reference fails the whole list: guessing which image
    /// the signed command line meant is not ours to do.
    pub fn image_refs(&self) -> Result<Vec<ImageRef>, MalformedArg> {
        let mut refs = Vec::new();
        for (key, value) in &self.params {
            let (expected, parse): (_, DigestParser) = match key.as_str() {
                COMPOSEFS => (EXPECT_COMPOSEFS, parse_composefs),
                COMPOSEFS_DIGEST => (EXPECT_DIGEST, parse_composefs_digest),
                _ => continue,
            };
            let source = match value {
                Some(v) => format!("{key}={v}"),
                None => key.clone(),
            };
            let malformed = |problem: KargProblem| MalformedArg {
                arg: source.clone(),
                expected,
                problem,
            };
            let value = value
                .as_deref()
                .ok_or_else(|| malformed(KargProblem::NoValue))?;
            let (insecure, text) = match value.strip_prefix('?') {
                Some(rest) => (true, rest),
                None => (false, value),
            };
            let digest = parse(text).map_err(malformed)?;
            refs.push(ImageRef {
                digest,
                insecure,
                source,
            });
        }
        Ok(refs)
    }
}

impl Cmdline {
    /// Whether any `veriroot.sysext` is given, well-formed or not: such a
    /// boot also caps the extensions' PCR when it is refused.
    pub fn names_sysexts(&self) -> bool {
        self.params.iter().any(|(k, _)| k == SYSEXT)
    }

    /// Every digest of every `veriroot.sysext=`, in command-line order,
    /// which is the stacking order (the first is the lowest layer). Each
    /// must be a plain digest: no `?` (an extension's own trust is never
    /// weaker than the root's), no empty items. Duplicates are refused:
    /// one image cannot be two layers.
    pub fn sysext_digests(&self) -> Result<Vec<Digest>, MalformedArg> {
        let mut digests: Vec<Digest> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (key, value) in self.params.iter().filter(|(k, _)| k == SYSEXT) {
            let source = match value {
                Some(v) => format!("{key}={v}"),
                None => key.clone(),
            };
            let malformed = |problem: KargProblem| MalformedArg {
                arg: source.clone(),
                expected: EXPECT_SYSEXT,
                problem,
            };
            let value = value
                .as_deref()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| malformed(KargProblem::NoValue))?;
            for item in value.split(',') {
                if item.is_empty() {
                    return Err(malformed(KargProblem::EmptyItem));
                }
                let digest = Digest::from_hex(item).map_err(|error| {
                    malformed(KargProblem::Item {
                        item: item.to_owned(),
                        error,
                    })
                })?;
                if !seen.insert(digest.clone()) {
                    return Err(malformed(KargProblem::NamedTwice(item.to_owned())));
                }
                digests.push(digest);
            }
        }
        Ok(digests)
    }
}

fn parse_composefs(text: &str) -> Result<Digest, KargProblem> {
    Digest::from_hex(text).map_err(KargProblem::Digest)
}

fn parse_composefs_digest(text: &str) -> Result<Digest, KargProblem> {
    let (spec, hex) = text.split_once(':').ok_or(KargProblem::NoColon)?;
    let mut parts = spec.split('-');
    let (version, hash, block) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(v), Some(h), Some(b), None) => (v, h, b),
        _ => return Err(KargProblem::Format(spec.to_owned())),
    };
    if !matches!(version, "v1" | "v2") {
        return Err(KargProblem::Version(version.to_owned()));
    }
    let algorithm = match hash {
        "sha256" => Algorithm::Sha256,
        "sha512" => Algorithm::Sha512,
        _ => return Err(KargProblem::Hash(hash.to_owned())),
    };
    if block != "12" {
        return Err(KargProblem::BlockSize(block.to_owned()));
    }
    Digest::from_hex_as(algorithm, hex).map_err(|error| KargProblem::DigestOf { algorithm, error })
}

fn split(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_ascii_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    const H256: &str = "0d3e2e1f9a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f";

    fn h512() -> String {
        H256.repeat(2)
    }

    #[test]
    fn splits_like_the_kernel() {
        let c = Cmdline::parse("  a=1 b=\"x y\"  \"c=d e\" ro\n -- single quiet");
        assert_eq!(c.value("a"), Some("1"));
        assert_eq!(c.value("b"), Some("x y"));
        assert_eq!(c.value("c"), Some("d e"));
        assert!(c.flag("ro"));
        assert!(!c.flag("single"), "after -- belongs to init");
        assert_eq!(c.init_args(), ["single", "quiet"]);
    }

    #[test]
    fn last_value_and_flag_win() {
        let c = Cmdline::parse("root=/dev/vda ro root=/dev/vdb rw");
        assert_eq!(c.value("root"), Some("/dev/vdb"));
        assert_eq!(c.last_flag("ro", "rw"), Some("rw"));
        assert_eq!(Cmdline::parse("quiet").last_flag("ro", "rw"), None);
    }

    #[test]
    fn both_forms_in_command_line_order() {
        let c = Cmdline::parse(&format!(
            "root=x composefs.digest=v2-sha512-12:{} quiet composefs=?{H256}",
            h512()
        ));
        let refs = c.image_refs().unwrap();
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].digest.algorithm(), Algorithm::Sha512);
        assert_eq!(refs[0].digest.to_hex(), h512());
        assert!(!refs[0].insecure);
        assert_eq!(refs[1].digest.to_hex(), H256);
        assert!(refs[1].insecure);
        assert_eq!(refs[1].source, format!("composefs=?{H256}"));
    }

    #[test]
    fn digest_form_insecure_and_v1() {
        let c = Cmdline::parse(&format!("composefs.digest=?v1-sha256-12:{H256}"));
        let r = &c.image_refs().unwrap()[0];
        assert!(r.insecure);
        assert_eq!(r.digest.algorithm(), Algorithm::Sha256);
    }

    #[test]
    fn no_refs_is_empty_not_an_error() {
        assert_eq!(
            Cmdline::parse("root=/dev/vda quiet").image_refs(),
            Ok(vec![])
        );
    }

    #[test]
    fn malformed_values_name_the_argument() {
        let cases = [
            ("composefs", "no value"),
            ("composefs=", "0 hex digits"),
            ("composefs=?", "0 hex digits"),
            ("composefs=abc", "3 hex digits"),
            (
                "composefs.digest=v3-sha256-12:00",
                "unknown EROFS format version 'v3'",
            ),
            ("composefs.digest=v1-sha1-12:00", "unknown hash 'sha1'"),
            ("composefs.digest=v1-sha256-16:00", "block size 2^16"),
            ("composefs.digest=v1-sha256:00", "is not <version>"),
            ("composefs.digest=sha256", "no ':'"),
        ];
        for (arg, problem) in cases {
            let err = Cmdline::parse(arg).image_refs().unwrap_err();
            assert_eq!(err.arg, arg);
            assert!(
                err.problem.to_string().contains(problem),
                "{arg}: {}",
                err.problem
            );
            assert!(err.to_string().contains(&format!("'{arg}'")));
        }
    }

    #[test]
    fn an_appended_argument_cannot_write_to_the_console() {
        let err = Cmdline::parse("composefs=\u{1b}[2J\u{8}")
            .image_refs()
            .unwrap_err();
        let shown = err.to_string();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(shown.contains("composefs=\\x1b[2J\\x08"), "{shown}");
    }

    #[test]
    fn digest_form_length_must_match_its_hash() {
        let err = Cmdline::parse(&format!("composefs.digest=v2-sha512-12:{H256}"))
            .image_refs()
            .unwrap_err();
        assert!(
            err.problem
                .to_string()
                .contains("sha512 digest: 64 hex digits, expected 128"),
            "{}",
            err.problem
        );
    }

    #[test]
    fn sysexts_in_stated_order_over_repeats_and_commas() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let c = "c".repeat(64);
        let cmd = Cmdline::parse(&format!(
            "veriroot.sysext={a},{b} composefs={H256} veriroot.sysext={c}"
        ));
        assert!(cmd.names_sysexts());
        let hex: Vec<String> = cmd
            .sysext_digests()
            .unwrap()
            .iter()
            .map(Digest::to_hex)
            .collect();
        assert_eq!(hex, [a, b, c]);
        let none = Cmdline::parse(&format!("composefs={H256}"));
        assert!(!none.names_sysexts());
        assert_eq!(none.sysext_digests(), Ok(vec![]));
        let long = Cmdline::parse(&format!("veriroot.sysext={}", h512()));
        assert_eq!(
            long.sysext_digests().unwrap()[0].algorithm(),
            Algorithm::Sha512
        );
    }

    #[test]
    fn malformed_sysexts_name_the_argument() {
        let a = "a".repeat(64);
        let cases = [
            ("veriroot.sysext".to_string(), "no value"),
            ("veriroot.sysext=".to_string(), "no value"),
            (format!("veriroot.sysext={a},"), "empty item"),
            (format!("veriroot.sysext=?{a}"), "'?"),
            ("veriroot.sysext=abc".to_string(), "3 hex digits"),
            (format!("veriroot.sysext={a},{a}"), "named twice"),
        ];
        for (arg, problem) in cases {
            let c = Cmdline::parse(&format!("composefs={H256} {arg}"));
            assert!(c.names_sysexts(), "{arg}");
            let err = c.sysext_digests().unwrap_err();
            assert_eq!(err.arg, arg);
            assert!(
                err.problem.to_string().contains(problem),
                "{arg}: {}",
                err.problem
            );
            assert!(err.to_string().contains("veriroot.sysext=<hex>"), "{err}");
        }
    }

    #[test]
    fn one_bad_reference_fails_all() {
        let c = Cmdline::parse(&format!("composefs={H256} composefs=zz"));
        assert!(c.image_refs().is_err());
    }
}
