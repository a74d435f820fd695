//! A garbage collector's span heap on top of the page heap, the way a
//! runtime uses it: objects of a few size classes are carved out of spans
//! of pages, every span is found again from any interior address (the
//! collector's "which span is this pointer in?"), fresh spans are zeroed
//! only when the heap says they may hold old data (`needs_zero`), and a
//! sweep gives empty spans back, which the scavenger can then return to
//! the OS. Run with `cargo run -p pageheap --example gc_spans`.

use std::collections::BTreeMap;

use pageheap::{Config, Heap, Span, PAGE_BYTES};

/// Object sizes in bytes and the pages of the span each class uses.
const CLASSES: [(usize, usize); 4] = [(16, 1), (128, 1), (1024, 2), (8192, 8)];

/// A span and what lives in it.
struct SpanInfo {
    span: Span,
    class: usize,
    /// One flag per object slot: allocated?
    live: Vec<bool>,
}

/// The collector's view: spans by base address.
#[derive(Default)]
struct SpanHeap {
    spans: BTreeMap<usize, SpanInfo>,
    zeroed_bytes: usize,
    skipped_zeroing: usize,
}

impl SpanHeap {
    /// Allocates one object of `class`, taking a new span when no span of
    /// the class has a free slot. Returns its address.
    fn alloc(&mut self, heap: &Heap, class: usize) -> Result<usize, pageheap::Error> {
        let (size, _) = CLASSES[class];
        for (base, info) in self.spans.iter_mut().filter(|(_, i)| i.class == class) {
            if let Some(slot) = info.live.iter().position(|l| !l) {
                info.live[slot] = true;
                return Ok(base + slot * size);
            }
        }
        let base = self.new_span(heap, class)?;
        self.spans.get_mut(&base).expect("just added").live[0] = true;
        Ok(base)
    }

    /// Takes a new, empty span for `class`, zeroed. Returns its base.
    fn new_span(&mut self, heap: &Heap, class: usize) -> Result<usize, pageheap::Error> {
        let (size, pages) = CLASSES[class];
        let span = heap.alloc(pages)?;
        if span.needs_zero() {
            // SAFETY:
            // - The heap just handed the span out: its `len()` bytes are
            //   Ready and ours alone.
            unsafe { span.as_ptr().as_ptr().write_bytes(0, span.len()) };
            self.zeroed_bytes += span.len();
        } else {
            // The pages come straight from the OS, already zero.
            self.skipped_zeroing += span.len();
        }
        let base = span.base();
        let live = vec![false; span.len() / size];
        self.spans.insert(base, SpanInfo { span, class, live });
        Ok(base)
    }

    /// The span holding `addr`, as `(base, class)`: a pointer into the
    /// middle of an object finds its span.
    fn find(&self, addr: usize) -> Option<(usize, usize)> {
        let (&base, info) = self.spans.range(..=addr).next_back()?;
        (addr < info.span.end()).then_some((base, info.class))
    }

    /// Marks the object at `addr` dead.
    fn kill(&mut self, addr: usize) {
        let (base, class) = self.find(addr).expect("a live object");
        let info = self.spans.get_mut(&base).expect("found");
        info.live[(addr - base) / CLASSES[class].0] = false;
    }

    /// Gives every span with no live object back to the heap.
    fn sweep(&mut self, heap: &Heap) -> Result<usize, pageheap::Error> {
        let empty: Vec<usize> = self
            .spans
            .iter()
            .filter(|(_, i)| i.live.iter().all(|l| !l))
            .map(|(&b, _)| b)
            .collect();
        for b in &empty {
            let info = self.spans.remove(b).expect("listed");
            heap.free(info.span)?;
        }
        Ok(empty.len())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Scavenging is explicit here, so the figures do not depend on timing.
    let mut config = Config::DEFAULT;
    config.background_scavenger = false;
    let heap = Heap::with_config(config)?;
    let mut gc = SpanHeap::default();
    let mut objects = Vec::new();
    for i in 0..20_000 {
        let class = [0, 0, 0, 1, 1, 2, 3][i % 7];
        objects.push(gc.alloc(&heap, class)?);
    }
    // Interior pointers find their span.
    for &o in objects.iter().step_by(997) {
        let (base, class) = gc.find(o + 7).expect("interior pointer");
        assert!(base <= o && o < base + CLASSES[class].1 * PAGE_BYTES);
    }
    assert!(gc.find(1).is_none(), "no span at a wild address");
    let spans_before = gc.spans.len();
    // A collection: most objects die; the survivors keep their spans.
    for (i, &o) in objects.iter().enumerate() {
        if i % 10 != 0 {
            gc.kill(o);
        }
    }
    let swept = gc.sweep(&heap)?;
    // New spans now reuse the swept pages, which hold old objects: the
    // heap says they need zeroing.
    for _ in 0..50 {
        gc.new_span(&heap, 0)?;
    }
    let zeroed_dirty = gc.zeroed_bytes;
    let released = heap.release_all()?;
    let s = heap.stats();
    println!(
        "{} objects in {spans_before} spans; sweep freed {swept} spans, {} remain",
        objects.len(),
        gc.spans.len()
    );
    println!(
        "zeroed {} KiB, skipped zeroing {} KiB of fresh OS pages; released {} KiB to the OS",
        gc.zeroed_bytes >> 10,
        gc.skipped_zeroing >> 10,
        released >> 10
    );
    println!(
        "heap: {} KiB in use, {} KiB free, {} KiB released",
        s.heap_inuse >> 10,
        s.heap_free >> 10,
        s.heap_released >> 10
    );
    assert!(swept > 0 && gc.skipped_zeroing > 0 && zeroed_dirty > 0);
    // Reallocating after the release: those pages came back zeroed, so a
    // span over them needs no zeroing either.
    let before = gc.zeroed_bytes;
    for _ in 0..20 {
        gc.new_span(&heap, 0)?;
    }
    println!(
        "after release: zeroed {} KiB more",
        (gc.zeroed_bytes - before) >> 10
    );
    for (_, info) in std::mem::take(&mut gc.spans) {
        heap.free(info.span)?;
    }
    // Frees inside this thread's cache block went back into the cache,
    // whose Ready pages count as in use until it is flushed.
    heap.flush_thread_cache();
    assert_eq!(heap.stats().heap_inuse, 0);
    Ok(())
}
