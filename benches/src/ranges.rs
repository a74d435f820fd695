//! Page-range allocators side by side: this allocator and the range
//! allocators a runtime author would otherwise pick, behind one trait, on
//! the same occupancy-driven request streams.
//!
//! A stream keeps a 1 GiB heap (131,072 pages of 8 KiB) near 70% occupied:
//! while the pages it has asked for are below the target it allocates,
//! otherwise it frees a random live span whole. Its sizes come from one of
//! three workloads (small 1-8 pages, mixed 1-1023, large 512-8703). The
//! stream is fixed by its seed: an allocator that refuses a request skips
//! it and later skips that span's free, so every allocator sees the same
//! requests.

use std::collections::BTreeMap;

use buddy_system_allocator::FrameAllocator;
use pageheap_alloc::{Config, Geometry, Go64, HeapRelease, PageAlloc};
use pageheap_arena::SystemOs;

use crate::Req;

/// Pages in the benchmark heap (1 GiB of 8 KiB pages).
pub const HEAP_PAGES: usize = 1 << 17;

/// The size mixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// 1 to 8 pages.
    Small,
    /// 1 to 1023 pages, log-uniform.
    Mixed,
    /// 512 to 8703 pages.
    Large,
}

impl Workload {
    /// All three, in report order.
    pub const ALL: [Workload; 3] = [Workload::Small, Workload::Mixed, Workload::Large];

    /// The workload's name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Small => "small",
            Workload::Mixed => "mixed",
            Workload::Large => "large",
        }
    }

    /// The workload named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == s)
    }

    fn pages(self, r: u64, r2: u64) -> usize {
        match self {
            Workload::Small => 1 + (r % 8) as usize,
            Workload::Mixed => {
                // Log-uniform: a power of two up to 512, then uniform below
                // the next one, capped at 1023.
                let k = r % 10;
                ((1usize << k) + (r2 % (1 << k)) as usize).min(1023)
            }
            Workload::Large => 512 + (r % 8192) as usize,
        }
    }
}

/// `ops` requests keeping about `occupancy` of [`HEAP_PAGES`] asked for.
pub fn stream(w: Workload, ops: usize, occupancy: f64, seed: u64) -> Vec<Req> {
    let mut rng = pageheap_testkit::rng::XorShift::new(seed | 1);
    let target = (HEAP_PAGES as f64 * occupancy) as usize;
    let (mut live, mut free_slots, mut slots) = (Vec::<(usize, usize)>::new(), Vec::new(), 0);
    let mut asked = 0;
    let mut out = Vec::with_capacity(ops);
    for _ in 0..ops {
        if asked < target || live.is_empty() {
            let pages = w.pages(rng.next_u64(), rng.next_u64());
            let slot = free_slots.pop().unwrap_or_else(|| {
                slots += 1;
                slots - 1
            });
            live.push((slot, pages));
            asked += pages;
            out.push(Req::Alloc { pages, slot });
        } else {
            let i = rng.below(live.len() as u64) as usize;
            let (slot, pages) = live.swap_remove(i);
            asked -= pages;
            free_slots.push(slot);
            out.push(Req::Free { slot });
        }
    }
    out
}

/// A page-range allocator over `[0, HEAP_PAGES)`.
pub trait PageRanges {
    /// What a live allocation keeps.
    type Handle;
    /// The allocator's name in reports.
    const NAME: &'static str;
    /// A fresh allocator over the whole range.
    fn new() -> Self;
    /// `pages` pages: `(first page, pages actually reserved, handle)`.
    fn alloc(&mut self, pages: usize) -> Option<(usize, usize, Self::Handle)>;
    /// Gives an allocation back.
    fn free(&mut self, h: Self::Handle);
}

/// This allocator, page ranges only (heap pages are bookkept, not mapped).
pub struct Ours(PageAlloc<Go64, SystemOs>);

const BASE: usize = 0x00c0_0000_0000;

