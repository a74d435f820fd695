//! Address space from the operating system, for a heap.
//!
//! ```toml
//! [dependencies]
//! pageheap-arena = "0.1"
//! ```
//!
//! This crate is the only door to the OS memory calls of the workspace:
//! `mmap`, `madvise`, `VirtualAlloc` and `memory.grow` appear in its `sys`
//! module and nowhere else. Upper layers are generic over the [`Os`] trait;
//! [`SystemOs`] implements it for the real system, [`BufferOs`] over memory
//! the caller supplies, and `sim::SimOs` (feature `sim`) over ordinary heap
//! memory for tests.
//!
//! # Model
//!
//! Every page of address space is in one of four [`PageState`]s, the model of
//! the Go runtime's memory layer (Go calls the operations `sysReserve`,
//! `sysMap`, `sysUsed`, `sysUnused`, `sysFault` and `sysFree`):
//!
//! ```text
//!            reserve            map              used
//!   None ─────────────► Reserved ────► Prepared ───────► Ready
//!     ▲                    ▲  ▲            ▲    unused      │
//!     │        free        │  └────────────┼────────────────┤ fault
//!     └────────────────────┴───────────────┴────────────────┘
//! ```
//!
//! * **Reserved**: owned address space; it costs no memory and no commit
//!   charge, and any access faults.
//! * **Prepared**: mapped but meant to be unbacked; reading it is not allowed.
//! * **Ready**: readable and writable.
//!
//! The legal transitions, checked per page by [`SystemOs`], by
//! [`Reservation`] and by the simulated OS alike:
//!
//! | operation | from | to |
//! |---|---|---|
//! | `map` | Reserved | Prepared |
//! | `used` | Prepared or Ready | Ready |
//! | `unused` | Ready | Prepared |
//! | `fault` | Prepared or Ready | Reserved |
//! | `free` | any, whole reservation only | None |
//! | `advise_huge` | Prepared or Ready | unchanged |
//!
//! Anything else is an [`Error::InvalidTransition`] naming the first page in
//! the wrong state, never undefined behaviour.
//!
//! [`Reservation`] is the safe handle upper layers hold: one reservation with
//! its own page states, accounting into shared [`MemStats`] counters (Go's
//! `sysMemStat`), freed on drop. [`ArenaHints`] reserves heap arenas at the
//! addresses Go's hint ladder prefers.
//!
//! # Example
//!
//! ```
//! use pageheap_arena::{PageState, ReleaseMode, Reservation, SystemOs};
//!
//! # #[cfg(miri)] // Miri cannot make `PROT_NONE` mappings.
//! # fn main() {}
//! # #[cfg(not(miri))]
//! # fn main() -> Result<(), pageheap_arena::Error> {
//! let os = SystemOs::new();
//! let page = pageheap_arena::Os::page_size(&os);
//! // 1 GiB of address space; it costs nothing until mapped.
//! let mut res = Reservation::new(&os, 1 << 30)?;
//! let base = res.base();
//! res.commit(base, 4 * page)?; // Reserved -> Prepared -> Ready
//! let p = core::ptr::with_exposed_provenance_mut::<u8>(base);
//! // SAFETY:
//! // - `commit` made `base..base + 4 * page` Ready, so it is valid for writes.
//! unsafe { p.write(7) };
//! // Giving memory back is `unsafe`: the caller promises nothing reads the
//! // old contents any more.
//! // SAFETY:
//! // - The one write above is not read again.
//! unsafe { res.release(base, 4 * page, ReleaseMode::DontNeed) }?; // Ready -> Prepared
//! assert_eq!(res.state(base), PageState::Prepared);
//! assert_eq!(res.stats().ready, 0);
//! # Ok(())
//! # }
//! ```
//!
//! # Crate features
//!
//! - `std` (default): [`OsError`] converts to and displays like
//!   [`std::io::Error`], and the page-state lock yields the thread while it
//!   waits. Without it the crate is `no_std` and does not even link
//!   `alloc`.
//! - `sim` (implies `std`): the [`sim`] module, a simulated OS over
//!   ordinary heap memory with fault injection, for tests. It is the only
//!   part of the crate that uses the global heap.
//!
//! # No global heap
//!
//! Nothing in this crate allocates from the global heap, so the layers above
//! can serve as a `#[global_allocator]`: the crate does not declare
//! `extern crate alloc` at all (without `std` it is provably `alloc`-free),
//! [`SystemOs`] and [`Reservation`] keep their tables and page states in
//! memory mapped from the OS for the purpose (see [`SideVec`], which upper
//! layers may use for their own books), and [`ArenaHints`] is a
//! fixed-capacity inline list.
#![cfg_attr(not(feature = "std"), no_std)]

