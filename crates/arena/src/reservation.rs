//! [`Reservation`]: the safe handle over one reservation of address space.
//!
//! It keeps its own page states (in a side mapping, never in the global
//! heap, and only once a page changes state), so an illegal transition is a
//! typed error before the OS is asked, and so it can account exactly how many bytes each
//! call moved between states (Go's `sysUsed` needs the number of Prepared
//! bytes; here the states supply it).

use crate::os::{HugeAdvice, Os, ReleaseMode};
use crate::state::{check_range, rule, PageState, StateMap};
use crate::stats::{Delta, MemStats, MemStatsSnapshot};
use crate::{Error, Op};

/// One reservation of address space, freed when dropped.
///
/// Addresses passed to its methods are absolute and must lie inside
/// `base()..end()`, page-aligned, with a non-zero page-multiple length.
/// Transitions are checked against [`PageState`]s tracked per page; see the
/// crate docs for the table. Giving memory back ([`Reservation::release`],
/// [`Reservation::fault`]) is `unsafe`, as it is on [`Os`]:
///
/// ```compile_fail,E0133
/// use pageheap_arena::{ReleaseMode, Reservation, SystemOs};
///
/// let os = SystemOs::new();
/// let mut res = Reservation::new(&os, 1 << 20).unwrap();
/// let base = res.base();
/// res.commit(base, 4096).unwrap();
/// res.release(base, 4096, ReleaseMode::DontNeed).unwrap(); // needs `unsafe`
/// ```
pub struct Reservation<'a, O: Os> {
    os: &'a O,
    base: usize,
    len: usize,
    page: usize,
    states: StateMap,
    own: MemStatsSnapshot,
    shared: Option<&'a MemStats>,
}

impl<'a, O: Os> Reservation<'a, O> {
    /// Reserves `len` bytes anywhere.
    ///
    /// # Errors
    /// `len` is zero or not a multiple of the page size, or the OS refused.
    pub fn new(os: &'a O, len: usize) -> Result<Self, Error> {
        let base = os.reserve(None, len)?;
        Ok(Self::adopt(os, base, len))
    }

    /// Reserves `len` bytes at `hint` if the OS agrees, else anywhere.
    ///
    /// # Errors
    /// As [`Reservation::new`]; also a misaligned `hint`.
    pub fn with_hint(os: &'a O, hint: usize, len: usize) -> Result<Self, Error> {
        let base = os.reserve(Some(hint), len)?;
        Ok(Self::adopt(os, base, len))
    }

    /// Reserves `len` bytes exactly at `addr`, never disturbing what is
    /// already mapped there.
    ///
    /// # Errors
    /// [`Error::AddressTaken`] if any of the range is in use; bad arguments;
    /// the OS refused.
    pub fn at(os: &'a O, addr: usize, len: usize) -> Result<Self, Error> {
        let base = os.reserve_at(addr, len)?;
        Ok(Self::adopt(os, base, len))
    }

    /// Reserves `len` bytes anywhere at an `align`-aligned address.
    ///
    /// # Errors
    /// As [`Os::reserve_aligned`].
    pub fn aligned(os: &'a O, len: usize, align: usize) -> Result<Self, Error> {
        let base = os.reserve_aligned(len, align)?;
        Ok(Self::adopt(os, base, len))
    }

    /// Wraps a reservation `os` just made for us.
    pub(crate) fn adopt(os: &'a O, base: usize, len: usize) -> Self {
        let page = os.page_size();
        debug_assert!(base.is_multiple_of(page) && len.is_multiple_of(page) && len > 0);
        let mut own = MemStatsSnapshot::default();
        own.add(Delta {
            reserved: len as isize,
            ..Delta::default()
        });
        Self {
            os,
            base,
            len,
            page,
            states: StateMap::new(len / page),
            own,
            shared: None,
        }
    }