impl PageRanges for Ours {
    type Handle = (usize, usize);
    const NAME: &'static str = "pageheap";
    fn new() -> Self {
        let config = Config {
            heap_release: HeapRelease::Bookkeeping,
            ..Config::default()
        };
        let mut pa = PageAlloc::new(SystemOs::new(), config).expect("new allocator");
        pa.grow(BASE, HEAP_PAGES * Go64::PAGE_BYTES).expect("grow");
        Ours(pa)
    }
    #[inline]
    fn alloc(&mut self, pages: usize) -> Option<(usize, usize, (usize, usize))> {
        let a = self.0.alloc(pages).expect("valid request")?;
        Some(((a.base - BASE) / Go64::PAGE_BYTES, pages, (a.base, pages)))
    }
    #[inline]
    fn free(&mut self, (base, pages): (usize, usize)) {
        self.0.free(base, pages).expect("live span");
    }
}

/// `offset-allocator` 0.2 (Sebastian Aaltonen's two-level bitfield
/// allocator, in pages).
pub struct Offset(offset_allocator::Allocator<u32>);

impl PageRanges for Offset {
    type Handle = offset_allocator::Allocation<u32>;
    const NAME: &'static str = "offset-allocator";
    fn new() -> Self {
        Offset(offset_allocator::Allocator::with_max_allocs(
            HEAP_PAGES as u32,
            1 << 17,
        ))
    }
    #[inline]
    fn alloc(&mut self, pages: usize) -> Option<(usize, usize, Self::Handle)> {
        let a = self.0.allocate(pages as u32)?;
        Some((a.offset as usize, pages, a))
    }
    #[inline]
    fn free(&mut self, h: Self::Handle) {
        self.0.free(h);
    }
}

/// `xalloc` 0.2's TLSF over page units.
pub struct Tlsf(xalloc::SysTlsf<u32>);

impl PageRanges for Tlsf {
    type Handle = xalloc::SysTlsfRegion;
    const NAME: &'static str = "xalloc-tlsf";
    fn new() -> Self {
        Tlsf(xalloc::SysTlsf::new(HEAP_PAGES as u32))
    }
    #[inline]
    fn alloc(&mut self, pages: usize) -> Option<(usize, usize, Self::Handle)> {
        let (r, off) = self.0.alloc(pages as u32)?;
        Some((off as usize, pages, r))
    }
    #[inline]
    fn free(&mut self, h: Self::Handle) {
        self.0.dealloc(h).expect("live region");
    }
}

/// `xalloc` 0.2's bitmap allocator, first fit.
pub struct Bitmap(xalloc::BitmapAlloc);

impl PageRanges for Bitmap {
    type Handle = xalloc::BitmapAllocRegion;
    const NAME: &'static str = "xalloc-bitmap";
    fn new() -> Self {
        Bitmap(xalloc::BitmapAlloc::new(HEAP_PAGES))
    }
    #[inline]
    fn alloc(&mut self, pages: usize) -> Option<(usize, usize, Self::Handle)> {
        let (r, off) = self.0.alloc_first(pages)?;
        Some((off, pages, r))
    }
    #[inline]
    fn free(&mut self, h: Self::Handle) {
        self.0.dealloc_relaxed(h);
    }
}

/// `buddy_system_allocator` 0.13's frame allocator (rounds every request
/// up to a power of two).
pub struct Buddy(FrameAllocator<32>);

impl PageRanges for Buddy {
    type Handle = (usize, usize);
    const NAME: &'static str = "buddy";
    fn new() -> Self {
        let mut f = FrameAllocator::<32>::new();
        f.add_frame(0, HEAP_PAGES);
        Buddy(f)
    }
    #[inline]
    fn alloc(&mut self, pages: usize) -> Option<(usize, usize, Self::Handle)> {
        let at = self.0.alloc(pages)?;
        Some((at, pages.next_power_of_two(), (at, pages)))
    }
    #[inline]
    fn free(&mut self, (at, pages): (usize, usize)) {
        self.0.dealloc(at, pages);
    }
}

/// `range-alloc` 0.1 (wgpu's best-fit range allocator).
pub struct RangeAlloc(range_alloc::RangeAllocator<u32>);

