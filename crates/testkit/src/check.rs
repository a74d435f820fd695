//! An invariant checker for [`PageAlloc`], over its read-only
//! [`inspect`](PageAlloc::inspect) view.
//!
//! [`check`] recomputes everything it can from the chunk bitmaps and the
//! in-use ranges with its own naive code (a page-by-page summary of each
//! chunk, a plain fold to merge sibling summaries, the index and byte
//! ranges each in-use range needs per the reference's section 4.3) and
//! compares it with what the allocator stores. It returns the first
//! violation as a [`CheckError`]. [`check_summary_memory`] additionally asks
//! the OS which pages of the summary reservations are actually mapped.

use std::ops::Range;

use pageheap_alloc::{ChunkData, Geometry, PageAlloc, ScavengePolicy, Summary};
use pageheap_arena::{Os, PageState};

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The in-use ranges are not sorted, disjoint, coalesced, non-empty
    /// chunk ranges.
    #[error("in-use ranges malformed: {0:x?}")]
    InUseMalformed(Vec<(usize, usize)>),
    /// A chunk in use has no bitmaps.
    #[error("chunk {0:#x} is in use but has no bitmaps")]
    MissingChunk(usize),
    /// The grown-chunk bounds disagree with the in-use ranges.
    #[error("chunk bounds {stored:x?}, in-use ranges span {expected:x?}")]
    ChunkBounds {
        /// What the allocator reports.
        stored: Option<(usize, usize)>,
        /// The span of the in-use ranges.
        expected: Option<(usize, usize)>,
    },
    /// A summary that the in-use ranges need cannot be read.
    #[error("level {level} summary {index} is needed but not mapped")]
    Unmapped {
        /// Level.
        level: usize,
        /// Index in the level.
        index: usize,
    },
    /// A summary differs from its recomputation, as `(start, max, end)`.
    #[error("level {level} summary {index} is {stored:?}, recomputed {expected:?}")]
    Summary {
        /// Level.
        level: usize,
        /// Index in the level.
        index: usize,
        /// The stored fields.
        stored: (usize, usize, usize),
        /// The recomputed fields.
        expected: (usize, usize, usize),
    },
    /// The search address is neither in use nor the maximum.
    #[error("search address {0:#x} is not in use")]
    SearchNotInUse(usize),
    /// A free page lies below the search address.
    #[error("page {page:#x} is free but below the search address {search:#x}")]
    FreeBelowSearch {
        /// The free page.
        page: usize,
        /// The search address.
        search: usize,
    },
    /// A run of `pages` free pages starts below that size's first-fit hint.
    #[error(
        "{pages}-page first-fit hint {hint:#x} is above the first fit {first_fit:#x} (offsets)"
    )]
    FirstFitHint {
        /// The request size.
        pages: usize,
        /// The hint, as an offset.
        hint: usize,
        /// The lowest offset where such a run starts.
        first_fit: usize,
    },
    /// A fresh gap-cache entry differs from its bitmap word.
    #[error("chunk {chunk:#x} word {word}: gap cache holds {cached}, the word's longest inner free run is {actual}")]
    GapCache {
        /// The chunk's base address.
        chunk: usize,
        /// The word.
        word: usize,
        /// The cached length.
        cached: u8,
        /// The measured length.
        actual: usize,
    },
    /// The first-fit hint of `pages` pages is above the next size's.
    #[error("{pages}-page first-fit hint is above the next size's")]
    FirstFitHintOrder {
        /// The request size.
        pages: usize,
    },
    /// A page is both allocated and scavenged, and not a pad page.
    #[error("page {0:#x} is allocated but marked scavenged")]
    ScavengedAllocated(usize),
    /// A go127 index entry disagrees with the chunk's bitmaps or breaks a
    /// rule of the index.
    #[error("chunk {chunk:#x}: go127 index entry {entry}")]
    Index {
        /// The chunk's address.
        chunk: usize,
        /// What is wrong.
        entry: String,
    },
    /// A go127 cursor or the free high-water mark points outside the heap.
    #[error("go127 {what} at {page:#x} is not a grown page")]
    IndexPointer {
        /// Which pointer.
        what: &'static str,
        /// Its page.
        page: usize,
    },
    /// A level's committed summary memory is not what the in-use ranges
    /// need.
    #[error("level {level} summary memory: mapped {actual:x?}, needed {expected:x?}")]
    SummaryMemory {
        /// Level.
        level: usize,
        /// Byte ranges (relative to the reservation) the allocator maps.
        actual: Vec<Range<usize>>,
        /// Byte ranges the in-use ranges need.
        expected: Vec<Range<usize>>,
    },
    /// A page of a summary reservation is in the wrong OS state.
    #[error("level {level} summary page at {addr:#x} is {actual:?}, expected {expected:?}")]
    SummaryPageState {
        /// Level.
        level: usize,
        /// The page's address.
        addr: usize,
        /// What the OS says.
        actual: PageState,
        /// What the in-use ranges imply.
        expected: PageState,
    },
    /// A statistic disagrees with the bitmaps.
    #[error("stats: {what} is {stored}, bitmaps say {expected}")]
    Stats {
        /// Which counter.
        what: &'static str,
        /// The reported value.
        stored: usize,
        /// The recomputed value.
        expected: usize,
    },
}

