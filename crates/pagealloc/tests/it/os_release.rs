//! Heap memory released through the OS: with `HeapRelease::Os` the
//! scavenger hands runs to `Os::unused`, and a failing release is an error
//! that leaves the run unscavenged.

use pageheap_alloc::{Config, Error, HeapRelease, OsRelease};
use pageheap_arena::sim::{Call, Faults, SimOs};
use pageheap_arena::{Os, PageState, ReleaseMode};

use crate::snapshot::{snapshot, Sim, CHUNK, PAGE};

fn os_alloc() -> (Sim, usize) {
    // SAFETY:
    // - The allocator is grown only by `heap` below, reserved from its OS
    //   for it alone, and these tests never touch heap memory.
    let release = unsafe { OsRelease::new(ReleaseMode::DontNeed) };
    let config = Config {
        heap_release: HeapRelease::Os(release),
        policy: pageheap_alloc::ScavengePolicy::Go127,
        phys_page_bytes: None,
        huge_page_bytes: None,
    };
    let os = SimOs::new();
    let heap = os.reserve_aligned(2 * CHUNK, CHUNK).unwrap();
    os.map(heap, 2 * CHUNK).unwrap();
    os.used(heap, 2 * CHUNK).unwrap();
    let mut pa = Sim::over(os, config).unwrap();
    pa.grow(heap, 2 * CHUNK).unwrap();
    (pa, heap)
}

#[test]
fn scavenge_releases_through_the_os() {
    let (mut pa, heap) = os_alloc();
    let a = pa.alloc(3).unwrap().unwrap();
    assert_eq!(a.base, heap);
    pa.free(a.base, 3).unwrap();
    assert_eq!(pa.scavenge(usize::MAX).unwrap(), 3 * PAGE);
    for p in 0..3 * PAGE / 4096 {
        assert_eq!(
            pa.os.page_state(heap + p * 4096),
            PageState::Prepared,
            "os page {p}"
        );
    }
    assert_eq!(pa.os.page_state(heap + 3 * PAGE), PageState::Ready);
    pa.os.assert_clean();
}

#[test]
fn failed_release_changes_nothing() {
    let (mut pa, heap) = os_alloc();
    pa.alloc(3).unwrap().unwrap();
    pa.free(heap, 3).unwrap();
    let before = snapshot(&pa);
    pa.os.set_faults(Faults::none().every(Call::Unused));
    let r = pa.scavenge(usize::MAX);
    assert!(matches!(r, Err(Error::Os(_))), "{r:?}");
    assert_eq!(snapshot(&pa), before);
    pa.os.set_faults(Faults::none());
    assert_eq!(pa.scavenge(usize::MAX).unwrap(), 3 * PAGE);
}
