//! Fuzz target: heap operation sequences over the simulated OS, checked
//! against a model of live spans, with the span memory itself in play.
//!
//! Input: the first byte picks the configuration (thread cache on or off,
//! scavenge policy, release mode, arena size, one thread or two); the rest
//! decodes one to three bytes an op. Checked throughout:
//! - new spans never overlap live ones, honour their alignment, and read as
//!   zero when they say they need no zeroing;
//! - every span's memory keeps what was written to it (a tag at both ends)
//!   until it is freed, read through the simulated OS, which also checks
//!   that every byte touched is Ready;
//! - frees of live spans succeed; bad frees, double frees and forged spans
//!   fail with the error kinds the API documents;
//! - with an OS fault armed, allocations and releases fail only with an OS
//!   error and leave the heap consistent;
//! - the stats and the simulated OS agree, and the whole-heap checker
//!   accounts for every allocated page (live spans, thread caches, the
//!   quarantine) with the page allocator's invariants intact;
//!   and at the end every page is back (nothing in use) and dropping the
//!   heap returns every reservation.
#![no_main]

mod common;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use pageheap::{Config, Error, Heap, ReleaseMode, Span, PAGE_BYTES};
use pageheap_alloc::ScavengePolicy;
use pageheap_testkit::heapstrat::{decode, HeapOp};
use pageheap_testkit::sim_os::{Faults, SimOs};

/// The configuration byte.
fn config(b: u8) -> (Config, bool) {
    let config = Config::DEFAULT
        .with_background_scavenger(false)
        .with_thread_cache(b & 1 == 1)
        .with_scavenge_policy(if b & 2 == 0 {
            ScavengePolicy::Go127
        } else {
            ScavengePolicy::Go119
        })
        .with_release_mode(if b & 4 == 0 {
            ReleaseMode::DontNeed
        } else {
            ReleaseMode::Free
        })
        .with_arena_bytes(if b & 8 == 0 { 4 << 20 } else { 8 << 20 });
    (config, b & 16 != 0)
}

/// Whether any page of `base..end` is inside a live span.
fn any_live(live: &BTreeMap<usize, Span>, base: usize, end: usize) -> bool {
    live.range(..end)
        .next_back()
        .is_some_and(|(_, s)| s.end() > base)
}

/// The tag written at both ends of a span.
fn tag(s: &Span) -> [u8; 8] {
    ((s.base() as u64) ^ 0x5a5a_0000_0000_0000 ^ s.n_pages() as u64).to_le_bytes()
}

/// A new span: checks that it reads as zero where it says it needs no
/// zeroing (every byte of its first 16 pages), then writes its tags.
fn fill(os: &SimOs, s: &Span) {
    if !s.needs_zero() {
        let len = s.n_pages().min(16) * PAGE_BYTES;
        assert!(
            os.is_zero(s.base(), len).expect("span memory is Ready"),
            "{s:x?} says it needs no zeroing, its first {len:#x} bytes are not all zeros"
        );
    }
    os.write(s.base(), &tag(s)).expect("span memory is Ready");
    os.write(s.end() - 8, &tag(s))
        .expect("span memory is Ready");
}

/// A span about to be freed: its tags are intact.
fn verify(os: &SimOs, s: &Span) {
    let mut buf = [0u8; 8];
    for at in [s.base(), s.end() - 8] {
        os.read(at, &mut buf).expect("span memory is Ready");
        assert_eq!(buf, tag(s), "{s:x?}: memory at {at:#x} was overwritten");
    }
}

/// An OS error, possibly wrapped by the page allocator: what a failed OS
/// call may surface as.
fn is_os_error(e: &Error) -> bool {
    matches!(
        e,
        Error::Os(_) | Error::PageAlloc(pageheap_alloc::Error::Os(_))
    )
}

/// The errors a free of pages that are not one live span may give.
fn is_bad_free(e: &Error) -> bool {
    matches!(
        e,
        Error::NotAllocated { .. }
            | Error::ForeignSpan { .. }
            | Error::PageAlloc(
                pageheap_alloc::Error::NotAllocated { .. }
                    | pageheap_alloc::Error::NotInHeap { .. }
                    | pageheap_alloc::Error::OutOfAddressSpace { .. }
            )
    )
}

