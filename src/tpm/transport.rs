//! Moving command and response bytes: the kernel's TPM character device
//! in the initrd, swtpm's socket for host tests.
//!
//! A transport only frames: it writes one command and reads back one
//! response whose length is what the response header says (bounded by
//! `MAX_RESPONSE`), within a deadline. Response codes, retries and parsing
//! belong to the caller.

use std::io::{self, Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::marshal::{response_size, HEADER_LEN, MAX_RESPONSE};

/// How long one command may take before we give up on the TPM. PCR
/// commands take milliseconds; a TPM that has not answered in 30 s is hung,
/// and boot should fail with a message rather than hang.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one command and returns its response, header included.
pub trait Transport {
    fn transact(&mut self, command: &[u8]) -> io::Result<Vec<u8>>;

    /// Where the TPM is (a device path, a socket), for messages.
    fn describe(&self) -> &str;
}

/// Read one response with `read_some(buf, time_left)`, which returns how
/// many bytes it put in `buf` (0 = the other end has no more) or a
/// `TimedOut` error when `time_left` passed without data.
fn read_response(
    timeout: Duration,
    mut read_some: impl FnMut(&mut [u8], Duration) -> io::Result<usize>,
) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; MAX_RESPONSE];
    let mut have = 0;
    loop {
        let want = if have < HEADER_LEN {
            HEADER_LEN
        } else {
            match response_size(&buf[..have]) {
                Some(n) if (HEADER_LEN..=MAX_RESPONSE).contains(&n) => n,
                n => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "response header says {} bytes, not {HEADER_LEN}..={MAX_RESPONSE}",
                            n.map_or_else(|| "too many".to_string(), |n| n.to_string())
                        ),
                    ))
                }
            }
        };
        if have >= want {
            buf.truncate(have);
            return Ok(buf);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(timeout));
        }
        match read_some(&mut buf[have..want], left) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("response truncated after {have} bytes"),
                ))
            }
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn timed_out(timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no response within {} s", timeout.as_secs()),
    )
}

/// The kernel's TPM character device: `/dev/tpmrm0` (the resource
/// manager, which many processes may open) or `/dev/tpm0` (raw, one opener).
///
/// Opened `O_NONBLOCK`: since Linux 4.20 `write` then only queues the
/// command and `poll` says when the response is there, so a hung TPM is a
/// timeout rather than a hang. Older kernels ignore the flag (the `write`
/// waits, bounded by the driver's own timeouts) and their `poll` reports
/// the response as ready at once; both work.
pub struct Device {
    fd: OwnedFd,
    path: String,
    timeout: Duration,
}

impl Device {
    pub fn open(path: &Path) -> io::Result<Device> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDWR | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )?;
        Ok(Device {
            fd,
            path: path.display().to_string(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }
}

fn retry_eintr<T>(mut f: impl FnMut() -> Result<T, Errno>) -> io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

impl Transport for Device {
    fn transact(&mut self, command: &[u8]) -> io::Result<Vec<u8>> {
        // The driver takes a command in exactly one write.
        let n = retry_eintr(|| rustix::io::write(&self.fd, command))?;
        if n != command.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("the driver took {n} of {} command bytes", command.len()),
            ));
        }
        let fd = &self.fd;
        read_response(self.timeout, |buf, left| {
            let ts = Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0,
            });
            let mut fds = [PollFd::new(fd, PollFlags::IN)];
            match poll(&mut fds, Some(&ts)) {
                Ok(0) => return Err(timed_out(self.timeout)),
                Ok(_) => {}
                Err(Errno::INTR) => return Err(io::ErrorKind::Interrupted.into()),
                Err(e) => return Err(e.into()),
            }
            match rustix::io::read(fd, buf) {
                // Not there yet after all: poll again.
                Err(Errno::AGAIN) | Err(Errno::INTR) => Err(io::ErrorKind::Interrupted.into()),
                r => r.map_err(io::Error::from),
            }
        })
    }

    fn describe(&self) -> &str {
        &self.path
    }
}

