//! The OS abstraction the upper layers are generic over.
//!
//! Everything above `arena` reaches the operating system through [`Os`]: the
//! page allocator reserves and maps its metadata with it and releases heap
//! memory through it, and the facade grows the heap with it. The real OS
//! implements it in this crate ([`SystemOs`](crate::SystemOs)), and so do
//! caller-supplied memory ([`BufferOs`](crate::BufferOs)) and, with the `sim`
//! feature, a simulated OS over heap memory that lets every layer run under
//! Miri and under fault injection.
//!
//! Addresses are plain `usize` values. Region state follows the model of the
//! Go runtime's memory layer:
//!
//! ```text
//!            reserve            map              used
//!   None ─────────────► Reserved ────► Prepared ───────► Ready
//!     ▲                    ▲  ▲            ▲    unused      │
//!     │        free        │  └────────────┼────────────────┤ fault
//!     └────────────────────┴───────────────┴────────────────┘
//! ```

use crate::Error;

/// How [`Os::unused`] gives memory back to the operating system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ReleaseMode {
    /// Drop the pages now; they read back as zeros (Linux `MADV_DONTNEED`).
    #[default]
    DontNeed,
    /// Let the OS reclaim the pages lazily; contents are unspecified until
    /// rewritten (Linux `MADV_FREE`, macOS `MADV_FREE_REUSABLE`).
    Free,
}

/// Transparent-huge-page advice for [`Os::advise_huge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HugeAdvice {
    /// Back the range with huge pages where possible (`MADV_HUGEPAGE`).
    Huge,
    /// Do not back the range with huge pages (`MADV_NOHUGEPAGE`).
    NoHuge,
    /// Collapse the range into huge pages now (`MADV_COLLAPSE`).
    Collapse,
}

/// Address-space operations on one operating system, real or simulated.
///
/// All addresses and lengths must be multiples of [`Os::page_size`], lengths
/// non-zero; violations are [`Error`]s, never undefined behaviour.
///
/// The operations that take memory away ([`Os::unused`], [`Os::fault`],
/// [`Os::free`]) are `unsafe fn`: memory made Ready here is what the layers
/// above keep their metadata and heaps in, so a safe call that unmapped it
/// could pull memory out from under a live reference. Their callers argue,
/// in a `// SAFETY:` comment, that nothing live relies on the range. The
/// operations that only give memory or advice are safe: the worst they can
/// do to someone else's range is make a later call of theirs fail with an
/// error.
///
/// ```compile_fail,E0133
/// use pageheap_arena::{Os, SystemOs};
///
/// let os = SystemOs::new();
/// let page = os.page_size();
/// let addr = os.reserve(None, page).unwrap();
/// os.map(addr, page).unwrap();
/// os.used(addr, page).unwrap();
/// // Unmapping memory takes an `unsafe` block: this does not compile.
/// os.fault(addr, page).unwrap();
/// ```
///
/// # Safety
///
/// Implementors promise that once [`Os::map`] followed by [`Os::used`] has
/// succeeded for a range, every byte of it is valid for reads and writes
/// through a raw pointer made from the address, and stays valid (with its
/// contents) until the range is passed to [`Os::unused`], [`Os::fault`] or
/// [`Os::free`]. Memory made Ready reads as zero the first time. Callers of
/// the page allocator rely on this to keep metadata in memory they got here.
/// The safe methods never make Ready memory unreadable or change its
/// contents.
pub unsafe trait Os: Send + Sync {
    /// The OS page size: the granularity of every operation.
    fn page_size(&self) -> usize;

    /// The transparent huge page size, if the system has one.
    fn huge_page_size(&self) -> Option<usize>;

    /// Reserves `len` bytes of address space (None → Reserved), at `hint` if
    /// the OS agrees, else anywhere. Reserved memory costs no memory and no
    /// commit charge; touching it faults. Never clobbers existing mappings.
    ///
    /// # Errors
    /// Zero or misaligned arguments, or the OS refused.
    fn reserve(&self, hint: Option<usize>, len: usize) -> Result<usize, Error>;

