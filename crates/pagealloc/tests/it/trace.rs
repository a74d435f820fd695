//! Replays the conformance traces of both scavenging policies (Go 1.19's
//! and Go 1.27's) line by line and checks every expectation. A deliberately small replayer, independent of testkit's
//! full one, so that this crate's own tests pin conformance.

use std::path::PathBuf;

use pageheap_alloc::{Config, Cursor, Go64, HeapRelease, PageCache, ScavengePolicy};
use pageheap_arena::sim::SimOs;

/// The chunk the trace's chunk 0 maps to: high enough that every chunk
/// number in the traces stays below the 48-bit limit.
const BASE_CHUNK: usize = 0x100;
const CHUNK_BYTES: usize = 4 << 20;
const PAGE: usize = 8192;

fn chunk_base(c: usize) -> usize {
    (BASE_CHUNK + c) * CHUNK_BYTES
}

/// `C.P` to an address.
fn page_addr(s: &str) -> usize {
    let (c, p) = s.split_once('.').expect("C.P");
    chunk_base(c.parse().unwrap()) + p.parse::<usize>().unwrap() * PAGE
}

/// `I:N,I:N` or `-` to ranges.
fn ranges(s: &str) -> Vec<(usize, usize)> {
    if s == "-" {
        return Vec::new();
    }
    s.split(',')
        .map(|r| {
            let (i, n) = r.split_once(':').unwrap();
            (i.parse().unwrap(), n.parse().unwrap())
        })
        .collect()
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s, 16).unwrap()
}

