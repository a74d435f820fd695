//! Growing the heap (Go's `mheap.grow` and `curArena`): address space is
//! reserved an arena at a time at the next hint, handed to the page
//! allocator a chunk multiple at a time, and mapped arena by arena because
//! every OS call must stay within one reservation. Also the quarantine of
//! spans whose pages the OS refused to make Ready, and giving the arenas
//! back when the heap goes.

// The arena rollbacks and the final free call the OS's `unsafe`
// destructive operations, each argued where it is made.
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;

use pageheap_alloc::{Allocation, Geometry};
use pageheap_arena::Os;

use super::{Counters, HeapGeometry, Inner, PAGE_BYTES};
use crate::Error;

impl<O: Os + 'static> Inner<O> {
    /// Allocates `n_pages`, growing the heap once if nothing fits.
    pub(super) fn alloc_or_grow(
        &mut self,
        os: &O,
        counters: &Counters,
        n_pages: usize,
    ) -> Result<Allocation, Error> {
        if let Some(a) = self.pa.alloc(n_pages)? {
            return Ok(a);
        }
        self.grow(os, n_pages)?;
        counters.grows.fetch_add(1, Ordering::Relaxed);
        self.pa
            .alloc(n_pages)?
            .ok_or(Error::NoRoomAfterGrow { n_pages })
    }

    /// Grows the heap by at least `n_pages`, in whole chunks (Go's
    /// `mheap.grow`): takes the space from the current arena, reserving a
    /// new arena at the next hint when it runs out.
    pub(super) fn grow(&mut self, os: &O, n_pages: usize) -> Result<(), Error> {
        let too_large = Error::TooLarge {
            n_pages,
            align: PAGE_BYTES,
        };
        let ask = n_pages
            .checked_next_multiple_of(HeapGeometry::CHUNK_PAGES)
            .and_then(|p| p.checked_mul(PAGE_BYTES))
            .ok_or(too_large)?;
        if self.cur_end - self.cur_base < ask {
            // Room in the table first: a reservation it cannot record could
            // never be freed.
            self.arenas.reserve(1)?;
            let (av, asize) = self.hints.reserve_arena(os, ask)?.into_raw_parts();
            let at = self.arenas.as_slice().partition_point(|&(b, _)| b < av);
            // Cannot fail: room for one more was made above.
            self.arenas.insert(at, (av, asize))?;
            self.arena_reserved += asize;
            if av == self.cur_end && self.cur_end != 0 {
                // Contiguous with the current arena: just extend it.
                self.cur_end += asize;
            } else {
                // Hand the old arena's unused tail to the page allocator so
                // it is not wasted. This is best effort: if the OS refuses,
                // the tail stays Reserved and is freed with its arena.
                if self.cur_base < self.cur_end {
                    let (tb, tl) = (self.cur_base, self.cur_end - self.cur_base);
                    if self.map_or_undo(os, tb, tl).is_ok() {
                        if self.pa.grow(tb, tl).is_ok() {
                            self.heap_sys += tl;
                            self.grew(tb, tl);
                        } else {
                            // SAFETY:
                            // - The tail was mapped just above and the grow
                            //   failed, so no span covers it.
                            let _ = self.per_arena(tb, tl, |b, l| unsafe { os.fault(b, l) });
                        }
                    }
                }
                self.cur_base = av;
                self.cur_end = av + asize;
            }
        }
        let v = self.cur_base;
        if let Err((e, stuck)) = self.map_or_undo(os, v, ask) {
            // Mapped pieces that could not be unmapped are skipped for good.
            self.cur_base = v + stuck;
            return Err(e.into());
        }
        if let Err(e) = self.pa.grow(v, ask) {
            // Back to Reserved so a later grow can map it again; if even
            // that fails, skip the range (it is freed with its arena).
            let fault_back = |b, l| {
                // SAFETY:
                // - The range was mapped just above and the grow failed, so
                //   the page allocator does not have it and no span covers it.
                unsafe { os.fault(b, l) }
            };
            if self.per_arena(v, ask, fault_back).is_err() {
                self.cur_base = v + ask;
            }
            return Err(e.into());
        }
        self.cur_base = v + ask;
        self.heap_sys += ask;
        self.grew(v, ask);
        Ok(())
    }

    /// Reports a range just handed to the page allocator: the `log` event
    /// and the [`Config::on_grow`](crate::Config::on_grow) callback.
    fn grew(&self, base: usize, len: usize) {
        #[cfg(feature = "log")]
        log::debug!(
            "heap grew by {} KiB at {base:#x} ({} MiB in all)",
            len >> 10,
            self.heap_sys >> 20
        );
        if let Some(f) = self.on_grow {
            f(base, len);
        }
    }

    /// Runs an OS call on `base..base + len` one arena reservation at a
    /// time: contiguous arenas are separate reservations, and the OS layer
    /// checks each call against one reservation. Stops at the first error.
    /// If an earlier piece succeeded the state is mixed; callers only use
    /// this for calls that are idempotent on their target state (`used`) or
    /// whose partial effect is harmless and undone on drop (`map`, `fault`:
    /// a failed `map` leaves the range unused, and the arena is freed
    /// whole).
    pub(super) fn per_arena(
        &self,
        base: usize,
        len: usize,
        mut call: impl FnMut(usize, usize) -> Result<(), pageheap_arena::Error>,
    ) -> Result<(), pageheap_arena::Error> {
        let end = base + len;
        let mut at = base;
        while at < end {
            let arenas = self.arenas.as_slice();
            let i = arenas.partition_point(|&(b, _)| b <= at).checked_sub(1);
            let piece_end = match i.map(|i| arenas[i]) {
                Some((b, l)) if at < b + l => (b + l).min(end),
                // Not in a known arena: let the OS judge the whole rest.
                _ => end,
            };
            call(at, piece_end - at)?;
            at = piece_end;
        }
        Ok(())
    }

    /// Maps `base..base + len` arena by arena; on failure faults back what
    /// was mapped and returns the error with the length of the prefix that
    /// stays mapped (0 unless undoing failed too).
    pub(super) fn map_or_undo(
        &self,
        os: &O,
        base: usize,
        len: usize,
    ) -> Result<(), (pageheap_arena::Error, usize)> {
        let mut mapped = 0;
        let r = self.per_arena(base, len, |b, l| {
            os.map(b, l)?;
            mapped = b + l - base;
            Ok(())
        });
        match r {
            Ok(()) => Ok(()),
            Err(e) if mapped == 0 => Err((e, 0)),
            // SAFETY:
            // - `base..base + mapped` was mapped by this call a moment ago
            //   and never handed out.
            Err(e) => match self.per_arena(base, mapped, |b, l| unsafe { os.fault(b, l) }) {
                Ok(()) => Err((e, 0)),
                Err(_) => Err((e, mapped)),
            },
        }
    }

    /// Parks an allocated span whose pages could not be made Ready. If the
    /// quarantine table cannot grow (the OS refuses even that), the span
    /// stays allocated for good: its pages are leaked inside the heap but
    /// still accounted as released.
    pub(super) fn quarantine_span(&mut self, base: usize, n_pages: usize, released: usize) {
        let _ = self.quarantine.push((base, n_pages, released));
        self.quarantined_released += released;
    }

    /// Retries making quarantined spans Ready; those that succeed go back to
    /// the page allocator as free, Ready pages.
    pub(super) fn retry_quarantine(&mut self, os: &O) {
        let mut i = self.quarantine.len();
        while i > 0 {
            i -= 1;
            let (base, n_pages, released) = self.quarantine.as_slice()[i];
            if self
                .per_arena(base, n_pages * PAGE_BYTES, |b, l| os.used(b, l))
                .is_err()
            {
                continue;
            }
            if self.pa.free(base, n_pages).is_ok() {
                self.quarantine.remove(i);
                self.quarantined_released -= released;
            }
        }
    }
}

impl<O: Os + 'static> Drop for Inner<O> {
    fn drop(&mut self) {
        // Heap arenas go first, while the page allocator (and the OS it
        // holds) is still alive; the allocator frees its own metadata when
        // its field is dropped right after.
        for &(base, len) in self.arenas.as_slice() {
            // SAFETY:
            // - Each entry is one whole arena reservation the heap made.
            // - The heap is going away: `Inner` drops only with the last
            //   handle to it, so no call can hand out or take back a span.
            // - Span memory is reached only through raw pointers
            //   (`Span::as_ptr`), documented as valid only while the heap
            //   lives; no safe code holds a reference into an arena.
            let r = unsafe { self.os.free(base, len) };
            debug_assert!(r.is_ok(), "freeing a heap arena failed: {r:?}");
        }
    }
}
