//! A flat reference page allocator, written for obviousness from the
//! "Semantics" and "Policy go127" sections of
//! `crates/pagealloc/tests/traces/TRACE-FORMAT.md` alone.
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

use pageheap_alloc::{Cursor, IndexEntry, IndexState, ScavengePolicy};

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
    /// A pad of a page that is allocated.
    #[error("page {0:#x} is allocated")]
    Allocated(usize),
    /// A second pad.
    #[error("the heap was padded already")]
    PaddedTwice,
}

/// One chunk: bit `i` of word `i / 64` is page `i`; 1 = allocated /
/// scavenged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Chunk {
    alloc: [u64; CHUNK_WORDS],
    scav: [u64; CHUNK_WORDS],
    /// go127: pages the index counts allocated.
    inuse: usize,
    /// go127: `inuse` when the generation began.
    last: usize,
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
    /// Chunks whose scavenge-index bit (go119) or `free` flag (go127) is
    /// set.
    marked: BTreeSet<usize>,
    /// go127: the generation.
    gen: u64,
    /// go127: the highest page freed in this generation.
    hwm: Option<usize>,
    /// go127: the background cursor, a page and its mark.
    bg: Option<(usize, bool)>,
    /// go127: the forced cursor.
    force: Option<(usize, bool)>,
    /// Whether `pad` was used.
    padded: bool,
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
            gen: 0,
            hwm: None,
            bg: None,
            force: None,
            padded: false,
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

    /// Checks a page-range argument: non-empty, page-aligned, not
    /// wrapping; returns its page numbers `[first, end)`.
    fn page_span(&self, base: usize, npages: usize) -> Result<(usize, usize), ModelError> {
        let pb = self.geometry.page_bytes;
        if npages == 0 {
            return Err(ModelError::Zero);
        }
        if !base.is_multiple_of(pb) {
            return Err(ModelError::Misaligned(base));
        }
        let first = base / pb;
        let end = first.checked_add(npages).ok_or(ModelError::OutOfRange {
            base,
            len: npages.saturating_mul(pb),
        })?;
        Ok((first, end))
    }

    fn go127(&self) -> bool {
        self.geometry.policy == ScavengePolicy::Go127
    }

    /// go127: an allocation of `n` pages in chunk `ci`.
    fn index_alloc(&mut self, ci: usize, n: usize) {
        if !self.go127() || n == 0 {
            return;
        }
        let c = self.chunks.get_mut(&ci).expect("grown chunk");
        c.inuse += n;
        if c.inuse == CHUNK_PAGES {
            self.marked.remove(&ci);
        }
    }

    /// go127: a free of `n` pages in chunk `ci`.
    fn index_free(&mut self, ci: usize, n: usize) {
        let c = self.chunks.get_mut(&ci).expect("grown chunk");
        c.inuse -= n;
        self.marked.insert(ci);
    }

    /// go127: `page` was the highest page freed.
    fn freed_up_to(&mut self, page: usize) {
        if self.hwm.is_none_or(|h| h < page) {
            self.hwm = Some(page);
        }
        if self.force.is_none_or(|(c, _)| c < page) {
            self.force = Some((page, true));
        }
    }

    /// Counts pages by chunk: `(chunk, pages)` for `[first, end)`.
    fn per_chunk(first: usize, end: usize) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = Vec::new();
        for page in first..end {
            match out.last_mut() {
                Some((c, n)) if *c == page / CHUNK_PAGES => *n += 1,
                _ => out.push((page / CHUNK_PAGES, 1)),
            }
        }
        out
    }

    /// The go127 scavenge, forced or not, exactly as the format's "The
    /// scavenge index" section words it.
    fn scavenge_go127(&mut self, bytes: usize, forced: bool) -> usize {
        let g = self.geometry;
        let (min, _) = scav_params(g);
        let mut released = 0;
        while released < bytes {
            let cursor = if forced { self.force } else { self.bg };
            let Some((page, marked)) = cursor else { break };
            let s = page / CHUNK_PAGES;
            let eligible = |m: &Model, c: usize| {
                let ch = &m.chunks[&c];
                let dense = ch.inuse >= 496 || ch.last >= 496;
                m.marked.contains(&c) && (forced || !dense)
            };
            let found = self
                .chunks
                .range(..=s)
                .rev()
                .map(|(&c, _)| c)
                .find(|&c| eligible(self, c));
            let set = |m: &mut Model, v: Option<(usize, bool)>| {
                if forced {
                    m.force = v;
                } else {
                    m.bg = v;
                }
            };
            let (ci, search) = match found {
                Some(c) if c == s => (c, page % CHUNK_PAGES),
                Some(c) => {
                    set(self, Some((c * CHUNK_PAGES + CHUNK_PAGES - 1, false)));
                    (c, CHUNK_PAGES - 1)
                }
                None => {
                    if !marked {
                        set(self, None);
                    }
                    break;
                }
            };
            // Only pages below the end of the 64-page word holding `search`.
            let limit = 64 * (search / 64 + 1);
            let Some((end, run)) = self.dirty_run_below(ci, min, limit) else {
                self.marked.remove(&ci);
                continue;
            };
            released += self.release_top(ci, end, run, bytes - released);
        }
        released
    }

    /// Releases the top of the free, unscavenged run of chunk `ci` that
    /// ends at page `end` and is `run` pages long, for a request of `rem`
    /// more bytes: the top `min(run, ceil(rem / page))` pages (whole
    /// `min`-page groups), grown down to a huge-page boundary when the run
    /// covers the huge page below (the same rule for both policies).
    /// Returns the bytes released.
    fn release_top(&mut self, ci: usize, end: usize, run: usize, rem: usize) -> usize {
        let g = self.geometry;
        let (min, huge) = scav_params(g);
        let want = rem.div_ceil(g.page_bytes).next_multiple_of(min);
        let mut start = end - run.min(want);
        if huge != 0 && start.next_multiple_of(huge) <= end {
            let below = start / huge * huge;
            if below >= end - run {
                start = below;
            }
        }
        let c = self.chunks.get_mut(&ci).expect("grown chunk");
        (start..end).for_each(|p| c.set_scav(p, true));
        (end - start) * g.page_bytes
    }

    /// The highest maximal run of free, unscavenged whole `min`-page groups
    /// of chunk `ci` whose top group lies below page `limit`, as `(end,
    /// run)`; the run may reach below anything.
    fn dirty_run_below(&self, ci: usize, min: usize, limit: usize) -> Option<(usize, usize)> {
        let c = &self.chunks[&ci];
        let group_ok = |g: usize| (g * min..(g + 1) * min).all(|p| c.is_dirty_free(p));
        let top = (0..limit / min).rev().find(|&g| group_ok(g))?;
        let mut bottom = top;
        while bottom > 0 && group_ok(bottom - 1) {
            bottom -= 1;
        }
        Some(((top + 1) * min, (top + 1 - bottom) * min))
    }
}

