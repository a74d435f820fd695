//! The workspace's main job: one runtime-like scenario on real memory, run
//! against this heap (under each scavenging policy) and against the
//! allocators a runtime author would otherwise pick, with a report of time,
//! memory over time and the scavenger's cost.
//!
//! ```text
//! cargo run --release -p pageheap-workload -- --help
//! ```
//!
//! Each allocator runs alone in a child process of this binary (so the
//! resident memory the OS reports is that allocator's alone), for an equal
//! share of `--duration`, on the same operation stream from the same seed.
//! See `scenario.rs` for the phases and `report.rs` for the output.

mod report;
mod scenario;
mod sources;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::report::{Machine, Report};
use crate::scenario::{RunResult, Settings};

const GIB: f64 = (1u64 << 30) as f64;

struct Args {
    duration: f64,
    threads: usize,
    live_gib: f64,
    limit_gib: Option<f64>,
    seed: u64,
    out: PathBuf,
    json: bool,
    allocators: Vec<String>,
    sample_ms: u64,
    child: Option<(String, PathBuf, f64)>,
}

fn usage() -> String {
    format!(
        "\
pageheap-workload: a runtime-like scenario on real memory, this heap against
the system allocator, jemalloc and mimalloc, with a report.

USAGE:
    cargo run --release -p pageheap-workload -- [OPTIONS]

OPTIONS:
    --duration SECS     total run time, shared equally by the allocators [default: 30]
    --threads N         worker threads per allocator [default: 2]
    --live-gib X        live data at the end of growth, GiB [default: 1]
    --limit-gib X       memory limit of the last phase, GiB over the baseline
                        [default: half of --live-gib]
    --seed N            seed of the operation stream (non-zero) [default: 1]
    --out DIR           report directory (report.json, index.html, pictures)
                        [default: target/report]
    --allocators LIST   comma-separated, from: {} [default: all]
    --sample-ms MS      resident-memory sampling interval [default: 10]
    --json              print the report as JSON on stdout instead of the tables
    -h, --help          print this help

Phases of each allocator's run (fractions of its time): grow to the live
target (0-15%), churn at 90-100% of it (15-40%), drop 90% of the live data
and stay idle (40-75%), then set the memory limit, regrow to 40% with larger
blocks and churn (75-100%).",
        sources::ALL.join(",")
    )
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        duration: 30.0,
        threads: 2,
        live_gib: 1.0,
        limit_gib: None,
        seed: 1,
        out: PathBuf::from("target/report"),
        json: false,
        allocators: sources::ALL.iter().map(|s| s.to_string()).collect(),
        sample_ms: 10,
        child: None,
    };
    let mut it = std::env::args().skip(1);
    let mut child_name = None;
    let mut child_result = None;
    let mut child_secs = None;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String>
        where
            T::Err: std::fmt::Display,
        {
            v.parse().map_err(|e| format!("{flag}: {e}"))
        }
        match flag.as_str() {
            "--duration" => a.duration = num(&flag, value()?)?,
            "--threads" => a.threads = num(&flag, value()?)?,
            "--live-gib" => a.live_gib = num(&flag, value()?)?,
            "--limit-gib" => a.limit_gib = Some(num(&flag, value()?)?),
            "--seed" => a.seed = num(&flag, value()?)?,
            "--out" => a.out = PathBuf::from(value()?),
            "--allocators" => {
                a.allocators = value()?.split(',').map(|s| s.trim().to_string()).collect();
            }
            "--sample-ms" => a.sample_ms = num(&flag, value()?)?,
            "--json" => a.json = true,
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            // Internal: run one allocator in this process.
            "--child" => child_name = Some(value()?),
            "--child-result" => child_result = Some(PathBuf::from(value()?)),
            "--child-secs" => child_secs = Some(num(&flag, value()?)?),
            other => return Err(format!("unknown argument {other}; try --help")),
        }
    }
    if !(a.duration > 0.0 && a.duration.is_finite()) {
        return Err("--duration must be a positive number of seconds".into());
    }
    if a.threads == 0 || a.threads > 256 {
        return Err("--threads must be in 1..=256".into());
    }
    if !(a.live_gib > 0.0 && a.live_gib < 1024.0) {
        return Err("--live-gib must be in (0, 1024)".into());
    }
    if a.limit_gib.is_some_and(|l| !(l > 0.0 && l.is_finite())) {
        return Err("--limit-gib must be positive".into());
    }
    if a.seed == 0 {
        return Err("--seed must be non-zero".into());
    }
    if a.sample_ms == 0 {
        return Err("--sample-ms must be positive".into());
    }
    if a.allocators.is_empty() {
        return Err("--allocators needs at least one name".into());
    }
    for n in &a.allocators {
        if !sources::ALL.contains(&n.as_str()) {
            return Err(format!(
                "unknown allocator {n}; choose from {}",
                sources::ALL.join(",")
            ));
        }
    }
    if let (Some(n), Some(r), Some(s)) = (child_name, child_result, child_secs) {
        a.child = Some((n, r, s));
    }
    Ok(a)
}

