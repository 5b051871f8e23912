//! Built-in SMS and bank gateways for `dfm demo` and the tests: real HTTP on
//! loopback, speaking the contract's outbound APIs, with faults to inject.
//!
//! Each simulator is an actix-web server with one worker bound to `127.0.0.1:0`,
//! started on the current actix system (the caller runs inside `#[actix_rt::main]`,
//! `#[actix_rt::test]` or an `actix_rt::System`). State is a `Mutex` over plain
//! vectors and maps: the simulators are cheap, keep everything in memory and are
//! never used in production. They never pay twice and never send twice: a
//! repeated `reference_id` or `reference` gets the stored answer.
//!
//! Fault options count every HTTP request the simulator receives, in arrival order
//! (retries included): "the first N requests".

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

/// The reason code the bank simulator gives when it rejects a payee.
pub const REJECT_REASON_PAYEE: &str = "rjct.payee_fa.invalid";

/// How long a stopping simulator waits for requests in flight, in seconds.
const SHUTDOWN_TIMEOUT_SECONDS: u64 = 1;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn bad_request(reason: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": reason.to_string() }))
}

fn injected_failure() -> HttpResponse {
    HttpResponse::InternalServerError().json(json!({ "error": "injected failure" }))
}

/// Starts `app` on loopback with one worker and no signal handling (the process's
/// own shutdown must not stop a simulator behind its back); over HTTPS with `tls`.
fn start_server<F, A>(
    app: F,
    tls: Option<&rustls::ServerConfig>,
) -> std::io::Result<(String, ServerHandle)>
where
    F: Fn() -> App<A> + Send + Clone + 'static,
    A: actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
{
    let server = HttpServer::new(app)
        .workers(1)
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECONDS);
    let (server, scheme) = match tls {
        Some(tls) => (
            server.bind_rustls_0_23(("127.0.0.1", 0), tls.clone())?,
            "https",
        ),
        None => (server.bind(("127.0.0.1", 0))?, "http"),
    };
    let address = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("the simulator bound no address"))?;
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(%error, "simulator stopped with an error");
        }
    });
    Ok((format!("{scheme}://{address}"), handle))
}

/// How long [`wait_until`] lets changes gather before it looks again.
const WAIT_COALESCE: Duration = Duration::from_millis(5);

/// Waits until `predicate` holds over the state behind `state`, woken by `version`.
async fn wait_until<T>(
    state: &Mutex<T>,
    version: &watch::Sender<u64>,
    timeout: Duration,
    predicate: impl Fn(&T) -> bool,
) -> bool {
    let mut changes = version.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Mark the current version as seen before looking, so that no change
        // between the look and the wait is missed.
        changes.borrow_and_update();
        if predicate(&lock(state)) {
            return true;
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return predicate(&lock(state)),
        }
        // Changes come thousands a second under load; looking at every one would
        // scan the whole record each time (quadratic) while holding the lock the
        // server needs. Coalesce them.
        tokio::time::sleep(
            WAIT_COALESCE.min(deadline.saturating_duration_since(tokio::time::Instant::now())),
        )
        .await;
    }
}

// =============================================================================================
// SMS gateway

#[derive(Debug, Clone, Default)]
pub struct SmsSimulatorOptions {
    /// Answer 500 to the first N requests (before looking at them).
    pub fail_first: u32,
    /// Take the message, then sleep this long before answering (to outlast the
    /// client's timeout).
    pub delay: Option<Duration>,
    /// Apply `delay` to the first N requests only; `None`: to every request.
    pub delay_first: Option<u32>,
    /// Speak HTTPS only, with this certificate.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// One message the gateway has taken (once per reference).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimMessage {
    pub to: String,
    pub text: String,
    pub reference: String,
}

#[derive(Default)]
struct SmsState {
    requests: u64,
    messages: Vec<SimMessage>,
    /// Reference → index in `messages`.
    by_reference: HashMap<String, usize>,
}

struct SmsShared {
    options: SmsSimulatorOptions,
    state: Mutex<SmsState>,
    version: watch::Sender<u64>,
}

#[derive(Deserialize)]
struct MessageIn {
    to: String,
    text: String,
    reference: String,
}

