//! Win32 errors back to the contract's statuses.
//!
//! `DeviceIoControl` does not return the driver's NTSTATUS: kernel32 turns it
//! into a Win32 error with `RtlNtStatusToDosError` and `GetLastError` hands
//! that out. [`NTSTATUS_TO_WIN32`] is that function's table for every status
//! the contract names (checked against the published mapping, Microsoft KB
//! 113996, as Wine's `dlls/ntdll/error.c` reproduces it; the gateway's three
//! under Wine by tests/wine/client.c). Three Win32 errors
//! stand for two statuses each; [`status_from_win32`] tells them apart from
//! the request itself, which is exact because of the contract's order of
//! checks. Plain Rust, so the mapping is tested on every OS.

#![forbid(unsafe_code)]

use crate::abi::{code_access, Access, FW_MAP_CRSPACE_RO, FW_MAP_CRSPACE_RW};
use crate::status::Status;

/// `ERROR_INVALID_FUNCTION`.
pub const ERROR_INVALID_FUNCTION: u32 = 1;
/// `ERROR_ACCESS_DENIED`.
pub const ERROR_ACCESS_DENIED: u32 = 5;
/// `ERROR_INVALID_HANDLE`.
pub const ERROR_INVALID_HANDLE: u32 = 6;
/// `ERROR_INVALID_PARAMETER`.
pub const ERROR_INVALID_PARAMETER: u32 = 87;
/// `ERROR_INSUFFICIENT_BUFFER`.
pub const ERROR_INSUFFICIENT_BUFFER: u32 = 122;
/// `ERROR_BUSY`.
pub const ERROR_BUSY: u32 = 170;
/// `ERROR_NO_SYSTEM_RESOURCES`.
pub const ERROR_NO_SYSTEM_RESOURCES: u32 = 1450;
/// `ERROR_NOT_SUPPORTED`.
pub const ERROR_NOT_SUPPORTED: u32 = 50;
/// `ERROR_SEM_TIMEOUT`.
pub const ERROR_SEM_TIMEOUT: u32 = 121;
/// `ERROR_IO_DEVICE`.
pub const ERROR_IO_DEVICE: u32 = 1117;

/// `RtlNtStatusToDosError` for each failure status of the contract.
pub const NTSTATUS_TO_WIN32: [(Status, u32); 13] = [
    (Status::NOT_IMPLEMENTED, ERROR_INVALID_FUNCTION),
    (Status::INVALID_HANDLE, ERROR_INVALID_HANDLE),
    (Status::INVALID_PARAMETER, ERROR_INVALID_PARAMETER),
    (Status::INVALID_DEVICE_REQUEST, ERROR_INVALID_FUNCTION),
    (Status::ACCESS_DENIED, ERROR_ACCESS_DENIED),
    (Status::BUFFER_TOO_SMALL, ERROR_INSUFFICIENT_BUFFER),
    (Status::DELETE_PENDING, ERROR_ACCESS_DENIED),
    (Status::INSUFFICIENT_RESOURCES, ERROR_NO_SYSTEM_RESOURCES),
    (Status::FILE_CLOSED, ERROR_INVALID_HANDLE),
    // A warning-class status, but not NT_SUCCESS: DeviceIoControl fails.
    (Status::DEVICE_BUSY, ERROR_BUSY),
    (Status::NOT_SUPPORTED, ERROR_NOT_SUPPORTED),
    (Status::IO_TIMEOUT, ERROR_SEM_TIMEOUT),
    (Status::IO_DEVICE_ERROR, ERROR_IO_DEVICE),
];

/// `FACILITY_NTWIN32` statuses (`0xC007xxxx`) carry a Win32 error that is not
/// one of the table's, as `HRESULT_FROM_WIN32` does for HRESULTs.
const NTWIN32_BASE: u32 = 0xC007_0000;

