//! The operations of the `heap_ops` fuzz target and their byte encoding,
//! here so that tools (`cargo xtask fuzz`'s input-size figures) decode an
//! input exactly as the target does.

/// One operation of the facade fuzz target. Each variant's fields are the
/// decoded operands; the target gives them meaning against its live spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum HeapOp {
    /// Allocate `pages` pages.
    Alloc { pages: usize },
    /// Allocate `pages` pages aligned to `align` bytes.
    AllocAligned { pages: usize, align: usize },
    /// Free the live span picked by `index`.
    Free { index: usize },
    /// Free `pages` pages at `offset` pages from the first span's address,
    /// when not all of them are one live span: must fail.
    BadFree { offset: usize, pages: usize },
    /// Free a span freed before, if none of its pages is live now.
    DoubleFree { index: usize },
    /// Release `bytes`.
    Scavenge { bytes: usize },
    /// Release everything.
    ReleaseAll,
    /// Hand this thread's page cache back.
    FlushCache,
    /// Set a memory limit of `mib` MiB (0: none).
    SetLimit { mib: usize },
    /// Fail the `k`-th OS call from now (one thread only).
    Fault { k: u64 },
}

/// One to three bytes an op; the tag's top bit picks the thread in
/// two-thread mode.
pub fn decode(data: &[u8]) -> Vec<(bool, HeapOp)> {
    let mut it = data.iter().copied();
    let mut out = Vec::new();
    while let Some(tag) = it.next() {
        let mut byte = || usize::from(it.next().unwrap_or(0));
        let op = match tag & 15 {
            0..=4 => HeapOp::Alloc {
                pages: 1 + byte() % 24,
            },
            5 => HeapOp::Alloc {
                pages: 1 + (byte() | byte() << 8) % 1100,
            },
            6 => HeapOp::AllocAligned {
                pages: 1 + byte() % 40,
                align: 1 << (14 + byte() % 9),
            },
            7..=9 => HeapOp::Free { index: byte() },
            10 => HeapOp::BadFree {
                offset: byte() | byte() << 8,
                pages: 1 + byte() % 16,
            },
            11 => HeapOp::DoubleFree { index: byte() },
            12 => HeapOp::Scavenge {
                bytes: byte() << 14,
            },
            13 => {
                if byte() % 2 == 0 {
                    HeapOp::ReleaseAll
                } else {
                    HeapOp::FlushCache
                }
            }
            14 => HeapOp::SetLimit { mib: byte() % 64 },
            _ => HeapOp::Fault {
                k: 1 + byte() as u64 % 8,
            },
        };
        out.push((tag & 0x80 != 0, op));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{decode, HeapOp};

    #[test]
    fn ops_take_one_to_three_bytes() {
        let ops = decode(&[0x00, 5, 0x87, 3, 0x05, 0x01, 0x02, 0x0d]);
        assert_eq!(
            ops,
            [
                (false, HeapOp::Alloc { pages: 6 }),
                (true, HeapOp::Free { index: 3 }),
                // 0x0201 % 1100 = 513.
                (false, HeapOp::Alloc { pages: 514 }),
                // A missing operand byte reads as 0: an even byte.
                (false, HeapOp::ReleaseAll),
            ]
        );
    }
}
