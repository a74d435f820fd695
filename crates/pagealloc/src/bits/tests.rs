//! Unit tests for `crate::bits`: the reference's `AllocRange`,
//! `PopcntRange`, `FindBitRange64` and `FillAligned` tables, and property
//! tests against naive per-bit loops.

extern crate std;

use proptest::prelude::*;
use std::vec::Vec;

use super::*;

const P: usize = 512;

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

fn check_set_range(i: usize, n: usize, want: [u64; 8]) {
    let mut b = PageBits::default();
    b.set_range(i, n);
    assert_eq!(b.0, want, "set_range({i}, {n})");
    // Clearing the same range from a full bitmap gives the complement.
    let mut c = PageBits([u64::MAX; 8]);
    c.clear_range(i, n);
    assert_eq!(c.0, want.map(|w| !w), "clear_range({i}, {n})");
}

#[test]
fn set_range_cases() {
    let ones = u64::MAX;
    check_set_range(0, 1, [1, 0, 0, 0, 0, 0, 0, 0]); // OneLow
    check_set_range(P - 1, 1, [0, 0, 0, 0, 0, 0, 0, 1 << 63]); // OneHigh
    check_set_range(129, 5, [0, 0, 0x3e, 0, 0, 0, 0, 0]); // Inner
    check_set_range(128, 128, [0, 0, ones, ones, 0, 0, 0, 0]); // Aligned
    check_set_range(0, 321, [ones, ones, ones, ones, ones, 1, 0, 0]); // Begin
    check_set_range(P - 193, 193, [0, 0, 0, 0, 1 << 63, ones, ones, ones]); // End
    check_set_range(0, P, [ones; 8]); // All
                                      // The shift-by-64 traps: a whole aligned word, a range ending at bit 63.
    check_set_range(64, 64, [0, ones, 0, 0, 0, 0, 0, 0]);
    check_set_range(60, 4, [0xf << 60, 0, 0, 0, 0, 0, 0, 0]);
    check_set_range(5, 0, [0; 8]);
}

fn check_popcnt(init: &[(usize, usize)], cases: &[((usize, usize), usize)]) {
    let b = bits_with(init);
    for &((i, n), want) in cases {
        assert_eq!(
            b.popcnt_range(i, n),
            want,
            "init {init:?}: popcnt_range({i}, {n})"
        );
    }
}

#[test]
fn popcnt_range_cases() {
    check_popcnt(
        &[],
        &[
            ((0, 1), 0),
            ((5, 3), 0),
            ((2, 11), 0),
            ((P / 4 + 1, P / 2), 0),
            ((0, P), 0),
        ],
    );
    check_popcnt(
        &[(0, P)],
        &[
            ((0, 1), 1),
            ((5, 3), 3),
            ((2, 11), 11),
            ((P / 4 + 1, P / 2), P / 2),
            ((0, P), P),
        ],
    );
    check_popcnt(
        &[(P / 2, P / 2)],
        &[
            ((0, 1), 0),
            ((5, 3), 0),
            ((2, 11), 0),
            ((P / 2 - 1, 1), 0),
            ((P / 2, 1), 1),
            ((P / 2 + 10, 1), 1),
            ((P / 2 - 1, 2), 1),
            ((P / 4, P / 4), 0),
            ((P / 4, P / 4 + 1), 1),
            ((P / 4 + 1, P / 2), P / 4 + 1),
            ((0, P), P / 2),
        ],
    );
    check_popcnt(
        &[(0, 111)],
        &[
            ((0, 1), 1),
            ((5, 3), 3),
            ((2, 11), 11),
            ((110, 2), 1),
            ((99, 50), 12),
            ((110, 1), 1),
            ((111, 1), 0),
            ((99, 1), 1),
            ((120, 1), 0),
            ((P / 2, P / 2), 0),
            ((0, P), 111),
        ],
    );
    let scattered = [
        (1, 3),
        (5, 1),
        (7, 1),
        (10, 2),
        (13, 1),
        (15, 4),
        (21, 1),
        (23, 1),
        (26, 2),
        (30, 5),
        (36, 2),
        (40, 3),
        (44, 6),
        (51, 1),
        (53, 2),
        (58, 3),
        (63, 1),
        (67, 2),
        (71, 10),
        (84, 1),
        (89, 7),
        (99, 2),
        (103, 1),
        (107, 2),
        (111, 1),
        (113, 1),
        (115, 1),
        (118, 1),
        (120, 2),
        (125, 5),
    ];
    check_popcnt(
        &scattered,
        &[
            ((0, 11), 6),
            ((0, 64), 39),
            ((13, 64), 40),
            ((64, 64), 34),
            ((0, 128), 73),
            ((1, 128), 74),
            ((0, P), 75),
        ],
    );
}

