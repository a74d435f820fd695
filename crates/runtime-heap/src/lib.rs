//! A thread-safe page heap for language runtimes: the Go runtime's page
//! heap (`mheap`) composed from [`pageheap_arena`] (address space from the OS) and
//! [`pageheap_alloc`] (the page allocator).
//!
//! ```toml
//! [dependencies]
//! pageheap = "0.1"
//! ```
//!
//! # The model
//!
//! A [`Heap`] hands out [`Span`]s: runs of 8 KiB pages ([`PAGE_BYTES`]).
//!
//! * **Growth.** When no free run fits, the heap grows by whole 4 MiB chunks
//!   taken from its current arena, a 64 MiB reservation (Go's `curArena`).
//!   When the arena runs out it reserves the next one at Go's hint addresses
//!   (`0x00c0 << 32`, then higher), contiguous with the last when it can,
//!   elsewhere when it must. New memory is mapped (Prepared) and handed to
//!   [`pageheap_alloc::PageAlloc::grow`]; it counts as released until used.
//! * **Allocation.** Spans of fewer than 16 pages come from a per-thread
//!   64-page cache without any lock (Go's per-P `pageCache`); the rest, and
//!   cache refills, take the heap lock and search first fit by address.
//!   Released pages in a span are made Ready (`Os::used`, Go's `sysUsed`)
//!   before it is returned; [`Span::needs_zero`] tells whether the memory
//!   may hold old data.
//! * **Returning memory.** [`Heap::scavenge`] and [`Heap::release_all`]
//!   (Go's `debug.FreeOSMemory`) release free pages explicitly; a memory
//!   limit ([`Heap::set_memory_limit`]) releases eagerly during allocation
//!   to stay under it (down to 95% of it); the background scavenger thread
//!   keeps retained-but-free memory near `in_use + min(10%, 4 MiB)` at about
//!   1% of the CPU time, paced by Go's PI controller.
//! * **Accounting.** [`Heap::stats`] reports Go's `heap_sys`, `heap_inuse`,
//!   `heap_free`, `heap_released` and the metadata, consistent with the
//!   page allocator's and the OS layer's counters.
//! * **Global allocator.** [`GlobalHeap`] serves allocations of a page or
//!   more from a heap and smaller ones from [`std::alloc::System`].
//!
//! # Example
//!
//! ```
//! use pageheap::{Config, Heap, PAGE_BYTES};
//!
//! # fn main() -> Result<(), pageheap::Error> {
//! let heap = Heap::with_config(Config::DEFAULT.with_background_scavenger(false))?;
//! let big = heap.alloc(100)?; // 800 KiB, from a fresh chunk
//! assert_eq!(big.len(), 100 * PAGE_BYTES);
//! assert!(!big.needs_zero()); // fresh memory reads as zeros
//! let small = heap.alloc(1)?; // from this thread's page cache
//! heap.free(big)?;
//! heap.free(small)?;
//! let released = heap.release_all()?;
//! assert!(released >= 100 * PAGE_BYTES);
//! let s = heap.stats();
//! assert_eq!(s.heap_sys, s.heap_inuse + s.heap_free + s.heap_released);
//! # Ok(())
//! # }
//! ```
//!
//! # Crate features
//!
//! - `allocator-api2`: [`Heap`] implements `allocator_api2::alloc::Allocator`
//!   (whole spans per block), for collections built on that API.
//! - `log`: [`log`](https://docs.rs/log) events for each grow (`debug`)
//!   and each burst of background scavenging (`trace`).
//! - `std` (default): the background scavenger thread
//!   ([`Config::background_scavenger`], [`Heap::start_scavenger`]). Without
//!   it the heap never starts a thread; the crate itself always needs
//!   `std` (locks and thread-local caches).
//!
//! # Safety
//!
//! The crate denies `unsafe` code except where it is the point: the
//! global-allocator adapter (`unsafe impl GlobalAlloc`), the heap's promise
//! to the page allocator that free pages may be released
//! ([`pageheap_alloc::OsRelease`]), the destructive OS calls of growth and
//! drop and the background scavenger's release of a detached run outside
//! the lock, and [`Span::from_raw_parts`], which is `unsafe` for callers. The
//! heap never hands out its OS object. The page allocator and the
//! lock-free cache path share it through an `Arc`, which `pageheap-arena`
//! implements `Os` for.
#![deny(unsafe_code)]

#[cfg(feature = "allocator-api2")]
mod allocator;
mod cache;
mod config;
mod error;
mod global;
mod heap;
mod scavenger;
mod stats;

#[cfg(test)]
mod tests;

pub use config::{Config, MAX_ARENA_BYTES};
pub use error::Error;
pub use global::GlobalHeap;
pub use heap::{
    CachedBlock, Heap, HeapGeometry, HeapPageAlloc, HeapView, QuarantinedSpan, Span,
    CACHE_MAX_PAGES, CHUNK_BYTES, PAGE_BYTES,
};
pub use pageheap_arena::{BufferOs, Os, ReleaseMode, SystemOs};
pub use stats::HeapStats;

// The README's example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
