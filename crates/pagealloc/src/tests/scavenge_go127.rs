//! The scavenger, policy go127: each rule of the index as the trace
//! format's "Policy go127" section states it, one scenario per rule, run
//! through one `check`. Expected values are worked by hand from those rules
//! (comments show the arithmetic), never taken from running this code.

use std::format;

use super::harness::{build_with, config_with, for_geometries, page, verify, Ranges, P};
use crate::{Cursor, Error, Geometry, PageAlloc, ScavengePolicy};
use pageheap_arena::sim::SimOs;

const GO127: ScavengePolicy = ScavengePolicy::Go127;

/// A cursor or page as `(chunk, page, marked)`.
type Cur = Option<(usize, usize, bool)>;

/// One step of a scenario and what it must give.
#[derive(Clone, Copy, Debug)]
enum S {
    /// Grow chunks `[c, c + n)`.
    Grow(usize, usize),
    /// `setup` chunk `c` with these allocated ranges, nothing scavenged.
    Seed(usize, Ranges),
    /// Allocate `n` pages; they must start at page `.2` of chunk `.1`.
    Alloc(usize, usize, usize),
    /// Free `n` pages at page `.1` of chunk `.0`.
    Free(usize, usize, usize),
    /// Take a cache; it must hold `.0` pages.
    Cache(u32),
    /// Flush the cache.
    Flush,
    /// Forced scavenge of `.0` pages (`None`: everything); `.1` pages
    /// released.
    Force(Option<usize>, usize),
    /// Unforced scavenge, as `Force`.
    Bg(Option<usize>, usize),
    /// End the generation.
    NextGen,
    /// Chunk `.0`'s entry must be `inuse .1, last .2, free .3`.
    Entry(usize, usize, usize, bool),
    /// The state must be `gen .0, hwm .1, bg .2, force .3`.
    State(u64, Cur, Cur, Cur),
}

use S::*;

fn check<G: Geometry>(name: &str, steps: &[S]) {
    let mut pa = PageAlloc::<G, SimOs>::new(SimOs::new(), config_with(GO127)).expect("allocator");
    let mut cache = crate::PageCache::default();
    let bytes = |n: Option<usize>| n.map_or(usize::MAX, |n| n * G::PAGE_BYTES);
    let cur = |c: Cur| {
        c.map(|(c, p, marked)| Cursor {
            page: page::<G>(c, p),
            marked,
        })
    };
    for (k, &step) in steps.iter().enumerate() {
        let at = format!("{name}: step {k} {step:?}");
        match step {
            Grow(c, n) => pa.grow(page::<G>(c, 0), n * G::CHUNK_BYTES).expect(&at),
            Seed(c, alloc) => pa.seed_chunk(page::<G>(c, 0), alloc, &[]).expect(&at),
            Alloc(n, c, p) => {
                let a = pa.alloc(n).expect(&at).expect(&at);
                assert_eq!(a.base, page::<G>(c, p), "{at}");
            }
            Free(c, p, n) => pa.free(page::<G>(c, p), n).expect(&at),
            Cache(n) => {
                cache = pa.alloc_to_cache();
                assert_eq!(cache.free_mask().count_ones(), n, "{at}");
            }
            Flush => pa.flush_cache(&mut cache).expect(&at),
            Force(req, want) => {
                assert_eq!(
                    pa.scavenge(bytes(req)).expect(&at),
                    want * G::PAGE_BYTES,
                    "{at}"
                );
            }
            Bg(req, want) => {
                let got = pa.scavenge_unforced(bytes(req)).expect(&at);
                assert_eq!(got, want * G::PAGE_BYTES, "{at}");
            }
            NextGen => pa.next_gen(),
            Entry(c, inuse, last, free) => {
                let e = pa.index_entry(page::<G>(c, 0)).expect(&at);
                assert_eq!(
                    (e.in_use, e.in_use_at_gen_start, e.free),
                    (inuse, last, free),
                    "{at}"
                );
            }
            State(gen, hwm, bg, force) => {
                let s = pa.index_state().expect(&at);
                let hwm = hwm.map(|(c, p, _)| page::<G>(c, p));
                assert_eq!(
                    (s.gen, s.free_hwm, s.background, s.forced),
                    (gen, hwm, cur(bg), cur(force)),
                    "{at}"
                );
            }
        }
        verify(&pa);
    }
}

