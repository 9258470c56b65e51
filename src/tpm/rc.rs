//! TPM 2.0 response codes (`TPM_RC`, TPM 2.0 Part 2 §6.6), decoded for
//! error messages: name, meaning and, for format-one codes, which handle,
//! parameter or session the TPM objected to.
//!
//! Layout of the low 12 bits:
//! - format one (bit 7 set): bits 0–5 the error, bit 6 P (parameter), bits
//!   8–11 N: the parameter number if P, else a handle number (N < 8) or a
//!   session number (N − 8); N = 0 means none was named.
//! - format zero (bit 7 clear): bit 8 VER1 (a TPM 2.0 code; clear means a
//!   TPM 1.2 code such as TPM_RC_BAD_TAG), bit 10 T (vendor defined), bit 11
//!   S (a warning: the command did not run and may succeed later).

use std::fmt;

/// A raw response code from a TPM response header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResponseCode(pub u32);

pub const TPM_RC_SUCCESS: u32 = 0x000;
pub const TPM_RC_BAD_TAG: u32 = 0x01E;
pub const TPM_RC_INITIALIZE: u32 = RC_VER1;
pub const TPM_RC_VALUE: u32 = RC_FMT1 + 0x004;
pub const TPM_RC_YIELDED: u32 = RC_WARN + 0x008;
pub const TPM_RC_TESTING: u32 = RC_WARN + 0x00A;
pub const TPM_RC_RETRY: u32 = RC_WARN + 0x022;

const RC_VER1: u32 = 0x100;
const RC_FMT1: u32 = 0x080;
const RC_WARN: u32 = 0x900;
const RC_VENDOR: u32 = 0x400;
const RC_P: u32 = 0x040;

/// What a format-one code names as the culprit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    Handle(u8),
    Parameter(u8),
    Session(u8),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Handle(n) => write!(f, "handle {n}"),
            Subject::Parameter(n) => write!(f, "parameter {n}"),
            Subject::Session(n) => write!(f, "session {n}"),
        }
    }
}