fn message_id(index: usize) -> String {
    format!("sim-sms-{}", index + 1)
}

async fn take_message(shared: web::Data<SmsShared>, body: web::Bytes) -> HttpResponse {
    let request = {
        let mut state = lock(&shared.state);
        state.requests += 1;
        state.requests
    };
    shared.version.send_modify(|version| *version += 1);
    if request <= u64::from(shared.options.fail_first) {
        return injected_failure();
    }
    let message: MessageIn = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(error) => return bad_request(error),
    };
    if !message.to.starts_with('+') || message.to.len() < 8 {
        return bad_request("to: not an E.164 number");
    }
    if message.text.is_empty() || message.reference.is_empty() {
        return bad_request("text and reference must not be empty");
    }
    let id = {
        let mut state = lock(&shared.state);
        let index = match state.by_reference.get(&message.reference) {
            Some(index) => *index,
            None => {
                let index = state.messages.len();
                state.by_reference.insert(message.reference.clone(), index);
                state.messages.push(SimMessage {
                    to: message.to,
                    text: message.text,
                    reference: message.reference,
                });
                index
            }
        };
        message_id(index)
    };
    shared.version.send_modify(|version| *version += 1);
    if let Some(delay) = shared.options.delay {
        if shared
            .options
            .delay_first
            .is_none_or(|first| request <= u64::from(first))
        {
            tokio::time::sleep(delay).await;
        }
    }
    HttpResponse::Accepted().json(json!({ "message_id": id }))
}

/// The SMS gateway: `POST /v1/messages` → `202 {"message_id"}`.
pub struct SmsSimulator {
    url: String,
    handle: ServerHandle,
    shared: Arc<SmsShared>,
}

