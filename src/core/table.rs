//! The per-handle mapping table, keyed by (owner process, user VA).
//!
//! An open-addressing hash table (linear probing, backward-shift deletion)
//! whose memory only ever grows through `try_reserve`: a kernel allocation
//! failure becomes `STATUS_INSUFFICIENT_RESOURCES` for the map that needed it,
//! never a panic. Lookup and removal are O(1); a table starts empty and
//! allocates on the first map, so a handle that only queries costs nothing.

use super::Pid;
use crate::status::{Result, Status};
use alloc::vec::Vec;

/// What a view is found by: the process that mapped it and the VA the map
/// returned to that process. VAs are per process, so the pid is part of the
/// key: another process passing the same number finds nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewKey {
    /// The process that owns the view.
    pub pid: Pid,
    /// The VA returned to it.
    pub va: u64,
}

/// One live view.
#[derive(Debug)]
pub(crate) struct Entry<V> {
    pub key: ViewKey,
    pub writable: bool,
    pub view: V,
}

/// Smallest table that is allocated (slots).
const MIN_SLOTS: usize = 8;

/// Entries [`ViewTable::drain_all`] gathers before handing them over: about
/// 1 KiB of kernel stack for the Windows layer's views (72 bytes an entry),
/// 768 bytes for the simulator's.
const DRAIN_BATCH: usize = 16;

#[derive(Debug)]
pub(crate) struct ViewTable<V> {
    /// Empty, or a power of two in length, at most three quarters full: at
    /// most half full, 10,000 views took 32,768 slots (1.5 MiB with the
    /// simulator's views) that cleanup sweeps, 16 times the slots of 1,000.
    slots: Vec<Option<Entry<V>>>,
    len: usize,
}

