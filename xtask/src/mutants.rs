//! `cargo xtask mutants`: mutation testing of the core.
//!
//! Each mutant is one small change to one source line, of the kinds
//! cargo-mutants makes: a comparison, arithmetic, bitwise or logical
//! operator replaced by its neighbour (`<` by `<=`, `+` by `-`, `&&` by
//! `||`, ...), `true` and `false` swapped, an `if` condition negated, and a
//! function made to return at once (`()`, `0`/`1`, `true`/`false`). The
//! file is changed in place, the crate's tests are built (a mutant that
//! does not compile is *unviable*) and run: a failing or hanging test
//! *kills* the mutant, a passing suite lets it *survive*. The file is
//! restored after every mutant, and also when the run is interrupted by a
//! failure of the runner itself.
//!
//! Lines that are comments, attributes, assertions or string literals, and
//! inline test modules, are not mutated. The full set is large (each
//! mutant costs a rebuild), so `--max N` takes a seeded sample spread over
//! the files; the report gives the score per file (killed over killed plus
//! survived) and lists every survivor, to be killed by a test or argued
//! equivalent. The report is also written to `target/mutants/report.md`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cmd::{cargo as cargo_cmd, root};

/// A file to mutate and the test commands that judge its mutants.
struct Target {
    file: &'static str,
    tests: &'static [&'static [&'static str]],
}

/// pagealloc's own tests first (the quick judge), then, for a mutant they
/// miss, testkit's differential property tests against the flat model and
/// the conformance traces of both policies.
const PAGEALLOC_TESTS: &[&[&str]] = &[
    &["test", "-p", "pageheap-alloc", "--lib", "--tests"],
    &[
        "test",
        "-p",
        "pageheap-testkit",
        "--test",
        "it",
        "--",
        "differential",
        "traces",
    ],
];
const FACADE_TESTS: &[&[&str]] = &[
    &["test", "-p", "pageheap", "--lib", "--tests"],
    &["test", "-p", "pageheap-testkit", "--test", "heap"],
];

/// The core: pagealloc's search, update, free, cache and scavenger, and the
/// facade's growth, quarantine and thread cache.
const TARGETS: &[Target] = &[
    Target {
        file: "crates/pagealloc/src/hints.rs",
        tests: PAGEALLOC_TESTS,
    },
    Target {
        file: "crates/pagealloc/src/tree.rs",
        tests: PAGEALLOC_TESTS,
    },
    Target {
        file: "crates/pagealloc/src/chunk.rs",
        tests: PAGEALLOC_TESTS,
    },
    Target {
        file: "crates/pagealloc/src/ops.rs",
        tests: PAGEALLOC_TESTS,
    },
    Target {
        file: "crates/pagealloc/src/cache.rs",
        tests: PAGEALLOC_TESTS,
    },
    Target {
        file: "crates/pagealloc/src/scavenge/mod.rs",
        tests: PAGEALLOC_TESTS,
    },
    Target {
        file: "crates/pagealloc/src/scavenge/go127.rs",
        tests: PAGEALLOC_TESTS,
    },
    Target {
        file: "crates/pagealloc/src/scavenge/go119.rs",
        tests: PAGEALLOC_TESTS,
    },
    Target {
        file: "crates/runtime-heap/src/heap/growth.rs",
        tests: FACADE_TESTS,
    },
    Target {
        file: "crates/runtime-heap/src/cache.rs",
        tests: FACADE_TESTS,
    },
];

/// One mutant: line `line` (1-based) of `file` replaced by `new`.
#[derive(Clone)]
struct Mutant {
    target: usize,
    line: usize,
    new: String,
    what: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Killed,
    Timeout,
    Survived,
    Unviable,
}

/// Binary operators and their replacements (each surrounded by spaces, as
/// rustfmt writes binary operators).
const SWAPS: &[(&str, &[&str])] = &[
    (" < ", &[" <= "]),
    (" <= ", &[" < "]),
    (" > ", &[" >= "]),
    (" >= ", &[" > "]),
    (" == ", &[" != "]),
    (" != ", &[" == "]),
    (" && ", &[" || "]),
    (" || ", &[" && "]),
    (" + ", &[" - "]),
    (" - ", &[" + "]),
    (" * ", &[" / "]),
    (" / ", &[" * "]),
    (" % ", &[" / "]),
    (" += ", &[" -= "]),
    (" -= ", &[" += "]),
    (" << ", &[" >> "]),
    (" >> ", &[" << "]),
    (" & ", &[" | "]),
    (" | ", &[" & "]),
    (" ^ ", &[" & "]),
    (" &= ", &[" |= "]),
    (" |= ", &[" &= "]),
];

/// Whether a trimmed line is one the generator leaves alone.
fn skipped(t: &str) -> bool {
    t.is_empty()
        || t.starts_with("//")
        || t.starts_with("#[")
        || t.starts_with("#![")
        || t.starts_with("assert")
        || t.starts_with("debug_assert")
        || t.starts_with("use ")
        || t.starts_with("pub use ")
        || t.starts_with("const ")
        || t.starts_with("pub const ")
        || t.starts_with("pub(crate) const ")
        || t.contains('"')
        || t.contains("'")
}

/// The code part of a line: without a trailing `//` comment.
fn code_end(line: &str) -> usize {
    line.find("//").unwrap_or(line.len())
}

/// Every mutant of one file.
fn mutants_of(target: usize, text: &str) -> Vec<Mutant> {
    let mut out = Vec::new();
    let mut skip_depth: Option<i64> = None;
    // Inside a multi-line assertion: its lines are not mutated either.
    let mut in_assert = false;
    let mut depth: i64 = 0;
    let lines: Vec<&str> = text.lines().collect();
    for (i, &line) in lines.iter().enumerate() {
        let t = line.trim();
        let opens = line.matches('{').count() as i64;
        let closes = line.matches('}').count() as i64;
        // Inline test modules.
        if skip_depth.is_none()
            && (t.starts_with("mod tests") || t.starts_with("mod test "))
            && t.ends_with('{')
        {
            skip_depth = Some(depth);
        }
        let in_tests = skip_depth.is_some();
        depth += opens - closes;
        if let Some(d) = skip_depth {
            if depth <= d && !t.starts_with("mod tests") {
                skip_depth = None;
            }
            continue;
        }
        if in_assert {
            in_assert = !t.starts_with(");");
            continue;
        }
        if (t.starts_with("assert") || t.starts_with("debug_assert")) && t.ends_with('(') {
            in_assert = true;
            continue;
        }
        if in_tests || skipped(t) {
            continue;
        }
        let end = code_end(line);
        let code = &line[..end];
        let mut push = |new: String, what: String| {
            out.push(Mutant {
                target,
                line: i + 1,
                new,
                what,
            });
        };
        for (from, tos) in SWAPS {
            let mut at = 0;
            while let Some(p) = code[at..].find(from) {
                let p = at + p;
                for to in *tos {
                    let new = format!("{}{}{}", &line[..p], to, &line[p + from.len()..]);
                    push(new, format!("`{}` -> `{}`", from.trim(), to.trim()));
                }
                at = p + from.len();
            }
        }
        for (from, to) in [("true", "false"), ("false", "true")] {
            let mut at = 0;
            while let Some(p) = code[at..].find(from) {
                let p = at + p;
                let before = line[..p].chars().last();
                let after = line[p + from.len()..].chars().next();
                let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                if !word(before) && !word(after) {
                    let new = format!("{}{}{}", &line[..p], to, &line[p + from.len()..]);
                    push(new, format!("`{from}` -> `{to}`"));
                }
                at = p + from.len();
            }
        }
        // `if COND {` on one line, not `if let`: negated.
        let indent = &line[..line.len() - line.trim_start().len()];
        for prefix in ["if ", "} else if "] {
            if let Some(cond) = t.strip_prefix(prefix).and_then(|c| c.strip_suffix(" {")) {
                if !cond.starts_with("let ") && !cond.contains(" let ") {
                    push(
                        format!("{indent}{prefix}!({cond}) {{"),
                        "`if` condition negated".to_string(),
                    );
                }
            }
        }
        // A function whose signature ends on this line: return at once.
        if t.ends_with('{') && t.contains("fn ") && !t.contains("const fn") {
            let ret = t
                .rsplit_once("->")
                .map(|(_, r)| r.trim_end_matches('{').trim());
            let values: &[&str] = match ret {
                None => &["()"],
                Some("bool") => &["true", "false"],
                Some("usize" | "u64" | "u32" | "u8") => &["0", "1"],
                _ => &[],
            };
            for v in values {
                let new = format!("{line} if true {{ return {v}; }}");
                push(new, format!("function returns `{v}` at once"));
            }
        }
    }
    out
}

/// A small seeded generator for the sample.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// Runs `args` through cargo in its own process group with a deadline;
/// `None` on timeout (the group is killed).
fn run_cargo(args: &[&str], timeout: Duration, quiet: bool) -> Result<Option<bool>, String> {
    let mut cmd = cargo_cmd();
    // Property tests: one fixed seed for the baseline and every mutant, no
    // shrinking (a failure is all that counts) and no regression files.
    cmd.args(args)
        .current_dir(root())
        .env("PROPTEST_RNG_SEED", "1")
        .env("PROPTEST_MAX_SHRINK_ITERS", "0")
        .env("PROPTEST_DISABLE_FAILURE_PERSISTENCE", "1");
    if quiet {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cargo {}: {e}", args.join(" ")))?;
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(Some(st.success()));
        }
        if start.elapsed() > timeout {
            #[cfg(unix)]
            {
                let _ = Command::new("kill")
                    .args(["-9", &format!("-{}", child.id())])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Builds and tests one target's crate as it is on disk, one test command
/// after the other: a mutant the first command kills costs no further
/// build.
fn judge(t: &Target, timeout: Duration) -> Result<Outcome, String> {
    for (i, args) in t.tests.iter().enumerate() {
        // `--no-run` goes to cargo, before any `--` that starts the test
        // binary's own arguments.
        let cargo_args = args.split(|a| *a == "--").next().unwrap_or(args);
        let mut build: Vec<&str> = cargo_args.to_vec();
        build.push("--no-run");
        match run_cargo(&build, Duration::from_secs(900), true)? {
            Some(true) => {}
            // Only the first build can tell an unviable mutant: the later
            // commands build the same changed crate again.
            Some(false) if i == 0 => return Ok(Outcome::Unviable),
            Some(false) => return Ok(Outcome::Killed),
            None => return Err("building timed out".into()),
        }
        match run_cargo(args, timeout, true)? {
            Some(true) => {}
            Some(false) => return Ok(Outcome::Killed),
            None => return Ok(Outcome::Timeout),
        }
    }
    Ok(Outcome::Survived)
}

/// Restores a file when dropped.
struct Restore<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(self.path, self.text) {
            eprintln!(
                "xtask mutants: could not restore {}: {e}",
                self.path.display()
            );
        }
    }
}

/// `mutants [--list] [--max N] [--seed S] [--file PATH]... [--only PATH:LINE]...`
/// (`--only`: every mutant of those lines, e.g. to re-judge survivors)
pub fn mutants(args: &[String]) -> Result<(), String> {
    let mut max = usize::MAX;
    let mut seed = 0x5eed_u64;
    let mut list = false;
    let mut files: Vec<String> = Vec::new();
    let mut only: Vec<(String, usize)> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--max" => max = val()?.parse().map_err(|_| "--max N")?,
            "--seed" => seed = val()?.parse().map_err(|_| "--seed S")?,
            "--file" => files.push(val()?),
            "--only" => {
                let v = val()?;
                let (f, l) = v.rsplit_once(':').ok_or("--only FILE:LINE")?;
                only.push((f.to_string(), l.parse().map_err(|_| "--only FILE:LINE")?));
            }
            "--list" => list = true,
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: cargo xtask mutants [--list] [--max N] [--seed S] [--file PATH]... [--only PATH:LINE]..."
                ))
            }
        }
    }
    let chosen: Vec<usize> = (0..TARGETS.len())
        .filter(|&i| {
            files.is_empty() || files.iter().any(|f| TARGETS[i].file.ends_with(f.as_str()))
        })
        .collect();
    if chosen.is_empty() {
        return Err(format!("no target file matches {files:?}"));
    }
    let mut texts: Vec<String> = Vec::new();
    let mut all: Vec<Mutant> = Vec::new();
    for (i, t) in TARGETS.iter().enumerate() {
        let text =
            std::fs::read_to_string(root().join(t.file)).map_err(|e| format!("{}: {e}", t.file))?;
        if chosen.contains(&i) {
            all.extend(mutants_of(i, &text));
        }
        texts.push(text);
    }
    if !only.is_empty() {
        all.retain(|m| {
            only.iter()
                .any(|(f, l)| *l == m.line && TARGETS[m.target].file.ends_with(f.as_str()))
        });
    }
    let total = all.len();
    let mut sample = all.clone();
    shuffle(&mut sample, seed | 1);
    sample.truncate(max);
    sample.sort_by_key(|m| (m.target, m.line));
    println!(
        "mutants: {total} generated over {} files, {} in this run (seed {seed})",
        chosen.len(),
        sample.len()
    );
    if list {
        for m in &sample {
            println!(
                "{}:{}: {}\n    {}",
                TARGETS[m.target].file,
                m.line,
                m.what,
                m.new.trim()
            );
        }
        return Ok(());
    }
    // The suites must pass on the unmutated code, and give the timeout.
    let mut timeouts = vec![Duration::ZERO; TARGETS.len()];
    for &i in &chosen {
        let t = &TARGETS[i];
        // Files judged by the same suite share its baseline.
        if let Some(&j) = chosen
            .iter()
            .find(|&&j| j < i && std::ptr::eq(TARGETS[j].tests, t.tests))
        {
            timeouts[i] = timeouts[j];
            continue;
        }
        let start = Instant::now();
        let base = judge(t, Duration::from_secs(1800))?;
        if base != Outcome::Survived {
            return Err(format!(
                "the tests of {} fail before any mutation ({base:?})",
                t.file
            ));
        }
        timeouts[i] = (start.elapsed() * 3).max(Duration::from_secs(60));
    }
    let mut results: Vec<(Mutant, Outcome)> = Vec::new();
    let started = Instant::now();
    for (k, m) in sample.iter().enumerate() {
        let t = &TARGETS[m.target];
        let path = root().join(t.file);
        let text = &texts[m.target];
        let mutated: String = text
            .lines()
            .enumerate()
            .map(|(i, l)| if i + 1 == m.line { m.new.as_str() } else { l })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        let outcome = {
            let _restore = Restore { path: &path, text };
            std::fs::write(&path, mutated).map_err(|e| format!("{}: {e}", t.file))?;
            judge(t, timeouts[m.target])?
        };
        println!(
            "[{}/{}, {:.0} s] {}:{} {} => {:?}",
            k + 1,
            sample.len(),
            started.elapsed().as_secs_f64(),
            t.file,
            m.line,
            m.what,
            outcome
        );
        results.push((m.clone(), outcome));
    }
    let report = report(&results, total, seed);
    print!("{report}");
    let dir = root().join("target/mutants");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("report.md"), &report).map_err(|e| e.to_string())?;
    Ok(())
}

