//! [`BufferOs`]: an [`Os`] over memory the caller supplies, for kernels,
//! hypervisors and firmware that run the allocator with no operating system
//! underneath.
//!
//! The buffer is carved into reservations first fit; "mapping" and
//! "releasing" are page-state changes that the buffer checks exactly as
//! [`SystemOs`](crate::SystemOs) does, plus the zeroing the [`Os`] contract
//! promises (memory reads as zero the first time it is Ready, and after a
//! [`ReleaseMode::DontNeed`] release). Nothing is ever unmapped: a Reserved
//! page of a buffer stays readable to the hardware, it is only not handed
//! out. The page states (one byte a page) live at the start of the buffer
//! itself, so the type needs neither `std` nor `alloc`.

use core::ptr::NonNull;

use crate::lock::Lock;
use crate::os::{HugeAdvice, Os, ReleaseMode};
use crate::state::{check_range, rule, PageState};
use crate::{Error, Op};

/// Most reservations a [`BufferOs`] holds at once. A page allocator makes
/// about ten for its metadata (summary levels, chunk map, in-use set), plus
/// whatever heap ranges its caller reserves.
pub const MAX_BUFFER_RESERVATIONS: usize = 64;

/// The buffer has no room (or no table slot) for another reservation.
fn out_of_memory() -> Error {
    Error::Os {
        op: "reserve",
        source: crate::OsError::OUT_OF_MEMORY,
    }
}

/// An [`Os`] over one caller-supplied, page-aligned range of memory.
///
/// ```
/// use pageheap_arena::{BufferOs, Os};
///
/// # fn main() -> Result<(), pageheap_arena::Error> {
/// #[repr(align(4096))]
/// struct Memory([u8; 64 * 4096]);
/// static mut MEMORY: Memory = Memory([0; 64 * 4096]);
/// // SAFETY: the buffer is used by nothing else for the rest of the program.
/// let addr = (&raw mut MEMORY).cast::<u8>().expose_provenance();
/// let os = unsafe { BufferOs::from_raw_parts(addr, 64 * 4096, 4096)? };
/// let a = os.reserve(None, 8 * 4096)?;
/// os.map(a, 8 * 4096)?;
/// os.used(a, 8 * 4096)?;
/// // `a..a + 8 pages` is now readable and writable, and reads as zeros.
/// # Ok(())
/// # }
/// ```
pub struct BufferOs {
    /// The first byte of the buffer; the page-state bytes start here.
    base: NonNull<u8>,
    /// Buffer length in bytes, a multiple of `page`.
    len: usize,
    page: usize,
    /// Bytes at the start of the buffer that hold the page states (whole
    /// pages); reservations are carved from the rest.
    meta: usize,
    table: Lock<Table>,
}

/// The live reservations, sorted by base.
struct Table {
    regions: [(usize, usize); MAX_BUFFER_RESERVATIONS],
    n: usize,
}

// SAFETY:
// - `BufferOs` owns its buffer exclusively (the constructor's contract) and
//   reaches it only through `base`: the page-state bytes under the `table`
//   lock, and reservations' memory only to zero pages that the lock shows
//   are no one's (Reserved or just released). Moving it to another thread
//   moves that ownership with it.
unsafe impl Send for BufferOs {}

// SAFETY:
// - Every `&self` method takes the `table` lock before it reads or writes
//   a page-state byte or zeroes memory, so shared use from several threads
//   is serialised exactly like `SystemOs`'s.
unsafe impl Sync for BufferOs {}

impl BufferOs {
    /// An OS over `buf`, in pages of `page` bytes. Only the whole pages
    /// inside the buffer are used: its start is rounded up to a page
    /// boundary and its end down.
    ///
    /// # Errors
    /// [`Error::Misaligned`] if `page` is not a power of two;
    /// [`Error::ZeroLength`] if the buffer cannot hold its page states and
    /// one page.
    ///
    /// Reservations fail with [`Error::Os`] (out of memory) when the buffer
    /// has no gap large enough or [`MAX_BUFFER_RESERVATIONS`] are live.
    pub fn new(buf: &'static mut [u8], page: usize) -> Result<Self, Error> {
        let (addr, len) = (buf.as_mut_ptr().expose_provenance(), buf.len());
        // SAFETY:
        // - The `'static` exclusive borrow is given up here for good: no
        //   other code can reach the buffer again.
        unsafe { Self::from_raw_parts(addr, len, page) }
    }

