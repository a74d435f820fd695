//! Scavenging: releasing free, unscavenged pages to the OS, and the index
//! that says where to look.
//!
//! The work is shared by every policy: [`PageAlloc::release_in`] finds a
//! chunk's candidate run below a search page (see
//! [`ChunkData::find_scavenge_candidate`](crate::ChunkData::find_scavenge_candidate)),
//! releases it through the OS when the allocator may, and marks it
//! scavenged. What differs is the *index*: which chunks are worth a look,
//! in what order, and what allocation, free, the page cache and the GC's
//! generations record. Each policy is one file here:
//!
//! - [`go119`]: one bit per chunk, set by frees, worked highest chunk first
//!   (Go 1.19's `scavengeIndex` predecessor, the bitmap of Go 1.19).
//! - [`go127`]: per-chunk in-use counts with generations and a density
//!   rule, and two cursors (Go's scavenge index since 1.21, as in 1.27).
//!
//! The hooks the allocator's hot paths call ([`PageAlloc::index_alloc`]
//! and the others) dispatch on [`ScavengePolicy`] with a `match`, so a
//! policy costs nothing where it has nothing to do. A third policy is a new
//! file, a new variant and one arm per hook.

pub mod go119;
pub mod go127;

use pageheap_arena::Os;

use crate::geometry::Geometry;
use crate::{to_addr, Error, HeapRelease, PageAlloc};

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
        match self.policy {
            ScavengePolicy::Go119 => self.scavenge_go119(bytes),
            ScavengePolicy::Go127 => self.scavenge_go127(bytes, true),
        }
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
        match self.policy {
            ScavengePolicy::Go119 => self.scavenge_go119(bytes),
            ScavengePolicy::Go127 => self.scavenge_go127(bytes, false),
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

    /// Releases the candidate run of chunk `ci` at or below the 64-page
    /// word holding page `search_idx`, at most `max_bytes` (rounded up to
    /// whole physical pages, grown to a whole huge page where the run
    /// covers one). Returns `None`, changing nothing, when the chunk has no
    /// free, unscavenged page there. Go calls this `scavengeOne`.
    pub(crate) fn release_in(
        &mut self,
        ci: usize,
        search_idx: usize,
        max_bytes: usize,
    ) -> Result<Option<usize>, Error> {
        let min = self.scav_min_pages;
        let max_pages = max_bytes.div_ceil(G::PAGE_BYTES);
        let leaf = G::SUMMARY_LEVELS - 1;
        // The leaf summary is a cheap filter: no run of `min` free pages at
        // all means no candidate.
        if self.sum(leaf, ci).max::<G>() < min {
            return Ok(None);
        }
        let c = self.chunks.get(ci);
        let Some((start, n)) =
            c.find_scavenge_candidate(search_idx, min, max_pages, self.scav_huge_pages)
        else {
            return Ok(None);
        };
        let off = (ci << G::LOG_CHUNK_BYTES) + (start << G::PAGE_SHIFT);
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
        self.chunks.get_mut(ci).scav.set_range(start, n);
        self.counters.pages_scavenged += n;
        Ok(Some(len))
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
