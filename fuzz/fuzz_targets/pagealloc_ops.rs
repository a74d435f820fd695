//! Applies arbitrary page-allocator operation sequences (valid and bad
//! input alike) to `pagealloc::PageAlloc` and to testkit's flat model,
//! comparing results, state and invariants after every op.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pagealloc::Go64;
use testkit::model::Model;
use testkit::pagestrat::{apply_and_compare, geometry, PageOp};
use testkit::replay::RealHeap;
use testkit::sim_os::SimOs;

fuzz_target!(|ops: Vec<PageOp>| {
    let g = geometry();
    let mut real = RealHeap::<Go64, _>::new(SimOs::new(), g).expect("new allocator");
    let mut model = Model::new(g);
    for op in &ops {
        if let Err(d) = apply_and_compare(&mut real, &mut model, op) {
            panic!("{d}");
        }
    }
});
