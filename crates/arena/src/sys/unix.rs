//! Linux and other Unix systems: `mmap`, `munmap` and `madvise` through
//! rustix.
//!
//! Reservations are anonymous `PROT_NONE` mappings (with `MAP_NORESERVE` on
//! Linux, so they carry no commit charge); `map` replaces a range with a
//! read-write mapping; `fault` replaces it with `PROT_NONE` again. rustix has
//! no `MADV_COLLAPSE` and no macOS `MADV_FREE_REUSABLE`/`MADV_FREE_REUSE`, so
//! those two pieces call libc's `madvise`.
//!
//! Every `unsafe fn` here requires that its range lies inside a reservation
//! made by this module that no other code uses, and that the caller holds
//! [`SystemOs`](super::SystemOs)'s lock; [`SystemOs`](super::SystemOs)
//! checks both.

use core::ffi::c_void;
use core::ptr::with_exposed_provenance_mut;

use rustix::io::Errno;
use rustix::mm::{self, MapFlags, ProtFlags};

use crate::os::{HugeAdvice, ReleaseMode};
use crate::{Error, OsError};

pub(super) fn page_size() -> usize {
    rustix::param::page_size()
}

/// Reads the THP size into a stack buffer: this runs inside the global
/// allocator, so it must not allocate (opening a short path does not).
#[cfg(all(target_os = "linux", feature = "std"))]
pub(super) fn huge_page_size() -> Option<usize> {
    use std::io::Read;
    let mut f = std::fs::File::open("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size").ok()?;
    let mut buf = [0u8; 32];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    core::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

#[cfg(not(all(target_os = "linux", feature = "std")))]
pub(super) fn huge_page_size() -> Option<usize> {
    None
}

/// The flags of a reservation: private, and not charged on Linux.
fn reserve_flags() -> MapFlags {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        MapFlags::PRIVATE | MapFlags::NORESERVE
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        MapFlags::PRIVATE
    }
}

fn os_err(op: &'static str, e: Errno) -> Error {
    Error::Os {
        op,
        source: OsError::from_raw(e.raw_os_error()),
    }
}

fn ptr(addr: usize) -> *mut c_void {
    with_exposed_provenance_mut(addr)
}

/// Maps fresh `PROT_NONE` address space, at `hint` if the kernel agrees.
fn mmap_reserve(hint: usize, len: usize, extra: MapFlags) -> Result<usize, Errno> {
    // SAFETY:
    // - Without `MAP_FIXED` the kernel only picks address space that no
    //   mapping uses (`MAP_FIXED_NOREPLACE` fails rather than replace), so no
    //   existing memory is affected; `hint` is advice.
    let p =
        unsafe { mm::mmap_anonymous(ptr(hint), len, ProtFlags::empty(), reserve_flags() | extra) }?;
    Ok(p.expose_provenance())
}

/// A zeroed read-write side mapping for bookkeeping (see `crate::side`):
/// `MAP_NORESERVE` on Linux so untouched parts cost no commit charge. Under
/// Miri, which only emulates `MAP_PRIVATE | MAP_ANONYMOUS`, plainly private.
pub(super) fn side_map(len: usize) -> Result<usize, Error> {
    #[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
    let flags = MapFlags::PRIVATE | MapFlags::NORESERVE;
    #[cfg(not(all(any(target_os = "linux", target_os = "android"), not(miri))))]
    let flags = MapFlags::PRIVATE;
    // SAFETY:
    // - Without `MAP_FIXED` the kernel picks address space no mapping uses,
    //   so no existing memory is affected.
    let p = unsafe {
        mm::mmap_anonymous(
            core::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            flags,
        )
    }
    .map_err(|e| os_err("mmap", e))?;
    Ok(p.expose_provenance())
}

/// Unmaps a side mapping.
///
/// # Safety
/// The range must be one whole side mapping made by [`side_map`] that
/// nothing uses any more.
pub(super) unsafe fn side_unmap(addr: usize, len: usize) -> Result<(), Error> {
    // SAFETY:
    // - The caller promises `addr..addr + len` is one whole side mapping
    //   that nothing references any more, so unmapping it leaves no
    //   dangling reference and touches no other mapping.
    unsafe { mm::munmap(ptr(addr), len) }.map_err(|e| os_err("munmap", e))
}

