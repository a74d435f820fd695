//! Integration tests of testkit: the trace reader, the flat page-allocator
//! model and the replayer against the recorded traces, the real allocator
//! against the model, and the address-range set against its granule model.
//!
//! These tests use the models and the invariant checker of this crate,
//! which is not published; they live here rather than in the crates they
//! test so that every published crate builds and runs its own tests from
//! its package (see ARCHITECTURE.md, "Tests and packaging").

#[cfg(feature = "pages")]
mod differential;
#[cfg(feature = "ranges")]
mod ranges_model;
#[cfg(feature = "pages")]
mod traces;
