//! A minimal TPM 2.0 client: which PCR banks are active, extend a PCR in
//! several banks, read a PCR back.
//!
//! Pure Rust, on purpose. `tss-esapi` (bindings to the tpm2-tss C stack)
//! cannot go into a static musl initrd binary: Debian ships no static
//! `libtss2-*`, and the TCTI loader finds its transport with `dlopen`, which
//! a static binary does not have. The four commands veriroot needs are a
//! few hundred lines of marshalling (`marshal`), so we speak the TPM's
//! command protocol ourselves, over the kernel's character device
//! (`transport::Device`) or, in host tests, over swtpm's socket
//! (`transport::Swtpm`).
//!
//! | module | job |
//! |---|---|
//! | `marshal` | command bytes out, checked responses in |
//! | `rc` | response codes to names and meanings |
//! | `transport` | one command, one response, with a timeout |
//! | here | `Tpm`: retries, and errors that say which command failed where |

pub mod marshal;
pub mod rc;
pub mod transport;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::io::Errno;

use crate::measure::bank::HashAlg;
use marshal::{Command, MarshalError};
use rc::ResponseCode;
use transport::{Device, Swtpm, Transport};

/// Attempts for a command the TPM answers with TPM_RC_RETRY, TPM_RC_YIELDED
/// or TPM_RC_TESTING (self-test after power-on); the waits between them
/// double from 20 ms up to 1 s, about 5 s in all.
const ATTEMPTS: u32 = 10;
const FIRST_WAIT: Duration = Duration::from_millis(20);
const MAX_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub enum TpmError {
    /// A TPM device (or swtpm socket) exists but cannot be opened.
    Open { path: PathBuf, error: io::Error },
    /// Writing the command or reading the response failed, or timed out.
    Io {
        command: Command,
        device: String,
        error: io::Error,
    },
    /// The TPM answered with an error code.
    Response {
        command: Command,
        device: String,
        code: ResponseCode,
    },
    /// The response is not what the command can return.
    Malformed {
        command: Command,
        device: String,
        error: MarshalError,
    },
    /// The arguments cannot be sent (a digest of the wrong length, a PCR
    /// number no selection can hold); nothing was sent.
    Argument {
        command: Command,
        device: String,
        error: MarshalError,
    },
    /// PCR_Read returned no value: the bank has no such PCR allocated.
    NotAllocated {
        device: String,
        pcr: u32,
        alg: HashAlg,
    },
}

impl TpmError {
    /// The TPM's response code, if it answered with one.
    pub fn response_code(&self) -> Option<ResponseCode> {
        match self {
            TpmError::Response { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for TpmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TpmError::Open { path, error } => {
                write!(f, "cannot open TPM {}: {error}", path.display())
            }
            TpmError::Io {
                command,
                device,
                error,
            } => write!(f, "{command} failed on {device}: {error}"),
            TpmError::Response {
                command,
                device,
                code,
            } => {
                write!(f, "{command} failed on {device}: {code}")?;
                if code.0 == rc::TPM_RC_INITIALIZE {
                    f.write_str(
                        "; the TPM was never started (TPM2_Startup: firmware or the kernel driver \
                         sends it)",
                    )?;
                }
                Ok(())
            }
            TpmError::Malformed {
                command,
                device,
                error,
            } => write!(f, "{command} on {device}: malformed response: {error}"),
            TpmError::Argument {
                command,
                device,
                error,
            } => write!(f, "{command} on {device} not sent: {error}"),
            TpmError::NotAllocated { device, pcr, alg } => write!(
                f,
                "TPM2_PCR_Read on {device}: the {alg} bank has no PCR {pcr} (bank not active)"
            ),
        }
    }
}

impl std::error::Error for TpmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TpmError::Open { error, .. } | TpmError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A TPM 2.0 reached through some transport.
pub struct Tpm {
    transport: Box<dyn Transport>,
}

impl Tpm {
    /// The kernel's TPM: the first of `paths` (`/dev/tpmrm0`, `/dev/tpm0`:
    /// `transport::DEVICE_PATHS`) that opens. `None` if none
    /// exists (or only a node with no driver behind it: ENODEV/ENXIO),
    /// which means this machine has no TPM; an error if one exists but
    /// cannot be opened (permissions, `/dev/tpm0` held by another process).
    pub fn open(paths: &[PathBuf]) -> Result<Option<Tpm>, TpmError> {
        let mut first_error = None;
        for path in paths {
            match Device::open(path) {
                Ok(device) => return Ok(Some(Tpm::with_transport(Box::new(device)))),
                Err(e)
                    if matches!(
                        Errno::from_io_error(&e),
                        Some(Errno::NOENT | Errno::NODEV | Errno::NXIO)
                    ) => {}
                Err(error) => {
                    first_error.get_or_insert(TpmError::Open {
                        path: path.to_path_buf(),
                        error,
                    });
                }
            }
        }
        first_error.map_or(Ok(None), Err)
    }

