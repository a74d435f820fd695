//! The first-fit hints: every way pages become free must lower them, so
//! that an allocation still lands on the lowest fitting run. Each scenario
//! moves the hints up first (allocations past a hole) and then frees pages
//! below them in one of the ways the allocator knows, with the expected
//! placements worked out by hand from the bitmaps.

use super::harness::{build, for_geometries, page, verify, P};
use crate::Geometry;

/// Allocates `n` pages and checks the address, then the invariants
/// (including the hints').
fn alloc_at<G: Geometry>(
    pa: &mut crate::PageAlloc<G, pageheap_arena::sim::SimOs>,
    n: usize,
    want: Option<(usize, usize)>,
) {
    let got = pa.alloc(n).expect("valid request").map(|a| a.base);
    assert_eq!(got, want.map(|(c, p)| page::<G>(c, p)), "alloc({n})");
    verify(pa);
}

/// The offset of page `p` of test chunk `c`, as the first-fit hints hold
/// it (from the geometry's start, not an address).
fn off<G: Geometry>(c: usize, p: usize) -> usize {
    page::<G>(c, p).wrapping_sub(G::ARENA_BASE_OFFSET)
}

/// Holes of 1, 3 and 8 pages at 10, 20 and 40; everything else allocated.
const HOLES: &[(usize, usize)] = &[(0, 10), (11, 9), (23, 17), (48, P - 48)];

fn free_lowers_hints<G: Geometry>() {
    let mut pa = build::<G>(&[(0, HOLES)], &[]);
    // 3 pages: the hole at 20; then 3 pages again: the 8-page hole at 40,
    // which raises the 3-page hint past 43.
    alloc_at(&mut pa, 3, Some((0, 20)));
    alloc_at(&mut pa, 3, Some((0, 40)));
    // Freeing pages 8 and 9 joins them to the hole at 10: a 3-page run at
    // 8, below every hint but the one-page one.
    pa.free(page::<G>(0, 8), 2).unwrap();
    verify(&pa);
    alloc_at(&mut pa, 3, Some((0, 8)));
    // 2 pages: none left below 43 (pages 11.. are allocated).
    alloc_at(&mut pa, 2, Some((0, 43)));
}

fn free_at_chunk_start_joins_the_chunk_below<G: Geometry>() {
    // Chunk 0 ends with 2 free pages, chunk 1 starts allocated, and a 4-page
    // hole sits at page 100 of chunk 1.
    let mut pa = build::<G>(&[(0, &[(0, P - 2)]), (1, &[(0, 100), (104, P - 104)])], &[]);
    alloc_at(&mut pa, 4, Some((1, 100)));
    // Freeing chunk 1's first 2 pages makes a 4-page run from page 510 of
    // chunk 0: the hint must drop below the chunk the free was in.
    pa.free(page::<G>(1, 0), 2).unwrap();
    verify(&pa);
    alloc_at(&mut pa, 4, Some((0, P - 2)));
}

fn flush_lowers_hints<G: Geometry>() {
    // Chunk 0 all free: the cache takes pages 0..64.
    let mut pa = build::<G>(&[(0, &[])], &[]);
    let mut cache = pa.alloc_to_cache();
    // Take pages 0..2 from the cache; the allocator's next 2-page fit is 64.
    for taken in 0..2 {
        let a = cache.alloc(1).expect("cache has pages");
        assert_eq!(a.base, page::<G>(0, taken));
    }
    alloc_at(&mut pa, 2, Some((0, 64)));
    alloc_at(&mut pa, 8, Some((0, 66)));
    // Flushing gives pages 2..64 back: the lowest 8-page run starts at 2.
    pa.flush_cache(&mut cache).unwrap();
    verify(&pa);
    alloc_at(&mut pa, 8, Some((0, 2)));
    alloc_at(&mut pa, 1, Some((0, 10)));
}

