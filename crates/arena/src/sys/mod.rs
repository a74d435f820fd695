//! The real operating system: [`SystemOs`] and the one door to the OS
//! memory calls.
//!
//! Each platform module (`unix`, `windows`, `wasm`, `fallback`) offers the
//! same set of functions over raw addresses; this module checks arguments
//! and page states before calling them, so that the platform code only ever
//! sees ranges inside reservations it made itself. A port touches one file.
//!
//! [`SystemOs`] keeps its books without the global heap, since it runs
//! inside a global allocator: the reservation table is a [`SideVec`] sorted
//! by base address, and each reservation's page states a [`PackedStates`]
//! array, both in side mappings (see `crate::side`).

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::lock::Lock;
use crate::os::{HugeAdvice, Os, ReleaseMode};
use crate::side::SideVec;
use crate::state::{check_range, rule, PackedStates, PageState};
use crate::{Error, Op};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as imp;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as imp;

#[cfg(all(target_arch = "wasm32", not(unix)))]
mod wasm;
#[cfg(all(target_arch = "wasm32", not(unix)))]
use wasm as imp;

#[cfg(not(any(unix, windows, target_arch = "wasm32")))]
mod fallback;
#[cfg(not(any(unix, windows, target_arch = "wasm32")))]
use fallback as imp;

/// The OS page size, read from the system once and cached.
///
/// 4096 on most systems, 16 KiB on Apple silicon, 64 KiB on Wasm.
pub fn os_page_size() -> usize {
    static CACHE: AtomicUsize = AtomicUsize::new(0);
    match CACHE.load(Ordering::Relaxed) {
        0 => {
            let n = imp::page_size();
            debug_assert!(n.is_power_of_two());
            CACHE.store(n, Ordering::Relaxed);
            n
        }
        n => n,
    }
}

/// The transparent huge page size, if the system has one; read once and
/// cached.
///
/// On Linux it is read from
/// `/sys/kernel/mm/transparent_hugepage/hpage_pmd_size` (with the `std`
/// feature, into a stack buffer) and must be a power of two; elsewhere it is
/// `None`.
pub fn os_huge_page_size() -> Option<usize> {
    /// `usize::MAX`: not read yet; 0: none.
    static CACHE: AtomicUsize = AtomicUsize::new(usize::MAX);
    match CACHE.load(Ordering::Relaxed) {
        usize::MAX => {
            let n = imp::huge_page_size().filter(|n| n.is_power_of_two());
            CACHE.store(n.unwrap_or(0), Ordering::Relaxed);
            n
        }
        0 => None,
        n => Some(n),
    }
}

/// The CPU time the calling thread has used, read from the thread's CPU
/// clock; `None` where this crate cannot read it (it can on Linux and
/// Android). For measuring what a background thread, such as a heap's
/// scavenger, costs.
pub fn thread_cpu_time() -> Option<core::time::Duration> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        let secs = u64::try_from(t.tv_sec).ok()?;
        let nanos = u32::try_from(t.tv_nsec).ok()?;
        Some(core::time::Duration::new(secs, nanos))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        None
    }
}

/// A side mapping for bookkeeping; see `crate::side`.
pub(crate) fn side_map(len: usize) -> Result<usize, Error> {
    imp::side_map(len)
}

/// Unmaps a side mapping.
///
/// # Safety
/// The range must be one whole mapping made by [`side_map`] that nothing
/// uses any more.
pub(crate) unsafe fn side_unmap(addr: usize, len: usize) -> Result<(), Error> {
    // SAFETY:
    // - `imp::side_unmap` asks exactly what this function's caller promised:
    //   one whole side mapping from `side_map`, no longer used.
    unsafe { imp::side_unmap(addr, len) }
}

