//! The real allocator against the flat model, op by op, with the invariant
//! checker after every step.

use pageheap_alloc::{Go64, ScavengePolicy};
use pageheap_testkit::check::{check, check_summary_memory};
use pageheap_testkit::model::Model;
use pageheap_testkit::pagestrat::{apply_and_compare, geometry, page_ops, PageOp};
use pageheap_testkit::replay::RealHeap;
use pageheap_testkit::sim_os::SimOs;
use proptest::prelude::*;

use std::sync::{Arc, OnceLock};

use pageheap_arena::BufferOs;

/// Applies `ops` to a fresh allocator over a simulated OS and a fresh model,
/// comparing after each; at the end, checks the summary memory the OS has
/// mapped and that the OS saw no misuse.
fn check_ops(ops: &[PageOp], policy: ScavengePolicy) -> Result<(), TestCaseError> {
    let os = Arc::new(SimOs::new());
    let g = geometry().with_policy(policy);
    let mut real = RealHeap::<Go64, _>::new(Arc::clone(&os), g).expect("heap");
    let mut model = Model::new(g);
    for (i, op) in ops.iter().enumerate() {
        if let Err(d) = apply_and_compare(&mut real, &mut model, op) {
            return Err(TestCaseError::fail(format!(
                "step {i}: {d}: {:?}",
                std::error::Error::source(&d)
            )));
        }
    }
    check_summary_memory(&real.alloc, |a| os.page_state(a))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    os.assert_clean();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn pagealloc_matches_model_go119(ops in page_ops(200)) {
        check_ops(&ops, ScavengePolicy::Go119)?;
    }

    #[test]
    fn pagealloc_matches_model_go127(ops in page_ops(200)) {
        check_ops(&ops, ScavengePolicy::Go127)?;
    }

    #[test]
    fn pagealloc_over_a_buffer_os_matches_model(ops in page_ops(200)) {
        check_ops_over_buffer(&ops)?;
    }
}