/// Checks every invariant of `pa` that its inspect view exposes; see the
/// module documentation.
///
/// # Errors
/// The first violation found.
pub fn check<G: Geometry, O: Os>(pa: &PageAlloc<G, O>) -> Result<(), CheckError> {
    let view = pa.inspect();
    let in_use = in_use_offsets::<G, O>(pa)?;
    let chunk_bytes = G::CHUNK_BYTES;

    // Chunk bounds and bitmaps.
    let span = in_use
        .first()
        .zip(in_use.last())
        .map(|(f, l)| (f.0 / chunk_bytes, l.1 / chunk_bytes));
    if view.chunk_bounds() != span {
        return Err(CheckError::ChunkBounds {
            stored: view.chunk_bounds(),
            expected: span,
        });
    }
    let grown = || {
        in_use
            .iter()
            .flat_map(|&(b, l)| b / chunk_bytes..l / chunk_bytes)
    };
    let mut chunks = Vec::new();
    for ci in grown() {
        match view.chunk(ci) {
            Some(c) => chunks.push((ci, c)),
            None => return Err(CheckError::MissingChunk(to_addr::<G>(ci * chunk_bytes))),
        }
    }

    // Scavenged pages are free, except pad pages; statistics.
    let padded = pa.padded().map_or(0..0, |(a, n)| a..a + n * G::PAGE_BYTES);
    let (mut used, mut scavenged) = (0, 0);
    for &(ci, c) in &chunks {
        let mut chunk_used = 0;
        for p in 0..G::CHUNK_PAGES {
            let (a, s) = (bit(&c.alloc.0, p), bit(&c.scav.0, p));
            if a && s && !padded.contains(&page_addr::<G>(ci, p)) {
                return Err(CheckError::ScavengedAllocated(page_addr::<G>(ci, p)));
            }
            chunk_used += usize::from(a);
            scavenged += usize::from(s && !a);
        }
        used += chunk_used;
        // A detached run is allocated in the bitmap but not in the index.
        let detached = pa.detached().map_or(0, |(a, n)| {
            let lo = to_off::<G>(a);
            let chunk = ci * chunk_bytes;
            if lo >= chunk && lo < chunk + chunk_bytes {
                n
            } else {
                0
            }
        });
        check_index_entry(pa, ci, chunk_used - detached)?;
    }
    check_index_pointers(pa, &in_use)?;
    let total = chunks.len() * G::CHUNK_PAGES;
    let stats = pa.stats();
    for (what, stored, expected) in [
        ("pages_total", stats.pages_total, total),
        ("pages_in_use", stats.pages_in_use, used),
        ("pages_free", stats.pages_free, total - used),
        ("pages_scavenged", stats.pages_scavenged, scavenged),
    ] {
        if stored != expected {
            return Err(CheckError::Stats {
                what,
                stored,
                expected,
            });
        }
    }

    // The search address.
    let search = view.search_addr();
    if search != view.max_search_addr() {
        let off = to_off::<G>(search);
        if !in_use.iter().any(|&(b, l)| b <= off && off < l) {
            return Err(CheckError::SearchNotInUse(search));
        }
    }
    let search_off = to_off::<G>(search);
    for &(ci, c) in &chunks {
        for p in 0..G::CHUNK_PAGES {
            let off = ci * chunk_bytes + p * G::PAGE_BYTES;
            if off >= search_off {
                break;
            }
            if !bit(&c.alloc.0, p) {
                return Err(CheckError::FreeBelowSearch {
                    page: to_addr::<G>(off),
                    search,
                });
            }
        }
    }

    check_first_fit_hints(pa, &chunks)?;
    check_gap_caches(pa, &chunks)?;
    check_summaries(pa, &in_use)?;
    check_mapped_bytes(pa, &in_use)
}

