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
use crate::boot::on_failure::{self, Action, OnFailure, OnFailureError};
use crate::boot::paths::HostPaths;
use crate::boot::refusal_record::{self, Refusal};
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
    /// `veriroot.on-failure=` or `veriroot.failure-delay=` is malformed.
    OnFailure(OnFailureError),
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
            SetupRootError::OnFailure(e) => e.fmt(f),
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
            SetupRootError::OnFailure(e) => Some(e),
            SetupRootError::Timeout { .. } => None,
        }
    }
}

/// A refused boot: why (the PCRs are capped), and what ends it.
#[derive(Debug)]
pub struct Refused {
    pub error: SetupRootError,
    pub then: OnFailure,
}

impl Refused {
    /// Ends the boot as configured. `emergency` is the unit's own
    /// `OnFailure=`: nothing to do but fail. The others ask systemd, after
    /// the delay, for the shutdown target: its job is irreversible, so the
    /// unit's `OnFailure=` cannot replace it. Outside a systemd unit the
    /// caller of `veriroot setup-root` decides.
    pub fn end(&self) {
        let verb = match self.then.action {
            Action::Emergency => return,
            Action::PowerOff => "poweroff",
            Action::Reboot => "reboot",
            Action::Halt => "halt",
        };
        if std::env::var_os("INVOCATION_ID").is_none() {
            log::warn!(
                "{}={verb} acts only in the systemd unit: the caller decides",
                on_failure::KARG
            );
            return;
        }
        log::warn!("{}", self.then.announcement());
        std::thread::sleep(self.then.delay);
        // --no-block: queued, not waited for; the wait for systemctl itself
        // is bounded too.
        match run_bounded("systemctl", &["--no-block", verb], SYSTEMCTL_TIMEOUT) {
            Ok(()) => {}
            Err(e) => log::error!(
                "systemctl --no-block {verb} failed ({e}): the unit's OnFailure= (emergency.target) follows"
            ),
        }
    }
}

const SYSTEMCTL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `program args`, killed after `limit`; Ok if it exited 0.
fn run_bounded(program: &str, args: &[&str], limit: std::time::Duration) -> Result<(), String> {
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(status.to_string()),
            Ok(None) if start.elapsed() < limit => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} s", limit.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Verifies, mounts and measures; on a refusal the PCRs are capped and the
/// refusal recorded on the real root before this returns.
pub fn run(args: Args, paths: &HostPaths) -> Result<(), Box<Refused>> {
    let cmdline = match &args.cmdline {
        Some(text) => Some(Cmdline::parse(text)),
        None => Cmdline::read(&paths.cmdline).ok(),
    };
    let mut configured = None;
    let result = verify(&args, paths, cmdline.as_ref(), &mut configured);
    result.map_err(|error| {
        let counting = crate::kernel::firmware::boot_count_path(&paths.sys);
        if let Some(entry) = &counting {
            log::info!(
                "systemd-boot counts the tries of {}: a refused boot reboots unless {} says otherwise",
                crate::text::escape(entry),
                on_failure::KARG
            );
        }
        let mode = on_failure::Mode::SetupRoot;
        let then = cmdline.as_ref().map_or(
            OnFailure::default_for(mode, counting.is_some()),
            |c| on_failure::decide(c, configured, mode, counting.is_some()).0,
        );
        record(&args, cmdline.as_ref(), &error, then);
        Box::new(Refused { error, then })
    })
}

/// The refusal, kept on the real root (`/sysroot`) for the next boot.
fn record(args: &Args, cmdline: Option<&Cmdline>, error: &SetupRootError, then: OnFailure) {
    let refusal = Refusal::now(
        "setup-root",
        then.action.name(),
        cmdline.map(Cmdline::image_asked).unwrap_or_default(),
        error.to_string(),
    );
    refusal_record::keep(&args.sysroot, &refusal);
}

fn verify(
    args: &Args,
    paths: &HostPaths,
    cmdline: Option<&Cmdline>,
    configured: &mut Option<Action>,
) -> Result<(), SetupRootError> {
    let started = Instant::now();
    // Armed first (the unit's TimeoutStartSec= is the backstop behind it).
    // The command line's own value is read here; malformed, it is refused
    // with the other arguments, once the TPM is open.
    let cmdline_limit = cmdline.map_or(Ok(watchdog::DEFAULT), watchdog::limit);
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
    *configured = config.on_failure;
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
    run_with(args, &config, paths, &mut measurer, started, tpm_open)
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
    // Whether tries are counted changes the default, never the validity.
    if let (_, Some(e)) = on_failure::decide(
        &cmdline,
        config.on_failure,
        on_failure::Mode::SetupRoot,
        false,
    ) {
        return Err(SetupRootError::OnFailure(e));
    }
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
        signatures: config.signatures,
        keys: paths.keys.clone(),
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
