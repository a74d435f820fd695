//! The real OS (Linux): what reservations cost in resident memory, huge-page
//! advice as the kernel reports it, never clobbering at a hint, and that
//! Reserved memory really faults (shown in a child process).
//!
//! Resident-memory figures are process-wide, so every test that reads them
//! or touches more than a few pages holds [`RSS_LOCK`](crate::RSS_LOCK): the test harness
//! runs tests on parallel threads.

use std::process::Command;

use pageheap_arena::{
    os_huge_page_size, os_page_size, ArenaHints, Direction, Error, Hint, HugeAdvice, Os, PageState,
    ReleaseMode, Reservation, SystemOs,
};

const MIB: usize = 1 << 20;

use crate::RSS_LOCK;

/// The process's resident set, from `/proc/self/smaps_rollup`.
fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
    let kb: usize = s
        .lines()
        .find_map(|l| l.strip_prefix("Rss:"))
        .expect("smaps_rollup has an Rss line")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// The `/proc/self/smaps` fields of the mapping containing `addr`.
fn smaps_fields(addr: usize) -> Vec<(String, String)> {
    let s = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut inside = false;
    let mut out = Vec::new();
    for line in s.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-') {
            if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = lo <= addr && addr < hi;
                continue;
            }
        }
        if inside {
            if let Some((k, v)) = line.split_once(':') {
                out.push((k.to_string(), v.trim().to_string()));
            }
        }
    }
    out
}

