//! The WDM driver (Windows targets only): turns IRPs into calls on the
//! portable [`core`](crate::core) and carries out its decisions with kernel
//! calls. Nothing here decides what the contract allows; it all lives in the
//! core.
//!
//! | file | what it owns |
//! |---|---|
//! | `mod.rs` | `DriverEntry`, unload, the dispatch table, the process-exit notification, the HCA lists |
//! | `device.rs` | the stack device (FDO or lower filter) and the control device, `AddDevice`, each HCA's `Hca`, the device interface and `\DosDevices\mlnx_hca<N>` |
//! | `pnp.rs` | PnP (start, query/cancel, stop, surprise removal, removal), power, WMI |
//! | `dispatch.rs` | CREATE, CLEANUP, CLOSE, DEVICE_CONTROL on a control device; everything else a stack device passes on or refuses |
//! | `platform.rs` | [`Platform`](crate::core::Platform) for Windows: BAR 0, MDLs, user views, the read-only alias, the busy state |
//! | `config.rs` | a gateway device's configuration space: the PCI bus interface, or the emulated ConnectX-4 of `root\mlnx_hca_sim4` |
//! | `security.rs` | the control device's descriptor and the administrator's read grant |
//! | `params.rs` | the `Parameters` registry key: `ReadAccess`, `KeepSystemAwake` |
//! | `kernel.rs` | small owning wrappers: fast mutex, remove lock, IRP, process reference, attach, busy state |
//! | `alloc.rs`, `log.rs` | pool allocator with a live count; `DbgPrint` tracing |
//! | `shim.c` | `__try/__except` around the two calls that raise on failure |
//!
//! # Locking
//!
//! Fast mutexes (`FAST_MUTEX`: acquired at <= APC_LEVEL, held at APC_LEVEL)
//! and one remove lock per stack device:
//!
//! - `DEVICES` (global): the list of live [`device::Hca`]s and their
//!   instance numbers. Taken by the first START of an HCA (pick N, link), by
//!   REMOVE_DEVICE (unlink) and by the process-exit notification (walk).
//!   `GRAVEYARD` (global): the removed Hcas, until unload.
//! - `Hca::core` (per HCA, "the device lock"): the core's
//!   `Device<WinPlatform>`, i.e. the contexts, tables, lease, PnP state, BAR 0
//!   and every view. Taken for exactly one core call (plus, at start/stop/
//!   removal, handing BAR 0 or the configuration space in or out) by CREATE, CLEANUP, CLOSE and
//!   DEVICE_CONTROL of the control device, the PnP and power minor functions
//!   of the stack device, and the process-exit notification. Under it run
//!   the platform's kernel calls: IoAllocateMdl, MmAllocateMdlForIoSpace,
//!   MmProbeAndLockPages (nonpaged RAM), MmMapLockedPagesSpecifyCache
//!   (UserMode via the shim: needs <= APC_LEVEL; KernelMode),
//!   MmProtectMdlSystemAddress, MmUnmapLockedPages (user mappings need <=
//!   APC_LEVEL), MmUnlockPages, IoFreeMdl, KeStackAttachProcess/
//!   KeUnstackDetachProcess (< DISPATCH_LEVEL), ObfReferenceObject/
//!   ObfDereferenceObject, PoRegisterSystemState/PoUnregisterSystemState (<=
//!   APC_LEVEL), pool allocation and free; for a gateway device the bus
//!   interface's GetBusData/SetBusData (<= DISPATCH_LEVEL) and the waits
//!   for its semaphore and flag, KeDelayExecutionThread (<= APC_LEVEL): all
//!   legal at APC_LEVEL. A gateway request holds the lock for its whole
//!   transfer, waits included (at most about 2 s per wait,
//!   `core::gateway`): the lock is the per-device mutex that keeps one
//!   request at a time on the gateway. A fast mutex rather than an
//!   ERESOURCE because user mappings need <= APC_LEVEL anyway and Wine 8
//!   exports ExAcquireFastMutex (not KeAcquireGuardedMutex).
//! - `StackExtension::remove_lock` (per stack device, `IO_REMOVE_LOCK`):
//!   every IRP of the stack device holds it from entry until after it
//!   completed or passed down its IRP (acquire failure:
//!   STATUS_DELETE_PENDING). REMOVE_DEVICE releases its own hold and waits
//!   (`IoReleaseRemoveLockAndWait`) for all others before releasing BAR 0 and
//!   deleting the devices. Control-device IRPs take none: they never touch
//!   the stack, and the Hca they reach outlives them (until unload).
//!
//! Order: `DEVICES` before a device lock, never the reverse (only the
//! process-exit notification holds both, and takes a device's lock only
//! while that device holds a view of the exiting process). Neither is ever
//! held across IoCallDriver/PoCallDriver, a wait for a lower driver, the
//! remove lock wait, or the PASSIVE_LEVEL-only calls (IoCreateDevice,
//! IoGetDeviceProperty, IoRegisterDeviceInterface,
//! IoSetDeviceInterfaceState, IoCreate/DeleteSymbolicLink,
//! IoInitializeRemoveLock, ObOpenObjectByPointer, ZwSetSecurityObject, the
//! registry): those run with no lock held. No device lock is held while
//! taking another device's.

