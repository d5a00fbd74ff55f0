//! The wire contract with user mode: I/O control codes and parameter blocks.
//!
//! `include/mlnx_hca_ioctl.h` is the same ABI for C tool authors; a test
//! compiles it and proves codes, sizes and offsets equal these. Bytes become
//! structs here and only here, through [`Ioctl::decode`], which reads the
//! caller's input once.

use crate::status::{Result, Status};
use bitflags::bitflags;

/// `FILE_DEVICE_INFINIBAND` from `devioctl.h`.
pub const FILE_DEVICE_INFINIBAND: u32 = 0x3B;
/// `METHOD_BUFFERED`: the only transfer method the driver accepts.
pub const METHOD_BUFFERED: u32 = 0;

bitflags! {
    /// The access bits of an I/O control code, and the access a handle was
    /// granted when it was opened (`FILE_READ_ACCESS`, `FILE_WRITE_ACCESS`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Access: u32 {
        /// `FILE_READ_ACCESS` (`FILE_READ_DATA`).
        const READ = 0x1;
        /// `FILE_WRITE_ACCESS` (`FILE_WRITE_DATA`).
        const WRITE = 0x2;
    }
}

/// `CTL_CODE(DeviceType, Function, Method, Access)` from `devioctl.h`.
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: Access) -> u32 {
    (device_type << 16) | (access.bits() << 14) | (function << 2) | method
}

/// The access bits a code asks of the handle (bits 14-15).
pub const fn code_access(code: u32) -> Access {
    Access::from_bits_truncate((code >> 14) & 0x3)
}

/// Map a window of BAR 0 read-only: in [`MapCrSpaceIn`], out [`MapCrSpaceOut`].
pub const FW_MAP_CRSPACE_RO: u32 = ctl_code(FILE_DEVICE_INFINIBAND, 0x800, METHOD_BUFFERED, Access::READ);
/// Map a window of BAR 0 read-write (takes the write lease): in [`MapCrSpaceIn`], out [`MapCrSpaceOut`].
pub const FW_MAP_CRSPACE_RW: u32 =
    ctl_code(FILE_DEVICE_INFINIBAND, 0x801, METHOD_BUFFERED, Access::READ.union(Access::WRITE));
/// Unmap a view returned by a map: in [`UnmapCrSpaceIn`], no output.
pub const FW_UNMAP_CRSPACE: u32 = ctl_code(FILE_DEVICE_INFINIBAND, 0x802, METHOD_BUFFERED, Access::READ);
/// BAR sizes, lease holder and this handle's mapping count: no input, out [`QueryCrSpaceOut`].
pub const FW_QUERY_CRSPACE: u32 = ctl_code(FILE_DEVICE_INFINIBAND, 0x803, METHOD_BUFFERED, Access::READ);

/// Input of `FW_MAP_CRSPACE_RO` / `FW_MAP_CRSPACE_RW`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapCrSpaceIn {
    /// 0: CR space. 1 (UAR) and 2 (DDR) are not implemented.
    pub bar_num: u32,
    /// Byte offset in the BAR; a multiple of 4.
    pub offset: u32,
    /// Bytes to map; a non-zero multiple of 4.
    pub size: u32,
}

/// Output of the map codes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapCrSpaceOut {
    /// User VA of `offset` itself, in the calling process.
    pub va: u64,
}

/// Input of `FW_UNMAP_CRSPACE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnmapCrSpaceIn {
    /// A VA a map of this handle returned to this process.
    pub va: u64,
}

/// Output of `FW_QUERY_CRSPACE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryCrSpaceOut {
    /// Size of BAR 0 (CR space) in bytes.
    pub bar0_size: u32,
    /// Size of BAR 1 (UAR) in bytes.
    pub bar1_size: u32,
    /// Size of BAR 2 (DDR) in bytes.
    pub bar2_size: u32,
    /// Process holding the write lease; 0 when nobody does.
    pub writer_pid: u32,
    /// Live mappings of the calling handle (all its processes).
    pub mapping_count: u32,
    /// Written as 0.
    pub reserved: u32,
}

const _: () = assert!(core::mem::size_of::<MapCrSpaceIn>() == 12);
const _: () = assert!(core::mem::size_of::<MapCrSpaceOut>() == 8);
const _: () = assert!(core::mem::size_of::<UnmapCrSpaceIn>() == 8);
const _: () = assert!(core::mem::size_of::<QueryCrSpaceOut>() == 24);
const _: () = assert!(FW_MAP_CRSPACE_RO == 0x003B_6000);
const _: () = assert!(FW_MAP_CRSPACE_RW == 0x003B_E004);
const _: () = assert!(FW_UNMAP_CRSPACE == 0x003B_6008);
const _: () = assert!(FW_QUERY_CRSPACE == 0x003B_600C);

