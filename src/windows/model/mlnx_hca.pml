/*
 * mlnx_hca.pml: a Promela model of the Windows layer's synchronisation
 * (src/windows) around the portable core (src/core/device.rs), for spin.
 *
 * Read it beside the code: every step is named after the function it stands
 * for (dispatch_device_control, Device::map as Device_map,
 * WinPlatform::unmap_view, KeStackAttachProcess, IoReleaseRemoveLockAndWait,
 * ...). Where the model simplifies, a comment says so there. README.md
 * beside this file lists what is modelled, the properties, the bounds and
 * what is left out; run.sh runs the checks.
 *
 * Tools open the HCA's control device (\Device\mlnx_hca<N>), whose IRPs
 * take no remove lock and reach the HCA's `Hca` (its core), which lives from
 * the first START to the driver's unload; the stack device (FDO or lower
 * filter) handles PnP and power under its remove lock and serves no tool.
 *
 * The actors (proctypes), all running at once as on Windows:
 *   Client(P1, A)       a thread of process P1: DeviceIoControl on handle A
 *                       (with START_IN_MODEL it first opens A itself and
 *                       duplicates it into P2 as D)
 *   Client(P2, D, B)    a thread of process P2: DeviceIoControl on D (the
 *                       duplicate of A: same file object F1) and on B (its
 *                       own CreateFile: file object F2), which it opens first
 *   Closer(P1, A)       another thread of P1: CloseHandle(A), at any time
 *   Closer(P2, D)       another thread of P2: CloseHandle(D), at any time
 *   ProcessExit(P1/P2)  the process ends (ExitProcess, or TerminateProcess
 *                       from elsewhere) at any time: its threads die, the
 *                       process-exit notification runs (past the lock-free
 *                       filters if it owns no view), its handle table is run
 *                       down (or, killed, closed early in the killer's
 *                       thread), its address space goes
 *   PnpManager          START first with START_IN_MODEL; then per scenario:
 *                       QUERY_REMOVE (then REMOVE_DEVICE or CANCEL_REMOVE)
 *                       or SURPRISE_REMOVAL (then REMOVE_DEVICE at once:
 *                       handles of the control device, which is not in the
 *                       stack, do not hold it back) at any time; the
 *                       uninstall when both tools have ended
 *   PowerIrp            (POWER_IRP) a system power IRP (QUERY_POWER for a
 *                       sleep) on the stack device at any time while it
 *                       exists: the stack IRP the remove lock is for
 *   Unload              DriverUnload once no device object of the driver is
 *                       left (the stack device deleted, the control device
 *                       deleted and unreferenced): free_graveyard frees the
 *                       Hca
 *   init                sets the scene, then checks that nothing is left
 *
 * Configuration (-D, see run.sh): N1, N2, NVIEW, PNP (0 uninstall only,
 * 1 early QUERY_REMOVE, 2 early SURPRISE_REMOVAL), NO_B, NO_CLOSER1,
 * NO_CLOSER2, WITH_QUERY, POWER_IRP, START_IN_MODEL. Seeded bugs:
 * SEED_<NAME> (README.md).
 */

/* ------------------------------------------------------------ bounds */

#ifndef N1
#define N1 2            /* DeviceIoControl requests of P1's thread */
#endif
#ifndef N2
#define N2 2            /* DeviceIoControl requests of P2's thread */
#endif
#ifndef NVIEW
#define NVIEW 3         /* view slots: Config::per_device_quota in the model */
#endif
#ifndef PNP
#define PNP 0           /* the PnP scenario (above) */
#endif

/* ------------------------------------------------------------ names */

/* processes (pids); NONE: no process (a free slot; not attached) */
#define NONE   0
#define P1     1
#define P2     2
#define SYSTEM 3        /* the PnP manager's system thread */
#define NPROC  4

/* file objects = the core's contexts (CaId); 0: none */
#define F1 1            /* P1's CreateFile; A and its duplicate D refer to it */
#define F2 2            /* P2's own CreateFile; B refers to it */
#define NFILE 3

/* handles */
#define H_A 1           /* P1 -> F1 */
#define H_D 2           /* P2 -> F1 (DuplicateHandle of A into P2) */
#define H_B 3           /* P2 -> F2 */
#define NHANDLE 4
#define FILE_OF(h) ((h) == H_B -> F2 : F1)

/* requests (the four codes; every request in the model is well formed) */
#define MAP_RO 1        /* FW_MAP_CRSPACE_RO */
#define MAP_RW 2        /* FW_MAP_CRSPACE_RW */
#define UNMAP  3        /* FW_UNMAP_CRSPACE { va } */
#define QUERY  4        /* FW_QUERY_CRSPACE */
#define LOCK   5        /* FW_WRITE_CRSPACE_BLOCK of the caller's pid into the
                           semaphore space (a tool lock), GATEWAY */
#define UNLOCK 6        /* FW_WRITE_CRSPACE_BLOCK of 0 there, GATEWAY */

/* NTSTATUS values the model tells apart */
#define SUCCESS                1
#define DELETE_PENDING         2
#define FILE_CLOSED            3
#define INVALID_PARAMETER      4
#define INSUFFICIENT_RESOURCES 5
#define DEVICE_BUSY            6

/* core::PnpState (StopPending and Stopped are not modelled: stop is left
   out; NotStarted only with START_IN_MODEL, else the device is started
   before the model begins) */
#define NotStarted      0
#define Started         1
#define RemovePending   2
#define SurpriseRemoved 3
#define Removed         4

/* ------------------------------------------------------------ state */

/* Device<WinPlatform> (src/core/device.rs), behind Hca::core */
byte dev_state = Started;      /* Device::state */
bool ca_exists[NFILE];         /* Device::cas[id].ca.is_some() */
bool ca_cleaned[NFILE];        /* UmCa::cleaned_up */
byte ca_rw[NFILE];             /* UmCa::rw_views */
byte lease_holder;             /* Device::lease: Lease::holder (F1/F2), 0 = None */
byte lease_pid;                /* Lease::writer_pid */
byte lease_wviews;             /* LeaseState::writer_views */
byte live_views;               /* Device::live_views */
/* The views: the entries of every UmCa's ViewTable, flattened into slots.
   A slot number is the VA the map returned (the memory manager's choice: the
   model takes the first free slot). */
byte v_file[NVIEW];            /* the context whose table holds the entry; 0 = free */
byte v_owner[NVIEW];           /* ViewKey::pid = UserView::owner */
bool v_rw[NVIEW];              /* Entry::writable */
bool v_mapped[NVIEW];          /* the user mapping exists (MmMapLockedPagesSpecifyCache
                                  returned it, MmUnmapLockedPages not yet called) */
byte proc_refs[NPROC];         /* ObfReferenceObject(process) held by UserView::owner */
bool bar_in_platform = true;   /* WinPlatform::bar is Some; GATEWAY: WinPlatform::config */
bool bar_mapped = true;        /* BAR 0's system mapping (MmMapIoSpace / the pool) exists;
                                  GATEWAY: the bus interface is referenced (the
                                  IRP_MN_QUERY_INTERFACE answer .. InterfaceDereference) */
/* GATEWAY (a ConnectX-4): one dword of the device's semaphore space, which
   the tools use as a lock (they write their id; it keeps a value only while
   it is 0, and 0 frees it), and the handles' records of what they wrote
   there (UmCa::locks: lk[f * NPROC + p], p wrote its pid through context f) */
byte dev_sem;
bool lk[NFILE * NPROC];

