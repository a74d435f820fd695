//! Unit tests for `crate::summary`: packed layouts worked out by hand, the
//! all-free flag, merges, and a property test that merging chunk summaries
//! equals summarizing the concatenated bitmap page by page.

extern crate std;

use proptest::prelude::*;
use std::vec::Vec;

use super::*;
use crate::bits::PageBits;
use crate::geometry::{Go32, Go64};

/// Packing `fields` for geometry `G` must give `raw`, and unpack back.
fn check_pack<G: Geometry>(fields: (usize, usize, usize), raw: u64) {
    let (start, max, end) = fields;
    let s = Summary::pack::<G>(start, max, end);
    assert_eq!(s, Summary(raw), "pack {fields:?}: {:#x} != {raw:#x}", s.0);
    assert_eq!(
        s.unpack::<G>(),
        SumFields { start, max, end },
        "unpack {raw:#x}"
    );
    assert_eq!((s.start::<G>(), s.max::<G>(), s.end::<G>()), fields);
}

#[test]
fn pack_cases() {
    // Layouts by hand: start at bit 0, max at bit W, end at bit 2W.
    check_pack::<Go64>((0, 0, 0), 0);
    assert_eq!(Summary::pack::<Go64>(0, 0, 0), Summary::FULL);
    // 5 | 10 << 21 | 3 << 42.
    check_pack::<Go64>((5, 10, 3), 0x0000_0c00_0140_0005);
    // Three all-ones 21-bit fields fill bits 0..63 exactly.
    check_pack::<Go64>(
        ((1 << 21) - 1, (1 << 21) - 1, (1 << 21) - 1),
        0x7fff_ffff_ffff_ffff,
    );
    // A fully free root region: the flag alone.
    check_pack::<Go64>((1 << 21, 1 << 21, 1 << 21), 1 << 63);
    // 512 | 512 << 21 | 512 << 42 = 2^9 + 2^30 + 2^51.
    check_pack::<Go64>((512, 512, 512), 0x0008_0000_4000_0200);
    assert_eq!(
        Summary::free_chunk::<Go64>(),
        Summary(0x0008_0000_4000_0200)
    );
    // 18-bit fields: 1 | 3 << 18 | 2 << 36.
    check_pack::<Go32>((1, 3, 2), 0x0000_0020_000c_0001);
    check_pack::<Go32>((1 << 18, 1 << 18, 1 << 18), 1 << 63);
    // 512 | 512 << 18 | 512 << 36 = 2^9 + 2^27 + 2^45.
    assert_eq!(
        Summary::free_chunk::<Go32>(),
        Summary(0x0000_2000_0800_0200)
    );
}

/// Merging `children` (packed for Go64) of `1 << log` pages each must give
/// `want`.
fn check_merge(children: &[(usize, usize, usize)], log: u32, want: (usize, usize, usize)) {
    let packed: Vec<Summary> = children
        .iter()
        .map(|&(s, m, e)| Summary::pack::<Go64>(s, m, e))
        .collect();
    let got = Summary::merge::<Go64>(&packed, log);
    let (start, max, end) = want;
    assert_eq!(
        got.unpack::<Go64>(),
        SumFields { start, max, end },
        "merge {children:?}"
    );
}

#[test]
fn merge_cases() {
    let free = (512, 512, 512);
    check_merge(&[free; 8], 9, (4096, 4096, 4096));
    check_merge(&[(0, 0, 0); 8], 9, (0, 0, 0));
    check_merge(&[free], 9, free);
    // End runs join free children and the next start: 10 + 512 + 5.
    check_merge(&[(0, 10, 10), free, (5, 5, 0)], 9, (0, 527, 0));
    // The start run continues only through completely free children.
    check_merge(&[free, (100, 200, 3)], 9, (612, 612, 3));
    check_merge(&[(10, 10, 5), free], 9, (10, 517, 517));
    check_merge(&[(0, 0, 0), (0, 300, 0), (0, 0, 0)], 9, (0, 300, 0));
    check_merge(&[(4, 4, 0), (0, 2, 2), (1, 1, 0), (3, 3, 3)], 9, (4, 4, 3));
    // Eight fully free root-level children make the flag value.
    let child = 1 << 18;
    check_merge(&[(child, child, child); 8], 18, (1 << 21, 1 << 21, 1 << 21));
    let packed = [Summary::pack::<Go64>(child, child, child); 8];
    assert_eq!(Summary::merge::<Go64>(&packed, 18), Summary(1 << 63));
}

