//! `veriroot predict`: the PCR values a veriroot boot of an image leaves,
//! from reset, per bank: veriroot's own events (`measure::events`), plus a
//! UKI's PCR 11 (`uki`) and systemd-pcrmachine's machine ID when asked.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::boot::cmdline::{Cmdline, ImageRef, MalformedArg};
use crate::boot::config::{Config, ConfigError};
use crate::fsverity::digest::{Algorithm, Digest, HexError};
use crate::host::base_log::{self, BaseLogError};
use crate::host::seal::{self, Pcr11};
use crate::host::uki::{self, Uki, UkiError};
use crate::measure::events::{self, Event};
use crate::measure::HashAlg;
use crate::signature::keys::{self, KeyError, KeyProblem};
use crate::signature::KeyId;
use crate::sysext::rules::{MergedExtension, SYSEXT_PCR};

#[derive(Debug)]
pub enum PredictError {
    Config(ConfigError),
    /// `--sysext` not `NAME:HEX` (`None`), or a bad digest.
    SysextArg {
        arg: String,
        problem: Option<HexError>,
    },
    SysextAlgorithm {
        name: String,
        sysext: Algorithm,
        image: Algorithm,
    },
    PhaseWithoutUki,
    Uki(UkiError),
    UkiWithoutCmdline(PathBuf),
    NoImage,
    Cmdline(MalformedArg),
    NoComposefsArg(String),
    SeveralImages,
    MachineId(String),
    Signer(KeyError),
    /// `--tpm2-pcrs` with more than one bank: systemd-cryptenroll takes one.
    Tpm2PcrsBanks(usize),
    SignedWithoutTpm2Pcrs,
    BaseLog(BaseLogError),
    /// `--base-log` with `--pcrlock`: a component describes veriroot's own
    /// records; what came before is not veriroot's to describe.
    BaseLogWithPcrlock,
}

impl fmt::Display for PredictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PredictError::Config(e) => e.fmt(f),
            PredictError::SysextArg { arg, problem: None } => {
                write!(f, "--sysext {arg}: expected NAME:HEX")
            }
            PredictError::SysextArg {
                arg,
                problem: Some(e),
            } => write!(f, "--sysext {arg}: {e}"),
            PredictError::SysextAlgorithm {
                name,
                sysext,
                image,
            } => write!(
                f,
                "--sysext {name}: a {sysext} digest, but the image's is {image}"
            ),
            PredictError::PhaseWithoutUki => {
                f.write_str("--phase needs --uki FILE (phases are measured into PCR 11)")
            }
            PredictError::Uki(e) => e.fmt(f),
            PredictError::UkiWithoutCmdline(path) => write!(
                f,
                "{}: the UKI has no .cmdline section; give --digest HEX",
                path.display()
            ),
            PredictError::NoImage => f.write_str(
                "predict needs exactly one of --digest HEX, --cmdline STRING or --uki FILE",
            ),
            PredictError::Cmdline(e) => e.fmt(f),
            PredictError::NoComposefsArg(text) => {
                write!(f, "no composefs= in the command line '{text}'")
            }
            PredictError::SeveralImages => {
                f.write_str("--cmdline names several images; predict one at a time with --digest")
            }
            PredictError::Signer(e) => write!(f, "--signer: {e}"),
            PredictError::MachineId(id) => write!(
                f,
                "--machine-id {id}: expected 32 lowercase hex digits, as in /etc/machine-id"
            ),
            PredictError::Tpm2PcrsBanks(n) => write!(
                f,
                "--tpm2-pcrs: {n} banks asked for, but a policy binds one; give --banks sha256 (or another one)"
            ),
            PredictError::SignedWithoutTpm2Pcrs => {
                f.write_str("--signed-pcr11 only changes the --tpm2-pcrs form; add --tpm2-pcrs")
            }
            PredictError::BaseLog(e) => write!(f, "--base-log: {e}"),
            PredictError::BaseLogWithPcrlock => f.write_str(
                "--base-log does not go with --pcrlock: a component holds veriroot's records only \
                 (docs/sealing.md, \"Encrypted root\")",
            ),
        }
    }
}

impl std::error::Error for PredictError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PredictError::Config(e) => Some(e),
            PredictError::SysextArg { problem, .. } => problem.as_ref().map(|e| e as _),
            PredictError::Uki(e) => Some(e),
            PredictError::Cmdline(e) => Some(e),
            PredictError::Signer(e) => Some(e),
            PredictError::BaseLog(e) => Some(e),
            _ => None,
        }
    }
}

