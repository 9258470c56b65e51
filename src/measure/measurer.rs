//! The boot path's TPM: every event extended into every active PCR bank
//! and recorded in systemd's measurement log, with the `[tpm] policy`
//! applied (under `auto` a machine without a TPM boots unmeasured; under
//! `required` it is refused).

use std::fmt;
use std::path::PathBuf;

use crate::boot::config::{TpmPolicy, DEFAULT_PCR};
use crate::boot::paths::HostPaths;
use crate::measure::bank::HashAlg;
use crate::measure::eventlog::{LogWriter, Record, VERIROOT_EVENT_TYPE};
use crate::measure::events::{failure_events, Event};
use crate::sysext::rules::SYSEXT_PCR;
use crate::tpm::{Tpm, TpmError};

#[derive(Debug)]
pub enum MeasureError {
    /// `tpm.policy = "required"` and no TPM device exists.
    NoTpm,
    /// A TPM exists but failed: under any policy the boot is refused (a
    /// broken TPM must not pass for an absent one).
    Tpm(TpmError),
    /// The TPM's active PCR banks all use hashes veriroot does not have:
    /// an extension would change nothing, so nothing could be measured.
    NoUsableBank { device: String },
}

impl fmt::Display for MeasureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MeasureError::NoTpm => f.write_str(
                "the configuration requires a TPM (tpm.policy = \"required\") but none was \
                 found (/dev/tpmrm0, /dev/tpm0): check that the TPM is enabled in the \
                 firmware and its driver is in the initrd",
            ),
            MeasureError::Tpm(e) => write!(
                f,
                "measuring into the TPM: {e}; a TPM that is present but fails refuses the \
                 boot under every tpm.policy (set tpm.policy = \"off\" to boot without \
                 measuring)"
            ),
            MeasureError::NoUsableBank { device } => write!(
                f,
                "the TPM {device} has no active PCR bank veriroot can extend (sha1, sha256, \
                 sha384, sha512): activate one (e.g. with tpm2_pcrallocate) or set \
                 tpm.policy = \"off\""
            ),
        }
    }
}

impl std::error::Error for MeasureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MeasureError::NoTpm | MeasureError::NoUsableBank { .. } => None,
            MeasureError::Tpm(e) => Some(e),
        }
    }
}

/// The TPM as the boot path uses it, with the policy applied: `off`
/// measures nothing; `auto` boots unmeasured (with a warning) only when
/// there is no TPM at all; `required` refuses that too. A TPM that exists
/// but fails refuses the boot under `auto` and `required` alike.
///
/// Every refusal caps the main PCR (15 or the configured one) and the
/// system extensions' PCR 13: every PCR veriroot could have extended.
pub struct Measurer {
    tpm: Option<Tpm>,
    banks: Vec<HashAlg>,
    pcr: u32,
    /// PCRs capped on a refusal besides `pcr` (the sysext PCR when
    /// extensions were asked for).
    also_cap: Vec<u32>,
    /// systemd's userspace measurement log.
    log: PathBuf,
}

impl Measurer {
    /// Finds the TPM among `paths.tpm_devices` (none under `off`) and
    /// learns its active banks; records go to `paths.measure_log`.
    pub fn open(policy: TpmPolicy, pcr: u32, paths: &HostPaths) -> Result<Measurer, MeasureError> {
        let found = match policy {
            TpmPolicy::Off => Ok(None),
            _ => Tpm::open(&paths.tpm_devices),
        };
        Self::with(found, policy, pcr, paths.measure_log.clone())
    }

    /// The same with a TPM already connected (tests: swtpm's socket).
    pub fn with_tpm(
        tpm: Tpm,
        policy: TpmPolicy,
        pcr: u32,
        log: PathBuf,
    ) -> Result<Measurer, MeasureError> {
        Self::with(Ok(Some(tpm)), policy, pcr, log)
    }

    fn with(
        found: Result<Option<Tpm>, TpmError>,
        policy: TpmPolicy,
        pcr: u32,
        log: PathBuf,
    ) -> Result<Measurer, MeasureError> {
        let mut m = Measurer {
            tpm: None,
            banks: Vec::new(),
            pcr,
            also_cap: vec![SYSEXT_PCR],
            log,
        };
        m.also_cap.retain(|&p| p != pcr);
        let found = found.and_then(|t| match t {
            Some(mut tpm) => tpm.active_banks().map(|banks| Some((tpm, banks))),
            None => Ok(None),
        });
        match (found, policy) {
            (Ok(Some((tpm, banks))), _) if banks.is_empty() => {
                return Err(MeasureError::NoUsableBank {
                    device: tpm.device().to_owned(),
                })
            }
            (Ok(Some((tpm, banks))), _) => {
                m.tpm = Some(tpm);
                m.banks = banks;
            }
            (Ok(None), TpmPolicy::Required) => return Err(MeasureError::NoTpm),
            (Ok(None), _) => log::warn!(
                "no TPM found: the root is verified but NOT measured (set tpm.policy = \
                 \"required\" to refuse such boots)"
            ),
            (Err(e), _) => return Err(MeasureError::Tpm(e)),
        }
        Ok(m)
    }

    pub fn pcr(&self) -> u32 {
        self.pcr
    }

    /// The banks being extended; empty when nothing is measured.
    pub fn banks(&self) -> &[HashAlg] {
        &self.banks
    }

