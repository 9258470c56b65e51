//! The `veriroot` binary: PID 1 in a minimal initrd, or a subcommand.
//! Argument parsing and dispatch only; the work is in `commands`.

use std::path::PathBuf;
use std::process::ExitCode;

use veriroot::commands::{self, PredictArgs};
use veriroot::commands_digest;
use veriroot::digest::Algorithm;
use veriroot::hash::HashAlg;
use veriroot::init;

const HELP: &str = "\
veriroot: boot a verified composefs image as the root file system

USAGE:
  veriroot                      as /init (PID 1) of a minimal initrd: mount
                                /proc /sys /dev /run, load the initrd's kernel
                                modules, mount root= at /sysroot, verify and
                                mount the image named by composefs=, measure
                                it into the TPM, switch root and exec init=
                                (default /sbin/init). Any failure caps the PCR
                                and powers the machine off.
  veriroot setup-root [--sysroot DIR] [--cmdline STR] [--config FILE]
                                in a systemd initrd: the real root is mounted
                                at /sysroot; replace it with the verified,
                                measured tree (real root at /sysroot/sysroot)
                                and exit 0. A refusal caps the PCR, exits 1.
  veriroot check [--sysroot DIR] [--cmdline STR]
                                preflight: everything but the mount, with the
                                fix for each problem; exit 0 only if a
                                verified boot would succeed.
  veriroot enable-verity [--algorithm sha256|sha512] REPOSITORY
                                enable fs-verity on every file of a composefs
                                repository (idempotent; default algorithm
                                from meta.json).
  veriroot digest [--hash sha256|sha512] FILE...
                                print each file's fs-verity digest (4 KiB
                                blocks, no salt; default sha256) computed
                                from its contents, as `fsverity digest` does.
  veriroot predict (--digest HEX [--insecure] | --cmdline STR | --failure)
                   [--sysext NAME:HEX]... [--config FILE] [--pcr N]
                   [--etc MODE] [--var MODE]
                   [--banks sha1,sha256,sha384,sha512] [--json]
                                the PCR values a veriroot boot of that image
                                leaves (from reset), per bank; --sysext: with
                                these system extensions merged, lowest first
                                (PCR 13); --failure: after a refused boot.
                                --json: {\"sha256\":{\"13\":\"..\",\"15\":\"..\"}}.
  veriroot log [FILE] [--json] [--no-tpm]
                                parse and replay systemd's measurement log
                                (default /run/log/systemd/tpm2-measure.log) and
                                compare with the TPM's PCRs where one exists.
  veriroot --help | --version

KERNEL COMMAND LINE:
  composefs=[?]<hex>            fs-verity digest of the image, 64 hex digits
                                (sha256) or 128 (sha512); '?' = insecure.
  composefs.digest=[?]v{1,2}-sha{256,512}-12:<hex>
                                the same with the format spelled out.
  root= rootfstype= rootflags= ro rw init=
                                as for the kernel (PID 1 mode; root= takes
                                /dev/NAME, UUID=, LABEL=).
  veriroot.sysext=<hex>[,<hex>...]
                                system extensions (composefs images in the same
                                repository, same digest kind as the root's),
                                repeatable; merged into the root's overlay in
                                the order named (first = lowest), verified and
                                checked against systemd-sysext's rules, each
                                measured into PCR 13. The root image may list
                                more (lower) in /usr/lib/veriroot/extensions.
                                See docs/sysext.md.
  veriroot.root-timeout=SECS    wait for root= (default 30).
  veriroot.erofs=loop           mount the image through a loop device even
                                where the kernel takes files.

CONFIGURATION (in the initrd): /usr/lib/composefs/setup-root-conf.toml
(composefs-setup-root's), then /etc/veriroot/veriroot.conf, which wins:
  [tpm]  policy = \"auto\" | \"required\" | \"off\"      (default auto; ours only)
         pcr = 15                                   (default 15; never 11)
  [root] transient = true|false                     (default false)
  [etc]  mount = \"none\"|\"bind\"|\"overlay\"|\"transient\" (default overlay)
  [var]  mount = (the same)                         (default bind)
  [etc], [var]: transient = true is short for mount = \"transient\".

Defaults: --sysroot /sysroot, --cmdline from /proc/cmdline.
";

enum Command {
    SetupRoot {
        sysroot: PathBuf,
        cmdline: Option<String>,
        config: Option<PathBuf>,
    },
    Check {
        sysroot: PathBuf,
        cmdline: Option<String>,
    },
    EnableVerity {
        dir: PathBuf,
        algorithm: Option<Algorithm>,
    },
    Digest {
        files: Vec<PathBuf>,
        algorithm: Algorithm,
    },
    Predict(PredictArgs),
    Log {
        file: Option<PathBuf>,
        json: bool,
        tpm: bool,
    },
    Help,
    Version,
}

fn parse_banks(list: &str) -> Result<Vec<HashAlg>, String> {
    list.split(',')
        .map(|b| {
            HashAlg::from_name(b).ok_or_else(|| {
                format!("--banks: unknown bank '{b}' (sha1, sha256, sha384, sha512)")
            })
        })
        .collect()
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
    let mut config = None;
    let mut algorithm = None;
    let mut path = None;
    let mut files = Vec::new();
    let mut p = PredictArgs {
        image: None,
        cmdline: None,
        insecure: false,
        config: None,
        pcr: None,
        etc: None,
        var: None,
        banks: Vec::new(),
        failure: false,
        json: false,
        sysexts: Vec::new(),
    };
    let mut no_tpm = false;
    while let Some(arg) = parser.next()? {
        match (sub.as_str(), arg) {
            (_, Long("help") | Short('h')) => return Ok(Command::Help),
            ("setup-root" | "check", Long("sysroot")) => sysroot = parser.value()?.into(),
            ("setup-root" | "check" | "predict", Long("cmdline")) => {
                cmdline = Some(parser.value()?.string()?)
            }
            ("setup-root" | "predict", Long("config")) => {
                config = Some(PathBuf::from(parser.value()?))
            }
            ("enable-verity", Long("algorithm")) => {
                let v = parser.value()?.string()?;
                algorithm = Some(match v.as_str() {
                    "sha256" => Algorithm::Sha256,
                    "sha512" => Algorithm::Sha512,
                    _ => return Err(format!("--algorithm {v}: expected sha256 or sha512").into()),
                });
            }
            ("digest", Long("hash" | "hash-alg")) => {
                let v = parser.value()?.string()?;
                algorithm = Some(match v.as_str() {
                    "sha256" => Algorithm::Sha256,
                    "sha512" => Algorithm::Sha512,
                    _ => return Err(format!("--hash {v}: expected sha256 or sha512").into()),
                });
            }
            ("digest", Value(v)) => files.push(PathBuf::from(v)),
            ("predict", Long("digest")) => p.image = Some(parser.value()?.string()?),
            ("predict", Long("insecure")) => p.insecure = true,
            ("predict", Long("failure")) => p.failure = true,
            ("predict", Long("sysext")) => p.sysexts.push(parser.value()?.string()?),
            ("predict", Long("pcr")) => p.pcr = Some(parser.value()?.parse()?),
            ("predict", Long("etc")) => p.etc = Some(parser.value()?.string()?),
            ("predict", Long("var")) => p.var = Some(parser.value()?.string()?),
            ("predict", Long("banks")) => p.banks = parse_banks(&parser.value()?.string()?)?,
            ("predict" | "log", Long("json")) => p.json = true,
            ("log", Long("no-tpm")) => no_tpm = true,
            ("enable-verity" | "log", Value(v)) if path.is_none() => path = Some(PathBuf::from(v)),
            (_, arg) => return Err(arg.unexpected()),
        }
    }
    Ok(match sub.as_str() {
        "setup-root" => Command::SetupRoot {
            sysroot,
            cmdline,
            config,
        },
        "check" => Command::Check { sysroot, cmdline },
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
            Command::Predict(p)
        }
        "log" => Command::Log {
            file: path,
            json: p.json,
            tpm: !no_tpm,
        },
        other => return Err(format!("unknown subcommand '{other}' (see --help)").into()),
    })
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
        Command::SetupRoot {
            sysroot,
            cmdline,
            config,
        } => commands::setup_root(sysroot, cmdline, config.as_deref()),
        Command::Check { sysroot, cmdline } => commands::check(&sysroot, cmdline),
        Command::EnableVerity { dir, algorithm } => commands::enable_verity(&dir, algorithm),
        Command::Digest { files, algorithm } => commands_digest::digest(&files, algorithm),
        Command::Predict(args) => commands::predict(args),
        Command::Log { file, json, tpm } => commands::show_log(file, json, tpm),
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
