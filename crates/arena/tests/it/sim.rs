//! `Reservation` and `ArenaHints` over the simulated OS. Small sizes, so that
//! these also run under Miri, where the raw-pointer accesses to Ready memory
//! are checked for provenance and bounds.

use pageheap_arena::sim::SimOs;
use pageheap_arena::{
    ArenaHints, Direction, Error, Hint, HugeAdvice, MemStats, Op, PageState, ReleaseMode,
    Reservation,
};

const PAGE: usize = 4096;

/// Writes `v` at `addr` through a pointer made from the address, the way
/// upper layers use memory they got from an `Os`.
///
/// # Safety
/// `addr` must be Ready memory of a live reservation.
unsafe fn poke(addr: usize, v: u8) {
    // SAFETY:
    // - The caller promises `addr` is Ready, which the `Os` contract makes
    //   valid for writes through an exposed-provenance pointer.
    unsafe { core::ptr::with_exposed_provenance_mut::<u8>(addr).write(v) }
}

/// Reads the byte at `addr`, as [`poke`] writes it.
///
/// # Safety
/// As [`poke`].
unsafe fn peek(addr: usize) -> u8 {
    // SAFETY: as in `poke`; reads need the same validity.
    unsafe { core::ptr::with_exposed_provenance::<u8>(addr).read() }
}

#[test]
fn ready_memory_is_usable_and_zeroed() {
    let os = SimOs::new();
    let mut res = Reservation::new(&os, 4 * PAGE).unwrap();
    let base = res.base();
    res.commit(base, 4 * PAGE).unwrap();
    for i in 0..4 {
        let a = base + i * PAGE + 7;
        // SAFETY:
        // - `commit` made the whole reservation Ready.
        unsafe {
            assert_eq!(peek(a), 0);
            poke(a, 0x5a);
            assert_eq!(peek(a), 0x5a);
        }
    }
    // SAFETY:
    // - Test memory: nothing reads it after this call until it is
    //   committed again.
    unsafe { res.release(base, PAGE, ReleaseMode::DontNeed) }.unwrap();
    res.used(base, PAGE).unwrap();
    // SAFETY:
    // - The first page is Ready again; the others never stopped being.
    unsafe {
        assert_eq!(peek(base + 7), 0, "DontNeed drops the contents");
        assert_eq!(peek(base + PAGE + 7), 0x5a, "other pages keep theirs");
    }
    drop(res);
    assert!(os.reservations().is_empty(), "drop frees the reservation");
    os.assert_clean();
}

#[test]
fn illegal_transitions_are_typed_errors_before_the_os_sees_them() {
    let os = SimOs::new();
    let mut res = Reservation::new(&os, 4 * PAGE).unwrap();
    let b = res.base();
    let bad = |op, addr, state| Err(Error::InvalidTransition { op, addr, state });
    res.map(b, 2 * PAGE).unwrap();
    assert_eq!(
        res.map(b + PAGE, 2 * PAGE),
        bad(Op::Map, b + PAGE, PageState::Prepared)
    );
    assert_eq!(
        res.used(b, 3 * PAGE),
        bad(Op::Used, b + 2 * PAGE, PageState::Reserved)
    );
    assert_eq!(
        // SAFETY:
        // - Test memory: nothing reads it after this call until it is
        //   committed again.
        unsafe { res.release(b, PAGE, ReleaseMode::DontNeed) },
        bad(Op::Unused, b, PageState::Prepared)
    );
    assert_eq!(
        // SAFETY:
        // - Test memory: nothing reads it after this call until it is
        //   committed again.
        unsafe { res.fault(b + 3 * PAGE, PAGE) },
        bad(Op::Fault, b + 3 * PAGE, PageState::Reserved)
    );
    assert_eq!(
        res.advise_huge(b + 2 * PAGE, PAGE, HugeAdvice::Huge),
        bad(Op::AdviseHuge, b + 2 * PAGE, PageState::Reserved)
    );
    assert_eq!(
        res.map(b + 4 * PAGE, PAGE),
        Err(Error::NotReserved {
            addr: b + 4 * PAGE,
            len: PAGE
        })
    );
    assert_eq!(
        res.map(b - PAGE, PAGE),
        Err(Error::NotReserved {
            addr: b - PAGE,
            len: PAGE
        })
    );
    assert_eq!(
        res.map(b + 1, PAGE),
        Err(Error::Misaligned {
            addr: b + 1,
            len: PAGE,
            align: PAGE
        })
    );
    assert_eq!(res.map(b, 0), Err(Error::ZeroLength));
    // The reservation caught all of them: the OS saw only legal calls.
    os.assert_clean();
    assert_eq!(res.state(b + PAGE), PageState::Prepared);
    assert_eq!(res.state(b + 2 * PAGE), PageState::Reserved);
    assert_eq!(res.state(b + 4 * PAGE), PageState::None);
}

#[test]
fn os_failures_leave_states_unchanged() {
    use pageheap_arena::sim::{Call, Faults};
    let os = SimOs::new();
    let mut res = Reservation::new(&os, 2 * PAGE).unwrap();
    let b = res.base();
    os.set_faults(Faults::none().nth_of(Call::Used, 1));
    assert!(matches!(res.commit(b, 2 * PAGE), Err(Error::Os { .. })));
    assert_eq!(
        res.state(b),
        PageState::Prepared,
        "map succeeded, used failed"
    );
    assert_eq!(res.stats().ready, 0);
    res.used(b, 2 * PAGE).unwrap();
    assert_eq!(res.stats().ready, 2 * PAGE);
    os.assert_clean();
}

