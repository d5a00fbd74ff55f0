//! One HCA as the Windows layer holds it: the device extension of its FDO
//! (created in `AddDevice`, deleted at `IRP_MN_REMOVE_DEVICE`), the
//! driver-wide list of devices the process-exit notification walks, and the
//! two names a device gets: its device interface and `\DosDevices\mlnx_hca<N>`.
//!
//! Which device is the simulated HCA: `AddDevice` reads the PDO's hardware
//! ids (`IoGetDeviceProperty(DevicePropertyHardwareID)`, answered from the
//! device's registry key on Windows and on Wine alike) and looks for
//! `root\mlnx_hca_sim`. Decided once, from what the INF matched, so a real
//! HCA can never become a simulated one (for instance when its resources are
//! missing: that fails its start instead).

use super::kernel::{nt_success, FastMutex, Irp, RemoveLock, FALSE, TRUE};
use super::log::trace;
use super::platform::WinPlatform;
use super::{DEVICES, INTERFACE_GUID};
use crate::core::{Config, Device, ViewOwners};
use ::core::cell::UnsafeCell;
use ::core::mem::size_of;
use ::core::ptr::{self, NonNull};
use ::core::sync::atomic::{AtomicU32, Ordering};
use alloc::vec::Vec;
use wdk_sys::ntddk::{
    IoAttachDeviceToDeviceStack, IoCreateDevice, IoCreateSymbolicLink, IoDeleteDevice, IoDeleteSymbolicLink,
    IoDetachDevice, IoGetDeviceProperty, IoRegisterDeviceInterface, IoSetDeviceInterfaceState, RtlFreeUnicodeString,
};
use wdk_sys::{
    DEVICE_REGISTRY_PROPERTY, DRIVER_OBJECT, IRP, NTSTATUS, PDEVICE_OBJECT, STATUS_BUFFER_TOO_SMALL,
    STATUS_NO_SUCH_DEVICE, STATUS_SUCCESS, ULONG, UNICODE_STRING,
};

/// `instance` of a device not linked yet.
const NO_INSTANCE: u32 = u32::MAX;

/// The hardware id of the root-enumerated simulated HCA (see the INF).
const SIMULATED_HARDWARE_ID: &str = "root\\mlnx_hca_sim";

/// The device extension of an FDO.
///
/// INVARIANT: lives from `AddDevice` to `IRP_MN_REMOVE_DEVICE`, at a fixed
/// address (the I/O manager's extension memory), so the mutex, the remove
/// lock and the list link inside it never move.
pub(crate) struct DeviceExtension {
    /// Our device object.
    pub(crate) fdo: PDEVICE_OBJECT,
    /// The device below us (the PDO or a lower filter).
    pub(crate) lower: PDEVICE_OBJECT,
    /// The PDO: the target of the device power IRPs we request, and the
    /// object whose security tools' opens meet.
    pub(crate) pdo: PDEVICE_OBJECT,
    /// Which processes may own views of this device, for the process-exit
    /// notification to ask without the device lock (counted by the platform
    /// under it).
    pub(crate) owners: ViewOwners,
    /// N of `\DosDevices\mlnx_hca<N>`: set under [`DEVICES`]'s lock as the
    /// device is linked, constant afterwards.
    pub(crate) instance: AtomicU32,
    /// The root-enumerated test device (BAR 0 in pool memory).
    pub(crate) simulated: bool,
    /// Held by every IRP being handled; REMOVE_DEVICE waits for it.
    pub(crate) remove_lock: RemoveLock,
    /// The device lock: the core (plain data behind `&mut self`) and its
    /// platform (BAR 0, the views). See `mod.rs` for the lock order.
    pub(crate) core: FastMutex<Device<WinPlatform>>,
    /// State only PnP touches: see [`pnp`](Self::pnp).
    pnp: UnsafeCell<PnpOnly>,
    /// The driver-wide device list's link: read and written only under
    /// [`DEVICES`]'s lock.
    next: UnsafeCell<*mut DeviceExtension>,
}

