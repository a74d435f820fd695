//! Unit tests: Go's mranges scenarios (reference catalogue §12.1 and the
//! behaviour of §3), offset ordering, storage exhaustion, and large trees
//! whose every node is checked after each batch of operations.
//!
//! Expected values come from the catalogue or are worked out by hand from
//! the definitions, never from running this code.

use alloc::vec::Vec;

mod shuffle {
    use alloc::vec::Vec;
    include!("../tests/support/shuffle.rs");
}
use shuffle::shuffled;

use crate::{AddrRange, AddrRanges, AddrSpace, Error, Node, SliceStorage, Storage};

fn r(base: usize, limit: usize) -> AddrRange {
    AddrRange::new(base, limit)
}

fn x86() -> AddrSpace {
    AddrSpace::x86_64()
}

/// Go's `validateAddrRanges` plus the tree's own invariants: same count,
/// each range equal and non-empty, sorted, never touching, and the byte sum
/// equal to both the expected sum and `total_bytes()`.
fn check<S: Storage>(set: &AddrRanges<S>, want: &[AddrRange]) {
    set.validate();
    let space = set.space();
    let got: Vec<AddrRange> = set.iter().collect();
    assert_eq!(got.len(), want.len(), "count: got {got:x?}");
    assert_eq!(set.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "range {i}");
        assert!(!g.is_empty(space), "range {i} is empty");
        assert_eq!(set.get(i), Some(*w), "get({i})");
        if i > 0 {
            let prev = got[i - 1];
            assert!(
                space.to_offset(prev.limit) < space.to_offset(g.base),
                "ranges {} and {i} touch, overlap or are out of order",
                i - 1
            );
        }
    }
    assert_eq!(set.get(want.len()), None);
    let sum: usize = want.iter().map(|w| w.size(space)).sum();
    assert_eq!(set.total_bytes(), sum, "total bytes");
}

fn set_of(space: AddrSpace, ranges: &[AddrRange]) -> AddrRanges {
    let mut set = AddrRanges::new(space);
    for &x in ranges {
        set.add(x).unwrap();
    }
    set
}

#[test]
fn add_coalesces_like_go() {
    // TestAddrRangesAdd, steps 1 to 5.
    let steps: &[(AddrRange, &[AddrRange])] = &[
        (r(512, 1024), &[r(512, 1024)]),
        (r(1024, 2048), &[r(512, 2048)]),
        (r(4096, 8192), &[r(512, 2048), r(4096, 8192)]),
        (r(3776, 4096), &[r(512, 2048), r(3776, 8192)]),
        (r(2048, 3776), &[r(512, 8192)]),
    ];
    for space in [AddrSpace::flat(), x86()] {
        let mut set = AddrRanges::new(space);
        for (add, want) in steps {
            set.add(*add).unwrap();
            check(&set, want);
        }
        // Step 6: 64 small ranges above, each separate.
        let mut want = alloc::vec![r(512, 8192)];
        for i in 0..64 {
            let base = 8192 + (i + 1) * 2048;
            set.add(r(base, base + 10)).unwrap();
            want.push(r(base, base + 10));
            check(&set, &want);
        }
        assert_eq!(set.len(), 65);
        // Step 7: 63 small ranges below everything, inserted at the front.
        let high = want.clone();
        for i in 0..63 {
            set.add(r(8 + 8 * i, 8 + 8 * i + 4)).unwrap();
            let mut want: Vec<AddrRange> = (0..=i).map(|j| r(8 + 8 * j, 8 + 8 * j + 4)).collect();
            want.extend_from_slice(&high);
            check(&set, &want);
        }
        assert_eq!(set.len(), 128);
    }
}

