//! Growing the heap (reference §12.2 `TestPageAllocGrow`): in-use ranges
//! coalesce whatever the grow order, and summary memory is committed
//! exactly where the in-use ranges need it (checked by `verify`).

use std::vec::Vec;

use super::harness::{empty, for_geometries, page, verify};
use crate::{Geometry, Summary};

/// `(name, chunks grown, expected in-use ranges as chunk pairs [a, z))`.
type GrowCase = (&'static str, &'static [usize], &'static [(usize, usize)]);

const GROW_CASES: &[GrowCase] = &[
    ("One", &[0], &[(0, 1)]),
    ("Contiguous2", &[0, 1], &[(0, 2)]),
    ("Contiguous5", &[0, 1, 2, 3, 4], &[(0, 5)]),
    ("Discontiguous", &[0, 2, 4], &[(0, 1), (2, 3), (4, 5)]),
    ("Mixed", &[0, 1, 2, 4], &[(0, 3), (4, 5)]),
    (
        "WildlyDiscontiguous",
        &[0, 1, 0x10, 0x21],
        &[(0, 2), (0x10, 0x11), (0x21, 0x22)],
    ),
];

/// Grows the chunks one at a time in the given order, verifying after each
/// grow, then compares the in-use ranges.
fn check_grow<G: Geometry>(name: &str, chunks: &[usize], want: &[(usize, usize)]) {
    let mut pa = empty::<G>();
    for &c in chunks {
        pa.grow(page::<G>(c, 0), G::CHUNK_BYTES).expect("grow");
        verify(&pa);
        // Grown memory is free and scavenged.
        let ch = pa.chunk(page::<G>(c, 0)).unwrap();
        assert_eq!(
            (ch.alloc.count_ones(), ch.scav.count_ones()),
            (0, 512),
            "{name}"
        );
    }
    let got: Vec<(usize, usize)> = pa.in_use().map(|r| (r.base, r.limit)).collect();
    let want: Vec<(usize, usize)> = want
        .iter()
        .map(|&(a, z)| (page::<G>(a, 0), page::<G>(z, 0)))
        .collect();
    assert_eq!(got, want, "{name}");
    let idx = G::chunk_index(page::<G>(chunks[0], 0)) >> (G::level_shift(0) - G::LOG_CHUNK_BYTES);
    let root = pa.inspect().summary(0, idx).expect("root mapped");
    assert_ne!(root, Summary::FULL, "{name}: the root sees free pages");
}

#[test]
fn grow_cases() {
    fn run<G: Geometry>() {
        for &(name, chunks, want) in GROW_CASES {
            check_grow::<G>(name, chunks, want);
            let rev: Vec<usize> = chunks.iter().rev().copied().collect();
            check_grow::<G>(name, &rev, want);
        }
        // ManyDiscontiguous: 33 separate ranges, inserted in an interleaved
        // order.
        let chunks: Vec<usize> = (0..=32).map(|k| 2 * ((k * 7) % 33)).collect();
        let want: Vec<(usize, usize)> = (0..=32).map(|k| (2 * k, 2 * k + 1)).collect();
        check_grow::<G>("ManyDiscontiguous", &chunks, &want);
    }
    for_geometries!(run);
}

/// Chunks a terabyte apart, in a 48-bit heap.
#[cfg(not(miri))]
#[test]
fn grow_extremely_discontiguous() {
    check_grow::<crate::Go64>(
        "ExtremelyDiscontiguous",
        &[0, 0x100000],
        &[(0, 1), (0x100000, 0x100001)],
    );
    check_grow::<crate::Go64>(
        "ExtremelyDiscontiguous",
        &[0x100000, 0],
        &[(0, 1), (0x100000, 0x100001)],
    );
}

/// A multi-chunk grow filling the gap between two ranges coalesces all
/// three and commits only the summary pages in between.
#[test]
fn grow_fills_gap() {
    fn run<G: Geometry>() {
        let mut pa = empty::<G>();
        pa.grow(page::<G>(0, 0), G::CHUNK_BYTES).unwrap();
        pa.grow(page::<G>(600, 0), 2 * G::CHUNK_BYTES).unwrap();
        verify(&pa);
        pa.grow(page::<G>(1, 0), 599 * G::CHUNK_BYTES).unwrap();
        verify(&pa);
        let got: Vec<(usize, usize)> = pa.in_use().map(|r| (r.base, r.limit)).collect();
        assert_eq!(got, [(page::<G>(0, 0), page::<G>(602, 0))]);
        // The whole new range is one free run, found first fit.
        let a = pa
            .alloc(602 * 512)
            .unwrap()
            .expect("the whole heap is free");
        assert_eq!(a.base, page::<G>(0, 0));
        verify(&pa);
    }
    for_geometries!(run);
}

/// The inspector's O(log n) "is this summary committed" agrees with the
/// definition (some in-use range's committed bytes hold it) at every
/// summary index of every level, after every grow of every case.
#[test]
fn summary_mapped_matches_its_definition() {
    fn case<G: Geometry>() {
        for &(name, chunks, _) in GROW_CASES {
            let mut pa = empty::<G>();
            for &c in chunks {
                pa.grow(page::<G>(c, 0), G::CHUNK_BYTES).expect("grow");
                let view = pa.inspect();
                for l in 0..G::SUMMARY_LEVELS {
                    let len = view.level_len(l);
                    // Every index for short levels; for long ones every
                    // index near the grown chunks and a stride elsewhere.
                    let step = (len / 20_000).max(1);
                    let near = |i: usize| {
                        let shift = G::level_shift(l);
                        chunks.iter().any(|&c| {
                            let si = page::<G>(c, 0).wrapping_sub(G::ARENA_BASE_OFFSET) >> shift;
                            i.abs_diff(si) < 2048
                        })
                    };
                    for i in (0..len).filter(|&i| i % step == 0 || near(i)) {
                        assert_eq!(
                            view.summary_mapped(l, i),
                            view.summary_mapped_slow(l, i),
                            "{name}: level {l} index {i}"
                        );
                    }
                }
            }
        }
    }
    for_geometries!(case);
}
