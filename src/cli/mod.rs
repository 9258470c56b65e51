//! The command-line front end: arguments to a `Command`, a `Command` to the
//! module that does it, and every failure as one typed `CommandError`.
//! `main` prints it; PID 1 passes only through `main`'s first line
//! (`boot::pid1`).
//!
//! Two builds share it (docs/design.md, "Two builds"): the full `veriroot`
//! (`src/main.rs`, `run`) and the initrd build (`src/bin/veriroot-initrd.rs`,
//! `run_initrd`), which reaches no `host` module, so the linker leaves
//! them out; asked for a host command it names the build that has it.
#![forbid(unsafe_code)]

mod help;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

pub use help::{HELP, INITRD_NOTE};

use crate::boot::paths::HostPaths;
use crate::boot::setup_root;
use crate::fsverity::Algorithm;
use crate::host::check::{self, CheckError};
use crate::host::digest;
use crate::host::enable_verity::{self, EnableError};
use crate::host::log::{self, LogCommandError};
use crate::host::predict::{self, PredictArgs, PredictError};
use crate::host::status::{self, StatusArgs, StatusError};
use crate::measure::HashAlg;

/// A parsed command line of the `veriroot` binary (not PID 1's).
#[derive(Debug)]
pub enum Command {
    SetupRoot {
        args: setup_root::Args,
        /// `--tpm2-device PATH`: this TPM instead of /dev/tpmrm0, /dev/tpm0.
        tpm_device: Option<PathBuf>,
    },
    Check {
        sysroot: PathBuf,
        cmdline: Option<String>,
        /// Trusted keys to check signatures with (default: /etc/veriroot/keys).
        keys: Option<PathBuf>,
        /// `--luks DEV`: LUKS2 volumes whose TPM2 policies are checked.
        luks: Vec<PathBuf>,
    },
    EnableVerity {
        dir: PathBuf,
        algorithm: Option<Algorithm>,
    },
    Digest {
        files: Vec<PathBuf>,
        algorithm: Algorithm,
    },
    // Boxed: the largest variant by far (clippy::large_enum_variant).
    Predict(Box<PredictArgs>),
    Log {
        file: Option<PathBuf>,
        json: bool,
        tpm: bool,
        tpm_device: Option<PathBuf>,
    },
    Status(StatusArgs),
    Help,
    Version,
}

impl Command {
    /// The subcommand (or option) as the user typed it.
    fn name(&self) -> &'static str {
        match self {
            Command::SetupRoot { .. } => "setup-root",
            Command::Check { .. } => "check",
            Command::EnableVerity { .. } => "enable-verity",
            Command::Digest { .. } => "digest",
            Command::Predict(_) => "predict",
            Command::Log { .. } => "log",
            Command::Status(_) => "status",
            Command::Help => "--help",
            Command::Version => "--version",
        }
    }
}

/// Why a subcommand failed (usage errors are `lexopt::Error`, exit 2).
#[derive(Debug)]
pub enum CommandError {
    Check(CheckError),
    Status(StatusError),
    EnableVerity(EnableError),
    /// Writing `veriroot digest`'s output failed.
    Digest(std::io::Error),
    Predict(PredictError),
    Log(LogCommandError),
    /// A host command asked of the initrd build.
    NotInInitrdBuild {
        command: &'static str,
    },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Check(e) => e.fmt(f),
            CommandError::Status(e) => e.fmt(f),
            CommandError::EnableVerity(e) => e.fmt(f),
            CommandError::Digest(e) => write!(f, "writing to stdout: {e}"),
            CommandError::Predict(e) => e.fmt(f),
            CommandError::Log(e) => e.fmt(f),
            CommandError::NotInInitrdBuild { command } => write!(
                f,
                "'{command}' is not in this build: this is veriroot's initrd build \
                 (PID 1 and setup-root only); the full veriroot has it \
                 (/usr/bin/veriroot on the host, target/*/release/veriroot in a build tree)"
            ),
        }
    }
}

impl std::error::Error for CommandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CommandError::Check(e) => Some(e),
            CommandError::Status(e) => Some(e),
            CommandError::EnableVerity(e) => Some(e),
            CommandError::Digest(e) => Some(e),
            CommandError::Predict(e) => Some(e),
            CommandError::Log(e) => Some(e),
            CommandError::NotInInitrdBuild { .. } => None,
        }
    }
}

fn parse_algorithm(option: &str, v: &str) -> Result<Algorithm, lexopt::Error> {
    match v {
        "sha256" => Ok(Algorithm::Sha256),
        "sha512" => Ok(Algorithm::Sha512),
        _ => Err(format!("{option} {v}: expected sha256 or sha512").into()),
    }
}

