//! One chunk's bitmaps and the searches over them: summarizing the free runs,
//! first-fit search for `n` free pages, and the scavenger's search for the
//! highest free, unscavenged run.
//!
//! Everything works on raw `u64` words with bit-parallel tricks (Go calls
//! the types `pallocBits` and `pallocData`). A straightforward `bitvec`
//! version (`BitArray<[u64; 8], Lsb0>` with `first_zero`, run iteration and
//! `count_ones`) is kept in `benches/chunk.rs` for comparison; on the hot
//! paths the words win clearly, so the crate uses words (x86-64, criterion
//! medians, `--warm-up-time 1 --measurement-time 2`; the searches run on a
//! fragmented chunk whose first 100-page hole is at page 380):
//!
//! | bench              | words   | bitvec   | bitvec / words |
//! |--------------------|---------|----------|----------------|
//! | `summarize/empty`  | 4.1 ns  | 5.2 ns   | 1.3x           |
//! | `summarize/full`   | 10.8 ns | 2.33 µs  | 216x           |
//! | `summarize/sparse` | 5.0 ns  | 38 ns    | 7.6x           |
//! | `summarize/random` | 22.9 ns | 1.27 µs  | 56x            |
//! | `find/1`           | 2.3 ns  | 8.3 ns   | 3.6x           |
//! | `find/8`           | 8.4 ns  | 240 ns   | 29x            |
//! | `find/100`         | 10.5 ns | 540 ns   | 52x            |

#[cfg(test)]
mod tests;

use crate::bits::{fill_aligned, find_bit_range64, PageBits, CHUNK_WORDS};

/// Pages in a chunk: the bitmap width.
const CHUNK_PAGES: usize = CHUNK_WORDS * 64;

/// A chunk's two bitmaps. Invariant kept by the allocator (not by this
/// type): a scavenged page is free.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct ChunkData {
    /// Allocation bits: 1 = in use.
    pub alloc: PageBits,
    /// Scavenged bits: 1 = the page's memory was returned to the OS.
    pub scav: PageBits,
}

/// The free-run summary of a region, unpacked: free pages at its start, the
/// longest free run anywhere in it, and free pages at its end.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, Hash)]
pub struct SumFields {
    /// Free pages at the region's start.
    pub start: usize,
    /// The longest run of free pages in the region.
    pub max: usize,
    /// Free pages at the region's end.
    pub end: usize,
}

/// Searches over a chunk's allocation bits (1 = in use, 0 = free).
impl PageBits {
    /// The chunk's free-run summary. Go calls this `summarize`.
    ///
    /// A word pass finds the start and end runs and every run that crosses
    /// a word boundary. Runs inside a single word can only beat that if it
    /// is below 62 pages; those are measured for all eight words at once,
    /// bit-parallel and without data-dependent branches per word.
    pub fn summarize(&self) -> SumFields {
        self.summarize_with(|| widest_inner_gap_any(&self.0))
    }

    /// [`PageBits::summarize`] with the runs inside words taken from
    /// `gaps`, the chunk's gap cache, whose stale words are measured again
    /// when they are needed (usually one or two: the words an operation
    /// changed).
    #[inline]
    pub(crate) fn summarize_cached(&self, gaps: &mut GapCache) -> SumFields {
        self.summarize_with(|| {
            gaps.refresh(self);
            gaps.widest()
        })
    }

    /// The summary, with `inner` measuring the longest run inside a single
    /// word, called only when that run could be the longest: a run inside
    /// one word is bounded by allocated pages on both sides, so it is at
    /// most 62 long.
    #[inline]
    fn summarize_with(&self, inner: impl FnOnce() -> usize) -> SumFields {
        let (start, best, end) = edge_runs(&self.0);
        let max = if best >= 62 { best } else { best.max(inner()) };
        SumFields { start, max, end }
    }

