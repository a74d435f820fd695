//! Tests of the simulated OS: every rule it must enforce, every fault it can
//! inject, and that its memory is real.

// The destructive `Os` calls are `unsafe fn`; these tests make them on
// simulated OS objects of their own, whose memory only they touch.
#![allow(unsafe_code)]

use crate::{Error, HugeAdvice, Op, Os, PageState, ReleaseMode};

use super::{Call, Faults, SimOs};

const PAGE: usize = 4096;

/// A step of a scenario: a call on page offsets of one reservation of 8
/// pages, and the outcome expected.
#[derive(Clone, Copy, Debug)]
enum Step {
    Map(usize, usize),
    Used(usize, usize),
    Unused(usize, usize),
    Fault(usize, usize),
    Huge(usize, usize),
}

/// What a step must do: succeed, or fail with an invalid transition at
/// page `.0` in state `.1`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    Ok,
    Bad(usize, PageState),
}

/// Runs `steps` on a fresh 8-page reservation and checks each outcome, that
/// only rule breaks were recorded as violations, and that page states match
/// `end`.
fn check(steps: &[(Step, Want)], end: [PageState; 8]) {
    let os = SimOs::new();
    let base = os.reserve(None, 8 * PAGE).unwrap();
    let mut bad = 0;
    for &(step, want) in steps {
        let (op, r) = match step {
            Step::Map(p, n) => (Op::Map, os.map(base + p * PAGE, n * PAGE)),
            Step::Used(p, n) => (Op::Used, os.used(base + p * PAGE, n * PAGE)),
            Step::Unused(p, n) => (
                Op::Unused,
                // SAFETY:
                // - The test's own simulated OS: nothing reads this memory after the
                //   call unless the test made it Ready again.
                unsafe { os.unused(base + p * PAGE, n * PAGE, ReleaseMode::DontNeed) },
            ),
            // SAFETY:
            // - The test's own simulated OS: nothing reads this memory after the
            //   call unless the test made it Ready again.
            Step::Fault(p, n) => (Op::Fault, unsafe { os.fault(base + p * PAGE, n * PAGE) }),
            Step::Huge(p, n) => (
                Op::AdviseHuge,
                os.advise_huge(base + p * PAGE, n * PAGE, HugeAdvice::Huge),
            ),
        };
        match want {
            Want::Ok => assert_eq!(r, Ok(()), "{step:?}"),
            Want::Bad(page, state) => {
                bad += 1;
                let addr = base + page * PAGE;
                assert_eq!(
                    r,
                    Err(Error::InvalidTransition { op, addr, state }),
                    "{step:?}"
                );
            }
        }
    }
    assert_eq!(os.violations().len(), bad);
    for (i, want) in end.iter().enumerate() {
        assert_eq!(os.page_state(base + i * PAGE), *want, "page {i}");
    }
}

#[test]
fn transitions_follow_the_rules() {
    use PageState::{Prepared as P, Ready as R, Reserved as S};
    use Step::*;
    use Want::{Bad, Ok};
    // The legal path and back.
    check(
        &[(Map(0, 8), Ok), (Used(0, 4), Ok), (Unused(1, 2), Ok)],
        [R, P, P, R, P, P, P, P],
    );
    check(
        &[(Map(2, 2), Ok), (Used(2, 2), Ok), (Fault(2, 1), Ok)],
        [S, S, S, R, S, S, S, S],
    );
    // `used` is idempotent on Ready pages.
    check(
        &[(Map(0, 2), Ok), (Used(0, 1), Ok), (Used(0, 2), Ok)],
        [R, R, S, S, S, S, S, S],
    );
    // Map twice: the first already-mapped page is named.
    check(
        &[(Map(2, 2), Ok), (Map(0, 4), Bad(2, P))],
        [S, S, P, P, S, S, S, S],
    );
    // Used on Reserved memory.
    check(
        &[(Map(0, 1), Ok), (Used(0, 2), Bad(1, S))],
        [P, S, S, S, S, S, S, S],
    );
    // Releasing what was never mapped, or never made Ready.
    check(&[(Unused(0, 1), Bad(0, S))], [S; 8]);
    check(
        &[(Map(0, 2), Ok), (Unused(0, 2), Bad(0, P))],
        [P, P, S, S, S, S, S, S],
    );
    // Faulting Reserved memory.
    check(&[(Fault(7, 1), Bad(7, S))], [S; 8]);
    // Huge-page advice needs mapped memory.
    check(
        &[(Huge(0, 1), Bad(0, S)), (Map(0, 1), Ok), (Huge(0, 1), Ok)],
        [P, S, S, S, S, S, S, S],
    );
}

