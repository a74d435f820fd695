//! One-page alloc and free pairs through `pageheap::Heap`, once, for
//! profilers (callgrind counts what `pairs_only` executes):
//!
//! ```text
//! cargo run --release -p benches --bin facade_pairs -- [PAIRS] [nocache]
//! ```

use std::hint::black_box;

use pageheap::{Config, Heap};

#[inline(never)]
fn pairs_only(heap: &Heap, n: usize) {
    for _ in 0..n {
        let span = black_box(heap.alloc(1).expect("alloc"));
        heap.free(span).expect("free");
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(100_000, |a| a.parse().expect("PAIRS"));
    let cache = args.next().as_deref() != Some("nocache");
    let config = Config::DEFAULT
        .with_background_scavenger(false)
        .with_thread_cache(cache);
    let heap = Heap::with_config(config).expect("heap");
    // Warm up: the first pair grows the heap and fills the cache.
    pairs_only(&heap, 1);
    pairs_only(&heap, n);
    println!("{n} pairs, thread cache {cache}");
}
