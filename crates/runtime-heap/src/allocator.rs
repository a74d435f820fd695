//! [`Heap`] as an [`allocator_api2`] `Allocator` (feature
//! `allocator-api2`), so that collections built on that API (`hashbrown`,
//! `allocator_api2::vec::Vec`, arenas) can live in page-heap memory.
//!
//! Every block is a whole span: its size is rounded up to pages, and an
//! alignment up to a page is free. That suits large buffers; small objects
//! belong in an allocator built on top (a size-class heap, see the
//! `gc_spans` example).

// `Allocator` is an `unsafe trait` and `deallocate` an `unsafe fn`.
#![allow(unsafe_code)]

use core::alloc::Layout;
use core::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator};
use pageheap_arena::Os;

use crate::{Heap, Span, PAGE_BYTES};

/// The span length for `layout`, or `None` for a zero-sized one.
fn pages_for(layout: Layout) -> Option<usize> {
    (layout.size() != 0).then(|| layout.size().div_ceil(PAGE_BYTES))
}

// SAFETY:
// - A block is a span the heap handed out: its pages are Ready and no other
//   span or block covers them until `deallocate` frees it, so it stays valid
//   while the heap lives; copies and moves of a `Heap` share one heap.
// - The block is at least `layout.size()` bytes (whole pages) and aligned
//   to `layout.align()` (page-aligned, or `alloc_aligned` for more).
// - Zero-sized requests get a dangling, well-aligned pointer that
//   `deallocate` never frees.
unsafe impl<O: Os + 'static> Allocator for Heap<O> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let Some(n_pages) = pages_for(layout) else {
            let dangling = NonNull::new(core::ptr::without_provenance_mut::<u8>(layout.align()))
                .ok_or(AllocError)?;
            return Ok(NonNull::slice_from_raw_parts(dangling, 0));
        };
        let span = if layout.align() <= PAGE_BYTES {
            self.alloc(n_pages)
        } else {
            self.alloc_aligned(n_pages, layout.align())
        }
        .map_err(|_| AllocError)?;
        let (ptr, len) = (span.as_ptr(), span.len());
        // The block now belongs to the caller until `deallocate`.
        let _ = span.into_raw_parts();
        Ok(NonNull::slice_from_raw_parts(ptr, len))
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let Some(n_pages) = pages_for(layout) else {
            return self.allocate(layout);
        };
        let span = if layout.align() <= PAGE_BYTES {
            self.alloc(n_pages)
        } else {
            self.alloc_aligned(n_pages, layout.align())
        }
        .map_err(|_| AllocError)?;
        let (ptr, len) = (span.as_ptr(), span.len());
        if span.needs_zero() {
            // SAFETY:
            // - The span was just handed out: `len` bytes at `ptr` are
            //   Ready and ours alone.
            unsafe { ptr.as_ptr().write_bytes(0, len) };
        }
        let _ = span.into_raw_parts();
        Ok(NonNull::slice_from_raw_parts(ptr, len))
    }

    /// # Panics
    /// If the heap refuses the free, which means `ptr` and `layout` do not
    /// describe a block of this heap: a broken `deallocate` contract.
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let Some(n_pages) = pages_for(layout) else {
            return;
        };
        // SAFETY:
        // - The caller promised that `ptr` is a block this heap allocated
        //   for `layout` and gives it up: that is the span `allocate` made
        //   (same page rounding), and nothing uses it afterwards.
        let span = unsafe { Span::from_raw_parts(ptr.as_ptr().addr(), n_pages) };
        if let Err(e) = self.free(span) {
            panic!("deallocate of a block the heap does not hold: {e}");
        }
    }
}
