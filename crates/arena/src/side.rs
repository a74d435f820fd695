//! Bookkeeping memory straight from the OS: [`SideVec`] and the raw
//! side mappings behind it and behind the page-state arrays.
//!
//! An allocator cannot keep its own books in the global heap when it *is*
//! the global heap. Every table of this crate (the reservations of a
//! [`SystemOs`](crate::SystemOs), the page states of a reservation) and the
//! tables of the layers above therefore live in *side mappings*: zeroed,
//! read-write anonymous memory mapped by `sys` for the table alone, outside
//! every [`Os`](crate::Os) object, so no safe call of any `Os` can unmap it
//! under the table. On Linux the mappings carry `MAP_NORESERVE` and are
//! touched lazily, so an untouched part costs only address space.
//!
//! Per platform: `mmap`/`munmap` on Unix, `VirtualAlloc`/`VirtualFree` on
//! Windows; on Wasm a side mapping is a `memory.grow` that is never given
//! back (freed side mappings are lost, like every freed Wasm reservation);
//! systems without a port have none ([`Error::Unsupported`]).

use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ptr::{with_exposed_provenance, with_exposed_provenance_mut};

use crate::sys::{os_page_size, side_map, side_unmap};
use crate::Error;

/// A zeroed side mapping of at least `len` bytes; returns `(addr, mapped
/// length)`. The memory is page-aligned, readable and writable, and owned by
/// the caller until passed to [`unmap`].
pub(crate) fn map(len: usize) -> Result<(usize, usize), Error> {
    debug_assert!(len > 0);
    let len = len
        .checked_next_multiple_of(os_page_size())
        .ok_or(Error::Overflow { addr: 0, len })?;
    Ok((side_map(len)?, len))
}

/// Gives back a side mapping made by [`map`].
///
/// # Safety
/// `(addr, len)` must be exactly what one [`map`] call returned, not yet
/// unmapped, and nothing may use the memory afterwards.
pub(crate) unsafe fn unmap(addr: usize, len: usize) {
    // SAFETY:
    // - Forwarded from the caller: the range is one whole side mapping of
    //   ours that nobody uses any more.
    let r = unsafe { side_unmap(addr, len) };
    // A refused unmap leaks address space but leaves nothing dangling.
    debug_assert!(r.is_ok(), "unmapping a side table failed: {r:?}");
}

/// A growable array of plain values kept in a side mapping: a `Vec` for
/// allocator bookkeeping that never touches the global heap.
///
/// Growth maps a buffer twice as large (at least one OS page), copies and
/// unmaps the old one, so it is O(1) amortised per element; a failure to map
/// is an [`Error`] and leaves the vector unchanged. The memory is given back
/// when the vector is dropped.
///
/// ```
/// # #[cfg(miri)] fn main() {}
/// # #[cfg(not(miri))]
/// # fn main() -> Result<(), pageheap_arena::Error> {
/// let mut v = pageheap_arena::SideVec::new();
/// v.push((0x1000_usize, 0x2000_usize))?;
/// v.insert(0, (0x10, 0x20))?;
/// assert_eq!(v.as_slice(), &[(0x10, 0x20), (0x1000, 0x2000)]);
/// assert_eq!(v.remove(0), (0x10, 0x20));
/// # Ok(())
/// # }
/// ```
pub struct SideVec<T: Copy> {
    /// Address of the buffer; 0 while `cap` is 0.
    addr: usize,
    len: usize,
    cap: usize,
    /// Bytes mapped at `addr`.
    mapped: usize,
    _owns: PhantomData<T>,
}

impl<T: Copy> SideVec<T> {
    /// An empty vector; maps nothing until the first element arrives.
    pub const fn new() -> Self {
        Self {
            addr: 0,
            len: 0,
            cap: 0,
            mapped: 0,
            _owns: PhantomData,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements, in order.
    pub fn as_slice(&self) -> &[T] {
        if self.cap == 0 {
            return &[];
        }
        // SAFETY:
        // - `addr` is a live side mapping of `mapped >= cap * size_of::<T>()`
        //   bytes owned by this vector, page-aligned and so aligned for `T`
        //   (checked in `grow`).
        // - The first `len` elements were written by `insert`/`grow` and are
        //   initialised; the mapping is only written through `&mut self`.
        unsafe { core::slice::from_raw_parts(with_exposed_provenance::<T>(self.addr), self.len) }
    }

    /// The elements, in order, for in-place updates.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        if self.cap == 0 {
            return &mut [];
        }
        // SAFETY:
        // - As in `as_slice`; `&mut self` makes this borrow the only one.
        unsafe {
            core::slice::from_raw_parts_mut(with_exposed_provenance_mut::<T>(self.addr), self.len)
        }
    }

