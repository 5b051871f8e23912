//! The notifier: the only thing in dfm that talks to the SMS gateway.
//!
//! It takes orders that are already in the store's SMS outbox (the family actor
//! wrote them in the same commit as the decision that needs the SMS), posts
//! each to `POST {url}/v1/messages` with the order's reference, and removes the
//! order from the outbox once the gateway has taken it (2xx). Timeouts, connection
//! errors, 408, 429 and 5xx are retried with [`Backoff`] forever: the reference is
//! the same on every retry, so the gateway sends a repeated reference once. Any
//! other 4xx is permanent: the message is logged (by reference), counted and
//! dropped from the outbox, since repeating a request the gateway calls malformed
//! would never succeed.
//!
//! # Limits
//! - `concurrency`: requests in flight at once (a semaphore). A message holds its
//!   permit until it is sent or dropped, including while it waits to retry.
//! - `mailbox_capacity`: messages queued in the actor's mailbox. While every permit
//!   is taken the actor stops taking messages from its mailbox, the mailbox fills,
//!   and senders that use `send().await` wait: that is the backpressure. (`do_send`
//!   ignores the mailbox capacity; callers must not use it for bulk sends.)
//!
//! # Never
//! The notifier never logs a phone number or a message text: both are personal
//! data. The reference carries none and is what every log line names.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;
use storage::store::SmsOrder;
use storage::Store;
use tokio::sync::{oneshot, Semaphore};
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::metrics::Metrics;

/// Counter of SMS attempts, labelled `outcome="sent|retried|failed"`.
pub const SMS_TOTAL: &str = "dfm_sms_total";
/// Histogram of SMS gateway request latency (every HTTP attempt).
pub const SMS_LATENCY_SECONDS: &str = "dfm_sms_latency_seconds";

pub struct NotifierConfig {
    /// The gateway's base URL, without `/v1/messages`.
    pub url: String,
    /// The whole-request timeout of one HTTP attempt.
    pub timeout: Duration,
    /// SMS in flight at once. Must be at least 1.
    pub concurrency: usize,
    /// Messages queued in the actor's mailbox before `send()` waits. Must be at least 1.
    pub mailbox_capacity: usize,
    pub backoff: Backoff,
    /// Authorities trusted for the gateway's certificate beside the public
    /// ones (`ca_cert` in the configuration).
    pub authorities: Vec<reqwest::Certificate>,
}

/// What to do after one HTTP attempt, from its status (`None`: no response at
/// all, a timeout or a connection error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The gateway has taken the message.
    Sent,
    /// Try again later with the same reference.
    Retry,
    /// The gateway will never take this request; drop it.
    Permanent,
}

pub fn classify(status: Option<u16>) -> Delivery {
    match status {
        None => Delivery::Retry,
        Some(200..=299) => Delivery::Sent,
        // Request timeout and rate limiting are the gateway's state, not the message's.
        Some(408 | 429) => Delivery::Retry,
        Some(400..=499) => Delivery::Permanent,
        // 5xx, and the 1xx/3xx that the client did not resolve itself: a gateway that is
        // misbehaving now may recover, and a consent SMS is worth waiting for.
        Some(_) => Delivery::Retry,
    }
}

/// The body of `POST /v1/messages`.
#[derive(Debug, Serialize)]
pub struct MessageRequest<'a> {
    pub to: &'a str,
    pub text: &'a str,
    pub reference: &'a str,
}

