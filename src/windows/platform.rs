//! [`WinPlatform`]: carries out the core's map and unmap decisions with real
//! kernel memory-manager calls. One owning type per resource, each released
//! in `Drop`, built in this order for a view:
//!
//! - [`Bar`]: BAR 0, mapped once at start: [`IoSpaceMapping`] (the HCA's
//!   registers, `MmMapIoSpaceEx` read-write non-cached) or [`SimulatedBar`]
//!   (the root test device's 1 MiB of nonpaged pool). Outlives every view.
//! - [`ReadOnlyAlias`] (read-only views only): a second MDL for the same
//!   pages with its *own* kernel mapping, which is set read-only with
//!   `MmProtectMdlSystemAddress` (see its documentation for why the view's
//!   own MDL cannot be used).
//! - [`Mdl`]: `IoAllocateMdl` over the pages of the span in the BAR's
//!   shared system mapping + `MmBuildMdlForNonPagedPool`.
//! - [`ProcessRef`]: the process the view is mapped into.
//! - [`UserView`]: `MmMapLockedPagesSpecifyCache(UserMode)` of that MDL in the
//!   caller's thread, through the C shim's `__try/__except`; unmapped in its
//!   owner process (attaching when needed) before the MDL is freed.
//!
//! Everything here runs under the device's fast mutex (IRQL APC_LEVEL), in
//! the thread of the request (map) or of cleanup/close/PnP/process exit
//! (unmap).