/// Forty-eight chunks grown, then only small requests and frees spread over
/// them: the searches stay near their hints and few go back to the root,
/// so many leaves wait at once for their ancestors to be brought up to
/// date (the allocator defers that to a search from the root or to a full
/// list of such leaves), and the checker verifies the stored summaries
/// after every step.
fn many_chunks_small_ops() -> impl Strategy<Value = Vec<PageOp>> {
    let op = prop_oneof![
        6 => (1u16..=16).prop_map(|npages| PageOp::Alloc { npages }),
        1 => (17u16..=64).prop_map(|npages| PageOp::Alloc { npages }),
        7 => (any::<u32>(), 1u16..=8).prop_map(|(pick, len)| PageOp::Free { pick, len }),
        1 => Just(PageOp::TakeCache),
        1 => (1u8..8).prop_map(|npages| PageOp::CacheAlloc { npages }),
        1 => Just(PageOp::Flush),
    ];
    prop::collection::vec(op, 200..800).prop_map(|ops| {
        // Three groups of sixteen adjacent chunks (see `slot_chunk`).
        let mut all: Vec<PageOp> = (0..48)
            .map(|slot| PageOp::Grow { slot, count: 0 })
            .collect();
        // Fill most of them first so that the frees fragment every chunk.
        all.extend((0..350).map(|_| PageOp::Alloc { npages: 64 }));
        all.extend(ops);
        all
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn deferred_summaries_over_many_chunks(ops in many_chunks_small_ops()) {
        check_ops(&ops, ScavengePolicy::Go127)?;
    }
}

/// One buffer OS for every case of the proptest below: 1 GiB of memory
/// the process never touches beyond the metadata an allocator commits
/// (enough for the whole of `Go64`'s reserved summary address space).
fn shared_buffer_os() -> Arc<BufferOs> {
    static OS: OnceLock<Arc<BufferOs>> = OnceLock::new();
    Arc::clone(OS.get_or_init(|| {
        let buf: &'static mut [u8] = Box::leak(vec![0u8; 1 << 30].into_boxed_slice());
        Arc::new(BufferOs::new(buf, 4096).expect("1 GiB buffer"))
    }))
}

/// [`check_ops`] with the allocator's metadata in a [`BufferOs`], as a
/// kernel with no OS underneath would run it; afterwards the allocator has
/// given every reservation back to the buffer.
fn check_ops_over_buffer(ops: &[PageOp]) -> Result<(), TestCaseError> {
    let os = shared_buffer_os();
    let free_before = os.free_bytes();
    {
        let g = geometry().with_policy(ScavengePolicy::Go127);
        let mut real = RealHeap::<Go64, _>::new(Arc::clone(&os), g).expect("heap");
        let mut model = Model::new(g);
        for (i, op) in ops.iter().enumerate() {
            if let Err(d) = apply_and_compare(&mut real, &mut model, op) {
                return Err(TestCaseError::fail(format!("step {i}: {d}")));
            }
        }
        check_summary_memory(&real.alloc, |a| os.page_state(a))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    prop_assert_eq!(os.free_bytes(), free_before, "reservations leaked");
    Ok(())
}

/// Hand-picked sequences: grows on both sides of a root-summary boundary,
/// an allocation across it, bad input of each kind, the cache and the
/// scavenger.
#[test]
fn pagealloc_matches_model_on_edge_cases() {
    use PageOp::*;
    let mut cases: Vec<Vec<PageOp>> = vec![
        // Slots 24..=31 straddle chunk 8192 (a root and chunk-map boundary).
        vec![
            Grow { slot: 24, count: 7 },
            Grow { slot: 31, count: 3 },
            Alloc { npages: 4000 },
            Alloc { npages: 2000 },
        ],
        vec![
            Grow { slot: 3, count: 0 },
            Grow { slot: 3, count: 0 },
            GrowRaw {
                offset: 4096,
                size: 4 << 20,
            },
            GrowRaw {
                offset: 8 << 20,
                size: 0,
            },
            GrowRaw {
                offset: 1 << 30,
                size: u64::MAX,
            },
        ],
        vec![
            Grow { slot: 3, count: 1 },
            Alloc { npages: 0 },
            AllocHuge { npages: u64::MAX },
            AllocHuge { npages: 1 << 40 },
            Alloc { npages: 2000 },
        ],
        vec![
            Grow { slot: 3, count: 1 },
            Alloc { npages: 10 },
            Free { pick: 3, len: 4 },
            Free { pick: 3, len: 4 },
            FreeAt {
                slot: 3,
                page: 0,
                npages: 20,
            },
            FreeAt {
                slot: 200,
                page: 0,
                npages: 1,
            },
            FreeRaw {
                offset: 5,
                npages: 1,
            },
            FreeRaw {
                offset: 0,
                npages: u64::MAX,
            },
        ],
        vec![
            Grow { slot: 3, count: 0 },
            Alloc { npages: 5 },
            TakeCache,
            CacheAlloc { npages: 0 },
            CacheAlloc { npages: 65 },
            CacheAlloc { npages: 64 },
            CacheAlloc { npages: 3 },
            FreeAt {
                slot: 3,
                page: 20,
                npages: 1,
            },
            Flush,
            Free { pick: 0, len: 64 },
            Flush,
        ],
        vec![
            Grow { slot: 3, count: 2 },
            Alloc { npages: 1500 },
            Free { pick: 10, len: 700 },
            Scavenge { bytes: 1 },
            Scavenge { bytes: 3 << 20 },
            ScavengeAll,
            Alloc { npages: 1500 },
        ],
    ];
    // Pad pages in a cache block: the cache reports their scavenged bits
    // under either policy, and a flush leaves them padded.
    cases.push(vec![
        Grow { slot: 5, count: 1 },
        Pad {
            slot: 5,
            page: 0,
            npages: 10,
        },
        Alloc { npages: 3 },
        TakeCache,
        CacheAlloc { npages: 2 },
        Flush,
        Free { pick: 0, len: 600 },
        ScavengeAll,
        NextGen,
        BgScavenge { bytes: 1 << 20 },
    ]);
    for ops in cases {
        for policy in [ScavengePolicy::Go119, ScavengePolicy::Go127] {
            if let Err(e) = check_ops(&ops, policy) {
                panic!("{policy:?} {ops:?}: {e}");
            }
        }
    }
}

/// The checker accepts a fresh allocator and a busy one.
#[test]
fn checker_accepts_valid_states() {
    let mut real = RealHeap::<Go64, _>::new(SimOs::new(), geometry()).expect("heap");
    check(&real.alloc).expect("empty allocator");
    let base = pageheap_testkit::pagestrat::BASE;
    real.alloc
        .grow(base + (4096 - 2) * (4 << 20), 4 * (4 << 20))
        .expect("grow");
    let a = real.alloc.alloc(1500).expect("alloc").expect("room");
    real.alloc.free(a.base + 8192 * 100, 50).expect("free");
    check(&real.alloc).expect("busy allocator");
}

/// Corrupting a summary in the allocator's memory (through the simulated
/// OS) is caught, at the level that was corrupted.
#[test]
fn checker_detects_corrupt_summaries() {
    use pageheap_testkit::check::CheckError;
    let chunk_bytes = 4 << 20;
    let base = pageheap_testkit::pagestrat::BASE;
    let ci = base / chunk_bytes + 10;
    for (level, index) in [(4, ci), (4, ci + 1), (3, ci / 8), (0, ci >> 12)] {
        let os = Arc::new(SimOs::new());
        let mut real = RealHeap::<Go64, _>::new(Arc::clone(&os), geometry()).expect("heap");
        real.alloc
            .grow(base + 10 * chunk_bytes, 4 * chunk_bytes)
            .expect("grow");
        real.alloc.alloc(100).expect("alloc").expect("room");
        check(&real.alloc).expect("valid before corruption");
        let (addr, _) = real.alloc.inspect().summary_reservation(level);
        // A summary claiming one free page at the bottom.
        let bogus = pageheap_alloc::Summary::pack::<Go64>(1, 1, 0);
        os.write(addr + index * 8, &bogus.0.to_ne_bytes())
            .expect("mapped summary");
        match check(&real.alloc) {
            Err(CheckError::Summary {
                level: l,
                index: i,
                stored,
                ..
            }) => {
                assert_eq!((l, i, stored), (level, index, (1, 1, 0)));
            }
            other => panic!("level {level}: {other:?}"),
        }
    }
}

/// Summary pages released behind the allocator's back are caught by the
/// OS-state check.
#[test]
fn checker_detects_unmapped_summary_memory() {
    let base = pageheap_testkit::pagestrat::BASE;
    let os = Arc::new(SimOs::new());
    let mut real = RealHeap::<Go64, _>::new(Arc::clone(&os), geometry()).expect("heap");
    real.alloc.grow(base, 4 << 20).expect("grow");
    check_summary_memory(&real.alloc, |a| os.page_state(a)).expect("valid");
    let (addr, _) = real.alloc.inspect().summary_reservation(4);
    let page = pageheap_arena::Os::page_size(&*os);
    let leaf_page = addr + (base >> 22) * 8 / page * page;
    // SAFETY:
    // - This takes a summary page from under the allocator on purpose; the
    //   allocator is not used again (only dropped, which frees its
    //   reservations without reading them), and the check below asks the
    //   simulated OS for page states, never reading the page.
    unsafe { pageheap_arena::Os::fault(&*os, leaf_page, page) }.expect("fault a mapped page");
    let err = check_summary_memory(&real.alloc, |a| os.page_state(a)).expect_err("must fail");
    assert!(
        err.to_string().contains(&format!("{leaf_page:#x}")),
        "{err}"
    );
}

/// A model that is not in step with the allocator is reported.
#[test]
fn differences_are_reported() {
    let mut real = RealHeap::<Go64, _>::new(SimOs::new(), geometry()).expect("heap");
    let mut model = Model::new(geometry());
    apply_and_compare(&mut real, &mut model, &PageOp::Grow { slot: 1, count: 0 })
        .expect("same grow");
    // Only the allocator gets the second chunk.
    let chunk =
        pageheap_testkit::pagestrat::BASE + pageheap_testkit::pagestrat::slot_chunk(9) * (4 << 20);
    real.alloc.grow(chunk, 4 << 20).expect("grow");
    let err = apply_and_compare(&mut real, &mut model, &PageOp::Alloc { npages: 1 })
        .expect_err("in-use ranges differ");
    assert!(
        err.to_string().contains("state differs: in-use ranges"),
        "{err}"
    );
    let err = apply_and_compare(&mut real, &mut model, &PageOp::Alloc { npages: 512 })
        .expect_err("model has no room");
    assert!(err.to_string().contains("model gave None"), "{err}");
}

/// Every input the `pagealloc_ops` fuzz target ever failed on, committed
/// under `fuzz/regressions/pagealloc_ops/`, decoded as the target decodes it
/// and run through the same comparison.
#[test]
fn fuzz_regressions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions/pagealloc_ops");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("regression folder exists") {
        let path = entry.expect("readable entry").path();
        let bytes = std::fs::read(&path).expect("readable input");
        // As the target decodes it: a policy flag, then the ops. Both
        // policies run, the decoded one first.
        let (go127, ops) = <(bool, Vec<PageOp>) as arbitrary::Arbitrary>::arbitrary_take_rest(
            arbitrary::Unstructured::new(&bytes),
        )
        .expect("decodable input");
        let policies = if go127 {
            [ScavengePolicy::Go127, ScavengePolicy::Go119]
        } else {
            [ScavengePolicy::Go119, ScavengePolicy::Go127]
        };
        for policy in policies {
            check_ops(&ops, policy)
                .unwrap_or_else(|e| panic!("{} ({policy:?}): {e}", path.display()));
        }
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}