/// Checks every fresh gap-cache entry against its bitmap word: the longest
/// run of free pages with an allocated page on each side, counted bit by
/// bit.
fn check_gap_caches<G: Geometry, O: Os>(
    pa: &PageAlloc<G, O>,
    chunks: &[(usize, &ChunkData)],
) -> Result<(), CheckError> {
    let view = pa.inspect();
    for &(ci, c) in chunks {
        let cache = view
            .gap_cache(ci)
            .ok_or(CheckError::MissingChunk(to_addr::<G>(ci * G::CHUNK_BYTES)))?;
        for (k, (&w, cached)) in c.alloc.0.iter().zip(cache).enumerate() {
            let Some(cached) = cached else { continue };
            // Runs of zeros that end at a one and started after a one.
            let (mut best, mut run, mut seen_one) = (0, 0, false);
            for b in 0..64 {
                if w >> b & 1 == 1 {
                    if seen_one {
                        best = best.max(run);
                    }
                    seen_one = true;
                    run = 0;
                } else {
                    run += 1;
                }
            }
            if usize::from(cached) != best {
                return Err(CheckError::GapCache {
                    chunk: to_addr::<G>(ci * G::CHUNK_BYTES),
                    word: k,
                    cached,
                    actual: best,
                });
            }
        }
    }
    Ok(())
}

/// Checks that no run of `n` free pages starts below the allocator's
/// `n`-page first-fit hint, from the free runs of the grown chunks (in
/// address order; a run only continues across chunks that are adjacent).
fn check_first_fit_hints<G: Geometry, O: Os>(
    pa: &PageAlloc<G, O>,
    chunks: &[(usize, &ChunkData)],
) -> Result<(), CheckError> {
    let hints = pa.inspect().first_fit_hints();
    // first[n - 1]: the lowest offset where n free pages start.
    let mut first = vec![usize::MAX; hints.len()];
    let mut run: Option<(usize, usize)> = None; // (start offset, pages)
    let mut prev_chunk = None;
    let mut close = |run: &mut Option<(usize, usize)>| {
        if let Some((s, len)) = run.take() {
            for f in &mut first[..len.min(hints.len())] {
                *f = (*f).min(s);
            }
        }
    };
    for &(ci, c) in chunks {
        if prev_chunk.is_some_and(|p| p + 1 != ci) {
            close(&mut run);
        }
        prev_chunk = Some(ci);
        for p in 0..G::CHUNK_PAGES {
            if bit(&c.alloc.0, p) {
                close(&mut run);
            } else {
                let off = ci * G::CHUNK_BYTES + p * G::PAGE_BYTES;
                let r = run.get_or_insert((off, 0));
                r.1 += 1;
            }
        }
    }
    close(&mut run);
    // The hints never decrease with the size (their updates rely on it).
    if let Some(k) = hints.windows(2).position(|w| w[0] > w[1]) {
        return Err(CheckError::FirstFitHintOrder { pages: k + 1 });
    }
    for (k, (&hint, &f)) in hints.iter().zip(&first).enumerate() {
        if f != usize::MAX && hint > f {
            return Err(CheckError::FirstFitHint {
                pages: k + 1,
                hint,
                first_fit: f,
            });
        }
    }
    Ok(())
}

