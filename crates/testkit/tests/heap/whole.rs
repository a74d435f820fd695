//! The whole-heap checker itself: it balances the page account on healthy
//! heaps (caches of other threads, the quarantine) and names the place of
//! each kind of damage.

use std::sync::mpsc;
use std::sync::Arc;

use pageheap::{Span, PAGE_BYTES};
use pageheap_arena::sim::{Call, Faults};
use pageheap_testkit::check_heap::{check_heap as check, HeapCheckError};

use crate::{check_heap, quiet, sim_heap};

#[test]
fn account_balances_with_spans_caches_and_quarantine() {
    let (os, heap) = sim_heap(quiet());
    let a = heap.alloc(3).expect("alloc"); // from this thread's cache
    let b = heap.alloc(40).expect("alloc"); // the locked path
    let r = check_heap(&heap, &os, &[&a, &b]);
    assert_eq!((r.span_pages, r.caches), (43, 1), "{r:?}");
    assert_eq!(r.cached_pages, 61, "{r:?}");
    assert_eq!(r.pages_in_use, 43 + 61, "{r:?}");
    // Released pages whose `used` call fails stay allocated in the
    // quarantine; the account includes them.
    heap.free(b).expect("free");
    heap.release_all().expect("release");
    os.set_faults(Faults::none().every(Call::Used));
    assert!(heap.alloc(40).is_err(), "every `used` fails");
    let r = check_heap(&heap, &os, &[&a]);
    assert_eq!(r.quarantined_pages, 40, "{r:?}");
    os.set_faults(Faults::none());
    // The next lock retries the quarantine.
    let r = check_heap(&heap, &os, &[&a]);
    assert_eq!(r.quarantined_pages, 0, "{r:?}");
    heap.free(a).expect("free");
}

#[test]
fn sees_the_caches_of_other_threads() {
    let (os, heap) = sim_heap(quiet());
    let heap = Arc::new(heap);
    let (tx, rx) = mpsc::channel();
    let (go, wait) = mpsc::channel::<()>();
    let h = Arc::clone(&heap);
    let worker = std::thread::spawn(move || {
        let s = h.alloc(2).expect("alloc");
        tx.send((s.base(), s.n_pages())).expect("send");
        wait.recv().expect("recv");
        h.free(s).expect("free");
    });
    let (base, n) = rx.recv().expect("recv");
    // SAFETY:
    // - Not freed: the raw parts only describe the worker's span to the
    //   checker, and are taken apart again below.
    let theirs = unsafe { Span::from_raw_parts(base, n) };
    let r = check_heap(&heap, &os, &[&theirs]);
    assert_eq!((r.caches, r.cached_pages), (1, 62), "{r:?}");
    // Leaving the worker's span out: 2 pages unaccounted.
    let e = heap.inspect(|v| check(v, &[])).expect_err("unbalanced");
    assert_eq!(
        e,
        HeapCheckError::Unaccounted {
            in_use: 64,
            placed: 62
        }
    );
    // Naming a page of the worker's cache as a span: in two places.
    let e = heap
        .inspect(|v| check(v, &[(base, n), (base + n * PAGE_BYTES, 1)]))
        .expect_err("two places");
    assert!(
        matches!(e, HeapCheckError::TwoPlaces { page, .. } if page == base + n * PAGE_BYTES),
        "{e}"
    );
    let _ = theirs.into_raw_parts();
    go.send(()).expect("send");
    worker.join().expect("worker");
    let r = check_heap(&heap, &os, &[]);
    assert_eq!(r.pages_in_use, 0, "the worker's cache went back at exit");
}

/// What the checker was built to see: pages freed behind a thread cache's
/// back (a raw-parts free that breaks `Span::from_raw_parts`'s contract)
/// are free in the page allocator and cached by another thread at once.
#[test]
fn catches_pages_freed_under_another_threads_cache() {
    let (_os, heap) = sim_heap(quiet());
    let heap = Arc::new(heap);
    let (tx, rx) = mpsc::channel();
    let (go, wait) = mpsc::channel::<()>();
    let h = Arc::clone(&heap);
    let worker = std::thread::spawn(move || {
        let s = h.alloc(1).expect("alloc");
        tx.send(s.base()).expect("send");
        wait.recv().expect("recv");
        h.free(s).expect("free");
        h.flush_thread_cache();
    });
    let base = rx.recv().expect("recv");
    let cached = base + PAGE_BYTES;
    let before = heap.inspect(|v| check(v, &[(base, 1)])).expect("balanced");
    assert_eq!((before.caches, before.cached_pages), (1, 63));
    // SAFETY: deliberately broken contract, on pages nobody touches: the
    // page is free in the worker's cache, and this free hands it to the
    // page allocator as well. The checker must see the page in both.
    heap.free(unsafe { Span::from_raw_parts(cached, 1) })
        .expect("the page allocator knows the page as allocated");
    let e = heap
        .inspect(|v| check(v, &[(base, 1)]))
        .expect_err("caught");
    assert!(
        matches!(&e, HeapCheckError::NotAllocated { page, place } if *page == cached && place.starts_with("thread cache")),
        "{e}"
    );
    // Repair, so that the worker's flush does not hit a free page.
    let again = heap.alloc(1).expect("alloc");
    assert_eq!(again.base(), cached, "first fit");
    let _ = again.into_raw_parts();
    go.send(()).expect("send");
    worker.join().expect("worker");
}
