//! Unit tests of the run-length page-state map and the counters.

use crate::state::{check_range, PageState, StateMap};
use crate::stats::{Delta, MemStats};
use crate::Error;

/// Applies `sets` to a map of `n` Reserved pages and compares every page
/// with a plain array that got the same updates.
fn check(n: usize, sets: &[(usize, usize, PageState)]) {
    let mut map = StateMap::new(n, PageState::Reserved);
    let mut flat = vec![PageState::Reserved; n];
    for &(start, end, s) in sets {
        map.set(start..end, s);
        flat[start..end].fill(s);
        for (i, want) in flat.iter().enumerate() {
            assert_eq!(map.get(i), *want, "page {i} after {sets:?}");
        }
        let ready = flat.iter().filter(|&&s| s == PageState::Ready).count();
        assert_eq!(map.count(0..n, |s| s == PageState::Ready), ready);
        let first_not_reserved = flat.iter().position(|&s| s != PageState::Reserved);
        assert_eq!(
            map.first_rejected(0..n, |s| s == PageState::Reserved)
                .map(|(p, _)| p),
            first_not_reserved
        );
    }
}

#[test]
fn state_map_matches_flat_array() {
    use PageState::{Prepared, Ready, Reserved};
    check(1, &[(0, 1, Ready), (0, 1, Reserved)]);
    check(8, &[(2, 5, Prepared), (3, 4, Ready), (0, 8, Ready)]);
    check(
        8,
        &[
            (0, 2, Ready),
            (6, 8, Ready),
            (2, 6, Ready),
            (3, 5, Prepared),
        ],
    );
    check(8, &[(4, 8, Prepared), (0, 4, Prepared), (0, 8, Reserved)]);
    check(
        16,
        &[
            (1, 3, Ready),
            (5, 7, Ready),
            (2, 6, Prepared),
            (0, 16, Prepared),
        ],
    );
}

#[test]
fn state_map_coalesces_runs() {
    let mut map = StateMap::new(8, PageState::Reserved);
    map.set(0..4, PageState::Ready);
    map.set(4..8, PageState::Ready);
    assert_eq!(map.runs(0..8).count(), 1);
    map.set(2..3, PageState::Prepared);
    assert_eq!(map.runs(0..8).count(), 3);
    map.set(2..3, PageState::Ready);
    assert_eq!(map.runs(0..8).count(), 1);
}

#[test]
fn range_arguments_are_checked() {
    assert!(matches!(check_range(0, 0, 4096), Err(Error::ZeroLength)));
    assert!(matches!(
        check_range(1, 4096, 4096),
        Err(Error::Misaligned { .. })
    ));
    assert!(matches!(
        check_range(4096, 1, 4096),
        Err(Error::Misaligned { .. })
    ));
    assert!(matches!(
        check_range(usize::MAX - 4095, 8192, 4096),
        Err(Error::Overflow { .. })
    ));
    assert_eq!(check_range(4096, 8192, 4096).unwrap(), 12288);
}

#[test]
fn stats_add_signed_deltas() {
    let s = MemStats::new();
    s.add(Delta {
        reserved: 100,
        mapped: 40,
        ready: 30,
    });
    s.add(Delta {
        reserved: 0,
        mapped: -10,
        ready: -30,
    });
    let snap = s.snapshot();
    assert_eq!(
        (snap.reserved, snap.mapped, snap.ready, snap.released),
        (100, 30, 0, 30)
    );
}

#[test]
fn error_is_send_sync_static() {
    fn assert_bounds<T: Send + Sync + 'static + std::error::Error>() {}
    assert_bounds::<Error>();
}
