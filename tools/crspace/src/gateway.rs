//! CR space and the other address spaces of a ConnectX-4 or later: the
//! driver reaches them through the configuration-space gateway and moves
//! blocks of dwords on request (`FW_READ_CRSPACE_BLOCK`,
//! `FW_WRITE_CRSPACE_BLOCK`); nothing is mapped. [`query_device`] says which
//! path a device takes.
//!
//! Values are the device's: the gateway carries them, no byte swap.

#![forbid(unsafe_code)]

use crate::abi::{
    space, BlockIn, QueryDeviceOut, FW_LEASE_CRSPACE, FW_QUERY_DEVICE, FW_READ_CRSPACE_BLOCK, FW_WRITE_CRSPACE_BLOCK,
    MAX_BLOCK_DWORDS, PATH_GATEWAY,
};
use crate::connection::Connection;
use crate::error::{Error, Result};

/// What `FW_QUERY_DEVICE` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The PCI device id (0x1003 a ConnectX-3, 0x1013 a ConnectX-4).
    pub pci_device_id: u32,
    /// The low 16 bits of CR space's dword at 0xF0014.
    pub hw_id: u32,
    /// CR space is behind the gateway (block requests), not mapped.
    pub gateway: bool,
    /// Bit n: address space n is served.
    pub spaces: u32,
    /// The most dwords one block request moves.
    pub max_count: u32,
}

impl DeviceInfo {
    /// Whether address space `space` is served.
    pub fn supports(&self, space: u32) -> bool {
        space < 32 && self.spaces & (1 << space) != 0
    }

    /// The served spaces, by number.
    pub fn space_list(&self) -> impl Iterator<Item = u32> + '_ {
        (0..32).filter(|&s| self.supports(s))
    }
}

/// The name of an address space of the gateway, for people.
pub fn space_name(n: u32) -> &'static str {
    match n {
        space::ICMD_EXT => "ICMD (extended)",
        space::CR => "CR space",
        space::ICMD => "ICMD",
        space::ND_CR => "CR space, non-destructive reads",
        space::SEMAPHORE => "semaphores (tool locks)",
        _ => "unnamed",
    }
}

/// `FW_QUERY_DEVICE`.
pub fn query_device(conn: &dyn Connection) -> Result<DeviceInfo> {
    const REQUEST: &str = "FW_QUERY_DEVICE";
    let mut out = [0u8; 24];
    let written = conn.ioctl(FW_QUERY_DEVICE, &[], &mut out).map_err(|s| Error::from_status(REQUEST, s))?;
    let q = QueryDeviceOut::from_bytes(&out[..written])
        .ok_or(Error::Malformed { request: REQUEST, what: "fewer than 24 bytes" })?;
    Ok(DeviceInfo {
        pci_device_id: q.pci_device_id,
        hw_id: q.hw_id,
        gateway: q.path == PATH_GATEWAY,
        spaces: q.spaces,
        max_count: q.max_count,
    })
}

/// A refusal of a request on `conn`, with the lease's holder named when the
/// driver answered busy (asked with `FW_QUERY_CRSPACE`).
fn refusal(conn: &dyn Connection, request: &'static str, status: crate::Status) -> Error {
    match Error::from_status(request, status) {
        Error::Busy { .. } => Error::Busy { writer_pid: conn.query().map_or(0, |info| info.writer_pid) },
        error => error,
    }
}

/// Checks a transfer before anything is sent: a dword-aligned offset, and
/// the whole range inside the gateway's 30-bit addresses.
fn check(offset: u32, count: usize) -> Result<()> {
    if offset % 4 != 0 {
        return Err(Error::Unaligned { offset: offset.into() });
    }
    let end = u64::from(offset) + 4 * count as u64;
    if end > 1 << 30 {
        return Err(Error::PastGateway { offset: offset.into(), end });
    }
    Ok(())
}

/// Reads `out.len()` dwords of `space` from byte `offset` on, in blocks of
/// at most [`MAX_BLOCK_DWORDS`] (each one its own hold of the gateway).
pub fn read_space(conn: &dyn Connection, space: u32, offset: u32, out: &mut [u32]) -> Result<()> {
    const REQUEST: &str = "FW_READ_CRSPACE_BLOCK";
    check(offset, out.len())?;
    let mut at = offset;
    for chunk in out.chunks_mut(MAX_BLOCK_DWORDS as usize) {
        // CAST: a chunk has at most 64 dwords.
        let count = chunk.len() as u32;
        let input = BlockIn { space, offset: at, count }.to_bytes();
        let mut bytes = [0u8; 4 * MAX_BLOCK_DWORDS as usize];
        let want = 4 * chunk.len();
        let written = conn.ioctl(FW_READ_CRSPACE_BLOCK, &input, &mut bytes[..want]).map_err(|s| {
            match Error::from_status(REQUEST, s) {
                Error::ReadOnly if !space::readable_by_any(space) => Error::SpaceNeedsWrite { space },
                error => error,
            }
        })?;
        if written != want {
            return Err(Error::Malformed { request: REQUEST, what: "fewer bytes than the block's dwords" });
        }
        for (slot, word) in chunk.iter_mut().zip(bytes.chunks_exact(4)) {
            *slot = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        }
        at += 4 * count;
    }
    Ok(())
}

