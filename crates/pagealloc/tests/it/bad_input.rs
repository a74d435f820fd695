//! Every kind of bad input is an error and leaves the allocator exactly as
//! it was; the allocator keeps working afterwards.

use pageheap_alloc::{Error, Geometry, Go64, PageCache, Pages4K};

use crate::snapshot::{new_alloc, page, snapshot, CHUNK, PAGE};

/// Address-space top for the 48-bit geometry.
const TOP: usize = 1 << 48;

/// A heap of chunks 0..2 and 4, with pages 0..10 of chunk 0 allocated and
/// a cache holding the next block taken.
fn setup() -> (crate::snapshot::Sim, PageCache) {
    let mut pa = new_alloc();
    pa.grow(page(0, 0), 2 * CHUNK).unwrap();
    pa.grow(page(4, 0), CHUNK).unwrap();
    assert_eq!(pa.alloc(10).unwrap().unwrap().base, page(0, 0));
    pa.alloc_range(page(1, 100), 50).unwrap();
    let cache = pa.alloc_to_cache();
    assert_eq!(cache.base(), page(0, 0));
    (pa, cache)
}

/// Runs `op` and checks it fails as `want` says, with nothing changed.
fn check<T: std::fmt::Debug>(
    name: &str,
    op: impl FnOnce(&mut crate::snapshot::Sim) -> Result<T, Error>,
    want: impl Fn(&Error) -> bool,
) {
    let (mut pa, _cache) = setup();
    let before = snapshot(&pa);
    let got = op(&mut pa);
    match &got {
        Err(e) => assert!(want(e), "{name}: unexpected error {e:?}"),
        Ok(v) => panic!("{name}: accepted, returned {v:?}"),
    }
    assert_eq!(snapshot(&pa), before, "{name}: state changed");
    // Still usable: the next allocation is the first free run.
    assert_eq!(pa.alloc(64).unwrap().unwrap().base, page(0, 64), "{name}");
    pa.os.assert_clean();
}

#[test]
fn bad_grows() {
    use Error::*;
    check(
        "zero",
        |pa| pa.grow(page(8, 0), 0),
        |e| matches!(e, ZeroSize),
    );
    check(
        "misaligned base",
        |pa| pa.grow(page(8, 1), CHUNK),
        |e| matches!(e, Misaligned { .. }),
    );
    check(
        "misaligned size",
        |pa| pa.grow(page(8, 0), CHUNK + PAGE),
        |e| matches!(e, MisalignedSize { .. }),
    );
    check(
        "same chunk",
        |pa| pa.grow(page(0, 0), CHUNK),
        |e| matches!(e, Overlap { .. }),
    );
    check(
        "overlaps the end",
        |pa| pa.grow(page(1, 0), 2 * CHUNK),
        |e| matches!(e, Overlap { .. }),
    );
    check(
        "covers a range",
        |pa| pa.grow(page(3, 0), 3 * CHUNK),
        |e| matches!(e, Overlap { .. }),
    );
    check(
        "ends in a range",
        |pa| pa.grow(page(3, 0) - 8 * CHUNK, 10 * CHUNK),
        |e| matches!(e, Overlap { .. }),
    );
    check(
        "past the top",
        |pa| pa.grow(TOP - CHUNK, 2 * CHUNK),
        |e| matches!(e, OutOfAddressSpace { .. }),
    );
    check(
        "above the top",
        |pa| pa.grow(TOP, CHUNK),
        |e| matches!(e, OutOfAddressSpace { .. }),
    );
    check(
        "huge size",
        |pa| pa.grow(page(8, 0), usize::MAX & !(CHUNK - 1)),
        |e| matches!(e, OutOfAddressSpace { .. }),
    );
}

#[test]
fn bad_allocs() {
    use Error::*;
    check("zero pages", |pa| pa.alloc(0), |e| matches!(e, ZeroSize));
    check(
        "usize::MAX pages",
        |pa| pa.alloc(usize::MAX),
        |e| matches!(e, OutOfAddressSpace { .. }),
    );
    check(
        "more pages than the space",
        |pa| pa.alloc((TOP / PAGE) + 1),
        |e| matches!(e, OutOfAddressSpace { .. }),
    );
}

