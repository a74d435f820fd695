//! Operations for differential testing of the page allocator against the
//! flat [`Model`]: an `arbitrary` op enum for fuzzing, proptest strategies,
//! and [`apply_and_compare`], which applies one op to both, compares results
//! and state, and runs the invariant checker.
//!
//! Ops name places indirectly so that random ones are mostly meaningful:
//! grows pick a *slot*, a chunk number near one of sixteen boundaries that
//! matter to the summary tree (root entries cover 4096 chunks, 16 GiB, in
//! `Go64`; chunk-map blocks 8192); frees of live memory pick the n-th
//! allocated page the model knows of. Bad input (double frees, frees outside
//! the heap, zero and overflowing counts, misaligned and overlapping grows)
//! is generated on purpose: the model defines which requests are rejected,
//! and the real allocator must reject exactly those and leave its state
//! unchanged.

use std::fmt;

use proptest::prelude::*;

use crate::check::{self, CheckError};
use crate::model::Model;
use crate::replay::{PageHeap, RealHeap};
use crate::trace::TraceGeometry;

/// Address of chunk 0 of the differential heaps: chunk index 0x30000, a
/// multiple of 8192, so that slot boundaries are real tree boundaries.
pub const BASE: usize = 0xc0_0000_0000;

/// Chunks a root summary covers in `Go64` (16 GiB).
pub const ROOT_CHUNKS: usize = 4096;

/// Number of grow slots.
pub const SLOTS: usize = 256;

/// One step of a differential test.
#[derive(Clone, Debug, PartialEq, Eq, arbitrary::Arbitrary)]
pub enum PageOp {
    /// Grows `1 + count % 16` chunks at slot `slot` (see [`slot_chunk`]).
    Grow {
        /// Slot.
        slot: u8,
        /// Chunks, minus one, modulo 16.
        count: u8,
    },
    /// A grow with raw (relative) arguments: misaligned, zero, overlapping
    /// or overflowing.
    GrowRaw {
        /// Byte offset from [`BASE`].
        offset: u64,
        /// Bytes; sizes below half the address space are taken modulo 256
        /// chunks, so that a valid grow stays small enough for the model.
        size: u64,
    },
    /// Allocates `npages` pages (0 is bad input).
    Alloc {
        /// Pages.
        npages: u16,
    },
    /// Allocates an absurd number of pages.
    AllocHuge {
        /// Pages.
        npages: u64,
    },
    /// Frees live memory: from the `pick`-th allocated page (modulo their
    /// number; pages the current cache owns do not count), up to `len`
    /// pages while they stay allocated.
    Free {
        /// Which allocated page to start at.
        pick: u32,
        /// Most pages to free, at least 1.
        len: u16,
    },
    /// Frees `npages` at page `page` of slot `slot`'s chunk: possibly free
    /// already, not grown, or running off the heap.
    FreeAt {
        /// Slot.
        slot: u8,
        /// Page, modulo 512.
        page: u16,
        /// Pages.
        npages: u16,
    },
    /// Frees with raw (relative) arguments.
    FreeRaw {
        /// Byte offset from [`BASE`].
        offset: u64,
        /// Pages.
        npages: u64,
    },
    /// Takes a page cache (replacing the current one without flushing it).
    TakeCache,
    /// Allocates from the current cache.
    CacheAlloc {
        /// Pages (0 and more than 64 are bad input).
        npages: u8,
    },
    /// Flushes the current cache.
    Flush,
    /// Scavenges `bytes`.
    Scavenge {
        /// Bytes.
        bytes: u32,
    },
    /// Scavenges everything.
    ScavengeAll,
    /// An unforced (background) scavenge of `bytes`.
    BgScavenge {
        /// Bytes asked for.
        bytes: u32,
    },
    /// The end of a GC generation.
    NextGen,
    /// `pad` of `npages` pages at page `page` of slot `slot`'s chunk.
    Pad {
        /// Slot (see [`slot_chunk`]).
        slot: u8,
        /// Page in the chunk.
        page: u16,
        /// Pages.
        npages: u16,
    },
}

/// The chunk number (relative to [`BASE`]) of grow slot `slot`: slots come
/// in sixteen groups of sixteen, group `g` covering chunks
/// `(g + 1) * 2048 - 8 ..+ 16`, which straddle a 2048-chunk boundary; every
/// second one is a root-summary boundary and every fourth a chunk-map block
/// boundary.
pub fn slot_chunk(slot: u8) -> usize {
    let (group, off) = (usize::from(slot) / 16, usize::from(slot) % 16);
    (group + 1) * 2048 - 8 + off
}

