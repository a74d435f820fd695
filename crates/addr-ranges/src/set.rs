//! [`AddrRanges`]: the set itself, a B+-tree of ranges over a node pool.
//!
//! All ranges are kept as offset-order bounds, so inside the tree every
//! comparison is a plain integer comparison. Leaves hold ranges sorted by
//! base. Internal nodes hold, per child, the exact smallest base below it
//! (for routing) and the number of ranges below it (for rank queries). A
//! consequence of exact minimums is that the range before a search position
//! is always in the same leaf, which keeps `add` to one descent plus, at a
//! leaf's end, one step to the next leaf.
//!
//! The root leaf of a small set lives inline in the set itself, not in the
//! storage: a set of up to 32 ranges allocates nothing and every operation
//! on it is one binary search over one sorted array, the layout it replaces
//! costs at least that much. The first split moves that leaf into the
//! storage and the tree grows from there.
//!
//! Removals unlink nodes that become empty but never merge half-empty ones:
//! the tree's height is bounded by the largest size it ever reached, which
//! keeps every operation logarithmic without the code of a full rebalance.

use core::fmt;

use crate::node::{Node, CAP};
use crate::storage::Storage;
#[cfg(feature = "alloc")]
use crate::storage::VecStorage;
use crate::{AddrRange, AddrSpace, Error};

/// "No node": an empty tree's root and the end of the free list.
const NONE: u32 = u32::MAX;

/// The root leaf kept inline in [`Tree::inline`] rather than in the storage.
const INLINE: u32 = u32::MAX - 1;

/// Tree levels a path can record, leaf included. Growing a tree to this
/// height takes more than `16^14` additions, so the limit is never reached
/// in practice; it is still checked.
const MAX_LEVELS: usize = 16;

/// Largest node count: node indices are `u32`, and `NONE` and `INLINE` are
/// reserved.
const MAX_NODES: usize = INLINE as usize;

/// A sorted, disjoint, coalesced set of address ranges in offset order.
///
/// See the [crate documentation](crate) for the model. `S` is where the
/// tree's nodes live.
#[cfg(feature = "alloc")]
pub struct AddrRanges<S: Storage = VecStorage> {
    inner: Tree<S>,
}

/// A sorted, disjoint, coalesced set of address ranges in offset order.
///
/// See the [crate documentation](crate) for the model. `S` is where the
/// tree's nodes live.
#[cfg(not(feature = "alloc"))]
pub struct AddrRanges<S: Storage> {
    inner: Tree<S>,
}

/// The state behind [`AddrRanges`], split out so that the struct can carry
/// a default type parameter only when `VecStorage` exists.
struct Tree<S> {
    space: AddrSpace,
    storage: S,
    /// The root while it is a leaf that has never split: `root == INLINE`.
    inline: Node,
    root: u32,
    /// Internal levels above the leaves; a lone leaf root has height 0.
    height: usize,
    len: usize,
    total_bytes: usize,
    /// Nodes `[0, used)` have been handed out at least once.
    used: usize,
    free_head: u32,
    free_count: usize,
}

/// The route from the root to one leaf slot: `node[lv]` and the slot taken
/// in it, for `lv` in `0..=height` (the leaf is at `height`).
#[derive(Clone, Copy)]
struct Path {
    node: [u32; MAX_LEVELS],
    slot: [u8; MAX_LEVELS],
}

impl Path {
    const fn new() -> Self {
        Path {
            node: [NONE; MAX_LEVELS],
            slot: [0; MAX_LEVELS],
        }
    }

    fn slot(&self, lv: usize) -> usize {
        usize::from(self.slot[lv])
    }
}

#[cfg(feature = "alloc")]
impl AddrRanges<VecStorage> {
    /// An empty set in `space`, storing its nodes in a `Vec`. Allocates
    /// nothing until the first range is added.
    #[must_use]
    pub const fn new(space: AddrSpace) -> Self {
        Self::with_storage(space, VecStorage::new())
    }
}

