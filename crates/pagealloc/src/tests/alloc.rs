//! Allocation and free scenarios (reference §12.2: `TestPageAllocAlloc`,
//! `TestPageAllocExhaust`, `TestPageAllocFree`, `TestPageAllocAllocAndFree`).

use std::format;
use std::vec::Vec;

use super::harness::{
    assert_state, base_ci, build, for_geometries, page, verify, Chunks, Ranges, P,
};
use crate::Geometry;

/// `(npages, Some((chunk, page)) or None for a failure, scavenged pages)`.
type Hit = (usize, Option<(usize, usize)>, usize);

/// One `TestPageAllocAlloc` case: chunks before (allocated ranges), their
/// scavenged ranges, then `(npages, Some((chunk, page)) or None for a
/// failure, scavenged pages)` hits, then the allocated ranges after.
struct AllocCase {
    name: &'static str,
    before: Chunks,
    scav: Chunks,
    hits: &'static [Hit],
    after: Chunks,
}

const FULL: &[(usize, usize)] = &[(0, P)];
const NONE: &[(usize, usize)] = &[];

const ALLOC_CASES: &[AllocCase] = &[
    AllocCase {
        name: "AllFree1",
        before: &[(0, NONE)],
        scav: &[(0, &[(0, 1), (2, 2)])],
        hits: &[
            (1, Some((0, 0)), 1),
            (1, Some((0, 1)), 0),
            (1, Some((0, 2)), 1),
            (1, Some((0, 3)), 1),
            (1, Some((0, 4)), 0),
        ],
        after: &[(0, &[(0, 5)])],
    },
    AllocCase {
        name: "ManyArena1",
        before: &[(0, FULL), (1, FULL), (2, &[(0, P - 1)])],
        scav: &[(0, FULL), (1, FULL), (2, FULL)],
        hits: &[(1, Some((2, P - 1)), 1)],
        after: &[(0, FULL), (1, FULL), (2, FULL)],
    },
    AllocCase {
        name: "NotContiguous1",
        before: &[(0, FULL), (0xff, &[(0, 0)])],
        scav: &[(0, FULL), (0xff, FULL)],
        hits: &[(1, Some((0xff, 0)), 1)],
        after: &[(0, FULL), (0xff, &[(0, 1)])],
    },
    AllocCase {
        name: "AllFree2",
        before: &[(0, NONE)],
        scav: &[(0, &[(0, 3), (7, 1)])],
        hits: &[
            (2, Some((0, 0)), 2),
            (2, Some((0, 2)), 1),
            (2, Some((0, 4)), 0),
            (2, Some((0, 6)), 1),
            (2, Some((0, 8)), 0),
        ],
        after: &[(0, &[(0, 10)])],
    },
    AllocCase {
        name: "Straddle2",
        before: &[(0, &[(0, P - 1)]), (1, &[(1, P - 1)])],
        scav: &[(0, &[(P - 1, 1)]), (1, NONE)],
        hits: &[(2, Some((0, P - 1)), 1)],
        after: &[(0, FULL), (1, FULL)],
    },
    AllocCase {
        name: "AllFree5",
        before: &[(0, NONE)],
        scav: &[(0, &[(0, 8), (9, 1), (17, 5)])],
        hits: &[
            (5, Some((0, 0)), 5),
            (5, Some((0, 5)), 4),
            (5, Some((0, 10)), 0),
            (5, Some((0, 15)), 3),
            (5, Some((0, 20)), 2),
        ],
        after: &[(0, &[(0, 25)])],
    },
    AllocCase {
        name: "ExhaustPallocChunkPages-3",
        before: &[(0, NONE)],
        scav: &[(0, &[(10, 1)])],
        hits: &[
            (P - 3, Some((0, 0)), 1),
            (P - 3, None, 0),
            (1, Some((0, P - 3)), 0),
            (2, Some((0, P - 2)), 0),
            (1, None, 0),
            (P - 3, None, 0),
        ],
        after: &[(0, FULL)],
    },
    AllocCase {
        name: "AllFreePallocChunkPages",
        before: &[(0, NONE)],
        scav: &[(0, &[(0, 1), (P - 1, 1)])],
        hits: &[(P, Some((0, 0)), 2), (P, None, 0), (1, None, 0)],
        after: &[(0, FULL)],
    },
    AllocCase {
        name: "StraddlePallocChunkPages+1",
        before: &[(0, &[(0, P / 2)]), (1, NONE)],
        scav: &[(0, FULL), (1, FULL)],
        hits: &[
            (P + 1, Some((0, P / 2)), P + 1),
            (P, None, 0),
            (1, Some((1, P / 2 + 1)), 1),
        ],
        after: &[(0, FULL), (1, &[(0, P / 2 + 2)])],
    },
    AllocCase {
        name: "AllFreePallocChunkPages*2",
        before: &[(0, NONE), (1, NONE)],
        scav: &[],
        hits: &[(2 * P, Some((0, 0)), 0), (2 * P, None, 0), (1, None, 0)],
        after: &[(0, FULL), (1, FULL)],
    },
    AllocCase {
        name: "NotContiguousPallocChunkPages*2",
        before: &[(0, NONE), (0x40, NONE), (0x41, NONE)],
        scav: &[(0, FULL)],
        hits: &[
            (2 * P, Some((0x40, 0)), 0),
            (21, Some((0, 0)), 21),
            (1, Some((0, 21)), 1),
        ],
        after: &[(0, &[(0, 22)]), (0x40, FULL), (0x41, FULL)],
    },
    AllocCase {
        name: "StraddlePallocChunkPages*5/4",
        before: &[
            (0, FULL),
            (1, &[(0, P * 3 / 4)]),
            (2, &[(0, P * 3 / 4)]),
            (3, &[(0, 0)]),
        ],
        scav: &[
            (0, FULL),
            (1, &[(P / 2, P / 4 + 1)]),
            (2, &[(P / 3, 1)]),
            (3, &[(P * 2 / 3, 1)]),
        ],
        hits: &[
            (P * 5 / 4, Some((2, P * 3 / 4)), 1),
            (P * 5 / 4, None, 0),
            (1, Some((1, P * 3 / 4)), 1),
        ],
        after: &[(0, FULL), (1, &[(0, P * 3 / 4 + 1)]), (2, FULL), (3, FULL)],
    },
    AllocCase {
        name: "AllFree64",
        before: &[(0, NONE)],
        scav: &[(0, &[(21, 1), (63, 65)])],
        hits: &[
            (64, Some((0, 0)), 2),
            (64, Some((0, 64)), 64),
            (64, Some((0, 128)), 0),
        ],
        after: &[(0, &[(0, 192)])],
    },
    AllocCase {
        name: "AllFree65",
        before: &[(0, NONE)],
        scav: &[(0, &[(129, 1)])],
        hits: &[
            (65, Some((0, 0)), 0),
            (65, Some((0, 65)), 1),
            (65, Some((0, 130)), 0),
        ],
        after: &[(0, &[(0, 195)])],
    },
    AllocCase {
        name: "StraddlePallocChunkPages",
        before: &[(0, &[(0, P / 2)]), (1, &[(P / 2, P / 2)])],
        scav: &[(0, NONE), (1, &[(3, 100)])],
        hits: &[(P, Some((0, P / 2)), 100), (P, None, 0), (1, None, 0)],
        after: &[(0, FULL), (1, FULL)],
    },
    AllocCase {
        name: "AllFreePallocChunkPages*7+5",
        before: &[
            (0, NONE),
            (1, NONE),
            (2, NONE),
            (3, NONE),
            (4, NONE),
            (5, NONE),
            (6, NONE),
            (7, NONE),
        ],
        scav: &[
            (0, &[(50, 1)]),
            (1, &[(31, 1)]),
            (2, &[(7, 1)]),
            (3, &[(200, 1)]),
            (4, &[(3, 1)]),
            (5, &[(51, 1)]),
            (6, &[(20, 1)]),
            (7, &[(1, 1)]),
        ],
        hits: &[
            (7 * P + 5, Some((0, 0)), 8),
            (7 * P + 5, None, 0),
            (1, Some((7, 5)), 0),
        ],
        after: &[
            (0, FULL),
            (1, FULL),
            (2, FULL),
            (3, FULL),
            (4, FULL),
            (5, FULL),
            (6, FULL),
            (7, &[(0, 6)]),
        ],
    },
    AllocCase {
        name: "StraddlePallocChunkPages*2",
        before: &[(0, &[(0, P / 2)]), (1, NONE), (2, &[(P / 2, P / 2)])],
        scav: &[
            (0, &[(0, 7)]),
            (1, &[(3, 5), (121, 10)]),
            (2, &[(P / 2 + 12, 2)]),
        ],
        hits: &[
            (2 * P, Some((0, P / 2)), 15),
            (2 * P, None, 0),
            (1, None, 0),
        ],
        after: &[(0, FULL), (1, FULL), (2, FULL)],
    },
];