/* The Hca and the two device objects (src/windows/device.rs) */
bool core_locked;              /* Hca::core: the FAST_MUTEX */
bool hca_alive = true;         /* the Hca block exists (Hca::create at the first
                                  START .. free_graveyard at unload) */
bool hca_linked = true;        /* linked into DEVICES (Hca::create .. Hca::retire) */
bool control_exists = true;    /* the control device exists, not deleted: the
                                  I/O manager sends it creates (Hca::create ..
                                  IoDeleteDevice in Hca::retire) */
byte ctl_refs;                 /* the control device's reference count: a
                                  create in flight, a file object until its
                                  CLOSE has returned (IopDeleteFile) */
byte rl_count = 1;             /* StackExtension::remove_lock: IO_REMOVE_LOCK
                                  IoCount (1: the IoInitializeRemoveLock bias) */
bool rl_removed;               /* IO_REMOVE_LOCK Removed */
bool rl_event;                 /* IO_REMOVE_LOCK RemoveEvent (a notification event) */
bool stack_alive = true;       /* the stack device's extension is not dropped
                                  (device::destroy: drop_in_place) */
bool stack_hca = true;         /* StackExtension::hca: stored by the first
                                  START, swapped out by REMOVE_DEVICE */
bool devices_locked;           /* DEVICES: the driver-wide FAST_MUTEX (src/windows/mod.rs) */
bool notify_registered = true; /* process_notify is registered (DriverEntry .. unload) */
byte notify_running;           /* calls of process_notify past the first filter */

/* the I/O manager */
bool h_open[NHANDLE];          /* the handle is in its process's handle table */
byte fo_handles[NFILE];        /* file object: handle count (CLEANUP when it reaches 0) */
byte fo_refs[NFILE];           /* file object: references: handles + IRPs in flight
                                  (CLOSE when it reaches 0) */
bool fo_ctx[NFILE];            /* FsContext/FsContext2 carry our context (FileContext) */

/* the process manager */
bool exiting[NPROC];           /* termination began: no thread of it starts a request */
byte inflight[NPROC];          /* its threads inside the kernel (a thread dies only
                                  when it leaves the kernel) */
bool gone[NPROC];              /* PspExitProcess ran (the process-exit notification) */
bool as_alive[NPROC];          /* its user address space exists */

/* core::ViewOwners, counted by WinPlatform under the device lock and read by
   process_notify without any lock: VIEW_OWNERS (the driver's) and
   Hca::owners (the device's). One bucket per process here: the
   hash buckets of the code only add false positives, which take the slow
   path. */
byte vo_all[NPROC];
byte vo_dev[NPROC];

#ifdef LIVENESS
/* every run ends, with everything released and checked (init sets it
   last): no deadlock, no wait that never ends (REMOVE_DEVICE's for the IRPs
   in flight, a process exit's for its threads), no IRP left in flight */
bool done;
ltl terminates { <> done }
#endif

/* scratch for d_steps (never holds a value from one step to the next) */
hidden byte i, tn, tp, hv, hf, att;

/* ------------------------------------------------------------ kernel primitives */

/* ExAcquireFastMutex(&hca.core) (FastMutex::lock). Always the first
   statement of a d_step, right after the guard `!core_locked` that blocks
   the step while another thread holds the lock. */
inline ExAcquireFastMutex() {
  assert(!core_locked);
  core_locked = true
}

/* What must hold whenever the device lock is free: checked at every
   ExReleaseFastMutex (FastMutexGuard::drop), i.e. after every core call. */
inline check_core_invariants() {
  tn = 0;
  for (i : 0 .. NVIEW - 1) {
    /* a table entry is exactly a live user mapping */
    assert((v_file[i] != 0) == v_mapped[i]);
    if
    :: v_file[i] != 0 ->
       tn++;
       /* a cleaned-up (or closed) handle has no views */
       assert(ca_exists[v_file[i]] && !ca_cleaned[v_file[i]]);
       /* never two writing handles: every read-write view is the lease holder's */
       assert(!v_rw[i] || lease_holder == v_file[i])
    :: else
    fi
  }
  assert(tn == live_views);
  for (hf : 1 .. NFILE - 1) {
    tn = 0;
    for (i : 0 .. NVIEW - 1) {
      if :: v_file[i] == hf && v_rw[i] -> tn++ :: else fi
    }
    assert(tn == ca_rw[hf])
  }
  if
  :: lease_holder != 0 ->
     /* the lease is never held by a closed or cleaned-up handle ... */
     assert(ca_exists[lease_holder] && !ca_cleaned[lease_holder] && ca_rw[lease_holder] > 0);
     /* ... nor by an ended process, and writer_views counts writer_pid's views */
     assert(lease_pid != NONE && !gone[lease_pid] && as_alive[lease_pid]);
     tn = 0;
     for (i : 0 .. NVIEW - 1) {
       if :: v_file[i] == lease_holder && v_rw[i] && v_owner[i] == lease_pid -> tn++ :: else fi
     }
     assert(tn == lease_wviews && tn > 0)
  :: else -> assert(lease_pid == NONE && lease_wviews == 0)
  fi;
  /* a tool lock is recorded only in a live context, never for an ended
     process, and its process is counted in both exit filters (the seed
     that skips the count must be caught by what a tool sees instead: the
     lock left on the device after its holder ended) */
  for (hf : 1 .. NFILE - 1) {
    for (i : 1 .. NPROC - 1) {
      if
      :: lk[hf * NPROC + i] ->
#ifndef SEED_LOCK_NOT_COUNTED
         assert(vo_all[i] > 0 && vo_dev[i] > 0);
#endif
         assert(ca_exists[hf] && !ca_cleaned[hf] && !gone[i])
      :: else
      fi
    }
  }
  tn = 0; hf = 0; i = 0
}

/* ExReleaseFastMutex (FastMutexGuard::drop) */
inline ExReleaseFastMutex() {
  check_core_invariants();
  core_locked = false
}

/* IoCompleteRequest (Irp::complete), and IoCallDriver (Irp::call: the lower
   driver owns the IRP now and completes it): each IRP exactly once. */
inline IoCompleteRequest() {
  assert(!irp_done);
  irp_done = true
}
#define IoCallDriver() IoCompleteRequest()

/* The dispatch routine returns: its IRP was completed (or passed down). */
inline IrpReturned() {
  assert(irp_done);
  irp_done = false
}

/* IoAcquireRemoveLock(&ext.remove_lock, irp) (RemoveLock::acquire) of the
   stack device (PnP and power IRPs; control-device IRPs take none), as the
   kernel does it (InterlockedIncrement(IoCount), then Removed is read; a
   removed lock gives its count back, sets the event at 0, and fails), and
   on failure the dispatch routine's `Err(status) => return
   irp.complete(status, 0)` (STATUS_DELETE_PENDING). One step: the kernel's
   increment and its read of Removed are not split (the primitive itself is
   not what is checked). Used inside d_step. */
inline IoAcquireRemoveLock() {
  rl_count++;
  if
  :: !rl_removed -> ok = true
  :: else ->
     rl_count--;
     if :: rl_count == 0 -> rl_event = true :: else fi;
     ok = false;
     IoCompleteRequest(); IrpReturned()
  fi
}

/* IoReleaseRemoveLock (RemoveLockGuard::drop): the last one out sets the
   event (the kernel asserts Removed then). */
inline IoReleaseRemoveLock() {
  assert(rl_count > 0);
  rl_count--;
  if :: rl_count == 0 -> assert(rl_removed); rl_event = true :: else fi;
  ok = false
}

