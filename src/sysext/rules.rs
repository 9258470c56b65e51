//! System extensions: which of systemd-sysext's rules an extension image
//! must pass before veriroot merges it into the root's overlay.
//!
//! Pure logic on the files' contents and the image's directory listing;
//! `assemble` reads them through a `verity=require` overlay and calls in
//! here. The rules follow systemd's `extension_release_validate()`
//! (src/shared/extension-util.c) and docs in systemd-sysext(8):
//!
//! - `ARCHITECTURE=`, when set and not `_any`, must equal the machine's
//!   architecture in systemd's spelling (`x86-64`, `arm64`, ...);
//! - `SYSEXT_SCOPE=`, when set, must include `system`;
//! - `ID=` must equal the root's `ID=` or a word of its `ID_LIKE=`, or be
//!   `_any` (then nothing else about the OS is compared);
//! - `SYSEXT_LEVEL=` is compared when both the root and the extension
//!   have one, otherwise `VERSION_ID=` when the root has one; a root with
//!   neither (a rolling release) takes any version.
//!
//! On top of that, where systemd ignores what it does not merge, veriroot
//! refuses: an extension may only hold `usr/` and `opt/`, and never
//! `usr/lib/os-release` (it would change the root's identity).

use std::fmt;

use crate::fsverity::digest::Digest;

/// The PCR systemd measures system extensions into (UAPI "Linux TPM PCR
/// Registry": PCR 13, "System Extensions"; systemd's
/// docs/TPM2_PCR_MEASUREMENTS.md). veriroot measures each merged
/// extension there, so a policy on PCR 13 covers sysexts either way.
pub const SYSEXT_PCR: u32 = 13;

/// Where an extension names itself: `extension-release.<NAME>`.
pub const RELEASE_DIR: &str = "usr/lib/extension-release.d";
const RELEASE_PREFIX: &str = "extension-release.";

/// The top-level directories an extension may provide.
pub const HIERARCHIES: [&str; 2] = ["usr", "opt"];

/// `KEY=value` pairs of an os-release style file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Release {
    pairs: Vec<(String, String)>,
}

impl Release {
    /// os-release(5) syntax: `KEY=value`, values optionally in single or
    /// double quotes (with `\` escapes inside double quotes), `#` comments
    /// and blank lines ignored. Lines that are not assignments are skipped,
    /// as systemd's parser does.
    pub fn parse(text: &str) -> Release {
        let mut pairs = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            pairs.push((key.to_owned(), unquote(value.trim())));
        }
        Release { pairs }
    }

    /// The value of `key` (the last assignment wins); empty counts as unset.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

fn unquote(value: &str) -> String {
    let bytes = value.as_bytes();
    if value.len() >= 2 && bytes[0] == b'\'' && bytes[value.len() - 1] == b'\'' {
        return value[1..value.len() - 1].to_owned();
    }
    if value.len() >= 2 && bytes[0] == b'"' && bytes[value.len() - 1] == b'"' {
        let mut out = String::new();
        let mut chars = value[1..value.len() - 1].chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                c => out.push(c),
            }
        }
        return out;
    }
    value.to_owned()
}

/// The running machine's architecture as systemd spells it (its
/// `architecture_to_string()`), for `ARCHITECTURE=`.
pub fn native_architecture() -> &'static str {
    architecture_name(std::env::consts::ARCH, cfg!(target_endian = "little"))
}

/// Rust's architecture name → systemd's.
pub fn architecture_name(rust_arch: &str, little_endian: bool) -> &'static str {
    match (rust_arch, little_endian) {
        ("x86_64", _) => "x86-64",
        ("x86", _) => "x86",
        ("aarch64", true) => "arm64",
        ("aarch64", false) => "arm64-be",
        ("arm", true) => "arm",
        ("arm", false) => "arm-be",
        ("riscv64", _) => "riscv64",
        ("riscv32", _) => "riscv32",
        ("powerpc64", true) => "ppc64-le",
        ("powerpc64", false) => "ppc64",
        ("powerpc", _) => "ppc",
        ("s390x", _) => "s390x",
        ("loongarch64", _) => "loongarch64",
        ("mips64", true) => "mips64-le",
        ("mips64", false) => "mips64",
        ("mips", true) => "mips-le",
        ("mips", false) => "mips",
        _ => "unknown",
    }
}

