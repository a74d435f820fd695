//! Unit tests for `crate::chunk`: the reference's summarize, find, alloc,
//! free and scavenge-candidate tables, and property tests comparing the
//! word-level searches with naive per-page loops on random bitmaps.

extern crate std;

use proptest::prelude::*;
use std::vec::Vec;

use super::*;

const P: usize = CHUNK_PAGES;
const MS: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

/// A bitmap with the ranges `(i, n)` set.
fn bits_with(ranges: &[(usize, usize)]) -> PageBits {
    let mut b = PageBits::default();
    for &(i, n) in ranges {
        for p in i..i + n {
            b.0[p / 64] |= 1 << (p % 64);
        }
    }
    b
}

/// A bitmap with only the ranges `(i, n)` clear.
fn bits_without(ranges: &[(usize, usize)]) -> PageBits {
    PageBits(bits_with(ranges).0.map(|w| !w))
}

fn is_set(b: &PageBits, p: usize) -> bool {
    b.0[p / 64] >> (p % 64) & 1 == 1
}

// ---- Naive references: one page at a time. ----

fn summarize_slow(b: &PageBits) -> SumFields {
    let start = (0..P).take_while(|&p| !is_set(b, p)).count();
    let end = (0..P).rev().take_while(|&p| !is_set(b, p)).count();
    let (mut max, mut run) = (0, 0);
    for p in 0..P {
        run = if is_set(b, p) { 0 } else { run + 1 };
        max = max.max(run);
    }
    SumFields { start, max, end }
}

fn find_slow(b: &PageBits, n: usize, search_idx: usize) -> (Option<usize>, usize) {
    let from = search_idx / 64 * 64;
    let fits = |i: usize| (i..i + n).all(|p| !is_set(b, p));
    let idx = if n <= P {
        (from..=P - n).find(|&i| fits(i))
    } else {
        None
    };
    let new_search = (from..P).find(|&p| !is_set(b, p)).unwrap_or(P);
    (idx, new_search)
}

fn scavenge_candidate_slow(
    c: &ChunkData,
    search_idx: usize,
    min: usize,
    max: usize,
    huge: usize,
) -> Option<(usize, usize)> {
    let max = if max == 0 {
        min
    } else {
        max.div_ceil(min) * min
    };
    // A page is available if its whole min-group is free and unscavenged.
    let avail = |p: usize| {
        let g = p / min * min;
        (g..g + min).all(|q| !is_set(&c.alloc, q) && !is_set(&c.scav, q))
    };
    let top = search_idx / 64 * 64 + 64;
    let end = (0..top).rev().find(|&p| avail(p))? + 1;
    let run_start = (0..end).rev().take_while(|&p| avail(p)).last().unwrap();
    let run = end - run_start;
    let mut start = end - run.min(max);
    // Huge pages count only when larger than the physical page (min).
    if huge > min {
        let above = start.div_ceil(huge) * huge;
        let below = start / huge * huge;
        if above <= end && below >= run_start {
            start = below;
        }
    }
    Some((start, end - start))
}

// ---- summarize ----

fn check_summarize(free: &[(usize, usize)], want: (usize, usize, usize)) {
    let b = bits_without(free);
    let (start, max, end) = want;
    assert_eq!(
        b.summarize(),
        SumFields { start, max, end },
        "free {free:?}"
    );
}

