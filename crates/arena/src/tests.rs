//! Unit tests of the packed page-state array, the side-mapped vector, the
//! hint ring and the counters.

use crate::hints::{ArenaHints, Direction, Hint, MAX_HINTS};
use crate::side::SideVec;
use crate::state::{check_range, PageState, StateMap};
use crate::stats::{Delta, MemStats};
use crate::Error;

/// Applies `sets` to a map of `n` Reserved pages and compares every page
/// with a plain array that got the same updates.
fn check(n: usize, sets: &[(usize, usize, PageState)]) {
    let mut map = StateMap::new(n);
    let mut flat = vec![PageState::Reserved; n];
    map.make_writable().unwrap();
    for &(start, end, s) in sets {
        map.set(start..end, s);
        flat[start..end].fill(s);
        for (i, want) in flat.iter().enumerate() {
            assert_eq!(map.get(i), *want, "page {i} after {sets:?}");
        }
        // Sub-ranges of up to 70 pages (two words and more), against the
        // flat array: all of them natively, a sample under Miri.
        let step = if cfg!(miri) { 7 } else { 1 };
        for a in (0..n).step_by(step) {
            for b in (a + 1..=n.min(a + 70)).step_by(step) {
                let ready = flat[a..b]
                    .iter()
                    .filter(|&&s| s == PageState::Ready)
                    .count();
                assert_eq!(map.count(a..b, |s| s == PageState::Ready), ready);
                let mapped = flat[a..b].iter().filter(|s| s.is_mapped()).count();
                assert_eq!(map.count(a..b, PageState::is_mapped), mapped);
                let first_not_reserved = flat[a..b]
                    .iter()
                    .position(|&s| s != PageState::Reserved)
                    .map(|p| (a + p, flat[a + p]));
                assert_eq!(
                    map.first_rejected(a..b, |s| s == PageState::Reserved),
                    first_not_reserved,
                    "{a}..{b} after {sets:?}"
                );
            }
        }
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
fn state_map_across_word_boundaries() {
    use PageState::{Prepared, Ready};
    // 32 pages a word: ranges that start, end and straddle word edges.
    check(
        100,
        &[
            (31, 33, Ready),
            (0, 32, Prepared),
            (32, 64, Ready),
            (63, 97, Prepared),
            (5, 100, Ready),
        ],
    );
}

#[test]
fn state_map_is_all_reserved_before_mapping() {
    let map = StateMap::new(1 << 20);
    assert_eq!(map.get((1 << 20) - 1), PageState::Reserved);
    assert_eq!(map.count(0..1 << 20, |s| s == PageState::Reserved), 1 << 20);
    assert_eq!(
        map.first_rejected(0..1 << 20, |s| s == PageState::Reserved),
        None
    );
}

#[test]
fn side_vec_keeps_order_through_growth() {
    let mut v: SideVec<(usize, u32)> = SideVec::new();
    let mut model = Vec::new();
    // Enough elements to grow the mapping past one page several times.
    let n = if cfg!(miri) { 600 } else { 3000 };
    for i in 0..n {
        let at = (i * 7919) % (model.len() + 1);
        v.insert(at, (i, i as u32 * 3)).unwrap();
        model.insert(at, (i, i as u32 * 3));
    }
    assert_eq!(v.as_slice(), &model[..]);
    for i in (0..n).step_by(3) {
        let at = i % v.len();
        assert_eq!(v.remove(at), model.remove(at));
    }
    assert_eq!(v.as_slice(), &model[..]);
    v.clear();
    assert!(v.is_empty());
}

#[test]
fn hint_ring_drops_the_oldest_when_full() {
    let hint = |addr| Hint {
        addr,
        dir: Direction::Up,
    };
    let mut hints = ArenaHints::from_hints((1..=MAX_HINTS + 5).map(hint));
    assert_eq!(hints.iter().count(), MAX_HINTS, "only the first are kept");
    hints.push_front(hint(1000));
    let got: Vec<usize> = hints.iter().map(|h| h.addr).collect();
    let mut want = vec![1000];
    want.extend(1..MAX_HINTS);
    assert_eq!(got, want, "the back hint made room");
    hints.pop_front();
    hints.pop_front();
    assert_eq!(hints.iter().next().map(|h| h.addr), Some(2));
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
