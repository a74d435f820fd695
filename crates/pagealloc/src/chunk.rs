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
//! | `summarize/empty`  | 2.8 ns  | 5.5 ns   | 2.0x           |
//! | `summarize/full`   | 9.5 ns  | 2.66 µs  | 281x           |
//! | `summarize/sparse` | 5.0 ns  | 40 ns    | 8.0x           |
//! | `summarize/random` | 25.2 ns | 1.34 µs  | 53x            |
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
    /// is below 62 pages; those are found bit-parallel: every gap shorter
    /// than the best so far is filled in O(log) shift-or steps, and whatever
    /// gap survives is a new best, measured directly.
    pub fn summarize(&self) -> SumFields {
        let words = &self.0;
        let mut start = None;
        let mut best = 0;
        let mut run = 0; // free pages since the last allocated one
        for &w in words {
            if w == 0 {
                run += 64;
                continue;
            }
            run += w.trailing_zeros() as usize;
            start.get_or_insert(run);
            best = best.max(run);
            run = w.leading_zeros() as usize;
        }
        let Some(start) = start else {
            return SumFields {
                start: CHUNK_PAGES,
                max: CHUNK_PAGES,
                end: CHUNK_PAGES,
            };
        };
        let end = run;
        best = best.max(end);
        // A run inside one word is bounded by allocated pages on both sides,
        // so it is at most 62 long.
        if best >= 62 {
            return SumFields {
                start,
                max: best,
                end,
            };
        }
        for &w in words {
            best = widest_inner_gap(w, best);
        }
        SumFields {
            start,
            max: best,
            end,
        }
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
            // A run of up to 64 pages may also lie wholly inside the word
            // (including at its start when no run reaches it).
            if npages <= 64 {
                let j = find_bit_range64(!w, npages as u32);
                if j < 64 {
                    return (Some(base + j as usize), new_search.unwrap_or(CHUNK_PAGES));
                }
            }
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

    /// The first free page at or after word `first_word`.
    #[inline]
    fn find1(&self, first_word: usize) -> Option<usize> {
        let words = self.0.get(first_word..)?;
        let k = words.iter().position(|&w| w != u64::MAX)?;
        Some((first_word + k) * 64 + (!words[k]).trailing_zeros() as usize)
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

/// The longer of `best` and the longest free gap strictly inside `w` (zeros
/// with a one on both sides), measured only if it exceeds `best`.
#[inline]
fn widest_inner_gap(w: u64, mut best: usize) -> usize {
    // Trailing zeros belong to a run already counted by the word pass; drop
    // them so bit 0 is set. Zeros above the top one likewise are not inner;
    // `x & (x + 1) == 0` tests "no zero below the top one".
    let mut x = w >> (w.trailing_zeros() & 63);
    let only_ones_below_top = |x: u64| x & x.wrapping_add(1) == 0;
    if only_ones_below_top(x) {
        return best;
    }
    // Zeros still to be filled at the top of every gap; once `best` of them
    // are gone, a surviving gap was longer than `best`.
    let mut left = best;
    // Every run of ones with a gap below it is at least `ones` long, so
    // x |= x >> s for s <= ones fills exactly s zeros (or the whole gap)
    // below each run. Each such fill lengthens those runs by s (or merges
    // them with the run below), so `ones` grows by s; it doubles only when
    // s == ones, and it carries over to the next round.
    let mut ones = 1;
    loop {
        while left > 0 {
            let s = left.min(ones);
            x |= x >> s; // s <= best < 62
            if only_ones_below_top(x) {
                return best;
            }
            left -= s;
            ones += s;
        }
        // The lowest surviving gap has `best` fewer zeros than it had: skip
        // the ones below it, measure it, and drop it too.
        x >>= (!x).trailing_zeros(); // < 64: x has an inner zero
        let gap = x.trailing_zeros(); // < 64: x has a one above the gap
        x >>= gap;
        best += gap as usize;
        if only_ones_below_top(x) {
            return best;
        }
        // The other gaps have to be longer than the new best.
        left = gap as usize;
    }
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
