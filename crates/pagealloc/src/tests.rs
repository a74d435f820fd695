//! Unit tests of the allocator: the scenarios of the Go runtime's own tests
//! for the page allocator, page cache and scavenger (reference §12.2, §12.4,
//! §12.5), each table run through one `check` helper per area, over the
//! simulated OS, with the internal invariants verified after every case.
//!
//! Tables run over [`Go32`](crate::Go32) always (small enough for Miri) and
//! over [`Go64`](crate::Go64) outside Miri; the cases that need chunks more
//! than a 32-bit heap apart are in separate 64-bit tables.

mod alloc;
mod cache;
mod grow;
mod harness;
mod hints;
mod scavenge;
mod scavenge_go127;
