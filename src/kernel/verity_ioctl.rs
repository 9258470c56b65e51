//! fs-verity on open files: measuring (what the kernel enforces) and
//! enabling (provisioning a repository).

use std::fmt;
use std::os::fd::AsFd;

use rustix::io::Errno;

use super::sys;
use crate::fsverity::digest::{Algorithm, Digest};

/// Why a file has no usable fs-verity digest.
#[derive(Debug, PartialEq, Eq)]
pub enum VerityMeasureError {
    /// ENODATA: the file exists but fs-verity was never enabled on it.
    NotEnabled,
    /// ENOTTY/EOPNOTSUPP: the filesystem or kernel has no fs-verity.
    Unsupported,
    /// An algorithm composefs does not use.
    UnknownAlgorithm(u16),
    Os(Errno),
}

impl fmt::Display for VerityMeasureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerityMeasureError::NotEnabled => f.write_str("fs-verity is not enabled on it"),
            VerityMeasureError::Unsupported => {
                f.write_str("its filesystem or kernel does not support fs-verity")
            }
            VerityMeasureError::UnknownAlgorithm(id) => {
                write!(
                    f,
                    "it uses fs-verity hash algorithm {id}, not sha256 or sha512"
                )
            }
            VerityMeasureError::Os(e) => write!(f, "FS_IOC_MEASURE_VERITY failed: {e}"),
        }
    }
}

impl std::error::Error for VerityMeasureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VerityMeasureError::Os(e) => Some(e),
            _ => None,
        }
    }
}

/// A file's fs-verity digest, or why it has none.
pub type Measured = Result<Digest, VerityMeasureError>;

/// The fs-verity digest of an open file, as the kernel enforces it.
pub fn measure(file: impl AsFd) -> Measured {
    let raw = sys::measure_verity(file.as_fd()).map_err(|e| match e {
        Errno::NODATA => VerityMeasureError::NotEnabled,
        Errno::NOTTY | Errno::OPNOTSUPP => VerityMeasureError::Unsupported,
        e => VerityMeasureError::Os(e),
    })?;
    let algorithm = Algorithm::from_kernel_id(raw.algorithm)
        .ok_or(VerityMeasureError::UnknownAlgorithm(raw.algorithm))?;
    let len = usize::from(raw.size).min(raw.digest.len());
    Digest::new(algorithm, &raw.digest[..len])
        .ok_or(VerityMeasureError::UnknownAlgorithm(raw.algorithm))
}

#[derive(Debug, PartialEq, Eq)]
pub enum EnableOutcome {
    Enabled,
    AlreadyEnabled,
}

/// Enables fs-verity with 4 KiB blocks. The file must be open read-only
/// and not open for writing anywhere (ETXTBSY otherwise).
pub fn enable(file: impl AsFd, algorithm: Algorithm) -> Result<EnableOutcome, Errno> {
    match sys::enable_verity(file.as_fd(), u32::from(algorithm.kernel_id()), 4096) {
        Ok(()) => Ok(EnableOutcome::Enabled),
        Err(Errno::EXIST) => Ok(EnableOutcome::AlreadyEnabled),
        Err(e) => Err(e),
    }
}

/// The next step for a user whose file cannot have fs-verity enabled.
pub fn enable_hint(e: Errno) -> &'static str {
    match e {
        Errno::OPNOTSUPP | Errno::NOTTY => {
            "the filesystem lacks the verity feature: for ext4 run `tune2fs -O verity DEVICE` \
             (4 KiB blocks needed); the kernel needs CONFIG_FS_VERITY"
        }
        Errno::INVAL => "ext4 supports fs-verity only with a 4 KiB block size (mke2fs -b 4096)",
        Errno::TXTBSY => "the file is open for writing elsewhere",
        Errno::ROFS => "the filesystem is mounted read-only",
        _ => "see the kernel log",
    }
}