#[test]
fn summarize_cases() {
    check_summarize(&[], (0, 0, 0)); // NoneFree
    check_summarize(&[(0, 10)], (10, 10, 0)); // OnlyStart
    check_summarize(&[(P - 40, 40)], (0, 40, 40)); // OnlyEnd
    check_summarize(&[(0, 11), (P - 23, 23)], (11, 23, 23)); // StartAndEnd
    check_summarize(&[(0, 4), (50, 100), (P - 4, 4)], (4, 100, 4)); // StartMaxEnd
    check_summarize(&[(1, 20), (35, 241), (P - 50, 30)], (0, 241, 0)); // OnlyMax
    check_summarize(&[(35, 2), (40, 5), (100, 5)], (0, 5, 0)); // MultiMax
    check_summarize(&[(2, 1)], (0, 1, 0)); // One
    check_summarize(&[(0, P)], (P, P, P)); // AllFree
                                           // Runs inside one word that beat the word-boundary runs, found by the
                                           // bit-parallel pass, including a later longer gap in the same word.
    check_summarize(&[(3, 30)], (0, 30, 0));
    check_summarize(&[(3, 10), (20, 40)], (0, 40, 0));
    check_summarize(&[(0, 2), (3, 10), (20, 40), (130, 61)], (2, 61, 0));
    check_summarize(&[(1, 62)], (0, 62, 0));
    check_summarize(&[(50, 30), (130, 50)], (0, 50, 0));
    // Found by the property test: the gap filler must not overrate the
    // shortest run of ones after a partial step.
    let mut b = PageBits([u64::MAX; 8]);
    b.0[0] = 0xffff_ffe8_9841_c092; // free: 0, 2-3, 5-6, 8-13 (6), 17-21, ...
    assert_eq!(
        b.summarize(),
        SumFields {
            start: 1,
            max: 6,
            end: 0
        }
    );
    check_summarize(&[(50, 30), (130, 20), (170, 5), (180, 10)], (0, 30, 0));
    check_summarize(&[(65, 1), (67, 2), (70, 3), (74, 4), (200, 4)], (0, 4, 0));
}

#[test]
fn summarize_bench_patterns() {
    // The reference's benchmark patterns, every word the same, against the
    // naive loop.
    let patterns = [
        0,
        u64::MAX,
        0xaa,
        0xaaaa_aaaa_aaaa_aaaa,
        0x8000_0000_aaaa_aaaa,
        0xaaaa_aaaa_0000_0001,
        0xbbbb_bbbb_bbbb_bbbb,
        0x8000_0000_bbbb_bbbb,
        0xbbbb_bbbb_0000_0001,
        0xcccc_cccc_cccc_cccc,
        0x4444_4444_4444_4444,
        0x4040_4040_4040_4040,
        0x4000_4000_4000_4000,
        0x1000_4040_44cc_aaff,
    ];
    for x in patterns {
        let b = PageBits([x; 8]);
        assert_eq!(b.summarize(), summarize_slow(&b), "pattern {x:#x}");
    }
}

// ---- find and alloc ----

/// Starting from `before`, each hit is a `find(npages, 0)` followed, on
/// success, by allocating what it found; the result must be `after`.
fn check_alloc(
    npages: usize,
    before: &[(usize, usize)],
    hits: &[Option<usize>],
    after: &[(usize, usize)],
) {
    let mut c = ChunkData {
        alloc: bits_with(before),
        scav: PageBits::default(),
    };
    for (k, &want) in hits.iter().enumerate() {
        let (got, _) = c.alloc.find(npages, 0);
        assert_eq!(got, want, "npages {npages}, before {before:?}: hit {k}");
        if let Some(i) = got {
            c.alloc_range(i, npages);
        }
    }
    assert_eq!(
        c.alloc,
        bits_with(after),
        "npages {npages}, before {before:?}: after"
    );
}

#[test]
fn alloc_cases() {
    let h = P / 2;
    check_alloc(
        1,
        &[],
        &[Some(0), Some(1), Some(2), Some(3), Some(4), Some(5)],
        &[(0, 6)],
    );
    check_alloc(
        2,
        &[],
        &[Some(0), Some(2), Some(4), Some(6), Some(8), Some(10)],
        &[(0, 12)],
    );
    check_alloc(
        5,
        &[],
        &[Some(0), Some(5), Some(10), Some(15), Some(20)],
        &[(0, 25)],
    );
    for n in [1, 2, 5, 65] {
        check_alloc(n, &[(0, P)], &[None, None], &[(0, P)]); // NoneFree
    }
    check_alloc(
        1,
        &[(0, h - 3), (h - 2, h + 2)],
        &[Some(h - 3), None],
        &[(0, P)],
    );
    check_alloc(
        2,
        &[(0, h - 3), (h - 1, h + 1)],
        &[Some(h - 3), None],
        &[(0, P)],
    );
    check_alloc(
        5,
        &[(0, h - 3), (h + 2, h - 2)],
        &[Some(h - 3), None],
        &[(0, P)],
    );
    check_alloc(64, &[], &[Some(0), Some(64), Some(128)], &[(0, 192)]);
    check_alloc(65, &[], &[Some(0), Some(65), Some(130)], &[(0, 195)]);
    let some_free = [(0, 32), (64, 32), (100, P - 100)];
    check_alloc(64, &some_free, &[None], &some_free);
    check_alloc(
        65,
        &[(0, h - 31), (h + 34, h - 34)],
        &[Some(h - 31), None],
        &[(0, P)],
    );
    check_alloc(
        161,
        &[(0, 185), (331, 1)],
        &[Some(332)],
        &[(0, 185), (331, 162)],
    );
}