impl<V> ViewTable<V> {
    pub const fn new() -> Self {
        ViewTable { slots: Vec::new(), len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn home(&self, key: &ViewKey) -> usize {
        // Fibonacci hashing of the VA mixed with the pid; the top bits index.
        // CAST: the pid is widened to mix it into the VA.
        let mixed = (key.va ^ ((key.pid as u64) << 40) ^ (key.pid as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let bits = self.slots.len().trailing_zeros();
        // CAST: the top `bits` bits of a u64 index the slots, so they fit usize.
        (mixed >> (64 - bits)) as usize
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn find(&self, key: &ViewKey) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mut i = self.home(key);
        while let Some(entry) = &self.slots[i] {
            if entry.key == *key {
                return Some(i);
            }
            i = (i + 1) & self.mask();
        }
        None
    }

    /// Makes room for one more entry, growing with a fallible allocation.
    /// On `Err` the table is unchanged.
    pub fn reserve_one(&mut self) -> Result<()> {
        if (self.len + 1) * 4 <= self.slots.len() * 3 {
            return Ok(());
        }
        let new_len = (self.slots.len() * 2).max(MIN_SLOTS);
        let mut slots: Vec<Option<Entry<V>>> = Vec::new();
        slots.try_reserve_exact(new_len).map_err(|_| Status::INSUFFICIENT_RESOURCES)?;
        slots.resize_with(new_len, || None);
        let old = core::mem::replace(&mut self.slots, slots);
        self.len = 0;
        for entry in old.into_iter().flatten() {
            self.place(entry);
        }
        Ok(())
    }

    /// Puts an entry in a table known to have room and not to hold its key.
    fn place(&mut self, entry: Entry<V>) {
        let mut i = self.home(&entry.key);
        while self.slots[i].is_some() {
            i = (i + 1) & self.mask();
        }
        self.slots[i] = Some(entry);
        self.len += 1;
    }

    /// Inserts after [`reserve_one`](Self::reserve_one) succeeded. A key that
    /// is already present is refused and the entry handed back.
    pub fn insert(&mut self, entry: Entry<V>) -> core::result::Result<(), Entry<V>> {
        if self.find(&entry.key).is_some() || (self.len + 1) * 4 > self.slots.len() * 3 {
            return Err(entry);
        }
        self.place(entry);
        Ok(())
    }

    #[cfg(test)]
    pub fn contains(&self, key: &ViewKey) -> bool {
        self.find(key).is_some()
    }

    pub fn remove(&mut self, key: &ViewKey) -> Option<Entry<V>> {
        let i = self.find(key)?;
        Some(self.take_at(i))
    }

    /// Removes slot `i` and shifts the rest of its probe run back, so that no
    /// tombstones are needed.
    fn take_at(&mut self, i: usize) -> Entry<V> {
        let mask = self.mask();
        let taken = self.slots[i].take();
        self.len -= 1;
        let mut hole = i;
        let mut j = (i + 1) & mask;
        while let Some(entry) = &self.slots[j] {
            let home = self.home(&entry.key);
            // The entry at j may move into the hole unless its home lies in
            // (hole, j] cyclically.
            let stays = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if !stays {
                self.slots[hole] = self.slots[j].take();
                hole = j;
            }
            j = (j + 1) & mask;
        }
        match taken {
            Some(entry) => entry,
            None => unreachable!("take_at is only called on an occupied slot"),
        }
    }

    /// Removes every entry for which `pred` holds and hands each to `sink`.
    /// One pass over the slots: linear in the table's size.
    pub fn drain_where(&mut self, pred: impl Fn(&Entry<V>) -> bool, mut sink: impl FnMut(Entry<V>)) {
        let mut i = 0;
        while i < self.slots.len() {
            match &self.slots[i] {
                // A removal may shift a not yet seen entry into slot i: look again.
                Some(entry) if pred(entry) => sink(self.take_at(i)),
                _ => i += 1,
            }
        }
    }

    /// Removes every entry, handing each to `sink`, and frees the slots.
    ///
    /// The entries go over in batches gathered from consecutive slots. The
    /// sink unmaps (a system call each); by the time it returns, a large
    /// table has been pushed out of the cache, and reading slot by slot
    /// between unmaps would miss on almost every entry, which made a cleanup
    /// of 10,000 views cost the driver three times as much per view as one of
    /// 1,000. A batch is read in one sequential sweep and then sits in a small
    /// buffer on the stack, so the driver's cost per view stays the same at
    /// any size (benches/crspace.rs, `cleanup`).
    pub fn drain_all(&mut self, mut sink: impl FnMut(Entry<V>)) {
        let slots = core::mem::take(&mut self.slots);
        self.len = 0;
        let mut batch: [Option<Entry<V>>; DRAIN_BATCH] = core::array::from_fn(|_| None);
        let mut gathered = 0;
        for entry in slots.into_iter().flatten() {
            batch[gathered] = Some(entry);
            gathered += 1;
            if gathered == DRAIN_BATCH {
                batch.iter_mut().filter_map(Option::take).for_each(&mut sink);
                gathered = 0;
            }
        }
        batch.iter_mut().filter_map(Option::take).for_each(sink);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry<V>> {
        self.slots.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;

    fn entry(pid: Pid, va: u64) -> Entry<u64> {
        Entry { key: ViewKey { pid, va }, writable: false, view: va }
    }

    #[test]
    fn insert_find_remove_many() {
        let mut t = ViewTable::new();
        for n in 0..5000u64 {
            t.reserve_one().unwrap();
            t.insert(entry((n % 3) as Pid, 0x7f00_0000_0000 + n * 0x1000 + 0x14)).unwrap();
        }
        assert_eq!(t.len(), 5000);
        assert!(t.insert(entry(0, 0x7f00_0000_0014)).is_err(), "duplicate key refused");
        assert!(!t.contains(&ViewKey { pid: 1, va: 0x7f00_0000_0014 }), "pid is part of the key");
        for n in (0..5000u64).step_by(2) {
            assert!(t.remove(&ViewKey { pid: (n % 3) as Pid, va: 0x7f00_0000_0000 + n * 0x1000 + 0x14 }).is_some());
        }
        assert_eq!(t.len(), 2500);
        for n in 0..5000u64 {
            let present = t.contains(&ViewKey { pid: (n % 3) as Pid, va: 0x7f00_0000_0000 + n * 0x1000 + 0x14 });
            assert_eq!(present, n % 2 == 1, "{n}");
        }
        let mut drained = BTreeSet::new();
        t.drain_where(
            |e| e.key.pid == 1,
            |e| {
                drained.insert(e.view);
            },
        );
        assert!(t.iter().all(|e| e.key.pid != 1));
        assert_eq!(drained.len() + t.len(), 2500);
        // Every remaining entry exactly once, over many batches and a partial one.
        let mut rest = BTreeSet::new();
        t.drain_all(|e| assert!(rest.insert(e.view), "{:#x} handed over twice", e.view));
        let expected: BTreeSet<u64> =
            (1..5000u64).step_by(2).filter(|n| n % 3 != 1).map(|n| 0x7f00_0000_0000 + n * 0x1000 + 0x14).collect();
        assert_ne!(expected.len() % DRAIN_BATCH, 0, "the last batch is a partial one");
        assert_eq!((rest, t.len()), (expected, 0));
    }
}
