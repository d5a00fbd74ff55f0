//! The contract (`CONTRACT.md`), rule by rule, through
//! `SimHandle::ioctl` on the simulated HCA: each test asserts the status a
//! tool gets and the effect it can see (bytes through the view, a fault, the
//! lease, views left).

mod common;

use common::*;
use mlnx_hca::abi::*;
use mlnx_hca::sim::{
    ExitOrder, Origin, SimAccess, SimHca, SIM_BAR0_SIZE, SIM_BAR1_SIZE, SIM_BAR2_SIZE, SIM_DEVICE_ID, SYSTEM_PID,
};
use mlnx_hca::Status;

const A: u32 = 100;
const B: u32 = 200;
const C: u32 = 300;
/// A process that kills others.
const K: u32 = 900;

/// A bad request gets its status, writes nothing to the output buffer and
/// leaves nothing behind.
fn refused(hca: &SimHca, h: &mlnx_hca::sim::SimHandle, code: u32, input: &[u8], out_len: usize, want: Status) {
    let mut out = vec![0xA5u8; out_len];
    assert_eq!(st(h.ioctl(code, input, &mut out)), Err(want), "code {code:#x} input {input:02x?} out {out_len}");
    assert!(out.iter().all(|&b| b == 0xA5), "a failed request leaves the output buffer as it was");
    assert_eq!(hca.live_views(), 0, "a failed request maps nothing");
    assert_eq!(hca.writer_pid(), None, "a failed request takes no lease");
    assert_eq!(query(h).mapping_count, 0);
}

#[test]
fn every_bad_input_has_its_status_and_changes_nothing() {
    let hca = SimHca::new();
    let h = hca.open(A, SimAccess::ReadWrite);
    for code in [FW_MAP_CRSPACE_RO, FW_MAP_CRSPACE_RW] {
        // Short buffers.
        refused(&hca, &h, code, &map_in(0, 0, 4)[..11], 8, Status::BUFFER_TOO_SMALL);
        refused(&hca, &h, code, &map_in(0, 0, 4), 7, Status::BUFFER_TOO_SMALL);
        refused(&hca, &h, code, &[], 0, Status::BUFFER_TOO_SMALL);
        // BARs other than 0.
        refused(&hca, &h, code, &map_in(1, 0, 4), 8, Status::NOT_IMPLEMENTED);
        refused(&hca, &h, code, &map_in(2, 0, 4), 8, Status::NOT_IMPLEMENTED);
        refused(&hca, &h, code, &map_in(3, 0, 4), 8, Status::INVALID_PARAMETER);
        refused(&hca, &h, code, &map_in(0x8000_0000, 0, 4), 8, Status::INVALID_PARAMETER);
        // Alignment, size, bounds, overflow.
        refused(&hca, &h, code, &map_in(0, 0xF0016, 4), 8, Status::INVALID_PARAMETER);
        refused(&hca, &h, code, &map_in(0, 0xF0014, 6), 8, Status::INVALID_PARAMETER);
        refused(&hca, &h, code, &map_in(0, 0xF0014, 0), 8, Status::INVALID_PARAMETER);
        refused(&hca, &h, code, &map_in(0, SIM_BAR0_SIZE - 4, 8), 8, Status::INVALID_PARAMETER);
        refused(&hca, &h, code, &map_in(0, SIM_BAR0_SIZE, 4), 8, Status::INVALID_PARAMETER);
        refused(&hca, &h, code, &map_in(0, 0xFFFF_FFFC, 8), 8, Status::INVALID_PARAMETER);
        refused(&hca, &h, code, &map_in(0, 4, u32::MAX - 3), 8, Status::INVALID_PARAMETER);
    }
    refused(&hca, &h, FW_UNMAP_CRSPACE, &[0; 7], 0, Status::BUFFER_TOO_SMALL);
    refused(&hca, &h, FW_QUERY_CRSPACE, &[], 23, Status::BUFFER_TOO_SMALL);
    // Unknown codes, and known codes with other bits: the full code is compared.
    for code in [
        0,
        ctl_code(FILE_DEVICE_INFINIBAND, 0x808, METHOD_BUFFERED, Access::READ),
        ctl_code(FILE_DEVICE_INFINIBAND, 0x800, 3, Access::READ), // METHOD_NEITHER
        ctl_code(0x22, 0x800, METHOD_BUFFERED, Access::READ),     // FILE_DEVICE_UNKNOWN
        FW_MAP_CRSPACE_RO | 0x8000_0000,                          // reserved high bit
        FW_QUERY_CRSPACE | 0x1_0000_0000u64 as u32 | 0x0040_0000, // another device type
    ] {
        refused(&hca, &h, code, &map_in(0, 0, 4), 8, Status::INVALID_DEVICE_REQUEST);
    }
}