    /// Reserves `len` bytes exactly at `addr`, failing rather than moving.
    ///
    /// # Errors
    /// [`Error::AddressTaken`] if any of the range is already mapped; zero or
    /// misaligned arguments; the OS refused.
    fn reserve_at(&self, addr: usize, len: usize) -> Result<usize, Error>;

    /// Reserved → Prepared: makes the range accessible in principle (commit
    /// charge on systems that have one) without yet promising backing.
    ///
    /// # Errors
    /// Not reserved by this OS object, already mapped, bad arguments, or the
    /// OS refused (out of memory).
    fn map(&self, addr: usize, len: usize) -> Result<(), Error>;

    /// Prepared → Ready: the range may now be read and written.
    ///
    /// # Errors
    /// Not mapped, bad arguments, or the OS refused.
    fn used(&self, addr: usize, len: usize) -> Result<(), Error>;

    /// Ready → Prepared: returns the physical memory to the OS; contents are
    /// lost.
    ///
    /// # Errors
    /// Not mapped, bad arguments, or the OS refused.
    ///
    /// # Safety
    /// Nothing live relies on the contents of the range: no reference into
    /// it exists, and no code will read it expecting what was written
    /// before. The caller owns the range (it reserved it through this
    /// object or was given it by whoever did).
    unsafe fn unused(&self, addr: usize, len: usize, mode: ReleaseMode) -> Result<(), Error>;

    /// Prepared or Ready → Reserved: any access faults from now on.
    ///
    /// # Errors
    /// Not mapped, bad arguments, or the OS refused.
    ///
    /// # Safety
    /// Nothing live relies on the range: no reference or pointer into it
    /// will be used until it is made Ready again. The caller owns the range.
    unsafe fn fault(&self, addr: usize, len: usize) -> Result<(), Error>;

    /// Any → None: gives the address space back. On systems that release only
    /// whole reservations, `addr..addr + len` must be exactly one reservation.
    /// [`SystemOs`](crate::SystemOs) and the simulated OS require that
    /// everywhere ([`Error::NotWholeReservation`]), so code tested on one
    /// system ports to the others.
    ///
    /// # Errors
    /// Not reserved, bad arguments, or the OS refused.
    ///
    /// # Safety
    /// Nothing live relies on the range: no reference or pointer into it
    /// will be used again, and no other owner (a
    /// [`Reservation`](crate::Reservation), a page allocator) still counts
    /// it as its own.
    unsafe fn free(&self, addr: usize, len: usize) -> Result<(), Error>;

    /// Huge-page advice for a mapped range; a hint without a state change.
    ///
    /// # Errors
    /// [`Error::Unsupported`] where the system has no such advice; bad
    /// arguments; the OS refused.
    fn advise_huge(&self, addr: usize, len: usize, advice: HugeAdvice) -> Result<(), Error>;

    /// Whether memory released with `mode` reads back as zeros once reused.
    fn zeroed_after_unused(&self, mode: ReleaseMode) -> bool;

    /// Reserves `len` bytes anywhere at an `align`-aligned address (Go's
    /// `sysReserveAligned`); `align` is a power of two and a multiple of the
    /// page size.
    ///
    /// The default reserves `len + align`, frees it and reserves the aligned
    /// part exactly, retrying a few times when another thread takes the
    /// space in between. Implementations that can trim a reservation do
    /// better.
    ///
    /// # Errors
    /// Zero or misaligned arguments, or the OS refused; [`Error::AddressTaken`]
    /// if the aligned space was taken by others every time.
    fn reserve_aligned(&self, len: usize, align: usize) -> Result<usize, Error> {
        reserve_aligned_by_retry(self, len, align)
    }
}

