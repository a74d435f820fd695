//! Compile-time address-space geometry: page and chunk sizes, the height and
//! fan-out of the summary tree, and the sparse chunk map's split.
//!
//! A [`Geometry`] names five free parameters (page shift, chunk pages, heap
//! address bits, arena base offset, summary levels); everything else is
//! derived from them as `const` expressions and cross-checked by const
//! assertions, so an inconsistent geometry fails to compile instead of
//! corrupting summaries at run time. Ready-made
//! geometries cover the Go runtime's 64-bit and 32-bit layouts, the x86-64
//! arena offset, 4 KiB pages and 57-bit (5-level paging) address spaces.

#[cfg(test)]
mod tests;

use core::fmt::Debug;

/// The shape of the address space the allocator manages.
///
/// Implementors set the five required constants; the derived constants have
/// correct default definitions and should not be overridden (if they are,
/// const assertions reject inconsistent values).
///
/// Every method here, and every geometry-generic function of the crate's
/// chunk and summary modules, evaluates those assertions, so an invalid
/// geometry is a compile error at its first use.
pub trait Geometry: Copy + Default + Debug + Send + Sync + 'static {
    /// log2 of the page size in bytes (13 for 8 KiB pages).
    const PAGE_SHIFT: u32;
    /// log2 of the pages in a chunk. Only 9 (512 pages, eight 64-bit bitmap
    /// words) is supported, and a const assertion checks it.
    const LOG_CHUNK_PAGES: u32;
    /// Bits of address space the heap may occupy (48, 32, 57, ...).
    const HEAP_ADDR_BITS: u32;
    /// The address that maps to chunk index 0. Index arithmetic subtracts it
    /// with wraparound, so a sign-extended address space (x86-64's upper
    /// half) becomes one linear range. Must be chunk-aligned.
    const ARENA_BASE_OFFSET: usize;
    /// Height of the summary radix tree (5 on 64-bit, 4 on 32-bit; at least 2).
    const SUMMARY_LEVELS: usize;

    /// Radix bits of every level below the root (fan-out 8: eight 8-byte
    /// summaries fill one 64-byte cache line).
    const SUMMARY_LEVEL_BITS: u32 = 3;
    /// Bytes in a page.
    const PAGE_BYTES: usize = 1 << Self::PAGE_SHIFT;
    /// Pages in a chunk (the unit of the leaf summaries and bitmaps).
    const CHUNK_PAGES: usize = 1 << Self::LOG_CHUNK_PAGES;
    /// log2 of the bytes in a chunk.
    const LOG_CHUNK_BYTES: u32 = Self::PAGE_SHIFT + Self::LOG_CHUNK_PAGES;
    /// Bytes in a chunk.
    const CHUNK_BYTES: usize = 1 << Self::LOG_CHUNK_BYTES;
    /// Radix bits consumed at the root level: what is left of the heap
    /// address bits after the chunk offset and the lower levels.
    const SUMMARY_L0_BITS: u32 = Self::HEAP_ADDR_BITS
        - Self::LOG_CHUNK_BYTES
        - (Self::SUMMARY_LEVELS as u32 - 1) * Self::SUMMARY_LEVEL_BITS;
    /// log2 of the pages a root summary covers, which is also the width of
    /// each packed summary field.
    const LOG_MAX_PACKED: u32 =
        Self::LOG_CHUNK_PAGES + (Self::SUMMARY_LEVELS as u32 - 1) * Self::SUMMARY_LEVEL_BITS;
    /// Pages a root summary covers: the largest value a summary field holds.
    const MAX_PACKED: usize = 1 << Self::LOG_MAX_PACKED;
    /// Index bits of the sparse chunk map's first level: 13 when the heap
    /// spans more than 32 bits, otherwise 0 (a single flat array).
    const CHUNKS_L1_BITS: u32 = if Self::HEAP_ADDR_BITS > 32 { 13 } else { 0 };
    /// Index bits of the sparse chunk map's second level.
    const CHUNKS_L2_BITS: u32 = Self::HEAP_ADDR_BITS - Self::LOG_CHUNK_BYTES - Self::CHUNKS_L1_BITS;
    /// The highest address of the heap address space, inclusive (an
    /// exclusive bound would overflow), in raw address terms: the top of the
    /// offset space plus the arena base offset, wrapping. Go calls this
    /// `maxOffAddr`.
    const MAX_OFF_ADDR: usize =
        (usize::MAX >> (usize::BITS - Self::HEAP_ADDR_BITS)).wrapping_add(Self::ARENA_BASE_OFFSET);

    /// Radix bits the summary level `l` adds: [`Geometry::SUMMARY_L0_BITS`]
    /// at the root, [`Geometry::SUMMARY_LEVEL_BITS`] below.
    ///
    /// # Panics
    ///
    /// If `l >= SUMMARY_LEVELS`.
    #[inline]
    fn level_bits(l: usize) -> u32 {
        check::<Self>();
        assert!(l < Self::SUMMARY_LEVELS, "summary level out of range");
        if l == 0 {
            Self::SUMMARY_L0_BITS
        } else {
            Self::SUMMARY_LEVEL_BITS
        }
    }

    /// How far an offset address is shifted right to give its summary index
    /// at level `l` (the leaf level's shift is [`Geometry::LOG_CHUNK_BYTES`]).
    ///
    /// # Panics
    ///
    /// If `l >= SUMMARY_LEVELS`.
    #[inline]
    fn level_shift(l: usize) -> u32 {
        check::<Self>();
        assert!(l < Self::SUMMARY_LEVELS, "summary level out of range");
        Self::HEAP_ADDR_BITS - Self::SUMMARY_L0_BITS - l as u32 * Self::SUMMARY_LEVEL_BITS
    }

    /// log2 of the pages one summary at level `l` covers.
    ///
    /// # Panics
    ///
    /// If `l >= SUMMARY_LEVELS`.
    #[inline]
    fn level_log_pages(l: usize) -> u32 {
        check::<Self>();
        assert!(l < Self::SUMMARY_LEVELS, "summary level out of range");
        Self::LOG_MAX_PACKED - l as u32 * Self::SUMMARY_LEVEL_BITS
    }

    /// Entries in the summary array of level `l` (enough to cover the whole
    /// heap address space).
    ///
    /// # Panics
    ///
    /// If `l >= SUMMARY_LEVELS`.
    #[inline]
    fn level_entries(l: usize) -> usize {
        check::<Self>();
        assert!(l < Self::SUMMARY_LEVELS, "summary level out of range");
        1 << (Self::SUMMARY_L0_BITS + l as u32 * Self::SUMMARY_LEVEL_BITS)
    }

    /// The index of the chunk holding `addr`: `(addr - ARENA_BASE_OFFSET) /
    /// CHUNK_BYTES`, the subtraction wrapping.
    #[inline]
    fn chunk_index(addr: usize) -> usize {
        check::<Self>();
        addr.wrapping_sub(Self::ARENA_BASE_OFFSET) >> Self::LOG_CHUNK_BYTES
    }

    /// The base address of chunk `ci`, the inverse of
    /// [`Geometry::chunk_index`].
    #[inline]
    fn chunk_base(ci: usize) -> usize {
        check::<Self>();
        (ci << Self::LOG_CHUNK_BYTES).wrapping_add(Self::ARENA_BASE_OFFSET)
    }

    /// The index within its chunk of the page holding `addr`.
    #[inline]
    fn chunk_page_index(addr: usize) -> usize {
        check::<Self>();
        // The base offset is chunk-aligned (checked), so it does not change
        // the offset within a chunk.
        (addr & (Self::CHUNK_BYTES - 1)) >> Self::PAGE_SHIFT
    }
}