fn check_find(
    alloc: &[(usize, usize)],
    npages: usize,
    search_idx: usize,
    want: (Option<usize>, usize),
) {
    let got = bits_with(alloc).find(npages, search_idx);
    assert_eq!(got, want, "alloc {alloc:?}: find({npages}, {search_idx})");
}

#[test]
fn find_new_search_index() {
    // The new search index is the first free page from the search word on,
    // even when the hit is further up.
    check_find(&[(0, 10), (12, 100)], 5, 0, (Some(112), 10));
    check_find(&[(0, 10), (12, 100)], 1, 0, (Some(10), 10));
    check_find(&[(0, 10), (12, 100)], 100, 0, (Some(112), 10));
    check_find(&[(0, 10), (12, 100)], 5, 70, (Some(112), 112));
    // The search starts at the search index's word, not at the index.
    check_find(&[(0, 10), (12, 100)], 2, 11, (Some(10), 10));
    check_find(&[(0, 10), (12, 100)], 3, 11, (Some(112), 10));
    check_find(&[(0, 10), (12, 100)], 2, 64, (Some(112), 112));
    // Failures: the first free page, or P when there is none.
    check_find(&[(0, P)], 1, 0, (None, P));
    check_find(&[(0, P)], 7, 0, (None, P));
    check_find(&[(0, 100), (103, P - 103)], 5, 0, (None, 100));
    check_find(&[(0, 100), (103, P - 103)], 70, 0, (None, 100));
    check_find(&[], 1, P, (None, P));
    check_find(&[], P, 0, (Some(0), 0));
    check_find(&[], P + 1, 0, (None, 0));
    // Large requests across words and into the chunk's last word.
    check_find(&[(0, 1), (200, 1)], 199, 0, (Some(1), 1));
    check_find(&[(0, 1), (200, 1)], 200, 0, (Some(201), 1));
    check_find(&[(0, 1), (200, 1)], 311, 0, (Some(201), 1));
    check_find(&[(0, 1), (200, 1)], 312, 0, (None, 1));
}

/// The free run around an empty range at either end of the chunk, where
/// the searches start or stop at the bitmap's edges (the property test
/// reaches these ends only by chance).
#[test]
fn run_bounds_at_the_chunk_edges() {
    let b = bits_with(&[(10, 5), (500, 2)]);
    assert_eq!(b.run_bounds(0, 0), (0, 10));
    assert_eq!(b.run_bounds(P, P), (502, P));
    assert_eq!(b.run_bounds(P - 1, P), (502, P));
    assert_eq!(b.run_bounds(0, P), (0, P));
    let full = bits_with(&[(0, P)]);
    assert_eq!(full.run_bounds(P, P), (P, P));
    assert_eq!(full.run_bounds(0, 0), (0, 0));
}

#[test]
#[should_panic = "find of zero pages"]
fn find_zero_pages_panics() {
    let _ = PageBits::default().find(0, 0);
}

/// Starting from all pages allocated except `before_free`, free
/// `npages` at each of `frees`; the free pages must be `after_free`.
fn check_free(
    npages: usize,
    before_free: &[(usize, usize)],
    frees: &[usize],
    after_free: &[(usize, usize)],
) {
    let scav = bits_with(&[(0, 3)]);
    let mut c = ChunkData {
        alloc: bits_without(before_free),
        scav,
    };
    for &i in frees {
        if npages == 1 {
            c.free1(i);
        } else {
            c.free(i, npages);
        }
    }
    assert_eq!(
        c.alloc,
        bits_without(after_free),
        "npages {npages}, frees {frees:?}"
    );
    assert_eq!(c.scav, scav, "freeing leaves the scavenged bits alone");
}

