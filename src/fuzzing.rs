//! Entry points for the coverage-guided fuzz targets in `fuzz/`.
//!
//! Why this module exists: the fuzz crate is a separate crate that depends
//! on `veriroot` by path, and most parsers live in `pub(crate)` modules
//! (`fsverity`, `host`, `kernel`, `sysext`, the JSON reader) so that the
//! compiler reports dead code. Making those modules public for the fuzzer
//! would hide dead code and widen the API; instead each parser of untrusted
//! bytes gets one function here, taking raw bytes. It is `#[doc(hidden)]`
//! and not an API: nothing but `fuzz/` and the regression tests calls it.
//!
//! Each function must never panic on any input, and checks the invariants
//! that are cheap to check (round trips, bounds), panicking when one is
//! broken: a panic is what the fuzzer reports as a crash.

use std::path::Path;

use crate::boot::cmdline::Cmdline;
use crate::boot::config::{self, Config};
use crate::boot::repository::Meta;
use crate::fsverity::{Algorithm, Digest};
use crate::host::uki::{self, Uki};
use crate::kernel::{blockdev, modules};
use crate::measure::eventlog::{self, json};
use crate::measure::HashAlg;
use crate::sysext::{read, rules};
use crate::tpm::marshal;

/// One fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every target by name (fuzz/fuzz_targets/NAME.rs, fuzz/corpus/NAME/).
pub const TARGETS: [(&str, Target); 13] = [
    ("cmdline", cmdline),
    ("config", config),
    ("meta_json", meta_json),
    ("sysext_release", sysext_release),
    ("image_list", image_list),
    ("eventlog", eventlog),
    ("json", json),
    ("tpm_response", tpm_response),
    ("uki", uki),
    ("superblock", superblock),
    ("modules_dep", modules_dep),
    ("digest", digest),
    ("signature", signature),
];

/// Input as text: parsers of text files get the bytes as the boot path
/// would (`read_to_string` refuses invalid UTF-8 before any parser runs).
fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A digest parses back from its own hex to itself.
fn check_digest(d: &Digest) {
    let hex = d.to_hex();
    assert_eq!(hex.len(), d.algorithm().hex_len());
    assert_eq!(Digest::from_hex(&hex).as_ref(), Ok(d));
}

/// The kernel command line: `Cmdline::parse` and what the boot path asks
/// of it (image references, extensions, `root=`, flags).
pub fn cmdline(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let c = Cmdline::parse(text);
    if let Ok(refs) = c.image_refs() {
        for r in &refs {
            check_digest(&r.digest);
        }
    }
    if let Ok(digests) = c.sysext_digests() {
        for (i, d) in digests.iter().enumerate() {
            check_digest(d);
            assert!(
                !digests[..i].contains(d),
                "a duplicate extension was accepted"
            );
        }
    }
    c.names_sysexts();
    c.last_flag("ro", "rw");
    c.flag("rw");
    let _ = c.init_args();
    if let Some(root) = c.value("root") {
        let _ = blockdev::RootSpec::parse(root);
    }
}

/// The initrd's configuration file (TOML subset).
pub fn config(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let _ = config::parse_toml(text);
    if let Ok(c) = Config::parse(Path::new("/etc/veriroot.conf"), text) {
        assert!(c.pcr <= 23, "PCR {} accepted", c.pcr);
        assert_ne!(c.pcr, 11, "PCR 11 (systemd-stub's) accepted");
    }
}

/// The repository's `meta.json`.
pub fn meta_json(data: &[u8]) {
    if let Ok(m) = Meta::parse(data) {
        assert!(matches!(m.algorithm, Algorithm::Sha256 | Algorithm::Sha512));
    }
}

/// os-release / extension-release files and the rules that compare them:
/// the root's release, a NUL byte, then the extension's.
pub fn sysext_release(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let (root_text, ext_text) = text.split_once('\0').unwrap_or((text, ""));
    let root = rules::Release::parse(root_text);
    let ext = rules::Release::parse(ext_text);
    for line in root_text.lines() {
        if let Some((k, _)) = line.split_once('=') {
            let _ = root.get(k.trim());
        }
    }
    let id = rules::ExtensionId {
        name: ext.get("ID").map(str::to_owned),
        digest: Digest::new(Algorithm::Sha256, &[0x5a; 32]).expect("32 bytes"),
    };
    let _ = rules::release_name(&id, ext_text.lines());
    let _ = rules::check_release(&id, &root, &ext, rules::native_architecture());
}