mod buffer;
mod consts;
mod hints;
mod lock;
mod os;
mod reservation;
mod side;
#[cfg(feature = "sim")]
pub mod sim;
mod state;
mod stats;
mod sys;

use core::fmt;

pub use buffer::{BufferOs, MAX_BUFFER_RESERVATIONS};
pub use consts::{HEAP_ADDR_BITS, HEAP_ARENA_BYTES};
pub use hints::{ArenaHints, Direction, Hint, MAX_HINTS};
pub use os::{HugeAdvice, Os, ReleaseMode};
pub use reservation::Reservation;
pub use side::SideVec;
pub use state::PageState;
pub use stats::{MemStats, MemStatsSnapshot};
pub use sys::{os_huge_page_size, os_page_size, thread_cpu_time, SystemOs};

/// Errors from address-space operations.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The requested range overlaps an existing mapping.
    #[error("address range {addr:#x}+{len:#x} is already taken")]
    AddressTaken {
        /// Start of the requested range.
        addr: usize,
        /// Length of the requested range.
        len: usize,
    },
    /// The operation is not supported on this system.
    #[error("operation not supported on this system")]
    Unsupported,
    /// A length of zero was passed.
    #[error("length is zero")]
    ZeroLength,
    /// An address or length is not a multiple of the required alignment.
    #[error("address range {addr:#x}+{len:#x} is not aligned to {align:#x}")]
    Misaligned {
        /// Start of the requested range.
        addr: usize,
        /// Length of the requested range.
        len: usize,
        /// The alignment both must have.
        align: usize,
    },
    /// `addr + len` does not fit in the address space.
    #[error("address range {addr:#x}+{len:#x} overflows the address space")]
    Overflow {
        /// Start of the requested range.
        addr: usize,
        /// Length of the requested range.
        len: usize,
    },
    /// The range is not inside one reservation owned by this object.
    #[error("address range {addr:#x}+{len:#x} is not inside one reservation")]
    NotReserved {
        /// Start of the requested range.
        addr: usize,
        /// Length of the requested range.
        len: usize,
    },
    /// `free` was given a range that is not exactly one whole reservation.
    #[error("address range {addr:#x}+{len:#x} is not a whole reservation")]
    NotWholeReservation {
        /// Start of the requested range.
        addr: usize,
        /// Length of the requested range.
        len: usize,
    },
    /// A page of the range is in a state the operation does not accept.
    #[error("cannot {op} page {addr:#x}: it is {state}")]
    InvalidTransition {
        /// The operation that was refused.
        op: Op,
        /// The first page (lowest address) in a wrong state.
        addr: usize,
        /// That page's state.
        state: PageState,
    },
    /// The operating system refused.
    #[error("{op} failed")]
    Os {
        /// The system call that failed, e.g. `"mmap"`.
        op: &'static str,
        /// The OS error code.
        #[source]
        source: OsError,
    },
}

/// The operations of the [`Os`] trait, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// [`Os::reserve`] and [`Os::reserve_at`].
    Reserve,
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
    /// A read or write of the memory itself (checked by the simulated OS).
    Access,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Reserve => "reserve",
            Op::Map => "map",
            Op::Used => "use",
            Op::Unused => "release",
            Op::Fault => "fault",
            Op::Free => "free",
            Op::AdviseHuge => "advise huge pages on",
            Op::Access => "touch",
        })
    }
}

/// An error code from the operating system (`errno`, `GetLastError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OsError {
    code: i32,
}

impl OsError {
    /// `ENOMEM` on Unix: what the simulated OS reports for injected faults.
    pub const OUT_OF_MEMORY: OsError = OsError { code: 12 };

    /// Wraps a raw OS error code.
    pub const fn from_raw(code: i32) -> Self {
        Self { code }
    }

    /// The raw OS error code.
    pub const fn raw(self) -> i32 {
        self.code
    }
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        #[cfg(feature = "std")]
        {
            fmt::Display::fmt(&std::io::Error::from_raw_os_error(self.code), f)
        }
        #[cfg(not(feature = "std"))]
        {
            write!(f, "os error {}", self.code)
        }
    }
}

impl core::error::Error for OsError {}

#[cfg(feature = "std")]
impl From<OsError> for std::io::Error {
    fn from(e: OsError) -> Self {
        std::io::Error::from_raw_os_error(e.code)
    }
}

#[cfg(test)]
mod tests;

// The README's example is compiled and run as a doctest (natively: it
// reserves `PROT_NONE` address space from the real OS, which Miri cannot).
#[cfg(all(doctest, not(miri)))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
