//! A simulated HCA whose CR space is a file that several processes (and the
//! tools run under `tools/sim-pci`) map at once: what one writes, the others
//! read at once, through their own driver and their own views; power-on
//! happens once; a file that is not a BAR is refused.

mod common;

use common::*;
use mlnx_hca::core::Config;
use mlnx_hca::sim::{SimAccess, SimHca, SIM_BAR0_SIZE, SIM_DEVICE_ID, SIM_DEVICE_ID_OFFSET};

const A: u32 = 100;
const B: u32 = 200;

#[test]
fn two_hcas_on_one_bar_file_share_cr_space_live() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bar0");
    let first = SimHca::with_bar_file(&path, Config::DEFAULT).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), u64::from(SIM_BAR0_SIZE));
    assert_eq!(first.read_dword(SIM_DEVICE_ID_OFFSET), SIM_DEVICE_ID, "a new file is a device at power-on");
    let raw = std::fs::read(&path).unwrap();
    let at = SIM_DEVICE_ID_OFFSET as usize;
    assert_eq!(raw[at..at + 4], [0x00, 0x01, 0x01, 0xF5], "the file holds CR space as the bus does");

    let second = SimHca::with_bar_file(&path, Config::DEFAULT).unwrap();
    let writer = first.open(A, SimAccess::ReadWrite);
    let reader = second.open(B, SimAccess::Read);
    let rw = map(&writer, true, 0x1000, 4).unwrap();
    let ro = map(&reader, false, 0x1000, 4).unwrap();
    poke(rw, 0xC0DE_CAFE);
    assert_eq!(peek(ro), 0xC0DE_CAFE, "the other device's view sees the write");
    assert_eq!(second.read_dword(0x1000), 0xC0DE_CAFE);
    assert_eq!(second.writer_pid(), None, "the lease is the first driver's, not shared");
    drop((writer, reader));

    // Power-on happens once: the id written over survives a new HCA on the file.
    first.write_dword(SIM_DEVICE_ID_OFFSET, 0x1234_5678);
    drop((first, second));
    let third = SimHca::with_bar_file(&path, Config::DEFAULT).unwrap();
    assert_eq!(third.read_dword(SIM_DEVICE_ID_OFFSET), 0x1234_5678);
    assert_eq!(third.read_dword(0x1000), 0xC0DE_CAFE);
}

#[test]
fn a_file_of_another_size_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, b"not CR space").unwrap();
    let err = SimHca::with_bar_file(&path, Config::DEFAULT).err().expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("is not a simulated BAR 0: 12 bytes"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not CR space");
    let missing_dir = dir.path().join("no/such/dir/bar0");
    assert!(SimHca::with_bar_file(&missing_dir, Config::DEFAULT).is_err());
}
