//! Unit tests: the pacing controller, request size checks, the cache
//! overlap check.

use pageheap_alloc::PageCache;

use crate::heap::{cache_overlaps, check_size, HeapGeometry, PAGE_BYTES};
#[cfg(feature = "std")]
use crate::scavenger::pacing::{Pacer, PiController, MIN_WORK_NS};
use crate::Error;

#[cfg(feature = "std")]
#[test]
fn pi_controller_saturates_and_resets() {
    let mut pi = PiController::scavenger();
    // An input far below the set point drives the output to its clamp.
    let mut out = 0.0;
    for _ in 0..100 {
        out = pi.next(0.0, 1.0, 1e9).expect("finite");
    }
    assert_eq!(out, 1000.0);
    // Far above: to the lower clamp, and the anti-windup term lets it come
    // back down within a few periods instead of unwinding for ages.
    let mut steps = 0;
    while pi.next(1.0, 0.0, 1e9).expect("finite") > 0.001 {
        steps += 1;
        assert!(steps < 20, "integral wound up");
    }
    // Overflowing input resets and reports failure.
    assert_eq!(pi.next(f64::NEG_INFINITY, 1.0, 1e9), None);
    // The first step from zero is the proportional term plus one integral
    // step: 0.3375 * e + (0.3375 * p / 3.2e6) * e, clamped at the bottom.
    let mut pi = PiController::scavenger();
    let e = 0.01;
    let p = 1e6;
    let expected = 0.3375 * e;
    assert!((pi.next(0.0, e, p).unwrap() - expected).abs() < 1e-12);
    let second = 0.3375 * e + 0.3375 * p / 3.2e6 * e;
    assert!((pi.next(0.0, e, p).unwrap() - second).abs() < 1e-12);
}

#[cfg(feature = "std")]
/// Drives the pacer in a closed loop with simulated work and sleep and
/// returns the CPU share of all CPUs used over the second half of the run.
/// With Go's gains the loop does not settle on a fixed point (short bursts
/// alternate with long sleeps), but its time average sits at the set point.
fn average_share(procs: usize, cpu: f64, worked_ns: f64) -> f64 {
    let mut pacer = Pacer::new(procs, cpu, f64::INFINITY);
    // The start ratio is the set point's: work w, sleep w (1 - cpu) / cpu.
    assert!((pacer.sleep_ratio() - cpu / (1.0 - cpu)).abs() < 1e-12);
    let (mut work, mut total) = (0.0, 0.0);
    for i in 0..1000 {
        let (worked, sleep) = pacer.plan(worked_ns);
        assert!(worked >= MIN_WORK_NS);
        assert!(sleep >= worked / 1000.0 && sleep <= worked / 0.001);
        pacer.update(worked, sleep);
        if i >= 500 {
            work += worked;
            total += (worked + sleep) * procs as f64;
        }
    }
    work / total
}

#[cfg(feature = "std")]
#[test]
fn pacer_averages_its_set_point() {
    for (procs, cpu, work) in [
        (1, 0.01, 1e6),
        (2, 0.02, 1e6),
        (8, 0.08, 3e6),
        (2, 0.02, 1e5),
        (4, 0.04, 2e6),
        (2, 0.04, 1e6),
    ] {
        let want = cpu / procs as f64;
        let used = average_share(procs, cpu, work);
        assert!(
            (used - want).abs() < want * 0.15,
            "{procs} procs, {cpu} of a CPU, {work} ns work: averaged {used}"
        );
    }
}

#[cfg(feature = "std")]
#[test]
fn pacer_sleeps_at_most_the_longest_sleep() {
    // 1% of one CPU would sleep 99 ms after 1 ms of work; the cap is 20 ms.
    let pacer = Pacer::new(1, 0.01, 20e6);
    assert_eq!(pacer.plan(1e6), (1e6, 20e6));
    let pacer = Pacer::new(1, 0.5, 20e6);
    assert_eq!(pacer.plan(1e6), (1e6, 1e6));
}