/// Writes `data` to `space` from byte `offset` on, in blocks as
/// [`read_space`] reads. Needs the write lease free or this handle's. A
/// failed block leaves the blocks before it written.
pub fn write_space(conn: &dyn Connection, space: u32, offset: u32, data: &[u32]) -> Result<()> {
    const REQUEST: &str = "FW_WRITE_CRSPACE_BLOCK";
    check(offset, data.len())?;
    let mut at = offset;
    for chunk in data.chunks(MAX_BLOCK_DWORDS as usize) {
        // CAST: a chunk has at most 64 dwords.
        let count = chunk.len() as u32;
        let mut input = BlockIn { space, offset: at, count }.to_bytes().to_vec();
        for value in chunk {
            input.extend_from_slice(&value.to_le_bytes());
        }
        conn.ioctl(FW_WRITE_CRSPACE_BLOCK, &input, &mut []).map_err(|s| refusal(conn, REQUEST, s))?;
        at += 4 * count;
    }
    Ok(())
}

/// `FW_LEASE_CRSPACE`: takes the write lease for this handle (`Busy` if
/// another holds it), or gives it back.
pub fn lease(conn: &dyn Connection, take: bool) -> Result<()> {
    conn.ioctl(FW_LEASE_CRSPACE, &u32::from(take).to_le_bytes(), &mut [])
        .map(|_| ())
        .map_err(|s| refusal(conn, "FW_LEASE_CRSPACE", s))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::sim::{SimAccess, SimConnection, SimHca, SimModel};

    #[test]
    fn blocks_longer_than_one_request_round_trip() {
        let hca = SimHca::with_model(SimModel::ConnectX4);
        let conn = SimConnection::open(&hca, SimAccess::ReadWrite);
        let info = query_device(&conn).unwrap();
        assert!(info.gateway && info.supports(space::CR) && info.pci_device_id == 0x1013);
        let data: Vec<u32> = (0..150).map(|i| 0xA000_0000 | i).collect();
        write_space(&conn, space::CR, 0x2000, &data).unwrap();
        let mut back = vec![0; 150];
        read_space(&conn, space::CR, 0x2000, &mut back).unwrap();
        assert_eq!(back, data, "three requests each way, in order");
        assert_eq!(hca.read_space(space::CR, 0x2000 + 4 * 149), 0xA000_0095, "no byte swap");
    }

    #[test]
    fn bad_ranges_are_refused_before_anything_is_sent() {
        let hca = SimHca::with_model(SimModel::ConnectX4);
        let conn = SimConnection::open(&hca, SimAccess::ReadWrite);
        assert!(matches!(read_space(&conn, space::CR, 2, &mut [0; 1]), Err(Error::Unaligned { .. })));
        assert!(matches!(write_space(&conn, space::CR, 0x3FFF_FFFC, &[1, 2]), Err(Error::PastGateway { .. })));
        assert!(matches!(read_space(&conn, 5, 0, &mut [0; 1]), Err(Error::NotSupported { .. })));
    }

    #[test]
    fn a_mapped_device_says_so_and_refuses_blocks() {
        let hca = SimHca::new();
        let conn = SimConnection::open(&hca, SimAccess::ReadWrite);
        let info = query_device(&conn).unwrap();
        assert!(!info.gateway && info.spaces == 0 && info.hw_id == 0x1F5);
        let err = read_space(&conn, space::CR, 0xF0014, &mut [0; 1]).unwrap_err();
        assert!(err.to_string().contains("mapped"), "{err}");
    }

    #[test]
    fn a_reader_is_told_why_a_space_needs_more() {
        let hca = SimHca::with_model(SimModel::ConnectX4);
        let reader = SimConnection::open(&hca, SimAccess::Read);
        read_space(&reader, space::CR, 0xF0014, &mut [0; 1]).unwrap();
        let err = read_space(&reader, space::SEMAPHORE, 0, &mut [0; 1]).unwrap_err();
        assert!(matches!(err, Error::SpaceNeedsWrite { space: 0xA }), "{err}");
        assert!(matches!(write_space(&reader, space::CR, 0, &[1]), Err(Error::ReadOnly)));
    }

    #[test]
    fn the_lease_without_views() {
        let hca = SimHca::with_model(SimModel::ConnectX4);
        let a = SimConnection::open_as(&hca, 4000, SimAccess::ReadWrite);
        let b = SimConnection::open_as(&hca, 4004, SimAccess::ReadWrite);
        lease(&a, true).unwrap();
        assert!(matches!(write_space(&b, space::CR, 0, &[1]), Err(Error::Busy { writer_pid: 4000 })));
        lease(&a, false).unwrap();
        write_space(&b, space::CR, 0, &[1]).unwrap();
    }
}
