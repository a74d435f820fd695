//! [`Heap`]: the page allocator behind a lock, grown arena by arena, with
//! per-thread caches, the memory limit and explicit scavenging.
//!
//! The shared state ([`Shared`]) sits in an `Arc` so the background
//! scavenger thread and the thread caches' weak handles can reach it; the
//! [`Heap`] value is the owner that stops and joins the scavenger on drop.
//!
//! Nothing on the allocation, free, growth, scavenging or release paths
//! allocates from the global heap (the heap may *be* the global heap): the
//! arena table and the quarantine are [`SideVec`]s in memory mapped from the
//! OS, the hint list is inline. Creating a heap allocates twice, for the
//! `Arc`s of the OS object and of the shared state; starting the background
//! scavenger allocates what spawning a thread does.

mod growth;
mod view;

pub use view::{CachedBlock, HeapView, QuarantinedSpan};

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use pageheap_alloc::{Allocation, Geometry, HeapRelease, OsRelease, PageAlloc, PageCache};
use pageheap_arena::{ArenaHints, Os, SideVec, SystemOs};

use crate::cache::{self, CacheOwner, Hits};
use crate::{Config, Error, HeapStats};

/// The page allocator geometry of the heap: Go's 64-bit layout (8 KiB
/// pages, 4 MiB chunks, 48-bit addresses) on 64-bit targets, its 32-bit
/// layout elsewhere.
#[cfg(target_pointer_width = "64")]
pub type HeapGeometry = pageheap_alloc::Go64;
/// The page allocator geometry of the heap: Go's 64-bit layout (8 KiB
/// pages, 4 MiB chunks, 48-bit addresses) on 64-bit targets, its 32-bit
/// layout elsewhere.
#[cfg(not(target_pointer_width = "64"))]
pub type HeapGeometry = pageheap_alloc::Go32;

/// The heap's page size in bytes (8 KiB).
pub const PAGE_BYTES: usize = HeapGeometry::PAGE_BYTES;
/// The heap's chunk size in bytes (4 MiB): it grows in multiples of this.
pub const CHUNK_BYTES: usize = HeapGeometry::CHUNK_BYTES;
/// Spans of fewer pages than this are served from the thread cache (Go:
/// a quarter of the 64-page cache).
pub const CACHE_MAX_PAGES: usize = 16;

/// The page allocator type inside a `Heap<O>`.
pub type HeapPageAlloc<O> = PageAlloc<HeapGeometry, Arc<O>>;

/// A run of pages handed out by [`Heap::alloc`]; give it back with
/// [`Heap::free`].
///
/// Deliberately neither `Clone` nor `Copy`: freeing consumes it, so a span
/// cannot be freed twice by safe code that holds on to spans.
#[derive(Debug, PartialEq, Eq, Hash)]
#[must_use = "a span that is dropped without `Heap::free` leaks its pages"]
pub struct Span {
    base: usize,
    n_pages: usize,
    needs_zero: bool,
    /// The id of the heap that handed the span out; 0 for a span rebuilt
    /// from raw parts (whose origin the caller vouches for).
    heap: u64,
}

impl Span {
    /// Rebuilds a span from its address and length in pages, e.g. in a
    /// global allocator that only gets the pointer back. The heap checks
    /// it on [`Heap::free`] (pages that are not allocated are an error).
    ///
    /// ```compile_fail,E0133
    /// // Forging a span takes an `unsafe` block: this does not compile.
    /// let span = pageheap::Span::from_raw_parts(0x1000_0000, 1);
    /// ```
    ///
    /// # Safety
    ///
    /// Freeing the span gives its pages back to the heap, which may hand
    /// them out again at once. If the pages are allocated, the caller must
    /// be their owner, giving them up: they came from
    /// [`Span::into_raw_parts`] of a span of the heap it will be freed to,
    /// and nothing (no other span, reference or pointer) uses them once
    /// `free` has accepted it. Pages that are not allocated make `free`
    /// return an error instead, which is safe.
    #[allow(unsafe_code)]
    pub unsafe fn from_raw_parts(base: usize, n_pages: usize) -> Span {
        Span {
            base,
            n_pages,
            needs_zero: true,
            heap: 0,
        }
    }

    /// The address of the first byte.
    pub fn base(&self) -> usize {
        self.base
    }

