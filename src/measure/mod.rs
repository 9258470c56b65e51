//! What goes into the TPM and systemd's measurement log.
//!
//! | module | job |
//! |---|---|
//! | `events` | the event strings (docs/pcr.md) and PCR prediction; pure |
//! | `bank` | PCR banks: their hash algorithms, extend and replay arithmetic |
//! | `measurer` | the boot path's TPM: extend every bank, write the log, cap on refusal |
//! | `eventlog` | systemd's userspace measurement log: records, parser, writer |
//!
//! The TPM protocol itself is the `tpm` module.
#![forbid(unsafe_code)]

pub mod bank;
pub mod eventlog;
pub mod events;
pub mod measurer;

pub use bank::HashAlg;
pub use events::Event;
pub use measurer::{MeasureError, Measurer};