/// What `veriroot predict` is asked about.
#[derive(Debug, Default)]
pub struct PredictArgs {
    pub image: Option<String>,
    pub cmdline: Option<String>,
    pub insecure: bool,
    pub config: Option<PathBuf>,
    pub pcr: Option<u32>,
    pub etc: Option<String>,
    pub var: Option<String>,
    pub banks: Vec<HashAlg>,
    pub failure: bool,
    pub json: bool,
    /// `--sysext NAME:HEX`, lowest first.
    pub sysexts: Vec<String>,
    /// A UKI: add PCR 11 as systemd-stub measures it, and take the image
    /// from its `.cmdline` unless --digest or --cmdline says otherwise.
    pub uki: Option<PathBuf>,
    /// systemd-pcrphase words after the stub (`enter-initrd:leave-initrd`).
    pub phase: Option<String>,
    /// After switch root: systemd-pcrmachine's measurement of this ID.
    pub machine_id: Option<String>,
    /// The certificate (or public key) of the key that signed the image.
    pub signer: Option<PathBuf>,
    /// Print the `--tpm2-pcrs=` argument of systemd-cryptenroll instead.
    pub tpm2_pcrs: bool,
    /// With --tpm2-pcrs: PCR 11 is bound by a signed policy, not literally.
    pub signed_pcr11: bool,
    /// Print a systemd-pcrlock component of veriroot's events instead.
    pub pcrlock: bool,
    /// systemd's measurement log of a boot: its records before veriroot's,
    /// in veriroot's PCRs, are where the prediction starts (`base_log`).
    pub base_log: Option<PathBuf>,
}

/// The identity `veriroot:signer:` measures, from a certificate or public
/// key file as `/etc/veriroot/keys` takes them.
fn signer_id(path: &Path) -> Result<KeyId, PredictError> {
    let bytes = std::fs::read(path).map_err(|e| {
        PredictError::Signer(KeyError {
            path: path.to_owned(),
            problem: KeyProblem::Read(e),
        })
    })?;
    keys::parse_key_file(path, &bytes)
        .map(|k| k.id)
        .map_err(PredictError::Signer)
}

/// `veriroot predict`: PCR values after a veriroot boot, from reset.
pub fn run(args: PredictArgs) -> Result<ExitCode, PredictError> {
    let mut config = match &args.config {
        Some(p) => Config::load(p).map_err(PredictError::Config)?,
        None => Config::default(),
    };
    // The same validation as the configuration file, by building one.
    let mut overrides = String::new();
    if let Some(p) = args.pcr {
        overrides.push_str(&format!("[tpm]\npcr = {p}\n"));
    }
    if let Some(m) = &args.etc {
        overrides.push_str(&format!("[etc]\nmount = \"{m}\"\n"));
    }
    if let Some(m) = &args.var {
        overrides.push_str(&format!("[var]\nmount = \"{m}\"\n"));
    }
    let o = Config::parse(Path::new("(command line)"), &overrides).map_err(PredictError::Config)?;
    if args.pcr.is_some() {
        config.pcr = o.pcr;
    }
    if args.etc.is_some() {
        config.mounts.etc = o.mounts.etc;
    }
    if args.var.is_some() {
        config.mounts.var = o.mounts.var;
    }
    let sysexts = args
        .sysexts
        .iter()
        .map(|s| parse_sysext_arg(s))
        .collect::<Result<Vec<_>, _>>()?;
    if args.phase.is_some() && args.uki.is_none() {
        return Err(PredictError::PhaseWithoutUki);
    }
    let uki = match &args.uki {
        Some(path) => Some(Uki::open(path).map_err(PredictError::Uki)?),
        None => None,
    };
    let mut events: Vec<Event> = if args.failure {
        // Every refusal caps every PCR veriroot could have extended.
        events::failure_events(config.pcr, &[SYSEXT_PCR])
    } else {
        let uki_cmdline = uki.as_ref().map(|u| (args.uki.as_deref(), u.cmdline()));
        let image = image_for_prediction(&args, uki_cmdline)?;
        if let Some(e) = sysexts
            .iter()
            .find(|e| e.digest.algorithm() != image.digest.algorithm())
        {
            return Err(PredictError::SysextAlgorithm {
                name: e.name.clone(),
                sysext: e.digest.algorithm(),
                image: image.digest.algorithm(),
            });
        }
        let signer = match &args.signer {
            Some(path) => Some(signer_id(path)?),
            None => None,
        };
        let mut events = events::success_events(config.pcr, &image, signer.as_ref(), config.mounts);
        events.extend(events::sysext_events(&sysexts));
        events
    };
    // systemd's own components cover the machine ID (lock-machine-id).
    let veriroot_events = events.clone();
    if let Some(id) = &args.machine_id {
        events
            .push(events::machine_id_event(id).ok_or_else(|| PredictError::MachineId(id.clone()))?);
    }
    if args.signed_pcr11 && !args.tpm2_pcrs {
        return Err(PredictError::SignedWithoutTpm2Pcrs);
    }
    let banks = match (args.banks.as_slice(), args.tpm2_pcrs) {
        ([], true) => vec![HashAlg::Sha256],
        ([], false) => HashAlg::ALL.to_vec(),
        ([_, _, ..], true) => return Err(PredictError::Tpm2PcrsBanks(args.banks.len())),
        (b, _) => b.to_vec(),
    };
    if args.base_log.is_some() && args.pcrlock {
        return Err(PredictError::BaseLogWithPcrlock);
    }
    let (start, base_records) = match &args.base_log {
        Some(path) => {
            let mut pcrs: Vec<u32> = events.iter().map(|e| e.pcr).collect();
            pcrs.sort_unstable();
            pcrs.dedup();
            base_log::read(path, &pcrs, &banks).map_err(PredictError::BaseLog)?
        }
        None => Default::default(),
    };
    let mut values = events::predict_from(start, &events, &banks);
    let phase = args.phase.as_deref().unwrap_or(uki::DEFAULT_PHASE);
    let sections = uki.as_ref().map(Uki::measured_sections).unwrap_or_default();
    if uki.is_some() {
        let pcr11 = uki::predict_pcr11(&sections, &uki::phase_words(phase), &banks);
        for (bank, value) in pcr11 {
            values
                .entry(bank)
                .or_default()
                .insert(uki::PCR_KERNEL_BOOT, value);
        }
    }
    if args.pcrlock {
        println!("{}", seal::pcrlock_json(&veriroot_events, &banks));
    } else if args.tpm2_pcrs {
        let pcr11 = if args.signed_pcr11 {
            Pcr11::Signed
        } else {
            Pcr11::Literal
        };
        for (bank, pcrs) in &values {
            println!("{}", seal::tpm2_pcrs(pcrs, *bank, uki.is_some(), pcr11));
        }
    } else if args.json {
        println!("{}", events::pcrs_json(&values));
    } else {
        for (name, data) in &sections {
            println!(
                "event PCR {}: UKI section {name} ({} bytes)",
                uki::PCR_KERNEL_BOOT,
                data.len()
            );
        }
        if uki.is_some() {
            for word in uki::phase_words(phase) {
                println!("event PCR {}: phase {word}", uki::PCR_KERNEL_BOOT);
            }
        }
        for r in &base_records {
            println!(
                "event PCR {}: {} (record #{} of the base log)",
                r.pcr, r.description, r.number
            );
        }
        for e in &events {
            println!("event PCR {}: {}", e.pcr, e.string);
        }
        super::print_pcr_values(&values);
    }
    Ok(ExitCode::SUCCESS)
}

