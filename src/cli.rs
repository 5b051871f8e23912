//! The command line of CONTRACT.md: `serve`, `demo`, `generate`, `load`, and
//! dfm's own `bench`.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use storage::event::{self, LogEntry};

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
        } => {
            let file = std::fs::File::create(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let mut writer = BufWriter::with_capacity(1 << 20, file);
            let started = Instant::now();
            let summary = generate::write_ndjson(
                &GenerateOptions {
                    families,
                    seed,
                    today: chrono::Utc::now().date_naive(),
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
    actix_rt::System::new().block_on(async move {
        let clock: Arc<dyn actors::clock::Clock> = Arc::new(actors::clock::SystemClock);
        let running = service::start(config, clock).await?;
        println!(
            "dfm: serving public=http://{} admin=http://{}",
            running.public_addr, running.admin_addr
        );
        let _ = std::io::stdout().flush();
        tracing::info!(public = %running.public_addr, admin = %running.admin_addr, "serving");
        wait_for_signal().await;
        tracing::info!("stopping: draining accepted work");
        running.stop().await?;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}

/// Events per log append during a bulk load.
pub const LOAD_CHUNK_EVENTS: usize = 20_000;

/// One line of a bulk-load file: the event, and its agency from the `agency`
/// field or, without one, the contract's agency for its type.
fn load_line(line: &str, config: &Config) -> Result<(String, LogEntry), String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let mut value = value;
    let agency = match value.as_object_mut().and_then(|o| o.remove("agency")) {
        Some(serde_json::Value::String(agency)) => agency,
        Some(_) => return Err("agency must be a string".to_owned()),
        None => {
            let kind = value.get("type").and_then(|t| t.as_str()).unwrap_or("");
            event::EVENT_TYPES
                .iter()
                .find(|(name, _)| *name == kind)
                .map(|(_, agency)| (*agency).to_owned())
                .ok_or_else(|| format!("unknown event type {kind:?}"))?
        }
    };
    let parsed = event::parse_event(value).map_err(|e| e.to_string())?;
    let allowed = config
        .agencies
        .iter()
        .find(|a| a.name == agency)
        .map(|a| a.types.contains(parsed.data.type_name()))
        .unwrap_or_else(|| event::default_types_for(&agency).contains(&parsed.data.type_name()));
    if !allowed {
        return Err(format!(
            "agency {agency} may not send {}",
            parsed.data.type_name()
        ));
    }
    Ok((
        agency,
        LogEntry::Feed {
            agency: String::new(),
            event: parsed,
        },
    ))
}

fn load(config_path: PathBuf, events_path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    let file = std::fs::File::open(&events_path)
        .with_context(|| format!("cannot open {}", events_path.display()))?;
    let report = actix_rt::System::new().block_on(load_events(config, file))?;
    eprintln!("dfm: {report}");
    Ok(())
}

/// What a bulk load did.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub families: usize,
    pub elapsed: Duration,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "loaded {} events ({} duplicates, {} rejected); {} families in the store; {:.1}s, {:.0} events/s",
            self.accepted,
            self.duplicates,
            self.rejected,
            self.families,
            seconds,
            self.accepted as f64 / seconds
        )
    }
}

/// The offline bulk load: validates every line like the feed API, appends in
/// large batches without a flush per event, applies through the family actors
/// with SMS and payments left in their outboxes for `serve`, and flushes once
/// at the end. Runs on the current actix system.
pub async fn load_events(config: Config, file: std::fs::File) -> anyhow::Result<LoadReport> {
    let clock: Arc<dyn actors::clock::Clock> = Arc::new(actors::clock::SystemClock);
    let mut load_config = config.clone();
    load_config.public_addr = "127.0.0.1:0".parse().expect("loopback");
    load_config.admin_addr = "127.0.0.1:0".parse().expect("loopback");
    let running = service::start_with(load_config, clock, false).await?;
    let store = running.state.store.clone();
    let started = Instant::now();
    // Reading and validating run on a thread of their own, a bounded channel
    // ahead of the appends.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Parsed>(LOAD_CHANNEL_CHUNKS);
    let parser = std::thread::spawn(move || parse_file(file, &config, &sender));
    let (mut accepted, mut duplicates) = (0usize, 0usize);
    while let Some(chunk) = receiver.recv().await {
        let (a, d) = append_chunks(&store, chunk)?;
        accepted += a;
        duplicates += d;
        running.state.inbox.wake();
        // Backpressure: keep the unapplied log bounded.
        while store.last_seq().saturating_sub(store.applied_through()?)
            > 4 * LOAD_CHUNK_EVENTS as u64
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let rejected = parser
        .join()
        .map_err(|_| anyhow::anyhow!("the reader thread panicked"))??;
    running.state.inbox.wake();
    while store.applied_through()? < store.last_seq() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let families = store.family_count();
    if std::env::var_os("DFM_LOAD_METRICS").is_some() {
        eprintln!("{}", running.state.metrics.render());
    }
    running.stop().await?;
    Ok(LoadReport {
        accepted,
        duplicates,
        rejected,
        families,
        elapsed: started.elapsed(),
    })
}

/// Chunks parsed ahead of the appends.
pub const LOAD_CHANNEL_CHUNKS: usize = 4;

type Parsed = std::collections::BTreeMap<String, Vec<LogEntry>>;

/// Reads and validates the file, sending chunks of events grouped by agency;
/// returns how many lines were rejected.
fn parse_file(
    file: std::fs::File,
    config: &Config,
    sender: &tokio::sync::mpsc::Sender<Parsed>,
) -> anyhow::Result<usize> {
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut chunk = Parsed::new();
    let (mut pending, mut rejected) = (0usize, 0usize);
    for (index, line) in reader.lines().enumerate() {
        let line = line.context("reading the events file")?;
        if line.trim().is_empty() {
            continue;
        }
        match load_line(&line, config) {
            Ok((agency, mut entry)) => {
                if let LogEntry::Feed { agency: slot, .. } = &mut entry {
                    slot.clone_from(&agency);
                }
                chunk.entry(agency).or_default().push(entry);
                pending += 1;
            }
            Err(reason) => {
                rejected += 1;
                if rejected <= 20 {
                    eprintln!("dfm: line {}: rejected: {reason}", index + 1);
                }
            }
        }
        if pending >= LOAD_CHUNK_EVENTS {
            sender
                .blocking_send(std::mem::take(&mut chunk))
                .map_err(|_| anyhow::anyhow!("the loader stopped"))?;
            pending = 0;
        }
    }
    if pending > 0 {
        sender
            .blocking_send(chunk)
            .map_err(|_| anyhow::anyhow!("the loader stopped"))?;
    }
    Ok(rejected)
}

fn append_chunks(store: &storage::Store, chunks: Parsed) -> anyhow::Result<(usize, usize)> {
    let (mut accepted, mut duplicates) = (0, 0);
    for (agency, entries) in chunks {
        let appended = store.append_feed(&agency, entries)?;
        accepted += appended.seqs.len();
        duplicates += appended.duplicates.len();
    }
    Ok((accepted, duplicates))
}
