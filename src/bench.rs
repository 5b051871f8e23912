//! `dfm bench`: dfm's own figures, each printed beside a raw-sled baseline
//! measured in the same run on the same machine, and the ratio of the two,
//! because the machines these run on are shared and noisy.
//!
//! # Layout
//! - `feed`: the agency feed over HTTP, durable at the 200, against plain sled
//!   single-key inserts flushed every 1,000.
//! - `load`: the offline bulk load ([`crate::cli::load_events`]) against plain
//!   sled batches of 1 KiB records.
//! - `payout`: consent replies to `SUCC` at the bank, through the SMS callback
//!   and the bank simulator, against plain sled inserts flushed every 1,000.
//! - `rss`: the resident memory of a service started on a loaded store. The
//!   loading process has already touched (and freed) far more memory than the
//!   service needs, so the service and the baseline are each measured in a
//!   fresh process of this binary (the hidden `rss-probe`); a second store a
//!   fifth the size gives the growth per family for the 1 M projection.
//! - `whatif`: on a loaded store, a catalogue change to the large-family
//!   program: the what-if and re-score scans, then the change made through the
//!   service (`/v1/rules/reload`, changed families applied through their
//!   actors), against plain sled reading every family record; each projected to
//!   the national 6 M families.
//! - `ids`: the feed's event ids kept for ever, packed into buckets as the
//!   service packs them, against one sled key per id: the memory of the store
//!   opened in a fresh process, its disk, and the rate of appends and of
//!   duplicate checks.
//! - `all`: `feed`, `load` and `payout` with their defaults.
//!
//! Every bench works in temporary directories, talks to loopback only, runs
//! bounded loops (every wait and retry has a named limit below) and stops by
//! itself. It never touches a store it did not create. The service runs on the
//! current actix system of this process, started the way `dfm serve` starts it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use anyhow::Context as _;
use chrono::NaiveDate;
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt as _;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use storage::ids::{Iin, Sex};
use storage::Store;

use crate::cli::{load_events, LoadReport};
use crate::config::Config;
use crate::generate::{self, GenerateOptions, GenerateSummary};
use crate::service::{self, Running};
use crate::simulators::{
    BankSimulator, BankSimulatorOptions, SimMessage, SimPayment, SmsSimulator, SmsSimulatorOptions,
};

// =============================================================================================
// Limits and targets

/// The seed of every generated population and random choice: runs are repeatable.
const SEED: u64 = 1;

const FEED_FAMILIES_DEFAULT: u64 = 20_000;
const FEED_BATCH_DEFAULT: usize = 1_000;
const FEED_CONCURRENCY_DEFAULT: usize = 8;
const LOAD_FAMILIES_DEFAULT: u64 = 20_000;
/// Enough families for about ten seconds of payouts: a sustained rate, not a burst.
const PAYOUT_FAMILIES_DEFAULT: u64 = 30_000;
const PAYOUT_CONCURRENCY_DEFAULT: usize = 32;
const RSS_FAMILIES_DEFAULT: u64 = 100_000;
const WHATIF_FAMILIES_DEFAULT: u64 = 100_000;
/// The population the what-if and re-score targets are stated for.
const NATIONAL_FAMILIES: f64 = 6_000_000.0;
/// The proposal the what-if bench measures, the example: a large family
/// from three children.
const WHATIF_PATCH: &str = "version = \"bench.whatif\"\n[[program]]\ncode = \"large_family\"\nmin_children = 3\namounts_mci = [\"12.00\", \"16.03\", \"20.04\", \"24.05\", \"28.06\"]\n";

/// The durable-write baselines flush after this many inserts.
const BASELINE_FLUSH_EVERY: usize = 1_000;
/// The fewest inserts a durable-write baseline makes, so that it spans at least
/// a hundred flushes even when the dfm side of the bench is small.
const BASELINE_WRITES_MIN: usize = 100_000;
/// The record size of the `load` and `rss` baselines.
const BASELINE_RECORD_BYTES: usize = 1_024;
/// Records per `apply_batch` in the `load` and `rss` baselines.
const BASELINE_BATCH_RECORDS: usize = 10_000;
/// The value size of the `payout` baseline: about one payment order as stored.
const PAYOUT_BASELINE_VALUE_BYTES: usize = 512;
/// The tree the raw-sled baselines write, beside dfm's own (empty) trees.
const BASELINE_TREE: &str = "bench_baseline";

/// The longest any wait of a bench lasts (the log applied, offers sent, payments
/// made); past it the bench fails with what it was waiting for.
const WAIT_MAX: Duration = Duration::from_secs(600);
/// How often a bench looks at the store while waiting.
const STORE_POLL: Duration = Duration::from_millis(10);
/// How often a bench looks at the SMS simulator while waiting for offers (each
/// look copies every message taken).
const SMS_POLL: Duration = Duration::from_millis(100);
/// One HTTP request's timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// 503 answers one request may get before the bench gives up.
const BUSY_ANSWERS_MAX: u32 = 600;
/// Transport failures one request may get before the bench gives up.
const TRANSPORT_FAILURES_MAX: u32 = 5;
/// The wait after a transport failure.
const TRANSPORT_RETRY_DELAY: Duration = Duration::from_millis(200);
/// The longest `Retry-After` the bench honours, in seconds.
const RETRY_AFTER_SECONDS_MAX: u64 = 30;

/// Events per request while the payout bench feeds its families (not measured).
const PAYOUT_SETUP_BATCH_EVENTS: usize = 1_000;
/// The children of each payout family: four make a large family.
const PAYOUT_CHILDREN: u32 = 4;
/// Payout phones are `+7702` and seven digits.
const PAYOUT_FAMILIES_MAX: u64 = 9_999_999;
/// Parents' birth dates spread over this many days, so that IIN serials stay small.
const PARENT_BIRTH_SPREAD_DAYS: u64 = 3_650;
/// Each child's birth dates spread over this many days; child `c` starts `c`
/// spreads after 2011-01-01, so every child is of school age.
const CHILD_BIRTH_SPREAD_DAYS: u64 = 450;
/// An IIN's serial has four digits.
const IIN_SERIAL_MAX: u32 = 9_999;

/// Families the rss probe reads and activates.
const RSS_SAMPLE_FAMILIES: usize = 1_000;
/// Admin requests in flight in the rss probe.
const RSS_PROBE_CONCURRENCY: usize = 16;
/// The sled page cache `Store::open` asks for; the projection caps the cache's
/// growth there (sled treats it as a target, not a hard limit).
const STORE_CACHE_BYTES: u64 = storage::store::DEFAULT_CACHE_BYTES as u64;
/// The rss bench also measures a store this many times smaller, for the slope.
const RSS_SMALL_STORE_DIVISOR: u64 = 5;
/// The population size the memory target is stated for.
const RSS_TARGET_FAMILIES: u64 = 1_000_000;

/// A gateway URL for services that never call out (`outbound = false`).
const UNUSED_GATEWAY_URL: &str = "http://127.0.0.1:9";
const OPERATOR_TOKEN: &str = "operator-secret";
const SMS_TOKEN: &str = "sms-secret";

/// The targets.
const FEED_TARGET_RATIO: f64 = 0.5;
const LOAD_TARGET_RATIO: f64 = 0.5;
const PAYOUT_TARGET_PER_SECOND: f64 = 2_000.0;
const RSS_TARGET_BYTES: f64 = 1.5e9;
const WHATIF_TARGET_SECONDS: f64 = 1.0;
const RESCORE_TARGET_SECONDS: f64 = 30.0;

// =============================================================================================
// Command line

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: Which,
}

#[derive(Subcommand, Debug)]
enum Which {
    /// The agency feed over HTTP, durable at the answer, against raw sled inserts.
    Feed(FeedArgs),
    /// The offline bulk load against raw sled batches.
    Load(LoadArgs),
    /// Consent replies to bank payments against raw sled inserts.
    Payout(PayoutArgs),
    /// Resident memory of a service on a loaded store against raw sled.
    Rss(RssArgs),
    /// What-if and re-score scans against raw sled reading every record.
    Whatif(WhatIfArgs),
    /// The feed's ids packed into buckets against one sled key per id.
    Ids(IdsArgs),
    /// `feed`, `load` and `payout` with their defaults.
    All,
    /// One memory measurement in a fresh process (run by `rss`).
    #[command(hide = true)]
    RssProbe(ProbeArgs),
}

#[derive(Args, Debug, Clone)]
struct FeedArgs {
    /// Families in the generated population.
    #[arg(long, default_value_t = FEED_FAMILIES_DEFAULT)]
    families: u64,
    /// Events per request.
    #[arg(long, default_value_t = FEED_BATCH_DEFAULT)]
    batch: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = FEED_CONCURRENCY_DEFAULT)]
    concurrency: usize,
    /// Also post the same feed to a second service whose ports speak HTTPS
    /// with this certificate chain (PEM), and compare it with plain HTTP.
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The authority the client trusts for `--tls-cert` (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
}

impl Default for FeedArgs {
    fn default() -> Self {
        FeedArgs {
            families: FEED_FAMILIES_DEFAULT,
            batch: FEED_BATCH_DEFAULT,
            concurrency: FEED_CONCURRENCY_DEFAULT,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
        }
    }
}

#[derive(Args, Debug, Clone)]
struct LoadArgs {
    /// Families in the generated population.
    #[arg(long, default_value_t = LOAD_FAMILIES_DEFAULT)]
    families: u64,
}

impl Default for LoadArgs {
    fn default() -> Self {
        LoadArgs {
            families: LOAD_FAMILIES_DEFAULT,
        }
    }
}

