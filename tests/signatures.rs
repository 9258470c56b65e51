//! `[trust] signatures` against real repository directories: where the
//! signature is looked for, how it is opened (no symlink, bounded size),
//! and what each policy makes of its absence or its failure. The
//! signatures themselves are made by `openssl cms` (src/signature/tests.rs
//! covers the formats and `fsverity sign`).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use veriroot::boot::cmdline::{Cmdline, ImageRef};
use veriroot::boot::config::SignaturePolicy;
use veriroot::boot::repository::Repository;
use veriroot::boot::signatures::{SignatureRefusal, Signed, Trust};

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn image_ref(arg: &str) -> ImageRef {
    Cmdline::parse(arg).image_refs().unwrap().remove(0)
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("sysroot/composefs/signatures")).unwrap();
        fs::create_dir_all(dir.path().join("keys")).unwrap();
        Setup { dir }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn repo(&self) -> Repository {
        Repository::open_on_disk(&self.p("sysroot")).unwrap()
    }
    fn sig(&self) -> PathBuf {
        self.p(&format!("sysroot/composefs/signatures/{A}.sig"))
    }
    fn keys(&self) -> PathBuf {
        self.p("keys")
    }
    /// A P-256 certificate in keys/NAME.pem (trusted) or elsewhere.
    fn keypair(&self, name: &str, trusted: bool) -> (PathBuf, PathBuf) {
        let key = self.p(&format!("{name}.key"));
        let cert = if trusted {
            self.keys().join(format!("{name}.pem"))
        } else {
            self.p(&format!("{name}.pem"))
        };
        let ok = Command::new("openssl")
            .args(["req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=t"])
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl (qemu/install-deps installs it)");
        assert!(ok.status.success());
        (key, cert)
    }
    /// Signs A's formatted digest into the signature file.
    fn sign(&self, (key, cert): &(PathBuf, PathBuf)) {
        let content = self.p("content.bin");
        let mut bytes = b"FSVerity\x01\x00\x20\x00".to_vec();
        bytes.extend([0xaa; 32]);
        fs::write(&content, bytes).unwrap();
        let ok = Command::new("openssl")
            .args(["cms", "-sign", "-binary", "-noattr", "-outform", "DER"])
            .arg("-in")
            .arg(&content)
            .arg("-signer")
            .arg(cert)
            .arg("-inkey")
            .arg(key)
            .arg("-out")
            .arg(self.sig())
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
    }
    fn check(
        &self,
        policy: SignaturePolicy,
        arg: &str,
    ) -> Result<Option<String>, SignatureRefusal> {
        let trust = Trust::load(policy, &self.keys())?;
        trust
            .check(&self.repo(), &image_ref(arg), Signed::Image)
            .map(|s| s.map(|s| s.id.to_string()))
    }
}

