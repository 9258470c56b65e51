//! veriroot as `/init` of a minimal initrd: set up the early userspace,
//! mount the real root, verify and mount the image, switch root.
//! Any failure caps the PCRs and powers the machine off: there is nothing
//! unverified to fall back to.
//!
//! What the command line decides (root device, timeouts, flags, init) is
//! worked out first, without touching anything (`Decisions`), so that a
//! malformed argument is refused before any disk is waited for.

use std::ffi::{CStr, CString};
use std::fmt;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::mount::{mount, mount_move, MountFlags};

use crate::boot::assemble::Layout;
use crate::boot::cmdline::{Cmdline, ReadError};
use crate::boot::config::{Config, ConfigError, TpmPolicy};
use crate::boot::on_failure::{self, Action, OnFailure, OnFailureError};
use crate::boot::paths::HostPaths;
use crate::boot::refusal_record::{self, Refusal};
use crate::boot::setup::{self, SetupError, SetupOptions};
use crate::boot::watchdog;
use crate::kernel::blockdev::{self, NotFound, RootSpec, RootSpecError};
use crate::kernel::firmware;
use crate::kernel::modules::{self, ModuleError};
use crate::measure::measurer::cap_without_config;
use crate::measure::{MeasureError, Measurer};

const SYSROOT: &str = "/sysroot";
const DEFAULT_ROOT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_TPM_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_INIT: &str = "/sbin/init";

#[derive(Debug)]
pub enum InitError {
    EarlyMount {
        target: &'static str,
        errno: Errno,
    },
    Cmdline(ReadError),
    Modules(ModuleError),
    NoRoot,
    RootSpec(RootSpecError),
    /// `rootflags=` holds a NUL byte (it cannot be passed to mount(2)).
    RootFlagsNul,
    /// `veriroot.root-timeout=` or `veriroot.tpm-timeout=` is not a number.
    Seconds {
        key: &'static str,
        value: String,
    },
    RootDevice(NotFound),
    RootMount {
        device: PathBuf,
        fstype: String,
        errno: Errno,
    },
    Setup(SetupError),
    Config(ConfigError),
    Measure(MeasureError),
    OnFailure(OnFailureError),
    SwitchRoot {
        step: &'static str,
        errno: Errno,
    },
    Exec {
        init: String,
        error: std::io::Error,
    },
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use InitError::*;
        match self {
            EarlyMount { target, errno } => write!(f, "cannot mount {target}: {errno}"),
            Cmdline(e) => e.fmt(f),
            Modules(e) => e.fmt(f),
            NoRoot => f.write_str(
                "no root= on the kernel command line: add root=/dev/..., UUID= or LABEL=",
            ),
            RootSpec(e) => e.fmt(f),
            RootFlagsNul => f.write_str("rootflags= contains a NUL byte"),
            Seconds { key, value } => write!(f, "{key}={value} is not a number of seconds"),
            RootDevice(e) => e.fmt(f),
            RootMount {
                device,
                fstype,
                errno,
            } => write!(
                f,
                "cannot mount the real root {} ({fstype}) at {SYSROOT}: {errno}; check \
                 rootfstype= and rootflags=",
                device.display()
            ),
            Setup(e) => e.fmt(f),
            Config(e) => e.fmt(f),
            Measure(e) => e.fmt(f),
            OnFailure(e) => e.fmt(f),
            SwitchRoot { step, errno } => write!(f, "switch root: {step} failed: {errno}"),
            Exec { init, error } => {
                write!(f, "cannot execute {init} in the verified root: {error}")
            }
        }
    }
}

impl std::error::Error for InitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        use InitError::*;
        match self {
            EarlyMount { errno, .. } | RootMount { errno, .. } | SwitchRoot { errno, .. } => {
                Some(errno)
            }
            Cmdline(e) => Some(e),
            Modules(e) => Some(e),
            RootSpec(e) => Some(e),
            RootDevice(e) => Some(e),
            Setup(e) => Some(e),
            Config(e) => Some(e),
            Measure(e) => Some(e),
            OnFailure(e) => Some(e),
            Exec { error, .. } => Some(error),
            NoRoot | RootFlagsNul | Seconds { .. } => None,
        }
    }
}