const CASES: &[(&str, &[S])] = &[
    (
        // An allocation counts its pages in each chunk it touches and
        // clears a full chunk's flag; a free subtracts, flags the chunk and
        // raises the high-water mark and the forced cursor (marked) to its
        // last page, never lowering them.
        "AllocFreeCount",
        &[
            Grow(0, 2),
            Alloc(600, 0, 0), // 512 in chunk 0, 88 in chunk 1
            Entry(0, P, 0, false),
            Entry(1, 88, 0, false),
            State(0, None, None, None),
            Free(0, 10, 5), // pages 0.10 ..= 0.14
            Entry(0, P - 5, 0, true),
            State(0, Some((0, 14, false)), None, Some((0, 14, true))),
            Free(1, 80, 8), // pages 1.80 ..= 1.87
            Entry(1, 80, 0, true),
            State(0, Some((1, 87, false)), None, Some((1, 87, true))),
            Free(0, 100, 1), // lower: nothing moves
            State(0, Some((1, 87, false)), None, Some((1, 87, true))),
        ],
    ),
    (
        // `next_gen`: last := inuse, the background cursor rises to the
        // high-water mark (marked), which is forgotten. An unforced scavenge
        // sees nothing before it. Forced and unforced both search from the
        // cursor's word down; the huge-page rule applies.
        "GenerationsAndTheBackgroundCursor",
        &[
            Grow(0, 1),
            Alloc(P, 0, 0),
            Free(0, 0, P),
            Entry(0, 0, 0, true),
            Bg(None, 0), // no background cursor yet
            State(0, Some((0, 511, false)), None, Some((0, 511, true))),
            NextGen,
            State(1, None, Some((0, 511, true)), Some((0, 511, true))),
            Entry(0, 0, 0, true),
            // One page from 511: end 512, run 512; 512 is a multiple of 256
            // in [511, 512] and floor(511/256)*256 = 256 >= 512 - 512, so
            // the release grows down to 256: 256 pages.
            Bg(Some(1), 256),
            // Then [0, 256) whole (256 pages asked for at most), then a
            // look that finds nothing clears the flag; the marked cursor
            // stays.
            Bg(None, 256),
            Entry(0, 0, 0, false),
            State(1, None, Some((0, 511, true)), Some((0, 511, true))),
            Force(None, 0), // flag clear: nothing eligible
        ],
    ),
    (
        // Density: 496 of 512 in use now, or at the generation's start,
        // keeps an unforced scavenge away; a forced one goes anyway.
        "DensityNow",
        &[
            Grow(0, 1),
            Alloc(P, 0, 0),
            Free(0, 0, 16), // inuse 496
            NextGen,        // last 496, bg at 0.15 marked
            Entry(0, 496, 496, true),
            Bg(None, 0),
            // From 0.15's word (pages below 64): run [0, 16), all 16.
            Force(None, 16),
            Entry(0, 496, 496, false),
        ],
    ),
    (
        "DensityAtGenerationStart",
        &[
            Grow(0, 1),
            Alloc(P, 0, 0),
            Free(0, 0, 16), // inuse 496
            NextGen,        // last 496, bg 0.15*
            Alloc(16, 0, 0),
            Entry(0, P, 496, false), // full: flag cleared
            Free(0, 0, 32),          // inuse 480, hwm and force 0.31
            Entry(0, 480, 496, true),
            Bg(None, 0), // last 496: dense
            NextGen,     // last 480; bg rises to 0.31*
            State(2, None, Some((0, 31, true)), Some((0, 31, true))),
            Bg(None, 32), // [0, 32) from 0.31's word
        ],
    ),
    (
        // The cursor moves to page 511 of a lower chunk, unmarked; when
        // nothing is eligible an unmarked cursor is dropped.
        "CursorMovesDownAndIsDropped",
        &[
            Grow(0, 2),
            Alloc(2 * P, 0, 0),
            Free(0, 0, 1),
            Free(1, 0, 1),
            State(0, Some((1, 0, false)), None, Some((1, 0, true))),
            Force(Some(1), 1), // chunk 1 from its cursor: page 1.0
            State(0, Some((1, 0, false)), None, Some((1, 0, true))),
            // Chunk 1 finds nothing (flag cleared); chunk 0: cursor 0.511
            // unmarked, page 0.0 released; chunk 0 then finds nothing; no
            // chunk is left and the unmarked cursor goes.
            Force(None, 1),
            State(0, Some((1, 0, false)), None, None),
            Entry(0, P - 1, 0, false),
            Entry(1, P - 1, 0, false),
            Force(None, 0),
        ],
    ),
    (
        // Only the cursor's word and below are searched: pages freed above
        // it stay unscavenged and the chunk loses its flag until a free.
        "SearchFromTheCursorsWord",
        &[
            Grow(0, 1),
            Alloc(400, 0, 0),
            Free(0, 5, 3),    // inuse 397, hwm 0.7
            NextGen,          // last 397, bg 0.7*
            Free(0, 300, 10), // inuse 387; hwm and force 0.309
            State(
                1,
                Some((0, 309, false)),
                Some((0, 7, true)),
                Some((0, 309, true)),
            ),
            // From 0.7's word: [5, 8); then nothing below page 64: flag
            // cleared though [300, 310) is free and dirty.
            Bg(None, 3),
            Entry(0, 387, 397, false),
            Force(None, 0), // flag clear
            Free(0, 0, 1),  // flags again; force stays at 0.309
            State(
                1,
                Some((0, 309, false)),
                Some((0, 7, true)),
                Some((0, 309, true)),
            ),
            Force(None, 11), // [300, 310), then [0, 1)
        ],
    ),
    (
        // A cache take counts the pages it takes; a flush is a free of the
        // pages still cached (highest one moves the pointers); flushing an
        // empty cache does nothing.
        "CacheAndFlush",
        &[
            Grow(0, 1),
            Alloc(70, 0, 0),
            Free(0, 3, 2),
            Free(0, 60, 1), // inuse 67, hwm and force 0.60
            Cache(3),       // the block of page 3: pages 3, 4 and 60
            Entry(0, 70, 0, true),
            NextGen, // last 70, bg 0.60*, hwm forgotten
            Flush,   // a free of 3 pages, the highest 0.60
            Entry(0, 67, 70, true),
            State(
                1,
                Some((0, 60, false)),
                Some((0, 60, true)),
                Some((0, 60, true)),
            ),
            Flush,
            Entry(0, 67, 70, true),
        ],
    ),
    (
        // A setup chunk is grown, allocated and freed whole (flagged; its
        // page 511 moves the pointers), then its allocated pages counted.
        "Setup",
        &[
            Seed(0, &[(0, 100)]),
            Entry(0, 100, 0, true),
            State(0, Some((0, 511, false)), None, Some((0, 511, true))),
            Seed(1, &[(0, P)]),
            Entry(1, P, 0, false),
            State(0, Some((1, 511, false)), None, Some((1, 511, true))),
            // The forced scavenge skips full chunk 1 (unflagged) and works
            // chunk 0 from page 511: [100, 512), 412 pages.
            Force(None, 412),
        ],
    ),
];