/// A system extension's image list: one digest per line.
pub fn image_list(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(digests) = read::parse_image_list(text) {
        for (i, d) in digests.iter().enumerate() {
            check_digest(d);
            assert!(!digests[..i].contains(d), "a duplicate digest was accepted");
        }
    }
}

/// systemd's userspace measurement log (`veriroot log`, and the writer's
/// check of the existing log). Each record parsed, written back, parses to
/// the same record.
pub fn eventlog(data: &[u8]) {
    let Ok(records) = eventlog::parse(data) else {
        return;
    };
    let _ = eventlog::replay(&records);
    for r in &records {
        assert!(r.pcr < eventlog::PCR_COUNT);
        let bytes = eventlog::serialize(r);
        let back = eventlog::parse(&bytes)
            .unwrap_or_else(|e| panic!("a parsed record did not parse back: {e}: {r:?}"));
        assert_eq!(back.as_slice(), std::slice::from_ref(r));
    }
}

/// The JSON reader under the event log, alone; strings it reads are
/// written back the way systemd writes them and read again.
pub fn json(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(v) = json::parse(text) else { return };
    let mut stack = vec![&v];
    while let Some(v) = stack.pop() {
        match v {
            json::Value::String(s) => {
                let mut out = Vec::new();
                json::write_string(&mut out, s);
                let back = std::str::from_utf8(&out).expect("written as UTF-8");
                assert_eq!(
                    json::parse(back)
                        .ok()
                        .as_ref()
                        .and_then(json::Value::as_str),
                    Some(s.as_str())
                );
            }
            json::Value::Array(items) => stack.extend(items),
            json::Value::Object(members) => {
                for (k, m) in members {
                    assert!(
                        std::ptr::eq(v.get(k).expect("own key"), m),
                        "duplicate key {k:?}"
                    );
                    stack.push(m);
                }
            }
            json::Value::Number(_) => {
                let _ = v.as_u64();
            }
            json::Value::Null | json::Value::Bool(_) => {}
        }
    }
}

/// TPM responses: the header, then the body as each command's response
/// (PCR_Read for a few PCRs of every bank).
pub fn tpm_response(data: &[u8]) {
    if let Some(n) = marshal::response_size(data) {
        if data.len() >= 6 {
            assert_eq!(
                n,
                u32::from_be_bytes([data[2], data[3], data[4], data[5]]) as usize
            );
        }
    }
    let Ok(resp) = marshal::response(data) else {
        return;
    };
    assert_eq!(resp.body.len() + 10, data.len());
    if let Ok(banks) = marshal::parse_get_capability_pcrs(&resp) {
        for b in &banks {
            for pcr in 0..32 {
                let _ = b.has_pcr(pcr);
            }
            let _ = b.is_active();
        }
    }
    let _ = marshal::parse_pcr_extend(&resp);
    let _ = marshal::parse_get_random(&resp);
    for alg in HashAlg::ALL {
        for pcr in [0, 7, 11, 15, 23] {
            if let Ok(Some(value)) = marshal::parse_pcr_read(&resp, pcr, alg) {
                assert_eq!(value.len(), alg.digest_len());
            }
        }
    }
}

/// A unified kernel image, as `veriroot predict --uki` reads it.
pub fn uki(data: &[u8]) {
    let Ok(u) = Uki::parse(data.to_vec()) else {
        return;
    };
    let _ = u.cmdline();
    let sections = u.measured_sections();
    for (_, bytes) in &sections {
        assert!(bytes.len() <= data.len(), "a section larger than the file");
    }
    let p = uki::predict_pcr11(&sections, &["enter-initrd"], &[HashAlg::Sha256]);
    assert_eq!(p[&HashAlg::Sha256].len(), 32);
}

/// The start of a block device (`root=UUID=` / `LABEL=` lookup).
pub fn superblock(data: &[u8]) {
    if let Some(info) = blockdev::probe(data) {
        assert!(matches!(info.fstype, "ext4" | "btrfs"));
        assert_eq!(info.uuid.len(), 36, "{}", info.uuid);
    }
}

