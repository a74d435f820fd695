//! Fuzz target: sequences of heap operations over the simulated OS, checked
//! against a model of live spans: new spans never overlap live ones, frees
//! of live spans succeed, frees of anything else are errors, and the stats,
//! the simulated OS and the page allocator's invariants agree throughout.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pageheap::{Config, Heap, Span, PAGE_BYTES};
use pageheap_testkit::sim_os::SimOs;

#[derive(Arbitrary, Debug)]
enum HeapOp {
    /// Allocate `1 + pages % 1100` pages.
    Alloc { pages: u16 },
    /// Allocate `1 + pages % 40` pages aligned to `2^(14 + align % 9)`.
    AllocAligned { pages: u8, align: u8 },
    /// Free the live span picked by `index`.
    Free { index: u16 },
    /// Free `1 + pages % 16` pages at `offset` pages from a known address,
    /// when not all of them are live: must fail.
    BadFree { offset: u16, pages: u8 },
    /// Free a span freed before, if none of its pages is live now: must fail.
    DoubleFree { index: u16 },
    /// Release `kib` KiB.
    Scavenge { kib: u16 },
    /// Release everything.
    ReleaseAll,
    /// Hand this thread's page cache back.
    FlushCache,
    /// Set a memory limit of `mib` MiB (0: none).
    SetLimit { mib: u8 },
}

/// Whether every page of `base..end` is inside some live span.
fn all_live(live: &BTreeMap<usize, Span>, base: usize, end: usize) -> bool {
    let mut at = base;
    while at < end {
        match live.range(..=at).next_back() {
            Some((_, s)) if s.end() > at => at = s.end(),
            _ => return false,
        }
    }
    true
}

/// Whether any page of `base..end` is inside a live span.
fn any_live(live: &BTreeMap<usize, Span>, base: usize, end: usize) -> bool {
    live.range(..end)
        .next_back()
        .is_some_and(|(_, s)| s.end() > base)
}

fn check(heap: &Heap<Arc<SimOs>>, os: &SimOs) {
    let s = heap.stats();
    assert_eq!(
        s.heap_sys,
        s.heap_inuse + s.heap_free + s.heap_released,
        "{s:#?}"
    );
    assert_eq!(os.ready_bytes(), s.mapped_ready, "{s:#?}");
    heap.with_page_alloc(pageheap_testkit::check::check)
        .expect("page allocator invariants");
}

fuzz_target!(|ops: Vec<HeapOp>| {
    let os = Arc::new(SimOs::new());
    let config = Config::DEFAULT
        .with_background_scavenger(false)
        .with_arena_bytes(4 << 20);
    let heap = Heap::with_os(Arc::clone(&os), config).expect("heap");
    let mut live: BTreeMap<usize, Span> = BTreeMap::new();
    let mut freed: Vec<(usize, usize)> = Vec::new();
    let mut anchor = None;
    for op in ops.into_iter().take(200) {
        match op {
            HeapOp::Alloc { pages } => {
                let s = heap.alloc(1 + pages as usize % 1100).expect("alloc");
                assert!(
                    !any_live(&live, s.base(), s.end()),
                    "{s:x?} overlaps a live span"
                );
                anchor.get_or_insert(s.base());
                live.insert(s.base(), s);
            }
            HeapOp::AllocAligned { pages, align } => {
                let align = 1 << (14 + align % 9);
                let s = heap
                    .alloc_aligned(1 + pages as usize % 40, align)
                    .expect("alloc");
                assert_eq!(s.base() % align, 0);
                assert!(
                    !any_live(&live, s.base(), s.end()),
                    "{s:x?} overlaps a live span"
                );
                live.insert(s.base(), s);
            }
            HeapOp::Free { index } => {
                if let Some(&base) = live.keys().nth(index as usize % live.len().max(1)) {
                    let s = live.remove(&base).expect("live");
                    freed.push((s.base(), s.n_pages()));
                    heap.free(s).expect("freeing a live span");
                }
            }
            HeapOp::BadFree { offset, pages } => {
                let Some(a) = anchor else { continue };
                let base = a + offset as usize * PAGE_BYTES;
                let n = 1 + pages as usize % 16;
                if !all_live(&live, base, base + n * PAGE_BYTES) {
                    // SAFETY:
                    // - The target never touches span memory, so even a
                    //   free the heap wrongly accepted uses no page; the
                    //   assertion reports it.
                    let forged = unsafe { Span::from_raw_parts(base, n) };
                    assert!(
                        heap.free(forged).is_err(),
                        "bad free of {base:#x}+{n} accepted"
                    );
                }
            }
            HeapOp::DoubleFree { index } => {
                if freed.is_empty() {
                    continue;
                }
                let (base, n) = freed[index as usize % freed.len()];
                if !any_live(&live, base, base + n * PAGE_BYTES) {
                    // SAFETY:
                    // - As for `BadFree`: no span memory is ever used.
                    let forged = unsafe { Span::from_raw_parts(base, n) };
                    assert!(
                        heap.free(forged).is_err(),
                        "double free of {base:#x}+{n} accepted"
                    );
                }
            }
            HeapOp::Scavenge { kib } => {
                heap.scavenge((kib as usize) << 10).expect("scavenge");
            }
            HeapOp::ReleaseAll => {
                heap.release_all().expect("release_all");
            }
            HeapOp::FlushCache => heap.flush_thread_cache(),
            HeapOp::SetLimit { mib } => {
                let limit = if mib == 0 {
                    usize::MAX
                } else {
                    (mib as usize) << 20
                };
                heap.set_memory_limit(limit).expect("limit");
            }
        }
        let s = heap.stats();
        assert_eq!(
            s.heap_sys,
            s.heap_inuse + s.heap_free + s.heap_released,
            "{s:#?}"
        );
    }
    check(&heap, &os);
    for (_, s) in live {
        heap.free(s).expect("free");
    }
    heap.flush_thread_cache();
    check(&heap, &os);
    drop(heap);
    assert!(os.reservations().is_empty(), "reservations left after drop");
    os.assert_clean();
});
