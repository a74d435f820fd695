//! The in-use address ranges (the heap memory grown so far), kept in an
//! [`AddrRanges`] whose nodes live in OS memory.
//!
//! The set's [`Storage`] is [`OsStorage`]: a reservation that starts with a
//! one-word header, the number of nodes committed so far, followed by the
//! node array:
//!
//! ```text
//! reservation: [count: usize][Node 0][Node 1] ... [Node count-1] | uncommitted
//! ```
//!
//! The storage cannot reach the [`Os`] (the allocator owns it), so it never
//! grows by itself: when the set asks for more nodes it reports
//! [`pageheap_ranges::Error::OutOfStorage`], the set stays unchanged, and
//! [`InUse::add`] commits more pages, bumps the header and tries again.
//!
//! The reservation is sized for the worst case of the geometry, capped at
//! [`MAX_RESERVATION`]; a heap so fragmented that its ranges outgrow the cap
//! gets an error from `grow`.

use core::marker::PhantomData;
use core::mem::{align_of, size_of};

use pageheap_arena::Os;
use pageheap_ranges::{AddrRange, AddrRanges, AddrSpace, Node, Storage};

use crate::geometry::Geometry;
use crate::meta::{align_up, MetaBytes, Region};
use crate::Error;

/// The largest reservation for range nodes: 64 MiB, about 100,000 nodes or
/// at least 1.6 million discontiguous ranges (6 TiB of heap in 4 MiB chunks
/// at the least).
pub(crate) const MAX_RESERVATION: usize = 64 << 20;

/// Where the node array starts in the reservation: after the header word,
/// aligned for `Node`.
const NODES_OFF: usize = if align_of::<Node>() > size_of::<usize>() {
    align_of::<Node>()
} else {
    size_of::<usize>()
};

/// Node storage in OS memory; see the module docs for the layout.
#[derive(Debug)]
pub(crate) struct OsStorage {
    /// The reservation's address; 0 for none.
    addr: usize,
}

impl OsStorage {
    /// The number of committed nodes, from the header.
    #[inline]
    fn count(&self) -> usize {
        if self.addr == 0 {
            return 0;
        }
        let p = core::ptr::with_exposed_provenance::<usize>(self.addr);
        // SAFETY:
        // - `InUse::new` commits the reservation's first page before it makes
        //   this storage, and it stays committed until `InUse::release`
        //   replaces the storage's address by 0; the page is aligned.
        // - Only `InUse::set_count` writes the header, through `&mut InUse`,
        //   so no write is concurrent with this read.
        unsafe { p.read() }
    }
}

impl Storage for OsStorage {
    fn nodes(&self) -> &[Node] {
        let n = self.count();
        if n == 0 {
            return &[];
        }
        let p = core::ptr::with_exposed_provenance::<Node>(self.addr + NODES_OFF);
        // SAFETY:
        // - The header counts only nodes in committed memory
        //   (`InUse::grow_storage` commits before it raises the count), and
        //   `NODES_OFF` keeps them aligned.
        // - Committed memory starts zeroed, which is a valid `Node` (all
        //   fields are integers), and is otherwise only written as nodes.
        // - The slice borrows `self`; mutable access needs `&mut self`.
        unsafe { core::slice::from_raw_parts(p, n) }
    }

    fn nodes_mut(&mut self) -> &mut [Node] {
        let n = self.count();
        if n == 0 {
            return &mut [];
        }
        let p = core::ptr::with_exposed_provenance_mut::<Node>(self.addr + NODES_OFF);
        // SAFETY:
        // - Valid, aligned and initialized as argued in `nodes`.
        // - `&mut self` makes this the only slice over the nodes; the header
        //   word lies before them and is not part of it.
        unsafe { core::slice::from_raw_parts_mut(p, n) }
    }

    fn try_grow(&mut self, min_len: usize) -> Result<(), pageheap_ranges::Error> {
        if min_len <= self.count() {
            Ok(())
        } else {
            Err(pageheap_ranges::Error::OutOfStorage { nodes: min_len })
        }
    }
}

/// A range as offsets, `(base, limit)`.
pub(crate) type OffRange = (usize, usize);

/// The in-use ranges of geometry `G`, in OS memory.
pub(crate) struct InUse<G> {
    set: AddrRanges<OsStorage>,
    region: Region,
    /// Bytes of `region` committed, from its start.
    committed: usize,
    _g: PhantomData<G>,
}

impl<G: Geometry> InUse<G> {
    /// The address order of geometry `G`.
    pub fn space() -> AddrSpace {
        AddrSpace::new(G::ARENA_BASE_OFFSET, G::HEAP_ADDR_BITS)
    }

    /// An empty set: reserves the node array and commits its first page.
    pub fn new<O: Os>(os: &O, acct: &mut MetaBytes) -> Result<Self, Error> {
        // Worst case: every other chunk grown, each its own range; the set
        // needs about n / 16 + n / 256 + 2 nodes for n ranges.
        let chunks = 1usize << (G::HEAP_ADDR_BITS - G::LOG_CHUNK_BYTES);
        let ranges = chunks / 2 + 1;
        let nodes = ranges / 16 + ranges / 256 + 8;
        let bytes = nodes
            .saturating_mul(size_of::<Node>())
            .saturating_add(NODES_OFF);
        let region = Region::reserve(os, bytes.min(MAX_RESERVATION), acct)?;
        let page = os.page_size();
        if let Err(e) = region.commit(os, 0, page, acct) {
            // SAFETY:
            // - The region was reserved by this function a moment ago and nothing
            //   has a pointer into it.
            unsafe { region.release(os) };
            acct.reserved -= region.len;
            return Err(e);
        }
        let mut this = InUse {
            set: AddrRanges::with_storage(Self::space(), OsStorage { addr: region.addr }),
            region,
            committed: page,
            _g: PhantomData,
        };
        this.set_count();
        Ok(this)
    }