fn parse_banks(list: &str) -> Result<Vec<HashAlg>, lexopt::Error> {
    list.split(',')
        .map(|b| {
            HashAlg::from_name(b).ok_or_else(|| {
                format!("--banks: unknown bank '{b}' (sha1, sha256, sha384, sha512)").into()
            })
        })
        .collect()
}

/// Parses the arguments after the program name.
pub fn parse_args(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let sub = match parser.next()? {
        None => return Ok(Command::Help),
        Some(Long("help") | Short('h')) => return Ok(Command::Help),
        Some(Long("version")) => return Ok(Command::Version),
        Some(Value(v)) => v.string()?,
        Some(arg) => return Err(arg.unexpected()),
    };
    let mut sysroot = PathBuf::from("/sysroot");
    let mut keys: Option<PathBuf> = None;
    let mut cmdline = None;
    let mut config = None;
    let mut algorithm = None;
    let mut path = None;
    let mut files = Vec::new();
    let mut tpm_device = None;
    let mut p = PredictArgs::default();
    let mut no_tpm = false;
    let mut st = StatusArgs::default();
    while let Some(arg) = parser.next()? {
        match (sub.as_str(), arg) {
            (_, Long("help") | Short('h')) => return Ok(Command::Help),
            ("setup-root" | "check", Long("sysroot")) => sysroot = parser.value()?.into(),
            ("check", Long("keys")) => keys = Some(parser.value()?.into()),
            ("status", Long("sysroot")) => st.sysroot = parser.value()?.into(),
            ("status", Long("log")) => st.log = parser.value()?.into(),
            ("status", Long("mountinfo")) => st.mountinfo = parser.value()?.into(),
            ("setup-root" | "check" | "predict", Long("cmdline")) => {
                cmdline = Some(parser.value()?.string()?)
            }
            ("setup-root" | "predict", Long("config")) => {
                config = Some(PathBuf::from(parser.value()?))
            }
            ("setup-root" | "log", Long("tpm2-device")) => {
                tpm_device = Some(PathBuf::from(parser.value()?))
            }
            ("enable-verity", Long("algorithm")) => {
                algorithm = Some(parse_algorithm("--algorithm", &parser.value()?.string()?)?)
            }
            ("digest", Long("hash" | "hash-alg")) => {
                algorithm = Some(parse_algorithm("--hash", &parser.value()?.string()?)?)
            }
            ("digest", Value(v)) => files.push(PathBuf::from(v)),
            ("check", Long("luks")) => files.push(PathBuf::from(parser.value()?)),
            ("predict", Long("digest")) => p.image = Some(parser.value()?.string()?),
            ("predict", Long("insecure")) => p.insecure = true,
            ("predict", Long("failure")) => p.failure = true,
            ("predict", Long("sysext")) => p.sysexts.push(parser.value()?.string()?),
            ("predict", Long("pcr")) => p.pcr = Some(parser.value()?.parse()?),
            ("predict", Long("etc")) => p.etc = Some(parser.value()?.string()?),
            ("predict", Long("var")) => p.var = Some(parser.value()?.string()?),
            ("predict", Long("uki")) => p.uki = Some(PathBuf::from(parser.value()?)),
            ("predict", Long("phase")) => p.phase = Some(parser.value()?.string()?),
            ("predict", Long("signer")) => p.signer = Some(PathBuf::from(parser.value()?)),
            ("predict", Long("machine-id")) => p.machine_id = Some(parser.value()?.string()?),
            ("predict", Long("tpm2-pcrs")) => p.tpm2_pcrs = true,
            ("predict", Long("signed-pcr11")) => p.signed_pcr11 = true,
            ("predict", Long("pcrlock")) => p.pcrlock = true,
            ("predict", Long("base-log")) => p.base_log = Some(PathBuf::from(parser.value()?)),
            ("predict", Long("banks")) => p.banks = parse_banks(&parser.value()?.string()?)?,
            ("predict" | "log", Long("json")) => p.json = true,
            ("log", Long("no-tpm")) => no_tpm = true,
            ("enable-verity" | "log", Value(v)) if path.is_none() => path = Some(PathBuf::from(v)),
            (_, arg) => return Err(arg.unexpected()),
        }
    }
    Ok(match sub.as_str() {
        "setup-root" => Command::SetupRoot {
            args: setup_root::Args {
                sysroot,
                cmdline,
                config,
            },
            tpm_device,
        },
        "check" => Command::Check {
            sysroot,
            cmdline,
            keys,
            luks: files,
        },
        "enable-verity" => Command::EnableVerity {
            dir: path.ok_or("enable-verity needs the repository directory")?,
            algorithm,
        },
        "digest" if files.is_empty() => return Err("digest needs at least one FILE".into()),
        "digest" => Command::Digest {
            files,
            algorithm: algorithm.unwrap_or(Algorithm::Sha256),
        },
        "predict" => {
            p.cmdline = cmdline;
            p.config = config;
            Command::Predict(Box::new(p))
        }
        "log" => Command::Log {
            file: path,
            json: p.json,
            tpm: !no_tpm,
            tpm_device,
        },
        "status" => Command::Status(st),
        other => return Err(format!("unknown subcommand '{other}' (see --help)").into()),
    })
}

