//! Applies arbitrary operation sequences to `pageheap_ranges::AddrRanges` and to
//! testkit's granule model, comparing them after every op.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pageheap_testkit::ranges::{self, RangesOp};

fuzz_target!(|ops: Vec<RangesOp>| ranges::run(&ops));
