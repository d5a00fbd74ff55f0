//! The configuration space of an HCA whose CR space is behind the gateway
//! (Connect-IB, ConnectX-4 and later; `core::gateway` runs the protocol):
//!
//! - [`BusInterface`]: a real HCA's, through the PCI bus driver's
//!   `BUS_INTERFACE_STANDARD`, queried from the stack below with
//!   `IRP_MN_QUERY_INTERFACE` at start (in both roles: the function driver
//!   of a flash-recovery HCA and the filter below WinOF-2), dereferenced at
//!   stop, surprise removal and removal. `GetBusData`/`SetBusData` with
//!   `PCI_WHICHSPACE_CONFIG` are callable at IRQL <= DISPATCH_LEVEL, so the
//!   core calls them under the device's fast mutex (APC_LEVEL).
//!   `IRP_MN_READ_CONFIG`/`WRITE_CONFIG` are for bus drivers only.
//! - [`EmulatedHca`]: the root test device `root\mlnx_hca_sim4`, a
//!   ConnectX-4 whose configuration space and address spaces live in
//!   nonpaged pool (`core::simulated::gateway`, the same device model the
//!   Linux simulator runs), so that a host without the hardware (a VM,
//!   Wine) drives the gateway codes end to end.
//!
//! Windows says a driver must not change the registers of a capability in
//! the capability list; the gateway is such a capability, and the vendor's
//! own tools (WinMFT) write it all the same. Whether a given Windows lets
//! these writes through is proven only on a real host: the acceptance kit
//! checks it first.

use super::alloc;
use super::kernel::{self, nt_success};
use super::log::trace;
use crate::core::gateway::ConfigSpace;
use crate::core::hca::MELLANOX;
use crate::core::simulated::gateway::{EmulatedGateway, GatewayFaults, DEVICE_BYTES};
use crate::core::simulated::{SIM4_DEVICE_ID, SIM4_PCI_DEVICE_ID};
use crate::status::{Result, Status};
use ::core::mem::size_of;
use ::core::ptr::{self, NonNull};
use ::core::sync::atomic::AtomicU32;
use wdk_sys::ntddk::{IoBuildSynchronousFsdRequest, IofCallDriver};
use wdk_sys::{
    BUS_INTERFACE_STANDARD, GUID, IO_STATUS_BLOCK, KEVENT, NTSTATUS, PDEVICE_OBJECT, STATUS_NOT_SUPPORTED,
    STATUS_PENDING,
};

/// `GUID_BUS_INTERFACE_STANDARD` (`wdmguid.h`):
/// {496B8280-6F25-11D0-BEAF-08002BE2092F}.
static GUID_BUS_INTERFACE_STANDARD: GUID =
    GUID { Data1: 0x496b_8280, Data2: 0x6f25, Data3: 0x11d0, Data4: [0xbe, 0xaf, 0x08, 0x00, 0x2b, 0xe2, 0x09, 0x2f] };

/// How the core reaches a gateway device's configuration space.
pub(crate) enum ConfigAccess {
    /// A real HCA: the PCI bus driver's interface.
    Bus(BusInterface),
    /// The root test device: the emulated ConnectX-4.
    Emulated(EmulatedHca),
}

impl ConfigSpace for ConfigAccess {
    fn read(&mut self, offset: u32) -> Result<u32> {
        match self {
            ConfigAccess::Bus(bus) => bus.read(offset),
            ConfigAccess::Emulated(hca) => Ok(hca.device().config_read(offset)),
        }
    }

    fn write(&mut self, offset: u32, value: u32) -> Result<()> {
        match self {
            ConfigAccess::Bus(bus) => bus.write(offset, value),
            ConfigAccess::Emulated(hca) => {
                hca.device().config_write(offset, value);
                Ok(())
            }
        }
    }

    fn pause(&mut self) -> u32 {
        kernel::sleep_a_millisecond()
    }
}

// ---------------------------------------------------------------- the bus interface

/// The PCI bus driver's `BUS_INTERFACE_STANDARD` for the device, with the
/// reference the bus driver took when it handed it out; dropped with
/// `InterfaceDereference`.
pub(crate) struct BusInterface(BUS_INTERFACE_STANDARD);

// SAFETY: the interface is a table of the bus driver's routines and their
// context, callable from any thread; it moves with the core under the
// device lock.
unsafe impl Send for BusInterface {}

