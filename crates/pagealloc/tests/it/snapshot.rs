//! A complete observable snapshot of an allocator, to assert that a
//! rejected call changed nothing.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use pageheap_alloc::{ChunkData, Config, Geometry, Go64, HeapRelease, PageAlloc, Stats, Summary};
use pageheap_arena::sim::SimOs;

/// The base chunk of these tests.
pub const BASE: usize = 0xc000;
pub const CHUNK: usize = 4 << 20;
pub const PAGE: usize = 8192;

/// Page `p` of chunk `BASE + c`.
pub fn page(c: usize, p: usize) -> usize {
    Go64::chunk_base(BASE + c) + p * PAGE
}

pub fn config() -> Config {
    Config {
        heap_release: HeapRelease::Bookkeeping,
        policy: pageheap_alloc::ScavengePolicy::Go127,
        phys_page_bytes: Some(4096),
        huge_page_bytes: Some(2 << 20),
    }
}

/// An allocator over a simulated OS, and the test's own handle to that OS
/// (the allocator does not hand its OS out).
pub struct Sim<G: Geometry = Go64> {
    pub pa: PageAlloc<G, Arc<SimOs>>,
    pub os: Arc<SimOs>,
}

impl<G: Geometry> Sim<G> {
    /// An allocator with `config` over `os`.
    pub fn over(os: SimOs, config: Config) -> Result<Self, pageheap_alloc::Error> {
        let os = Arc::new(os);
        let pa = PageAlloc::new(Arc::clone(&os), config)?;
        Ok(Sim { pa, os })
    }
}

impl<G: Geometry> Deref for Sim<G> {
    type Target = PageAlloc<G, Arc<SimOs>>;
    fn deref(&self) -> &Self::Target {
        &self.pa
    }
}

impl<G: Geometry> DerefMut for Sim<G> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.pa
    }
}

pub fn new_alloc() -> Sim {
    Sim::over(SimOs::new(), config()).expect("new allocator")
}

/// Everything a caller or an invariant checker can observe.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    stats: Stats,
    in_use: Vec<(usize, usize)>,
    chunks: Vec<(usize, ChunkData, bool)>,
    search: usize,
    bounds: Option<(usize, usize)>,
    level_len: Vec<usize>,
    mapped: Vec<Vec<std::ops::Range<usize>>>,
    summaries: Vec<(usize, usize, Option<Summary>)>,
    ready: usize,
    reservations: Vec<(usize, usize)>,
}

pub fn snapshot<G: Geometry>(sim: &Sim<G>) -> Snapshot {
    let pa = &sim.pa;
    let ins = pa.inspect();
    let mut summaries = Vec::new();
    for l in 0..ins.levels() {
        for r in ins.needed_summary_indices(l) {
            // The root level is whole; sample its non-full entries only.
            for i in r {
                let s = ins.summary(l, i);
                if l > 0 || s != Some(Summary::FULL) {
                    summaries.push((l, i, s));
                }
            }
        }
    }
    Snapshot {
        stats: pa.stats(),
        in_use: pa.in_use().map(|r| (r.base, r.limit)).collect(),
        chunks: ins
            .chunk_indices()
            .map(|ci| (ci, *ins.chunk(ci).unwrap(), ins.scav_marked(ci)))
            .collect(),
        search: ins.search_addr(),
        bounds: ins.chunk_bounds(),
        level_len: (0..ins.levels()).map(|l| ins.level_len(l)).collect(),
        mapped: (0..ins.levels())
            .map(|l| ins.mapped_summary_bytes(l).collect())
            .collect(),
        summaries,
        ready: sim.os.ready_bytes(),
        reservations: sim.os.reservations(),
    }
}

impl Snapshot {
    /// The snapshot without the metadata memory figures, which a failed
    /// grow may leave higher by one chunk-map block (kept for later use);
    /// returns them as `(ready bytes, committed metadata bytes)`.
    pub fn split_metadata(mut self) -> (Self, (usize, usize)) {
        let m = (self.ready, self.stats.metadata_mapped_bytes);
        self.ready = 0;
        self.stats.metadata_mapped_bytes = 0;
        self.stats.metadata_reserved_bytes = 0;
        self.reservations.clear();
        (self, m)
    }
}
