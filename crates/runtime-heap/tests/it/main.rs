//! Integration tests of the public API that need nothing unpublished:
//! resident memory on the real OS, misuse that must fail cleanly (foreign
//! spans, re-entry under the heap lock) and the `Allocator` impl over the
//! simulated OS (feature `sim` of `pageheap-arena`, a dev-dependency). The
//! API, fault-injection and stress tests use the invariant checker of the
//! unpublished test kit and live in `crates/testkit/tests/heap`.

#[cfg(feature = "allocator-api2")]
mod allocator_api;
mod reentry;
mod rss;

#[cfg(feature = "allocator-api2")]
use std::sync::Arc;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use pageheap::Config;
#[cfg(feature = "allocator-api2")]
use pageheap::Heap;
#[cfg(feature = "allocator-api2")]
use pageheap_arena::sim::SimOs;

/// Tests that measure resident memory take this for writing; every other
/// test takes it for reading, so nothing else allocates meanwhile.
pub static MEMORY: RwLock<()> = RwLock::new(());

/// Shared access for tests that do not measure resident memory.
pub fn shared_memory() -> RwLockReadGuard<'static, ()> {
    MEMORY.read().unwrap_or_else(|e| e.into_inner())
}

/// Sole access, for tests that measure resident memory or need the
/// address space to themselves (the simulated OS maps its larger
/// reservations from the real OS, so another test's heap would take the
/// addresses a test expects to be reused).
pub fn sole_memory() -> RwLockWriteGuard<'static, ()> {
    MEMORY.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(feature = "allocator-api2")]
/// A heap over the simulated OS.
pub type SimHeap = Heap<Arc<SimOs>>;

#[cfg(feature = "allocator-api2")]
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
