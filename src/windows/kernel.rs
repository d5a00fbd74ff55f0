//! Small owning wrappers over kernel objects the rest of the layer uses:
//! [`FastMutex`] (a `FAST_MUTEX` guarding data), [`RemoveLock`] (an
//! `IO_REMOVE_LOCK`), [`Irp`] (an IRP being handled, with the `wdm.h` inline
//! helpers written out), [`ProcessRef`] (a referenced process),
//! [`Attached`] (`KeStackAttachProcess` until dropped) and [`SystemAwake`]
//! (`PoRegisterSystemState` until dropped); and a short sleep.

use ::core::cell::UnsafeCell;
use ::core::ffi::c_void;
use ::core::mem::{offset_of, size_of, MaybeUninit};
use ::core::ops::{Deref, DerefMut};
use ::core::ptr::{self, NonNull};
use wdk_sys::ntddk::{
    ExAcquireFastMutex, ExReleaseFastMutex, IoAcquireRemoveLockEx, IoGetCurrentProcess, IoGetRequestorProcess,
    IoInitializeRemoveLockEx, IoReleaseRemoveLockAndWaitEx, IoReleaseRemoveLockEx, IofCallDriver, IofCompleteRequest,
    KeDelayExecutionThread, KeInitializeEvent, KeQueryPerformanceCounter, KeStackAttachProcess, KeUnstackDetachProcess,
    KeWaitForSingleObject, ObfDereferenceObject, ObfReferenceObject, PoRegisterSystemState, PoUnregisterSystemState,
    PsGetCurrentProcessId, PsGetProcessId,
};
use wdk_sys::{
    _EVENT_TYPE, _KWAIT_REASON, _MODE, CCHAR, FAST_MUTEX, IO_REMOVE_LOCK, IO_STACK_LOCATION, IRP, KAPC_STATE, KEVENT,
    LARGE_INTEGER, NTSTATUS, PDEVICE_OBJECT, PIO_COMPLETION_ROUTINE, PIO_STACK_LOCATION, PIRP, PKPROCESS, PVOID, ULONG,
};

/// `FALSE` as a `BOOLEAN`.
pub(crate) const FALSE: u8 = 0;
/// `TRUE` as a `BOOLEAN`.
pub(crate) const TRUE: u8 = 1;

/// `NT_SUCCESS`.
pub(crate) const fn nt_success(status: NTSTATUS) -> bool {
    status >= 0
}

// ---------------------------------------------------------------- FastMutex