/// What only `AddDevice`, the PnP dispatch routine and the teardown touch.
/// The PnP manager sends one PnP IRP at a time per device, and none before
/// `AddDevice` returns, so these never run concurrently for one device.
pub(crate) struct PnpOnly {
    /// The registered device interface (enabled while started).
    pub(crate) interface: Option<DeviceInterface>,
    /// `\DosDevices\mlnx_hca<N>` (created at the first start).
    pub(crate) link: Option<SymbolicLink>,
    /// The PDO's name (`\Device\...`), NUL-terminated: the link's target.
    pub(crate) pdo_name: Vec<u16>,
}

impl DeviceExtension {
    /// The extension of one of our FDOs.
    ///
    /// # Safety
    /// `fdo` is a device object this driver created in `AddDevice` and has not
    /// deleted (the I/O manager dispatches only to live devices; our own
    /// callers pass devices from the list).
    pub(crate) unsafe fn from_fdo(fdo: PDEVICE_OBJECT) -> *mut DeviceExtension {
        // SAFETY: (caller) a live device object of ours.
        let extension = unsafe { (*fdo).DeviceExtension };
        extension.cast()
    }

    /// Common start of every dispatch routine (file, device control, PnP,
    /// power): the extension (as a pointer, for REMOVE_DEVICE, which deletes
    /// it, and as a reference for everyone else) and the IRP.
    ///
    /// # Safety
    /// As for a dispatch routine: `fdo` is our live FDO, `irp` its IRP.
    pub(crate) unsafe fn enter<'a>(
        fdo: PDEVICE_OBJECT,
        irp: *mut IRP,
    ) -> (*mut DeviceExtension, &'a DeviceExtension, Irp) {
        // SAFETY: (caller) the I/O manager dispatches to our live FDO.
        let ext_ptr = unsafe { DeviceExtension::from_fdo(fdo) };
        // SAFETY: alive for the whole dispatch (REMOVE_DEVICE deletes it last).
        let ext = unsafe { &*ext_ptr };
        // SAFETY: (caller) ours until completed or passed down.
        (ext_ptr, ext, unsafe { Irp::from_raw(irp) })
    }

    /// The PnP-only state.
    ///
    /// # Safety
    /// Only from `AddDevice`, the PnP dispatch routine or the REMOVE_DEVICE
    /// teardown (serialised per device by the PnP manager, see [`PnpOnly`]),
    /// and the reference is not kept beyond that call.
    #[expect(clippy::mut_from_ref, reason = "exclusive by the PnP manager's serialisation, see PnpOnly")]
    pub(crate) unsafe fn pnp(&self) -> &mut PnpOnly {
        // SAFETY: (caller) no other reference to the PnP-only state exists.
        unsafe { &mut *self.pnp.get() }
    }
}

// ---------------------------------------------------------------- the device list

/// The driver's devices, for the process-exit notification: an intrusive
/// singly linked list through [`DeviceExtension::next`].
pub(crate) struct DeviceList {
    head: *mut DeviceExtension,
}

// SAFETY: the list is only used under its fast mutex; the pointers in it are
// to device extensions, which are alive while linked (linked at the end of
// AddDevice, unlinked before deletion at REMOVE_DEVICE).
unsafe impl Send for DeviceList {}

impl DeviceList {
    pub(crate) const fn new() -> Self {
        DeviceList { head: ptr::null_mut() }
    }

