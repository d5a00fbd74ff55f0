//! [`WinPlatform`]: carries out the core's map and unmap decisions with real
//! kernel memory-manager calls. One owning type per resource, each released
//! in `Drop`, built in this order for a view:
//!
//! - [`Bar`]: BAR 0, mapped once at start: [`IoSpaceMapping`] (the HCA's
//!   registers, `MmMapIoSpaceEx` read-write non-cached: the driver's own
//!   mapping, never protected, never given out) or [`SimulatedBar`] (the root
//!   test device's 1 MiB of page-aligned nonpaged pool). Outlives every view.
//! - [`ViewMdl`]: one MDL per view over the pages of its window:
//!   `MmAllocateMdlForIoSpace` for device memory, a probed and locked pool MDL
//!   for the simulated BAR.
//! - [`ReadOnlyAlias`] (read-only views only): that MDL's one system
//!   mapping, set read-only with `MmProtectMdlSystemAddress`, and set back
//!   to read-write before it is unmapped.
//! - [`ProcessRef`]: the process the view is mapped into.
//! - [`UserView`]: `MmMapLockedPagesSpecifyCache(UserMode)` of that MDL in the
//!   caller's thread, through the C shim's `__try/__except`, read-only
//!   (`MdlMappingNoWrite`) unless the view is read-write; unmapped in its
//!   owner process (attaching when needed) before the MDL is freed.
//!
//! One MDL carries both mappings of a read-only view (one user mapping and
//! one system mapping per MDL is what the memory manager allows): one set
//! of system PTEs per read-only view, none per read-write view.
//!
//! A gateway device (ConnectX-4 and later) has no BAR here at all: the
//! platform holds its configuration space instead (`config.rs`).
//!
//! Everything here runs under the device's fast mutex (IRQL APC_LEVEL), in
//! the thread of the request (map) or of cleanup/close/PnP/process exit
//! (unmap).

use super::alloc;
use super::config::ConfigAccess;
use super::kernel::{self, Attached, ProcessRef, SystemAwake, FALSE};
use super::log::trace;
use crate::core::gateway::ConfigSpace;
use crate::core::simulated::{cr_dword_bytes, SIM_BAR0_SIZE, SIM_DEVICE_ID, SIM_DEVICE_ID_OFFSET};
use crate::core::{PageSpan, Platform, ViewOwners, PAGE_SIZE};
use crate::status::{Result, Status};
use ::core::ffi::c_void;
use ::core::ptr::{self, NonNull};
use wdk_sys::ntddk::{
    IoAllocateMdl, IoFreeMdl, MmAllocateMdlForIoSpace, MmMapLockedPagesSpecifyCache, MmProtectMdlSystemAddress,
    MmUnlockPages, MmUnmapIoSpace, MmUnmapLockedPages,
};
use wdk_sys::{
    _LOCK_OPERATION, _MEMORY_CACHING_TYPE, _MM_PAGE_PRIORITY, _MODE, KAPC_STATE, MDL, MEMORY_CACHING_TYPE,
    MM_PHYSICAL_ADDRESS_LIST, NTSTATUS, PHYSICAL_ADDRESS, PMDL, PVOID, SIZE_T, ULONG,
};

// ---------------------------------------------------------------- the C shim

unsafe extern "C" {
    // src/windows/shim.c: the two memory-manager calls that report failure by
    // raising an exception, which Rust cannot catch, each inside __try/__except.

    /// `MmMapLockedPagesSpecifyCache(mdl, UserMode, cache, NULL, FALSE,
    /// priority)`; `*user_va` is the mapping or NULL. Returns the exception
    /// code, STATUS_INSUFFICIENT_RESOURCES for a NULL result, or success.
    fn mlnx_hca_map_user(mdl: PMDL, cache: MEMORY_CACHING_TYPE, priority: ULONG, user_va: *mut PVOID) -> NTSTATUS;

    /// `MmProbeAndLockPages(mdl, KernelMode, operation)`; the exception code
    /// or success.
    fn mlnx_hca_probe_and_lock(mdl: PMDL, operation: wdk_sys::LOCK_OPERATION) -> NTSTATUS;
}