#[test]
fn checks_run_in_the_contract_order() {
    let hca = SimHca::new();
    let ro = hca.open(A, SimAccess::Read);
    // Access before lengths: a read-only handle asking RW with a short buffer.
    refused(&hca, &ro, FW_MAP_CRSPACE_RW, &[], 0, Status::ACCESS_DENIED);
    // Lengths before parameters.
    refused(&hca, &ro, FW_MAP_CRSPACE_RO, &map_in(7, 3, 0), 4, Status::BUFFER_TOO_SMALL);
    // Parameters before quota and lease.
    let w = hca.open(B, SimAccess::ReadWrite);
    let va = map(&w, true, 0, 4).unwrap();
    let rw = hca.open(C, SimAccess::ReadWrite);
    let views: Vec<u64> = (0..64).map(|i| map(&rw, false, i * 4, 4).unwrap()).collect();
    let mut out = [0u8; 8];
    assert_eq!(st(rw.ioctl(FW_MAP_CRSPACE_RW, &map_in(0, 2, 4), &mut out)), Err(Status::INVALID_PARAMETER));
    // Quota before lease: at its quota and facing another's lease, the quota answers.
    assert_eq!(map(&rw, true, 0, 4), Err(Status::INSUFFICIENT_RESOURCES));
    unmap(&rw, views[0]).unwrap();
    assert_eq!(map(&rw, true, 0, 4), Err(Status::DEVICE_BUSY));
    unmap(&w, va).unwrap();
}

#[test]
fn a_read_only_view_reads_the_device() {
    let hca = SimHca::new();
    let h = hca.open(A, SimAccess::Read);
    let va = map(&h, false, 0xF0014, 4).unwrap();
    assert_eq!(peek(va), SIM_DEVICE_ID, "the device id through a read-only view");
    assert_eq!(SIM_DEVICE_ID, 0x0001_01F5, "a ConnectX-3, revision 1");
    assert_eq!(peek_bytes(va), [0x00, 0x01, 0x01, 0xF5], "CR space holds it big-endian, as on the bus");
    assert_eq!(va % 4096, 0x014, "the VA of the offset itself, not of its page");
    hca.write_dword(0xF0014, 0x1234_5678);
    assert_eq!(peek(va), 0x1234_5678, "the view follows the device");
    // A window over several pages, ending at the BAR's last dword.
    hca.write_dword(SIM_BAR0_SIZE - 4, 0xCAFE_F00D);
    hca.write_dword(SIM_BAR0_SIZE - 0x2000, 0x0BAD_BEEF);
    let va2 = map(&h, false, SIM_BAR0_SIZE - 0x2000, 0x2000).unwrap();
    assert_eq!(peek(va2), 0x0BAD_BEEF);
    assert_eq!(peek(va2 + 0x1FFC), 0xCAFE_F00D);
    assert_eq!(query(&h).mapping_count, 2);
    unmap(&h, va).unwrap();
    unmap(&h, va2).unwrap();
    assert_idle(&hca);
}

#[test]
fn a_write_through_a_read_only_view_faults_and_through_a_read_write_view_lands() {
    let hca = SimHca::new();
    let h = hca.open(A, SimAccess::ReadWrite);
    let ro = map(&h, false, 0x100, 4).unwrap();
    let rw = map(&h, true, 0x100, 4).unwrap();
    let child = in_child(|| poke(ro, 0xDEAD_BEEF));
    assert!(
        child == Err(libc::SIGSEGV) || child == Err(libc::SIGBUS),
        "a write through a read-only view must fault, child ended {child:?}"
    );
    assert_eq!(hca.read_dword(0x100), 0, "the refused write did not reach the device");
    assert_eq!(in_child(|| poke(rw, 0xDEAD_BEEF)), Ok(0), "the same write through a RW view does not fault");
    assert_eq!(hca.read_dword(0x100), 0xDEAD_BEEF, "and lands in the device (shared BAR)");
    poke(rw, 0x0000_5A5A);
    assert_eq!(hca.read_dword(0x100), 0x5A5A);
    assert_eq!(peek(ro), 0x5A5A, "readers see the writer");
}

