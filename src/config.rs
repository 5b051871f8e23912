//! The service's configuration: the contract's TOML keys and dfm's own, parsed
//! strictly. An unknown key, a missing key or a bad value is refused at start-up
//! with the key's name and the problem ("consent.reply_window: invalid duration").
//! Every limit of the service is here or a named constant next to its queue (see
//! ARCHITECTURE.md, "Limits").

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

/// The client certificate name a key gives: a DNS name or an IP address,
/// which needs the authorities that sign such certificates (the key
/// `authorities`, which `signed` says is set).
fn certificate_name(
    key: &str,
    name: Option<&str>,
    authorities: &str,
    signed: bool,
) -> Result<Option<rustls::pki_types::ServerName<'static>>, ConfigError> {
    let Some(name) = name else {
        return Ok(None);
    };
    if !signed {
        return Err(invalid(
            key,
            format!("needs {authorities}, the authorities that sign these client certificates"),
        ));
    }
    rustls::pki_types::ServerName::try_from(name.to_owned())
        .map(Some)
        .map_err(|_| invalid(key, format!("{name:?} is not a DNS name or an IP address")))
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    storage: RawStorage,
    sms: RawSms,
    bank: RawBank,
    consent: RawConsent,
    #[serde(default)]
    agency: Vec<RawAgency>,
    #[serde(default)]
    operator: Vec<RawOperator>,
    programs: RawPrograms,
    #[serde(default)]
    actors: RawActors,
    #[serde(default)]
    cycle: RawCycle,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    public_addr: String,
    admin_addr: String,
    #[serde(default = "default_body_bytes_max")]
    body_bytes_max: usize,
    #[serde(default = "default_events_per_request_max")]
    events_per_request_max: usize,
    #[serde(default = "default_log_backlog_max")]
    log_backlog_max: u64,
    agency_backlog_max: Option<u64>,
    #[serde(default = "default_workers")]
    workers: usize,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    tls_operator_ca: Option<PathBuf>,
}

fn default_body_bytes_max() -> usize {
    16 * 1024 * 1024
}
fn default_events_per_request_max() -> usize {
    20_000
}
fn default_log_backlog_max() -> u64 {
    500_000
}
fn default_workers() -> usize {
    2
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    path: PathBuf,
    #[serde(default = "default_cache_mb")]
    cache_mb: usize,
    #[serde(default = "default_feed_ids_pack_at")]
    feed_ids_pack_at: usize,
    #[serde(default = "default_scoring_table")]
    scoring_table: bool,
}

fn default_scoring_table() -> bool {
    true
}

fn default_feed_ids_pack_at() -> usize {
    storage::feed_ids::DEFAULT_PACK_AT
}