/// Data guarded by a `FAST_MUTEX`.
///
/// IRQL: [`lock`](Self::lock) is called at <= APC_LEVEL and the guard holds
/// the thread at APC_LEVEL (all APCs disabled) until it drops. Everything done
/// under it must be legal at APC_LEVEL, and nothing under it may wait for an
/// IRP to complete (that needs an APC).
pub(crate) struct FastMutex<T> {
    raw: UnsafeCell<FAST_MUTEX>,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` is serialised by the fast mutex; `T: Send` is
// enough for it to be handed from thread to thread that way.
unsafe impl<T: Send> Sync for FastMutex<T> {}

impl<T> FastMutex<T> {
    /// A mutex that must be [`init`](Self::init)ialised in place before use.
    pub(crate) const fn new(data: T) -> Self {
        FastMutex {
            // A zeroed FAST_MUTEX is a valid (uninitialised) plain C struct.
            raw: UnsafeCell::new(zeroed_fast_mutex()),
            data: UnsafeCell::new(data),
        }
    }

    /// `ExInitializeFastMutex` (inline in `wdm.h`): count 1 (`FM_LOCK_BIT`,
    /// free), no owner, a synchronization event not signalled.
    ///
    /// # Safety
    /// Called once, before any [`lock`](Self::lock), while nobody else uses
    /// the mutex; the mutex does not move afterwards (its event is linked to
    /// its own address).
    pub(crate) unsafe fn init(&self) {
        let raw = self.raw.get();
        // SAFETY: (caller) nobody else touches the mutex yet; `raw` is valid.
        unsafe { (*raw).Count = 1 };
        // SAFETY: as above.
        unsafe { (*raw).Owner = ptr::null_mut() };
        // SAFETY: as above.
        unsafe { (*raw).Contention = 0 };
        // SAFETY: as above; the event lives inside the mutex, which does not
        // move (caller).
        let event = unsafe { &raw mut (*raw).Event };
        // SAFETY: `event` points to the mutex's own KEVENT.
        unsafe { KeInitializeEvent(event, _EVENT_TYPE::SynchronizationEvent, FALSE) };
    }

    /// Acquires the mutex.
    ///
    /// IRQL: caller <= APC_LEVEL; APC_LEVEL while the guard lives.
    pub(crate) fn lock(&self) -> FastMutexGuard<'_, T> {
        // SAFETY: INVARIANT of every FastMutex in the driver: `init` ran when its owner was set up (DriverEntry for
        // the global one, AddDevice for a device's), before anything could call `lock`.
        unsafe { ExAcquireFastMutex(self.raw.get()) };
        FastMutexGuard { mutex: self }
    }
}

const fn zeroed_fast_mutex() -> FAST_MUTEX {
    // SAFETY: FAST_MUTEX is plain C data (integers and pointers) for which
    // all-zero bytes are a valid value.
    unsafe { MaybeUninit::<FAST_MUTEX>::zeroed().assume_init() }
}

/// Holds a [`FastMutex`]; releases it when dropped.
pub(crate) struct FastMutexGuard<'a, T> {
    mutex: &'a FastMutex<T>,
}

impl<T> Deref for FastMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the mutex, so no other reference to the data
        // exists.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T> DerefMut for FastMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only one.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T> Drop for FastMutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard acquired the mutex in this thread.
        unsafe { ExReleaseFastMutex(self.mutex.raw.get()) };
    }
}

// ---------------------------------------------------------------- RemoveLock

/// The `IO_REMOVE_LOCK` of a device: every IRP handled holds it;
/// `IRP_MN_REMOVE_DEVICE` releases its own hold and waits for the others.
pub(crate) struct RemoveLock(UnsafeCell<IO_REMOVE_LOCK>);

/// `sizeof(IO_REMOVE_LOCK)`, which the `...Ex` routines check.
// CAST: 32 bytes.
const REMOVE_LOCK_SIZE: ULONG = size_of::<IO_REMOVE_LOCK>() as ULONG;

impl RemoveLock {
    /// An uninitialised lock; [`init`](Self::init) it in place.
    pub(crate) fn new() -> Self {
        RemoveLock(UnsafeCell::new(IO_REMOVE_LOCK::default()))
    }

    /// `IoInitializeRemoveLock`.
    ///
    /// # Safety
    /// Once, before any acquire, and the lock does not move afterwards.
    pub(crate) unsafe fn init(&self) {
        // SAFETY: (caller) not yet in use; the lock stays at this address.
        unsafe { IoInitializeRemoveLockEx(self.0.get(), super::alloc::POOL_TAG, 0, 0, REMOVE_LOCK_SIZE) };
    }

    /// `IoAcquireRemoveLock(lock, irp)`: fails (`STATUS_DELETE_PENDING`) once
    /// removal has begun.
    ///
    /// IRQL: <= DISPATCH_LEVEL.
    pub(crate) fn acquire(&self, irp: Irp) -> Result<RemoveLockGuard<'_>, NTSTATUS> {
        let tag: PVOID = irp.raw().cast();
        // Why this is sound: the lock was initialised in AddDevice (INVARIANT of the device extension); the tag is
        // the IRP, released with the same tag.
        // SAFETY: the invariant stated just above.
        let status =
            unsafe { IoAcquireRemoveLockEx(self.0.get(), tag, c"mlnx_hca".as_ptr(), line!(), REMOVE_LOCK_SIZE) };
        if nt_success(status) {
            Ok(RemoveLockGuard { lock: self, tag })
        } else {
            Err(status)
        }
    }
}

impl RemoveLock {
    /// `IoReleaseRemoveLock(lock, irp)` for a hold [`kept`](RemoveLockGuard::keep)
    /// when `irp` was dispatched.
    ///
    /// # Safety
    /// A hold acquired for `irp` and kept is released exactly once.
    ///
    /// IRQL: <= DISPATCH_LEVEL (completion routines, power callbacks).
    pub(crate) unsafe fn release(&self, irp: PIRP) {
        // SAFETY: (caller) the kept hold of this IRP, tagged with it.
        unsafe { IoReleaseRemoveLockEx(self.0.get(), irp.cast(), REMOVE_LOCK_SIZE) };
    }
}

/// One hold of a [`RemoveLock`]; released when dropped.
pub(crate) struct RemoveLockGuard<'a> {
    lock: &'a RemoveLock,
    tag: PVOID,
}

impl RemoveLockGuard<'_> {
    /// Keeps the hold beyond this dispatch routine, for an IRP that
    /// completes later (a power IRP handled in completion routines): the
    /// caller gives it back with [`RemoveLock::release`] and the same tag.
    pub(crate) fn keep(self) {
        ::core::mem::forget(self);
    }

    /// `IoReleaseRemoveLockAndWait`: releases this hold and waits until every
    /// other hold is released; every later acquire fails.
    ///
    /// IRQL: PASSIVE_LEVEL (it waits). Only `IRP_MN_REMOVE_DEVICE` calls it.
    pub(crate) fn release_and_wait(self) {
        let (lock, tag) = (self.lock.0.get(), self.tag);
        ::core::mem::forget(self);
        // SAFETY: this hold was acquired with `tag` and is given up here
        // instead of in Drop (forgotten above).
        unsafe { IoReleaseRemoveLockAndWaitEx(lock, tag, REMOVE_LOCK_SIZE) };
    }
}

impl Drop for RemoveLockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: the hold acquired with this tag is released exactly once.
        unsafe { IoReleaseRemoveLockEx(self.lock.0.get(), self.tag, REMOVE_LOCK_SIZE) };
    }
}

// ---------------------------------------------------------------- Irp

/// An IRP this driver is handling: valid until it is completed or passed
/// down, which the methods that do so take by value.
#[derive(Clone, Copy)]
pub(crate) struct Irp(NonNull<IRP>);

impl Irp {
    /// # Safety
    /// `raw` is the IRP the I/O manager passed to a dispatch routine of ours,
    /// not yet completed or passed down; the copies of the wrapper are not
    /// used after [`complete`](Self::complete) or a pass-down.
    pub(crate) unsafe fn from_raw(raw: PIRP) -> Self {
        // SAFETY: (caller) the I/O manager never passes a null IRP.
        Irp(unsafe { NonNull::new_unchecked(raw) })
    }

    pub(crate) fn raw(self) -> PIRP {
        self.0.as_ptr()
    }

    /// `IoGetCurrentIrpStackLocation`.
    pub(crate) fn stack_ptr(self) -> PIO_STACK_LOCATION {
        // SAFETY: a place projection inside the valid IRP, no read.
        let slot =
            unsafe { &raw const (*self.raw()).Tail.Overlay.__bindgen_anon_2.__bindgen_anon_1.CurrentStackLocation };
        // SAFETY: the I/O manager set the current location before the call.
        unsafe { slot.read() }
    }

    /// The current stack location.
    pub(crate) fn stack(&self) -> &IO_STACK_LOCATION {
        // SAFETY: the current location is part of the IRP, valid while it is.
        unsafe { &*self.stack_ptr() }
    }

    /// `Irp->AssociatedIrp.SystemBuffer` (METHOD_BUFFERED: input, then output).
    pub(crate) fn system_buffer(self) -> *mut u8 {
        // SAFETY: a place projection inside the valid IRP.
        let slot = unsafe { &raw const (*self.raw()).AssociatedIrp.SystemBuffer };
        // SAFETY: reads the pointer field the I/O manager filled in.
        unsafe { slot.read() }.cast()
    }

    /// `Irp->RequestorMode`: the mode of the original requester.
    pub(crate) fn requestor_mode(self) -> i8 {
        // SAFETY: a place projection inside the valid IRP.
        let slot = unsafe { &raw const (*self.raw()).RequestorMode };
        // SAFETY: reads a KPROCESSOR_MODE the I/O manager set.
        unsafe { slot.read() }
    }

    /// Whether this thread runs in the address space of the process that
    /// sent the IRP (`IoGetRequestorProcess(irp) == IoGetCurrentProcess()`):
    /// an upper filter may pass a request on from a worker thread of
    /// another process.
    pub(crate) fn runs_in_requestor(self) -> bool {
        // SAFETY: the IRP is valid while we handle it; any IRQL <= DISPATCH_LEVEL.
        let requestor = unsafe { IoGetRequestorProcess(self.raw()) };
        // SAFETY: no preconditions.
        let current = unsafe { IoGetCurrentProcess() };
        !requestor.is_null() && ptr::eq(requestor, current)
    }

    /// `IoMarkIrpPending`: the dispatch routine returns STATUS_PENDING and
    /// the IRP completes later.
    pub(crate) fn mark_pending(self) {
        // SAFETY: the current stack location is ours while we handle the IRP.
        let stack = unsafe { &mut *self.stack_ptr() };
        // CAST: SL_PENDING_RETURNED fits the UCHAR Control field.
        stack.Control |= wdk_sys::SL_PENDING_RETURNED as u8;
    }

    /// `Irp->PendingReturned`.
    pub(crate) fn pending_returned(self) -> bool {
        // SAFETY: a place projection inside the valid IRP.
        let slot = unsafe { &raw const (*self.raw()).PendingReturned };
        // SAFETY: reads a BOOLEAN of the IRP.
        unsafe { slot.read() != 0 }
    }

    /// `Irp->IoStatus.Status`.
    pub(crate) fn status(self) -> NTSTATUS {
        // SAFETY: a place projection inside the valid IRP.
        let slot = unsafe { &raw const (*self.raw()).IoStatus.__bindgen_anon_1.Status };
        // SAFETY: reads the status a lower driver (or we) stored.
        unsafe { slot.read() }
    }

    /// Sets `Irp->IoStatus.Status` (and `Information`) before passing down or completing.
    pub(crate) fn set_status(self, status: NTSTATUS, information: u64) {
        // SAFETY: a place projection inside the valid IRP.
        let status_slot = unsafe { &raw mut (*self.raw()).IoStatus.__bindgen_anon_1.Status };
        // SAFETY: we own the IRP until we complete or pass it down.
        unsafe { status_slot.write(status) };
        // SAFETY: a place projection inside the valid IRP.
        let info_slot = unsafe { &raw mut (*self.raw()).IoStatus.Information };
        // SAFETY: as above.
        unsafe { info_slot.write(information) };
    }

    /// `IoCompleteRequest` with `status` and `information`; returns `status`
    /// for the dispatch routine to return.
    ///
    /// IRQL: <= DISPATCH_LEVEL.
    pub(crate) fn complete(self, status: NTSTATUS, information: u64) -> NTSTATUS {
        self.set_status(status, information);
        // SAFETY: we own the IRP and give it back to the I/O manager here; the
        // wrapper is consumed.
        unsafe { IofCompleteRequest(self.raw(), wdk_sys::IO_NO_INCREMENT as CCHAR) };
        status
    }

    /// `IoSkipCurrentIrpStackLocation`: the lower driver gets our stack
    /// location as it is. Follow with [`call`](Self::call) (or `PoCallDriver`).
    pub(crate) fn skip(self) {
        // SAFETY: a place projection inside the valid IRP.
        let current_location = unsafe { &raw mut (*self.raw()).CurrentLocation };
        // SAFETY: a field of the IRP we own.
        let location = unsafe { current_location.read() };
        // SAFETY: as above; the lower driver's IoCallDriver moves the location
        // down again, back to ours.
        unsafe { current_location.write(location + 1) };
        // SAFETY: a place projection inside the valid IRP.
        let slot =
            unsafe { &raw mut (*self.raw()).Tail.Overlay.__bindgen_anon_2.__bindgen_anon_1.CurrentStackLocation };
        // SAFETY: a field of the IRP we own.
        let stack = unsafe { slot.read() };
        // SAFETY: as above, for the location pointer.
        unsafe { slot.write(stack.wrapping_add(1)) };
    }

    /// `IoCallDriver(lower, irp)`: the IRP is the lower driver's now.
    pub(crate) fn call(self, lower: PDEVICE_OBJECT) -> NTSTATUS {
        // SAFETY: `lower` is the device we attached to in AddDevice, attached until REMOVE_DEVICE has passed its IRP
        // down; the stack location below ours is set up (skip or copy).
        unsafe { IofCallDriver(lower, self.raw()) }
    }

    /// `IoCopyCurrentIrpStackLocationToNext` + `IoSetCompletionRoutine(...,
    /// TRUE, TRUE, TRUE)`, then `IoCallDriver(lower)`.
    pub(crate) fn call_with_completion(
        self,
        lower: PDEVICE_OBJECT,
        routine: PIO_COMPLETION_ROUTINE,
        context: PVOID,
    ) -> NTSTATUS {
        let current = self.stack_ptr();
        let next = current.wrapping_sub(1);
        // SAFETY: a function driver's stack location always has the next (lower) one below it; both belong to the
        // IRP. Copies everything up to, not including, CompletionRoutine and Context.
        unsafe {
            ptr::copy_nonoverlapping(
                current.cast::<u8>(),
                next.cast::<u8>(),
                offset_of!(IO_STACK_LOCATION, CompletionRoutine),
            )
        };
        // SAFETY: `next` is the lower driver's location, ours to set up.
        let next = unsafe { &mut *next };
        next.CompletionRoutine = routine;
        next.Context = context;
        // CAST: the SL_INVOKE_* flags fit the UCHAR Control field.
        next.Control =
            (wdk_sys::SL_INVOKE_ON_SUCCESS | wdk_sys::SL_INVOKE_ON_ERROR | wdk_sys::SL_INVOKE_ON_CANCEL) as u8;
        self.call(lower)
    }
}

// ---------------------------------------------------------------- processes

/// The current process id (`PsGetCurrentProcessId`), for the log.
pub(crate) fn current_pid() -> u32 {
    // SAFETY: no preconditions; any IRQL.
    let pid = unsafe { PsGetCurrentProcessId() };
    // CAST: process ids are multiples of 4 below 2^32, carried in a HANDLE.
    pid.addr() as u32
}

/// The id of the process whose address space this thread is in
/// (`PsGetProcessId(IoGetCurrentProcess())`: the attached one, if attached):
/// where a user view is mapped, and whose views are looked up.
pub(crate) fn address_space_pid() -> u32 {
    // SAFETY: no preconditions; never null in a thread's context.
    let process = unsafe { IoGetCurrentProcess() };
    // SAFETY: the current process object is alive while this thread runs in it.
    let pid = unsafe { PsGetProcessId(process) };
    // CAST: process ids are multiples of 4 below 2^32, carried in a HANDLE.
    pid.addr() as u32
}

/// A referenced process object (`ObReferenceObject`), dereferenced on drop.
pub(crate) struct ProcessRef(NonNull<wdk_sys::_KPROCESS>);

impl ProcessRef {
    /// The current process, referenced.
    ///
    /// IRQL: <= DISPATCH_LEVEL.
    pub(crate) fn current() -> Self {
        // SAFETY: no preconditions; never null in a thread's context.
        let process = unsafe { IoGetCurrentProcess() };
        // SAFETY: the current process object is alive while our thread runs
        // in it; taking a reference keeps it alive past that.
        unsafe { ObfReferenceObject(process.cast()) };
        // SAFETY: IoGetCurrentProcess never returns null.
        ProcessRef(unsafe { NonNull::new_unchecked(process) })
    }

