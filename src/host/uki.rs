//! Unified kernel images (UKIs): a bounds-checked PE/COFF section reader,
//! and PCR 11 as systemd-stub (257) measures it, so a policy for "this UKI"
//! can be computed on the host before the first boot.
//!
//! systemd-stub extends PCR 11 once per present section, in the fixed order
//! of `UNIFIED_SECTIONS`: first the section name with its NUL, then the
//! section as loaded in memory (`VirtualSize` bytes: the file's bytes up to
//! `SizeOfRawData`, zeros after). `.pcrsig` is not measured: it signs the
//! result. systemd-pcrphase then extends the boot phase words
//! (`enter-initrd`, `leave-initrd`, `sysinit`, `ready`), each as the bytes
//! of the word. Checked against `systemd-measure calculate` and against the
//! TPM of a guest booted by OVMF (the `uki-*` scenarios).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::measure::bank::{self, HashAlg};

/// The PCR systemd-stub and systemd-pcrphase extend.
pub const PCR_KERNEL_BOOT: u32 = 11;

/// The sections systemd-stub measures, in the order it measures them
/// (systemd 257 `src/fundamental/uki.h`, minus `.pcrsig`).
pub const UNIFIED_SECTIONS: [&str; 11] = [
    ".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb", ".uname", ".sbat",
    ".pcrpkey", ".profile",
];

/// `veriroot predict --uki`'s default phase: PCR 11 while veriroot runs,
/// and for the rest of the initrd (veriroot-setup-root.service is ordered
/// after systemd-pcrphase-initrd.service).
pub const DEFAULT_PHASE: &str = "enter-initrd";

/// What went wrong reading a PE file. Offsets are file offsets.
#[derive(Debug, PartialEq, Eq)]
pub enum PeError {
    /// A header or table runs past the end of the file.
    Truncated {
        what: &'static str,
        offset: u64,
        need: u64,
        len: u64,
    },
    /// The first two bytes are not "MZ".
    NoDosMagic { found: [u8; 2] },
    /// `e_lfanew` does not point at "PE\0\0".
    NoPeSignature { offset: u64, found: [u8; 4] },
    /// A section's raw data lies outside the file.
    SectionOutOfFile {
        name: String,
        offset: u64,
        size: u64,
        len: u64,
    },
    /// A section claims more memory (`VirtualSize`) than the file holds
    /// or than [`MAX_SECTION_SIZE`]: measuring it would allocate that much.
    SectionTooLarge {
        name: String,
        virtual_size: u64,
        raw_size: u64,
        len: u64,
        max: u64,
    },
    /// No `.linux` section: a PE file, but not a UKI.
    NotAUki,
    /// A `.profile` section: the stub measures the selected profile's
    /// sections too; predicting those is not implemented.
    MultiProfile,
}

impl fmt::Display for PeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeError::Truncated {
                what,
                offset,
                need,
                len,
            } => write!(
                f,
                "the {what} at offset {offset:#x} needs {need} bytes but the file ends at \
                 {len:#x}: the file is truncated or not a PE image"
            ),
            PeError::NoDosMagic { found } => write!(
                f,
                "expected the DOS magic \"MZ\" at offset 0, found {:02x} {:02x}: not a PE/EFI \
                 image (give the .efi file ukify wrote)",
                found[0], found[1]
            ),
            PeError::NoPeSignature { offset, found } => write!(
                f,
                "expected the signature \"PE\\0\\0\" at offset {offset:#x} (e_lfanew), found \
                 {:02x?}: not a PE image",
                found
            ),
            PeError::SectionOutOfFile {
                name,
                offset,
                size,
                len,
            } => write!(
                f,
                "section {name}: {size} bytes of raw data at offset {offset:#x} run past the \
                 end of the file ({len:#x}): the file is truncated"
            ),
            PeError::SectionTooLarge {
                name,
                virtual_size,
                raw_size,
                len,
                max,
            } => write!(
                f,
                "section {name}: VirtualSize {virtual_size:#x} (raw data {raw_size:#x}) is \
                 larger than the whole file ({len:#x} bytes) or the limit {max:#x}: refusing \
                 to load it"
            ),
            PeError::NotAUki => f.write_str(
                "no .linux section: a PE image but not a unified kernel image (build one with \
                 ukify)",
            ),
            PeError::MultiProfile => f.write_str(
                "the image has a .profile section: predicting multi-profile UKIs is not \
                 supported",
            ),
        }
    }
}