/// (code, name, meaning), from TPM 2.0 Part 2 table 16.
const CODES: &[(u32, &str, &str)] = &[
    (TPM_RC_BAD_TAG, "TPM_RC_BAD_TAG", "bad command tag"),
    // Format zero, version 1.
    (
        RC_VER1,
        "TPM_RC_INITIALIZE",
        "TPM not initialized by TPM2_Startup or already initialized",
    ),
    (
        RC_VER1 + 0x001,
        "TPM_RC_FAILURE",
        "commands not being accepted because of a TPM failure",
    ),
    (
        RC_VER1 + 0x003,
        "TPM_RC_SEQUENCE",
        "improper use of a sequence handle",
    ),
    (RC_VER1 + 0x00B, "TPM_RC_PRIVATE", "not currently used"),
    (RC_VER1 + 0x019, "TPM_RC_HMAC", "not currently used"),
    (
        RC_VER1 + 0x020,
        "TPM_RC_DISABLED",
        "the command is disabled",
    ),
    (
        RC_VER1 + 0x021,
        "TPM_RC_EXCLUSIVE",
        "command failed because audit sequence required exclusivity",
    ),
    (
        RC_VER1 + 0x024,
        "TPM_RC_AUTH_TYPE",
        "authorization handle is not correct for command",
    ),
    (
        RC_VER1 + 0x025,
        "TPM_RC_AUTH_MISSING",
        "command requires an authorization session for handle and it is not present",
    ),
    (
        RC_VER1 + 0x026,
        "TPM_RC_POLICY",
        "policy failure in math operation or an invalid authPolicy value",
    ),
    (RC_VER1 + 0x027, "TPM_RC_PCR", "PCR check fail"),
    (
        RC_VER1 + 0x028,
        "TPM_RC_PCR_CHANGED",
        "PCR have changed since checked",
    ),
    (
        RC_VER1 + 0x02D,
        "TPM_RC_UPGRADE",
        "the TPM is in field upgrade mode",
    ),
    (
        RC_VER1 + 0x02E,
        "TPM_RC_TOO_MANY_CONTEXTS",
        "context ID counter is at maximum",
    ),
    (
        RC_VER1 + 0x02F,
        "TPM_RC_AUTH_UNAVAILABLE",
        "authValue or authPolicy is not available for selected entity",
    ),
    (
        RC_VER1 + 0x030,
        "TPM_RC_REBOOT",
        "a _TPM_Init and Startup(CLEAR) is required before the TPM can resume operation",
    ),
    (
        RC_VER1 + 0x031,
        "TPM_RC_UNBALANCED",
        "the protection algorithms (hash and symmetric) are not reasonably balanced",
    ),
    (
        RC_VER1 + 0x042,
        "TPM_RC_COMMAND_SIZE",
        "commandSize is inconsistent with the contents of the command buffer",
    ),
    (
        RC_VER1 + 0x043,
        "TPM_RC_COMMAND_CODE",
        "command code not supported",
    ),
    (
        RC_VER1 + 0x044,
        "TPM_RC_AUTHSIZE",
        "authorizationSize is out of range or the authorization area is larger than required",
    ),
    (
        RC_VER1 + 0x045,
        "TPM_RC_AUTH_CONTEXT",
        "an authorization session with a command that cannot have one",
    ),
    (
        RC_VER1 + 0x046,
        "TPM_RC_NV_RANGE",
        "NV offset+size is out of range",
    ),
    (
        RC_VER1 + 0x047,
        "TPM_RC_NV_SIZE",
        "requested allocation size is larger than allowed",
    ),
    (RC_VER1 + 0x048, "TPM_RC_NV_LOCKED", "NV access locked"),
    (
        RC_VER1 + 0x049,
        "TPM_RC_NV_AUTHORIZATION",
        "NV access authorization fails in command actions",
    ),
    (
        RC_VER1 + 0x04A,
        "TPM_RC_NV_UNINITIALIZED",
        "an NV Index is used before being initialized",
    ),
    (
        RC_VER1 + 0x04B,
        "TPM_RC_NV_SPACE",
        "insufficient space for NV allocation",
    ),
    (
        RC_VER1 + 0x04C,
        "TPM_RC_NV_DEFINED",
        "NV Index or persistent object already defined",
    ),
    (
        RC_VER1 + 0x050,
        "TPM_RC_BAD_CONTEXT",
        "context in TPM2_ContextLoad() is not valid",
    ),
    (
        RC_VER1 + 0x051,
        "TPM_RC_CPHASH",
        "cpHash value already set or not correct for use",
    ),
    (
        RC_VER1 + 0x052,
        "TPM_RC_PARENT",
        "handle for parent is not a valid parent",
    ),
    (
        RC_VER1 + 0x053,
        "TPM_RC_NEEDS_TEST",
        "some function needs testing",
    ),
    (
        RC_VER1 + 0x054,
        "TPM_RC_NO_RESULT",
        "an internal function cannot process a request due to an unspecified problem",
    ),
    (
        RC_VER1 + 0x055,
        "TPM_RC_SENSITIVE",
        "the sensitive area did not unmarshal correctly after decryption",
    ),
    // Format one.
    (
        RC_FMT1 + 0x001,
        "TPM_RC_ASYMMETRIC",
        "asymmetric algorithm not supported or not correct",
    ),
    (
        RC_FMT1 + 0x002,
        "TPM_RC_ATTRIBUTES",
        "inconsistent attributes",
    ),
    (
        RC_FMT1 + 0x003,
        "TPM_RC_HASH",
        "hash algorithm not supported or not appropriate",
    ),
    (
        TPM_RC_VALUE,
        "TPM_RC_VALUE",
        "value is out of range or is not correct for the context",
    ),
    (
        RC_FMT1 + 0x005,
        "TPM_RC_HIERARCHY",
        "hierarchy is not enabled or is not correct for the use",
    ),
    (
        RC_FMT1 + 0x007,
        "TPM_RC_KEY_SIZE",
        "key size is not supported",
    ),
    (
        RC_FMT1 + 0x008,
        "TPM_RC_MGF",
        "mask generation function not supported",
    ),
    (
        RC_FMT1 + 0x009,
        "TPM_RC_MODE",
        "mode of operation not supported",
    ),
    (
        RC_FMT1 + 0x00A,
        "TPM_RC_TYPE",
        "the type of the value is not appropriate for the use",
    ),
    (
        RC_FMT1 + 0x00B,
        "TPM_RC_HANDLE",
        "the handle is not correct for the use",
    ),
    (
        RC_FMT1 + 0x00C,
        "TPM_RC_KDF",
        "unsupported key derivation function or function not appropriate for use",
    ),
    (
        RC_FMT1 + 0x00D,
        "TPM_RC_RANGE",
        "value was out of allowed range",
    ),
    (
        RC_FMT1 + 0x00E,
        "TPM_RC_AUTH_FAIL",
        "the authorization HMAC check failed and DA counter incremented",
    ),
    (
        RC_FMT1 + 0x00F,
        "TPM_RC_NONCE",
        "invalid nonce size or nonce value mismatch",
    ),
    (
        RC_FMT1 + 0x010,
        "TPM_RC_PP",
        "authorization requires assertion of PP",
    ),
    (
        RC_FMT1 + 0x012,
        "TPM_RC_SCHEME",
        "unsupported or incompatible scheme",
    ),
    (
        RC_FMT1 + 0x015,
        "TPM_RC_SIZE",
        "structure is the wrong size",
    ),
    (
        RC_FMT1 + 0x016,
        "TPM_RC_SYMMETRIC",
        "unsupported symmetric algorithm or key size",
    ),
    (RC_FMT1 + 0x017, "TPM_RC_TAG", "incorrect structure tag"),
    (
        RC_FMT1 + 0x018,
        "TPM_RC_SELECTOR",
        "union selector is incorrect",
    ),
    (
        RC_FMT1 + 0x01A,
        "TPM_RC_INSUFFICIENT",
        "not enough octets in the input buffer to unmarshal a value",
    ),
    (
        RC_FMT1 + 0x01B,
        "TPM_RC_SIGNATURE",
        "the signature is not valid",
    ),
    (
        RC_FMT1 + 0x01C,
        "TPM_RC_KEY",
        "key fields are not compatible with the selected use",
    ),
    (
        RC_FMT1 + 0x01D,
        "TPM_RC_POLICY_FAIL",
        "a policy check failed",
    ),
    (
        RC_FMT1 + 0x01F,
        "TPM_RC_INTEGRITY",
        "integrity check failed",
    ),
    (RC_FMT1 + 0x020, "TPM_RC_TICKET", "invalid ticket"),
    (
        RC_FMT1 + 0x021,
        "TPM_RC_RESERVED_BITS",
        "reserved bits not set to zero as required",
    ),
    (
        RC_FMT1 + 0x022,
        "TPM_RC_BAD_AUTH",
        "authorization failure without DA implications",
    ),
    (RC_FMT1 + 0x023, "TPM_RC_EXPIRED", "the policy has expired"),
    (
        RC_FMT1 + 0x024,
        "TPM_RC_POLICY_CC",
        "the commandCode in the policy is not the commandCode of the command",
    ),
    (
        RC_FMT1 + 0x025,
        "TPM_RC_BINDING",
        "public and sensitive portions of an object are not cryptographically bound",
    ),
    (RC_FMT1 + 0x026, "TPM_RC_CURVE", "curve not supported"),
    (
        RC_FMT1 + 0x027,
        "TPM_RC_ECC_POINT",
        "point is not on the required curve",
    ),
    // Warnings.
    (
        RC_WARN + 0x001,
        "TPM_RC_CONTEXT_GAP",
        "gap for context ID is too large",
    ),
    (
        RC_WARN + 0x002,
        "TPM_RC_OBJECT_MEMORY",
        "out of memory for object contexts",
    ),
    (
        RC_WARN + 0x003,
        "TPM_RC_SESSION_MEMORY",
        "out of memory for session contexts",
    ),
    (
        RC_WARN + 0x004,
        "TPM_RC_MEMORY",
        "out of shared object/session memory or need space for internal operations",
    ),
    (
        RC_WARN + 0x005,
        "TPM_RC_SESSION_HANDLES",
        "out of session handles",
    ),
    (
        RC_WARN + 0x006,
        "TPM_RC_OBJECT_HANDLES",
        "out of object handles",
    ),
    (RC_WARN + 0x007, "TPM_RC_LOCALITY", "bad locality"),
    (
        TPM_RC_YIELDED,
        "TPM_RC_YIELDED",
        "the TPM has suspended operation on the command; it may be retried",
    ),
    (
        RC_WARN + 0x009,
        "TPM_RC_CANCELED",
        "the command was canceled",
    ),
    (
        TPM_RC_TESTING,
        "TPM_RC_TESTING",
        "the TPM is performing self-tests",
    ),
    (
        RC_WARN + 0x020,
        "TPM_RC_NV_RATE",
        "the TPM is rate-limiting accesses to prevent wearout of NV",
    ),
    (
        RC_WARN + 0x021,
        "TPM_RC_LOCKOUT",
        "the TPM is in dictionary-attack lockout mode",
    ),
    (
        TPM_RC_RETRY,
        "TPM_RC_RETRY",
        "the TPM was not able to start the command",
    ),
    (
        RC_WARN + 0x023,
        "TPM_RC_NV_UNAVAILABLE",
        "the command may require writing of NV and NV is not currently accessible",
    ),
];

