//! The xtask commands. Each shells out to cargo (or to the Go oracle's script)
//! and turns failure into an `Err` with a message that says what to run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

type Res = Result<(), String>;

/// Targets `arena` must build for; checked by `cargo xtask cross`.
const CROSS_TARGETS: &[&str] = &[
    "x86_64-pc-windows-gnu",
    "aarch64-apple-darwin",
    "wasm32-unknown-unknown",
    "i686-unknown-linux-gnu",
];

/// Bare-metal targets the `no_std` crates must build for (no OS at all);
/// built by `cargo xtask cross`.
const NO_STD_TARGETS: &[&str] = &["x86_64-unknown-none", "thumbv7em-none-eabihf"];

/// The `no_std` crates, built for [`NO_STD_TARGETS`] without default
/// features.
const NO_STD_CRATES: &[&str] = &["pageheap-ranges", "pageheap-arena", "pageheap-alloc"];

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

pub(crate) fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Cargo for the nightly toolchain. `RUSTUP_TOOLCHAIN` set by the stable
/// `cargo xtask` invocation would otherwise pin the child to stable.
fn nightly(tool: &str) -> Command {
    toolchain(tool, "nightly")
}

/// `tool +NAME`, through the rustup proxy.
fn toolchain(tool: &str, name: &str) -> Command {
    let mut c = Command::new(tool);
    c.current_dir(root())
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .arg(format!("+{name}"));
    c
}

/// The workspace's declared minimum Rust version (`rust-version`).
fn msrv_version() -> Result<String, String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml"))
        .map_err(|e| format!("reading Cargo.toml: {e}"))?;
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .map(str::to_string)
        .ok_or_else(|| "no rust-version in the workspace Cargo.toml".into())
}

/// Checks the whole workspace, tests and benches included, with the
/// declared minimum Rust version, installing that toolchain with rustup if
/// it is missing. If it cannot be installed the step says so and counts as
/// not run; it does not pass silently.
pub fn msrv() -> Res {
    let v = msrv_version()?;
    let have = toolchain("rustc", &v).arg("--version").output();
    if !have.is_ok_and(|o| o.status.success()) {
        eprintln!("xtask: Rust {v} missing; installing it with rustup (minimal profile)");
        let installed = Command::new("rustup")
            .args(["toolchain", "install", &v, "--profile", "minimal"])
            .status();
        if !installed.is_ok_and(|s| s.success()) {
            println!("msrv: NOT RUN: Rust {v} is not installed and rustup could not install it");
            return Ok(());
        }
    }
    run(
        &format!("cargo +{v} check --workspace --all-targets"),
        toolchain("cargo", &v).args([
            "check",
            "--workspace",
            "--all-targets",
            "--target-dir",
            "target/msrv",
        ]),
    )?;
    println!("msrv: the workspace builds with Rust {v}, tests and benches included");
    Ok(())
}

