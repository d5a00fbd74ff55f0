//! The HCA table (`core::hca::HCAS`) against the outside world and against
//! its copy in the filter installer.
//!
//! - Every id is a Mellanox id that `pci.ids` (Debian `pci.ids`, installed by
//!   `tools/test.sh`) names with the same product and the same kind (flash
//!   recovery or not), but for the ConnectX QDR id 0x6354, which only the
//!   Linux mlx4 driver's table lists.
//! - `tools/filter/hcas.h` is the same table, entry for entry, so that
//!   mlnx_hca_filter.exe refuses exactly what the driver would not serve.

use mlnx_hca::core::hca::{CrSpace, HCAS};
use std::path::Path;

const PCI_IDS: &str = "/usr/share/misc/pci.ids";

/// Ids the Linux mlx4 driver binds that pci.ids does not list (its
/// `mlx4_pci_table`: "MT25408 [ConnectX IB QDR]").
const MLX4_ONLY: &[u16] = &[0x6354];

/// The device lines of vendor 15b3 in pci.ids: (id, name).
fn mellanox_devices() -> Vec<(u16, String)> {
    let text = std::fs::read_to_string(PCI_IDS)
        .unwrap_or_else(|e| panic!("{PCI_IDS}: {e} (Debian package pci.ids; tools/test.sh installs it)"));
    let mut out = Vec::new();
    let mut in_vendor = false;
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if !line.starts_with('\t') {
            in_vendor = line.starts_with("15b3 ");
            continue;
        }
        if !in_vendor || line.starts_with("\t\t") {
            continue;
        }
        let (id, name) = line[1..].split_once("  ").expect("id  name");
        out.push((u16::from_str_radix(id, 16).expect("hex id"), name.to_string()));
    }
    assert!(out.len() > 50, "pci.ids lists Mellanox's devices ({} found)", out.len());
    out
}

/// The product family of a table name: its text before " (" (e.g.
/// "ConnectX-3 Pro", "InfiniHost III Lx").
fn family(name: &str) -> &str {
    name.split(" (").next().unwrap()
}

#[test]
fn every_hca_is_named_alike_by_pci_ids() {
    let devices = mellanox_devices();
    for h in HCAS {
        let Some((_, listed)) = devices.iter().find(|(id, _)| *id == h.device_id) else {
            assert!(MLX4_ONLY.contains(&h.device_id), "{:#06x} ({}) is not in pci.ids", h.device_id, h.name);
            continue;
        };
        let listed_lower = listed.to_ascii_lowercase();
        // The chip (MTnnnnn) where the table names one.
        if let Some(chip) = h.name.split(['(', ',', ')']).map(str::trim).find(|p| p.starts_with("MT")) {
            assert!(listed.contains(chip), "{:#06x}: pci.ids says {listed:?}, the table {:?}", h.device_id, h.name);
        }
        // The product, in pci.ids' own spelling.
        let product =
            family(h.name).trim_end_matches(" flash recovery").replace("ConnectX VPI", "ConnectX").to_ascii_lowercase();
        assert!(
            listed_lower.contains(&product),
            "{:#06x}: pci.ids says {listed:?}, the table {:?} ({product:?})",
            h.device_id,
            h.name
        );
        assert_eq!(
            h.recovery,
            listed_lower.contains("flash recovery"),
            "{:#06x}: recovery {} but pci.ids says {listed:?}",
            h.device_id,
            h.recovery
        );
    }
}

/// The filter installer's table (`HCA(id, "name", CR_BAR0|CR_GATEWAY,
/// recovery)` lines) is the driver's.
#[test]
fn the_filter_installer_knows_the_same_hcas() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/filter/hcas.h");
    let text = std::fs::read_to_string(&path).expect("tools/filter/hcas.h");
    let entries: Vec<(u16, String, CrSpace, bool)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("HCA(")?.strip_suffix(')').map(str::to_string))
        .map(|body| {
            let (id, rest) = body.split_once(", \"").expect("HCA(id, \"name\", ...)");
            let (name, rest) = rest.split_once("\", ").expect("name ends with a quote");
            let (cr, recovery) = rest.split_once(", ").expect("cr, recovery");
            let id = u16::from_str_radix(id.trim_start_matches("0x"), 16).expect("hex id");
            let cr = match cr {
                "CR_BAR0" => CrSpace::Bar0,
                "CR_GATEWAY" => CrSpace::Gateway,
                other => panic!("{other}: CR_BAR0 or CR_GATEWAY"),
            };
            (id, name.to_string(), cr, recovery == "1")
        })
        .collect();
    let table: Vec<(u16, String, CrSpace, bool)> =
        HCAS.iter().map(|h| (h.device_id, h.name.to_string(), h.cr_space, h.recovery)).collect();
    assert_eq!(entries, table, "tools/filter/hcas.h and core::hca::HCAS differ");
}