    /// Makes room for at least `extra` more elements, so that that many
    /// [`push`](Self::push)es and [`insert`](Self::insert)s cannot fail.
    ///
    /// # Errors
    /// The size overflows or the OS refused the larger mapping.
    pub fn reserve(&mut self, extra: usize) -> Result<(), Error> {
        let need = self.len.checked_add(extra).ok_or(Error::Overflow {
            addr: 0,
            len: usize::MAX,
        })?;
        if need > self.cap {
            self.grow(need)?;
        }
        Ok(())
    }

    /// Appends `v`.
    ///
    /// # Errors
    /// As [`reserve`](Self::reserve).
    pub fn push(&mut self, v: T) -> Result<(), Error> {
        self.insert(self.len, v)
    }

    /// Inserts `v` at index `i`, shifting the rest up.
    ///
    /// # Errors
    /// As [`reserve`](Self::reserve); the vector is unchanged then.
    ///
    /// # Panics
    /// If `i > len`.
    pub fn insert(&mut self, i: usize, v: T) -> Result<(), Error> {
        assert!(i <= self.len, "insert index {i} beyond length {}", self.len);
        self.reserve(1)?;
        let p = with_exposed_provenance_mut::<T>(self.addr);
        // SAFETY:
        // - After `reserve(1)`, `cap > len`, so elements `i..=len` lie in the
        //   live mapping this vector owns (see `as_slice`); `copy` handles the
        //   overlap of the shift, and the write fills the gap it leaves.
        unsafe {
            core::ptr::copy(p.add(i), p.add(i + 1), self.len - i);
            p.add(i).write(v);
        }
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the element at index `i`, shifting the rest down.
    ///
    /// # Panics
    /// If `i >= len`.
    pub fn remove(&mut self, i: usize) -> T {
        assert!(i < self.len, "remove index {i} beyond length {}", self.len);
        let v = self.as_slice()[i];
        self.as_mut_slice().copy_within(i + 1.., i);
        self.len -= 1;
        v
    }

    /// Removes every element, keeping the mapping.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Moves the elements to a new mapping of at least `need` elements.
    fn grow(&mut self, need: usize) -> Result<(), Error> {
        let size = size_of::<T>().max(1);
        let page = os_page_size();
        assert!(align_of::<T>() <= page, "element alignment above a page");
        let cap = need.max(self.cap * 2).max(page / size);
        let bytes = cap.checked_mul(size).ok_or(Error::Overflow {
            addr: 0,
            len: usize::MAX,
        })?;
        let (addr, mapped) = map(bytes)?;
        if self.cap > 0 {
            // SAFETY:
            // - The old buffer holds `len` initialised elements (see
            //   `as_slice`); the new one is a fresh mapping of at least
            //   `cap * size >= len * size` bytes, page-aligned, that nothing
            //   else uses, so the two do not overlap.
            // - The old mapping is exactly what `map` returned for it and is
            //   not used after `unmap`.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    with_exposed_provenance::<T>(self.addr),
                    with_exposed_provenance_mut::<T>(addr),
                    self.len,
                );
                unmap(self.addr, self.mapped);
            }
        }
        self.addr = addr;
        self.cap = cap;
        self.mapped = mapped;
        Ok(())
    }
}

impl<T: Copy> Default for SideVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy> Drop for SideVec<T> {
    fn drop(&mut self) {
        if self.cap > 0 {
            // SAFETY:
            // - `addr`/`mapped` are exactly what `map` returned in `grow`, and
            //   the vector is going away, so nothing uses the memory again.
            unsafe { unmap(self.addr, self.mapped) };
        }
    }
}

impl<T: Copy + core::fmt::Debug> core::fmt::Debug for SideVec<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}
