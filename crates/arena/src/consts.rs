//! Per-target constants of the heap's address space.
//!
//! These are compile-time facts about a target; the page sizes, which only
//! the running system knows, are read by [`crate::os_page_size`] and
//! [`crate::os_huge_page_size`].

/// The granularity in which the heap reserves address space (Go's
/// `heapArenaBytes`).
///
/// 64 MiB on 64-bit Unix-likes; 4 MiB on 64-bit Windows, on iOS and on every
/// 32-bit target, so that a small heap does not reserve a large fraction of a
/// small address space; 512 KiB on Wasm, where reserved memory is real linear
/// memory. The Wasm value follows the reference's current Go value (512 KiB
/// since the Go 1.26 cycle; 4 MiB before), because small programs should not
/// pay for megabytes of linear memory they never use.
pub const HEAP_ARENA_BYTES: usize = if cfg!(target_family = "wasm") {
    512 << 10
} else if cfg!(any(
    target_pointer_width = "32",
    target_pointer_width = "16",
    windows,
    target_os = "ios"
)) {
    4 << 20
} else {
    64 << 20
};

/// How many address bits the heap may use (Go's `heapAddrBits`): arenas are
/// only reserved below `1 << HEAP_ADDR_BITS`.
///
/// 48 on 64-bit targets, 40 on iOS, 31 on 32-bit MIPS and 32 on other 32-bit
/// targets and on Wasm.
pub const HEAP_ADDR_BITS: u32 = if cfg!(target_os = "ios") && cfg!(target_pointer_width = "64") {
    40
} else if cfg!(target_pointer_width = "64") && !cfg!(target_family = "wasm") {
    48
} else if cfg!(target_arch = "mips") {
    31
} else {
    32
};
