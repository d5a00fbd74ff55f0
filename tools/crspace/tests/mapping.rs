//! The library's mapping type against the simulated HCA (real `mmap` views of
//! a shared-memory BAR) and against a backend whose window is fenced by
//! inaccessible pages: bounds and alignment are refused before memory is
//! touched, and dropping a mapping unmaps it.

#![cfg(unix)]

use crspace::abi::{FW_MAP_CRSPACE_RO, FW_MAP_CRSPACE_RW, FW_QUERY_CRSPACE, FW_UNMAP_CRSPACE};
use crspace::sim::{SimAccess, SimConnection, SimHca, SIM_BAR0_SIZE, SIM_DEVICE_ID, SIM_DEVICE_ID_OFFSET};
use crspace::{watch, Connection, Error, Mapping, Status, WatchOptions};
use std::cell::RefCell;
use std::time::Duration;

#[test]
fn reads_the_device_id_through_a_read_only_view() {
    let hca = SimHca::new();
    let conn = SimConnection::open(&hca, SimAccess::Read);
    let id = Mapping::read_only(&conn, SIM_DEVICE_ID_OFFSET, 4).unwrap();
    assert_eq!(id.read(SIM_DEVICE_ID_OFFSET).unwrap(), SIM_DEVICE_ID);
    assert!(!id.is_writable());
    assert_eq!(hca.writable_views(), 0, "a read-only mapping is a read-only view");
}

#[test]
fn dropping_a_mapping_unmaps_it() {
    let hca = SimHca::new();
    let conn = SimConnection::open(&hca, SimAccess::ReadWrite);
    {
        let a = Mapping::read_only(&conn, 0, 4).unwrap();
        let b = Mapping::read_write(&conn, 0x2000, 0x2000).unwrap();
        assert_eq!(hca.live_views(), 2);
        assert_eq!(conn.query().unwrap().mapping_count, 2);
        assert_eq!(conn.query().unwrap().writer_pid, std::process::id(), "the RW map took the lease");
        drop(a);
        assert_eq!(hca.live_views(), 1);
        assert_eq!(conn.query().unwrap().mapping_count, 1);
        b.unmap().expect("an explicit unmap is accepted");
    }
    assert_eq!(hca.live_views(), 0);
    let info = conn.query().unwrap();
    assert_eq!(info.mapping_count, 0);
    assert_eq!(info.writer_pid, 0, "the last RW view gone, the lease is released");
    assert_eq!(hca.writer_pid(), None);
}

#[test]
fn writes_land_in_cr_space_and_only_in_the_window() {
    let hca = SimHca::new();
    let conn = SimConnection::open(&hca, SimAccess::ReadWrite);
    let rw = Mapping::read_write(&conn, 0x1000, 4).unwrap();
    rw.write(0x1000, 0xDEAD_BEEF).unwrap();
    assert_eq!(hca.read_dword(0x1000), 0xDEAD_BEEF, "the device sees the store");
    assert_eq!(rw.read(0x1000).unwrap(), 0xDEAD_BEEF);

    // 0x1004 and 0xFFC are in pages the view maps writable (whole pages are
    // mapped), but outside the window: refused, and memory is untouched.
    assert!(matches!(rw.write(0x1004, 1), Err(Error::OutsideWindow { offset: 0x1004, start: 0x1000, end: 0x1004 })));
    assert!(matches!(rw.write(0xFFC, 1), Err(Error::OutsideWindow { offset: 0xFFC, .. })));
    assert!(matches!(rw.write(0x1002, 1), Err(Error::Unaligned { offset: 0x1002 })));
    assert!(matches!(rw.read(0x1001), Err(Error::Unaligned { offset: 0x1001 })));
    assert_eq!(hca.read_dword(0x1004), 0);
    assert_eq!(hca.read_dword(0xFFC), 0);
    assert_eq!(hca.read_dword(0x1000), 0xDEAD_BEEF, "the unaligned store did not happen either");
}

