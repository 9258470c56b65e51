//! Asking the running kernel what it supports, by trying: an option the
//! kernel does not know fails `fsconfig` with EINVAL, before anything is
//! created or mounted.

use std::fs::File;
use std::os::fd::AsFd;

use rustix::io::Errno;

use crate::kernel::mount::{fd_path, FsContext};

/// A probe's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Yes,
    No,
    /// The probe itself failed (not root, module missing): the errno says why.
    Unknown(Errno),
}

impl Support {
    fn from_result(r: Result<(), Errno>) -> Self {
        match r {
            Ok(()) => Support::Yes,
            Err(Errno::INVAL) | Err(Errno::NOTBLK) => Support::No,
            Err(e) => Support::Unknown(e),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct KernelFeatures {
    /// overlay `verity=require` (6.6+).
    pub overlay_verity: Support,
    /// overlay `lowerdir+` and `datadir+` (6.7+).
    pub overlay_append_layers: Support,
    /// overlay data-only layers in the `lowerdir=A::B` form (6.5+).
    pub overlay_data_only: Support,
}

fn overlay_accepts(options: &[(&str, &str)]) -> Support {
    let run = || -> Result<(), Errno> {
        let ctx = FsContext::open("overlay").map_err(|e| e.errno)?;
        for (k, v) in options {
            ctx.set(k, v).map_err(|e| e.errno)?;
        }
        Ok(())
    };
    Support::from_result(run())
}

pub fn kernel_features() -> KernelFeatures {
    KernelFeatures {
        overlay_verity: overlay_accepts(&[("verity", "require")]),
        overlay_append_layers: overlay_accepts(&[("lowerdir+", "/"), ("datadir+", "/")]),
        // Layer paths of the legacy form are resolved only at create time,
        // so this is a parse check: 6.5+ knows `::`, older kernels reject it.
        overlay_data_only: overlay_accepts(&[("lowerdir", "/::/")]),
    }
}

/// Whether EROFS takes `image` as a file (6.12+): a superblock is created
/// from it and dropped again, never attached.
pub fn erofs_file_backed(image: &File) -> Support {
    let run = || -> Result<(), Errno> {
        let ctx = FsContext::open("erofs").map_err(|e| e.errno)?;
        ctx.set("source", &fd_path(image.as_fd()))
            .map_err(|e| e.errno)?;
        ctx.flag("ro").map_err(|e| e.errno)?;
        rustix::mount::fsconfig_create(&ctx)
    };
    Support::from_result(run())
}
