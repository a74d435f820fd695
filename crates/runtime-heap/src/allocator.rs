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

impl<O: Os + 'static> Heap<O> {
    /// A block for `layout` and whether it may hold old data; zero-sized
    /// layouts get a dangling, aligned pointer (never zero: no data).
    fn block(&self, layout: Layout) -> Result<(NonNull<[u8]>, bool), AllocError> {
        let Some(n_pages) = pages_for(layout) else {
            let dangling = NonNull::new(core::ptr::without_provenance_mut::<u8>(layout.align()))
                .ok_or(AllocError)?;
            return Ok((NonNull::slice_from_raw_parts(dangling, 0), false));
        };
        let span = if layout.align() <= PAGE_BYTES {
            self.alloc(n_pages)
        } else {
            self.alloc_aligned(n_pages, layout.align())
        }
        .map_err(|_| AllocError)?;
        let block = NonNull::slice_from_raw_parts(span.as_ptr(), span.len());
        let needs_zero = span.needs_zero();
        // The block now belongs to the caller until `deallocate`.
        let _ = span.into_raw_parts();
        Ok((block, needs_zero))
    }
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
        self.block(layout).map(|(block, _)| block)
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let (block, needs_zero) = self.block(layout)?;
        if needs_zero {
            // SAFETY:
            // - The span was just handed out: its `block.len()` bytes are
            //   Ready and ours alone.
            unsafe { block.cast::<u8>().as_ptr().write_bytes(0, block.len()) };
        }
        Ok(block)
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