/// One of the contract's codes; any other 32-bit value is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ioctl {
    /// `FW_MAP_CRSPACE_RO`.
    MapReadOnly,
    /// `FW_MAP_CRSPACE_RW`.
    MapReadWrite,
    /// `FW_UNMAP_CRSPACE`.
    Unmap,
    /// `FW_QUERY_CRSPACE`.
    Query,
}

/// A request decoded from the caller's buffers; its numbers are still the
/// caller's allegations, checked by the core against the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Map a window, read-only or read-write.
    Map {
        /// Whether the view is writable.
        writable: bool,
        /// The caller's block.
        params: MapCrSpaceIn,
    },
    /// Unmap one view of the caller.
    Unmap(UnmapCrSpaceIn),
    /// Report BAR sizes, lease holder, mapping count.
    Query,
}

impl Ioctl {
    /// Compares the full 32-bit code; anything else is `STATUS_INVALID_DEVICE_REQUEST`.
    pub const fn from_code(code: u32) -> Result<Self> {
        match code {
            FW_MAP_CRSPACE_RO => Ok(Ioctl::MapReadOnly),
            FW_MAP_CRSPACE_RW => Ok(Ioctl::MapReadWrite),
            FW_UNMAP_CRSPACE => Ok(Ioctl::Unmap),
            FW_QUERY_CRSPACE => Ok(Ioctl::Query),
            _ => Err(Status::INVALID_DEVICE_REQUEST),
        }
    }

    /// The full code.
    pub const fn code(self) -> u32 {
        match self {
            Ioctl::MapReadOnly => FW_MAP_CRSPACE_RO,
            Ioctl::MapReadWrite => FW_MAP_CRSPACE_RW,
            Ioctl::Unmap => FW_UNMAP_CRSPACE,
            Ioctl::Query => FW_QUERY_CRSPACE,
        }
    }

    /// The access the handle must have been granted.
    pub const fn required_access(self) -> Access {
        code_access(self.code())
    }

    /// Bytes of input this code reads.
    pub const fn input_len(self) -> usize {
        match self {
            Ioctl::MapReadOnly | Ioctl::MapReadWrite => core::mem::size_of::<MapCrSpaceIn>(),
            Ioctl::Unmap => core::mem::size_of::<UnmapCrSpaceIn>(),
            Ioctl::Query => 0,
        }
    }

    /// Bytes of output this code writes on success.
    pub const fn output_len(self) -> usize {
        match self {
            Ioctl::MapReadOnly | Ioctl::MapReadWrite => core::mem::size_of::<MapCrSpaceOut>(),
            Ioctl::Unmap => 0,
            Ioctl::Query => core::mem::size_of::<QueryCrSpaceOut>(),
        }
    }

    /// Checks both buffer lengths and reads the input block once.
    /// Longer buffers are accepted; only the block is read.
    pub fn decode(self, input: &[u8], output_len: usize) -> Result<Request> {
        if input.len() < self.input_len() || output_len < self.output_len() {
            return Err(Status::BUFFER_TOO_SMALL);
        }
        Ok(match self {
            Ioctl::MapReadOnly | Ioctl::MapReadWrite => Request::Map {
                writable: self == Ioctl::MapReadWrite,
                params: MapCrSpaceIn { bar_num: le_u32(input, 0), offset: le_u32(input, 4), size: le_u32(input, 8) },
            },
            Ioctl::Unmap => Request::Unmap(UnmapCrSpaceIn { va: le_u64(input, 0) }),
            Ioctl::Query => Request::Query,
        })
    }
}

/// Reads a little-endian `u32` at `at`; the caller has checked the length.
fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Reads a little-endian `u64` at `at`; the caller has checked the length.
fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// What a successful request hands back to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// A map's block.
    Map(MapCrSpaceOut),
    /// An unmap: no output.
    Unmap,
    /// A query's block.
    Query(QueryCrSpaceOut),
}