/// The model and allocator disagree, or the allocator broke an invariant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Divergence {
    /// Different results for one request.
    #[error("{op}: model gave {model}, allocator gave {real}")]
    Result {
        /// The request, resolved.
        op: String,
        /// The model's result.
        model: String,
        /// The allocator's result.
        real: String,
    },
    /// Same result, different state afterwards.
    #[error("{op}: state differs: {what}")]
    State {
        /// The request, resolved.
        op: String,
        /// What differs.
        what: String,
    },
    /// The allocator's internals are inconsistent.
    #[error("{op}: invariant broken")]
    Invariant {
        /// The request, resolved.
        op: String,
        /// The violation.
        #[source]
        source: CheckError,
    },
}

impl Divergence {
    /// The same divergence, its op numbered `i` in the report.
    fn at_op(self, i: usize) -> Self {
        let at = |op: String| format!("op {i}: {op}");
        match self {
            Divergence::Result { op, model, real } => Divergence::Result {
                op: at(op),
                model,
                real,
            },
            Divergence::State { op, what } => Divergence::State { op: at(op), what },
            Divergence::Invariant { op, source } => Divergence::Invariant { op: at(op), source },
        }
    }
}

/// A request with its addresses resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Request {
    Grow(usize, usize),
    Alloc(usize),
    Free(usize, usize),
    TakeCache,
    CacheAlloc(usize),
    Flush,
    Scavenge(usize),
    BgScavenge(usize),
    NextGen,
    Pad(usize, usize),
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Request::Grow(b, s) => write!(f, "grow({b:#x}, {s:#x})"),
            Request::Alloc(n) => write!(f, "alloc({n})"),
            Request::Free(b, n) => write!(f, "free({b:#x}, {n})"),
            Request::TakeCache => f.write_str("take_cache()"),
            Request::CacheAlloc(n) => write!(f, "cache_alloc({n})"),
            Request::Flush => f.write_str("flush()"),
            Request::Scavenge(b) => write!(f, "scavenge({b:#x})"),
            Request::BgScavenge(b) => write!(f, "bg_scavenge({b:#x})"),
            Request::NextGen => f.write_str("next_gen()"),
            Request::Pad(b, n) => write!(f, "pad({b:#x}, {n})"),
        }
    }
}

