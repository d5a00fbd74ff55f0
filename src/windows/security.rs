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

use super::kernel::nt_success;
use super::log::trace;
use super::params::{self, Handle};
use crate::core::security::DeviceSecurity;
use ::core::ptr;
use alloc::string::String;
use alloc::vec::Vec;
use wdk_sys::ntddk::{ObOpenObjectByPointer, ZwSetSecurityObject};
use wdk_sys::{HANDLE, NTSTATUS, PDEVICE_OBJECT};

/// Name of the value.
const READ_ACCESS: &str = "ReadAccess";

/// Longest value read: eight SIDs of the longest form and their separators.
const MAX_VALUE_BYTES: usize = 8 * 2 * 200;

/// The `ReadAccess` value as text; `None` when there is none (or it is not
/// a readable `REG_SZ`, which is logged).
fn read_value() -> Option<String> {
    let (kind, data) = params::query(READ_ACCESS, MAX_VALUE_BYTES)?;
    if kind != wdk_sys::REG_SZ {
        trace!("security: {} is not a REG_SZ; the default stays", READ_ACCESS);
        return None;
    }
    let units: Vec<u16> = data.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
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
    unsafe {
        ZwSetSecurityObject(handle.raw(), wdk_sys::DACL_SECURITY_INFORMATION, descriptor.as_ptr().cast_mut().cast())
    }
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
