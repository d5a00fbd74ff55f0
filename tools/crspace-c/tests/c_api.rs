//! The C API as C sees it: `tests/c_api.c`, compiled against
//! `include/mlnx_hca_crspace.h` and linked with this crate's static
//! library, runs every function against a simulated HCA; and the header's
//! status numbers are the library's.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The static library cargo built beside this test (target/<profile>/).
fn static_library() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let lib = profile_dir.join("libmlnx_hca_crspace.a");
    assert!(lib.exists(), "{} is missing: cargo builds it with the library (crate-type staticlib)", lib.display());
    lib
}

#[test]
fn the_c_api_works_from_c() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let exe = dir.path().join("c_api");
    let out = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-D_DEFAULT_SOURCE", "-I"])
        .arg(root().join("include"))
        .arg(root().join("tools/crspace-c/tests/c_api.c"))
        .arg(static_library())
        .args(["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-o"])
        .arg(&exe)
        .output()
        .expect("cc");
    assert!(out.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let bar = dir.path().join("cr.bar");
    let run = Command::new(&exe).arg(&bar).output().expect("c_api");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
    assert!(!stdout.contains("FAIL"), "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    let passed: u32 = last.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(passed >= 40, "{last}");
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
    ] {
        assert_eq!(define(name), value, "{name}");
    }
    assert!(header.contains("} mlnx_hca_info;"), "mlnx_hca_info");
    assert_eq!(std::mem::size_of::<MlnxHcaInfo>(), 20, "mlnx_hca_info is five uint32_t");
}
