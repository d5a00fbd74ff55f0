//! The contract for ConnectX-4 and later ("ConnectX-4 and later" in
//! CONTRACT.md), against the simulated ConnectX-4: block reads and writes of
//! the address spaces through the configuration-space gateway, the lease
//! without views, tool locks given back when a tool ends, and the gateway's
//! failures; and the other path refused on each model.

mod common;

use common::*;
use mlnx_hca::abi::*;
use mlnx_hca::sim::{ExitOrder, Origin, SimAccess, SimHandle, SimHca, SimModel, SIM4_DEVICE_ID, SIM_DEVICE_ID};
use mlnx_hca::Status;

const A: u32 = 1001;
const B: u32 = 2002;

fn cx4() -> SimHca {
    SimHca::with_model(SimModel::ConnectX4)
}

fn block(space: u32, offset: u32, count: u32) -> [u8; 12] {
    BlockIn { space, offset, count }.to_bytes()
}

/// `FW_READ_CRSPACE_BLOCK`: the values, or the status.
fn read(h: &SimHandle, space: u32, offset: u32, count: u32) -> Result<Vec<u32>, Status> {
    let mut out = vec![0xA5u8; 4 * count as usize];
    let n = st(h.ioctl(FW_READ_CRSPACE_BLOCK, &block(space, offset, count), &mut out))?;
    assert_eq!(n, 4 * count as usize, "a block read reports its dwords' bytes");
    Ok(out.chunks(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

fn write_in(space: u32, offset: u32, values: &[u32]) -> Vec<u8> {
    let mut input = block(space, offset, values.len() as u32).to_vec();
    input.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    input
}

/// `FW_WRITE_CRSPACE_BLOCK`.
fn write(h: &SimHandle, space: u32, offset: u32, values: &[u32]) -> Result<(), Status> {
    st(h.ioctl(FW_WRITE_CRSPACE_BLOCK, &write_in(space, offset, values), &mut [])).map(|n| assert_eq!(n, 0))
}

fn lease(h: &SimHandle, take: u32) -> Result<(), Status> {
    st(h.ioctl(FW_LEASE_CRSPACE, &take.to_le_bytes(), &mut [])).map(drop)
}

fn query_device(h: &SimHandle) -> QueryDeviceOut {
    let mut out = [0u8; 24];
    assert_eq!(st(h.ioctl(FW_QUERY_DEVICE, &[], &mut out)), Ok(24));
    QueryDeviceOut::from_bytes(&out).unwrap()
}

#[test]
fn the_device_query_names_each_model_and_its_path() {
    let hca = cx4();
    let q = query_device(&hca.open(A, SimAccess::Read));
    assert_eq!((q.pci_device_id, q.hw_id, q.path), (0x1013, SIM4_DEVICE_ID & 0xFFFF, PATH_GATEWAY));
    let want: u32 = space::ALL.iter().map(|s| 1 << s).sum();
    assert_eq!(q.spaces, want, "spaces 1, 2, 3, 6 and 0xA");
    assert_eq!((q.max_count, q.reserved), (MAX_BLOCK_DWORDS, 0));
    let cx3 = SimHca::new();
    let q = query_device(&cx3.open(A, SimAccess::Read));
    assert_eq!((q.pci_device_id, q.hw_id, q.path, q.spaces), (0x1003, SIM_DEVICE_ID & 0xFFFF, PATH_MAPPED, 0));
}

#[test]
fn cr_space_reads_and_writes_through_the_gateway() {
    let hca = cx4();
    let rw = hca.open(A, SimAccess::ReadWrite);
    assert_eq!(read(&rw, space::CR, 0xF0014, 1), Ok(vec![0x0000_0209]), "the hardware id");
    let values: Vec<u32> = (0..MAX_BLOCK_DWORDS).map(|i| 0x1000_0000 + i).collect();
    write(&rw, space::CR, 0x2000, &values).unwrap();
    assert_eq!(read(&rw, space::CR, 0x2000, MAX_BLOCK_DWORDS), Ok(values.clone()));
    assert_eq!(hca.read_space(space::CR, 0x2000 + 4 * 63), 0x1000_003F, "the device holds the value itself");
    // A read-only handle reads CR space and its non-destructive form.
    let ro = hca.open(B, SimAccess::Read);
    assert_eq!(read(&ro, space::ND_CR, 0x2004, 2), Ok(vec![0x1000_0001, 0x1000_0002]));
    assert!(!hca.gateway_semaphore_taken(), "every request gave the gateway back");
    assert_idle(&hca);
}

#[test]
fn each_path_refuses_the_others_requests() {
    let hca = cx4();
    let h = hca.open(A, SimAccess::ReadWrite);
    for code in [FW_MAP_CRSPACE_RO, FW_MAP_CRSPACE_RW] {
        assert_eq!(st(h.ioctl(code, &map_in(0, 0xF0014, 4), &mut [0u8; 8])), Err(Status::NOT_SUPPORTED), "{code:#x}");
    }
    let un = UnmapCrSpaceIn { va: 0x1000 }.to_bytes();
    assert_eq!(st(h.ioctl(FW_UNMAP_CRSPACE, &un, &mut [])), Err(Status::NOT_SUPPORTED));
    let cx3 = SimHca::new();
    let h3 = cx3.open(A, SimAccess::ReadWrite);
    assert_eq!(read(&h3, space::CR, 0xF0014, 1), Err(Status::NOT_SUPPORTED));
    assert_eq!(write(&h3, space::CR, 0, &[1]), Err(Status::NOT_SUPPORTED));
    // The lease and the device query work on both.
    assert_eq!(lease(&h3, 1), Ok(()));
    assert_eq!(cx3.writer_pid(), Some(A));
    assert_eq!(lease(&h3, 0), Ok(()));
    assert_eq!(cx3.writer_pid(), None);
}

#[test]
fn bad_blocks_get_their_status_and_change_nothing() {
    let hca = cx4();
    let rw = hca.open(A, SimAccess::ReadWrite);
    let ro = hca.open(B, SimAccess::Read);
    hca.write_space(space::CR, 0x100, 0x1111);
    let mut out = [0xA5u8; 8];
    // Buffer lengths, whatever the count.
    assert_eq!(st(rw.ioctl(FW_READ_CRSPACE_BLOCK, &block(2, 0x100, 2)[..11], &mut out)), Err(Status::BUFFER_TOO_SMALL));
    assert_eq!(st(rw.ioctl(FW_READ_CRSPACE_BLOCK, &block(2, 0x100, 3), &mut out)), Err(Status::BUFFER_TOO_SMALL));
    let short = write_in(2, 0x100, &[1, 2]);
    assert_eq!(st(rw.ioctl(FW_WRITE_CRSPACE_BLOCK, &short[..19], &mut [])), Err(Status::BUFFER_TOO_SMALL));
    assert_eq!(out, [0xA5; 8], "the output is left as it was");
    // Parameters.
    assert_eq!(read(&rw, space::CR, 0x100, 0), Err(Status::INVALID_PARAMETER), "count 0");
    assert_eq!(read(&rw, space::CR, 0x100, MAX_BLOCK_DWORDS + 1), Err(Status::INVALID_PARAMETER));
    assert_eq!(read(&rw, space::CR, 0x102, 1), Err(Status::INVALID_PARAMETER), "unaligned");
    assert_eq!(read(&rw, space::CR, 0x3FFF_FFFC, 2), Err(Status::INVALID_PARAMETER), "past the gateway's addresses");
    assert_eq!(read(&rw, 4, 0x100, 1), Err(Status::NOT_SUPPORTED), "a space the contract does not name");
    // Access: a read-only handle reads CR space only, and writes nothing.
    assert_eq!(read(&ro, space::SEMAPHORE, 0, 1), Err(Status::ACCESS_DENIED), "reading a semaphore takes it");
    assert_eq!(read(&ro, space::ICMD, 0, 1), Err(Status::ACCESS_DENIED));
    assert_eq!(st(ro.ioctl(FW_WRITE_CRSPACE_BLOCK, &write_in(2, 0x100, &[9]), &mut [])), Err(Status::ACCESS_DENIED));
    assert_eq!(st(ro.ioctl(FW_LEASE_CRSPACE, &1u32.to_le_bytes(), &mut [])), Err(Status::ACCESS_DENIED));
    assert_eq!(lease(&rw, 2), Err(Status::INVALID_PARAMETER), "take is 0 or 1");
    assert_eq!(hca.read_space(space::CR, 0x100), 0x1111, "nothing was written");
    assert_eq!(hca.writer_pid(), None);
    assert!(!hca.gateway_semaphore_taken());
}

#[test]
fn the_lease_without_views_one_writer_at_a_time() {
    let hca = cx4();
    let a = hca.open(A, SimAccess::ReadWrite);
    let b = hca.open(B, SimAccess::ReadWrite);
    assert_eq!(write(&b, space::CR, 0x10, &[1]), Ok(()), "a write needs the lease free, or its own");
    assert_eq!(hca.writer_pid(), None, "and does not keep it");
    assert_eq!(lease(&a, 1), Ok(()));
    assert_eq!(hca.writer_pid(), Some(A));
    assert!(hca.keeps_system_awake(), "a firmware write may be under way");
    assert_eq!(lease(&b, 1), Err(Status::DEVICE_BUSY));
    assert_eq!(write(&b, space::CR, 0x10, &[2]), Err(Status::DEVICE_BUSY));
    assert_eq!(hca.read_space(space::CR, 0x10), 1, "the busy write changed nothing");
    assert_eq!(read(&b, space::CR, 0x10, 1), Ok(vec![1]), "readers any time");
    assert_eq!(write(&a, space::CR, 0x10, &[3]), Ok(()));
    assert_eq!(lease(&b, 0), Ok(()), "giving back what one does not hold changes nothing");
    assert_eq!(hca.writer_pid(), Some(A));
    assert_eq!(lease(&a, 0), Ok(()));
    assert_eq!(hca.writer_pid(), None);
    assert!(!hca.keeps_system_awake());
    // The handle's cleanup gives a taken lease back, as it does a map's.
    assert_eq!(lease(&a, 1), Ok(()));
    assert!(hca.may_own_views(A), "the exit filter counts the taker");
    a.close();
    assert_eq!(hca.writer_pid(), None);
    assert!(!hca.may_own_views(A));
    assert_eq!(lease(&b, 1), Ok(()));
    assert!(hca.may_own_views(B));
    // And its process's end, through a duplicate that lives on elsewhere.
    let c = b.duplicate(A + 7);
    hca.terminate(B, ExitOrder::Exits);
    assert_eq!(hca.writer_pid(), None, "the lease never stays with an ended process");
    assert!(!hca.may_own_views(B));
    assert_eq!(lease(&c, 1), Ok(()));
    drop(c);
    assert_idle(&hca);
}

/// Two processes share a handle; the first took the lease, then the second
/// takes it through the shared handle: with no read-write view of the
/// first in the way, the second is named at once (found by the fuzzer: the
/// driver named it only at a later, unrelated event).
#[test]
fn a_second_taker_through_a_shared_handle_is_named_at_once() {
    let hca = cx4();
    let a = hca.open(A, SimAccess::ReadWrite);
    let b = a.duplicate(B);
    assert_eq!(lease(&a, 1), Ok(()));
    assert_eq!(hca.writer_pid(), Some(A));
    assert_eq!(lease(&b, 1), Ok(()));
    assert_eq!(hca.writer_pid(), Some(B), "the new taker");
    hca.terminate(B + 100, ExitOrder::Exits); // an unrelated process ends: nothing changes
    assert_eq!(hca.writer_pid(), Some(B));
    assert_eq!(lease(&b, 0), Ok(()));
    assert_eq!(hca.writer_pid(), None);
    drop(b);
    drop(a);
    assert_idle(&hca);
}

#[test]
fn giving_back_a_lease_that_read_write_views_hold_is_busy() {
    let hca = SimHca::new();
    let h = hca.open(A, SimAccess::ReadWrite);
    let va = map(&h, true, 0x1000, 4).unwrap();
    assert_eq!(lease(&h, 0), Err(Status::DEVICE_BUSY));
    assert_eq!(lease(&h, 1), Ok(()), "taking what it holds is fine");
    unmap(&h, va).unwrap();
    assert_eq!(hca.writer_pid(), Some(A), "taken: it outlives the views");
    assert_eq!(lease(&h, 0), Ok(()));
    assert_eq!(hca.writer_pid(), None);
    assert_idle(&hca);
}

/// A tool that takes a lock in the semaphore space (writes its id there)
/// and is killed: the driver writes 0 back, and the next tool gets the lock
/// at once.
#[test]
fn a_killed_tools_locks_are_given_back_and_the_next_tool_gets_them() {
    const ICMD_LOCK: u32 = 0x0;
    const FLASH_LOCK: u32 = 0x10;
    let hca = cx4();
    let tool = hca.open(A, SimAccess::ReadWrite);
    write(&tool, space::SEMAPHORE, ICMD_LOCK, &[A]).unwrap();
    write(&tool, space::SEMAPHORE, FLASH_LOCK, &[A]).unwrap();
    assert_eq!(hca.read_space(space::SEMAPHORE, ICMD_LOCK), A);
    assert!(hca.may_own_views(A), "the exit filter counts a lock holder");
    let other = hca.open(B, SimAccess::ReadWrite);
    write(&other, space::SEMAPHORE, ICMD_LOCK, &[B]).unwrap();
    assert_eq!(read(&other, space::SEMAPHORE, ICMD_LOCK, 1), Ok(vec![A]), "taken: the other tool's id does not stick");
    std::mem::forget(tool);
    hca.terminate(A, ExitOrder::Exits);
    assert_eq!(hca.read_space(space::SEMAPHORE, ICMD_LOCK), 0, "given back by the driver");
    assert_eq!(hca.read_space(space::SEMAPHORE, FLASH_LOCK), 0);
    write(&other, space::SEMAPHORE, ICMD_LOCK, &[B]).unwrap();
    assert_eq!(read(&other, space::SEMAPHORE, ICMD_LOCK, 1), Ok(vec![B]), "the next tool has it at once");
    // A lock the tool gave back itself is not its any more.
    write(&other, space::SEMAPHORE, ICMD_LOCK, &[0]).unwrap();
    hca.write_space(space::SEMAPHORE, ICMD_LOCK, 0x7777); // someone else's now
    other.close();
    assert_eq!(hca.read_space(space::SEMAPHORE, ICMD_LOCK), 0x7777, "only values the handle wrote are undone");
    assert_idle(&hca);
}

/// Two processes share one handle (a duplicate): the first takes a lock,
/// the second's write to the same place does not stick. When the first ends
/// while the handle lives on in the second, its lock goes back at once: the
/// second's write must not have made the driver forget it.
#[test]
fn a_lock_taken_through_a_shared_handle_goes_back_with_its_process() {
    for order in ExitOrder::both(B + 8) {
        let hca = cx4();
        let a = hca.open(A, SimAccess::ReadWrite);
        let b = a.duplicate(B);
        write(&a, space::SEMAPHORE, 0x30, &[A]).unwrap();
        write(&b, space::SEMAPHORE, 0x30, &[B]).unwrap();
        assert_eq!(hca.read_space(space::SEMAPHORE, 0x30), A, "{order:?}: taken, B's value did not stick");
        std::mem::forget(a);
        hca.terminate(A, order);
        assert_eq!(hca.read_space(space::SEMAPHORE, 0x30), 0, "{order:?}: A's lock went with A");
        write(&b, space::SEMAPHORE, 0x30, &[B]).unwrap();
        assert_eq!(read(&b, space::SEMAPHORE, 0x30, 1), Ok(vec![B]), "{order:?}: B takes it now");
        assert!(hca.may_own_views(B) && !hca.may_own_views(A));
        write(&b, space::SEMAPHORE, 0x30, &[0]).unwrap();
        assert!(!hca.may_own_views(B), "{order:?}: a freed lock is no longer counted");
        drop(b);
        assert_idle(&hca);
    }
}

/// Up to 256 tool locks per handle: past that a write is refused and writes
/// nothing, but a handle at the limit can still give a lock back (and write
/// again a value it holds).
#[test]
fn tool_locks_stop_at_256_per_handle_and_a_full_handle_can_still_let_go() {
    let hca = cx4();
    let tool = hca.open(A, SimAccess::ReadWrite);
    for block in 0..4u32 {
        let values: Vec<u32> = (0..64).map(|i| 0x100 + block * 64 + i).collect();
        write(&tool, space::SEMAPHORE, block * 0x100, &values).unwrap();
    }
    assert_eq!(write(&tool, space::SEMAPHORE, 0x400, &[A]), Err(Status::INSUFFICIENT_RESOURCES));
    assert_eq!(hca.read_space(space::SEMAPHORE, 0x400), 0, "nothing written");
    let burner = hca.open(B, SimAccess::ReadWrite);
    assert_eq!(lease(&burner, 1), Ok(()));
    assert_eq!(write(&tool, space::SEMAPHORE, 0x400, &[A]), Err(Status::INSUFFICIENT_RESOURCES), "the quota first");
    assert_eq!(write(&tool, space::SEMAPHORE, 0, &[0]), Err(Status::DEVICE_BUSY), "then the lease");
    assert_eq!(lease(&burner, 0), Ok(()));
    drop(burner);
    assert_eq!(write(&tool, space::SEMAPHORE, 0, &[0x100]), Ok(()), "a value it holds adds nothing");
    assert_eq!(write(&tool, space::SEMAPHORE, 0, &[0]), Ok(()), "a full handle gives a lock back");
    assert_eq!(hca.read_space(space::SEMAPHORE, 0), 0);
    assert_eq!(write(&tool, space::SEMAPHORE, 0x400, &[A]), Ok(()), "and has room for one more");
    assert_eq!(write(&tool, space::SEMAPHORE, 0x404, &[A]), Err(Status::INSUFFICIENT_RESOURCES));
    tool.close();
    for offset in (0..=0x404).step_by(4) {
        assert_eq!(hca.read_space(space::SEMAPHORE, offset), 0, "{offset:#x} given back at cleanup");
    }
    assert!(!hca.may_own_views(A));
    assert_idle(&hca);
}

/// A lock given back, through whichever handle, is nobody's record any
/// more: a tool that takes its lock through one handle and gives it back
/// through another, and a tool that takes the same lock with the same value
/// after it, do not lose the lock when the first handle closes.
#[test]
fn a_lock_given_back_elsewhere_is_not_given_back_again_at_cleanup() {
    let hca = cx4();
    let h1 = hca.open(A, SimAccess::ReadWrite);
    let h2 = hca.open(A, SimAccess::ReadWrite);
    write(&h1, space::SEMAPHORE, 0x50, &[A]).unwrap();
    write(&h2, space::SEMAPHORE, 0x50, &[0]).unwrap();
    write(&h2, space::SEMAPHORE, 0x50, &[A]).unwrap(); // taken again, through h2
    h1.close();
    assert_eq!(hca.read_space(space::SEMAPHORE, 0x50), A, "still held through h2");
    // Another process clears it and takes it with the same (fixed) value.
    let other = hca.open(B, SimAccess::ReadWrite);
    write(&other, space::SEMAPHORE, 0x50, &[0]).unwrap();
    assert!(!hca.may_own_views(A), "A holds no lock now");
    write(&other, space::SEMAPHORE, 0x50, &[A]).unwrap();
    h2.close();
    assert_eq!(hca.read_space(space::SEMAPHORE, 0x50), A, "B's lock now, though its value is A's");
    other.close();
    assert_eq!(hca.read_space(space::SEMAPHORE, 0x50), 0, "and given back with B's handle");
    assert_idle(&hca);
}

/// A gateway that fails while locks are given back costs one wait, not one
/// per lock: the driver stops at the first failure (the locks left are lost
/// either way), so a wedged device does not hold up a cleanup, or every
/// process's exit, for minutes.
#[test]
fn a_gateway_failing_while_locks_go_back_is_tried_once_not_once_per_lock() {
    for exit in [false, true] {
        let hca = cx4();
        let tool = hca.open(A, SimAccess::ReadWrite);
        write(&tool, space::SEMAPHORE, 0, &[A; 8]).unwrap();
        hca.set_gateway_faults(false, true);
        let before = hca.gateway_tickets();
        if exit {
            std::mem::forget(tool);
            hca.terminate(A, ExitOrder::Exits);
        } else {
            tool.close();
        }
        assert_eq!(hca.gateway_tickets() - before, 1, "exit {exit}: one try");
        assert!(!hca.gateway_semaphore_taken(), "exit {exit}: the semaphore given back");
        assert!(!hca.may_own_views(A), "exit {exit}: no record left");
        hca.set_gateway_faults(false, false);
        assert_eq!(hca.read_space(space::SEMAPHORE, 0), A, "exit {exit}: lost with the failure");
        assert_idle(&hca);
    }
}

#[test]
fn a_lock_changed_since_is_left_alone_at_cleanup() {
    let hca = cx4();
    let tool = hca.open(A, SimAccess::ReadWrite);
    write(&tool, space::SEMAPHORE, 0x20, &[A]).unwrap();
    // The firmware (or a reset) freed it and another holder took it.
    hca.write_space(space::SEMAPHORE, 0x20, 0x4242);
    tool.close();
    assert_eq!(hca.read_space(space::SEMAPHORE, 0x20), 0x4242);
    assert!(!hca.may_own_views(A));
}

#[test]
fn a_semaphore_that_stays_taken_times_out_and_writes_nothing() {
    let hca = cx4();
    let h = hca.open(A, SimAccess::ReadWrite);
    hca.set_gateway_faults(true, false);
    assert_eq!(write(&h, space::CR, 0x40, &[5]), Err(Status::IO_TIMEOUT));
    assert_eq!(read(&h, space::CR, 0x40, 1), Err(Status::IO_TIMEOUT));
    hca.set_gateway_faults(false, false);
    assert_eq!(hca.read_space(space::CR, 0x40), 0);
    assert_eq!(read(&h, space::CR, 0xF0014, 1), Ok(vec![SIM4_DEVICE_ID]), "and works once it is free");
}

#[test]
fn a_flag_that_never_moves_is_a_device_error_and_frees_the_gateway() {
    let hca = cx4();
    let h = hca.open(A, SimAccess::ReadWrite);
    hca.set_gateway_faults(false, true);
    assert_eq!(read(&h, space::CR, 0xF0014, 1), Err(Status::IO_DEVICE_ERROR));
    assert!(!hca.gateway_semaphore_taken(), "the semaphore was given back");
    hca.set_gateway_faults(false, false);
    assert_eq!(read(&h, space::CR, 0xF0014, 1), Ok(vec![SIM4_DEVICE_ID]));
}

#[test]
fn requests_from_another_context_work_and_removal_ends_them() {
    let hca = cx4();
    let h = hca.open(A, SimAccess::ReadWrite);
    let mut out = [0u8; 4];
    // A block request maps nothing: it may come from anywhere.
    assert_eq!(st(h.ioctl_from(Origin::WorkerThread, FW_READ_CRSPACE_BLOCK, &block(2, 0xF0014, 1), &mut out)), Ok(4));
    hca.surprise_remove();
    assert_eq!(read(&h, space::CR, 0xF0014, 1), Err(Status::DELETE_PENDING));
    assert_eq!(lease(&h, 1), Err(Status::DELETE_PENDING));
}

/// Three tools in threads, each writing and reading back its own region of
/// CR space in blocks, while the firmware agent takes the gateway at random:
/// every value read back is the one written. The tools go on until the agent
/// has held the gateway 20 times while they ran (and at least 40 rounds),
/// so the race is certain, not a matter of the machine's scheduling.
#[test]
fn tools_and_the_firmware_agent_share_the_gateway() {
    let hca = cx4();
    let agent = hca.start_firmware_agent(0x5EED);
    let before = agent.held();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    std::thread::scope(|s| {
        for t in 0..3u32 {
            let (hca, agent) = (&hca, &agent);
            s.spawn(move || {
                let h = hca.open(A + t, SimAccess::ReadWrite);
                let base = 0x1_0000 * (t + 1);
                let mut round = 0u32;
                while round < 40 || agent.held() < before + 20 {
                    assert!(std::time::Instant::now() < deadline, "the firmware agent never got the gateway");
                    round += 1;
                    let values: Vec<u32> = (0..16).map(|i| (t << 24) | (round << 8) | i).collect();
                    loop {
                        match write(&h, space::CR, base, &values) {
                            Ok(()) => break,
                            // Another tool's write holds the lease for its request.
                            Err(Status::DEVICE_BUSY) => std::thread::yield_now(),
                            Err(e) => panic!("tool {t}: {e:?}"),
                        }
                    }
                    assert_eq!(read(&h, space::CR, base, 16), Ok(values), "tool {t} round {round}");
                }
            });
        }
    });
    let held = agent.stop();
    assert!(held >= before + 20, "the firmware agent held the gateway {held} times");
    assert!(!hca.gateway_semaphore_taken());
}
