//! A realistic workload on real memory: several threads allocate and free
//! page spans (mostly single pages, a tail of large spans), the heap grows to
//! GiBs, churns, then most live data is dropped and the background
//! scavenger gives the memory back.
//!
//! ```text
//! cargo run --release -p pageheap-workload -- \
//!     [--threads N] [--ops N] [--live-gib X] [--svg PATH]
//! ```
//!
//! Prints a table row per phase and writes an SVG map of the heap (every
//! chunk a strip, one pixel per page: allocated, free, released) after the
//! churn and after scavenging, side by side.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use pageheap::{Config, Heap, Span, CHUNK_BYTES, PAGE_BYTES};
use pageheap_testkit::rng::XorShift as Rng;

const MIB: usize = 1 << 20;

struct Args {
    threads: usize,
    ops: u64,
    live_gib: f64,
    svg: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        threads: 4,
        ops: 2_000_000,
        live_gib: 2.0,
        svg: "target/heap-map.svg".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--threads" => a.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--ops" => a.ops = value()?.parse().map_err(|e| format!("--ops: {e}"))?,
            "--live-gib" => {
                a.live_gib = value()?.parse().map_err(|e| format!("--live-gib: {e}"))?
            }
            "--svg" => a.svg = value()?,
            "-h" | "--help" => {
                return Err(
                    "usage: workload [--threads N] [--ops N] [--live-gib X] [--svg PATH]".into(),
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.threads == 0 || a.live_gib <= 0.0 {
        return Err("--threads and --live-gib must be positive".into());
    }
    Ok(a)
}

/// The size mix: 60% one page, 25% 2–15 pages, 12% 16–127 pages, 3% a
/// large tail of 128 pages (1 MiB) to 4096 pages (32 MiB), log-uniform.
fn span_pages(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=59 => 1,
        60..=84 => 2 + rng.below(14) as usize,
        85..=96 => 16 + rng.below(112) as usize,
        _ => 128 << rng.below(6),
    }
}

/// Touches one byte in every 4 KiB of the span, as a program using it
/// would, making it resident.
fn touch(span: &Span) {
    for off in (0..span.len()).step_by(4096) {
        let p = core::ptr::with_exposed_provenance_mut::<u8>(span.base() + off);
        // SAFETY:
        // - The span is live and owned by this thread; the heap made all of
        //   its bytes Ready before handing it out, and `off < len`.
        unsafe { p.write(1) };
    }
}

/// This process's resident memory, from `/proc/self/statm` (0 elsewhere).
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |p| p * pageheap_arena::os_page_size())
}

fn mib(b: usize) -> String {
    format!("{:.1}", b as f64 / MIB as f64)
}

fn header() {
    println!(
        "{:<10} {:>8} {:>12} {:>11} {:>10} {:>10} {:>12} {:>10} {:>10} {:>9}",
        "phase",
        "secs",
        "ops/s",
        "sys MiB",
        "inuse MiB",
        "free MiB",
        "released MiB",
        "RSS MiB",
        "meta KiB",
        "arenas"
    );
}

