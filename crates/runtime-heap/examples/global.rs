//! The page heap as the program's `#[global_allocator]`: large blocks
//! (a page and up) come from the heap, small ones from the system
//! allocator, and `main` starts the background scavenger, which returns
//! freed memory to the OS while the program goes on. Run with
//! `cargo run --release -p pageheap --example global`.

use std::time::{Duration, Instant};

use pageheap::GlobalHeap;

#[global_allocator]
static GLOBAL: GlobalHeap = GlobalHeap::new();

fn mib(b: usize) -> usize {
    b >> 20
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The first large allocation creates the heap.
    let warm = vec![1u8; 1 << 20];
    let heap = GLOBAL.heap().ok_or("the heap could not be created")?;
    assert!(heap.start_scavenger()?, "the scavenger was not running yet");
    drop(warm);

    // 320 MiB in buffers of 1 to 4 MiB, written so the memory is resident.
    let mut bufs: Vec<Vec<u8>> = (0..128).map(|i| vec![i as u8; (1 + i % 4) << 20]).collect();
    let live: usize = bufs.iter().map(Vec::len).sum();
    let s = heap.stats();
    println!(
        "live {} MiB: heap in use {} MiB of {} MiB",
        mib(live),
        mib(s.heap_inuse),
        mib(s.heap_sys)
    );
    assert!(s.heap_inuse >= live, "large buffers come from the heap");
    assert!(bufs
        .iter()
        .enumerate()
        .all(|(i, b)| b[b.len() - 1] == i as u8));

    // Drop nine buffers in ten and let the scavenger work for a while.
    let mut i = 0;
    bufs.retain(|_| {
        i += 1;
        i % 10 == 0
    });
    let t = Instant::now();
    let freed = heap.stats().heap_free;
    while t.elapsed() < Duration::from_secs(3) && heap.stats().released_background < freed / 2 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = heap.stats();
    println!(
        "after dropping 90%: {} MiB free, the background scavenger released {} MiB in {:.1} s",
        mib(freed),
        mib(s.released_background),
        t.elapsed().as_secs_f64()
    );
    // Whatever is left, released now.
    let now = heap.release_all()?;
    let s = heap.stats();
    println!(
        "release_all: {} MiB more; in use {} MiB, released {} MiB",
        mib(now),
        mib(s.heap_inuse),
        mib(s.heap_released)
    );
    assert_eq!(s.heap_free, 0, "every free page released");
    assert_eq!(GLOBAL.reentrant_allocations(), 0);
    heap.stop_scavenger();
    Ok(())
}