impl SmsSimulator {
    pub fn start(options: SmsSimulatorOptions) -> std::io::Result<SmsSimulator> {
        let tls = options.tls.clone();
        let shared = Arc::new(SmsShared {
            options,
            state: Mutex::new(SmsState::default()),
            version: watch::Sender::new(0),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let (url, handle) = start_server(
            move || {
                App::new()
                    .app_data(data.clone())
                    .route("/v1/messages", web::post().to(take_message))
            },
            tls.as_deref(),
        )?;
        Ok(SmsSimulator {
            url,
            handle,
            shared,
        })
    }

    /// `http://127.0.0.1:PORT` (`https` with TLS), the base URL for `[sms] url`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Every message taken, once per reference, in the order first received.
    pub fn messages(&self) -> Vec<SimMessage> {
        lock(&self.shared.state).messages.clone()
    }

    /// Every HTTP request received, retries and failures included.
    pub fn requests(&self) -> u64 {
        lock(&self.shared.state).requests
    }

    /// Waits until `predicate` holds over the messages taken, or `timeout` passes;
    /// returns whether it holds.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        predicate: impl Fn(&[SimMessage]) -> bool,
    ) -> bool {
        wait_until(&self.shared.state, &self.shared.version, timeout, |state| {
            predicate(&state.messages)
        })
        .await
    }

    /// Stops the server; the recorded messages stay readable.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

// =============================================================================================
// Bank (G2P Connect disburse)

#[derive(Debug, Clone, Default)]
pub struct BankSimulatorOptions {
    /// Answer 500 to the first N requests (before looking at them).
    pub fail_first: u32,
    /// Handle the first N requests, then sleep `delay` before answering: the bank
    /// has the payment but the client times out.
    pub delay_first: u32,
    pub delay: Duration,
    /// Answer `PDNG` for the first N new references; each becomes `SUCC` at its
    /// next status query.
    pub pending_first: u32,
    /// Reject payees whose `payee_fa` starts with this, with [`REJECT_REASON_PAYEE`].
    pub reject_payee_prefix: Option<String>,
    /// Speak HTTPS only, with this certificate.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// One payment as the bank holds it (once per `reference_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimPayment {
    pub reference_id: String,
    pub payer_fa: String,
    pub payee_fa: String,
    pub amount: String,
    pub purpose: String,
    pub note: String,
    /// `SUCC`, `RJCT` or `PDNG`.
    pub status: String,
    pub status_reason_code: Option<String>,
    /// How many POSTs carried this reference (1 unless the client retried).
    pub posts: u32,
}

#[derive(Default)]
struct BankState {
    requests: u64,
    payments: Vec<SimPayment>,
    /// `reference_id` → index in `payments`.
    by_reference: HashMap<String, usize>,
    /// New references answered `PDNG` so far.
    pending_given: u32,
    message_ids: HashSet<String>,
    /// POSTs whose `header.message_id` had been used before (should stay 0).
    repeated_message_ids: u64,
    /// POSTs that reused a `reference_id` for a different payee, amount or purpose
    /// (should stay 0).
    reference_conflicts: u64,
}

struct BankShared {
    options: BankSimulatorOptions,
    state: Mutex<BankState>,
    version: watch::Sender<u64>,
}

#[derive(Deserialize)]
struct DisburseIn {
    header: HeaderIn,
    message: DisburseMessageIn,
}

#[derive(Deserialize)]
struct HeaderIn {
    message_id: String,
    message_ts: String,
    action: String,
    sender_id: String,
}

#[derive(Deserialize)]
struct DisburseMessageIn {
    disburse: Vec<ItemIn>,
}

#[derive(Deserialize)]
struct ItemIn {
    reference_id: String,
    payer_fa: String,
    payee_fa: String,
    amount: String,
    currency_code: String,
    purpose: String,
    note: String,
}

#[derive(Serialize)]
struct StatusOut<'a> {
    reference_id: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_reason_code: Option<&'a str>,
}

impl<'a> From<&'a SimPayment> for StatusOut<'a> {
    fn from(payment: &'a SimPayment) -> StatusOut<'a> {
        StatusOut {
            reference_id: &payment.reference_id,
            status: &payment.status,
            status_reason_code: payment.status_reason_code.as_deref(),
        }
    }
}

/// KZT with exactly two decimals and no sign: `"16446.25"`.
fn is_money(amount: &str) -> bool {
    match amount.split_once('.') {
        Some((whole, cents)) => {
            !whole.is_empty()
                && whole.bytes().all(|byte| byte.is_ascii_digit())
                && cents.len() == 2
                && cents.bytes().all(|byte| byte.is_ascii_digit())
        }
        None => false,
    }
}

fn validate(request: &DisburseIn) -> Result<&ItemIn, String> {
    let header = &request.header;
    if header.action != "disburse" {
        return Err(format!(
            "header.action must be \"disburse\", not {:?}",
            header.action
        ));
    }
    if header.message_id.is_empty() || header.sender_id.is_empty() {
        return Err("header.message_id and header.sender_id must not be empty".to_owned());
    }
    if chrono::DateTime::parse_from_rfc3339(&header.message_ts).is_err() {
        return Err("header.message_ts is not RFC 3339".to_owned());
    }
    let [item] = request.message.disburse.as_slice() else {
        return Err("message.disburse must hold exactly one item".to_owned());
    };
    if item.reference_id.is_empty() || item.payer_fa.is_empty() || item.payee_fa.is_empty() {
        return Err("reference_id, payer_fa and payee_fa must not be empty".to_owned());
    }
    if !is_money(&item.amount) {
        return Err(format!(
            "amount {:?} is not KZT with two decimals",
            item.amount
        ));
    }
    if item.currency_code != "KZT" {
        return Err(format!(
            "currency_code must be KZT, not {:?}",
            item.currency_code
        ));
    }
    if item.purpose.is_empty() {
        return Err("purpose must not be empty".to_owned());
    }
    Ok(item)
}

impl BankShared {
    /// Counts a request: its number, or `None` when it is one to fail.
    fn arrive(&self) -> Option<u64> {
        let request = {
            let mut state = lock(&self.state);
            state.requests += 1;
            state.requests
        };
        self.version.send_modify(|version| *version += 1);
        (request > u64::from(self.options.fail_first)).then_some(request)
    }

