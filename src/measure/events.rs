//! What veriroot measures: the stable event strings (documented in
//! docs/pcr.md, which users seal to) and the PCR values they lead to.
//! Pure: the boot path extends them through `measurer`, `veriroot predict`
//! replays them here.

use std::collections::BTreeMap;

use crate::boot::cmdline::ImageRef;
use crate::boot::mount_modes::MountModes;
use crate::measure::bank::{self, HashAlg};
use crate::signature::KeyId;
use crate::sysext::rules::{MergedExtension, SYSEXT_PCR};

/// The string extended when a boot is refused. Once it is in the PCR, the
/// value a secret was sealed to can no longer be reached in this boot.
pub const FAILURE_EVENT: &str = "veriroot:verification-failed";

/// One extension: the PCR and the exact bytes measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub pcr: u32,
    pub string: String,
}

/// What a successful boot measures: the image, the key that signed it
/// (when a signature was verified), then the policy applied.
pub fn success_events(
    pcr: u32,
    image: &ImageRef,
    signer: Option<&KeyId>,
    mounts: MountModes,
) -> Vec<Event> {
    let mode = if image.insecure { "insecure" } else { "secure" };
    let mut events = vec![Event {
        pcr,
        string: format!(
            "veriroot:image:{}:{}",
            image.digest.algorithm(),
            image.digest.to_hex()
        ),
    }];
    if let Some(id) = signer {
        events.push(Event {
            pcr,
            string: format!("veriroot:signer:sha256:{id}"),
        });
    }
    events.push(Event {
        pcr,
        string: format!("veriroot:policy:{mode}:{}", mounts.describe()),
    });
    events
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

/// PCR 15 is systemd's "system identity" PCR: booted from a measured UKI,
/// `systemd-pcrmachine.service` extends it after switch root.
pub const PCR_SYSTEM_IDENTITY: u32 = 15;

/// What `systemd-pcrmachine.service` measures (systemd 257, `systemd-pcrextend
/// --machine-id`): `machine-id:` and the 32 hex digits of /etc/machine-id.
/// None if `id` is not a machine ID.
pub fn machine_id_event(id: &str) -> Option<Event> {
    let valid = id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    valid.then(|| Event {
        pcr: PCR_SYSTEM_IDENTITY,
        string: format!("machine-id:{id}"),
    })
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
    predict_from(BTreeMap::new(), events, banks)
}

/// As [`predict`], from `start` where it has a value (what was measured
/// into those PCRs before veriroot, `host::base_log`).
pub fn predict_from(
    start: BTreeMap<HashAlg, BTreeMap<u32, Vec<u8>>>,
    events: &[Event],
    banks: &[HashAlg],
) -> BTreeMap<HashAlg, BTreeMap<u32, Vec<u8>>> {
    let mut out = start;
    out.retain(|bank, _| banks.contains(bank));
    for &bank in banks {
        let pcrs = out.entry(bank).or_default();
        for e in events {
            let old = pcrs
                .remove(&e.pcr)
                .unwrap_or_else(|| vec![0; bank.digest_len()]);
            pcrs.insert(
                e.pcr,
                bank::extend(bank, &old, &bank.digest(e.string.as_bytes())),
            );
        }
    }
    out
}

/// `{"sha256":{"15":"<hex>"},...}`: the shape `veriroot predict --json`
/// and `veriroot log --json` print, and the scenarios compare.
pub fn pcrs_json(values: &BTreeMap<HashAlg, BTreeMap<u32, Vec<u8>>>) -> String {
    let banks: Vec<String> = values
        .iter()
        .map(|(bank, pcrs)| {
            let inner: Vec<String> = pcrs
                .iter()
                .map(|(pcr, v)| format!("\"{pcr}\":\"{}\"", crate::hex::encode(v)))
                .collect();
            format!("\"{}\":{{{}}}", bank.name(), inner.join(","))
        })
        .collect();
    format!("{{{}}}", banks.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::cmdline::Cmdline;
    use crate::boot::mount_modes::StateMount;

    const HEX: &str = "89c1c730fcd8d63a4a8030ca959388a4965133415878e406f69909062dcb6ae0";

    fn image(arg: &str) -> ImageRef {
        Cmdline::parse(arg).image_refs().unwrap().remove(0)
    }

    #[test]
    fn event_strings_are_stable() {
        let ev = success_events(
            15,
            &image(&format!("composefs={HEX}")),
            None,
            MountModes::default(),
        );
        assert_eq!(ev[0].string, format!("veriroot:image:sha256:{HEX}"));
        assert_eq!(
            ev[1].string,
            "veriroot:policy:secure:root=readonly:etc=overlay:var=bind"
        );
        let policy = MountModes {
            root_transient: true,
            etc: StateMount::None,
            var: StateMount::Bind,
        };
        let ev = success_events(14, &image(&format!("composefs=?{HEX}")), None, policy);
        let signed = success_events(
            15,
            &image(&format!("composefs={HEX}")),
            Some(&KeyId([0xab; 32])),
            MountModes::default(),
        );
        assert_eq!(signed.len(), 3);
        assert_eq!(
            signed[1].string,
            format!("veriroot:signer:sha256:{}", "ab".repeat(32))
        );
        assert_eq!(
            ev[1].string,
            "veriroot:policy:insecure:root=transient:etc=none:var=bind"
        );
        assert!(ev.iter().all(|e| e.pcr == 14));
        assert_eq!(failure_event(15).string, "veriroot:verification-failed");
    }

    #[test]
    fn sysext_events_go_to_pcr_13_in_stacking_order() {
        let d = |c: &str| crate::fsverity::digest::Digest::from_hex(&c.repeat(64)).unwrap();
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
            None,
            MountModes::default(),
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
    fn machine_id_event_is_systemds_string() {
        // As systemd 257 logged it in the uki-secureboot guest.
        let e = machine_id_event("c005803b6fc34c5fa472ba659b61fb91").unwrap();
        assert_eq!(e.pcr, 15);
        assert_eq!(e.string, "machine-id:c005803b6fc34c5fa472ba659b61fb91");
        assert_eq!(machine_id_event("C005803B6FC34C5FA472BA659B61FB91"), None);
        assert_eq!(machine_id_event("c005803b"), None);
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
