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
    /// The chunk a go119 scavenge looks at next and the page it searches
    /// from: the highest marked chunk, from its top.
    pub(super) fn next_look_go119(&mut self) -> Option<(usize, usize)> {
        let ci = self.chunks.highest_marked(self.start)?;
        Some((ci, G::CHUNK_PAGES - 1))
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