#[test]
fn find_succ_like_go() {
    // TestAddrRangesFindSucc; "large" is [5 + 5i, 5 + 5i + 3) for i < 100.
    let large: Vec<AddrRange> = (0..100).map(|i| r(5 + 5 * i, 5 + 5 * i + 3)).collect();
    let one = [r(14, 16)];
    let three = [r(6, 10), r(12, 16), r(19, 22)];
    let cases: &[(&str, &[AddrRange], usize, usize)] = &[
        ("Empty", &[], 12, 0),
        ("OneBefore", &one, 12, 0),
        ("OneWithin", &one, 14, 1),
        ("OneAfterLimit", &one, 16, 1),
        ("OneAfter", &one, 17, 1),
        ("ThreeBefore", &three, 3, 0),
        ("ThreeAfter", &three, 24, 3),
        ("ThreeBetween", &three, 11, 1),
        ("ThreeWithin", &three, 9, 1),
        ("Zero", &[r(0, 10)], 0, 1),
        ("Max", &[r(usize::MAX - 5, usize::MAX)], usize::MAX, 1),
        ("LargeBefore", &large, 2, 0),
        ("LargeAfter", &large, 535, 100),
        ("LargeBetweenLow", &large, 14, 2),
        ("LargeBetweenHigh", &large, 249, 49),
        ("LargeWithinLow", &large, 25, 5),
        ("LargeWithinHigh", &large, 396, 79),
        ("LargeWithinMiddle", &large, 250, 50),
    ];
    // Go runs these in offset space on amd64 and expects the same answers.
    for space in [AddrSpace::flat(), x86()] {
        for &(name, ranges, addr, want) in cases {
            let set = set_of(space, ranges);
            assert_eq!(set.find_succ(addr), want, "{name} in {space:x?}");
        }
    }
}

#[test]
fn bad_adds_are_errors_and_change_nothing() {
    let start = [r(100, 200), r(300, 400)];
    let cases: &[(AddrRange, Error)] = &[
        (
            r(150, 160),
            Error::Overlap {
                range: r(150, 160),
                existing: r(100, 200),
            },
        ),
        (
            r(50, 101),
            Error::Overlap {
                range: r(50, 101),
                existing: r(100, 200),
            },
        ),
        (
            r(199, 250),
            Error::Overlap {
                range: r(199, 250),
                existing: r(100, 200),
            },
        ),
        (
            r(250, 301),
            Error::Overlap {
                range: r(250, 301),
                existing: r(300, 400),
            },
        ),
        (
            r(0, 1000),
            Error::Overlap {
                range: r(0, 1000),
                existing: r(100, 200),
            },
        ),
        (
            r(100, 200),
            Error::Overlap {
                range: r(100, 200),
                existing: r(100, 200),
            },
        ),
        (r(250, 250), Error::EmptyRange { range: r(250, 250) }),
        (r(260, 250), Error::EmptyRange { range: r(260, 250) }),
    ];
    for &(add, want) in cases {
        let mut set = set_of(AddrSpace::flat(), &start);
        assert_eq!(set.add(add), Err(want), "add {add}");
        check(&set, &start);
    }
}

#[test]
fn queries() {
    // (addr, contains, find_addr_greater_equal, range_below, range_above)
    type Case = (
        usize,
        bool,
        Option<usize>,
        Option<AddrRange>,
        Option<AddrRange>,
    );
    let set = set_of(AddrSpace::flat(), &[r(10, 20), r(30, 40), r(50, 60)]);
    let cases: &[Case] = &[
        (0, false, Some(10), None, Some(r(10, 20))),
        (10, true, Some(10), None, Some(r(30, 40))),
        (19, true, Some(19), None, Some(r(30, 40))),
        (20, false, Some(30), Some(r(10, 20)), Some(r(30, 40))),
        (35, true, Some(35), Some(r(10, 20)), Some(r(50, 60))),
        (40, false, Some(50), Some(r(30, 40)), Some(r(50, 60))),
        (59, true, Some(59), Some(r(30, 40)), None),
        (60, false, None, Some(r(50, 60)), None),
        (usize::MAX, false, None, Some(r(50, 60)), None),
    ];
    for &(addr, contains, ge, below, above) in cases {
        assert_eq!(set.contains(addr), contains, "contains({addr})");
        assert_eq!(
            set.find_addr_greater_equal(addr),
            ge,
            "find_addr_greater_equal({addr})"
        );
        assert_eq!(set.range_below(addr), below, "range_below({addr})");
        assert_eq!(set.range_above(addr), above, "range_above({addr})");
        let containing = [r(10, 20), r(30, 40), r(50, 60)]
            .into_iter()
            .find(|x| x.base <= addr && addr < x.limit);
        assert_eq!(
            set.range_containing(addr),
            containing,
            "range_containing({addr})"
        );
    }
    let empty = AddrRanges::new(AddrSpace::flat());
    assert_eq!(empty.find_addr_greater_equal(0), None);
    assert_eq!(empty.find_succ(5), 0);
    assert!(!empty.contains(0));
    assert_eq!(
        (
            empty.range_below(9),
            empty.range_above(9),
            empty.first(),
            empty.last()
        ),
        (None, None, None, None)
    );
    assert_eq!(
        (set.first(), set.last()),
        (Some(r(10, 20)), Some(r(50, 60)))
    );
}

