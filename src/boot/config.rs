//! veriroot's configuration in the initrd, a small TOML subset
//! (`[section]`, `key = "string" | integer | true|false`, `#` comments):
//!
//! 1. `/usr/lib/composefs/setup-root-conf.toml`, composefs-setup-root's
//!    file (`[root] transient`, `[etc]`/`[var]` `mount`, `transient`), so
//!    veriroot is a drop-in replacement;
//! 2. `/etc/veriroot/veriroot.conf`: the same keys plus `[tpm]`; it wins.
//!
//! Unknown sections and keys are errors naming the file and line: a typo in
//! a security setting must not silently mean the default.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::boot::mount_modes::{ModeConflict, MountModes, StateMount};
use crate::boot::on_failure::Action;
use crate::boot::paths::HostPaths;

pub const DEFAULT_PATH: &str = "/etc/veriroot/veriroot.conf";
/// The trusted signing keys (`[trust] signatures`).
pub const KEYS_DIR: &str = "/etc/veriroot/keys";
pub const SETUP_ROOT_PATH: &str = "/usr/lib/composefs/setup-root-conf.toml";

/// What to do about the TPM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TpmPolicy {
    /// Measure when a TPM exists; warn when none does.
    Auto,
    /// Refuse to boot without a working TPM.
    Required,
    Off,
}

/// Which of several `composefs=` arguments may boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidates {
    /// Only the first: systemd-stub appends SMBIOS and add-on command lines
    /// after a UKI's signed one, so a later argument may be anybody's.
    First,
    /// Each in command-line order, the first that exists (composefs-rs's
    /// rule); only for command lines that are signed as a whole.
    Ordered,
}

/// `[trust] signatures`: whether images must be signed (docs/formats.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignaturePolicy {
    /// Signatures are not looked at: the command line alone names the
    /// image (a signed UKI's is enough).
    Off,
    /// A signature that is there must verify; none is accepted.
    IfPresent,
    /// Every image and extension needs a valid signature by a trusted key.
    Required,
}

/// The PCR veriroot extends unless configured otherwise (docs/pcr.md).
pub const DEFAULT_PCR: u32 = 15;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub tpm: TpmPolicy,
    pub pcr: u32,
    pub candidates: Candidates,
    pub mounts: MountModes,
    /// `[boot] on-failure`; `veriroot.on-failure=` wins over it.
    pub on_failure: Option<Action>,
    /// `[trust] signatures`.
    pub signatures: SignaturePolicy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tpm: TpmPolicy::Auto,
            pcr: DEFAULT_PCR,
            candidates: Candidates::First,
            mounts: MountModes::default(),
            on_failure: None,
            signatures: SignaturePolicy::Off,
        }
    }
}

#[derive(Debug)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based; 0 when the problem is not on one line.
    pub line: usize,
    pub problem: ConfigProblem,
}

#[derive(Debug)]
pub enum ConfigProblem {
    /// The file exists but cannot be read.
    Read(std::io::Error),
    /// Not the TOML subset.
    Syntax(TomlError),
    /// A known setting with a value it cannot take.
    Value {
        setting: String,
        value: Value,
        expected: &'static str,
    },
    UnknownSetting(String),
    /// Settings that cannot work together.
    Conflict(ModeConflict),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: ", self.path.display())?;
        } else {
            write!(f, "{}:{}: ", self.path.display(), self.line)?;
        }
        match &self.problem {
            ConfigProblem::Read(e) => e.fmt(f),
            ConfigProblem::Syntax(e) => e.fmt(f),
            ConfigProblem::Value {
                setting,
                value,
                expected,
            } => write!(f, "{setting} = {value}: expected {expected}"),
            ConfigProblem::UnknownSetting(setting) => write!(f, "unknown setting {setting}"),
            ConfigProblem::Conflict(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            ConfigProblem::Read(e) => Some(e),
            ConfigProblem::Syntax(e) => Some(e),
            ConfigProblem::Conflict(e) => Some(e),
            ConfigProblem::Value { .. } | ConfigProblem::UnknownSetting(_) => None,
        }
    }
}

/// A line of the file that is not the TOML subset (the line's text is the
/// configuration author's, from the initrd, not from the disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlError {
    pub line: usize,
    pub kind: TomlErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TomlErrorKind {
    NotAHeader(String),
    NotKeyValue(String),
    NotAKey(String),
    NotAValue(String),
}

