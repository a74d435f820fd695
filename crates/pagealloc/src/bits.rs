//! One bit per page of a chunk, and the word-level bit tricks the chunk
//! searches are built from.
//!
//! [`PageBits`] is eight `u64` words: page `i` is bit `i % 64` of word
//! `i / 64`. The same type holds a chunk's allocation bits (1 = in use) and
//! its scavenged bits (1 = released to the OS); the searches over allocation
//! bits live in [`crate::chunk`].
//!
//! Go's shifts by 64 or more yield 0; Rust's panic (debug) or wrap
//! (release). Every mask here is built by `low_mask`, which never shifts
//! by the full width.

#[cfg(test)]
mod tests;

/// Words in a chunk bitmap: 512 pages of one bit each.
pub const CHUNK_WORDS: usize = 8;

/// Bits in a chunk bitmap.
const CHUNK_BITS: usize = CHUNK_WORDS * 64;

/// A chunk's bitmap, one bit per page.
///
/// ```text
/// word:   0                 1                       7
/// bits:  [63 ........... 0][127 ......... 64] ... [511 ....... 448]
///          page i = word i / 64, bit i % 64
/// ```
///
/// Indices passed to the methods are page indices within the chunk,
/// `0..512`; ranges are `[i, i + n)`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct PageBits(pub [u64; CHUNK_WORDS]);

impl PageBits {
    /// Whether bit `i` is set.
    ///
    /// # Panics
    ///
    /// If `i >= 512`.
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    /// Sets bit `i`.
    ///
    /// # Panics
    ///
    /// If `i >= 512`.
    #[inline]
    pub fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    /// Clears bit `i`.
    ///
    /// # Panics
    ///
    /// If `i >= 512`.
    #[inline]
    pub fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }

    /// Sets bits `[i, i + n)`; `n == 0` does nothing.
    ///
    /// # Panics
    ///
    /// If the range does not fit in the chunk.
    #[inline]
    pub fn set_range(&mut self, i: usize, n: usize) {
        for (w, m) in word_masks(i, n) {
            self.0[w] |= m;
        }
    }

    /// Clears bits `[i, i + n)`; `n == 0` does nothing.
    ///
    /// # Panics
    ///
    /// If the range does not fit in the chunk.
    #[inline]
    pub fn clear_range(&mut self, i: usize, n: usize) {
        for (w, m) in word_masks(i, n) {
            self.0[w] &= !m;
        }
    }

    /// Sets every bit.
    #[inline]
    pub fn set_all(&mut self) {
        self.0 = [u64::MAX; CHUNK_WORDS];
    }

    /// Clears every bit.
    #[inline]
    pub fn clear_all(&mut self) {
        self.0 = [0; CHUNK_WORDS];
    }

    /// The number of set bits in `[i, i + n)`.
    ///
    /// # Panics
    ///
    /// If the range does not fit in the chunk.
    #[inline]
    pub fn popcnt_range(&self, i: usize, n: usize) -> usize {
        let mut x = [0u64; CHUNK_WORDS];
        for (w, m) in word_masks(i, n) {
            x[w] = self.0[w] & m;
        }
        popcount8(&x)
    }

    /// Whether every bit of `[i, i + n)` is set.
    ///
    /// # Panics
    ///
    /// If the range does not fit in the chunk.
    #[inline]
    pub fn all_set(&self, i: usize, n: usize) -> bool {
        word_masks(i, n).all(|(w, m)| self.0[w] & m == m)
    }

    /// Whether no bit of `[i, i + n)` is set.
    ///
    /// # Panics
    ///
    /// If the range does not fit in the chunk.
    #[inline]
    pub fn none_set(&self, i: usize, n: usize) -> bool {
        word_masks(i, n).all(|(w, m)| self.0[w] & m == 0)
    }

    /// The 64-bit word holding bit `i`: bits `i & !63 .. (i & !63) + 64`.
    ///
    /// # Panics
    ///
    /// If `i >= 512`.
    #[inline]
    pub fn block64(&self, i: usize) -> u64 {
        self.0[i / 64]
    }

    /// ORs `v` into the word holding bit `i`.
    ///
    /// # Panics
    ///
    /// If `i >= 512`.
    #[inline]
    pub fn set_block64(&mut self, i: usize, v: u64) {
        self.0[i / 64] |= v;
    }

    /// Clears the bits of `v` in the word holding bit `i`.
    ///
    /// # Panics
    ///
    /// If `i >= 512`.
    #[inline]
    pub fn clear_block64(&mut self, i: usize, v: u64) {
        self.0[i / 64] &= !v;
    }

    /// The number of set bits in the whole bitmap.
    #[inline]
    pub fn count_ones(&self) -> usize {
        popcount8(&self.0)
    }

    /// The underlying words.
    #[inline]
    pub fn words(&self) -> &[u64; CHUNK_WORDS] {
        &self.0
    }
}

/// The set bits of eight words. On x86-64 builds without the `popcnt`
/// target feature (the default target), the instruction is used when the
/// CPU has it, found once with `cpuid`; the portable count takes about a
/// dozen instructions per word.
#[inline]
pub(crate) fn popcount8(x: &[u64; CHUNK_WORDS]) -> usize {
    #[cfg(all(target_arch = "x86_64", not(target_feature = "popcnt"), not(miri)))]
    {
        if x86::has_popcnt() {
            // SAFETY:
            // - `has_popcnt` read the CPU's feature bits: the instruction
            //   exists on this CPU.
            return unsafe { x86::popcount8(x) };
        }
    }
    x.iter().map(|w| w.count_ones() as usize).sum()
}

