//! Fault injection: for a fixed workload over the simulated OS, fail the
//! k-th OS call for every k in turn. Each run must succeed or return typed
//! errors, leave the heap consistent, keep working once faults are off, and
//! leave no reservation behind after drop.

use std::sync::Arc;

use pageheap::{Heap, Span, PAGE_BYTES};
use pageheap_arena::sim::{Faults, SimOs};

use crate::{check_heap, quiet, SimHeap};

/// The tag a span carries at both ends while it is live.
fn tag(s: &Span) -> [u8; 8] {
    (s.base() as u64 ^ 0xfa17_0000_0000_0000 ^ s.n_pages() as u64).to_le_bytes()
}

/// An error an OS fault may surface as: the OS's own, or the page
/// allocator's report of it.
fn is_os_error(e: &pageheap::Error) -> bool {
    matches!(
        e,
        pageheap::Error::Os(_) | pageheap::Error::PageAlloc(pageheap_alloc::Error::Os(_))
    )
}

/// The fixed workload; returns how many operations reported an error.
/// Every error must be an OS error; every new span must overlap no live
/// one, and keeps a tag at both ends that is checked before it is freed;
/// the workload frees every span it made.
fn workload(heap: &SimHeap, os: &SimOs) -> usize {
    let mut errors = 0;
    let mut live: Vec<Span> = Vec::new();
    // The whole heap after each step: every allocated page is in a live
    // span, a cache, the quarantine or nowhere else.
    let whole = |live: &[Span]| {
        check_heap(heap, os, &live.iter().collect::<Vec<_>>());
    };
    let take = |r: Result<Span, pageheap::Error>, live: &mut Vec<Span>| -> usize {
        let r = match r {
            Ok(s) => {
                for l in live.iter() {
                    assert!(
                        s.end() <= l.base() || l.end() <= s.base(),
                        "{s:x?} overlaps live {l:x?}"
                    );
                }
                os.write(s.base(), &tag(&s)).expect("Ready");
                os.write(s.end() - 8, &tag(&s)).expect("Ready");
                live.push(s);
                0
            }
            Err(e) => {
                assert!(is_os_error(&e), "not an OS error: {e:?}");
                1
            }
        };
        whole(live);
        r
    };
    let free = |s: Span| -> usize {
        let mut buf = [0u8; 8];
        for at in [s.base(), s.end() - 8] {
            os.read(at, &mut buf).expect("Ready");
            assert_eq!(buf, tag(&s), "{s:x?}: memory at {at:#x} overwritten");
        }
        match heap.free(s) {
            Ok(()) => 0,
            Err(e) => panic!("freeing a live span failed: {e:?}"),
        }
    };
    let fallible = |r: Result<(), pageheap::Error>| -> usize {
        match r {
            Ok(()) => 0,
            Err(e) => {
                assert!(is_os_error(&e), "not an OS error: {e:?}");
                1
            }
        }
    };
    for n in [1, 5, 20, 600, 1, 3, 100, 2, 15, 16] {
        errors += take(heap.alloc(n), &mut live);
    }
    errors += take(heap.alloc_aligned(3, 1 << 20), &mut live);
    // Free every other span.
    let mut keep = Vec::new();
    for (i, s) in live.drain(..).enumerate() {
        if i % 2 == 0 {
            keep.push(s);
        } else {
            errors += free(s);
        }
    }
    live = keep;
    whole(&live);
    errors += fallible(heap.scavenge(256 << 10).map(drop));
    whole(&live);
    for n in [700, 1, 1, 9, 40] {
        errors += take(heap.alloc(n), &mut live);
    }
    errors += fallible(heap.set_memory_limit(heap.stats().mapped_ready / 2));
    whole(&live);
    for n in [64, 3] {
        errors += take(heap.alloc(n), &mut live);
    }
    errors += fallible(heap.set_memory_limit(usize::MAX));
    while let Some(s) = live.pop() {
        errors += free(s);
        whole(&live);
    }
    errors += fallible(heap.release_all().map(drop));
    whole(&live);
    errors
}

/// Every page the workload allocated is back: nothing in use, in the
/// heap's stats or in the page allocator.
fn assert_no_leak(heap: &SimHeap, k: u64, when: &str) {
    heap.flush_thread_cache();
    let st = heap.stats();
    assert_eq!(st.heap_inuse, 0, "k = {k}: pages leaked {when}: {st:#?}");
    let in_use = heap.with_page_alloc(|pa| pa.stats().pages_in_use);
    assert_eq!(in_use, 0, "k = {k}: page allocator pages leaked {when}");
}

#[test]
fn every_fault_point_is_survived() {
    let (mut k, mut survived, mut with_errors, mut failed_creation) = (1u64, 0, 0, 0);
    loop {
        let os = Arc::new(SimOs::new());
        os.set_faults(Faults::none().nth_call(k));
        let heap = match Heap::with_os(Arc::clone(&os), quiet().with_arena_bytes(4 << 20)) {
            Ok(h) => h,
            Err(_) => {
                // A typed error; nothing may be left reserved.
                assert_eq!(os.reservations(), vec![], "k = {k}: creation leaked");
                failed_creation += 1;
                survived += 1;
                k += 1;
                continue;
            }
        };
        let errors = workload(&heap, &os);
        let fired = os.total_calls() >= k;
        os.set_faults(Faults::none());
        check_heap(&heap, &os, &[]);
        assert_no_leak(&heap, k, "after the workload");
        // Still works.
        let a = heap
            .alloc(7)
            .unwrap_or_else(|e| panic!("k = {k}: alloc after faults: {e}"));
        let b = heap
            .alloc(300)
            .unwrap_or_else(|e| panic!("k = {k}: alloc after faults: {e}"));
        os.write(b.base() + 299 * PAGE_BYTES, &[1; 8])
            .expect("Ready");
        heap.free(a).expect("free after faults");
        heap.free(b).expect("free after faults");
        heap.release_all().expect("release after faults");
        check_heap(&heap, &os, &[]);
        assert_no_leak(&heap, k, "at the end");
        let st = heap.stats();
        assert_eq!(st.heap_free, 0, "k = {k}: {st:#?}");
        drop(heap);
        assert_eq!(
            os.reservations(),
            vec![],
            "k = {k}: reservations left after drop"
        );
        os.assert_clean();
        survived += 1;
        with_errors += usize::from(errors > 0);
        if !fired {
            break;
        }
        k += 1;
    }
    println!(
        "fault sweep: {survived} fault points survived with no leak, no overlap and no span \
         memory lost ({failed_creation} failed creating the heap, {with_errors} runs saw OS \
         errors, last run without a fault)"
    );
    assert!(survived > 20, "the workload makes more OS calls than that");
}
