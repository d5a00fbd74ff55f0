//! Nonpaged pool: the global allocator behind `alloc` (the core's tables) and
//! the simulated HCA's BAR, with a count of live allocations that unload
//! reports, so a leak shows in the log even without Driver Verifier.
//!
//! The default build allocates with `ExAllocatePool2` (Windows 10 2004+). The
//! `legacy-pool` build uses `ExAllocatePoolWithTag(NonPagedPoolNx)` instead,
//! so that its image does not import `ExAllocatePool2` and loads on earlier
//! Windows and under Wine 8 (which lacks that export).

use ::core::alloc::{GlobalAlloc, Layout};
use ::core::sync::atomic::{AtomicIsize, Ordering};
use wdk_sys::{SIZE_T, ULONG};

/// Pool tag of every allocation of the driver ("Mlnx" in pool dumps).
pub(crate) const POOL_TAG: ULONG = u32::from_ne_bytes(*b"Mlnx");

/// Pool allocations are 16-byte aligned on x64 (`MEMORY_ALLOCATION_ALIGNMENT`).
const POOL_ALIGNMENT: usize = 16;

/// Allocations made and not yet freed.
static LIVE: AtomicIsize = AtomicIsize::new(0);

#[cfg(feature = "legacy-pool")]
unsafe extern "system" {
    // wdk-build's bindgen leaves out ExAllocatePoolWithTag (deprecated in
    // favour of ExAllocatePool2); ntoskrnl exports it on every Windows. As
    // declared in wdm.h.
    fn ExAllocatePoolWithTag(pool_type: wdk_sys::POOL_TYPE, bytes: SIZE_T, tag: ULONG) -> wdk_sys::PVOID;
}

/// Allocates `bytes` of nonpaged, non-executable pool; null on failure. The
/// memory is not necessarily zeroed. Allocations of a page or more are page
/// aligned (documented for both routines).
///
/// IRQL: <= DISPATCH_LEVEL.
pub(crate) fn allocate(bytes: usize) -> *mut u8 {
    // CAST: usize and SIZE_T are both 64 bits on x64.
    let size = bytes as SIZE_T;
    #[cfg(not(feature = "legacy-pool"))]
    // SAFETY: ExAllocatePool2 may be called at <= DISPATCH_LEVEL for nonpaged
    // pool and returns null on failure (no POOL_FLAG_RAISE_ON_FAILURE).
    let ptr = unsafe { wdk_sys::ntddk::ExAllocatePool2(wdk_sys::POOL_FLAG_NON_PAGED, size, POOL_TAG) };
    #[cfg(feature = "legacy-pool")]
    // SAFETY: as ExAllocatePool2: nonpaged pool at <= DISPATCH_LEVEL, null on
    // failure.
    let ptr = unsafe { ExAllocatePoolWithTag(wdk_sys::_POOL_TYPE::NonPagedPoolNx, size, POOL_TAG) };
    if !ptr.is_null() {
        LIVE.fetch_add(1, Ordering::Relaxed);
    }
    ptr.cast()
}

/// Frees what [`allocate`] returned.
///
/// IRQL: <= DISPATCH_LEVEL.
///
/// # Safety
/// `ptr` came from [`allocate`] and is freed once; nothing uses it afterwards.
pub(crate) unsafe fn free(ptr: *mut u8) {
    // SAFETY: (caller) a live allocation of ours, with our tag.
    unsafe { wdk_sys::ntddk::ExFreePoolWithTag(ptr.cast(), POOL_TAG) };
    LIVE.fetch_sub(1, Ordering::Relaxed);
}

/// Allocations not yet freed (for the unload report).
pub(crate) fn outstanding() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// The global allocator of the driver image.
pub(crate) struct PoolAllocator;

// SAFETY: alloc returns null or a block of at least `layout.size()` bytes
// aligned to 16, and refuses (null) any layout asking for more alignment than
// pool gives; dealloc frees exactly what alloc returned. Neither unwinds.
unsafe impl GlobalAlloc for PoolAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > POOL_ALIGNMENT {
            return ::core::ptr::null_mut();
        }
        allocate(layout.size())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: (GlobalAlloc contract) `ptr` was returned by `alloc` above,
        // that is by `allocate`, and is freed once.
        unsafe { free(ptr) }
    }
}
