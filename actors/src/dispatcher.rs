//! The dispatcher and the directory: they turn the durable log into ordered
//! messages for family actors.
//!
//! The dispatcher is the only reader of the log. It reads a batch, routes every
//! entry to its family (citizen events through the citizen index; facts of a
//! citizen in no family go to the orphan store directly), groups the batch by
//! family so that each actor gets one message per batch, waits for all of them,
//! then moves the applied watermark. Order per family is log order. A member's
//! removal is a barrier: everything before it is applied before the citizen's
//! next facts go to the orphan store.
//!
//! The directory activates a family actor on demand from sled, spreads actors
//! over one arbiter per core, and passivates the idle and the least recently used
//! above a cap. A dead actor (its handler panicked) is removed and re-activated
//! from sled; an input that panics every time is set aside in the quarantine tree
//! after [`DispatcherConfig::poison_tries_max`] tries.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::stream::{self, StreamExt};
use storage::event::{EventData, LogEntry, OperatorAction, Subject};
use storage::ids::{FamilyId, Iin};
use storage::record::CitizenFacts;
use storage::store::{Counted, QuarantineRecord};
use storage::{Store, StoreError};
use tokio::sync::{watch, Notify};

use crate::apply;
use crate::bank::Disburse;
use crate::family::{Apply, FamilyActor, FamilyEnvironment, FamilyError, FamilyInput, Inputs};
use crate::metrics::Metrics;
use crate::notifier::SendSms;
use storage::store::FamilyCommit;

#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Log entries read and dispatched per batch.
    pub batch_entries_max: usize,
    /// Family actors alive at once; above it the least recently used are passivated.
    pub active_families_max: usize,
    /// A family with no message for this long is passivated.
    pub idle_after: Duration,
    /// Family messages in flight at once within a batch.
    pub concurrency: usize,
    /// Tries of an input that kills its actor before it is set aside.
    pub poison_tries_max: u32,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            batch_entries_max: 2048,
            active_families_max: ACTIVE_FAMILIES_MAX_DEFAULT,
            idle_after: Duration::from_secs(300),
            concurrency: 256,
            poison_tries_max: 3,
        }
    }
}

struct Slot {
    address: Addr<FamilyActor>,
    last_used: u64,
}

#[derive(Default)]
struct DirectoryInner {
    actors: HashMap<FamilyId, Slot>,
    /// last_used tick → family, oldest first.
    recency: BTreeMap<u64, FamilyId>,
    passivated: u64,
}

/// Shards of the directory: lookups for different families rarely wait on
/// each other.
pub const DIRECTORY_SHARDS: usize = 16;

/// Family actors alive at once unless configured (`actors.active_families_max`).
/// An active family holds about 7 KB: at 1 million families stored, a feed to
/// 20,000 of them grew the service by 416 MB with a cap of 20,000 and by
/// 289 MB with 2,000 (BENCHMARKS.md, ninth session). Feeds spread over a
/// national population find few families still active either way: at six
/// million families 10,000 kept the feed's rate and took 70–88 MiB off the
/// service's peak, which 20,000 left above 2 GB (twelfth session).
pub const ACTIVE_FAMILIES_MAX_DEFAULT: usize = 10_000;

/// Threads that read a batch's inactive families at once (see
/// `Dispatcher::prefetch`): disk reads in flight, not cores.
const PREFETCH_THREADS: usize = 16;
/// Inactive families a prefetch thread is worth starting for.
const PREFETCH_PER_THREAD_MIN: usize = 8;

/// Threads worth reading `reads` items on, if more than one.
fn prefetch_threads(reads: usize) -> Option<usize> {
    Some((reads / PREFETCH_PER_THREAD_MIN).min(PREFETCH_THREADS)).filter(|threads| *threads >= 2)
}

/// An operator's re-evaluation of the family, as a re-score sends one to each
/// family whose outcome the new rules change.
fn is_reevaluation(input: &FamilyInput) -> bool {
    matches!(
        input,
        FamilyInput::Internal(LogEntry::Operator {
            action: OperatorAction::Reevaluate,
            ..
        })
    )
}

