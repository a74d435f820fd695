//! Accounting of address space by state (Go's `sysMemStat`).
//!
//! [`Reservation`](crate::Reservation)s add their transitions to a shared
//! [`MemStats`]; upper layers read it with [`MemStats::snapshot`], e.g. to
//! compare the Ready total against a memory limit.

use core::sync::atomic::{AtomicUsize, Ordering};

/// Byte counters by page state, updated with atomics.
#[derive(Debug, Default)]
pub struct MemStats {
    reserved: AtomicUsize,
    mapped: AtomicUsize,
    ready: AtomicUsize,
}

/// A copy of [`MemStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct MemStatsSnapshot {
    /// Bytes of address space owned, in any state.
    pub reserved: usize,
    /// Bytes Prepared or Ready (Go's per-category `sysMemStat`).
    pub mapped: usize,
    /// Bytes Ready (Go's `mappedReady`).
    pub ready: usize,
    /// Bytes Prepared: mapped but returned to the OS (Go's `heapReleased`).
    pub released: usize,
}

impl MemStats {
    /// All counters zero.
    pub const fn new() -> Self {
        Self {
            reserved: AtomicUsize::new(0),
            mapped: AtomicUsize::new(0),
            ready: AtomicUsize::new(0),
        }
    }

    /// The current counters.
    ///
    /// Each counter is read atomically but not all of them together: a
    /// transition racing with the snapshot may show in one counter and not
    /// yet in another. `released` is derived from the other two and so is
    /// clamped at zero in such a race.
    pub fn snapshot(&self) -> MemStatsSnapshot {
        let mapped = self.mapped.load(Ordering::Relaxed);
        let ready = self.ready.load(Ordering::Relaxed);
        MemStatsSnapshot {
            reserved: self.reserved.load(Ordering::Relaxed),
            mapped,
            ready,
            released: mapped.saturating_sub(ready),
        }
    }

    /// Adds signed deltas, in bytes.
    pub(crate) fn add(&self, d: Delta) {
        apply(&self.reserved, d.reserved);
        apply(&self.mapped, d.mapped);
        apply(&self.ready, d.ready);
    }
}

impl MemStatsSnapshot {
    /// Adds signed deltas, in bytes.
    pub(crate) fn add(&mut self, d: Delta) {
        self.reserved = self.reserved.wrapping_add_signed(d.reserved);
        self.mapped = self.mapped.wrapping_add_signed(d.mapped);
        self.ready = self.ready.wrapping_add_signed(d.ready);
        self.released = self.mapped - self.ready;
    }
}

/// A change of the counters by one transition.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Delta {
    pub(crate) reserved: isize,
    pub(crate) mapped: isize,
    pub(crate) ready: isize,
}

fn apply(c: &AtomicUsize, d: isize) {
    if d != 0 {
        // Two's-complement wrapping turns the signed delta into an add.
        c.fetch_add(d as usize, Ordering::Relaxed);
    }
}
