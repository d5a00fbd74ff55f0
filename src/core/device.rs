//! One HCA as the core sees it: the contexts of its open handles, the write
//! lease, the quotas, and its PnP state.

use super::gateway::{Gateway, ADDR_MASK};
use super::table::{Entry, ViewTable};
use super::{BarSizes, Config, CrSpaceWindow, Pid, Platform, Requester, ViewKey};
use crate::abi::{
    space, Access, BlockIn, Ioctl, MapCrSpaceOut, QueryCrSpaceOut, QueryDeviceOut, Request, Response, MAX_BLOCK_DWORDS,
    PATH_GATEWAY, PATH_MAPPED,
};
use crate::status::{Result, Status};
use alloc::vec::Vec;

/// How the device's CR space is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// BAR 0 is CR space: the map codes map it (ConnectX-3 and older).
    Mapped,
    /// Through the configuration-space gateway: the block codes (ConnectX-4
    /// and later).
    Gateway(Gateway),
}

/// Who the device is, as `FW_QUERY_DEVICE` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The PCI device id.
    pub pci_device_id: u32,
    /// The low 16 bits of CR space's dword at 0xF0014.
    pub hw_id: u32,
}

/// A tool lock a handle took through the gateway: a non-zero value it wrote
/// into the semaphore space (the ICMD semaphore, the tools' resource locks).
/// The handle's cleanup, or its writer's exit, writes 0 there if the
/// location still holds that value, so a killed tool never leaves the device
/// locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ToolLock {
    /// The process that wrote it.
    pub pid: Pid,
    /// Its byte offset in the semaphore space.
    pub offset: u32,
    /// The value written.
    pub value: u32,
}

/// Tool locks one handle may hold at once.
const MAX_LOCKS_PER_HANDLE: usize = 256;

/// Names one open handle's context (one file object). Stale ids (of a
/// closed context whose slot was reused) are recognised by a generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CaId {
    index: u32,
    generation: u32,
}

impl CaId {
    /// The id packed in one integer, to keep in a file object's `FsContext`.
    pub const fn to_raw(self) -> u64 {
        // CAST: two u32 halves.
        ((self.generation as u64) << 32) | self.index as u64
    }

    /// Unpacks [`to_raw`](Self::to_raw).
    pub const fn from_raw(raw: u64) -> Self {
        // CAST: the two u32 halves, truncation intended.
        CaId { index: raw as u32, generation: (raw >> 32) as u32 }
    }
}

/// Where the device is in its PnP life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PnpState {
    /// Added, BAR not yet mapped.
    NotStarted,
    /// Serving requests.
    Started,
    /// `QUERY_STOP` was agreed: new opens are refused until stop or cancel.
    StopPending,
    /// Stopped: the BAR is released; a new start maps it again.
    Stopped,
    /// `QUERY_REMOVE` was agreed: new opens are refused until remove or cancel.
    RemovePending,
    /// Surprise-removed: every view was revoked; requests answer `STATUS_DELETE_PENDING`.
    SurpriseRemoved,
    /// Removed: nothing is mapped and nothing will be.
    Removed,
}

/// The write lease as a tool sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The handle that holds it.
    pub holder: CaId,
    /// The process whose read-write map took it (`writer_pid` of a query).
    pub writer_pid: Pid,
}

#[derive(Clone, Copy, Debug)]
struct LeaseState {
    lease: Lease,
    /// Read-write views of the holder owned by `writer_pid`.
    writer_views: u32,
    /// `FW_LEASE_CRSPACE {1}` took it, from this process: it is held until
    /// given back, the handle's cleanup or this process's end, views or not.
    taken_by: Option<Pid>,
}

/// The per-handle user CA context (the thread's `mlnx_um_ca_t`): one per
/// file object, so shared by a handle and its duplicates.
#[derive(Debug)]
pub struct UmCa<V> {
    views: ViewTable<V>,
    rw_views: u32,
    cleaned_up: bool,
    locks: Vec<ToolLock>,
}

impl<V> UmCa<V> {
    /// Live views of this handle, all processes.
    pub fn mapping_count(&self) -> usize {
        self.views.len()
    }

    /// Live read-write views of this handle.
    pub fn rw_mapping_count(&self) -> u32 {
        self.rw_views
    }

    /// Whether `IRP_MJ_CLEANUP` has run for it.
    pub fn is_cleaned_up(&self) -> bool {
        self.cleaned_up
    }

