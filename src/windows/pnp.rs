//! `IRP_MJ_PNP`, `IRP_MJ_POWER` and `IRP_MJ_SYSTEM_CONTROL` of a stack
//! device, in both roles (`core::hca::Role`): the function driver of the
//! root test device or a flash-recovery HCA, or a lower filter below an HCA's
//! own driver. A filter passes every IRP down untouched and never fails one
//! the stack needs (a start whose resources it cannot use just leaves it
//! serving nothing); it acts only on what concerns its tools' views.
//!
//! - `START_DEVICE`: passed down first and waited for (completion routine +
//!   event); then, up to ConnectX-3 Pro, BAR 0 is mapped (a real HCA:
//!   cross-checked raw and translated resources; the simulated ConnectX-3:
//!   pool) and the hardware id read from it; from Connect-IB and ConnectX-4
//!   on, BAR 0 is left alone and the configuration space is taken instead
//!   (a real HCA: the bus interface asked of the stack below; the simulated
//!   ConnectX-4: emulated in pool) and the core finds and probes the
//!   gateway. At the first start the HCA's control device is made
//!   (`device::Hca`); its name is linked and the device interface enabled.
//! - `QUERY_STOP` / `QUERY_REMOVE`: the core refuses (`STATUS_DEVICE_BUSY`,
//!   completed here) while a view lives or a handle of the control device is
//!   open, so the HCA's driver cannot be stopped or removed under a running
//!   burn; agreed ones go down.
//! - `CANCEL_STOP` / `CANCEL_REMOVE`: down first, then the core resumes.
//! - `STOP_DEVICE`: the core stops (nothing is mapped after an agreed
//!   query-stop) and BAR 0 or the bus interface is released; then down.
//! - `SURPRISE_REMOVAL`: the core revokes every view of every handle, each
//!   in its owner's process, the tool locks (unwritten: the device is gone)
//!   and the lease; then BAR 0 or the bus interface is released, the
//!   interface disabled and the name deleted; then down.
//! - `REMOVE_DEVICE`: the core refuses everything from now on and revokes
//!   what is left; the remove lock is released and waited for (every stack
//!   IRP in flight finishes); BAR 0 or the bus interface released; the Hca retired (its control
//!   device deleted; handles still open keep reaching it until they close);
//!   down; then the stack device is detached and deleted.
//! - anything else: down, untouched. Power: the function driver as the
//!   power policy owner; a filter passes it down. (WMI goes down in
//!   `dispatch`.)

use super::config::{BusInterface, ConfigAccess, EmulatedHca};
use super::device::{self, Hca, StackExtension};
use super::kernel::{self, nt_success, Irp, RemoveLockGuard, FALSE};
use super::log::trace;
use super::params;
use super::platform::{Bar, IoSpaceMapping, SimulatedBar, WinPlatform};
use crate::core::hca::CrSpace;
use crate::core::resources::{self, MemoryRange};
use crate::core::simulated::{SIM4_BARS, SIM_BARS};
use crate::core::{BarSizes, Device, Identity};
use ::core::ptr::{self, NonNull};
use ::core::sync::atomic::Ordering;
use wdk_sys::ntddk::{KeSetEvent, PoCallDriver, PoRequestPowerIrp, PoSetPowerState, PoStartNextPowerIrp};
use wdk_sys::{
    _DEVICE_POWER_STATE, _POWER_STATE_TYPE, _SYSTEM_POWER_STATE, CM_PARTIAL_RESOURCE_DESCRIPTOR, CM_RESOURCE_LIST,
    DEVICE_OBJECT, IO_STATUS_BLOCK, IRP, KEVENT, NTSTATUS, POWER_STATE, PREQUEST_POWER_COMPLETE, PVOID,
    STATUS_DEVICE_CONFIGURATION_ERROR, STATUS_MORE_PROCESSING_REQUIRED, STATUS_PENDING, STATUS_SUCCESS,
    SYSTEM_POWER_STATE,
};

