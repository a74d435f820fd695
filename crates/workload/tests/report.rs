//! The main job's short run, as the gate runs it: every allocator, every
//! figure in the JSON, and every picture decoded (PNG) or parsed (SVG).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_pageheap-workload");
const ALLOCATORS: [&str; 5] = [
    "system",
    "jemalloc",
    "mimalloc",
    "pageheap-go127",
    "pageheap-go119",
];

fn num(v: &Value, key: &str) -> f64 {
    v.get(key)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{key} missing or not a number in {v:.200}"))
}

/// Decodes a PNG whole and returns its size and how many distinct colours
/// it has.
fn decode_png(path: &Path) -> (u32, u32, usize) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let bpp = info.color_type.samples();
    let mut colours: Vec<&[u8]> = buf[..info.buffer_size()].chunks(bpp).collect();
    colours.sort_unstable();
    colours.dedup();
    (info.width, info.height, colours.len())
}

/// Parses an SVG and returns its declared size and how many `rect` and
/// `text` elements it has.
fn parse_svg(path: &Path) -> (u32, u32, usize, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc =
        roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg", "{}", path.display());
    let dim = |a: &str| -> u32 {
        root.attribute(a)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}: no {a}", path.display()))
    };
    let count = |t: &str| {
        doc.descendants()
            .filter(|n| n.tag_name().name() == t)
            .count()
    };
    (dim("width"), dim("height"), count("rect"), count("text"))
}

