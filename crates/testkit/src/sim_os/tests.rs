//! The simulated OS against the real one on fixed sequences of
//! [`ArenaOp`](super::ArenaOp)s (the real OS cannot run under Miri), and
//! against a `BufferOs` on random ones.

/// The fuzz target's comparison of the simulated and the real OS, on fixed
/// sequences (the real OS cannot run under Miri).
#[cfg(not(miri))]
#[test]
fn agrees_with_the_real_os() {
    use super::{run, ArenaOp, Slot};
    let s = |slot, page, pages, skew| Slot {
        slot,
        page,
        pages,
        skew,
    };
    let ops = [
        ArenaOp::Reserve { pages: 8 },
        ArenaOp::Reserve { pages: 0 },
        ArenaOp::ReserveMisaligned { pages: 2 },
        ArenaOp::Map(s(0, 1, 4, 0)),
        ArenaOp::Map(s(0, 0, 2, 0)),
        ArenaOp::Used(s(0, 2, 2, 0)),
        ArenaOp::Used(s(0, 0, 3, 0)),
        ArenaOp::Unused(s(0, 1, 2, 0), true),
        ArenaOp::Unused(s(0, 2, 1, 0), false),
        ArenaOp::Fault(s(0, 4, 2, 0)),
        ArenaOp::Fault(s(0, 3, 1, 1)),
        ArenaOp::AdviseHuge(s(0, 1, 3, 0), 0),
        ArenaOp::AdviseHuge(s(0, 5, 1, 0), 1),
        ArenaOp::ReserveAtTaken(s(0, 2, 2, 0)),
        ArenaOp::Reserve { pages: 3 },
        ArenaOp::Map(s(1, 2, 2, 0)),
        ArenaOp::Free(s(1, 1, 1, 0), false),
        ArenaOp::Free(s(0, 0, 0, 0), true),
        ArenaOp::Used(s(0, 0, 1, 0)),
        ArenaOp::Free(s(0, 0, 0, 0), true),
        ArenaOp::Map(s(0, 0, 1, 0)),
    ];
    assert_eq!(run(&ops), ops.len(), "the real OS refused a legal call");
}

/// Fuzz regression: a range starting past its reservation's end hit the
/// real OS's neighbouring reservation but nothing in the simulation; the
/// generator now starts ranges inside their reservation.
#[cfg(not(miri))]
#[test]
fn fuzz_regression_neighbouring_reservation() {
    use arbitrary::{Arbitrary, Unstructured};
    let input = [
        0x07, 0xff, 0x41, 0x01, 0x00, 0xfd, 0x15, 0x00, 0xfd, 0x15, 0x15, 0x25, 0xff, 0x7f, 0x15,
        0x25, 0xff, 0x7f, 0x5d, 0x15, 0x00,
    ];
    let ops = Vec::<super::ArenaOp>::arbitrary_take_rest(Unstructured::new(&input)).unwrap();
    assert!(ops.len() >= 3, "decoded {ops:?}");
    assert_eq!(super::run(&ops), ops.len());
}

/// A `BufferOs` follows the simulated OS on random call sequences.
#[test]
fn buffer_os_follows_the_simulated_os_on_random_call_sequences() {
    let mut rng = crate::rng::XorShift::new(0x5eed_0b0f);
    let cases = if cfg!(miri) { 8 } else { 300 };
    let mut steps = 0;
    for _ in 0..cases {
        let bytes: Vec<u8> = (0..256).map(|_| rng.next_u64() as u8).collect();
        let ops = <Vec<super::ArenaOp> as arbitrary::Arbitrary>::arbitrary_take_rest(
            arbitrary::Unstructured::new(&bytes),
        )
        .expect("decodable");
        // A buffer never refuses a legal call that fits, so every step is
        // compared.
        assert_eq!(super::run_buffer(&ops), ops.len(), "{ops:?}");
        steps += ops.len();
    }
    assert!(steps > cases, "the sequences were not empty");
}
