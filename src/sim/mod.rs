//! The simulated HCA: the real core on a host platform whose BAR 0 is shared
//! memory and whose user views are real `mmap` views with real page
//! protections.
//!
//! [`SimHca`] also plays the parts of Windows around the driver: the I/O
//! manager (handles, file objects, access checks on codes, METHOD_BUFFERED
//! system buffers, `IRP_MJ_CLEANUP` when a file object's last handle closes
//! and `IRP_MJ_CLOSE` when its last reference goes), the process manager
//! (process-exit notification) and the PnP manager (query-remove, surprise
//! removal). "Processes" are pids within this one host process: a returned
//! `va` is a real address here.

mod gateway;
mod platform;
mod slab;

pub use gateway::FirmwareAgent;
pub use platform::{DriverPool, Faults};

use crate::abi::{code_access, Access};
use crate::core::{CaId, Config, Device, Identity, Pid, PnpState, Requester};
use crate::status::Status;
use platform::{Bar, IdHash, SimPlatform};
use slab::{Key, Slab};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

pub use crate::core::simulated::{
    cr_dword_bytes, cr_dword_value, SIM4_BARS, SIM4_DEVICE_ID, SIM4_PCI_DEVICE_ID, SIM_BAR0_SIZE, SIM_BAR1_SIZE,
    SIM_BAR2_SIZE, SIM_BARS, SIM_DEVICE_ID, SIM_DEVICE_ID_OFFSET, SIM_PCI_DEVICE_ID, SIM_PCI_VENDOR_ID,
};
pub use gateway::DEVICE_BYTES as SIM4_DEVICE_FILE_BYTES;

/// Which HCA the simulator plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimModel {
    /// A ConnectX-3 (PCI 15B3:1003): BAR 0 is CR space, mapped into tools.
    ConnectX3,
    /// A ConnectX-4 (PCI 15B3:1013): CR space and the other address spaces
    /// behind the configuration-space gateway, shared with a firmware agent.
    ConnectX4,
}

/// The access a handle was granted when it was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimAccess {
    /// `GENERIC_READ`: what any user gets.
    Read,
    /// `GENERIC_READ | GENERIC_WRITE`: what an administrator gets.
    ReadWrite,
}

impl SimAccess {
    fn granted(self) -> Access {
        match self {
            SimAccess::Read => Access::READ,
            SimAccess::ReadWrite => Access::READ | Access::WRITE,
        }
    }
}

/// The System process: where a worker thread runs.
pub const SYSTEM_PID: u32 = 4;

/// Where a request reaches the driver from ([`SimHandle::ioctl_from`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The tool's own `DeviceIoControl`, in its own thread: what every tool
    /// does, and what [`SimHandle::ioctl`] sends.
    Caller,
    /// The tool's own `DeviceIoControl` from a 32-bit (WOW64) process: its
    /// views must lie below 4 GiB. The simulator's views are the host's
    /// `mmap`s, above 4 GiB on a 64-bit Linux, so every map of such a caller
    /// is given back and fails, as the driver would do with a view Windows
    /// placed out of its reach.
    Caller32,
    /// A kernel-mode caller running in the tool's process (a driver that
    /// built the request itself): `RequestorMode` is `KernelMode`.
    KernelMode,
    /// An upper filter that passed the tool's request to a system worker
    /// thread: the request runs in the System process.
    WorkerThread,
}

/// How a process ends: the two orders Windows has (the contract's fine
/// print).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitOrder {
    /// It exits (`ExitProcess`, its last thread ends): the process-exit
    /// notification runs first, in its last thread; then its handle table is
    /// run down (cleanup of its handles, in its own context); then its
    /// address space goes.
    Exits,
    /// Process `killer` terminates it: its handles may be closed early, in
    /// the killer's thread (cleanup in the killer's context, so its views are
    /// unmapped by attaching to it), before the notification runs.
    KilledBy(u32),
}

impl ExitOrder {
    /// Both orders, with `killer` as the killing process: for tests that must
    /// hold under either.
    pub const fn both(killer: u32) -> [ExitOrder; 2] {
        [ExitOrder::Exits, ExitOrder::KilledBy(killer)]
    }
}

type FileId = Key;
type HandleId = Key;
type ProcessId = Key;