/// What the kernel command line decides for PID 1, worked out before
/// anything is mounted or waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decisions {
    pub root: RootSpec,
    pub root_timeout: Duration,
    /// `rootfstype=`; else the superblock's type; else ext4.
    pub rootfstype: Option<String>,
    /// `rootflags=`, split as mount(8) does.
    pub root_flags: MountFlags,
    pub root_data: CString,
    /// `ro` (the default) or `rw`, whichever came last: the real root's
    /// view at /sysroot/sysroot. Its superblock stays writable for the state.
    pub sysroot_readonly: bool,
    /// Mount the image through a loop device (`veriroot.erofs=loop`).
    pub force_loop: bool,
    /// `init=`, and the arguments after `--`.
    pub init: String,
    pub init_args: Vec<String>,
}

impl Decisions {
    pub fn from_cmdline(cmdline: &Cmdline) -> Result<Decisions, InitError> {
        let root = RootSpec::parse(cmdline.value("root").ok_or(InitError::NoRoot)?)
            .map_err(InitError::RootSpec)?;
        let (root_flags, data) = split_mount_options(cmdline.value("rootflags").unwrap_or(""));
        Ok(Decisions {
            root,
            root_timeout: seconds(cmdline, "veriroot.root-timeout", DEFAULT_ROOT_TIMEOUT)?,
            rootfstype: cmdline.value("rootfstype").map(str::to_owned),
            root_flags,
            root_data: CString::new(data).map_err(|_| InitError::RootFlagsNul)?,
            sysroot_readonly: cmdline.last_flag("ro", "rw") != Some("rw"),
            force_loop: cmdline.value("veriroot.erofs") == Some("loop"),
            init: cmdline.value("init").unwrap_or(DEFAULT_INIT).to_owned(),
            init_args: cmdline.init_args().to_vec(),
        })
    }
}

/// Runs as PID 1. Never returns: execs the real init or powers off.
pub fn run() -> ! {
    let started = Instant::now();
    let paths = HostPaths::system();
    let mut progress = Progress::default();
    let err = match boot(&paths, started, &mut progress) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if let Some(m) = progress.measurer.as_mut() {
        m.cap();
    }
    fail(&err, &progress)
}

/// What the boot got to, for the refusal: the PCRs to cap, whether the
/// real root is there to keep the record, what the command line asked for.
#[derive(Default)]
struct Progress {
    measurer: Option<Measurer>,
    root_mounted: bool,
    image: String,
}

/// What ends a refused boot; the watchdog's thread reads it too. Until the
/// command line is read, the default (power off).
static ON_FAILURE: Mutex<Option<OnFailure>> = Mutex::new(None);

fn on_failure() -> OnFailure {
    ON_FAILURE
        .lock()
        .ok()
        .and_then(|p| *p)
        .unwrap_or(OnFailure::default_for(on_failure::Mode::Pid1, false))
}

fn set_on_failure(policy: OnFailure) {
    if let Ok(mut p) = ON_FAILURE.lock() {
        *p = Some(policy);
    }
}

