//! The allocator's core operations: grow, allocate (first fit with the fast
//! path at the search address), allocate a given range, free, and the
//! trace-setup helper that seeds a chunk's bitmaps.
//!
//! Every public operation validates its arguments completely before it
//! changes anything, so a rejected call leaves the allocator as it was.

use pageheap_arena::Os;
use pageheap_ranges::AddrRange;

use crate::chunk::ChunkData;
use crate::geometry::Geometry;
use crate::{max_off, to_addr, to_off, Allocation, Error, PageAlloc};

/// The chunk pieces of the page range `[off, off + npages pages)`: `(chunk
/// index, first page in the chunk, pages in the chunk)`.
#[inline]
pub(crate) fn pieces<G: Geometry>(
    off: usize,
    npages: usize,
) -> impl Iterator<Item = (usize, usize, usize)> {
    let mut p = off >> G::PAGE_SHIFT;
    let end = p + npages;
    core::iter::from_fn(move || {
        if p >= end {
            return None;
        }
        let i = p & (G::CHUNK_PAGES - 1);
        let n = (G::CHUNK_PAGES - i).min(end - p);
        let ci = p >> G::LOG_CHUNK_PAGES;
        p += n;
        Some((ci, i, n))
    })
}

impl<G: Geometry, O: Os> PageAlloc<G, O> {
    /// Adds the chunk-aligned range `[base, base + size)` to the heap: its
    /// pages become free and scavenged (grown memory is assumed not to be
    /// backed yet). Commits the summary memory the range needs that its
    /// in-use neighbours have not already committed.
    ///
    /// # Errors
    ///
    /// Nothing changes on any error:
    /// - [`Error::ZeroSize`] if `size` is 0;
    /// - [`Error::Misaligned`] / [`Error::MisalignedSize`] if `base` or
    ///   `size` is not a multiple of the chunk size;
    /// - [`Error::OutOfAddressSpace`] if the range leaves the geometry's
    ///   address space;
    /// - [`Error::Overlap`] if any of it was grown before;
    /// - [`Error::Os`] or [`Error::Ranges`] if metadata memory could not be
    ///   had.
    pub fn grow(&mut self, base: usize, size: usize) -> Result<(), Error> {
        if size == 0 {
            return Err(Error::ZeroSize);
        }
        if base & (G::CHUNK_BYTES - 1) != 0 {
            return Err(Error::Misaligned {
                addr: base,
                align: G::CHUNK_BYTES,
            });
        }
        if size & (G::CHUNK_BYTES - 1) != 0 {
            return Err(Error::MisalignedSize {
                size,
                align: G::CHUNK_BYTES,
            });
        }
        let off = to_off::<G>(base);
        if off > max_off::<G>() || size - 1 > max_off::<G>() - off {
            return Err(Error::OutOfAddressSpace { base, len: size });
        }
        // A range reaching the very top of a 32-bit address space on a
        // 32-bit target has no representable limit.
        let Some(limit) = off.checked_add(size) else {
            return Err(Error::OutOfAddressSpace { base, len: size });
        };
        if self.in_use.overlaps(off, limit) {
            return Err(Error::Overlap { base, len: size });
        }
        let sc = off >> G::LOG_CHUNK_BYTES;
        let ec = limit >> G::LOG_CHUNK_BYTES;

        // Fallible steps first. Chunk map blocks need no undoing: an unused
        // block changes nothing the allocator reads.
        let mut ci = sc;
        while ci < ec {
            self.chunks.ensure(&self.os, ci, &mut self.meta)?;
            ci = (ci | ((1 << G::CHUNKS_L2_BITS) - 1)) + 1;
        }
        let (pred, succ) = self.in_use.neighbours(off);
        let done = self
            .tree
            .grow(&self.os, off, limit, pred, succ, &mut self.meta)?;
        if let Err(e) = self.in_use.add(&self.os, off, limit, &mut self.meta) {
            // SAFETY:
            // - `done` is what the grow just above returned, and the range
            //   did not enter the in-use set, so no search reads its
            //   summaries.
            unsafe { self.tree.undo_grow(&self.os, &done, &mut self.meta) };
            return Err(e);
        }

        // From here on nothing fails.
        self.tree.extend_len(off, limit);
        if self.end == 0 || sc < self.start {
            self.start = sc;
        }
        self.end = self.end.max(ec);
        self.search = self.search.min(off);
        // The remembered search range may now be part of a larger one.
        self.hints_forget_range();
        for ci in sc..ec {
            let c = self.chunks.get_mut(ci);
            debug_assert_eq!(c.alloc.count_ones(), 0, "grown chunk was in use");
            c.scav.set_all();
        }
        let npages = size >> G::PAGE_SHIFT;
        self.update(off, npages, true, false);
        self.counters.pages_total += npages;
        self.counters.pages_scavenged += npages;
        Ok(())
    }

