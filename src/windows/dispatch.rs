//! The one dispatch routine of every major function ([`dispatch`]), routed
//! by the core (`core::hca::route`), and the four requests of a control
//! device: `IRP_MJ_CREATE`, `IRP_MJ_CLEANUP`, `IRP_MJ_CLOSE`,
//! `IRP_MJ_DEVICE_CONTROL`, each one call on the HCA's core under the device
//! lock, completed with the core's answer. On a stack device none of them
//! serves a tool: the function driver refuses them
//! (`STATUS_INVALID_DEVICE_REQUEST`), a filter passes them down untouched.
//!
//! Control-device IRPs take no remove lock: they never touch the stack. The
//! HCA's state keeps them safe: after removal the core answers
//! `STATUS_DELETE_PENDING` and holds no BAR, and its memory lasts until
//! unload (`device::Hca`).
//!
//! The per-handle context (`UmCa`) lives in the core; the file object keeps
//! its id: `FsContext` = `CaId::to_raw()`, `FsContext2` = a marker with the
//! access the handle was granted at create (see [`FileContext`]).

use super::device::{ours, Hca, Ours, StackExtension};
use super::kernel::{address_space_pid, current_pid, Irp};
use super::log::trace;
use super::pnp;
use crate::abi::Access;
use crate::core::hca::{route, Route, Target, ToolRequest};
use crate::core::{CaId, Requester};
use ::core::ptr;
use ::core::slice;
use wdk_sys::ntddk::{IoIs32bitProcess, PoStartNextPowerIrp};
use wdk_sys::{
    DEVICE_OBJECT, IO_STACK_LOCATION, IRP, NTSTATUS, PFILE_OBJECT, STATUS_INVALID_DEVICE_REQUEST,
    STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};

/// What the file object of a handle to our device carries.
#[derive(Clone, Copy)]
struct FileContext {
    ca: CaId,
    access: Access,
}

/// `FsContext2` of our file objects: this marker in the high half, the
/// granted [`Access`] bits in the low bits. A file object without it has no
/// context of ours (its create failed, or it is not ours).
const CONTEXT_MARKER: usize = 0x4D4C_4E58_0000_0000; // "MLNX"
const MARKER_MASK: usize = 0xFFFF_FFFF_0000_0000;

impl FileContext {
    fn load(file: PFILE_OBJECT) -> Option<Self> {
        if file.is_null() {
            return None;
        }
        // SAFETY: the I/O manager's file object for this IRP, alive while the
        // IRP is; only its two driver-owned context fields are read.
        let file = unsafe { &*file };
        let tag = file.FsContext2.addr();
        if tag & MARKER_MASK != CONTEXT_MARKER {
            return None;
        }
        // CAST: the low bits hold the access bits we stored.
        let access = Access::from_bits_truncate((tag & !MARKER_MASK) as u32);
        // CAST: FsContext holds the 64-bit CaId::to_raw() (pointers are 64 bits).
        Some(FileContext { ca: CaId::from_raw(file.FsContext.addr() as u64), access })
    }

    fn store(self, file: PFILE_OBJECT) {
        // SAFETY: the file object being created; its FsContext fields belong
        // to the driver that owns the device.
        let file = unsafe { &mut *file };
        // CAST: to_raw() packs two u32 halves in 64 bits, a pointer's width.
        file.FsContext = ptr::without_provenance_mut(self.ca.to_raw() as usize);
        // CAST: Access bits are the low two bits.
        file.FsContext2 = ptr::without_provenance_mut(CONTEXT_MARKER | self.access.bits() as usize);
    }

    fn clear(file: PFILE_OBJECT) {
        // SAFETY: as in `store`; at close the file object is still ours.
        let file = unsafe { &mut *file };
        file.FsContext = ptr::null_mut();
        file.FsContext2 = ptr::null_mut();
    }
}

/// The access the handle was granted: `AccessState->PreviouslyGrantedAccess`
/// of the create (the I/O manager already checked the device's security
/// descriptor, the INF's SDDL, against what the caller asked for).
/// `FILE_READ_DATA` / `FILE_WRITE_DATA` (or the generic rights, if still
/// unmapped) become [`Access::READ`] / [`Access::WRITE`].
///
/// A host that passes no security context (Wine) gets both bits: the I/O
/// manager's own check of each code's access bits against the handle, which
/// Windows and Wine both do before the driver sees the request, is then the
/// only check. Windows always passes the context.
fn granted_access(stack: &IO_STACK_LOCATION) -> Access {
    // SAFETY: IRP_MJ_CREATE: `Create` is the live member of the union.
    let create = unsafe { stack.Parameters.Create };
    if create.SecurityContext.is_null() {
        return Access::READ | Access::WRITE;
    }
    // SAFETY: the I/O manager's security context for this create.
    let context = unsafe { &*create.SecurityContext };
    let mask = if context.AccessState.is_null() {
        context.DesiredAccess
    } else {
        // SAFETY: the access state the I/O manager passed with the context.
        unsafe { (*context.AccessState).PreviouslyGrantedAccess }
    };
    let mut access = Access::empty();
    if mask & (wdk_sys::FILE_READ_DATA | wdk_sys::GENERIC_READ | wdk_sys::GENERIC_ALL) != 0 {
        access |= Access::READ;
    }
    if mask & (wdk_sys::FILE_WRITE_DATA | wdk_sys::GENERIC_WRITE | wdk_sys::GENERIC_ALL) != 0 {
        access |= Access::WRITE;
    }
    access
}

