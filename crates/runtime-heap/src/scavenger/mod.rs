//! Everything the heap does to return memory, in one place: the goals
//! that decide how much to release and with which kind of scavenge
//! ([`goals`]), and the background thread with its pacing (`thread`,
//! `pacing`, with the `std` feature). The page allocator's policy
//! (`pageheap_alloc::ScavengePolicy`) decides where; nothing here depends
//! on which policy it is beyond the generations a GC-less program needs.

pub(crate) mod goals;
#[cfg(feature = "std")]
pub(crate) mod pacing;
#[cfg(feature = "std")]
mod thread;

#[cfg(feature = "std")]
pub(crate) use thread::{spawn, Signal};