    async fn maybe_delay(&self, request: u64) {
        if request <= u64::from(self.options.delay_first) {
            tokio::time::sleep(self.options.delay).await;
        }
    }
}

async fn disburse(shared: web::Data<BankShared>, body: web::Bytes) -> HttpResponse {
    let Some(request) = shared.arrive() else {
        return injected_failure();
    };
    let parsed: DisburseIn = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(error) => return bad_request(error),
    };
    let item = match validate(&parsed) {
        Ok(item) => item,
        Err(reason) => return bad_request(reason),
    };
    let answer = {
        let mut state = lock(&shared.state);
        if !state.message_ids.insert(parsed.header.message_id.clone()) {
            state.repeated_message_ids += 1;
        }
        let index = match state.by_reference.get(&item.reference_id).copied() {
            Some(index) => {
                let stored = &state.payments[index];
                let conflict = stored.payee_fa != item.payee_fa
                    || stored.amount != item.amount
                    || stored.purpose != item.purpose;
                if conflict {
                    state.reference_conflicts += 1;
                }
                state.payments[index].posts += 1;
                index
            }
            None => {
                let rejected = shared
                    .options
                    .reject_payee_prefix
                    .as_deref()
                    .is_some_and(|prefix| item.payee_fa.starts_with(prefix));
                let (status, reason) = if rejected {
                    ("RJCT", Some(REJECT_REASON_PAYEE.to_owned()))
                } else if state.pending_given < shared.options.pending_first {
                    state.pending_given += 1;
                    ("PDNG", None)
                } else {
                    ("SUCC", None)
                };
                let index = state.payments.len();
                state.by_reference.insert(item.reference_id.clone(), index);
                state.payments.push(SimPayment {
                    reference_id: item.reference_id.clone(),
                    payer_fa: item.payer_fa.clone(),
                    payee_fa: item.payee_fa.clone(),
                    amount: item.amount.clone(),
                    purpose: item.purpose.clone(),
                    note: item.note.clone(),
                    status: status.to_owned(),
                    status_reason_code: reason,
                    posts: 1,
                });
                index
            }
        };
        json!({ "message": { "disburse_response": [StatusOut::from(&state.payments[index])] } })
    };
    shared.version.send_modify(|version| *version += 1);
    shared.maybe_delay(request).await;
    HttpResponse::Ok().json(answer)
}

async fn status(shared: web::Data<BankShared>, reference_id: web::Path<String>) -> HttpResponse {
    let Some(request) = shared.arrive() else {
        return injected_failure();
    };
    let answer = {
        let mut state = lock(&shared.state);
        match state.by_reference.get(reference_id.as_str()).copied() {
            None => None,
            Some(index) => {
                let payment = &mut state.payments[index];
                if payment.status == "PDNG" {
                    payment.status = "SUCC".to_owned();
                }
                Some(json!(StatusOut::from(&state.payments[index])))
            }
        }
    };
    shared.version.send_modify(|version| *version += 1);
    shared.maybe_delay(request).await;
    match answer {
        Some(answer) => HttpResponse::Ok().json(answer),
        None => HttpResponse::NotFound().json(json!({ "error": "unknown reference_id" })),
    }
}

/// The bank: `POST /v1/disburse` and `GET /v1/disburse/status/{reference_id}`.
pub struct BankSimulator {
    url: String,
    handle: ServerHandle,
    shared: Arc<BankShared>,
}

