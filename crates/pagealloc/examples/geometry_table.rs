//! Measures what each ready-made geometry costs in metadata: the address
//! space reserved up front (it costs no memory until committed) and the
//! metadata committed per GiB of heap grown, contiguous and in arenas with
//! gaps. Prints the table the crate documentation shows. Run with
//! `cargo run -p pageheap-alloc --example geometry_table`.

use pageheap_alloc::{Config, Geometry, Go32, Go64, Go64Amd64, La57, PageAlloc, Pages4K};
use pageheap_arena::SystemOs;

/// Resident memory of this process in bytes, from the OS (Linux), or
/// `None` where the example cannot read it.
fn rss() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// `(reserved, committed, resident)` metadata bytes after growing `gib`
/// GiB at `base`, in one piece or as 64 MiB arenas each followed by a
/// 64 MiB gap; resident is the growth of the process's RSS.
fn committed<G: Geometry>(base: usize, gib: usize, gaps: bool) -> (usize, usize, Option<usize>) {
    let before = rss();
    let mut pa = PageAlloc::<G, _>::new(SystemOs::new(), Config::default()).expect("new");
    let reserved = pa.stats().metadata_reserved_bytes;
    let bytes = gib << 30;
    if gaps {
        let arena = 64 << 20;
        for i in 0..bytes / arena {
            pa.grow(base + 2 * i * arena, arena).expect("grow");
        }
    } else {
        pa.grow(base, bytes).expect("grow");
    }
    let resident = rss().zip(before).map(|(a, b)| a.saturating_sub(b));
    (reserved, pa.stats().metadata_mapped_bytes, resident)
}

fn row<G: Geometry>(name: &str, base: usize, gib: usize) {
    let (reserved, one, one_rss) = committed::<G>(base, gib, false);
    let (_, gaps, gaps_rss) = committed::<G>(base, gib, true);
    let per_gib = |b: usize| format!("{:.1} KiB", b as f64 / 1024.0 / gib as f64);
    let res = |r: Option<usize>| r.map_or_else(|| "n/a".to_string(), per_gib);
    println!(
        "| `{name}` | {} KiB | {} | {:.1} MiB | {} GiB | {} / {} | {} / {} |",
        G::PAGE_BYTES >> 10,
        G::HEAP_ADDR_BITS,
        reserved as f64 / (1 << 20) as f64,
        gib,
        per_gib(one),
        res(one_rss),
        per_gib(gaps),
        res(gaps_rss),
    );
}

fn main() {
    println!("| geometry | page | heap bits | reserved up front | heap grown | per GiB contiguous: committed / resident | per GiB with gaps: committed / resident |");
    println!("|---|---|---|---|---|---|---|");
    row::<Go64>("Go64", 0xc0_0000_0000, 4);
    row::<Go64Amd64>("Go64Amd64", 0xc0_0000_0000, 4);
    row::<Pages4K>("Pages4K", 0xc0_0000_0000, 4);
    row::<La57>("La57", 0xc0_0000_0000, 4);
    row::<Go32>("Go32", 0x1000_0000, 1);
}
