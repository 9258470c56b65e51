//! Read-only loop devices, for kernels without file-backed EROFS.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::kernel::sys::{self, LoopConfig, LoopInfo64};

/// Attaches `image` to a free loop device, read-only, auto-cleared when the
/// last user goes, with 4 KiB logical blocks (EROFS's block size).
pub fn attach_read_only(image: &File) -> Result<OwnedFd, Errno> {
    let control = rustix::fs::open(
        "/dev/loop-control",
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // Another process may take the device between GET_FREE and CONFIGURE:
    // EBUSY then means "ask again".
    for _ in 0..16 {
        let n = sys::loop_ctl_get_free(&control)?;
        let dev = rustix::fs::open(
            format!("/dev/loop{n}").as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let config = LoopConfig {
            fd: u32::try_from(image.as_fd().as_raw_fd()).map_err(|_| Errno::BADF)?,
            block_size: 4096,
            info: LoopInfo64 {
                device: 0,
                inode: 0,
                rdevice: 0,
                offset: 0,
                sizelimit: 0,
                number: 0,
                encrypt_type: 0,
                encrypt_key_size: 0,
                flags: sys::LO_FLAGS_READ_ONLY | sys::LO_FLAGS_AUTOCLEAR | sys::LO_FLAGS_DIRECT_IO,
                file_name: [0; 64],
                crypt_name: [0; 64],
                encrypt_key: [0; 32],
                init: [0; 2],
            },
            reserved: [0; 8],
        };
        match sys::loop_configure(dev.as_fd(), config) {
            Ok(()) => return Ok(dev),
            Err(Errno::BUSY) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno::BUSY)
}