/* IoReleaseRemoveLockAndWait (RemoveLockGuard::release_and_wait): Removed
   is set, this hold goes, then the IoInitializeRemoveLock bias; unless that
   was the last, KeWaitForSingleObject(RemoveEvent). */
inline IoReleaseRemoveLockAndWait() {
  d_step { rl_removed = true; assert(rl_count > 1); rl_count--; ok = false }
  atomic {
    rl_count--;
    if
    :: rl_count == 0 -> skip
    :: else ->
#ifdef REACH_REMOVE_WAITS
       assert(false);         /* witness: REMOVE_DEVICE waits for an IRP in flight */
#endif
       rl_event               /* blocks until the last IoReleaseRemoveLock sets it */
    fi
  }
}

/* ------------------------------------------------------------ WinPlatform (src/windows/platform.rs) */

/* WinPlatform::map_view, in the requester's thread (the request runs
   synchronously there): ReadOnlyAlias::new (RO), Mdl::for_nonpaged,
   UserView::map = ProcessRef::current (ObfReferenceObject) +
   MmMapLockedPagesSpecifyCache(UserMode) into the current process.
   Simplified: the kernel calls do not fail (a failed map changes nothing,
   which the host tests check). */
inline WinPlatform_map_view(v, writable) {
  if
  :: !bar_in_platform -> st = DELETE_PENDING     /* self.bar.as_ref().ok_or(DELETE_PENDING) */
  :: else ->
     assert(bar_mapped);                          /* the MDL is built over the BAR mapping */
     assert(as_alive[cur]);                       /* the requester's address space */
     v_owner[v] = cur;
     v_rw[v] = writable;
     v_mapped[v] = true;
     proc_refs[cur]++;
     vo_all[cur]++; vo_dev[cur]++;                /* owners.add(owner_pid), both filters */
     st = SUCCESS
  fi
}

/* WinPlatform::unmap_view = drop(WinView): UserView::drop attaches to the
   owner unless the thread already runs there (Attached::to:
   KeStackAttachProcess), MmUnmapLockedPages, detaches
   (KeUnstackDetachProcess); then the MDL (IoFreeMdl) and the process
   reference (ObfDereferenceObject); then the read-only alias. */
inline WinPlatform_unmap_view(v) {
  att = NONE;                                     /* the process attached to */
#ifndef SEED_SKIP_ATTACH
  if
  :: v_owner[v] != cur ->
     assert(as_alive[v_owner[v]]);               /* KeStackAttachProcess(owner) */
#ifdef REACH_ATTACH_FROM_OTHER_PROCESS
     assert(cur == SYSTEM);   /* witness: a CLEANUP in one tool unmaps another's view */
#endif
     att = v_owner[v]
  :: else
  fi;
#endif
  /* MmUnmapLockedPages(va, mdl): in the owner's address space, once, while
     the BAR mapping its MDL describes is still there */
  assert(v_mapped[v]);
  assert(att == v_owner[v] || (att == NONE && cur == v_owner[v]));
  assert(as_alive[v_owner[v]]);
  assert(bar_mapped);
  v_mapped[v] = false;
  att = NONE;                                     /* KeUnstackDetachProcess */
  assert(proc_refs[v_owner[v]] > 0);
  proc_refs[v_owner[v]]--;                       /* ProcessRef::drop */
#ifndef SEED_FILTER_COUNTS_UNMAPPER
  assert(vo_all[v_owner[v]] > 0 && vo_dev[v_owner[v]] > 0);
  vo_all[v_owner[v]]--; vo_dev[v_owner[v]]--     /* owners.remove(view.owner_pid) */
#else
  /* SEED: the filters are told the process that unmaps (PsGetCurrentProcessId
     of a cleanup elsewhere, of the PnP manager) instead of the view's owner;
     the counts wrap as the atomics would */
  vo_all[cur]--; vo_dev[cur]--
#endif
}

/* ------------------------------------------------------------ Device (src/core/device.rs) */

/* retire(): a view taken out of `id`'s table is unmapped and the counts
   settle (Device::settle_lease finishes the lease afterwards). */
inline retire(v, id) {
  WinPlatform_unmap_view(v);
  live_views--;
  if
  :: v_rw[v] ->
     ca_rw[id]--;
     if :: lease_holder == id && lease_pid == v_owner[v] -> lease_wviews-- :: else fi
  :: else
  fi;
  v_file[v] = 0; v_owner[v] = NONE; v_rw[v] = false
}

/* Device::settle_lease(id): the lease ends with its holder's last read-write
   view; writer_pid moves to the process with the lowest pid that still has
   one when the writer's own are gone. */
inline settle_lease(id) {
  if
  :: lease_holder == id ->
     if
     :: ca_rw[id] == 0 -> lease_holder = 0; lease_pid = NONE; lease_wviews = 0
     :: else ->
#ifndef SEED_LEASE_STAYS_WITH_EXITED_WRITER
        if
        :: lease_wviews == 0 ->
           tp = NONE;
           for (i : 0 .. NVIEW - 1) {
             if
             :: v_file[i] == id && v_rw[i] && (tp == NONE || v_owner[i] < tp) -> tp = v_owner[i]
             :: else
             fi
           }
           if
           :: tp != NONE ->
#ifdef REACH_LEASE_HANDOFF
              assert(false);      /* witness: writer_pid moves to another process */
#endif
              lease_pid = tp; lease_wviews = 0;
              for (i : 0 .. NVIEW - 1) {
                if :: v_file[i] == id && v_rw[i] && v_owner[i] == tp -> lease_wviews++ :: else fi
              }
           :: else
           fi;
           tp = NONE; i = 0
        :: else
        fi
#else
        skip   /* SEED: writer_pid is never handed on */
#endif
     fi
  :: else
  fi
}

/* count_owner(pid, true / false) for a tool lock: both exit filters.
   SEED: not called (the exit filters never learn of a lock holder). */
#ifndef SEED_LOCK_NOT_COUNTED
#define COUNT_LOCK(p)   vo_all[p]++; vo_dev[p]++
#define UNCOUNT_LOCK(p) vo_all[p]--; vo_dev[p]--
#else
#define COUNT_LOCK(p)   skip
#define UNCOUNT_LOCK(p) skip
#endif

/* A configuration-space access of the gateway (GetBusData/SetBusData of
   the bus interface): under the device lock, the interface in the platform
   and still referenced. */
inline bus_access() {
  assert(core_locked && bar_in_platform && bar_mapped)
}

/* Device::write_block of the caller's pid into the semaphore space: the
   gateway write, then the record (one per writer; count_owner counts the
   writer in both exit filters). */
inline Device_lock(id) {
  if
  :: !bar_in_platform -> st = DELETE_PENDING               /* config_space() is None */
  :: else ->
     bus_access();
     if :: dev_sem == 0 -> dev_sem = cur :: else fi;       /* taken: the value does not stick */
#ifndef SEED_LOCK_RECORD_REPLACED
     if
     :: !lk[id * NPROC + cur] -> lk[id * NPROC + cur] = true; COUNT_LOCK(cur)
     :: else
     fi;
#else
     /* SEED: one record per handle and place, the last writer's (the rule
        before the fix): another process's record at this place goes */
     for (tp : 1 .. NPROC - 1) {
       if :: lk[id * NPROC + tp] -> lk[id * NPROC + tp] = false; UNCOUNT_LOCK(tp) :: else fi
     }
     lk[id * NPROC + cur] = true; COUNT_LOCK(cur);
     tp = NONE;
#endif
     st = SUCCESS
  fi
}

/* Device::write_block of 0 there: the lock freed, and every record at that
   place with it, in every context (one left in another would have that
   context's cleanup free the next holder's lock). */