fn run(what: &str, cmd: &mut Command) -> Res {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// Runs the CI gate, stopping at the first failing step.
pub fn ci() -> Res {
    type Step = (&'static str, fn() -> Res);
    let steps: &[Step] = &[
        ("fmt", || {
            run(
                "cargo fmt --check",
                cargo().args(["fmt", "--all", "--check"]),
            )?;
            run(
                "cargo fmt --check (fuzz)",
                cargo().args([
                    "fmt",
                    "--all",
                    "--check",
                    "--manifest-path",
                    "fuzz/Cargo.toml",
                ]),
            )
        }),
        ("clippy", || {
            run(
                "clippy",
                cargo().args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--all-features",
                    "--",
                    "-D",
                    "warnings",
                ]),
            )
        }),
        ("test", || {
            run(
                "tests",
                cargo().args(["test", "--workspace", "--all-features"]),
            )
        }),
        ("doc", || {
            run(
                "docs",
                cargo()
                    .args(["doc", "--workspace", "--no-deps"])
                    .env("RUSTDOCFLAGS", "-D warnings"),
            )
        }),
        ("benches", || {
            run(
                "benches compiled",
                cargo().args(["bench", "--workspace", "--no-run"]),
            )
        }),
        ("examples", examples),
        ("fuzz-build", || {
            run(
                "fuzz targets compiled",
                // An explicit target directory, so that `fuzz-regress`
                // finds the binaries whatever `CARGO_TARGET_DIR` says.
                cargo().args([
                    "build",
                    "--manifest-path",
                    "fuzz/Cargo.toml",
                    "--bins",
                    "--target-dir",
                    "fuzz/target",
                ]),
            )
        }),
        ("fuzz-regress", fuzz_regressions),
        ("package", package),
        ("cross", cross),
        ("msrv", msrv),
        ("conformance", || conformance(&[])),
    ];
    let mut summary = Vec::new();
    let total = Instant::now();
    for (name, step) in steps {
        eprintln!("\nxtask ci: == {name} ==");
        let t = Instant::now();
        let res = step();
        let secs = t.elapsed().as_secs_f64();
        summary.push(format!(
            "ci step {name:<12} {} ({secs:.0} s)",
            if res.is_ok() { "ok" } else { "FAILED" }
        ));
        if let Err(e) = res {
            for line in &summary {
                println!("{line}");
            }
            return Err(format!("ci step `{name}`: {e}"));
        }
    }
    for line in &summary {
        println!("{line}");
    }
    println!(
        "ci: {} passed, 0 failed ({:.0} s)",
        steps.len(),
        total.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The published packages, in dependency order.
const PUBLISHED: &[&str] = &[
    "pageheap-ranges",
    "pageheap-arena",
    "pageheap-alloc",
    "pageheap",
];

/// `cargo package` and `cargo publish --dry-run` of every published crate,
/// verified (each packaged crate
/// builds on its own against the others as packaged), then the packaged
/// crates' doctests and examples built and run from a scratch workspace
/// outside the repository, with the packaged siblings patched in for the
/// versions crates.io does not have yet. The packaged crates' unit and
/// integration tests are not built there: they use the unpublished test
/// kit, which packaging strips; the workspace runs them.
pub fn package() -> Res {
    forget_packaged_sources()?;
    let mut cmd = cargo();
    cmd.args(["package", "--allow-dirty"]);
    for p in PUBLISHED {
        cmd.args(["-p", p]);
    }
    run("cargo package (verified)", &mut cmd)?;
    let mut cmd = cargo();
    cmd.args(["publish", "--dry-run", "--allow-dirty"]);
    for p in PUBLISHED {
        cmd.args(["-p", p]);
    }
    run("cargo publish --dry-run", &mut cmd)?;
    let version = env!("CARGO_PKG_VERSION");
    let scratch = std::env::temp_dir().join("pageheap-package-check");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)
        .map_err(|e| format!("creating {}: {e}", scratch.display()))?;
    let mut members = Vec::new();
    let mut patches = String::new();
    for p in PUBLISHED {
        let dir = format!("{p}-{version}");
        run(
            &format!("unpacking {dir}.crate"),
            // `-m`: stamp the files now. Cargo decides freshness by
            // modification time, and the times kept in a package are older
            // than the test binaries a previous run left in the target dir.
            Command::new("tar")
                .arg("-mxzf")
                .arg(root().join(format!("target/package/{dir}.crate")))
                .arg("-C")
                .arg(&scratch),
        )?;
        members.push(format!("\"{dir}\""));
        patches.push_str(&format!("{p} = {{ path = \"{dir}\" }}\n"));
    }
    let manifest = format!(
        "[workspace]\nresolver = \"2\"\nmembers = [{}]\n\n[patch.crates-io]\n{patches}\n\
         # As in the repository: the tests replay long sequences.\n[profile.dev]\nopt-level = 1\n",
        members.join(", ")
    );
    std::fs::write(scratch.join("Cargo.toml"), manifest).map_err(|e| e.to_string())?;
    let in_scratch = |args: &[&str]| {
        let mut c = cargo();
        c.current_dir(&scratch)
            .args(args)
            .arg("--target-dir")
            .arg(root().join("target/package-check"));
        c
    };
    // Unit, integration and doc tests, and the examples built: everything
    // a user who downloads a crate can run. No test may need the
    // unpublished test kit (its tests live in `crates/testkit/tests`).
    run(
        "packaged crates' tests (unit, integration, doc)",
        &mut in_scratch(&["test", "--workspace", "--all-features"]),
    )?;
    let mut ran = 0;
    for (p, e) in EXAMPLES {
        run(
            &format!("packaged example {e} of {p}"),
            &mut in_scratch(&["run", "--quiet", "-p", p, "--example", e]),
        )?;
        ran += 1;
    }
    println!(
        "package: {} crates packaged and verified; their unit, integration and doc tests pass and {ran} examples run from the packages",
        PUBLISHED.len()
    );
    Ok(())
}

/// Deletes the sources cargo extracted from earlier runs' packages.
///
/// `cargo package` verifies each crate against the others' fresh packages
/// through a temporary local registry, and cargo extracts registry crates
/// into `$CARGO_HOME/registry/src/<registry>/<name>-<version>` once: a
/// directory left by an earlier run with the same version is used as it
/// is, so verification would build today's crate against yesterday's
/// dependencies. Only local registries (directories named `-<hash>`) and
/// this workspace's crates are touched.
fn forget_packaged_sources() -> Res {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let src = home.join("registry/src");
    let Ok(registries) = std::fs::read_dir(&src) else {
        return Ok(());
    };
    for reg in registries.flatten() {
        if !reg.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for p in PUBLISHED {
            let dir = reg
                .path()
                .join(format!("{p}-{}", env!("CARGO_PKG_VERSION")));
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| format!("removing {}: {e}", dir.display()))?;
            }
        }
    }
    Ok(())
}