impl BankSimulator {
    pub fn start(options: BankSimulatorOptions) -> std::io::Result<BankSimulator> {
        let tls = options.tls.clone();
        let shared = Arc::new(BankShared {
            options,
            state: Mutex::new(BankState::default()),
            version: watch::Sender::new(0),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let (url, handle) = start_server(
            move || {
                App::new()
                    .app_data(data.clone())
                    .route("/v1/disburse", web::post().to(disburse))
                    .route("/v1/disburse/status/{reference_id}", web::get().to(status))
            },
            tls.as_deref(),
        )?;
        Ok(BankSimulator {
            url,
            handle,
            shared,
        })
    }

    /// `http://127.0.0.1:PORT` (`https` with TLS), the base URL for `[bank] url`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Every payment, once per `reference_id`, in the order first received.
    pub fn payments(&self) -> Vec<SimPayment> {
        lock(&self.shared.state).payments.clone()
    }

    /// Succeeded payments counted by `(purpose, note)`: any count above 1 is a
    /// benefit paid twice for one period.
    pub fn succeeded_by_key(&self) -> BTreeMap<(String, String), u32> {
        let mut counts = BTreeMap::new();
        for payment in lock(&self.shared.state)
            .payments
            .iter()
            .filter(|payment| payment.status == "SUCC")
        {
            *counts
                .entry((payment.purpose.clone(), payment.note.clone()))
                .or_insert(0) += 1;
        }
        counts
    }

    /// Every HTTP request received, retries and failures included.
    pub fn requests(&self) -> u64 {
        lock(&self.shared.state).requests
    }

    /// POSTs that reused a `header.message_id` (the contract wants 0).
    pub fn repeated_message_ids(&self) -> u64 {
        lock(&self.shared.state).repeated_message_ids
    }

    /// POSTs that reused a `reference_id` for another payment (the contract wants 0).
    pub fn reference_conflicts(&self) -> u64 {
        lock(&self.shared.state).reference_conflicts
    }

    /// Waits until `predicate` holds over the payments, or `timeout` passes;
    /// returns whether it holds.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        predicate: impl Fn(&[SimPayment]) -> bool,
    ) -> bool {
        wait_until(&self.shared.state, &self.shared.version, timeout, |state| {
            predicate(&state.payments)
        })
        .await
    }

    /// Stops the server; the recorded payments stay readable.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(timeout: Duration) -> reqwest::Client {
        reqwest::Client::builder().timeout(timeout).build().unwrap()
    }