    /// An OS over `len` bytes at `addr`, such as a range of physical frames
    /// that a kernel owns.
    ///
    /// # Errors
    /// As [`BufferOs::new`].
    ///
    /// # Safety
    /// `addr..addr + len` is memory valid for reads and writes (with
    /// exposed provenance), owned by the returned object from now on: no
    /// other code reads or writes it while the object or anything using its
    /// memory lives.
    pub unsafe fn from_raw_parts(addr: usize, len: usize, page: usize) -> Result<Self, Error> {
        if !page.is_power_of_two() {
            return Err(Error::Misaligned {
                addr,
                len,
                align: page,
            });
        }
        let Some(start) = addr.checked_next_multiple_of(page) else {
            return Err(Error::ZeroLength);
        };
        let len = len.saturating_sub(start - addr) / page * page;
        let addr = start;
        let pages = len / page;
        let meta = pages.div_ceil(page) * page;
        if pages == 0 || meta >= len {
            return Err(Error::ZeroLength);
        }
        let base = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(addr))
            .ok_or(Error::ZeroLength)?;
        // SAFETY:
        // - The caller gave us `addr..addr + len` to own; the first `meta`
        //   bytes become the page states, all `None` (0) to start with.
        unsafe { base.as_ptr().write_bytes(0, meta) };
        Ok(BufferOs {
            base,
            len,
            page,
            meta,
            table: Lock::new(Table {
                regions: [(0, 0); MAX_BUFFER_RESERVATIONS],
                n: 0,
            }),
        })
    }

    /// The buffer's first address.
    fn addr(&self) -> usize {
        self.base.as_ptr().addr()
    }

    /// The part of the buffer that reservations come from.
    pub fn usable(&self) -> (usize, usize) {
        (self.addr() + self.meta, self.len - self.meta)
    }

    /// The state of the page at `addr`; [`PageState::None`] outside the
    /// buffer's usable part.
    pub fn page_state(&self, addr: usize) -> PageState {
        let (lo, n) = self.usable();
        if addr < lo || addr - lo >= n {
            return PageState::None;
        }
        let _t = self.table.lock();
        self.state((addr - self.addr()) / self.page)
    }

    /// Bytes of the usable part not in any reservation.
    pub fn free_bytes(&self) -> usize {
        let t = self.table.lock();
        let used: usize = t.regions[..t.n].iter().map(|r| r.1).sum();
        self.usable().1 - used
    }

    fn state(&self, page_idx: usize) -> PageState {
        // SAFETY:
        // - `page_idx` is a page of the buffer (callers check), so the byte
        //   lies in the state area, which only this object touches, under
        //   the lock the caller holds.
        match unsafe { self.base.as_ptr().add(page_idx).read() } {
            0 => PageState::None,
            1 => PageState::Reserved,
            2 => PageState::Prepared,
            _ => PageState::Ready,
        }
    }

    fn set_states(&self, addr: usize, len: usize, s: PageState) {
        let first = (addr - self.addr()) / self.page;
        let v = match s {
            PageState::None => 0,
            PageState::Reserved => 1,
            PageState::Prepared => 2,
            PageState::Ready => 3,
        };
        // SAFETY:
        // - `addr..addr + len` lies in the buffer (callers check), so its
        //   page indices address bytes of the state area; the caller holds
        //   the lock.
        unsafe {
            self.base
                .as_ptr()
                .add(first)
                .write_bytes(v, len / self.page)
        };
    }

    /// Zeroes `addr..addr + len`.
    ///
    /// # Safety
    /// The range lies in the buffer's usable part and nothing relies on its
    /// contents; the caller holds the lock.
    unsafe fn zero(&self, addr: usize, len: usize) {
        // SAFETY:
        // - In bounds of the buffer we own (caller's obligation), so the
        //   pointer derived from `base` is valid for `len` bytes of writes.
        unsafe {
            self.base
                .as_ptr()
                .add(addr - self.addr())
                .write_bytes(0, len)
        };
    }

    /// The index of the reservation holding all of `addr..end`.
    fn find(t: &Table, addr: usize, end: usize) -> Option<usize> {
        let i = t.regions[..t.n]
            .partition_point(|r| r.0 <= addr)
            .checked_sub(1)?;
        let (b, l) = t.regions[i];
        (end <= b + l).then_some(i)
    }

    fn insert(&self, t: &mut Table, addr: usize, len: usize) -> Result<usize, Error> {
        if t.n == MAX_BUFFER_RESERVATIONS {
            return Err(out_of_memory());
        }
        let n = t.n;
        let i = t.regions[..n].partition_point(|r| r.0 < addr);
        t.regions.copy_within(i..n, i + 1);
        t.regions[i] = (addr, len);
        t.n += 1;
        self.set_states(addr, len, PageState::Reserved);
        Ok(addr)
    }

    /// Whether `addr..end` lies in the usable part and meets no reservation.
    fn is_free(&self, t: &Table, addr: usize, end: usize) -> bool {
        let (lo, n) = self.usable();
        addr >= lo
            && end <= lo + n
            && t.regions[..t.n]
                .iter()
                .all(|&(b, l)| end <= b || b + l <= addr)
    }

    /// A page transition over `addr..addr + len` inside one reservation,
    /// with `effect` run (under the lock) before the new states are written.
    fn transition(
        &self,
        op: Op,
        addr: usize,
        len: usize,
        effect: impl FnOnce(),
    ) -> Result<(), Error> {
        let end = check_range(addr, len, self.page)?;
        let t = self.table.lock();
        if Self::find(&t, addr, end).is_none() {
            return Err(Error::NotReserved { addr, len });
        }
        let (accepts, to) = rule(op);
        let first = (addr - self.addr()) / self.page;
        for p in first..first + len / self.page {
            let state = self.state(p);
            if !accepts(state) {
                return Err(Error::InvalidTransition {
                    op,
                    addr: self.addr() + p * self.page,
                    state,
                });
            }
        }
        effect();
        if let Some(to) = to {
            self.set_states(addr, len, to);
        }
        drop(t);
        Ok(())
    }
}

