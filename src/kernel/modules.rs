//! Loading the kernel modules shipped in a minimal initrd, dependencies
//! first, as `modules.dep` orders them.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fmt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// `MODULE_INIT_COMPRESSED_FILE`: the kernel decompresses (.ko.xz/.zst/.gz).
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

#[derive(Debug)]
pub struct ModuleError {
    pub path: PathBuf,
    pub errno: Errno,
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot load kernel module {}: {}",
            self.path.display(),
            self.errno
        )?;
        if self.errno == Errno::NOEXEC || self.errno == Errno::INVAL {
            write!(f, "; was it built for this kernel ({})?", release())?;
        }
        Ok(())
    }
}

impl std::error::Error for ModuleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.errno)
    }
}

pub fn release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

/// `modules.dep`: `path: dep dep ...`, paths relative to the module dir.
pub fn parse_dep(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .filter_map(|line| {
            let (module, deps) = line.split_once(':')?;
            Some((
                module.trim().to_owned(),
                deps.split_whitespace().map(str::to_owned).collect(),
            ))
        })
        .filter(|(m, _)| !m.is_empty())
        .collect()
}

/// Every module of `modules.dep` in an order where dependencies come first.
pub fn load_order(entries: &[(String, Vec<String>)]) -> Vec<String> {
    let deps: HashMap<&str, &[String]> = entries
        .iter()
        .map(|(m, d)| (m.as_str(), d.as_slice()))
        .collect();
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    // Depth-first, post-order, with an explicit stack: a modules.dep whose
    // chain of dependencies is long must not overflow the initrd's stack.
    // Each frame is a module and how many of its dependencies were visited.
    let mut stack: Vec<(&str, usize)> = Vec::new();
    for (root, _) in entries {
        if seen.insert(root.as_str()) {
            stack.push((root.as_str(), 0));
        }
        while let Some((m, next)) = stack.last_mut() {
            let module = *m;
            let its = deps.get(module).copied().unwrap_or_default();
            if let Some(d) = its.get(*next) {
                *next += 1;
                if seen.insert(d.as_str()) {
                    stack.push((d.as_str(), 0));
                }
            } else {
                order.push(module.to_owned());
                stack.pop();
            }
        }
    }
    order
}

/// Loads all modules listed in `<dir>/modules.dep`. A missing file means
/// the kernel has what it needs built in; a module already loaded is fine.
pub fn load_all(dir: &Path) -> Result<usize, ModuleError> {
    let dep = dir.join("modules.dep");
    // Bytes, not a String: a stray non-UTF-8 byte must not read as EIO.
    let text = match std::fs::read(&dep) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(ModuleError {
                path: dep,
                // read(2)'s own error: std::fs::read returns no other kind.
                errno: Errno::from_io_error(&e).unwrap_or(Errno::IO),
            });
        }
    };
    let mut loaded = 0;
    for rel in load_order(&parse_dep(&text)) {
        let path = dir.join(&rel);
        let err = |errno| ModuleError {
            path: path.clone(),
            errno,
        };
        let fd = rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(err)?;
        let flags = if rel.ends_with(".ko") {
            0
        } else {
            MODULE_INIT_COMPRESSED_FILE
        };
        let params = CString::default();
        match rustix::system::finit_module(&fd, &params, flags) {
            Ok(()) => loaded += 1,
            Err(Errno::EXIST) => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_load_first_whatever_the_file_order() {
        let dep =
            "kernel/fs/erofs/erofs.ko.xz: kernel/lib/libcrc32c.ko.xz kernel/crypto/crc32c.ko.xz\n\
                   kernel/fs/overlayfs/overlay.ko.xz:\n\
                   kernel/lib/libcrc32c.ko.xz: kernel/crypto/crc32c.ko.xz\n\
                   kernel/crypto/crc32c.ko.xz:\n";
        let order = load_order(&parse_dep(dep));
        let pos = |m: &str| order.iter().position(|x| x.ends_with(m)).unwrap();
        assert_eq!(order.len(), 4);
        assert!(pos("crc32c.ko.xz") < pos("libcrc32c.ko.xz"));
        assert!(pos("libcrc32c.ko.xz") < pos("erofs.ko.xz"));
    }

    #[test]
    fn a_long_chain_or_a_cycle_neither_overflows_nor_loops() {
        // m0 needs m1 needs m2 ... : recursion one frame per link would
        // overflow the stack long before the end.
        let n = 200_000;
        let entries: Vec<(String, Vec<String>)> = (0..n)
            .map(|i| (format!("m{i}.ko"), vec![format!("m{}.ko", i + 1)]))
            .collect();
        let order = load_order(&entries);
        assert_eq!(order.len(), n + 1);
        assert_eq!(order[0], format!("m{n}.ko"));
        assert_eq!(order[n], "m0.ko");
        let cycle = parse_dep("a.ko: b.ko\nb.ko: a.ko\n");
        assert_eq!(load_order(&cycle), vec!["b.ko", "a.ko"]);
    }

    #[test]
    fn blank_and_odd_lines_are_skipped() {
        assert_eq!(
            parse_dep("\n# x\na.ko:\n"),
            vec![("a.ko".to_owned(), vec![])]
        );
    }
}
