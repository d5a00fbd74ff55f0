//! The contract's simulated HCA ("The simulated HCA" in the contract): what
//! both the Linux simulator (`crate::sim`) and the Windows layer's root test
//! device (hardware id `root\mlnx_hca_sim`) present, defined once.

use super::BarSizes;

/// Size of the simulated BAR 0 (CR space): 1 MiB.
pub const SIM_BAR0_SIZE: u32 = 1 << 20;
/// Reported size of BAR 1 (UAR): 8 MiB.
pub const SIM_BAR1_SIZE: u32 = 8 << 20;
/// Reported size of BAR 2 (DDR): 256 MiB.
pub const SIM_BAR2_SIZE: u32 = 256 << 20;
/// Offset of the device-identification dword.
pub const SIM_DEVICE_ID_OFFSET: u32 = 0xF0014;
/// Value of the device-identification dword.
pub const SIM_DEVICE_ID: u32 = 0x00A0_5A44;

/// The BARs the simulated HCA reports.
pub const SIM_BARS: BarSizes = BarSizes { bar0: SIM_BAR0_SIZE, bar1: SIM_BAR1_SIZE, bar2: SIM_BAR2_SIZE };
