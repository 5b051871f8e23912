//! The `dfm` binary: parses the command line and runs one command. Errors end
//! the process with a non-zero status and one line on stderr.

use clap::Parser;

/// sled and the HTTP stack allocate a great deal of small, short-lived memory; glibc's
/// allocator spent over a quarter of the payout bench's CPU time (perf, 2026-11-24).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    no_transparent_huge_pages();
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
