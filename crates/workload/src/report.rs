//! The report: tables, pictures (SVG and PNG from one drawing code) and an
//! HTML page that puts them together.

use std::fmt::Write as _;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use serde::{Deserialize, Serialize};

use crate::scenario::{RunResult, PHASES};

const MIB: f64 = (1u64 << 20) as f64;
const FONT: &str = "sans-serif";

/// Registers the embedded font once; plotters draws text only with fonts
/// registered this way (no system fonts are looked up).
pub fn init_fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| panic!("the embedded DejaVu Sans parses"));
        plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold())
            .unwrap_or_else(|_| panic!("the embedded DejaVu Sans Bold parses"));
    });
}

/// One chunk's pages: 0 allocated, 1 free, 2 released.
#[derive(Clone, Debug)]
pub struct ChunkPages {
    /// The chunk's base address.
    pub base: usize,
    /// One state per page.
    pub states: Vec<u8>,
}

/// The machine the report ran on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model, from `/proc/cpuinfo`.
    pub cpu: String,
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// Physical memory, bytes.
    pub memory: u64,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads this machine's description.
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(
                || std::env::consts::ARCH.to_string(),
                |s| s.trim().to_string(),
            );
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let l = m.lines().find(|l| l.starts_with("MemTotal:"))?;
                l.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .map_or(0, |kib| kib << 10);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(
            |_| std::env::consts::OS.to_string(),
            |s| s.trim().to_string(),
        );
        Machine {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory,
            kernel,
        }
    }

    /// One line naming the machine.
    pub fn line(&self) -> String {
        format!(
            "{}, {} CPUs, {:.0} GiB, Linux {}",
            self.cpu,
            self.cpus,
            self.memory as f64 / (1u64 << 30) as f64,
            self.kernel
        )
    }
}

/// Everything one invocation measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// The command line's settings.
    pub duration_s: f64,
    /// Worker threads per allocator.
    pub threads: usize,
    /// Live target, GiB.
    pub live_gib: f64,
    /// Limit of the last phase, GiB over the baseline.
    pub limit_gib: f64,
    /// Seed.
    pub seed: u64,
    /// One run per allocator, in order.
    pub runs: Vec<RunResult>,
    /// The pictures written, relative to the report directory.
    pub pictures: Vec<String>,
}

fn mib(b: u64) -> String {
    format!("{:.0}", b as f64 / MIB)
}

fn opt_s(v: Option<f64>) -> String {
    v.map_or_else(|| "never".to_string(), |s| format!("{s:.2}"))
}

/// The two comparison tables as text.
pub fn tables(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "latency per call in ns (clock reads included, touching excluded); throughput with touching"
    );
    let _ = writeln!(
        out,
        "{:<16} {:>7} {:>7} {:>7} {:>9} | {:>7} {:>7} {:>7} {:>9} | {:>11} {:>6}",
        "allocator",
        "alloc50",
        "p99",
        "p99.9",
        "max",
        "free50",
        "p99",
        "p99.9",
        "max",
        "churn op/s",
        "failed"
    );
    for x in &r.runs {
        let (a, f) = (&x.alloc, &x.free);
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:>7} {:>7} {:>9} | {:>7} {:>7} {:>7} {:>9} | {:>11.0} {:>6}",
            x.settings.allocator,
            a.p50_ns,
            a.p99_ns,
            a.p999_ns,
            a.max_ns,
            f.p50_ns,
            f.p99_ns,
            f.p999_ns,
            f.max_ns,
            x.churn_ops_per_sec,
            x.failed_allocs
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "resident memory in MiB, from the OS (/proc/self/statm), baseline included"
    );
    let _ = writeln!(
        out,
        "{:<16} {:>6} {:>6} {:>7} {:>9} {:>8} {:>7} {:>7} | {:>9} {:>7} | {:>9} {:>8} {:>9}",
        "allocator",
        "base",
        "peak",
        "at drop",
        "idle end",
        "returned",
        "50% s",
        "90% s",
        "limit pk",
        "over",
        "bg CPU s",
        "bg share",
        "idle CPU"
    );
    for x in &r.runs {
        let _ = writeln!(
            out,
            "{:<16} {:>6} {:>6} {:>7} {:>9} {:>7.0}% {:>7} {:>7} | {:>9} {:>6.0}% | {:>9} {:>8} {:>9.3}",
            x.settings.allocator,
            mib(x.baseline_rss),
            mib(x.peak_rss),
            mib(x.rss_at_drop),
            mib(x.rss_end_idle),
            x.returned_share * 100.0,
            opt_s(x.secs_to_half),
            opt_s(x.secs_to_90),
            mib(x.limit_peak_over_baseline),
            x.limit_share_over * 100.0,
            x.background_cpu_s.map_or("-".into(), |c| format!("{c:.3}")),
            x.background_cpu_share
                .map_or("-".into(), |c| format!("{:.2}%", c * 100.0)),
            x.phases.iter().find(|p| p.name == "idle").map_or(0.0, |p| p.cpu_s),
        );
    }
    let _ = writeln!(
        out,
        "returned: resident bytes given back between the drop and the end of the idle phase, as a \
         share of the bytes the drop freed (over 100% when memory freed before the drop goes \
         back too); 50%/90% s: seconds after the drop until that share was; limit pk: the limit \
         phase's peak over the baseline (limit {} MiB); over: share of its samples above the \
         limit; bg CPU: the allocator's background thread (its own CPU clock) and its share of \
         one CPU over the run; idle CPU: the whole process in the idle phase, seconds",
        mib(r.runs.first().map_or(0, |x| x.limit_bytes))
    );
    out
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(0x88, 0x88, 0x88),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];