/// An extension, for messages: its name (from its release file, once
/// known) and the digest it was named by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionId {
    pub name: Option<String>,
    pub digest: Digest,
}

impl fmt::Display for ExtensionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "extension '{n}' ({})", self.digest),
            None => write!(f, "extension {}", self.digest),
        }
    }
}

/// An extension that passed the rules and is merged: what is measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedExtension {
    pub name: String,
    pub digest: Digest,
}

/// Why an extension is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SysextError {
    /// A top-level entry other than `usr` and `opt`.
    OutsideHierarchies {
        ext: Box<ExtensionId>,
        entry: String,
    },
    /// It ships `usr/lib/os-release`, which would replace the root's.
    ShipsOsRelease { ext: Box<ExtensionId> },
    /// No `usr/lib/extension-release.d/extension-release.<NAME>`.
    NoRelease { ext: Box<ExtensionId> },
    /// More than one: which name is meant is not ours to guess.
    SeveralReleases {
        ext: Box<ExtensionId>,
        names: Vec<String>,
    },
    /// A release field that does not match the root's.
    Mismatch {
        ext: Box<ExtensionId>,
        field: &'static str,
        extension: Option<String>,
        root: Option<String>,
        why: &'static str,
    },
    /// Two merged extensions carry the same name.
    DuplicateName {
        name: String,
        first: Digest,
        second: Digest,
    },
}

fn show(v: &Option<String>) -> String {
    match v {
        Some(v) => format!("'{v}'"),
        None => "(unset)".into(),
    }
}

impl fmt::Display for SysextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysextError::OutsideHierarchies { ext, entry } => write!(
                f,
                "{ext} provides /{entry}: a system extension may only provide /usr and /opt; \
                 rebuild it without /{entry} (configuration belongs in a confext or in /etc)"
            ),
            SysextError::ShipsOsRelease { ext } => write!(
                f,
                "{ext} ships /usr/lib/os-release, which would replace the root's identity: \
                 rebuild it without that file (its own identity goes in /{RELEASE_DIR}/{RELEASE_PREFIX}<NAME>)"
            ),
            SysextError::NoRelease { ext } => write!(
                f,
                "{ext} has no /{RELEASE_DIR}/{RELEASE_PREFIX}<NAME>: add one with ID= and \
                 SYSEXT_LEVEL= or VERSION_ID= matching the root's os-release"
            ),
            SysextError::SeveralReleases { ext, names } => write!(
                f,
                "{ext} has several extension-release files ({}): keep exactly one, named \
                 after the extension",
                names.join(", ")
            ),
            SysextError::Mismatch {
                ext,
                field,
                extension,
                root,
                why,
            } => write!(
                f,
                "{ext}: {field}={} in its extension-release does not match the root's \
                 {field}={}: {why}",
                show(extension),
                show(root)
            ),
            SysextError::DuplicateName {
                name,
                first,
                second,
            } => write!(
                f,
                "two extensions are named '{name}' ({first} and {second}): drop one from \
                 veriroot.sysext="
            ),
        }
    }
}

impl std::error::Error for SysextError {}

/// The extension's top-level entries must be `usr` and `opt` only.
pub fn check_hierarchies<'a>(
    ext: &ExtensionId,
    entries: impl IntoIterator<Item = &'a str>,
) -> Result<(), SysextError> {
    let mut outside: Vec<&str> = entries
        .into_iter()
        .filter(|e| !matches!(*e, "." | ".."))
        .filter(|e| !HIERARCHIES.contains(e))
        .collect();
    outside.sort_unstable();
    match outside.first() {
        Some(entry) => Err(SysextError::OutsideHierarchies {
            ext: Box::new(ext.clone()),
            entry: (*entry).to_owned(),
        }),
        None => Ok(()),
    }
}