impl<'a> MessageRequest<'a> {
    pub fn new(order: &'a SmsOrder) -> MessageRequest<'a> {
        MessageRequest {
            to: order.to.as_str(),
            text: &order.text,
            reference: &order.reference,
        }
    }
}

/// Sends one SMS whose order is already in the store's outbox. Resolves once the
/// message has a concurrency permit (see the module's limits), not when it is sent.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SendSms(pub SmsOrder);

/// Sends every order in the store's SMS outbox: start-up recovery of the SMS that
/// were pending when the process stopped. Resolves once the orders are read; they
/// are fed to the actor in the background, each waiting for mailbox room.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ResumeOutbox;

/// What every delivery task shares.
struct Shared {
    client: reqwest::Client,
    messages_url: String,
    backoff: Backoff,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    /// References being delivered now: a second order for one of them is ignored.
    in_flight: Mutex<HashSet<String>>,
    /// A sweep of the outbox is running.
    sweeping: Arc<AtomicBool>,
}

impl Shared {
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends until the gateway takes the message or refuses it for good, then
    /// removes the order from the outbox.
    async fn deliver(&self, order: SmsOrder) {
        // A sweep may hand on an order that was delivered meanwhile.
        if matches!(self.store.sms_pending(&order.reference), Ok(false)) {
            self.in_flight().remove(&order.reference);
            return;
        }
        let body = MessageRequest::new(&order);
        let mut retries: u32 = 0;
        loop {
            let started = Instant::now();
            let (status, failure) = match self
                .client
                .post(&self.messages_url)
                .json(&body)
                .send()
                .await
            {
                Ok(response) => {
                    let status = response.status().as_u16();
                    // Read the body so that the connection can be reused; its
                    // message id is of no use to dfm.
                    match response.bytes().await {
                        Ok(_) => (Some(status), None),
                        Err(error) => (None, Some(error.to_string())),
                    }
                }
                Err(error) => (None, Some(error.to_string())),
            };
            self.metrics
                .observe(SMS_LATENCY_SECONDS, &[], started.elapsed());
            match classify(status) {
                Delivery::Sent => {
                    self.metrics.inc(SMS_TOTAL, &[("outcome", "sent")]);
                    tracing::debug!(retries, "sms taken by the gateway");
                    break;
                }
                Delivery::Permanent => {
                    self.metrics.inc(SMS_TOTAL, &[("outcome", "failed")]);
                    tracing::error!(
                        status,
                        retries,
                        "the SMS gateway refused the message for good; dropping it"
                    );
                    break;
                }
                Delivery::Retry => {
                    self.metrics.inc(SMS_TOTAL, &[("outcome", "retried")]);
                    let delay = self.backoff.delay(retries, &mut rand::thread_rng());
                    tracing::warn!(
                        status,
                        failure,
                        retries,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "sms not taken; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    retries = retries.saturating_add(1);
                }
            }
        }
        if let Err(error) = self.store.remove_sms(&order.reference) {
            // The order stays in the outbox and is sent again after a restart; the
            // gateway drops the repeat by its reference.
            tracing::error!(%error, "could not remove a settled SMS from the outbox");
        }
        self.in_flight().remove(&order.reference);
    }
}

pub struct Notifier {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
}

impl Actor for Notifier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(crate::outbox::SWEEP_EVERY, |actor, ctx| actor.sweep(ctx));
    }
}

impl Notifier {
    /// Starts the notifier on the current arbiter.
    ///
    /// # Panics
    /// If `concurrency` or `mailbox_capacity` is 0 (the configuration rejects both).
    pub fn start_with(
        config: NotifierConfig,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    ) -> Addr<Notifier> {
        assert!(
            config.concurrency > 0,
            "notifier concurrency must be at least 1"
        );
        assert!(
            config.mailbox_capacity > 0,
            "notifier mailbox capacity must be at least 1"
        );
        let client = crate::outbox::gateway_client(config.timeout, &config.authorities);
        let shared = Arc::new(Shared {
            client,
            messages_url: format!("{}/v1/messages", config.url.trim_end_matches('/')),
            backoff: config.backoff,
            store,
            metrics,
            in_flight: Mutex::new(HashSet::new()),
            sweeping: Arc::new(AtomicBool::new(false)),
        });
        let permits = Arc::new(Semaphore::new(config.concurrency));
        let mailbox_capacity = config.mailbox_capacity;
        Notifier::create(move |ctx| {
            ctx.set_mailbox_capacity(mailbox_capacity);
            Notifier { shared, permits }
        })
    }
}

