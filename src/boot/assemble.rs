//! Builds the new root beside /sysroot and moves it there in one step.
//!
//! Everything is mounted under a private tmpfs at `/run/veriroot`: the
//! EROFS image, the verified overlay, and below it the real root, /etc and
//! /var. Only when all of that succeeded is the tree moved onto /sysroot.
//! On any failure the tmpfs is detached with everything on it, so /sysroot
//! never shows a partial or unverified root.
//!
//! Layers are attached in the namespace, not passed as detached mounts:
//! before Linux 6.15 overlayfs refuses layers that are not in the caller's
//! mount namespace (`clone_private_mount`).

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{
    mount_change, mount_remount, move_mount, open_tree, unmount, MountAttrFlags, MountFlags,
    MountPropagationFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags,
};

use std::fs::File;

use crate::boot::disk::Base;
use crate::boot::state::{self, StateError};
use crate::boot::sysext_images::SysextImageError;
use crate::fsverity::digest::Digest;
use crate::kernel::mount::{self, ErofsBacking, LayerSyntax, MountError};
use crate::sysext::read::{self as extensions, ExtensionError, IMAGE_LIST};
use crate::sysext::rules::{ExtensionId, MergedExtension, SysextError};

pub use crate::boot::mount_modes::{ModeConflict, MountModes, StateMount};

#[derive(Debug)]
pub enum AssembleError {
    Mount(MountError),
    /// The verified image could not be mounted (e.g. the disk failed to
    /// read it: EIO); `path` is where it was opened.
    Image {
        path: PathBuf,
        error: MountError,
    },
    State(StateError),
    Step {
        step: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    MissingMountPoint {
        path: &'static str,
    },
    /// The configured mounts cannot work together.
    Policy(ModeConflict),
    /// `mount = "bind"` needs the deployment's copy of the directory.
    MissingState {
        path: PathBuf,
    },
    /// A system extension breaks one of the sysext rules.
    Extension(Box<ExtensionError>),
    /// An extension the root image lists failed to open or verify.
    Listed {
        digest: Digest,
        error: Box<SysextImageError>,
    },
    /// An extension is both listed by the image and named on the command line.
    ListedTwice {
        digest: Digest,
    },
}

impl fmt::Display for AssembleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssembleError::Mount(e) => e.fmt(f),
            AssembleError::Image { path, error } => {
                write!(f, "cannot mount the image {}: {error}", path.display())?;
                if error.errno == Errno::IO {
                    f.write_str(
                        "; reading it failed with an I/O error after its fs-verity digest \
                         matched: the disk returned EIO, or the file changed under its \
                         digest (fs-verity checks each block as it is read)",
                    )?;
                }
                Ok(())
            }
            AssembleError::State(e) => e.fmt(f),
            AssembleError::Step { step, path, errno } => {
                write!(f, "{step} {} failed: {errno}", path.display())
            }
            AssembleError::Policy(e) => e.fmt(f),
            AssembleError::Extension(e) => write!(f, "refusing a system extension: {e}"),
            AssembleError::Listed { digest, error } => write!(
                f,
                "refusing a system extension: extension {digest} listed in the root image: \
                 {error}"
            ),
            AssembleError::ListedTwice { digest } => write!(
                f,
                "refusing a system extension: extension {digest} is listed in the root \
                 image's /{IMAGE_LIST} and named by veriroot.sysext= too: drop it from the \
                 command line"
            ),
            AssembleError::MissingState { path } => write!(
                f,
                "{} does not exist: mount = \"bind\" needs the deployment's copy of the \
                 directory there (written when the deployment is made); use mount = \
                 \"overlay\" to start from the image's",
                path.display()
            ),
            AssembleError::MissingMountPoint { path } => write!(
                f,
                "the image has no {path} directory to mount on: build the image with an \
                 empty {path}"
            ),
        }
    }
}

impl std::error::Error for AssembleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AssembleError::Mount(e) => Some(e),
            AssembleError::Image { error, .. } => Some(error),
            AssembleError::State(e) => Some(e),
            AssembleError::Step { errno, .. } => Some(errno),
            AssembleError::Policy(e) => Some(e),
            AssembleError::Extension(e) => Some(e),
            AssembleError::Listed { error, .. } => Some(error),
            AssembleError::MissingState { .. }
            | AssembleError::MissingMountPoint { .. }
            | AssembleError::ListedTwice { .. } => None,
        }
    }
}