    fn as_ptr(&self) -> PKPROCESS {
        self.0.as_ptr()
    }

    /// Its process id (`PsGetProcessId`), as the process-exit notification
    /// will name it.
    pub(crate) fn pid(&self) -> u32 {
        // SAFETY: the process is referenced, hence alive.
        let pid = unsafe { PsGetProcessId(self.as_ptr()) };
        // CAST: process ids are multiples of 4 below 2^32, carried in a HANDLE.
        pid.addr() as u32
    }

    /// Whether the current thread runs in (or is attached to) this process.
    pub(crate) fn is_current(&self) -> bool {
        // SAFETY: no preconditions.
        let current = unsafe { IoGetCurrentProcess() };
        ptr::eq(current, self.as_ptr())
    }
}

impl Drop for ProcessRef {
    fn drop(&mut self) {
        // SAFETY: drops the reference taken in `current`.
        let _ = unsafe { ObfDereferenceObject(self.as_ptr().cast()) };
    }
}

/// The thread attached (`KeStackAttachProcess`) to another process's address
/// space until dropped (`KeUnstackDetachProcess`).
///
/// The `KAPC_STATE` is borrowed, not owned: the kernel keeps a pointer to it
/// while attached, so it must stay where it is, on the caller's stack.
pub(crate) struct Attached<'s> {
    apc: &'s mut KAPC_STATE,
}