#[test]
fn free_cases() {
    check_free(1, &[], &[0, 1, 2, 3, 4, 5], &[(0, 6)]);
    check_free(2, &[], &[0, 2, 4, 6, 8, 10], &[(0, 12)]);
    check_free(5, &[], &[0, 5, 10, 15, 20], &[(0, 25)]);
    check_free(
        1,
        &[(0, 32), (64, 32), (100, 1)],
        &[32],
        &[(0, 33), (64, 32), (100, 1)],
    );
    check_free(64, &[], &[0, 64, 128], &[(0, 192)]);
    check_free(65, &[], &[0, 65, 130], &[(0, 195)]);
}

#[test]
fn alloc_clears_scavenged_bits() {
    let mut c = ChunkData {
        alloc: PageBits::default(),
        scav: bits_with(&[(0, P)]),
    };
    c.alloc_range(10, 100);
    assert_eq!(c.alloc, bits_with(&[(10, 100)]));
    assert_eq!(c.scav, bits_without(&[(10, 100)]));
    c.free_all();
    assert_eq!(c.alloc, PageBits::default());
    assert_eq!(c.scav, bits_without(&[(10, 100)]));
    c.alloc_all();
    assert_eq!(
        (c.alloc, c.scav),
        (bits_with(&[(0, P)]), PageBits::default())
    );
    assert_eq!(c.alloc.pages64(130), u64::MAX);
    let mut b = PageBits::default();
    b.alloc_pages64(130, 0x5);
    assert_eq!((b.pages64(128), b.pages64(0)), (0x5, 0));
}

// ---- scavenge candidates ----

/// `find_scavenge_candidate(P - 1, min, max, huge)` on the chunk built from
/// `alloc` and `scav` must give `want`.
fn check_scav(
    alloc: &[(usize, usize)],
    scav: &[(usize, usize)],
    (min, max, huge): (usize, usize, usize),
    want: Option<(usize, usize)>,
) {
    let c = ChunkData {
        alloc: bits_with(alloc),
        scav: bits_with(scav),
    };
    let got = c.find_scavenge_candidate(P - 1, min, max, huge);
    assert_eq!(
        got, want,
        "alloc {alloc:?} scav {scav:?} min {min} max {max} huge {huge}"
    );
}

#[test]
fn scavenge_candidate_cases() {
    check_scav(
        &[(0, 40), (42, P - 42)],
        &[(0, 41), (42, P - 42)],
        (1, P, 0),
        Some((41, 1)),
    );
    check_scav(
        &[(0, 63), (65, 20), (87, P - 87)],
        &[(86, 1)],
        (1, P, 0),
        Some((85, 1)),
    );
    for m in MS {
        check_scav(&[], &[], (m, P, 0), Some((0, P))); // AllFree
        check_scav(&[], &[(0, P)], (m, P, 0), None); // AllScavenged
        check_scav(&[(0, P)], &[(P / 2, P / 2)], (m, P, 0), None); // NoneFree
        check_scav(&[(m, P - m)], &[], (m, P, 0), Some((0, m))); // StartFree
        check_scav(&[(0, P - m)], &[], (m, P, 0), Some((P - m, m))); // EndFree
        let straddle = [(0, 64 - m), (64 + m, P - (64 + m))];
        check_scav(&straddle, &[], (m, 2 * m, 0), Some((64 - m, 2 * m)));
        let full = [(64, 64), (128 + 3 * m, P - (128 + 3 * m))];
        check_scav(&full, &[(1, 10)], (m, 3 * m, 0), Some((128, 3 * m)));
        let pocket = [(64, 62), (127, 1), (128 + 3 * m, P - (128 + 3 * m))];
        check_scav(&pocket, &[(1, 10)], (m, 3 * m, 0), Some((128, 3 * m)));
        check_scav(&[], &[(0, P - m)], (m, 0, 0), Some((P - m, m))); // Max0
        if m > 1 {
            check_scav(
                &[],
                &[(0, P - (2 * m - 1))],
                (m, m - 2, 0),
                Some((P - m, m)),
            ); // MaxUnaligned
            let small = [(0, 64 - m), (64, 5), (70, 11), (82, P - 82)];
            check_scav(&small, &[], (m, m, 0), Some((64 - m, m))); // SkipSmall
            let misaligned = [(0, 64 - m), (64, 63), (127 + m, P - (127 + m))];
            check_scav(&misaligned, &[], (m, m, 0), Some((64 - m, m))); // SkipMisaligned
            check_scav(&[], &[(0, P - m)], (m, 1, 0), Some((P - m, m))); // MaxLessThan
        }
    }
    check_scav(&[(0, 40), (48, P - 48)], &[], (8, P, 0), Some((40, 8))); // OneFree
    check_scav(&[(0, 40), (48, P - 48)], &[(40, 1)], (8, P, 0), None); // OneScavenged
}