impl fmt::Display for TomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            TomlErrorKind::NotAHeader(l) => write!(f, "'{l}' is not a [section] header"),
            TomlErrorKind::NotKeyValue(l) => write!(f, "'{l}' is not key = value"),
            TomlErrorKind::NotAKey(k) => write!(f, "'{k}' is not a plain key"),
            TomlErrorKind::NotAValue(v) => {
                write!(f, "'{v}' is not a \"string\", integer or true/false")
            }
        }
    }
}

impl std::error::Error for TomlError {}

/// A value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "\"{s}\""),
            Value::Int(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// `(section, key, value, line)` in file order.
pub type Entries = Vec<(String, String, Value, usize)>;

/// Parses the TOML subset. Errors carry the line; the caller adds the path.
pub fn parse_toml(text: &str) -> Result<Entries, TomlError> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let at = |kind| TomlError { line: n, kind };
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| at(TomlErrorKind::NotAHeader(line.to_owned())))?;
            section = name.trim().to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| at(TomlErrorKind::NotKeyValue(line.to_owned())))?;
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(at(TomlErrorKind::NotAKey(key.to_owned())));
        }
        let value = parse_value(value.trim())
            .ok_or_else(|| at(TomlErrorKind::NotAValue(value.trim().to_owned())))?;
        out.push((section.clone(), key.to_owned(), value, n));
    }
    Ok(out)
}

/// `#` starts a comment unless inside a string.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

fn parse_value(v: &str) -> Option<Value> {
    if let Some(s) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return (!s.contains('"') && !s.contains('\\')).then(|| Value::Str(s.to_owned()));
    }
    match v {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        _ => v.parse().ok().map(Value::Int),
    }
}