impl PageRanges for RangeAlloc {
    type Handle = core::ops::Range<u32>;
    const NAME: &'static str = "range-alloc";
    fn new() -> Self {
        RangeAlloc(range_alloc::RangeAllocator::new(0..HEAP_PAGES as u32))
    }
    #[inline]
    fn alloc(&mut self, pages: usize) -> Option<(usize, usize, Self::Handle)> {
        let r = self.0.allocate_range(pages as u32).ok()?;
        Some((r.start as usize, pages, r))
    }
    #[inline]
    fn free(&mut self, h: Self::Handle) {
        self.0.free_range(h);
    }
}

/// A plain first fit over a `BTreeMap` of free ranges (start -> pages),
/// coalescing on free: the textbook baseline, and the placement oracle for
/// this allocator (both are exact address-ordered first fit).
pub struct BTreeFirstFit(BTreeMap<usize, usize>);

impl PageRanges for BTreeFirstFit {
    type Handle = (usize, usize);
    const NAME: &'static str = "btree-first-fit";
    fn new() -> Self {
        BTreeFirstFit(BTreeMap::from([(0, HEAP_PAGES)]))
    }
    #[inline]
    fn alloc(&mut self, pages: usize) -> Option<(usize, usize, Self::Handle)> {
        let (&start, &len) = self.0.iter().find(|(_, &len)| len >= pages)?;
        self.0.remove(&start);
        if len > pages {
            self.0.insert(start + pages, len - pages);
        }
        Some((start, pages, (start, pages)))
    }
    #[inline]
    fn free(&mut self, (start, pages): (usize, usize)) {
        let (mut s, mut n) = (start, pages);
        if let Some((&ps, &pn)) = self.0.range(..start).next_back() {
            if ps + pn == start {
                self.0.remove(&ps);
                (s, n) = (ps, pn + n);
            }
        }
        if let Some(&nn) = self.0.get(&(start + pages)) {
            self.0.remove(&(start + pages));
            n += nn;
        }
        self.0.insert(s, n);
    }
}

/// What one run of a stream did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Each allocation's first page, in stream order (`None`: refused).
    pub placements: Vec<Option<usize>>,
    /// Refused allocations.
    pub failed: usize,
    /// External fragmentation at the end: one minus the largest free run
    /// over all free pages, from the live allocations' reserved extents.
    pub fragmentation: f64,
}

/// Runs `reqs` through `a`, recording placements.
pub fn run_stream<A: PageRanges>(a: &mut A, reqs: &[Req]) -> Outcome {
    let n_slots = crate::slots(reqs);
    let mut held: Vec<Option<(usize, usize, A::Handle)>> = (0..n_slots).map(|_| None).collect();
    let mut out = Outcome::default();
    for r in reqs {
        match *r {
            Req::Alloc { pages, slot } => {
                let got = a.alloc(pages);
                out.placements.push(got.as_ref().map(|g| g.0));
                out.failed += usize::from(got.is_none());
                held[slot] = got;
            }
            Req::Free { slot } => {
                if let Some((_, _, h)) = held[slot].take() {
                    a.free(h);
                }
            }
        }
    }
    let mut extents: Vec<(usize, usize)> =
        held.iter().flatten().map(|(s, n, _)| (*s, *n)).collect();
    extents.sort_unstable();
    let (mut at, mut largest, mut free) = (0, 0, 0);
    for (s, n) in extents.into_iter().chain([(HEAP_PAGES, 0)]) {
        let gap = s.saturating_sub(at);
        largest = largest.max(gap);
        free += gap;
        at = at.max(s + n);
    }
    out.fragmentation = if free == 0 {
        0.0
    } else {
        1.0 - largest as f64 / free as f64
    };
    for (_, _, h) in held.into_iter().flatten() {
        a.free(h);
    }
    out
}

