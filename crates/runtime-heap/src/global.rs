//! [`GlobalHeap`]: the heap as a `#[global_allocator]`.
//!
//! Allocations of at least a page ([`PAGE_BYTES`]) are spans of a [`Heap`]
//! over the real OS (or any [`Os`], see [`GlobalHeap::with_os_fn`]; the
//! tests run the adapter over the simulated OS under Miri); alignments
//! above a page over-allocate and trim. Smaller
//! allocations go to the fallback, [`std::alloc::System`], because a page
//! heap is the wrong tool for them (a size-class allocator would sit there).
//!
//! The heap is created on the first large allocation, without allocating
//! from the global heap: an atomic state machine (uninitialised → busy →
//! ready or failed) guards a `OnceLock`, other threads spin (yielding) while
//! one initialises, and anything the initialising thread allocates in the
//! meantime goes to the fallback.
//!
//! The heap's internals do not allocate from the global heap (see the
//! `heap` module), and this adapter checks it: a per-thread mark says the
//! thread is inside the heap (set around every heap call made here and
//! whenever the heap lock is held, by anyone) or creating it. Every
//! allocation request, of any size, that arrives while the mark is set is
//! served by the fallback, so the heap lock is never taken twice by one
//! thread, and counted: [`GlobalHeap::reentrant_allocations`] for requests
//! from inside the heap (0 is the heap's promise),
//! [`GlobalHeap::creation_allocations`] for those made while creating it
//! (the two `Arc`s of a heap).
//!
//! Deallocation is routed by size like allocation; a large block the heap
//! does not know (one the fallback served during initialisation or a
//! re-entrant call) is recognised by the page allocator's "not in the heap"
//! answer and handed to the fallback. Any other refusal means the caller
//! freed memory it did not own, and the process aborts rather than corrupt
//! the heap.
//!
//! Limits: if the heap cannot be created (the OS refuses address space),
//! every allocation falls back to `System`. Deallocations while the mark is
//! set go to the fallback too, which is right because only the heap's own
//! code runs then and it frees only what it allocated there.
//!
//! The crate's `unsafe` code is here (the `unsafe impl GlobalAlloc`, the
//! zeroing write in `alloc_zeroed`, rebuilding a span in `dealloc`) and at
//! the OS door: the heap's promise to the page allocator that it may
//! release free pages, and the destructive OS calls of growth and drop.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;

use pageheap_arena::{Os, SystemOs};

use crate::heap::{Heap, Span, PAGE_BYTES};
use crate::Config;

const UNINIT: u8 = 0;
const BUSY: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

/// Where a thread is with respect to the heap: the per-thread mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inside {
    /// Not in any heap code.
    No,
    /// Creating the global heap.
    Creating,
    /// In a heap call or holding a heap lock.
    Yes,
}

thread_local! {
    /// This thread's mark: any allocation it makes while the mark is set
    /// must not re-enter the heap. `const` and without a destructor, so
    /// reading it never allocates or fails.
    static IN_HEAP: Cell<Inside> = const { Cell::new(Inside::No) };
    /// The id of the heap whose lock this thread holds (0: none), so that
    /// re-entering it is caught instead of deadlocking.
    static HELD: Cell<u64> = const { Cell::new(0) };
    /// Large blocks the fallback served while this thread held the global
    /// heap's lock (from a `Heap::with_page_alloc` closure), so that their
    /// deallocation under the same lock goes back to the fallback.
    static UNDER_LOCK: [Cell<usize>; UNDER_LOCK_SLOTS] =
        const { [const { Cell::new(0) }; UNDER_LOCK_SLOTS] };
}

/// How many large fallback blocks one `with_page_alloc` closure of the
/// global heap may hold at once.
const UNDER_LOCK_SLOTS: usize = 16;

/// The id of the heap whose lock this thread holds, 0 for none.
pub(crate) fn held() -> u64 {
    HELD.with(Cell::get)
}