/// The cases that need a 48-bit heap: chunks 0x100000 apart, with A's leaf
/// summary the last on its OS page (`DiscontiguousMappedSumBoundary`), and
/// a search-address candidate that would point into unmapped summaries
/// without the round-up into in-use memory (`DiscontiguousBadSearchAddr`).
#[cfg(not(miri))]
const ALLOC_CASES_64: &[AllocCase] = &[
    AllocCase {
        name: "DiscontiguousMappedSumBoundary",
        // 4096-byte OS pages hold 512 leaf summaries, and the base chunk
        // 0xc000 is a multiple of 512, so chunk 511 is the last on its page.
        before: &[(511, NONE), (0x100000, NONE)],
        scav: &[],
        hits: &[
            (P - 1, Some((511, 0)), 0),
            (1, Some((511, P - 1)), 0),
            (1, Some((0x100000, 0)), 0),
            (P - 1, Some((0x100000, 1)), 0),
            (1, None, 0),
        ],
        after: &[(511, FULL), (0x100000, FULL)],
    },
    AllocCase {
        name: "DiscontiguousBadSearchAddr",
        before: &[
            (0, &[(0, P - 1)]),
            (0x100503, &[(0, P - 10), (P - 1, 1)]),
            (0x200000, NONE),
        ],
        scav: &[],
        hits: &[
            (1, Some((0, P - 1)), 0),
            (100, Some((0x200000, 0)), 0),
            (9, Some((0x100503, P - 10)), 0),
        ],
        after: &[(0, FULL), (0x100503, FULL), (0x200000, &[(0, 100)])],
    },
];

