//! Shared by the integration tests: a real TPM 2.0 (swtpm, libtpms),
//! started per test on a Unix socket in a temporary directory.
//!
//! swtpm is required: without it these tests fail, they do not skip
//! (`make deps`, i.e. qemu/install-deps, installs it).
#![allow(dead_code)] // each test crate uses part of it

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use veriroot::tpm::Tpm;

/// A running swtpm, killed (and its state removed) on drop.
pub struct SwtpmProcess {
    child: Child,
    dir: tempfile::TempDir,
}

const MISSING: &str = "swtpm is not installed (it is in Debian's swtpm and swtpm-tools packages; \
                       `make deps` installs them): the TPM tests need it";

impl SwtpmProcess {
    /// A fresh swtpm that has received _TPM_Init and TPM2_Startup(CLEAR).
    pub fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), "not-need-init,startup-clear")
    }

    /// A swtpm manufactured by `swtpm_setup` with only `banks` active.
    pub fn provisioned(banks: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("swtpm_setup")
            .args(["--tpm2", "--pcr-banks", banks, "--tpmstate"])
            .arg(dir.path())
            .arg("--logfile")
            .arg(dir.path().join("setup.log"))
            .output()
            .unwrap_or_else(|e| panic!("{MISSING}: swtpm_setup: {e}"));
        assert!(
            out.status.success(),
            "swtpm_setup failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.path().join("setup.log")).unwrap_or_default()
        );
        Self::start_in(dir, "not-need-init,startup-clear")
    }

    pub fn start_in(dir: tempfile::TempDir, flags: &str) -> Self {
        let d = dir.path();
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--flags", flags])
            .arg(format!("--tpmstate=dir={}", d.display()))
            .arg(format!(
                "--server=type=unixio,path={}",
                d.join("data").display()
            ))
            .arg(format!(
                "--ctrl=type=unixio,path={}",
                d.join("ctrl").display()
            ))
            .arg(format!("--log=file={},level=1", d.join("log").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{MISSING}: {e}"));
        let mut swtpm = SwtpmProcess { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !swtpm.data().exists() {
            if let Some(status) = swtpm.child.try_wait().unwrap() {
                panic!(
                    "swtpm exited with {status}: {}",
                    std::fs::read_to_string(swtpm.dir.path().join("log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "swtpm did not create its socket");
            std::thread::sleep(Duration::from_millis(10));
        }
        swtpm
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// swtpm binds its socket before it listens: on a busy machine the
    /// first connections can be refused for a moment.
    pub fn tpm(&self) -> Tpm {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Tpm::swtpm(&self.data()) {
                Ok(tpm) => return tpm,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("cannot connect to swtpm at {}: {e}", self.data().display()),
            }
        }
    }
}

impl Drop for SwtpmProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