/// Records that this thread now holds heap `id`'s lock (0: released);
/// returns the previous record.
pub(crate) fn set_held(id: u64) -> u64 {
    HELD.with(|h| h.replace(id))
}

/// Remembers a fallback block served under the heap lock; `false` if every
/// slot is taken.
fn remember_under_lock(addr: usize) -> bool {
    UNDER_LOCK.with(|slots| {
        slots
            .iter()
            .find(|s| s.get() == 0)
            .map(|s| s.set(addr))
            .is_some()
    })
}

/// Forgets a fallback block served under the heap lock; `false` if it was
/// not one.
fn forget_under_lock(addr: usize) -> bool {
    UNDER_LOCK.with(|slots| {
        slots
            .iter()
            .find(|s| s.get() == addr)
            .map(|s| s.set(0))
            .is_some()
    })
}

/// Marks this thread as inside a heap (unless it is creating one); returns
/// the previous mark for [`leave`].
pub(crate) fn enter() -> Inside {
    IN_HEAP.with(|m| {
        let prev = m.get();
        if prev == Inside::No {
            m.set(Inside::Yes);
        }
        prev
    })
}

/// Restores the mark [`enter`] returned.
pub(crate) fn leave(prev: Inside) {
    IN_HEAP.with(|m| m.set(prev));
}

/// This thread's mark.
fn mark() -> Inside {
    IN_HEAP.with(Cell::get)
}

/// A global allocator over a lazily created [`Heap`].
///
/// ```no_run
/// use pageheap::GlobalHeap;
///
/// #[global_allocator]
/// static GLOBAL: GlobalHeap = GlobalHeap::new();
///
/// fn main() {
///     let v = vec![0u8; 1 << 20]; // 1 MiB: served by the page heap
///     assert!(GLOBAL.heap().unwrap().stats().heap_inuse >= 1 << 20);
///     drop(v);
/// }
/// ```
///
/// The OS is the real one by default. [`GlobalHeap::with_os_fn`] takes
/// another [`Os`] (e.g. the simulated one, so that the adapter's `unsafe`
/// code runs under Miri), made on first use by a plain function.
pub struct GlobalHeap<O: Os + 'static = SystemOs> {
    state: AtomicU8,
    heap: OnceLock<Heap<O>>,
    make_os: fn() -> O,
    config: Config,
    reentrant: AtomicUsize,
    creation: AtomicUsize,
}

impl GlobalHeap {
    /// A global heap with [`Config::DEFAULT`] but no background scavenger
    /// (an allocator should not start threads by itself; call
    /// [`Heap::start_scavenger`] on [`GlobalHeap::heap`] from `main`).
    pub const fn new() -> Self {
        Self::with_config(Config::DEFAULT.with_background_scavenger(false))
    }

    /// A global heap with `config`. With `background_scavenger` set, the
    /// scavenger thread starts during the first large allocation.
    pub const fn with_config(config: Config) -> Self {
        Self::with_os_fn(config, SystemOs::new)
    }
}

