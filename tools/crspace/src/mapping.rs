//! [`Mapping`]: one view of a window of CR space, owned. Reads and writes
//! are volatile dword accesses checked against the window before memory is
//! touched; dropping the mapping unmaps the view.

use crate::abi::{MapCrSpaceIn, MapCrSpaceOut, UnmapCrSpaceIn, FW_MAP_CRSPACE_RO, FW_MAP_CRSPACE_RW, FW_UNMAP_CRSPACE};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::status::Status;
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;

/// A connection that several owners hold: the form a [`Mapping`] keeps when
/// it must outlive the scope that opened the device (the C API's windows,
/// which C code frees in any order).
pub type SharedConnection = Arc<dyn Connection + Send + Sync>;

/// The connection a [`Mapping`] unmaps through: borrowed (the handle
/// outlives the mapping) or shared (the mapping keeps it open).
enum ConnRef<'c> {
    Borrowed(&'c dyn Connection),
    Shared(SharedConnection),
}

impl ConnRef<'_> {
    fn get(&self) -> &dyn Connection {
        match self {
            ConnRef::Borrowed(conn) => *conn,
            ConnRef::Shared(conn) => &**conn,
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ReadOnly {}
    impl Sealed for super::ReadWrite {}
}

/// How a [`Mapping`] was made: [`ReadOnly`] or [`ReadWrite`].
pub trait AccessMode: sealed::Sealed {
    /// Whether the view is writable.
    const WRITABLE: bool;
    /// The I/O control code that makes such a view.
    const MAP_CODE: u32;
    /// That code's contract name.
    const REQUEST: &'static str;
}

/// A view mapped with `FW_MAP_CRSPACE_RO`: any handle may have one.
#[derive(Debug)]
pub enum ReadOnly {}

/// A view mapped with `FW_MAP_CRSPACE_RW`: only a handle opened for write
/// (an administrator's) gets one, and the first one takes the device's write
/// lease until the handle's last read-write view is unmapped.
#[derive(Debug)]
pub enum ReadWrite {}

impl AccessMode for ReadOnly {
    const WRITABLE: bool = false;
    const MAP_CODE: u32 = FW_MAP_CRSPACE_RO;
    const REQUEST: &'static str = "FW_MAP_CRSPACE_RO";
}

impl AccessMode for ReadWrite {
    const WRITABLE: bool = true;
    const MAP_CODE: u32 = FW_MAP_CRSPACE_RW;
    const REQUEST: &'static str = "FW_MAP_CRSPACE_RW";
}

/// A view of the CR-space window `offset..offset + size`, mapped into this
/// process by the driver through `conn`, and unmapped (`FW_UNMAP_CRSPACE`)
/// when dropped.
///
/// Addresses are CR-space (BAR 0) byte offsets, as in `mcra`: `read(0xF0014)`
/// reads the dword at 0xF0014 whatever the window's start. Values are the
/// device's: CR space holds every dword big-endian, and `read`/`write` swap. Every access is
/// checked first: an address that is not a multiple of 4 is
/// [`Error::Unaligned`], one outside the window [`Error::OutsideWindow`], and
/// neither touches memory. Only a `Mapping<ReadWrite>` has
/// [`write`](Mapping::write).
///
/// The mapping borrows its connection: the handle, whose cleanup would unmap
/// the view, outlives it; or, made by [`Mapping::shared_read_only`] or
/// [`Mapping::shared_read_write`], it holds a share of it and keeps the
/// handle open until it is dropped. The one thing the type cannot rule out is the
/// kernel revoking the view itself when the HCA is surprise-removed; an
/// access after that faults, as with any mapping of a removed device.
pub struct Mapping<'c, A: AccessMode = ReadOnly> {
    conn: ConnRef<'c>,
    /// INVARIANT: the user VA of `offset`, a multiple of 4, with
    /// `offset..offset + size` mapped behind it (`A::WRITABLE`: writable too)
    /// from construction until `Drop` sends the unmap.
    base: NonNull<u32>,
    /// `base` as the driver returned it, the key of `FW_UNMAP_CRSPACE`.
    va: u64,
    offset: u32,
    size: u32,
    mode: PhantomData<A>,
}

