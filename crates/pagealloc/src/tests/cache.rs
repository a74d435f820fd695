//! The page cache (reference §12.4: `TestPageCacheAlloc`,
//! `TestPageCacheFlush`, `TestPageAllocAllocToCache`).

use super::harness::{assert_state, build, for_geometries, page, verify, Chunks, P};
use crate::{Geometry, PageCache};

/// `(name, cache mask, scav mask, hits (npages, Some(page in block) or
/// None, scavenged pages))`.
type CacheCase = (
    &'static str,
    u64,
    u64,
    &'static [(usize, Option<usize>, usize)],
);

const CACHE_ALLOC_CASES: &[CacheCase] = &[
    (
        "Empty",
        0,
        0,
        &[
            (1, None, 0),
            (2, None, 0),
            (3, None, 0),
            (4, None, 0),
            (5, None, 0),
            (11, None, 0),
            (12, None, 0),
            (16, None, 0),
            (27, None, 0),
            (32, None, 0),
            (43, None, 0),
            (57, None, 0),
            (64, None, 0),
            (121, None, 0),
        ],
    ),
    (
        "Lo1",
        0x1,
        0x1,
        &[(1, Some(0), 1), (1, None, 0), (10, None, 0)],
    ),
    (
        "Hi1",
        1 << 63,
        0x1,
        &[(1, Some(63), 0), (1, None, 0), (10, None, 0)],
    ),
    (
        "Swiss1",
        0x2000_5555,
        0x5505,
        &[
            (2, None, 0),
            (1, Some(0), 1),
            (1, Some(2), 1),
            (1, Some(4), 0),
            (1, Some(6), 0),
            (1, Some(8), 1),
            (1, Some(10), 1),
            (1, Some(12), 1),
            (1, Some(14), 1),
            (1, Some(29), 0),
            (1, None, 0),
            (10, None, 0),
        ],
    ),
    (
        "Lo2",
        0x3,
        0x2 << 62,
        &[(2, Some(0), 0), (2, None, 0), (1, None, 0)],
    ),
    (
        "Hi2",
        0x3 << 62,
        0x3 << 62,
        &[(2, Some(62), 2), (2, None, 0), (1, None, 0)],
    ),
    (
        "Swiss2",
        0x3333 << 31,
        0x3030 << 31,
        &[
            (2, Some(31), 0),
            (2, Some(35), 2),
            (2, Some(39), 0),
            (2, Some(43), 2),
            (2, None, 0),
        ],
    ),
    (
        "Hi53",
        ((1 << 53) - 1) << 10,
        ((1 << 16) - 1) << 10,
        &[(53, Some(10), 16), (53, None, 0), (1, None, 0)],
    ),
    (
        "Full53",
        !0,
        ((1 << 16) - 1) << 10,
        &[(53, Some(0), 16), (53, None, 0), (1, Some(53), 0)],
    ),
    (
        "Full64",
        !0,
        !0,
        &[(64, Some(0), 64), (64, None, 0), (1, None, 0)],
    ),
    (
        "FullMixed",
        !0,
        !0,
        &[
            (5, Some(0), 5),
            (7, Some(5), 7),
            (1, Some(12), 1),
            (23, Some(13), 23),
            (63, None, 0),
            (3, Some(36), 3),
            (3, Some(39), 3),
            (3, Some(42), 3),
            (12, Some(45), 12),
            (11, None, 0),
            (4, Some(57), 4),
            (4, None, 0),
            (6, None, 0),
            (36, None, 0),
            (2, Some(61), 2),
            (3, None, 0),
            (1, Some(63), 1),
            (4, None, 0),
            (2, None, 0),
            (62, None, 0),
            (1, None, 0),
        ],
    ),
];

fn check_cache_alloc<G: Geometry>(&(name, cache, scav, hits): &CacheCase) {
    let base = page::<G>(0, 0);
    let mut c = PageCache::new::<G>(base, cache, scav & cache);
    for (k, &(npages, want, want_scav)) in hits.iter().enumerate() {
        let got = c.alloc(npages).map(|a| (a.base, a.scavenged));
        let want = want.map(|i| (base + i * G::PAGE_BYTES, want_scav * G::PAGE_BYTES));
        assert_eq!(got, want, "{name}: hit {k}");
    }
}

