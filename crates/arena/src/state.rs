//! Page states and the checked transition rules shared by every [`Os`]
//! implementation of this crate.
//!
//! A reservation's pages are kept as a run-length map (page index → state of
//! the run starting there), so a 64 GiB reservation costs one map entry until
//! parts of it change state, and a check or update costs O(runs touched).
//!
//! [`Os`]: crate::Os

use alloc::collections::BTreeMap;
use core::fmt;
use core::ops::Range;

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

/// The states of the pages of one reservation, run-length encoded.
#[derive(Clone, Debug)]
pub(crate) struct StateMap {
    /// Run start (page index) → state of the run, which extends to the next
    /// key or to `n_pages`. Key 0 is always present and neighbouring runs
    /// always differ.
    runs: BTreeMap<usize, PageState>,
    n_pages: usize,
}

impl StateMap {
    /// `n_pages` pages, all in state `init`.
    pub(crate) fn new(n_pages: usize, init: PageState) -> Self {
        debug_assert!(n_pages > 0);
        let mut runs = BTreeMap::new();
        runs.insert(0, init);
        Self { runs, n_pages }
    }

    /// The state of page `page`.
    pub(crate) fn get(&self, page: usize) -> PageState {
        debug_assert!(page < self.n_pages);
        match self.runs.range(..=page).next_back() {
            Some((_, &s)) => s,
            None => unreachable!("run map lost its first run"),
        }
    }

    /// The runs overlapping `pages`, clipped to it, in address order.
    pub(crate) fn runs(
        &self,
        pages: Range<usize>,
    ) -> impl Iterator<Item = (Range<usize>, PageState)> + '_ {
        let first = self.runs.range(..=pages.start).next_back();
        let rest = self.runs.range(pages.start + 1..pages.end);
        let n = self.n_pages;
        first.into_iter().chain(rest).map(move |(&start, &state)| {
            let next = self.runs.range(start + 1..).next().map_or(n, |(&k, _)| k);
            (start.max(pages.start)..next.min(pages.end), state)
        })
    }

    /// The first page of `pages` whose state `ok` rejects.
    pub(crate) fn first_rejected(
        &self,
        pages: Range<usize>,
        ok: fn(PageState) -> bool,
    ) -> Option<(usize, PageState)> {
        self.runs(pages)
            .find(|(_, s)| !ok(*s))
            .map(|(r, s)| (r.start, s))
    }

    /// How many pages of `pages` are in a state `pred` accepts.
    pub(crate) fn count(&self, pages: Range<usize>, pred: fn(PageState) -> bool) -> usize {
        self.runs(pages)
            .filter(|(_, s)| pred(*s))
            .map(|(r, _)| r.len())
            .sum()
    }

    /// Sets every page of `pages` to `state`.
    pub(crate) fn set(&mut self, pages: Range<usize>, state: PageState) {
        let Range { start, end } = pages;
        debug_assert!(start < end && end <= self.n_pages);
        let after = (end < self.n_pages).then(|| self.get(end));
        while let Some((&k, _)) = self.runs.range(start..=end).next() {
            self.runs.remove(&k);
        }
        if let Some(a) = after {
            if a != state {
                self.runs.insert(end, a);
            }
        }
        let before = (start > 0).then(|| self.get(start - 1));
        if before != Some(state) {
            self.runs.insert(start, state);
        }
    }
}