/// The examples a user starts from, as `(package, example)`; the gate runs
/// each (they assert what they print). The README's workload
/// (`crates/workload`) is the main job, not a test, and runs on its own.
const EXAMPLES: &[(&str, &str)] = &[
    ("pageheap-alloc", "frames"),
    ("pageheap-alloc", "custom_os"),
    ("pageheap-alloc", "geometry_table"),
    ("pageheap", "gc_spans"),
    ("pageheap", "global"),
];

/// Runs every example in [`EXAMPLES`].
pub fn examples() -> Res {
    for (p, e) in EXAMPLES {
        run(
            &format!("example {e} of {p}"),
            cargo().args(["run", "--quiet", "-p", p, "--example", e]),
        )?;
    }
    println!("examples: {} run, 0 failed", EXAMPLES.len());
    Ok(())
}

/// `cargo check -p pageheap-arena` for every cross target, and a build of
/// every `no_std` crate for the bare-metal targets, adding targets with
/// rustup when they are missing.
pub fn cross() -> Res {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cross-target checks need rustup: {e}"))?;
    let installed = String::from_utf8_lossy(&installed.stdout).to_string();
    for t in CROSS_TARGETS.iter().chain(NO_STD_TARGETS) {
        if !installed.lines().any(|l| l.trim() == *t) {
            eprintln!("xtask: target {t} missing; adding it with rustup");
            run(
                &format!("rustup target add {t} (needed for the cross-target check)"),
                Command::new("rustup").args(["target", "add", t]),
            )?;
        }
    }
    for t in CROSS_TARGETS {
        run(
            &format!("cargo check -p pageheap-arena --target {t}"),
            cargo().args(["check", "-p", "pageheap-arena", "--target", t]),
        )?;
    }
    for t in NO_STD_TARGETS {
        for c in NO_STD_CRATES {
            run(
                &format!("cargo build -p {c} --no-default-features --target {t}"),
                cargo().args(["build", "-p", c, "--no-default-features", "--target", t]),
            )?;
        }
    }
    println!(
        "cross: pageheap-arena checked for {} targets; {} no_std crates built for {}",
        CROSS_TARGETS.len(),
        NO_STD_CRATES.len(),
        NO_STD_TARGETS.join(" and ")
    );
    Ok(())
}

