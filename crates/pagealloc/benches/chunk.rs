//! Chunk bitmap searches: the word-level implementation in
//! `pageheap_alloc::chunk` (`chunk/...`) against the same operations written
//! straightforwardly with `bitvec` (`chunk_bitvec/...`), which is what the
//! crate would use if words were not measurably faster. The bitvec versions
//! are checked against the word versions before timing.
//!
//! Run: `cargo bench -p pagealloc --bench chunk`.

use std::hint::black_box;

use bitvec::prelude::*;
use criterion::{criterion_main, Criterion};
use pageheap_alloc::{PageBits, SumFields};

const P: usize = 512;

type Bits = BitArray<[u64; 8], Lsb0>;

/// Summary by bitvec: counting for the empty case, `first_one` /
/// `last_one` for the ends, and iteration over the allocated pages for the
/// free runs between them.
fn summarize_bitvec(b: &Bits) -> SumFields {
    if b.count_ones() == 0 {
        return SumFields {
            start: P,
            max: P,
            end: P,
        };
    }
    let start = b.first_one().unwrap_or(P);
    let end = P - b.last_one().map_or(0, |i| i + 1);
    let (mut max, mut next_free) = (0, 0);
    for i in b.iter_ones() {
        max = max.max(i - next_free);
        next_free = i + 1;
    }
    SumFields {
        start,
        max: max.max(P - next_free),
        end,
    }
}

/// First fit by bitvec: jump to the next free page with `first_zero`,
/// measure its run with `first_one`, repeat.
fn find_bitvec(b: &Bits, n: usize, search_idx: usize) -> Option<usize> {
    let mut i = search_idx / 64 * 64;
    while i < P {
        let z = i + b[i..].first_zero()?;
        let run = b[z..].first_one().unwrap_or(P - z);
        if run >= n {
            return Some(z);
        }
        i = z + run;
    }
    None
}

/// Deterministic pseudo-random words (xorshift64).
fn random_words(mut seed: u64) -> [u64; 8] {
    core::array::from_fn(|_| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    })
}

/// A fragmented chunk for the searches: the low words densely allocated
/// with short holes, a few 8-page holes, and the first 100-page hole at 380.
fn fragmented() -> PageBits {
    let (a, b) = (
        random_words(0x9e37_79b9_7f4a_7c15),
        random_words(0x2545_f491_4f6c_dd1d),
    );
    let mut bits = PageBits(core::array::from_fn(|k| a[k] | b[k]));
    bits.set_range(256, P - 256);
    for i in [150, 270, 330] {
        bits.clear_range(i, 8);
    }
    bits.clear_range(380, 100);
    bits
}

fn bitmaps() -> [(&'static str, PageBits); 4] {
    let mut sparse = PageBits::default();
    for i in [5, 100, 200, 333, 450] {
        sparse.set(i);
    }
    [
        ("empty", PageBits::default()),
        ("full", PageBits([u64::MAX; 8])),
        ("sparse", sparse),
        ("random", PageBits(random_words(0x0123_4567_89ab_cdef))),
    ]
}

fn bench(c: &mut Criterion) {
    let maps = bitmaps();
    let frag = fragmented();
    let frag_bv = Bits::new(frag.0);
    // The bitvec versions must agree before their timings mean anything.
    for (name, b) in &maps {
        assert_eq!(
            summarize_bitvec(&Bits::new(b.0)),
            b.summarize(),
            "summarize {name}"
        );
    }
    let sizes = [1, 8, 100];
    for n in sizes {
        assert_eq!(find_bitvec(&frag_bv, n, 0), frag.find(n, 0).0, "find {n}");
    }
    assert_eq!(frag.find(100, 0).0, Some(380));

    let mut g = c.benchmark_group("chunk");
    for (name, b) in &maps {
        g.bench_function(format!("summarize/{name}"), |bn| {
            bn.iter(|| black_box(b).summarize())
        });
    }
    for n in sizes {
        g.bench_function(format!("find/{n}"), |bn| {
            bn.iter(|| black_box(&frag).find(black_box(n), black_box(0)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("chunk_bitvec");
    for (name, b) in &maps {
        let bv = Bits::new(b.0);
        g.bench_function(format!("summarize/{name}"), |bn| {
            bn.iter(|| summarize_bitvec(black_box(&bv)))
        });
    }
    for n in sizes {
        g.bench_function(format!("find/{n}"), |bn| {
            bn.iter(|| find_bitvec(black_box(&frag_bv), black_box(n), black_box(0)))
        });
    }
    g.finish();
}

// The macro makes a public, undocumented function; a private module keeps it
// out of the (lint-checked) public surface.
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
