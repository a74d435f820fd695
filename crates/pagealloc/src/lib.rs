//! A page allocator modelled on the Go 1.19 runtime's: 8 KiB pages grouped
//! into 512-page chunks, one allocation bitmap and one scavenged bitmap per
//! chunk, and a radix tree of packed `(start, max, end)` free-run summaries
//! searched address-ordered first fit.
//!
//! ```toml
//! [dependencies]
//! pageheap-alloc = "0.1"
//! ```
//!
//! # The model
//!
//! A [`PageAlloc`] manages pages of an address space whose shape a
//! [`Geometry`] fixes at compile time. It owns no heap memory itself: the
//! caller [grows](PageAlloc::grow) it by whole chunks of address space it
//! obtained elsewhere, then [allocates](PageAlloc::alloc) and
//! [frees](PageAlloc::free) runs of pages in them. Allocation is first fit
//! by address, across chunk boundaries. Every free page is either
//! *scavenged* (its memory was given back to the OS; grown memory starts so)
//! or not; allocations report how many of their bytes were scavenged, and
//! the [scavenger](PageAlloc::scavenge) releases free, unscavenged pages,
//! highest chunk first. A 64-page [`PageCache`] hands out pages without
//! touching the tree.
//!
//! The allocator's own metadata (the summary tree, the chunk bitmaps, the
//! set of in-use ranges) comes from the [`Os`] it is given, never
//! from the global allocator: the crate is `no_std` without `alloc`, so it
//! can sit under a `#[global_allocator]`. The summary arrays are reserved
//! whole up front and committed only where the heap has grown.
//!
//! The building blocks:
//! * [`geometry`]: the compile-time address-space shape ([`Geometry`] and
//!   the ready-made [`Go64`], [`Go64Amd64`], [`Go32`], [`Pages4K`], [`La57`]);
//! * [`bits`]: a chunk's bitmap ([`PageBits`]) and word-level bit tricks;
//! * [`chunk`]: a chunk's bitmaps ([`ChunkData`]) and the searches over
//!   them (summarize, first fit, scavenge candidates);
//! * [`summary`]: packed summaries ([`Summary`]) and their merge.
//!
//! ```
//! use pageheap_alloc::{ChunkData, Go64, Summary};
//!
//! let mut chunk = ChunkData::default();
//! chunk.alloc_range(0, 10);
//! let f = chunk.alloc.summarize();
//! assert_eq!((f.start, f.max, f.end), (0, 502, 502));
//! assert_eq!(chunk.alloc.find(4, 0), (Some(10), 10));
//! assert_eq!(Summary::pack::<Go64>(f.start, f.max, f.end).max::<Go64>(), 502);
//! ```
//!
//! A whole allocator over the real OS, with synthetic heap addresses (the
//! allocator never touches heap memory unless told to release it):
//!
//! ```
//! use pageheap_alloc::{Config, Go64, HeapRelease, PageAlloc};
//!
//! # fn main() -> Result<(), pageheap_alloc::Error> {
//! let config = Config { heap_release: HeapRelease::Bookkeeping, ..Config::default() };
//! let mut pa = PageAlloc::<Go64, _>::new(pageheap_arena::SystemOs::new(), config)?;
//! let base = 0xc000 << 22; // chunk 0xc000
//! pa.grow(base, 2 << 22)?;
//! let a = pa.alloc(600)?.expect("room for 600 pages");
//! assert_eq!((a.base, a.scavenged), (base, 600 * 8192)); // grown memory is scavenged
//! pa.free(a.base, 600)?;
//! assert!(pa.free(a.base, 1).is_err()); // a double free is an error
//! # Ok(())
//! # }
//! ```
//!
//! # What a geometry costs
//!
//! The summary arrays are reserved whole when the allocator is created and
//! committed only where the heap grows; reserved address space costs no
//! memory and no commit charge, but it must exist (a 32-bit process or a
//! small [`BufferOs`] buffer cannot hold 650
//! MiB of it). Measured by `cargo run --release -p pageheap-alloc --example
//! geometry_table` on x86-64 Linux (committed: metadata the allocator
//! mapped; resident: the growth of the process's RSS, read from the OS; a
//! fixed part, such as the 1 MiB chunk-map block, is spread over the heap
//! grown):
//!
//! | geometry | page | heap bits | reserved up front | heap grown | per GiB contiguous: committed / resident | per GiB with gaps: committed / resident |
//! |---|---|---|---|---|---|---|
//! | [`Go64`] | 8 KiB | 48 | 649.2 MiB | 4 GiB | 343.0 KiB / 51.0 KiB | 345.0 KiB / 88.0 KiB |
//! | [`Go64Amd64`] | 8 KiB | 48 | 649.2 MiB | 4 GiB | 343.0 KiB / 51.0 KiB | 345.0 KiB / 88.0 KiB |
//! | [`Pages4K`] | 4 KiB | 48 | 1234.3 MiB | 4 GiB | 665.0 KiB / 85.0 KiB | 669.0 KiB / 96.0 KiB |
//! | [`La57`] | 8 KiB | 57 | 299648.1 MiB | 4 GiB | 163990.0 KiB / 60.0 KiB | 163992.0 KiB / 96.0 KiB |
//! | [`Go32`] | 8 KiB | 32 | 0.1 MiB | 1 GiB | 172.0 KiB / 92.0 KiB | 176.0 KiB / 132.0 KiB |
//!
//! `La57` commits its whole 64 MiB root level and a 2^23-entry chunk-map
//! level on the first grow (resident only where touched). A geometry of
//! your own (see the `frames` example: 4 KiB frames over 4 GiB in four
//! levels) needs about 300 KiB of metadata in all, small enough for a
//! static buffer.
//!
//! # Crate features
//!
//! None; the crate is `no_std`.
#![no_std]

