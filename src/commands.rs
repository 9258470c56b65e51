//! The subcommands' bodies; `main.rs` parses arguments and dispatches here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::assemble::Layout;
use crate::cmdline::{Cmdline, ImageRef};
use crate::config::Config;
use crate::digest::{Algorithm, Digest};
use crate::eventlog::{self, Content};
use crate::hash::HashAlg;
use crate::measure::{self, hex, Event, Measurer};
use crate::setup::{self, SetupOptions};
use crate::sysext::{MergedExtension, SYSEXT_PCR};
use crate::tpm::Tpm;
use crate::uki::{self, Uki};
use crate::{check, enable, logger};

pub fn read_cmdline(given: Option<String>) -> Result<Cmdline, String> {
    let text = match given {
        Some(t) => t,
        None => std::fs::read_to_string("/proc/cmdline")
            .map_err(|e| format!("cannot read /proc/cmdline: {e}"))?,
    };
    Ok(Cmdline::parse(text.trim_end()))
}

/// `veriroot setup-root`: the systemd-initrd step. Any refusal caps the PCR.
pub fn setup_root(
    sysroot: PathBuf,
    cmdline: Option<String>,
    config_path: Option<&Path>,
) -> Result<ExitCode, String> {
    // Under systemd stderr goes to the journal; elsewhere early boot has kmsg.
    logger::init(
        std::env::var_os("INVOCATION_ID").is_none() && cmdline.is_none(),
        false,
    );
    let started = Instant::now();
    let refuse = |e: &dyn std::fmt::Display| format!("refusing to boot: {e}");
    let config = match config_path {
        Some(p) => Config::load(p),
        None => Config::load_initrd(),
    }
    .map_err(|e| {
        measure::cap_default_pcr();
        refuse(&e)
    })?;
    let config_parsed = started.elapsed();
    let mut measurer = Measurer::open(config.tpm, config.pcr).map_err(|e| refuse(&e))?;
    let tpm_open = started.elapsed() - config_parsed;
    let result = read_cmdline(cmdline).and_then(|cmdline| {
        let sysexts = setup::sysexts(&cmdline, &mut measurer).map_err(|e| refuse(&e))?;
        let refs = setup::image_refs(&cmdline).map_err(|e| refuse(&e))?;
        let parse = started.elapsed() - tpm_open;
        let opts = SetupOptions {
            layout: Layout {
                sysroot,
                run_dir: "/run/veriroot".into(),
                sysroot_readonly: false,
            },
            policy: config.policy,
            force_loop: cmdline.value("veriroot.erofs") == Some("loop"),
            sysexts,
        };
        let booted = setup::setup_root(&refs, &opts, &mut measurer).map_err(|e| refuse(&e))?;
        log::info!(
            "mounted {} ({}) at {}{}",
            booted.image_ref.digest,
            booted.assembled.backing,
            opts.layout.sysroot.display(),
            describe_extensions(&booted.assembled.extensions)
        );
        booted.timings.log_final(parse, tpm_open, started);
        Ok(())
    });
    if result.is_err() {
        measurer.cap();
    }
    result.map(|()| ExitCode::SUCCESS)
}

/// The merged extensions for the "mounted" log line, lowest first; empty
/// without any (one line, not one per extension: /dev/kmsg rate-limits).
pub fn describe_extensions(extensions: &[crate::sysext::MergedExtension]) -> String {
    if extensions.is_empty() {
        return String::new();
    }
    let list: Vec<String> = extensions
        .iter()
        .map(|e| format!("'{}' ({})", e.name, e.digest))
        .collect();
    format!(
        "; system extensions merged, lowest first: {}",
        list.join(", ")
    )
}