const REFERENCE_H: [&str; 7] = [
    "TPM_RC_REFERENCE_H0",
    "TPM_RC_REFERENCE_H1",
    "TPM_RC_REFERENCE_H2",
    "TPM_RC_REFERENCE_H3",
    "TPM_RC_REFERENCE_H4",
    "TPM_RC_REFERENCE_H5",
    "TPM_RC_REFERENCE_H6",
];
const REFERENCE_S: [&str; 7] = [
    "TPM_RC_REFERENCE_S0",
    "TPM_RC_REFERENCE_S1",
    "TPM_RC_REFERENCE_S2",
    "TPM_RC_REFERENCE_S3",
    "TPM_RC_REFERENCE_S4",
    "TPM_RC_REFERENCE_S5",
    "TPM_RC_REFERENCE_S6",
];

impl ResponseCode {
    pub const fn is_success(self) -> bool {
        self.0 == TPM_RC_SUCCESS
    }

    /// Bits above the low 16 are set by a software layer (a TSS), never by
    /// a TPM.
    const fn is_tpm_layer(self) -> bool {
        self.0 >> 16 == 0
    }

    const fn is_format_one(self) -> bool {
        self.is_tpm_layer() && self.0 & RC_FMT1 != 0
    }

    /// The code without the handle/parameter/session number of format one.
    pub const fn base(self) -> u32 {
        if self.is_format_one() {
            RC_FMT1 | (self.0 & 0x3F)
        } else {
            self.0
        }
    }

