//! The background scavenger thread: keeps retained-but-free memory near its
//! goal at the CPU share [`Config::scavenger_cpu`](crate::Config) asks for,
//! paced by [`Pacer`](super::pacing::Pacer).
//!
//! Go's loop, adapted to a heap that may have no garbage collector: work
//! (64 KiB quanta) for at least 1 ms while there is work, then sleep
//! `worked / sleep_ratio` (at most `Config::scavenger_max_sleep`); when
//! there is no work, park. Go parks until the sweeper wakes it; this heap
//! has no sweeper, so a parked scavenger looks again every
//! `Config::scavenger_idle_poll` and is woken early by
//! [`Heap::set_memory_limit`](crate::Heap::set_memory_limit) and
//! [`Heap::end_gc_cycle`](crate::Heap::end_gc_cycle). Dropping the heap
//! wakes it, and it exits at once. Its own CPU time, from its thread CPU
//! clock, is added to `HeapStats::scavenger_cpu_ns` after every burst.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pageheap_arena::Os;

use super::pacing::{Pacer, MIN_WORK_NS};
use crate::heap::{Shared, PAGE_BYTES};

/// Work time to assume per physical page when the clock reads zero (Go's
/// `approxWorkedNSPerPhysicalPage`), in ns.
const APPROX_NS_PER_PHYS_PAGE: f64 = 10e3;

/// Stop and wake requests for the scavenger thread.
#[derive(Default)]
pub(crate) struct Signal {
    state: Mutex<SignalState>,
    cv: Condvar,
}

#[derive(Default)]
struct SignalState {
    stop: bool,
    wake: bool,
}

impl Signal {
    fn state(&self) -> std::sync::MutexGuard<'_, SignalState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Clears a previous stop request (before a restart).
    pub(crate) fn reset(&self) {
        *self.state() = SignalState::default();
    }

    /// Asks the thread to exit.
    pub(crate) fn stop(&self) {
        self.state().stop = true;
        self.cv.notify_all();
    }

    /// Ends a park early.
    pub(crate) fn wake(&self) {
        self.state().wake = true;
        self.cv.notify_all();
    }

    /// Parks for at most `d` or until woken; returns whether to exit.
    fn park(&self, d: Duration) -> bool {
        let mut s = self.state();
        if !s.stop && !s.wake {
            s = self
                .cv
                .wait_timeout(s, d)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        s.wake = false;
        s.stop
    }

    /// Sleeps `d` (not ended by a wake); returns whether to exit.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut s = self.state();
        loop {
            let now = Instant::now();
            if s.stop || now >= deadline {
                return s.stop;
            }
            s = self
                .cv
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Starts the scavenger thread for `shared`.
pub(crate) fn spawn<O: Os + 'static>(shared: Arc<Shared<O>>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("heap-scavenger".into())
        .spawn(move || run(&shared))
}

/// The thread's loop.
fn run<O: Os + 'static>(shared: &Shared<O>) {
    let procs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let c = &shared.config;
    let mut pacer = Pacer::new(
        procs,
        c.scavenger_cpu,
        c.scavenger_max_sleep.as_nanos() as f64,
    );
    let idle = c.scavenger_idle_poll;
    let mut cpu_seen = pageheap_arena::thread_cpu_time();
    loop {
        let (released, worked) = work(shared);
        if let Some(now) = pageheap_arena::thread_cpu_time() {
            let before = cpu_seen.unwrap_or_default();
            let ns = now.saturating_sub(before).as_nanos() as u64;
            shared
                .counters
                .scavenger_cpu_ns
                .fetch_add(ns, core::sync::atomic::Ordering::Relaxed);
            cpu_seen = Some(now);
        }
        #[cfg(feature = "log")]
        if released != 0 {
            log::trace!(
                "background scavenger released {} KiB in {:.0} us",
                released >> 10,
                worked / 1e3
            );
        }
        if released == 0 {
            if shared.signal.park(idle) {
                return;
            }
            continue;
        }
        let (worked, sleep) = pacer.plan(worked);
        let start = Instant::now();
        if shared.signal.sleep(Duration::from_nanos(sleep as u64)) {
            return;
        }
        pacer.update(worked, start.elapsed().as_nanos() as f64);
    }
}

/// Scavenges quanta until at least [`MIN_WORK_NS`] of work is done or
/// there is no more work. Returns (bytes released, ns worked).
fn work<O: Os + 'static>(shared: &Shared<O>) -> (usize, f64) {
    let phys = shared_phys_page(shared);
    let (mut released, mut worked) = (0, 0.0);
    while worked < MIN_WORK_NS {
        let start = Instant::now();
        let Some(n) = shared.bg_scavenge_quantum() else {
            break;
        };
        let d = start.elapsed().as_nanos() as f64;
        worked += if d > 0.0 {
            d
        } else {
            (n / phys) as f64 * APPROX_NS_PER_PHYS_PAGE
        };
        released += n;
        // Each unit is one run of at most a quantum; nothing released
        // means nothing is left to release for now.
        if n == 0 {
            break;
        }
    }
    (released, worked)
}

/// The physical page size the scavenger releases in.
fn shared_phys_page<O: Os + 'static>(shared: &Shared<O>) -> usize {
    shared.os_page_size().clamp(1, PAGE_BYTES)
}