fn row(heap: &Heap, phase: &str, secs: f64, ops: u64) {
    let s = heap.stats();
    let rate = if secs > 0.0 { ops as f64 / secs } else { 0.0 };
    println!(
        "{:<10} {:>8.2} {:>12.0} {:>11} {:>10} {:>10} {:>12} {:>10} {:>10} {:>9}",
        phase,
        secs,
        rate,
        mib(s.heap_sys),
        mib(s.heap_inuse),
        mib(s.heap_free),
        mib(s.heap_released),
        mib(rss()),
        s.metadata >> 10,
        heap.arenas().len()
    );
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Runs `f` on every thread's live set in parallel.
fn on_threads<F>(lives: &mut [Vec<Span>], f: F)
where
    F: Fn(usize, &mut Vec<Span>) + Sync,
{
    std::thread::scope(|s| {
        for (t, live) in lives.iter_mut().enumerate() {
            let f = &f;
            s.spawn(move || f(t, live));
        }
    });
}

/// One heap chunk's pages as runs of (state, length): 0 allocated, 1 free,
/// 2 released.
struct ChunkRow {
    base: usize,
    runs: Vec<(u8, usize)>,
}

fn snapshot(heap: &Heap) -> Vec<ChunkRow> {
    heap.with_page_alloc(|pa| {
        let mut rows = Vec::new();
        for r in pa.in_use() {
            let mut base = r.base;
            while base < r.limit {
                if let Some(c) = pa.chunk(base) {
                    let mut runs: Vec<(u8, usize)> = Vec::new();
                    for i in 0..CHUNK_BYTES / PAGE_BYTES {
                        let st = if c.alloc.get(i) {
                            0
                        } else if c.scav.get(i) {
                            2
                        } else {
                            1
                        };
                        match runs.last_mut() {
                            Some((s, n)) if *s == st => *n += 1,
                            _ => runs.push((st, 1)),
                        }
                    }
                    rows.push(ChunkRow { base, runs });
                }
                base += CHUNK_BYTES;
            }
        }
        rows
    })
}

/// Panels of chunk strips: each chunk one 512-pixel strip, 3 px high,
/// wrapped into columns of at most 200 chunks; a gap marks a jump in
/// addresses (a new arena elsewhere).
fn svg(panels: &[(&str, Vec<ChunkRow>)]) -> String {
    const COLORS: [&str; 3] = ["#1f5fbf", "#9fd98b", "#d0d0d0"];
    const ROWS: usize = 200;
    let (strip_h, col_w, top) = (3, 540, 60);
    let cols: Vec<usize> = panels
        .iter()
        .map(|(_, rows)| rows.len().div_ceil(ROWS).max(1))
        .collect();
    let width = 20 + cols.iter().sum::<usize>() * col_w + panels.len() * 40;
    let height = top + ROWS * (strip_h + 1) + 40;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let legend = [("allocated", 0), ("free", 1), ("released", 2)];
    for (i, (name, c)) in legend.iter().enumerate() {
        let x = 20 + i * 140;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="8" width="12" height="12" fill="{}"/><text x="{}" y="19">{name}</text>"#,
            COLORS[*c],
            x + 16
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="460" y="19">one strip per 4 MiB chunk, one pixel per 8 KiB page</text>"#
    );
    let mut x0 = 20;
    for ((title, rows), ncols) in panels.iter().zip(&cols) {
        let _ = writeln!(
            out,
            r#"<text x="{x0}" y="44" font-weight="bold">{title} ({} chunks)</text>"#,
            rows.len()
        );
        let mut prev_end = None;
        for (i, row) in rows.iter().enumerate() {
            let x = x0 + (i / ROWS) * col_w;
            let y = top + (i % ROWS) * (strip_h + 1);
            if prev_end.is_some_and(|e| e != row.base) {
                let _ = writeln!(
                    out,
                    r#"<rect x="{}" y="{y}" width="4" height="{strip_h}" fill="red"/>"#,
                    x - 6
                );
            }
            prev_end = Some(row.base + CHUNK_BYTES);
            let mut px = 0;
            for &(st, n) in &row.runs {
                let _ = writeln!(
                    out,
                    r#"<rect x="{}" y="{y}" width="{n}" height="{strip_h}" fill="{}"/>"#,
                    x + px,
                    COLORS[st as usize]
                );
                px += n;
            }
        }
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            let _ = writeln!(
                out,
                r#"<text x="{x0}" y="{}">{:#x} .. {:#x}</text>"#,
                height - 12,
                first.base,
                last.base + CHUNK_BYTES
            );
        }
        x0 += ncols * col_w + 40;
    }
    out.push_str("</svg>\n");
    out
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let heap = Heap::with_config(Config::DEFAULT).expect("heap over the OS");
    let target = (args.live_gib * (1u64 << 30) as f64) as usize;
    let per_thread = target / args.threads;
    println!(
        "workload: {} threads, {} churn ops, {:.2} GiB live target, 8 KiB pages, 4 MiB chunks",
        args.threads, args.ops, args.live_gib
    );
    header();
    row(&heap, "start", 0.0, 0);
    let mut lives: Vec<Vec<Span>> = (0..args.threads).map(|_| Vec::new()).collect();

    // Grow: allocate and touch up to the live target.
    let pb = bar((target / MIB) as u64, "grow MiB");
    let ops = AtomicU64::new(0);
    let t = Instant::now();
    on_threads(&mut lives, |tid, live| {
        let mut rng = Rng::new(0x2545_f491_4f6c_dd1d ^ (tid as u64 + 1) << 32);
        let mut bytes = 0;
        while bytes < per_thread {
            let s = heap.alloc(span_pages(&mut rng)).expect("alloc");
            touch(&s);
            bytes += s.len();
            if bytes / MIB != (bytes - s.len()) / MIB {
                pb.inc((bytes / MIB - (bytes - s.len()) / MIB) as u64);
            }
            live.push(s);
            ops.fetch_add(1, Ordering::Relaxed);
        }
    });
    pb.finish_and_clear();
    row(
        &heap,
        "grow",
        t.elapsed().as_secs_f64(),
        ops.load(Ordering::Relaxed),
    );

    // Churn: free and allocate at random around the live target.
    let pb = bar(args.ops, "churn ops");
    let t = Instant::now();
    let per_thread_ops = args.ops / args.threads as u64;
    on_threads(&mut lives, |tid, live| {
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ (tid as u64 + 7) << 20);
        let mut bytes: usize = live.iter().map(Span::len).sum();
        for i in 0..per_thread_ops {
            // Stay within 90-100% of the target: a random walk with 32 MiB
            // steps would drift far from it.
            let free = match bytes {
                b if b > per_thread => true,
                b if b < per_thread / 10 * 9 => false,
                _ => rng.below(2) == 0,
            };
            if free && !live.is_empty() {
                let s = live.swap_remove(rng.below(live.len() as u64) as usize);
                bytes -= s.len();
                heap.free(s).expect("free");
            } else {
                let s = heap.alloc(span_pages(&mut rng)).expect("alloc");
                touch(&s);
                bytes += s.len();
                live.push(s);
            }
            if i % 4096 == 4095 {
                pb.inc(4096);
            }
        }
    });
    pb.finish_and_clear();
    row(
        &heap,
        "churn",
        t.elapsed().as_secs_f64(),
        per_thread_ops * args.threads as u64,
    );
    let after_churn = snapshot(&heap);

    // Drop: free 90% of the live data.
    let t = Instant::now();
    let freed = AtomicU64::new(0);
    on_threads(&mut lives, |tid, live| {
        let mut rng = Rng::new(0x1234_5678_9abc_def1 ^ tid as u64);
        let mut keep = Vec::new();
        for s in live.drain(..) {
            if rng.below(10) == 0 {
                keep.push(s);
            } else {
                heap.free(s).expect("free");
                freed.fetch_add(1, Ordering::Relaxed);
            }
        }
        *live = keep;
    });
    row(
        &heap,
        "drop 90%",
        t.elapsed().as_secs_f64(),
        freed.load(Ordering::Relaxed),
    );

    // Scavenge: the background scavenger alone brings retained memory down.
    let s = heap.stats();
    let goal = s.heap_inuse + (s.heap_inuse / 10).min(heap.config().retain_extra_max);
    let todo = s.heap_retained().saturating_sub(goal);
    let pb = bar((todo / MIB) as u64, "scav MiB");
    let t = Instant::now();
    let start_released = s.released_background;
    while t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
        let s = heap.stats();
        pb.set_position(((s.released_background - start_released) / MIB) as u64);
        if s.heap_retained() <= goal + 2 * PAGE_BYTES.max(4096) {
            break;
        }
    }
    pb.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    row(&heap, "scavenged", secs, 0);
    let s = heap.stats();
    println!(
        "background scavenger released {} MiB in {:.2} s; live {} MiB; {} spans allocated in all",
        mib(s.released_background - start_released),
        secs,
        mib(lives.iter().flatten().map(Span::len).sum()),
        s.spans_allocated
    );
    let after_scavenge = snapshot(&heap);

    let map = svg(&[
        ("after churn", after_churn),
        ("after drop + scavenger", after_scavenge),
    ]);
    match std::fs::write(&args.svg, map) {
        Ok(()) => println!("heap map written to {}", args.svg),
        Err(e) => eprintln!("cannot write {}: {e}", args.svg),
    }
    for live in lives {
        for s in live {
            heap.free(s).expect("free");
        }
    }
}
