//! Shared helpers: building an allocator from per-chunk bitmaps (Go's
//! `NewPageAlloc`), comparing final states, and the invariant checker.

use std::vec::Vec;

use pageheap_arena::sim::SimOs;
use pageheap_arena::{Os, PageState};

use crate::{
    ChunkData, Config, Geometry, HeapRelease, PageAlloc, ScavengePolicy, Summary, CHUNK_WORDS,
};

/// Pages in a chunk.
pub const P: usize = 512;

/// Page ranges `(first, count)` within one chunk.
pub type Ranges = &'static [(usize, usize)];

/// Per-chunk ranges, chunks numbered from the base chunk.
pub type Chunks = &'static [(usize, Ranges)];

/// The base chunk index, as Go's tests choose it: high in a 48-bit space,
/// 0x100 in a 32-bit one.
pub fn base_ci<G: Geometry>() -> usize {
    if G::HEAP_ADDR_BITS > 32 {
        0xc000
    } else {
        0x100
    }
}

/// The address of page `p` of chunk `c` (counted from the base chunk); `p`
/// may run past the chunk.
pub fn page<G: Geometry>(c: usize, p: usize) -> usize {
    G::chunk_base(base_ci::<G>() + c) + p * G::PAGE_BYTES
}

/// The configuration of the tests: no OS call for heap pages, 4 KiB
/// physical pages, 2 MiB huge pages (so one page is the scavenger's
/// minimum and a huge page is 256 pages, as in the traces), and the go119
/// index, which the Go scenarios were written for.
pub fn config() -> Config {
    config_with(ScavengePolicy::Go119)
}

/// [`config`] with another scavenge policy.
pub fn config_with(policy: ScavengePolicy) -> Config {
    Config {
        heap_release: HeapRelease::Bookkeeping,
        policy,
        phys_page_bytes: Some(4096),
        huge_page_bytes: Some(2 << 20),
    }
}

/// An allocator with no heap.
pub fn empty<G: Geometry>() -> PageAlloc<G, SimOs> {
    PageAlloc::new(SimOs::new(), config()).expect("new allocator")
}

/// The ranges listed for chunk `c`, or none.
pub fn ranges_of(chunks: &[(usize, Ranges)], c: usize) -> Ranges {
    chunks
        .iter()
        .find(|(k, _)| *k == c)
        .map_or(&[], |(_, r)| *r)
}

/// Go's `NewPageAlloc(alloc, scav)`: grows each chunk of `alloc`, sets its
/// scavenged bits to the `scav` ranges, then allocates its `alloc` ranges.
pub fn build<G: Geometry>(
    alloc: &[(usize, Ranges)],
    scav: &[(usize, Ranges)],
) -> PageAlloc<G, SimOs> {
    build_with(ScavengePolicy::Go119, alloc, scav)
}

/// [`build`] under `policy`.
pub fn build_with<G: Geometry>(
    policy: ScavengePolicy,
    alloc: &[(usize, Ranges)],
    scav: &[(usize, Ranges)],
) -> PageAlloc<G, SimOs> {
    let mut pa = PageAlloc::new(SimOs::new(), config_with(policy)).expect("new allocator");
    for &(c, a) in alloc {
        pa.seed_chunk(page::<G>(c, 0), a, ranges_of(scav, c))
            .expect("seed chunk");
    }
    verify(&pa);
    pa
}

/// The bitmaps `build` gives chunk `c`.
pub fn expected_chunk(alloc: Ranges, scav: Ranges) -> ChunkData {
    let mut c = ChunkData::default();
    for &(i, n) in scav {
        c.scav.set_range(i, n);
    }
    for &(i, n) in alloc {
        c.alloc_range(i, n);
    }
    c
}

/// Asserts that exactly the chunks of `alloc` are grown, with the bitmaps
/// `build(alloc, scav)` would give them. Go's `checkPageAlloc`.
pub fn assert_state<G: Geometry>(
    pa: &PageAlloc<G, SimOs>,
    alloc: Chunks,
    scav: Chunks,
    case: &str,
) {
    let ins = pa.inspect();
    let mut grown: Vec<usize> = ins.chunk_indices().map(|ci| ci - base_ci::<G>()).collect();
    let mut want: Vec<usize> = alloc.iter().map(|&(c, _)| c).collect();
    grown.sort_unstable();
    want.sort_unstable();
    assert_eq!(grown, want, "{case}: grown chunks");
    for &(c, a) in alloc {
        let got = pa.chunk(page::<G>(c, 0)).expect("grown chunk");
        let exp = expected_chunk(a, ranges_of(scav, c));
        assert_eq!(got.alloc, exp.alloc, "{case}: chunk {c:#x} allocation bits");
        assert_eq!(got.scav, exp.scav, "{case}: chunk {c:#x} scavenged bits");
    }
}

