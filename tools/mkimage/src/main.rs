//! veriroot-mkimage: write a composefs repository for tests.
//!
//! `veriroot-mkimage --algorithm sha256|sha512 --repo REPO_DIR SOURCE_DIR`
//! imports SOURCE_DIR into the composefs-rs repository at REPO_DIR (created
//! if missing, in insecure mode: the host has no fs-verity), commits an EROFS
//! image of it and prints the image's fs-verity digest (lowercase hex).

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use composefs::fs::read_filesystem;
use composefs::fsverity::{Algorithm, FsVerityHashValue, Sha256HashValue, Sha512HashValue};
use composefs::repository::{Repository, RepositoryConfig};

const USAGE: &str = "\
Usage: veriroot-mkimage --algorithm sha256|sha512 --repo REPO_DIR SOURCE_DIR

Imports the directory tree SOURCE_DIR into the composefs repository REPO_DIR
(created if missing; insecure mode, no fs-verity needed on this host), commits
an EROFS image of it and prints the image's fs-verity digest as hex.";

#[derive(Debug)]
enum Error {
    /// Bad command line.
    Usage(String),
    /// A plain I/O step of ours failed.
    Io(String, std::io::Error),
    /// The composefs crate failed; its error chain, already formatted.
    Composefs(&'static str, String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg}\n\n{USAGE}"),
            Error::Io(what, e) => write!(f, "{what}: {e}"),
            Error::Composefs(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

/// Maps a composefs (anyhow) error, keeping its whole context chain.
fn cfs<E: fmt::Display>(what: &'static str) -> impl FnOnce(E) -> Error {
    move |e| Error::Composefs(what, format!("{e:#}"))
}

struct Args {
    algorithm: Algorithm,
    repo: PathBuf,
    source: PathBuf,
}

enum Command {
    Help,
    Build(Args),
}

fn parse_args(mut args: impl Iterator<Item = OsString>) -> Result<Command, Error> {
    let (mut algorithm, mut repo, mut source) = (None, None, None);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| Error::Usage(format!("{name} needs a value")))
        };
        match arg.to_str() {
            Some("-h" | "--help") => return Ok(Command::Help),
            Some("--algorithm") => {
                algorithm = Some(match value("--algorithm")?.to_str() {
                    Some("sha256") => Algorithm::SHA256,
                    Some("sha512") => Algorithm::SHA512,
                    _ => return Err(Error::Usage("--algorithm must be sha256 or sha512".into())),
                })
            }
            Some("--repo") => repo = Some(PathBuf::from(value("--repo")?)),
            Some(s) if s.starts_with('-') => {
                return Err(Error::Usage(format!("unknown option {s}")))
            }
            _ if source.is_none() => source = Some(PathBuf::from(arg)),
            _ => return Err(Error::Usage("only one SOURCE_DIR may be given".into())),
        }
    }
    Ok(Command::Build(Args {
        algorithm: algorithm.ok_or_else(|| Error::Usage("--algorithm is required".into()))?,
        repo: repo.ok_or_else(|| Error::Usage("--repo is required".into()))?,
        source: source.ok_or_else(|| Error::Usage("SOURCE_DIR is required".into()))?,
    }))
}

/// Imports `args.source` into the repository and commits an image; returns
/// the image's fs-verity digest (also its name under `images/`).
fn build<H: FsVerityHashValue>(args: &Args) -> Result<H, Error> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |e| Error::Io(what, e)
    };
    // Paths are resolved relative to the current directory (absolute ones
    // ignore it), as openat() does.
    let cwd = File::open(".").map_err(io("opening the current directory"))?;
    // Check the source first, so a typo leaves no empty repository behind.
    let source_meta = std::fs::metadata(&args.source)
        .map_err(io(&format!("reading {}", args.source.display())))?;
    if !source_meta.is_dir() {
        let e = std::io::Error::from(std::io::ErrorKind::NotADirectory);
        return Err(Error::Io(args.source.display().to_string(), e));
    }
    // The crate creates the repository directory itself (mode 0700), but
    // not its parents.
    if let Some(parent) = args.repo.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(&format!("creating {}", parent.display())))?;
    }

    let config = RepositoryConfig::new(args.algorithm).set_insecure();
    let (mut repo, _status) = Repository::<H>::ensure_path(&cwd, &args.repo, config)
        .map_err(cfs("opening repository"))?;
    // An existing repository is opened in whatever mode its meta.json says;
    // this tool always writes without fs-verity.
    repo.set_insecure();
    let repo = Arc::new(repo);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(io("starting the async runtime"))?;
    let dirfd = OwnedFd::from(cwd);
    let fs = runtime
        .block_on(read_filesystem(
            dirfd,
            args.source.clone(),
            Some(Arc::clone(&repo)),
        ))
        .map_err(cfs("importing the source tree"))?;
    let id = fs
        .commit_image(&repo, None)
        .map_err(cfs("committing the image"))?;
    repo.sync().map_err(cfs("syncing the repository"))?;
    Ok(id)
}

fn run() -> Result<(), Error> {
    let args = match parse_args(std::env::args_os().skip(1))? {
        Command::Help => {
            println!("{USAGE}");
            return Ok(());
        }
        Command::Build(args) => args,
    };
    let hex = match args.algorithm {
        Algorithm::Sha256 { .. } => build::<Sha256HashValue>(&args)?.to_hex(),
        Algorithm::Sha512 { .. } => build::<Sha512HashValue>(&args)?.to_hex(),
    };
    println!("{hex}");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("veriroot-mkimage: {e}");
            match e {
                Error::Usage(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
