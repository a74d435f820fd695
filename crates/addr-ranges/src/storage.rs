//! Where the nodes of a set live: the [`Storage`] trait, the growable
//! [`VecStorage`] and the fixed [`SliceStorage`].
//!
//! The page allocator keeps its set of in-use ranges in memory it maps from
//! the operating system, and may itself be the global allocator, so the set
//! must not assume a heap. It only ever asks its storage for a slice of
//! nodes and, when it needs more, to grow that slice; a storage that cannot
//! grow says so with an error and the set stays as it was.

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

use crate::{Error, Node};

/// A growable array of [`Node`]s for an [`AddrRanges`](crate::AddrRanges).
///
/// The set uses `nodes()[..n]` for whatever `n` it needs and calls
/// [`Storage::try_grow`] before it needs more than `nodes().len()`.
pub trait Storage {
    /// All nodes the storage currently provides.
    fn nodes(&self) -> &[Node];

    /// All nodes the storage currently provides, mutably.
    fn nodes_mut(&mut self) -> &mut [Node];

    /// Makes `nodes().len()` at least `min_len`, keeping the contents of the
    /// existing nodes. The storage may grow by more than asked.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfStorage`] if the storage cannot grow that far; it must
    /// then be left unchanged.
    fn try_grow(&mut self, min_len: usize) -> Result<(), Error>;
}

/// Storage in a `Vec` from the global allocator; the default.
///
/// Growth at least doubles the node count and uses `try_reserve_exact`, so
/// an allocation failure is an [`Error::OutOfStorage`], not an abort. An
/// empty `VecStorage` allocates nothing.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, Default)]
pub struct VecStorage {
    nodes: Vec<Node>,
}

#[cfg(feature = "alloc")]
impl VecStorage {
    /// An empty storage.
    #[must_use]
    pub const fn new() -> Self {
        Self { nodes: Vec::new() }
    }
}

#[cfg(feature = "alloc")]
impl Storage for VecStorage {
    fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    fn nodes_mut(&mut self) -> &mut [Node] {
        &mut self.nodes
    }

    fn try_grow(&mut self, min_len: usize) -> Result<(), Error> {
        let len = self.nodes.len();
        if min_len <= len {
            return Ok(());
        }
        let new_len = min_len.max(len.saturating_mul(2));
        self.nodes
            .try_reserve_exact(new_len - len)
            .map_err(|_| Error::OutOfStorage { nodes: min_len })?;
        self.nodes.resize(new_len, Node::EMPTY);
        Ok(())
    }
}

/// Storage in a caller-provided slice of nodes; it never grows and needs no
/// allocator.
#[derive(Debug)]
pub struct SliceStorage<'a> {
    nodes: &'a mut [Node],
}

impl<'a> SliceStorage<'a> {
    /// Storage over `nodes`. Their contents do not matter.
    #[must_use]
    pub fn new(nodes: &'a mut [Node]) -> Self {
        Self { nodes }
    }
}

impl Storage for SliceStorage<'_> {
    fn nodes(&self) -> &[Node] {
        self.nodes
    }

    fn nodes_mut(&mut self) -> &mut [Node] {
        self.nodes
    }

    fn try_grow(&mut self, min_len: usize) -> Result<(), Error> {
        if min_len <= self.nodes.len() {
            Ok(())
        } else {
            Err(Error::OutOfStorage { nodes: min_len })
        }
    }
}