#[test]
fn go127_cases() {
    fn run<G: Geometry>() {
        for &(name, steps) in CASES {
            check::<G>(name, steps);
        }
    }
    for_geometries!(run);
}

/// `pad`: allocated and scavenged, counted as an allocation; a cache over
/// the block reports the pad pages' scavenged bits; a second pad is an
/// error.
#[test]
fn go127_pad() {
    fn run<G: Geometry>() {
        let mut pa = build_with::<G>(GO127, &[], &[]);
        pa.grow(page::<G>(0, 0), G::CHUNK_BYTES).unwrap();
        pa.pad(page::<G>(0, 0), 143).unwrap();
        let e = pa.index_entry(page::<G>(0, 0)).unwrap();
        assert_eq!((e.in_use, e.free), (143, false));
        assert_eq!(pa.stats().pages_scavenged, P - 143);
        let a = pa.alloc(2).unwrap().unwrap();
        assert_eq!(
            (a.base, a.scavenged),
            (page::<G>(0, 143), 2 * G::PAGE_BYTES)
        );
        let c = pa.alloc_to_cache();
        // Block 128..192: pad 128..=142 (bits 0..=14), allocated 143, 144,
        // free and scavenged 145..=191 (bits 17..=63).
        assert_eq!(c.base(), page::<G>(0, 128));
        assert_eq!(c.free_mask(), 0xffff_ffff_fffe_0000);
        assert_eq!(c.scav_mask(), 0xffff_ffff_fffe_7fff);
        assert_eq!(pa.index_entry(page::<G>(0, 0)).unwrap().in_use, 192);
        verify(&pa);
        assert!(matches!(
            pa.pad(page::<G>(0, 300), 1),
            Err(Error::AlreadyPadded)
        ));
        // Freeing pad pages makes them free, scavenged pages.
        pa.free(page::<G>(0, 0), 10).unwrap();
        verify(&pa);
    }
    for_geometries!(run);
}