/// The status behind the Win32 `error` that `DeviceIoControl(code, input)`
/// failed with, on a handle opened for write or not.
///
/// - `ERROR_ACCESS_DENIED`: the I/O manager checks a code's access bits
///   against the handle before the driver runs, so a code that needs write
///   on a handle without it is `STATUS_ACCESS_DENIED`; anything else that
///   answers it is `STATUS_DELETE_PENDING` (the device is gone).
/// - `ERROR_INVALID_FUNCTION`: a map of BAR 1 or 2 is `STATUS_NOT_IMPLEMENTED`;
///   anything else `STATUS_INVALID_DEVICE_REQUEST` (not the contract's code,
///   or not an mlnx_hca device).
/// - `ERROR_INVALID_HANDLE`: `STATUS_INVALID_HANDLE` (`STATUS_FILE_CLOSED`
///   means the same to a caller: the handle is unusable).
/// - An error the table does not have becomes a `FACILITY_NTWIN32` status,
///   shown with the system's text (see [`unnamed_win32_error`]).
pub fn status_from_win32(error: u32, code: u32, input: &[u8], handle_writable: bool) -> Status {
    match error {
        ERROR_ACCESS_DENIED if code_access(code).contains(Access::WRITE) && !handle_writable => Status::ACCESS_DENIED,
        ERROR_ACCESS_DENIED => Status::DELETE_PENDING,
        ERROR_INVALID_FUNCTION if is_map(code) && matches!(bar_num(input), Some(1 | 2)) => Status::NOT_IMPLEMENTED,
        ERROR_INVALID_FUNCTION => Status::INVALID_DEVICE_REQUEST,
        ERROR_INVALID_HANDLE => Status::INVALID_HANDLE,
        ERROR_INVALID_PARAMETER => Status::INVALID_PARAMETER,
        ERROR_INSUFFICIENT_BUFFER => Status::BUFFER_TOO_SMALL,
        ERROR_NO_SYSTEM_RESOURCES => Status::INSUFFICIENT_RESOURCES,
        ERROR_BUSY => Status::DEVICE_BUSY,
        ERROR_NOT_SUPPORTED => Status::NOT_SUPPORTED,
        ERROR_SEM_TIMEOUT => Status::IO_TIMEOUT,
        ERROR_IO_DEVICE => Status::IO_DEVICE_ERROR,
        // CAST: NTSTATUS is the same 32 bits, signed.
        other => Status::from_raw((NTWIN32_BASE | (other & 0xFFFF)) as i32),
    }
}

/// The Win32 error inside a `FACILITY_NTWIN32` status made by
/// [`status_from_win32`], if `status` is one.
pub fn unnamed_win32_error(status: Status) -> Option<u32> {
    // CAST: the bits as the WDK writes them.
    let bits = status.raw() as u32;
    (bits & 0xFFFF_0000 == NTWIN32_BASE).then_some(bits & 0xFFFF)
}

fn is_map(code: u32) -> bool {
    code == FW_MAP_CRSPACE_RO || code == FW_MAP_CRSPACE_RW
}

