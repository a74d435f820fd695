//! Resident memory on the real OS: after most live data is freed, memory
//! goes back to the OS through `release_all`, through the background
//! scavenger on its own, and during allocation under a memory limit.
//!
//! Resident memory is read from `/proc/self/statm` and measured relative to
//! a baseline taken before the heap is used, so the test binary's own
//! memory does not count. These tests hold [`MEMORY`](crate::MEMORY) for
//! writing, so no other test allocates meanwhile.
#![cfg(all(target_os = "linux", not(miri)))]

use std::time::{Duration, Instant};

use pageheap::{Config, Heap, Span, PAGE_BYTES};

use crate::{quiet, sole_memory};

const MIB: usize = 1 << 20;
/// The allowed excess over live data plus metadata.
const SLACK: usize = 8 * MIB;

/// This process's resident set, in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("resident field");
    pages * pageheap_arena::os_page_size()
}

/// Writes every byte of the span, making it resident.
fn fill(span: &Span) {
    let p = core::ptr::with_exposed_provenance_mut::<u8>(span.base());
    // SAFETY:
    // - The span is live and owned by this test; the heap made all of its
    //   `len()` bytes Ready (readable and writable) before handing it out.
    unsafe { p.write_bytes(0xa5, span.len()) };
}

/// Allocates about `bytes` in spans of mixed sizes and fills them.
fn allocate(heap: &Heap, bytes: usize) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut total = 0;
    for i in 0.. {
        if total >= bytes {
            break;
        }
        let n = [1, 3, 20, 100, 600, 1, 2, 40][i % 8];
        let s = heap.alloc(n).expect("alloc");
        fill(&s);
        total += s.len();
        spans.push(s);
    }
    spans
}

/// Frees nine spans in ten; returns the live bytes left.
fn free_most(heap: &Heap, spans: Vec<Span>) -> (Vec<Span>, usize) {
    let mut keep = Vec::new();
    for (i, s) in spans.into_iter().enumerate() {
        if i % 10 == 0 {
            keep.push(s);
        } else {
            heap.free(s).expect("free");
        }
    }
    let live = keep.iter().map(Span::len).sum();
    (keep, live)
}

#[test]
fn release_all_returns_memory() {
    let _g = sole_memory();
    let heap = Heap::with_config(quiet()).expect("heap");
    let base = rss();
    let spans = allocate(&heap, 256 * MIB);
    let peak = rss().saturating_sub(base);
    assert!(peak >= 240 * MIB, "filled spans should be resident: {peak}");
    let (keep, live) = free_most(&heap, spans);
    heap.release_all().expect("release");
    let s = heap.stats();
    let after = rss().saturating_sub(base);
    println!(
        "release_all: peak {} MiB, live {} MiB, metadata {} KiB, resident after {} MiB",
        peak / MIB,
        live / MIB,
        s.metadata >> 10,
        after / MIB
    );
    assert!(
        after <= live + s.metadata + SLACK,
        "{after} > {live} + {} + slack",
        s.metadata
    );
    for sp in keep {
        heap.free(sp).expect("free");
    }
}

#[test]
fn background_scavenger_returns_memory_by_itself() {
    let _g = sole_memory();
    let heap = Heap::with_config(Config::DEFAULT).expect("heap");
    let base = rss();
    let spans = allocate(&heap, 256 * MIB);
    let (keep, live) = free_most(&heap, spans);
    let start = Instant::now();
    let before = rss().saturating_sub(base);
    assert!(
        before >= 200 * MIB,
        "freed memory is still resident at first: {before}"
    );
    // Wait for the condition, not for a time: the test ends as soon as
    // the memory is back, and gives up only when the scavenger has made no
    // progress for 10 s (a stall, not a slow machine) or after 5 minutes.
    let mut after;
    let (mut last_released, mut last_progress) = (0, Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(50));
        after = rss().saturating_sub(base);
        let st = heap.stats();
        if after <= live + st.metadata + SLACK {
            break;
        }
        if st.released_background != last_released {
            (last_released, last_progress) = (st.released_background, Instant::now());
        }
        if last_progress.elapsed() > Duration::from_secs(10)
            || start.elapsed() > Duration::from_secs(300)
        {
            break;
        }
    }
    let s = heap.stats();
    println!(
        "background: {} MiB resident after free, {} MiB after {:.2} s (live {} MiB, released {} MiB in the background)",
        before / MIB,
        after / MIB,
        start.elapsed().as_secs_f64(),
        live / MIB,
        s.released_background / MIB
    );
    assert!(
        after <= live + s.metadata + SLACK,
        "{after} > {live} + {} + slack",
        s.metadata
    );
    assert!(s.released_background > 0);
    for sp in keep {
        heap.free(sp).expect("free");
    }
}

#[test]
fn memory_limit_holds_under_a_burst() {
    let _g = sole_memory();
    let limit = 160 * MIB;
    let heap = Heap::with_config(quiet().with_memory_limit(limit)).expect("heap");
    let base = rss();
    // 128 MiB of one-page spans, then every other one freed: 64 MiB of
    // holes that larger spans cannot use.
    let mut small: Vec<Span> = (0..128 * MIB / PAGE_BYTES)
        .map(|_| {
            let s = heap.alloc(1).expect("alloc");
            fill(&s);
            s
        })
        .collect();
    let mut kept = Vec::new();
    for (i, s) in small.drain(..).enumerate() {
        if i % 2 == 0 {
            kept.push(s);
        } else {
            heap.free(s).expect("free");
        }
    }
    // The burst: 64 MiB of 64-page spans, 128 MiB live in all. Without the
    // limit the heap would hold 64 + 64 + 64 MiB Ready.
    let mut burst = Vec::new();
    let mut worst = 0;
    for _ in 0..64 * MIB / (64 * PAGE_BYTES) {
        let s = heap.alloc(64).expect("alloc");
        fill(&s);
        burst.push(s);
        let st = heap.stats();
        worst = worst.max(st.mapped_ready);
        assert!(st.mapped_ready <= limit, "{st:#?}");
    }
    let st = heap.stats();
    let resident = rss().saturating_sub(base);
    println!(
        "memory limit {} MiB: worst Ready {} MiB, resident {} MiB, released eagerly {} MiB",
        limit / MIB,
        worst / MIB,
        resident / MIB,
        st.released_eager / MIB
    );
    assert!(st.released_eager >= 16 * MIB, "{st:#?}");
    assert!(resident <= limit + SLACK, "resident {resident}");
    for s in kept.into_iter().chain(burst) {
        heap.free(s).expect("free");
    }
}
