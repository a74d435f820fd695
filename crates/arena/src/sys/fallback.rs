//! Systems without a port: every operation is [`Error::Unsupported`].
//!
//! A port adds a sibling of `unix.rs` with the same functions and selects it
//! in `sys/mod.rs`; nothing outside `sys` changes.

use crate::os::{HugeAdvice, ReleaseMode};
use crate::Error;

pub(super) fn page_size() -> usize {
    4096
}

pub(super) fn huge_page_size() -> Option<usize> {
    None
}

pub(super) fn side_map(_len: usize) -> Result<usize, Error> {
    Err(Error::Unsupported)
}

/// # Safety
/// Nothing is ever mapped, so no call gets this far.
pub(super) unsafe fn side_unmap(_addr: usize, _len: usize) -> Result<(), Error> {
    Err(Error::Unsupported)
}

pub(super) fn reserve(_hint: Option<usize>, _len: usize) -> Result<usize, Error> {
    Err(Error::Unsupported)
}

pub(super) fn reserve_at(_addr: usize, _len: usize) -> Result<usize, Error> {
    Err(Error::Unsupported)
}

pub(super) fn reserve_aligned(_len: usize, _align: usize) -> Option<Result<usize, Error>> {
    Some(Err(Error::Unsupported))
}

/// # Safety
/// Nothing is ever reserved, so no call gets this far.
pub(super) unsafe fn map(_addr: usize, _len: usize) -> Result<(), Error> {
    Err(Error::Unsupported)
}

/// # Safety
/// Nothing is ever reserved, so no call gets this far.
pub(super) unsafe fn used(_addr: usize, _len: usize) -> Result<(), Error> {
    Err(Error::Unsupported)
}

/// # Safety
/// Nothing is ever reserved, so no call gets this far.
pub(super) unsafe fn unused(_addr: usize, _len: usize, _mode: ReleaseMode) -> Result<(), Error> {
    Err(Error::Unsupported)
}

/// # Safety
/// Nothing is ever reserved, so no call gets this far.
pub(super) unsafe fn fault(_addr: usize, _len: usize) -> Result<(), Error> {
    Err(Error::Unsupported)
}

/// # Safety
/// Nothing is ever reserved, so no call gets this far.
pub(super) unsafe fn free(_addr: usize, _len: usize) -> Result<(), Error> {
    Err(Error::Unsupported)
}

/// # Safety
/// Nothing is ever reserved, so no call gets this far.
pub(super) unsafe fn advise_huge(
    _addr: usize,
    _len: usize,
    _advice: HugeAdvice,
) -> Result<(), Error> {
    Err(Error::Unsupported)
}

pub(super) fn zeroed_after_unused(_mode: ReleaseMode) -> bool {
    false
}