pub mod bits;
pub mod chunk;
pub mod geometry;
pub mod summary;

mod cache;
mod chunks;
mod error;
mod hints;
mod inspect;
mod inuse;
mod meta;
mod ops;
pub mod scavenge;
mod stats;
mod tree;

// The unit tests use `std` (the simulated OS, formatting).
#[cfg(test)]
extern crate std;
#[cfg(test)]
mod tests;

pub use bits::*;
pub use cache::PageCache;
pub use chunk::*;
pub use error::Error;
pub use geometry::*;
pub use inspect::Inspect;
/// The OS layer, re-exported so that a user of this crate alone can name
/// the `Os` to build an allocator over.
pub use pageheap_arena::{BufferOs, Os, ReleaseMode, SystemOs};
pub use pageheap_ranges::AddrRange;
pub use scavenge::go127::{Cursor, IndexEntry, IndexState};
pub use scavenge::{Detached, ScavengePolicy};
pub use stats::Stats;
pub use summary::*;

use crate::chunks::ChunkMap;
use crate::inuse::InUse;
use crate::meta::MetaBytes;
use crate::stats::Counters;
use crate::tree::Tree;

/// What the scavenger does with the heap pages it releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HeapRelease {
    /// Release them through [`Os::unused`]. Only an `unsafe` promise builds
    /// the [`OsRelease`] this needs: see there.
    Os(OsRelease),
    /// Only mark them scavenged; make no OS call (the default). For heaps
    /// of synthetic addresses, such as trace replays, and for callers that
    /// release memory themselves.
    #[default]
    Bookkeeping,
}

/// Permission for the scavenger to release free heap pages through the
/// allocator's [`Os`] in a given [`ReleaseMode`]: the payload of
/// [`HeapRelease::Os`].
///
/// [`PageAlloc::grow`] is safe and takes any address range, and releasing a
/// page zeroes or discards its contents; so the promise that every grown
/// range is heap memory nobody else relies on is made once, here, by the
/// code that builds the allocator.
///
/// ```compile_fail,E0133
/// use pageheap_alloc::OsRelease;
/// // Building the permission takes an `unsafe` block: this does not compile.
/// let release = OsRelease::new(pageheap_arena::ReleaseMode::DontNeed);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OsRelease {
    mode: ReleaseMode,
}

