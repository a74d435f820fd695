//! A read-only view of the allocator's internals, for invariant checkers
//! (testkit's) and debugging.
//!
//! Nothing here is needed to use the allocator. Everything is computed on
//! demand and may cost time linear in the number of in-use ranges.

use core::ops::Range;

use pageheap_arena::Os;
use pageheap_ranges::AddrRange;

use crate::chunk::ChunkData;
use crate::geometry::Geometry;
use crate::summary::Summary;
use crate::tree::{block_align, summary_range};
use crate::{max_off, to_addr, to_off, PageAlloc};

/// Read-only access to a [`PageAlloc`]'s internals; see
/// [`PageAlloc::inspect`].
///
/// What a checker can verify with it:
/// * every committed summary at a level above the leaves equals the merge
///   ([`Summary::merge`]) of its children, and every leaf summary of a grown
///   chunk equals the chunk's summarized bitmap; leaf summaries of chunks
///   that were never grown are [`Summary::FULL`] (zero);
/// * the search address is [`Inspect::max_search_addr`] or in use, and
///   every page below it is allocated;
/// * no run of `n` free pages starts below the `n`-page first-fit hint
///   ([`Inspect::first_fit_hints`]);
/// * scavenged pages are free;
/// * each fresh entry of a chunk's gap cache ([`Inspect::gap_cache`]) is
///   the longest free run inside its bitmap word;
/// * the in-use ranges are exactly the grown chunks;
/// * the committed summary memory of each level
///   ([`Inspect::mapped_summary_bytes`]) is exactly what the in-use ranges
///   need, for example by asking a simulated OS which pages of
///   [`Inspect::summary_reservation`] are ready.
pub struct Inspect<'a, G: Geometry, O: Os> {
    pa: &'a PageAlloc<G, O>,
}

impl<G: Geometry, O: Os> PageAlloc<G, O> {
    /// A read-only view of the internals, for invariant checkers.
    pub fn inspect(&self) -> Inspect<'_, G, O> {
        Inspect { pa: self }
    }
}

impl<'a, G: Geometry, O: Os> Inspect<'a, G, O> {
    /// The search address: every page below it (in offset order) is
    /// allocated. [`Inspect::max_search_addr`] means "no page is free".
    pub fn search_addr(&self) -> usize {
        to_addr::<G>(self.pa.search)
    }

    /// The first-fit hints: entry `n - 1` is an offset (from the start of
    /// the geometry's address space, not an address) at or below the lowest
    /// offset where `n` free pages start, for every `n` up to the array's
    /// length; they never decrease with the size. Values past the address
    /// space mean "no run of that size fits".
    pub fn first_fit_hints(&self) -> [usize; crate::hints::HINT_PAGES] {
        self.pa.hint_bounds()
    }

    /// The "heap exhausted" search address: the highest address of the
    /// geometry's address space.
    pub fn max_search_addr(&self) -> usize {
        to_addr::<G>(max_off::<G>())
    }

    /// The number of summary levels.
    pub fn levels(&self) -> usize {
        G::SUMMARY_LEVELS
    }

    /// Level `l`'s length: summaries at or above this index were never
    /// needed. Below it, only the committed ones can be read.
    ///
    /// # Panics
    ///
    /// If `l` is not a level.
    pub fn level_len(&self, l: usize) -> usize {
        assert!(l < G::SUMMARY_LEVELS, "summary level out of range");
        self.pa.tree.len(l)
    }

    /// Level `l`'s reservation as `(address, bytes)`.
    ///
    /// # Panics
    ///
    /// If `l` is not a level.
    pub fn summary_reservation(&self, l: usize) -> (usize, usize) {
        assert!(l < G::SUMMARY_LEVELS, "summary level out of range");
        self.pa.tree.reservation(l)
    }

