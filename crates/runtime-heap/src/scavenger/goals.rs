//! The heap's scavenging goals, one place for every trigger: the memory
//! limit (forced scavenges), the background scavenger's retained-memory goal
//! (unforced scavenges), and the generations of the go127 index.

use core::sync::atomic::Ordering;

use pageheap_arena::Os;

use crate::heap::{Inner, Shared};
#[cfg(feature = "std")]
use crate::heap::{PAGE_BYTES, SCAVENGE_QUANTUM};
use crate::Error;
#[cfg(feature = "std")]
use crate::HeapStats;

impl<O: Os + 'static> Shared<O> {
    /// Releases free memory down to 95% of the limit if Ready memory is
    /// over the limit (Go's memory-limit goal).
    pub(crate) fn enforce_limit(&self, inner: &mut Inner<O>) -> Result<(), Error> {
        let limit = self.memory_limit.load(Ordering::Relaxed);
        if limit == usize::MAX {
            return Ok(());
        }
        let ready = self.stats_locked(inner).mapped_ready;
        if ready > limit {
            let goal = limit / 100 * 95;
            let n = inner.pa.scavenge(ready - goal)?;
            self.counters.released_eager.fetch_add(n, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Whether the background scavenger has work: retained memory above
    /// its goal, or Ready memory above 95% of the limit.
    #[cfg(feature = "std")]
    pub(crate) fn bg_has_work(&self, inner_stats: &HeapStats) -> bool {
        let s = inner_stats;
        let extra = (s.heap_inuse / 100)
            .saturating_mul(self.config.retain_extra_percent)
            .min(self.config.retain_extra_max);
        let phys = self.os.page_size().max(PAGE_BYTES);
        let goal = s.heap_inuse.saturating_add(extra);
        let over_goal = s.heap_retained().saturating_sub(goal) >= 2 * phys;
        let limit = self.memory_limit.load(Ordering::Relaxed);
        let over_limit = limit != usize::MAX && s.mapped_ready > limit / 100 * 95;
        over_goal || over_limit
    }

    /// One background work unit: if there is work, an unforced scavenge
    /// of one run of at most a quantum, released outside the heap lock. Returns the bytes released, or `None` if there was
    /// no work.
    ///
    /// Under go127 an unforced scavenge sees memory freed in a generation
    /// only once the generation has ended. A program that reports its GC
    /// cycles ([`Config::gc_cycles`](crate::Config::gc_cycles)) ends them;
    /// for one that does not, the scavenger ends a generation itself when
    /// the current one leaves it nothing to do, so freed memory is returned
    /// one scavenger round later instead of never.
    #[cfg(feature = "std")]
    pub(crate) fn bg_scavenge_quantum(&self) -> Option<usize> {
        let mut inner = self.lock();
        let stats = self.stats_locked(&inner);
        if !self.bg_has_work(&stats) {
            return None;
        }
        let mut run = inner.pa.detach_for_release(SCAVENGE_QUANTUM, false);
        if run.is_none() && !self.config.gc_cycles && inner.pa.index_state().is_some() {
            inner.pa.next_gen();
            run = inner.pa.detach_for_release(SCAVENGE_QUANTUM, false);
        }
        drop(inner);
        let Some(run) = run else {
            return Some(0);
        };
        // The OS call runs without the heap lock, as Go's scavenger does:
        // the run stays allocated in the page allocator meanwhile, so no
        // allocation can take it.
        let len = run.n_pages() * PAGE_BYTES;
        // SAFETY:
        // - The run lies in one chunk of an arena this heap reserved from
        //   `self.os` and grew into its page allocator (the heap grows by
        //   nothing else), and the page allocator holds it allocated until
        //   `reattach` below, so no span, cache or other scavenge uses its
        //   memory: nothing relies on its contents.
        #[allow(unsafe_code)]
        let ok = unsafe { self.os.unused(run.base(), len, self.config.release_mode) }.is_ok();
        let mut inner = self.lock();
        // Cannot fail: `run` is the one this allocator detached.
        let r = inner.pa.reattach(run, ok);
        drop(inner);
        debug_assert!(r.is_ok(), "reattaching the detached run failed: {r:?}");
        // An OS refusal counts as "nothing released"; the next round retries.
        let n = if ok { len } else { 0 };
        self.counters
            .released_background
            .fetch_add(n, Ordering::Relaxed);
        Some(n)
    }

    /// Ends a generation of the scavenge index (a GC cycle's end).
    pub(crate) fn end_gc_cycle(&self) {
        self.lock().pa.next_gen();
        #[cfg(feature = "std")]
        self.signal.wake();
    }
}
