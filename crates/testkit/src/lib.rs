//! Test support shared by every crate of the workspace: reference models,
//! trace replay, a simulated OS with fault injection, proptest strategies and
//! the generators the fuzz targets share.
//!
//! # Crate features
//! - `ranges`: the granule-set model of `addr-ranges`.
//! - `os`: the simulated OS.
//! - `pages`: trace reader/replayer, flat page-allocator model, invariant
//!   checker.
// `deny`, not `forbid`: the simulated OS's `unsafe impl arena::Os` is the one
// place allowed to opt out (it contains no unsafe operation).
#![deny(unsafe_code)]

// Each area adds its module here, behind its feature.
#[cfg(feature = "pages")]
pub mod check;
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
