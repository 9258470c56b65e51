//! The documentation against the binary, so that the next drift fails CI:
//!
//! - every event string template of docs/pcr.md is what `veriroot predict`
//!   says a boot measures, each alternative of each `<a|b>` placeholder is
//!   produced by some boot, every event the binary prints matches a
//!   documented template, on the PCR the docs name; an event quoted in
//!   docs/formats.md, docs/sysext.md or README.md is one of pcr.md's;
//! - the kernel arguments veriroot defines (`composefs=`,
//!   `composefs.digest=`, `veriroot.*=`) are the same in the docs, in
//!   `--help` and in the code's string literals;
//! - the configuration keys of the docs are the ones `--help` lists, each is
//!   accepted in a configuration file (`predict --config`), and an unknown
//!   one is refused;
//! - every subcommand and option of README.md's usage block is in `--help`;
//! - docs/design.md's module table is the files under src/, kernel-sys/ and sha512x4/;
//! - the scenario counts of docs/architectures.md and README.md, and the
//!   list in initrd-tests/README.md, are the files of initrd-tests/;
//! - the units' `Documentation=` is what `make install` installs (into a
//!   temporary DESTDIR), and `make uninstall` removes all of it;
//! - every repository path the docs name exists;
//! - man/veriroot.8 is `--help` plus man/veriroot.8.in, nothing else.
//!
//! Nothing here touches the host: `predict` opens no TPM and no /run;
//! configuration files and `make install` go to temporary directories.
//! When a check fails, fix the doc (or `--help`, src/cli/help.rs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const H256: &str = "89c1c730fcd8d63a4a8030ca959388a4965133415878e406f69909062dcb6ae0";

/// veriroot's PCR unless configured otherwise (docs/pcr.md).
const DEFAULT_PCR: u32 = 15;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn veriroot(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_veriroot"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn help() -> String {
    let (code, out, err) = veriroot(&["--help"]);
    assert_eq!(code, 0, "{err}");
    out
}

/// The contents of every `code span` of a Markdown text, with the table
/// escape `\|` undone.
fn code_spans(md: &str) -> Vec<String> {
    let mut spans = Vec::new();
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            continue;
        }
        let parts: Vec<&str> = line.split('`').collect();
        for (i, part) in parts.iter().enumerate() {
            if i % 2 == 1 && i + 1 < parts.len() {
                spans.push(part.replace("\\|", "|"));
            }
        }
    }
    spans
}

// ---------------------------------------------------------------------------
// Event strings

/// One piece of a documented event template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    /// `<a|b|c>`: exactly one of these.
    OneOf(Vec<String>),
    /// `<hex digest>`: lower-case hex digits.
    Hex,
    /// `<NAME>`, `<…>`: anything without a `:`.
    Any,
}

/// `veriroot:policy:<secure|insecure>:root=<…>` → pieces. A placeholder
/// with `|` lists its values; one naming hex is hex; any other is free.
fn template(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        if open > 0 {
            pieces.push(Piece::Literal(rest[..open].to_owned()));
        }
        let close = rest[open..]
            .find('>')
            .unwrap_or_else(|| panic!("unclosed < in template {text}"))
            + open;
        let inner = &rest[open + 1..close];
        pieces.push(if inner.contains('|') {
            Piece::OneOf(inner.split('|').map(str::to_owned).collect())
        } else if inner.contains("hex") {
            Piece::Hex
        } else {
            Piece::Any
        });
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest.to_owned()));
    }
    pieces
}

/// Whether `s` matches `pieces`; on a match, the alternative each `OneOf`
/// took, as (piece index, value).
fn matches(pieces: &[Piece], s: &str) -> Option<Vec<(usize, String)>> {
    fn go(pieces: &[Piece], at: usize, s: &str, chosen: &mut Vec<(usize, String)>) -> bool {
        let Some(piece) = pieces.get(at) else {
            return s.is_empty();
        };
        match piece {
            Piece::Literal(l) => s
                .strip_prefix(l.as_str())
                .is_some_and(|rest| go(pieces, at + 1, rest, chosen)),
            Piece::OneOf(alts) => alts.iter().any(|a| {
                let Some(rest) = s.strip_prefix(a.as_str()) else {
                    return false;
                };
                chosen.push((at, a.clone()));
                if go(pieces, at + 1, rest, chosen) {
                    return true;
                }
                chosen.pop();
                false
            }),
            Piece::Hex | Piece::Any => {
                let ok = |c: char| match piece {
                    Piece::Hex => c.is_ascii_digit() || ('a'..='f').contains(&c),
                    _ => c != ':',
                };
                let longest = s.find(|c| !ok(c)).unwrap_or(s.len());
                (1..=longest)
                    .rev()
                    .any(|n| go(pieces, at + 1, &s[n..], chosen))
            }
        }
    }
    let mut chosen = Vec::new();
    go(pieces, 0, s, &mut chosen).then_some(chosen)
}

