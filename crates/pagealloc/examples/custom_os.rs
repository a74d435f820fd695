//! Porting to a new system, or instrumenting one: an `Os` of your own.
//!
//! `Os` is an `unsafe trait`: an implementation promises that memory made
//! Ready stays readable and writable, with its contents, until the caller
//! gives it back, and that it reads as zero the first time. This example
//! implements it by forwarding to another `Os` (the real one) and counting
//! each call, then runs a page allocator over it: the counts show exactly
//! what the allocator asks of the system (a few reservations up front,
//! commits only where the heap grows). A port to a new platform writes the
//! same seven required methods over that platform's calls. Run with
//! `cargo run -p pageheap-alloc --example custom_os`.

use std::sync::atomic::{AtomicUsize, Ordering};

use pageheap_alloc::{Config, Go64, PageAlloc};
use pageheap_arena::{Error, HugeAdvice, Os, ReleaseMode, SystemOs};

/// Calls counted per operation, and the bytes they covered.
#[derive(Default)]
struct Counts {
    reserve: AtomicUsize,
    reserved_bytes: AtomicUsize,
    map: AtomicUsize,
    mapped_bytes: AtomicUsize,
    used: AtomicUsize,
    unused: AtomicUsize,
    fault: AtomicUsize,
    free: AtomicUsize,
}

/// An `Os` that counts the calls it forwards to `inner`.
struct CountingOs<O> {
    inner: O,
    counts: Counts,
}

fn bump(c: &AtomicUsize, by: usize) {
    c.fetch_add(by, Ordering::Relaxed);
}

// SAFETY:
// - Every method forwards to `inner`, which keeps the contract; counting
//   touches no memory and changes no call, so the promise carries over.
unsafe impl<O: Os> Os for CountingOs<O> {
    fn page_size(&self) -> usize {
        self.inner.page_size()
    }

    fn huge_page_size(&self) -> Option<usize> {
        self.inner.huge_page_size()
    }

    fn reserve(&self, hint: Option<usize>, len: usize) -> Result<usize, Error> {
        bump(&self.counts.reserve, 1);
        bump(&self.counts.reserved_bytes, len);
        self.inner.reserve(hint, len)
    }

    fn reserve_at(&self, addr: usize, len: usize) -> Result<usize, Error> {
        bump(&self.counts.reserve, 1);
        bump(&self.counts.reserved_bytes, len);
        self.inner.reserve_at(addr, len)
    }

    fn map(&self, addr: usize, len: usize) -> Result<(), Error> {
        bump(&self.counts.map, 1);
        bump(&self.counts.mapped_bytes, len);
        self.inner.map(addr, len)
    }

    fn used(&self, addr: usize, len: usize) -> Result<(), Error> {
        bump(&self.counts.used, 1);
        self.inner.used(addr, len)
    }

    unsafe fn unused(&self, addr: usize, len: usize, mode: ReleaseMode) -> Result<(), Error> {
        bump(&self.counts.unused, 1);
        // SAFETY:
        // - The caller's promise for this call is the one the inner call
        //   needs: same range, same object underneath.
        unsafe { self.inner.unused(addr, len, mode) }
    }

    unsafe fn fault(&self, addr: usize, len: usize) -> Result<(), Error> {
        bump(&self.counts.fault, 1);
        // SAFETY:
        // - As for `unused`.
        unsafe { self.inner.fault(addr, len) }
    }

    unsafe fn free(&self, addr: usize, len: usize) -> Result<(), Error> {
        bump(&self.counts.free, 1);
        // SAFETY:
        // - As for `unused`.
        unsafe { self.inner.free(addr, len) }
    }

    fn advise_huge(&self, addr: usize, len: usize, advice: HugeAdvice) -> Result<(), Error> {
        self.inner.advise_huge(addr, len, advice)
    }

    fn zeroed_after_unused(&self, mode: ReleaseMode) -> bool {
        self.inner.zeroed_after_unused(mode)
    }
}

fn report(stage: &str, c: &Counts) {
    let get = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    println!(
        "{stage:<16} reserve {:>2} ({:>4} MiB)  map {:>3} ({:>5} KiB)  used {:>3}  unused {}  fault {}  free {}",
        get(&c.reserve),
        get(&c.reserved_bytes) >> 20,
        get(&c.map),
        get(&c.mapped_bytes) >> 10,
        get(&c.used),
        get(&c.unused),
        get(&c.fault),
        get(&c.free),
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let os = CountingOs {
        inner: SystemOs::new(),
        counts: Counts::default(),
    };
    let mut pa = PageAlloc::<Go64, _>::new(&os, Config::default())?;
    report("new", &os.counts);
    // Synthetic heap addresses: with the default `Bookkeeping` release the
    // allocator never touches heap memory, only its metadata.
    let base = 0xc000 << 22;
    pa.grow(base, 256 << 22)?; // 1 GiB
    report("grow 1 GiB", &os.counts);
    let a = pa.alloc(1000)?.expect("room");
    pa.free(a.base, 1000)?;
    report("alloc + free", &os.counts);
    let maps = os.counts.map.load(Ordering::Relaxed);
    drop(pa);
    report("dropped", &os.counts);
    let c = &os.counts;
    assert_eq!(
        c.reserve.load(Ordering::Relaxed),
        c.free.load(Ordering::Relaxed),
        "every reservation given back"
    );
    assert_eq!(maps, os.counts.map.load(Ordering::Relaxed));
    Ok(())
}