// ---------------------------------------------------------------- the simulated HCA

// The contract's simulated HCA: crate::core::simulated.

// ---------------------------------------------------------------- BAR 0

/// BAR 0 of a started device: the one shared system mapping every view's MDL
/// is built over. The driver's own mapping: never protected, never given out.
pub(crate) enum Bar {
    /// A real HCA: device memory.
    Hardware(IoSpaceMapping),
    /// The root-enumerated test device: nonpaged pool.
    Simulated(SimulatedBar),
}

impl Bar {
    fn system_va(&self) -> *mut u8 {
        match self {
            Bar::Hardware(m) => m.va.as_ptr(),
            Bar::Simulated(s) => s.va.as_ptr(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Bar::Hardware(m) => m.len,
            Bar::Simulated(s) => s.len,
        }
    }

    /// Device memory is mapped non-cached everywhere; RAM keeps the cached
    /// attribute its pool mapping has (mapping RAM with a conflicting cache
    /// type is what the memory manager and Driver Verifier forbid).
    fn cache_type(&self) -> MEMORY_CACHING_TYPE {
        match self {
            Bar::Hardware(_) => _MEMORY_CACHING_TYPE::MmNonCached,
            Bar::Simulated(_) => _MEMORY_CACHING_TYPE::MmCached,
        }
    }

    /// Whether `[va, va + len)` overlaps the shared mapping.
    fn overlaps(&self, va: *const c_void, len: usize) -> bool {
        let (start, end) = (self.system_va() as usize, self.system_va() as usize + self.len());
        let (a, b) = (kernel::addr(va), kernel::addr(va).saturating_add(len));
        a < end && start < b
    }
}

/// BAR 0 of a real HCA mapped into system space, read-write and non-cached
/// (`MmMapIoSpaceEx(PAGE_READWRITE | PAGE_NOCACHE)`; `MmMapIoSpace(MmNonCached)`
/// in the `legacy-pool` build); `MmUnmapIoSpace` on drop.
pub(crate) struct IoSpaceMapping {
    va: NonNull<u8>,
    len: usize,
    physical: i64,
}

impl IoSpaceMapping {
    /// Maps `len` bytes of device memory at `physical` (from the translated
    /// `CmResourceTypeMemory` resource).
    ///
    /// IRQL: <= DISPATCH_LEVEL.
    pub(crate) fn new(physical: i64, len: usize) -> Result<Self> {
        if len == 0 || physical % i64::from(PAGE_SIZE) != 0 {
            return Err(Status::INSUFFICIENT_RESOURCES);
        }
        let pa = PHYSICAL_ADDRESS { QuadPart: physical };
        // CAST: usize and SIZE_T are the same width on x64.
        let bytes = len as SIZE_T;
        #[cfg(not(feature = "legacy-pool"))]
        // SAFETY: maps a device-memory range the PnP manager assigned to this
        // device; returns null on failure.
        let va = unsafe { wdk_sys::ntddk::MmMapIoSpaceEx(pa, bytes, wdk_sys::PAGE_READWRITE | wdk_sys::PAGE_NOCACHE) };
        #[cfg(feature = "legacy-pool")]
        // SAFETY: as above (MmMapIoSpace is the pre-Windows 10 routine).
        let va = unsafe { wdk_sys::ntddk::MmMapIoSpace(pa, bytes, _MEMORY_CACHING_TYPE::MmNonCached) };
        let va = NonNull::new(va.cast::<u8>()).ok_or(Status::INSUFFICIENT_RESOURCES)?;
        Ok(IoSpaceMapping { va, len, physical })
    }
}

impl Drop for IoSpaceMapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made. INVARIANT: no view's
        // MDL refers to it any more (the core revoked every view first).
        unsafe { MmUnmapIoSpace(self.va.as_ptr().cast(), self.len as SIZE_T) };
    }
}