    /// The first byte as a pointer, ready to read and write the span's
    /// `len()` bytes (with the provenance the OS mapping exposed; no
    /// integer-to-pointer casts needed in the caller). The memory is valid
    /// while the span is allocated and its heap lives: freeing the span or
    /// dropping the heap gives it back.
    ///
    /// # Panics
    /// Never for a span the heap handed out (no heap page is at address 0);
    /// only for one rebuilt by [`Span::from_raw_parts`] at address 0.
    pub fn as_ptr(&self) -> NonNull<u8> {
        NonNull::new(core::ptr::with_exposed_provenance_mut(self.base))
            .expect("no span starts at address 0")
    }

    /// The length in pages.
    pub fn n_pages(&self) -> usize {
        self.n_pages
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.n_pages * PAGE_BYTES
    }

    /// Always false: spans have at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// One past the last byte.
    pub fn end(&self) -> usize {
        self.base + self.len()
    }

    /// Whether the memory may hold old data. `false` only when every page
    /// was released to the OS (or never used) and the release mode makes
    /// released memory read back as zeros, so the caller can skip zeroing.
    /// Under [`ReleaseMode::Free`](pageheap_arena::ReleaseMode::Free) it is always
    /// `true`: fresh pages and released ones are both "scavenged" to the
    /// page allocator and only the former are known to be zero.
    pub fn needs_zero(&self) -> bool {
        self.needs_zero
    }

    /// The address and length in pages, giving up the span.
    pub fn into_raw_parts(self) -> (usize, usize) {
        (self.base, self.n_pages)
    }
}

/// A thread-safe page heap over the OS abstraction `O`: the real OS by
/// default, a simulated one in tests. See the [crate documentation](crate).
///
/// The heap does not hand out its OS object: the page allocator's metadata
/// and every arena live in memory it manages. A caller who needs the OS
/// keeps an `Arc<O>` of their own and passes a clone to [`Heap::with_os`].
///
/// ```compile_fail,E0599
/// # fn f(heap: &pageheap::Heap) {
/// let os = heap.os(); // no such method
/// # }
/// ```
pub struct Heap<O: Os + 'static = SystemOs> {
    pub(crate) shared: Arc<Shared<O>>,
    #[cfg(feature = "std")]
    pub(crate) scavenger: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The most the background scavenger releases in one work unit (Go's
/// `scavengeQuantum` is 64 KiB). The release runs outside the heap lock,
/// so a larger unit costs no lock time; it amortizes the two lock round
/// trips, the system call and the TLB shootdown of each unit over more
/// pages. On the development machine, returning 1.8 GiB cost about a third
/// more of the scavenger's CPU time in 64 KiB units than in 2 MiB ones.
#[cfg(feature = "std")]
pub(crate) const SCAVENGE_QUANTUM: usize = 2 << 20;

/// Source of heap ids; 0 marks an unused cache slot.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Everything the heap's threads share.
pub(crate) struct Shared<O: Os + 'static> {
    id: u64,
    /// The OS, shared with the page allocator for lock-free `used` calls.
    pub(crate) os: Arc<O>,
    inner: Mutex<Inner<O>>,
    pub(crate) config: Config,
    /// Whether released memory reads back as zeros.
    zeroed_after_release: bool,
    /// Bumped when thread caches should be flushed.
    epoch: AtomicU64,
    pub(crate) memory_limit: AtomicUsize,
    /// Bytes of released (Prepared) pages sitting in thread caches: the page
    /// allocator counts them allocated and unscavenged.
    cached_released: AtomicUsize,
    pub(crate) counters: Counters,
    /// The thread caches as the whole-heap checker sees them.
    mirrors: view::Mirrors,
    #[cfg(feature = "std")]
    pub(crate) signal: crate::scavenger::Signal,
}

/// Activity counters.
#[derive(Default)]
pub(crate) struct Counters {
    spans_allocated: AtomicU64,
    pages_allocated: AtomicU64,
    spans_freed: AtomicU64,
    cache_refills: AtomicU64,
    grows: AtomicU64,
    pub(crate) released_background: AtomicUsize,
    pub(crate) released_eager: AtomicUsize,
    pub(crate) released_explicit: AtomicUsize,
    pub(crate) scavenger_cpu_ns: AtomicU64,
}