#[derive(Args, Debug, Clone)]
struct PayoutArgs {
    /// Large families, one payout each.
    #[arg(long, default_value_t = PAYOUT_FAMILIES_DEFAULT)]
    families: u64,
    /// Consent replies in flight.
    #[arg(long, default_value_t = PAYOUT_CONCURRENCY_DEFAULT)]
    concurrency: usize,
}

impl Default for PayoutArgs {
    fn default() -> Self {
        PayoutArgs {
            families: PAYOUT_FAMILIES_DEFAULT,
            concurrency: PAYOUT_CONCURRENCY_DEFAULT,
        }
    }
}

#[derive(Args, Debug, Clone)]
struct RssArgs {
    /// Families in the generated population.
    #[arg(long, default_value_t = RSS_FAMILIES_DEFAULT)]
    families: u64,
}

#[derive(Args, Debug, Clone)]
struct WhatIfArgs {
    /// Families in the generated population.
    #[arg(long, default_value_t = WHATIF_FAMILIES_DEFAULT)]
    families: u64,
}

#[derive(Args, Debug, Clone)]
struct IdsArgs {
    /// Event ids the feed takes.
    #[arg(long, default_value_t = IDS_DEFAULT)]
    ids: u64,
}

#[derive(Args, Debug, Clone)]
struct ProbeArgs {
    #[arg(long, value_enum)]
    kind: ProbeKind,
    #[arg(long)]
    store: PathBuf,
    #[arg(long)]
    families: u64,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    /// The dfm service started on a loaded store.
    Service,
    /// A raw sled database of 1 KiB records.
    Raw,
    /// A loaded dfm store opened by sled alone, then every scoring projection
    /// read (as a what-if does): what sled itself holds on that store.
    Store,
}

impl ProbeKind {
    fn argument(self) -> &'static str {
        match self {
            ProbeKind::Service => "service",
            ProbeKind::Raw => "raw",
            ProbeKind::Store => "store",
        }
    }
}

pub fn run(arguments: BenchArgs) -> anyhow::Result<()> {
    actix_rt::System::new().block_on(async move {
        match arguments.which {
            Which::Feed(arguments) => feed(&arguments).await,
            Which::Load(arguments) => load(&arguments).await,
            Which::Payout(arguments) => payout(&arguments).await,
            Which::Rss(arguments) => rss(&arguments).await,
            Which::Whatif(arguments) => whatif(&arguments).await,
            Which::Ids(arguments) => ids(&arguments),
            Which::All => {
                feed(&FeedArgs::default()).await?;
                load(&LoadArgs::default()).await?;
                payout(&PayoutArgs::default()).await
            }
            Which::RssProbe(arguments) => {
                let figures = match arguments.kind {
                    ProbeKind::Service => {
                        probe_service(&arguments.store, arguments.families).await?
                    }
                    ProbeKind::Raw => probe_raw(&arguments.store, arguments.families)?,
                    ProbeKind::Store => probe_store(&arguments.store)?,
                };
                println!("{}", figures.to_line());
                Ok(())
            }
        }
    })
}

// =============================================================================================
// 1. The feed over HTTP

async fn feed(arguments: &FeedArgs) -> anyhow::Result<()> {
    anyhow::ensure!(arguments.families > 0, "--families must be at least 1");
    anyhow::ensure!(arguments.batch > 0, "--batch must be at least 1");
    anyhow::ensure!(
        arguments.concurrency > 0,
        "--concurrency must be at least 1"
    );
    progress("feed", "generating the population into memory");
    let population = feed_bodies(arguments.families, arguments.batch)?;
    let events = population.summary.events;
    let line_bytes = usize::try_from(population.bytes / events.max(1))?;
    progress(
        "feed",
        &format!("baseline: raw sled, {} inserts", thousands(events)),
    );
    let baseline = raw_durable_inserts(
        usize::try_from(events)?.max(BASELINE_WRITES_MIN),
        line_bytes,
        BASELINE_FLUSH_EVERY,
    )?;
    progress("feed", "starting the service and posting the feed");
    let FeedRun {
        totals,
        accepted_elapsed,
        applied_elapsed,
        time_inside,
    } = feed_once(&population, arguments.concurrency, None).await?;
    let over_tls = match (&arguments.tls_cert, &arguments.tls_key, &arguments.tls_ca) {
        (Some(cert), Some(key), Some(ca)) => {
            progress("feed", "the same feed to a service speaking HTTPS");
            let server =
                crate::tls::ServerTls::from_files(cert, key).map_err(anyhow::Error::msg)?;
            let authority = crate::tls::authorities(ca).map_err(anyhow::Error::msg)?;
            let run = feed_once(
                &population,
                arguments.concurrency,
                Some((server, authority)),
            )
            .await?;
            Some(per_second(run.totals.accepted, run.accepted_elapsed))
        }
        _ => None,
    };

    let accepted = per_second(totals.accepted, accepted_elapsed);
    let applied = per_second(totals.accepted, applied_elapsed);
    let ratio = accepted / baseline;
    let mut table = Table::new("feed");
    table.note(format!(
        "{} families, {} events ({} B average line) in {} requests of <= {} events, {} in flight",
        thousands(arguments.families),
        thousands(events),
        line_bytes,
        thousands(population.bodies.len() as u64),
        thousands(arguments.batch as u64),
        arguments.concurrency
    ));
    table.note(format!(
        "answers: {} accepted, {} duplicates, {} rejected, {} x 503",
        thousands(totals.accepted),
        thousands(totals.duplicates),
        thousands(totals.rejected),
        thousands(totals.busy)
    ));
    table.row(
        "dfm accepted (durable 200)",
        rate(accepted),
        &format!("events/s ({:.1} s)", accepted_elapsed.as_secs_f64()),
    );
    table.row(
        "dfm applied (watermark = last seq)",
        rate(applied),
        &format!("events/s ({:.1} s)", applied_elapsed.as_secs_f64()),
    );
    table.row(
        "raw sled insert, flush every 1,000",
        rate(baseline),
        &format!("updates/s ({line_bytes} B values)"),
    );
    table.row("ratio accepted / baseline", ratio_text(ratio), "");
    table.row(
        "issue target",
        format!(">= {FEED_TARGET_RATIO:.2}"),
        verdict(ratio >= FEED_TARGET_RATIO),
    );
    if let Some(over_tls) = over_tls {
        table.row(
            "dfm accepted over HTTPS (a second service)",
            rate(over_tls),
            "events/s",
        );
        table.row("ratio HTTPS / HTTP", ratio_text(over_tls / accepted), "");
    }
    table.print();
    print_time_spent(&time_inside);
    Ok(())
}

/// One feed posted to a fresh service.
struct FeedRun {
    totals: FeedTotals,
    /// To the last answer.
    accepted_elapsed: Duration,
    /// To the last event applied.
    applied_elapsed: Duration,
    /// Where the service's time went ([`time_spent`]).
    time_inside: Vec<String>,
}

/// Posts `population` to a fresh service, over HTTPS with `tls` (the server's
/// configuration, and the authorities the client trusts).
async fn feed_once(
    population: &Population,
    concurrency: usize,
    tls: Option<(crate::tls::ServerTls, Vec<reqwest::Certificate>)>,
) -> anyhow::Result<FeedRun> {
    let (server_tls, authorities) = tls.unzip();
    let world = World::start_with(server_tls).await?;
    let client = http_client_trusting(authorities.unwrap_or_default())?;
    let started = Instant::now();
    let totals = post_bodies(
        &client,
        &world.public_url(),
        &population.bodies,
        concurrency,
    )
    .await?;
    let accepted_elapsed = started.elapsed();
    wait_applied(&world.running.state.store).await?;
    let applied_elapsed = started.elapsed();
    let time_inside = time_spent(&world.running.state.metrics.render());
    world.stop().await?;
    Ok(FeedRun {
        totals,
        accepted_elapsed,
        applied_elapsed,
        time_inside,
    })
}

/// A population as feed request bodies.
struct Population {
    bodies: Vec<FeedBody>,
    summary: GenerateSummary,
    /// Bytes of all event lines, newlines included.
    bytes: u64,
}

/// One NDJSON request body of one agency.
struct FeedBody {
    agency: &'static str,
    bytes: Bytes,
}

/// Generates `families` into memory, grouped per agency into bodies of at most
/// `batch` events, in the order the bodies fill up.
fn feed_bodies(families: u64, batch: usize) -> anyhow::Result<Population> {
    let mut bodies = Vec::new();
    let mut filling: HashMap<&'static str, (Vec<u8>, usize)> = HashMap::new();
    let mut bytes = 0u64;
    let summary = generate::generate(&generate_options(families), &mut |line| {
        let (body, count) = filling.entry(line.agency).or_default();
        body.extend_from_slice(line.json.as_bytes());
        body.push(b'\n');
        bytes += line.json.len() as u64 + 1;
        *count += 1;
        if *count >= batch {
            bodies.push(FeedBody {
                agency: line.agency,
                bytes: Bytes::from(std::mem::take(body)),
            });
            *count = 0;
        }
        Ok(())
    })?;
    let mut rest: Vec<_> = filling
        .into_iter()
        .filter(|(_, (body, _))| !body.is_empty())
        .collect();
    rest.sort_by_key(|(agency, _)| *agency);
    bodies.extend(rest.into_iter().map(|(agency, (body, _))| FeedBody {
        agency,
        bytes: Bytes::from(body),
    }));
    Ok(Population {
        bodies,
        summary,
        bytes,
    })
}

/// What the feed API answered, summed over requests.
#[derive(Debug, Default)]
struct FeedTotals {
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    busy: u64,
}

impl FeedTotals {
    fn add(&mut self, other: &FeedTotals) {
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        self.busy += other.busy;
    }
}