    /// The free run around the pages `[lo, hi)`, ignoring their own bits:
    /// `(a, b)` with `a` one past the last allocated page below `lo` (0 if
    /// none) and `b` the first allocated page at or after `hi` (512 if
    /// none).
    ///
    /// # Panics
    ///
    /// If `lo > hi` or `hi > 512`.
    #[inline]
    pub fn run_bounds(&self, lo: usize, hi: usize) -> (usize, usize) {
        assert!(lo <= hi && hi <= CHUNK_PAGES, "bad page range");
        let words = &self.0;
        // Downwards from `lo`: the highest allocated page below it.
        let mut a = 0;
        let mut k = lo / 64;
        let mut below = if k < CHUNK_WORDS {
            words[k] & crate::bits::low_mask((lo % 64) as u32)
        } else {
            0
        };
        loop {
            if below != 0 {
                a = k * 64 + 64 - below.leading_zeros() as usize;
                break;
            }
            if k == 0 {
                break;
            }
            k -= 1;
            below = words[k];
        }
        // Upwards from `hi`: the lowest allocated page at or above it.
        let mut b = CHUNK_PAGES;
        let mut k = hi / 64;
        if k < CHUNK_WORDS {
            let mut above = words[k] & !crate::bits::low_mask((hi % 64) as u32);
            loop {
                if above != 0 {
                    b = k * 64 + above.trailing_zeros() as usize;
                    break;
                }
                k += 1;
                if k == CHUNK_WORDS {
                    break;
                }
                above = words[k];
            }
        }
        (a, b)
    }

    /// The summary after the pages `[i, i + n)` were freed (whatever they
    /// were before), given `old`, the summary before. Equals
    /// [`PageBits::summarize`] but only looks at the free run the pages
    /// now belong to: that run is the only one that changed, and every
    /// run it swallowed was no longer than it.
    ///
    /// # Panics
    ///
    /// If the range does not fit in the chunk.
    #[inline]
    pub fn summarize_after_free(&self, old: SumFields, i: usize, n: usize) -> SumFields {
        self.summary_after_free(old, i, n).0
    }

    /// [`PageBits::summarize_after_free`], with the bounds `(a, b)` of the
    /// free run the pages now belong to ([`PageBits::run_bounds`]).
    #[inline]
    pub(crate) fn summary_after_free(
        &self,
        old: SumFields,
        i: usize,
        n: usize,
    ) -> (SumFields, usize, usize) {
        let (a, b) = self.run_bounds(i, i + n);
        debug_assert!(
            (i..i + n).all(|p| !self.get(p)),
            "summarize_after_free of allocated pages"
        );
        let f = SumFields {
            start: if a == 0 { b } else { old.start },
            max: old.max.max(b - a),
            end: if b == CHUNK_PAGES {
                CHUNK_PAGES - a
            } else {
                old.end
            },
        };
        (f, a, b)
    }

    /// The summary after the free pages `[i, i + n)` were allocated, given
    /// `old`, the summary before. Equals [`PageBits::summarize`]. Only the
    /// free run the pages were cut from changed; unless that run was the
    /// chunk's longest, the longest run is still `old.max` and no search is
    /// needed. Otherwise the whole bitmap is summarized.
    ///
    /// # Panics
    ///
    /// If the range does not fit in the chunk.
    #[inline]
    pub fn summarize_after_alloc(&self, old: SumFields, i: usize, n: usize) -> SumFields {
        self.summary_after_alloc(old, i, n)
            .unwrap_or_else(|| self.summarize())
    }

    /// [`PageBits::summarize_after_alloc`], or `None` where the whole
    /// bitmap needs summarizing (the run cut was the chunk's longest).
    #[inline]
    pub(crate) fn summary_after_alloc(
        &self,
        old: SumFields,
        i: usize,
        n: usize,
    ) -> Option<SumFields> {
        let (a, b) = self.run_bounds(i, i + n);
        debug_assert!(
            (i..i + n).all(|p| self.get(p)),
            "summarize_after_alloc of free pages"
        );
        if b - a >= old.max {
            return None;
        }
        Some(SumFields {
            start: if a == 0 { i } else { old.start },
            max: old.max,
            end: if b == CHUNK_PAGES {
                CHUNK_PAGES - (i + n)
            } else {
                old.end
            },
        })
    }

