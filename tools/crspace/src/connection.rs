//! The one trait a backend implements: an open device handle that answers
//! the contract's I/O control requests.

#![forbid(unsafe_code)]

use crate::abi::{QueryCrSpaceOut, FW_QUERY_CRSPACE};
use crate::error::{Error, Result};
use crate::status::Status;

/// An open handle on an mlnx_hca device (or the simulated HCA).
///
/// A backend only moves bytes: [`ioctl`](Connection::ioctl) is
/// `DeviceIoControl` with `METHOD_BUFFERED` semantics, answering the
/// driver's status on failure. Mapping, unmapping and the messages are the
/// library's ([`Mapping`](crate::Mapping), [`Error`]).
///
/// A view the driver maps belongs to this handle: dropping the handle (its
/// cleanup) unmaps every view of it, which is why a [`Mapping`](crate::Mapping)
/// borrows its connection. Code that calls `ioctl` directly must not unmap a
/// VA that a live `Mapping` owns.
pub trait Connection {
    /// Sends `code` with `input`; on success returns how many bytes of
    /// `output` the driver wrote, on failure the driver's status (with
    /// `output` left as it was).
    fn ioctl(&self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, Status>;

    /// `FW_QUERY_CRSPACE`: BAR sizes, the write lease's holder and this
    /// handle's live mappings.
    fn query(&self) -> Result<Info> {
        const REQUEST: &str = "FW_QUERY_CRSPACE";
        let mut out = [0u8; 24];
        let written = self.ioctl(FW_QUERY_CRSPACE, &[], &mut out).map_err(|s| Error::from_status(REQUEST, s))?;
        match QueryCrSpaceOut::from_bytes(&out[..written]) {
            Some(q) => Ok(Info {
                bar0_size: q.bar0_size,
                bar1_size: q.bar1_size,
                bar2_size: q.bar2_size,
                writer_pid: q.writer_pid,
                mapping_count: q.mapping_count,
            }),
            None => Err(Error::Malformed { request: REQUEST, what: "fewer than 24 bytes" }),
        }
    }
}

/// What `FW_QUERY_CRSPACE` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// Size of BAR 0 (CR space), bytes.
    pub bar0_size: u32,
    /// Size of BAR 1 (UAR), bytes; never mapped.
    pub bar1_size: u32,
    /// Size of BAR 2 (DDR), bytes; never mapped.
    pub bar2_size: u32,
    /// The process holding the device's write lease; 0 when nobody does.
    pub writer_pid: u32,
    /// Live mappings of this handle (in all processes sharing it).
    pub mapping_count: u32,
}