/// Posts every body with `concurrency` requests in flight.
async fn post_bodies(
    client: &reqwest::Client,
    public_url: &str,
    bodies: &[FeedBody],
    concurrency: usize,
) -> anyhow::Result<FeedTotals> {
    let mut answers = futures::stream::iter(bodies)
        .map(|body| post_body(client, public_url, body))
        .buffer_unordered(concurrency);
    let mut totals = FeedTotals::default();
    while let Some(answer) = answers.next().await {
        totals.add(&answer?);
    }
    Ok(totals)
}

/// Posts one body until the service takes it (503 is retried with the same
/// body; event ids make that idempotent).
async fn post_body(
    client: &reqwest::Client,
    public_url: &str,
    body: &FeedBody,
) -> anyhow::Result<FeedTotals> {
    let token = crate::config::local_agency_token(body.agency)
        .with_context(|| format!("no token for agency {}", body.agency))?;
    let url = format!("{public_url}/v1/feeds/{}/events", body.agency);
    let (response, busy) = send_until_taken(&url, || {
        client
            .post(&url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body.bytes.clone())
    })
    .await?;
    let answer: Value = response
        .json()
        .await
        .with_context(|| format!("POST {url}: the answer is not JSON"))?;
    let count = |key: &str| answer[key].as_u64().unwrap_or(0);
    Ok(FeedTotals {
        accepted: count("accepted"),
        duplicates: count("duplicates"),
        rejected: answer["rejected"].as_array().map_or(0, |r| r.len() as u64),
        busy: u64::from(busy),
    })
}

// =============================================================================================
// 2. The offline bulk load

async fn load(arguments: &LoadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(arguments.families > 0, "--families must be at least 1");
    let directory = temp_dir("load")?;
    progress("load", "generating the population file");
    let events_path = directory.path().join("events.ndjson");
    let summary = write_population(&events_path, arguments.families)?;
    // The baseline: as many 1 KiB records as there are families.
    let records = arguments.families;
    progress(
        "load",
        &format!("baseline: raw sled, {} records", thousands(records)),
    );
    let baseline = raw_batch_inserts(
        &directory.path().join("raw"),
        usize::try_from(records)?,
        BASELINE_RECORD_BYTES,
        BASELINE_BATCH_RECORDS,
    )?;
    progress("load", "loading");
    let loaded = load_population(&events_path, &directory.path().join("store")).await?;

    let families = per_second(arguments.families, loaded.elapsed);
    let events = per_second(loaded.report.accepted as u64, loaded.elapsed);
    let ratio = families / baseline;
    let mut table = Table::new("load");
    table.note(format!(
        "{} families, {} events generated; loaded {} events ({} rejected), {} families in the store",
        thousands(arguments.families),
        thousands(summary.events),
        thousands(loaded.report.accepted as u64),
        thousands(loaded.report.rejected as u64),
        thousands(loaded.report.families as u64),
    ));
    table.note(format!(
        "baseline: {} records of {BASELINE_RECORD_BYTES} B (one per family), apply_batch of {}, one flush at the end",
        thousands(records),
        thousands(BASELINE_BATCH_RECORDS as u64)
    ));
    table.row(
        "dfm load, families",
        rate(families),
        &format!("families/s ({:.1} s)", loaded.elapsed.as_secs_f64()),
    );
    table.row("dfm load, events", rate(events), "events/s");
    table.row("raw sled apply_batch, 1 KiB", rate(baseline), "records/s");
    table.row("ratio families/s / records/s", ratio_text(ratio), "");
    table.row(
        "ratio events/s / records/s",
        ratio_text(events / baseline),
        "(for reference: one record per event)",
    );
    table.row(
        "issue target (within 2x)",
        format!(">= {LOAD_TARGET_RATIO:.2}"),
        verdict(ratio >= LOAD_TARGET_RATIO),
    );
    table.print();
    Ok(())
}

// =============================================================================================
// The feed's ids

const IDS_DEFAULT: u64 = 2_000_000;
/// Ids per append, as in a feed request of 1,000 events.
const IDS_PER_APPEND: u64 = 1_000;
/// The service's default `storage.feed_ids_pack_at`.
const IDS_PACK_AT: usize = storage::feed_ids::DEFAULT_PACK_AT;

/// What one way of keeping the ids measured.
struct IdsFigures {
    appends: f64,
    checks: f64,
    probe: ProbeFigures,
}

/// The `n`th event id of the bench, as an agency numbers them.
fn bench_event_id(n: u64) -> String {
    format!("pay-{n:012}")
}

/// Appends `count` event ids to a new store at `path` the way the feed does,
/// packing them as the service does; then measures the store opened in a
/// fresh process, and duplicate checks.
fn ids_packed(path: &Path, count: u64) -> anyhow::Result<IdsFigures> {
    use storage::event::{EventData, FeedEvent, LogEntry};
    let iin = Iin::from_parts(
        NaiveDate::from_ymd_opt(1990, 1, 1).expect("a date"),
        Sex::Male,
        1,
    )
    .context("an IIN")?;
    let entries = |first: u64, last: u64| -> Vec<LogEntry> {
        (first..last)
            .map(|n| LogEntry::Feed {
                agency: "payments".to_owned(),
                event: FeedEvent {
                    id: bench_event_id(n),
                    occurred_at: chrono::Utc::now(),
                    data: EventData::SocialWalletOpened { iin },
                },
            })
            .collect()
    };
    let store = Store::open(path)?;
    let started = Instant::now();
    let mut last_seq = 0;
    for first in (0..count).step_by(IDS_PER_APPEND as usize) {
        let appended = store.append_feed(
            "payments",
            entries(first, (first + IDS_PER_APPEND).min(count)),
        )?;
        last_seq = appended.seqs.last().copied().unwrap_or(last_seq);
        if first % (IDS_PER_APPEND * 1_000) == 0 {
            store.flush()?;
        }
        if store.unpacked_feed_ids() >= IDS_PACK_AT as u64 {
            store.pack_feed_ids(IDS_PACK_AT)?;
        }
    }
    store.pack_feed_ids(IDS_PACK_AT)?;
    store.flush()?;
    let appends = per_second(count, started.elapsed());
    // The log's entries are applied and gone; the ids stay.
    store.set_applied_through(last_seq)?;
    store.flush()?;
    drop(store);
    let probe = run_probe(ProbeKind::Store, path, 0)?;
    let store = Store::open(path)?;
    let sample = (count / 10).max(1);
    let started = Instant::now();
    for first in (0..sample).step_by(IDS_PER_APPEND as usize) {
        let last = (first + IDS_PER_APPEND).min(sample);
        let appended = store.append_feed("payments", entries(first, last))?;
        anyhow::ensure!(appended.seqs.is_empty(), "an id kept was taken as new");
    }
    let checks = per_second(sample, started.elapsed());
    Ok(IdsFigures {
        appends,
        checks,
        probe,
    })
}

/// The baseline: raw sled, one key per id (as the feed kept them before
/// `storage::feed_ids`), flushed every 1,000 inserts; measured the same way.
fn ids_raw(path: &Path, count: u64) -> anyhow::Result<IdsFigures> {
    let key = |n: u64| format!("Dpayments\0{}", bench_event_id(n));
    let store = Store::open(path)?;
    let tree = store.db().open_tree(BASELINE_TREE)?;
    let started = Instant::now();
    for n in 0..count {
        tree.insert(key(n), &n.to_be_bytes()[..])?;
        if n % 1_000 == 999 {
            store.flush()?;
        }
    }
    store.flush()?;
    let appends = per_second(count, started.elapsed());
    drop((tree, store));
    let probe = run_probe(ProbeKind::Store, path, 0)?;
    let store = Store::open(path)?;
    let tree = store.db().open_tree(BASELINE_TREE)?;
    let sample = (count / 10).max(1);
    let started = Instant::now();
    for n in 0..sample {
        anyhow::ensure!(tree.contains_key(key(n))?, "raw id {n} is missing");
    }
    let checks = per_second(sample, started.elapsed());
    Ok(IdsFigures {
        appends,
        checks,
        probe,
    })
}

fn ids(arguments: &IdsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(arguments.ids > 0, "--ids must be at least 1");
    let directory = temp_dir("ids")?;
    progress("ids", "baseline: raw sled, one key per id");
    let raw = ids_raw(&directory.path().join("raw"), arguments.ids)?;
    progress(
        "ids",
        "dfm: appended as the feed does, packed as the service does",
    );
    let packed = ids_packed(&directory.path().join("packed"), arguments.ids)?;
    let opened = |figures: &IdsFigures| {
        figures
            .probe
            .opened_kib
            .saturating_sub(figures.probe.start_kib)
            * 1024
    };
    let mut table = Table::new("ids");
    table.note(format!(
        "{} event ids; dfm appends them {IDS_PER_APPEND} at a time and packs them in passes of {} as the service does (its log trimmed afterwards); raw sled inserts one key per id; each store opened again in a fresh process",
        thousands(arguments.ids),
        thousands(IDS_PACK_AT as u64),
    ));
    table.row("memory once opened, dfm", megabytes(opened(&packed)), "MB");
    table.row(
        "memory once opened, raw sled",
        megabytes(opened(&raw)),
        "MB",
    );
    table.row(
        "ratio dfm / raw",
        ratio_text(opened(&packed) as f64 / opened(&raw).max(1) as f64),
        "(lower is better)",
    );
    table.row("disk, dfm", megabytes(packed.probe.size_on_disk), "MB");
    table.row("disk, raw sled", megabytes(raw.probe.size_on_disk), "MB");
    table.row(
        "appends, dfm (packing included)",
        rate(packed.appends),
        "ids/s",
    );
    table.row("inserts, raw sled", rate(raw.appends), "ids/s");
    table.row("ratio", ratio_text(packed.appends / raw.appends), "");
    table.row("duplicate checks, dfm", rate(packed.checks), "ids/s");
    table.row("lookups, raw sled", rate(raw.checks), "ids/s");
    table.row("ratio", ratio_text(packed.checks / raw.checks), "");
    table.print();
    Ok(())
}