pub fn check(sysroot: &Path, cmdline: Option<String>) -> Result<ExitCode, String> {
    let report = check::check(sysroot, &read_cmdline(cmdline)?);
    report
        .print(&mut std::io::stdout())
        .map_err(|e| e.to_string())?;
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn enable_verity(dir: &Path, algorithm: Option<Algorithm>) -> Result<ExitCode, String> {
    let algorithm = match algorithm {
        Some(a) => a,
        None => enable::repository_algorithm(dir)?,
    };
    let summary = enable::enable_tree(dir, algorithm).map_err(|e| e.to_string())?;
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

/// What `veriroot predict` is asked about.
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
}

/// `veriroot predict`: PCR values after a veriroot boot, from reset.
pub fn predict(args: PredictArgs) -> Result<ExitCode, String> {
    let mut config = match &args.config {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
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
    let o = Config::parse(Path::new("(command line)"), &overrides).map_err(|e| e.to_string())?;
    if args.pcr.is_some() {
        config.pcr = o.pcr;
    }
    if args.etc.is_some() {
        config.policy.etc = o.policy.etc;
    }
    if args.var.is_some() {
        config.policy.var = o.policy.var;
    }
    let sysexts = args
        .sysexts
        .iter()
        .map(|s| parse_sysext_arg(s))
        .collect::<Result<Vec<_>, _>>()?;
    if args.phase.is_some() && args.uki.is_none() {
        return Err("--phase needs --uki FILE (phases are measured into PCR 11)".into());
    }
    let uki = match &args.uki {
        Some(path) => Some(Uki::open(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut events: Vec<Event> = if args.failure {
        let also: &[u32] = if sysexts.is_empty() {
            &[]
        } else {
            &[SYSEXT_PCR]
        };
        measure::failure_events(config.pcr, also)
    } else {
        let uki_cmdline = uki.as_ref().map(|u| (args.uki.as_deref(), u.cmdline()));
        let image = image_for_prediction(&args, uki_cmdline)?;
        if let Some(e) = sysexts
            .iter()
            .find(|e| e.digest.algorithm() != image.digest.algorithm())
        {
            return Err(format!(
                "--sysext {}: a {} digest, but the image's is {}",
                e.name,
                e.digest.algorithm(),
                image.digest.algorithm()
            ));
        }
        let mut events = measure::success_events(config.pcr, &image, config.policy);
        events.extend(measure::sysext_events(&sysexts));
        events
    };
    if let Some(id) = &args.machine_id {
        events.push(measure::machine_id_event(id).ok_or_else(|| {
            format!("--machine-id {id}: expected 32 lowercase hex digits, as in /etc/machine-id")
        })?);
    }
    let banks = if args.banks.is_empty() {
        HashAlg::ALL.to_vec()
    } else {
        args.banks.clone()
    };
    let mut values = measure::predict(&events, &banks);
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
    if args.json {
        println!("{}", measure::pcrs_json(&values));
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
        for e in &events {
            println!("event PCR {}: {}", e.pcr, e.string);
        }
        print_values(&values);
    }
    Ok(ExitCode::SUCCESS)
}

/// `NAME:HEX`: an extension's name (from its extension-release file) and
/// the digest it is named by on the command line.
fn parse_sysext_arg(arg: &str) -> Result<MergedExtension, String> {
    let (name, hex) = arg
        .split_once(':')
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| format!("--sysext {arg}: expected NAME:HEX"))?;
    let digest = Digest::from_hex(hex).map_err(|e| format!("--sysext {arg}: {e}"))?;
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
) -> Result<ImageRef, String> {
    let text = match (&args.image, &args.cmdline, uki) {
        (Some(d), None, _) => format!("composefs={}{d}", if args.insecure { "?" } else { "" }),
        (None, Some(c), _) => c.clone(),
        (None, None, Some((_, Some(c)))) => c,
        (None, None, Some((path, None))) => {
            return Err(format!(
                "{}: the UKI has no .cmdline section; give --digest HEX",
                path.unwrap_or(Path::new("UKI")).display()
            ))
        }
        _ => {
            return Err(
                "predict needs exactly one of --digest HEX, --cmdline STRING or --uki FILE".into(),
            )
        }
    };
    let refs = Cmdline::parse(&text)
        .image_refs()
        .map_err(|e| e.to_string())?;
    match refs.as_slice() {
        [] => Err(format!("no composefs= in the command line '{text}'")),
        [one] => Ok(one.clone()),
        // Which one boots depends on the disk: ask about one.
        _ => Err("--cmdline names several images; predict one at a time with --digest".into()),
    }
}

fn print_values(values: &BTreeMap<HashAlg, BTreeMap<u32, Vec<u8>>>) {
    for (bank, pcrs) in values {
        for (pcr, v) in pcrs {
            println!("PCR {pcr:>2} {:<6} {}", bank.name(), hex(v));
        }
    }
}

/// `veriroot log`: parse and replay a measurement log; compare with the
/// live PCRs where a TPM is present.
pub fn show_log(path: Option<PathBuf>, json: bool, use_tpm: bool) -> Result<ExitCode, String> {
    let path = path.unwrap_or_else(eventlog::log_path);
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let records = eventlog::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let values = eventlog::replay(&records);
    let by_bank = transpose(&values);
    if json {
        println!("{}", measure::pcrs_json(&by_bank));
        return Ok(ExitCode::SUCCESS);
    }
    for (i, r) in records.iter().enumerate() {
        let what = match &r.content {
            Content::Systemd(c) => c.string.clone().unwrap_or_default(),
            Content::Other { content_type } => {
                format!("({} content)", content_type.as_deref().unwrap_or("no"))
            }
        };
        println!("#{:<3} PCR {:>2} {}", i + 1, r.pcr, what);
    }
    print_values(&by_bank);
    let mut tpm = match Tpm::open() {
        Ok(Some(t)) if use_tpm => t,
        Ok(_) => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e.to_string()),
    };
    let mut ok = true;
    for (bank, pcrs) in &by_bank {
        for (&pcr, value) in pcrs {
            let live = tpm.read(pcr, *bank).map_err(|e| e.to_string())?;
            if &live == value {
                println!("PCR {pcr:>2} {:<6} matches the TPM", bank.name());
            } else {
                ok = false;
                println!(
                    "PCR {pcr:>2} {:<6} DOES NOT match the TPM ({}): {}",
                    bank.name(),
                    hex(&live),
                    first_mismatch(&records, pcr, *bank, &live)
                );
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Which record the TPM's value stops reflecting.
fn first_mismatch(records: &[eventlog::Record], pcr: u32, bank: HashAlg, live: &[u8]) -> String {
    let mut value = vec![0u8; bank.digest_len()];
    if value == live {
        return "the TPM reflects none of this PCR's records".into();
    }
    for (i, r) in records.iter().enumerate().filter(|(_, r)| r.pcr == pcr) {
        if let Some((_, d)) = r.digests.iter().find(|(a, _)| *a == bank) {
            value = crate::hash::extend(bank, &value, d);
        }
        if value == live {
            return format!("records after #{} are not in the TPM", i + 1);
        }
    }
    "no prefix of the log matches: the PCR was extended by something not in this log".into()
}

fn transpose(
    values: &BTreeMap<u32, BTreeMap<HashAlg, Vec<u8>>>,
) -> BTreeMap<HashAlg, BTreeMap<u32, Vec<u8>>> {
    let mut out: BTreeMap<HashAlg, BTreeMap<u32, Vec<u8>>> = BTreeMap::new();
    for (&pcr, banks) in values {
        for (&bank, v) in banks {
            out.entry(bank).or_default().insert(pcr, v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::Record;

    fn record(pcr: u32, s: &str) -> Record {
        Record::measure_string(pcr, &[HashAlg::Sha256], s, None)
    }

    #[test]
    fn sysext_argument_is_name_and_digest() {
        let hex = "ab".repeat(32);
        let e = parse_sysext_arg(&format!("tools:{hex}")).unwrap();
        assert_eq!(e.name, "tools");
        assert_eq!(e.digest.to_hex(), hex);
        assert!(parse_sysext_arg(&hex).unwrap_err().contains("NAME:HEX"));
        assert!(parse_sysext_arg(&format!(":{hex}")).is_err());
        assert!(parse_sysext_arg("tools:abc")
            .unwrap_err()
            .contains("3 hex digits"));
    }

    #[test]
    fn first_mismatch_names_the_first_record_not_in_the_tpm() {
        let records = [
            record(15, "a"),
            record(14, "x"),
            record(15, "b"),
            record(15, "c"),
        ];
        let only_a = measure::predict(
            &[Event {
                pcr: 15,
                string: "a".into(),
            }],
            &[HashAlg::Sha256],
        );
        let live = &only_a[&HashAlg::Sha256][&15];
        assert_eq!(
            first_mismatch(&records, 15, HashAlg::Sha256, live),
            "records after #1 are not in the TPM"
        );
        let zero = vec![0u8; 32];
        assert_eq!(
            first_mismatch(&records, 15, HashAlg::Sha256, &zero),
            "the TPM reflects none of this PCR's records"
        );
        let other = vec![1u8; 32];
        assert!(first_mismatch(&records, 15, HashAlg::Sha256, &other)
            .starts_with("no prefix of the log matches"));
    }
}