#[test]
fn one_writer_at_a_time_and_readers_any_time() {
    let hca = SimHca::new();
    let first = hca.open(A, SimAccess::ReadWrite);
    let second = hca.open(B, SimAccess::ReadWrite);
    let reader = hca.open(C, SimAccess::Read);
    let w1 = map(&first, true, 0, 4).unwrap();
    let w2 = map(&first, true, 0x1000, 4).unwrap();
    assert_eq!(query(&reader).writer_pid, A);
    assert_eq!(map(&second, true, 0, 4), Err(Status::DEVICE_BUSY), "the second writer is refused at once");
    assert_eq!(hca.writable_views(), 2);
    let r = map(&reader, false, 0, 4).unwrap();
    let r2 = map(&second, false, 0, 4).unwrap();
    unmap(&second, r2).unwrap();
    unmap(&first, w1).unwrap();
    assert_eq!(map(&second, true, 0, 4), Err(Status::DEVICE_BUSY), "the lease lasts while the holder has a RW view");
    let own_ro = map(&first, false, 0, 4).unwrap();
    unmap(&first, w2).unwrap();
    assert_eq!(hca.writer_pid(), None, "a read-only view does not keep the lease");
    let s = map(&second, true, 0, 4).unwrap();
    assert_eq!(query(&reader).writer_pid, B);
    assert_eq!(map(&first, true, 0, 4), Err(Status::DEVICE_BUSY));
    // Closing the holder also ends the lease.
    second.close();
    assert_eq!(hca.writer_pid(), None);
    let _ = s;
    let again = map(&first, true, 0, 4).unwrap();
    unmap(&first, again).unwrap();
    unmap(&first, own_ro).unwrap();
    unmap(&reader, r).unwrap();
    assert_idle(&hca);
}

#[test]
fn a_read_only_handle_cannot_map_read_write() {
    let hca = SimHca::new();
    let h = hca.open(A, SimAccess::Read);
    refused(&hca, &h, FW_MAP_CRSPACE_RW, &map_in(0, 0, 4), 8, Status::ACCESS_DENIED);
    assert!(map(&h, false, 0, 4).is_ok(), "it can still read");
}

#[test]
fn unmap_of_a_bogus_or_foreign_va_changes_nothing() {
    let hca = SimHca::new();
    let mine = hca.open(A, SimAccess::ReadWrite);
    let other = hca.open(A, SimAccess::ReadWrite);
    let va = map(&mine, true, 0xF0014, 4).unwrap();
    let before = (hca.live_views(), hca.writer_pid());
    for bogus in [0, 1, va + 4, va - 0x14, u64::MAX, 0xFFFF_8000_0000_0000] {
        assert_eq!(unmap(&mine, bogus), Err(Status::INVALID_PARAMETER), "{bogus:#x}");
    }
    assert_eq!(unmap(&other, va), Err(Status::INVALID_PARAMETER), "another handle's VA");
    // The same number from another process through a duplicate.
    let dup = mine.duplicate(B);
    assert_eq!(unmap(&dup, va), Err(Status::INVALID_PARAMETER), "another process's VA");
    assert_eq!((hca.live_views(), hca.writer_pid()), before, "nothing changed");
    assert_eq!(peek(va), SIM_DEVICE_ID, "the view still works");
    unmap(&mine, va).unwrap();
    assert_eq!(unmap(&mine, va), Err(Status::INVALID_PARAMETER), "a VA unmaps once");
    assert_idle(&hca);
}

#[test]
fn quotas_per_handle_and_per_device() {
    let hca = SimHca::new();
    let greedy = hca.open(A, SimAccess::Read);
    let vas: Vec<u64> = (0..64).map(|i| map(&greedy, false, i * 4096, 4).unwrap()).collect();
    refused_quota(&hca, &greedy, 64);
    // One handle at its quota never stops another.
    let modest = hca.open(B, SimAccess::Read);
    let m = map(&modest, false, 0, 4).unwrap();
    unmap(&modest, m).unwrap();
    unmap(&greedy, vas[10]).unwrap();
    assert!(map(&greedy, false, 0, 4).is_ok(), "room again after an unmap");
    drop(greedy);
    drop(modest);
    assert_idle(&hca);

    // The device quota: 1,024 views over 16 handles, then no more for anyone.
    let handles: Vec<_> = (0..17).map(|i| hca.open(1000 + i, SimAccess::Read)).collect();
    for h in &handles[..16] {
        for i in 0..64 {
            map(h, false, i * 4, 4).unwrap();
        }
    }
    assert_eq!(hca.live_views(), 1024);
    let mut out = [0xA5u8; 8];
    assert_eq!(
        st(handles[16].ioctl(FW_MAP_CRSPACE_RO, &map_in(0, 0, 4), &mut out)),
        Err(Status::INSUFFICIENT_RESOURCES)
    );
    assert_eq!(out, [0xA5; 8]);
    assert_eq!(hca.live_views(), 1024);
    drop(handles);
    assert_idle(&hca);
}

