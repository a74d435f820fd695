//! The simulated OS, re-exported from `pageheap_arena::sim` (feature
//! `sim`), plus random sequences of legal and illegal [`Os`] calls for the
//! `arena_ops` fuzz target: the same [`ArenaOp`]s are applied to the
//! simulated OS and to `pageheap_arena::SystemOs` (or a `BufferOs`), and
//! their outcomes and page states must agree.
//!
//! Reservations are named by their slot in a list of live ones, and every
//! address is relative to its reservation, so the two systems can be
//! compared although their addresses differ.

pub use pageheap_arena::sim::{Call, Faults, SimOs, Violation};

use arbitrary::Arbitrary;

use pageheap_arena::{BufferOs, Error, HugeAdvice, Op, Os, PageState, ReleaseMode, SystemOs};

/// At most this many reservations are live; `Reserve` beyond it is skipped.
pub const MAX_LIVE: usize = 6;
/// At most this many pages per reservation.
pub const MAX_PAGES: usize = 16;

/// A range inside (or around) a live reservation, in pages.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Which live reservation (modulo their number); with none live, the
    /// range lies at an address no reservation uses.
    pub slot: u8,
    /// First page, relative to the reservation, modulo its length (the
    /// range may run past its end).
    pub page: u8,
    /// Number of pages (0 makes a zero-length call).
    pub pages: u8,
    /// Adds one byte to the address when odd: a misaligned call.
    pub skew: u8,
}

/// One call on an [`Os`].
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArenaOp {
    /// `reserve(None, pages)`; zero pages is an illegal call.
    Reserve {
        /// Length in pages, modulo `MAX_PAGES + 1`.
        pages: u8,
    },
    /// `reserve` with a length one byte short of whole pages.
    ReserveMisaligned {
        /// Length in pages, modulo `MAX_PAGES`, plus one.
        pages: u8,
    },
    /// `reserve_at` over a live reservation: must be refused on both.
    ReserveAtTaken(Slot),
    /// `map`.
    Map(Slot),
    /// `used`.
    Used(Slot),
    /// `unused`.
    Unused(Slot, bool),
    /// `fault`.
    Fault(Slot),
    /// `free`; whole reservations when the flag is set.
    Free(Slot, bool),
    /// `advise_huge`.
    AdviseHuge(Slot, u8),
}

/// An outcome with addresses made relative, comparable across systems.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpOutcome {
    /// The call succeeded (or was skipped).
    Ok,
    /// It failed with an error of this kind; for invalid transitions, the
    /// offending page's index in its reservation and its state.
    Err {
        /// The error variant's name.
        kind: &'static str,
        /// The first page in a wrong state, relative to the reservation.
        page: Option<usize>,
        /// That page's state.
        state: Option<PageState>,
        /// The operation refused.
        op: Option<Op>,
    },
}

impl OpOutcome {
    /// Whether this is an error of kind `Os` (the system refused), which
    /// only a real system produces for legal calls.
    pub fn is_os_error(&self) -> bool {
        matches!(self, OpOutcome::Err { kind: "Os", .. })
    }
}

/// Applies `ops` to a [`SimOs`] and to a [`SystemOs`] with the same page
/// sizes, and panics unless every outcome and every page state agree.
/// Returns how many steps were compared. Both are left without
/// reservations.
///
/// The real system may refuse a legal call (out of memory), and
/// `MADV_COLLAPSE` may be missing or fail transiently; the run stops there,
/// since the two systems' states have parted.
///
/// # Panics
/// On the first disagreement, naming the step.
pub fn run(ops: &[ArenaOp]) -> usize {
    compare(&SystemOs::new(), SystemOs::page_state, ops)
}

