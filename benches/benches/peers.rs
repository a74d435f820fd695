//! The same synthetic page workload (`benches::workload`: mostly 1-page
//! spans, a tail up to 128 pages, a fragmenting live set) on `pagealloc`
//! and on a peer, the buddy-system frame allocator of
//! `buddy_system_allocator`. Ids: `peers/<allocator>/<live spans>`, time per
//! request. The buddy allocator rounds every request up to a power of two;
//! `pagealloc` is exact first fit, so it does strictly more search work.
//! `pagealloc+cache` serves requests under 16 pages from a 64-page cache
//! block first, as the runtime facade's per-thread caches do.
#![allow(missing_docs)] // criterion_group! generates undocumented items.

use std::hint::black_box;

use benches::{slots, workload, Req};
use buddy_system_allocator::FrameAllocator;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pageheap_alloc::{Config, Geometry, Go64, HeapRelease, PageAlloc, PageCache};
use pageheap_arena::SystemOs;

const HEAP_PAGES: usize = 1 << 17; // 1 GiB of 8 KiB pages
const BASE: usize = 0x00c0_0000_0000;

/// A page allocator over 1 GiB of synthetic heap (pages bookkept only).
fn fresh_heap() -> PageAlloc<Go64, SystemOs> {
    let config = Config {
        heap_release: HeapRelease::Bookkeeping,
        ..Config::default()
    };
    let mut pa = PageAlloc::new(SystemOs::new(), config).expect("new allocator");
    pa.grow(BASE, HEAP_PAGES * Go64::PAGE_BYTES).expect("grow");
    pa
}

fn peers(c: &mut Criterion) {
    let mut group = c.benchmark_group("peers");
    for live in [1_000usize, 10_000] {
        let reqs = workload(100_000, live, 0x9e37_79b9_7f4a_7c15);
        let n_slots = slots(&reqs);
        group.throughput(Throughput::Elements(reqs.len() as u64));

        group.bench_with_input(BenchmarkId::new("pagealloc", live), &reqs, |b, reqs| {
            b.iter(|| {
                let mut pa = fresh_heap();
                let mut held = vec![(0usize, 0usize); n_slots];
                for r in reqs {
                    match *r {
                        Req::Alloc { pages, slot } => {
                            let a = pa.alloc(pages).expect("valid request").expect("room");
                            held[slot] = (a.base, pages);
                        }
                        Req::Free { slot } => {
                            let (base, pages) = held[slot];
                            pa.free(base, pages).expect("live span");
                        }
                    }
                }
                black_box(pa)
            })
        });

        group.bench_with_input(
            BenchmarkId::new("pagealloc+cache", live),
            &reqs,
            |b, reqs| {
                b.iter(|| {
                    let mut pa = fresh_heap();
                    let mut cache = PageCache::default();
                    let mut held = vec![(0usize, 0usize); n_slots];
                    for r in reqs {
                        match *r {
                            Req::Alloc { pages, slot } => {
                                let mut got = None;
                                if pages < 16 {
                                    if cache.is_empty() {
                                        cache = pa.alloc_to_cache();
                                    }
                                    got = cache.alloc(pages);
                                }
                                let a = match got {
                                    Some(a) => a,
                                    None => pa.alloc(pages).expect("valid request").expect("room"),
                                };
                                held[slot] = (a.base, pages);
                            }
                            Req::Free { slot } => {
                                let (base, pages) = held[slot];
                                pa.free(base, pages).expect("live span");
                            }
                        }
                    }
                    pa.flush_cache(&mut cache).expect("our cache");
                    black_box(pa)
                })
            },
        );

        group.bench_with_input(BenchmarkId::new("buddy", live), &reqs, |b, reqs| {
            b.iter(|| {
                let mut fa = FrameAllocator::<32>::new();
                fa.add_frame(0, HEAP_PAGES);
                let mut held = vec![(0usize, 0usize); n_slots];
                for r in reqs {
                    match *r {
                        Req::Alloc { pages, slot } => {
                            let f = fa.alloc(pages).expect("room");
                            held[slot] = (f, pages);
                        }
                        Req::Free { slot } => {
                            let (f, pages) = held[slot];
                            fa.dealloc(f, pages);
                        }
                    }
                }
                black_box(fa)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, peers);
criterion_main!(benches);