/// A documented event: its template and the PCRs it may be extended into.
#[derive(Debug)]
struct DocEvent {
    text: String,
    pieces: Vec<Piece>,
    pcrs: BTreeSet<u32>,
}

/// The rows of docs/pcr.md's event table: `| when | string |`. A row that
/// names a PCR in bold goes there alone; otherwise into the default PCR
/// and every other PCR the row mentions (`also into PCR 13`).
fn documented_events() -> Vec<DocEvent> {
    let md = read("docs/pcr.md");
    let mut events = Vec::new();
    for line in md.lines().filter(|l| l.starts_with('|')) {
        for span in code_spans(line) {
            if !span.starts_with("veriroot:") {
                continue;
            }
            let mut pcrs: BTreeSet<u32> = line
                .split("PCR ")
                .skip(1)
                .filter_map(|s| {
                    let n: String = s.chars().take_while(char::is_ascii_digit).collect();
                    n.parse().ok()
                })
                .collect();
            if !line.contains("**PCR ") {
                pcrs.insert(DEFAULT_PCR);
            }
            events.push(DocEvent {
                pieces: template(&span),
                text: span,
                pcrs,
            });
        }
    }
    assert!(
        events.len() >= 4,
        "docs/pcr.md's event table lost its strings: {events:?}"
    );
    events
}

/// `event PCR N: STRING` lines of `veriroot predict` (text form).
fn predicted_events(args: &[&str]) -> Vec<(u32, String)> {
    let (code, out, err) = veriroot(args);
    assert_eq!(code, 0, "veriroot {args:?}: {err}");
    out.lines()
        .filter_map(|l| l.strip_prefix("event PCR "))
        .map(|l| {
            let (pcr, s) = l.split_once(": ").unwrap();
            (pcr.parse().unwrap(), s.to_owned())
        })
        .collect()
}

/// Boots that between them take every documented value of every
/// placeholder: both digest kinds, secure and insecure, every /etc and
/// /var mode, a transient root (only settable by a configuration file),
/// extensions, refusals.
fn predicted_boots(dir: &Path) -> Vec<(u32, String)> {
    let h512 = H256.repeat(2);
    let transient_root = dir.join("transient-root.conf");
    std::fs::write(
        &transient_root,
        "[root]\ntransient = true\n[etc]\nmount = \"none\"\n[var]\nmount = \"bind\"\n",
    )
    .unwrap();
    let transient_root = transient_root.to_str().unwrap();
    let tools = format!("tools:{H256}");
    let tools512 = format!("tools:{h512}");
    let boots: Vec<Vec<&str>> = vec![
        vec!["--digest", H256],
        vec![
            "--digest",
            &h512,
            "--insecure",
            "--etc",
            "none",
            "--var",
            "transient",
        ],
        vec!["--digest", H256, "--etc", "bind", "--var", "none"],
        vec!["--digest", H256, "--etc", "transient", "--var", "overlay"],
        vec!["--digest", H256, "--config", transient_root],
        vec!["--digest", H256, "--sysext", &tools],
        vec!["--digest", &h512, "--sysext", &tools512],
        // A signed image: the signer's key, from a certificate (no private
        // key is committed; any certificate does).
        vec!["--digest", H256, "--signer", "tests/fixtures/signer.pem"],
        vec!["--failure"],
        vec!["--failure", "--sysext", &tools],
    ];
    let mut all = Vec::new();
    for boot in boots {
        let args: Vec<&str> = std::iter::once("predict").chain(boot).collect();
        let events = predicted_events(&args);
        assert!(!events.is_empty(), "veriroot {args:?} printed no event");
        all.extend(events);
    }
    all
}