/// The state behind the heap lock.
pub(crate) struct Inner<O: Os + 'static> {
    pub(crate) pa: HeapPageAlloc<O>,
    /// The OS the arenas came from (the page allocator holds another
    /// handle to the same object but does not hand it out).
    os: Arc<O>,
    /// [`Config::on_grow`].
    on_grow: Option<fn(usize, usize)>,
    hints: ArenaHints,
    /// Reserved address space not yet handed to the page allocator (Go's
    /// `curArena`): `cur_base..cur_end`.
    cur_base: usize,
    cur_end: usize,
    /// Every arena reservation as `(base, length)`, sorted by base. Freed on
    /// drop.
    arenas: SideVec<(usize, usize)>,
    /// Spans whose `used` call failed, as `(base, pages, released bytes)`.
    /// They stay allocated until a later `used` succeeds.
    quarantine: SideVec<(usize, usize, usize)>,
    /// Sum of the released bytes in `quarantine`.
    quarantined_released: usize,
    /// Bytes handed to the page allocator.
    heap_sys: usize,
    arena_reserved: usize,
}

impl Heap<SystemOs> {
    /// A heap over the real OS with [`Config::DEFAULT`].
    ///
    /// # Errors
    /// As [`Heap::with_os`].
    pub fn new() -> Result<Self, Error> {
        Self::with_os(SystemOs::new(), Config::DEFAULT)
    }

    /// A heap over the real OS with `config`.
    ///
    /// # Errors
    /// As [`Heap::with_os`].
    pub fn with_config(config: Config) -> Result<Self, Error> {
        Self::with_os(SystemOs::new(), config)
    }
}

