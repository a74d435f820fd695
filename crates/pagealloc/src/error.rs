//! The crate's one error type.
//!
//! Every rejected call leaves the allocator exactly as it was: the checks
//! that can fail run before anything is changed, and the few OS calls that
//! can fail half-way through an operation are undone before the error is
//! returned.

/// Errors from the page allocator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused an operation on metadata or heap memory.
    #[error("operating system call failed: {0}")]
    Os(#[from] pageheap_arena::Error),
    /// The set of in-use ranges could not take another range: its node
    /// reservation is full.
    #[error("in-use range set is full")]
    Ranges(#[source] pageheap_ranges::Error),
    /// An address is not aligned to the unit the operation works in (a page,
    /// a chunk, or a page-cache block).
    #[error("address {addr:#x} is not aligned to {align:#x} bytes")]
    Misaligned {
        /// The offending address.
        addr: usize,
        /// The alignment it needed, in bytes.
        align: usize,
    },
    /// A size is not a multiple of the unit the operation works in.
    #[error("size {size:#x} is not a multiple of {align:#x} bytes")]
    MisalignedSize {
        /// The offending size in bytes.
        size: usize,
        /// The unit it must be a multiple of, in bytes.
        align: usize,
    },
    /// A request for zero pages or zero bytes.
    #[error("zero-sized request")]
    ZeroSize,
    /// A range that does not fit in the heap address space (or overflows
    /// `usize`).
    #[error("range at {base:#x} of {len:#x} bytes lies outside the heap address space")]
    OutOfAddressSpace {
        /// The range's first address.
        base: usize,
        /// The range's length in bytes, saturated at `usize::MAX`.
        len: usize,
    },
    /// A grow that overlaps memory the heap already owns.
    #[error("range at {base:#x} of {len:#x} bytes overlaps the heap")]
    Overlap {
        /// The range's first address.
        base: usize,
        /// The range's length in bytes.
        len: usize,
    },
    /// A range that is not wholly inside memory the heap owns.
    #[error("range at {base:#x} of {len:#x} bytes is not inside the heap")]
    NotInHeap {
        /// The range's first address.
        base: usize,
        /// The range's length in bytes.
        len: usize,
    },
    /// A free (or cache flush) of a page that is not allocated, such as a
    /// double free.
    #[error("page {addr:#x} is not allocated")]
    NotAllocated {
        /// The first such page.
        addr: usize,
    },
    /// An `alloc_range` over a page that is already allocated.
    #[error("page {addr:#x} is already allocated")]
    AlreadyAllocated {
        /// The first such page.
        addr: usize,
    },
    /// A page cache that this allocator could not have handed out: its masks
    /// disagree, or it was made for another page size.
    #[error("page cache at {base:#x} is inconsistent")]
    BadCache {
        /// The cache's base address.
        base: usize,
    },
    /// A page index range that does not fit in a chunk.
    #[error("page range {index}+{count} does not fit in a chunk")]
    BadPageRange {
        /// The first page index.
        index: usize,
        /// The number of pages.
        count: usize,
    },
    /// A run given to [`PageAlloc::reattach`](crate::PageAlloc::reattach)
    /// that this allocator did not detach.
    #[error("run at {base:#x} is not this allocator's detached run")]
    BadDetached {
        /// The run's address.
        base: usize,
    },
    /// [`PageAlloc::pad`](crate::PageAlloc::pad) was called before.
    #[error("the heap was padded already")]
    AlreadyPadded,
    /// A configuration value the allocator cannot work with.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
}