/// Forces the const assertions on `G` (a no-op at run time). Kept outside
/// the trait so an implementation cannot override it.
#[inline(always)]
pub(crate) const fn check<G: Geometry>() {
    let () = Checked::<G>::OK;
}

/// Carrier of the per-geometry assertion constant.
struct Checked<G>(core::marker::PhantomData<G>);

impl<G: Geometry> Checked<G> {
    /// Evaluated once per geometry, at compile time.
    const OK: () = validate::<G>();
}

/// Checks the consistency of `G`'s constants.
const fn validate<G: Geometry>() {
    assert!(
        G::LOG_CHUNK_PAGES == 9,
        "only 512-page chunks are supported"
    );
    assert!(
        G::CHUNK_PAGES == crate::bits::CHUNK_WORDS * 64,
        "a chunk's bitmap must be CHUNK_WORDS words"
    );
    assert!(G::SUMMARY_LEVEL_BITS == 3, "the summary fan-out must be 8");
    assert!(
        G::SUMMARY_LEVELS >= 2,
        "the summary tree needs at least two levels"
    );
    assert!(G::PAGE_BYTES == 1 << G::PAGE_SHIFT);
    assert!(G::CHUNK_PAGES == 1 << G::LOG_CHUNK_PAGES);
    assert!(G::LOG_CHUNK_BYTES == G::PAGE_SHIFT + G::LOG_CHUNK_PAGES);
    assert!(G::CHUNK_BYTES == 1 << G::LOG_CHUNK_BYTES);
    assert!(
        G::HEAP_ADDR_BITS <= usize::BITS,
        "the heap must fit the address width"
    );
    assert!(
        G::HEAP_ADDR_BITS >= G::LOG_CHUNK_BYTES + (G::SUMMARY_LEVELS as u32 - 1) * 3,
        "the heap is too small for this many summary levels"
    );
    assert!(
        G::SUMMARY_L0_BITS
            == G::HEAP_ADDR_BITS - G::LOG_CHUNK_BYTES - (G::SUMMARY_LEVELS as u32 - 1) * 3,
        "SUMMARY_L0_BITS is inconsistent"
    );
    assert!(
        G::LOG_MAX_PACKED == G::LOG_CHUNK_PAGES + (G::SUMMARY_LEVELS as u32 - 1) * 3,
        "LOG_MAX_PACKED is inconsistent"
    );
    // The root summary must cover exactly what the fields can hold: the
    // root's log pages is LOG_MAX_PACKED, each lower level 3 less, and the
    // leaf level covers exactly one chunk.
    assert!(G::MAX_PACKED == 1 << G::LOG_MAX_PACKED);
    assert!(
        G::LOG_MAX_PACKED - (G::SUMMARY_LEVELS as u32 - 1) * 3 == G::LOG_CHUNK_PAGES,
        "the leaf level must cover one chunk"
    );
    assert!(
        G::SUMMARY_L0_BITS + (G::SUMMARY_LEVELS as u32 - 1) * 3 + G::LOG_CHUNK_BYTES
            == G::HEAP_ADDR_BITS,
        "the levels' radix bits must cover the heap address bits"
    );
    // Three fields plus the all-free flag bit must fit a u64.
    assert!(
        3 * G::LOG_MAX_PACKED < 64,
        "summary fields do not fit 63 bits"
    );
    let l1 = if G::HEAP_ADDR_BITS > 32 { 13 } else { 0 };
    assert!(G::CHUNKS_L1_BITS == l1, "CHUNKS_L1_BITS is inconsistent");
    assert!(
        G::CHUNKS_L1_BITS + G::CHUNKS_L2_BITS + G::LOG_CHUNK_BYTES == G::HEAP_ADDR_BITS,
        "the chunk map's bits must cover the heap address bits"
    );
    assert!(
        G::ARENA_BASE_OFFSET & (G::CHUNK_BYTES - 1) == 0,
        "the arena base offset must be chunk-aligned"
    );
    assert!(
        G::MAX_OFF_ADDR
            == (usize::MAX >> (usize::BITS - G::HEAP_ADDR_BITS)).wrapping_add(G::ARENA_BASE_OFFSET),
        "MAX_OFF_ADDR is inconsistent"
    );
}

