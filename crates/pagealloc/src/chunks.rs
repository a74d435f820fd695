//! The sparse two-level chunk map: chunk index → that chunk's bitmaps, plus
//! the scavenger's per-chunk index bit and index entry.
//!
//! The first level is a flat array of second-level block addresses (0 =
//! absent), committed whole when the allocator is created. A second-level
//! block is reserved and committed from the [`Os`] the first time a grow
//! touches one of its chunks, and is never given back before the allocator
//! is dropped. A block is laid out as
//!
//! ```text
//! +-------------------------------+-------------------+------------------+------------------+
//! | ChunkData × 2^L2 (128 B each) | index: 2^L2 bits  | entries: 2^L2 u64| gaps: 2^L2 u64   |
//! +-------------------------------+-------------------+------------------+------------------+
//! ```
//!
//! so a chunk's bitmaps, its index bit, its index entry and its gap cache
//! are found with the same two loads. The bit is the policy-neutral "may
//! hold free, unscavenged pages" flag; the entry is a 64-bit word that only
//! index policies with per-chunk counts (go127) use; the gap cache holds,
//! per allocation-bitmap word, the longest free run inside the word (see
//! [`crate::chunk::GapCache`]).
//! Chunks inside a block that were never grown read as all free and
//! unscavenged (committed memory is zero); the allocator never hands them
//! out, because their summaries stay full (zero) and they lie outside the
//! in-use ranges.

use core::marker::PhantomData;
use core::mem::size_of;

use pageheap_arena::Os;

use crate::chunk::{ChunkData, GapCache};
use crate::geometry::Geometry;
use crate::meta::{MetaBytes, Region};
use crate::Error;

/// The chunk map for geometry `G`.
#[derive(Debug)]
pub(crate) struct ChunkMap<G> {
    /// The first level: `1 << CHUNKS_L1_BITS` block addresses.
    l1: Region,
    /// Bytes of one second-level block (page-rounded).
    block_bytes: usize,
    /// Number of second-level blocks allocated.
    blocks: usize,
    /// An exclusive upper bound on the chunk indices whose scavenge index bit
    /// is set, so the scavenger's downward scan starts where marks can be.
    marked_hi: usize,
    _g: PhantomData<G>,
}

impl<G: Geometry> ChunkMap<G> {
    const L2_ENTRIES: usize = 1 << G::CHUNKS_L2_BITS;
    const L1_ENTRIES: usize = 1 << G::CHUNKS_L1_BITS;
    /// Byte offset of the index bitmap inside a block.
    const MARKS_OFF: usize = Self::L2_ENTRIES * size_of::<ChunkData>();
    /// Byte offset of the index entries inside a block (8-aligned).
    const ENTRIES_OFF: usize = Self::MARKS_OFF + Self::L2_ENTRIES.div_ceil(64) * size_of::<u64>();
    /// Byte offset of the gap caches inside a block (8-aligned).
    const GAPS_OFF: usize = Self::ENTRIES_OFF + Self::L2_ENTRIES * size_of::<u64>();

    /// A map with no chunk; reserves and commits the first level.
    pub fn new<O: Os>(os: &O, acct: &mut MetaBytes) -> Result<Self, Error> {
        let l1_bytes = Self::L1_ENTRIES * size_of::<usize>();
        let l1 = Region::reserve(os, l1_bytes, acct)?;
        if let Err(e) = l1.commit(os, 0, l1.len, acct) {
            // SAFETY:
            // - The region was reserved by this function a moment ago and nothing
            //   has a pointer into it.
            unsafe { l1.release(os) };
            acct.reserved -= l1.len;
            return Err(e);
        }
        let gaps = Self::L2_ENTRIES * size_of::<GapCache>();
        let block_bytes = crate::meta::align_up(Self::GAPS_OFF + gaps, os.page_size())
            .ok_or(Error::Config("chunk map block size overflows"))?;
        Ok(Self {
            l1,
            block_bytes,
            blocks: 0,
            marked_hi: 0,
            _g: PhantomData,
        })
    }

