//! Sorted set of disjoint address ranges. (Skeleton: filled by its issue.)
#![no_std]
#![forbid(unsafe_code)]