#[test]
fn remove_last() {
    // (start, n, returned, after)
    let cases: &[(&[AddrRange], usize, AddrRange, &[AddrRange])] = &[
        (
            &[r(10, 20), r(30, 40)],
            4,
            r(36, 40),
            &[r(10, 20), r(30, 36)],
        ),
        (&[r(10, 20), r(30, 40)], 10, r(30, 40), &[r(10, 20)]),
        (&[r(10, 20), r(30, 40)], 25, r(30, 40), &[r(10, 20)]),
        (&[r(10, 20)], 10, r(10, 20), &[]),
        (&[r(10, 20)], 0, r(20, 20), &[r(10, 20)]),
    ];
    for &(start, n, ret, after) in cases {
        let mut set = set_of(AddrSpace::flat(), start);
        assert_eq!(set.remove_last(n), ret, "remove_last({n}) from {start:?}");
        check(&set, after);
    }
    let mut empty = AddrRanges::new(AddrSpace::flat());
    assert!(empty.remove_last(8).is_empty(AddrSpace::flat()));
    check(&empty, &[]);
}

#[test]
fn remove_greater_equal() {
    let start = [r(10, 20), r(30, 40), r(50, 60)];
    let cases: &[(usize, &[AddrRange])] = &[
        (0, &[]),
        (10, &[]),
        (11, &[r(10, 11)]),
        (20, &[r(10, 20)]),
        (25, &[r(10, 20)]),
        (30, &[r(10, 20)]),
        (39, &[r(10, 20), r(30, 39)]),
        (60, &start),
        (usize::MAX, &start),
    ];
    for &(addr, after) in cases {
        let mut set = set_of(AddrSpace::flat(), &start);
        set.remove_greater_equal(addr);
        check(&set, after);
        // The set stays usable: re-adding what was removed restores it.
        for x in start
            .iter()
            .flat_map(|x| x.subtract(AddrSpace::flat(), r(0, addr)))
        {
            if !x.is_empty(AddrSpace::flat()) {
                set.add(x).unwrap();
            }
        }
        check(&set, &start);
    }
}

#[test]
fn range_subtract_and_truncate() {
    let a = r(100, 200);
    let sub: &[(AddrRange, Result<AddrRange, Error>)] = &[
        (r(0, 50), Ok(a)),
        (r(200, 300), Ok(a)),
        (r(100, 200), Ok(r(100, 100))),
        (r(50, 250), Ok(r(100, 100))),
        (r(50, 150), Ok(r(150, 200))),
        (r(100, 150), Ok(r(150, 200))),
        (r(150, 250), Ok(r(100, 150))),
        (r(150, 200), Ok(r(100, 150))),
        (
            r(120, 130),
            Err(Error::StrictSplit {
                range: a,
                other: r(120, 130),
            }),
        ),
        (r(150, 150), Ok(a)),
    ];
    for &(other, want) in sub {
        let got = a.subtract(AddrSpace::flat(), other);
        // An empty result may sit anywhere; compare emptiness instead.
        match (got, want) {
            (Ok(g), Ok(w)) if w.is_empty(AddrSpace::flat()) => {
                assert!(g.is_empty(AddrSpace::flat()), "{other}")
            }
            _ => assert_eq!(got, want, "{a} - {other}"),
        }
    }
    let trunc: &[(usize, AddrRange)] = &[
        (50, r(100, 100)),
        (100, r(100, 100)),
        (150, r(100, 150)),
        (200, a),
        (300, a),
    ];
    for &(addr, want) in trunc {
        assert_eq!(
            a.remove_greater_equal(AddrSpace::flat(), addr),
            want,
            "{a} below {addr}"
        );
    }
    assert_eq!(a.size(AddrSpace::flat()), 100);
    assert!(a.contains(AddrSpace::flat(), 100) && !a.contains(AddrSpace::flat(), 200));
}

