//! The simulated platform: BAR 0 is a memfd, each user view a real `mmap` of
//! it, `PROT_READ` for read-only views and `PROT_READ | PROT_WRITE` for
//! read-write ones. It also keeps Driver Verifier's ledger of views: every
//! view unmapped exactly once, in its owner's process, never after that
//! process ended. A violation panics, as Verifier would bugcheck.

use crate::core::{PageSpan, Pid, Platform};
use crate::status::{Result, Status};
use memmap2::{MmapOptions, MmapRaw};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// BAR 0 as the device sees it: shared memory, read and written with
/// `pread`/`pwrite`, which are coherent with every `MAP_SHARED` view of it.
#[derive(Debug)]
pub(crate) struct Bar {
    mem: File,
    size: u32,
}

impl Bar {
    pub fn new(size: u32) -> std::io::Result<Bar> {
        let fd = rustix::fs::memfd_create("mlnx_hca-bar0", rustix::fs::MemfdFlags::CLOEXEC)?;
        let mem = File::from(fd);
        mem.set_len(u64::from(size))?;
        Ok(Bar { mem, size })
    }

    pub fn read_dword(&self, offset: u32) -> u32 {
        self.check(offset);
        let mut b = [0u8; 4];
        self.mem
            .read_exact_at(&mut b, u64::from(offset))
            .expect("memfd read");
        u32::from_le_bytes(b)
    }

    pub fn write_dword(&self, offset: u32, value: u32) {
        self.check(offset);
        self.mem
            .write_all_at(&value.to_le_bytes(), u64::from(offset))
            .expect("memfd write");
    }

    fn check(&self, offset: u32) {
        assert!(
            offset % 4 == 0 && offset < self.size,
            "device access at {offset:#x} outside BAR 0 or unaligned"
        );
    }
}

/// One user view: the mapping and the process that owns it.
#[derive(Debug)]
pub(crate) struct SimView {
    map: MmapRaw,
    owner: Pid,
}

#[derive(Debug, Clone, Copy)]
struct Ledger {
    owner: Pid,
    writable: bool,
}

/// Faults to inject: the Nth call (counting from 1) of each kind fails.
#[derive(Debug, Default, Clone, Copy)]
pub struct Faults {
    /// Fail this map (the platform's `MmMapLockedPagesSpecifyCache`).
    pub fail_map_at: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct SimPlatform {
    bar: std::sync::Arc<Bar>,
    /// The process whose context the driver runs in right now.
    context: Pid,
    ledger: HashMap<usize, Ledger>,
    ended: HashSet<Pid>,
    attaches: u64,
    maps: u64,
    faults: Faults,
}

impl SimPlatform {
    pub fn new(bar: std::sync::Arc<Bar>) -> Self {
        SimPlatform {
            bar,
            context: 0,
            ledger: HashMap::new(),
            ended: HashSet::new(),
            attaches: 0,
            maps: 0,
            faults: Faults::default(),
        }
    }

    /// The I/O manager sets the context before each call into the driver.
    pub fn set_context(&mut self, pid: Pid) {
        self.context = pid;
    }

    pub fn live_views(&self) -> usize {
        self.ledger.len()
    }

    pub fn views_of(&self, pid: Pid) -> usize {
        self.ledger.values().filter(|l| l.owner == pid).count()
    }

    pub fn writable_views(&self) -> usize {
        self.ledger.values().filter(|l| l.writable).count()
    }

    pub fn attaches(&self) -> u64 {
        self.attaches
    }

    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
        self.maps = 0;
    }

    /// `pid` ended: no view of it may exist now or be touched later.
    pub fn process_ended(&mut self, pid: Pid) {
        let left = self.views_of(pid);
        assert!(
            left == 0,
            "DRIVER VERIFIER: {left} view(s) outlived their process {pid}"
        );
        self.ended.insert(pid);
    }

    /// A pid is being used again by a new process.
    pub fn process_started(&mut self, pid: Pid) {
        self.ended.remove(&pid);
    }
}

impl Platform for SimPlatform {
    type View = SimView;

    fn map_view(&mut self, span: PageSpan, writable: bool) -> Result<(SimView, u64)> {
        self.maps += 1;
        if self.faults.fail_map_at == Some(self.maps) {
            return Err(Status::INSUFFICIENT_RESOURCES);
        }
        let mut options = MmapOptions::new();
        // CAST: a span of a u32-sized BAR fits usize on a 64-bit host.
        options
            .offset(span.byte_offset())
            .len(span.byte_len() as usize);
        let map = if writable {
            options.map_raw(&self.bar.mem)
        } else {
            options.map_raw_read_only(&self.bar.mem)
        };
        let map = map.map_err(|_| Status::INSUFFICIENT_RESOURCES)?;
        // CAST: the address is what the "user" gets back as its VA.
        let addr = map.as_ptr() as usize;
        self.ledger.insert(
            addr,
            Ledger {
                owner: self.context,
                writable,
            },
        );
        Ok((
            SimView {
                map,
                owner: self.context,
            },
            addr as u64,
        ))
    }

    fn unmap_view(&mut self, view: SimView) {
        assert!(
            !self.ended.contains(&view.owner),
            "DRIVER VERIFIER: unmapping a view of process {} after it ended",
            view.owner
        );
        // KeStackAttachProcess when the driver runs in another process.
        let attached = view.owner != self.context;
        if attached {
            self.attaches += 1;
        }
        let addr = view.map.as_ptr() as usize;
        let entry = self.ledger.remove(&addr);
        let Some(ledger) = entry else {
            panic!("DRIVER VERIFIER: view at {addr:#x} unmapped twice or never mapped");
        };
        assert_eq!(
            ledger.owner, view.owner,
            "DRIVER VERIFIER: view at {addr:#x} changed owner"
        );
        // munmap, in the owner's (attached) context.
        drop(view.map);
    }
}