fn draw_rss<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let secs = r
        .runs
        .iter()
        .flat_map(|x| x.rss.last().map(|s| s.0))
        .fold(r.duration_s / r.runs.len().max(1) as f64, f64::max);
    let top = r
        .runs
        .iter()
        .flat_map(|x| {
            x.rss
                .iter()
                .map(move |s| s.1.saturating_sub(x.baseline_rss))
        })
        .max()
        .unwrap_or(0) as f64
        / MIB
        * 1.08
        + 1.0;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "Resident memory added by the scenario, per allocator ({} threads, {:.2} GiB live)",
                r.threads, r.live_gib
            ),
            (FONT, 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..secs, 0f64..top)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("seconds into the allocator's run")
        .y_desc("MiB resident over the baseline")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(e)?;
    // The phases, shaded alternately and named at the top.
    let slot = r.duration_s / r.runs.len().max(1) as f64;
    let bands: Vec<(&str, f64, f64)> = PHASES
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| *n != "drop")
        .map(|(i, (n, f))| {
            let end = PHASES.get(i + 1).map_or(1.0, |p| p.1);
            (*n, f * slot, end * slot)
        })
        .collect();
    for (i, (name, a, b)) in bands.iter().enumerate() {
        let shade = if i % 2 == 0 {
            RGBColor(0xf2, 0xf2, 0xf2)
        } else {
            WHITE
        };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(*a, 0.0), (*b, top)],
                shade.filled(),
            )))
            .map_err(e)?;
        let label = if *name == "idle" {
            "drop 90%, idle"
        } else {
            name
        };
        chart
            .draw_series(std::iter::once(Text::new(
                label.to_string(),
                (*a + slot * 0.01, top * 0.97),
                (FONT, 13).into_font().color(&BLACK),
            )))
            .map_err(e)?;
    }
    let limit = r.runs.first().map_or(0, |x| x.limit_bytes) as f64 / MIB;
    chart
        .draw_series(LineSeries::new(
            [(bands[3].1, limit), (secs, limit)],
            BLACK.stroke_width(1),
        ))
        .map_err(e)?
        .label(format!("memory limit ({limit:.0} MiB)"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    for (i, x) in r.runs.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                x.rss
                    .iter()
                    .map(|&(t, v)| (t, v.saturating_sub(x.baseline_rss) as f64 / MIB)),
                c.stroke_width(2),
            ))
            .map_err(e)?
            .label(x.settings.allocator.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)
}