impl From<MountError> for AssembleError {
    fn from(e: MountError) -> Self {
        AssembleError::Mount(e)
    }
}

impl From<StateError> for AssembleError {
    fn from(e: StateError) -> Self {
        AssembleError::State(e)
    }
}

/// Where things are.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The real root now, the new root after `commit` (`/sysroot`).
    pub sysroot: PathBuf,
    /// Veriroot's scratch space; gets a private tmpfs (`/run/veriroot`).
    pub run_dir: PathBuf,
    /// Whether the real root, seen at `<new root>/sysroot`, is read-only.
    pub sysroot_readonly: bool,
}

/// What to mount: an image already verified against the command line.
pub struct Source<'a> {
    pub image: &'a File,
    /// Where `image` was opened, for messages.
    pub image_path: &'a Path,
    pub objects: &'a OwnedFd,
    pub digest_hex: &'a str,
    pub require_verity: bool,
    pub force_loop: bool,
    /// System extension images named on the command line, verified like
    /// `image`, lowest first; they lie above those the image lists.
    pub extensions: &'a [ExtensionSource<'a>],
    /// Opens and verifies an extension the root image lists
    /// (`extensions::IMAGE_LIST`), as `extensions` were.
    pub open_listed: &'a dyn Fn(&Digest) -> Result<File, SysextImageError>,
}

/// One system extension image, already verified against its digest.
pub struct ExtensionSource<'a> {
    pub image: &'a File,
    pub digest: &'a Digest,
}

/// How the kernel took it, for the log and `check`.
#[derive(Debug, Clone)]
pub struct Assembled {
    pub backing: ErofsBacking,
    pub layers: LayerSyntax,
    /// The merged extensions, lowest first (the order they are measured in).
    pub extensions: Vec<MergedExtension>,
}

/// The private tmpfs; detaching it detaches everything still below it.
struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// Private, because moving a mount whose parent is shared fails with
    /// EINVAL, and systemd makes every mount shared.
    fn new(dir: &Path) -> Result<Self, AssembleError> {
        match rustix::fs::mkdir(dir, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(errno) => return Err(step("mkdir", dir, errno)),
        }
        let tmp = mount::tmpfs("0700")?;
        attach(&tmp, dir)?;
        let staging = Staging {
            dir: dir.to_owned(),
        };
        mount_change(dir, MountPropagationFlags::PRIVATE)
            .map_err(|e| step("make private", dir, e))?;
        Ok(staging)
    }

    fn mkdir(&self, name: &str) -> Result<PathBuf, AssembleError> {
        let path = self.dir.join(name);
        rustix::fs::mkdir(&path, Mode::from_raw_mode(0o755))
            .map_err(|e| step("mkdir", &path, e))?;
        Ok(path)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Lazy unmount takes the whole subtree: a half-built root goes
        // with it; after a commit only the EROFS attachment is left.
        if let Err(e) = unmount(&self.dir, UnmountFlags::DETACH) {
            log::error!("cleanup: cannot detach {}: {e}", self.dir.display());
        }
    }
}

fn step(step: &'static str, path: &Path, errno: Errno) -> AssembleError {
    AssembleError::Step {
        step,
        path: path.to_owned(),
        errno,
    }
}

fn attach(mnt: &OwnedFd, target: &Path) -> Result<(), AssembleError> {
    move_mount(
        mnt.as_fd(),
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| step("attach a mount at", target, e))
}

fn clone_tree(path: &Path, recursive: bool) -> Result<OwnedFd, AssembleError> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    open_tree(CWD, path, flags).map_err(|e| step("clone the mount", path, e))
}

/// `rel` must be a directory of the new root, to mount on.
fn mount_point(root: &Path, rel: &'static str) -> Result<PathBuf, AssembleError> {
    let path = root.join(rel.trim_start_matches('/'));
    match mount::open_path(CWD, path.to_str().unwrap_or_default()) {
        Ok(_) => Ok(path),
        Err(Errno::NOENT | Errno::NOTDIR) => Err(AssembleError::MissingMountPoint { path: rel }),
        Err(errno) => Err(step("open mount point", &path, errno)),
    }
}

/// Where /etc or /var of the new root comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateSource {
    /// The image's own directory, read-only (`mount = "none"`).
    Image,
    /// The deployment's directory bind-mounted (`mount = "bind"`).
    Bind(PathBuf),
    /// The image's directory below, the deployment's `upper` (with its
    /// `work`) above (`mount = "overlay"`).
    Overlay { upper: PathBuf, work: PathBuf },
    /// The image's directory below, a tmpfs above (`mount = "transient"`).
    Transient,
}

