//! Packed free-run summaries: the (start, max, end) triple of a region in
//! one `u64`, and the merge that builds a parent's summary from its
//! children's. Go calls the type `pallocSum`.

#[cfg(test)]
mod tests;

use crate::chunk::SumFields;
use crate::geometry::Geometry;

/// A region's free-run summary packed into a `u64`; see [`SumFields`].
///
/// With `W = G::LOG_MAX_PACKED` (21 on 64-bit geometries, 18 on 32-bit):
///
/// ```text
///  63  62 .. 3W   3W-1 .. 2W   2W-1 .. W   W-1 .. 0
/// +---+---------+------------+-----------+----------+
/// | F |    0    |    end     |    max    |  start   |
/// +---+---------+------------+-----------+----------+
///  64-bit: F = bit 63, end = 42..63, max = 21..42, start = 0..21
/// ```
///
/// A field holds values below `G::MAX_PACKED = 1 << W`. The one summary that
/// needs `MAX_PACKED` itself, a completely free root-level region, is
/// encoded as the flag bit `F` alone, and all three fields then read as
/// `MAX_PACKED`. A completely full region is the all-zero word
/// ([`Summary::FULL`]), so "is anything free here" is one compare with 0.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug, Hash)]
#[repr(transparent)]
pub struct Summary(pub u64);

/// The flag bit: all three fields equal `MAX_PACKED`.
const ALL_FREE: u64 = 1 << 63;

impl Summary {
    /// The summary of a region with no free page.
    pub const FULL: Summary = Summary(0);

    /// Packs `(start, max, end)`.
    ///
    /// # Panics
    ///
    /// In debug builds, if the triple is not a summary: `start` or `end`
    /// exceeds `max`, `max` exceeds `G::MAX_PACKED`, or `max` equals it while
    /// `start` or `end` does not.
    #[inline]
    pub fn pack<G: Geometry>(start: usize, max: usize, end: usize) -> Self {
        crate::geometry::check::<G>();
        debug_assert!(start <= max && end <= max, "summary fields exceed max");
        debug_assert!(max <= G::MAX_PACKED, "summary field too large");
        if max == G::MAX_PACKED {
            debug_assert!(start == max && end == max, "bad all-free summary");
            return Summary(ALL_FREE);
        }
        let mask = G::MAX_PACKED as u64 - 1;
        let w = G::LOG_MAX_PACKED;
        Summary(
            (start as u64 & mask) | ((max as u64 & mask) << w) | ((end as u64 & mask) << (2 * w)),
        )
    }

    /// The summary's three fields.
    #[inline]
    pub fn unpack<G: Geometry>(self) -> SumFields {
        SumFields {
            start: self.start::<G>(),
            max: self.max::<G>(),
            end: self.end::<G>(),
        }
    }

    /// Free pages at the region's start.
    #[inline]
    pub fn start<G: Geometry>(self) -> usize {
        self.field::<G>(0)
    }

    /// The longest free run in the region.
    #[inline]
    pub fn max<G: Geometry>(self) -> usize {
        self.field::<G>(1)
    }

    /// Free pages at the region's end.
    #[inline]
    pub fn end<G: Geometry>(self) -> usize {
        self.field::<G>(2)
    }

    /// The summary of a completely free chunk: `(CHUNK_PAGES, CHUNK_PAGES,
    /// CHUNK_PAGES)`, packed normally (a chunk is smaller than a root
    /// region).
    #[inline]
    pub fn free_chunk<G: Geometry>() -> Self {
        Self::pack::<G>(G::CHUNK_PAGES, G::CHUNK_PAGES, G::CHUNK_PAGES)
    }

    /// The summary of consecutive sibling regions of `1 << log_pages_per_child`
    /// pages each, from their summaries in address order. Go calls this
    /// `mergeSummaries`.
    ///
    /// # Panics
    ///
    /// If `children` is empty.
    pub fn merge<G: Geometry>(children: &[Summary], log_pages_per_child: u32) -> Summary {
        let (first, rest) = children.split_first().expect("merge of no summaries");
        let child_pages = 1usize << log_pages_per_child;
        let SumFields {
            mut start,
            mut max,
            mut end,
        } = first.unpack::<G>();
        for (i, child) in rest.iter().enumerate() {
            let c = child.unpack::<G>();
            // While every page so far is free, the start run runs on into
            // this child.
            if start == (i + 1) * child_pages {
                start += c.start;
            }
            // The run across the boundary joins the previous end and this
            // child's start.
            max = max.max(end + c.start).max(c.max);
            end = if c.end == child_pages {
                end + child_pages
            } else {
                c.end
            };
        }
        Self::pack::<G>(start, max, end)
    }

    /// [`Summary::merge`] of a block of eight siblings below the root level,
    /// the tree update's case. Such summaries never carry the all-free flag
    /// (a region below the root has fewer than `MAX_PACKED` pages), so
    /// their fields are read with plain shifts, and the fixed count lets
    /// the loop unroll into branch-free selects.
    ///
    /// # Panics
    ///
    /// If `children` is not eight summaries.
    #[inline]
    pub(crate) fn merge_block<G: Geometry>(
        children: &[Summary],
        log_pages_per_child: u32,
    ) -> Summary {
        let children: &[Summary; 8] = children.try_into().expect("a block is eight summaries");
        crate::geometry::check::<G>();
        debug_assert!(
            log_pages_per_child < G::LOG_MAX_PACKED,
            "merge_block of root-level summaries"
        );
        let w = G::LOG_MAX_PACKED;
        let mask = G::MAX_PACKED as u64 - 1;
        let child_pages = 1u64 << log_pages_per_child;
        let fields = |s: Summary| {
            debug_assert!(s.0 & ALL_FREE == 0, "flagged summary below the root");
            (s.0 & mask, (s.0 >> w) & mask, (s.0 >> (2 * w)) & mask)
        };
        let (mut start, mut max, mut end) = fields(children[0]);
        let mut all_free = start == child_pages;
        for &child in &children[1..] {
            let (cs, cm, ce) = fields(child);
            if all_free {
                start += cs;
            }
            all_free &= cs == child_pages;
            max = max.max(end + cs).max(cm);
            end = if ce == child_pages {
                end + child_pages
            } else {
                ce
            };
        }
        if max == G::MAX_PACKED as u64 {
            return Summary(ALL_FREE);
        }
        Summary(start | (max << w) | (end << (2 * w)))
    }

    /// Field `k` (0 = start, 1 = max, 2 = end).
    #[inline]
    fn field<G: Geometry>(self, k: u32) -> usize {
        crate::geometry::check::<G>();
        // The flagged summary has every field bit clear, so ORing in
        // `MAX_PACKED` under the flag reads it without a branch (the fields
        // are read on every search step).
        let v = (self.0 >> (k * G::LOG_MAX_PACKED)) & (G::MAX_PACKED as u64 - 1);
        let flag = 0u64.wrapping_sub(self.0 >> 63);
        (v | (flag & G::MAX_PACKED as u64)) as usize
    }
}
