//! Prints a `pagealloc_ops` fuzz input as the ops it decodes to, and runs
//! it the way the fuzz target does, printing the first divergence.
//!
//! ```text
//! cargo run -p pageheap-testkit --example fuzz_input -- FILE
//! ```

use pageheap_alloc::{Go64, ScavengePolicy};
use pageheap_testkit::model::Model;
use pageheap_testkit::pagestrat::{decode_ops, fuzz_ops, geometry};
use pageheap_testkit::replay::RealHeap;
use pageheap_testkit::sim_os::SimOs;

fn main() {
    let path = std::env::args().nth(1).expect("usage: fuzz_input FILE");
    let data = std::fs::read(&path).expect("read the input");
    let Some((&first, rest)) = data.split_first() else {
        println!("empty input");
        return;
    };
    let policy = if first & 1 == 1 {
        ScavengePolicy::Go127
    } else {
        ScavengePolicy::Go119
    };
    let ops = decode_ops(rest);
    println!("policy {policy:?}, {} ops", ops.len());
    for (i, op) in ops.iter().enumerate() {
        println!("{i:4} {op:?}");
    }
    let g = geometry().with_policy(policy);
    let mut real = RealHeap::<Go64, _>::new(SimOs::new(), g).expect("new allocator");
    let mut model = Model::new(g);
    match fuzz_ops(&mut real, &mut model, &ops) {
        Ok(()) => println!("no divergence"),
        Err(d) => println!("divergence: {d}"),
    }
}
