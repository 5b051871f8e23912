//! Durable timers and the monthly cycle. Reminders and expiries live in the
//! store's `timers` tree keyed by due time; this task turns due ones into log
//! entries for their families. The monthly cycle reaches every family with an
//! active monthly benefit through the `monthly` index, never a scan of all.

use std::sync::Arc;
use std::time::Duration;

use chrono::Datelike;
use storage::event::LogEntry;
use storage::ids::Month;
use storage::StoreError;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::inbox::Inbox;

/// Timers turned into log entries per tick.
pub const TIMERS_PER_TICK_MAX: usize = 1_000;
/// Cycle entries appended per log append.
pub const CYCLE_CHUNK: usize = 1_000;

/// Appends a cycle entry for every family with an active monthly benefit.
/// Returns how many families it reached. Running it twice pays nothing twice:
/// a family pays a period only if that period has no payment yet.
pub fn run_cycle(inbox: &Inbox, month: Month) -> Result<usize, StoreError> {
    let store = inbox.store().clone();
    let mut chunk = Vec::with_capacity(CYCLE_CHUNK);
    let mut reached = 0;
    for family_id in store.monthly_families() {
        chunk.push(LogEntry::CycleDue {
            family_id: family_id?,
            month,
        });
        if chunk.len() == CYCLE_CHUNK {
            reached += chunk.len();
            inbox.submit(&chunk)?;
            chunk.clear();
        }
    }
    reached += chunk.len();
    if !chunk.is_empty() {
        inbox.submit(&chunk)?;
    }
    Ok(reached)
}

/// Fires due timers every `tick`, and runs the monthly cycle on `cycle_day`.
pub async fn run(
    inbox: Inbox,
    clock: Arc<dyn Clock>,
    tick: Duration,
    cycle_day: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_cycle: Option<Month> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = clock.now();
        if let Err(error) = fire_due(&inbox, now) {
            tracing::error!(%error, "could not fire timers; retrying");
        }
        let today = crate::scoring::local_date(now);
        let month = Month::of(today);
        if today.day() >= cycle_day && last_cycle != Some(month) {
            match run_cycle(&inbox, month) {
                Ok(reached) => {
                    tracing::info!(%month, reached, "monthly cycle ran");
                    last_cycle = Some(month);
                }
                Err(error) => tracing::error!(%error, "monthly cycle failed; retrying"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Turns every timer due at `now` into a log entry, then removes it. A crash
/// between the two fires it again, which the machine ignores.
pub fn fire_due(inbox: &Inbox, now: chrono::DateTime<chrono::Utc>) -> Result<usize, StoreError> {
    let store = inbox.store().clone();
    let mut fired = 0;
    loop {
        let due = store.due_timers(now, TIMERS_PER_TICK_MAX)?;
        if due.is_empty() {
            return Ok(fired);
        }
        let entries: Vec<LogEntry> = due
            .iter()
            .map(|timer| LogEntry::TimerFired {
                family_id: timer.family_id.clone(),
                entitlement_id: timer.entitlement_id.clone(),
                kind: timer.kind,
                due_at: timer.due_at,
            })
            .collect();
        inbox.submit(&entries)?;
        store.remove_timers(&due)?;
        fired += due.len();
    }
}
