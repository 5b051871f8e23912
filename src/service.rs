//! Wiring: opens the store, loads the rules, starts the arbiters, the actors,
//! the dispatcher, the timers and both HTTP ports, and stops them in order.
//!
//! Start-up resumes everything in flight from indexes of pending work (the log
//! after the applied watermark, the SMS and payment outboxes, the timers tree),
//! never from a scan of all families.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ::actors::backoff::Backoff;
use ::actors::bank::{self, BankConfig, BankGateway};
use ::actors::clock::Clock;
use ::actors::dispatcher::{Directory, Dispatcher, DispatcherConfig};
use ::actors::durability::GroupCommit;
use ::actors::family::FamilyEnvironment;
use ::actors::inbox::Inbox;
use ::actors::metrics::Metrics;
use ::actors::notifier::{self, Notifier, NotifierConfig};
use ::actors::rules::Rules;
use actix::{Addr, Arbiter};
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use storage::store::Filter;
use storage::Store;
use tokio::sync::{watch, Notify};

use crate::config::Config;
use crate::http;

/// What the HTTP handlers share.
pub struct AppState {
    /// As loaded at start; its `credentials` are those of the start, and the
    /// current ones (SIGHUP) are in `credentials` below.
    pub config: Config,
    /// Agencies, operators and the SMS gateway's token, as last loaded (at
    /// start, then on each SIGHUP).
    pub credentials: RwLock<Arc<crate::config::Credentials>>,
    pub store: Arc<Store>,
    pub durability: GroupCommit,
    pub inbox: Inbox,
    pub directory: Arc<Directory>,
    pub metrics: Arc<Metrics>,
    pub rules: Arc<RwLock<Arc<Rules>>>,
    pub clock: Arc<dyn Clock>,
    pub notifier: Addr<Notifier>,
    /// The catalogue's text as loaded, the base that what-if patches change.
    pub catalogue_text: RwLock<String>,
    /// Kept catalogues (the store's, by version; the one in force) as parsed.
    pub parsed_catalogues: ::actors::rules::ParsedCatalogues,
    pub agency_backlog: crate::http::public::AgencyBacklog,
}

