//! A simulated operating system: [`SimOs`] implements [`Os`] over
//! ordinary heap memory, checks every call, and injects faults.
//!
//! It is for testing code built on [`Os`]: a runtime's out-of-memory paths
//! ([`Faults`] makes any call fail on its n-th use), or a layer that must
//! never touch memory it has not made Ready ([`SimOs::check_access`]), all
//! without the real OS and under Miri. This module needs the `sim` feature.
//!
//! Each reservation is backed by zeroed memory of its own (a `Vec<u8>`, or
//! natively for 256 KiB and more a lazily zeroed side mapping from the real
//! OS, so reserving hundreds of MiB is cheap even under a sanitizer) whose
//! start is aligned up to the page size inside it; Ready memory is therefore real
//! memory, usable through `core::ptr::with_exposed_provenance_mut` and under
//! Miri. Every page's [`PageState`] is tracked. A call that breaks the rules
//! (map twice, use Reserved memory, release what was never mapped, free what
//! is not a reservation, misaligned or zero arguments) fails with the same
//! [`Error`] that [`SystemOs`](crate::SystemOs) returns *and* is recorded as a
//! [`Violation`], so a test can assert that the code under test never broke
//! them ([`SimOs::assert_clean`]).
//!
//! The simulated OS owns only the memory it allocated: `reserve_at` anywhere
//! else reports [`Error::AddressTaken`], as if the host process used it.
//!
//! One limit: `unused` with [`ReleaseMode::DontNeed`], `unused` with
//! [`ReleaseMode::Free`] (which poisons the pages with `0xA5`) and `fault`
//! (which zeroes them) write through the backing memory itself (or, for a
//! mapping, drop its whole pages to the OS), so no other thread may touch
//! the same reservation's memory during those calls.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};

use crate::{Error, HugeAdvice, Op, Os, OsError, PageState, ReleaseMode};

mod backing;
use backing::Backing;

/// The kinds of [`Os`] calls, for counting and fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Call {
    /// [`Os::reserve`].
    Reserve,
    /// [`Os::reserve_at`].
    ReserveAt,
    /// [`Os::reserve_aligned`].
    ReserveAligned,
    /// [`Os::map`].
    Map,
    /// [`Os::used`].
    Used,
    /// [`Os::unused`].
    Unused,
    /// [`Os::fault`].
    Fault,
    /// [`Os::free`].
    Free,
    /// [`Os::advise_huge`].
    AdviseHuge,
}

impl Call {
    /// Every kind, in declaration order.
    pub const ALL: [Call; 9] = [
        Call::Reserve,
        Call::ReserveAt,
        Call::ReserveAligned,
        Call::Map,
        Call::Used,
        Call::Unused,
        Call::Fault,
        Call::Free,
        Call::AdviseHuge,
    ];
}

/// Which calls fail with an injected OS error (`ENOMEM`).
///
/// Call numbers are 1-based and count from the moment the faults are set
/// with [`SimOs::set_faults`]; every call counts, including ones rejected for
/// bad arguments (those fail with their own error, using up the fault).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    nth_call: Option<u64>,
    every: Vec<Call>,
    nth_of: Vec<(Call, u64)>,
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Fails the `k`-th call of any kind.
    #[must_use]
    pub fn nth_call(mut self, k: u64) -> Self {
        self.nth_call = Some(k);
        self
    }

    /// Fails every call of kind `call`.
    #[must_use]
    pub fn every(mut self, call: Call) -> Self {
        self.every.push(call);
        self
    }

    /// Fails the `k`-th call of kind `call`.
    #[must_use]
    pub fn nth_of(mut self, call: Call, k: u64) -> Self {
        self.nth_of.push((call, k));
        self
    }
}

/// A broken rule, recorded by the simulated OS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The call that broke it; `None` for [`SimOs::check_access`].
    pub call: Option<Call>,
    /// The address passed.
    pub addr: usize,
    /// The length passed.
    pub len: usize,
    /// The error returned.
    pub error: Error,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.call {
            Some(c) => write!(
                f,
                "{c:?}({:#x}, {:#x}): {}",
                self.addr, self.len, self.error
            ),
            None => write!(
                f,
                "access({:#x}, {:#x}): {}",
                self.addr, self.len, self.error
            ),
        }
    }
}

