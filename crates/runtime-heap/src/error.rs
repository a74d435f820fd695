//! The crate's one error type.

/// Errors from the heap.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request for zero pages.
    #[error("zero pages requested")]
    ZeroPages,
    /// A request whose size or alignment does not fit in the address space.
    #[error("request for {n_pages} pages aligned to {align:#x} bytes is too large")]
    TooLarge {
        /// The pages requested.
        n_pages: usize,
        /// The alignment requested, in bytes.
        align: usize,
    },
    /// An alignment that is not a power of two.
    #[error("alignment {align:#x} is not a power of two")]
    BadAlign {
        /// The alignment requested, in bytes.
        align: usize,
    },
    /// A free of pages that the calling thread's page cache holds: they
    /// were never handed out, so this is a double or wild free.
    #[error("span at {base:#x} of {n_pages} pages overlaps this thread's page cache")]
    NotAllocated {
        /// The span's first address.
        base: usize,
        /// The span's length in pages.
        n_pages: usize,
    },
    /// The heap grew but still found no room (a bug; reported, not hidden).
    #[error("heap grew by {n_pages} pages but found no room for them")]
    NoRoomAfterGrow {
        /// The pages requested.
        n_pages: usize,
    },
    /// A span another heap handed out (a heap that may be gone, whose
    /// addresses this heap may now use).
    #[error("span at {base:#x} of {n_pages} pages was handed out by another heap")]
    ForeignSpan {
        /// The span's address.
        base: usize,
        /// Its pages.
        n_pages: usize,
    },
    /// A configuration value the heap cannot work with.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// The page allocator refused (bad free, or an OS failure underneath).
    #[error("page allocator: {0}")]
    PageAlloc(#[from] pageheap_alloc::Error),
    /// The operating system refused an address-space operation.
    #[error("address space: {0}")]
    Os(#[from] pageheap_arena::Error),
    /// The background scavenger thread could not be started.
    #[cfg(feature = "std")]
    #[error("cannot start the background scavenger thread")]
    Spawn(#[source] std::io::Error),
}
