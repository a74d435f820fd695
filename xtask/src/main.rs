//! Project automation, run as `cargo xtask <command>`.
//!
//! `ci` is the one gate: CI's `.ci/run` calls it and nothing else. The other
//! commands wrap the tools a developer reaches for (Miri, cargo-fuzz, the
//! conformance replay, the replay benchmark) so that each has one spelling.

mod cmd;
mod mutants;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci                          the whole gate: fmt, clippy, tests, docs, benches and
                              fuzz targets compiled, fuzz regressions replayed,
                              examples run, cross-target checks, MSRV, conformance
  conformance [FILE...]       replay the project's conformance traces of both policies
                              (go119, go127; plus FILEs, policy from their policy line)
  replay-bench FILE...        time trace replays (release build): FILE NS_PER_OP
  compare-go [POLICY] [GLOB]  replay-bench and the Go oracle on the same files, with ratios:
                              perf/ against Go 1.19 and perf-go127/ against Go 1.27.3, or
                              one POLICY (go119, go127), on GLOB if given
  scavenger-bench [ARGS]      time to return memory after a 90% drop and the scavenger's
                              CPU, per policy (release build; see crates/workload)
  bench-report [OPS]          this allocator against the range-allocator peers on the
                              three streams: ns/op, instructions/op (callgrind),
                              refusals, fragmentation, ratio to the fastest peer
  miri                        the Miri-capable tests under Miri (nightly)
  fuzz TARGET [--seconds N]   run one fuzz target (nightly + cargo-fuzz)
  fuzz --smoke [--seconds N]  run every fuzz target (60 s each): exec/s, input sizes
  package                     package the published crates, verified; their unit,
                              integration and doc tests and examples run from the packages
  msrv                        check the workspace with the declared rust-version
  fuzz-regressions            replay fuzz/regressions/TARGET/* through the built targets
  mutants [--max N] [--seed S] [--file F]... [--only F:LINE]... [--list]
                              mutation testing of the core (pagealloc's search, update,
                              free, cache, scavenger; the facade's growth, quarantine,
                              cache): score per file and every surviving mutant
  cross                       `cargo check -p pageheap-arena` for the cross targets, and
                              the no_std crates built for two bare-metal targets";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((name, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let res = match name.as_str() {
        "ci" => cmd::ci(),
        "conformance" => cmd::conformance(rest),
        "replay-bench" => cmd::replay_bench(rest),
        "compare-go" => cmd::compare_go(rest),
        "scavenger-bench" => cmd::scavenger_bench(rest),
        "bench-report" => cmd::bench_report(rest),
        "miri" => cmd::miri(),
        "fuzz" => cmd::fuzz(rest),
        "cross" => cmd::cross(),
        "msrv" => cmd::msrv(),
        "package" => cmd::package(),
        "fuzz-regressions" => cmd::fuzz_regressions(),
        "mutants" => mutants::mutants(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
