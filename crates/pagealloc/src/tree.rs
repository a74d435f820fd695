//! The summary radix tree: one flat array of packed [`Summary`]s per level,
//! kept in OS memory, with the update that keeps it in step with the chunk
//! bitmaps and the first-fit search that descends it.
//!
//! Level `l` has `G::level_entries(l)` summaries; summary `i` at level `l`
//! covers offset addresses `[i << level_shift(l), (i + 1) << level_shift(l))`
//! and its eight children are entries `8i .. 8i + 8` of level `l + 1`. The
//! leaf level has one summary per chunk.
//!
//! Each level's whole array is reserved when the allocator is created, but
//! only the parts that in-use address ranges need are committed: for an
//! in-use range, the summary indices it covers at each level, widened to
//! whole blocks of siblings (the whole level at the root), then to whole OS
//! pages. Everything the tree reads lies in such a part: updates touch only
//! summaries of memory being allocated or freed (in use), the search
//! descends only into non-full summaries (their children cover grown
//! memory) and starts from the search address, which is always in use or
//! the "exhausted" maximum. This is the invariant every raw access below
//! argues from.

use core::marker::PhantomData;
use core::mem::size_of;

use pageheap_arena::Os;

use crate::geometry::Geometry;
use crate::meta::{align_down, align_up, MetaBytes, Region};
use crate::summary::Summary;
use crate::{Error, PageAlloc};

/// The most summary levels a geometry may have.
pub(crate) const MAX_LEVELS: usize = 5;

/// One level's array.
#[derive(Clone, Copy, Debug, Default)]
struct Level {
    /// The level's reservation.
    region: Region,
    /// Entries at or above this index were never needed (Go keeps this as
    /// the slice length). Entries below it may still be uncommitted where
    /// the heap is discontiguous.
    len: usize,
}

/// Byte ranges committed per level by one [`Tree::grow`].
pub(crate) type Committed = [(usize, usize); MAX_LEVELS];

/// The summary arrays of every level.
#[derive(Debug)]
pub(crate) struct Tree<G> {
    levels: [Level; MAX_LEVELS],
    _g: PhantomData<G>,
}

/// The summary index range `[lo, hi)` at level `l` that covers the offset
/// range `[base, limit)` (`limit > base`). Go calls this
/// `addrsToSummaryRange`.
#[inline]
pub(crate) fn summary_range<G: Geometry>(l: usize, base: usize, limit: usize) -> (usize, usize) {
    let shift = G::level_shift(l);
    (base >> shift, ((limit - 1) >> shift) + 1)
}

/// `[lo, hi)` widened to whole blocks of siblings at level `l` (the whole
/// level at the root). Go calls this `blockAlignSummaryRange`.
#[inline]
pub(crate) fn block_align<G: Geometry>(l: usize, lo: usize, hi: usize) -> (usize, usize) {
    let block = 1usize << G::level_bits(l);
    (align_down(lo, block), align_down(hi + block - 1, block))
}

impl<G: Geometry> Tree<G> {
    /// Reserves every level's array; commits nothing.
    pub fn new<O: Os>(os: &O, acct: &mut MetaBytes) -> Result<Self, Error> {
        const { assert!(G::SUMMARY_LEVELS <= MAX_LEVELS, "too many summary levels") };
        let mut tree = Tree {
            levels: [Level::default(); MAX_LEVELS],
            _g: PhantomData,
        };
        for l in 0..G::SUMMARY_LEVELS {
            match Region::reserve(os, G::level_entries(l) * size_of::<Summary>(), acct) {
                Ok(region) => tree.levels[l].region = region,
                Err(e) => {
                    // SAFETY:
                    // - The levels reserved so far are this function's own;
                    //   nothing was committed in them or points into them.
                    unsafe { tree.release(os, acct) };
                    return Err(e);
                }
            }
        }
        Ok(tree)
    }