/// The scavenger's minimum run and huge-page run in pages (0: no huge-page
/// rule), from the geometry.
fn scav_params(g: TraceGeometry) -> (usize, usize) {
    let min = (g.phys_page_bytes / g.page_bytes).max(1);
    let huge = if g.huge_page_bytes > g.page_bytes && g.huge_page_bytes > g.phys_page_bytes {
        g.huge_page_bytes / g.page_bytes
    } else {
        0
    };
    (min, huge)
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
        let used = (0..CHUNK_PAGES).filter(|&p| c.is_alloc(p)).count();
        let dirty = (0..CHUNK_PAGES).any(|p| c.is_dirty_free(p));
        self.chunks.insert(span.start, c);
        if self.go127() {
            // Grown, allocated whole and freed whole, then the allocated
            // ranges counted.
            self.marked.insert(span.start);
            self.freed_up_to(span.start * CHUNK_PAGES + CHUNK_PAGES - 1);
            self.index_alloc(span.start, used);
        } else if dirty {
            self.marked.insert(span.start);
        }
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
                    inuse: 0,
                    last: 0,
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
        for (ci, n) in Self::per_chunk(start, start + npages) {
            self.index_alloc(ci, n);
        }
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
        let (first, end) = self.page_span(base, npages)?;
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
        }
        for (ci, n) in Self::per_chunk(first, end) {
            if self.go127() {
                self.index_free(ci, n);
            } else {
                self.marked.insert(ci);
            }
        }
        if self.go127() {
            self.freed_up_to(end - 1);
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
        // The scavenged bit of every page of the block: those of its free
        // pages, and those of pad pages (allocated and scavenged; go119
        // traces never pad, so there it is the free pages' bits alone).
        let scav = c.scav[w];
        c.alloc[w] = u64::MAX;
        c.scav[w] &= !free;
        self.index_alloc(block / CHUNK_PAGES, free.count_ones() as usize);
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
            // The trace format's flush sets the scavenged bit of every
            // page in the mask; outside the free mask those are pad pages,
            // already scavenged, so only the free pages' bits matter. A pad
            // page freed and allocated again while the cache was out is in
            // use now: marking it released would break the rule that
            // released pages are free or pad, and neither side does.
            if cache.scav >> i & 1 == 1 && cache.free >> i & 1 == 1 {
                c.set_scav(p, true);
            }
        }
        // go119: not marked in the scavenge index. go127: a free of the
        // pages still cached.
        if cache.free != 0 {
            self.first_free = self.first_free.min(first);
            if self.go127() {
                self.index_free(first / CHUNK_PAGES, cache.free.count_ones() as usize);
                self.freed_up_to(first + 63 - cache.free.leading_zeros() as usize);
            }
        }
        Ok(())
    }

    fn scavenge(&mut self, bytes: usize) -> Result<usize, ModelError> {
        if self.go127() {
            return Ok(self.scavenge_go127(bytes, true));
        }
        let g = self.geometry;
        let (min, _) = scav_params(g);
        let mut released = 0;
        while released < bytes {
            let Some(&ci) = self.marked.last() else { break };
            let Some((end, run)) = self.dirty_run_below(ci, min, CHUNK_PAGES) else {
                self.marked.remove(&ci);
                continue;
            };
            released += self.release_top(ci, end, run, bytes - released);
        }
        Ok(released)
    }

    fn bg_scavenge(&mut self, bytes: usize) -> Result<usize, ModelError> {
        if self.go127() {
            Ok(self.scavenge_go127(bytes, false))
        } else {
            self.scavenge(bytes)
        }
    }

    fn pad(&mut self, base: usize, npages: usize) -> Result<(), ModelError> {
        let pb = self.geometry.page_bytes;
        let (first, end) = self.page_span(base, npages)?;
        if self.padded {
            return Err(ModelError::PaddedTwice);
        }
        for page in first..end {
            match self.page_chunk(page) {
                None => return Err(ModelError::NotInUse(page * pb)),
                Some(c) if c.is_alloc(page % CHUNK_PAGES) => {
                    return Err(ModelError::Allocated(page * pb))
                }
                Some(_) => {}
            }
        }
        for page in first..end {
            let c = self.chunk_mut(page);
            c.set_alloc(page % CHUNK_PAGES, true);
            c.set_scav(page % CHUNK_PAGES, true);
        }
        for (ci, n) in Self::per_chunk(first, end) {
            self.index_alloc(ci, n);
        }
        self.padded = true;
        Ok(())
    }

    fn next_gen(&mut self) {
        if !self.go127() {
            return;
        }
        self.gen += 1;
        for c in self.chunks.values_mut() {
            c.last = c.inuse;
        }
        if let Some(h) = self.hwm.take() {
            if self.bg.is_none_or(|(c, _)| c < h) {
                self.bg = Some((h, true));
            }
        }
    }

    fn scav_state(&self) -> Option<IndexState> {
        let pb = self.geometry.page_bytes;
        let cursor = |c: Option<(usize, bool)>| {
            c.map(|(p, marked)| Cursor {
                page: p * pb,
                marked,
            })
        };
        self.go127().then(|| IndexState {
            gen: self.gen,
            free_hwm: self.hwm.map(|p| p * pb),
            background: cursor(self.bg),
            forced: cursor(self.force),
        })
    }

    fn scav_idx(&self, chunk_base: usize) -> Option<IndexEntry> {
        let cb = self.geometry.chunk_bytes();
        if !self.go127() || !chunk_base.is_multiple_of(cb) {
            return None;
        }
        let ci = chunk_base / cb;
        self.chunks.get(&ci).map(|c| IndexEntry {
            in_use: c.inuse,
            in_use_at_gen_start: c.last,
            free: self.marked.contains(&ci),
        })
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