/// Checks that every page of each level's summary reservation is mapped
/// (Ready) exactly where the in-use ranges need it, asking the OS through
/// `page_state` (for example `SimOs::page_state` or
/// `SystemOs::page_state`). This walks every OS page of every reservation
/// (hundreds of MiB of address space for 48-bit geometries): use it
/// sparingly.
///
/// # Errors
/// The first page in the wrong state.
pub fn check_summary_memory<G: Geometry, O: Os>(
    pa: &PageAlloc<G, O>,
    page_state: impl Fn(usize) -> PageState,
) -> Result<(), CheckError> {
    let view = pa.inspect();
    let in_use = in_use_offsets::<G, O>(pa)?;
    let page = pa.os_page_size();
    for level in 0..G::SUMMARY_LEVELS {
        let (addr, len) = view.summary_reservation(level);
        let needed = needed_bytes::<G>(level, &in_use, page, len);
        for off in (0..len).step_by(page) {
            let expected = if needed.iter().any(|r| r.contains(&off)) {
                PageState::Ready
            } else {
                PageState::Reserved
            };
            let actual = page_state(addr + off);
            if actual != expected {
                return Err(CheckError::SummaryPageState {
                    level,
                    addr: addr + off,
                    actual,
                    expected,
                });
            }
        }
    }
    Ok(())
}

/// The in-use ranges as offsets, after checking their shape.
fn in_use_offsets<G: Geometry, O: Os>(
    pa: &PageAlloc<G, O>,
) -> Result<Vec<(usize, usize)>, CheckError> {
    let ranges: Vec<(usize, usize)> = pa
        .inspect()
        .in_use()
        .map(|r| (to_off::<G>(r.base), to_off::<G>(r.limit)))
        .collect();
    let aligned = |x: usize| x.is_multiple_of(G::CHUNK_BYTES);
    let each_ok = ranges
        .iter()
        .all(|&(b, l)| b < l && aligned(b) && aligned(l));
    // Strictly increasing with a gap: coalesced.
    let order_ok = ranges.windows(2).all(|w| w[0].1 < w[1].0);
    if each_ok && order_ok {
        Ok(ranges)
    } else {
        Err(CheckError::InUseMalformed(
            pa.inspect().in_use().map(|r| (r.base, r.limit)).collect(),
        ))
    }
}

/// Level `level`'s summary index ranges that the in-use offset ranges need:
/// each range's summaries widened to whole blocks of siblings (the whole
/// level at the root), merged where they overlap or touch.
fn needed_indices<G: Geometry>(level: usize, in_use: &[(usize, usize)]) -> Vec<Range<usize>> {
    let shift = G::level_shift(level);
    let block = 1usize << G::level_bits(level);
    let ranges = in_use.iter().map(|&(b, l)| {
        let (lo, hi) = (b >> shift, ((l - 1) >> shift) + 1);
        lo / block * block..hi.div_ceil(block) * block
    });
    merge(ranges)
}

/// The byte ranges of level `level`'s reservation (of `len` bytes) that
/// must be mapped: [`needed_indices`] as bytes, widened to OS pages.
fn needed_bytes<G: Geometry>(
    level: usize,
    in_use: &[(usize, usize)],
    page: usize,
    len: usize,
) -> Vec<Range<usize>> {
    let size = std::mem::size_of::<Summary>();
    let ranges = in_use.iter().map(|&r| {
        let idx = &needed_indices::<G>(level, &[r])[0];
        let from = idx.start * size / page * page;
        let to = (idx.end * size).div_ceil(page) * page;
        from..to.min(len)
    });
    merge(ranges)
}

/// Joins overlapping or touching ranges of a list sorted by start.
fn merge(ranges: impl Iterator<Item = Range<usize>>) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

fn check_mapped_bytes<G: Geometry, O: Os>(
    pa: &PageAlloc<G, O>,
    in_use: &[(usize, usize)],
) -> Result<(), CheckError> {
    let view = pa.inspect();
    let page = pa.os_page_size();
    for level in 0..G::SUMMARY_LEVELS {
        let len = view.summary_reservation(level).1;
        let expected = needed_bytes::<G>(level, in_use, page, len);
        let actual: Vec<Range<usize>> = view.mapped_summary_bytes(level).collect();
        if actual != expected {
            return Err(CheckError::SummaryMemory {
                level,
                actual,
                expected,
            });
        }
    }
    Ok(())
}