#[test]
fn scavenge_candidate_huge_pages() {
    for bits in [2, 8, 64, 128, 256] {
        // PreserveHugePageBottom: the run [0, bits + 2) would be cut to its
        // top 3 pages, crossing the huge-page boundary at `bits`.
        let bottom = [(bits + 2, P - (bits + 2))];
        check_scav(&bottom, &[], (1, 3, bits), Some((0, bits + 2)));
        check_scav(&bottom, &[], (1, 3, 0), Some((bits - 1, 3)));
        if bits >= 16 && 3 * bits < P {
            // PreserveHugePageMiddle: free [bits - 10, 2 * bits + 10).
            let middle = [(0, bits - 10), (2 * bits + 10, P - (2 * bits + 10))];
            check_scav(&middle, &[], (1, 12, bits), Some((bits, bits + 10)));
        }
        // PreserveHugePageTop.
        check_scav(&[(0, P - bits)], &[], (1, 1, bits), Some((P - bits, bits)));
    }
    check_scav(&[], &[], (1, 1, P), Some((0, P))); // PreserveHugePageAll
    check_scav(&[], &[], (1, 1, 2 * P), Some((P - 1, 1))); // PreserveHugePageNone
    check_scav(&[], &[], (1, 1, 0), Some((P - 1, 1)));
    check_scav(&[], &[], (1, 1, 1), Some((P - 1, 1)));
    // A huge page that is not wholly free stays split.
    check_scav(&[(10, 1)], &[], (1, 3, 64), Some((P - 64, 64)));
    check_scav(&[(P - 70, 1)], &[], (1, 3, 64), Some((P - 64, 64)));
    check_scav(&[(P - 60, 1)], &[], (1, 3, 64), Some((P - 3, 3)));
}

#[test]
fn scavenge_candidate_search_index() {
    // The whole word of the search index is searched, then lower words.
    let c = ChunkData::default();
    assert_eq!(c.find_scavenge_candidate(100, 1, P, 0), Some((0, 128)));
    assert_eq!(c.find_scavenge_candidate(0, 1, 5, 0), Some((59, 5)));
    let c = ChunkData {
        alloc: bits_with(&[(0, 1)]),
        scav: bits_with(&[(64, 64)]),
    };
    assert_eq!(c.find_scavenge_candidate(127, 1, P, 0), Some((1, 63)));
    assert_eq!(c.find_scavenge_candidate(127, 2, P, 0), Some((2, 62)));
}

#[test]
#[should_panic = "min must be a power of two no larger than 64"]
fn scavenge_candidate_bad_min_panics() {
    let _ = ChunkData::default().find_scavenge_candidate(0, 128, 0, 0);
}

// ---- properties against the naive loops ----

/// Random bitmaps with structure: random words, sparse or dense word
/// mixes, then runs of set or cleared pages laid over them.
fn bitmap() -> impl Strategy<Value = PageBits> {
    let words = any::<[u64; 8]>();
    let len = prop_oneof![1..=70usize, 1..=P];
    let ranges = proptest::collection::vec((0..P, len, any::<bool>()), 0..12);
    (words, words, 0..5u8, ranges).prop_map(|(a, b, mode, ranges)| {
        let base = match mode {
            0 => a,
            1 => core::array::from_fn(|k| a[k] & b[k]),
            2 => core::array::from_fn(|k| a[k] | b[k]),
            3 => [0; 8],
            _ => [u64::MAX; 8],
        };
        let mut bits = PageBits(base);
        for (i, n, set) in ranges {
            let n = n.min(P - i);
            if set {
                bits.set_range(i, n);
            } else {
                bits.clear_range(i, n);
            }
        }
        bits
    })
}

