//! The driver's device objects, in two kinds:
//!
//! - the **stack device** (`StackExtension`), one per HCA stack the driver
//!   is loaded for, made in `AddDevice` and deleted at `IRP_MN_REMOVE_DEVICE`:
//!   the function device object (FDO) of the root test device or of a
//!   flash-recovery HCA, or a lower filter below the HCA's own driver (the
//!   [`Role`] the core decides from the hardware ids). It handles PnP and
//!   power and never serves a tool: as a filter it passes everything
//!   through, as the FDO it refuses opens.
//! - the **control device** (`ControlExtension`), `\Device\mlnx_hca<N>` with
//!   the link `\DosDevices\mlnx_hca<N>`, made at the first start of a stack
//!   that serves (an HCA whose BAR 0 is CR space) and deleted at its
//!   `IRP_MN_REMOVE_DEVICE`: the one object tools open, in both roles. Its
//!   descriptor is the driver's own (SYSTEM and Administrators, plus the
//!   administrator's read grant), set before it accepts an open.
//!
//! What serves tools for an HCA, its [`Hca`] (the core, the exit filter, the
//! instance number), lives in a pool block of its own, linked in [`DEVICES`]
//! while the HCA is there. At removal it moves to [`GRAVEYARD`] and stays until
//! the driver unloads: a handle to the deleted control device can still send
//! its CLEANUP and CLOSE (and requests, answered `STATUS_DELETE_PENDING`)
//! after the HCA is gone, and nothing tells a driver when the last such
//! reference is released; unload comes only after it.

use super::kernel::{nt_success, FastMutex, RemoveLock, FALSE, TRUE};
use super::log::trace;
use super::platform::WinPlatform;
use super::{DEVICES, GRAVEYARD, INTERFACE_GUID};
use crate::core::hca::Role;
use crate::core::{Config, Device, ViewOwners};
use ::core::cell::UnsafeCell;
use ::core::mem::{align_of, size_of};
use ::core::ptr::{self, NonNull};
use ::core::sync::atomic::AtomicPtr;
use alloc::vec::Vec;
use wdk_sys::ntddk::{
    IoAttachDeviceToDeviceStack, IoCreateDevice, IoCreateSymbolicLink, IoDeleteDevice, IoDeleteSymbolicLink,
    IoDetachDevice, IoGetDeviceProperty, IoOpenDeviceRegistryKey, IoRegisterDeviceInterface, IoSetDeviceInterfaceState,
    RtlFreeUnicodeString, ZwClose, ZwDeleteValueKey, ZwSetValueKey,
};
use wdk_sys::{
    DEVICE_REGISTRY_PROPERTY, DRIVER_OBJECT, NTSTATUS, PDEVICE_OBJECT, STATUS_BUFFER_TOO_SMALL,
    STATUS_INSUFFICIENT_RESOURCES, STATUS_NO_SUCH_DEVICE, STATUS_SUCCESS, ULONG, UNICODE_STRING,
};

// ---------------------------------------------------------------- the two kinds

/// What an extension of ours is; the first field of both.
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stack = u32::from_le_bytes(*b"Stak"),
    Control = u32::from_le_bytes(*b"Ctrl"),
}