/// Go's 64-bit layout: 8 KiB pages, 512-page (4 MiB) chunks, a 48-bit heap,
/// five summary levels, no arena offset (64-bit Unix-likes other than x86-64).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Hash)]
pub struct Go64;

/// [`Go64`] with the x86-64 arena base offset `0xffff_8000_0000_0000`, so
/// the sign-extended 48-bit space is one linear range.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Hash)]
pub struct Go64Amd64;

/// Go's 32-bit layout: 8 KiB pages, 512-page chunks, a 32-bit heap, four
/// summary levels.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Hash)]
pub struct Go32;

/// 4 KiB pages with 512-page (2 MiB) chunks over a 48-bit heap, five levels.
///
/// Reserves about 1.2 GiB of metadata address space up front (committed
/// only as the heap grows); see the crate docs' table of what each
/// geometry costs.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Hash)]
pub struct Pages4K;

/// 8 KiB pages and 512-page chunks over a 57-bit heap (x86-64 5-level
/// paging), five levels; the extra bits all go to the root level.
///
/// Needs a 64-bit target (the heap must fit `usize`).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Hash)]
pub struct La57;

impl Geometry for Go64 {
    const PAGE_SHIFT: u32 = 13;
    const LOG_CHUNK_PAGES: u32 = 9;
    const HEAP_ADDR_BITS: u32 = 48;
    const ARENA_BASE_OFFSET: usize = 0;
    const SUMMARY_LEVELS: usize = 5;
}

impl Geometry for Go64Amd64 {
    const PAGE_SHIFT: u32 = 13;
    const LOG_CHUNK_PAGES: u32 = 9;
    const HEAP_ADDR_BITS: u32 = 48;
    #[cfg(target_pointer_width = "64")]
    const ARENA_BASE_OFFSET: usize = 0xffff_8000_0000_0000;
    // On narrower targets the offset does not fit; this geometry is then only
    // a name, rejected by the width check as soon as it is used.
    #[cfg(not(target_pointer_width = "64"))]
    const ARENA_BASE_OFFSET: usize = 0;
    const SUMMARY_LEVELS: usize = 5;
}

impl Geometry for Go32 {
    const PAGE_SHIFT: u32 = 13;
    const LOG_CHUNK_PAGES: u32 = 9;
    const HEAP_ADDR_BITS: u32 = 32;
    const ARENA_BASE_OFFSET: usize = 0;
    const SUMMARY_LEVELS: usize = 4;
}

impl Geometry for Pages4K {
    const PAGE_SHIFT: u32 = 12;
    const LOG_CHUNK_PAGES: u32 = 9;
    const HEAP_ADDR_BITS: u32 = 48;
    const ARENA_BASE_OFFSET: usize = 0;
    const SUMMARY_LEVELS: usize = 5;
}

impl Geometry for La57 {
    const PAGE_SHIFT: u32 = 13;
    const LOG_CHUNK_PAGES: u32 = 9;
    const HEAP_ADDR_BITS: u32 = 57;
    const ARENA_BASE_OFFSET: usize = 0;
    const SUMMARY_LEVELS: usize = 5;
}

// The ready-made geometries are checked here, where they are defined, not
// only at their first use.
const _: () = check::<Go32>();
#[cfg(target_pointer_width = "64")]
const _: () = {
    check::<Go64>();
    check::<Go64Amd64>();
    check::<Pages4K>();
    check::<La57>();
};
