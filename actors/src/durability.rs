//! Group commit: many writers wait for one sled flush.
//!
//! A writer that must not answer before its writes are durable (the feed API, the
//! SMS callback, the bank gateway before a payment leaves) calls
//! [`GroupCommit::durable`]. One flusher thread runs flush after flush; every waiter
//! whose writes happened before a flush started is woken when it ends. Under load
//! one flush serves hundreds of requests; there is never a flush per event.

use std::sync::Arc;
use std::time::Instant;

use storage::Store;

use crate::metrics::Metrics;
use tokio::sync::{mpsc, oneshot};

/// Waiters queued for the next flush before new ones wait for room.
pub const FLUSH_WAITERS_MAX: usize = 65_536;

#[derive(Debug, Clone, thiserror::Error)]
#[error("the store could not be flushed: {0}")]
pub struct FlushError(pub String);

#[derive(Clone)]
pub struct GroupCommit {
    waiters: mpsc::Sender<oneshot::Sender<Result<(), FlushError>>>,
}

impl GroupCommit {
    /// Starts the flusher thread. It stops when every handle is dropped. Each flush
    /// is timed in `dfm_flush_seconds`; `dfm_flush_waiters_total` counts the writers
    /// it served.
    pub fn start(store: Arc<Store>, metrics: Arc<Metrics>) -> GroupCommit {
        let (sender, mut receiver) =
            mpsc::channel::<oneshot::Sender<Result<(), FlushError>>>(FLUSH_WAITERS_MAX);
        std::thread::Builder::new()
            .name("dfm-group-commit".to_owned())
            .spawn(move || {
                while let Some(first) = receiver.blocking_recv() {
                    let mut waiters = vec![first];
                    while let Ok(next) = receiver.try_recv() {
                        waiters.push(next);
                    }
                    let started = Instant::now();
                    let result = store
                        .flush()
                        .map(|_| ())
                        .map_err(|e| FlushError(e.to_string()));
                    metrics.observe("dfm_flush_seconds", &[], started.elapsed());
                    metrics.add("dfm_flush_waiters_total", &[], waiters.len() as u64);
                    for waiter in waiters {
                        let _ = waiter.send(result.clone());
                    }
                }
            })
            .expect("the group-commit thread starts");
        GroupCommit { waiters: sender }
    }

    /// Returns once everything written before the call is on disk.
    pub async fn durable(&self) -> Result<(), FlushError> {
        let (sender, receiver) = oneshot::channel();
        self.waiters
            .send(sender)
            .await
            .map_err(|_| FlushError("the flusher has stopped".to_owned()))?;
        receiver
            .await
            .map_err(|_| FlushError("the flusher has stopped".to_owned()))?
    }
}
