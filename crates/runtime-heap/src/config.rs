//! [`Config`]: the heap's settings, constructible in `const` context so a
//! [`GlobalHeap`](crate::GlobalHeap) can carry one in a `static`.

use core::time::Duration;

use pageheap_alloc::ScavengePolicy;
use pageheap_arena::ReleaseMode;

/// The largest [`Config::arena_bytes`] (1 TiB).
pub const MAX_ARENA_BYTES: usize = 1 << 40;

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
    /// power of two that is a multiple of the chunk size (4 MiB), and at most
    /// 1 TiB ([`MAX_ARENA_BYTES`]): a larger reservation could never be had
    /// from a 48-bit address space beside anything else.
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
    /// The scavenge index the page allocator keeps:
    /// [`ScavengePolicy::Go127`] (the default) leaves dense memory alone in
    /// the background and pairs with GC cycles; [`ScavengePolicy::Go119`]
    /// releases the highest free memory first, for comparison.
    pub scavenge_policy: ScavengePolicy,
    /// Whether the program tells the heap where its GC cycles end, with
    /// [`Heap::end_gc_cycle`](crate::Heap::end_gc_cycle). Under go127 the
    /// background scavenger sees memory freed in a cycle only after the
    /// cycle ends. `false` (the default, for programs without a GC): the
    /// background scavenger ends a generation itself whenever it has work
    /// to do and the current generation has none for it.
    pub gc_cycles: bool,
    /// The share of one CPU the background scavenger aims to use while it
    /// has work, in `(0, 1]`; default 0.05 (5% of one CPU).
    pub scavenger_cpu: f64,
    /// The longest the background scavenger sleeps between bursts of work
    /// while it has work; default 50 ms. It bounds how late it reacts
    /// when the pacing would sleep longer.
    pub scavenger_max_sleep: Duration,
    /// How long a background scavenger with nothing to do waits before it
    /// looks again (frees do not wake it); default 100 ms.
    pub scavenger_idle_poll: Duration,
}

impl Config {
    /// The defaults: `DontNeed` release, system arena size, thread caches
    /// on, background scavenger on, 10% but at most 4 MiB retained over the
    /// in-use pages, no memory limit, the go127 scavenge index with
    /// generations the scavenger ends itself, 5% of one CPU for the
    /// scavenger and sleeps of at most 50 ms.
    pub const DEFAULT: Config = Config {
        release_mode: ReleaseMode::DontNeed,
        arena_bytes: 0,
        thread_cache: true,
        background_scavenger: true,
        retain_extra_percent: 10,
        retain_extra_max: 4 << 20,
        memory_limit: usize::MAX,
        on_grow: None,
        scavenge_policy: ScavengePolicy::Go127,
        gc_cycles: false,
        scavenger_cpu: 0.05,
        scavenger_max_sleep: Duration::from_millis(50),
        scavenger_idle_poll: Duration::from_millis(100),
    };

    /// Sets [`Config::scavenge_policy`].
    #[must_use]
    pub const fn with_scavenge_policy(mut self, policy: ScavengePolicy) -> Self {
        self.scavenge_policy = policy;
        self
    }

    /// Sets [`Config::gc_cycles`].
    #[must_use]
    pub const fn with_gc_cycles(mut self, on: bool) -> Self {
        self.gc_cycles = on;
        self
    }

    /// Sets the background scavenger's pacing: [`Config::scavenger_cpu`]
    /// and [`Config::scavenger_max_sleep`].
    #[must_use]
    pub const fn with_scavenger_pacing(mut self, cpu: f64, max_sleep: Duration) -> Self {
        self.scavenger_cpu = cpu;
        self.scavenger_max_sleep = max_sleep;
        self
    }

    /// Checks every field: the errors [`Heap::with_os`](crate::Heap::with_os)
    /// reports.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) naming the first bad field.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |what| Err(crate::Error::Config(what));
        if self.arena_bytes != 0
            && (!self.arena_bytes.is_power_of_two()
                || !self.arena_bytes.is_multiple_of(crate::CHUNK_BYTES))
        {
            return bad("arena size must be a power-of-two multiple of the chunk size");
        }
        if self.arena_bytes > MAX_ARENA_BYTES {
            return bad("arena size must be at most 1 TiB");
        }
        if !(self.scavenger_cpu > 0.0 && self.scavenger_cpu <= 1.0) {
            return bad("scavenger_cpu must be in (0, 1]");
        }
        if self.scavenger_max_sleep.is_zero() || self.scavenger_idle_poll.is_zero() {
            return bad("scavenger sleeps must be longer than zero");
        }
        Ok(())
    }

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
