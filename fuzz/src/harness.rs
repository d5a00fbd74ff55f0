//! Drives the simulated HCA with a sequence of [`Op`]s, a tool's and the
//! system's, and checks it against the [reference model](crate::reference)
//! after every step. Any divergence, a Verifier panic (leak, double unmap,
//! unmap in the wrong process) or a view left after the last close is a
//! panic: the fuzz target's crash, the property test's failure.
//!
//! Checked at every request: the status; the output buffer untouched on
//! failure and exactly the block written on success; a map's VA is the
//! offset's own, in user space, new, and reads (and for `RW` writes) the
//! device. Checked after every step: live views, writable views, contexts,
//! open handles, PnP state and the lease holder; with `deep`, also each live
//! handle's `mapping_count` and each process's views.

use crate::reference::{Access, Expect, Model, Pid, MAP_RO, MAP_RW, PAGE, QUERY, UNMAP};
use mlnx_hca::core::{Config, PnpState};
pub use mlnx_hca::sim::Origin;
use mlnx_hca::sim::{ExitOrder, Faults, SimAccess, SimHandle, SimHca};
use mlnx_hca::Status;
use std::collections::HashSet;

/// The processes the sequences use (never 0: that is the system's, and a
/// `writer_pid` of 0 means "nobody").
pub const PIDS: [Pid; 4] = [101, 102, 103, 104];

/// What fills an output buffer before a request, to see what it writes.
const SENTINEL: u8 = 0xA5;

/// Highest user-mode address on x64 Windows, and well above any host `mmap`.
const USER_LIMIT: u64 = 0x0000_7FFF_FFFF_FFFF;

/// One step of a tool or of the system.
#[derive(Clone, Debug)]
pub enum Op {
    /// `CreateFile` from a process.
    Open {
        /// The process.
        pid: Pid,
        /// What it was granted.
        access: Access,
    },
    /// `DeviceIoControl` on a handle made earlier.
    Ioctl {
        /// Which handle: an index into every handle made so far, wrapping.
        handle: usize,
        /// Where the request reaches the driver from.
        origin: Origin,
        /// The 32-bit code, real or not.
        code: Code,
        /// The input buffer.
        input: Input,
        /// Length of the output buffer.
        out_len: usize,
    },
    /// `DuplicateHandle` into a process.
    Duplicate {
        /// Which handle (wrapping index).
        handle: usize,
        /// The target process.
        pid: Pid,
    },
    /// `CloseHandle`.
    Close {
        /// Which handle (wrapping index).
        handle: usize,
    },
    /// The process ends: it exits (`killer` None: notification first), or
    /// process `killer` kills it (its handles close first, in the killer).
    Terminate {
        /// The process.
        pid: Pid,
        /// Who kills it, if it does not exit by itself.
        killer: Option<Pid>,
    },
    /// The PnP manager asks to remove the device.
    QueryRemove,
    /// The HCA is gone.
    SurpriseRemove,
    /// Arms one injected fault (counts restart from here).
    Fault(Fault),
}

/// An I/O control code, shown by its name when it is one of the contract's
/// (shrunk sequences read better).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Code(pub u32);

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            MAP_RO => f.write_str("FW_MAP_CRSPACE_RO"),
            MAP_RW => f.write_str("FW_MAP_CRSPACE_RW"),
            UNMAP => f.write_str("FW_UNMAP_CRSPACE"),
            QUERY => f.write_str("FW_QUERY_CRSPACE"),
            other => write!(f, "{other:#010x}"),
        }
    }
}

/// An input buffer, possibly built from what earlier maps returned.
#[derive(Clone, Debug)]
pub enum Input {
    /// These bytes.
    Bytes(Vec<u8>),
    /// A map block, cut or padded to `len` bytes.
    Map {
        /// `bar_num`.
        bar: u32,
        /// `offset`.
        offset: u32,
        /// `size`.
        size: u32,
        /// Bytes of input actually passed.
        len: usize,
    },
    /// An unmap block naming the `pick`th live view this handle's process
    /// mapped through it (wrapping; the first VA ever returned if it has none).
    Own {
        /// Which of its views.
        pick: usize,
    },
    /// An unmap block naming an earlier VA (any map's, live or not, this
    /// handle's or another's: a wrapping index into all of them) moved by
    /// `delta`, cut or padded to `len` bytes.
    Va {
        /// Which VA.
        pick: usize,
        /// Added to it (wrapping).
        delta: i64,
        /// Bytes of input actually passed.
        len: usize,
    },
}

