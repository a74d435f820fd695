//! The public API over the simulated OS: allocation, freeing, errors,
//! zeroing, alignment, caches, release, the memory limit, and cleanup.

use std::sync::Arc;

use pageheap::{Error, ReleaseMode, Span, SystemOs, CACHE_MAX_PAGES, CHUNK_BYTES, PAGE_BYTES};
use pageheap_arena::sim::SimOs;

use crate::{check_heap, quiet, sim_heap};

/// Writes a byte to every page of `span` through the simulated OS, which
/// fails if any page is not Ready.
fn touch(os: &SimOs, span: &Span, byte: u8) {
    for p in 0..span.n_pages() {
        os.write(span.base() + p * PAGE_BYTES, &[byte; 16])
            .expect("span memory is Ready");
    }
}

#[test]
fn alloc_and_free_keep_everything_consistent() {
    let (os, heap) = sim_heap(quiet());
    let mut spans = Vec::new();
    for n in [1, 3, CACHE_MAX_PAGES - 1, CACHE_MAX_PAGES, 600, 2, 1, 64] {
        let s = heap.alloc(n).expect("alloc");
        assert_eq!(s.n_pages(), n);
        assert_eq!(s.base() % PAGE_BYTES, 0);
        touch(&os, &s, 0x5a);
        spans.push(s);
        check_heap(&heap, &os, &spans.iter().collect::<Vec<_>>());
    }
    // Disjoint.
    let mut ranges: Vec<_> = spans.iter().map(|s| (s.base(), s.end())).collect();
    ranges.sort_unstable();
    assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "{ranges:x?}");
    let s = heap.stats();
    // 600 pages need two chunks at least.
    assert!(s.heap_sys >= 2 * CHUNK_BYTES);
    while let Some(span) = spans.pop() {
        heap.free(span).expect("free");
        check_heap(&heap, &os, &spans.iter().collect::<Vec<_>>());
    }
    heap.flush_thread_cache();
    let s = heap.stats();
    assert_eq!(s.heap_inuse, 0, "{s:#?}");
    assert_eq!(s.spans_allocated, 8);
    assert_eq!(s.spans_freed, 8);
    check_heap(&heap, &os, &[]);
    drop(heap);
    assert_eq!(os.reservations(), vec![], "heap left reservations behind");
    os.assert_clean();
}

/// Rebuilds a span from raw parts for this file's bad-input checks.
fn forged(base: usize, n_pages: usize) -> Span {
    // SAFETY:
    // - Every span this file rebuilds is either one of its own that it
    //   gives up (nothing touches the pages afterwards) or one the heap
    //   must refuse (pages free or outside it); no page memory is used.
    unsafe { Span::from_raw_parts(base, n_pages) }
}

#[test]
fn bad_requests_are_errors() {
    let (os, heap) = sim_heap(quiet());
    assert!(matches!(heap.alloc(0), Err(Error::ZeroPages)));
    assert!(matches!(
        heap.alloc(usize::MAX / 2),
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        heap.alloc_aligned(1, 3 * PAGE_BYTES),
        Err(Error::BadAlign { .. })
    ));

    let big = heap.alloc(20).expect("alloc");
    let (base, n) = big.into_raw_parts();
    heap.free(forged(base, n)).expect("first free");
    // Double free: the pages are free in the page allocator.
    assert!(matches!(
        heap.free(forged(base, n)),
        Err(Error::PageAlloc(_))
    ));
    // Outside the heap.
    assert!(matches!(
        heap.free(forged(PAGE_BYTES, 1)),
        Err(Error::PageAlloc(_))
    ));

    // Pages still in this thread's cache were never handed out.
    let one = heap.alloc(1).expect("alloc");
    let next = one.base() + PAGE_BYTES;
    assert!(matches!(
        heap.free(forged(next, 1)),
        Err(Error::NotAllocated { .. })
    ));
    // A double free of a cached page goes back to... the page allocator,
    // which knows the page as allocated (the cache owns it): the cache check
    // catches it first.
    let (b, n) = one.into_raw_parts();
    heap.free(forged(b, n)).expect("free");
    assert!(heap.free(forged(b, n)).is_err());
    check_heap(&heap, &os, &[]);
    drop(heap);
    assert_eq!(os.reservations(), vec![]);
}