// =============================================================================================
// What-if and re-score

async fn whatif(arguments: &WhatIfArgs) -> anyhow::Result<()> {
    use crate::http::admin::scan_families;
    use ::actors::whatif::{Proposal, WhatIfTally};

    anyhow::ensure!(arguments.families > 0, "--families must be at least 1");
    let directory = temp_dir("whatif")?;
    progress("whatif", "generating and loading the population");
    let events_path = directory.path().join("events.ndjson");
    write_population(&events_path, arguments.families)?;
    let store_path = directory.path().join("store");
    load_population(&events_path, &store_path).await?;
    std::fs::remove_file(&events_path)?;
    let store = Store::open(&store_path)?;
    let year = Config::for_local(
        store_path.clone(),
        UNUSED_GATEWAY_URL,
        UNUSED_GATEWAY_URL,
        catalogue(),
    )
    .year;
    let current = ::actors::rules::Rules::load(&catalogue(), year)?;
    let proposed = crate::http::admin::patched_rules(&catalogue(), WHATIF_PATCH, current.year)?;
    let today = ::actors::scoring::local_date(chrono::Utc::now());
    let scan_error = |e: crate::http::ApiError| anyhow::anyhow!("{e}");

    progress("whatif", "baseline: raw sled reads every family record");
    let raw_read = |tree: &str| -> anyhow::Result<(u64, u64, f64)> {
        let tree = store.db().open_tree(tree)?;
        let started = Instant::now();
        let (mut records, mut bytes) = (0u64, 0u64);
        for item in tree.iter() {
            let (_, value) = item?;
            records += 1;
            bytes += value.len() as u64;
        }
        Ok((records, bytes, per_second(records, started.elapsed())))
    };
    let (records, bytes, raw) = raw_read(storage::store::counter::FAMILIES)?;
    anyhow::ensure!(
        records == arguments.families,
        "{records} records in the store"
    );

    let proposal = Proposal::new(&[&current], &proposed);
    progress("whatif", "building the scoring table");
    let started = Instant::now();
    store.build_scoring_table(2)?;
    let table_build = started.elapsed();
    let (_, table_bytes) = store.enable_scoring_table().size();

    progress("whatif", "what-if");
    let started = Instant::now();
    let mut total = WhatIfTally::new(&proposal);
    scan_families(
        &store,
        proposal.income_need(),
        || WhatIfTally::new(&proposal),
        |tally: &mut WhatIfTally, record, stored| tally.add(&proposal, record, stored, today),
        |part| total.merge(part),
    )
    .map_err(scan_error)?;
    let whatif_rate = per_second(records, started.elapsed());
    let report = total.report();

    progress("whatif", "re-score scan");
    let started = Instant::now();
    let mut changed = 0u64;
    scan_families(
        &store,
        proposal.income_need(),
        || 0u64,
        |count: &mut u64, record, stored| {
            *count += u64::from(proposal.changes_outcome(record, stored, today));
        },
        |part| changed += part,
    )
    .map_err(scan_error)?;
    let rescore_rate = per_second(records, started.elapsed());
    let large = report.programs.get("large_family");

    progress(
        "whatif",
        "for reference: every record decoded and evaluated whole",
    );
    let now = chrono::Utc::now();
    let started = Instant::now();
    let mut whole = 0u64;
    let mut cursor: Option<String> = None;
    loop {
        let (values, last) = store.family_values_after(cursor.as_deref(), 8_192)?;
        let Some(last) = last else { break };
        cursor = Some(last);
        for value in &values {
            let record: storage::record::FamilyRecord = storage::codec::decode(value)?;
            whole +=
                u64::from(::actors::scoring::evaluate(&record, &proposed, now).level as u8 <= 4);
        }
    }
    let whole_rate = per_second(whole, started.elapsed());

    progress(
        "whatif",
        "the same change made: rules reload through the service (offers stay in the outbox)",
    );
    drop(store);
    let changed_catalogue = directory.path().join("programs.toml");
    let text =
        crate::http::admin::patch_catalogue(&std::fs::read_to_string(catalogue())?, WHATIF_PATCH)
            .map_err(scan_error)?;
    std::fs::write(&changed_catalogue, text)?;
    let config = Config::for_local(
        store_path.clone(),
        UNUSED_GATEWAY_URL,
        UNUSED_GATEWAY_URL,
        changed_catalogue,
    );
    let running = service::start_with(config, Arc::new(actors::clock::SystemClock), false).await?;
    // A reload waits (503) until the start has built the scoring table.
    while running.state.store.complete_scoring_table().is_none() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let answer: Value = http_client()?
        .post(format!("http://{}/v1/rules/reload", running.admin_addr))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let reload_scan = started.elapsed();
    wait_applied(&running.state.store).await?;
    let reload_all = started.elapsed();
    running.stop().await?;
    let reload_changed = answer["families_changed"].as_u64().unwrap_or(0);
    anyhow::ensure!(
        reload_changed == changed,
        "the reload changed {reload_changed} families, the re-score scan found {changed}"
    );
    let applied_rate = per_second(reload_changed, reload_all.saturating_sub(reload_scan));

    let national = |rate: f64| NATIONAL_FAMILIES / rate;
    let mut table = Table::new("whatif");
    table.note(format!(
        "{} families loaded: {} B a record on average; proposal: large family from 3 children",
        thousands(records),
        bytes / records.max(1),
    ));
    table.note(format!(
        "what-if: large_family eligible {} now, {} what-if (+{} -{}); re-score: {} families change",
        thousands(large.map_or(0, |p| p.eligible_now)),
        thousands(large.map_or(0, |p| p.eligible_whatif)),
        thousands(large.map_or(0, |p| p.gain)),
        thousands(large.map_or(0, |p| p.lose)),
        thousands(changed)
    ));
    table.row(
        "dfm scoring table built (both cores)",
        rate(per_second(records, table_build)),
        &format!(
            "families/s ({:.2} s), {} B a family in memory",
            table_build.as_secs_f64(),
            table_bytes / records.max(1)
        ),
    );
    table.row("dfm what-if (both cores)", rate(whatif_rate), "families/s");
    table.row(
        "dfm re-score scan (both cores)",
        rate(rescore_rate),
        "families/s",
    );
    table.row(
        "dfm rules reload: scan",
        format!("{:.2}", reload_scan.as_secs_f64()),
        &format!("s, {} families change", thousands(reload_changed)),
    );
    table.row(
        "dfm rules reload: changed families applied",
        rate(applied_rate),
        &format!(
            "families/s through their actors (all applied {:.1} s after the request)",
            reload_all.as_secs_f64()
        ),
    );
    table.row(
        "whole records, one core (reference)",
        rate(whole_rate),
        "families/s (decode + evaluate everything)",
    );
    table.row(
        "raw sled, read every record (one core)",
        rate(raw),
        "records/s",
    );
    table.row(
        "ratio what-if / raw read",
        ratio_text(whatif_rate / raw),
        "",
    );
    table.row(
        "ratio re-score scan / raw read",
        ratio_text(rescore_rate / raw),
        "",
    );
    table.row(
        "what-if at 6 M families (projected)",
        format!("{:.1}", national(whatif_rate)),
        &format!(
            "s; target <= {WHATIF_TARGET_SECONDS:.0} s: {}",
            verdict(national(whatif_rate) <= WHATIF_TARGET_SECONDS)
        ),
    );
    table.row(
        "re-score scan at 6 M families (projected)",
        format!("{:.1}", national(rescore_rate)),
        &format!(
            "s to find who changes; the {RESCORE_TARGET_SECONDS:.0} s target also counts applying them"
        ),
    );
    let scale = NATIONAL_FAMILIES / records as f64;
    let rescore_national =
        national(rescore_rate) + reload_changed as f64 * scale / applied_rate.max(1.0);
    table.row(
        "full re-score at 6 M families (projected)",
        format!("{rescore_national:.1}"),
        &format!(
            "s: the scan, then {} changed families through their actors; target <= {RESCORE_TARGET_SECONDS:.0} s: {}",
            thousands((reload_changed as f64 * scale) as u64),
            verdict(rescore_national <= RESCORE_TARGET_SECONDS)
        ),
    );
    table.row(
        "raw read at 6 M families (projected)",
        format!("{:.1}", national(raw)),
        "s: the floor for any scan of whole records",
    );
    table.print();
    Ok(())
}

/// A bulk load and its wall time (opening the store and the final flush included).
struct Loaded {
    report: LoadReport,
    elapsed: Duration,
}

/// `dfm load` into a fresh store at `store_path`.
async fn load_population(events_path: &Path, store_path: &Path) -> anyhow::Result<Loaded> {
    let config = Config::for_local(
        store_path.to_path_buf(),
        UNUSED_GATEWAY_URL,
        UNUSED_GATEWAY_URL,
        catalogue(),
    );
    let file = std::fs::File::open(events_path)
        .with_context(|| format!("cannot open {}", events_path.display()))?;
    let started = Instant::now();
    let report = load_events(config, file).await?;
    Ok(Loaded {
        report,
        elapsed: started.elapsed(),
    })
}

/// `dfm generate` into `path`.
fn write_population(path: &Path, families: u64) -> anyhow::Result<GenerateSummary> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
    let summary = generate::write_ndjson(&generate_options(families), &mut writer)?;
    std::io::Write::flush(&mut writer)?;
    Ok(summary)
}