    /// Writes the header: the nodes that fit in the committed bytes.
    fn set_count(&mut self) {
        let n = (self.committed - NODES_OFF) / size_of::<Node>();
        let p = core::ptr::with_exposed_provenance_mut::<usize>(self.region.addr);
        // SAFETY:
        // - The header is in the first page, committed by `new`, aligned.
        // - `&mut self`: no slice from `OsStorage::nodes` is live, and the
        //   header is outside the node array anyway.
        unsafe { p.write(n) };
    }

    /// Commits enough of the reservation for `min_nodes` nodes (at least
    /// doubling the committed bytes).
    fn grow_storage<O: Os>(
        &mut self,
        os: &O,
        min_nodes: usize,
        acct: &mut MetaBytes,
    ) -> Result<(), Error> {
        let full = || Error::Ranges(pageheap_ranges::Error::OutOfStorage { nodes: min_nodes });
        let want = min_nodes
            .checked_mul(size_of::<Node>())
            .and_then(|b| b.checked_add(NODES_OFF))
            .and_then(|b| align_up(b, os.page_size()))
            .ok_or_else(full)?;
        if want > self.region.len {
            return Err(full());
        }
        let to = want.max(self.committed * 2).min(self.region.len);
        self.region
            .commit(os, self.committed, to - self.committed, acct)?;
        self.committed = to;
        self.set_count();
        Ok(())
    }

    /// Adds the offset range `[base, limit)`, committing node memory as
    /// needed. The range must not overlap the set.
    ///
    /// # Errors
    ///
    /// The OS refused more node memory, or the reservation is full; the set
    /// is unchanged.
    pub fn add<O: Os>(
        &mut self,
        os: &O,
        base: usize,
        limit: usize,
        acct: &mut MetaBytes,
    ) -> Result<(), Error> {
        let r = AddrRange::new(to_addr::<G>(base), to_addr::<G>(limit));
        loop {
            match self.set.add(r) {
                Ok(()) => return Ok(()),
                Err(pageheap_ranges::Error::OutOfStorage { nodes }) => {
                    self.grow_storage(os, nodes, acct)?;
                }
                Err(e) => return Err(Error::Ranges(e)),
            }
        }
    }

    /// Whether the offset address `off` is in use.
    #[inline]
    pub fn contains_off(&self, off: usize) -> bool {
        self.set.contains(to_addr::<G>(off))
    }

    /// The in-use range holding offset `off`, as offsets.
    #[inline]
    pub fn range_containing_off(&self, off: usize) -> Option<(usize, usize)> {
        self.set
            .range_containing(to_addr::<G>(off))
            .map(to_offs::<G>)
    }

    /// The lowest in-use offset at or above `off`.
    #[inline]
    pub fn find_off_greater_equal(&self, off: usize) -> Option<usize> {
        self.set
            .find_addr_greater_equal(to_addr::<G>(off))
            .map(to_off::<G>)
    }

    /// Whether the offset range `[base, limit)` shares an address with the
    /// set.
    pub fn overlaps(&self, base: usize, limit: usize) -> bool {
        if self.contains_off(base) {
            return true;
        }
        match self.set.range_above(to_addr::<G>(base)) {
            Some(r) => to_off::<G>(r.base) < limit,
            None => false,
        }
    }

    /// The in-use ranges wholly below and wholly above offset `off`, the
    /// neighbours a new range at `off` would have, as offsets.
    pub fn neighbours(&self, off: usize) -> (Option<OffRange>, Option<OffRange>) {
        let a = to_addr::<G>(off);
        (
            self.set.range_below(a).map(to_offs::<G>),
            self.set.range_above(a).map(to_offs::<G>),
        )
    }

    /// The ranges in address order (real addresses).
    pub fn iter(&self) -> pageheap_ranges::Iter<'_, OsStorage> {
        self.set.iter()
    }

    /// The reservation as `(address, bytes)` and the bytes committed.
    pub fn memory(&self) -> (usize, usize, usize) {
        (self.region.addr, self.region.len, self.committed)
    }

    /// Gives the node memory back; the set is empty afterwards.
    ///
    /// # Safety
    /// Nothing reads the node memory afterwards; the set itself forgets it
    /// here.
    pub unsafe fn release<O: Os>(&mut self, os: &O, acct: &mut MetaBytes) {
        if self.region.len == 0 {
            return;
        }
        self.set = AddrRanges::with_storage(Self::space(), OsStorage { addr: 0 });
        // SAFETY:
        // - The set was just replaced by one over no memory, and the caller
        //   promised that nothing else reads the nodes.
        unsafe { self.region.release(os) };
        acct.reserved -= self.region.len;
        acct.mapped -= self.committed;
        self.region = Region::default();
        self.committed = 0;
    }
}

/// The real address of offset `off`.
#[inline]
fn to_addr<G: Geometry>(off: usize) -> usize {
    off.wrapping_add(G::ARENA_BASE_OFFSET)
}

/// The offset of address `addr`.
#[inline]
fn to_off<G: Geometry>(addr: usize) -> usize {
    addr.wrapping_sub(G::ARENA_BASE_OFFSET)
}

/// A range's bounds as offsets. A range ending at the very top of the
/// address space has limit 0 in wrapping arithmetic only when the space
/// spans all of `usize`, which no geometry does.
#[inline]
fn to_offs<G: Geometry>(r: AddrRange) -> (usize, usize) {
    (to_off::<G>(r.base), to_off::<G>(r.limit))
}
