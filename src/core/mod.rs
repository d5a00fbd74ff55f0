//! The portable core: every decision the driver makes, in safe `no_std` Rust.
//!
//! The core parses nothing from user memory itself and touches no kernel
//! object: it checks a decoded [`Request`](crate::abi::Request) against the
//! device, keeps the per-handle mapping tables ([`UmCa`], the thread's
//! `mlnx_um_ca_t`), the write lease and the quotas, and decides what to map
//! and unmap. A [`Platform`] carries those decisions out: the Windows layer
//! with MDLs, the simulation with `mmap`.
//!
//! Concurrency: a [`Device`] is plain data behind `&mut self`. Its owner (the
//! Windows layer's device extension, the simulator) serialises every call
//! with one lock per device; the core never blocks and never calls back into
//! its owner except through [`Platform`].

#![forbid(unsafe_code)]

mod device;
pub mod gateway;
pub mod hca;
mod owners;
pub mod resources;
pub mod security;
pub mod simulated;
mod table;
mod window;

pub use device::{CaId, Device, Identity, Lease, Path, PnpState, ToolLock, UmCa};
pub use owners::ViewOwners;
pub use table::ViewKey;
pub use window::{CrSpaceWindow, PageSpan};

use crate::status::Result;

/// Page size of the mappings: the driver maps whole pages (x64 Windows, and
/// the simulated HCA).
pub const PAGE_SIZE: u32 = 4096;

/// A process id as the driver sees it (`PsGetProcessId`).
pub type Pid = u32;

/// Who a request comes from, as the Windows layer finds it in the IRP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requester {
    /// The process whose address space the request runs in
    /// (`PsGetProcessId(IoGetCurrentProcess())`): where a map puts its view,
    /// and whose views an unmap looks up.
    pub pid: Pid,
    /// The request came from user mode and runs in the process that sent it
    /// (`Irp->RequestorMode == UserMode` and `IoGetRequestorProcess(Irp)` is
    /// the current process). Maps and unmaps need this: a request a driver
    /// forwarded from a worker thread, or a kernel-mode caller, would put a
    /// view in the wrong address space, or look one up there.
    pub in_own_context: bool,
    /// Where the requester's usable addresses end (exclusive): a view must
    /// lie below it. A 32-bit (WOW64) process (`IoIs32bitProcess`) can use
    /// only addresses below 4 GiB ([`Requester::ADDRESSES_32`]); Windows maps
    /// its views there, and a view that were not would be of no use to it,
    /// so the map gives it back and fails.
    pub addresses_end: u64,
}

impl Requester {
    /// The end of a 64-bit process's addresses: no limit of the driver's.
    pub const ADDRESSES_64: u64 = u64::MAX;
    /// The end of a 32-bit (WOW64) process's addresses: 4 GiB.
    pub const ADDRESSES_32: u64 = 1 << 32;

    /// A tool's own `DeviceIoControl`, in its own 64-bit process `pid`.
    pub const fn user(pid: Pid) -> Self {
        Requester { pid, in_own_context: true, addresses_end: Self::ADDRESSES_64 }
    }

    /// A tool's own `DeviceIoControl`, in its own 32-bit (WOW64) process `pid`.
    pub const fn user_32bit(pid: Pid) -> Self {
        Requester { pid, in_own_context: true, addresses_end: Self::ADDRESSES_32 }
    }
}

/// Sizes of the HCA's BARs, as found in the translated resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarSizes {
    /// BAR 0: CR space, the one that is mapped.
    pub bar0: u32,
    /// BAR 1: UAR (reported, never mapped).
    pub bar1: u32,
    /// BAR 2: DDR (reported, never mapped).
    pub bar2: u32,
}

/// Limits that keep any one caller from exhausting system PTEs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Live mappings one handle (file object) may hold.
    pub per_handle_quota: u32,
    /// Live mappings the whole device may hold.
    pub per_device_quota: u32,
}

impl Config {
    /// The contract's defaults: 64 per handle, 1,024 per device.
    pub const DEFAULT: Config = Config { per_handle_quota: 64, per_device_quota: 1024 };
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

/// Carries out what the core decides. One implementation per environment:
/// the Windows layer (MDL + `MmMapLockedPagesSpecifyCache`) and the simulated
/// HCA (`mmap` of shared memory).
pub trait Platform {
    /// Owning handle of one user view. It is created by
    /// [`map_view`](Platform::map_view) and given back exactly once to
    /// [`unmap_view`](Platform::unmap_view); the core never drops one itself.
    type View;

    /// Maps the pages of BAR 0 in `span` into the calling process (the
    /// current context, at the caller's request), read-only or read-write.
    /// Returns the view and the user VA of its first page. On failure nothing
    /// is left mapped.
    fn map_view(&mut self, span: PageSpan, writable: bool) -> Result<(Self::View, u64)>;

    /// Unmaps a view in the process that owns it, attaching to that process
    /// when the current context is another one.
    fn unmap_view(&mut self, view: Self::View);

    /// The write lease was taken (`true`) or ended (`false`): while it is
    /// held a firmware write may be under way, and the system should not
    /// sleep (on Windows, `PoRegisterSystemState(ES_SYSTEM_REQUIRED |
    /// ES_CONTINUOUS)` and its undo). Called only when the answer changes.
    fn keep_system_awake(&mut self, awake: bool);

    /// The device's configuration space, where the gateway of ConnectX-4
    /// and later is; `None` for a device whose BAR 0 is CR space (and once
    /// the platform has given up the device's bus interface).
    fn config_space(&mut self) -> Option<&mut dyn gateway::ConfigSpace> {
        None
    }

    /// Process `pid` starts (`true`) or stops (`false`) holding a tool lock
    /// of this device ([`ToolLock`]), which its exit must release: the
    /// process-exit filters count it as they count a view.
    fn count_owner(&mut self, pid: Pid, add: bool) {
        let _ = (pid, add);
    }
}
