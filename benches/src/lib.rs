//! Cross-crate benchmarks and peer comparisons; see `benches/`.
