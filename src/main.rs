//! The `dfm` binary: parses the command line and runs one command. Errors end
//! the process with a non-zero status and one line on stderr.

use clap::Parser;

/// sled and the HTTP stack allocate a great deal of small, short-lived memory; glibc's
/// allocator spent over a quarter of the payout bench's CPU time (perf, 2026-11-24).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = dfm::cli::Cli::parse();
    dfm::cli::init_logging();
    if let Err(error) = dfm::cli::run(cli) {
        let message = format!("{error:#}").replace('\n', " ");
        eprintln!("dfm: {message}");
        std::process::exit(1);
    }
}
