//! Whether the firmware describes a TPM, so that PID 1 can wait for a TPM
//! whose driver is still probing, and name one whose driver is missing,
//! instead of booting unmeasured without a word. ACPI describes a TPM 2.0
//! with a `TPM2` table (x86_64, arm64 servers under UEFI); a device tree
//! with a node whose `compatible` names a TCG interface (`tcg,tpm-tis-mmio`
//! on QEMU's arm64 `virt`, `tcg,tpm_tis-spi` or `tcg,tpm-tis-i2c` on
//! boards), as the kernel's TPM drivers match them.

use std::io::Read;
use std::path::Path;

/// The vendor GUID of systemd-boot's EFI variables (the Boot Loader
/// Interface).
const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// An efivarfs file: 4 bytes of attributes, then the value.
const MAX_EFIVAR: u64 = 4096;

/// The boot entry's file when systemd-boot counts its tries (its
/// `LoaderBootCountPath` variable, e.g. `\EFI\Linux\new+1-1.efi`); `None`
/// without boot counting, without EFI, or on an unreadable variable. A
/// refused boot then reboots by default, so that the boot loader counts
/// the try and falls back once they are used up.
pub fn boot_count_path(sys: &Path) -> Option<String> {
    let var = sys.join(format!(
        "firmware/efi/efivars/LoaderBootCountPath-{LOADER_GUID}"
    ));
    let mut bytes = Vec::new();
    std::fs::File::open(var)
        .ok()?
        .take(MAX_EFIVAR)
        .read_to_end(&mut bytes)
        .ok()?;
    let units: Vec<u16> = bytes
        .get(4..)?
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    let path = String::from_utf16_lossy(&units);
    (!path.is_empty()).then_some(path)
}

/// Deeper than any TPM node sits (root → bus → controller → TPM).
const MAX_DEPTH: usize = 6;

/// Where the firmware describes a TPM, for messages (`ACPI table TPM2`,
/// `device tree node /platform-bus@c000000/tpm_tis@0 (tcg,tpm-tis-mmio)`);
/// `None` if it does not. `sys` is the sysfs mount point, normally `/sys`.
pub fn described_tpm(sys: &Path) -> Option<String> {
    if sys.join("firmware/acpi/tables/TPM2").exists() {
        return Some("ACPI table TPM2".to_owned());
    }
    let base = sys.join("firmware/devicetree/base");
    device_tree_tpm(&base, &base, 0)
}

fn device_tree_tpm(base: &Path, node: &Path, depth: usize) -> Option<String> {
    if let Some(compatible) = tpm_compatible(node) {
        let name = node.strip_prefix(base).unwrap_or(node);
        return Some(format!(
            "device tree node /{} ({compatible})",
            name.display()
        ));
    }
    if depth == MAX_DEPTH {
        return None;
    }
    let mut children: Vec<_> = std::fs::read_dir(node)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    // readdir order is the filesystem's: sort, so the answer is stable.
    children.sort();
    children
        .iter()
        .find_map(|child| device_tree_tpm(base, child, depth + 1))
}

/// The node's TCG `compatible` string, if it has one and is enabled.
fn tpm_compatible(node: &Path) -> Option<String> {
    let compatible = std::fs::read(node.join("compatible")).ok()?;
    let tcg = compatible
        .split(|&b| b == 0)
        .filter_map(|s| std::str::from_utf8(s).ok())
        .find(|s| s.starts_with("tcg,tpm"))?
        .to_owned();
    // Device-tree properties are NUL-terminated strings; absent means enabled.
    match std::fs::read(node.join("status")) {
        Ok(status) if !matches!(status.split(|&b| b == 0).next(), Some(b"okay" | b"ok")) => None,
        _ => Some(tcg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_counting_is_read_from_systemd_boots_variable() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(boot_count_path(dir.path()), None, "no EFI");
        let vars = dir.path().join("firmware/efi/efivars");
        std::fs::create_dir_all(&vars).unwrap();
        let var = vars.join(format!("LoaderBootCountPath-{LOADER_GUID}"));
        let mut bytes = vec![6, 0, 0, 0];
        for u in "\\EFI\\Linux\\new+1-1.efi".encode_utf16().chain([0]) {
            bytes.extend(u.to_le_bytes());
        }
        std::fs::write(&var, &bytes).unwrap();
        assert_eq!(
            boot_count_path(dir.path()).as_deref(),
            Some("\\EFI\\Linux\\new+1-1.efi")
        );
        std::fs::write(&var, [6, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(boot_count_path(dir.path()), None, "an empty path");
        std::fs::write(&var, [6, 0]).unwrap();
        assert_eq!(boot_count_path(dir.path()), None, "truncated");
    }
    use std::fs;

    fn node(root: &Path, path: &str, compatible: &[u8], status: Option<&[u8]>) {
        let dir = root.join("firmware/devicetree/base").join(path);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("compatible"), compatible).unwrap();
        if let Some(s) = status {
            fs::write(dir.join("status"), s).unwrap();
        }
    }

    #[test]
    fn qemu_virt_tpm_node_is_found_by_its_tcg_compatible() {
        let sys = tempfile::tempdir().unwrap();
        node(
            sys.path(),
            "pl011@9000000",
            b"arm,pl011\0arm,primecell\0",
            None,
        );
        // As QEMU 10 puts it in the device tree of `-M virt`.
        node(
            sys.path(),
            "platform-bus@c000000/tpm_tis@0",
            b"tcg,tpm-tis-mmio\0",
            None,
        );
        assert_eq!(
            described_tpm(sys.path()).as_deref(),
            Some("device tree node /platform-bus@c000000/tpm_tis@0 (tcg,tpm-tis-mmio)")
        );
    }

    #[test]
    fn a_tpm_on_a_bus_is_found_by_its_second_compatible() {
        let sys = tempfile::tempdir().unwrap();
        node(
            sys.path(),
            "soc/spi@7e204000/tpm@1",
            b"infineon,slb9670\0tcg,tpm_tis-spi\0",
            Some(b"okay\0"),
        );
        assert_eq!(
            described_tpm(sys.path()).as_deref(),
            Some("device tree node /soc/spi@7e204000/tpm@1 (tcg,tpm_tis-spi)")
        );
    }

    #[test]
    fn disabled_nodes_and_other_devices_are_not_a_tpm() {
        let sys = tempfile::tempdir().unwrap();
        assert_eq!(described_tpm(sys.path()), None);
        node(
            sys.path(),
            "tpm@1",
            b"tcg,tpm-tis-mmio\0",
            Some(b"disabled\0"),
        );
        node(sys.path(), "rtc@9010000", b"arm,pl031\0", None);
        assert_eq!(described_tpm(sys.path()), None);
    }

    #[test]
    fn acpi_tpm2_table_describes_a_tpm() {
        let sys = tempfile::tempdir().unwrap();
        let tables = sys.path().join("firmware/acpi/tables");
        fs::create_dir_all(&tables).unwrap();
        fs::write(tables.join("DSDT"), b"").unwrap();
        assert_eq!(described_tpm(sys.path()), None);
        fs::write(tables.join("TPM2"), b"").unwrap();
        assert_eq!(
            described_tpm(sys.path()).as_deref(),
            Some("ACPI table TPM2")
        );
    }
}