// =============================================================================================
// 3. Consent to payout

async fn payout(arguments: &PayoutArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=PAYOUT_FAMILIES_MAX).contains(&arguments.families),
        "--families must be from 1 to {PAYOUT_FAMILIES_MAX}"
    );
    anyhow::ensure!(
        arguments.concurrency > 0,
        "--concurrency must be at least 1"
    );
    let count = usize::try_from(arguments.families)?;
    let baseline_writes = count.max(BASELINE_WRITES_MIN);
    progress(
        "payout",
        &format!(
            "baseline: raw sled, {} inserts",
            thousands(baseline_writes as u64)
        ),
    );
    let baseline = raw_durable_inserts(
        baseline_writes,
        PAYOUT_BASELINE_VALUE_BYTES,
        BASELINE_FLUSH_EVERY,
    )?;
    progress("payout", "starting the service and feeding the families");
    let world = World::start().await?;
    let client = http_client()?;
    let families = payout_families(arguments.families)?;
    feed_payout_families(&client, &world.public_url(), &families).await?;
    progress("payout", "waiting for every offer SMS");
    let codes = wait_offer_codes(&world.sms, count).await?;
    let consents: Vec<(String, String)> = families
        .iter()
        .map(|family| {
            let code = codes.get(&family.phone).cloned().unwrap_or_default();
            (family.phone.clone(), code)
        })
        .collect();

    progress("payout", "consenting");
    let started = Instant::now();
    let inbound_url = format!("{}/v1/sms/inbound", world.public_url());
    let consenting = async {
        let outcomes =
            send_consents(&client, &inbound_url, &consents, arguments.concurrency).await?;
        anyhow::Ok((outcomes, started.elapsed()))
    };
    let paying = async {
        let paid = world
            .bank
            .wait_until(WAIT_MAX, |payments| large_family_paid(payments) >= count)
            .await;
        anyhow::ensure!(
            paid,
            "after {} s the bank holds {} of {count} payments",
            WAIT_MAX.as_secs(),
            large_family_paid(&world.bank.payments())
        );
        anyhow::Ok(started.elapsed())
    };
    let ((outcomes, consents_elapsed), paid_elapsed) = futures::try_join!(consenting, paying)?;
    wait_quiet(&world.running.state.store).await?;
    let bank_requests = world.bank.requests();
    let duplicates = world
        .bank
        .succeeded_by_key()
        .values()
        .filter(|count| **count > 1)
        .count();
    let repeated_message_ids = world.bank.repeated_message_ids();
    let reference_conflicts = world.bank.reference_conflicts();
    let paid = large_family_paid(&world.bank.payments());
    let time_inside = time_spent(&world.running.state.metrics.render());
    world.stop().await?;

    let payouts = per_second(arguments.families, paid_elapsed);
    let mut table = Table::new("payout");
    table.note(format!(
        "{} large families (4 children, head with phone and IBAN), {} consent replies in flight",
        thousands(arguments.families),
        arguments.concurrency
    ));
    table.note(format!(
        "consent answers: {} matched, {} other, {} x 503; bank: {} SUCC, {} requests, \
         {} duplicate payments, {} repeated message ids, {} reference conflicts",
        thousands(outcomes.matched),
        thousands(outcomes.other),
        thousands(outcomes.busy),
        thousands(paid as u64),
        thousands(bank_requests),
        duplicates,
        repeated_message_ids,
        reference_conflicts
    ));
    table.row(
        "dfm consents answered (durable 200)",
        rate(per_second(arguments.families, consents_elapsed)),
        &format!("replies/s ({:.2} s)", consents_elapsed.as_secs_f64()),
    );
    table.row(
        "dfm payouts, first consent to last SUCC",
        rate(payouts),
        &format!("payouts/s ({:.2} s)", paid_elapsed.as_secs_f64()),
    );
    table.row(
        "raw sled insert, flush every 1,000",
        rate(baseline),
        &format!("writes/s ({PAYOUT_BASELINE_VALUE_BYTES} B values)"),
    );
    table.row(
        "ratio payouts / baseline",
        ratio_text(payouts / baseline),
        "",
    );
    table.row(
        "issue target",
        format!(">= {} payouts/s", rate(PAYOUT_TARGET_PER_SECOND)),
        verdict(payouts >= PAYOUT_TARGET_PER_SECOND),
    );
    table.row(
        "duplicate payments (must be 0)",
        duplicates.to_string(),
        verdict(duplicates == 0),
    );
    table.print();
    print_time_spent(&time_inside);
    Ok(())
}

/// One large family of the payout bench and the events that make it.
struct PayoutFamily {
    phone: String,
    events: Vec<(&'static str, Value)>,
}

/// `count` large families with unique IINs and phones.
fn payout_families(count: u64) -> anyhow::Result<Vec<PayoutFamily>> {
    let occurred_at = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let mut iins = IinAllocator::default();
    (0..count)
        .map(|index| payout_family(index, &mut iins, &occurred_at))
        .collect()
}

/// The events of `tests/it/support.rs`'s `large_family`: two parents, the
/// father as head with a phone and an account, four children of school age,
/// in Almaty (KZ-35), with no income reported.
fn payout_family(
    index: u64,
    iins: &mut IinAllocator,
    occurred_at: &str,
) -> anyhow::Result<PayoutFamily> {
    let family_id = format!("BENCH-{index:07}");
    let phone = format!("+7702{index:07}");
    let parent_offset = days(index % PARENT_BIRTH_SPREAD_DAYS)?;
    let mother_birth = date(1988, 1, 1) + parent_offset;
    let father_birth = date(1986, 1, 1) + parent_offset;
    let mother = iins.next(mother_birth, Sex::Female)?;
    let father = iins.next(father_birth, Sex::Male)?;
    let event = |suffix: &str, kind: &str, data: Value| json!({"id": format!("{family_id}-{suffix}"), "type": kind, "occurred_at": occurred_at, "data": data});
    let mut events = vec![
        (
            "population",
            event(
                "reg-m",
                "citizen.registered",
                json!({"iin": mother, "full_name": "Айгерім Сәрсенова", "birth_date": mother_birth.to_string(), "sex": "female"}),
            ),
        ),
        (
            "population",
            event(
                "reg-f",
                "citizen.registered",
                json!({"iin": father, "full_name": "Ерлан Сәрсенов", "birth_date": father_birth.to_string(), "sex": "male"}),
            ),
        ),
        (
            "population",
            event(
                "add-f",
                "family.member_added",
                json!({"family_id": family_id, "iin": father, "role": "head"}),
            ),
        ),
        (
            "population",
            event(
                "add-m",
                "family.member_added",
                json!({"family_id": family_id, "iin": mother, "role": "spouse"}),
            ),
        ),
        (
            "population",
            event(
                "addr",
                "family.address_changed",
                json!({"family_id": family_id, "region": "KZ-35", "locality": "urban"}),
            ),
        ),
        (
            "population",
            event(
                "phone-f",
                "citizen.contact_changed",
                json!({"iin": father, "phone": phone}),
            ),
        ),
        (
            "payments",
            event(
                "acct-f",
                "payout.account_changed",
                json!({"iin": father, "iban": "KZ86125KZT5004100100"}),
            ),
        ),
    ];
    for child in 0..PAYOUT_CHILDREN {
        let offset =
            days(u64::from(child) * CHILD_BIRTH_SPREAD_DAYS + index % CHILD_BIRTH_SPREAD_DAYS)?;
        let sex = if child % 2 == 0 {
            Sex::Male
        } else {
            Sex::Female
        };
        let child_iin = iins.next(date(2011, 1, 1) + offset, sex)?;
        events.push((
            "population",
            event(
                &format!("add-c{child}"),
                "family.member_added",
                json!({"family_id": family_id, "iin": child_iin, "role": "child"}),
            ),
        ));
    }
    Ok(PayoutFamily { phone, events })
}

/// Unique IINs: for each birth date and sex, the next serial that has a check digit.
#[derive(Default)]
struct IinAllocator {
    next_serial: HashMap<(NaiveDate, Sex), u32>,
}

impl IinAllocator {
    fn next(&mut self, birth_date: NaiveDate, sex: Sex) -> anyhow::Result<String> {
        let serial = self.next_serial.entry((birth_date, sex)).or_insert(1);
        while *serial <= IIN_SERIAL_MAX {
            let candidate = *serial;
            *serial += 1;
            if let Some(iin) = Iin::from_parts(birth_date, sex, candidate) {
                return Ok(iin.as_str().to_owned());
            }
        }
        anyhow::bail!("no IIN serial left for {birth_date} {}", sex.as_str())
    }
}

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("a valid calendar date")
}

fn days(count: u64) -> anyhow::Result<chrono::Duration> {
    Ok(chrono::Duration::days(i64::try_from(count)?))
}

/// Feeds the families in order (population first, then payments), one request
/// at a time; not measured.
async fn feed_payout_families(
    client: &reqwest::Client,
    public_url: &str,
    families: &[PayoutFamily],
) -> anyhow::Result<()> {
    let mut bodies = Vec::new();
    for agency in ["population", "payments"] {
        let lines: Vec<String> = families
            .iter()
            .flat_map(|family| family.events.iter())
            .filter(|(of, _)| *of == agency)
            .map(|(_, event)| event.to_string() + "\n")
            .collect();
        bodies.extend(
            lines
                .chunks(PAYOUT_SETUP_BATCH_EVENTS)
                .map(|chunk| FeedBody {
                    agency,
                    bytes: Bytes::from(chunk.concat()),
                }),
        );
    }
    let totals = post_bodies(client, public_url, &bodies, 1).await?;
    anyhow::ensure!(
        totals.rejected == 0,
        "the service rejected {} of the payout families' events",
        totals.rejected
    );
    Ok(())
}

