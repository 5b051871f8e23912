//! `dfm demo`: the embedded default a newcomer runs first.
//!
//! One process holds everything: a temporary store, the built-in SMS and bank
//! simulators on loopback (real HTTP), the service itself, a synthetic
//! population streamed through the public feed API, and simulated citizens who
//! answer the consent SMS through the SMS gateway's callback. When the
//! population is applied and every answer has reached a final state, the demo
//! runs next month's payment cycle once, prints a summary and, unless `--exit`,
//! keeps the admin port open for the dashboard until Ctrl-C.
//!
//! The consent window is shortened to [`REPLY_WINDOW`] (reminder after
//! [`REMINDER_AFTER`]) so that the silent citizens' offers visibly expire.
//!
//! The feed is sent in chunks of whole families: each chunk's fact agencies
//! first (income, health, …), then its population batch, so that a family's
//! facts are known when its members arrive and the first evaluation already
//! sees them (hardly any offer that the next batch would withdraw).

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use anyhow::Context as _;
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::Value;

use crate::config::Config;
use crate::generate::{self, FeedLine, GenerateOptions, GenerateSummary};
use crate::service::{self, Running};
use crate::simulators::{
    BankSimulator, BankSimulatorOptions, SimMessage, SmsSimulator, SmsSimulatorOptions,
};

/// The demo's consent window: no answer by then, the offer expires.
pub const REPLY_WINDOW: Duration = Duration::from_secs(20);
/// The demo's reminder: one reminder SMS this long after the offer.
pub const REMINDER_AFTER: Duration = Duration::from_secs(10);
/// Events per chunk of whole families (all agencies); the population batch of a
/// chunk is about a third of it.
const CHUNK_EVENTS: usize = 14_000;
/// Feed requests in flight at once.
const FEED_REQUESTS_IN_FLIGHT: usize = 4;
/// Chunks being sent at once (each sends its facts, then its population).
const CHUNKS_IN_FLIGHT: usize = 3;
/// Log entries the dispatcher takes per batch (the service default is 2048): a
/// family's events, spread over its chunk's agency batches, are then applied
/// in fewer passes (fewer evaluations and commits of its record).
const DEMO_BATCH_ENTRIES: usize = 8192;
/// Reply callbacks in flight at once.
const REPLIES_IN_FLIGHT: usize = 16;
/// Longest simulated "thinking time" before a citizen answers.
const REPLY_DELAY_MS_MAX: u64 = 1_500;
/// How long the demo waits, after the feed is sent, for everything to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(240);
/// How often the demo looks at the service while waiting.
const POLL: Duration = Duration::from_millis(250);

const OPERATOR_TOKEN: &str = "operator-secret";
const SMS_TOKEN: &str = "sms-secret";

pub fn run(families: u64, seed: u64, exit: bool) -> anyhow::Result<()> {
    actix_rt::System::new().block_on(run_demo(families, seed, exit))
}

// =============================================================================================
// Simulated citizens

/// What a simulated citizen does with an offer SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// "YES #code": consent, paid to the bank account.
    Yes,
    /// "ӘМИЯН #code": consent, paid to the social wallet.
    Wallet,
    /// "НЕТ #code": refusal.
    No,
    /// No answer: a reminder, then expiry.
    Silent,
}

