//! The command line of CONTRACT.md: `serve`, `demo`, `generate`, `load`, and
//! dfm's own `bench`.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::generate::{self, GenerateOptions};
use crate::service;

#[derive(Parser, Debug)]
#[command(
    name = "dfm",
    version,
    about = "The Digital Family Map: proactive, consent-then-payout social benefits"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Runs the service until SIGTERM/SIGINT, then drains and flushes.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// A temporary store, built-in gateways, a synthetic population streamed
    /// through the feed API and simulated citizens answering.
    Demo {
        #[arg(long, default_value_t = 50_000)]
        families: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Exit after the summary instead of keeping the admin port open.
        #[arg(long)]
        exit: bool,
    },
    /// Writes a synthetic population as NDJSON feed events.
    Generate {
        #[arg(long)]
        families: u64,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
        /// The day the population is generated for (ages, births this year,
        /// recent incomes); default today. The output is a function of the seed
        /// and this day.
        #[arg(long)]
        today: Option<chrono::NaiveDate>,
    },
    /// Benchmarks, each beside a raw-sled baseline measured in the same run.
    Bench(crate::bench::BenchArgs),
    /// Offline bulk load of feed events into the store.
    Load {
        #[arg(long)]
        config: PathBuf,
        events: PathBuf,
    },
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::Demo {
            families,
            seed,
            exit,
        } => crate::demo::run(families, seed, exit),
        Command::Generate {
            families,
            seed,
            out,
            today,
        } => {
            let file = std::fs::File::create(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let mut writer = BufWriter::with_capacity(1 << 20, file);
            let started = Instant::now();
            let summary = generate::write_ndjson(
                &GenerateOptions {
                    families,
                    seed,
                    today: today.unwrap_or_else(|| chrono::Utc::now().date_naive()),
                },
                &mut writer,
            )?;
            writer.flush()?;
            eprintln!(
                "dfm: wrote {} families, {} citizens, {} events to {} in {:.1}s",
                summary.families,
                summary.citizens,
                summary.events,
                out.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Load { config, events } => load(config, events),
        Command::Bench(arguments) => crate::bench::run(arguments),
    }
}

fn serve(config_path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let storage_path = config.storage_path.clone();
    // The store comes out once the system and its actors are gone, so that it
    // can be closed.
    let store = actix_rt::System::new().block_on(async move {
        let clock: Arc<dyn actors::clock::Clock> = Arc::new(actors::clock::SystemClock);
        let running = service::start(config, clock).await?;
        let scheme = running.state.config.scheme();
        println!(
            "dfm: serving public={scheme}://{} admin={scheme}://{}",
            running.public_addr, running.admin_addr
        );
        let _ = std::io::stdout().flush();
        tracing::info!(public = %running.public_addr, admin = %running.admin_addr, "serving");
        wait_for_signal(&running.state, &config_path).await;
        tracing::info!("stopping: draining accepted work");
        let store = running.state.store.clone();
        running.stop().await?;
        anyhow::Ok(store)
    })?;
    crate::service::close_with_snapshot(store, &storage_path)?;
    tracing::info!("stopped");
    Ok(())
}

/// Waits for SIGTERM or SIGINT. On SIGHUP, reads the configuration file again
/// and takes its agencies, operators and SMS token (token rotation without a
/// restart); a file that no longer validates changes nothing.
async fn wait_for_signal(state: &service::AppState, config_path: &std::path::Path) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    let mut hangup = signal(SignalKind::hangup()).expect("SIGHUP handler installs");
    loop {
        tokio::select! {
            _ = terminate.recv() => return,
            _ = interrupt.recv() => return,
            _ = hangup.recv() => match Config::load(config_path) {
                Ok(config) => {
                    state.reload_credentials(&config);
                    tracing::info!(
                        agencies = config.credentials.agencies.len(),
                        operators = config.credentials.operators.len(),
                        "SIGHUP: took the agencies, operators, SMS token and TLS certificate of the configuration again; its other keys take effect at the next start"
                    );
                }
                Err(error) => tracing::error!(%error, "SIGHUP: the configuration is refused; nothing changed"),
            },
        }
    }
}

fn load(config_path: PathBuf, events_path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let file = std::fs::File::open(&events_path)
        .with_context(|| format!("cannot open {}", events_path.display()))?;
    let report = crate::load::load_file(&config, file)?;
    eprintln!("dfm: {report}");
    Ok(())
}

pub use crate::load::LoadReport;

/// The bulk load from an async context (benchmarks): runs [`crate::load::load_file`]
/// on a blocking thread.
pub async fn load_events(config: Config, file: std::fs::File) -> anyhow::Result<LoadReport> {
    tokio::task::spawn_blocking(move || crate::load::load_file(&config, file))
        .await
        .map_err(|e| anyhow::anyhow!("the load thread failed: {e}"))?
}