#[test]
fn short_run_has_every_figure_and_picture() {
    let out = std::env::temp_dir().join(format!("pageheap-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = Command::new(EXE)
        .args([
            "--duration",
            "3",
            "--live-gib",
            "0.125",
            "--threads",
            "2",
            "--json",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("the workload runs");
    assert!(
        o.status.success(),
        "status {}; stderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let rep: Value = serde_json::from_slice(&o.stdout).expect("--json prints the report");
    let on_disk: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json")).expect("report.json"),
    )
    .expect("report.json parses");
    assert_eq!(rep, on_disk, "stdout and report.json carry the same report");

    assert!(!rep["machine"]["cpu"].as_str().unwrap_or("").is_empty());
    assert!(num(&rep["machine"], "cpus") >= 1.0);
    assert_eq!(num(&rep, "duration_s"), 3.0);
    let runs = rep["runs"].as_array().expect("runs");
    let names: Vec<&str> = runs
        .iter()
        .map(|r| r["settings"]["allocator"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ALLOCATORS);
    for r in runs {
        let name = r["settings"]["allocator"].as_str().unwrap_or("?");
        let ours = name.starts_with("pageheap");
        assert!(
            !r["config"].as_str().unwrap_or("").is_empty(),
            "{name}: config stated"
        );
        for kind in ["alloc", "free"] {
            let l = &r[kind];
            let (p50, p99, p999, max) = (
                num(l, "p50_ns"),
                num(l, "p99_ns"),
                num(l, "p999_ns"),
                num(l, "max_ns"),
            );
            assert!(num(l, "count") > 100.0, "{name} {kind}: calls timed");
            assert!(
                p50 > 0.0 && p50 <= p99 && p99 <= p999 && p999 <= max,
                "{name} {kind}: {l}"
            );
            assert!(num(l, "mean_ns") > 0.0);
        }
        assert!(num(r, "churn_ops_per_sec") > 0.0, "{name}: churn ran");
        assert!(num(r, "clock_overhead_ns") >= 0.0);
        let phases: Vec<&str> = r["phases"]
            .as_array()
            .expect("phases")
            .iter()
            .map(|p| p["name"].as_str().expect("phase name"))
            .collect();
        assert_eq!(phases, ["grow", "churn", "drop", "idle", "limit"], "{name}");
        for p in r["phases"].as_array().into_iter().flatten() {
            assert!(num(p, "end_s") >= num(p, "start_s"), "{name}: {p}");
            for k in ["ops", "ops_per_sec", "rss_end", "cpu_s"] {
                num(p, k);
            }
        }
        let samples = r["rss"].as_array().expect("rss samples");
        assert!(
            samples.len() >= 20,
            "{name}: {} samples in 0.6 s at 10 ms",
            samples.len()
        );
        let baseline = num(r, "baseline_rss");
        assert!(baseline > 0.0, "{name}: the OS reports resident memory");
        // The live data was 0.125 GiB of touched memory: the peak must show it.
        assert!(
            num(r, "peak_rss") >= baseline + 0.1 * (1u64 << 30) as f64,
            "{name}: peak {}",
            r["peak_rss"]
        );
        for k in [
            "grow_secs",
            "failed_allocs",
            "live_before_drop",
            "dropped_bytes",
            "rss_at_drop",
            "rss_end_idle",
            "returned_share",
            "limit_bytes",
            "limit_peak_over_baseline",
            "limit_share_over",
        ] {
            num(r, k);
        }
        assert!(
            num(r, "dropped_bytes") > 0.5 * num(r, "live_before_drop"),
            "{name}: the drop freed most"
        );
        assert!(r["secs_to_half"].is_null() || r["secs_to_half"].is_f64());
        assert!(r["secs_to_90"].is_null() || r["secs_to_90"].is_f64());
        assert_eq!(r["limit_enforced"].as_bool(), Some(ours), "{name}");
        assert_eq!(
            r["background_cpu_s"].is_f64(),
            ours,
            "{name}: background CPU"
        );
        assert_eq!(r["background_cpu_share"].is_f64(), ours, "{name}");
        let maps = r["pictures"].as_array().expect("pictures").len();
        assert_eq!(
            maps,
            if ours { 4 } else { 0 },
            "{name}: heap maps (2 moments x SVG, PNG)"
        );
    }

    let pictures: Vec<&str> = rep["pictures"]
        .as_array()
        .expect("pictures")
        .iter()
        .map(|p| p.as_str().expect("file name"))
        .collect();
    assert_eq!(pictures.len(), 2 + 2 * 4, "{pictures:?}");
    let html = std::fs::read_to_string(out.join("index.html")).expect("index.html");
    for p in &pictures {
        let path = out.join(p);
        if let Some(stem) = p.strip_suffix(".png") {
            let (w, h, colours) = decode_png(&path);
            let (sw, sh, rects, texts) = parse_svg(&out.join(format!("{stem}.svg")));
            assert_eq!((w, h), (sw, sh), "{p}: PNG and SVG are drawn at one size");
            assert!(colours >= 4, "{p}: {colours} colours, a blank picture?");
            assert!(texts >= 5, "{p}: title, labels and legend");
            assert!(rects >= 5, "{p}: {rects} rects");
            assert!(html.contains(p), "index.html shows {p}");
            if stem.starts_with("heap-map") {
                // The map is near square once the heap has a few dozen chunks.
                assert!(w >= 900 && h > 100, "{p}: {w}x{h}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn help_exits_zero_and_shows_defaults() {
    let o = Command::new(EXE).arg("--help").output().expect("runs");
    assert!(o.status.success(), "{}", o.status);
    let text = String::from_utf8_lossy(&o.stdout);
    for want in [
        "--duration SECS",
        "[default: 30]",
        "--threads N",
        "--live-gib X",
        "--seed N",
        "--json",
        "--out DIR",
    ] {
        assert!(text.contains(want), "--help lacks {want}:\n{text}");
    }
}

#[test]
fn bad_arguments_exit_two() {
    for args in [
        &["--bogus"][..],
        &["--threads", "0"],
        &["--duration", "-1"],
        &["--seed", "0"],
        &["--allocators", "tcmalloc"],
        &["--live-gib"],
    ] {
        let o = Command::new(EXE).args(args).output().expect("runs");
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