/// The portable [`Os::reserve_aligned`]: over-reserve, free, and reserve the
/// aligned part exactly, up to 100 times when other threads race for it.
pub(crate) fn reserve_aligned_by_retry<O: Os + ?Sized>(
    os: &O,
    len: usize,
    align: usize,
) -> Result<usize, Error> {
    let page = os.page_size();
    if !align.is_power_of_two() || !align.is_multiple_of(page) {
        return Err(Error::Misaligned {
            addr: 0,
            len: align,
            align: page,
        });
    }
    let padded = len
        .checked_add(align)
        .ok_or(Error::Overflow { addr: 0, len })?;
    let mut last = Error::AddressTaken { addr: 0, len };
    for _ in 0..100 {
        let p = os.reserve(None, padded)?;
        let aligned = p.next_multiple_of(align);
        // SAFETY:
        // - `p..p + padded` was reserved two lines up and never mapped or
        //   handed to anyone: nothing relies on it.
        unsafe { os.free(p, padded) }?;
        match os.reserve_at(aligned, len) {
            Err(e @ Error::AddressTaken { .. }) => last = e,
            r => return r,
        }
    }
    Err(last)
}

/// Implements [`Os`] for a handle type by forwarding every method to the
/// `O` it points to.
macro_rules! forward_os {
    ($($handle:tt)*) => {
        // SAFETY:
        // - Every method forwards to the one `O` behind the handle, which
        //   implements `Os` and keeps its promise: Ready memory stays valid
        //   until that object unuses, faults or frees it, and reads as zero
        //   first. The handle adds no state and makes no call of its own, so
        //   whichever copy a call comes through, the object sees exactly the
        //   calls it would see without it.
        unsafe impl<O: Os + ?Sized> Os for $($handle)* {
    fn page_size(&self) -> usize {
        (**self).page_size()
    }

    fn huge_page_size(&self) -> Option<usize> {
        (**self).huge_page_size()
    }

    fn reserve(&self, hint: Option<usize>, len: usize) -> Result<usize, Error> {
        (**self).reserve(hint, len)
    }

    fn reserve_at(&self, addr: usize, len: usize) -> Result<usize, Error> {
        (**self).reserve_at(addr, len)
    }

    fn map(&self, addr: usize, len: usize) -> Result<(), Error> {
        (**self).map(addr, len)
    }

    fn used(&self, addr: usize, len: usize) -> Result<(), Error> {
        (**self).used(addr, len)
    }

    unsafe fn unused(&self, addr: usize, len: usize, mode: ReleaseMode) -> Result<(), Error> {
        // SAFETY:
        // - The caller's promise for this call is the promise the inner call
        //   needs: the same object, the same range.
        unsafe { (**self).unused(addr, len, mode) }
    }

    unsafe fn fault(&self, addr: usize, len: usize) -> Result<(), Error> {
        // SAFETY:
        // - As for `unused`: the caller's promise covers the same call.
        unsafe { (**self).fault(addr, len) }
    }

    unsafe fn free(&self, addr: usize, len: usize) -> Result<(), Error> {
        // SAFETY:
        // - As for `unused`: the caller's promise covers the same call.
        unsafe { (**self).free(addr, len) }
    }

    fn advise_huge(&self, addr: usize, len: usize, advice: HugeAdvice) -> Result<(), Error> {
        (**self).advise_huge(addr, len, advice)
    }

    fn zeroed_after_unused(&self, mode: ReleaseMode) -> bool {
        (**self).zeroed_after_unused(mode)
    }

    fn reserve_aligned(&self, len: usize, align: usize) -> Result<usize, Error> {
        (**self).reserve_aligned(len, align)
    }
}
    };
}

// One OS object shared by several owners, e.g. a page allocator that owns
// its `Os` by value and a heap's lock-free paths that make pages Ready.
#[cfg(feature = "std")]
forward_os!(std::sync::Arc<O>);

// An OS object borrowed, e.g. a page allocator over a `BufferOs` that the
// caller keeps and inspects.
forward_os!(&O);
