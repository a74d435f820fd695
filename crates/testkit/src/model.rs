//! A flat reference page allocator, written for obviousness from the
//! "Semantics" section of `crates/pagealloc/tests/traces/TRACE-FORMAT.md` alone.
//!
//! [`Model`] keeps each grown chunk's allocation and scavenged bitmaps in a
//! `BTreeMap` and answers every request with a linear scan in address order:
//! no summaries, no radix tree, no search-address subtleties. Its one
//! shortcut is `first_free`, a page below which every grown page is
//! allocated, so that scans of long traces do not restart from the bottom of
//! the heap. It also defines which requests are bad input ([`ModelError`]);
//! differential tests expect the real allocator to reject exactly those and
//! to leave its state unchanged when it does.

use std::collections::{BTreeMap, BTreeSet};

use crate::replay::{Allocated, CacheBlock, ChunkBits, PageHeap};
use crate::trace::{TraceGeometry, CACHE_PAGES, CHUNK_WORDS};

/// Pages of a chunk: the trace format fixes eight bitmap words.
const CHUNK_PAGES: usize = CHUNK_WORDS * 64;

/// Requests the model rejects, leaving its state unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A size or page count of zero.
    #[error("zero-sized request")]
    Zero,
    /// An address or size that is not aligned as required.
    #[error("misaligned address or size {0:#x}")]
    Misaligned(usize),
    /// An address range that leaves the heap address space (or wraps), or
    /// touches chunk 0, which is never part of a heap.
    #[error("range {base:#x}+{len:#x} leaves the heap address space")]
    OutOfRange {
        /// Start of the range.
        base: usize,
        /// Bytes (saturated).
        len: usize,
    },
    /// A grow of memory that is already part of the heap.
    #[error("grow overlaps the heap at {0:#x}")]
    Overlap(usize),
    /// A free of a page that was never grown.
    #[error("page {0:#x} is not part of the heap")]
    NotInUse(usize),
    /// A free of a page that is not allocated.
    #[error("page {0:#x} is not allocated")]
    NotAllocated(usize),
}

/// One chunk: bit `i` of word `i / 64` is page `i`; 1 = allocated /
/// scavenged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Chunk {
    alloc: [u64; CHUNK_WORDS],
    scav: [u64; CHUNK_WORDS],
}

impl Chunk {
    fn is_alloc(&self, p: usize) -> bool {
        self.alloc[p / 64] >> (p % 64) & 1 == 1
    }

    fn is_scav(&self, p: usize) -> bool {
        self.scav[p / 64] >> (p % 64) & 1 == 1
    }

    fn set_alloc(&mut self, p: usize, v: bool) {
        set_bit(&mut self.alloc, p, v);
    }

    fn set_scav(&mut self, p: usize, v: bool) {
        set_bit(&mut self.scav, p, v);
    }

    /// Free and unscavenged: what the scavenger may release.
    fn is_dirty_free(&self, p: usize) -> bool {
        !self.is_alloc(p) && !self.is_scav(p)
    }
}

fn set_bit(words: &mut [u64; CHUNK_WORDS], p: usize, v: bool) {
    if v {
        words[p / 64] |= 1 << (p % 64);
    } else {
        words[p / 64] &= !(1 << (p % 64));
    }
}

/// A plain bitmap page allocator with the semantics the traces pin down.
///
/// Pages are named by their page number (`address / page_bytes`) inside the
/// model and by byte address at its interface.
#[derive(Clone, Debug)]
pub struct Model {
    geometry: TraceGeometry,
    /// Grown chunks by chunk number (`address / chunk_bytes`).
    chunks: BTreeMap<usize, Chunk>,
    /// Chunks whose scavenge-index bit is set.
    marked: BTreeSet<usize>,
    /// The cache taken last.
    cache: Option<CacheBlock>,
    /// Every grown page numbered below this is allocated.
    first_free: usize,
}