    /// The handle, parameter or session a format-one code names.
    pub const fn subject(self) -> Option<Subject> {
        if !self.is_format_one() {
            return None;
        }
        let n = ((self.0 >> 8) & 0xF) as u8;
        if n == 0 {
            None
        } else if self.0 & RC_P != 0 {
            Some(Subject::Parameter(n))
        } else if n & 8 != 0 {
            Some(Subject::Session(n - 8))
        } else {
            Some(Subject::Handle(n))
        }
    }

    /// A warning: the TPM did not run the command.
    pub const fn is_warning(self) -> bool {
        self.is_tpm_layer() && !self.is_format_one() && self.0 & 0xD00 == RC_WARN
    }

    /// Codes after which the same command should simply be sent again.
    pub const fn is_retryable(self) -> bool {
        matches!(self.0, TPM_RC_RETRY | TPM_RC_YIELDED | TPM_RC_TESTING)
    }

    fn lookup(self) -> Option<(&'static str, &'static str)> {
        if !self.is_tpm_layer() || (!self.is_format_one() && self.0 & RC_VENDOR != 0) {
            return None;
        }
        let base = self.base();
        if let Some(&(_, name, meaning)) = CODES.iter().find(|(c, _, _)| *c == base) {
            return Some((name, meaning));
        }
        let n = base.wrapping_sub(RC_WARN) as usize;
        if (0x10..0x17).contains(&n) {
            return Some((
                REFERENCE_H[n - 0x10],
                "a handle references a transient object or session that is not loaded",
            ));
        }
        if (0x18..0x1F).contains(&n) {
            return Some((
                REFERENCE_S[n - 0x18],
                "a session handle references a session that is not loaded",
            ));
        }
        None
    }

