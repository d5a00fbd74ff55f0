//! `crspace`: the client side of the mlnx_hca CR-space contract, for tool
//! authors (firmware burners, register viewers, trace readers).
//!
//! A [`Connection`] is an open device handle that answers the contract's I/O
//! control requests. Two backends implement it:
//!
//! - [`sim::SimConnection`] (Unix): a handle on the simulated HCA of
//!   `mlnx_hca::sim`, which runs the driver's real core with real `mmap`
//!   views;
//! - `windows::DeviceHandle` (Windows): `CreateFileW` on the driver's device
//!   (`\\.\mlnx_hca0` by default, see [`DEFAULT_DEVICE`]) and
//!   `DeviceIoControl`.
//!
//! A [`Mapping`] owns one view of a window of CR space: [`Mapping::read`] and
//! [`Mapping::write`] are volatile dword accesses that refuse an address
//! outside the window, or not dword aligned, before touching memory; dropping
//! the mapping unmaps it (`FW_UNMAP_CRSPACE`). Only a [`Mapping<ReadWrite>`]
//! can write, and the driver grants one only to a handle opened for write,
//! and only while no other handle holds the device's write lease.
//!
//! Failures are an [`Error`] whose message says what to do:
//! "busy: process 4242 holds the write lease", "read-only handle: run as
//! Administrator to write", "offset 0x100003 is not dword aligned".
//!
//! ```
//! # #[cfg(unix)] {
//! use crspace::sim::{SimAccess, SimConnection, SimHca};
//! use crspace::{Connection, Mapping};
//!
//! let hca = SimHca::new();
//! let conn = SimConnection::open(&hca, SimAccess::Read);
//! let id = Mapping::read_only(&conn, 0xF0014, 4)?;
//! assert_eq!(id.read(0xF0014)?, 0x0001_01F5); // a ConnectX-3, revision 1
//! assert_eq!(conn.query()?.mapping_count, 1);
//! drop(id);
//! assert_eq!(conn.query()?.mapping_count, 0);
//! # }
//! # Ok::<(), crspace::Error>(())
//! ```
//!
//! The simulated HCA lives inside the process that creates it: every run of
//! the `crspace` binary with `--sim` starts a fresh one. [`sim::SimSession`]
//! (the CLI's `--sim-state`, `--sim-writer`, `--sim-access`, `--sim-removed`)
//! carries CR space from one run to the next in a file and plays the other
//! processes a session needs; `tools/crspace/README.md` shows a session.

// The contract's codes, blocks and statuses, compiled from the driver crate's
// own files so that there is one definition. They are not taken from the
// `mlnx_hca` crate because, on Windows, that crate is the kernel driver
// (wdk-sys, a kernel panic handler and allocator), which a user-mode tool
// must not link. (`rustfmt::skip`: `cargo fmt` of this crate leaves the
// driver crate's files to that crate.)
#[path = "../../../src/abi.rs"]
#[rustfmt::skip]
pub mod abi;
#[path = "../../../src/status.rs"]
#[rustfmt::skip]
pub mod status;

mod connection;
mod device;
mod error;
mod field;
pub mod gateway;
mod mapping;
mod number;
mod watch;
pub mod win32;

#[cfg(unix)]
pub mod sim;

#[cfg(windows)]
pub mod windows;

pub use connection::{Connection, Info};
pub use device::{DeviceId, DEVICE_ID_OFFSET};
pub use error::{Bytes, Error, Result};
pub use field::{BitField, CrAddress};
pub use gateway::DeviceInfo;
pub use mapping::{explain_map_failure, AccessMode, Mapping, ReadOnly, ReadWrite, SharedConnection};
pub use number::{parse_u32, parse_u64};
pub use status::Status;
pub use watch::{watch, watch_with, WatchOptions};

/// The device the Windows backend opens unless told otherwise: the symbolic
/// link the driver creates for its first HCA.
pub const DEFAULT_DEVICE: &str = r"\\.\mlnx_hca0";