    /// The bytes of level `l`'s reservation that the in-use offset range
    /// `[base, limit)` needs committed, as `(from, to)` byte offsets into
    /// the reservation, together with the index bound `hi` of the summaries
    /// it covers.
    fn needed(&self, l: usize, page: usize, base: usize, limit: usize) -> (usize, usize, usize) {
        let (lo, hi) = summary_range::<G>(l, base, limit);
        let (lo, hi) = block_align::<G>(l, lo, hi);
        let from = align_down(lo * size_of::<Summary>(), page);
        // Cannot overflow: `hi * 8` is at most the level's reservation
        // length, which is already page-aligned.
        let to = align_up(hi * size_of::<Summary>(), page).unwrap_or(usize::MAX);
        (from, to.min(self.levels[l].region.len), hi)
    }

    /// The committed parts of level `l` that the in-use offset range
    /// `[base, limit)` accounts for, as byte ranges; for the inspector.
    pub fn needed_bytes(&self, l: usize, page: usize, base: usize, limit: usize) -> (usize, usize) {
        let (from, to, _) = self.needed(l, page, base, limit);
        (from, to)
    }

    /// Commits what the new in-use offset range `[base, limit)` needs at
    /// every level, minus what its in-use neighbours `pred` and `succ`
    /// (offset ranges) already committed. Go calls this `sysGrow`. Returns
    /// the byte ranges committed per level, for [`Tree::undo_grow`]; the
    /// levels' lengths are raised separately by [`Tree::extend_len`] once
    /// the grow cannot fail any more.
    ///
    /// Because the ranges are disjoint and sorted, each neighbour's pages
    /// can only overlap the new range's pages at one end, so what is left
    /// is one interval per level.
    ///
    /// # Errors
    ///
    /// The OS refused; whatever this call committed is decommitted again.
    pub fn grow<O: Os>(
        &mut self,
        os: &O,
        base: usize,
        limit: usize,
        pred: Option<(usize, usize)>,
        succ: Option<(usize, usize)>,
        acct: &mut MetaBytes,
    ) -> Result<Committed, Error> {
        let page = os.page_size();
        let mut done = [(0usize, 0usize); MAX_LEVELS];
        for l in 0..G::SUMMARY_LEVELS {
            let (mut from, mut to, _) = self.needed(l, page, base, limit);
            if let Some((pb, pl)) = pred {
                from = from.max(self.needed(l, page, pb, pl).1);
            }
            if let Some((sb, sl)) = succ {
                to = to.min(self.needed(l, page, sb, sl).0);
            }
            if from < to {
                if let Err(e) = self.levels[l].region.commit(os, from, to - from, acct) {
                    // SAFETY:
                    // - `done` holds only ranges this call committed, past
                    //   what neighbouring grown ranges need, so no summary
                    //   the allocator reads lies in them.
                    unsafe { self.undo_grow(os, &done, acct) };
                    return Err(e);
                }
                done[l] = (from, to);
            }
        }
        Ok(done)
    }

    /// Decommits what [`Tree::grow`] committed.
    ///
    /// # Safety
    /// `done` is what one `grow` returned, and no summary in it has been
    /// made reachable (the grow's range was not recorded as in use).
    pub unsafe fn undo_grow<O: Os>(&mut self, os: &O, done: &Committed, acct: &mut MetaBytes) {
        for (l, &(from, to)) in done.iter().enumerate() {
            if from < to {
                // SAFETY:
                // - The caller promised that nothing reads these summaries.
                unsafe { self.levels[l].region.decommit(os, from, to - from, acct) };
            }
        }
    }

    /// Raises every level's length to cover the offset range `[base,
    /// limit)`, block-aligned.
    pub fn extend_len(&mut self, base: usize, limit: usize) {
        for l in 0..G::SUMMARY_LEVELS {
            let (lo, hi) = summary_range::<G>(l, base, limit);
            let (_, hi) = block_align::<G>(l, lo, hi);
            let lv = &mut self.levels[l];
            lv.len = lv.len.max(hi);
        }
    }

    /// Level `l`'s summary array length (see [`Level::len`]).
    #[inline]
    pub fn len(&self, l: usize) -> usize {
        self.levels[l].len
    }

    /// Level `l`'s reservation as `(address, bytes)`.
    pub fn reservation(&self, l: usize) -> (usize, usize) {
        let r = self.levels[l].region;
        (r.addr, r.len)
    }