/// Waits until `phones` phones have a large-family offer; their codes by phone.
async fn wait_offer_codes(
    sms: &SmsSimulator,
    phones: usize,
) -> anyhow::Result<HashMap<String, String>> {
    let started = Instant::now();
    loop {
        let codes = offer_codes(&sms.messages());
        if codes.len() >= phones {
            return Ok(codes);
        }
        anyhow::ensure!(
            started.elapsed() < WAIT_MAX,
            "after {} s only {} of {phones} phones have a large-family offer",
            WAIT_MAX.as_secs(),
            codes.len()
        );
        tokio::time::sleep(SMS_POLL).await;
    }
}

/// The code of each phone's large-family offer (reference
/// `<family>-large_family-<n>-offer-<k>`; the code is `#` and four digits).
fn offer_codes(messages: &[SimMessage]) -> HashMap<String, String> {
    messages
        .iter()
        .filter(|m| m.reference.contains("-large_family-") && m.reference.contains("-offer-"))
        .filter_map(|m| Some((m.to.clone(), offer_code(&m.text)?.to_owned())))
        .collect()
}

fn offer_code(text: &str) -> Option<&str> {
    let at = text.find('#')?;
    text.get(at + 1..at + 5)
        .filter(|code| code.bytes().all(|b| b.is_ascii_digit()))
}

/// Large-family payments the bank holds as `SUCC`.
fn large_family_paid(payments: &[SimPayment]) -> usize {
    payments
        .iter()
        .filter(|p| p.status == "SUCC" && p.purpose.starts_with("large_family "))
        .count()
}

/// What the SMS callback answered, summed over replies.
#[derive(Debug, Default)]
struct ConsentOutcomes {
    matched: u64,
    other: u64,
    busy: u64,
}

/// Sends `YES #code` from each phone with `concurrency` replies in flight.
async fn send_consents(
    client: &reqwest::Client,
    inbound_url: &str,
    consents: &[(String, String)],
    concurrency: usize,
) -> anyhow::Result<ConsentOutcomes> {
    let received_at = chrono::Utc::now().to_rfc3339();
    let mut answers = futures::stream::iter(consents.iter().enumerate())
        .map(|(index, (phone, code))| {
            let body = json!({
                "id": format!("bench-consent-{index}"),
                "from": phone,
                "text": format!("YES #{code}"),
                "received_at": received_at,
            });
            async move {
                let (response, busy) = send_until_taken(inbound_url, || {
                    client.post(inbound_url).bearer_auth(SMS_TOKEN).json(&body)
                })
                .await?;
                let answer: Value = response.json().await.context("the reply's answer")?;
                anyhow::Ok((answer["outcome"] == "matched", busy))
            }
        })
        .buffer_unordered(concurrency);
    let mut outcomes = ConsentOutcomes::default();
    while let Some(answer) = answers.next().await {
        let (matched, busy) = answer?;
        if matched {
            outcomes.matched += 1;
        } else {
            outcomes.other += 1;
        }
        outcomes.busy += u64::from(busy);
    }
    Ok(outcomes)
}

// =============================================================================================
// 4. Resident memory

async fn rss(arguments: &RssArgs) -> anyhow::Result<()> {
    anyhow::ensure!(arguments.families > 0, "--families must be at least 1");
    let directory = temp_dir("rss")?;
    let (loaded, service) = measure_service(directory.path(), arguments.families).await?;
    // A second, smaller store: how the service's resting memory grows with the
    // number of families, for the projection.
    let small_families = (arguments.families / RSS_SMALL_STORE_DIVISOR).max(1);
    let (_, small) = measure_service(directory.path(), small_families).await?;
    progress("rss", "building the raw sled baseline");
    let raw_path = directory.path().join("raw");
    raw_batch_inserts(
        &raw_path,
        usize::try_from(arguments.families)?,
        BASELINE_RECORD_BYTES,
        BASELINE_BATCH_RECORDS,
    )?;
    progress("rss", "measuring raw sled in a fresh process");
    let raw = run_probe(ProbeKind::Raw, &raw_path, arguments.families)?;

    let active_families_max = Config::for_local(
        raw_path.clone(),
        UNUSED_GATEWAY_URL,
        UNUSED_GATEWAY_URL,
        catalogue(),
    )
    .active_families_max;
    let sample = service.active.max(1);
    let per_read = service.read_kib.saturating_sub(service.opened_kib) * 1024 / sample;
    let per_actor = service.activated_kib.saturating_sub(service.read_kib) * 1024 / sample;
    let actors_at_target = active_families_max.min(usize::try_from(RSS_TARGET_FAMILIES)?) as u64;
    let cache_at_target = (per_read * actors_at_target).min(STORE_CACHE_BYTES);
    let families = arguments.families;
    // Resting memory per family, from the two stores (0 if it did not grow).
    let per_family_resting = if families > small_families {
        service.opened_kib.saturating_sub(small.opened_kib) * 1024 / (families - small_families)
    } else {
        0
    };
    let resting_at_target = service.opened_kib * 1024
        + per_family_resting * RSS_TARGET_FAMILIES.saturating_sub(families);
    let projected = resting_at_target + cache_at_target + per_actor * actors_at_target;
    let ratio = service.delta_bytes() as f64 / raw.delta_bytes().max(1) as f64;
    let mut table = Table::new("rss");
    table.note(format!(
        "{} families loaded in {:.1} s ({} in the store); probe: GET /v1/stats, GET {} random \
         families (operator token), then their actors activated; {} family actors active",
        thousands(families),
        loaded.elapsed.as_secs_f64(),
        thousands(loaded.report.families as u64),
        thousands(RSS_SAMPLE_FAMILIES as u64),
        thousands(service.active)
    ));
    table.note(format!(
        "dfm probe VmRSS: {} MB at start, {} MB with the service up, {} MB after the reads, \
         {} MB with the actors active",
        megabytes(service.start_kib * 1024),
        megabytes(service.opened_kib * 1024),
        megabytes(service.read_kib * 1024),
        megabytes(service.activated_kib * 1024),
    ));
    table.note(format!(
        "raw probe VmRSS: {} MB at start, {} MB open, {} MB after the reads",
        megabytes(raw.start_kib * 1024),
        megabytes(raw.opened_kib * 1024),
        megabytes(raw.read_kib * 1024),
    ));
    table.row(
        "dfm service VmRSS",
        megabytes(service.activated_kib * 1024),
        "MB",
    );
    table.row(
        "dfm service VmRSS delta",
        megabytes(service.delta_bytes()),
        "MB (actors active - process start)",
    );
    table.row(
        "dfm store on disk",
        thousands(service.size_on_disk / families),
        &format!("bytes/family ({} MB)", megabytes(service.size_on_disk)),
    );
    table.row(
        "raw sled VmRSS delta",
        megabytes(raw.delta_bytes()),
        &format!(
            "MB ({} x 1 KiB records open, {} read)",
            thousands(families),
            thousands(RSS_SAMPLE_FAMILIES as u64)
        ),
    );
    table.row(
        "raw sled on disk",
        thousands(raw.size_on_disk / families),
        "bytes/record",
    );
    table.row("ratio dfm delta / raw delta", ratio_text(ratio), "");
    table.row(
        "memory per family read (sled cache)",
        thousands(per_read),
        "bytes",
    );
    table.row(
        "memory per active family actor",
        thousands(per_actor),
        "bytes",
    );
    table.row(
        "resting memory per stored family",
        thousands(per_family_resting),
        &format!(
            "bytes (service up: {} MB at {} families, {} MB at {})",
            megabytes(small.opened_kib * 1024),
            thousands(small_families),
            megabytes(service.opened_kib * 1024),
            thousands(families)
        ),
    );
    table.row(
        "projection at 1,000,000 families",
        megabytes(projected),
        &format!(
            "MB = service up ({} MB, linear in N) + cache (<= {} MB) + {} actors",
            megabytes(resting_at_target),
            megabytes(STORE_CACHE_BYTES),
            thousands(actors_at_target)
        ),
    );
    table.row(
        "issue target (<= 1.5 GB at 1M)",
        "<= 1,500 MB".to_owned(),
        if projected as f64 <= RSS_TARGET_BYTES {
            "met by projection"
        } else {
            "NOT met by projection"
        },
    );
    table.print();
    Ok(())
}

/// Loads `families` into a fresh store under `directory` and measures the
/// service on it in a fresh process. The events file is removed after the load.
async fn measure_service(
    directory: &Path,
    families: u64,
) -> anyhow::Result<(Loaded, ProbeFigures)> {
    let name = format!("{families}");
    progress(
        "rss",
        &format!("generating {} families", thousands(families)),
    );
    let events_path = directory.join(format!("events-{name}.ndjson"));
    write_population(&events_path, families)?;
    progress("rss", &format!("loading {} families", thousands(families)));
    let store_path = directory.join(format!("store-{name}"));
    let loaded = load_population(&events_path, &store_path).await?;
    std::fs::remove_file(&events_path)?;
    progress("rss", "measuring the service in a fresh process");
    let figures = run_probe(ProbeKind::Service, &store_path, families)?;
    Ok((loaded, figures))
}

/// What one rss probe measured; `*_kib` are VmRSS readings.
#[derive(Debug, Default)]
struct ProbeFigures {
    start_kib: u64,
    /// With the store open (the service up and its stats read).
    opened_kib: u64,
    /// After reading the sample.
    read_kib: u64,
    /// After the sample's actors are active (raw sled: = `read_kib`).
    activated_kib: u64,
    active: u64,
    size_on_disk: u64,
}

