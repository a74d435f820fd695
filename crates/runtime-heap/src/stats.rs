//! [`HeapStats`]: a consistent snapshot of the heap's memory, in Go's terms.
//!
//! Every byte of heap memory the heap has mapped (`heap_sys`) is in exactly
//! one of three states, so `heap_sys == heap_inuse + heap_free +
//! heap_released` always holds:
//!
//! ```text
//!  heap_sys ┬ heap_inuse     allocated pages, Ready (spans handed out, and
//!           │                the free pages threads hold in their caches)
//!           ├ heap_free      free pages, Ready (resident until scavenged)
//!           └ heap_released  pages whose memory went back to the OS
//!                            (Prepared), free or parked in a cache
//! ```
//!
//! The Ready memory the heap holds, Go's `mappedReady`, is `heap_inuse +
//! heap_free + metadata`; the memory limit and the simulated OS's Ready
//! count are compared against it.

/// A snapshot of the heap's memory and activity, all sizes in bytes.
///
/// Taken under the heap lock; concurrent cache hits of other threads may
/// move a span's worth of bytes between `heap_inuse` and `heap_released`
/// while the snapshot is taken, and activity counters of cache hits are
/// folded in when a thread next takes the lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeapStats {
    /// Heap memory mapped and handed to the page allocator (Go's
    /// `heap_sys`, less the reserved-only tail of the current arena).
    pub heap_sys: usize,
    /// Allocated, Ready pages (Go's `heap_inuse`), including free pages
    /// held in per-thread caches.
    pub heap_inuse: usize,
    /// Free, Ready pages: resident memory the scavenger may release (Go's
    /// `heap_free`).
    pub heap_free: usize,
    /// Pages returned to the OS (Go's `heap_released`), including a run the
    /// background scavenger is returning at the moment (taken out of the
    /// page allocator while the OS call runs; if that call fails, the run
    /// comes back as free).
    pub heap_released: usize,
    /// Page-allocator metadata committed (Ready): summaries, chunk bitmaps,
    /// in-use ranges.
    pub metadata: usize,
    /// Page-allocator metadata address space reserved.
    pub metadata_reserved: usize,
    /// Address space reserved for heap arenas.
    pub arena_reserved: usize,
    /// Ready memory in total: `heap_inuse + heap_free + metadata` (Go's
    /// `mappedReady`).
    pub mapped_ready: usize,
    /// The memory limit (`usize::MAX` for none).
    pub memory_limit: usize,
    /// Spans allocated so far.
    pub spans_allocated: u64,
    /// Pages allocated so far (in spans).
    pub pages_allocated: u64,
    /// Spans freed so far.
    pub spans_freed: u64,
    /// Times a thread refilled its page cache.
    pub cache_refills: u64,
    /// Times the heap grew.
    pub grows: u64,
    /// Bytes released by the background scavenger so far.
    pub released_background: usize,
    /// Bytes released by allocations to honour the memory limit so far.
    pub released_eager: usize,
    /// Bytes released by explicit `scavenge` and `release_all` calls so far.
    pub released_explicit: usize,
    /// CPU time the background scavenger thread has used so far, in ns, read
    /// from its own thread CPU clock (0 where the OS gives none; see
    /// `pageheap_arena::thread_cpu_time`).
    pub scavenger_cpu_ns: u64,
}

/// One line of the main figures, in MiB: `heap: S MiB (U in use, F free,
/// R released); metadata M KiB; limit L`.
impl core::fmt::Display for HeapStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mib = |b: usize| b as f64 / (1 << 20) as f64;
        write!(
            f,
            "heap: {:.1} MiB ({:.1} in use, {:.1} free, {:.1} released); metadata {} KiB",
            mib(self.heap_sys),
            mib(self.heap_inuse),
            mib(self.heap_free),
            mib(self.heap_released),
            self.metadata >> 10,
        )?;
        if self.memory_limit == usize::MAX {
            f.write_str("; no memory limit")
        } else {
            write!(f, "; limit {:.1} MiB", mib(self.memory_limit))
        }
    }
}

impl HeapStats {
    /// Heap memory retained from the OS: `heap_inuse + heap_free` (Go's
    /// `heapRetained`).
    pub fn heap_retained(&self) -> usize {
        self.heap_inuse + self.heap_free
    }
}
