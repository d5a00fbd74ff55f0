//! The reference model: the contract (`CONTRACT.md`) as plain data,
//! written from the contract's text and not from the core. It predicts the
//! status and the bytes of every request, which views live, each handle's
//! mapping count, the contexts and the lease holder; [`crate::harness`]
//! compares the simulated HCA against it after every step.
//!
//! It reads request bytes itself (little-endian fields at fixed offsets) and
//! knows the codes as the contract's table writes them, so a decoder bug in
//! the driver cannot hide behind the same decoder in the oracle.
//!
//! Where the contract leaves a choice (which of several processes still
//! writing through one handle inherits `writer_pid`), the model accepts any
//! process the contract allows and then follows the driver's pick.

use mlnx_hca::sim::Origin;
use mlnx_hca::Status;

/// A process id.
pub type Pid = u32;

/// The contract's codes, from its table.
pub const MAP_RO: u32 = 0x003B_6000;
/// `FW_MAP_CRSPACE_RW`.
pub const MAP_RW: u32 = 0x003B_E004;
/// `FW_UNMAP_CRSPACE`.
pub const UNMAP: u32 = 0x003B_6008;
/// `FW_QUERY_CRSPACE`.
pub const QUERY: u32 = 0x003B_600C;
/// `FW_READ_CRSPACE_BLOCK`.
pub const READ_BLOCK: u32 = 0x003B_6010;
/// `FW_WRITE_CRSPACE_BLOCK`.
pub const WRITE_BLOCK: u32 = 0x003B_E014;
/// `FW_LEASE_CRSPACE`.
pub const LEASE: u32 = 0x003B_E018;
/// `FW_QUERY_DEVICE`.
pub const QUERY_DEVICE: u32 = 0x003B_601C;
/// The simulated HCA's identity: PCI 15B3:1003, hardware id 0x1F5; mapped
/// (path 1), no gateway spaces, 64 dwords per block request.
const DEVICE_QUERY: [u32; 6] = [0x1003, 0x1F5, 1, 0, 64, 0];
/// The pid a system worker thread's request runs as.
const SYSTEM_PID: Pid = mlnx_hca::sim::SYSTEM_PID;

/// The simulated HCA's BARs (contract, "The simulated HCA").
pub const BAR0: u32 = 1 << 20;
/// BAR 1 (UAR).
pub const BAR1: u32 = 8 << 20;
/// BAR 2 (DDR).
pub const BAR2: u32 = 256 << 20;
/// Page size of the mappings.
pub const PAGE: u64 = 4096;

/// What a handle was opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `GENERIC_READ`.
    Read,
    /// `GENERIC_READ | GENERIC_WRITE`.
    ReadWrite,
}

