//! Page states and the checked transition rules shared by every [`Os`]
//! implementation of this crate.
//!
//! A reservation's pages are kept as a packed array of two bits a page in a
//! side mapping (see `crate::side`), never in the global heap. The array is
//! mapped on the first change of state and touched lazily, so a 64 GiB
//! reservation of 4 KiB pages costs 4 MiB of address space for its states
//! and only the touched pages of it in memory; a check or update costs
//! O(pages / 32) word operations.
//!
//! [`Os`]: crate::Os

use core::fmt;
use core::ops::Range;

use crate::side;
use crate::{Error, Op};

/// The state of one page of address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageState {
    /// Not owned: no reservation covers the page.
    None,
    /// Owned address space; any access faults and it costs no memory.
    Reserved,
    /// Mapped but unbacked; it must not be accessed until it is Ready.
    Prepared,
    /// Readable and writable.
    Ready,
}

impl PageState {
    /// Whether the page counts as mapped (Prepared or Ready), Go's
    /// `sysMemStat` view of a mapping.
    pub const fn is_mapped(self) -> bool {
        matches!(self, PageState::Prepared | PageState::Ready)
    }
}

impl fmt::Display for PageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PageState::None => "not reserved",
            PageState::Reserved => "reserved",
            PageState::Prepared => "prepared",
            PageState::Ready => "ready",
        })
    }
}

/// What `op` accepts and what it leaves behind: `(accepts, new state)`, with
/// `None` for "unchanged". `Reserve` and `Free` act on whole reservations and
/// are not page transitions.
pub(crate) fn rule(op: Op) -> (fn(PageState) -> bool, Option<PageState>) {
    match op {
        Op::Map => (|s| s == PageState::Reserved, Some(PageState::Prepared)),
        Op::Used => (PageState::is_mapped, Some(PageState::Ready)),
        Op::Unused => (|s| s == PageState::Ready, Some(PageState::Prepared)),
        Op::Fault => (PageState::is_mapped, Some(PageState::Reserved)),
        Op::AdviseHuge => (PageState::is_mapped, None),
        Op::Access => (|s| s == PageState::Ready, None),
        Op::Reserve | Op::Free => (|_| true, None),
    }
}

/// Checks the arguments every operation shares: non-zero length, `align`
/// alignment of both address and length, no overflow. Returns the end.
pub(crate) fn check_range(addr: usize, len: usize, align: usize) -> Result<usize, Error> {
    debug_assert!(align.is_power_of_two());
    if len == 0 {
        return Err(Error::ZeroLength);
    }
    if (addr | len) & (align - 1) != 0 {
        return Err(Error::Misaligned { addr, len, align });
    }
    addr.checked_add(len).ok_or(Error::Overflow { addr, len })
}

/// The layout of a [`PackedStates`] word: 32 pages, two bits each, page 0
/// in the lowest bits.
///
/// ```text
///  63 62     ...      3  2  1  0
/// ┌─────┬───────────┬─────┬─────┐
/// │ p31 │    ...    │ p1  │ p0  │   00 Reserved, 01 Prepared, 10 Ready
/// └─────┴───────────┴─────┴─────┘
/// ```
const PAGES_PER_WORD: usize = 32;
/// The low bit of every page's field.
const LOW_BITS: u64 = 0x5555_5555_5555_5555;

/// The two-bit code of a state; zero is Reserved, so fresh zeroed memory
/// holds an all-Reserved reservation.
const fn code(s: PageState) -> u64 {
    match s {
        PageState::None | PageState::Reserved => 0,
        PageState::Prepared => 1,
        PageState::Ready => 2,
    }
}

/// The states a code can hold, by code.
const STATES: [PageState; 3] = [PageState::Reserved, PageState::Prepared, PageState::Ready];

/// The page states of one reservation, two bits a page, without ownership
/// of their storage: a plain value that a table can hold. [`StateMap`] is
/// the owning form; [`SystemOs`](crate::SystemOs) frees its entries itself.
///
/// Until the first state change the array is not mapped (`words == 0`) and
/// every page is Reserved.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PackedStates {
    /// Address of the side mapping; 0 while every page is Reserved.
    words: usize,
    /// Bytes mapped at `words`.
    mapped: usize,
    n_pages: usize,
}

impl PackedStates {
    /// `n_pages` pages, all Reserved, with nothing mapped yet.
    pub(crate) const fn new(n_pages: usize) -> Self {
        Self {
            words: 0,
            mapped: 0,
            n_pages,
        }
    }

    /// Maps the array if it is not yet mapped, so that a following
    /// [`set`](Self::set) cannot fail.
    pub(crate) fn make_writable(&mut self) -> Result<(), Error> {
        if self.words == 0 {
            let bytes = self.n_pages.div_ceil(PAGES_PER_WORD) * 8;
            (self.words, self.mapped) = side::map(bytes)?;
        }
        Ok(())
    }

    /// Unmaps the array; every page reads Reserved again.
    ///
    /// # Safety
    /// No copy of this value may be used afterwards except this one.
    pub(crate) unsafe fn free(&mut self) {
        if self.words != 0 {
            // SAFETY:
            // - `words`/`mapped` are what `side::map` returned in
            //   `make_writable`; the caller promises that no other copy of
            //   this value uses the array again, and this one forgets it.
            unsafe { side::unmap(self.words, self.mapped) };
            self.words = 0;
            self.mapped = 0;
        }
    }