/// [`run`] against a [`BufferOs`] over a 1 MiB buffer instead of the real
/// OS: the buffer-backed OS must follow the same rules. One buffer serves
/// every call, one call at a time (a `BufferOs` owns its memory for good,
/// and `compare` leaves it without reservations), so repeated runs do not
/// grow the process.
///
/// # Panics
/// On the first disagreement, naming the step.
#[allow(unsafe_code)]
pub fn run_buffer(ops: &[ArenaOp]) -> usize {
    /// The OS and the memory it owns, kept together for the whole process.
    static OS: std::sync::Mutex<Option<(BufferOs, Vec<u8>)>> = std::sync::Mutex::new(None);
    let mut guard = OS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (os, _) = guard.get_or_insert_with(|| {
        let mut mem = vec![0u8; 1 << 20];
        let addr = mem.as_mut_ptr().expose_provenance();
        // SAFETY:
        // - `mem` is stored beside the OS in this static and never touched
        //   or dropped (the static lives as long as the process), so the
        //   OS owns its bytes for good; moving the `Vec` does not move them.
        let os = unsafe { BufferOs::from_raw_parts(addr, mem.len(), 4096) };
        (os.expect("a 1 MiB buffer holds pages"), mem)
    });
    assert_eq!(
        os.free_bytes(),
        os.usable().1,
        "an earlier run left reservations"
    );
    compare(os, BufferOs::page_state, ops)
}

/// Applies `ops` to a fresh [`SimOs`] with `other`'s page sizes and to
/// `other`, which must have no reservations; see [`run`].
#[allow(unsafe_code)]
fn compare<O: Os>(other: &O, state: fn(&O, usize) -> PageState, ops: &[ArenaOp]) -> usize {
    let sys = other;
    let page = sys.page_size();
    let sim = SimOs::with_page_sizes(page, sys.huge_page_size());
    let (mut live_sim, mut live_sys) = (Vec::new(), Vec::new());
    let mut compared = 0;
    for (i, &op) in ops.iter().enumerate() {
        let a = apply(&sim, &mut live_sim, op);
        let b = apply(sys, &mut live_sys, op);
        let collapse = matches!(op, ArenaOp::AdviseHuge(_, x) if x % 3 == 2);
        let real_refused =
            b.is_os_error() || (collapse && a == OpOutcome::Ok && b != OpOutcome::Ok);
        if real_refused {
            break;
        }
        assert_eq!(a, b, "step {i}: {op:?} (simulated, then real)");
        let sa = page_states(&live_sim, page, |x| sim.page_state(x));
        let sb = page_states(&live_sys, page, |x| state(sys, x));
        assert_eq!(sa, sb, "page states after step {i}: {op:?}");
        assert_eq!(
            sim.ready_bytes(),
            sim.bytes_in(PageState::Ready),
            "the simulated OS's running Ready count after step {i}: {op:?}"
        );
        compared += 1;
    }
    for (b, l) in live_sim {
        // SAFETY:
        // - `sim` is this function's own: `apply` made every reservation in
        //   it, and nothing ever reads or writes their memory.
        unsafe { sim.free(b, l) }.unwrap();
    }
    for (b, l) in live_sys {
        // SAFETY:
        // - As for `sim`: `sys` had no reservations; only this function made
        //   any, and no code touches their memory.
        unsafe { sys.free(b, l) }.unwrap();
    }
    compared
}

