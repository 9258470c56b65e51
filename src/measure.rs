//! What veriroot measures into the TPM, and doing it: stable event strings
//! (documented in docs/pcr.md), each extended into every active PCR bank
//! with that bank's hash of the string, and recorded in systemd's userspace
//! measurement log, as systemd-pcrextend does.

use std::collections::BTreeMap;
use std::fmt;

use crate::cmdline::ImageRef;
use crate::config::TpmPolicy;
use crate::eventlog::{self, LogWriter, Record, VERIROOT_EVENT_TYPE};
use crate::hash::{self, HashAlg};
use crate::policy::MountPolicy;
use crate::sysext::{MergedExtension, SYSEXT_PCR};
use crate::tpm::{Tpm, TpmError};

/// The string extended when a boot is refused. Once it is in the PCR, the
/// value a secret was sealed to can no longer be reached in this boot.
pub const FAILURE_EVENT: &str = "veriroot:verification-failed";

/// One extension: the PCR and the exact bytes measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub pcr: u32,
    pub string: String,
}

/// What a successful boot measures: the image, then the policy applied.
pub fn success_events(pcr: u32, image: &ImageRef, policy: MountPolicy) -> Vec<Event> {
    let mode = if image.insecure { "insecure" } else { "secure" };
    vec![
        Event {
            pcr,
            string: format!(
                "veriroot:image:{}:{}",
                image.digest.algorithm(),
                image.digest.to_hex()
            ),
        },
        Event {
            pcr,
            string: format!("veriroot:policy:{mode}:{}", policy.describe()),
        },
    ]
}

/// What each merged system extension measures, in stacking order (lowest
/// first), into systemd's sysext PCR.
pub fn sysext_events(extensions: &[MergedExtension]) -> Vec<Event> {
    extensions
        .iter()
        .map(|e| Event {
            pcr: SYSEXT_PCR,
            string: format!(
                "veriroot:sysext:{}:{}:{}",
                e.name,
                e.digest.algorithm(),
                e.digest.to_hex()
            ),
        })
        .collect()
}

pub fn failure_event(pcr: u32) -> Event {
    Event {
        pcr,
        string: FAILURE_EVENT.to_owned(),
    }
}

/// What a refusal measures: the failure event into the main PCR, then
/// into each other PCR the boot would have extended.
pub fn failure_events(pcr: u32, also: &[u32]) -> Vec<Event> {
    std::iter::once(pcr)
        .chain(also.iter().copied().filter(|&p| p != pcr))
        .map(failure_event)
        .collect()
}

/// PCR values after `events`, per bank and PCR, from the reset value (all
/// zeros): what the TPM holds if veriroot is the only one to extend them.
pub fn predict(events: &[Event], banks: &[HashAlg]) -> BTreeMap<HashAlg, BTreeMap<u32, Vec<u8>>> {
    let mut out: BTreeMap<HashAlg, BTreeMap<u32, Vec<u8>>> = BTreeMap::new();
    for &bank in banks {
        let pcrs = out.entry(bank).or_default();
        for e in events {
            let old = pcrs
                .remove(&e.pcr)
                .unwrap_or_else(|| vec![0; bank.digest_len()]);
            pcrs.insert(
                e.pcr,
                hash::extend(bank, &old, &bank.digest(e.string.as_bytes())),
            );
        }
    }
    out
}

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

impl std::error::Error for MeasureError {}

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
}