pub(super) fn reserve(hint: Option<usize>, len: usize) -> Result<usize, Error> {
    mmap_reserve(hint.unwrap_or(0), len, MapFlags::empty()).map_err(|e| os_err("mmap", e))
}

pub(super) fn reserve_at(addr: usize, len: usize) -> Result<usize, Error> {
    #[cfg(target_os = "linux")]
    let noreplace = MapFlags::FIXED_NOREPLACE;
    #[cfg(not(target_os = "linux"))]
    let noreplace = MapFlags::empty();
    // Kernels before 4.17 ignore `MAP_FIXED_NOREPLACE` and treat the address
    // as a hint, so the result is compared as well (Go's only check).
    match mmap_reserve(addr, len, noreplace) {
        Ok(p) if p == addr => Ok(p),
        Ok(p) => {
            // SAFETY:
            // - `p..p + len` is the mapping just made above, used by no one.
            unsafe { mm::munmap(ptr(p), len) }.map_err(|e| os_err("munmap", e))?;
            Err(Error::AddressTaken { addr, len })
        }
        Err(Errno::EXIST) => Err(Error::AddressTaken { addr, len }),
        Err(e) => Err(os_err("mmap", e)),
    }
}

/// Reserves `len + align`, then unmaps the unaligned head and the tail.
pub(super) fn reserve_aligned(len: usize, align: usize) -> Option<Result<usize, Error>> {
    Some((|| {
        let padded = len
            .checked_add(align)
            .ok_or(Error::Overflow { addr: 0, len })?;
        let p = reserve(None, padded)?;
        let aligned = p.next_multiple_of(align);
        let (head, tail) = (aligned - p, padded - len - (aligned - p));
        for (at, n) in [(p, head), (aligned + len, tail)] {
            if n != 0 {
                // SAFETY:
                // - `at..at + n` lies in the mapping just made above, outside
                //   the part that is kept, and is used by no one.
                unsafe { mm::munmap(ptr(at), n) }.map_err(|e| os_err("munmap", e))?;
            }
        }
        Ok(aligned)
    })())
}

/// Replaces the range with a fresh anonymous mapping.
///
/// # Safety
/// See the module docs; the old contents are discarded.
unsafe fn remap(addr: usize, len: usize, prot: ProtFlags, flags: MapFlags) -> Result<(), Error> {
    // SAFETY:
    // - The caller guarantees the range is part of a reservation of ours that
    //   nobody else uses, so replacing it with `MAP_FIXED` clobbers nothing
    //   but our own pages.
    let p = unsafe { mm::mmap_anonymous(ptr(addr), len, prot, flags | MapFlags::FIXED) }
        .map_err(|e| os_err("mmap", e))?;
    debug_assert_eq!(p.expose_provenance(), addr);
    Ok(())
}