    /// The byte ranges of level `l`'s reservation that the allocator
    /// committed, relative to its start, ascending and disjoint: for each
    /// in-use range, the summaries it covers widened to whole sibling blocks
    /// and then to whole OS pages.
    ///
    /// # Panics
    ///
    /// If `l` is not a level.
    pub fn mapped_summary_bytes(&self, l: usize) -> impl Iterator<Item = Range<usize>> + 'a {
        assert!(l < G::SUMMARY_LEVELS, "summary level out of range");
        let pa = self.pa;
        let page = pa.os.page_size();
        merge_ranges(pa.in_use.iter().map(move |r| {
            let (from, to) =
                pa.tree
                    .needed_bytes(l, page, to_off::<G>(r.base), to_off::<G>(r.limit));
            from..to
        }))
    }

    /// The summary index ranges of level `l` that the in-use ranges need:
    /// each range's summaries widened to whole sibling blocks (the whole
    /// level at the root), merged. These summaries and their children are
    /// all readable.
    ///
    /// # Panics
    ///
    /// If `l` is not a level.
    pub fn needed_summary_indices(&self, l: usize) -> impl Iterator<Item = Range<usize>> + 'a {
        assert!(l < G::SUMMARY_LEVELS, "summary level out of range");
        merge_ranges(self.pa.in_use.iter().map(move |r| {
            let (lo, hi) = summary_range::<G>(l, to_off::<G>(r.base), to_off::<G>(r.limit));
            let (lo, hi) = block_align::<G>(l, lo, hi);
            lo..hi
        }))
    }

    /// Summary `i` of level `l`, or `None` if it is not committed (or at or
    /// above the level's length).
    ///
    /// The allocator may defer bringing the ancestors of a few recently
    /// changed leaves up to date until its next search from the root; this
    /// reads every summary as that would leave it (the ancestors of such
    /// leaves merged from their children), so the view is the same whether
    /// or not anything is deferred.
    ///
    /// # Panics
    ///
    /// If `l` is not a level.
    pub fn summary(&self, l: usize, i: usize) -> Option<Summary> {
        if i >= self.level_len(l) {
            return None;
        }
        self.summary_mapped(l, i)
            .then(|| self.pa.settled_summary(l, i))
    }

    /// Summary `i` of level `l` as stored, deferred ancestors as they are
    /// (see [`Inspect::summary`] and [`Inspect::pending_leaves`]); `None`
    /// if it is not committed (or at or above the level's length).
    ///
    /// # Panics
    ///
    /// If `l` is not a level.
    pub fn stored_summary(&self, l: usize, i: usize) -> Option<Summary> {
        if i >= self.level_len(l) {
            return None;
        }
        self.summary_mapped(l, i).then(|| self.pa.tree.get(l, i))
    }

    /// The leaves whose ancestors are not brought up to date yet, as
    /// `(chunk index, the leaf's value its parent was merged from)`. Every
    /// stored summary above the leaves is the merge of its children's
    /// stored values, with these leaves taken at the value given here:
    /// what an invariant checker verifies.
    pub fn pending_leaves(&self) -> impl Iterator<Item = (usize, Summary)> + 'a {
        self.pa.pending_leaves()
    }

    /// The summaries `range` of level `l`, each `None` where not committed
    /// (or at or above the level's length), checking commitment once per
    /// OS page rather than once per summary: for reading whole levels.
    pub fn summaries(
        &self,
        l: usize,
        range: Range<usize>,
    ) -> impl Iterator<Item = Option<Summary>> + '_ {
        self.summaries_with(l, range, move |i| self.pa.settled_summary(l, i))
    }

    /// [`Inspect::summaries`] as stored (see [`Inspect::stored_summary`]).
    pub fn stored_summaries(
        &self,
        l: usize,
        range: Range<usize>,
    ) -> impl Iterator<Item = Option<Summary>> + '_ {
        self.summaries_with(l, range, move |i| self.pa.tree.get(l, i))
    }

    /// The summaries `range` of level `l`, read with `read` where
    /// committed.
    fn summaries_with(
        &self,
        l: usize,
        range: Range<usize>,
        read: impl Fn(usize) -> Summary + 'a,
    ) -> impl Iterator<Item = Option<Summary>> + 'a {
        let this = Inspect { pa: self.pa };
        let per_page = (self.pa.os.page_size() / core::mem::size_of::<Summary>()).max(1);
        let len = self.level_len(l);
        let mut page = (usize::MAX, false);
        range.map(move |i| {
            if i >= len {
                return None;
            }
            if page.0 != i / per_page {
                page = (i / per_page, this.summary_mapped(l, i));
            }
            page.1.then(|| read(i))
        })
    }

    /// Whether every summary of `range` at level `l` is committed and zero
    /// (the summaries of memory that is not in use): a bulk form of
    /// [`Inspect::summaries`] for the long empty stretches of a level.
    pub fn summaries_zero(&self, l: usize, range: Range<usize>) -> bool {
        if range.end > self.level_len(l) {
            return range.is_empty();
        }
        let per_page = (self.pa.os.page_size() / core::mem::size_of::<Summary>()).max(1);
        let mut i = range.start;
        while i < range.end {
            let page_end = (i / per_page + 1) * per_page;
            if !self.summary_mapped(l, i) {
                return false;
            }
            // The OS page holding them is committed (checked just above),
            // which is all `block` needs to read them.
            let block = self.pa.tree.block(l, i, page_end.min(range.end) - i);
            if block.iter().fold(0, |acc, s| acc | s.0) != 0 {
                return false;
            }
            i = page_end;
        }
        true
    }

    /// Whether summary `i` of level `l` (below the level's length) lies in
    /// committed memory, in O(log ranges): its OS page is committed exactly
    /// when some in-use range needs one of the page's summaries, that is
    /// when an in-use range overlaps the addresses of the sibling blocks
    /// that share the page.
    pub(crate) fn summary_mapped(&self, l: usize, i: usize) -> bool {
        let per_page = (self.pa.os.page_size() / core::mem::size_of::<Summary>()).max(1);
        let p = i / per_page * per_page;
        let (lo, hi) = block_align::<G>(l, p, p + per_page);
        let shift = G::level_shift(l);
        let to_off_bound = |k: usize| k.checked_shl(shift).filter(|&v| v >> shift == k);
        let lo = to_off_bound(lo).unwrap_or(usize::MAX);
        let hi = to_off_bound(hi).unwrap_or(usize::MAX);
        lo < hi && self.pa.in_use.overlaps(lo, hi)
    }

    /// [`Inspect::summary_mapped`] the long way, from
    /// [`Inspect::mapped_summary_bytes`]; for its test.
    #[cfg(test)]
    pub(crate) fn summary_mapped_slow(&self, l: usize, i: usize) -> bool {
        let b = i * core::mem::size_of::<Summary>();
        self.mapped_summary_bytes(l).any(|r| r.contains(&b))
    }

    /// The chunk indices ever grown span `[start, end)`; `None` before the
    /// first grow.
    pub fn chunk_bounds(&self) -> Option<(usize, usize)> {
        (self.pa.end != 0).then_some((self.pa.start, self.pa.end))
    }

    /// The indices of the grown chunks, ascending.
    pub fn chunk_indices(&self) -> impl Iterator<Item = usize> + 'a {
        self.pa.in_use.iter().flat_map(|r| {
            let lo = to_off::<G>(r.base) >> G::LOG_CHUNK_BYTES;
            let hi = to_off::<G>(r.limit) >> G::LOG_CHUNK_BYTES;
            lo..hi
        })
    }

    /// The bitmaps of grown chunk `ci`; `None` if it was never grown.
    pub fn chunk(&self, ci: usize) -> Option<&'a ChunkData> {
        if ci > max_off::<G>() >> G::LOG_CHUNK_BYTES
            || !self.pa.in_use.contains_off(ci << G::LOG_CHUNK_BYTES)
        {
            return None;
        }
        self.pa.chunks.try_get(ci)
    }

    /// Grown chunk `ci`'s gap cache: per word of its allocation bitmap, the
    /// longest run of free pages inside the word with an allocated page on
    /// each side (0 if none), or `None` where the entry is stale (to be
    /// measured at the next summary). The cache is not kept for a chunk
    /// whose leaf summary says it is full or free: every entry is `None`
    /// then. `None` if the chunk was never grown.
    pub fn gap_cache(&self, ci: usize) -> Option<[Option<u8>; crate::bits::CHUNK_WORDS]> {
        self.chunk(ci)?;
        let leaf = self.pa.tree.get(G::SUMMARY_LEVELS - 1, ci);
        if leaf == Summary::FULL || leaf == Summary::free_chunk::<G>() {
            return Some([None; crate::bits::CHUNK_WORDS]);
        }
        self.pa.chunks.try_gaps(ci).map(|g| g.words())
    }

    /// Whether chunk `ci`'s scavenge index bit is set.
    pub fn scav_marked(&self, ci: usize) -> bool {
        ci <= max_off::<G>() >> G::LOG_CHUNK_BYTES && self.pa.chunks.is_marked(ci)
    }

    /// The in-use ranges, ascending and coalesced.
    pub fn in_use(&self) -> impl Iterator<Item = AddrRange> + 'a {
        self.pa.in_use.iter()
    }

    /// The in-use range storage: `(reservation address, reserved bytes,
    /// committed bytes)`.
    pub fn in_use_memory(&self) -> (usize, usize, usize) {
        self.pa.in_use.memory()
    }

    /// The number of chunk map blocks allocated and the bytes of each.
    pub fn chunk_map_blocks(&self) -> (usize, usize) {
        (self.pa.chunks.blocks(), self.pa.chunks.block_bytes())
    }

    /// The chunk map's reservations as `(address, bytes)`: its first level,
    /// then, ascending, each second-level block holding a grown chunk.
    /// Reads only first-level entries of grown chunks.
    pub fn chunk_map_regions(&self) -> impl Iterator<Item = (usize, usize)> + 'a {
        let chunks = &self.pa.chunks;
        let per_block = G::CHUNKS_L2_BITS;
        let blocks = self.pa.in_use.iter().flat_map(move |r| {
            let lo = to_off::<G>(r.base) >> G::LOG_CHUNK_BYTES;
            let hi = to_off::<G>(r.limit) >> G::LOG_CHUNK_BYTES;
            (lo >> per_block)..=((hi - 1) >> per_block)
        });
        // Neighbouring ranges may share a block: skip repeats.
        let mut last = None;
        let blocks = blocks.filter(move |&b| last.replace(b) != Some(b));
        let block_bytes = chunks.block_bytes();
        core::iter::once(chunks.l1_region())
            .chain(blocks.map(move |b| (chunks.block_addr(b << per_block), block_bytes)))
    }

    /// The scavenger's minimum run (and alignment) and huge-page run, in
    /// pages (0: no huge-page rule).
    pub fn scavenge_params(&self) -> (usize, usize) {
        (self.pa.scav_min_pages, self.pa.scav_huge_pages)
    }
}

/// Merges an ascending sequence of ranges whose starts and ends both never
/// decrease, joining those that overlap or touch.
fn merge_ranges(it: impl Iterator<Item = Range<usize>>) -> impl Iterator<Item = Range<usize>> {
    let mut it = it.peekable();
    core::iter::from_fn(move || {
        let mut cur = it.next()?;
        while let Some(n) = it.next_if(|n| n.start <= cur.end) {
            cur.end = cur.end.max(n.end);
        }
        Some(cur)
    })
}
