//! The whole heap, read-only, for invariant checkers ([`Heap::inspect`]):
//! the page allocator, the arena table, the quarantine and every thread's
//! page cache.
//!
//! Thread caches live in their threads' `thread_local` slots and change
//! without the heap lock. So that a checker on one thread can see the
//! caches of all of them, each slot holding a cache keeps a mirror of it
//! in the heap's shared state: the block's base and its free and released
//! masks, stored (relaxed) by the owning thread after each change. There
//! are [`MIRRORS`] mirrors; a slot that finds none free is counted instead
//! ([`HeapView::unseen_caches`]), so that a checker knows when its picture
//! is partial rather than trusting it.
//!
//! The view is exact when no other thread is inside an allocation or a
//! free of this heap (a cache hit in flight may be half-mirrored).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use pageheap_alloc::PageCache;
use pageheap_arena::Os;

use super::{Heap, HeapPageAlloc, Inner, Shared};
use crate::cache::{Slot, NO_MIRROR, UNMIRRORED};
use crate::HeapStats;

/// How many thread caches the heap mirrors at once.
pub(crate) const MIRRORS: usize = 64;

/// One thread cache as the heap's checker sees it. On its own cache line:
/// only the owning thread writes it.
#[repr(align(64))]
#[derive(Default)]
pub(crate) struct CacheMirror {
    base: AtomicUsize,
    free: AtomicU64,
    scav: AtomicU64,
}

/// The mirrors and their allocation state.
pub(crate) struct Mirrors {
    cells: [CacheMirror; MIRRORS],
    /// Bit `i` set: mirror `i` is free.
    free: AtomicU64,
    /// Slots holding a cache with no mirror.
    unmirrored: AtomicUsize,
}

impl Default for Mirrors {
    fn default() -> Self {
        Mirrors {
            cells: core::array::from_fn(|_| CacheMirror::default()),
            free: AtomicU64::new(u64::MAX),
            unmirrored: AtomicUsize::new(0),
        }
    }
}

impl Mirrors {
    /// Mirrors `slot`'s cache after it was installed, taken or replaced:
    /// assigns a mirror to a slot that has a cache and none yet, and keeps
    /// the count of unmirrored caches.
    pub(crate) fn sync(&self, slot: &mut Slot) {
        match (&slot.cache, slot.mirror) {
            (Some(c), NO_MIRROR) => {
                let mut f = self.free.load(Ordering::Relaxed);
                loop {
                    if f == 0 {
                        slot.mirror = UNMIRRORED;
                        self.unmirrored.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    let i = f.trailing_zeros();
                    match self.free.compare_exchange_weak(
                        f,
                        f & !(1 << i),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            slot.mirror = i as u8;
                            self.store(i as u8, c);
                            return;
                        }
                        Err(now) => f = now,
                    }
                }
            }
            (Some(_), UNMIRRORED) => {}
            (Some(c), m) => self.store(m, c),
            (None, UNMIRRORED) => {
                self.unmirrored.fetch_sub(1, Ordering::Relaxed);
                slot.mirror = NO_MIRROR;
            }
            (None, NO_MIRROR) => {}
            (None, m) => self.store(m, &PageCache::default()),
        }
    }

    /// Stores the masks of `slot`'s cache after a hit or a put-back (the
    /// base and the mirror assignment do not change then).
    #[inline]
    pub(crate) fn masks(&self, slot: &Slot) {
        if let (Some(c), Some(m)) = (&slot.cache, self.cells.get(usize::from(slot.mirror))) {
            m.free.store(c.free_mask(), Ordering::Relaxed);
            m.scav.store(c.scav_mask(), Ordering::Relaxed);
        }
    }

    /// Gives up mirror `m` of a slot that goes away.
    pub(crate) fn forget(&self, m: u8) {
        match m {
            NO_MIRROR => {}
            UNMIRRORED => {
                self.unmirrored.fetch_sub(1, Ordering::Relaxed);
            }
            m => {
                self.store(m, &PageCache::default());
                self.free.fetch_or(1 << m, Ordering::Relaxed);
            }
        }
    }

    fn store(&self, m: u8, c: &PageCache) {
        let cell = &self.cells[usize::from(m)];
        cell.base.store(c.base(), Ordering::Relaxed);
        cell.free.store(c.free_mask(), Ordering::Relaxed);
        cell.scav.store(c.scav_mask(), Ordering::Relaxed);
    }
}