/// Replays every committed fuzz input (`fuzz/regressions/TARGET/*`) through
/// its target's libFuzzer binary, built by the `fuzz-build` step: each input
/// runs once and any crash fails the step. A folder named after no target
/// is an error, so an input cannot sit unreplayed.
pub fn fuzz_regressions() -> Res {
    let targets = fuzz_targets()?;
    let dir = root().join("fuzz/regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))? {
        let sub = entry.map_err(|e| e.to_string())?.path();
        let name = sub
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !targets.contains(&name) {
            return Err(format!(
                "{} names no fuzz target (targets: {})",
                sub.display(),
                targets.join(", ")
            ));
        }
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&sub)
            .map_err(|e| format!("reading {}: {e}", sub.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        inputs.sort();
        if inputs.is_empty() {
            continue;
        }
        let bin = root().join("fuzz/target/debug").join(&name);
        if !bin.exists() {
            return Err(format!(
                "{} is not built; `cargo xtask ci` builds it first (or `cargo build \
                 --manifest-path fuzz/Cargo.toml --bins --target-dir fuzz/target`)",
                bin.display()
            ));
        }
        run(
            &format!("replaying {} input(s) of fuzz target {name}", inputs.len()),
            Command::new(&bin)
                .current_dir(root())
                .arg("-rss_limit_mb=4096")
                .args(&inputs),
        )?;
        replayed += inputs.len();
    }
    println!("fuzz regressions: {replayed} input(s) replayed, 0 failed");
    if replayed == 0 {
        return Err("no committed fuzz input found under fuzz/regressions".into());
    }
    Ok(())
}

/// The long timing traces (`perf/`, ...).
fn trace_dir() -> PathBuf {
    PathBuf::from(pageheap_testkit::PERF_TRACES)
}

/// The conformance traces, one directory per policy.
fn conformance_dir() -> PathBuf {
    PathBuf::from(pageheap_testkit::CONFORMANCE_TRACES)
}

fn list_traces(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "trace"))
        .collect();
    v.sort();
    Ok(v)
}

/// Replays the project's conformance traces plus `extra` files, printing one
/// line per failing trace and the closing `conformance: N passed, M failed`.
pub fn conformance(extra: &[String]) -> Res {
    if cfg!(debug_assertions) {
        // Replays of the long traces want an optimised build.
        return reinvoke_release("conformance", extra);
    }
    let mut files = Vec::new();
    for policy in ["go119", "go127"] {
        files.extend(list_traces(&conformance_dir().join(policy))?);
    }
    for perf in ["perf", "perf-go127"] {
        files.extend(list_traces(&trace_dir().join(perf))?);
    }
    files.extend(extra.iter().map(PathBuf::from));
    let report = pageheap_testkit::replay::conformance(&files);
    for f in report.files.iter().filter(|f| !f.outcome.passed()) {
        println!("{}: {}", f.path.display(), f.outcome);
    }
    let (passed, failed) = (report.passed(), report.failed());
    println!("conformance: {passed} passed, {failed} failed");
    if failed > 0 {
        Err(format!("{failed} trace(s) do not conform"))
    } else {
        Ok(())
    }
}

/// Re-runs this xtask command from a release build.
fn reinvoke_release(cmd: &str, args: &[String]) -> Res {
    run(
        &format!("xtask {cmd} (release)"),
        cargo()
            .args(["run", "--quiet", "--release", "-p", "xtask", "--", cmd])
            .args(args),
    )
}

/// Times trace replays; prints `FILE NS_PER_OP` per trace (median of runs).
pub fn replay_bench(files: &[String]) -> Res {
    if files.is_empty() {
        return Err("replay-bench needs at least one trace file".into());
    }
    if cfg!(debug_assertions) {
        return reinvoke_release("replay-bench", files);
    }
    for f in files {
        let ns = pageheap_testkit::replay::bench_file(Path::new(f), 7);
        println!("{f} {ns:.1}");
    }
    println!("replay-bench: {} traces", files.len());
    Ok(())
}

/// The background scavenger's return-time benchmark on the real OS
/// (`crates/workload/src/bin/scavenger-return.rs`), release build.
pub fn scavenger_bench(args: &[String]) -> Res {
    run(
        "scavenger-return benchmark",
        cargo()
            .args([
                "run",
                "--quiet",
                "--release",
                "-p",
                "pageheap-workload",
                "--bin",
                "scavenger-return",
                "--",
            ])
            .args(args),
    )
}