    /// Calls `f` for every device, in list order.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&DeviceExtension)) {
        let mut at = self.head;
        while !at.is_null() {
            // SAFETY: linked devices are alive (see the Send impl) and only
            // shared references are made while the list's lock is held.
            let ext = unsafe { &*at };
            f(ext);
            // SAFETY: `next` is read under the list's lock, its only writer.
            at = unsafe { *ext.next.get() };
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// The lowest N no linked device uses.
    fn free_instance(&self) -> u32 {
        let mut n = 0;
        loop {
            let mut used = false;
            self.for_each(|ext| used |= ext.instance.load(Ordering::Relaxed) == n);
            if !used {
                return n;
            }
            n += 1;
        }
    }

    /// Links a device (end of `AddDevice`).
    ///
    /// # Safety
    /// `ext` is a fully initialised extension, not linked yet, that stays
    /// alive until [`unlink`](Self::unlink)ed.
    unsafe fn push(&mut self, ext: *mut DeviceExtension) {
        // SAFETY: (caller) a valid extension.
        let link = unsafe { (*ext).next.get() };
        // SAFETY: its link is ours to write under the list's lock.
        unsafe { *link = self.head };
        self.head = ext;
    }

    /// Unlinks a device (REMOVE_DEVICE, before deleting it).
    fn unlink(&mut self, ext: *mut DeviceExtension) {
        let mut at: *mut *mut DeviceExtension = &raw mut self.head;
        loop {
            // SAFETY: `at` is the head or the link of a live linked device.
            let current = unsafe { *at };
            if current.is_null() {
                return;
            }
            // SAFETY: `current` is linked, hence alive.
            let next = unsafe { (*current).next.get() };
            if current == ext {
                // SAFETY: `next` is the link of a live linked device, read
                // under the lock.
                let after = unsafe { *next };
                // SAFETY: `at` as above; rewritten under the lock.
                unsafe { *at = after };
                return;
            }
            at = next;
        }
    }
}

// ---------------------------------------------------------------- names

/// A device interface registered for the PDO (`IoRegisterDeviceInterface`):
/// enabled while the device is started; disabled and its name freed on drop.
pub(crate) struct DeviceInterface {
    name: UNICODE_STRING,
    enabled: bool,
}

impl DeviceInterface {
    /// IRQL: PASSIVE_LEVEL.
    fn register(pdo: PDEVICE_OBJECT) -> Result<Self, NTSTATUS> {
        let mut name = UNICODE_STRING::default();
        // SAFETY: `pdo` is the PDO AddDevice received; the system allocates
        // the name, which Drop frees.
        let status = unsafe { IoRegisterDeviceInterface(pdo, &INTERFACE_GUID, ptr::null_mut(), &raw mut name) };
        if nt_success(status) {
            Ok(DeviceInterface { name, enabled: false })
        } else {
            Err(status)
        }
    }

    /// `IoSetDeviceInterfaceState`. IRQL: PASSIVE_LEVEL.
    pub(crate) fn set_enabled(&mut self, enabled: bool) {
        if self.enabled == enabled {
            return;
        }
        // SAFETY: the name IoRegisterDeviceInterface returned.
        let status = unsafe { IoSetDeviceInterfaceState(&raw mut self.name, if enabled { TRUE } else { FALSE }) };
        if nt_success(status) {
            self.enabled = enabled;
        } else {
            trace!("IoSetDeviceInterfaceState({}) failed: {:#x}", u32::from(enabled), status);
        }
    }
}

impl Drop for DeviceInterface {
    fn drop(&mut self) {
        self.set_enabled(false);
        // SAFETY: the buffer the system allocated for the name, freed once.
        unsafe { RtlFreeUnicodeString(&raw mut self.name) };
    }
}

/// `\DosDevices\mlnx_hca<N>` pointing at the PDO, so tools can open
/// `\\.\mlnx_hca<N>`. Opens through it reach the top of the PDO's stack (us)
/// with the PDO's security descriptor, the INF's SDDL. Deleted on drop.
pub(crate) struct SymbolicLink {
    name: [u16; 32],
    len: usize,
}

impl SymbolicLink {
    /// IRQL: PASSIVE_LEVEL.
    pub(crate) fn create(instance: u32, target: &[u16]) -> Result<Self, NTSTATUS> {
        let mut link = SymbolicLink { name: [0; 32], len: 0 };
        for c in "\\DosDevices\\mlnx_hca".encode_utf16() {
            link.push(c);
        }
        let mut digits = [0u16; 10];
        let (mut n, mut count) = (instance, 0);
        loop {
            // CAST: a decimal digit.
            digits[count] = u16::from(b'0' + (n % 10) as u8);
            count += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for &d in digits[..count].iter().rev() {
            link.push(d);
        }
        let mut name = link.unicode();
        let mut target = counted(target);
        // SAFETY: both strings point to live buffers for the call.
        let status = unsafe { IoCreateSymbolicLink(&raw mut name, &raw mut target) };
        if nt_success(status) {
            Ok(link)
        } else {
            Err(status)
        }
    }

    fn push(&mut self, c: u16) {
        self.name[self.len] = c;
        self.len += 1;
    }

    /// A UNICODE_STRING over the name (rebuilt per call: the struct may move).
    fn unicode(&mut self) -> UNICODE_STRING {
        // CAST: at most 31 UTF-16 units.
        let bytes = (self.len * 2) as u16;
        UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: self.name.as_mut_ptr() }
    }
}

impl Drop for SymbolicLink {
    fn drop(&mut self) {
        let mut name = self.unicode();
        // SAFETY: the link `create` made, deleted once. IRQL: PASSIVE_LEVEL
        // (PnP dispatch or REMOVE_DEVICE teardown).
        let _ = unsafe { IoDeleteSymbolicLink(&raw mut name) };
    }
}

/// A UNICODE_STRING over a NUL-terminated UTF-16 buffer (read-only use).
fn counted(s: &[u16]) -> UNICODE_STRING {
    let len = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    // CAST: device names are far below 32 Ki units.
    let bytes = (len * 2) as u16;
    UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: s.as_ptr().cast_mut() }
}

