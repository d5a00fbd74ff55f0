//! The simulated platform: BAR 0 is a memfd, each user view a real `mmap` of
//! it, `PROT_READ` for read-only views and `PROT_READ | PROT_WRITE` for
//! read-write ones. It also keeps Driver Verifier's books on views: every
//! view unmapped exactly once, in its owner's process, never after that
//! process ended. A violation panics, as Verifier would bugcheck. "At most
//! once" the types already give: a view is a value the core owns and hands
//! back to [`Platform::unmap_view`], neither `Clone` nor `Copy`. "At least
//! once" the books give: they count each owner's live views, so a view never
//! unmapped is still counted when its process ends or the last handle
//! closes.
//!
//! Fault injection ([`Faults`]) fails the Nth map, the Nth attach to another
//! process for an unmap, or the Nth allocation of the driver's pool
//! ([`DriverPool`]), the way Driver Verifier's low-resources simulation does.

use super::gateway::SimConfig;
use crate::core::gateway::ConfigSpace;
use crate::core::simulated::{cr_dword_bytes, cr_dword_value};
use crate::core::{PageSpan, Pid, Platform, ViewOwners};
use crate::status::{Result, Status};
use memmap2::{MmapOptions, MmapRaw};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::unix::fs::FileExt;

/// BAR 0 as the device sees it: shared memory, read and written with
/// `pread`/`pwrite`, which are coherent with every `MAP_SHARED` view of it.
/// Its dwords are big-endian, as CR space is on the bus: `read_dword` and
/// `write_dword` take and return the device's values.
#[derive(Debug)]
pub(crate) struct Bar {
    mem: File,
    size: u32,
}

impl Bar {
    /// A fresh BAR of `size` bytes, zeroed, private to this process's
    /// simulated HCA.
    pub fn new(size: u32) -> std::io::Result<Bar> {
        let fd = rustix::fs::memfd_create("mlnx_hca-bar0", rustix::fs::MemfdFlags::CLOEXEC)?;
        let mem = File::from(fd);
        mem.set_len(u64::from(size))?;
        Ok(Bar { mem, size })
    }

    /// The BAR kept in the file at `path`, shared with every process that
    /// opens the same file (on tmpfs, e.g. `/dev/shm`, it is shared memory).
    /// A missing or empty file is a device at power-on: it is sized and
    /// `power_on` runs on it, once, under an exclusive `flock` so that two
    /// processes starting together do not both initialise it. A file of any
    /// other size is not a simulated BAR and is refused.
    pub fn open_shared(path: &std::path::Path, size: u32, power_on: impl FnOnce(&Bar)) -> std::io::Result<Bar> {
        use rustix::fs::{flock, FlockOperation};
        let mem = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        flock(&mem, FlockOperation::LockExclusive)?;
        let bar = Bar { mem, size };
        let result = match bar.mem.metadata()?.len() {
            0 => bar.mem.set_len(u64::from(size)).map(|()| power_on(&bar)),
            len if len == u64::from(size) => Ok(()),
            len => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not a simulated BAR 0: {len} bytes, not {size}", path.display()),
            )),
        };
        flock(&bar.mem, FlockOperation::Unlock)?;
        result.map(|()| bar)
    }

    pub fn read_dword(&self, offset: u32) -> u32 {
        self.check(offset);
        let mut b = [0u8; 4];
        self.mem.read_exact_at(&mut b, u64::from(offset)).expect("memfd read");
        cr_dword_value(b)
    }

    pub fn write_dword(&self, offset: u32, value: u32) {
        self.check(offset);
        self.mem.write_all_at(&cr_dword_bytes(value), u64::from(offset)).expect("memfd write");
    }

    fn check(&self, offset: u32) {
        assert!(offset % 4 == 0 && offset < self.size, "device access at {offset:#x} outside BAR 0 or unaligned");
    }

    /// Whether this process has a mapping of this BAR (this very memory
    /// object, by inode) that covers `va`, as `/proc/self/maps` lists it. A
    /// view that was unmapped is gone from there for good: unlike touching
    /// the old address, the answer cannot be fooled by another thread
    /// mapping something else at the same address meanwhile.
    pub fn mapped_at(&self, va: u64) -> bool {
        let inode = rustix::fs::fstat(&self.mem).expect("fstat of the BAR's memfd").st_ino;
        let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
        maps.lines().any(|line| maps_line_covers(line, va, inode))
    }
}