/// The simulated HCA's BAR 0: 1 MiB of nonpaged pool, zeroed except the
/// device-identification dword, stored big-endian as CR space is. Page
/// aligned on every host: the allocation is a page larger than the BAR and
/// the BAR starts at its first page boundary (Windows aligns pool blocks of
/// a page or more; Wine's pool is its heap and does not), so a view's first
/// and last pages never show the neighbouring pool. Freed on drop.
pub(crate) struct SimulatedBar {
    /// The BAR: page aligned, `len` bytes.
    va: NonNull<u8>,
    len: usize,
    /// What the allocator returned, to free.
    block: NonNull<u8>,
}

impl SimulatedBar {
    /// IRQL: <= DISPATCH_LEVEL.
    pub(crate) fn new() -> Result<Self> {
        let len = SIM_BAR0_SIZE as usize;
        let page = PAGE_SIZE as usize;
        let block = NonNull::new(alloc::allocate(len + page)).ok_or(Status::INSUFFICIENT_RESOURCES)?;
        let skip = block.as_ptr().align_offset(page);
        // The first page boundary lies within the first page of the block, so
        // the BAR ends inside it.
        let va = NonNull::new(block.as_ptr().wrapping_add(skip)).ok_or(Status::INSUFFICIENT_RESOURCES)?;
        let bar = SimulatedBar { va, len, block };
        // SAFETY: `va..va + len` lies inside the fresh block (skip < page), ours alone.
        unsafe { ptr::write_bytes(bar.va.as_ptr(), 0, len) };
        let id = bar.va.as_ptr().wrapping_add(SIM_DEVICE_ID_OFFSET as usize).cast::<[u8; 4]>();
        // SAFETY: the offset is inside the BAR and dword aligned (the BAR is
        // page aligned).
        unsafe { id.write_volatile(cr_dword_bytes(SIM_DEVICE_ID)) };
        Ok(bar)
    }
}

impl Drop for SimulatedBar {
    fn drop(&mut self) {
        // SAFETY: the allocation made in `new`, freed once. INVARIANT as for
        // IoSpaceMapping: no view refers to it any more.
        unsafe { alloc::free(self.block.as_ptr()) };
    }
}

// ---------------------------------------------------------------- MDLs

/// An MDL from `IoAllocateMdl`, freed with `IoFreeMdl`.
pub(crate) struct Mdl(NonNull<MDL>);

impl Mdl {
    /// An MDL describing `[va, va + len)`, not yet built.
    fn allocate(va: *mut u8, len: usize) -> Result<Self> {
        // CAST: a span of a BAR smaller than 4 GiB fits ULONG.
        let length = u32::try_from(len).map_err(|_| Status::INVALID_PARAMETER)?;
        // SAFETY: IoAllocateMdl only records the range; it touches no memory.
        let mdl = unsafe { IoAllocateMdl(va.cast(), length, FALSE, FALSE, ptr::null_mut()) };
        NonNull::new(mdl).map(Mdl).ok_or(Status::INSUFFICIENT_RESOURCES)
    }

    fn as_ptr(&self) -> PMDL {
        self.0.as_ptr()
    }
}

impl Drop for Mdl {
    fn drop(&mut self) {
        // SAFETY: allocated by IoAllocateMdl, freed once, after every mapping
        // made from it is gone (the owners drop those first).
        unsafe { IoFreeMdl(self.as_ptr()) };
    }
}

/// An MDL whose pages are locked with `MmProbeAndLockPages(KernelMode)`;
/// `MmUnlockPages` on drop. Used only for RAM (the simulated BAR): probing
/// reads each page, which device registers must not see.
pub(crate) struct LockedMdl {
    mdl: Mdl,
}

impl LockedMdl {
    fn probe(va: *mut u8, len: usize, writable: bool) -> Result<Self> {
        let mdl = Mdl::allocate(va, len)?;
        let operation = if writable { _LOCK_OPERATION::IoModifyAccess } else { _LOCK_OPERATION::IoReadAccess };
        // SAFETY: kernel-mode probe of resident pool memory of ours; the shim
        // turns the exception a failure raises into a status.
        let status = unsafe { mlnx_hca_probe_and_lock(mdl.as_ptr(), operation) };
        if !kernel::nt_success(status) {
            trace!("MmProbeAndLockPages failed: {:#x}", status);
            return Err(Status::INSUFFICIENT_RESOURCES);
        }
        Ok(LockedMdl { mdl })
    }
}