impl<O: Os + 'static> Heap<O> {
    /// A heap over `os` with `config`. Reserves the page allocator's
    /// metadata address space; heap memory is reserved on first use.
    ///
    /// # Errors
    /// [`Error::Config`] for any field [`Config::validate`] rejects (an
    /// arena size that is not a power-of-two multiple of [`CHUNK_BYTES`],
    /// pacing knobs out of range); [`Error::PageAlloc`] if the metadata
    /// reservations fail; [`Error::Spawn`] if the background scavenger
    /// cannot be started.
    pub fn with_os(os: O, config: Config) -> Result<Self, Error> {
        config.validate()?;
        let arena_bytes = if config.arena_bytes == 0 {
            pageheap_arena::HEAP_ARENA_BYTES.max(CHUNK_BYTES)
        } else {
            config.arena_bytes
        };
        let os = Arc::new(os);
        let zeroed_after_release = os.zeroed_after_unused(config.release_mode);
        // `pageheap_alloc::Config` is `#[non_exhaustive]`: no struct literal.
        #[allow(clippy::field_reassign_with_default)]
        let pa_config = {
            let mut c = pageheap_alloc::Config::default();
            #[allow(unsafe_code)]
            // SAFETY:
            // - The heap grows the page allocator only by arenas it reserved
            //   from this same OS object for the heap (`grow`), never by
            //   metadata or foreign memory.
            // - Heap memory is reached only through spans; a page the page
            //   allocator holds free belongs to no span, so nothing relies on
            //   its contents (a span is freed only by its owner, and a span
            //   rebuilt from raw parts carries the same promise).
            let release = unsafe { OsRelease::new(config.release_mode) };
            c.heap_release = HeapRelease::Os(release);
            c.policy = config.scavenge_policy;
            c
        };
        let pa = PageAlloc::new(Arc::clone(&os), pa_config)?;
        let inner = Inner {
            pa,
            os: Arc::clone(&os),
            on_grow: config.on_grow,
            hints: ArenaHints::for_target().with_arena_bytes(arena_bytes),
            cur_base: 0,
            cur_end: 0,
            arenas: SideVec::new(),
            quarantine: SideVec::new(),
            quarantined_released: 0,
            heap_sys: 0,
            arena_reserved: 0,
        };
        let shared = Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            os,
            inner: Mutex::new(inner),
            config,
            zeroed_after_release,
            epoch: AtomicU64::new(0),
            memory_limit: AtomicUsize::new(config.memory_limit),
            cached_released: AtomicUsize::new(0),
            counters: Counters::default(),
            mirrors: view::Mirrors::default(),
            #[cfg(feature = "std")]
            signal: crate::scavenger::Signal::default(),
        });
        let heap = Heap {
            shared,
            #[cfg(feature = "std")]
            scavenger: Mutex::new(None),
        };
        #[cfg(feature = "std")]
        if config.background_scavenger {
            heap.start_scavenger()?;
        }
        Ok(heap)
    }

    /// The heap's id, unique in the process.
    pub(crate) fn id(&self) -> u64 {
        self.shared.id
    }

    /// The configuration the heap was created with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Allocates `n_pages` contiguous pages.
    ///
    /// Spans of fewer than [`CACHE_MAX_PAGES`] pages come from the calling
    /// thread's page cache when it can serve them, without the heap lock.
    /// Others take the lock, search the page allocator first fit, and grow
    /// the heap if nothing fits. Pages that had been released are made Ready
    /// first (Go's `sysUsed`).
    ///
    /// # Errors
    /// [`Error::ZeroPages`]; [`Error::TooLarge`] if the size overflows;
    /// [`Error::Os`] or [`Error::PageAlloc`] if the OS refuses memory.
    pub fn alloc(&self, n_pages: usize) -> Result<Span, Error> {
        check_size(n_pages, PAGE_BYTES)?;
        if self.shared.config.thread_cache && n_pages < CACHE_MAX_PAGES {
            if let Some(r) = self.alloc_cached(n_pages) {
                return r;
            }
        }
        self.shared.alloc_locked(n_pages, PAGE_BYTES)
    }

    /// Allocates `n_pages` pages starting at a multiple of `align` bytes (a
    /// power of two). Alignments above a page over-allocate and give the
    /// excess back at once, so the span is exactly `n_pages` long.
    ///
    /// # Errors
    /// As [`Heap::alloc`]; [`Error::BadAlign`] if `align` is not a power of
    /// two.
    pub fn alloc_aligned(&self, n_pages: usize, align: usize) -> Result<Span, Error> {
        if !align.is_power_of_two() {
            return Err(Error::BadAlign { align });
        }
        if align <= PAGE_BYTES {
            return self.alloc(n_pages);
        }
        check_size(n_pages, align)?;
        self.shared.alloc_locked(n_pages, align)
    }

    /// Frees a span. A span this heap handed out that lies inside the
    /// calling thread's cache block goes back into that cache, without the
    /// heap lock (the cache's pages are given back to the page allocator
    /// when it is flushed); others take the lock.
    ///
    /// # Errors
    /// [`Error::ForeignSpan`] if another heap handed the span out;
    /// [`Error::NotAllocated`] if the span overlaps free pages of this
    /// thread's cache; [`Error::PageAlloc`] if any of its pages is not
    /// allocated or not in the heap. The heap is unchanged on error.
    #[allow(unsafe_code)] // Giving a span's pages back to the thread cache.
    pub fn free(&self, span: Span) -> Result<(), Error> {
        if span.heap != 0 && span.heap != self.shared.id {
            return Err(Error::ForeignSpan {
                base: span.base,
                n_pages: span.n_pages,
            });
        }
        // Only a span this heap handed out (spans cannot be copied, and a
        // span rebuilt from raw parts names no heap) is known to own
        // allocated pages, which a thread cache may take back.
        let genuine = span.heap == self.shared.id;
        let (base, n_pages) = span.into_raw_parts();
        check_size(n_pages, PAGE_BYTES)?;
        let end = n_pages
            .checked_mul(PAGE_BYTES)
            .and_then(|len| base.checked_add(len))
            .ok_or(Error::TooLarge {
                n_pages,
                align: PAGE_BYTES,
            })?;
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        let local = cache::with_existing_slot(self.shared.id, |slot| {
            let Some(c) = slot.cache.as_mut() else {
                return Local::Elsewhere;
            };
            if cache_overlaps(c, base, end) {
                return Local::Overlaps;
            }
            // A span inside the thread's cache block goes back into the
            // cache, with no lock: the next small allocation reuses it.
            // After `release_all` (a new epoch) it takes the lock instead.
            // SAFETY:
            // - A genuine span's pages are allocated in this heap's page
            //   allocator, which the cache came from, and freeing the span
            //   gives them up: it was consumed above.
            if genuine && slot.epoch == epoch && unsafe { c.put_back(base, n_pages) } {
                slot.hits.freed += 1;
                self.shared.mirrors.masks(slot);
                return Local::Cached;
            }
            Local::Elsewhere
        });
        match local {
            Some(Local::Overlaps) => return Err(Error::NotAllocated { base, n_pages }),
            Some(Local::Cached) => return Ok(()),
            _ => {}
        }
        let mut inner = self.shared.lock();
        inner.pa.free(base, n_pages)?;
        drop(inner);
        self.shared
            .counters
            .spans_freed
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Releases at least `bytes` of free memory to the OS if that much is
    /// free and Ready (highest addresses first). Returns the bytes released.
    ///
    /// # Errors
    /// [`Error::PageAlloc`] if the OS refused a release.
    pub fn scavenge(&self, bytes: usize) -> Result<usize, Error> {
        let mut inner = self.shared.lock();
        let n = inner.pa.scavenge(bytes)?;
        drop(inner);
        self.shared
            .counters
            .released_explicit
            .fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }

    /// Tells the heap that a GC cycle's mark phase ended: the scavenge
    /// index moves to its next generation, and memory freed during the
    /// cycle becomes visible to the background scavenger (under the go127
    /// policy, with [`Config::gc_cycles`] set; without it the scavenger
    /// ends generations itself, and under go119 this does nothing but wake
    /// the scavenger). Wakes the background scavenger.
    pub fn end_gc_cycle(&self) {
        self.shared.end_gc_cycle();
    }

    /// Returns every free page to the OS (Go's `debug.FreeOSMemory`): flushes
    /// this thread's page cache, asks every other thread to flush its own on
    /// its next allocation, and scavenges everything free. Returns the bytes
    /// released.
    ///
    /// # Errors
    /// As [`Heap::scavenge`].
    pub fn release_all(&self) -> Result<usize, Error> {
        self.shared.epoch.fetch_add(1, Ordering::AcqRel);
        self.flush_thread_cache();
        self.scavenge(usize::MAX)
    }

    /// Gives this thread's page cache for this heap back to the heap.
    pub fn flush_thread_cache(&self) {
        let taken = cache::with_existing_slot(self.shared.id, |slot| {
            let taken = (slot.cache.take(), core::mem::take(&mut slot.hits));
            self.shared.mirrors.sync(slot);
            taken
        });
        if let Some((c, hits)) = taken {
            self.shared.take_back(c, hits);
        }
    }

    /// Sets the memory limit on Ready memory (heap and metadata), in bytes;
    /// `usize::MAX` for none. If the heap is over it, free memory is released
    /// at once down to 95% of it; from then on allocations do the same.
    ///
    /// # Errors
    /// As [`Heap::scavenge`].
    pub fn set_memory_limit(&self, bytes: usize) -> Result<(), Error> {
        self.shared.memory_limit.store(bytes, Ordering::Relaxed);
        let mut inner = self.shared.lock();
        self.shared.enforce_limit(&mut inner)?;
        drop(inner);
        #[cfg(feature = "std")]
        self.shared.signal.wake();
        Ok(())
    }

    /// The memory limit in bytes (`usize::MAX` for none).
    pub fn memory_limit(&self) -> usize {
        self.shared.memory_limit.load(Ordering::Relaxed)
    }

    /// A consistent snapshot of the heap's memory and counters.
    pub fn stats(&self) -> HeapStats {
        let inner = self.shared.lock();
        self.shared.stats_locked(&inner)
    }

    /// Runs `f` on the page allocator under the heap lock, e.g. to check its
    /// invariants. Pages in thread caches are allocated as far as the page
    /// allocator knows.
    ///
    /// # Panics
    /// If `f` calls into this heap (allocating, freeing, `stats`, ...): the
    /// heap is locked, and the call panics instead of deadlocking. Under
    /// [`GlobalHeap`](crate::GlobalHeap), `f` may allocate (the fallback
    /// serves it) and free what it allocated, but freeing a block the
    /// heap itself served aborts the process (a global allocator cannot
    /// report an error).
    pub fn with_page_alloc<R>(&self, f: impl FnOnce(&HeapPageAlloc<O>) -> R) -> R {
        self.inspect(|v| f(v.page_alloc()))
    }

    /// The arena reservations the heap holds, as `(base, len)` in address
    /// order.
    pub fn arenas(&self) -> Vec<(usize, usize)> {
        // The vector is allocated with the lock released: an allocation under
        // the heap lock would re-enter the heap when it is the global
        // allocator.
        let mut out = Vec::new();
        loop {
            let n = self.shared.lock().arenas.len();
            out.reserve(n);
            let inner = self.shared.lock();
            if inner.arenas.len() <= out.capacity() {
                out.extend_from_slice(inner.arenas.as_slice());
                return out;
            }
        }
    }

    /// Starts the background scavenger if it is not running. Returns
    /// whether this call started it.
    ///
    /// # Errors
    /// [`Error::Spawn`] if the thread cannot be created.
    #[cfg(feature = "std")]
    pub fn start_scavenger(&self) -> Result<bool, Error> {
        let mut slot = self.scavenger.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return Ok(false);
        }
        self.shared.signal.reset();
        let handle = crate::scavenger::spawn(Arc::clone(&self.shared)).map_err(Error::Spawn)?;
        *slot = Some(handle);
        Ok(true)
    }

    /// Stops the background scavenger and waits for it; returns whether it
    /// was running.
    #[cfg(feature = "std")]
    pub fn stop_scavenger(&self) -> bool {
        let handle = self
            .scavenger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match handle {
            Some(h) => {
                self.shared.signal.stop();
                // A panic in the scavenger already printed its message; the
                // heap itself stays consistent because every change happens
                // under the lock.
                let _ = h.join();
                true
            }
            None => false,
        }
    }

    /// Serves a small span from the thread cache, refilling it under the
    /// lock when it cannot. `None` means: use the locked path.
    fn alloc_cached(&self, n_pages: usize) -> Option<Result<Span, Error>> {
        let shared = &self.shared;
        let owner = || {
            let weak: Weak<Shared<O>> = Arc::downgrade(shared);
            weak as Weak<dyn CacheOwner>
        };
        cache::with_slot(shared.id, owner, |slot| {
            let epoch = shared.epoch.load(Ordering::Acquire);
            if slot.epoch != epoch {
                let hits = core::mem::take(&mut slot.hits);
                let old = slot.cache.take();
                shared.mirrors.sync(slot);
                shared.take_back(old, hits);
                slot.epoch = epoch;
            }
            if let Some(a) = slot.cache.as_mut().and_then(|c| c.alloc(n_pages)) {
                slot.hits.spans += 1;
                slot.hits.pages += n_pages as u64;
                shared.mirrors.masks(slot);
                return Some(shared.finish_cached(a, n_pages));
            }
            let mut inner = shared.lock();
            if let Some(mut old) = slot.cache.take() {
                shared.mirrors.sync(slot);
                inner.flush(shared, &mut old);
            }
            let hits = core::mem::take(&mut slot.hits);
            shared.add_hits(hits);
            let mut fresh = inner.pa.alloc_to_cache();
            if fresh.is_empty() {
                // No free page at all: grow by a chunk and refill from it.
                // If growing fails, the locked path retries and reports it.
                if inner.grow(&shared.os, HeapGeometry::CHUNK_PAGES).is_err() {
                    return None;
                }
                shared.counters.grows.fetch_add(1, Ordering::Relaxed);
                fresh = inner.pa.alloc_to_cache();
                if fresh.is_empty() {
                    return None;
                }
            }
            let released = fresh.scav_mask().count_ones() as usize * PAGE_BYTES;
            shared
                .cached_released
                .fetch_add(released, Ordering::Relaxed);
            shared
                .counters
                .cache_refills
                .fetch_add(1, Ordering::Relaxed);
            let a = fresh.alloc(n_pages);
            slot.cache = Some(fresh);
            shared.mirrors.sync(slot);
            drop(inner);
            let a = a?;
            slot.hits.spans += 1;
            slot.hits.pages += n_pages as u64;
            Some(shared.finish_cached(a, n_pages))
        })
        .flatten()
    }
}

