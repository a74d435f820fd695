//! Per-thread page caches (Go's per-P `pageCache`).
//!
//! Each thread keeps, per heap it allocates from, one 64-page cache block
//! taken from the page allocator under the heap lock; spans of fewer than
//! 16 pages are then carved from it with no lock at all, and a span the
//! heap handed out that lies inside the thread's block goes back into the
//! cache when the thread frees it, with no lock either. The caches live in
//! a `thread_local` with `const` initialisation, so touching them never
//! allocates, and a destructor guard hands every cache back to its heap when
//! the thread exits.
//!
//! Limits, by design:
//! * A thread holds caches for at most [`SLOTS`] heaps at once; a fifth heap
//!   evicts (flushes) the least recently assigned slot.
//! * Slots refer to their heap through a `Weak` handle, so a cache outlives
//!   neither its heap's memory (a dropped heap's caches are discarded on
//!   the thread's next visit) nor keeps the heap alive.
//! * A thread's caches are flushed when the thread exits, when it next
//!   allocates after its heap bumped its epoch (`release_all`), or when it
//!   calls [`Heap::flush_thread_cache`](crate::Heap::flush_thread_cache).
//!   An idle thread's cache (at most 512 KiB) stays allocated until then.
//! * During thread exit, after this thread's caches were destroyed, the
//!   heap works without them (every allocation takes the lock).

use std::cell::{Cell, RefCell};
use std::sync::Weak;

use pageheap_alloc::PageCache;

/// How many heaps one thread can cache pages for at once.
pub(crate) const SLOTS: usize = 4;

/// A heap, seen from a thread cache.
pub(crate) trait CacheOwner: Send + Sync {
    /// Takes back a cache the thread no longer uses, with the hit counts
    /// the thread gathered since it last reported.
    fn take_back(&self, cache: Option<PageCache>, hits: Hits);
    /// Gives up the checker's mirror `mirror` of a slot that goes away
    /// ([`NO_MIRROR`] if it had none).
    fn forget_mirror(&self, mirror: u8);
}

/// A slot with no mirror of its cache for the whole-heap checker.
pub(crate) const NO_MIRROR: u8 = u8::MAX;
/// A slot holding a cache the checker cannot see (every mirror was taken);
/// the heap counts such slots, so that the checker says it saw only part.
pub(crate) const UNMIRRORED: u8 = u8::MAX - 1;

/// Allocations a thread served from its cache and frees it took back into
/// it, reported to the heap's counters when the thread next takes the lock
/// (counting them in the heap's shared counters on every call would make
/// threads write one cache line back and forth).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Hits {
    /// Spans handed out.
    pub(crate) spans: u64,
    /// Pages handed out.
    pub(crate) pages: u64,
    /// Spans freed back into the cache.
    pub(crate) freed: u64,
}

/// One thread's cache for one heap.
pub(crate) struct Slot {
    /// The heap's id; 0 for an unused slot.
    heap: u64,
    /// The heap epoch this cache was filled in.
    pub(crate) epoch: u64,
    owner: Option<Weak<dyn CacheOwner>>,
    /// The cache block, if the thread holds one.
    pub(crate) cache: Option<PageCache>,
    /// Hits not yet reported.
    pub(crate) hits: Hits,
    /// The index of the heap's mirror of this cache ([`NO_MIRROR`],
    /// [`UNMIRRORED`]), for the whole-heap checker.
    pub(crate) mirror: u8,
}

const EMPTY_SLOT: Slot = Slot {
    heap: 0,
    epoch: 0,
    owner: None,
    cache: None,
    hits: Hits {
        spans: 0,
        pages: 0,
        freed: 0,
    },
    mirror: NO_MIRROR,
};

impl Slot {
    /// Hands the cache back to its heap (if the heap still exists) and
    /// empties the slot.
    fn release(&mut self) {
        let cache = self.cache.take();
        let hits = core::mem::take(&mut self.hits);
        if let Some(owner) = self.owner.take().and_then(|w| w.upgrade()) {
            owner.take_back(cache, hits);
            owner.forget_mirror(self.mirror);
        }
        self.heap = 0;
        self.mirror = NO_MIRROR;
    }
}

/// A thread's slots; dropping it (at thread exit) flushes every cache.
struct ThreadCaches {
    slots: RefCell<[Slot; SLOTS]>,
    next_victim: Cell<usize>,
}

impl Drop for ThreadCaches {
    fn drop(&mut self) {
        for slot in self.slots.get_mut().iter_mut() {
            slot.release();
        }
    }
}

thread_local! {
    static CACHES: ThreadCaches = const {
        ThreadCaches {
            slots: RefCell::new([EMPTY_SLOT; SLOTS]),
            next_victim: Cell::new(0),
        }
    };
}

/// Runs `f` on this thread's slot for heap `id`, assigning one (with the
/// handle `owner` makes) if the thread has none yet.
///
/// Returns `None` when the caches cannot be used: the thread is exiting
/// and they are gone, or they are already borrowed further up this
/// thread's stack (a re-entrant call).
pub(crate) fn with_slot<R>(
    id: u64,
    owner: impl FnOnce() -> Weak<dyn CacheOwner>,
    f: impl FnOnce(&mut Slot) -> R,
) -> Option<R> {
    CACHES
        .try_with(|c| {
            let mut slots = c.slots.try_borrow_mut().ok()?;
            let i = match slots.iter().position(|s| s.heap == id) {
                Some(i) => i,
                None => {
                    let free = slots.iter().position(|s| {
                        s.heap == 0 || s.owner.as_ref().is_none_or(|w| w.strong_count() == 0)
                    });
                    let i = free.unwrap_or_else(|| {
                        let v = c.next_victim.get();
                        c.next_victim.set((v + 1) % SLOTS);
                        v
                    });
                    slots[i].release();
                    slots[i] = Slot {
                        heap: id,
                        owner: Some(owner()),
                        ..EMPTY_SLOT
                    };
                    i
                }
            };
            Some(f(&mut slots[i]))
        })
        .ok()
        .flatten()
}

/// Runs `f` on this thread's slot for heap `id` if it has one.
pub(crate) fn with_existing_slot<R>(id: u64, f: impl FnOnce(&mut Slot) -> R) -> Option<R> {
    CACHES
        .try_with(|c| {
            let mut slots = c.slots.try_borrow_mut().ok()?;
            slots.iter_mut().find(|s| s.heap == id).map(f)
        })
        .ok()
        .flatten()
}
