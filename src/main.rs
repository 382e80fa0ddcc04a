// `--features system-allocator` leaves mimalloc out, for heap profilers that follow the C
// library's malloc (heaptrack; BENCHMARKS.md says how).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    trellis::cli::main()
}
