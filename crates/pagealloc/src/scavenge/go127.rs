//! Policy go127: the scavenge index of Go 1.21 and later, as in Go 1.27.
//!
//! Per grown chunk the index keeps `inuse` (the pages it counts allocated),
//! `last` (`inuse` when the current generation began; 0 for a chunk grown
//! during it) and a `free` flag ("may hold free, unscavenged pages", the
//! chunk map's index bit). Globally it keeps the generation, the highest
//! page freed in this generation (`hwm`) and two cursors, one for unforced
//! and one for forced scavenges, each a page and a mark.
//!
//! - An allocation of `n` pages in a chunk (an `alloc` per chunk it touches,
//!   a cache take, a pad, a setup's allocated ranges) adds `n` to `inuse`
//!   and clears `free` when the chunk is full.
//! - A free (a `free` per chunk, a flush of a non-empty cache) subtracts,
//!   sets `free`, raises `hwm` to the highest page freed and raises the
//!   forced cursor to it, marked.
//! - [`PageAlloc::next_gen`] starts a generation: `last` becomes `inuse`
//!   everywhere, the background cursor rises to `hwm`, marked, and `hwm` is
//!   forgotten. Frees move only the forced cursor, so an unforced scavenge
//!   sees a generation's frees after the next one.
//! - A chunk is *dense* when `inuse` or `last` is at least 31/32 of its
//!   pages; an unforced scavenge skips dense chunks, a forced one does not.
//! - A scavenge walks flagged chunks down from its cursor's chunk. In the
//!   cursor's own chunk it searches from the cursor's 64-page word down; a
//!   lower chunk moves the cursor to that chunk's last page, unmarked. A
//!   look that finds nothing clears the chunk's flag. When no chunk is left
//!   an unmarked cursor is dropped and a marked one stays.
//!
//! `last` is kept lazily: each entry records the generation it was last
//! written in, and an entry from an older generation reads `last = inuse`
//! (nothing changed it since), so [`PageAlloc::next_gen`] is O(1). The
//! entry keeps the generation's low 32 bits; when those wrap, `next_gen`
//! rewrites every grown chunk's entry once, so an entry can never be
//! mistaken for a current one.

use pageheap_arena::Os;

use crate::geometry::Geometry;
use crate::{max_off, to_addr, to_off, PageAlloc};

/// The global state of the go127 index (offsets, not addresses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Index {
    gen: u64,
    hwm: Option<usize>,
    bg: Option<(usize, bool)>,
    force: Option<(usize, bool)>,
}

/// A cursor of the go127 index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The page's address.
    pub page: usize,
    /// Whether the cursor is marked: a marked cursor survives a search that
    /// finds nothing; an unmarked one is dropped by it.
    pub marked: bool,
}

/// The go127 index's global state, as [`PageAlloc::index_state`] reports
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IndexState {
    /// The generation: the number of [`PageAlloc::next_gen`] calls.
    pub gen: u64,
    /// The highest page freed in this generation.
    pub free_hwm: Option<usize>,
    /// The cursor of unforced scavenges.
    pub background: Option<Cursor>,
    /// The cursor of forced scavenges.
    pub forced: Option<Cursor>,
}

/// One grown chunk's go127 index entry, as [`PageAlloc::index_entry`]
/// reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IndexEntry {
    /// Pages the index counts allocated (pad and cached pages included).
    pub in_use: usize,
    /// `in_use` when the current generation began.
    pub in_use_at_gen_start: usize,
    /// The chunk may hold free, unscavenged pages.
    pub free: bool,
}

const COUNT_MASK: u64 = 0xffff;

impl<G: Geometry, O: Os> PageAlloc<G, O> {
    /// Pages at or above which a chunk is dense: 31/32 of a chunk.
    const DENSE: usize = G::CHUNK_PAGES - G::CHUNK_PAGES / 32;

    /// Chunk `ci`'s `(inuse, last)`.
    #[inline]
    fn counts(&self, ci: usize) -> (usize, usize) {
        let w = self.chunks.entry(ci);
        let inuse = (w & COUNT_MASK) as usize;
        if (w >> 32) as u32 == self.g127.gen as u32 {
            (inuse, ((w >> 16) & COUNT_MASK) as usize)
        } else {
            (inuse, inuse)
        }
    }

    #[inline]
    fn set_counts(&mut self, ci: usize, inuse: usize, last: usize) {
        let w = inuse as u64 | (last as u64) << 16 | u64::from(self.g127.gen as u32) << 32;
        self.chunks.set_entry(ci, w);
    }

    #[inline]
    pub(super) fn go127_alloc(&mut self, ci: usize, n: usize) {
        let (inuse, last) = self.counts(ci);
        let inuse = inuse + n;
        debug_assert!(inuse <= G::CHUNK_PAGES, "index counts more than a chunk");
        self.set_counts(ci, inuse, last);
        if inuse == G::CHUNK_PAGES {
            self.chunks.unmark(ci);
        }
    }

    #[inline]
    pub(super) fn go127_free(&mut self, ci: usize, n: usize) {
        let (inuse, last) = self.counts(ci);
        debug_assert!(inuse >= n, "index frees more than it counted");
        self.set_counts(ci, inuse - n, last);
        self.chunks.mark(ci);
    }