/// Naive summary of a run of chunks, page by page.
fn summarize_chunks_slow(chunks: &[PageBits]) -> SumFields {
    let used: Vec<bool> = chunks
        .iter()
        .flat_map(|c| (0..512).map(move |p| c.get(p)))
        .collect();
    let start = used.iter().take_while(|&&u| !u).count();
    let end = used.iter().rev().take_while(|&&u| !u).count();
    let (mut max, mut run) = (0, 0);
    for &u in &used {
        run = if u { 0 } else { run + 1 };
        max = max.max(run);
    }
    SumFields { start, max, end }
}

/// A chunk that is full, empty, or has a few allocated ranges.
fn chunk() -> impl Strategy<Value = PageBits> {
    let ranges = proptest::collection::vec((0..512usize, 1..=300usize), 0..4);
    (0..4u8, ranges).prop_map(|(mode, ranges)| {
        let mut b = PageBits::default();
        match mode {
            0 => b.set_all(),
            1 => {}
            _ => {
                for (i, n) in ranges {
                    b.set_range(i, n.min(512 - i));
                }
            }
        }
        b
    })
}

proptest! {
    #[test]
    fn prop_merge_matches_concatenation(chunks in proptest::collection::vec(chunk(), 1..=8)) {
        let leaves: Vec<Summary> = chunks
            .iter()
            .map(|c| {
                let f = c.summarize();
                Summary::pack::<Go64>(f.start, f.max, f.end)
            })
            .collect();
        let merged = Summary::merge::<Go64>(&leaves, 9);
        prop_assert_eq!(merged.unpack::<Go64>(), summarize_chunks_slow(&chunks));
    }

    #[test]
    fn prop_merge_block_matches_merge(
        log in prop_oneof![Just(9u32), Just(12), Just(15), Just(18)],
        raw in proptest::collection::vec((0..=4u8, any::<u32>(), any::<u32>(), any::<u32>()), 8),
    ) {
        // Eight children of `1 << log` pages each: entirely free, full, or
        // any consistent (start, max, end); with `log == 18` they are the
        // root's children, and eight free ones merge into the flag.
        let pages = 1usize << log;
        let children: Vec<Summary> = raw
            .iter()
            .map(|&(kind, m, s, e)| {
                let (start, max, end) = match kind {
                    0 => (pages, pages, pages),
                    1 => (0, 0, 0),
                    _ => {
                        let max = m as usize % pages;
                        let start = s as usize % (max + 1);
                        let end = e as usize % (max.min(pages - 1 - start) + 1);
                        (start, max, end)
                    }
                };
                Summary::pack::<Go64>(start, max, end)
            })
            .collect();
        prop_assert_eq!(
            Summary::merge_block::<Go64>(&children, log),
            Summary::merge::<Go64>(&children, log)
        );
    }

    #[test]
    fn prop_pack_round_trip(max in 0..(1usize << 21), a in any::<usize>(), b in any::<usize>()) {
        let (start, end) = (a % (max + 1), b % (max + 1));
        let s = Summary::pack::<Go64>(start, max, end);
        prop_assert_eq!(s.unpack::<Go64>(), SumFields { start, max, end });
        prop_assert_eq!(s.0 >> 63, 0);
        prop_assert_eq!(s == Summary::FULL, max == 0);
    }
}