impl Response {
    /// Writes exactly the response block at the start of `out` and returns
    /// its length (the IRP's `Information`). `out` was checked by
    /// [`Ioctl::decode`] to be long enough.
    pub fn encode(&self, out: &mut [u8]) -> usize {
        match self {
            Response::Map(m) => put(out, &[&m.va.to_le_bytes()]),
            Response::Unmap => 0,
            Response::Query(q) => put(
                out,
                &[
                    &q.bar0_size.to_le_bytes(),
                    &q.bar1_size.to_le_bytes(),
                    &q.bar2_size.to_le_bytes(),
                    &q.writer_pid.to_le_bytes(),
                    &q.mapping_count.to_le_bytes(),
                    &0u32.to_le_bytes(),
                ],
            ),
        }
    }
}

/// Writes the fields one after the other; returns the bytes written.
fn put(out: &mut [u8], fields: &[&[u8]]) -> usize {
    let mut at = 0;
    for field in fields {
        out[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    at
}

impl MapCrSpaceIn {
    /// The block as the caller's bytes (for clients and tests).
    pub fn to_bytes(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        put(&mut b, &[&self.bar_num.to_le_bytes(), &self.offset.to_le_bytes(), &self.size.to_le_bytes()]);
        b
    }
}

impl UnmapCrSpaceIn {
    /// The block as the caller's bytes (for clients and tests).
    pub fn to_bytes(&self) -> [u8; 8] {
        self.va.to_le_bytes()
    }
}

impl MapCrSpaceOut {
    /// Reads the block from the bytes a map returned.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() >= 8).then(|| MapCrSpaceOut { va: le_u64(bytes, 0) })
    }
}

impl QueryCrSpaceOut {
    /// Reads the block from the bytes a query returned.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() >= 24).then(|| QueryCrSpaceOut {
            bar0_size: le_u32(bytes, 0),
            bar1_size: le_u32(bytes, 4),
            bar2_size: le_u32(bytes, 8),
            writer_pid: le_u32(bytes, 12),
            mapping_count: le_u32(bytes, 16),
            reserved: le_u32(bytes, 20),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_contract_table() {
        assert_eq!(FW_MAP_CRSPACE_RO, 0x003B_6000);
        assert_eq!(FW_MAP_CRSPACE_RW, 0x003B_E004);
        assert_eq!(FW_UNMAP_CRSPACE, 0x003B_6008);
        assert_eq!(FW_QUERY_CRSPACE, 0x003B_600C);
        assert_eq!(Ioctl::MapReadWrite.required_access(), Access::READ | Access::WRITE);
        assert_eq!(Ioctl::Query.required_access(), Access::READ);
    }

    #[test]
    fn full_code_is_compared() {
        for bad in [0, FW_MAP_CRSPACE_RO | 0x8000_0000, FW_MAP_CRSPACE_RO | 3, FW_QUERY_CRSPACE + 4, 0x0022_6000] {
            assert_eq!(Ioctl::from_code(bad), Err(Status::INVALID_DEVICE_REQUEST), "{bad:#x}");
        }
    }

    #[test]
    fn decode_checks_lengths_and_reads_le_fields() {
        let map = MapCrSpaceIn { bar_num: 0, offset: 0xF0014, size: 4 };
        let bytes = map.to_bytes();
        assert_eq!(Ioctl::MapReadOnly.decode(&bytes[..11], 8), Err(Status::BUFFER_TOO_SMALL));
        assert_eq!(Ioctl::MapReadOnly.decode(&bytes, 7), Err(Status::BUFFER_TOO_SMALL));
        assert_eq!(Ioctl::MapReadWrite.decode(&bytes, 8), Ok(Request::Map { writable: true, params: map }));
        assert_eq!(Ioctl::Query.decode(&[], 23), Err(Status::BUFFER_TOO_SMALL));
        assert_eq!(Ioctl::Query.decode(&[1, 2, 3], 24), Ok(Request::Query));
        assert_eq!(Ioctl::Unmap.decode(&[0; 7], 0), Err(Status::BUFFER_TOO_SMALL));
    }

    #[test]
    fn query_round_trips_and_writes_zero_reserved() {
        let q =
            QueryCrSpaceOut { bar0_size: 1, bar1_size: 2, bar2_size: 3, writer_pid: 4, mapping_count: 5, reserved: 9 };
        let mut out = [0xAAu8; 30];
        assert_eq!(Response::Query(q).encode(&mut out), 24);
        assert_eq!(QueryCrSpaceOut::from_bytes(&out), Some(QueryCrSpaceOut { reserved: 0, ..q }));
        assert_eq!(&out[24..], &[0xAA; 6], "only the block is written");
    }
}