/// What `stage` will do to the real root and how it will mount the state,
/// decided before anything is created or mounted. Paths are relative to
/// the real root (`state/deploy/<hex>/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Directories to create on the real root if missing, with their modes,
    /// parents first (an existing one keeps its mode: it is the user's).
    pub create: Vec<(PathBuf, u32)>,
    /// Directories that must exist already (a bind-mounted /etc: an empty
    /// one would boot without configuration).
    pub require: Vec<PathBuf>,
    pub etc: StateSource,
    pub var: StateSource,
    /// A tmpfs overlay over the whole verified root.
    pub root_transient: bool,
    /// The overlay's source, which bootc reads back: `composefs:<hex>`.
    pub overlay_source: String,
}

/// The plan for the image `digest_hex` under `mounts`; refuses modes that
/// cannot work together before anything happens.
pub fn plan(mounts: MountModes, digest_hex: &str) -> Result<Plan, AssembleError> {
    mounts.validate().map_err(AssembleError::Policy)?;
    let deploy = state::deploy_rel(digest_hex);
    let mut create = Vec::new();
    let mut require = Vec::new();
    let mut source = |name: &str, mode: StateMount| {
        let dir = deploy.join(name);
        match mode {
            StateMount::None => StateSource::Image,
            StateMount::Transient => StateSource::Transient,
            StateMount::Overlay => {
                // upper 0755: the merged directory takes its mode from it.
                let (upper, work) = (dir.join("upper"), dir.join("work"));
                create.push((upper.clone(), 0o755));
                create.push((work.clone(), 0o700));
                StateSource::Overlay { upper, work }
            }
            // An empty /var is a valid first boot, an empty /etc is not.
            StateMount::Bind if name == "etc" => {
                require.push(dir.clone());
                StateSource::Bind(dir)
            }
            StateMount::Bind => {
                create.push((dir.clone(), 0o755));
                StateSource::Bind(dir)
            }
        }
    };
    let etc = source("etc", mounts.etc);
    let var = source("var", mounts.var);
    Ok(Plan {
        create,
        require,
        etc,
        var,
        root_transient: mounts.root_transient,
        overlay_source: format!("composefs:{digest_hex}"),
    })
}

/// A state directory, open: the mounts take these, not paths.
enum StateDir {
    Bind(OwnedFd),
    Overlay { upper: OwnedFd, work: OwnedFd },
}

/// The real root's part of the plan: it needs no cleanup, so it comes
/// before anything is mounted. Every directory is opened (or created) by
/// fd from the real root's mount point, none through a symlink.
fn prepare_state(
    plan: &Plan,
    sysroot: &Path,
) -> Result<(Option<StateDir>, Option<StateDir>), AssembleError> {
    let root = state::open_root(sysroot)?;
    let base = Base::new(root.as_fd(), sysroot);
    let mut required = Vec::new();
    for rel in &plan.require {
        let fd = state::existing_dir(base, rel)?.ok_or_else(|| AssembleError::MissingState {
            path: sysroot.join(rel),
        })?;
        required.push((rel.clone(), fd));
    }
    let mut created = Vec::new();
    for (rel, mode) in &plan.create {
        created.push((rel.clone(), state::ensure_dir(base, rel, *mode)?));
    }
    let mut take = |rel: &Path| {
        let i = required
            .iter()
            .position(|(r, _)| r == rel)
            .map(|i| required.remove(i).1)
            .or_else(|| {
                let i = created.iter().position(|(r, _)| r == rel)?;
                Some(created.remove(i).1)
            });
        i.ok_or_else(|| step("plan", rel, Errno::INVAL))
    };
    let mut open = |source: &StateSource| -> Result<Option<StateDir>, AssembleError> {
        Ok(match source {
            StateSource::Bind(rel) => Some(StateDir::Bind(take(rel)?)),
            StateSource::Overlay { upper, work } => Some(StateDir::Overlay {
                upper: take(upper)?,
                work: take(work)?,
            }),
            StateSource::Image | StateSource::Transient => None,
        })
    };
    let etc = open(&plan.etc)?;
    let var = open(&plan.var)?;
    Ok((etc, var))
}

/// A fully assembled tree in the staging area, not yet visible at /sysroot.
/// Dropped without `commit`, it is detached with everything below it.
pub struct Staged {
    staging: Staging,
    root_dir: PathBuf,
    sysroot: PathBuf,
    pub assembled: Assembled,
}