#[derive(Debug)]
struct FileObject {
    /// The driver's context (a refused IRP_MJ_CREATE makes no file object).
    ca: CaId,
    /// Access granted at create (`FILE_OBJECT::WriteAccess` and friends).
    access: Access,
    handles: usize,
    /// Handles plus requests in flight.
    refs: usize,
}

#[derive(Debug, Clone, Copy)]
struct HandleEntry {
    process: ProcessId,
    file: FileId,
    access: Access,
}

/// A running process. Its key tells it from an earlier process that had the
/// same pid.
#[derive(Debug)]
struct Process {
    inflight: usize,
    exiting: bool,
}

#[derive(Debug, Default)]
struct IoManager {
    files: Slab<FileObject>,
    handles: Slab<HandleEntry>,
    processes: Slab<Process>,
    /// The running process of each pid.
    pids: HashMap<Pid, ProcessId, IdHash>,
}

/// Everything behind the simulator's one lock.
///
/// On Windows the I/O manager's books and the driver's device lock are
/// separate; here one lock guards both. What the driver can observe is the
/// same: a request's handle lookup and its turn in the driver are two
/// critical sections, so a cleanup (or a process exit, or a removal) can still
/// land between them, and every driver routine still runs alone, as under the
/// device lock. What one lock saves is a lock round trip per request, which
/// the benchmarks would otherwise count against the driver.
struct State {
    io: IoManager,
    /// The driver, run with the lock held as the Windows layer runs the core
    /// under its device lock.
    driver: Device<SimPlatform>,
}

struct Inner {
    state: Mutex<State>,
    /// Signalled when an exiting process's last request completes, and when
    /// a process has ended.
    idle: Condvar,
    bar: Arc<Bar>,
    /// The ConnectX-4's device side; `None` for the ConnectX-3.
    gateway: Option<Arc<gateway::GatewayDevice>>,
}

/// A started simulated HCA (see "The simulated HCA" in the contract).
/// `Send + Sync`: many threads use it at once, like the real device.
#[derive(Clone)]
pub struct SimHca {
    inner: Arc<Inner>,
}

/// An open handle of one process. Dropping it closes it, unless its process
/// already ended.
pub struct SimHandle {
    inner: Arc<Inner>,
    id: HandleId,
    pid: Pid,
    /// Closed (by `close`, `close_shared` or drop), or never opened.
    closed: AtomicBool,
    /// The status of the create, when the driver refused it: every request
    /// answers it, as the failed `CreateFile` would have.
    refused: Option<Status>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic under the lock is a Verifier bugcheck already: let the other
    // threads go on to report what they see (`terminate` stops waiting).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How often a waiting `terminate` looks whether a Verifier check failed in
/// another thread (a panic under the lock can leave the count it waits on
/// where it was, with nobody left to wake it).
const POISON_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Runs one driver routine (dispatch, PnP, notification) in process `pid`'s
/// context, with the device lock held: its allocations are the driver's pool.
fn routine<R>(driver: &mut Device<SimPlatform>, pid: Pid, call: impl FnOnce(&mut Device<SimPlatform>) -> R) -> R {
    driver.platform_mut().set_context(pid);
    let running = driver.platform_mut().enter_driver();
    let result = call(driver);
    driver.platform_mut().leave_driver(running);
    result
}

impl Default for SimHca {
    fn default() -> Self {
        Self::new()
    }
}

impl SimHca {
    /// A started device with the contract's BARs and default quotas.
    pub fn new() -> SimHca {
        Self::with_config(Config::DEFAULT)
    }

    /// A started device with other quotas (benchmarks raise them).
    pub fn with_config(config: Config) -> SimHca {
        let bar = Bar::new(SIM_BAR0_SIZE).expect("memfd for the simulated BAR 0");
        power_on(&bar);
        Self::started(bar, config)
    }

    /// A started device whose BAR 0 (CR space) is the file at `path`, shared
    /// live with every other process (or `SimHca`) that uses the same file:
    /// one HCA's CR space seen by several tools at once, kept from one run to
    /// the next. A missing or empty file is created at power-on (zero, and
    /// the device id); a file that is not 1 MiB is refused. Only CR space is
    /// shared: each `SimHca` runs its own copy of the driver, so its handles,
    /// views and write lease are its own.
    pub fn with_bar_file(path: &std::path::Path, config: Config) -> std::io::Result<SimHca> {
        let bar = Bar::open_shared(path, SIM_BAR0_SIZE, power_on)?;
        Ok(Self::started(bar, config))
    }