/// Every summary the in-use ranges need, at every level, against a
/// recomputation: leaves from the bitmaps (FULL for chunks never grown),
/// inner summaries from their children, FULL where nothing below is in use.
fn check_summaries<G: Geometry, O: Os>(
    pa: &PageAlloc<G, O>,
    in_use: &[(usize, usize)],
) -> Result<(), CheckError> {
    let view = pa.inspect();
    let leaf = G::SUMMARY_LEVELS - 1;
    // Bottom up, so that a wrong leaf is reported before its parents.
    for level in (0..G::SUMMARY_LEVELS).rev() {
        let n = 1usize
            << if level == leaf {
                0
            } else {
                G::level_bits(level + 1)
            };
        // The summary indices covering in-use memory, ascending (the
        // ranges are sorted and disjoint, so their index ranges overlap
        // only where two ranges share a summary).
        let touched: Vec<(usize, usize)> = in_use
            .iter()
            .map(|&(b, l)| summary_index_range::<G>(level, b, l))
            .collect();
        for range in needed_indices::<G>(level, in_use) {
            // Stretches that cover no in-use memory must be all zero: check
            // those in bulk, and look summary by summary at the rest (or at
            // a stretch that fails, to report the first bad summary).
            let mut segments = Vec::new();
            let mut at = range.start;
            for &(lo, hi) in &touched {
                let (lo, hi) = (lo.max(at), hi.min(range.end));
                if lo >= hi {
                    continue;
                }
                segments.push((at..lo, false));
                segments.push((lo..hi, true));
                at = hi;
            }
            segments.push((at..range.end, false));
            for (seg, touched_seg) in segments {
                if seg.is_empty() || (!touched_seg && view.summaries_zero(level, seg.clone())) {
                    continue;
                }
                check_summary_range(pa, level, n, seg, &touched)?;
            }
        }
    }
    Ok(())
}

