//! This allocator against the range allocators on the same streams
//! (`benches::ranges`), for `cargo xtask bench-report`:
//!
//! ```text
//! range_peers time [OPS]              one line per workload and allocator:
//!                                     ns/op, failed, fragmentation
//! range_peers run ALLOC WORKLOAD [OPS]  one replay, for callgrind
//! ```

use benches::ranges::{
    replay_only, run_stream, stream, time_stream, BTreeFirstFit, Bitmap, Buddy, Offset, Ours,
    PageRanges, RangeAlloc, Tlsf, Workload,
};

/// Requests per stream, as in the comparison the issue describes.
const OPS: usize = 400_000;
const SEED: u64 = 0x5eed_2026;

fn line<A: PageRanges>(w: Workload, ops: usize) {
    let reqs = stream(w, ops, 0.7, SEED);
    let out = run_stream(&mut A::new(), &reqs);
    let ns = time_stream::<A>(&reqs, 5);
    println!(
        "{} {} ns={ns:.1} failed={} frag={:.3}",
        w.name(),
        A::NAME,
        out.failed,
        out.fragmentation
    );
}

fn run<A: PageRanges>(w: Workload, ops: usize) {
    let reqs = stream(w, ops, 0.7, SEED);
    let failed = replay_only::<A>(&reqs);
    println!(
        "{} {} ops={} failed={failed}",
        w.name(),
        A::NAME,
        reqs.len()
    );
}

/// One allocator's replay of one workload.
type Run = fn(Workload, usize);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: range_peers time [OPS] | run ALLOC WORKLOAD [OPS]";
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["time", rest @ ..] => {
            let ops = rest.first().map_or(OPS, |n| n.parse().expect("OPS"));
            for w in Workload::ALL {
                for f in [
                    line::<Ours> as fn(Workload, usize),
                    line::<BTreeFirstFit>,
                    line::<Offset>,
                    line::<Tlsf>,
                    line::<Bitmap>,
                    line::<Buddy>,
                    line::<RangeAlloc>,
                ] {
                    f(w, ops);
                }
            }
        }
        ["run", alloc, workload, rest @ ..] => {
            let ops = rest.first().map_or(OPS, |n| n.parse().expect("OPS"));
            let w = Workload::parse(workload).expect("workload: small, mixed or large");
            let runs: [(&str, Run); 7] = [
                (Ours::NAME, run::<Ours>),
                (BTreeFirstFit::NAME, run::<BTreeFirstFit>),
                (Offset::NAME, run::<Offset>),
                (Tlsf::NAME, run::<Tlsf>),
                (Bitmap::NAME, run::<Bitmap>),
                (Buddy::NAME, run::<Buddy>),
                (RangeAlloc::NAME, run::<RangeAlloc>),
            ];
            match runs.iter().find(|(n, _)| n == alloc) {
                Some((_, f)) => f(w, ops),
                None => {
                    eprintln!("unknown allocator {alloc}");
                    std::process::exit(2);
                }
            }
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