/// `IoGetDeviceProperty` into a buffer of the right size. IRQL: PASSIVE_LEVEL.
///
/// Starts with 512 bytes and grows once to what the routine asks for. (Wine
/// answers a too-small buffer with a Win32 error code, not
/// STATUS_BUFFER_TOO_SMALL; the size it reports is used either way.)
fn device_property(pdo: PDEVICE_OBJECT, property: DEVICE_REGISTRY_PROPERTY::Type) -> Result<Vec<u16>, NTSTATUS> {
    let mut bytes: ULONG = 512;
    for _ in 0..2 {
        let units = bytes as usize / 2;
        let mut buffer: Vec<u16> = Vec::new();
        buffer.try_reserve_exact(units).map_err(|_| wdk_sys::STATUS_INSUFFICIENT_RESOURCES)?;
        buffer.resize(units, 0);
        let mut needed: ULONG = 0;
        // SAFETY: the buffer holds `bytes` bytes; `needed` receives the size.
        let status = unsafe { IoGetDeviceProperty(pdo, property, bytes, buffer.as_mut_ptr().cast(), &raw mut needed) };
        if needed > bytes && (status == STATUS_BUFFER_TOO_SMALL || nt_success(status)) {
            bytes = needed;
            continue;
        }
        if !nt_success(status) {
            return Err(status);
        }
        buffer.truncate(needed as usize / 2);
        return Ok(buffer);
    }
    Err(STATUS_BUFFER_TOO_SMALL)
}

/// Whether the PDO's hardware ids (a REG_MULTI_SZ) name the simulated HCA.
fn is_simulated(pdo: PDEVICE_OBJECT) -> bool {
    let Ok(ids) = device_property(pdo, DEVICE_REGISTRY_PROPERTY::DevicePropertyHardwareID) else {
        return false;
    };
    ids.split(|&c| c == 0).any(|id| {
        id.len() == SIMULATED_HARDWARE_ID.len()
            && id.iter().zip(SIMULATED_HARDWARE_ID.bytes()).all(|(&c, b)| {
                // CAST: compare as ASCII; anything else differs.
                c < 0x80 && (c as u8).eq_ignore_ascii_case(&b)
            })
    })
}

// ---------------------------------------------------------------- AddDevice / teardown