/// Our replay bench and the Go oracle's on the same files, one table per
/// policy, each against its own Go: `compare-go` times `perf/` against Go
/// 1.19 and `perf-go127/` against Go 1.27.3; `compare-go go119|go127
/// [GLOB]` one policy (on GLOB if given).
pub fn compare_go(args: &[String]) -> Res {
    if cfg!(debug_assertions) {
        return reinvoke_release("compare-go", args);
    }
    let (policies, glob): (Vec<&str>, Option<&String>) = match args.first().map(String::as_str) {
        Some(p @ ("go119" | "go127")) => (vec![p], args.get(1)),
        Some(_) => (vec!["go119"], args.first()),
        None => (vec!["go119", "go127"], None),
    };
    for policy in policies {
        let dir = if policy == "go127" {
            "perf-go127"
        } else {
            "perf"
        };
        let glob = glob
            .cloned()
            .unwrap_or_else(|| format!("{}/{dir}/*.trace", trace_dir().display()));
        compare_go_policy(policy, &glob)?;
    }
    Ok(())
}

/// [`compare_go`] for one policy and glob.
fn compare_go_policy(policy: &str, glob: &str) -> Res {
    let script = root().join("../shared/oracle/run.sh");
    if !script.exists() {
        return Err(format!(
            "the Go oracle is not at {}; compare-go needs ../shared beside the repo",
            script.display()
        ));
    }
    let out = Command::new("bash")
        .arg(&script)
        .args([policy, "bench", glob])
        .output()
        .map_err(|e| format!("running the Go oracle: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "the Go oracle failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // Lines look like `BenchmarkOracleReplay/NAME-2  2  123 ns/op  45.6 ns/traceop`.
    let mut go = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("BenchmarkOracleReplay/") else {
            continue;
        };
        let name = rest.split_whitespace().next().unwrap_or("");
        let name = name.rsplit_once('-').map_or(name, |(n, _)| n).to_string();
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = fields.iter().position(|f| *f == "ns/traceop") {
            if let Ok(v) = fields[i - 1].parse::<f64>() {
                go.push((name, v));
            }
        }
    }
    if go.is_empty() {
        return Err(format!("no Go results parsed from:\n{text}"));
    }
    let dir = Path::new(glob)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    println!(
        "{:<28} {:>12} {:>12} {:>8}",
        format!("trace ({policy})"),
        "ours ns/op",
        "go ns/op",
        "ours/go"
    );
    let mut worst: f64 = 0.0;
    for (name, go_ns) in &go {
        let file = dir.join(format!("{name}.trace"));
        let ours = pageheap_testkit::replay::bench_file(&file, 7);
        let ratio = ours / go_ns;
        worst = worst.max(ratio);
        println!("{name:<28} {ours:>12.1} {go_ns:>12.1} {ratio:>8.3}");
    }
    println!(
        "compare-go {policy}: {} traces, worst ratio {worst:.3}",
        go.len()
    );
    Ok(())
}

/// Runs the Miri-capable crates' tests under Miri.
pub fn miri() -> Res {
    let have = Command::new("rustup")
        .args(["+nightly", "component", "list", "--installed"])
        .output()
        .map_err(|e| format!("miri needs rustup and a nightly toolchain: {e}"))?;
    if !String::from_utf8_lossy(&have.stdout)
        .lines()
        .any(|l| l.starts_with("miri"))
    {
        eprintln!("xtask: the nightly toolchain has no miri component; adding miri and rust-src");
        run(
            "rustup component add miri",
            Command::new("rustup").args(["+nightly", "component", "add", "miri", "rust-src"]),
        )?;
    }
    // What runs under Miri, and why the rest does not: Miri interprets every
    // instruction, so the long property tests and trace replays (minutes
    // natively) would take hours; they run natively in `cargo xtask ci`.
    let runs: &[(&str, &[&str])] = &[
        ("addr-ranges", &["-p", "pageheap-ranges", "--lib"]),
        ("arena", &["-p", "pageheap-arena", "--features", "sim"]),
        ("pagealloc", &["-p", "pageheap-alloc", "--lib"]),
        (
            "runtime-heap over the simulated OS (facade, GlobalAlloc, Allocator)",
            &[
                "-p",
                "pageheap",
                "--test",
                "sim",
                "--features",
                "allocator-api2",
            ],
        ),
        (
            "testkit (simulated OS)",
            &[
                "-p",
                "pageheap-testkit",
                "--lib",
                "--no-default-features",
                "--features",
                "os",
            ],
        ),
    ];
    eprintln!(
        "xtask: NOT run under Miri (native only): real-OS tests (compiled out with \
         cfg(miri)), addr-ranges' and pagealloc's integration binaries, testkit's trace \
         replays and differential proptests, runtime-heap's real-OS tests (its facade, \
         GlobalAlloc and Allocator impls run over the simulated OS in tests/sim.rs), \
         the README doctests of arena and pagealloc (they reserve from the real OS)"
    );
    for (name, args) in runs {
        run(
            &format!("miri tests of {name}"),
            nightly("cargo")
                .args(["miri", "test"])
                .args(*args)
                .env("PROPTEST_CASES", "8")
                .env(
                    "MIRIFLAGS",
                    "-Zmiri-disable-isolation -Zmiri-permissive-provenance",
                ),
        )?;
    }
    println!("miri: {} passed, 0 failed", runs.len());
    Ok(())
}

fn fuzz_targets() -> Result<Vec<String>, String> {
    let manifest = std::fs::read_to_string(root().join("fuzz/Cargo.toml"))
        .map_err(|e| format!("reading fuzz/Cargo.toml: {e}"))?;
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin {
            if let Some(v) = line.strip_prefix("name") {
                let v = v.trim_start().trim_start_matches('=').trim();
                names.push(v.trim_matches('"').to_string());
            }
        }
    }
    Ok(names)
}

