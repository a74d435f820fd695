//! The reference model of `addr-ranges`: a `BTreeSet` of granules, the
//! operations both the proptest and the fuzz target apply, and the
//! apply-and-compare step they share.
//!
//! The model knows nothing of trees or coalescing: a set is the granules it
//! holds, numbered in offset order (granule `g` covers the offsets
//! `[g * G, (g + 1) * G)`), and its ranges are the maximal runs of
//! consecutive granules. An operation's address is a [`Spot`]: a region
//! anchor plus a granule count, where the anchors sit at the bottom and top
//! of offset space, just below the top of raw `usize` (so ranges wrap
//! through raw 0 under the x86-64 offset) and at an ordinary heap address.

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use pageheap_ranges::{
    AddrRange, AddrRanges, AddrSpace, Error, Node, SliceStorage, Storage, VecStorage,
};
use proptest::prelude::*;

/// Where in the address space a [`Spot`] is anchored.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// Offset 0: the lowest address in offset order.
    OffsetBottom,
    /// Half a region below the top of offset space, so spots run into the
    /// top and wrap around to the bottom.
    OffsetTop,
    /// Half a region below raw `usize::MAX`, so spots cross raw 0.
    RawTop,
    /// An ordinary heap address, `0x7f00_0000_0000`.
    Middle,
}

/// An address: `granule` granules after `region`'s anchor (wrapping in
/// offset space), plus `byte` bytes (modulo the granule size) for queries.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spot {
    /// The anchor.
    pub region: Region,
    /// Granules after the anchor.
    pub granule: u16,
    /// Bytes into the granule; used by queries only.
    pub byte: u16,
}

/// One operation on a set and its model.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum RangesOp {
    /// Add `granules` granules starting at `at` (0 granules: an empty range).
    Add {
        /// Start.
        at: Spot,
        /// Length in granules.
        granules: u8,
    },
    /// `count` adds of `1 + granules % 4` granules, `1 + stride % 8`
    /// granules apart, starting at `at`: dense clusters that touch and
    /// overlap.
    AddMany {
        /// Start of the first add.
        at: Spot,
        /// Number of adds.
        count: u8,
        /// Distance between adds, see above.
        stride: u8,
        /// Length of each add, see above.
        granules: u8,
    },
    /// `remove_last` of `granules` granules' worth of bytes.
    RemoveLast {
        /// Bytes to remove, in granules.
        granules: u8,
    },
    /// `remove_greater_equal` at the start of `at`'s granule.
    RemoveGreaterEqual {
        /// The cut.
        at: Spot,
    },
    /// Every lookup at `at`: `contains`, `find_succ`,
    /// `find_addr_greater_equal`, `range_containing`, `range_below`,
    /// `range_above`.
    Query {
        /// The probed address.
        at: Spot,
    },
    /// `get(index % (len + 1))`.
    Get {
        /// The index, reduced as above.
        index: u16,
    },
    /// `clone_into` a second set that is kept, and compared, from then on.
    CloneInto,
}

/// The set of granules that a correct `AddrRanges` holds.
#[derive(Clone, Debug)]
pub struct Model {
    space: AddrSpace,
    granule: u64,
    granules: BTreeSet<u64>,
}

impl Model {
    /// An empty model in `space` with granules of `granule` bytes.
    ///
    /// # Panics
    ///
    /// If `granule` is not a power of two.
    #[must_use]
    pub fn new(space: AddrSpace, granule: u64) -> Self {
        assert!(granule.is_power_of_two(), "granule must be a power of two");
        Self {
            space,
            granule,
            granules: BTreeSet::new(),
        }
    }

    /// How many granules offset space holds.
    fn count(&self) -> u128 {
        (1u128 << 64) / u128::from(self.granule)
    }