/// Writes the RSS-over-time plot as `stem.svg` and `stem.png`.
///
/// # Errors
/// A message if drawing or writing fails.
pub fn rss_plot(dir: &Path, stem: &str, r: &Report) -> Result<Vec<String>, String> {
    init_fonts();
    let size = (1100, 560);
    let svg = dir.join(format!("{stem}.svg"));
    draw_rss(&SVGBackend::new(&svg, size).into_drawing_area(), r)?;
    let png = dir.join(format!("{stem}.png"));
    draw_rss(&BitMapBackend::new(&png, size).into_drawing_area(), r)?;
    Ok(vec![format!("{stem}.svg"), format!("{stem}.png")])
}

/// Pixels per chunk: 32 pages across, 16 down, one pixel per page, and a
/// one-pixel gap around each chunk.
const CELL: (i32, i32) = (32, 16);
const PITCH: (i32, i32) = (CELL.0 + 1, CELL.1 + 1);
/// The most chunks a map draws (16 GiB); larger heaps show their first
/// 16 GiB and say so in the title.
const MAX_CHUNKS: usize = 4096;
const STATE_COLOURS: [RGBColor; 3] = [
    RGBColor(0x1f, 0x5f, 0xbf),
    RGBColor(0x9f, 0xd9, 0x8b),
    RGBColor(0xd8, 0xd8, 0xd8),
];

/// The grid: columns of chunks so that the map is close to square.
fn grid(n: usize) -> (usize, usize) {
    let n = n.max(1);
    let cols = ((n as f64 * PITCH.1 as f64 / PITCH.0 as f64).sqrt().ceil() as usize).max(1);
    (cols, n.div_ceil(cols))
}

/// Pixels per page side: 2 for heaps of up to 4 GiB, so a small heap's map
/// is not a thumbnail, else 1.
fn zoom(n: usize) -> i32 {
    if n <= 1024 {
        2
    } else {
        1
    }
}

fn map_size(n: usize) -> (u32, u32) {
    let (cols, rows) = grid(n.min(MAX_CHUNKS));
    let k = zoom(n);
    let w = 130 + cols as i32 * PITCH.0 * k + 20;
    let h = 78 + rows as i32 * PITCH.1 * k + 40;
    (w.max(900) as u32, h as u32)
}

fn draw_map<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    chunks: &[ChunkPages],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let mut totals = [0usize; 3];
    for c in chunks {
        for &s in &c.states {
            totals[s as usize] += 1;
        }
    }
    let page_mib = pageheap::PAGE_BYTES as f64 / MIB;
    let shown = &chunks[..chunks.len().min(MAX_CHUNKS)];
    let text = |s: String, x: i32, y: i32, size: u32| {
        root.draw(&Text::new(
            s,
            (x, y),
            (FONT, size).into_font().color(&BLACK),
        ))
        .map_err(e)
    };
    let bold = (FONT, 18).into_font().style(FontStyle::Bold).color(&BLACK);
    root.draw(&Text::new(title.to_string(), (12, 8), bold))
        .map_err(e)?;
    text(
        format!(
            "{} chunks of 4 MiB{}: allocated {:.1} MiB, free {:.1} MiB, released {:.1} MiB",
            chunks.len(),
            if shown.len() < chunks.len() {
                format!(" (first {} drawn)", shown.len())
            } else {
                String::new()
            },
            totals[0] as f64 * page_mib,
            totals[1] as f64 * page_mib,
            totals[2] as f64 * page_mib
        ),
        12,
        34,
        14,
    )?;
    // Legend.
    let names = ["allocated", "free", "released to the OS"];
    for (i, name) in names.iter().enumerate() {
        let x = 12 + i as i32 * 150;
        root.draw(&Rectangle::new(
            [(x, 56), (x + 12, 68)],
            STATE_COLOURS[i].filled(),
        ))
        .map_err(e)?;
        text((*name).to_string(), x + 16, 55, 13)?;
    }
    let (cols, rows) = grid(shown.len());
    let k = zoom(chunks.len());
    let (x0, y0) = (130, 78);
    let tick_every = rows.div_ceil(40).max(1);
    for (i, c) in shown.iter().enumerate() {
        let (col, row) = ((i % cols) as i32, (i / cols) as i32);
        let (cx, cy) = (x0 + col * PITCH.0 * k, y0 + row * PITCH.1 * k);
        if col == 0 && (row as usize).is_multiple_of(tick_every) {
            text(format!("{:#014x}", c.base), 8, cy + 2, 11)?;
        }
        for line in 0..CELL.1 {
            let seg = &c.states[(line * CELL.0) as usize..((line + 1) * CELL.0) as usize];
            let mut x = 0;
            while x < seg.len() {
                let s = seg[x];
                let n = seg[x..].iter().take_while(|&&v| v == s).count();
                root.draw(&Rectangle::new(
                    [
                        (cx + x as i32 * k, cy + line * k),
                        (cx + (x + n) as i32 * k, cy + (line + 1) * k),
                    ],
                    STATE_COLOURS[s as usize].filled(),
                ))
                .map_err(e)?;
                x += n;
            }
        }
    }
    let foot = y0 + rows as i32 * PITCH.1 * k + 8;
    text(
        format!(
            "one block per 4 MiB chunk, {} per 8 KiB page; rows of {cols} chunks in address order, labelled with their first address",
            if k == 1 { "one pixel".to_string() } else { format!("{k}x{k} pixels") }
        ),
        12,
        foot,
        12,
    )?;
    root.present().map_err(e)
}