    /// The keys of its live views.
    pub fn view_keys(&self) -> impl Iterator<Item = ViewKey> + '_ {
        self.views.iter().map(|e| e.key)
    }

    /// The tool locks it holds.
    pub fn tool_locks(&self) -> &[ToolLock] {
        &self.locks
    }
}

#[derive(Debug)]
struct CaSlot<V> {
    generation: u32,
    ca: Option<UmCa<V>>,
}

/// One HCA. Every method is one step of the driver's life, called by the
/// Windows layer (or the simulator) under the device's lock.
pub struct Device<P: Platform> {
    bars: BarSizes,
    config: Config,
    state: PnpState,
    cas: Vec<CaSlot<P::View>>,
    live_views: usize,
    lease: Option<LeaseState>,
    path: Path,
    identity: Identity,
    /// Declared last, so dropped last: the platform owns BAR 0, which must
    /// outlive any view a context could still hold.
    platform: P,
}

impl<P: Platform> Device<P> {
    /// A device that is added but not started (`AddDevice`).
    pub fn new(platform: P, config: Config) -> Self {
        Device {
            platform,
            bars: BarSizes { bar0: 0, bar1: 0, bar2: 0 },
            config,
            state: PnpState::NotStarted,
            cas: Vec::new(),
            live_views: 0,
            lease: None,
            path: Path::Mapped,
            identity: Identity::default(),
        }
    }

    /// `IRP_MN_START_DEVICE` of a device whose BAR 0 is CR space: the BARs
    /// are mapped and requests are served.
    pub fn start(&mut self, bars: BarSizes) {
        self.bars = bars;
        self.path = Path::Mapped;
        self.state = PnpState::Started;
    }

    /// Who the device is (`FW_QUERY_DEVICE`), as the platform found it at
    /// start (a mapped device's id dword, read through BAR 0).
    pub fn set_identity(&mut self, identity: Identity) {
        self.identity = identity;
    }

    /// `IRP_MN_START_DEVICE` of a device whose CR space is behind the
    /// configuration-space gateway: finds the capability through the
    /// platform's configuration space, probes the spaces it reports, reads
    /// the hardware id (CR space at 0xF0014), and serves the block codes.
    /// `STATUS_NOT_SUPPORTED` if there is no gateway, or it has no CR space;
    /// then nothing changes.
    pub fn start_gateway(&mut self, bars: BarSizes, pci_device_id: u32) -> Result<Gateway> {
        let cfg = self.platform.config_space().ok_or(Status::NOT_SUPPORTED)?;
        let base = Gateway::find(cfg)?.ok_or(Status::NOT_SUPPORTED)?;
        let gateway = Gateway::probe(cfg, base)?;
        if !gateway.supports(space::CR) {
            return Err(Status::NOT_SUPPORTED);
        }
        let mut id = [0u32; 1];
        gateway.read(cfg, space::CR, 0xF0014, &mut id)?;
        self.identity = Identity { pci_device_id, hw_id: id[0] & 0xFFFF };
        self.path = Path::Gateway(gateway);
        self.bars = bars;
        self.state = PnpState::Started;
        Ok(gateway)
    }

    /// How CR space is reached.
    pub fn path(&self) -> Path {
        self.path
    }

    /// Who the device is.
    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// The platform, e.g. to hand it the BAR mapping at start.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The platform, mutable.
    pub fn platform_mut(&mut self) -> &mut P {
        &mut self.platform
    }

    /// The BAR sizes found at start.
    pub fn bars(&self) -> BarSizes {
        self.bars
    }

    /// The quotas in force.
    pub fn config(&self) -> Config {
        self.config
    }

    /// The PnP state.
    pub fn state(&self) -> PnpState {
        self.state
    }

    /// User views mapped right now, all handles.
    pub fn live_views(&self) -> usize {
        self.live_views
    }

    /// The write lease, if someone holds it.
    pub fn lease(&self) -> Option<Lease> {
        self.lease.map(|l| l.lease)
    }

    /// Contexts that exist (created and not yet closed).
    pub fn contexts(&self) -> usize {
        self.cas.iter().filter(|s| s.ca.is_some()).count()
    }

    /// Handles that are open: contexts not yet cleaned up.
    pub fn open_handles(&self) -> usize {
        self.cas.iter().filter_map(|s| s.ca.as_ref()).filter(|ca| !ca.cleaned_up).count()
    }