impl BusInterface {
    /// Asks the stack below `lower` (down to the PCI bus driver's PDO) for
    /// the interface, version 1, with `IRP_MN_QUERY_INTERFACE`. The error
    /// is the lower drivers' status (`STATUS_NOT_SUPPORTED` when nobody
    /// answered: a bus with no configuration space, e.g. a root-enumerated
    /// device).
    ///
    /// IRQL: PASSIVE_LEVEL, no lock held (waits for the lower drivers).
    pub(crate) fn query(lower: PDEVICE_OBJECT) -> ::core::result::Result<Self, NTSTATUS> {
        let mut interface = BUS_INTERFACE_STANDARD {
            Size: 0,
            Version: 0,
            Context: ptr::null_mut(),
            InterfaceReference: None,
            InterfaceDereference: None,
            TranslateBusAddress: None,
            GetDmaAdapter: None,
            SetBusData: None,
            GetBusData: None,
        };
        let mut event = KEVENT::default();
        kernel::init_event(&mut event);
        let mut io_status = IO_STATUS_BLOCK::default();
        // We stay attached until REMOVE_DEVICE, which cannot run while our
        // START or stop handling does; the I/O manager frees the IRP.
        // SAFETY: a PnP IRP for the device we are attached to, no buffer; the
        // event and the status block outlive the request (we wait below).
        let irp = unsafe {
            IoBuildSynchronousFsdRequest(
                wdk_sys::IRP_MJ_PNP,
                lower,
                ptr::null_mut(),
                0,
                ptr::null_mut(),
                &raw mut event,
                &raw mut io_status,
            )
        };
        let Some(irp) = NonNull::new(irp) else { return Err(wdk_sys::STATUS_INSUFFICIENT_RESOURCES) };
        // SAFETY: a place projection inside the fresh IRP, no read.
        let status_slot = unsafe { &raw mut (*irp.as_ptr()).IoStatus.__bindgen_anon_1.Status };
        // SAFETY: the fresh IRP is ours until IoCallDriver: a PnP IRP starts
        // as STATUS_NOT_SUPPORTED (what it ends as if no driver handles it).
        unsafe { status_slot.write(STATUS_NOT_SUPPORTED) };
        // SAFETY: a place projection inside the fresh IRP, no read.
        let location_slot =
            unsafe { &raw const (*irp.as_ptr()).Tail.Overlay.__bindgen_anon_2.__bindgen_anon_1.CurrentStackLocation };
        // SAFETY: IoBuildSynchronousFsdRequest set the current location (one
        // past the IRP's last).
        let current = unsafe { location_slot.read() };
        // IoGetNextIrpStackLocation of a fresh IRP (built with as many
        // locations as `lower`'s stack needs).
        // SAFETY: the location below the current one exists, and is ours to
        // fill in until IoCallDriver.
        let next = unsafe { &mut *current.wrapping_sub(1) };
        // CAST: IRP_MN_QUERY_INTERFACE (8) fits the UCHAR.
        next.MinorFunction = wdk_sys::IRP_MN_QUERY_INTERFACE as u8;
        // The GUID is static and the interface outlives the request.
        // SAFETY: Parameters.QueryInterface is IRP_MN_QUERY_INTERFACE's member.
        unsafe {
            let query = &mut next.Parameters.QueryInterface;
            query.InterfaceType = &raw const GUID_BUS_INTERFACE_STANDARD;
            // CAST: 64 bytes.
            query.Size = size_of::<BUS_INTERFACE_STANDARD>() as u16;
            query.Version = 1;
            query.Interface = (&raw mut interface).cast();
            query.InterfaceSpecificData = ptr::null_mut();
        }
        // SAFETY: sends the IRP we built to the device we are attached to.
        let mut status = unsafe { IofCallDriver(lower, irp.as_ptr()) };
        if status == STATUS_PENDING {
            // The I/O manager signals completion on our event, which lives
            // until we return.
            kernel::wait_event(&mut event);
            // SAFETY: the I/O manager wrote the final status before the event.
            status = unsafe { io_status.__bindgen_anon_1.Status };
        }
        if !nt_success(status) {
            return Err(status);
        }
        let bus = BusInterface(interface);
        // Without both routines the interface is of no use (and a bus driver
        // that answered gave a reference, which `bus`'s drop gives back).
        if interface.GetBusData.is_none() || interface.SetBusData.is_none() {
            trace!("the bus interface has no GetBusData/SetBusData");
            return Err(STATUS_NOT_SUPPORTED);
        }
        Ok(bus)
    }