/// Written changes go out: SMS to the notifier, payments to the bank gateway.
/// Their mailboxes are bounded; when one is full the order is not handed on (it
/// is in the outbox, and the actor's periodic sweep finds it), so a gateway
/// that is down never holds the feeds back.
fn hand_on(environment: &FamilyEnvironment, metrics: &Metrics, commits: Vec<FamilyCommit>) {
    if !environment.outbound {
        return;
    }
    for commit in commits {
        let mut sms_deferred = false;
        for order in commit.sms {
            if environment.notifier.try_send(SendSms(order)).is_err() {
                sms_deferred = true;
                metrics.inc("dfm_handon_deferred_total", &[("to", "notifier")]);
            }
        }
        let mut payments_deferred = false;
        for order in commit.payments {
            if environment.bank.try_send(Disburse(order)).is_err() {
                payments_deferred = true;
                metrics.inc("dfm_handon_deferred_total", &[("to", "bank")]);
            }
        }
        // One small message asks for a sweep (a sweep already running ignores
        // it); the sweep waits for mailbox room on its own task.
        if sms_deferred {
            environment.notifier.do_send(crate::notifier::ResumeOutbox);
        }
        if payments_deferred {
            environment.bank.do_send(crate::bank::ResumeOutbox);
        }
    }
}

/// Test-only fault injection: a batch with a family whose id starts with
/// `failpoint-slow-commit` is written 300 ms late, so that a test can act while
/// its commit is unwritten. Compiled into debug builds only.
#[cfg(debug_assertions)]
fn commit_delay(batch: &[(FamilyId, Inputs)]) -> Duration {
    let slow = batch
        .iter()
        .any(|(family_id, _)| family_id.as_str().starts_with("failpoint-slow-commit"));
    Duration::from_millis(if slow { 300 } else { 0 })
}

#[cfg(not(debug_assertions))]
fn commit_delay(_batch: &[(FamilyId, Inputs)]) -> Duration {
    Duration::ZERO
}

/// Who is active, and where: a sharded `FamilyId → Addr` map with a recency
/// order per shard.
pub struct Directory {
    shards: Vec<Mutex<DirectoryInner>>,
    tick: std::sync::atomic::AtomicU64,
    arbiters: Vec<ArbiterHandle>,
    environment: Arc<FamilyEnvironment>,
    /// The cap of active families in each shard.
    shard_capacity: usize,
}

/// FNV-1a of the id, then MurmurHash3's finaliser: FNV alone leaves the high
/// bits the same for ids that differ only in their last characters (as
/// `F00000001` … `F00000009` do), which put them all in one directory shard.
fn spread(family_id: &FamilyId) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in family_id.as_str().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

fn arbiter_index(family_id: &FamilyId, count: usize) -> usize {
    usize::try_from(spread(family_id) % count as u64).expect("index below count")
}

fn shard_index(family_id: &FamilyId) -> usize {
    // The high bits, so that the shard does not follow the arbiter choice.
    usize::try_from((spread(family_id) >> 32) % DIRECTORY_SHARDS as u64)
        .expect("index below the shard count")
}

impl Directory {
    pub fn new(
        arbiters: Vec<ArbiterHandle>,
        environment: Arc<FamilyEnvironment>,
        active_families_max: usize,
    ) -> Directory {
        assert!(!arbiters.is_empty(), "at least one arbiter");
        Directory {
            shards: (0..DIRECTORY_SHARDS).map(|_| Mutex::default()).collect(),
            tick: std::sync::atomic::AtomicU64::new(0),
            arbiters,
            environment,
            shard_capacity: active_families_max.div_ceil(DIRECTORY_SHARDS).max(1),
        }
    }