// ---------------------------------------------------------------- routing

/// Every major function of every device object of the driver: the core's
/// [`route`] decides from the device's kind (and role) and the major
/// function what happens to the IRP. A filter looks at nothing but PnP and
/// power and passes all else down at once.
///
/// IRQL: as the I/O manager sends each IRP (PASSIVE_LEVEL for the ones we
/// serve; a filter passes on the others as they come).
pub(crate) unsafe extern "C" fn dispatch(device: *mut DEVICE_OBJECT, raw: *mut IRP) -> NTSTATUS {
    // SAFETY: called by the I/O manager as a dispatch routine: `device` is ours and live.
    let ours = unsafe { ours(device) };
    // SAFETY: the I/O manager's IRP, ours until completed or passed down.
    let irp = unsafe { Irp::from_raw(raw) };
    let major = irp.stack().MajorFunction;
    let target = match ours {
        Ours::Stack(_, stack) => Target::Stack(stack.role),
        Ours::Control(_) => Target::Control,
    };
    match (route(target, major), ours) {
        (Route::PassDown, Ours::Stack(_, stack)) => pass_down(stack, irp),
        // SAFETY: the stack device's own IRP, dispatched here.
        (Route::Pnp, Ours::Stack(ext_ptr, stack)) => unsafe { pnp::pnp(ext_ptr, stack, irp) },
        (Route::Power, Ours::Stack(ext_ptr, stack)) => pnp::power(ext_ptr, stack, irp),
        (Route::Tool(request), Ours::Control(control)) => {
            let hca = control.hca();
            match request {
                ToolRequest::Create => create(hca, irp),
                ToolRequest::Cleanup => cleanup(hca, irp),
                ToolRequest::Close => close(hca, irp),
                ToolRequest::DeviceControl => control_request(hca, irp),
            }
        }
        (Route::Succeed, _) => irp.complete(STATUS_SUCCESS, 0),
        (_, ours) => {
            if major == crate::core::hca::major::POWER {
                // SAFETY: a power IRP, completed here.
                unsafe { PoStartNextPowerIrp(raw) };
            }
            if let Ours::Stack(_, stack) = ours {
                if stack.role.is_function() && major == crate::core::hca::major::CREATE {
                    trace!("CREATE of the stack device refused: tools open \\\\.\\mlnx_hca<N>");
                }
            }
            irp.complete(STATUS_INVALID_DEVICE_REQUEST, 0)
        }
    }
}

/// Down the stack, untouched, under the remove lock (the device below stays
/// until the call returns).
fn pass_down(stack: &StackExtension, irp: Irp) -> NTSTATUS {
    let _hold = match stack.remove_lock.acquire(irp) {
        Ok(hold) => hold,
        Err(status) => return irp.complete(status, 0),
    };
    irp.skip();
    irp.call(stack.lower)
}

// ---------------------------------------------------------------- the control device

/// `IRP_MJ_CREATE`: a new handle (file object) gets a context in the core.
///
/// IRQL: PASSIVE_LEVEL, in the opener's thread. Takes: the device lock.
fn create(hca: &Hca, irp: Irp) -> NTSTATUS {
    let stack = irp.stack();
    let (file, access, pid) = (stack.FileObject, granted_access(stack), current_pid());
    if file.is_null() {
        return irp.complete(STATUS_INVALID_DEVICE_REQUEST, 0);
    }
    // The device has no namespace: `\\.\mlnx_hca0\anything` is refused, as
    // Microsoft's rules for DispatchCreate say (FILE_DEVICE_SECURE_OPEN also
    // makes the I/O manager check the device's ACL for such a name).
    // SAFETY: the I/O manager's file object for this create, valid during it.
    if unsafe { (*file).FileName.Length } != 0 {
        trace!("CREATE pid {} refused: a name after the device's", pid);
        return irp.complete(STATUS_INVALID_PARAMETER, 0);
    }
    let opened = hca.core.lock().open();
    match opened {
        Ok(ca) => {
            FileContext { ca, access }.store(file);
            trace!(
                "CREATE mlnx_hca{} pid {}: context {:#x}, access {:#x}",
                hca.instance,
                pid,
                ca.to_raw(),
                access.bits()
            );
            irp.complete(STATUS_SUCCESS, 0)
        }
        Err(status) => {
            trace!("CREATE mlnx_hca{} pid {} refused: {:#x}", hca.instance, pid, status.raw());
            irp.complete(status.raw(), 0)
        }
    }
}