    /// Allocates `npages` contiguous pages, the lowest-addressed run that
    /// fits. `Ok(None)` means no run of that length is free.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroSize`] if `npages` is 0; [`Error::OutOfAddressSpace`]
    /// if `npages` pages exceed the whole address space.
    ///
    /// # Panics
    ///
    /// Only if the allocator's internal invariants are broken (a bug).
    #[inline]
    pub fn alloc(&mut self, npages: usize) -> Result<Option<Allocation>, Error> {
        if npages == 0 {
            return Err(Error::ZeroSize);
        }
        if npages > (max_off::<G>() >> G::PAGE_SHIFT) + 1 {
            return Err(Error::OutOfAddressSpace {
                base: to_addr::<G>(0),
                len: npages.saturating_mul(G::PAGE_BYTES),
            });
        }
        Ok(self.alloc_pages(npages).map(|(off, scav)| Allocation {
            base: to_addr::<G>(off),
            scavenged: scav << G::PAGE_SHIFT,
        }))
    }

    /// [`PageAlloc::alloc`] without the argument checks: `(offset,
    /// scavenged pages)`.
    #[inline]
    fn alloc_pages(&mut self, npages: usize) -> Option<(usize, usize)> {
        if npages <= crate::hints::HINT_PAGES {
            let addr = self.first_fit_hinted(npages)?;
            return Some((addr, self.alloc_range_unchecked(addr, npages)));
        }
        let ci = self.search >> G::LOG_CHUNK_BYTES;
        if ci >= self.end {
            return None;
        }
        let leaf = G::SUMMARY_LEVELS - 1;
        let cpi = (self.search >> G::PAGE_SHIFT) & (G::CHUNK_PAGES - 1);
        let (addr, candidate) =
            if G::CHUNK_PAGES - cpi >= npages && self.sum(leaf, ci).max::<G>() >= npages {
                // Fast path: the search address's chunk has room.
                let (j, search_idx) = self.chunks.get(ci).alloc.find(npages, cpi);
                let j = j.expect("bad summary data: leaf promised a run");
                let chunk = ci << G::LOG_CHUNK_BYTES;
                (
                    chunk + (j << G::PAGE_SHIFT),
                    chunk + (search_idx << G::PAGE_SHIFT),
                )
            } else {
                match self.find(npages) {
                    (Some(a), c) => (a, c),
                    (None, _) => {
                        // Nothing fits one page: every page is in use. A larger
                        // failed request says nothing about smaller ones.
                        if npages == 1 {
                            self.search = max_off::<G>();
                        }
                        return None;
                    }
                }
            };
        let scav = self.alloc_range_unchecked(addr, npages);
        if candidate > self.search {
            self.search = candidate;
        }
        Some((addr, scav))
    }

    /// Marks `[off, off + npages pages)` allocated (all free and in use),
    /// clearing its scavenged bits; returns how many pages were scavenged.
    /// Go calls this `allocRange`.
    #[inline]
    pub(crate) fn alloc_range_unchecked(&mut self, off: usize, npages: usize) -> usize {
        let mut scav = 0;
        for (ci, i, n) in pieces::<G>(off, npages) {
            let c = self.chunks.get_mut(ci);
            if n == G::CHUNK_PAGES {
                scav += c.scav.count_ones();
                c.alloc_all();
            } else {
                scav += c.scav.popcnt_range(i, n);
                c.alloc_range(i, n);
            }
            self.index_alloc(ci, n);
        }
        self.update(off, npages, true, true);
        self.counters.pages_in_use += npages;
        self.counters.pages_scavenged -= scav;
        scav
    }