fn ensure_cargo_fuzz() -> Res {
    let ok = nightly("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "xtask: cargo-fuzz is not installed; installing it with `cargo install cargo-fuzz`"
        );
        run(
            "cargo install cargo-fuzz",
            cargo().args(["install", "cargo-fuzz"]),
        )?;
    }
    Ok(())
}

/// The `cargo fuzz run` flags of a target. The two differential targets
/// (`pagealloc_ops`, `heap_ops`) drive safe code over the simulated OS, and
/// most of their time went to AddressSanitizer's zeroing of the simulated
/// reservations and to comparison tracing: without both they run about
/// 25 times faster, which finds more (Miri covers the unsafe code they
/// reach, and `arena_ops` keeps AddressSanitizer on the OS layer).
fn fuzz_flags(target: &str) -> &'static [&'static str] {
    match target {
        "pagealloc_ops" | "heap_ops" => &["-s", "none", "--no-trace-compares"],
        _ => &[],
    }
}

/// Writes a seed input per conformance trace into `pagealloc_ops`'s
/// corpus (`pagestrat::seed_from_trace`), once; returns how many exist.
fn seed_pagealloc_corpus() -> Result<usize, String> {
    let dir = root().join("fuzz/corpus/pagealloc_ops");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let traces = root().join(pageheap_testkit::CONFORMANCE_TRACES);
    let mut n = 0;
    for policy in ["go119", "go127"] {
        let sub = traces.join(policy);
        let Ok(entries) = std::fs::read_dir(&sub) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "trace") {
                continue;
            }
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("trace");
            let seed = dir.join(format!("seed-{policy}-{name}"));
            if !seed.exists() {
                let t = pageheap_testkit::trace::Trace::read(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                std::fs::write(&seed, pageheap_testkit::pagestrat::seed_from_trace(&t))
                    .map_err(|e| format!("{}: {e}", seed.display()))?;
            }
            n += 1;
        }
    }
    Ok(n)
}

/// What one fuzz run reported: executions, executions per second, and the
/// corpus it left (inputs, mean bytes, and for `pagealloc_ops` mean ops).
struct FuzzFigures {
    execs: u64,
    per_sec: u64,
    inputs: usize,
    mean_bytes: f64,
    mean_ops: Option<f64>,
}

