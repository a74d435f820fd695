//! Replaying traces against a page heap: the conformance check and the
//! benchmark loop.
//!
//! [`PageHeap`] is what a replay drives; the flat [`Model`](crate::model::Model)
//! and the real allocator ([`RealHeap`]) both implement it.
//! [`check_trace`] replays every line and stops at the first whose result
//! differs from the trace, returning a [`Mismatch`]. [`prepare`] turns a
//! trace into resolved [`ReplayOp`]s once, and [`replay_ops`] runs them with
//! no checking, formatting or allocation of its own: that is the timed loop
//! of [`bench_file`].
//!
//! # What counts as an operation
//! Every operation line counts: `setup`, `grow`, `alloc`, `free`, `cache`,
//! `calloc`, `flush`, `scavenge`, and for go127 `pad`, `bgscavenge` and
//! `nextgen`. The checks (`inuse`, `chunk`, `scavstate`, `scavidx`),
//! comments, the header and the `policy` and `geometry` lines do not. This is exactly the list of
//! lines the Go oracle's `BenchmarkOracleReplay` parses into ops, and like it
//! a timed replay covers building a fresh allocator (including the `setup`
//! chunks), every operation, and dropping the allocator; ns per op is that
//! time divided by the number of operation lines.

use std::fmt;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pageheap_alloc::{
    Config, Geometry, Go64, HeapRelease, IndexEntry, IndexState, PageAlloc, PageCache,
};
use pageheap_arena::{Os, SystemOs};

use crate::trace::{
    policy_name, OpKind, PageRef, ScavState, Trace, TraceError, TraceGeometry, CHUNK_WORDS,
};

/// A successful allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Allocated {
    /// Address of the first page.
    pub base: usize,
    /// Bytes of the allocated pages that had been scavenged.
    pub scav_bytes: usize,
}

/// A page-cache block as taken from the heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheBlock {
    /// Address of the 64-page aligned block.
    pub base: usize,
    /// Pages owned by the cache (bit i = page i of the block).
    pub free: u64,
    /// Pages among them that are scavenged.
    pub scav: u64,
}

/// One chunk's bitmaps; bit i of word i / 64 is page i.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkBits {
    /// 1 = allocated.
    pub alloc: [u64; CHUNK_WORDS],
    /// 1 = scavenged.
    pub scav: [u64; CHUNK_WORDS],
}

/// A page heap that traces can drive.
///
/// It holds at most one page cache, "the cache taken last": taking another
/// one replaces it without flushing, as the Go replay does.
pub trait PageHeap {
    /// Why a request was rejected.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The geometry the heap works with, including the OS page and huge page
    /// sizes its scavenger uses.
    fn geometry(&self) -> TraceGeometry;

    /// A `setup` line: grows the chunk at `chunk_base` alone, sets its
    /// scavenged bits to exactly `scav`, then allocates `alloc`; `(page,
    /// count)` ranges that may overlap.
    ///
    /// # Errors
    /// Bad input, as the implementation defines it.
    fn seed(
        &mut self,
        chunk_base: usize,
        alloc: &[(usize, usize)],
        scav: &[(usize, usize)],
    ) -> Result<(), Self::Error>;

    /// Adds `[base, base + size)`, chunk-aligned, to the heap.
    ///
    /// # Errors
    /// Bad input, as the implementation defines it.
    fn grow(&mut self, base: usize, size: usize) -> Result<(), Self::Error>;

    /// Allocates `npages` contiguous pages; `None` if there is no room.
    ///
    /// # Errors
    /// Bad input, as the implementation defines it.
    fn alloc(&mut self, npages: usize) -> Result<Option<Allocated>, Self::Error>;

    /// Frees `npages` allocated pages at `base`.
    ///
    /// # Errors
    /// Bad input, as the implementation defines it.
    fn free(&mut self, base: usize, npages: usize) -> Result<(), Self::Error>;

    /// Takes a page-cache block, replacing the current cache; `None` (and an
    /// empty cache) if no page is free.
    ///
    /// # Errors
    /// Failures as the implementation defines them.
    fn take_cache(&mut self) -> Result<Option<CacheBlock>, Self::Error>;