/// The entries' generation tag is 32 bits: when the generation's low bits
/// wrap to 0, an entry last written in generation 0 must not pass for a
/// current one.
#[test]
fn go127_generation_tag_wraps() {
    fn run<G: Geometry>() {
        let mut pa = build_with::<G>(GO127, &[], &[]);
        pa.grow(page::<G>(0, 0), G::CHUNK_BYTES).unwrap();
        pa.alloc(100).unwrap().unwrap(); // written in generation 0
        pa.set_generation(u64::from(u32::MAX));
        pa.next_gen(); // generation 2^32: low bits 0 again
        let e = pa.index_entry(page::<G>(0, 0)).unwrap();
        // The generation began with 100 pages in use.
        assert_eq!((e.in_use, e.in_use_at_gen_start), (100, 100));
        verify(&pa);
    }
    for_geometries!(run);
}

/// Detaching a run for release outside a lock and reattaching it gives
/// exactly what an in-place scavenge of the same size gives, under both
/// policies; the run is allocated meanwhile, and a second detach or a
/// foreign run is refused.
#[test]
fn detach_and_reattach_equal_a_scavenge() {
    fn run<G: Geometry>() {
        for policy in [ScavengePolicy::Go119, GO127] {
            let setup = |pa: &mut PageAlloc<G, SimOs>| {
                pa.grow(page::<G>(0, 0), 2 * G::CHUNK_BYTES).unwrap();
                pa.alloc(2 * P).unwrap().unwrap();
                pa.free(page::<G>(0, 10), 40).unwrap();
                pa.free(page::<G>(1, 100), 20).unwrap();
                pa.next_gen();
            };
            let mut a = build_with::<G>(policy, &[], &[]);
            let mut b = build_with::<G>(policy, &[], &[]);
            setup(&mut a);
            setup(&mut b);
            let quantum = 8 * G::PAGE_BYTES;
            let want = a.scavenge_unforced(quantum).unwrap();
            let d = b
                .detach_for_release(quantum, false)
                .expect("a run to release");
            assert_eq!(d.n_pages() * G::PAGE_BYTES, want);
            // The top of the highest freed run: pages 1.112 ..= 1.119.
            assert_eq!(d.base(), page::<G>(1, 112));
            assert_eq!(b.stats().pages_in_use, 2 * P - 60 + 8);
            verify(&b);
            assert!(
                b.detach_for_release(quantum, false).is_none(),
                "one at a time"
            );
            b.reattach(d, true).unwrap();
            verify(&b);
            for c in 0..2 {
                let (ca, cb) = (
                    a.chunk(page::<G>(c, 0)).unwrap(),
                    b.chunk(page::<G>(c, 0)).unwrap(),
                );
                assert_eq!(ca, cb, "{policy:?}: chunk {c}");
            }
            assert_eq!(a.stats(), b.stats());
            assert_eq!(a.index_state(), b.index_state());
            // A run this allocator did not detach is an error.
            let d = b.detach_for_release(quantum, false).unwrap();
            let mut c = build_with::<G>(policy, &[], &[]);
            setup(&mut c);
            assert!(matches!(
                c.reattach(d, true),
                Err(Error::BadDetached { .. })
            ));
        }
    }
    for_geometries!(run);
}
