//! The bank gateway: the only thing in dfm that talks to the bank (G2P Connect
//! disburse, one item a request).
//!
//! A payment order reaches this actor after the family actor has written it to the
//! store's payment outbox. Before the first HTTP call of an order the gateway waits
//! for the group commit ([`GroupCommit::durable`]): no payment leaves without a
//! durable record first, so a crash at any moment leaves the order in the outbox and
//! the next start asks the bank about it instead of forgetting it.
//!
//! Then it drives the order to a final answer and never gives up:
//! - `POST {url}/v1/disburse`. `SUCC` and `RJCT` are final. `PDNG`, `RCVD`, a
//!   timeout, a connection error or any other status leave the outcome unknown.
//! - Unknown: wait (with [`Backoff`]), then `GET {url}/v1/disburse/status/{reference_id}`.
//!   A final status ends it; an unknown one waits and asks again; 404 (the bank never
//!   received it) posts again with the same `reference_id`, which the bank dedups.
//!
//! The final answer goes into the log as [`LogEntry::PaymentOutcome`] through the
//! [`Inbox`]; the family actor records it and removes the order from the outbox.
//! The gateway never removes an order itself and never decides what a rejection
//! means for the family.
//!
//! # Limits
//! - `concurrency`: orders in flight at once. An order holds its permit until its
//!   final answer is logged, including while it waits to retry, so a bank that is
//!   down stops new orders here rather than piling up requests.
//! - `mailbox_capacity`: orders queued in the actor's mailbox. While every permit
//!   is taken the actor takes no message from its mailbox, the mailbox fills and
//!   senders that use `send().await` wait (`do_send` ignores the capacity).
//!
//! # Never
//! Logs name the `reference_id` and the `family_id`, never the payee account (an
//! IBAN or an IIN) or a name.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use storage::event::LogEntry;
use storage::store::PaymentOrder;
use storage::Store;
use tokio::sync::{oneshot, Semaphore};
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::durability::GroupCommit;
use crate::inbox::Inbox;
use crate::metrics::Metrics;

/// Counter of bank answers, labelled `status="succeeded|rejected|pending_retry"`
/// (`pending_retry`: one per wait on an unknown outcome).
pub const PAYMENTS_TOTAL: &str = "dfm_payments_total";
/// Histogram of bank request latency (every POST and status query).
pub const BANK_LATENCY_SECONDS: &str = "dfm_bank_latency_seconds";
/// The only currency dfm pays in.
pub const CURRENCY_CODE: &str = "KZT";

pub struct BankConfig {
    /// The bank's base URL, without `/v1/disburse`.
    pub url: String,
    /// The account payments are made from (`[bank] payer_fa`).
    pub payer_fa: String,
    /// The whole-request timeout of one HTTP attempt.
    pub timeout: Duration,
    /// Orders in flight at once. Must be at least 1.
    pub concurrency: usize,
    /// Orders queued in the actor's mailbox before `send()` waits. Must be at least 1.
    pub mailbox_capacity: usize,
    pub backoff: Backoff,
    /// Authorities trusted for the gateway's certificate beside the public
    /// ones (`ca_cert` in the configuration).
    pub authorities: Vec<reqwest::Certificate>,
    /// `header.sender_id` of every request: `"dfm"`.
    pub sender_id: String,
}

// ----- the wire format (see CONTRACT.md, "Outbound: the bank") -----

#[derive(Debug, Serialize)]
pub struct DisburseRequest<'a> {
    pub header: RequestHeader<'a>,
    pub message: DisburseMessage<'a>,
}

#[derive(Debug, Serialize)]
pub struct RequestHeader<'a> {
    pub message_id: &'a str,
    pub message_ts: String,
    pub action: &'static str,
    pub sender_id: &'a str,
}

#[derive(Debug, Serialize)]
pub struct DisburseMessage<'a> {
    pub disburse: [DisburseItem<'a>; 1],
}

#[derive(Debug, Serialize)]
pub struct DisburseItem<'a> {
    pub reference_id: &'a str,
    pub payer_fa: &'a str,
    pub payee_fa: &'a str,
    /// KZT with two decimals, `"16446.25"`.
    pub amount: String,
    pub currency_code: &'static str,
    pub purpose: &'a str,
    pub note: &'a str,
}