    /// Bytes of one second-level block.
    pub fn block_bytes(&self) -> usize {
        self.block_bytes
    }

    /// The second-level block holding chunk `ci`, or 0 if absent.
    #[inline]
    fn block(&self, ci: usize) -> usize {
        let i = ci >> G::CHUNKS_L2_BITS;
        assert!(
            i < Self::L1_ENTRIES,
            "chunk index outside the address space"
        );
        let p = core::ptr::with_exposed_provenance::<usize>(self.l1.addr);
        // SAFETY:
        // - `new` committed the whole first level (`L1_ENTRIES` words at
        //   `l1.addr`, page-aligned hence aligned for `usize`) and it stays
        //   committed until `release`, which takes the map by value.
        // - `i < L1_ENTRIES`, checked above.
        unsafe { p.add(i).read() }
    }

    /// Whether chunk `ci`'s block exists (its bitmaps can be read).
    #[inline]
    pub fn has_block(&self, ci: usize) -> bool {
        self.block(ci) != 0
    }

    /// Makes sure chunk `ci`'s block exists. Returns whether a block was
    /// created.
    ///
    /// # Errors
    ///
    /// The OS refused; nothing changed.
    pub fn ensure<O: Os>(
        &mut self,
        os: &O,
        ci: usize,
        acct: &mut MetaBytes,
    ) -> Result<bool, Error> {
        if self.has_block(ci) {
            return Ok(false);
        }
        let r = Region::reserve(os, self.block_bytes, acct)?;
        if let Err(e) = r.commit(os, 0, r.len, acct) {
            // SAFETY:
            // - The region was reserved by this function a moment ago and nothing
            //   has a pointer into it.
            unsafe { r.release(os) };
            acct.reserved -= r.len;
            return Err(e);
        }
        let i = ci >> G::CHUNKS_L2_BITS;
        let p = core::ptr::with_exposed_provenance_mut::<usize>(self.l1.addr);
        // SAFETY:
        // - The first level is committed (see `block`) and `i < L1_ENTRIES`
        //   (`has_block` above asserted it).
        // - `&mut self` means no reference into the first level is live.
        unsafe { p.add(i).write(r.addr) };
        self.blocks += 1;
        Ok(true)
    }

    /// Chunk `ci`'s bitmaps, if its block exists.
    #[inline]
    pub fn try_get(&self, ci: usize) -> Option<&ChunkData> {
        let b = self.block(ci);
        if b == 0 {
            return None;
        }
        let off = (ci & (Self::L2_ENTRIES - 1)) * size_of::<ChunkData>();
        let p = core::ptr::with_exposed_provenance::<ChunkData>(b + off);
        // SAFETY:
        // - `b` is a block committed by `ensure` (its whole `block_bytes`),
        //   page-aligned, and live until `release` takes the map by value.
        // - `off + 128 <= MARKS_OFF <= block_bytes`: the entry is inside it,
        //   and aligned because `ChunkData` is an array of `u64`s.
        // - Committed memory starts zeroed and is only written as
        //   `ChunkData`, for which every bit pattern is valid.
        // - The returned reference borrows `self`, so no `&mut` to the same
        //   entry can be made while it lives.
        Some(unsafe { &*p })
    }

    /// Chunk `ci`'s bitmaps.
    ///
    /// # Panics
    ///
    /// If the chunk's block does not exist (an allocator bug: every grown
    /// chunk has one).
    #[inline]
    pub fn get(&self, ci: usize) -> &ChunkData {
        self.try_get(ci).expect("chunk map block missing")
    }