    fn started(bar: Bar, config: Config) -> SimHca {
        let bar = Arc::new(bar);
        let mut device = Device::new(SimPlatform::new(bar.clone()), config);
        device.start(SIM_BARS);
        device.set_identity(Identity { pci_device_id: u32::from(SIM_PCI_DEVICE_ID), hw_id: SIM_DEVICE_ID & 0xFFFF });
        SimHca {
            inner: Arc::new(Inner {
                state: Mutex::new(State { io: IoManager::default(), driver: device }),
                idle: Condvar::new(),
                bar,
                gateway: None,
            }),
        }
    }

    /// A started device of `model`, with default quotas (a fresh, private
    /// device: `SimHca::new()` is the ConnectX-3).
    pub fn with_model(model: SimModel) -> SimHca {
        match model {
            SimModel::ConnectX3 => SimHca::new(),
            SimModel::ConnectX4 => {
                let region = memmap2::MmapOptions::new()
                    .len(gateway::DEVICE_BYTES as usize)
                    .map_anon()
                    .expect("anonymous memory for the simulated ConnectX-4");
                let raw = memmap2::MmapRaw::from(region);
                Self::started_gateway(raw, true, Config::DEFAULT).expect("the simulated ConnectX-4 starts")
            }
        }
    }

    /// A started ConnectX-4 whose device state (configuration space, the
    /// gateway's registers, every address space) is the file at `path`,
    /// shared live with every other process that uses it: tools under
    /// sim-pci, other `SimHca`s, firmware agents. A missing or empty file is
    /// a device at power-on; a file of another size is refused. Each `SimHca`
    /// runs its own copy of the driver (its own handles and lease); the
    /// gateway's semaphore arbitrates between them, as on the hardware.
    pub fn with_device_file(path: &std::path::Path, config: Config) -> std::io::Result<SimHca> {
        use rustix::fs::{flock, FlockOperation};
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        flock(&file, FlockOperation::LockExclusive)?;
        let fresh = match file.metadata()?.len() {
            0 => {
                file.set_len(u64::from(gateway::DEVICE_BYTES))?;
                true
            }
            len if len == u64::from(gateway::DEVICE_BYTES) => false,
            len => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a simulated ConnectX-4: {len} bytes", path.display()),
                ))
            }
        };
        let raw = memmap2::MmapOptions::new().len(gateway::DEVICE_BYTES as usize).map_raw(&file)?;
        let started = Self::started_gateway(raw, fresh, config);
        flock(&file, FlockOperation::Unlock)?;
        started
    }

    fn started_gateway(raw: memmap2::MmapRaw, fresh: bool, config: Config) -> std::io::Result<SimHca> {
        let device = Arc::new(gateway::GatewayDevice::new(raw, fresh, SIM4_PCI_DEVICE_ID, SIM4_DEVICE_ID)?);
        // BAR 0 of a ConnectX-4 is never mapped; the platform keeps a token one.
        let bar = Arc::new(Bar::new(4096)?);
        let sim_config = gateway::SimConfig { device: device.clone(), pause: std::time::Duration::from_micros(100) };
        let mut driver = Device::new(SimPlatform::with_config(bar.clone(), sim_config), config);
        driver
            .start_gateway(SIM4_BARS, u32::from(SIM4_PCI_DEVICE_ID))
            .map_err(|status| std::io::Error::other(format!("START_DEVICE of the simulated ConnectX-4: {status}")))?;
        Ok(SimHca {
            inner: Arc::new(Inner {
                state: Mutex::new(State { io: IoManager::default(), driver }),
                idle: Condvar::new(),
                bar,
                gateway: Some(device),
            }),
        })
    }

    /// Which HCA this is.
    pub fn model(&self) -> SimModel {
        if self.inner.gateway.is_some() {
            SimModel::ConnectX4
        } else {
            SimModel::ConnectX3
        }
    }

    fn gateway(&self) -> &gateway::GatewayDevice {
        self.inner.gateway.as_deref().expect("a ConnectX-4: the gateway is its own")
    }

    /// The ConnectX-4's dword at `offset` of address space `space`, as the
    /// device holds it (the gateway carries values: no byte order to mind).
    pub fn read_space(&self, space: u32, offset: u32) -> u32 {
        self.gateway().read_space(space, offset)
    }

    /// Sets the ConnectX-4's dword at `offset` of `space` (the device's side).
    pub fn write_space(&self, space: u32, offset: u32, value: u32) {
        self.gateway().write_space(space, offset, value)
    }

    /// Whether someone holds the ConnectX-4 gateway's semaphore right now.
    pub fn gateway_semaphore_taken(&self) -> bool {
        self.gateway().semaphore_taken()
    }

    /// How many tickets the ConnectX-4 gateway's counter has handed out:
    /// one per try to take its semaphore, by the driver or anyone else.
    pub fn gateway_tickets(&self) -> u32 {
        self.gateway().tickets()
    }

    /// The ConnectX-4's faults: its gateway's semaphore never free, its flag
    /// never moving (false, false: none).
    pub fn set_gateway_faults(&self, semaphore_stuck: bool, flag_stuck: bool) {
        self.gateway().set_faults(semaphore_stuck, flag_stuck)
    }

    /// Starts a firmware agent on the ConnectX-4 (see [`FirmwareAgent`]); it
    /// stops when dropped.
    pub fn start_firmware_agent(&self, seed: u64) -> FirmwareAgent {
        FirmwareAgent::start(self.inner.gateway.clone().expect("a ConnectX-4 has a firmware agent"), seed)
    }

    /// `CreateFile` from process `pid`; the handle was granted `access`.
    /// If the driver refuses the create (the device is being removed), the
    /// handle answers every request with the create's status, as the failed
    /// `CreateFile` would have.
    pub fn open(&self, pid: u32, access: SimAccess) -> SimHandle {
        match self.try_open(pid, access) {
            Ok(handle) => handle,
            Err(status) => {
                let refused = Some(Status::from_raw(status));
                SimHandle { inner: self.inner.clone(), id: Key::NONE, pid, closed: AtomicBool::new(true), refused }
            }
        }
    }

    /// `CreateFile`, reporting a refused create as `Err(NTSTATUS)`.
    pub fn try_open(&self, pid: u32, access: SimAccess) -> Result<SimHandle, i32> {
        let mut state = lock(&self.inner.state);
        let State { io, driver } = &mut *state;
        if io.running(pid).is_some_and(|p| p.exiting) {
            return Err(Status::INVALID_HANDLE.raw());
        }
        driver.platform_mut().process_started(pid);
        let ca = routine(driver, pid, |d| d.open()).map_err(Status::raw)?;
        let process = io.process(pid);
        let file = io.files.insert(FileObject { ca, access: access.granted(), handles: 1, refs: 1 });
        let id = io.handles.insert(HandleEntry { process, file, access: access.granted() });
        Ok(SimHandle { inner: self.inner.clone(), id, pid, closed: AtomicBool::new(false), refused: None })
    }

    /// Process `pid` ends, in `order`. Its in-flight requests finish first
    /// (thread rundown); then its handles close and the process-exit
    /// notification runs, in the order and contexts `order` says. If another
    /// thread is ending the same process already, this waits until it has
    /// ended and returns: a process ends once, and a new process that reuses
    /// the pid meanwhile is not this one.
    pub fn terminate(&self, pid: u32, order: ExitOrder) {
        let mut state = lock(&self.inner.state);
        let process = state.io.process(pid);
        let running = state.io.processes.get_mut(process).expect("just started or found");
        let ender = !std::mem::replace(&mut running.exiting, true);
        loop {
            match state.io.processes.get(process) {
                Some(p) => {
                    if ender && p.inflight == 0 {
                        break;
                    }
                }
                // Ended by the thread that began ending it.
                None => return,
            }
            state = match self.inner.idle.wait_timeout(state, POISON_POLL) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
            assert!(
                !self.inner.state.is_poisoned(),
                "the simulated HCA stopped: a Verifier check failed in another thread (see its panic)"
            );
        }
        let mine: Vec<HandleId> =
            state.io.handles.iter().filter(|(_, h)| h.process == process).map(|(id, _)| id).collect();
        match order {
            ExitOrder::Exits => {
                routine(&mut state.driver, pid, |d| d.process_exited(pid));
                for id in mine {
                    state.close_handle(id, pid);
                }
            }
            ExitOrder::KilledBy(killer) => {
                for id in mine {
                    state.close_handle(id, killer);
                }
                routine(&mut state.driver, pid, |d| d.process_exited(pid));
            }
        }
        state.driver.platform_mut().process_ended(pid);
        state.io.processes.remove(process);
        state.io.pids.remove(&pid);
        state.after_close();
        // Other threads ending this process wait for it to be gone.
        self.inner.idle.notify_all();
    }

    /// The PnP manager asks to remove the device (disable, uninstall):
    /// `IRP_MN_QUERY_REMOVE_DEVICE`; if the driver refuses,
    /// `IRP_MN_CANCEL_REMOVE_DEVICE` and `Err(STATUS_DEVICE_BUSY)`; if it
    /// agrees, `IRP_MN_REMOVE_DEVICE`, and the device is gone.
    pub fn query_remove(&self) -> Result<(), i32> {
        let driver = &mut lock(&self.inner.state).driver;
        // The PnP manager's requests run in the system process (pid 0).
        match routine(driver, 0, |d| d.query_remove()) {
            Ok(()) => {
                routine(driver, 0, |d| d.remove());
                Ok(())
            }
            Err(status) => {
                routine(driver, 0, |d| d.cancel_remove());
                Err(status.raw())
            }
        }
    }

    /// A query-remove that the driver may agree to but another driver in the
    /// stack vetoes: `IRP_MN_QUERY_REMOVE_DEVICE`, then `during` runs while
    /// the removal is pending (with the simulator unlocked, so it can open
    /// handles and send requests), then `IRP_MN_CANCEL_REMOVE_DEVICE`.
    /// `Err(STATUS_DEVICE_BUSY)` when the driver refused (then `during`
    /// does not run).
    pub fn query_remove_vetoed(&self, during: impl FnOnce()) -> Result<(), i32> {
        {
            let driver = &mut lock(&self.inner.state).driver;
            if let Err(status) = routine(driver, 0, |d| d.query_remove()) {
                routine(driver, 0, |d| d.cancel_remove());
                return Err(status.raw());
            }
        }
        during();
        routine(&mut lock(&self.inner.state).driver, 0, |d| d.cancel_remove());
        Ok(())
    }

    /// The PnP manager rebalances resources: `IRP_MN_QUERY_STOP_DEVICE`; if
    /// the driver refuses, `IRP_MN_CANCEL_STOP_DEVICE` and
    /// `Err(STATUS_DEVICE_BUSY)`; if it agrees, `IRP_MN_STOP_DEVICE` and
    /// `IRP_MN_START_DEVICE` again with the same BARs.
    pub fn query_stop(&self) -> Result<(), i32> {
        let driver = &mut lock(&self.inner.state).driver;
        match routine(driver, 0, |d| d.query_stop()) {
            Ok(()) => {
                let bars = driver.bars();
                let gateway = self.inner.gateway.is_some();
                routine(driver, 0, |d| d.stop());
                routine(driver, 0, |d| {
                    if gateway {
                        d.start_gateway(bars, u32::from(SIM4_PCI_DEVICE_ID))
                            .map(drop)
                            .expect("the ConnectX-4 restarts");
                    } else {
                        d.start(bars);
                    }
                });
                Ok(())
            }
            Err(status) => {
                routine(driver, 0, |d| d.cancel_stop());
                Err(status.raw())
            }
        }
    }

    /// `IRP_MN_SURPRISE_REMOVAL`: the HCA is gone. `IRP_MN_REMOVE_DEVICE`
    /// follows when the last handle closes.
    pub fn surprise_remove(&self) {
        let mut state = lock(&self.inner.state);
        routine(&mut state.driver, 0, |d| d.surprise_remove());
        state.after_close();
    }

    /// User views mapped right now, all handles (the platform's own count).
    pub fn live_views(&self) -> usize {
        lock(&self.inner.state).driver.platform().live_views()
    }

    /// The device's side of CR space: reads a dword, the device's value (a
    /// ConnectX-3's BAR 0 holds it big-endian, and a view shows its bytes in
    /// that order; a ConnectX-4's space 2 holds the value).
    pub fn read_dword(&self, offset: u32) -> u32 {
        match &self.inner.gateway {
            Some(device) => device.read_space(crate::abi::space::CR, offset),
            None => self.inner.bar.read_dword(offset),
        }
    }

    /// The device's side of CR space: writes a dword, the device's value.
    pub fn write_dword(&self, offset: u32, value: u32) {
        match &self.inner.gateway {
            Some(device) => device.write_space(crate::abi::space::CR, offset, value),
            None => self.inner.bar.write_dword(offset, value),
        }
    }

    /// Whether a view of this HCA's BAR 0 is mapped at `va` in this host
    /// process (from `/proc/self/maps`, by the BAR's inode). The test surface
    /// for "that view is gone": touching an unmapped address proves nothing
    /// in a process whose other threads may map something new there.
    pub fn is_bar_mapped_at(&self, va: u64) -> bool {
        self.inner.bar.mapped_at(va)
    }

    /// Views of process `pid`, all handles.
    pub fn views_of(&self, pid: u32) -> usize {
        lock(&self.inner.state).driver.platform().views_of(pid)
    }

    /// Read-write views, all handles.
    pub fn writable_views(&self) -> usize {
        lock(&self.inner.state).driver.platform().writable_views()
    }

    /// Times the driver attached to another process to unmap a view there.
    pub fn attaches(&self) -> u64 {
        lock(&self.inner.state).driver.platform().attaches()
    }

    /// The write lease's process, if anyone holds it (the driver's view).
    pub fn writer_pid(&self) -> Option<u32> {
        lock(&self.inner.state).driver.lease().map(|l| l.writer_pid)
    }

    /// Whether the driver keeps the system awake (`PoRegisterSystemState`):
    /// while the write lease is held.
    pub fn keeps_system_awake(&self) -> bool {
        lock(&self.inner.state).driver.platform().keeps_system_awake()
    }

    /// The power manager asks whether the system may sleep or hibernate
    /// (`IRP_MN_QUERY_POWER` for S1-S4): `Err(STATUS_DEVICE_BUSY)` while a
    /// firmware write may be under way (the lease is held).
    pub fn query_sleep(&self) -> Result<(), i32> {
        let driver = &mut lock(&self.inner.state).driver;
        routine(driver, 0, |d| d.query_system_sleep()).map_err(Status::raw)
    }

    /// Whether the lock-free filter the process-exit notification asks first
    /// says `pid` may own views (never `false` while it owns one).
    pub fn may_own_views(&self, pid: u32) -> bool {
        lock(&self.inner.state).driver.platform().may_own_views(pid)
    }

    /// Handles open on the device (contexts not yet cleaned up).
    pub fn open_handles(&self) -> usize {
        lock(&self.inner.state).driver.open_handles()
    }

    /// The device's PnP state.
    pub fn pnp_state(&self) -> PnpState {
        lock(&self.inner.state).driver.state()
    }

    /// Arms fault injection in the platform (counts restart from now).
    pub fn inject_faults(&self, faults: Faults) {
        lock(&self.inner.state).driver.platform_mut().set_faults(faults);
    }

    /// Injected faults that fired since [`inject_faults`](Self::inject_faults).
    pub fn faults_fired(&self) -> u64 {
        lock(&self.inner.state).driver.platform().faults_fired()
    }

    /// Views the platform released without a user-mode unmap because their
    /// owner could not be attached ([`Faults::fail_attach_at`]).
    pub fn orphaned_views(&self) -> u64 {
        lock(&self.inner.state).driver.platform().orphaned()
    }

    /// Allocations the driver made from its pool since
    /// [`inject_faults`](Self::inject_faults); stays 0 unless the binary
    /// installed [`DriverPool`].
    pub fn driver_allocations(&self) -> u64 {
        lock(&self.inner.state).driver.platform().driver_allocations()
    }

    /// The driver's contexts (created and not yet closed), as in its table.
    pub fn contexts(&self) -> usize {
        lock(&self.inner.state).driver.contexts()
    }
}

