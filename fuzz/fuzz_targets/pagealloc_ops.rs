//! Applies arbitrary page-allocator operation sequences (valid and bad
//! input alike) to `pageheap_alloc::PageAlloc` and to testkit's flat model,
//! comparing results, state and invariants after every op, under the
//! scavenge policy the input's first byte picks (odd: go127, even: go119),
//! or the one `PAGEHEAP_FUZZ_POLICY` names (`go119`, `go127`) for runs
//! that fuzz one policy only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pageheap_alloc::{Go64, ScavengePolicy};
use pageheap_testkit::model::Model;
use pageheap_testkit::pagestrat::{apply_and_compare, geometry, PageOp};
use pageheap_testkit::replay::RealHeap;
use pageheap_testkit::sim_os::SimOs;

fuzz_target!(|input: (bool, Vec<PageOp>)| {
    let (go127, ops) = input;
    let policy = match std::env::var("PAGEHEAP_FUZZ_POLICY").as_deref() {
        Ok("go119") => ScavengePolicy::Go119,
        Ok("go127") => ScavengePolicy::Go127,
        _ if go127 => ScavengePolicy::Go127,
        _ => ScavengePolicy::Go119,
    };
    let g = geometry().with_policy(policy);
    let mut real = RealHeap::<Go64, _>::new(SimOs::new(), g).expect("new allocator");
    let mut model = Model::new(g);
    for op in &ops {
        if let Err(d) = apply_and_compare(&mut real, &mut model, op) {
            panic!("{d}");
        }
    }
});