#[test]
fn each_policy_on_a_signed_an_unsigned_and_a_badly_signed_image() {
    let s = Setup::new();
    let secure = format!("composefs={A}");
    let pair = s.keypair("good", true);
    // Unsigned.
    assert_eq!(s.check(SignaturePolicy::Off, &secure).unwrap(), None);
    assert_eq!(s.check(SignaturePolicy::IfPresent, &secure).unwrap(), None);
    let e = s.check(SignaturePolicy::Required, &secure).unwrap_err();
    assert!(matches!(e, SignatureRefusal::Missing { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("signatures/{A}.sig does not exist")),
        "{e}"
    );
    assert!(e.to_string().contains("fsverity sign"), "{e}");
    // Signed by the trusted key: named in both policies that look.
    s.sign(&pair);
    let id = s
        .check(SignaturePolicy::Required, &secure)
        .unwrap()
        .unwrap();
    assert_eq!(
        s.check(SignaturePolicy::IfPresent, &secure).unwrap(),
        Some(id)
    );
    assert_eq!(s.check(SignaturePolicy::Off, &secure).unwrap(), None);
    // `?` is refused under required; under if-present its signature is
    // not looked at (no signer measured for a tree nothing enforces).
    let insecure = format!("composefs=?{A}");
    let e = s.check(SignaturePolicy::Required, &insecure).unwrap_err();
    assert!(matches!(e, SignatureRefusal::Insecure { .. }), "{e}");
    assert_eq!(
        s.check(SignaturePolicy::IfPresent, &insecure).unwrap(),
        None
    );
    // Signed by a key the initrd does not have: refused by both.
    let stranger = s.keypair("stranger", false);
    s.sign(&stranger);
    for policy in [SignaturePolicy::Required, SignaturePolicy::IfPresent] {
        let e = s.check(policy, &secure).unwrap_err();
        assert!(matches!(e, SignatureRefusal::Invalid { .. }), "{e}");
        assert!(e.to_string().contains("no trusted key verifies it"), "{e}");
    }
    assert_eq!(s.check(SignaturePolicy::Off, &secure).unwrap(), None);
}

#[test]
fn the_signature_file_is_opened_as_the_disks() {
    let s = Setup::new();
    s.keypair("good", true);
    let secure = format!("composefs={A}");
    // A symlink, even to a good file: refused, not followed.
    fs::write(s.p("elsewhere.sig"), b"x").unwrap();
    symlink(s.p("elsewhere.sig"), s.sig()).unwrap();
    let e = s.check(SignaturePolicy::IfPresent, &secure).unwrap_err();
    assert!(matches!(e, SignatureRefusal::Read { .. }), "{e}");
    assert!(e.to_string().contains("symlink"), "{e}");
    fs::remove_file(s.sig()).unwrap();
    // A FIFO is never opened for reading (it would block).
    Command::new("mkfifo").arg(s.sig()).status().unwrap();
    let e = s.check(SignaturePolicy::Required, &secure).unwrap_err();
    assert!(e.to_string().contains("FIFO"), "{e}");
    fs::remove_file(s.sig()).unwrap();
    // Several MiB: refused by its size, sparse so nothing is read.
    let f = fs::File::create(s.sig()).unwrap();
    f.set_len(8 << 20).unwrap();
    let e = s.check(SignaturePolicy::Required, &secure).unwrap_err();
    assert!(
        e.to_string().contains("8388608 bytes, more than the 65536"),
        "{e}"
    );
    fs::remove_file(s.sig()).unwrap();
    // signatures/ itself a symlink.
    fs::remove_dir(s.p("sysroot/composefs/signatures")).unwrap();
    fs::create_dir(s.p("real-sigs")).unwrap();
    symlink(s.p("real-sigs"), s.p("sysroot/composefs/signatures")).unwrap();
    let e = s.check(SignaturePolicy::IfPresent, &secure).unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
}

#[test]
fn required_without_keys_and_a_broken_key_file_are_refused_up_front() {
    let s = Setup::new();
    let e = Trust::load(SignaturePolicy::Required, &s.keys()).unwrap_err();
    assert!(matches!(e, SignatureRefusal::NoKeys { .. }), "{e}");
    assert!(Trust::load(SignaturePolicy::IfPresent, &s.keys()).is_ok());
    assert!(Trust::load(SignaturePolicy::Required, Path::new("/nonexistent/keys")).is_err());
    fs::write(
        s.keys().join("broken.pem"),
        "-----BEGIN CERTIFICATE-----\n@@\n",
    )
    .unwrap();
    let e = Trust::load(SignaturePolicy::IfPresent, &s.keys()).unwrap_err();
    assert!(e.to_string().contains("broken.pem"), "{e}");
    // Off does not even read the directory.
    assert!(Trust::load(SignaturePolicy::Off, &s.keys()).is_ok());
}

/// `veriroot check --keys`: each state of the signature on one line, with
/// the key or the fix.
#[test]
fn check_reports_the_signature_state() {
    let s = Setup::new();
    let repo = s.p("sysroot/composefs");
    fs::create_dir_all(repo.join("objects/12")).unwrap();
    fs::create_dir_all(repo.join("images")).unwrap();
    fs::write(
        repo.join("meta.json"),
        r#"{"version":1,"algorithm":"fsverity-sha256-12"}"#,
    )
    .unwrap();
    fs::write(repo.join("objects/12/3456"), b"x").unwrap();
    symlink("../objects/12/3456", repo.join("images").join(A)).unwrap();
    let check = |keys: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_veriroot"))
            .arg("check")
            .arg("--sysroot")
            .arg(s.p("sysroot"))
            .args(["--cmdline", &format!("composefs=?{A}")])
            .arg("--keys")
            .arg(keys)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines()
            .find(|l| l.contains(".sig"))
            .unwrap_or_else(|| panic!("no signature line in:\n{text}"))
            .to_owned()
    };
    let pair = s.keypair("good", true);
    let line = check(&s.keys());
    assert!(
        line.starts_with("ok   ") && line.contains(".sig absent"),
        "{line}"
    );
    assert!(line.contains("fsverity sign IMAGE"), "{line}");
    s.sign(&pair);
    let id = Trust::load(SignaturePolicy::Required, &s.keys())
        .unwrap()
        .keys[0]
        .id;
    let line = check(&s.keys());
    assert!(
        line.starts_with("ok   ")
            && line.contains(&format!(
                "valid, signed by trusted key sha256:{id} (ECDSA P-256"
            )),
        "{line}"
    );
    let line = check(&s.p("nokeys"));
    assert!(
        line.starts_with("FAIL ") && line.contains("give --keys DIR"),
        "{line}"
    );
    let stranger = s.keypair("stranger", false);
    s.sign(&stranger);
    let line = check(&s.keys());
    assert!(
        line.starts_with("FAIL ")
            && line.contains("no trusted key verifies it")
            && line.contains("would be refused"),
        "{line}"
    );
}