impl<'s> Attached<'s> {
    /// Attaches to `process` unless the thread already runs in it (`None`).
    ///
    /// IRQL: < DISPATCH_LEVEL (also under a fast mutex, at APC_LEVEL).
    pub(crate) fn to(process: &ProcessRef, apc: &'s mut KAPC_STATE) -> Option<Self> {
        if process.is_current() {
            return None;
        }
        // SAFETY: the process is referenced (alive); `apc` outlives the
        // attachment (borrowed by the guard) and does not move.
        unsafe { KeStackAttachProcess(process.as_ptr(), &raw mut *apc) };
        Some(Attached { apc })
    }
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        // SAFETY: undoes exactly the KeStackAttachProcess that built the guard,
        // in the same thread, with the same state.
        unsafe { KeUnstackDetachProcess(&raw mut *self.apc) };
    }
}

// ---------------------------------------------------------------- power

/// A registered busy state, `PoRegisterSystemState(NULL, ES_SYSTEM_REQUIRED |
/// ES_CONTINUOUS)`: the power manager is asked not to put the system to sleep
/// while it lives (it may still: a user's explicit sleep, a critically low
/// battery). `PoUnregisterSystemState` on drop.
///
/// IRQL: <= APC_LEVEL, both ways (fine under a fast mutex).
pub(crate) struct SystemAwake(NonNull<c_void>);