impl<O: Os + 'static> Drop for Heap<O> {
    fn drop(&mut self) {
        #[cfg(feature = "std")]
        self.stop_scavenger();
    }
}

impl<O: Os + 'static> core::fmt::Debug for Heap<O> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Heap")
            .field("id", &self.shared.id)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<O: Os + 'static> Shared<O> {
    /// Takes the heap lock. A panic while holding it cannot leave the page
    /// allocator half-updated (its operations check before they change), so
    /// a poisoned lock is taken over rather than propagated.
    ///
    /// While the guard lives the thread counts as inside the heap (see
    /// [`GlobalHeap`](crate::GlobalHeap)): anything it allocates meanwhile
    /// is a re-entrant allocation.
    ///
    /// # Panics
    /// If this thread already holds the lock: code running under it (a
    /// [`Heap::with_page_alloc`] closure, a [`Config::on_grow`] callback)
    /// called back into the heap, which would otherwise deadlock.
    pub(crate) fn lock(&self) -> Locked<'_, O> {
        assert!(
            crate::global::held() != self.id,
            "pageheap: re-entered heap {} from code running under its own lock \
             (a `with_page_alloc` closure or an `on_grow` callback called into the heap)",
            self.id
        );
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut inner = Locked {
            prev: crate::global::enter(),
            prev_held: crate::global::set_held(self.id),
            guard: inner,
        };
        if !inner.quarantine.is_empty() {
            inner.retry_quarantine(&self.os);
        }
        inner
    }

    /// The locked allocation path: alloc (growing if needed), honour the
    /// memory limit, make released pages Ready, trim alignment padding.
    fn alloc_locked(&self, n_pages: usize, align: usize) -> Result<Span, Error> {
        let pad = align / PAGE_BYTES - 1;
        let total = n_pages + pad; // cannot overflow: checked by `check_size`
        let bytes = total * PAGE_BYTES;
        let mut inner = self.lock();
        let a = inner.alloc_or_grow(&self.os, &self.counters, total)?;
        // Go's eager scavenging: scavenged pages about to become Ready count
        // against the limit already. A refused release does not fail the
        // allocation; the limit is a goal, and the next allocation retries.
        let _ = self.enforce_limit(&mut inner);
        if a.scavenged > 0 {
            let os = &*self.os;
            if let Err(e) = inner.per_arena(a.base, bytes, |b, l| os.used(b, l)) {
                inner.quarantine_span(a.base, total, a.scavenged);
                return Err(e.into());
            }
        }
        let base = a.base.next_multiple_of(align);
        let head = (base - a.base) / PAGE_BYTES;
        let tail = total - n_pages - head;
        if head > 0 {
            inner.pa.free(a.base, head)?;
        }
        if tail > 0 {
            inner.pa.free(base + n_pages * PAGE_BYTES, tail)?;
        }
        drop(inner);
        self.counters
            .spans_allocated
            .fetch_add(1, Ordering::Relaxed);
        self.counters
            .pages_allocated
            .fetch_add(n_pages as u64, Ordering::Relaxed);
        Ok(Span {
            base,
            n_pages,
            needs_zero: !(a.scavenged == bytes && self.zeroed_after_release),
            heap: self.id,
        })
    }

    /// Finishes a cache hit outside the lock: released pages become Ready.
    fn finish_cached(&self, a: Allocation, n_pages: usize) -> Result<Span, Error> {
        let bytes = n_pages * PAGE_BYTES;
        if a.scavenged > 0 {
            let r = self.os.used(a.base, bytes);
            self.cached_released
                .fetch_sub(a.scavenged, Ordering::Relaxed);
            if let Err(e) = r {
                let mut inner = self.lock();
                inner.quarantine_span(a.base, n_pages, a.scavenged);
                return Err(e.into());
            }
        }
        Ok(Span {
            base: a.base,
            n_pages,
            needs_zero: !(a.scavenged == bytes && self.zeroed_after_release),
            heap: self.id,
        })
    }

    /// The heap's stats, from the layers' counters under the lock.
    pub(crate) fn stats_locked(&self, inner: &Inner<O>) -> HeapStats {
        let pa = inner.pa.stats();
        // A run the background scavenger has out for release is allocated
        // in the bitmaps but belongs to nobody: its release is under way,
        // so it counts as released.
        let detached = inner.pa.detached().map_or(0, |(_, n)| n * PAGE_BYTES);
        let pa_alloc = pa.pages_in_use * PAGE_BYTES - detached;
        let pa_released = pa.pages_scavenged * PAGE_BYTES + detached;
        let cached_released = self.cached_released.load(Ordering::Relaxed);
        let parked = cached_released + inner.quarantined_released;
        let heap_inuse = pa_alloc.saturating_sub(parked);
        let heap_released = pa_released + parked;
        let heap_free = inner.heap_sys - pa_alloc - pa_released;
        let c = &self.counters;
        HeapStats {
            heap_sys: inner.heap_sys,
            heap_inuse,
            heap_free,
            heap_released,
            metadata: pa.metadata_mapped_bytes,
            metadata_reserved: pa.metadata_reserved_bytes,
            arena_reserved: inner.arena_reserved,
            mapped_ready: heap_inuse + heap_free + pa.metadata_mapped_bytes,
            memory_limit: self.memory_limit.load(Ordering::Relaxed),
            spans_allocated: c.spans_allocated.load(Ordering::Relaxed),
            pages_allocated: c.pages_allocated.load(Ordering::Relaxed),
            spans_freed: c.spans_freed.load(Ordering::Relaxed),
            cache_refills: c.cache_refills.load(Ordering::Relaxed),
            grows: c.grows.load(Ordering::Relaxed),
            released_background: c.released_background.load(Ordering::Relaxed),
            released_eager: c.released_eager.load(Ordering::Relaxed),
            released_explicit: c.released_explicit.load(Ordering::Relaxed),
            scavenger_cpu_ns: c.scavenger_cpu_ns.load(Ordering::Relaxed),
        }
    }

    /// The OS page size.
    #[cfg(feature = "std")]
    pub(crate) fn os_page_size(&self) -> usize {
        self.os.page_size()
    }

    /// Folds a thread's cache hits into the counters.
    fn add_hits(&self, hits: Hits) {
        if hits.spans > 0 {
            self.counters
                .spans_allocated
                .fetch_add(hits.spans, Ordering::Relaxed);
            self.counters
                .pages_allocated
                .fetch_add(hits.pages, Ordering::Relaxed);
        }
        if hits.freed > 0 {
            self.counters
                .spans_freed
                .fetch_add(hits.freed, Ordering::Relaxed);
        }
    }
}