    /// Allocates `npages` from the current cache; `None` if it cannot.
    ///
    /// # Errors
    /// Bad input, as the implementation defines it.
    fn cache_alloc(&mut self, npages: usize) -> Result<Option<Allocated>, Self::Error>;

    /// Gives the current cache's pages back and empties it.
    ///
    /// # Errors
    /// Failures as the implementation defines them.
    fn flush(&mut self) -> Result<(), Self::Error>;

    /// Releases free, unscavenged memory, asking for `bytes`; returns the
    /// bytes released.
    ///
    /// # Errors
    /// Failures as the implementation defines them.
    fn scavenge(&mut self, bytes: usize) -> Result<usize, Self::Error>;

    /// An unforced scavenge (go127's background scavenger), asking for
    /// `bytes`; returns the bytes released.
    ///
    /// # Errors
    /// Failures as the implementation defines them.
    fn bg_scavenge(&mut self, bytes: usize) -> Result<usize, Self::Error>;

    /// Marks the free pages `[base, base + npages pages)` allocated and
    /// scavenged (go127's `pad`).
    ///
    /// # Errors
    /// Bad input, as the implementation defines it.
    fn pad(&mut self, base: usize, npages: usize) -> Result<(), Self::Error>;

    /// Ends a GC generation.
    fn next_gen(&mut self);

    /// The go127 index's global state (`None` for another policy).
    fn scav_state(&self) -> Option<IndexState>;

    /// The go127 index entry of the chunk at `chunk_base` (`None` for
    /// another policy or a chunk never grown).
    fn scav_idx(&self, chunk_base: usize) -> Option<IndexEntry>;

    /// The in-use address ranges `[base, limit)`, ascending and coalesced.
    fn in_use(&self) -> Vec<(usize, usize)>;

    /// The bitmaps of the chunk at `chunk_base`, if it was grown.
    fn chunk_bits(&self, chunk_base: usize) -> Option<ChunkBits>;
}

/// The first trace line whose result differs from the trace.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: expected `{expected}`, got `{actual}`")]
pub struct Mismatch {
    /// 1-based line number.
    pub line: usize,
    /// The line as the trace has it (canonical form).
    pub expected: String,
    /// The same line with the heap's result.
    pub actual: String,
}

/// Replays `trace` against `heap`, checking every expectation, with the base
/// chunk [`Trace::pick_base`] chooses.
///
/// # Errors
/// The first line whose result differs, including a geometry that differs
/// from the heap's (reported at the geometry line) and requests the heap
/// rejects (reported as `error: ..`).
pub fn check_trace<H: PageHeap>(trace: &Trace, heap: &mut H) -> Result<(), Mismatch> {
    let base = trace.pick_base().map_err(|e| Mismatch {
        line: trace.geometry_line,
        expected: trace.geometry.to_string(),
        actual: e.to_string(),
    })?;
    check_trace_at(trace, heap, base)
}

/// [`check_trace`] with base chunk address `base` (chunk-aligned, with room
/// for the trace; results must not depend on it).
///
/// # Errors
/// As [`check_trace`].
pub fn check_trace_at<H: PageHeap>(
    trace: &Trace,
    heap: &mut H,
    base: usize,
) -> Result<(), Mismatch> {
    if heap.geometry() != trace.geometry {
        let text = |g: TraceGeometry| format!("{g} (policy {})", policy_name(g.policy));
        return Err(Mismatch {
            line: trace.geometry_line,
            expected: text(trace.geometry),
            actual: text(heap.geometry()),
        });
    }
    let rel = Relative {
        base,
        geometry: trace.geometry,
    };
    for op in &trace.ops {
        check_op(trace, heap, &rel, op.line, &op.kind)?;
    }
    Ok(())
}

