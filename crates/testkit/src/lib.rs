//! Test support shared by every crate of the workspace: reference models,
//! trace replay, a simulated OS with fault injection, proptest strategies and
//! the generators the fuzz targets share.
//!
//! # Crate features
//! - `ranges`: the granule-set model of `addr-ranges`.
//! - `os`: the simulated OS.
//! - `pages`: trace reader/replayer, flat page-allocator model, invariant
//!   checker.
#![forbid(unsafe_code)]

// Each area adds its module here, behind its feature.
