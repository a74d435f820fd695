// A fixed pseudo-random permutation for the unit tests and the benches
// (they `include!` this file), so that the package needs no test
// crate: Fisher–Yates driven by xorshift64.

/// A permutation of `0..n`, the same for the same non-zero `seed`.
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    assert_ne!(seed, 0, "xorshift needs a non-zero seed");
    let mut x = seed;
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}