/// Reserved → Prepared: a read-write mapping with commit charge.
///
/// # Safety
/// See the module docs.
pub(super) unsafe fn map(addr: usize, len: usize) -> Result<(), Error> {
    // SAFETY:
    // - The caller promises (module docs) that the range lies inside one of
    //   our reservations and its pages are Reserved: the fixed remap
    //   replaces only our own PROT_NONE pages, which nothing references.
    unsafe {
        remap(
            addr,
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }
}

/// Prepared → Ready: nothing to do except on macOS, which wants to be told
/// for its accounting (errors are ignored there, as they change nothing).
///
/// # Safety
/// See the module docs.
pub(super) unsafe fn used(addr: usize, len: usize) -> Result<(), Error> {
    #[cfg(target_vendor = "apple")]
    {
        // SAFETY:
        // - The range is a mapped part of our reservation (caller's promise);
        //   `MADV_FREE_REUSE` keeps the contents.
        unsafe { libc::madvise(ptr(addr), len, libc::MADV_FREE_REUSE) };
    }
    let _ = (addr, len);
    Ok(())
}

/// Ready → Prepared.
///
/// # Safety
/// See the module docs; the contents are given up.
pub(super) unsafe fn unused(addr: usize, len: usize, mode: ReleaseMode) -> Result<(), Error> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        if mode == ReleaseMode::Free {
            // SAFETY:
            // - The range is a Ready part of our reservation whose contents
            //   the caller gives up.
            match unsafe { mm::madvise(ptr(addr), len, mm::Advice::LinuxFree) } {
                Ok(()) => return Ok(()),
                // Before Linux 4.5: fall back to dropping the pages.
                Err(Errno::INVAL) => {}
                Err(e) => return Err(os_err("madvise", e)),
            }
        }
        // SAFETY: as above.
        unsafe { mm::madvise(ptr(addr), len, mm::Advice::LinuxDontNeed) }
            .map_err(|e| os_err("madvise", e))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        #[cfg(target_vendor = "apple")]
        if mode == ReleaseMode::Free {
            // SAFETY:
            // - The range is a Ready part of our reservation whose contents
            //   the caller gives up.
            let r = unsafe { libc::madvise(ptr(addr), len, libc::MADV_FREE_REUSABLE) };
            if r == 0 {
                return Ok(());
            }
        }
        let _ = mode;
        // Elsewhere `MADV_DONTNEED` need not zero, so replace the pages.
        // SAFETY:
        // - The caller owns the range (module docs) and gives up its
        //   contents: replacing it with fresh zero pages at the same address
        //   invalidates only memory nobody may read any more.
        unsafe {
            remap(
                addr,
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
    }
}

/// Prepared or Ready → Reserved: `PROT_NONE` again, pages and charge dropped.
///
/// # Safety
/// See the module docs; the contents are given up.
pub(super) unsafe fn fault(addr: usize, len: usize) -> Result<(), Error> {
    // SAFETY:
    // - The caller owns the range (module docs) and gives up its contents:
    //   turning it back into PROT_NONE pages at the same address affects
    //   no memory anyone may still use.
    unsafe { remap(addr, len, ProtFlags::empty(), reserve_flags()) }
}

/// Any → None.
///
/// # Safety
/// See the module docs; the range must be a whole reservation.
pub(super) unsafe fn free(addr: usize, len: usize) -> Result<(), Error> {
    // SAFETY:
    // - The caller guarantees the range is a reservation of ours that nobody
    //   uses any more.
    unsafe { mm::munmap(ptr(addr), len) }.map_err(|e| os_err("munmap", e))
}

/// Huge-page advice; `EINVAL` (a kernel without THP or without
/// `MADV_COLLAPSE`, which arrived in Linux 6.1) is [`Error::Unsupported`].
///
/// # Safety
/// See the module docs.
pub(super) unsafe fn advise_huge(addr: usize, len: usize, advice: HugeAdvice) -> Result<(), Error> {
    #[cfg(target_os = "linux")]
    {
        let r = match advice {
            // SAFETY:
            // - The range is a mapped part of our reservation; the advice
            //   keeps the contents.
            HugeAdvice::Huge => unsafe { mm::madvise(ptr(addr), len, mm::Advice::LinuxHugepage) },
            // SAFETY: as above.
            HugeAdvice::NoHuge => unsafe {
                mm::madvise(ptr(addr), len, mm::Advice::LinuxNoHugepage)
            },
            HugeAdvice::Collapse => collapse(addr, len),
        };
        match r {
            Ok(()) => Ok(()),
            Err(Errno::INVAL) => Err(Error::Unsupported),
            Err(e) => Err(os_err("madvise", e)),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (addr, len, advice);
        Err(Error::Unsupported)
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu", feature = "std"))]
fn collapse(addr: usize, len: usize) -> Result<(), Errno> {
    // SAFETY:
    // - The range is a mapped part of our reservation (the caller of
    //   `advise_huge` promised it); collapsing keeps the contents.
    let r = unsafe { libc::madvise(ptr(addr), len, libc::MADV_COLLAPSE) };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::INVAL))
    }
}

/// libc exports `MADV_COLLAPSE` for glibc targets only, and the error code
/// is read through `std`.
#[cfg(all(target_os = "linux", not(all(target_env = "gnu", feature = "std"))))]
fn collapse(_addr: usize, _len: usize) -> Result<(), Errno> {
    Err(Errno::INVAL)
}

pub(super) fn zeroed_after_unused(mode: ReleaseMode) -> bool {
    mode == ReleaseMode::DontNeed
}