/// Replays one trace; panics with the line number on the first mismatch.
fn replay(path: &PathBuf) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    // The policy line, if any, is the second.
    let policy = match text.lines().nth(1) {
        Some("policy go127") => ScavengePolicy::Go127,
        _ => ScavengePolicy::Go119,
    };
    let config = Config {
        heap_release: HeapRelease::Bookkeeping,
        policy,
        phys_page_bytes: Some(4096),
        huge_page_bytes: Some(2 << 20),
    };
    let mut pa = crate::snapshot::Sim::<Go64>::over(SimOs::new(), config).unwrap();
    let mut cache = PageCache::default();
    let mut lines = 0;
    for (no, line) in text.lines().enumerate() {
        if line.starts_with('#')
            || line.starts_with("pagealloc-trace")
            || line.starts_with("policy")
            || line.is_empty()
        {
            continue;
        }
        let at = format!("{}:{}: {line}", path.display(), no + 1);
        let f: Vec<&str> = line.split(' ').collect();
        match f[0] {
            "geometry" => assert!(line.contains("page_bytes=8192 chunk_pages=512"), "{at}"),
            "setup" => {
                let c: usize = f[1].parse().unwrap();
                pa.seed_chunk(chunk_base(c), &ranges(f[3]), &ranges(f[5]))
                    .expect(&at);
            }
            "grow" => {
                let (c, n): (usize, usize) = (f[1].parse().unwrap(), f[2].parse().unwrap());
                pa.grow(chunk_base(c), n * CHUNK_BYTES).expect(&at);
            }
            "alloc" | "calloc" => {
                let n: usize = f[1].parse().unwrap();
                let got = if f[0] == "alloc" {
                    pa.alloc(n).expect(&at)
                } else {
                    cache.alloc(n)
                };
                match f[3] {
                    "fail" => assert_eq!(got, None, "{at}"),
                    p => {
                        let a = got.unwrap_or_else(|| panic!("{at}: failed"));
                        assert_eq!(
                            (a.base, a.scavenged),
                            (page_addr(p), f[4].parse().unwrap()),
                            "{at}"
                        );
                    }
                }
            }
            "free" => pa.free(page_addr(f[1]), f[2].parse().unwrap()).expect(&at),
            "cache" => {
                cache = pa.alloc_to_cache();
                if f[2] == "empty" {
                    assert!(cache.is_empty(), "{at}");
                } else {
                    let got = (cache.base(), cache.free_mask(), cache.scav_mask());
                    assert_eq!(got, (page_addr(f[2]), hex(f[3]), hex(f[4])), "{at}");
                }
            }
            "flush" => pa.flush_cache(&mut cache).expect(&at),
            "scavenge" => {
                let got = pa.scavenge(f[1].parse().unwrap()).expect(&at);
                assert_eq!(got, f[3].parse::<usize>().unwrap(), "{at}");
            }
            "bgscavenge" => {
                let got = pa.scavenge_unforced(f[1].parse().unwrap()).expect(&at);
                assert_eq!(got, f[3].parse::<usize>().unwrap(), "{at}");
            }
            "pad" => pa.pad(page_addr(f[1]), f[2].parse().unwrap()).expect(&at),
            "nextgen" => pa.next_gen(),
            "scavstate" => {
                let s = pa.index_state().expect(&at);
                let page = |w: &str| (w != "-").then(|| page_addr(w));
                let cursor = |w: &str| {
                    (w != "-").then(|| Cursor {
                        page: page_addr(w.trim_end_matches('*')),
                        marked: w.ends_with('*'),
                    })
                };
                let want = (
                    f[2].parse::<u64>().unwrap(),
                    page(f[4]),
                    cursor(f[6]),
                    cursor(f[8]),
                );
                assert_eq!((s.gen, s.free_hwm, s.background, s.forced), want, "{at}");
            }
            "scavidx" => {
                let e = pa
                    .index_entry(chunk_base(f[1].parse().unwrap()))
                    .expect(&at);
                let want = (
                    f[3].parse::<usize>().unwrap(),
                    f[5].parse::<usize>().unwrap(),
                    f[7] == "1",
                );
                assert_eq!((e.in_use, e.in_use_at_gen_start, e.free), want, "{at}");
            }
            "inuse" => {
                let got: Vec<(usize, usize)> = pa.in_use().map(|r| (r.base, r.limit)).collect();
                let want: Vec<(usize, usize)> = f[2..]
                    .iter()
                    .map(|r| {
                        let (a, z) = r.split_once(':').unwrap();
                        (
                            chunk_base(a.parse().unwrap()),
                            chunk_base(z.parse().unwrap()),
                        )
                    })
                    .collect();
                assert_eq!(got, want, "{at}");
            }
            "chunk" => {
                let c = pa.chunk(chunk_base(f[1].parse().unwrap())).expect(&at);
                let alloc: Vec<u64> = f[3..11].iter().map(|w| hex(w)).collect();
                let scav: Vec<u64> = f[12..20].iter().map(|w| hex(w)).collect();
                assert_eq!(c.alloc.0.to_vec(), alloc, "{at}: alloc bits");
                assert_eq!(c.scav.0.to_vec(), scav, "{at}: scav bits");
            }
            other => panic!("{at}: unknown op {other}"),
        }
        lines += 1;
    }
    pa.os.assert_clean();
    lines
}

fn traces(dir: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/traces")
        .join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "trace"))
        .collect();
    v.sort();
    v
}

/// Replays every trace of one policy's directory; there must be at least
/// `expected` of them and more than 10,000 lines in all.
fn replay_policy(dir: &str, expected: usize) {
    let all = traces(dir);
    assert!(
        all.len() >= expected,
        "expected the {dir} traces, found {}",
        all.len()
    );
    let total: usize = all.iter().map(replay).sum();
    assert!(total > 10_000, "replayed only {total} lines of {dir}");
}

#[test]
// Thousands of operations over a 48-bit geometry: too slow for Miri.
#[cfg(not(miri))]
fn go119_traces_replay_exactly() {
    replay_policy("go119", 32);
}

#[test]
// As above.
#[cfg(not(miri))]
fn go127_traces_replay_exactly() {
    replay_policy("go127", 52);
}
