//! The `veriroot` binary: PID 1 in a minimal initrd, or a subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use veriroot::assemble::{Layout, MountPolicy};
use veriroot::cmdline::Cmdline;
use veriroot::digest::Algorithm;
use veriroot::setup::{self, SetupOptions};
use veriroot::{check, enable, init, logger};

const HELP: &str = "\
veriroot: boot a verified composefs image as the root file system

USAGE:
  veriroot                      as /init (PID 1) of a minimal initrd: mount
                                /proc /sys /dev /run, load the initrd's kernel
                                modules, mount root= at /sysroot, verify and
                                mount the image named by composefs=, switch
                                root and exec init= (default /sbin/init).
                                Any failure powers the machine off.
  veriroot setup-root [--sysroot DIR] [--cmdline STR]
                                in a systemd initrd: the real root is mounted
                                at /sysroot; replace it with the verified tree
                                (real root at /sysroot/sysroot) and exit 0.
  veriroot check [--sysroot DIR] [--cmdline STR]
                                preflight: everything but the mount, with the
                                fix for each problem; exit 0 only if a
                                verified boot would succeed.
  veriroot enable-verity [--algorithm sha256|sha512] REPOSITORY
                                enable fs-verity on every file of a composefs
                                repository (idempotent; default algorithm
                                from meta.json).
  veriroot --help | --version

KERNEL COMMAND LINE:
  composefs=[?]<hex>            fs-verity digest of the image, 64 hex digits
                                (sha256) or 128 (sha512); '?' = insecure.
  composefs.digest=[?]v{1,2}-sha{256,512}-12:<hex>
                                the same with the format spelled out.
  root= rootfstype= rootflags= ro rw init=
                                as for the kernel (PID 1 mode; root= takes
                                /dev/NAME, UUID=, LABEL=).
  veriroot.root-timeout=SECS    wait for root= (default 30).
  veriroot.erofs=loop           mount the image through a loop device even
                                where the kernel takes files.

Defaults: --sysroot /sysroot, --cmdline from /proc/cmdline.
";

enum Command {
    SetupRoot {
        sysroot: PathBuf,
        cmdline: Option<String>,
    },
    Check {
        sysroot: PathBuf,
        cmdline: Option<String>,
    },
    EnableVerity {
        dir: PathBuf,
        algorithm: Option<Algorithm>,
    },
    Help,
    Version,
}

fn parse_args() -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let sub = match parser.next()? {
        None => return Ok(Command::Help),
        Some(Long("help") | Short('h')) => return Ok(Command::Help),
        Some(Long("version")) => return Ok(Command::Version),
        Some(Value(v)) => v.string()?,
        Some(arg) => return Err(arg.unexpected()),
    };
    let mut sysroot = PathBuf::from("/sysroot");
    let mut cmdline = None;
    let mut algorithm = None;
    let mut dir = None;
    while let Some(arg) = parser.next()? {
        match (sub.as_str(), arg) {
            (_, Long("help") | Short('h')) => return Ok(Command::Help),
            ("setup-root" | "check", Long("sysroot")) => sysroot = parser.value()?.into(),
            ("setup-root" | "check", Long("cmdline")) => cmdline = Some(parser.value()?.string()?),
            ("enable-verity", Long("algorithm")) => {
                let v = parser.value()?.string()?;
                algorithm = Some(match v.as_str() {
                    "sha256" => Algorithm::Sha256,
                    "sha512" => Algorithm::Sha512,
                    _ => return Err(format!("--algorithm {v}: expected sha256 or sha512").into()),
                });
            }
            ("enable-verity", Value(v)) if dir.is_none() => dir = Some(PathBuf::from(v)),
            (_, arg) => return Err(arg.unexpected()),
        }
    }
    Ok(match sub.as_str() {
        "setup-root" => Command::SetupRoot { sysroot, cmdline },
        "check" => Command::Check { sysroot, cmdline },
        "enable-verity" => Command::EnableVerity {
            dir: dir.ok_or("enable-verity needs the repository directory")?,
            algorithm,
        },
        other => return Err(format!("unknown subcommand '{other}' (see --help)").into()),
    })
}

fn read_cmdline(given: Option<String>) -> Result<Cmdline, String> {
    let text = match given {
        Some(t) => t,
        None => std::fs::read_to_string("/proc/cmdline")
            .map_err(|e| format!("cannot read /proc/cmdline: {e}"))?,
    };
    Ok(Cmdline::parse(text.trim_end()))
}

fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Help => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("veriroot {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::SetupRoot { sysroot, cmdline } => {
            logger::init(
                std::env::var_os("INVOCATION_ID").is_none() && cmdline.is_none(),
                false,
            );
            let cmdline = read_cmdline(cmdline)?;
            let refs = setup::image_refs(&cmdline).map_err(|e| e.to_string())?;
            let opts = SetupOptions {
                layout: Layout {
                    sysroot,
                    run_dir: "/run/veriroot".into(),
                    sysroot_readonly: false,
                },
                policy: MountPolicy::default(),
                force_loop: cmdline.value("veriroot.erofs") == Some("loop"),
            };
            let booted =
                setup::setup_root(&refs, &opts).map_err(|e| format!("refusing to boot: {e}"))?;
            log::info!(
                "mounted {} ({}) at {}: verify {} ms, mount {} ms",
                booted.image_ref.digest,
                booted.assembled.backing,
                opts.layout.sysroot.display(),
                booted.timings.verify.as_millis(),
                booted.timings.mount.as_millis()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { sysroot, cmdline } => {
            let report = check::check(&sysroot, &read_cmdline(cmdline)?);
            report
                .print(&mut std::io::stdout())
                .map_err(|e| e.to_string())?;
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::EnableVerity { dir, algorithm } => {
            let algorithm = match algorithm {
                Some(a) => a,
                None => enable::repository_algorithm(&dir)?,
            };
            let summary = enable::enable_tree(&dir, algorithm).map_err(|e| e.to_string())?;
            for p in &summary.enabled {
                println!("enabled fs-verity ({algorithm}) on {}", p.display());
            }
            println!(
                "{}: {} file(s) newly enabled, {} already had fs-verity",
                dir.display(),
                summary.enabled.len(),
                summary.already
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    if rustix::process::getpid().is_init() {
        init::run();
    }
    let command = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("veriroot: {e}\nTry 'veriroot --help'.");
            return ExitCode::from(2);
        }
    };
    match run(command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("veriroot: {e}");
            ExitCode::FAILURE
        }
    }
}
