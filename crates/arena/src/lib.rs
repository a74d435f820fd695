//! Address space from the operating system, for a heap.
//!
//! (Skeleton: filled by the `arena` issue.)
#![cfg_attr(not(feature = "std"), no_std)]

mod os;

pub use os::{HugeAdvice, Os, ReleaseMode};

/// Errors from address-space operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The requested range overlaps an existing mapping.
    #[error("address range {addr:#x}+{len:#x} is already taken")]
    AddressTaken {
        /// Start of the requested range.
        addr: usize,
        /// Length of the requested range.
        len: usize,
    },
    /// The operation is not supported on this system.
    #[error("operation not supported on this system")]
    Unsupported,
}