/// A thread cache's block as the checker sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CachedBlock {
    /// The block's first page.
    pub base: usize,
    /// Bit `i`: page `i` of the block is cached and free.
    pub free_mask: u64,
    /// Bit `i`: cached page `i` was released to the OS.
    pub scav_mask: u64,
}

/// A span whose pages the OS refused to make Ready, held allocated until a
/// retry succeeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuarantinedSpan {
    /// First page.
    pub base: usize,
    /// Length in pages.
    pub n_pages: usize,
    /// Bytes of it that were released when it was allocated.
    pub released: usize,
}

/// The whole heap, read under its lock; see [`Heap::inspect`].
pub struct HeapView<'a, O: Os + 'static> {
    inner: &'a Inner<O>,
    shared: &'a Shared<O>,
}

impl<'a, O: Os + 'static> HeapView<'a, O> {
    /// The page allocator. Pages in thread caches, in the quarantine and
    /// in spans are allocated as far as it knows.
    pub fn page_alloc(&self) -> &'a HeapPageAlloc<O> {
        &self.inner.pa
    }

    /// Every arena reservation as `(base, len)`, in address order.
    pub fn arenas(&self) -> &'a [(usize, usize)] {
        self.inner.arenas.as_slice()
    }

    /// The part of the current arena not yet handed to the page allocator,
    /// as `(base, end)` (empty when `base == end`).
    pub fn unused_arena(&self) -> (usize, usize) {
        (self.inner.cur_base, self.inner.cur_end)
    }

    /// Bytes handed to the page allocator.
    pub fn heap_sys(&self) -> usize {
        self.inner.heap_sys
    }

    /// Bytes of arena address space reserved.
    pub fn arena_reserved(&self) -> usize {
        self.inner.arena_reserved
    }

    /// The quarantined spans.
    pub fn quarantine(&self) -> impl Iterator<Item = QuarantinedSpan> + 'a {
        self.inner
            .quarantine
            .as_slice()
            .iter()
            .map(|&(base, n_pages, released)| QuarantinedSpan {
                base,
                n_pages,
                released,
            })
    }

    /// What the heap counts as released inside the quarantine.
    pub fn quarantined_released(&self) -> usize {
        self.inner.quarantined_released
    }

    /// What the heap counts as released inside thread caches.
    pub fn cached_released(&self) -> usize {
        self.shared.cached_released.load(Ordering::Relaxed)
    }

    /// Every thread cache that holds a block, from any thread.
    pub fn caches(&self) -> impl Iterator<Item = CachedBlock> + 'a {
        let m = &self.shared.mirrors;
        let taken = !m.free.load(Ordering::Relaxed);
        m.cells
            .iter()
            .enumerate()
            .filter(move |(i, _)| taken >> i & 1 == 1)
            .map(|(_, c)| CachedBlock {
                base: c.base.load(Ordering::Relaxed),
                free_mask: c.free.load(Ordering::Relaxed),
                scav_mask: c.scav.load(Ordering::Relaxed),
            })
            .filter(|b| b.free_mask != 0 || b.scav_mask != 0)
    }

    /// Thread caches holding pages that [`HeapView::caches`] cannot show
    /// (more threads hold caches than there are mirrors). When it is not
    /// 0, an exact account of the pages is impossible.
    pub fn unseen_caches(&self) -> usize {
        self.shared.mirrors.unmirrored.load(Ordering::Relaxed)
    }

    /// The heap's stats, from the same locked state.
    pub fn stats(&self) -> HeapStats {
        self.shared.stats_locked(self.inner)
    }
}

impl<O: Os + 'static> Heap<O> {
    /// Runs `f` on a read-only view of the whole heap under the heap lock:
    /// the page allocator, the arena table, the quarantine and every thread
    /// cache, e.g. for the whole-heap checker in `pageheap-testkit`. The
    /// view is exact when no other thread is allocating or freeing at the
    /// same time.
    ///
    /// # Panics
    /// As [`Heap::with_page_alloc`]: if `f` calls into this heap.
    pub fn inspect<R>(&self, f: impl FnOnce(&HeapView<'_, O>) -> R) -> R {
        let inner = self.shared.lock();
        // `f` is the caller's code, not the heap's: it runs unmarked, so
        // what it allocates and frees is routed as usual.
        let mark = crate::global::enter();
        crate::global::leave(inner.prev);
        let view = HeapView {
            inner: &inner,
            shared: &self.shared,
        };
        let r = f(&view);
        crate::global::leave(mark);
        r
    }
}