/// The body of `POST /v1/disburse` for one order. `message_id` must be unique per
/// HTTP attempt; `reference_id` is the order's on every attempt.
pub fn disburse_request<'a>(
    order: &'a PaymentOrder,
    payer_fa: &'a str,
    sender_id: &'a str,
    message_id: &'a str,
    now: DateTime<Utc>,
) -> DisburseRequest<'a> {
    DisburseRequest {
        header: RequestHeader {
            message_id,
            message_ts: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            action: "disburse",
            sender_id,
        },
        message: DisburseMessage {
            disburse: [DisburseItem {
                reference_id: &order.reference_id,
                payer_fa,
                payee_fa: &order.payee_fa,
                amount: order.amount.to_string(),
                currency_code: CURRENCY_CODE,
                purpose: &order.purpose,
                note: &order.note,
            }],
        },
    }
}

/// One item's status, as in both the disburse response and the status response.
#[derive(Debug, Deserialize)]
struct ItemStatus {
    reference_id: String,
    status: String,
    #[serde(default)]
    status_reason_code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DisburseResponse {
    message: DisburseResponseMessage,
}

#[derive(Debug, Deserialize)]
struct DisburseResponseMessage {
    disburse_response: Vec<ItemStatus>,
}

/// What the bank said about one payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankAnswer {
    /// `SUCC` (succeeded) or `RJCT` (not, with the bank's reason code when given).
    Final {
        succeeded: bool,
        reason: Option<String>,
    },
    /// `PDNG`, `RCVD`, a status dfm does not know, or a body it cannot read: ask again.
    Unknown,
}

fn answer_of(item: &ItemStatus, reference_id: &str) -> BankAnswer {
    if item.reference_id != reference_id {
        return BankAnswer::Unknown;
    }
    match item.status.as_str() {
        "SUCC" => BankAnswer::Final {
            succeeded: true,
            reason: None,
        },
        "RJCT" => BankAnswer::Final {
            succeeded: false,
            reason: item
                .status_reason_code
                .clone()
                .filter(|code| !code.trim().is_empty()),
        },
        _ => BankAnswer::Unknown,
    }
}

/// Reads a 200 answer to `POST /v1/disburse` for `reference_id`. An answer about
/// another reference is not an answer about this one.
pub fn parse_disburse_response(body: &[u8], reference_id: &str) -> BankAnswer {
    match serde_json::from_slice::<DisburseResponse>(body) {
        Ok(response) => response
            .message
            .disburse_response
            .iter()
            .find(|item| item.reference_id == reference_id)
            .map_or(BankAnswer::Unknown, |item| answer_of(item, reference_id)),
        Err(_) => BankAnswer::Unknown,
    }
}

/// Reads a 200 answer to `GET /v1/disburse/status/{reference_id}`.
pub fn parse_status_response(body: &[u8], reference_id: &str) -> BankAnswer {
    match serde_json::from_slice::<ItemStatus>(body) {
        Ok(item) => answer_of(&item, reference_id),
        Err(_) => BankAnswer::Unknown,
    }
}

/// `{base}/v1/disburse/status/{reference_id}`, the reference percent-encoded
/// (everything but RFC 3986's unreserved characters).
pub fn status_url(base: &str, reference_id: &str) -> String {
    let mut url = format!("{}/v1/disburse/status/", base.trim_end_matches('/'));
    for byte in reference_id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url
}

// ----- the actor -----

/// Pays one order that is already in the store's payment outbox. Resolves once the
/// order has a concurrency permit (see the module's limits), not when it is paid.
/// A second `Disburse` of a reference that is in flight is ignored.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Disburse(pub PaymentOrder);

/// Start-up recovery: drives every order of the payment outbox to a final answer,
/// asking the bank for its status before posting anything. Resolves once the
/// outbox is read; the orders are fed to the actor in the background.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ResumeOutbox;

/// One order of the outbox being resumed: like [`Disburse`], but asks first.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ResumeOrder(pub PaymentOrder);

/// The first request for an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Post,
    Query,
}

/// What one HTTP exchange told us.
enum Reply {
    Final(BankAnswer),
    /// 404 on a status query: the bank never received the order.
    NotReceived,
    /// Anything else: the outcome is still unknown; the text says why, for the log.
    Unknown(String),
}

struct Shared {
    client: reqwest::Client,
    base_url: String,
    disburse_url: String,
    payer_fa: String,
    sender_id: String,
    backoff: Backoff,
    store: Arc<Store>,
    durability: GroupCommit,
    inbox: Inbox,
    metrics: Arc<Metrics>,
    /// Random per start, so that message ids never repeat across restarts.
    run_id: u64,
    /// Counts HTTP attempts, so that message ids never repeat within a run.
    next_message: AtomicU64,
    /// References being settled now: a second order for one of them is ignored.
    in_flight: Mutex<HashSet<String>>,
    /// A sweep of the outbox is running.
    sweeping: Arc<AtomicBool>,
}