fn failure_then_free<G: Geometry>() {
    let mut pa = build::<G>(&[(0, HOLES)], &[]);
    // No 9-page run: that size and every larger one read "none".
    alloc_at(&mut pa, 9, None);
    alloc_at(&mut pa, 20, None);
    // Freeing 48..60 joins the 8-page hole at 40..48: a 20-page run at 40.
    pa.free(page::<G>(0, 48), 12).unwrap();
    verify(&pa);
    alloc_at(&mut pa, 9, Some((0, 40)));
    alloc_at(&mut pa, 11, Some((0, 49)));
    alloc_at(&mut pa, 1, Some((0, 10)));
}

fn hint_beyond_a_gap<G: Geometry>() {
    // Two in-use ranges three chunks apart; the first is full after one
    // allocation, so the hint moves into the gap and the search must pick
    // up in the next range.
    let mut pa = build::<G>(&[(0, &[(0, P - 4)]), (4, &[(0, 7)])], &[]);
    alloc_at(&mut pa, 4, Some((0, P - 4)));
    alloc_at(&mut pa, 4, Some((4, 7)));
    alloc_at(&mut pa, 4, Some((4, 11)));
    // A free in the first range brings the search back.
    pa.free(page::<G>(0, P - 4), 4).unwrap();
    verify(&pa);
    alloc_at(&mut pa, 2, Some((0, P - 4)));
    alloc_at(&mut pa, 4, Some((4, 15)));
    alloc_at(&mut pa, 2, Some((0, P - 2)));
}

fn free_lowers_exactly_the_sizes_that_fit<G: Geometry>() {
    let mut pa = build::<G>(&[(0, HOLES)], &[]);
    alloc_at(&mut pa, 3, Some((0, 20)));
    alloc_at(&mut pa, 3, Some((0, 40)));
    // 4 pages: 43..47; then none is left, which raises the bounds of 4
    // pages and up past the end.
    alloc_at(&mut pa, 4, Some((0, 43)));
    alloc_at(&mut pa, 4, None);
    // Freeing 60..64, between allocated pages: a run of exactly 4 pages.
    // The bounds of sizes 1 to 4 drop to it (unless lower already), and
    // those of 5 pages and up stay: no such run starts there.
    let before = pa.inspect().first_fit_hints();
    pa.free(page::<G>(0, 60), 4).unwrap();
    verify(&pa);
    let after = pa.inspect().first_fit_hints();
    for n in 1..=before.len() {
        let want = if n <= 4 {
            before[n - 1].min(off::<G>(0, 60))
        } else {
            before[n - 1]
        };
        assert_eq!(after[n - 1], want, "bound of {n} pages");
    }
    assert!(
        before[3] > off::<G>(0, 60),
        "the scenario raised the 4-page bound"
    );
    alloc_at(&mut pa, 4, Some((0, 60)));
}

/// A chunk that went full keeps gap-cache entries from before, which no
/// summary may trust: freeing inside it again must summarize from the
/// bitmap (the incremental summaries are checked against a full count in
/// debug builds, and `verify` recounts them).
fn full_chunk_gaps_are_not_trusted<G: Geometry>() {
    let mut pa = build::<G>(&[(0, HOLES)], &[]);
    alloc_at(&mut pa, 1, Some((0, 10)));
    alloc_at(&mut pa, 3, Some((0, 20)));
    alloc_at(&mut pa, 8, Some((0, 40)));
    alloc_at(&mut pa, 1, None);
    pa.free(page::<G>(0, 330), 2).unwrap();
    verify(&pa);
    alloc_at(&mut pa, 3, None);
    alloc_at(&mut pa, 2, Some((0, 330)));
    pa.free(page::<G>(0, 41), 3).unwrap();
    pa.free(page::<G>(0, 100), 5).unwrap();
    verify(&pa);
    alloc_at(&mut pa, 4, Some((0, 100)));
    alloc_at(&mut pa, 3, Some((0, 41)));
}