    /// A handle's context.
    pub fn ca(&self, id: CaId) -> Option<&UmCa<P::View>> {
        self.cas.get(id.index as usize).filter(|s| s.generation == id.generation)?.ca.as_ref()
    }

    /// `IRP_MJ_CREATE`: a new context for a new file object.
    pub fn open(&mut self) -> Result<CaId> {
        match self.state {
            PnpState::Started => {}
            PnpState::StopPending | PnpState::Stopped | PnpState::NotStarted => return Err(Status::DEVICE_BUSY),
            PnpState::RemovePending | PnpState::SurpriseRemoved | PnpState::Removed => {
                return Err(Status::DELETE_PENDING)
            }
        }
        let fresh = UmCa { views: ViewTable::new(), rw_views: 0, cleaned_up: false, locks: Vec::new() };
        let index = match self.cas.iter().position(|s| s.ca.is_none()) {
            Some(index) => index,
            None => {
                self.cas.try_reserve(1).map_err(|_| Status::INSUFFICIENT_RESOURCES)?;
                self.cas.push(CaSlot { generation: 0, ca: None });
                self.cas.len() - 1
            }
        };
        let slot = &mut self.cas[index];
        slot.ca = Some(fresh);
        // CAST: contexts are bounded by handles the system can open, far below u32::MAX.
        Ok(CaId { index: index as u32, generation: slot.generation })
    }

    /// `IRP_MJ_DEVICE_CONTROL` from `requester` on the handle whose context
    /// is `ca` and whose granted access is `granted`. Checks in the
    /// contract's order: device state, code, access, the requester's context
    /// (maps and unmaps), buffer lengths, the path (a request of the other
    /// path is `STATUS_NOT_SUPPORTED`), parameters, quota, lease. A failure
    /// changes nothing (a block transfer the gateway failed halfway may have
    /// moved some dwords: the device's, not the driver's, state).
    pub fn device_control(
        &mut self,
        ca: CaId,
        requester: Requester,
        granted: Access,
        code: u32,
        input: &[u8],
        output_len: usize,
    ) -> Result<Response> {
        let leased = self.lease.is_some();
        let result = self.request(ca, requester, granted, code, input, output_len);
        self.lease_settled(leased);
        result
    }

    fn request(
        &mut self,
        ca: CaId,
        requester: Requester,
        granted: Access,
        code: u32,
        input: &[u8],
        output_len: usize,
    ) -> Result<Response> {
        if matches!(self.state, PnpState::SurpriseRemoved | PnpState::Removed) {
            return Err(Status::DELETE_PENDING);
        }
        match self.ca(ca) {
            None => return Err(Status::FILE_CLOSED),
            Some(c) if c.cleaned_up => return Err(Status::FILE_CLOSED),
            Some(_) => {}
        }
        let ioctl = Ioctl::from_code(code)?;
        if !granted.contains(ioctl.required_access()) {
            return Err(Status::ACCESS_DENIED);
        }
        let maps = matches!(ioctl, Ioctl::MapReadOnly | Ioctl::MapReadWrite | Ioctl::Unmap);
        if maps && !requester.in_own_context {
            return Err(Status::NOT_SUPPORTED);
        }
        let caller = requester.pid;
        let request = ioctl.decode(input, output_len)?;
        let gateway_code = matches!(ioctl, Ioctl::ReadBlock | Ioctl::WriteBlock);
        match self.path {
            Path::Mapped if gateway_code => return Err(Status::NOT_SUPPORTED),
            Path::Gateway(_) if maps => return Err(Status::NOT_SUPPORTED),
            _ => {}
        }
        match request {
            Request::Map { writable, params } => {
                let window = CrSpaceWindow::new(&params, &self.bars)?;
                self.map(ca, requester, window, writable).map(|va| Response::Map(MapCrSpaceOut { va }))
            }
            Request::Unmap(params) => self.unmap(ca, ViewKey { pid: caller, va: params.va }).map(|()| Response::Unmap),
            Request::Query => Ok(Response::Query(self.query(ca))),
            Request::QueryDevice => Ok(Response::QueryDevice(self.query_device())),
            Request::Lease(params) => self.lease_request(ca, caller, params.take).map(|()| Response::Done),
            Request::ReadBlock(params) => self.read_block(granted, params),
            Request::WriteBlock { params, data } => {
                self.write_block(ca, caller, params, &data).map(|()| Response::Done)
            }
        }
    }