#[test]
fn documented_event_strings_are_what_the_binary_measures() {
    let docs = documented_events();
    let dir = tempfile::tempdir().unwrap();
    let measured = predicted_boots(dir.path());

    // Binary → docs: every event matches a template, on a documented PCR.
    let mut taken: Vec<BTreeSet<(usize, String)>> = vec![BTreeSet::new(); docs.len()];
    let mut used = vec![false; docs.len()];
    for (pcr, string) in &measured {
        let hit = docs
            .iter()
            .enumerate()
            .find_map(|(i, d)| matches(&d.pieces, string).map(|c| (i, c)));
        let Some((i, chosen)) = hit else {
            panic!(
                "the binary measures '{string}' (PCR {pcr}), which matches no template of \
                 docs/pcr.md: {:?}",
                docs.iter().map(|d| &d.text).collect::<Vec<_>>()
            );
        };
        assert!(
            docs[i].pcrs.contains(pcr),
            "'{string}' goes into PCR {pcr}, docs/pcr.md says {:?} for {}",
            docs[i].pcrs,
            docs[i].text
        );
        used[i] = true;
        taken[i].extend(chosen);
    }

    // Docs → binary: every template, and every value it lists, is measured.
    for (i, d) in docs.iter().enumerate() {
        assert!(
            used[i],
            "docs/pcr.md documents {}, which no predicted boot measures",
            d.text
        );
        for (at, piece) in d.pieces.iter().enumerate() {
            if let Piece::OneOf(alts) = piece {
                for a in alts {
                    assert!(
                        taken[i].contains(&(at, a.clone())),
                        "docs/pcr.md: {} lists '{a}', which the binary never measures",
                        d.text
                    );
                }
            }
        }
    }
}

#[test]
fn event_strings_elsewhere_in_the_docs_are_the_documented_ones() {
    let docs = documented_events();
    for file in ["docs/formats.md", "docs/sysext.md", "README.md"] {
        for span in code_spans(&read(file)) {
            if !span.starts_with("veriroot:") {
                continue;
            }
            let pieces = template(&span);
            assert!(
                docs.iter().any(|d| d.pieces == pieces),
                "{file} quotes the event '{span}', which docs/pcr.md does not document"
            );
        }
    }
}

#[test]
fn the_template_matcher_can_fail() {
    let t = template("veriroot:policy:<secure|insecure>:etc=<a|b>:<hex digest>");
    assert!(matches(&t, "veriroot:policy:secure:etc=b:0af").is_some());
    assert!(matches(&t, "veriroot:policy:secure:etc=c:0af").is_none());
    assert!(matches(&t, "veriroot:policy:secure:etc=a:0AF").is_none());
    assert!(matches(&t, "veriroot:policy:secure:etc=a:").is_none());
    assert!(matches(&template("x:<NAME>:y"), "x:a:b:y").is_none());
}

// ---------------------------------------------------------------------------
// Kernel arguments