/// Whether one line of `/proc/<pid>/maps` (`start-end perms offset dev inode
/// path`) is a mapping of inode `inode` that covers `va`.
fn maps_line_covers(line: &str, va: u64, inode: u64) -> bool {
    let mut fields = line.split_whitespace();
    let Some((start, end)) = fields.next().and_then(|range| range.split_once('-')) else { return false };
    let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) else { return false };
    let line_inode = fields.nth(3).and_then(|field| field.parse::<u64>().ok());
    (start..end).contains(&va) && line_inode == Some(inode)
}

/// Hashes the simulator's own keys (handle and file ids, pids), which no
/// caller chooses: one multiply per word instead of SipHash's hundred-odd
/// instructions. `finish` rotates the product's well-mixed high bits down,
/// because the table indexes with the low bits.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0xF135_7AEA_2E62_A9C5);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        // CAST: usize is 64 bits at most on the hosts the simulator runs on.
        self.write_u64(n as u64);
    }
}

/// The `HashMap`/`HashSet` state for [`IdHasher`].
pub(crate) type IdHash = BuildHasherDefault<IdHasher>;

/// One user view: the mapping and the process that owns it.
#[derive(Debug)]
pub(crate) struct SimView {
    map: MmapRaw,
    owner: Pid,
    writable: bool,
}

/// Verifier's books on one process.
#[derive(Debug, Default, Clone, Copy)]
struct Owner {
    /// Its views, mapped and not yet unmapped.
    views: usize,
    /// It ended; none of its views may be touched again.
    ended: bool,
}

/// Faults to inject: the Nth call (counting from 1, from the moment they are
/// armed) of each kind fails. Each fires at most once.
#[derive(Debug, Default, Clone, Copy)]
pub struct Faults {
    /// Fail this map (the platform's `MmMapLockedPagesSpecifyCache`): the
    /// request answers `STATUS_INSUFFICIENT_RESOURCES`.
    pub fail_map_at: Option<u64>,
    /// This unmap that runs outside the view's owner (cleanup of a duplicate
    /// closed elsewhere, surprise removal) cannot attach: the owner's address
    /// space is already gone, as after its rundown. The platform then frees
    /// what it holds without a user-mode unmap (on Windows: `IoFreeMdl`
    /// without `MmUnmapLockedPages`); the view is consumed all the same, so
    /// the core's bookkeeping must settle exactly as for a real unmap.
    pub fail_attach_at: Option<u64>,
    /// Fail this allocation of the driver's pool. Counts only when the test
    /// binary installed [`DriverPool`] as its global allocator.
    pub fail_alloc_at: Option<u64>,
}

/// The driver's pool for a test binary, as Driver Verifier's low-resources
/// simulation sees it: install it with
/// `#[global_allocator] static POOL: DriverPool = DriverPool;` and arm
/// [`Faults::fail_alloc_at`]. Only allocations the core makes while the
/// simulator runs a driver routine on this thread count (the I/O manager's,
/// the process manager's and the platform's own do not), so the armed
/// failure lands on the core's `try_reserve`. An allocation the core made
/// infallibly would abort the test: this also proves it has none.
/// Everything else goes to the system allocator unchanged.
pub struct DriverPool;

/// One thread's view of the pool while it runs a driver routine.
#[derive(Clone, Copy, Debug)]
struct PoolThread {
    in_driver: bool,
    allocations: u64,
    fail_at: Option<u64>,
    failed: u64,
}

impl PoolThread {
    const IDLE: PoolThread = PoolThread { in_driver: false, allocations: 0, fail_at: None, failed: 0 };
}

thread_local! {
    // Const-initialised and without `Drop`: safe to touch from the allocator.
    static POOL: Cell<PoolThread> = const { Cell::new(PoolThread::IDLE) };
}

impl DriverPool {
    /// Counts an allocation made in a driver routine; `false`: fail it.
    fn admit() -> bool {
        POOL.try_with(|cell| {
            let mut pool = cell.get();
            if !pool.in_driver {
                return true;
            }
            pool.allocations += 1;
            let admit = pool.fail_at != Some(pool.allocations);
            if !admit {
                pool.failed += 1;
            }
            cell.set(pool);
            admit
        })
        .unwrap_or(true)
    }
}