    fn query_device(&self) -> QueryDeviceOut {
        let (path, spaces) = match self.path {
            Path::Mapped => (PATH_MAPPED, 0),
            Path::Gateway(g) => (PATH_GATEWAY, g.spaces()),
        };
        QueryDeviceOut {
            pci_device_id: self.identity.pci_device_id,
            hw_id: self.identity.hw_id,
            path,
            spaces,
            max_count: MAX_BLOCK_DWORDS,
            reserved: 0,
        }
    }

    /// The gateway for a block request, its parameters checked: a count of
    /// 1 to `MAX_BLOCK_DWORDS`, a dword-aligned offset, the block inside the
    /// gateway's 30-bit addresses (else `STATUS_INVALID_PARAMETER`), and a
    /// space the contract names and the device reports (else
    /// `STATUS_NOT_SUPPORTED`).
    fn block_gateway(&self, params: &BlockIn) -> Result<Gateway> {
        let Path::Gateway(gateway) = self.path else { return Err(Status::NOT_SUPPORTED) };
        let end = u64::from(params.offset) + 4 * u64::from(params.count);
        if params.count == 0
            || params.count > MAX_BLOCK_DWORDS
            || params.offset % 4 != 0
            || end > u64::from(ADDR_MASK) + 1
        {
            return Err(Status::INVALID_PARAMETER);
        }
        if !space::ALL.contains(&params.space) || !gateway.supports(params.space) {
            return Err(Status::NOT_SUPPORTED);
        }
        Ok(gateway)
    }

    /// `FW_READ_CRSPACE_BLOCK`. A read-only handle reads CR space and its
    /// non-destructive form only: reading the others has effects.
    fn read_block(&mut self, granted: Access, params: BlockIn) -> Result<Response> {
        let gateway = self.block_gateway(&params)?;
        if !granted.contains(Access::WRITE) && !space::readable_by_any(params.space) {
            return Err(Status::ACCESS_DENIED);
        }
        let cfg = self.platform.config_space().ok_or(Status::DELETE_PENDING)?;
        let mut data = [0u32; MAX_BLOCK_DWORDS as usize];
        gateway.read(cfg, params.space, params.offset, &mut data[..params.count as usize])?;
        Ok(Response::ReadBlock { count: params.count, data })
    }

    /// `FW_WRITE_CRSPACE_BLOCK`: needs the write lease free or held by this
    /// handle (as an RW map does). What it writes into the semaphore space
    /// becomes (non-zero) a tool lock of this handle, or ends (zero) every
    /// handle's record at that offset.
    fn write_block(&mut self, id: CaId, caller: Pid, params: BlockIn, data: &[u32]) -> Result<()> {
        let gateway = self.block_gateway(&params)?;
        let values = &data[..params.count as usize];
        let semaphore = params.space == space::SEMAPHORE;
        let Device { platform, cas, lease, .. } = self;
        let Some(ca) =
            cas.get_mut(id.index as usize).filter(|s| s.generation == id.generation).and_then(|s| s.ca.as_mut())
        else {
            return Err(Status::FILE_CLOSED);
        };
        // CAST: i < MAX_BLOCK_DWORDS.
        let at = |i: usize| params.offset + 4 * i as u32;
        let is_new = |ca: &UmCa<P::View>, i: usize, value: u32| {
            value != 0 && !ca.locks.iter().any(|l| l.offset == at(i) && l.pid == caller && l.value == value)
        };
        if semaphore {
            // Room for every record this write may add, before writing. A
            // zero frees and a value already recorded adds nothing, so
            // neither counts: a handle at its limit can still let go.
            let new = values.iter().enumerate().filter(|&(i, &v)| is_new(ca, i, v)).count();
            if ca.locks.len() + new > MAX_LOCKS_PER_HANDLE {
                return Err(Status::INSUFFICIENT_RESOURCES);
            }
            ca.locks.try_reserve(new).map_err(|_| Status::INSUFFICIENT_RESOURCES)?;
        }
        // The quota (above), then the lease: the contract's order.
        if lease.is_some_and(|l| l.lease.holder != id) {
            return Err(Status::DEVICE_BUSY);
        }
        let cfg = platform.config_space().ok_or(Status::DELETE_PENDING)?;
        gateway.write(cfg, params.space, params.offset, values)?;
        if !semaphore {
            return Ok(());
        }
        for (i, &value) in values.iter().enumerate() {
            if value != 0 {
                continue;
            }
            // Freed on the device: no record at this offset stands, in any
            // handle. Left in another handle, a record would have that
            // handle's cleanup free whoever takes the lock next with the
            // same value (a tool that takes its lock through one handle and
            // gives it back through another, or a fixed lock value).
            for ca in cas.iter_mut().filter_map(|s| s.ca.as_mut()) {
                ca.locks.retain(|l| {
                    let freed = l.offset == at(i);
                    if freed {
                        platform.count_owner(l.pid, false);
                    }
                    !freed
                });
            }
        }
        let Some(ca) = cas.get_mut(id.index as usize).and_then(|s| s.ca.as_mut()) else {
            return Ok(()); // unreachable: looked up above, under the same lock
        };
        for (i, &value) in values.iter().enumerate() {
            if is_new(ca, i, value) {
                // Kept beside any other record at this offset: whether
                // this value stuck (a taken lock keeps its holder's) is
                // the device's to say, and each record is given back
                // only where the device still holds its value. Replacing
                // an earlier writer's record (another process sharing
                // the handle) would leave that writer's lock behind it.
                ca.locks.push(ToolLock { pid: caller, offset: at(i), value });
                platform.count_owner(caller, true);
            }
        }
        Ok(())
    }

