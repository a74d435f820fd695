//! Applies page-allocator operation sequences (valid and bad input alike)
//! to `pageheap_alloc::PageAlloc` and to testkit's flat model, comparing
//! results and state after every op and the invariants every few ops and
//! at the end (`pagestrat::fuzz_ops`).
//!
//! Input: the first byte picks the scavenge policy (odd: go127, even:
//! go119) unless `PAGEHEAP_FUZZ_POLICY` names one (`go119`, `go127`); the
//! rest is decoded by `pagestrat::decode_ops`, one to four bytes an op.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use pageheap_alloc::{Go64, ScavengePolicy};
use pageheap_testkit::model::Model;
use pageheap_testkit::pagestrat::{decode_ops, fuzz_ops, geometry};
use pageheap_testkit::replay::RealHeap;
use pageheap_testkit::sim_os::SimOs;

fuzz_target!(|data: &[u8]| {
    common::fixed_mmap_threshold();
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let policy = match std::env::var("PAGEHEAP_FUZZ_POLICY").as_deref() {
        Ok("go119") => ScavengePolicy::Go119,
        Ok("go127") => ScavengePolicy::Go127,
        _ if first & 1 == 1 => ScavengePolicy::Go127,
        _ => ScavengePolicy::Go119,
    };
    let ops = decode_ops(rest);
    let g = geometry().with_policy(policy);
    let mut real = RealHeap::<Go64, _>::new(SimOs::new(), g).expect("new allocator");
    let mut model = Model::new(g);
    if let Err(d) = fuzz_ops(&mut real, &mut model, &ops) {
        panic!("{d}");
    }
});