#[test]
fn offset_order() {
    let s = x86();
    assert_eq!(s.offset(), 0xffff_8000_0000_0000);
    assert_eq!(s.min_addr(), 0xffff_8000_0000_0000);
    // (2^48 - 1) + offset, wrapped: Go's maxOffAddr on amd64.
    assert_eq!(s.max_addr(), 0x0000_7fff_ffff_ffff);
    assert_eq!(AddrSpace::flat().max_addr(), usize::MAX);
    assert_eq!(AddrSpace::new(0, 48).max_addr(), 0x0000_ffff_ffff_ffff);
    assert_eq!(
        s.compare(0xffff_8000_0000_0000, 0),
        core::cmp::Ordering::Less
    );
    assert_eq!(s.compare(usize::MAX, 0), core::cmp::Ordering::Less);

    let upper = r(0xffff_8000_0000_0000, 0xffff_8000_0010_0000);
    let lower = r(0x1000, 0x2000);
    let across_top = r(usize::MAX - 0xfff, 0x1000); // wraps through raw 0
    let mut set = set_of(s, &[lower, upper]);
    check(&set, &[upper, lower]);
    // Touches `lower` at 0x1000: the merged range still wraps raw zero.
    set.add(across_top).unwrap();
    check(&set, &[upper, r(usize::MAX - 0xfff, 0x2000)]);
    assert_eq!(across_top.size(s), 0x2000);
    assert!(set.contains(0) && set.contains(usize::MAX) && !set.contains(0x2000));
    assert_eq!(set.find_succ(0), 2);
    assert_eq!(set.find_succ(0xffff_8000_0000_0000), 1);
    // Ending exactly at the offset boundary wraps the limit to offset 0.
    let to_boundary = r(0xffff_7fff_ffff_f000, 0xffff_8000_0000_0000);
    assert_eq!(
        set.add(to_boundary),
        Err(Error::EmptyRange { range: to_boundary })
    );
    // The same raw ranges in plain order: `across_top` is empty there.
    let mut flat = AddrRanges::new(AddrSpace::flat());
    assert_eq!(
        flat.add(across_top),
        Err(Error::EmptyRange { range: across_top })
    );
    flat.add(upper).unwrap();
    flat.add(lower).unwrap();
    check(&flat, &[lower, upper]);
    // The top of plain order: a range may end at usize::MAX, not past it.
    flat.add(r(usize::MAX - 10, usize::MAX)).unwrap();
    assert!(flat.contains(usize::MAX - 1) && !flat.contains(usize::MAX));
    assert_eq!(
        flat.find_addr_greater_equal(usize::MAX - 20),
        Some(usize::MAX - 10)
    );
}

