//! `GlobalHeap` installed, and a `with_page_alloc` closure that allocates
//! and frees a large block: the heap is locked by the same thread, so the
//! block must come from the fallback (and go back there) instead of
//! deadlocking on the heap lock. A binary of its own: it replaces the
//! process's allocator.

use std::sync::mpsc;
use std::time::Duration;

use pageheap::GlobalHeap;

#[global_allocator]
static GLOBAL: GlobalHeap = GlobalHeap::new();

#[test]
fn closure_allocating_under_the_heap_lock_does_not_deadlock() {
    // Create the heap with a first large allocation.
    let warm = vec![1u8; 1 << 20];
    let heap = GLOBAL.heap().expect("heap created by the large allocation");
    let before = GLOBAL.reentrant_allocations();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let pages = heap.with_page_alloc(|pa| {
            let v = vec![7u8; 256 << 10];
            let sum: usize = v.iter().map(|&b| usize::from(b)).sum();
            drop(v);
            (pa.stats().pages_in_use, sum)
        });
        tx.send(pages).expect("main thread waits");
    });
    let (in_use, sum) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the closure deadlocked on the heap lock");
    assert_eq!(sum, 7 * (256 << 10));
    assert!(in_use >= (1 << 20) / pageheap::PAGE_BYTES);
    // The closure's block was served by the fallback, and counted.
    assert_eq!(GLOBAL.reentrant_allocations(), before + 1);
    drop(warm);
}