/// CR space at power-on: zero, except the device-identification dword.
fn power_on(bar: &Bar) {
    bar.write_dword(SIM_DEVICE_ID_OFFSET, SIM_DEVICE_ID);
}

impl IoManager {
    /// The running process `pid`, started now if there is none.
    fn process(&mut self, pid: Pid) -> ProcessId {
        let processes = &mut self.processes;
        *self.pids.entry(pid).or_insert_with(|| processes.insert(Process { inflight: 0, exiting: false }))
    }

    /// The running process `pid`, if there is one.
    fn running(&self, pid: Pid) -> Option<&Process> {
        self.processes.get(*self.pids.get(&pid)?)
    }
}

impl State {
    /// Drops one handle, in the thread of process `context`: cleanup when it
    /// was the file object's last handle, close when nothing else references
    /// the file object.
    fn close_handle(&mut self, id: HandleId, context: Pid) {
        let Some(handle) = self.io.handles.remove(id) else {
            return;
        };
        let file = self.io.files.get_mut(handle.file).expect("a handle's file object exists");
        file.handles -= 1;
        if file.handles == 0 {
            let ca = file.ca;
            routine(&mut self.driver, context, |d| d.cleanup(ca));
        }
        self.release_file(handle.file, context);
    }

    /// Drops one reference to a file object; the last one sends the close.
    fn release_file(&mut self, file_id: FileId, pid: Pid) {
        let file = self.io.files.get_mut(file_id).expect("a referenced file object exists");
        file.refs -= 1;
        if file.refs == 0 {
            let file = self.io.files.remove(file_id).expect("just seen");
            let leftover = routine(&mut self.driver, pid, |d| d.close(file.ca));
            assert_eq!(leftover, 0, "DRIVER VERIFIER: IRP_MJ_CLOSE found {leftover} view(s) cleanup left");
            self.after_close();
        }
    }

