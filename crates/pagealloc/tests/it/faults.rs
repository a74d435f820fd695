//! OS failures while creating and growing an allocator: the call fails,
//! nothing changes (no memory stays committed, no reservation leaks), and
//! the simulated OS saw no broken rule.

use pageheap_alloc::{Error, Go64, PageAlloc};
use pageheap_arena::sim::{Call, Faults, SimOs};

use crate::snapshot::{config, new_alloc, page, snapshot, Sim, CHUNK};

#[test]
fn new_fails_cleanly() {
    for call in [Call::Reserve, Call::Map, Call::Used] {
        for k in 1..=10 {
            let os = SimOs::new();
            os.set_faults(Faults::none().nth_of(call, k));
            match Sim::<Go64>::over(os, config()) {
                Ok(pa) => {
                    // The fault was past the calls `new` makes.
                    assert!(pa.os.calls(call) < k, "{call:?} {k}: fault ignored");
                    pa.os.assert_clean();
                }
                Err(e) => assert!(matches!(e, Error::Os(_)), "{call:?} {k}: {e:?}"),
            }
        }
    }
}

/// `new` releases what it reserved before a later failure.
#[test]
fn new_releases_on_failure() {
    let os = std::sync::Arc::new(SimOs::new());
    for k in 1..=8 {
        os.set_faults(Faults::none().nth_of(Call::Reserve, k));
        let before = os.reservations().len();
        let r = PageAlloc::<Go64, _>::new(std::sync::Arc::clone(&os), config());
        assert!(r.is_err() || k > 7, "reserve {k}");
        drop(r);
        assert_eq!(
            os.reservations().len(),
            before,
            "reserve {k}: leaked a reservation"
        );
    }
    os.assert_clean();
}

/// A grow whose metadata commit fails at any point changes nothing; the
/// same grow then succeeds.
#[test]
fn grow_fails_cleanly() {
    for call in [Call::Reserve, Call::Map, Call::Used] {
        for k in 1..=8 {
            let mut pa = new_alloc();
            pa.grow(page(0, 0), CHUNK).unwrap();
            let before = snapshot(&pa);
            let calls_before = pa.os.calls(call);
            pa.os.set_faults(Faults::none().nth_of(call, k));
            // A new chunk map block (1 TiB away) and new summary pages.
            let far = page(0x4_0000, 0);
            match pa.grow(far, 2 * CHUNK) {
                Err(e) => {
                    assert!(matches!(e, Error::Os(_)), "{call:?} {k}: {e:?}");
                    // A chunk-map block may stay allocated (1 MiB and a
                    // page); everything else is as it was.
                    let (after, (ready, meta)) = snapshot(&pa).split_metadata();
                    let (before, (ready0, meta0)) = before.split_metadata();
                    assert_eq!(after, before, "{call:?} {k}");
                    let block = pa.inspect().chunk_map_blocks().1;
                    assert!(ready == ready0 || ready == ready0 + block, "{call:?} {k}");
                    assert_eq!(ready - ready0, meta - meta0, "{call:?} {k}");
                    pa.os.set_faults(Faults::none());
                    pa.grow(far, 2 * CHUNK).expect("retry");
                }
                Ok(()) => {
                    let made = pa.os.calls(call) - calls_before;
                    assert!(made < k, "{call:?} {k}: fault ignored");
                }
            }
            assert_eq!(pa.alloc(2 * 512).unwrap().unwrap().base, far);
            pa.os.assert_clean();
        }
    }
}

/// Enough discontiguous ranges to outgrow the first page of range nodes;
/// a failure to commit more fails the grow cleanly.
#[test]
fn in_use_storage_growth() {
    let mut pa = new_alloc();
    let mut k = 0;
    // 400 separate ranges need about 27 nodes, several pages.
    while k < 400 {
        pa.grow(page(2 * k, 0), CHUNK).unwrap();
        k += 1;
    }
    let (_, _, committed) = pa.inspect().in_use_memory();
    assert!(committed > 4096, "node storage grew");
    // Fail every map from now on: some grow must need more nodes and fail.
    pa.os.set_faults(Faults::none().every(Call::Map));
    let mut failed = false;
    // Cheaper than a full snapshot, which is quadratic in the ranges.
    let cheap = |pa: &Sim| {
        (
            pa.stats(),
            pa.in_use().collect::<Vec<_>>(),
            pa.os.ready_bytes(),
        )
    };
    while k < 2000 {
        let before = cheap(&pa);
        match pa.grow(page(2 * k, 0), CHUNK) {
            Ok(()) => k += 1,
            Err(e) => {
                assert!(matches!(e, Error::Os(_)), "{e:?}");
                assert_eq!(cheap(&pa), before, "failed grow changed state");
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "no grow needed new memory");
    pa.os.set_faults(Faults::none());
    pa.grow(page(2 * k, 0), CHUNK).unwrap();
    assert_eq!(pa.in_use().count(), k + 1);
    pa.os.assert_clean();
}