/// Replays one line and compares its result.
fn check_op<H: PageHeap>(
    trace: &Trace,
    heap: &mut H,
    rel: &Relative,
    line: usize,
    kind: &OpKind,
) -> Result<(), Mismatch> {
    let fail = |actual: String| Mismatch {
        line,
        expected: kind.to_string(),
        actual,
    };
    let err = |e: H::Error| fail(format!("{kind}: error: {}", ErrorChain(&e)));
    let base = rel.base;
    match kind {
        OpKind::Setup { chunk, alloc, scav } => {
            let pairs = |rs: &[crate::trace::BitRange]| {
                rs.iter().map(|r| (r.start, r.len)).collect::<Vec<_>>()
            };
            heap.seed(trace.chunk_addr(base, *chunk), &pairs(alloc), &pairs(scav))
                .map_err(err)?;
        }
        OpKind::Grow { chunk, count } => {
            let size = count
                .checked_mul(trace.geometry.chunk_bytes())
                .unwrap_or(usize::MAX);
            heap.grow(trace.chunk_addr(base, *chunk), size)
                .map_err(err)?;
        }
        OpKind::Alloc { npages, expect } | OpKind::CacheAlloc { npages, expect } => {
            let got = if matches!(kind, OpKind::Alloc { .. }) {
                heap.alloc(*npages)
            } else {
                heap.cache_alloc(*npages)
            }
            .map_err(err)?;
            let got_text = match got {
                None => "fail".to_owned(),
                Some(a) => format!("{} {}", rel.page(a.base), a.scav_bytes),
            };
            if got_text != expect.to_string() {
                let verb = if matches!(kind, OpKind::Alloc { .. }) {
                    "alloc"
                } else {
                    "calloc"
                };
                return Err(fail(format!("{verb} {npages} -> {got_text}")));
            }
        }
        OpKind::Free { at, npages } => {
            heap.free(trace.resolve(base, *at), *npages).map_err(err)?;
        }
        OpKind::Cache { expect } => {
            let got = heap.take_cache().map_err(err)?;
            let got_text = match got {
                None => "empty".to_owned(),
                Some(c) => format!("{} {:016x} {:016x}", rel.page(c.base), c.free, c.scav),
            };
            if got_text != expect.to_string() {
                return Err(fail(format!("cache -> {got_text}")));
            }
        }
        OpKind::Flush => heap.flush().map_err(err)?,
        OpKind::Scavenge { bytes, released } => {
            let got = heap.scavenge(*bytes).map_err(err)?;
            if got != *released {
                return Err(fail(format!("scavenge {bytes} -> {got}")));
            }
        }
        OpKind::BgScavenge { bytes, released } => {
            let got = heap.bg_scavenge(*bytes).map_err(err)?;
            if got != *released {
                return Err(fail(format!("bgscavenge {bytes} -> {got}")));
            }
        }
        OpKind::Pad { at, npages } => heap.pad(trace.resolve(base, *at), *npages).map_err(err)?,
        OpKind::NextGen => heap.next_gen(),
        OpKind::ScavState(want) => {
            let Some(got) = heap.scav_state() else {
                return Err(fail("the heap keeps no go127 index".to_owned()));
            };
            let page = |a: usize| rel.page_ref(a);
            let cursor = |c: Option<pageheap_alloc::Cursor>| c.map(|c| (page(c.page), c.marked));
            let got = match (
                got.free_hwm.map(page).transpose(),
                cursor(got.background)
                    .map(|(p, m)| p.map(|p| (p, m)))
                    .transpose(),
                cursor(got.forced)
                    .map(|(p, m)| p.map(|p| (p, m)))
                    .transpose(),
            ) {
                (Ok(hwm), Ok(bg), Ok(force)) => ScavState {
                    gen: got.gen,
                    hwm,
                    bg,
                    force,
                },
                _ => return Err(fail(format!("scavstate with addresses {got:x?}"))),
            };
            if got != *want {
                return Err(fail(got.to_string()));
            }
        }
        OpKind::ScavIdx {
            chunk,
            inuse,
            last,
            free,
        } => {
            let Some(e) = heap.scav_idx(trace.chunk_addr(base, *chunk)) else {
                return Err(fail(format!("chunk {chunk} has no go127 index entry")));
            };
            let got = OpKind::ScavIdx {
                chunk: *chunk,
                inuse: e.in_use,
                last: e.in_use_at_gen_start,
                free: e.free,
            };
            if got
                != (OpKind::ScavIdx {
                    chunk: *chunk,
                    inuse: *inuse,
                    last: *last,
                    free: *free,
                })
            {
                return Err(fail(got.to_string()));
            }
        }
        OpKind::InUse { ranges } => {
            let got = heap.in_use();
            let want: Vec<(usize, usize)> = ranges
                .iter()
                .map(|&(a, z)| (trace.chunk_addr(base, a), trace.chunk_addr(base, z)))
                .collect();
            if got != want {
                let mut text = "inuse ->".to_owned();
                for (a, z) in got {
                    text.push_str(&format!(" {}:{}", rel.chunk(a), rel.chunk(z)));
                }
                return Err(fail(text));
            }
        }
        OpKind::Chunk { chunk, alloc, scav } => {
            let got = heap.chunk_bits(trace.chunk_addr(base, *chunk));
            let want = ChunkBits {
                alloc: *alloc,
                scav: *scav,
            };
            match got {
                None => return Err(fail(format!("chunk {chunk} was not grown"))),
                Some(bits) if bits != want => {
                    let actual = OpKind::Chunk {
                        chunk: *chunk,
                        alloc: bits.alloc,
                        scav: bits.scav,
                    };
                    return Err(fail(actual.to_string()));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// Writes an error with its sources.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut src = self.0.source();
        while let Some(s) = src {
            write!(f, ": {s}")?;
            src = s.source();
        }
        Ok(())
    }
}

/// Turns byte addresses back into the trace's chunk-relative notation.
struct Relative {
    base: usize,
    geometry: TraceGeometry,
}

impl Relative {
    /// `addr` as a page of the trace, if it is one at or above the base.
    fn page_ref(&self, addr: usize) -> Result<PageRef, usize> {
        let g = &self.geometry;
        match addr.checked_sub(self.base) {
            Some(off) if off % g.page_bytes == 0 => Ok(PageRef {
                chunk: off / g.chunk_bytes(),
                page: off % g.chunk_bytes() / g.page_bytes,
            }),
            _ => Err(addr),
        }
    }

    /// `C.P`, or the raw address if it is not a page at or above the base.
    fn page(&self, addr: usize) -> String {
        let g = &self.geometry;
        match addr.checked_sub(self.base) {
            Some(off) if off % g.page_bytes == 0 => PageRef {
                chunk: off / g.chunk_bytes(),
                page: off % g.chunk_bytes() / g.page_bytes,
            }
            .to_string(),
            _ => format!("{addr:#x}"),
        }
    }

    /// `C`, or the raw address if it is not a chunk at or above the base.
    fn chunk(&self, addr: usize) -> String {
        match addr.checked_sub(self.base) {
            Some(off) if off % self.geometry.chunk_bytes() == 0 => {
                (off / self.geometry.chunk_bytes()).to_string()
            }
            _ => format!("{addr:#x}"),
        }
    }
}

/// An operation line with its addresses resolved, ready for [`replay_ops`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayOp {
    /// `setup`.
    Setup {
        /// The chunk's address.
        chunk_base: usize,
        /// Allocated `(page, count)` ranges.
        alloc: Box<[(usize, usize)]>,
        /// Scavenged `(page, count)` ranges.
        scav: Box<[(usize, usize)]>,
    },
    /// `grow`.
    Grow {
        /// Address.
        base: usize,
        /// Bytes.
        size: usize,
    },
    /// `alloc N`.
    Alloc(usize),
    /// `free`.
    Free {
        /// Address.
        base: usize,
        /// Pages.
        npages: usize,
    },
    /// `cache`.
    Cache,
    /// `calloc N`.
    CacheAlloc(usize),
    /// `flush`.
    Flush,
    /// `scavenge B`.
    Scavenge(usize),
    /// `bgscavenge B`.
    BgScavenge(usize),
    /// `pad`.
    Pad {
        /// Address.
        base: usize,
        /// Pages.
        npages: usize,
    },
    /// `nextgen`.
    NextGen,
}

/// The operation lines of `trace` with addresses resolved against the base
/// chunk address `base`; check lines are dropped.
pub fn prepare(trace: &Trace, base: usize) -> Vec<ReplayOp> {
    let pairs = |rs: &[crate::trace::BitRange]| rs.iter().map(|r| (r.start, r.len)).collect();
    trace
        .ops
        .iter()
        .filter_map(|op| {
            Some(match &op.kind {
                OpKind::Setup { chunk, alloc, scav } => ReplayOp::Setup {
                    chunk_base: trace.chunk_addr(base, *chunk),
                    alloc: pairs(alloc),
                    scav: pairs(scav),
                },
                OpKind::Grow { chunk, count } => ReplayOp::Grow {
                    base: trace.chunk_addr(base, *chunk),
                    size: count * trace.geometry.chunk_bytes(),
                },
                OpKind::Alloc { npages, .. } => ReplayOp::Alloc(*npages),
                OpKind::Free { at, npages } => ReplayOp::Free {
                    base: trace.resolve(base, *at),
                    npages: *npages,
                },
                OpKind::Cache { .. } => ReplayOp::Cache,
                OpKind::CacheAlloc { npages, .. } => ReplayOp::CacheAlloc(*npages),
                OpKind::Flush => ReplayOp::Flush,
                OpKind::Scavenge { bytes, .. } => ReplayOp::Scavenge(*bytes),
                OpKind::BgScavenge { bytes, .. } => ReplayOp::BgScavenge(*bytes),
                OpKind::Pad { at, npages } => ReplayOp::Pad {
                    base: trace.resolve(base, *at),
                    npages: *npages,
                },
                OpKind::NextGen => ReplayOp::NextGen,
                OpKind::InUse { .. }
                | OpKind::Chunk { .. }
                | OpKind::ScavState(_)
                | OpKind::ScavIdx { .. } => return None,
            })
        })
        .collect()
}

/// Runs `ops` against `heap` without checking results (each result goes
/// through [`black_box`]).
///
/// # Errors
/// The first request the heap rejects.
pub fn replay_ops<H: PageHeap>(ops: &[ReplayOp], heap: &mut H) -> Result<(), H::Error> {
    for op in ops {
        match op {
            ReplayOp::Setup {
                chunk_base,
                alloc,
                scav,
            } => heap.seed(*chunk_base, alloc, scav)?,
            ReplayOp::Grow { base, size } => heap.grow(*base, *size)?,
            ReplayOp::Alloc(n) => {
                black_box(heap.alloc(*n)?);
            }
            ReplayOp::Free { base, npages } => heap.free(*base, *npages)?,
            ReplayOp::Cache => {
                black_box(heap.take_cache()?);
            }
            ReplayOp::CacheAlloc(n) => {
                black_box(heap.cache_alloc(*n)?);
            }
            ReplayOp::Flush => heap.flush()?,
            ReplayOp::Scavenge(b) => {
                black_box(heap.scavenge(*b)?);
            }
            ReplayOp::BgScavenge(b) => {
                black_box(heap.bg_scavenge(*b)?);
            }
            ReplayOp::Pad { base, npages } => heap.pad(*base, *npages)?,
            ReplayOp::NextGen => heap.next_gen(),
        }
    }
    Ok(())
}

/// The real allocator with its current page cache, as a [`PageHeap`].
pub struct RealHeap<G: Geometry, O: Os> {
    /// The allocator.
    pub alloc: PageAlloc<G, O>,
    /// The cache taken last (empty if none).
    pub cache: PageCache,
    geometry: TraceGeometry,
}

/// Why a [`RealHeap`] could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RealHeapError {
    /// The trace's geometry is not the allocator's.
    #[error("trace geometry `{trace}` does not match the allocator's (page_bytes={page_bytes} chunk_pages={chunk_pages} heap_addr_bits={heap_addr_bits})")]
    Geometry {
        /// The trace's geometry.
        trace: TraceGeometry,
        /// The allocator's page size.
        page_bytes: usize,
        /// The allocator's chunk pages.
        chunk_pages: usize,
        /// The allocator's address bits.
        heap_addr_bits: u32,
    },
    /// The allocator refused to start.
    #[error("cannot create the allocator")]
    New(#[source] pageheap_alloc::Error),
}

impl<G: Geometry, O: Os> RealHeap<G, O> {
    /// An empty allocator over `os` for traces of `geometry`: its page
    /// geometry must be `G`'s, and its OS and huge page sizes configure the
    /// scavenger. Heap pages are only bookkept (trace addresses are
    /// synthetic).
    ///
    /// # Errors
    /// [`RealHeapError::Geometry`] if `geometry` is not `G`'s,
    /// [`RealHeapError::New`] if the allocator cannot be created.
    pub fn new(os: O, geometry: TraceGeometry) -> Result<Self, RealHeapError> {
        if (
            geometry.page_bytes,
            geometry.chunk_pages,
            geometry.heap_addr_bits,
        ) != (G::PAGE_BYTES, G::CHUNK_PAGES, G::HEAP_ADDR_BITS)
        {
            return Err(RealHeapError::Geometry {
                trace: geometry,
                page_bytes: G::PAGE_BYTES,
                chunk_pages: G::CHUNK_PAGES,
                heap_addr_bits: G::HEAP_ADDR_BITS,
            });
        }
        let config = Config {
            heap_release: HeapRelease::Bookkeeping,
            policy: geometry.policy,
            phys_page_bytes: Some(geometry.phys_page_bytes),
            huge_page_bytes: Some(geometry.huge_page_bytes),
        };
        Ok(RealHeap {
            alloc: PageAlloc::new(os, config).map_err(RealHeapError::New)?,
            cache: PageCache::default(),
            geometry,
        })
    }

    /// The current cache as a [`CacheBlock`], `None` if it is empty.
    pub fn cache_block(&self) -> Option<CacheBlock> {
        (!self.cache.is_empty()).then(|| CacheBlock {
            base: self.cache.base(),
            free: self.cache.free_mask(),
            scav: self.cache.scav_mask(),
        })
    }
}

impl<G: Geometry, O: Os> PageHeap for RealHeap<G, O> {
    type Error = pageheap_alloc::Error;

    fn geometry(&self) -> TraceGeometry {
        self.geometry
    }

    #[inline]
    fn seed(
        &mut self,
        chunk_base: usize,
        alloc: &[(usize, usize)],
        scav: &[(usize, usize)],
    ) -> Result<(), Self::Error> {
        self.alloc.seed_chunk(chunk_base, alloc, scav)
    }

    #[inline]
    fn grow(&mut self, base: usize, size: usize) -> Result<(), Self::Error> {
        self.alloc.grow(base, size)
    }

    #[inline]
    fn alloc(&mut self, npages: usize) -> Result<Option<Allocated>, Self::Error> {
        Ok(self.alloc.alloc(npages)?.map(|a| Allocated {
            base: a.base,
            scav_bytes: a.scavenged,
        }))
    }

    #[inline]
    fn free(&mut self, base: usize, npages: usize) -> Result<(), Self::Error> {
        self.alloc.free(base, npages)
    }

    #[inline]
    fn take_cache(&mut self) -> Result<Option<CacheBlock>, Self::Error> {
        self.cache = self.alloc.alloc_to_cache();
        Ok(self.cache_block())
    }

    #[inline]
    fn cache_alloc(&mut self, npages: usize) -> Result<Option<Allocated>, Self::Error> {
        Ok(self.cache.alloc(npages).map(|a| Allocated {
            base: a.base,
            scav_bytes: a.scavenged,
        }))
    }

    #[inline]
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.alloc.flush_cache(&mut self.cache)
    }

    #[inline]
    fn scavenge(&mut self, bytes: usize) -> Result<usize, Self::Error> {
        self.alloc.scavenge(bytes)
    }

    #[inline]
    fn bg_scavenge(&mut self, bytes: usize) -> Result<usize, Self::Error> {
        self.alloc.scavenge_unforced(bytes)
    }

    #[inline]
    fn pad(&mut self, base: usize, npages: usize) -> Result<(), Self::Error> {
        self.alloc.pad(base, npages)
    }

    #[inline]
    fn next_gen(&mut self) {
        self.alloc.next_gen();
    }

    fn scav_state(&self) -> Option<IndexState> {
        self.alloc.index_state()
    }

    fn scav_idx(&self, chunk_base: usize) -> Option<IndexEntry> {
        self.alloc.index_entry(chunk_base)
    }

    fn in_use(&self) -> Vec<(usize, usize)> {
        self.alloc.in_use().map(|r| (r.base, r.limit)).collect()
    }

    fn chunk_bits(&self, chunk_base: usize) -> Option<ChunkBits> {
        self.alloc.chunk(chunk_base).map(|c| ChunkBits {
            alloc: c.alloc.0,
            scav: c.scav.0,
        })
    }
}

/// The outcome of replaying one trace file.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// Every line matched.
    Passed {
        /// Lines replayed (operations and checks).
        lines: usize,
    },
    /// A line did not match.
    Failed(Mismatch),
    /// The file could not be read or parsed.
    Unreadable(TraceError),
    /// The allocator could not be set up for the trace.
    NoHeap(RealHeapError),
}

