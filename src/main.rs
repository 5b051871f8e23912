//! The `dfm` binary: parses the command line and runs one command. Errors end
//! the process with a non-zero status and one line on stderr.

use clap::Parser;

/// sled and the HTTP stack allocate a great deal of small, short-lived memory; glibc's
/// allocator spent over a quarter of the payout bench's CPU time (perf, 2026-11-24).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    no_transparent_huge_pages();
    purge_freed_memory_at_once();
    let cli = dfm::cli::Cli::parse();
    dfm::cli::init_logging();
    if let Err(error) = dfm::cli::run(cli) {
        let message = format!("{error:#}").replace('\n', " ");
        eprintln!("dfm: {message}");
        std::process::exit(1);
    }
}

/// mimalloc backs its arenas with transparent huge pages where the kernel allows
/// it, and a 2 MiB page counts whole in the resident set however little of it is
/// in use. At a million families the service held 100 to 120 MB more with them
/// (369 against 269 MB once the scoring table was read; 856 against 744 MB after
/// a feed), and neither the feed nor the what-if was measurably faster (BENCHMARKS.md).
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes nothing
    // but this process's page policy; a kernel without it answers EINVAL, which
    // leaves the process as it was.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// mimalloc 3 gives freed pages back to the kernel a second after they empty
/// (`purge_delay`, 1,000 ms). The dispatcher frees a batch's worth of decoded
/// records, commits and messages every few hundred milliseconds, so a second's
/// worth stays resident: at a million families a re-score of 179,127 families
/// peaked at 726 MB with the delay and 641 MB without it (BENCHMARKS.md).
fn purge_freed_memory_at_once() {
    // `mi_option_purge_delay` in mimalloc 3.3's `mi_option_t` (libmimalloc-sys
    // 0.1.49, pinned by Cargo.lock), which that crate does not name.
    const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
    unsafe extern "C" {
        fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    // SAFETY: mimalloc reads this option each time it purges; setting it takes
    // no lock and touches no allocation.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}
