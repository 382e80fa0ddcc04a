//! How the binary's allocator (mimalloc) hands memory back to the operating system.
//!
//! Process-wide options, set through `mi_option_set`; with `--features system-allocator`
//! (no mimalloc) they change nothing.

/// Option numbers in mimalloc.h (the same in v2 and v3).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// For every command, first thing: memory mimalloc purges leaves the resident set. By
/// default mimalloc commits its arenas eagerly and purges by marking pages free to reclaim
/// (`MADV_FREE`): the kernel takes them back only under memory pressure, so they stay in the
/// resident set, and a run that peaks once (a large collection evaluated) keeps that peak for
/// the process's life. Committing on demand and decommitting on purge hands the pages back
/// (10 ms after they are freed, mimalloc's default delay): `trellis check` at the 4× scale
/// estate peaked at 192 MiB instead of 250 MiB, in the same time (BENCHMARKS.md).
pub fn return_freed_memory() {
    // SAFETY: process-wide options, which mimalloc reads atomically at any time; no-ops for
    // memory not allocated by mimalloc.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DECOMMITS, 1);
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
