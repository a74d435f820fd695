//! Property test: any sequence of operations leaves the set equal to the
//! granule model, under the x86-64 offset and in plain order, with growable
//! and with fixed storage.

use pageheap_testkit::ranges::{self, RangesOp, Region, Spot};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ops_match_the_model(ops in ranges::ops(100)) {
        ranges::run(&ops);
    }
}

/// Hand-picked sequences around the edges the generator may rarely hit:
/// the top of offset space, raw `usize::MAX`, and a tree of several levels.
#[test]
fn edges() {
    let spot = |region, granule| Spot {
        region,
        granule,
        byte: 1,
    };
    let cases: Vec<Vec<RangesOp>> = vec![
        // Up to and across the top of offset space: the crossing add is
        // empty, the ones below it coalesce with it.
        vec![
            RangesOp::Add {
                at: spot(Region::OffsetTop, (1 << 15) - 2),
                granules: 2,
            },
            RangesOp::Add {
                at: spot(Region::OffsetTop, (1 << 15) - 3),
                granules: 1,
            },
            RangesOp::Add {
                at: spot(Region::OffsetTop, (1 << 15) - 4),
                granules: 1,
            },
            RangesOp::Query {
                at: spot(Region::OffsetTop, (1 << 15) - 1),
            },
            RangesOp::RemoveLast { granules: 1 },
            RangesOp::Add {
                at: spot(Region::OffsetBottom, 0),
                granules: 3,
            },
            RangesOp::Query {
                at: spot(Region::OffsetTop, 1 << 15),
            },
        ],
        // Through raw usize::MAX and 0.
        vec![
            RangesOp::Add {
                at: spot(Region::RawTop, (1 << 15) - 2),
                granules: 4,
            },
            RangesOp::Add {
                at: spot(Region::RawTop, (1 << 15) + 3),
                granules: 4,
            },
            RangesOp::Add {
                at: spot(Region::RawTop, (1 << 15) + 2),
                granules: 1,
            },
            RangesOp::Query {
                at: spot(Region::RawTop, 1 << 15),
            },
            RangesOp::RemoveGreaterEqual {
                at: spot(Region::RawTop, (1 << 15) + 1),
            },
            RangesOp::CloneInto,
            RangesOp::Add {
                at: spot(Region::RawTop, (1 << 15) + 1),
                granules: 1,
            },
        ],
        // Thousands of separate ranges (several tree levels), then merges,
        // lookups and truncation.
        (0..12u16)
            .map(|k| RangesOp::AddMany {
                at: spot(Region::Middle, 600 * k),
                count: 255,
                stride: 1,
                granules: 0,
            })
            .chain((0..12u16).map(|k| RangesOp::AddMany {
                at: spot(Region::Middle, 600 * k + 1),
                count: 255,
                stride: 1,
                granules: 0,
            }))
            .chain([
                RangesOp::Query {
                    at: spot(Region::Middle, 3000),
                },
                RangesOp::Get { index: 7 },
                RangesOp::CloneInto,
                RangesOp::RemoveGreaterEqual {
                    at: spot(Region::Middle, 4001),
                },
                RangesOp::RemoveLast { granules: 3 },
            ])
            .collect(),
    ];
    for ops in &cases {
        ranges::run(ops);
    }
}
