//! `veriroot check`: everything the boot path does short of mounting,
//! reported in plain words with the fix for each problem.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rustix::io::Errno;

use crate::boot::cmdline::{Cmdline, ImageRef, ReadError};
use crate::boot::config::Candidates;
use crate::boot::repository::{self, Repository};
use crate::boot::setup::{self, SetupError};
use crate::boot::signatures::Trust;
use crate::boot::sysext_images;
use crate::host::luks::{self, LuksError, Tpm2Token};
use crate::kernel::features::{self, Support};
use crate::kernel::verity_ioctl;
use crate::signature::{self, SignatureError, TrustedKey};

/// One line of the report.
pub struct Finding {
    pub ok: bool,
    /// Not a reason the boot would fail, but a weakness to fix (`WARN`).
    pub warn: bool,
    pub text: String,
}

#[derive(Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// The image that would boot is named with `?`: not a verified boot.
    pub insecure: bool,
}

impl Report {
    fn ok(&mut self, text: impl Into<String>) {
        self.findings.push(Finding {
            ok: true,
            warn: false,
            text: text.into(),
        });
    }

    fn fail(&mut self, text: impl Into<String>) {
        self.findings.push(Finding {
            ok: false,
            warn: false,
            text: text.into(),
        });
    }

    fn warn(&mut self, text: impl Into<String>) {
        self.findings.push(Finding {
            ok: true,
            warn: true,
            text: text.into(),
        });
    }

    /// A verified boot would succeed.
    pub fn passed(&self) -> bool {
        !self.insecure && self.findings.iter().all(|f| f.ok)
    }

    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        for f in &self.findings {
            let mark = match (f.ok, f.warn) {
                (false, _) => "FAIL",
                (true, true) => "WARN",
                (true, false) => "ok  ",
            };
            writeln!(out, "{mark} {}", f.text)?;
        }
        let failed = self.findings.iter().filter(|f| !f.ok).count();
        if failed == 0 && self.insecure {
            writeln!(
                out,
                "verdict: this system would boot, but INSECURELY (composefs=?...): \
                 file contents would not be verified"
            )
        } else if failed == 0 {
            writeln!(out, "verdict: this system would boot the verified image")
        } else {
            writeln!(
                out,
                "verdict: this system would NOT boot verified ({failed} problem(s) above)"
            )
        }
    }
}

#[derive(Debug)]
pub enum CheckError {
    Cmdline(ReadError),
    Luks(LuksError),
    Stdout(std::io::Error),
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Cmdline(e) => e.fmt(f),
            CheckError::Luks(e) => e.fmt(f),
            CheckError::Stdout(e) => write!(f, "writing the report to stdout: {e}"),
        }
    }
}

impl std::error::Error for CheckError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckError::Cmdline(e) => Some(e),
            CheckError::Luks(e) => Some(e),
            CheckError::Stdout(e) => Some(e),
        }
    }
}