    /// Allocates exactly the pages `[base, base + npages pages)`, which must
    /// all be free and in the heap. Returns how many of their bytes were
    /// scavenged. The search address is not moved (allocating cannot
    /// break its invariant).
    ///
    /// # Errors
    ///
    /// Nothing changes on any error:
    /// - [`Error::ZeroSize`], [`Error::Misaligned`] (not page-aligned),
    ///   [`Error::OutOfAddressSpace`] for a bad range;
    /// - [`Error::NotInHeap`] if any page was never grown;
    /// - [`Error::AlreadyAllocated`] if any page is allocated.
    pub fn alloc_range(&mut self, base: usize, npages: usize) -> Result<usize, Error> {
        let (off, len) = self.check_pages(base, npages)?;
        match self.in_use.range_containing_off(off) {
            Some((_, limit)) if len <= limit - off => {}
            _ => return Err(Error::NotInHeap { base, len }),
        }
        for (ci, i, n) in pieces::<G>(off, npages) {
            let c = self.chunks.get(ci);
            if !c.alloc.none_set(i, n) {
                let k = (i..i + n).find(|&k| c.alloc.get(k)).unwrap_or(i);
                let page = (ci << G::LOG_CHUNK_BYTES) + (k << G::PAGE_SHIFT);
                return Err(Error::AlreadyAllocated {
                    addr: to_addr::<G>(page),
                });
            }
        }
        Ok(self.alloc_range_unchecked(off, npages) << G::PAGE_SHIFT)
    }

    /// Frees the allocated pages `[base, base + npages pages)`. Their
    /// scavenged bits stay clear (the memory is dirty), and their chunks are
    /// marked for the scavenger.
    ///
    /// # Errors
    ///
    /// Nothing changes on any error:
    /// - [`Error::ZeroSize`], [`Error::Misaligned`],
    ///   [`Error::OutOfAddressSpace`] for a bad range;
    /// - [`Error::NotInHeap`] if any page was never grown;
    /// - [`Error::NotAllocated`] if any page is free (a double free).
    #[inline]
    pub fn free(&mut self, base: usize, npages: usize) -> Result<(), Error> {
        let (off, _) = self.check_pages(base, npages)?;
        self.check_allocated(off, npages)?;
        self.free_unchecked(off, npages);
        Ok(())
    }

    /// Checks that every page of `[off, off + npages pages)` is allocated.
    /// An allocated page is always in use, so this also checks that.
    #[inline]
    fn check_allocated(&self, off: usize, npages: usize) -> Result<(), Error> {
        for (ci, i, n) in pieces::<G>(off, npages) {
            let ok = match self.chunks.try_get(ci) {
                Some(c) if n == 1 => c.alloc.get(i),
                Some(c) => c.alloc.all_set(i, n),
                None => false,
            };
            if !ok {
                return Err(self.free_error(ci, i, n));
            }
        }
        Ok(())
    }

    /// The error for a free that fails on chunk `ci`'s pages `[i, i + n)`.
    #[cold]
    fn free_error(&self, ci: usize, i: usize, n: usize) -> Error {
        let chunk = ci << G::LOG_CHUNK_BYTES;
        let c = match self.chunks.try_get(ci) {
            Some(c) if self.in_use.contains_off(chunk) => c,
            _ => {
                return Error::NotInHeap {
                    base: to_addr::<G>(chunk + (i << G::PAGE_SHIFT)),
                    len: n << G::PAGE_SHIFT,
                }
            }
        };
        let k = (i..i + n).find(|&k| !c.alloc.get(k)).unwrap_or(i);
        Error::NotAllocated {
            addr: to_addr::<G>(chunk + (k << G::PAGE_SHIFT)),
        }
    }

    /// Frees `[off, off + npages pages)`, all allocated. Go calls this
    /// `free`.
    #[inline]
    pub(crate) fn free_unchecked(&mut self, off: usize, npages: usize) {
        if off < self.search {
            self.search = off;
        }
        if self.pad.is_some() {
            self.unpad(off, npages);
        }
        for (ci, i, n) in pieces::<G>(off, npages) {
            let c = self.chunks.get_mut(ci);
            if n == 1 {
                c.free1(i);
            } else if n == G::CHUNK_PAGES {
                c.free_all();
            } else {
                c.free(i, n);
            }
            self.index_free(ci, n);
        }
        self.index_freed_up_to(off + ((npages - 1) << G::PAGE_SHIFT));
        self.update(off, npages, true, false);
        self.counters.pages_in_use -= npages;
    }

    /// Freeing pad pages: they stay scavenged and now count as free,
    /// scavenged pages.
    #[cold]
    fn unpad(&mut self, off: usize, npages: usize) {
        for (ci, i, n) in pieces::<G>(off, npages) {
            self.counters.pages_scavenged += self.chunks.get(ci).scav.popcnt_range(i, n);
        }
    }

