//! veriroot's configuration in the initrd: `/etc/veriroot/veriroot.conf`,
//! a small TOML subset (`[section]`, `key = "string" | integer | true|false`,
//! `#` comments). Unknown sections and keys are errors naming the file and
//! line: a typo in a security setting must not silently mean the default.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::assemble::{EtcMode, MountPolicy, VarMode};

pub const DEFAULT_PATH: &str = "/etc/veriroot/veriroot.conf";

/// What to do about the TPM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TpmPolicy {
    /// Measure when a TPM exists; warn when none does.
    Auto,
    /// Refuse to boot without a working TPM.
    Required,
    Off,
}

/// The PCR veriroot extends unless configured otherwise (docs/pcr.md).
pub const DEFAULT_PCR: u32 = 15;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub tpm: TpmPolicy,
    pub pcr: u32,
    pub policy: MountPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tpm: TpmPolicy::Auto,
            pcr: DEFAULT_PCR,
            policy: MountPolicy::default(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.problem)
        } else {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

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
pub fn parse_toml(text: &str) -> Result<Entries, (usize, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or((n, format!("'{line}' is not a [section] header")))?;
            section = name.trim().to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or((n, format!("'{line}' is not key = value")))?;
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err((n, format!("'{key}' is not a plain key")));
        }
        let value = parse_value(value.trim()).ok_or((
            n,
            format!(
                "'{}' is not a \"string\", integer or true/false",
                value.trim()
            ),
        ))?;
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
    /// Reads `path`; a missing file means the defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(ConfigError {
                path: path.to_owned(),
                line: 0,
                problem: e.to_string(),
            }),
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let err = |line, problem: String| ConfigError {
            path: path.to_owned(),
            line,
            problem,
        };
        let entries = parse_toml(text).map_err(|(line, p)| err(line, p))?;
        let mut config = Config::default();
        for (section, key, value, line) in entries {
            let bad = |expected: &str| {
                err(
                    line,
                    format!("{section}.{key} = {value}: expected {expected}"),
                )
            };
            match (section.as_str(), key.as_str(), &value) {
                ("tpm", "policy", Value::Str(s)) => {
                    config.tpm = match s.as_str() {
                        "auto" => TpmPolicy::Auto,
                        "required" => TpmPolicy::Required,
                        "off" => TpmPolicy::Off,
                        _ => return Err(bad("\"auto\", \"required\" or \"off\"")),
                    }
                }
                ("tpm", "pcr", Value::Int(n)) => {
                    config.pcr = match u32::try_from(*n) {
                        // 11 is signed by systemd-measure/ukify: an extra extension breaks those policies.
                        Ok(11) => {
                            return Err(bad("a PCR other than 11 (systemd-stub's signed PCR)"))
                        }
                        Ok(p) if p <= 23 => p,
                        _ => return Err(bad("a PCR number 0..=23")),
                    }
                }
                ("etc", "mount", Value::Str(s)) => {
                    config.policy.etc = match s.as_str() {
                        "none" => EtcMode::None,
                        "overlay" => EtcMode::Overlay,
                        "transient" => EtcMode::Transient,
                        _ => return Err(bad("\"none\", \"overlay\" or \"transient\"")),
                    }
                }
                ("var", "mount", Value::Str(s)) => {
                    config.policy.var = match s.as_str() {
                        "none" => VarMode::None,
                        "bind" => VarMode::Bind,
                        "transient" => VarMode::Transient,
                        _ => return Err(bad("\"none\", \"bind\" or \"transient\"")),
                    }
                }
                ("tpm", "policy" | "pcr", _) | ("etc" | "var", "mount", _) => {
                    return Err(bad("another type"))
                }
                _ => return Err(err(line, format!("unknown setting {section}.{key}"))),
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/veriroot/veriroot.conf"), text)
    }

    #[test]
    fn empty_is_the_defaults() {
        assert_eq!(parse("# nothing\n\n"), Ok(Config::default()));
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
            c.policy,
            MountPolicy {
                etc: EtcMode::Transient,
                var: VarMode::None
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
    fn hash_inside_a_string_is_not_a_comment() {
        let entries = parse_toml("a = \"x#y\" # c").unwrap();
        assert_eq!(entries[0].2, Value::Str("x#y".into()));
    }
}