impl Drop for LockedMdl {
    fn drop(&mut self) {
        // SAFETY: the pages were locked by `probe`; unlocked once, before the
        // MDL itself is freed (field drop after this).
        unsafe { MmUnlockPages(self.mdl.as_ptr()) };
    }
}

/// An MDL from `MmAllocateMdlForIoSpace`: device memory described by
/// physical address, built without touching it; `IoFreeMdl` on drop.
pub(crate) struct IoSpaceMdl(NonNull<MDL>);

impl IoSpaceMdl {
    fn new(physical: i64, len: usize) -> Result<Self> {
        let range = MM_PHYSICAL_ADDRESS_LIST {
            PhysicalAddress: PHYSICAL_ADDRESS { QuadPart: physical },
            // CAST: same width on x64.
            NumberOfBytes: len as SIZE_T,
        };
        let mut mdl: PMDL = ptr::null_mut();
        // SAFETY: one page-aligned range of this device's own BAR (the start
        // and the length are whole pages); the routine only builds the MDL.
        let status = unsafe { MmAllocateMdlForIoSpace((&raw const range).cast_mut(), 1, &raw mut mdl) };
        if !kernel::nt_success(status) {
            trace!("MmAllocateMdlForIoSpace failed: {:#x}", status);
            return Err(Status::INSUFFICIENT_RESOURCES);
        }
        NonNull::new(mdl).map(IoSpaceMdl).ok_or(Status::INSUFFICIENT_RESOURCES)
    }
}

impl Drop for IoSpaceMdl {
    fn drop(&mut self) {
        // SAFETY: allocated by MmAllocateMdlForIoSpace, whose documentation
        // says to free it with IoFreeMdl; once, after its mappings are gone.
        unsafe { IoFreeMdl(self.0.as_ptr()) };
    }
}

/// The one MDL of a view: the pages of its window, which may be mapped once
/// into the caller's process and, for a read-only view, once into system
/// space. Device memory is described by physical address
/// (`MmAllocateMdlForIoSpace`, the documented MDL for device memory, Windows
/// 8 and later: the memory is never touched); the simulated BAR's RAM by a
/// probe-and-lock of the pool pages. Not `MmBuildMdlForNonPagedPool`: such an
/// MDL's only system address is the memory it was built over (the shared BAR
/// mapping, which must not be protected), and `MmProtectMdlSystemAddress`
/// refuses it.
pub(crate) enum ViewMdl {
    Device(IoSpaceMdl),
    Ram(LockedMdl),
}

impl ViewMdl {
    fn new(bar: &Bar, offset: usize, len: usize, writable: bool) -> Result<Self> {
        Ok(match bar {
            // CAST: offset < 4 GiB, a BAR offset.
            Bar::Hardware(m) => ViewMdl::Device(IoSpaceMdl::new(m.physical + offset as i64, len)?),
            Bar::Simulated(s) => ViewMdl::Ram(LockedMdl::probe(s.va.as_ptr().wrapping_add(offset), len, writable)?),
        })
    }

    fn as_ptr(&self) -> PMDL {
        match self {
            ViewMdl::Device(m) => m.0.as_ptr(),
            ViewMdl::Ram(m) => m.mdl.as_ptr(),
        }
    }
}

// ---------------------------------------------------------------- the views

/// The system-space mapping of a read-only view's MDL, set read-only with
/// `MmProtectMdlSystemAddress(PAGE_READONLY)`, so that every mapping of a
/// read-only view is read-only (the contract). Nothing reads through it.
///
/// Drop: the protection is set back to `PAGE_READWRITE` first, as the memory
/// manager requires of a mapping before it is freed (WRK `iosup.c`: "the
/// caller must make this MDL mapping readwrite before finally freeing (or
/// reusing) it"; unmapping a protected one leaks its entry in the protected
/// PTE list, whose protection would then be applied to whatever reuses the
/// addresses), then `MmUnmapLockedPages`.
///
/// INVARIANT: `mdl` is the view's [`ViewMdl`], which outlives this mapping
/// ([`WinView`] drops it after).
pub(crate) struct ReadOnlyAlias {
    va: NonNull<c_void>,
    mdl: PMDL,
}

