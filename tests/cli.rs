//! The binary's interface: exit codes and messages a user sees.

use std::process::Command;

/// Runs `bin` with `args`: exit code, stdout, stderr.
fn run(bin: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn veriroot(args: &[&str]) -> (i32, String, String) {
    run(env!("CARGO_BIN_EXE_veriroot"), args)
}

#[test]
fn help_documents_every_mode() {
    let (code, out, _) = veriroot(&["--help"]);
    assert_eq!(code, 0);
    for word in [
        "PID 1",
        "setup-root",
        "check",
        "enable-verity",
        "composefs.digest=",
        "veriroot.erofs=loop",
    ] {
        assert!(out.contains(word), "--help lacks {word}");
    }
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let (code, _, err) = veriroot(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown subcommand 'frobnicate'"), "{err}");
}

#[test]
fn check_quotes_a_malformed_argument_and_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let sysroot = tmp.path().to_str().unwrap();
    let (code, out, _) = veriroot(&[
        "check",
        "--sysroot",
        sysroot,
        "--cmdline",
        "root=/dev/vda composefs=xyz",
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL kernel command line: malformed kernel argument 'composefs=xyz'"),
        "{out}"
    );
    assert!(out.contains("would NOT boot verified"), "{out}");
}

#[test]
fn check_without_a_composefs_argument_says_what_to_add() {
    let (code, out, _) = veriroot(&[
        "check",
        "--sysroot",
        "/nonexistent",
        "--cmdline",
        "root=/dev/vda",
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("no composefs=<digest>"), "{out}");
}

#[test]
fn check_without_a_repository_fails_with_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let sysroot = tmp.path().to_str().unwrap();
    let arg = format!("composefs={}", "ab".repeat(32));
    let (code, out, _) = veriroot(&["check", "--sysroot", sysroot, "--cmdline", &arg]);
    assert_eq!(code, 1);
    assert!(out.contains(&format!("{sysroot}/composefs")), "{out}");
}

#[test]
fn setup_root_refuses_before_touching_anything_on_a_bad_cmdline() {
    // Never the host's configuration or TPM: an empty file and a device
    // that does not exist (no TPM: the refusal has nothing to cap).
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("veriroot.conf");
    std::fs::write(&config, "").unwrap();
    let (code, _, err) = veriroot(&[
        "setup-root",
        "--sysroot",
        "/nonexistent",
        "--cmdline",
        "quiet",
        "--config",
        config.to_str().unwrap(),
        "--tpm2-device",
        dir.path().join("tpmrm0").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("refusing to boot: the kernel command line names no composefs image"),
        "{err}"
    );
}

#[test]
fn enable_verity_needs_a_directory() {
    let (code, _, err) = veriroot(&["enable-verity"]);
    assert_eq!(code, 2);
    assert!(err.contains("needs the repository directory"), "{err}");
}

#[test]
fn predict_uki_names_the_file_that_is_not_a_pe_image() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("not-a-uki.efi");
    std::fs::write(&f, b"#!/bin/sh\n").unwrap();
    let (code, _, err) = veriroot(&["predict", "--uki", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains(f.to_str().unwrap()), "{err}");
    assert!(
        err.contains("expected the DOS magic \"MZ\" at offset 0"),
        "{err}"
    );
}

#[test]
fn predict_phase_without_a_uki_is_refused() {
    let hex = "89c1c730fcd8d63a4a8030ca959388a4965133415878e406f69909062dcb6ae0";
    let (code, _, err) = veriroot(&["predict", "--digest", hex, "--phase", "enter-initrd"]);
    assert_eq!(code, 1);
    assert!(err.contains("--phase needs --uki FILE"), "{err}");
}

fn veriroot_initrd(args: &[&str]) -> (i32, String, String) {
    run(env!("CARGO_BIN_EXE_veriroot-initrd"), args)
}

#[test]
fn initrd_build_refuses_host_commands_and_names_the_full_build() {
    for sub in [
        "check",
        "enable-verity",
        "digest",
        "predict",
        "log",
        "status",
    ] {
        let args: &[&str] = match sub {
            "enable-verity" => &["enable-verity", "/nonexistent"],
            "digest" => &["digest", "/nonexistent"],
            "predict" => &["predict", "--failure"],
            _ => &[sub],
        };
        let (code, out, err) = veriroot_initrd(args);
        assert_eq!(code, 1, "{sub}: {err}");
        assert!(out.is_empty(), "{sub}: {out}");
        assert!(
            err.contains(&format!("'{sub}' is not in this build"))
                && err.contains("initrd build")
                && err.contains("/usr/bin/veriroot"),
            "{sub}: {err}"
        );
    }
}

#[test]
fn initrd_build_says_what_it_is() {
    let (code, out, _) = veriroot_initrd(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.contains("(initrd build)"), "{out}");
    let (code, out, _) = veriroot_initrd(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("This is veriroot's initrd build"), "{out}");
    assert!(out.contains("veriroot setup-root"), "{out}");
    // Usage errors are the full build's, exit 2.
    let (code, _, err) = veriroot_initrd(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown subcommand 'frobnicate'"), "{err}");
}
