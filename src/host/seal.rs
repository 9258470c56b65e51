//! Sealing a secret to a veriroot boot: the `--tpm2-pcrs=` argument that
//! `systemd-cryptenroll` takes (`veriroot predict --tpm2-pcrs`), with the
//! PCRs that prove veriroot itself ran added by default (docs/sealing.md).
//!
//! PCR 15 alone is not enough: it is reset at every boot and any initrd can
//! extend veriroot's event strings into it. What an initrd without veriroot
//! cannot fake is the measurement of the initrd itself: PCR 11 for a UKI
//! (systemd-stub measures its `.initrd` section), PCR 9 otherwise (the
//! Linux EFI stub or the boot loader measures the initrd it loads).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::measure::events::Event;
use crate::measure::HashAlg;

/// The initrd, as the Linux EFI stub (and GRUB) measure it.
pub const PCR_INITRD: u32 = 9;
/// A UKI's sections and systemd's boot phases (systemd-stub, systemd-pcrphase).
pub const PCR_KERNEL_BOOT: u32 = 11;

/// Where PCR 11's part of the policy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pcr11 {
    /// The predicted value, literally (needs a UKI: `predict --uki`).
    Literal,
    /// A signed PCR 11 policy (`ukify --pcr-private-key`, enrolled with
    /// `--tpm2-public-key-pcrs=11`): the literal part leaves PCR 11 out.
    Signed,
}

/// `PCR:BANK=HEX` for every predicted PCR of `bank`, joined with `+`, in
/// PCR order, as `systemd-cryptenroll --tpm2-pcrs=` reads them. Without a
/// UKI (`uki` false) and without a signed PCR 11 policy, PCR 9 is added
/// without a value: systemd-cryptenroll then binds it to its value at
/// enrolment, which is the initrd of the running boot (veriroot cannot
/// predict it: it depends on the boot loader and the initrd's bytes).
pub fn tpm2_pcrs(pcrs: &BTreeMap<u32, Vec<u8>>, bank: HashAlg, uki: bool, pcr11: Pcr11) -> String {
    let mut out = String::new();
    let sep = |out: &mut String| {
        if !out.is_empty() {
            out.push('+');
        }
    };
    if !uki && pcr11 == Pcr11::Literal && !pcrs.contains_key(&PCR_INITRD) {
        out.push_str(&PCR_INITRD.to_string());
    }
    for (pcr, value) in pcrs {
        if *pcr == PCR_KERNEL_BOOT && pcr11 == Pcr11::Signed {
            continue;
        }
        sep(&mut out);
        // Writing to a String cannot fail.
        let _ = write!(out, "{pcr}:{}={}", bank.name(), crate::hex::encode(value));
    }
    out
}

/// A systemd-pcrlock component (`systemd.pcrlock(5)`): one record per
/// event, in order, with the event string's hash in each of `banks`.
/// Saved as `/var/lib/pcrlock.d/755-veriroot.pcrlock.d/<name>.pcrlock`,
/// one file per image the policy admits (pcrlock's variants). 755: after
/// systemd's 750-enter-initrd, and below 760, where pcrlock's default
/// `--location=760-:940-` starts treating components as not yet measured
/// and so admits PCR 15 without them (zeros): docs/sealing.md.
pub fn pcrlock_json(events: &[Event], banks: &[HashAlg]) -> String {
    let records: Vec<String> = events
        .iter()
        .map(|e| {
            let digests: Vec<String> = banks
                .iter()
                .map(|b| {
                    format!(
                        "{{\"hashAlg\":\"{}\",\"digest\":\"{}\"}}",
                        b.name(),
                        crate::hex::encode(&b.digest(e.string.as_bytes()))
                    )
                })
                .collect();
            format!("{{\"pcr\":{},\"digests\":[{}]}}", e.pcr, digests.join(","))
        })
        .collect();
    format!("{{\"records\":[{}]}}", records.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What trixie's `systemd-pcrlock lock-raw --pcr=15` (257) wrote for
    /// the same string: the format and the digests.
    #[test]
    fn pcrlock_component_is_what_systemd_pcrlock_writes() {
        let e = Event {
            pcr: 15,
            string: format!("veriroot:image:sha256:{}", "ab".repeat(32)),
        };
        let json = pcrlock_json(&[e], &[HashAlg::Sha1, HashAlg::Sha256]);
        assert_eq!(
            json,
            "{\"records\":[{\"pcr\":15,\"digests\":[\
             {\"hashAlg\":\"sha1\",\"digest\":\"fd92cedace7d0655efd4208c1c134d045ceaa908\"},\
             {\"hashAlg\":\"sha256\",\"digest\":\
             \"5f50f2168207c2c30ca67a24063869a079d97916956e8d485aacad36ab2bceae\"}]}]}"
        );
    }

    fn values(pcrs: &[(u32, u8)]) -> BTreeMap<u32, Vec<u8>> {
        pcrs.iter().map(|&(p, b)| (p, vec![b; 32])).collect()
    }

    #[test]
    fn without_a_uki_pcr_9_is_bound_to_its_value_at_enrolment() {
        let s = tpm2_pcrs(
            &values(&[(15, 0xab)]),
            HashAlg::Sha256,
            false,
            Pcr11::Literal,
        );
        assert_eq!(s, format!("9+15:sha256={}", "ab".repeat(32)));
    }

    #[test]
    fn with_a_uki_pcr_11_is_literal_and_pcr_9_is_not_added() {
        let s = tpm2_pcrs(
            &values(&[(11, 0x11), (15, 0x15)]),
            HashAlg::Sha256,
            true,
            Pcr11::Literal,
        );
        assert_eq!(
            s,
            format!(
                "11:sha256={}+15:sha256={}",
                "11".repeat(32),
                "15".repeat(32)
            )
        );
    }

    #[test]
    fn a_signed_pcr_11_policy_leaves_pcr_11_out() {
        let v = values(&[(11, 0x11), (15, 0x15)]);
        let s = tpm2_pcrs(&v, HashAlg::Sha256, true, Pcr11::Signed);
        assert_eq!(s, format!("15:sha256={}", "15".repeat(32)));
        // Without --uki too: PCR 9 is not added, the signature binds the UKI.
        let s = tpm2_pcrs(
            &values(&[(15, 0x15)]),
            HashAlg::Sha256,
            false,
            Pcr11::Signed,
        );
        assert_eq!(s, format!("15:sha256={}", "15".repeat(32)));
    }

    #[test]
    fn extensions_and_other_banks_keep_pcr_order() {
        let v = values(&[(13, 0x13), (15, 0x15)]);
        let s = tpm2_pcrs(&v, HashAlg::Sha1, false, Pcr11::Literal);
        assert_eq!(
            s,
            format!("9+13:sha1={}+15:sha1={}", "13".repeat(32), "15".repeat(32))
        );
    }
}