impl ReadOnlyAlias {
    /// IRQL: <= APC_LEVEL.
    fn new(bar: &Bar, mdl: &ViewMdl, len: usize) -> Result<Self> {
        // CAST: MM_PAGE_PRIORITY values are small non-negative integers.
        let priority = _MM_PAGE_PRIORITY::NormalPagePriority as ULONG | wdk_sys::MdlMappingNoExecute;
        // SAFETY: a locked / I/O-space MDL without a system mapping yet (its only one); kernel mode with
        // BugCheckOnFailure FALSE returns NULL on failure instead of raising.
        let va = unsafe {
            MmMapLockedPagesSpecifyCache(
                mdl.as_ptr(),
                _MODE::KernelMode as i8,
                bar.cache_type(),
                ptr::null_mut(),
                0,
                priority,
            )
        };
        let Some(va) = NonNull::new(va) else {
            trace!("read-only alias: MmMapLockedPagesSpecifyCache(KernelMode) failed");
            return Err(Status::INSUFFICIENT_RESOURCES);
        };
        // INVARIANT: never protect the shared BAR mapping. A fresh kernel
        // mapping of these MDLs is new system PTEs; refuse otherwise.
        if bar.overlaps(va.as_ptr(), len) {
            trace!("read-only alias: the memory manager returned the shared BAR mapping; refusing to protect it");
            // SAFETY: the mapping just made, never protected; unmapped once.
            unsafe { MmUnmapLockedPages(va.as_ptr(), mdl.as_ptr()) };
            return Err(Status::INSUFFICIENT_RESOURCES);
        }
        // SAFETY: the MDL was just mapped to system space by MmMapLockedPagesSpecifyCache (its MappedSystemVa is
        // `va`); this changes the protection of those PTEs only.
        let status = unsafe { MmProtectMdlSystemAddress(mdl.as_ptr(), wdk_sys::PAGE_READONLY) };
        if !kernel::nt_success(status) {
            trace!("MmProtectMdlSystemAddress(PAGE_READONLY) failed: {:#x}", status);
            // SAFETY: as in the refusal above: unprotected, unmapped once.
            unsafe { MmUnmapLockedPages(va.as_ptr(), mdl.as_ptr()) };
            return Err(Status::INSUFFICIENT_RESOURCES);
        }
        Ok(ReadOnlyAlias { va, mdl: mdl.as_ptr() })
    }
}

impl Drop for ReadOnlyAlias {
    fn drop(&mut self) {
        // SAFETY: the mapping `new` protected; back to read-write before it
        // is freed. IRQL <= DISPATCH_LEVEL.
        let status = unsafe { MmProtectMdlSystemAddress(self.mdl, wdk_sys::PAGE_READWRITE) };
        if !kernel::nt_success(status) {
            trace!("MmProtectMdlSystemAddress(PAGE_READWRITE) failed: {:#x}", status);
        }
        // SAFETY: the kernel mapping made in `new` from this MDL, unmapped
        // once, before the MDL is freed (INVARIANT).
        unsafe { MmUnmapLockedPages(self.va.as_ptr(), self.mdl) };
    }
}

/// A view of BAR pages in a user process: its user address, the MDL it was
/// mapped from, and the process it lives in.
///
/// Drop: attaches to the owner process if the thread runs elsewhere
/// (cleanup after `DuplicateHandle`, surprise removal in a system thread),
/// `MmUnmapLockedPages` there, detaches; then drops the process reference.
///
/// INVARIANT: `mdl` is the view's [`ViewMdl`], which outlives this mapping.
pub(crate) struct UserView {
    va: NonNull<c_void>,
    mdl: PMDL,
    owner: ProcessRef,
}