    /// First fit: the lowest index of `npages` consecutive free pages,
    /// searching from the start of the word holding `search_idx` (Go calls
    /// this `find`; the pages below `search_idx` are expected to be in use).
    ///
    /// Returns `(index, new_search_idx)`: `index` is `None` if no run fits.
    /// `new_search_idx` is the first free page at or after the start of
    /// `search_idx`'s word, or 512 if there is none, whether or not the
    /// search succeeds. It may lie below `index` (a free run too short for
    /// the request); after allocating at `index` it is still a lower bound
    /// of the chunk's first free page, so it is a valid next search start.
    ///
    /// # Panics
    ///
    /// If `npages == 0`.
    pub fn find(&self, npages: usize, search_idx: usize) -> (Option<usize>, usize) {
        assert!(npages > 0, "find of zero pages");
        let first_word = search_idx / 64;
        if npages == 1 {
            let i = self.find1(first_word);
            return (i, i.unwrap_or(CHUNK_PAGES));
        }
        if npages <= 64 {
            // Searches usually start at the word holding the fit (the
            // search address or a first-fit hint points there): a run that
            // lies inside that word is the first fit, since a run crossing
            // into the next word starts at the word's top.
            let Some(&w) = self.0.get(first_word) else {
                return (None, CHUNK_PAGES);
            };
            let w = !w;
            let j = find_bit_range64(w, npages as u32) as usize;
            if j < 64 {
                let base = first_word * 64;
                return (Some(base + j), base + w.trailing_zeros() as usize);
            }
            return self.find_small(npages, first_word);
        }
        let words = self.0.get(first_word..).unwrap_or(&[]);
        let mut new_search = None;
        let mut run_start = 0; // first page of the free run reaching the current word
        let mut run = 0; // its length so far
        for (k, &w) in words.iter().enumerate() {
            let base = (first_word + k) * 64;
            if w == u64::MAX {
                run = 0;
                continue;
            }
            new_search.get_or_insert(base + (!w).trailing_zeros() as usize);
            // Does the run reaching this word complete here?
            let low_free = w.trailing_zeros() as usize;
            if run > 0 && run + low_free >= npages {
                return (Some(run_start), new_search.unwrap_or(CHUNK_PAGES));
            }
            // (More than 64 pages here: no run lies inside one word.)
            if w == 0 {
                if run == 0 {
                    run_start = base;
                }
                run += 64;
            } else {
                run = w.leading_zeros() as usize;
                run_start = base + 64 - run;
            }
        }
        (None, new_search.unwrap_or(CHUNK_PAGES))
    }

    /// The first free page at or after word `first_word`. The words are
    /// all compared at once (no loop exit that depends on the data).
    #[inline]
    fn find1(&self, first_word: usize) -> Option<usize> {
        first_set(&self.0.map(|w| !w), first_word)
    }

    /// [`PageBits::find`] for 2 to 64 pages, over the whole chunk at once:
    /// the free bits, as one 512-bit number, are ANDed with themselves
    /// shifted down until a bit survives only where `npages` free pages
    /// start (as in [`find_bit_range64`], doubling the shift while no two
    /// runs can merge), with no branch that depends on the bitmap.
    #[inline]
    fn find_small(&self, npages: usize, first_word: usize) -> (Option<usize>, usize) {
        debug_assert!((2..=64).contains(&npages));
        let free = self.0.map(|w| !w);
        let mut c = free;
        let mut left = npages - 1;
        let mut gap = 1;
        while left > 0 {
            let s = left.min(gap) as u32; // 1..=32
            let mut next = [0u64; CHUNK_WORDS];
            for k in 0..CHUNK_WORDS {
                let above = if k + 1 < CHUNK_WORDS { c[k + 1] } else { 0 };
                next[k] = c[k] & ((c[k] >> s) | (above << (64 - s)));
            }
            c = next;
            left -= s as usize;
            gap *= 2;
        }
        let new_search = first_set(&free, first_word).unwrap_or(CHUNK_PAGES);
        (first_set(&c, first_word), new_search)
    }