fn default_cache_mb() -> usize {
    storage::store::DEFAULT_CACHE_BYTES / (1024 * 1024)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSms {
    url: String,
    callback_token: String,
    #[serde(default = "default_timeout")]
    timeout: String,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
    #[serde(default = "default_retry_min")]
    retry_delay_ms_min: u64,
    #[serde(default = "default_retry_max")]
    retry_delay_ms_max: u64,
    ca_cert: Option<PathBuf>,
    callback_cert_name: Option<String>,
}

fn default_timeout() -> String {
    "5s".to_owned()
}
fn default_concurrency() -> usize {
    64
}
fn default_retry_min() -> u64 {
    50
}
fn default_retry_max() -> u64 {
    30_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBank {
    url: String,
    payer_fa: String,
    #[serde(default = "default_timeout")]
    timeout: String,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
    #[serde(default = "default_retry_min")]
    retry_delay_ms_min: u64,
    #[serde(default = "default_retry_max")]
    retry_delay_ms_max: u64,
    ca_cert: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsent {
    reply_window: String,
    reminder_after: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgency {
    name: String,
    token: String,
    types: Option<Vec<String>>,
    client_cert_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    name: String,
    role: Role,
    token: String,
    client_cert_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrograms {
    catalogue: PathBuf,
    year: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActors {
    #[serde(default = "default_active_max")]
    active_families_max: usize,
    #[serde(default = "default_idle_after")]
    idle_after: String,
    #[serde(default = "default_batch")]
    batch_entries_max: usize,
    #[serde(default = "default_dispatch_concurrency")]
    dispatch_concurrency: usize,
    #[serde(default = "default_poison")]
    poison_tries_max: u32,
    #[serde(default)]
    arbiters: Option<usize>,
}

impl Default for RawActors {
    fn default() -> Self {
        RawActors {
            active_families_max: default_active_max(),
            idle_after: default_idle_after(),
            batch_entries_max: default_batch(),
            dispatch_concurrency: default_dispatch_concurrency(),
            poison_tries_max: default_poison(),
            arbiters: None,
        }
    }
}

fn default_active_max() -> usize {
    ::actors::dispatcher::ACTIVE_FAMILIES_MAX_DEFAULT
}
fn default_idle_after() -> String {
    "5m".to_owned()
}
fn default_batch() -> usize {
    2_048
}
fn default_dispatch_concurrency() -> usize {
    256
}
fn default_poison() -> u32 {
    3
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCycle {
    #[serde(default = "default_cycle_day")]
    day: u32,
    #[serde(default = "default_timer_tick")]
    timer_tick: String,
}

impl Default for RawCycle {
    fn default() -> Self {
        RawCycle {
            day: default_cycle_day(),
            timer_tick: default_timer_tick(),
        }
    }
}

fn default_cycle_day() -> u32 {
    1
}
fn default_timer_tick() -> String {
    "1s".to_owned()
}

#[derive(Debug, Clone)]
pub struct Agency {
    pub name: String,
    pub token: String,
    pub types: BTreeSet<String>,
    /// The agency's requests must also come over a connection whose client
    /// certificate (signed by `server.tls_client_ca`) is for this name.
    pub client_cert_name: Option<rustls::pki_types::ServerName<'static>>,
}

/// Who may call the service: what a running `serve` takes again from its
/// configuration file on SIGHUP, without a restart.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub agencies: Vec<Agency>,
    pub operators: Vec<Operator>,
    pub sms_callback_token: String,
    /// The SMS gateway's callbacks must also come over a connection whose
    /// client certificate is for this name (`sms.callback_cert_name`).
    pub sms_callback_cert_name: Option<rustls::pki_types::ServerName<'static>>,
}

#[derive(Debug, Clone)]
pub struct Operator {
    pub name: String,
    pub role: Role,
    pub token: String,
    /// The operator's requests must also come over a connection whose client
    /// certificate (signed by `server.tls_operator_ca`) is for this name.
    pub client_cert_name: Option<rustls::pki_types::ServerName<'static>>,
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub url: String,
    pub timeout: Duration,
    pub concurrency: usize,
    pub retry_delay_ms_min: u64,
    pub retry_delay_ms_max: u64,
    /// Authorities trusted for the gateway beside the public ones (`ca_cert`).
    pub authorities: Vec<reqwest::Certificate>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Largest feed or callback body; larger gets 413.
    pub body_bytes_max: usize,
    /// Most events in one feed request; more gets 413.
    pub events_per_request_max: usize,
    /// Accepted-but-unapplied log entries beyond which feeds get 503.
    pub log_backlog_max: u64,
    /// One agency's accepted-but-unapplied events beyond which its feeds get
    /// 503 (half of `log_backlog_max` unless set).
    pub agency_backlog_max: u64,
    pub workers: usize,
    /// Both ports speak HTTPS only, with this certificate (`server.tls_cert`
    /// and `server.tls_key`); `None`: plain HTTP.
    pub tls: Option<crate::tls::ServerTls>,
    pub storage_path: PathBuf,
    /// sled's page cache, in bytes.
    pub cache_bytes: usize,
    /// Accepted ids waiting in memory (and in their log chunks) that start a
    /// packing pass ([`storage::feed_ids`]); the pass packs all that wait.
    pub feed_ids_pack_at: usize,
    /// Keep every family's scoring projection in memory for what-ifs and
    /// re-scores ([`storage::scoring_table`]); without it they read every
    /// record.
    pub scoring_table: bool,
    pub sms: GatewayConfig,
    pub bank: GatewayConfig,
    pub payer_fa: String,
    pub reply_window: Duration,
    pub reminder_after: Duration,
    /// Agencies, operators and the SMS gateway's token: what SIGHUP reloads.
    pub credentials: Credentials,
    pub catalogue: PathBuf,
    pub year: i32,
    pub active_families_max: usize,
    pub idle_after: Duration,
    pub batch_entries_max: usize,
    pub dispatch_concurrency: usize,
    pub poison_tries_max: u32,
    pub arbiters: usize,
    pub cycle_day: u32,
    pub timer_tick: Duration,
}

fn duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text).map_err(|e| {
        invalid(
            key,
            format!("invalid duration {text:?} ({e}); use e.g. \"72h\" or \"2s\""),
        )
    })
}

fn address(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        invalid(
            key,
            format!("{text:?} is not an address like 127.0.0.1:8080"),
        )
    })
}

fn url(key: &str, text: &str) -> Result<String, ConfigError> {
    if !(text.starts_with("http://") || text.starts_with("https://")) || text.len() < 10 {
        return Err(invalid(key, format!("{text:?} is not an http(s) URL")));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

fn positive(key: &str, value: usize) -> Result<usize, ConfigError> {
    if value == 0 {
        return Err(invalid(key, "must be at least 1"));
    }
    Ok(value)
}

fn gateway(
    prefix: &str,
    url_text: &str,
    timeout: &str,
    concurrency: usize,
    min: u64,
    max: u64,
    ca_cert: Option<&Path>,
) -> Result<GatewayConfig, ConfigError> {
    if min == 0 || max < min {
        return Err(invalid(
            format!("{prefix}.retry_delay_ms_max"),
            "retry delays must satisfy 0 < retry_delay_ms_min <= retry_delay_ms_max",
        ));
    }
    Ok(GatewayConfig {
        url: url(&format!("{prefix}.url"), url_text)?,
        timeout: duration(&format!("{prefix}.timeout"), timeout)?,
        concurrency: positive(&format!("{prefix}.concurrency"), concurrency)?,
        retry_delay_ms_min: min,
        retry_delay_ms_max: max,
        authorities: match ca_cert {
            Some(path) => crate::tls::authorities(path)
                .map_err(|e| invalid(format!("{prefix}.ca_cert"), e))?,
            None => Vec::new(),
        },
    })
}

/// The agencies of [`Config::for_local`] (demo, tests, benchmarks) and their tokens.
pub const LOCAL_AGENCY_TOKENS: [(&str, &str); 7] = [
    ("population", "pop-secret"),
    ("income", "income-secret"),
    ("health", "health-secret"),
    ("housing", "housing-secret"),
    ("education", "education-secret"),
    ("social", "social-secret"),
    ("payments", "payments-secret"),
];

/// The token of one of [`LOCAL_AGENCY_TOKENS`].
pub fn local_agency_token(agency: &str) -> Option<&'static str> {
    LOCAL_AGENCY_TOKENS
        .iter()
        .find(|(name, _)| *name == agency)
        .map(|(_, token)| *token)
}

impl Config {
    /// The scheme of both ports' URLs: `https` with `server.tls_cert`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The consent timings as the entitlement machine takes them.
    pub fn consent_settings(&self) -> anyhow::Result<::actors::entitlement::Settings> {
        use anyhow::Context as _;
        Ok(::actors::entitlement::Settings {
            reply_window: chrono::Duration::from_std(self.reply_window)
                .context("consent.reply_window")?,
            reminder_after: chrono::Duration::from_std(self.reminder_after)
                .context("consent.reminder_after")?,
        })
    }

    /// Loads the catalogue and opens the store this configuration names.
    pub fn open_rules_and_store(
        &self,
    ) -> anyhow::Result<(::actors::rules::Rules, std::sync::Arc<storage::Store>)> {
        use anyhow::Context as _;
        let (rules, text) = ::actors::rules::Rules::load_with_text(&self.catalogue, self.year)
            .map_err(|e| anyhow::anyhow!("programs.catalogue: {e}"))?;
        let store = storage::Store::open_with_cache(&self.storage_path, self.cache_bytes)
            .with_context(|| {
                format!("storage.path: cannot open {}", self.storage_path.display())
            })?;
        if store.rules_in_force()?.is_none() {
            store.set_rules_in_force(self.year, &text)?;
        }
        keep_catalogue(&store, &rules, self.year, &text)?;
        Ok((rules, std::sync::Arc::new(store)))
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses a configuration; `path` names it in errors and anchors relative
    /// paths that do not exist relative to the working directory.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.display().to_string(),
            message: e.to_string().replace('\n', " ").trim().to_owned(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |relative: &Path| -> PathBuf {
            if relative.is_absolute() || relative.exists() {
                relative.to_path_buf()
            } else {
                let beside = base.join(relative);
                if beside.exists() {
                    beside
                } else {
                    relative.to_path_buf()
                }
            }
        };
        let mut agencies = Vec::new();
        let mut seen_names = BTreeSet::new();
        let known_types: BTreeSet<&str> = storage::event::EVENT_TYPES
            .iter()
            .map(|(t, _)| *t)
            .collect();
        for (index, agency) in raw.agency.iter().enumerate() {
            let key = format!("agency[{index}]");
            if agency.name.is_empty()
                || !agency
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid(
                    format!("{key}.name"),
                    "must be letters, digits, - or _",
                ));
            }
            if !seen_names.insert(agency.name.clone()) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("agency {} is listed twice", agency.name),
                ));
            }
            if agency.token.is_empty() {
                return Err(invalid(format!("{key}.token"), "must not be empty"));
            }
            let types: BTreeSet<String> = match &agency.types {
                Some(types) => {
                    for name in types {
                        if !known_types.contains(name.as_str()) {
                            return Err(invalid(
                                format!("{key}.types"),
                                format!("unknown event type {name:?}"),
                            ));
                        }
                    }
                    types.iter().cloned().collect()
                }
                None => storage::event::default_types_for(&agency.name)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            };
            if types.is_empty() {
                return Err(invalid(
                    format!("{key}.types"),
                    format!("agency {} is not one of the contract's agencies; list the event types it may send", agency.name),
                ));
            }
            let client_cert_name = certificate_name(
                &format!("{key}.client_cert_name"),
                agency.client_cert_name.as_deref(),
                "server.tls_client_ca",
                raw.server.tls_client_ca.is_some(),
            )?;
            agencies.push(Agency {
                name: agency.name.clone(),
                token: agency.token.clone(),
                types,
                client_cert_name,
            });
        }
        let mut operators = Vec::new();
        let mut tokens = BTreeSet::new();
        for (index, operator) in raw.operator.iter().enumerate() {
            if operator.token.is_empty() {
                return Err(invalid(
                    format!("operator[{index}].token"),
                    "must not be empty",
                ));
            }
            if !tokens.insert(operator.token.clone()) {
                return Err(invalid(
                    format!("operator[{index}].token"),
                    "two operators share a token",
                ));
            }
            operators.push(Operator {
                name: operator.name.clone(),
                role: operator.role,
                token: operator.token.clone(),
                client_cert_name: certificate_name(
                    &format!("operator[{index}].client_cert_name"),
                    operator.client_cert_name.as_deref(),
                    "server.tls_operator_ca",
                    raw.server.tls_operator_ca.is_some(),
                )?,
            });
        }
        if raw.sms.callback_token.is_empty() {
            return Err(invalid("sms.callback_token", "must not be empty"));
        }
        let reply_window = duration("consent.reply_window", &raw.consent.reply_window)?;
        let reminder_after = duration("consent.reminder_after", &raw.consent.reminder_after)?;
        if reminder_after >= reply_window {
            return Err(invalid(
                "consent.reminder_after",
                "must be shorter than consent.reply_window",
            ));
        }
        if !(1..=28).contains(&raw.cycle.day) {
            return Err(invalid(
                "cycle.day",
                "must be a day of the month from 1 to 28",
            ));
        }
        if !(2023..=2100).contains(&raw.programs.year) {
            return Err(invalid(
                "programs.year",
                format!("{} is not a supported year", raw.programs.year),
            ));
        }
        let arbiters = match raw.actors.arbiters {
            Some(count) => positive("actors.arbiters", count)?,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        // Each port's authorities of client certificates, and how the server's
        // TLS takes them.
        type Ask = fn(crate::tls::ServerTls, &Path) -> Result<crate::tls::ServerTls, String>;
        let client_authorities: [(&str, &Option<PathBuf>, Ask); 2] = [
            (
                "server.tls_client_ca",
                &raw.server.tls_client_ca,
                crate::tls::ServerTls::with_client_authorities,
            ),
            (
                "server.tls_operator_ca",
                &raw.server.tls_operator_ca,
                crate::tls::ServerTls::with_operator_authorities,
            ),
        ];
        Ok(Config {
            public_addr: address("server.public_addr", &raw.server.public_addr)?,
            admin_addr: address("server.admin_addr", &raw.server.admin_addr)?,
            body_bytes_max: positive("server.body_bytes_max", raw.server.body_bytes_max)?,
            events_per_request_max: positive(
                "server.events_per_request_max",
                raw.server.events_per_request_max,
            )?,
            log_backlog_max: raw.server.log_backlog_max.max(1),
            agency_backlog_max: match raw.server.agency_backlog_max {
                Some(0) => return Err(invalid("server.agency_backlog_max", "must be at least 1")),
                Some(max) => max,
                None => raw.server.log_backlog_max.max(1).div_ceil(2),
            },
            workers: positive("server.workers", raw.server.workers)?,
            tls: match (&raw.server.tls_cert, &raw.server.tls_key) {
                (None, None) => {
                    if let Some((key, _, _)) = client_authorities
                        .iter()
                        .find(|(_, authorities, _)| authorities.is_some())
                    {
                        return Err(invalid(
                            *key,
                            "needs tls_cert and tls_key: client certificates are asked for in a TLS handshake",
                        ));
                    }
                    None
                }
                (Some(cert), Some(key)) => {
                    let mut tls = crate::tls::ServerTls::from_files(&resolve(cert), &resolve(key))
                        .map_err(|e| invalid("server.tls_cert", e))?;
                    for (key, authorities, ask) in client_authorities {
                        if let Some(authorities) = authorities {
                            tls = ask(tls, &resolve(authorities)).map_err(|e| invalid(key, e))?;
                        }
                    }
                    Some(tls)
                }
                (Some(_), None) => {
                    return Err(invalid("server.tls_key", "tls_cert is set without it"))
                }
                (None, Some(_)) => {
                    return Err(invalid("server.tls_cert", "tls_key is set without it"))
                }
            },
            storage_path: raw.storage.path,
            cache_bytes: positive("storage.cache_mb", raw.storage.cache_mb)? * 1024 * 1024,
            feed_ids_pack_at: positive("storage.feed_ids_pack_at", raw.storage.feed_ids_pack_at)?,
            scoring_table: raw.storage.scoring_table,
            sms: gateway(
                "sms",
                &raw.sms.url,
                &raw.sms.timeout,
                raw.sms.concurrency,
                raw.sms.retry_delay_ms_min,
                raw.sms.retry_delay_ms_max,
                raw.sms.ca_cert.as_deref().map(resolve).as_deref(),
            )?,
            bank: gateway(
                "bank",
                &raw.bank.url,
                &raw.bank.timeout,
                raw.bank.concurrency,
                raw.bank.retry_delay_ms_min,
                raw.bank.retry_delay_ms_max,
                raw.bank.ca_cert.as_deref().map(resolve).as_deref(),
            )?,
            payer_fa: {
                if !raw.bank.payer_fa.contains('@') {
                    return Err(invalid("bank.payer_fa", "must look like KZ...@<bank code>"));
                }
                raw.bank.payer_fa
            },
            reply_window,
            reminder_after,
            credentials: Credentials {
                agencies,
                operators,
                sms_callback_token: raw.sms.callback_token,
                sms_callback_cert_name: certificate_name(
                    "sms.callback_cert_name",
                    raw.sms.callback_cert_name.as_deref(),
                    "server.tls_client_ca",
                    raw.server.tls_client_ca.is_some(),
                )?,
            },
            catalogue: resolve(&raw.programs.catalogue),
            year: raw.programs.year,
            active_families_max: positive(
                "actors.active_families_max",
                raw.actors.active_families_max,
            )?,
            idle_after: duration("actors.idle_after", &raw.actors.idle_after)?,
            batch_entries_max: positive("actors.batch_entries_max", raw.actors.batch_entries_max)?,
            dispatch_concurrency: positive(
                "actors.dispatch_concurrency",
                raw.actors.dispatch_concurrency,
            )?,
            poison_tries_max: raw.actors.poison_tries_max.max(1),
            arbiters,
            cycle_day: raw.cycle.day,
            timer_tick: duration("cycle.timer_tick", &raw.cycle.timer_tick)?,
        })
    }

    /// A configuration for `dfm demo` and tests: loopback ports, the given store
    /// and gateways, and a default agency and operator set.
    pub fn for_local(
        storage_path: PathBuf,
        sms_url: &str,
        bank_url: &str,
        catalogue: PathBuf,
    ) -> Config {
        let text = format!(
            r#"
[server]
public_addr = "127.0.0.1:0"
admin_addr = "127.0.0.1:0"
[storage]
path = "unused"
[sms]
url = "{sms_url}"
callback_token = "sms-secret"
[bank]
url = "{bank_url}"
payer_fa = "KZ86125KZT5004100100@125"
[consent]
reply_window = "72h"
reminder_after = "48h"
[programs]
catalogue = "unused"
year = 2026
"#
        );
        let mut config = Config::parse(&text, Path::new("local.toml"))
            .expect("the local configuration is valid");
        config.storage_path = storage_path;
        config.catalogue = catalogue;
        for (name, token) in LOCAL_AGENCY_TOKENS {
            config.credentials.agencies.push(Agency {
                name: name.to_owned(),
                token: token.to_owned(),
                types: storage::event::default_types_for(name)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                client_cert_name: None,
            });
        }
        for (name, role, token) in [
            ("demo-operator", Role::Operator, "operator-secret"),
            ("demo-viewer", Role::Viewer, "viewer-secret"),
            ("demo-auditor", Role::Auditor, "auditor-secret"),
        ] {
            config.credentials.operators.push(Operator {
                name: name.to_owned(),
                role,
                token: token.to_owned(),
                client_cert_name: None,
            });
        }
        config
    }
}