/// One of this driver's device objects, as a dispatch routine sees it.
pub(crate) enum Ours<'a> {
    /// The FDO or filter device object of an HCA stack.
    Stack(*mut StackExtension, &'a StackExtension),
    /// A control device.
    Control(&'a ControlExtension),
}

/// The extension of a device object this driver created.
///
/// # Safety
/// `device` is a live device object of this driver (the I/O manager
/// dispatches only to those); the references live no longer than the
/// dispatch.
pub(crate) unsafe fn ours<'a>(device: PDEVICE_OBJECT) -> Ours<'a> {
    // SAFETY: (caller) a live device object of ours.
    let extension = unsafe { (*device).DeviceExtension };
    // SAFETY: every extension of ours starts with its Kind (repr(C), first field).
    let kind = unsafe { extension.cast::<Kind>().read() };
    match kind {
        Kind::Stack => {
            let stack = extension.cast::<StackExtension>();
            // SAFETY: a stack extension, alive for the dispatch (REMOVE_DEVICE deletes it last).
            Ours::Stack(stack, unsafe { &*stack })
        }
        // SAFETY: a control extension, alive while its device object is.
        Kind::Control => Ours::Control(unsafe { &*extension.cast::<ControlExtension>() }),
    }
}

/// The extension of an HCA stack's device object (FDO or lower filter).
///
/// INVARIANT: lives from `AddDevice` to `IRP_MN_REMOVE_DEVICE`, at a fixed
/// address (the I/O manager's extension memory), so the remove lock inside
/// it never moves.
#[repr(C)]
pub(crate) struct StackExtension {
    kind: Kind,
    /// Our device object in the stack.
    pub(crate) device: PDEVICE_OBJECT,
    /// The device below us (the PDO, or another lower filter).
    pub(crate) lower: PDEVICE_OBJECT,
    /// The PDO: the target of the device power IRPs we request, of the
    /// device interface, and of property reads.
    pub(crate) pdo: PDEVICE_OBJECT,
    /// What the driver is to this device.
    pub(crate) role: Role,
    /// Held by every IRP of the stack device being handled; REMOVE_DEVICE
    /// waits for it.
    pub(crate) remove_lock: RemoveLock,
    /// What serves tools, once the device started (and if its role
    /// serves): set by the first START, taken by REMOVE_DEVICE once the
    /// remove lock's wait is over; read by PnP and power IRPs.
    pub(crate) hca: AtomicPtr<Hca>,
    /// State only PnP touches: see [`pnp`](Self::pnp).
    pnp: UnsafeCell<PnpOnly>,
}

/// What only `AddDevice`, the PnP dispatch routine and the teardown touch.
/// The PnP manager sends one PnP IRP at a time per device, and none before
/// `AddDevice` returns, so these never run concurrently for one device.
pub(crate) struct PnpOnly {
    /// `\DosDevices\mlnx_hca<N>` (while the device is there).
    pub(crate) link: Option<SymbolicLink>,
    /// The device interface on the PDO (enabled while started).
    pub(crate) interface: Option<DeviceInterface>,
}

impl StackExtension {
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

/// The extension of a control device: which HCA it serves.
#[repr(C)]
pub(crate) struct ControlExtension {
    kind: Kind,
    /// INVARIANT: valid for the device object's life: an [`Hca`] is freed
    /// only at unload, after every device object of the driver.
    hca: NonNull<Hca>,
}

impl ControlExtension {
    /// The HCA this control device serves (possibly removed already).
    pub(crate) fn hca(&self) -> &Hca {
        // SAFETY: INVARIANT of the field.
        unsafe { self.hca.as_ref() }
    }
}

// ---------------------------------------------------------------- Hca

/// What serves tools for one HCA.
///
/// INVARIANT: in a pool block of its own, at a fixed address, from the first
/// start of its stack until the driver unloads (linked in [`DEVICES`] while
/// the HCA is there, in [`GRAVEYARD`] after).
pub(crate) struct Hca {
    /// N of `\Device\mlnx_hca<N>`.
    pub(crate) instance: u32,
    /// Which processes may own views of this HCA, for the process-exit
    /// notification to ask without the device lock (the platform counts
    /// views in it under the lock).
    pub(crate) owners: ViewOwners,
    /// The device lock: the core (plain data behind `&mut self`) and its
    /// platform (BAR 0, the views). See `mod.rs` for the lock order.
    pub(crate) core: FastMutex<Device<WinPlatform>>,
    /// The control device, until REMOVE_DEVICE deletes it.
    control: PDEVICE_OBJECT,
    /// The link of [`HcaList`]: read and written only under its lock.
    next: UnsafeCell<*mut Hca>,
}

const _: () = assert!(align_of::<Hca>() <= 16, "pool blocks are 16-byte aligned");

impl Hca {
    /// Makes the HCA's [`Hca`] and its control device, secured with
    /// `descriptor`, linked into [`DEVICES`] and open for tools. The name
    /// (`\Device\mlnx_hca<N>`) is the lowest N no live HCA uses.
    ///
    /// IRQL: PASSIVE_LEVEL, no lock held.
    pub(crate) fn create(driver: *mut DRIVER_OBJECT, descriptor: &[u8]) -> Result<NonNull<Hca>, NTSTATUS> {
        let block = super::alloc::allocate(size_of::<Hca>()).cast::<Hca>();
        let Some(hca) = NonNull::new(block) else { return Err(STATUS_INSUFFICIENT_RESOURCES) };
        // SAFETY: a place projection into the fresh block, not read.
        let owners = unsafe { &raw mut (*hca.as_ptr()).owners };
        // SAFETY: inside the block, whose address is not null.
        let owners = unsafe { NonNull::new_unchecked(owners) };
        let value = Hca {
            instance: u32::MAX,
            owners: ViewOwners::new(),
            // SAFETY: `owners` is in this same block, which outlives its core.
            core: FastMutex::new(Device::new(unsafe { WinPlatform::new(owners) }, Config::DEFAULT)),
            control: ptr::null_mut(),
            next: UnsafeCell::new(ptr::null_mut()),
        };
        // SAFETY: the block has room for an Hca and the right alignment; unused so far.
        unsafe { hca.as_ptr().write(value) };
        // SAFETY: initialised just above; nobody else sees it yet.
        let core = unsafe { &hca.as_ref().core };
        // SAFETY: once, before any lock; the block does not move.
        unsafe { core.init() };
        // The lowest N no live HCA uses, reserved by linking the Hca (its core
        // is ready; the process-exit notification may meet it and finds no
        // view). IoCreateDevice and the descriptor need PASSIVE_LEVEL: outside
        // the list's fast mutex.
        {
            let mut devices = DEVICES.lock();
            let instance = devices.free_instance();
            // SAFETY: nobody else sees the block yet.
            unsafe { (*hca.as_ptr()).instance = instance };
            // SAFETY: fully initialised, alive until unload.
            unsafe { devices.push(hca.as_ptr()) };
        }
        // SAFETY: alive (just made); `instance` is constant from here.
        let instance = unsafe { hca.as_ref().instance };
        match create_control_device(driver, hca, instance, descriptor) {
            Ok(control) => {
                // SAFETY: only this stack's PnP path reads `control`, and it is this call.
                unsafe { (*hca.as_ptr()).control = control };
                Ok(hca)
            }
            Err(status) => {
                DEVICES.lock().unlink(hca.as_ptr());
                // SAFETY: unlinked (no walker holds it: they hold the list's
                // lock), never seen by a device object; dropped and freed once.
                unsafe { free(hca) };
                Err(status)
            }
        }
    }

    /// REMOVE_DEVICE's end for the HCA (the core removed, BAR 0 released):
    /// out of [`DEVICES`] into [`GRAVEYARD`], and the control device deleted
    /// (new opens fail; handles still open keep reaching the Hca).
    ///
    /// # Safety
    /// Once per Hca; the stack does not use `hca` afterwards.
    pub(crate) unsafe fn retire(hca: NonNull<Hca>) {
        DEVICES.lock().unlink(hca.as_ptr());
        // SAFETY: linked nowhere now, alive (INVARIANT); pushed once.
        unsafe { GRAVEYARD.lock().push(hca.as_ptr()) };
        // SAFETY: the Hca is alive (INVARIANT); only its stack reads `control`.
        let control = unsafe { hca.as_ref().control };
        // SAFETY: our control device, deleted once; the I/O manager frees it
        // when its last reference (an open handle's file object) goes.
        unsafe { IoDeleteDevice(control) };
    }
}

/// Drops and frees an Hca block.
///
/// # Safety
/// `hca` is an Hca block no device object, list or IRP refers to any more.
unsafe fn free(hca: NonNull<Hca>) {
    // SAFETY: (caller) the only reference; dropped once.
    unsafe { ptr::drop_in_place(hca.as_ptr()) };
    // SAFETY: the block `Hca::create` allocated, freed once.
    unsafe { super::alloc::free(hca.as_ptr().cast()) };
}

/// Unload: frees every removed Hca. No device object of the driver is left
/// (unload comes after the last one), so nothing can reach them.
///
/// # Safety
/// Only from DriverUnload.
pub(crate) unsafe fn free_graveyard() {
    let mut graveyard = GRAVEYARD.lock();
    while let Some(hca) = NonNull::new(graveyard.head) {
        graveyard.unlink(hca.as_ptr());
        // SAFETY: (caller) nothing refers to it any more.
        unsafe { free(hca) };
    }
}

/// The control device `\Device\mlnx_hca<N>` for `hca`: `descriptor` set
/// before it accepts an open (`DO_DEVICE_INITIALIZING` is cleared last).
fn create_control_device(
    driver: *mut DRIVER_OBJECT,
    hca: NonNull<Hca>,
    instance: u32,
    descriptor: &[u8],
) -> Result<PDEVICE_OBJECT, NTSTATUS> {
    let mut name = Name::new(r"\Device\mlnx_hca", instance);
    let mut unicode = name.unicode();
    let mut control: PDEVICE_OBJECT = ptr::null_mut();
    // SAFETY: a named, exclusive-free device object with our control extension; `control` receives it.
    let status = unsafe {
        IoCreateDevice(
            driver,
            // CAST: the extension is 16 bytes.
            size_of::<ControlExtension>() as ULONG,
            &raw mut unicode,
            wdk_sys::FILE_DEVICE_INFINIBAND,
            wdk_sys::FILE_DEVICE_SECURE_OPEN,
            FALSE,
            &raw mut control,
        )
    };
    if !nt_success(status) {
        trace!("IoCreateDevice(mlnx_hca{}) failed: {:#x}", instance, status);
        return Err(status);
    }
    // SAFETY: the extension of the device object just made, sized for this.
    let extension = unsafe { (*control).DeviceExtension.cast::<ControlExtension>() };
    // SAFETY: as above; unused so far.
    unsafe { extension.write(ControlExtension { kind: Kind::Control, hca }) };
    let status = super::security::apply(control, descriptor);
    if !nt_success(status) {
        trace!("security: setting the descriptor of mlnx_hca{} failed: {:#x}; no control device", instance, status);
        // SAFETY: our device object, never opened (still initialising).
        unsafe { IoDeleteDevice(control) };
        return Err(status);
    }
    // SAFETY: our control device; its flags are ours to set before it is opened.
    let flags = unsafe { &mut (*control).Flags };
    *flags |= wdk_sys::DO_BUFFERED_IO;
    *flags &= !wdk_sys::DO_DEVICE_INITIALIZING;
    Ok(control)
}

// ---------------------------------------------------------------- the device lists

/// A list of [`Hca`]s, intrusive through [`Hca::next`]: [`DEVICES`] (the
/// live ones, for the process-exit notification and the instance numbers)
/// and [`GRAVEYARD`] (the removed ones, freed at unload).
pub(crate) struct HcaList {
    head: *mut Hca,
}

// SAFETY: the list is only used under its fast mutex; the pointers in it are
// to Hca blocks, alive until unload.
unsafe impl Send for HcaList {}

impl HcaList {
    pub(crate) const fn new() -> Self {
        HcaList { head: ptr::null_mut() }
    }

    /// Calls `f` for every Hca, in list order.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Hca)) {
        let mut at = self.head;
        while !at.is_null() {
            // SAFETY: listed Hcas are alive (see the Send impl) and only
            // shared references are made while the list's lock is held.
            let hca = unsafe { &*at };
            f(hca);
            // SAFETY: `next` is read under the list's lock, its only writer.
            at = unsafe { *hca.next.get() };
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// The lowest N no listed Hca uses.
    fn free_instance(&self) -> u32 {
        let mut n = 0;
        loop {
            let mut used = false;
            self.for_each(|hca| used |= hca.instance == n);
            if !used {
                return n;
            }
            n += 1;
        }
    }

    /// Links an Hca.
    ///
    /// # Safety
    /// `hca` is a fully initialised Hca, in no list, alive until unlinked.
    unsafe fn push(&mut self, hca: *mut Hca) {
        // SAFETY: (caller) a valid Hca.
        let link = unsafe { (*hca).next.get() };
        // SAFETY: its link is ours to write under the list's lock.
        unsafe { *link = self.head };
        self.head = hca;
    }

    /// Unlinks an Hca, if it is listed.
    fn unlink(&mut self, hca: *mut Hca) {
        let mut at: *mut *mut Hca = &raw mut self.head;
        loop {
            // SAFETY: `at` is the head or the link of a live listed Hca.
            let current = unsafe { *at };
            if current.is_null() {
                return;
            }
            // SAFETY: `current` is listed, hence alive.
            let next = unsafe { (*current).next.get() };
            if current == hca {
                // SAFETY: `next` is the link of a live listed Hca, read under the lock.
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

/// A kernel name: a prefix and a decimal number, in a fixed UTF-16 buffer.
pub(crate) struct Name {
    units: [u16; 40],
    len: usize,
}

impl Name {
    /// `prefix` followed by `n` in decimal.
    pub(crate) fn new(prefix: &str, n: u32) -> Self {
        let mut name = Name { units: [0; 40], len: 0 };
        for c in prefix.encode_utf16() {
            name.push(c);
        }
        let mut digits = [0u16; 10];
        let (mut rest, mut count) = (n, 0);
        loop {
            // CAST: a decimal digit.
            digits[count] = u16::from(b'0' + (rest % 10) as u8);
            count += 1;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        for &d in digits[..count].iter().rev() {
            name.push(d);
        }
        name
    }

    fn push(&mut self, c: u16) {
        if self.len < self.units.len() {
            self.units[self.len] = c;
            self.len += 1;
        }
    }

    /// A UNICODE_STRING over the name (rebuilt per call: the struct may move).
    pub(crate) fn unicode(&mut self) -> UNICODE_STRING {
        // CAST: at most 40 UTF-16 units.
        let bytes = (self.len * 2) as u16;
        UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: self.units.as_mut_ptr() }
    }
}

/// A device interface registered for the PDO (`IoRegisterDeviceInterface`):
/// enabled while the device is started; disabled and its name freed on drop.
/// For discovery only: the path leads to the HCA's stack, which serves no
/// tool; the device's hardware key names the control device to open
/// ([`publish_control_name`]).
pub(crate) struct DeviceInterface {
    name: UNICODE_STRING,
    enabled: bool,
}

impl DeviceInterface {
    /// IRQL: PASSIVE_LEVEL.
    pub(crate) fn register(pdo: PDEVICE_OBJECT) -> Result<Self, NTSTATUS> {
        let mut name = UNICODE_STRING::default();
        // SAFETY: `pdo` is the stack's PDO; the system allocates the name, which Drop frees.
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

/// The value of the device's hardware key (`Device Parameters`) that names
/// its control device, for tools that find the HCA through the device
/// interface: `SetupDiOpenDevRegKey(DIREG_DEV)`, value
/// `MlnxHcaControlDevice`, `REG_SZ` `\\.\mlnx_hca<N>`.
const CONTROL_DEVICE_VALUE: &str = "MlnxHcaControlDevice";

/// Writes (`Some(N)`) or deletes (`None`) the hardware key's
/// `MlnxHcaControlDevice`. Best effort: a failure is logged (tools can still
/// open `\\.\mlnx_hca<N>` by name). IRQL: PASSIVE_LEVEL.
pub(crate) fn publish_control_name(pdo: PDEVICE_OBJECT, instance: Option<u32>) {
    let mut raw: wdk_sys::HANDLE = ptr::null_mut();
    // SAFETY: the stack's PDO; a kernel handle to its hardware key, closed below.
    let status =
        unsafe { IoOpenDeviceRegistryKey(pdo, wdk_sys::PLUGPLAY_REGKEY_DEVICE, wdk_sys::KEY_SET_VALUE, &raw mut raw) };
    if !nt_success(status) {
        trace!("IoOpenDeviceRegistryKey failed: {:#x}; {} not written", status, CONTROL_DEVICE_VALUE);
        return;
    }
    let value_name: Vec<u16> = CONTROL_DEVICE_VALUE.encode_utf16().collect();
    // CAST: a short constant name.
    let bytes = (value_name.len() * 2) as u16;
    let mut value_name = UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: value_name.as_ptr().cast_mut() };
    let status = match instance {
        Some(n) => {
            let mut data = Name::new(r"\\.\mlnx_hca", n);
            data.push(0);
            // SAFETY: the key handle and the name live across the call; the
            // data is `len` UTF-16 units with the terminating NUL.
            unsafe {
                ZwSetValueKey(
                    raw,
                    &raw mut value_name,
                    0,
                    wdk_sys::REG_SZ,
                    data.units.as_mut_ptr().cast(),
                    // CAST: at most 80 bytes.
                    (data.len * 2) as ULONG,
                )
            }
        }
        // SAFETY: the key handle and the name live across the call.
        None => unsafe { ZwDeleteValueKey(raw, &raw mut value_name) },
    };
    if !nt_success(status) && instance.is_some() {
        trace!("writing {} failed: {:#x}", CONTROL_DEVICE_VALUE, status);
    }
    // SAFETY: the handle opened above, closed once.
    let _ = unsafe { ZwClose(raw) };
}

/// `\DosDevices\mlnx_hca<N>` pointing at the control device
/// `\Device\mlnx_hca<N>`, so tools can open `\\.\mlnx_hca<N>`. Deleted on
/// drop.
pub(crate) struct SymbolicLink {
    name: Name,
}

impl SymbolicLink {
    /// IRQL: PASSIVE_LEVEL.
    pub(crate) fn create(instance: u32) -> Result<Self, NTSTATUS> {
        let mut link = SymbolicLink { name: Name::new(r"\DosDevices\mlnx_hca", instance) };
        let mut target = Name::new(r"\Device\mlnx_hca", instance);
        let mut name = link.name.unicode();
        let mut target = target.unicode();
        // SAFETY: both strings point to live buffers for the call.
        let status = unsafe { IoCreateSymbolicLink(&raw mut name, &raw mut target) };
        if nt_success(status) {
            Ok(link)
        } else {
            Err(status)
        }
    }
}

impl Drop for SymbolicLink {
    fn drop(&mut self) {
        let mut name = self.name.unicode();
        // SAFETY: the link `create` made, deleted once. IRQL: PASSIVE_LEVEL
        // (PnP dispatch or REMOVE_DEVICE teardown).
        let _ = unsafe { IoDeleteSymbolicLink(&raw mut name) };
    }
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
        buffer.try_reserve_exact(units).map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
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

/// The role for the PDO: its hardware ids (a REG_MULTI_SZ), read as ASCII,
/// handed to the core. No ids (a property the bus cannot answer): a filter
/// that serves nothing.
fn role_of(pdo: PDEVICE_OBJECT) -> Role {
    let ids = device_property(pdo, DEVICE_REGISTRY_PROPERTY::DevicePropertyHardwareID).unwrap_or_default();
    let mut texts: Vec<Vec<u8>> = Vec::new();
    for id in ids.split(|&c| c == 0).filter(|id| !id.is_empty()) {
        // CAST: hardware ids are ASCII; anything else becomes '?' and matches nothing.
        let ascii: Vec<u8> = id.iter().map(|&c| if c < 0x80 { c as u8 } else { b'?' }).collect();
        if texts.try_reserve(1).is_err() {
            break;
        }
        texts.push(ascii);
    }
    Role::for_device(texts.iter().filter_map(|t| ::core::str::from_utf8(t).ok()))
}

// ---------------------------------------------------------------- AddDevice / teardown

/// `AddDevice`: creates the stack device object (the FDO, or a lower filter
/// with the lower device's type, characteristics and I/O flags, as a filter
/// must) and attaches it. The control device comes at the first start.
///
/// IRQL: PASSIVE_LEVEL.
pub(crate) unsafe extern "C" fn add_device(driver: *mut DRIVER_OBJECT, pdo: PDEVICE_OBJECT) -> NTSTATUS {
    let role = role_of(pdo);
    let mut device: PDEVICE_OBJECT = ptr::null_mut();
    let (device_type, characteristics) = if role.is_function() {
        (wdk_sys::FILE_DEVICE_INFINIBAND, wdk_sys::FILE_DEVICE_SECURE_OPEN)
    } else {
        // SAFETY: the PDO AddDevice received is alive for the call.
        let below = unsafe { &*pdo };
        (below.DeviceType, below.Characteristics)
    };
    // SAFETY: creates an unnamed device object with our stack extension; `device` receives it.
    let status = unsafe {
        IoCreateDevice(
            driver,
            // CAST: the extension is a few hundred bytes.
            size_of::<StackExtension>() as ULONG,
            ptr::null_mut(),
            device_type,
            characteristics,
            FALSE,
            &raw mut device,
        )
    };
    if !nt_success(status) {
        trace!("AddDevice: IoCreateDevice failed: {:#x}", status);
        return status;
    }
    // SAFETY: attaches our new device object on top of the PDO's stack.
    let lower = unsafe { IoAttachDeviceToDeviceStack(device, pdo) };
    if lower.is_null() {
        trace!("AddDevice: IoAttachDeviceToDeviceStack failed");
        // SAFETY: our device object, attached to nothing, its extension never written.
        unsafe { IoDeleteDevice(device) };
        return STATUS_NO_SUCH_DEVICE;
    }
    // SAFETY: `device` was just created by us.
    let ext_ptr = unsafe { (*device).DeviceExtension.cast::<StackExtension>() };
    let extension = StackExtension {
        kind: Kind::Stack,
        device,
        lower,
        pdo,
        role,
        remove_lock: RemoveLock::new(),
        hca: AtomicPtr::new(ptr::null_mut()),
        pnp: UnsafeCell::new(PnpOnly { link: None, interface: None }),
    };
    // SAFETY: the extension memory IoCreateDevice allocated for exactly this
    // type (its size above; 16-byte aligned after the DEVICE_OBJECT), unused.
    unsafe { ext_ptr.write(extension) };
    // SAFETY: initialised just above; nothing else sees the device yet.
    let ext = unsafe { &*ext_ptr };
    // SAFETY: once, before any acquire; the extension does not move.
    unsafe { ext.remove_lock.init() };
    // SAFETY: our device object; AddDevice may set its flags.
    let flags = unsafe { &mut (*device).Flags };
    if role.is_function() {
        *flags |= wdk_sys::DO_BUFFERED_IO | wdk_sys::DO_POWER_PAGABLE;
    } else {
        // A filter takes the I/O and power flags of the device below it.
        // SAFETY: the lower device is alive while we are attached to it.
        let below = unsafe { (*lower).Flags };
        *flags |= below
            & (wdk_sys::DO_BUFFERED_IO | wdk_sys::DO_DIRECT_IO | wdk_sys::DO_POWER_PAGABLE | wdk_sys::DO_POWER_INRUSH);
    }
    *flags &= !wdk_sys::DO_DEVICE_INITIALIZING;
    match role {
        Role::Function { hca, simulated } => {
            trace!("AddDevice: function driver of {} (simulated {})", hca.name, u32::from(simulated));
        }
        Role::Filter { hca: Some(hca) } => trace!("AddDevice: lower filter of {}", hca.name),
        Role::Filter { hca: None, .. } => trace!("AddDevice: lower filter of an HCA it does not know: serves nothing"),
    }
    STATUS_SUCCESS
}

/// The end of `IRP_MN_REMOVE_DEVICE`, after the IRP went down: detaches the
/// stack device, drops its extension (interface, link) and deletes it.
///
/// # Safety
/// REMOVE_DEVICE's remove lock wait is over (no IRP of the stack device is in
/// flight and none can start), its Hca retired, and the caller does not use
/// the extension afterwards.
pub(crate) unsafe fn destroy(ext: *mut StackExtension) {
    let (device, lower) = {
        // SAFETY: (caller) alive until the drop below; this borrow ends first.
        let extension = unsafe { &*ext };
        (extension.device, extension.lower)
    };
    // SAFETY: detaches from the device AddDevice attached us to.
    unsafe { IoDetachDevice(lower) };
    // SAFETY: (caller) no other reference remains; dropped once.
    unsafe { ptr::drop_in_place(ext) };
    // SAFETY: our stack device object, detached; the I/O manager frees it when unreferenced.
    unsafe { IoDeleteDevice(device) };
}