fn refused_quota(hca: &SimHca, h: &mlnx_hca::sim::SimHandle, held: usize) {
    let live = hca.live_views();
    let mut out = [0xA5u8; 8];
    assert_eq!(st(h.ioctl(FW_MAP_CRSPACE_RO, &map_in(0, 0, 4), &mut out)), Err(Status::INSUFFICIENT_RESOURCES));
    assert_eq!(out, [0xA5; 8]);
    assert_eq!(hca.live_views(), live);
    assert_eq!(query(h).mapping_count as usize, held);
}

#[test]
fn terminate_with_live_mappings_leaves_nothing() {
    for order in ExitOrder::both(K) {
        let hca = SimHca::new();
        let h = hca.open(A, SimAccess::ReadWrite);
        let dup_same_process = h.duplicate(A);
        for i in 0..10 {
            map(&h, i % 2 == 0, i * 4096, 4096).unwrap();
        }
        assert_eq!(hca.writer_pid(), Some(A));
        let attaches = hca.attaches();
        hca.terminate(A, order);
        assert_idle(&hca);
        assert_eq!(hca.open_handles(), 0);
        let attached = hca.attaches() - attaches;
        match order {
            ExitOrder::Exits => assert_eq!(attached, 0, "{order:?}: the notification unmapped in A's own context"),
            ExitOrder::KilledBy(_) => assert_eq!(attached, 10, "{order:?}: cleanup in the killer attached to A"),
        }
        // Handles of an ended process are gone; dropping them does nothing.
        assert_eq!(st(h.ioctl(FW_QUERY_CRSPACE, &[], &mut [0; 24])), Err(Status::INVALID_HANDLE));
        drop(h);
        drop(dup_same_process);
        // Another process can write now.
        let next = hca.open(B, SimAccess::ReadWrite);
        assert!(map(&next, true, 0, 4).is_ok());
    }
}

#[test]
fn a_duplicate_closed_elsewhere_unmaps_in_the_owners_process() {
    let hca = SimHca::new();
    let h = hca.open(A, SimAccess::ReadWrite);
    let va = map(&h, true, 0xF0014, 4).unwrap();
    let dup = h.duplicate(B);
    assert_eq!(query(&dup).mapping_count, 1, "a duplicate shares the context");
    assert_eq!(query(&dup).writer_pid, A);
    h.close();
    assert_eq!(hca.live_views(), 1, "the file object lives on through the duplicate");
    assert_eq!(peek(va), SIM_DEVICE_ID);
    let attaches = hca.attaches();
    dup.close(); // cleanup runs in B; the view is A's
    assert_eq!(hca.attaches(), attaches + 1, "cleanup attached to the owner to unmap");
    assert_idle(&hca);
}

#[test]
fn the_owner_ending_takes_its_views_and_lease_while_a_duplicate_lives_on() {
    for order in ExitOrder::both(K) {
        let hca = SimHca::new();
        let h = hca.open(A, SimAccess::ReadWrite);
        let dup = h.duplicate(B);
        map(&h, true, 0, 4).unwrap();
        map(&h, false, 0x1000, 4).unwrap();
        let b_view = map(&dup, false, 0x2000, 4).unwrap();
        assert_eq!(hca.writer_pid(), Some(A));
        hca.terminate(A, order);
        assert_eq!(hca.views_of(A), 0, "{order:?}: A's views went with A");
        assert_eq!(hca.writer_pid(), None, "{order:?}: the lease never stays with an ended process");
        assert_eq!(query(&dup).mapping_count, 1, "{order:?}: B's own view stays");
        assert_eq!(peek(b_view), 0);
        // The duplicate still works, and can take the lease itself.
        let w = map(&dup, true, 0, 4).unwrap();
        assert_eq!(query(&dup).writer_pid, B);
        unmap(&dup, w).unwrap();
        dup.close();
        assert_idle(&hca);
    }
}

#[test]
fn the_lease_moves_to_a_living_writer_of_the_same_handle() {
    for order in ExitOrder::both(K) {
        let hca = SimHca::new();
        let h = hca.open(A, SimAccess::ReadWrite);
        let dup = h.duplicate(B);
        map(&h, true, 0, 4).unwrap();
        let bw = map(&dup, true, 0, 4).unwrap();
        assert_eq!(hca.writer_pid(), Some(A), "the process whose map took the lease");
        hca.terminate(A, order);
        assert_eq!(hca.writer_pid(), Some(B), "{order:?}: the handle still writes, through B");
        let other = hca.open(C, SimAccess::ReadWrite);
        assert_eq!(map(&other, true, 0, 4), Err(Status::DEVICE_BUSY));
        unmap(&dup, bw).unwrap();
        assert_eq!(hca.writer_pid(), None);
        assert!(map(&other, true, 0, 4).is_ok());
    }
}

