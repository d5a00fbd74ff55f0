//! [`ViewOwners`]: which processes may own views, answerable without a lock.
//!
//! The process-exit notification runs for every process that exits anywhere
//! on the system, and must stay short: a process that owns no view must pass
//! without taking a lock that a long operation (a cleanup of many views, a
//! removal) can hold. The Windows layer keeps one of these per device and one
//! for the whole driver, counts each view in and out under the device lock,
//! and asks [`ViewOwners::may_own`] before taking any lock.

use super::Pid;
use core::sync::atomic::{AtomicU32, Ordering};

/// Buckets of the filter: a few hundred bytes, and few false positives for
/// the handful of processes that hold views at once.
const BUCKETS: usize = 64;

/// Live views counted by a hash of their owner's pid. No false negatives: a
/// process with a live view always [`may_own`](Self::may_own) views. A false
/// positive (another process with views in the same bucket) only costs the
/// slow path.
#[derive(Debug)]
pub struct ViewOwners {
    buckets: [AtomicU32; BUCKETS],
}

impl Default for ViewOwners {
    fn default() -> Self {
        Self::new()
    }
}

impl ViewOwners {
    /// No views.
    pub const fn new() -> Self {
        ViewOwners { buckets: [const { AtomicU32::new(0) }; BUCKETS] }
    }

    fn bucket(&self, pid: Pid) -> &AtomicU32 {
        // Windows pids are multiples of 4: the low bits carry nothing.
        // CAST: the remainder is below BUCKETS.
        &self.buckets[(pid >> 2) as usize % BUCKETS]
    }

    /// A view of `pid` was mapped.
    pub fn add(&self, pid: Pid) {
        self.bucket(pid).fetch_add(1, Ordering::SeqCst);
    }

    /// A view of `pid` was unmapped (each [`add`](Self::add) is matched by
    /// exactly one of these).
    pub fn remove(&self, pid: Pid) {
        let before = self.bucket(pid).fetch_sub(1, Ordering::SeqCst);
        debug_assert!(before > 0, "a view of {pid} removed that was never added");
    }

    /// Whether `pid` may own a live view. `false` is certain.
    pub fn may_own(&self, pid: Pid) -> bool {
        self.bucket(pid).load(Ordering::SeqCst) != 0
    }

    /// Whether any view is counted at all.
    pub fn any(&self) -> bool {
        self.buckets.iter().any(|b| b.load(Ordering::SeqCst) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_is_never_missed_and_a_stranger_is_cleared_once_views_go() {
        let owners = ViewOwners::new();
        assert!(!owners.may_own(4) && !owners.any());
        owners.add(100);
        owners.add(100);
        owners.add(356); // (356 >> 2) % 64 == (100 >> 2) % 64: the same bucket
        assert!(owners.may_own(100) && owners.may_own(356));
        assert!(!owners.may_own(104), "another bucket");
        owners.remove(100);
        owners.remove(356);
        assert!(owners.may_own(100), "one view of 100 is left");
        owners.remove(100);
        assert!(!owners.may_own(100) && !owners.any());
    }
}