#[test]
fn cache_alloc_cases() {
    fn run<G: Geometry>() {
        for case in CACHE_ALLOC_CASES {
            check_cache_alloc::<G>(case);
        }
    }
    for_geometries!(run);
}

/// A small deterministic generator (xorshift64*).
fn rng(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Flushes `cache` (block at page `base_page` of chunk 0, whose 64 pages
/// are allocated, all others free and scavenged) and checks the bitmaps:
/// the cache's pages become free, its scavenged pages scavenged.
fn check_flush<G: Geometry>(base_page: usize, cache: u64, scav: u64) {
    let mut pa = build::<G>(&[(0, &[])], &[(0, FULL)]);
    pa.alloc_range(page::<G>(0, base_page), 64).unwrap();
    assert!(!pa.inspect().scav_marked(G::chunk_index(page::<G>(0, 0))));
    let mut c = PageCache::new::<G>(page::<G>(0, base_page), cache, scav);
    pa.flush_cache(&mut c).expect("flush");
    assert!(c.is_empty());
    verify(&pa);
    let ch = pa.chunk(page::<G>(0, 0)).unwrap();
    for i in 0..P {
        let in_block = (base_page..base_page + 64).contains(&i);
        let bit = |m: u64| in_block && m >> (i - base_page) & 1 != 0;
        assert_eq!(
            ch.alloc.get(i),
            in_block && !bit(cache),
            "page {i} allocation"
        );
        assert_eq!(ch.scav.get(i), !in_block || bit(scav), "page {i} scavenged");
    }
    // A flush does not mark the chunk for the scavenger.
    assert!(!pa.inspect().scav_marked(G::chunk_index(page::<G>(0, 0))));
}

#[test]
fn cache_flush() {
    fn run<G: Geometry>() {
        check_flush::<G>(0, 0, 0);
        check_flush::<G>(0, !0, !0);
        let mut s = 0x9e37_79b9_7f4a_7c15;
        let n = if cfg!(miri) { 5 } else { 100 };
        for _ in 0..n {
            let base_page = (rng(&mut s) as usize % (P / 64)) * 64;
            let cache = rng(&mut s);
            let scav = rng(&mut s) & cache;
            check_flush::<G>(base_page, cache, scav);
        }
    }
    for_geometries!(run);
}

/// `(name, alloc before, scav before, caches (Some((chunk, page)) or None
/// for empty, cache mask, scav mask), alloc after, scav after)`.
type ToCacheCase = (
    &'static str,
    Chunks,
    Chunks,
    &'static [(Option<(usize, usize)>, u64, u64)],
    Chunks,
    Chunks,
);

const FULL: &[(usize, usize)] = &[(0, P)];

const TO_CACHE_CASES: &[ToCacheCase] = &[
    (
        "ManyArena",
        &[(0, FULL), (1, FULL), (2, &[(0, P - 64)])],
        &[(0, FULL), (1, FULL)],
        &[(Some((2, P - 64)), !0, 0)],
        &[(0, FULL), (1, FULL), (2, FULL)],
        &[],
    ),
    (
        "Fail",
        &[(0, FULL)],
        &[],
        &[(None, 0, 0), (None, 0, 0), (None, 0, 0)],
        &[(0, FULL)],
        &[],
    ),
    (
        "RetainScavBits",
        &[(0, &[(0, 1), (10, 2)])],
        &[(0, &[(0, 4), (11, 1)])],
        &[(Some((0, 0)), !(0x1 | 0x3 << 10), 0x7 << 1)],
        &[(0, &[(0, 64)])],
        &[(0, &[(0, 1), (11, 1)])],
    ),
    (
        "AllFree",
        &[(0, &[])],
        &[(0, &[(1, 1), (64, 64)])],
        &[
            (Some((0, 0)), !0, 0x2),
            (Some((0, 64)), !0, !0),
            (Some((0, 128)), !0, 0),
            (Some((0, 192)), !0, 0),
        ],
        &[(0, &[(0, 256)])],
        &[],
    ),
    (
        "NotContiguous",
        &[(0, FULL), (0xff, &[(0, 0)])],
        &[(0, FULL), (0xff, &[(31, 67)])],
        &[(Some((0xff, 0)), !0, ((1 << 33) - 1) << 31)],
        &[(0, FULL), (0xff, &[(0, 64)])],
        &[(0, FULL), (0xff, &[(64, 34)])],
    ),
    (
        "First",
        &[(0, &[(0, 32), (33, 31), (96, 32)])],
        &[(0, &[(1, 4), (31, 5), (66, 2)])],
        &[
            (Some((0, 0)), 1 << 32, 1 << 32),
            (Some((0, 64)), (1 << 32) - 1, 0x3 << 2),
        ],
        &[(0, &[(0, 128)])],
        &[],
    ),
];

#[cfg(not(miri))]
const TO_CACHE_CASES_64: &[ToCacheCase] = &[(
    "DiscontiguousMappedSumBoundary",
    &[(511, &[(0, P - 1)]), (0x100000, &[(1, P - 1)])],
    &[],
    &[
        (Some((511, P - 64)), 1 << 63, 0),
        (Some((0x100000, 0)), 0x1, 0),
        (None, 0, 0),
    ],
    &[(511, FULL), (0x100000, FULL)],
    &[],
)];

fn check_to_cache<G: Geometry>(&(name, before, scav, caches, after, after_scav): &ToCacheCase) {
    let mut pa = build::<G>(before, scav);
    for (k, &(base, cache, scav)) in caches.iter().enumerate() {
        let c = pa.alloc_to_cache();
        let got = (c.base(), c.free_mask(), c.scav_mask());
        let want = (base.map_or(0, |(ch, p)| page::<G>(ch, p)), cache, scav);
        assert_eq!(got, want, "{name}: cache {k}");
        assert_eq!(c.is_empty(), base.is_none());
        verify(&pa);
    }
    assert_state(&pa, after, after_scav, name);
}

#[test]
fn alloc_to_cache_cases() {
    fn run<G: Geometry>() {
        for case in TO_CACHE_CASES {
            check_to_cache::<G>(case);
        }
    }
    for_geometries!(run);
}

#[cfg(not(miri))]
#[test]
fn alloc_to_cache_discontiguous_64() {
    for case in TO_CACHE_CASES_64 {
        check_to_cache::<crate::Go64>(case);
    }
}

/// A cache taken, partly used and flushed: the used pages stay allocated,
/// the rest come back with their scavenged bits.
#[test]
fn cache_round_trip() {
    fn run<G: Geometry>() {
        let mut pa = build::<G>(&[(0, &[(0, 3)])], &[(0, &[(3, 5)])]);
        let mut c = pa.alloc_to_cache();
        assert_eq!(
            (c.base(), c.free_mask(), c.scav_mask()),
            (page::<G>(0, 0), !0b111, 0b1111_1000)
        );
        let a = c.alloc(2).unwrap();
        assert_eq!((a.base, a.scavenged), (page::<G>(0, 3), 2 * G::PAGE_BYTES));
        pa.flush_cache(&mut c).unwrap();
        verify(&pa);
        let ch = pa.chunk(page::<G>(0, 0)).unwrap();
        assert_eq!(ch.alloc.0[0], 0b11111);
        assert_eq!(ch.scav.0[0], 0b1110_0000);
        // The freed pages are found again first fit.
        let a = pa.alloc(1).unwrap().unwrap();
        assert_eq!((a.base, a.scavenged), (page::<G>(0, 5), G::PAGE_BYTES));
        verify(&pa);
    }
    for_geometries!(run);
}

/// Pages put back into a cache: only inside its block, page-aligned, not
/// cached already; they come back cached and not scavenged, and the flush
/// frees them in the allocator.
#[test]
fn cache_put_back() {
    fn run<G: Geometry>() {
        // Pages 0..3 allocated before the cache takes the block; 3..8
        // scavenged.
        let mut pa = build::<G>(&[(0, &[(0, 3)])], &[(0, &[(3, 5)])]);
        let mut c = pa.alloc_to_cache();
        let a = c.alloc(2).unwrap(); // pages 3, 4 (scavenged)
        assert_eq!(a.base, page::<G>(0, 3));
        let before = (c.free_mask(), c.scav_mask());
        // SAFETY:
        // - Every call here is refused before the cache changes (checked
        //   against `before` below), so no page is taken.
        unsafe {
            // Outside the block, misaligned, empty, too long, or cached
            // already: refused, nothing changes.
            assert!(!c.put_back(page::<G>(0, 64), 1));
            assert!(!c.put_back(page::<G>(0, 0) - G::PAGE_BYTES, 1));
            assert!(!c.put_back(page::<G>(0, 1) + 8, 1));
            assert!(!c.put_back(page::<G>(0, 1), 0));
            assert!(!c.put_back(page::<G>(0, 60), 5));
            assert!(!c.put_back(page::<G>(0, 4), 2)); // page 5 is cached
            assert!(!PageCache::default().put_back(page::<G>(0, 0), 1));
        }
        assert_eq!((c.free_mask(), c.scav_mask()), before);
        // The two pages just handed out, and page 1 (allocated before the
        // cache existed): taken back, cached, not scavenged.
        // SAFETY:
        // - Pages 1, 3 and 4 are allocated in `pa` and belong to this test,
        //   which uses none of them afterwards.
        unsafe {
            assert!(c.put_back(a.base, 2));
            assert!(c.put_back(page::<G>(0, 1), 1));
        }
        assert_eq!(c.free_mask(), before.0 | 0b11010);
        assert_eq!(c.scav_mask(), before.1 & !0b11010);
        let again = c.alloc(1).unwrap();
        assert_eq!((again.base, again.scavenged), (page::<G>(0, 1), 0));
        pa.flush_cache(&mut c).unwrap();
        verify(&pa);
        // Pages 0 and 2 (allocated before the cache) and 1 (the cache's
        // last allocation) stay allocated; 3 and 4 are free and no longer
        // scavenged.
        let ch = pa.chunk(page::<G>(0, 0)).unwrap();
        assert_eq!(ch.alloc.0[0], 0b111);
        assert_eq!(ch.scav.0[0] & 0b11000, 0);
    }
    for_geometries!(run);
}

/// Pad pages inside a cache's block, freed while the cache is out: the
/// flush accepts the cache (its scavenged bits for them are still true of
/// the chunk) and leaves them free and scavenged. Found by the
/// `pagealloc_ops` fuzz target, where the allocator refused the flush with
/// `BadCache` and the model (Go's flush sets those bits again) did not.
#[test]
fn flush_after_pad_pages_in_the_block_were_freed() {
    fn run<G: Geometry>() {
        let mut pa = crate::tests::harness::empty::<G>();
        pa.grow(page::<G>(0, 0), 2 * G::CHUNK_BYTES).unwrap();
        pa.pad(page::<G>(0, 44), 64).unwrap();
        let mut c = pa.alloc_to_cache();
        // Pages 0-43 are the cache's; 44-63 are pad pages, scavenged.
        assert_eq!(
            (c.base(), c.free_mask(), c.scav_mask()),
            (page::<G>(0, 0), (1 << 44) - 1, !0)
        );
        pa.free(page::<G>(0, 46), 6).unwrap();
        pa.flush_cache(&mut c).unwrap();
        verify(&pa);
        let ch = pa.chunk(page::<G>(0, 0)).unwrap();
        // Allocated: the pad pages still padded (44, 45, 52-107).
        assert_eq!(ch.alloc.0[0], 0b11 << 44 | !0 << 52);
        assert_eq!(ch.alloc.0[1], (1 << 44) - 1);
        // Everything in the first word is scavenged again.
        assert_eq!(ch.scav.0[0], !0);
    }
    for_geometries!(run);
}
