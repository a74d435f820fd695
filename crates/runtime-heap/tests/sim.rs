//! The facade and the global-allocator adapter over the simulated OS, so
//! that their `unsafe` code (span memory reached through raw pointers, the
//! thread cache's put-back, the `GlobalAlloc` and `Allocator` impls) runs
//! under Miri as well as natively. `cargo xtask miri` runs this binary.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::Arc;

use pageheap::{Config, GlobalHeap, Heap, Span, PAGE_BYTES};
use pageheap_arena::sim::SimOs;

/// 4 MiB arenas, no background thread.
fn config() -> Config {
    Config::DEFAULT
        .with_background_scavenger(false)
        .with_arena_bytes(4 << 20)
}

/// Writes a pattern at both ends of the span through its pointer.
fn stamp(s: &Span, byte: u8) {
    let p = s.as_ptr().as_ptr();
    // SAFETY:
    // - A live span is valid for writes of its whole length (the heap made
    //   it Ready), and no one else holds these pages.
    unsafe {
        p.write(byte);
        p.add(s.len() - 1).write(byte);
    }
}

/// Reads the pattern back.
fn stamped(s: &Span) -> (u8, u8) {
    let p = s.as_ptr().as_ptr();
    // SAFETY:
    // - As in `stamp`: live, Ready, ours.
    unsafe { (p.read(), p.add(s.len() - 1).read()) }
}

#[test]
fn facade_over_the_simulated_os() {
    let os = Arc::new(SimOs::new());
    let heap = Heap::with_os(Arc::clone(&os), config()).expect("heap");
    let mut spans = Vec::new();
    for (i, n) in [1usize, 3, 1, 20, 600, 2].into_iter().enumerate() {
        let s = heap.alloc(n).expect("alloc");
        assert_eq!(s.n_pages(), n);
        stamp(&s, i as u8 + 1);
        spans.push(s);
    }
    let a = heap.alloc_aligned(2, 64 << 10).expect("aligned");
    assert_eq!(a.base() % (64 << 10), 0);
    stamp(&a, 0xaa);
    for (i, s) in spans.iter().enumerate() {
        assert_eq!(stamped(s), (i as u8 + 1, i as u8 + 1), "{s:x?}");
    }
    // Small frees go back into this thread's cache, large ones to the
    // page allocator.
    for s in spans.drain(..) {
        heap.free(s).expect("free");
    }
    assert_eq!(stamped(&a), (0xaa, 0xaa));
    heap.free(a).expect("free");
    let again = heap.alloc(1).expect("alloc from the cache");
    stamp(&again, 7);
    heap.free(again).expect("free");
    heap.flush_thread_cache();
    assert!(heap.scavenge(1 << 20).expect("scavenge") > 0);
    let b = heap.alloc(40).expect("alloc over released pages");
    stamp(&b, 9);
    assert_eq!(stamped(&b), (9, 9));
    heap.set_memory_limit(8 << 20).expect("limit");
    heap.free(b).expect("free");
    heap.release_all().expect("release");
    let st = heap.stats();
    assert_eq!(st.heap_inuse, 0, "{st:#?}");
    assert_eq!(st.heap_sys, st.heap_free + st.heap_released, "{st:#?}");
    drop(heap);
    assert_eq!(os.reservations(), vec![], "the heap gave everything back");
    os.assert_clean();
}

#[test]
fn spans_freed_on_other_threads() {
    let os = Arc::new(SimOs::new());
    let heap = Arc::new(Heap::with_os(Arc::clone(&os), config()).expect("heap"));
    let (tx, rx) = std::sync::mpsc::channel::<Span>();
    let h = Arc::clone(&heap);
    let worker = std::thread::spawn(move || {
        for s in rx {
            assert_eq!(stamped(&s), (5, 5));
            h.free(s).expect("free on the worker");
        }
        h.flush_thread_cache();
    });
    for n in [1, 2, 1, 30] {
        let s = heap.alloc(n).expect("alloc");
        stamp(&s, 5);
        tx.send(s).expect("send");
    }
    drop(tx);
    worker.join().expect("worker");
    heap.flush_thread_cache();
    assert_eq!(heap.stats().heap_inuse, 0);
}

static GLOBAL: GlobalHeap<SimOs> = GlobalHeap::with_os_fn(
    Config::DEFAULT
        .with_background_scavenger(false)
        .with_arena_bytes(4 << 20),
    SimOs::new,
);

#[test]
fn global_adapter_over_the_simulated_os() {
    let big = Layout::from_size_align(3 * PAGE_BYTES + 5, 8).expect("layout");
    let aligned = Layout::from_size_align(2 * PAGE_BYTES, 64 << 10).expect("layout");
    let small = Layout::from_size_align(100, 8).expect("layout");
    // SAFETY:
    // - Every layout has a non-zero size; each block is written within its
    //   size, read back, and freed once with the layout it was made with
    //   (`realloc` gets the old layout and a non-zero new size).
    unsafe {
        let p = GLOBAL.alloc(big);
        assert!(!p.is_null());
        p.write_bytes(0x11, big.size());
        let z = GLOBAL.alloc_zeroed(big);
        assert!(!z.is_null());
        assert!((0..big.size()).all(|i| *z.add(i) == 0), "zeroed");
        let q = GLOBAL.alloc(aligned);
        assert_eq!(q.addr() % (64 << 10), 0);
        q.write_bytes(0x22, aligned.size());
        let s = GLOBAL.alloc(small);
        s.write_bytes(0x33, small.size());
        // Growing by `realloc` keeps the contents.
        let r = GLOBAL.realloc(p, big, 9 * PAGE_BYTES);
        assert!(!r.is_null());
        assert!(
            (0..big.size()).all(|i| *r.add(i) == 0x11),
            "realloc kept the bytes"
        );
        assert!(*q == 0x22 && *s.add(99) == 0x33);
        GLOBAL.dealloc(
            r,
            Layout::from_size_align(9 * PAGE_BYTES, 8).expect("layout"),
        );
        GLOBAL.dealloc(z, big);
        GLOBAL.dealloc(q, aligned);
        GLOBAL.dealloc(s, small);
    }
    let heap = GLOBAL
        .heap()
        .expect("created by the first large allocation");
    heap.flush_thread_cache();
    assert_eq!(heap.stats().heap_inuse, 0);
    assert_eq!(GLOBAL.reentrant_allocations(), 0);
}

#[cfg(feature = "allocator-api2")]
#[test]
fn allocator_api_over_the_simulated_os() {
    let heap = Heap::with_os(SimOs::new(), config()).expect("heap");
    let mut v = allocator_api2::vec::Vec::new_in(&heap);
    for i in 0..20_000u32 {
        v.push(i);
    }
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32));
    drop(v);
    heap.flush_thread_cache();
    assert_eq!(heap.stats().heap_inuse, 0);
}
