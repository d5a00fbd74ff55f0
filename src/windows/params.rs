//! The driver's `Parameters` key,
//! `HKLM\SYSTEM\CurrentControlSet\Services\mlnx_hca\Parameters`, which an
//! administrator sets and no install rewrites:
//!
//! - `ReadAccess` (`REG_SZ`): the groups granted read access (`security.rs`).
//! - `KeepSystemAwake` (`REG_DWORD`, default 1): 0 turns off the busy state
//!   (`PoRegisterSystemState`) a held write lease keeps, so that the system
//!   may sleep during a firmware write. Read at each start. For hosts
//!   without the routine: Wine 8 exports it as a stub that ends the driver
//!   host when called, and its test run sets 0.
//!
//! IRQL: PASSIVE_LEVEL throughout (registry, handles).

use super::kernel::{nt_success, FastMutex};
use super::log::trace;
use ::core::mem::size_of;
use ::core::ptr;
use alloc::vec::Vec;
use wdk_sys::ntddk::{ZwClose, ZwOpenKey, ZwQueryValueKey};
use wdk_sys::{HANDLE, KEY_VALUE_PARTIAL_INFORMATION, OBJECT_ATTRIBUTES, PCUNICODE_STRING, ULONG, UNICODE_STRING};

/// The driver's service key plus `\Parameters`, NUL-free UTF-16, from
/// `DriverEntry`'s registry path.
pub(crate) static PARAMETERS_KEY: FastMutex<Vec<u16>> = FastMutex::new(Vec::new());

/// Name of the busy-state switch.
const KEEP_SYSTEM_AWAKE: &str = "KeepSystemAwake";

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
pub(crate) struct Handle(pub(crate) HANDLE);

impl Handle {
    pub(crate) fn raw(&self) -> HANDLE {
        self.0
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: a kernel handle this driver opened, closed once.
        let _ = unsafe { ZwClose(self.0) };
    }
}

/// The value `name` of the `Parameters` key: its type and at most
/// `max_bytes` of its data; `None` when the key or the value is absent, or
/// reading it failed (logged).
pub(crate) fn query(name: &str, max_bytes: usize) -> Option<(u32, Vec<u8>)> {
    let key_path = PARAMETERS_KEY.lock().clone();
    if key_path.is_empty() {
        return None;
    }
    let mut key_name = counted(&key_path);
    let mut attributes = OBJECT_ATTRIBUTES {
        // CAST: the structure is 48 bytes.
        Length: size_of::<OBJECT_ATTRIBUTES>() as ULONG,
        RootDirectory: ptr::null_mut(),
        ObjectName: &raw mut key_name,
        Attributes: wdk_sys::OBJ_CASE_INSENSITIVE | wdk_sys::OBJ_KERNEL_HANDLE,
        SecurityDescriptor: ptr::null_mut(),
        SecurityQualityOfService: ptr::null_mut(),
    };
    let mut raw: HANDLE = ptr::null_mut();
    // SAFETY: the attributes and the name live across the call; `raw` receives the handle.
    let status = unsafe { ZwOpenKey(&raw mut raw, wdk_sys::KEY_READ, &raw mut attributes) };
    if !nt_success(status) {
        return None; // no Parameters key: every default stays
    }
    let key = Handle(raw);
    let value_name: Vec<u16> = name.encode_utf16().collect();
    let mut value_name = counted(&value_name);
    let header = size_of::<KEY_VALUE_PARTIAL_INFORMATION>();
    let mut buffer: Vec<u8> = Vec::new();
    if buffer.try_reserve_exact(header + max_bytes).is_err() {
        trace!("parameters: no memory to read {}", name);
        return None;
    }
    buffer.resize(header + max_bytes, 0);
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
            trace!("parameters: reading {} failed: {:#x}; its default stays", name, status);
        }
        return None;
    }
    // SAFETY: ZwQueryValueKey filled a KEY_VALUE_PARTIAL_INFORMATION at the
    // start of the buffer (read unaligned: no alignment is assumed).
    let info = unsafe { buffer.as_ptr().cast::<KEY_VALUE_PARTIAL_INFORMATION>().read_unaligned() };
    let data_at = ::core::mem::offset_of!(KEY_VALUE_PARTIAL_INFORMATION, Data);
    // CAST: bounded by the buffer's length, checked here.
    let len = (info.DataLength as usize).min(buffer.len() - data_at);
    buffer.copy_within(data_at..data_at + len, 0);
    buffer.truncate(len);
    Some((info.Type, buffer))
}

/// `KeepSystemAwake`: whether a held write lease keeps the system awake
/// (true unless the value is a `REG_DWORD` 0).
pub(crate) fn keep_system_awake() -> bool {
    match query(KEEP_SYSTEM_AWAKE, 4) {
        Some((wdk_sys::REG_DWORD, data)) if data.len() == 4 => {
            let on = data != [0, 0, 0, 0];
            if !on {
                trace!("parameters: {} = 0: a held write lease does not keep the system awake", KEEP_SYSTEM_AWAKE);
            }
            on
        }
        Some(_) => {
            trace!("parameters: {} is not a REG_DWORD; the default (1) stays", KEEP_SYSTEM_AWAKE);
            true
        }
        None => true,
    }
}