/// What each allocation leaves behind, exactly: the bounds of its size and
/// up rise to the page after the run, those of smaller sizes stay, and the
/// search address moves to the run's last page when the run started at
/// the first free page (a one-page fit always does). Looser values would
/// place every request the same and only search more, which is why the
/// state itself is checked here.
fn allocations_raise_hints_and_search_exactly<G: Geometry>() {
    // Pages 0 to 9 allocated: a run freed at the chunk's first page could
    // reach into the chunk below, which drops every bound to 0.
    let mut pa = build::<G>(&[(0, &[(0, 10)])], &[]);
    let state = |pa: &crate::PageAlloc<G, pageheap_arena::sim::SimOs>| {
        (pa.inspect().first_fit_hints(), pa.inspect().search_addr())
    };
    // One page, then one more: both at the first free page, so the search
    // address follows, and every bound rises to the page after.
    alloc_at(&mut pa, 1, Some((0, 10)));
    alloc_at(&mut pa, 1, Some((0, 11)));
    let (h, search) = state(&pa);
    assert_eq!(search, page::<G>(0, 11), "search after two one-page fits");
    assert!(
        h.iter().all(|&b| b == off::<G>(0, 12)),
        "bounds after two pages: {h:x?}"
    );
    // Four pages at 12: the search address was page 11, not the first
    // free page, so it stays; the bounds of four pages and up rise to 16,
    // the smaller ones stay at 12.
    alloc_at(&mut pa, 4, Some((0, 12)));
    let (h, search) = state(&pa);
    assert_eq!(search, page::<G>(0, 11));
    assert!(h[..3].iter().all(|&b| b == off::<G>(0, 12)), "{h:x?}");
    assert!(h[3..].iter().all(|&b| b == off::<G>(0, 16)), "{h:x?}");
    // Free pages 10 and 11, a run of exactly two pages: the search address
    // and the bounds of one and two pages drop to page 10, the others stay.
    pa.free(page::<G>(0, 10), 2).unwrap();
    verify(&pa);
    let (h, search) = state(&pa);
    assert_eq!(search, page::<G>(0, 10), "search after the free");
    assert_eq!(
        (h[0], h[1], h[2], h[3]),
        (
            off::<G>(0, 10),
            off::<G>(0, 10),
            off::<G>(0, 12),
            off::<G>(0, 16)
        )
    );
    // Two pages again fill it, starting at the first free page: the search
    // address moves to the run's last page, the two-page bound rises to
    // page 12 (where the three-page one is already), the rest stay.
    alloc_at(&mut pa, 2, Some((0, 10)));
    let (h, search) = state(&pa);
    assert_eq!(
        search,
        page::<G>(0, 11),
        "search after a fit at the first free page"
    );
    assert_eq!(
        (h[0], h[1], h[2]),
        (off::<G>(0, 10), off::<G>(0, 12), off::<G>(0, 12)),
        "{h:x?}"
    );
    assert!(h[3..].iter().all(|&b| b == off::<G>(0, 16)), "{h:x?}");
}

/// A freed run that reaches its chunk's end may go on into the next chunk,
/// so every size's bound drops to the run's first page, exactly; so does a
/// free of pages that need not form one run (a cache flush).
fn runs_reaching_the_chunk_end_lower_every_bound_to_their_start<G: Geometry>() {
    let mut pa = build::<G>(&[(0, &[(0, P)]), (1, &[(0, 10)])], &[]);
    // One page fits first at page 10 of chunk 1: every bound rises past it.
    alloc_at(&mut pa, 1, Some((1, 10)));
    pa.free(page::<G>(0, P - 4), 4).unwrap();
    verify(&pa);
    let h = pa.inspect().first_fit_hints();
    assert!(h.iter().all(|&b| b == off::<G>(0, P - 4)), "{h:x?}");
    alloc_at(&mut pa, 4, Some((0, P - 4)));
}

#[test]
fn runs_reaching_the_chunk_end_test() {
    for_geometries!(runs_reaching_the_chunk_end_lower_every_bound_to_their_start);
}

