//! `GlobalHeap` installed as the process's global allocator (a binary of
//! its own, since it replaces the allocator of everything in it): real work
//! with collections growing to MiBs on several threads must go through the
//! heap and come out intact, and no layer of the heap may allocate from the
//! global heap meanwhile: growth across several arenas, frees, explicit
//! scavenging, `release_all` and the memory limit all run with the
//! re-entrant allocation count staying at zero.

use std::alloc::{alloc, dealloc, Layout};
use std::collections::HashMap;

use pageheap::{GlobalHeap, PAGE_BYTES};

#[global_allocator]
static GLOBAL: GlobalHeap = GlobalHeap::new();

const MIB: usize = 1 << 20;

/// Builds collections the way programs do: by pushing.
fn work(seed: u64) -> (u64, usize) {
    let mut v: Vec<u64> = Vec::new();
    for i in 0..(4 * MIB / 8) as u64 {
        v.push(i ^ seed);
    }
    let mut m: HashMap<u64, String> = HashMap::new();
    for i in 0..50_000u64 {
        m.insert(i * 31 + seed, format!("value {i}"));
    }
    let mut s = String::new();
    while s.len() < 3 * MIB {
        s.push_str("the quick brown fox jumps over the lazy dog; ");
    }
    let zeros = vec![0u8; 8 * MIB];
    assert!(zeros.iter().all(|&b| b == 0));
    let sum = v.iter().fold(0u64, |a, &x| a.wrapping_add(x));
    assert_eq!(
        m.get(&(77 * 31 + seed)).map(String::as_str),
        Some("value 77")
    );
    (sum, s.len() + m.len() + zeros.len())
}

/// Holds 64 MiB in blocks of 64 KiB to 4 MiB at once (so that four of
/// these need several 64 MiB arenas), touching one byte in every 64 KiB.
fn hold_many(seed: usize) -> usize {
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut total = 0;
    let mut i = seed;
    while total < 64 * MIB {
        let len = (64 << 10) << (i % 7); // 64 KiB .. 4 MiB
        let mut b = vec![0u8; len];
        for at in (0..len).step_by(64 << 10) {
            b[at] = (i + at) as u8;
        }
        total += len;
        held.push(b);
        i += 1;
    }
    held.iter()
        .enumerate()
        .map(|(k, b)| usize::from(b[0] == (seed + k) as u8))
        .sum()
}

#[test]
fn collections_on_threads_go_through_the_heap() {
    let expected: Vec<u64> = (0..4u64)
        .map(|seed| (0..(4 * MIB / 8) as u64).fold(0u64, |a, i| a.wrapping_add(i ^ seed)))
        .collect();
    let handles: Vec<_> = (0..4u64)
        .map(|seed| std::thread::spawn(move || (work(seed), hold_many(seed as usize))))
        .collect();
    for (h, want) in handles.into_iter().zip(expected) {
        let ((sum, _), intact) = h.join().expect("worker");
        assert_eq!(sum, want);
        assert!(intact > 0);
    }
    let heap = GLOBAL
        .heap()
        .expect("the first large allocation created the heap");
    let s = heap.stats();
    // Each worker grew a 4 MiB Vec by doubling (spans of 1, 2, ... 512
    // pages), a HashMap table past 1 MiB, a 3 MiB String and an 8 MiB
    // zeroed Vec: far more than these floors.
    assert!(s.spans_allocated >= 4 * 10, "{s:#?}");
    assert!(
        s.pages_allocated as usize * PAGE_BYTES >= 4 * (8 + 4 + 3) * MIB,
        "{s:#?}"
    );
    assert!(s.heap_sys >= 8 * MIB);
    assert_eq!(s.heap_sys, s.heap_inuse + s.heap_free + s.heap_released);
    // Four threads held 64 MiB each at about the same time: several arenas.
    let arenas = heap.arenas();
    assert!(arenas.len() >= 2, "{arenas:x?}");
    assert_eq!(
        GLOBAL.reentrant_allocations(),
        0,
        "the heap allocated from the global heap while working"
    );

    // Returning memory: explicit scavenging and `release_all`, both under
    // the heap lock, and then reusing released pages (`Os::used`).
    assert!(heap.scavenge(MIB).expect("scavenge") >= MIB);
    assert!(heap.release_all().expect("release_all") > 0);
    let again = vec![1u8; 16 * MIB];
    assert_eq!(again[16 * MIB - 1], 1);
    drop(again);
    // The memory limit: with 32 MiB free and Ready, a limit 16 MiB below
    // the Ready total releases at once, and allocations under it release
    // eagerly.
    let warm = vec![1u8; 32 * MIB];
    assert_eq!(warm[32 * MIB - 1], 1);
    drop(warm);
    let ready = heap.stats().mapped_ready;
    heap.set_memory_limit(ready - 16 * MIB).expect("limit");
    let blocks: Vec<Vec<u8>> = (0..8).map(|_| vec![2u8; 2 * MIB]).collect();
    drop(blocks);
    let _ = vec![3u8; 8 * MIB];
    heap.set_memory_limit(usize::MAX).expect("no limit");
    assert!(heap.stats().released_eager > 0, "{:#?}", heap.stats());
    assert_eq!(
        GLOBAL.reentrant_allocations(),
        0,
        "the heap allocated from the global heap while returning memory"
    );
    // Creating the heap allocated its two `Arc`s (the OS object, the shared
    // state) and nothing else; the global heap has no scavenger thread.
    assert_eq!(GLOBAL.creation_allocations(), 2);

    // Larger-than-page alignment: over-allocated and trimmed.
    let layout = Layout::from_size_align(3 * PAGE_BYTES, 1 << 20).expect("layout");
    // SAFETY:
    // - The layout has a non-zero size.
    let p = unsafe { alloc(layout) };
    assert!(!p.is_null());
    assert_eq!(p.addr() % (1 << 20), 0);
    // SAFETY:
    // - `p` is a live allocation of `layout.size()` bytes.
    unsafe { p.write_bytes(7, layout.size()) };
    // SAFETY:
    // - `p` came from `alloc` with this same layout and is freed once.
    unsafe { dealloc(p, layout) };
}