    /// `FW_LEASE_CRSPACE`: `take` 1 takes the write lease for this handle
    /// (`STATUS_DEVICE_BUSY` if another holds it), 0 gives it back
    /// (`STATUS_DEVICE_BUSY` while this handle's read-write views hold it;
    /// nothing to do if this handle does not hold it).
    fn lease_request(&mut self, id: CaId, caller: Pid, take: u32) -> Result<()> {
        let rw_views = self.ca(id).map_or(0, |c| c.rw_views);
        let Device { platform, lease, .. } = self;
        match (take, lease.as_mut()) {
            (1, None) => {
                let state = lease.insert(LeaseState {
                    lease: Lease { holder: id, writer_pid: caller },
                    writer_views: 0,
                    taken_by: None,
                });
                retake(platform, state, Some(caller));
            }
            (1, Some(state)) if state.lease.holder == id => {
                retake(platform, state, Some(caller));
                // A named writer without a read-write view gives way to
                // the new taker now, not at some later settle.
                self.settle_lease(id);
            }
            (1, Some(_)) => return Err(Status::DEVICE_BUSY),
            (0, Some(state)) if state.lease.holder == id => {
                if rw_views > 0 {
                    return Err(Status::DEVICE_BUSY);
                }
                retake(platform, state, None);
                *lease = None;
            }
            (0, _) => {}
            _ => return Err(Status::INVALID_PARAMETER),
        }
        Ok(())
    }

    fn query(&self, ca: CaId) -> QueryCrSpaceOut {
        QueryCrSpaceOut {
            bar0_size: self.bars.bar0,
            bar1_size: self.bars.bar1,
            bar2_size: self.bars.bar2,
            writer_pid: self.lease.map_or(0, |l| l.lease.writer_pid),
            // CAST: bounded by the per-handle quota, a u32.
            mapping_count: self.ca(ca).map_or(0, |c| c.mapping_count() as u32),
            reserved: 0,
        }
    }

    fn map(&mut self, id: CaId, requester: Requester, window: CrSpaceWindow, writable: bool) -> Result<u64> {
        let caller = requester.pid;
        let per_handle = self.config.per_handle_quota as usize;
        let per_device = self.config.per_device_quota as usize;
        let live_views = self.live_views;
        let lease = self.lease;
        let Device { platform, cas, .. } = self;
        let Some(ca) =
            cas.get_mut(id.index as usize).filter(|s| s.generation == id.generation).and_then(|s| s.ca.as_mut())
        else {
            return Err(Status::FILE_CLOSED);
        };
        if ca.views.len() >= per_handle || live_views >= per_device {
            return Err(Status::INSUFFICIENT_RESOURCES);
        }
        if writable && lease.is_some_and(|l| l.lease.holder != id) {
            return Err(Status::DEVICE_BUSY);
        }
        // Room in the table before mapping, so that nothing is mapped that
        // could not be recorded.
        ca.views.reserve_one()?;
        let (view, base) = platform.map_view(window.pages(), writable)?;
        // A view the requester cannot address (a 32-bit process's above
        // 4 GiB) is given back: nothing of it is recorded.
        if base.checked_add(window.pages().byte_len()).is_none_or(|end| end > requester.addresses_end) {
            platform.unmap_view(view);
            return Err(Status::INSUFFICIENT_RESOURCES);
        }
        let va = base + u64::from(window.offset_in_page());
        let entry = Entry { key: ViewKey { pid: caller, va }, writable, view };
        if let Err(entry) = ca.views.insert(entry) {
            // A platform that hands out a VA this process already has a view
            // at is broken; give the view back rather than lose track of it.
            platform.unmap_view(entry.view);
            return Err(Status::INSUFFICIENT_RESOURCES);
        }
        self.live_views += 1;
        if writable {
            ca.rw_views += 1;
            let state = self.lease.get_or_insert(LeaseState {
                lease: Lease { holder: id, writer_pid: caller },
                writer_views: 0,
                taken_by: None,
            });
            if state.lease.writer_pid == caller {
                state.writer_views += 1;
            }
        }
        Ok(va)
    }