/// Builds the case, checks every hit, then the final bitmaps and the
/// invariants.
fn check_alloc<G: Geometry>(case: &AllocCase) {
    let mut pa = build::<G>(case.before, case.scav);
    for (k, &(npages, want, scav)) in case.hits.iter().enumerate() {
        let got = pa.alloc(npages).expect("valid request");
        let got = got.map(|a| (a.base, a.scavenged));
        let want = want.map(|(c, p)| (page::<G>(c, p), scav * G::PAGE_BYTES));
        assert_eq!(got, want, "{}: hit {k} ({npages} pages)", case.name);
        verify(&pa);
    }
    assert_state(&pa, case.after, case.scav, case.name);
}

#[test]
fn alloc_cases() {
    fn run<G: Geometry>() {
        for case in ALLOC_CASES {
            check_alloc::<G>(case);
        }
    }
    for_geometries!(run);
}

#[cfg(not(miri))]
#[test]
fn alloc_cases_discontiguous_64() {
    for case in ALLOC_CASES_64 {
        check_alloc::<crate::Go64>(case);
    }
}

/// `TestPageAllocExhaust`: four empty chunks fill up with `npages`
/// allocations packed from the start, then the next one fails.
#[test]
fn alloc_exhaust() {
    fn run<G: Geometry>() {
        for npages in [1, 2, 3, 4, 5, 8, 16, 64, 1024, 1025, 2048, 2049] {
            let mut pa = build::<G>(&[(0, &[]), (1, &[]), (2, &[]), (3, &[])], &[]);
            let n_alloc = 4 * P / npages;
            for i in 0..n_alloc {
                let a = pa.alloc(npages).unwrap().expect("room left");
                assert_eq!(
                    a.base,
                    page::<G>(0, i * npages),
                    "npages {npages} alloc {i}"
                );
            }
            assert_eq!(
                pa.alloc(npages).unwrap(),
                None,
                "npages {npages}: exhausted"
            );
            verify(&pa);
            let used = n_alloc * npages;
            for c in 0..4 {
                let want = used.saturating_sub(c * P).min(P);
                let got = pa.chunk(page::<G>(c, 0)).unwrap().alloc.count_ones();
                assert_eq!(got, want, "npages {npages}: chunk {c}");
                assert_eq!(
                    pa.chunk(page::<G>(c, 0))
                        .unwrap()
                        .alloc
                        .popcnt_range(0, want),
                    want
                );
            }
        }
    }
    for_geometries!(run);
}