/// The simulated OS. See the [module docs](self).
pub struct SimOs {
    page: usize,
    huge: Option<usize>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    regions: BTreeMap<usize, Region>,
    calls: BTreeMap<Call, u64>,
    total: u64,
    faults: Faults,
    /// Call counts when the faults were set.
    fault_base: (u64, BTreeMap<Call, u64>),
    violations: Vec<Violation>,
    /// Ready pages over all regions, kept as pages change state, so that
    /// [`SimOs::ready_bytes`] costs nothing on big reservations.
    ready_pages: usize,
}

struct Region {
    /// Owns the memory; `base` lies inside it.
    backing: Backing,
    /// Offset of `base` in `backing`.
    offset: usize,
    len: usize,
    pages: Vec<Page>,
    /// How many of `pages` are Ready.
    ready: usize,
}

#[derive(Clone, Copy)]
struct Page {
    state: PageState,
    /// Released with [`ReleaseMode::Free`]: still resident until reused.
    lazily_freed: bool,
}

impl Default for SimOs {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SimOs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimOs")
            .field("page", &self.page)
            .field("huge", &self.huge)
            .field("reservations", &self.reservations())
            .finish()
    }
}

impl SimOs {
    /// 4 KiB pages, 2 MiB huge pages.
    pub fn new() -> Self {
        Self::with_page_sizes(4096, Some(2 << 20))
    }

    /// The given page size and huge page size (`None`: huge-page advice is
    /// [`Error::Unsupported`]).
    ///
    /// # Panics
    /// If a size is not a power of two.
    pub fn with_page_sizes(page: usize, huge: Option<usize>) -> Self {
        assert!(
            page.is_power_of_two(),
            "page size {page:#x} is not a power of two"
        );
        if let Some(h) = huge {
            assert!(
                h.is_power_of_two(),
                "huge page size {h:#x} is not a power of two"
            );
        }
        Self {
            page,
            huge,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Replaces the fault configuration; call numbers count from now.
    pub fn set_faults(&self, faults: Faults) {
        let mut g = self.lock();
        g.fault_base = (g.total, g.calls.clone());
        g.faults = faults;
    }

    /// How many calls of kind `call` were made, valid or not.
    pub fn calls(&self, call: Call) -> u64 {
        self.lock().calls.get(&call).copied().unwrap_or(0)
    }

    /// How many calls were made in all.
    pub fn total_calls(&self) -> u64 {
        self.lock().total
    }

    /// The broken rules recorded so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.lock().violations.clone()
    }

    /// Returns the recorded violations and forgets them.
    pub fn take_violations(&self) -> Vec<Violation> {
        std::mem::take(&mut self.lock().violations)
    }

    /// Asserts that no rule was broken.
    ///
    /// # Panics
    /// If any violation was recorded, listing them all.
    pub fn assert_clean(&self) {
        let v = self.violations();
        if !v.is_empty() {
            let list: Vec<String> = v.iter().map(|v| format!("  {v}")).collect();
            panic!(
                "the simulated OS saw {} violation(s):\n{}",
                v.len(),
                list.join("\n")
            );
        }
    }

    /// Checks that `addr..addr + len` may be read and written: every byte
    /// must be Ready. A failure is recorded as a violation.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`] with [`Op::Access`] naming the first page
    /// that is not Ready (e.g. "touching Reserved memory"); a range not
    /// inside one reservation is [`Error::NotReserved`].
    pub fn check_access(&self, addr: usize, len: usize) -> Result<(), Error> {
        let mut g = self.lock();
        let r = self.access(&g, addr, len);
        if let Err(e) = &r {
            g.violations.push(Violation {
                call: None,
                addr,
                len,
                error: e.clone(),
            });
        }
        r
    }

    /// Copies memory at `addr` into `buf`, after [`check_access`]
    /// (recording a violation if it fails).
    ///
    /// [`check_access`]: SimOs::check_access
    ///
    /// # Errors
    /// As [`SimOs::check_access`].
    pub fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), Error> {
        self.check_access(addr, buf.len())?;
        let g = self.lock();
        if let Some((base, r)) = find(&g.regions, addr, buf.len().max(1)) {
            let at = r.offset + (addr - base);
            buf.copy_from_slice(&r.backing.bytes()[at..at + buf.len()]);
        }
        Ok(())
    }