#[test]
fn bad_frees() {
    use Error::*;
    check(
        "zero pages",
        |pa| pa.free(page(0, 0), 0),
        |e| matches!(e, ZeroSize),
    );
    check(
        "misaligned",
        |pa| pa.free(page(0, 0) + 8, 1),
        |e| matches!(e, Misaligned { .. }),
    );
    check(
        "free page",
        |pa| pa.free(page(0, 200), 1),
        |e| matches!(e, NotAllocated { addr } if *addr == page(0, 200)),
    );
    check(
        "partly free",
        |pa| pa.free(page(1, 140), 20),
        |e| matches!(e, NotAllocated { addr } if *addr == page(1, 150)),
    );
    check(
        "cached pages are allocated, the rest not",
        |pa| pa.free(page(0, 60), 10),
        |e| matches!(e, NotAllocated { addr } if *addr == page(0, 64)),
    );
    check(
        "never grown",
        |pa| pa.free(page(3, 0), 1),
        |e| matches!(e, NotInHeap { .. }),
    );
    check(
        "far from the heap",
        |pa| pa.free(page(0x10_0000, 0), 1),
        |e| matches!(e, NotInHeap { .. }),
    );
    check(
        "into a chunk never grown",
        |pa| pa.free(page(1, 100), 600),
        |e| matches!(e, NotAllocated { .. } | NotInHeap { .. }),
    );
    check(
        "overflowing count",
        |pa| pa.free(page(0, 0), usize::MAX),
        |e| matches!(e, OutOfAddressSpace { .. }),
    );
    check(
        "past the top",
        |pa| pa.free(TOP - PAGE, 2),
        |e| matches!(e, OutOfAddressSpace { .. }),
    );
}

#[test]
fn bad_alloc_ranges() {
    use Error::*;
    check(
        "zero pages",
        |pa| pa.alloc_range(page(0, 200), 0),
        |e| matches!(e, ZeroSize),
    );
    check(
        "misaligned",
        |pa| pa.alloc_range(page(0, 200) + 1, 1),
        |e| matches!(e, Misaligned { .. }),
    );
    check(
        "allocated",
        |pa| pa.alloc_range(page(1, 140), 20),
        |e| matches!(e, AlreadyAllocated { addr } if *addr == page(1, 140)),
    );
    check(
        "never grown",
        |pa| pa.alloc_range(page(3, 0), 1),
        |e| matches!(e, NotInHeap { .. }),
    );
    check(
        "runs out of the heap",
        |pa| pa.alloc_range(page(1, 500), 20),
        |e| matches!(e, NotInHeap { .. }),
    );
    check(
        "overflowing count",
        |pa| pa.alloc_range(page(0, 200), usize::MAX / 2),
        |e| matches!(e, OutOfAddressSpace { .. }),
    );
}

/// A scavenged bit outside a flushed cache's free mask (a pad page's when
/// the cache was taken, stale if the page was freed and allocated again,
/// or forged) is not applied: the page in use stays unscavenged.
#[test]
fn flush_ignores_scavenged_bits_outside_the_free_mask() {
    let (mut pa, _cache) = setup();
    // Pages 0 and 1 are allocated (the first allocation); the cache says it
    // owns page 1 and that page 0 is scavenged.
    pa.flush_cache(&mut PageCache::new::<Go64>(page(0, 0), 0b10, 0b11))
        .expect("flush");
    let c = pa.chunk(page(0, 0)).expect("chunk 0");
    assert_eq!(
        c.alloc.0[0] & 0b11,
        0b01,
        "page 1 freed, page 0 still allocated"
    );
    assert_eq!(c.scav.0[0] & 0b11, 0b10, "page 1 scavenged, page 0 not");
}