impl Model {
    /// An empty heap with this geometry.
    ///
    /// # Panics
    /// If `geometry.chunk_pages` is not 512 or its sizes are not powers of
    /// two (or zero for `huge_page_bytes`).
    pub fn new(geometry: TraceGeometry) -> Model {
        assert_eq!(
            geometry.chunk_pages, CHUNK_PAGES,
            "the model has 512-page chunks"
        );
        assert!(geometry.page_bytes.is_power_of_two());
        assert!(geometry.phys_page_bytes.is_power_of_two());
        assert!(geometry.huge_page_bytes == 0 || geometry.huge_page_bytes.is_power_of_two());
        Model {
            geometry,
            chunks: BTreeMap::new(),
            marked: BTreeSet::new(),
            cache: None,
            first_free: usize::MAX,
        }
    }

    /// The geometry the model was made with.
    pub fn geometry(&self) -> TraceGeometry {
        self.geometry
    }

    /// Whether the page at byte address `addr` is in a grown chunk and
    /// allocated (`None` if it was never grown).
    pub fn is_allocated(&self, addr: usize) -> Option<bool> {
        let page = addr / self.geometry.page_bytes;
        self.chunks
            .get(&(page / CHUNK_PAGES))
            .map(|c| c.is_alloc(page % CHUNK_PAGES))
    }

    /// Whether the chunk at `chunk_base` has its scavenge-index bit.
    pub fn is_marked(&self, chunk_base: usize) -> bool {
        self.marked
            .contains(&(chunk_base / self.geometry.chunk_bytes()))
    }

    /// The cache taken last, with what is left of it.
    pub fn cache(&self) -> Option<CacheBlock> {
        self.cache
    }

    /// Number of allocated pages in the whole heap (cached pages count as
    /// allocated).
    pub fn allocated_pages(&self) -> usize {
        self.chunks
            .values()
            .flat_map(|c| c.alloc)
            .map(|w| w.count_ones() as usize)
            .sum()
    }

    /// Number of scavenged pages in the whole heap.
    pub fn scavenged_pages(&self) -> usize {
        self.chunks
            .values()
            .flat_map(|c| c.scav)
            .map(|w| w.count_ones() as usize)
            .sum()
    }

    /// Number of grown chunks.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Checks that `[base, base + len)` is a chunk-aligned, non-empty range
    /// inside the heap address space, above chunk 0; returns its chunk
    /// numbers.
    fn chunk_span(&self, base: usize, len: usize) -> Result<std::ops::Range<usize>, ModelError> {
        let cb = self.geometry.chunk_bytes();
        if len == 0 {
            return Err(ModelError::Zero);
        }
        if !base.is_multiple_of(cb) {
            return Err(ModelError::Misaligned(base));
        }
        if !len.is_multiple_of(cb) {
            return Err(ModelError::Misaligned(len));
        }
        let limit = 1usize
            .checked_shl(self.geometry.heap_addr_bits)
            .unwrap_or(0);
        let end = base.checked_add(len);
        let inside = end.is_some_and(|e| limit == 0 || e <= limit);
        if base == 0 || !inside {
            return Err(ModelError::OutOfRange { base, len });
        }
        Ok(base / cb..base / cb + len / cb)
    }

    fn page_chunk(&self, page: usize) -> Option<&Chunk> {
        self.chunks.get(&(page / CHUNK_PAGES))
    }

    fn chunk_mut(&mut self, page: usize) -> &mut Chunk {
        self.chunks
            .get_mut(&(page / CHUNK_PAGES))
            .expect("page of a grown chunk")
    }

