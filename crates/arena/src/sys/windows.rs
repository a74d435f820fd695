//! Windows: `VirtualAlloc` and `VirtualFree` through windows-sys.
//!
//! A reservation is `MEM_RESERVE`; Windows has no separate "mapped but
//! unbacked" step, so `map` does nothing and `used` commits (`MEM_COMMIT`),
//! which is where the commit charge is taken. `unused` and `fault` both
//! decommit (`MEM_DECOMMIT`). `MEM_RELEASE` releases only a whole
//! reservation, which is why [`Os::free`](crate::Os::free) requires one on
//! every system. There is no huge-page advice.
//!
//! Every `unsafe fn` here requires that its range lies inside a reservation
//! made by this module that no other code uses, and that the caller holds
//! [`SystemOs`](super::SystemOs)'s lock; [`SystemOs`](super::SystemOs)
//! checks both.

use core::ffi::c_void;
use core::ptr::{null, with_exposed_provenance, with_exposed_provenance_mut};

use windows_sys::Win32::Foundation::{GetLastError, ERROR_INVALID_ADDRESS};
use windows_sys::Win32::System::Memory::{
    VirtualAlloc, VirtualFree, MEM_COMMIT, MEM_DECOMMIT, MEM_RELEASE, MEM_RESERVE, PAGE_READWRITE,
};
use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, SYSTEM_INFO};

use crate::os::{HugeAdvice, ReleaseMode};
use crate::{Error, OsError};

pub(super) fn page_size() -> usize {
    // SAFETY:
    // - `SYSTEM_INFO` is plain old data, for which all zeros is valid.
    let mut info: SYSTEM_INFO = unsafe { core::mem::zeroed() };
    // SAFETY:
    // - `info` is a valid, writable `SYSTEM_INFO`.
    unsafe { GetSystemInfo(&mut info) };
    info.dwPageSize as usize
}

pub(super) fn huge_page_size() -> Option<usize> {
    None
}

fn last_err(op: &'static str) -> Error {
    // SAFETY:
    // - `GetLastError` only reads the calling thread's last-error value.
    let code = unsafe { GetLastError() };
    Error::Os {
        op,
        source: OsError::from_raw(code as i32),
    }
}

fn alloc(addr: usize, len: usize, kind: u32) -> *mut c_void {
    let at: *const c_void = if addr == 0 {
        null()
    } else {
        with_exposed_provenance(addr)
    };
    // SAFETY:
    // - `MEM_RESERVE` (alone or with `MEM_COMMIT`) only takes address space
    //   no one uses; `MEM_COMMIT` alone is only passed for ranges of our own
    //   reservations (module docs).
    unsafe { VirtualAlloc(at, len, kind, PAGE_READWRITE) }
}

/// A zeroed read-write side mapping for bookkeeping (see `crate::side`):
/// reserved and committed at once; untouched pages still use no memory.
pub(super) fn side_map(len: usize) -> Result<usize, Error> {
    let p = alloc(0, len, MEM_RESERVE | MEM_COMMIT);
    if p.is_null() {
        return Err(last_err("VirtualAlloc"));
    }
    Ok(p.expose_provenance())
}

/// Releases a side mapping.
///
/// # Safety
/// The range must be one whole side mapping made by [`side_map`] that
/// nothing uses any more.
pub(super) unsafe fn side_unmap(addr: usize, _len: usize) -> Result<(), Error> {
    // SAFETY:
    // - The caller promises a whole side mapping nothing uses any more; a
    //   side mapping is one VirtualAlloc, so `addr` is its allocation base,
    //   which is what releasing a whole reservation with `free` requires.
    unsafe { free(addr, 0) }
}

pub(super) fn reserve(hint: Option<usize>, len: usize) -> Result<usize, Error> {
    let mut p = alloc(hint.unwrap_or(0), len, MEM_RESERVE);
    if p.is_null() && hint.is_some() {
        p = alloc(0, len, MEM_RESERVE);
    }
    if p.is_null() {
        return Err(last_err("VirtualAlloc"));
    }
    Ok(p.expose_provenance())
}

pub(super) fn reserve_at(addr: usize, len: usize) -> Result<usize, Error> {
    let p = alloc(addr, len, MEM_RESERVE);
    if p.is_null() {
        // SAFETY:
        // - `GetLastError` only reads the calling thread's last-error value.
        return Err(match unsafe { GetLastError() } {
            ERROR_INVALID_ADDRESS => Error::AddressTaken { addr, len },
            _ => last_err("VirtualAlloc"),
        });
    }
    if p.expose_provenance() != addr {
        // Windows rounds the address down to its allocation granularity.
        // SAFETY:
        // - `p` is the reservation just made above, used by no one.
        unsafe { VirtualFree(p, 0, MEM_RELEASE) };
        return Err(Error::AddressTaken { addr, len });
    }
    Ok(addr)
}

/// Windows cannot trim a reservation: use the portable retry loop.
pub(super) fn reserve_aligned(_len: usize, _align: usize) -> Option<Result<usize, Error>> {
    None
}

/// Reserved → Prepared: nothing to do; the commit happens in [`used`].
///
/// # Safety
/// See the module docs.
pub(super) unsafe fn map(_addr: usize, _len: usize) -> Result<(), Error> {
    Ok(())
}

/// Prepared → Ready: commit.
///
/// # Safety
/// See the module docs.
pub(super) unsafe fn used(addr: usize, len: usize) -> Result<(), Error> {
    if alloc(addr, len, MEM_COMMIT).is_null() {
        return Err(last_err("VirtualAlloc"));
    }
    Ok(())
}

fn decommit(addr: usize, len: usize) -> Result<(), Error> {
    // SAFETY:
    // - Only called for ranges of our own reservations whose contents the
    //   caller gives up (module docs).
    if unsafe { VirtualFree(with_exposed_provenance_mut(addr), len, MEM_DECOMMIT) } == 0 {
        return Err(last_err("VirtualFree"));
    }
    Ok(())
}

/// Ready → Prepared: decommit.
///
/// # Safety
/// See the module docs; the contents are given up.
pub(super) unsafe fn unused(addr: usize, len: usize, _mode: ReleaseMode) -> Result<(), Error> {
    decommit(addr, len)
}

/// Prepared or Ready → Reserved: decommit.
///
/// # Safety
/// See the module docs; the contents are given up.
pub(super) unsafe fn fault(addr: usize, len: usize) -> Result<(), Error> {
    decommit(addr, len)
}

/// Any → None: release the whole reservation.
///
/// # Safety
/// See the module docs; the range must be a whole reservation.
pub(super) unsafe fn free(addr: usize, _len: usize) -> Result<(), Error> {
    // SAFETY:
    // - `addr` starts a reservation of ours that nobody uses any more.
    if unsafe { VirtualFree(with_exposed_provenance_mut(addr), 0, MEM_RELEASE) } == 0 {
        return Err(last_err("VirtualFree"));
    }
    Ok(())
}

/// Windows has no transparent huge pages.
///
/// # Safety
/// See the module docs.
pub(super) unsafe fn advise_huge(
    _addr: usize,
    _len: usize,
    _advice: HugeAdvice,
) -> Result<(), Error> {
    Err(Error::Unsupported)
}

/// Decommitted pages always come back as zeros.
pub(super) fn zeroed_after_unused(_mode: ReleaseMode) -> bool {
    true
}
