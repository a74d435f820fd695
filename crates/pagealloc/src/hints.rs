//! Exact per-size lower bounds for first fit, and the forward search that
//! starts from them.
//!
//! For every request size `n` up to [`HINT_PAGES`], `hint[n - 1]` is an
//! offset at or below the lowest offset where `n` free pages start (written
//! `F(n)` below, infinite when no run fits). `F` never decreases with `n`,
//! and the hints are kept the same way, so raising or lowering them stops
//! at the first size that needs no change. The search address (every page
//! below it is allocated) is a lower bound of `F(n)` too; the search for
//! `n` pages starts at the larger of the two. Nothing here is a
//! heuristic: a search started at a lower bound of `F(n)` finds exactly
//! `F(n)`, so placements are those of the tree search from the root.
//!
//! Keeping the bounds true:
//! - Allocating pages only removes free pages, so `F(n)` can only rise:
//!   nothing to do. A first fit of `n` pages at `a` proves `F(n) >= a + n`
//!   afterwards (no run of `n` started below `a`, and every run starting in
//!   `[a, a + n)` now holds an allocated page), so the hint rises there.
//!   A search that finds nothing proves `F(m)` infinite for all `m >= n`.
//! - Freeing pages creates one new run, `[s, e)`, where the freed pages
//!   joined their free neighbours. Only sizes up to `e - s` can start in
//!   it, none below `s`; so those hints drop to `s`. Where `s` or the
//!   length is not known cheaply a smaller `s` (down to 0) or a larger
//!   length is used, which keeps the bounds true.
//!
//! The forward search reads leaf summaries chunk by chunk from the start,
//! inside the in-use range that holds it, for at most [`SCAN_CHUNKS`]
//! chunks; past that it hands over to the tree search, started at a point
//! the scan has proved to be a lower bound too.

use pageheap_arena::Os;

use crate::geometry::Geometry;
use crate::PageAlloc;

/// The request sizes, in pages, that keep a hint: 1 to this.
pub(crate) const HINT_PAGES: usize = 16;

/// How many chunks the forward search reads before it hands over to the
/// tree search.
const SCAN_CHUNKS: usize = 64;

/// The per-size lower bounds, and the in-use range the last search ran in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hints {
    /// `bound[n - 1] <= F(n)`, as offsets.
    bound: [usize; HINT_PAGES],
    /// An in-use offset range `[lo, limit)`, remembered so that most
    /// searches need no range lookup. Ranges only grow, so it stays in use.
    range: (usize, usize),
}

impl Default for Hints {
    fn default() -> Self {
        Hints {
            bound: [0; HINT_PAGES],
            range: (0, 0),
        }
    }
}

impl Hints {
    /// The lower bound for `n` pages (`1 <= n <= HINT_PAGES`).
    #[inline]
    fn start(&self, n: usize) -> usize {
        self.bound[n - 1]
    }

    /// Raises the bounds of sizes `n` and up to at least `to` (a first fit
    /// of `n` pages proved `F(n) >= to`, and `F` never decreases with the
    /// size). The bounds never decrease with the size either, so the
    /// raise stops at the first that is high enough already.
    #[inline]
    fn raise(&mut self, n: usize, to: usize) {
        for b in &mut self.bound[n - 1..] {
            if *b >= to {
                break;
            }
            *b = to;
        }
    }

    /// Lowers the bounds of sizes up to `len` pages to at most `s`. The
    /// bounds never decrease with the size, so the lowering works down
    /// from the largest size and stops at the first that is low enough.
    #[inline]
    pub(crate) fn lower(&mut self, s: usize, len: usize) {
        for b in self.bound[..len.min(HINT_PAGES)].iter_mut().rev() {
            if *b <= s {
                break;
            }
            *b = s;
        }
    }

    /// The bounds, for the invariant checker.
    pub(crate) fn bounds(&self) -> &[usize; HINT_PAGES] {
        &self.bound
    }
}

/// What the forward search ended with.
enum Scan {
    /// The first fit.
    Found(usize),
    /// No run fits anywhere.
    None,
    /// The scan stopped; the first fit, if any, starts at or above this
    /// offset.
    From(usize),
}

impl<G: Geometry, O: Os> PageAlloc<G, O> {
    /// The first fit for `n` pages (`1 <= n <= HINT_PAGES`), using and
    /// updating the hints. Does not allocate.
    #[inline]
    pub(crate) fn first_fit_hinted(&mut self, n: usize) -> Option<usize> {
        let start = self.hints.start(n).max(self.search);
        let found = match self.scan(start, n) {
            Scan::Found(a) => Some(a),
            Scan::None => None,
            Scan::From(from) => self.find_from(n, from).0,
        };
        match found {
            Some(a) => {
                self.hints.raise(n, a.saturating_add(n << G::PAGE_SHIFT));
                if n == 1 || a == self.search {
                    // The first free page is `a` (a one-page first fit is
                    // the first free page), and after the allocation every
                    // page up to the run's last is allocated.
                    self.search = a + ((n - 1) << G::PAGE_SHIFT);
                }
            }
            None => {
                self.hints.raise(n, usize::MAX);
            }
        }
        found
    }