#[test]
fn query_reports_bars_lease_and_this_handles_mappings() {
    let hca = SimHca::new();
    let h = hca.open(A, SimAccess::ReadWrite);
    let other = hca.open(B, SimAccess::Read);
    map(&h, true, 0, 4).unwrap();
    map(&h, false, 0, 4).unwrap();
    map(&other, false, 0, 4).unwrap();
    let mut out = [0xEEu8; 32];
    assert_eq!(st(h.ioctl(FW_QUERY_CRSPACE, &[1, 2, 3], &mut out)), Ok(24), "longer buffers are fine");
    assert_eq!(&out[24..], &[0xEE; 8], "only the block is written");
    let q = QueryCrSpaceOut::from_bytes(&out).unwrap();
    assert_eq!(
        q,
        QueryCrSpaceOut {
            bar0_size: SIM_BAR0_SIZE,
            bar1_size: SIM_BAR1_SIZE,
            bar2_size: SIM_BAR2_SIZE,
            writer_pid: A,
            mapping_count: 2,
            reserved: 0
        }
    );
    assert_eq!(query(&other).mapping_count, 1);
    // A longer map output: exactly 8 bytes written.
    let mut big = [0xEEu8; 16];
    assert_eq!(st(other.ioctl(FW_MAP_CRSPACE_RO, &[map_in(0, 0, 4).as_slice(), &[9; 4]].concat(), &mut big)), Ok(8));
    assert_eq!(&big[8..], &[0xEE; 8]);
}

#[test]
fn query_remove_is_refused_while_mapped_or_open() {
    let hca = SimHca::new();
    let h = hca.open(A, SimAccess::Read);
    let va = map(&h, false, 0, 4).unwrap();
    assert_eq!(hca.query_remove().map_err(Status::from_raw), Err(Status::DEVICE_BUSY));
    assert_eq!(peek(va), 0, "a refused removal leaves the view working");
    unmap(&h, va).unwrap();
    assert_eq!(hca.query_remove().map_err(Status::from_raw), Err(Status::DEVICE_BUSY), "an open handle refuses too");
    assert!(map(&h, false, 0, 4).is_ok(), "the device still serves after a refused removal");
    h.close();
    assert_eq!(hca.query_remove(), Ok(()));
    assert_eq!(hca.pnp_state(), mlnx_hca::core::PnpState::Removed);
    let late = hca.open(B, SimAccess::Read);
    assert_eq!(st(late.ioctl(FW_QUERY_CRSPACE, &[], &mut [0; 24])), Err(Status::DELETE_PENDING));
}

#[test]
fn surprise_removal_revokes_everything() {
    let hca = SimHca::new();
    let a = hca.open(A, SimAccess::ReadWrite);
    let b = hca.open(B, SimAccess::Read);
    let dup = a.duplicate(C);
    let wa = map(&a, true, 0, 4).unwrap();
    map(&b, false, 0xF0014, 4).unwrap();
    map(&dup, false, 0, 4).unwrap();
    hca.surprise_remove();
    assert_idle(&hca);
    // (Not checked by touching the old VA: another test thread may have
    // mapped something new at that address by now.)
    // Old handles fail cleanly; unmapping a revoked VA too.
    for h in [&a, &b, &dup] {
        assert_eq!(st(h.ioctl(FW_QUERY_CRSPACE, &[], &mut [0; 24])), Err(Status::DELETE_PENDING));
    }
    assert_eq!(unmap(&a, wa), Err(Status::DELETE_PENDING));
    assert_eq!(map(&b, false, 0, 4), Err(Status::DELETE_PENDING));
    assert_eq!(b.read_dword_via_request(0xF0014).map_err(Status::from_raw), Err(Status::DELETE_PENDING));
    drop((a, b, dup));
    assert_eq!(hca.pnp_state(), mlnx_hca::core::PnpState::Removed, "REMOVE_DEVICE after the last close");
}

/// The I/O manager checks a code's access bits against the handle before the
/// driver sees the code, so on a read-only handle an unknown code that asks
/// for write access is `STATUS_ACCESS_DENIED`, while one that asks only for
/// read access reaches the driver and is `STATUS_INVALID_DEVICE_REQUEST`
/// (README, "Order of checks").
#[test]
fn on_a_read_only_handle_the_access_bits_of_an_unknown_code_answer_first() {
    let hca = SimHca::new();
    let ro = hca.open(A, SimAccess::Read);
    let unknown_write = ctl_code(FILE_DEVICE_INFINIBAND, 0x808, METHOD_BUFFERED, Access::READ.union(Access::WRITE));
    let unknown_read = ctl_code(FILE_DEVICE_INFINIBAND, 0x808, METHOD_BUFFERED, Access::READ);
    refused(&hca, &ro, unknown_write, &[0; 12], 8, Status::ACCESS_DENIED);
    refused(&hca, &ro, unknown_read, &[0; 12], 8, Status::INVALID_DEVICE_REQUEST);
    // A known code with other method bits is unknown as well.
    refused(&hca, &ro, FW_MAP_CRSPACE_RW | 3, &map_in(0, 0, 4), 8, Status::ACCESS_DENIED);
    refused(&hca, &ro, FW_MAP_CRSPACE_RO | 3, &map_in(0, 0, 4), 8, Status::INVALID_DEVICE_REQUEST);
}

