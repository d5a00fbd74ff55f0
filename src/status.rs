//! The NTSTATUS values the contract names, as one status type.
//!
//! Everything the core decides ends as a [`Status`]; the Windows layer turns it
//! into the IRP's `IoStatus.Status` in one place, the simulation into the `i32`
//! a `DeviceIoControl` caller would see.

use core::fmt;

/// An NTSTATUS value. Only the values of the contract are named.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(i32);

/// Result of a core operation: `Ok` is `STATUS_SUCCESS` (possibly with a value).
pub type Result<T> = core::result::Result<T, Status>;

macro_rules! statuses {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $text:literal;)*) => {
        impl Status {
            $($(#[$doc])* pub const $name: Status = Status::from_bits($value);)*

            /// The WDK name of this status (`"STATUS_..."`), if the contract names it.
            pub const fn name(self) -> Option<&'static str> {
                match self {
                    $(Status::$name => Some(concat!("STATUS_", stringify!($name))),)*
                    _ => None,
                }
            }

            /// What a tool author should do about this status.
            pub const fn explanation(self) -> &'static str {
                match self {
                    $(Status::$name => $text,)*
                    _ => "unknown status",
                }
            }
        }
    };
}

statuses! {
    /// The request succeeded.
    SUCCESS = 0x0000_0000, "success";
    /// BAR 1 (UAR) or BAR 2 (DDR) was asked for: not mapped by this driver.
    NOT_IMPLEMENTED = 0xC000_0002, "only BAR 0 (CR space) can be mapped; BAR 1 and 2 are not implemented";
    /// The handle is not open (its process ended, or it was closed).
    INVALID_HANDLE = 0xC000_0008, "the handle is not open";
    /// A parameter is out of range, misaligned, or names no mapping of this caller.
    INVALID_PARAMETER = 0xC000_000D, "a parameter is invalid: bar_num, offset or size out of range or not dword aligned, or the VA is not a mapping of this handle in this process";
    /// A map or unmap that is not a user-mode request running in its own
    /// process (a driver forwarding it from another context); a request of
    /// the other path (a map of a device whose CR space is behind the
    /// configuration-space gateway, a gateway request to one whose BAR 0 is
    /// mapped); an address space the device does not have.
    NOT_SUPPORTED = 0xC000_00BB, "not supported: maps and unmaps only for a user-mode request in the requesting process; maps only where BAR 0 is CR space (ConnectX-3 and older), block requests only through the configuration-space gateway (ConnectX-4 and later), and only the address spaces the device reports";
    /// The I/O control code is not one of the contract's.
    INVALID_DEVICE_REQUEST = 0xC000_0010, "this I/O control code is not supported by mlnx_hca";
    /// The handle was not opened with the access the code needs.
    ACCESS_DENIED = 0xC000_0022, "the handle was not opened for write: open it as Administrator with GENERIC_WRITE to map read-write";
    /// An input or output buffer is shorter than its parameter block.
    BUFFER_TOO_SMALL = 0xC000_0023, "an input or output buffer is shorter than its parameter block";
    /// The device was surprise-removed or is being removed.
    DELETE_PENDING = 0xC000_0056, "the device has been removed; close the handle";
    /// A per-handle or per-device mapping quota, or memory, is exhausted.
    INSUFFICIENT_RESOURCES = 0xC000_009A, "too many live mappings (per-handle or per-device quota) or out of memory: unmap some first";
    /// The handle is being closed (cleanup has already run for it).
    FILE_CLOSED = 0xC000_0128, "the handle is being closed";
    /// Another handle holds the write lease, or the device is in use.
    DEVICE_BUSY = 0x8000_0011, "busy: another handle holds the write lease, or handles are open";
    /// The configuration-space gateway's semaphore was not free in time.
    IO_TIMEOUT = 0xC000_00B5, "the configuration-space gateway's semaphore stayed taken (by another tool or the firmware) for 2 s: retry later";
    /// The configuration-space gateway did not complete a transfer.
    IO_DEVICE_ERROR = 0xC000_0185, "the configuration-space gateway did not complete the transfer (its flag never changed): the device may be hung or in reset";
}

impl Status {
    /// Builds a status from the unsigned hex the WDK headers write.
    const fn from_bits(bits: u32) -> Self {
        // CAST: NTSTATUS is a signed 32-bit value; reinterpret the bits.
        Status(bits as i32)
    }

    /// Builds a status from a raw NTSTATUS value.
    pub const fn from_raw(raw: i32) -> Self {
        Status(raw)
    }

    /// The raw NTSTATUS value.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// `NT_SUCCESS`: success and informational values are `>= 0`.
    pub const fn is_success(self) -> bool {
        self.0 >= 0
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}"),
            // CAST: show the bits as the WDK writes them.
            None => write!(f, "Status({:#010x})", self.0 as u32),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // CAST: show the bits as the WDK writes them.
        write!(f, "{:?} ({:#010x}): {}", self, self.0 as u32, self.explanation())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_ntstatus_h() {
        assert_eq!(Status::DEVICE_BUSY.raw() as u32, 0x8000_0011);
        assert!(!Status::DEVICE_BUSY.is_success(), "a busy device is a failure for NT_SUCCESS");
        assert_eq!(Status::INSUFFICIENT_RESOURCES.raw() as u32, 0xC000_009A);
        assert!(Status::SUCCESS.is_success());
        assert_eq!(Status::ACCESS_DENIED.name(), Some("STATUS_ACCESS_DENIED"));
        assert_eq!(Status::from_raw(0x1234).name(), None);
    }
}