impl Outcome {
    /// Whether the trace passed.
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Passed { .. })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Passed { lines } => write!(f, "ok ({lines} lines)"),
            Outcome::Failed(m) => write!(f, "FAILED at {m}"),
            Outcome::Unreadable(e) => write!(f, "FAILED: {}", ErrorChain(e)),
            Outcome::NoHeap(e) => write!(f, "FAILED: {}", ErrorChain(e)),
        }
    }
}

/// One file's result in a [`ConformanceReport`].
#[derive(Debug)]
pub struct FileReport {
    /// The trace file.
    pub path: PathBuf,
    /// What happened.
    pub outcome: Outcome,
}

/// The result of replaying trace files against the real allocator.
#[derive(Debug, Default)]
pub struct ConformanceReport {
    /// One entry per file, in the order given.
    pub files: Vec<FileReport>,
}

impl ConformanceReport {
    /// Number of files that passed.
    pub fn passed(&self) -> usize {
        self.files.iter().filter(|f| f.outcome.passed()).count()
    }

    /// Number of files that failed.
    pub fn failed(&self) -> usize {
        self.files.len() - self.passed()
    }

    /// Whether every file passed (and there was at least one).
    pub fn all_passed(&self) -> bool {
        !self.files.is_empty() && self.failed() == 0
    }
}

