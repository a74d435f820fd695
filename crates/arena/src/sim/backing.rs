//! The memory behind a simulated reservation.
//!
//! Natively, a reservation of [`MAPPED_FROM`] bytes or more is a side
//! mapping from the real OS (read-write, lazily zeroed, `MAP_NORESERVE` on
//! Linux), so that the summary levels' hundreds of MiB cost address space
//! only, with no allocator zeroing them (glibc above its mmap threshold,
//! or AddressSanitizer poisoning the shadow of a freed block, would touch
//! every page), and pages released with `DontNeed` are dropped back to the
//! OS rather than overwritten. Smaller reservations, and all of them under
//! Miri, are a zeroed `Vec<u8>`. Either way the bytes are real memory at a
//! fixed address for the reservation's life.

#![allow(unsafe_code)]

/// Reservations of at least this size are side mappings (not under Miri).
#[cfg(not(miri))]
const MAPPED_FROM: usize = 256 << 10;

/// Real memory for one reservation.
pub(super) enum Backing {
    /// A zeroed host allocation.
    Heap(Vec<u8>),
    /// A side mapping `(addr, len)` from the real OS.
    #[cfg(not(miri))]
    Mapped(usize, usize),
}

impl Backing {
    /// `size` zeroed bytes.
    pub(super) fn zeroed(size: usize) -> Backing {
        #[cfg(not(miri))]
        if size >= MAPPED_FROM {
            let len = size.next_multiple_of(crate::os_page_size());
            if let Ok(addr) = crate::sys::side_map(len) {
                return Backing::Mapped(addr, len);
            }
        }
        Backing::Heap(vec![0u8; size])
    }

    /// The bytes.
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Backing::Heap(v) => v,
            #[cfg(not(miri))]
            // SAFETY:
            // - The mapping is `len` readable bytes, alive until `drop`, and
            //   exclusively this value's: only `&mut self` methods write it.
            Backing::Mapped(addr, len) => unsafe {
                core::slice::from_raw_parts(core::ptr::with_exposed_provenance(*addr), *len)
            },
        }
    }

    /// The bytes, writable.
    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Backing::Heap(v) => v,
            #[cfg(not(miri))]
            // SAFETY:
            // - As in `bytes`, and `&mut self` makes this the only reference.
            Backing::Mapped(addr, len) => unsafe {
                core::slice::from_raw_parts_mut(core::ptr::with_exposed_provenance_mut(*addr), *len)
            },
        }
    }

    /// The first byte's address, with its provenance exposed, so that
    /// pointers made from addresses inside may access the memory.
    pub(super) fn expose(&mut self) -> usize {
        match self {
            Backing::Heap(v) => v.as_mut_ptr().expose_provenance(),
            #[cfg(not(miri))]
            Backing::Mapped(addr, _) => *addr,
        }
    }

    /// Whether `offset..offset + len` is all zeros. The OS pages of a
    /// mapping that are not resident are skipped: untouched or dropped
    /// pages of a private anonymous mapping read as zeros, and reading
    /// them would only fault in the zero page. A swapped-out page keeps its
    /// bytes and is not resident either, so on a machine with swap every
    /// byte is read.
    pub(super) fn is_zero(&self, offset: usize, len: usize) -> bool {
        let bytes = &self.bytes()[offset..offset + len];
        #[cfg(not(miri))]
        if let Backing::Mapped(addr, _) = self {
            let page = crate::os_page_size();
            let (start, end) = (addr + offset, addr + offset + len);
            let (lo, hi) = (start / page * page, end.next_multiple_of(page));
            let mut resident = vec![0u8; (hi - lo) / page];
            if !swap_in_use() && crate::sys::side_resident(lo, hi - lo, &mut resident) {
                return resident.iter().enumerate().all(|(i, r)| {
                    if r & 1 == 0 {
                        return true;
                    }
                    let from = (lo + i * page).max(start) - start;
                    let to = (lo + (i + 1) * page).min(end) - start;
                    all_zero(&bytes[from..to])
                });
            }
        }
        all_zero(bytes)
    }

    /// Writes `byte` over `offset..offset + len`; zeros over the whole OS
    /// pages of a mapping are dropped to the OS instead (they read back as
    /// zeros and cost nothing until touched).
    pub(super) fn fill(&mut self, offset: usize, len: usize, byte: u8) {
        #[cfg(not(miri))]
        if let (0, Backing::Mapped(addr, _)) = (byte, &*self) {
            let page = crate::os_page_size();
            let (start, end) = (addr + offset, addr + offset + len);
            let (lo, hi) = (start.next_multiple_of(page), end / page * page);
            // SAFETY:
            // - `lo..hi` is whole OS pages inside this mapping, whose contents
            //   there the caller gives up (they are overwritten with zeros
            //   either way), and `&self` holds no reference into it.
            if lo < hi && unsafe { crate::sys::side_zero(lo, hi - lo) } {
                let base = *addr;
                self.bytes_mut()[offset..lo - base].fill(0);
                self.bytes_mut()[hi - base..offset + len].fill(0);
                self.expose();
                return;
            }
        }
        // A poison fill (lazily freed pages hold garbage) skips the pages of
        // a mapping that are not resident: they read as zeros, one of the
        // two outcomes a lazy free allows (a swapped-out page keeps its old
        // bytes, the other one), and writing them would only fault them in.
        #[cfg(not(miri))]
        if let (1.., Backing::Mapped(addr, _)) = (byte, &*self) {
            let page = crate::os_page_size();
            let base = *addr;
            let (start, end) = (base + offset, base + offset + len);
            let (lo, hi) = (start.next_multiple_of(page), end / page * page);
            let mut resident = vec![0u8; hi.saturating_sub(lo) / page];
            if lo < hi && crate::sys::side_resident(lo, hi - lo, &mut resident) {
                let bytes = self.bytes_mut();
                bytes[offset..lo - base].fill(byte);
                bytes[hi - base..offset + len].fill(byte);
                for (i, r) in resident.iter().enumerate() {
                    if r & 1 == 1 {
                        let at = lo - base + i * page;
                        bytes[at..at + page].fill(byte);
                    }
                }
                self.expose();
                return;
            }
        }
        self.bytes_mut()[offset..offset + len].fill(byte);
        self.expose();
    }
}

/// Whether `bytes` are all zeros, compared a block at a time against a
/// zero block (one `memcmp` each, not a loop over bytes, which fuzz builds
/// instrument at every iteration).
fn all_zero(bytes: &[u8]) -> bool {
    static ZEROS: [u8; 4096] = [0; 4096];
    bytes.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

/// Whether the real OS has swap space, where a page that is not resident
/// may still hold bytes (read once; Linux: `/proc/swaps` lists a device).
#[cfg(not(miri))]
fn swap_in_use() -> bool {
    static SWAP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SWAP.get_or_init(|| {
        if !cfg!(target_os = "linux") {
            return true;
        }
        std::fs::read_to_string("/proc/swaps").map_or(true, |s| s.lines().count() > 1)
    })
}

impl Drop for Backing {
    fn drop(&mut self) {
        #[cfg(not(miri))]
        if let Backing::Mapped(addr, len) = *self {
            // SAFETY:
            // - One whole side mapping made in `zeroed`; its reservation is
            //   gone, so nothing may use the memory any more (the simulated
            //   OS's contract), and no reference into it outlives `self`.
            let _ = unsafe { crate::sys::side_unmap(addr, len) };
        }
    }
}