/// "Longer buffers than a block are accepted; only the block is read or
/// written": an unmap whose input carries more than the VA.
#[test]
fn an_unmap_with_a_longer_input_reads_only_the_va() {
    let hca = SimHca::new();
    let h = hca.open(A, SimAccess::Read);
    let va = map(&h, false, 0, 4).unwrap();
    let mut input = UnmapCrSpaceIn { va }.to_bytes().to_vec();
    input.extend_from_slice(&[0xEE; 8]);
    let mut out = [0x5Au8; 8];
    assert_eq!(st(h.ioctl(FW_UNMAP_CRSPACE, &input, &mut out)), Ok(0), "nothing written");
    assert_eq!(out, [0x5A; 8], "the output buffer untouched");
    assert_eq!(query(&h).mapping_count, 0);
    assert_idle(&hca);
}

/// A window that straddles a page boundary maps every page it covers: the
/// dwords on both sides read what the device holds.
#[test]
fn a_window_across_a_page_boundary_maps_both_pages() {
    let hca = SimHca::new();
    hca.write_dword(0xFFC, 0x1111_1111);
    hca.write_dword(0x1000, 0x2222_2222);
    let h = hca.open(A, SimAccess::Read);
    let va = map(&h, false, 0xFFC, 8).unwrap();
    assert_eq!((peek(va), peek(va + 4)), (0x1111_1111, 0x2222_2222));
    unmap(&h, va).unwrap();
}

/// A duplicate shares its original's context: one quota and one lease. A
/// second handle of the same process is another context and meets the lease
/// like anyone else.
#[test]
fn a_duplicate_shares_its_originals_quota_and_lease() {
    let hca = SimHca::new();
    let h = hca.open(A, SimAccess::ReadWrite);
    let dup = h.duplicate(B);
    let views: Vec<u64> = (0..63).map(|i| map(&h, false, i * 4, 4).unwrap()).collect();
    let last = map(&dup, true, 0, 4).unwrap();
    assert_eq!(query(&dup).mapping_count, 64, "the duplicate sees the original's views");
    refused_quota(&hca, &h, 64);
    refused_quota(&hca, &dup, 64);
    assert_eq!(hca.writer_pid(), Some(B), "the lease names the process that mapped read-write");
    let other = hca.open(B, SimAccess::ReadWrite);
    assert_eq!(map(&other, true, 0, 4), Err(Status::DEVICE_BUSY), "another handle of B meets the lease");
    unmap(&dup, last).unwrap();
    assert_eq!(hca.writer_pid(), None);
    let own = map(&other, true, 0, 4).unwrap();
    assert_eq!(map(&dup, true, 0, 4), Err(Status::DEVICE_BUSY), "and now the duplicate meets it");
    unmap(&other, own).unwrap();
    for va in views {
        unmap(&h, va).unwrap();
    }
    assert_idle(&hca);
}

/// `QUERY_STOP` (a resource rebalance) is refused like a query-remove while
/// anything is mapped or open; a refused one leaves the device serving; an
/// agreed one stops and restarts it.
#[test]
fn query_stop_is_refused_while_mapped_or_open() {
    let hca = SimHca::new();
    hca.write_dword(0x40, 0xC0FF_EE00);
    let h = hca.open(A, SimAccess::Read);
    let va = map(&h, false, 0x40, 4).unwrap();
    assert_eq!(hca.query_stop().map_err(Status::from_raw), Err(Status::DEVICE_BUSY));
    assert_eq!(peek(va), 0xC0FF_EE00, "a refused stop leaves the view working");
    unmap(&h, va).unwrap();
    assert_eq!(hca.query_stop().map_err(Status::from_raw), Err(Status::DEVICE_BUSY), "an open handle refuses too");
    assert_eq!(hca.pnp_state(), mlnx_hca::core::PnpState::Started);
    h.close();
    assert_eq!(hca.query_stop(), Ok(()));
    assert_eq!(hca.pnp_state(), mlnx_hca::core::PnpState::Started, "stopped and started again");
    let h = hca.open(B, SimAccess::Read);
    let va = map(&h, false, 0x40, 4).unwrap();
    assert_eq!(peek(va), 0xC0FF_EE00, "the restarted device serves");
    unmap(&h, va).unwrap();
}

