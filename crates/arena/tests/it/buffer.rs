//! [`BufferOs`], the OS over caller-supplied memory: the memory promises of the
//! `Os` contract (zero when first Ready, zero after a `DontNeed` release,
//! contents kept otherwise) checked on the memory itself.

use pageheap_arena::{
    BufferOs, Error, Os, PageState, ReleaseMode, Reservation, MAX_BUFFER_RESERVATIONS,
};

const PAGE: usize = 4096;

/// A buffer OS and the memory it owns; the OS is dropped first (fields
/// drop in declaration order), the memory after it.
struct Owned {
    os: BufferOs,
    _mem: Vec<u8>,
}

impl std::ops::Deref for Owned {
    type Target = BufferOs;
    fn deref(&self) -> &BufferOs {
        &self.os
    }
}

/// A buffer OS over `pages` pages of fresh memory filled with `0xEE`,
/// plus its state pages.
fn buffer_os(pages: usize) -> Owned {
    let _g = crate::RSS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut mem = vec![0xEEu8; (pages + 2) * PAGE];
    let addr = mem.as_mut_ptr().expose_provenance();
    // SAFETY:
    // - `mem` lives in the same `Owned` as the OS, is dropped after it and
    //   is never touched otherwise; moving the `Vec` does not move its bytes.
    let os = unsafe { BufferOs::from_raw_parts(addr, mem.len(), PAGE) };
    Owned {
        os: os.expect("buffer large enough"),
        _mem: mem,
    }
}

fn peek(addr: usize) -> u8 {
    // SAFETY:
    // - Callers pass addresses of pages they made Ready in a buffer OS.
    unsafe { core::ptr::with_exposed_provenance::<u8>(addr).read() }
}

fn poke(addr: usize, v: u8) {
    // SAFETY:
    // - As for `peek`.
    unsafe { core::ptr::with_exposed_provenance_mut::<u8>(addr).write(v) }
}

#[test]
fn memory_reads_zero_when_first_ready_and_after_dont_need() {
    let os = buffer_os(16);
    let mut res = Reservation::new(&os.os, 4 * PAGE).unwrap();
    let b = res.base();
    // The buffer was filled with 0xEE: mapping zeroes.
    res.commit(b, 4 * PAGE).unwrap();
    assert!((0..4 * PAGE).step_by(511).all(|o| peek(b + o) == 0));
    for p in 0..4 {
        poke(b + p * PAGE + 9, 0x5a);
    }
    // SAFETY:
    // - This test's memory: page 0 is read only after being made Ready.
    unsafe { res.release(b, PAGE, ReleaseMode::DontNeed) }.unwrap();
    // SAFETY:
    // - As above, for page 1.
    unsafe { res.release(b + PAGE, PAGE, ReleaseMode::Free) }.unwrap();
    // SAFETY:
    // - As above, for page 2.
    unsafe { res.fault(b + 2 * PAGE, PAGE) }.unwrap();
    res.used(b, 2 * PAGE).unwrap();
    res.commit(b + 2 * PAGE, PAGE).unwrap();
    assert_eq!(peek(b + 9), 0, "DontNeed reads back zero");
    assert_eq!(peek(b + PAGE + 9), 0x5a, "Free keeps the old contents here");
    assert_eq!(
        peek(b + 2 * PAGE + 9),
        0,
        "a faulted page is zero when mapped again"
    );
    assert_eq!(peek(b + 3 * PAGE + 9), 0x5a, "untouched pages keep theirs");
    assert!(os.zeroed_after_unused(ReleaseMode::DontNeed));
    assert!(!os.zeroed_after_unused(ReleaseMode::Free));
}

#[test]
fn reservations_fill_the_buffer_first_fit_and_run_out_cleanly() {
    let os = buffer_os(8);
    let (lo, n) = os.usable();
    assert!(n >= 8 * PAGE);
    let a = os.reserve(None, 3 * PAGE).unwrap();
    let b = os.reserve(None, 2 * PAGE).unwrap();
    assert_eq!((a, b), (lo, lo + 3 * PAGE), "first fit from the bottom");
    assert_eq!(os.page_state(a), PageState::Reserved);
    let oom = |r: Result<usize, Error>| matches!(r, Err(Error::Os { .. }));
    assert!(oom(os.reserve(None, n)), "no gap that large");
    assert_eq!(
        os.reserve_at(a + PAGE, PAGE),
        Err(Error::AddressTaken {
            addr: a + PAGE,
            len: PAGE
        })
    );
    assert!(matches!(
        os.reserve_at(lo + n, PAGE),
        Err(Error::AddressTaken { .. })
    ));
    // SAFETY:
    // - Nothing uses these reservations' memory.
    unsafe {
        assert_eq!(
            os.free(a, PAGE),
            Err(Error::NotWholeReservation { addr: a, len: PAGE })
        );
        os.free(a, 3 * PAGE).unwrap();
    }
    assert_eq!(os.page_state(a), PageState::None);
    // The gap is reused, and a hint inside it is honoured.
    assert_eq!(os.reserve(Some(a + PAGE), PAGE).unwrap(), a + PAGE);
    assert_eq!(os.reserve(None, PAGE).unwrap(), a);
    assert_eq!(os.free_bytes(), n - 4 * PAGE);
}

#[test]
fn the_reservation_table_runs_out_cleanly() {
    let os = buffer_os(MAX_BUFFER_RESERVATIONS + 1);
    let mut got = Vec::new();
    for _ in 0..MAX_BUFFER_RESERVATIONS {
        got.push(os.reserve(None, PAGE).unwrap());
    }
    assert!(matches!(os.reserve(None, PAGE), Err(Error::Os { .. })));
    // SAFETY:
    // - Nothing uses these reservations' memory.
    unsafe { os.free(got[7], PAGE) }.unwrap();
    assert_eq!(os.reserve(None, PAGE).unwrap(), got[7]);
}

#[test]
fn bad_arguments_are_errors() {
    let os = buffer_os(4);
    assert_eq!(os.reserve(None, 0), Err(Error::ZeroLength));
    assert!(matches!(
        os.reserve(None, PAGE + 1),
        Err(Error::Misaligned { .. })
    ));
    let (lo, _) = os.usable();
    assert_eq!(
        os.map(lo, PAGE),
        Err(Error::NotReserved {
            addr: lo,
            len: PAGE
        })
    );
    // `new` takes a `'static` buffer; these two are refused before they
    // are kept, so the statics are never used by an OS.
    static mut TOO_SMALL: [u8; 4096] = [0; 4096];
    static mut ANY: [u8; 4096] = [0; 4096];
    // SAFETY:
    // - Each static is borrowed once, here, for the rest of the program.
    let (small, any) = unsafe {
        (
            core::slice::from_raw_parts_mut((&raw mut TOO_SMALL).cast::<u8>(), 4096),
            core::slice::from_raw_parts_mut((&raw mut ANY).cast::<u8>(), 4096),
        )
    };
    assert_eq!(BufferOs::new(small, PAGE).err(), Some(Error::ZeroLength));
    assert!(matches!(
        BufferOs::new(any, 3000),
        Err(Error::Misaligned { .. })
    ));
}