    /// The word holding page `page`'s bits; 0 (all Reserved) before the
    /// array is mapped.
    fn word(&self, i: usize) -> u64 {
        if self.words == 0 {
            return 0;
        }
        debug_assert!(i < self.n_pages.div_ceil(PAGES_PER_WORD));
        // SAFETY:
        // - `words` is a live side mapping of at least `ceil(n_pages / 32)`
        //   words, page-aligned, zero-initialised, owned by this value (the
        //   owner frees it only through `free`), and `i` is in bounds.
        unsafe {
            core::ptr::with_exposed_provenance::<u64>(self.words)
                .add(i)
                .read()
        }
    }

    /// Overwrites word `i`; the array must be mapped.
    fn set_word(&mut self, i: usize, w: u64) {
        assert!(self.words != 0, "page-state array not mapped");
        debug_assert!(i < self.n_pages.div_ceil(PAGES_PER_WORD));
        // SAFETY:
        // - As in `word`; `&mut self` makes this the only access.
        unsafe {
            core::ptr::with_exposed_provenance_mut::<u64>(self.words)
                .add(i)
                .write(w)
        }
    }

    /// The state of page `page`.
    pub(crate) fn get(&self, page: usize) -> PageState {
        debug_assert!(page < self.n_pages);
        let w = self.word(page / PAGES_PER_WORD);
        STATES[(w >> (2 * (page % PAGES_PER_WORD)) & 3) as usize]
    }

    /// Calls `f(word index, mask of the pages of `pages` in it)` for every
    /// word `pages` touches, in order, until `f` returns `Some`.
    fn scan<R>(pages: Range<usize>, mut f: impl FnMut(usize, u64) -> Option<R>) -> Option<R> {
        let Range { start, end } = pages;
        if start >= end {
            return None;
        }
        for i in start / PAGES_PER_WORD..=(end - 1) / PAGES_PER_WORD {
            let lo = start.max(i * PAGES_PER_WORD) - i * PAGES_PER_WORD;
            let hi = end.min((i + 1) * PAGES_PER_WORD) - i * PAGES_PER_WORD;
            let mask = if hi - lo == PAGES_PER_WORD {
                u64::MAX
            } else {
                ((1u64 << (2 * (hi - lo))) - 1) << (2 * lo)
            };
            if let Some(r) = f(i, mask) {
                return Some(r);
            }
        }
        None
    }

    /// The low bits of the pages of word `w` within `mask` whose state
    /// `pred` accepts.
    fn matching(w: u64, mask: u64, pred: fn(PageState) -> bool) -> u64 {
        let mut hits = 0;
        for s in STATES {
            if pred(s) {
                let x = w ^ (code(s) * LOW_BITS);
                hits |= !(x | x >> 1) & LOW_BITS;
            }
        }
        hits & mask
    }

    /// The first page of `pages` whose state `ok` rejects.
    pub(crate) fn first_rejected(
        &self,
        pages: Range<usize>,
        ok: fn(PageState) -> bool,
    ) -> Option<(usize, PageState)> {
        debug_assert!(pages.end <= self.n_pages);
        Self::scan(pages, |i, mask| {
            let bad = !Self::matching(self.word(i), mask, ok) & mask & LOW_BITS;
            (bad != 0).then(|| {
                let page = i * PAGES_PER_WORD + bad.trailing_zeros() as usize / 2;
                (page, self.get(page))
            })
        })
    }

    /// How many pages of `pages` are in a state `pred` accepts.
    pub(crate) fn count(&self, pages: Range<usize>, pred: fn(PageState) -> bool) -> usize {
        debug_assert!(pages.end <= self.n_pages);
        let mut n = 0;
        Self::scan(pages, |i, mask| {
            n += Self::matching(self.word(i), mask, pred).count_ones() as usize;
            None::<()>
        });
        n
    }

    /// Sets every page of `pages` to `state` (Reserved, Prepared or Ready).
    ///
    /// # Panics
    /// If the array is not mapped (see [`make_writable`](Self::make_writable))
    /// and `state` is not Reserved.
    pub(crate) fn set(&mut self, pages: Range<usize>, state: PageState) {
        debug_assert!(pages.start < pages.end && pages.end <= self.n_pages);
        debug_assert!(state != PageState::None);
        if self.words == 0 && state == PageState::Reserved {
            return;
        }
        let pattern = code(state) * LOW_BITS;
        Self::scan(pages, |i, mask| {
            let w = self.word(i);
            self.set_word(i, (w & !mask) | (pattern & mask));
            None::<()>
        });
    }
}

/// The page states of one reservation, owning their side mapping (freed on
/// drop): what a [`Reservation`](crate::Reservation) keeps.
#[derive(Debug)]
pub(crate) struct StateMap(PackedStates);

impl StateMap {
    /// `n_pages` pages, all Reserved; nothing is mapped until a page
    /// changes state.
    pub(crate) fn new(n_pages: usize) -> Self {
        debug_assert!(n_pages > 0);
        Self(PackedStates::new(n_pages))
    }
}

impl core::ops::Deref for StateMap {
    type Target = PackedStates;

    fn deref(&self) -> &PackedStates {
        &self.0
    }
}

impl core::ops::DerefMut for StateMap {
    fn deref_mut(&mut self) -> &mut PackedStates {
        &mut self.0
    }
}

impl Drop for StateMap {
    fn drop(&mut self) {
        // SAFETY:
        // - The inner value is private to this map and never copied out, so
        //   this is the only copy, and the map is going away.
        unsafe { self.0.free() };
    }
}
