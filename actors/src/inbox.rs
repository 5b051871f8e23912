//! The way into the feed log for inputs that do not come from the feed API: SMS
//! replies, fired timers, payment outcomes, cycles and operator actions. Appends
//! and wakes the dispatcher.

use std::sync::Arc;

use storage::event::LogEntry;
use storage::{Store, StoreError};
use tokio::sync::Notify;

#[derive(Clone)]
pub struct Inbox {
    store: Arc<Store>,
    wake: Arc<Notify>,
}

impl Inbox {
    pub fn new(store: Arc<Store>, wake: Arc<Notify>) -> Inbox {
        Inbox { store, wake }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Appends entries to the log (not yet durable) and wakes the dispatcher.
    pub fn submit(&self, entries: &[LogEntry]) -> Result<Vec<u64>, StoreError> {
        let seqs = self.store.append_internal(entries)?;
        self.wake();
        Ok(seqs)
    }

    /// Tells the dispatcher that the log has grown.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}