#[test]
fn single_bits_and_blocks() {
    let mut b = PageBits::default();
    b.set(0);
    b.set(63);
    b.set(64);
    b.set(511);
    assert!(b.get(0) && b.get(63) && b.get(64) && b.get(511) && !b.get(1) && !b.get(510));
    assert_eq!(b.count_ones(), 4);
    b.clear(63);
    assert_eq!(b.words(), &[1, 1, 0, 0, 0, 0, 0, 1 << 63]);
    assert_eq!(b.block64(100), 1);
    b.set_block64(100, 0xf0);
    assert_eq!(b.block64(64), 0xf1);
    b.clear_block64(127, 0x11);
    assert_eq!(b.block64(64), 0xe0);
    b.set_all();
    assert_eq!(b.count_ones(), P);
    b.clear_all();
    assert_eq!(b, PageBits::default());
}

#[test]
#[should_panic = "bit range past the end of the chunk"]
fn range_past_the_end_panics() {
    PageBits::default().set_range(500, 13);
}

fn check_find_bit_range64(x: u64, n: u32, want: Option<u32>) {
    let got = find_bit_range64(x, n);
    match want {
        Some(i) => assert_eq!(got, i, "find_bit_range64({x:#x}, {n})"),
        None => assert!(
            got >= 64,
            "find_bit_range64({x:#x}, {n}) = {got}, want none"
        ),
    }
}

#[test]
fn find_bit_range64_cases() {
    for n in 1..=64 {
        check_find_bit_range64(u64::MAX, n, Some(0));
        check_find_bit_range64(0, n, None);
    }
    check_find_bit_range64(0x8000_0000_0000_0000, 1, Some(63));
    check_find_bit_range64(0xc000_0100_0101_0000, 2, Some(62));
    check_find_bit_range64(0xc000_0100_0103_0000, 2, Some(16));
    check_find_bit_range64(0xe000_0300_0103_0000, 3, Some(61));
    check_find_bit_range64(0xe000_0300_0107_0000, 3, Some(16));
    check_find_bit_range64(0xffff_03ff_0107_0000, 16, Some(48));
    check_find_bit_range64(0xffff_03ff_0107_ffff, 16, Some(0));
    check_find_bit_range64(0x0fff_03ff_0107_9fff, 16, None);
    check_find_bit_range64(u64::MAX, 65, None);
}

/// Naive `fill_aligned`: group by group.
fn fill_aligned_slow(x: u64, m: u32) -> u64 {
    let mut out = 0;
    for g in (0..64).step_by(m as usize) {
        let group = low_mask(m) << g;
        if x & group != 0 {
            out |= group;
        }
    }
    out
}

/// Naive `find_bit_range64`: bit by bit.
fn find_bit_range64_slow(x: u64, n: u32) -> Option<u32> {
    (0..=64u32.checked_sub(n)?).find(|&i| (i..i + n).all(|b| x >> b & 1 == 1))
}

const MS: [u32; 7] = [1, 2, 4, 8, 16, 32, 64];

fn check_fill_aligned(x: u64, m: u32) {
    assert_eq!(
        fill_aligned(x, m),
        fill_aligned_slow(x, m),
        "fill_aligned({x:#x}, {m})"
    );
}

