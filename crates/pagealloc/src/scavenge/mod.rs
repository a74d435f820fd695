//! Scavenging: releasing free, unscavenged pages to the OS, and the index
//! that says where to look.
//!
//! The work is shared by every policy: one loop takes the policy's next
//! run and releases it; `candidate_in` finds a chunk's candidate run below
//! a search page (see
//! [`ChunkData::find_scavenge_candidate`](crate::ChunkData::find_scavenge_candidate)),
//! and `release_run` releases it through the OS when the allocator may and
//! marks it scavenged. [`PageAlloc::detach_for_release`] and
//! [`PageAlloc::reattach`] split that last step for callers that release
//! memory outside their lock. What differs is the *index*: which chunks are worth a look,
//! in what order, and what allocation, free, the page cache and the GC's
//! generations record. Each policy is one file here:
//!
//! - [`go119`]: one bit per chunk, set by frees, worked highest chunk first
//!   (Go 1.19's `scavengeIndex` predecessor, the bitmap of Go 1.19).
//! - [`go127`]: per-chunk in-use counts with generations and a density
//!   rule, and two cursors (Go's scavenge index since 1.21, as in 1.27).
//!
//! The hooks the allocator's hot paths call (`PageAlloc::index_alloc`
//! and the others) dispatch on [`ScavengePolicy`] with a `match`, so a
//! policy costs nothing where it has nothing to do. A third policy is a new
//! file, a new variant and one arm per hook.

pub mod go119;
pub mod go127;

use pageheap_arena::Os;

use crate::geometry::Geometry;
use crate::{to_addr, to_off, Error, HeapRelease, PageAlloc};

/// A run of free pages taken out of the heap by
/// [`PageAlloc::detach_for_release`] while its memory is released; give it
/// back with [`PageAlloc::reattach`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a detached run stays allocated until it is reattached"]
pub struct Detached {
    base: usize,
    n_pages: usize,
}

impl Detached {
    /// The run's first byte.
    pub fn base(&self) -> usize {
        self.base
    }

    /// The run's length in pages.
    pub fn n_pages(&self) -> usize {
        self.n_pages
    }
}

/// Which scavenge index an allocator keeps; see the [module
/// documentation](self) and `TRACE-FORMAT.md` for the exact rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ScavengePolicy {
    /// Go 1.19: a chunk is marked when pages in it are freed; a scavenge
    /// works the highest marked chunk from its top. Flushing a page cache
    /// does not mark. There are no generations: [`PageAlloc::next_gen`]
    /// does nothing and an unforced scavenge is a forced one.
    Go119,
    /// Go 1.27 (the design of Go 1.21): per-chunk in-use counts with
    /// generations, so an unforced (background) scavenge leaves dense
    /// chunks (31/32 in use now or at the start of the generation) alone
    /// and sees memory freed in a generation only after the next
    /// [`PageAlloc::next_gen`]; a forced scavenge takes any chunk with free
    /// memory. The default.
    #[default]
    Go127,
}

impl<G: Geometry, O: Os> PageAlloc<G, O> {
    /// The policy this allocator was built with.
    pub fn scavenge_policy(&self) -> ScavengePolicy {
        self.policy
    }

    /// A **forced** scavenge: releases free, unscavenged pages until at
    /// least `bytes` bytes were released or the index has no chunk left to
    /// look at; returns the bytes released. Go uses it for
    /// `debug.FreeOSMemory` and the memory limit. It can exceed `bytes`: a
    /// run is released whole up to the pages asked for, rounded to
    /// physical pages, and a free, unscavenged huge page is released whole.
    ///
    /// With [`HeapRelease::Os`] each run is passed to [`Os::unused`]; with
    /// [`HeapRelease::Bookkeeping`] the pages are only marked scavenged.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if releasing a run fails. The runs released before it
    /// stay released (and scavenged); the failed run stays unscavenged
    /// (under go127 its chunk stays flagged, so a later scavenge retries
    /// it).
    pub fn scavenge(&mut self, bytes: usize) -> Result<usize, Error> {
        self.scavenge_kind(bytes, true)
    }

    /// An **unforced** scavenge, as a background scavenger makes: like
    /// [`PageAlloc::scavenge`], but under [`ScavengePolicy::Go127`] it
    /// skips dense chunks and starts from the background cursor, which
    /// only [`PageAlloc::next_gen`] moves. Under
    /// [`ScavengePolicy::Go119`] it is [`PageAlloc::scavenge`].
    ///
    /// # Errors
    ///
    /// As [`PageAlloc::scavenge`].
    pub fn scavenge_unforced(&mut self, bytes: usize) -> Result<usize, Error> {
        self.scavenge_kind(bytes, false)
    }