/// The kernel arguments veriroot defines, as `name=`, wherever `text`
/// names them.
fn kargs_in(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for start in ["composefs", "veriroot."] {
        let mut rest = text;
        while let Some(at) = rest.find(start) {
            let before = rest[..at].chars().next_back();
            let tail = &rest[at..];
            let name_len = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
                .unwrap_or(tail.len());
            let name = &tail[..name_len];
            let word_start = !matches!(before, Some(c) if c.is_ascii_alphanumeric() || c == '/');
            if word_start && tail[name_len..].starts_with('=') {
                found.insert(format!("{name}="));
            }
            rest = &rest[at + start.len()..];
        }
    }
    found
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `"veriroot.NAME` string literals in the code (`cmdline.value("…")`,
/// the karg constants), outside the help text and the tests.
fn kargs_in_code() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut found = BTreeSet::new();
    for f in files.iter().filter(|f| !f.ends_with("cli/help.rs")) {
        let text = std::fs::read_to_string(f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for piece in code.split("\"veriroot.").skip(1) {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let next = piece[name.len()..].chars().next();
            if !name.is_empty() && name != "conf" && matches!(next, Some('"' | '=')) {
                found.insert(format!("veriroot.{name}="));
            }
        }
    }
    found
}

#[test]
fn kernel_arguments_are_the_same_in_docs_help_and_code() {
    let mut docs = kargs_in(&read("docs/formats.md"));
    docs.extend(kargs_in(&read("docs/pcr.md")));
    let help = kargs_in(&help());
    let code = kargs_in_code();
    for must in ["composefs=", "composefs.digest=", "veriroot.sysext="] {
        assert!(docs.contains(must), "docs/formats.md lost {must}");
    }
    assert!(!code.is_empty(), "no veriroot.* karg found in src/");
    for k in &docs {
        assert!(help.contains(k), "{k} is documented but not in --help");
    }
    for k in &help {
        assert!(
            docs.contains(k),
            "--help lists {k}, docs/formats.md and docs/pcr.md do not"
        );
    }
    for k in &code {
        assert!(
            help.contains(k),
            "the code reads {k}, --help does not say so"
        );
    }
}

// ---------------------------------------------------------------------------
// Configuration keys

/// `[section] key` pairs: from the ```toml block of docs/formats.md (a
/// commented-out key is documented too) and from prose like
/// `[tpm] policy =` or `[etc]`/`[var]` `mount`.
fn documented_config_keys() -> BTreeSet<(String, String)> {
    let mut keys = BTreeSet::new();
    let formats = read("docs/formats.md");
    let mut in_toml = false;
    let mut section = String::new();
    for line in formats.lines() {
        if line.starts_with("```") {
            in_toml = line == "```toml";
            continue;
        }
        if !in_toml {
            continue;
        }
        let l = line.trim();
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_owned();
        } else if let Some((k, _)) = l.trim_start_matches(['#', ' ']).split_once('=') {
            keys.insert((section.clone(), k.trim().to_owned()));
        }
    }
    assert!(
        keys.len() >= 5,
        "docs/formats.md's ```toml block lost its keys: {keys:?}"
    );
    for text in [formats, read("docs/pcr.md")] {
        keys.extend(prose_keys(&text));
    }
    keys
}

/// `[a]`, `[a]`/`[b]` followed by `key` (in the same or the next code span).
fn prose_keys(text: &str) -> BTreeSet<(String, String)> {
    let mut keys = BTreeSet::new();
    let flat = text.replace(['`', '\n'], " ");
    let words: Vec<&str> = flat.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        let sections: Vec<&str> = w
            .split('/')
            .filter_map(|s| s.strip_prefix('[').and_then(|s| s.strip_suffix(']')))
            .collect();
        if sections.is_empty() || sections.len() != w.split('/').count() {
            continue;
        }
        let Some(key) = words.get(i + 1) else {
            continue;
        };
        if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            for s in &sections {
                keys.insert((s.to_string(), key.to_string()));
            }
        }
    }
    keys
}

/// The CONFIGURATION part of `--help`: `[section]` sets the section(s) of
/// the line and the lines after it, `key =` names a key.
fn help_config_keys() -> BTreeSet<(String, String)> {
    let help = help();
    let part = help
        .split("CONFIGURATION")
        .nth(1)
        .expect("--help has a CONFIGURATION part");
    let mut keys = BTreeSet::new();
    let mut sections: Vec<String> = Vec::new();
    for line in part.lines() {
        let here: Vec<String> = line
            .split('[')
            .skip(1)
            .filter_map(|s| s.split_once(']').map(|(n, _)| n.to_owned()))
            .filter(|n| n.chars().all(|c| c.is_ascii_lowercase()))
            .collect();
        if !here.is_empty() {
            sections = here;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            let w = w.trim_start_matches(':');
            // Keys are lower case, some with a hyphen (`on-failure`).
            if words.get(i + 1) == Some(&"=")
                && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            {
                for s in &sections {
                    keys.insert((s.clone(), w.to_owned()));
                }
            }
        }
    }
    keys
}

/// A value each documented key accepts, whatever its section.
fn sample_value(key: &str) -> &'static str {
    match key {
        "policy" => "\"off\"",
        "pcr" => "14",
        "transient" => "false",
        "mount" => "\"bind\"",
        "candidates" => "\"ordered\"",
        "on-failure" => "\"reboot\"",
        "signatures" => "\"if-present\"",
        other => panic!("no sample value for the documented key '{other}': add one here"),
    }
}

