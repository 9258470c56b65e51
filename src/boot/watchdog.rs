//! An overall deadline for the boot path: every wait inside it is bounded
//! (the root device, the TPM, the log's lock, each TPM command), but a
//! kernel that never answers a syscall (a hung disk, a stuck TPM driver)
//! could still hold it for ever. When the deadline passes, a thread of our
//! own caps the PCRs through a fresh TPM connection and ends the boot:
//! nothing is handed off, whatever the main thread was doing.

use std::time::Duration;

use crate::boot::cmdline::Cmdline;
use crate::boot::paths::HostPaths;
use crate::measure::measurer::cap_without_config;

/// The karg that sets the deadline, in whole seconds.
pub const KARG: &str = "veriroot.timeout";

/// The boot path's deadline without `veriroot.timeout=`: ample for a
/// repository on a slow disk under emulation; the waits for the root
/// device and the TPM (PID 1) come on top.
pub const DEFAULT: Duration = Duration::from_secs(90);

/// `veriroot.timeout=` or the default; `Err` with the value if it is not a
/// number of seconds (the caller refuses the boot with it).
pub fn limit(cmdline: &Cmdline) -> Result<Duration, String> {
    match cmdline.value(KARG) {
        None => Ok(DEFAULT),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|&s| s > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| v.to_owned()),
    }
}

/// Starts the watchdog: after `limit`, cap the default PCR, PCR 13 and
/// `pcr`, log why, and call `end` (power off as PID 1, exit 1 under
/// systemd). The process ending first (hand-off, refusal) disarms it.
pub fn arm(limit: Duration, paths: HostPaths, pcr: u32, end: fn() -> !) {
    let spawned = std::thread::Builder::new()
        .name("veriroot-watchdog".into())
        .spawn(move || {
            std::thread::sleep(limit);
            log::error!(
                "refusing to boot: the boot path did not finish within {} s ({KARG}=); \
                 a disk or the TPM stopped answering",
                limit.as_secs()
            );
            cap_without_config(&paths, Some(pcr));
            end()
        });
    if let Err(e) = spawned {
        // Without the thread the bounded waits still hold; say so.
        log::warn!("cannot start the watchdog: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_comes_from_the_command_line() {
        assert_eq!(limit(&Cmdline::parse("ro")), Ok(DEFAULT));
        assert_eq!(
            limit(&Cmdline::parse("veriroot.timeout=5")),
            Ok(Duration::from_secs(5))
        );
        assert_eq!(
            limit(&Cmdline::parse("veriroot.timeout=0")),
            Err("0".into())
        );
        assert_eq!(
            limit(&Cmdline::parse("veriroot.timeout=1m")),
            Err("1m".into())
        );
    }
}
