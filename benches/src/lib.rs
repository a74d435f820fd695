//! Cross-crate benchmarks and peer comparisons (see `benches/`): shared
//! workload generation lives here so that every allocator sees the same
//! sequence of requests.

pub mod ranges;

/// One request of a synthetic page workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Req {
    /// Allocate this many pages; the result goes into slot `slot`.
    Alloc {
        /// Pages wanted.
        pages: usize,
        /// Where the caller keeps the result.
        slot: usize,
    },
    /// Free what slot `slot` holds.
    Free {
        /// The slot to free.
        slot: usize,
    },
}

/// A deterministic runtime-like mix: most requests are 1 page, some up to 8,
/// a tail up to 128; the live set hovers around `live` spans, so the heap
/// fragments as a real one does. The same seed gives the same sequence.
pub fn workload(n: usize, live: usize, seed: u64) -> Vec<Req> {
    let mut rng = pageheap_testkit::rng::XorShift::new(seed | 1);
    let mut next = move || rng.next_u64();
    let mut occupied: Vec<usize> = Vec::new();
    let mut free_slots: Vec<usize> = Vec::new();
    let mut slots = 0usize;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let grow = occupied.len() < live / 2 || (occupied.len() < live && next() % 2 == 0);
        if grow || occupied.is_empty() {
            let r = next() % 100;
            let pages = if r < 80 {
                1
            } else if r < 95 {
                2 + (next() % 7) as usize
            } else {
                9 + (next() % 120) as usize
            };
            let slot = free_slots.pop().unwrap_or_else(|| {
                slots += 1;
                slots - 1
            });
            occupied.push(slot);
            out.push(Req::Alloc { pages, slot });
        } else {
            let i = (next() % occupied.len() as u64) as usize;
            let slot = occupied.swap_remove(i);
            free_slots.push(slot);
            out.push(Req::Free { slot });
        }
    }
    out
}

/// The number of slots a workload uses.
pub fn slots(reqs: &[Req]) -> usize {
    reqs.iter()
        .map(|r| match r {
            Req::Alloc { slot, .. } | Req::Free { slot } => slot + 1,
        })
        .max()
        .unwrap_or(0)
}
