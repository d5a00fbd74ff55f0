//! Many threads against one simulated HCA at once: requests (map RO/RW,
//! unmap, query) on handles that other threads duplicate, close (also while
//! requests are in flight on them) and whose processes other threads end,
//! with a surprise removal landing in the middle of it all at the end. Every
//! answer must be one the contract allows for a race; at every pause (all
//! threads stopped at a barrier) the books must balance (the views of every
//! open handle add up to the device's, the lease is held exactly while a
//! read-write view lives, every open context has a handle); at the end
//! nothing is left. The simulator's Verifier (no view unmapped after its
//! process ended, none left behind when its process ends or the last handle
//! closes) holds throughout.
//!
//! The core is one `&mut` state machine behind the device lock, so safe Rust
//! already rules out data races in it; what can go wrong is the order of
//! events around that lock (a cleanup between a request's handle lookup and
//! its turn at the lock, a process ending with requests in flight), which
//! this test provokes. Seeds: `MLNX_HCA_STRESS_SEED`; length:
//! `MLNX_HCA_STRESS_ROUNDS` (default 2,000 rounds of 4 threads x 24 steps).

mod common;

use common::*;
use mlnx_hca::abi::*;
use mlnx_hca::core::{Config, PnpState};
use mlnx_hca::sim::{ExitOrder, SimAccess, SimHandle, SimHca, SIM_BAR0_SIZE, SIM_BAR1_SIZE, SIM_BAR2_SIZE};
use mlnx_hca::Status;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const THREADS: usize = 4;
const STEPS: usize = 24;
const PIDS: [u32; 6] = [11, 12, 13, 14, 15, 16];
const PER_HANDLE: u32 = 6;
const PER_DEVICE: u32 = 40;

/// One handle in the shared pool. `family`: the `CreateFile` it comes from
/// (duplicates share their original's file object).
#[derive(Clone)]
struct Slot {
    handle: Arc<SimHandle>,
    family: u64,
    pid: u32,
    /// Opened for write.
    writable: bool,
}

/// A VA a map returned, and through which handle family and process.
#[derive(Clone, Copy)]
struct Mapped {
    family: u64,
    pid: u32,
    va: u64,
}

struct Shared {
    hca: SimHca,
    pool: Mutex<Vec<Slot>>,
    mapped: Mutex<Vec<Mapped>>,
    families: AtomicU64,
    /// Answers seen, by status, over the whole run.
    seen: Mutex<Vec<Status>>,
}

/// With no round finished for this long the run is stuck (a deadlock): fail
/// with the seed rather than hang. A round takes well under a second, even
/// under ThreadSanitizer; this is a hang detector, not a speed target.
const STUCK_AFTER: Duration = Duration::from_secs(120);

