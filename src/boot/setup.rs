//! The boot path shared by both initrd modes: the image the command line
//! names is verified, staged beside /sysroot, measured, and only then moved
//! onto /sysroot (`verify_and_mount`). The callers (`pid1`, `setup_root`)
//! cap the PCRs when it fails.

use std::fmt;
use std::time::{Duration, Instant};

use crate::boot::assemble::{
    self, AssembleError, Assembled, ExtensionSource, Layout, MountModes, Source,
};
use crate::boot::cmdline::{Cmdline, ImageRef, MalformedArg};
use crate::boot::config::Candidates;
use crate::boot::config::SignaturePolicy;
use crate::boot::repository::{self, RepoError, Repository};
use crate::boot::signatures::{SignatureRefusal, Signed, Trust};
use crate::boot::sysext_images::{self, SysextImageError, NAMED_BY_IMAGE, NAMED_BY_KARG};
use crate::fsverity::digest::Digest;
use crate::measure::events;
use crate::measure::{MeasureError, Measurer};
use crate::sysext::rules::MergedExtension;

#[derive(Debug)]
pub enum SetupError {
    Cmdline(MalformedArg),
    NoImageRef,
    Repository(RepoError),
    Assemble(AssembleError),
    Measure(MeasureError),
    /// An extension image named on the command line failed the root's check.
    Sysext(SysextImageError),
    /// `[trust] signatures` refused the image.
    Signature(SignatureRefusal),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Cmdline(e) => e.fmt(f),
            SetupError::NoImageRef => f.write_str(
                "the kernel command line names no composefs image (composefs=<digest> or \
                 composefs.digest=v1-sha256-12:<digest>): add one to the boot entry",
            ),
            SetupError::Repository(e) => e.fmt(f),
            SetupError::Assemble(e) => write!(f, "mounting the verified root: {e}"),
            SetupError::Measure(e) => e.fmt(f),
            SetupError::Sysext(e) => e.fmt(f),
            SetupError::Signature(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SetupError::Cmdline(e) => Some(e),
            SetupError::NoImageRef => None,
            SetupError::Repository(e) => Some(e),
            SetupError::Assemble(e) => Some(e),
            SetupError::Measure(e) => Some(e),
            SetupError::Sysext(e) => Some(e),
            SetupError::Signature(e) => Some(e),
        }
    }
}

/// What was booted, for the log.
#[derive(Debug)]
pub struct Booted {
    pub image_ref: ImageRef,
    pub assembled: Assembled,
    pub timings: Timings,
}

/// Wall time of each stage, from the program's start to the hand-off.
/// `setup_root` fills verify, mount and extend; the caller adds the rest.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timings {
    /// Configuration and command line read and parsed.
    pub parse: Duration,
    /// Repository opened, image fs-verity digest measured and compared.
    pub verify: Duration,
    /// EROFS, overlay and state mounts staged, and the final move.
    pub mount: Duration,
    /// TPM found and opened (none when there is no TPM).
    pub tpm_open: Duration,
    /// PCR extends and measurement-log records.
    pub extend: Duration,
    /// From the start of the program to the hand-off.
    pub total: Duration,
    /// The process's peak resident memory at the hand-off (`VmHWM`), KiB.
    pub peak_kib: Option<u64>,
}

impl Timings {
    /// Adds the stages before `setup_root` and the total since `started`,
    /// and logs the line.
    pub fn log_final(self, parse: Duration, tpm_open: Duration, started: Instant) {
        let all = Timings {
            parse,
            tpm_open,
            total: started.elapsed(),
            peak_kib: std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| peak_kib(&s)),
            ..self
        };
        log::info!("timings: {all}");
    }
}

/// `VmHWM` of a `/proc/self/status` text, in KiB.
fn peak_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

