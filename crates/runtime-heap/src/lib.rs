//! The page heap facade. (Skeleton: filled by its issue.)
#![forbid(unsafe_code)]