    /// Summary `i` of level `l`.
    ///
    /// # Panics
    ///
    /// If `i` is not below the level's length.
    #[inline]
    pub fn get(&self, l: usize, i: usize) -> Summary {
        let lv = &self.levels[l];
        assert!(i < lv.len, "summary index out of range");
        let p = core::ptr::with_exposed_provenance::<Summary>(lv.region.addr);
        // SAFETY:
        // - Callers only pass indices inside the committed part of the level
        //   (module docs: in-use invariant); committed memory is readable
        //   and stays so until `release`.
        // - `i < len <= level_entries`, so the entry lies in the reservation;
        //   the reservation is page-aligned, so the entry is 8-aligned.
        // - `Summary` is a plain `u64`: every bit pattern is valid.
        unsafe { p.add(i).read() }
    }

    /// Sets summary `i` of level `l`.
    ///
    /// # Panics
    ///
    /// If `i` is not below the level's length.
    #[inline]
    pub fn set(&mut self, l: usize, i: usize, s: Summary) {
        let lv = &self.levels[l];
        assert!(i < lv.len, "summary index out of range");
        let p = core::ptr::with_exposed_provenance_mut::<Summary>(lv.region.addr);
        // SAFETY:
        // - In bounds, aligned and committed as argued in `get`.
        // - `&mut self`: no reference into the level is live.
        unsafe { p.add(i).write(s) }
    }

    /// Summaries `[lo, lo + n)` of level `l`.
    ///
    /// # Panics
    ///
    /// If the range is not below the level's length.
    #[inline]
    pub fn block(&self, l: usize, lo: usize, n: usize) -> &[Summary] {
        let lv = &self.levels[l];
        assert!(
            lo <= lv.len && n <= lv.len - lo,
            "summary block out of range"
        );
        let p = core::ptr::with_exposed_provenance::<Summary>(lv.region.addr);
        // SAFETY:
        // - Callers pass only whole sibling blocks that cover in-use memory
        //   (module docs), which `grow` commits whole; committed memory is
        //   readable until `release`, and in bounds by the assert.
        // - `Summary` is a plain `u64`: every bit pattern is valid.
        // - The slice borrows `self`, so `set` cannot run while it lives.
        unsafe { core::slice::from_raw_parts(p.add(lo), n) }
    }

    /// The eight (or, below a root of fewer bits, `1 << level_bits`)
    /// children of summary `i` at level `l`, from level `l + 1`.
    ///
    /// # Panics
    ///
    /// If the children are not below level `l + 1`'s length.
    #[inline]
    pub fn children(&self, l: usize, i: usize) -> &[Summary] {
        let bits = G::level_bits(l + 1);
        self.block(l + 1, i << bits, 1 << bits)
    }

    /// Gives every level's reservation back.
    ///
    /// # Safety
    /// Nothing reads the summaries afterwards.
    pub unsafe fn release<O: Os>(&mut self, os: &O, acct: &mut MetaBytes) {
        for lv in &mut self.levels {
            if lv.region.len != 0 {
                // SAFETY:
                // - The caller promised that nothing reads the summaries; the
                //   level forgets its region next.
                unsafe { lv.region.release(os) };
                acct.reserved -= lv.region.len;
                *lv = Level::default();
            }
        }
    }
}

/// The index of the first summary in `s` that is not full, if any. Looks
/// at eight at a time, which the compiler turns into a few vector ORs.
#[inline]
fn skip_full(s: &[Summary]) -> Option<usize> {
    let mut chunks = s.chunks_exact(8);
    let mut k = 0;
    for c in &mut chunks {
        if c.iter().fold(0, |acc, x| acc | x.0) != 0 {
            break;
        }
        k += 8;
    }
    s[k..].iter().position(|x| x.0 != 0).map(|p| k + p)
}