/// After the driver agreed to a query-remove, new opens are refused with
/// `STATUS_DELETE_PENDING` until the removal is cancelled.
#[test]
fn opens_are_refused_while_a_removal_is_pending_and_served_after_its_cancel() {
    let hca = SimHca::new();
    let vetoed = hca.query_remove_vetoed(|| {
        assert_eq!(hca.try_open(A, SimAccess::Read).err().map(Status::from_raw), Some(Status::DELETE_PENDING));
    });
    assert_eq!(vetoed, Ok(()));
    assert_eq!(hca.pnp_state(), mlnx_hca::core::PnpState::Started);
    let h = hca.open(A, SimAccess::Read);
    let va = map(&h, false, 0, 4).unwrap();
    let mut ran = false;
    let refused = hca.query_remove_vetoed(|| ran = true).map_err(Status::from_raw);
    assert_eq!((refused, ran), (Err(Status::DEVICE_BUSY), false), "refused while mapped");
    unmap(&h, va).unwrap();
}

/// The simulator's per-dword request (a test surface for the benchmarks, not
/// the contract) reads what a mapping would and refuses what a map would.
#[test]
fn the_per_dword_request_reads_the_device_and_refuses_what_a_map_would() {
    let hca = SimHca::new();
    let h = hca.open(A, SimAccess::Read);
    assert_eq!(h.read_dword_via_request(0xF0014), Ok(SIM_DEVICE_ID));
    for bad in [0xF0015, SIM_BAR0_SIZE, SIM_BAR0_SIZE - 2, u32::MAX - 3] {
        assert_eq!(h.read_dword_via_request(bad).map_err(Status::from_raw), Err(Status::INVALID_PARAMETER), "{bad:#x}");
    }
    assert_eq!(h.read_dword_via_request(SIM_BAR0_SIZE - 4), Ok(0), "the last dword");
}

#[test]
fn a_view_goes_only_into_the_process_that_asked() {
    let hca = SimHca::new();
    let h = hca.open(A, SimAccess::ReadWrite);
    let va = map(&h, true, 0x1000, 4).unwrap();
    for origin in [Origin::KernelMode, Origin::WorkerThread] {
        for (code, input) in [
            (FW_MAP_CRSPACE_RO, map_in(0, 0, 4).to_vec()),
            (FW_MAP_CRSPACE_RW, map_in(0, 0, 4).to_vec()),
            (FW_UNMAP_CRSPACE, UnmapCrSpaceIn { va }.to_bytes().to_vec()),
        ] {
            let mut out = [0xA5u8; 8];
            let answer = st(h.ioctl_from(origin, code, &input, &mut out));
            assert_eq!(answer, Err(Status::NOT_SUPPORTED), "{origin:?} code {code:#x}");
            assert_eq!(out, [0xA5; 8], "{origin:?}: the output is left as it was");
        }
        assert_eq!(
            (hca.live_views(), hca.views_of(SYSTEM_PID)),
            (1, 0),
            "{origin:?}: nothing mapped, nothing unmapped"
        );
        assert_eq!(hca.writer_pid(), Some(A));
        // Asking about the device is harmless from anywhere.
        let mut out = [0u8; 24];
        assert_eq!(st(h.ioctl_from(origin, FW_QUERY_CRSPACE, &[], &mut out)), Ok(24));
        assert_eq!(QueryCrSpaceOut::from_bytes(&out).unwrap().mapping_count, 1);
        // Before the buffer lengths, after the handle's access.
        let ro = hca.open(B, SimAccess::Read);
        assert_eq!(st(ro.ioctl_from(origin, FW_MAP_CRSPACE_RW, &[], &mut [])), Err(Status::ACCESS_DENIED));
        assert_eq!(st(ro.ioctl_from(origin, FW_MAP_CRSPACE_RO, &[], &mut [])), Err(Status::NOT_SUPPORTED));
    }
    unmap(&h, va).unwrap();
    assert_idle(&hca);
}