mod alloc;
mod config;
mod device;
mod dispatch;
mod kernel;
mod log;
mod params;
mod platform;
mod pnp;
mod security;

use crate::core::ViewOwners;
use device::HcaList;
use kernel::{nt_success, FastMutex, FALSE, TRUE};
use log::trace;
use wdk_sys::ntddk::PsSetCreateProcessNotifyRoutineEx;
use wdk_sys::{
    DRIVER_OBJECT, GUID, HANDLE, NTSTATUS, PCUNICODE_STRING, PDRIVER_OBJECT, PEPROCESS, PPS_CREATE_NOTIFY_INFO,
};

#[cfg(not(test))]
extern crate wdk_panic;

/// Pool allocations go through [`alloc::PoolAllocator`], which counts them.
#[cfg(not(test))]
#[global_allocator]
static GLOBAL_ALLOCATOR: alloc::PoolAllocator = alloc::PoolAllocator;

/// The device interface class of mlnx_hca devices; the same GUID is
/// `MLNX_HCA_INTERFACE_GUID` in `include/mlnx_hca_ioctl.h` (a test compares
/// the two texts). {e53efdaf-9526-4702-9128-dc0e4be17d30}
pub(crate) static INTERFACE_GUID: GUID =
    GUID { Data1: 0xe53efdaf, Data2: 0x9526, Data3: 0x4702, Data4: [0x91, 0x28, 0xdc, 0x0e, 0x4b, 0xe1, 0x7d, 0x30] };

/// The driver's HCAs that are there (see "Locking" above): what serves tools
/// for each. Initialised by DriverEntry.
pub(crate) static DEVICES: FastMutex<HcaList> = FastMutex::new(HcaList::new());

/// The removed HCAs, kept until unload: handles to their deleted control
/// devices may still send requests, CLEANUP and CLOSE (`device::Hca`).
pub(crate) static GRAVEYARD: FastMutex<HcaList> = FastMutex::new(HcaList::new());

/// Which processes may own a view of any device: the process-exit
/// notification's first question, asked without a lock. Each device keeps
/// its own as well (`Hca::owners`); the platforms count views in
/// both under their device lock.
pub(crate) static VIEW_OWNERS: ViewOwners = ViewOwners::new();