    fn unmap(&mut self, id: CaId, key: ViewKey) -> Result<()> {
        let Device { platform, cas, live_views, lease, .. } = self;
        let Some(ca) =
            cas.get_mut(id.index as usize).filter(|s| s.generation == id.generation).and_then(|s| s.ca.as_mut())
        else {
            return Err(Status::FILE_CLOSED);
        };
        let entry = ca.views.remove(&key).ok_or(Status::INVALID_PARAMETER)?;
        retire(platform, live_views, lease, id, &mut ca.rw_views, entry);
        self.settle_lease(id);
        Ok(())
    }

    /// After a step that may have taken or ended the lease (`leased`: whether
    /// it was held before): the platform keeps the system awake exactly
    /// while the lease is held.
    fn lease_settled(&mut self, leased: bool) {
        let held = self.lease.is_some();
        if held != leased {
            self.platform.keep_system_awake(held);
        }
    }

    /// A system sleep is about to be asked for (`IRP_MN_QUERY_POWER` for a
    /// sleeping or hibernating state): refused with `STATUS_DEVICE_BUSY`
    /// while the write lease is held, so that a firmware write is not cut in
    /// half; agreed otherwise. Changes nothing.
    pub fn query_system_sleep(&self) -> Result<()> {
        match self.lease {
            Some(_) => Err(Status::DEVICE_BUSY),
            None => Ok(()),
        }
    }

    /// After read-write views of `id` went away: end the lease when its last
    /// one did (unless it was taken with `FW_LEASE_CRSPACE`), or hand
    /// `writer_pid` to a process that still has one.
    fn settle_lease(&mut self, id: CaId) {
        let Some(state) = self.lease else { return };
        if state.lease.holder != id {
            return;
        }
        if let Some(taker) = state.taken_by {
            // Taken: it stays. Once the named writer has no read-write view
            // left here, the taker is named (never an ended process).
            if state.writer_views == 0 && state.lease.writer_pid != taker {
                let ca = self.ca(id);
                // CAST: bounded by the per-handle quota.
                let views =
                    ca.map_or(0, |c| c.views.iter().filter(|e| e.writable && e.key.pid == taker).count()) as u32;
                self.lease = Some(LeaseState {
                    lease: Lease { holder: id, writer_pid: taker },
                    writer_views: views,
                    taken_by: Some(taker),
                });
            }
            return;
        }
        let rw_views = self.ca(id).map_or(0, |c| c.rw_views);
        if rw_views == 0 {
            self.lease = None;
        } else if state.writer_views == 0 {
            let ca = self.ca(id);
            let next = ca.and_then(|c| c.views.iter().filter(|e| e.writable).map(|e| e.key.pid).min());
            if let (Some(pid), Some(ca)) = (next, ca) {
                // CAST: bounded by the per-handle quota.
                let views = ca.views.iter().filter(|e| e.writable && e.key.pid == pid).count() as u32;
                self.lease = Some(LeaseState {
                    lease: Lease { holder: id, writer_pid: pid },
                    writer_views: views,
                    taken_by: None,
                });
            }
        }
    }

    /// `IRP_MJ_CLEANUP`: the last handle to the file object closed (also when
    /// its process was killed). Unmaps every view, each in its owner's
    /// process, and gives the lease back. Later requests answer
    /// `STATUS_FILE_CLOSED`. Returns the views it unmapped.
    pub fn cleanup(&mut self, id: CaId) -> usize {
        let leased = self.lease.is_some();
        let unmapped = self.clean(id);
        self.lease_settled(leased);
        unmapped
    }