    /// The lowest page number at which `npages` free pages start, scanning in
    /// address order from `first_free`, and the lowest free page seen.
    fn find_run(&self, npages: usize) -> (Option<usize>, Option<usize>) {
        let mut first_seen = None;
        let mut run_start = 0;
        let mut run_len = 0;
        let mut prev_chunk = None;
        let from_chunk = self.first_free / CHUNK_PAGES;
        for (&ci, c) in self.chunks.range(from_chunk..) {
            // A run continues only across adjacent grown chunks.
            if prev_chunk.map(|p: usize| p + 1) != Some(ci) {
                run_len = 0;
            }
            prev_chunk = Some(ci);
            let mut p = if ci == from_chunk {
                self.first_free % CHUNK_PAGES
            } else {
                0
            };
            while p < CHUNK_PAGES {
                // The pages from `p` to the end of its word that are all free
                // or all allocated, like page `p`.
                let left = 64 - p % 64;
                let word = c.alloc[p / 64] >> (p % 64);
                let free = word & 1 == 0;
                let step = if free {
                    word.trailing_zeros()
                } else {
                    word.trailing_ones()
                };
                let step = (step as usize).min(left);
                if free {
                    let page = ci * CHUNK_PAGES + p;
                    first_seen.get_or_insert(page);
                    if run_len == 0 {
                        run_start = page;
                    }
                    run_len += step;
                    if run_len >= npages {
                        return (Some(run_start), first_seen);
                    }
                } else {
                    run_len = 0;
                }
                p += step;
            }
        }
        (None, first_seen)
    }

    /// Marks pages `[start, start + n)` allocated, clearing their scavenged
    /// bits; returns how many were scavenged.
    fn take_pages(&mut self, start: usize, n: usize) -> usize {
        let mut scav = 0;
        for page in start..start + n {
            let c = self.chunk_mut(page);
            let p = page % CHUNK_PAGES;
            debug_assert!(!c.is_alloc(p));
            scav += usize::from(c.is_scav(p));
            c.set_alloc(p, true);
            c.set_scav(p, false);
        }
        scav
    }

    /// The highest maximal run of free, unscavenged pages of chunk `ci`,
    /// counting only whole `min`-page groups, as `(end, run)` in pages.
    fn highest_dirty_run(&self, ci: usize, min: usize) -> Option<(usize, usize)> {
        let c = &self.chunks[&ci];
        let group_ok = |g: usize| (g * min..(g + 1) * min).all(|p| c.is_dirty_free(p));
        let groups = CHUNK_PAGES / min;
        let top = (0..groups).rev().find(|&g| group_ok(g))?;
        let mut bottom = top;
        while bottom > 0 && group_ok(bottom - 1) {
            bottom -= 1;
        }
        Some(((top + 1) * min, (top + 1 - bottom) * min))
    }
}

impl PageHeap for Model {
    type Error = ModelError;

    fn geometry(&self) -> TraceGeometry {
        self.geometry
    }

    fn seed(
        &mut self,
        chunk_base: usize,
        alloc: &[(usize, usize)],
        scav: &[(usize, usize)],
    ) -> Result<(), ModelError> {
        let span = self.chunk_span(chunk_base, self.geometry.chunk_bytes())?;
        for &(i, n) in alloc.iter().chain(scav) {
            if !matches!(i.checked_add(n), Some(e) if e <= CHUNK_PAGES) {
                return Err(ModelError::OutOfRange { base: i, len: n });
            }
        }
        if self.chunks.contains_key(&span.start) {
            return Err(ModelError::Overlap(chunk_base));
        }
        let mut c = Chunk::default();
        for &(i, n) in scav {
            (i..i + n).for_each(|p| c.set_scav(p, true));
        }
        for &(i, n) in alloc {
            for p in i..i + n {
                c.set_alloc(p, true);
                c.set_scav(p, false);
            }
        }
        if (0..CHUNK_PAGES).any(|p| c.is_dirty_free(p)) {
            self.marked.insert(span.start);
        }
        self.chunks.insert(span.start, c);
        self.first_free = self.first_free.min(span.start * CHUNK_PAGES);
        Ok(())
    }