impl<S: Storage> AddrRanges<S> {
    /// An empty set in `space` whose nodes live in `storage`. The storage's
    /// current contents are ignored and overwritten as needed.
    #[must_use]
    pub const fn with_storage(space: AddrSpace, storage: S) -> Self {
        AddrRanges {
            inner: Tree {
                space,
                storage,
                inline: Node::EMPTY,
                root: NONE,
                height: 0,
                len: 0,
                total_bytes: 0,
                used: 0,
                free_head: NONE,
                free_count: 0,
            },
        }
    }

    /// The address order of this set.
    #[must_use]
    pub fn space(&self) -> AddrSpace {
        self.inner.space
    }

    /// The storage, giving up the set.
    #[must_use]
    pub fn into_storage(self) -> S {
        self.inner.storage
    }

    /// The number of ranges.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.len
    }

    /// Whether the set holds no range.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// The sum of the sizes of all ranges, in bytes. O(1).
    #[must_use]
    pub fn total_bytes(&self) -> usize {
        self.inner.total_bytes
    }

    /// The number of nodes the set uses or keeps free for reuse; its
    /// storage must provide at least this many.
    #[must_use]
    pub fn nodes_used(&self) -> usize {
        self.inner.used
    }

    /// Adds `range`, merging it with the ranges it touches.
    ///
    /// # Errors
    ///
    /// The set is unchanged on every error:
    /// - [`Error::EmptyRange`] if `range` is empty in offset order;
    /// - [`Error::Overlap`] if it shares an address with the set;
    /// - [`Error::OutOfStorage`] if the storage cannot grow for a new node.
    pub fn add(&mut self, range: AddrRange) -> Result<(), Error> {
        self.inner.add(range)
    }

    /// The index of the first range whose base is above `addr` in offset
    /// order, or `len()` if there is none (Go calls this `findSucc`).
    /// O(log n).
    #[must_use]
    pub fn find_succ(&self, addr: usize) -> usize {
        let t = &self.inner;
        if t.root == NONE {
            return 0;
        }
        let a = t.space.to_offset(addr);
        if t.height == 0 {
            return t.node(t.root).succ_slot(a);
        }
        t.deep_rank(a)
    }

    /// The smallest address in the set that is at or above `addr` in offset
    /// order, or `None` if there is none (also on an empty set).
    #[must_use]
    pub fn find_addr_greater_equal(&self, addr: usize) -> Option<usize> {
        if self.contains(addr) {
            Some(addr)
        } else {
            self.range_above(addr).map(|r| r.base)
        }
    }

    /// Whether some range contains `addr`.
    #[must_use]
    pub fn contains(&self, addr: usize) -> bool {
        let t = &self.inner;
        if t.root == NONE {
            return false;
        }
        let a = t.space.to_offset(addr);
        let (leaf, p) = t.leaf_slot(a);
        p > 0 && a < leaf.hi[p - 1]
    }

    /// The range containing `addr`, if any.
    #[must_use]
    pub fn range_containing(&self, addr: usize) -> Option<AddrRange> {
        let t = &self.inner;
        if t.root == NONE {
            return None;
        }
        let a = t.space.to_offset(addr);
        let (leaf, p) = t.leaf_slot(a);
        (p > 0 && a < leaf.hi[p - 1]).then(|| t.space.range(leaf.lo[p - 1], leaf.hi[p - 1]))
    }

    /// The nearest range lying wholly below `addr` (its limit is at or
    /// below `addr`), if any. A range containing `addr` is not it.
    #[must_use]
    pub fn range_below(&self, addr: usize) -> Option<AddrRange> {
        let t = &self.inner;
        let i = self.find_succ(addr);
        let before = i.checked_sub(1).and_then(|j| self.get(j))?;
        if t.space.to_offset(before.limit) <= t.space.to_offset(addr) {
            Some(before)
        } else {
            i.checked_sub(2).and_then(|j| self.get(j))
        }
    }

    /// The nearest range lying wholly above `addr` (its base is above
    /// `addr`), if any.
    #[must_use]
    pub fn range_above(&self, addr: usize) -> Option<AddrRange> {
        let t = &self.inner;
        if t.root == NONE {
            return None;
        }
        let path = t.descend(t.space.to_offset(addr));
        let next = t.at_or_next_leaf(path)?;
        let leaf = t.node(next.node[t.height]);
        let s = next.slot(t.height);
        Some(t.space.range(leaf.lo[s], leaf.hi[s]))
    }

    /// The range at index `i` in offset order. O(log n).
    #[must_use]
    pub fn get(&self, i: usize) -> Option<AddrRange> {
        let t = &self.inner;
        if i >= t.len {
            return None;
        }
        let mut n = t.root;
        let mut k = i;
        for _ in 0..t.height {
            let node = t.node(n);
            let mut s = 0;
            while k >= node.hi[s] {
                k -= node.hi[s];
                s += 1;
            }
            n = node.child[s];
        }
        let leaf = t.node(n);
        Some(t.space.range(leaf.lo[k], leaf.hi[k]))
    }

    /// The lowest range in offset order.
    #[must_use]
    pub fn first(&self) -> Option<AddrRange> {
        self.get(0)
    }

    /// The highest range in offset order.
    #[must_use]
    pub fn last(&self) -> Option<AddrRange> {
        self.inner.len.checked_sub(1).and_then(|i| self.get(i))
    }

    /// The ranges in offset order.
    #[must_use]
    pub fn iter(&self) -> Iter<'_, S> {
        let t = &self.inner;
        let mut path = Path::new();
        if t.root != NONE {
            let mut n = t.root;
            for lv in 0..t.height {
                path.node[lv] = n;
                n = t.node(n).child[0];
            }
            path.node[t.height] = n;
        }
        Iter {
            tree: t,
            path,
            remaining: t.len,
        }
    }

    /// Removes the top `n` bytes of the highest range and returns them; if
    /// that range holds `n` bytes or fewer, removes and returns all of it.
    /// On an empty set returns the empty range `[0, 0)`.
    pub fn remove_last(&mut self, n: usize) -> AddrRange {
        self.inner.remove_last(n)
    }

    /// Removes every address at or above `addr` in offset order, truncating
    /// the range that contains `addr`.
    pub fn remove_greater_equal(&mut self, addr: usize) {
        self.inner.remove_greater_equal(addr);
    }

    /// Removes every range.
    pub fn clear(&mut self) {
        self.inner.clear();
    }

    /// Makes `other` a copy of this set (address space included), reusing
    /// `other`'s storage and growing it only if it is too small.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfStorage`] if `other`'s storage cannot hold this set's
    /// nodes; `other` is then unchanged.
    pub fn clone_into<T: Storage>(&self, other: &mut AddrRanges<T>) -> Result<(), Error> {
        let (src, dst) = (&self.inner, &mut other.inner);
        dst.storage.try_grow(src.used)?;
        dst.storage.nodes_mut()[..src.used].copy_from_slice(&src.storage.nodes()[..src.used]);
        dst.inline = src.inline;
        dst.space = src.space;
        dst.root = src.root;
        dst.height = src.height;
        dst.len = src.len;
        dst.total_bytes = src.total_bytes;
        dst.used = src.used;
        dst.free_head = src.free_head;
        dst.free_count = src.free_count;
        Ok(())
    }

    /// Checks every structural invariant, panicking on the first broken one.
    #[cfg(test)]
    pub(crate) fn validate(&self) {
        self.inner.validate();
    }
}

