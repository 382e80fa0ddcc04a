//! How the binary's allocator (mimalloc) hands memory back to the operating system.
//!
//! Process-wide options, set through `mi_option_set`; with `--features system-allocator`
//! (no mimalloc) they change nothing.

/// Option numbers in mimalloc.h (v3, which `libmimalloc-sys` builds; the first three are the
/// same in v2).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// How long freed memory waits before it is handed back, in milliseconds (mimalloc v3's
/// default is 1,000).
const PURGE_AFTER_MS: std::ffi::c_long = 10;

/// For every command, first thing: memory mimalloc purges leaves the resident set. By
/// default mimalloc commits its arenas eagerly, purges a second after memory is freed, and
/// lets the kernel back its arenas with transparent huge pages (2 MiB at a time, resident as
/// soon as one byte of them is touched). A run is a succession of collections, each building
/// its resources, evaluated and dropped within about a second, so by default the next one's
/// memory came on top of the last one's instead of in its place, and the peak stayed for the
/// process's life. Committing on demand, decommitting 10 ms after a free and 4 KiB pages:
/// `trellis check` at the 4× scale estate peaks at ~150 MiB instead of ~195 MiB, in the same
/// time (BENCHMARKS.md, "Memory, fourth pass").
pub fn return_freed_memory() {
    // SAFETY: process-wide options, which mimalloc reads atomically at any time; no-ops for
    // memory not allocated by mimalloc.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DECOMMITS, 1);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_AFTER_MS);
        libmimalloc_sys::mi_option_set(ALLOW_THP, 0);
    }
}

/// For a process that exports and exits (`trellis export`, `verify-bundle`): memory freed is kept
/// for its next page instead of being handed back to the OS after a second and faulted in
/// (zeroed by the kernel) again. A year's export allocates and frees several gigabytes in
/// pages of a few megabytes; keeping them took its page faults from ~86,000 to ~8,500 and
/// its system time from 2.3 s to 1.3 s. The heap's high-water mark does not change; the
/// process gives everything back when it exits. Not for `trellis serve`, which lives on.
pub fn keep_freed_memory() {
    // SAFETY: as above.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) }
}