fn field(fields: &[(String, String)], key: &str) -> String {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// Writes one byte into every page of `addr..addr + len`.
///
/// # Safety
/// The range must be Ready memory of a live reservation.
unsafe fn touch(addr: usize, len: usize, v: u8) {
    for a in (addr..addr + len).step_by(os_page_size()) {
        // SAFETY:
        // - The caller promises the range is Ready, so every page is valid
        //   for writes.
        unsafe { core::ptr::with_exposed_provenance_mut::<u8>(a).write_volatile(v) };
    }
}

/// Reads the byte at `addr`.
///
/// # Safety
/// As [`touch`].
unsafe fn peek(addr: usize) -> u8 {
    // SAFETY: as in `touch`.
    unsafe { core::ptr::with_exposed_provenance::<u8>(addr).read_volatile() }
}

#[test]
fn reserving_64_gib_costs_no_memory() {
    let _g = RSS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let os = SystemOs::new();
    let before = rss();
    let res = Reservation::new(&os, 64 << 30).unwrap();
    let after = rss();
    eprintln!("reserve 64 GiB: rss {before} -> {after} bytes");
    assert!(
        after < before + MIB,
        "rss grew by {} bytes",
        after.saturating_sub(before)
    );
    assert_eq!(res.state(res.base()), PageState::Reserved);
    assert_eq!(os.page_state(res.base() + (32 << 30)), PageState::Reserved);
}

#[test]
fn committing_and_releasing_256_mib_moves_rss() {
    let _g = RSS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let os = SystemOs::new();
    let len = 256 * MIB;
    let mut res = Reservation::new(&os, len).unwrap();
    let b = res.base();
    let r0 = rss();
    res.commit(b, len).unwrap();
    // SAFETY:
    // - `commit` made the whole reservation Ready.
    unsafe { touch(b, len, 1) };
    let r1 = rss();
    // SAFETY:
    // - Test memory: nothing reads it after this call until it is
    //   committed again.
    unsafe { res.release(b, len, ReleaseMode::DontNeed) }.unwrap();
    let r2 = rss();
    eprintln!("256 MiB: rss {r0} -> touched {r1} -> released {r2} bytes");
    assert!(
        r1 >= r0 + 250 * MIB,
        "touching raised rss by only {} bytes",
        r1 - r0
    );
    assert!(
        r2.abs_diff(r0) <= 2 * MIB,
        "release left rss {} bytes off",
        r2.abs_diff(r0)
    );
    assert_eq!(res.stats().ready, 0);
    assert_eq!(res.stats().released, len);
    // Used again, the memory reads as zeros.
    res.used(b, len).unwrap();
    // SAFETY:
    // - `used` made the whole reservation Ready again.
    assert_eq!(unsafe { peek(b + 12345) }, 0);
}

#[test]
fn madv_free_releases_too() {
    let _g = RSS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let os = SystemOs::new();
    let len = 64 * MIB;
    let mut res = Reservation::new(&os, len).unwrap();
    let b = res.base();
    res.commit(b, len).unwrap();
    // SAFETY:
    // - `commit` made the whole reservation Ready.
    unsafe { touch(b, len, 1) };
    // SAFETY:
    // - Test memory: nothing reads it after this call until it is
    //   committed again.
    unsafe { res.release(b, len, ReleaseMode::Free) }.unwrap();
    assert_eq!(res.state(b), PageState::Prepared);
    assert!(!os.zeroed_after_unused(ReleaseMode::Free));
    assert!(os.zeroed_after_unused(ReleaseMode::DontNeed));
}

#[test]
fn huge_page_advice_shows_in_smaps() {
    let _g = RSS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let hpage = os_huge_page_size().expect("this machine has transparent huge pages");
    let os = SystemOs::new();
    let len = 4 * hpage;
    let mut res = Reservation::aligned(&os, len, hpage).unwrap();
    let b = res.base();
    assert_eq!(b % hpage, 0);
    res.commit(b, len).unwrap();
    // THP runs in `madvise` mode here: without advice, not eligible.
    assert_eq!(field(&smaps_fields(b), "THPeligible"), "0");
    res.advise_huge(b, len, HugeAdvice::Huge).unwrap();
    // SAFETY:
    // - `commit` made the whole reservation Ready.
    unsafe { touch(b, len, 1) };
    let f = smaps_fields(b);
    let anon_huge = field(&f, "AnonHugePages");
    eprintln!(
        "after MADV_HUGEPAGE: THPeligible {}, AnonHugePages {anon_huge}",
        field(&f, "THPeligible")
    );
    assert!(
        field(&f, "THPeligible") == "1" || anon_huge != "0 kB",
        "no huge-page eligibility after MADV_HUGEPAGE: {f:?}"
    );
    res.advise_huge(b, len, HugeAdvice::NoHuge).unwrap();
    assert_eq!(field(&smaps_fields(b), "THPeligible"), "0");
    // MADV_COLLAPSE exists since Linux 6.1; either way it is no crash.
    match res.advise_huge(b, len, HugeAdvice::Collapse) {
        Ok(()) | Err(Error::Unsupported) | Err(Error::Os { .. }) => {}
        Err(e) => panic!("unexpected collapse error {e}"),
    }
}

#[test]
fn reserving_at_a_taken_address_never_clobbers() {
    let _g = RSS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let page = os_page_size();
    // Another `SystemOs` owns the mapping, so only the kernel can refuse.
    let other = SystemOs::new();
    let mut held = Reservation::new(&other, 16 * page).unwrap();
    let b = held.base();
    held.commit(b, 16 * page).unwrap();
    let pattern = |i: usize| (i * 7 + 3) as u8;
    for i in 0..16 * page {
        // SAFETY:
        // - `commit` made the whole reservation Ready.
        unsafe { core::ptr::with_exposed_provenance_mut::<u8>(b + i).write(pattern(i)) };
    }
    let os = SystemOs::new();
    assert_eq!(
        Reservation::at(&os, b + 4 * page, 4 * page).unwrap_err(),
        Error::AddressTaken {
            addr: b + 4 * page,
            len: 4 * page
        }
    );
    // A hint there falls back to an aligned arena elsewhere.
    let mut hints = ArenaHints::from_hints([Hint {
        addr: b,
        dir: Direction::Up,
    }])
    .with_arena_bytes(64 * page);
    let res = hints.reserve_arena(&os, page).unwrap();
    assert_ne!(res.base(), b);
    assert_eq!(res.base() % (64 * page), 0);
    for i in 0..16 * page {
        // SAFETY:
        // - `held` is still Ready; nothing above may have replaced it.
        let v = unsafe { core::ptr::with_exposed_provenance::<u8>(b + i).read() };
        assert_eq!(v, pattern(i), "byte {i} of the existing mapping changed");
    }
}

#[test]
fn arena_hints_start_at_gos_heap_address_and_grow_up() {
    let os = SystemOs::new();
    let mut hints = ArenaHints::for_target();
    let first = hints.iter().next().copied().unwrap();
    let a = hints.reserve_arena(&os, 1).unwrap();
    let b = hints.reserve_arena(&os, 1).unwrap();
    eprintln!("arenas at {:#x} and {:#x}", a.base(), b.base());
    assert_eq!(a.len(), pageheap_arena::HEAP_ARENA_BYTES);
    assert_eq!(
        a.base(),
        first.addr,
        "the first hint is free in a test process"
    );
    assert_eq!(b.base(), a.end(), "the hint moved up past the first arena");
}

#[test]
fn system_os_checks_states_itself() {
    let os = SystemOs::new();
    let page = os.page_size();
    let b = os.reserve(None, 4 * page).unwrap();
    let bad = Error::InvalidTransition {
        op: pageheap_arena::Op::Used,
        addr: b,
        state: PageState::Reserved,
    };
    assert_eq!(os.used(b, page), Err(bad));
    os.map(b, page).unwrap();
    assert!(matches!(
        os.map(b, page),
        Err(Error::InvalidTransition { .. })
    ));
    assert_eq!(
        // SAFETY:
        // - Test memory: nothing reads it after this call until it is
        //   committed again.
        unsafe { os.free(b, page) },
        Err(Error::NotWholeReservation { addr: b, len: page })
    );
    let stack_var = 0u64;
    let foreign = (&raw const stack_var).addr() & !(page - 1);
    assert_eq!(
        // SAFETY:
        // - `foreign` is a stack page this object never reserved, so the
        //   call is refused before anything is unmapped (what it checks).
        unsafe { os.free(foreign, page) },
        Err(Error::NotReserved {
            addr: foreign,
            len: page
        })
    );
    // SAFETY:
    // - Test memory: nothing reads it after this call until it is
    //   committed again.
    unsafe { os.free(b, 4 * page) }.unwrap();
    assert_eq!(os.page_state(b), PageState::None);
}

/// Set in the child process to what it should touch.
const CHILD_ENV: &str = "ARENA_IT_TOUCH";

/// In the child: touches Reserved memory, which must kill it. In the parent
/// (the normal test run): re-executes this test binary for that and checks
/// that the child died of SIGSEGV or SIGBUS.
#[test]
fn touching_reserved_memory_faults() {
    use std::os::unix::process::ExitStatusExt;
    if let Ok(what) = std::env::var(CHILD_ENV) {
        let os = SystemOs::new();
        let page = os.page_size();
        let mut res = Reservation::new(&os, 4 * page).unwrap();
        let b = res.base();
        if what == "faulted" {
            res.commit(b, page).unwrap();
            // SAFETY:
            // - `commit` made the first page Ready.
            unsafe { touch(b, page, 1) };
            // SAFETY:
            // - Test memory; the one access after this call is the write
            //   below, which is meant to fault and kill this child process.
            unsafe { res.fault(b, page) }.unwrap();
        }
        eprintln!("child: touching {what} memory at {b:#x}");
        // SAFETY: none; this write is meant to fault. It cannot corrupt
        // anything: the page is PROT_NONE (Reserved), which is the claim
        // under test, and a child process is dying for it.
        unsafe { touch(b, page, 1) };
        // Reaching this line means the write did not fault.
        std::process::exit(0);
    }
    for what in ["reserved", "faulted"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "real::touching_reserved_memory_faults",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, what)
            .output()
            .unwrap();
        let sig = out.status.signal();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            sig == Some(11) || sig == Some(7),
            "child touching {what} memory: status {:?}, stderr:\n{stderr}",
            out.status
        );
        assert!(
            stderr.contains("child: touching"),
            "the child ran the test: {stderr}"
        );
    }
}
