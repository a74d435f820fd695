//! A sorted, coalesced set of disjoint address ranges, ordered by *offset*
//! address, with storage that never has to come from the global allocator.
//!
//! ```toml
//! [dependencies]
//! pageheap-ranges = "0.1"
//! ```
//!
//! # The model
//!
//! An [`AddrRange`] is a half-open byte range `[base, limit)` of `usize`
//! addresses. Every comparison between addresses goes through an
//! [`AddrSpace`]: an address is first turned into its *offset*
//! `addr.wrapping_sub(space.offset())`, and offsets compare as plain unsigned
//! integers. With offset 0 this is ordinary address order. With the x86-64
//! offset `0xffff_8000_0000_0000` the sign-extended upper half of the address
//! space sorts *below* the lower half, so the whole 48-bit space is one
//! linear range (Go calls an address seen this way an `offAddr`).
//!
//! [`AddrRanges`] is a set of such ranges that is always sorted by base,
//! pairwise disjoint, and eagerly coalesced: two ranges that touch are merged
//! at once, so no two stored ranges are adjacent. Its running byte total is
//! kept up to date, so [`AddrRanges::total_bytes`] is O(1).
//!
//! The ranges live in a B+-tree whose nodes come from a pluggable
//! [`Storage`]. A set of up to 32 ranges is a single leaf kept inline in the
//! set itself: a plain sorted array that needs no storage at all, so small
//! sets cost what a sorted array costs, without its allocation; larger sets
//! stay logarithmic for every operation, including the rank queries
//! [`AddrRanges::find_succ`] and [`AddrRanges::get`]. Storage is either a
//! growable [`VecStorage`] (feature `alloc`) whose growth fails with an error
//! instead of aborting, or a [`SliceStorage`] over caller-provided nodes, so
//! the set can live in memory obtained straight from the operating system,
//! for example inside a `#[global_allocator]`.
//!
//! # Example
//!
//! ```
//! use pageheap_ranges::{AddrRange, AddrRanges, AddrSpace, Node, SliceStorage};
//!
//! let mut nodes = [Node::EMPTY; 4];
//! let mut set = AddrRanges::with_storage(AddrSpace::flat(), SliceStorage::new(&mut nodes));
//! set.add(AddrRange::new(0x1000, 0x2000))?;
//! set.add(AddrRange::new(0x3000, 0x4000))?;
//! // Touches both neighbours: the three ranges coalesce into one.
//! set.add(AddrRange::new(0x2000, 0x3000))?;
//! assert_eq!(set.len(), 1);
//! assert_eq!(set.total_bytes(), 0x3000);
//! assert!(set.contains(0x2fff));
//! assert_eq!(set.find_addr_greater_equal(0x500), Some(0x1000));
//! // Adding a range that overlaps the set is an error and changes nothing.
//! assert!(set.add(AddrRange::new(0x3f00, 0x5000)).is_err());
//! assert_eq!(set.iter().collect::<Vec<_>>(), [AddrRange::new(0x1000, 0x4000)]);
//! # Ok::<(), pageheap_ranges::Error>(())
//! ```
//!
//! # Performance
//!
//! The crate's criterion bench (`cargo bench -p addr-ranges`) against Go's
//! layout, a sorted `Vec` with binary search and `Vec::insert`, and for
//! lookups a binary search over a sorted slice, all in one run on a 2-core
//! x86-64 development machine (criterion medians; `add_random/n` builds a
//! set of `n` ranges from empty, in shuffled order, and drops it):
//!
//! | bench | this set | sorted `Vec` / slice | ratio |
//! |---|---|---|---|
//! | `add_random/1` | 17.7 ns | 19.5 ns | 0.91x |
//! | `add_random/16` | 264 ns | 303 ns | 0.87x |
//! | `add_random/262144` | 45.3 ms | 5.17 s | 0.009x (114x faster) |
//! | `find_succ/16` (32 probes) | 118 ns | 138 ns | 0.86x |
//! | `contains/16` (32 probes) | 143 ns | 162 ns | 0.88x |
//!
//! # Crate features
//!
//! - `alloc` (default): [`VecStorage`], a `Vec`-backed storage that grows
//!   with `try_reserve`, and the default storage type of [`AddrRanges`].
//!   Without it the crate needs neither `std` nor `alloc`.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod node;
mod set;
mod space;
mod storage;

#[cfg(all(test, feature = "alloc"))]
mod tests;

pub use node::Node;
pub use set::{AddrRanges, Iter};
pub use space::{AddrRange, AddrSpace};
#[cfg(feature = "alloc")]
pub use storage::VecStorage;
pub use storage::{SliceStorage, Storage};

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The range holds no address in offset order (`base >= limit` after
    /// subtracting the offset), which includes a range whose limit wraps
    /// past the top of the offset space.
    #[error("range {range} is empty in offset order")]
    EmptyRange {
        /// The rejected range.
        range: AddrRange,
    },
    /// The range shares at least one address with a range already in the
    /// set.
    #[error("range {range} overlaps {existing} already in the set")]
    Overlap {
        /// The rejected range.
        range: AddrRange,
        /// The lowest range of the set that it overlaps.
        existing: AddrRange,
    },
    /// Subtracting `other` from `range` would split `range` in two, which a
    /// single range cannot represent.
    #[error("subtracting {other} from {range} would split it in two")]
    StrictSplit {
        /// The range being subtracted from.
        range: AddrRange,
        /// The range lying strictly inside it.
        other: AddrRange,
    },
    /// The storage could not grow to the number of nodes the operation
    /// needs: a fixed slice is full, or the allocator refused.
    #[error("storage cannot provide {nodes} nodes")]
    OutOfStorage {
        /// The number of nodes that were needed in total.
        nodes: usize,
    },
}

// The README's example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