impl Access {
    /// The `FILE_*_ACCESS` bits the handle was granted.
    fn bits(self) -> u32 {
        match self {
            Access::Read => 1,
            Access::ReadWrite => 3,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HandleState {
    Live,
    /// Closed, or its process ended.
    Dead,
    /// `CreateFile` failed (or a duplicate of a dead handle): every request answers this.
    Failed(Status),
}

#[derive(Clone, Copy, Debug)]
struct Handle {
    pid: Pid,
    file: usize,
    access: Access,
    state: HandleState,
}

#[derive(Clone, Debug)]
struct File {
    handles: usize,
}

/// A live view as the model knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    /// Index of the file object (the context) it belongs to.
    pub file: usize,
    /// The process that mapped it.
    pub pid: Pid,
    /// The VA the map returned.
    pub va: u64,
    /// Read-write?
    pub writable: bool,
    /// Window offset in BAR 0.
    pub offset: u32,
}

/// The lease: which file object holds it, and which process is named.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Lease {
    holder: usize,
    /// The process named by `writer_pid`; after it lost its last `RW` view,
    /// any of these may be named (the contract allows each).
    writer: Writer,
    /// `FW_LEASE_CRSPACE {1}` took it, from this process: it stays, views
    /// or not, until given back, the holder's cleanup or this process's end.
    taken_by: Option<Pid>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Writer {
    Known(Pid),
    AnyOf(Vec<Pid>),
}

/// What a request must do, before it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Fails with this status and changes nothing.
    Fail(Status),
    /// A map succeeds: 8 bytes, a VA of this window.
    Map {
        /// The handle's file object.
        file: usize,
        /// The caller.
        pid: Pid,
        /// Read-write?
        writable: bool,
        /// Offset asked for.
        offset: u32,
    },
    /// An unmap of this live view succeeds: 0 bytes.
    Unmap {
        /// Index in [`Model::views`].
        view: usize,
    },
    /// A query (either one) succeeds with exactly these 24 bytes.
    Query([u8; 24]),
    /// `FW_LEASE_CRSPACE` succeeds (0 bytes): `take` by `pid` for `file`, or
    /// give back.
    Lease {
        /// The handle's file object.
        file: usize,
        /// The requester (a system worker thread's is the system process).
        pid: Pid,
        /// Take (or give back).
        take: bool,
    },
    /// A map of a 32-bit caller that would have succeeded: its view lands
    /// above 4 GiB (the simulator's do), out of the caller's reach, so it is
    /// given back: `STATUS_INSUFFICIENT_RESOURCES`, nothing changes.
    OutOfReach,
}

impl Expect {
    /// The status the caller must see.
    pub fn status(&self) -> Status {
        match self {
            Expect::Fail(status) => *status,
            Expect::OutOfReach => Status::INSUFFICIENT_RESOURCES,
            _ => Status::SUCCESS,
        }
    }