/// One `TestPageAllocFree` case.
struct FreeCase {
    name: &'static str,
    npages: usize,
    before: Chunks,
    frees: &'static [(usize, usize)],
    after: Chunks,
}

const FREE_CASES: &[FreeCase] = &[
    FreeCase {
        name: "Free1",
        npages: 1,
        before: &[(0, FULL)],
        frees: &[(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)],
        after: &[(0, &[(5, P - 5)])],
    },
    FreeCase {
        name: "ManyArena1",
        npages: 1,
        before: &[(0, FULL), (1, FULL), (2, FULL)],
        frees: &[(0, P / 2), (1, 0), (2, P - 1)],
        after: &[
            (0, &[(0, P / 2), (P / 2 + 1, P / 2 - 1)]),
            (1, &[(1, P - 1)]),
            (2, &[(0, P - 1)]),
        ],
    },
    FreeCase {
        name: "Free2",
        npages: 2,
        before: &[(0, FULL)],
        frees: &[(0, 0), (0, 2), (0, 4), (0, 6), (0, 8)],
        after: &[(0, &[(10, P - 10)])],
    },
    FreeCase {
        name: "Straddle2",
        npages: 2,
        before: &[(0, &[(P - 1, 1)]), (1, &[(0, 1)])],
        frees: &[(0, P - 1)],
        after: &[(0, NONE), (1, NONE)],
    },
    FreeCase {
        name: "Free5",
        npages: 5,
        before: &[(0, FULL)],
        frees: &[(0, 0), (0, 5), (0, 10), (0, 15), (0, 20)],
        after: &[(0, &[(25, P - 25)])],
    },
    FreeCase {
        name: "FreePallocChunkPages",
        npages: P,
        before: &[(0, FULL)],
        frees: &[(0, 0)],
        after: &[(0, NONE)],
    },
    FreeCase {
        name: "StraddlePallocChunkPages",
        npages: P,
        before: &[(0, &[(P / 2, P / 2)]), (1, &[(0, P / 2)])],
        frees: &[(0, P / 2)],
        after: &[(0, NONE), (1, NONE)],
    },
    FreeCase {
        name: "StraddlePallocChunkPages+1",
        npages: P + 1,
        before: &[(0, FULL), (1, FULL)],
        frees: &[(0, P / 2)],
        after: &[(0, &[(0, P / 2)]), (1, &[(P / 2 + 1, P / 2 - 1)])],
    },
    FreeCase {
        name: "FreePallocChunkPages*2",
        npages: 2 * P,
        before: &[(0, FULL), (1, FULL)],
        frees: &[(0, 0)],
        after: &[(0, NONE), (1, NONE)],
    },
    FreeCase {
        name: "StraddlePallocChunkPages*2",
        npages: 2 * P,
        before: &[(0, FULL), (1, FULL), (2, FULL)],
        frees: &[(0, P / 2)],
        after: &[(0, &[(0, P / 2)]), (1, NONE), (2, &[(P / 2, P / 2)])],
    },
    FreeCase {
        name: "AllFreePallocChunkPages*7+5",
        npages: 7 * P + 5,
        before: &[
            (0, FULL),
            (1, FULL),
            (2, FULL),
            (3, FULL),
            (4, FULL),
            (5, FULL),
            (6, FULL),
            (7, FULL),
        ],
        frees: &[(0, 0)],
        after: &[
            (0, NONE),
            (1, NONE),
            (2, NONE),
            (3, NONE),
            (4, NONE),
            (5, NONE),
            (6, NONE),
            (7, &[(5, P - 5)]),
        ],
    },
    FreeCase {
        name: "Free64",
        npages: 64,
        before: &[(0, FULL)],
        frees: &[(0, 0), (0, 64), (0, 128)],
        after: &[(0, &[(192, P - 192)])],
    },
    FreeCase {
        name: "Free65",
        npages: 65,
        before: &[(0, FULL)],
        frees: &[(0, 0), (0, 65), (0, 130)],
        after: &[(0, &[(195, P - 195)])],
    },
];