    /// Accounts this reservation, from now on, in `stats` as well (its
    /// current bytes are added at once and removed again on drop).
    #[must_use]
    pub fn tracked(mut self, stats: &'a MemStats) -> Self {
        if let Some(old) = self.shared.replace(stats) {
            old.add(self.own_delta(-1));
        }
        stats.add(self.own_delta(1));
        self
    }

    /// The first address.
    pub fn base(&self) -> usize {
        self.base
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a reservation is never empty. (For the
    /// `len_without_is_empty` convention.)
    pub fn is_empty(&self) -> bool {
        false
    }

    /// One past the last address.
    pub fn end(&self) -> usize {
        self.base + self.len
    }

    /// The page size all arguments are aligned to.
    pub fn page_size(&self) -> usize {
        self.page
    }

    /// The OS this reservation came from.
    pub fn os(&self) -> &'a O {
        self.os
    }

    /// The state of the page containing `addr`; [`PageState::None`] outside
    /// the reservation.
    pub fn state(&self, addr: usize) -> PageState {
        if addr < self.base || addr >= self.end() {
            return PageState::None;
        }
        self.states.get((addr - self.base) / self.page)
    }

    /// The byte counts of this reservation alone.
    pub fn stats(&self) -> MemStatsSnapshot {
        self.own
    }

    /// Reserved → Prepared (Go's `sysMap`).
    ///
    /// # Errors
    /// Bad arguments, a page that is not Reserved, or the OS refused (out of
    /// memory or commit charge).
    pub fn map(&mut self, addr: usize, len: usize) -> Result<(), Error> {
        self.transition(Op::Map, addr, len, |os| os.map(addr, len))
    }

    /// Prepared → Ready (Go's `sysUsed`); Ready pages stay Ready.
    ///
    /// # Errors
    /// Bad arguments, a page that is Reserved, or the OS refused.
    pub fn used(&mut self, addr: usize, len: usize) -> Result<(), Error> {
        self.transition(Op::Used, addr, len, |os| os.used(addr, len))
    }

    /// Reserved → Ready in one step: [`map`](Self::map) then
    /// [`used`](Self::used). The memory reads as zeros.
    ///
    /// # Errors
    /// As [`map`](Self::map) and [`used`](Self::used); if `used` fails the
    /// range stays Prepared.
    pub fn commit(&mut self, addr: usize, len: usize) -> Result<(), Error> {
        self.map(addr, len)?;
        self.used(addr, len)
    }

    /// Ready → Prepared (Go's `sysUnused`): gives the physical memory back
    /// to the OS; the contents are lost.
    ///
    /// # Errors
    /// Bad arguments, a page that is not Ready, or the OS refused.
    ///
    /// # Safety
    /// Nothing live relies on the contents of the range: no reference into
    /// it exists and no code will read it expecting what was written before.
    pub unsafe fn release(
        &mut self,
        addr: usize,
        len: usize,
        mode: ReleaseMode,
    ) -> Result<(), Error> {
        self.transition(Op::Unused, addr, len, |os| {
            // SAFETY:
            // - `transition` calls this only for a range inside this
            //   reservation, which the handle owns.
            // - The caller promised that nothing relies on its contents.
            unsafe { os.unused(addr, len, mode) }
        })
    }

    /// Prepared or Ready → Reserved (Go's `sysFault`): any access faults from
    /// now on.
    ///
    /// # Errors
    /// Bad arguments, a page that is Reserved, or the OS refused.
    ///
    /// # Safety
    /// Nothing live relies on the range: no reference or pointer into it
    /// will be used until it is committed again.
    pub unsafe fn fault(&mut self, addr: usize, len: usize) -> Result<(), Error> {
        self.transition(Op::Fault, addr, len, |os| {
            // SAFETY:
            // - `transition` calls this only for a range inside this
            //   reservation, which the handle owns.
            // - The caller promised that nothing relies on the range.
            unsafe { os.fault(addr, len) }
        })
    }

    /// Transparent-huge-page advice for a mapped range; states do not change.
    ///
    /// # Errors
    /// [`Error::Unsupported`] where the system lacks the advice; bad
    /// arguments; a page that is Reserved; the OS refused.
    pub fn advise_huge(
        &mut self,
        addr: usize,
        len: usize,
        advice: HugeAdvice,
    ) -> Result<(), Error> {
        self.transition(Op::AdviseHuge, addr, len, |os| {
            os.advise_huge(addr, len, advice)
        })
    }

    /// Gives up ownership without freeing: returns `(base, len)`, which the
    /// caller must eventually pass to [`Os::free`] (an `unsafe` call) or keep
    /// for the life of the process. The shared counters keep this reservation's bytes.
    pub fn into_raw_parts(self) -> (usize, usize) {
        let mut this = core::mem::ManuallyDrop::new(self);
        let parts = (this.base, this.len);
        // Skip `Drop` (which would free the range) but still release the
        // page-state map, which owns a side mapping.
        // SAFETY:
        // - `this` is never dropped (it is `ManuallyDrop`) and `states` is not
        //   used again, so the map is dropped exactly once.
        unsafe { core::ptr::drop_in_place(&mut this.states) };
        parts
    }

    /// This reservation's counters times `sign`, as a delta.
    fn own_delta(&self, sign: isize) -> Delta {
        Delta {
            reserved: sign * self.own.reserved as isize,
            mapped: sign * self.own.mapped as isize,
            ready: sign * self.own.ready as isize,
        }
    }

    /// Checks arguments and page states, calls the OS, then records the new
    /// states and accounts the bytes that changed state.
    fn transition(
        &mut self,
        op: Op,
        addr: usize,
        len: usize,
        call: impl FnOnce(&O) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let end = check_range(addr, len, self.page)?;
        if addr < self.base || end > self.end() {
            return Err(Error::NotReserved { addr, len });
        }
        let pages = (addr - self.base) / self.page..(end - self.base) / self.page;
        let (accepts, to) = rule(op);
        if let Some((p, state)) = self.states.first_rejected(pages.clone(), accepts) {
            return Err(Error::InvalidTransition {
                op,
                addr: self.base + p * self.page,
                state,
            });
        }
        if to.is_some() {
            // Map the state array first, so a refusal changes nothing.
            self.states.make_writable()?;
        }
        call(self.os)?;
        let Some(to) = to else { return Ok(()) };
        let page = self.page as isize;
        let mapped = self.states.count(pages.clone(), PageState::is_mapped) as isize;
        let ready = self.states.count(pages.clone(), |s| s == PageState::Ready) as isize;
        let n = pages.len() as isize;
        let d = Delta {
            reserved: 0,
            mapped: page * (if to.is_mapped() { n } else { 0 } - mapped),
            ready: page * (if to == PageState::Ready { n } else { 0 } - ready),
        };
        self.states.set(pages, to);
        self.own.add(d);
        if let Some(s) = self.shared {
            s.add(d);
        }
        Ok(())
    }
}

impl<O: Os> Drop for Reservation<'_, O> {
    fn drop(&mut self) {
        // SAFETY:
        // - The handle owns exactly this reservation (made by `new`/`at`/..,
        //   never given away: `into_raw_parts` skips this drop).
        // - Going out of scope is the owner's statement that nothing uses
        //   the range any more; memory in it is reached only through raw
        //   pointers whose users must not outlive the handle.
        let r = unsafe { self.os.free(self.base, self.len) };
        debug_assert!(r.is_ok(), "freeing a reservation failed: {r:?}");
        if let Some(s) = self.shared {
            s.add(self.own_delta(-1));
        }
    }
}

impl<O: Os> core::fmt::Debug for Reservation<'_, O> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reservation")
            .field("base", &format_args!("{:#x}", self.base))
            .field("len", &format_args!("{:#x}", self.len))
            .field("stats", &self.own)
            .finish()
    }
}