    fn clean(&mut self, id: CaId) -> usize {
        let Device { platform, cas, live_views, lease, .. } = self;
        let Some(ca) =
            cas.get_mut(id.index as usize).filter(|s| s.generation == id.generation).and_then(|s| s.ca.as_mut())
        else {
            return 0;
        };
        if ca.cleaned_up {
            return 0;
        }
        ca.cleaned_up = true;
        let mut unmapped = 0;
        ca.views.drain_all(|entry| {
            unmapped += 1;
            retire(platform, live_views, lease, id, &mut ca.rw_views, entry);
        });
        let locks = core::mem::take(&mut ca.locks);
        release_locks(platform, self.path, &locks);
        if let Some(state) = lease.as_mut().filter(|s| s.lease.holder == id) {
            retake(platform, state, None);
        }
        self.settle_lease(id);
        unmapped
    }

    /// `IRP_MJ_CLOSE`: frees the context. On Windows cleanup always came
    /// first and this finds nothing to unmap; a host that sends no cleanup
    /// (Wine) still gets everything released here. Returns the views it had
    /// to unmap itself.
    pub fn close(&mut self, id: CaId) -> usize {
        let leftover = self.cleanup(id);
        if let Some(slot) = self.cas.get_mut(id.index as usize).filter(|s| s.generation == id.generation) {
            if slot.ca.take().is_some() {
                slot.generation = slot.generation.wrapping_add(1);
            }
        }
        leftover
    }

    /// Process-exit notification: every view `pid` owns, in any handle, goes
    /// now (in `pid`'s own context), and with its last read-write view the
    /// lease. Returns the views it unmapped.
    pub fn process_exited(&mut self, pid: Pid) -> usize {
        let leased = self.lease.is_some();
        let mut unmapped = 0;
        for index in 0..self.cas.len() {
            let Device { platform, cas, live_views, lease, .. } = self;
            let slot = &mut cas[index];
            let id = CaId { index: index as u32, generation: slot.generation };
            let Some(ca) = slot.ca.as_mut() else { continue };
            ca.views.drain_where(
                |e| e.key.pid == pid,
                |entry| {
                    unmapped += 1;
                    retire(platform, live_views, lease, id, &mut ca.rw_views, entry);
                },
            );
            let mut mine = Vec::new();
            ca.locks.retain(|l| {
                if l.pid == pid {
                    // A failed push only loses the write-back; the count is
                    // settled below either way.
                    let _ = mine.try_reserve(1).map(|()| mine.push(*l));
                    platform.count_owner(l.pid, false);
                    false
                } else {
                    true
                }
            });
            release_locks_only(platform, self.path, &mine);
            if let Some(state) = lease.as_mut().filter(|s| s.lease.holder == id && s.taken_by == Some(pid)) {
                retake(platform, state, None);
            }
            self.settle_lease(id);
        }
        self.lease_settled(leased);
        unmapped
    }

    /// A view lives, or a context does: a handle is open, or its cleanup ran
    /// but its `IRP_MJ_CLOSE` has not come yet (a request in flight still
    /// references the file object). Agreeing to a removal in that window would
    /// let the close reach a device `REMOVE_DEVICE` already tore down.
    fn busy(&self) -> bool {
        self.live_views > 0 || self.contexts() > 0
    }

    /// `IRP_MN_QUERY_REMOVE_DEVICE`: refused with `STATUS_DEVICE_BUSY` while
    /// a view lives or a context does (see `busy`); agreed otherwise, and then new opens
    /// are refused until [`remove`](Self::remove) or [`cancel_remove`](Self::cancel_remove).
    pub fn query_remove(&mut self) -> Result<()> {
        if self.busy() {
            return Err(Status::DEVICE_BUSY);
        }
        if matches!(self.state, PnpState::Started | PnpState::StopPending) {
            self.state = PnpState::RemovePending;
        }
        Ok(())
    }

    /// `IRP_MN_CANCEL_REMOVE_DEVICE`.
    pub fn cancel_remove(&mut self) {
        if self.state == PnpState::RemovePending {
            self.state = PnpState::Started;
        }
    }