impl std::error::Error for PeError {}

/// A PE file that could not be used, with its path.
#[derive(Debug)]
pub enum UkiError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Parse {
        path: PathBuf,
        source: PeError,
    },
}

impl fmt::Display for UkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UkiError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            UkiError::Parse { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for UkiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UkiError::Read { source, .. } => Some(source),
            UkiError::Parse { source, .. } => Some(source),
        }
    }
}

/// One entry of the section table (only what measuring needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Up to 8 bytes, NULs stripped (UKI names are short names, no string table).
    pub name: String,
    pub virtual_size: u32,
    pub raw_size: u32,
    pub raw_offset: u32,
}

/// A parsed PE image: its bytes and section table.
pub struct PeImage {
    bytes: Vec<u8>,
    sections: Vec<Section>,
}

fn take<'a>(
    bytes: &'a [u8],
    what: &'static str,
    offset: u64,
    need: u64,
) -> Result<&'a [u8], PeError> {
    let truncated = || PeError::Truncated {
        what,
        offset,
        need,
        len: bytes.len() as u64,
    };
    let start = usize::try_from(offset).map_err(|_| truncated())?;
    let end = offset
        .checked_add(need)
        .and_then(|e| usize::try_from(e).ok())
        .ok_or_else(truncated)?;
    bytes.get(start..end).ok_or_else(truncated)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

// PE/COFF layout (Microsoft PE format specification).
const E_LFANEW: u64 = 0x3c;
const COFF_HEADER_LEN: u64 = 20;
const SECTION_HEADER_LEN: u64 = 40;

/// The most memory one section may claim (`VirtualSize`), whatever the
/// file's size: a UKI's largest section (the initrd) is well below this.
pub const MAX_SECTION_SIZE: u64 = 1 << 30;

impl PeImage {
    /// Parses the DOS header, the PE signature, the COFF header and the
    /// section table; every offset is checked against the file's length.
    pub fn parse(bytes: Vec<u8>) -> Result<PeImage, PeError> {
        let magic = take(&bytes, "DOS header", 0, 2)?;
        if magic != b"MZ" {
            return Err(PeError::NoDosMagic {
                found: [magic[0], magic[1]],
            });
        }
        let dos = take(&bytes, "DOS header", 0, E_LFANEW + 4)?;
        let pe = u64::from(u32_at(dos, E_LFANEW as usize));
        let sig = take(&bytes, "PE signature", pe, 4)?;
        if sig != b"PE\0\0" {
            return Err(PeError::NoPeSignature {
                offset: pe,
                found: [sig[0], sig[1], sig[2], sig[3]],
            });
        }
        let coff = take(&bytes, "COFF header", pe + 4, COFF_HEADER_LEN)?;
        let count = u64::from(u16_at(coff, 2));
        let optional_len = u64::from(u16_at(coff, 16));
        let table_at = pe + 4 + COFF_HEADER_LEN + optional_len;
        let table = take(
            &bytes,
            "section table",
            table_at,
            count * SECTION_HEADER_LEN,
        )?;
        let sections = table
            .chunks_exact(SECTION_HEADER_LEN as usize)
            .map(|h| Section {
                name: String::from_utf8_lossy(&h[..8])
                    .trim_end_matches('\0')
                    .to_owned(),
                virtual_size: u32_at(h, 8),
                raw_size: u32_at(h, 16),
                raw_offset: u32_at(h, 20),
            })
            .collect::<Vec<_>>();
        for s in &sections {
            let size = u64::from(s.raw_size.min(s.virtual_size));
            take(&bytes, "section", u64::from(s.raw_offset), size).map_err(|_| {
                PeError::SectionOutOfFile {
                    name: s.name.clone(),
                    offset: u64::from(s.raw_offset),
                    size,
                    len: bytes.len() as u64,
                }
            })?;
            // `memory()` zero-fills up to VirtualSize. In a UKI the stub's
            // sections are small and the others hold their data in the
            // file, so no section needs more memory than the file has.
            let len = bytes.len() as u64;
            let virtual_size = u64::from(s.virtual_size);
            if virtual_size > len || virtual_size > MAX_SECTION_SIZE {
                return Err(PeError::SectionTooLarge {
                    name: s.name.clone(),
                    virtual_size,
                    raw_size: u64::from(s.raw_size),
                    len,
                    max: MAX_SECTION_SIZE,
                });
            }
        }
        Ok(PeImage { bytes, sections })
    }

