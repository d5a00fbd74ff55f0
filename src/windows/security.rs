//! Who may open a control device: SYSTEM and Administrators, plus the
//! groups an administrator grants read access in the registry value
//! `HKLM\SYSTEM\CurrentControlSet\Services\mlnx_hca\Parameters\ReadAccess`
//! (`REG_SZ`, SIDs separated by `;`), read when the control device is made
//! (an HCA's first start) and set on it before it accepts an open. A driver
//! update rewrites the INF's settings but not this value. The descriptor itself is the core's
//! ([`DeviceSecurity`]); a value that is not a list of SIDs is refused whole
//! and the default stays.
//!
//! IRQL: PASSIVE_LEVEL throughout (registry, handles).

use super::kernel::{nt_success, FastMutex};
use super::log::trace;
use crate::core::security::DeviceSecurity;
use ::core::mem::size_of;
use ::core::ptr;
use alloc::string::String;
use alloc::vec::Vec;
use wdk_sys::ntddk::{ObOpenObjectByPointer, ZwClose, ZwOpenKey, ZwQueryValueKey, ZwSetSecurityObject};
use wdk_sys::{
    HANDLE, KEY_VALUE_PARTIAL_INFORMATION, NTSTATUS, OBJECT_ATTRIBUTES, PCUNICODE_STRING, PDEVICE_OBJECT, ULONG,
    UNICODE_STRING,
};

/// The driver's service key plus `\Parameters`, NUL-free UTF-16, from
/// `DriverEntry`'s registry path.
pub(crate) static PARAMETERS_KEY: FastMutex<Vec<u16>> = FastMutex::new(Vec::new());

/// Name of the value.
const READ_ACCESS: &str = "ReadAccess";

/// Longest value read: eight SIDs of the longest form and their separators.
const MAX_VALUE_BYTES: usize = 8 * 2 * 200;

/// `DriverEntry`: remembers where the `Parameters` key is.
///
/// # Safety
/// `registry_path` is DriverEntry's argument; called once, before any other
/// use of [`PARAMETERS_KEY`], which was initialised.
pub(crate) unsafe fn remember_service_key(registry_path: PCUNICODE_STRING) {
    if registry_path.is_null() {
        return;
    }
    // SAFETY: (caller) the I/O manager's string, valid during DriverEntry.
    let path = unsafe { &*registry_path };
    // CAST: Length is in bytes.
    let units = usize::from(path.Length) / 2;
    let mut key = Vec::new();
    if key.try_reserve_exact(units + 11).is_err() || path.Buffer.is_null() {
        return;
    }
    // SAFETY: `Buffer` holds `Length` bytes.
    key.extend_from_slice(unsafe { ::core::slice::from_raw_parts(path.Buffer, units) });
    key.extend("\\Parameters".encode_utf16());
    *PARAMETERS_KEY.lock() = key;
}

/// A UNICODE_STRING over `units` (read-only use by the callee).
fn counted(units: &[u16]) -> UNICODE_STRING {
    // CAST: registry paths and value names are far below 32 Ki units.
    let bytes = (units.len() * 2) as u16;
    UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: units.as_ptr().cast_mut() }
}

/// An open kernel handle, closed on drop.
struct Handle(HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: a kernel handle this module opened, closed once.
        let _ = unsafe { ZwClose(self.0) };
    }
}