    /// After a file object went, a process ended or a surprise removal:
    /// Verifier's check that nothing is left once no file object is, and the
    /// remove that follows a surprise removal once the last one went.
    fn after_close(&mut self) {
        if !self.io.files.is_empty() {
            return;
        }
        let driver = &mut self.driver;
        let (views, platform_views, lease) = (driver.live_views(), driver.platform().live_views(), driver.lease());
        let awake = driver.platform().keeps_system_awake();
        assert!(
            views == 0 && platform_views == 0 && lease.is_none() && !awake,
            "DRIVER VERIFIER: all handles closed but {views} view(s) ({platform_views} mapped), lease {lease:?}, \
             system kept awake {awake}"
        );
        if driver.state() == PnpState::SurpriseRemoved {
            routine(driver, 0, |d| d.remove());
        }
    }

    /// The request of `pid` on `file` completed: its reference on the file
    /// object goes (the handle may have been closed meanwhile by another
    /// thread; then this was the last reference and the close is sent now).
    /// `true`: it was the last request of an exiting process, whose
    /// `terminate` waits for it.
    fn end_request(&mut self, file: FileId, process: ProcessId, pid: Pid) -> bool {
        let drained = match self.io.processes.get_mut(process) {
            Some(p) => {
                p.inflight -= 1;
                p.exiting && p.inflight == 0
            }
            None => false,
        };
        self.release_file(file, pid);
        drained
    }
}