/// Keeps the catalogue the service evaluates under in the store, so that the
/// reasons of decisions made under it can be written again for a reader
/// ([`storage::Store::keep_catalogue`]).
pub fn keep_catalogue(
    store: &storage::Store,
    rules: &::actors::rules::Rules,
    year: i32,
    text: &str,
) -> anyhow::Result<()> {
    if store.keep_catalogue(&rules.version, year, text)? {
        tracing::warn!(
            version = %rules.version,
            "this catalogue version was kept before with another text; give a changed catalogue a new version: the reasons of decisions made under the earlier text are no longer shown"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
public_addr = "127.0.0.1:8080"
admin_addr  = "127.0.0.1:8081"
[storage]
path = "data/dfm"
[sms]
url = "http://127.0.0.1:9001"
callback_token = "sms-secret"
[bank]
url = "http://127.0.0.1:9002"
payer_fa = "KZ86125KZT5004100100@125"
[consent]
reply_window = "72h"
reminder_after = "48h"
[[agency]]
name = "population"
token = "pop-secret"
[[operator]]
name = "alice"
role = "operator"
token = "alice-secret"
[programs]
catalogue = "config/programs.toml"
year = 2026
"#;

    fn check(mutation: (&str, &str), expected_key: &str) {
        let text = GOOD.replace(mutation.0, mutation.1);
        let error =
            Config::parse(&text, Path::new("dfm.toml")).expect_err("config should be refused");
        let message = error.to_string();
        assert!(
            message.contains(expected_key),
            "{message:?} should name {expected_key}"
        );
    }

    #[test]
    fn the_contract_example_parses() {
        let config = Config::parse(GOOD, Path::new("dfm.toml")).unwrap();
        assert_eq!(config.reply_window, Duration::from_secs(72 * 3600));
        assert_eq!(config.credentials.agencies[0].types.len(), 6);
        assert_eq!(config.credentials.operators[0].role, Role::Operator);
        assert_eq!(config.cache_bytes, storage::store::DEFAULT_CACHE_BYTES);
        assert_eq!(config.agency_backlog_max, config.log_backlog_max / 2);
    }

    #[test]
    fn bad_values_name_their_key() {
        check(
            ("reply_window = \"72h\"", "reply_window = \"soon\""),
            "consent.reply_window",
        );
        check(
            ("reminder_after = \"48h\"", "reminder_after = \"80h\""),
            "consent.reminder_after",
        );
        check(
            ("public_addr = \"127.0.0.1:8080\"", "public_addr = \"here\""),
            "server.public_addr",
        );
        check(
            ("url = \"http://127.0.0.1:9001\"", "url = \"ftp://x\""),
            "sms.url",
        );
        check(("role = \"operator\"", "role = \"root\""), "role");
        check(("year = 2026", "year = 1990"), "programs.year");
        check(("[storage]", "[storage]\nspeed = 3"), "speed");
        check(("[storage]", "[storage]\ncache_mb = 0"), "storage.cache_mb");
        check(
            ("[storage]", "[storage]\nfeed_ids_pack_at = 0"),
            "storage.feed_ids_pack_at",
        );
        check(
            ("[server]", "[server]\nagency_backlog_max = 0"),
            "server.agency_backlog_max",
        );
        check(
            ("name = \"population\"", "name = \"weather\""),
            "agency[0].types",
        );
        check(
            (
                "payer_fa = \"KZ86125KZT5004100100@125\"",
                "payer_fa = \"nowhere\"",
            ),
            "bank.payer_fa",
        );
        use crate::tls::fixture;
        let server = |lines: &str| ("[server]", format!("[server]\n{lines}"));
        let (section, tls) = server(&format!("tls_cert = {:?}", fixture("server.pem")));
        check((section, &tls), "server.tls_key");
        let (section, tls) = server(&format!("tls_key = {:?}", fixture("server.key")));
        check((section, &tls), "server.tls_cert");
        let (section, tls) = server(&format!(
            "tls_cert = {:?}\ntls_key = {:?}",
            fixture("server.key"),
            fixture("server.key")
        ));
        check((section, &tls), "server.tls_cert");
        check(
            ("[bank]", "[bank]\nca_cert = \"nowhere.pem\""),
            "bank.ca_cert",
        );
        // Client certificates: the authorities need the server's own
        // certificate, must be certificates, and an agency's name needs them.
        let (section, tls) = server(&format!("tls_client_ca = {:?}", fixture("agencies-ca.pem")));
        check((section, &tls), "server.tls_client_ca");
        let with_server = |authorities: &str| {
            GOOD.replace(
                "[server]",
                &format!(
                    "[server]\ntls_cert = {:?}\ntls_key = {:?}\ntls_client_ca = {:?}",
                    fixture("server.pem"),
                    fixture("server.key"),
                    fixture(authorities)
                ),
            )
        };
        let refused = |text: &str| {
            Config::parse(text, Path::new("dfm.toml"))
                .expect_err("config should be refused")
                .to_string()
        };
        let error = refused(&with_server("server.key"));
        assert!(error.contains("server.tls_client_ca"), "{error}");
        let named = "token = \"pop-secret\"\nclient_cert_name = \"population.agencies.test\"";
        let error = refused(&GOOD.replace("token = \"pop-secret\"", named));
        assert!(error.contains("agency[0].client_cert_name"), "{error}");
        let error = refused(&with_server("agencies-ca.pem").replace(
            "token = \"pop-secret\"",
            "token = \"pop-secret\"\nclient_cert_name = \"not a name\"",
        ));
        assert!(error.contains("agency[0].client_cert_name"), "{error}");
        let config = Config::parse(
            &with_server("agencies-ca.pem").replace("token = \"pop-secret\"", named),
            Path::new("dfm.toml"),
        )
        .unwrap();
        let agencies = &config.credentials.agencies;
        assert_eq!(
            agencies[0]
                .client_cert_name
                .as_ref()
                .map(|name| name.to_str()),
            Some("population.agencies.test".into())
        );
        let error = refused(&GOOD.replace(
            "callback_token = \"sms-secret\"",
            "callback_token = \"sms-secret\"\ncallback_cert_name = \"sms.gateway.test\"",
        ));
        assert!(error.contains("sms.callback_cert_name"), "{error}");
        // The operators' authorities, the same way.
        let (section, tls) = server(&format!(
            "tls_operator_ca = {:?}",
            fixture("agencies-ca.pem")
        ));
        check((section, &tls), "server.tls_operator_ca");
        let error = refused(&GOOD.replace(
            "token = \"alice-secret\"",
            "token = \"alice-secret\"\nclient_cert_name = \"alice.operators.test\"",
        ));
        assert!(error.contains("operator[0].client_cert_name"), "{error}");
        assert!(error.contains("server.tls_operator_ca"), "{error}");
        let operators = |authorities: &str| {
            GOOD.replace(
                "[server]",
                &format!(
                    "[server]\ntls_cert = {:?}\ntls_key = {:?}\ntls_operator_ca = {:?}",
                    fixture("server.pem"),
                    fixture("server.key"),
                    fixture(authorities)
                ),
            )
        };
        let error = refused(&operators("missing.pem"));
        assert!(error.contains("server.tls_operator_ca"), "{error}");
        let config = Config::parse(
            &operators("agencies-ca.pem").replace(
                "token = \"alice-secret\"",
                "token = \"alice-secret\"\nclient_cert_name = \"alice.operators.test\"",
            ),
            Path::new("dfm.toml"),
        )
        .unwrap();
        assert!(config.credentials.operators[0].client_cert_name.is_some());
        assert!(config
            .tls
            .as_ref()
            .is_some_and(|tls| tls.asks_operator_certificates()));
        let unnamed =
            Config::parse(&with_server("agencies-ca.pem"), Path::new("dfm.toml")).unwrap();
        assert!(unnamed.credentials.agencies[0].client_cert_name.is_none());
    }

    #[test]
    fn tls_files_are_read_with_the_configuration() {
        use crate::tls::fixture;
        let text = GOOD
            .replace(
                "[server]",
                &format!(
                    "[server]\ntls_cert = {:?}\ntls_key = {:?}",
                    fixture("server.pem"),
                    fixture("server.key")
                ),
            )
            .replace(
                "[sms]",
                &format!("[sms]\nca_cert = {:?}", fixture("ca.pem")),
            );
        let config = Config::parse(&text, Path::new("dfm.toml")).unwrap();
        assert!(config.tls.is_some());
        assert_eq!(config.sms.authorities.len(), 1);
        assert!(config.bank.authorities.is_empty());
        let plain = Config::parse(GOOD, Path::new("dfm.toml")).unwrap();
        assert!(plain.tls.is_none() && plain.sms.authorities.is_empty());
    }
}