fn boot(
    paths: &HostPaths,
    started: Instant,
    progress: &mut Progress,
) -> Result<std::convert::Infallible, InitError> {
    early_mounts()?;
    let kmsg_limited = lift_kmsg_ratelimit();
    crate::logger::init(true, false);
    let lap = Instant::now();
    let cmdline = Cmdline::read(&paths.cmdline).map_err(InitError::Cmdline)?;
    let parse = lap.elapsed();
    progress.image = cmdline.image_asked();
    // The command line's choice from here on; the configuration's below.
    // A malformed value is refused once the TPM is open to cap.
    let counting = boot_counting(paths);
    set_on_failure(on_failure::decide(&cmdline, None, on_failure::Mode::Pid1, counting).0);
    // Armed first: from here on nothing can hold the boot for ever. Its
    // limit adds the waits for the root device and the TPM; a malformed
    // value is refused below, once the TPM is open to cap.
    let boot_limit = watchdog::limit(&cmdline);
    let deadline = *boot_limit.as_ref().unwrap_or(&watchdog::DEFAULT)
        + seconds(&cmdline, "veriroot.root-timeout", DEFAULT_ROOT_TIMEOUT)
            .unwrap_or(DEFAULT_ROOT_TIMEOUT)
        + seconds(&cmdline, "veriroot.tpm-timeout", DEFAULT_TPM_TIMEOUT)
            .unwrap_or(DEFAULT_TPM_TIMEOUT);
    let pcr = Config::pcr_hint(&paths.config).unwrap_or(crate::boot::config::DEFAULT_PCR);
    watchdog::arm(deadline, paths.clone(), pcr, end_boot);

    // Modules first: on some machines the TPM driver is one of them, and
    // even a broken configuration's refusal caps the PCR.
    let lap = Instant::now();
    let dir = paths.modules.join(modules::release());
    let n = modules::load_all(&dir).map_err(InitError::Modules)?;
    log::info!(
        "loaded {n} kernel modules in {} ms",
        lap.elapsed().as_millis()
    );
    let lap = Instant::now();
    let config = Config::load_initrd(paths).map_err(|e| {
        // The broken file cannot be trusted to say which PCR: cap the
        // default ones and the one it seems to name.
        cap_without_config(paths, Config::pcr_hint(&paths.config));
        InitError::Config(e)
    })?;
    let parse = parse + lap.elapsed();
    let (policy, policy_error) = on_failure::decide(
        &cmdline,
        config.on_failure,
        on_failure::Mode::Pid1,
        counting,
    );
    set_on_failure(policy);
    // A malformed veriroot.tpm-timeout= is refused once the TPM is open,
    // so that the refusal is capped like every other: wait the default.
    let tpm_timeout = seconds(&cmdline, "veriroot.tpm-timeout", DEFAULT_TPM_TIMEOUT);
    if config.tpm != TpmPolicy::Off {
        wait_for_tpm(paths, *tpm_timeout.as_ref().unwrap_or(&DEFAULT_TPM_TIMEOUT));
    }
    let lap = Instant::now();
    let opened = Measurer::open(config.tpm, config.pcr, paths).map_err(|e| {
        // A TPM that failed may still take the cap (a later open, the
        // other device node); without one there is nothing to cap.
        if !matches!(e, MeasureError::NoTpm) {
            cap_without_config(paths, Some(config.pcr));
        }
        InitError::Measure(e)
    })?;
    let m = progress.measurer.insert(opened);
    let tpm_open = lap.elapsed();
    tpm_timeout?;
    if let Some(e) = policy_error {
        return Err(InitError::OnFailure(e));
    }
    boot_limit.map_err(|value| InitError::Seconds {
        key: watchdog::KARG,
        value,
    })?;

    // A malformed command line is known before waiting for any disk.
    let lap = Instant::now();
    let decisions = Decisions::from_cmdline(&cmdline)?;
    let sysexts = setup::sysexts(&cmdline).map_err(InitError::Setup)?;
    let refs = setup::image_refs(&cmdline, config.candidates).map_err(InitError::Setup)?;
    let parse = parse + lap.elapsed();
    let lap = Instant::now();
    mount_real_root(&decisions)?;
    progress.root_mounted = true;
    log::info!("real root ready in {} ms", lap.elapsed().as_millis());
    let opts = SetupOptions {
        layout: Layout {
            sysroot: SYSROOT.into(),
            run_dir: paths.run_dir.clone(),
            sysroot_readonly: decisions.sysroot_readonly,
        },
        mounts: config.mounts,
        force_loop: decisions.force_loop,
        sysexts,
        signatures: config.signatures,
        keys: paths.keys.clone(),
    };
    let booted = setup::verify_and_mount(&refs, &opts, m).map_err(InitError::Setup)?;
    log::info!(
        "mounted {} ({}, overlay {:?}) at {SYSROOT}{}",
        booted.image_ref.digest,
        booted.assembled.backing,
        booted.assembled.layers,
        setup::describe_extensions(&booted.assembled.extensions)
    );
    // total also holds the early mounts, module loading and the root device.
    booted.timings.log_final(parse, tpm_open, started);
    if kmsg_limited {
        restore_kmsg_ratelimit();
    }
    switch_root(&decisions)
}