impl OsRelease {
    /// The permission to release in `mode`.
    ///
    /// # Safety
    ///
    /// Every range grown into an allocator configured with this value is
    /// memory the caller reserved through that allocator's [`Os`] for the
    /// heap: none of it is the allocator's own metadata or anyone else's
    /// memory, and while the allocator holds a page free, nothing reads it
    /// expecting old contents or holds a reference into it.
    #[must_use]
    pub const unsafe fn new(mode: ReleaseMode) -> Self {
        OsRelease { mode }
    }

    /// The release mode.
    #[must_use]
    pub const fn mode(self) -> ReleaseMode {
        self.mode
    }
}

/// Allocator settings. Build one with struct update syntax from
/// [`Config::default`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// How scavenged heap pages are released.
    pub heap_release: HeapRelease,
    /// The scavenge index the allocator keeps (default: go127).
    pub policy: ScavengePolicy,
    /// The physical page size the scavenger works in: runs it releases are
    /// multiples of it and aligned to it. `None` takes [`Os::page_size`].
    pub phys_page_bytes: Option<usize>,
    /// The transparent huge page size; the scavenger releases a free,
    /// unscavenged huge page whole rather than splitting it. `None` takes
    /// [`Os::huge_page_size`]; `Some(0)` means no huge pages.
    pub huge_page_bytes: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            heap_release: HeapRelease::Bookkeeping,
            policy: ScavengePolicy::Go127,
            phys_page_bytes: None,
            huge_page_bytes: None,
        }
    }
}

/// A successful allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Allocation {
    /// The first page's address.
    pub base: usize,
    /// How many of the allocated bytes were scavenged (their memory had been
    /// returned to the OS and must be made ready again before use).
    pub scavenged: usize,
}

/// A page allocator over the address space of geometry `G`, with metadata
/// from `O`. See the [crate documentation](crate).
///
/// All operations take `&mut self`; share it behind a lock.
pub struct PageAlloc<G: Geometry, O: Os> {
    os: O,
    heap_release: HeapRelease,
    policy: ScavengePolicy,
    /// The go127 index's global state (unused under go119).
    g127: scavenge::go127::Index,
    /// The pages [`PageAlloc::pad`] marked allocated and scavenged, as
    /// `(offset, pages)`: the only allocated pages that may be scavenged.
    pad: Option<(usize, usize)>,
    /// The run [`PageAlloc::detach_for_release`] has out, as `(offset,
    /// pages)`.
    detached: Option<(usize, usize)>,
    /// The scavenger's minimum run and alignment, in pages.
    scav_min_pages: usize,
    /// Pages in a huge page, or 0 when the huge-page rule is off.
    scav_huge_pages: usize,
    tree: Tree<G>,
    chunks: ChunkMap<G>,
    in_use: InUse<G>,
    /// The search address, as an offset: every page below it is allocated,
    /// and it lies in use or equals [`max_off`] ("exhausted"). Go calls this
    /// `searchAddr`.
    search: usize,
    /// Per-size lower bounds of the first fit (see [`hints`]).
    hints: hints::Hints,
    /// Leaves whose ancestors are not up to date yet.
    pending: tree::Pending,
    /// Lowest chunk index ever grown (meaningless while `end == 0`).
    start: usize,
    /// One past the highest chunk index ever grown; 0 before the first grow.
    end: usize,
    counters: Counters,
    meta: MetaBytes,
}