fn npages() -> impl Strategy<Value = usize> {
    prop_oneof![1..=8usize, 1..=64usize, 1..=P + 1]
}

/// The longest run of zeros in `w` with a one on each side, bit by bit.
fn inner_gap_slow(w: u64) -> usize {
    let ones: Vec<usize> = (0..64).filter(|&b| w >> b & 1 == 1).collect();
    ones.windows(2).map(|p| p[1] - p[0] - 1).max().unwrap_or(0)
}

#[test]
fn inner_gap_cases() {
    for (w, want) in [
        (0u64, 0),
        (u64::MAX, 0),
        (1, 0),
        (1 << 63, 0),
        ((1 << 63) | 1, 62),
        (0b1001, 2),
        (0b1010_0001, 4),
        (!0b0111_1110u64, 6),
        (0x8000_0001_0000_0001, 31),
    ] {
        assert_eq!(inner_gap(w), want, "{w:#x}");
        assert_eq!(inner_gap_slow(w), want, "{w:#x}");
    }
}

proptest! {
    #[test]
    fn prop_summarize(b in bitmap()) {
        prop_assert_eq!(b.summarize(), summarize_slow(&b));
    }

    #[test]
    fn prop_inner_gap(w in any::<u64>(), sparse in any::<u64>()) {
        // Sparse words too: long gaps are rare among uniform words.
        prop_assert_eq!(inner_gap(w), inner_gap_slow(w));
        let s = w & sparse & (sparse >> 7);
        prop_assert_eq!(inner_gap(s), inner_gap_slow(s));
    }

    /// The gap cache, kept up to date by touching what changes, gives the
    /// full summary after any sequence of range changes.
    #[test]
    fn prop_summarize_cached(
        start in bitmap(),
        changes in proptest::collection::vec((0..P, 1..=P, any::<bool>()), 1..24),
    ) {
        let mut b = start;
        let mut gaps = GapCache::default();
        gaps.touch(0, P);
        prop_assert_eq!(b.summarize_cached(&mut gaps), summarize_slow(&b));
        for (i, n, set) in changes {
            let n = n.min(P - i);
            for p in i..i + n {
                if set {
                    b.0[p / 64] |= 1 << (p % 64);
                } else {
                    b.0[p / 64] &= !(1 << (p % 64));
                }
            }
            gaps.touch(i, n);
            prop_assert_eq!(b.summarize_cached(&mut gaps), summarize_slow(&b));
            // Fresh entries hold each word's inner gap.
            for (k, g) in gaps.words().iter().enumerate() {
                if let Some(g) = g {
                    prop_assert_eq!(usize::from(*g), inner_gap_slow(b.0[k]));
                }
            }
        }
    }

    #[test]
    fn prop_run_bounds(b in bitmap(), i in 0..=P, n in 0..=P) {
        let n = n.min(P - i);
        let a = (0..i).rev().find(|&p| is_set(&b, p)).map_or(0, |p| p + 1);
        let e = (i + n..P).find(|&p| is_set(&b, p)).unwrap_or(P);
        prop_assert_eq!(b.run_bounds(i, i + n), (a, e));
    }

    #[test]
    fn prop_summarize_after_free(b in bitmap(), i in 0..P, n in 1..=P) {
        // Whatever the pages were, freeing them gives the full summary.
        let n = n.min(P - i);
        let old = summarize_slow(&b);
        let mut b = b;
        b.clear_range(i, n);
        prop_assert_eq!(b.summarize_after_free(old, i, n), summarize_slow(&b));
    }

    #[test]
    fn prop_summarize_after_alloc(b in bitmap(), i in 0..P, n in 1..=P) {
        // The pages must have been free: clear them first.
        let n = n.min(P - i);
        let mut b = b;
        b.clear_range(i, n);
        let old = summarize_slow(&b);
        b.set_range(i, n);
        prop_assert_eq!(b.summarize_after_alloc(old, i, n), summarize_slow(&b));
    }

    #[test]
    fn prop_find(b in bitmap(), n in npages(), search_idx in 0..P) {
        // The search assumes every page below the search index is in use.
        let mut b = b;
        b.set_range(0, search_idx);
        prop_assert_eq!(b.find(n, search_idx), find_slow(&b, n, search_idx));
    }

    #[test]
    fn prop_find_any_search_word(b in bitmap(), n in npages(), search_idx in 0..P) {
        // Without that assumption the result still follows the search word.
        prop_assert_eq!(b.find(n, search_idx), find_slow(&b, n, search_idx));
    }

    #[test]
    fn prop_scavenge_candidate(
        alloc in bitmap(),
        scav in bitmap(),
        search_idx in 0..P,
        min_log in 0..7u32,
        max in prop_oneof![Just(0usize), 1..=8usize, 1..=P],
        huge_log in prop_oneof![Just(None), (0..11u32).prop_map(Some)],
    ) {
        let min = 1 << min_log;
        let huge = huge_log.map_or(0, |l| 1 << l);
        // Scavenged pages are free: keep the chunk valid.
        let scav = PageBits(core::array::from_fn(|k| scav.0[k] & !alloc.0[k]));
        let c = ChunkData { alloc, scav };
        prop_assert_eq!(
            c.find_scavenge_candidate(search_idx, min, max, huge),
            scavenge_candidate_slow(&c, search_idx, min, max, huge)
        );
    }
}