/// Runs `reqs` through a fresh `A` and nothing else: what the
/// instruction counts measure (`callgrind --toggle-collect='*replay_only*'`).
#[inline(never)]
pub fn replay_only<A: PageRanges>(reqs: &[Req]) -> usize {
    let mut a = A::new();
    let mut held: Vec<Option<A::Handle>> = (0..crate::slots(reqs)).map(|_| None).collect();
    let mut failed = 0;
    for r in reqs {
        match *r {
            Req::Alloc { pages, slot } => {
                held[slot] = a.alloc(pages).map(|g| g.2);
                failed += usize::from(held[slot].is_none());
            }
            Req::Free { slot } => {
                if let Some(h) = held[slot].take() {
                    a.free(h);
                }
            }
        }
    }
    std::hint::black_box(&held);
    failed
}

/// Nanoseconds per request: the stream cut into batches of 10,000
/// requests, each batch's least time over `runs` runs from a fresh
/// allocator, summed, over the number of requests.
pub fn time_stream<A: PageRanges>(reqs: &[Req], runs: usize) -> f64 {
    const BATCH: usize = 10_000;
    let n_slots = crate::slots(reqs);
    let batches = reqs.len().div_ceil(BATCH);
    let mut best = vec![u128::MAX; batches];
    for _ in 0..runs.max(1) {
        let mut a = A::new();
        let mut held: Vec<Option<A::Handle>> = (0..n_slots).map(|_| None).collect();
        for (b, chunk) in reqs.chunks(BATCH).enumerate() {
            let t = std::time::Instant::now();
            for r in chunk {
                match *r {
                    Req::Alloc { pages, slot } => {
                        held[slot] = a.alloc(pages).map(|g| g.2);
                    }
                    Req::Free { slot } => {
                        if let Some(h) = held[slot].take() {
                            a.free(h);
                        }
                    }
                }
            }
            best[b] = best[b].min(t.elapsed().as_nanos());
        }
        std::hint::black_box(&held);
    }
    best.iter().sum::<u128>() as f64 / reqs.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact first fit: this allocator places every request where the
    /// plain first fit does, on every workload.
    #[test]
    fn placements_match_plain_first_fit() {
        for w in Workload::ALL {
            let reqs = stream(w, 30_000, 0.7, 42);
            let ours = run_stream(&mut Ours::new(), &reqs);
            let base = run_stream(&mut BTreeFirstFit::new(), &reqs);
            assert_eq!(ours.placements.len(), base.placements.len());
            for (i, (a, b)) in ours.placements.iter().zip(&base.placements).enumerate() {
                assert_eq!(a, b, "{}: allocation {i}", w.name());
            }
            assert_eq!(ours.failed, base.failed);
        }
    }

    /// Every allocator keeps its live allocations disjoint and inside the
    /// heap (checked on the reserved extents).
    #[test]
    fn peers_keep_allocations_disjoint() {
        fn check<A: PageRanges>() {
            let reqs = stream(Workload::Mixed, 20_000, 0.7, 7);
            let mut a = A::new();
            let mut live: BTreeMap<usize, usize> = BTreeMap::new();
            let mut held: Vec<Option<(usize, A::Handle)>> =
                (0..crate::slots(&reqs)).map(|_| None).collect();
            for r in &reqs {
                match *r {
                    Req::Alloc { pages, slot } => {
                        if let Some((s, n, h)) = a.alloc(pages) {
                            assert!(s + n <= HEAP_PAGES, "{}", A::NAME);
                            if let Some((&ps, &pn)) = live.range(..=s).next_back() {
                                assert!(ps + pn <= s, "{}: overlap at {s}", A::NAME);
                            }
                            if let Some((&ns, _)) = live.range(s..).next() {
                                assert!(s + n <= ns, "{}: overlap at {s}", A::NAME);
                            }
                            live.insert(s, n);
                            held[slot] = Some((s, h));
                        }
                    }
                    Req::Free { slot } => {
                        if let Some((s, h)) = held[slot].take() {
                            live.remove(&s);
                            a.free(h);
                        }
                    }
                }
            }
        }
        check::<Ours>();
        check::<Offset>();
        check::<Tlsf>();
        check::<Bitmap>();
        check::<Buddy>();
        check::<RangeAlloc>();
        check::<BTreeFirstFit>();
    }
}