/// Drops the pages of `addr..addr + len` (whole OS pages inside one side
/// mapping) back to the OS so that they read as zeros, where the OS can do
/// that in place (Linux and Android: `MADV_DONTNEED` on a private anonymous
/// mapping). Returns whether it did; if not, nothing changed.
///
/// # Safety
/// The range lies in a side mapping from [`side_map`] whose contents the
/// caller gives up, and no reference into the range is alive.
#[cfg(all(feature = "sim", not(miri)))]
pub(crate) unsafe fn side_zero(addr: usize, len: usize) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY:
        // - The caller gives up the contents of this part of its own private
        //   anonymous mapping, which then reads back as zeros; the mapping
        //   itself stays valid.
        unsafe {
            rustix::mm::madvise(
                core::ptr::with_exposed_provenance_mut(addr),
                len,
                rustix::mm::Advice::LinuxDontNeed,
            )
        }
        .is_ok()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (addr, len);
        false
    }
}

/// Which OS pages of `addr..addr + len` (whole pages inside one side
/// mapping) are resident: `out[i] & 1` for page `i`. Returns whether the OS
/// could tell (Linux: `mincore`); `out` has one byte per page.
#[cfg(all(feature = "sim", not(miri)))]
pub(crate) fn side_resident(addr: usize, len: usize, out: &mut [u8]) -> bool {
    #[cfg(target_os = "linux")]
    {
        if out.len() < len.div_ceil(os_page_size()) {
            return false;
        }
        // SAFETY:
        // - `mincore` only reads the page tables of the range, which the
        //   caller's side mapping covers, and writes one byte per page into
        //   `out`, which has room for them (checked above).
        let r = unsafe {
            libc::mincore(
                core::ptr::with_exposed_provenance_mut(addr),
                len,
                out.as_mut_ptr().cast(),
            )
        };
        r == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (addr, len, out);
        false
    }
}

/// The real operating system's memory calls, behind the [`Os`] trait.
///
/// A `SystemOs` remembers the reservations it made and the state of each of
/// their pages, and refuses (with an [`Error`]) any call on memory it does not
/// own or in the wrong state, exactly like the simulated OS in `testkit`; the
/// platform calls therefore never touch memory owned by anyone else.
/// Reservations still alive when it is dropped stay mapped.
///
/// It never allocates from the global heap (it may run inside one): its
/// table of reservations and their page states live in memory it maps from
/// the OS itself, two bits a page touched lazily, so a 64 GiB reservation
/// costs 4 MiB of address space and, until its pages change state, no
/// memory. Lookups are a binary search over the reservations.
///
/// Per platform: Linux and other Unix systems use `mmap`/`madvise` (through
/// rustix; through libc for `MADV_COLLAPSE` and macOS's `MADV_FREE_REUSABLE`
/// and `MADV_FREE_REUSE`), Windows uses `VirtualAlloc`/`VirtualFree`, and Wasm
/// grows linear memory, which can never be given back (see
/// [`SystemOs::free`](Os::free)).
pub struct SystemOs {
    regions: Lock<SideVec<Region>>,
}

/// One reservation: its extent and page states. The table frees the
/// states' side mapping when it removes the entry or is dropped.
#[derive(Clone, Copy)]
struct Region {
    base: usize,
    len: usize,
    states: PackedStates,
}

impl core::fmt::Debug for SystemOs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let regions = self.regions.lock();
        f.debug_map()
            .entries(regions.as_slice().iter().map(|r| (r.base, r.len)))
            .finish()
    }
}

impl Default for SystemOs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for SystemOs {
    fn drop(&mut self) {
        let mut regions = self.regions.lock();
        for r in regions.as_mut_slice() {
            // SAFETY:
            // - Each entry is the only copy of its states (entries are
            //   copied out of the table only for reading under the lock),
            //   and the table goes away with this object.
            unsafe { r.states.free() };
        }
    }
}

/// The index of the last region starting at or below `addr`, if any.
fn last_at_or_below(regions: &[Region], addr: usize) -> Option<usize> {
    regions.partition_point(|r| r.base <= addr).checked_sub(1)
}

impl SystemOs {
    /// A new object owning no reservations.
    pub const fn new() -> Self {
        Self {
            regions: Lock::new(SideVec::new()),
        }
    }