impl Shared {
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn delay(&self, waits: &mut u32) -> Duration {
        let delay = self.backoff.delay(*waits, &mut rand::thread_rng());
        *waits = waits.saturating_add(1);
        delay
    }

    /// Drives one order to a final answer and logs it.
    async fn settle(&self, order: PaymentOrder, first: Step) {
        let mut waits: u32 = 0;
        // The transactional outbox: the order is on disk before the bank hears of it.
        while let Err(error) = self.durability.durable().await {
            let delay = self.delay(&mut waits);
            tracing::error!(%error, "the payment order is not durable; holding it back");
            tokio::time::sleep(delay).await;
        }
        match self.store.payment_order(&order.reference_id) {
            Ok(Some(_)) => {}
            Ok(None) => {
                // Either settled already (the family removed it) or never recorded: in
                // neither case may money leave.
                tracing::warn!("the order is not in the payment outbox; not sending it");
                self.in_flight().remove(&order.reference_id);
                return;
            }
            Err(error) => {
                // The order was just made durable; a read error is the disk's, and
                // the bank dedups by reference, so going on is safe.
                tracing::error!(%error, "could not read the payment outbox; going on");
            }
        }

        let mut step = first;
        let (mut posts, mut queries) = (0u32, 0u32);
        let answer = loop {
            let reply = match step {
                Step::Post => {
                    posts = posts.saturating_add(1);
                    self.post(&order).await
                }
                Step::Query => {
                    queries = queries.saturating_add(1);
                    self.query(&order.reference_id).await
                }
            };
            let why = match reply {
                Reply::Final(BankAnswer::Final { succeeded, reason }) => break (succeeded, reason),
                Reply::NotReceived => {
                    // Post at once: a status query comes after a wait or a restart.
                    tracing::info!(
                        posts,
                        queries,
                        "the bank never received the payment; posting it again"
                    );
                    step = Step::Post;
                    continue;
                }
                Reply::Final(BankAnswer::Unknown) => "pending at the bank".to_owned(),
                Reply::Unknown(why) => why,
            };
            self.metrics
                .inc(PAYMENTS_TOTAL, &[("status", "pending_retry")]);
            let delay = self.delay(&mut waits);
            tracing::warn!(
                posts,
                queries,
                why,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "payment outcome unknown; asking the bank again"
            );
            tokio::time::sleep(delay).await;
            step = Step::Query;
        };

        let (succeeded, reason) = answer;
        let status = if succeeded { "succeeded" } else { "rejected" };
        self.metrics.inc(PAYMENTS_TOTAL, &[("status", status)]);
        tracing::debug!(
            posts,
            queries,
            status,
            reason = reason.as_deref(),
            "payment final"
        );
        let entry = LogEntry::PaymentOutcome {
            family_id: order.family_id.clone(),
            reference_id: order.reference_id.clone(),
            succeeded,
            reason,
        };
        while let Err(error) = self.inbox.submit(std::slice::from_ref(&entry)) {
            // If the process dies before this succeeds, the order is still in the
            // outbox and the next start asks the bank again.
            let delay = self.delay(&mut waits);
            tracing::error!(%error, "could not log the payment outcome; retrying");
            tokio::time::sleep(delay).await;
        }
        self.in_flight().remove(&order.reference_id);
    }

