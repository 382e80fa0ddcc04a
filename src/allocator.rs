//! How the binary's allocator (mimalloc) hands memory back to the operating system.
//!
//! Process-wide options, set through `mi_option_set`; with `--features system-allocator`
//! (no mimalloc) they change nothing. The C libraries linked in (SQLite) allocate through the
//! C library's malloc, not mimalloc: on glibc that is told the same (see [`c_malloc`]).

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
    c_malloc::return_freed_memory();
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
    c_malloc::keep_freed_memory();
}

/// glibc's malloc, which SQLite allocates from (a stored run binds each collection's evidence,
/// megabytes of JSON, and SQLite copies it). glibc serves a block of 128 KiB or more with its
/// own `mmap`, unmapped when freed, but each time such a block is freed it raises that
/// threshold to the block's size (up to 32 MiB): after the first evidence blob, the next ones
/// came from the SQLite thread's heap arena, which glibc rarely shrinks, and stayed resident.
/// Fixing the threshold at its default keeps large blocks mapped on their own: stored `check`
/// runs at the 4× scale estate peaked at 102.1–117.9 MiB (median 107.5) instead of
/// 103.8–132.9 MiB (median 118.4), `verify` at 62 MiB instead of 82 (BENCHMARKS.md, "Memory,
/// sixth pass"). Elsewhere than glibc, nothing to do.
mod c_malloc {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn set_mmap_threshold(bytes: std::ffi::c_int) {
        // SAFETY: `mallopt` only sets a process-wide parameter of malloc; it may be called at
        // any time, from any thread. It returns 0 only for an invalid value, and these are valid.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
        }
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    fn set_mmap_threshold(_bytes: std::ffi::c_int) {}

    /// glibc's default threshold, no longer moving.
    pub(super) fn return_freed_memory() {
        set_mmap_threshold(128 * 1024);
    }

    /// The most glibc itself raises it to: large blocks are reused, as mimalloc's are then.
    pub(super) fn keep_freed_memory() {
        set_mmap_threshold(32 * 1024 * 1024);
    }
}
