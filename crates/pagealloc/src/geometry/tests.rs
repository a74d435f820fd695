//! Unit tests for `crate::geometry`: every ready-made geometry's derived
//! values against the reference table, and the address helpers.
//!
//! The expected numbers for `Go64`, `Go32` and the two test-only geometries
//! (`Ios40`, `Mips31`) are the reference's §2.3 table, computed there
//! independently. `Pages4K` and `La57` are not in the table; their numbers
//! are worked out by hand in the comments next to them.

use super::*;

/// iOS/arm64: a 40-bit heap, otherwise Go64 (a row of the reference table).
#[derive(Clone, Copy, Default, Debug)]
struct Ios40;
impl Geometry for Ios40 {
    const PAGE_SHIFT: u32 = 13;
    const LOG_CHUNK_PAGES: u32 = 9;
    const HEAP_ADDR_BITS: u32 = 40;
    const ARENA_BASE_OFFSET: usize = 0;
    const SUMMARY_LEVELS: usize = 5;
}

/// mips/mipsle: a 31-bit heap, otherwise Go32 (a row of the reference table).
#[derive(Clone, Copy, Default, Debug)]
struct Mips31;
impl Geometry for Mips31 {
    const PAGE_SHIFT: u32 = 13;
    const LOG_CHUNK_PAGES: u32 = 9;
    const HEAP_ADDR_BITS: u32 = 31;
    const ARENA_BASE_OFFSET: usize = 0;
    const SUMMARY_LEVELS: usize = 4;
}

/// What a geometry's derived values must be.
struct Want {
    page_bytes: usize,
    chunk_bytes: usize,
    entries: &'static [usize],
    shifts: &'static [u32],
    log_pages: &'static [u32],
    summary_bytes: usize,
    chunks_l1_bits: u32,
    chunk_l2_entries: usize,
    max_off_addr: usize,
}

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;

fn check<G: Geometry>(want: Want) {
    let name = core::any::type_name::<G>();
    let levels = G::SUMMARY_LEVELS;
    assert_eq!(G::PAGE_BYTES, want.page_bytes, "{name}: page bytes");
    assert_eq!(G::CHUNK_PAGES, 512, "{name}: chunk pages");
    assert_eq!(G::CHUNK_BYTES, want.chunk_bytes, "{name}: chunk bytes");
    assert_eq!(levels, want.entries.len(), "{name}: levels");
    let entries: [usize; 5] =
        core::array::from_fn(|l| if l < levels { G::level_entries(l) } else { 0 });
    let shifts: [u32; 5] = core::array::from_fn(|l| if l < levels { G::level_shift(l) } else { 0 });
    let logs: [u32; 5] =
        core::array::from_fn(|l| if l < levels { G::level_log_pages(l) } else { 0 });
    assert_eq!(
        &entries[..levels],
        want.entries,
        "{name}: entries per level"
    );
    assert_eq!(&shifts[..levels], want.shifts, "{name}: level shifts");
    assert_eq!(&logs[..levels], want.log_pages, "{name}: level log pages");
    assert_eq!(
        entries.iter().sum::<usize>() * 8,
        want.summary_bytes,
        "{name}: summary bytes"
    );
    // The root covers MAX_PACKED pages, the leaf one chunk.
    assert_eq!(
        G::LOG_MAX_PACKED,
        want.log_pages[0],
        "{name}: log max packed"
    );
    assert_eq!(G::MAX_PACKED, 1 << want.log_pages[0], "{name}: max packed");
    assert_eq!(
        G::level_shift(levels - 1),
        G::LOG_CHUNK_BYTES,
        "{name}: leaf shift"
    );
    // Root entries times the root's fan-out product equal the chunks.
    assert_eq!(
        G::level_entries(0),
        1 << G::level_bits(0),
        "{name}: root bits"
    );
    for l in 1..levels {
        assert_eq!(G::level_bits(l), 3, "{name}: level {l} bits");
    }
    assert_eq!(
        G::CHUNKS_L1_BITS,
        want.chunks_l1_bits,
        "{name}: chunk map L1 bits"
    );
    assert_eq!(
        1 << G::CHUNKS_L2_BITS,
        want.chunk_l2_entries,
        "{name}: chunk map L2 entries"
    );
    assert_eq!(G::MAX_OFF_ADDR, want.max_off_addr, "{name}: max off addr");
}