    /// The scavenge loop shared by every policy: take the policy's next
    /// run, release it, until `bytes` are released or there is none.
    fn scavenge_kind(&mut self, bytes: usize, forced: bool) -> Result<usize, Error> {
        let mut released = 0;
        while released < bytes {
            let Some((off, n)) = self.next_run(forced, bytes - released) else {
                break;
            };
            self.release_run(off, n)?;
            released += n << G::PAGE_SHIFT;
        }
        Ok(released)
    }

    /// The next run to release, as `(offset, pages)`, at most `max_bytes`
    /// as [`PageAlloc::candidate_in`] rounds it: the policy names the chunk
    /// to look at and the page to search from; a chunk whose look finds
    /// nothing loses its flag, and the policy names the next.
    fn next_run(&mut self, forced: bool, max_bytes: usize) -> Option<(usize, usize)> {
        loop {
            let (ci, search_idx) = match self.policy {
                ScavengePolicy::Go119 => self.next_look_go119()?,
                ScavengePolicy::Go127 => self.find_go127(forced)?,
            };
            match self.candidate_in(ci, search_idx, max_bytes) {
                Some(run) => return Some(run),
                None => self.chunks.unmark(ci),
            }
        }
    }

    /// Ends a generation: a GC cycle's mark phase is over. Under
    /// [`ScavengePolicy::Go127`] every chunk's in-use count at the start of
    /// the generation becomes its current one, and the background cursor
    /// moves up to the highest page freed during the generation that
    /// ended. Does nothing under [`ScavengePolicy::Go119`].
    pub fn next_gen(&mut self) {
        match self.policy {
            ScavengePolicy::Go119 => {}
            ScavengePolicy::Go127 => self.next_gen_go127(),
        }
    }

    /// Takes the next run a scavenge would release (at most `max_bytes`,
    /// rounded as [`PageAlloc::scavenge`] rounds) out of the heap, so that
    /// the caller can release its memory without holding whatever lock
    /// guards the allocator: the run's pages are marked allocated until
    /// [`PageAlloc::reattach`] gives them back, scavenged or not, and the
    /// scavenge index sees neither step (as Go's scavenger does it).
    /// `forced` picks the forced or the unforced kind. `None` if there is
    /// nothing to release, or a run is detached already.
    ///
    /// The pages' old contents are the caller's to discard: releasing them
    /// (for example with [`Os::unused`]) is safe as far as this allocator
    /// is concerned, since no allocation holds them.
    pub fn detach_for_release(&mut self, max_bytes: usize, forced: bool) -> Option<Detached> {
        if self.detached.is_some() {
            return None;
        }
        let (off, n) = self.next_run(forced, max_bytes)?;
        for (ci, i, k) in crate::ops::pieces::<G>(off, n) {
            self.chunks.get_mut(ci).alloc_range(i, k);
        }
        self.update(off, n, true, true);
        self.counters.pages_in_use += n;
        self.detached = Some((off, n));
        Some(Detached {
            base: to_addr::<G>(off),
            n_pages: n,
        })
    }

    /// Gives back a run [`PageAlloc::detach_for_release`] took: free again,
    /// and scavenged if `released` (the caller gave its memory back to the
    /// OS), as it was otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::BadDetached`] if `run` is not the run this allocator has
    /// detached; nothing changes.
    pub fn reattach(&mut self, run: Detached, released: bool) -> Result<(), Error> {
        let off = to_off::<G>(run.base);
        if self.detached != Some((off, run.n_pages)) {
            return Err(Error::BadDetached { base: run.base });
        }
        self.detached = None;
        let n = run.n_pages;
        for (ci, i, k) in crate::ops::pieces::<G>(off, n) {
            let c = self.chunks.get_mut(ci);
            c.free(i, k);
            if released {
                c.scav.set_range(i, k);
            }
        }
        if off < self.search {
            self.search = off;
        }
        self.update(off, n, true, false);
        self.counters.pages_in_use -= n;
        if released {
            self.counters.pages_scavenged += n;
        }
        Ok(())
    }

    /// The run [`PageAlloc::detach_for_release`] has out, as `(address,
    /// pages)`: allocated in the bitmaps but counted free by the index.
    pub fn detached(&self) -> Option<(usize, usize)> {
        self.detached.map(|(off, n)| (to_addr::<G>(off), n))
    }