impl<O: Os + 'static> CacheOwner for Shared<O> {
    fn take_back(&self, cache: Option<PageCache>, hits: Hits) {
        self.add_hits(hits);
        if let Some(mut c) = cache {
            let mut inner = self.lock();
            inner.flush(self, &mut c);
        }
    }

    fn forget_mirror(&self, mirror: u8) {
        self.mirrors.forget(mirror);
    }
}

impl<O: Os + 'static> Inner<O> {
    /// Returns a cache's free pages to the page allocator.
    fn flush(&mut self, shared: &Shared<O>, cache: &mut PageCache) {
        let released = cache.scav_mask().count_ones() as usize * PAGE_BYTES;
        match self.pa.flush_cache(cache) {
            Ok(()) => {
                shared
                    .cached_released
                    .fetch_sub(released, Ordering::Relaxed);
            }
            // Only a cache this allocator did not hand out is refused; ours
            // never is. Should it happen, the pages stay allocated (leaked
            // inside the heap, still consistent).
            Err(e) => debug_assert!(false, "flushing a page cache failed: {e}"),
        }
    }
}

/// The heap lock, held: the state behind it, with the thread marked as
/// inside the heap until the guard drops.
pub(crate) struct Locked<'a, O: Os + 'static> {
    guard: MutexGuard<'a, Inner<O>>,
    /// The thread's mark before the lock was taken, restored on drop.
    prev: crate::global::Inside,
    /// The heap lock this thread held before (another heap's, or none).
    prev_held: u64,
}