impl<O: Os + 'static> GlobalHeap<O> {
    /// A global heap with `config` over the OS `make_os` returns, called
    /// once, during the first large allocation.
    pub const fn with_os_fn(config: Config, make_os: fn() -> O) -> Self {
        GlobalHeap {
            state: AtomicU8::new(UNINIT),
            heap: OnceLock::new(),
            make_os,
            config,
            reentrant: AtomicUsize::new(0),
            creation: AtomicUsize::new(0),
        }
    }

    /// How many allocation requests (of any size, from any thread) reached
    /// this allocator while their thread was inside the heap: in a heap call
    /// made by this adapter or holding the heap lock (e.g. in
    /// [`Heap::release_all`] called from anywhere). They were served by the
    /// fallback. The heap's internals allocate nothing, so this stays 0.
    pub fn reentrant_allocations(&self) -> usize {
        self.reentrant.load(Ordering::Relaxed)
    }

    /// How many allocation requests reached this allocator while the heap
    /// was being created (served by the fallback): the `Arc`s of the OS
    /// object and of the heap's shared state, plus what starting the
    /// background scavenger allocates if the config asks for it.
    pub fn creation_allocations(&self) -> usize {
        self.creation.load(Ordering::Relaxed)
    }

    /// Counts a request if this thread is inside the heap; returns whether
    /// it must go to the fallback.
    fn reentered(&self) -> bool {
        match mark() {
            Inside::No => false,
            Inside::Creating => {
                self.creation.fetch_add(1, Ordering::Relaxed);
                true
            }
            Inside::Yes => {
                self.reentrant.fetch_add(1, Ordering::Relaxed);
                true
            }
        }
    }

    /// The heap, once the first large allocation has created it.
    pub fn heap(&self) -> Option<&Heap<O>> {
        match self.state.load(Ordering::Acquire) {
            READY => self.heap.get(),
            _ => None,
        }
    }

    /// The heap, creating it if needed; `None` if this thread is creating
    /// it right now or creation failed.
    fn get_or_init(&self) -> Option<&Heap<O>> {
        loop {
            match self.state.load(Ordering::Acquire) {
                READY => return self.heap.get(),
                FAILED => return None,
                BUSY if mark() != Inside::No => return None,
                BUSY => std::thread::yield_now(),
                _ => {
                    if self
                        .state
                        .compare_exchange(UNINIT, BUSY, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        let prev = IN_HEAP.with(|m| m.replace(Inside::Creating));
                        let ok = match Heap::with_os((self.make_os)(), self.config) {
                            Ok(h) => self.heap.set(h).is_ok(),
                            Err(_) => false,
                        };
                        leave(prev);
                        self.state
                            .store(if ok { READY } else { FAILED }, Ordering::Release);
                    }
                }
            }
        }
    }

    /// Allocates a large block from the heap; `None` means "use the
    /// fallback", `Some(null)` means out of memory.
    fn alloc_large(&self, layout: Layout) -> Option<(*mut u8, bool)> {
        let heap = self.get_or_init()?;
        if held() == heap.id() {
            // A `with_page_alloc` closure allocating: the heap is locked by
            // this very thread. The fallback serves it, and the block is
            // remembered so that freeing it under the lock goes there too.
            self.reentrant.fetch_add(1, Ordering::Relaxed);
            // SAFETY:
            // - `layout` has a non-zero size (it is large).
            let p = unsafe { System.alloc(layout) };
            if p.is_null() || remember_under_lock(p.addr()) {
                return Some((p, true));
            }
            // SAFETY:
            // - `p` was allocated just above with `layout`.
            unsafe { System.dealloc(p, layout) };
            return Some((core::ptr::null_mut(), true));
        }
        let n_pages = layout.size().div_ceil(PAGE_BYTES);
        let prev = enter();
        let r = heap.alloc_aligned(n_pages, layout.align());
        leave(prev);
        Some(match r {
            Ok(span) => {
                let needs_zero = span.needs_zero();
                let (base, _) = span.into_raw_parts();
                (core::ptr::with_exposed_provenance_mut(base), needs_zero)
            }
            Err(_) => (core::ptr::null_mut(), true),
        })
    }

    /// Frees a large block; `false` means it was not the heap's.
    ///
    /// # Safety
    /// As for [`GlobalAlloc::dealloc`]: `ptr` is a live block this
    /// allocator returned for `layout`, and nothing uses it afterwards.
    unsafe fn dealloc_large(&self, ptr: *mut u8, layout: Layout) -> bool {
        if mark() != Inside::No {
            return false;
        }
        let Some(heap) = self.heap() else {
            return false;
        };
        if held() == heap.id() {
            // Freed inside a `with_page_alloc` closure: a block the
            // fallback served under the lock goes back there; a heap block
            // cannot be freed while this thread holds the heap lock, and
            // there is no way to report an error from `dealloc`.
            if forget_under_lock(ptr.addr()) {
                return false;
            }
            std::process::abort();
        }
        let n_pages = layout.size().div_ceil(PAGE_BYTES);
        let prev = enter();
        // SAFETY:
        // - The caller owns the block and gives it up; if the heap has its
        //   pages allocated, they are exactly the span `alloc_large` made
        //   for this layout (same size rounding), which no one else holds.
        let r = heap.free(unsafe { Span::from_raw_parts(ptr.addr(), n_pages) });
        leave(prev);
        match r {
            Ok(()) => true,
            Err(crate::Error::PageAlloc(pageheap_alloc::Error::NotInHeap { .. })) => false,
            Err(_) => std::process::abort(),
        }
    }
}

