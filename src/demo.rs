pub fn run(_families: u64, _seed: u64, _exit: bool) -> anyhow::Result<()> {
    anyhow::bail!("demo: not built yet")
}