impl<'c> Mapping<'c, ReadOnly> {
    /// Maps `size` bytes of CR space at `offset` read-only
    /// (`FW_MAP_CRSPACE_RO`). `offset` and `size` are multiples of 4, `size`
    /// is not 0, and the window lies inside CR space.
    pub fn read_only(conn: &'c dyn Connection, offset: u32, size: u32) -> Result<Self> {
        Self::map(ConnRef::Borrowed(conn), offset, size)
    }
}

impl Mapping<'static, ReadOnly> {
    /// [`Mapping::read_only`] through a shared connection, which the mapping
    /// keeps open until it is dropped.
    pub fn shared_read_only(conn: SharedConnection, offset: u32, size: u32) -> Result<Self> {
        Self::map(ConnRef::Shared(conn), offset, size)
    }
}

impl Mapping<'static, ReadWrite> {
    /// [`Mapping::read_write`] through a shared connection, which the mapping
    /// keeps open until it is dropped.
    pub fn shared_read_write(conn: SharedConnection, offset: u32, size: u32) -> Result<Self> {
        Self::map(ConnRef::Shared(conn), offset, size)
    }
}

impl<'c> Mapping<'c, ReadWrite> {
    /// Maps `size` bytes of CR space at `offset` read-write
    /// (`FW_MAP_CRSPACE_RW`), taking the device's write lease unless this
    /// handle holds it already. [`Error::ReadOnly`] if the handle was not
    /// opened for write, [`Error::Busy`] (with the holder's pid) if another
    /// handle holds the lease.
    pub fn read_write(conn: &'c dyn Connection, offset: u32, size: u32) -> Result<Self> {
        Self::map(ConnRef::Borrowed(conn), offset, size)
    }

    /// Writes the device's value `value` to the dword at CR-space `offset`
    /// (volatile, one 32-bit store of its big-endian form).
    pub fn write(&self, offset: u32, value: u32) -> Result<()> {
        let dword = self.dword(offset)?;
        // SAFETY: `dword` is an aligned dword inside the window (checked), which
        // is mapped writable at `base` until `Drop` (INVARIANT of `base`).
        unsafe { dword.write_volatile(value.to_be()) };
        Ok(())
    }
}

impl<'c, A: AccessMode> Mapping<'c, A> {
    fn map(conn: ConnRef<'c>, offset: u32, size: u32) -> Result<Self> {
        if offset % 4 != 0 {
            return Err(Error::Unaligned { offset: offset.into() });
        }
        if size == 0 || size % 4 != 0 {
            return Err(Error::BadLength { len: size.into() });
        }
        let input = MapCrSpaceIn { bar_num: 0, offset, size }.to_bytes();
        let mut out = [0u8; 8];
        let written = match conn.get().ioctl(A::MAP_CODE, &input, &mut out) {
            Ok(written) => written,
            Err(status) => return Err(explain_map_failure(conn.get(), A::REQUEST, status, offset, size)),
        };
        let Some(MapCrSpaceOut { va }) = MapCrSpaceOut::from_bytes(&out[..written.min(out.len())]) else {
            return Err(Error::Malformed { request: A::REQUEST, what: "fewer than 8 bytes" });
        };
        match view_base(va, size) {
            Some(base) => Ok(Mapping { conn, base, va, offset, size, mode: PhantomData }),
            None => {
                // The view exists but cannot be used: give it back.
                let _ = send_unmap(conn.get(), va);
                Err(Error::Malformed { request: A::REQUEST, what: "the view's address is null or not dword aligned" })
            }
        }
    }

    /// Reads the dword at CR-space `offset` (volatile, one 32-bit load) and
    /// returns the device's value: CR space is big-endian, so the loaded
    /// bytes are swapped on a little-endian host, as mstflint's mtcr does.
    pub fn read(&self, offset: u32) -> Result<u32> {
        let dword = self.dword(offset)?;
        // SAFETY: `dword` is an aligned dword inside the window (checked), which
        // is mapped readable at `base` until `Drop` (INVARIANT of `base`).
        let raw = unsafe { dword.read_volatile() };
        Ok(u32::from_be(raw))
    }