#[test]
fn bad_arguments_are_errors_and_violations() {
    let os = SimOs::new();
    let base = os.reserve(None, 4 * PAGE).unwrap();
    let cases: [(Result<(), Error>, Error); 6] = [
        (os.map(base, 0), Error::ZeroLength),
        (
            os.map(base + 1, PAGE),
            Error::Misaligned {
                addr: base + 1,
                len: PAGE,
                align: PAGE,
            },
        ),
        (
            os.used(base, PAGE + 8),
            Error::Misaligned {
                addr: base,
                len: PAGE + 8,
                align: PAGE,
            },
        ),
        (
            os.map(base + 3 * PAGE, 2 * PAGE),
            Error::NotReserved {
                addr: base + 3 * PAGE,
                len: 2 * PAGE,
            },
        ),
        (
            // SAFETY:
            // - The test's own simulated OS: nothing reads this memory after the
            //   call unless the test made it Ready again.
            unsafe { os.free(base + PAGE, PAGE) },
            Error::NotWholeReservation {
                addr: base + PAGE,
                len: PAGE,
            },
        ),
        (
            // SAFETY:
            // - The test's own simulated OS: nothing reads this memory after the
            //   call unless the test made it Ready again.
            unsafe { os.free(PAGE, PAGE) },
            Error::NotReserved {
                addr: PAGE,
                len: PAGE,
            },
        ),
    ];
    for (i, (got, want)) in cases.iter().enumerate() {
        assert_eq!(got.as_ref(), Err(want), "case {i}");
    }
    assert_eq!(
        os.reserve(None, 3),
        Err(Error::Misaligned {
            addr: 0,
            len: 3,
            align: PAGE
        })
    );
    let v = os.violations();
    assert_eq!(v.len(), 7);
    assert_eq!(v[4].call, Some(Call::Free));
    // Freeing the whole reservation works, and then it is gone.
    // SAFETY:
    // - The test's own simulated OS: nothing reads this memory after the
    //   call unless the test made it Ready again.
    unsafe { os.free(base, 4 * PAGE) }.unwrap();
    assert_eq!(os.page_state(base), PageState::None);
    assert_eq!(
        // SAFETY:
        // - The test's own simulated OS: nothing reads this memory after the
        //   call unless the test made it Ready again.
        unsafe { os.free(base, 4 * PAGE) },
        Err(Error::NotReserved {
            addr: base,
            len: 4 * PAGE
        })
    );
}

#[test]
fn assert_clean_reports_violations() {
    let os = SimOs::new();
    let base = os.reserve(None, PAGE).unwrap();
    os.assert_clean();
    let _ = os.used(base, PAGE);
    let msg = std::panic::catch_unwind(|| os.assert_clean())
        .expect_err("a violation was recorded")
        .downcast::<String>()
        .unwrap();
    assert!(msg.contains("1 violation"), "{msg}");
    assert!(msg.contains("cannot use page"), "{msg}");
    assert_eq!(os.take_violations().len(), 1);
    os.assert_clean();
}

#[test]
fn check_access_requires_ready_memory() {
    let os = SimOs::new();
    let base = os.reserve(None, 2 * PAGE).unwrap();
    let touch_reserved = Error::InvalidTransition {
        op: Op::Access,
        addr: base,
        state: PageState::Reserved,
    };
    assert_eq!(os.check_access(base, 1), Err(touch_reserved));
    os.map(base, 2 * PAGE).unwrap();
    os.used(base, PAGE).unwrap();
    assert_eq!(os.check_access(base + 10, PAGE - 10), Ok(()));
    // One byte into the Prepared page is enough to fail.
    assert_eq!(
        os.check_access(base + PAGE - 1, 2),
        Err(Error::InvalidTransition {
            op: Op::Access,
            addr: base + PAGE,
            state: PageState::Prepared
        })
    );
    assert_eq!(os.violations().len(), 2);
}