/// The score table and the survivors.
fn report(results: &[(Mutant, Outcome)], total: usize, seed: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n## Mutation testing: {} of {total} mutants (seed {seed})\n",
        results.len()
    );
    let _ = writeln!(
        s,
        "| file | tested | killed | timeout | survived | unviable | score |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    let mut files: Vec<usize> = results.iter().map(|(m, _)| m.target).collect();
    files.dedup();
    let count = |f: Option<usize>, o: Outcome| {
        results
            .iter()
            .filter(|(m, r)| *r == o && f.is_none_or(|f| m.target == f))
            .count()
    };
    for f in files.into_iter().map(Some).chain([None]) {
        let (k, t, sv, u) = (
            count(f, Outcome::Killed),
            count(f, Outcome::Timeout),
            count(f, Outcome::Survived),
            count(f, Outcome::Unviable),
        );
        let score = if k + t + sv == 0 {
            "-".to_string()
        } else {
            format!("{:.0}%", 100.0 * (k + t) as f64 / (k + t + sv) as f64)
        };
        let name = f.map_or("**all**", |f| TARGETS[f].file);
        let _ = writeln!(
            s,
            "| {name} | {} | {k} | {t} | {sv} | {u} | {score} |",
            k + t + sv + u
        );
    }
    let _ = writeln!(s, "\nSurvivors:\n");
    for (m, r) in results {
        if *r == Outcome::Survived {
            let _ = writeln!(
                s,
                "- {}:{} ({}):\n  `{}`",
                TARGETS[m.target].file,
                m.line,
                m.what,
                m.new.trim()
            );
        }
    }
    s
}
