//! A kernel-style physical frame allocator: 4 KiB frames over a firmware
//! memory map with holes, with the allocator's own metadata in a static
//! buffer through `BufferOs`, so no operating system is involved at all.
//!
//! The allocator grows in whole 2 MiB chunks, so the example grows every
//! chunk a usable region touches and then allocates the pages of the
//! chunks that are not usable memory (holes, reserved firmware ranges):
//! they are never handed out. Run with
//! `cargo run -p pageheap-alloc --example frames`.

use pageheap_alloc::{Config, Geometry, PageAlloc};
use pageheap_arena::BufferOs;

/// 4 KiB frames in 2 MiB chunks over 4 GiB of physical address space:
/// small summary arrays (about 330 KiB of metadata in all), so they fit a
/// static buffer.
#[derive(Clone, Copy, Debug, Default)]
struct Frames4K;

impl Geometry for Frames4K {
    const PAGE_SHIFT: u32 = 12;
    const LOG_CHUNK_PAGES: u32 = 9;
    const HEAP_ADDR_BITS: u32 = 32;
    const ARENA_BASE_OFFSET: usize = 0;
    const SUMMARY_LEVELS: usize = 4;
}

const FRAME: usize = 4096;
const CHUNK: usize = Frames4K::CHUNK_BYTES;

/// A firmware memory map (base, length, usable), as an e820 or UEFI map
/// reports it: low memory, a hole for the legacy video area and ROMs,
/// usable memory up to just below 3 GiB, a PCI hole, and more above 4 GiB
/// that this 32-bit geometry does not cover.
const MEMORY_MAP: &[(usize, usize, bool)] = &[
    (0x0000_0000, 0x0009_f000, true),
    (0x0009_f000, 0x0006_1000, false),
    (0x0010_0000, 0x3fe0_0000, true),
    (0x3ff0_0000, 0x0010_0000, false),
    (0x4000_0000, 0x7f00_0000, true),
    (0xc000_0000, 0x4000_0000, false),
];

/// Metadata memory: 1 MiB, 4 KiB-aligned.
#[repr(align(4096))]
// Reached only through a raw pointer, never by the field.
#[allow(dead_code)]
struct Metadata([u8; 1 << 20]);
static mut METADATA: Metadata = Metadata([0; 1 << 20]);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY:
    // - `METADATA` is used by nothing but this `BufferOs`, for the rest of
    //   the program; `main` runs once.
    let os = unsafe {
        let addr = (&raw mut METADATA).cast::<u8>().expose_provenance();
        BufferOs::from_raw_parts(addr, 1 << 20, FRAME)?
    };
    let mut frames = PageAlloc::<Frames4K, &BufferOs>::new(&os, Config::default())?;

    // Grow every chunk a usable region touches, then take back the frames
    // of those chunks that are not usable memory.
    let usable: Vec<(usize, usize)> = MEMORY_MAP
        .iter()
        .filter(|r| r.2)
        .map(|&(b, l, _)| (b, (b + l).min(1 << 32)))
        .collect();
    let mut grown = Vec::<(usize, usize)>::new();
    for &(b, e) in &usable {
        let (cb, ce) = (b / CHUNK * CHUNK, e.div_ceil(CHUNK) * CHUNK);
        let cb = grown.last().map_or(cb, |&(_, last)| cb.max(last));
        if cb < ce {
            frames.grow(cb, ce - cb)?;
            grown.push((cb, ce));
        }
    }
    let mut holes = 0;
    for &(gb, ge) in &grown {
        let mut at = gb;
        let inside = usable.iter().filter(|&&(b, e)| e > gb && b < ge);
        for (b, e) in inside.copied().chain([(ge, ge)]) {
            if b > at {
                frames.alloc_range(at, (b - at) / FRAME)?;
                holes += (b - at) / FRAME;
            }
            at = at.max(e.min(ge));
        }
    }
    let s = frames.stats();
    println!(
        "frames: {} grown, {} in holes, {} free ({} MiB usable)",
        s.pages_total,
        holes,
        s.pages_free,
        (s.pages_free * FRAME) >> 20
    );
    let usable_frames: usize = usable.iter().map(|&(b, e)| (e - b) / FRAME).sum();
    assert_eq!(
        s.pages_free, usable_frames,
        "free frames are the usable ones"
    );

    // Allocation is first fit by address: the first frames come from low
    // memory, and a run never crosses a hole.
    let one = frames.alloc(1)?.expect("a frame").base;
    let run = frames.alloc(200)?.expect("200 frames").base;
    println!("1 frame at {one:#x}, 200 frames at {run:#x}");
    assert_eq!(one, 0);
    assert!(
        run >= 0x10_0000,
        "159 frames fit below the hole, 200 do not"
    );
    for &(b, l, ok) in MEMORY_MAP {
        if !ok {
            assert!(
                run + 200 * FRAME <= b || run >= b + l,
                "a run overlaps a hole"
            );
        }
    }
    frames.free(one, 1)?;
    frames.free(run, 200)?;
    println!(
        "metadata: {} KiB committed in a {} KiB static buffer ({} KiB left)",
        frames.stats().metadata_mapped_bytes >> 10,
        1 << 10,
        os.free_bytes() >> 10
    );
    assert_eq!(frames.stats().pages_free, usable_frames);
    Ok(())
}