#[test]
fn memory_is_real_and_zeroed_as_promised() {
    let os = SimOs::new();
    let base = os.reserve(None, 2 * PAGE).unwrap();
    os.map(base, 2 * PAGE).unwrap();
    os.used(base, 2 * PAGE).unwrap();
    let mem = Mem(&os, base);
    assert_eq!(mem.read(PAGE + 5), 0);
    mem.write(5, 9);
    mem.write(PAGE + 5, 9);
    assert_eq!((mem.read(5), mem.read(PAGE + 5)), (9, 9));
    // DontNeed drops the contents: zeros once used again.
    // SAFETY:
    // - The test's own simulated OS: nothing reads this memory after the
    //   call unless the test made it Ready again.
    unsafe { os.unused(base, PAGE, ReleaseMode::DontNeed) }.unwrap();
    os.used(base, PAGE).unwrap();
    assert_eq!(mem.read(5), 0);
    assert!(os.zeroed_after_unused(ReleaseMode::DontNeed));
    // Free leaves garbage behind, and the page stays resident.
    // SAFETY:
    // - The test's own simulated OS: nothing reads this memory after the
    //   call unless the test made it Ready again.
    unsafe { os.unused(base + PAGE, PAGE, ReleaseMode::Free) }.unwrap();
    assert_eq!(os.resident_bytes(), 2 * PAGE);
    assert_eq!(os.ready_bytes(), PAGE);
    os.used(base + PAGE, PAGE).unwrap();
    assert_eq!(mem.read(PAGE + 5), 0xA5);
    assert!(!os.zeroed_after_unused(ReleaseMode::Free));
    // Fault, map, use: zeros again.
    // SAFETY:
    // - The test's own simulated OS: nothing reads this memory after the
    //   call unless the test made it Ready again.
    unsafe { os.fault(base, 2 * PAGE) }.unwrap();
    os.map(base, 2 * PAGE).unwrap();
    os.used(base, 2 * PAGE).unwrap();
    assert_eq!((mem.read(5), mem.read(PAGE + 5)), (0, 0));
    os.assert_clean();
}

/// The same promises for a reservation large enough to be backed by a
/// side mapping natively (1 MiB): zeros first and after DontNeed or fault
/// (whose whole pages go back to the OS), garbage after Free in every page
/// that held data, and the contents kept while Ready.
#[test]
fn large_reservations_keep_the_promises() {
    let os = SimOs::new();
    let len = 256 * PAGE;
    let base = os.reserve(None, len).unwrap();
    os.map(base, len).unwrap();
    os.used(base, len).unwrap();
    let mem = Mem(&os, base);
    for p in [0, 1, 100, 255] {
        assert_eq!(mem.read(p * PAGE + 7), 0);
        mem.write(p * PAGE + 7, 3);
    }
    // DontNeed over pages 1..=100, not page-aligned at either end.
    // SAFETY:
    // - The test's own simulated OS: nothing reads this memory after the
    //   call unless the test made it Ready again.
    unsafe { os.unused(base + PAGE, 100 * PAGE, ReleaseMode::DontNeed) }.unwrap();
    os.used(base + PAGE, 100 * PAGE).unwrap();
    assert_eq!(
        (mem.read(7), mem.read(PAGE + 7), mem.read(100 * PAGE + 7)),
        (3, 0, 0)
    );
    assert_eq!(mem.read(255 * PAGE + 7), 3);
    // Free: the pages that held data read as garbage.
    mem.write(50 * PAGE + 1, 8);
    // SAFETY: as above.
    unsafe { os.unused(base, len, ReleaseMode::Free) }.unwrap();
    os.used(base, len).unwrap();
    for at in [7, 50 * PAGE + 1, 255 * PAGE + 7] {
        assert_eq!(mem.read(at), 0xA5, "byte {at:#x}");
    }
    // SAFETY: as above.
    unsafe { os.fault(base, len) }.unwrap();
    os.map(base, len).unwrap();
    os.used(base, len).unwrap();
    for p in [0, 50, 255] {
        assert_eq!(mem.read(p * PAGE + 7), 0);
    }
    os.assert_clean();
}

/// Reads and writes simulated memory through the simulated OS's checked
/// accessors (raw-pointer access is tested in `arena`, which may use
/// `unsafe`).
struct Mem<'a>(&'a SimOs, usize);

impl Mem<'_> {
    fn read(&self, off: usize) -> u8 {
        let mut b = [0];
        self.0.read(self.1 + off, &mut b).unwrap();
        b[0]
    }

    fn write(&self, off: usize, v: u8) {
        self.0.write(self.1 + off, &[v]).unwrap();
    }
}

