//! Replays one trace file once through the real allocator over the real OS,
//! for profilers (callgrind counts what `replay_ops` executes).
//!
//! ```text
//! cargo run --release -p pageheap-testkit --example replay_once -- FILE [RUNS]
//! ```

use std::path::Path;

use pageheap_alloc::Go64;
use pageheap_arena::SystemOs;
use pageheap_testkit::replay::{prepare, replay_ops, RealHeap};
use pageheap_testkit::trace::Trace;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: replay_once FILE [RUNS]");
    let runs: usize = args.next().map_or(1, |r| r.parse().expect("RUNS"));
    let trace = Trace::read(Path::new(&path)).expect("trace");
    let base = trace.pick_base().expect("base");
    let ops = prepare(&trace, base);
    for _ in 0..runs {
        let mut heap = RealHeap::<Go64, _>::new(SystemOs::new(), trace.geometry).expect("heap");
        replay_ops(&ops, &mut heap).expect("replay");
    }
    println!("{} ops x {runs}", ops.len());
}
