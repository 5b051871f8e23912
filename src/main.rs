//! The `dfm` binary: parses the command line and runs one command. Errors end
//! the process with a non-zero status and one line on stderr.

use clap::Parser;

fn main() {
    let cli = dfm::cli::Cli::parse();
    dfm::cli::init_logging();
    if let Err(error) = dfm::cli::run(cli) {
        let message = format!("{error:#}").replace('\n', " ");
        eprintln!("dfm: {message}");
        std::process::exit(1);
    }
}