impl fmt::Display for ConformanceReport {
    /// One line per file, then a summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for file in &self.files {
            writeln!(f, "{}: {}", file.path.display(), file.outcome)?;
        }
        write!(f, "{} passed, {} failed", self.passed(), self.failed())
    }
}

/// Replays the trace at `path` against a fresh heap from `make`, checking
/// every line.
pub fn replay_file<H: PageHeap>(
    path: &Path,
    make: impl FnOnce(TraceGeometry) -> Result<H, RealHeapError>,
) -> Outcome {
    let trace = match Trace::read(path) {
        Ok(t) => t,
        Err(e) => return Outcome::Unreadable(e),
    };
    let mut heap = match make(trace.geometry) {
        Ok(h) => h,
        Err(e) => return Outcome::NoHeap(e),
    };
    match check_trace(&trace, &mut heap) {
        Ok(()) => Outcome::Passed {
            lines: trace.ops.len(),
        },
        Err(m) => Outcome::Failed(m),
    }
}

/// Replays each trace file against a fresh `PageAlloc<Go64, SystemOs>`
/// (heap pages bookkept only, scavenger configured from the trace's
/// geometry line), checking every line. Prints nothing.
pub fn conformance(files: &[PathBuf]) -> ConformanceReport {
    ConformanceReport {
        files: files
            .iter()
            .map(|path| FileReport {
                path: path.clone(),
                outcome: replay_file(path, |g| RealHeap::<Go64, _>::new(SystemOs::new(), g)),
            })
            .collect(),
    }
}

