//! The runtime-like scenario, run once per allocator in its own process.
//!
//! Worker threads each keep a live set of blocks and go through five phases
//! on a fixed timetable (fractions of the allocator's time slot), so every
//! allocator's phases start at the same moments:
//!
//! | phase | from | what the threads do |
//! |---|---|---|
//! | grow | 0 | allocate and touch blocks up to the live target, then wait |
//! | churn | 15% | free and allocate at random, staying at 90-100% of the target |
//! | drop | 40% | free 9 of every 10 live blocks |
//! | idle | 40% | nothing: what does the allocator give back on its own? |
//! | limit | 75% | a memory limit is set; regrow to 40% of the target with larger blocks and churn |
//!
//! Each alloc and free is timed on its own (two clock reads around the
//! call); touching the memory (one write per 4 KiB) happens outside that
//! window and counts only in the throughput. A sampler thread reads the
//! process's resident memory from the OS at a fixed interval.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use pageheap_testkit::rng::XorShift as Rng;
use serde::{Deserialize, Serialize};

use crate::sources::Source;

/// The scenario's parameters for one allocator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    /// The allocator's name (see [`crate::sources::ALL`]).
    pub allocator: String,
    /// Seconds this allocator's run lasts.
    pub secs: f64,
    /// Worker threads.
    pub threads: usize,
    /// Live data at the end of growth, in bytes (all threads together).
    pub live_bytes: usize,
    /// The memory limit of the last phase, in bytes over the baseline.
    pub limit_bytes: usize,
    /// The seed of every thread's operation stream.
    pub seed: u64,
    /// Milliseconds between resident-memory samples.
    pub sample_ms: u64,
}

/// The timetable: each phase's start as a fraction of the run.
pub const PHASES: [(&str, f64); 5] = [
    ("grow", 0.0),
    ("churn", 0.15),
    ("drop", 0.40),
    ("idle", 0.40),
    ("limit", 0.75),
];

/// The phase of the timetable at fraction `f` of a run.
pub fn phase_at(f: f64) -> &'static str {
    PHASES
        .iter()
        .rev()
        .find(|(_, s)| f >= *s)
        .map_or("grow", |(n, _)| n)
}

/// Latency percentiles of one kind of call, in nanoseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    /// Calls timed.
    pub count: u64,
    /// Mean.
    pub mean_ns: f64,
    /// Median (upper edge of its histogram bucket: at most 6.25% high).
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// The slowest call (exact).
    pub max_ns: u64,
}

/// A log-linear histogram: exact below 16 ns, then 16 buckets per power of
/// two (at most 6.25% wide). A few KiB per thread, whatever the run length.
#[derive(Clone)]
pub struct Hist {
    counts: Vec<u64>,
    n: u64,
    sum: u64,
    max: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Hist {
            counts: vec![0; 16 + 60 * 16],
            n: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl Hist {
    fn bucket(v: u64) -> usize {
        if v < 16 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros() as usize; // e >= 4
        let sub = ((v >> (e - 4)) - 16) as usize;
        16 + (e - 4) * 16 + sub
    }

    /// The largest value bucket `i` holds.
    fn upper(i: usize) -> u64 {
        if i < 16 {
            return i as u64;
        }
        let (e, sub) = ((i - 16) / 16 + 4, (i - 16) % 16);
        ((16 + sub as u64 + 1) << (e - 4)) - 1
    }

    /// Records one value.
    pub fn record(&mut self, v: u64) {
        self.counts[Self::bucket(v)] += 1;
        self.n += 1;
        self.sum += v;
        self.max = self.max.max(v);
    }

    /// Adds `other`'s values.
    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::upper(i).min(self.max);
            }
        }
        self.max
    }

    /// The summary the report keeps.
    pub fn latency(&self) -> Latency {
        Latency {
            count: self.n,
            mean_ns: if self.n == 0 {
                0.0
            } else {
                self.sum as f64 / self.n as f64
            },
            p50_ns: self.quantile(0.5),
            p99_ns: self.quantile(0.99),
            p999_ns: self.quantile(0.999),
            max_ns: self.max,
        }
    }
}