impl AppState {
    pub fn credentials(&self) -> Arc<crate::config::Credentials> {
        self.credentials
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes the agencies, operators and SMS token of `config` (the same file,
    /// read again), and the TLS certificate if both ports speak TLS; its other
    /// keys take effect at the next start.
    pub fn reload_credentials(&self, config: &Config) {
        // Who has a certificate name, and whether the port that serves them
        // asks for certificates (the authorities are read only at start).
        let tls = self.config.tls.as_ref();
        let public = (
            "server.tls_client_ca",
            tls.is_some_and(crate::tls::ServerTls::asks_client_certificates),
        );
        let admin = (
            "server.tls_operator_ca",
            tls.is_some_and(crate::tls::ServerTls::asks_operator_certificates),
        );
        let credentials = &config.credentials;
        let named = (credentials.agencies.iter())
            .filter(|agency| agency.client_cert_name.is_some())
            .map(|agency| (format!("agency {}", agency.name), public))
            .chain(
                (credentials.sms_callback_cert_name.is_some())
                    .then(|| ("the SMS gateway".to_owned(), public)),
            )
            .chain(
                (credentials.operators.iter())
                    .filter(|operator| operator.client_cert_name.is_some())
                    .map(|operator| (format!("operator {}", operator.name), admin)),
            );
        for (who, (authorities, asked)) in named {
            if !asked {
                tracing::warn!(
                    %who,
                    authorities,
                    "SIGHUP: a client certificate name is set, but this serve was started without these authorities: its requests get 403 until a restart"
                );
            }
        }
        *self.credentials.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(config.credentials.clone());
        if let (Some(running), Some(read)) = (&self.config.tls, &config.tls) {
            running.take_certificate(read);
        }
    }

    pub fn rules(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

pub struct Running {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub state: web::Data<AppState>,
    servers: Vec<actix_web::dev::ServerHandle>,
    shutdown: watch::Sender<bool>,
    dispatcher: tokio::sync::oneshot::Receiver<()>,
    dispatcher_arbiter: Arbiter,
    timers: tokio::task::JoinHandle<()>,
    packer: tokio::task::JoinHandle<()>,
    arbiters: Vec<Arbiter>,
}

/// Fills the in-memory scoring table ([`storage::scoring_table`]), which
/// what-ifs and re-scores scan (503 until it is built): from the table the last
/// clean stop saved, or else from every stored family.
fn fill_scoring_table(store: &Store, saved: Option<storage::store::SavedTable>) {
    let started = std::time::Instant::now();
    let table = store.enable_scoring_table();
    if let Some(saved) = saved {
        match saved.load_into(&table) {
            Ok(families) => {
                tracing::info!(
                    families,
                    seconds = started.elapsed().as_secs_f64(),
                    "loaded the scoring table that the last clean stop or load saved"
                );
                return;
            }
            Err(error) => tracing::warn!(
                %error,
                "the saved scoring table cannot be read; building it from the records"
            ),
        }
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    match store.build_scoring_table(threads) {
        Ok(_) if store.complete_scoring_table().is_none() => {
            tracing::info!("the service stops: building the scoring table was given up")
        }
        Ok(families) => {
            let (_, bytes) = table.size();
            tracing::info!(
                families,
                megabytes = bytes / 1_000_000,
                seconds = started.elapsed().as_secs_f64(),
                "the scoring table is built: what-ifs and re-scores read it"
            );
        }
        Err(error) => tracing::error!(
            %error,
            "building the scoring table failed; what-ifs and rules reloads answer 503 until a restart"
        ),
    }
}

/// Fills one of the store's key filters ([`storage::key_filter`]) from its
/// tree: the phones of the open consent requests, after which an offer to a
/// phone with none reads no request, or the packed feed ids, after which a new
/// event's id reads no bucket.
fn fill_filter(store: &Store, which: Filter) {
    let what = which.what();
    let until = match which {
        Filter::Phones => "every offer reads the requests",
        Filter::Ids => "every event's id reads its bucket",
    };
    let started = std::time::Instant::now();
    match store.fill_filter(which) {
        Ok(true) => tracing::info!(seconds = started.elapsed().as_secs_f64(), "read {what}"),
        Ok(false) => {}
        Err(error) => tracing::error!(%error, "reading {what} failed; {until} until a restart"),
    }
}

/// How often the packer looks at how many ids wait; how long it waits after a
/// pass that failed.
const PACK_CHECK: Duration = Duration::from_secs(1);
const PACK_RETRY: Duration = Duration::from_secs(60);

/// Ids a store written before `feed_ids` kept as keys of their own, moved per pass.
const PACK_LEGACY_MAX: usize = 1_000_000;

/// Moves the ids the feed has taken into their buckets ([`storage::feed_ids`])
/// whenever `pack_at` of them wait, and at start whatever a store written
/// before the buckets holds: a pass at a time, off the actors' threads, until
/// shutdown.
async fn pack_feed_ids(store: Arc<Store>, pack_at: usize, mut shutdown: watch::Receiver<bool>) {
    loop {
        let mut wait = PACK_CHECK;
        if store.legacy_feed_ids_left() || store.unpacked_feed_ids() >= pack_at as u64 {
            let started = std::time::Instant::now();
            let pass_store = store.clone();
            let pass =
                tokio::task::spawn_blocking(move || pass_store.pack_feed_ids(PACK_LEGACY_MAX));
            match pass.await {
                Ok(Ok(moved)) => tracing::info!(
                    ids = moved,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "packed the feed's ids into buckets"
                ),
                failed => {
                    let error = match failed {
                        Ok(Err(error)) => error.to_string(),
                        _ => "the pass panicked".to_owned(),
                    };
                    tracing::error!(%error, "packing the feed's ids failed; trying again in a minute");
                    wait = PACK_RETRY;
                }
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Starts the whole service on the current actix system.
pub async fn start(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Running> {
    start_with(config, clock, true).await
}

/// `outbound = false` keeps SMS and payments in their outboxes (offline load).
pub async fn start_with(
    config: Config,
    clock: Arc<dyn Clock>,
    outbound: bool,
) -> anyhow::Result<Running> {
    let (rules, store) = config.open_rules_and_store()?;
    start_with_store(config, clock, store, rules, outbound).await
}

pub async fn start_with_store(
    config: Config,
    clock: Arc<dyn Clock>,
    store: Arc<Store>,
    rules: Rules,
    outbound: bool,
) -> anyhow::Result<Running> {
    if store.load_unfinished()? {
        anyhow::bail!(
            "a bulk load of this store began and did not finish; run the same `dfm load` again before serving"
        );
    }
    if config.scoring_table {
        store.enable_scoring_table().allow_build();
        // The saved table's mark is taken now, before anything is applied; its
        // families are read in the background like a build, and families
        // written meanwhile keep their newer form.
        let saved = store.take_saved_scoring_table().unwrap_or_else(|error| {
            tracing::warn!(%error, "the saved scoring table cannot be read; building it from the records");
            None
        });
        let store = store.clone();
        std::thread::Builder::new()
            .name("dfm-scoring-table".to_owned())
            .spawn(move || fill_scoring_table(&store, saved))
            .context("cannot start filling the scoring table")?;
    }
    // A clean stop saved the filters: reading them back spares reading their
    // trees (about 40 s and 5.9 GB of disk reads at 6 million families).
    let saved = store
        .take_saved_key_filters()
        .context("reading the key filters the last clean stop saved")?;
    if !saved.is_empty() {
        tracing::info!(filters = ?saved, "read the key filters the last clean stop saved");
    }
    for which in Filter::ALL
        .into_iter()
        .filter(|which| !saved.contains(which))
    {
        let store = store.clone();
        let name = match which {
            Filter::Phones => "dfm-phone-filter",
            Filter::Ids => "dfm-id-filter",
        };
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || fill_filter(&store, which))
            .with_context(|| format!("cannot start {name}"))?;
    }
    let agency_backlog = http::public::AgencyBacklog::from_log(&store, store.applied_through()?)
        .context("counting each agency's unapplied events in the log")?;
    let metrics = Arc::new(Metrics::default());
    let wake = Arc::new(Notify::new());
    let inbox = Inbox::new(store.clone(), wake.clone());
    let durability = GroupCommit::start(store.clone(), metrics.clone());
    let backoff = |gateway: &crate::config::GatewayConfig| Backoff {
        delay_ms_min: gateway.retry_delay_ms_min,
        delay_ms_max: gateway.retry_delay_ms_max,
    };
    let notifier = Notifier::start_with(
        NotifierConfig {
            url: config.sms.url.clone(),
            timeout: config.sms.timeout,
            concurrency: config.sms.concurrency,
            mailbox_capacity: 1024,
            backoff: backoff(&config.sms),
            authorities: config.sms.authorities.clone(),
        },
        store.clone(),
        metrics.clone(),
    );
    let bank = BankGateway::start_with(
        BankConfig {
            url: config.bank.url.clone(),
            payer_fa: config.payer_fa.clone(),
            timeout: config.bank.timeout,
            concurrency: config.bank.concurrency,
            mailbox_capacity: 1024,
            backoff: backoff(&config.bank),
            sender_id: "dfm".to_owned(),
            authorities: config.bank.authorities.clone(),
        },
        store.clone(),
        durability.clone(),
        inbox.clone(),
        metrics.clone(),
    );
    let rules = Arc::new(RwLock::new(Arc::new(rules)));
    let settings = config.consent_settings()?;
    let environment = Arc::new(FamilyEnvironment {
        store: store.clone(),
        rules: rules.clone(),
        settings,
        clock: clock.clone(),
        metrics: metrics.clone(),
        notifier: notifier.clone(),
        bank: bank.clone(),
        outbound,
    });
    let arbiters: Vec<Arbiter> = (0..config.arbiters).map(|_| Arbiter::new()).collect();
    let directory = Arc::new(Directory::new(
        arbiters.iter().map(Arbiter::handle).collect(),
        environment,
        config.active_families_max,
    ));
    let (shutdown, shutdown_receiver) = watch::channel(false);
    let dispatcher = Dispatcher::new(
        store.clone(),
        directory.clone(),
        metrics.clone(),
        DispatcherConfig {
            batch_entries_max: config.batch_entries_max,
            active_families_max: config.active_families_max,
            idle_after: config.idle_after,
            concurrency: config.dispatch_concurrency,
            poison_tries_max: config.poison_tries_max,
        },
        wake,
    );
    // The dispatcher gets a thread of its own: it is the one sequential step.
    let dispatcher_arbiter = Arbiter::new();
    let (dispatcher_done, dispatcher_finished) = tokio::sync::oneshot::channel();
    dispatcher_arbiter.spawn(dispatcher.run(shutdown_receiver.clone(), dispatcher_done));
    let packer = actix_rt::spawn(pack_feed_ids(
        store.clone(),
        config.feed_ids_pack_at,
        shutdown_receiver.clone(),
    ));
    let timers = actix_rt::spawn(::actors::timers::run(
        inbox.clone(),
        clock.clone(),
        config.timer_tick,
        config.cycle_day,
        shutdown_receiver,
    ));
    if outbound {
        // Resume what was in flight when the process last stopped.
        notifier.do_send(notifier::ResumeOutbox);
        bank.do_send(bank::ResumeOutbox);
    }

    let state = web::Data::new(AppState {
        credentials: RwLock::new(Arc::new(config.credentials.clone())),
        config: config.clone(),
        store,
        durability,
        inbox,
        directory,
        metrics,
        rules,
        clock,
        notifier,
        catalogue_text: RwLock::new(std::fs::read_to_string(&config.catalogue).unwrap_or_default()),
        parsed_catalogues: Default::default(),
        agency_backlog,
    });
    let public_state = state.clone();
    let body_limit = config.body_bytes_max;
    let public = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(http::trace_request))
            .app_data(public_state.clone())
            .app_data(web::PayloadConfig::new(body_limit))
            .configure(http::public::routes)
    })
    .workers(config.workers)
    .disable_signals()
    .shutdown_timeout(10)
    .on_connect(crate::tls::keep_client_certificate);
    let public = match &config.tls {
        Some(tls) => public.bind_rustls_0_23(config.public_addr, (*tls.public).clone()),
        None => public.bind(config.public_addr),
    }
    .with_context(|| format!("server.public_addr: cannot bind {}", config.public_addr))?;
    let public_addr = public.addrs()[0];
    let public = public.run();
    let admin_state = state.clone();
    let admin = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(http::trace_request))
            .app_data(admin_state.clone())
            .app_data(web::PayloadConfig::new(1024 * 1024))
            .configure(http::admin::routes)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .on_connect(crate::tls::keep_client_certificate);
    let admin = match &config.tls {
        Some(tls) => admin.bind_rustls_0_23(config.admin_addr, (*tls.admin).clone()),
        None => admin.bind(config.admin_addr),
    }
    .with_context(|| format!("server.admin_addr: cannot bind {}", config.admin_addr))?;
    let admin_addr = admin.addrs()[0];
    let admin = admin.run();
    let servers = vec![public.handle(), admin.handle()];
    actix_rt::spawn(public);
    actix_rt::spawn(admin);
    Ok(Running {
        public_addr,
        admin_addr,
        state,
        servers,
        shutdown,
        dispatcher: dispatcher_finished,
        dispatcher_arbiter,
        timers,
        packer,
        arbiters,
    })
}

impl Running {
    /// Stops taking work, drains what was accepted, flushes and stops. The
    /// actors' threads have ended when it returns.
    pub async fn stop(self) -> anyhow::Result<()> {
        for server in &self.servers {
            server.stop(true).await;
        }
        let _ = self.shutdown.send(true);
        // A build of the scoring table still reading records gives up, so that
        // the store can be closed.
        if let Some(table) = self.state.store.scoring_table() {
            table.abandon_build();
        }
        self.state.store.abandon_filters();
        let drained = matches!(
            tokio::time::timeout(Duration::from_secs(60), self.dispatcher).await,
            Ok(Ok(()))
        );
        let _ = self.timers.await;
        let _ = self.packer.await;
        self.state.store.flush().context("flushing the store")?;
        if drained {
            // Nothing writes families any more: the next start reads the
            // table and the filters instead of every record and two trees.
            match self.state.store.save_key_filters() {
                Ok(saved) => {
                    tracing::info!(filters = ?saved, "saved the key filters for the next start")
                }
                Err(error) => {
                    tracing::warn!(%error, "the key filters were not saved; the next start reads their trees")
                }
            }
            let started = std::time::Instant::now();
            match self.state.store.save_scoring_table() {
                Ok(true) => tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "saved the scoring table for the next start"
                ),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "the scoring table was not saved; the next start builds it from the records")
                }
            }
        }
        for arbiter in std::iter::once(self.dispatcher_arbiter).chain(self.arbiters) {
            arbiter.stop();
            let _ = arbiter.join();
        }
        Ok(())
    }
}

/// How long [`close_with_snapshot`] waits for the last user of the store to let go.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// Closes the store and opens it once more, so that the next start is quick.
///
/// sled 0.34 writes its recovery snapshot only when it opens a store; until then
/// an opening replays everything written since the last one (17 s after a day's
/// feed and a re-score at 6 million families). Opening here pays that at the
/// stop. Gives up, with a warning, if something still holds the store after
/// [`CLOSE_WAIT`]: two openings of one store in a process would corrupt it.
pub fn close_with_snapshot(mut store: Arc<Store>, path: &Path) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + CLOSE_WAIT;
    loop {
        match Arc::try_unwrap(store) {
            Ok(only) => {
                drop(only);
                break;
            }
            Err(shared) if std::time::Instant::now() < deadline => {
                store = shared;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => {
                tracing::warn!(
                    "the store is still in use; the next start replays this run's writes"
                );
                return Ok(());
            }
        }
    }
    let started = std::time::Instant::now();
    drop(Store::open(path).context("reopening the store to write sled's snapshot")?);
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "wrote sled's recovery snapshot"
    );
    Ok(())
}