impl Config {
    /// The initrd's configuration: composefs-setup-root's file, then ours.
    pub fn load_initrd(paths: &HostPaths) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        config.apply_file(&paths.setup_root_config, false)?;
        config.apply_file(&paths.config, true)?;
        config.validated(&paths.config)
    }

    /// The PCR a configuration file names in `[tpm] pcr`, read leniently:
    /// for capping when the file is broken and cannot be loaded. A file
    /// that cannot be read or names nothing usable gives `None`.
    pub fn pcr_hint(path: &Path) -> Option<u32> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut section = "";
        let mut found = None;
        for line in text.lines().map(|l| strip_comment(l).trim()) {
            if let Some(name) = line.strip_prefix('[') {
                section = name.strip_suffix(']').map_or("", str::trim);
            } else if let Some((k, v)) = line.split_once('=') {
                if section == "tpm" && k.trim() == "pcr" {
                    found = v.trim().parse::<u32>().ok().filter(|&p| p <= 23 && p != 11);
                }
            }
        }
        found
    }

    /// Defaults overridden by one file (tests, `predict --config`).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        config.apply_file(path, true)?;
        config.validated(path)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        config.apply(path, text, true)?;
        config.validated(path)
    }

    fn validated(self, path: &Path) -> Result<Config, ConfigError> {
        self.mounts.validate().map_err(|e| ConfigError {
            path: path.to_owned(),
            line: 0,
            problem: ConfigProblem::Conflict(e),
        })?;
        Ok(self)
    }

    /// A missing file changes nothing.
    fn apply_file(&mut self, path: &Path, ours: bool) -> Result<(), ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => self.apply(path, &text, ours),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ConfigError {
                path: path.to_owned(),
                line: 0,
                problem: ConfigProblem::Read(e),
            }),
        }
    }

    /// `ours`: veriroot's own file, which may also have `[tpm]`.
    fn apply(&mut self, path: &Path, text: &str, ours: bool) -> Result<(), ConfigError> {
        let err = |line, problem| ConfigError {
            path: path.to_owned(),
            line,
            problem,
        };
        let entries = parse_toml(text).map_err(|e| err(e.line, ConfigProblem::Syntax(e)))?;
        // `transient = true` is shorthand for `mount = "transient"`, ignored
        // where the same section sets `mount` (composefs-setup-root's rule).
        let mut mount_set = [false; 2];
        let mut shorthand = [None; 2];
        for (section, key, value, line) in entries {
            let bad = |expected: &'static str| {
                err(
                    line,
                    ConfigProblem::Value {
                        setting: format!("{section}.{key}"),
                        value: value.clone(),
                        expected,
                    },
                )
            };
            let dir = match section.as_str() {
                "etc" => Some(0),
                "var" => Some(1),
                _ => None,
            };
            match (section.as_str(), key.as_str(), &value) {
                ("tpm", "policy", Value::Str(s)) if ours => {
                    self.tpm = match s.as_str() {
                        "auto" => TpmPolicy::Auto,
                        "required" => TpmPolicy::Required,
                        "off" => TpmPolicy::Off,
                        _ => return Err(bad("\"auto\", \"required\" or \"off\"")),
                    }
                }
                ("tpm", "pcr", Value::Int(n)) if ours => {
                    self.pcr = match u32::try_from(*n) {
                        // 11 is signed by systemd-measure/ukify: an extra extension breaks those policies.
                        Ok(11) => {
                            return Err(bad("a PCR other than 11 (systemd-stub's signed PCR)"))
                        }
                        Ok(p) if p <= 23 => p,
                        _ => return Err(bad("a PCR number 0..=23")),
                    }
                }
                ("boot", "candidates", Value::Str(s)) if ours => {
                    self.candidates = match s.as_str() {
                        "first" => Candidates::First,
                        "ordered" => Candidates::Ordered,
                        _ => return Err(bad("\"first\" or \"ordered\"")),
                    }
                }
                ("boot", "on-failure", Value::Str(s)) if ours => {
                    self.on_failure = Some(Action::from_name(s).ok_or_else(|| {
                        bad("\"emergency\", \"poweroff\", \"reboot\" or \"halt\"")
                    })?)
                }
                ("trust", "signatures", Value::Str(s)) if ours => {
                    self.signatures = match s.as_str() {
                        "off" => SignaturePolicy::Off,
                        "if-present" => SignaturePolicy::IfPresent,
                        "required" => SignaturePolicy::Required,
                        _ => return Err(bad("\"required\", \"if-present\" or \"off\"")),
                    }
                }
                ("root", "transient", Value::Bool(b)) => self.mounts.root_transient = *b,
                ("etc" | "var", "mount", Value::Str(s)) => {
                    let m = StateMount::from_name(s)
                        .ok_or_else(|| bad("\"none\", \"bind\", \"overlay\" or \"transient\""))?;
                    let i = dir.unwrap_or(0);
                    mount_set[i] = true;
                    if i == 0 {
                        self.mounts.etc = m
                    } else {
                        self.mounts.var = m
                    }
                }
                ("etc" | "var", "transient", Value::Bool(b)) => {
                    shorthand[dir.unwrap_or(0)] = Some(*b)
                }
                ("tpm", "policy" | "pcr", _)
                | ("boot", "candidates" | "on-failure", _)
                | ("trust", "signatures", _)
                    if ours =>
                {
                    return Err(bad("another type"))
                }
                ("root", "transient", _) | ("etc" | "var", "mount" | "transient", _) => {
                    return Err(bad("another type"))
                }
                _ => {
                    return Err(err(
                        line,
                        ConfigProblem::UnknownSetting(format!("{section}.{key}")),
                    ))
                }
            }
        }
        for (i, t) in shorthand.into_iter().enumerate() {
            if t == Some(true) && !mount_set[i] {
                if i == 0 {
                    self.mounts.etc = StateMount::Transient
                } else {
                    self.mounts.var = StateMount::Transient
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/veriroot/veriroot.conf"), text)
    }

    #[test]
    fn boot_on_failure_takes_the_four_actions_only() {
        let c = parse("[boot]\non-failure = \"reboot\"\ncandidates = \"ordered\"\n").unwrap();
        assert_eq!(c.on_failure, Some(Action::Reboot));
        assert_eq!(c.candidates, Candidates::Ordered);
        assert_eq!(parse("").unwrap().on_failure, None);
        for bad in [
            "[boot]\non-failure = \"continue\"\n",
            "[boot]\non-failure = 1\n",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.line, 2, "{bad}");
            assert!(e.to_string().contains("boot.on-failure"), "{e}");
        }
    }

    #[test]
    fn trust_signatures_takes_three_values_and_defaults_to_off() {
        assert_eq!(parse("").unwrap().signatures, SignaturePolicy::Off);
        for (v, p) in [
            ("required", SignaturePolicy::Required),
            ("if-present", SignaturePolicy::IfPresent),
            ("off", SignaturePolicy::Off),
        ] {
            let c = parse(&format!("[trust]\nsignatures = \"{v}\"\n")).unwrap();
            assert_eq!(c.signatures, p);
        }
        let e = parse("[trust]\nsignatures = \"yes\"\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.to_string()
                .contains("\"required\", \"if-present\" or \"off\""),
            "{e}"
        );
        assert!(parse("[trust]\nsignatures = true\n").is_err());
        // composefs-setup-root's file cannot turn signatures off or on.
        let e = Config::default()
            .apply(
                Path::new(SETUP_ROOT_PATH),
                "[trust]\nsignatures = \"off\"\n",
                false,
            )
            .unwrap_err();
        assert!(
            e.to_string().contains("unknown setting trust.signatures"),
            "{e}"
        );
    }

    #[test]
    fn empty_is_the_defaults() {
        assert_eq!(parse("# nothing\n\n").unwrap(), Config::default());
        assert_eq!(Config::default().pcr, 15);
        assert_eq!(Config::default().tpm, TpmPolicy::Auto);
    }

    #[test]
    fn every_setting() {
        let c = parse(
            "[tpm]\npolicy = \"required\"  # comment\npcr = 14\n[etc]\nmount = \"transient\"\n[var]\nmount = \"none\"\n",
        )
        .unwrap();
        assert_eq!(c.tpm, TpmPolicy::Required);
        assert_eq!(c.pcr, 14);
        assert_eq!(
            c.mounts,
            MountModes {
                root_transient: false,
                etc: StateMount::Transient,
                var: StateMount::None
            }
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse("[tpm]\n\npolcy = \"auto\"\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(
            e.to_string(),
            "/etc/veriroot/veriroot.conf:3: unknown setting tpm.polcy"
        );
        let e = parse("[tpm]\npcr = 11\n").unwrap_err();
        assert!(
            e.to_string()
                .contains(":2: tpm.pcr = 11: expected a PCR other than 11"),
            "{e}"
        );
        let e = parse("[tpm]\npcr = \"15\"\n").unwrap_err();
        assert!(e.to_string().contains("expected another type"), "{e}");
        assert_eq!(parse("[tpm\n").unwrap_err().line, 1);
        assert_eq!(parse("[tpm]\npolicy\n").unwrap_err().line, 2);
        assert_eq!(parse("[tpm]\npolicy = auto\n").unwrap_err().line, 2);
        assert_eq!(parse("[tpm]\npcr = 24\n").unwrap_err().line, 2);
    }

    #[test]
    fn composefs_setup_root_files() {
        let mut c = Config::default();
        let p = Path::new(SETUP_ROOT_PATH);
        c.apply(
            p,
            "[root]\ntransient = true\n[etc]\nmount = \"root\"\n",
            false,
        )
        .unwrap();
        assert_eq!(
            c.mounts,
            MountModes {
                root_transient: true,
                etc: StateMount::None,
                var: StateMount::Bind
            }
        );
        // The shorthand, and `mount` winning over it.
        let mut c = Config::default();
        c.apply(
            p,
            "[etc]\ntransient = true\n[var]\nmount = \"bind\"\ntransient = true\n",
            false,
        )
        .unwrap();
        assert_eq!(
            (c.mounts.etc, c.mounts.var),
            (StateMount::Transient, StateMount::Bind)
        );
        // [tpm] is veriroot's, not composefs-setup-root's.
        let e = Config::default()
            .apply(p, "[tpm]\npcr = 14\n", false)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{SETUP_ROOT_PATH}:2: unknown setting tpm.pcr")
        );
        // A combination overlayfs cannot stack is refused with the file.
        let e = parse("[root]\ntransient = true\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot be combined with [etc] mount = \"overlay\""),
            "{e}"
        );
    }

    #[test]
    fn a_broken_file_still_says_which_pcr_it_meant() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("veriroot.conf");
        std::fs::write(
            &p,
            "[tpm]\npcr = 14 # ours\nplicy = \"off\"\n[etc]\npcr = 9\n",
        )
        .unwrap();
        assert!(Config::load(&p).is_err());
        assert_eq!(Config::pcr_hint(&p), Some(14));
        std::fs::write(&p, "[tpm\npcr = 14\n").unwrap();
        assert_eq!(Config::pcr_hint(&p), None, "no [tpm] section was opened");
        std::fs::write(&p, "[tpm]\npcr = 11\n").unwrap();
        assert_eq!(Config::pcr_hint(&p), None, "11 is never veriroot's");
        assert_eq!(Config::pcr_hint(&dir.path().join("missing")), None);
    }

    #[test]
    fn hash_inside_a_string_is_not_a_comment() {
        let entries = parse_toml("a = \"x#y\" # c").unwrap();
        assert_eq!(entries[0].2, Value::Str("x#y".into()));
    }
}
