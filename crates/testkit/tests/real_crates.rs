//! Programs nobody here wrote, with `GlobalHeap` as the process's global
//! allocator (a test binary of its own, since it replaces the allocator of
//! everything in it): the `regex` crate compiling and running patterns over
//! MiBs of text, `hashbrown` tables growing to tens of MiB and shrinking,
//! and eight threads churning large `Vec`s that are dropped on other
//! threads than the ones that made them. Every result is checked, the
//! heap must have served the large blocks, and no layer of the heap may
//! allocate from the global heap meanwhile.

use std::sync::mpsc;

use hashbrown::HashMap;
use pageheap::{GlobalHeap, PAGE_BYTES};
use regex::Regex;

#[global_allocator]
static GLOBAL: GlobalHeap = GlobalHeap::new();

const MIB: usize = 1 << 20;

/// A deterministic text of about `bytes` bytes: words, numbers, dates and
/// addresses, so that the patterns below have something to find.
fn text(bytes: usize) -> String {
    let words = [
        "alpha", "beta", "gamma", "delta", "heap", "page", "chunk", "span",
    ];
    let mut s = String::new();
    let mut i = 0u64;
    while s.len() < bytes {
        let w = words[(i % 8) as usize];
        s.push_str(w);
        s.push(' ');
        if i.is_multiple_of(7) {
            s.push_str(&format!(
                "{}-{:02}-{:02} ",
                2000 + i % 27,
                1 + i % 12,
                1 + i % 28
            ));
        }
        if i.is_multiple_of(11) {
            s.push_str(&format!("user{}@example.org ", i % 1000));
        }
        if i.is_multiple_of(13) {
            s.push_str(&format!("0x{:012x}\n", i * 0x2000));
        }
        i += 1;
    }
    s
}

#[test]
fn regex_over_mibs_of_text() {
    let hay = text(8 * MIB);
    let date = Regex::new(r"(\d{4})-(\d{2})-(\d{2})").expect("date regex");
    let mail = Regex::new(r"[a-z]+\d+@example\.org").expect("mail regex");
    let hex = Regex::new(r"(?m)^0x[0-9a-f]{12}$").expect("hex regex");
    let words = Regex::new(r"\b(?:alpha|delta|chunk)\b").expect("alternation");
    // Counted independently of the regex engine: the generator's own
    // periods, and `str::matches` for the words.
    let lines = |p: &str| hay.matches(p).count();
    let n_dates = date.find_iter(&hay).count();
    let n_mail = mail.find_iter(&hay).count();
    let n_hex = hex.find_iter(&hay).count();
    let n_words = words.find_iter(&hay).count();
    assert_eq!(n_mail, lines("@example.org"));
    assert_eq!(n_hex, hay.lines().filter(|l| l.starts_with("0x")).count());
    assert_eq!(n_words, lines("alpha ") + lines("delta ") + lines("chunk "));
    assert!(n_dates > 10_000, "{n_dates} dates");
    // Captures allocate per match; replace_all builds a new 8 MiB string.
    let years: u64 = date
        .captures_iter(&hay)
        .take(50_000)
        .map(|c| c[1].parse::<u64>().expect("year"))
        .sum();
    assert!(years > 0);
    let redacted = mail.replace_all(&hay, "<mail>");
    assert_eq!(redacted.matches("<mail>").count(), n_mail);
    assert!(!redacted.contains("@example.org"));
    // A big set of patterns compiled at once.
    let many: Vec<String> = (0..2000).map(|i| format!("user{i}@")).collect();
    let set = regex::RegexSet::new(&many).expect("regex set");
    assert_eq!(set.matches("mail user17@example.org").iter().count(), 1);
    check_heap_served();
}

#[test]
fn hashbrown_tables_grow_and_shrink() {
    let mut m: HashMap<u64, [u64; 4]> = HashMap::new();
    let n = 1_000_000u64;
    for i in 0..n {
        m.insert(
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            [i, i + 1, i + 2, i + 3],
        );
    }
    assert_eq!(m.len(), n as usize);
    // The table's storage is tens of MiB, one block from the heap.
    assert!(m.capacity() * 40 > 32 * MIB);
    for i in (0..n).step_by(3) {
        let k = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        assert_eq!(m.remove(&k), Some([i, i + 1, i + 2, i + 3]));
    }
    m.shrink_to_fit();
    for i in 0..n {
        let k = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        assert_eq!(m.get(&k).is_some(), i % 3 != 0, "{i}");
    }
    let mut strings: HashMap<String, Vec<u8>> = HashMap::new();
    for i in 0..20_000 {
        strings.insert(format!("key {i}"), vec![i as u8; PAGE_BYTES + i % 4096]);
    }
    for i in 0..20_000 {
        let v = &strings[&format!("key {i}")];
        assert!(v.len() == PAGE_BYTES + i % 4096 && v.iter().all(|&b| b == i as u8));
    }
    drop(strings);
    check_heap_served();
}

#[test]
fn eight_threads_churn_large_vecs_dropped_elsewhere() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 300;
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel::<Vec<u8>>()).unzip();
    let received: usize = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (t, rx) in rxs.into_iter().enumerate() {
            let tx = txs[(t + 1) % THREADS].clone();
            handles.push(s.spawn(move || {
                let mut seed = 0x2545_f491_4f6c_dd1d ^ t as u64;
                let mut received = 0;
                for r in 0..ROUNDS {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    // 16 KiB to 4 MiB, filled with a byte naming its maker.
                    let len = (16 << 10) << (seed % 9);
                    let tag = (t * 31 + r) as u8;
                    let v = vec![tag; len];
                    tx.send(v).expect("the next thread is alive");
                    // Drop what the previous thread made, after checking it.
                    while let Ok(v) = rx.try_recv() {
                        let first = v[0];
                        assert!(
                            v.iter().all(|&b| b == first),
                            "a Vec changed under its owner"
                        );
                        received += 1;
                    }
                }
                drop(tx);
                // The rest, once every sender of this channel is gone.
                for v in rx.iter() {
                    let first = v[0];
                    assert!(v.iter().all(|&b| b == first));
                    received += 1;
                }
                received
            }));
        }
        drop(txs);
        handles.into_iter().map(|h| h.join().expect("worker")).sum()
    });
    assert_eq!(
        received,
        THREADS * ROUNDS,
        "every Vec reached the next thread"
    );
    check_heap_served();
}

/// The heap served the large blocks, and nothing inside it allocated from
/// the global heap.
fn check_heap_served() {
    let heap = GLOBAL.heap().expect("the heap was created");
    let s = heap.stats();
    assert!(s.spans_allocated > 100, "{s:#?}");
    assert_eq!(
        GLOBAL.reentrant_allocations(),
        0,
        "the heap allocated from itself"
    );
}