impl Measurer {
    pub fn open(policy: TpmPolicy, pcr: u32) -> Result<Measurer, MeasureError> {
        let mut m = Measurer {
            tpm: None,
            banks: Vec::new(),
            policy,
            pcr,
            also_cap: Vec::new(),
        };
        if policy == TpmPolicy::Off {
            return Ok(m);
        }
        let found = Tpm::open().and_then(|t| match t {
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
        let path = eventlog::log_path();
        let writer = LogWriter::open_locked(&path)
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
pub fn cap_default_pcr() {
    if let Ok(mut m) = Measurer::open(TpmPolicy::Auto, crate::config::DEFAULT_PCR) {
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

/// `{"sha256":{"15":"<hex>"},...}`: the shape `veriroot predict --json`
/// and `veriroot log --json` print, and the scenarios compare.
pub fn pcrs_json(values: &BTreeMap<HashAlg, BTreeMap<u32, Vec<u8>>>) -> String {
    let banks: Vec<String> = values
        .iter()
        .map(|(bank, pcrs)| {
            let inner: Vec<String> = pcrs
                .iter()
                .map(|(pcr, v)| format!("\"{pcr}\":\"{}\"", hex(v)))
                .collect();
            format!("\"{}\":{{{}}}", bank.name(), inner.join(","))
        })
        .collect();
    format!("{{{}}}", banks.join(","))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::Cmdline;
    use crate::policy::StateMount;

    const HEX: &str = "89c1c730fcd8d63a4a8030ca959388a4965133415878e406f69909062dcb6ae0";

    fn image(arg: &str) -> ImageRef {
        Cmdline::parse(arg).image_refs().unwrap().remove(0)
    }

    #[test]
    fn event_strings_are_stable() {
        let ev = success_events(
            15,
            &image(&format!("composefs={HEX}")),
            MountPolicy::default(),
        );
        assert_eq!(ev[0].string, format!("veriroot:image:sha256:{HEX}"));
        assert_eq!(
            ev[1].string,
            "veriroot:policy:secure:root=readonly:etc=overlay:var=bind"
        );
        let policy = MountPolicy {
            root_transient: true,
            etc: StateMount::None,
            var: StateMount::Bind,
        };
        let ev = success_events(14, &image(&format!("composefs=?{HEX}")), policy);
        assert_eq!(
            ev[1].string,
            "veriroot:policy:insecure:root=transient:etc=none:var=bind"
        );
        assert!(ev.iter().all(|e| e.pcr == 14));
        assert_eq!(failure_event(15).string, "veriroot:verification-failed");
    }

    #[test]
    fn sysext_events_go_to_pcr_13_in_stacking_order() {
        let d = |c: &str| crate::digest::Digest::from_hex(&c.repeat(64)).unwrap();
        let ev = sysext_events(&[
            MergedExtension {
                name: "tools".into(),
                digest: d("a"),
            },
            MergedExtension {
                name: "opt".into(),
                digest: d("b"),
            },
        ]);
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|e| e.pcr == 13));
        assert_eq!(
            ev[0].string,
            format!("veriroot:sysext:tools:sha256:{}", "a".repeat(64))
        );
        assert_eq!(
            ev[1].string,
            format!("veriroot:sysext:opt:sha256:{}", "b".repeat(64))
        );
        // A refusal caps each PCR once, the main one first.
        let caps = failure_events(15, &[13, 15]);
        assert_eq!(caps.iter().map(|e| e.pcr).collect::<Vec<_>>(), [15, 13]);
        assert!(caps.iter().all(|e| e.string == FAILURE_EVENT));
        // Order matters: swapping the extensions changes PCR 13.
        let swapped: Vec<Event> = ev.iter().rev().cloned().collect();
        assert_ne!(
            predict(&ev, &[HashAlg::Sha256]),
            predict(&swapped, &[HashAlg::Sha256])
        );
    }

    #[test]
    fn prediction_matches_an_independent_computation() {
        // python3: h=hashlib.sha256; v=bytes(32)
        //   for s in [b"veriroot:image:sha256:"+HEX, b"veriroot:policy:secure:root=readonly:etc=overlay:var=bind"]:
        //       v = h(v + h(s).digest()).digest()
        let ev = success_events(
            15,
            &image(&format!("composefs={HEX}")),
            MountPolicy::default(),
        );
        let p = predict(&ev, &[HashAlg::Sha256, HashAlg::Sha1]);
        assert_eq!(p.len(), 2);
        let mut v = vec![0u8; 32];
        for e in &ev {
            let d = HashAlg::Sha256.digest(e.string.as_bytes());
            v = HashAlg::Sha256.digest(&[v, d].concat());
        }
        assert_eq!(p[&HashAlg::Sha256][&15], v);
        assert_eq!(p[&HashAlg::Sha1][&15].len(), 20);
    }

    #[test]
    fn json_shape() {
        let mut m = BTreeMap::new();
        m.insert(HashAlg::Sha256, BTreeMap::from([(15, vec![0xab, 0x01])]));
        m.insert(
            HashAlg::Sha1,
            BTreeMap::from([(13, vec![0x00]), (15, vec![0xff])]),
        );
        assert_eq!(
            pcrs_json(&m),
            r#"{"sha1":{"13":"00","15":"ff"},"sha256":{"15":"ab01"}}"#
        );
    }
}