/// `veriroot check`: the report on stdout; exit 0 only if a verified boot
/// would succeed. `cmdline`: the text to check, else `cmdline_path`'s.
pub fn run(
    sysroot: &Path,
    cmdline: Option<String>,
    cmdline_path: &Path,
    keys: &Path,
    luks: &[PathBuf],
) -> Result<ExitCode, CheckError> {
    let cmdline = match cmdline {
        Some(text) => Cmdline::parse(&text),
        None => Cmdline::read(cmdline_path).map_err(CheckError::Cmdline)?,
    };
    let mut report = check(sysroot, &cmdline, keys);
    for dev in luks {
        let tokens = luks::read_tokens(dev).map_err(CheckError::Luks)?;
        check_tokens(&mut report, dev, &tokens);
    }
    report
        .print(&mut std::io::stdout())
        .map_err(CheckError::Stdout)?;
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--luks DEV`: each TPM2 keyslot's policy. One that binds PCR 15 but
/// neither PCR 9 nor PCR 11 (nor a pcrlock policy) unseals for any initrd
/// that replays veriroot's events: a warning, since the boot itself is
/// not affected (docs/sealing.md). veriroot's PCR is 15 here whatever
/// `[tpm] pcr` the initrd's configuration names: that is not on the host.
fn check_tokens(report: &mut Report, dev: &Path, tokens: &[Tpm2Token]) {
    let dev = dev.display();
    if tokens.is_empty() {
        report.warn(format!(
            "{dev}: no systemd-tpm2 token: nothing sealed to the TPM there"
        ));
    }
    for t in tokens {
        let what = format!(
            "{dev}: TPM2 token {} (keyslot {}) binds PCRs {:?}{}{}",
            crate::text::escape(&t.id),
            t.keyslots.join(","),
            t.pcrs,
            if t.pubkey_pcrs.is_empty() {
                String::new()
            } else {
                format!(", signed {:?}", t.pubkey_pcrs)
            },
            if t.pcrlock { ", a pcrlock policy" } else { "" },
        );
        if t.binds_alone(15) {
            report.warn(format!(
                "{what}: PCR 15 without PCR 9 or 11, so an initrd without veriroot that \
                 extends veriroot's events unseals it; re-enroll with \
                 --tpm2-pcrs=\"$(veriroot predict --digest HEX --tpm2-pcrs)\" and wipe this keyslot"
            ));
        } else {
            report.ok(what);
        }
    }
}

/// Runs every check against `sysroot` (the real root, as it will be
/// mounted at /sysroot) and the command line the next boot will use.
/// `keys`: the trusted keys signatures are checked with.
pub fn check(sysroot: &Path, cmdline: &Cmdline, keys: &Path) -> Report {
    let mut report = Report::default();
    // As the boot decides with the default [boot] candidates = "first".
    let refs = match setup::image_refs(cmdline, Candidates::First) {
        Ok(r) => r,
        Err(SetupError::NoImageRef) => {
            report.fail("kernel command line: no composefs=<digest> or composefs.digest=...; add one to the boot entry");
            return report;
        }
        Err(e) => {
            report.fail(format!("kernel command line: {e}"));
            return report;
        }
    };
    if let Ok(all) = cmdline.image_refs() {
        for ignored in all.iter().skip(1).filter(|r| r.digest != refs[0].digest) {
            report.ok(format!(
                "kernel command line: '{}' is ignored: only the first composefs argument \
                 counts (unless the initrd's veriroot.conf has [boot] candidates = \"ordered\")",
                ignored.source
            ));
        }
    }
    for r in &refs {
        report.ok(format!(
            "kernel command line: '{}' ({} {})",
            r.source,
            if r.insecure {
                "INSECURE, fs-verity not enforced,"
            } else {
                "secure,"
            },
            r.digest.algorithm()
        ));
    }
    let repo = match Repository::open_on_disk(sysroot) {
        Ok(r) => r,
        Err(e) => {
            report.fail(e.to_string());
            return report;
        }
    };
    report.ok(format!("repository {} found", repo.path().display()));
    let Some((image, image_ref)) = check_image(&mut report, &repo, &refs) else {
        return report;
    };
    let trusted = match signature::keys::load_dir(keys) {
        Ok(k) => Some(k),
        Err(e) => {
            report.fail(format!("{e}; fix or remove it"));
            None
        }
    };
    if let Some(trusted) = &trusted {
        check_signature(&mut report, &repo, &image_ref, trusted, keys);
    }
    check_sysexts(
        &mut report,
        &repo,
        &image_ref,
        cmdline,
        trusted.as_deref(),
        keys,
    );
    check_kernel(&mut report, image.as_ref());
    report
}

/// The extension images, checked as the boot checks them. Their release
/// rules need them mounted, which `check` does not do: said, not hidden.
fn check_sysexts(
    report: &mut Report,
    repo: &Repository,
    root: &ImageRef,
    cmdline: &Cmdline,
    trusted: Option<&[TrustedKey]>,
    keys: &Path,
) {
    let digests = match cmdline.sysext_digests() {
        Ok(d) if d.is_empty() => return,
        Ok(d) => d,
        Err(e) => {
            report.fail(format!("kernel command line: {e}"));
            return;
        }
    };
    let off = Trust::off();
    match sysext_images::open_verified(repo, root, &off, &digests, sysext_images::NAMED_BY_KARG) {
        Ok(found) => {
            for (i, (_, digest)) in found.iter().enumerate() {
                report.ok(format!(
                    "system extension {}: {}: fs-verity {digest} matches veriroot.sysext=",
                    i + 1,
                    repo.image_path(digest).display()
                ));
                if let Some(trusted) = trusted {
                    let r = ImageRef {
                        digest: digest.clone(),
                        insecure: root.insecure,
                        source: format!("veriroot.sysext={}", digest.to_hex()),
                    };
                    check_signature(report, repo, &r, trusted, keys);
                }
            }
            report.ok(
                "system extensions: their release rules (ID=, SYSEXT_LEVEL=/VERSION_ID=, \
                 ARCHITECTURE=, only /usr and /opt) and extensions listed inside the root \
                 image are checked at boot, when the images are mounted; not here",
            );
        }
        Err(e) => report.fail(e.to_string()),
    }
}

/// The image's signature: present, valid, by which trusted key. Which
/// `[trust] signatures` policy the initrd applies is not known here (the
/// configuration is the initrd's), so an absent signature is reported,
/// not failed.
fn check_signature(
    report: &mut Report,
    repo: &Repository,
    image_ref: &ImageRef,
    trusted: &[TrustedKey],
    keys: &Path,
) {
    let path = repo.signature_path(&image_ref.digest);
    match repo.read_signature(&image_ref.digest) {
        Ok(None) => report.ok(format!(
            "{} absent: the image boots only with [trust] signatures = \"off\" or \"if-present\" (sign it with `fsverity sign IMAGE {} --key=KEY.pem --cert=CERT.pem` for \"required\")",
            path.display(),
            path.display()
        )),
        Err(e) => report.fail(format!("{e}; a signature must be a regular file, no symlink")),
        Ok(Some(bytes)) => match signature::verify(&bytes, &image_ref.digest, trusted) {
            Ok(key) => report.ok(format!(
                "{}: valid, signed by trusted key sha256:{} ({}, {})",
                path.display(),
                key.id,
                key.key.describe(),
                key.source.display()
            )),
            Err(SignatureError::NoKeys) => report.fail(format!(
                "{}: present, but {} holds no trusted key (*.pem, *.der) to check it with; give --keys DIR with the initrd's keys",
                path.display(),
                keys.display()
            )),
            Err(e) => report.fail(format!(
                "{}: {e}; a boot with [trust] signatures = \"required\" or \"if-present\" would be refused: sign this image's digest with a key in {}, or remove the file",
                path.display(),
                keys.display()
            )),
        },
    }
}

fn check_image(
    report: &mut Report,
    repo: &Repository,
    refs: &[ImageRef],
) -> Option<(Option<File>, ImageRef)> {
    let mut tried = Vec::new();
    for image_ref in refs {
        let (file, path) = match repo.open_image(image_ref) {
            Ok(Some(found)) => found,
            Ok(None) => {
                tried.push(repo.image_path(&image_ref.digest));
                continue;
            }
            Err(e) => {
                report.fail(e.to_string());
                return None;
            }
        };
        for p in tried.drain(..) {
            report.ok(format!("{} absent: trying the next image", p.display()));
        }
        report.insecure = image_ref.insecure;
        match repo.meta() {
            Ok(Some((meta, measured))) => {
                let state = match &measured {
                    Ok(d) => format!("fs-verity {d}"),
                    Err(e) => e.to_string(),
                };
                let text = format!(
                    "{}: version {}, {}, {state}",
                    repo.meta_path().display(),
                    meta.version,
                    meta.algorithm.repository_name()
                );
                match (&measured, image_ref.insecure) {
                    (Err(_), false) => report.fail(format!(
                        "{text}; run `veriroot enable-verity {}`",
                        repo.path().display()
                    )),
                    _ => report.ok(text),
                }
                if let Err(e) = repo.check_algorithm(&meta, image_ref) {
                    report.fail(e.to_string());
                }
            }
            Ok(None) if image_ref.insecure => report.ok(format!(
                "{} absent (accepted in insecure mode)",
                repo.meta_path().display()
            )),
            Ok(None) => report.fail(
                repository::RepoError::MetaMissing {
                    path: repo.meta_path(),
                }
                .to_string(),
            ),
            Err(e) => report.fail(e.to_string()),
        }
        let measured = verity_ioctl::measure(&file);
        let verified = repository::verify_image(&path, image_ref, &measured);
        match &verified {
            Ok(()) => match &measured {
                Ok(d) => report.ok(format!(
                    "{}: fs-verity {d} matches the command line",
                    path.display()
                )),
                Err(e) => report.ok(format!(
                    "{}: {e} (accepted in insecure mode)",
                    path.display()
                )),
            },
            Err(e) => report.fail(e.to_string()),
        }
        if let Err(e) = repo.objects() {
            report.fail(e.to_string());
        }
        // An image that failed verification is never handed to the kernel's
        // EROFS parser, not even to probe it.
        return Some((verified.is_ok().then_some(file), image_ref.clone()));
    }
    report.fail(repository::RepoError::NoImage { tried }.to_string());
    None
}

fn check_kernel(report: &mut Report, image: Option<&File>) {
    let release = crate::kernel::modules::release();
    let f = features::kernel_features();
    let mut line = |what: &str, s: Support, fix: &str| {
        match s {
        Support::Yes => report.ok(format!("kernel {release}: {what}: supported")),
        Support::No => report.fail(format!("kernel {release}: {what}: NOT supported; {fix}")),
        Support::Unknown(e) => report.fail(format!("kernel {release}: {what}: could not probe ({e}); run as root with the overlay and erofs modules loaded")),
    }
    };
    line(
        "overlay verity=require",
        f.overlay_verity,
        "secure boot needs Linux 6.6+",
    );
    line(
        "overlay data-only layers (lowerdir=A::B)",
        f.overlay_data_only,
        "needs Linux 6.5+",
    );
    if f.overlay_append_layers != Support::Yes {
        report.ok(format!("kernel {release}: overlay lowerdir+/datadir+ not available: the lowerdir=A::B form will be used"));
    } else {
        report.ok(format!(
            "kernel {release}: overlay lowerdir+/datadir+: supported"
        ));
    }
    let Some(image) = image else {
        report.ok(format!(
            "kernel {release}: file-backed EROFS: not probed (the image failed verification \
             and is not given to the kernel)"
        ));
        return;
    };
    match features::erofs_file_backed(image) {
        Support::Yes => report.ok(format!("kernel {release}: file-backed EROFS: supported")),
        Support::No => report.ok(format!("kernel {release}: file-backed EROFS not available: a loop device will be used (needs the loop module)")),
        Support::Unknown(e) => report.fail(erofs_probe_failed(&release, e)),
    }
}

/// The report line when the EROFS probe could not mount the verified
/// image: the module is only the likely cause when the kernel lacks the
/// filesystem; EIO is the disk (or a file changed under its digest).
fn erofs_probe_failed(release: &str, errno: Errno) -> String {
    let hint = match errno {
        Errno::IO => {
            "reading the image failed after its fs-verity digest matched: the disk returned \
             EIO, or the file changed under its digest; the boot would be refused"
        }
        Errno::NODEV => "is the erofs module available?",
        _ => "the boot would fail the same way",
    };
    format!("kernel {release}: EROFS: could not mount the image ({errno}); {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eio_from_the_erofs_probe_blames_the_disk_not_the_module() {
        let eio = erofs_probe_failed("6.12", Errno::IO);
        assert!(eio.contains("the disk returned EIO"), "{eio}");
        assert!(!eio.contains("module"), "{eio}");
        let nodev = erofs_probe_failed("6.12", Errno::NODEV);
        assert!(nodev.ends_with("is the erofs module available?"), "{nodev}");
    }
}
