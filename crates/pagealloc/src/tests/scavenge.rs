//! The scavenger, policy go119 (reference §12.5 `TestPageAllocScavenge`,
//! plus the huge-page rule and the index-bit rules of the trace format).

use super::harness::{assert_state, build, empty, for_geometries, page, verify, Chunks, P};
use crate::{Geometry, PageAlloc};
use pageheap_arena::sim::SimOs;

/// The scavenger's minimum run in pages: 4 KiB physical pages under 8 KiB
/// pages.
const M: usize = 1;

/// `(name, alloc, scav before, requests (bytes in pages or `None` for
/// "everything", expected pages released), scav after)`.
type ScavCase = (
    &'static str,
    Chunks,
    Chunks,
    &'static [(Option<usize>, usize)],
    Chunks,
);

const FULL: &[(usize, usize)] = &[(0, P)];

const SCAV_CASES: &[ScavCase] = &[
    (
        "AllFreeUnscavExhaust",
        &[(0, &[]), (1, &[]), (2, &[])],
        &[],
        &[(None, 3 * P)],
        &[(0, FULL), (1, FULL), (2, FULL)],
    ),
    (
        "NoneFreeUnscavExhaust",
        &[(0, FULL), (1, &[]), (2, FULL)],
        &[(1, FULL)],
        &[(None, 0)],
        &[(1, FULL)],
    ),
    // A request of one byte releases one whole (minimum) run.
    (
        "ScavHighestPageFirst",
        &[(0, &[])],
        &[(0, &[(M, P - 2 * M)])],
        &[(Some(0), M)],
        &[(0, &[(M, P - M)])],
    ),
    (
        "ScavMultiple",
        &[(0, &[])],
        &[(0, &[(M, P - 2 * M)])],
        &[(Some(M), M), (Some(M), M)],
        &[(0, FULL)],
    ),
    (
        "ScavMultiple2",
        &[(0, &[]), (1, &[])],
        &[(0, &[(M, P - 2 * M)]), (1, &[(0, P - 2 * M)])],
        &[(Some(2 * M), 2 * M), (Some(M), M), (Some(M), M)],
        &[(0, FULL), (1, FULL)],
    ),
    (
        "ScavDiscontiguous",
        &[(0, &[]), (0xe, &[])],
        &[(0, &[(M, P - 2 * M)]), (0xe, &[(2 * M, P - 2 * M)])],
        &[(Some(2 * M), 2 * M), (None, 2 * M), (None, 0)],
        &[(0, FULL), (0xe, FULL)],
    ),
];

#[cfg(not(miri))]
const SCAV_CASES_64: &[ScavCase] = &[(
    "ScavAllVeryDiscontiguous",
    &[(0, &[]), (0x1000, &[])],
    &[],
    &[(None, 2 * P), (None, 0)],
    &[(0, FULL), (0x1000, FULL)],
)];

/// Bytes for a request of `pages` pages; 0 pages means one byte, `None`
/// everything.
fn request<G: Geometry>(pages: Option<usize>) -> usize {
    match pages {
        None => usize::MAX,
        Some(0) => 1,
        Some(n) => n * G::PAGE_BYTES,
    }
}

fn check_scavenge<G: Geometry>(&(name, alloc, scav, reqs, after): &ScavCase) {
    let mut pa = build::<G>(alloc, scav);
    for (k, &(req, want)) in reqs.iter().enumerate() {
        let got = pa.scavenge(request::<G>(req)).expect("scavenge");
        assert_eq!(got, want * G::PAGE_BYTES, "{name}: request {k}");
        verify(&pa);
    }
    assert_state(&pa, alloc, after, name);
}

#[test]
fn scavenge_cases() {
    fn run<G: Geometry>() {
        for case in SCAV_CASES {
            check_scavenge::<G>(case);
        }
    }
    for_geometries!(run);
}

#[cfg(not(miri))]
#[test]
fn scavenge_cases_64() {
    for case in SCAV_CASES_64 {
        check_scavenge::<crate::Go64>(case);
    }
}

/// A chunk's scavenged and allocated pages as words, for comparisons.
fn bits<G: Geometry>(pa: &PageAlloc<G, SimOs>, c: usize) -> ([u64; 8], [u64; 8]) {
    let ch = pa.chunk(page::<G>(c, 0)).unwrap();
    (ch.alloc.0, ch.scav.0)
}