#[test]
fn configuration_keys_are_the_same_in_docs_and_help_and_accepted() {
    let docs = documented_config_keys();
    let help = help_config_keys();
    for k in &docs {
        assert!(
            help.contains(k),
            "[{}] {} is documented, not in --help",
            k.0,
            k.1
        );
    }
    for k in &help {
        assert!(
            docs.contains(k),
            "--help lists [{}] {}, docs/formats.md and docs/pcr.md do not",
            k.0,
            k.1
        );
    }

    // Each one is accepted by a configuration file.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("veriroot.conf");
    let conf_arg = conf.to_str().unwrap();
    for (section, key) in &docs {
        let text = format!("[{section}]\n{key} = {}\n", sample_value(key));
        std::fs::write(&conf, &text).unwrap();
        let (code, _, err) = veriroot(&["predict", "--digest", H256, "--config", conf_arg]);
        assert_eq!(code, 0, "documented [{section}] {key} refused: {err}");
    }

    // A configuration is read: the documented PCR is where the events go.
    std::fs::write(&conf, "[tpm]\npcr = 14\n").unwrap();
    let events = predicted_events(&["predict", "--digest", H256, "--config", conf_arg]);
    assert!(events.iter().all(|(pcr, _)| *pcr == 14), "{events:?}");

    // An unknown key, or one in the wrong section, is refused.
    for (text, setting) in [
        ("[tpm]\npolcy = \"auto\"\n", "tpm.polcy"),
        ("[root]\nmount = \"bind\"\n", "root.mount"),
        ("[boot]\npcr = 15\n", "boot.pcr"),
    ] {
        std::fs::write(&conf, text).unwrap();
        let (code, _, err) = veriroot(&["predict", "--digest", H256, "--config", conf_arg]);
        assert_ne!(code, 0, "{text:?} was accepted");
        assert!(err.contains(&format!("unknown setting {setting}")), "{err}");
    }
}

// ---------------------------------------------------------------------------
// README.md's usage block

#[test]
fn readme_usage_is_in_help() {
    let readme = read("README.md");
    let usage = readme
        .split("## Usage")
        .nth(1)
        .and_then(|s| s.split("```").nth(1))
        .expect("README.md has a usage block");
    let help = help();
    let mut seen = 0;
    for line in usage.lines() {
        let command = line.split('#').next().unwrap();
        let mut words = command.split_whitespace();
        if words.next() != Some("veriroot") {
            continue;
        }
        seen += 1;
        if let Some(sub) = words.clone().next().filter(|w| !w.starts_with('-')) {
            assert!(
                help.contains(&format!("veriroot {sub}")),
                "README.md: veriroot {sub} is not in --help"
            );
        }
        for w in words {
            let option = w.trim_start_matches('[');
            if let Some(name) = option.strip_prefix("--") {
                let name: String = name
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                assert!(
                    help.contains(&format!("--{name}")),
                    "README.md: --{name} is not in --help"
                );
            }
        }
    }
    assert!(seen >= 5, "README.md's usage block lost its commands");
}

// ---------------------------------------------------------------------------
// docs/design.md's module table

#[test]
fn design_module_table_is_the_source_tree() {
    let design = read("docs/design.md");
    let mut table = BTreeSet::new();
    for line in design.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap();
        for span in code_spans(first) {
            if span.ends_with(".rs") {
                table.insert(span);
            }
        }
    }
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("kernel-sys/src"), &mut files);
    rust_files(&root().join("sha512x4/src"), &mut files);
    let tree: BTreeSet<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let missing: Vec<_> = tree.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "not in docs/design.md's module table: {missing:?}"
    );
    let gone: Vec<_> = table.difference(&tree).collect();
    assert!(
        gone.is_empty(),
        "docs/design.md's module table names files that do not exist: {gone:?}"
    );
}

// ---------------------------------------------------------------------------
// The units' Documentation= against `make install`