/// Applies `(op, page, pages)` steps to a tracked 8-page reservation and
/// compares the counters with what the page states say they must be.
fn check_stats(steps: &[(&str, usize, usize)], want: (usize, usize, usize)) {
    let os = SimOs::new();
    let stats = MemStats::new();
    {
        let mut res = Reservation::new(&os, 8 * PAGE).unwrap().tracked(&stats);
        let b = res.base();
        for &(op, p, n) in steps {
            let (a, l) = (b + p * PAGE, n * PAGE);
            match op {
                "map" => res.map(a, l),
                "used" => res.used(a, l),
                // SAFETY:
                // - Test memory: nothing reads it after this call until it is
                //   committed again.
                "unused" => unsafe { res.release(a, l, ReleaseMode::Free) },
                // SAFETY:
                // - Test memory: nothing reads it after this call until it is
                //   committed again.
                "fault" => unsafe { res.fault(a, l) },
                _ => unreachable!("unknown step {op}"),
            }
            .unwrap();
        }
        let s = stats.snapshot();
        let (mapped, ready, released) = want;
        assert_eq!(s.reserved, 8 * PAGE);
        assert_eq!(
            (s.mapped, s.ready, s.released),
            (mapped * PAGE, ready * PAGE, released * PAGE),
            "{steps:?}"
        );
        assert_eq!(
            res.stats(),
            s,
            "one reservation: its own counters equal the shared ones"
        );
    }
    assert_eq!(
        stats.snapshot(),
        Default::default(),
        "drop removes everything"
    );
}

#[test]
fn accounting_follows_page_states() {
    check_stats(&[("map", 0, 4)], (4, 0, 4));
    check_stats(&[("map", 0, 4), ("used", 1, 2)], (4, 2, 2));
    // `used` over partly Ready memory counts only the Prepared pages.
    check_stats(&[("map", 0, 4), ("used", 1, 2), ("used", 0, 4)], (4, 4, 0));
    check_stats(
        &[("map", 0, 8), ("used", 0, 8), ("unused", 2, 3)],
        (8, 5, 3),
    );
    // `fault` drops mapped and ready bytes together.
    check_stats(&[("map", 0, 8), ("used", 0, 4), ("fault", 2, 4)], (4, 2, 2));
}

#[test]
fn shared_stats_sum_reservations() {
    let os = SimOs::new();
    let stats = MemStats::new();
    let mut a = Reservation::new(&os, 4 * PAGE).unwrap().tracked(&stats);
    let b = Reservation::new(&os, 2 * PAGE).unwrap().tracked(&stats);
    a.commit(a.base(), PAGE).unwrap();
    let s = stats.snapshot();
    assert_eq!((s.reserved, s.mapped, s.ready), (6 * PAGE, PAGE, PAGE));
    drop(b);
    assert_eq!(stats.snapshot().reserved, 4 * PAGE);
}

#[test]
fn arena_hints_fall_back_and_push_neighbours() {
    let os = SimOs::new();
    let arena = 16 * PAGE;
    let h0 = 0x00c0 << 20;
    let mut hints = ArenaHints::from_hints([
        Hint {
            addr: h0,
            dir: Direction::Up,
        },
        Hint {
            addr: h0 + (1 << 24),
            dir: Direction::Down,
        },
    ])
    .with_arena_bytes(arena);
    // The simulated OS owns no space at the hints: both are dropped, the
    // arena goes anywhere, aligned, rounded up to whole arenas.
    let res = hints.reserve_arena(&os, 3 * PAGE).unwrap();
    assert_eq!(res.len(), arena);
    assert_eq!(res.base() % arena, 0);
    let pushed: Vec<Hint> = hints.iter().copied().collect();
    assert_eq!(
        pushed,
        [
            Hint {
                addr: res.end(),
                dir: Direction::Up
            },
            Hint {
                addr: res.base(),
                dir: Direction::Down
            },
        ]
    );
    assert_eq!(os.calls(pageheap_arena::sim::Call::ReserveAt), 2);
    assert_eq!(hints.reserve_arena(&os, 0).unwrap_err(), Error::ZeroLength);
    os.assert_clean();
}

#[cfg(target_pointer_width = "64")]
#[test]
fn the_64_bit_ladder_is_gos() {
    let hints: Vec<usize> = ArenaHints::ladder_64(0x00c0 << 32)
        .iter()
        .map(|h| h.addr)
        .collect();
    assert_eq!(hints.len(), 0x40);
    assert_eq!(
        &hints[..3],
        &[0x00c0_0000_0000, 0x01c0_0000_0000, 0x02c0_0000_0000]
    );
    assert_eq!(hints[0x3f], 0x3fc0_0000_0000);
}

#[test]
fn huge_advice_without_huge_pages_is_unsupported() {
    let os = SimOs::with_page_sizes(PAGE, None);
    let mut res = Reservation::new(&os, PAGE).unwrap();
    res.map(res.base(), PAGE).unwrap();
    assert_eq!(
        res.advise_huge(res.base(), PAGE, HugeAdvice::Collapse),
        Err(Error::Unsupported)
    );
}