impl ProbeFigures {
    /// A probe that activates no actors: `count` is what it read (`active`).
    fn without_actors(
        start_kib: u64,
        opened_kib: u64,
        read_kib: u64,
        count: u64,
        store: &Store,
    ) -> anyhow::Result<ProbeFigures> {
        Ok(ProbeFigures {
            start_kib,
            opened_kib,
            read_kib,
            activated_kib: read_kib,
            active: count,
            size_on_disk: store.size_on_disk()?,
        })
    }

    fn delta_bytes(&self) -> u64 {
        self.activated_kib.saturating_sub(self.start_kib) * 1024
    }

    fn to_line(&self) -> String {
        format!(
            "rss-probe start_kib={} opened_kib={} read_kib={} activated_kib={} active={} size_on_disk={}",
            self.start_kib,
            self.opened_kib,
            self.read_kib,
            self.activated_kib,
            self.active,
            self.size_on_disk
        )
    }

    fn parse(text: &str) -> anyhow::Result<ProbeFigures> {
        let line = text
            .lines()
            .find(|line| line.starts_with("rss-probe "))
            .context("the probe printed no figures")?;
        let fields: HashMap<&str, u64> = line
            .split_whitespace()
            .filter_map(|word| {
                let (key, value) = word.split_once('=')?;
                Some((key, value.parse().ok()?))
            })
            .collect();
        let field = |key: &str| {
            fields
                .get(key)
                .copied()
                .with_context(|| format!("the probe printed no {key}"))
        };
        Ok(ProbeFigures {
            start_kib: field("start_kib")?,
            opened_kib: field("opened_kib")?,
            read_kib: field("read_kib")?,
            activated_kib: field("activated_kib")?,
            active: field("active")?,
            size_on_disk: field("size_on_disk")?,
        })
    }
}

/// Runs `dfm bench rss-probe` in a fresh process and reads its figures.
fn run_probe(kind: ProbeKind, store: &Path, families: u64) -> anyhow::Result<ProbeFigures> {
    let executable = std::env::current_exe().context("cannot find this executable")?;
    let output = std::process::Command::new(executable)
        .args([
            "bench",
            "rss-probe",
            "--kind",
            kind.argument(),
            "--families",
        ])
        .arg(families.to_string())
        .arg("--store")
        .arg(store)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run the rss probe")?;
    anyhow::ensure!(
        output.status.success(),
        "the {} rss probe failed: {}",
        kind.argument(),
        output.status
    );
    ProbeFigures::parse(&String::from_utf8_lossy(&output.stdout))
}

/// In a fresh process: starts the service on the store, reads the stats and a
/// sample of families through the admin API, then activates the sample's
/// family actors.
async fn probe_service(store_path: &Path, families: u64) -> anyhow::Result<ProbeFigures> {
    let start_kib = vm_rss_kib()?;
    let config = Config::for_local(
        store_path.to_path_buf(),
        UNUSED_GATEWAY_URL,
        UNUSED_GATEWAY_URL,
        catalogue(),
    );
    let rules = actors::rules::Rules::load(&config.catalogue, config.year)
        .map_err(|e| anyhow::anyhow!("programs catalogue {}: {e}", config.catalogue.display()))?;
    let store = Arc::new(
        Store::open(store_path).with_context(|| format!("cannot open {}", store_path.display()))?,
    );
    let running = service::start_with_store(
        config,
        Arc::new(actors::clock::SystemClock),
        store.clone(),
        rules,
        false,
    )
    .await?;
    let client = http_client()?;
    let admin_url = format!("http://{}", running.admin_addr);
    let stats_url = format!("{admin_url}/v1/stats");
    send_until_taken(&stats_url, || {
        client.get(&stats_url).bearer_auth(OPERATOR_TOKEN)
    })
    .await?;
    let opened_kib = vm_rss_kib()?;
    let sample = sample_indexes(families, RSS_SAMPLE_FAMILIES);
    let family_urls: Vec<String> = sample
        .iter()
        .map(|index| format!("{admin_url}/v1/families/{}", generated_family_id(*index)))
        .collect();
    // First the reads through the admin API: they bring the sample's sled pages
    // into the cache, so that the next step's growth is the actors' own.
    for_each_url(&family_urls, |url| client.get(url)).await?;
    let read_kib = vm_rss_kib()?;
    // A read activates nothing (it takes the record from sled), so the sample
    // is activated through the directory, as the dispatcher does, and each
    // actor answers once so that it is running with its record.
    for index in &sample {
        let family_id: storage::ids::FamilyId = generated_family_id(*index).parse()?;
        let address = running.state.directory.activate(&family_id)?;
        address
            .send(actors::family::GetRecord)
            .await
            .with_context(|| format!("the actor of {family_id} did not answer"))?;
    }
    let figures = ProbeFigures {
        start_kib,
        opened_kib,
        read_kib,
        activated_kib: vm_rss_kib()?,
        active: running.state.directory.active_count() as u64,
        size_on_disk: store.size_on_disk()?,
    };
    running.stop().await?;
    Ok(figures)
}

/// Sends the request `build` makes for each URL, with the operator token and
/// [`RSS_PROBE_CONCURRENCY`] in flight.
async fn for_each_url(
    urls: &[String],
    build: impl Fn(&str) -> reqwest::RequestBuilder,
) -> anyhow::Result<()> {
    let build = &build;
    let mut requests = futures::stream::iter(urls)
        .map(|url| send_until_taken(url, move || build(url).bearer_auth(OPERATOR_TOKEN)))
        .buffer_unordered(RSS_PROBE_CONCURRENCY);
    while let Some(result) = requests.next().await {
        result?;
    }
    Ok(())
}

/// In a fresh process: opens the raw database the way dfm opens its store and
/// reads every family into the scoring table, as `serve` does at start.
/// `dfm bench rss-probe --kind store --store DIR --families N`: sled's own
/// memory on a loaded store, the floor under the service's (BENCHMARKS.md).
fn probe_store(store_path: &Path) -> anyhow::Result<ProbeFigures> {
    let start_kib = vm_rss_kib()?;
    let store =
        Store::open(store_path).with_context(|| format!("cannot open {}", store_path.display()))?;
    let opened_kib = vm_rss_kib()?;
    // What `serve` does at every start: every family read into the scoring table.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let read = store.build_scoring_table(threads)?;
    let read_kib = vm_rss_kib()?;
    ProbeFigures::without_actors(start_kib, opened_kib, read_kib, read, &store)
}

fn probe_raw(store_path: &Path, families: u64) -> anyhow::Result<ProbeFigures> {
    let start_kib = vm_rss_kib()?;
    let store =
        Store::open(store_path).with_context(|| format!("cannot open {}", store_path.display()))?;
    let tree = store.db().open_tree(BASELINE_TREE)?;
    let opened_kib = vm_rss_kib()?;
    for index in sample_indexes(families, RSS_SAMPLE_FAMILIES) {
        tree.get(record_key(usize::try_from(index)?))?
            .with_context(|| format!("raw record {index} is missing"))?;
    }
    let read_kib = vm_rss_kib()?;
    ProbeFigures::without_actors(start_kib, opened_kib, read_kib, 0, &store)
}

/// The id `dfm generate` gives family `index`.
fn generated_family_id(index: u64) -> String {
    format!("F{index:08}")
}

/// `count` distinct random indexes below `below` (all of them if fewer), seeded.
fn sample_indexes(below: u64, count: usize) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut chosen = std::collections::BTreeSet::new();
    let wanted = count.min(usize::try_from(below).unwrap_or(usize::MAX));
    while chosen.len() < wanted {
        chosen.insert(rng.gen_range(0..below));
    }
    chosen.into_iter().collect()
}

/// This process's resident set size, from `/proc/self/status`.
fn vm_rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")
        .context("cannot read /proc/self/status (the rss bench needs Linux)")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")
}

// =============================================================================================
// Raw-sled baselines

/// Plain sled, opened the way dfm opens its store: `count` single-key inserts of
/// `value_bytes` each, a flush every `flush_every` and one at the end. Inserts/s.
fn raw_durable_inserts(
    count: usize,
    value_bytes: usize,
    flush_every: usize,
) -> anyhow::Result<f64> {
    let directory = temp_dir("raw")?;
    let store = Store::open(&directory.path().join("raw"))?;
    let tree = store.db().open_tree(BASELINE_TREE)?;
    let mut value = random_bytes(value_bytes);
    let started = Instant::now();
    for index in 0..count {
        stamp(&mut value, index);
        tree.insert(record_key(index), &value[..])?;
        if (index + 1) % flush_every == 0 {
            store.flush()?;
        }
    }
    store.flush()?;
    Ok(per_second(count as u64, started.elapsed()))
}

/// Plain sled at `path`, opened the way dfm opens its store: `count` records of
/// `value_bytes` in `apply_batch`es of `batch_records`, one flush at the end.
/// Records/s. The database stays for the caller.
fn raw_batch_inserts(
    path: &Path,
    count: usize,
    value_bytes: usize,
    batch_records: usize,
) -> anyhow::Result<f64> {
    let store = Store::open(path)?;
    let tree = store.db().open_tree(BASELINE_TREE)?;
    let mut value = random_bytes(value_bytes);
    let started = Instant::now();
    let mut first = 0;
    while first < count {
        let end = (first + batch_records).min(count);
        let mut batch = empty_batch_for(|batch| tree.apply_batch(batch));
        for index in first..end {
            stamp(&mut value, index);
            batch.insert(&record_key(index)[..], &value[..]);
        }
        tree.apply_batch(batch)?;
        first = end;
    }
    store.flush()?;
    Ok(per_second(count as u64, started.elapsed()))
}