    /// Marks the free pages `[base, base + npages pages)` allocated **and**
    /// scavenged, counted as an allocation by the scavenge index: address
    /// space a runtime skips (Go pads its first arena so that the heap
    /// starts at a randomized offset) without ever backing it. Allowed once
    /// per allocator; freeing the pages later makes them free, scavenged
    /// pages.
    ///
    /// # Errors
    ///
    /// Nothing changes on any error: [`Error::AlreadyPadded`] on a second
    /// call, otherwise the errors of [`PageAlloc::alloc_range`].
    pub fn pad(&mut self, base: usize, npages: usize) -> Result<(), Error> {
        if self.pad.is_some() {
            return Err(Error::AlreadyPadded);
        }
        self.alloc_range(base, npages)?;
        let off = to_off::<G>(base);
        for (ci, i, n) in pieces::<G>(off, npages) {
            self.chunks.get_mut(ci).scav.set_range(i, n);
        }
        self.pad = Some((off, npages));
        Ok(())
    }

    /// The pages [`PageAlloc::pad`] marked, as `(address, pages)`.
    pub fn padded(&self) -> Option<(usize, usize)> {
        self.pad.map(|(off, n)| (to_addr::<G>(off), n))
    }

    /// Checks a page range argument; returns its offset and length in bytes.
    #[inline]
    pub(crate) fn check_pages(&self, base: usize, npages: usize) -> Result<(usize, usize), Error> {
        if npages == 0 {
            return Err(Error::ZeroSize);
        }
        if base & (G::PAGE_BYTES - 1) != 0 {
            return Err(Error::Misaligned {
                addr: base,
                align: G::PAGE_BYTES,
            });
        }
        let off = to_off::<G>(base);
        let len = npages
            .checked_mul(G::PAGE_BYTES)
            .ok_or(Error::OutOfAddressSpace {
                base,
                len: usize::MAX,
            })?;
        if off > max_off::<G>() || len - 1 > max_off::<G>() - off {
            return Err(Error::OutOfAddressSpace { base, len });
        }
        Ok((off, len))
    }

    /// Test hook for trace replay, hidden from the documentation: not meant
    /// for allocators in use (it overwrites a chunk's bitmaps wholesale).
    ///
    /// Sets up one chunk as a trace's `setup` line describes: grows the
    /// chunk at `chunk_base`, makes its scavenged bits exactly the `scav`
    /// ranges, then allocates the `alloc` ranges (clearing their scavenged
    /// bits), and records the chunk in the scavenge index as the policy
    /// says (go119: marked if it has a free, unscavenged page; go127:
    /// allocated and freed whole, then its allocated pages counted). Ranges are `(page index, count)` pairs; they may
    /// overlap, and empty ones are ignored. Go's test hook `NewPageAlloc`
    /// does the same per chunk.
    ///
    /// # Errors
    ///
    /// Nothing changes on any error: [`Error::BadPageRange`] for a range
    /// past the chunk's end, otherwise the errors of [`PageAlloc::grow`].
    #[doc(hidden)]
    pub fn seed_chunk(
        &mut self,
        chunk_base: usize,
        alloc: &[(usize, usize)],
        scav: &[(usize, usize)],
    ) -> Result<(), Error> {
        for &(index, count) in alloc.iter().chain(scav) {
            if index.checked_add(count).is_none_or(|e| e > G::CHUNK_PAGES) {
                return Err(Error::BadPageRange { index, count });
            }
        }
        self.grow(chunk_base, G::CHUNK_BYTES)?;
        let off = to_off::<G>(chunk_base);
        let ci = off >> G::LOG_CHUNK_BYTES;
        let c = self.chunks.get_mut(ci);
        c.scav.clear_all();
        for &(i, n) in scav {
            c.scav.set_range(i, n);
        }
        for &(i, n) in alloc {
            c.alloc_range(i, n);
        }
        let (used, scavenged) = (c.alloc.count_ones(), c.scav.count_ones());
        self.counters.pages_in_use += used;
        self.counters.pages_scavenged = self.counters.pages_scavenged - G::CHUNK_PAGES + scavenged;
        self.update(off, G::CHUNK_PAGES, false, false);
        self.index_seed(ci);
        Ok(())
    }

    /// The in-use address ranges (everything grown), in address order,
    /// coalesced.
    pub fn in_use(&self) -> impl Iterator<Item = AddrRange> + '_ {
        self.in_use.iter()
    }

    /// The bitmaps of the grown chunk at `chunk_base`; `None` if
    /// `chunk_base` is not a chunk's base or the chunk was never grown.
    pub fn chunk(&self, chunk_base: usize) -> Option<&ChunkData> {
        let off = to_off::<G>(chunk_base);
        if chunk_base & (G::CHUNK_BYTES - 1) != 0
            || off > max_off::<G>()
            || !self.in_use.contains_off(off)
        {
            return None;
        }
        self.chunks.try_get(off >> G::LOG_CHUNK_BYTES)
    }
}