#[test]
fn needs_zero_follows_release_mode() {
    for (mode, zero_after_release) in [(ReleaseMode::DontNeed, true), (ReleaseMode::Free, false)] {
        let (os, heap) = sim_heap(quiet().with_release_mode(mode));
        let n = 40; // above the cache threshold: the locked path
        let a = heap.alloc(n).expect("alloc");
        // Fresh memory is zero, but under `Free` the heap cannot tell fresh
        // pages from released ones, so it only vouches for `DontNeed`.
        assert_eq!(a.needs_zero(), !zero_after_release, "{mode:?}");
        touch(&os, &a, 1);
        let base = a.base();
        heap.free(a).expect("free");
        let b = heap.alloc(n).expect("alloc");
        assert_eq!(b.base(), base, "first fit reuses the pages");
        assert!(b.needs_zero(), "reused without release: old data");
        heap.free(b).expect("free");
        heap.release_all().expect("release");
        let c = heap.alloc(n).expect("alloc");
        assert_eq!(c.base(), base);
        assert_eq!(c.needs_zero(), !zero_after_release, "{mode:?}");
        // Verify the claim against the memory itself.
        let mut buf = [0xffu8; 16];
        os.read(c.base(), &mut buf).expect("Ready");
        if !c.needs_zero() {
            assert_eq!(buf, [0; 16]);
        }
        heap.free(c).expect("free");
        check_heap(&heap, &os, &[]);
    }
}

#[test]
fn large_alignment_trims_padding() {
    let (os, heap) = sim_heap(quiet());
    let filler = heap.alloc(17).expect("alloc");
    for align in [2 * PAGE_BYTES, 1 << 20, CHUNK_BYTES] {
        let s = heap.alloc_aligned(5, align).expect("aligned alloc");
        assert_eq!(s.base() % align, 0);
        assert_eq!(s.n_pages(), 5);
        touch(&os, &s, 2);
        check_heap(&heap, &os, &[&filler, &s]);
        let inuse = heap.stats().heap_inuse;
        heap.free(s).expect("free");
        // Only the 5 pages were held: the padding went back at once.
        assert_eq!(inuse - heap.stats().heap_inuse, 5 * PAGE_BYTES);
    }
    heap.free(filler).expect("free");
    check_heap(&heap, &os, &[]);
}

/// Pages the page allocator counts allocated (spans plus cache blocks).
fn pa_pages_in_use(heap: &crate::SimHeap) -> usize {
    heap.with_page_alloc(|pa| pa.stats().pages_in_use)
}

#[test]
fn caches_flush_on_release_all_and_thread_exit() {
    let (os, heap) = sim_heap(quiet());
    let heap = Arc::new(heap);
    // This thread: one page out of a whole 64-page cache block. The other
    // 63 pages are fresh (released) memory parked in the cache.
    let s = heap.alloc(1).expect("alloc");
    assert_eq!(pa_pages_in_use(&heap), 64, "a whole cache block is taken");
    let st = heap.stats();
    assert_eq!(st.heap_inuse, PAGE_BYTES, "{st:#?}");
    assert_eq!(st.heap_released, st.heap_sys - PAGE_BYTES, "{st:#?}");
    heap.free(s).expect("free");
    heap.release_all().expect("release");
    assert_eq!(
        pa_pages_in_use(&heap),
        0,
        "release_all flushed this thread's cache"
    );
    let st = heap.stats();
    assert_eq!((st.heap_inuse, st.heap_free), (0, 0), "{st:#?}");
    check_heap(&heap, &os, &[]);

    // Another thread: its cache is handed back when it exits.
    let h = Arc::clone(&heap);
    std::thread::spawn(move || {
        let s = h.alloc(2).expect("alloc");
        let base = s.base();
        h.free(s).expect("free");
        assert_eq!(
            pa_pages_in_use(&h),
            64,
            "the freed span went back into the thread's cache block"
        );
        // The cache hands the same pages out again, without the lock.
        let refills = h.stats().cache_refills;
        let again = h.alloc(2).expect("alloc");
        assert_eq!(again.base(), base);
        assert_eq!(h.stats().cache_refills, refills);
        h.free(again).expect("free");
    })
    .join()
    .expect("thread");
    assert_eq!(pa_pages_in_use(&heap), 0);
    assert_eq!(heap.stats().heap_inuse, 0);
    check_heap(&heap, &os, &[]);
}

#[test]
fn other_threads_flush_after_release_all_epoch() {
    let (os, heap) = sim_heap(quiet());
    let heap = Arc::new(heap);
    let (to_worker, from_main) = std::sync::mpsc::channel::<()>();
    let (to_main, from_worker) = std::sync::mpsc::channel::<usize>();
    let h = Arc::clone(&heap);
    let worker = std::thread::spawn(move || {
        // Fill this thread's cache, keep one page.
        let keep = h.alloc(1).expect("alloc");
        to_main.send(keep.base()).expect("send");
        from_main.recv().expect("recv");
        // After release_all: this allocation flushes the old block and
        // refills.
        let s = h.alloc(1).expect("alloc");
        to_main.send(s.base()).expect("send");
        from_main.recv().expect("recv");
        h.free(s).expect("free");
        h.free(keep).expect("free");
    });
    let first = from_worker.recv().expect("recv");
    assert_eq!(heap.stats().cache_refills, 1);
    heap.release_all().expect("release"); // cannot reach the worker's cache
    assert_eq!(pa_pages_in_use(&heap), 64);
    to_worker.send(()).expect("send");
    let second = from_worker.recv().expect("recv");
    // The worker noticed the new epoch, flushed and refilled (from the same
    // block, whose lowest free page is the one after `keep`).
    assert_eq!(heap.stats().cache_refills, 2);
    assert_eq!(second, first + PAGE_BYTES);
    assert_eq!(pa_pages_in_use(&heap), 64);
    to_worker.send(()).expect("send");
    worker.join().expect("worker");
    assert_eq!(pa_pages_in_use(&heap), 0);
    check_heap(&heap, &os, &[]);
}

