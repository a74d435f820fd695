//! The page cache: a 64-page aligned block taken from the allocator in one
//! step, whose free pages are then handed out without touching the tree.
//!
//! [`PageAlloc::alloc_to_cache`] takes the block holding the heap's lowest
//! free page: all of the block's free pages become allocated in the bitmap
//! and belong to the cache. [`PageCache::alloc`] hands them out first fit
//! within the block; [`PageAlloc::flush_cache`] gives back what is left,
//! restoring the pages' scavenged bits. Go keeps one such cache per
//! processor (`pageCache`).

use pageheap_arena::Os;

use crate::bits::find_bit_range64;
use crate::geometry::Geometry;
use crate::{max_off, to_addr, to_off, Allocation, Error, PageAlloc};

/// Pages in a cache block.
const CACHE_PAGES: usize = 64;

/// A 64-page block of pages owned by one user; see the module docs.
///
/// ```text
/// base ──► page 0 ... page 63      free_mask bit i: page i is free and cached
///                                  scav_mask bit i: page i is scavenged (⊆ free_mask)
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PageCache {
    base: usize,
    free: u64,
    scav: u64,
    page_shift: u32,
}

impl PageCache {
    /// A cache over the block at `base` holding the pages of `free_mask`,
    /// those of `scav_mask` scavenged, for geometry `G`'s page size. Only
    /// useful for testing [`PageAlloc::flush_cache`], which checks that the
    /// pages really are allocated. Go's test hook calls this `NewPageCache`.
    pub fn new<G: Geometry>(base: usize, free_mask: u64, scav_mask: u64) -> Self {
        PageCache {
            base,
            free: free_mask,
            scav: scav_mask,
            page_shift: G::PAGE_SHIFT,
        }
    }

    /// The block's first page address (0 for a cache that never held a
    /// block).
    pub fn base(&self) -> usize {
        self.base
    }

    /// Bit `i` set: page `i` of the block is cached and free.
    pub fn free_mask(&self) -> u64 {
        self.free
    }

    /// Bit `i` set: cached page `i` is scavenged.
    pub fn scav_mask(&self) -> u64 {
        self.scav
    }

    /// Whether the cache holds no page.
    pub fn is_empty(&self) -> bool {
        self.free == 0
    }

    /// Allocates `npages` contiguous cached pages, the lowest run in the
    /// block. `None` if no such run is cached (always for 0 or more than 64
    /// pages).
    #[inline]
    pub fn alloc(&mut self, npages: usize) -> Option<Allocation> {
        if self.free == 0 || npages == 0 || npages > CACHE_PAGES {
            return None;
        }
        let (i, mask) = if npages == 1 {
            let i = self.free.trailing_zeros();
            (i, 1u64 << i)
        } else {
            let i = find_bit_range64(self.free, npages as u32);
            if i >= 64 {
                return None;
            }
            (i, (u64::MAX >> (CACHE_PAGES - npages)) << i)
        };
        let scav = (self.scav & mask).count_ones() as usize;
        self.free &= !mask;
        self.scav &= !mask;
        Some(Allocation {
            base: self.base + ((i as usize) << self.page_shift),
            scavenged: scav << self.page_shift,
        })
    }
}

impl PageCache {
    /// Takes pages `[base, base + npages pages)` back into the cache, so
    /// that a free of pages its owner allocated can skip the allocator:
    /// they must lie in the cache's block and none may be cached already.
    /// They become cached and not scavenged (their memory was in use).
    /// Returns whether it took them; nothing changes when it did not.
    ///
    /// # Safety
    ///
    /// The pages are allocated in the allocator the cache came from, and
    /// the caller owns them and gives them up (as when it frees a span it
    /// was handed). The cache cannot check this: a page the allocator
    /// holds free would be handed out by both.
    #[inline]
    pub unsafe fn put_back(&mut self, base: usize, npages: usize) -> bool {
        if self.page_shift == 0 || npages == 0 || npages > CACHE_PAGES {
            return false;
        }
        let Some(off) = base.checked_sub(self.base) else {
            return false;
        };
        if off & ((1 << self.page_shift) - 1) != 0 {
            return false;
        }
        let first = off >> self.page_shift;
        if first >= CACHE_PAGES || npages > CACHE_PAGES - first {
            return false;
        }
        let mask = (u64::MAX >> (CACHE_PAGES - npages)) << first;
        if self.free & mask != 0 {
            return false;
        }
        self.free |= mask;
        self.scav &= !mask;
        true
    }
}