    /// `TPM_RC_VALUE`, or `None` for a code this table does not know.
    pub fn name(self) -> Option<&'static str> {
        self.lookup().map(|(name, _)| name)
    }

    /// What the specification says the code means.
    pub fn meaning(self) -> Option<&'static str> {
        self.lookup().map(|(_, meaning)| meaning)
    }
}

/// TPM 1.2's TPM_FAIL (TPM Main Part 2, 16: "the TPM has failed").
const TPM12_FAIL: u32 = 0x009;

impl fmt::Display for ResponseCode {
    /// E.g. `TPM_RC_VALUE (value is out of range or is not correct for the
    /// context) on handle 1`; unknown codes show their number and kind.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.lookup() {
            Some((name, meaning)) => write!(f, "{name} ({meaning})")?,
            None if !self.is_tpm_layer() => {
                return write!(
                    f,
                    "response code {:#010x} (from software layer {}, not the TPM)",
                    self.0,
                    self.0 >> 16
                )
            }
            None if self.is_format_one() => {
                write!(f, "unknown format-one error {:#05x}", self.base())?
            }
            None if self.0 & RC_VENDOR != 0 => {
                write!(f, "vendor-specific response code {:#05x}", self.0)?
            }
            None if self.is_warning() => write!(f, "unknown warning {:#05x}", self.0)?,
            // TPM 1.2's TPM_FAIL: what a TPM 2.0 stack sees from a TPM
            // that stopped working (QEMU's emulated TPM answers every
            // command with it once its swtpm is gone: scenario tpm-dies).
            None if self.0 == TPM12_FAIL => write!(
                f,
                "TPM_FAIL (TPM 1.2 response code 0x009: the TPM has failed and answers no \
                 command; an emulated TPM whose backend died answers this)"
            )?,
            None if self.0 & RC_VER1 == 0 => write!(f, "TPM 1.2 response code {:#05x}", self.0)?,
            None => write!(f, "unknown response code {:#05x}", self.0)?,
        }
        if let Some(subject) = self.subject() {
            write!(f, " on {subject}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_one_names_the_handle_parameter_or_session() {
        // TPM_RC_VALUE + TPM_RC_H + TPM_RC_1: PCR_Extend with PCR 24.
        let rc = ResponseCode(0x184);
        assert_eq!(rc.name(), Some("TPM_RC_VALUE"));
        assert_eq!(rc.subject(), Some(Subject::Handle(1)));
        assert_eq!(
            rc.to_string(),
            "TPM_RC_VALUE (value is out of range or is not correct for the context) on handle 1"
        );
        // TPM_RC_VALUE + TPM_RC_P + TPM_RC_1: PCR_Read with sizeofSelect 4.
        let rc = ResponseCode(0x1C4);
        assert_eq!(rc.base(), TPM_RC_VALUE);
        assert_eq!(rc.subject(), Some(Subject::Parameter(1)));
        assert!(rc.to_string().ends_with(" on parameter 1"));
        // TPM_RC_BAD_AUTH + TPM_RC_S + TPM_RC_1: session 1.
        let rc = ResponseCode(0x9A2);
        assert_eq!(rc.name(), Some("TPM_RC_BAD_AUTH"));
        assert_eq!(rc.subject(), Some(Subject::Session(1)));
        assert!(!rc.is_warning());
        // TPM_RC_AUTH_FAIL on session 1, TPM_RC_HASH on parameter 2,
        // TPM_RC_SIZE without a number, TPM_RC_HANDLE on handle 1.
        assert_eq!(ResponseCode(0x98E).name(), Some("TPM_RC_AUTH_FAIL"));
        assert_eq!(ResponseCode(0x2C3).name(), Some("TPM_RC_HASH"));
        assert_eq!(ResponseCode(0x2C3).subject(), Some(Subject::Parameter(2)));
        assert_eq!(ResponseCode(0x095).name(), Some("TPM_RC_SIZE"));
        assert_eq!(ResponseCode(0x095).subject(), None);
        assert_eq!(
            ResponseCode(0x18B).to_string(),
            "TPM_RC_HANDLE (the handle is not correct for the use) on handle 1"
        );
        // Parameter 15, the largest number.
        assert_eq!(ResponseCode(0xFC4).subject(), Some(Subject::Parameter(15)));
    }

    #[test]
    fn format_zero_codes() {
        for (code, name) in [
            (0x100, "TPM_RC_INITIALIZE"),
            (0x101, "TPM_RC_FAILURE"),
            (0x125, "TPM_RC_AUTH_MISSING"),
            (0x127, "TPM_RC_PCR"),
            (0x143, "TPM_RC_COMMAND_CODE"),
            (0x01E, "TPM_RC_BAD_TAG"),
        ] {
            let rc = ResponseCode(code);
            assert_eq!(rc.name(), Some(name), "{code:#x}");
            assert_eq!(rc.subject(), None);
            assert!(!rc.is_warning() && !rc.is_retryable());
        }
        assert_eq!(
            ResponseCode(0x100).to_string(),
            "TPM_RC_INITIALIZE (TPM not initialized by TPM2_Startup or already initialized)"
        );
    }

    #[test]
    fn warnings_and_retries() {
        for (code, name, retry) in [
            (0x907, "TPM_RC_LOCALITY", false),
            (0x908, "TPM_RC_YIELDED", true),
            (0x909, "TPM_RC_CANCELED", false),
            (0x90A, "TPM_RC_TESTING", true),
            (0x921, "TPM_RC_LOCKOUT", false),
            (0x922, "TPM_RC_RETRY", true),
            (0x910, "TPM_RC_REFERENCE_H0", false),
            (0x916, "TPM_RC_REFERENCE_H6", false),
            (0x918, "TPM_RC_REFERENCE_S0", false),
            (0x91E, "TPM_RC_REFERENCE_S6", false),
        ] {
            let rc = ResponseCode(code);
            assert_eq!(rc.name(), Some(name), "{code:#x}");
            assert!(rc.is_warning(), "{code:#x}");
            assert_eq!(rc.is_retryable(), retry, "{code:#x}");
            assert_eq!(rc.subject(), None);
        }
    }

    #[test]
    fn unknown_codes_still_say_something() {
        assert_eq!(ResponseCode(0x917).name(), None);
        assert_eq!(ResponseCode(0x917).to_string(), "unknown warning 0x917");
        assert_eq!(
            ResponseCode(0x500).to_string(),
            "vendor-specific response code 0x500"
        );
        assert_eq!(
            ResponseCode(0x0BF).to_string(),
            "unknown format-one error 0x0bf"
        );
        assert_eq!(
            ResponseCode(0x1BF).to_string(),
            "unknown format-one error 0x0bf on handle 1"
        );
        assert_eq!(
            ResponseCode(0x013).to_string(),
            "TPM 1.2 response code 0x013"
        );
        assert!(
            ResponseCode(0x009)
                .to_string()
                .starts_with("TPM_FAIL (TPM 1.2 response code 0x009: the TPM has failed"),
            "{}",
            ResponseCode(0x009)
        );
        assert_eq!(
            ResponseCode(0x17F).to_string(),
            "unknown response code 0x17f"
        );
        // A TSS layer's code is not the TPM's, even if the low bits match.
        let rc = ResponseCode(0x000B_0184);
        assert_eq!(rc.name(), None);
        assert_eq!(rc.subject(), None);
        assert_eq!(
            rc.to_string(),
            "response code 0x000b0184 (from software layer 11, not the TPM)"
        );
        assert!(ResponseCode(0).is_success());
    }
}
