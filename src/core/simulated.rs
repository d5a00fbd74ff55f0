//! The contract's simulated HCA ("The simulated HCA" in the contract): what
//! both the Linux simulator (`crate::sim`) and the Windows layer's root test
//! device (hardware id `root\mlnx_hca_sim`) present, defined once.
//!
//! It is a ConnectX-3 (PCI 15B3:1003), the newest HCA whose tools map CR
//! space directly, so that real tools (mstflint's `mstmcra` and
//! `mstregdump`) accept it. Like the hardware's, its CR space is big-endian:
//! the device's dword `v` at offset `o` is the four bytes at `o` in
//! big-endian order ([`cr_dword_bytes`]).

use super::BarSizes;

/// Size of the simulated BAR 0 (CR space): 1 MiB.
pub const SIM_BAR0_SIZE: u32 = 1 << 20;
/// Reported size of BAR 1 (UAR): 8 MiB.
pub const SIM_BAR1_SIZE: u32 = 8 << 20;
/// Reported size of BAR 2 (DDR): 256 MiB.
pub const SIM_BAR2_SIZE: u32 = 256 << 20;
/// Offset of the device-identification dword (mstflint's tools read the
/// hardware id from its low 16 bits, the revision from bits 16-23).
pub const SIM_DEVICE_ID_OFFSET: u32 = 0xF0014;
/// Value of the device-identification dword: a ConnectX-3 (hardware id
/// 0x1F5), revision 1.
pub const SIM_DEVICE_ID: u32 = 0x0001_01F5;
/// PCI vendor id of the simulated HCA: Mellanox.
pub const SIM_PCI_VENDOR_ID: u16 = 0x15B3;
/// PCI device id of the simulated HCA: ConnectX-3 (MT27500).
pub const SIM_PCI_DEVICE_ID: u16 = 0x1003;

/// The BARs the simulated HCA reports.
pub const SIM_BARS: BarSizes = BarSizes { bar0: SIM_BAR0_SIZE, bar1: SIM_BAR1_SIZE, bar2: SIM_BAR2_SIZE };

/// PCI device id of the simulated ConnectX-4 (MT27700), whose CR space is
/// behind the configuration-space gateway.
pub const SIM4_PCI_DEVICE_ID: u16 = 0x1013;
/// The simulated ConnectX-4's device-identification dword (CR space at
/// 0xF0014): hardware id 0x209.
pub const SIM4_DEVICE_ID: u32 = 0x0000_0209;
/// The BARs the simulated ConnectX-4 reports: BAR 0 is its initialization
/// segment and doorbells (32 MiB), never mapped.
pub const SIM4_BARS: BarSizes = BarSizes { bar0: 32 << 20, bar1: 0, bar2: 0 };

/// The four bytes of CR space that hold the device's dword `value`: CR space
/// is big-endian on the bus (the Linux mthca/mlx4 drivers and mstflint's
/// mtcr swap every dword they access through BAR 0).
pub const fn cr_dword_bytes(value: u32) -> [u8; 4] {
    value.to_be_bytes()
}

/// The device's dword held in four bytes of CR space.
pub const fn cr_dword_value(bytes: [u8; 4]) -> u32 {
    u32::from_be_bytes(bytes)
}

pub mod gateway;
