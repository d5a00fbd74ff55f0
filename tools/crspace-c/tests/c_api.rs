//! The header's status numbers and `mlnx_hca_info` are the library's. (The
//! C API as C sees it, `tests/c_api.c` linked with the static library, runs
//! in `tools/crspace-c/check.sh`: `cargo test` does not build the static
//! library.)

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_header_numbers_are_the_librarys() {
    let header = std::fs::read_to_string(root().join("include/mlnx_hca_crspace.h")).expect("the header");
    let define = |name: &str| -> i32 {
        header
            .lines()
            .find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some("#define") && words.next() == Some(name))
                    .then(|| words.next().and_then(|v| v.parse().ok()))
                    .flatten()
            })
            .unwrap_or_else(|| panic!("#define {name} N"))
    };
    use mlnx_hca_crspace::*;
    for (name, value) in [
        ("MLNX_HCA_OK", MLNX_HCA_OK),
        ("MLNX_HCA_ERR_NO_DEVICE", MLNX_HCA_ERR_NO_DEVICE),
        ("MLNX_HCA_ERR_ACCESS", MLNX_HCA_ERR_ACCESS),
        ("MLNX_HCA_ERR_BUSY", MLNX_HCA_ERR_BUSY),
        ("MLNX_HCA_ERR_RANGE", MLNX_HCA_ERR_RANGE),
        ("MLNX_HCA_ERR_REMOVED", MLNX_HCA_ERR_REMOVED),
        ("MLNX_HCA_ERR_RESOURCES", MLNX_HCA_ERR_RESOURCES),
        ("MLNX_HCA_ERR_INVALID", MLNX_HCA_ERR_INVALID),
        ("MLNX_HCA_ERR_DRIVER", MLNX_HCA_ERR_DRIVER),
        ("MLNX_HCA_ERR_UNSUPPORTED", MLNX_HCA_ERR_UNSUPPORTED),
    ] {
        assert_eq!(define(name), value, "{name}");
    }
    assert!(header.contains("} mlnx_hca_info;"), "mlnx_hca_info");
    assert_eq!(std::mem::size_of::<MlnxHcaInfo>(), 20, "mlnx_hca_info is five uint32_t");
    assert!(header.contains("} mlnx_hca_device;"), "mlnx_hca_device");
    assert_eq!(std::mem::size_of::<MlnxHcaDevice>(), 20, "mlnx_hca_device is five uint32_t");
}
