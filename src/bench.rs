//! `dfm bench`: measured figures, each beside a raw-sled baseline from the same run.
use clap::Args;

#[derive(Args, Debug)]
pub struct BenchArgs {}

pub fn run(_arguments: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench: not built yet")
}
