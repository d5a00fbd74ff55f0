//! `include/mlnx_hca_ioctl.h` is the ABI C tool authors compile against: it
//! must agree with `src/abi.rs` in every code, size and field offset. The
//! system C compiler builds `tests/abi/layout.c` against it (as C11, and with
//! `-m32` for 32-bit callers under WOW64). Its CR-space accessors must read
//! and write dwords in the byte order the simulated HCA (and the hardware)
//! keeps them in.

use mlnx_hca::abi::*;
use mlnx_hca::sim::{cr_dword_bytes, cr_dword_value};
use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

fn rust_side() -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: usize| {
        m.insert(k.to_string(), v as u64);
    };
    put("FW_MAP_CRSPACE_RO", FW_MAP_CRSPACE_RO as usize);
    put("FW_MAP_CRSPACE_RW", FW_MAP_CRSPACE_RW as usize);
    put("FW_UNMAP_CRSPACE", FW_UNMAP_CRSPACE as usize);
    put("FW_QUERY_CRSPACE", FW_QUERY_CRSPACE as usize);
    put("sizeof(FW_MAP_CRSPACE_IN)", size_of::<MapCrSpaceIn>());
    put("offsetof(FW_MAP_CRSPACE_IN, bar_num)", offset_of!(MapCrSpaceIn, bar_num));
    put("offsetof(FW_MAP_CRSPACE_IN, offset)", offset_of!(MapCrSpaceIn, offset));
    put("offsetof(FW_MAP_CRSPACE_IN, size)", offset_of!(MapCrSpaceIn, size));
    put("sizeof(FW_MAP_CRSPACE_OUT)", size_of::<MapCrSpaceOut>());
    put("offsetof(FW_MAP_CRSPACE_OUT, va)", offset_of!(MapCrSpaceOut, va));
    put("sizeof(FW_UNMAP_CRSPACE_IN)", size_of::<UnmapCrSpaceIn>());
    put("offsetof(FW_UNMAP_CRSPACE_IN, va)", offset_of!(UnmapCrSpaceIn, va));
    put("sizeof(FW_QUERY_CRSPACE_OUT)", size_of::<QueryCrSpaceOut>());
    put("offsetof(FW_QUERY_CRSPACE_OUT, bar0_size)", offset_of!(QueryCrSpaceOut, bar0_size));
    put("offsetof(FW_QUERY_CRSPACE_OUT, bar1_size)", offset_of!(QueryCrSpaceOut, bar1_size));
    put("offsetof(FW_QUERY_CRSPACE_OUT, bar2_size)", offset_of!(QueryCrSpaceOut, bar2_size));
    put("offsetof(FW_QUERY_CRSPACE_OUT, writer_pid)", offset_of!(QueryCrSpaceOut, writer_pid));
    put("offsetof(FW_QUERY_CRSPACE_OUT, mapping_count)", offset_of!(QueryCrSpaceOut, mapping_count));
    put("offsetof(FW_QUERY_CRSPACE_OUT, reserved)", offset_of!(QueryCrSpaceOut, reserved));
    put("FW_READ_CRSPACE_BLOCK", FW_READ_CRSPACE_BLOCK as usize);
    put("FW_WRITE_CRSPACE_BLOCK", FW_WRITE_CRSPACE_BLOCK as usize);
    put("FW_LEASE_CRSPACE", FW_LEASE_CRSPACE as usize);
    put("FW_QUERY_DEVICE", FW_QUERY_DEVICE as usize);
    put("MLNX_HCA_MAX_BLOCK_DWORDS", MAX_BLOCK_DWORDS as usize);
    put("MLNX_HCA_PATH_MAPPED", PATH_MAPPED as usize);
    put("MLNX_HCA_PATH_GATEWAY", PATH_GATEWAY as usize);
    put("MLNX_HCA_SPACE_ICMD_EXT", space::ICMD_EXT as usize);
    put("MLNX_HCA_SPACE_CR", space::CR as usize);
    put("MLNX_HCA_SPACE_ICMD", space::ICMD as usize);
    put("MLNX_HCA_SPACE_ND_CR", space::ND_CR as usize);
    put("MLNX_HCA_SPACE_SEMAPHORE", space::SEMAPHORE as usize);
    put("sizeof(FW_CRSPACE_BLOCK_IN)", size_of::<BlockIn>());
    put("offsetof(FW_CRSPACE_BLOCK_IN, space)", offset_of!(BlockIn, space));
    put("offsetof(FW_CRSPACE_BLOCK_IN, offset)", offset_of!(BlockIn, offset));
    put("offsetof(FW_CRSPACE_BLOCK_IN, count)", offset_of!(BlockIn, count));
    put("sizeof(FW_LEASE_CRSPACE_IN)", size_of::<LeaseIn>());
    put("offsetof(FW_LEASE_CRSPACE_IN, take)", offset_of!(LeaseIn, take));
    put("sizeof(FW_QUERY_DEVICE_OUT)", size_of::<QueryDeviceOut>());
    put("offsetof(FW_QUERY_DEVICE_OUT, pci_device_id)", offset_of!(QueryDeviceOut, pci_device_id));
    put("offsetof(FW_QUERY_DEVICE_OUT, hw_id)", offset_of!(QueryDeviceOut, hw_id));
    put("offsetof(FW_QUERY_DEVICE_OUT, path)", offset_of!(QueryDeviceOut, path));
    put("offsetof(FW_QUERY_DEVICE_OUT, spaces)", offset_of!(QueryDeviceOut, spaces));
    put("offsetof(FW_QUERY_DEVICE_OUT, max_count)", offset_of!(QueryDeviceOut, max_count));
    put("offsetof(FW_QUERY_DEVICE_OUT, reserved)", offset_of!(QueryDeviceOut, reserved));
    // The accessors against CR space as the Rust side lays it out.
    let wrote = cr_dword_bytes(0xDEAD_BEEF);
    for (i, byte) in wrote.iter().enumerate() {
        put(&format!("cr.bytes[{i}]"), usize::from(*byte));
    }
    put("mlnx_hca_cr_read32(cr.dwords, 0)", 0xDEAD_BEEF);
    put("mlnx_hca_cr_read32(cr.dwords, 4)", cr_dword_value([0x00, 0x01, 0x01, 0xF5]) as usize);
    m
}

/// Compiles and runs the C program with `extra` flags; `None` when the
/// compiler cannot build for that mode (e.g. no 32-bit libc installed).
fn c_side(extra: &[&str], tag: &str) -> Option<BTreeMap<String, u64>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("abi_layout_{tag}"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .args(extra)
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("tests/abi/layout.c"))
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    if !status.success() {
        return None;
    }
    let out = Command::new(&exe).output().expect("run the layout program");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    Some(
        text.lines()
            .map(|l| {
                let (k, v) = l.rsplit_once(' ').unwrap();
                (k.to_string(), v.parse().unwrap())
            })
            .collect(),
    )
}

#[test]
fn header_matches_rust_abi() {
    let c = c_side(&[], "native").expect("the header must compile as strict C11");
    assert_eq!(c, rust_side());
}

#[test]
fn header_matches_rust_abi_for_32_bit_callers() {
    // WOW64 callers use the same blocks. The test command installs
    // gcc-multilib so that the compiler can build -m32.
    let c = c_side(&["-m32"], "m32").expect("the header must compile with -m32 (install gcc-multilib)");
    assert_eq!(c, rust_side());
}
