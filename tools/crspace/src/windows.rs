//! The real driver on Windows: `CreateFileW` on the device, `DeviceIoControl`
//! for each request, the Win32 error mapped back to the driver's status
//! ([`crate::win32`]).

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::status::Status;
use crate::win32::{status_from_win32, ERROR_ACCESS_DENIED};
use std::io;
use std::ptr;
use windows_sys::Win32::Foundation::{CloseHandle, GENERIC_READ, GENERIC_WRITE, HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_ATTRIBUTE_NORMAL, FILE_SHARE_READ, FILE_SHARE_WRITE, OPEN_EXISTING,
};
use windows_sys::Win32::System::IO::DeviceIoControl;

/// An open handle on an mlnx_hca device, closed on drop (the driver's
/// cleanup then unmaps whatever this handle still has mapped).
#[derive(Debug)]
pub struct DeviceHandle {
    /// INVARIANT: a handle `CreateFileW` opened, owned here, closed once in `Drop`.
    handle: HANDLE,
    writable: bool,
    path: String,
}

// SAFETY: a kernel handle is a process-wide value: any thread may send
// DeviceIoControl on it, at the same time as others (the driver serialises
// what needs it), and close it once (Drop, which needs ownership).
unsafe impl Send for DeviceHandle {}
// SAFETY: as above; `&DeviceHandle` only sends requests.
unsafe impl Sync for DeviceHandle {}

impl DeviceHandle {
    /// Opens the device at `path` (`\\.\mlnx_hca0`, or the device
    /// interface's path) with `GENERIC_READ`, plus `GENERIC_WRITE` if
    /// `write`. Only SYSTEM and Administrators may open it for write: a
    /// refusal of that is [`Error::ReadOnly`].
    pub fn open(path: &str, write: bool) -> Result<DeviceHandle> {
        let wide: Vec<u16> = path.encode_utf16().chain(std::iter::once(0)).collect();
        let access = if write { GENERIC_READ | GENERIC_WRITE } else { GENERIC_READ };
        // SAFETY: `wide` is a NUL-terminated UTF-16 string alive for the
        // call; no security attributes and no template handle are allowed.
        let handle = unsafe {
            CreateFileW(
                wide.as_ptr(),
                access,
                FILE_SHARE_READ | FILE_SHARE_WRITE,
                ptr::null(),
                OPEN_EXISTING,
                FILE_ATTRIBUTE_NORMAL,
                ptr::null_mut(),
            )
        };
        if handle == INVALID_HANDLE_VALUE {
            let source = io::Error::last_os_error();
            // CAST: Win32 error codes are small positive numbers.
            if write && source.raw_os_error() == Some(ERROR_ACCESS_DENIED as i32) {
                // Denied for write: a read-only open tells a user who may
                // not write from a device that refuses everyone (removal).
                return match DeviceHandle::open(path, false) {
                    Ok(_) => Err(Error::ReadOnly),
                    Err(e) => Err(e),
                };
            }
            return Err(Error::Open { path: path.to_string(), source });
        }
        Ok(DeviceHandle { handle, writable: write, path: path.to_string() })
    }

    /// The path it was opened with.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether it was opened for write.
    pub fn is_writable(&self) -> bool {
        self.writable
    }
}

impl Connection for DeviceHandle {
    fn ioctl(&self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, Status> {
        let input_len = u32::try_from(input.len()).map_err(|_| Status::INVALID_PARAMETER)?;
        let output_len = u32::try_from(output.len()).map_err(|_| Status::INVALID_PARAMETER)?;
        let input_ptr = if input.is_empty() { ptr::null() } else { input.as_ptr().cast() };
        let output_ptr = if output.is_empty() { ptr::null_mut() } else { output.as_mut_ptr().cast() };
        let mut returned = 0u32;
        // The handle was opened without FILE_FLAG_OVERLAPPED: the call is
        // synchronous, and nothing is written to `output` after it returns.
        // SAFETY: the handle is open (INVARIANT); each buffer is valid for its
        // length (or null with length 0) for the whole (synchronous) call.
        let ok = unsafe {
            DeviceIoControl(
                self.handle,
                code,
                input_ptr,
                input_len,
                output_ptr,
                output_len,
                &mut returned,
                ptr::null_mut(),
            )
        };
        if ok == 0 {
            // CAST: GetLastError's value, a DWORD, as std reads it.
            let error = io::Error::last_os_error().raw_os_error().unwrap_or(0) as u32;
            return Err(status_from_win32(error, code, input, self.writable));
        }
        // CAST: at most `output_len`, a u32.
        Ok(returned as usize)
    }
}

impl Drop for DeviceHandle {
    fn drop(&mut self) {
        // SAFETY: the handle is open and owned here (INVARIANT); it is not
        // used after this.
        unsafe { CloseHandle(self.handle) };
    }
}
