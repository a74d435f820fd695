//! A tiny deterministic generator for workloads, benches and large tests:
//! the same seed gives the same sequence on every run and machine, with no
//! dependency. Not for anything that needs statistical quality.

/// Marsaglia's xorshift64 (shifts 13, 7, 17).
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator starting from `seed`.
    ///
    /// # Panics
    /// If `seed` is 0, the one state xorshift never leaves.
    pub fn new(seed: u64) -> Self {
        assert_ne!(seed, 0, "xorshift needs a non-zero seed");
        XorShift(seed)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n`, slightly biased when `n` does not divide 2^64.
    ///
    /// # Panics
    /// If `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A permutation of `0..n`, the same for the same `seed` (Fisher–Yates over
/// [`XorShift`]).
///
/// # Panics
/// If `seed` is 0.
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut rng = XorShift::new(seed);
    for i in (1..n).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_and_permutation() {
        // The first value from seed 1, worked by hand: 1 ^ 1<<13 = 0x2001;
        // ^ >>7 gives 0x2001 ^ 0x40 = 0x2041; ^ <<17 gives 0x2041 ^
        // 0x4082_0000 = 0x4082_2041.
        assert_eq!(XorShift::new(1).next_u64(), 0x4082_2041);
        let mut p = shuffled(1000, 7);
        assert_ne!(p, (0..1000).collect::<Vec<_>>());
        p.sort_unstable();
        assert_eq!(p, (0..1000).collect::<Vec<_>>());
    }
}