/// `IRP_MJ_PNP` of a stack device. IRQL: PASSIVE_LEVEL, in a PnP manager's
/// system thread, one PnP IRP at a time per device.
///
/// # Safety
/// `ext_ptr`/`ext` are the stack device's extension the IRP was dispatched
/// to; REMOVE_DEVICE deletes it, so the caller does not use them after.
pub(crate) unsafe fn pnp(ext_ptr: *mut StackExtension, ext: &StackExtension, irp: Irp) -> NTSTATUS {
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
        // SAFETY: (caller) the PnP dispatch of this device; `ext` is not used after.
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
fn forward_and_wait(ext: &StackExtension, irp: Irp) -> NTSTATUS {
    let mut event = KEVENT::default();
    kernel::init_event(&mut event);
    let status = irp.call_with_completion(ext.lower, Some(on_lower_done), (&raw mut event).cast());
    if status == STATUS_PENDING {
        // The completion routine signals the event, which lives until this
        // function returns.
        kernel::wait_event(&mut event);
    }
    irp.status()
}

/// What a stopped or removed device gives back, released (dropped) once
/// the device lock is no longer held.
type Released = (Option<Bar>, Option<ConfigAccess>);

/// BAR 0 goes back only when no view refers to it any more. The core revokes
/// every view before stop/surprise/remove return; a view left here would be a
/// bug, and unmapping under it would be worse than keeping the BAR mapped.
/// The configuration space always goes back: the core reaches it only under
/// the device lock, which the caller holds, and a stopped device makes no
/// request.
fn release(device: &mut Device<WinPlatform>) -> Released {
    let config = device.platform_mut().take_config();
    if device.live_views() != 0 {
        // CAST: bounded by the per-device quota.
        trace!("BUG: {} view(s) left; BAR 0 stays mapped", device.live_views() as u32);
        return (None, config);
    }
    (device.platform_mut().take_bar(), config)
}

/// The stack's Hca, if it has one.
fn hca_of(ext: &StackExtension) -> Option<&Hca> {
    let hca = NonNull::new(ext.hca.load(Ordering::Acquire))?;
    // SAFETY: an Hca lives until unload (device::Hca).
    Some(unsafe { hca.as_ref() })
}

/// What serves tools on a started device.
enum Served {
    /// BAR 0 is CR space: mapped (ConnectX-3 and older).
    Bar(Bar),
    /// The configuration-space gateway (ConnectX-4 and later; BAR 0 is
    /// never touched).
    Gateway(ConfigAccess),
}

/// START_DEVICE. The function driver fails a start it cannot serve; a
/// filter completes the start with the lower drivers' status whatever it
/// finds, and serves nothing when it cannot.
fn start(ext: &StackExtension, irp: Irp) -> NTSTATUS {
    let status = forward_and_wait(ext, irp);
    if !nt_success(status) {
        trace!("START_DEVICE: lower driver failed: {:#x}", status);
        return irp.complete(status, 0);
    }
    let Some(known) = ext.role.hca() else {
        trace!("START_DEVICE: an HCA the driver does not know: no control device");
        return irp.complete(status, 0);
    };
    let simulated = ext.role.simulated();
    let failed = |why: NTSTATUS| -> NTSTATUS {
        if ext.role.is_function() {
            irp.complete(why, 0)
        } else {
            trace!("START_DEVICE: the filter serves nothing ({:#x}); the HCA starts as it would without it", why);
            irp.complete(status, 0)
        }
    };
    // IRQL: PASSIVE_LEVEL, no lock held: BAR 0 mapped, or the bus
    // interface asked of the stack below.
    let (served, bars) = match (known.cr_space, simulated) {
        (CrSpace::Bar0, true) => match SimulatedBar::new() {
            Ok(bar) => (Served::Bar(Bar::Simulated(bar)), SIM_BARS),
            Err(why) => return failed(why.raw()),
        },
        (CrSpace::Bar0, false) => match hardware_bar(irp) {
            Ok((bar, bars)) => (Served::Bar(bar), bars),
            Err(why) => return failed(why),
        },
        (CrSpace::Gateway, true) => match EmulatedHca::new() {
            Ok(hca) => (Served::Gateway(ConfigAccess::Emulated(hca)), SIM4_BARS),
            Err(why) => return failed(why.raw()),
        },
        (CrSpace::Gateway, false) => match BusInterface::query(ext.lower) {
            Ok(bus) => (Served::Gateway(ConfigAccess::Bus(bus)), bar_sizes(irp)),
            Err(why) => {
                trace!("START_DEVICE: no bus interface for the configuration space: {:#x}", why);
                return failed(why);
            }
        },
    };
    // IRQL: PASSIVE_LEVEL, no lock held: the control device, its name and the interface.
    let hca = match NonNull::new(ext.hca.load(Ordering::Acquire)) {
        Some(hca) => hca,
        None => {
            let descriptor = super::security::descriptor_for_start();
            let Ok(descriptor) = descriptor else { return failed(wdk_sys::STATUS_INSUFFICIENT_RESOURCES) };
            // SAFETY: the stack device's driver object is ours.
            let driver = unsafe { (*ext.device).DriverObject };
            match Hca::create(driver, &descriptor) {
                Ok(hca) => {
                    ext.hca.store(hca.as_ptr(), Ordering::Release);
                    hca
                }
                Err(why) => return failed(why),
            }
        }
    };
    // SAFETY: an Hca lives until unload.
    let hca_ref = unsafe { hca.as_ref() };
    let pci_device_id = u32::from(known.device_id);
    // IRQL: PASSIVE_LEVEL, no lock held: the registry.
    let may_keep_awake = params::keep_system_awake();
    let (started, unused) = {
        let mut device = hca_ref.core.lock();
        device.platform_mut().set_may_keep_awake(may_keep_awake);
        match served {
            Served::Bar(bar) => {
                device.platform_mut().set_bar(bar);
                let hw_id = device.platform().bar_hw_id();
                device.set_identity(Identity { pci_device_id, hw_id });
                device.start(bars);
                (Ok(()), None)
            }
            Served::Gateway(config) => {
                device.platform_mut().set_config(config);
                // The gateway is found, probed and its hardware id read
                // here, under the device lock (APC_LEVEL: GetBusData and
                // SetBusData allow <= DISPATCH_LEVEL).
                match device.start_gateway(bars, pci_device_id) {
                    Ok(_) => (Ok(()), None),
                    Err(why) => (Err(why), device.platform_mut().take_config()),
                }
            }
        }
    };
    drop(unused);
    if let Err(why) = started {
        trace!("START_DEVICE mlnx_hca{}: no usable gateway ({:#x})", hca_ref.instance, why.raw());
        return failed(why.raw());
    }
    name(ext, hca);
    trace!(
        "START_DEVICE mlnx_hca{}: {:04x} BAR sizes {:#x} {:#x} {:#x} (simulated {}, filter {}, gateway {})",
        hca_ref.instance,
        pci_device_id,
        bars.bar0,
        bars.bar1,
        bars.bar2,
        u32::from(simulated),
        u32::from(!ext.role.is_function()),
        u32::from(known.cr_space == CrSpace::Gateway)
    );
    irp.complete(status, 0)
}

/// Makes the control device reachable: `\DosDevices\mlnx_hca<N>`, its name
/// in the device's hardware key, and the device interface, enabled. IRQL:
/// PASSIVE_LEVEL, no lock held.
fn name(ext: &StackExtension, hca: NonNull<Hca>) {
    // SAFETY: an Hca lives until unload.
    let instance = unsafe { hca.as_ref() }.instance;
    // SAFETY: the PnP dispatch of this device.
    let pnp = unsafe { ext.pnp() };
    if pnp.link.is_none() {
        match device::SymbolicLink::create(instance) {
            Ok(link) => pnp.link = Some(link),
            Err(status) => trace!("IoCreateSymbolicLink(mlnx_hca{}) failed: {:#x}", instance, status),
        }
    }
    device::publish_control_name(ext.pdo, Some(instance));
    if pnp.interface.is_none() {
        match device::DeviceInterface::register(ext.pdo) {
            Ok(interface) => pnp.interface = Some(interface),
            Err(status) => trace!("IoRegisterDeviceInterface failed: {:#x}", status),
        }
    }
    if let Some(interface) = pnp.interface.as_mut() {
        interface.set_enabled(true);
    }
}

/// BAR 0 from the start request's memory resources, raw and translated,
/// cross-checked by the core ([`resources::bar0`]: the same resources in
/// both lists, BAR 0 shaped as a PCI BAR is); the sizes of BARs 0-2
/// reported (a BAR larger than 4 GiB as 0xFFFFFFFF; BAR 1 and 2 are never
/// mapped). A disagreement fails the start with a log line saying which.
fn hardware_bar(irp: Irp) -> Result<(Bar, BarSizes), NTSTATUS> {
    // SAFETY: IRP_MN_START_DEVICE: `StartDevice` is the live member.
    let start = unsafe { irp.stack().Parameters.StartDevice };
    let raw = memory_ranges(start.AllocatedResources);
    let translated = memory_ranges(start.AllocatedResourcesTranslated);
    let (raw, translated) = (&raw.0[..raw.1], &translated.0[..translated.1]);
    let bar0 = match resources::bar0(raw, translated) {
        Ok(bar0) => bar0,
        Err(why) => {
            trace!(
                "START_DEVICE: no usable BAR 0 ({:?}): raw {:x?}, translated {:x?}; the start fails",
                why,
                raw,
                translated
            );
            return Err(STATUS_DEVICE_CONFIGURATION_ERROR);
        }
    };
    let bars = sizes_of(translated);
    // CAST: the core checked the length fits 32 bits; the start is a physical address below 2^63.
    match IoSpaceMapping::new(bar0.start as i64, bar0.len as usize) {
        Ok(mapping) => Ok((Bar::Hardware(mapping), bars)),
        Err(status) => {
            trace!("START_DEVICE: mapping BAR 0 failed");
            Err(status.raw())
        }
    }
}

/// The sizes of BARs 0-2 from the translated memory resources (a BAR larger
/// than 4 GiB as 0xFFFFFFFF).
fn sizes_of(translated: &[MemoryRange]) -> BarSizes {
    let size = |n: usize| translated.get(n).map_or(0, |r| u32::try_from(r.len).unwrap_or(u32::MAX));
    BarSizes { bar0: size(0), bar1: size(1), bar2: size(2) }
}

/// The BAR sizes a gateway device reports (`FW_QUERY_CRSPACE`): its
/// resources, none of them mapped.
fn bar_sizes(irp: Irp) -> BarSizes {
    // SAFETY: IRP_MN_START_DEVICE: `StartDevice` is the live member.
    let start = unsafe { irp.stack().Parameters.StartDevice };
    let translated = memory_ranges(start.AllocatedResourcesTranslated);
    sizes_of(&translated.0[..translated.1])
}

/// The first memory resources of a resource list, in order (up to 6, the
/// BARs of a PCI function).
fn memory_ranges(list: *const CM_RESOURCE_LIST) -> ([MemoryRange; 6], usize) {
    let mut ranges = [MemoryRange { start: 0, len: 0 }; 6];
    let mut found = 0;
    if !list.is_null() {
        // SAFETY: the PnP manager's resource list, valid during the IRP.
        for_each_descriptor(unsafe { &*list }, |descriptor| {
            if let (Some(slot), Some((start, len))) = (ranges.get_mut(found), memory_range(descriptor)) {
                // CAST: a physical address, never negative.
                *slot = MemoryRange { start: start as u64, len };
                found += 1;
            }
        });
    }
    (ranges, found)
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

/// QUERY_STOP / QUERY_REMOVE: asks the core (a stack that serves nothing
/// agrees); a refusal completes the IRP here, an agreement goes down (a lower
/// driver may still refuse).
fn query(
    ext: &StackExtension,
    irp: Irp,
    what: &str,
    ask: fn(&mut Device<WinPlatform>) -> crate::status::Result<()>,
) -> NTSTATUS {
    let answer = hca_of(ext).map_or(Ok(()), |hca| ask(&mut hca.core.lock()));
    match answer {
        Ok(()) => {
            irp.set_status(STATUS_SUCCESS, 0);
            irp.skip();
            irp.call(ext.lower)
        }
        Err(status) => {
            let instance = hca_of(ext).map_or(u32::MAX, |hca| hca.instance);
            trace!("{} mlnx_hca{} refused: {:#x} (views or handles open)", what, instance, status.raw());
            irp.complete(status.raw(), 0)
        }
    }
}

/// CANCEL_STOP / CANCEL_REMOVE: the lower drivers first, then the core.
fn cancel(ext: &StackExtension, irp: Irp, resume: fn(&mut Device<WinPlatform>)) -> NTSTATUS {
    irp.set_status(STATUS_SUCCESS, 0);
    let status = forward_and_wait(ext, irp);
    if let Some(hca) = hca_of(ext) {
        resume(&mut hca.core.lock());
    }
    irp.complete(status, 0)
}

fn stop(ext: &StackExtension, irp: Irp) -> NTSTATUS {
    if let Some(hca) = hca_of(ext) {
        let released = {
            let mut device = hca.core.lock();
            device.stop();
            release(&mut device)
        };
        drop(released);
        trace!("STOP_DEVICE mlnx_hca{}", hca.instance);
    }
    irp.set_status(STATUS_SUCCESS, 0);
    irp.skip();
    irp.call(ext.lower)
}

/// Turns the names off: the interface disabled, the link deleted: new
/// opens cannot find the control device. IRQL: PASSIVE_LEVEL, no lock held.
fn hide(ext: &StackExtension) {
    // SAFETY: the PnP dispatch of this device.
    let pnp = unsafe { ext.pnp() };
    if let Some(interface) = pnp.interface.as_mut() {
        interface.set_enabled(false);
    }
    if pnp.link.take().is_some() {
        device::publish_control_name(ext.pdo, None);
    }
}

fn surprise_removal(ext: &StackExtension, irp: Irp) -> NTSTATUS {
    if let Some(hca) = hca_of(ext) {
        let (revoked, released) = {
            let mut device = hca.core.lock();
            let revoked = device.surprise_remove();
            (revoked, release(&mut device))
        };
        drop(released);
        hide(ext);
        // CAST: bounded by the per-device quota.
        trace!("SURPRISE_REMOVAL mlnx_hca{}: {} view(s) revoked", hca.instance, revoked as u32);
    }
    irp.set_status(STATUS_SUCCESS, 0);
    irp.skip();
    irp.call(ext.lower)
}

/// REMOVE_DEVICE.
///
/// # Safety
/// The PnP dispatch of this device, holding `hold`; `ext_ptr` is not used by
/// the caller afterwards (the device is deleted here).
unsafe fn remove(ext_ptr: *mut StackExtension, irp: Irp, hold: RemoveLockGuard<'_>) -> NTSTATUS {
    // SAFETY: (caller) alive until `destroy` below; not used after it.
    let ext = unsafe { &*ext_ptr };
    // From here the core answers STATUS_DELETE_PENDING and maps nothing.
    let revoked = hca_of(ext).map_or(0, |hca| hca.core.lock().remove());
    hide(ext);
    // IRQL: PASSIVE_LEVEL, no lock held: waits for every stack IRP in flight.
    hold.release_and_wait();
    if let Some(hca) = NonNull::new(ext.hca.swap(ptr::null_mut(), Ordering::AcqRel)) {
        // SAFETY: an Hca lives until unload.
        let hca_ref = unsafe { hca.as_ref() };
        let (more, contexts, released) = {
            let mut device = hca_ref.core.lock();
            let more = device.remove();
            (more, device.contexts(), release(&mut device))
        };
        drop(released);
        // CAST: bounded by the quotas / open handles.
        trace!(
            "REMOVE_DEVICE mlnx_hca{}: {} view(s) revoked, {} handle context(s) left to close",
            hca_ref.instance,
            (revoked + more) as u32,
            contexts as u32
        );
        // SAFETY: once; the stack no longer refers to it (taken above).
        unsafe { Hca::retire(hca) };
    }
    irp.set_status(STATUS_SUCCESS, 0);
    irp.skip();
    let status = irp.call(ext.lower);
    // SAFETY: the wait above is over, the Hca retired, nothing mapped, and
    // `ext` is not used after this.
    unsafe { device::destroy(ext_ptr) };
    status
}

/// `IRP_MJ_POWER` of a stack device. The function driver is the power policy
/// owner of its device (the root test device, an HCA in flash-recovery
/// mode); a filter passes every power IRP down untouched, but for the one
/// refusal both roles make:
///
/// - system `QUERY_POWER` for a sleeping or hibernating state: refused
///   (`STATUS_DEVICE_BUSY`) while the write lease is held, so that a firmware
///   write is not cut in half; otherwise down. (Since Windows Vista sleep is
///   a critical transition: the power manager may sleep all the same. The
///   lease also keeps a `PoRegisterSystemState` busy state, see the platform.)
/// - system `SET_POWER`: down; once the lower drivers are done, the device
///   power IRP that matches is requested from the PDO (D0 for S0, D3 for any
///   other state) and the system IRP completes when it has (for S0 at once,
///   as Microsoft recommends).
/// - device `SET_POWER`: to D0, down first and `PoSetPowerState` once the
///   lower drivers are done; to a lower state, `PoSetPowerState` and down.
///   (These two: the function driver only.)
/// - anything else: down.
///
/// IRQL: PASSIVE_LEVEL (DO_POWER_PAGABLE); the completion routines and the
/// power callback at <= DISPATCH_LEVEL. An IRP handled asynchronously keeps
/// its remove-lock hold until it completes.
pub(crate) fn power(ext_ptr: *mut StackExtension, ext: &StackExtension, irp: Irp) -> NTSTATUS {
    let hold = match ext.remove_lock.acquire(irp) {
        Ok(hold) => hold,
        Err(status) => {
            // SAFETY: a power IRP of ours.
            unsafe { PoStartNextPowerIrp(irp.raw()) };
            return irp.complete(status, 0);
        }
    };
    let stack = irp.stack();
    // SAFETY: IRP_MJ_POWER: `Power` is the live member.
    let power = unsafe { stack.Parameters.Power };
    let function = ext.role.is_function();
    match (u32::from(stack.MinorFunction), power.Type) {
        (wdk_sys::IRP_MN_QUERY_POWER, _POWER_STATE_TYPE::SystemPowerState) => {
            // SAFETY: a system power IRP: `SystemState` is the live member.
            let system = unsafe { power.State.SystemState };
            if is_sleep(system) {
                if let Some(Err(status)) = hca_of(ext).map(|hca| hca.core.lock().query_system_sleep()) {
                    trace!("QUERY_POWER S{}: refused, a firmware write may be under way", system - 1);
                    // SAFETY: a power IRP of ours, completed here.
                    unsafe { PoStartNextPowerIrp(irp.raw()) };
                    return irp.complete(status.raw(), 0);
                }
            }
            pass_power_down(ext, irp)
        }
        (wdk_sys::IRP_MN_SET_POWER, _POWER_STATE_TYPE::SystemPowerState) if function => {
            irp.mark_pending();
            hold.keep();
            let _ = irp.call_with_completion(ext.lower, Some(on_system_power_set), ext_ptr.cast());
            STATUS_PENDING
        }
        (wdk_sys::IRP_MN_SET_POWER, _POWER_STATE_TYPE::DevicePowerState) if function => {
            // SAFETY: a device power IRP: `DeviceState` is the live member.
            let state = unsafe { power.State.DeviceState };
            if state == _DEVICE_POWER_STATE::PowerDeviceD0 {
                irp.mark_pending();
                hold.keep();
                let _ = irp.call_with_completion(ext.lower, Some(on_device_powered_up), ext_ptr.cast());
                return STATUS_PENDING;
            }
            let state = POWER_STATE { DeviceState: state };
            // SAFETY: our FDO's new state, recorded before it takes effect below.
            let _ = unsafe { PoSetPowerState(ext.device, _POWER_STATE_TYPE::DevicePowerState, state) };
            pass_power_down(ext, irp)
        }
        // A filter passes everything else down untouched (the HCA's own
        // driver owns its power policy), as the function driver does what
        // is not above.
        _ => pass_power_down(ext, irp),
    }
}

/// S1-S4: the system sleeps or hibernates (not S0, not shutdown).
fn is_sleep(state: SYSTEM_POWER_STATE) -> bool {
    (_SYSTEM_POWER_STATE::PowerSystemSleeping1..=_SYSTEM_POWER_STATE::PowerSystemHibernate).contains(&state)
}

/// Passes a power IRP down untouched (`PoStartNextPowerIrp` first, as
/// before Vista; a no-op since).
fn pass_power_down(ext: &StackExtension, irp: Irp) -> NTSTATUS {
    // SAFETY: a power IRP of ours, about to go down.
    unsafe { PoStartNextPowerIrp(irp.raw()) };
    irp.skip();
    // SAFETY: passes the IRP to the device we attached to (see Irp::call).
    unsafe { PoCallDriver(ext.lower, irp.raw()) }
}

/// The extension of the device whose stack location is current in `irp`
/// (in our completion routines, and in the power callback for a system IRP
/// held there, the current location is ours).
///
/// # Safety
/// `irp` is an IRP of one of our devices, at our stack location.
unsafe fn extension_of(irp: Irp) -> *mut StackExtension {
    // SAFETY: (caller) our FDO, alive while its IRP is: its extension is a StackExtension.
    unsafe { (*irp.stack().DeviceObject).DeviceExtension.cast() }
}

/// A system `SET_POWER` came back up the stack: ask for the device power
/// IRP that matches (the system IRP completes in [`on_device_power_set`]).
unsafe extern "C" fn on_system_power_set(_fdo: *mut DEVICE_OBJECT, raw: *mut IRP, context: PVOID) -> NTSTATUS {
    // SAFETY: the IRP dispatch_power passed down, back at our location.
    let irp = unsafe { Irp::from_raw(raw) };
    // SAFETY: the extension dispatch_power passed as the context; alive while
    // the IRP holds its remove lock.
    let ext = unsafe { &*context.cast::<StackExtension>() };
    // SAFETY: IRP_MJ_POWER: `Power` is the live member.
    let power = unsafe { irp.stack().Parameters.Power };
    // SAFETY: a system power IRP: `SystemState` is the live member.
    let system = unsafe { power.State.SystemState };
    if !nt_success(irp.status()) {
        return finish_system_irp(ext, irp, None);
    }
    let working = system == _SYSTEM_POWER_STATE::PowerSystemWorking;
    let device = if working { _DEVICE_POWER_STATE::PowerDeviceD0 } else { _DEVICE_POWER_STATE::PowerDeviceD3 };
    let (callback, callback_context): (PREQUEST_POWER_COMPLETE, PVOID) = if working {
        (Some(on_device_power_ignored), ptr::null_mut())
    } else {
        (Some(on_device_power_set), raw.cast())
    };
    // SAFETY: a device power IRP for our PDO's stack; IRQL <= DISPATCH_LEVEL.
    let status = unsafe {
        PoRequestPowerIrp(
            ext.pdo,
            // CAST: a minor function code.
            wdk_sys::IRP_MN_SET_POWER as u8,
            POWER_STATE { DeviceState: device },
            callback,
            callback_context,
            ptr::null_mut(),
        )
    };
    if working || !nt_success(status) {
        // Back to work: the system IRP completes now, the device's follows.
        return finish_system_irp(ext, irp, (!nt_success(status) && !working).then_some(status));
    }
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Ends our part in a system power IRP from its completion routine: the next
/// power IRP may come, and the remove-lock hold goes; the IRP completes (with
/// `failed` as its status if given).
fn finish_system_irp(ext: &StackExtension, irp: Irp, failed: Option<NTSTATUS>) -> NTSTATUS {
    if let Some(status) = failed {
        irp.set_status(status, 0);
    }
    // SAFETY: our power IRP, on its way up.
    unsafe { PoStartNextPowerIrp(irp.raw()) };
    // SAFETY: the hold dispatch_power kept for this IRP, released once.
    unsafe { ext.remove_lock.release(irp.raw()) };
    STATUS_SUCCESS // STATUS_CONTINUE_COMPLETION
}

/// The device power IRP that matches a system sleep is done: the system IRP
/// (held by [`on_system_power_set`]) completes with its status.
unsafe extern "C" fn on_device_power_set(
    _pdo: *mut DEVICE_OBJECT,
    _minor: u8,
    _state: POWER_STATE,
    context: PVOID,
    io_status: *mut IO_STATUS_BLOCK,
) {
    // SAFETY: the system IRP on_system_power_set kept, at our location.
    let irp = unsafe { Irp::from_raw(context.cast()) };
    // SAFETY: the power manager's status block for the device IRP.
    let block = unsafe { &*io_status };
    // SAFETY: `Status` is the member the power manager wrote.
    let status = unsafe { block.__bindgen_anon_1.Status };
    // SAFETY: an IRP of our device, at our location.
    let ext_ptr = unsafe { extension_of(irp) };
    // SAFETY: the extension of a live device (the IRP holds its remove lock).
    let ext = unsafe { &*ext_ptr };
    irp.set_status(status, 0);
    // SAFETY: the system IRP, about to complete.
    unsafe { PoStartNextPowerIrp(irp.raw()) };
    let raw = irp.raw();
    let _ = irp.complete(status, 0);
    // SAFETY: the hold dispatch_power kept for this IRP (its address is the
    // tag), released once.
    unsafe { ext.remove_lock.release(raw) };
}

/// The device power IRP requested on resume: nothing waits for it.
unsafe extern "C" fn on_device_power_ignored(
    _pdo: *mut DEVICE_OBJECT,
    _minor: u8,
    _state: POWER_STATE,
    _context: PVOID,
    _io_status: *mut IO_STATUS_BLOCK,
) {
}

/// A device `SET_POWER` to D0 came back up: the device is on again.
unsafe extern "C" fn on_device_powered_up(fdo: *mut DEVICE_OBJECT, raw: *mut IRP, context: PVOID) -> NTSTATUS {
    // SAFETY: the IRP dispatch_power passed down, back at our location.
    let irp = unsafe { Irp::from_raw(raw) };
    // SAFETY: the extension dispatch_power passed as the context.
    let ext = unsafe { &*context.cast::<StackExtension>() };
    if nt_success(irp.status()) {
        let d0 = POWER_STATE { DeviceState: _DEVICE_POWER_STATE::PowerDeviceD0 };
        // SAFETY: our FDO is in D0 now.
        let _ = unsafe { PoSetPowerState(fdo, _POWER_STATE_TYPE::DevicePowerState, d0) };
    }
    // SAFETY: our power IRP, on its way up.
    unsafe { PoStartNextPowerIrp(raw) };
    // SAFETY: the hold dispatch_power kept for this IRP, released once.
    unsafe { ext.remove_lock.release(raw) };
    STATUS_SUCCESS // STATUS_CONTINUE_COMPLETION
}
