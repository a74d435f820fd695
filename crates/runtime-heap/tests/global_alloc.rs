//! `GlobalHeap` installed as the process's global allocator (a binary of
//! its own, since it replaces the allocator of everything in it): real work
//! with collections growing to MiBs on several threads must go through the
//! heap and come out intact.

use std::alloc::{alloc, dealloc, Layout};
use std::collections::HashMap;

use runtime_heap::{GlobalHeap, PAGE_BYTES};

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

#[test]
fn collections_on_threads_go_through_the_heap() {
    let expected: Vec<u64> = (0..4u64)
        .map(|seed| (0..(4 * MIB / 8) as u64).fold(0u64, |a, i| a.wrapping_add(i ^ seed)))
        .collect();
    let handles: Vec<_> = (0..4u64)
        .map(|seed| std::thread::spawn(move || work(seed)))
        .collect();
    for (h, want) in handles.into_iter().zip(expected) {
        let (sum, _) = h.join().expect("worker");
        assert_eq!(sum, want);
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