/// xorshift64*: a reproducible interleaving of choices per thread and seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        // CAST: n is small, the remainder fits.
        (self.next() % n as u64) as usize
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Shared {
    fn pick(&self, rng: &mut Rng) -> Option<Slot> {
        let pool = self.pool.lock().unwrap();
        (!pool.is_empty()).then(|| pool[rng.below(pool.len())].clone())
    }

    fn saw(&self, status: Status) {
        let mut seen = self.seen.lock().unwrap();
        if !seen.contains(&status) {
            seen.push(status);
        }
    }

    /// A request whose answer must be one of `allowed` (or a success); a
    /// failure writes nothing to the output buffer.
    fn request(&self, slot: &Slot, code: u32, input: &[u8], out: &mut [u8], allowed: &[Status]) -> Option<usize> {
        out.fill(0xA5);
        let result = st(slot.handle.ioctl(code, input, out));
        self.saw(result.err().unwrap_or(Status::SUCCESS));
        match result {
            Ok(n) => Some(n),
            Err(status) => {
                assert!(allowed.contains(&status), "code {code:#x} from pid {} answered {status:?}", slot.pid);
                assert!(out.iter().all(|&b| b == 0xA5), "a failed request wrote its output");
                None
            }
        }
    }

    /// One random step of one thread.
    fn step(&self, rng: &mut Rng, removing: bool) {
        // Races with closes, process ends and removal: always allowed.
        let raced = [Status::INVALID_HANDLE, Status::FILE_CLOSED, Status::DELETE_PENDING];
        match rng.below(20) {
            0..=2 => {
                let pid = PIDS[rng.below(PIDS.len())];
                let access = if rng.below(2) == 0 { SimAccess::Read } else { SimAccess::ReadWrite };
                match self.hca.try_open(pid, access) {
                    Ok(handle) => {
                        let family = self.families.fetch_add(1, Ordering::Relaxed);
                        let writable = access == SimAccess::ReadWrite;
                        self.pool.lock().unwrap().push(Slot { handle: Arc::new(handle), family, pid, writable });
                    }
                    // A process being ended refuses new handles; a removed device too.
                    Err(status) => {
                        let status = Status::from_raw(status);
                        self.saw(status);
                        assert!(
                            status == Status::INVALID_HANDLE || (removing && status == Status::DELETE_PENDING),
                            "CreateFile answered {status:?}"
                        );
                    }
                }
            }
            3..=8 => {
                let Some(slot) = self.pick(rng) else { return };
                let writable = rng.below(3) == 0;
                let code = if writable { FW_MAP_CRSPACE_RW } else { FW_MAP_CRSPACE_RO };
                // CAST: page and dword counts far below u32::MAX.
                let offset = (rng.below(256) * 4096 + rng.below(1024) * 4) as u32;
                let size = (4 * (1 + rng.below(16))) as u32;
                let size = size.min(SIM_BAR0_SIZE - offset);
                let mut out = [0u8; 8];
                let mut allowed = vec![Status::INSUFFICIENT_RESOURCES, Status::DEVICE_BUSY];
                allowed.extend(raced);
                if !writable || slot.writable {
                    if let Some(n) = self.request(&slot, code, &map_in(0, offset, size), &mut out, &allowed) {
                        assert_eq!(n, 8);
                        let va = MapCrSpaceOut::from_bytes(&out).unwrap().va;
                        assert_eq!(va % 4096, u64::from(offset % 4096), "the VA of the offset itself");
                        let mut mapped = self.mapped.lock().unwrap();
                        mapped.retain(|m| m.va != va);
                        mapped.push(Mapped { family: slot.family, pid: slot.pid, va });
                    }
                } else {
                    allowed.push(Status::ACCESS_DENIED);
                    self.request(&slot, code, &map_in(0, offset, size), &mut out, &allowed);
                }
            }
            9..=12 => {
                // Unmap a VA through a handle of its family and process when
                // one is in the pool (it may be gone already), else anywhere.
                let Some(m) = ({
                    let mapped = self.mapped.lock().unwrap();
                    (!mapped.is_empty()).then(|| mapped[rng.below(mapped.len())])
                }) else {
                    return;
                };
                let slot = {
                    let pool = self.pool.lock().unwrap();
                    pool.iter().find(|s| s.family == m.family && s.pid == m.pid).cloned()
                };
                let Some(slot) = slot.or_else(|| self.pick(rng)) else { return };
                let mut allowed = vec![Status::INVALID_PARAMETER];
                allowed.extend(raced);
                // Whose view a VA is cannot be told here (a VA is reused once
                // unmapped, maybe by another thread's map before this one
                // recorded its own); tests/model.rs checks that a foreign VA
                // is refused.
                if let Some(n) =
                    self.request(&slot, FW_UNMAP_CRSPACE, &UnmapCrSpaceIn { va: m.va }.to_bytes(), &mut [], &allowed)
                {
                    assert_eq!(n, 0);
                }
            }
            13..=14 => {
                let Some(slot) = self.pick(rng) else { return };
                let mut out = [0u8; 24];
                if let Some(n) = self.request(&slot, FW_QUERY_CRSPACE, &[], &mut out, &raced) {
                    assert_eq!(n, 24);
                    let q = QueryCrSpaceOut::from_bytes(&out).unwrap();
                    assert_eq!(
                        (q.bar0_size, q.bar1_size, q.bar2_size, q.reserved),
                        (SIM_BAR0_SIZE, SIM_BAR1_SIZE, SIM_BAR2_SIZE, 0)
                    );
                    assert!(q.mapping_count <= PER_HANDLE, "mapping_count {} over the quota", q.mapping_count);
                    assert!(q.writer_pid == 0 || PIDS.contains(&q.writer_pid), "writer_pid {}", q.writer_pid);
                }
            }
            15..=16 => {
                let Some(slot) = self.pick(rng) else { return };
                let pid = PIDS[rng.below(PIDS.len())];
                let dup = Slot { handle: Arc::new(slot.handle.duplicate(pid)), pid, ..slot };
                self.pool.lock().unwrap().push(dup);
            }
            17..=18 => {
                // Close a handle: drop it (the close happens when the last
                // thread using it lets go), or close it under the feet of the
                // threads still using it.
                let slot = {
                    let mut pool = self.pool.lock().unwrap();
                    if pool.is_empty() {
                        return;
                    }
                    let i = rng.below(pool.len());
                    pool.swap_remove(i)
                };
                if rng.below(2) == 0 {
                    slot.handle.close_shared();
                }
            }
            _ => {
                let pid = PIDS[rng.below(PIDS.len())];
                let order = match rng.below(2) {
                    0 => ExitOrder::Exits,
                    _ => ExitOrder::KilledBy(PIDS[rng.below(PIDS.len())]),
                };
                self.hca.terminate(pid, order);
                // Its handles answer INVALID_HANDLE now; let some go.
                if rng.below(2) == 0 {
                    self.pool.lock().unwrap().retain(|s| s.pid != pid);
                }
            }
        }
    }

    /// All threads stopped: the books balance.
    fn check_books(&self) {
        let hca = &self.hca;
        let pool = self.pool.lock().unwrap();
        let mut counted: Vec<u64> = Vec::new();
        let mut views = 0;
        for slot in pool.iter() {
            let mut out = [0u8; 24];
            if st(slot.handle.ioctl(FW_QUERY_CRSPACE, &[], &mut out)).is_err() || counted.contains(&slot.family) {
                continue;
            }
            counted.push(slot.family);
            views += QueryCrSpaceOut::from_bytes(&out).unwrap().mapping_count as usize;
        }
        if hca.pnp_state() == PnpState::Started {
            assert_eq!(views, hca.live_views(), "the open handles' mapping counts add up to the device's views");
            assert_eq!(counted.len(), hca.contexts(), "every context has an open handle");
        } else {
            assert_eq!(hca.live_views(), 0, "nothing mapped after surprise removal");
        }
        assert_eq!(hca.open_handles(), hca.contexts(), "no context outlives its cleanup");
        assert!(hca.live_views() <= PER_DEVICE as usize, "the device quota holds");
        match hca.writer_pid() {
            None => assert_eq!(hca.writable_views(), 0, "read-write views without a lease"),
            Some(pid) => {
                assert!(hca.writable_views() > 0, "a lease without a read-write view");
                assert!(hca.views_of(pid) > 0, "the lease names {pid}, which has no view");
            }
        }
    }
}

