//! The fixed-size B+-tree node that [`Storage`](crate::Storage) holds, and
//! the array shuffling the tree does inside one node.
//!
//! One layout serves both kinds of node, so that a storage is a plain array
//! of one `Copy` type and no node needs a kind tag (the tree knows from the
//! depth which kind it is looking at):
//!
//! ```text
//!            lo[i]                       hi[i]                 child[i]
//! leaf:      base of range i (offset)    limit of range i      unused
//! internal:  smallest base below child i ranges below child i  node index
//! free:      unused                      unused                child[0] = next free node
//! ```

/// How many ranges a leaf holds, and how many children an internal node has.
pub(crate) const CAP: usize = 32;

/// One node of an [`AddrRanges`](crate::AddrRanges) tree: the element type of
/// every [`Storage`](crate::Storage).
///
/// A node holds up to 32 ranges, or up to 32 children. Its contents are
/// private; a caller only ever creates [`Node::EMPTY`] values to hand to a
/// [`SliceStorage`](crate::SliceStorage). A set of `n` ranges built by
/// additions uses at most about `n / 16 + n / 256 + 2` nodes; removals free
/// emptied nodes for reuse but do not merge half-empty ones.
#[derive(Clone, Copy)]
pub struct Node {
    pub(crate) len: u32,
    pub(crate) lo: [usize; CAP],
    pub(crate) hi: [usize; CAP],
    pub(crate) child: [u32; CAP],
}

impl Node {
    /// A node with nothing in it.
    pub const EMPTY: Node = Node {
        len: 0,
        lo: [0; CAP],
        hi: [0; CAP],
        child: [0; CAP],
    };

    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// The first slot of a leaf whose base is above `a`.
    #[inline]
    pub(crate) fn succ_slot(&self, a: usize) -> usize {
        self.lo[..self.len()].partition_point(|&b| b <= a)
    }

    /// Inserts a leaf entry at `at`, shifting the ones after it up.
    pub(crate) fn insert_entry(&mut self, at: usize, lo: usize, hi: usize) {
        let n = self.len();
        debug_assert!(n < CAP && at <= n);
        self.lo.copy_within(at..n, at + 1);
        self.hi.copy_within(at..n, at + 1);
        self.lo[at] = lo;
        self.hi[at] = hi;
        self.len += 1;
    }

    /// Inserts a child entry at `at`, shifting the ones after it up.
    pub(crate) fn insert_child(&mut self, at: usize, key: usize, count: usize, child: u32) {
        let n = self.len();
        self.child.copy_within(at..n, at + 1);
        self.child[at] = child;
        self.insert_entry(at, key, count);
    }

    /// Removes entry `at` (and its child slot), shifting the ones after it
    /// down.
    pub(crate) fn remove_entry(&mut self, at: usize) {
        let n = self.len();
        debug_assert!(at < n);
        self.lo.copy_within(at + 1..n, at);
        self.hi.copy_within(at + 1..n, at);
        self.child.copy_within(at + 1..n, at);
        self.len -= 1;
    }

    /// Moves the upper half of a full node into the empty node `right`.
    pub(crate) fn split_into(&mut self, right: &mut Node) {
        debug_assert!(self.len() == CAP && right.len == 0);
        let half = CAP / 2;
        right.lo[..CAP - half].copy_from_slice(&self.lo[half..]);
        right.hi[..CAP - half].copy_from_slice(&self.hi[half..]);
        right.child[..CAP - half].copy_from_slice(&self.child[half..]);
        right.len = (CAP - half) as u32;
        self.len = half as u32;
    }

    /// The number of ranges below an internal node.
    pub(crate) fn count_below(&self) -> usize {
        self.hi[..self.len()].iter().sum()
    }
}

impl Default for Node {
    fn default() -> Self {
        Node::EMPTY
    }
}

impl core::fmt::Debug for Node {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}