    fn grow(&mut self, base: usize, size: usize) -> Result<(), ModelError> {
        let span = self.chunk_span(base, size)?;
        if let Some((&ci, _)) = self.chunks.range(span.clone()).next() {
            return Err(ModelError::Overlap(ci * self.geometry.chunk_bytes()));
        }
        for ci in span.clone() {
            self.chunks.insert(
                ci,
                Chunk {
                    alloc: [0; CHUNK_WORDS],
                    scav: [u64::MAX; CHUNK_WORDS],
                },
            );
        }
        self.first_free = self.first_free.min(span.start * CHUNK_PAGES);
        Ok(())
    }

    fn alloc(&mut self, npages: usize) -> Result<Option<Allocated>, ModelError> {
        if npages == 0 {
            return Err(ModelError::Zero);
        }
        // More pages than the address space holds is bad input, not "no
        // room".
        let space_pages = 1usize
            .checked_shl(self.geometry.heap_addr_bits - self.geometry.page_bytes.trailing_zeros())
            .unwrap_or(usize::MAX);
        if npages > space_pages {
            return Err(ModelError::OutOfRange {
                base: 0,
                len: npages.saturating_mul(self.geometry.page_bytes),
            });
        }
        let (run, first_seen) = self.find_run(npages);
        let Some(start) = run else {
            self.first_free = first_seen.unwrap_or(usize::MAX);
            return Ok(None);
        };
        let scav = self.take_pages(start, npages);
        // Pages below the first free one seen were allocated already; if that
        // page starts the run, the run is allocated now too.
        self.first_free = match first_seen {
            Some(f) if f < start => f,
            _ => start + npages,
        };
        Ok(Some(Allocated {
            base: start * self.geometry.page_bytes,
            scav_bytes: scav * self.geometry.page_bytes,
        }))
    }

    fn free(&mut self, base: usize, npages: usize) -> Result<(), ModelError> {
        let pb = self.geometry.page_bytes;
        if npages == 0 {
            return Err(ModelError::Zero);
        }
        if !base.is_multiple_of(pb) {
            return Err(ModelError::Misaligned(base));
        }
        let first = base / pb;
        let Some(end) = first.checked_add(npages) else {
            return Err(ModelError::OutOfRange {
                base,
                len: npages.saturating_mul(pb),
            });
        };
        for page in first..end {
            match self.page_chunk(page) {
                None => return Err(ModelError::NotInUse(page * pb)),
                Some(c) if !c.is_alloc(page % CHUNK_PAGES) => {
                    return Err(ModelError::NotAllocated(page * pb))
                }
                Some(_) => {}
            }
        }
        for page in first..end {
            self.chunk_mut(page).set_alloc(page % CHUNK_PAGES, false);
            self.marked.insert(page / CHUNK_PAGES);
        }
        self.first_free = self.first_free.min(first);
        Ok(())
    }

    fn take_cache(&mut self) -> Result<Option<CacheBlock>, ModelError> {
        let (lowest, _) = self.find_run(1);
        let Some(lowest) = lowest else {
            self.first_free = usize::MAX;
            self.cache = None;
            return Ok(None);
        };
        let block = lowest / CACHE_PAGES * CACHE_PAGES;
        let c = self.chunk_mut(block);
        let w = block % CHUNK_PAGES / 64;
        let free = !c.alloc[w];
        let scav = c.scav[w] & free;
        c.alloc[w] = u64::MAX;
        c.scav[w] &= !free;
        // Everything below the lowest free page was allocated, and the block
        // holding it is now allocated whole.
        self.first_free = block + CACHE_PAGES;
        let cache = CacheBlock {
            base: block * self.geometry.page_bytes,
            free,
            scav,
        };
        self.cache = Some(cache);
        Ok(Some(cache))
    }

