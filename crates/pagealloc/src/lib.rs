//! Go-conformant page allocator. (Skeleton: filled by its issue.)
#![no_std]
