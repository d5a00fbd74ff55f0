//! `IRP_MJ_PNP`, `IRP_MJ_POWER` and `IRP_MJ_SYSTEM_CONTROL` as a WDM
//! function driver handles them.
//!
//! - `START_DEVICE`: passed down first and waited for (completion routine +
//!   event); then BAR 0 is mapped (a real HCA: the first translated memory
//!   resource; the simulated HCA: pool), the core is started, the device
//!   interface enabled and `\DosDevices\mlnx_hca<N>` created.
//! - `QUERY_STOP` / `QUERY_REMOVE`: the core refuses (`STATUS_DEVICE_BUSY`,
//!   completed here) while a view lives or a handle is open; agreed ones go down.
//! - `CANCEL_STOP` / `CANCEL_REMOVE`: down first, then the core resumes.
//! - `STOP_DEVICE`: the core stops (nothing is mapped after an agreed
//!   query-stop) and BAR 0 is released; then down.
//! - `SURPRISE_REMOVAL`: the core revokes every view of every handle, each
//!   in its owner's process, and the lease; then BAR 0 is released, the
//!   interface disabled and the name deleted; then down.
//! - `REMOVE_DEVICE`: the core refuses everything from now on and revokes
//!   what is left; the remove lock is released and waited for (every IRP in
//!   flight finishes); BAR 0 released; down; then the device is unlinked,
//!   detached and deleted.
//! - anything else: down, untouched. Power and WMI IRPs: down
//!   (`PoStartNextPowerIrp` + `PoCallDriver`; `IoCallDriver`).

use super::device::{self, DeviceExtension};
use super::kernel::{nt_success, Irp, RemoveLockGuard, FALSE};
use super::log::trace;
use super::platform::{Bar, IoSpaceMapping, SimulatedBar, WinPlatform};
use crate::core::simulated::SIM_BARS;
use crate::core::{BarSizes, Device};
use ::core::ptr;
use ::core::sync::atomic::Ordering;
use wdk_sys::ntddk::{KeInitializeEvent, KeSetEvent, KeWaitForSingleObject, PoCallDriver, PoStartNextPowerIrp};
use wdk_sys::{
    _EVENT_TYPE, _KWAIT_REASON, _MODE, CM_PARTIAL_RESOURCE_DESCRIPTOR, CM_RESOURCE_LIST, DEVICE_OBJECT, IRP, KEVENT,
    NTSTATUS, PVOID, STATUS_DEVICE_CONFIGURATION_ERROR, STATUS_MORE_PROCESSING_REQUIRED, STATUS_PENDING,
    STATUS_SUCCESS,
};

/// `IRP_MJ_PNP`. IRQL: PASSIVE_LEVEL, in a PnP manager's system thread, one
/// PnP IRP at a time per device.
pub(crate) unsafe extern "C" fn dispatch_pnp(fdo: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: called by the I/O manager as a dispatch routine.
    let (ext_ptr, ext, irp) = unsafe { DeviceExtension::enter(fdo, irp) };
    let hold = match ext.remove_lock.acquire(irp) {
        Ok(hold) => hold,
        Err(status) => return irp.complete(status, 0),
    };
    match u32::from(irp.stack().MinorFunction) {
        wdk_sys::IRP_MN_START_DEVICE => start(ext, irp),
        wdk_sys::IRP_MN_QUERY_STOP_DEVICE => query(ext, irp, "QUERY_STOP", Device::query_stop),
        wdk_sys::IRP_MN_QUERY_REMOVE_DEVICE => query(ext, irp, "QUERY_REMOVE", Device::query_remove),
        wdk_sys::IRP_MN_CANCEL_STOP_DEVICE => cancel(ext, irp, Device::cancel_stop),
        wdk_sys::IRP_MN_CANCEL_REMOVE_DEVICE => cancel(ext, irp, Device::cancel_remove),
        wdk_sys::IRP_MN_STOP_DEVICE => stop(ext, irp),
        wdk_sys::IRP_MN_SURPRISE_REMOVAL => surprise_removal(ext, irp),
        // SAFETY: the PnP dispatch of this device; `ext` is not used after.
        wdk_sys::IRP_MN_REMOVE_DEVICE => unsafe { remove(ext_ptr, irp, hold) },
        _ => {
            irp.skip();
            irp.call(ext.lower)
        }
    }
}

