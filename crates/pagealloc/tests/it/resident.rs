//! Resident metadata on the real OS: after growing 1 GiB of heap the way a
//! runtime does (64 MiB arenas) and using some of it, the allocator's
//! metadata (summary levels, chunk map, in-use range storage) must occupy
//! at most 70.4 KiB of physical memory (64 KiB plus 10%), however much address space it
//! reserved. Residency is read page by page from `/proc/self/pagemap`.

use std::fs::File;
use std::os::unix::fs::FileExt;

use pageheap_alloc::{Config, Go64, HeapRelease, PageAlloc};
use pageheap_arena::SystemOs;

const GIB: usize = 1 << 30;
const ARENA: usize = 64 << 20;
const CHUNK: usize = 4 << 20;
/// Where the Go runtime's first heap arena goes on 64-bit Linux.
const HEAP_BASE: usize = 0x00c0_0000_0000;
/// The bound: 64 KiB of metadata per GiB grown (the figure before the
/// per-chunk gap caches came in) plus 10%. The caches add 8 bytes per
/// chunk: one 4 KiB page for this heap, which measures 68 KiB.
const MAX_RESIDENT_PER_GIB: usize = (64 << 10) * 11 / 10;

/// Bytes of `[addr, addr + len)` that are in memory (present or swapped),
/// from the page map: one little-endian `u64` per OS page, bit 63 present,
/// bit 62 swapped. Pages that were only read count too, so this can only
/// overstate the metadata's footprint.
fn resident_bytes(pagemap: &File, page: usize, addr: usize, len: usize) -> usize {
    assert!(
        addr.is_multiple_of(page) && len.is_multiple_of(page),
        "unaligned region"
    );
    let pages = len / page;
    let mut buf = vec![0u8; pages * 8];
    pagemap
        .read_exact_at(&mut buf, (addr / page * 8) as u64)
        .expect("read /proc/self/pagemap");
    let in_memory = buf
        .chunks_exact(8)
        .map(|e| u64::from_le_bytes(e.try_into().unwrap()))
        .filter(|e| e >> 62 != 0)
        .count();
    in_memory * page
}

#[test]
fn resident_metadata_per_gib_grown() {
    let config = Config {
        heap_release: HeapRelease::Bookkeeping,
        ..Config::default()
    };
    let mut pa = PageAlloc::<Go64, _>::new(SystemOs::new(), config).unwrap();
    for k in 0..GIB / ARENA {
        pa.grow(HEAP_BASE + k * ARENA, ARENA).unwrap();
    }
    // Use the heap: small and chunk-crossing allocations, a request too big
    // to fit (the search then scans the summary tree to its end), frees
    // that mark chunks for the scavenger, and a scavenge pass.
    let mut live = Vec::new();
    for n in [1, 3, 64, 600, 512 * 3, 1, 1, 8] {
        live.push((pa.alloc(n).unwrap().expect("room"), n));
    }
    assert_eq!(pa.alloc(GIB / 8192 + 1).unwrap(), None);
    for &(a, n) in live.iter().step_by(2) {
        pa.free(a.base, n).unwrap();
    }
    let top = pa.alloc_range(HEAP_BASE + GIB - CHUNK, 512).unwrap();
    assert_eq!(top, CHUNK, "the top chunk was untouched, so scavenged");
    pa.free(HEAP_BASE + GIB - CHUNK, 512).unwrap();
    assert!(pa.scavenge(usize::MAX).unwrap() > 0);

    let page = pa.os_page_size();
    let pagemap = File::open("/proc/self/pagemap").expect("open /proc/self/pagemap");
    let view = pa.inspect();
    let mut regions: Vec<(&str, usize, usize)> = (0..view.levels())
        .map(|l| {
            let (addr, len) = view.summary_reservation(l);
            ("summary level", addr, len)
        })
        .collect();
    regions.extend(view.chunk_map_regions().map(|(a, l)| ("chunk map", a, l)));
    let (addr, len, _) = view.in_use_memory();
    regions.push(("in-use ranges", addr, len));

    let mut resident = 0;
    let mut reserved = 0;
    for &(what, addr, len) in &regions {
        let r = resident_bytes(&pagemap, page, addr, len);
        println!("{what:>14} at {addr:#x}: {r:>6} bytes resident of {len:>10} reserved");
        resident += r;
        reserved += len;
    }
    let stats = pa.stats();
    println!(
        "grew {} MiB: metadata resident {} KiB, reserved {} KiB ({} KiB committed)",
        (stats.pages_total * 8192) >> 20,
        resident >> 10,
        stats.metadata_reserved_bytes >> 10,
        stats.metadata_mapped_bytes >> 10,
    );
    // The regions listed are exactly the allocator's reservations.
    assert_eq!(reserved, stats.metadata_reserved_bytes);
    // The chunks' bitmaps alone, 128 bytes for each of the 256 chunks, were
    // written by `grow`: a measurement below that reads the page map wrong.
    assert!(resident >= GIB / CHUNK * 128, "{resident} bytes resident");
    assert!(
        resident <= MAX_RESIDENT_PER_GIB,
        "{resident} bytes of metadata resident for 1 GiB grown"
    );
}
