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
use crate::tpm::{Tpm, TpmError};

#[derive(Debug)]
pub enum MeasureError {
    /// `tpm.policy = "required"` and no TPM device exists.
    NoTpm,
    Tpm(TpmError),
}

impl fmt::Display for MeasureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MeasureError::NoTpm => f.write_str(
                "the configuration requires a TPM (tpm.policy = \"required\") but none was \
                 found (/dev/tpmrm0, /dev/tpm0): check that the TPM is enabled in the \
                 firmware and its driver is in the initrd",
            ),
            MeasureError::Tpm(e) => write!(f, "measuring into the TPM: {e}"),
        }
    }
}

impl std::error::Error for MeasureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MeasureError::NoTpm => None,
            MeasureError::Tpm(e) => Some(e),
        }
    }
}

/// The TPM as the boot path uses it, with the policy applied: under
/// `auto`, problems are warnings and the boot goes on unmeasured; under
/// `required` they are errors.
pub struct Measurer {
    tpm: Option<Tpm>,
    banks: Vec<HashAlg>,
    policy: TpmPolicy,
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
            policy,
            pcr,
            also_cap: Vec::new(),
            log,
        };
        let found = found.and_then(|t| match t {
            Some(mut tpm) => tpm.active_banks().map(|banks| Some((tpm, banks))),
            None => Ok(None),
        });
        match (found, policy) {
            (Ok(Some((tpm, banks))), _) => {
                m.tpm = Some(tpm);
                m.banks = banks;
            }
            (Ok(None), TpmPolicy::Required) => return Err(MeasureError::NoTpm),
            (Err(e), TpmPolicy::Required) => return Err(MeasureError::Tpm(e)),
            (Ok(None), _) => log::warn!(
                "no TPM found: the root is verified but NOT measured (set tpm.policy = \
                 \"required\" to refuse such boots)"
            ),
            (Err(e), _) => log::warn!("TPM unusable, the root is NOT measured: {e}"),
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
        match tpm.extend(event.pcr, &record.digests) {
            Ok(()) => {}
            Err(e) if self.policy == TpmPolicy::Required => return Err(MeasureError::Tpm(e)),
            Err(e) => {
                log::warn!("TPM extend failed, the root is NOT measured: {e}");
                return Ok(());
            }
        }
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

/// A refusal before the configuration could say which PCR to use (it is
/// the configuration that is broken): cap the default PCR, best effort,
/// so that even this boot cannot unseal what a good boot would.
pub fn cap_default_pcr(paths: &HostPaths) {
    if let Ok(mut m) = Measurer::open(TpmPolicy::Auto, DEFAULT_PCR, paths) {
        m.cap();
    }
}

fn bank_names(banks: &[HashAlg]) -> String {
    banks
        .iter()
        .map(|b| b.name())
        .collect::<Vec<_>>()
        .join(", ")
}
