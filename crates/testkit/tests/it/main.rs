//! Integration tests of testkit: the trace reader, the flat page-allocator
//! model and the replayer against the recorded traces, and the real
//! allocator against the model.

#[cfg(feature = "pages")]
mod differential;
#[cfg(feature = "pages")]
mod traces;