impl<G: Geometry, O: Os> PageAlloc<G, O> {
    /// An empty allocator: reserves the summary arrays, the chunk map's
    /// first level and the in-use range storage from `os`, committing only
    /// the latter two (a few pages).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a physical page size that is not a power of two
    /// or is more than 64 pages, or a huge page size that is not a power of
    /// two; [`Error::Os`] if a reservation fails.
    pub fn new(os: O, config: Config) -> Result<Self, Error> {
        let phys = config.phys_page_bytes.unwrap_or_else(|| os.page_size());
        if !phys.is_power_of_two() {
            return Err(Error::Config("physical page size must be a power of two"));
        }
        let scav_min_pages = (phys / G::PAGE_BYTES).max(1);
        if scav_min_pages > 64 {
            return Err(Error::Config("physical page size exceeds 64 pages"));
        }
        let huge = match config.huge_page_bytes {
            Some(h) => h,
            None => os.huge_page_size().unwrap_or(0),
        };
        if huge != 0 && !huge.is_power_of_two() {
            return Err(Error::Config("huge page size must be a power of two"));
        }
        // Huge pages larger than a chunk are ignored, as Go does; the rule
        // only matters when a huge page is larger than both a page and a
        // physical page.
        let scav_huge_pages = if huge <= G::CHUNK_BYTES && huge > G::PAGE_BYTES && huge > phys {
            huge / G::PAGE_BYTES
        } else {
            0
        };

        let mut meta = MetaBytes::default();
        let mut tree = Tree::new(&os, &mut meta)?;
        let mut chunks = match ChunkMap::new(&os, &mut meta) {
            Ok(c) => c,
            Err(e) => {
                // SAFETY:
                // - The tree was made above and is dropped unused.
                unsafe { tree.release(&os, &mut meta) };
                return Err(e);
            }
        };
        let in_use = match InUse::new(&os, &mut meta) {
            Ok(u) => u,
            Err(e) => {
                // SAFETY:
                // - Both were made above and are dropped unused.
                unsafe {
                    tree.release(&os, &mut meta);
                    chunks.release(&os);
                }
                return Err(e);
            }
        };
        Ok(PageAlloc {
            os,
            heap_release: config.heap_release,
            policy: config.policy,
            g127: Default::default(),
            pad: None,
            detached: None,
            scav_min_pages,
            scav_huge_pages,
            tree,
            chunks,
            in_use,
            search: max_off::<G>(),
            hints: Default::default(),
            pending: Default::default(),
            start: 0,
            end: 0,
            counters: Counters::default(),
            meta,
        })
    }

    /// The page size of the allocator's OS. The OS object itself is not
    /// handed out: the allocator's metadata lives in its memory, and a
    /// caller who needs the OS keeps a handle of their own (an `Arc<O>`
    /// implements [`Os`]).
    ///
    /// ```compile_fail,E0599
    /// # fn f(pa: &pageheap_alloc::PageAlloc<pageheap_alloc::Go64, pageheap_arena::SystemOs>) {
    /// let os = pa.os(); // no such method
    /// # }
    /// ```
    pub fn os_page_size(&self) -> usize {
        self.os.page_size()
    }
}

impl<G: Geometry, O: Os> Drop for PageAlloc<G, O> {
    fn drop(&mut self) {
        // SAFETY:
        // - The allocator is going away: no method runs after `drop`, and
        //   no public method ever handed out a reference into its metadata
        //   that could outlive the borrow of `self` it came from.
        unsafe {
            self.in_use.release(&self.os, &mut self.meta);
            self.chunks.release(&self.os);
            self.tree.release(&self.os, &mut self.meta);
        }
    }
}

impl<G: Geometry, O: Os> core::fmt::Debug for PageAlloc<G, O> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PageAlloc")
            .field("search_addr", &to_addr::<G>(self.search))
            .field("start", &self.start)
            .field("end", &self.end)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// The highest offset of `G`'s address space (inclusive): the "exhausted"
/// search address.
#[inline]
pub(crate) fn max_off<G: Geometry>() -> usize {
    usize::MAX >> (usize::BITS - G::HEAP_ADDR_BITS)
}

/// The offset of address `addr` in `G`'s address space.
#[inline]
pub(crate) fn to_off<G: Geometry>(addr: usize) -> usize {
    addr.wrapping_sub(G::ARENA_BASE_OFFSET)
}

/// The address at offset `off`.
#[inline]
pub(crate) fn to_addr<G: Geometry>(off: usize) -> usize {
    off.wrapping_add(G::ARENA_BASE_OFFSET)
}

// The README's example is compiled and run as a doctest (natively: it
// reserves `PROT_NONE` address space from the real OS, which Miri cannot).
#[cfg(all(doctest, not(miri)))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