#[test]
fn fill_aligned_cases() {
    assert_eq!(fill_aligned(0x0100a3, 8), 0xff00ff);
    assert_eq!(fill_aligned(0x8000_0000_0000_0001, 64), u64::MAX);
    assert_eq!(fill_aligned(0x8000_0000_0000_0001, 32), u64::MAX);
    assert_eq!(
        fill_aligned(0x8000_0000_0000_0001, 16),
        0xffff_0000_0000_ffff
    );
    assert_eq!(fill_aligned(0x2, 2), 0x3);
    assert_eq!(fill_aligned(0x10, 4), 0xf0);
    for m in MS {
        let fixed = [
            0,
            0x0000_0000_ffff_ffff,
            0xffff_ffff_0000_0000,
            0x8000_0000_0000_0001,
            0xf000_0000_0000_000f,
            0xf000_0001_0050_000f,
            u64::MAX,
            0x1,
            0x2,
            0x8,
            1 << (m - 1),
            1u64.checked_shl(m).unwrap_or(0),
            0xb02b_9eff_cf13_7016,
            0x3975_a076_a9fb_ff18,
            0x0f8c_88ec_3b81_506e,
            0x60f1_4d80_ef2f_a0e6,
        ];
        for x in fixed {
            check_fill_aligned(x, m);
        }
    }
}

#[test]
#[should_panic = "bad m value"]
fn fill_aligned_bad_m_panics() {
    let _ = fill_aligned(1, 3);
}

/// A word whose `m`-groups are each either 0 or random (the reference's
/// second random family: sparse at the group level).
fn sparse_groups(x: u64, keep: u64, m: u32) -> u64 {
    let mut out = 0;
    for (k, g) in (0..64).step_by(m as usize).enumerate() {
        if keep >> (k % 64) & 1 == 1 {
            out |= x & (low_mask(m) << g);
        }
    }
    out
}

/// A naive bitmap: one bool per page.
fn to_bools(b: &PageBits) -> Vec<bool> {
    (0..P).map(|i| b.0[i / 64] >> (i % 64) & 1 == 1).collect()
}

proptest! {
    #[test]
    fn prop_fill_aligned(x in any::<u64>(), keep in any::<u64>(), k in 0..7usize) {
        let m = MS[k];
        check_fill_aligned(x, m);
        check_fill_aligned(sparse_groups(x, keep, m), m);
    }

    #[test]
    fn prop_find_bit_range64(x in any::<u64>(), y in any::<u64>(), n in 1..=64u32) {
        // x | y makes long runs of ones common.
        for c in [x, x | y, x | y | (x >> 1), !(x & y)] {
            let got = find_bit_range64(c, n);
            match find_bit_range64_slow(c, n) {
                Some(i) => prop_assert_eq!(got, i, "{:#x} {}", c, n),
                None => prop_assert!(got >= 64, "{:#x} {} gave {}", c, n, got),
            }
        }
    }

    #[test]
    fn prop_ranges(words in any::<[u64; 8]>(), i in 0..P, n in 0..=P) {
        let n = n.min(P - i);
        let b = PageBits(words);
        let bools = to_bools(&b);
        prop_assert_eq!(b.popcnt_range(i, n), bools[i..i + n].iter().filter(|&&x| x).count());
        prop_assert_eq!(b.count_ones(), bools.iter().filter(|&&x| x).count());
        prop_assert_eq!(b.all_set(i, n), bools[i..i + n].iter().all(|&x| x));
        prop_assert_eq!(b.none_set(i, n), bools[i..i + n].iter().all(|&x| !x));
        let (mut s, mut c) = (b, b);
        // Ranges just set or cleared answer all_set / none_set.
        s.set_range(i, n);
        c.clear_range(i, n);
        prop_assert!(s.all_set(i, n) && c.none_set(i, n));
        let (mut s, mut c) = (b, b);
        s.set_range(i, n);
        c.clear_range(i, n);
        let (sb, cb) = (to_bools(&s), to_bools(&c));
        for p in 0..P {
            let inside = (i..i + n).contains(&p);
            prop_assert_eq!(sb[p], inside || bools[p], "set_range({}, {}) page {}", i, n, p);
            prop_assert_eq!(cb[p], !inside && bools[p], "clear_range({}, {}) page {}", i, n, p);
        }
    }
}
