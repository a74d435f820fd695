//! A whole-heap invariant checker for the facade ([`pageheap::Heap`]), over
//! its read-only [`inspect`](pageheap::Heap::inspect) view.
//!
//! [`check_heap`] runs the page allocator's checker ([`crate::check`]) and
//! then accounts for every allocated page of the heap. A page the page
//! allocator holds allocated must be in exactly one of these places:
//! - a live span (the caller's list: only the program knows its spans);
//! - free in a thread cache (any thread's);
//! - a quarantined span (the OS refused to make it Ready);
//! - the run the background scavenger has out for release.
//!
//! It checks that those places are pairwise disjoint ("no page in two
//! places"), that each of their pages is allocated in the page allocator,
//! and that they add up to its in-use count ("every page accounted for").
//! It also checks the arena table (sorted, disjoint, its total the reserved
//! count), that the page allocator's ranges and the current arena's unused
//! tail lie in arenas without overlapping, the released-byte counters of
//! the caches and the quarantine, and the stats' identities.
//!
//! A cache the heap cannot show (more threads hold caches than it mirrors)
//! makes the page account impossible; that is reported as an error rather
//! than skipped. The view is exact only while no other thread allocates or
//! frees, so checks run at quiet points.

use pageheap::{HeapGeometry, HeapView, PAGE_BYTES};
use pageheap_alloc::Geometry;
use pageheap_arena::Os;

use crate::check::CheckError;

/// A broken whole-heap invariant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeapCheckError {
    /// The page allocator's own invariants.
    #[error("page allocator: {0}")]
    PageAlloc(#[from] CheckError),
    /// The arena table is not sorted and disjoint, or its total is not
    /// the reserved count.
    #[error("arena table {arenas:x?} does not add up to {reserved:#x} reserved bytes")]
    Arenas {
        /// The table.
        arenas: Vec<(usize, usize)>,
        /// The heap's reserved count.
        reserved: usize,
    },
    /// Heap memory lies outside every arena: a page allocator range or the
    /// current arena's unused tail, as `(base, end)`.
    #[error("{what} {range:x?} is not inside the arenas")]
    OutsideArenas {
        /// Which memory.
        what: &'static str,
        /// Its range.
        range: (usize, usize),
    },
    /// The unused tail of the current arena overlaps the page allocator.
    #[error("unused arena tail {0:x?} overlaps the page allocator's ranges")]
    TailInUse((usize, usize)),
    /// The bytes handed to the page allocator disagree with its ranges.
    #[error("heap_sys is {heap_sys:#x}, the page allocator's ranges hold {ranges:#x}")]
    HeapSys {
        /// The heap's count.
        heap_sys: usize,
        /// The ranges' total.
        ranges: usize,
    },
    /// A page of some place is not allocated in the page allocator.
    #[error("page {page:#x} of {place} is free in the page allocator")]
    NotAllocated {
        /// Which place.
        place: String,
        /// The page.
        page: usize,
    },
    /// A page is in two places.
    #[error("page {page:#x} is in {first} and in {second}")]
    TwoPlaces {
        /// The page.
        page: usize,
        /// One place.
        first: String,
        /// The other.
        second: String,
    },
    /// Allocated pages in no place (positive) or more places than
    /// allocated pages (negative): the page account does not balance.
    #[error(
        "{in_use} pages allocated, {placed} accounted for (spans, caches, quarantine, detached)"
    )]
    Unaccounted {
        /// The page allocator's in-use count.
        in_use: usize,
        /// The pages of all places.
        placed: usize,
    },
    /// A cache block is not a 64-page-aligned block, or marks released
    /// pages that it does not hold.
    #[error("cache block {0:x?} is malformed")]
    CacheBlock((usize, u64, u64)),
    /// A released-byte counter disagrees with what it counts.
    #[error("{what}: counted {counted:#x} released bytes, holds {held:#x}")]
    Released {
        /// Which counter.
        what: &'static str,
        /// The counter.
        counted: usize,
        /// Recomputed.
        held: usize,
    },
    /// Thread caches the view cannot show: the account cannot be made.
    #[error("{0} thread caches are not visible to the checker")]
    UnseenCaches(usize),
    /// The stats do not add up.
    #[error("stats do not add up: {0}")]
    Stats(String),
}