    async fn post(&self, order: &PaymentOrder) -> Reply {
        let attempt = self.next_message.fetch_add(1, Ordering::Relaxed);
        let message_id = format!("{}.{:016x}.{attempt}", order.reference_id, self.run_id);
        let body = disburse_request(
            order,
            &self.payer_fa,
            &self.sender_id,
            &message_id,
            Utc::now(),
        );
        let started = Instant::now();
        let reply = match self
            .client
            .post(&self.disburse_url)
            .json(&body)
            .send()
            .await
        {
            Err(error) => Reply::Unknown(error.to_string()),
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Err(error) => Reply::Unknown(error.to_string()),
                    Ok(body) if status.is_success() => {
                        Reply::Final(parse_disburse_response(&body, &order.reference_id))
                    }
                    Ok(_) if status.is_client_error() => {
                        // dfm sent something the bank will not take. Not an outcome:
                        // keep asking (an operator sees this line) rather than guess.
                        tracing::error!(
                            status = status.as_u16(),
                            "the bank refused the disburse request"
                        );
                        Reply::Unknown(format!("HTTP {status}"))
                    }
                    Ok(_) => Reply::Unknown(format!("HTTP {status}")),
                }
            }
        };
        self.metrics
            .observe(BANK_LATENCY_SECONDS, &[], started.elapsed());
        reply
    }

    async fn query(&self, reference_id: &str) -> Reply {
        let started = Instant::now();
        let reply = match self
            .client
            .get(status_url(&self.base_url, reference_id))
            .send()
            .await
        {
            Err(error) => Reply::Unknown(error.to_string()),
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Err(error) => Reply::Unknown(error.to_string()),
                    Ok(_) if status == reqwest::StatusCode::NOT_FOUND => Reply::NotReceived,
                    Ok(body) if status.is_success() => {
                        Reply::Final(parse_status_response(&body, reference_id))
                    }
                    Ok(_) => Reply::Unknown(format!("HTTP {status}")),
                }
            }
        };
        self.metrics
            .observe(BANK_LATENCY_SECONDS, &[], started.elapsed());
        reply
    }
}

pub struct BankGateway {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
}

impl Actor for BankGateway {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(crate::outbox::SWEEP_EVERY, |actor, ctx| actor.sweep(ctx));
    }
}

impl BankGateway {
    /// Starts the gateway on the current arbiter.
    ///
    /// # Panics
    /// If `concurrency` or `mailbox_capacity` is 0 (the configuration rejects both).
    pub fn start_with(
        config: BankConfig,
        store: Arc<Store>,
        durability: GroupCommit,
        inbox: Inbox,
        metrics: Arc<Metrics>,
    ) -> Addr<BankGateway> {
        assert!(
            config.concurrency > 0,
            "bank concurrency must be at least 1"
        );
        assert!(
            config.mailbox_capacity > 0,
            "bank mailbox capacity must be at least 1"
        );
        let client = crate::outbox::gateway_client(config.timeout, &config.authorities);
        let base_url = config.url.trim_end_matches('/').to_owned();
        let shared = Arc::new(Shared {
            client,
            disburse_url: format!("{base_url}/v1/disburse"),
            base_url,
            payer_fa: config.payer_fa,
            sender_id: config.sender_id,
            backoff: config.backoff,
            store,
            durability,
            inbox,
            metrics,
            run_id: rand::random(),
            next_message: AtomicU64::new(1),
            in_flight: Mutex::new(HashSet::new()),
            sweeping: Arc::new(AtomicBool::new(false)),
        });
        let permits = Arc::new(Semaphore::new(config.concurrency));
        let mailbox_capacity = config.mailbox_capacity;
        BankGateway::create(move |ctx| {
            ctx.set_mailbox_capacity(mailbox_capacity);
            BankGateway { shared, permits }
        })
    }

    fn admit(
        &mut self,
        order: PaymentOrder,
        first: Step,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<()> {
        if !self.shared.in_flight().insert(order.reference_id.clone()) {
            tracing::debug!(reference_id = %order.reference_id, "payment already in flight; ignoring the repeat");
            return Box::pin(async {});
        }
        let (admitted, on_admitted) = oneshot::channel();
        let permits = Arc::clone(&self.permits);
        let shared = Arc::clone(&self.shared);
        // `wait`, not `spawn`: the actor takes no further message until this one has a
        // permit, so a full set of permits fills the mailbox and slows the senders.
        ctx.wait(
            async move { permits.acquire_owned().await }
                .into_actor(self)
                .map(move |permit, _actor, _ctx| {
                    let permit = permit.expect("the bank gateway never closes its semaphore");
                    let span = tracing::info_span!(
                        "payment",
                        reference_id = %order.reference_id,
                        family_id = %order.family_id,
                    );
                    actix::spawn(
                        async move {
                            shared.settle(order, first).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                    let _ = admitted.send(());
                }),
        );
        Box::pin(async move {
            // An error means the actor stopped before admitting the order; it stays
            // in the outbox for the next start.
            let _ = on_admitted.await;
        })
    }
}

impl Handler<Disburse> for BankGateway {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, Disburse(order): Disburse, ctx: &mut Context<Self>) -> Self::Result {
        self.admit(order, Step::Post, ctx)
    }
}

impl Handler<ResumeOrder> for BankGateway {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, ResumeOrder(order): ResumeOrder, ctx: &mut Context<Self>) -> Self::Result {
        // The order may have left before the crash: ask before posting (404 → post).
        self.admit(order, Step::Query, ctx)
    }
}

impl Handler<ResumeOutbox> for BankGateway {
    type Result = ();

