// `--features system-allocator` leaves mimalloc out, for heap profilers that follow the C
// library's malloc (heaptrack; BENCHMARKS.md says how).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Before anything is allocated (a constructor: the arenas mimalloc reserves at the first
// allocation keep the options they were made with; `allocator::return_freed_memory` says why).
#[cfg(all(target_os = "linux", not(feature = "system-allocator")))]
#[used]
#[unsafe(link_section = ".init_array")]
static RETURN_FREED_MEMORY: extern "C" fn() = {
    extern "C" fn before_main() {
        trellis::allocator::return_freed_memory();
    }
    before_main
};

fn main() -> std::process::ExitCode {
    trellis::cli::main()
}
