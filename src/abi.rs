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
/// Read `count` dwords of an address space through the configuration-space
/// gateway: in [`BlockIn`], out `count` little-endian `u32`s.
pub const FW_READ_CRSPACE_BLOCK: u32 = ctl_code(FILE_DEVICE_INFINIBAND, 0x804, METHOD_BUFFERED, Access::READ);
/// Write `count` dwords of an address space through the gateway: in
/// [`BlockIn`] followed by `count` `u32`s, no output.
pub const FW_WRITE_CRSPACE_BLOCK: u32 =
    ctl_code(FILE_DEVICE_INFINIBAND, 0x805, METHOD_BUFFERED, Access::READ.union(Access::WRITE));
/// Take (1) or give back (0) the write lease without mapping: in
/// [`LeaseIn`], no output.
pub const FW_LEASE_CRSPACE: u32 =
    ctl_code(FILE_DEVICE_INFINIBAND, 0x806, METHOD_BUFFERED, Access::READ.union(Access::WRITE));
/// The device's identity and access path: no input, out [`QueryDeviceOut`].
pub const FW_QUERY_DEVICE: u32 = ctl_code(FILE_DEVICE_INFINIBAND, 0x807, METHOD_BUFFERED, Access::READ);

/// The most dwords one block request moves (256 bytes, as mstflint's
/// `mstflint_access` module allows); `FW_QUERY_DEVICE` reports it.
pub const MAX_BLOCK_DWORDS: u32 = 64;

/// `path` of [`QueryDeviceOut`]: BAR 0 is CR space, mapped by the map codes.
pub const PATH_MAPPED: u32 = 1;
/// `path` of [`QueryDeviceOut`]: CR space is behind the configuration-space
/// gateway, reached by the block codes.
pub const PATH_GATEWAY: u32 = 2;

/// The address spaces of the gateway the contract names (`space` of
/// [`BlockIn`]); any other is `STATUS_NOT_SUPPORTED`.
pub mod space {
    /// ICMD, extended.
    pub const ICMD_EXT: u32 = 0x1;
    /// CR space.
    pub const CR: u32 = 0x2;
    /// ICMD.
    pub const ICMD: u32 = 0x3;
    /// CR space, non-destructive reads.
    pub const ND_CR: u32 = 0x6;
    /// The tools' semaphores and resource locks.
    pub const SEMAPHORE: u32 = 0xA;
    /// Every space the contract names.
    pub const ALL: [u32; 5] = [ICMD_EXT, CR, ICMD, ND_CR, SEMAPHORE];
    /// Spaces a read-only handle may read (reading the others has effects:
    /// a semaphore is taken by a read).
    pub const fn readable_by_any(space: u32) -> bool {
        space == CR || space == ND_CR
    }
}

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

/// Input of `FW_READ_CRSPACE_BLOCK` (and the head of `FW_WRITE_CRSPACE_BLOCK`'s).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockIn {
    /// The gateway's address space ([`space`]).
    pub space: u32,
    /// Byte offset in the space; a multiple of 4.
    pub offset: u32,
    /// Dwords: 1 to [`MAX_BLOCK_DWORDS`].
    pub count: u32,
}

/// Input of `FW_LEASE_CRSPACE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseIn {
    /// 1: take the write lease; 0: give it back.
    pub take: u32,
}

/// Output of `FW_QUERY_DEVICE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryDeviceOut {
    /// The PCI device id (0x1003: a ConnectX-3; 0x1013: a ConnectX-4).
    pub pci_device_id: u32,
    /// The low 16 bits of the dword at 0xF0014 of CR space.
    pub hw_id: u32,
    /// [`PATH_MAPPED`] or [`PATH_GATEWAY`].
    pub path: u32,
    /// Bit n set: address space n is supported (0 on a mapped device).
    pub spaces: u32,
    /// The most dwords a block request moves.
    pub max_count: u32,
    /// 0.
    pub reserved: u32,
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
    /// `FW_READ_CRSPACE_BLOCK`.
    ReadBlock,
    /// `FW_WRITE_CRSPACE_BLOCK`.
    WriteBlock,
    /// `FW_LEASE_CRSPACE`.
    Lease,
    /// `FW_QUERY_DEVICE`.
    QueryDevice,
}