impl<S: Storage> fmt::Debug for AddrRanges<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, S: Storage> IntoIterator for &'a AddrRanges<S> {
    type Item = AddrRange;
    type IntoIter = Iter<'a, S>;

    fn into_iter(self) -> Iter<'a, S> {
        self.iter()
    }
}

/// The ranges of an [`AddrRanges`] in offset order; see
/// [`AddrRanges::iter`].
pub struct Iter<'a, S> {
    tree: &'a Tree<S>,
    path: Path,
    remaining: usize,
}

impl<S: Storage> Iterator for Iter<'_, S> {
    type Item = AddrRange;

    fn next(&mut self) -> Option<AddrRange> {
        if self.remaining == 0 {
            return None;
        }
        let t = self.tree;
        let h = t.height;
        let leaf = t.node(self.path.node[h]);
        let s = self.path.slot(h);
        let r = t.space.range(leaf.lo[s], leaf.hi[s]);
        self.remaining -= 1;
        self.path.slot[h] += 1;
        if self.remaining > 0 && self.path.slot(h) == leaf.len() {
            self.path = t
                .next_leaf(&self.path)
                .expect("count says more ranges follow");
        }
        Some(r)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<S: Storage> ExactSizeIterator for Iter<'_, S> {}

impl<S: Storage> core::iter::FusedIterator for Iter<'_, S> {}

impl<S: Storage> fmt::Debug for Iter<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl<S: Storage> Tree<S> {
    fn node(&self, n: u32) -> &Node {
        if n == INLINE {
            &self.inline
        } else {
            &self.storage.nodes()[n as usize]
        }
    }

    fn node_mut(&mut self, n: u32) -> &mut Node {
        if n == INLINE {
            &mut self.inline
        } else {
            &mut self.storage.nodes_mut()[n as usize]
        }
    }

    /// The path to the first leaf slot whose base is above `a`. The tree must
    /// not be empty.
    fn descend(&self, a: usize) -> Path {
        let mut path = Path::new();
        let mut n = self.root;
        for lv in 0..self.height {
            let node = self.node(n);
            let s = node.lo[..node.len()]
                .partition_point(|&k| k <= a)
                .saturating_sub(1);
            path.node[lv] = n;
            path.slot[lv] = s as u8;
            n = node.child[s];
        }
        let leaf = self.node(n);
        path.node[self.height] = n;
        path.slot[self.height] = leaf.succ_slot(a) as u8;
        path
    }

    /// The leaf holding the first slot whose base is above `a`, and that
    /// slot; with a single leaf, without building a path. The tree must not
    /// be empty.
    #[inline]
    fn leaf_slot(&self, a: usize) -> (&Node, usize) {
        if self.height == 0 {
            let leaf = self.node(self.root);
            (leaf, leaf.succ_slot(a))
        } else {
            self.deep_leaf_slot(a)
        }
    }

    /// [`Tree::leaf_slot`] below the root. Kept out of line so that the
    /// single-leaf lookup inlined into callers stays a few instructions.
    #[inline(never)]
    fn deep_leaf_slot(&self, a: usize) -> (&Node, usize) {
        let path = self.descend(a);
        (self.node(path.node[self.height]), path.slot(self.height))
    }

    /// The index of the first range whose base is above `a`, in a tree of
    /// more than one level; out of line as [`Tree::deep_leaf_slot`] is.
    #[inline(never)]
    fn deep_rank(&self, a: usize) -> usize {
        self.rank(&self.descend(a))
    }

    /// The index of the range at the path's leaf slot.
    fn rank(&self, path: &Path) -> usize {
        let above: usize = (0..self.height)
            .map(|lv| {
                self.node(path.node[lv]).hi[..path.slot(lv)]
                    .iter()
                    .sum::<usize>()
            })
            .sum();
        above + path.slot(self.height)
    }

    /// The path to slot 0 of the leaf after the path's leaf, if any.
    fn next_leaf(&self, path: &Path) -> Option<Path> {
        let mut q = *path;
        let mut lv = self.height;
        loop {
            if lv == 0 {
                return None;
            }
            lv -= 1;
            if q.slot(lv) + 1 < self.node(q.node[lv]).len() {
                q.slot[lv] += 1;
                break;
            }
        }
        let mut n = self.node(q.node[lv]).child[q.slot(lv)];
        for l in lv + 1..self.height {
            q.node[l] = n;
            q.slot[l] = 0;
            n = self.node(n).child[0];
        }
        q.node[self.height] = n;
        q.slot[self.height] = 0;
        Some(q)
    }

    /// The path itself if its leaf slot holds a range, else the start of the
    /// next leaf.
    fn at_or_next_leaf(&self, path: Path) -> Option<Path> {
        if path.slot(self.height) < self.node(path.node[self.height]).len() {
            Some(path)
        } else {
            self.next_leaf(&path)
        }
    }

    /// Writes `min` as the smallest base of the node at level `lv` into its
    /// ancestors, as far up as it is their smallest too.
    fn fix_min(&mut self, path: &Path, lv: usize, min: usize) {
        for l in (0..lv).rev() {
            let s = path.slot(l);
            self.node_mut(path.node[l]).lo[s] = min;
            if s != 0 {
                break;
            }
        }
    }

    /// Ensures `k` nodes can be allocated without failing.
    fn reserve(&mut self, k: usize) -> Result<(), Error> {
        let cap = self.storage.nodes().len();
        let avail = self.free_count + cap.saturating_sub(self.used);
        if avail >= k {
            return Ok(());
        }
        let need = self.used + (k - self.free_count);
        if need > MAX_NODES {
            return Err(Error::OutOfStorage { nodes: need });
        }
        self.storage.try_grow(need)?;
        if self.storage.nodes().len() < need {
            return Err(Error::OutOfStorage { nodes: need });
        }
        Ok(())
    }

    /// Takes a node, which `reserve` must have made available.
    fn alloc_node(&mut self) -> u32 {
        let n = if self.free_head != NONE {
            let n = self.free_head;
            self.free_head = self.node(n).child[0];
            self.free_count -= 1;
            n
        } else {
            self.used += 1;
            (self.used - 1) as u32
        };
        self.node_mut(n).len = 0;
        n
    }

    fn free_node(&mut self, n: u32) {
        if n == INLINE {
            self.inline.len = 0;
            return;
        }
        let head = self.free_head;
        let node = self.node_mut(n);
        node.len = 0;
        node.child[0] = head;
        self.free_head = n;
        self.free_count += 1;
    }

    fn clear(&mut self) {
        self.root = NONE;
        self.height = 0;
        self.len = 0;
        self.total_bytes = 0;
        self.used = 0;
        self.free_head = NONE;
        self.free_count = 0;
    }

    fn add(&mut self, range: AddrRange) -> Result<(), Error> {
        let (b, l) = self.space.offsets(range);
        if b >= l {
            return Err(Error::EmptyRange { range });
        }
        if self.root == NONE {
            self.inline.len = 0;
            self.inline.insert_entry(0, b, l);
            self.root = INLINE;
            self.height = 0;
            self.len = 1;
            self.total_bytes = l - b;
            return Ok(());
        }
        if self.height == 0 && self.add_to_root_leaf(range, b, l)? {
            return Ok(());
        }
        let h = self.height;
        let path = self.descend(b);
        let leaf_n = path.node[h];
        let p = path.slot(h);
        let leaf = self.node(leaf_n);
        // Exact minimums put the range before the position in this leaf.
        let pred = (p > 0).then(|| (leaf.lo[p - 1], leaf.hi[p - 1]));
        if let Some((pb, pl)) = pred {
            if pl > b {
                let existing = self.space.range(pb, pl);
                return Err(Error::Overlap { range, existing });
            }
        }
        let succ = self.at_or_next_leaf(path).map(|sp| {
            let node = self.node(sp.node[h]);
            let s = sp.slot(h);
            (sp, node.lo[s], node.hi[s])
        });
        if let Some((_, sb, sl)) = succ {
            if sb < l {
                let existing = self.space.range(sb, sl);
                return Err(Error::Overlap { range, existing });
            }
        }
        let down = pred.is_some_and(|(_, pl)| pl == b);
        match succ {
            Some((sp, sb, sl)) if sb == l => {
                if down {
                    // Both neighbours touch: the lower one swallows the upper.
                    self.node_mut(leaf_n).hi[p - 1] = sl;
                    self.remove_at(&sp);
                } else {
                    let s = sp.slot(h);
                    self.node_mut(sp.node[h]).lo[s] = b;
                    if s == 0 {
                        self.fix_min(&sp, h, b);
                    }
                }
            }
            _ if down => self.node_mut(leaf_n).hi[p - 1] = l,
            _ => self.insert_at(&path, b, l)?,
        }
        self.total_bytes += l - b;
        Ok(())
    }

    /// `add` of the non-empty `[b, l)` when the root is the only leaf: one
    /// binary search, no path. Returns `Ok(false)`, changing nothing, when
    /// the range needs a new entry and the leaf is full, so a split is due.
    fn add_to_root_leaf(&mut self, range: AddrRange, b: usize, l: usize) -> Result<bool, Error> {
        let space = self.space;
        let root = self.root;
        let leaf = self.node_mut(root);
        let n = leaf.len();
        let p = leaf.succ_slot(b);
        let down = p > 0 && leaf.hi[p - 1] == b;
        if p > 0 && leaf.hi[p - 1] > b {
            let existing = space.range(leaf.lo[p - 1], leaf.hi[p - 1]);
            return Err(Error::Overlap { range, existing });
        }
        let up = p < n && leaf.lo[p] == l;
        if p < n && leaf.lo[p] < l {
            let existing = space.range(leaf.lo[p], leaf.hi[p]);
            return Err(Error::Overlap { range, existing });
        }
        match (down, up) {
            (true, true) => {
                // The lower neighbour swallows the upper; at least one
                // range is left, so the leaf does not empty.
                leaf.hi[p - 1] = leaf.hi[p];
                leaf.remove_entry(p);
                self.len -= 1;
            }
            (true, false) => leaf.hi[p - 1] = l,
            (false, true) => leaf.lo[p] = b,
            (false, false) if n < CAP => {
                leaf.insert_entry(p, b, l);
                self.len += 1;
            }
            (false, false) => return Ok(false),
        }
        self.total_bytes += l - b;
        Ok(true)
    }

    /// Inserts the range `[b, l)` at the path's leaf slot, splitting full
    /// nodes on the way up.
    fn insert_at(&mut self, path: &Path, b: usize, l: usize) -> Result<(), Error> {
        let h = self.height;
        let mut leaf_n = path.node[h];
        let p = path.slot(h);
        if self.node(leaf_n).len() < CAP {
            self.node_mut(leaf_n).insert_entry(p, b, l);
            for lv in 0..h {
                self.node_mut(path.node[lv]).hi[path.slot(lv)] += 1;
            }
            if p == 0 {
                self.fix_min(path, h, b);
            }
            self.len += 1;
            return Ok(());
        }
        // A split may cascade to the root and add a level.
        if h + 1 >= MAX_LEVELS {
            return Err(Error::OutOfStorage { nodes: MAX_NODES });
        }
        if leaf_n == INLINE {
            // The inline root's first split: it moves into the storage, and
            // the split then needs a right half and a new root.
            self.reserve(3)?;
            leaf_n = self.alloc_node();
            *self.node_mut(leaf_n) = self.inline;
            self.inline.len = 0;
            self.root = leaf_n;
        } else {
            self.reserve(h + 2)?;
        }
        let right_n = self.alloc_node();
        let (mut left_min, mut left_count, mut carry) = {
            let nodes = self.storage.nodes_mut();
            let mut right = nodes[right_n as usize];
            let left = &mut nodes[leaf_n as usize];
            left.split_into(&mut right);
            let half = left.len();
            if p <= half {
                left.insert_entry(p, b, l);
            } else {
                right.insert_entry(p - half, b, l);
            }
            let out = (
                left.lo[0],
                left.len(),
                Some((right.lo[0], right.len(), right_n)),
            );
            nodes[right_n as usize] = right;
            out
        };
        for lv in (0..h).rev() {
            let n = path.node[lv];
            let s = path.slot(lv);
            match carry.take() {
                None => {
                    let node = self.node_mut(n);
                    node.hi[s] += 1;
                    node.lo[s] = left_min;
                }
                Some((key, count, child)) => {
                    if self.node(n).len() < CAP {
                        let node = self.node_mut(n);
                        node.lo[s] = left_min;
                        node.hi[s] = left_count;
                        node.insert_child(s + 1, key, count, child);
                    } else {
                        let new_n = self.alloc_node();
                        let nodes = self.storage.nodes_mut();
                        let mut right = nodes[new_n as usize];
                        let left = &mut nodes[n as usize];
                        left.lo[s] = left_min;
                        left.hi[s] = left_count;
                        left.split_into(&mut right);
                        let half = left.len();
                        if s < half {
                            left.insert_child(s + 1, key, count, child);
                        } else {
                            right.insert_child(s + 1 - half, key, count, child);
                        }
                        carry = Some((right.lo[0], right.count_below(), new_n));
                        left_count = left.count_below();
                        nodes[new_n as usize] = right;
                    }
                }
            }
            left_min = self.node(n).lo[0];
        }
        if let Some((key, count, child)) = carry {
            let old = self.root;
            let root = self.alloc_node();
            let node = self.node_mut(root);
            node.insert_child(0, left_min, left_count, old);
            node.insert_child(1, key, count, child);
            self.root = root;
            self.height += 1;
        }
        self.len += 1;
        Ok(())
    }

    /// Removes the range at the path's leaf slot, unlinking nodes that
    /// become empty. Leaves `total_bytes` to the caller.
    fn remove_at(&mut self, path: &Path) {
        let h = self.height;
        self.node_mut(path.node[h]).remove_entry(path.slot(h));
        self.len -= 1;
        for lv in 0..h {
            self.node_mut(path.node[lv]).hi[path.slot(lv)] -= 1;
        }
        let mut lv = h;
        while self.node(path.node[lv]).len == 0 {
            self.free_node(path.node[lv]);
            if lv == 0 {
                let bytes = self.total_bytes;
                self.clear();
                self.total_bytes = bytes;
                return;
            }
            lv -= 1;
            self.node_mut(path.node[lv]).remove_entry(path.slot(lv));
        }
        if path.slot(lv) == 0 {
            let min = self.node(path.node[lv]).lo[0];
            self.fix_min(path, lv, min);
        }
        self.collapse_root();
    }

    /// Drops root levels that have a single child.
    fn collapse_root(&mut self) {
        while self.height > 0 && self.node(self.root).len == 1 {
            let old = self.root;
            self.root = self.node(old).child[0];
            self.free_node(old);
            self.height -= 1;
        }
    }

    fn remove_last(&mut self, n: usize) -> AddrRange {
        if self.root == NONE {
            return AddrRange::new(0, 0);
        }
        let mut path = Path::new();
        let mut node_n = self.root;
        for lv in 0..self.height {
            let node = self.node(node_n);
            path.node[lv] = node_n;
            path.slot[lv] = (node.len() - 1) as u8;
            node_n = node.child[node.len() - 1];
        }
        let leaf = self.node(node_n);
        let s = leaf.len() - 1;
        let (b, l) = (leaf.lo[s], leaf.hi[s]);
        path.node[self.height] = node_n;
        path.slot[self.height] = s as u8;
        if l - b > n {
            self.node_mut(node_n).hi[s] = l - n;
            self.total_bytes -= n;
            self.space.range(l - n, l)
        } else {
            self.remove_at(&path);
            self.total_bytes -= l - b;
            self.space.range(b, l)
        }
    }

    fn remove_greater_equal(&mut self, addr: usize) {
        if self.root == NONE {
            return;
        }
        let a = self.space.to_offset(addr);
        let path = self.descend(a);
        let pivot = self.rank(&path);
        let h = self.height;
        let p = path.slot(h);
        if pivot == 0 {
            self.clear();
            return;
        }
        debug_assert!(p > 0, "exact minimums keep the previous range in the leaf");
        let leaf_n = path.node[h];
        let (b, l) = (self.node(leaf_n).lo[p - 1], self.node(leaf_n).hi[p - 1]);
        let mut keep = pivot;
        if a < l {
            if b == a {
                keep -= 1;
            } else {
                self.node_mut(leaf_n).hi[p - 1] = a;
                self.total_bytes -= l - a;
            }
        }
        self.truncate(keep);
    }

    /// Keeps only the first `keep` ranges.
    fn truncate(&mut self, keep: usize) {
        if keep == 0 {
            self.clear();
            return;
        }
        if keep >= self.len {
            return;
        }
        let mut removed = 0;
        let mut n = self.root;
        let mut k = keep;
        for lv in 0..self.height {
            let node = *self.node(n);
            let mut i = 0;
            let mut before = 0;
            while before + node.hi[i] < k {
                before += node.hi[i];
                i += 1;
            }
            for j in i + 1..node.len() {
                removed += self.free_subtree(node.child[j], self.height - lv - 1);
            }
            let node = self.node_mut(n);
            node.len = (i + 1) as u32;
            node.hi[i] = k - before;
            n = node.child[i];
            k -= before;
        }
        let leaf = self.node_mut(n);
        removed += (k..leaf.len())
            .map(|j| leaf.hi[j] - leaf.lo[j])
            .sum::<usize>();
        leaf.len = k as u32;
        self.len = keep;
        self.total_bytes -= removed;
        self.collapse_root();
    }

    /// Frees the subtree at `n`, `levels` above the leaves, returning the
    /// bytes it held.
    fn free_subtree(&mut self, n: u32, levels: usize) -> usize {
        let node = *self.node(n);
        let bytes = if levels == 0 {
            (0..node.len()).map(|j| node.hi[j] - node.lo[j]).sum()
        } else {
            (0..node.len())
                .map(|j| self.free_subtree(node.child[j], levels - 1))
                .sum()
        };
        self.free_node(n);
        bytes
    }

    #[cfg(test)]
    fn validate(&self) {
        let mut free = 0;
        let mut f = self.free_head;
        while f != NONE {
            assert!((f as usize) < self.used, "free node beyond the used mark");
            free += 1;
            f = self.node(f).child[0];
        }
        assert_eq!(free, self.free_count, "free list length");
        if self.root == NONE {
            assert_eq!((self.len, self.total_bytes, self.height), (0, 0, 0));
            return;
        }
        let mut last_limit = None;
        let mut bytes = 0;
        let mut nodes = 0;
        if self.root == INLINE {
            assert_eq!(self.height, 0, "an inline root is a leaf");
        }
        assert!(
            self.root == INLINE || self.inline.len == 0,
            "an inline leaf that is not the root"
        );
        let (count, _) = self.validate_node(
            self.root,
            self.height,
            &mut last_limit,
            &mut bytes,
            &mut nodes,
        );
        assert_eq!(count, self.len, "len");
        assert_eq!(bytes, self.total_bytes, "total bytes");
        assert_eq!(
            nodes + self.free_count,
            self.used,
            "every used node is live or free"
        );
        if self.height > 0 {
            assert!(self.node(self.root).len() >= 2, "root with a single child");
        }
    }

    /// Returns the subtree's range count and smallest base.
    #[cfg(test)]
    fn validate_node(
        &self,
        n: u32,
        levels: usize,
        last_limit: &mut Option<usize>,
        bytes: &mut usize,
        nodes: &mut usize,
    ) -> (usize, usize) {
        let node = self.node(n);
        *nodes += usize::from(n != INLINE);
        assert!(node.len() > 0 && node.len() <= CAP, "node length");
        if levels == 0 {
            for j in 0..node.len() {
                let (b, l) = (node.lo[j], node.hi[j]);
                assert!(b < l, "empty range stored");
                if let Some(prev) = *last_limit {
                    assert!(prev < b, "ranges out of order, touching or overlapping");
                }
                *last_limit = Some(l);
                *bytes += l - b;
            }
            return (node.len(), node.lo[0]);
        }
        let mut total = 0;
        for j in 0..node.len() {
            let (count, min) =
                self.validate_node(node.child[j], levels - 1, last_limit, bytes, nodes);
            assert_eq!(node.hi[j], count, "subtree count");
            assert_eq!(node.lo[j], min, "subtree minimum");
            total += count;
        }
        (total, node.lo[0])
    }
}