    /// The granule a spot names.
    #[must_use]
    pub fn granule_of(&self, spot: Spot) -> u64 {
        let anchor =
            |raw: u64| u128::from(self.space.to_offset(raw as usize) as u64 / self.granule);
        let half = 1u128 << 15;
        let base = match spot.region {
            Region::OffsetBottom => 0,
            Region::OffsetTop => self.count() - half,
            Region::RawTop => anchor(0u64.wrapping_sub(half as u64 * self.granule)),
            Region::Middle => anchor(0x7f00_0000_0000),
        };
        ((base + u128::from(spot.granule)) % self.count()) as u64
    }

    /// The address `byte` bytes into granule `g`.
    #[must_use]
    pub fn addr(&self, g: u64, byte: u64) -> usize {
        self.space
            .from_offset((g * self.granule + byte % self.granule) as usize)
    }

    /// The range of granules `[g, end)`, as addresses.
    fn range(&self, g: u64, end: u128) -> AddrRange {
        let limit = (end * u128::from(self.granule)) as u64;
        AddrRange::new(self.addr(g, 0), self.space.from_offset(limit as usize))
    }

    /// The maximal runs of granules, `[start, end)`, in offset order.
    fn runs(&self) -> Vec<(u64, u128)> {
        let mut runs: Vec<(u64, u128)> = Vec::new();
        for &g in &self.granules {
            match runs.last_mut() {
                Some((_, end)) if *end == u128::from(g) => *end += 1,
                _ => runs.push((g, u128::from(g) + 1)),
            }
        }
        runs
    }

    /// The ranges a correct set holds, in order.
    #[must_use]
    pub fn ranges(&self) -> Vec<AddrRange> {
        self.runs()
            .into_iter()
            .map(|(s, e)| self.range(s, e))
            .collect()
    }

    /// The bytes a correct set holds.
    #[must_use]
    pub fn total_bytes(&self) -> usize {
        self.granules.len() * self.granule as usize
    }

    /// Adds granules `[g, g + n)` and returns what `AddrRanges::add` of
    /// that range must return.
    ///
    /// # Errors
    ///
    /// As `AddrRanges::add` must fail: an empty range (no granules, or a
    /// limit at or past the top of offset space) or an overlap with the
    /// lowest run it meets.
    pub fn add(&mut self, g: u64, n: u64) -> Result<(), Error> {
        let end = u128::from(g) + u128::from(n);
        let range = self.range(g, end);
        if n == 0 || end >= self.count() {
            return Err(Error::EmptyRange { range });
        }
        // A run that meets `[g, end)` holds a granule there; the lowest
        // such granule lies in the lowest such run.
        let lowest_hit = self
            .granules
            .range(g..end as u64)
            .next()
            .map(|&h| self.run_around(h));
        if let Some((s, e)) = lowest_hit {
            return Err(Error::Overlap {
                range,
                existing: self.range(s, e),
            });
        }
        self.granules.extend(g..end as u64);
        Ok(())
    }

    /// Removes `n` granules from the top run, or all of it if it is not
    /// longer, and returns what was removed (`None` when empty).
    pub fn remove_last(&mut self, n: u64) -> Option<AddrRange> {
        let (s, e) = self.run_around(*self.granules.last()?);
        let cut = if e - u128::from(s) > u128::from(n) {
            (e - u128::from(n)) as u64
        } else {
            s
        };
        self.granules.split_off(&cut);
        Some(self.range(cut, e))
    }

    /// Removes every granule from `g` up.
    pub fn remove_greater_equal(&mut self, g: u64) {
        self.granules.split_off(&g);
    }

    /// The maximal run `[start, end)` holding granule `h` (which the model
    /// holds), found by walking its neighbours.
    fn run_around(&self, h: u64) -> (u64, u128) {
        let mut start = h;
        for &x in self.granules.range(..h).rev() {
            if x + 1 != start {
                break;
            }
            start = x;
        }
        let mut end = u128::from(h) + 1;
        for &x in self.granules.range(h + 1..) {
            if u128::from(x) != end {
                break;
            }
            end += 1;
        }
        (start, end)
    }
}

/// A set, its model, and the second set that `CloneInto` fills.
pub struct Harness<S: Storage> {
    /// The set under test.
    pub set: AddrRanges<S>,
    /// What it must hold.
    pub model: Model,
    /// The clone, and the ranges and bytes it must hold.
    clone: Option<(AddrRanges<VecStorage>, Vec<AddrRange>, usize)>,
}