    /// Chunk `ci`'s bitmaps together with its gap cache, to bring the
    /// cache up to date while reading the bitmaps.
    ///
    /// # Panics
    ///
    /// As for [`ChunkMap::get`].
    #[inline]
    pub fn with_gaps(&mut self, ci: usize) -> (&ChunkData, &mut GapCache) {
        let b = self.block(ci);
        assert!(b != 0, "chunk map block missing");
        let i = ci & (Self::L2_ENTRIES - 1);
        let c = core::ptr::with_exposed_provenance::<ChunkData>(b + i * size_of::<ChunkData>());
        let g = core::ptr::with_exposed_provenance_mut::<GapCache>(
            b + Self::GAPS_OFF + i * size_of::<GapCache>(),
        );
        // SAFETY:
        // - Both lie in the committed block `b` (see `try_get`; the gap
        //   caches start at `GAPS_OFF`, 8-aligned, and hold `L2_ENTRIES`
        //   words within `block_bytes`), in disjoint parts of it, so the
        //   shared and the unique reference do not overlap.
        // - `GapCache` is a `u64` newtype: every bit pattern is valid.
        // - Both borrow `self` mutably, so no other reference into the map
        //   is live while they are.
        unsafe { (&*c, &mut *g) }
    }

    /// Chunk `ci`'s gap cache, if its block exists.
    #[inline]
    pub fn try_gaps(&self, ci: usize) -> Option<GapCache> {
        let b = self.block(ci);
        if b == 0 {
            return None;
        }
        let i = ci & (Self::L2_ENTRIES - 1);
        let g = core::ptr::with_exposed_provenance::<GapCache>(
            b + Self::GAPS_OFF + i * size_of::<GapCache>(),
        );
        // SAFETY: as in `with_gaps`; a plain read through `&self`.
        Some(unsafe { g.read() })
    }

    /// Chunk `ci`'s bitmaps, mutably.
    ///
    /// # Panics
    ///
    /// As for [`ChunkMap::get`].
    #[inline]
    pub fn get_mut(&mut self, ci: usize) -> &mut ChunkData {
        let b = self.block(ci);
        assert!(b != 0, "chunk map block missing");
        let off = (ci & (Self::L2_ENTRIES - 1)) * size_of::<ChunkData>();
        let p = core::ptr::with_exposed_provenance_mut::<ChunkData>(b + off);
        // SAFETY:
        // - Valid and aligned as argued in `try_get`.
        // - The reference borrows `self` mutably, so it is the only one to
        //   any chunk of this map while it lives.
        unsafe { &mut *p }
    }

    /// Pointer to the index word holding chunk `ci`'s bit; the block must
    /// exist.
    #[inline]
    fn mark_word(&self, ci: usize) -> Option<*mut u64> {
        let b = self.block(ci);
        if b == 0 {
            return None;
        }
        let w = (ci & (Self::L2_ENTRIES - 1)) / 64;
        Some(core::ptr::with_exposed_provenance_mut::<u64>(
            b + Self::MARKS_OFF + w * 8,
        ))
    }

    /// Sets chunk `ci`'s scavenge index bit ("may hold free, unscavenged
    /// pages"). Does nothing if the chunk has no block.
    #[inline]
    pub fn mark(&mut self, ci: usize) {
        if let Some(p) = self.mark_word(ci) {
            // SAFETY:
            // - `p` is inside a committed block: the index bitmap starts at
            //   `MARKS_OFF` and holds `L2_ENTRIES / 64` (rounded up) words,
            //   all within `block_bytes`; it is 8-aligned.
            // - `&mut self`: no reference to the word is live.
            unsafe { *p |= 1 << (ci % 64) };
            self.marked_hi = self.marked_hi.max(ci + 1);
        }
    }

    /// Clears chunk `ci`'s scavenge index bit.
    #[inline]
    pub fn unmark(&mut self, ci: usize) {
        if let Some(p) = self.mark_word(ci) {
            // SAFETY: as in `mark`.
            unsafe { *p &= !(1 << (ci % 64)) };
        }
    }

    /// Whether chunk `ci`'s scavenge index bit is set.
    #[inline]
    pub fn is_marked(&self, ci: usize) -> bool {
        match self.mark_word(ci) {
            // SAFETY: as in `mark`; a plain read through `&self`.
            Some(p) => unsafe { *p & (1 << (ci % 64)) != 0 },
            None => false,
        }
    }

