//! Integration tests of `pagealloc`'s public API: conformance trace replay,
//! bad input leaving the allocator unchanged, OS failures, and releasing
//! heap memory through the OS, and the metadata's resident memory on the
//! real OS.

mod bad_input;
mod faults;
mod os_release;
#[cfg(all(target_os = "linux", not(miri)))]
mod resident;
mod snapshot;
mod trace;