/// A 64-bit mix of the seed and a message reference (FNV-1a, then SplitMix64's
/// finaliser): the same on every run and platform.
fn mix(seed: u64, reference: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for byte in reference.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// The answer to the offer with this reference, and the delay before it:
/// ~75% yes, ~10% wallet, ~7% no, ~8% silent; deterministic for a seed.
pub fn choose(seed: u64, reference: &str) -> (Answer, Duration) {
    let hash = mix(seed, reference);
    let answer = match hash % 100 {
        0..75 => Answer::Yes,
        75..85 => Answer::Wallet,
        85..92 => Answer::No,
        _ => Answer::Silent,
    };
    let delay = Duration::from_millis((hash >> 32) % (REPLY_DELAY_MS_MAX + 1));
    (answer, delay)
}

/// Whether an SMS reference is an offer's: `<entitlement>-offer-<n>` (a help
/// SMS answering a reply is `help-<reply id>` and may contain `-offer-` too).
fn is_offer(reference: &str) -> bool {
    !reference.starts_with("help-")
        && reference.rsplit_once("-offer-").is_some_and(|(_, number)| {
            !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
        })
}

/// The code of an offer SMS: `#` and four digits.
fn offer_code(text: &str) -> Option<&str> {
    text.match_indices('#').find_map(|(index, _)| {
        let digits = text.get(index + 1..index + 5)?;
        let after_ok = text[index + 5..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_ascii_digit());
        (digits.bytes().all(|b| b.is_ascii_digit()) && after_ok).then_some(digits)
    })
}

fn reply_text(answer: Answer, code: &str) -> Option<String> {
    match answer {
        Answer::Yes => Some(format!("YES #{code}")),
        Answer::Wallet => Some(format!("ӘМИЯН #{code}")),
        Answer::No => Some(format!("НЕТ #{code}")),
        Answer::Silent => None,
    }
}

#[derive(Debug, Default, Clone)]
struct CitizenCounts {
    offers: u64,
    yes: u64,
    wallet: u64,
    no: u64,
    silent: u64,
    /// Offers whose text had no code (should stay 0).
    no_code: u64,
    /// The service's answers to the replies: matched, unmatched, ambiguous, …
    outcomes: BTreeMap<String, u64>,
    /// Replies the service did not take (non-200 after retries, or no answer).
    failed: u64,
    first_failure: Option<String>,
}

struct Citizens {
    counts: Mutex<CitizenCounts>,
    /// Messages of the SMS simulator already looked at.
    seen: AtomicUsize,
    /// Replies scheduled but not yet answered by the service.
    in_flight: AtomicUsize,
}

impl Citizens {
    fn counts(&self) -> CitizenCounts {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut CitizenCounts)) {
        change(&mut self.counts.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// Looks at new SMS every [`POLL`] and answers the offers, until `stop`.
async fn answer_offers(
    seed: u64,
    sms: Arc<SmsSimulator>,
    citizens: Arc<Citizens>,
    client: reqwest::Client,
    inbound_url: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let limit = Arc::new(tokio::sync::Semaphore::new(REPLIES_IN_FLIGHT));
    loop {
        let seen = citizens.seen.load(Ordering::SeqCst);
        let messages = messages_after(&sms, seen).await;
        for message in &messages {
            if !is_offer(&message.reference) {
                continue;
            }
            let (answer, delay) = choose(seed, &message.reference);
            let Some(code) = offer_code(&message.text) else {
                citizens.update(|c| {
                    c.offers += 1;
                    c.no_code += 1;
                });
                continue;
            };
            citizens.update(|c| {
                c.offers += 1;
                match answer {
                    Answer::Yes => c.yes += 1,
                    Answer::Wallet => c.wallet += 1,
                    Answer::No => c.no += 1,
                    Answer::Silent => c.silent += 1,
                }
            });
            let Some(text) = reply_text(answer, code) else {
                continue;
            };
            citizens.in_flight.fetch_add(1, Ordering::SeqCst);
            let body = serde_json::json!({
                "id": format!("demo-reply-{}", message.reference),
                "from": message.to,
                "text": text,
            });
            let (client, url, citizens, limit) = (
                client.clone(),
                inbound_url.clone(),
                citizens.clone(),
                limit.clone(),
            );
            actix_rt::spawn(async move {
                tokio::time::sleep(delay).await;
                let _permit = limit.acquire().await;
                let mut body = body;
                body["received_at"] = Value::String(chrono::Utc::now().to_rfc3339());
                let outcome = send_reply(&client, &url, &body).await;
                citizens.update(|c| match outcome {
                    Ok(outcome) => *c.outcomes.entry(outcome).or_insert(0) += 1,
                    Err(error) => {
                        c.failed += 1;
                        c.first_failure.get_or_insert(error);
                    }
                });
                citizens.in_flight.fetch_sub(1, Ordering::SeqCst);
            });
        }
        citizens.seen.store(seen + messages.len(), Ordering::SeqCst);
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The messages the SMS simulator took after the first `seen`, copied without
/// copying the ones before (the simulator's `messages()` clones them all).
async fn messages_after(sms: &SmsSimulator, seen: usize) -> Vec<SimMessage> {
    let tail = Mutex::new(Vec::new());
    sms.wait_until(Duration::ZERO, |messages| {
        *tail.lock().unwrap_or_else(|e| e.into_inner()) =
            messages.get(seen..).unwrap_or_default().to_vec();
        true
    })
    .await;
    tail.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// How many messages the SMS simulator has taken.
async fn message_count(sms: &SmsSimulator) -> usize {
    let count = AtomicUsize::new(0);
    sms.wait_until(Duration::ZERO, |messages| {
        count.store(messages.len(), Ordering::SeqCst);
        true
    })
    .await;
    count.into_inner()
}

/// How many payments the bank simulator holds for this purpose suffix.
async fn payments_for(bank: &BankSimulator, suffix: &str) -> usize {
    let count = AtomicUsize::new(0);
    bank.wait_until(Duration::ZERO, |payments| {
        count.store(
            payments
                .iter()
                .filter(|p| p.purpose.ends_with(suffix))
                .count(),
            Ordering::SeqCst,
        );
        true
    })
    .await;
    count.into_inner()
}

/// Posts one reply; the service's `outcome` on 200.
async fn send_reply(client: &reqwest::Client, url: &str, body: &Value) -> Result<String, String> {
    let mut tries = 0;
    loop {
        tries += 1;
        let response = client
            .post(url)
            .bearer_auth(SMS_TOKEN)
            .json(body)
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => {
                let answer: Value = response.json().await.map_err(|e| e.to_string())?;
                return Ok(answer["outcome"]
                    .as_str()
                    .or(answer["status"].as_str())
                    .unwrap_or("stored")
                    .to_owned());
            }
            Ok(response) if response.status().as_u16() == 503 && tries < 20 => {
                tokio::time::sleep(retry_after(&response)).await;
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                return Err(format!("POST /v1/sms/inbound: {status} {text}"));
            }
            Err(_) if tries < 5 => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(error) => return Err(format!("POST /v1/sms/inbound: {error}")),
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
    Duration::from_secs(seconds.clamp(1, 30))
}

// =============================================================================================
// The feed

/// The events of some whole families, one NDJSON batch per agency, the
/// population last.
struct Chunk {
    batches: Vec<Batch>,
}

struct Batch {
    agency: &'static str,
    body: Bytes,
    events: u64,
}

/// Groups feed lines into chunks of whole families.
struct ChunkBuilder {
    limit: usize,
    buffers: BTreeMap<&'static str, (Vec<u8>, u64)>,
    events: usize,
    in_registrations: bool,
}

impl ChunkBuilder {
    fn new(limit: usize) -> ChunkBuilder {
        ChunkBuilder {
            limit,
            buffers: BTreeMap::new(),
            events: 0,
            in_registrations: false,
        }
    }

    /// Adds a line; returns the finished chunk when this line starts a new
    /// family and the chunk is full.
    fn push(&mut self, line: FeedLine) -> Option<Chunk> {
        // A family begins with its citizens' registrations.
        let registration =
            line.agency == "population" && line.json.contains("\"type\":\"citizen.registered\"");
        let starts_family = registration && !self.in_registrations;
        self.in_registrations = registration;
        let chunk = (starts_family && self.events >= self.limit).then(|| self.take());
        let (buffer, count) = self
            .buffers
            .entry(line.agency)
            .or_insert_with(|| (Vec::with_capacity(1 << 20), 0));
        buffer.extend_from_slice(line.json.as_bytes());
        buffer.push(b'\n');
        *count += 1;
        self.events += 1;
        chunk
    }

    fn take(&mut self) -> Chunk {
        self.events = 0;
        let mut batches: Vec<Batch> = std::mem::take(&mut self.buffers)
            .into_iter()
            .map(|(agency, (body, events))| Batch {
                agency,
                body: Bytes::from(body),
                events,
            })
            .collect();
        // Facts first, then the members they belong to.
        batches.sort_by_key(|batch| batch.agency == "population");
        Chunk { batches }
    }

    fn finish(mut self) -> Option<Chunk> {
        (self.events > 0).then(|| self.take())
    }
}

#[derive(Debug, Deserialize)]
struct FeedAnswer {
    accepted: u64,
    duplicates: u64,
    rejected: Vec<Value>,
}

#[derive(Debug, Default)]
struct FeedTotals {
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    busy: AtomicU64,
    requests: AtomicU64,
}

struct Feeder {
    client: reqwest::Client,
    base_url: String,
    limit: tokio::sync::Semaphore,
    totals: FeedTotals,
    bar: ProgressBar,
}

impl Feeder {
    /// Posts one batch until the service answers 200; 503 is retried after
    /// `Retry-After` with the same batch (event ids make it idempotent).
    async fn send(&self, batch: &Batch) -> anyhow::Result<()> {
        let token = crate::config::local_agency_token(batch.agency)
            .with_context(|| format!("no token for agency {}", batch.agency))?;
        let url = format!("{}/v1/feeds/{}/events", self.base_url, batch.agency);
        let _permit = self.limit.acquire().await?;
        let mut failures = 0;
        loop {
            self.totals.requests.fetch_add(1, Ordering::Relaxed);
            let response = self
                .client
                .post(&url)
                .bearer_auth(token)
                .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
                .body(batch.body.clone())
                .send()
                .await;
            let response = match response {
                Ok(response) => response,
                Err(error) if failures < 3 => {
                    failures += 1;
                    self.bar.println(format!(
                        "dfm demo: feed request failed ({error}); resending"
                    ));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(error) => return Err(error).context(format!("POST {url}")),
            };
            let status = response.status();
            if status.as_u16() == 503 {
                self.totals.busy.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(retry_after(&response)).await;
                continue;
            }
            if !status.is_success() {
                let text = response.text().await.unwrap_or_default();
                anyhow::bail!("POST {url}: {status}: {text}");
            }
            let answer: FeedAnswer = response
                .json()
                .await
                .with_context(|| format!("POST {url}: the answer is not the feed's JSON"))?;
            let before = self
                .totals
                .rejected
                .fetch_add(answer.rejected.len() as u64, Ordering::Relaxed);
            for rejected in answer
                .rejected
                .iter()
                .take(5usize.saturating_sub(before as usize))
            {
                self.bar
                    .println(format!("dfm demo: {} rejected: {rejected}", batch.agency));
            }
            self.totals
                .accepted
                .fetch_add(answer.accepted, Ordering::Relaxed);
            self.totals
                .duplicates
                .fetch_add(answer.duplicates, Ordering::Relaxed);
            self.bar.inc(batch.events);
            return Ok(());
        }
    }

    async fn send_chunk(&self, chunk: Chunk) -> anyhow::Result<()> {
        let (population, facts): (Vec<&Batch>, Vec<&Batch>) = chunk
            .batches
            .iter()
            .partition(|batch| batch.agency == "population");
        futures::future::try_join_all(facts.into_iter().map(|batch| self.send(batch))).await?;
        for batch in population {
            self.send(batch).await?;
        }
        Ok(())
    }
}

/// Generates the population on its own thread and sends it chunk by chunk.
async fn stream_population(
    feeder: &Feeder,
    options: GenerateOptions,
) -> anyhow::Result<GenerateSummary> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT * 2);
    let generator = std::thread::Builder::new()
        .name("demo-generate".to_owned())
        .spawn(move || -> std::io::Result<GenerateSummary> {
            let mut builder = ChunkBuilder::new(CHUNK_EVENTS);
            let stopped = || std::io::Error::other("the demo stopped reading");
            let summary = generate::generate(&options, &mut |line| {
                if let Some(chunk) = builder.push(line) {
                    sender.blocking_send(chunk).map_err(|_| stopped())?;
                }
                Ok(())
            })?;
            if let Some(chunk) = builder.finish() {
                sender.blocking_send(chunk).map_err(|_| stopped())?;
            }
            Ok(summary)
        })
        .context("cannot start the generator thread")?;
    let chunks = futures::stream::poll_fn(move |context| receiver.poll_recv(context));
    let sent = chunks
        .map(|chunk| feeder.send_chunk(chunk))
        .buffer_unordered(CHUNKS_IN_FLIGHT)
        .fold(Ok(()), |so_far: anyhow::Result<()>, result| async move {
            so_far.and(result)
        })
        .await;
    let generated = generator
        .join()
        .map_err(|_| anyhow::anyhow!("the generator thread panicked"))?;
    sent?;
    Ok(generated?)
}

// =============================================================================================
// The service, seen from outside

struct Admin {
    client: reqwest::Client,
    base_url: String,
}

impl Admin {
    async fn stats(&self) -> anyhow::Result<Value> {
        let response = self
            .client
            .get(format!("{}/v1/stats", self.base_url))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .context("GET /v1/stats")?;
        let status = response.status();
        anyhow::ensure!(status.is_success(), "GET /v1/stats: {status}");
        response.json().await.context("GET /v1/stats: not JSON")
    }

    async fn run_cycle(&self, month: &str) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}/v1/cycles/{month}/run", self.base_url))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .context("POST /v1/cycles/{month}/run")?;
        let status = response.status();
        anyhow::ensure!(
            status.is_success(),
            "POST /v1/cycles/{month}/run: {status}: {}",
            response.text().await.unwrap_or_default()
        );
        response
            .json()
            .await
            .context("POST /v1/cycles/{month}/run: not JSON")
    }
}

fn count(stats: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(stats, |value, key| &value[key])
        .as_u64()
        .unwrap_or(0)
}

fn state_count(stats: &Value, state: &str) -> u64 {
    count(stats, &["entitlements", state])
}

/// Whether the service has applied its log and has no payment or SMS in flight.
fn quiet(running: &Running) -> anyhow::Result<bool> {
    let store = &running.state.store;
    let outboxes_empty = store.payment_outbox()?.is_empty() && store.sms_outbox()?.is_empty();
    Ok(outboxes_empty && store.backlog()? == 0)
}

fn find_catalogue() -> PathBuf {
    let here = PathBuf::from("config/programs.toml");
    if here.is_file() {
        here
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/programs.toml")
    }
}

fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Prints a progress line to stderr when there is no progress bar to show it.
fn note(line: &str) {
    if !std::io::stderr().is_terminal() {
        eprintln!("dfm demo: {line}");
    }
}

async fn run_demo(families: u64, seed: u64, exit: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let today = chrono::Utc::now().date_naive();
    let options = GenerateOptions {
        families,
        seed,
        today,
    };

    // The store, the gateways and the service.
    let directory = tempfile::Builder::new()
        .prefix("dfm-demo-")
        .tempdir()
        .context("cannot create a temporary directory for the demo store")?;
    let store_path = directory.path().join("store");
    let sms = Arc::new(SmsSimulator::start(SmsSimulatorOptions::default())?);
    let bank = Arc::new(BankSimulator::start(BankSimulatorOptions::default())?);
    let catalogue = find_catalogue();
    let mut config = Config::for_local(store_path.clone(), &sms.url(), &bank.url(), catalogue);
    config.reply_window = REPLY_WINDOW;
    config.reminder_after = REMINDER_AFTER;
    config.batch_entries_max = DEMO_BATCH_ENTRIES;
    // The feed outruns the application: past `log_backlog_max` (500,000 by
    // default) the service answers 503 and the feeder waits and resends.
    let rules = actors::rules::Rules::load(&config.catalogue, config.year)
        .map_err(|e| anyhow::anyhow!("programs catalogue {}: {e}", config.catalogue.display()))?;
    let store = storage::Store::open(&store_path)
        .with_context(|| format!("cannot open the demo store in {}", store_path.display()))?;
    let running = service::start_with_store(
        config,
        Arc::new(actors::clock::SystemClock),
        Arc::new(store),
        rules,
        true,
    )
    .await?;
    let public_url = format!("http://{}", running.public_addr);
    let admin_url = format!("http://{}", running.admin_addr);
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(300))
        .build()
        .context("cannot build the HTTP client")?;
    let admin = Admin {
        client: client.clone(),
        base_url: admin_url.clone(),
    };

    // How much there is to send (generating is cheap: a dry run counts it).
    let expected_events = generate::generate(&options, &mut |_| Ok(()))?.events;

    // The citizens start answering as soon as the first offers go out.
    let citizens = Arc::new(Citizens {
        counts: Mutex::new(CitizenCounts::default()),
        seen: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
    });
    let (stop_citizens, stop_receiver) = tokio::sync::watch::channel(false);
    let answering = actix_rt::spawn(answer_offers(
        seed,
        sms.clone(),
        citizens.clone(),
        client.clone(),
        format!("{public_url}/v1/sms/inbound"),
        stop_receiver,
    ));

    // The feed.
    note(&format!(
        "streaming {} families ({} events) through {public_url}/v1/feeds",
        thousands(families),
        thousands(expected_events)
    ));
    let bar = ProgressBar::new(expected_events);
    bar.set_style(
        ProgressStyle::with_template(
            "feed    {bar:32.cyan/blue} {human_pos:>9}/{human_len} events  {rate:>8} events/s  {elapsed:>4}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{}", thousands(state.per_sec() as u64));
            },
        )
        .progress_chars("=> "),
    );
    let feeder = Feeder {
        client: client.clone(),
        base_url: public_url.clone(),
        limit: tokio::sync::Semaphore::new(FEED_REQUESTS_IN_FLIGHT),
        totals: FeedTotals::default(),
        bar: bar.clone(),
    };
    let generated = stream_population(&feeder, options).await?;
    bar.finish_and_clear();
    let feed_seconds = started.elapsed().as_secs_f64();
    let fed_through = running.state.store.last_seq();
    let totals = &feeder.totals;
    let accepted = totals.accepted.load(Ordering::Relaxed);
    let duplicates = totals.duplicates.load(Ordering::Relaxed);
    let rejected = totals.rejected.load(Ordering::Relaxed);
    note(&format!(
        "feed sent in {feed_seconds:.1} s: {} accepted, {} duplicates, {} rejected, {} answers 503",
        thousands(accepted),
        thousands(duplicates),
        thousands(rejected),
        thousands(totals.busy.load(Ordering::Relaxed))
    ));

    // Settle, in three steps: the feed applied; every answer final (then next
    // month's cycle runs, while the silent ones' window runs out); the silent
    // ones expired and the cycle paid.
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut timed_out: Vec<String> = Vec::new();
    let waiting = spinner("applying the feed");
    let next_month = storage::ids::Month::of(today).next().to_string();
    let purpose_suffix = format!(" {next_month}");
    let mut applied_seconds = None;
    let mut answered_seconds = None;
    let mut reached = 0;
    let mut quiet_polls = 0;
    loop {
        let store = &running.state.store;
        let applied = store.applied_through()?;
        if applied_seconds.is_none() && applied >= fed_through {
            applied_seconds = Some(started.elapsed().as_secs_f64());
            note(&format!(
                "feed applied after {:.1} s",
                started.elapsed().as_secs_f64()
            ));
        }
        let stats = admin.stats().await?;
        let counts = citizens.counts();
        let (offered, consented) = (
            state_count(&stats, "offered"),
            state_count(&stats, "consented"),
        );
        let replies_pending = citizens.in_flight.load(Ordering::SeqCst);
        let unseen = message_count(&sms).await > citizens.seen.load(Ordering::SeqCst);
        let paid = count(&stats, &["payments_succeeded"]);
        let answered = counts.yes + counts.wallet + counts.no;
        let calm = applied_seconds.is_some()
            && replies_pending == 0
            && !unseen
            && consented == 0
            && quiet(&running)?;
        if applied_seconds.is_none() {
            waiting.set_message(format!(
                "applying the feed: {} of {} log entries; {} families · offers {} · answered {} · payments {}",
                thousands(applied),
                thousands(fed_through),
                thousands(count(&stats, &["families"])),
                thousands(counts.offers),
                thousands(answered),
                thousands(paid)
            ));
        } else {
            let cycle = if answered_seconds.is_some() {
                format!(
                    " · {next_month} cycle: {} payments",
                    thousands(payments_for(&bank, &purpose_suffix).await as u64)
                )
            } else {
                String::new()
            };
            waiting.set_message(format!(
                "offers {} · answered {} · payments {} · consents in payment {} · offers open {} (silent ones expire after {} s){cycle}",
                thousands(counts.offers),
                thousands(answered),
                thousands(paid),
                thousands(consented),
                thousands(offered),
                REPLY_WINDOW.as_secs()
            ));
        }
        if calm && answered_seconds.is_none() {
            // Every consent so far is paid: monthly benefits go on next month.
            answered_seconds = Some(started.elapsed().as_secs_f64());
            note(&format!(
                "answers settled after {:.1} s; running the {next_month} payment cycle",
                started.elapsed().as_secs_f64()
            ));
            let cycle = admin.run_cycle(&next_month).await?;
            reached = cycle["families"].as_u64().unwrap_or(0);
            quiet_polls = 0;
        } else if answered_seconds.is_some() {
            // The cycle re-evaluates families: a new offer gets its answer too.
            quiet_polls = if calm && offered == 0 {
                quiet_polls + 1
            } else {
                0
            };
            if quiet_polls >= 3 {
                break;
            }
        }
        if Instant::now() >= deadline {
            timed_out.push(format!(
                "gave up waiting after {} s: applied {} of {} log entries, {} consents not yet paid, {} offers open, {} replies in flight{}",
                SETTLE_TIMEOUT.as_secs(),
                thousands(applied),
                thousands(store.last_seq()),
                thousands(consented),
                thousands(offered),
                thousands(replies_pending as u64),
                if answered_seconds.is_none() { "; the monthly cycle was not run" } else { "" }
            ));
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    waiting.finish_and_clear();
    let settled_seconds = started.elapsed().as_secs_f64();
    note(&format!("settled after {settled_seconds:.1} s"));
    let _ = stop_citizens.send(true);
    let _ = answering.await;

    // The summary.
    let stats = admin.stats().await?;
    let counts = citizens.counts();
    let payments = bank.payments();
    let cycle_count = payments_for(&bank, &purpose_suffix).await;
    let seconds = started.elapsed().as_secs_f64();
    print!(
        "{}",
        summary(&Summary {
            families: generated.families,
            citizens: generated.citizens,
            events: generated.events,
            accepted,
            duplicates,
            rejected,
            seconds,
            feed_seconds,
            applied_seconds: applied_seconds.unwrap_or(settled_seconds),
            answered_seconds: answered_seconds.unwrap_or(settled_seconds),
            settled_seconds,
            stats: &stats,
            counts: &counts,
            payments: &payments,
            next_month: &next_month,
            reached,
            cycle_payments: cycle_count,
            admin_url: &admin_url,
            timed_out: &timed_out,
        })
    );
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    if !exit {
        println!("Press Ctrl-C to stop.");
        let _ = std::io::stdout().flush();
        wait_for_signal().await;
        eprintln!("dfm demo: stopping");
    }
    // Idle keep-alive connections would hold up the servers' graceful stop.
    drop((feeder, admin, client));
    running.stop().await?;
    sms.stop().await;
    bank.stop().await;
    drop(directory);
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut terminate), Ok(mut interrupt)) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

// =============================================================================================
// The summary

struct Summary<'a> {
    families: u64,
    citizens: u64,
    events: u64,
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    seconds: f64,
    feed_seconds: f64,
    applied_seconds: f64,
    answered_seconds: f64,
    settled_seconds: f64,
    stats: &'a Value,
    counts: &'a CitizenCounts,
    payments: &'a [crate::simulators::SimPayment],
    next_month: &'a str,
    reached: u64,
    cycle_payments: usize,
    admin_url: &'a str,
    timed_out: &'a [String],
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

/// `"1234567.12"` → `"1,234,567.12"`.
fn money(text: &str) -> String {
    let (whole, cents) = text.split_once('.').unwrap_or((text, "00"));
    match whole.parse::<u64>() {
        Ok(whole) => format!("{}.{cents}", thousands(whole)),
        Err(_) => text.to_owned(),
    }
}

/// A decimal KZT string in tiyn (for sorting and sums).
fn tiyn(text: &str) -> u64 {
    let (whole, cents) = text.split_once('.').unwrap_or((text, "0"));
    let cents = format!("{cents:0<2}");
    whole.parse::<u64>().unwrap_or(0) * 100 + cents[..2].parse::<u64>().unwrap_or(0)
}

fn summary(s: &Summary<'_>) -> String {
    use std::fmt::Write as _;
    let stats = s.stats;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "dfm demo: {} families, {} citizens, {} events ({} rejected, {} duplicates) in {:.1} s",
        thousands(s.families),
        thousands(s.citizens),
        thousands(s.events),
        thousands(s.rejected),
        thousands(s.duplicates),
        s.seconds
    );
    let _ = writeln!(
        out,
        "Timeline:           feed sent {:.1} s ({} events/s) · applied {:.1} s · answers final {:.1} s · all settled {:.1} s",
        s.feed_seconds,
        thousands((s.accepted as f64 / s.feed_seconds.max(1e-9)) as u64),
        s.applied_seconds,
        s.answered_seconds,
        s.settled_seconds
    );
    let families_in_store = count(stats, &["families"]);
    let mut line = format!(
        "In the store:       {} families, {} living citizens",
        thousands(families_in_store),
        thousands(count(stats, &["citizens"]))
    );
    if families_in_store != s.families {
        let _ = write!(line, "  (generated {})", thousands(s.families));
    }
    let _ = writeln!(out, "{line}");
    let levels: Vec<String> = ["A", "B", "C", "D", "E"]
        .iter()
        .map(|level| format!("{level} {}", thousands(count(stats, &["by_level", level]))))
        .collect();
    let _ = writeln!(out, "Families by level:  {}", levels.join("  "));
    let c = s.counts;
    let _ = writeln!(
        out,
        "Offers {} · consents {} (wallet {}) · refusals {} · silent {} → expired {} · no phone {}",
        thousands(c.offers),
        thousands(c.yes + c.wallet),
        thousands(c.wallet),
        thousands(c.no),
        thousands(c.silent),
        thousands(state_count(stats, "expired")),
        thousands(state_count(stats, "no_contact"))
    );
    let states: Vec<String> = stats["entitlements"]
        .as_object()
        .map(|states| {
            states
                .iter()
                .filter_map(|(state, n)| {
                    let n = n.as_u64().unwrap_or(0);
                    (n > 0).then(|| format!("{state} {}", thousands(n)))
                })
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(out, "Entitlements:       {}", states.join(" · "));
    let mut outcomes: Vec<String> = c
        .outcomes
        .iter()
        .map(|(outcome, n)| format!("{outcome} {}", thousands(*n)))
        .collect();
    if c.failed > 0 {
        outcomes.push(format!("failed {}", thousands(c.failed)));
    }
    if c.no_code > 0 {
        outcomes.push(format!("offers without a code {}", thousands(c.no_code)));
    }
    let _ = writeln!(
        out,
        "Replies (SMS in):   {}",
        if outcomes.is_empty() {
            "none".to_owned()
        } else {
            outcomes.join(" · ")
        }
    );
    let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
    // Program → (succeeded payments, tiyn paid).
    let mut by_program: HashMap<String, (u64, u64)> = HashMap::new();
    for payment in s.payments {
        *by_status.entry(payment.status.as_str()).or_insert(0) += 1;
        if payment.status == "SUCC" {
            let program = payment
                .purpose
                .split_whitespace()
                .next()
                .unwrap_or("?")
                .to_owned();
            let entry = by_program.entry(program).or_insert((0, 0));
            entry.0 += 1;
            entry.1 += tiyn(&payment.amount);
        }
    }
    let failed = by_status.get("RJCT").copied().unwrap_or(0);
    // The contract: one benefit, one period, one recipient, at most one SUCC.
    let mut succeeded: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
    for payment in s.payments.iter().filter(|p| p.status == "SUCC") {
        succeeded
            .entry((payment.purpose.as_str(), payment.payee_fa.as_str()))
            .or_default()
            .push(payment.reference_id.as_str());
    }
    let mut twice: Vec<Vec<&str>> = succeeded
        .into_values()
        .filter(|references| references.len() > 1)
        .collect();
    twice.sort();
    let _ = writeln!(
        out,
        "Payments {} succeeded · {} failed · {} waiting for an account · KZT paid {}",
        thousands(count(stats, &["payments_succeeded"])),
        thousands(failed),
        thousands(state_count(stats, "payment_failed")),
        money(stats["paid_total"].as_str().unwrap_or("0.00"))
    );
    let mut programs: Vec<(String, u64, u64)> = by_program
        .into_iter()
        .map(|(program, (n, paid))| (program, n, paid))
        .collect();
    // The service's own sum per program where it has one.
    for (program, _, paid) in &mut programs {
        if let Some(text) = stats["paid_by_program"][program.as_str()].as_str() {
            *paid = tiyn(text);
        }
    }
    programs.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    let width = programs.iter().map(|p| p.0.len()).max().unwrap_or(0);
    for (index, (program, n, paid)) in programs.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {} {program:<width$} {:>7} payments {:>18} KZT",
            if index == 0 {
                "by program:"
            } else {
                "           "
            },
            thousands(*n),
            money(&format!("{}.{:02}", paid / 100, paid % 100)),
        );
    }
    let _ = writeln!(
        out,
        "Monthly cycle {}: {} families with monthly benefits reached, {} payments for {}",
        s.next_month,
        thousands(s.reached),
        thousands(s.cycle_payments as u64),
        s.next_month
    );
    let _ = writeln!(
        out,
        "Consent window shortened for the demo: reminder after {} s, expiry after {} s (production: 48h / 72h)",
        REMINDER_AFTER.as_secs(),
        REPLY_WINDOW.as_secs()
    );
    let bank_succeeded = by_status.get("SUCC").copied().unwrap_or(0);
    if bank_succeeded != count(stats, &["payments_succeeded"]) {
        let _ = writeln!(
            out,
            "Check: the bank holds {} succeeded payments, the service counts {}",
            thousands(bank_succeeded),
            thousands(count(stats, &["payments_succeeded"]))
        );
    }
    if !twice.is_empty() {
        let _ = writeln!(
            out,
            "Check: {} program-periods paid twice to the same payee, e.g. {}",
            thousands(twice.len() as u64),
            twice
                .iter()
                .take(3)
                .map(|references| references.join(" + "))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for line in s.timed_out {
        let _ = writeln!(out, "Timeout: {line}");
    }
    let _ = writeln!(
        out,
        "Dashboard: {}/  (operator token: {OPERATOR_TOKEN}, viewer: viewer-secret, auditor: auditor-secret)",
        s.admin_url
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_deterministic_and_roughly_in_the_intended_shares() {
        let mut shares: HashMap<&str, u32> = HashMap::new();
        for index in 0..20_000 {
            let reference = format!("F{index:08}-tsa-0-offer-1");
            let (answer, delay) = choose(7, &reference);
            assert_eq!((answer, delay), choose(7, &reference));
            assert!(delay <= Duration::from_millis(REPLY_DELAY_MS_MAX));
            let name = match answer {
                Answer::Yes => "yes",
                Answer::Wallet => "wallet",
                Answer::No => "no",
                Answer::Silent => "silent",
            };
            *shares.entry(name).or_insert(0) += 1;
        }
        for (name, percent) in [
            ("yes", 75.0),
            ("wallet", 10.0),
            ("no", 7.0),
            ("silent", 8.0),
        ] {
            let got = f64::from(shares[name]) / 200.0;
            assert!(
                (got - percent).abs() < 1.5,
                "{name}: {got}% (want ~{percent}%)"
            );
        }
    }

    #[test]
    fn the_code_is_read_from_the_offer_text() {
        let text = "1414: Келісу: ИӘ #0421, ӘМИЯН #0421. Согласие: ДА #0421";
        assert_eq!(offer_code(text), Some("0421"));
        assert_eq!(offer_code("no code # here #12 #12345"), None);
        assert!(is_offer("F00000001-tsa-3-offer-1"));
        assert!(!is_offer("help-demo-reply-F00000001-tsa-3-offer-1"));
        assert!(!is_offer("F00000001-tsa-3-reminder-1"));
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(money("1234567.12"), "1,234,567.12");
        assert_eq!(tiyn("16446.25"), 1_644_625);
    }
}