/// A request decoded from the caller's buffers; its numbers are still the
/// caller's allegations, checked by the core against the device.
// A block's 256 bytes stay inline: a request lives on the dispatch
// routine's stack for one call, and boxing it would be a pool allocation
// per request in the kernel.
#[allow(clippy::large_enum_variant)]
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
    /// Read a block through the gateway.
    ReadBlock(BlockIn),
    /// Write a block through the gateway: the first `min(count, MAX)` dwords
    /// of `data` are the caller's.
    WriteBlock {
        /// The caller's head block.
        params: BlockIn,
        /// The values, read once.
        data: [u32; MAX_BLOCK_DWORDS as usize],
    },
    /// Take or give back the write lease.
    Lease(LeaseIn),
    /// Report the device's identity and path.
    QueryDevice,
}

impl Ioctl {
    /// Compares the full 32-bit code; anything else is `STATUS_INVALID_DEVICE_REQUEST`.
    pub const fn from_code(code: u32) -> Result<Self> {
        match code {
            FW_MAP_CRSPACE_RO => Ok(Ioctl::MapReadOnly),
            FW_MAP_CRSPACE_RW => Ok(Ioctl::MapReadWrite),
            FW_UNMAP_CRSPACE => Ok(Ioctl::Unmap),
            FW_QUERY_CRSPACE => Ok(Ioctl::Query),
            FW_READ_CRSPACE_BLOCK => Ok(Ioctl::ReadBlock),
            FW_WRITE_CRSPACE_BLOCK => Ok(Ioctl::WriteBlock),
            FW_LEASE_CRSPACE => Ok(Ioctl::Lease),
            FW_QUERY_DEVICE => Ok(Ioctl::QueryDevice),
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
            Ioctl::ReadBlock => FW_READ_CRSPACE_BLOCK,
            Ioctl::WriteBlock => FW_WRITE_CRSPACE_BLOCK,
            Ioctl::Lease => FW_LEASE_CRSPACE,
            Ioctl::QueryDevice => FW_QUERY_DEVICE,
        }
    }

    /// The access the handle must have been granted.
    pub const fn required_access(self) -> Access {
        code_access(self.code())
    }

    /// Bytes of the fixed input block this code reads (a block write's
    /// values follow it).
    pub const fn input_len(self) -> usize {
        match self {
            Ioctl::MapReadOnly | Ioctl::MapReadWrite => core::mem::size_of::<MapCrSpaceIn>(),
            Ioctl::Unmap => core::mem::size_of::<UnmapCrSpaceIn>(),
            Ioctl::Query | Ioctl::QueryDevice => 0,
            Ioctl::ReadBlock | Ioctl::WriteBlock => core::mem::size_of::<BlockIn>(),
            Ioctl::Lease => core::mem::size_of::<LeaseIn>(),
        }
    }

    /// Bytes of output this code writes on success (a block read: per
    /// dword asked for, see [`Ioctl::decode`]).
    pub const fn output_len(self) -> usize {
        match self {
            Ioctl::MapReadOnly | Ioctl::MapReadWrite => core::mem::size_of::<MapCrSpaceOut>(),
            Ioctl::Unmap | Ioctl::ReadBlock | Ioctl::WriteBlock | Ioctl::Lease => 0,
            Ioctl::Query => core::mem::size_of::<QueryCrSpaceOut>(),
            Ioctl::QueryDevice => core::mem::size_of::<QueryDeviceOut>(),
        }
    }