/// Builds the case with no scavenged bits, frees, compares.
fn check_free<G: Geometry>(case: &FreeCase) {
    let mut pa = build::<G>(case.before, &[]);
    for &(c, p) in case.frees {
        pa.free(page::<G>(c, p), case.npages)
            .expect("free of allocated pages");
        verify(&pa);
        // Every chunk the free touched is marked for the scavenger.
        let first = base_ci::<G>() + c;
        let last = G::chunk_index(page::<G>(c, p) + case.npages * G::PAGE_BYTES - 1);
        for ci in first..=last {
            assert!(
                pa.inspect().scav_marked(ci),
                "{}: chunk {ci:#x} not marked",
                case.name
            );
        }
    }
    assert_state(&pa, case.after, &[], case.name);
}

#[test]
fn free_cases() {
    fn run<G: Geometry>() {
        for case in FREE_CASES {
            check_free::<G>(case);
        }
    }
    for_geometries!(run);
}

/// `TestPageAllocAllocAndFree/Chunks8`: whole-heap alloc/free cycles must
/// restore the search address and the summaries every time.
#[test]
fn alloc_and_free_whole_heap() {
    fn run<G: Geometry>() {
        let chunks: Vec<(usize, Ranges)> = (0..8).map(|c| (c, NONE)).collect();
        let mut pa = build::<G>(&chunks, &[]);
        let ops: &[(bool, usize)] = &[
            (true, 8 * P),
            (false, 8 * P),
            (true, 8 * P),
            (false, 8 * P),
            (true, 8 * P),
        ];
        let ops = ops
            .iter()
            .chain(&[(false, 8 * P), (true, 1), (false, 1), (true, 8 * P)]);
        for (k, &(alloc, n)) in ops.enumerate() {
            if alloc {
                let a = pa
                    .alloc(n)
                    .unwrap()
                    .unwrap_or_else(|| panic!("op {k}: no room"));
                assert_eq!(a.base, page::<G>(0, 0), "op {k}");
            } else {
                pa.free(page::<G>(0, 0), n).unwrap();
            }
            verify(&pa);
        }
        let _ = format!("{pa:?}");
    }
    for_geometries!(run);
}