/// Writes a heap map as `stem.svg` and `stem.png`.
///
/// # Errors
/// A message if drawing or writing fails.
pub fn heap_map(
    dir: &Path,
    stem: &str,
    title: &str,
    chunks: &[ChunkPages],
) -> Result<Vec<String>, String> {
    init_fonts();
    let size = map_size(chunks.len());
    let svg = dir.join(format!("{stem}.svg"));
    draw_map(
        &SVGBackend::new(&svg, size).into_drawing_area(),
        title,
        chunks,
    )?;
    let png = dir.join(format!("{stem}.png"));
    draw_map(
        &BitMapBackend::new(&png, size).into_drawing_area(),
        title,
        chunks,
    )?;
    Ok(vec![format!("{stem}.svg"), format!("{stem}.png")])
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The HTML page: settings, the tables, each allocator's configuration and
/// the pictures.
pub fn html(r: &Report) -> String {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>pageheap workload report</title>\
         <style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}img{{max-width:100%;border:1px solid #ccc}}</style></head><body>"
    );
    let _ = writeln!(
        h,
        "<h1>pageheap against the system allocator, jemalloc and mimalloc</h1>"
    );
    let _ = writeln!(
        h,
        "<p>Machine: {}. {:.0} s in all, {} threads per allocator, {:.2} GiB live, limit {:.2} GiB, seed {}. \
         Each allocator ran alone in its own process on the same operation stream.</p>",
        esc(&r.machine.line()),
        r.duration_s,
        r.threads,
        r.live_gib,
        r.limit_gib,
        r.seed
    );
    let _ = writeln!(h, "<pre>{}</pre>", esc(&tables(r)));
    let _ = writeln!(h, "<h2>Configurations</h2><ul>");
    for x in &r.runs {
        let _ = writeln!(
            h,
            "<li><b>{}</b>: {}</li>",
            esc(&x.settings.allocator),
            esc(&x.config)
        );
    }
    let _ = writeln!(h, "</ul><h2>Pictures</h2>");
    for p in r.pictures.iter().filter(|p| p.ends_with(".png")) {
        let svg = p.replace(".png", ".svg");
        let _ = writeln!(
            h,
            "<p><a href=\"{svg}\"><img src=\"{p}\" alt=\"{p}\"></a><br><small>{p} (click for the SVG)</small></p>"
        );
    }
    let _ = writeln!(
        h,
        "<p>Every figure is in <a href=\"report.json\">report.json</a>.</p></body></html>"
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_near_square() {
        for n in [1, 7, 256, 700, 4096] {
            let (cols, rows) = grid(n);
            assert!(
                cols * rows >= n && cols * (rows - 1) < n + cols,
                "{n}: {cols}x{rows}"
            );
            let (w, h) = (cols as f64 * PITCH.0 as f64, rows as f64 * PITCH.1 as f64);
            if n >= 256 {
                assert!((w / h - 1.0).abs() < 0.2, "{n}: {w}x{h}");
            }
        }
    }
}