inline Device_unlock(id) {
  if
  :: !bar_in_platform -> st = DELETE_PENDING
  :: else ->
     bus_access();
     dev_sem = 0;
     for (tp : NPROC .. NFILE * NPROC - 1) {
       if :: lk[tp] -> lk[tp] = false; UNCOUNT_LOCK(tp % NPROC) :: else fi
     }
     tp = NONE;
     st = SUCCESS
  fi
}

/* release_locks for context id's records of process p (p = NONE: all):
   Gateway::release_if writes 0 where the device still holds the record's
   value, if the platform still has the configuration space (else the
   record just goes); the writer leaves the exit filters. */
inline release_locks(id, p) {
  for (tp : 1 .. NPROC - 1) {
    if
    :: lk[id * NPROC + tp] && (p == NONE || p == tp) ->
       if
       :: bar_in_platform ->
          bus_access();
          if
          :: dev_sem == tp ->
#ifdef REACH_LOCK_RELEASED_AT_EXIT
             assert(p == NONE || fo_handles[id] == 0);  /* witness: an exit gives back a lock taken through a handle that lives on */
#endif
             dev_sem = 0
          :: else
          fi
       :: else
       fi;
       lk[id * NPROC + tp] = false;
       UNCOUNT_LOCK(tp)
    :: else
    fi
  }
  tp = NONE
}

/* Device::open (IRP_MJ_CREATE). Simplified: the CaId is the file object's
   number (slot reuse and generations are not modelled). */
inline Device_open(id) {
  if
  :: dev_state == Started -> ca_exists[id] = true; ca_cleaned[id] = false; st = SUCCESS
  :: dev_state == NotStarted ->
#ifdef REACH_OPEN_BEFORE_START
     assert(false);           /* witness: a create reaches the control device before Device::start */
#endif
     st = DEVICE_BUSY
  :: dev_state == RemovePending || dev_state == SurpriseRemoved || dev_state == Removed -> st = DELETE_PENDING
  fi
}

/* Device::map: quota, lease, room in the table, WinPlatform::map_view,
   insert, the counts and the lease. */
inline Device_map(id, writable) {
  tn = NVIEW;
  for (i : 0 .. NVIEW - 1) {
    if :: tn == NVIEW && v_file[i] == 0 -> tn = i :: else fi
  }
  if
  :: tn == NVIEW -> st = INSUFFICIENT_RESOURCES            /* per-device quota */
  :: else ->
     if
     :: writable && lease_holder != 0 && lease_holder != id -> st = DEVICE_BUSY
     :: else ->
        WinPlatform_map_view(tn, writable);
        if
        :: st == SUCCESS ->
           v_file[tn] = id;                                 /* ca.views.insert */
           live_views++;
           if
           :: writable ->
              ca_rw[id]++;
              if                                             /* lease.get_or_insert */
              :: lease_holder == 0 -> lease_holder = id; lease_pid = cur; lease_wviews = 0
              :: else
              fi;
              if :: lease_pid == cur -> lease_wviews++ :: else fi
           :: else
           fi
        :: else
        fi
     fi
  fi;
  tn = 0; i = 0
}

/* Device::unmap: the entry keyed (caller, va) in the caller's handle's own
   table, or STATUS_INVALID_PARAMETER and nothing changes. */
inline Device_unmap(id, va) {
  if
  :: v_file[va] == id && v_owner[va] == cur -> retire(va, id); settle_lease(id); st = SUCCESS
  :: else -> st = INVALID_PARAMETER
  fi
}

/* Device::device_control: device state, the context, then the request.
   Simplified: codes, access and buffers are valid (those checks are
   sequential and tested on the host); every handle may write. */
inline Device_device_control(id, req, va) {
  if
  :: dev_state == SurpriseRemoved || dev_state == Removed -> st = DELETE_PENDING
  :: else ->
     if
     :: !ca_exists[id] || ca_cleaned[id] -> st = FILE_CLOSED
     :: else ->
        if
        :: req == MAP_RO -> Device_map(id, false)
        :: req == MAP_RW -> Device_map(id, true)
        :: req == UNMAP  -> Device_unmap(id, va)
        :: req == QUERY  -> st = SUCCESS                    /* Device::query: reads only */
        :: req == LOCK   -> Device_lock(id)
        :: req == UNLOCK -> Device_unlock(id)
        fi
     fi
  fi
}

/* Device::cleanup (IRP_MJ_CLEANUP): every view of the context, each in its
   owner (WinPlatform::unmap_view attaches), then the lease. */
inline Device_cleanup(id) {
  if
  :: ca_exists[id] && !ca_cleaned[id] ->
     ca_cleaned[id] = true;
     for (hv : 0 .. NVIEW - 1) {                         /* ca.views.drain_all */
       if :: v_file[hv] == id -> retire(hv, id) :: else fi
     }
     hv = 0;
     release_locks(id, NONE);                            /* the context's tool locks */
     settle_lease(id)
  :: else
  fi
}

/* Device::close (IRP_MJ_CLOSE): cleanup (finds nothing on Windows: views go
   at CLEANUP, never in CLOSE, and the model asserts it), then the context. */
inline Device_close(id) {
  tn = live_views;
  Device_cleanup(id);
  assert(tn == live_views);                             /* close unmapped nothing */
  ca_exists[id] = false; ca_cleaned[id] = false
}

/* Device::process_exited(pid): in every context, the views `pid` owns, in
   pid's own context (no attach: the notification runs in its last thread). */
inline Device_process_exited(who) {
  for (hf : 1 .. NFILE - 1) {
    if
    :: ca_exists[hf] ->
       for (hv : 0 .. NVIEW - 1) {                      /* ca.views.drain_where(pid) */
         if
         :: v_file[hv] == hf && v_owner[hv] == who ->
#ifdef REACH_EXIT_WITH_DUPLICATE_OPEN
            assert(fo_handles[hf] == 0);   /* witness: the exit unmaps a view whose handle lives on elsewhere */
#endif
            retire(hv, hf)
         :: else
         fi
       }
       release_locks(hf, who);                          /* its tool locks, in every context */
       settle_lease(hf)
    :: else
    fi
  }
  hv = 0; hf = 0
}

/* Device::revoke_all: every view of every context (each in its owner), and
   the lease. */
inline Device_revoke_all() {
  for (hv : 0 .. NVIEW - 1) {
    if :: v_file[hv] != 0 -> retire(hv, v_file[hv]) :: else fi
  }
  hv = 0;
  /* the device is going: its tool locks go with it, unwritten */
  for (hf : 1 .. NFILE - 1) {
    for (tp : 1 .. NPROC - 1) {
      if :: lk[hf * NPROC + tp] -> lk[hf * NPROC + tp] = false; UNCOUNT_LOCK(tp) :: else fi
    }
  }
  hf = 0; tp = NONE;
  lease_holder = 0; lease_pid = NONE; lease_wviews = 0
}

/* Device::query_remove: refused while a view lives or a context does (a
   handle is open, or its cleanup ran and its close has not come yet). */
inline Device_query_remove() {
  if
  :: live_views > 0 || ca_exists[F1] || ca_exists[F2] ->
     st = DEVICE_BUSY
  :: else ->
     if :: dev_state == Started -> dev_state = RemovePending :: else fi;
     st = SUCCESS
  fi
}

/* release_bar (src/windows/pnp.rs), under the device lock: BAR 0 leaves the
   platform only when no view refers to it; otherwise the driver logs "BUG"
   and keeps it (a leak), which the model treats as a failure. */
inline release_bar() {
  assert(live_views == 0);
  bar = bar_in_platform;
  bar_in_platform = false
}