    /// Whether the `len` bytes at `addr` are all zeros, after
    /// [`check_access`] (recording a violation if it fails). The same
    /// answer as [`read`](SimOs::read) and a look at the bytes, without
    /// faulting in memory nothing has touched: the pages of a side mapping
    /// that the real OS reports not resident (and never swapped out) read
    /// as zeros by its own guarantee.
    ///
    /// [`check_access`]: SimOs::check_access
    ///
    /// # Errors
    /// As [`SimOs::check_access`].
    pub fn is_zero(&self, addr: usize, len: usize) -> Result<bool, Error> {
        self.check_access(addr, len)?;
        let g = self.lock();
        Ok(match find(&g.regions, addr, len.max(1)) {
            Some((base, r)) => r.backing.is_zero(r.offset + (addr - base), len),
            None => true,
        })
    }

    /// Copies `bytes` to memory at `addr`, after [`check_access`]
    /// (recording a violation if it fails).
    ///
    /// [`check_access`]: SimOs::check_access
    ///
    /// # Errors
    /// As [`SimOs::check_access`].
    pub fn write(&self, addr: usize, bytes: &[u8]) -> Result<(), Error> {
        self.check_access(addr, bytes.len())?;
        let mut g = self.lock();
        if let Some((base, r)) = find_mut(&mut g.regions, addr, bytes.len().max(1)) {
            let at = r.offset + (addr - base);
            r.backing.bytes_mut()[at..at + bytes.len()].copy_from_slice(bytes);
            r.backing.expose();
        }
        Ok(())
    }

    /// The state of the page containing `addr`.
    pub fn page_state(&self, addr: usize) -> PageState {
        let g = self.lock();
        match find(&g.regions, addr, 1) {
            Some((base, r)) => r.pages[(addr - base) / self.page].state,
            None => PageState::None,
        }
    }

    /// The live reservations, as `(base, len)` in address order.
    pub fn reservations(&self) -> Vec<(usize, usize)> {
        self.lock()
            .regions
            .iter()
            .map(|(&b, r)| (b, r.len))
            .collect()
    }

    /// Bytes in state `state` over all reservations.
    pub fn bytes_in(&self, state: PageState) -> usize {
        self.sum(|p| p.state == state)
    }

    /// Bytes Ready (kept as a running count; the same as
    /// `bytes_in(PageState::Ready)`).
    pub fn ready_bytes(&self) -> usize {
        self.lock().ready_pages * self.page
    }

    /// Bytes the simulated OS counts as resident: Ready pages plus pages
    /// released with [`ReleaseMode::Free`], which it never reclaims.
    pub fn resident_bytes(&self) -> usize {
        self.sum(|p| p.state == PageState::Ready || p.lazily_freed)
    }