// SAFETY: the handle is an opaque token of the power manager, usable from any
// thread; it moves with the device's platform, under the device lock.
unsafe impl Send for SystemAwake {}

impl SystemAwake {
    /// `None` if the power manager could not register the state.
    pub(crate) fn register() -> Option<Self> {
        let flags = wdk_sys::ES_SYSTEM_REQUIRED | wdk_sys::ES_CONTINUOUS;
        // SAFETY: a new busy state (no handle to change); no other precondition.
        let handle = unsafe { PoRegisterSystemState(ptr::null_mut(), flags) };
        NonNull::new(handle).map(SystemAwake)
    }
}

impl Drop for SystemAwake {
    fn drop(&mut self) {
        // SAFETY: the handle PoRegisterSystemState returned, unregistered once.
        unsafe { PoUnregisterSystemState(self.0.as_ptr()) };
    }
}

// ---------------------------------------------------------------- user space bound

unsafe extern "C" {
    // `MM_USER_PROBE_ADDRESS` is ntoskrnl's data export `MmUserProbeAddress`.
    // Rust does not mark extern statics as dllimport, so a plain reference to
    // it would not link against the import library; the import address table
    // slot `__imp_MmUserProbeAddress` holds its address, and is read instead.
    #[link_name = "__imp_MmUserProbeAddress"]
    static MM_USER_PROBE_ADDRESS_SLOT: *const usize;
}