    /// `GetBusData(PCI_WHICHSPACE_CONFIG)` of one dword.
    ///
    /// IRQL: <= DISPATCH_LEVEL.
    fn read(&self, offset: u32) -> Result<u32> {
        let get = self.0.GetBusData.ok_or(Status::NOT_SUPPORTED)?;
        let mut value = 0u32;
        // SAFETY: the bus driver's routine with its own context, held
        // referenced; four bytes into our dword.
        let read = unsafe { get(self.0.Context, wdk_sys::PCI_WHICHSPACE_CONFIG, (&raw mut value).cast(), offset, 4) };
        if read != 4 {
            trace!("GetBusData({:#x}) read {} bytes", offset, read);
            return Err(Status::IO_DEVICE_ERROR);
        }
        Ok(value)
    }

    /// `SetBusData(PCI_WHICHSPACE_CONFIG)` of one dword.
    ///
    /// IRQL: <= DISPATCH_LEVEL.
    fn write(&self, offset: u32, value: u32) -> Result<()> {
        let set = self.0.SetBusData.ok_or(Status::NOT_SUPPORTED)?;
        let mut value = value;
        // SAFETY: as for `read`; four bytes from our dword.
        let written =
            unsafe { set(self.0.Context, wdk_sys::PCI_WHICHSPACE_CONFIG, (&raw mut value).cast(), offset, 4) };
        if written != 4 {
            trace!("SetBusData({:#x}) wrote {} bytes", offset, written);
            return Err(Status::IO_DEVICE_ERROR);
        }
        Ok(())
    }
}

impl Drop for BusInterface {
    fn drop(&mut self) {
        if let Some(dereference) = self.0.InterfaceDereference {
            // SAFETY: gives back the reference the bus driver took when it
            // answered the query, once.
            unsafe { dereference(self.0.Context) };
        }
    }
}

// ---------------------------------------------------------------- the emulated ConnectX-4

/// The root test device `root\mlnx_hca_sim4`: a ConnectX-4's configuration
/// space and address spaces (`DEVICE_BYTES`, about 6 MiB) in nonpaged pool,
/// as the device model defines them, powered on with the simulated
/// ConnectX-4's ids. Freed on drop.
pub(crate) struct EmulatedHca {
    cells: NonNull<AtomicU32>,
}

// SAFETY: the cells are atomics, touched only through them; the block is
// owned and moves with the core under the device lock.
unsafe impl Send for EmulatedHca {}

impl EmulatedHca {
    const CELLS: usize = (DEVICE_BYTES / 4) as usize;

    /// IRQL: <= DISPATCH_LEVEL.
    pub(crate) fn new() -> Result<Self> {
        let block = alloc::allocate(DEVICE_BYTES as usize).cast::<AtomicU32>();
        let cells = NonNull::new(block).ok_or(Status::INSUFFICIENT_RESOURCES)?;
        // Zero is the device's power-on state of every cell.
        // SAFETY: the fresh block is ours, DEVICE_BYTES long; pool blocks are
        // at least 16-byte aligned, enough for AtomicU32.
        unsafe { ptr::write_bytes(cells.as_ptr().cast::<u8>(), 0, DEVICE_BYTES as usize) };
        let hca = EmulatedHca { cells };
        hca.device().power_on(MELLANOX, SIM4_PCI_DEVICE_ID, SIM4_DEVICE_ID);
        Ok(hca)
    }

    /// The device model over the cells (no faults armed).
    fn device(&self) -> EmulatedGateway<'_, [AtomicU32]> {
        EmulatedGateway::new(self.cells(), GatewayFaults::default())
    }

    fn cells(&self) -> &[AtomicU32] {
        // SAFETY: `new` made CELLS initialised atomics there, alive until drop.
        unsafe { ::core::slice::from_raw_parts(self.cells.as_ptr(), Self::CELLS) }
    }
}

impl Drop for EmulatedHca {
    fn drop(&mut self) {
        // SAFETY: the block `new` allocated, freed once; no reference to the
        // cells outlives `self`.
        unsafe { alloc::free(self.cells.as_ptr().cast()) };
    }
}