/// `AddDevice`: creates the FDO (`FILE_DEVICE_INFINIBAND`, secure open) with
/// its extension, attaches it to the stack, registers the device interface
/// and links the device into the driver's list.
///
/// IRQL: PASSIVE_LEVEL. Takes the device-list lock (only).
pub(crate) unsafe extern "C" fn add_device(driver: *mut DRIVER_OBJECT, pdo: PDEVICE_OBJECT) -> NTSTATUS {
    let simulated = is_simulated(pdo);
    let pdo_name = match device_property(pdo, DEVICE_REGISTRY_PROPERTY::DevicePropertyPhysicalDeviceObjectName) {
        Ok(name) => name,
        Err(status) => {
            trace!("AddDevice: no PDO name: {:#x}", status);
            return status;
        }
    };
    let interface = match DeviceInterface::register(pdo) {
        Ok(interface) => interface,
        Err(status) => {
            trace!("AddDevice: IoRegisterDeviceInterface failed: {:#x}", status);
            return status;
        }
    };
    let mut fdo: PDEVICE_OBJECT = ptr::null_mut();
    // SAFETY: creates an unnamed device object with our extension; `fdo`
    // receives it.
    let status = unsafe {
        IoCreateDevice(
            driver,
            // CAST: the extension is a few hundred bytes.
            size_of::<DeviceExtension>() as ULONG,
            ptr::null_mut(),
            wdk_sys::FILE_DEVICE_INFINIBAND,
            wdk_sys::FILE_DEVICE_SECURE_OPEN,
            FALSE,
            &raw mut fdo,
        )
    };
    if !nt_success(status) {
        trace!("AddDevice: IoCreateDevice failed: {:#x}", status);
        return status;
    }
    // SAFETY: attaches our new FDO on top of the PDO's stack.
    let lower = unsafe { IoAttachDeviceToDeviceStack(fdo, pdo) };
    if lower.is_null() {
        trace!("AddDevice: IoAttachDeviceToDeviceStack failed");
        // SAFETY: our FDO, attached to nothing, its extension never written.
        unsafe { IoDeleteDevice(fdo) };
        return STATUS_NO_SUCH_DEVICE;
    }
    // SAFETY: `fdo` was just created by us.
    let ext_ptr = unsafe { DeviceExtension::from_fdo(fdo) };
    // SAFETY: a place projection into the extension memory, not read: where
    // the device's exit filter will live for the extension's life.
    let owners = unsafe { &raw mut (*ext_ptr).owners };
    // SAFETY: inside the extension, whose address is not null.
    let owners = unsafe { NonNull::new_unchecked(owners) };
    let extension = DeviceExtension {
        fdo,
        lower,
        pdo,
        owners: ViewOwners::new(),
        instance: AtomicU32::new(NO_INSTANCE),
        simulated,
        remove_lock: RemoveLock::new(),
        // SAFETY: `owners` is in this same extension, which outlives its core.
        core: FastMutex::new(Device::new(unsafe { WinPlatform::new(owners) }, Config::DEFAULT)),
        pnp: UnsafeCell::new(PnpOnly { interface: Some(interface), link: None, pdo_name }),
        next: UnsafeCell::new(ptr::null_mut()),
    };
    // SAFETY: the extension memory IoCreateDevice allocated for exactly this
    // type (its size above; 16-byte aligned after the DEVICE_OBJECT), unused.
    unsafe { ext_ptr.write(extension) };
    // SAFETY: initialised just above and alive until REMOVE_DEVICE.
    let ext = unsafe { &*ext_ptr };
    // SAFETY: nothing else sees the device yet; the extension does not move.
    unsafe { ext.remove_lock.init() };
    // SAFETY: as above.
    unsafe { ext.core.init() };
    let instance = {
        let mut devices = DEVICES.lock();
        let instance = devices.free_instance();
        ext.instance.store(instance, Ordering::Relaxed);
        // SAFETY: fully initialised, alive until REMOVE_DEVICE unlinks it.
        unsafe { devices.push(ext_ptr) };
        instance
    };
    // SAFETY: our FDO; AddDevice may set its flags.
    let flags = unsafe { &mut (*fdo).Flags };
    *flags |= wdk_sys::DO_BUFFERED_IO | wdk_sys::DO_POWER_PAGABLE;
    *flags &= !wdk_sys::DO_DEVICE_INITIALIZING;
    trace!("AddDevice: mlnx_hca{} (simulated {})", instance, u32::from(simulated));
    STATUS_SUCCESS
}

/// The end of `IRP_MN_REMOVE_DEVICE`, after the IRP went down: unlinks the
/// device from the driver's list (device-list lock), detaches it from the
/// stack, drops the extension (core, interface, link, PDO name) and deletes
/// the FDO.
///
/// # Safety
/// REMOVE_DEVICE's remove lock wait is over (no IRP of ours is in flight and
/// none can start), every view is gone, and the caller does not use the
/// extension afterwards.
pub(crate) unsafe fn destroy(ext: *mut DeviceExtension) {
    DEVICES.lock().unlink(ext);
    let (fdo, lower) = {
        // SAFETY: (caller) alive until the drop below; this borrow ends first.
        let extension = unsafe { &*ext };
        (extension.fdo, extension.lower)
    };
    // SAFETY: detaches from the device AddDevice attached us to.
    unsafe { IoDetachDevice(lower) };
    // SAFETY: (caller) no other reference remains; dropped once.
    unsafe { ptr::drop_in_place(ext) };
    // SAFETY: our FDO, detached; the I/O manager frees it when unreferenced.
    unsafe { IoDeleteDevice(fdo) };
}