/// Turns `op` into a concrete request, looking at the model for live pages.
fn resolve(model: &Model, op: &PageOp) -> Request {
    let g = model.geometry();
    let (pb, cb) = (g.page_bytes, g.chunk_bytes());
    let wide = |x: u64| usize::try_from(x).unwrap_or(usize::MAX);
    match *op {
        PageOp::Grow { slot, count } => Request::Grow(
            BASE + slot_chunk(slot) * cb,
            (1 + usize::from(count % 16)) * cb,
        ),
        PageOp::GrowRaw { offset, size } => {
            // The flat model keeps every grown chunk in memory, so a valid
            // grow must stay small (here under 256 chunks); sizes in the top
            // half of the address space stay raw, to keep the overflowing
            // and out-of-range grows.
            let size = wide(size);
            let size = if size > usize::MAX / 2 {
                size
            } else {
                size % (256 * cb)
            };
            Request::Grow(BASE.wrapping_add(wide(offset)), size)
        }
        PageOp::Alloc { npages } => Request::Alloc(usize::from(npages)),
        PageOp::AllocHuge { npages } => Request::Alloc(wide(npages)),
        PageOp::Free { pick, len } => {
            let owned_by_cache = |addr: usize| {
                model.cache().is_some_and(|c| {
                    addr >= c.base
                        && addr < c.base + 64 * pb
                        && c.free >> ((addr - c.base) / pb) & 1 == 1
                })
            };
            let live =
                |addr: usize| model.is_allocated(addr) == Some(true) && !owned_by_cache(addr);
            // The live pages of each chunk as bitmap words: allocated and
            // not owned by the cache. Counting them a word at a time keeps
            // this linear in chunks, not pages.
            let mut chunks: Vec<(usize, [u64; crate::trace::CHUNK_WORDS], usize)> = Vec::new();
            for (b, l) in model.in_use() {
                for chunk in (b..l).step_by(cb) {
                    let Some(bits) = model.chunk_bits(chunk) else {
                        continue;
                    };
                    let mut words = bits.alloc;
                    if let Some(c) = model.cache() {
                        if c.base >= chunk && c.base < chunk + cb {
                            words[(c.base - chunk) / pb / 64] &= !c.free;
                        }
                    }
                    let n = words.iter().map(|w| w.count_ones() as usize).sum();
                    chunks.push((chunk, words, n));
                }
            }
            let total: usize = chunks.iter().map(|c| c.2).sum();
            if total == 0 {
                // Nothing is live: a free of the lowest page of the heap,
                // which the model rejects (or of an unused address).
                let at = model.in_use().first().map_or(BASE, |r| r.0);
                return Request::Free(at, 1);
            }
            // The `pick`-th live page in address order.
            let mut k = pick as usize % total;
            let mut start = BASE;
            'find: for (chunk, words, n) in &chunks {
                if k >= *n {
                    k -= n;
                    continue;
                }
                for (wi, &w) in words.iter().enumerate() {
                    let c = w.count_ones() as usize;
                    if k >= c {
                        k -= c;
                        continue;
                    }
                    let mut w = w;
                    for _ in 0..k {
                        w &= w - 1;
                    }
                    start = chunk + (wi * 64 + w.trailing_zeros() as usize) * pb;
                    break 'find;
                }
            }
            let mut n = 1;
            while n < usize::from(len.max(1)) && live(start + n * pb) {
                n += 1;
            }
            Request::Free(start, n)
        }
        PageOp::FreeAt { slot, page, npages } => Request::Free(
            BASE + slot_chunk(slot) * cb + usize::from(page % 512) * pb,
            usize::from(npages),
        ),
        PageOp::FreeRaw { offset, npages } => {
            Request::Free(BASE.wrapping_add(wide(offset)), wide(npages))
        }
        PageOp::TakeCache => Request::TakeCache,
        PageOp::CacheAlloc { npages } => Request::CacheAlloc(usize::from(npages)),
        PageOp::Flush => Request::Flush,
        PageOp::Scavenge { bytes } => Request::Scavenge(bytes as usize),
        PageOp::ScavengeAll => Request::Scavenge(usize::MAX),
        PageOp::BgScavenge { bytes } => Request::BgScavenge(bytes as usize),
        PageOp::NextGen => Request::NextGen,
        PageOp::Pad { slot, page, npages } => Request::Pad(
            BASE + slot_chunk(slot) * cb + usize::from(page % 512) * pb,
            usize::from(npages % 600),
        ),
    }
}

/// Applies `req` to `heap`, rendering the result as text.
fn run<H: PageHeap>(heap: &mut H, req: Request) -> Result<String, String> {
    let show = |r: Result<String, H::Error>| r.map_err(|e| format!("error: {e}"));
    show(match req {
        Request::Grow(b, s) => heap.grow(b, s).map(|()| "ok".to_owned()),
        Request::Alloc(n) => heap.alloc(n).map(|a| format!("{a:?}")),
        Request::Free(b, n) => heap.free(b, n).map(|()| "ok".to_owned()),
        Request::TakeCache => heap.take_cache().map(|c| format!("{c:?}")),
        Request::CacheAlloc(n) => heap.cache_alloc(n).map(|a| format!("{a:?}")),
        Request::Flush => heap.flush().map(|()| "ok".to_owned()),
        Request::Scavenge(b) => heap.scavenge(b).map(|r| r.to_string()),
        Request::BgScavenge(b) => heap.bg_scavenge(b).map(|r| r.to_string()),
        Request::NextGen => {
            heap.next_gen();
            Ok("ok".to_owned())
        }
        Request::Pad(b, n) => heap.pad(b, n).map(|()| "ok".to_owned()),
    })
}

/// Applies `op` to the allocator and the model, then compares: both reject
/// it or both accept it with the same result; afterwards the in-use ranges,
/// every chunk's bitmaps and the cache agree; and the allocator passes
/// [`check::check`].
///
/// # Errors
/// The first difference or violation found.
pub fn apply_and_compare<G: pageheap_alloc::Geometry, O: pageheap_arena::Os>(
    real: &mut RealHeap<G, O>,
    model: &mut Model,
    op: &PageOp,
) -> Result<(), Divergence> {
    let req = step(real, model, op)?;
    check::check(&real.alloc).map_err(|source| Divergence::Invariant {
        op: format!("{op:?} as {req}"),
        source,
    })
}