/// An injected fault: the Nth call of a kind fails.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// The platform's map.
    Map(u64),
    /// The attach to another process for an unmap.
    Attach(u64),
    /// A pool allocation of the driver.
    Alloc(u64),
}

/// What a sequence made the driver answer: `("ioctl", status)`,
/// `("open", status)`, `("query_remove", status)`.
pub type Seen = HashSet<(&'static str, Status)>;

/// The simulated HCA, the model and the handles of one sequence. Dropped
/// while a check panics, it leaks its handles rather than close them: a
/// second panic from the Verifier would abort the property test's shrinking.
pub struct Harness {
    hca: SimHca,
    model: Model,
    /// Index = the model's handle index; `None` once the sequence closed it.
    handles: Vec<Option<SimHandle>>,
    /// Every VA a map returned, live or not.
    vas: Vec<u64>,
    deep: bool,
    seen: Seen,
}

fn sim_access(access: Access) -> SimAccess {
    match access {
        Access::Read => SimAccess::Read,
        Access::ReadWrite => SimAccess::ReadWrite,
    }
}

fn fit(mut bytes: Vec<u8>, len: usize) -> Vec<u8> {
    bytes.resize(len, 0x5A);
    bytes
}

/// Reads the device's value of a dword of a live view (CR space is
/// big-endian).
fn peek(va: u64) -> u32 {
    // SAFETY: only called on the VA a map just returned for a live view of
    // at least 4 bytes; the model checked it is dword aligned.
    u32::from_be(unsafe { std::ptr::read_volatile(va as usize as *const u32) })
}

/// Writes the device's value `value` through a live read-write view.
fn poke(va: u64, value: u32) {
    // SAFETY: as `peek`, and the view was mapped read-write.
    unsafe { std::ptr::write_volatile(va as usize as *mut u32, value.to_be()) }
}

impl Harness {
    /// A started simulated HCA with these quotas. `deep` adds a query on
    /// every live handle after each step.
    pub fn new(per_handle: u32, per_device: u32, deep: bool) -> Harness {
        let hca = SimHca::with_config(Config { per_handle_quota: per_handle, per_device_quota: per_device });
        Harness {
            hca,
            model: Model::new(per_handle, per_device),
            handles: Vec::new(),
            vas: Vec::new(),
            deep,
            seen: Seen::new(),
        }
    }

    /// Runs one step and checks the device against the model.
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Open { pid, access } => self.open(*pid, *access),
            Op::Ioctl { handle, origin, code, input, out_len } => self.ioctl(*handle, *origin, code.0, input, *out_len),
            Op::Duplicate { handle, pid } => {
                if let Some(h) = self.pick(*handle) {
                    let dup = self.handles[h].as_ref().map(|sim| sim.duplicate(*pid));
                    self.model.duplicate(h, *pid);
                    self.handles.push(dup);
                }
            }
            Op::Close { handle } => {
                if let Some(h) = self.pick(*handle) {
                    if let Some(sim) = self.handles[h].take() {
                        sim.close();
                    }
                    self.model.close(h);
                }
            }
            Op::Terminate { pid, killer } => {
                let order = killer.map_or(ExitOrder::Exits, ExitOrder::KilledBy);
                self.hca.terminate(*pid, order);
                self.model.terminate(*pid);
            }
            Op::QueryRemove => {
                let actual = self.hca.query_remove().map_or_else(Status::from_raw, |()| Status::SUCCESS);
                let want = self.model.query_remove();
                assert_eq!(actual, want, "query-remove");
                self.seen.insert(("query_remove", actual));
            }
            Op::SurpriseRemove => {
                self.hca.surprise_remove();
                self.model.surprise_remove();
            }
            Op::Fault(fault) => self.hca.inject_faults(match *fault {
                Fault::Map(n) => Faults { fail_map_at: Some(n), ..Faults::default() },
                Fault::Attach(n) => Faults { fail_attach_at: Some(n), ..Faults::default() },
                Fault::Alloc(n) => Faults { fail_alloc_at: Some(n), ..Faults::default() },
            }),
        }
        self.check(op);
    }

    /// A handle made earlier: its model index, if any was made and the
    /// sequence has not closed it itself.
    fn pick(&self, handle: usize) -> Option<usize> {
        if self.handles.is_empty() {
            return None;
        }
        let h = handle % self.handles.len();
        self.handles[h].is_some().then_some(h)
    }

    fn open(&mut self, pid: Pid, access: Access) {
        let (before, fired) = (self.hca.contexts(), self.hca.faults_fired());
        let sim = self.hca.open(pid, sim_access(access));
        let mut status = self.model.open_status();
        if self.hca.contexts() == before && status == Status::SUCCESS {
            assert!(self.hca.faults_fired() > fired, "CreateFile failed with no fault injected");
            status = Status::INSUFFICIENT_RESOURCES;
        }
        if status != Status::SUCCESS {
            // A refused create: every request on the handle answers its status.
            let answer = sim.ioctl(QUERY, &[], &mut [0; 24]).map_err(Status::from_raw);
            assert_eq!(answer, Err(status), "the refused create's status");
        }
        self.seen.insert(("open", status));
        self.model.opened(pid, access, status);
        self.handles.push(Some(sim));
    }

    fn input_bytes(&self, h: usize, input: &Input) -> Vec<u8> {
        match input {
            Input::Own { pick } => {
                let own = self.model.own_views(h);
                let va = match own.len() {
                    0 => self.vas.first().copied().unwrap_or(0),
                    n => own[pick % n],
                };
                va.to_le_bytes().to_vec()
            }
            Input::Bytes(b) => b.clone(),
            Input::Map { bar, offset, size, len } => {
                fit([bar.to_le_bytes(), offset.to_le_bytes(), size.to_le_bytes()].concat(), *len)
            }
            Input::Va { pick, delta, len } => {
                let base = if self.vas.is_empty() { 0 } else { self.vas[pick % self.vas.len()] };
                // CAST: a signed move of a VA, wrapping like pointer arithmetic.
                fit(base.wrapping_add(*delta as u64).to_le_bytes().to_vec(), *len)
            }
        }
    }

    fn ioctl(&mut self, handle: usize, origin: Origin, code: u32, input: &Input, out_len: usize) {
        let Some(h) = self.pick(handle) else { return };
        let input = self.input_bytes(h, input);
        let expect = self.model.predict_as(h, origin, code, &input, out_len);
        let mut out = vec![SENTINEL; out_len];
        let fired = self.hca.faults_fired();
        let sim = self.handles[h].as_ref().expect("picked handles are kept");
        let result = sim.ioctl_from(origin, code, &input, &mut out).map_err(Status::from_raw);
        let fault = self.hca.faults_fired() > fired;
        let ctx =
            || format!("handle {h} (pid {}) code {code:#010x} input {input:02x?} out {out_len}", self.model.pid_of(h));
        let status = result.err().unwrap_or(Status::SUCCESS);
        self.seen.insert(("ioctl", status));
        if fault {
            assert!(expect.can_meet_a_fault(), "a fault fired in a request predicted {expect:?}: {}", ctx());
            assert_eq!(result, Err(Status::INSUFFICIENT_RESOURCES), "an injected fault's status: {}", ctx());
        } else {
            assert_eq!(status, expect.status(), "status: {}", ctx());
        }
        let written = result.unwrap_or_default();
        assert!(out[written..].iter().all(|&b| b == SENTINEL), "bytes written past the {written} reported: {}", ctx());
        let Ok(n) = result else { return };
        let mut va = 0;
        match &expect {
            Expect::Map { writable, offset, .. } => {
                assert_eq!(n, 8, "a map reports its 8 bytes: {}", ctx());
                let mut b = [0u8; 8];
                b.copy_from_slice(&out[..8]);
                va = u64::from_le_bytes(b);
                self.check_view(va, *offset, *writable);
                self.vas.push(va);
            }
            Expect::Unmap { .. } | Expect::Lease { .. } => assert_eq!(n, 0, "reports no bytes: {}", ctx()),
            Expect::Query(want) => {
                assert_eq!(n, 24, "a query reports its 24 bytes: {}", ctx());
                assert_eq!(&out[..24], want, "the query block: {}", ctx());
            }
            Expect::Fail(_) | Expect::OutOfReach => unreachable!("checked above"),
        }
        self.model.succeeded(&expect, va);
    }

    /// A new view: the offset's own VA, a user address, not another live
    /// view's, and it reaches the device.
    fn check_view(&self, va: u64, offset: u32, writable: bool) {
        assert_eq!(va % PAGE, u64::from(offset) % PAGE, "the VA of the offset itself");
        assert!(va != 0 && va <= USER_LIMIT, "{va:#x} is no user address");
        assert!(self.model.views().iter().all(|v| v.va != va), "{va:#x} is already a live view");
        assert_eq!(peek(va), self.hca.read_dword(offset), "the view at {va:#x} reads BAR 0 at {offset:#x}");
        if writable {
            let value = 0x5EED_0000 ^ offset;
            poke(va, value);
            assert_eq!(self.hca.read_dword(offset), value, "a write through {va:#x} reaches BAR 0 at {offset:#x}");
        }
    }

    /// The device against the model, after a step.
    fn check(&mut self, op: &Op) {
        let hca = &self.hca;
        assert_eq!(hca.live_views(), self.model.views().len(), "live views after {op:?}");
        assert_eq!(hca.writable_views(), self.model.writable_views(), "writable views after {op:?}");
        assert_eq!(hca.contexts(), self.model.contexts(), "contexts after {op:?}");
        assert_eq!(hca.open_handles(), self.model.contexts(), "open handles after {op:?}");
        assert_eq!(hca.pnp_state() == PnpState::Started, !self.model.is_gone(), "PnP state after {op:?}");
        if let Err(e) = self.model.writer_pid(hca.writer_pid()) {
            panic!("lease after {op:?}: {e}");
        }
        assert_eq!(hca.keeps_system_awake(), hca.writer_pid().is_some(), "awake exactly while leased, after {op:?}");
        if !self.deep {
            return;
        }
        for pid in PIDS {
            assert_eq!(hca.views_of(pid), self.model.views_of(pid), "views of {pid} after {op:?}");
            if self.model.views_of(pid) > 0 {
                assert!(hca.may_own_views(pid), "the exit filter misses {pid} after {op:?}");
            }
        }
        for (h, sim) in self.handles.iter().enumerate() {
            let Some(sim) = sim.as_ref().filter(|_| self.model.is_live(h) && !self.model.is_gone()) else { continue };
            let mut out = [0u8; 24];
            assert_eq!(sim.ioctl(QUERY, &[], &mut out), Ok(24));
            let count = u32::from_le_bytes([out[16], out[17], out[18], out[19]]);
            assert_eq!(count as usize, self.model.mapping_count(h), "mapping_count of handle {h} after {op:?}");
        }
    }

    /// Closes every handle left, as the processes end, and checks that
    /// nothing is left: no view, no lease, no context. Returns what the
    /// driver answered along the way.
    pub fn finish(mut self) -> Seen {
        for h in 0..self.handles.len() {
            if let Some(sim) = self.handles[h].take() {
                drop(sim);
                self.model.close(h);
            }
        }
        self.check(&Op::Close { handle: usize::MAX });
        let hca = &self.hca;
        assert_eq!(
            (hca.live_views(), hca.writer_pid(), hca.contexts(), hca.open_handles()),
            (0, None, 0, 0),
            "everything closed: no view, no lease, no context"
        );
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for sim in self.handles.drain(..).flatten() {
                std::mem::forget(sim);
            }
        }
    }
}