#[test]
fn size_checks() {
    assert!(matches!(check_size(0, PAGE_BYTES), Err(Error::ZeroPages)));
    assert!(check_size(1, PAGE_BYTES).is_ok());
    assert!(check_size(usize::MAX / PAGE_BYTES / 2, PAGE_BYTES).is_err());
    assert!(matches!(
        check_size(usize::MAX / PAGE_BYTES, PAGE_BYTES),
        Err(Error::TooLarge { .. })
    ));
    assert!(check_size(1, 1 << 62).is_ok());
    assert!(check_size(1, 1 << 63).is_err());
}

#[test]
fn cache_overlap() {
    let base = 0x10_0000_0000;
    // Pages 0, 5 and 63 are free in the cache.
    let c = PageCache::new::<HeapGeometry>(base, 1 | 1 << 5 | 1 << 63, 0);
    let page = |i: usize| base + i * PAGE_BYTES;
    let check = |from: usize, to: usize, want: bool| {
        assert_eq!(cache_overlaps(&c, from, to), want, "{from:#x}..{to:#x}");
    };
    check(page(0), page(1), true);
    check(page(1), page(5), false);
    check(page(1), page(6), true);
    check(page(6), page(63), false);
    check(page(62), page(64), true);
    check(page(64), page(70), false);
    check(base - PAGE_BYTES, page(0), false);
    check(base - PAGE_BYTES, page(1), true);
    check(base - 10 * PAGE_BYTES, page(100), true);
}

#[test]
fn heap_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<crate::Heap>();
    assert_send_sync::<crate::Heap<pageheap_arena::sim::SimOs>>();
    assert_send_sync::<crate::GlobalHeap>();
}

/// A heap over the simulated OS with no background thread and 4 MiB
/// arenas, `policy` and `gc_cycles` as given; 256 one-page spans
/// allocated, touched through the OS's rules, then all freed.
#[cfg(feature = "std")]
fn dropped_heap(
    policy: pageheap_alloc::ScavengePolicy,
    gc_cycles: bool,
) -> crate::Heap<pageheap_arena::sim::SimOs> {
    let config = crate::Config::DEFAULT
        .with_background_scavenger(false)
        .with_thread_cache(false)
        .with_arena_bytes(4 << 20)
        .with_scavenge_policy(policy)
        .with_gc_cycles(gc_cycles);
    let heap = crate::Heap::with_os(pageheap_arena::sim::SimOs::new(), config).expect("heap");
    let spans: std::vec::Vec<_> = (0..256).map(|_| heap.alloc(1).expect("span")).collect();
    for s in spans {
        heap.free(s).expect("free");
    }
    heap
}

/// The background work unit under go127: with `gc_cycles` the freed
/// memory waits for `end_gc_cycle`; without it the scavenger ends the
/// generation itself and releases at once. Under go119 there are no
/// generations.
#[cfg(feature = "std")]
#[test]
fn background_scavenging_and_generations() {
    use pageheap_alloc::ScavengePolicy::{Go119, Go127};
    let quantum = crate::heap::SCAVENGE_QUANTUM;
    // At least a quantum: a free huge page is released whole.
    let released = |n: Option<usize>| n.is_some_and(|n| n >= quantum);
    // A GC runtime: nothing is visible until the cycle ends.
    let heap = dropped_heap(Go127, true);
    assert_eq!(heap.shared.bg_scavenge_quantum(), Some(0));
    heap.end_gc_cycle();
    assert!(released(heap.shared.bg_scavenge_quantum()));
    // No GC: the scavenger ends the generation itself.
    let heap = dropped_heap(Go127, false);
    assert!(released(heap.shared.bg_scavenge_quantum()));
    assert_eq!(heap.with_page_alloc(|pa| pa.index_state().unwrap().gen), 1);
    // go119 sees frees at once and has no generations.
    let heap = dropped_heap(Go119, true);
    let first = heap.shared.bg_scavenge_quantum();
    assert!(released(first));
    assert_eq!(heap.with_page_alloc(|pa| pa.index_state()), None);
    // 2 MiB was freed and nothing is in use, so the goal is 0 retained:
    // the work goes on until less than two physical pages (16 KiB) are
    // retained, and cannot release more than was dirty.
    let mut total = first.unwrap_or(0);
    while let Some(n) = heap.shared.bg_scavenge_quantum() {
        if n == 0 {
            break;
        }
        total += n;
    }
    let s = heap.stats();
    assert!(
        ((2 << 20) - (16 << 10)..=2 << 20).contains(&total),
        "{total} {s:?}"
    );
    assert_eq!(s.released_background, total);
}