/// [`check_summaries`] for the summaries `range` of `level`, one by one:
/// each one is zero if it covers no in-use memory (`touched` lists the
/// index ranges that do), else its chunk's summary (leaves) or the merge
/// of its `n` children.
fn check_summary_range<G: Geometry, O: Os>(
    pa: &PageAlloc<G, O>,
    level: usize,
    n: usize,
    range: core::ops::Range<usize>,
    touched: &[(usize, usize)],
) -> Result<(), CheckError> {
    let view = pa.inspect();
    let leaf = G::SUMMARY_LEVELS - 1;
    // Leaves whose ancestors are deferred: their parents were merged from
    // the value recorded with them.
    let pending: Vec<(usize, Summary)> = view.pending_leaves().collect();
    for (i, stored) in range.clone().zip(view.stored_summaries(level, range)) {
        let stored = stored
            .map(|s| fields::<G>(s))
            .ok_or(CheckError::Unmapped { level, index: i })?;
        let expected = if !touched.iter().any(|&(lo, hi)| lo <= i && i < hi) {
            (0, 0, 0)
        } else if level == leaf {
            let c = view
                .chunk(i)
                .ok_or(CheckError::MissingChunk(to_addr::<G>(i * G::CHUNK_BYTES)))?;
            summarize(&c.alloc.0, G::CHUNK_PAGES)
        } else {
            let children = (i * n..(i + 1) * n)
                .map(|c| {
                    let seen = pending.iter().find(|p| level + 1 == leaf && p.0 == c);
                    (
                        seen.map(|p| p.1)
                            .or_else(|| view.stored_summary(level + 1, c)),
                        c,
                    )
                })
                .map(|(s, c)| {
                    s.map(|s| fields::<G>(s)).ok_or(CheckError::Unmapped {
                        level: level + 1,
                        index: c,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            merge_summaries(&children, 1 << G::level_log_pages(level + 1))
        };
        if stored != expected {
            return Err(CheckError::Summary {
                level,
                index: i,
                stored,
                expected,
            });
        }
    }
    Ok(())
}

/// The summary indices `[lo, hi)` of level `level` that cover the offset
/// range `[base, limit)`.
fn summary_index_range<G: Geometry>(level: usize, base: usize, limit: usize) -> (usize, usize) {
    let shift = G::level_shift(level);
    (base >> shift, ((limit - 1) >> shift) + 1)
}

/// `(start, max, end)` of a bitmap of `pages` pages, page by page: free
/// pages at the bottom, the longest free run, free pages at the top.
fn summarize(alloc: &[u64], pages: usize) -> (usize, usize, usize) {
    // One pass: `run` is the free run ending at the current page; the
    // first run counts as `start` while it began at page 0.
    let (mut start, mut max, mut run) = (0, 0, 0);
    let mut at_bottom = true;
    for p in 0..pages {
        if bit(alloc, p) {
            at_bottom = false;
            run = 0;
        } else {
            run += 1;
            max = max.max(run);
            if at_bottom {
                start += 1;
            }
        }
    }
    (start, max, run)
}

/// The summary of consecutive regions of `size` pages each, from theirs.
fn merge_summaries(children: &[(usize, usize, usize)], size: usize) -> (usize, usize, usize) {
    let (mut start, mut max, mut end) = (0, 0, 0);
    let mut all_free = true;
    for &(s, m, e) in children {
        if all_free {
            start += s;
        }
        // The run ending at the previous child's top continues into this
        // child's bottom.
        max = max.max(m).max(end + s);
        end = if s == size { end + size } else { e };
        all_free &= s == size;
    }
    (start, max, end)
}

fn fields<G: Geometry>(s: Summary) -> (usize, usize, usize) {
    let f = s.unpack::<G>();
    (f.start, f.max, f.end)
}

fn bit(words: &[u64], p: usize) -> bool {
    words[p / 64] >> (p % 64) & 1 == 1
}

fn to_off<G: Geometry>(addr: usize) -> usize {
    addr.wrapping_sub(G::ARENA_BASE_OFFSET)
}

fn to_addr<G: Geometry>(off: usize) -> usize {
    off.wrapping_add(G::ARENA_BASE_OFFSET)
}

fn page_addr<G: Geometry>(ci: usize, p: usize) -> usize {
    to_addr::<G>(ci * G::CHUNK_BYTES + p * G::PAGE_BYTES)
}

/// go127: chunk `ci`'s index entry counts exactly its allocated pages
/// (cached and pad pages included), a full chunk is not flagged, and the
/// count at the generation's start is a page count. Nothing under go119.
fn check_index_entry<G: Geometry, O: Os>(
    pa: &PageAlloc<G, O>,
    ci: usize,
    used: usize,
) -> Result<(), CheckError> {
    if pa.scavenge_policy() != ScavengePolicy::Go127 {
        return Ok(());
    }
    let chunk = to_addr::<G>(ci * G::CHUNK_BYTES);
    let bad = |entry: String| Err(CheckError::Index { chunk, entry });
    let Some(e) = pa.index_entry(chunk) else {
        return bad("missing".to_owned());
    };
    if e.in_use != used {
        return bad(format!(
            "counts {} pages in use, the bitmap {used}",
            e.in_use
        ));
    }
    if e.in_use == G::CHUNK_PAGES && e.free {
        return bad("is full but flagged free".to_owned());
    }
    if e.in_use_at_gen_start > G::CHUNK_PAGES {
        return bad(format!("had {} pages in use", e.in_use_at_gen_start));
    }
    if pa.inspect().scav_marked(ci) != e.free {
        return bad("flag disagrees with the chunk map".to_owned());
    }
    Ok(())
}

/// go127: the cursors and the free high-water mark lie in grown chunks.
fn check_index_pointers<G: Geometry, O: Os>(
    pa: &PageAlloc<G, O>,
    in_use: &[(usize, usize)],
) -> Result<(), CheckError> {
    let Some(s) = pa.index_state() else {
        return Ok(());
    };
    let pointers = [
        ("free high-water mark", s.free_hwm),
        ("background cursor", s.background.map(|c| c.page)),
        ("forced cursor", s.forced.map(|c| c.page)),
    ];
    for (what, page) in pointers {
        if let Some(page) = page {
            let off = to_off::<G>(page);
            if !in_use.iter().any(|&(b, l)| b <= off && off < l) {
                return Err(CheckError::IndexPointer { what, page });
            }
        }
    }
    Ok(())
}