/// `bar_num` of a map's input block, if it is long enough to have one.
fn bar_num(input: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = input.get(..4)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{MapCrSpaceIn, FW_QUERY_CRSPACE, FW_UNMAP_CRSPACE};

    fn map_of(bar_num: u32) -> [u8; 12] {
        MapCrSpaceIn { bar_num, offset: 0, size: 4 }.to_bytes()
    }

    #[test]
    fn every_failure_status_of_the_contract_is_in_the_table() {
        for status in [
            Status::NOT_IMPLEMENTED,
            Status::INVALID_HANDLE,
            Status::INVALID_PARAMETER,
            Status::INVALID_DEVICE_REQUEST,
            Status::ACCESS_DENIED,
            Status::BUFFER_TOO_SMALL,
            Status::DELETE_PENDING,
            Status::INSUFFICIENT_RESOURCES,
            Status::FILE_CLOSED,
            Status::DEVICE_BUSY,
            Status::NOT_SUPPORTED,
            Status::IO_TIMEOUT,
            Status::IO_DEVICE_ERROR,
        ] {
            assert!(NTSTATUS_TO_WIN32.iter().any(|(s, _)| *s == status), "{status:?}");
            assert!(!status.is_success(), "{status:?} makes DeviceIoControl fail");
        }
    }

    /// Each status, sent back through its Win32 error in the context the
    /// driver would answer it in, comes back as itself.
    #[test]
    fn round_trip_in_context() {
        let block = crate::abi::BlockIn { space: 2, offset: 0, count: 1 }.to_bytes();
        let cases: [(Status, u32, &[u8], bool); 13] = [
            (Status::NOT_IMPLEMENTED, FW_MAP_CRSPACE_RO, &map_of(1), false),
            (Status::INVALID_HANDLE, FW_QUERY_CRSPACE, &[], false),
            (Status::INVALID_PARAMETER, FW_MAP_CRSPACE_RO, &map_of(0), false),
            (Status::INVALID_DEVICE_REQUEST, 0x0022_0000, &[], true),
            (Status::ACCESS_DENIED, FW_MAP_CRSPACE_RW, &map_of(0), false),
            (Status::BUFFER_TOO_SMALL, FW_UNMAP_CRSPACE, &[0; 4], true),
            (Status::DELETE_PENDING, FW_MAP_CRSPACE_RW, &map_of(0), true),
            (Status::INSUFFICIENT_RESOURCES, FW_MAP_CRSPACE_RO, &map_of(0), false),
            (Status::FILE_CLOSED, FW_QUERY_CRSPACE, &[], false),
            (Status::DEVICE_BUSY, FW_MAP_CRSPACE_RW, &map_of(0), true),
            (Status::NOT_SUPPORTED, FW_MAP_CRSPACE_RO, &map_of(0), true),
            (Status::IO_TIMEOUT, crate::abi::FW_READ_CRSPACE_BLOCK, &block, true),
            (Status::IO_DEVICE_ERROR, crate::abi::FW_READ_CRSPACE_BLOCK, &block, true),
        ];
        for (status, code, input, writable) in cases {
            let (_, error) = NTSTATUS_TO_WIN32.iter().find(|(s, _)| *s == status).copied().unwrap();
            let back = status_from_win32(error, code, input, writable);
            let expected = if status == Status::FILE_CLOSED { Status::INVALID_HANDLE } else { status };
            assert_eq!(back, expected, "{status:?} -> {error} -> {back:?}");
        }
    }

    #[test]
    fn ambiguous_errors_follow_the_request() {
        assert_eq!(status_from_win32(ERROR_ACCESS_DENIED, FW_QUERY_CRSPACE, &[], false), Status::DELETE_PENDING);
        assert_eq!(
            status_from_win32(ERROR_ACCESS_DENIED, FW_MAP_CRSPACE_RO, &map_of(0), false),
            Status::DELETE_PENDING
        );
        assert_eq!(
            status_from_win32(ERROR_INVALID_FUNCTION, FW_MAP_CRSPACE_RW, &map_of(2), true),
            Status::NOT_IMPLEMENTED
        );
        assert_eq!(
            status_from_win32(ERROR_INVALID_FUNCTION, FW_MAP_CRSPACE_RO, &map_of(0), false),
            Status::INVALID_DEVICE_REQUEST,
            "a known code on BAR 0 answered as unknown: not an mlnx_hca device"
        );
        assert_eq!(
            status_from_win32(ERROR_INVALID_FUNCTION, FW_MAP_CRSPACE_RO, &[1], false),
            Status::INVALID_DEVICE_REQUEST
        );
    }

    #[test]
    fn other_errors_keep_their_number() {
        let status = status_from_win32(1167, FW_QUERY_CRSPACE, &[], false); // ERROR_DEVICE_NOT_CONNECTED
        assert_eq!(unnamed_win32_error(status), Some(1167));
        assert_eq!(unnamed_win32_error(Status::DEVICE_BUSY), None);
        assert_eq!(unnamed_win32_error(Status::INVALID_PARAMETER), None);
    }
}