// SAFETY: every allocation is either refused with a null pointer (which
// `GlobalAlloc` allows) or served by `System` with the caller's arguments, and
// every pointer given back goes to `System`, which allocated it.
unsafe impl GlobalAlloc for DriverPool {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::admit() {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size), passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::admit() {
            return std::ptr::null_mut();
        }
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A refused growth leaves the old block as it was, as `realloc` must.
        if !Self::admit() {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` came from `System` through this allocator with `layout`;
        // the caller upholds the rest of `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// A driver routine running on this thread; if it unwinds (a Verifier panic),
/// the thread stops counting as the driver's.
#[must_use = "hand it back to leave_driver"]
pub(crate) struct DriverRoutine(());

impl Drop for DriverRoutine {
    fn drop(&mut self) {
        POOL.with(|cell| cell.set(PoolThread::IDLE));
    }
}

/// While alive, allocations on this thread are not the driver's (the
/// platform's own work inside a driver routine: the OS's, not the pool's).
struct OutsideDriver(bool);

impl OutsideDriver {
    fn new() -> Self {
        OutsideDriver(POOL.with(|cell| {
            let mut pool = cell.get();
            let was = std::mem::replace(&mut pool.in_driver, false);
            cell.set(pool);
            was
        }))
    }
}

impl Drop for OutsideDriver {
    fn drop(&mut self) {
        let was = self.0;
        POOL.with(|cell| {
            let mut pool = cell.get();
            pool.in_driver = was;
            cell.set(pool);
        });
    }
}

#[derive(Debug)]
pub(crate) struct SimPlatform {
    bar: std::sync::Arc<Bar>,
    /// The process whose context the driver runs in right now.
    context: Pid,
    /// Verifier's books, by process.
    owners: HashMap<Pid, Owner, IdHash>,
    /// Views mapped and not yet unmapped, all processes; the read-write ones.
    live: usize,
    writable: usize,
    attaches: u64,
    /// Calls since the faults were armed: maps, unmaps that had to attach,
    /// driver pool allocations.
    maps: u64,
    attach_calls: u64,
    allocations: u64,
    faults: Faults,
    /// Injected faults that fired since they were armed.
    fired: u64,
    /// Views released without a user-mode unmap (their owner could not be attached).
    orphaned: u64,
    /// Which processes may own views, kept as the Windows layer keeps it for
    /// its lock-free process-exit check.
    owner_filter: ViewOwners,
    /// The system is kept awake (`PoRegisterSystemState`): the lease is held.
    awake: bool,
    /// A ConnectX-4's configuration space (its gateway); `None` for the
    /// ConnectX-3.
    config: Option<SimConfig>,
}

impl SimPlatform {
    pub fn new(bar: std::sync::Arc<Bar>) -> Self {
        SimPlatform {
            bar,
            context: 0,
            owners: HashMap::default(),
            live: 0,
            writable: 0,
            attaches: 0,
            maps: 0,
            attach_calls: 0,
            allocations: 0,
            faults: Faults::default(),
            fired: 0,
            orphaned: 0,
            owner_filter: ViewOwners::new(),
            awake: false,
            config: None,
        }
    }

    /// The platform of a device whose CR space is behind the gateway.
    pub fn with_config(bar: std::sync::Arc<Bar>, config: SimConfig) -> Self {
        SimPlatform { config: Some(config), ..SimPlatform::new(bar) }
    }

    /// Whether `pid` may own views by the lock-free filter (never `false`
    /// for a process that owns one).
    pub fn may_own_views(&self, pid: Pid) -> bool {
        self.owner_filter.may_own(pid)
    }

    /// Whether the driver asked to keep the system awake.
    pub fn keeps_system_awake(&self) -> bool {
        self.awake
    }

    /// The I/O manager sets the context before each call into the driver.
    pub fn set_context(&mut self, pid: Pid) {
        self.context = pid;
    }

    pub fn live_views(&self) -> usize {
        self.live
    }

    pub fn views_of(&self, pid: Pid) -> usize {
        self.owners.get(&pid).map_or(0, |o| o.views)
    }

    pub fn writable_views(&self) -> usize {
        self.writable
    }

    pub fn attaches(&self) -> u64 {
        self.attaches
    }

    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
        self.maps = 0;
        self.attach_calls = 0;
        self.allocations = 0;
        self.fired = 0;
    }

    pub fn faults_fired(&self) -> u64 {
        self.fired
    }

    pub fn orphaned(&self) -> u64 {
        self.orphaned
    }

    pub fn driver_allocations(&self) -> u64 {
        self.allocations
    }

    /// The simulator enters a driver routine on this thread: from now on its
    /// allocations are the driver pool's (see [`DriverPool`]).
    pub fn enter_driver(&mut self) -> DriverRoutine {
        let pool = PoolThread {
            in_driver: true,
            allocations: self.allocations,
            fail_at: self.faults.fail_alloc_at,
            failed: 0,
        };
        POOL.with(|cell| cell.set(pool));
        DriverRoutine(())
    }

    /// The driver routine returned: its pool counts are the device's.
    pub fn leave_driver(&mut self, routine: DriverRoutine) {
        let pool = POOL.with(|cell| cell.replace(PoolThread::IDLE));
        self.allocations = pool.allocations;
        self.fired += pool.failed;
        drop(routine);
    }

    /// `pid` ended: no view of it may exist now or be touched later.
    pub fn process_ended(&mut self, pid: Pid) {
        let owner = self.owners.entry(pid).or_default();
        let left = owner.views;
        assert!(left == 0, "DRIVER VERIFIER: {left} view(s) outlived their process {pid}");
        owner.ended = true;
    }

    /// A pid is being used again by a new process.
    pub fn process_started(&mut self, pid: Pid) {
        if let Some(owner) = self.owners.get_mut(&pid) {
            owner.ended = false;
        }
    }
}

impl Platform for SimPlatform {
    type View = SimView;