#[test]
fn a_window_at_the_end_of_bar0_refuses_what_lies_past_it() {
    let hca = SimHca::new();
    let conn = SimConnection::open(&hca, SimAccess::Read);
    let last = SIM_BAR0_SIZE - 4;
    hca.write_dword(last, 0x1234_5678);
    let tail = Mapping::read_only(&conn, last, 4).unwrap();
    assert_eq!(tail.read(last).unwrap(), 0x1234_5678);
    // Past the end of the BAR there is no page of the view at all.
    assert!(matches!(tail.read(SIM_BAR0_SIZE), Err(Error::OutsideWindow { .. })));
    assert!(matches!(tail.read(u32::MAX - 3), Err(Error::OutsideWindow { .. })));
    assert!(matches!(tail.read(last - 4), Err(Error::OutsideWindow { .. })));
}

#[test]
fn windows_the_driver_refuses_come_back_explained() {
    let hca = SimHca::new();
    let conn = SimConnection::open(&hca, SimAccess::Read);
    let past = Mapping::read_only(&conn, SIM_BAR0_SIZE - 4, 8).unwrap_err();
    assert!(matches!(past, Error::PastEnd { offset: 0x10_0000, bar0_size: SIM_BAR0_SIZE }), "{past:?}");
    let beyond = Mapping::read_only(&conn, 0x20_0000, 4).unwrap_err();
    assert_eq!(beyond.to_string(), "offset 0x200000 is past the end of CR space (1 MiB)");
    let unaligned = Mapping::read_only(&conn, 0x10_0003, 4).unwrap_err();
    assert_eq!(unaligned.to_string(), "offset 0x100003 is not dword aligned");
    assert!(matches!(Mapping::read_only(&conn, 0, 6), Err(Error::BadLength { len: 6 })));
    assert!(matches!(Mapping::read_only(&conn, 0, 0), Err(Error::BadLength { len: 0 })));
    assert_eq!(hca.live_views(), 0);
}

#[test]
fn a_read_only_handle_gets_no_writable_mapping() {
    let hca = SimHca::new();
    let conn = SimConnection::open(&hca, SimAccess::Read);
    // The driver's side: the I/O manager refuses the code's write access.
    assert_eq!(
        conn.ioctl(
            FW_MAP_CRSPACE_RW,
            &crspace::abi::MapCrSpaceIn { bar_num: 0, offset: 0, size: 4 }.to_bytes(),
            &mut [0; 8]
        ),
        Err(Status::ACCESS_DENIED)
    );
    let err = Mapping::read_write(&conn, 0, 4).unwrap_err();
    assert_eq!(err.to_string(), "read-only handle: run as Administrator to write");
    assert_eq!(hca.live_views(), 0);
    assert_eq!(hca.writer_pid(), None);
}

#[test]
fn busy_names_the_process_holding_the_lease() {
    let hca = SimHca::new();
    let other = SimConnection::open_as(&hca, 4242, SimAccess::ReadWrite);
    let held = Mapping::read_write(&other, 0x100, 4).unwrap();
    let me = SimConnection::open(&hca, SimAccess::ReadWrite);
    let err = Mapping::read_write(&me, 0x100, 4).unwrap_err();
    assert_eq!(err.to_string(), "busy: process 4242 holds the write lease");
    // Readers any time, also while a writer is active.
    held.write(0x100, 7).unwrap();
    assert_eq!(Mapping::read_only(&me, 0x100, 4).unwrap().read(0x100).unwrap(), 7);
    drop(held);
    Mapping::read_write(&me, 0x100, 4).expect("the lease is free once the writer unmapped");
}

