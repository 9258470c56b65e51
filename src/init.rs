//! veriroot as `/init` of a minimal initrd: set up the early userspace,
//! mount the real root, verify and mount the image, switch root.
//! Any failure powers the machine off: there is nothing unverified to
//! fall back to.

use std::ffi::{CStr, CString};
use std::fmt;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::mount::{mount, mount_move, MountFlags};

use crate::assemble::Layout;
use crate::blockdev::{self, NotFound, RootSpec};
use crate::cmdline::Cmdline;
use crate::config::{Config, ConfigError, TpmPolicy};
use crate::firmware;
use crate::measure::{MeasureError, Measurer};
use crate::modules::{self, ModuleError};
use crate::setup::{self, SetupError, SetupOptions};
use crate::tpm::transport::DEVICE_PATHS;

const SYSROOT: &str = "/sysroot";
const DEFAULT_ROOT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_TPM_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub enum InitError {
    EarlyMount {
        target: &'static str,
        errno: Errno,
    },
    Cmdline(std::io::Error),
    Modules(ModuleError),
    NoRoot,
    RootSpec(String),
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
            Cmdline(e) => write!(f, "cannot read /proc/cmdline: {e}"),
            Modules(e) => e.fmt(f),
            NoRoot => f.write_str(
                "no root= on the kernel command line: add root=/dev/..., UUID= or LABEL=",
            ),
            RootSpec(e) => f.write_str(e),
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
            SwitchRoot { step, errno } => write!(f, "switch root: {step} failed: {errno}"),
            Exec { init, error } => {
                write!(f, "cannot execute {init} in the verified root: {error}")
            }
        }
    }
}

impl std::error::Error for InitError {}

/// Runs as PID 1. Never returns: execs the real init or powers off.
pub fn run() -> ! {
    let started = Instant::now();
    let mut measurer = None;
    let err = match boot(started, &mut measurer) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if let Some(m) = measurer.as_mut() {
        m.cap();
    }
    fail(&err)
}

fn boot(
    started: Instant,
    measurer: &mut Option<Measurer>,
) -> Result<std::convert::Infallible, InitError> {
    early_mounts()?;
    let kmsg_limited = lift_kmsg_ratelimit();
    crate::logger::init(true, false);
    let lap = Instant::now();
    let text = std::fs::read_to_string("/proc/cmdline").map_err(InitError::Cmdline)?;
    let cmdline = Cmdline::parse(text.trim_end());
    let parse = lap.elapsed();

    // Modules first: on some machines the TPM driver is one of them, and
    // even a broken configuration's refusal caps the PCR.
    let lap = Instant::now();
    let dir = Path::new("/lib/modules").join(modules::release());
    let n = modules::load_all(&dir).map_err(InitError::Modules)?;
    log::info!(
        "loaded {n} kernel modules in {} ms",
        lap.elapsed().as_millis()
    );
    let lap = Instant::now();
    let config = Config::load_initrd().map_err(|e| {
        crate::measure::cap_default_pcr();
        InitError::Config(e)
    })?;
    let parse = parse + lap.elapsed();
    if config.tpm != TpmPolicy::Off {
        // Only a malformed veriroot.tpm-timeout= fails here: cap all the same.
        wait_for_tpm(&cmdline).inspect_err(|_| crate::measure::cap_default_pcr())?;
    }
    let lap = Instant::now();
    let m = measurer.insert(Measurer::open(config.tpm, config.pcr).map_err(InitError::Measure)?);
    let tpm_open = lap.elapsed();

    // A malformed command line is known before waiting for any disk.
    let lap = Instant::now();
    let sysexts = setup::sysexts(&cmdline, m).map_err(InitError::Setup)?;
    let refs = setup::image_refs(&cmdline).map_err(InitError::Setup)?;
    let parse = parse + lap.elapsed();
    let lap = Instant::now();
    mount_real_root(&cmdline)?;
    log::info!("real root ready in {} ms", lap.elapsed().as_millis());
    let opts = SetupOptions {
        layout: Layout {
            sysroot: SYSROOT.into(),
            run_dir: "/run/veriroot".into(),
            sysroot_readonly: cmdline.last_flag("ro", "rw") != Some("rw"),
        },
        policy: config.policy,
        force_loop: cmdline.value("veriroot.erofs") == Some("loop"),
        sysexts,
    };
    let booted = setup::setup_root(&refs, &opts, m).map_err(InitError::Setup)?;
    log::info!(
        "mounted {} ({}, overlay {:?}) at {SYSROOT}{}",
        booted.image_ref.digest,
        booted.assembled.backing,
        booted.assembled.layers,
        crate::commands::describe_extensions(&booted.assembled.extensions)
    );
    // total also holds the early mounts, module loading and the root device.
    booted.timings.log_final(parse, tpm_open, started);
    if kmsg_limited {
        restore_kmsg_ratelimit();
    }
    switch_root(&cmdline)
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
fn wait_for_tpm(cmdline: &Cmdline) -> Result<(), InitError> {
    let present = || DEVICE_PATHS.iter().any(|p| Path::new(p).exists());
    if present() {
        return Ok(());
    }
    let Some(tpm) = firmware::described_tpm(Path::new("/sys")) else {
        return Ok(());
    };
    let timeout = seconds(cmdline, "veriroot.tpm-timeout", DEFAULT_TPM_TIMEOUT)?;
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
            return Ok(());
        }
    }
    log::warn!(
        "the firmware describes a TPM ({tpm}) but no TPM device appeared within {} s: is its \
         driver (tpm_tis, tpm_crb, ...) in the initrd?",
        timeout.as_secs()
    );
    Ok(())
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