/// Applies `op` to `os`, keeping `live` (the `(base, len)` of live
/// reservations, in creation order) up to date.
///
/// Private to [`compare`], which passes OS objects whose every reservation
/// was made here and whose memory no code reads or writes, which is what
/// makes the destructive calls below sound whatever range they hit.
#[allow(unsafe_code)]
fn apply<O: Os>(os: &O, live: &mut Vec<(usize, usize)>, op: ArenaOp) -> OpOutcome {
    let page = os.page_size();
    // An address far from anything the systems hand out: page-aligned, and
    // well below the usual mmap area and heap.
    let nowhere = 0x1000 * page;
    // Ranges start inside their reservation (and may run past its end):
    // beyond it, the real system may have placed another reservation right
    // next to it, the simulated one never does, and the outcomes would
    // differ for reasons of layout alone.
    let locate = |s: Slot| -> (usize, usize, usize) {
        let (base, n_pages) = if live.is_empty() {
            (nowhere, MAX_PAGES)
        } else {
            let (b, l) = live[usize::from(s.slot) % live.len()];
            (b, l / page)
        };
        let addr = base + usize::from(s.page) % n_pages * page + usize::from(s.skew % 2);
        let len = usize::from(s.pages % (MAX_PAGES as u8 + 1)) * page;
        (base, addr, len)
    };
    let (base, r) = match op {
        ArenaOp::Reserve { pages } | ArenaOp::ReserveMisaligned { pages } => {
            if live.len() >= MAX_LIVE {
                return OpOutcome::Ok;
            }
            let len = match op {
                ArenaOp::Reserve { .. } => usize::from(pages % (MAX_PAGES as u8 + 1)) * page,
                _ => (usize::from(pages % MAX_PAGES as u8) + 1) * page - 1,
            };
            match os.reserve(None, len) {
                Ok(b) => {
                    live.push((b, len));
                    (b, Ok(()))
                }
                Err(e) => (0, Err(e)),
            }
        }
        ArenaOp::ReserveAtTaken(s) => {
            let (base, addr, len) = locate(s);
            let inside = live.iter().any(|&(b, l)| b == base && addr < b + l);
            // Only calls that overlap a live reservation: elsewhere the real
            // system may well succeed where the simulation cannot.
            if !inside || addr % page != 0 || len == 0 {
                return OpOutcome::Ok;
            }
            match os.reserve_at(addr, len) {
                Ok(b) => {
                    // Not expected: keep it so that it is freed later.
                    live.push((b, len));
                    (base, Ok(()))
                }
                Err(e) => (base, Err(e)),
            }
        }
        ArenaOp::Map(s) => {
            let (base, addr, len) = locate(s);
            (base, os.map(addr, len))
        }
        ArenaOp::Used(s) => {
            let (base, addr, len) = locate(s);
            (base, os.used(addr, len))
        }
        ArenaOp::Unused(s, lazy) => {
            let (base, addr, len) = locate(s);
            let mode = if lazy {
                ReleaseMode::Free
            } else {
                ReleaseMode::DontNeed
            };
            // SAFETY:
            // - `os` belongs to `run`: nothing relies on any of its memory.
            (base, unsafe { os.unused(addr, len, mode) })
        }
        ArenaOp::Fault(s) => {
            let (base, addr, len) = locate(s);
            // SAFETY:
            // - `os` belongs to `run`: nothing relies on any of its memory.
            (base, unsafe { os.fault(addr, len) })
        }
        ArenaOp::Free(s, whole) => {
            let (base, addr, len) = locate(s);
            let (addr, len) = match live.iter().find(|r| r.0 == base) {
                Some(&(b, l)) if whole => (b, l),
                _ => (addr, len),
            };
            // SAFETY:
            // - `os` belongs to `run`: nothing relies on any of its memory.
            let r = unsafe { os.free(addr, len) };
            if r.is_ok() {
                live.retain(|&(b, _)| b != addr);
            }
            (base, r)
        }
        ArenaOp::AdviseHuge(s, a) => {
            let (base, addr, len) = locate(s);
            let advice = match a % 3 {
                0 => HugeAdvice::Huge,
                1 => HugeAdvice::NoHuge,
                _ => HugeAdvice::Collapse,
            };
            (base, os.advise_huge(addr, len, advice))
        }
    };
    normalize(r, base, page)
}

/// Makes an outcome comparable: addresses become page indexes relative to
/// `base`.
fn normalize(r: Result<(), Error>, base: usize, page: usize) -> OpOutcome {
    let e = match r {
        Ok(()) => return OpOutcome::Ok,
        Err(e) => e,
    };
    let (page, state, op) = match &e {
        Error::InvalidTransition { op, addr, state } => (
            Some(addr.wrapping_sub(base) / page),
            Some(*state),
            Some(*op),
        ),
        _ => (None, None, None),
    };
    let kind = match e {
        Error::AddressTaken { .. } => "AddressTaken",
        Error::Unsupported => "Unsupported",
        Error::ZeroLength => "ZeroLength",
        Error::Misaligned { .. } => "Misaligned",
        Error::Overflow { .. } => "Overflow",
        Error::NotReserved { .. } => "NotReserved",
        Error::NotWholeReservation { .. } => "NotWholeReservation",
        Error::InvalidTransition { .. } => "InvalidTransition",
        Error::Os { .. } => "Os",
        _ => "Other",
    };
    OpOutcome::Err {
        kind,
        page,
        state,
        op,
    }
}

/// The state of every page of every live reservation, in order, read with
/// `state_at` (an absolute address → state query).
pub fn page_states(
    live: &[(usize, usize)],
    page: usize,
    state_at: impl Fn(usize) -> PageState,
) -> Vec<Vec<PageState>> {
    live.iter()
        .map(|&(b, l)| {
            (0..l.div_ceil(page))
                .map(|i| state_at(b + i * page))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests;