/// A 32-bit (WOW64) caller can only use addresses below 4 GiB. Windows puts
/// its views there; the driver still checks, and a view placed out of its
/// reach is given back: the map fails with the resources status and leaves
/// nothing (no view, no entry, no lease). The simulator's views are host
/// `mmap`s above 4 GiB, so every map of a 32-bit caller here takes that path.
#[test]
fn a_32bit_caller_never_gets_a_view_it_cannot_address() {
    let hca = SimHca::new();
    let h = hca.open(A, SimAccess::ReadWrite);
    let va = map(&h, false, 0xF0014, 4).unwrap();
    assert!(va >> 32 != 0, "the host maps above 4 GiB ({va:#x}), which this test relies on");
    for code in [FW_MAP_CRSPACE_RO, FW_MAP_CRSPACE_RW] {
        let mut out = [0xA5u8; 8];
        let answer = st(h.ioctl_from(Origin::Caller32, code, &map_in(0, 0x1000, 8), &mut out));
        assert_eq!(answer, Err(Status::INSUFFICIENT_RESOURCES), "code {code:#x}");
        assert_eq!(out, [0xA5; 8], "the output is left as it was");
        assert_eq!(hca.live_views(), 1, "the view it could not use was unmapped");
        assert_eq!(hca.writer_pid(), None, "and no lease was taken");
    }
    // Everything else works for it as for anyone.
    let mut out = [0u8; 24];
    assert_eq!(st(h.ioctl_from(Origin::Caller32, FW_QUERY_CRSPACE, &[], &mut out)), Ok(24));
    assert_eq!(QueryCrSpaceOut::from_bytes(&out).unwrap().mapping_count, 1);
    let bad = map_in(0, 0xF0016, 4);
    assert_eq!(
        st(h.ioctl_from(Origin::Caller32, FW_MAP_CRSPACE_RO, &bad, &mut [0u8; 8])),
        Err(Status::INVALID_PARAMETER)
    );
    let gone = UnmapCrSpaceIn { va: 0x1000 }.to_bytes();
    assert_eq!(st(h.ioctl_from(Origin::Caller32, FW_UNMAP_CRSPACE, &gone, &mut [])), Err(Status::INVALID_PARAMETER));
    unmap(&h, va).unwrap();
    assert_idle(&hca);
}

#[test]
fn the_system_stays_awake_exactly_while_the_lease_is_held() {
    let hca = SimHca::new();
    let h = hca.open(A, SimAccess::ReadWrite);
    assert!(!hca.keeps_system_awake());
    assert_eq!(st(hca.query_sleep().map(|()| 0)), Ok(0), "nobody writes: sleep is fine");
    let ro = map(&h, false, 0, 4).unwrap();
    assert!(!hca.keeps_system_awake(), "a reader does not keep the system awake");
    let rw = map(&h, true, 0, 4).unwrap();
    let rw2 = map(&h, true, 0x1000, 4).unwrap();
    assert!(hca.keeps_system_awake(), "a firmware write may be under way");
    assert_eq!(st(hca.query_sleep().map(|()| 0)), Err(Status::DEVICE_BUSY), "sleep is refused");
    unmap(&h, rw).unwrap();
    assert!(hca.keeps_system_awake(), "the lease holds while one RW view lives");
    unmap(&h, rw2).unwrap();
    assert!(!hca.keeps_system_awake(), "the lease ended");
    assert_eq!(st(hca.query_sleep().map(|()| 0)), Ok(0));
    unmap(&h, ro).unwrap();

    // However the lease ends, the system may sleep again.
    for order in ExitOrder::both(K) {
        let w = hca.open(B, SimAccess::ReadWrite);
        map(&w, true, 0, 4).unwrap();
        assert!(hca.keeps_system_awake());
        hca.terminate(B, order);
        assert!(!hca.keeps_system_awake(), "{order:?}: the writer's end released it");
        drop(w);
    }
    let w = hca.open(C, SimAccess::ReadWrite);
    map(&w, true, 0, 4).unwrap();
    w.close();
    assert!(!hca.keeps_system_awake(), "the writer's handle closed");
    let w = hca.open(C, SimAccess::ReadWrite);
    map(&w, true, 0, 4).unwrap();
    hca.surprise_remove();
    assert!(!hca.keeps_system_awake(), "the device is gone");
    assert_eq!(st(hca.query_sleep().map(|()| 0)), Ok(0));
}

#[test]
fn the_exit_filter_never_misses_an_owner() {
    for order in ExitOrder::both(K) {
        let hca = SimHca::new();
        let h = hca.open(A, SimAccess::ReadWrite);
        let dup = h.duplicate(B);
        assert!(!hca.may_own_views(A) && !hca.may_own_views(B));
        map(&h, true, 0, 4).unwrap();
        map(&dup, false, 0, 4).unwrap();
        assert!(hca.may_own_views(A) && hca.may_own_views(B), "{order:?}");
        hca.terminate(A, order);
        assert!(!hca.may_own_views(A), "{order:?}: A's views are gone");
        assert!(hca.may_own_views(B), "{order:?}: B's view lives");
        dup.close();
        assert!(!hca.may_own_views(B), "{order:?}");
        assert_idle(&hca);
    }
}