// SAFETY:
// - Memory of a reservation is Ready only after `map` (which zeroes it, as
//   every page reaches Prepared from Reserved) and `used`; it stays valid and
//   keeps its contents until `unused`, `fault` or `free`, because the buffer
//   is owned by this object and nothing else writes it: the safe methods only
//   change page states and zero pages that were Reserved.
unsafe impl Os for BufferOs {
    fn page_size(&self) -> usize {
        self.page
    }

    fn huge_page_size(&self) -> Option<usize> {
        None
    }

    fn reserve(&self, hint: Option<usize>, len: usize) -> Result<usize, Error> {
        check_range(hint.unwrap_or(0), len, self.page)?;
        let mut t = self.table.lock();
        if let Some(h) = hint {
            if h.checked_add(len).is_some_and(|e| self.is_free(&t, h, e)) {
                return self.insert(&mut t, h, len);
            }
        }
        // First fit over the gaps between reservations.
        let (lo, n) = self.usable();
        let mut at = lo;
        for i in 0..=t.n {
            let next = if i < t.n { t.regions[i].0 } else { lo + n };
            if next - at >= len {
                return self.insert(&mut t, at, len);
            }
            if i < t.n {
                at = t.regions[i].0 + t.regions[i].1;
            }
        }
        Err(out_of_memory())
    }

    fn reserve_at(&self, addr: usize, len: usize) -> Result<usize, Error> {
        let end = check_range(addr, len, self.page)?;
        let mut t = self.table.lock();
        if !self.is_free(&t, addr, end) {
            return Err(Error::AddressTaken { addr, len });
        }
        self.insert(&mut t, addr, len)
    }

    fn map(&self, addr: usize, len: usize) -> Result<(), Error> {
        self.transition(Op::Map, addr, len, || {
            // SAFETY:
            // - Every page was Reserved (checked): no one's memory, so
            //   zeroing it makes the first read of Ready memory zero.
            unsafe { self.zero(addr, len) }
        })
    }

    fn used(&self, addr: usize, len: usize) -> Result<(), Error> {
        self.transition(Op::Used, addr, len, || {})
    }

    unsafe fn unused(&self, addr: usize, len: usize, mode: ReleaseMode) -> Result<(), Error> {
        self.transition(Op::Unused, addr, len, || {
            if mode == ReleaseMode::DontNeed {
                // SAFETY:
                // - The caller promised that nothing relies on the contents;
                //   the range is in a reservation (checked).
                unsafe { self.zero(addr, len) }
            }
        })
    }

    unsafe fn fault(&self, addr: usize, len: usize) -> Result<(), Error> {
        // The next `map` zeroes the pages.
        self.transition(Op::Fault, addr, len, || {})
    }

    unsafe fn free(&self, addr: usize, len: usize) -> Result<(), Error> {
        let end = check_range(addr, len, self.page)?;
        let mut t = self.table.lock();
        match Self::find(&t, addr, end) {
            Some(i) if t.regions[i] == (addr, len) => {
                let n = t.n;
                t.regions.copy_within(i + 1..n, i);
                t.n -= 1;
                self.set_states(addr, len, PageState::None);
                Ok(())
            }
            Some(_) => Err(Error::NotWholeReservation { addr, len }),
            None if t.regions[..t.n]
                .iter()
                .any(|&(b, l)| addr < b + l && b < end) =>
            {
                Err(Error::NotWholeReservation { addr, len })
            }
            None => Err(Error::NotReserved { addr, len }),
        }
    }

    fn advise_huge(&self, addr: usize, len: usize, advice: HugeAdvice) -> Result<(), Error> {
        let _ = advice;
        self.transition(Op::AdviseHuge, addr, len, || {})?;
        Err(Error::Unsupported)
    }

    fn zeroed_after_unused(&self, mode: ReleaseMode) -> bool {
        mode == ReleaseMode::DontNeed
    }
}

impl core::fmt::Debug for BufferOs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BufferOs")
            .field("addr", &format_args!("{:#x}", self.addr()))
            .field("len", &format_args!("{:#x}", self.len))
            .field("page", &self.page)
            .finish_non_exhaustive()
    }
}