    fn sum(&self, pred: impl Fn(&Page) -> bool) -> usize {
        let g = self.lock();
        let n: usize = g
            .regions
            .values()
            .map(|r| r.pages.iter().filter(|p| pred(p)).count())
            .sum();
        n * self.page
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock leaves consistent
        // state behind (every update is done before any panic can happen).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Zero length, misalignment, overflow; returns the end.
    fn check_args(&self, addr: usize, len: usize) -> Result<usize, Error> {
        if len == 0 {
            return Err(Error::ZeroLength);
        }
        if !addr.is_multiple_of(self.page) || !len.is_multiple_of(self.page) {
            return Err(Error::Misaligned {
                addr,
                len,
                align: self.page,
            });
        }
        addr.checked_add(len).ok_or(Error::Overflow { addr, len })
    }

    fn access(&self, g: &Inner, addr: usize, len: usize) -> Result<(), Error> {
        let Some((base, r)) = find(&g.regions, addr, len.max(1)) else {
            return Err(Error::NotReserved { addr, len });
        };
        let first = (addr - base) / self.page;
        let last = (addr + len.max(1) - 1 - base) / self.page;
        match (first..=last).find(|&i| r.pages[i].state != PageState::Ready) {
            Some(i) => Err(Error::InvalidTransition {
                op: Op::Access,
                addr: base + i * self.page,
                state: r.pages[i].state,
            }),
            None => Ok(()),
        }
    }

    /// Counts the call, runs `body` (the validation and the effect), records
    /// a rule violation, and injects a fault into calls that were valid.
    fn call<T>(
        &self,
        call: Call,
        addr: usize,
        len: usize,
        body: impl FnOnce(&mut Inner, Injected) -> Result<T, Failure>,
    ) -> Result<T, Error> {
        let mut g = self.lock();
        g.total += 1;
        *g.calls.entry(call).or_insert(0) += 1;
        let inject = Injected(fault_due(&g, call));
        match body(&mut g, inject) {
            Ok(v) => Ok(v),
            Err(Failure::Outcome(e)) => Err(e),
            Err(Failure::Rule(e)) => {
                g.violations.push(Violation {
                    call: Some(call),
                    addr,
                    len,
                    error: e.clone(),
                });
                Err(e)
            }
        }
    }

    /// A page transition: validates, injects, then sets states and runs
    /// `effect` on the pages (byte offset in `backing`, length).
    fn transition(
        &self,
        call: Call,
        op: Op,
        addr: usize,
        len: usize,
        effect: impl FnOnce(&mut Region, usize, usize),
    ) -> Result<(), Error> {
        let (accepts, to) = rule(op);
        self.call(call, addr, len, |g, inject| {
            let end = self.check_args(addr, len).map_err(Failure::Rule)?;
            let page = self.page;
            let (base, r) = find_mut(&mut g.regions, addr, len)
                .ok_or(Failure::Rule(Error::NotReserved { addr, len }))?;
            let first = (addr - base) / page;
            let last = (end - base) / page;
            if let Some(i) = (first..last).find(|&i| !accepts(r.pages[i].state)) {
                return Err(Failure::Rule(Error::InvalidTransition {
                    op,
                    addr: base + i * page,
                    state: r.pages[i].state,
                }));
            }
            inject.check()?;
            if let Some(to) = to {
                let before = r.ready;
                for p in &mut r.pages[first..last] {
                    r.ready = r.ready + usize::from(to == PageState::Ready)
                        - usize::from(p.state == PageState::Ready);
                    p.state = to;
                }
                g.ready_pages = g.ready_pages + r.ready - before;
            }
            let offset = r.offset + (addr - base);
            effect(r, offset, len);
            Ok(())
        })
    }

    /// Makes a new region of `len` bytes aligned to `align`.
    fn new_region(&self, g: &mut Inner, len: usize, align: usize) -> Result<usize, Failure> {
        let size = len
            .checked_add(align)
            .ok_or(Failure::Rule(Error::Overflow { addr: 0, len }))?;
        let mut backing = Backing::zeroed(size);
        let start = backing.expose();
        let base = start.next_multiple_of(align);
        let pages = vec![
            Page {
                state: PageState::Reserved,
                lazily_freed: false,
            };
            len / self.page
        ];
        g.regions.insert(
            base,
            Region {
                backing,
                offset: base - start,
                len,
                pages,
                ready: 0,
            },
        );
        Ok(base)
    }
}

/// The simulation's own statement of the transition rules (the same table
/// as the `arena` crate docs, written out again so the two can disagree):
/// which states `op` accepts, and the state it leaves.
fn rule(op: Op) -> (fn(PageState) -> bool, Option<PageState>) {
    use PageState::{Prepared, Ready, Reserved};
    match op {
        Op::Map => (|s| s == Reserved, Some(Prepared)),
        Op::Used => (|s| s == Prepared || s == Ready, Some(Ready)),
        Op::Unused => (|s| s == Ready, Some(Prepared)),
        Op::Fault => (|s| s == Prepared || s == Ready, Some(Reserved)),
        _ => (|s| s == Prepared || s == Ready, None),
    }
}

/// Whether an injected fault is due for this call (already counted).
fn fault_due(g: &Inner, call: Call) -> bool {
    let f = &g.faults;
    let since = g.total - g.fault_base.0;
    let of_kind =
        g.calls.get(&call).copied().unwrap_or(0) - g.fault_base.1.get(&call).copied().unwrap_or(0);
    f.nth_call == Some(since)
        || f.every.contains(&call)
        || f.nth_of.iter().any(|&(c, k)| c == call && k == of_kind)
}

/// Why a call failed: a broken rule (recorded) or a plain outcome.
enum Failure {
    Rule(Error),
    Outcome(Error),
}

/// Whether this call is to fail with an injected error.
#[derive(Clone, Copy)]
struct Injected(bool);

impl Injected {
    fn check(self) -> Result<(), Failure> {
        if self.0 {
            Err(Failure::Outcome(Error::Os {
                op: "simulated fault",
                source: OsError::OUT_OF_MEMORY,
            }))
        } else {
            Ok(())
        }
    }
}

/// The region wholly containing `addr..addr + len`.
fn find(regions: &BTreeMap<usize, Region>, addr: usize, len: usize) -> Option<(usize, &Region)> {
    let (&base, r) = regions.range(..=addr).next_back()?;
    let end = addr.checked_add(len)?;
    (end - base <= r.len).then_some((base, r))
}

fn find_mut(
    regions: &mut BTreeMap<usize, Region>,
    addr: usize,
    len: usize,
) -> Option<(usize, &mut Region)> {
    let (&base, r) = regions.range_mut(..=addr).next_back()?;
    let end = addr.checked_add(len)?;
    (end - base <= r.len).then_some((base, r))
}

/// Whether `addr..end` overlaps a region.
fn overlaps(regions: &BTreeMap<usize, Region>, addr: usize, end: usize) -> bool {
    regions
        .range(..end)
        .next_back()
        .is_some_and(|(&base, r)| base + r.len > addr)
}

/// Writes `byte` over `backing[offset..offset + len]` and exposes the
/// buffer's provenance again, since the write through a fresh `&mut` retires
/// the pointers exposed before it.
fn fill(r: &mut Region, offset: usize, len: usize, byte: u8) {
    r.backing.fill(offset, len, byte);
}

// SAFETY:
// - Ready memory is valid for reads and writes: every reservation is a live
//   `Backing` (a `Vec<u8>` or a side mapping) of at least `offset + len`
//   bytes, owned by `regions` until `free` removes it, and its address was
//   exposed with `expose_provenance` (again after every write the
//   simulation makes), so a pointer made with `with_exposed_provenance_mut`
//   from an address in `base..base + len` may access it. The memory never
//   moves (moving the `Region` moves only the `Backing`'s pointer).
// - Contents survive until `unused`, `fault` or `free`: only those three
//   write to a range (`unused` and `fault` only after validating that the
//   range is theirs), `map` is refused on non-Reserved pages, and `used`
//   changes only the recorded state.
// - Ready memory reads as zero first: the buffer is allocated zeroed, `fault`
//   writes zeros before pages return to Reserved, and pages reach Ready from
//   Reserved only through `map` and `used`, which do not write.
unsafe impl Os for SimOs {
    fn page_size(&self) -> usize {
        self.page
    }