impl fmt::Display for Timings {
    /// One line, stable for the harness and benches/boot.sh to parse.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        // Integer arithmetic: float formatting would add ~20 KB to the binary.
        let ms = |d: Duration| {
            let tenths = (d.as_micros() + 50) / 100;
            format!("{}.{}", tenths / 10, tenths % 10)
        };
        write!(
            f,
            "parse {} ms, verify {} ms, mount {} ms, tpm {} ms \
             (open {}, extend {}), total {} ms",
            ms(self.parse),
            ms(self.verify),
            ms(self.mount),
            ms(self.tpm_open + self.extend),
            ms(self.tpm_open),
            ms(self.extend),
            ms(self.total)
        )?;
        match self.peak_kib {
            Some(kib) => write!(f, ", peak memory {kib} KiB"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SetupOptions {
    pub layout: Layout,
    pub mounts: MountModes,
    /// Use a loop device even where the kernel takes files (tests the fallback).
    pub force_loop: bool,
    /// System extensions from `veriroot.sysext=`, lowest first.
    pub sysexts: Vec<Digest>,
    /// `[trust] signatures`, and where the trusted keys are.
    pub signatures: SignaturePolicy,
    pub keys: std::path::PathBuf,
}

/// The images that may boot, or why the command line is unusable. Under
/// `Candidates::First` that is the first `composefs=` alone: an argument
/// appended after a UKI's signed command line (SMBIOS, add-ons) must not
/// choose an older image by the first one going missing.
pub fn image_refs(cmdline: &Cmdline, candidates: Candidates) -> Result<Vec<ImageRef>, SetupError> {
    let mut refs = cmdline.image_refs().map_err(SetupError::Cmdline)?;
    if refs.is_empty() {
        return Err(SetupError::NoImageRef);
    }
    if candidates == Candidates::First {
        let later = refs.split_off(1);
        for ignored in later.iter().filter(|r| r.digest != refs[0].digest) {
            log::warn!(
                "ignoring '{}': only the first composefs argument ('{}') counts; set \
                 [boot] candidates = \"ordered\" to try them in order",
                ignored.source,
                refs[0].source
            );
        }
    }
    Ok(refs)
}

/// The system extensions the command line names, lowest first.
pub fn sysexts(cmdline: &Cmdline) -> Result<Vec<Digest>, SetupError> {
    cmdline.sysext_digests().map_err(SetupError::Cmdline)
}

/// Verifies the image the command line names, mounts it in the staging
/// area, measures it, and only then makes it /sysroot. The caller caps
/// the PCR if this fails.
pub fn verify_and_mount(
    refs: &[ImageRef],
    opts: &SetupOptions,
    measurer: &mut Measurer,
) -> Result<Booted, SetupError> {
    let start = Instant::now();
    let trust = Trust::load(opts.signatures, &opts.keys).map_err(SetupError::Signature)?;
    let repo = Repository::open_on_disk(&opts.layout.sysroot).map_err(SetupError::Repository)?;
    let image = repository::select_image(&repo, refs).map_err(SetupError::Repository)?;
    // Before anything is mounted: an unsigned image is never handed to EROFS.
    let signer = trust
        .check(&repo, &image.image_ref, Signed::Image)
        .map_err(SetupError::Signature)?;
    if image.image_ref.insecure {
        log::warn!(
            "INSECURE BOOT requested by '{}': {} is mounted without fs-verity enforcement \
             (image fs-verity: {}); file contents are NOT verified",
            image.image_ref.source,
            image.path.display(),
            match &image.measured {
                Ok(d) => d.to_string(),
                Err(e) => e.to_string(),
            }
        );
    } else {
        log::info!(
            "verified {} = {}",
            image.path.display(),
            image.image_ref.digest
        );
    }
    let objects = repo.objects().map_err(SetupError::Repository)?;
    let sysext_files = sysext_images::open_verified(
        &repo,
        &image.image_ref,
        &trust,
        &opts.sysexts,
        NAMED_BY_KARG,
    )
    .map_err(SetupError::Sysext)?;
    let extensions: Vec<ExtensionSource<'_>> = sysext_files
        .iter()
        .map(|(image, digest)| ExtensionSource { image, digest })
        .collect();
    let verify = start.elapsed();

    let digest_hex = image.image_ref.digest.to_hex();
    let source = Source {
        image: &image.file,
        image_path: &image.path,
        objects: &objects,
        digest_hex: &digest_hex,
        require_verity: !image.image_ref.insecure,
        force_loop: opts.force_loop,
        extensions: &extensions,
        open_listed: &|digest: &Digest| {
            sysext_images::open_verified(
                &repo,
                &image.image_ref,
                &trust,
                std::slice::from_ref(digest),
                NAMED_BY_IMAGE,
            )
            .map(|mut found| found.remove(0).0)
        },
    };
    let staged =
        assemble::stage(&source, opts.mounts, &opts.layout).map_err(SetupError::Assemble)?;
    let staged_at = start.elapsed();
    let signer_id = signer.as_ref().map(|s| &s.id);
    let events = events::success_events(measurer.pcr(), &image.image_ref, signer_id, opts.mounts)
        .into_iter()
        .chain(events::sysext_events(&staged.assembled.extensions));
    for event in events {
        measurer.measure(&event).map_err(SetupError::Measure)?;
    }
    let measure = start.elapsed() - staged_at;
    let assembled = staged.commit().map_err(SetupError::Assemble)?;
    let timings = Timings {
        verify,
        mount: start.elapsed() - verify - measure,
        extend: measure,
        ..Timings::default()
    };
    Ok(Booted {
        image_ref: image.image_ref,
        assembled,
        timings,
    })
}

/// The merged extensions for the "mounted" log line, lowest first; empty
/// without any (one line, not one per extension: /dev/kmsg rate-limits).
pub fn describe_extensions(extensions: &[MergedExtension]) -> String {
    if extensions.is_empty() {
        return String::new();
    }
    let list: Vec<String> = extensions
        .iter()
        .map(|e| format!("'{}' ({})", e.name, e.digest))
        .collect();
    format!(
        "; system extensions merged, lowest first: {}",
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn the_timings_line_ends_with_the_peak_memory() {
        let status = "Name:\tveriroot\nVmPeak:\t  9000 kB\nVmHWM:\t    2312 kB\n";
        assert_eq!(peak_kib(status), Some(2312));
        assert_eq!(peak_kib("VmHWM: lots\n"), None);
        let t = Timings {
            total: Duration::from_micros(12_345),
            peak_kib: Some(2312),
            ..Timings::default()
        };
        assert_eq!(
            t.to_string(),
            "parse 0.0 ms, verify 0.0 ms, mount 0.0 ms, tpm 0.0 ms (open 0.0, extend 0.0), \
             total 12.3 ms, peak memory 2312 KiB"
        );
    }

    #[test]
    fn an_appended_composefs_argument_chooses_nothing() {
        // A UKI's own .cmdline first, then what systemd-stub appended.
        let cmdline = Cmdline::parse(&format!("composefs={A} ro composefs={B}"));
        let refs = image_refs(&cmdline, Candidates::First).unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].digest.to_hex(), A);
        // Opted in (a command line signed as a whole): in order.
        let refs = image_refs(&cmdline, Candidates::Ordered).unwrap();
        let order: Vec<String> = refs.iter().map(|r| r.digest.to_hex()).collect();
        assert_eq!(order, [A, B]);
        assert!(matches!(
            image_refs(&Cmdline::parse("ro"), Candidates::First),
            Err(SetupError::NoImageRef)
        ));
    }

    #[test]
    fn timings_line_sums_the_tpm_stage() {
        let t = Timings {
            parse: Duration::from_micros(250),
            verify: Duration::from_micros(26_140),
            mount: Duration::from_millis(90),
            tpm_open: Duration::from_millis(3),
            extend: Duration::from_micros(41_960),
            total: Duration::from_millis(162),
            peak_kib: None,
        };
        assert_eq!(
            t.to_string(),
            "parse 0.3 ms, verify 26.1 ms, mount 90.0 ms, tpm 45.0 ms (open 3.0, extend 42.0), \
             total 162.0 ms"
        );
    }
}