/* drop(bar), after the device lock is released: MmUnmapIoSpace / the pool
   freed. No view may outlive it. */
inline drop_bar() {
  d_step {
    if
    :: bar ->
       for (i : 0 .. NVIEW - 1) { assert(!v_mapped[i]) }
       bar_mapped = false; bar = false; i = 0
    :: else
    fi
  }
}

/* ------------------------------------------------------------ the I/O manager and the dispatch routines (src/windows/dispatch.rs) */

/* How a dispatch routine is cut into steps. A control-device IRP: first
   step `enter` (control_enter); second step the rest: the device lock
   taken (the step waits while it is held), one core call, the lock released
   (the FastMutexGuard is dropped at the end of its statement),
   IoCompleteRequest; then what the I/O manager does when the IRP has
   completed (its reference on the file object goes). A stack-device IRP
   (PnP, power) is the same with IoAcquireRemoveLock in its first step and
   the remove lock's release in its second. Running a device-lock critical
   section as one step loses no interleaving: nothing under the lock blocks
   or takes another lock, and nothing done under it is seen by others before
   the release (acquire is a right mover, release a left mover: Lipton's
   reduction; releasing the remove lock and a file object reference are left
   movers too). IRPs are synchronous: none is pended, so none is cancelled. */

/* The first step of a control-device IRP. It takes no remove lock: it never
   touches the stack, and the Hca it reaches lives until unload, which comes
   only after the control device's last reference. SEED: it takes the stack
   device's remove lock, as when the stack device served tools itself. */
inline control_enter() {
#ifndef SEED_CONTROL_USES_STACK_REMOVE_LOCK
  ok = true
#else
  assert(stack_alive);        /* the remove lock is in the stack device's extension */
  IoAcquireRemoveLock()
#endif
}

/* The end of a control-device IRP's dispatch, after IoCompleteRequest. */
inline control_leave() {
#ifdef SEED_CONTROL_USES_STACK_REMOVE_LOCK
  IoReleaseRemoveLock();
#endif
  IrpReturned()
}

/* ObDereferenceObject(FileObject): `last` when the reference was the last:
   the caller then sends IRP_MJ_CLOSE (IopDeleteFile) from its thread. */
inline IoDereferenceFile(f) {
  assert(fo_refs[f] > 0);
  fo_refs[f]--;
  last = (fo_refs[f] == 0)
}

/* The end of a thread's kernel call: `intail` for a thread that counted
   itself in inflight (its process's exit waits for it). */
inline leave_kernel(intail) {
  f = 0;
  if :: intail -> inflight[cur]-- :: else fi
}

/* IopDeleteFile -> dispatch_close (IRP_MJ_CLOSE), when `last`: in the thread
   that dropped the file object's last reference (any process); then the
   file object's reference on the control device goes. Written as an option
   of an `if` (its first step is guarded by `last`). */
inline dispatch_close(f, intail) {
  d_step { last -> last = false; control_enter() }
  if
  :: d_step {
       ok && fo_ctx[f] && !core_locked ->                       /* FileContext::load */
#ifdef REACH_LATE_CLOSE
       assert(hca_linked);    /* witness: a CLOSE after REMOVE_DEVICE frees its context in the retired Hca */
#endif
       ExAcquireFastMutex(); assert(hca_alive); Device_close(f); ExReleaseFastMutex();
       fo_ctx[f] = false;                                      /* FileContext::clear */
       IoCompleteRequest(); control_leave();
       assert(ctl_refs > 0); ctl_refs--;
       leave_kernel(intail)
     }
  :: d_step {
       ok && !fo_ctx[f] -> IoCompleteRequest(); control_leave(); assert(ctl_refs > 0); ctl_refs--; leave_kernel(intail)
     }
  :: d_step { !ok -> assert(ctl_refs > 0); ctl_refs--; leave_kernel(intail) }
  fi
}

/* NtClose(h), first step (CloseHandle, or ObKillProcess at process exit):
   the handle leaves the table; `last` when it was the file object's last
   handle. Used inside the caller's d_step. */
inline NtClose_begin(h) {
  assert(h_open[h]);
  h_open[h] = false;
  f = FILE_OF(h);
  fo_handles[f]--;
  last = (fo_handles[f] == 0)
}

/* NtClose(h), the rest: IopCloseFile -> dispatch_cleanup (IRP_MJ_CLEANUP)
   when the last handle went, in this thread; then the handle's reference on
   the file object, and dispatch_close if that was the last. */
inline NtClose_rest(intail) {
  if
  :: d_step { last -> last = false; control_enter() }          /* dispatch_cleanup: enter */
     if
#ifndef SEED_RELEASE_LEASE_BEFORE_UNMAP
     :: d_step {
          ok && fo_ctx[f] && !core_locked ->                     /* FileContext::load */
          ExAcquireFastMutex(); assert(hca_alive); Device_cleanup(f); ExReleaseFastMutex();
          IoCompleteRequest(); control_leave();
          IoDereferenceFile(f)
        }
#else
     /* SEED: the lease is given back in one lock section and the views
        unmapped in a second one (say, to attach outside the lock): between
        the two, read-write views live without the lease. */
     :: d_step {
          ok && fo_ctx[f] && !core_locked ->
          ExAcquireFastMutex(); assert(hca_alive);
          if
          :: ca_exists[f] && !ca_cleaned[f] && lease_holder == f ->
             lease_holder = 0; lease_pid = NONE; lease_wviews = 0
          :: else
          fi;
          ExReleaseFastMutex()
        }
        d_step {
          !core_locked ->
          ExAcquireFastMutex(); assert(hca_alive); Device_cleanup(f); ExReleaseFastMutex();
          IoCompleteRequest(); control_leave();
          IoDereferenceFile(f)
        }
#endif
     :: d_step { ok && !fo_ctx[f] -> IoCompleteRequest(); control_leave(); IoDereferenceFile(f) }
     :: d_step { !ok -> IoDereferenceFile(f) }
     fi
  :: d_step { !last -> IoDereferenceFile(f) }                  /* not the last handle: no IRP */
  fi;
  if
  :: dispatch_close(f, intail)
  :: d_step { !last -> leave_kernel(intail) }
  fi
}

/* dispatch_device_control (IRP_MJ_DEVICE_CONTROL), synchronously in the
   requester's thread, then the I/O manager's completion (the IRP's
   reference on the file object goes; IRP_MJ_CLOSE from here if the handles
   were closed meanwhile). */
inline dispatch_device_control(f) {
  d_step { control_enter() }
  if
  :: d_step {
       ok && !core_locked ->
       /* FileContext::load: the IRP references the file object, so CLOSE
          has not run, and the handle came from a successful create */
       assert(fo_ctx[f]);
#ifdef REACH_REQUEST_AFTER_REMOVE
       assert(dev_state != Removed);   /* witness: a request reaches the removed core (STATUS_DELETE_PENDING) */
#endif
       ExAcquireFastMutex(); assert(hca_alive); Device_device_control(f, req, va); ExReleaseFastMutex();
       IoCompleteRequest(); control_leave();
       st = 0; req = 0; va = 0;
       IoDereferenceFile(f);
#ifdef REACH_CLOSE_AFTER_REQUEST
       assert(!last);          /* witness: the request's completion sends IRP_MJ_CLOSE */
#endif
       skip
     }
  :: d_step { !ok -> req = 0; va = 0; IoDereferenceFile(f) }
  fi;
  if
  :: dispatch_close(f, 1)
  :: d_step { !last -> leave_kernel(1) }
  fi
}