/// One phase as it ran.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PhaseFigures {
    /// The phase's name.
    pub name: String,
    /// Seconds from the start of the run.
    pub start_s: f64,
    /// Seconds from the start of the run.
    pub end_s: f64,
    /// Allocations and frees made.
    pub ops: u64,
    /// Operations per second over the phase, touching included.
    pub ops_per_sec: f64,
    /// Resident bytes (process) at the phase's end.
    pub rss_end: u64,
    /// Process CPU seconds (all threads, user and system) in the phase.
    pub cpu_s: f64,
}

/// What one allocator's run measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    /// The settings it ran with.
    pub settings: Settings,
    /// How the allocator is configured.
    pub config: String,
    /// The cost of the two clock reads around each timed call, measured
    /// (the least of 10,000 back-to-back pairs); included in every latency.
    pub clock_overhead_ns: u64,
    /// The process's resident bytes before the scenario's first
    /// allocation.
    pub baseline_rss: u64,
    /// Every sample: (seconds from the start, resident bytes).
    pub rss: Vec<(f64, u64)>,
    /// The phases in order.
    pub phases: Vec<PhaseFigures>,
    /// Seconds growth took (the rest of its slot the threads wait).
    pub grow_secs: f64,
    /// Allocation latency over the whole run.
    pub alloc: Latency,
    /// Free latency over the whole run.
    pub free: Latency,
    /// Churn-phase operations per second, touching included.
    pub churn_ops_per_sec: f64,
    /// Allocations the allocator refused.
    pub failed_allocs: u64,
    /// The largest resident-memory sample.
    pub peak_rss: u64,
    /// Live bytes just before the drop.
    pub live_before_drop: u64,
    /// Bytes the drop freed.
    pub dropped_bytes: u64,
    /// Resident bytes when the drop began.
    pub rss_at_drop: u64,
    /// Resident bytes at the end of the idle phase.
    pub rss_end_idle: u64,
    /// Resident bytes given back between the drop and the end of the idle
    /// phase, as a share of the bytes the drop freed.
    pub returned_share: f64,
    /// Seconds from the drop until half of the dropped bytes were no longer
    /// resident; `None` if that did not happen before the limit phase.
    pub secs_to_half: Option<f64>,
    /// The same for 90% of the dropped bytes.
    pub secs_to_90: Option<f64>,
    /// The limit phase's limit, bytes over the baseline.
    pub limit_bytes: u64,
    /// Whether the allocator was told the limit (the peers have no such
    /// setting).
    pub limit_enforced: bool,
    /// The largest resident sample in the limit phase, minus the baseline.
    pub limit_peak_over_baseline: u64,
    /// Share of the limit phase's samples over the limit.
    pub limit_share_over: f64,
    /// CPU seconds of the allocator's own background thread (this heap's
    /// scavenger, from its thread CPU clock); `None` for allocators without
    /// one.
    pub background_cpu_s: Option<f64>,
    /// That as a share of one CPU over the run.
    pub background_cpu_share: Option<f64>,
    /// The heap maps drawn from this run, relative to the report
    /// directory.
    #[serde(default)]
    pub pictures: Vec<String>,
    /// Heap map snapshots taken, as (moment, chunks).
    #[serde(skip)]
    pub maps: Vec<(String, Vec<crate::report::ChunkPages>)>,
}

/// The size mix: 60% one page, 25% 2-15 pages, 12% 16-127 pages, 3% a
/// large tail of 128 pages (1 MiB) to 4096 pages (32 MiB), log-uniform.
fn small_mix(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=59 => 1,
        60..=84 => 2 + rng.below(14) as usize,
        85..=96 => 16 + rng.below(112) as usize,
        _ => 128 << rng.below(6),
    }
}

/// The limit phase's mix: 16 to 512 pages (128 KiB to 4 MiB), log-uniform,
/// which the holes the drop left mostly cannot hold.
fn large_mix(rng: &mut Rng) -> usize {
    16 << rng.below(6)
}

/// Touches one byte in every 4 KiB of the block, as a program would.
fn touch(base: usize, len: usize) {
    for off in (0..len).step_by(4096) {
        let p = core::ptr::with_exposed_provenance_mut::<u8>(base + off);
        // SAFETY:
        // - The block is live and owned by this thread, `off < len`, and
        //   every allocator hands out writable memory; its address's
        //   provenance was exposed where the block was made (`Span::base`
        //   exposes it, and so does the peers' `alloc`).
        unsafe { p.write_volatile(1) };
    }
}

/// The process's resident bytes, from `/proc/self/statm` (0 where there is
/// no such file).
pub fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |p| p * pageheap_arena::os_page_size() as u64)
}