/// The stats against the simulated OS, and the whole-heap checker: the
/// page allocator's invariants, and every allocated page in exactly one of
/// `live`, a thread cache, the quarantine or the scavenger's run.
fn check(heap: &Heap<Arc<SimOs>>, os: &SimOs, live: &[Span]) {
    let s = heap.stats();
    assert_eq!(
        s.heap_sys,
        s.heap_inuse + s.heap_free + s.heap_released,
        "{s:#?}"
    );
    assert_eq!(os.ready_bytes(), s.mapped_ready, "{s:#?}");
    let live: Vec<(usize, usize)> = live.iter().map(|s| (s.base(), s.n_pages())).collect();
    heap.inspect(|v| pageheap_testkit::check_heap::check_heap(v, &live))
        .expect("whole-heap invariants");
}

/// The armed fault fired: no more injected failures.
fn disarm(os: &SimOs, armed: &mut bool) {
    os.set_faults(Faults::none());
    *armed = false;
}

/// Frees a span made up from raw parts, none of whose pages is live or in
/// this thread's cache unaccounted: the heap must refuse it.
fn forged_free_fails(heap: &Heap<Arc<SimOs>>, base: usize, pages: usize, what: &str) {
    // SAFETY:
    // - `from_raw_parts` asks the caller to own the pages. These belong to
    //   nobody: no span of this thread (the only one on the heap) holds
    //   any of them, and the ones in its cache are the heap's own, which a
    //   free must tell apart. The call checks that the heap refuses; had it
    //   accepted, the pages it frees are in no live span, and the overlap
    //   check on later allocations would report the damage.
    let forged = unsafe { Span::from_raw_parts(base, pages) };
    match heap.free(forged) {
        Err(e) if is_bad_free(&e) => {}
        Err(e) => panic!("{what} of {base:#x}+{pages}: unexpected error kind {e:?}"),
        Ok(()) => panic!("{what} of {base:#x}+{pages} accepted"),
    }
}

/// One thread's share of the ops, on its own live spans. `alone`: no
/// other thread uses the heap, so forged frees can be judged and OS faults
/// armed.
fn run_thread(heap: &Heap<Arc<SimOs>>, os: &SimOs, ops: &[HeapOp], alone: bool) -> Vec<Span> {
    let mut live: BTreeMap<usize, Span> = BTreeMap::new();
    let mut freed: Vec<(usize, usize)> = Vec::new();
    let mut anchor = None;
    // An armed fault may fail any OS call until it has fired.
    let mut armed = false;
    for &op in ops.iter().take(400) {
        match op {
            HeapOp::Alloc { pages } | HeapOp::AllocAligned { pages, .. } => {
                let r = match op {
                    HeapOp::AllocAligned { align, .. } => heap.alloc_aligned(pages, align),
                    _ => heap.alloc(pages),
                };
                match r {
                    Ok(s) => {
                        if let HeapOp::AllocAligned { align, .. } = op {
                            assert_eq!(s.base() % align, 0, "{s:x?} not aligned to {align:#x}");
                        }
                        assert_eq!(s.n_pages(), pages);
                        assert!(
                            !any_live(&live, s.base(), s.end()),
                            "{s:x?} overlaps a live span"
                        );
                        fill(os, &s);
                        anchor.get_or_insert(s.base());
                        live.insert(s.base(), s);
                    }
                    Err(e) if armed && is_os_error(&e) => disarm(os, &mut armed),
                    Err(e) => panic!("alloc({pages}) failed: {e}"),
                }
            }
            HeapOp::Free { index } => {
                if let Some(&base) = live.keys().nth(index % live.len().max(1)) {
                    let s = live.remove(&base).expect("live");
                    verify(os, &s);
                    freed.push((s.base(), s.n_pages()));
                    heap.free(s).expect("freeing a live span");
                }
            }
            HeapOp::BadFree { offset, pages } => {
                // Only alone on the heap can this thread know that no page
                // of the range belongs to anyone.
                let Some(a) = anchor.filter(|_| alone) else {
                    continue;
                };
                let base = a + offset * PAGE_BYTES;
                if !any_live(&live, base, base + pages * PAGE_BYTES) {
                    forged_free_fails(heap, base, pages, "bad free");
                }
            }
            HeapOp::DoubleFree { index } => {
                if freed.is_empty() || !alone {
                    continue;
                }
                let (base, n) = freed[index % freed.len()];
                if !any_live(&live, base, base + n * PAGE_BYTES) {
                    forged_free_fails(heap, base, n, "double free");
                }
            }
            HeapOp::Scavenge { bytes } => match heap.scavenge(bytes) {
                Ok(_) => {}
                Err(e) if armed && is_os_error(&e) => disarm(os, &mut armed),
                Err(e) => panic!("scavenge failed: {e}"),
            },
            HeapOp::ReleaseAll => match heap.release_all() {
                Ok(_) => {}
                Err(e) if armed && is_os_error(&e) => disarm(os, &mut armed),
                Err(e) => panic!("release_all failed: {e}"),
            },
            HeapOp::FlushCache => heap.flush_thread_cache(),
            HeapOp::SetLimit { mib } => {
                let limit = if mib == 0 { usize::MAX } else { mib << 20 };
                match heap.set_memory_limit(limit) {
                    Ok(()) => {}
                    Err(e) if armed && is_os_error(&e) => disarm(os, &mut armed),
                    Err(e) => panic!("set_memory_limit failed: {e}"),
                }
            }
            HeapOp::Fault { k } => {
                if alone {
                    os.set_faults(Faults::none().nth_call(k));
                    armed = true;
                }
            }
        }
        let s = heap.stats();
        assert_eq!(
            s.heap_sys,
            s.heap_inuse + s.heap_free + s.heap_released,
            "{s:#?}"
        );
    }
    os.set_faults(Faults::none());
    live.into_values().collect()
}