/// Changing `[i, i + n)` of the chunk with `allocated` set, summarized
/// incrementally, must give `want`.
fn check_after(
    allocated: &[(usize, usize)],
    i: usize,
    n: usize,
    alloc: bool,
    want: (usize, usize, usize),
) {
    let mut b = bits_with(allocated);
    let old = summarize_slow(&b);
    let got = if alloc {
        b.set_range(i, n);
        b.summarize_after_alloc(old, i, n)
    } else {
        b.clear_range(i, n);
        b.summarize_after_free(old, i, n)
    };
    let (start, max, end) = want;
    assert_eq!(
        got,
        SumFields { start, max, end },
        "{allocated:?} alloc={alloc} [{i}, +{n})"
    );
}

#[test]
fn incremental_summary_cases() {
    // Freeing joins the run with its free neighbours; start and end runs
    // follow when the joined run reaches the chunk's ends.
    check_after(&[(0, 512)], 0, 512, false, (512, 512, 512));
    check_after(&[(0, 512)], 100, 10, false, (0, 10, 0));
    check_after(&[(5, 10), (20, 3)], 5, 10, false, (20, 489, 489));
    check_after(&[(5, 10), (20, 3)], 20, 3, false, (5, 497, 497));
    check_after(&[(5, 10), (200, 312)], 200, 312, false, (5, 497, 497));
    check_after(&[(0, 105), (150, 362)], 100, 5, false, (0, 50, 0));
    // Allocating from a run shorter than the longest keeps the longest.
    check_after(&[(10, 1)], 0, 4, true, (0, 501, 501));
    check_after(&[(10, 1), (20, 1)], 12, 3, true, (10, 491, 491));
    check_after(&[(500, 1)], 505, 7, true, (500, 500, 0));
    // Allocating from the longest run summarizes anew.
    check_after(&[(10, 1)], 11, 100, true, (10, 401, 401));
    check_after(&[(10, 1)], 300, 212, true, (10, 289, 0));
    check_after(&[], 0, 512, true, (0, 0, 0));
    check_after(&[(0, 8), (9, 503)], 8, 1, true, (0, 0, 0));
}

#[test]
fn naive_references_agree_on_a_fixed_chunk() {
    // Guard the guards: the naive loops against hand-worked answers.
    let b = bits_with(&[(0, 3), (10, 5), (100, 1)]);
    assert_eq!(
        summarize_slow(&b),
        SumFields {
            start: 0,
            max: 411,
            end: 411
        }
    );
    assert_eq!(find_slow(&b, 7, 0), (Some(3), 3));
    assert_eq!(find_slow(&b, 8, 0), (Some(15), 3));
    let c = ChunkData {
        alloc: b,
        scav: bits_with(&[(101, P - 101)]),
    };
    assert_eq!(scavenge_candidate_slow(&c, P - 1, 1, P, 0), Some((15, 85)));
    let v: Vec<_> = (0..4)
        .map(|m| scavenge_candidate_slow(&c, P - 1, 1 << m, P, 0))
        .collect();
    assert_eq!(
        v,
        [
            Some((15, 85)),
            Some((16, 84)),
            Some((16, 84)),
            Some((16, 80))
        ]
    );
}