/* One DeviceIoControl from a thread of `cur` on handle hh: an option of
   the request loop's choice. NtDeviceIoControlFile looks the handle up and
   references its file object for the IRP (ObReferenceObjectByHandle); the
   loop then runs dispatch_device_control. Simplified: a thread issues
   requests only on open handles (on a closed one the I/O manager answers
   STATUS_INVALID_HANDLE without the driver). */
#define REQUEST(hh, rr, vv) \
  :: d_step { \
       n > 0 && !exiting[cur] && hh != 0 && h_open[hh] -> \
       n--; req = rr; va = vv; f = FILE_OF(hh); fo_refs[f]++; inflight[cur]++ \
     }

/* ------------------------------------------------------------ the actors */

/* The I/O manager after IRP_MJ_CREATE: ObInsertObject: the handle takes
   the create's reference; a failed create's file object goes without
   CLEANUP or CLOSE, and with it its reference on the control device. */
inline IoCreateFile_done(h) {
  if
  :: st == SUCCESS -> h_open[h] = true; fo_handles[f] = 1
  :: else -> fo_refs[f] = 0; assert(ctl_refs > 0); ctl_refs--
  fi;
  st = 0;
  leave_kernel(1)
}

/* CreateFile(h) in a thread of `cur`: while the control device exists,
   IopParseDevice makes the file object (referenced by the create), takes a
   reference on the device and sends IRP_MJ_CREATE (dispatch_create);
   otherwise the name is not there (before START, or after IoDeleteDevice
   in REMOVE_DEVICE): STATUS_OBJECT_NAME_NOT_FOUND, no IRP. */
inline CreateFile(h) {
  if
  :: d_step {
       !exiting[cur] && control_exists ->
       f = FILE_OF(h); fo_refs[f] = 1; ctl_refs++; inflight[cur]++;
       control_enter();
       if :: !ok -> st = DELETE_PENDING :: else fi
     }
     if
     :: d_step {
          ok && !core_locked ->
#ifdef REACH_CREATE_RACING_DELETE
          assert(control_exists);   /* witness: a create sent before IoDeleteDevice reaches the removed core */
#endif
          ExAcquireFastMutex(); assert(hca_alive); Device_open(f); ExReleaseFastMutex();
          if :: st == SUCCESS -> fo_ctx[f] = true :: else fi;   /* FileContext::store */
          IoCompleteRequest(); control_leave();
          IoCreateFile_done(h)
        }
     :: d_step { !ok -> IoCreateFile_done(h) }
     fi
  :: d_step {
       !exiting[cur] && !control_exists ->
#ifdef REACH_OPEN_WITHOUT_CONTROL_DEVICE
       assert(false);         /* witness: an open finds no control device (not made yet, or deleted) */
#endif
       skip
     }
  :: d_step { exiting[cur] -> skip }
  fi
}

/* A thread of process `cur` issuing DeviceIoControl on h1 (and h2). With
   h2 = H_B it first opens B (CreateFile: IRP_MJ_CREATE). With
   START_IN_MODEL, P1's thread first opens A and duplicates it into P2
   (DuplicateHandle: handle D, the same file object), unless P2 is ending. */
proctype Client(byte cur; byte h1; byte h2; byte n)
{
  byte f, req, va, st;
  bool ok, irp_done, last;

#ifdef START_IN_MODEL
  if
  :: cur == P1 ->
     CreateFile(H_A);
     if
     :: d_step { h_open[H_A] && !exiting[P1] && !exiting[P2] -> h_open[H_D] = true; fo_handles[F1]++; fo_refs[F1]++ }
     :: else
     fi
  :: else
  fi;
#endif
  if
  :: h2 == H_B -> CreateFile(H_B)
  :: else
  fi;

  do
  :: if
#ifndef GATEWAY
     REQUEST(h1, MAP_RO, 0)
     REQUEST(h1, MAP_RW, 0)
     REQUEST(h1, UNMAP, 0)            /* own, another process's or handle's, or no view */
     REQUEST(h1, UNMAP, 1)
#if NVIEW > 2
     REQUEST(h1, UNMAP, 2)
#endif
#ifdef WITH_QUERY
     REQUEST(h1, QUERY, 0)
#endif
     REQUEST(h2, MAP_RO, 0)
     REQUEST(h2, MAP_RW, 0)
     REQUEST(h2, UNMAP, 0)
     REQUEST(h2, UNMAP, 1)
#if NVIEW > 2
     REQUEST(h2, UNMAP, 2)
#endif
#ifdef WITH_QUERY
     REQUEST(h2, QUERY, 0)
#endif
#else
     /* a ConnectX-4: nothing is mapped; tools take and free a lock */
     REQUEST(h1, LOCK, 0)
     REQUEST(h1, UNLOCK, 0)
     REQUEST(h2, LOCK, 0)
     REQUEST(h2, UNLOCK, 0)
#endif
     /* done; or the process is terminating (a thread outside the kernel
        dies at once); or its handles are closed */
     :: d_step { n == 0 || exiting[cur] || (!h_open[h1] && (h2 == 0 || !h_open[h2])) -> n = 0 }
        break
     fi;
     dispatch_device_control(f)
  od
}

/* Another thread of `cur`: CloseHandle(h) at any time (or never, if the
   process is terminated first: then its handle-table rundown closes it). */
proctype Closer(byte cur; byte h)
{
  byte f, st;
  bool ok, irp_done, last;

  if
  :: d_step { !exiting[cur] && h_open[h] -> inflight[cur]++; NtClose_begin(h) }
     NtClose_rest(1)
  :: exiting[cur]
  fi
}

/* PspExitProcess(TRUE) -> process_notify (src/windows/mod.rs), the
   PsSetCreateProcessNotifyRoutineEx callback, in the exiting process's last
   thread: a process no filter counts passes without any lock (VIEW_OWNERS);
   otherwise DEVICES.lock(), then, for each linked device whose own filter
   counts it, its lock and Device::process_exited(pid). A process that owns
   a view is never passed over: MmCleanProcessAddressSpace (ProcessExit)
   asserts that none of its views outlives it. */
inline PspExitProcess() {
#ifndef SEED_NO_PROCESS_NOTIFY
  if
  :: d_step { !notify_registered -> gone[cur] = true; assert(lease_pid != cur) }  /* unloaded: not called */
  :: d_step {
       notify_registered && vo_all[cur] == 0 ->                  /* !VIEW_OWNERS.may_own(pid) */
#ifdef REACH_EXIT_FAST_PATH
       assert(!(as_alive[P1] && as_alive[P2]));  /* witness: a process ends past the filter while the other runs */
#endif
       gone[cur] = true; assert(lease_pid != cur)
     }
  :: d_step { notify_registered && vo_all[cur] != 0 -> notify_running++ }
     atomic { !devices_locked -> devices_locked = true }
     if
     :: d_step {                                                 /* devices.for_each: !hca.owners.may_own */
          hca_linked && vo_dev[cur] == 0 ->
          devices_locked = false;
          gone[cur] = true; assert(lease_pid != cur)
        }
     :: d_step {
          hca_linked && vo_dev[cur] != 0 && !core_locked ->
          ExAcquireFastMutex(); assert(hca_alive); Device_process_exited(cur); ExReleaseFastMutex();
          devices_locked = false;
          gone[cur] = true; assert(lease_pid != cur)            /* the lease never stays with it */
        }
     :: d_step { !hca_linked -> devices_locked = false; gone[cur] = true; assert(lease_pid != cur) }
     fi;
     notify_running--
  fi
#else
  gone[cur] = true      /* SEED: the notification never reaches the driver */
#endif
}