#[cfg(all(target_arch = "x86_64", not(target_feature = "popcnt"), not(miri)))]
mod x86 {
    use core::sync::atomic::{AtomicU8, Ordering};

    use super::CHUNK_WORDS;

    /// 0: not asked yet; 1: absent; 2: present.
    static POPCNT: AtomicU8 = AtomicU8::new(0);

    /// Whether the CPU has the `popcnt` instruction.
    #[inline]
    pub(super) fn has_popcnt() -> bool {
        match POPCNT.load(Ordering::Relaxed) {
            0 => ask(),
            v => v == 2,
        }
    }

    #[cold]
    fn ask() -> bool {
        // CPUID leaf 1, ECX bit 23: POPCNT. Leaf 1 exists on every x86-64
        // CPU.
        // `__cpuid` is an `unsafe fn` in the Rust releases this crate
        // supports from 1.88 on, and safe in newer ones.
        #[allow(unused_unsafe)]
        // SAFETY:
        // - The CPUID instruction exists on every x86-64 CPU and only reads
        //   identification registers.
        let leaf1 = unsafe { core::arch::x86_64::__cpuid(1) };
        let has = (leaf1.ecx >> 23) & 1 == 1;
        POPCNT.store(if has { 2 } else { 1 }, Ordering::Relaxed);
        has
    }

    /// # Safety
    /// The CPU has the `popcnt` instruction.
    #[target_feature(enable = "popcnt")]
    pub(super) unsafe fn popcount8(x: &[u64; CHUNK_WORDS]) -> usize {
        x.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// The words `[i, i + n)` touches, each with the mask of the range's bits
/// in it; nothing for `n == 0`.
///
/// # Panics
///
/// If the range does not fit in the chunk.
#[inline]
fn word_masks(i: usize, n: usize) -> impl Iterator<Item = (usize, u64)> {
    let end = i.checked_add(n).filter(|&e| e <= CHUNK_BITS);
    let end = end.expect("bit range past the end of the chunk");
    // An empty range gives the empty word range 1..=0.
    let (first, last) = if n == 0 {
        (1, 0)
    } else {
        (i / 64, (end - 1) / 64)
    };
    (first..=last).map(move |w| {
        // The range's bits within word w: [lo, hi), 0 <= lo < hi <= 64.
        let lo = if w == first { i % 64 } else { 0 };
        let hi = if w == last { (end - 1) % 64 + 1 } else { 64 };
        (w, low_mask((hi - lo) as u32) << lo)
    })
}

/// The mask of the low `n` bits, for `n` in `0..=64` (all ones for 64,
/// where `(1 << n) - 1` would overflow the shift).
#[inline]
pub(crate) const fn low_mask(n: u32) -> u64 {
    match u64::MAX.checked_shr(64 - n) {
        Some(m) if n > 0 => m,
        _ => 0,
    }
}

/// The index of the lowest run of `n` consecutive one bits in `c`, or a
/// value `>= 64` if there is none (always so for `n > 64`). Go calls this
/// `findBitRange64`.
///
/// Works in O(log n) shift-and steps: each step shortens every run of ones
/// from the top, doubling the shift as the zero gaps between runs grow, so
/// after removing `n - 1` bits from every run only the runs of length `>= n`
/// survive, each still marked at its original lowest bit.
///
/// # Panics
///
/// If `n == 0`.
#[inline]
pub fn find_bit_range64(mut c: u64, n: u32) -> u32 {
    assert!(n > 0, "find_bit_range64 of an empty run");
    if n > 64 {
        return 64;
    }
    // Bits still to strip from the top of every run of ones.
    let mut left = n - 1;
    // Every gap of zeros between runs is at least this long, so shifting by
    // up to `gap` cannot carry one run's bits into another.
    let mut gap = 1;
    while left > 0 {
        let s = left.min(gap);
        c &= c >> s; // s <= 63: n <= 64
        if c == 0 {
            return 64;
        }
        left -= s;
        gap *= 2;
    }
    c.trailing_zeros()
}

/// Returns `x` with every `m`-aligned group of `m` bits made all ones if any
/// bit in the group is set, all zeros otherwise. `fill_aligned(x, 1) == x`.
///
/// Go calls this `fillAligned`. The groups are handled in parallel (SWAR):
/// adding the lane's low-bits mask to the lane's low bits carries into the
/// lane's top bit exactly when one of them is set; ORing in `x` covers the
/// top bit itself. The top bits are then smeared down over their lanes.
///
/// ```
/// assert_eq!(pageheap_alloc::fill_aligned(0x0100a3, 8), 0xff00ff);
/// ```
///
/// # Panics
///
/// If `m` is not one of 1, 2, 4, 8, 16, 32, 64 ("bad m value").
#[inline]
pub fn fill_aligned(x: u64, m: u32) -> u64 {
    // Per lane: every bit except the lane's top bit.
    let low: u64 = match m {
        1 => return x,
        2 => 0x5555_5555_5555_5555,
        4 => 0x7777_7777_7777_7777,
        8 => 0x7f7f_7f7f_7f7f_7f7f,
        16 => 0x7fff_7fff_7fff_7fff,
        32 => 0x7fff_ffff_7fff_ffff,
        64 => 0x7fff_ffff_ffff_ffff,
        _ => panic!("bad m value"),
    };
    // The lane sums stay within their lanes: each is at most 2 * low.
    let top = (((x & low) + low) | x) & !low;
    // top >> (m - 1) puts a 1 at the bottom of every marked lane; the
    // difference fills the bits between, and `| top` restores the top bit.
    (top - (top >> (m - 1))) | top
}