fn stress(seed: u64, rounds: u64, progress: Arc<AtomicU64>) -> Vec<Status> {
    let shared = Arc::new(Shared {
        hca: SimHca::with_config(Config { per_handle_quota: PER_HANDLE, per_device_quota: PER_DEVICE }),
        pool: Mutex::new(Vec::new()),
        mapped: Mutex::new(Vec::new()),
        families: AtomicU64::new(0),
        seen: Mutex::new(Vec::new()),
    });
    let barrier = Arc::new(Barrier::new(THREADS));
    // A failed check stops every thread's steps (not the barriers, so that
    // no thread waits forever) and is re-raised after the join.
    let failure: Arc<Mutex<Option<Box<dyn std::any::Any + Send>>>> = Arc::new(Mutex::new(None));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (shared, barrier, failure, progress) =
                (shared.clone(), barrier.clone(), failure.clone(), progress.clone());
            thread::spawn(move || {
                let mut rng = Rng(seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(t as u64 + 1)) | 1);
                let guarded = |work: &mut dyn FnMut()| {
                    if failure.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                        return;
                    }
                    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
                        failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(panic);
                    }
                };
                for round in 0..rounds {
                    let last = round + 1 == rounds;
                    barrier.wait();
                    guarded(&mut || {
                        // The last round runs twice as long, so that requests
                        // meet the removal and each other after it.
                        for step in 0..if last { 2 * STEPS } else { STEPS } {
                            // The last round: thread 0 pulls the device out midway.
                            if last && t == 0 && step == STEPS / 2 {
                                shared.hca.surprise_remove();
                            }
                            shared.step(&mut rng, last);
                        }
                    });
                    if barrier.wait().is_leader() {
                        guarded(&mut || {
                            shared.check_books();
                            // Keep the VA list short: drop the oldest.
                            let mut mapped = shared.mapped.lock().unwrap();
                            let excess = mapped.len().saturating_sub(64);
                            mapped.drain(..excess);
                        });
                        progress.fetch_add(1, Ordering::Relaxed);
                    }
                    barrier.wait();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("workers catch their panics");
    }
    if let Some(panic) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
        std::panic::resume_unwind(panic);
    }
    let seen = shared.seen.lock().unwrap().clone();
    let hca = shared.hca.clone();
    drop(shared); // every handle closes
    assert_idle(&hca);
    assert_eq!((hca.contexts(), hca.open_handles()), (0, 0), "no context left");
    assert_eq!(hca.pnp_state(), PnpState::Removed, "REMOVE_DEVICE followed the last close");
    seen
}