    /// Whether a request succeeding this way could meet an injected fault
    /// (a failed map or pool allocation) instead.
    pub fn can_meet_a_fault(&self) -> bool {
        matches!(self, Expect::Map { .. } | Expect::OutOfReach)
    }
}

/// The device and everything open on it.
#[derive(Clone, Debug)]
pub struct Model {
    per_handle: usize,
    per_device: usize,
    /// Started, or gone (query-removed or surprise-removed; the same to a tool).
    gone: bool,
    handles: Vec<Handle>,
    files: Vec<File>,
    views: Vec<View>,
    lease: Option<Lease>,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Model {
    /// A started device with these quotas.
    pub fn new(per_handle: u32, per_device: u32) -> Model {
        Model {
            per_handle: per_handle as usize,
            per_device: per_device as usize,
            gone: false,
            handles: Vec::new(),
            files: Vec::new(),
            views: Vec::new(),
            lease: None,
        }
    }

    /// The process of handle `h`.
    pub fn pid_of(&self, h: usize) -> Pid {
        self.handles[h].pid
    }

    /// Whether handle `h` is open (neither closed, failed, nor of an ended process).
    pub fn is_live(&self, h: usize) -> bool {
        self.handles[h].state == HandleState::Live
    }

    /// The live views.
    pub fn views(&self) -> &[View] {
        &self.views
    }

    /// VAs of the live views handle `h`'s process mapped through its file object.
    pub fn own_views(&self, h: usize) -> Vec<u64> {
        let Handle { file, pid, .. } = self.handles[h];
        self.views.iter().filter(|v| v.file == file && v.pid == pid).map(|v| v.va).collect()
    }

    /// Live views of handle `h`'s file object (`mapping_count` of a query).
    pub fn mapping_count(&self, h: usize) -> usize {
        let file = self.handles[h].file;
        self.views.iter().filter(|v| v.file == file).count()
    }

    /// Views owned by `pid`.
    pub fn views_of(&self, pid: Pid) -> usize {
        self.views.iter().filter(|v| v.pid == pid).count()
    }

    /// Read-write views, all handles.
    pub fn writable_views(&self) -> usize {
        self.views.iter().filter(|v| v.writable).count()
    }

    /// Contexts the driver holds: file objects with a handle left.
    pub fn contexts(&self) -> usize {
        self.files.iter().filter(|f| f.handles > 0).count()
    }

    /// Whether the device was removed (either way).
    pub fn is_gone(&self) -> bool {
        self.gone
    }

    /// The status `CreateFile` gets now.
    pub fn open_status(&self) -> Status {
        if self.gone {
            Status::DELETE_PENDING
        } else {
            Status::SUCCESS
        }
    }

    /// `CreateFile` from `pid` answered `status` (the prediction, or an
    /// injected allocation failure); records the handle either way.
    pub fn opened(&mut self, pid: Pid, access: Access, status: Status) {
        let state = if status == Status::SUCCESS { HandleState::Live } else { HandleState::Failed(status) };
        let file = self.files.len();
        self.files.push(File { handles: usize::from(state == HandleState::Live) });
        self.handles.push(Handle { pid, file, access, state });
    }

    /// `DuplicateHandle(h)` into `pid`.
    pub fn duplicate(&mut self, h: usize, pid: Pid) {
        let from = self.handles[h];
        if from.state == HandleState::Live {
            self.files[from.file].handles += 1;
            self.handles.push(Handle { pid, ..from });
        } else {
            self.handles.push(Handle { pid, state: HandleState::Failed(Status::INVALID_HANDLE), ..from });
        }
    }

    /// Predicts `DeviceIoControl(h, code, input, out_len)` sent from
    /// `origin`, in the contract's order of checks. A request that reaches
    /// the driver from another context (a driver passed it on from a worker
    /// thread, or a kernel-mode caller) has its maps and unmaps refused once
    /// the code and the handle's access are checked; a 32-bit caller's map
    /// that would succeed is [`Expect::OutOfReach`].
    pub fn predict_as(&self, h: usize, origin: Origin, code: u32, input: &[u8], out_len: usize) -> Expect {
        let forwarded = matches!(origin, Origin::KernelMode | Origin::WorkerThread);
        let requester = if origin == Origin::WorkerThread { SYSTEM_PID } else { self.handles[h].pid };
        let handle = self.handles[h];
        match handle.state {
            HandleState::Failed(status) => return Expect::Fail(status),
            HandleState::Dead => return Expect::Fail(Status::INVALID_HANDLE),
            HandleState::Live => {}
        }
        // The I/O manager: the code's access bits against the handle's.
        if (code >> 14) & 3 & !handle.access.bits() != 0 {
            return Expect::Fail(Status::ACCESS_DENIED);
        }
        if self.gone {
            return Expect::Fail(Status::DELETE_PENDING);
        }
        let (in_len, block_out) = match code {
            MAP_RO | MAP_RW => (12, 8),
            UNMAP => (8, 0),
            QUERY | QUERY_DEVICE => (0, 24),
            READ_BLOCK | WRITE_BLOCK => (12, 0),
            LEASE => (4, 0),
            _ => return Expect::Fail(Status::INVALID_DEVICE_REQUEST),
        };
        if forwarded && matches!(code, MAP_RO | MAP_RW | UNMAP) {
            return Expect::Fail(Status::NOT_SUPPORTED);
        }
        if input.len() < in_len || out_len < block_out {
            return Expect::Fail(Status::BUFFER_TOO_SMALL);
        }
        // A block request's dwords: in the output (read) or the input (write).
        let count =
            if in_len == 12 && matches!(code, READ_BLOCK | WRITE_BLOCK) { u64::from(le_u32(input, 8)) } else { 0 };
        if (code == READ_BLOCK && (out_len as u64) < 4 * count)
            || (code == WRITE_BLOCK && (input.len() as u64) < 12 + 4 * count)
        {
            return Expect::Fail(Status::BUFFER_TOO_SMALL);
        }
        match code {
            // The simulated HCA maps BAR 0: the gateway's requests are the other path.
            READ_BLOCK | WRITE_BLOCK => return Expect::Fail(Status::NOT_SUPPORTED),
            QUERY_DEVICE => {
                let mut out = [0u8; 24];
                for (i, field) in DEVICE_QUERY.into_iter().enumerate() {
                    out[i * 4..i * 4 + 4].copy_from_slice(&field.to_le_bytes());
                }
                return Expect::Query(out);
            }
            LEASE => return self.predict_lease(&handle, requester, le_u32(input, 0)),
            _ => {}
        }
        match code {
            MAP_RO | MAP_RW => match self.predict_map(&handle, code == MAP_RW, input) {
                Expect::Map { .. } if origin == Origin::Caller32 => Expect::OutOfReach,
                expect => expect,
            },
            UNMAP => {
                let va = u64::from(le_u32(input, 0)) | (u64::from(le_u32(input, 4)) << 32);
                match self.views.iter().position(|v| v.file == handle.file && v.pid == handle.pid && v.va == va) {
                    Some(view) => Expect::Unmap { view },
                    None => Expect::Fail(Status::INVALID_PARAMETER),
                }
            }
            _ => {
                let mut out = [0u8; 24];
                let writer = match &self.lease {
                    Some(Lease { writer: Writer::Known(pid), .. }) => *pid,
                    Some(Lease { writer: Writer::AnyOf(_), .. }) => unreachable!("settled after every step"),
                    None => 0,
                };
                // CAST: bounded by the quota.
                let count = self.views.iter().filter(|v| v.file == handle.file).count() as u32;
                for (i, field) in [BAR0, BAR1, BAR2, writer, count, 0].into_iter().enumerate() {
                    out[i * 4..i * 4 + 4].copy_from_slice(&field.to_le_bytes());
                }
                Expect::Query(out)
            }
        }
    }

    /// `FW_LEASE_CRSPACE`: take (1) unless another file object holds the
    /// lease; give back (0) unless this one's `RW` views hold it (nothing to
    /// do if it does not hold it); anything else is a bad parameter.
    fn predict_lease(&self, handle: &Handle, pid: Pid, take: u32) -> Expect {
        let mine = self.lease.as_ref().map(|l| l.holder == handle.file);
        match (take, mine) {
            (1, Some(false)) => Expect::Fail(Status::DEVICE_BUSY),
            (1, _) => Expect::Lease { file: handle.file, pid, take: true },
            (0, Some(true)) if self.views.iter().any(|v| v.file == handle.file && v.writable) => {
                Expect::Fail(Status::DEVICE_BUSY)
            }
            (0, _) => Expect::Lease { file: handle.file, pid, take: false },
            _ => Expect::Fail(Status::INVALID_PARAMETER),
        }
    }

    fn predict_map(&self, handle: &Handle, writable: bool, input: &[u8]) -> Expect {
        let (bar, offset, size) = (le_u32(input, 0), le_u32(input, 4), le_u32(input, 8));
        match bar {
            0 => {}
            1 | 2 => return Expect::Fail(Status::NOT_IMPLEMENTED),
            _ => return Expect::Fail(Status::INVALID_PARAMETER),
        }
        if offset % 4 != 0 || size % 4 != 0 || size == 0 || u64::from(offset) + u64::from(size) > u64::from(BAR0) {
            return Expect::Fail(Status::INVALID_PARAMETER);
        }
        let mine = self.views.iter().filter(|v| v.file == handle.file).count();
        if mine >= self.per_handle || self.views.len() >= self.per_device {
            return Expect::Fail(Status::INSUFFICIENT_RESOURCES);
        }
        if writable && self.lease.as_ref().is_some_and(|l| l.holder != handle.file) {
            return Expect::Fail(Status::DEVICE_BUSY);
        }
        Expect::Map { file: handle.file, pid: handle.pid, writable, offset }
    }

    /// The request predicted as `expect` succeeded (`va`: what a map returned).
    pub fn succeeded(&mut self, expect: &Expect, va: u64) {
        match *expect {
            Expect::Map { file, pid, writable, offset } => {
                self.views.push(View { file, pid, va, writable, offset });
                if writable && self.lease.is_none() {
                    self.lease = Some(Lease { holder: file, writer: Writer::Known(pid), taken_by: None });
                }
            }
            Expect::Lease { file, pid, take: true } => match &mut self.lease {
                Some(lease) => {
                    lease.taken_by = Some(pid);
                    // A named writer without a read-write view: the taker is named.
                    self.settle(file);
                }
                None => self.lease = Some(Lease { holder: file, writer: Writer::Known(pid), taken_by: Some(pid) }),
            },
            Expect::Lease { file, take: false, .. } => {
                if self.lease.as_ref().is_some_and(|l| l.holder == file) {
                    self.lease = None;
                }
            }
            Expect::Unmap { view } => {
                let gone = self.views.remove(view);
                self.settle(gone.file);
            }
            Expect::Query(_) | Expect::Fail(_) | Expect::OutOfReach => {}
        }
    }

    /// `CloseHandle(h)`: the file object's last handle sends the cleanup.
    pub fn close(&mut self, h: usize) {
        if self.handles[h].state != HandleState::Live {
            return;
        }
        self.handles[h].state = HandleState::Dead;
        let file = self.handles[h].file;
        self.files[file].handles -= 1;
        if self.files[file].handles == 0 {
            self.views.retain(|v| v.file != file);
            if let Some(lease) = self.lease.as_mut().filter(|l| l.holder == file) {
                lease.taken_by = None;
            }
            self.settle(file);
        }
    }

    /// Process `pid` ends: its handles close, then every view it owns goes.
    pub fn terminate(&mut self, pid: Pid) {
        for h in 0..self.handles.len() {
            if self.handles[h].pid == pid {
                self.close(h);
            }
        }
        let mut files: Vec<usize> = self.views.iter().filter(|v| v.pid == pid).map(|v| v.file).collect();
        self.views.retain(|v| v.pid != pid);
        if let Some(lease) = self.lease.as_mut().filter(|l| l.taken_by == Some(pid)) {
            lease.taken_by = None;
            files.push(lease.holder);
        }
        for file in files {
            self.settle(file);
        }
    }

    /// The PnP manager's query-remove: refused while a view lives or a handle is open.
    pub fn query_remove(&mut self) -> Status {
        if !self.views.is_empty() || self.contexts() > 0 {
            return Status::DEVICE_BUSY;
        }
        self.gone = true;
        Status::SUCCESS
    }

    /// Surprise removal: every view and the lease are revoked.
    pub fn surprise_remove(&mut self) {
        self.views.clear();
        self.lease = None;
        self.gone = true;
    }

    /// After `RW` views of `file` went: the lease ends with its holder's last
    /// `RW` view; if the named process lost its last one, another process
    /// still writing through the same handle is named.
    fn settle(&mut self, file: usize) {
        let Some(lease) = &mut self.lease else { return };
        if lease.holder != file {
            return;
        }
        let mut writers: Vec<Pid> = self.views.iter().filter(|v| v.file == file && v.writable).map(|v| v.pid).collect();
        writers.sort_unstable();
        writers.dedup();
        if let Some(taker) = lease.taken_by {
            // Taken: it stays; the taker is named once the named writer has
            // no RW view left.
            if let Writer::Known(pid) = lease.writer {
                if !writers.contains(&pid) {
                    lease.writer = Writer::Known(taker);
                }
            }
            return;
        }
        if writers.is_empty() {
            self.lease = None;
        } else if let Writer::Known(pid) = lease.writer {
            if !writers.contains(&pid) {
                lease.writer = if writers.len() == 1 { Writer::Known(writers[0]) } else { Writer::AnyOf(writers) };
            }
        }
    }

    /// The lease holder's process, after a step: checks the device named one
    /// the contract allows, and follows its pick.
    pub fn writer_pid(&mut self, actual: Option<Pid>) -> Result<(), String> {
        let want = match &self.lease {
            None => None,
            Some(Lease { writer: Writer::Known(pid), .. }) => Some(*pid),
            Some(Lease { writer: Writer::AnyOf(allowed), holder, taken_by }) => match actual {
                Some(pid) if allowed.contains(&pid) => {
                    self.lease = Some(Lease { holder: *holder, writer: Writer::Known(pid), taken_by: *taken_by });
                    Some(pid)
                }
                _ => return Err(format!("writer_pid {actual:?}, the contract allows one of {allowed:?}")),
            },
        };
        if want == actual {
            Ok(())
        } else {
            Err(format!("writer_pid {actual:?}, the model says {want:?}"))
        }
    }
}