/// Rounding an offset up into in-use memory (Go's `findMappedAddr`), with
/// the in-use range the last search remembered and without: an offset
/// inside a range stays, one in a gap or just past a range's end moves to
/// the next range's start, one past every range is the maximum.
fn find_mapped_rounds_up_into_in_use_memory<G: Geometry>() {
    let mut pa = build::<G>(&[(0, &[(0, 10)]), (4, &[])], &[]);
    let check = |pa: &crate::PageAlloc<G, pageheap_arena::sim::SimOs>| {
        assert_eq!(pa.find_mapped(off::<G>(0, 5)), off::<G>(0, 5));
        assert_eq!(
            pa.find_mapped(off::<G>(1, 0)),
            off::<G>(4, 0),
            "just past the first range"
        );
        assert_eq!(pa.find_mapped(off::<G>(2, 3)), off::<G>(4, 0), "in the gap");
        assert_eq!(pa.find_mapped(off::<G>(4, P - 1)), off::<G>(4, P - 1));
        assert_eq!(
            pa.find_mapped(off::<G>(5, 0)),
            crate::max_off::<G>(),
            "past the last range"
        );
    };
    check(&pa);
    // This search remembers the first range.
    alloc_at(&mut pa, 1, Some((0, 10)));
    check(&pa);
}

/// A search through the tree (more pages than the hints cover) narrows its
/// first-free window to the lowest free page it passes, and the search
/// address rises to it: here the hole at page 10, which the 20-page
/// request does not fit, so the search address ends there, above the
/// chunk's start where it began.
fn tree_search_raises_the_search_address<G: Geometry>() {
    let mut pa = build::<G>(&[(0, &[(0, 10), (11, 9)])], &[]);
    assert_eq!(
        pa.inspect().search_addr(),
        page::<G>(0, 0),
        "a new heap's search address"
    );
    alloc_at(&mut pa, 20, Some((0, 20)));
    assert_eq!(pa.inspect().search_addr(), page::<G>(0, 10));
}

#[test]
fn tree_search_raises_the_search_address_test() {
    for_geometries!(tree_search_raises_the_search_address);
}

#[test]
fn find_mapped_rounds_up_into_in_use_memory_test() {
    for_geometries!(find_mapped_rounds_up_into_in_use_memory);
}

#[test]
fn allocations_raise_hints_and_search_exactly_test() {
    for_geometries!(allocations_raise_hints_and_search_exactly);
}

/// A chunk filled as the middle of a multi-chunk allocation keeps the gap
/// cache it had while free; once part of it is freed again, a cache taken
/// from it summarizes from that cache, which must not say "free" for the
/// words that stayed allocated (debug builds check every incremental
/// summary against a full count, and `verify` recounts them).
fn middle_chunk_gaps_are_not_trusted<G: Geometry>() {
    let mut pa = build::<G>(&[(0, &[(0, P - 1)]), (1, &[]), (2, &[])], &[]);
    // Summaries of chunk 1 from its gap cache while it is free: a cache
    // block taken from it and handed back (the first cache takes chunk 0's
    // last block, the only free page there).
    let mut c0 = pa.alloc_to_cache();
    let mut c1 = pa.alloc_to_cache();
    assert_eq!(
        (c0.base(), c1.base()),
        (page::<G>(0, P - 64), page::<G>(1, 0))
    );
    pa.flush_cache(&mut c1).unwrap();
    pa.flush_cache(&mut c0).unwrap();
    verify(&pa);
    // From chunk 0's last page through chunk 1 into chunk 2.
    alloc_at(&mut pa, P + 2, Some((0, P - 1)));
    pa.free(page::<G>(1, 5 * 64 + 3), 2).unwrap();
    verify(&pa);
    let c = pa.alloc_to_cache();
    assert_eq!(c.base(), page::<G>(1, 5 * 64));
    verify(&pa);
    alloc_at(&mut pa, 1, Some((2, 1)));
}