    /// The checked address of the dword at CR-space `offset`. Refuses, before
    /// anything is dereferenced, an unaligned offset or one whose dword is not
    /// entirely inside the window.
    fn dword(&self, offset: u32) -> Result<*mut u32> {
        if offset % 4 != 0 {
            return Err(Error::Unaligned { offset: offset.into() });
        }
        if offset < self.offset || u64::from(offset) + 4 > self.end() {
            return Err(Error::OutsideWindow { offset: offset.into(), start: self.offset, end: self.end() });
        }
        // CAST: offset - self.offset < size, and `view_base` checked that
        // base + size fits the address space, so the index fits usize.
        let index = ((offset - self.offset) / 4) as usize;
        // Inside the window (checked above), so the address does not wrap.
        Ok(self.base.as_ptr().wrapping_add(index))
    }

    /// First CR-space byte of the window.
    pub fn offset(&self) -> u32 {
        self.offset
    }

    /// Size of the window in bytes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// One past the last CR-space byte of the window.
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.size)
    }

    /// Whether this is a read-write view.
    pub fn is_writable(&self) -> bool {
        A::WRITABLE
    }

    /// Unmaps now and reports whether the driver agreed (dropping a mapping
    /// does the same and ignores the answer).
    pub fn unmap(self) -> Result<()> {
        let mut this = ManuallyDrop::new(self);
        // The connection (a share of it, for a shared mapping) is taken out
        // to be dropped after the unmap; nothing else of `this` needs a drop.
        let conn = std::mem::replace(&mut this.conn, ConnRef::Borrowed(&NoConnection));
        send_unmap(conn.get(), this.va).map(drop).map_err(|status| Error::from_status("FW_UNMAP_CRSPACE", status))
    }
}

impl<A: AccessMode> Drop for Mapping<'_, A> {
    fn drop(&mut self) {
        // Nothing to do on failure: the device is gone (its removal unmapped
        // the view) or the handle is closing (its cleanup unmaps it).
        let _ = send_unmap(self.conn.get(), self.va);
    }
}

/// A stand-in connection that answers nothing, put in place of a mapping's
/// share of its connection when [`Mapping::unmap`] gives it up.
struct NoConnection;

impl Connection for NoConnection {
    fn ioctl(&self, _: u32, _: &[u8], _: &mut [u8]) -> Result<usize, Status> {
        Err(Status::INVALID_HANDLE)
    }
}

impl<A: AccessMode> fmt::Debug for Mapping<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("offset", &format_args!("{:#x}", self.offset))
            .field("size", &format_args!("{:#x}", self.size))
            .field("writable", &A::WRITABLE)
            .finish_non_exhaustive()
    }
}

/// The pointer behind a VA the driver returned for a window of `size` bytes,
/// if it can be one: not null, dword aligned, and the window fits the
/// address space.
fn view_base(va: u64, size: u32) -> Option<NonNull<u32>> {
    let addr = usize::try_from(va).ok()?;
    // CAST: u32 fits usize on every target this tool builds for.
    if addr % 4 != 0 || addr.checked_add(size as usize).is_none() {
        return None;
    }
    // The view was made by the kernel, not by a Rust allocation: it is
    // reached through an exposed address.
    NonNull::new(std::ptr::with_exposed_provenance_mut::<u32>(addr))
}

fn send_unmap(conn: &dyn Connection, va: u64) -> Result<usize, Status> {
    conn.ioctl(FW_UNMAP_CRSPACE, &UnmapCrSpaceIn { va }.to_bytes(), &mut [])
}

/// The error for a map request of the window `offset..offset + size` that
/// the driver refused with `status`. Completes the two statuses that need
/// another look at the device: who holds the lease (`FW_QUERY_CRSPACE`), and
/// which end of the window is out of CR space. For tools that send the map
/// requests themselves (a [`Mapping`] does this already).
pub fn explain_map_failure(
    conn: &dyn Connection,
    request: &'static str,
    status: Status,
    offset: u32,
    size: u32,
) -> Error {
    match status {
        Status::DEVICE_BUSY => Error::Busy { writer_pid: conn.query().map_or(0, |info| info.writer_pid) },
        Status::INVALID_PARAMETER => match conn.query() {
            Ok(info) if u64::from(offset) + u64::from(size) > u64::from(info.bar0_size) => {
                Error::PastEnd { offset: offset.max(info.bar0_size).into(), bar0_size: info.bar0_size }
            }
            _ => Error::from_status(request, status),
        },
        status => Error::from_status(request, status),
    }
}
