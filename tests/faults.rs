//! Fault injection: the Nth map, the Nth attach to another process for an
//! unmap, or the Nth allocation of the driver's pool fails, for every N a
//! scenario reaches. A request that meets a fault answers
//! `STATUS_INSUFFICIENT_RESOURCES`, leaves the caller's output buffer as it
//! was and leaves nothing half-made: no view, no table entry
//! (`mapping_count`), no context, no lease. Whatever fails, closing
//! everything leaves the device idle, and the simulator's Verifier (a view
//! unmapped twice, in the wrong process, after its process ended, or left
//! behind) holds throughout.
//!
//! An unmap that cannot attach to the view's owner models the owner's
//! address space being gone already (its rundown ran). The platform then
//! releases its own hold without a user-mode unmap; the core has taken the
//! view out of its table before it calls the platform, so its counts and the
//! lease settle exactly as for a real unmap, and nothing is retried.

mod common;

use common::*;
use mlnx_hca::abi::*;
use mlnx_hca::sim::{DriverPool, ExitOrder, Faults, SimAccess, SimHandle, SimHca};
use mlnx_hca::Status;

// The driver's pool: allocations the core makes can be failed on demand.
#[global_allocator]
static POOL: DriverPool = DriverPool;

const A: u32 = 100;
const B: u32 = 200;
const C: u32 = 300;

/// What a failed request must leave as it was.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    live_views: usize,
    writable_views: usize,
    writer: Option<u32>,
    contexts: usize,
    open_handles: usize,
    /// `mapping_count` of each open handle.
    counts: Vec<u32>,
}

/// One scenario run against one device with one fault armed.
struct Run<'a> {
    hca: &'a SimHca,
    handles: Vec<Option<SimHandle>>,
    vas: Vec<(usize, u64)>,
}

impl Run<'_> {
    fn snapshot(&self) -> Snapshot {
        let counts = self.handles.iter().flatten().map(|h| query(h).mapping_count).collect();
        Snapshot {
            live_views: self.hca.live_views(),
            writable_views: self.hca.writable_views(),
            writer: self.hca.writer_pid(),
            contexts: self.hca.contexts(),
            open_handles: self.hca.open_handles(),
            counts,
        }
    }

    /// `CreateFile`; a fault makes it fail cleanly (no context).
    fn open(&mut self, pid: u32, access: SimAccess) {
        let (before, fired) = (self.snapshot(), self.hca.faults_fired());
        match self.hca.try_open(pid, access) {
            Ok(h) => self.handles.push(Some(h)),
            Err(status) => {
                assert!(self.hca.faults_fired() > fired, "CreateFile failed without a fault: {status:#x}");
                assert_eq!(Status::from_raw(status), Status::INSUFFICIENT_RESOURCES);
                assert_eq!(self.snapshot(), before, "a failed create leaves no context");
                self.handles.push(None);
            }
        }
    }

    /// A map; a fault makes it fail cleanly.
    fn map(&mut self, h: usize, writable: bool, offset: u32, size: u32) {
        let Some(handle) = &self.handles[h] else { return };
        let code = if writable { FW_MAP_CRSPACE_RW } else { FW_MAP_CRSPACE_RO };
        let (before, fired) = (self.snapshot(), self.hca.faults_fired());
        let mut out = [0xA5u8; 12];
        let result = st(handle.ioctl(code, &map_in(0, offset, size), &mut out));
        if self.hca.faults_fired() > fired {
            assert_eq!(result, Err(Status::INSUFFICIENT_RESOURCES), "a map that met a fault");
            assert_eq!(out, [0xA5; 12], "a failed map writes nothing");
            assert_eq!(self.snapshot(), before, "a failed map leaves no view, entry or lease");
        } else {
            assert_eq!(result, Ok(8), "map {h} rw={writable} {offset:#x}+{size:#x}");
            assert_eq!(&out[8..], &[0xA5; 4]);
            let va = MapCrSpaceOut::from_bytes(&out).unwrap().va;
            assert_eq!(peek(va), self.hca.read_dword(offset), "the new view reads the device");
            self.vas.push((h, va));
        }
    }

    /// Unmaps the `i`th view the scenario mapped, through the handle that mapped it.
    fn unmap(&mut self, i: usize) {
        let Some(&(h, va)) = self.vas.get(i) else { return };
        let Some(handle) = &self.handles[h] else { return };
        assert_eq!(unmap(handle, va), Ok(()));
    }

    fn duplicate(&mut self, h: usize, pid: u32) {
        let dup = self.handles[h].as_ref().map(|handle| handle.duplicate(pid));
        self.handles.push(dup);
    }

    fn close(&mut self, h: usize) {
        if let Some(handle) = self.handles[h].take() {
            handle.close();
        }
    }
}