fn settings(a: &Args, name: &str, secs: f64) -> Settings {
    Settings {
        allocator: name.to_string(),
        secs,
        threads: a.threads,
        live_bytes: (a.live_gib * GIB) as usize,
        limit_bytes: (a.limit_gib.unwrap_or(a.live_gib / 2.0) * GIB) as usize,
        seed: a.seed,
        sample_ms: a.sample_ms,
    }
}

/// The child: runs the scenario over one allocator, draws its heap maps and
/// writes its figures as JSON.
fn child(a: &Args, name: &str, result: &Path, secs: f64) -> Result<(), String> {
    let s = settings(a, name, secs);
    let mut r: RunResult = sources::with_source(name, |src| src.run(&s));
    for (moment, chunks) in std::mem::take(&mut r.maps) {
        let stem = format!("heap-map-{name}-{}", moment.replace(' ', "-"));
        let title = format!("{name}: the heap {moment}");
        r.pictures
            .extend(report::heap_map(&a.out, &stem, &title, &chunks)?);
    }
    let json = serde_json::to_string(&r).map_err(|e| e.to_string())?;
    std::fs::write(result, json).map_err(|e| format!("{}: {e}", result.display()))
}

fn run_children(a: &Args) -> Result<Vec<RunResult>, String> {
    let slot = a.duration / a.allocators.len() as f64;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let pb = if a.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new((a.duration * 10.0) as u64)
    };
    pb.set_style(
        ProgressStyle::with_template("{msg:<28} [{bar:40}] {elapsed} / ~{duration}")
            .expect("template")
            .progress_chars("=> "),
    );
    let mut runs = Vec::new();
    for (i, name) in a.allocators.iter().enumerate() {
        let result = a.out.join(format!(".run-{name}.json"));
        let mut cmd = Command::new(&exe);
        cmd.args(["--child", name])
            .arg("--child-result")
            .arg(&result)
            .args(["--child-secs", &slot.to_string()])
            .args(["--threads", &a.threads.to_string()])
            .args(["--live-gib", &a.live_gib.to_string()])
            .args(["--seed", &a.seed.to_string()])
            .args(["--sample-ms", &a.sample_ms.to_string()])
            .arg("--out")
            .arg(&a.out)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(l) = a.limit_gib {
            cmd.args(["--limit-gib", &l.to_string()]);
        }
        let mut proc = cmd.spawn().map_err(|e| format!("{}: {e}", exe.display()))?;
        let t = Instant::now();
        let status = loop {
            if let Some(st) = proc.try_wait().map_err(|e| e.to_string())? {
                break st;
            }
            let f = (t.elapsed().as_secs_f64() / slot).min(1.0);
            pb.set_message(format!("{name}: {}", scenario::phase_at(f)));
            pb.set_position(((i as f64 + f) * slot * 10.0) as u64);
            std::thread::sleep(Duration::from_millis(100));
        };
        if !status.success() {
            return Err(format!("the {name} run failed ({status})"));
        }
        let text =
            std::fs::read_to_string(&result).map_err(|e| format!("{}: {e}", result.display()))?;
        let _ = std::fs::remove_file(&result);
        runs.push(serde_json::from_str(&text).map_err(|e| format!("{name}'s figures: {e}"))?);
    }
    pb.finish_and_clear();
    Ok(runs)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("{}: {e}", args.out.display());
        std::process::exit(1);
    }
    if let Some((name, result, secs)) = &args.child {
        if let Err(e) = child(&args, name, result, *secs) {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let machine = Machine::read();
    if !args.json {
        println!(
            "pageheap-workload: {} allocators x {:.1} s, {} threads, {:.2} GiB live, seed {}\nmachine: {}",
            args.allocators.len(),
            args.duration / args.allocators.len() as f64,
            args.threads,
            args.live_gib,
            args.seed,
            machine.line()
        );
    }
    let runs = match run_children(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let mut rep = Report {
        machine,
        duration_s: args.duration,
        threads: args.threads,
        live_gib: args.live_gib,
        limit_gib: args.limit_gib.unwrap_or(args.live_gib / 2.0),
        seed: args.seed,
        pictures: Vec::new(),
        runs,
    };
    let written = report::rss_plot(&args.out, "rss", &rep).map(|mut p| {
        p.extend(rep.runs.iter().flat_map(|r| r.pictures.clone()));
        p
    });
    match written {
        Ok(p) => rep.pictures = p,
        Err(e) => {
            eprintln!("drawing the pictures: {e}");
            std::process::exit(1);
        }
    }
    let json = serde_json::to_string_pretty(&rep).expect("the report serialises");
    let files = [
        ("report.json", json.clone()),
        ("index.html", report::html(&rep)),
    ];
    for (f, text) in files {
        let p = args.out.join(f);
        if let Err(e) = std::fs::write(&p, text) {
            eprintln!("{}: {e}", p.display());
            std::process::exit(1);
        }
    }
    if args.json {
        println!("{json}");
    } else {
        print!("{}", report::tables(&rep));
        println!(
            "report: {} (tables, pictures, every figure in report.json)",
            args.out.join("index.html").display()
        );
    }
}
