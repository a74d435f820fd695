//! Integration tests of the `pageheap` facade that need this crate's
//! invariant checker: the public API over the simulated OS, fault
//! injection, and a concurrency stress test on the real OS. The facade's own
//! package keeps the tests that need nothing unpublished (resident memory,
//! the `Allocator` impl).

#![cfg(all(feature = "os", feature = "pages"))]

mod api;
mod faults;
mod stress;
mod whole;

use std::sync::Arc;

use pageheap::{Config, Heap, Span};
use pageheap_arena::sim::SimOs;
use pageheap_testkit::check_heap::{self, HeapReport};

/// A heap over the simulated OS.
pub type SimHeap = Heap<Arc<SimOs>>;

/// A heap over a fresh simulated OS with 4 MiB arenas and `config`
/// otherwise, plus a handle to the OS.
///
/// # Panics
/// If the heap cannot be created.
pub fn sim_heap(config: Config) -> (Arc<SimOs>, SimHeap) {
    let os = Arc::new(SimOs::new());
    let heap = Heap::with_os(Arc::clone(&os), config.with_arena_bytes(4 << 20))
        .expect("heap over the simulated OS");
    (os, heap)
}

/// No background thread: tests drive everything themselves.
pub fn quiet() -> Config {
    Config::DEFAULT.with_background_scavenger(false)
}

/// Checks that the heap's stats add up, that they agree with the simulated
/// OS's own count of Ready memory, and the whole heap's invariants
/// (`pageheap_testkit::check_heap`): the page allocator's, and that every
/// allocated page is in exactly one of `live`, a thread cache, the
/// quarantine or the scavenger's detached run. Returns the account.
///
/// # Panics
/// If any of that fails.
pub fn check_heap(heap: &SimHeap, os: &SimOs, live: &[&Span]) -> HeapReport {
    let s = heap.stats();
    assert_eq!(
        s.heap_sys,
        s.heap_inuse + s.heap_free + s.heap_released,
        "{s:#?}"
    );
    assert_eq!(
        os.ready_bytes(),
        s.mapped_ready,
        "simulated OS disagrees: {s:#?}"
    );
    let live: Vec<(usize, usize)> = live.iter().map(|s| (s.base(), s.n_pages())).collect();
    heap.inspect(|v| check_heap::check_heap(v, &live))
        .unwrap_or_else(|e| panic!("heap invariant broken: {e}"))
}