/// Checks every internal invariant; panics on the first broken one.
///
/// * Bitmaps: scavenged pages are free; the page counters match.
/// * Summaries: each leaf of a needed block is its chunk's summary (full
///   for chunks never grown), each summary above is the merge of its
///   children (full where the children are not needed).
/// * The search address is the maximum or in use, and every page below it
///   is allocated.
/// * Metadata memory: every committed summary page is Ready in the
///   simulated OS, and Ready memory is exactly the allocator's committed
///   metadata (so nothing beyond what the in-use ranges need is committed).
/// * The simulated OS saw no rule broken.
pub fn verify<G: Geometry>(pa: &PageAlloc<G, SimOs>) {
    let ins = pa.inspect();
    let os = &pa.os;
    let leaf = G::SUMMARY_LEVELS - 1;

    let (mut total, mut used, mut scav) = (0, 0, 0);
    let padded = pa.padded().map_or(0..0, |(a, n)| a..a + n * G::PAGE_BYTES);
    for ci in ins.chunk_indices() {
        let c = ins.chunk(ci).expect("grown chunk has bitmaps");
        for w in 0..CHUNK_WORDS {
            let both = c.alloc.0[w] & c.scav.0[w];
            for b in (0..64).filter(|b| both >> b & 1 == 1) {
                let addr = ((ci << G::LOG_CHUNK_PAGES) + w * 64 + b) << G::PAGE_SHIFT;
                let addr = addr.wrapping_add(G::ARENA_BASE_OFFSET);
                assert!(
                    padded.contains(&addr),
                    "chunk {ci:#x}: allocated page {addr:#x} scavenged and not padded"
                );
            }
            scav += (c.scav.0[w] & !c.alloc.0[w]).count_ones() as usize;
        }
        total += P;
        used += c.alloc.count_ones();
        if pa.scavenge_policy() == ScavengePolicy::Go127 {
            let base = (ci << G::LOG_CHUNK_BYTES).wrapping_add(G::ARENA_BASE_OFFSET);
            let e = pa.index_entry(base).expect("grown chunk has an entry");
            // A detached run is allocated in the bitmap, not in the index.
            let detached = pa.detached().map_or(0, |(a, n)| {
                let chunk = (ci << G::LOG_CHUNK_BYTES).wrapping_add(G::ARENA_BASE_OFFSET);
                if a >= chunk && a - chunk < G::CHUNK_BYTES {
                    n
                } else {
                    0
                }
            });
            assert_eq!(
                e.in_use,
                c.alloc.count_ones() - detached,
                "chunk {ci:#x}: index in-use count"
            );
            assert!(e.in_use < P || !e.free, "chunk {ci:#x}: full but flagged");
            assert!(e.in_use_at_gen_start <= P, "chunk {ci:#x}: {e:?}");
        }
    }
    let st = pa.stats();
    assert_eq!(
        (st.pages_total, st.pages_in_use, st.pages_scavenged),
        (total, used, scav)
    );
    assert_eq!(st.pages_free, total - used);

    for l in (0..G::SUMMARY_LEVELS).rev() {
        let needed: Vec<_> = ins.needed_summary_indices(l).collect();
        let child_needed: Vec<_> = if l < leaf {
            ins.needed_summary_indices(l + 1).collect()
        } else {
            Vec::new()
        };
        for r in &needed {
            assert!(
                r.end <= ins.level_len(l),
                "level {l}: needed {r:?} past the length"
            );
            for i in r.clone() {
                let got = ins
                    .stored_summary(l, i)
                    .unwrap_or_else(|| panic!("level {l}: {i} unmapped"));
                let want = if l == leaf {
                    ins.chunk(i).map_or(Summary::FULL, |c| {
                        let f = c.alloc.summarize();
                        Summary::pack::<G>(f.start, f.max, f.end)
                    })
                } else {
                    let bits = G::level_bits(l + 1);
                    let lo = i << bits;
                    if child_needed.iter().any(|c| c.contains(&lo)) {
                        // A leaf whose ancestors are deferred counts at
                        // the value its parent was merged from.
                        let kids: Vec<Summary> = (lo..lo + (1 << bits))
                            .map(|k| {
                                let seen = (l + 1 == leaf)
                                    .then(|| ins.pending_leaves().find(|p| p.0 == k))
                                    .flatten();
                                seen.map(|p| p.1).unwrap_or_else(|| {
                                    ins.stored_summary(l + 1, k).expect("child mapped")
                                })
                            })
                            .collect();
                        Summary::merge::<G>(&kids, G::level_log_pages(l + 1))
                    } else {
                        Summary::FULL
                    }
                };
                assert_eq!(got, want, "level {l} summary {i:#x}");
            }
        }
    }

    // The grown chunk bounds span the in-use ranges exactly.
    let ranges: Vec<_> = ins.in_use().collect();
    let span = ranges.first().zip(ranges.last()).map(|(f, l)| {
        let off = |a: usize| a.wrapping_sub(G::ARENA_BASE_OFFSET) >> G::LOG_CHUNK_BYTES;
        (off(f.base), off(l.limit))
    });
    assert_eq!(ins.chunk_bounds(), span, "chunk bounds against {ranges:x?}");

    // A leaf waits for its climb once, with the value its parent saw: a
    // second entry would record a value the parent never saw.
    let mut waiting: Vec<usize> = ins.pending_leaves().map(|p| p.0).collect();
    let n = waiting.len();
    waiting.sort_unstable();
    waiting.dedup();
    assert_eq!(
        waiting.len(),
        n,
        "a leaf waits twice among the pending climbs"
    );

    let s = ins.search_addr();
    if s != ins.max_search_addr() {
        assert!(
            ins.in_use().any(|r| r.base <= s && s < r.limit),
            "search address {s:#x} not in use"
        );
    }
    let s_off = s.wrapping_sub(G::ARENA_BASE_OFFSET);
    for ci in ins.chunk_indices() {
        let c = ins.chunk(ci).unwrap();
        let chunk = ci << G::LOG_CHUNK_BYTES;
        for p in 0..P {
            if chunk + p * G::PAGE_BYTES < s_off {
                assert!(
                    c.alloc.get(p),
                    "page {p} of chunk {ci:#x} is free below the search address"
                );
            }
        }
    }

    // First-fit hints: no run of n free pages starts below hint n, and the
    // hints never decrease with n.
    let hints = ins.first_fit_hints();
    assert!(hints.windows(2).all(|w| w[0] <= w[1]), "hints out of order");
    let mut run: Option<(usize, usize)> = None;
    let mut prev = None;
    let check_run = |run: Option<(usize, usize)>| {
        if let Some((start, len)) = run {
            for (k, &h) in hints.iter().enumerate().take(len) {
                assert!(
                    h <= start,
                    "{}-page hint {h:#x} above a run at {start:#x}",
                    k + 1
                );
            }
        }
    };
    for ci in ins.chunk_indices() {
        if prev.is_some_and(|p| p + 1 != ci) {
            check_run(run.take());
        }
        prev = Some(ci);
        let c = ins.chunk(ci).unwrap();
        for p in 0..P {
            if c.alloc.get(p) {
                check_run(run.take());
            } else {
                run.get_or_insert(((ci << G::LOG_CHUNK_BYTES) + p * G::PAGE_BYTES, 0))
                    .1 += 1;
            }
        }
        // Fresh gap-cache entries: each word's longest inner free run.
        for (w, g) in ins.gap_cache(ci).unwrap().iter().enumerate() {
            if let Some(g) = g {
                let word = c.alloc.0[w];
                let ones: Vec<usize> = (0..64).filter(|b| word >> b & 1 == 1).collect();
                let want = ones.windows(2).map(|p| p[1] - p[0] - 1).max().unwrap_or(0);
                assert_eq!(usize::from(*g), want, "chunk {ci:#x} word {w} gap cache");
            }
        }
    }
    check_run(run);

    let page = os.page_size();
    let mut summary_bytes = 0;
    for l in 0..G::SUMMARY_LEVELS {
        let (addr, len) = ins.summary_reservation(l);
        for r in ins.mapped_summary_bytes(l) {
            assert!(r.end <= len);
            summary_bytes += r.len();
            for off in r.step_by(page) {
                assert_eq!(
                    os.page_state(addr + off),
                    PageState::Ready,
                    "level {l} byte {off:#x}"
                );
            }
        }
    }
    let (_, _, in_use_bytes) = ins.in_use_memory();
    let (blocks, block_bytes) = ins.chunk_map_blocks();
    let l1 = ((8usize << G::CHUNKS_L1_BITS) + page - 1) & !(page - 1);
    let meta = summary_bytes + in_use_bytes + blocks * block_bytes + l1;
    assert_eq!(st.metadata_mapped_bytes, meta, "metadata committed bytes");
    assert_eq!(
        os.ready_bytes(),
        meta,
        "Ready memory is exactly the metadata"
    );
    os.assert_clean();
}

/// Runs `f` for the 32-bit geometry and, outside Miri, the 64-bit one.
macro_rules! for_geometries {
    ($f:ident) => {{
        $f::<crate::Go32>();
        #[cfg(not(miri))]
        $f::<crate::Go64>();
    }};
}
pub(crate) use for_geometries;