#[test]
fn grows_across_arenas_and_frees_them() {
    let (os, heap) = sim_heap(quiet());
    // 4 MiB arenas: each of these spans needs a chunk of its own arena.
    let spans: Vec<_> = (0..5).map(|_| heap.alloc(400).expect("alloc")).collect();
    let arenas = heap.arenas();
    assert!(arenas.len() >= 5, "{arenas:x?}");
    assert!(arenas
        .iter()
        .all(|&(b, l)| b % (4 << 20) == 0 && l == 4 << 20));
    let s = heap.stats();
    assert_eq!(s.arena_reserved, arenas.len() * (4 << 20));
    assert_eq!(s.grows, 5);
    check_heap(&heap, &os, &spans.iter().collect::<Vec<_>>());
    for sp in spans {
        heap.free(sp).expect("free");
    }
    check_heap(&heap, &os, &[]);
    drop(heap);
    assert_eq!(os.reservations(), vec![]);
    os.assert_clean();
}

#[test]
fn scavenge_releases_highest_first_and_memory_limit_holds() {
    let (os, heap) = sim_heap(quiet());
    let spans: Vec<_> = (0..8).map(|_| heap.alloc(256).expect("alloc")).collect();
    for s in &spans {
        touch(&os, s, 3);
    }
    for s in spans {
        heap.free(s).expect("free");
    }
    let before = heap.stats();
    let got = heap.scavenge(1 << 20).expect("scavenge");
    assert!(got >= 1 << 20, "released {got}");
    let after = heap.stats();
    assert_eq!(after.heap_released, before.heap_released + got);
    assert_eq!(after.released_explicit, got);
    check_heap(&heap, &os, &[]);

    // A limit below what is Ready: released at once, down to 95%.
    let ready = heap.stats().mapped_ready;
    let limit = ready / 2;
    heap.set_memory_limit(limit).expect("limit");
    let s = heap.stats();
    assert!(s.mapped_ready <= limit / 100 * 95, "{s:#?}");
    assert_eq!(s.memory_limit, limit);
    check_heap(&heap, &os, &[]);
    // Allocations keep it under the limit while there is free memory to
    // release.
    let mut live = Vec::new();
    for i in 0..40 {
        let s = heap.alloc(20 + i).expect("alloc");
        touch(&os, &s, 4);
        live.push(s);
        let st = heap.stats();
        if st.heap_inuse + st.metadata <= limit {
            assert!(st.mapped_ready <= limit, "step {i}: {st:#?}");
        }
        check_heap(&heap, &os, &live.iter().collect::<Vec<_>>());
    }
    assert!(heap.stats().released_eager > 0);
    for s in live {
        heap.free(s).expect("free");
    }
}

#[test]
fn re_exports_are_usable() {
    // The facade re-exports the OS type and the release mode it configures.
    let os = SystemOs::new();
    assert!(pageheap_arena::Os::page_size(&os).is_power_of_two());
    assert_eq!(
        pageheap::Config::DEFAULT.release_mode,
        ReleaseMode::DontNeed
    );
    assert_eq!(PAGE_BYTES, 8192);
    assert_eq!(CHUNK_BYTES, 4 << 20);
}

/// Ranges reported to the grow callback of the test below.
static GROWN: std::sync::Mutex<Vec<(usize, usize)>> = std::sync::Mutex::new(Vec::new());

fn record_grow(base: usize, len: usize) {
    GROWN.lock().unwrap().push((base, len));
}

#[test]
fn the_grow_callback_sees_every_range_handed_to_the_heap() {
    let (_os, heap) = sim_heap(quiet().with_on_grow(record_grow));
    let spans: Vec<Span> = (0..3).map(|_| heap.alloc(600).expect("alloc")).collect();
    let grown = GROWN.lock().unwrap().clone();
    assert!(grown.len() >= 2, "three 600-page spans need several grows");
    let total: usize = grown.iter().map(|r| r.1).sum();
    assert_eq!(
        total,
        heap.stats().heap_sys,
        "every grown byte reported once"
    );
    for s in &spans {
        assert!(
            grown
                .iter()
                .any(|&(b, l)| b <= s.base() && s.end() <= b + l),
            "span {:#x} lies in a reported range",
            s.base()
        );
    }
    for s in spans {
        heap.free(s).unwrap();
    }
}