#[test]
fn unit_documentation_is_installed() {
    let dest = tempfile::tempdir().unwrap();
    // A stand-in binary: no release build, nothing outside the temporary
    // directory is written.
    let bin = dest.path().join("veriroot.stand-in");
    std::fs::write(&bin, "").unwrap();
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(root())
        .arg("install")
        .arg(format!("DESTDIR={}", dest.path().join("root").display()))
        .arg(format!("BIN={}", bin.display()))
        .arg(format!("INITRD_BIN={}", bin.display()))
        .output()
        .expect("make");
    assert!(
        out.status.success(),
        "make install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = dest.path().join("root");
    let mut named = 0;
    for entry in std::fs::read_dir(root().join("units")).unwrap() {
        let unit = entry.unwrap().path();
        let text = std::fs::read_to_string(&unit).unwrap();
        for line in text.lines() {
            let Some(docs) = line.strip_prefix("Documentation=") else {
                continue;
            };
            for doc in docs.split_whitespace() {
                named += 1;
                let path = if let Some(p) = doc.strip_prefix("file://") {
                    installed.join(p.trim_start_matches('/'))
                } else if let Some(page) = doc.strip_prefix("man:") {
                    let (name, section) = page.trim_end_matches(')').split_once('(').unwrap();
                    installed.join(format!("usr/share/man/man{section}/{name}.{section}"))
                } else {
                    continue;
                };
                assert!(
                    path.exists(),
                    "{}: Documentation= names {doc}, which make install does not install",
                    unit.display()
                );
            }
        }
    }
    assert!(named > 0, "no unit has Documentation=");
    // And `make uninstall` takes back every file it put there.
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(root())
        .arg("uninstall")
        .arg(format!("DESTDIR={}", installed.display()))
        .output()
        .expect("make");
    assert!(
        out.status.success(),
        "make uninstall: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut left = Vec::new();
    let mut dirs = vec![installed.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                left.push(p);
            }
        }
    }
    assert!(left.is_empty(), "make uninstall left {left:?}");
}

// ---------------------------------------------------------------------------
// The man page: generated from --help and man/veriroot.8.in