    /// The state of the page containing `addr`; [`PageState::None`] outside
    /// this object's reservations.
    pub fn page_state(&self, addr: usize) -> PageState {
        let page = self.page_size();
        let regions = self.regions.lock();
        let regions = regions.as_slice();
        match last_at_or_below(regions, addr).map(|i| &regions[i]) {
            Some(r) if addr - r.base < r.len => r.states.get((addr - r.base) / page),
            _ => PageState::None,
        }
    }

    /// Checks a page transition and runs `call` on the range if it is legal,
    /// then records the new state.
    fn transition(
        &self,
        op: Op,
        addr: usize,
        len: usize,
        call: impl FnOnce() -> Result<(), Error>,
    ) -> Result<(), Error> {
        let page = self.page_size();
        let end = check_range(addr, len, page)?;
        let mut regions = self.regions.lock();
        let region = match last_at_or_below(regions.as_slice(), addr) {
            Some(i) if end - regions.as_slice()[i].base <= regions.as_slice()[i].len => {
                &mut regions.as_mut_slice()[i]
            }
            _ => return Err(Error::NotReserved { addr, len }),
        };
        let base = region.base;
        let pages = (addr - base) / page..(end - base) / page;
        let (accepts, to) = rule(op);
        if let Some((p, state)) = region.states.first_rejected(pages.clone(), accepts) {
            return Err(Error::InvalidTransition {
                op,
                addr: base + p * page,
                state,
            });
        }
        if to.is_some() {
            // Map the state array before the call, so a refusal changes
            // nothing.
            region.states.make_writable()?;
        }
        call()?;
        if let Some(to) = to {
            region.states.set(pages, to);
        }
        Ok(())
    }

    /// Records a new reservation made by the platform code. If the table
    /// cannot grow, the reservation is given back and the error returned.
    fn register(&self, base: usize, len: usize) -> Result<usize, Error> {
        let n_pages = len / self.page_size();
        let mut regions = self.regions.lock();
        let at = regions.as_slice().partition_point(|r| r.base < base);
        let region = Region {
            base,
            len,
            states: PackedStates::new(n_pages),
        };
        if let Err(e) = regions.insert(at, region) {
            // SAFETY:
            // - The platform code just reserved exactly this range for us and
            //   nothing has seen its address yet.
            let _ = unsafe { imp::free(base, len) };
            return Err(e);
        }
        Ok(base)
    }
}

// SAFETY:
// - Ready memory is valid: `used` succeeds only on pages that `transition`
//   found Prepared or Ready inside a reservation this object made, after the
//   platform call made them readable and writable (`map` maps them read-write
//   on Unix; `used` commits them on Windows; Wasm memory is always
//   accessible). Nothing changes them again except `unused`, `fault` and
//   `free`, the calls the contract names, because every call is checked
//   against this object's page states under its lock and `map` refuses pages
//   that are not Reserved.
// - Ready memory reads as zero first: pages reach Ready from Reserved only
//   through `map`, which installs fresh anonymous zero pages (Unix) or
//   leaves them uncommitted until `used` commits zero pages (Windows); on
//   Wasm, linear memory starts zeroed, `fault` zeroes what it returns to
//   Reserved, and freed memory is never reused.
unsafe impl Os for SystemOs {
    fn page_size(&self) -> usize {
        os_page_size()
    }

    fn huge_page_size(&self) -> Option<usize> {
        os_huge_page_size()
    }

    fn reserve(&self, hint: Option<usize>, len: usize) -> Result<usize, Error> {
        check_range(hint.unwrap_or(0), len, self.page_size())?;
        let base = imp::reserve(hint, len)?;
        self.register(base, len)
    }

    fn reserve_at(&self, addr: usize, len: usize) -> Result<usize, Error> {
        let end = check_range(addr, len, self.page_size())?;
        {
            let regions = self.regions.lock();
            let regions = regions.as_slice();
            if let Some(i) = regions.partition_point(|r| r.base < end).checked_sub(1) {
                if regions[i].base + regions[i].len > addr {
                    return Err(Error::AddressTaken { addr, len });
                }
            }
        }
        let base = imp::reserve_at(addr, len)?;
        debug_assert_eq!(base, addr);
        self.register(base, len)
    }

