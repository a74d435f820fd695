//! Integration tests of `pagealloc`'s public API: conformance trace replay,
//! bad input leaving the allocator unchanged, OS failures, and releasing
//! heap memory through the OS.

mod bad_input;
mod faults;
mod os_release;
mod snapshot;
mod trace;