/// Applies `op` to both heaps and compares results and state (not the
/// invariants); returns the request it resolved to.
fn step<G: pageheap_alloc::Geometry, O: pageheap_arena::Os>(
    real: &mut RealHeap<G, O>,
    model: &mut Model,
    op: &PageOp,
) -> Result<Request, Divergence> {
    let req = resolve(model, op);
    let want = run(model, req);
    let got = run(real, req);
    let op_text = || format!("{op:?} as {req}");
    // The model's rejection messages are not the allocator's; only the
    // decision to reject must agree.
    let same = match (&want, &got) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => true,
        _ => false,
    };
    if !same {
        let show = |r: &Result<String, String>| match r {
            Ok(s) | Err(s) => s.clone(),
        };
        return Err(Divergence::Result {
            op: op_text(),
            model: show(&want),
            real: show(&got),
        });
    }
    compare_state(real, model).map_err(|what| Divergence::State {
        op: op_text(),
        what,
    })?;
    Ok(req)
}

/// Compares everything a caller can observe of the two heaps.
fn compare_state<G: pageheap_alloc::Geometry, O: pageheap_arena::Os>(
    real: &RealHeap<G, O>,
    model: &Model,
) -> Result<(), String> {
    let (want, got) = (model.in_use(), real.in_use());
    if want != got {
        return Err(format!(
            "in-use ranges: model {want:x?}, allocator {got:x?}"
        ));
    }
    let cb = model.geometry().chunk_bytes();
    for (b, l) in want {
        for chunk in (b..l).step_by(cb) {
            let (w, g) = (model.chunk_bits(chunk), real.chunk_bits(chunk));
            if w != g {
                return Err(format!("chunk {chunk:#x}: model {w:x?}, allocator {g:x?}"));
            }
            let (w, g) = (model.scav_idx(chunk), real.scav_idx(chunk));
            if w != g {
                return Err(format!(
                    "chunk {chunk:#x} index: model {w:?}, allocator {g:?}"
                ));
            }
        }
    }
    let (w, g) = (model.scav_state(), real.scav_state());
    if w != g {
        return Err(format!("index state: model {w:x?}, allocator {g:x?}"));
    }
    let (w, g) = (model.cache(), real.cache_block());
    if w.filter(|c| c.free != 0) != g {
        return Err(format!("cache: model {w:x?}, allocator {g:x?}"));
    }
    Ok(())
}

/// The geometry differential tests run in: `Go64` with 4 KiB OS pages and
/// 2 MiB huge pages, like the recorded traces.
pub fn geometry() -> TraceGeometry {
    TraceGeometry::GO64_LINUX
}

/// A strategy for one [`PageOp`], weighted towards valid, interesting
/// requests: grows are rarer than allocations and frees, and about one op
/// in eight is bad input.
pub fn page_op() -> impl Strategy<Value = PageOp> {
    prop_oneof![
        3 => (any::<u8>(), 0u8..8).prop_map(|(slot, count)| PageOp::Grow { slot: slot % 64, count }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(slot, count)| PageOp::Grow { slot, count }),
        1 => (0u64..1 << 36, prop_oneof![Just(0u64), 1u64..1 << 24, Just(u64::MAX)])
            .prop_map(|(offset, size)| PageOp::GrowRaw { offset, size }),
        10 => (1u16..16).prop_map(|npages| PageOp::Alloc { npages }),
        4 => (1u16..4096).prop_map(|npages| PageOp::Alloc { npages }),
        1 => Just(PageOp::Alloc { npages: 0 }),
        1 => prop_oneof![Just(u64::MAX), Just(1 << 40), 1u64 << 20..1 << 30]
            .prop_map(|npages| PageOp::AllocHuge { npages }),
        12 => (any::<u32>(), 1u16..64).prop_map(|(pick, len)| PageOp::Free { pick, len }),
        2 => (any::<u32>(), 64u16..5000).prop_map(|(pick, len)| PageOp::Free { pick, len }),
        1 => (any::<u8>(), any::<u16>(), 0u16..600).prop_map(|(slot, page, npages)| PageOp::FreeAt { slot, page, npages }),
        1 => (any::<u64>(), prop_oneof![Just(1u64), any::<u64>()]).prop_map(|(offset, npages)| PageOp::FreeRaw { offset, npages }),
        3 => Just(PageOp::TakeCache),
        4 => (0u8..20).prop_map(|npages| PageOp::CacheAlloc { npages }),
        1 => (60u8..=70).prop_map(|npages| PageOp::CacheAlloc { npages }),
        3 => Just(PageOp::Flush),
        2 => prop_oneof![0u32..1 << 16, 1u32 << 16..1 << 24].prop_map(|bytes| PageOp::Scavenge { bytes }),
        1 => Just(PageOp::ScavengeAll),
        2 => prop_oneof![0u32..1 << 16, 1u32 << 16..1 << 24].prop_map(|bytes| PageOp::BgScavenge { bytes }),
        2 => Just(PageOp::NextGen),
        1 => (any::<u8>(), any::<u16>(), 0u16..600).prop_map(|(slot, page, npages)| PageOp::Pad { slot, page, npages }),
    ]
}

