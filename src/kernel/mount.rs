//! The mounts, through the new mount API: every filesystem is configured
//! on an fs context and created as a *detached* mount, so nothing shows up
//! in the namespace until `assemble` attaches it.

use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, FsMountFlags,
    FsOpenFlags, MountAttrFlags,
};

use crate::kernel::loopdev;

/// A mount step that failed, with what the kernel logged about it.
#[derive(Debug)]
pub struct MountError {
    /// What was being done, e.g. `overlay: fsconfig verity=require`.
    pub step: String,
    pub errno: Errno,
    /// Lines the kernel wrote to the fs context (`e overlay: ...`).
    pub kernel_log: Vec<String>,
    pub hint: Option<&'static str>,
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.step, self.errno)?;
        for line in &self.kernel_log {
            write!(f, " [kernel: {line}]")?;
        }
        if let Some(hint) = self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for MountError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.errno)
    }
}

/// An open fs context (`fsopen`).
pub struct FsContext {
    fd: OwnedFd,
    fstype: &'static str,
}

impl FsContext {
    pub fn open(fstype: &'static str) -> Result<Self, MountError> {
        let fd = fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC).map_err(|errno| MountError {
            step: format!("fsopen {fstype}"),
            errno,
            kernel_log: Vec::new(),
            hint: (errno == Errno::NODEV)
                .then_some("the kernel lacks this filesystem: load its module"),
        })?;
        Ok(FsContext { fd, fstype })
    }

    fn fail(&self, step: String, errno: Errno) -> MountError {
        MountError {
            step: format!("{}: {step}", self.fstype),
            errno,
            kernel_log: self.kernel_log(),
            hint: None,
        }
    }

    pub fn set(&self, key: &str, value: &str) -> Result<(), MountError> {
        fsconfig_set_string(&self.fd, key, value)
            .map_err(|e| self.fail(format!("fsconfig {key}={value}"), e))
    }

    pub fn flag(&self, key: &str) -> Result<(), MountError> {
        fsconfig_set_flag(&self.fd, key).map_err(|e| self.fail(format!("fsconfig {key}"), e))
    }

    /// Creates the superblock and returns it as a detached mount.
    pub fn mount(&self, attrs: MountAttrFlags) -> Result<OwnedFd, MountError> {
        fsconfig_create(&self.fd).map_err(|e| self.fail("create".into(), e))?;
        fsmount(&self.fd, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
            .map_err(|e| self.fail("fsmount".into(), e))
    }

    /// Drains the messages the kernel queued on this context.
    pub fn kernel_log(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut buf = [0u8; 512];
        // Each read returns one message; EAGAIN/ENODATA when none are left.
        while let Ok(n) = rustix::io::read(&self.fd, &mut buf) {
            if n == 0 || lines.len() >= 16 {
                break;
            }
            lines.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_owned());
        }
        lines
    }
}

impl AsFd for FsContext {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `/proc/self/fd/N`: how layers and sources that are open fds (detached
/// mounts, the image file) are named to the kernel's path-based options.
pub fn fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// How the EROFS image reached the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErofsBacking {
    /// File-backed EROFS (6.12+): the image file itself.
    File,
    /// A read-only loop device over the image file.
    Loop,
}

impl fmt::Display for ErofsBacking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErofsBacking::File => "file-backed",
            ErofsBacking::Loop => "loop device",
        })
    }
}

/// Mounts the (already verified) image as a detached read-only EROFS.
/// The kernel is asked for a file-backed mount first; ENOTBLK means it
/// only takes block devices, so a loop device is set up instead.
pub fn erofs(image: &File, force_loop: bool) -> Result<(OwnedFd, ErofsBacking), MountError> {
    if !force_loop {
        let ctx = FsContext::open("erofs")?;
        ctx.set("source", &fd_path(image.as_fd()))?;
        ctx.flag("ro")?;
        match ctx.mount(MountAttrFlags::MOUNT_ATTR_RDONLY) {
            Ok(m) => return Ok((m, ErofsBacking::File)),
            Err(e) if e.errno == Errno::NOTBLK => {
                log::info!("kernel has no file-backed EROFS; using a loop device");
            }
            Err(e) => return Err(e),
        }
    }
    let dev = loopdev::attach_read_only(image).map_err(|errno| MountError {
        step: "loop device for the EROFS image".into(),
        errno,
        kernel_log: Vec::new(),
        hint: Some("load the loop module, or use a kernel with file-backed EROFS (6.12+)"),
    })?;
    let ctx = FsContext::open("erofs")?;
    ctx.set("source", &fd_path(dev.as_fd()))?;
    ctx.flag("ro")?;
    // The mount keeps the device; with autoclear it goes away when unmounted.
    Ok((
        ctx.mount(MountAttrFlags::MOUNT_ATTR_RDONLY)?,
        ErofsBacking::Loop,
    ))
}