    /// swtpm's data channel (`swtpm socket --tpm2 --server
    /// type=unixio,path=SOCKET --flags not-need-init,startup-clear`).
    pub fn swtpm(socket_path: &Path) -> Result<Tpm, TpmError> {
        Swtpm::connect(socket_path)
            .map(|s| Tpm::with_transport(Box::new(s)))
            .map_err(|error| TpmError::Open {
                path: socket_path.to_path_buf(),
                error,
            })
    }

    /// A TPM behind any transport (tests use a scripted one).
    pub fn with_transport(transport: Box<dyn Transport>) -> Tpm {
        Tpm { transport }
    }

    /// Where the TPM is, as messages name it.
    pub fn device(&self) -> &str {
        self.transport.describe()
    }

    /// The banks with at least one PCR allocated, in the TPM's order.
    /// Banks of algorithms we have no hash for (e.g. SM3) are left out with
    /// a warning: they cannot be extended, so they stay at their reset
    /// value, which never matches a measured boot's.
    pub fn active_banks(&mut self) -> Result<Vec<HashAlg>, TpmError> {
        let command = Command::GetCapability;
        let resp = self.execute(command, marshal::get_capability_pcrs())?;
        let banks = self.parse(command, &resp, marshal::parse_get_capability_pcrs)?;
        let mut algs = Vec::new();
        for bank in banks.iter().filter(|b| b.is_active()) {
            match HashAlg::from_tpm_id(bank.alg_id) {
                Some(alg) if !algs.contains(&alg) => algs.push(alg),
                Some(_) => {}
                None => log::warn!(
                    "TPM PCR bank with algorithm {:#06x} is active but not supported; \
                     it is not extended",
                    bank.alg_id
                ),
            }
        }
        Ok(algs)
    }

    /// TPM2_PCR_Extend of `pcr` with one digest per bank. Each digest must
    /// have its algorithm's length. Banks not listed are left alone.
    pub fn extend(&mut self, pcr: u32, digests: &[(HashAlg, Vec<u8>)]) -> Result<(), TpmError> {
        let command = Command::PcrExtend;
        let refs: Vec<(HashAlg, &[u8])> = digests.iter().map(|(a, d)| (*a, d.as_slice())).collect();
        let bytes = marshal::pcr_extend(pcr, &refs).map_err(|e| self.argument(command, e))?;
        let resp = self.execute(command, bytes)?;
        self.parse(command, &resp, marshal::parse_pcr_extend)
    }

    /// TPM2_PCR_Read of one PCR in one bank.
    pub fn read(&mut self, pcr: u32, alg: HashAlg) -> Result<Vec<u8>, TpmError> {
        let command = Command::PcrRead;
        let bytes = marshal::pcr_read(pcr, alg).map_err(|e| self.argument(command, e))?;
        let resp = self.execute(command, bytes)?;
        self.parse(command, &resp, |r| marshal::parse_pcr_read(r, pcr, alg))?
            .ok_or_else(|| TpmError::NotAllocated {
                device: self.device().to_string(),
                pcr,
                alg,
            })
    }

