//! The heap as an `allocator_api2` `Allocator`: a collection lives in heap
//! pages and gives them back, zeroed allocation, zero-sized and
//! over-aligned blocks.

use core::alloc::Layout;

use allocator_api2::alloc::Allocator;
use allocator_api2::vec::Vec as ApiVec;
use pageheap::PAGE_BYTES;

use crate::{quiet, shared_memory, sim_heap};

#[test]
fn a_vec_lives_in_heap_pages() {
    let _m = shared_memory();
    let (_os, heap) = sim_heap(quiet());
    let mut v: ApiVec<u64, _> = ApiVec::new_in(&heap);
    for i in 0..100_000u64 {
        v.push(i);
    }
    assert!(heap.stats().heap_inuse >= 100_000 * 8);
    assert_eq!(v.iter().sum::<u64>(), 100_000 * 99_999 / 2);
    let base = v.as_ptr().addr();
    assert!(
        heap.arenas()
            .iter()
            .any(|&(b, l)| b <= base && base < b + l),
        "the buffer is in one of the heap's arenas"
    );
    drop(v);
    heap.flush_thread_cache();
    assert_eq!(
        heap.stats().heap_inuse,
        0,
        "growth and drop freed every span"
    );
}

#[test]
fn zeroed_zero_sized_and_over_aligned_blocks() {
    let _m = shared_memory();
    let (_os, heap) = sim_heap(quiet());
    // Dirty some pages, free them, then ask for zeroed memory over them.
    let layout = Layout::from_size_align(3 * PAGE_BYTES, 8).unwrap();
    let p = heap.allocate(layout).unwrap().cast::<u8>();
    // SAFETY:
    // - `allocate` returned at least `layout.size()` bytes at `p`.
    unsafe { p.as_ptr().write_bytes(0xAB, layout.size()) };
    // SAFETY:
    // - `p` is the block just allocated with `layout`, not used again.
    unsafe { heap.deallocate(p, layout) };
    let z = heap.allocate_zeroed(layout).unwrap();
    // SAFETY:
    // - `allocate_zeroed` returned `z.len()` initialised bytes.
    let bytes = unsafe { z.as_ref() };
    assert!(bytes.len() >= layout.size() && bytes.iter().all(|&b| b == 0));
    // SAFETY:
    // - `z` is a block of this heap for `layout`.
    unsafe { heap.deallocate(z.cast(), layout) };

    let empty = Layout::from_size_align(0, 64).unwrap();
    let e = heap.allocate(empty).unwrap();
    assert_eq!((e.len(), e.cast::<u8>().as_ptr().addr() % 64), (0, 0));
    // SAFETY:
    // - A zero-sized block of this heap: deallocating it is a no-op.
    unsafe { heap.deallocate(e.cast(), empty) };

    let big = Layout::from_size_align(PAGE_BYTES, 16 * PAGE_BYTES).unwrap();
    let b = heap.allocate(big).unwrap();
    assert_eq!(b.cast::<u8>().as_ptr().addr() % (16 * PAGE_BYTES), 0);
    // SAFETY:
    // - `b` is a block of this heap for `big`.
    unsafe { heap.deallocate(b.cast(), big) };
    heap.flush_thread_cache();
    assert_eq!(heap.stats().heap_inuse, 0);
}