/// The huge-page rule: with 2 MiB huge pages (256 pages) a one-byte
/// request against a wholly free, dirty chunk releases the top huge page
/// whole; a run that does not cover the huge page below its start is cut
/// to the request.
#[test]
fn scavenge_huge_pages() {
    fn run<G: Geometry>() {
        let mut pa = empty::<G>();
        pa.grow(page::<G>(0, 0), G::CHUNK_BYTES).unwrap();
        let a = pa.alloc(P).unwrap().unwrap();
        pa.free(a.base, P).unwrap();
        assert_eq!(pa.scavenge(1).unwrap(), 256 * G::PAGE_BYTES);
        assert_eq!(bits(&pa, 0).1, [0, 0, 0, 0, !0, !0, !0, !0]);
        verify(&pa);
        // The rest: pages [0, 256) as one run; a one-page request reaches
        // the boundary at 256 and the run covers the huge page below.
        assert_eq!(pa.scavenge(1).unwrap(), 256 * G::PAGE_BYTES);
        assert_eq!(pa.stats().pages_scavenged, P);
        // Nothing left: the chunk loses its index bit.
        assert_eq!(pa.scavenge(usize::MAX).unwrap(), 0);
        assert!(!pa.inspect().scav_marked(G::chunk_index(a.base)));

        // A dirty run [200, 300) crossing the boundary at 256: the top one
        // page is [299, 300), which does not reach a boundary: no growth.
        let mut pa = build::<G>(&[(0, &[(0, 200), (300, P - 300)])], &[]);
        assert_eq!(pa.scavenge(1).unwrap(), G::PAGE_BYTES);
        // Request 50 pages: [249, 299) reaches 256 but the run [200, 299)
        // does not cover [0, 256): no growth either.
        assert_eq!(pa.scavenge(50 * G::PAGE_BYTES).unwrap(), 50 * G::PAGE_BYTES);
        verify(&pa);
        let mut want = super::harness::expected_chunk(&[], &[(249, 51)]).scav.0;
        want[0] = 0;
        assert_eq!(bits(&pa, 0).1, want);
    }
    for_geometries!(run);
}

/// The index bit: `free` sets it, flushing a cache does not, and a chunk
/// with nothing to release loses it.
#[test]
fn scavenge_index_bits() {
    fn run<G: Geometry>() {
        // Page 1 free and dirty: the chunk is marked at setup.
        let mut pa = build::<G>(&[(0, &[(0, 1), (2, P - 2)])], &[]);
        let ci = G::chunk_index(page::<G>(0, 0));
        assert!(pa.inspect().scav_marked(ci));
        // Cache the dirty page; the chunk then has nothing to release.
        let mut c = pa.alloc_to_cache();
        assert_eq!((c.free_mask(), c.scav_mask()), (0b10, 0));
        assert_eq!(pa.scavenge(usize::MAX).unwrap(), 0);
        assert!(!pa.inspect().scav_marked(ci));
        // The flush frees the dirty page but does not mark the chunk.
        pa.flush_cache(&mut c).unwrap();
        assert!(!pa.inspect().scav_marked(ci));
        assert_eq!(pa.scavenge(usize::MAX).unwrap(), 0);
        verify(&pa);
        // A free marks it: pages 0 and 1 go as one run.
        pa.free(page::<G>(0, 0), 1).unwrap();
        assert!(pa.inspect().scav_marked(ci));
        assert_eq!(pa.scavenge(usize::MAX).unwrap(), 2 * G::PAGE_BYTES);
        assert_eq!(bits(&pa, 0).1[0], 0b11);
        verify(&pa);
        // Scavenged pages come back scavenged, and are allocated first fit.
        let a = pa.alloc(2).unwrap().unwrap();
        assert_eq!((a.base, a.scavenged), (page::<G>(0, 0), 2 * G::PAGE_BYTES));
    }
    for_geometries!(run);
}

/// Highest chunk first across chunks, and the request size in bytes
/// rounds up to whole pages.
#[test]
fn scavenge_highest_chunk_first() {
    fn run<G: Geometry>() {
        let mut pa = build::<G>(
            &[(0, &[]), (3, &[])],
            &[(0, &[(0, P - 4)]), (3, &[(0, P - 4)])],
        );
        // 1.5 pages round up to 2, from chunk 3's top.
        assert_eq!(
            pa.scavenge(G::PAGE_BYTES * 3 / 2).unwrap(),
            2 * G::PAGE_BYTES
        );
        let (_, s3) = bits(&pa, 3);
        assert_eq!(s3[7] >> 60, 0b1100);
        let (_, s0) = bits(&pa, 0);
        assert_eq!(s0[7] >> 60, 0);
        // The rest of chunk 3, then chunk 0.
        assert_eq!(pa.scavenge(3 * G::PAGE_BYTES).unwrap(), 3 * G::PAGE_BYTES);
        assert_eq!(bits(&pa, 0).1[7] >> 60, 0b1000);
        verify(&pa);
    }
    for_geometries!(run);
}