#[test]
fn fixed_storage_runs_out_cleanly() {
    // The root leaf lives in the set itself: 32 ranges fit in no storage at
    // all (and in one node of storage, still unused), and coalescing,
    // lookups and removals work there too. Filled in both orders.
    for n_nodes in [0, 1] {
        let mut nodes = alloc::vec![Node::EMPTY; n_nodes];
        let mut set = AddrRanges::with_storage(AddrSpace::flat(), SliceStorage::new(&mut nodes));
        let mut want: Vec<AddrRange> = (0..32).map(|i| r(10 * i, 10 * i + 5)).collect();
        let order: Vec<AddrRange> = if n_nodes == 0 {
            want.iter().rev().copied().collect()
        } else {
            want.clone()
        };
        for x in order {
            set.add(x).unwrap();
        }
        check(&set, &want);
        assert_eq!(set.nodes_used(), 0);
        // The 33rd separate range splits the leaf: it moves into the
        // storage beside a right half and a new root, three nodes in all.
        assert_eq!(
            set.add(r(1000, 1001)),
            Err(Error::OutOfStorage { nodes: 3 })
        );
        check(&set, &want);
        // Coalescing needs no new node, and then the range fits.
        set.add(r(5, 10)).unwrap();
        want[0] = r(0, 15);
        want.remove(1);
        check(&set, &want);
        set.add(r(1000, 1001)).unwrap();
        want.push(r(1000, 1001));
        check(&set, &want);
        assert_eq!(set.remove_last(2), r(1000, 1001));
        want.pop();
        assert_eq!(set.remove_last(2), r(313, 315));
        want[30] = r(310, 313);
        set.remove_greater_equal(102);
        want.truncate(10);
        want[9] = r(100, 102);
        check(&set, &want);
        while !set.is_empty() {
            set.remove_last(usize::MAX);
        }
        check(&set, &[]);
        set.add(r(7, 9)).unwrap();
        check(&set, &[r(7, 9)]);
    }
}

#[test]
fn spilled_root_grows_and_shrinks_back() {
    // Past 32 ranges the inline leaf moves into the storage; removing back
    // down to one leaf and then to nothing, then refilling, stays valid.
    let mut nodes = [Node::EMPTY; 3];
    let mut set = AddrRanges::with_storage(AddrSpace::flat(), SliceStorage::new(&mut nodes));
    let want: Vec<AddrRange> = (0..40).map(|i| r(10 * i, 10 * i + 5)).collect();
    for &x in &want {
        set.add(x).unwrap();
    }
    check(&set, &want);
    assert_eq!(set.nodes_used(), 3);
    set.remove_greater_equal(100);
    check(&set, &want[..10]);
    set.remove_greater_equal(0);
    check(&set, &[]);
    for &x in &want {
        set.add(x).unwrap();
    }
    check(&set, &want);
}

#[test]
fn clone_into_reuses_or_refuses() {
    let src = set_of(
        x86(),
        &(0..100).map(|i| r(8 * i, 8 * i + 3)).collect::<Vec<_>>(),
    );
    let want: Vec<AddrRange> = src.iter().collect();
    let mut dst = set_of(AddrSpace::flat(), &[r(1, 2)]);
    src.clone_into(&mut dst).unwrap();
    assert_eq!(dst.space(), x86());
    check(&dst, &want);
    // The copy is independent of the original.
    dst.add(r(4, 8)).unwrap();
    assert_eq!(src.len(), 100);
    let mut nodes = [Node::EMPTY; 2];
    let mut small = AddrRanges::with_storage(AddrSpace::flat(), SliceStorage::new(&mut nodes));
    small.add(r(1, 2)).unwrap();
    assert!(matches!(
        src.clone_into(&mut small),
        Err(Error::OutOfStorage { .. })
    ));
    check(&small, &[r(1, 2)]);
    let mut nodes = [Node::EMPTY; 8];
    let mut fits = AddrRanges::with_storage(AddrSpace::flat(), SliceStorage::new(&mut nodes));
    src.clone_into(&mut fits).unwrap();
    check(&fits, &want);
}