/// /proc, /sys, /dev, /run, as every init expects. EBUSY: already there.
fn early_mounts() -> Result<(), InitError> {
    let mounts: [(&str, &'static str, &str, MountFlags, Option<&CStr>); 4] = [
        (
            "proc",
            "/proc",
            "proc",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            None,
        ),
        (
            "sysfs",
            "/sys",
            "sysfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            None,
        ),
        (
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MountFlags::NOSUID,
            Some(c"mode=0755"),
        ),
        (
            "tmpfs",
            "/run",
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            Some(c"mode=0755"),
        ),
    ];
    for (source, target, fstype, flags, data) in mounts {
        // EEXIST is the usual case; a real problem shows in the mount below.
        let _ = rustix::fs::mkdir(target, Mode::from_raw_mode(0o755));
        match mount(source, target, fstype, flags, data) {
            Ok(()) | Err(Errno::BUSY) => {}
            Err(errno) => return Err(InitError::EarlyMount { target, errno }),
        }
    }
    Ok(())
}

/// Whether systemd-boot counts this entry's tries (its EFI variable),
/// read through an efivarfs mounted read-only for that moment only: left
/// mounted, it would move with /sys into the booted system, which mounts
/// its own, writable one.
fn boot_counting(paths: &HostPaths) -> bool {
    let dir = paths.sys.join("firmware/efi/efivars");
    let ours = paths.sys.join("firmware/efi").exists()
        && mount(
            "efivarfs",
            &dir,
            "efivarfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC | MountFlags::RDONLY,
            None,
        )
        .is_ok();
    let counting = firmware::boot_count_path(&paths.sys).is_some();
    if ours {
        let _ = rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH);
    }
    counting
}

/// A duration in whole seconds from the command line.
fn seconds(cmdline: &Cmdline, key: &'static str, default: Duration) -> Result<Duration, InitError> {
    match cmdline.value(key) {
        Some(v) => v
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| InitError::Seconds {
                key,
                value: v.into(),
            }),
        None => Ok(default),
    }
}

/// A TPM the firmware describes can appear after its module was loaded
/// (deferred or asynchronous probe, e.g. behind an SPI controller): wait
/// for its device, up to `veriroot.tpm-timeout=`, and if it never comes say
/// which TPM is missing. The TPM policy then decides, as without a TPM.
fn wait_for_tpm(paths: &HostPaths, timeout: Duration) {
    let present = || paths.tpm_devices.iter().any(|p| p.exists());
    if present() {
        return;
    }
    let Some(tpm) = firmware::described_tpm(&paths.sys) else {
        return;
    };
    log::info!(
        "the firmware describes a TPM ({tpm}); waiting up to {} s for its device",
        timeout.as_secs()
    );
    let start = Instant::now();
    while start.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(50));
        if present() {
            log::info!(
                "TPM device appeared after {} ms",
                start.elapsed().as_millis()
            );
            return;
        }
    }
    log::warn!(
        "the firmware describes a TPM ({tpm}) but no TPM device appeared within {} s: is its \
         driver (tpm_tis, tpm_crb, ...) in the initrd?",
        timeout.as_secs()
    );
}

const PRINTK_DEVKMSG: &str = "/proc/sys/kernel/printk_devkmsg";

/// By default (`printk.devkmsg=ratelimit`) the kernel drops a /dev/kmsg
/// writer's lines beyond 10 in 5 s, silently: with system extensions the
/// dropped lines would be the measurements. As PID 1 veriroot owns the
/// boot until it execs init, so it lifts the limit and restores it before.
/// A value set on the command line is locked (EINVAL) and left alone.
fn lift_kmsg_ratelimit() -> bool {
    match std::fs::read_to_string(PRINTK_DEVKMSG) {
        Ok(v) if v.trim() == "ratelimit" => std::fs::write(PRINTK_DEVKMSG, "on\n").is_ok(),
        _ => false,
    }
}

fn restore_kmsg_ratelimit() {
    if let Err(e) = std::fs::write(PRINTK_DEVKMSG, "ratelimit\n") {
        log::warn!("cannot restore {PRINTK_DEVKMSG} to ratelimit: {e}");
    }
}