impl Handler<SendSms> for Notifier {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, SendSms(order): SendSms, ctx: &mut Context<Self>) -> Self::Result {
        if !self.shared.in_flight().insert(order.reference.clone()) {
            tracing::debug!(reference = %order.reference, "sms already in flight; ignoring the repeat");
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
                    let permit = permit.expect("the notifier never closes its semaphore");
                    let span = tracing::info_span!(
                        "sms",
                        reference = %order.reference,
                        family_id = order.family_id.as_ref().map(|id| id.as_str()),
                    );
                    actix::spawn(
                        async move {
                            shared.deliver(order).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                    let _ = admitted.send(());
                }),
        );
        Box::pin(async move {
            // An error means the actor stopped before admitting the message; the order
            // stays in the outbox for the next start.
            let _ = on_admitted.await;
        })
    }
}

impl Handler<ResumeOutbox> for Notifier {
    type Result = ();

    fn handle(&mut self, _: ResumeOutbox, ctx: &mut Context<Self>) {
        self.sweep(ctx);
    }
}

impl Notifier {
    /// Feeds every order of the outbox to the actor (see [`crate::outbox`]).
    /// Orders in flight or delivered meanwhile are skipped when their turn comes.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let store = Arc::clone(&self.shared.store);
        crate::outbox::sweep(
            "sms",
            &self.shared.sweeping,
            move |after| store.sms_outbox_page(after, crate::outbox::PAGE),
            |order: &SmsOrder| order.reference.as_str(),
            ctx.address(),
            SendSms,
        );
    }
}

/// A throwaway HTTP/1.1 server for the gateway actors' tests: one request per
/// connection, answered by a closure. The end-to-end tests use the real
/// simulators of the `dfm` crate instead.
#[cfg(test)]
pub(crate) mod test_http {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    #[derive(Debug, Clone)]
    pub struct Request {
        pub method: String,
        pub path: String,
        pub body: String,
    }

    /// An answer: status, JSON body, and how long to wait before sending it.
    pub struct Reply {
        pub status: u16,
        pub body: String,
        pub delay: std::time::Duration,
    }

    impl Reply {
        pub fn new(status: u16, body: impl Into<String>) -> Reply {
            Reply {
                status,
                body: body.into(),
                delay: std::time::Duration::ZERO,
            }
        }

        pub fn after(mut self, delay: std::time::Duration) -> Reply {
            self.delay = delay;
            self
        }
    }

    pub struct TestServer {
        pub url: String,
        requests: Arc<Mutex<Vec<Request>>>,
    }

    impl TestServer {
        pub fn requests(&self) -> Vec<Request> {
            self.requests.lock().unwrap().clone()
        }
    }