/// A strategy for a sequence of up to `max_len` ops.
pub fn page_ops(max_len: usize) -> impl Strategy<Value = Vec<PageOp>> {
    prop::collection::vec(page_op(), 1..=max_len)
}

/// How often [`fuzz_ops`] runs the full invariant checker (and at the end).
pub const FUZZ_CHECK_EVERY: usize = 64;

/// [`apply_and_compare`] for fuzzing: the same result and state comparison
/// after every op, but the invariant checker (which walks every page of
/// the heap) only every [`FUZZ_CHECK_EVERY`] ops and after the last, so
/// that a long input costs little more per op than a short one.
///
/// # Errors
/// The first difference or violation found.
pub fn fuzz_ops<G: pageheap_alloc::Geometry, O: pageheap_arena::Os>(
    real: &mut RealHeap<G, O>,
    model: &mut Model,
    ops: &[PageOp],
) -> Result<(), Divergence> {
    for (i, op) in ops.iter().enumerate() {
        let req = step(real, model, op).map_err(|d| d.at_op(i))?;
        if i % FUZZ_CHECK_EVERY == FUZZ_CHECK_EVERY - 1 || i + 1 == ops.len() {
            check::check(&real.alloc).map_err(|source| Divergence::Invariant {
                op: format!("op {i}: {op:?} as {req}"),
                source,
            })?;
        }
    }
    Ok(())
}

/// Decodes fuzzer bytes into ops, one to four bytes an op: a tag byte,
/// then the op's arguments, each as small as its meaningful range (a
/// missing byte reads as 0). Most tags make valid, interesting requests
/// over a small heap (sixteen grow slots of up to four chunks, in two
/// groups of eight across tree boundaries); about one op in ten is bad
/// input. A fuzzer that mutates one byte changes one op, and an input of
/// N bytes holds about N / 2 ops. The small heap (at most 16 chunks from
/// these grows) keeps every comparison cheap.
pub fn decode_ops(data: &[u8]) -> Vec<PageOp> {
    let mut it = data.iter().copied();
    let mut ops = Vec::with_capacity(data.len() / 2);
    let byte = |it: &mut core::iter::Copied<core::slice::Iter<'_, u8>>| it.next().unwrap_or(0);
    while let Some(tag) = it.next() {
        let op = match tag % 32 {
            // Grow 1-4 chunks in one of 16 slots: chunks 2044-2051, across
            // a summary boundary, and 4092-4099, across a root boundary.
            0 | 1 => {
                let b = byte(&mut it);
                PageOp::Grow {
                    slot: ((b >> 3) & 1) * 16 + 4 + (b & 7),
                    count: (b >> 4) & 3,
                }
            }
            2 => {
                let b = byte(&mut it);
                PageOp::Grow {
                    slot: b,
                    count: byte(&mut it),
                }
            }
            3..=8 => PageOp::Alloc {
                npages: 1 + u16::from(byte(&mut it) % 16),
            },
            9 | 10 => {
                let (a, b) = (byte(&mut it), byte(&mut it));
                PageOp::Alloc {
                    npages: 1 + u16::from_le_bytes([a, b]) % 2048,
                }
            }
            11..=16 => {
                let (a, b) = (byte(&mut it), byte(&mut it));
                PageOp::Free {
                    pick: u32::from(u16::from_le_bytes([a, b])),
                    len: 1 + u16::from(byte(&mut it) % 64),
                }
            }
            17 => {
                let (a, b) = (byte(&mut it), byte(&mut it));
                PageOp::Free {
                    pick: u32::from(a),
                    len: 64 + u16::from_le_bytes([b, 0]) * 8,
                }
            }
            18 | 19 => PageOp::TakeCache,
            20 | 21 => PageOp::CacheAlloc {
                npages: byte(&mut it) % 20,
            },
            22 => PageOp::Flush,
            23 => PageOp::Scavenge {
                bytes: u32::from(byte(&mut it)) << 13,
            },
            24 => PageOp::BgScavenge {
                bytes: u32::from(byte(&mut it)) << 13,
            },
            25 => PageOp::NextGen,
            26 => PageOp::ScavengeAll,
            // Bad or rare input.
            27 => {
                let (a, b) = (byte(&mut it), byte(&mut it));
                PageOp::FreeAt {
                    slot: a & 15,
                    page: u16::from(b) * 2,
                    npages: u16::from(byte(&mut it)),
                }
            }
            28 => match byte(&mut it) % 4 {
                0 => PageOp::Alloc { npages: 0 },
                1 => PageOp::AllocHuge { npages: u64::MAX },
                2 => PageOp::CacheAlloc { npages: 65 },
                _ => PageOp::AllocHuge { npages: 1 << 30 },
            },
            29 => {
                let (a, b) = (byte(&mut it), byte(&mut it));
                PageOp::GrowRaw {
                    offset: u64::from(a) << 20,
                    size: if b == 255 {
                        u64::MAX
                    } else {
                        u64::from(b) << 20
                    },
                }
            }
            30 => {
                let (a, b) = (byte(&mut it), byte(&mut it));
                PageOp::FreeRaw {
                    offset: u64::from(u16::from_le_bytes([a, b])) << 12,
                    npages: 1,
                }
            }
            _ => {
                let (a, b) = (byte(&mut it), byte(&mut it));
                PageOp::Pad {
                    slot: a & 15,
                    page: u16::from(b) * 2,
                    npages: u16::from(byte(&mut it)),
                }
            }
        };
        ops.push(op);
    }
    ops
}