#[test]
fn large_tree_adds_coalesces_and_truncates() {
    // Ranges [4i, 4i + 2) in random order, then the gaps [4i + 2, 4i + 4)
    // in random order until everything is one range [0, 4n - 2).
    // Under Miri a smaller tree still has several levels (32 entries a node).
    let n = if cfg!(miri) { 1_500 } else { 40_000 };
    let s = x86();
    let at = |i: usize| s.from_offset(4 * i);
    let mut set = AddrRanges::new(s);
    for (k, &i) in shuffled(n, 7).iter().enumerate() {
        set.add(r(at(i), at(i) + 2)).unwrap();
        if k % 5000 == 0 {
            set.validate();
        }
    }
    let want: Vec<AddrRange> = (0..n).map(|i| r(at(i), at(i) + 2)).collect();
    check(&set, &want);
    for i in [0, 1, 777, n / 2, n - 1] {
        assert_eq!(set.find_succ(at(i)), i + 1);
        assert_eq!(set.find_succ(at(i) + 3), i + 1);
        // Below the first range lies the top of offset space.
        assert_eq!(
            set.find_succ(at(i).wrapping_sub(1)),
            if i == 0 { n } else { i }
        );
        assert!(set.contains(at(i) + 1) && !set.contains(at(i) + 2));
    }
    for (k, &i) in shuffled(n - 1, 11).iter().enumerate() {
        set.add(r(at(i) + 2, at(i) + 4)).unwrap();
        if k % 5000 == 0 {
            set.validate();
            assert_eq!(set.len(), n - 1 - k);
        }
    }
    check(&set, &[r(at(0), at(n - 1) + 2)]);

    // Truncations and tail removals on a deep tree.
    let mut set = AddrRanges::new(s);
    for &i in &shuffled(n, 3) {
        set.add(r(at(i), at(i) + 2)).unwrap();
    }
    let cut = n * 3 / 4;
    set.remove_greater_equal(at(cut) + 1);
    let mut want: Vec<AddrRange> = (0..cut).map(|i| r(at(i), at(i) + 2)).collect();
    want.push(r(at(cut), at(cut) + 1));
    check(&set, &want);
    for _ in 0..n / 8 {
        let got = set.remove_last(1);
        let top = want.pop().unwrap();
        assert_eq!(got, r(top.limit - 1, top.limit));
        if top.limit - 1 > top.base {
            want.push(r(top.base, top.limit - 1));
        }
    }
    check(&set, &want);
    set.remove_greater_equal(at(5));
    check(&set, &want[..5]);
    set.remove_greater_equal(at(0));
    check(&set, &[]);
}

#[test]
fn large_tree_coalesces_up_down_and_both() {
    // Ranges [8i, 8i + 2) for i < n, then, each pass in its own random
    // order: [8i + 6, 8i + 8) touches only the range above (up),
    // [8i + 2, 8i + 3) touches only the range below (down), and
    // [8i + 3, 8i + 6) touches both. Every pass is checked in full.
    let n = if cfg!(miri) { 1_200 } else { 20_000 };
    let s = x86();
    let at = |i: usize| s.from_offset(8 * i + 64);
    let mut set = AddrRanges::new(s);
    for &i in &shuffled(n, 5) {
        set.add(r(at(i), at(i) + 2)).unwrap();
    }
    let mut want: Vec<AddrRange> = (0..n).map(|i| r(at(i), at(i) + 2)).collect();
    check(&set, &want);
    for &i in &shuffled(n - 1, 9) {
        set.add(r(at(i) + 6, at(i) + 8)).unwrap();
    }
    want = (0..n)
        .map(|i| r(if i == 0 { at(0) } else { at(i) - 2 }, at(i) + 2))
        .collect();
    check(&set, &want);
    for &i in &shuffled(n - 1, 13) {
        set.add(r(at(i) + 2, at(i) + 3)).unwrap();
    }
    want = (0..n)
        .map(|i| {
            r(
                if i == 0 { at(0) } else { at(i) - 2 },
                if i == n - 1 { at(i) + 2 } else { at(i) + 3 },
            )
        })
        .collect();
    check(&set, &want);
    for (k, &i) in shuffled(n - 1, 17).iter().enumerate() {
        set.add(r(at(i) + 3, at(i) + 6)).unwrap();
        if k % 2_000 == 0 {
            set.validate();
        }
    }
    check(&set, &[r(at(0), at(n - 1) + 2)]);
}

#[test]
fn errors_display_lowercase() {
    use alloc::string::ToString;
    let e = Error::Overlap {
        range: r(1, 2),
        existing: r(0, 4),
    };
    assert_eq!(
        e.to_string(),
        "range [0x1, 0x2) overlaps [0x0, 0x4) already in the set"
    );
    assert_eq!(
        Error::OutOfStorage { nodes: 3 }.to_string(),
        "storage cannot provide 3 nodes"
    );
}
