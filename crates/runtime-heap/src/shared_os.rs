//! [`SharedOs`]: one [`Os`] object shared between the page allocator and the
//! heap's lock-free paths.
//!
//! The page allocator owns its `Os` by value and lives behind the heap lock,
//! but a per-thread cache hit must make scavenged pages Ready (Go's
//! `sysUsed`) without that lock. Both therefore hold an `Arc` of the same OS
//! object. This is the one place besides the global-allocator adapter that
//! needs `unsafe`: implementing the `unsafe trait Os` for the forwarding
//! wrapper. (A blanket `Os for Arc<T>` in `arena` would remove it.)
#![allow(unsafe_code)]

use std::sync::Arc;

use arena::{Error, HugeAdvice, Os, ReleaseMode};

/// An `Arc`-shared [`Os`] that forwards every call: the OS type of the
/// page allocator inside a [`Heap`](crate::Heap).
pub struct SharedOs<O: Os>(pub(crate) Arc<O>);

impl<O: Os> SharedOs<O> {
    /// Wraps a shared OS object, e.g. to give a heap an OS that a test keeps
    /// a handle to (`Heap::with_os(SharedOs::new(arc.clone()), ..)`).
    pub fn new(os: Arc<O>) -> Self {
        SharedOs(os)
    }

    /// The shared OS object.
    pub fn get(&self) -> &O {
        &self.0
    }
}

// SAFETY:
// - Every method forwards to the same `O` object behind the `Arc`, which
//   implements `Os` and so keeps its promise: Ready memory stays valid until
//   that object unuses, faults or frees it, and reads as zero first. The
//   wrapper adds no state and makes no call of its own, so whichever clone
//   a call comes through, the one object sees exactly the calls it would
//   see without the wrapper.
unsafe impl<O: Os> Os for SharedOs<O> {
    fn page_size(&self) -> usize {
        self.0.page_size()
    }

    fn huge_page_size(&self) -> Option<usize> {
        self.0.huge_page_size()
    }

    fn reserve(&self, hint: Option<usize>, len: usize) -> Result<usize, Error> {
        self.0.reserve(hint, len)
    }

    fn reserve_at(&self, addr: usize, len: usize) -> Result<usize, Error> {
        self.0.reserve_at(addr, len)
    }

    fn map(&self, addr: usize, len: usize) -> Result<(), Error> {
        self.0.map(addr, len)
    }

    fn used(&self, addr: usize, len: usize) -> Result<(), Error> {
        self.0.used(addr, len)
    }

    fn unused(&self, addr: usize, len: usize, mode: ReleaseMode) -> Result<(), Error> {
        self.0.unused(addr, len, mode)
    }

    fn fault(&self, addr: usize, len: usize) -> Result<(), Error> {
        self.0.fault(addr, len)
    }

    fn free(&self, addr: usize, len: usize) -> Result<(), Error> {
        self.0.free(addr, len)
    }

    fn advise_huge(&self, addr: usize, len: usize, advice: HugeAdvice) -> Result<(), Error> {
        self.0.advise_huge(addr, len, advice)
    }

    fn zeroed_after_unused(&self, mode: ReleaseMode) -> bool {
        self.0.zeroed_after_unused(mode)
    }

    fn reserve_aligned(&self, len: usize, align: usize) -> Result<usize, Error> {
        self.0.reserve_aligned(len, align)
    }
}