    /// TPM2_GetRandom: up to `bytes` random bytes (a TPM may return fewer,
    /// at most one digest's worth per call).
    pub fn get_random(&mut self, bytes: u16) -> Result<Vec<u8>, TpmError> {
        let command = Command::GetRandom;
        let resp = self.execute(command, marshal::get_random(bytes))?;
        self.parse(command, &resp, marshal::parse_get_random)
    }

    fn argument(&self, command: Command, error: MarshalError) -> TpmError {
        TpmError::Argument {
            command,
            device: self.device().to_string(),
            error,
        }
    }

    fn parse<T>(
        &self,
        command: Command,
        resp: &[u8],
        f: impl FnOnce(&marshal::Response<'_>) -> Result<T, MarshalError>,
    ) -> Result<T, TpmError> {
        marshal::response(resp)
            .and_then(|r| f(&r))
            .map_err(|error| TpmError::Malformed {
                command,
                device: self.device().to_string(),
                error,
            })
    }

    /// Send `bytes` until the TPM runs it (retrying the codes that ask for
    /// it) and return a response whose code is success.
    fn execute(&mut self, command: Command, bytes: Vec<u8>) -> Result<Vec<u8>, TpmError> {
        let mut wait = FIRST_WAIT;
        let mut attempt = 1;
        loop {
            let resp = self
                .transport
                .transact(&bytes)
                .map_err(|error| TpmError::Io {
                    command,
                    device: self.device().to_string(),
                    error,
                })?;
            let code = marshal::response(&resp)
                .map_err(|error| TpmError::Malformed {
                    command,
                    device: self.device().to_string(),
                    error,
                })?
                .code;
            if code.is_success() {
                return Ok(resp);
            }
            if !code.is_retryable() || attempt >= ATTEMPTS {
                return Err(TpmError::Response {
                    command,
                    device: self.device().to_string(),
                    code,
                });
            }
            log::debug!("{command}: {code}; retrying in {} ms", wait.as_millis());
            std::thread::sleep(wait);
            wait = (wait * 2).min(MAX_WAIT);
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Answers with canned responses and records the commands.
    struct Script {
        responses: VecDeque<io::Result<Vec<u8>>>,
        sent: std::rc::Rc<std::cell::RefCell<Vec<Vec<u8>>>>,
    }

    impl Transport for Script {
        fn transact(&mut self, command: &[u8]) -> io::Result<Vec<u8>> {
            self.sent.borrow_mut().push(command.to_vec());
            self.responses
                .pop_front()
                .unwrap_or_else(|| Err(io::ErrorKind::UnexpectedEof.into()))
        }
        fn describe(&self) -> &str {
            "/dev/tpmrm0"
        }
    }

    type Sent = std::rc::Rc<std::cell::RefCell<Vec<Vec<u8>>>>;

    fn scripted(responses: Vec<io::Result<Vec<u8>>>) -> (Tpm, Sent) {
        let sent = Sent::default();
        let tpm = Tpm::with_transport(Box::new(Script {
            responses: responses.into(),
            sent: sent.clone(),
        }));
        (tpm, sent)
    }

    fn error_response(code: u32) -> io::Result<Vec<u8>> {
        let mut r = vec![0x80, 0x01, 0, 0, 0, 10];
        r.extend_from_slice(&code.to_be_bytes());
        Ok(r)
    }

    #[rustfmt::skip]
    const EXTEND_OK: [u8; 19] = [
        0x80, 0x02, 0, 0, 0, 19, 0, 0, 0, 0,
        0, 0, 0, 0,   // parameterSize
        0, 0, 1, 0, 0 // empty nonce, continueSession, empty hmac
    ];

    #[test]
    fn error_messages_name_command_code_and_device() {
        let (mut tpm, _) = scripted(vec![error_response(0x184)]);
        let e = tpm
            .extend(24, &[(HashAlg::Sha256, vec![0; 32])])
            .unwrap_err();
        assert_eq!(e.response_code(), Some(ResponseCode(0x184)));
        assert_eq!(
            e.to_string(),
            "TPM2_PCR_Extend failed on /dev/tpmrm0: TPM_RC_VALUE (value is out of range or is \
             not correct for the context) on handle 1"
        );

        let (mut tpm, _) = scripted(vec![error_response(0x100)]);
        let e = tpm.active_banks().unwrap_err().to_string();
        assert!(
            e.starts_with("TPM2_GetCapability failed on /dev/tpmrm0: TPM_RC_INITIALIZE"),
            "{e}"
        );
        assert!(e.contains("never started"), "{e}");

        let (mut tpm, _) = scripted(vec![Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no response within 30 s",
        ))]);
        assert_eq!(
            tpm.read(15, HashAlg::Sha1).unwrap_err().to_string(),
            "TPM2_PCR_Read failed on /dev/tpmrm0: no response within 30 s"
        );

        let (mut tpm, _) = scripted(vec![Ok(vec![0x80, 0x01, 0, 0, 0, 12, 0, 0, 0, 0])]);
        assert_eq!(
            tpm.get_random(4).unwrap_err().to_string(),
            "TPM2_GetRandom on /dev/tpmrm0: malformed response: response header says 12 bytes \
             but 10 were received"
        );
    }

    #[test]
    fn bad_arguments_are_not_sent() {
        let (mut tpm, sent) = scripted(vec![]);
        let e = tpm
            .extend(15, &[(HashAlg::Sha256, vec![0; 20])])
            .unwrap_err();
        assert!(matches!(e, TpmError::Argument { .. }), "{e}");
        assert!(sent.borrow().is_empty());
    }

    #[test]
    fn retryable_codes_are_retried_then_reported() {
        let (mut tpm, sent) = scripted(vec![
            error_response(rc::TPM_RC_RETRY),
            error_response(rc::TPM_RC_TESTING),
            Ok(EXTEND_OK.to_vec()),
        ]);
        tpm.extend(15, &[(HashAlg::Sha1, vec![1; 20])]).unwrap();
        let sent = sent.borrow();
        assert_eq!(sent.len(), 3);
        assert!(sent.iter().all(|c| *c == sent[0]));

        // Other codes are not retried.
        let (mut tpm, sent) = scripted(vec![error_response(0x9A2), Ok(EXTEND_OK.to_vec())]);
        let e = tpm.extend(15, &[(HashAlg::Sha1, vec![1; 20])]).unwrap_err();
        assert_eq!(e.response_code(), Some(ResponseCode(0x9A2)));
        assert_eq!(sent.borrow().len(), 1);
    }

    #[test]
    fn unknown_active_banks_are_skipped() {
        #[rustfmt::skip]
        let resp = vec![
            0x80, 0x01, 0, 0, 0, 37, 0, 0, 0, 0,
            0x00, 0, 0, 0, 5, 0, 0, 0, 3,
            0x00, 0x12, 3, 0xFF, 0xFF, 0xFF, // SM3_256: active, unknown
            0x00, 0x0B, 3, 0xFF, 0xFF, 0xFF, // sha256
            0x00, 0x04, 3, 0x00, 0x00, 0x00, // sha1: inactive
        ];
        let (mut tpm, _) = scripted(vec![Ok(resp)]);
        assert_eq!(tpm.active_banks().unwrap(), [HashAlg::Sha256]);
    }

    #[test]
    fn no_device_is_none_and_an_unusable_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("tpmrm0");
        assert!(Tpm::open(&[missing.clone(), dir.path().join("tpm0")])
            .unwrap()
            .is_none());
        // A directory cannot be opened read-write: EISDIR.
        let e = Tpm::open(&[missing, dir.path().to_owned()]).err().unwrap();
        assert!(matches!(e, TpmError::Open { .. }), "{e}");
        assert!(e.to_string().starts_with("cannot open TPM "), "{e}");
    }
}