fn mount_real_root(d: &Decisions) -> Result<(), InitError> {
    let (device, info) =
        blockdev::wait_for(&d.root, d.root_timeout).map_err(InitError::RootDevice)?;
    let fstype = d
        .rootfstype
        .clone()
        .or_else(|| info.map(|i| i.fstype.to_owned()))
        .unwrap_or_else(|| "ext4".to_owned());
    // The real root's superblock is writable whatever `ro` says: /etc and
    // /var state live on it. `ro` makes its view at /sysroot/sysroot read-only.
    let _ = rustix::fs::mkdir(SYSROOT, Mode::from_raw_mode(0o755));
    mount(
        &device,
        SYSROOT,
        fstype.as_str(),
        d.root_flags,
        d.root_data.as_c_str(),
    )
    .map_err(|errno| InitError::RootMount {
        device: device.clone(),
        fstype: fstype.clone(),
        errno,
    })?;
    log::info!(
        "mounted real root {} ({fstype}) at {SYSROOT}",
        device.display()
    );
    Ok(())
}

/// Splits `rootflags=` like mount(8): generic options become mount flags,
/// the rest is the filesystem's data string (the kernel would reject
/// `noatime` as an ext4 option).
pub fn split_mount_options(options: &str) -> (MountFlags, String) {
    let mut flags = MountFlags::empty();
    let mut data = Vec::new();
    for opt in options.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => flags |= MountFlags::RDONLY,
            "rw" => flags -= MountFlags::RDONLY,
            "nosuid" => flags |= MountFlags::NOSUID,
            "nodev" => flags |= MountFlags::NODEV,
            "noexec" => flags |= MountFlags::NOEXEC,
            "sync" => flags |= MountFlags::SYNCHRONOUS,
            "dirsync" => flags |= MountFlags::DIRSYNC,
            "noatime" => flags |= MountFlags::NOATIME,
            "nodiratime" => flags |= MountFlags::NODIRATIME,
            "relatime" => flags |= MountFlags::RELATIME,
            "strictatime" => flags |= MountFlags::STRICTATIME,
            "lazytime" => flags |= MountFlags::LAZYTIME,
            "defaults" => {}
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// Moves the API filesystems into the new root, makes it `/` and execs
/// its init. The initramfs cannot be pivoted away, so this is MS_MOVE +
/// chroot, as switch_root(8) does.
fn switch_root(d: &Decisions) -> Result<std::convert::Infallible, InitError> {
    let step = |step| move |errno| InitError::SwitchRoot { step, errno };
    for api in ["/dev", "/proc", "/sys", "/run"] {
        let target = format!("{SYSROOT}{api}");
        if let Err(errno) = mount_move(api, target.as_str()) {
            // The new root lacks the directory or it is read-only: the
            // init there gets to mount its own.
            log::warn!("not moving {api} into the new root: {errno}");
            let _ = rustix::mount::unmount(api, rustix::mount::UnmountFlags::DETACH);
        }
    }
    rustix::process::chdir(SYSROOT).map_err(step("chdir /sysroot"))?;
    mount_move(".", "/").map_err(step("move /sysroot to /"))?;
    rustix::process::chroot(".").map_err(step("chroot"))?;
    rustix::process::chdir("/").map_err(step("chdir /"))?;
    log::info!("switching root to {}", d.init);
    let error = std::process::Command::new(&d.init)
        .args(&d.init_args)
        .arg0(&d.init)
        .exec();
    Err(InitError::Exec {
        init: d.init.clone(),
        error,
    })
}

/// Says why on the console, keeps the record on the real root, and ends
/// the boot as configured (the caller capped the PCRs): PID 1 exiting
/// would panic the kernel instead.
fn fail(err: &InitError, progress: &Progress) -> ! {
    let msg = format!("veriroot: refusing to boot: {err}");
    log::error!("refusing to boot: {err}");
    console(&format!("\n{msg}"));
    let policy = on_failure();
    if progress.root_mounted {
        let refusal = Refusal::now(
            "pid1",
            policy.action.name(),
            progress.image.clone(),
            err.to_string(),
        );
        refusal_record::keep(std::path::Path::new(SYSROOT), &refusal);
    }
    end_boot()
}

fn console(line: &str) {
    if let Ok(mut console) = std::fs::OpenOptions::new().write(true).open("/dev/console") {
        let _ = writeln!(console, "{line}");
    }
}

/// Ends a refused boot (the watchdog's end too): after the delay, power
/// off, reboot or halt; never returns to the kernel.
fn end_boot() -> ! {
    let policy = on_failure();
    let command = match policy.action {
        Action::PowerOff => rustix::system::RebootCommand::PowerOff,
        Action::Reboot => rustix::system::RebootCommand::Restart,
        // A minimal initrd has no emergency shell: stop with the message.
        Action::Halt | Action::Emergency => rustix::system::RebootCommand::Halt,
    };
    console(&format!("veriroot: {}", policy.announcement()));
    rustix::fs::sync();
    std::thread::sleep(policy.delay);
    console(&format!("veriroot: {}", policy.action.doing()));
    let _ = rustix::system::reboot(command);
    // Unreachable unless reboot(2) failed; never return to the kernel.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootflags_split_into_flags_and_data() {
        let (flags, data) =
            split_mount_options("noatime,errors=remount-ro,defaults,nodev,data=ordered");
        assert_eq!(flags, MountFlags::NOATIME | MountFlags::NODEV);
        assert_eq!(data, "errors=remount-ro,data=ordered");
        assert_eq!(
            split_mount_options(""),
            (MountFlags::empty(), String::new())
        );
        assert_eq!(split_mount_options("ro,rw").0, MountFlags::empty());
    }

    fn decide(text: &str) -> Result<Decisions, InitError> {
        Decisions::from_cmdline(&Cmdline::parse(text))
    }

    #[test]
    fn defaults_when_the_command_line_says_little() {
        let d = decide("root=/dev/vdb composefs=ab").unwrap();
        assert_eq!(d.root, RootSpec::Path("/dev/vdb".into()));
        assert_eq!(d.root_timeout, DEFAULT_ROOT_TIMEOUT);
        assert_eq!(d.rootfstype, None);
        assert!(d.sysroot_readonly, "ro unless rw is given");
        assert!(!d.force_loop);
        assert_eq!(d.init, "/sbin/init");
        assert!(d.init_args.is_empty());
    }

    #[test]
    fn what_the_command_line_decides() {
        let d = decide(
            "ro root=LABEL=r rootfstype=btrfs rootflags=noatime,subvol=@ rw \
             veriroot.root-timeout=5 veriroot.erofs=loop init=/usr/lib/systemd/systemd -- \
             --unit=rescue.target",
        )
        .unwrap();
        assert_eq!(d.root, RootSpec::Label("r".into()));
        assert_eq!(d.root_timeout, Duration::from_secs(5));
        assert_eq!(d.rootfstype.as_deref(), Some("btrfs"));
        assert_eq!(d.root_flags, MountFlags::NOATIME);
        assert_eq!(d.root_data.to_str(), Ok("subvol=@"));
        assert!(!d.sysroot_readonly, "the last of ro/rw wins");
        assert!(d.force_loop);
        assert_eq!(d.init, "/usr/lib/systemd/systemd");
        assert_eq!(d.init_args, ["--unit=rescue.target"]);
    }

    #[test]
    fn malformed_arguments_are_refused_before_any_disk() {
        assert!(matches!(decide("composefs=ab"), Err(InitError::NoRoot)));
        assert!(matches!(
            decide("root=PARTUUID=1"),
            Err(InitError::RootSpec(_))
        ));
        let e = decide("root=/dev/vda veriroot.root-timeout=5s").unwrap_err();
        assert_eq!(
            e.to_string(),
            "veriroot.root-timeout=5s is not a number of seconds"
        );
        assert!(matches!(
            seconds(
                &Cmdline::parse("veriroot.tpm-timeout=x"),
                "veriroot.tpm-timeout",
                DEFAULT_TPM_TIMEOUT
            ),
            Err(InitError::Seconds { .. })
        ));
    }
}