#[test]
fn each_fault_kind_is_injected() {
    let injected = |r: Result<usize, Error>| matches!(r, Err(Error::Os { .. }));
    // The k-th call overall, counted from when the faults are set.
    let os = SimOs::new();
    os.reserve(None, PAGE).unwrap();
    os.set_faults(Faults::none().nth_call(2));
    assert!(os.reserve(None, PAGE).is_ok());
    assert!(injected(os.reserve(None, PAGE)));
    assert!(os.reserve(None, PAGE).is_ok());
    // Every call of one kind.
    let os = SimOs::new();
    os.set_faults(Faults::none().every(Call::Map));
    let b = os.reserve(None, 2 * PAGE).unwrap();
    for _ in 0..3 {
        assert!(matches!(os.map(b, PAGE), Err(Error::Os { .. })));
    }
    assert_eq!(
        os.page_state(b),
        PageState::Reserved,
        "a failed call changes nothing"
    );
    // SAFETY:
    // - The test's own simulated OS: nothing reads this memory after the
    //   call unless the test made it Ready again.
    let fault = unsafe { os.fault(b, PAGE) };
    assert!(fault.is_err(), "other kinds are unaffected");
    // The k-th call of one kind.
    let os = SimOs::new();
    os.set_faults(Faults::none().nth_of(Call::Used, 2));
    let b = os.reserve(None, 4 * PAGE).unwrap();
    os.map(b, 4 * PAGE).unwrap();
    assert!(os.used(b, PAGE).is_ok());
    assert!(matches!(os.used(b + PAGE, PAGE), Err(Error::Os { .. })));
    assert!(os.used(b + PAGE, PAGE).is_ok());
    assert_eq!(os.calls(Call::Used), 3);
    assert_eq!(os.calls(Call::Map), 1);
    assert_eq!(os.total_calls(), 5);
    // Injected faults are outcomes, not violations.
    os.assert_clean();
    // Faults can be cleared at run time.
    os.set_faults(Faults::none().every(Call::Free));
    // SAFETY:
    // - The test's own simulated OS: nothing reads this memory after the
    //   call unless the test made it Ready again.
    assert!(unsafe { os.free(b, 4 * PAGE) }.is_err());
    os.set_faults(Faults::none());
    // SAFETY:
    // - The test's own simulated OS: nothing reads this memory after the
    //   call unless the test made it Ready again.
    assert!(unsafe { os.free(b, 4 * PAGE) }.is_ok());
}

#[test]
fn reserve_at_never_clobbers() {
    let os = SimOs::new();
    let base = os.reserve(None, 4 * PAGE).unwrap();
    assert_eq!(
        os.reserve_at(base + PAGE, PAGE),
        Err(Error::AddressTaken {
            addr: base + PAGE,
            len: PAGE
        })
    );
    os.assert_clean();
}

#[test]
fn reserve_aligned_is_aligned() {
    let os = SimOs::new();
    let align = 16 * PAGE;
    let b = os.reserve_aligned(4 * PAGE, align).unwrap();
    assert_eq!(b % align, 0);
    assert_eq!(os.reservations(), vec![(b, 4 * PAGE)]);
    assert_eq!(os.bytes_in(PageState::Reserved), 4 * PAGE);
}

#[test]
fn page_sizes_are_configurable() {
    let os = SimOs::with_page_sizes(16384, None);
    assert_eq!(os.page_size(), 16384);
    let b = os.reserve(None, 16384).unwrap();
    os.map(b, 16384).unwrap();
    assert_eq!(
        os.advise_huge(b, 16384, HugeAdvice::Huge),
        Err(Error::Unsupported)
    );
    assert_eq!(
        os.map(b, 4096),
        Err(Error::Misaligned {
            addr: b,
            len: 4096,
            align: 16384
        })
    );
}

/// `is_zero` agrees with reading the bytes, in a large reservation (a side
/// mapping, where untouched pages are skipped by residency) and a small
/// one, and checks access like `read`.
#[test]
fn is_zero_agrees_with_the_bytes() {
    for pages in [256, 2] {
        let os = SimOs::new();
        let len = pages * PAGE;
        let base = os.reserve(None, len).unwrap();
        assert!(
            os.is_zero(base, PAGE).is_err(),
            "reserved pages are not readable"
        );
        os.map(base, len).unwrap();
        os.used(base, len).unwrap();
        assert_eq!(os.take_violations().len(), 1);
        assert!(os.is_zero(base, len).unwrap());
        let mem = Mem(&os, base);
        let last = len - 1;
        mem.write(last, 9);
        assert!(!os.is_zero(base, len).unwrap());
        assert!(!os.is_zero(base + last, 1).unwrap());
        assert!(os.is_zero(base, last).unwrap());
        // A zero written over the byte: zeros again, though resident.
        mem.write(last, 0);
        assert!(os.is_zero(base, len).unwrap());
        mem.write(PAGE + 3, 1);
        assert!(!os.is_zero(PAGE / 2 + base, PAGE).unwrap());
        assert!(os.is_zero(base, PAGE + 3).unwrap());
        // SAFETY: the test's own simulated OS; the memory is not used
        // again until made Ready.
        unsafe { os.unused(base, len, ReleaseMode::DontNeed) }.unwrap();
        os.used(base, len).unwrap();
        assert!(os.is_zero(base, len).unwrap());
        os.assert_clean();
    }
}