    /// Extends every active bank with the event and records it in the log
    /// (the log is locked before the PCR changes, as systemd does). A log
    /// that cannot be written does not stop the measurement.
    pub fn measure(&mut self, event: &Event) -> Result<(), MeasureError> {
        let Some(tpm) = self.tpm.as_mut() else {
            return Ok(());
        };
        let record = Record::measure_string(
            event.pcr,
            &self.banks,
            &event.string,
            Some(VERIROOT_EVENT_TYPE),
        );
        let path = &self.log;
        let writer = LogWriter::open_locked(path)
            .map_err(|e| log::warn!("measurement log {}: {e}; measuring anyway", path.display()))
            .ok();
        // A failed extension refuses the boot whatever the policy: the
        // TPM is there, so a measured boot was possible and did not happen.
        tpm.extend(event.pcr, &record.digests)
            .map_err(MeasureError::Tpm)?;
        if let Some(Err(e)) = writer.map(|w| w.append(&record)) {
            log::warn!("measurement log {}: {e}", path.display());
        }
        log::info!(
            "measured '{}' into PCR {} ({})",
            event.string,
            event.pcr,
            bank_names(&self.banks)
        );
        Ok(())
    }

    /// A refusal caps `pcr` as well as the main PCR.
    pub fn also_cap(&mut self, pcr: u32) {
        if pcr != self.pcr && !self.also_cap.contains(&pcr) {
            self.also_cap.push(pcr);
        }
    }

    /// On any refusal: best effort, since the boot is already failing.
    pub fn cap(&mut self) {
        if self.tpm.is_none() {
            return;
        }
        for event in failure_events(self.pcr, &self.also_cap) {
            if let Err(e) = self.measure(&event) {
                log::error!("could not cap PCR {}: {e}", event.pcr);
            }
        }
    }
}

/// A refusal without a measurer: the configuration is broken (it cannot be
/// trusted to say which PCR), or opening the TPM failed. Caps, best effort,
/// the default PCR 15, PCR 13, and `also` (the PCR a broken configuration
/// seems to name), so that even this boot cannot unseal what a good boot
/// would.
pub fn cap_without_config(paths: &HostPaths, also: Option<u32>) {
    let tpm = match Tpm::open(&paths.tpm_devices) {
        // No TPM: nothing to cap, and nothing to say (the refusal says why).
        Ok(None) => return,
        Ok(Some(tpm)) => tpm,
        Err(e) => return log::error!("cannot cap the PCRs of this refused boot: {e}"),
    };
    match Measurer::with_tpm(tpm, TpmPolicy::Auto, DEFAULT_PCR, paths.measure_log.clone()) {
        Ok(mut m) => {
            if let Some(pcr) = also {
                m.also_cap(pcr);
            }
            m.cap();
        }
        Err(e) => log::error!("cannot cap the PCRs of this refused boot: {e}"),
    }
}

fn bank_names(banks: &[HashAlg]) -> String {
    banks
        .iter()
        .map(|b| b.name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpm::transport::Transport;

    /// A TPM whose only active bank is SM3 (no swtpm build allocates that).
    struct Sm3Only;

    impl Transport for Sm3Only {
        fn transact(&mut self, _command: &[u8]) -> std::io::Result<Vec<u8>> {
            #[rustfmt::skip]
            let resp = vec![
                0x80, 0x01, 0, 0, 0, 31, 0, 0, 0, 0,
                0x00, 0, 0, 0, 5, 0, 0, 0, 2,
                0x00, 0x12, 3, 0xFF, 0xFF, 0xFF, // SM3_256: active
                0x00, 0x0B, 3, 0x00, 0x00, 0x00, // sha256: inactive
            ];
            Ok(resp)
        }
        fn describe(&self) -> &str {
            "/dev/tpmrm0"
        }
    }

    #[test]
    fn a_tpm_without_a_usable_bank_is_an_error_not_a_silent_success() {
        for policy in [TpmPolicy::Auto, TpmPolicy::Required] {
            let tpm = Tpm::with_transport(Box::new(Sm3Only));
            let e = Measurer::with_tpm(tpm, policy, 15, "/nonexistent".into())
                .err()
                .unwrap();
            assert!(
                matches!(e, MeasureError::NoUsableBank { ref device } if device == "/dev/tpmrm0"),
                "{e}"
            );
        }
    }

    #[test]
    fn no_tpm_is_a_warning_under_auto_and_a_refusal_under_required() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths::under(dir.path());
        let m = Measurer::open(TpmPolicy::Auto, 15, &paths).unwrap();
        assert!(m.banks().is_empty());
        assert!(matches!(
            Measurer::open(TpmPolicy::Required, 15, &paths),
            Err(MeasureError::NoTpm)
        ));
    }

    #[test]
    fn a_tpm_that_cannot_be_opened_refuses_under_auto_too() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = HostPaths::under(dir.path());
        // A directory where the device should be: EISDIR, not "no TPM".
        paths.tpm_devices = vec![dir.path().to_owned()];
        assert!(matches!(
            Measurer::open(TpmPolicy::Auto, 15, &paths),
            Err(MeasureError::Tpm(_))
        ));
        assert!(Measurer::open(TpmPolicy::Off, 15, &paths).is_ok());
    }
}
