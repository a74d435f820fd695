//! Fault injection: for a fixed workload over the simulated OS, fail the
//! k-th OS call for every k in turn. Each run must succeed or return typed
//! errors, leave the heap consistent, keep working once faults are off, and
//! leave no reservation behind after drop.

use std::sync::Arc;

use pageheap::{Heap, Span, PAGE_BYTES};
use pageheap_arena::sim::{Faults, SimOs};

use crate::{check_heap, quiet, SimHeap};

/// The fixed workload; returns how many operations reported an error.
fn workload(heap: &SimHeap) -> usize {
    let mut errors = 0;
    let mut live: Vec<Span> = Vec::new();
    fn take(r: Result<Span, pageheap::Error>, live: &mut Vec<Span>) -> usize {
        match r {
            Ok(s) => {
                live.push(s);
                0
            }
            Err(_) => 1,
        }
    }
    for n in [1, 5, 20, 600, 1, 3, 100, 2, 15, 16] {
        errors += take(heap.alloc(n), &mut live);
    }
    errors += take(heap.alloc_aligned(3, 1 << 20), &mut live);
    // Free every other span.
    let mut keep = Vec::new();
    for (i, s) in live.drain(..).enumerate() {
        if i % 2 == 0 {
            keep.push(s);
        } else if heap.free(s).is_err() {
            errors += 1;
        }
    }
    live = keep;
    errors += usize::from(heap.scavenge(256 << 10).is_err());
    for n in [700, 1, 1, 9, 40] {
        errors += take(heap.alloc(n), &mut live);
    }
    errors += usize::from(
        heap.set_memory_limit(heap.stats().mapped_ready / 2)
            .is_err(),
    );
    for n in [64, 3] {
        errors += take(heap.alloc(n), &mut live);
    }
    errors += usize::from(heap.set_memory_limit(usize::MAX).is_err());
    for s in live {
        errors += usize::from(heap.free(s).is_err());
    }
    errors += usize::from(heap.release_all().is_err());
    errors
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
        let errors = workload(&heap);
        let fired = os.total_calls() >= k;
        os.set_faults(Faults::none());
        check_heap(&heap, &os);
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
        check_heap(&heap, &os);
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
        "fault sweep: {survived} fault points survived ({failed_creation} failed creating the heap, \
         {with_errors} runs saw typed errors, last run without a fault)"
    );
    assert!(survived > 20, "the workload makes more OS calls than that");
}