impl Inner {
    /// Wakes `terminate` when `drained` (`notify_all` is a futex syscall even
    /// with nobody waiting: only when someone can be).
    fn wake_if(&self, drained: bool) {
        if drained {
            self.idle.notify_all();
        }
    }
}

impl SimHandle {
    /// `DeviceIoControl`: `Ok(bytes written)` or `Err(NTSTATUS as i32)`.
    /// METHOD_BUFFERED as the I/O manager does it: one system buffer, the
    /// input copied in, the bytes the driver reports copied out; on failure
    /// the output buffer is left as it was.
    pub fn ioctl(&self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, i32> {
        self.ioctl_from(Origin::Caller, code, input, output)
    }

    /// [`ioctl`](Self::ioctl) as it reaches the driver from `origin`: the
    /// tool's own thread, a kernel-mode caller in its process, or a worker
    /// thread of the System process an upper filter passed it to.
    pub fn ioctl_from(&self, origin: Origin, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, i32> {
        let requester = match origin {
            Origin::Caller => Requester::user(self.pid),
            Origin::Caller32 => Requester::user_32bit(self.pid),
            Origin::KernelMode => Requester { pid: self.pid, in_own_context: false, ..Requester::user(self.pid) },
            Origin::WorkerThread => Requester { pid: SYSTEM_PID, in_own_context: false, ..Requester::user(self.pid) },
        };
        let (file, process, ca, granted) = self.begin(code)?;
        // The contract's blocks are at most 24 bytes: a system buffer of that
        // size lives on the stack (no allocator call per request); longer
        // caller buffers get a heap one.
        let len = input.len().max(output.len());
        let mut small = [0u8; 64];
        let mut large = Vec::new();
        let system_buffer: &mut [u8] = if len <= small.len() {
            &mut small[..len]
        } else {
            large.resize(len, 0u8);
            &mut large
        };
        system_buffer[..input.len()].copy_from_slice(input);
        let (result, drained) = {
            let mut state = lock(&self.inner.state);
            let request = routine(&mut state.driver, requester.pid, |d| {
                d.device_control(ca, requester, granted, code, &system_buffer[..input.len()], output.len())
            });
            let result = request.map(|response| response.encode(&mut system_buffer[..output.len()]));
            (result, state.end_request(file, process, self.pid))
        };
        self.inner.wake_if(drained);
        let written = result.map_err(Status::raw)?;
        output[..written].copy_from_slice(&system_buffer[..written]);
        Ok(written)
    }

    /// Reads one dword of BAR 0 with one request through the full I/O path
    /// (handle and access check, file object reference, system buffer, the
    /// driver's device lock), as a driver without mappings would have to.
    /// Not part of the contract: the simulator's test surface, so that
    /// benchmarks can compare a mapping against one request per dword.
    pub fn read_dword_via_request(&self, offset: u32) -> Result<u32, i32> {
        let (file, process, _ca, _granted) = self.begin(crate::abi::FW_QUERY_CRSPACE)?;
        let mut system_buffer = [0u8; 4];
        let (result, drained) = {
            let mut state = lock(&self.inner.state);
            // The state and window checks a map of this dword would meet.
            let driver = &state.driver;
            let result = if matches!(driver.state(), PnpState::SurpriseRemoved | PnpState::Removed) {
                Err(Status::DELETE_PENDING)
            } else {
                let block = crate::abi::MapCrSpaceIn { bar_num: 0, offset, size: 4 };
                crate::core::CrSpaceWindow::new(&block, &driver.bars()).map(|_| {
                    system_buffer.copy_from_slice(&self.inner.bar.read_dword(offset).to_le_bytes());
                })
            };
            (result, state.end_request(file, process, self.pid))
        };
        self.inner.wake_if(drained);
        result.map_err(Status::raw)?;
        Ok(u32::from_le_bytes(system_buffer))
    }

    /// The I/O manager's part before the IRP: the handle, the access bits of
    /// the code against the handle's, a reference on the file object.
    fn begin(&self, code: u32) -> Result<(FileId, ProcessId, CaId, Access), i32> {
        if let Some(status) = self.refused {
            return Err(status.raw());
        }
        let mut state = lock(&self.inner.state);
        let io = &mut state.io;
        let Some(handle) = io.handles.get(self.id).copied() else {
            return Err(Status::INVALID_HANDLE.raw());
        };
        let process = io.processes.get_mut(handle.process).expect("a handle's process runs");
        if process.exiting {
            return Err(Status::INVALID_HANDLE.raw());
        }
        if !handle.access.contains(code_access(code)) {
            return Err(Status::ACCESS_DENIED.raw());
        }
        process.inflight += 1;
        let file = io.files.get_mut(handle.file).expect("a handle's file object exists");
        file.refs += 1;
        let (ca, access) = (file.ca, file.access.intersection(handle.access));
        Ok((handle.file, handle.process, ca, access))
    }

    /// `DuplicateHandle` into process `pid`: the same file object, so the
    /// same context, mappings and lease. The new handle has this one's access.
    pub fn duplicate(&self, pid: u32) -> SimHandle {
        let mut state = lock(&self.inner.state);
        let State { io, driver } = &mut *state;
        let Some(handle) = io.handles.get(self.id).copied() else {
            let refused = Some(Status::INVALID_HANDLE);
            return SimHandle { inner: self.inner.clone(), id: Key::NONE, pid, closed: AtomicBool::new(true), refused };
        };
        let process = io.process(pid);
        driver.platform_mut().process_started(pid);
        let file = io.files.get_mut(handle.file).expect("a handle's file object exists");
        file.handles += 1;
        file.refs += 1;
        let id = io.handles.insert(HandleEntry { process, ..handle });
        SimHandle { inner: self.inner.clone(), id, pid, closed: AtomicBool::new(false), refused: None }
    }

    /// `CloseHandle`, in this handle's process.
    pub fn close(self) {
        self.close_now();
    }

    /// `CloseHandle` from one thread of the process while its other threads
    /// may still have requests in flight on the handle (shared through an
    /// `Arc`): as on Windows, their file object reference keeps it until
    /// they complete, and cleanup may run before they reach the driver.
    /// Later requests answer `STATUS_INVALID_HANDLE`.
    pub fn close_shared(&self) {
        self.close_now();
    }

    fn close_now(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        lock(&self.inner.state).close_handle(self.id, self.pid);
    }

    /// The process this handle belongs to.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.close_now();
    }
}