impl Staged {
    /// The one step that changes what /sysroot shows.
    pub fn commit(self) -> Result<Assembled, AssembleError> {
        move_mount(
            CWD,
            &self.root_dir,
            CWD,
            &self.sysroot,
            MoveMountFlags::empty(),
        )
        .map_err(|e| step("move the verified root onto", &self.sysroot, e))?;
        let assembled = self.assembled;
        drop(self.staging);
        Ok(assembled)
    }
}

/// Mounts `source` as the new root with the real root, /etc and /var
/// below it, in the staging area; `Staged::commit` moves it onto /sysroot.
pub fn stage(
    source: &Source<'_>,
    mounts: MountModes,
    layout: &Layout,
) -> Result<Staged, AssembleError> {
    let plan = plan(mounts, source.digest_hex)?;
    let (etc_dir, var_dir) = prepare_state(&plan, &layout.sysroot)?;

    let staging = Staging::new(&layout.run_dir)?;
    let (erofs, backing) =
        mount::erofs(source.image, source.force_loop).map_err(|error| AssembleError::Image {
            path: source.image_path.to_owned(),
            error,
        })?;
    let erofs_dir = staging.mkdir("erofs")?;
    attach(&erofs, &erofs_dir)?;
    let (ext_dirs, merged) = stage_extensions(&staging, source, &erofs_dir)?;
    // One overlay: extensions above the root image, the topmost first.
    let mut lowers: Vec<&Path> = ext_dirs.iter().rev().map(PathBuf::as_path).collect();
    lowers.push(&erofs_dir);
    let (root, layers) = mount::composefs_overlay(
        &lowers,
        source.objects,
        // bootc reads this source back to learn which image was booted.
        &plan.overlay_source,
        source.require_verity,
    )?;
    let root_dir = staging.mkdir("root")?;
    attach(&root, &root_dir)?;
    if plan.root_transient {
        // Stacked on the verified root at the same place: the move below
        // takes the top mount, which keeps its own reference to the lower.
        let (upper, work) = transient_layers(&staging, "root-state")?;
        attach(
            &mount::state_overlay(
                "transient",
                &root_dir,
                &state::fd_path(&upper),
                &state::fd_path(&work),
                MountAttrFlags::empty(),
            )?,
            &root_dir,
        )?;
    }

    // The real root stays reachable (bootc and ostree expect /sysroot).
    match mount_point(&root_dir, "/sysroot") {
        Ok(sysroot_mp) => {
            attach(&clone_tree(&layout.sysroot, true)?, &sysroot_mp)?;
            if layout.sysroot_readonly {
                mount_remount(&sysroot_mp, MountFlags::BIND | MountFlags::RDONLY, "")
                    .map_err(|e| step("make read-only", &sysroot_mp, e))?;
            }
        }
        // composefs-setup-root tolerates this too; the system just cannot see the real root.
        Err(AssembleError::MissingMountPoint { .. }) => {
            log::warn!("the image has no /sysroot: the real root will not be reachable from the booted system");
        }
        Err(e) => return Err(e),
    }

    mount_state(&staging, &root_dir, "etc", &plan.etc, etc_dir)?;
    mount_state(&staging, &root_dir, "var", &plan.var, var_dir)?;

    // The real root's clone shares propagation with /sysroot's mount, so
    // the move below would also be mounted on top of the clone, hiding the
    // real root at /sysroot/sysroot. A private tree is moved as it is.
    mount_change(
        &root_dir,
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| step("make private", &root_dir, e))?;
    Ok(Staged {
        staging,
        root_dir,
        sysroot: layout.sysroot.clone(),
        assembled: Assembled {
            backing,
            layers,
            extensions: merged,
        },
    })
}

