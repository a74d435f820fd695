//! Test support shared by every crate of the workspace: reference models,
//! trace replay, a simulated OS with fault injection, proptest strategies and
//! the generators the fuzz targets share.
//!
//! # Crate features
//! - `ranges`: the granule-set model of `addr-ranges`.
//! - `os`: the simulated OS.
//! - `pages`: trace reader/replayer, flat page-allocator model, invariant
//!   checker.
// `deny`, not `forbid`: two kinds of item may opt out, each with
// `#[allow(unsafe_code)]`: the simulated OS's `unsafe impl pageheap_arena::Os`, and
// the calls of the destructive `Os` operations (`unused`, `fault`, `free`,
// all `unsafe fn`) on OS objects whose memory the caller alone owns. Neither
// dereferences a pointer.
#![deny(unsafe_code)]

/// The conformance traces, one directory per policy (`go119`, ...), with
/// `TRACE-FORMAT.md`. They live in `pageheap-alloc`'s package, whose own
/// tests replay them.
pub const CONFORMANCE_TRACES: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../pagealloc/tests/traces");

/// The long traces for timing (`perf/`, ...): too large to publish, they
/// stay in this unpublished crate.
pub const PERF_TRACES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/traces");

// Each area adds its module here, behind its feature.
#[cfg(feature = "pages")]
pub mod check;
#[cfg(feature = "heap")]
pub mod check_heap;
pub mod heapstrat;
#[cfg(feature = "pages")]
pub mod model;
#[cfg(feature = "pages")]
pub mod pagestrat;
#[cfg(feature = "ranges")]
pub mod ranges;
#[cfg(feature = "pages")]
pub mod replay;
pub mod rng;
#[cfg(feature = "os")]
pub mod sim_os;
#[cfg(feature = "pages")]
pub mod trace;