    #[inline]
    pub(super) fn go127_freed_up_to(&mut self, page: usize) {
        let ix = &mut self.g127;
        if ix.hwm.is_none_or(|h| h < page) {
            ix.hwm = Some(page);
        }
        if ix.force.is_none_or(|(c, _)| c < page) {
            ix.force = Some((page, true));
        }
    }

    /// A setup chunk: allocated whole and freed whole (flagged, its last
    /// page freed), then its allocated pages counted.
    pub(super) fn go127_seed(&mut self, ci: usize) {
        self.go127_alloc(ci, G::CHUNK_PAGES);
        self.go127_free(ci, G::CHUNK_PAGES);
        let last_page = (ci << G::LOG_CHUNK_BYTES) + ((G::CHUNK_PAGES - 1) << G::PAGE_SHIFT);
        self.go127_freed_up_to(last_page);
        let used = self.chunks.get(ci).alloc.count_ones();
        if used > 0 {
            self.go127_alloc(ci, used);
        }
    }

    pub(super) fn next_gen_go127(&mut self) {
        self.g127.gen += 1;
        if self.g127.gen as u32 == 0 {
            // The entries' generation tag wrapped: make every entry current
            // with `last = inuse`, which is what the new generation reads.
            // The new tag is 0.
            for r in self.in_use.iter() {
                let lo = to_off::<G>(r.base) >> G::LOG_CHUNK_BYTES;
                let hi = to_off::<G>(r.limit) >> G::LOG_CHUNK_BYTES;
                for ci in lo..hi {
                    let inuse = self.chunks.entry(ci) & COUNT_MASK;
                    self.chunks.set_entry(ci, inuse | inuse << 16);
                }
            }
        }
        let ix = &mut self.g127;
        if let Some(h) = ix.hwm.take() {
            if ix.bg.is_none_or(|(c, _)| c < h) {
                ix.bg = Some((h, true));
            }
        }
    }

    /// Whether chunk `ci` is dense (see the module documentation).
    #[inline]
    fn dense(&self, ci: usize) -> bool {
        let (inuse, last) = self.counts(ci);
        inuse >= Self::DENSE || last >= Self::DENSE
    }

    /// The chunk to scavenge next and the page to search from, moving the
    /// cursor of the kind as the index's rules say; `None` if there is no
    /// eligible chunk.
    pub(super) fn find_go127(&mut self, forced: bool) -> Option<(usize, usize)> {
        let (page, marked) = if forced {
            self.g127.force
        } else {
            self.g127.bg
        }?;
        let s = page >> G::LOG_CHUNK_BYTES;
        let mut hi = s + 1;
        let found = loop {
            match self.chunks.highest_marked_below(self.start, hi) {
                Some(c) if forced || !self.dense(c) => break Some(c),
                Some(c) => hi = c,
                None => break None,
            }
        };
        let cursor = if forced {
            &mut self.g127.force
        } else {
            &mut self.g127.bg
        };
        match found {
            Some(c) if c == s => Some((c, (page >> G::PAGE_SHIFT) & (G::CHUNK_PAGES - 1))),
            Some(c) => {
                let top = (c << G::LOG_CHUNK_BYTES) + ((G::CHUNK_PAGES - 1) << G::PAGE_SHIFT);
                *cursor = Some((top, false));
                Some((c, G::CHUNK_PAGES - 1))
            }
            None => {
                if !marked {
                    *cursor = None;
                }
                None
            }
        }
    }

    /// The go127 index's global state; `None` under another policy.
    pub fn index_state(&self) -> Option<IndexState> {
        if self.policy != super::ScavengePolicy::Go127 {
            return None;
        }
        let cursor = |c: Option<(usize, bool)>| {
            c.map(|(p, marked)| Cursor {
                page: to_addr::<G>(p),
                marked,
            })
        };
        Some(IndexState {
            gen: self.g127.gen,
            free_hwm: self.g127.hwm.map(to_addr::<G>),
            background: cursor(self.g127.bg),
            forced: cursor(self.g127.force),
        })
    }

    /// The go127 index entry of the grown chunk at `chunk_base`; `None`
    /// under another policy, or if `chunk_base` is not a grown chunk's
    /// base.
    pub fn index_entry(&self, chunk_base: usize) -> Option<IndexEntry> {
        let off = to_off::<G>(chunk_base);
        if self.policy != super::ScavengePolicy::Go127
            || chunk_base & (G::CHUNK_BYTES - 1) != 0
            || off > max_off::<G>()
            || !self.in_use.contains_off(off)
        {
            return None;
        }
        let ci = off >> G::LOG_CHUNK_BYTES;
        let (inuse, last) = self.counts(ci);
        Some(IndexEntry {
            in_use: inuse,
            in_use_at_gen_start: last,
            free: self.chunks.is_marked(ci),
        })
    }
}

#[cfg(test)]
impl<G: Geometry, O: Os> PageAlloc<G, O> {
    /// Sets the generation counter, as if that many generations had passed
    /// without touching any chunk (for the tag wrap-around test).
    pub(crate) fn set_generation(&mut self, gen: u64) {
        self.g127.gen = gen;
    }
}