    /// `IRP_MN_QUERY_STOP_DEVICE`: as query-remove.
    pub fn query_stop(&mut self) -> Result<()> {
        if self.busy() {
            return Err(Status::DEVICE_BUSY);
        }
        if self.state == PnpState::Started {
            self.state = PnpState::StopPending;
        }
        Ok(())
    }

    /// `IRP_MN_CANCEL_STOP_DEVICE`.
    pub fn cancel_stop(&mut self) {
        if self.state == PnpState::StopPending {
            self.state = PnpState::Started;
        }
    }

    /// `IRP_MN_STOP_DEVICE`: the BAR is about to be released.
    pub fn stop(&mut self) {
        self.revoke_all();
        self.state = PnpState::Stopped;
    }

    /// `IRP_MN_SURPRISE_REMOVAL`: revokes every view of every handle (each in
    /// its owner's process) and the lease, before the BAR is released.
    /// Returns the views it unmapped.
    pub fn surprise_remove(&mut self) -> usize {
        let unmapped = self.revoke_all();
        if self.state != PnpState::Removed {
            self.state = PnpState::SurpriseRemoved;
        }
        unmapped
    }

    /// `IRP_MN_REMOVE_DEVICE`: revokes whatever is left; nothing is mapped
    /// after it. Returns the views it unmapped.
    pub fn remove(&mut self) -> usize {
        let unmapped = self.revoke_all();
        self.state = PnpState::Removed;
        unmapped
    }

    fn revoke_all(&mut self) -> usize {
        let leased = self.lease.is_some();
        let mut unmapped = 0;
        let Device { platform, cas, live_views, lease, .. } = self;
        for (index, slot) in cas.iter_mut().enumerate() {
            let id = CaId { index: index as u32, generation: slot.generation };
            let Some(ca) = slot.ca.as_mut() else { continue };
            ca.views.drain_all(|entry| {
                unmapped += 1;
                retire(platform, live_views, lease, id, &mut ca.rw_views, entry);
            });
            // The device is going: its locks go with it, unwritten.
            for lock in ca.locks.drain(..) {
                platform.count_owner(lock.pid, false);
            }
        }
        if let Some(state) = lease.as_mut() {
            retake(platform, state, None);
        }
        self.lease = None;
        self.lease_settled(leased);
        unmapped
    }
}

/// Names the process that took the lease with `FW_LEASE_CRSPACE` (or none):
/// the exit filters count it as an owner, so its end reaches the device.
fn retake<P: Platform>(platform: &mut P, state: &mut LeaseState, taker: Option<Pid>) {
    if let Some(old) = state.taken_by {
        platform.count_owner(old, false);
    }
    if let Some(new) = taker {
        platform.count_owner(new, true);
    }
    state.taken_by = taker;
}

/// A handle's tool locks, given back: each released on the device if it
/// still holds the value written, and no longer counted for its process.
fn release_locks<P: Platform>(platform: &mut P, path: Path, locks: &[ToolLock]) {
    for lock in locks {
        platform.count_owner(lock.pid, false);
    }
    release_locks_only(platform, path, locks);
}

/// Writes 0 where each lock still holds its value (best effort: a gateway
/// that cannot be reached, or fails, leaves it).
fn release_locks_only<P: Platform>(platform: &mut P, path: Path, locks: &[ToolLock]) {
    let Path::Gateway(gateway) = path else { return };
    if locks.is_empty() {
        return;
    }
    let Some(cfg) = platform.config_space() else { return };
    for lock in locks {
        // A gateway that failed one release (its semaphore held past the
        // timeout, its flag stuck) would fail the rest the same way, each
        // after its own wait, with the device's lock (and at process exit
        // every device's) held: the locks left are lost either way.
        if gateway.release_if(cfg, space::SEMAPHORE, lock.offset, lock.value).is_err() {
            break;
        }
    }
}

/// Unmaps one view that was taken out of `id`'s table and settles the counts;
/// [`Device::settle_lease`] finishes the lease afterwards.
fn retire<P: Platform>(
    platform: &mut P,
    live_views: &mut usize,
    lease: &mut Option<LeaseState>,
    id: CaId,
    rw_views: &mut u32,
    entry: Entry<P::View>,
) {
    platform.unmap_view(entry.view);
    *live_views -= 1;
    if entry.writable {
        *rw_views -= 1;
        if let Some(state) = lease.as_mut().filter(|s| s.lease.holder == id && s.lease.writer_pid == entry.key.pid) {
            state.writer_views -= 1;
        }
    }
}
