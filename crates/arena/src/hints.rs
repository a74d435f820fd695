//! [`ArenaHints`]: where the heap asks for its next arena (Go's arena hint
//! list, `mheap.sysAlloc`).
//!
//! On 64-bit targets the heap starts at recognisable addresses in the middle
//! of the address space (`0x00c0 << 32`, then `1 << 40` higher, and so on) so
//! it can grow contiguously. Each hint is tried exactly, without clobbering;
//! a hint that fails is dropped. When none is left the arena goes anywhere,
//! aligned, and two hints growing up and down from it are pushed so the next
//! arenas land next to it.
//!
//! The list is a fixed-capacity ring inline in the value ([`MAX_HINTS`]), so
//! reserving an arena never allocates from the global heap.

use crate::consts::{HEAP_ADDR_BITS, HEAP_ARENA_BYTES};
use crate::os::Os;
use crate::reservation::Reservation;
use crate::Error;

/// Which way a [`Hint`] grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The next arena starts at the hint; the hint moves up past it.
    Up,
    /// The next arena ends at the hint; the hint moves down to its start.
    Down,
}

/// One candidate address for the next arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hint {
    /// The address: the start of the next arena when growing up, its end
    /// when growing down.
    pub addr: usize,
    /// Which way the hint grows.
    pub dir: Direction,
}

/// How many hints an [`ArenaHints`] holds: Go's full 64-bit ladder (0x80
/// hints: the regular heap's 0x40 and the user arenas' 0x40) plus the two a
/// fallback reservation pushes.
///
/// [`ArenaHints::from_hints`] keeps only the first `MAX_HINTS` hints it is
/// given; when a fallback pushes two hints onto a full list, the hints at
/// the back (the oldest, tried last) are dropped to make room.
pub const MAX_HINTS: usize = 0x80 + 2;

/// An ordered list of arena hints, tried front to back; at most
/// [`MAX_HINTS`] of them, stored inline.
#[derive(Clone)]
pub struct ArenaHints {
    /// A ring: the hints are `buf[head]`, `buf[head + 1]`, ... (modulo
    /// `MAX_HINTS`), `len` of them.
    buf: [Hint; MAX_HINTS],
    head: usize,
    len: usize,
    arena_bytes: usize,
    addr_limit: usize,
}

impl core::fmt::Debug for ArenaHints {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ArenaHints")
            .field("hints", &HintList(self))
            .field("arena_bytes", &self.arena_bytes)
            .field("addr_limit", &self.addr_limit)
            .finish()
    }
}

/// The live hints of an [`ArenaHints`], for `Debug`.
struct HintList<'a>(&'a ArenaHints);

impl core::fmt::Debug for HintList<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

/// The filler of unused ring slots.
const NO_HINT: Hint = Hint {
    addr: 0,
    dir: Direction::Up,
};

/// The high bits of the regular heap's hints on 64-bit targets.
#[cfg(target_pointer_width = "64")]
const HEAP_HINT_PREFIX: usize = 0x00c0 << 32;
/// The high bits of the regular heap's hints on arm64 (Go's choice there).
#[cfg(target_pointer_width = "64")]
const ARM64_HINT_PREFIX: usize = 0x0040 << 32;

impl ArenaHints {
    /// The hints the heap uses on this target:
    /// [`ladder_64`](Self::ladder_64) with the arm64 prefix on arm64 and the
    /// default prefix on other 64-bit targets; on 32-bit targets one hint
    /// just past the program's static data
    /// ([`after_static_data`](Self::after_static_data)); none on Wasm, whose
    /// memory only grows at its end.
    pub fn for_target() -> Self {
        #[cfg(all(target_pointer_width = "64", not(target_family = "wasm")))]
        {
            let prefix = if cfg!(target_arch = "aarch64") {
                ARM64_HINT_PREFIX
            } else {
                HEAP_HINT_PREFIX
            };
            Self::ladder_64(prefix)
        }
        #[cfg(all(not(target_pointer_width = "64"), not(target_family = "wasm")))]
        {
            Self::after_static_data()
        }
        #[cfg(target_family = "wasm")]
        {
            Self::anywhere()
        }
    }

    /// Go's 64-bit regular-heap ladder: `i << 40 | prefix` for `i` in
    /// `0..0x40`, in that order, growing up. (Go keeps `0x40..0x80` for user
    /// arenas.) The default prefix is `0x00c0 << 32`, arm64's `0x0040 << 32`.
    #[cfg(target_pointer_width = "64")]
    pub fn ladder_64(prefix: usize) -> Self {
        Self::from_hints((0..0x40).map(|i| Hint {
            addr: i << 40 | prefix,
            dir: Direction::Up,
        }))
    }