/// `MM_USER_PROBE_ADDRESS`: every user-mode address lies below it.
pub(crate) fn user_probe_address() -> usize {
    // SAFETY: the loader filled the import slot before DriverEntry; it is
    // never written afterwards.
    let slot = unsafe { MM_USER_PROBE_ADDRESS_SLOT };
    // SAFETY: the slot points to ntoskrnl's MmUserProbeAddress, a ULONG_PTR
    // set at boot and constant since.
    unsafe { slot.read() }
}

/// A `*mut c_void` as an address, for comparisons.
pub(crate) fn addr(p: *const c_void) -> usize {
    p as usize
}

// ---------------------------------------------------------------- waits

/// Sleeps about a millisecond (`KeDelayExecutionThread`, kernel mode, not
/// alertable; the system timer's tick, 15.6 ms by default, may make it
/// longer) and answers how long it slept, in microseconds, by the
/// performance counter.
///
/// IRQL: <= APC_LEVEL.
pub(crate) fn sleep_a_millisecond() -> u32 {
    const REQUESTED_US: u32 = 1000;
    let mut frequency = LARGE_INTEGER::default();
    // SAFETY: writes the counter's frequency to our variable.
    let before = unsafe { KeQueryPerformanceCounter(&raw mut frequency) };
    // Relative (negative), in 100 ns units.
    let mut interval = LARGE_INTEGER { QuadPart: -10 * i64::from(REQUESTED_US) };
    // SAFETY: a non-alertable kernel-mode wait on our interval; returns
    // STATUS_SUCCESS when it elapsed (nothing else can end it).
    let _ = unsafe { KeDelayExecutionThread(_MODE::KernelMode as i8, FALSE, &raw mut interval) };
    // SAFETY: no frequency asked for.
    let after = unsafe { KeQueryPerformanceCounter(ptr::null_mut()) };
    let quad = |value: LARGE_INTEGER| {
        // SAFETY: LARGE_INTEGER's QuadPart is the whole value, any bits valid.
        unsafe { value.QuadPart }
    };
    let (before, after, frequency) = (quad(before), quad(after), quad(frequency));
    match (after.checked_sub(before), u64::try_from(frequency)) {
        (Some(ticks), Ok(frequency)) if ticks >= 0 && frequency > 0 => {
            // CAST: ticks is not negative.
            let us = u128::from(ticks as u64) * 1_000_000 / u128::from(frequency);
            u32::try_from(us).unwrap_or(u32::MAX).max(1)
        }
        _ => REQUESTED_US,
    }
}

// ---------------------------------------------------------------- events

/// `KeInitializeEvent(NotificationEvent)`, not signalled. The event must
/// stay where it is while it can be waited on or signalled (its wait list
/// points into itself): a local of the function that waits.
pub(crate) fn init_event(event: &mut KEVENT) {
    // SAFETY: initialises the caller's event in place.
    unsafe { KeInitializeEvent(event, _EVENT_TYPE::NotificationEvent, FALSE) };
}

/// Waits until `event` is signalled: `KeWaitForSingleObject(Executive,
/// KernelMode, not alertable, no timeout)`.
///
/// IRQL: PASSIVE_LEVEL.
pub(crate) fn wait_event(event: &mut KEVENT) {
    // SAFETY: a non-alertable kernel-mode wait without timeout on an
    // initialised event that outlives the wait (the caller's borrow).
    let _ = unsafe {
        KeWaitForSingleObject(
            (event as *mut KEVENT).cast(),
            _KWAIT_REASON::Executive,
            _MODE::KernelMode as i8,
            FALSE,
            ptr::null_mut(),
        )
    };
}
