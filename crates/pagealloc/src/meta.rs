//! Metadata memory straight from the [`Os`]: reservations, committing parts
//! of them, and the byte counts the statistics report.
//!
//! The allocator never touches the global heap. Every table it keeps (the
//! summary levels, the chunk map, the in-use range nodes) lives in address
//! space reserved here up front and committed (`map` then `used`) only where
//! the heap needs it. The [`Os`] contract makes committed memory valid for
//! reads and writes and zero the first time it is read, which is what the
//! raw-pointer accesses elsewhere in the crate rely on.

use pageheap_arena::Os;

use crate::Error;

/// One reservation of metadata address space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Region {
    /// First address; 0 for no reservation.
    pub addr: usize,
    /// Length in bytes, a multiple of the OS page size.
    pub len: usize,
}

/// Byte counters for metadata memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MetaBytes {
    /// Address space reserved.
    pub reserved: usize,
    /// Memory committed (Ready).
    pub mapped: usize,
}

/// `x` rounded up to a multiple of the power of two `align`, or `None` on
/// overflow.
#[inline]
pub(crate) fn align_up(x: usize, align: usize) -> Option<usize> {
    debug_assert!(align.is_power_of_two());
    Some(x.checked_add(align - 1)? & !(align - 1))
}

/// `x` rounded down to a multiple of the power of two `align`.
#[inline]
pub(crate) fn align_down(x: usize, align: usize) -> usize {
    debug_assert!(align.is_power_of_two());
    x & !(align - 1)
}

impl Region {
    /// Reserves at least `bytes` (rounded up to the OS page size).
    ///
    /// # Errors
    ///
    /// The OS refused, or the size overflows.
    pub fn reserve<O: Os>(os: &O, bytes: usize, acct: &mut MetaBytes) -> Result<Region, Error> {
        let len = align_up(bytes.max(1), os.page_size())
            .ok_or(Error::Config("metadata reservation overflows"))?;
        let addr = os.reserve(None, len)?;
        acct.reserved += len;
        Ok(Region { addr, len })
    }

    /// Commits `[self.addr + off, self.addr + off + len)`: Reserved → Ready.
    /// On failure nothing stays committed.
    ///
    /// # Errors
    ///
    /// The OS refused.
    pub fn commit<O: Os>(
        self,
        os: &O,
        off: usize,
        len: usize,
        acct: &mut MetaBytes,
    ) -> Result<(), Error> {
        debug_assert!(off + len <= self.len, "commit outside the reservation");
        let addr = self.addr + off;
        os.map(addr, len)?;
        if let Err(e) = os.used(addr, len) {
            // Best effort: the error being reported is the `used` failure.
            // SAFETY:
            // - The range was mapped one line up and never became Ready:
            //   nothing can have stored anything in it.
            let _ = unsafe { os.fault(addr, len) };
            return Err(e.into());
        }
        acct.mapped += len;
        Ok(())
    }

    /// Undoes [`Region::commit`] of the same range (Ready → Reserved), used
    /// to roll back a half-done grow. Failure is ignored: the range then stays
    /// committed, which wastes memory but breaks no invariant the allocator
    /// reads.
    ///
    /// # Safety
    /// Nothing reads or writes the range until it is committed again.
    pub unsafe fn decommit<O: Os>(self, os: &O, off: usize, len: usize, acct: &mut MetaBytes) {
        // SAFETY:
        // - The range lies in this region, which the allocator reserved from
        //   `os` for itself.
        // - The caller promised that nothing uses it until recommitted.
        if unsafe { os.fault(self.addr + off, len) }.is_ok() {
            acct.mapped -= len;
        }
    }

    /// Gives the whole reservation back. Errors are ignored: this runs on
    /// drop, where nothing better can be done.
    ///
    /// # Safety
    /// Nothing uses the region's memory afterwards.
    pub unsafe fn release<O: Os>(self, os: &O) {
        if self.len != 0 {
            // SAFETY:
            // - `(addr, len)` is exactly the reservation `reserve` made from
            //   `os` for the allocator.
            // - The caller promised that nothing uses it afterwards.
            let _ = unsafe { os.free(self.addr, self.len) };
        }
    }
}
