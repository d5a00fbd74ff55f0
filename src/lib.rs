//! `mlnx_hca`: a WDM driver for Mellanox InfiniBand HCAs that maps a window of
//! CR space (PCI BAR 0) into a tool's process, read-only or read-write.
//!
//! - [`abi`] and [`status`]: the contract with user mode (codes, blocks,
//!   statuses), the same as `include/mlnx_hca_ioctl.h`.
//! - [`core`]: every decision, in safe `no_std` Rust, behind a [`Platform`](crate::core::Platform).
//! - `sim` (feature `sim`): a simulated HCA on the host, with real `mmap`
//!   views, playing the I/O manager and Driver Verifier for tests and tools.
//! - `windows` (Windows targets): the WDM driver itself.

#![cfg_attr(target_os = "windows", no_std)]

extern crate alloc;

pub mod abi;
pub mod core;
pub mod status;

#[cfg(all(feature = "sim", unix))]
pub mod sim;

#[cfg(target_os = "windows")]
mod windows;

pub use status::{Result, Status};