/// Work for the second thread.
type Job = Box<dyn FnOnce() + Send>;

/// The second thread of two-thread mode: one for the whole process, fed
/// jobs through a channel, since spawning a thread per input cost about a
/// third of the target's time. Its thread caches outlive each input's heap
/// only as slots for a dead heap, which the cache code discards.
fn second_thread() -> &'static Mutex<mpsc::Sender<Job>> {
    static TX: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::spawn(move || {
            for job in rx {
                job();
            }
        });
        Mutex::new(tx)
    })
}

fuzz_target!(|data: &[u8]| {
    common::fixed_mmap_threshold();
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let (config, two_threads) = config(cfg);
    let ops = decode(rest);
    let os = Arc::new(SimOs::new());
    let heap = Arc::new(Heap::with_os(Arc::clone(&os), config).expect("heap"));
    let spans: Vec<Span> = if two_threads {
        let (a, b): (Vec<_>, Vec<_>) = ops.iter().partition(|(second, _)| !second);
        let a: Vec<HeapOp> = a.into_iter().map(|(_, o)| o).collect();
        let b: Vec<HeapOp> = b.into_iter().map(|(_, o)| o).collect();
        let (done, result) = mpsc::channel();
        let (h, o) = (Arc::clone(&heap), Arc::clone(&os));
        second_thread()
            .lock()
            .expect("second thread's channel")
            .send(Box::new(move || {
                let v = run_thread(&h, &o, &b, false);
                h.flush_thread_cache();
                // The heap must be gone with the main thread's handle.
                drop((h, o));
                let _ = done.send(v);
            }))
            .expect("second thread alive");
        let mut v = run_thread(&heap, &os, &a, false);
        v.extend(result.recv().expect("second thread finished its ops"));
        v
    } else {
        let ops: Vec<HeapOp> = ops.into_iter().map(|(_, o)| o).collect();
        run_thread(&heap, &os, &ops, true)
    };
    check(&heap, &os, &spans);
    for s in spans {
        verify(&os, &s);
        heap.free(s).expect("free");
    }
    heap.flush_thread_cache();
    check(&heap, &os, &[]);
    let s = heap.stats();
    assert_eq!(s.heap_inuse, 0, "pages leaked: {s:#?}");
    assert_eq!(
        heap.with_page_alloc(|pa| pa.stats().pages_in_use),
        0,
        "pages leaked in the page allocator"
    );
    drop(Arc::into_inner(heap).expect("the only handle left"));
    assert!(os.reservations().is_empty(), "reservations left after drop");
    os.assert_clean();
});