#[test]
fn a_removed_device_says_so() {
    let hca = SimHca::new();
    let conn = SimConnection::open(&hca, SimAccess::Read);
    let before = Mapping::read_only(&conn, 0, 4).unwrap();
    hca.surprise_remove();
    assert_eq!(hca.live_views(), 0, "removal revoked the view");
    let err = Mapping::read_only(&conn, 0, 4).unwrap_err();
    assert_eq!(err.to_string(), "the device was removed: close the tools using it and retry once the HCA is back");
    assert!(matches!(conn.query(), Err(Error::Removed)));
    // Its view is gone: the mapping is not read again, and dropping it is harmless.
    drop(before);
}

#[test]
fn watch_reports_every_sample_or_only_changes() {
    let hca = SimHca::new();
    let conn = SimConnection::open(&hca, SimAccess::Read);
    let reg = Mapping::read_only(&conn, 0x40, 4).unwrap();
    let options = |changes_only| WatchOptions { interval: Duration::from_millis(1), count: Some(6), changes_only };
    // The device changes the register after the 2nd and 4th samples.
    let run = |changes_only| {
        hca.write_dword(0x40, 1);
        let mut seen = Vec::new();
        watch(&reg, 0x40, &options(changes_only), |value| -> Result<(), Error> {
            seen.push(value);
            match seen.len() {
                2 if !changes_only => hca.write_dword(0x40, 2),
                4 if !changes_only => hca.write_dword(0x40, 3),
                1 if changes_only => hca.write_dword(0x40, 2),
                2 if changes_only => hca.write_dword(0x40, 3),
                _ => {}
            }
            Ok(())
        })
        .unwrap();
        seen
    };
    assert_eq!(run(false), [1, 1, 2, 2, 3, 3]);
    assert_eq!(run(true), [1, 2, 3]);
    let outside = watch(&reg, 0x44, &options(false), |_| -> Result<(), Error> { panic!("nothing to report") });
    assert!(matches!(outside, Err(Error::OutsideWindow { .. })));
}

/// A backend whose CR-space page 0x1000..0x2000 is a page of this process
/// with an inaccessible page on each side: an access that strayed out of a
/// window in that page would fault, so a test that passes proves nothing
/// outside was touched.
struct FencedPage {
    /// Three pages: `PROT_NONE`, read-write, `PROT_NONE`.
    region: *mut u8,
    page: usize,
    unmapped: RefCell<Vec<u64>>,
    /// Added to every VA handed out (a broken driver).
    skew: u64,
}

const FENCED: u32 = 0x1000;

