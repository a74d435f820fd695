//! Wasm: linear memory, grown with `memory.grow` in 64 KiB pages.
//!
//! Linear memory is always accessible and never shrinks, so there is nothing
//! to reserve, protect or release: a reservation is a grow at the end of
//! memory, `map`, `used` and `advise_huge` do nothing (huge advice is
//! [`Error::Unsupported`]), `unused` with [`ReleaseMode::DontNeed`] and
//! `fault` write zeros so that the page-state contract still holds, and
//! `free` forgets the range: its memory is lost to the program. Reserved
//! memory does not fault when touched.
//!
//! Every `unsafe fn` here requires that its range lies inside a reservation
//! made by this module that no other code uses, and that the caller holds
//! [`SystemOs`](super::SystemOs)'s lock; [`SystemOs`](super::SystemOs)
//! checks both.

use core::arch::wasm32::{memory_grow, memory_size};
use core::ptr::with_exposed_provenance_mut;

use crate::os::{HugeAdvice, ReleaseMode};
use crate::{Error, OsError};

/// The Wasm page size.
const WASM_PAGE: usize = 64 << 10;

pub(super) fn page_size() -> usize {
    WASM_PAGE
}

pub(super) fn huge_page_size() -> Option<usize> {
    None
}

/// Grows memory by `len` bytes; returns the old end.
fn grow(len: usize) -> Result<usize, Error> {
    match memory_grow(0, len / WASM_PAGE) {
        usize::MAX => Err(Error::Os {
            op: "memory.grow",
            source: OsError::OUT_OF_MEMORY,
        }),
        old => Ok(old * WASM_PAGE),
    }
}

/// A side mapping for bookkeeping (see `crate::side`): fresh linear
/// memory, which reads as zeros.
pub(super) fn side_map(len: usize) -> Result<usize, Error> {
    grow(len.next_multiple_of(WASM_PAGE))
}

/// Linear memory cannot shrink: the side mapping is lost to the program,
/// as freed reservations are.
///
/// # Safety
/// Nothing; unsafe only to match the other platforms.
pub(super) unsafe fn side_unmap(_addr: usize, _len: usize) -> Result<(), Error> {
    Ok(())
}

pub(super) fn reserve(_hint: Option<usize>, len: usize) -> Result<usize, Error> {
    grow(len)
}

pub(super) fn reserve_at(addr: usize, len: usize) -> Result<usize, Error> {
    if addr != memory_size(0) * WASM_PAGE {
        return Err(Error::AddressTaken { addr, len });
    }
    let p = grow(len)?;
    if p != addr {
        // Another thread grew memory first; what we got is lost.
        return Err(Error::AddressTaken { addr, len });
    }
    Ok(p)
}

/// Grows by `len` plus the padding up to the next `align` boundary.
pub(super) fn reserve_aligned(len: usize, align: usize) -> Option<Result<usize, Error>> {
    let padded = match len.checked_add(align) {
        Some(n) => n,
        None => return Some(Err(Error::Overflow { addr: 0, len })),
    };
    Some(grow(padded).map(|p| p.next_multiple_of(align)))
}

/// # Safety
/// See the module docs.
pub(super) unsafe fn map(_addr: usize, _len: usize) -> Result<(), Error> {
    Ok(())
}

/// # Safety
/// See the module docs.
pub(super) unsafe fn used(_addr: usize, _len: usize) -> Result<(), Error> {
    Ok(())
}

/// Writes zeros over the range.
///
/// # Safety
/// See the module docs; the contents are given up.
unsafe fn zero(addr: usize, len: usize) {
    // SAFETY:
    // - Linear memory below `memory.size` is always valid for writes, and the
    //   range is part of our own reservation whose contents the caller gives
    //   up.
    unsafe { core::ptr::write_bytes(with_exposed_provenance_mut::<u8>(addr), 0, len) };
}

/// # Safety
/// See the module docs; the contents are given up.
pub(super) unsafe fn unused(addr: usize, len: usize, mode: ReleaseMode) -> Result<(), Error> {
    if mode == ReleaseMode::DontNeed {
        // SAFETY:
        // - The caller owns the range and gives up its contents (module
        //   docs), so overwriting it with zeros races with no reader.
        unsafe { zero(addr, len) };
    }
    Ok(())
}

/// # Safety
/// See the module docs; the contents are given up.
pub(super) unsafe fn fault(addr: usize, len: usize) -> Result<(), Error> {
    // SAFETY:
    // - The caller owns the range and gives up its contents (module docs),
    //   so overwriting it with zeros races with no reader.
    unsafe { zero(addr, len) };
    Ok(())
}

/// # Safety
/// See the module docs.
pub(super) unsafe fn free(_addr: usize, _len: usize) -> Result<(), Error> {
    Ok(())
}

/// # Safety
/// See the module docs.
pub(super) unsafe fn advise_huge(
    _addr: usize,
    _len: usize,
    _advice: HugeAdvice,
) -> Result<(), Error> {
    Err(Error::Unsupported)
}

pub(super) fn zeroed_after_unused(mode: ReleaseMode) -> bool {
    mode == ReleaseMode::DontNeed
}