fn fuzz_figures(target: &str, stderr: &str) -> FuzzFigures {
    // libFuzzer's last status line: `#N DONE ... exec/s: M ...`.
    let field = |line: &str, key: &str| -> Option<u64> {
        let i = line.find(key)? + key.len();
        line[i..].split_whitespace().next()?.parse().ok()
    };
    let last = stderr
        .lines()
        .rev()
        .find(|l| l.contains("exec/s:") && l.starts_with('#'))
        .unwrap_or("");
    let execs = last
        .trim_start_matches('#')
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let dir = root().join("fuzz/corpus").join(target);
    let sizes: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    let inputs = sizes.len();
    let mean = |f: &dyn Fn(&Vec<u8>) -> usize| {
        sizes.iter().map(|v| f(v) as f64).sum::<f64>() / inputs.max(1) as f64
    };
    FuzzFigures {
        execs,
        per_sec: field(last, "exec/s:").unwrap_or(0),
        inputs,
        mean_bytes: mean(&|v| v.len()),
        // Both targets spend the first byte on their configuration.
        mean_ops: match target {
            "pagealloc_ops" => Some(mean(&|v| {
                pageheap_testkit::pagestrat::decode_ops(v.get(1..).unwrap_or(&[])).len()
            })),
            "heap_ops" => Some(mean(&|v| {
                pageheap_testkit::heapstrat::decode(v.get(1..).unwrap_or(&[])).len()
            })),
            _ => None,
        },
    }
}

