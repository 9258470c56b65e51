//! Tools that run on a host or in a booted system, never on the boot path:
//! `check` (preflight), `enable_verity`, `digest` (fs-verity digests in
//! userspace), `predict` (PCR values, incl. a UKI's PCR 11 from `uki`, and
//! the `--tpm2-pcrs=` form of `seal`) and
//! `log` (replaying systemd's measurement log against the TPM), `status`
//! (the running image and the last refused boot). They print
//! to stdout; `main` dispatches to them.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use crate::measure::HashAlg;

pub mod base_log;
pub mod check;
pub mod digest;
pub mod enable_verity;
pub mod log;
pub mod luks;
pub mod predict;
pub mod seal;
pub mod status;
pub mod uki;

/// `PCR NN bank hex`, one line per value: `predict` and `log` print this.
fn print_pcr_values(values: &BTreeMap<HashAlg, BTreeMap<u32, Vec<u8>>>) {
    for (bank, pcrs) in values {
        for (pcr, v) in pcrs {
            println!("PCR {pcr:>2} {:<6} {}", bank.name(), crate::hex::encode(v));
        }
    }
}