    /// Checks both buffer lengths and reads the input once. Longer buffers
    /// are accepted; only the block is read. A block read's output must hold
    /// `count` dwords and a block write's input its `count` values, whatever
    /// `count` is (its range is a parameter, checked later).
    pub fn decode(self, input: &[u8], output_len: usize) -> Result<Request> {
        if input.len() < self.input_len() || output_len < self.output_len() {
            return Err(Status::BUFFER_TOO_SMALL);
        }
        let block =
            |input: &[u8]| BlockIn { space: le_u32(input, 0), offset: le_u32(input, 4), count: le_u32(input, 8) };
        Ok(match self {
            Ioctl::MapReadOnly | Ioctl::MapReadWrite => Request::Map {
                writable: self == Ioctl::MapReadWrite,
                params: MapCrSpaceIn { bar_num: le_u32(input, 0), offset: le_u32(input, 4), size: le_u32(input, 8) },
            },
            Ioctl::Unmap => Request::Unmap(UnmapCrSpaceIn { va: le_u64(input, 0) }),
            Ioctl::Query => Request::Query,
            Ioctl::QueryDevice => Request::QueryDevice,
            Ioctl::Lease => Request::Lease(LeaseIn { take: le_u32(input, 0) }),
            Ioctl::ReadBlock => {
                let params = block(input);
                if (output_len as u64) < 4 * u64::from(params.count) {
                    return Err(Status::BUFFER_TOO_SMALL);
                }
                Request::ReadBlock(params)
            }
            Ioctl::WriteBlock => {
                let params = block(input);
                let head = core::mem::size_of::<BlockIn>();
                if (input.len() as u64) < head as u64 + 4 * u64::from(params.count) {
                    return Err(Status::BUFFER_TOO_SMALL);
                }
                let mut data = [0u32; MAX_BLOCK_DWORDS as usize];
                for (i, slot) in data.iter_mut().enumerate().take(params.count as usize) {
                    *slot = le_u32(input, head + 4 * i);
                }
                Request::WriteBlock { params, data }
            }
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
// Inline for the same reason as `Request`.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// A map's block.
    Map(MapCrSpaceOut),
    /// An unmap: no output.
    Unmap,
    /// A query's block.
    Query(QueryCrSpaceOut),
    /// A block read's values: the first `count`.
    ReadBlock {
        /// Dwords read.
        count: u32,
        /// The values (the device's, as the gateway carries them).
        data: [u32; MAX_BLOCK_DWORDS as usize],
    },
    /// A block write, or a lease taken or given back: no output.
    Done,
    /// A device query's block.
    QueryDevice(QueryDeviceOut),
}

impl Response {
    /// Writes exactly the response block at the start of `out` and returns
    /// its length (the IRP's `Information`). `out` was checked by
    /// [`Ioctl::decode`] to be long enough.
    pub fn encode(&self, out: &mut [u8]) -> usize {
        match self {
            Response::Map(m) => put(out, &[&m.va.to_le_bytes()]),
            Response::Unmap | Response::Done => 0,
            Response::ReadBlock { count, data } => {
                let n = (*count).min(MAX_BLOCK_DWORDS) as usize;
                for (i, value) in data[..n].iter().enumerate() {
                    out[4 * i..4 * i + 4].copy_from_slice(&value.to_le_bytes());
                }
                4 * n
            }
            Response::QueryDevice(q) => put(
                out,
                &[
                    &q.pci_device_id.to_le_bytes(),
                    &q.hw_id.to_le_bytes(),
                    &q.path.to_le_bytes(),
                    &q.spaces.to_le_bytes(),
                    &q.max_count.to_le_bytes(),
                    &0u32.to_le_bytes(),
                ],
            ),
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

impl BlockIn {
    /// The block as the caller's bytes (for clients and tests).
    pub fn to_bytes(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        put(&mut b, &[&self.space.to_le_bytes(), &self.offset.to_le_bytes(), &self.count.to_le_bytes()]);
        b
    }
}

impl QueryDeviceOut {
    /// Reads the block from the bytes a device query returned.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() >= 24).then(|| QueryDeviceOut {
            pci_device_id: le_u32(bytes, 0),
            hw_id: le_u32(bytes, 4),
            path: le_u32(bytes, 8),
            spaces: le_u32(bytes, 12),
            max_count: le_u32(bytes, 16),
            reserved: le_u32(bytes, 20),
        })
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
        assert_eq!(FW_READ_CRSPACE_BLOCK, 0x003B_6010);
        assert_eq!(FW_WRITE_CRSPACE_BLOCK, 0x003B_E014);
        assert_eq!(FW_LEASE_CRSPACE, 0x003B_E018);
        assert_eq!(FW_QUERY_DEVICE, 0x003B_601C);
        assert_eq!(Ioctl::WriteBlock.required_access(), Access::READ | Access::WRITE);
        assert_eq!(Ioctl::ReadBlock.required_access(), Access::READ);
        assert_eq!(Ioctl::MapReadWrite.required_access(), Access::READ | Access::WRITE);
        assert_eq!(Ioctl::Query.required_access(), Access::READ);
    }

    #[test]
    fn full_code_is_compared() {
        for bad in [0, FW_MAP_CRSPACE_RO | 0x8000_0000, FW_MAP_CRSPACE_RO | 3, FW_QUERY_DEVICE + 4, 0x0022_6000] {
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
        // Block requests: the output (read) or the input (write) holds every
        // dword asked for; the count's range is a parameter, checked later.
        let read = BlockIn { space: 2, offset: 0x10, count: 3 };
        assert_eq!(Ioctl::ReadBlock.decode(&read.to_bytes(), 11), Err(Status::BUFFER_TOO_SMALL));
        assert_eq!(Ioctl::ReadBlock.decode(&read.to_bytes(), 12), Ok(Request::ReadBlock(read)));
        let huge = BlockIn { count: u32::MAX, ..read };
        assert_eq!(Ioctl::ReadBlock.decode(&huge.to_bytes(), usize::MAX >> 1), Ok(Request::ReadBlock(huge)));
        let mut write = read.to_bytes().to_vec();
        write.extend([1u32, 2, 3].iter().flat_map(|v| v.to_le_bytes()));
        assert_eq!(Ioctl::WriteBlock.decode(&write[..23], 0), Err(Status::BUFFER_TOO_SMALL));
        let Ok(Request::WriteBlock { params, data }) = Ioctl::WriteBlock.decode(&write, 0) else { panic!("decoded") };
        assert_eq!((params, &data[..4]), (read, &[1, 2, 3, 0][..]));
        assert_eq!(Ioctl::Lease.decode(&[1, 0, 0], 0), Err(Status::BUFFER_TOO_SMALL));
        assert_eq!(Ioctl::Lease.decode(&[1, 0, 0, 0], 0), Ok(Request::Lease(LeaseIn { take: 1 })));
        assert_eq!(Ioctl::QueryDevice.decode(&[], 23), Err(Status::BUFFER_TOO_SMALL));
    }

    #[test]
    fn block_and_device_responses_write_exactly_their_bytes() {
        let mut data = [0u32; MAX_BLOCK_DWORDS as usize];
        data[..2].copy_from_slice(&[0x0102_0304, 0xAABB_CCDD]);
        let mut out = [0xEEu8; 12];
        assert_eq!(Response::ReadBlock { count: 2, data }.encode(&mut out), 8);
        assert_eq!(out, [4, 3, 2, 1, 0xDD, 0xCC, 0xBB, 0xAA, 0xEE, 0xEE, 0xEE, 0xEE]);
        let q =
            QueryDeviceOut { pci_device_id: 0x1013, hw_id: 0x209, path: 2, spaces: 0x44e, max_count: 64, reserved: 7 };
        let mut out = [0xEEu8; 26];
        assert_eq!(Response::QueryDevice(q).encode(&mut out), 24);
        assert_eq!(QueryDeviceOut::from_bytes(&out), Some(QueryDeviceOut { reserved: 0, ..q }));
        assert_eq!(&out[24..], &[0xEE; 2]);
        assert_eq!(Response::Done.encode(&mut out), 0);
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