/// Three processes, a duplicate, the lease, a table that grows, a process
/// end, closes in other processes, and a surprise removal at the end if
/// `surprise`. Every step checks itself (see `Run`).
fn scenario(hca: &SimHca, surprise: bool) {
    let mut run = Run { hca, handles: Vec::new(), vas: Vec::new() };
    for pid in [A, B, C, A, B, C] {
        run.open(pid, SimAccess::ReadWrite);
    }
    // Handle 0 (A): enough views to grow its table twice, the lease.
    run.map(0, true, 0xF0014, 4);
    for i in 0..9 {
        run.map(0, i % 3 == 0, i * 0x1000, 0x1000);
    }
    // Another writer is refused; readers are not.
    if let Some(h) = &run.handles[1] {
        if hca.writer_pid().is_some() {
            assert_eq!(map(h, true, 0, 4), Err(Status::DEVICE_BUSY));
        }
    }
    run.map(1, false, 0x2000, 8);
    run.map(2, false, 0, 0x10_0000);
    // A duplicate of A's handle in B (handle 6) maps there too.
    run.duplicate(0, B);
    run.map(6, true, 0x3000, 4);
    run.map(6, false, 0x4000, 4);
    run.unmap(1);
    run.unmap(3);
    // C is killed by A: its handles close in A's thread (cleanup attaches to
    // C), then the notification finds nothing left.
    hca.terminate(C, ExitOrder::KilledBy(A));
    run.handles[2] = None;
    run.handles[5] = None;
    // A closes its handle: the duplicate keeps the file object alive.
    run.close(0);
    run.map(3, false, 0x5000, 4);
    if surprise {
        // Every view left is revoked from the PnP manager's context:
        // each unmap attaches to its owner.
        hca.surprise_remove();
        assert_eq!(hca.live_views(), 0);
    }
    // B closes the duplicate: cleanup in B unmaps A's views by attaching to A.
    run.close(6);
    for h in 0..run.handles.len() {
        run.close(h);
    }
    assert_idle(hca);
    assert_eq!(hca.contexts(), 0, "no context left");
    assert_eq!(hca.open_handles(), 0);
}

/// Runs the scenario with the Nth call of one kind failing, for N = 1, 2, ...
/// until N passes every such call. Returns how many N fired.
fn every_n(faults: impl Fn(u64) -> Faults, surprise: bool) -> u64 {
    let mut fired = 0;
    for n in 1.. {
        let hca = SimHca::new();
        hca.inject_faults(faults(n));
        scenario(&hca, surprise);
        match hca.faults_fired() {
            0 => break,
            1 => fired += 1,
            more => panic!("one armed fault fired {more} times"),
        }
        assert!(n < 1000, "the scenario is bounded");
    }
    fired
}

#[test]
fn the_scenario_runs_clean_without_faults() {
    let hca = SimHca::new();
    hca.inject_faults(Faults::default());
    scenario(&hca, true);
    assert_eq!(hca.faults_fired(), 0);
    assert!(hca.driver_allocations() > 0, "DriverPool sees the core's allocations");
    assert!(hca.attaches() > 0, "the scenario unmaps in other processes");
}

#[test]
fn every_failed_map_is_clean() {
    let fired = every_n(|n| Faults { fail_map_at: Some(n), ..Faults::default() }, false);
    assert!(fired >= 14, "every map of the scenario failed once ({fired})");
}

#[test]
fn every_failed_allocation_is_clean() {
    let fired = every_n(|n| Faults { fail_alloc_at: Some(n), ..Faults::default() }, true);
    // Opens (the context table) and maps (the per-handle view tables) allocate.
    assert!(fired >= 4, "the scenario's allocations each failed once ({fired})");
}

#[test]
fn every_failed_attach_still_settles_everything() {
    for surprise in [false, true] {
        let fired = every_n(|n| Faults { fail_attach_at: Some(n), ..Faults::default() }, surprise);
        assert!(fired >= 2, "the scenario's attaches each failed once ({fired}, surprise {surprise})");
    }
}

/// The allocation a map needs is made before anything is mapped: when the
/// per-handle table cannot grow, no view is created (the platform's map is
/// never called), and the next map succeeds.
#[test]
fn a_table_that_cannot_grow_maps_nothing() {
    let hca = SimHca::new();
    let h = hca.open(A, SimAccess::ReadWrite);
    hca.inject_faults(Faults { fail_alloc_at: Some(1), ..Faults::default() });
    let mut out = [0xA5u8; 8];
    assert_eq!(st(h.ioctl(FW_MAP_CRSPACE_RW, &map_in(0, 0, 4), &mut out)), Err(Status::INSUFFICIENT_RESOURCES));
    assert_eq!(out, [0xA5; 8]);
    assert_eq!((hca.live_views(), hca.writer_pid(), query(&h).mapping_count), (0, None, 0));
    assert_eq!(hca.faults_fired(), 1);
    let va = map(&h, true, 0, 4).unwrap();
    assert_eq!(hca.writer_pid(), Some(A));
    unmap(&h, va).unwrap();
    assert_idle(&hca);
}

/// A cleanup that cannot attach to the owner still takes the view out of the
/// table, settles the lease and the counts, and the host mapping is really
/// gone (the process's memory map no longer has BAR 0 at the old VA).
#[test]
fn an_unmap_that_cannot_attach_releases_the_view() {
    let hca = SimHca::new();
    let h = hca.open(A, SimAccess::ReadWrite);
    let va = map(&h, true, 0xF0014, 4).unwrap();
    let dup = h.duplicate(B);
    let own = map(&dup, false, 0, 4).unwrap();
    h.close();
    hca.inject_faults(Faults { fail_attach_at: Some(1), ..Faults::default() });
    assert_eq!(hca.writer_pid(), Some(A));
    dup.close(); // cleanup in B: A's view needs an attach, which fails
    assert_eq!((hca.faults_fired(), hca.orphaned_views()), (1, 1));
    assert_idle(&hca);
    assert_eq!(hca.contexts(), 0);
    for gone in [va, own] {
        assert!(!hca.is_bar_mapped_at(gone), "{gone:#x} still maps BAR 0");
    }
    // A can write again at once: the lease did not outlive the view.
    let next = hca.open(C, SimAccess::ReadWrite);
    assert!(map(&next, true, 0, 4).is_ok());
}