/// Every pacing knob is validated.
#[test]
fn config_validation() {
    use core::time::Duration;
    let ok = crate::Config::DEFAULT;
    assert!(ok.validate().is_ok());
    assert!(ok
        .with_arena_bytes(crate::MAX_ARENA_BYTES)
        .validate()
        .is_ok());
    for bad in [
        ok.with_scavenger_pacing(0.0, Duration::from_millis(5)),
        ok.with_scavenger_pacing(1.5, Duration::from_millis(5)),
        ok.with_scavenger_pacing(f64::NAN, Duration::from_millis(5)),
        ok.with_scavenger_pacing(0.1, Duration::ZERO),
        ok.with_arena_bytes(3 << 22),
        ok.with_arena_bytes(1 << 62),
        ok.with_arena_bytes(2 << 40),
    ] {
        assert!(matches!(bad.validate(), Err(Error::Config(_))), "{bad:?}");
    }
}

/// The background scavenger thread survives every valid configuration,
/// the extreme ones included: it is still running after a drop gives it
/// work, and it stops when asked.
#[cfg(all(feature = "std", not(miri)))]
#[test]
fn background_scavenger_survives_any_valid_config() {
    use core::time::Duration;

    use pageheap_alloc::ScavengePolicy;
    use pageheap_arena::sim::SimOs;

    use crate::{Config, Heap, ReleaseMode};

    let base = Config::DEFAULT
        .with_background_scavenger(true)
        .with_arena_bytes(4 << 20);
    let long = Duration::MAX;
    let configs = [
        base,
        Config {
            retain_extra_percent: usize::MAX,
            ..base
        },
        Config {
            retain_extra_percent: 0,
            retain_extra_max: 0,
            ..base
        },
        Config {
            retain_extra_max: usize::MAX,
            ..base
        },
        base.with_memory_limit(1),
        base.with_memory_limit(usize::MAX - 1),
        base.with_scavenger_pacing(f64::MIN_POSITIVE, Duration::from_nanos(1)),
        base.with_scavenger_pacing(1.0, long),
        base.with_scavenger_pacing(1e-9, long),
        Config {
            scavenger_idle_poll: long,
            ..base
        },
        Config {
            scavenger_idle_poll: Duration::from_nanos(1),
            ..base
        },
        base.with_gc_cycles(true),
        base.with_scavenge_policy(ScavengePolicy::Go119),
        base.with_release_mode(ReleaseMode::Free),
        base.with_thread_cache(false),
    ];
    for (i, config) in configs.into_iter().enumerate() {
        config
            .validate()
            .unwrap_or_else(|e| panic!("config {i} is valid: {e}"));
        let heap = Heap::with_os(SimOs::new(), config).expect("heap");
        let spans: Vec<_> = (0..20).map(|_| heap.alloc(100).expect("alloc")).collect();
        for s in spans {
            heap.free(s).expect("free");
        }
        heap.flush_thread_cache();
        heap.end_gc_cycle();
        std::thread::sleep(Duration::from_millis(30));
        let alive = heap
            .scavenger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|h| !h.is_finished());
        assert!(alive, "config {i}: the scavenger thread died: {config:?}");
        assert!(heap.stop_scavenger(), "config {i}: was running");
    }
}