fn mount_real_root(cmdline: &Cmdline) -> Result<(), InitError> {
    let spec = RootSpec::parse(cmdline.value("root").ok_or(InitError::NoRoot)?)
        .map_err(InitError::RootSpec)?;
    let timeout = seconds(cmdline, "veriroot.root-timeout", DEFAULT_ROOT_TIMEOUT)?;
    let (device, info) = blockdev::wait_for(&spec, timeout).map_err(InitError::RootDevice)?;
    let fstype = cmdline
        .value("rootfstype")
        .map(str::to_owned)
        .or_else(|| info.map(|i| i.fstype.to_owned()))
        .unwrap_or_else(|| "ext4".to_owned());
    // The real root's superblock is writable whatever `ro` says: /etc and
    // /var state live on it. `ro` makes its view at /sysroot/sysroot read-only.
    let _ = rustix::fs::mkdir(SYSROOT, Mode::from_raw_mode(0o755));
    let (flags, data) = split_mount_options(cmdline.value("rootflags").unwrap_or(""));
    let data = CString::new(data)
        .map_err(|_| InitError::RootSpec("rootflags= contains a NUL byte".into()))?;
    mount(&device, SYSROOT, fstype.as_str(), flags, data.as_c_str()).map_err(|errno| {
        InitError::RootMount {
            device: device.clone(),
            fstype: fstype.clone(),
            errno,
        }
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
fn switch_root(cmdline: &Cmdline) -> Result<std::convert::Infallible, InitError> {
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
    let init = cmdline.value("init").unwrap_or("/sbin/init").to_owned();
    log::info!("switching root to {}", init);
    let error = std::process::Command::new(&init)
        .args(cmdline.init_args())
        .arg0(&init)
        .exec();
    Err(InitError::Exec { init, error })
}

/// Says why on the console, leaves the PCR question to later issues,
/// and powers off: PID 1 exiting would panic the kernel instead.
fn fail(err: &InitError) -> ! {
    let msg = format!("veriroot: refusing to boot: {err}");
    log::error!("refusing to boot: {err}");
    if let Ok(mut console) = std::fs::OpenOptions::new().write(true).open("/dev/console") {
        let _ = writeln!(console, "\n{msg}\nveriroot: powering off");
    }
    rustix::fs::sync();
    let _ = rustix::system::reboot(rustix::system::RebootCommand::PowerOff);
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
}