/// `fuzz TARGET [--seconds N]` or `fuzz --smoke [--seconds N]` (every
/// target, 60 s each by default), printing each target's executions per
/// second and input sizes.
pub fn fuzz(args: &[String]) -> Res {
    let targets = fuzz_targets()?;
    let secs_arg = |rest: &[String], default: u64| -> Result<u64, String> {
        match rest {
            [] => Ok(default),
            [flag, n] if flag == "--seconds" => {
                n.parse().map_err(|_| format!("bad --seconds value `{n}`"))
            }
            _ => Err("expected `--seconds N`".into()),
        }
    };
    let usage = || {
        format!(
            "usage: cargo xtask fuzz TARGET [--seconds N] | --smoke [--seconds N]; targets: {}",
            targets.join(", ")
        )
    };
    let (which, secs): (Vec<String>, u64) = match args {
        [flag, rest @ ..] if flag == "--smoke" => (targets.clone(), secs_arg(rest, 60)?),
        [t, rest @ ..] => (vec![t.clone()], secs_arg(rest, 600).map_err(|_| usage())?),
        _ => return Err(usage()),
    };
    for t in &which {
        if !targets.contains(t) {
            return Err(format!(
                "no fuzz target `{t}`; targets: {}",
                targets.join(", ")
            ));
        }
    }
    ensure_cargo_fuzz()?;
    if which.iter().any(|t| t == "pagealloc_ops") {
        let n = seed_pagealloc_corpus()?;
        eprintln!("xtask: pagealloc_ops corpus seeded from {n} conformance traces");
    }
    let mut rows = Vec::new();
    for t in &which {
        let mut cmd = nightly("cargo");
        cmd.args(["fuzz", "run"]).args(fuzz_flags(t)).arg(t).args([
            "--",
            &format!("-max_total_time={secs}"),
            "-len_control=0",
            "-max_len=512",
        ]);
        eprintln!("xtask: fuzz {t} for {secs} s: {cmd:?}");
        let out = cmd
            .output()
            .map_err(|e| format!("running cargo fuzz: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            eprintln!("{stderr}");
            return Err(format!("fuzz target {t} failed ({})", out.status));
        }
        rows.push((t.clone(), fuzz_figures(t, &stderr)));
    }
    println!(
        "{:<16} {:>6} {:>10} {:>8} {:>8} {:>11} {:>9}",
        "target", "secs", "execs", "exec/s", "inputs", "mean bytes", "mean ops"
    );
    for (t, f) in &rows {
        println!(
            "{t:<16} {secs:>6} {:>10} {:>8} {:>8} {:>11.0} {:>9}",
            f.execs,
            f.per_sec,
            f.inputs,
            f.mean_bytes,
            f.mean_ops.map_or("-".into(), |m| format!("{m:.0}"))
        );
    }
    println!("fuzz: {} targets passed, 0 failed", which.len());
    Ok(())
}

/// `bench-report [OPS]`: `benches`' `range_peers` on the three streams
/// (`benches::ranges`), timed (sum of per-batch minima over 5 runs) and,
/// when valgrind is installed, counted in instructions by callgrind over
/// the replay alone. One table: per workload and allocator, ns/op,
/// instructions/op, refused allocations, end-of-stream fragmentation, and
/// this allocator's time against the fastest peer that refused no more
/// than it did.
pub fn bench_report(args: &[String]) -> Res {
    let ops: usize = match args {
        [] => 400_000,
        [n] => n.parse().map_err(|_| format!("bad OPS `{n}`"))?,
        _ => return Err("usage: cargo xtask bench-report [OPS]".into()),
    };
    run(
        "range_peers built",
        cargo().args([
            "build",
            "--release",
            "-p",
            "benches",
            "--bin",
            "range_peers",
        ]),
    )?;
    let bin = root().join("target/release/range_peers");
    let out = Command::new(&bin)
        .args(["time", &ops.to_string()])
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "range_peers time failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    struct Row {
        workload: String,
        alloc: String,
        ns: f64,
        failed: usize,
        frag: f64,
        instr: Option<f64>,
    }
    let field = |line: &str, key: &str| -> Option<String> {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(key).map(str::to_string))
    };
    let mut rows: Vec<Row> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut it = line.split_whitespace();
        let (Some(w), Some(a)) = (it.next(), it.next()) else {
            continue;
        };
        rows.push(Row {
            workload: w.into(),
            alloc: a.into(),
            ns: field(line, "ns=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN),
            failed: field(line, "failed=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            frag: field(line, "frag=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN),
            instr: None,
        });
    }
    let valgrind = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if valgrind {
        for r in &mut rows {
            let cg =
                std::env::temp_dir().join(format!("range-peers-{}-{}.cg", r.workload, r.alloc));
            let o = Command::new("valgrind")
                .args(["--tool=callgrind", "--toggle-collect=*replay_only*"])
                .arg(format!("--callgrind-out-file={}", cg.display()))
                .arg(&bin)
                .args(["run", &r.alloc, &r.workload, &ops.to_string()])
                .output()
                .map_err(|e| format!("valgrind: {e}"))?;
            let _ = std::fs::remove_file(&cg);
            let text = String::from_utf8_lossy(&o.stderr);
            r.instr = text
                .lines()
                .find_map(|l| l.split("Collected :").nth(1))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|n| n / ops as f64);
        }
    } else {
        println!("bench-report: instruction counts NOT RUN: valgrind is not installed");
    }
    println!("machine: {}", machine_line());
    println!(
        "{:<7} {:<17} {:>8} {:>9} {:>8} {:>6} {:>12}",
        "stream", "allocator", "ns/op", "instr/op", "refused", "frag", "ours/fastest"
    );
    for w in ["small", "mixed", "large"] {
        let of = |name: &str| rows.iter().find(|r| r.workload == w && r.alloc == name);
        let Some(ours) = of("pageheap") else { continue };
        let fastest = rows
            .iter()
            .filter(|r| r.workload == w && r.alloc != "pageheap" && r.failed <= ours.failed)
            .min_by(|a, b| a.ns.total_cmp(&b.ns));
        for r in rows.iter().filter(|r| r.workload == w) {
            let ratio = if r.alloc == "pageheap" {
                fastest.map_or("-".into(), |f| format!("{:.2}x {}", r.ns / f.ns, f.alloc))
            } else {
                String::new()
            };
            println!(
                "{:<7} {:<17} {:>8.1} {:>9} {:>8} {:>6.3} {:>12}",
                r.workload,
                r.alloc,
                r.ns,
                r.instr.map_or("-".into(), |i| format!("{i:.0}")),
                r.failed,
                r.frag,
                ratio
            );
        }
    }
    println!(
        "streams: {ops} requests over a 1 GiB heap of 8 KiB pages kept near 70% occupied, whole \
         frees, one seed; refused: allocations the allocator could not place; frag: 1 - largest \
         free run / free pages at the end; the fastest peer is the fastest that refused no more \
         than this allocator"
    );
    Ok(())
}

/// The CPU model and count, for reports.
fn machine_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu}, {n} CPUs")
}