/// A new, empty batch for `apply`. `sled` is a dependency of `storage`, not of
/// this crate, so its `Batch` cannot be named here; the closure lets the
/// compiler infer the type from `Tree::apply_batch`'s parameter.
fn empty_batch_for<Batch: Default, Answer>(_apply: impl FnOnce(Batch) -> Answer) -> Batch {
    Batch::default()
}

fn record_key(index: usize) -> [u8; 8] {
    (index as u64).to_be_bytes()
}

/// Incompressible bytes, so that no layer gains from repetition.
fn random_bytes(length: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut bytes = vec![0u8; length.max(8)];
    rng.fill(&mut bytes[..]);
    bytes
}

/// Makes each value differ from the last in its first eight bytes.
fn stamp(value: &mut [u8], index: usize) {
    value[..8].copy_from_slice(&(index as u64).to_be_bytes());
}

// =============================================================================================
// The service under test

/// A service on a fresh temporary store, with the built-in SMS and bank
/// simulators and outbound calls on, as `dfm demo` runs it.
struct World {
    sms: SmsSimulator,
    bank: BankSimulator,
    running: Running,
    /// Last, so that it is removed after everything that writes into it.
    directory: tempfile::TempDir,
}

impl World {
    async fn start() -> anyhow::Result<World> {
        World::start_with(None).await
    }

    /// A service whose ports speak HTTPS with `tls`.
    async fn start_with(tls: Option<crate::tls::ServerTls>) -> anyhow::Result<World> {
        let directory = temp_dir("service")?;
        let sms = SmsSimulator::start(SmsSimulatorOptions::default())?;
        let bank = BankSimulator::start(BankSimulatorOptions::default())?;
        let mut config = Config::for_local(
            directory.path().join("store"),
            &sms.url(),
            &bank.url(),
            catalogue(),
        );
        config.tls = tls;
        let running =
            service::start_with(config, Arc::new(actors::clock::SystemClock), true).await?;
        Ok(World {
            sms,
            bank,
            running,
            directory,
        })
    }

    fn public_url(&self) -> String {
        format!(
            "{}://{}",
            self.running.state.config.scheme(),
            self.running.public_addr
        )
    }

    async fn stop(self) -> anyhow::Result<()> {
        let World {
            sms,
            bank,
            running,
            directory,
        } = self;
        running.stop().await?;
        sms.stop().await;
        bank.stop().await;
        drop(directory);
        Ok(())
    }
}

/// Waits until the service has applied everything in its log.
async fn wait_applied(store: &Store) -> anyhow::Result<()> {
    let started = Instant::now();
    while store.applied_through()? < store.last_seq() {
        anyhow::ensure!(
            started.elapsed() < WAIT_MAX,
            "after {} s the service has applied through {} of {}",
            WAIT_MAX.as_secs(),
            store.applied_through()?,
            store.last_seq()
        );
        tokio::time::sleep(STORE_POLL).await;
    }
    Ok(())
}

/// Waits until the log is applied and no payment is in flight.
async fn wait_quiet(store: &Store) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        wait_applied(store).await?;
        if store.payment_outbox()?.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < WAIT_MAX,
            "after {} s payments are still in flight",
            WAIT_MAX.as_secs()
        );
        tokio::time::sleep(STORE_POLL).await;
    }
}

/// Sends the request `build` makes until the answer is not 503, waiting
/// `Retry-After` after each 503. Fails on any other non-2xx answer, after
/// [`BUSY_ANSWERS_MAX`] 503s or [`TRANSPORT_FAILURES_MAX`] transport errors.
/// The answer and how many 503s came before it.
async fn send_until_taken(
    what: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> anyhow::Result<(reqwest::Response, u32)> {
    let (mut busy, mut failures) = (0u32, 0u32);
    loop {
        match build().send().await {
            Ok(response) if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                anyhow::ensure!(busy <= BUSY_ANSWERS_MAX, "{what}: {busy} answers 503");
                tokio::time::sleep(retry_after(&response)).await;
            }
            Ok(response) if response.status().is_success() => return Ok((response, busy)),
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                anyhow::bail!("{what}: {status}: {text}");
            }
            Err(error) => {
                failures += 1;
                if failures > TRANSPORT_FAILURES_MAX {
                    return Err(error).context(what.to_owned());
                }
                tokio::time::sleep(TRANSPORT_RETRY_DELAY).await;
            }
        }
    }
}

fn retry_after(response: &reqwest::Response) -> Duration {
    let seconds = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .unwrap_or(1);
    Duration::from_secs(seconds.clamp(1, RETRY_AFTER_SECONDS_MAX))
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    http_client_trusting(Vec::new())
}

/// A client that also trusts `authorities`.
fn http_client_trusting(authorities: Vec<reqwest::Certificate>) -> anyhow::Result<reqwest::Client> {
    authorities
        .into_iter()
        .fold(
            reqwest::Client::builder()
                .no_proxy()
                .timeout(REQUEST_TIMEOUT),
            |builder, authority| builder.add_root_certificate(authority),
        )
        .build()
        .context("cannot build the HTTP client")
}

fn generate_options(families: u64) -> GenerateOptions {
    GenerateOptions {
        families,
        seed: SEED,
        today: chrono::Utc::now().date_naive(),
    }
}

/// `config/programs.toml` from the working directory, else from the source tree.
fn catalogue() -> PathBuf {
    let here = PathBuf::from("config/programs.toml");
    if here.is_file() {
        here
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/programs.toml")
    }
}

fn temp_dir(purpose: &str) -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("dfm-bench-{purpose}-"))
        .tempdir()
        .context("cannot create a temporary directory")
}

// =============================================================================================
// Output

/// One bench's printed table: notes, then measure / value / unit rows.
struct Table {
    title: String,
    notes: Vec<String>,
    rows: Vec<[String; 3]>,
}

impl Table {
    fn new(bench: &str) -> Table {
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        Table {
            title: format!(
                "dfm bench {bench}  ({cpus} CPUs, {} UTC)",
                chrono::Utc::now().format("%Y-%m-%d %H:%M")
            ),
            notes: Vec::new(),
            rows: Vec::new(),
        }
    }

    fn note(&mut self, line: String) {
        self.notes.push(line);
    }

    fn row(&mut self, measure: &str, value: String, unit: &str) {
        self.rows.push([measure.to_owned(), value, unit.to_owned()]);
    }

    fn print(&self) {
        let width = |column: usize| {
            self.rows
                .iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        };
        let (measure_width, value_width) = (width(0), width(1));
        println!("\n{}", self.title);
        for note in &self.notes {
            println!("  {note}");
        }
        for [measure, value, unit] in &self.rows {
            println!("  {measure:<measure_width$}  {value:>value_width$}  {unit}");
        }
    }
}

/// The service's latency histograms over the whole run, one line each:
/// `name{labels}  count  total s  mean ms`, from the Prometheus text.
fn time_spent(metrics: &str) -> Vec<String> {
    let mut sums: Vec<(String, f64)> = Vec::new();
    let mut counts: HashMap<String, f64> = HashMap::new();
    for line in metrics.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_at(series.find('{').unwrap_or(series.len()));
        if let Some(name) = name.strip_suffix("_sum") {
            sums.push((format!("{name}{labels}"), value));
        } else if let Some(name) = name.strip_suffix("_count") {
            counts.insert(format!("{name}{labels}"), value);
        }
    }
    sums.into_iter()
        .filter_map(|(series, total)| {
            let count = counts.get(&series).copied().filter(|count| *count > 0.0)?;
            Some(format!(
                "{series}  count {}  total {total:.2} s  mean {:.3} ms",
                thousands(count as u64),
                total / count * 1e3
            ))
        })
        .collect()
}

fn print_time_spent(lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    println!("  time inside the service (its own histograms, whole run, setup included):");
    for line in lines {
        println!("    {line}");
    }
}

fn progress(bench: &str, what: &str) {
    eprintln!("dfm bench {bench}: {what}");
}

/// Per second; rates are for display only, so the conversion to `f64` may round.
fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// A rate with thousands separators, whole numbers from 100 up.
fn rate(value: f64) -> String {
    if value >= 100.0 {
        thousands(value.round() as u64)
    } else {
        format!("{value:.1}")
    }
}

fn ratio_text(ratio: f64) -> String {
    format!("{ratio:.2}")
}

fn megabytes(bytes: u64) -> String {
    thousands((bytes as f64 / 1e6).round() as u64)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// `1234567` → `"1,234,567"`.
fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        for (value, expected) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(thousands(value), expected);
        }
    }

    #[test]
    fn probe_figures_survive_their_line() {
        let figures = ProbeFigures {
            start_kib: 1,
            opened_kib: 2,
            read_kib: 3,
            activated_kib: 4,
            active: 5,
            size_on_disk: 6,
        };
        let parsed = ProbeFigures::parse(&format!("noise\n{}\n", figures.to_line())).unwrap();
        assert_eq!(parsed.to_line(), figures.to_line());
    }

    #[test]
    fn the_offer_code_is_four_digits_after_the_hash() {
        assert_eq!(offer_code("... #0482 ..."), Some("0482"));
        assert_eq!(offer_code("... #04x2 ..."), None);
        assert_eq!(offer_code("no code"), None);
    }

    #[test]
    fn payout_families_have_unique_iins() {
        let families = payout_families(3_000).unwrap();
        let mut iins = std::collections::HashSet::new();
        // Every member, parents and children, is added exactly once.
        for (_, event) in families.iter().flat_map(|family| family.events.iter()) {
            if event["type"] == "family.member_added" {
                let iin = event["data"]["iin"].as_str().unwrap();
                assert!(iins.insert(iin.to_owned()), "{iin} twice");
            }
        }
        assert_eq!(iins.len(), 3_000 * 6);
    }
}
