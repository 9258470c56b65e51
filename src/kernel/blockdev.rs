//! Finding the real root's block device from `root=` without udev:
//! `/dev/NAME`, `UUID=`, `LABEL=` (ext4 and btrfs superblocks are read
//! directly), waiting for the device to appear.

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What `root=` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSpec {
    Path(PathBuf),
    Uuid(String),
    Label(String),
}

/// `root=` in none of the forms a minimal initrd can find without udev.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootSpecError {
    pub value: String,
}

impl fmt::Display for RootSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "root={} is not /dev/NAME, UUID=<uuid> or LABEL=<label>",
            self.value
        )
    }
}

impl std::error::Error for RootSpecError {}

impl RootSpec {
    pub fn parse(value: &str) -> Result<Self, RootSpecError> {
        // udev's symlinks do not exist without udev: read them as what they mean.
        let value = value
            .strip_prefix("/dev/disk/by-uuid/")
            .map(|u| format!("UUID={u}"))
            .or_else(|| {
                value
                    .strip_prefix("/dev/disk/by-label/")
                    .map(|l| format!("LABEL={l}"))
            })
            .unwrap_or_else(|| value.to_owned());
        if let Some(u) = value.strip_prefix("UUID=") {
            Ok(RootSpec::Uuid(u.to_ascii_lowercase()))
        } else if let Some(l) = value.strip_prefix("LABEL=") {
            Ok(RootSpec::Label(l.to_owned()))
        } else if value.starts_with("/dev/") {
            Ok(RootSpec::Path(PathBuf::from(value)))
        } else {
            Err(RootSpecError { value })
        }
    }
}

impl fmt::Display for RootSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootSpec::Path(p) => write!(f, "{}", p.display()),
            RootSpec::Uuid(u) => write!(f, "UUID={u}"),
            RootSpec::Label(l) => write!(f, "LABEL={l}"),
        }
    }
}

/// What a superblock says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsInfo {
    pub fstype: &'static str,
    pub uuid: String,
    pub label: String,
}

/// How many bytes of a device `probe` needs (the btrfs superblock ends here).
pub const PROBE_LEN: usize = 0x10000 + 0x1000;

const EXT4_SB: usize = 1024;
const BTRFS_SB: usize = 0x10000;

/// Reads ext4 or btrfs identity from the start of a device.
pub fn probe(dev: &[u8]) -> Option<FsInfo> {
    let at = |off: usize, len: usize| dev.get(off..off + len);
    if at(EXT4_SB + 0x38, 2)? == [0x53, 0xef] {
        return Some(FsInfo {
            fstype: "ext4",
            uuid: format_uuid(at(EXT4_SB + 0x68, 16)?),
            label: c_string(at(EXT4_SB + 0x78, 16)?),
        });
    }
    if at(BTRFS_SB + 0x40, 8)? == b"_BHRfS_M" {
        return Some(FsInfo {
            fstype: "btrfs",
            uuid: format_uuid(at(BTRFS_SB + 0x20, 16)?),
            label: c_string(at(BTRFS_SB + 0x12b, 256)?),
        });
    }
    None
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn format_uuid(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn read_start(path: &std::path::Path) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(PROBE_LEN);
    std::fs::File::open(path)
        .ok()?
        .take(PROBE_LEN as u64)
        .read_to_end(&mut buf)
        .ok()?;
    Some(buf)
}

/// The device for `spec` and its filesystem (if recognised), once present.
fn find(spec: &RootSpec) -> Option<(PathBuf, Option<FsInfo>)> {
    if let RootSpec::Path(p) = spec {
        let start = read_start(p)?;
        return Some((p.clone(), probe(&start)));
    }
    let entries = std::fs::read_dir("/sys/class/block").ok()?;
    let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let dev = PathBuf::from("/dev").join(&name);
        let info = probe(&read_start(&dev)?)?;
        let hit = match spec {
            RootSpec::Uuid(u) => info.uuid == *u,
            RootSpec::Label(l) => info.label == *l,
            RootSpec::Path(_) => false,
        };
        hit.then_some((dev, Some(info)))
    })
}

#[derive(Debug)]
pub struct NotFound {
    pub spec: RootSpec,
    pub waited: Duration,
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "root device {} did not appear within {} s; check root= and that the initrd \
             has the disk's driver (e.g. virtio_blk)",
            self.spec,
            self.waited.as_secs()
        )
    }
}

impl std::error::Error for NotFound {}

/// Polls until the root device shows up or `timeout` passes.
pub fn wait_for(spec: &RootSpec, timeout: Duration) -> Result<(PathBuf, Option<FsInfo>), NotFound> {
    let start = Instant::now();
    loop {
        if let Some(found) = find(spec) {
            return Ok(found);
        }
        if start.elapsed() >= timeout {
            return Err(NotFound {
                spec: spec.clone(),
                waited: timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_spec_forms() {
        assert_eq!(
            RootSpec::parse("/dev/vda"),
            Ok(RootSpec::Path("/dev/vda".into()))
        );
        assert_eq!(
            RootSpec::parse("UUID=ABC"),
            Ok(RootSpec::Uuid("abc".into()))
        );
        assert_eq!(
            RootSpec::parse("LABEL=root"),
            Ok(RootSpec::Label("root".into()))
        );
        assert_eq!(
            RootSpec::parse("/dev/disk/by-label/r"),
            Ok(RootSpec::Label("r".into()))
        );
        assert_eq!(
            RootSpec::parse("/dev/disk/by-uuid/X"),
            Ok(RootSpec::Uuid("x".into()))
        );
        assert_eq!(
            RootSpec::parse("PARTUUID=1").unwrap_err().to_string(),
            "root=PARTUUID=1 is not /dev/NAME, UUID=<uuid> or LABEL=<label>"
        );
    }

    #[test]
    fn ext4_superblock() {
        let mut dev = vec![0u8; PROBE_LEN];
        dev[EXT4_SB + 0x38..EXT4_SB + 0x3a].copy_from_slice(&[0x53, 0xef]);
        dev[EXT4_SB + 0x68..EXT4_SB + 0x78].copy_from_slice(&(0u8..16).collect::<Vec<_>>());
        dev[EXT4_SB + 0x78..EXT4_SB + 0x7c].copy_from_slice(b"root");
        let info = probe(&dev).unwrap();
        assert_eq!(info.fstype, "ext4");
        assert_eq!(info.uuid, "00010203-0405-0607-0809-0a0b0c0d0e0f");
        assert_eq!(info.label, "root");
    }

    #[test]
    fn btrfs_superblock() {
        let mut dev = vec![0u8; PROBE_LEN];
        dev[BTRFS_SB + 0x40..BTRFS_SB + 0x48].copy_from_slice(b"_BHRfS_M");
        dev[BTRFS_SB + 0x20] = 0xab;
        dev[BTRFS_SB + 0x12b..BTRFS_SB + 0x12e].copy_from_slice(b"sys");
        let info = probe(&dev).unwrap();
        assert_eq!(info.fstype, "btrfs");
        assert!(info.uuid.starts_with("ab000000-"));
        assert_eq!(info.label, "sys");
    }

    #[test]
    fn unknown_or_short_is_none() {
        assert_eq!(probe(&vec![0u8; PROBE_LEN]), None);
        assert_eq!(probe(&[0u8; 100]), None);
    }
}