/// Whether a child summary's change from `old` to `new` leaves its parent,
/// currently `parent` (the merge of the children before the change), as it
/// is. True when the child's start and end runs stayed the same, since the
/// parent's start, end and runs across children depend on nothing else,
/// and the parent's longest run is not affected: either it was longer than
/// the child's old longest run, so it came from elsewhere, and the new one
/// does not exceed it, or the child's longest run only grew, up to it.
#[inline]
fn child_change_hidden<G: Geometry>(old: Summary, new: Summary, parent: Summary) -> bool {
    let (old, new) = (old.unpack::<G>(), new.unpack::<G>());
    let pmax = parent.max::<G>();
    old.start == new.start
        && old.end == new.end
        && new.max <= pmax
        && (old.max < pmax || new.max >= old.max)
}

/// An inclusive offset window known to contain the heap's first free page,
/// narrowed during the search. Go calls this `firstFree`.
#[derive(Clone, Copy)]
struct Window {
    base: usize,
    bound: usize,
}

impl Window {
    /// Narrows the window to the non-full region `[addr, addr + size)` if it
    /// lies inside it.
    #[inline]
    fn found_free(&mut self, addr: usize, size: usize) {
        let limit = addr + size - 1;
        if self.base <= addr && limit <= self.bound {
            self.base = addr;
            self.bound = limit;
        } else {
            debug_assert!(
                limit < self.base || addr > self.bound,
                "free region partially overlaps the first-free window"
            );
        }
    }
}

/// How many leaves may wait for their ancestors to be brought up to date.
const PENDING: usize = 16;

/// Leaves whose ancestors have not been brought up to date since they
/// changed, each with the value its parent last saw. Allocations and frees
/// often change the same few chunks over and over; deferring their climbs
/// to the next search from the root (or to a full list) does each climb
/// once for all of those changes.
///
/// Everything above the leaves is exact except the ancestors of these
/// leaves; [`PageAlloc::settle`] makes those exact too. A climb from a
/// leaf needs only the value its parent last saw: the tests that let a
/// climb stop early stay true when several children changed (each
/// child's change leaves the parent's value alone on its own, and the
/// parent's fields are maxima and sums over separate children).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pending {
    n: usize,
    /// Bit `ci % 64` set for every pending leaf `ci`: most leaves that are
    /// not pending are told apart without comparing the list.
    filter: u64,
    ci: [usize; PENDING],
    old: [Summary; PENDING],
}

impl<G: Geometry, O: Os> PageAlloc<G, O> {
    /// Brings the ancestors of every pending leaf up to date.
    #[inline]
    pub(crate) fn settle(&mut self) {
        if self.pending.n != 0 {
            self.settle_slow();
        }
    }

    #[inline(never)]
    fn settle_slow(&mut self) {
        let leaf = G::SUMMARY_LEVELS - 1;
        let p = core::mem::take(&mut self.pending);
        for k in 0..p.n {
            let (ci, old) = (p.ci[k], p.old[k]);
            let new = self.sum(leaf, ci);
            if new != old {
                self.climb(ci, old, new);
            }
        }
        #[cfg(debug_assertions)]
        for &ci in &p.ci[..p.n] {
            // Every ancestor of a settled leaf is the merge of its children.
            let mut i = ci;
            for l in (0..leaf).rev() {
                let pi = i >> G::SUMMARY_LEVEL_BITS;
                let want =
                    Summary::merge_block::<G>(self.sum_children(l, pi), G::level_log_pages(l + 1));
                debug_assert_eq!(
                    self.sum(l, pi),
                    want,
                    "level {l} summary {pi} after settling"
                );
                i = pi;
            }
        }
    }

    /// Records that leaf `ci`, now `old` and consistent with its parent
    /// unless already pending, is about to change, and that its ancestors
    /// wait for [`PageAlloc::settle`]. Called before the leaf is written:
    /// settling a full list merges parents from the current leaves, and
    /// `old` must still be what this leaf's parent then sees.
    #[inline]
    fn defer_climb(&mut self, ci: usize, old: Summary) {
        let p = &self.pending;
        if p.filter & (1 << (ci % 64)) != 0 {
            // Compared all at once: a search that stops at the match would
            // mispredict on every call.
            let mut hit = 0u32;
            for (k, &c) in p.ci.iter().enumerate() {
                hit |= u32::from(c == ci) << k;
            }
            if hit & ((1 << p.n) - 1) != 0 {
                // Already waiting, with the value its parent saw.
                return;
            }
        }
        if p.n == PENDING {
            self.settle_slow();
        }
        let p = &mut self.pending;
        p.ci[p.n] = ci;
        p.old[p.n] = old;
        p.n += 1;
        p.filter |= 1 << (ci % 64);
    }

