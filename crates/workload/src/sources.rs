//! The allocators the scenario drives, behind one small trait: this heap
//! (one per scavenging policy) and the peers a runtime author would
//! otherwise pick, each through its ordinary API.

use std::alloc::{GlobalAlloc, Layout, System};

use pageheap::{Config, Heap, Span, CHUNK_BYTES, PAGE_BYTES};
use pageheap_alloc::ScavengePolicy;

use crate::report::ChunkPages;

/// A source of page-sized and larger blocks of memory.
pub trait Source: Sync {
    /// What the program keeps for a live block.
    type Block: Send;
    /// `pages` pages of `PAGE_BYTES` (8 KiB), aligned to `PAGE_BYTES`;
    /// `None` if the allocator refused.
    fn alloc(&self, pages: usize) -> Option<Self::Block>;
    /// Gives a block back.
    fn free(&self, block: Self::Block);
    /// The block's address and length in bytes.
    fn region(block: &Self::Block) -> (usize, usize);
    /// Sets a memory limit in bytes, for allocators that have one.
    fn set_limit(&self, _bytes: usize) -> bool {
        false
    }
    /// CPU time the allocator's own background thread has used, if it has
    /// one.
    fn background_cpu_ns(&self) -> Option<u64> {
        None
    }
    /// The state of every page the allocator manages, chunk by chunk, if
    /// it can tell.
    fn heap_map(&self) -> Option<Vec<ChunkPages>> {
        None
    }
}

/// A peer allocator called through its `GlobalAlloc` implementation with a
/// layout of `pages * 8 KiB` bytes aligned to 8 KiB, the same shape of
/// request this heap serves.
pub struct Peer<A>(pub A);

impl<A: GlobalAlloc + Sync> Source for Peer<A> {
    /// (address, bytes); the address's provenance is exposed at `alloc`.
    type Block = (usize, usize);

    fn alloc(&self, pages: usize) -> Option<(usize, usize)> {
        let layout = Layout::from_size_align(pages.checked_mul(PAGE_BYTES)?, PAGE_BYTES).ok()?;
        if layout.size() == 0 {
            return None;
        }
        // SAFETY:
        // - `layout` has a non-zero size (checked above), which is all
        //   `GlobalAlloc::alloc` asks of its caller.
        let p = unsafe { self.0.alloc(layout) };
        (!p.is_null()).then(|| (p.expose_provenance(), layout.size()))
    }

    fn free(&self, (addr, len): (usize, usize)) {
        let layout = Layout::from_size_align(len, PAGE_BYTES).expect("the layout alloc made");
        let p = core::ptr::with_exposed_provenance_mut::<u8>(addr);
        // SAFETY:
        // - `addr` and `len` came from `alloc` above on this same allocator
        //   with this same layout, and the scenario frees each block once.
        unsafe { self.0.dealloc(p, layout) }
    }

    fn region(block: &(usize, usize)) -> (usize, usize) {
        *block
    }
}

/// This heap over the real OS, with its background scavenger running.
pub struct Ours(pub Heap);

impl Ours {
    /// A heap with the default configuration and the given scavenging
    /// policy.
    pub fn new(policy: ScavengePolicy) -> Self {
        let config = Config::DEFAULT.with_scavenge_policy(policy);
        Ours(Heap::with_config(config).expect("a heap over the OS"))
    }
}

impl Source for Ours {
    type Block = Span;

    fn alloc(&self, pages: usize) -> Option<Span> {
        self.0.alloc(pages).ok()
    }

    fn free(&self, span: Span) {
        self.0.free(span).expect("a span this heap handed out");
    }

    fn region(span: &Span) -> (usize, usize) {
        (span.base(), span.len())
    }

    fn set_limit(&self, bytes: usize) -> bool {
        self.0
            .set_memory_limit(bytes)
            .expect("the OS releases pages");
        true
    }

    fn background_cpu_ns(&self) -> Option<u64> {
        Some(self.0.stats().scavenger_cpu_ns)
    }

    fn heap_map(&self) -> Option<Vec<ChunkPages>> {
        Some(self.0.with_page_alloc(|pa| {
            let mut chunks = Vec::new();
            for r in pa.in_use() {
                let mut base = r.base;
                while base < r.limit {
                    if let Some(c) = pa.chunk(base) {
                        let states = (0..CHUNK_BYTES / PAGE_BYTES)
                            .map(|i| {
                                if c.alloc.get(i) {
                                    0
                                } else if c.scav.get(i) {
                                    2
                                } else {
                                    1
                                }
                            })
                            .collect();
                        chunks.push(ChunkPages { base, states });
                    }
                    base += CHUNK_BYTES;
                }
            }
            chunks
        }))
    }
}

/// The allocators the report compares, in report order.
pub const ALL: [&str; 5] = [
    "system",
    "jemalloc",
    "mimalloc",
    "pageheap-go127",
    "pageheap-go119",
];

/// How each allocator is configured, as the report states it.
pub fn describe(name: &str) -> &'static str {
    match name {
        "system" => "the platform allocator (glibc malloc on Linux) via std::alloc::System; aligned requests go to posix_memalign/aligned_alloc, large ones are mmapped",
        "jemalloc" => "jemalloc 5.3 through tikv-jemallocator 0.7, built-in defaults (no background threads; dirty pages decay over 10 s)",
        "mimalloc" => "mimalloc 2 through the mimalloc 0.1 crate, built-in defaults (no background thread; freed pages purged lazily by allocating threads)",
        "pageheap-go127" => "this heap, Config::DEFAULT: go127 scavenge index, per-thread 64-page caches, background scavenger at 5% of one CPU, no GC cycles reported",
        "pageheap-go119" => "this heap, Config::DEFAULT with the go119 scavenge index",
        _ => "unknown",
    }
}

/// Runs `f` with the named allocator.
///
/// # Panics
/// If `name` is not in [`ALL`].
pub fn with_source<R>(name: &str, f: impl FnOnce(&dyn Erased) -> R) -> R {
    match name {
        "system" => f(&Peer(System)),
        "jemalloc" => f(&Peer(tikv_jemallocator::Jemalloc)),
        "mimalloc" => f(&Peer(mimalloc::MiMalloc)),
        "pageheap-go127" => f(&Ours::new(ScavengePolicy::Go127)),
        "pageheap-go119" => f(&Ours::new(ScavengePolicy::Go119)),
        other => panic!("unknown allocator {other}"),
    }
}

/// A [`Source`] whose block type is forgotten, so one function can run the
/// scenario with any of them: the scenario itself stays generic and is
/// monomorphised per allocator.
pub trait Erased {
    /// Runs the scenario over this allocator.
    fn run(&self, s: &crate::scenario::Settings) -> crate::scenario::RunResult;
}

impl<S: Source> Erased for S {
    fn run(&self, s: &crate::scenario::Settings) -> crate::scenario::RunResult {
        crate::scenario::run(self, s)
    }
}