/// `DriverEntry`: the dispatch table, `AddDevice`, unload and the
/// process-exit notification. IRQL: PASSIVE_LEVEL.
///
/// # Safety
/// Called once by the I/O manager with our driver object.
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(driver: PDRIVER_OBJECT, registry_path: PCUNICODE_STRING) -> NTSTATUS {
    trace!("DriverEntry (legacy-pool {})", u32::from(cfg!(feature = "legacy-pool")));
    // SAFETY: DriverEntry runs before any other entry point of the driver, so
    // nothing uses the device list yet; a static does not move.
    unsafe { DEVICES.init() };
    // SAFETY: as above.
    unsafe { GRAVEYARD.init() };
    // SAFETY: as above, for the Parameters key's path.
    unsafe { params::PARAMETERS_KEY.init() };
    // SAFETY: DriverEntry's own registry path, before any other use of the key.
    unsafe { params::remember_service_key(registry_path) };
    // SAFETY: the I/O manager's driver object, ours to fill in during DriverEntry.
    let driver = unsafe { &mut *driver };
    driver.DriverUnload = Some(driver_unload);
    // One routine for every major function: the core routes each IRP by the
    // device's kind and role (a filter passes on whatever the stack sends).
    for entry in driver.MajorFunction.iter_mut() {
        *entry = Some(dispatch::dispatch);
    }
    // SAFETY: the driver extension of a driver object is always present.
    let extension = unsafe { &mut *driver.DriverExtension };
    extension.AddDevice = Some(device::add_device);
    // The image is linked with /INTEGRITYCHECK, which this routine requires
    // (else STATUS_ACCESS_DENIED).
    // SAFETY: registers a routine of this image; removed in unload.
    let status = unsafe { PsSetCreateProcessNotifyRoutineEx(Some(process_notify), FALSE) };
    if !nt_success(status) {
        trace!("PsSetCreateProcessNotifyRoutineEx failed: {:#x}", status);
        return status;
    }
    wdk_sys::STATUS_SUCCESS
}

/// Unload: every device was removed before (PnP); the notification goes,
/// and the pool count is reported (a leak shows as a non-zero count).
/// IRQL: PASSIVE_LEVEL.
unsafe extern "C" fn driver_unload(_driver: *mut DRIVER_OBJECT) {
    // SAFETY: removes the routine DriverEntry registered; waits for running
    // calls of it to finish.
    let status = unsafe { PsSetCreateProcessNotifyRoutineEx(Some(process_notify), TRUE) };
    if !nt_success(status) {
        trace!("unload: removing the process notification failed: {:#x}", status);
    }
    if !DEVICES.lock().is_empty() {
        trace!("unload: BUG: devices still linked");
    }
    // SAFETY: DriverUnload: no device object of the driver is left.
    unsafe { device::free_graveyard() };
    // The Parameters key's path, the driver's one allocation of its own.
    drop(::core::mem::take(&mut *params::PARAMETERS_KEY.lock()));
    // CAST: a count of allocations.
    trace!("unload: outstanding allocations: {}", alloc::outstanding() as i64);
}

/// The process-exit notification: a process ended; every view it owns, in
/// any handle of any device, is unmapped now (in its own context: this runs
/// in the exiting process's last thread, before its address space is torn
/// down), and its write lease ends. This covers a view whose handle lives on
/// in another process through `DuplicateHandle`.
///
/// It runs for every process that exits anywhere on the system, and must stay
/// short: a process that owns no view passes on the lock-free filters
/// ([`VIEW_OWNERS`], then each device's) without taking a lock that a long
/// operation (a cleanup of many views, a removal) can hold. A filter never
/// answers "no" for a process that owns a view: views of a process are
/// mapped only by its own requests, which all completed before its last
/// thread runs this.
///
/// IRQL: PASSIVE_LEVEL. Takes `DEVICES`, then the lock of each device that
/// may hold a view of the process, in turn.
unsafe extern "C" fn process_notify(_process: PEPROCESS, process_id: HANDLE, create_info: PPS_CREATE_NOTIFY_INFO) {
    if !create_info.is_null() {
        return; // a process is being created
    }
    // CAST: process ids are multiples of 4 below 2^32, carried in a HANDLE.
    let pid = process_id.addr() as u32;
    if !VIEW_OWNERS.may_own(pid) {
        return;
    }
    let devices = DEVICES.lock();
    devices.for_each(|hca| {
        if !hca.owners.may_own(pid) {
            return;
        }
        let unmapped = hca.core.lock().process_exited(pid);
        if unmapped > 0 {
            // CAST: bounded by the per-device quota.
            trace!("process {} exited: {} view(s) unmapped", pid, unmapped as u32);
        }
    });
}