/// The process's CPU time (user and system, all threads), in seconds.
pub fn process_cpu() -> f64 {
    let mut ru = core::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY:
    // - `ru` is valid for a write of one `rusage`; getrusage fills it or
    //   fails, and a zeroed `rusage` is a valid value either way.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn clock_overhead() -> u64 {
    (0..10_000)
        .map(|_| {
            let a = Instant::now();
            let b = Instant::now();
            (b - a).as_nanos() as u64
        })
        .min()
        .unwrap_or(0)
}

/// One worker's figures.
#[derive(Default)]
struct Worker {
    alloc: Hist,
    free: Hist,
    ops: [u64; 5],
    failed: u64,
    live_before_drop: u64,
    dropped: u64,
}

struct Live<B> {
    blocks: Vec<B>,
    bytes: usize,
}

impl<B> Live<B> {
    fn new() -> Self {
        Live {
            blocks: Vec::with_capacity(1 << 16),
            bytes: 0,
        }
    }
}

/// Times one allocation; touches and keeps the block.
fn alloc_one<S: Source>(
    src: &S,
    w: &mut Worker,
    live: &mut Live<S::Block>,
    pages: usize,
) -> Instant {
    let t0 = Instant::now();
    let b = src.alloc(pages);
    let t1 = Instant::now();
    w.alloc.record((t1 - t0).as_nanos() as u64);
    match b {
        Some(b) => {
            let (base, len) = S::region(&b);
            touch(base, len);
            live.bytes += len;
            live.blocks.push(b);
        }
        None => w.failed += 1,
    }
    t1
}

/// Times one free of the live block at `i`.
fn free_one<S: Source>(src: &S, w: &mut Worker, live: &mut Live<S::Block>, i: usize) -> Instant {
    let b = live.blocks.swap_remove(i);
    live.bytes -= S::region(&b).1;
    let t0 = Instant::now();
    src.free(b);
    let t1 = Instant::now();
    w.free.record((t1 - t0).as_nanos() as u64);
    t1
}