    fn reserve_aligned(&self, len: usize, align: usize) -> Result<usize, Error> {
        let page = self.page_size();
        check_range(0, len, page)?;
        if !align.is_power_of_two() || !align.is_multiple_of(page) {
            return Err(Error::Misaligned {
                addr: 0,
                len: align,
                align: page,
            });
        }
        match imp::reserve_aligned(len, align) {
            Some(r) => self.register(r?, len),
            None => crate::os::reserve_aligned_by_retry(self, len, align),
        }
    }

    fn map(&self, addr: usize, len: usize) -> Result<(), Error> {
        self.transition(Op::Map, addr, len, || {
            // SAFETY:
            // - `transition` checked that the range lies inside a
            //   reservation of this object and that every page is Reserved,
            //   so nobody holds data there, and its lock is held.
            unsafe { imp::map(addr, len) }
        })
    }

    fn used(&self, addr: usize, len: usize) -> Result<(), Error> {
        self.transition(Op::Used, addr, len, || {
            // SAFETY:
            // - `transition` checked that the range lies inside a mapped part
            //   of a reservation of this object, and its lock is held.
            unsafe { imp::used(addr, len) }
        })
    }

    unsafe fn unused(&self, addr: usize, len: usize, mode: ReleaseMode) -> Result<(), Error> {
        self.transition(Op::Unused, addr, len, || {
            // SAFETY:
            // - `transition` checked that the range lies inside a Ready part
            //   of a reservation of this object, and the lock is held.
            // - The caller promised that nothing relies on its contents.
            unsafe { imp::unused(addr, len, mode) }
        })
    }

    unsafe fn fault(&self, addr: usize, len: usize) -> Result<(), Error> {
        self.transition(Op::Fault, addr, len, || {
            // SAFETY:
            // - `transition` checked that the range lies inside a mapped part
            //   of a reservation of this object, and the lock is held.
            // - The caller promised that nothing relies on the range.
            unsafe { imp::fault(addr, len) }
        })
    }

    unsafe fn free(&self, addr: usize, len: usize) -> Result<(), Error> {
        let end = check_range(addr, len, self.page_size())?;
        let mut regions = self.regions.lock();
        let found = last_at_or_below(regions.as_slice(), addr);
        let i = match found.map(|i| (i, regions.as_slice()[i])) {
            Some((i, r)) if r.base == addr && r.len == len => i,
            _ => {
                let regions = regions.as_slice();
                let overlaps = regions
                    .partition_point(|r| r.base < end)
                    .checked_sub(1)
                    .is_some_and(|i| regions[i].base + regions[i].len > addr);
                return Err(if overlaps {
                    Error::NotWholeReservation { addr, len }
                } else {
                    Error::NotReserved { addr, len }
                });
            }
        };
        // SAFETY:
        // - `addr..addr + len` is exactly one reservation this object made
        //   (checked above under the lock).
        // - The caller promised that nothing relies on it any more.
        unsafe { imp::free(addr, len) }?;
        let mut r = regions.remove(i);
        // SAFETY:
        // - The entry just left the table, so `r` is the only copy of its
        //   states and is not used after this.
        unsafe { r.states.free() };
        Ok(())
    }

    fn advise_huge(&self, addr: usize, len: usize, advice: HugeAdvice) -> Result<(), Error> {
        self.transition(Op::AdviseHuge, addr, len, || {
            // SAFETY:
            // - `transition` checked that the range lies inside a mapped part
            //   of a reservation of this object; advice keeps contents.
            unsafe { imp::advise_huge(addr, len, advice) }
        })
    }

    fn zeroed_after_unused(&self, mode: ReleaseMode) -> bool {
        imp::zeroed_after_unused(mode)
    }
}
