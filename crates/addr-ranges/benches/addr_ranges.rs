//! Criterion benches for `AddrRanges` against Go's design, a sorted `Vec`
//! with binary search and `Vec::insert`.
//!
//! `add_random/<n>` adds `n` disjoint, non-adjacent ranges in a fixed
//! shuffled order to an empty set and reports the time per add
//! (`Throughput::Elements(n)`); building and dropping the set are part of
//! it, as they are for the `Vec`. Criterion times whole batches of builds:
//! reading the clock around each build would cost about as much as a
//! one-range build and squeeze every small-size ratio towards 1. Each build
//! is observed through `black_box(&set)` and dropped in place; returning it
//! to criterion would time a copy of the value (24 bytes for a `Vec`, the
//! inline root leaf for the set) that no real user makes per add. Lookups run against a set of `n` ranges,
//! and against the same ranges in a sorted slice searched by binary search
//! (`sorted_slice/...`), the layout the set must not be slower than.

// `criterion_group!` generates a function that cannot carry docs.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pageheap_ranges::{AddrRange, AddrRanges, AddrSpace};

const ADD_SIZES: [usize; 4] = [1, 16, 1024, 262_144];
const LOOKUP_SIZES: [usize; 2] = [16, 262_144];
/// 4 MiB arenas with a 4 MiB gap after each: discontiguous, like the
/// 1 TiB worst case of Go's design notes.
const ARENA: usize = 4 << 20;

fn range(i: usize) -> AddrRange {
    AddrRange::new(2 * i * ARENA, (2 * i + 1) * ARENA)
}

mod shuffle {
    include!("../tests/support/shuffle.rs");
}

/// The fixed shuffled order of the adds.
fn shuffled(n: usize) -> Vec<usize> {
    shuffle::shuffled(n, 0x9e37_79b9_7f4a_7c15)
}

/// Go's layout: a sorted array, binary search, insertion by shifting.
fn sorted_vec_add(v: &mut Vec<AddrRange>, r: AddrRange) {
    let i = v.partition_point(|x| x.base <= r.base);
    v.insert(i, r);
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
                if use_vec {
                    b.iter(|| {
                        let mut v = Vec::new();
                        for &r in black_box(&order) {
                            sorted_vec_add(&mut v, r);
                        }
                        black_box(&v);
                    });
                } else {
                    b.iter(|| {
                        let mut set = AddrRanges::new(AddrSpace::flat());
                        for &r in black_box(&order) {
                            set.add(r).unwrap();
                        }
                        black_box(&set);
                    });
                }
            });
        }
        g.finish();
    }
}

/// `find_succ` on a sorted slice: Go's `findSucc`, a binary search.
fn slice_find_succ(v: &[AddrRange], addr: usize) -> usize {
    v.partition_point(|r| r.base <= addr)
}

/// `contains` on a sorted slice: the range before the successor.
fn slice_contains(v: &[AddrRange], addr: usize) -> bool {
    let i = slice_find_succ(v, addr);
    i > 0 && addr < v[i - 1].limit
}

fn lookups(c: &mut Criterion) {
    for n in LOOKUP_SIZES {
        let mut set = AddrRanges::new(AddrSpace::flat());
        for i in shuffled(n) {
            set.add(range(i)).unwrap();
        }
        let slice: Vec<AddrRange> = set.iter().collect();
        // Probe addresses spread over the set, inside and between ranges.
        let probes: Vec<usize> = shuffled(1024.min(2 * n))
            .into_iter()
            .map(|k| k * n / 1024.min(n) * ARENA + 12_345)
            .collect();
        let elements = Throughput::Elements(probes.len() as u64);
        let mut g = c.benchmark_group("addr_ranges/find_succ");
        g.throughput(elements.clone());
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                probes
                    .iter()
                    .map(|&a| set.find_succ(black_box(a)))
                    .sum::<usize>()
            });
        });
        g.finish();
        let mut g = c.benchmark_group("sorted_slice/find_succ");
        g.throughput(elements.clone());
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                probes
                    .iter()
                    .map(|&a| slice_find_succ(&slice, black_box(a)))
                    .sum::<usize>()
            });
        });
        g.finish();
        let mut g = c.benchmark_group("addr_ranges/contains");
        g.throughput(elements.clone());
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                probes
                    .iter()
                    .filter(|&&a| set.contains(black_box(a)))
                    .count()
            });
        });
        g.finish();
        let mut g = c.benchmark_group("sorted_slice/contains");
        g.throughput(elements);
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                probes
                    .iter()
                    .filter(|&&a| slice_contains(&slice, black_box(a)))
                    .count()
            });
        });
        g.finish();
    }
}

criterion_group!(benches, add_random, lookups);
criterion_main!(benches);