    /// The 64-page block holding page `i` (1 = in use). Go calls this
    /// `pages64`.
    ///
    /// # Panics
    ///
    /// If `i >= 512`.
    #[inline]
    pub fn pages64(&self, i: usize) -> u64 {
        self.block64(i)
    }

    /// Marks the pages of `mask` in use in the 64-page block holding page
    /// `i`. Go calls this `allocPages64`.
    ///
    /// # Panics
    ///
    /// If `i >= 512`.
    #[inline]
    pub fn alloc_pages64(&mut self, i: usize, mask: u64) {
        self.set_block64(i, mask);
    }
}

/// The lowest set bit of `x` (as one 512-bit number) in word `first_word`
/// or above, found with one mask of the non-zero words.
#[inline]
fn first_set(x: &[u64; CHUNK_WORDS], first_word: usize) -> Option<usize> {
    let mut nonzero = 0u32;
    for (k, &w) in x.iter().enumerate() {
        nonzero |= u32::from(w != 0) << k;
    }
    nonzero &= u32::MAX.checked_shl(first_word as u32).unwrap_or(0);
    if nonzero == 0 {
        return None;
    }
    let k = nonzero.trailing_zeros() as usize;
    Some(k * 64 + x[k].trailing_zeros() as usize)
}

/// One pass over the words: the free run at the chunk's start, the longest
/// free run that touches a word boundary (or the chunk's ends), and the
/// free run at the chunk's end. Every other free run lies inside one word.
#[inline]
fn edge_runs(words: &[u64; CHUNK_WORDS]) -> (usize, usize, usize) {
    // Written as selects rather than branches (which mispredict on mixed
    // bitmaps). `run` is the free run reaching the end of the current
    // word; over an all-free word it grows by 64 (`trailing_zeros` is then
    // 64). Taking the maximum with every partial run too is harmless: a
    // run's partial length never exceeds its final one, which is counted
    // when it ends.
    let mut start = CHUNK_PAGES;
    let mut best = 0;
    let mut run = 0;
    for (k, &w) in words.iter().enumerate() {
        let through = run + w.trailing_zeros() as usize;
        best = best.max(through);
        if w != 0 {
            start = start.min(k * 64 + w.trailing_zeros() as usize);
        }
        run = if w == 0 {
            through
        } else {
            w.leading_zeros() as usize
        };
    }
    // An all-free chunk ends with start = max = end = 512.
    (start, best.max(run), run)
}

/// The longest run of zeros in `w` with a one on each side (0 if none).
/// Runs of ones are lengthened by doubling shifts and then pinned down by
/// a binary search, so the cost does not depend on the run's length.
#[inline]
fn inner_gap(w: u64) -> usize {
    // Zero for w == 0 on both sides: such a word has no inner zeros.
    let above_lowest_one = !(w ^ w.wrapping_sub(1));
    let below_highest_one = u64::MAX.checked_shr(w.leading_zeros()).unwrap_or(0) >> 1;
    let mut y = !w & above_lowest_one & below_highest_one;
    if y == 0 {
        return 0;
    }
    // `y` marks where a run of at least 2^top zeros starts; an inner run
    // is at most 62 long.
    let mut top = 0;
    while top < 5 {
        let next = y & (y >> (1 << top));
        if next == 0 {
            break;
        }
        y = next;
        top += 1;
    }
    let mut len = 1 << top;
    for j in (0..top).rev() {
        let t = y & (y >> (1 << j));
        if t != 0 {
            y = t;
            len += 1 << j;
        }
    }
    len
}

/// Per word of a chunk's allocation bitmap, the longest free run inside
/// the word (bounded by allocated pages on both sides), so that
/// summarizing a chunk after a change measures only the words that
/// changed. Byte `k` describes word `k`: bit 7 set means stale (to be
/// measured again), otherwise the low bits hold the length (at most 62).
/// All zero is right for a chunk whose words are each all free or all
/// allocated, which is also what fresh (zeroed) metadata holds.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
#[repr(transparent)]
pub(crate) struct GapCache(u64);

