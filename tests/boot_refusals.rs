//! The systemd-initrd boot path's refusals, end to end short of the
//! kernel's mounts: a real TPM (swtpm), the real measurement-log writer,
//! every host path under a temporary directory (`HostPaths::under`). Each
//! refusal must leave exactly the capped PCRs and log records that
//! `veriroot predict --failure` promises, and mount nothing.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::SwtpmProcess;
use veriroot::boot::config::{Config, TpmPolicy};
use veriroot::boot::paths::HostPaths;
use veriroot::boot::setup::SetupError;
use veriroot::boot::setup_root::{self, Args, SetupRootError};
use veriroot::measure::eventlog::{self, Content};
use veriroot::measure::events::{self, FAILURE_EVENT};
use veriroot::measure::{HashAlg, Measurer};

const HEX: &str = "89c1c730fcd8d63a4a8030ca959388a4965133415878e406f69909062dcb6ae0";

struct Boot {
    host: tempfile::TempDir,
    paths: HostPaths,
    swtpm: SwtpmProcess,
}

impl Boot {
    fn new() -> Boot {
        let host = tempfile::tempdir().unwrap();
        let paths = HostPaths::under(host.path());
        std::fs::create_dir_all(paths.measure_log.parent().unwrap()).unwrap();
        Boot {
            host,
            paths,
            swtpm: SwtpmProcess::start(),
        }
    }

    /// `veriroot setup-root` with `cmdline`, the real root at `sysroot`.
    fn setup_root(&self, config: &Config, sysroot: &Path, cmdline: &str) -> SetupRootError {
        let mut measurer = Measurer::with_tpm(
            self.swtpm.tpm(),
            config.tpm,
            config.pcr,
            self.paths.measure_log.clone(),
        )
        .unwrap();
        let args = Args {
            sysroot: sysroot.to_owned(),
            cmdline: Some(cmdline.to_owned()),
            config: None,
        };
        setup_root::run_with(
            &args,
            config,
            &self.paths,
            &mut measurer,
            Instant::now(),
            Duration::ZERO,
        )
        .unwrap_err()
    }

    /// PCR `pcr` in every bank, read back from the TPM.
    fn pcr(&self, pcr: u32) -> Vec<(HashAlg, Vec<u8>)> {
        let mut tpm = self.swtpm.tpm();
        HashAlg::ALL
            .iter()
            .map(|&bank| (bank, tpm.read(pcr, bank).unwrap()))
            .collect()
    }

    /// The measurement log's records as (PCR, string).
    fn log(&self) -> Vec<(u32, String)> {
        let bytes = std::fs::read(&self.paths.measure_log).unwrap_or_default();
        eventlog::parse(&bytes)
            .unwrap()
            .into_iter()
            .map(|r| match r.content {
                Content::Systemd(c) => (r.pcr, c.string.unwrap_or_default()),
                Content::Other { .. } => (r.pcr, String::new()),
            })
            .collect()
    }

    /// The refusal capped `main` and PCR 13, every bank, with one log
    /// record each: what `veriroot predict --failure` promises.
    fn assert_capped(&self, main: u32) {
        assert_eq!(self.pcr(main), capped(main));
        assert_eq!(self.pcr(13), capped(13));
        assert_eq!(
            self.log(),
            [
                (main, FAILURE_EVENT.to_owned()),
                (13, FAILURE_EVENT.to_owned())
            ]
        );
    }

    /// Nothing below the test's host directory or `sysroot` is a mount.
    fn assert_nothing_mounted(&self, sysroot: &Path) {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        for dir in [self.host.path(), sysroot] {
            assert!(
                !mounts.contains(dir.to_str().unwrap()),
                "{} is mounted:\n{mounts}",
                dir.display()
            );
        }
        assert!(!self.paths.run_dir.exists(), "staging area created");
    }
}

/// The value `predict --failure` gives for `pcr`, every bank.
fn capped(pcr: u32) -> Vec<(HashAlg, Vec<u8>)> {
    let values = events::predict(&[events::failure_event(pcr)], &HashAlg::ALL);
    HashAlg::ALL
        .iter()
        .map(|bank| (*bank, values[bank][&pcr].clone()))
        .collect()
}

fn reset() -> Vec<(HashAlg, Vec<u8>)> {
    HashAlg::ALL
        .iter()
        .map(|&bank| (bank, vec![0; bank.digest_len()]))
        .collect()
}

#[test]
fn no_composefs_argument_caps_pcr_15_and_logs_the_failure() {
    let boot = Boot::new();
    let sysroot = tempfile::tempdir().unwrap();
    let e = boot.setup_root(&Config::default(), sysroot.path(), "quiet ro");
    assert!(
        matches!(e, SetupRootError::Setup(SetupError::NoImageRef)),
        "{e}"
    );
    // Every PCR veriroot could have extended, whatever the refusal.
    boot.assert_capped(15);
    boot.assert_nothing_mounted(sysroot.path());
}