/// `IRP_MJ_CLEANUP`: the last handle to the file object was closed (also by
/// process termination): the core unmaps every view of the context, each in
/// its owner process (the platform attaches when this thread runs
/// elsewhere), and gives the write lease back.
///
/// IRQL: PASSIVE_LEVEL, in the thread that closed the handle. Takes: the
/// device lock.
fn cleanup(hca: &Hca, irp: Irp) -> NTSTATUS {
    if let Some(context) = FileContext::load(irp.stack().FileObject) {
        let unmapped = hca.core.lock().cleanup(context.ca);
        // CAST: bounded by the per-handle quota.
        trace!(
            "CLEANUP mlnx_hca{} pid {}: context {:#x}, {} view(s) unmapped",
            hca.instance,
            current_pid(),
            context.ca.to_raw(),
            unmapped as u32
        );
    }
    irp.complete(STATUS_SUCCESS, 0)
}

/// `IRP_MJ_CLOSE`: the file object's last reference is gone: the core frees
/// the context, and first releases whatever cleanup did not. On Windows
/// `IRP_MJ_CLEANUP` always came first and this finds nothing; Wine never sends
/// `IRP_MJ_CLEANUP`, so there this is where views and the lease go. (Close
/// runs in an arbitrary process; the platform attaches to each view's owner.)
///
/// IRQL: PASSIVE_LEVEL (APC_LEVEL at most). Takes: the device lock.
fn close(hca: &Hca, irp: Irp) -> NTSTATUS {
    let file = irp.stack().FileObject;
    if let Some(context) = FileContext::load(file) {
        let leftover = hca.core.lock().close(context.ca);
        FileContext::clear(file);
        // CAST: bounded by the per-handle quota.
        trace!(
            "CLOSE mlnx_hca{}: context {:#x} freed ({} view(s) cleanup had left)",
            hca.instance,
            context.ca.to_raw(),
            leftover as u32
        );
    }
    irp.complete(STATUS_SUCCESS, 0)
}

/// `IRP_MJ_DEVICE_CONTROL`, METHOD_BUFFERED: the system buffer holds the
/// input; the core reads it once (decoding a copy of the block) and only then
/// is the response written over the same buffer. `Information` is the bytes
/// written on success, 0 on failure.
///
/// IRQL: PASSIVE_LEVEL. A map or unmap is carried out only for a user-mode
/// request running in its requester's own process (`RequestorMode` and
/// `IoGetRequestorProcess`): a driver above could have passed the request on
/// from a worker thread, whose current process (where a view would go) is
/// another. Views are recorded under the process whose address space they
/// live in. Takes: the device lock.
fn control_request(hca: &Hca, irp: Irp) -> NTSTATUS {
    let stack = irp.stack();
    // SAFETY: IRP_MJ_DEVICE_CONTROL: `DeviceIoControl` is the live member.
    let parameters = unsafe { stack.Parameters.DeviceIoControl };
    let code = parameters.IoControlCode;
    let Some(context) = FileContext::load(stack.FileObject) else {
        return irp.complete(STATUS_INVALID_DEVICE_REQUEST, 0);
    };
    let buffer = irp.system_buffer();
    // CAST: ULONG lengths fit usize.
    let (input_len, output_len) = if buffer.is_null() {
        (0, 0)
    } else {
        (parameters.InputBufferLength as usize, parameters.OutputBufferLength as usize)
    };
    // SAFETY: the IRP being dispatched, in its requester's thread.
    let wow64 = unsafe { IoIs32bitProcess(irp.raw()) } != 0;
    let requester = Requester {
        pid: address_space_pid(),
        in_own_context: i32::from(irp.requestor_mode()) == wdk_sys::_MODE::UserMode && irp.runs_in_requestor(),
        addresses_end: if wow64 { Requester::ADDRESSES_32 } else { Requester::ADDRESSES_64 },
    };
    let caller = requester.pid;
    let result = {
        let input: &[u8] = if input_len == 0 {
            &[]
        } else {
            // SAFETY: METHOD_BUFFERED: the system buffer holds max(input, output) bytes, the first `input_len` the
            // caller's input; no mutable view of it exists while this slice lives.
            unsafe { slice::from_raw_parts(buffer, input_len) }
        };
        hca.core.lock().device_control(context.ca, requester, context.access, code, input, output_len)
    }; // the input slice ends here, before the buffer is written
    match result {
        Ok(response) => {
            let output: &mut [u8] = if output_len == 0 {
                &mut []
            } else {
                // SAFETY: the system buffer's first `output_len` bytes are the
                // output, copied back to the caller; the input slice is gone.
                unsafe { slice::from_raw_parts_mut(buffer, output_len) }
            };
            let written = response.encode(output);
            if code != crate::abi::FW_QUERY_CRSPACE {
                // CAST: bounded by the output block sizes.
                trace!("IOCTL {:#x} mlnx_hca{} pid {}: ok, {} byte(s)", code, hca.instance, caller, written as u32);
            }
            // CAST: usize to the ULONG_PTR Information.
            irp.complete(STATUS_SUCCESS, written as u64)
        }
        Err(status) => {
            trace!("IOCTL {:#x} mlnx_hca{} pid {}: {:#x}", code, hca.instance, caller, status.raw());
            irp.complete(status.raw(), 0)
        }
    }
}