/// A flush hands back pages that need not form one run, so every size's
/// bound drops to the start of the free run at the cache block's base,
/// exactly (no further: the bounds below it stay exact).
fn flush_lowers_every_bound_to_the_block_run<G: Geometry>() {
    let mut pa = build::<G>(&[(0, &[(0, 64), (70, 10)])], &[]);
    // The cache takes block 64..128 with pages 64-69 and 80-127 free; the
    // next page goes at 128 and raises every bound past it.
    let mut c = pa.alloc_to_cache();
    assert_eq!(c.base(), page::<G>(0, 64));
    alloc_at(&mut pa, 1, Some((0, 128)));
    let h = pa.inspect().first_fit_hints();
    assert!(h.iter().all(|&b| b == off::<G>(0, 129)), "{h:x?}");
    pa.flush_cache(&mut c).unwrap();
    verify(&pa);
    let h = pa.inspect().first_fit_hints();
    assert!(h.iter().all(|&b| b == off::<G>(0, 64)), "{h:x?}");
    alloc_at(&mut pa, 6, Some((0, 64)));
    alloc_at(&mut pa, 7, Some((0, 80)));
}

/// An allocation over two chunks whose last page is the first page of a
/// chunk at an 8-chunk boundary: the summaries above the leaves must be
/// merged again up to and including that chunk's block (`verify` compares
/// every level with a merge of its children).
fn update_reaches_the_block_of_the_last_page<G: Geometry>() {
    let full: &[(usize, usize)] = &[(0, P)];
    let chunks = [
        (0, full),
        (1, full),
        (2, full),
        (3, full),
        (4, full),
        (5, full),
        (6, full),
        (7, &[(0, P - 4)]),
        (8, &[]),
    ];
    let mut pa = build::<G>(&chunks, &[]);
    alloc_at(&mut pa, 5, Some((7, P - 4)));
    pa.free(page::<G>(7, P - 4), 5).unwrap();
    verify(&pa);
    alloc_at(&mut pa, P + 4, Some((7, P - 4)));
}

#[test]
fn update_reaches_the_block_of_the_last_page_test() {
    for_geometries!(update_reaches_the_block_of_the_last_page);
}

/// A run detached for release and reattached is one run: only the bounds
/// of the sizes that fit in it drop, the others stay where they were.
fn reattach_lowers_only_the_sizes_that_fit<G: Geometry>() {
    let mut pa = build::<G>(&[(0, &[(0, 100), (104, P - 104)])], &[]);
    // No five pages anywhere: the bounds of five pages and up go past the
    // end; one page goes at 100 and raises the smaller ones past it.
    alloc_at(&mut pa, 5, None);
    alloc_at(&mut pa, 1, Some((0, 100)));
    let run = pa
        .detach_for_release(usize::MAX, true)
        .expect("pages 101-103");
    assert_eq!((run.base(), run.n_pages()), (page::<G>(0, 101), 3));
    pa.reattach(run, true).unwrap();
    verify(&pa);
    let h = pa.inspect().first_fit_hints();
    // Sizes up to four were raised to 101 by the one-page fit (the run
    // holds three), five and up stay past the end.
    assert!(h[..4].iter().all(|&b| b == off::<G>(0, 101)), "{h:x?}");
    assert!(h[4..].iter().all(|&b| b == usize::MAX), "{h:x?}");
}

#[test]
fn reattach_lowers_only_the_sizes_that_fit_test() {
    for_geometries!(reattach_lowers_only_the_sizes_that_fit);
}

#[test]
fn flush_lowers_every_bound_to_the_block_run_test() {
    for_geometries!(flush_lowers_every_bound_to_the_block_run);
}

#[test]
fn middle_chunk_gaps_are_not_trusted_test() {
    for_geometries!(middle_chunk_gaps_are_not_trusted);
}

#[test]
fn full_chunk_gaps_are_not_trusted_test() {
    for_geometries!(full_chunk_gaps_are_not_trusted);
}

#[test]
fn free_lowers_exactly_the_sizes_that_fit_test() {
    for_geometries!(free_lowers_exactly_the_sizes_that_fit);
}

#[test]
fn free_lowers_hints_test() {
    for_geometries!(free_lowers_hints);
}

#[test]
fn free_at_chunk_start_test() {
    for_geometries!(free_at_chunk_start_joins_the_chunk_below);
}

#[test]
fn flush_lowers_hints_test() {
    for_geometries!(flush_lowers_hints);
}

#[test]
fn failure_then_free_test() {
    for_geometries!(failure_then_free);
}

#[test]
fn hint_beyond_a_gap_test() {
    for_geometries!(hint_beyond_a_gap);
}