impl GapCache {
    const STALE: u64 = 0x8080_8080_8080_8080;

    /// Marks the words that pages `[i, i + n)` touch as stale.
    #[inline]
    pub(crate) fn touch(&mut self, i: usize, n: usize) {
        debug_assert!(n > 0 && i + n <= CHUNK_PAGES);
        let (first, last) = (i / 64, (i + n - 1) / 64);
        // Bytes first..=last.
        let bytes = (u64::MAX >> (8 * (7 - last))) & (u64::MAX << (8 * first));
        self.0 |= Self::STALE & bytes;
    }

    /// For a chunk made all free or all allocated.
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.0 = 0;
    }

    /// Measures the stale words of `bits` again.
    #[inline]
    fn refresh(&mut self, bits: &PageBits) {
        let mut stale = self.0 & Self::STALE;
        while stale != 0 {
            let k = stale.trailing_zeros() as usize / 8;
            let g = inner_gap(bits.0[k]) as u64;
            self.0 = (self.0 & !(0xff << (8 * k))) | (g << (8 * k));
            stale &= stale - 1;
        }
    }

    /// The longest run of all words (all fresh).
    #[inline]
    fn widest(self) -> usize {
        debug_assert_eq!(self.0 & Self::STALE, 0);
        let mut m = 0;
        for k in 0..CHUNK_WORDS {
            m = m.max((self.0 >> (8 * k)) & 0x7f);
        }
        m as usize
    }

    /// The cached length per word, `None` where stale; for the checker.
    pub(crate) fn words(self) -> [Option<u8>; CHUNK_WORDS] {
        core::array::from_fn(|k| {
            let b = (self.0 >> (8 * k)) as u8;
            (b & 0x80 == 0).then_some(b)
        })
    }
}

/// The longest free gap strictly inside one of `words` (zeros with a one on
/// both sides in the same word), 0 if there is none.
///
/// All eight words go through the same steps at once, without branching on
/// any one word, so the loops vectorize: each word's inner zeros are marked
/// as ones, runs of at least 1, 2, 4, ... marked bits are found by
/// `c & (c >> s)` doubling (a bit survives where a run of the doubled length
/// starts), and the longest length is then pinned down bit by bit from the
/// top, as a binary search shared by all words.
#[inline]
fn widest_inner_gap_any(words: &[u64; CHUNK_WORDS]) -> usize {
    let any = |c: &[u64; CHUNK_WORDS]| c.iter().fold(0, |acc, &x| acc | x) != 0;
    let inner = words.map(|w| {
        // Zero for w == 0 on both sides: such a word has no inner zeros.
        let above_lowest_one = !(w ^ w.wrapping_sub(1));
        let below_highest_one = u64::MAX.checked_shr(w.leading_zeros()).unwrap_or(0) >> 1;
        !w & above_lowest_one & below_highest_one
    });
    if !any(&inner) {
        return 0;
    }
    // `y`: the bits starting a run of at least 2^top inner zeros. An inner
    // gap is at most 62 long, so 2^5 is the longest power that can occur.
    let mut y = inner;
    let mut top = 0;
    while top < 5 {
        let next = y.map(|x| x & (x >> (1 << top)));
        if !any(&next) {
            break;
        }
        y = next;
        top += 1;
    }
    // Some run is at least `len` long and none twice that; try to lengthen
    // it by each smaller power. `x & (x >> s)` with `s <= len` joins two
    // overlapping runs of `len` into one of `len + s`.
    let mut len = 1 << top;
    for j in (0..top).rev() {
        let s = 1 << j;
        let t = y.map(|x| x & (x >> s));
        if any(&t) {
            y = t;
            len += s;
        }
    }
    len
}

impl ChunkData {
    /// Marks `[i, i + n)` in use and not scavenged.
    ///
    /// # Panics
    ///
    /// If the range does not fit in the chunk.
    #[inline]
    pub fn alloc_range(&mut self, i: usize, n: usize) {
        self.alloc.set_range(i, n);
        self.scav.clear_range(i, n);
    }