/// The binaries' `main`: PID 1 (`boot::pid1`, which never returns), or
/// the arguments parsed and handed to `run` (`run` for the full build,
/// `run_initrd` for the initrd build: a function item, so each binary
/// links only the one it names).
pub fn main(run: impl FnOnce(Command, &HostPaths) -> Result<ExitCode, CommandError>) -> ExitCode {
    if rustix::process::getpid().is_init() {
        crate::boot::pid1::run();
    }
    let command = match parse_args(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("veriroot: {e}\nTry 'veriroot --help'.");
            return ExitCode::from(2);
        }
    };
    match run(command, &HostPaths::system()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("veriroot: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Which binary is running (`--help` and `--version` say so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Build {
    Full,
    Initrd,
}

/// The full build: runs any command against `paths` (the host's, or a
/// test's).
pub fn run(command: Command, paths: &HostPaths) -> Result<ExitCode, CommandError> {
    match command {
        Command::Check {
            sysroot,
            cmdline,
            keys,
            luks,
        } => check::run(
            &sysroot,
            cmdline,
            &paths.cmdline,
            keys.as_deref().unwrap_or(&paths.keys),
            &luks,
        )
        .map_err(CommandError::Check),
        Command::EnableVerity { dir, algorithm } => {
            enable_verity::run(&dir, algorithm).map_err(CommandError::EnableVerity)
        }
        Command::Digest { files, algorithm } => {
            digest::run(&files, algorithm).map_err(CommandError::Digest)
        }
        Command::Predict(args) => predict::run(*args).map_err(CommandError::Predict),
        Command::Status(args) => status::run(&args).map_err(CommandError::Status),
        Command::Log {
            file,
            json,
            tpm,
            tpm_device,
        } => {
            let devices = tpm_device.map_or_else(|| paths.tpm_devices.clone(), |d| vec![d]);
            log::run(file, json, tpm, &devices).map_err(CommandError::Log)
        }
        Command::SetupRoot { .. } | Command::Help | Command::Version => {
            run_boot(command, paths, Build::Full)
        }
    }
}

/// The initrd build: `setup-root`, `--help` and `--version`; a host
/// command is refused with the name of the build that has it.
pub fn run_initrd(command: Command, paths: &HostPaths) -> Result<ExitCode, CommandError> {
    run_boot(command, paths, Build::Initrd)
}

/// What both builds run.
fn run_boot(command: Command, paths: &HostPaths, build: Build) -> Result<ExitCode, CommandError> {
    match command {
        Command::Help => {
            if build == Build::Initrd {
                print!("{INITRD_NOTE}");
            }
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            let suffix = if build == Build::Initrd {
                " (initrd build)"
            } else {
                ""
            };
            println!("veriroot {}{suffix}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::SetupRoot { args, tpm_device } => {
            // Under systemd stderr goes to the journal; elsewhere early
            // boot has kmsg. A given command line means a test: stderr.
            crate::logger::init(
                std::env::var_os("INVOCATION_ID").is_none() && args.cmdline.is_none(),
                false,
            );
            let mut paths = paths.clone();
            if let Some(device) = tpm_device {
                paths.tpm_devices = vec![device];
            }
            match setup_root::run(args, &paths) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(refused) => {
                    // Said now: the end may wait before a reboot.
                    eprintln!("veriroot: {}", refused.error);
                    refused.end();
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        // Only the initrd build passes these here: `run` ran them.
        Command::Check { .. }
        | Command::EnableVerity { .. }
        | Command::Digest { .. }
        | Command::Predict(_)
        | Command::Log { .. }
        | Command::Status(_) => Err(CommandError::NotInInitrdBuild {
            command: command.name(),
        }),
    }
}