/// The median time per operation line, in nanoseconds, of `runs` (at least
/// 5) replays of the trace at `path`, each against a fresh
/// `PageAlloc<Go64, SystemOs>`. Each timed replay covers creating the
/// allocator, every operation line (including `setup`) and dropping the
/// allocator, as the Go oracle's benchmark does; see the module
/// documentation for what counts as an operation.
///
/// # Panics
/// If the trace cannot be read, its geometry is not `Go64`'s, or the
/// allocator rejects one of its operations.
pub fn bench_file(path: &Path, runs: usize) -> f64 {
    let trace = Trace::read(path).unwrap_or_else(|e| panic!("{}", ErrorChain(&e)));
    let base = trace
        .pick_base()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ops = prepare(&trace, base);
    assert!(!ops.is_empty(), "{}: no operations", path.display());
    let mut times: Vec<f64> = (0..runs.max(5))
        .map(|_| {
            let start = Instant::now();
            let mut heap = RealHeap::<Go64, _>::new(SystemOs::new(), trace.geometry)
                .unwrap_or_else(|e| panic!("{}: {}", path.display(), ErrorChain(&e)));
            replay_ops(&ops, &mut heap)
                .unwrap_or_else(|e| panic!("{}: {}", path.display(), ErrorChain(&e)));
            drop(black_box(heap));
            start.elapsed().as_nanos() as f64 / ops.len() as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