impl UserView {
    /// Maps `mdl` into the current process (the requester's: the core maps
    /// only for a request running in its own process), read-only
    /// (`MdlMappingNoWrite`) unless `writable`, never executable.
    ///
    /// IRQL: <= APC_LEVEL.
    fn map(mdl: &ViewMdl, cache: MEMORY_CACHING_TYPE, writable: bool) -> Result<Self> {
        // CAST: MM_PAGE_PRIORITY values are small non-negative integers.
        let mut priority = _MM_PAGE_PRIORITY::NormalPagePriority as ULONG | wdk_sys::MdlMappingNoExecute;
        if !writable {
            priority |= wdk_sys::MdlMappingNoWrite;
        }
        let owner = ProcessRef::current();
        let mut user_va: PVOID = ptr::null_mut();
        // SAFETY: a built MDL over BAR pages, mapped into the current process at IRQL <= APC_LEVEL; the shim catches
        // the exception a failure raises.
        let status = unsafe { mlnx_hca_map_user(mdl.as_ptr(), cache, priority, &raw mut user_va) };
        if !kernel::nt_success(status) {
            trace!("MmMapLockedPagesSpecifyCache(UserMode) failed: {:#x}", status);
            return Err(Status::INSUFFICIENT_RESOURCES);
        }
        let va = NonNull::new(user_va).ok_or(Status::INSUFFICIENT_RESOURCES)?;
        Ok(UserView { va, mdl: mdl.as_ptr(), owner })
    }

    fn va(&self) -> u64 {
        // CAST: a pointer is 64 bits on x64.
        kernel::addr(self.va.as_ptr()) as u64
    }
}

impl Drop for UserView {
    fn drop(&mut self) {
        let mut apc = KAPC_STATE::default();
        let _attached = Attached::to(&self.owner, &mut apc);
        // Why this is sound:  APC_LEVEL (a user-space mapping). SAFETY: the mapping `map` made from this MDL in the
        // owner process, whose address space we are in now (attached or already there); unmapped once, before the
        // MDL is freed (INVARIANT). INVARIANT: the owner has not finished exiting (the process-exit notification,
        // which runs before its address space is torn down, removes its views first).
        // SAFETY: the invariants stated just above.
        unsafe { MmUnmapLockedPages(self.va.as_ptr(), self.mdl) };
    }
}

/// One live view as the core keeps it. Fields drop in order: the user
/// mapping (in its owner), the read-only system mapping, then the MDL both
/// were made from.
pub(crate) struct WinView {
    _user: UserView,
    _alias: Option<ReadOnlyAlias>,
    _mdl: ViewMdl,
    /// `user`'s owner, as counted in the exit filters.
    owner_pid: u32,
}

// ---------------------------------------------------------------- the platform

/// The Windows [`Platform`]: BAR 0 of a started device, the views of it, and
/// the busy state that keeps the system awake while the lease is held; or,
/// for a gateway device, its configuration space.
pub(crate) struct WinPlatform {
    bar: Option<Bar>,
    config: Option<ConfigAccess>,
    awake: Option<SystemAwake>,
    /// `Parameters\KeepSystemAwake` as read at the last start.
    may_keep_awake: bool,
    /// The device's exit filter, in its extension (which outlives this
    /// platform: the platform is part of the extension's core).
    owners: NonNull<ViewOwners>,
}

// SAFETY: `owners` points to atomics in the device extension, shared by
// design; the rest is owned data moved with the core under the device lock.
unsafe impl Send for WinPlatform {}

impl WinPlatform {
    /// A platform whose views are counted in `owners` (the device's filter)
    /// and in [`VIEW_OWNERS`](super::VIEW_OWNERS).
    ///
    /// # Safety
    /// `owners` stays valid for as long as the platform lives.
    pub(crate) const unsafe fn new(owners: NonNull<ViewOwners>) -> Self {
        WinPlatform { bar: None, config: None, awake: None, may_keep_awake: true, owners }
    }

    /// Start: BAR 0 is mapped.
    pub(crate) fn set_bar(&mut self, bar: Bar) {
        self.bar = Some(bar);
    }

    /// Stop, surprise removal, removal: hands BAR 0 back to be released.
    /// INVARIANT: the caller made the core revoke every view first.
    pub(crate) fn take_bar(&mut self) -> Option<Bar> {
        self.bar.take()
    }

