//! The boot path shared by both initrd modes: command line → verified
//! image → mounted tree at /sysroot.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::assemble::{
    self, AssembleError, Assembled, ExtensionSource, Layout, MountPolicy, Source,
};
use crate::cmdline::{Cmdline, ImageRef, MalformedArg};
use crate::digest::Digest;
use crate::measure::{self, MeasureError, Measurer};
use crate::repository::{self, RepoError, Repository};
use crate::sysext::SYSEXT_PCR;
use crate::verity;

#[derive(Debug)]
pub enum SetupError {
    Cmdline(MalformedArg),
    NoImageRef,
    Repository(RepoError),
    Assemble(AssembleError),
    Measure(MeasureError),
    /// A `veriroot.sysext=` digest in another algorithm than the root's.
    SysextAlgorithm {
        sysext: Digest,
        root: Digest,
    },
    /// A named extension image is not in the repository.
    SysextMissing {
        path: PathBuf,
        named_by: &'static str,
    },
    /// An extension image failed the same check as the root image.
    Sysext(RepoError),
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
            SetupError::SysextAlgorithm { sysext, root } => write!(
                f,
                "veriroot.sysext={} is a {} digest but the root image's is {} ({root}): \
                 extensions live in the root's repository and are named by the same kind \
                 of digest",
                sysext.to_hex(),
                sysext.algorithm(),
                root.algorithm()
            ),
            SetupError::SysextMissing { path, named_by } => write!(
                f,
                "the system extension {} named by {named_by} does not exist: add the image \
                 to the repository or stop naming it there",
                path.display()
            ),
            SetupError::Sysext(e) => write!(f, "system extension: {e}"),
        }
    }
}

impl std::error::Error for SetupError {}

/// What was booted, for the log.
#[derive(Debug)]
pub struct Booted {
    pub image_ref: ImageRef,
    pub image_path: PathBuf,
    pub assembled: Assembled,
    pub policy: MountPolicy,
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
}

impl Timings {
    /// Adds the stages before `setup_root` and the total since `started`,
    /// and logs the line.
    pub fn log_final(self, parse: Duration, tpm_open: Duration, started: Instant) {
        let all = Timings {
            parse,
            tpm_open,
            total: started.elapsed(),
            ..self
        };
        log::info!("timings: {all}");
    }
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
        )
    }
}

#[derive(Debug, Clone)]
pub struct SetupOptions {
    pub layout: Layout,
    pub policy: MountPolicy,
    /// Use a loop device even where the kernel takes files (tests the fallback).
    pub force_loop: bool,
    /// System extensions from `veriroot.sysext=`, lowest first.
    pub sysexts: Vec<Digest>,
}

/// The image references, or why the command line is unusable.
pub fn image_refs(cmdline: &Cmdline) -> Result<Vec<ImageRef>, SetupError> {
    let refs = cmdline.image_refs().map_err(SetupError::Cmdline)?;
    if refs.is_empty() {
        return Err(SetupError::NoImageRef);
    }
    Ok(refs)
}

/// Who named an extension, for messages.
pub const KARG: &str = "veriroot.sysext=";
const LISTED: &str = "the root image's /usr/lib/veriroot/extensions";

/// The system extensions the command line names. When any
/// `veriroot.sysext` is present, a refusal caps their PCR too, so this is
/// asked before anything else can fail.
pub fn sysexts(cmdline: &Cmdline, measurer: &mut Measurer) -> Result<Vec<Digest>, SetupError> {
    if cmdline.names_sysexts() {
        measurer.also_cap(SYSEXT_PCR);
    }
    cmdline.sysext_digests().map_err(SetupError::Cmdline)
}

/// Opens each extension image and checks its fs-verity digest exactly as
/// the root's (missing, no fs-verity or a different digest: refused).
pub fn verify_sysexts(
    repo: &Repository,
    root: &ImageRef,
    digests: &[Digest],
    named_by: &'static str,
) -> Result<Vec<(std::fs::File, Digest)>, SetupError> {
    let mut out = Vec::new();
    for digest in digests {
        if digest.algorithm() != root.digest.algorithm() {
            return Err(SetupError::SysextAlgorithm {
                sysext: digest.clone(),
                root: root.digest.clone(),
            });
        }
        let image_ref = ImageRef {
            digest: digest.clone(),
            insecure: root.insecure,
            source: format!("veriroot.sysext={}", digest.to_hex()),
        };
        let (file, path) = repo
            .open_image(&image_ref)
            .map_err(SetupError::Sysext)?
            .ok_or_else(|| SetupError::SysextMissing {
                path: repo.image_path(digest),
                named_by,
            })?;
        repository::verify_image(&path, &image_ref, &verity::measure(&file))
            .map_err(SetupError::Sysext)?;
        log::info!("verified system extension {} = {digest}", path.display());
        out.push((file, digest.clone()));
    }
    Ok(out)
}

/// Verifies the image the command line names, mounts it in the staging
/// area, measures it, and only then makes it /sysroot. The caller caps
/// the PCR if this fails.
pub fn setup_root(
    refs: &[ImageRef],
    opts: &SetupOptions,
    measurer: &mut Measurer,
) -> Result<Booted, SetupError> {
    let start = Instant::now();
    let repo =
        Repository::open(&opts.layout.sysroot.join("composefs")).map_err(SetupError::Repository)?;
    let image = repository::select_image(&repo, refs).map_err(SetupError::Repository)?;
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
    let sysext_files = verify_sysexts(&repo, &image.image_ref, &opts.sysexts, KARG)?;
    let extensions: Vec<ExtensionSource<'_>> = sysext_files
        .iter()
        .map(|(image, digest)| ExtensionSource { image, digest })
        .collect();
    let verify = start.elapsed();

    let digest_hex = image.image_ref.digest.to_hex();
    let source = Source {
        image: &image.file,
        objects: &objects,
        digest_hex: &digest_hex,
        require_verity: !image.image_ref.insecure,
        force_loop: opts.force_loop,
        extensions: &extensions,
        open_listed: &|digest: &Digest| {
            verify_sysexts(
                &repo,
                &image.image_ref,
                std::slice::from_ref(digest),
                LISTED,
            )
            .map(|mut found| found.remove(0).0)
            .map_err(|e| e.to_string())
        },
    };
    let staged = assemble::stage(&source, opts.policy, &opts.layout).map_err(|e| {
        // An extension the image listed was refused: cap its PCR too.
        if matches!(e, AssembleError::Extension(_)) {
            measurer.also_cap(SYSEXT_PCR);
        }
        SetupError::Assemble(e)
    })?;
    let staged_at = start.elapsed();
    let events = measure::success_events(measurer.pcr(), &image.image_ref, opts.policy)
        .into_iter()
        .chain(measure::sysext_events(&staged.assembled.extensions));
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
        image_path: image.path,
        assembled,
        policy: opts.policy,
        timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_line_sums_the_tpm_stage() {
        let t = Timings {
            parse: Duration::from_micros(250),
            verify: Duration::from_micros(26_140),
            mount: Duration::from_millis(90),
            tpm_open: Duration::from_millis(3),
            extend: Duration::from_micros(41_960),
            total: Duration::from_millis(162),
        };
        assert_eq!(
            t.to_string(),
            "parse 0.3 ms, verify 26.1 ms, mount 90.0 ms, tpm 45.0 ms (open 3.0, extend 42.0), \
             total 162.0 ms"
        );
    }
}