#[test]
fn threads_racing_requests_closes_ends_and_removal_leave_nothing() {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let seed = env("MLNX_HCA_STRESS_SEED", 0x5EED_2026) + RUN.fetch_add(1, Ordering::Relaxed);
    let rounds = env("MLNX_HCA_STRESS_ROUNDS", 2000);
    let progress = Arc::new(AtomicU64::new(0));
    let (done, result) = mpsc::channel();
    {
        let progress = progress.clone();
        thread::spawn(move || {
            let _ = done.send(std::panic::catch_unwind(|| stress(seed, rounds, progress)));
        });
    }
    // Wait for the run; fail if it stops making progress.
    let (mut last, mut since) = (0, Instant::now());
    let result = loop {
        match result.recv_timeout(Duration::from_secs(1)) {
            Ok(result) => break result,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => unreachable!("the run sends its result"),
        }
        let now = progress.load(Ordering::Relaxed);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > STUCK_AFTER {
            panic!(
                "stuck after {now} of {rounds} rounds (a deadlock?): \
                 MLNX_HCA_STRESS_SEED={seed} MLNX_HCA_STRESS_ROUNDS={rounds}"
            );
        }
    };
    match result {
        Ok(seen) => {
            eprintln!("answers seen: {seen:?}");
            for want in [Status::SUCCESS, Status::INVALID_HANDLE, Status::INVALID_PARAMETER, Status::DELETE_PENDING] {
                assert!(seen.contains(&want), "the run never saw {want:?}: {seen:?}");
            }
        }
        Err(panic) => {
            eprintln!("stress failed with MLNX_HCA_STRESS_SEED={seed} MLNX_HCA_STRESS_ROUNDS={rounds}");
            std::panic::resume_unwind(panic);
        }
    }
}

/// Requests in flight while another thread of their process closes the
/// handle: each either reached the driver first (and the cleanup then
/// unmapped what it mapped) or met the cleanup already done and answers
/// `STATUS_FILE_CLOSED`, or came after the close (`STATUS_INVALID_HANDLE`);
/// never a view or a lease left behind.
#[test]
fn a_close_racing_requests_leaves_nothing() {
    let hca = SimHca::new();
    let mut rng = Rng(env("MLNX_HCA_STRESS_SEED", 0x5EED_2026) | 1);
    let mut file_closed = 0;
    for i in 0..1000 {
        let handle = Arc::new(hca.open(21, SimAccess::ReadWrite));
        let mapper = {
            let handle = handle.clone();
            thread::spawn(move || {
                let mut file_closed = 0;
                for _ in 0..100_000 {
                    let answer = match map(&handle, i % 2 == 0, 0, 4) {
                        Ok(va) => unmap(&handle, va).err(),
                        Err(status) => Some(status),
                    };
                    match answer {
                        None => {}
                        Some(Status::INVALID_HANDLE) => return file_closed,
                        Some(Status::FILE_CLOSED) => file_closed += 1,
                        Some(other) => panic!("a request racing a close answered {other:?}"),
                    }
                }
                panic!("the close never landed");
            })
        };
        for _ in 0..rng.below(20_000) {
            std::hint::spin_loop();
        }
        handle.close_shared();
        file_closed += mapper.join().unwrap();
        assert_idle(&hca);
        assert_eq!(hca.contexts(), 0);
    }
    eprintln!("{file_closed} requests met a cleanup that had already run (STATUS_FILE_CLOSED)");
}
