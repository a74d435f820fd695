//! Concurrency stress on the real OS: threads allocate and free mixed sizes
//! (a million operations in all), a shadow map checks that no page is ever
//! handed out twice, and each span carries a tag that must survive until it
//! is freed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pageheap::{Config, Heap, Span};

use pageheap_testkit::rng::XorShift as Rng;

/// Mostly one page, a tail of larger spans.
fn size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=59 => 1,
        60..=84 => 2 + rng.below(14) as usize,
        85..=98 => 16 + rng.below(112) as usize,
        _ => 512 + rng.below(1024) as usize,
    }
}

/// Live spans: base → (end, owner).
type Shadow = Mutex<BTreeMap<usize, (usize, usize)>>;

fn claim(shadow: &Shadow, span: &Span, owner: usize) {
    let mut m = shadow.lock().unwrap();
    if let Some((&b, &(e, o))) = m.range(..span.end()).next_back() {
        assert!(
            e <= span.base(),
            "thread {owner} got {:#x}..{:#x}, overlapping {b:#x}..{e:#x} of thread {o}",
            span.base(),
            span.end()
        );
    }
    m.insert(span.base(), (span.end(), owner));
}

fn release(shadow: &Shadow, span: &Span) {
    shadow
        .lock()
        .unwrap()
        .remove(&span.base())
        .expect("span is in the shadow map");
}

/// Writes the tag to the span's first and last words.
fn tag(span: &Span, tag: u64) {
    for addr in [span.base(), span.end() - 8] {
        let p = core::ptr::with_exposed_provenance_mut::<u64>(addr);
        // SAFETY:
        // - `span` is live and owned by this thread (the shadow map proves no
        //   other live span overlaps it); the heap made it Ready, so its
        //   bytes are valid for writes; `addr` is 8-aligned (page-aligned
        //   base, page-multiple length).
        unsafe { p.write(tag) };
    }
}

fn read_tag(span: &Span) -> [u64; 2] {
    [span.base(), span.end() - 8].map(|addr| {
        let p = core::ptr::with_exposed_provenance::<u64>(addr);
        // SAFETY:
        // - As in `tag`: the span is live, owned by this thread and Ready.
        unsafe { p.read() }
    })
}

fn run(threads: usize, total_ops: usize) -> usize {
    let heap = Arc::new(Heap::with_config(Config::DEFAULT).expect("heap"));
    let shadow: Arc<Shadow> = Arc::default();
    let per_thread = total_ops.div_ceil(threads);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (heap, shadow) = (Arc::clone(&heap), Arc::clone(&shadow));
            std::thread::spawn(move || {
                let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ ((t as u64 + 1) * 0x1234_5678));
                let mut live: Vec<(Span, u64)> = Vec::new();
                for op in 0..per_thread {
                    let r = rng.below(1000);
                    if r == 0 && op % 7 == 0 {
                        heap.scavenge(1 << 20).expect("scavenge");
                    } else if r == 1 && op % 97 == 0 {
                        heap.release_all().expect("release_all");
                    } else if live.len() < 200 && (live.is_empty() || r < 520) {
                        let span = heap.alloc(size(&mut rng)).expect("alloc");
                        claim(&shadow, &span, t);
                        let v = rng.next_u64();
                        tag(&span, v);
                        live.push((span, v));
                    } else {
                        let i = rng.below(live.len() as u64) as usize;
                        let (span, v) = live.swap_remove(i);
                        assert_eq!(read_tag(&span), [v, v], "span {span:x?} was overwritten");
                        release(&shadow, &span);
                        heap.free(span).expect("free");
                    }
                }
                for (span, v) in live {
                    assert_eq!(read_tag(&span), [v, v]);
                    release(&shadow, &span);
                    heap.free(span).expect("free");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker panicked");
    }
    assert!(shadow.lock().unwrap().is_empty());
    let s = heap.stats();
    // Every thread exited, so every cache was handed back.
    assert_eq!(s.heap_inuse, 0, "{s:#?}");
    assert_eq!(s.heap_sys, s.heap_inuse + s.heap_free + s.heap_released);
    assert_eq!(s.spans_allocated, s.spans_freed);
    heap.with_page_alloc(|pa| {
        // The background scavenger may have a run out for release: it is
        // allocated in the bitmaps until it comes back, and counts as released
        // in the heap's stats above.
        let out = pa.detached().map_or(0, |(_, n)| n);
        assert_eq!(pa.stats().pages_in_use, out);
        pageheap_testkit::check::check(pa)
    })
    .unwrap_or_else(|e| panic!("invariant broken: {e:?}"));
    println!(
        "stress: {threads} threads, {} ops, {} spans, peak heap {} MiB, {} refills",
        per_thread * threads,
        s.spans_allocated,
        s.heap_sys >> 20,
        s.cache_refills
    );
    per_thread * threads
}

#[cfg(not(miri))]
#[test]
fn a_million_operations_on_two_to_eight_threads() {
    let done: usize = [2, 5, 8].into_iter().map(|t| run(t, 333_334)).sum();
    assert!(done >= 1_000_000, "{done}");
}