#[test]
fn a_malformed_sysext_argument_caps_pcr_13_too() {
    let boot = Boot::new();
    let sysroot = tempfile::tempdir().unwrap();
    let e = boot.setup_root(
        &Config::default(),
        sysroot.path(),
        &format!("composefs={HEX} veriroot.sysext=zz"),
    );
    assert!(e.to_string().contains("veriroot.sysext=zz"), "{e}");
    // The cause is kept, typed, down to the hex digit that is wrong.
    let mut chain = vec![e.to_string()];
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        chain.push(c.to_string());
        cause = c.source();
    }
    assert_eq!(
        chain.last().map(String::as_str),
        Some("2 hex digits, expected 64 (sha256) or 128 (sha512)"),
        "{chain:#?}"
    );
    boot.assert_capped(15);
    boot.assert_nothing_mounted(sysroot.path());
}

#[test]
fn a_missing_repository_caps_the_configured_pcr_only() {
    let boot = Boot::new();
    let sysroot = tempfile::tempdir().unwrap();
    let config = Config {
        pcr: 14,
        tpm: TpmPolicy::Required,
        ..Config::default()
    };
    let e = boot.setup_root(&config, sysroot.path(), &format!("composefs={HEX}"));
    let composefs = sysroot.path().join("composefs");
    assert!(
        e.to_string().contains(composefs.to_str().unwrap()),
        "the message names the repository: {e}"
    );
    boot.assert_capped(14);
    assert_eq!(boot.pcr(15), reset(), "PCR 15 is not veriroot's here");
    boot.assert_nothing_mounted(sysroot.path());
}

#[test]
fn an_image_missing_from_the_repository_is_refused_before_any_mount() {
    let boot = Boot::new();
    let sysroot = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(sysroot.path().join("composefs/images")).unwrap();
    std::fs::create_dir_all(sysroot.path().join("composefs/objects")).unwrap();
    std::fs::write(
        sysroot.path().join("composefs/meta.json"),
        r#"{"version":1,"algorithm":"fsverity-sha256-12"}"#,
    )
    .unwrap();
    // Insecure: meta.json needs no fs-verity, so the lookup itself refuses.
    let e = boot.setup_root(
        &Config::default(),
        sysroot.path(),
        &format!("composefs=?{HEX}"),
    );
    assert!(
        e.to_string().contains(&format!("images/{HEX}")),
        "the message names the image tried: {e}"
    );
    assert_eq!(boot.pcr(15), capped(15));
    boot.assert_nothing_mounted(sysroot.path());
}

#[test]
fn a_tpm_that_dies_refuses_the_boot_under_auto() {
    let boot = Boot::new();
    let mut measurer = Measurer::with_tpm(
        boot.swtpm.tpm(),
        TpmPolicy::Auto,
        15,
        boot.paths.measure_log.clone(),
    )
    .unwrap();
    drop(boot.swtpm);
    let e = measurer.measure(&events::failure_event(15)).unwrap_err();
    assert!(e.to_string().starts_with("measuring into the TPM: "), "{e}");
}

#[test]
fn signature_refusals_cap_the_pcrs_and_mount_nothing() {
    use veriroot::boot::config::SignaturePolicy;
    let sysroot = tempfile::tempdir().unwrap();
    let repo = sysroot.path().join("composefs");
    std::fs::create_dir_all(repo.join("objects/12")).unwrap();
    std::fs::create_dir_all(repo.join("images")).unwrap();
    std::fs::create_dir_all(repo.join("signatures")).unwrap();
    std::fs::write(
        repo.join("meta.json"),
        r#"{"version":1,"algorithm":"fsverity-sha256-12"}"#,
    )
    .unwrap();
    std::fs::write(repo.join("objects/12/3456"), b"not an erofs image").unwrap();
    std::os::unix::fs::symlink("../objects/12/3456", repo.join("images").join(HEX)).unwrap();
    // `?` under required: refused before the signature is even read.
    let boot = Boot::new();
    std::fs::create_dir_all(&boot.paths.keys).unwrap();
    std::fs::write(boot.paths.keys.join("none.txt"), "no key").unwrap();
    let required = Config {
        signatures: SignaturePolicy::Required,
        ..Config::default()
    };
    let e = boot.setup_root(&required, sysroot.path(), &format!("composefs=?{HEX}"));
    // No *.pem/*.der in the keys directory: refused naming it.
    assert!(e.to_string().contains("holds no *.pem or *.der key"), "{e}");
    boot.assert_capped(15);
    boot.assert_nothing_mounted(sysroot.path());
    // A signature is checked after the image's fs-verity digest, which
    // this host cannot compute, and an insecure `?` image's signature is
    // not looked at: a bad signature file's refusal is tests/signatures.rs'
    // (Trust::check) and the signed-corrupt scenario's (the whole boot).
}
