//! The scavenger, policy "go119": release free, unscavenged pages to the
//! OS, highest chunk first.
//!
//! Each chunk has an index bit ("may hold free, unscavenged pages"), kept in
//! the chunk map. `free` sets it for every chunk it touches and
//! [`PageAlloc::seed_chunk`] for a chunk with a free, unscavenged page;
//! growing does not (grown memory is scavenged) and neither does flushing a
//! page cache. A scavenge pass repeatedly takes the highest marked chunk and
//! releases the top of its highest free, unscavenged run (see
//! [`ChunkData::find_scavenge_candidate`](crate::ChunkData::find_scavenge_candidate)),
//! or clears the chunk's bit when it has no such run.

use pageheap_arena::Os;

use crate::geometry::Geometry;
use crate::{to_addr, Error, HeapRelease, PageAlloc};

impl<G: Geometry, O: Os> PageAlloc<G, O> {
    /// Releases free, unscavenged pages until at least `bytes` bytes were
    /// released or no marked chunk has any left; returns the bytes
    /// released. It can exceed `bytes`: a free, unscavenged huge page is
    /// released whole, and runs are whole physical pages.
    ///
    /// With [`HeapRelease::Os`] each run is passed to [`Os::unused`]; with
    /// [`HeapRelease::Bookkeeping`] the pages are only marked scavenged.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if releasing a run fails. The runs released before it
    /// stay released (and scavenged); the failed run stays unscavenged.
    pub fn scavenge(&mut self, bytes: usize) -> Result<usize, Error> {
        let mut released = 0;
        while released < bytes {
            let Some(ci) = self.chunks.highest_marked(self.start) else {
                break;
            };
            released += self.scavenge_one(ci, bytes - released)?;
        }
        Ok(released)
    }

    /// Releases the top of chunk `ci`'s highest free, unscavenged run, at
    /// most `max_bytes` (rounded up to whole physical pages, and grown to a
    /// whole huge page where the run covers one). Clears the chunk's index
    /// bit and returns 0 if there is no such run. Go calls this
    /// `scavengeOne`.
    fn scavenge_one(&mut self, ci: usize, max_bytes: usize) -> Result<usize, Error> {
        let min = self.scav_min_pages;
        let max_pages = max_bytes.div_ceil(G::PAGE_BYTES);
        let leaf = G::SUMMARY_LEVELS - 1;
        // The leaf summary is a cheap filter: no run of `min` free pages at
        // all means no candidate.
        if self.sum(leaf, ci).max::<G>() >= min {
            let c = self.chunks.get(ci);
            let found =
                c.find_scavenge_candidate(G::CHUNK_PAGES - 1, min, max_pages, self.scav_huge_pages);
            if let Some((start, n)) = found {
                let off = (ci << G::LOG_CHUNK_BYTES) + (start << G::PAGE_SHIFT);
                let len = n << G::PAGE_SHIFT;
                if let HeapRelease::Os(release) = self.heap_release {
                    // SAFETY:
                    // - The run lies in a grown chunk and every page of it is
                    //   free in the allocation bitmap, so no allocation holds
                    //   it.
                    // - Whoever built `release` promised that grown ranges
                    //   are heap memory from `self.os` and that nothing relies
                    //   on the contents of free pages.
                    unsafe { self.os.unused(to_addr::<G>(off), len, release.mode()) }?;
                }
                // Go marks the run allocated while the OS call runs, so that
                // no other thread takes it, frees it afterwards and lowers
                // the search address to it. Under `&mut self` nobody can
                // take it, the bitmap ends up as it started, and the run is
                // free, so it already lies at or above the search address.
                debug_assert!(off >= self.search, "free run below the search address");
                self.chunks.get_mut(ci).scav.set_range(start, n);
                self.counters.pages_scavenged += n;
                return Ok(len);
            }
        }
        self.chunks.unmark(ci);
        Ok(0)
    }
}