/// What [`check_heap`] found, for tests to assert on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeapReport {
    /// Pages allocated in the page allocator.
    pub pages_in_use: usize,
    /// Pages in the caller's live spans.
    pub span_pages: usize,
    /// Free pages in thread caches.
    pub cached_pages: usize,
    /// Thread caches holding pages.
    pub caches: usize,
    /// Pages in quarantined spans.
    pub quarantined_pages: usize,
    /// Pages the background scavenger has out for release.
    pub detached_pages: usize,
}

/// One place's pages: `(base, end, place)`.
type Piece = (usize, usize, String);

/// Checks the whole heap; `live` are the program's live spans as
/// `(base, n_pages)`. See the module docs.
///
/// # Errors
/// The first broken invariant.
pub fn check_heap<O: Os + 'static>(
    v: &HeapView<'_, O>,
    live: &[(usize, usize)],
) -> Result<HeapReport, HeapCheckError> {
    let pa = v.page_alloc();
    crate::check::check(pa)?;
    if v.unseen_caches() != 0 {
        return Err(HeapCheckError::UnseenCaches(v.unseen_caches()));
    }
    check_arenas(v)?;
    let in_use = pa.stats().pages_in_use;
    let mut report = HeapReport {
        pages_in_use: in_use,
        ..HeapReport::default()
    };
    let mut pieces: Vec<Piece> = Vec::new();
    for &(base, n) in live {
        pieces.push((base, base + n * PAGE_BYTES, format!("span {base:#x}+{n}")));
        report.span_pages += n;
    }
    let mut cache_released = 0;
    for (k, b) in v.caches().enumerate() {
        let block = 64 * PAGE_BYTES; // a cache block: one bitmap word
        if b.base % block != 0 || b.scav_mask & !b.free_mask != 0 {
            return Err(HeapCheckError::CacheBlock((
                b.base,
                b.free_mask,
                b.scav_mask,
            )));
        }
        cache_released += b.scav_mask.count_ones() as usize * PAGE_BYTES;
        report.caches += 1;
        report.cached_pages += b.free_mask.count_ones() as usize;
        let mut m = b.free_mask;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            let run = (m >> i).trailing_ones() as usize;
            let base = b.base + i * PAGE_BYTES;
            pieces.push((
                base,
                base + run * PAGE_BYTES,
                format!("thread cache #{k} (block {:#x})", b.base),
            ));
            m &= !(((1u128 << run) - 1) << i) as u64;
        }
    }
    if cache_released != v.cached_released() {
        return Err(HeapCheckError::Released {
            what: "thread caches",
            counted: v.cached_released(),
            held: cache_released,
        });
    }
    let mut q_released = 0;
    for q in v.quarantine() {
        q_released += q.released;
        report.quarantined_pages += q.n_pages;
        pieces.push((
            q.base,
            q.base + q.n_pages * PAGE_BYTES,
            format!("quarantined span {:#x}+{}", q.base, q.n_pages),
        ));
    }
    if q_released != v.quarantined_released() {
        return Err(HeapCheckError::Released {
            what: "the quarantine",
            counted: v.quarantined_released(),
            held: q_released,
        });
    }
    if let Some((base, n)) = pa.detached() {
        report.detached_pages = n;
        pieces.push((
            base,
            base + n * PAGE_BYTES,
            "the scavenger's detached run".into(),
        ));
    }
    // No page in two places.
    pieces.sort_by_key(|p| (p.0, p.1));
    for w in pieces.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(HeapCheckError::TwoPlaces {
                page: w[1].0,
                first: w[0].2.clone(),
                second: w[1].2.clone(),
            });
        }
    }
    // Every page of every place allocated: inside one in-use range, and
    // set in its chunks' bitmaps.
    let ins = pa.inspect();
    let ranges: Vec<_> = ins.in_use().collect();
    for (base, end, place) in &pieces {
        let not_allocated = |page| HeapCheckError::NotAllocated {
            place: place.clone(),
            page,
        };
        if !ranges.iter().any(|r| r.base <= *base && *end <= r.limit) {
            return Err(not_allocated(*base));
        }
        let mut page = *base;
        while page < *end {
            let ci = HeapGeometry::chunk_index(page);
            let i = (page - HeapGeometry::chunk_base(ci)) / PAGE_BYTES;
            let n = ((*end - page) / PAGE_BYTES).min(HeapGeometry::CHUNK_PAGES - i);
            let Some(c) = ins.chunk(ci) else {
                return Err(not_allocated(page));
            };
            if !c.alloc.all_set(i, n) {
                let first = (i..i + n).find(|&j| !c.alloc.get(j)).unwrap_or(i);
                return Err(not_allocated(page + (first - i) * PAGE_BYTES));
            }
            page += n * PAGE_BYTES;
        }
    }
    // Every allocated page in a place: with the two checks above, equal
    // counts mean the places cover the allocated pages exactly.
    let placed =
        report.span_pages + report.cached_pages + report.quarantined_pages + report.detached_pages;
    if placed != in_use {
        return Err(HeapCheckError::Unaccounted { in_use, placed });
    }
    check_stats(v)?;
    Ok(report)
}