/// The `ReadAccess` value as text; `None` when there is none (or it is not
/// a readable `REG_SZ`, which is logged).
fn read_value() -> Option<String> {
    let key_path = PARAMETERS_KEY.lock().clone();
    if key_path.is_empty() {
        return None;
    }
    let mut name = counted(&key_path);
    let mut attributes = OBJECT_ATTRIBUTES {
        // CAST: the structure is 48 bytes.
        Length: size_of::<OBJECT_ATTRIBUTES>() as ULONG,
        RootDirectory: ptr::null_mut(),
        ObjectName: &raw mut name,
        Attributes: wdk_sys::OBJ_CASE_INSENSITIVE | wdk_sys::OBJ_KERNEL_HANDLE,
        SecurityDescriptor: ptr::null_mut(),
        SecurityQualityOfService: ptr::null_mut(),
    };
    let mut raw: HANDLE = ptr::null_mut();
    // SAFETY: the attributes and the name live across the call; `raw` receives the handle.
    let status = unsafe { ZwOpenKey(&raw mut raw, wdk_sys::KEY_READ, &raw mut attributes) };
    if !nt_success(status) {
        return None; // no Parameters key: nothing granted
    }
    let key = Handle(raw);
    let value_name: Vec<u16> = READ_ACCESS.encode_utf16().collect();
    let mut value_name = counted(&value_name);
    let header = size_of::<KEY_VALUE_PARTIAL_INFORMATION>();
    let mut buffer: Vec<u8> = Vec::new();
    if buffer.try_reserve_exact(header + MAX_VALUE_BYTES).is_err() {
        trace!("security: no memory to read {}", READ_ACCESS);
        return None;
    }
    buffer.resize(header + MAX_VALUE_BYTES, 0);
    let mut returned: ULONG = 0;
    // SAFETY: the buffer holds `len` bytes; `returned` receives the size.
    let status = unsafe {
        ZwQueryValueKey(
            key.0,
            &raw mut value_name,
            wdk_sys::_KEY_VALUE_INFORMATION_CLASS::KeyValuePartialInformation,
            buffer.as_mut_ptr().cast(),
            // CAST: a few KiB.
            buffer.len() as ULONG,
            &raw mut returned,
        )
    };
    if !nt_success(status) {
        if status != wdk_sys::STATUS_OBJECT_NAME_NOT_FOUND {
            trace!("security: reading {} failed: {:#x}; the default stays", READ_ACCESS, status);
        }
        return None;
    }
    // SAFETY: ZwQueryValueKey filled a KEY_VALUE_PARTIAL_INFORMATION at the
    // start of the buffer (which is 8-aligned as Vec<u8> data is from pool).
    let info = unsafe { buffer.as_ptr().cast::<KEY_VALUE_PARTIAL_INFORMATION>().read_unaligned() };
    let data_at = ::core::mem::offset_of!(KEY_VALUE_PARTIAL_INFORMATION, Data);
    // CAST: bounded by the buffer's length, checked here.
    let len = (info.DataLength as usize).min(buffer.len() - data_at);
    if info.Type != wdk_sys::REG_SZ {
        trace!("security: {} is not a REG_SZ; the default stays", READ_ACCESS);
        return None;
    }
    let units: Vec<u16> =
        buffer[data_at..data_at + len].chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
    let text: String =
        char::decode_utf16(units.into_iter().take_while(|&u| u != 0)).map(|c| c.unwrap_or('\u{FFFD}')).collect();
    Some(text)
}

/// The policy for this start: the registry's grant, or `None` for the INF's
/// default (no value, or one that is refused).
pub(crate) fn configured() -> Option<DeviceSecurity> {
    let text = read_value()?;
    match DeviceSecurity::from_read_access(&text) {
        Ok(policy) if policy.readers().is_empty() => None,
        Ok(policy) => Some(policy),
        Err(why) => {
            trace!("security: {} refused ({}); only SYSTEM and Administrators may open", READ_ACCESS, why);
            None
        }
    }
}

/// Sets `descriptor` (self-relative) as the DACL of `object`, through a
/// kernel handle (`ObOpenObjectByPointer`, `ZwSetSecurityObject`).
pub(crate) fn apply(object: PDEVICE_OBJECT, descriptor: &[u8]) -> NTSTATUS {
    let mut raw: HANDLE = ptr::null_mut();
    // SAFETY: a live device object of this stack; a kernel handle with
    // WRITE_DAC, any object type; `raw` receives it.
    let status = unsafe {
        ObOpenObjectByPointer(
            object.cast(),
            wdk_sys::OBJ_KERNEL_HANDLE,
            ptr::null_mut(),
            wdk_sys::WRITE_DAC,
            ptr::null_mut(),
            wdk_sys::_MODE::KernelMode as i8,
            &raw mut raw,
        )
    };
    if !nt_success(status) {
        return status;
    }
    let handle = Handle(raw);
    // SAFETY: a valid self-relative descriptor the core built, alive for the call.
    unsafe { ZwSetSecurityObject(handle.0, wdk_sys::DACL_SECURITY_INFORMATION, descriptor.as_ptr().cast_mut().cast()) }
}

/// The descriptor of a control device made now: SYSTEM and Administrators,
/// plus the registry's read grant if there is one (logged, with its bytes).
/// `Err` if memory runs out (no control device is made then).
pub(crate) fn descriptor_for_start() -> Result<Vec<u8>, ()> {
    let policy = configured().unwrap_or(DeviceSecurity::ADMINISTRATORS_ONLY);
    let descriptor = policy.descriptor().map_err(|_| {
        trace!("security: no memory for the descriptor; no control device");
    })?;
    trace!("security: {} for the control device", policy.sddl().as_str());
    for (index, chunk) in descriptor.chunks(32).enumerate() {
        let mut hex = String::new();
        for byte in chunk {
            let _ = ::core::fmt::write(&mut hex, format_args!("{byte:02x}"));
        }
        trace!("security: descriptor[{}]: {}", index * 32, hex.as_str());
    }
    Ok(descriptor)
}