impl Default for GlobalHeap {
    fn default() -> Self {
        Self::new()
    }
}

impl<O: Os + 'static> core::fmt::Debug for GlobalHeap<O> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GlobalHeap")
            .field("state", &self.state.load(Ordering::Relaxed))
            .field("heap", &self.heap())
            .field("reentrant_allocations", &self.reentrant_allocations())
            .field("creation_allocations", &self.creation_allocations())
            .finish()
    }
}

/// Whether the heap serves `layout`.
fn is_large(layout: Layout) -> bool {
    layout.size() >= PAGE_BYTES
}

// SAFETY:
// - `alloc` returns either null, a fallback block (`System` upholds the
//   contract), or the base of a fresh span of `ceil(size / PAGE_BYTES)`
//   pages aligned to `max(align, PAGE_BYTES)`. The heap made the span Ready
//   (`Os::used`) before returning it, so by the `Os` contract it is valid
//   for reads and writes of its whole length, which covers `size`, until it
//   is freed; no other span overlaps it (the page allocator hands each page
//   out once), so the block is exclusively the caller's.
// - `dealloc` gets the same layout back (caller's obligation), so it routes
//   to the same place `alloc` did: small layouts to `System`; large ones to
//   the heap, which frees exactly the span it handed out, or, when the heap
//   reports the address is not its own (a block the fallback served), to
//   `System`. While the thread is marked inside the heap, only the heap's
//   own code runs (it calls no user code with the mark set:
//   `Heap::with_page_alloc` clears it around the caller's closure), and that
//   code frees only blocks it allocated while marked, which `alloc` sent to
//   `System`; so `System` gets them back.
// - Nothing here unwinds: errors become null or an abort.
unsafe impl<O: Os + 'static> GlobalAlloc for GlobalHeap<O> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !self.reentered() && is_large(layout) {
            if let Some((p, _)) = self.alloc_large(layout) {
                return p;
            }
        }
        // SAFETY:
        // - `layout` has non-zero size (the `GlobalAlloc::alloc` contract our
        //   caller obeys), which is all `System.alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !self.reentered() && is_large(layout) {
            if let Some((p, needs_zero)) = self.alloc_large(layout) {
                if !p.is_null() && needs_zero {
                    // SAFETY:
                    // - `p` is a fresh heap span of at least `layout.size()`
                    //   bytes, valid for writes (see the impl's SAFETY note).
                    unsafe { p.write_bytes(0, layout.size()) };
                }
                return p;
            }
        }
        // SAFETY:
        // - As in `alloc`: the layout has a non-zero size.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY:
        // - The caller's obligations for `dealloc` are the ones
        //   `dealloc_large` needs.
        if is_large(layout) && unsafe { self.dealloc_large(ptr, layout) } {
            return;
        }
        // SAFETY:
        // - `ptr` was allocated with `layout` by this allocator (caller's
        //   obligation), and the routing above sends a block to `System`
        //   only if `System` allocated it: small layouts always go there,
        //   and a large block reaches here only if the heap does not own it
        //   or the thread is marked inside the heap (see the impl's note).
        unsafe { System.dealloc(ptr, layout) }
    }
}