/// How the overlay's layers were passed (probed on the running kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerSyntax {
    /// `lowerdir+` / `datadir+` (6.7+): one fsconfig per layer.
    Append,
    /// `lowerdir=A::B` (6.5+): the data-only layer after a double colon.
    Legacy,
}

/// The composefs overlay, detached and read-only: EROFS metadata layers
/// (`lowers`, topmost first: system extensions above the root image) over
/// the object store as the one data-only layer. Every layer's files are
/// redirects into the same store, so `verity=require` covers them all.
/// `source` is what /proc/self/mountinfo shows (`composefs:<hex>` for the root).
pub fn composefs_overlay(
    lowers: &[&Path],
    objects: &OwnedFd,
    source: &str,
    require_verity: bool,
) -> Result<(OwnedFd, LayerSyntax), MountError> {
    let ctx = FsContext::open("overlay")?;
    ctx.set("source", source)?;
    ctx.set("metacopy", "on")?;
    ctx.set("redirect_dir", "on")?;
    if require_verity {
        ctx.set("verity", "require").map_err(|mut e| {
            e.hint = Some("the kernel's overlayfs has no verity= option (needs Linux 6.6+): refusing, since file contents could not be verified");
            e
        })?;
    }
    let lowers = lowers
        .iter()
        .map(|p| path_str(p))
        .collect::<Result<Vec<_>, _>>()?;
    let Some((first, rest)) = lowers.split_first() else {
        return Err(MountError {
            step: "overlay: no lower layer".into(),
            errno: Errno::INVAL,
            kernel_log: Vec::new(),
            hint: None,
        });
    };
    let data = fd_path(objects.as_fd());
    let syntax = match ctx.set("lowerdir+", first) {
        Ok(()) => {
            for lower in rest {
                ctx.set("lowerdir+", lower)?;
            }
            ctx.set("datadir+", &data)?;
            LayerSyntax::Append
        }
        Err(e) if e.errno == Errno::INVAL => {
            // Legacy: `:` separates lower layers (topmost first), `::` the data layer.
            ctx.set("lowerdir", &format!("{}::{data}", lowers.join(":")))
                .map_err(|mut e| {
                    e.hint =
                        Some("the kernel's overlayfs has no data-only layers (needs Linux 6.5+)");
                    e
                })?;
            LayerSyntax::Legacy
        }
        Err(e) => return Err(e),
    };
    let mnt = ctx.mount(MountAttrFlags::MOUNT_ATTR_RDONLY)?;
    Ok((mnt, syntax))
}

/// A writable overlay on a directory of the new root: the image's
/// directory below, `upper` above (state on the real root, or a tmpfs).
/// `attrs`: the mount's flags (`nosuid,nodev` for /etc and /var; none for a
/// transient root, whose /usr keeps its setuid programs).
pub fn state_overlay(
    source: &str,
    lower: &Path,
    upper: &Path,
    work: &Path,
    attrs: MountAttrFlags,
) -> Result<OwnedFd, MountError> {
    let ctx = FsContext::open("overlay")?;
    ctx.set("source", source)?;
    ctx.set("lowerdir", path_str(lower)?)?;
    ctx.set("upperdir", path_str(upper)?)?;
    ctx.set("workdir", path_str(work)?)?;
    ctx.mount(attrs)
}

/// `nosuid,nodev`: for state fs-verity does not cover.
pub const UNVERIFIED_STATE: MountAttrFlags =
    MountAttrFlags::MOUNT_ATTR_NOSUID.union(MountAttrFlags::MOUNT_ATTR_NODEV);

fn path_str(path: &Path) -> Result<&str, MountError> {
    path.to_str().ok_or_else(|| MountError {
        step: format!("path {}", path.display()),
        errno: Errno::INVAL,
        kernel_log: Vec::new(),
        hint: Some("not UTF-8"),
    })
}

/// A fresh tmpfs (detached), for transient state.
pub fn tmpfs(mode: &str) -> Result<OwnedFd, MountError> {
    let ctx = FsContext::open("tmpfs")?;
    ctx.set("mode", mode)?;
    ctx.mount(MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV)
}

/// Opens a directory below `dir` as O_PATH, for use as a layer.
pub fn open_path(dir: impl AsFd, rel: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        rel,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}