/// Mounts each extension's EROFS in the staging area and checks it
/// against the sysext rules, reading through private `verity=require`
/// overlays that are never attached. Returns the EROFS mount points,
/// lowest first, for the root's overlay.
fn stage_extensions(
    staging: &Staging,
    source: &Source<'_>,
    root_erofs: &Path,
) -> Result<(Vec<PathBuf>, Vec<MergedExtension>), AssembleError> {
    let ext_err = |e| AssembleError::Extension(Box::new(e));
    let view = |dir: &Path| {
        mount::composefs_overlay(
            &[dir],
            source.objects,
            "veriroot-inspect",
            source.require_verity,
        )
        .map(|(m, _)| m)
    };
    // Most images list nothing and most command lines name nothing: then
    // no overlay is mounted just to look (it costs a mount in every boot).
    let erofs_dir = rustix::fs::open(
        root_erofs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| step("open", root_erofs, e))?;
    let has_list = extensions::has_image_list(&erofs_dir).map_err(ext_err)?;
    drop(erofs_dir);
    if !has_list && source.extensions.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let root_view = view(root_erofs)?;
    let listed = extensions::image_list(&root_view).map_err(ext_err)?;
    if listed.is_empty() && source.extensions.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let root_release = extensions::root_release(&root_view).map_err(ext_err)?;
    drop(root_view);
    let mut listed_files = Vec::new();
    for digest in &listed {
        if source.extensions.iter().any(|e| e.digest == digest) {
            return Err(AssembleError::ListedTwice {
                digest: digest.clone(),
            });
        }
        let file = (source.open_listed)(digest).map_err(|error| AssembleError::Listed {
            digest: digest.clone(),
            error: Box::new(error),
        })?;
        listed_files.push(file);
    }
    if !listed.is_empty() {
        log::info!(
            "the root image lists {} system extension(s) in /{}",
            listed.len(),
            extensions::IMAGE_LIST
        );
    }
    // Lowest first: the image's own list, then the command line's.
    let all: Vec<(&File, &Digest)> = listed_files
        .iter()
        .zip(&listed)
        .chain(source.extensions.iter().map(|e| (e.image, e.digest)))
        .collect();
    let mut dirs = Vec::new();
    let mut merged: Vec<MergedExtension> = Vec::new();
    for (i, (image, digest)) in all.into_iter().enumerate() {
        let (erofs, _) = mount::erofs(image, source.force_loop)?;
        let dir = staging.mkdir(&format!("sysext-{i}"))?;
        attach(&erofs, &dir)?;
        let id = ExtensionId {
            name: None,
            digest: digest.clone(),
        };
        let name = extensions::inspect(view(&dir)?, id, &root_release).map_err(ext_err)?;
        if let Some(first) = merged.iter().find(|m| m.name == name) {
            return Err(ext_err(ExtensionError::Rule(SysextError::DuplicateName {
                name,
                first: first.digest.clone(),
                second: digest.clone(),
            })));
        }
        log::info!("system extension '{name}' ({digest}) passes the sysext rules");
        merged.push(MergedExtension {
            name,
            digest: digest.clone(),
        });
        dirs.push(dir);
    }
    Ok((dirs, merged))
}

/// A tmpfs in the staging area with `upper` (0755) and `work` (0700).
fn transient_layers(staging: &Staging, name: &str) -> Result<(OwnedFd, OwnedFd), AssembleError> {
    let dir = staging.mkdir(name)?;
    attach(&mount::tmpfs("0755")?, &dir)?;
    let fd = state::open_root(&dir)?;
    let base = Base::new(fd.as_fd(), &dir);
    let upper = state::ensure_dir(base, Path::new("upper"), 0o755)?;
    let work = state::ensure_dir(base, Path::new("work"), 0o700)?;
    Ok((upper, work))
}

/// Mounts /etc or /var of the new root from `source` (`dir`: its state
/// directory, open). Writable state is `nosuid,nodev`: fs-verity does not
/// cover it, so a setuid binary or a device node planted there must not
/// work (docs/design.md).
fn mount_state(
    staging: &Staging,
    root_dir: &Path,
    name: &'static str,
    source: &StateSource,
    dir: Option<StateDir>,
) -> Result<(), AssembleError> {
    if *source == StateSource::Image {
        return Ok(());
    }
    let mp = mount_point(root_dir, if name == "etc" { "/etc" } else { "/var" })?;
    let overlay = |source: String, upper: OwnedFd, work: OwnedFd| {
        mount::state_overlay(
            &source,
            &mp,
            &state::fd_path(&upper),
            &state::fd_path(&work),
            mount::UNVERIFIED_STATE,
        )
    };
    let mnt = match dir {
        Some(StateDir::Bind(fd)) => {
            attach(&clone_fd(&fd)?, &mp)?;
            // A clone keeps the real root's flags: set ours on the attached copy.
            return mount_remount(
                &mp,
                MountFlags::BIND | MountFlags::NOSUID | MountFlags::NODEV,
                "",
            )
            .map_err(|e| step("make nosuid,nodev", &mp, e));
        }
        Some(StateDir::Overlay { upper, work }) => {
            overlay(format!("composefs-{name}"), upper, work)?
        }
        None => {
            let (upper, work) = transient_layers(staging, &format!("{name}-state"))?;
            overlay(format!("transient-{name}"), upper, work)?
        }
    };
    attach(&mnt, &mp)
}

