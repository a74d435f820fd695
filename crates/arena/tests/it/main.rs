//! Integration tests of `arena`'s public API: the safe [`pageheap_arena::Reservation`]
//! and [`pageheap_arena::ArenaHints`] over the simulated OS (Miri-clean, feature `sim`) and over the
//! real one (Linux: resident-memory figures, huge-page advice, faults).

/// Held by every test that reads the process's resident memory or touches
/// more than a few pages (the harness runs tests on parallel threads).
pub static RSS_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

mod buffer;
#[cfg(feature = "sim")]
mod sim;

/// Says, in the test output, that the simulated-OS tests did not run.
#[cfg(not(feature = "sim"))]
#[test]
#[ignore = "the simulated-OS tests need the `sim` feature: cargo test --features sim"]
fn simulated_os_tests_not_built() {}

// The real-OS tests make system calls Miri cannot run (mmap with
// PROT_NONE, /proc, re-executing the test binary), so they are compiled
// out under Miri rather than ignored; `cargo xtask miri` says so.
#[cfg(all(target_os = "linux", not(miri)))]
mod real;
