//! Whether small allocations serialize: `threads/alloc_1page/<threads>`
//! times `pageheap::Heap::alloc(1)` on 1 and 2 threads at once (the
//! spans are freed outside the timed part), with the per-thread caches on
//! and off (`threads/alloc_1page_nocache/<threads>`). Criterion reports time
//! per allocation across all threads: if allocations did not serialize, two
//! threads on two cores take about half the time per allocation that one
//! does. `threads/pair_1page/<threads>` (and `_nocache`) times a one-page
//! alloc and its free together, the way span churn goes.
#![allow(missing_docs)] // criterion_group! generates undocumented items.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pageheap::{Config, Heap};

const PER_THREAD: usize = 4096;

/// Runs `work` on `threads` threads at once (released together by a
/// barrier) and returns the longest time any of them reported.
fn on_threads(threads: usize, work: impl Fn(&Barrier) -> Duration + Sync) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads).map(|_| s.spawn(|| work(&barrier))).collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .max()
            .unwrap_or_default()
    })
}

fn run(heap: &Heap, threads: usize) -> Duration {
    on_threads(threads, |barrier| {
        let mut spans = Vec::with_capacity(PER_THREAD);
        barrier.wait();
        let t = Instant::now();
        for _ in 0..PER_THREAD {
            spans.push(black_box(heap.alloc(1).expect("alloc")));
        }
        let took = t.elapsed();
        // Frees take the heap lock; keep them out of the other thread's
        // timed loop.
        barrier.wait();
        for s in spans {
            heap.free(s).expect("free");
        }
        heap.flush_thread_cache();
        took
    })
}

/// `threads/pair_1page/<threads>`: one-page alloc and free at once, the
/// way a runtime's span churn goes, timed together; with the thread cache
/// both hit it (the free goes back into the thread's cache block), without
/// it (`pair_1page_nocache`) both take the heap lock.
fn run_pairs(heap: &Heap, threads: usize) -> Duration {
    on_threads(threads, |barrier| {
        barrier.wait();
        let t = Instant::now();
        for _ in 0..PER_THREAD {
            let span = black_box(heap.alloc(1).expect("alloc"));
            heap.free(span).expect("free");
        }
        let took = t.elapsed();
        heap.flush_thread_cache();
        took
    })
}

fn threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("threads");
    type Runner = fn(&Heap, usize) -> Duration;
    let cases: [(&str, bool, Runner); 4] = [
        ("alloc_1page", true, run),
        ("alloc_1page_nocache", false, run),
        ("pair_1page", true, run_pairs),
        ("pair_1page_nocache", false, run_pairs),
    ];
    for (name, cache, runner) in cases {
        let config = Config::DEFAULT
            .with_background_scavenger(false)
            .with_thread_cache(cache);
        let heap = Heap::with_config(config).expect("heap");
        for n in [1usize, 2] {
            group.throughput(Throughput::Elements((n * PER_THREAD) as u64));
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                b.iter_custom(|iters| (0..iters).map(|_| runner(&heap, n)).sum())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, threads);
criterion_main!(benches);
