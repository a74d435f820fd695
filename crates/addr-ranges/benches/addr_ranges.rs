//! Criterion benches for `AddrRanges` against Go's design, a sorted `Vec`
//! with binary search and `Vec::insert`.
//!
//! `add_random/<n>` adds `n` disjoint, non-adjacent ranges in a fixed
//! shuffled order to an empty set and reports the time per add
//! (`Throughput::Elements(n)`); building and dropping the set are part of
//! it, as they are for the `Vec`. Lookups run against a set of `n` ranges.

// `criterion_group!` generates a function that cannot carry docs.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use addr_ranges::{AddrRange, AddrRanges, AddrSpace};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const ADD_SIZES: [usize; 4] = [1, 16, 1024, 262_144];
const LOOKUP_SIZES: [usize; 2] = [16, 262_144];
/// 4 MiB arenas with a 4 MiB gap after each: discontiguous, like the
/// 1 TiB worst case of Go's design notes.
const ARENA: usize = 4 << 20;

fn range(i: usize) -> AddrRange {
    AddrRange::new(2 * i * ARENA, (2 * i + 1) * ARENA)
}

/// The fixed shuffled order of the adds.
fn shuffled(n: usize) -> Vec<usize> {
    testkit::rng::shuffled(n, 0x9e37_79b9_7f4a_7c15)
}

/// Go's layout: a sorted array, binary search, insertion by shifting.
fn sorted_vec_add(v: &mut Vec<AddrRange>, r: AddrRange) {
    let i = v.partition_point(|x| x.base <= r.base);
    v.insert(i, r);
}

/// Runs `add_all` on fresh inputs `iters` times, timing only the adds and
/// the drop of the result.
fn time_adds<T>(iters: u64, order: &[AddrRange], add_all: impl Fn(&[AddrRange]) -> T) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let set = add_all(black_box(order));
        drop(black_box(set));
        total += start.elapsed();
    }
    total
}

fn add_random(c: &mut Criterion) {
    for (group, use_vec) in [
        ("addr_ranges/add_random", false),
        ("sorted_vec/add_random", true),
    ] {
        let mut g = c.benchmark_group(group);
        for n in ADD_SIZES {
            let order: Vec<AddrRange> = shuffled(n).into_iter().map(range).collect();
            g.throughput(Throughput::Elements(n as u64));
            if n > 1024 {
                g.sample_size(10);
            }
            g.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter_custom(|iters| {
                    if use_vec {
                        time_adds(iters, &order, |rs| {
                            let mut v = Vec::new();
                            for &r in rs {
                                sorted_vec_add(&mut v, r);
                            }
                            v
                        })
                    } else {
                        time_adds(iters, &order, |rs| {
                            let mut set = AddrRanges::new(AddrSpace::flat());
                            for &r in rs {
                                set.add(r).unwrap();
                            }
                            set
                        })
                    }
                });
            });
        }
        g.finish();
    }
}

fn lookups(c: &mut Criterion) {
    for n in LOOKUP_SIZES {
        let mut set = AddrRanges::new(AddrSpace::flat());
        for i in shuffled(n) {
            set.add(range(i)).unwrap();
        }
        // Probe addresses spread over the set, inside and between ranges.
        let probes: Vec<usize> = shuffled(1024.min(2 * n))
            .into_iter()
            .map(|k| k * n / 1024.min(n) * ARENA + 12_345)
            .collect();
        let mut g = c.benchmark_group("addr_ranges/find_succ");
        g.throughput(Throughput::Elements(probes.len() as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                probes
                    .iter()
                    .map(|&a| set.find_succ(black_box(a)))
                    .sum::<usize>()
            });
        });
        g.finish();
        let mut g = c.benchmark_group("addr_ranges/contains");
        g.throughput(Throughput::Elements(probes.len() as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                probes
                    .iter()
                    .filter(|&&a| set.contains(black_box(a)))
                    .count()
            });
        });
        g.finish();
    }
}

criterion_group!(benches, add_random, lookups);
criterion_main!(benches);