#[test]
fn bad_flushes() {
    use Error::*;
    check(
        "other page size",
        |pa| pa.flush_cache(&mut PageCache::new::<Pages4K>(page(0, 0), 1, 0)),
        |e| matches!(e, BadCache { .. }),
    );
    check(
        "misaligned block",
        |pa| pa.flush_cache(&mut PageCache::new::<Go64>(page(0, 1), 1, 0)),
        |e| matches!(e, Misaligned { .. }),
    );
    check(
        "free pages",
        |pa| pa.flush_cache(&mut PageCache::new::<Go64>(page(0, 128), 1, 0)),
        |e| matches!(e, NotAllocated { .. }),
    );
    check(
        "never grown",
        |pa| pa.flush_cache(&mut PageCache::new::<Go64>(page(3, 0), 1, 0)),
        |e| matches!(e, NotInHeap { .. }),
    );
    check(
        "no chunk map block",
        |pa| pa.flush_cache(&mut PageCache::new::<Go64>(page(0x100_0000, 0), 1, 0)),
        |e| matches!(e, NotInHeap { .. }),
    );
}

#[test]
fn bad_seeds() {
    use Error::*;
    check(
        "range past the chunk",
        |pa| pa.seed_chunk(page(8, 0), &[(500, 13)], &[]),
        |e| {
            matches!(
                e,
                BadPageRange {
                    index: 500,
                    count: 13
                }
            )
        },
    );
    check(
        "overflowing range",
        |pa| pa.seed_chunk(page(8, 0), &[], &[(usize::MAX, 2)]),
        |e| matches!(e, BadPageRange { .. }),
    );
    check(
        "grown chunk",
        |pa| pa.seed_chunk(page(0, 0), &[], &[]),
        |e| matches!(e, Overlap { .. }),
    );
    check(
        "misaligned chunk",
        |pa| pa.seed_chunk(page(8, 3), &[], &[]),
        |e| matches!(e, Misaligned { .. }),
    );
}

/// Queries with bad arguments answer `None`, not garbage.
#[test]
fn bad_queries() {
    let (pa, _) = setup();
    assert!(pa.chunk(page(0, 1)).is_none(), "not a chunk base");
    assert!(pa.chunk(page(3, 0)).is_none(), "never grown");
    assert!(pa.chunk(TOP).is_none(), "outside the space");
    assert!(pa.chunk(page(0, 0)).is_some());
    let ins = pa.inspect();
    assert!(ins.chunk(Go64::chunk_index(page(3, 0))).is_none());
    assert!(ins.chunk(usize::MAX).is_none());
    assert!(!ins.scav_marked(usize::MAX));
    assert_eq!(ins.summary(4, usize::MAX), None);
}

/// A double free fails and changes nothing, including the scavenger's mark
/// the first free set.
#[test]
fn double_free() {
    let (mut pa, _) = setup();
    pa.free(page(1, 100), 1).unwrap();
    let before = snapshot(&pa);
    let r = pa.free(page(1, 100), 1);
    assert!(
        matches!(r, Err(Error::NotAllocated { addr }) if addr == page(1, 100)),
        "{r:?}"
    );
    assert_eq!(snapshot(&pa), before);
    let r = pa.free(page(1, 100), 2);
    assert!(
        matches!(r, Err(Error::NotAllocated { addr }) if addr == page(1, 100)),
        "{r:?}"
    );
    let r = pa.free(page(1, 99), 2);
    assert!(
        matches!(r, Err(Error::NotAllocated { addr }) if addr == page(1, 99)),
        "{r:?}"
    );
    assert_eq!(snapshot(&pa), before);
}

/// Flushing a copy of an already flushed cache: its pages are free by
/// then, so the flush fails, changes nothing and keeps the copy.
#[test]
fn double_flush() {
    let (mut pa, mut c) = setup();
    let mut copy = c;
    pa.flush_cache(&mut c).unwrap();
    assert!(c.is_empty());
    let before = snapshot(&pa);
    let r = pa.flush_cache(&mut copy);
    assert!(matches!(r, Err(Error::NotAllocated { .. })), "{r:?}");
    assert_eq!(snapshot(&pa), before);
    assert!(!copy.is_empty(), "a rejected flush keeps the cache");
    // Flushing an empty cache is fine and does nothing.
    pa.flush_cache(&mut c).unwrap();
    assert_eq!(snapshot(&pa), before);
}
