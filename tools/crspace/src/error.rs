//! The typed error of every `crspace` operation, and the one place where a
//! driver status becomes a message a person can act on.

#![forbid(unsafe_code)]

use crate::status::Status;
use std::fmt;
use std::path::PathBuf;

/// Result of a `crspace` operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an operation failed. Each message says what went wrong in the
/// caller's terms and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An address or window start that is not a multiple of 4. Found before
    /// anything is sent or touched.
    #[error("offset {offset:#x} is not dword aligned")]
    Unaligned {
        /// The offending byte offset in CR space.
        offset: u64,
    },
    /// A length that is zero or not a whole number of dwords.
    #[error("length {len:#x} is not a non-zero multiple of 4 bytes")]
    BadLength {
        /// The offending length in bytes.
        len: u64,
    },
    /// A range that does not fit in CR space (BAR 0).
    #[error("offset {offset:#x} is past the end of CR space ({})", Bytes(*bar0_size))]
    PastEnd {
        /// The first byte of the range that lies outside CR space.
        offset: u64,
        /// Size of CR space as the driver reports it.
        bar0_size: u32,
    },
    /// An access outside the window a [`Mapping`](crate::Mapping) maps.
    /// Found before memory is touched.
    #[error("offset {offset:#x} is outside this mapping ({start:#x}..{end:#x})")]
    OutsideWindow {
        /// The offending byte offset in CR space.
        offset: u64,
        /// First byte of the mapped window.
        start: u32,
        /// One past the last byte of the mapped window.
        end: u64,
    },
    /// Another handle holds the device's write lease
    /// (`STATUS_DEVICE_BUSY` on `FW_MAP_CRSPACE_RW`).
    #[error("busy: {}", LeaseHolder(*writer_pid))]
    Busy {
        /// The process holding the lease (`FW_QUERY_CRSPACE`), 0 if it was
        /// released before it could be asked.
        writer_pid: u32,
    },
    /// The handle was not opened for write (`STATUS_ACCESS_DENIED`): only
    /// SYSTEM and Administrators may open the device for write.
    #[error("read-only handle: run as Administrator to write")]
    ReadOnly,
    /// The device was surprise-removed or is being removed
    /// (`STATUS_DELETE_PENDING`).
    #[error("the device was removed: close the tools using it and retry once the HCA is back")]
    Removed,
    /// A per-handle or per-device mapping quota is exhausted
    /// (`STATUS_INSUFFICIENT_RESOURCES`).
    #[error("no room for another mapping (a per-handle or per-device quota is used up, or the system could not map the window): unmap some first")]
    TooManyMappings,
    /// The handle is closed or being closed (`STATUS_INVALID_HANDLE`,
    /// `STATUS_FILE_CLOSED`).
    #[error("the device handle is closed")]
    HandleClosed,
    /// A request of the other path (`STATUS_NOT_SUPPORTED`): a map on a
    /// ConnectX-4 or later, whose CR space is behind the configuration-space
    /// gateway; a block request on a ConnectX-3 or older, whose CR space is
    /// mapped; or an address space the gateway does not serve.
    #[error("{request}: {}", not_supported(request))]
    NotSupported {
        /// The request, by its contract name.
        request: &'static str,
    },
    /// A read of an address space whose reads have effects (ICMD, the
    /// semaphores) on a handle not opened for write (`STATUS_ACCESS_DENIED`).
    #[error("reading address space {space:#x} has effects on the device: only administrators may (open the device for write, run as Administrator)")]
    SpaceNeedsWrite {
        /// The space.
        space: u32,
    },
    /// A gateway transfer past the gateway's 30-bit addresses. Found before
    /// anything is sent.
    #[error("{offset:#x}..{end:#x} reaches past the gateway's addresses (1 GiB)")]
    PastGateway {
        /// The first byte.
        offset: u64,
        /// One past the last byte.
        end: u64,
    },
    /// The gateway's semaphore stayed taken (`STATUS_IO_TIMEOUT`): the
    /// firmware or another tool held it for the driver's whole wait.
    #[error("{request}: the configuration-space gateway stayed busy for 2 s (the firmware or another tool holds its semaphore); retry")]
    GatewayBusy {
        /// The request, by its contract name.
        request: &'static str,
    },
    /// The gateway did not complete a transfer (`STATUS_IO_DEVICE_ERROR`).
    #[error("{request}: the configuration-space gateway did not complete the transfer: the HCA may need a reset")]
    GatewayFailed {
        /// The request, by its contract name.
        request: &'static str,
    },
    /// Any other status from the driver, with the request it answered.
    #[error("{request} failed: {}", StatusText(*status))]
    Driver {
        /// The request, by its contract name (`FW_MAP_CRSPACE_RO`, ...).
        request: &'static str,
        /// What the driver answered.
        status: Status,
    },
    /// The driver's reply does not have the contract's shape (for instance a
    /// device that is not an mlnx_hca behind `--device`).
    #[error("{request}: malformed reply from the driver: {what}")]
    Malformed {
        /// The request, by its contract name.
        request: &'static str,
        /// What was wrong with the reply.
        what: &'static str,
    },
    /// The device could not be opened.
    #[error("cannot open {path}: {source}{}", open_hint(source))]
    Open {
        /// The device path.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file (output, simulated CR-space state) could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A line of a simulated CR-space state file is not `ADDR VALUE`.
    #[error("{}:{line}: {what}", path.display())]
    BadStateFile {
        /// The file.
        path: PathBuf,
        /// The line, counting from 1.
        line: usize,
        /// What is wrong with it.
        what: String,
    },
}