    fn huge_page_size(&self) -> Option<usize> {
        self.huge
    }

    fn reserve(&self, hint: Option<usize>, len: usize) -> Result<usize, Error> {
        self.call(Call::Reserve, hint.unwrap_or(0), len, |g, inject| {
            self.check_args(hint.unwrap_or(0), len)
                .map_err(Failure::Rule)?;
            inject.check()?;
            self.new_region(g, len, self.page)
        })
    }

    fn reserve_at(&self, addr: usize, len: usize) -> Result<usize, Error> {
        self.call(Call::ReserveAt, addr, len, |g, inject| {
            let end = self.check_args(addr, len).map_err(Failure::Rule)?;
            inject.check()?;
            // Inside its own reservations the space is taken by definition;
            // outside them the host process owns it. Either way: taken.
            let _ = (g, end);
            Err(Failure::Outcome(Error::AddressTaken { addr, len }))
        })
    }

    fn reserve_aligned(&self, len: usize, align: usize) -> Result<usize, Error> {
        self.call(Call::ReserveAligned, 0, len, |g, inject| {
            self.check_args(0, len).map_err(Failure::Rule)?;
            if !align.is_power_of_two() || !align.is_multiple_of(self.page) {
                return Err(Failure::Rule(Error::Misaligned {
                    addr: 0,
                    len: align,
                    align: self.page,
                }));
            }
            inject.check()?;
            self.new_region(g, len, align)
        })
    }

