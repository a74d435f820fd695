//! Applies arbitrary sequences of legal and illegal `pageheap_arena::Os` calls to the
//! simulated OS and to the real one (`pageheap_arena::SystemOs`), comparing outcomes
//! and page states after every call.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pageheap_testkit::sim_os::{self, ArenaOp};

fuzz_target!(|ops: Vec<ArenaOp>| {
    sim_os::run(&ops);
});