/* ObKillProcess: NtClose of every handle the process still has, in its
   last thread. */
inline ObKillProcess() {
  if
  :: d_step { h_open[ha] -> NtClose_begin(ha) }
     NtClose_rest(0)
  :: else
  fi;
  if
  :: d_step { hb != 0 && h_open[hb] -> NtClose_begin(hb) }
     NtClose_rest(0)
  :: else
  fi
}

/* The end of process `cur` (ExitProcess, or TerminateProcess from
   elsewhere), at any time, in the order of PspExitThread for the last
   thread (WRK): PspExitProcess (the process-notify routines), ObKillProcess
   (the handle table, in its own context), MmCleanProcessAddressSpace. With
   EXIT_ORDER_EITHER it may also be killed by another process whose thread
   closes its handles early (ObClearProcessHandleTable, attached: cleanup
   runs in the killer's context, so unmaps attach to the owner), before the
   notification. */
proctype ProcessExit(byte cur; byte ha; byte hb)
{
  byte f, st, self;
  bool ok, irp_done, last;

  exiting[cur] = true;
  /* its threads die as they leave the kernel: a request in the driver
     completes first */
  (inflight[cur] == 0);
#ifndef EXIT_ORDER_EITHER
  PspExitProcess();
  ObKillProcess();
#else
  if
  :: PspExitProcess(); ObKillProcess()
  :: self = cur; cur = SYSTEM;          /* the killer's thread (any other process) */
     ObKillProcess();
     cur = self;
     PspExitProcess()
  fi;
#endif
  /* MmCleanProcessAddressSpace: no view may outlive it; and no lock it
     took is left on a device that is still there (the next tool gets it at
     once) */
  d_step {
    for (i : 0 .. NVIEW - 1) { assert(!(v_mapped[i] && v_owner[i] == cur)) }
    i = 0;
    assert(dev_sem != cur || !bar_in_platform);
    as_alive[cur] = false
  }
}

/* ------------------------------------------------------------ PnP and power (src/windows/pnp.rs) */

/* dispatch_pnp(IRP_MN_START_DEVICE) -> start() (START_IN_MODEL): down and
   back (forward_and_wait, no lock held), BAR 0 mapped; at the first start
   Hca::create: the block and its core (NotStarted), linked into DEVICES
   under its lock (the process-exit notification may meet it from here; it
   owns no view), then the control device (IoCreateDevice, its descriptor,
   DO_DEVICE_INITIALIZING cleared: creates reach it from here, and the core
   answers STATUS_DEVICE_BUSY until it starts), ext.hca stored; then, under
   the device lock, BAR 0 handed to the platform and Device::start; then the
   names (link, interface: not modelled). */
inline pnp_start() {
  d_step { IoAcquireRemoveLock(); assert(ok); bar_mapped = true; bar = true }
  d_step { !devices_locked -> hca_alive = true; hca_linked = true }
  d_step { control_exists = true; stack_hca = true }
  d_step {
    !core_locked ->
    ExAcquireFastMutex(); assert(hca_alive);
    bar_in_platform = true; bar = false; dev_state = Started;
    ExReleaseFastMutex();
    IoCompleteRequest(); IoReleaseRemoveLock(); IrpReturned()
  }
}

/* dispatch_pnp(IRP_MN_QUERY_REMOVE_DEVICE) -> query(): the core decides;
   a refusal is completed here, an agreement passed down. (The PnP IRPs'
   own remove-lock acquire is folded into their first step: before
   REMOVE_DEVICE it cannot fail, and only REMOVE_DEVICE, in this same
   thread, waits for it.) */
inline pnp_query_remove() {
  d_step {
    !core_locked ->
    IoAcquireRemoveLock(); assert(ok && stack_alive && stack_hca);
    ExAcquireFastMutex(); assert(hca_alive); Device_query_remove(); ExReleaseFastMutex();
    if
    :: st == SUCCESS -> IoCallDriver()                         /* set_status, skip, call */
    :: else ->
       IoCompleteRequest();                                    /* STATUS_DEVICE_BUSY */
#ifdef REACH_QUERY_REMOVE_REFUSED
       assert(cur != SYSTEM || !(as_alive[P1] || as_alive[P2]));   /* witness: refused while a tool runs */
#endif
#ifdef SEED_COMPLETE_TWICE
       IoCallDriver();                                         /* SEED: passed down as well */
#endif
       skip
    fi;
    IoReleaseRemoveLock(); IrpReturned()
  }
}

/* dispatch_pnp(IRP_MN_CANCEL_REMOVE_DEVICE) -> cancel(): down and back
   (forward_and_wait, no lock held), then Device::cancel_remove. */
inline pnp_cancel_remove() {
  d_step {
    !core_locked ->
    IoAcquireRemoveLock(); assert(ok && stack_alive && stack_hca);
    ExAcquireFastMutex(); assert(hca_alive);
    if :: dev_state == RemovePending -> dev_state = Started :: else fi;
    ExReleaseFastMutex();
    IoCompleteRequest(); IoReleaseRemoveLock(); IrpReturned()
  }
}

/* dispatch_pnp(IRP_MN_SURPRISE_REMOVAL) -> surprise_removal(). */
inline pnp_surprise_removal() {
#ifdef SEED_DEREF_BUS_FIRST
  /* SEED: the bus interface dereferenced first (say, in the IRP's first
     lines), before the core lets go of it under the lock */
  d_step { bar_mapped = false }
#endif
  d_step {
    !core_locked ->
    IoAcquireRemoveLock(); assert(ok && stack_alive && stack_hca);
    ExAcquireFastMutex(); assert(hca_alive);
    Device_revoke_all();                                      /* Device::surprise_remove */
    if :: dev_state != Removed -> dev_state = SurpriseRemoved :: else fi;
    release_bar();
    ExReleaseFastMutex()
  }
  drop_bar();
  /* hide(): the interface disabled, the link deleted (no lock; not
     modelled); down; the hold goes at the return */
  d_step { IoCallDriver(); IoReleaseRemoveLock(); IrpReturned() }
}

/* dispatch_pnp(IRP_MN_REMOVE_DEVICE) -> remove(): the core removed (every
   view revoked, STATUS_DELETE_PENDING from here), the remove lock's wait
   (every stack IRP in flight finishes), ext.hca taken, the core removed
   again and BAR 0 released; Hca::retire (out of DEVICES into GRAVEYARD, the
   control device deleted: new opens fail, open handles keep reaching the
   Hca); down; device::destroy (IoDetachDevice, drop_in_place, IoDeleteDevice
   of the stack device). */