impl FencedPage {
    fn new(skew: u64) -> FencedPage {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
        assert!(page >= 4096, "CR-space page 0x1000..0x2000 fits one host page");
        // SAFETY: a fresh anonymous private mapping; no existing memory is affected.
        let region = unsafe {
            libc::mmap(std::ptr::null_mut(), 3 * page, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        assert_ne!(region, libc::MAP_FAILED);
        let region = region.cast::<u8>();
        let middle = region.wrapping_add(page);
        // SAFETY: the middle page is part of the mapping just made.
        let rc = unsafe { libc::mprotect(middle.cast(), page, libc::PROT_READ | libc::PROT_WRITE) };
        assert_eq!(rc, 0);
        FencedPage { region, page, unmapped: RefCell::new(Vec::new()), skew }
    }

    /// The host address behind CR-space `offset` (in 0x1000..0x2000).
    fn host(&self, offset: u32) -> *mut u32 {
        let at = self.page + usize::try_from(offset - FENCED).unwrap();
        self.region.wrapping_add(at).cast()
    }

    /// The device writes `value` at `offset` (big-endian, as CR space).
    fn poke(&self, offset: u32, value: u32) {
        // SAFETY: `offset` is in the read-write middle page, dword aligned.
        unsafe { self.host(offset).write_volatile(value.to_be()) }
    }

    /// The device's value at `offset`.
    fn peek(&self, offset: u32) -> u32 {
        // SAFETY: `offset` is in the read-write middle page, dword aligned.
        u32::from_be(unsafe { self.host(offset).read_volatile() })
    }
}

impl Drop for FencedPage {
    fn drop(&mut self) {
        // SAFETY: the region was mapped in `new` with this length, and no
        // Mapping borrowing this backend is alive any more.
        unsafe { libc::munmap(self.region.cast(), 3 * self.page) };
    }
}

impl Connection for FencedPage {
    fn ioctl(&self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, Status> {
        let word = |at: usize| u32::from_le_bytes(input[at..at + 4].try_into().unwrap());
        match code {
            FW_MAP_CRSPACE_RO | FW_MAP_CRSPACE_RW => {
                let (offset, size) = (word(4), word(8));
                if offset < FENCED || offset + size > FENCED + 0x1000 {
                    return Err(Status::INVALID_PARAMETER);
                }
                let va = self.host(offset) as u64 + self.skew;
                output[..8].copy_from_slice(&va.to_le_bytes());
                Ok(8)
            }
            FW_UNMAP_CRSPACE => {
                self.unmapped.borrow_mut().push(u64::from_le_bytes(input[..8].try_into().unwrap()));
                Ok(0)
            }
            FW_QUERY_CRSPACE => Err(Status::INVALID_DEVICE_REQUEST),
            _ => Err(Status::INVALID_DEVICE_REQUEST),
        }
    }
}

#[test]
fn accesses_next_to_a_fenced_window_are_refused_before_touching_memory() {
    let bar = FencedPage::new(0);
    bar.poke(0x1000, 0x1111_1111);
    bar.poke(0x1FFC, 0x2222_2222);

    let whole = Mapping::read_only(&bar, 0x1000, 0x1000).unwrap();
    assert_eq!(whole.read(0x1000).unwrap(), 0x1111_1111);
    assert_eq!(whole.read(0x1FFC).unwrap(), 0x2222_2222);
    // The dwords right before and right after the window are in the
    // inaccessible pages: a read would have killed this test.
    assert!(matches!(whole.read(0xFFC), Err(Error::OutsideWindow { offset: 0xFFC, start: 0x1000, end: 0x2000 })));
    assert!(matches!(whole.read(0x2000), Err(Error::OutsideWindow { offset: 0x2000, .. })));
    assert!(matches!(whole.read(0x1FFE), Err(Error::Unaligned { offset: 0x1FFE })));
    assert!(matches!(whole.read(0), Err(Error::OutsideWindow { .. })));
    assert!(matches!(whole.read(u32::MAX - 3), Err(Error::OutsideWindow { .. })));

    let tail = Mapping::read_write(&bar, 0x1FF0, 0x10).unwrap();
    tail.write(0x1FFC, 0x3333_3333).unwrap();
    assert_eq!(bar.peek(0x1FFC), 0x3333_3333);
    assert!(matches!(tail.write(0x2000, 0), Err(Error::OutsideWindow { .. })));
    assert!(matches!(tail.write(0x1FEC, 0), Err(Error::OutsideWindow { .. })));
    assert!(matches!(tail.write(0x1FFD, 0), Err(Error::Unaligned { .. })));
    assert_eq!(bar.peek(0x1FFC), 0x3333_3333);

    let whole_va = bar.host(0x1000) as u64;
    let tail_va = bar.host(0x1FF0) as u64;
    drop(tail);
    drop(whole);
    assert_eq!(*bar.unmapped.borrow(), [tail_va, whole_va], "each drop unmapped its own view");
}

#[test]
fn a_view_address_that_cannot_be_used_is_given_back() {
    let bar = FencedPage::new(2);
    let err = Mapping::read_only(&bar, 0x1000, 4).unwrap_err();
    assert!(matches!(err, Error::Malformed { request: "FW_MAP_CRSPACE_RO", .. }), "{err:?}");
    assert_eq!(*bar.unmapped.borrow(), [bar.host(0x1000) as u64 + 2], "the misaligned view was unmapped");
}