impl<S: Storage> Harness<S> {
    /// A harness over an empty set and an empty model with granules of
    /// `granule` bytes, in the set's address space.
    #[must_use]
    pub fn new(set: AddrRanges<S>, granule: u64) -> Self {
        let model = Model::new(set.space(), granule);
        Self {
            set,
            model,
            clone: None,
        }
    }

    /// Applies `op` to the set and the model and compares every result,
    /// then the whole state.
    ///
    /// An [`Error::OutOfStorage`] from the set is accepted only where the
    /// model succeeds, and the set must then be unchanged.
    ///
    /// # Panics
    ///
    /// On the first difference between the set and the model.
    pub fn apply(&mut self, op: &RangesOp) {
        match *op {
            RangesOp::Add { at, granules } => {
                let g = self.model.granule_of(at);
                self.add(g, u64::from(granules));
            }
            RangesOp::AddMany {
                at,
                count,
                stride,
                granules,
            } => {
                let g0 = self.model.granule_of(at);
                for k in 0..u64::from(count) {
                    let g = (u128::from(g0) + u128::from(k) * u128::from(1 + stride % 8))
                        % self.model.count();
                    self.add(g as u64, u64::from(1 + granules % 4));
                }
            }
            RangesOp::RemoveLast { granules } => {
                let n = u64::from(granules);
                let got = self.set.remove_last((n * self.model.granule) as usize);
                match self.model.remove_last(n) {
                    Some(want) if !want.is_empty(self.model.space) => {
                        assert_eq!(got, want, "{op:?}")
                    }
                    _ => assert!(got.is_empty(self.model.space), "{op:?} returned {got}"),
                }
            }
            RangesOp::RemoveGreaterEqual { at } => {
                let g = self.model.granule_of(at);
                self.set.remove_greater_equal(self.model.addr(g, 0));
                self.model.remove_greater_equal(g);
            }
            RangesOp::Query { at } => self.query(at),
            RangesOp::Get { index } => {
                let i = usize::from(index) % (self.model.granules.len().min(self.set.len()) + 1);
                assert_eq!(
                    self.set.get(i),
                    self.model.ranges().get(i).copied(),
                    "{op:?}"
                );
            }
            RangesOp::CloneInto => {
                let mut clone = self
                    .clone
                    .take()
                    .map_or_else(|| AddrRanges::new(AddrSpace::flat()), |c| c.0);
                self.set
                    .clone_into(&mut clone)
                    .expect("a Vec storage grows");
                self.clone = Some((clone, self.model.ranges(), self.model.total_bytes()));
            }
        }
        self.compare();
    }

    fn add(&mut self, g: u64, n: u64) {
        let range = self.model.range(g, u128::from(g) + u128::from(n));
        let want = self.model.add(g, n);
        match self.set.add(range) {
            Err(Error::OutOfStorage { .. }) => {
                assert_eq!(
                    want,
                    Ok(()),
                    "out of storage where the model fails: add {range}"
                );
                // The model took granules `[g, g + n)`, none of which it
                // held before (the add succeeded): take them back.
                for x in g..g + n {
                    self.model.granules.remove(&x);
                }
            }
            got => assert_eq!(got, want, "add {range}"),
        }
    }

    fn query(&self, at: Spot) {
        let g = self.model.granule_of(at);
        let a = self.model.addr(g, u64::from(at.byte));
        let runs = self.model.runs();
        let g128 = u128::from(g);
        let containing = runs.iter().find(|&&(s, e)| s <= g && g128 < e);
        let above = runs.iter().find(|&&(s, _)| s > g);
        let below = runs.iter().rev().find(|&&(_, e)| e <= g128);
        let range = |&(s, e): &(u64, u128)| self.model.range(s, e);
        assert_eq!(
            self.set.contains(a),
            containing.is_some(),
            "contains({a:#x})"
        );
        assert_eq!(
            self.set.find_succ(a),
            runs.iter().filter(|&&(s, _)| s <= g).count(),
            "find_succ({a:#x})"
        );
        let ge = if containing.is_some() {
            Some(a)
        } else {
            above.map(|r| range(r).base)
        };
        assert_eq!(
            self.set.find_addr_greater_equal(a),
            ge,
            "find_addr_greater_equal({a:#x})"
        );
        assert_eq!(
            self.set.range_containing(a),
            containing.map(range),
            "range_containing({a:#x})"
        );
        assert_eq!(
            self.set.range_above(a),
            above.map(range),
            "range_above({a:#x})"
        );
        assert_eq!(
            self.set.range_below(a),
            below.map(range),
            "range_below({a:#x})"
        );
    }