    fn map_view(&mut self, span: PageSpan, writable: bool) -> Result<(SimView, u64)> {
        let _os = OutsideDriver::new();
        self.maps += 1;
        if self.faults.fail_map_at == Some(self.maps) {
            self.fired += 1;
            return Err(Status::INSUFFICIENT_RESOURCES);
        }
        let mut options = MmapOptions::new();
        // CAST: a span of a u32-sized BAR fits usize on a 64-bit host.
        options.offset(span.byte_offset()).len(span.byte_len() as usize);
        let map = if writable { options.map_raw(&self.bar.mem) } else { options.map_raw_read_only(&self.bar.mem) };
        let map = map.map_err(|_| Status::INSUFFICIENT_RESOURCES)?;
        // CAST: the address is what the "user" gets back as its VA.
        let va = map.as_ptr() as u64;
        self.owners.entry(self.context).or_default().views += 1;
        self.owner_filter.add(self.context);
        self.live += 1;
        self.writable += usize::from(writable);
        Ok((SimView { map, owner: self.context, writable }, va))
    }

    fn config_space(&mut self) -> Option<&mut dyn ConfigSpace> {
        self.config.as_mut().map(|c| c as &mut dyn ConfigSpace)
    }

    fn count_owner(&mut self, pid: Pid, add: bool) {
        if add {
            self.owner_filter.add(pid);
        } else {
            self.owner_filter.remove(pid);
        }
    }

    fn unmap_view(&mut self, view: SimView) {
        let _os = OutsideDriver::new();
        let owner = self.owners.entry(view.owner).or_default();
        assert!(!owner.ended, "DRIVER VERIFIER: unmapping a view of process {} after it ended", view.owner);
        assert!(owner.views > 0, "DRIVER VERIFIER: unmapping a view of process {}, which has none", view.owner);
        owner.views -= 1;
        self.owner_filter.remove(view.owner);
        self.live -= 1;
        self.writable -= usize::from(view.writable);
        // KeStackAttachProcess when the driver runs in another process.
        if view.owner != self.context {
            self.attach_calls += 1;
            if self.faults.fail_attach_at == Some(self.attach_calls) {
                // The owner's address space is gone: nothing to unmap there,
                // only the platform's own hold to free (below).
                self.fired += 1;
                self.orphaned += 1;
            } else {
                self.attaches += 1;
            }
        }
        // munmap, in the owner's (attached) context. After a failed attach the
        // host mapping still goes: in the simulation it is the platform's hold.
        drop(view.map);
    }

    fn keep_system_awake(&mut self, awake: bool) {
        // Verifier's view: a registration is never made twice, nor undone
        // without having been made.
        assert_ne!(self.awake, awake, "DRIVER VERIFIER: PoRegisterSystemState/PoUnregisterSystemState out of pairs");
        self.awake = awake;
    }
}

#[cfg(test)]
mod tests {
    use super::maps_line_covers;

    #[test]
    fn a_maps_line_covers_its_own_range_of_its_own_inode_only() {
        let line =
            "7f0000001000-7f0000003000 r--s 00000000 00:01 4242                       /memfd:mlnx_hca-bar0 (deleted)";
        assert!(maps_line_covers(line, 0x7f00_0000_1000, 4242));
        assert!(maps_line_covers(line, 0x7f00_0000_2ffc, 4242));
        assert!(!maps_line_covers(line, 0x7f00_0000_3000, 4242), "the end is exclusive");
        assert!(!maps_line_covers(line, 0x7f00_0000_0ffc, 4242));
        assert!(!maps_line_covers(line, 0x7f00_0000_1000, 4243), "another memory object at the same address");
        assert!(!maps_line_covers("7f0000001000-7f0000003000 rw-p 00000000 00:00 0", 0x7f00_0000_1000, 4242));
        assert!(!maps_line_covers("garbage", 0, 0));
    }
}
