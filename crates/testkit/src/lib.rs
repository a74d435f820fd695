//! Test support: models, trace replay, simulated OS. (Skeleton.)
#![forbid(unsafe_code)]
