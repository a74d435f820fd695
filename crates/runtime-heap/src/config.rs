//! [`Config`]: the heap's settings, constructible in `const` context so a
//! [`GlobalHeap`](crate::GlobalHeap) can carry one in a `static`.

use pageheap_arena::ReleaseMode;

/// Heap settings. Start from [`Config::DEFAULT`] and change fields or use
/// the `const` builders:
///
/// ```
/// use pageheap::Config;
///
/// const CONFIG: Config = Config::DEFAULT.with_memory_limit(1 << 30).with_background_scavenger(false);
/// assert_eq!(CONFIG.memory_limit, 1 << 30);
/// ```
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Config {
    /// How released pages go back to the OS. With
    /// [`ReleaseMode::DontNeed`] (the default) released pages read back as
    /// zeros, so spans made only of released pages need no zeroing.
    pub release_mode: ReleaseMode,
    /// The size of each address-space reservation the heap makes (Go's
    /// `heapArenaBytes`); 0 means [`pageheap_arena::HEAP_ARENA_BYTES`]. Must be a
    /// power of two that is a multiple of the chunk size (4 MiB).
    pub arena_bytes: usize,
    /// Serve spans of fewer than 16 pages from a per-thread 64-page cache
    /// without taking the heap lock.
    pub thread_cache: bool,
    /// Start the background scavenger thread when the heap is created
    /// (needs the `std` feature; ignored without it).
    pub background_scavenger: bool,
    /// The background scavenger's goal for retained memory (in-use plus
    /// free-but-not-released pages) is the in-use pages plus this percent of
    /// them (Go retains 10% over its heap goal)...
    pub retain_extra_percent: usize,
    /// ... but at most this many bytes over the in-use pages, so a large
    /// heap does not keep a large amount of free memory resident. The
    /// default, 4 MiB, keeps the resident heap within 4 MiB (plus per-thread
    /// caches) of the live data once the scavenger has caught up.
    pub retain_extra_max: usize,
    /// The memory limit in bytes of Ready memory (heap and metadata);
    /// `usize::MAX` for none. Allocations that would exceed it first
    /// release free memory down to 95% of it, and the background scavenger
    /// works towards that 95% goal too.
    pub memory_limit: usize,
    /// Called with `(base, len)` each time the heap hands a new range of
    /// address space to its page allocator, for runtimes that keep side
    /// tables per arena (a span map, card tables, a GC bitmap). It runs
    /// under the heap lock: it must be quick and must not call into this
    /// heap (that would deadlock); allocating from the global allocator is
    /// fine.
    pub on_grow: Option<fn(usize, usize)>,
}

impl Config {
    /// The defaults: `DontNeed` release, system arena size, thread caches
    /// on, background scavenger on, 10% but at most 4 MiB retained over the
    /// in-use pages, no memory limit.
    pub const DEFAULT: Config = Config {
        release_mode: ReleaseMode::DontNeed,
        arena_bytes: 0,
        thread_cache: true,
        background_scavenger: true,
        retain_extra_percent: 10,
        retain_extra_max: 4 << 20,
        memory_limit: usize::MAX,
        on_grow: None,
    };

    /// Sets [`Config::memory_limit`].
    #[must_use]
    pub const fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// Sets [`Config::background_scavenger`].
    #[must_use]
    pub const fn with_background_scavenger(mut self, on: bool) -> Self {
        self.background_scavenger = on;
        self
    }

    /// Sets [`Config::thread_cache`].
    #[must_use]
    pub const fn with_thread_cache(mut self, on: bool) -> Self {
        self.thread_cache = on;
        self
    }

    /// Sets [`Config::arena_bytes`].
    #[must_use]
    pub const fn with_arena_bytes(mut self, bytes: usize) -> Self {
        self.arena_bytes = bytes;
        self
    }

    /// Sets [`Config::on_grow`].
    #[must_use]
    pub const fn with_on_grow(mut self, f: fn(usize, usize)) -> Self {
        self.on_grow = Some(f);
        self
    }

    /// Sets [`Config::release_mode`].
    #[must_use]
    pub const fn with_release_mode(mut self, mode: ReleaseMode) -> Self {
        self.release_mode = mode;
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}