    fn handle(&mut self, _: ResumeOutbox, ctx: &mut Context<Self>) {
        self.sweep(ctx);
    }
}

impl BankGateway {
    /// Feeds every order of the outbox to the actor as a [`ResumeOrder`] (status
    /// first, so nothing is posted twice; see [`crate::outbox`]). It finds the
    /// orders the dispatcher could not hand on while the mailbox was full, and at
    /// start those pending when the process stopped.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let store = Arc::clone(&self.shared.store);
        crate::outbox::sweep(
            "payments",
            &self.shared.sweeping,
            move |after| store.payment_outbox_page(after, crate::outbox::PAGE),
            |order: &PaymentOrder| order.reference_id.as_str(),
            ctx.address(),
            ResumeOrder,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifier::test_http::{serve, Reply as HttpReply, Request};
    use storage::ids::FamilyId;
    use storage::money::Money;
    use storage::store::FamilyCommit;
    use tokio::sync::Notify;

    fn order(reference_id: &str) -> PaymentOrder {
        PaymentOrder {
            reference_id: reference_id.to_owned(),
            family_id: FamilyId::parse("fam-000001").unwrap(),
            entitlement_id: "tsa".to_owned(),
            payee_fa: "KZ86125KZT5004100100@125".to_owned(),
            amount: Money::from_tiyn(1_644_625),
            purpose: "tsa 2026-11".to_owned(),
            note: "fam-000001 tsa".to_owned(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn request_has_the_contract_fields() {
        let order = order("pay-1");
        let now = DateTime::parse_from_rfc3339("2026-11-02T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let body = serde_json::to_value(disburse_request(
            &order,
            "KZ00PAYER@125",
            "dfm",
            "pay-1.1",
            now,
        ))
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "header": {
                    "message_id": "pay-1.1",
                    "message_ts": "2026-11-02T09:00:00.000Z",
                    "action": "disburse",
                    "sender_id": "dfm",
                },
                "message": {"disburse": [{
                    "reference_id": "pay-1",
                    "payer_fa": "KZ00PAYER@125",
                    "payee_fa": "KZ86125KZT5004100100@125",
                    "amount": "16446.25",
                    "currency_code": "KZT",
                    "purpose": "tsa 2026-11",
                    "note": "fam-000001 tsa",
                }]},
            })
        );
    }

    fn succeeded() -> BankAnswer {
        BankAnswer::Final {
            succeeded: true,
            reason: None,
        }
    }

    fn rejected(reason: Option<&str>) -> BankAnswer {
        BankAnswer::Final {
            succeeded: false,
            reason: reason.map(str::to_owned),
        }
    }

    fn check_disburse(body: &str, expected: BankAnswer) {
        assert_eq!(
            parse_disburse_response(body.as_bytes(), "pay-1"),
            expected,
            "{body}"
        );
    }