/// `modules.dep` and the load order made from it: every module once,
/// each after the modules it depends on.
pub fn modules_dep(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let entries = modules::parse_dep(text);
    let order = modules::load_order(&entries);
    let position: std::collections::HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    assert_eq!(position.len(), order.len(), "a module listed twice");
    for (m, _) in &entries {
        assert!(position.contains_key(m.as_str()), "{m} not loaded");
    }
}

/// A digest in hex, by length and as each algorithm.
pub fn digest(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(d) = Digest::from_hex(text) {
        check_digest(&d);
        assert_eq!(d.to_hex(), text.to_ascii_lowercase());
    }
    for alg in [Algorithm::Sha256, Algorithm::Sha512] {
        if let Ok(d) = Digest::from_hex_as(alg, text) {
            assert_eq!(d.algorithm(), alg);
            check_digest(&d);
        }
    }
    let _ = Algorithm::from_repository_name(text);
}

/// A signature file and a trusted key file, both the same bytes: the
/// PKCS#7 SignedData reader with its signed attributes, the certificate /
/// SubjectPublicKeyInfo reader, PEM and base64, and the verification up to
/// the keys (none: every step before the public-key operation runs).
pub fn signature(data: &[u8]) {
    use crate::signature::{self, keys, pkcs7};
    if let Ok(sd) = pkcs7::parse(data) {
        for s in &sd.signers {
            assert!(s.signature.len() < data.len());
            if let Some(raw) = s.signed_attrs {
                let _ = pkcs7::signed_attrs(raw);
            }
        }
        for spki in &sd.carried_keys {
            let _ = keys::parse_spki(spki);
        }
    }
    for alg in [Algorithm::Sha256, Algorithm::Sha512] {
        let d = Digest::new(alg, &vec![0x5a; alg.digest_len()]).expect("a digest of its length");
        assert!(signature::verify(data, &d, &[]).is_err());
    }
    if let Ok(key) = keys::parse_key_file(Path::new("fuzz.pem"), data) {
        assert_eq!(key.id.to_string().len(), 64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in seeds of one target, by file name.
    fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut out: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).unwrap())
            })
            .collect();
        out.sort();
        assert!(!out.is_empty(), "no seeds for {target}");
        out
    }

    /// Every target runs on its seeds without a panic (what the fuzzer
    /// starts from), so the entry points are exercised by `cargo test` too.
    #[test]
    fn every_target_accepts_its_seeds() {
        for (target, run) in TARGETS {
            for (_, data) in seeds(target) {
                run(&data);
            }
        }
    }

    /// The seeds are the real thing, not inputs every parser refuses.
    #[test]
    fn the_seeds_parse() {
        for (name, data) in seeds("eventlog") {
            assert!(!eventlog::parse(&data).unwrap().is_empty(), "{name}");
        }
        for (name, data) in seeds("uki") {
            let u = Uki::parse(data).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(u.cmdline().unwrap().contains("composefs="), "{name}");
        }
        for (name, data) in seeds("superblock") {
            let info = blockdev::probe(&data).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(
                (info.fstype, info.label.as_str()),
                (name.as_str(), "vt-root")
            );
        }
        for (name, data) in seeds("signature") {
            let parsed = crate::signature::pkcs7::parse(&data).is_ok();
            let key = crate::signature::keys::parse_key_file(Path::new(&name), &data).is_ok();
            assert!(parsed || key, "{name}");
        }
        for (name, data) in seeds("meta_json") {
            Meta::parse(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, data) in seeds("config") {
            let text = std::str::from_utf8(&data).unwrap();
            Config::parse(Path::new(&name), text).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, data) in seeds("tpm_response") {
            marshal::response(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, data) in seeds("image_list") {
            let text = std::str::from_utf8(&data).unwrap();
            assert!(!read::parse_image_list(text).unwrap().is_empty(), "{name}");
        }
        let cmdline = |name: &str| {
            let (_, data) = seeds("cmdline")
                .into_iter()
                .find(|(n, _)| n == name)
                .unwrap();
            Cmdline::parse(std::str::from_utf8(&data).unwrap())
        };
        assert_eq!(cmdline("digest-sysext").sysext_digests().unwrap().len(), 2);
        assert_eq!(cmdline("setup-root").image_refs().unwrap().len(), 1);
    }
}
