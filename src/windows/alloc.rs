//! Nonpaged pool: the global allocator behind `alloc` (the core's tables) and
//! the simulated HCA's BAR, with a count of live allocations that unload
//! reports, so a leak shows in the log even without Driver Verifier.
//!
//! The default build allocates through `wdk_alloc::WdkAllocator`
//! (`ExAllocatePool2`, nonpaged, Windows 10 2004+). The `legacy-pool` build
//! uses `ExAllocatePoolWithTag(NonPagedPoolNx)` instead, so that its image
//! does not import `ExAllocatePool2` and loads on Windows 8 to 10 1909 (the
//! driver needs Windows 8 either way: `MmAllocateMdlForIoSpace`,
//! `NonPagedPoolNx`, the `MdlMapping*` flags) and under
//! Wine 8 (which lacks that export).

use ::core::alloc::{GlobalAlloc, Layout};
use ::core::sync::atomic::{AtomicIsize, Ordering};
#[cfg(not(feature = "legacy-pool"))]
use wdk_alloc::WdkAllocator;
use wdk_sys::ULONG;

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
    fn ExAllocatePoolWithTag(pool_type: wdk_sys::POOL_TYPE, bytes: wdk_sys::SIZE_T, tag: ULONG) -> wdk_sys::PVOID;
}

/// Allocates `bytes` of nonpaged, non-executable pool; null on failure. The
/// memory is not necessarily zeroed. Allocations of a page or more are page
/// aligned (documented for both routines).
///
/// IRQL: <= DISPATCH_LEVEL.
pub(crate) fn allocate(bytes: usize) -> *mut u8 {
    #[cfg(not(feature = "legacy-pool"))]
    let ptr = {
        match Layout::from_size_align(bytes, POOL_ALIGNMENT) {
            // SAFETY: WdkAllocator allocates nonpaged pool with ExAllocatePool2, callable at <= DISPATCH_LEVEL, null
            // on failure; callers free with `free`, which hands the block back to the same allocator.
            Ok(layout) if bytes > 0 => unsafe { WdkAllocator.alloc(layout) },
            _ => ::core::ptr::null_mut(),
        }
    };
    #[cfg(feature = "legacy-pool")]
    // CAST: usize and SIZE_T are both 64 bits on x64.
    // SAFETY: as ExAllocatePool2: nonpaged pool at <= DISPATCH_LEVEL, null on
    // failure.
    let ptr = unsafe { ExAllocatePoolWithTag(wdk_sys::_POOL_TYPE::NonPagedPoolNx, bytes as wdk_sys::SIZE_T, POOL_TAG) };
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
    #[cfg(not(feature = "legacy-pool"))]
    // SAFETY: (caller) a live block WdkAllocator returned; its dealloc frees
    // it with ExFreePool and ignores the layout.
    unsafe {
        WdkAllocator.dealloc(ptr, Layout::new::<u8>())
    };
    #[cfg(feature = "legacy-pool")]
    // SAFETY: (caller) a live allocation of ours, with our tag.
    unsafe {
        wdk_sys::ntddk::ExFreePoolWithTag(ptr.cast(), POOL_TAG)
    };
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