    /// The candidate run of chunk `ci` at or below the 64-page word holding
    /// page `search_idx`, at most `max_bytes` (rounded up to whole physical
    /// pages, grown to a whole huge page where the run covers one), as
    /// `(offset, pages)`; `None` when the chunk has no free, unscavenged
    /// page there.
    pub(crate) fn candidate_in(
        &self,
        ci: usize,
        search_idx: usize,
        max_bytes: usize,
    ) -> Option<(usize, usize)> {
        let min = self.scav_min_pages;
        let max_pages = max_bytes.div_ceil(G::PAGE_BYTES);
        let leaf = G::SUMMARY_LEVELS - 1;
        // The leaf summary is a cheap filter: no run of `min` free pages at
        // all means no candidate.
        if self.sum(leaf, ci).max::<G>() < min {
            return None;
        }
        let (start, n) = self.chunks.get(ci).find_scavenge_candidate(
            search_idx,
            min,
            max_pages,
            self.scav_huge_pages,
        )?;
        Some(((ci << G::LOG_CHUNK_BYTES) + (start << G::PAGE_SHIFT), n))
    }

    /// Releases the free, unscavenged run `[off, off + n pages)` of one
    /// chunk through the OS when the allocator may, and marks it
    /// scavenged. Go calls this `scavengeOne`.
    fn release_run(&mut self, off: usize, n: usize) -> Result<(), Error> {
        let len = n << G::PAGE_SHIFT;
        if let HeapRelease::Os(release) = self.heap_release {
            // SAFETY:
            // - The run lies in a grown chunk and every page of it is free
            //   in the allocation bitmap, so no allocation holds it.
            // - Whoever built `release` promised that grown ranges are heap
            //   memory from `self.os` and that nothing relies on the
            //   contents of free pages.
            unsafe { self.os.unused(to_addr::<G>(off), len, release.mode()) }?;
        }
        // Go marks the run allocated while the OS call runs, so that no
        // other thread takes it, frees it afterwards and lowers the search
        // address to it. Under `&mut self` nobody can take it, the bitmap
        // ends up as it started, and the run is free, so it already lies at
        // or above the search address.
        debug_assert!(off >= self.search, "free run below the search address");
        let ci = off >> G::LOG_CHUNK_BYTES;
        let i = (off >> G::PAGE_SHIFT) & (G::CHUNK_PAGES - 1);
        self.chunks.get_mut(ci).scav.set_range(i, n);
        self.counters.pages_scavenged += n;
        Ok(())
    }

    /// Index hook: `n` pages of chunk `ci` were allocated (by an
    /// allocation, a cache take, a pad or a setup).
    #[inline]
    pub(crate) fn index_alloc(&mut self, ci: usize, n: usize) {
        match self.policy {
            ScavengePolicy::Go119 => {}
            ScavengePolicy::Go127 => self.go127_alloc(ci, n),
        }
    }

    /// Index hook: `n` pages of chunk `ci` were freed by `free`.
    #[inline]
    pub(crate) fn index_free(&mut self, ci: usize, n: usize) {
        match self.policy {
            ScavengePolicy::Go119 => self.chunks.mark(ci),
            ScavengePolicy::Go127 => self.go127_free(ci, n),
        }
    }

    /// Index hook, once per `free`: the highest page freed, as an offset.
    #[inline]
    pub(crate) fn index_freed_up_to(&mut self, last_page: usize) {
        match self.policy {
            ScavengePolicy::Go119 => {}
            ScavengePolicy::Go127 => self.go127_freed_up_to(last_page),
        }
    }

    /// Index hook: a cache flush gave back `n` pages of chunk `ci`, the
    /// highest at offset `last_page`.
    #[inline]
    pub(crate) fn index_flush(&mut self, ci: usize, n: usize, last_page: usize) {
        match self.policy {
            // Go 1.19 does not mark flushed pages.
            ScavengePolicy::Go119 => {}
            ScavengePolicy::Go127 => {
                self.go127_free(ci, n);
                self.go127_freed_up_to(last_page);
            }
        }
    }

    /// Index hook: chunk `ci` was just seeded by `seed_chunk` (grown, its
    /// scavenged bits set, its allocated ranges allocated in the bitmap
    /// only).
    pub(crate) fn index_seed(&mut self, ci: usize) {
        match self.policy {
            ScavengePolicy::Go119 => self.go119_seed(ci),
            ScavengePolicy::Go127 => self.go127_seed(ci),
        }
    }
}