    /// Marks the whole chunk in use and not scavenged.
    #[inline]
    pub fn alloc_all(&mut self) {
        self.alloc.set_all();
        self.scav.clear_all();
    }

    /// Marks page `i` free; its scavenged bit is left alone (it is 0 for an
    /// allocated page).
    ///
    /// # Panics
    ///
    /// If `i >= 512`.
    #[inline]
    pub fn free1(&mut self, i: usize) {
        self.alloc.clear(i);
    }

    /// Marks `[i, i + n)` free, leaving the scavenged bits alone.
    ///
    /// # Panics
    ///
    /// If the range does not fit in the chunk.
    #[inline]
    pub fn free(&mut self, i: usize, n: usize) {
        self.alloc.clear_range(i, n);
    }

    /// Marks the whole chunk free, leaving the scavenged bits alone.
    #[inline]
    pub fn free_all(&mut self) {
        self.alloc.clear_all();
    }

    /// The highest run of free, unscavenged pages worth releasing, as
    /// `(start, len)`; `None` if there is none. Go calls this
    /// `findScavengeCandidate`.
    ///
    /// * `min` is the minimum size **and** alignment in pages (the physical
    ///   page in pages): only whole `min`-aligned groups of free,
    ///   unscavenged pages count.
    /// * `max` is a size hint: 0 means `min`; otherwise it is rounded up to
    ///   a multiple of `min`. The run is cut to its top `max` pages.
    /// * `huge` is the pages in a huge page; 0 or 1 disables the huge-page
    ///   rule. Pass 0 when huge pages are not larger than physical pages
    ///   (with a power-of-two `huge <= min` the rule never changes anything
    ///   anyway, because the candidate's start is `min`-aligned). The rule:
    ///   if the candidate reaches a huge-page boundary and the free run it
    ///   was cut from covers the whole huge page below its start, the
    ///   candidate grows down to that huge page's start, so a free,
    ///   unscavenged huge page is released whole rather than split.
    ///
    /// The search starts with the **whole** word holding `search_idx`
    /// (including pages above `search_idx`) and moves down.
    ///
    /// # Panics
    ///
    /// If `min` is not a power of two in `1..=64`, if `huge` is neither 0
    /// nor a power of two, or if `search_idx >= 512`.
    pub fn find_scavenge_candidate(
        &self,
        search_idx: usize,
        min: usize,
        max: usize,
        huge: usize,
    ) -> Option<(usize, usize)> {
        assert!(
            min.is_power_of_two() && min <= 64,
            "min must be a power of two no larger than 64"
        );
        assert!(
            huge == 0 || huge.is_power_of_two(),
            "huge must be 0 or a power of two"
        );
        assert!(
            search_idx < CHUNK_PAGES,
            "search index past the end of the chunk"
        );
        let max = if max == 0 {
            min
        } else {
            max.next_multiple_of(min)
        };
        // 1 = unavailable: allocated or scavenged, widened to whole groups.
        let unavailable = |k: usize| fill_aligned(self.alloc.0[k] | self.scav.0[k], min as u32);

        let k = (0..=search_idx / 64)
            .rev()
            .find(|&k| unavailable(k) != u64::MAX)?;
        let x = unavailable(k);
        let top_taken = (!x).leading_zeros(); // < 64: x has a zero
        let end = k * 64 + 64 - top_taken as usize;
        let run = if x << top_taken != 0 {
            // The run ends inside this word.
            (x << top_taken).leading_zeros() as usize
        } else {
            // The run reaches the word's bottom and may go on below.
            let mut run = 64 - top_taken as usize;
            for j in (0..k).rev() {
                let y = unavailable(j);
                run += y.leading_zeros() as usize;
                if y != 0 {
                    break;
                }
            }
            run
        };
        let mut size = run.min(max);
        let mut start = end - size;
        if huge > 1 {
            let huge_above = start.next_multiple_of(huge);
            let huge_below = start & !(huge - 1);
            if huge_above <= end && huge_below >= end - run {
                size += start - huge_below;
                start = huge_below;
            }
        }
        Some((start, size))
    }
}
