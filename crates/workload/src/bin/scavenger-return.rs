//! How fast the background scavenger returns memory after a drop, and what
//! it costs: for each scavenging policy, `--runs` times (default 20), grow a
//! heap on the real OS to `--gib` GiB (default 2) of touched 128 KiB spans,
//! free 9 of every 10, and watch for 5 s: when has the scavenger released
//! 90% of the excess (retained memory above its goal), and how much CPU has
//! its thread used (its own thread CPU clock, `HeapStats::scavenger_cpu_ns`)?
//!
//! ```text
//! cargo run --release -p pageheap-workload --bin scavenger-return -- [--runs N] [--gib X]
//! ```
//!
//! Prints one table row per policy: runs, slowest and median time to 90%,
//! slowest and median scavenger CPU over the 5 s, the excess, and the least
//! share of it any run released within the 5 s. A run that does not reach
//! 90% within 5 s shows as `>5.000`.

use std::time::{Duration, Instant};

use pageheap::{Config, Heap, HeapStats, Span, PAGE_BYTES};
use pageheap_alloc::ScavengePolicy;

/// How long each run watches after the drop.
const WINDOW: Duration = Duration::from_secs(5);
/// Span size: 16 pages.
const SPAN_PAGES: usize = 16;

struct Run {
    /// Seconds until 90% of the excess was released; `None`: not within
    /// the window.
    to_90: Option<f64>,
    /// Scavenger CPU seconds over the window.
    cpu: f64,
    /// Bytes in excess of the goal right after the drop.
    excess: usize,
    /// Share of the excess released by the end of the window.
    share: f64,
}

/// Retained bytes the background scavenger aims for (as the heap computes
/// its goal with the default config: in use plus 10%, at most 4 MiB).
fn goal(s: &HeapStats) -> usize {
    s.heap_inuse + (s.heap_inuse / 10).min(4 << 20)
}

fn one_run(policy: ScavengePolicy, bytes: usize) -> Run {
    let heap = Heap::with_config(Config::DEFAULT.with_scavenge_policy(policy)).expect("heap");
    let n = bytes / (SPAN_PAGES * PAGE_BYTES);
    let mut spans: Vec<Option<Span>> = Vec::with_capacity(n);
    for _ in 0..n {
        let s = heap.alloc(SPAN_PAGES).expect("span");
        let p = s.as_ptr().as_ptr();
        for off in (0..s.len()).step_by(4096) {
            // SAFETY:
            // - `off < s.len()`: the byte lies inside the span, which this
            //   run owns until it frees it below.
            unsafe { p.add(off).write(1) };
        }
        spans.push(Some(s));
    }
    for (i, s) in spans.iter_mut().enumerate() {
        if i % 10 != 0 {
            heap.free(s.take().expect("live")).expect("free");
        }
    }
    let dropped = Instant::now();
    let s0 = heap.stats();
    let excess = s0.heap_retained().saturating_sub(goal(&s0));
    let released0 = s0.released_background;
    let cpu0 = s0.scavenger_cpu_ns;
    let mut to_90 = None;
    while dropped.elapsed() < WINDOW {
        std::thread::sleep(Duration::from_millis(10));
        let s = heap.stats();
        if to_90.is_none() && (s.released_background - released0) * 10 >= excess * 9 {
            to_90 = Some(dropped.elapsed().as_secs_f64());
        }
    }
    let end = heap.stats();
    let cpu = (end.scavenger_cpu_ns - cpu0) as f64 / 1e9;
    let share = (end.released_background - released0) as f64 / excess.max(1) as f64;
    for s in spans.into_iter().flatten() {
        heap.free(s).expect("free");
    }
    Run {
        to_90,
        cpu,
        excess,
        share,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut runs = 20;
    let mut gib = 2.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--runs" => runs = val().parse().expect("--runs N"),
            "--gib" => gib = val().parse().expect("--gib X"),
            "--help" | "-h" => {
                println!("scavenger-return [--runs N (20)] [--gib X (2)]");
                return;
            }
            other => panic!("unknown argument {other}; try --help"),
        }
    }
    if pageheap_arena::thread_cpu_time().is_none() {
        eprintln!("scavenger-return: this OS gives no thread CPU clock; CPU reads as 0");
    }
    let bytes = (gib * (1u64 << 30) as f64) as usize;
    println!(
        "drop 90% of a {gib} GiB heap (128 KiB spans, 1 in 10 kept), watch {} s; {runs} runs per policy",
        WINDOW.as_secs()
    );
    println!(
        "{:<8} {:>5} {:>10} {:>10} {:>11} {:>11} {:>9} {:>10}",
        "policy", "runs", "slow 90%", "med 90%", "slow CPU s", "med CPU s", "excess", "least out"
    );
    for policy in [ScavengePolicy::Go127, ScavengePolicy::Go119] {
        let results: Vec<Run> = (0..runs).map(|_| one_run(policy, bytes)).collect();
        let mut t: Vec<f64> = results
            .iter()
            .map(|r| r.to_90.unwrap_or(f64::INFINITY))
            .collect();
        let mut c: Vec<f64> = results.iter().map(|r| r.cpu).collect();
        let slow_t = t.iter().copied().fold(0.0, f64::max);
        let slow_c = c.iter().copied().fold(0.0, f64::max);
        let show = |x: f64| {
            if x.is_finite() {
                format!("{x:.3}")
            } else {
                format!(">{:.3}", WINDOW.as_secs_f64())
            }
        };
        let excess = results.iter().map(|r| r.excess).min().unwrap_or(0);
        let least = results
            .iter()
            .map(|r| r.share)
            .fold(f64::INFINITY, f64::min);
        println!(
            "{:<8} {:>5} {:>10} {:>10} {:>11.3} {:>11.3} {:>5} MiB {:>9.1}%",
            format!("{policy:?}").to_lowercase(),
            runs,
            show(slow_t),
            show(median(&mut t)),
            slow_c,
            median(&mut c),
            excess >> 20,
            least * 100.0
        );
    }
}
