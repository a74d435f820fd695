//! Safe call sequences that used to go wrong: a span of a dropped heap
//! freed into a new heap at the same addresses, and code running under the
//! heap lock calling back into the heap.

use std::sync::{mpsc, Arc};
use std::time::Duration;

use pageheap::{Error, Heap};
use pageheap_arena::sim::SimOs;

use crate::{quiet, shared_memory, sole_memory};

/// A span outlives its heap; a new heap over the same OS reuses the
/// addresses and must refuse it.
#[test]
fn a_span_of_a_dropped_heap_is_refused() {
    // No other test may map memory between a's drop and b's creation.
    let _g = sole_memory();
    let os = Arc::new(SimOs::new());
    let config = quiet().with_thread_cache(false).with_arena_bytes(4 << 20);
    // The simulated OS takes its memory from the host allocator and the
    // real OS, whose placements change after the first blocks are freed
    // (glibc raises its mmap threshold): one heap made and dropped first
    // puts them in the state a and b then both see, so b lands where a
    // was.
    for _ in 0..2 {
        let warm = Heap::with_os(Arc::clone(&os), config).expect("warm-up heap");
        warm.free(warm.alloc(1).expect("warm-up span"))
            .expect("free");
    }
    let a = Heap::with_os(Arc::clone(&os), config).expect("heap a");
    let stale = a.alloc(1).expect("span of a");
    drop(a);
    let b = Heap::with_os(Arc::clone(&os), config).expect("heap b");
    let live = b.alloc(1).expect("span of b");
    // The scenario: b handed out the very page the stale span names.
    assert_eq!(live.base(), stale.base(), "b reused a's address space");
    let err = b.free(stale).expect_err("a foreign span is refused");
    assert!(matches!(err, Error::ForeignSpan { .. }), "{err}");
    // b's own span is still allocated: the next span does not overlap it.
    let next = b.alloc(1).expect("another span");
    assert_ne!(next.base(), live.base());
    b.free(next).expect("free");
    b.free(live).expect("free");
}

/// A `with_page_alloc` closure that calls into its own heap panics at once
/// instead of deadlocking.
#[test]
fn re_entering_the_heap_under_its_lock_panics() {
    let _g = shared_memory();
    let heap = Arc::new(Heap::with_os(SimOs::new(), quiet()).expect("heap"));
    let (tx, rx) = mpsc::channel();
    let h = Arc::clone(&heap);
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            h.with_page_alloc(|_| h.stats().heap_inuse)
        }));
        let msg = match r {
            Ok(_) => "returned".to_owned(),
            Err(e) => e
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "panicked".to_owned()),
        };
        tx.send(msg).expect("main thread waits");
    });
    let msg = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the closure deadlocked on the heap lock");
    assert!(msg.contains("re-entered heap"), "{msg}");
    // The lock was released by the unwinding: the heap still works.
    let s = heap.alloc(1).expect("alloc after the panic");
    heap.free(s).expect("free");
}