/// The extension's NAME from the entries of its `extension-release.d`:
/// exactly one `extension-release.<NAME>` must be there. (systemd picks
/// the file named after the image file; veriroot's images are named by
/// digest, so the extension names itself.)
pub fn release_name<'a>(
    ext: &ExtensionId,
    entries: impl IntoIterator<Item = &'a str>,
) -> Result<String, SysextError> {
    let mut names: Vec<String> = entries
        .into_iter()
        .filter_map(|e| e.strip_prefix(RELEASE_PREFIX))
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    names.sort();
    match names.len() {
        0 => Err(SysextError::NoRelease {
            ext: Box::new(ext.clone()),
        }),
        1 => Ok(names.remove(0)),
        _ => Err(SysextError::SeveralReleases {
            ext: Box::new(ext.clone()),
            names,
        }),
    }
}

/// systemd's compatibility rules between the root's os-release and an
/// extension's extension-release; `arch` is the machine's (systemd's name).
pub fn check_release(
    ext: &ExtensionId,
    root: &Release,
    extension: &Release,
    arch: &str,
) -> Result<(), SysextError> {
    let mismatch = |field: &'static str, why: &'static str| SysextError::Mismatch {
        ext: Box::new(ext.clone()),
        field,
        extension: extension.get(field).map(str::to_owned),
        root: root.get(field).map(str::to_owned),
        why,
    };
    if let Some(scope) = extension.get("SYSEXT_SCOPE") {
        if !scope.split_whitespace().any(|s| s == "system") {
            return Err(SysextError::Mismatch {
                ext: Box::new(ext.clone()),
                field: "SYSEXT_SCOPE",
                extension: Some(scope.to_owned()),
                root: Some("system".to_owned()),
                why: "the extension is not meant for a booted system (SYSEXT_SCOPE must include system)",
            });
        }
    }
    if let Some(a) = extension.get("ARCHITECTURE") {
        if a != "_any" && a != arch {
            return Err(SysextError::Mismatch {
                ext: Box::new(ext.clone()),
                field: "ARCHITECTURE",
                extension: Some(a.to_owned()),
                root: Some(arch.to_owned()),
                why: "built for another architecture (the root's value is this machine's)",
            });
        }
    }
    match extension.get("ID") {
        None => {
            return Err(mismatch(
                "ID",
                "the extension must name the OS it extends, or _any",
            ))
        }
        // No dependency on the OS at all (static binaries, scripts).
        Some("_any") => return Ok(()),
        Some(id) => {
            let like = root.get("ID_LIKE").unwrap_or_default();
            if Some(id) != root.get("ID") && !like.split_whitespace().any(|l| l == id) {
                return Err(mismatch(
                    "ID",
                    "built for another OS (nor one in the root's ID_LIKE)",
                ));
            }
        }
    }
    let (root_level, root_version) = (root.get("SYSEXT_LEVEL"), root.get("VERSION_ID"));
    let ext_level = extension.get("SYSEXT_LEVEL");
    if root_level.is_some() && ext_level.is_some() {
        if root_level != ext_level {
            return Err(mismatch(
                "SYSEXT_LEVEL",
                "built for another extension API level",
            ));
        }
    } else if root_version.is_some() && extension.get("VERSION_ID") != root_version {
        return Err(mismatch("VERSION_ID", "built for another OS version"));
    }
    // A root with neither (a rolling release) takes any version; a root
    // with only a level takes an extension without one (systemd does too).
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext() -> ExtensionId {
        ExtensionId {
            name: Some("tools".into()),
            digest: Digest::from_hex(&"ab".repeat(32)).unwrap(),
        }
    }

    fn rel(text: &str) -> Release {
        Release::parse(text)
    }

    #[test]
    fn parses_os_release_syntax() {
        let r = rel(
            "# comment\nID=debian\n\nVERSION_ID=\"13\"\nNAME='Debian GNU/Linux'\n\
                     PRETTY=\"a \\\"q\\\" b\"\nnot a line\nEMPTY=\nID=debian2\n",
        );
        assert_eq!(r.get("ID"), Some("debian2"), "the last assignment wins");
        assert_eq!(r.get("VERSION_ID"), Some("13"));
        assert_eq!(r.get("NAME"), Some("Debian GNU/Linux"));
        assert_eq!(r.get("PRETTY"), Some("a \"q\" b"));
        assert_eq!(r.get("EMPTY"), None, "empty is unset");
        assert_eq!(r.get("MISSING"), None);
    }

    #[test]
    fn architecture_names_are_systemds() {
        assert_eq!(architecture_name("x86_64", true), "x86-64");
        assert_eq!(architecture_name("aarch64", true), "arm64");
        assert_eq!(architecture_name("powerpc64", true), "ppc64-le");
        assert_eq!(architecture_name("riscv64", true), "riscv64");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(native_architecture(), "x86-64");
    }

    #[test]
    fn matching_id_and_version_pass() {
        let root = rel("ID=debian\nVERSION_ID=13\n");
        assert_eq!(
            check_release(&ext(), &root, &rel("ID=debian\nVERSION_ID=13"), "x86-64"),
            Ok(())
        );
        assert_eq!(
            check_release(&ext(), &root, &rel("ID=_any"), "x86-64"),
            Ok(())
        );
        assert_eq!(
            check_release(
                &ext(),
                &root,
                &rel("ID=debian\nVERSION_ID=13\nARCHITECTURE=x86-64"),
                "x86-64"
            ),
            Ok(())
        );
        assert_eq!(
            check_release(
                &ext(),
                &root,
                &rel("ID=debian\nVERSION_ID=13\nARCHITECTURE=_any"),
                "arm64"
            ),
            Ok(())
        );
    }

    #[test]
    fn id_mismatch_names_field_values_and_extension() {
        let root = rel("ID=debian\nVERSION_ID=13\n");
        let err =
            check_release(&ext(), &root, &rel("ID=fedora\nVERSION_ID=13"), "x86-64").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ID='fedora'"), "{msg}");
        assert!(msg.contains("ID='debian'"), "{msg}");
        assert!(
            msg.contains(&format!("extension 'tools' (sha256:{})", "ab".repeat(32))),
            "{msg}"
        );
        let err = check_release(&ext(), &root, &rel("VERSION_ID=13"), "x86-64").unwrap_err();
        assert!(matches!(
            err,
            SysextError::Mismatch {
                field: "ID",
                extension: None,
                ..
            }
        ));
        assert!(err.to_string().contains("ID=(unset)"), "{err}");
    }

    #[test]
    fn sysext_level_takes_precedence_over_version_id() {
        let root = rel("ID=fcos\nVERSION_ID=41.1\nSYSEXT_LEVEL=1.0\n");
        // Both have a level: only the level counts, VERSION_ID may differ.
        assert_eq!(
            check_release(
                &ext(),
                &root,
                &rel("ID=fcos\nSYSEXT_LEVEL=1.0\nVERSION_ID=40"),
                "x86-64"
            ),
            Ok(())
        );
        let err =
            check_release(&ext(), &root, &rel("ID=fcos\nSYSEXT_LEVEL=2.0"), "x86-64").unwrap_err();
        assert!(
            matches!(
                err,
                SysextError::Mismatch {
                    field: "SYSEXT_LEVEL",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("SYSEXT_LEVEL='2.0'"));
        // The extension has no level: VERSION_ID decides.
        assert_eq!(
            check_release(&ext(), &root, &rel("ID=fcos\nVERSION_ID=41.1"), "x86-64"),
            Ok(())
        );
        let err =
            check_release(&ext(), &root, &rel("ID=fcos\nVERSION_ID=40"), "x86-64").unwrap_err();
        assert!(
            matches!(
                err,
                SysextError::Mismatch {
                    field: "VERSION_ID",
                    ..
                }
            ),
            "{err}"
        );
        // The root has no level: the extension's level is not enough.
        let root = rel("ID=debian\nVERSION_ID=13\n");
        let err =
            check_release(&ext(), &root, &rel("ID=debian\nSYSEXT_LEVEL=13"), "x86-64").unwrap_err();
        assert!(
            matches!(
                err,
                SysextError::Mismatch {
                    field: "VERSION_ID",
                    extension: None,
                    ..
                }
            ),
            "{err}"
        );
        // Only a level on the root, none on the extension: accepted, as by systemd.
        let root = rel("ID=x\nSYSEXT_LEVEL=3\n");
        assert_eq!(check_release(&ext(), &root, &rel("ID=x"), "x86-64"), Ok(()));
        // ID_LIKE of the root counts for ID.
        let root = rel("ID=ubuntu\nID_LIKE=debian\nVERSION_ID=24.04\n");
        assert_eq!(
            check_release(&ext(), &root, &rel("ID=debian\nVERSION_ID=24.04"), "x86-64"),
            Ok(())
        );
    }

    #[test]
    fn rolling_root_takes_any_version() {
        let root = rel("ID=arch\n");
        assert_eq!(
            check_release(&ext(), &root, &rel("ID=arch\nVERSION_ID=5"), "x86-64"),
            Ok(())
        );
        assert_eq!(
            check_release(&ext(), &root, &rel("ID=arch"), "x86-64"),
            Ok(())
        );
    }

    #[test]
    fn architecture_and_scope() {
        let root = rel("ID=debian\nVERSION_ID=13\n");
        let err = check_release(
            &ext(),
            &root,
            &rel("ID=debian\nVERSION_ID=13\nARCHITECTURE=arm64"),
            "x86-64",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("ARCHITECTURE='arm64'") && msg.contains("ARCHITECTURE='x86-64'"),
            "{msg}"
        );
        // Checked before ID, as systemd does: even an _any extension.
        assert!(
            check_release(&ext(), &root, &rel("ID=_any\nARCHITECTURE=arm64"), "x86-64").is_err()
        );
        let err = check_release(
            &ext(),
            &root,
            &rel("ID=debian\nVERSION_ID=13\nSYSEXT_SCOPE=initrd portable"),
            "x86-64",
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                SysextError::Mismatch {
                    field: "SYSEXT_SCOPE",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            check_release(
                &ext(),
                &root,
                &rel("ID=debian\nVERSION_ID=13\nSYSEXT_SCOPE=system initrd"),
                "x86-64"
            ),
            Ok(())
        );
    }

    #[test]
    fn only_usr_and_opt() {
        assert_eq!(check_hierarchies(&ext(), [".", "..", "usr", "opt"]), Ok(()));
        assert_eq!(check_hierarchies(&ext(), ["usr"]), Ok(()));
        let err = check_hierarchies(&ext(), ["usr", "etc", "bin"]).unwrap_err();
        assert_eq!(
            err,
            SysextError::OutsideHierarchies {
                ext: Box::new(ext()),
                entry: "bin".into()
            }
        );
        assert!(err.to_string().contains("provides /bin"), "{err}");
    }

    #[test]
    fn exactly_one_release_file_names_the_extension() {
        assert_eq!(
            release_name(&ext(), ["extension-release.tools"]),
            Ok("tools".into())
        );
        assert_eq!(
            release_name(&ext(), ["README", "extension-release."]),
            Err(SysextError::NoRelease {
                ext: Box::new(ext())
            })
        );
        let err = release_name(&ext(), ["extension-release.b", "extension-release.a"]).unwrap_err();
        assert!(err.to_string().contains("(a, b)"), "{err}");
    }
}