/// A fuzz input in [`decode_ops`]'s encoding that follows a conformance
/// trace's shape: its policy (first byte), and per trace line the nearest
/// op of the encoding: grows into the slots in order, allocations and
/// cache operations as they are, frees of about the trace's page (its
/// position in the heap stands in for its rank among the live pages),
/// scavenges rounded to the encoding's 8 KiB steps. Seeds, not replays:
/// the fuzzer starts from runtime-shaped streams instead of noise.
pub fn seed_from_trace(trace: &crate::trace::Trace) -> Vec<u8> {
    use crate::trace::OpKind;
    let go127 = matches!(trace.geometry.policy, pageheap_alloc::ScavengePolicy::Go127);
    let mut out = vec![u8::from(go127)];
    let mut grows = 0u8;
    let mut grow = |out: &mut Vec<u8>, count: usize| {
        if grows < 16 {
            let b = (grows & 7) | ((grows >> 3) & 1) << 3 | (((count.clamp(1, 4) - 1) as u8) << 4);
            out.extend([0, b]);
            grows += 1;
        }
    };
    for op in &trace.ops {
        match &op.kind {
            OpKind::Grow { count, .. } => grow(&mut out, *count),
            OpKind::Setup { .. } => grow(&mut out, 1),
            OpKind::Alloc { npages, .. } => {
                if *npages <= 16 {
                    out.extend([3, (*npages - 1) as u8]);
                } else {
                    let [a, b] = ((*npages - 1) as u16).to_le_bytes();
                    out.extend([9, a, b]);
                }
            }
            OpKind::Free { at, npages } => {
                // The free picks the n-th live page: the trace page's
                // position in the heap is a fair stand-in for its rank.
                let [a, b] = ((at.chunk * 512 + at.page) as u16).to_le_bytes();
                out.extend([11, a, b, (npages.saturating_sub(1) % 64) as u8]);
            }
            OpKind::Cache { .. } => out.push(18),
            OpKind::CacheAlloc { npages, .. } => out.extend([20, *npages as u8]),
            OpKind::Flush => out.push(22),
            OpKind::Scavenge { bytes, .. } => out.extend([23, (bytes >> 13).min(255) as u8]),
            OpKind::BgScavenge { bytes, .. } => out.extend([24, (bytes >> 13).min(255) as u8]),
            OpKind::NextGen => out.push(25),
            _ => {}
        }
        if out.len() >= 512 {
            break;
        }
    }
    out
}
