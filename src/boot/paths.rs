//! Every place on the host the boot path reads or writes, outside the real
//! root: one value, passed down, so that tests build it under a temporary
//! directory and never read the host's command line or configuration,
//! open its TPM or write its /run.

use std::path::{Path, PathBuf};

use crate::boot::config;
use crate::measure::eventlog;
use crate::tpm::transport::DEVICE_PATHS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// The kernel command line (`/proc/cmdline`).
    pub cmdline: PathBuf,
    /// composefs-setup-root's configuration, read first.
    pub setup_root_config: PathBuf,
    /// veriroot's configuration, which wins (`/etc/veriroot/veriroot.conf`).
    pub config: PathBuf,
    /// Trusted signing keys (`/etc/veriroot/keys`, `[trust] signatures`).
    pub keys: PathBuf,
    /// TPM character devices, the first that exists is used.
    pub tpm_devices: Vec<PathBuf>,
    /// systemd's userspace measurement log.
    pub measure_log: PathBuf,
    /// veriroot's staging area; gets a private tmpfs (`/run/veriroot`).
    pub run_dir: PathBuf,
    /// sysfs: firmware tables, block devices.
    pub sys: PathBuf,
    /// Kernel modules of the initrd (`/lib/modules`).
    pub modules: PathBuf,
}

impl HostPaths {
    /// The running system's paths.
    pub fn system() -> HostPaths {
        HostPaths {
            cmdline: "/proc/cmdline".into(),
            setup_root_config: config::SETUP_ROOT_PATH.into(),
            config: config::DEFAULT_PATH.into(),
            keys: config::KEYS_DIR.into(),
            tpm_devices: DEVICE_PATHS.iter().map(PathBuf::from).collect(),
            // `$SYSTEMD_MEASURE_LOG_USERSPACE` moves it, as it moves systemd's.
            measure_log: eventlog::log_path(),
            run_dir: "/run/veriroot".into(),
            sys: "/sys".into(),
            modules: "/lib/modules".into(),
        }
    }

    /// The same paths below `root`: a test's private copy of the host.
    pub fn under(root: &Path) -> HostPaths {
        let system = HostPaths::system();
        let re = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
        HostPaths {
            cmdline: re(&system.cmdline),
            setup_root_config: re(&system.setup_root_config),
            config: re(&system.config),
            keys: re(&system.keys),
            tpm_devices: system.tpm_devices.iter().map(|p| re(p)).collect(),
            measure_log: re(&system.measure_log),
            run_dir: re(&system.run_dir),
            sys: re(&system.sys),
            modules: re(&system.modules),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_reroots_every_path() {
        let p = HostPaths::under(Path::new("/tmp/x"));
        let all = [
            &p.cmdline,
            &p.setup_root_config,
            &p.config,
            &p.keys,
            &p.measure_log,
            &p.run_dir,
            &p.sys,
            &p.modules,
        ];
        for path in all.into_iter().chain(&p.tpm_devices) {
            assert!(path.starts_with("/tmp/x/"), "{} escapes", path.display());
        }
        assert_eq!(p.tpm_devices[0], Path::new("/tmp/x/dev/tpmrm0"));
    }
}