    fn cache_alloc(&mut self, npages: usize) -> Result<Option<Allocated>, ModelError> {
        // Requests no cache can satisfy are "no room", not errors: a cache
        // allocation cannot fail otherwise.
        if npages == 0 || npages > CACHE_PAGES {
            return Ok(None);
        }
        let pb = self.geometry.page_bytes;
        let Some(cache) = &mut self.cache else {
            return Ok(None);
        };
        let mask = if npages == 64 {
            u64::MAX
        } else {
            (1u64 << npages) - 1
        };
        let Some(i) = (0..=CACHE_PAGES - npages).find(|&i| cache.free >> i & mask == mask) else {
            return Ok(None);
        };
        let mask = mask << i;
        let scav = (cache.scav & mask).count_ones() as usize;
        cache.free &= !mask;
        cache.scav &= !mask;
        Ok(Some(Allocated {
            base: cache.base + i * pb,
            scav_bytes: scav * pb,
        }))
    }

    fn flush(&mut self) -> Result<(), ModelError> {
        let Some(cache) = self.cache else {
            return Ok(());
        };
        let first = cache.base / self.geometry.page_bytes;
        // Pages of the cache freed behind its back make the flush a double
        // free.
        for i in (0..CACHE_PAGES).filter(|i| cache.free >> i & 1 == 1) {
            let c = self.chunk_mut(first + i);
            if !c.is_alloc((first + i) % CHUNK_PAGES) {
                return Err(ModelError::NotAllocated(
                    (first + i) * self.geometry.page_bytes,
                ));
            }
        }
        self.cache = None;
        for i in 0..CACHE_PAGES {
            let c = self.chunk_mut(first + i);
            let p = (first + i) % CHUNK_PAGES;
            if cache.free >> i & 1 == 1 {
                c.set_alloc(p, false);
            }
            if cache.scav >> i & 1 == 1 {
                c.set_scav(p, true);
            }
        }
        // Not marked in the scavenge index, by the traced semantics.
        if cache.free != 0 {
            self.first_free = self.first_free.min(first);
        }
        Ok(())
    }

    fn scavenge(&mut self, bytes: usize) -> Result<usize, ModelError> {
        let g = self.geometry;
        let min = (g.phys_page_bytes / g.page_bytes).max(1);
        let huge = if g.huge_page_bytes > g.page_bytes && g.huge_page_bytes > g.phys_page_bytes {
            g.huge_page_bytes / g.page_bytes
        } else {
            0
        };
        let mut released = 0;
        while released < bytes {
            let Some(&ci) = self.marked.last() else { break };
            let Some((end, run)) = self.highest_dirty_run(ci, min) else {
                self.marked.remove(&ci);
                continue;
            };
            let remaining = bytes - released;
            let want = (remaining / g.page_bytes
                + usize::from(!remaining.is_multiple_of(g.page_bytes)))
            .next_multiple_of(min);
            let mut start = end - run.min(want);
            if huge != 0 && start.next_multiple_of(huge) <= end {
                let below = start / huge * huge;
                if below >= end - run {
                    start = below;
                }
            }
            let c = self.chunks.get_mut(&ci).expect("marked chunks are grown");
            (start..end).for_each(|p| c.set_scav(p, true));
            released += (end - start) * g.page_bytes;
        }
        Ok(released)
    }

    fn in_use(&self) -> Vec<(usize, usize)> {
        let cb = self.geometry.chunk_bytes();
        let mut out: Vec<(usize, usize)> = Vec::new();
        for &ci in self.chunks.keys() {
            match out.last_mut() {
                Some(last) if last.1 == ci * cb => last.1 += cb,
                _ => out.push((ci * cb, (ci + 1) * cb)),
            }
        }
        out
    }

    fn chunk_bits(&self, chunk_base: usize) -> Option<ChunkBits> {
        if !chunk_base.is_multiple_of(self.geometry.chunk_bytes()) {
            return None;
        }
        self.chunks
            .get(&(chunk_base / self.geometry.chunk_bytes()))
            .map(|c| ChunkBits {
                alloc: c.alloc,
                scav: c.scav,
            })
    }
}