    async fn post_sms(
        client: &reqwest::Client,
        url: &str,
        reference: &str,
    ) -> Result<(u16, String), reqwest::Error> {
        let response = client
            .post(format!("{url}/v1/messages"))
            .json(&json!({"to": "+77011234567", "text": "Ваш код #4821", "reference": reference}))
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    #[actix_rt::test]
    async fn sms_fails_first_then_dedups_by_reference() {
        let simulator = SmsSimulator::start(SmsSimulatorOptions {
            fail_first: 1,
            ..SmsSimulatorOptions::default()
        })
        .unwrap();
        let client = client(Duration::from_secs(5));
        let url = simulator.url();
        assert_eq!(post_sms(&client, &url, "r-1").await.unwrap().0, 500);
        let (status, first) = post_sms(&client, &url, "r-1").await.unwrap();
        assert_eq!(status, 202);
        let (status, again) = post_sms(&client, &url, "r-1").await.unwrap();
        assert_eq!(status, 202);
        assert_eq!(
            first, again,
            "a repeated reference gets the same message id"
        );
        assert_eq!(post_sms(&client, &url, "r-2").await.unwrap().0, 202);
        let bad = client
            .post(format!("{url}/v1/messages"))
            .json(&json!({"to": "+77011234567"}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status().as_u16(), 400);

        assert_eq!(simulator.requests(), 5);
        let references: Vec<String> = simulator
            .messages()
            .into_iter()
            .map(|message| message.reference)
            .collect();
        assert_eq!(references, ["r-1", "r-2"]);
        assert!(
            simulator
                .wait_until(Duration::from_secs(1), |messages| messages.len() == 2)
                .await
        );
        simulator.stop().await;
    }

    #[actix_rt::test]
    async fn sms_delay_outlasts_the_client_but_keeps_the_message() {
        let simulator = SmsSimulator::start(SmsSimulatorOptions {
            delay: Some(Duration::from_millis(400)),
            delay_first: Some(1),
            ..SmsSimulatorOptions::default()
        })
        .unwrap();
        let client = client(Duration::from_millis(100));
        let url = simulator.url();
        assert!(post_sms(&client, &url, "r-1")
            .await
            .unwrap_err()
            .is_timeout());
        assert_eq!(post_sms(&client, &url, "r-1").await.unwrap().0, 202);
        assert_eq!(simulator.messages().len(), 1);
        simulator.stop().await;
    }

    fn disburse_body(message_id: &str, reference_id: &str, payee_fa: &str) -> serde_json::Value {
        json!({
            "header": {"message_id": message_id, "message_ts": "2026-11-02T09:00:00Z", "action": "disburse", "sender_id": "dfm"},
            "message": {"disburse": [{
                "reference_id": reference_id, "payer_fa": "KZ86125KZT5004100100@125", "payee_fa": payee_fa,
                "amount": "16446.25", "currency_code": "KZT", "purpose": "tsa 2026-11", "note": format!("note {reference_id}"),
            }]},
        })
    }

    async fn post_disburse(
        client: &reqwest::Client,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value), reqwest::Error> {
        let response = client
            .post(format!("{url}/v1/disburse"))
            .json(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or_default()))
    }

    async fn get_status(
        client: &reqwest::Client,
        url: &str,
        reference_id: &str,
    ) -> (u16, serde_json::Value) {
        let response = client
            .get(format!("{url}/v1/disburse/status/{reference_id}"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    #[actix_rt::test]
    async fn bank_never_pays_a_reference_twice() {
        let simulator = BankSimulator::start(BankSimulatorOptions {
            fail_first: 1,
            pending_first: 1,
            reject_payee_prefix: Some("KZ00".to_owned()),
            ..BankSimulatorOptions::default()
        })
        .unwrap();
        let client = client(Duration::from_secs(5));
        let url = simulator.url();

        assert_eq!(
            post_disburse(&client, &url, &disburse_body("m-1", "p-1", "A@1"))
                .await
                .unwrap()
                .0,
            500
        );
        assert_eq!(
            get_status(&client, &url, "p-1").await.0,
            404,
            "a failed request pays nothing"
        );
        let (status, answer) = post_disburse(&client, &url, &disburse_body("m-2", "p-1", "A@1"))
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(answer["message"]["disburse_response"][0]["status"], "PDNG");
        let (_, answer) = get_status(&client, &url, "p-1").await;
        assert_eq!(
            answer["status"], "SUCC",
            "pending becomes SUCC at the next status query"
        );
        let (_, answer) = post_disburse(&client, &url, &disburse_body("m-3", "p-1", "A@1"))
            .await
            .unwrap();
        assert_eq!(answer["message"]["disburse_response"][0]["status"], "SUCC");
        let (_, answer) = post_disburse(&client, &url, &disburse_body("m-4", "p-2", "KZ00BAD@1"))
            .await
            .unwrap();
        assert_eq!(answer["message"]["disburse_response"][0]["status"], "RJCT");
        assert_eq!(
            answer["message"]["disburse_response"][0]["status_reason_code"],
            REJECT_REASON_PAYEE
        );
        let (status, _) = post_disburse(&client, &url, &json!({"header": {}}))
            .await
            .unwrap();
        assert_eq!(status, 400);

        let payments = simulator.payments();
        assert_eq!(payments.len(), 2);
        assert_eq!(payments[0].posts, 2);
        assert_eq!(payments[0].amount, "16446.25");
        let succeeded = simulator.succeeded_by_key();
        assert_eq!(succeeded.len(), 1);
        assert_eq!(
            succeeded[&("tsa 2026-11".to_owned(), "note p-1".to_owned())],
            1
        );
        assert_eq!(simulator.requests(), 7);
        assert_eq!(simulator.repeated_message_ids(), 0);
        assert_eq!(simulator.reference_conflicts(), 0);
        simulator.stop().await;
    }

    #[actix_rt::test]
    async fn bank_delay_keeps_the_payment_and_flags_reuse() {
        let simulator = BankSimulator::start(BankSimulatorOptions {
            delay_first: 1,
            delay: Duration::from_millis(400),
            ..BankSimulatorOptions::default()
        })
        .unwrap();
        let client = client(Duration::from_millis(100));
        let url = simulator.url();
        let error = post_disburse(&client, &url, &disburse_body("m-1", "p-1", "A@1"))
            .await
            .unwrap_err();
        assert!(error.is_timeout());
        let (status, answer) = get_status(&client, &url, "p-1").await;
        assert_eq!((status, answer["status"].as_str()), (200, Some("SUCC")));
        // The same message id again, and the same reference for another payee.
        post_disburse(&client, &url, &disburse_body("m-1", "p-1", "B@1"))
            .await
            .unwrap();
        assert_eq!(simulator.repeated_message_ids(), 1);
        assert_eq!(simulator.reference_conflicts(), 1);
        assert_eq!(simulator.payments().len(), 1);
        assert!(
            simulator
                .wait_until(Duration::from_secs(1), |payments| payments
                    .iter()
                    .all(|payment| payment.status == "SUCC"))
                .await
        );
        simulator.stop().await;
    }
}
