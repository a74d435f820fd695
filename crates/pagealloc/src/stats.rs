//! Page and metadata counts: what [`PageAlloc::stats`] reports.
//!
//! The page counters are kept up to date by every operation (a handful of
//! additions each), so a snapshot costs nothing to take.

use pageheap_arena::Os;

use crate::geometry::Geometry;
use crate::PageAlloc;

/// Running page counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Pages grown.
    pub pages_total: usize,
    /// Pages allocated, including pages held by page caches.
    pub pages_in_use: usize,
    /// Free pages marked scavenged.
    pub pages_scavenged: usize,
}

/// A snapshot of the allocator's page and metadata counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Stats {
    /// Pages in the heap (every page grown).
    pub pages_total: usize,
    /// Allocated pages, including those handed to page caches.
    pub pages_in_use: usize,
    /// Free pages (`pages_total - pages_in_use`).
    pub pages_free: usize,
    /// Free pages whose memory was returned to the OS (a subset of the free
    /// pages).
    pub pages_scavenged: usize,
    /// Address space reserved for metadata, in bytes.
    pub metadata_reserved_bytes: usize,
    /// Metadata memory committed (readable and writable), in bytes.
    pub metadata_mapped_bytes: usize,
}

/// One line: `pages: T total, U in use, F free (S scavenged); metadata: M
/// KiB committed of R KiB reserved`.
impl core::fmt::Display for Stats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "pages: {} total, {} in use, {} free ({} scavenged); metadata: {} KiB committed of {} KiB reserved",
            self.pages_total,
            self.pages_in_use,
            self.pages_free,
            self.pages_scavenged,
            self.metadata_mapped_bytes >> 10,
            self.metadata_reserved_bytes >> 10,
        )
    }
}

impl<G: Geometry, O: Os> PageAlloc<G, O> {
    /// Page and metadata counts.
    pub fn stats(&self) -> Stats {
        let c = self.counters;
        Stats {
            pages_total: c.pages_total,
            pages_in_use: c.pages_in_use,
            pages_free: c.pages_total - c.pages_in_use,
            pages_scavenged: c.pages_scavenged,
            metadata_reserved_bytes: self.meta.reserved,
            metadata_mapped_bytes: self.meta.mapped,
        }
    }
}