/// The arena table, the page allocator's ranges and the unused tail.
fn check_arenas<O: Os + 'static>(v: &HeapView<'_, O>) -> Result<(), HeapCheckError> {
    let arenas = v.arenas();
    let sorted = arenas
        .windows(2)
        .all(|w| w[0].0.checked_add(w[0].1).is_some_and(|e| e <= w[1].0));
    let total: usize = arenas.iter().map(|a| a.1).sum();
    if !sorted || arenas.iter().any(|a| a.1 == 0) || total != v.arena_reserved() {
        return Err(HeapCheckError::Arenas {
            arenas: arenas.to_vec(),
            reserved: v.arena_reserved(),
        });
    }
    // Whether `base..end` lies in the union of the arenas (contiguous
    // arenas join).
    let inside = |base: usize, end: usize| {
        let mut at = base;
        for &(b, l) in arenas {
            if b <= at && at < b + l {
                at = b + l;
                if at >= end {
                    return true;
                }
            }
        }
        false
    };
    let mut ranges = 0;
    let ins = v.page_alloc().inspect();
    let (tb, te) = v.unused_arena();
    for r in ins.in_use() {
        if !inside(r.base, r.limit) {
            return Err(HeapCheckError::OutsideArenas {
                what: "page allocator range",
                range: (r.base, r.limit),
            });
        }
        if tb < te && tb < r.limit && r.base < te {
            return Err(HeapCheckError::TailInUse((tb, te)));
        }
        ranges += r.limit - r.base;
    }
    if tb < te && !inside(tb, te) {
        return Err(HeapCheckError::OutsideArenas {
            what: "unused arena tail",
            range: (tb, te),
        });
    }
    if ranges != v.heap_sys() {
        return Err(HeapCheckError::HeapSys {
            heap_sys: v.heap_sys(),
            ranges,
        });
    }
    Ok(())
}

/// The stats' identities.
fn check_stats<O: Os + 'static>(v: &HeapView<'_, O>) -> Result<(), HeapCheckError> {
    let s = v.stats();
    if s.heap_sys != s.heap_inuse + s.heap_free + s.heap_released {
        return Err(HeapCheckError::Stats(format!(
            "heap_sys {:#x} != inuse {:#x} + free {:#x} + released {:#x}",
            s.heap_sys, s.heap_inuse, s.heap_free, s.heap_released
        )));
    }
    let st = v.page_alloc().stats();
    if st.pages_in_use * PAGE_BYTES > s.heap_sys || st.pages_scavenged * PAGE_BYTES > s.heap_sys {
        return Err(HeapCheckError::Stats(format!(
            "page allocator counts {} pages in use and {} released of {:#x} bytes",
            st.pages_in_use, st.pages_scavenged, s.heap_sys
        )));
    }
    Ok(())
}