impl Error {
    /// The error for a failed request, from the driver's status. The two
    /// statuses whose full story needs another request are completed by the
    /// caller: `STATUS_DEVICE_BUSY` (who holds the lease) and
    /// `STATUS_INVALID_PARAMETER` on a map (which end is out of range).
    pub fn from_status(request: &'static str, status: Status) -> Error {
        match status {
            Status::ACCESS_DENIED => Error::ReadOnly,
            Status::DELETE_PENDING => Error::Removed,
            Status::INSUFFICIENT_RESOURCES => Error::TooManyMappings,
            Status::INVALID_HANDLE | Status::FILE_CLOSED => Error::HandleClosed,
            Status::DEVICE_BUSY => Error::Busy { writer_pid: 0 },
            Status::NOT_SUPPORTED => Error::NotSupported { request },
            Status::IO_TIMEOUT => Error::GatewayBusy { request },
            Status::IO_DEVICE_ERROR => Error::GatewayFailed { request },
            status => Error::Driver { request, status },
        }
    }
}

/// "process 4242 holds the write lease", or the lease's anonymous form.
struct LeaseHolder(u32);

impl fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => write!(f, "another handle holds the write lease; retry when it is done"),
            pid => write!(f, "process {pid} holds the write lease"),
        }
    }
}

/// A status as the driver's name, value and explanation; a Win32 error that
/// the contract does not name (see [`crate::win32`]) as the system's text.
struct StatusText(Status);

impl fmt::Display for StatusText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match crate::win32::unnamed_win32_error(self.0) {
            Some(code) => {
                // CAST: Win32 error codes are small positive numbers.
                write!(f, "Win32 error {code}: {}", std::io::Error::from_raw_os_error(code as i32))
            }
            None => write!(f, "{}", self.0),
        }
    }
}

/// Why a request of one path was refused, by the request.
fn not_supported(request: &str) -> &'static str {
    if request.starts_with("FW_MAP") || request.starts_with("FW_UNMAP") {
        "this HCA's CR space is behind the configuration-space gateway (ConnectX-4 and later): it is read and \
         written in blocks, never mapped"
    } else {
        "the device does not serve this address space through the gateway (ConnectX-3 and older have no gateway: \
         their CR space is mapped)"
    }
}

/// What to try when a device does not open.
fn open_hint(source: &std::io::Error) -> &'static str {
    match source.kind() {
        std::io::ErrorKind::NotFound => " (is the mlnx_hca driver installed and the HCA present?)",
        _ => "",
    }
}

/// A byte count as people write BAR sizes: "1 MiB", "8 KiB", "12 bytes".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes(pub u32);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KIB: u32 = 1 << 10;
        const MIB: u32 = 1 << 20;
        const GIB: u32 = 1 << 30;
        match self.0 {
            n if n >= GIB && n % GIB == 0 => write!(f, "{} GiB", n / GIB),
            n if n >= MIB && n % MIB == 0 => write!(f, "{} MiB", n / MIB),
            n if n >= KIB && n % KIB == 0 => write!(f, "{} KiB", n / KIB),
            1 => write!(f, "1 byte"),
            n => write!(f, "{n} bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_a_person_can_act_on() {
        assert_eq!(Error::Busy { writer_pid: 4242 }.to_string(), "busy: process 4242 holds the write lease");
        assert_eq!(Error::ReadOnly.to_string(), "read-only handle: run as Administrator to write");
        assert_eq!(Error::Unaligned { offset: 0x100003 }.to_string(), "offset 0x100003 is not dword aligned");
        assert_eq!(
            Error::PastEnd { offset: 0x100000, bar0_size: 1 << 20 }.to_string(),
            "offset 0x100000 is past the end of CR space (1 MiB)"
        );
        assert!(Error::Removed.to_string().starts_with("the device was removed"));
    }

    #[test]
    fn statuses_become_errors() {
        assert!(matches!(Error::from_status("x", Status::ACCESS_DENIED), Error::ReadOnly));
        assert!(matches!(Error::from_status("x", Status::DELETE_PENDING), Error::Removed));
        assert!(matches!(Error::from_status("x", Status::DEVICE_BUSY), Error::Busy { writer_pid: 0 }));
        assert!(matches!(Error::from_status("x", Status::FILE_CLOSED), Error::HandleClosed));
        assert!(matches!(Error::from_status("x", Status::INSUFFICIENT_RESOURCES), Error::TooManyMappings));
        let other = Error::from_status("FW_MAP_CRSPACE_RO", Status::NOT_IMPLEMENTED);
        assert!(other.to_string().starts_with("FW_MAP_CRSPACE_RO failed: STATUS_NOT_IMPLEMENTED (0xc0000002)"));
    }

    #[test]
    fn sizes_read_like_bar_sizes() {
        assert_eq!(Bytes(1 << 20).to_string(), "1 MiB");
        assert_eq!(Bytes(256 << 20).to_string(), "256 MiB");
        assert_eq!(Bytes(4096).to_string(), "4 KiB");
        assert_eq!(Bytes(12).to_string(), "12 bytes");
        assert_eq!(Bytes(1 << 30).to_string(), "1 GiB");
    }
}
