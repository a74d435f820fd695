//! Criterion replay of the long traces the Go oracle is timed on
//! (`replay/<trace>`): time per trace operation, creating and dropping the
//! allocator included, as `cargo xtask replay-bench` measures it.
#![allow(missing_docs)] // criterion_group! generates undocumented items.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pageheap_alloc::Go64;
use pageheap_arena::SystemOs;
use pageheap_testkit::replay::{prepare, replay_ops, RealHeap};
use pageheap_testkit::trace::Trace;

fn replay(c: &mut Criterion) {
    let dir = Path::new(pageheap_testkit::PERF_TRACES).join("perf");
    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    for name in ["cache", "large", "mixed", "scav", "small"] {
        let path = dir.join(format!("perf-{name}-0001.trace"));
        let trace = Trace::read(&path).expect("perf trace readable");
        let base = trace.pick_base().expect("trace fits the address space");
        let ops = prepare(&trace, base);
        group.throughput(Throughput::Elements(ops.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut heap = RealHeap::<Go64, _>::new(SystemOs::new(), trace.geometry)
                    .expect("allocator for the trace geometry");
                replay_ops(black_box(&ops), &mut heap).expect("trace replays");
                black_box(heap)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
