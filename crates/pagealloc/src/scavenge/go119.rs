//! Policy go119: the scavenge index of Go 1.19.
//!
//! Each chunk has one index bit, "may hold free, unscavenged pages", kept in
//! the chunk map. A `free` sets it for every chunk it touches and
//! [`PageAlloc::seed_chunk`] for a chunk with a free, unscavenged page;
//! growing does not (grown memory is scavenged) and neither does flushing a
//! page cache, nor does allocation clear it. A scavenge pass repeatedly
//! takes the highest marked chunk and releases the top of its highest
//! free, unscavenged run, or clears the chunk's bit when it has none.

use pageheap_arena::Os;

use crate::geometry::Geometry;
use crate::PageAlloc;

impl<G: Geometry, O: Os> PageAlloc<G, O> {
    /// The next run a go119 scavenge releases, at most `max_bytes` as
    /// [`PageAlloc::candidate_in`] rounds it: the highest marked chunk's
    /// top candidate; chunks with none lose their mark on the way.
    pub(super) fn next_run_go119(&mut self, max_bytes: usize) -> Option<(usize, usize)> {
        loop {
            let ci = self.chunks.highest_marked(self.start)?;
            match self.candidate_in(ci, G::CHUNK_PAGES - 1, max_bytes) {
                Some(run) => return Some(run),
                None => self.chunks.unmark(ci),
            }
        }
    }

    /// A seeded chunk is marked when it holds a free, unscavenged page.
    pub(super) fn go119_seed(&mut self, ci: usize) {
        let c = self.chunks.get(ci);
        let dirty_free = c
            .alloc
            .0
            .iter()
            .zip(&c.scav.0)
            .any(|(a, s)| a | s != u64::MAX);
        if dirty_free {
            self.chunks.mark(ci);
        }
    }
}