/// swtpm's data channel (`swtpm socket --server type=unixio,path=…`): raw
/// TPM 2.0 commands and responses over a Unix stream socket, one at a time.
pub struct Swtpm {
    stream: UnixStream,
    description: String,
    timeout: Duration,
}

impl Swtpm {
    pub fn connect(path: &Path) -> io::Result<Swtpm> {
        Ok(Swtpm {
            stream: UnixStream::connect(path)?,
            description: format!("swtpm at {}", path.display()),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }
}

impl Transport for Swtpm {
    fn transact(&mut self, command: &[u8]) -> io::Result<Vec<u8>> {
        self.stream.set_write_timeout(Some(self.timeout))?;
        self.stream.write_all(command)?;
        let stream = &mut self.stream;
        let timeout = self.timeout;
        read_response(timeout, |buf, left| {
            // A zero timeout means "none" to the socket API.
            stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            match stream.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(timed_out(timeout)),
                r => r,
            }
        })
    }

    fn describe(&self) -> &str {
        &self.description
    }
}

/// Where the kernel's TPM devices are, in the order tried.
pub const DEVICE_PATHS: [&str; 2] = ["/dev/tpmrm0", "/dev/tpm0"];

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves `chunks` one per call, like a stream that splits responses.
    fn reader(chunks: Vec<Vec<u8>>) -> impl FnMut(&mut [u8], Duration) -> io::Result<usize> {
        let mut chunks = chunks.into_iter();
        let mut pending: Vec<u8> = Vec::new();
        move |buf, _| {
            if pending.is_empty() {
                match chunks.next() {
                    Some(c) => pending = c,
                    None => return Ok(0),
                }
            }
            let n = buf.len().min(pending.len());
            buf[..n].copy_from_slice(&pending[..n]);
            pending.drain(..n);
            Ok(n)
        }
    }

    const OK: [u8; 12] = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0, 0, 0xAA, 0xBB];

    #[test]
    fn reads_exactly_one_response_however_split() {
        let t = Duration::from_secs(1);
        let got = read_response(t, reader(vec![OK.to_vec()])).unwrap();
        assert_eq!(got, OK);
        let split = vec![OK[..3].to_vec(), OK[3..11].to_vec(), OK[11..].to_vec()];
        assert_eq!(read_response(t, reader(split)).unwrap(), OK);
        // A second response behind it stays unread.
        let mut two = OK.to_vec();
        two.extend_from_slice(&OK);
        assert_eq!(read_response(t, reader(vec![two])).unwrap(), OK);
    }

    #[test]
    fn truncated_oversized_and_silent_responses_are_errors() {
        let t = Duration::from_secs(1);
        let e = read_response(t, reader(vec![OK[..11].to_vec()])).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let e = read_response(t, reader(vec![])).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        // responseSize 5000 > MAX_RESPONSE, and 9 < a header.
        for size in [5000u32, 9, u32::MAX] {
            let mut hdr = OK.to_vec();
            hdr[2..6].copy_from_slice(&size.to_be_bytes());
            let e = read_response(t, reader(vec![hdr])).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{size}");
        }
        let e = read_response(Duration::from_millis(10), |_, _| {
            Err(io::ErrorKind::TimedOut.into())
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        // A reader that keeps getting interrupted runs into the deadline.
        let e = read_response(Duration::from_millis(10), |_, _| {
            Err(io::ErrorKind::Interrupted.into())
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    /// A FIFO opened read-write echoes what is written: the device path's
    /// write, poll and read without a TPM.
    #[test]
    fn device_io_through_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("tpm0");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, Mode::from_raw_mode(0o600)).unwrap();
        let mut dev = Device::open(&fifo).unwrap();
        assert_eq!(dev.describe(), fifo.display().to_string());
        assert_eq!(dev.transact(&OK).unwrap(), OK);

        // Half a response, then nothing: a timeout, not a hang.
        dev.set_timeout(Duration::from_millis(50));
        let e = dev.transact(&OK[..7]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
