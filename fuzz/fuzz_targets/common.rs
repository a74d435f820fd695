//! Setup shared by the targets over the simulated OS.

/// The simulated OS backs each reservation with a zeroed host allocation,
/// hundreds of MiB for the summary levels. glibc raises its mmap threshold
/// after the first large free, and from then on serves such blocks from
/// its heap with a `memset`: most of an input's time. A fixed threshold
/// keeps them lazily zeroed mappings. Runs once per process.
pub fn fixed_mmap_threshold() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY:
        // - mallopt only changes the allocator's tuning; it is called once,
        //   before this process's first input.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10) };
    });
}