    #[test]
    fn disburse_responses() {
        let item = |status: &str, reason: &str| {
            format!(
                r#"{{"message":{{"disburse_response":[{{"reference_id":"pay-1","status":"{status}","status_reason_code":"{reason}"}}]}}}}"#
            )
        };
        check_disburse(&item("SUCC", ""), succeeded());
        check_disburse(
            &item("RJCT", "rjct.payee_fa.invalid"),
            rejected(Some("rjct.payee_fa.invalid")),
        );
        check_disburse(&item("RJCT", ""), rejected(None));
        check_disburse(&item("PDNG", ""), BankAnswer::Unknown);
        check_disburse(&item("RCVD", ""), BankAnswer::Unknown);
        check_disburse(&item("succ", ""), BankAnswer::Unknown);
        check_disburse(&item("PAID", ""), BankAnswer::Unknown);
        check_disburse(
            r#"{"message":{"disburse_response":[{"reference_id":"pay-1","status":"SUCC"}]}}"#,
            succeeded(),
        );
        check_disburse(
            r#"{"header":{"message_id":"x"},"message":{"disburse_response":[{"reference_id":"pay-1","status":"RJCT","status_reason_code":"rjct.amount.invalid","extra":1}]}}"#,
            rejected(Some("rjct.amount.invalid")),
        );
        // An answer about another reference says nothing about this one.
        check_disburse(
            r#"{"message":{"disburse_response":[{"reference_id":"pay-2","status":"SUCC"}]}}"#,
            BankAnswer::Unknown,
        );
        check_disburse(
            r#"{"message":{"disburse_response":[{"reference_id":"pay-2","status":"RJCT"},{"reference_id":"pay-1","status":"SUCC"}]}}"#,
            succeeded(),
        );
        check_disburse(
            r#"{"message":{"disburse_response":[]}}"#,
            BankAnswer::Unknown,
        );
        check_disburse(r#"{"message":{}}"#, BankAnswer::Unknown);
        check_disburse("", BankAnswer::Unknown);
        check_disburse("<html>502</html>", BankAnswer::Unknown);
    }

    fn check_status(body: &str, expected: BankAnswer) {
        assert_eq!(
            parse_status_response(body.as_bytes(), "pay-1"),
            expected,
            "{body}"
        );
    }

    #[test]
    fn status_responses() {
        check_status(
            r#"{"reference_id":"pay-1","status":"SUCC","status_reason_code":""}"#,
            succeeded(),
        );
        check_status(r#"{"reference_id":"pay-1","status":"SUCC"}"#, succeeded());
        check_status(
            r#"{"reference_id":"pay-1","status":"RJCT","status_reason_code":"rjct.payee_fa.invalid"}"#,
            rejected(Some("rjct.payee_fa.invalid")),
        );
        check_status(
            r#"{"reference_id":"pay-1","status":"RJCT","status_reason_code":null}"#,
            rejected(None),
        );
        check_status(
            r#"{"reference_id":"pay-1","status":"PDNG"}"#,
            BankAnswer::Unknown,
        );
        check_status(
            r#"{"reference_id":"pay-1","status":"RCVD"}"#,
            BankAnswer::Unknown,
        );
        check_status(
            r#"{"reference_id":"pay-9","status":"SUCC"}"#,
            BankAnswer::Unknown,
        );
        check_status(r#"{"status":"SUCC"}"#, BankAnswer::Unknown);
        check_status("not json", BankAnswer::Unknown);
    }

    #[test]
    fn status_urls() {
        let check = |base: &str, reference: &str, expected: &str| {
            assert_eq!(status_url(base, reference), expected);
        };
        check(
            "http://bank",
            "pay-1",
            "http://bank/v1/disburse/status/pay-1",
        );
        check(
            "http://bank/",
            "pay-1",
            "http://bank/v1/disburse/status/pay-1",
        );
        check(
            "http://bank",
            "a.b_c~d",
            "http://bank/v1/disburse/status/a.b_c~d",
        );
        check(
            "http://bank",
            "fam/1 2026-11",
            "http://bank/v1/disburse/status/fam%2F1%202026-11",
        );
    }

    // ----- the actor against a scripted bank -----

    struct Harness {
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        gateway: Addr<BankGateway>,
    }

    fn start(url: &str, orders: &[PaymentOrder]) -> Harness {
        let store = Arc::new(Store::open_temporary().unwrap());
        store
            .commit_family(&FamilyCommit {
                payments: orders.to_vec(),
                ..FamilyCommit::default()
            })
            .unwrap();
        let metrics = Arc::new(Metrics::default());
        let config = BankConfig {
            url: url.to_owned(),
            payer_fa: "KZ00PAYER@125".to_owned(),
            timeout: Duration::from_secs(2),
            concurrency: 4,
            mailbox_capacity: 4,
            backoff: Backoff {
                delay_ms_min: 1,
                delay_ms_max: 5,
            },
            sender_id: "dfm".to_owned(),
            authorities: Vec::new(),
        };
        let gateway = BankGateway::start_with(
            config,
            Arc::clone(&store),
            GroupCommit::start(Arc::clone(&store), Arc::clone(&metrics)),
            Inbox::new(Arc::clone(&store), Arc::new(Notify::new())),
            Arc::clone(&metrics),
        );
        Harness {
            store,
            metrics,
            gateway,
        }
    }

    fn outcomes(store: &Store) -> Vec<LogEntry> {
        store
            .read_log(0, 100)
            .unwrap()
            .into_iter()
            .map(|(_, entry)| entry)
            .filter(|entry| matches!(entry, LogEntry::PaymentOutcome { .. }))
            .collect()
    }

    /// Waits until `count` outcomes are logged; the deadline only bounds a failing test.
    async fn outcomes_eventually(store: &Store, count: usize) -> Vec<LogEntry> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = outcomes(store);
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{count} outcomes not logged in time: {found:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn item(status: &str, reason: &str) -> String {
        format!(
            r#"{{"message":{{"disburse_response":[{{"reference_id":"pay-1","status":"{status}","status_reason_code":"{reason}"}}]}}}}"#
        )
    }

    fn status_body(status: &str) -> String {
        format!(r#"{{"reference_id":"pay-1","status":"{status}"}}"#)
    }

    fn methods(requests: &[Request]) -> Vec<String> {
        requests
            .iter()
            .map(|request| format!("{} {}", request.method, request.path))
            .collect()
    }

    #[actix::test]
    async fn pending_then_status_success_logs_one_outcome() {
        let server = serve(|request, _| match request.method.as_str() {
            "POST" => HttpReply::new(200, item("PDNG", "")),
            _ => HttpReply::new(200, status_body("SUCC")),
        })
        .await;
        let order = order("pay-1");
        let harness = start(&server.url, std::slice::from_ref(&order));
        harness.gateway.send(Disburse(order.clone())).await.unwrap();

        let found = outcomes_eventually(&harness.store, 1).await;
        assert_eq!(
            found,
            vec![LogEntry::PaymentOutcome {
                family_id: order.family_id.clone(),
                reference_id: "pay-1".to_owned(),
                succeeded: true,
                reason: None,
            }]
        );
        assert_eq!(
            methods(&server.requests()),
            ["POST /v1/disburse", "GET /v1/disburse/status/pay-1"]
        );
        let body: serde_json::Value = serde_json::from_str(&server.requests()[0].body).unwrap();
        assert_eq!(body["message"]["disburse"][0]["amount"], "16446.25");
        assert_eq!(body["header"]["sender_id"], "dfm");
        // The gateway leaves the order for the family to settle.
        assert!(harness.store.payment_order("pay-1").unwrap().is_some());
        assert_eq!(
            harness
                .metrics
                .counter(PAYMENTS_TOTAL, &[("status", "succeeded")]),
            1
        );
        assert_eq!(
            harness
                .metrics
                .counter(PAYMENTS_TOTAL, &[("status", "pending_retry")]),
            1
        );
        // Nothing more happens afterwards.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(outcomes(&harness.store).len(), 1);
        assert_eq!(server.requests().len(), 2);
    }

    #[actix::test]
    async fn rejection_is_final_with_its_reason() {
        let server = serve(|_, _| HttpReply::new(200, item("RJCT", "rjct.payee_fa.invalid"))).await;
        let order = order("pay-1");
        let harness = start(&server.url, std::slice::from_ref(&order));
        harness.gateway.send(Disburse(order)).await.unwrap();

        let found = outcomes_eventually(&harness.store, 1).await;
        assert!(matches!(
            &found[0],
            LogEntry::PaymentOutcome { succeeded: false, reason: Some(reason), .. } if reason == "rjct.payee_fa.invalid"
        ));
        assert_eq!(server.requests().len(), 1);
        assert_eq!(
            harness
                .metrics
                .counter(PAYMENTS_TOTAL, &[("status", "rejected")]),
            1
        );
    }

    #[actix::test]
    async fn server_errors_then_not_received_posts_again_with_the_same_reference() {
        // POST → 500; status → 404 (never received); POST → SUCC.
        let server = serve(|request, index| match (request.method.as_str(), index) {
            ("POST", 0) => HttpReply::new(500, "{}"),
            ("GET", _) => HttpReply::new(404, "{}"),
            _ => HttpReply::new(200, item("SUCC", "")),
        })
        .await;
        let order = order("pay-1");
        let harness = start(&server.url, std::slice::from_ref(&order));
        harness.gateway.send(Disburse(order)).await.unwrap();

        outcomes_eventually(&harness.store, 1).await;
        let requests = server.requests();
        assert_eq!(
            methods(&requests),
            [
                "POST /v1/disburse",
                "GET /v1/disburse/status/pay-1",
                "POST /v1/disburse"
            ]
        );
        let bodies: Vec<serde_json::Value> = [&requests[0], &requests[2]]
            .iter()
            .map(|request| serde_json::from_str(&request.body).unwrap())
            .collect();
        assert_eq!(bodies[0]["message"]["disburse"][0]["reference_id"], "pay-1");
        assert_eq!(bodies[1]["message"]["disburse"][0]["reference_id"], "pay-1");
        assert_ne!(
            bodies[0]["header"]["message_id"],
            bodies[1]["header"]["message_id"]
        );
    }

    #[actix::test]
    async fn timeout_then_status_finds_the_payment() {
        // The bank takes the POST but answers after the client gave up.
        let server = serve(|request, _| match request.method.as_str() {
            "POST" => HttpReply::new(200, item("SUCC", "")).after(Duration::from_millis(500)),
            _ => HttpReply::new(200, status_body("SUCC")),
        })
        .await;
        let order = order("pay-1");
        let store = Arc::new(Store::open_temporary().unwrap());
        store
            .commit_family(&FamilyCommit {
                payments: vec![order.clone()],
                ..FamilyCommit::default()
            })
            .unwrap();
        let metrics = Arc::new(Metrics::default());
        let gateway = BankGateway::start_with(
            BankConfig {
                url: server.url.clone(),
                payer_fa: "KZ00PAYER@125".to_owned(),
                timeout: Duration::from_millis(100),
                concurrency: 1,
                mailbox_capacity: 1,
                backoff: Backoff {
                    delay_ms_min: 1,
                    delay_ms_max: 5,
                },
                sender_id: "dfm".to_owned(),
                authorities: Vec::new(),
            },
            Arc::clone(&store),
            GroupCommit::start(Arc::clone(&store), Arc::clone(&metrics)),
            Inbox::new(Arc::clone(&store), Arc::new(Notify::new())),
            Arc::clone(&metrics),
        );
        gateway.send(Disburse(order)).await.unwrap();

        let found = outcomes_eventually(&store, 1).await;
        assert!(matches!(
            &found[0],
            LogEntry::PaymentOutcome {
                succeeded: true,
                ..
            }
        ));
        assert_eq!(
            methods(&server.requests()),
            ["POST /v1/disburse", "GET /v1/disburse/status/pay-1"]
        );
    }

    #[actix::test]
    async fn resume_asks_before_posting() {
        let server = serve(|request, _| match request.method.as_str() {
            // pay-1 left before the crash; pay-2 never did.
            "GET" if request.path.ends_with("/pay-1") => HttpReply::new(200, status_body("SUCC")),
            "GET" => HttpReply::new(404, "{}"),
            _ => {
                let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
                let reference = body["message"]["disburse"][0]["reference_id"].as_str().unwrap().to_owned();
                HttpReply::new(
                    200,
                    format!(r#"{{"message":{{"disburse_response":[{{"reference_id":"{reference}","status":"SUCC"}}]}}}}"#),
                )
            }
        })
        .await;
        let harness = start(&server.url, &[order("pay-1"), order("pay-2")]);
        harness.gateway.send(ResumeOutbox).await.unwrap();

        let found = outcomes_eventually(&harness.store, 2).await;
        let mut references: Vec<&str> = found
            .iter()
            .map(|entry| match entry {
                LogEntry::PaymentOutcome { reference_id, .. } => reference_id.as_str(),
                _ => unreachable!(),
            })
            .collect();
        references.sort_unstable();
        assert_eq!(references, ["pay-1", "pay-2"]);
        let mut requests: Vec<String> = server
            .requests()
            .iter()
            .map(|request| {
                let body: serde_json::Value =
                    serde_json::from_str(&request.body).unwrap_or_default();
                let reference = body["message"]["disburse"][0]["reference_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                format!("{} {} {reference}", request.method, request.path)
            })
            .collect();
        requests.sort();
        // pay-1 is never posted: the bank already had it.
        assert_eq!(
            requests,
            [
                "GET /v1/disburse/status/pay-1 ",
                "GET /v1/disburse/status/pay-2 ",
                "POST /v1/disburse pay-2",
            ]
        );
    }

    #[actix::test]
    async fn a_repeat_in_flight_is_ignored() {
        let server = serve(|request, _| match request.method.as_str() {
            "POST" => HttpReply::new(200, item("SUCC", "")).after(Duration::from_millis(100)),
            _ => HttpReply::new(200, status_body("SUCC")),
        })
        .await;
        let order = order("pay-1");
        let harness = start(&server.url, std::slice::from_ref(&order));
        harness.gateway.send(Disburse(order.clone())).await.unwrap();
        harness.gateway.send(Disburse(order.clone())).await.unwrap();
        harness.gateway.send(Disburse(order)).await.unwrap();

        outcomes_eventually(&harness.store, 1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(outcomes(&harness.store).len(), 1);
        assert_eq!(server.requests().len(), 1);
    }

    #[actix::test]
    async fn an_order_missing_from_the_outbox_never_leaves() {
        let server = serve(|_, _| HttpReply::new(200, item("SUCC", ""))).await;
        let harness = start(&server.url, &[]);
        harness
            .gateway
            .send(Disburse(order("pay-1")))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(server.requests().is_empty());
        assert!(outcomes(&harness.store).is_empty());
    }
}