    /// Serves on `127.0.0.1:0`. `respond` gets the request and its 0-based index
    /// among all requests and returns the reply.
    pub async fn serve<F>(respond: F) -> TestServer
    where
        F: Fn(&Request, usize) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let respond = Arc::new(respond);
        let seen = Arc::clone(&requests);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let respond = Arc::clone(&respond);
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let _ = answer(stream, |request| {
                        let index = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(request.clone());
                            seen.len() - 1
                        };
                        respond(request, index)
                    })
                    .await;
                });
            }
        });
        TestServer { url, requests }
    }

    async fn answer(
        mut stream: TcpStream,
        respond: impl FnOnce(&Request) -> Reply,
    ) -> std::io::Result<()> {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..read]);
            if let Some(at) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let mut lines = head.lines();
        let mut first = lines.next().unwrap_or_default().split(' ');
        let method = first.next().unwrap_or_default().to_owned();
        let path = first.next().unwrap_or_default().to_owned();
        let length: usize = lines
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse().ok())
            .unwrap_or(0);
        while buffer.len() < head_end + length {
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                break;
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
        let body = String::from_utf8_lossy(&buffer[head_end..]).into_owned();
        let reply = respond(&Request { method, path, body });
        tokio::time::sleep(reply.delay).await;
        let response = format!(
            "HTTP/1.1 {} Test\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
            reply.status,
            reply.body.len(),
            reply.body
        );
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::test_http::{serve, Reply};
    use super::*;
    use chrono::Utc;
    use storage::ids::Phone;

    fn check(status: Option<u16>, expected: Delivery) {
        assert_eq!(classify(status), expected, "status {status:?}");
    }

    #[test]
    fn classify_statuses() {
        check(None, Delivery::Retry);
        check(Some(200), Delivery::Sent);
        check(Some(202), Delivery::Sent);
        check(Some(204), Delivery::Sent);
        check(Some(400), Delivery::Permanent);
        check(Some(401), Delivery::Permanent);
        check(Some(404), Delivery::Permanent);
        check(Some(408), Delivery::Retry);
        check(Some(413), Delivery::Permanent);
        check(Some(422), Delivery::Permanent);
        check(Some(429), Delivery::Retry);
        check(Some(500), Delivery::Retry);
        check(Some(502), Delivery::Retry);
        check(Some(503), Delivery::Retry);
        check(Some(504), Delivery::Retry);
        check(Some(302), Delivery::Retry);
        check(Some(100), Delivery::Retry);
    }

    fn order(reference: &str) -> SmsOrder {
        SmsOrder {
            reference: reference.to_owned(),
            to: Phone::parse("+77011234567").unwrap(),
            text: "Ассалаумағалейкум #4821".to_owned(),
            family_id: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn request_body_has_the_contract_fields() {
        let order = order("sms-1");
        let body = serde_json::to_value(MessageRequest::new(&order)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"to": "+77011234567", "text": "Ассалаумағалейкум #4821", "reference": "sms-1"})
        );
    }

    fn config(url: &str) -> NotifierConfig {
        NotifierConfig {
            url: url.to_owned(),
            timeout: Duration::from_secs(2),
            concurrency: 2,
            mailbox_capacity: 4,
            backoff: Backoff {
                delay_ms_min: 1,
                delay_ms_max: 5,
            },
            authorities: Vec::new(),
        }
    }

    /// Polls `done` until it holds; the deadline only bounds a failing test.
    async fn eventually(mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "condition not reached in time");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[actix::test]
    async fn retries_server_errors_then_removes_the_order() {
        let server = serve(|_, index| {
            if index < 2 {
                Reply::new(500, "{}")
            } else {
                Reply::new(202, r#"{"message_id":"m-1"}"#)
            }
        })
        .await;
        let store = Arc::new(Store::open_temporary().unwrap());
        let metrics = Arc::new(Metrics::default());
        let order = order("sms-retry");
        store.put_sms(&order).unwrap();
        let notifier = Notifier::start_with(
            config(&server.url),
            Arc::clone(&store),
            Arc::clone(&metrics),
        );
        notifier.send(SendSms(order)).await.unwrap();

        eventually(|| store.sms_outbox().unwrap().is_empty()).await;
        let requests = server.requests();
        assert_eq!(requests.len(), 3);
        for request in &requests {
            assert_eq!(request.method, "POST");
            assert_eq!(request.path, "/v1/messages");
            let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
            assert_eq!(
                body["reference"], "sms-retry",
                "the same reference on every retry"
            );
        }
        assert_eq!(metrics.counter(SMS_TOTAL, &[("outcome", "retried")]), 2);
        assert_eq!(metrics.counter(SMS_TOTAL, &[("outcome", "sent")]), 1);
    }

    #[actix::test]
    async fn permanent_refusal_drops_the_order() {
        let server = serve(|_, _| Reply::new(400, r#"{"error":"bad number"}"#)).await;
        let store = Arc::new(Store::open_temporary().unwrap());
        let metrics = Arc::new(Metrics::default());
        let order = order("sms-refused");
        store.put_sms(&order).unwrap();
        let notifier = Notifier::start_with(
            config(&server.url),
            Arc::clone(&store),
            Arc::clone(&metrics),
        );
        notifier.send(SendSms(order)).await.unwrap();

        eventually(|| store.sms_outbox().unwrap().is_empty()).await;
        assert_eq!(server.requests().len(), 1);
        assert_eq!(metrics.counter(SMS_TOTAL, &[("outcome", "failed")]), 1);
    }

    #[actix::test]
    async fn resume_sends_every_pending_order_once() {
        let server = serve(|_, _| Reply::new(202, r#"{"message_id":"m"}"#)).await;
        let store = Arc::new(Store::open_temporary().unwrap());
        let metrics = Arc::new(Metrics::default());
        for index in 0..10 {
            store.put_sms(&order(&format!("sms-{index}"))).unwrap();
        }
        let notifier = Notifier::start_with(
            config(&server.url),
            Arc::clone(&store),
            Arc::clone(&metrics),
        );
        notifier.send(ResumeOutbox).await.unwrap();

        eventually(|| store.sms_outbox().unwrap().is_empty()).await;
        let mut references: Vec<String> = server
            .requests()
            .iter()
            .map(|request| {
                let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
                body["reference"].as_str().unwrap().to_owned()
            })
            .collect();
        references.sort();
        let expected: Vec<String> = {
            let mut expected: Vec<String> = (0..10).map(|index| format!("sms-{index}")).collect();
            expected.sort();
            expected
        };
        assert_eq!(references, expected);
        assert_eq!(metrics.counter(SMS_TOTAL, &[("outcome", "sent")]), 10);
    }

    #[actix::test]
    async fn a_full_set_of_permits_holds_the_sender_back() {
        let hold = Duration::from_millis(200);
        let server = serve(move |_, _| Reply::new(202, r#"{"message_id":"m"}"#).after(hold)).await;
        let store = Arc::new(Store::open_temporary().unwrap());
        let metrics = Arc::new(Metrics::default());
        let mut config = config(&server.url);
        config.concurrency = 1;
        config.mailbox_capacity = 1;
        let notifier = Notifier::start_with(config, Arc::clone(&store), Arc::clone(&metrics));
        for reference in ["sms-a", "sms-b"] {
            store.put_sms(&order(reference)).unwrap();
        }
        notifier.send(SendSms(order("sms-a"))).await.unwrap();
        let started = Instant::now();
        // The only permit is busy with sms-a until the gateway answers it.
        notifier.send(SendSms(order("sms-b"))).await.unwrap();
        assert!(
            started.elapsed() >= hold / 2,
            "admitted after {:?}",
            started.elapsed()
        );
        assert_eq!(metrics.counter(SMS_TOTAL, &[("outcome", "sent")]), 1);

        eventually(|| store.sms_outbox().unwrap().is_empty()).await;
        assert_eq!(server.requests().len(), 2);
    }

    #[actix::test]
    async fn timeouts_are_retried() {
        // The first request hangs past the client's timeout; the second is answered.
        let server = serve(|_, index| {
            let reply = Reply::new(202, r#"{"message_id":"m"}"#);
            if index == 0 {
                reply.after(Duration::from_millis(500))
            } else {
                reply
            }
        })
        .await;
        let store = Arc::new(Store::open_temporary().unwrap());
        let metrics = Arc::new(Metrics::default());
        let order = order("sms-slow");
        store.put_sms(&order).unwrap();
        let mut config = config(&server.url);
        config.timeout = Duration::from_millis(100);
        let notifier = Notifier::start_with(config, Arc::clone(&store), Arc::clone(&metrics));
        notifier.send(SendSms(order)).await.unwrap();

        eventually(|| store.sms_outbox().unwrap().is_empty()).await;
        assert!(metrics.counter(SMS_TOTAL, &[("outcome", "retried")]) >= 1);
        assert_eq!(metrics.counter(SMS_TOTAL, &[("outcome", "sent")]), 1);
    }
}