    fn map(&self, addr: usize, len: usize) -> Result<(), Error> {
        self.transition(Call::Map, Op::Map, addr, len, |_, _, _| {})
    }

    fn used(&self, addr: usize, len: usize) -> Result<(), Error> {
        self.transition(Call::Used, Op::Used, addr, len, |_, _, _| {})
    }

    unsafe fn unused(&self, addr: usize, len: usize, mode: ReleaseMode) -> Result<(), Error> {
        let page = self.page;
        self.transition(Call::Unused, Op::Unused, addr, len, |r, offset, len| {
            let lazy = mode == ReleaseMode::Free;
            // Dropped pages read back as zeros; lazily freed ones hold
            // garbage, so code relying on zeros fails here first.
            fill(r, offset, len, if lazy { 0xA5 } else { 0 });
            let first = (offset - r.offset) / page;
            for p in &mut r.pages[first..first + len / page] {
                p.lazily_freed = lazy;
            }
        })
    }

    unsafe fn fault(&self, addr: usize, len: usize) -> Result<(), Error> {
        let page = self.page;
        self.transition(Call::Fault, Op::Fault, addr, len, |r, offset, len| {
            fill(r, offset, len, 0);
            let first = (offset - r.offset) / page;
            for p in &mut r.pages[first..first + len / page] {
                p.lazily_freed = false;
            }
        })
    }

    unsafe fn free(&self, addr: usize, len: usize) -> Result<(), Error> {
        self.call(Call::Free, addr, len, |g, inject| {
            let end = self.check_args(addr, len).map_err(Failure::Rule)?;
            match g.regions.get(&addr) {
                Some(r) if r.len == len => {}
                _ if overlaps(&g.regions, addr, end) => {
                    return Err(Failure::Rule(Error::NotWholeReservation { addr, len }))
                }
                _ => return Err(Failure::Rule(Error::NotReserved { addr, len })),
            }
            inject.check()?;
            if let Some(r) = g.regions.remove(&addr) {
                g.ready_pages -= r.ready;
            }
            Ok(())
        })
    }

    fn advise_huge(&self, addr: usize, len: usize, advice: HugeAdvice) -> Result<(), Error> {
        let _ = advice;
        let supported = self.huge.is_some();
        let r = self.transition(Call::AdviseHuge, Op::AdviseHuge, addr, len, |_, _, _| {});
        match r {
            Ok(()) if !supported => Err(Error::Unsupported),
            r => r,
        }
    }

    fn zeroed_after_unused(&self, mode: ReleaseMode) -> bool {
        mode == ReleaseMode::DontNeed
    }
}

// Page-state queries for comparisons with other `Os` implementations.
impl SimOs {
    /// The state of page `i` of the reservation at `base`, if both exist.
    pub fn state_of(&self, base: usize, i: usize) -> Option<PageState> {
        let g = self.lock();
        g.regions.get(&base)?.pages.get(i).map(|p| p.state)
    }
}

#[cfg(test)]
mod tests;