    /// The highest chunk index at or above `lo` whose scavenge index bit is
    /// set. Lowers the internal upper bound as it goes, so repeated scans
    /// cost amortized O(chunks).
    pub fn highest_marked(&mut self, lo: usize) -> Option<usize> {
        let found = self.highest_marked_below(lo, self.marked_hi);
        self.marked_hi = match found {
            Some(f) => f + 1,
            None => lo.min(self.marked_hi),
        };
        found
    }

    /// The highest chunk index in `lo..hi` whose scavenge index bit is set,
    /// skipping absent blocks and whole empty index words.
    pub fn highest_marked_below(&self, lo: usize, hi: usize) -> Option<usize> {
        let mut hi = hi.min(self.marked_hi); // exclusive
        while hi > lo {
            let ci = hi - 1;
            let Some(p) = self.mark_word(ci) else {
                // No block: skip to the block's first chunk.
                hi = ci & !(Self::L2_ENTRIES - 1);
                continue;
            };
            // SAFETY: as in `mark`; a plain read.
            let word = unsafe { *p };
            // Bits of this word at or below `ci`.
            let below = word & (u64::MAX >> (63 - ci % 64));
            if below != 0 {
                let found = (ci & !63) + 63 - below.leading_zeros() as usize;
                return (found >= lo).then_some(found);
            }
            hi = ci & !63;
        }
        None
    }

    /// Pointer to chunk `ci`'s index entry, if its block exists.
    #[inline]
    fn entry_ptr(&self, ci: usize) -> Option<*mut u64> {
        let b = self.block(ci);
        if b == 0 {
            return None;
        }
        let i = ci & (Self::L2_ENTRIES - 1);
        Some(core::ptr::with_exposed_provenance_mut::<u64>(
            b + Self::ENTRIES_OFF + i * 8,
        ))
    }

    /// Chunk `ci`'s index entry (0 for a chunk without a block or never
    /// written).
    #[inline]
    pub fn entry(&self, ci: usize) -> u64 {
        match self.entry_ptr(ci) {
            // SAFETY:
            // - The entries start at `ENTRIES_OFF` (8-aligned, after the
            //   index bits) and hold `L2_ENTRIES` words, all within the
            //   committed `block_bytes` that `new` sized for them.
            // - A plain read through `&self`: no `&mut` to it is live.
            Some(p) => unsafe { p.read() },
            None => 0,
        }
    }

    /// Sets chunk `ci`'s index entry. Does nothing if the chunk has no
    /// block.
    #[inline]
    pub fn set_entry(&mut self, ci: usize, v: u64) {
        if let Some(p) = self.entry_ptr(ci) {
            // SAFETY: as in `entry`; `&mut self` means no reference to the
            // word is live.
            unsafe { p.write(v) };
        }
    }

    /// The first level's reservation as `(address, bytes)`.
    pub fn l1_region(&self) -> (usize, usize) {
        (self.l1.addr, self.l1.len)
    }

    /// The address of the second-level block holding chunk `ci`, or 0 if
    /// it has none.
    pub fn block_addr(&self, ci: usize) -> usize {
        self.block(ci)
    }

    /// The number of second-level blocks allocated.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// Gives every block and the first level back to the OS.
    ///
    /// # Safety
    /// Nothing reads the map's memory afterwards (no pointer from
    /// [`ChunkMap::get`] or a block address is used again).
    pub unsafe fn release<O: Os>(&mut self, os: &O) {
        if self.l1.len == 0 {
            return;
        }
        for i in 0..Self::L1_ENTRIES {
            let b = self.block(i << G::CHUNKS_L2_BITS);
            if b != 0 {
                let block = Region {
                    addr: b,
                    len: self.block_bytes,
                };
                // SAFETY:
                // - `b` is a block `ensure` reserved whole; the caller
                //   promised that nothing reads the map any more.
                unsafe { block.release(os) };
            }
        }
        // SAFETY:
        // - The first level was reserved by `new`; the caller promised that
        //   nothing reads the map any more, and it is forgotten next.
        unsafe { self.l1.release(os) };
        self.l1 = Region::default();
    }
}