/// `text` as roff fill-less lines: backslashes and leading dots escaped.
fn roff_verbatim(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = line.replace('\\', "\\e").replace('-', "\\-");
        if line.starts_with('.') || line.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The man page: NAME, then each section of `--help` (a line in capitals
/// ending in ':' starts one) as a verbatim block, then the .in file's.
fn man_page(help: &str, tail: &str) -> String {
    let mut lines = help.lines();
    let summary = lines.next().unwrap_or_default();
    let mut out = format!(
        ".\\\" Generated from `veriroot --help` and man/veriroot.8.in by tests/docs.rs:\n\
         .\\\" edit those, then: UPDATE_MAN=1 cargo test --test docs man_page_is_help\n\
         .TH VERIROOT 8 \"\" \"veriroot {}\" \"veriroot\"\n.SH NAME\n{}\n",
        env!("CARGO_PKG_VERSION"),
        roff_verbatim(summary).trim_end().replacen(": ", " \\- ", 1)
    );
    let mut block = String::new();
    let flush = |out: &mut String, block: &mut String| {
        if !block.trim().is_empty() {
            out.push_str(".nf\n");
            out.push_str(&roff_verbatim(block.trim_matches('\n')));
            out.push_str(".fi\n");
        }
        block.clear();
    };
    for line in lines {
        let heading = line
            .strip_suffix(':')
            .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_uppercase() || c == ' '));
        let (heading, rest) = match heading {
            Some(h) => (Some(h.to_owned()), None),
            // "CONFIGURATION (in the initrd): ..." starts a section too.
            None => match line.split_once(' ') {
                Some((h, r)) if h.len() > 3 && h.chars().all(|c| c.is_ascii_uppercase()) => {
                    (Some(h.to_owned()), Some(r))
                }
                _ => (None, None),
            },
        };
        match heading {
            Some(h) => {
                flush(&mut out, &mut block);
                out.push_str(&format!(".SH {h}\n"));
                if let Some(r) = rest {
                    block.push_str(r);
                    block.push('\n');
                }
            }
            None => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    flush(&mut out, &mut block);
    out.push_str(tail);
    out
}

#[test]
fn man_page_is_help() {
    let expected = man_page(&help(), &read("man/veriroot.8.in"));
    let path = root().join("man/veriroot.8");
    if std::env::var_os("UPDATE_MAN").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let found = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        found == expected,
        "man/veriroot.8 is not --help plus man/veriroot.8.in: run \
         UPDATE_MAN=1 cargo test --test docs man_page_is_help"
    );
    for section in [
        "NAME",
        "USAGE",
        "KERNEL COMMAND LINE",
        "CONFIGURATION",
        "EXIT STATUS",
        "FILES",
    ] {
        assert!(
            expected.contains(&format!(".SH {section}\n")),
            "no {section} section"
        );
    }
}

// ---------------------------------------------------------------------------
// Scenario counts

#[test]
fn scenario_counts_are_the_initrd_tests() {
    let (mut x86_64, mut aarch64, mut files) = (0, 0, 0);
    for entry in std::fs::read_dir(root().join("initrd-tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some() {
            continue; // README.md
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        // qemu/run-scenarios: no `# arches:` line means x86_64 only.
        let arches = text
            .lines()
            .find_map(|l| l.strip_prefix("# arches: "))
            .unwrap_or("x86_64");
        x86_64 += arches.split_whitespace().any(|a| a == "x86_64") as u32;
        aarch64 += arches.split_whitespace().any(|a| a == "aarch64") as u32;
    }
    let arch = read("docs/architectures.md").replace('\n', " ");
    for claim in [
        format!("Of the {files} files in `initrd-tests/`"),
        format!(
            "runs {x86_64} x86_64 and {aarch64} aarch64 scenarios, {} in all",
            x86_64 + aarch64
        ),
        format!("| {x86_64}: every file"),
        format!("| {aarch64}: the files"),
    ] {
        assert!(
            arch.contains(&claim),
            "docs/architectures.md lacks '{claim}'"
        );
    }
    let readme = read("README.md").replace('\n', " ");
    let claim = format!("{} scenarios", x86_64 + aarch64);
    assert!(readme.contains(&claim), "README.md lacks '{claim}'");
}

/// initrd-tests/README.md lists each scenario once, `*` marking those
/// that also run on aarch64, and nothing else.
#[test]
fn initrd_tests_readme_lists_every_scenario() {
    let readme = read("initrd-tests/README.md");
    let mut listed = std::collections::BTreeMap::new();
    for line in readme.lines() {
        let Some(rest) = line.strip_prefix("- `") else {
            continue;
        };
        let (name, after) = rest.split_once('`').unwrap();
        let both = after.starts_with("\\*");
        assert!(
            listed.insert(name.to_owned(), both).is_none(),
            "initrd-tests/README.md lists {name} twice"
        );
    }
    for entry in std::fs::read_dir(root().join("initrd-tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some() {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let arches = text
            .lines()
            .find_map(|l| l.strip_prefix("# arches: "))
            .unwrap_or("x86_64");
        let both = arches.contains("x86_64") && arches.contains("aarch64");
        match listed.remove(&name) {
            None => panic!("initrd-tests/README.md does not list {name}"),
            Some(star) => assert_eq!(
                star, both,
                "initrd-tests/README.md: {name}'s `*` (also on aarch64) is wrong"
            ),
        }
    }
    assert!(
        listed.is_empty(),
        "initrd-tests/README.md lists scenarios that do not exist: {listed:?}"
    );
}

// ---------------------------------------------------------------------------
// Paths the docs name

#[test]
fn paths_in_the_docs_exist() {
    let mut docs = vec![
        "README.md".to_owned(),
        "initrd-tests/README.md".to_owned(),
        "tests/fixtures/README.md".to_owned(),
    ];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        docs.push(format!(
            "docs/{}",
            path.file_name().unwrap().to_string_lossy()
        ));
    }
    const TOP: [&str; 12] = [
        "src/",
        "kernel-sys/",
        "sha512x4/",
        "qemu/",
        "tests/",
        "docs/",
        "initrd-tests/",
        "units/",
        "dracut/",
        "benches/",
        "tools/",
        ".ci/",
    ];
    let mut missing = Vec::new();
    for doc in &docs {
        for word in read(doc).split(|c: char| {
            c.is_whitespace() || matches!(c, '`' | '(' | ')' | ',' | ';' | '"' | '\'' | '[' | ']')
        }) {
            let word = word.trim_end_matches(['.', ':']);
            let word = word.split_once("::").map_or(word, |(path, _)| path);
            if !TOP.iter().any(|t| word.starts_with(t))
                || word.contains(['*', '<', '{', '…', '$', '|'])
                || word.contains("NAME")
            {
                continue;
            }
            if !root().join(word).exists() {
                missing.push(format!("{doc}: {word}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the docs name paths that do not exist: {missing:#?}"
    );
}