/// Random churn around `target` bytes until `until`, with sizes from `mix`.
fn churn<S: Source>(
    src: &S,
    w: &mut Worker,
    live: &mut Live<S::Block>,
    rng: &mut Rng,
    target: usize,
    until: Instant,
    mix: fn(&mut Rng) -> usize,
) -> u64 {
    let mut ops = 0;
    loop {
        let free = match live.bytes {
            b if b > target => true,
            b if b < target / 10 * 9 => false,
            _ => rng.below(2) == 0,
        };
        let now = if free && !live.blocks.is_empty() {
            let i = rng.below(live.blocks.len() as u64) as usize;
            free_one(src, w, live, i)
        } else {
            alloc_one(src, w, live, mix(rng))
        };
        ops += 1;
        if now >= until {
            return ops;
        }
    }
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Runs the scenario over `src` on this process and returns its figures.
pub fn run<S: Source>(src: &S, s: &Settings) -> RunResult {
    let clock = clock_overhead();
    let baseline = rss();
    let start = Instant::now();
    let at = |f: f64| start + Duration::from_secs_f64(s.secs * f);
    let per_thread = s.live_bytes / s.threads;

    // The sampler.
    let stop = AtomicBool::new(false);
    let samples = Mutex::new(Vec::<(f64, u64)>::with_capacity(
        (s.secs * 1000.0 / s.sample_ms as f64) as usize + 16,
    ));
    let barrier = Barrier::new(s.threads + 1);
    let mut marks: Vec<(Instant, u64, f64)> = Vec::new(); // (time, rss, cpu)
    let mut maps = Vec::new();
    let mut limit_enforced = false;
    let grow_done = Mutex::new(start);

    let workers: Vec<Worker> = std::thread::scope(|sc| {
        sc.spawn(|| {
            let period = Duration::from_millis(s.sample_ms);
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let v = rss();
                samples
                    .lock()
                    .expect("sampler lock")
                    .push((start.elapsed().as_secs_f64(), v));
                next += period;
                sleep_until(next);
            }
        });
        let handles: Vec<_> = (0..s.threads)
            .map(|t| {
                let (barrier, grow_done) = (&barrier, &grow_done);
                sc.spawn(move || {
                    let mut rng = Rng::new(
                        (s.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((t as u64 + 1) << 40)) | 1,
                    );
                    let mut w = Worker::default();
                    let mut live = Live::new();
                    // Grow.
                    while live.bytes < per_thread {
                        alloc_one(src, &mut w, &mut live, small_mix(&mut rng));
                        w.ops[0] += 1;
                    }
                    {
                        let mut g = grow_done.lock().expect("grow lock");
                        *g = (*g).max(Instant::now());
                    }
                    barrier.wait();
                    // Churn.
                    sleep_until(at(PHASES[1].1));
                    w.ops[1] = churn(
                        src,
                        &mut w,
                        &mut live,
                        &mut rng,
                        per_thread,
                        at(PHASES[2].1),
                        small_mix,
                    );
                    barrier.wait(); // churn ended everywhere; the main thread takes a map
                    barrier.wait();
                    // Drop 9 of 10.
                    w.live_before_drop = live.bytes as u64;
                    let mut i = 0;
                    while i < live.blocks.len() {
                        if rng.below(10) != 0 {
                            let len = S::region(&live.blocks[i]).1;
                            free_one(src, &mut w, &mut live, i);
                            w.dropped += len as u64;
                            w.ops[2] += 1;
                        } else {
                            i += 1;
                        }
                    }
                    barrier.wait(); // dropped; idle until the limit phase
                    barrier.wait(); // the limit is set
                                    // Limit: regrow to 40% with larger blocks, then churn.
                    let target = per_thread / 10 * 4;
                    let end = at(1.0);
                    while live.bytes < target && Instant::now() < end {
                        alloc_one(src, &mut w, &mut live, large_mix(&mut rng));
                        w.ops[4] += 1;
                    }
                    w.ops[4] += churn(src, &mut w, &mut live, &mut rng, target, end, large_mix);
                    barrier.wait();
                    // Give everything back (not timed, not a phase).
                    while let Some(b) = live.blocks.pop() {
                        src.free(b);
                    }
                    w
                })
            })
            .collect();

        let mark = |marks: &mut Vec<(Instant, u64, f64)>| {
            marks.push((Instant::now(), rss(), process_cpu()))
        };
        marks.push((start, baseline, process_cpu()));
        barrier.wait(); // grown
        mark(&mut marks); // (growth's end is in grow_done; this mark is the wait's end)
        barrier.wait(); // churned
        mark(&mut marks);
        if let Some(m) = src.heap_map() {
            maps.push(("after churn".to_string(), m));
        }
        mark(&mut marks);
        barrier.wait(); // drop begins
        barrier.wait(); // dropped
        mark(&mut marks);
        sleep_until(at(PHASES[4].1));
        mark(&mut marks);
        if let Some(m) = src.heap_map() {
            maps.push(("after idle".to_string(), m));
        }
        limit_enforced = src.set_limit(s.limit_bytes);
        barrier.wait(); // the limit phase begins
        barrier.wait(); // the limit phase ended
        mark(&mut marks);
        let ws: Vec<Worker> = handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect();
        stop.store(true, Ordering::Relaxed);
        ws
    });

    let rss = samples.into_inner().expect("sampler lock");
    let secs = |t: Instant| (t - start).as_secs_f64();
    let grow_secs = secs(*grow_done.lock().expect("grow lock"));
    let (mut alloc, mut free) = (Hist::default(), Hist::default());
    let mut ops = [0u64; 5];
    let (mut failed, mut live_before, mut dropped) = (0, 0, 0);
    for w in &workers {
        alloc.merge(&w.alloc);
        free.merge(&w.free);
        for (a, b) in ops.iter_mut().zip(w.ops) {
            *a += b;
        }
        failed += w.failed;
        live_before += w.live_before_drop;
        dropped += w.dropped;
    }
    // marks: 0 start, 1 grown (+wait), 2 churn end, 3 drop start (after
    // the map), 4 drop end, 5 idle end, 6 limit end.
    let bounds = [
        (0, 1, "grow"),
        (1, 2, "churn"),
        (3, 4, "drop"),
        (4, 5, "idle"),
        (5, 6, "limit"),
    ];
    let phases: Vec<PhaseFigures> = bounds
        .iter()
        .enumerate()
        .map(|(i, &(a, b, name))| {
            let (mut start_s, mut end_s) = (secs(marks[a].0), secs(marks[b].0));
            if name == "grow" {
                end_s = grow_secs;
            }
            if name == "churn" {
                // The threads wait from the end of growth to the churn's
                // start on the timetable.
                start_s = start_s.max(s.secs * PHASES[1].1);
            }
            let dur = (end_s - start_s).max(1e-9);
            PhaseFigures {
                name: name.to_string(),
                start_s,
                end_s,
                ops: ops[i],
                ops_per_sec: ops[i] as f64 / dur,
                rss_end: marks[b].1,
                cpu_s: marks[b].2 - marks[a].2,
            }
        })
        .collect();
    let churn_ops_per_sec = phases[1].ops_per_sec;
    let (drop_t, rss_at_drop) = (secs(marks[3].0), marks[3].1);
    let idle_end = secs(marks[5].0);
    let rss_end_idle = marks[5].1;
    let when_below = |share: f64| {
        let level = rss_at_drop as f64 - share * dropped as f64;
        rss.iter()
            .find(|&&(t, v)| t >= drop_t && t <= idle_end && (v as f64) <= level)
            .map(|&(t, _)| t - drop_t)
    };
    let limit_samples: Vec<u64> = rss
        .iter()
        .filter(|&&(t, _)| t >= idle_end)
        .map(|&(_, v)| v.saturating_sub(baseline))
        .collect();
    let limit_peak = limit_samples.iter().copied().max().unwrap_or(0);
    let over = limit_samples
        .iter()
        .filter(|&&v| v > s.limit_bytes as u64)
        .count();
    let (secs_to_half, secs_to_90) = (when_below(0.5), when_below(0.9));
    let bg = src.background_cpu_ns().map(|ns| ns as f64 * 1e-9);
    let run_secs = secs(marks[6].0);
    RunResult {
        settings: s.clone(),
        config: crate::sources::describe(&s.allocator).to_string(),
        clock_overhead_ns: clock,
        baseline_rss: baseline,
        peak_rss: rss.iter().map(|&(_, v)| v).max().unwrap_or(0),
        rss,
        phases,
        grow_secs,
        alloc: alloc.latency(),
        free: free.latency(),
        churn_ops_per_sec,
        failed_allocs: failed,
        live_before_drop: live_before,
        dropped_bytes: dropped,
        rss_at_drop,
        rss_end_idle,
        returned_share: if dropped == 0 {
            0.0
        } else {
            rss_at_drop.saturating_sub(rss_end_idle) as f64 / dropped as f64
        },
        secs_to_half,
        secs_to_90,
        limit_bytes: s.limit_bytes as u64,
        limit_enforced,
        limit_peak_over_baseline: limit_peak,
        limit_share_over: if limit_samples.is_empty() {
            0.0
        } else {
            over as f64 / limit_samples.len() as f64
        },
        background_cpu_s: bg,
        background_cpu_share: bg.map(|c| c / run_secs.max(1e-9)),
        pictures: Vec::new(),
        maps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_bound_their_values() {
        // Every value lands in a bucket whose upper edge is at least the
        // value and less than 1/16 above it.
        for v in (0..5000u64).chain([1 << 20, (1 << 20) + 12345, u64::MAX / 3]) {
            let i = Hist::bucket(v);
            let up = Hist::upper(i);
            assert!(up >= v, "{v}: bucket {i} ends at {up}");
            assert!(up - v <= v / 16, "{v}: bucket {i} ends at {up}");
            if i > 0 {
                assert!(Hist::upper(i - 1) < v, "{v}: belongs below {i}");
            }
        }
    }

    #[test]
    fn percentiles_of_a_known_set() {
        // 1..=1000: the median is 500 (bucket 496..=511 → 511), p99 is 990
        // (bucket 960..=991 → 991), the max is 1000 exactly.
        let mut h = Hist::default();
        for v in 1..=1000 {
            h.record(v);
        }
        let l = h.latency();
        assert_eq!((l.count, l.max_ns), (1000, 1000));
        assert_eq!(l.p50_ns, 511);
        assert_eq!(l.p99_ns, 991);
        assert_eq!(l.p999_ns, 1000, "bucket 992..=1023, capped at the max");
        assert!((l.mean_ns - 500.5).abs() < 1e-9);
    }

    #[test]
    fn timetable() {
        assert_eq!(phase_at(0.0), "grow");
        assert_eq!(phase_at(0.2), "churn");
        assert_eq!(phase_at(0.5), "idle");
        assert_eq!(phase_at(0.9), "limit");
    }
}
