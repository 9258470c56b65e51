//! `veriroot setup-root`: the systemd-initrd mode. systemd has mounted the
//! real root at /sysroot; this replaces it with the verified, measured
//! tree (the real root at /sysroot/sysroot) and exits, and systemd's
//! `initrd-switch-root.service` does the rest. Any refusal caps the PCRs
//! and exits non-zero, so the unit fails into `emergency.target`.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use crate::boot::assemble::Layout;
use crate::boot::cmdline::{Cmdline, ReadError};
use crate::boot::config::{Config, ConfigError};
use crate::boot::paths::HostPaths;
use crate::boot::setup::{self, SetupError, SetupOptions};
use crate::boot::watchdog;
use crate::measure::measurer::cap_without_config;
use crate::measure::{MeasureError, Measurer};

/// What `veriroot setup-root` was asked to do.
#[derive(Debug, Clone)]
pub struct Args {
    /// The real root now, the verified root after (`--sysroot`).
    pub sysroot: PathBuf,
    /// The command line to use instead of `paths.cmdline`'s (`--cmdline`).
    pub cmdline: Option<String>,
    /// One configuration file instead of the initrd's two (`--config`).
    pub config: Option<PathBuf>,
}

/// Why the boot was refused; every variant means the PCRs were capped.
#[derive(Debug)]
pub enum SetupRootError {
    Config(ConfigError),
    Measure(MeasureError),
    Cmdline(ReadError),
    Setup(SetupError),
    /// `veriroot.timeout=` is not a number of seconds.
    Timeout {
        value: String,
    },
}

impl fmt::Display for SetupRootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refusing to boot: ")?;
        match self {
            SetupRootError::Config(e) => e.fmt(f),
            SetupRootError::Measure(e) => e.fmt(f),
            SetupRootError::Cmdline(e) => e.fmt(f),
            SetupRootError::Setup(e) => e.fmt(f),
            SetupRootError::Timeout { value } => {
                write!(f, "{}={value} is not a number of seconds", watchdog::KARG)
            }
        }
    }
}

impl std::error::Error for SetupRootError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SetupRootError::Config(e) => Some(e),
            SetupRootError::Measure(e) => Some(e),
            SetupRootError::Cmdline(e) => Some(e),
            SetupRootError::Setup(e) => Some(e),
            SetupRootError::Timeout { .. } => None,
        }
    }
}

/// Verifies, mounts and measures; on a refusal the PCRs are capped before
/// this returns.
pub fn run(args: Args, paths: &HostPaths) -> Result<(), SetupRootError> {
    let started = Instant::now();
    // Armed first (the unit's TimeoutStartSec= is the backstop behind it).
    // The command line's own value is read here; malformed, it is refused
    // with the other arguments, once the TPM is open.
    let cmdline_limit = match &args.cmdline {
        Some(text) => watchdog::limit(&Cmdline::parse(text)),
        None => Cmdline::read(&paths.cmdline)
            .map(|c| watchdog::limit(&c))
            .unwrap_or(Ok(watchdog::DEFAULT)),
    };
    let config_path = args.config.as_deref().unwrap_or(&paths.config);
    watchdog::arm(
        *cmdline_limit.as_ref().unwrap_or(&watchdog::DEFAULT),
        paths.clone(),
        Config::pcr_hint(config_path).unwrap_or(crate::boot::config::DEFAULT_PCR),
        || std::process::exit(1),
    );
    let config = match &args.config {
        Some(p) => Config::load(p),
        None => Config::load_initrd(paths),
    }
    .map_err(|e| {
        // The broken file cannot be trusted to say which PCR: cap the
        // default ones and the one it seems to name.
        let named = Config::pcr_hint(args.config.as_deref().unwrap_or(&paths.config));
        cap_without_config(paths, named);
        SetupRootError::Config(e)
    })?;
    let config_parsed = started.elapsed();
    let mut measurer = Measurer::open(config.tpm, config.pcr, paths).map_err(|e| {
        // A TPM that failed may still take the cap (a later open, the
        // other device node); without one there is nothing to cap.
        if !matches!(e, MeasureError::NoTpm) {
            cap_without_config(paths, Some(config.pcr));
        }
        SetupRootError::Measure(e)
    })?;
    let tpm_open = started.elapsed() - config_parsed;
    run_with(&args, &config, paths, &mut measurer, started, tpm_open)
}

/// The part after the configuration and the TPM: parse the command line,
/// verify, mount, measure; on any refusal cap every PCR `measurer` would
/// have extended. Tests call it with a measurer on swtpm.
pub fn run_with(
    args: &Args,
    config: &Config,
    paths: &HostPaths,
    measurer: &mut Measurer,
    started: Instant,
    tpm_open: std::time::Duration,
) -> Result<(), SetupRootError> {
    let result = mount_verified(args, config, paths, measurer, started, tpm_open);
    if result.is_err() {
        measurer.cap();
    }
    result
}

fn mount_verified(
    args: &Args,
    config: &Config,
    paths: &HostPaths,
    measurer: &mut Measurer,
    started: Instant,
    tpm_open: std::time::Duration,
) -> Result<(), SetupRootError> {
    let cmdline = match &args.cmdline {
        Some(text) => Cmdline::parse(text),
        None => Cmdline::read(&paths.cmdline).map_err(SetupRootError::Cmdline)?,
    };
    watchdog::limit(&cmdline).map_err(|value| SetupRootError::Timeout { value })?;
    let sysexts = setup::sysexts(&cmdline).map_err(SetupRootError::Setup)?;
    let refs = setup::image_refs(&cmdline, config.candidates).map_err(SetupRootError::Setup)?;
    let parse = started.elapsed() - tpm_open;
    let opts = SetupOptions {
        layout: Layout {
            sysroot: args.sysroot.clone(),
            run_dir: paths.run_dir.clone(),
            sysroot_readonly: false,
        },
        mounts: config.mounts,
        force_loop: cmdline.value("veriroot.erofs") == Some("loop"),
        sysexts,
    };
    let booted = setup::verify_and_mount(&refs, &opts, measurer).map_err(SetupRootError::Setup)?;
    log::info!(
        "mounted {} ({}) at {}{}",
        booted.image_ref.digest,
        booted.assembled.backing,
        opts.layout.sysroot.display(),
        setup::describe_extensions(&booted.assembled.extensions)
    );
    booted.timings.log_final(parse, tpm_open, started);
    Ok(())
}