    fn shard(&self, family_id: &FamilyId) -> std::sync::MutexGuard<'_, DirectoryInner> {
        self.shards[shard_index(family_id)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn next_tick(&self) -> u64 {
        self.tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }

    /// The family's actor, activated from sled if it is not running.
    pub fn activate(&self, family_id: &FamilyId) -> Result<Addr<FamilyActor>, StoreError> {
        {
            let mut inner = self.shard(family_id);
            let tick = self.next_tick();
            if let Some(slot) = inner.actors.get_mut(family_id) {
                if slot.address.connected() {
                    let old = std::mem::replace(&mut slot.last_used, tick);
                    let address = slot.address.clone();
                    inner.recency.remove(&old);
                    inner.recency.insert(tick, family_id.clone());
                    return Ok(address);
                }
            }
        }
        let record = self.environment.store.family(family_id)?;
        let environment = self.environment.clone();
        let id = family_id.clone();
        let arbiter = &self.arbiters[arbiter_index(family_id, self.arbiters.len())];
        let address = FamilyActor::start_in_arbiter(arbiter, move |_| {
            FamilyActor::new(id, record, environment)
        });
        let mut inner = self.shard(family_id);
        let tick = self.next_tick();
        if let Some(old) = inner.actors.insert(
            family_id.clone(),
            Slot {
                address: address.clone(),
                last_used: tick,
            },
        ) {
            inner.recency.remove(&old.last_used);
        }
        inner.recency.insert(tick, family_id.clone());
        while inner.actors.len() > self.shard_capacity {
            let Some((_, oldest)) = inner.recency.pop_first() else {
                break;
            };
            // Dropping the last address stops the actor once its mailbox is
            // empty; its state is already in sled.
            inner.actors.remove(&oldest);
            inner.passivated += 1;
        }
        Ok(address)
    }

    /// The actor if it is running; never activates.
    pub fn active(&self, family_id: &FamilyId) -> Option<Addr<FamilyActor>> {
        self.shard(family_id)
            .actors
            .get(family_id)
            .filter(|slot| slot.address.connected())
            .map(|slot| slot.address.clone())
    }

    /// Passivates the family if it is active: its state is in the batch
    /// being written, which the next activation waits for.
    pub fn passivate(&self, family_id: &FamilyId) {
        let mut inner = self.shard(family_id);
        if let Some(slot) = inner.actors.remove(family_id) {
            inner.recency.remove(&slot.last_used);
            inner.passivated += 1;
        }
    }

    /// Forgets a dead actor so that the next message re-activates it from sled.
    pub fn forget(&self, family_id: &FamilyId) {
        let mut inner = self.shard(family_id);
        if let Some(slot) = inner.actors.remove(family_id) {
            inner.recency.remove(&slot.last_used);
        }
    }

    fn each_shard(&self) -> impl Iterator<Item = std::sync::MutexGuard<'_, DirectoryInner>> {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Passivates the families not used since `tick`.
    fn passivate_older_than(&self, tick: u64) {
        for mut inner in self.each_shard() {
            let stale: Vec<(u64, FamilyId)> = inner
                .recency
                .range(..tick)
                .map(|(tick, id)| (*tick, id.clone()))
                .collect();
            for (tick, id) in stale {
                inner.recency.remove(&tick);
                inner.actors.remove(&id);
                inner.passivated += 1;
            }
        }
    }

    fn current_tick(&self) -> u64 {
        self.tick.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn active_count(&self) -> usize {
        self.each_shard().map(|inner| inner.actors.len()).sum()
    }

    pub fn passivated_count(&self) -> u64 {
        self.each_shard().map(|inner| inner.passivated).sum()
    }
}

/// Groups a batch by family, keeping first-seen order and log order within.
#[derive(Default)]
struct Groups {
    order: Vec<FamilyId>,
    inputs: HashMap<FamilyId, Vec<(u64, FamilyInput)>>,
    /// Facts of citizens in no family changed in this batch, not yet written:
    /// a registration followed by the citizen joining a family in the same
    /// batch never touches the orphan tree.
    orphans: HashMap<storage::ids::Iin, CitizenFacts>,
}

impl Groups {
    fn push(&mut self, family_id: FamilyId, seq: u64, input: FamilyInput) {
        let inputs = self.inputs.entry(family_id.clone()).or_insert_with(|| {
            self.order.push(family_id);
            Vec::new()
        });
        inputs.push((seq, input));
    }

    fn take(&mut self) -> Vec<(FamilyId, Vec<(u64, FamilyInput)>)> {
        let mut inputs = std::mem::take(&mut self.inputs);
        std::mem::take(&mut self.order)
            .into_iter()
            .filter_map(|id| inputs.remove(&id).map(|group| (id, group)))
            .collect()
    }
}

pub struct Dispatcher {
    store: Arc<Store>,
    directory: Arc<Directory>,
    metrics: Arc<Metrics>,
    config: DispatcherConfig,
    wake: Arc<Notify>,
    /// The log is dispatched through here; the store's applied watermark
    /// follows once the batch's commit is written.
    dispatched_through: std::sync::atomic::AtomicU64,
    /// The last batch's commit, being written while the next batch is applied.
    pending: Mutex<Option<Pending>>,
    /// Recent answers of the citizen index.
    routes: Mutex<Routes>,
}

/// Citizens' families as the dispatcher last read or wrote them in the citizen
/// index. The dispatcher is the index's only writer while the service runs,
/// and it writes through here, so an answer kept here is the stored one.
///
/// A feed sends each citizen a few events close together (a month's incomes,
/// an employment change): at a national population the index's buckets are far
/// more than sled's cache holds, and each event read its bucket from the log
/// file again. Two generations of at most [`ROUTES_KEPT`] citizens each: when
/// the newer one is full, the older one is dropped.
#[derive(Default)]
struct Routes {
    newer: HashMap<Iin, Option<FamilyId>>,
    older: HashMap<Iin, Option<FamilyId>>,
}

/// Citizens per generation of [`Routes`] (about 70 bytes each).
const ROUTES_KEPT: usize = 100_000;

impl Routes {
    fn contains(&self, iin: &Iin) -> bool {
        self.newer.contains_key(iin) || self.older.contains_key(iin)
    }

    fn get(&mut self, iin: &Iin) -> Option<Option<FamilyId>> {
        if let Some(family) = self.newer.get(iin) {
            return Some(family.clone());
        }
        let family = self.older.remove(iin)?;
        self.put(*iin, family.clone());
        Some(family)
    }

    fn put(&mut self, iin: Iin, family: Option<FamilyId>) {
        if self.newer.len() >= ROUTES_KEPT && !self.newer.contains_key(&iin) {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(iin, family);
    }
}

/// A batch's commit on its way to disk (see [`Dispatcher::deliver`]).
struct Pending {
    families: HashSet<FamilyId>,
    /// Citizens whose orphan facts it puts or takes.
    orphans: HashSet<Iin>,
    /// `Err` if the thread writing it panicked.
    written: Shared<BoxFuture<'static, Result<(), String>>>,
}

impl Dispatcher {
    pub fn new(
        store: Arc<Store>,
        directory: Arc<Directory>,
        metrics: Arc<Metrics>,
        config: DispatcherConfig,
        wake: Arc<Notify>,
    ) -> Dispatcher {
        let applied = store.applied_through().unwrap_or(0);
        Dispatcher {
            store,
            directory,
            metrics,
            config,
            wake,
            dispatched_through: std::sync::atomic::AtomicU64::new(applied),
            pending: Mutex::new(None),
            routes: Mutex::new(Routes::default()),
        }
    }

    /// The citizen's family in the citizen index (see [`Routes`]).
    fn family_of(&self, iin: &Iin) -> Result<Option<FamilyId>, StoreError> {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(family) = routes.get(iin) {
            return Ok(family);
        }
        let family = self.store.family_of(iin)?;
        routes.put(*iin, family.clone());
        Ok(family)
    }

    /// Reads the families of the batch's citizens that [`Routes`] lacks on
    /// several threads into it, before the batch is routed one entry at a time:
    /// at a national population the index's buckets are mostly not in sled's
    /// cache (after a start, not even in the system's), and routing waited for
    /// them one at a time, as activations did before [`Dispatcher::prefetch`].
    /// Nothing writes the index until routing starts, so what is read is what is
    /// stored; errors are left to routing's own read.
    fn prefetch_routes(&self, entries: &[(u64, LogEntry)]) {
        let unknown: Vec<Iin> = {
            let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
            let citizens: HashSet<Iin> = entries
                .iter()
                .filter_map(|(_, entry)| match entry {
                    LogEntry::Feed { event, .. } => match &event.data {
                        EventData::MemberAdded { iin, .. }
                        | EventData::MemberRemoved { iin, .. } => Some(*iin),
                        data => match data.subject() {
                            Subject::Citizen(iin) => Some(*iin),
                            Subject::Family(_) => None,
                        },
                    },
                    _ => None,
                })
                .filter(|iin| !routes.contains(iin))
                .collect();
            citizens.into_iter().collect()
        };
        let Some(threads) = prefetch_threads(unknown.len()) else {
            return;
        };
        let found = self.store.families_of(&unknown, threads);
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        for (iin, family) in found {
            routes.put(iin, family);
        }
    }

    /// Writes the citizen's family into the citizen index and [`Routes`].
    fn set_family_of(&self, iin: &Iin, family: Option<&FamilyId>) -> Result<(), StoreError> {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        // Forgotten first: if the write fails, the next read asks the store.
        routes.newer.remove(iin);
        routes.older.remove(iin);
        self.store.set_family_of(iin, family)?;
        routes.put(*iin, family.cloned());
        Ok(())
    }

    /// Waits until the last batch's commit is written (and its watermark moved).
    /// A commit that panicked panics the dispatcher, as it did when the
    /// dispatcher wrote it itself: going on would move the watermark past it.
    async fn settle(&self) {
        let written = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|pending| pending.written.clone());
        if let Some(written) = written {
            if let Err(error) = written.await {
                panic!("the thread writing a batch of families failed: {error}");
            }
        }
    }

    /// Waits for the last batch's commit if it changes the citizen's orphan
    /// facts: reading them from the store before would read older ones. A feed
    /// that adds members already in their family asks for every one of them,
    /// and waiting each time took the commit thread's overlap away.
    async fn settle_orphan(&self, iin: &Iin) {
        let changes = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|pending| pending.orphans.contains(iin));
        if changes {
            self.settle().await;
        }
    }

    /// Whether the family's newest state is in a commit not written yet: an
    /// activation would read an older one from the store.
    fn unwritten(&self, family_id: &FamilyId) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|pending| {
                pending.written.peek().is_none() && pending.families.contains(family_id)
            })
    }

    /// Runs until `shutdown` turns true and the log is drained as far as it was.
    pub async fn run(
        self,
        mut shutdown: watch::Receiver<bool>,
        done: tokio::sync::oneshot::Sender<()>,
    ) {
        let mut last_idle_check = Instant::now();
        let mut idle_mark = self.directory.current_tick();
        loop {
            let stopping = *shutdown.borrow();
            match self.step().await {
                Ok(0) => {
                    if stopping {
                        break;
                    }
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = shutdown.changed() => {}
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%error, "dispatcher could not read or write the store; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            if last_idle_check.elapsed() >= self.config.idle_after {
                self.directory.passivate_older_than(idle_mark);
                idle_mark = self.directory.current_tick();
                last_idle_check = Instant::now();
            }
            self.metrics.set(
                "dfm_families_active",
                &[],
                i64::try_from(self.directory.active_count()).unwrap_or(i64::MAX),
            );
            self.metrics.set(
                "dfm_families_passivated_total",
                &[],
                i64::try_from(self.directory.passivated_count()).unwrap_or(i64::MAX),
            );
        }
        tracing::info!("dispatcher drained and stopped");
        let _ = done.send(());
    }

    /// Dispatches one batch; returns how many log entries it consumed.
    pub async fn step(&self) -> Result<usize, StoreError> {
        let applied = self
            .store
            .applied_through()?
            .max(self.dispatched_through.load(Ordering::SeqCst));
        let mut entries = self
            .store
            .read_log(applied, self.config.batch_entries_max)?;
        let counted = self.store.counted_through();
        if counted > applied {
            // A crash came between a batch's counters and its records: replay
            // exactly that batch; its counter changes are already counted.
            entries.retain(|(seq, _)| *seq <= counted);
        }
        let Some(&(last, _)) = entries.last() else {
            // Nothing more to apply: what was is written before the dispatcher
            // waits or stops.
            self.settle().await;
            return Ok(0);
        };
        let started = Instant::now();
        let count = entries.len();
        self.prefetch_routes(&entries);
        let mut groups = Groups::default();
        for (seq, entry) in entries {
            self.route(seq, entry, &mut groups).await?;
        }
        let routed = started.elapsed();
        self.deliver(
            &mut groups,
            Counted {
                seq: last,
                whole: true,
            },
        )
        .await;
        let delivered = started.elapsed();
        self.dispatched_through.store(last, Ordering::SeqCst);
        self.metrics
            .observe("dfm_dispatch_route_seconds", &[], routed);
        self.metrics
            .observe("dfm_dispatch_deliver_seconds", &[], delivered - routed);
        self.metrics
            .add("dfm_log_entries_applied_total", &[], count as u64);
        self.metrics
            .observe("dfm_dispatch_batch_seconds", &[], started.elapsed());
        Ok(count)
    }

    async fn route(
        &self,
        seq: u64,
        entry: LogEntry,
        groups: &mut Groups,
    ) -> Result<(), StoreError> {
        let (agency, event) = match entry {
            LogEntry::Feed { agency, event } => (agency, event),
            other => {
                let family_id = other
                    .family_id()
                    .expect("internal entries name their family")
                    .clone();
                groups.push(family_id, seq, FamilyInput::Internal(other));
                return Ok(());
            }
        };
        let _ = agency;
        match &event.data {
            EventData::MemberAdded {
                family_id,
                iin,
                role,
            } => {
                let current = self.family_of(iin)?;
                if let Some(previous) = current.as_ref().filter(|g| *g != family_id) {
                    // Moving: the old family lets go first, writing the facts to
                    // the orphan store, from where the new family takes them.
                    groups.push(previous.clone(), seq, FamilyInput::Detach { iin: *iin });
                    self.deliver(groups, Counted { seq, whole: false }).await;
                }
                if current.as_ref() != Some(family_id) {
                    self.set_family_of(iin, Some(family_id))?;
                }
                let orphan = match groups.orphans.remove(iin) {
                    Some(facts) => Some(facts),
                    None => {
                        // A commit not yet written may hold the citizen's facts.
                        self.settle_orphan(iin).await;
                        self.store.orphan(iin)?
                    }
                };
                groups.push(
                    family_id.clone(),
                    seq,
                    FamilyInput::Attach {
                        iin: *iin,
                        role: *role,
                        orphan,
                    },
                );
            }
            EventData::MemberRemoved { family_id, iin } => {
                if self.family_of(iin)?.as_ref() == Some(family_id) {
                    groups.push(family_id.clone(), seq, FamilyInput::Detach { iin: *iin });
                    self.deliver(groups, Counted { seq, whole: false }).await;
                    self.set_family_of(iin, None)?;
                } else {
                    self.metrics.inc("dfm_inputs_ignored_total", &[]);
                }
            }
            _ => match event.data.subject() {
                Subject::Family(family_id) => {
                    let family_id = family_id.clone();
                    groups.push(family_id, seq, FamilyInput::Feed(event));
                }
                Subject::Citizen(iin) => match self.family_of(iin)? {
                    Some(family_id) => groups.push(family_id, seq, FamilyInput::Feed(event)),
                    None => {
                        let mut facts = match groups.orphans.remove(iin) {
                            Some(facts) => facts,
                            None => {
                                self.settle_orphan(iin).await;
                                self.store
                                    .orphan(iin)?
                                    .unwrap_or_else(|| CitizenFacts::new(*iin))
                            }
                        };
                        if facts.applied_seq < seq {
                            if apply::apply_to_citizen(&mut facts, &event).is_err() {
                                self.metrics.inc("dfm_inputs_ignored_total", &[]);
                            }
                            facts.applied_seq = seq;
                        }
                        groups.orphans.insert(*iin, facts);
                    }
                },
            },
        }
        Ok(())
    }

    /// Sends every pending group to its actor and waits for all of them. Their
    /// changes are then written as one batch that reaches `through` into the
    /// log (moving the applied watermark when the batch is `whole`), and SMS
    /// and payments handed on, on a thread of their own while the dispatcher
    /// goes on to the next batch: the actors already hold the new states. A
    /// commit waits for the one before it, so batches reach the disk in order;
    /// nothing reads a family or an orphan from the store while a commit that
    /// changes it is unwritten (see [`Dispatcher::settle`]).
    async fn deliver(&self, groups: &mut Groups, through: Counted) {
        // Orphan facts go to disk before anything that could read them there (a
        // family taking them in, a later batch) and before the watermark moves.
        if !groups.orphans.is_empty() {
            self.settle().await;
            let facts: Vec<CitizenFacts> = groups.orphans.drain().map(|(_, facts)| facts).collect();
            while let Err(error) = self.store.put_orphans(&facts) {
                tracing::error!(%error, "could not write orphan facts; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        let batch: Vec<(FamilyId, Inputs)> = groups
            .take()
            .into_iter()
            .map(|(family_id, inputs)| (family_id, Arc::from(inputs)))
            .collect();
        // A rules change re-evaluates each family it changes once: the
        // families it wakes are passivated after their batch, and do not
        // take the places of the families feeds are sending to.
        let woken_once: Vec<&FamilyId> = batch
            .iter()
            .filter(|(family_id, inputs)| {
                inputs.iter().all(|(_, input)| is_reevaluation(input))
                    && self.directory.active(family_id).is_none()
            })
            .map(|(family_id, _)| family_id)
            .collect();
        self.prefetch(&batch);
        let results: Vec<(usize, Result<FamilyCommit, FamilyError>)> =
            stream::iter(batch.iter().cloned().enumerate())
                .map(|(index, (family_id, inputs))| async move {
                    (index, self.send(&family_id, inputs).await)
                })
                .buffer_unordered(self.config.concurrency.max(1))
                .collect()
                .await;
        let mut commits = Vec::with_capacity(results.len());
        let mut failed = Vec::new();
        for (index, result) in results {
            match result {
                Ok(commit) => commits.push(commit),
                Err(_) => failed.push(index),
            }
        }
        for index in failed {
            let (family_id, inputs) = &batch[index];
            if let Some(commit) = self.retry_one_by_one(family_id, inputs.clone()).await {
                commits.push(commit);
            }
        }
        for family_id in woken_once {
            self.directory.passivate(family_id);
        }
        self.settle().await;
        let orphans: HashSet<Iin> = commits
            .iter()
            .flat_map(|commit| {
                (commit.orphans_taken.iter().copied())
                    .chain(commit.orphans_put.iter().map(|facts| facts.iin))
            })
            .collect();
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let directory = self.directory.clone();
        let delay = commit_delay(&batch);
        let written = tokio::task::spawn_blocking(move || {
            std::thread::sleep(delay);
            let started = Instant::now();
            while let Err(error) = store.commit_families(&commits, through) {
                // The actors hold the unwritten states; the same writes are
                // tried again (counters move only past their watermark).
                tracing::error!(%error, "could not write a batch of families; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
            metrics.observe("dfm_family_commit_seconds", &[], started.elapsed());
            if through.whole {
                while let Err(error) = store.set_applied_through(through.seq) {
                    tracing::error!(%error, "could not move the applied watermark; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            hand_on(&directory.environment, &metrics, commits);
        })
        .map(|joined| joined.map_err(|error| error.to_string()))
        .boxed()
        .shared();
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(Pending {
            families: batch.into_iter().map(|(family_id, _)| family_id).collect(),
            orphans,
            written,
        });
    }

    /// A national store does not fit in memory, so activating a family waits on
    /// the disk, and activations happen one at a time on this thread (at 6
    /// million families a re-score applied 3,100 families/s with the process
    /// mostly idle). Reading the batch's inactive families on many threads first
    /// takes those waits side by side.
    fn prefetch(&self, batch: &[(FamilyId, Inputs)]) {
        let cold: Vec<&FamilyId> = batch
            .iter()
            .map(|(family_id, _)| family_id)
            .filter(|family_id| self.directory.active(family_id).is_none())
            .collect();
        if let Some(threads) = prefetch_threads(cold.len()) {
            self.store.prefetch_families(&cold, threads);
        }
    }

    async fn send(
        &self,
        family_id: &FamilyId,
        inputs: Inputs,
    ) -> Result<FamilyCommit, FamilyError> {
        if self.directory.active(family_id).is_none() && self.unwritten(family_id) {
            self.settle().await;
        }
        let address = loop {
            match self.directory.activate(family_id) {
                Ok(address) => break address,
                Err(error) => {
                    tracing::error!(%family_id, %error, "could not activate the family; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        match address.send(Apply { inputs }).await {
            Ok(Ok(commit)) => Ok(commit),
            Ok(Err(error)) => {
                self.directory.forget(family_id);
                Err(error)
            }
            Err(_closed) => {
                self.directory.forget(family_id);
                Err(FamilyError::Panicked(
                    "the actor's mailbox closed".to_owned(),
                ))
            }
        }
    }

    /// After a failure, applies the inputs one at a time so that a poison input
    /// is found and set aside while the others go through. Each input that goes
    /// through is written at once, so that the next one starts from it.
    async fn retry_one_by_one(&self, family_id: &FamilyId, inputs: Inputs) -> Option<FamilyCommit> {
        self.metrics.inc("dfm_family_restarts_total", &[]);
        // Its writes come after the last batch's.
        self.settle().await;
        for (seq, input) in inputs.iter() {
            let seq = *seq;
            let mut tries = 1;
            loop {
                let single: Inputs = Arc::from(vec![(seq, input.clone())]);
                match self.send(family_id, single).await {
                    Ok(commit) => {
                        loop {
                            match self.store.commit_family(&commit) {
                                Ok(()) => break,
                                Err(error) => {
                                    tracing::error!(%family_id, %error, "could not write the family; retrying");
                                    self.directory.forget(family_id);
                                    tokio::time::sleep(Duration::from_secs(1)).await;
                                }
                            }
                        }
                        hand_on(&self.directory.environment, &self.metrics, vec![commit]);
                        break;
                    }
                    Err(error) if tries < self.config.poison_tries_max => {
                        tries += 1;
                        self.metrics.inc("dfm_family_restarts_total", &[]);
                        tracing::warn!(%family_id, seq, %error, tries, "retrying an input after a failure");
                    }
                    Err(error) => {
                        tracing::error!(%family_id, seq, %error, "input set aside after repeated failures");
                        self.metrics.inc("dfm_inputs_quarantined_total", &[]);
                        let record = QuarantineRecord {
                            seq,
                            family_id: family_id.clone(),
                            reason: error.to_string(),
                            at: self.directory.environment.clock.now(),
                        };
                        if let Err(error) = self.store.quarantine(&record) {
                            tracing::error!(%error, "could not record the quarantined input");
                        }
                        break;
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_keep_two_generations_and_promote_what_is_read() {
        let born = chrono::NaiveDate::from_ymd_opt(1980, 1, 1).expect("a date");
        let iins: Vec<Iin> = (0u64..)
            .filter_map(|n| {
                let day = born + chrono::Days::new(n / 9_000);
                let serial = u32::try_from(n % 9_000).expect("a serial");
                Iin::from_parts(day, storage::ids::Sex::Female, serial)
            })
            .take(2 * ROUTES_KEPT)
            .collect();
        let family = |n: usize| Some(FamilyId::parse(&format!("F{n}")).expect("an id"));
        let mut routes = Routes::default();
        routes.put(iins[0], family(0));
        routes.put(iins[1], None);
        for (n, iin) in iins.iter().enumerate().take(ROUTES_KEPT).skip(2) {
            routes.put(*iin, family(n));
        }
        // The newer generation is full: the next citizen starts another.
        routes.put(iins[ROUTES_KEPT], family(7));
        assert_eq!(routes.older.len(), ROUTES_KEPT);
        assert_eq!(routes.newer.len(), 1);
        // A citizen read from the older generation moves to the newer one.
        assert_eq!(routes.get(&iins[0]), Some(family(0)));
        assert_eq!(routes.get(&iins[1]), Some(None));
        for iin in &iins[ROUTES_KEPT + 1..] {
            routes.put(*iin, None);
        }
        assert!(routes.newer.len() <= ROUTES_KEPT && routes.older.len() <= ROUTES_KEPT);
        assert_eq!(routes.get(&iins[0]), Some(family(0)), "read, so kept");
        assert_eq!(routes.get(&iins[2]), None, "not read since: dropped");
    }

    /// Ids that differ only in their last digits (as a national population's
    /// do) spread over the directory's shards and the arbiters evenly.
    #[test]
    fn consecutive_ids_spread_over_shards_and_arbiters() {
        let mut shards = [0u32; DIRECTORY_SHARDS];
        let mut arbiters = [0u32; 3];
        for index in 0..3_200 {
            let family_id = FamilyId::parse(&format!("F{index:08}")).unwrap();
            shards[shard_index(&family_id)] += 1;
            arbiters[arbiter_index(&family_id, 3)] += 1;
        }
        // 200 a shard on average; a fair hash stays well inside these bounds.
        assert!(
            shards.iter().all(|&n| (150..=250).contains(&n)),
            "{shards:?}"
        );
        assert!(
            arbiters.iter().all(|&n| (950..=1180).contains(&n)),
            "{arbiters:?}"
        );
    }
}