    /// Compares length, every range in order, and the byte total; and the
    /// clone, if any, with the model as it was when the clone was made.
    ///
    /// # Panics
    ///
    /// If the set and the model differ.
    pub fn compare(&self) {
        compare_set(&self.set, &self.model.ranges(), self.model.total_bytes());
        if let Some((clone, want, bytes)) = &self.clone {
            assert_eq!(clone.space(), self.set.space(), "clone space");
            compare_set(clone, want, *bytes);
        }
    }
}

fn compare_set<S: Storage>(set: &AddrRanges<S>, want: &[AddrRange], bytes: usize) {
    assert_eq!(set.len(), want.len(), "len");
    let got: Vec<AddrRange> = set.iter().collect();
    assert_eq!(got, want, "ranges");
    assert_eq!(set.total_bytes(), bytes, "total_bytes");
}

/// Runs `ops` on three configurations, comparing after every op: the
/// x86-64 offset with 4 KiB granules, plain order with 1-byte granules, and
/// the x86-64 offset with 1-byte granules in a fixed 3-node storage that
/// runs out once the set needs a second level.
///
/// # Panics
///
/// On the first difference between a set and its model.
pub fn run(ops: &[RangesOp]) {
    let mut h = Harness::new(AddrRanges::new(AddrSpace::x86_64()), 4096);
    for op in ops {
        h.apply(op);
    }
    let mut h = Harness::new(AddrRanges::new(AddrSpace::flat()), 1);
    for op in ops {
        h.apply(op);
    }
    let mut nodes = [Node::EMPTY; 3];
    let mut h = Harness::new(
        AddrRanges::with_storage(AddrSpace::x86_64(), SliceStorage::new(&mut nodes)),
        1,
    );
    for op in ops {
        h.apply(op);
    }
}

/// A spot biased towards the first thousand granules of each region,
/// where ranges meet.
pub fn spot() -> impl Strategy<Value = Spot> {
    let region = prop_oneof![
        Just(Region::OffsetBottom),
        Just(Region::OffsetTop),
        Just(Region::RawTop),
        Just(Region::Middle),
    ];
    let granule =
        prop_oneof![4 => 0u16..1024, 1 => (1u16 << 15) - 64..(1u16 << 15) + 64, 1 => any::<u16>()];
    (region, granule, any::<u16>()).prop_map(|(region, granule, byte)| Spot {
        region,
        granule,
        byte,
    })
}

/// One op, weighted towards adds.
pub fn op() -> impl Strategy<Value = RangesOp> {
    prop_oneof![
        6 => (spot(), 0u8..8).prop_map(|(at, granules)| RangesOp::Add { at, granules }),
        3 => (spot(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(at, count, stride, granules)| RangesOp::AddMany { at, count, stride, granules }),
        1 => (0u8..6).prop_map(|granules| RangesOp::RemoveLast { granules }),
        1 => spot().prop_map(|at| RangesOp::RemoveGreaterEqual { at }),
        4 => spot().prop_map(|at| RangesOp::Query { at }),
        1 => any::<u16>().prop_map(|index| RangesOp::Get { index }),
        1 => Just(RangesOp::CloneInto),
    ]
}

/// Sequences of up to `max_len` ops.
pub fn ops(max_len: usize) -> impl Strategy<Value = Vec<RangesOp>> {
    proptest::collection::vec(op(), 0..=max_len)
}