/// A private copy of the mount at an open directory (`open_tree` on the fd).
fn clone_fd(dir: &OwnedFd) -> Result<OwnedFd, AssembleError> {
    open_tree(
        dir,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(|e| step("clone the mount", &state::fd_path(dir), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "ab12";

    #[test]
    fn an_image_the_disk_cannot_read_is_named_with_the_io_error() {
        let image = |errno| AssembleError::Image {
            path: "/sysroot/composefs/images/ab12".into(),
            error: MountError {
                step: "erofs: create".into(),
                errno,
                kernel_log: Vec::new(),
                hint: None,
            },
        };
        let e = image(Errno::IO).to_string();
        // (The errno's own text is the libc's: musl and glibc differ.)
        assert!(
            e.starts_with(
                "cannot mount the image /sysroot/composefs/images/ab12: erofs: create failed: "
            ),
            "{e}"
        );
        assert!(e.contains("; reading it failed with an I/O error"), "{e}");
        assert!(e.contains("the disk returned EIO"), "{e}");
        // Other errors get no EIO explanation.
        let e = image(Errno::NOMEM).to_string();
        assert!(!e.contains("reading it failed"), "{e}");
    }

    #[test]
    fn default_modes_overlay_etc_and_bind_var_from_the_deployment() {
        let p = plan(MountModes::default(), HEX).unwrap();
        let deploy = Path::new("state/deploy/ab12");
        assert_eq!(
            p.create,
            [
                (deploy.join("etc/upper"), 0o755),
                (deploy.join("etc/work"), 0o700),
                (deploy.join("var"), 0o755),
            ]
        );
        assert!(p.require.is_empty());
        assert_eq!(
            p.etc,
            StateSource::Overlay {
                upper: deploy.join("etc/upper"),
                work: deploy.join("etc/work")
            }
        );
        assert_eq!(p.var, StateSource::Bind(deploy.join("var")));
        assert!(!p.root_transient);
        assert_eq!(p.overlay_source, "composefs:ab12");
    }

    #[test]
    fn a_bound_etc_must_exist_and_is_never_created() {
        let modes = MountModes {
            etc: StateMount::Bind,
            var: StateMount::Overlay,
            ..MountModes::default()
        };
        let p = plan(modes, HEX).unwrap();
        let etc = Path::new("state/deploy/ab12/etc");
        assert_eq!(p.require, [etc.to_owned()]);
        assert!(p.create.iter().all(|(d, _)| !d.starts_with(etc)), "{p:?}");
        assert_eq!(p.etc, StateSource::Bind(etc.to_owned()));
        // The check runs before anything is created.
        let root = tempfile::tempdir().unwrap();
        let e = prepare_state(
            &Plan {
                create: vec![("never".into(), 0o755)],
                ..p
            },
            root.path(),
        )
        .err()
        .unwrap();
        assert!(
            matches!(e, AssembleError::MissingState { ref path } if *path == root.path().join(etc)),
            "{e}"
        );
        assert!(!root.path().join("never").exists());
    }

    #[test]
    fn transient_and_none_touch_nothing_on_the_real_root() {
        let modes = MountModes {
            root_transient: true,
            etc: StateMount::None,
            var: StateMount::None,
        };
        let p = plan(modes, HEX).unwrap();
        assert!(p.create.is_empty() && p.require.is_empty());
        assert_eq!((p.etc, p.var), (StateSource::Image, StateSource::Image));
        assert!(p.root_transient);
        let modes = MountModes {
            etc: StateMount::Transient,
            var: StateMount::Transient,
            ..MountModes::default()
        };
        let p = plan(modes, HEX).unwrap();
        assert!(p.create.is_empty());
        assert_eq!(
            (p.etc, p.var),
            (StateSource::Transient, StateSource::Transient)
        );
    }

    #[test]
    fn modes_overlayfs_cannot_stack_are_refused_before_anything_happens() {
        let modes = MountModes {
            root_transient: true,
            ..MountModes::default()
        };
        let e = plan(modes, HEX).unwrap_err();
        assert!(
            matches!(e, AssembleError::Policy(ModeConflict { dir: "etc", .. })),
            "{e}"
        );
    }
}