/// Completion routine of [`forward_and_wait`]: wakes the waiter if the lower
/// driver returned STATUS_PENDING, and keeps the IRP ours.
unsafe extern "C" fn on_lower_done(_device: *mut DEVICE_OBJECT, irp: *mut IRP, event: PVOID) -> NTSTATUS {
    // SAFETY: the IRP we passed down, completed by the lower driver and
    // given back to us by STATUS_MORE_PROCESSING_REQUIRED below.
    let irp = unsafe { Irp::from_raw(irp) };
    if irp.pending_returned() {
        // IRQL: <= DISPATCH_LEVEL (completion routines), fine for KeSetEvent.
        // SAFETY: `event` is the KEVENT on forward_and_wait's stack, which
        // waits for it before returning.
        let _ = unsafe { KeSetEvent(event.cast(), 0, FALSE) };
    }
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Passes the IRP down with a completion routine and waits until the lower
/// drivers are done with it; returns their status. The IRP is ours again
/// afterwards (to complete). IRQL: PASSIVE_LEVEL; no lock held.
fn forward_and_wait(ext: &DeviceExtension, irp: Irp) -> NTSTATUS {
    let mut event = KEVENT::default();
    // SAFETY: initialises our stack event.
    unsafe { KeInitializeEvent(&raw mut event, _EVENT_TYPE::NotificationEvent, FALSE) };
    let status = irp.call_with_completion(ext.lower, Some(on_lower_done), (&raw mut event).cast());
    if status == STATUS_PENDING {
        // SAFETY: waits at PASSIVE_LEVEL for the completion routine to signal
        // the event, which lives until this function returns.
        let _ = unsafe {
            KeWaitForSingleObject(
                (&raw mut event).cast(),
                _KWAIT_REASON::Executive,
                _MODE::KernelMode as i8,
                FALSE,
                ptr::null_mut(),
            )
        };
    }
    irp.status()
}

/// BAR 0 goes back only when no view refers to it any more. The core revokes
/// every view before stop/surprise/remove return; a view left here would be a
/// bug, and unmapping under it would be worse than keeping the BAR mapped.
fn release_bar(device: &mut Device<WinPlatform>) -> Option<Bar> {
    if device.live_views() != 0 {
        // CAST: bounded by the per-device quota.
        trace!("BUG: {} view(s) left; BAR 0 stays mapped", device.live_views() as u32);
        return None;
    }
    device.platform_mut().take_bar()
}

fn start(ext: &DeviceExtension, irp: Irp) -> NTSTATUS {
    let status = forward_and_wait(ext, irp);
    if !nt_success(status) {
        trace!("START_DEVICE: lower driver failed: {:#x}", status);
        return irp.complete(status, 0);
    }
    let (bar, bars) = if ext.simulated {
        match SimulatedBar::new() {
            Ok(bar) => (Bar::Simulated(bar), SIM_BARS),
            Err(status) => return irp.complete(status.raw(), 0),
        }
    } else {
        match hardware_bar(irp) {
            Ok(found) => found,
            Err(status) => return irp.complete(status, 0),
        }
    };
    {
        let mut device = ext.core.lock();
        device.platform_mut().set_bar(bar);
        device.start(bars);
    }
    // IRQL: PASSIVE_LEVEL, no lock held: the interface and the name.
    // SAFETY: the PnP dispatch of this device.
    let pnp = unsafe { ext.pnp() };
    if let Some(interface) = pnp.interface.as_mut() {
        interface.set_enabled(true);
    }
    let instance = ext.instance.load(Ordering::Relaxed);
    if pnp.link.is_none() {
        match device::SymbolicLink::create(instance, &pnp.pdo_name) {
            Ok(link) => pnp.link = Some(link),
            Err(status) => trace!("IoCreateSymbolicLink(mlnx_hca{}) failed: {:#x}", instance, status),
        }
    }
    trace!(
        "START_DEVICE mlnx_hca{}: BAR sizes {:#x} {:#x} {:#x} (simulated {})",
        instance,
        bars.bar0,
        bars.bar1,
        bars.bar2,
        u32::from(ext.simulated)
    );
    irp.complete(STATUS_SUCCESS, 0)
}

/// The translated memory resources, in BAR order (the PCI bus driver lists
/// them so): BAR 0 is mapped, the sizes of BARs 0-2 reported. A BAR larger
/// than 4 GiB is reported as 0xFFFFFFFF (BAR 1 and 2 are never mapped; a BAR 0
/// that large fails the start).
fn hardware_bar(irp: Irp) -> Result<(Bar, BarSizes), NTSTATUS> {
    // SAFETY: IRP_MN_START_DEVICE: `StartDevice` is the live member.
    let resources = unsafe { irp.stack().Parameters.StartDevice }.AllocatedResourcesTranslated;
    let mut memory: [(i64, u64); 3] = [(0, 0); 3];
    let mut found = 0;
    if !resources.is_null() {
        // SAFETY: the PnP manager's resource list, valid during the IRP.
        for_each_descriptor(unsafe { &*resources }, |descriptor| {
            if found < memory.len() {
                if let Some(range) = memory_range(descriptor) {
                    memory[found] = range;
                    found += 1;
                }
            }
        });
    }
    if found == 0 {
        trace!("START_DEVICE: no memory resource (BAR 0) assigned");
        return Err(STATUS_DEVICE_CONFIGURATION_ERROR);
    }
    let size = |n: usize| u32::try_from(memory[n].1).unwrap_or(u32::MAX);
    let bars = BarSizes { bar0: size(0), bar1: size(1), bar2: size(2) };
    let bar0 = usize::try_from(memory[0].1).ok().filter(|&len| u32::try_from(len).is_ok());
    let Some(len) = bar0 else {
        return Err(STATUS_DEVICE_CONFIGURATION_ERROR);
    };
    match IoSpaceMapping::new(memory[0].0, len) {
        Ok(mapping) => Ok((Bar::Hardware(mapping), bars)),
        Err(status) => {
            trace!("START_DEVICE: mapping BAR 0 failed");
            Err(status.raw())
        }
    }
}

/// Calls `f` for every partial descriptor of every full descriptor. The list
/// is variable-length: each full descriptor is followed directly by the
/// next, after its own partial descriptors.
fn for_each_descriptor(list: &CM_RESOURCE_LIST, mut f: impl FnMut(&CM_PARTIAL_RESOURCE_DESCRIPTOR)) {
    let mut full = list.List.as_ptr();
    for _ in 0..list.Count {
        // SAFETY: within the list the PnP manager built: `Count` full
        // descriptors, laid out one after the other.
        let descriptor = unsafe { &*full };
        let partials = &descriptor.PartialResourceList;
        let first = partials.PartialDescriptors.as_ptr();
        for i in 0..partials.Count as usize {
            // SAFETY: `Count` partial descriptors follow one another.
            f(unsafe { &*first.wrapping_add(i) });
        }
        // The next full descriptor starts after the last partial one.
        full = first.wrapping_add(partials.Count as usize).cast();
    }
}

/// `(start, length)` of a memory descriptor (`CmResourceTypeMemory`, or
/// `CmResourceTypeMemoryLarge` with its scaled length).
fn memory_range(descriptor: &CM_PARTIAL_RESOURCE_DESCRIPTOR) -> Option<(i64, u64)> {
    let kind = u32::from(descriptor.Type);
    if kind == wdk_sys::CmResourceTypeMemory {
        // SAFETY: a memory descriptor: `Memory` is the live member.
        let memory = unsafe { descriptor.u.Memory };
        // SAFETY: PHYSICAL_ADDRESS is a LARGE_INTEGER; QuadPart is all of it.
        let start = unsafe { memory.Start.QuadPart };
        return Some((start, u64::from(memory.Length)));
    }
    if kind == wdk_sys::CmResourceTypeMemoryLarge {
        let flags = u32::from(descriptor.Flags);
        // The variant the flags name is the live member of the union.
        let (start, length) = if flags & wdk_sys::CM_RESOURCE_MEMORY_LARGE_40 != 0 {
            // SAFETY: see above.
            let m = unsafe { descriptor.u.Memory40 };
            (m.Start, u64::from(m.Length40) << 8)
        } else if flags & wdk_sys::CM_RESOURCE_MEMORY_LARGE_48 != 0 {
            // SAFETY: see above.
            let m = unsafe { descriptor.u.Memory48 };
            (m.Start, u64::from(m.Length48) << 16)
        } else if flags & wdk_sys::CM_RESOURCE_MEMORY_LARGE_64 != 0 {
            // SAFETY: see above.
            let m = unsafe { descriptor.u.Memory64 };
            (m.Start, u64::from(m.Length64) << 32)
        } else {
            return None;
        };
        // SAFETY: PHYSICAL_ADDRESS is a LARGE_INTEGER; QuadPart is all of it.
        return Some((unsafe { start.QuadPart }, length));
    }
    None
}

/// QUERY_STOP / QUERY_REMOVE: asks the core; a refusal completes the IRP
/// here, an agreement goes down (a lower driver may still refuse).
fn query(
    ext: &DeviceExtension,
    irp: Irp,
    what: &str,
    ask: fn(&mut Device<WinPlatform>) -> crate::status::Result<()>,
) -> NTSTATUS {
    let answer = ask(&mut ext.core.lock());
    match answer {
        Ok(()) => {
            irp.set_status(STATUS_SUCCESS, 0);
            irp.skip();
            irp.call(ext.lower)
        }
        Err(status) => {
            let instance = ext.instance.load(Ordering::Relaxed);
            trace!("{} mlnx_hca{} refused: {:#x} (views or handles open)", what, instance, status.raw());
            irp.complete(status.raw(), 0)
        }
    }
}

/// CANCEL_STOP / CANCEL_REMOVE: the lower drivers first, then the core.
fn cancel(ext: &DeviceExtension, irp: Irp, resume: fn(&mut Device<WinPlatform>)) -> NTSTATUS {
    irp.set_status(STATUS_SUCCESS, 0);
    let status = forward_and_wait(ext, irp);
    resume(&mut ext.core.lock());
    irp.complete(status, 0)
}

fn stop(ext: &DeviceExtension, irp: Irp) -> NTSTATUS {
    let bar = {
        let mut device = ext.core.lock();
        device.stop();
        release_bar(&mut device)
    };
    drop(bar);
    trace!("STOP_DEVICE mlnx_hca{}", ext.instance.load(Ordering::Relaxed));
    irp.set_status(STATUS_SUCCESS, 0);
    irp.skip();
    irp.call(ext.lower)
}

/// Turns the names off: the interface disabled, the link deleted. IRQL:
/// PASSIVE_LEVEL, no lock held.
fn hide(ext: &DeviceExtension) {
    // SAFETY: the PnP dispatch of this device.
    let pnp = unsafe { ext.pnp() };
    if let Some(interface) = pnp.interface.as_mut() {
        interface.set_enabled(false);
    }
    pnp.link = None;
}

fn surprise_removal(ext: &DeviceExtension, irp: Irp) -> NTSTATUS {
    let (revoked, bar) = {
        let mut device = ext.core.lock();
        let revoked = device.surprise_remove();
        (revoked, release_bar(&mut device))
    };
    drop(bar);
    hide(ext);
    // CAST: bounded by the per-device quota.
    trace!("SURPRISE_REMOVAL mlnx_hca{}: {} view(s) revoked", ext.instance.load(Ordering::Relaxed), revoked as u32);
    irp.set_status(STATUS_SUCCESS, 0);
    irp.skip();
    irp.call(ext.lower)
}

/// REMOVE_DEVICE.
///
/// # Safety
/// The PnP dispatch of this device, holding `hold`; `ext_ptr` is not used by
/// the caller afterwards (the device is deleted here).
unsafe fn remove(ext_ptr: *mut DeviceExtension, irp: Irp, hold: RemoveLockGuard<'_>) -> NTSTATUS {
    // SAFETY: (caller) alive until `destroy` below; not used after it.
    let ext = unsafe { &*ext_ptr };
    let instance = ext.instance.load(Ordering::Relaxed);
    // From here the core answers STATUS_DELETE_PENDING and maps nothing.
    let revoked = ext.core.lock().remove();
    hide(ext);
    // IRQL: PASSIVE_LEVEL, no lock held: waits for every IRP in flight.
    hold.release_and_wait();
    let (more, contexts, bar) = {
        let mut device = ext.core.lock();
        let more = device.remove();
        (more, device.contexts(), release_bar(&mut device))
    };
    drop(bar);
    // CAST: bounded by the quotas / open handles.
    trace!(
        "REMOVE_DEVICE mlnx_hca{}: {} view(s) revoked, {} context(s) left",
        instance,
        (revoked + more) as u32,
        contexts as u32
    );
    irp.set_status(STATUS_SUCCESS, 0);
    irp.skip();
    let status = irp.call(ext.lower);
    // SAFETY: the wait above is over, nothing is mapped, and `ext` is not
    // used after this.
    unsafe { device::destroy(ext_ptr) };
    status
}

/// `IRP_MJ_POWER`: passed down (`PoStartNextPowerIrp` + `PoCallDriver`, as on
/// every Windows version; since Vista the former is a no-op). IRQL:
/// PASSIVE_LEVEL (DO_POWER_PAGABLE).
pub(crate) unsafe extern "C" fn dispatch_power(fdo: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: called by the I/O manager as a dispatch routine.
    let (_, ext, irp) = unsafe { DeviceExtension::enter(fdo, irp) };
    let _hold = match ext.remove_lock.acquire(irp) {
        Ok(hold) => hold,
        Err(status) => {
            // SAFETY: a power IRP of ours.
            unsafe { PoStartNextPowerIrp(irp.raw()) };
            return irp.complete(status, 0);
        }
    };
    // SAFETY: a power IRP of ours, about to go down.
    unsafe { PoStartNextPowerIrp(irp.raw()) };
    irp.skip();
    // SAFETY: passes the IRP to the device we attached to (see Irp::call).
    unsafe { PoCallDriver(ext.lower, irp.raw()) }
}

/// `IRP_MJ_SYSTEM_CONTROL` (WMI): not a WMI provider, so passed down.
pub(crate) unsafe extern "C" fn dispatch_system_control(fdo: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: called by the I/O manager as a dispatch routine.
    let (_, ext, irp) = unsafe { DeviceExtension::enter(fdo, irp) };
    let _hold = match ext.remove_lock.acquire(irp) {
        Ok(hold) => hold,
        Err(status) => return irp.complete(status, 0),
    };
    irp.skip();
    irp.call(ext.lower)
}