    /// One hint just past this crate's static data, rounded up to an arena
    /// boundary: the 32-bit behaviour, where the heap should start right
    /// after the program image (Go also skips its `brk` area; 256 KiB are
    /// left free for it here).
    pub fn after_static_data() -> Self {
        static MARK: u8 = 0;
        let mark = (&raw const MARK).addr();
        let addr = mark
            .saturating_add(256 << 10)
            .checked_next_multiple_of(HEAP_ARENA_BYTES)
            .unwrap_or(0);
        Self::from_hints((addr != 0).then_some(Hint {
            addr,
            dir: Direction::Up,
        }))
    }

    /// No hints: every arena goes anywhere (until the first one pushes its
    /// neighbours as hints).
    pub fn anywhere() -> Self {
        Self::from_hints(None)
    }

    /// The given hints, tried in order, with [`HEAP_ARENA_BYTES`] arenas.
    /// Only the first [`MAX_HINTS`] are kept.
    pub fn from_hints(hints: impl IntoIterator<Item = Hint>) -> Self {
        let addr_limit = if HEAP_ADDR_BITS >= usize::BITS {
            usize::MAX
        } else {
            1 << HEAP_ADDR_BITS
        };
        let mut buf = [NO_HINT; MAX_HINTS];
        let mut len = 0;
        for (slot, h) in buf.iter_mut().zip(hints) {
            *slot = h;
            len += 1;
        }
        Self {
            buf,
            head: 0,
            len,
            arena_bytes: HEAP_ARENA_BYTES,
            addr_limit,
        }
    }

    /// Uses arenas of `bytes` instead of [`HEAP_ARENA_BYTES`] (e.g. small ones
    /// for tests over a simulated OS).
    ///
    /// # Panics
    /// If `bytes` is not a power of two.
    #[must_use]
    pub fn with_arena_bytes(mut self, bytes: usize) -> Self {
        assert!(
            bytes.is_power_of_two(),
            "arena size {bytes:#x} is not a power of two"
        );
        self.arena_bytes = bytes;
        self
    }

    /// Only hands out arenas ending at or below `limit` (default
    /// `1 << HEAP_ADDR_BITS`); hints beyond it are skipped.
    #[must_use]
    pub fn with_addr_limit(mut self, limit: usize) -> Self {
        self.addr_limit = limit;
        self
    }

    /// The arena size requests are rounded up to.
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes
    }

    /// The remaining hints, in the order they will be tried.
    pub fn iter(&self) -> impl Iterator<Item = &Hint> + '_ {
        (0..self.len).map(|i| &self.buf[(self.head + i) % MAX_HINTS])
    }

    /// The hint tried next.
    pub(crate) fn front_mut(&mut self) -> Option<&mut Hint> {
        (self.len > 0).then(|| &mut self.buf[self.head])
    }

    /// Drops the hint tried next.
    pub(crate) fn pop_front(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % MAX_HINTS;
            self.len -= 1;
        }
    }

    /// Puts `h` in front, dropping the back hint if the list is full.
    pub(crate) fn push_front(&mut self, h: Hint) {
        if self.len == MAX_HINTS {
            self.len -= 1;
        }
        self.head = (self.head + MAX_HINTS - 1) % MAX_HINTS;
        self.buf[self.head] = h;
        self.len += 1;
    }

    /// Reserves `n` bytes rounded up to whole arenas, arena-aligned: at the
    /// first hint that works (dropping those that do not), else anywhere,
    /// after which hints growing up from its end and down from its start are
    /// put in front.
    ///
    /// # Errors
    /// `n` is zero; the OS refused the fallback reservation; or the result
    /// lies beyond the address limit ([`Error::Overflow`]).
    pub fn reserve_arena<'a, O: Os>(
        &mut self,
        os: &'a O,
        n: usize,
    ) -> Result<Reservation<'a, O>, Error> {
        if n == 0 {
            return Err(Error::ZeroLength);
        }
        let n = n
            .checked_next_multiple_of(self.arena_bytes)
            .ok_or(Error::Overflow { addr: 0, len: n })?;
        let limit = self.addr_limit;
        while let Some(hint) = self.front_mut() {
            let start = match hint.dir {
                Direction::Up => Some(hint.addr),
                Direction::Down => hint.addr.checked_sub(n),
            };
            let fits = start.filter(|&p| p.checked_add(n).is_some_and(|end| end <= limit));
            if let Some(p) = fits {
                if let Ok(res) = Reservation::at(os, p, n) {
                    if hint.dir == Direction::Up {
                        hint.addr = p + n;
                    } else {
                        hint.addr = p;
                    }
                    return Ok(res);
                }
            }
            self.pop_front();
        }
        let res = Reservation::aligned(os, n, self.arena_bytes)?;
        let (base, end) = (res.base(), res.end());
        if end > self.addr_limit {
            return Err(Error::Overflow { addr: base, len: n });
        }
        self.push_front(Hint {
            addr: base,
            dir: Direction::Down,
        });
        self.push_front(Hint {
            addr: end,
            dir: Direction::Up,
        });
        Ok(res)
    }
}