/// `NAME:HEX`: an extension's name (from its extension-release file) and
/// the digest it is named by on the command line.
fn parse_sysext_arg(arg: &str) -> Result<MergedExtension, PredictError> {
    let bad = |problem| PredictError::SysextArg {
        arg: arg.to_owned(),
        problem,
    };
    let (name, hex) = arg
        .split_once(':')
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| bad(None))?;
    let digest = Digest::from_hex(hex).map_err(|e| bad(Some(e)))?;
    Ok(MergedExtension {
        name: name.to_owned(),
        digest,
    })
}

/// The image a prediction is about: --digest, else --cmdline, else the
/// UKI's `.cmdline` (`uki`: its path and that section, if present).
fn image_for_prediction(
    args: &PredictArgs,
    uki: Option<(Option<&Path>, Option<String>)>,
) -> Result<ImageRef, PredictError> {
    let text = match (&args.image, &args.cmdline, uki) {
        (Some(d), None, _) => format!("composefs={}{d}", if args.insecure { "?" } else { "" }),
        (None, Some(c), _) => c.clone(),
        (None, None, Some((_, Some(c)))) => c,
        (None, None, Some((path, None))) => {
            return Err(PredictError::UkiWithoutCmdline(
                path.unwrap_or(Path::new("UKI")).to_owned(),
            ))
        }
        _ => return Err(PredictError::NoImage),
    };
    let refs = Cmdline::parse(&text)
        .image_refs()
        .map_err(PredictError::Cmdline)?;
    match refs.as_slice() {
        [] => Err(PredictError::NoComposefsArg(text)),
        [one] => Ok(one.clone()),
        // Which one boots depends on the disk: ask about one.
        _ => Err(PredictError::SeveralImages),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysext_argument_is_name_and_digest() {
        let hex = "ab".repeat(32);
        let e = parse_sysext_arg(&format!("tools:{hex}")).unwrap();
        assert_eq!(e.name, "tools");
        assert_eq!(e.digest.to_hex(), hex);
        assert!(parse_sysext_arg(&hex)
            .unwrap_err()
            .to_string()
            .contains("NAME:HEX"));
        assert!(parse_sysext_arg(&format!(":{hex}")).is_err());
        assert!(parse_sysext_arg("tools:abc")
            .unwrap_err()
            .to_string()
            .contains("3 hex digits"));
    }
}