inline pnp_remove_device() {
  d_step {
    !core_locked ->
    IoAcquireRemoveLock(); assert(ok && stack_alive);
    ExAcquireFastMutex(); assert(hca_alive);
    Device_revoke_all(); dev_state = Removed;                  /* Device::remove */
#ifndef SEED_WAIT_UNDER_CORE_LOCK
    ExReleaseFastMutex()
#else
    skip      /* SEED: the device lock is still held across the wait below */
#endif
  }
  /* hide() */
#ifndef SEED_NO_REMOVE_LOCK_WAIT
  IoReleaseRemoveLockAndWait();                                /* hold.release_and_wait() */
#ifdef SEED_WAIT_UNDER_CORE_LOCK
  d_step { ExReleaseFastMutex() }
#endif
#else
  /* SEED: IoReleaseRemoveLockAndWait without the wait: Removed, this hold
     and the bias go, and nobody waits for the IRPs in flight */
  d_step { rl_removed = true; rl_count = rl_count - 2; ok = false; if :: rl_count == 0 -> rl_event = true :: else fi }
#endif
  d_step {
    !core_locked ->
    stack_hca = false;                                         /* ext.hca.swap(null) */
    ExAcquireFastMutex(); assert(hca_alive);
    Device_revoke_all(); dev_state = Removed;                  /* Device::remove again */
    release_bar();
    ExReleaseFastMutex()
  }
  drop_bar();
  /* Hca::retire: DEVICES.lock(), unlink; GRAVEYARD; IoDeleteDevice(control) */
  d_step {
    !devices_locked ->
    hca_linked = false;
    control_exists = false;
#ifdef SEED_FREE_HCA_AT_REMOVE
    assert(!core_locked);
    hca_alive = false         /* SEED: the Hca freed here, not at unload */
#endif
    skip
  }
  /* down; then device::destroy */
  d_step {
    IoCallDriver();
    assert(rl_count == 0 && rl_removed);                       /* no stack IRP is in flight */
    stack_alive = false;
    IrpReturned()
  }
}

/* A system QUERY_POWER for a sleeping state on the stack device
   (dispatch -> pnp::power), sent by the power manager while the device
   object exists: the remove lock, then, if the stack has its Hca, the core's
   answer under the device lock (Device::query_system_sleep: refused while
   the write lease is held), then down or completed, and the hold released. */
proctype PowerIrp()
{
  byte st;
  bool ok, irp_done;

  if
  :: d_step { stack_alive -> IoAcquireRemoveLock() }
     if
     :: d_step {
          ok && !core_locked ->
          assert(stack_alive);                                 /* ext is read */
          if
          :: stack_hca ->
             ExAcquireFastMutex(); assert(hca_alive);
             if :: lease_holder != 0 -> st = DEVICE_BUSY :: else -> st = SUCCESS fi;
             ExReleaseFastMutex()
          :: else -> st = SUCCESS
          fi;
          if :: st == SUCCESS -> IoCallDriver() :: else -> IoCompleteRequest() fi;
          IoReleaseRemoveLock(); IrpReturned(); st = 0
        }
     :: d_step { !ok -> skip }
     fi
  :: d_step { !stack_alive -> skip }
  fi
}

/* The PnP manager, in a system thread, one PnP IRP at a time. START first
   with START_IN_MODEL. PNP 1: a query-remove at any time (agreed:
   REMOVE_DEVICE; refused: CANCEL_REMOVE). PNP 2: a surprise removal at any
   time, then REMOVE_DEVICE at once (Windows waits for the handles of the
   stack's own device objects, which tools never hold: the control device
   is not in the stack). Then, if the device is still there once both tools
   have ended, the uninstall: query-remove, which must be agreed, and
   remove. */
proctype PnpManager()
{
  byte cur = SYSTEM, st;
  bool ok, irp_done, bar, removed;

#ifdef START_IN_MODEL
  pnp_start();
#endif
#if PNP == 1
  pnp_query_remove();
  if
  :: st == SUCCESS -> st = 0; pnp_remove_device(); removed = true
  :: else -> st = 0; pnp_cancel_remove()
  fi;
#endif
#if PNP == 2
  pnp_surprise_removal();
  pnp_remove_device();
  removed = true;
#endif
  if
  :: !removed ->
     (!as_alive[P1] && !as_alive[P2]);
     pnp_query_remove();
     assert(st == SUCCESS);          /* nothing is left to refuse the uninstall */
     st = 0;
     pnp_remove_device()
  :: else
  fi
}

/* DriverUnload, which the I/O manager calls once no device object of the
   driver is left: the stack device deleted, the control device deleted and
   its last reference gone (every file object's CLOSE returned, no create in
   flight). It removes the process notification (which waits for running
   calls), then free_graveyard drops and frees the Hca: nothing can reach it
   any more. */
proctype Unload()
{
  (!stack_alive && !control_exists && ctl_refs == 0);
  /* PsSetCreateProcessNotifyRoutineEx(process_notify, TRUE): no new call,
     and the running ones finish first */
  notify_registered = false;
  (notify_running == 0);
  d_step {
    assert(!core_locked && !devices_locked && !hca_linked);
    assert(!ca_exists[F1] && !ca_exists[F2]);        /* every context went at its CLOSE */
    assert(live_views == 0 && !bar_in_platform);
#ifndef SEED_FREE_HCA_AT_REMOVE
    assert(hca_alive);
#endif
#ifdef REACH_UNLOAD_WHILE_A_TOOL_RUNS
    assert(!(as_alive[P1] || as_alive[P2]));  /* witness: the driver unloads while a tool (no handle left) lives on */
#endif
    hca_alive = false
  }
}

init
{
  atomic {
#ifndef START_IN_MODEL
    /* Before the model starts: DriverEntry (the process notification
       registered), AddDevice, START_DEVICE (BAR 0 mapped, the Hca linked
       into DEVICES, the control device made, Device::start); P1's
       CreateFile (IRP_MJ_CREATE: context F1, handle A) and
       DuplicateHandle(A) into P2 (handle D, the same file object). */
    ca_exists[F1] = true; fo_ctx[F1] = true;
    h_open[H_A] = true; h_open[H_D] = true;
    fo_handles[F1] = 2; fo_refs[F1] = 2; ctl_refs = 1;
#else
    /* Before the model starts: DriverEntry and AddDevice only. */
    dev_state = NotStarted;
    hca_alive = false; hca_linked = false; control_exists = false; stack_hca = false;
    bar_in_platform = false; bar_mapped = false;
#endif
    as_alive[P1] = true; as_alive[P2] = true; as_alive[SYSTEM] = true;

    run Client(P1, H_A, 0, N1);
#ifndef NO_B
    run Client(P2, H_D, H_B, N2);
#else
    run Client(P2, H_D, 0, N2);
#endif
#ifndef NO_CLOSER1
    run Closer(P1, H_A);
#endif
#ifndef NO_CLOSER2
    run Closer(P2, H_D);
#endif
    run ProcessExit(P1, H_A, 0);
    run ProcessExit(P2, H_D, H_B);
    run PnpManager();
#ifdef POWER_IRP
    run PowerIrp();
#endif
    run Unload()
  }
  /* every actor has finished (a deadlock leaves init blocked here: an
     invalid end state) */
#ifndef LIVENESS
  (_nr_pr == 1);
#else
  (_nr_pr == 2);          /* the never claim counts as a process too */
#endif
  d_step {
    /* after all handles closed, removal completed and the driver unloaded,
       nothing is left */
    assert(!hca_alive && !hca_linked && !stack_alive && !control_exists && dev_state == Removed);
    assert(live_views == 0 && lease_holder == 0 && lease_pid == NONE);
    for (i : 0 .. NVIEW - 1) { assert(!v_mapped[i] && v_file[i] == 0) }
    for (i : 0 .. NFILE * NPROC - 1) { assert(!lk[i]) }
    for (i : 1 .. NFILE - 1) {
      assert(!ca_exists[i] && fo_handles[i] == 0 && fo_refs[i] == 0)
    }
    for (i : 0 .. NHANDLE - 1) { assert(!h_open[i]) }
    for (i : 0 .. NPROC - 1) { assert(proc_refs[i] == 0 && inflight[i] == 0) }
    assert(!as_alive[P1] && !as_alive[P2]);
    assert(!bar_in_platform && !bar_mapped);
    assert(rl_count == 0 && rl_removed);
    assert(!core_locked && !devices_locked && ctl_refs == 0);
    i = 0;
#ifdef LIVENESS
    done = true
#endif
  }
}