impl<O: Os + 'static> Deref for Locked<'_, O> {
    type Target = Inner<O>;

    fn deref(&self) -> &Inner<O> {
        &self.guard
    }
}

impl<O: Os + 'static> DerefMut for Locked<'_, O> {
    fn deref_mut(&mut self) -> &mut Inner<O> {
        &mut self.guard
    }
}

impl<O: Os + 'static> Drop for Locked<'_, O> {
    fn drop(&mut self) {
        crate::global::set_held(self.prev_held);
        crate::global::leave(self.prev);
    }
}

/// Checks that `n_pages` is non-zero and that `n_pages` pages plus `align`
/// padding fit in the address space.
pub(crate) fn check_size(n_pages: usize, align: usize) -> Result<(), Error> {
    if n_pages == 0 {
        return Err(Error::ZeroPages);
    }
    let fits = n_pages
        .checked_add(align / PAGE_BYTES)
        .and_then(|p| p.checked_mul(PAGE_BYTES))
        .is_some_and(|b| b <= isize::MAX as usize);
    if fits {
        Ok(())
    } else {
        Err(Error::TooLarge { n_pages, align })
    }
}

/// Whether `base..end` overlaps a free page of `cache`.
/// Where [`Heap::free`] found a span, seen from the thread's cache.
enum Local {
    /// It overlaps pages the cache holds free: not allocated.
    Overlaps,
    /// The cache took it back.
    Cached,
    /// Outside the cache (or the cache could not take it).
    Elsewhere,
}

pub(crate) fn cache_overlaps(cache: &PageCache, base: usize, end: usize) -> bool {
    let cbase = cache.base();
    let cend = cbase + 64 * PAGE_BYTES;
    if end <= cbase || base >= cend {
        return false;
    }
    let first = (base.max(cbase) - cbase) / PAGE_BYTES;
    let last = (end.min(cend) - cbase).div_ceil(PAGE_BYTES); // exclusive
    let n = last - first;
    let mask = if n == 64 {
        u64::MAX
    } else {
        ((1u64 << n) - 1) << first
    };
    cache.free_mask() & mask != 0
}