    /// The first section of that name with a non-zero size, as the stub
    /// picks it ("first matching section wins"; size 0 counts as absent).
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.name == name && s.virtual_size != 0)
    }

    /// The section as the firmware loads it: `VirtualSize` bytes, the file's
    /// bytes up to `SizeOfRawData`, zeros after.
    pub fn memory(&self, s: &Section) -> Vec<u8> {
        let from_file = s.raw_size.min(s.virtual_size) as usize;
        let start = s.raw_offset as usize;
        // In bounds: checked by parse().
        let mut data = self.bytes[start..start + from_file].to_vec();
        data.resize(s.virtual_size as usize, 0);
        data
    }
}

/// A unified kernel image: a PE image with a `.linux` section.
pub struct Uki {
    pe: PeImage,
}

impl Uki {
    pub fn parse(bytes: Vec<u8>) -> Result<Uki, PeError> {
        let pe = PeImage::parse(bytes)?;
        if pe.section(".linux").is_none() {
            return Err(PeError::NotAUki);
        }
        if pe.section(".profile").is_some() {
            return Err(PeError::MultiProfile);
        }
        Ok(Uki { pe })
    }

    pub fn open(path: &Path) -> Result<Uki, UkiError> {
        let bytes = std::fs::read(path).map_err(|source| UkiError::Read {
            path: path.to_owned(),
            source,
        })?;
        Uki::parse(bytes).map_err(|source| UkiError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// The `.cmdline` section as text (the stub passes it to the kernel
    /// up to the first NUL), if present.
    pub fn cmdline(&self) -> Option<String> {
        let s = self.pe.section(".cmdline")?;
        let data = self.pe.memory(s);
        let text = data.split(|&b| b == 0).next().unwrap_or_default();
        Some(String::from_utf8_lossy(text).trim().to_owned())
    }

    /// The measured sections, in the stub's order: (name, data in memory).
    pub fn measured_sections(&self) -> Vec<(&'static str, Vec<u8>)> {
        UNIFIED_SECTIONS
            .iter()
            .filter_map(|&name| self.pe.section(name).map(|s| (name, self.pe.memory(s))))
            .collect()
    }
}

/// Splits a phase path as systemd-measure's `--phase` takes it
/// (`enter-initrd:leave-initrd`); empty words are skipped, so "" is the
/// value right after the stub, before any phase.
pub fn phase_words(path: &str) -> Vec<&str> {
    path.split(':').filter(|w| !w.is_empty()).collect()
}

/// PCR 11 after the stub measured `sections` and systemd-pcrphase the
/// `phases`, from reset, in each bank.
pub fn predict_pcr11(
    sections: &[(&str, Vec<u8>)],
    phases: &[&str],
    banks: &[HashAlg],
) -> BTreeMap<HashAlg, Vec<u8>> {
    let mut out = BTreeMap::new();
    for &bank in banks {
        let mut value = vec![0u8; bank.digest_len()];
        let mut extend = |data: &[u8]| value = bank::extend(bank, &value, &bank.digest(data));
        for (name, data) in sections {
            extend(&[name.as_bytes(), b"\0"].concat());
            extend(data);
        }
        for phase in phases {
            extend(phase.as_bytes());
        }
        out.insert(bank, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE image: DOS header, signature, COFF header, an optional
    /// header of `opt` bytes, the section table, then each section's data
    /// at 0x200-aligned offsets (SizeOfRawData aligned, VirtualSize exact
    /// unless given).
    fn pe(sections: &[(&str, &[u8], Option<u32>)], opt: u16) -> Vec<u8> {
        let pe_at = 0x80usize;
        let table = pe_at + 4 + 20 + opt as usize;
        let mut data_at = (table + 40 * sections.len()).next_multiple_of(0x200);
        let mut out = vec![0u8; data_at];
        out[..2].copy_from_slice(b"MZ");
        out[0x3c..0x40].copy_from_slice(&(pe_at as u32).to_le_bytes());
        out[pe_at..pe_at + 4].copy_from_slice(b"PE\0\0");
        out[pe_at + 4..pe_at + 6].copy_from_slice(&0x8664u16.to_le_bytes());
        out[pe_at + 6..pe_at + 8].copy_from_slice(&(sections.len() as u16).to_le_bytes());
        out[pe_at + 20..pe_at + 22].copy_from_slice(&opt.to_le_bytes());
        for (i, (name, data, vsize)) in sections.iter().enumerate() {
            let h = table + 40 * i;
            let raw = data.len().next_multiple_of(0x200);
            out[h..h + name.len()].copy_from_slice(name.as_bytes());
            let vs = vsize.unwrap_or(data.len() as u32);
            out[h + 8..h + 12].copy_from_slice(&vs.to_le_bytes());
            out[h + 16..h + 20].copy_from_slice(&(raw as u32).to_le_bytes());
            out[h + 20..h + 24].copy_from_slice(&(data_at as u32).to_le_bytes());
            out.resize(data_at + raw, 0);
            out[data_at..data_at + data.len()].copy_from_slice(data);
            data_at += raw;
        }
        out
    }

    fn sha256_chain(parts: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![0u8; 32];
        for p in parts {
            v = HashAlg::Sha256.digest(&[v, HashAlg::Sha256.digest(p)].concat());
        }
        v
    }

    #[test]
    fn sections_are_measured_in_the_stubs_order_not_the_files() {
        // The file order (as ukify writes it) differs from the stub's.
        let image = pe(
            &[
                (".text", b"stub code", None),
                (".sbat", b"sbat,1\n", None),
                (".osrel", b"ID=test\n", None),
                (".cmdline", b"composefs=ab root=x", None),
                (".pcrsig", b"{}", None),
                (".linux", b"kernel", None),
                (".initrd", b"initrd", None),
            ],
            0xf0,
        );
        let uki = Uki::parse(image).unwrap();
        let names: Vec<_> = uki.measured_sections().iter().map(|s| s.0).collect();
        assert_eq!(names, [".linux", ".osrel", ".cmdline", ".initrd", ".sbat"]);
        let p = predict_pcr11(
            &uki.measured_sections(),
            &["enter-initrd"],
            &[HashAlg::Sha256],
        );
        let expected = sha256_chain(&[
            b".linux\0",
            b"kernel",
            b".osrel\0",
            b"ID=test\n",
            b".cmdline\0",
            b"composefs=ab root=x",
            b".initrd\0",
            b"initrd",
            b".sbat\0",
            b"sbat,1\n",
            b"enter-initrd",
        ]);
        assert_eq!(p[&HashAlg::Sha256], expected);
        assert_eq!(uki.cmdline().as_deref(), Some("composefs=ab root=x"));
    }

    #[test]
    fn virtual_size_decides_the_measured_length() {
        // Larger than the raw data: zero-filled in memory; smaller: cut.
        let image = pe(
            &[
                (".linux", b"kernel", Some(0x300)),
                (".osrel", b"ID=x\nmore", Some(4)),
            ],
            0,
        );
        let uki = Uki::parse(image).unwrap();
        let s = uki.measured_sections();
        assert_eq!(s[0].1.len(), 0x300);
        assert_eq!(&s[0].1[..6], b"kernel");
        assert!(s[0].1[0x200..].iter().all(|&b| b == 0));
        assert_eq!(s[1].1, b"ID=x");
    }

    #[test]
    fn first_section_of_a_name_wins_and_empty_ones_are_absent() {
        let image = pe(
            &[
                (".linux", b"first", None),
                (".linux", b"second", None),
                (".splash", b"", Some(0)),
            ],
            0,
        );
        let uki = Uki::parse(image).unwrap();
        let s = uki.measured_sections();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].1, b"first");
    }

    #[test]
    fn phases_extend_after_the_sections() {
        let uki = Uki::parse(pe(&[(".linux", b"k", None)], 0)).unwrap();
        let s = uki.measured_sections();
        let none = predict_pcr11(&s, &phase_words(""), &[HashAlg::Sha256]);
        assert_eq!(none[&HashAlg::Sha256], sha256_chain(&[b".linux\0", b"k"]));
        let all = predict_pcr11(
            &s,
            &phase_words("enter-initrd:leave-initrd:sysinit:ready"),
            &[HashAlg::Sha256, HashAlg::Sha1],
        );
        assert_eq!(
            all[&HashAlg::Sha256],
            sha256_chain(&[
                b".linux\0",
                b"k",
                b"enter-initrd",
                b"leave-initrd",
                b"sysinit",
                b"ready"
            ])
        );
        assert_eq!(all[&HashAlg::Sha1].len(), 20);
        assert_eq!(
            phase_words("enter-initrd::ready"),
            ["enter-initrd", "ready"]
        );
    }

    /// The section files of tests/fixtures/uki, in the file order ukify
    /// uses (not the stub's), with sections the stub ignores.
    fn fixture_uki() -> Uki {
        macro_rules! f {
            ($n:literal) => {
                include_bytes!(concat!("../../tests/fixtures/uki/", $n)).as_slice()
            };
        }
        let sections: [(&str, &[u8], Option<u32>); 13] = [
            (".text", b"stub", None),
            (".sbat", f!("sbat"), None),
            (".osrel", f!("osrel"), None),
            (".cmdline", f!("cmdline"), None),
            (".dtb", f!("dtb"), None),
            (".uname", f!("uname"), None),
            (".splash", f!("splash"), None),
            (".pcrsig", b"{\"sha256\":[]}", None),
            (".pcrpkey", f!("pcrpkey"), None),
            (".linux", f!("linux"), None),
            (".ucode", f!("ucode"), None),
            (".initrd", f!("initrd"), None),
            (".reloc", b"reloc", None),
        ];
        Uki::parse(pe(&sections, 0xf0)).unwrap()
    }

    /// `{"sha256":[{"phase":"a:b","pcr":11,"hash":"hex"},...],...}` as
    /// (bank, phase, hex); no "phase" key: the empty phase.
    fn systemd_measure(json: &str) -> Vec<(HashAlg, String, String)> {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let mut out = Vec::new();
        for (bank, entries) in v.as_object().unwrap() {
            for e in entries.as_array().unwrap() {
                assert_eq!(e["pcr"], 11);
                out.push((
                    HashAlg::from_name(bank).unwrap(),
                    e["phase"].as_str().unwrap_or("").to_owned(),
                    e["hash"].as_str().unwrap().to_owned(),
                ));
            }
        }
        out
    }

    #[test]
    fn pcr11_equals_systemd_measure_for_every_bank_and_phase() {
        // tests/fixtures/uki/make-expected.sh: systemd 257's systemd-measure.
        let uki = fixture_uki();
        let mut expected = systemd_measure(include_str!(
            "../../tests/fixtures/uki/systemd-measure.json"
        ));
        expected.extend(systemd_measure(include_str!(
            "../../tests/fixtures/uki/systemd-measure-nophase.json"
        )));
        assert_eq!(expected.len(), 4 * 5);
        for (bank, phase, hex) in expected {
            let got = predict_pcr11(&uki.measured_sections(), &phase_words(&phase), &[bank]);
            assert_eq!(
                crate::hex::encode(&got[&bank]),
                hex,
                "{bank:?} phase '{phase}'"
            );
        }
    }

    /// Issue 13: a 128-byte PE file whose section claims a VirtualSize of
    /// 0xFFFFFFFF made `memory()` allocate 4 GiB and abort the process.
    #[test]
    fn a_section_claiming_more_memory_than_the_file_is_refused() {
        let mut tiny = vec![0u8; 128];
        tiny[..2].copy_from_slice(b"MZ");
        tiny[0x3c] = 0x40; // e_lfanew
        tiny[0x40..0x44].copy_from_slice(b"PE\0\0");
        tiny[0x46] = 1; // one section, no optional header
        let h = 0x40 + 4 + 20;
        tiny[h..h + 6].copy_from_slice(b".linux");
        tiny[h + 8..h + 12].copy_from_slice(&0xffff_ffffu32.to_le_bytes());
        let e = Uki::parse(tiny).err().unwrap();
        assert_eq!(
            e,
            PeError::SectionTooLarge {
                name: ".linux".into(),
                virtual_size: 0xffff_ffff,
                raw_size: 0,
                len: 128,
                max: MAX_SECTION_SIZE,
            }
        );
        let msg = e.to_string();
        assert!(msg.contains("section .linux"), "{msg}");
        assert!(msg.contains("0xffffffff") && msg.contains("0x80"), "{msg}");
        // Zero fill up to the file's length is still fine (tested above);
        // one byte more is not.
        let ok = pe(&[(".linux", b"kernel", None)], 0);
        let len = ok.len() as u32;
        assert!(Uki::parse(pe(&[(".linux", b"kernel", Some(len))], 0)).is_ok());
        assert!(matches!(
            Uki::parse(pe(&[(".linux", b"kernel", Some(len + 1))], 0)),
            Err(PeError::SectionTooLarge { .. })
        ));
    }

    /// The input the `uki` fuzz target found against the parser before
    /// the bound (libFuzzer: out-of-memory): the fixture UKI with `.uname`
    /// claiming a VirtualSize of 0xFFFFFFF5.
    #[test]
    fn fuzzer_found_uname_section_of_4_gib_is_refused() {
        let bytes = include_bytes!("../../tests/fixtures/fuzz/uki-oom-virtual-size");
        let e = Uki::parse(bytes.to_vec()).err().unwrap();
        assert!(
            matches!(e, PeError::SectionTooLarge { ref name, virtual_size: 0xffff_fff5, .. }
                if name == ".uname"),
            "{e:?}"
        );
        crate::fuzzing::uki(bytes);
    }

    #[test]
    fn malformed_images_are_refused_with_the_offset() {
        assert_eq!(
            Uki::parse(b"MZ".to_vec()).err(),
            Some(PeError::Truncated {
                what: "DOS header",
                offset: 0,
                need: 0x40,
                len: 2
            })
        );
        let mut bad = vec![0u8; 0x40];
        bad[..2].copy_from_slice(b"ZM");
        assert_eq!(
            Uki::parse(bad).err(),
            Some(PeError::NoDosMagic { found: *b"ZM" })
        );
        let good = pe(&[(".linux", b"kernel", None)], 0);
        let mut nosig = good.clone();
        nosig[0x80] = b'X';
        assert!(matches!(
            Uki::parse(nosig),
            Err(PeError::NoPeSignature { offset: 0x80, .. })
        ));
        // e_lfanew pointing past the end.
        let mut far = good.clone();
        far[0x3c..0x40].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(matches!(
            Uki::parse(far),
            Err(PeError::Truncated {
                what: "PE signature",
                offset: 0xffff_fff0,
                ..
            })
        ));
        // Section count larger than the table the file holds.
        let mut many = good.clone();
        many[0x86..0x88].copy_from_slice(&0xffffu16.to_le_bytes());
        assert!(matches!(
            Uki::parse(many),
            Err(PeError::Truncated {
                what: "section table",
                ..
            })
        ));
        // Raw data cut off.
        let mut cut = good.clone();
        cut.truncate(cut.len() - 0x200);
        let e = Uki::parse(cut).err().unwrap();
        assert!(matches!(e, PeError::SectionOutOfFile { ref name, .. } if name == ".linux"));
        assert!(e.to_string().contains("section .linux"));
        assert_eq!(
            Uki::parse(pe(&[(".text", b"x", None)], 0)).err(),
            Some(PeError::NotAUki)
        );
        assert_eq!(
            Uki::parse(pe(
                &[(".linux", b"x", None), (".profile", b"ID=a", None)],
                0
            ))
            .err(),
            Some(PeError::MultiProfile)
        );
    }
}