    /// The pending leaves with the values their parents were merged from.
    pub(crate) fn pending_leaves(&self) -> impl Iterator<Item = (usize, Summary)> + '_ {
        let p = &self.pending;
        p.ci[..p.n]
            .iter()
            .copied()
            .zip(p.old[..p.n].iter().copied())
    }

    /// The indices at level `l` (above the leaves) of the ancestors of
    /// the pending leaves; nothing at the leaf level.
    pub(crate) fn pending_indices(&self, l: usize) -> impl Iterator<Item = usize> + '_ {
        let p = &self.pending;
        let n = if l + 1 < G::SUMMARY_LEVELS { p.n } else { 0 };
        p.ci[..n]
            .iter()
            .map(move |&ci| (ci << G::LOG_CHUNK_BYTES) >> G::level_shift(l))
    }

    /// Whether summary `i` of level `l` (above the leaves) waits for
    /// [`PageAlloc::settle`]: it is an ancestor of a pending leaf.
    pub(crate) fn summary_pending(&self, l: usize, i: usize) -> bool {
        self.pending_indices(l).any(|k| k == i)
    }

    /// Summary `i` of level `l` as [`PageAlloc::settle`] would leave it:
    /// the stored value, or for an ancestor of a pending leaf the merge of
    /// its children's settled values. For the inspector.
    pub(crate) fn settled_summary(&self, l: usize, i: usize) -> Summary {
        if !self.summary_pending(l, i) {
            return self.tree.get(l, i);
        }
        let bits = G::level_bits(l + 1);
        let mut kids = [Summary::FULL; 8];
        for (k, kid) in kids.iter_mut().enumerate().take(1 << bits) {
            *kid = self.settled_summary(l + 1, (i << bits) + k);
        }
        Summary::merge::<G>(&kids[..1 << bits], G::level_log_pages(l + 1))
    }

    /// Summary `i` of level `l`. Debug builds check the in-use invariant the
    /// raw access relies on: the summary's sibling block covers in-use
    /// memory, so it is committed.
    #[inline]
    pub(crate) fn sum(&self, l: usize, i: usize) -> Summary {
        debug_assert!(
            self.summary_needed(l, i),
            "summary {i} of level {l} is not in use"
        );
        self.tree.get(l, i)
    }

    /// The children of summary `i` of level `l`; checked like
    /// [`PageAlloc::sum`].
    #[inline]
    fn sum_children(&self, l: usize, i: usize) -> &[Summary] {
        debug_assert!(
            self.summary_needed(l + 1, i << G::level_bits(l + 1)),
            "children of summary {i} of level {l} are not in use"
        );
        self.tree.children(l, i)
    }

    /// Whether summary `i` of level `l` lies in a sibling block that covers
    /// in-use memory.
    fn summary_needed(&self, l: usize, i: usize) -> bool {
        let bits = G::level_bits(l);
        let shift = G::level_shift(l);
        let lo = (i >> bits) << bits;
        // The block's last byte, inclusive: the root block ends at the top
        // of the address space, which may be the top of `usize`.
        let last = ((lo + (1 << bits) - 1) << shift) | ((1 << shift) - 1);
        self.in_use.overlaps(lo << shift, last.saturating_add(1))
    }

    /// The leaf summary of chunk `ci`, computed from its bitmap after its
    /// pages `[i, i + n)` changed in any way.
    #[inline]
    fn chunk_summary(&mut self, ci: usize, old: Summary, i: usize, n: usize) -> Summary {
        let (c, gaps) = self.chunks.with_gaps(ci);
        if old == Summary::FULL || old == Summary::free_chunk::<G>() {
            // As in `chunk_summary_after`.
            gaps.clear();
        }
        gaps.touch(i, n);
        let f = c.alloc.summarize_cached(gaps);
        debug_assert_eq!(f, c.alloc.summarize(), "cached summary of chunk {ci}");
        Summary::pack::<G>(f.start, f.max, f.end)
    }

    /// The leaf summary of chunk `ci` after its pages `[i, i + n)` all
    /// changed the same way (allocated if `alloc`, else freed), from `old`,
    /// the leaf before. Equal to a full summary, usually without
    /// summarizing the whole bitmap. For a free, also the bounds of the
    /// free run the pages now belong to ([`PageBits::run_bounds`]; `(0,
    /// 0)` for an allocation).
    ///
    /// [`PageBits::run_bounds`]: crate::PageBits::run_bounds
    #[inline]
    fn chunk_summary_after(
        &mut self,
        ci: usize,
        old: Summary,
        i: usize,
        n: usize,
        alloc: bool,
    ) -> (Summary, (usize, usize)) {
        let (c, gaps) = self.chunks.with_gaps(ci);
        if old == Summary::FULL || old == Summary::free_chunk::<G>() {
            // Every word was all allocated or all free: no inner runs,
            // whatever the cache held (it is not kept for such chunks).
            gaps.clear();
        }
        gaps.touch(i, n);
        let bits = &c.alloc;
        let old = old.unpack::<G>();
        let (f, run) = if alloc {
            match bits.summary_after_alloc(old, i, n) {
                Some(f) => (f, (0, 0)),
                None => (bits.summarize_cached(gaps), (0, 0)),
            }
        } else {
            let (f, a, b) = bits.summary_after_free(old, i, n);
            (f, (a, b))
        };
        debug_assert_eq!(f, bits.summarize(), "incremental summary of chunk {ci}");
        (Summary::pack::<G>(f.start, f.max, f.end), run)
    }

    /// Brings the summaries over `npages` pages at offset `base` up to date
    /// after their bitmaps changed. `contig` says the whole range changed
    /// the same way (all allocated if `alloc`, else all freed), so the
    /// chunks strictly inside it need no summarizing and the end chunks
    /// only need their changed run looked at. Stops climbing as soon as a
    /// level did not change. Go calls this `update`.
    pub(crate) fn update(&mut self, base: usize, npages: usize, contig: bool, alloc: bool) {
        let leaf = G::SUMMARY_LEVELS - 1;
        let limit = base + npages * G::PAGE_BYTES - 1; // inclusive
        let sc = base >> G::LOG_CHUNK_BYTES;
        let ec = limit >> G::LOG_CHUNK_BYTES;
        let first = (base >> G::PAGE_SHIFT) & (G::CHUNK_PAGES - 1);
        // Frees lower the first-fit hints; a contiguous free does so below,
        // from the run bounds its first chunk's summary finds anyway.
        if !alloc && !contig {
            if sc == ec {
                self.hints_freed(sc, first, first, false);
            } else {
                self.hints_reset();
            }
        }
        if sc == ec {
            let old = self.sum(leaf, sc);
            let s = if contig {
                let (s, (a, b)) = self.chunk_summary_after(sc, old, first, npages, alloc);
                if !alloc {
                    self.hints_lower_for_run(sc, a, b, true);
                }
                s
            } else {
                self.chunk_summary(sc, old, first, npages)
            };
            if old != s {
                // Deferred before the leaf changes: a full list is settled
                // first, while the parent still sees `old`.
                self.defer_climb(sc, old);
                self.tree.set(leaf, sc, s);
            }
            return;
        }
        // The levels above are merged from their children below: bring
        // them up to date first.
        self.settle();
        if contig {
            let old = self.sum(leaf, sc);
            let (s, (a, b)) =
                self.chunk_summary_after(sc, old, first, G::CHUNK_PAGES - first, alloc);
            if !alloc {
                self.hints_lower_for_run(sc, a, b, true);
            }
            self.tree.set(leaf, sc, s);
            let mid = if alloc {
                Summary::FULL
            } else {
                Summary::free_chunk::<G>()
            };
            for ci in sc + 1..ec {
                // The gap caches of these chunks go stale unseen: a gap
                // cache is only read while the chunk's leaf says it is
                // neither full nor free (see `chunk_summary_after`).
                self.tree.set(leaf, ci, mid);
            }
            let last = (limit >> G::PAGE_SHIFT) & (G::CHUNK_PAGES - 1);
            let old = self.sum(leaf, ec);
            let (s, _) = self.chunk_summary_after(ec, old, 0, last + 1, alloc);
            self.tree.set(leaf, ec, s);
        } else {
            for ci in sc..=ec {
                let s = self.chunk_summary(ci, Summary::FULL, 0, G::CHUNK_PAGES);
                self.tree.set(leaf, ci, s);
            }
        }
        for l in (0..leaf).rev() {
            let log_child_pages = G::level_log_pages(l + 1);
            let (lo, hi) = summary_range::<G>(l, base, limit + 1);
            let mut changed = false;
            for i in lo..hi {
                let s = Summary::merge_block::<G>(self.sum_children(l, i), log_child_pages);
                if self.sum(l, i) != s {
                    self.tree.set(l, i, s);
                    changed = true;
                }
            }
            if !changed {
                return;
            }
        }
    }

    /// Brings the levels above the leaves up to date after leaf summary
    /// `ci` alone changed from `old` to `new`. Each parent is only merged
    /// again when the child's change can alter it, and the climb stops at
    /// the first parent that stays the same.
    #[inline]
    fn climb(&mut self, ci: usize, mut old: Summary, mut new: Summary) {
        let mut i = ci;
        for l in (0..G::SUMMARY_LEVELS - 1).rev() {
            let p = i >> G::SUMMARY_LEVEL_BITS;
            let parent = self.sum(l, p);
            if child_change_hidden::<G>(old, new, parent) {
                return;
            }
            let s = Summary::merge_block::<G>(self.sum_children(l, p), G::level_log_pages(l + 1));
            if s == parent {
                return;
            }
            self.tree.set(l, p, s);
            (old, new, i) = (parent, s, p);
        }
    }

    /// `addr` rounded up to the lowest in-use offset address at or above
    /// it, or the maximum search address if there is none. Go calls this
    /// `findMappedAddr`.
    #[inline]
    pub(crate) fn find_mapped(&self, off: usize) -> usize {
        if self.hint_range_contains(off) || self.in_use.contains_off(off) {
            return off;
        }
        self.in_use
            .find_off_greater_equal(off)
            .unwrap_or_else(crate::max_off::<G>)
    }

    /// Address-ordered first fit over the whole tree: the lowest offset of
    /// `npages` free pages, and a new search address candidate (a lower
    /// bound of the first free page, rounded up into in-use memory).
    /// Returns `None` (with the maximum as candidate) if no run fits. Go
    /// calls this `find`.
    ///
    /// # Panics
    ///
    /// If the summaries contradict each other or the bitmaps (a bug).
    pub(crate) fn find(&mut self, npages: usize) -> (Option<usize>, usize) {
        self.find_from(npages, self.search)
    }

    /// [`PageAlloc::find`] from `from`, a lower bound of the first fit
    /// instead of the search address. The candidate search address it
    /// returns is only meaningful when `from` is the search address.
    pub(crate) fn find_from(&mut self, npages: usize, from: usize) -> (Option<usize>, usize) {
        self.settle();
        if self.end == 0 {
            return (None, crate::max_off::<G>());
        }
        let mut i = 0usize;
        let mut first = Window {
            base: 0,
            bound: crate::max_off::<G>(),
        };
        'levels: for l in 0..G::SUMMARY_LEVELS {
            let bits = G::level_bits(l);
            let shift = G::level_shift(l);
            let log_pages = G::level_log_pages(l);
            let region_pages = 1usize << log_pages;
            let entries = 1usize << bits;
            i <<= bits;

            // No fitting run starts in entries of this block below `from`
            // (below the search address, they are full).
            let search_idx = from >> shift;
            let j0 = if search_idx & !(entries - 1) == i {
                search_idx & (entries - 1)
            } else {
                0
            };

            // The free run being built: `base` in pages from the block's
            // start, `size` in pages.
            debug_assert!(
                self.summary_needed(l, i),
                "block {i} of level {l} is not in use"
            );
            let block = self.tree.block(l, i, entries);
            // Entries above the highest chunk ever grown are full: stop
            // there (at the root that saves scanning thousands of them
            // when nothing fits). The descent only enters blocks holding
            // grown chunks, so `top >= i`.
            let top = ((self.end - 1) << G::LOG_CHUNK_BYTES) >> shift;
            let used = entries.min((top + 1).saturating_sub(i));
            let mut base = 0usize;
            let mut size = 0usize;
            let mut j = j0;
            while j < used {
                if size == 0 {
                    // No run in progress: skip full entries fast (the root
                    // level of an exhausted heap is thousands of them).
                    match skip_full(&block[j..used]) {
                        Some(k) => j += k,
                        None => break,
                    }
                }
                let sum = block[j];
                j += 1;
                if sum == Summary::FULL {
                    size = 0;
                    continue;
                }
                let j = j - 1;
                first.found_free((i + j) << shift, region_pages << G::PAGE_SHIFT);
                let f = sum.unpack::<G>();
                if size + f.start >= npages {
                    // The run reaching this entry completes in it.
                    if size == 0 {
                        base = j << log_pages;
                    }
                    size += f.start;
                    break;
                }
                if f.max >= npages {
                    // The entry alone holds the request: descend into it.
                    i += j;
                    continue 'levels;
                }
                if size == 0 || f.start < region_pages {
                    // A new run starts at the entry's free tail.
                    size = f.end;
                    base = ((j + 1) << log_pages) - size;
                    continue;
                }
                // Entirely free: the run goes on through it.
                size += region_pages;
            }
            if size >= npages {
                let addr = (i << shift) + (base << G::PAGE_SHIFT);
                return (Some(addr), self.find_mapped(first.base));
            }
            assert!(l == 0, "bad summary data at level {l}");
            return (None, crate::max_off::<G>());
        }
        // `i` is now a chunk index whose leaf summary holds the request.
        let ci = i;
        let (j, search_idx) = self.chunks.get(ci).alloc.find(npages, 0);
        let j = j.expect("bad summary data: chunk has no fitting run");
        let chunk = ci << G::LOG_CHUNK_BYTES;
        first.found_free(
            chunk + (search_idx << G::PAGE_SHIFT),
            (G::CHUNK_PAGES - search_idx) << G::PAGE_SHIFT,
        );
        (
            Some(chunk + (j << G::PAGE_SHIFT)),
            self.find_mapped(first.base),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::child_change_hidden;
    use crate::summary::Summary;
    use crate::Go64;

    /// The climb skips a parent exactly when the rule says the child's
    /// change cannot alter it: each row is a child's old and new summary
    /// `(start, max, end)`, the parent's longest run, and the answer.
    /// Taking the climb when it could be skipped changes no result, only
    /// the work, so only a table pins the cases where it must be skipped.
    #[test]
    fn climbs_stop_where_a_change_is_hidden() {
        let p = Summary::pack::<Go64>;
        #[rustfmt::skip]
        type Fields = (usize, usize, usize);
        let rows: &[(Fields, Fields, usize, bool)] = &[
            // Unchanged child.
            ((1, 5, 2), (1, 5, 2), 10, true),
            // The child's longest run grows up to the parent's.
            ((1, 5, 2), (1, 10, 2), 10, true),
            // The child held the parent's longest run and keeps it.
            ((1, 10, 2), (1, 10, 2), 10, true),
            // The child's longest run shrinks below a longer one elsewhere.
            ((1, 5, 2), (1, 3, 2), 10, true),
            // Its start or end run changed: runs across children may too.
            ((1, 5, 2), (0, 5, 2), 10, false),
            ((1, 5, 2), (1, 5, 3), 10, false),
            // It grows past the parent's longest run.
            ((1, 5, 2), (1, 11, 2), 10, false),
            // It held the parent's longest run and loses part of it.
            ((1, 10, 2), (1, 9, 2), 10, false),
        ];
        for &(old, new, pmax, hidden) in rows {
            let parent = p(0, pmax, 0);
            assert_eq!(
                child_change_hidden::<Go64>(p(old.0, old.1, old.2), p(new.0, new.1, new.2), parent),
                hidden,
                "old {old:?}, new {new:?}, parent max {pmax}"
            );
        }
    }
}