#[test]
fn derived_values_match_the_reference_table() {
    check::<Go64>(Want {
        page_bytes: 8 * KIB,
        chunk_bytes: 4 * MIB,
        entries: &[16384, 131072, 1048576, 8388608, 67108864],
        shifts: &[34, 31, 28, 25, 22],
        log_pages: &[21, 18, 15, 12, 9],
        summary_bytes: 128 * KIB + MIB + 8 * MIB + 64 * MIB + 512 * MIB,
        chunks_l1_bits: 13,
        chunk_l2_entries: 8192,
        max_off_addr: 0xffff_ffff_ffff,
    });
    check::<Go64Amd64>(Want {
        page_bytes: 8 * KIB,
        chunk_bytes: 4 * MIB,
        entries: &[16384, 131072, 1048576, 8388608, 67108864],
        shifts: &[34, 31, 28, 25, 22],
        log_pages: &[21, 18, 15, 12, 9],
        summary_bytes: 128 * KIB + MIB + 8 * MIB + 64 * MIB + 512 * MIB,
        chunks_l1_bits: 13,
        chunk_l2_entries: 8192,
        // 0xffff_8000_0000_0000 + 0xffff_ffff_ffff wraps to the top of the
        // lower half: the highest user address.
        max_off_addr: 0x7fff_ffff_ffff,
    });
    check::<Go32>(Want {
        page_bytes: 8 * KIB,
        chunk_bytes: 4 * MIB,
        entries: &[2, 16, 128, 1024],
        shifts: &[31, 28, 25, 22],
        log_pages: &[18, 15, 12, 9],
        summary_bytes: 9360,
        chunks_l1_bits: 0,
        chunk_l2_entries: 1024,
        max_off_addr: 0xffff_ffff,
    });
    check::<Ios40>(Want {
        page_bytes: 8 * KIB,
        chunk_bytes: 4 * MIB,
        entries: &[64, 512, 4096, 32768, 262144],
        shifts: &[34, 31, 28, 25, 22],
        log_pages: &[21, 18, 15, 12, 9],
        // The table rounds to "2.3 MiB": 299,584 entries * 8 B exactly.
        summary_bytes: 2_396_672,
        chunks_l1_bits: 13,
        chunk_l2_entries: 32,
        max_off_addr: (1 << 40) - 1,
    });
    check::<Mips31>(Want {
        page_bytes: 8 * KIB,
        chunk_bytes: 4 * MIB,
        entries: &[1, 8, 64, 512],
        shifts: &[31, 28, 25, 22],
        log_pages: &[18, 15, 12, 9],
        summary_bytes: 4680,
        chunks_l1_bits: 0,
        chunk_l2_entries: 512,
        max_off_addr: (1 << 31) - 1,
    });
    // By hand: 4 KiB pages make a 2 MiB chunk (log 21). Root bits = 48 - 21
    // - 4*3 = 15, so entries are 2^15, 2^18, 2^21, 2^24, 2^27; shifts are
    // 48 - 15 - 3l = 33, 30, 27, 24, 21; log pages 9 + 4*3 = 21 down to 9.
    // Bytes: 8 * entries = 256 KiB + 2 MiB + 16 MiB + 128 MiB + 1 GiB.
    // Chunk map L2 bits: 48 - 21 - 13 = 14.
    check::<Pages4K>(Want {
        page_bytes: 4 * KIB,
        chunk_bytes: 2 * MIB,
        entries: &[1 << 15, 1 << 18, 1 << 21, 1 << 24, 1 << 27],
        shifts: &[33, 30, 27, 24, 21],
        log_pages: &[21, 18, 15, 12, 9],
        summary_bytes: 256 * KIB + 2 * MIB + 16 * MIB + 128 * MIB + GIB,
        chunks_l1_bits: 13,
        chunk_l2_entries: 1 << 14,
        max_off_addr: 0xffff_ffff_ffff,
    });
    // By hand: 4 MiB chunks (log 22); root bits = 57 - 22 - 4*3 = 23, so
    // entries are 2^23, 2^26, 2^29, 2^32, 2^35; shifts 57 - 23 - 3l = 34,
    // 31, 28, 25, 22 (the 48-bit shifts: the extra 9 bits all widen the
    // root); log pages 21 .. 9 as for 48 bits. Bytes: 8 * entries = 64 MiB
    // + 512 MiB + 4 GiB + 32 GiB + 256 GiB. Chunk map L2 bits: 57 - 22 - 13
    // = 22.
    check::<La57>(Want {
        page_bytes: 8 * KIB,
        chunk_bytes: 4 * MIB,
        entries: &[1 << 23, 1 << 26, 1 << 29, 1 << 32, 1 << 35],
        shifts: &[34, 31, 28, 25, 22],
        log_pages: &[21, 18, 15, 12, 9],
        summary_bytes: 64 * MIB + 512 * MIB + 4 * GIB + 32 * GIB + 256 * GIB,
        chunks_l1_bits: 13,
        chunk_l2_entries: 1 << 22,
        max_off_addr: (1 << 57) - 1,
    });
}

/// One address-helper case: `addr` lies in chunk `ci` at page `page`.
fn check_addr<G: Geometry>(addr: usize, ci: usize, page: usize) {
    let name = core::any::type_name::<G>();
    assert_eq!(G::chunk_index(addr), ci, "{name}: chunk_index({addr:#x})");
    assert_eq!(
        G::chunk_page_index(addr),
        page,
        "{name}: chunk_page_index({addr:#x})"
    );
    let base = G::chunk_base(ci);
    assert_eq!(
        base + page * G::PAGE_BYTES,
        addr & !(G::PAGE_BYTES - 1),
        "{name}: chunk_base({ci:#x})"
    );
}

#[test]
fn address_helpers() {
    // The reference's test base chunk 0xc000 is address 0xc000 * 4 MiB =
    // 0x30_0000_0000; with the x86-64 offset the same address is chunk
    // 0xc000 + 2^47 / 2^22 = 0x200_c000.
    check_addr::<Go64>(0x30_0000_0000, 0xc000, 0);
    check_addr::<Go64>(0x30_0000_0000 + 5 * 8192 + 17, 0xc000, 5);
    check_addr::<Go64>(0x30_0040_0000 - 1, 0xc000, 511);
    check_addr::<Go64Amd64>(0x30_0000_0000, 0x200_c000, 0);
    check_addr::<Go64Amd64>(0xffff_8000_0000_0000, 0, 0);
    check_addr::<Go64Amd64>(0xffff_ffff_ffff_e000, 0x1ff_ffff, 511);
    check_addr::<Go64Amd64>(0, 0x200_0000, 0);
    check_addr::<Pages4K>(0x20_0000 + 3 * 4096, 1, 3);
    check_addr::<La57>((1 << 56) + 8192, 1 << 34, 1);
    check_addr::<Go32>(0xffc0_0000 + 0x3f_e000, 0x3ff, 511);
}

#[test]
#[should_panic = "summary level out of range"]
fn level_out_of_range_panics() {
    let _ = Go32::level_shift(4);
}