impl<G: Geometry, O: Os> PageAlloc<G, O> {
    /// Takes the 64-page aligned block holding the heap's lowest free page:
    /// its free pages become allocated and belong to the returned cache,
    /// and their scavenged bits move into the cache. Returns an empty cache
    /// if no page is free.
    ///
    /// # Panics
    ///
    /// Only if the allocator's internal invariants are broken (a bug).
    pub fn alloc_to_cache(&mut self) -> PageCache {
        // The first free page: the cache takes its 64-page block.
        let Some(a) = self.first_fit_hinted(1) else {
            self.search = max_off::<G>();
            return PageCache::default();
        };
        let ci = a >> G::LOG_CHUNK_BYTES;
        let j = (a >> G::PAGE_SHIFT) & (G::CHUNK_PAGES - 1);
        let c = self.chunks.get_mut(ci);
        let free = !c.alloc.pages64(j);
        // Every scavenged bit of the block: those of its free pages, which
        // move into the cache, and those of pad pages, which stay set.
        let scav = c.scav.block64(j);
        c.alloc.alloc_pages64(j, free);
        c.scav.clear_block64(j, scav & free);
        let base = (ci << G::LOG_CHUNK_BYTES) + ((j & !(CACHE_PAGES - 1)) << G::PAGE_SHIFT);
        self.update(base, CACHE_PAGES, false, true);
        self.index_alloc(ci, free.count_ones() as usize);
        self.counters.pages_in_use += free.count_ones() as usize;
        self.counters.pages_scavenged -= (scav & free).count_ones() as usize;
        // The block's last page, not the page after it, which might not be
        // in use.
        self.search = base + ((CACHE_PAGES - 1) << G::PAGE_SHIFT);
        PageCache {
            base: to_addr::<G>(base),
            free,
            scav,
            page_shift: G::PAGE_SHIFT,
        }
    }

    /// Gives the cache's remaining pages back: they become free again with
    /// their scavenged bits restored. Under go119 they are not marked for
    /// the scavenger; under go127 the flush is a free in the index. The cache is empty afterwards. Flushing an empty cache
    /// does nothing.
    ///
    /// # Errors
    ///
    /// Nothing changes on any error:
    /// - [`Error::BadCache`] if the cache was made
    ///   for another page size;
    /// - [`Error::Misaligned`] if its base is not a 64-page block's;
    /// - [`Error::NotInHeap`] / [`Error::NotAllocated`] if its pages are not
    ///   allocated pages of this heap.
    pub fn flush_cache(&mut self, cache: &mut PageCache) -> Result<(), Error> {
        let (base, free, scav) = (cache.base, cache.free, cache.scav);
        if free == 0 {
            *cache = PageCache::default();
            return Ok(());
        }
        if cache.page_shift != G::PAGE_SHIFT {
            return Err(Error::BadCache { base });
        }
        let block_bytes = CACHE_PAGES << G::PAGE_SHIFT;
        if base & (block_bytes - 1) != 0 {
            return Err(Error::Misaligned {
                addr: base,
                align: block_bytes,
            });
        }
        let off = to_off::<G>(base);
        if off > max_off::<G>() {
            return Err(Error::NotInHeap {
                base,
                len: block_bytes,
            });
        }
        let ci = off >> G::LOG_CHUNK_BYTES;
        let pi = (off >> G::PAGE_SHIFT) & (G::CHUNK_PAGES - 1);
        let Some(c) = self.chunks.try_get(ci) else {
            return Err(Error::NotInHeap {
                base,
                len: block_bytes,
            });
        };
        // Scavenged bits outside the free mask are those of pad pages when
        // the cache was taken: still scavenged, or freed (and perhaps
        // allocated again) since. Only the free pages' bits are applied, so
        // a stale or forged bit can never mark a page in use as released.
        let missing = free & !c.alloc.block64(pi);
        if missing != 0 {
            let page = off + ((missing.trailing_zeros() as usize) << G::PAGE_SHIFT);
            return Err(if self.in_use.contains_off(off) {
                Error::NotAllocated {
                    addr: to_addr::<G>(page),
                }
            } else {
                Error::NotInHeap {
                    base,
                    len: block_bytes,
                }
            });
        }
        let c = self.chunks.get_mut(ci);
        c.alloc.clear_block64(pi, free);
        c.scav.set_block64(pi, scav & free);
        if off < self.search {
            self.search = off;
        }
        self.update(off, CACHE_PAGES, false, false);
        let top = off + ((63 - free.leading_zeros() as usize) << G::PAGE_SHIFT);
        self.index_flush(ci, free.count_ones() as usize, top);
        self.counters.pages_in_use -= free.count_ones() as usize;
        self.counters.pages_scavenged += (scav & free).count_ones() as usize;
        *cache = PageCache::default();
        Ok(())
    }
}
