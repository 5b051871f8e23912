//! What the notifier and the bank gateway share: their HTTP client, and the
//! outbox sweep, in which every order of an outbox is fed back to its actor, a
//! page at a time, each waiting for mailbox room on the sweep's own task, so
//! that the dispatcher never waits for a gateway.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::dev::ToEnvelope;
use actix::prelude::*;
use storage::StoreError;

/// Orders read per page; memory stays bounded whatever the size of the outbox.
pub const PAGE: usize = 1_000;

/// How often the notifier and the bank gateway sweep their outboxes for orders
/// they were not handed (the dispatcher hands on only while a mailbox has room).
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The client of one gateway: `timeout` per attempt, and `authorities`
/// trusted beside the public roots (`ca_cert` in the configuration).
pub fn gateway_client(
    timeout: std::time::Duration,
    authorities: &[reqwest::Certificate],
) -> reqwest::Client {
    authorities
        .iter()
        .fold(
            reqwest::Client::builder().timeout(timeout),
            |builder, authority| builder.add_root_certificate(authority.clone()),
        )
        .build()
        .expect("the HTTP client builds: rustls needs no system configuration")
}

/// One sweep at a time per outbox: `sweeping` is set while one runs. `read_page`
/// reads the orders after a key (exclusive), `key` gives an order's key, and
/// `message` wraps an order for `actor`. A store error ends the sweep; the next
/// one (or the next start) finds the orders again.
pub fn sweep<T, A, M>(
    what: &'static str,
    sweeping: &Arc<AtomicBool>,
    read_page: impl Fn(Option<&str>) -> Result<Vec<T>, StoreError> + 'static,
    key: fn(&T) -> &str,
    actor: Addr<A>,
    message: fn(T) -> M,
) where
    T: 'static,
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    if sweeping.swap(true, Ordering::SeqCst) {
        return;
    }
    let done = SweepDone(Arc::clone(sweeping));
    actix::spawn(async move {
        let _done = done;
        let mut after: Option<String> = None;
        let mut swept = 0usize;
        loop {
            let page = match read_page(after.as_deref()) {
                Ok(page) => page,
                Err(error) => {
                    tracing::error!(%error, what, "could not read the outbox; its orders wait for the next sweep");
                    return;
                }
            };
            let Some(last) = page.last() else { break };
            after = Some(key(last).to_owned());
            swept += page.len();
            for order in page {
                if actor.send(message(order)).await.is_err() {
                    return;
                }
            }
        }
        tracing::info!(swept, what, "the outbox is swept");
    });
}

/// Clears the sweeping flag when a sweep ends, however it ends.
struct SweepDone(Arc<AtomicBool>);

impl Drop for SweepDone {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}
