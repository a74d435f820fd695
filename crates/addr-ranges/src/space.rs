//! Offset address order ([`AddrSpace`]) and the half-open [`AddrRange`] whose
//! comparisons all go through it.

use core::cmp::Ordering;
use core::fmt;

use crate::Error;

/// How addresses are ordered: by their offset from a base address, with
/// wrapping arithmetic.
///
/// An address `a` sorts by `a.wrapping_sub(offset)`. `offset` is the address
/// that sorts lowest. [`AddrSpace::max_addr`] is the highest address a heap
/// can use, derived from the number of heap address bits as Go derives its
/// `maxOffAddr`; it is an inclusive bound that callers (the page allocator)
/// may use as a search limit. The set itself does not reject addresses above
/// it: any range that is non-empty in offset order can be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrSpace {
    offset: usize,
    max: usize,
}

impl AddrSpace {
    /// The x86-64 offset: the lowest address of the sign-extended upper
    /// half, so upper-half addresses sort below lower-half ones.
    #[cfg(target_pointer_width = "64")]
    pub const X86_64_OFFSET: usize = 0xffff_8000_0000_0000;

    /// A space in which `offset` sorts lowest and heaps use
    /// `heap_addr_bits` bits of offset space.
    ///
    /// The inclusive maximum address is
    /// `(2^heap_addr_bits - 1).wrapping_add(offset)`.
    ///
    /// # Panics
    ///
    /// If `heap_addr_bits` is 0 or larger than `usize::BITS`.
    #[must_use]
    pub const fn new(offset: usize, heap_addr_bits: u32) -> Self {
        assert!(
            heap_addr_bits > 0 && heap_addr_bits <= usize::BITS,
            "heap address bits out of range"
        );
        let span = usize::MAX >> (usize::BITS - heap_addr_bits);
        Self {
            offset,
            max: span.wrapping_add(offset),
        }
    }

    /// Plain address order over the whole of `usize`: offset 0, maximum
    /// `usize::MAX`.
    #[must_use]
    pub const fn flat() -> Self {
        Self::new(0, usize::BITS)
    }

    /// The x86-64 layout: offset [`AddrSpace::X86_64_OFFSET`] and 48 heap
    /// address bits, so the maximum address is `0x0000_7fff_ffff_ffff`.
    #[cfg(target_pointer_width = "64")]
    #[must_use]
    pub const fn x86_64() -> Self {
        Self::new(Self::X86_64_OFFSET, 48)
    }

    /// The address that sorts lowest (Go calls it `minOffAddr`).
    #[must_use]
    pub const fn offset(self) -> usize {
        self.offset
    }

    /// The lowest address in offset order; the same as [`AddrSpace::offset`].
    #[must_use]
    pub const fn min_addr(self) -> usize {
        self.offset
    }

    /// The highest heap address, inclusive (Go calls it `maxOffAddr`).
    #[must_use]
    pub const fn max_addr(self) -> usize {
        self.max
    }

    /// The position of `addr` in offset order.
    #[must_use]
    pub const fn to_offset(self, addr: usize) -> usize {
        addr.wrapping_sub(self.offset)
    }

    /// The address at position `off` in offset order.
    #[must_use]
    pub const fn from_offset(self, off: usize) -> usize {
        off.wrapping_add(self.offset)
    }

    /// Compares two addresses in offset order.
    #[must_use]
    pub fn compare(self, a: usize, b: usize) -> Ordering {
        self.to_offset(a).cmp(&self.to_offset(b))
    }

    /// The range's bounds in offset order, `(base, limit)`.
    pub(crate) const fn offsets(self, r: AddrRange) -> (usize, usize) {
        (self.to_offset(r.base), self.to_offset(r.limit))
    }

    /// The range with the given offset-order bounds.
    pub(crate) const fn range(self, base: usize, limit: usize) -> AddrRange {
        AddrRange::new(self.from_offset(base), self.from_offset(limit))
    }
}

/// The half-open address range `[base, limit)`.
///
/// The range is interpreted in an [`AddrSpace`]: it is empty when `base` is
/// not below `limit` in offset order. A range may therefore wrap around the
/// top of `usize` (for example `[usize::MAX - 0xfff, 0x1000)` under the
/// x86-64 offset), but never across the offset boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrRange {
    /// The first address of the range.
    pub base: usize,
    /// One past the last address of the range.
    pub limit: usize,
}

impl AddrRange {
    /// The range `[base, limit)`.
    #[must_use]
    pub const fn new(base: usize, limit: usize) -> Self {
        Self { base, limit }
    }

    /// The number of bytes in the range: 0 if empty in offset order.
    #[must_use]
    pub const fn size(self, space: AddrSpace) -> usize {
        let (b, l) = space.offsets(self);
        l.saturating_sub(b)
    }

    /// Whether the range holds no address in offset order.
    #[must_use]
    pub const fn is_empty(self, space: AddrSpace) -> bool {
        self.size(space) == 0
    }

    /// Whether `base <= addr < limit` in offset order.
    #[must_use]
    pub const fn contains(self, space: AddrSpace, addr: usize) -> bool {
        let (b, l) = space.offsets(self);
        let a = space.to_offset(addr);
        b <= a && a < l
    }

    /// This range minus `other`, when the result is a single range.
    ///
    /// The ranges may be disjoint, overlap on one side, or `other` may cover
    /// this range (the result is then empty, at `self.base`). An empty
    /// `other` removes nothing. Go calls this `subtract`.
    ///
    /// # Errors
    ///
    /// [`Error::StrictSplit`] if `other` is non-empty and lies strictly
    /// inside this range, so that the difference is two ranges.
    pub fn subtract(self, space: AddrSpace, other: AddrRange) -> Result<AddrRange, Error> {
        let (b, l) = space.offsets(self);
        let (ob, ol) = space.offsets(other);
        if b >= l || ob >= ol {
            return Ok(self);
        }
        if ob <= b && l <= ol {
            Ok(AddrRange::new(self.base, self.base))
        } else if b < ob && ol < l {
            Err(Error::StrictSplit { range: self, other })
        } else if ob <= b && ol > b {
            Ok(AddrRange::new(other.limit, self.limit))
        } else if ob < l && ol >= l {
            Ok(AddrRange::new(self.base, other.base))
        } else {
            Ok(self)
        }
    }

    /// The part of this range below `addr` in offset order: empty (at
    /// `self.base`) if `addr <= base`, unchanged if `limit <= addr`, else
    /// `[base, addr)`.
    #[must_use]
    pub const fn remove_greater_equal(self, space: AddrSpace, addr: usize) -> AddrRange {
        let (b, l) = space.offsets(self);
        let a = space.to_offset(addr);
        if a <= b {
            AddrRange::new(self.base, self.base)
        } else if l <= a {
            self
        } else {
            AddrRange::new(self.base, addr)
        }
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.base, self.limit)
    }
}