    /// The low 16 bits of CR space's dword at 0xF0014 (the hardware id),
    /// read through BAR 0 (CR space is big-endian); 0 without a BAR.
    pub(crate) fn bar_hw_id(&self) -> u32 {
        let Some(bar) = self.bar.as_ref() else { return 0 };
        if bar.len() < SIM_DEVICE_ID_OFFSET as usize + 4 {
            return 0;
        }
        let id = bar.system_va().wrapping_add(SIM_DEVICE_ID_OFFSET as usize).cast::<u32>();
        // Read once, as the device register it is.
        // SAFETY: a dword-aligned offset inside the mapped BAR (checked
        // above; the BAR is page aligned).
        let raw = unsafe { id.read_volatile() };
        u32::from_be(raw) & 0xFFFF
    }

    /// Start: whether a held lease may keep the system awake
    /// (`Parameters\KeepSystemAwake`).
    pub(crate) fn set_may_keep_awake(&mut self, may: bool) {
        self.may_keep_awake = may;
    }

    /// Start of a gateway device: its configuration space.
    pub(crate) fn set_config(&mut self, config: ConfigAccess) {
        self.config = Some(config);
    }

    /// Stop, surprise removal, removal: hands the configuration space back
    /// (the bus interface is dereferenced when it drops). The core reaches
    /// the gateway only under the device lock, which the caller holds.
    pub(crate) fn take_config(&mut self) -> Option<ConfigAccess> {
        self.config.take()
    }

    fn owners(&self) -> [&ViewOwners; 2] {
        // SAFETY: valid for the platform's life (`new`'s contract).
        [unsafe { self.owners.as_ref() }, &super::VIEW_OWNERS]
    }
}

impl Platform for WinPlatform {
    type View = WinView;

    fn map_view(&mut self, span: PageSpan, writable: bool) -> Result<(WinView, u64)> {
        // The core maps only on a started device, which has its BAR.
        let bar = self.bar.as_ref().ok_or(Status::DELETE_PENDING)?;
        // CAST: spans of a BAR below 4 GiB fit usize.
        let (offset, len) = (span.byte_offset() as usize, span.byte_len() as usize);
        if offset.checked_add(len).is_none_or(|end| end > bar.len()) {
            // The core checked the window against the BAR's size; belt and braces.
            return Err(Status::INVALID_PARAMETER);
        }
        // Kernel-only resources first, the user-visible mapping last: a
        // failure never leaves anything in the caller's address space.
        let mdl = ViewMdl::new(bar, offset, len, writable)?;
        let alias = if writable { None } else { Some(ReadOnlyAlias::new(bar, &mdl, len)?) };
        let user = UserView::map(&mdl, bar.cache_type(), writable)?;
        let va = user.va();
        // The core hands the VA to user mode: it must be a user address.
        // CAST: addresses are 64 bits on x64.
        let limit = kernel::user_probe_address() as u64;
        if va.checked_add(len as u64).is_none_or(|end| end > limit) {
            trace!("user mapping at {:#x} is not below MM_USER_PROBE_ADDRESS: refused", va);
            return Err(Status::INSUFFICIENT_RESOURCES);
        }
        let owner_pid = user.owner.pid();
        for owners in self.owners() {
            owners.add(owner_pid);
        }
        Ok((WinView { _user: user, _alias: alias, _mdl: mdl, owner_pid }, va))
    }

    fn unmap_view(&mut self, view: WinView) {
        let owner_pid = view.owner_pid;
        drop(view);
        for owners in self.owners() {
            owners.remove(owner_pid);
        }
    }

    fn config_space(&mut self) -> Option<&mut dyn ConfigSpace> {
        self.config.as_mut().map(|c| c as &mut dyn ConfigSpace)
    }

    fn count_owner(&mut self, pid: u32, add: bool) {
        for owners in self.owners() {
            if add {
                owners.add(pid);
            } else {
                owners.remove(pid);
            }
        }
    }

    fn keep_system_awake(&mut self, awake: bool) {
        if awake && self.may_keep_awake {
            self.awake = SystemAwake::register();
            if self.awake.is_none() {
                trace!("PoRegisterSystemState failed: the system may sleep during a write");
            }
        } else {
            self.awake = None;
        }
    }
}
