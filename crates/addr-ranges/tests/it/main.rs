//! Integration tests of the public API: random operation sequences applied
//! to `AddrRanges` and to testkit's granule model, compared after every op
//! (see `pageheap_testkit::ranges` for the model and the configurations).

mod model;