use super::alloc;
use super::kernel::{self, Attached, ProcessRef, FALSE};
use super::log::trace;
use crate::core::simulated::{cr_dword_bytes, SIM_BAR0_SIZE, SIM_DEVICE_ID, SIM_DEVICE_ID_OFFSET};
use crate::core::{PageSpan, Platform, PAGE_SIZE};
use crate::status::{Result, Status};
use ::core::ffi::c_void;
use ::core::ptr::{self, NonNull};
use wdk_sys::ntddk::{
    IoAllocateMdl, IoFreeMdl, MmAllocateMdlForIoSpace, MmBuildMdlForNonPagedPool, MmMapLockedPagesSpecifyCache,
    MmProtectMdlSystemAddress, MmUnlockPages, MmUnmapIoSpace, MmUnmapLockedPages,
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
/// device-identification dword, stored big-endian as CR space is. Freed on
/// drop.
pub(crate) struct SimulatedBar {
    va: NonNull<u8>,
    len: usize,
}

impl SimulatedBar {
    /// IRQL: <= DISPATCH_LEVEL.
    pub(crate) fn new() -> Result<Self> {
        let len = SIM_BAR0_SIZE as usize;
        let va = NonNull::new(alloc::allocate(len)).ok_or(Status::INSUFFICIENT_RESOURCES)?;
        let bar = SimulatedBar { va, len };
        // SAFETY: `va` is a fresh allocation of `len` bytes, ours alone.
        unsafe { ptr::write_bytes(bar.va.as_ptr(), 0, len) };
        let id = bar.va.as_ptr().wrapping_add(SIM_DEVICE_ID_OFFSET as usize).cast::<[u8; 4]>();
        // SAFETY: the offset is inside the allocation and dword aligned (pool
        // blocks are 16-byte aligned at least).
        unsafe { id.write_volatile(cr_dword_bytes(SIM_DEVICE_ID)) };
        Ok(bar)
    }

    /// Allocations of a page or more are page aligned on Windows; a host
    /// that breaks this (Wine's pool is its heap) gets no mappings, since a
    /// misaligned BAR would expose the neighbouring pool through the views'
    /// first and last pages.
    fn page_aligned(&self) -> bool {
        self.va.as_ptr() as usize % PAGE_SIZE as usize == 0
    }
}

impl Drop for SimulatedBar {
    fn drop(&mut self) {
        // SAFETY: the allocation made in `new`, freed once. INVARIANT as for
        // IoSpaceMapping: no view refers to it any more.
        unsafe { alloc::free(self.va.as_ptr()) };
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

    /// An MDL over the pages of `[va, va + len)` in the BAR's shared system
    /// mapping, built with `MmBuildMdlForNonPagedPool`: the documented way to
    /// describe resident memory that is to be mapped into user space.
    fn for_nonpaged(va: *mut u8, len: usize) -> Result<Self> {
        let mdl = Self::allocate(va, len)?;
        // SAFETY: the range lies in the BAR's system mapping, resident and mapped for as long as any view exists
        // (INVARIANT: the BAR outlives every view).
        unsafe { MmBuildMdlForNonPagedPool(mdl.as_ptr()) };
        Ok(mdl)
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
    fn probe(va: *mut u8, len: usize) -> Result<Self> {
        let mdl = Mdl::allocate(va, len)?;
        // SAFETY: kernel-mode probe of resident pool memory of ours; the shim
        // turns the exception a failure raises into a status.
        let status = unsafe { mlnx_hca_probe_and_lock(mdl.as_ptr(), _LOCK_OPERATION::IoReadAccess) };
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
        // says to free it with IoFreeMdl; once, after its mapping is gone.
        unsafe { IoFreeMdl(self.0.as_ptr()) };
    }
}

/// The MDL behind a [`ReadOnlyAlias`].
enum AliasMdl {
    Device(IoSpaceMdl),
    Ram(LockedMdl),
}

impl AliasMdl {
    fn as_ptr(&self) -> PMDL {
        match self {
            AliasMdl::Device(m) => m.0.as_ptr(),
            AliasMdl::Ram(m) => m.mdl.as_ptr(),
        }
    }
}

// ---------------------------------------------------------------- the views

/// The per-view kernel alias of a read-only view, mapped read-only.
///
/// Why a second MDL. The contract says: the per-mapping MDL's own system
/// alias is set read-only with `MmProtectMdlSystemAddress`, and the shared BAR
/// mapping is never protected. The DDI documentation says
/// `MmProtectMdlSystemAddress` works only on an MDL that has been mapped
/// (e.g. by `MmMapLockedPagesSpecifyCache`; else `STATUS_NOT_MAPPED_VIEW`),
/// and that an MDL built by `MmBuildMdlForNonPagedPool` must not get another
/// system mapping from `MmMapLockedPagesSpecifyCache`: its only system address
/// is the memory it was built over, here the shared BAR mapping. So the
/// user-view MDL has no system alias of its own that could be protected, and
/// protecting "its" address would protect the shared mapping.
///
/// A read-only view therefore gets a second MDL for the same pages that may
/// be mapped: for device memory `MmAllocateMdlForIoSpace` (by physical
/// address, no access to the device); for the simulated BAR's RAM an MDL
/// locked with `MmProbeAndLockPages` (probing touches each page, harmless for
/// RAM, not done to device registers). That MDL gets its own kernel mapping
/// (`MmMapLockedPagesSpecifyCache(KernelMode)`, not executable), which is
/// checked to lie outside the shared mapping and then set read-only with
/// `MmProtectMdlSystemAddress(PAGE_READONLY)`. The user view's own protection
/// is `MdlMappingNoWrite`. Nothing reads through the alias; it exists so that
/// every kernel alias of a read-only view is read-only.
///
/// Drop: `MmUnmapLockedPages` of the alias, then its MDL (which also drops
/// the protection: the memory manager forgets it with the mapping).
pub(crate) struct ReadOnlyAlias {
    va: NonNull<c_void>,
    mdl: AliasMdl,
}

impl ReadOnlyAlias {
    fn new(bar: &Bar, offset: usize, len: usize) -> Result<Self> {
        let mdl = match bar {
            // CAST: offset < 4 GiB, a BAR offset.
            Bar::Hardware(m) => AliasMdl::Device(IoSpaceMdl::new(m.physical + offset as i64, len)?),
            Bar::Simulated(s) => AliasMdl::Ram(LockedMdl::probe(s.va.as_ptr().wrapping_add(offset), len)?),
        };
        // CAST: MM_PAGE_PRIORITY values are small non-negative integers.
        let priority = _MM_PAGE_PRIORITY::NormalPagePriority as ULONG | wdk_sys::MdlMappingNoExecute;
        // SAFETY: a locked / I/O-space MDL without a system mapping yet; kernel mode with BugCheckOnFailure FALSE
        // returns NULL on failure instead of raising.
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
        let alias = ReadOnlyAlias { va, mdl };
        // INVARIANT: never protect the shared BAR mapping. A fresh kernel
        // mapping of a locked MDL is new system PTEs; refuse otherwise.
        if bar.overlaps(alias.va.as_ptr(), len) {
            trace!("read-only alias: the memory manager returned the shared BAR mapping; refusing to protect it");
            return Err(Status::INSUFFICIENT_RESOURCES);
        }
        // SAFETY: the MDL was just mapped to system space by MmMapLockedPagesSpecifyCache (its MappedSystemVa is
        // `alias.va`); this changes the protection of those PTEs only.
        let status = unsafe { MmProtectMdlSystemAddress(alias.mdl.as_ptr(), wdk_sys::PAGE_READONLY) };
        if !kernel::nt_success(status) {
            trace!("MmProtectMdlSystemAddress(PAGE_READONLY) failed: {:#x}", status);
            return Err(Status::INSUFFICIENT_RESOURCES);
        }
        Ok(alias)
    }
}

impl Drop for ReadOnlyAlias {
    fn drop(&mut self) {
        // SAFETY: the kernel mapping made in `new` from this MDL, unmapped
        // once, before the MDL (field drop after this). IRQL <= DISPATCH_LEVEL.
        unsafe { MmUnmapLockedPages(self.va.as_ptr(), self.mdl.as_ptr()) };
    }
}

/// A view of BAR pages in a user process: the MDL it was mapped from, the
/// process it lives in, and its user address.
///
/// Drop: attaches to the owner process if the thread runs elsewhere
/// (cleanup after `DuplicateHandle`, surprise removal in a system thread),
/// `MmUnmapLockedPages` there, detaches; then frees the MDL and drops the
/// process reference (field order).
pub(crate) struct UserView {
    va: NonNull<c_void>,
    mdl: Mdl,
    owner: ProcessRef,
}

impl UserView {
    /// Maps `mdl` into the current process (the requester's: the request runs
    /// synchronously in its thread), read-only (`MdlMappingNoWrite`) unless
    /// `writable`, never executable.
    ///
    /// IRQL: <= APC_LEVEL.
    fn map(mdl: Mdl, cache: MEMORY_CACHING_TYPE, writable: bool) -> Result<Self> {
        // CAST: MM_PAGE_PRIORITY values are small non-negative integers.
        let mut priority = _MM_PAGE_PRIORITY::NormalPagePriority as ULONG | wdk_sys::MdlMappingNoExecute;
        if !writable {
            priority |= wdk_sys::MdlMappingNoWrite;
        }
        let owner = ProcessRef::current();
        let mut user_va: PVOID = ptr::null_mut();
        // SAFETY: a built MDL over resident BAR pages, mapped into the current process at IRQL <= APC_LEVEL; the shim
        // catches the exception a failure raises.
        let status = unsafe { mlnx_hca_map_user(mdl.as_ptr(), cache, priority, &raw mut user_va) };
        if !kernel::nt_success(status) {
            trace!("MmMapLockedPagesSpecifyCache(UserMode) failed: {:#x}", status);
            return Err(Status::INSUFFICIENT_RESOURCES);
        }
        let va = NonNull::new(user_va).ok_or(Status::INSUFFICIENT_RESOURCES)?;
        Ok(UserView { va, mdl, owner })
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
        // owner process, whose address space we are in now (attached or already there); unmapped once. INVARIANT: the
        // owner has not finished exiting (the process-exit notification, which runs before its address space is torn
        // down, removes its views first).
        // SAFETY: the invariant stated just above.
        unsafe { MmUnmapLockedPages(self.va.as_ptr(), self.mdl.as_ptr()) };
    }
}

/// One live view as the core keeps it. Drop order: the user mapping first
/// (in its owner), then the read-only alias.
pub(crate) struct WinView {
    _user: UserView,
    _alias: Option<ReadOnlyAlias>,
}

// ---------------------------------------------------------------- the platform

/// The Windows [`Platform`]: BAR 0 of a started device and the views of it.
pub(crate) struct WinPlatform {
    bar: Option<Bar>,
}

impl WinPlatform {
    pub(crate) const fn new() -> Self {
        WinPlatform { bar: None }
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
        if let Bar::Simulated(s) = bar {
            if !s.page_aligned() {
                trace!("simulated BAR not page aligned (not Windows?): no mappings");
                return Err(Status::INSUFFICIENT_RESOURCES);
            }
        }
        // Kernel-only resources first, the user-visible mapping last: a
        // failure never leaves anything in the caller's address space.
        let alias = if writable { None } else { Some(ReadOnlyAlias::new(bar, offset, len)?) };
        let mdl = Mdl::for_nonpaged(bar.system_va().wrapping_add(offset), len)?;
        let user = UserView::map(mdl, bar.cache_type(), writable)?;
        let va = user.va();
        // The core hands the VA to user mode: it must be a user address.
        // CAST: addresses are 64 bits on x64.
        let limit = kernel::user_probe_address() as u64;
        if va.checked_add(len as u64).is_none_or(|end| end > limit) {
            trace!("user mapping at {:#x} is not below MM_USER_PROBE_ADDRESS: refused", va);
            return Err(Status::INSUFFICIENT_RESOURCES);
        }
        Ok((WinView { _user: user, _alias: alias }, va))
    }

    fn unmap_view(&mut self, view: WinView) {
        drop(view);
    }
}