    /// The forward search for `n` pages from `start`, a lower bound of the
    /// first fit.
    #[inline]
    fn scan(&mut self, start: usize, n: usize) -> Scan {
        if start >> G::LOG_CHUNK_BYTES >= self.end {
            return Scan::None;
        }
        let (lo, limit) = self.hints.range;
        let (start, limit) = if lo <= start && start < limit {
            (start, limit)
        } else {
            match self.range_from(start) {
                Some(r) => r,
                None => return Scan::None,
            }
        };
        let leaf = G::SUMMARY_LEVELS - 1;
        let ci = start >> G::LOG_CHUNK_BYTES;
        let cpi = (start >> G::PAGE_SHIFT) & (G::CHUNK_PAGES - 1);
        // Chunks `[ci, last]` lie in the in-use range, so their leaves are
        // committed.
        let top = (limit - 1) >> G::LOG_CHUNK_BYTES;
        let last = top.min(ci + SCAN_CHUNKS - 1);

        let s = self.sum(leaf, ci).unpack::<G>();
        if s.max >= n {
            // No fitting run starts below `start`, so every run of `n`
            // or more in this chunk starts at or above it: one is found.
            let (j, _) = self.chunks.get(ci).alloc.find(n, cpi);
            let j = j.expect("bad summary data: leaf promised a run");
            return Scan::Found((ci << G::LOG_CHUNK_BYTES) + (j << G::PAGE_SHIFT));
        }
        // The free run reaching the end of the chunks scanned so far.
        let mut size = s.end;
        let mut base = (ci << G::LOG_CHUNK_BYTES) + ((G::CHUNK_PAGES - size) << G::PAGE_SHIFT);
        for c in ci + 1..=last {
            let s = self.sum(leaf, c).unpack::<G>();
            let chunk = c << G::LOG_CHUNK_BYTES;
            if size + s.start >= n {
                return Scan::Found(if size == 0 { chunk } else { base });
            }
            if s.max >= n {
                let (j, _) = self.chunks.get(c).alloc.find(n, 0);
                let j = j.expect("bad summary data: leaf promised a run");
                return Scan::Found(chunk + (j << G::PAGE_SHIFT));
            }
            // `s.max < n <= HINT_PAGES < CHUNK_PAGES`: not entirely free, so
            // the run in progress ends here and a new one may start at its
            // free tail.
            size = s.end;
            base = chunk + ((G::CHUNK_PAGES - size) << G::PAGE_SHIFT);
        }
        if last + 1 >= self.end {
            // No chunk above was ever grown.
            return Scan::None;
        }
        let next = (last + 1) << G::LOG_CHUNK_BYTES;
        if last == top || size == 0 {
            // Nothing carries on past `next`: the in-use range ends there,
            // or no free run reaches it.
            return Scan::From(next);
        }
        Scan::From(base)
    }

    /// The in-use range holding `off`, or else the next one above it, as
    /// `(first offset at or above off, range limit)`; remembered for the
    /// next search.
    #[cold]
    fn range_from(&mut self, off: usize) -> Option<(usize, usize)> {
        let off = if self.in_use.contains_off(off) {
            off
        } else {
            self.in_use.find_off_greater_equal(off)?
        };
        let r = self
            .in_use
            .range_containing_off(off)
            .expect("in-use offset outside every range");
        self.hints.range = r;
        Some((off, r.1))
    }

    /// Lowers the hints after pages of chunk `ci` were freed, all at or
    /// above page `lo`. If `one_run`, the pages freed are exactly `[lo,
    /// hi)` and lie in one run; otherwise only `lo` is known, and every
    /// size's hint drops.
    #[inline]
    pub(crate) fn hints_freed(&mut self, ci: usize, lo: usize, hi: usize, one_run: bool) {
        let (a, b) = self.chunks.get(ci).alloc.run_bounds(lo, hi);
        self.hints_lower_for_run(ci, a, b, one_run);
    }

    /// [`PageAlloc::hints_freed`] given the run bounds `(a, b)` of chunk
    /// `ci` around the pages freed.
    #[inline]
    pub(crate) fn hints_lower_for_run(&mut self, ci: usize, a: usize, b: usize, one_run: bool) {
        let (s, len) = if a == 0 {
            // The run may reach into the chunk below: no cheap bound.
            (0, HINT_PAGES)
        } else if b == G::CHUNK_PAGES || !one_run {
            (
                (ci << G::LOG_CHUNK_BYTES) + (a << G::PAGE_SHIFT),
                HINT_PAGES,
            )
        } else {
            ((ci << G::LOG_CHUNK_BYTES) + (a << G::PAGE_SHIFT), b - a)
        };
        self.hints.lower(s, len);
    }

    /// Whether `off` lies in the remembered in-use range (a quick answer
    /// to "is it in use" that needs no range lookup).
    #[inline]
    pub(crate) fn hint_range_contains(&self, off: usize) -> bool {
        let (lo, limit) = self.hints.range;
        lo <= off && off < limit
    }

    /// Forgets the remembered in-use range (after a grow, which may have
    /// joined it to a neighbour).
    #[inline]
    pub(crate) fn hints_forget_range(&mut self) {
        self.hints.range = (0, 0);
    }

    /// Makes every hint 0: for changes the hints cannot follow cheaply.
    #[inline]
    pub(crate) fn hints_reset(&mut self) {
        self.hints.lower(0, HINT_PAGES);
    }

    /// The hint bounds as offsets, for the invariant checker.
    pub(crate) fn hint_bounds(&self) -> [usize; HINT_PAGES] {
        *self.hints.bounds()
    }
}
