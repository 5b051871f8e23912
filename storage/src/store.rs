//! The sled store: one tree per kind of record, every value behind the codec's
//! version byte, and the order in which multi-tree writes happen.
//!
//! # Durability
//! sled makes a write durable only when the log is flushed. Nothing here flushes on
//! its own: callers that promise durability (the feed API before its 200, the bank
//! gateway before a payment leaves) call [`Store::flush`], and the service's group
//! commit shares one flush among every writer waiting at that moment. Everything
//! else (a family's re-evaluated record, indexes) may be lost in a crash and is
//! rebuilt by replaying the feed log from the applied watermark.
//!
//! # No transactions, no batches (while serving)
//! sled 0.34 guards every operation with one process-wide reader-writer lock as
//! soon as a transaction or `apply_batch` has run once; from then on each of them
//! stops every other reader and writer in the process. Measured on the payout
//! bench: the SMS callback's threads blocked inside sled while the dispatcher's
//! transaction ran, and a reply waited 12 ms for a 1 ms flush. So the serving
//! paths use single-key writes only, in an order that replay repairs:
//! - The log: a feed event's id is in its entry (one chunk, one write) until a
//!   packing pass ([`Store::pack_feed_ids`]) writes it into its bucket, then
//!   marks the chunks packed (`ids_packed_through`); a chunk goes only once it
//!   is applied and packed, and [`Store::open`] reads the ids of the chunks
//!   after the mark back into memory. A crash before the mark packs those ids
//!   again, once. An SMS reply's entry is written before its id (its bucket): a
//!   crash between them at worst applies the reply twice, and the consent
//!   machine ignores a second answer.
//! - A dispatch batch ([`Store::commit_families`]): side-table additions, then the
//!   counters with the batch's last sequence number, then the family records, then
//!   side-table removals; the dispatcher moves the applied watermark last. A crash
//!   in between is repaired by replay: a family record keeps the sequence number
//!   it has applied, side-table writes are keyed so that writing them again is
//!   writing them once, and a batch whose counters were already written is
//!   replayed with counting off ([`Store::counted_through`]). Each step's writes
//!   go on several threads (each side table on one, the records on up to
//!   `FAMILY_WRITE_THREADS`: at a national size an insert mostly waits on the
//!   disk for the tree's node), and a step ends before the next begins. So what
//!   sled recovers after a crash may hold any part of one step, which replay
//!   writes again, and nothing of a later one.
//!
//! This relies on sled recovering a prefix of the writes made before a crash, in
//! the order they were made (its log is sequential and recovery stops at the first
//! incomplete write). Only the offline bulk load, which runs alone, uses batches.
//!
//! # Trees
//! | tree | key | value |
//! |---|---|---|
//! | `feed` | `C` + last seq (u64 BE) / (stores before `feed_ids`, until packed) `D` + agency + `\0` + event id, `S` + inbound SMS id | the [`LogEntry`]s of one append / seq |
//! | `families` | family id | [`FamilyRecord`] |
//! | `orphans` | IIN | [`CitizenFacts`] of a citizen in no family |
//! | `citizen_buckets` | bucket number (u32 BE) | the routing index: citizens' families, packed ([`crate::citizen_index`]) |
//! | `feed_ids` | bucket number (u32 BE) | ids the log has taken (`D` + agency + `\0` + event id, `S` + inbound SMS id) with their seqs, packed ([`crate::feed_ids`]) |
//! | `meta` | name | u64 watermarks; the catalogues; the key filters a clean stop saved ([`Store::save_key_filters`]) |
//! | `sms_outbox` | reference | [`SmsOrder`] |
//! | `payment_outbox` | reference id | [`PaymentOrder`] |
//! | `timers` | due (ms, BE) + family + `\0` + entitlement + kind | [`TimerRecord`] |
//! | `phone_requests` | phone + `\0` + family + `\0` + entitlement | code (u16 BE) |
//! | `monthly` | family id | () — families with an active monthly benefit |
//! | `stats` | `\0counters` | [`Counters`]: every counter and the last sequence number counted |
//! | `audit` | seq (u64 BE) | [`AuditEntry`] |
//! | `quarantine` | seq (u64 BE) | [`QuarantineRecord`] |
//!
//! Later trees are added the same way: a constant name, a key layout in this table.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::citizen_index;
use crate::codec::{decode, encode};
use crate::event::{LogEntry, TimerKind};
use crate::feed_ids;
use crate::ids::{FamilyId, Iin, Phone};
use crate::key_filter::KeyFilter;
use crate::money::Money;
use crate::record::{CitizenFacts, FamilyRecord};
use crate::reply_codes::ReplyCodes;
use crate::scoring_table::ScoringTable;

/// Errors of the store. `Corrupt` names the tree and the key whose value could not
/// be decoded; the caller decides whether to skip it or stop.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt value in tree {tree} at key {key}: {reason}")]
    Corrupt {
        tree: &'static str,
        key: String,
        reason: String,
    },
    #[error("{path}: {error}")]
    File { path: String, error: std::io::Error },
}

fn file_error(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |error| StoreError::File {
        path: path.display().to_string(),
        error,
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// An SMS waiting to be sent; removed once the gateway has taken it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsOrder {
    pub reference: String,
    pub to: Phone,
    pub text: String,
    pub family_id: Option<FamilyId>,
    #[serde(with = "crate::codec::time")]
    pub created_at: DateTime<Utc>,
}

/// A payment that has been decided and not yet settled. It is durable before the
/// first call to the bank and leaves the outbox only when the family has recorded
/// the bank's final answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentOrder {
    pub reference_id: String,
    pub family_id: FamilyId,
    pub entitlement_id: String,
    pub payee_fa: String,
    pub amount: Money,
    pub purpose: String,
    pub note: String,
    #[serde(with = "crate::codec::time")]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerRecord {
    #[serde(with = "crate::codec::time")]
    pub due_at: DateTime<Utc>,
    pub family_id: FamilyId,
    pub entitlement_id: String,
    pub kind: TimerKind,
}

impl TimerRecord {
    pub fn key(&self) -> Vec<u8> {
        let due_ms = u64::try_from(self.due_at.timestamp_millis()).unwrap_or(0);
        let mut key = due_ms.to_be_bytes().to_vec();
        key.extend_from_slice(self.family_id.as_str().as_bytes());
        key.push(0);
        key.extend_from_slice(self.entitlement_id.as_bytes());
        key.push(0);
        key.push(match self.kind {
            TimerKind::Reminder => b'R',
            TimerKind::Expiry => b'E',
        });
        key
    }
}

/// One open request in the phone index: which family and entitlement wait for an
/// answer from this phone, and the code that tells them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRequest {
    pub family_id: FamilyId,
    pub entitlement_id: String,
    pub code: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    #[serde(with = "crate::codec::time")]
    pub at: DateTime<Utc>,
    pub operator: String,
    pub role: String,
    pub remote_addr: String,
    pub action: String,
    /// What was read or acted on: a family id, a masked IIN or a query.
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    pub seq: u64,
    pub family_id: FamilyId,
    pub reason: String,
    #[serde(with = "crate::codec::time")]
    pub at: DateTime<Utc>,
}

/// A family record as the store keeps it, encoded, with the compact form of
/// its scoring projection for the scoring table. Made where the record changed
/// (the family's actor, or a load worker), so that the one thread that writes a
/// batch only copies bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFamily {
    key: Vec<u8>,
    record: Vec<u8>,
    compact: Vec<u8>,
}

impl EncodedFamily {
    pub fn of(record: &FamilyRecord) -> EncodedFamily {
        let mut compact = Vec::new();
        crate::compact::encode(record, &mut compact);
        EncodedFamily {
            key: record.family_id.as_str().as_bytes().to_vec(),
            record: encode(record),
            compact,
        }
    }
}

/// A saved scoring table whose header and codes are read
/// ([`Store::take_saved_scoring_table`]); its families are next.
pub struct SavedTable {
    input: std::io::BufReader<std::fs::File>,
    path: std::path::PathBuf,
}

impl SavedTable {
    /// Adds the saved families to `table`, unless it has them (a family
    /// written since is newer), and marks it built; returns how many it read.
    pub fn load_into(mut self, table: &ScoringTable) -> Result<u64> {
        use std::io::Read;
        let error = file_error(&self.path);
        let (mut families, mut bytes, mut length) = (0, Vec::new(), [0u8; 8]);
        for index in 0..crate::scoring_table::SHARDS {
            self.input.read_exact(&mut length).map_err(&error)?;
            let length = u64::from_be_bytes(length);
            bytes.clear();
            // Read through `take`: a damaged length reads to the end of the
            // file, never allocates what it says.
            (&mut self.input)
                .take(length)
                .read_to_end(&mut bytes)
                .map_err(&error)?;
            if bytes.len() as u64 != length {
                return Err(error(std::io::ErrorKind::UnexpectedEof.into()));
            }
            families += table
                .load_shard(&bytes)
                .map_err(|e| corrupt("scoring table file", &(index as u32).to_be_bytes(), e))?;
        }
        table.set_built();
        Ok(families)
    }
}

/// Everything one family actor writes after handling its messages. The record and
/// its side tables are written in an order that replay repairs (module docs).
#[derive(Debug, Default)]
pub struct FamilyCommit {
    pub record: Option<EncodedFamily>,
    /// Orphan facts taken into the family (deleted from `orphans`).
    pub orphans_taken: Vec<Iin>,
    /// Facts of members who left, kept until they join another family.
    pub orphans_put: Vec<CitizenFacts>,
    pub sms: Vec<SmsOrder>,
    pub payments: Vec<PaymentOrder>,
    /// Reference ids whose final answer the record now holds.
    pub payments_settled: Vec<String>,
    pub timers_put: Vec<TimerRecord>,
    pub timers_removed: Vec<TimerRecord>,
    pub requests_opened: Vec<(Phone, OpenRequest)>,
    pub requests_closed: Vec<(Phone, OpenRequest)>,
    /// `Some(true)` when the family now has an active monthly benefit.
    pub monthly: Option<bool>,
    /// Counter changes (see [`Store::stats`]).
    pub counters: BTreeMap<String, i64>,
}

impl FamilyCommit {
    pub fn count(&mut self, counter: impl Into<String>, delta: i64) {
        *self.counters.entry(counter.into()).or_insert(0) += delta;
    }
}

const TREE_NAMES: [&str; 14] = [
    "feed",
    "families",
    "orphans",
    "citizen_buckets",
    "meta",
    "sms_outbox",
    "payment_outbox",
    "timers",
    "phone_requests",
    "monthly",
    "stats",
    "audit",
    "quarantine",
    "feed_ids",
];

/// Trees that stores of earlier versions kept and this one drops on opening:
/// `scoring` held each family's scoring projection, which the in-memory
/// scoring table replaced; `scoring_snapshot` held a saved table before it
/// became a file.
const TREES_DROPPED: [&str; 2] = ["scoring", "scoring_snapshot"];
/// The marker of a complete `scoring` tree.
const META_DROPPED: [&[u8]; 1] = [b"scoring_complete"];

const META_APPLIED_THROUGH: &[u8] = b"applied_through";
/// The catalogue (year and text) that the stored outcomes agree with; see
/// [`Store::rules_in_force`].
const META_RULES_IN_FORCE: &[u8] = b"rules_in_force";
/// Followed by a catalogue version: that catalogue's year and text.
const META_CATALOGUE_PREFIX: &[u8] = b"catalogue/";

fn catalogue_key(version: &str) -> Vec<u8> {
    [META_CATALOGUE_PREFIX, version.as_bytes()].concat()
}
/// Written by a clean stop after it saved the scoring table: the table's format
/// and the applied watermark it agrees with. Taken by the next start that loads
/// the table, so that a crash after that start rebuilds it from the records.
const META_SCORING_SNAPSHOT: &[u8] = b"scoring_snapshot";
/// The format of a saved scoring table; another is rebuilt from the records.
const SCORING_SNAPSHOT_FORMAT: u8 = crate::compact::FORMAT;
/// The file, in the store's directory, that holds a saved scoring table:
/// [`SNAPSHOT_MAGIC`], the format, the code register (count, then each code's
/// length and bytes), then each shard's length and entries. A file, not a sled
/// tree: read through sled, the 700 MB of a national table left about 300 MB
/// more in the process than reading every record did.
const SNAPSHOT_FILE: &str = "dfm-scoring-table";
const SNAPSHOT_MAGIC: &[u8; 8] = b"DFMSCORE";
/// Followed by a [`Filter`]'s name: the filter a clean stop saved
/// ([`Store::save_key_filters`]), taken by the next start.
const META_KEY_FILTER_PREFIX: &[u8] = b"key_filter/";
/// The layout of a saved key filter: this byte, the applied and the packed
/// watermarks it agrees with ([`Store::key_filter_stamp`]), then
/// [`KeyFilter::to_bytes`].
const KEY_FILTER_FORMAT: u8 = 1;
/// Present while a bulk load runs, and after one that did not finish.
const META_LOAD_RUNNING: &[u8] = b"load_running";
/// Every feed entry at or below this has its id in `feed_ids` ([`Store::pack_feed_ids`]).
const META_IDS_PACKED_THROUGH: &[u8] = b"ids_packed_through";
/// sled's page cache unless the configuration says otherwise (`storage.cache_mb`).
/// sled holds about twice its cache in the process; at a million families,
/// 64 MB instead of 256 MB held 267 MB less after a feed and applied a feed and
/// a re-score as fast (the operating system's page cache keeps the store's
/// pages either way).
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// How long [`Store::open`] waits for a lock that this process is releasing.
pub const OPEN_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The one key of the `stats` tree. Earlier stores kept a key per counter; they are
/// folded into this record when the store opens.
const STATS_RECORD: &[u8] = b"\0counters";

/// Every counter (see [`Store::stats`]) and how far into the log their changes go.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Counters {
    pub through: Counted,
    pub values: BTreeMap<String, i64>,
}

/// How far a dispatch batch's commit reaches into the log: the changes of every
/// entry up to `seq`, the entry at `seq` only in part when `whole` is false (the
/// dispatcher commits a member's old family before routing them to the new one).
/// Ordered by `seq`, then `whole`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Counted {
    pub seq: u64,
    pub whole: bool,
}

impl Counters {
    fn add(&mut self, deltas: &BTreeMap<String, i64>) {
        for (name, delta) in deltas {
            if *delta != 0 {
                *self.values.entry(name.clone()).or_insert(0) += delta;
            }
        }
    }
}

/// A key's final value after a group of commits, or `None` for a removal.
type KeyWrites = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// What a group of family commits writes, tree by tree, as if the commits were
/// applied one after the other: a later commit's write of a key wins.
#[derive(Default)]
struct Writes<'c> {
    /// Family id → the family's last record in the batch.
    families: BTreeMap<&'c [u8], &'c EncodedFamily>,
    orphans: KeyWrites,
    sms: KeyWrites,
    payments: KeyWrites,
    timers: KeyWrites,
    requests: KeyWrites,
    monthly: KeyWrites,
    counters: BTreeMap<String, i64>,
}

impl<'c> Writes<'c> {
    fn of(commits: &'c [FamilyCommit]) -> Writes<'c> {
        let mut writes = Writes::default();
        for commit in commits {
            if let Some(family) = &commit.record {
                let key = family.key.clone();
                match commit.monthly {
                    Some(true) => {
                        writes.monthly.insert(key.clone(), Some(Vec::new()));
                    }
                    Some(false) => {
                        writes.monthly.insert(key.clone(), None);
                    }
                    None => {}
                }
                writes.families.insert(&family.key, family);
            }
            for iin in &commit.orphans_taken {
                writes
                    .orphans
                    .insert(iin.as_str().as_bytes().to_vec(), None);
            }
            for facts in &commit.orphans_put {
                let key = facts.iin.as_str().as_bytes().to_vec();
                writes.orphans.insert(key, Some(encode(facts)));
            }
            for order in &commit.sms {
                let key = order.reference.as_bytes().to_vec();
                writes.sms.insert(key, Some(encode(order)));
            }
            for order in &commit.payments {
                let key = order.reference_id.as_bytes().to_vec();
                writes.payments.insert(key, Some(encode(order)));
            }
            for reference in &commit.payments_settled {
                writes.payments.insert(reference.as_bytes().to_vec(), None);
            }
            for timer in &commit.timers_removed {
                writes.timers.insert(timer.key(), None);
            }
            for timer in &commit.timers_put {
                writes.timers.insert(timer.key(), Some(encode(timer)));
            }
            for (phone, request) in &commit.requests_closed {
                writes.requests.insert(request_key(phone, request), None);
            }
            for (phone, request) in &commit.requests_opened {
                let code = u64::from(request.code).to_be_bytes().to_vec();
                writes
                    .requests
                    .insert(request_key(phone, request), Some(code));
            }
            for (name, delta) in &commit.counters {
                *writes.counters.entry(name.clone()).or_insert(0) += delta;
            }
        }
        writes
    }

    /// The side tables this group writes, paired with their sled trees.
    fn side_tables<'a>(&'a self, trees: &'a Trees) -> Vec<(&'a sled::Tree, &'a KeyWrites)> {
        [
            (&trees.orphans, &self.orphans),
            (&trees.sms_outbox, &self.sms),
            (&trees.payment_outbox, &self.payments),
            (&trees.timers, &self.timers),
            (&trees.phone_requests, &self.requests),
            (&trees.monthly, &self.monthly),
        ]
        .into_iter()
        .filter(|(_, writes)| !writes.is_empty())
        .collect()
    }

    /// Writes every value that is set (additions go before the records), in a
    /// large batch each tree on a thread of its own ([`side_table_threads`]):
    /// an insert mostly waits on reading the tree's node (from the disk at a
    /// national size) or on a core, so the trees' waits overlap.
    fn put_side_tables(&self, trees: &Trees) -> Result<()> {
        let tables = self.side_tables(trees);
        all_on_threads(&tables, side_table_threads(&tables), |(tree, writes)| {
            for (key, value) in writes.iter() {
                if let Some(value) = value {
                    tree.insert(key.as_slice(), value.as_slice())?;
                }
            }
            Ok(())
        })
    }

    /// Removes every key whose final write is a removal (after the records),
    /// as [`Writes::put_side_tables`] writes.
    fn remove_side_tables(&self, trees: &Trees) -> Result<()> {
        let tables = self.side_tables(trees);
        all_on_threads(&tables, side_table_threads(&tables), |(tree, writes)| {
            for (key, value) in writes.iter() {
                if value.is_none() {
                    tree.remove(key.as_slice())?;
                }
            }
            Ok(())
        })
    }

    /// Writes each family's record, then puts its compact scoring form into the
    /// scoring table; a large batch on up to [`FAMILY_WRITE_THREADS`] threads.
    fn put_families(&self, trees: &Trees, table: Option<&ScoringTable>) -> Result<()> {
        let families: Vec<(&[u8], &EncodedFamily)> = self
            .families
            .iter()
            .map(|(key, family)| (*key, *family))
            .collect();
        let threads = (families.len() / WRITES_PER_THREAD_MIN).min(FAMILY_WRITE_THREADS);
        all_on_threads(&families, threads, |(key, family)| {
            trees.families.insert(*key, family.record.as_slice())?;
            if let Some(table) = table {
                table.put(key, &family.compact);
            }
            Ok(())
        })
    }
}

/// Threads a batch's family records are written on at most.
const FAMILY_WRITE_THREADS: usize = 4;

/// Writes a commit's thread takes at least: fewer cost less than starting it.
const WRITES_PER_THREAD_MIN: usize = 64;

/// One thread per side table for a batch that writes at least
/// [`WRITES_PER_THREAD_MIN`] keys to them, else the commit's own.
fn side_table_threads(tables: &[(&sled::Tree, &KeyWrites)]) -> usize {
    let keys: usize = tables.iter().map(|(_, writes)| writes.len()).sum();
    if keys >= WRITES_PER_THREAD_MIN {
        tables.len()
    } else {
        1
    }
}

#[derive(Clone)]
struct Trees {
    feed: sled::Tree,
    families: sled::Tree,
    orphans: sled::Tree,
    /// The citizen → family index, in buckets ([`crate::citizen_index`]).
    citizen_buckets: sled::Tree,
    meta: sled::Tree,
    sms_outbox: sled::Tree,
    payment_outbox: sled::Tree,
    timers: sled::Tree,
    phone_requests: sled::Tree,
    monthly: sled::Tree,
    stats: sled::Tree,
    audit: sled::Tree,
    quarantine: sled::Tree,
    /// The ids of `feed`, packed into buckets ([`crate::feed_ids`]).
    feed_ids: sled::Tree,
}

/// The store's key filters ([`crate::key_filter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// The phones that may have an open consent request.
    Phones,
    /// The feed ids that may be packed into `feed_ids`.
    Ids,
}

impl Filter {
    pub const ALL: [Filter; 2] = [Filter::Phones, Filter::Ids];

    /// What the filter is filled from, for messages.
    pub fn what(self) -> &'static str {
        match self {
            Filter::Phones => "the phones of the open requests",
            Filter::Ids => "the packed feed ids",
        }
    }

    fn meta_key(self) -> Vec<u8> {
        let name: &[u8] = match self {
            Filter::Phones => b"phones",
            Filter::Ids => b"ids",
        };
        [META_KEY_FILTER_PREFIX, name].concat()
    }
}

/// The result of appending a batch of feed events.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Appended {
    /// Sequence numbers given to the accepted events, in batch order.
    pub seqs: Vec<u64>,
    /// Indexes (in the batch) of events whose id the agency had already used.
    pub duplicates: Vec<usize>,
}

pub struct Store {
    db: sled::Db,
    trees: Trees,
    next_seq: AtomicU64,
    next_audit: AtomicU64,
    /// Serialises appends so that sequence order is write order and the duplicate
    /// check and the insert of an id are one step.
    append_lock: Mutex<()>,
    /// The `stats` record, kept in memory; written whole on every change.
    counters: Mutex<Counters>,
    /// Log entries at or below this are gone. sled 0.34 does not merge emptied
    /// nodes, so a trim that walked from the start of the log would walk over
    /// every node ever emptied; it starts here instead (at 0 after opening, which
    /// also drops entries a crash left below the watermark).
    trimmed_through: AtomicU64,
    /// The feed's ids not packed into `feed_ids` yet ([`crate::feed_ids`]).
    waiting: Mutex<WaitingIds>,
    /// Every feed entry at or below this has its id in `feed_ids`; the log keeps
    /// the chunks above it, so that their ids can be found again on opening.
    ids_packed_through: AtomicU64,
    /// Ids are still kept the way stores before `feed_ids` kept them (`D` and
    /// `S` keys): lookups read those too until a pass has moved them all.
    legacy_ids: std::sync::atomic::AtomicBool,
    /// One packing pass at a time.
    pack_lock: Mutex<()>,
    /// Every family's compact scoring form in memory, once `serve` asks for it
    /// ([`Store::enable_scoring_table`]).
    scoring_table: OnceLock<Arc<ScoringTable>>,
    /// Where a clean stop saves the scoring table ([`SNAPSHOT_FILE`]); none
    /// for a temporary store.
    snapshot_file: Option<std::path::PathBuf>,
    /// Phones that may have an open request ([`crate::key_filter`]): an offer
    /// picks a reply code no other open request on its phone uses, and sled
    /// 0.34 finds a phone's requests only by a prefix scan, which copies the
    /// leaf it lands on (13 % of a million-family re-score's samples before the
    /// filter); nearly every offer goes to a phone with none.
    phone_filter: KeyFilter,
    /// Ids that may be packed into `feed_ids` ([`crate::key_filter`]): every
    /// event a feed takes is looked up there first, and nearly every one is
    /// new. A bucket's read for each held the append lock long enough to take
    /// a million-family store's feed from 40,000 to 13,000 events/s once a few
    /// feeds' ids were packed (BENCHMARKS.md).
    id_filter: KeyFilter,
    /// Reply codes picked for requests not written yet ([`crate::reply_codes`]).
    reply_codes: ReplyCodes,
}

/// The feed's ids whose entries are in the log and not yet packed into
/// `feed_ids`, by id (`D` + agency + `\0` + event id): what a packing pass
/// takes, and what opening the store reads back from the log.
#[derive(Default)]
struct WaitingIds {
    /// Taken since the last pass began.
    current: std::collections::HashMap<Box<[u8]>, u64>,
    /// Being packed by the pass under way.
    packing: Option<std::sync::Arc<std::collections::HashMap<Box<[u8]>, u64>>>,
}

impl WaitingIds {
    fn get(&self, id: &[u8]) -> Option<u64> {
        self.current
            .get(id)
            .or_else(|| self.packing.as_ref().and_then(|packing| packing.get(id)))
            .copied()
    }

    fn len(&self) -> usize {
        self.current.len() + self.packing.as_ref().map_or(0, |packing| packing.len())
    }
}

/// The key of the log chunk whose last entry has sequence number `seq`.
fn log_key(seq: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = b'C';
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The entries of one append, with consecutive sequence numbers from `first`.
/// One key per append instead of one per entry: an agency's request of a
/// thousand events is one log write and, once applied, one removal.
#[derive(Debug, Serialize, Deserialize)]
struct LogChunk<Entries> {
    first: u64,
    entries: Entries,
}

type StoredChunk = LogChunk<Vec<LogEntry>>;

/// Writes `entries` as one chunk from the next sequence number; the caller holds
/// the append lock. Returns their sequence numbers.
fn write_chunk(
    feed: &sled::Tree,
    next_seq: &AtomicU64,
    entries: &[LogEntry],
) -> Result<std::ops::Range<u64>> {
    let first = next_seq.load(Ordering::SeqCst);
    let end = first + entries.len() as u64;
    if !entries.is_empty() {
        feed.insert(log_key(end - 1), encode(&LogChunk { first, entries }))?;
        next_seq.store(end, Ordering::SeqCst);
    }
    Ok(first..end)
}

fn dedup_key(agency: &str, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + agency.len() + id.len());
    key.push(b'D');
    key.extend_from_slice(agency.as_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}

/// An id's sequence number as its own key stores it (stores before `feed_ids`).
fn stored_seq(key: &[u8], value: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = value
        .try_into()
        .map_err(|_| corrupt("feed", key, "an id's sequence number is not 8 bytes"))?;
    Ok(u64::from_be_bytes(bytes))
}

fn u64_from(bytes: &[u8]) -> u64 {
    let mut array = [0u8; 8];
    let length = bytes.len().min(8);
    array[8 - length..].copy_from_slice(&bytes[..length]);
    u64::from_be_bytes(array)
}

fn request_key(phone: &Phone, request: &OpenRequest) -> Vec<u8> {
    let mut key = phone.as_str().as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(request.family_id.as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(request.entitlement_id.as_bytes());
    key
}

fn corrupt(tree: &'static str, key: &[u8], reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        tree,
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.to_string(),
    }
}

/// The entries of `tree` whose keys come after `after` (exclusive), at most
/// `limit`, in key order: the cursor of every paged read.
fn range_after<'a>(
    tree: &'a sled::Tree,
    after: Option<&str>,
    limit: usize,
) -> impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + 'a {
    let start = match after {
        Some(after) => std::ops::Bound::Excluded(after.as_bytes().to_vec()),
        None => std::ops::Bound::Unbounded,
    };
    tree.range::<Vec<u8>, _>((start, std::ops::Bound::Unbounded))
        .take(limit)
}

/// Values of `tree` after `after`, decoded (see [`range_after`]).
fn page<'a, T: serde::de::DeserializeOwned>(
    tree: &'a sled::Tree,
    name: &'static str,
    after: Option<&str>,
    limit: usize,
) -> impl Iterator<Item = Result<T>> + 'a {
    range_after(tree, after, limit).map(move |item| {
        let (key, value) = item?;
        decode_in(name, &key, &value)
    })
}

/// A value as sled keeps it: read without a copy, decoded by the caller.
pub type StoredValue = sled::IVec;

/// Up to `limit` values of `tree` after the key `after`, in key order, and the
/// last key read.
fn values_after(
    tree: &sled::Tree,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<StoredValue>, Option<String>)> {
    let mut values = Vec::with_capacity(limit);
    let mut last = None;
    for item in range_after(tree, after, limit) {
        let (key, value) = item?;
        last = Some(key);
        values.push(value);
    }
    Ok((
        values,
        last.map(|key| String::from_utf8_lossy(&key).into_owned()),
    ))
}

fn decode_in<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T> {
    decode(bytes).map_err(|e| corrupt(tree, key, e))
}

/// Whether sled could not take a store's file lock. sled 0.34 wraps the
/// lock's `WouldBlock` in an error of kind `Other` with this message.
fn is_held_lock(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::WouldBlock
        || error.to_string().starts_with("could not acquire lock")
}

impl Store {
    /// Opens (or creates) the store at `path`.
    ///
    /// sled releases its file lock from a background thread some moments after
    /// the last handle of a store is dropped, so a reopening in the same process
    /// (`dfm load` at its end, tests) can find the lock still held: it is tried
    /// again for up to [`OPEN_LOCK_WAIT`]. A store held by another process stays
    /// an error.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] with a page cache of `cache_bytes` (sled's estimate of
    /// what it holds; the process holds more, see BENCHMARKS.md).
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Store> {
        let deadline = std::time::Instant::now() + OPEN_LOCK_WAIT;
        loop {
            let opened = sled::Config::new()
                .path(path)
                .cache_capacity(cache_bytes as u64)
                .open();
            match opened {
                Err(sled::Error::Io(error))
                    if is_held_lock(&error) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                opened => {
                    let mut store = Store::from_db(opened?)?;
                    store.snapshot_file = Some(path.join(SNAPSHOT_FILE));
                    return Ok(store);
                }
            }
        }
    }

    /// A store in a temporary directory that disappears when dropped.
    pub fn open_temporary() -> Result<Store> {
        Store::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Store> {
        let open = |name: &str| db.open_tree(name);
        let trees = Trees {
            feed: open(TREE_NAMES[0])?,
            families: open(TREE_NAMES[1])?,
            orphans: open(TREE_NAMES[2])?,
            citizen_buckets: open(TREE_NAMES[3])?,
            meta: open(TREE_NAMES[4])?,
            sms_outbox: open(TREE_NAMES[5])?,
            payment_outbox: open(TREE_NAMES[6])?,
            timers: open(TREE_NAMES[7])?,
            phone_requests: open(TREE_NAMES[8])?,
            monthly: open(TREE_NAMES[9])?,
            stats: open(TREE_NAMES[10])?,
            audit: open(TREE_NAMES[11])?,
            quarantine: open(TREE_NAMES[12])?,
            feed_ids: open(TREE_NAMES[13])?,
        };
        for name in TREES_DROPPED {
            if db
                .tree_names()
                .iter()
                .any(|tree| tree.as_ref() == name.as_bytes())
            {
                db.drop_tree(name)?;
            }
        }
        for key in META_DROPPED {
            trees.meta.remove(key)?;
        }
        migrate_single_entries(&trees.feed)?;
        migrate_citizen_family(&db, &trees.citizen_buckets)?;
        let last_log = trees
            .feed
            .scan_prefix(b"C")
            .next_back()
            .transpose()?
            .map_or(0, |(key, _)| u64_from(&key[1..]));
        let applied = trees
            .meta
            .get(META_APPLIED_THROUGH)?
            .map_or(0, |value| u64_from(&value));
        let last_audit = trees
            .audit
            .iter()
            .next_back()
            .transpose()?
            .map_or(0, |(key, _)| u64_from(&key));
        let counters = open_counters(&trees.stats)?;
        let legacy_ids = trees.feed.scan_prefix(b"D").next().is_some()
            || trees.feed.scan_prefix(b"S").next().is_some();
        let ids_packed_through = trees
            .meta
            .get(META_IDS_PACKED_THROUGH)?
            .map_or(0, |value| u64_from(&value));
        let waiting = waiting_ids(&trees.feed, ids_packed_through)?;
        Ok(Store {
            db,
            trees,
            next_seq: AtomicU64::new(last_log.max(applied) + 1),
            next_audit: AtomicU64::new(last_audit + 1),
            append_lock: Mutex::new(()),
            counters: Mutex::new(counters),
            trimmed_through: AtomicU64::new(0),
            waiting: Mutex::new(waiting),
            ids_packed_through: AtomicU64::new(ids_packed_through),
            legacy_ids: legacy_ids.into(),
            pack_lock: Mutex::new(()),
            scoring_table: OnceLock::new(),
            snapshot_file: None,
            phone_filter: KeyFilter::default(),
            id_filter: KeyFilter::default(),
            reply_codes: ReplyCodes::default(),
        })
    }

    /// Makes every write so far durable. Blocking; see the module docs.
    pub fn flush(&self) -> Result<usize> {
        Ok(self.db.flush()?)
    }

    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    // ----- the feed log -----

    /// Appends events of one agency to the log, skipping ids the agency has used
    /// before (in the store or earlier in this batch). The ids are in the
    /// entries (one chunk, one write) until a pass packs them. Not durable until
    /// a flush.
    pub fn append_feed(&self, agency: &str, events: Vec<LogEntry>) -> Result<Appended> {
        let _guard = self.append_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut appended = Appended::default();
        let mut seen_here = std::collections::HashSet::new();
        let mut accepted = Vec::with_capacity(events.len());
        let mut ids = Vec::with_capacity(events.len());
        for (index, entry) in events.into_iter().enumerate() {
            let LogEntry::Feed { event, .. } = &entry else {
                panic!("append_feed takes feed events only");
            };
            let key = dedup_key(agency, &event.id);
            if seen_here.contains(&key) || self.id_seq(&key)?.is_some() {
                appended.duplicates.push(index);
                continue;
            }
            seen_here.insert(key.clone());
            ids.push(key);
            accepted.push(entry);
        }
        let seqs = write_chunk(&self.trees.feed, &self.next_seq, &accepted)?;
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        for (key, seq) in ids.into_iter().zip(seqs.clone()) {
            waiting.current.insert(key.into_boxed_slice(), seq);
        }
        drop(waiting);
        appended.seqs = seqs.collect();
        Ok(appended)
    }

    /// The sequence number the feed gave an agency's event id, if it accepted
    /// one with that id (ids loaded by `dfm load` are not kept).
    pub fn feed_event_seq(&self, agency: &str, id: &str) -> Result<Option<u64>> {
        self.id_seq(&dedup_key(agency, id))
    }

    /// The sequence number the log gave the id `id` (`D…` or `S…`): while it
    /// waits to be packed, from the ids in memory (or, in a store written
    /// before `feed_ids`, from its own key); then from its bucket.
    fn id_seq(&self, id: &[u8]) -> Result<Option<u64>> {
        let waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id);
        if waiting.is_some() {
            return Ok(waiting);
        }
        if self.legacy_ids.load(Ordering::Relaxed) {
            if let Some(value) = self.trees.feed.get(id)? {
                return stored_seq(id, &value).map(Some);
            }
        }
        if !self.id_filter.may_have(id) {
            return Ok(None);
        }
        let bucket = feed_ids::bucket_key(id);
        match self.trees.feed_ids.get(bucket)? {
            Some(value) => feed_ids::find(&value, id).map_err(|e| corrupt("feed_ids", &bucket, e)),
            None => Ok(None),
        }
    }

    /// Adds ids to their bucket, as one compare-and-swap (a pass and an SMS
    /// reply may add to one bucket at once); they are marked in the id filter
    /// first.
    fn add_to_bucket(&self, bucket: [u8; 4], additions: &[(&[u8], u64)]) -> Result<()> {
        for (id, _) in additions {
            self.id_filter.mark(id);
        }
        loop {
            let current = self.trees.feed_ids.get(bucket)?;
            let value = feed_ids::with_additions(current.as_deref(), additions)
                .map_err(|e| corrupt("feed_ids", &bucket, e))?;
            if self
                .trees
                .feed_ids
                .compare_and_swap(bucket, current, Some(value))?
                .is_ok()
            {
                return Ok(());
            }
        }
    }

    /// Appends internal entries (SMS replies, timers, payment outcomes, cycles,
    /// operator actions). Not durable until a flush.
    pub fn append_internal(&self, entries: &[LogEntry]) -> Result<Vec<u64>> {
        let _guard = self.append_lock.lock().unwrap_or_else(|e| e.into_inner());
        Ok(write_chunk(&self.trees.feed, &self.next_seq, entries)?.collect())
    }

    /// Appends an SMS reply unless its inbound message id was seen before; the
    /// check and the insert are one step. `None` for a repeat. The entry is written
    /// before the id, which goes straight into its bucket (replies are few): a
    /// crash between them at worst applies the reply twice, and the consent
    /// machine ignores a second answer.
    pub fn append_sms_reply(
        &self,
        message_id: &str,
        entry: Option<LogEntry>,
    ) -> Result<Option<u64>> {
        let _guard = self.append_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut dedup = Vec::with_capacity(1 + message_id.len());
        dedup.push(b'S');
        dedup.extend_from_slice(message_id.as_bytes());
        if self.id_seq(&dedup)?.is_some() {
            return Ok(None);
        }
        let seq = self.next_seq.load(Ordering::SeqCst);
        if let Some(entry) = entry {
            write_chunk(&self.trees.feed, &self.next_seq, &[entry])?;
        }
        self.add_to_bucket(feed_ids::bucket_key(&dedup), &[(&dedup, seq)])?;
        Ok(Some(seq))
    }

    /// The feed's ids not yet packed into buckets; what to look at before
    /// calling [`Store::pack_feed_ids`].
    pub fn unpacked_feed_ids(&self) -> u64 {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner()).len();
        waiting as u64
    }

    /// Whether ids kept the way stores before `feed_ids` kept them are left.
    pub fn legacy_feed_ids_left(&self) -> bool {
        self.legacy_ids.load(Ordering::Relaxed)
    }

    /// One packing pass: moves every feed id taken so far into its bucket in
    /// `feed_ids`, then lets the log drop the applied chunks that held them;
    /// also moves up to `legacy_max` ids that a store written before
    /// `feed_ids` kept as keys of their own. Returns how many ids it moved.
    ///
    /// A bucket is written before the mark that lets the log drop the ids'
    /// chunks, and an old key is removed only after its bucket is written: a
    /// crash in between leaves an id in two places, and the next pass adds it
    /// once. Appends and lookups go on meanwhile; passes take turns.
    pub fn pack_feed_ids(&self, legacy_max: usize) -> Result<usize> {
        let _pass = self.pack_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut legacy_keys = Vec::new();
        if self.legacy_ids.load(Ordering::Relaxed) {
            for prefix in [b"D", b"S"] {
                let room = legacy_max - legacy_keys.len();
                for item in self.trees.feed.scan_prefix(prefix).take(room) {
                    let (key, value) = item?;
                    let seq = stored_seq(&key, &value)?;
                    legacy_keys.push((key, seq));
                }
            }
        }
        // Taken under the append lock, so that every feed entry up to
        // `through` has its id in `packing`.
        let (packing, through) = {
            let _appends = self.append_lock.lock().unwrap_or_else(|e| e.into_inner());
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            let packing = std::sync::Arc::new(std::mem::take(&mut waiting.current));
            waiting.packing = Some(packing.clone());
            (
                packing,
                self.next_seq.load(Ordering::SeqCst).saturating_sub(1),
            )
        };
        let mut ids: Vec<([u8; 4], &[u8], u64)> = packing
            .iter()
            .map(|(id, seq)| (feed_ids::bucket_key(id), &id[..], *seq))
            .chain(
                legacy_keys
                    .iter()
                    .map(|(key, seq)| (feed_ids::bucket_key(key), &key[..], *seq)),
            )
            .collect();
        ids.sort_unstable();
        for group in ids.chunk_by(|a, b| a.0 == b.0) {
            let additions: Vec<(&[u8], u64)> =
                group.iter().map(|(_, id, seq)| (*id, *seq)).collect();
            self.add_to_bucket(group[0].0, &additions)?;
        }
        let moved = ids.len();
        drop(ids);
        self.trees
            .meta
            .insert(META_IDS_PACKED_THROUGH, &through.to_be_bytes()[..])?;
        self.ids_packed_through.fetch_max(through, Ordering::SeqCst);
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .packing = None;
        for (key, _) in &legacy_keys {
            self.trees.feed.remove(key)?;
        }
        if legacy_keys.len() < legacy_max {
            self.legacy_ids.store(false, Ordering::Relaxed);
        }
        self.trim_log(self.applied_through()?)?;
        Ok(moved)
    }

    /// Reserves `count` sequence numbers for inputs applied without the log (the
    /// offline bulk load); returns the first. The caller marks them applied with
    /// [`Store::set_applied_through`] once written, which keeps sequence numbers
    /// monotonic across restarts.
    pub fn reserve_seqs(&self, count: u64) -> u64 {
        let _guard = self.append_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.next_seq.fetch_add(count, Ordering::SeqCst)
    }

    /// Writes many families' changes with one batch per tree, for the offline
    /// bulk load: atomic per tree, not across trees (a load interrupted midway
    /// is run again; every fact is a set, so applying it twice is applying it
    /// once). Also writes citizen-index entries and orphan facts.
    pub fn bulk_write(
        &self,
        commits: &[FamilyCommit],
        index: &[(Iin, Option<FamilyId>)],
        orphans: &[CitizenFacts],
    ) -> Result<()> {
        let t = &self.trees;
        let mut writes = self.writes_of(commits);
        for facts in orphans {
            let key = facts.iin.as_str().as_bytes().to_vec();
            writes.orphans.insert(key, Some(encode(facts)));
        }
        let mut families = sled::Batch::default();
        for (key, family) in &writes.families {
            families.insert(*key, family.record.as_slice());
        }
        t.families.apply_batch(families)?;
        if let Some(table) = self.scoring_table.get() {
            for (key, family) in &writes.families {
                table.put(key, &family.compact);
            }
        }
        for (tree, tree_writes) in writes.side_tables(t) {
            tree.apply_batch(batch_of(tree_writes))?;
        }
        self.release_reply_codes(commits);
        for part in by_bucket(index).chunks(INDEX_BATCH_BUCKETS) {
            let mut batch = sled::Batch::default();
            for (key, bucket) in bucket_writes(&t.citizen_buckets, part)? {
                match bucket {
                    Some(bucket) => batch.insert(&key[..], bucket),
                    None => batch.remove(&key[..]),
                }
            }
            t.citizen_buckets.apply_batch(batch)?;
        }
        self.add_counters(&writes.counters)?;
        Ok(())
    }

    /// The highest sequence number given so far (0 when none).
    pub fn last_seq(&self) -> u64 {
        self.next_seq.load(Ordering::SeqCst) - 1
    }

    /// Log entries after `after`, at most `limit`, in order.
    pub fn read_log(&self, after: u64, limit: usize) -> Result<Vec<(u64, LogEntry)>> {
        let start = log_key(after.saturating_add(1));
        let end = log_key(u64::MAX);
        let mut entries = Vec::new();
        for item in self.trees.feed.range(start..=end) {
            let (key, value) = item?;
            let chunk: StoredChunk = decode_in("feed", &key, &value)?;
            let seqs = chunk.first..;
            for (seq, entry) in seqs.zip(chunk.entries) {
                if entries.len() == limit {
                    return Ok(entries);
                }
                if seq > after {
                    entries.push((seq, entry));
                }
            }
        }
        Ok(entries)
    }

    /// The catalogue (year and TOML text) that every stored outcome agrees
    /// with, except those of families evaluated since by a different catalogue
    /// the service was started with: set when the store is first opened by
    /// `serve` or `load`, and by each rules reload once the families it changes
    /// are submitted. What-if and re-score diff a proposal against it.
    pub fn rules_in_force(&self) -> Result<Option<(i32, String)>> {
        self.trees
            .meta
            .get(META_RULES_IN_FORCE)?
            .map(|value| decode_in("meta", META_RULES_IN_FORCE, &value))
            .transpose()
    }

    pub fn set_rules_in_force(&self, year: i32, catalogue: &str) -> Result<()> {
        self.trees
            .meta
            .insert(META_RULES_IN_FORCE, encode(&(year, catalogue)))?;
        Ok(())
    }

    /// Keeps the catalogue (year and TOML text) that evaluations of `version`
    /// are made under, for as long as the store lives: a stored evaluation
    /// keeps no reasons in words, and a reader has them written again under
    /// the catalogue that made it. Returns whether a different catalogue of the
    /// same version was replaced (the words of evaluations made under that one
    /// are then not shown, as their decisions no longer come out the same).
    pub fn keep_catalogue(&self, version: &str, year: i32, catalogue: &str) -> Result<bool> {
        let key = catalogue_key(version);
        let value = encode(&(year, catalogue));
        let previous = self.trees.meta.insert(key, value.as_slice())?;
        Ok(previous.is_some_and(|previous| previous != value.as_slice()))
    }

    /// The catalogue kept for `version` ([`Store::keep_catalogue`]).
    pub fn catalogue(&self, version: &str) -> Result<Option<(i32, String)>> {
        let key = catalogue_key(version);
        self.trees
            .meta
            .get(&key)?
            .map(|value| decode_in("meta", &key, &value))
            .transpose()
    }

    /// Accepted log entries not applied yet.
    pub fn backlog(&self) -> Result<u64> {
        Ok(self.last_seq().saturating_sub(self.applied_through()?))
    }

    /// Everything at or below this sequence number has been applied and written.
    pub fn applied_through(&self) -> Result<u64> {
        Ok(self
            .trees
            .meta
            .get(META_APPLIED_THROUGH)?
            .map_or(0, |value| u64_from(&value)))
    }

    /// Records the applied watermark and drops the log chunks it covers whole (a
    /// chunk it cuts stays until the rest is applied) once their ids are packed
    /// ([`Store::pack_feed_ids`]), so a resent id is still a duplicate. Chunks
    /// left by a crash between the two are below the watermark, never read
    /// again as entries, and dropped next time.
    pub fn set_applied_through(&self, seq: u64) -> Result<()> {
        self.trees
            .meta
            .insert(META_APPLIED_THROUGH, &seq.to_be_bytes()[..])?;
        self.trim_log(seq)
    }

    /// Removes the log's chunks that are applied (through `applied`) and whose
    /// ids are packed.
    fn trim_log(&self, applied: u64) -> Result<()> {
        let through = applied.min(self.ids_packed_through.load(Ordering::SeqCst));
        let from = self.trimmed_through.load(Ordering::SeqCst);
        if through <= from {
            return Ok(());
        }
        for item in self.trees.feed.range(log_key(from)..=log_key(through)) {
            let (key, _) = item?;
            self.trees.feed.remove(key)?;
        }
        self.trimmed_through.fetch_max(through, Ordering::SeqCst);
        Ok(())
    }

    /// The last sequence number whose counter changes are in the counters. When
    /// it is above the applied watermark, a crash came between a batch's counters
    /// and its records: the dispatcher replays exactly that batch, and its counter
    /// changes are not counted again.
    pub fn counted_through(&self) -> u64 {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .through
            .seq
    }

    // ----- families, orphans and the citizen index -----

    pub fn family(&self, family_id: &FamilyId) -> Result<Option<FamilyRecord>> {
        let key = family_id.as_str().as_bytes();
        self.trees
            .families
            .get(key)?
            .map(|value| decode_in("families", key, &value))
            .transpose()
    }

    /// Reads the records and projections of `family_ids` on up to `threads`
    /// threads at once and drops them: sled keeps them in its cache and the
    /// system in its page cache, so that activating the families and writing
    /// their commits next does not wait on the disk one at a time. Errors are
    /// left to those next reads.
    pub fn prefetch_families(&self, family_ids: &[&FamilyId], threads: usize) {
        on_threads(family_ids, threads, |family_id| {
            let _ = self.trees.families.get(family_id.as_str().as_bytes());
            None::<()>
        });
    }

    /// [`Store::family_of`] for each of `iins`, on up to `threads` threads at
    /// once, for the same reason as [`Store::prefetch_families`]; in no
    /// particular order, without the citizens whose bucket could not be read.
    pub fn families_of(&self, iins: &[Iin], threads: usize) -> Vec<(Iin, Option<FamilyId>)> {
        on_threads(iins, threads, |iin| Some((*iin, self.family_of(iin).ok()?)))
    }

    /// Family records in id order after `after` (exclusive), at most `limit`.
    pub fn families_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> impl Iterator<Item = Result<FamilyRecord>> + '_ {
        page(&self.trees.families, "families", after, limit)
    }

    /// Encoded family records in id order after `after` (exclusive), at most
    /// `limit`, with the last id read: for scans that decode on several threads.
    pub fn family_values_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<StoredValue>, Option<String>)> {
        values_after(&self.trees.families, after, limit)
    }

    /// Marks a bulk load as begun (durably) or finished. A load writes the
    /// citizen index behind its families, so a store whose load did not finish
    /// routes some citizens' events wrongly until the load is run again.
    pub fn set_load_running(&self, running: bool) -> Result<()> {
        if running {
            self.trees.meta.insert(META_LOAD_RUNNING, &[][..])?;
            self.flush()?;
        } else {
            self.trees.meta.remove(META_LOAD_RUNNING)?;
        }
        Ok(())
    }

    /// Whether a bulk load began on this store and did not finish.
    pub fn load_unfinished(&self) -> Result<bool> {
        Ok(self.trees.meta.contains_key(META_LOAD_RUNNING)?)
    }

    /// From now on, every family write also puts the family's compact scoring
    /// form into the returned table, which [`Store::build_scoring_table`] then
    /// fills with the families already stored.
    pub fn enable_scoring_table(&self) -> Arc<ScoringTable> {
        self.scoring_table.get_or_init(Default::default).clone()
    }

    /// The scoring table, if it is enabled (built or not).
    pub fn scoring_table(&self) -> Option<&Arc<ScoringTable>> {
        self.scoring_table.get()
    }

    /// The scoring table, when it holds every family: enabled and built.
    pub fn complete_scoring_table(&self) -> Option<&ScoringTable> {
        self.scoring_table
            .get()
            .map(|table| &**table)
            .filter(|table| table.is_built())
    }

    /// Saves the scoring table, if it is built, for the next start; returns
    /// whether it did. For a clean stop, once nothing writes families. The
    /// file is written aside and renamed; the mark in `meta` comes last.
    pub fn save_scoring_table(&self) -> Result<bool> {
        let (Some(table), Some(path)) = (self.complete_scoring_table(), &self.snapshot_file) else {
            return Ok(false);
        };
        use std::io::Write;
        self.trees.meta.remove(META_SCORING_SNAPSHOT)?;
        self.flush()?;
        let aside = path.with_extension("new");
        let error = file_error(&aside);
        let file = std::fs::File::create(&aside).map_err(&error)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        out.write_all(SNAPSHOT_MAGIC).map_err(&error)?;
        out.write_all(&[SCORING_SNAPSHOT_FORMAT]).map_err(&error)?;
        let codes = crate::compact::registered_codes();
        out.write_all(&(codes.len() as u32).to_be_bytes())
            .map_err(&error)?;
        for code in &codes {
            out.write_all(&(code.len() as u32).to_be_bytes())
                .map_err(&error)?;
            out.write_all(code.as_bytes()).map_err(&error)?;
        }
        for index in 0..crate::scoring_table::SHARDS {
            let bytes = table.shard_bytes(index);
            out.write_all(&(bytes.len() as u64).to_be_bytes())
                .map_err(&error)?;
            out.write_all(&bytes).map_err(&error)?;
        }
        let file = out.into_inner().map_err(|e| error(e.into_error()))?;
        file.sync_all().map_err(&error)?;
        std::fs::rename(&aside, path).map_err(file_error(path))?;
        if let Some(directory) = path.parent() {
            std::fs::File::open(directory)
                .and_then(|directory| directory.sync_all())
                .map_err(file_error(directory))?;
        }
        let mut stamp = vec![SCORING_SNAPSHOT_FORMAT];
        stamp.extend_from_slice(&self.applied_through()?.to_be_bytes());
        self.trees.meta.insert(META_SCORING_SNAPSHOT, stamp)?;
        self.flush()?;
        Ok(true)
    }

    /// The scoring table a clean stop saved, when nothing was applied since
    /// and its format is this one's: its mark taken (a crash after this start
    /// rebuilds from the records), its header and codes read. `None` when the
    /// table must be built from the records instead. Its families are read
    /// later, while the service runs ([`SavedTable::load_into`]).
    pub fn take_saved_scoring_table(&self) -> Result<Option<SavedTable>> {
        let Some(path) = &self.snapshot_file else {
            return Ok(None);
        };
        let Some(stamp) = self.trees.meta.remove(META_SCORING_SNAPSHOT)? else {
            return Ok(None);
        };
        self.flush()?;
        let mut expected = vec![SCORING_SNAPSHOT_FORMAT];
        expected.extend_from_slice(&self.applied_through()?.to_be_bytes());
        if *stamp != *expected {
            return Ok(None);
        }
        use std::io::Read;
        let error = file_error(path);
        let file = std::fs::File::open(path).map_err(&error)?;
        let mut input = std::io::BufReader::with_capacity(1 << 20, file);
        let mut head = [0u8; 9];
        input.read_exact(&mut head).map_err(&error)?;
        if head[..8] != SNAPSHOT_MAGIC[..] || head[8] != SCORING_SNAPSHOT_FORMAT {
            return Ok(None);
        }
        let mut number = [0u8; 4];
        input.read_exact(&mut number).map_err(&error)?;
        let mut codes = Vec::new();
        for _ in 0..u32::from_be_bytes(number) {
            input.read_exact(&mut number).map_err(&error)?;
            let mut code = vec![0u8; u32::from_be_bytes(number).min(1 << 10) as usize];
            input.read_exact(&mut code).map_err(&error)?;
            codes.push(String::from_utf8_lossy(&code).into_owned());
        }
        if !crate::compact::register_in_order(&codes) {
            return Ok(None);
        }
        Ok(Some(SavedTable {
            input,
            path: path.clone(),
        }))
    }

    /// Reads every stored family into the scoring table (enabled first), on
    /// `threads` threads beside the one that reads the store; returns how many
    /// it read. A family written meanwhile keeps its newer form. Gives up,
    /// leaving the table unbuilt, when [`ScoringTable::abandon_build`] is called.
    pub fn build_scoring_table(&self, threads: usize) -> Result<u64> {
        let table = self.enable_scoring_table();
        let (read, _) = self.scan_records(
            threads,
            || table.build_abandoned(),
            Vec::new,
            |compact: &mut Vec<u8>, record| {
                compact.clear();
                crate::compact::encode(&record, compact);
                table.put_if_absent(record.family_id.as_str().as_bytes(), compact);
            },
        )?;
        if !table.build_abandoned() {
            table.set_built();
        }
        Ok(read)
    }

    /// Runs `work` on every family record, on `threads` threads, each with its
    /// own accumulator from `start`, while this thread reads the records in id
    /// order (decoding is where the time goes); stops reading early when `stop`
    /// says so. Returns how many records it read, and the accumulators.
    pub fn scan_records<T, S, W>(
        &self,
        threads: usize,
        stop: impl Fn() -> bool,
        start: S,
        work: W,
    ) -> Result<(u64, Vec<T>)>
    where
        T: Send,
        S: Fn() -> T + Sync,
        W: Fn(&mut T, FamilyRecord) + Sync,
    {
        let threads = threads.max(1);
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<StoredValue>>(threads);
        let receiver = Mutex::new(receiver);
        let (receiver, start, work) = (&receiver, &start, &work);
        let (read, parts) = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(move || -> Result<T> {
                        let mut accumulator = start();
                        loop {
                            let next = receiver.lock().unwrap_or_else(|e| e.into_inner()).recv();
                            let Ok(chunk) = next else { break };
                            for value in &chunk {
                                work(&mut accumulator, decode_in("families", b"", value)?);
                            }
                        }
                        Ok(accumulator)
                    })
                })
                .collect();
            let read = (|| -> Result<u64> {
                let mut cursor: Option<String> = None;
                let mut read = 0u64;
                while !stop() {
                    let (values, last) =
                        values_after(&self.trees.families, cursor.as_deref(), 1_024)?;
                    let Some(last) = last else { break };
                    cursor = Some(last);
                    read += values.len() as u64;
                    if sender.send(values).is_err() {
                        break; // a worker failed: its error is reported below
                    }
                }
                Ok(read)
            })();
            drop(sender);
            let parts = workers
                .into_iter()
                .map(|worker| {
                    worker
                        .join()
                        .unwrap_or_else(|e| std::panic::resume_unwind(e))
                })
                .collect::<Result<Vec<T>>>();
            (read, parts)
        });
        let parts = parts?;
        Ok((read?, parts))
    }

    /// Reads every key: for tests and offline tools, never on a request path.
    pub fn family_count(&self) -> usize {
        self.trees.families.len()
    }

    pub fn orphan(&self, iin: &Iin) -> Result<Option<CitizenFacts>> {
        let key = iin.as_str().as_bytes();
        self.trees
            .orphans
            .get(key)?
            .map(|value| decode_in("orphans", key, &value))
            .transpose()
    }

    /// Writes many citizens' orphan facts.
    pub fn put_orphans(&self, facts: &[CitizenFacts]) -> Result<()> {
        for facts in facts {
            self.put_orphan(facts)?;
        }
        Ok(())
    }

    pub fn put_orphan(&self, facts: &CitizenFacts) -> Result<()> {
        self.trees
            .orphans
            .insert(facts.iin.as_str().as_bytes(), encode(facts))?;
        Ok(())
    }

    pub fn family_of(&self, iin: &Iin) -> Result<Option<FamilyId>> {
        let key = citizen_index::bucket_key(iin);
        match self.trees.citizen_buckets.get(key)? {
            None => Ok(None),
            Some(bucket) => citizen_index::find(&bucket, iin).map_err(|e| bucket_corrupt(key, e)),
        }
    }

    /// Puts a citizen in a family (Some) or takes them out of the index (None).
    /// Safe beside other writers of the same bucket: the bucket is swapped only
    /// if it is unchanged since it was read.
    pub fn set_family_of(&self, iin: &Iin, family_id: Option<&FamilyId>) -> Result<()> {
        let key = citizen_index::bucket_key(iin);
        let change = [(*iin, family_id.cloned())];
        loop {
            let current = self.trees.citizen_buckets.get(key)?;
            let new = citizen_index::with_changes(current.as_deref(), &change)
                .map_err(|e| bucket_corrupt(key, e))?;
            if self
                .trees
                .citizen_buckets
                .compare_and_swap(key, current, new)?
                .is_ok()
            {
                return Ok(());
            }
        }
    }

    /// How many citizens the index holds. Reads every bucket.
    pub fn citizen_count(&self) -> Result<usize> {
        let mut citizens = 0;
        for item in self.trees.citizen_buckets.iter() {
            let (key, bucket) = item?;
            let key: [u8; 4] = key
                .as_ref()
                .try_into()
                .map_err(|_| corrupt("citizen_buckets", &key, "a bucket number is 4 bytes"))?;
            citizens += citizen_index::count(&bucket).map_err(|e| bucket_corrupt(key, e))?;
        }
        Ok(citizens)
    }

    /// Writes one family's changes outside a dispatch batch (an input retried on
    /// its own, a test). The record goes before its counter changes: a crash
    /// between them loses this one change from the counters rather than counting
    /// it twice.
    pub fn commit_family(&self, commit: &FamilyCommit) -> Result<()> {
        let writes = self.writes_of(std::slice::from_ref(commit));
        writes.put_side_tables(&self.trees)?;
        self.release_reply_codes(std::slice::from_ref(commit));
        writes.put_families(&self.trees, self.scoring_table.get().map(|t| &**t))?;
        self.add_counters(&writes.counters)?;
        writes.remove_side_tables(&self.trees)
    }

    /// Writes a dispatch batch's changes, which reach `through` into the log:
    /// side-table additions, the counters (unless they already hold this batch: a
    /// replay), the family records, side-table removals. See the module docs for
    /// why this order needs no transaction.
    pub fn commit_families(&self, commits: &[FamilyCommit], through: Counted) -> Result<()> {
        if commits.is_empty() {
            return Ok(());
        }
        let writes = self.writes_of(commits);
        writes.put_side_tables(&self.trees)?;
        self.release_reply_codes(commits);
        {
            let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
            if through > counters.through {
                let mut next = counters.clone();
                next.add(&writes.counters);
                next.through = through;
                self.trees.stats.insert(STATS_RECORD, encode(&next))?;
                *counters = next;
            }
        }
        writes.put_families(&self.trees, self.scoring_table.get().map(|t| &**t))?;
        writes.remove_side_tables(&self.trees)
    }

    /// What `commits` write, for every writer of families: the phones of the
    /// requests they open are marked in the phone filter first, so that the
    /// filter knows a phone before its request is in the tree.
    fn writes_of<'c>(&self, commits: &'c [FamilyCommit]) -> Writes<'c> {
        for (phone, _) in commits.iter().flat_map(|commit| &commit.requests_opened) {
            self.phone_filter.mark(phone.as_str().as_bytes());
        }
        Writes::of(commits)
    }

    /// Picks the reply code of `entitlement_id`'s new request to `phone`:
    /// `pick` is given the codes that the phone's other requests hold, written
    /// or only picked so far (the module `reply_codes`). The code stays reserved
    /// until a commit writes the request.
    pub fn pick_reply_code(
        &self,
        phone: &Phone,
        entitlement_id: &str,
        pick: impl FnOnce(&std::collections::BTreeSet<u16>) -> u16,
    ) -> Result<u16> {
        let written = || {
            Ok(self
                .open_requests(phone)?
                .into_iter()
                .filter(|request| request.entitlement_id != entitlement_id)
                .map(|request| request.code)
                .collect())
        };
        self.reply_codes
            .pick(phone.as_str(), entitlement_id, written, pick)
    }

    /// Drops the reservations of the requests `commits` opened, once the
    /// tree holds them.
    fn release_reply_codes(&self, commits: &[FamilyCommit]) {
        for (phone, request) in commits.iter().flat_map(|commit| &commit.requests_opened) {
            self.reply_codes
                .release(phone.as_str(), &request.entitlement_id);
        }
    }

    /// Codes picked for requests that no commit has written yet.
    pub fn reserved_reply_codes(&self) -> usize {
        self.reply_codes.len()
    }

    fn key_filter(&self, which: Filter) -> &KeyFilter {
        match which {
            Filter::Phones => &self.phone_filter,
            Filter::Ids => &self.id_filter,
        }
    }

    /// Reads `which`'s tree into it, after which a lookup of a key it never
    /// marked reads nothing ([`crate::key_filter`]): with [`Filter::Phones`],
    /// [`Store::open_requests`] skips the tree for a phone with none; with
    /// [`Filter::Ids`], a new event id reads no bucket. Returns false if
    /// [`Store::abandon_filters`] stopped it first.
    pub fn fill_filter(&self, which: Filter) -> Result<bool> {
        match which {
            Filter::Phones => {
                let phones = self.trees.phone_requests.iter().keys().map(|key| {
                    let key = key?;
                    let end = key.iter().position(|&byte| byte == 0).unwrap_or(key.len());
                    Ok(key[..end].to_vec())
                });
                self.phone_filter.fill(phones)
            }
            Filter::Ids => {
                let ids = self.trees.feed_ids.iter().flat_map(|bucket| {
                    let ids = bucket.map_err(StoreError::from).and_then(|(key, value)| {
                        feed_ids::ids(&value)
                            .map(|ids| ids.into_iter().map(<[u8]>::to_vec).collect::<Vec<_>>())
                            .map_err(|e| corrupt("feed_ids", &key, e))
                    });
                    // A bucket's ids, or the error that ends the fill.
                    match ids {
                        Ok(ids) => ids.into_iter().map(Ok).collect(),
                        Err(error) => vec![Err(error)],
                    }
                });
                self.id_filter.fill(ids)
            }
        }
    }

    /// What a saved key filter must agree with: the applied watermark, which
    /// every commit that opens a request and every load moves, and the packed
    /// one, which every packing pass moves.
    fn key_filter_stamp(&self) -> Result<[u8; 16]> {
        let mut stamp = [0u8; 16];
        stamp[..8].copy_from_slice(&self.applied_through()?.to_be_bytes());
        let packed = self.ids_packed_through.load(Ordering::SeqCst);
        stamp[8..].copy_from_slice(&packed.to_be_bytes());
        Ok(stamp)
    }

    /// Saves every filled key filter in `meta` for the next opening, stamped
    /// with the watermarks ([`Store::key_filter_stamp`]); returns which it
    /// saved. The phones' filter is not saved once it is crowded
    /// ([`KeyFilter::is_crowded`]). For a clean stop or the end of a load,
    /// once nothing writes: the filters then hold every key of their trees,
    /// and anything that writes those trees later either takes the saved
    /// filters first (a start) or moves a watermark (a load, or a release
    /// that knows no saved filters).
    pub fn save_key_filters(&self) -> Result<Vec<Filter>> {
        let stamp = self.key_filter_stamp()?;
        let mut saved = Vec::new();
        for which in Filter::ALL {
            let filter = self.key_filter(which);
            // Phones leave the tree as their requests close, and a crowded
            // filter is better filled from the tree again. Ids never leave.
            let crowded = which == Filter::Phones && filter.is_crowded();
            if filter.is_filled() && !crowded {
                let value = [&[KEY_FILTER_FORMAT][..], &stamp, &filter.to_bytes()].concat();
                self.trees.meta.insert(which.meta_key(), value)?;
                saved.push(which);
            }
        }
        self.flush()?;
        Ok(saved)
    }

    /// Reads back the key filters [`Store::save_key_filters`] saved, when
    /// nothing was applied since; returns which it read. Every saved filter is
    /// taken, read or not, before this returns, so that a crash after this
    /// start fills them from their trees again. For the start of a writer, before
    /// it writes.
    pub fn take_saved_key_filters(&self) -> Result<Vec<Filter>> {
        let stamp = self.key_filter_stamp()?;
        let mut taken = false;
        let mut read = Vec::new();
        for which in Filter::ALL {
            let Some(value) = self.trees.meta.remove(which.meta_key())? else {
                continue;
            };
            taken = true;
            let saved = value
                .split_first()
                .filter(|(format, _)| **format == KEY_FILTER_FORMAT)
                .and_then(|(_, rest)| rest.strip_prefix(&stamp[..]));
            if saved.is_some_and(|bytes| self.key_filter(which).fill_from_bytes(bytes)) {
                read.push(which);
            }
        }
        if taken {
            self.flush()?;
        }
        Ok(read)
    }

    /// Stops a [`Store::fill_filter`] under way (the store is closing).
    pub fn abandon_filters(&self) {
        self.phone_filter.abandon();
        self.id_filter.abandon();
    }

    // ----- side tables -----

    /// Pending SMS after `after` (a reference, exclusive), at most `limit`, in
    /// reference order: a restart resumes the outbox a page at a time.
    pub fn sms_outbox_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<SmsOrder>> {
        page(&self.trees.sms_outbox, "sms_outbox", after, limit).collect()
    }

    /// Pending payments after `after` (a reference id, exclusive), at most `limit`.
    pub fn payment_outbox_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PaymentOrder>> {
        page(&self.trees.payment_outbox, "payment_outbox", after, limit).collect()
    }

    pub fn sms_outbox(&self) -> Result<Vec<SmsOrder>> {
        self.trees
            .sms_outbox
            .iter()
            .map(|item| {
                let (key, value) = item?;
                decode_in("sms_outbox", &key, &value)
            })
            .collect()
    }

    /// Queues an SMS that belongs to no family (a help message). Not durable
    /// until a flush.
    pub fn put_sms(&self, order: &SmsOrder) -> Result<()> {
        self.trees
            .sms_outbox
            .insert(order.reference.as_bytes(), encode(order))?;
        Ok(())
    }

    /// Whether an SMS is still waiting in the outbox.
    pub fn sms_pending(&self, reference: &str) -> Result<bool> {
        Ok(self.trees.sms_outbox.contains_key(reference.as_bytes())?)
    }

    pub fn remove_sms(&self, reference: &str) -> Result<()> {
        self.trees.sms_outbox.remove(reference.as_bytes())?;
        Ok(())
    }

    pub fn payment_outbox(&self) -> Result<Vec<PaymentOrder>> {
        self.trees
            .payment_outbox
            .iter()
            .map(|item| {
                let (key, value) = item?;
                decode_in("payment_outbox", &key, &value)
            })
            .collect()
    }

    pub fn payment_order(&self, reference_id: &str) -> Result<Option<PaymentOrder>> {
        let key = reference_id.as_bytes();
        self.trees
            .payment_outbox
            .get(key)?
            .map(|value| decode_in("payment_outbox", key, &value))
            .transpose()
    }

    /// Timers due at or before `now`, at most `limit`.
    pub fn due_timers(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<TimerRecord>> {
        let now_ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        let end = (now_ms + 1).to_be_bytes();
        self.trees
            .timers
            .range(..&end[..])
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                decode_in("timers", &key, &value)
            })
            .collect()
    }

    pub fn remove_timers(&self, timers: &[TimerRecord]) -> Result<()> {
        for timer in timers {
            self.trees.timers.remove(timer.key())?;
        }
        Ok(())
    }

    pub fn timer_count(&self) -> usize {
        self.trees.timers.len()
    }

    /// The open requests waiting on a phone.
    pub fn open_requests(&self, phone: &Phone) -> Result<Vec<OpenRequest>> {
        if !self.phone_filter.may_have(phone.as_str().as_bytes()) {
            return Ok(Vec::new());
        }
        let mut prefix = phone.as_str().as_bytes().to_vec();
        prefix.push(0);
        let mut requests = Vec::new();
        for item in self.trees.phone_requests.scan_prefix(&prefix) {
            let (key, value) = item?;
            let rest = &key[prefix.len()..];
            let parsed = rest.iter().position(|&byte| byte == 0).and_then(|split| {
                let family_id = std::str::from_utf8(&rest[..split]).ok()?.parse().ok()?;
                let entitlement_id = std::str::from_utf8(&rest[split + 1..]).ok()?.to_owned();
                Some((family_id, entitlement_id))
            });
            let (family_id, entitlement_id) =
                parsed.ok_or_else(|| corrupt("phone_requests", &key, "bad key layout"))?;
            let code = u16::try_from(u64_from(&value))
                .map_err(|_| corrupt("phone_requests", &key, "code out of range"))?;
            requests.push(OpenRequest {
                family_id,
                entitlement_id,
                code,
            });
        }
        Ok(requests)
    }

    /// Families with an active monthly benefit, for the monthly cycle.
    pub fn monthly_families(&self) -> impl Iterator<Item = Result<FamilyId>> + '_ {
        self.trees.monthly.iter().map(|item| {
            let (key, _) = item?;
            std::str::from_utf8(&key)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| corrupt("monthly", &key, "not a family id"))
        })
    }

    /// All counters (see [`FamilyCommit::count`]).
    pub fn stats(&self) -> Result<BTreeMap<String, i64>> {
        Ok(self
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values
            .clone())
    }

    /// Adds to the counters without moving [`Store::counted_through`].
    pub fn add_counters(&self, deltas: &BTreeMap<String, i64>) -> Result<()> {
        if deltas.values().all(|delta| *delta == 0) {
            return Ok(());
        }
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = counters.clone();
        next.add(deltas);
        self.trees.stats.insert(STATS_RECORD, encode(&next))?;
        *counters = next;
        Ok(())
    }

    // ----- audit and quarantine -----

    /// Appends to the audit log; there is no way to change or remove an entry.
    pub fn audit(&self, entry: &AuditEntry) -> Result<u64> {
        let seq = self.next_audit.fetch_add(1, Ordering::SeqCst);
        self.trees.audit.insert(seq.to_be_bytes(), encode(entry))?;
        Ok(seq)
    }

    pub fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, AuditEntry)>> {
        self.trees
            .audit
            .range((after + 1).to_be_bytes()..)
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                Ok((u64_from(&key), decode_in("audit", &key, &value)?))
            })
            .collect()
    }

    pub fn quarantine(&self, record: &QuarantineRecord) -> Result<()> {
        self.trees
            .quarantine
            .insert(record.seq.to_be_bytes(), encode(record))?;
        Ok(())
    }

    /// Whether the input at `seq` was set aside ([`Store::quarantine`]).
    pub fn is_quarantined(&self, seq: u64) -> Result<bool> {
        Ok(self.trees.quarantine.contains_key(seq.to_be_bytes())?)
    }

    pub fn quarantined(&self) -> Result<Vec<QuarantineRecord>> {
        self.trees
            .quarantine
            .iter()
            .map(|item| {
                let (key, value) = item?;
                decode_in("quarantine", &key, &value)
            })
            .collect()
    }

    /// Raw access for benchmarks that compare against plain sled.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }
}

fn batch_of(writes: &KeyWrites) -> sled::Batch {
    let mut batch = sled::Batch::default();
    for (key, value) in writes {
        match value {
            Some(value) => batch.insert(key.as_slice(), value.as_slice()),
            None => batch.remove(key.as_slice()),
        }
    }
    batch
}

/// Reads the counters record, folding in the key-per-counter layout of earlier
/// stores (each an i64, big-endian) and removing those keys.
fn open_counters(stats: &sled::Tree) -> Result<Counters> {
    let mut counters: Counters = match stats.get(STATS_RECORD)? {
        Some(value) => decode_in("stats", STATS_RECORD, &value)?,
        None => Counters::default(),
    };
    let mut legacy = Vec::new();
    for item in stats.iter() {
        let (key, value) = item?;
        if key.as_ref() == STATS_RECORD {
            continue;
        }
        let bytes: [u8; 8] = value
            .as_ref()
            .try_into()
            .map_err(|_| corrupt("stats", &key, "not 8 bytes"))?;
        let name = String::from_utf8_lossy(&key).into_owned();
        *counters.values.entry(name).or_insert(0) += i64::from_be_bytes(bytes);
        legacy.push(key);
    }
    if !legacy.is_empty() {
        stats.insert(STATS_RECORD, encode(&counters))?;
        for key in legacy {
            stats.remove(key)?;
        }
    }
    Ok(counters)
}

/// The feed's ids in the log's chunks after `packed_through`: the ids not
/// packed yet (the log keeps those chunks until they are).
fn waiting_ids(feed: &sled::Tree, packed_through: u64) -> Result<WaitingIds> {
    let mut waiting = WaitingIds::default();
    for item in feed.range(log_key(packed_through.saturating_add(1))..=log_key(u64::MAX)) {
        let (key, value) = item?;
        let chunk: StoredChunk = decode_in("feed", &key, &value)?;
        for (seq, entry) in (chunk.first..).zip(chunk.entries) {
            if let LogEntry::Feed { agency, event } = entry {
                if seq > packed_through {
                    waiting
                        .current
                        .insert(dedup_key(&agency, &event.id).into_boxed_slice(), seq);
                }
            }
        }
    }
    Ok(waiting)
}

/// Rewrites the one-entry-per-key log of earlier stores (`L` + seq) as chunks of
/// one, so that a store written before chunks keeps its unapplied entries.
fn migrate_single_entries(feed: &sled::Tree) -> Result<()> {
    for item in feed.scan_prefix(b"L") {
        let (key, value) = item?;
        let seq = u64_from(&key[1..]);
        let entry: LogEntry = decode_in("feed", &key, &value)?;
        let chunk = LogChunk {
            first: seq,
            entries: vec![entry],
        };
        feed.insert(log_key(seq), encode(&chunk))?;
        feed.remove(key)?;
    }
    Ok(())
}

/// `read` on each of `items`, split over up to `threads` scoped threads; the
/// answers it gives, in no particular order. A panic in `read` goes on here.
fn on_threads<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    read: impl Fn(&T) -> Option<R> + Sync,
) -> Vec<R> {
    let per_thread = items.len().div_ceil(threads.max(1)).max(1);
    let read = &read;
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(per_thread)
            .map(|part| scope.spawn(move || part.iter().filter_map(read).collect::<Vec<R>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|part| {
                part.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// `work` on each of `items`, split over up to `threads` scoped threads (on
/// this one when that is one or none); one of the errors, once every item
/// was tried. A panic in `work` goes on here.
fn all_on_threads<T: Sync>(
    items: &[T],
    threads: usize,
    work: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    if threads <= 1 {
        return items.iter().try_for_each(work);
    }
    let failed = on_threads(items, threads, |item| work(item).err());
    failed.into_iter().next().map_or(Ok(()), Err)
}

fn bucket_corrupt(key: [u8; 4], error: citizen_index::BucketError) -> StoreError {
    StoreError::Corrupt {
        tree: "citizen_buckets",
        key: format!("bucket {}", u32::from_be_bytes(key)),
        reason: error.to_string(),
    }
}

/// A bucket's key and its new value (None: remove it).
type BucketWrite = ([u8; 4], Option<Vec<u8>>);

/// Citizen-index changes (each citizen to a family, or out of the index)
/// grouped by the bucket they change, in key order.
fn by_bucket(changes: &[(Iin, Option<FamilyId>)]) -> Vec<BucketChanges> {
    let mut by_bucket: BTreeMap<[u8; 4], Vec<(Iin, Option<FamilyId>)>> = BTreeMap::new();
    for change in changes {
        by_bucket
            .entry(citizen_index::bucket_key(&change.0))
            .or_default()
            .push(change.clone());
    }
    by_bucket.into_iter().collect()
}

/// A bucket's key and the changes to it.
type BucketChanges = ([u8; 4], Vec<(Iin, Option<FamilyId>)>);

/// Each bucket read and changed once, with its new value. For a single
/// writer (the bulk load, the migration below), which writes them.
fn bucket_writes(buckets: &sled::Tree, changes: &[BucketChanges]) -> Result<Vec<BucketWrite>> {
    changes
        .iter()
        .map(|(key, changes)| {
            let current = buckets.get(key)?;
            let bucket = citizen_index::with_changes(current.as_deref(), changes)
                .map_err(|e| bucket_corrupt(*key, e))?;
            Ok((*key, bucket))
        })
        .collect()
}

/// Buckets written per sled batch by the bulk load. sled holds what a batch
/// rewrites in memory until the batch is applied: one batch of the ~870,000
/// buckets that 2,000,000 entries touch took a national load to 8.6 GB.
const INDEX_BATCH_BUCKETS: usize = 16_384;

/// Index entries moved per step of [`migrate_citizen_family`].
const MIGRATION_CHUNK: usize = 100_000;

/// Moves the index of a store written before it had buckets (one key per
/// citizen in the `citizen_family` tree) into buckets, a chunk at a time, then
/// drops the old tree. Safe to interrupt: old keys go only after their buckets
/// are written, and writing an entry twice is writing it once.
fn migrate_citizen_family(db: &sled::Db, buckets: &sled::Tree) -> Result<()> {
    const OLD: &str = "citizen_family";
    if !db.tree_names().iter().any(|name| name == OLD.as_bytes()) {
        return Ok(());
    }
    let old = db.open_tree(OLD)?;
    tracing::info!("moving the citizen index into buckets, once (about 25 s a million citizens)");
    loop {
        let chunk = old
            .iter()
            .take(MIGRATION_CHUNK)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if chunk.is_empty() {
            break;
        }
        let mut changes = Vec::with_capacity(chunk.len());
        let mut old_keys = Vec::with_capacity(chunk.len());
        for (key, value) in chunk {
            // The key is an IIN: never put it in an error.
            let iin = std::str::from_utf8(&key)
                .ok()
                .and_then(|text| Iin::parse(text).ok())
                .ok_or_else(|| corrupt(OLD, b"(an index key)", "not an IIN"))?;
            let family = std::str::from_utf8(&value)
                .ok()
                .and_then(|text| FamilyId::parse(text).ok())
                .ok_or_else(|| corrupt(OLD, b"(an index key)", "not a family id"))?;
            changes.push((iin, Some(family)));
            old_keys.push(key);
        }
        // One write at a time: `serve` opens stores, and after a batch sled
        // 0.34 takes a global lock for every operation (ARCHITECTURE.md).
        for (key, bucket) in bucket_writes(buckets, &by_bucket(&changes))? {
            match bucket {
                Some(bucket) => buckets.insert(key, bucket)?,
                None => buckets.remove(key)?,
            };
        }
        for key in old_keys {
            old.remove(key)?;
        }
    }
    db.drop_tree(OLD)?;
    tracing::info!("the citizen index is in buckets");
    Ok(())
}

/// Counter names used in the `stats` tree.
pub mod counter {
    use crate::ids::Region;
    use crate::record::{EntitlementState, Level, ReviewVerdict};

    pub const FAMILIES: &str = "families";
    pub const CITIZENS: &str = "citizens";
    pub const PAID_TOTAL_TIYN: &str = "paid_total_tiyn";
    pub const PAYMENTS_SUCCEEDED: &str = "payments_succeeded";

    pub fn level(level: Level) -> String {
        format!("level:{}", level.as_str())
    }

    pub fn region_level(region: Option<Region>, level: Level) -> String {
        let region = region.map_or("unknown", |region| region.code());
        format!("region:{region}:{}", level.as_str())
    }

    pub fn state(state: EntitlementState) -> String {
        format!("state:{}", state.as_str())
    }

    pub fn program_paid(program: &str) -> String {
        format!("paid_tiyn:{program}")
    }

    pub fn review(verdict: ReviewVerdict) -> String {
        match verdict {
            ReviewVerdict::Verified => "review:verified".to_owned(),
            ReviewVerdict::Disputed => "review:disputed".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::event::{EventData, FeedEvent};
    use crate::ids::{Iban, Month};
    use crate::projection::ScoringProjection;
    use crate::record::{EntitlementState, Level, Member, Role};

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, hour, 0, 0).unwrap()
    }

    fn iin() -> Iin {
        Iin::parse("061211600012").unwrap()
    }

    fn family_id(text: &str) -> FamilyId {
        FamilyId::parse(text).unwrap()
    }

    fn phone(text: &str) -> Phone {
        Phone::parse(text).unwrap()
    }

    /// A feed entry with this event id (a wallet opening; the content does not matter here).
    fn feed(id: &str) -> LogEntry {
        LogEntry::Feed {
            agency: "payments".to_owned(),
            event: FeedEvent {
                id: id.to_owned(),
                occurred_at: at(9),
                data: EventData::SocialWalletOpened { iin: iin() },
            },
        }
    }

    fn cycle(family: &str, month: &str) -> LogEntry {
        LogEntry::CycleDue {
            family_id: family_id(family),
            month: Month::parse(month).unwrap(),
        }
    }

    /// The event ids (or `cycle <month>`) of log entries after `after`, with their seqs.
    fn log(store: &Store, after: u64) -> Vec<(u64, String)> {
        store
            .read_log(after, 100)
            .unwrap()
            .into_iter()
            .map(|(seq, entry)| {
                let what = match entry {
                    LogEntry::Feed { event, .. } => event.id,
                    LogEntry::CycleDue { month, .. } => format!("cycle {month}"),
                    other => format!("{other:?}"),
                };
                (seq, what)
            })
            .collect()
    }

    /// The store at `directory`, after it took `payments`' events `a` and `b`
    /// and packed their ids into buckets.
    fn with_a_and_b_packed(directory: &std::path::Path) -> Store {
        let store = Store::open(directory).unwrap();
        store
            .append_feed("payments", vec![feed("a"), feed("b")])
            .unwrap();
        store.pack_feed_ids(100).unwrap();
        store
    }

    fn appended(seqs: &[u64], duplicates: &[usize]) -> Appended {
        Appended {
            seqs: seqs.to_vec(),
            duplicates: duplicates.to_vec(),
        }
    }

    fn owned(entries: &[(u64, &str)]) -> Vec<(u64, String)> {
        entries
            .iter()
            .map(|(seq, what)| (*seq, (*what).to_owned()))
            .collect()
    }

    /// What a start does with a saved scoring table: take it, then read it.
    fn load_saved(store: &Store) -> Result<Option<u64>> {
        let Some(saved) = store.take_saved_scoring_table()? else {
            return Ok(None);
        };
        saved.load_into(&store.enable_scoring_table()).map(Some)
    }

    #[test]
    fn catalogues_are_kept_by_version() {
        let store = Store::open_temporary().unwrap();
        assert_eq!(store.catalogue("2026.1").unwrap(), None);
        assert!(!store.keep_catalogue("2026.1", 2026, "first").unwrap());
        assert!(!store.keep_catalogue("2026.2", 2026, "second").unwrap());
        // The same again replaces nothing; another text of a kept version does.
        assert!(!store.keep_catalogue("2026.1", 2026, "first").unwrap());
        assert!(store.keep_catalogue("2026.2", 2027, "second").unwrap());
        assert_eq!(
            store.catalogue("2026.1").unwrap(),
            Some((2026, "first".to_owned()))
        );
        assert_eq!(
            store.catalogue("2026.2").unwrap(),
            Some((2027, "second".to_owned()))
        );
    }

    #[test]
    fn append_feed_skips_duplicates_within_and_across_batches() {
        let store = Store::open_temporary().unwrap();
        assert_eq!(store.last_seq(), 0);
        let first = store
            .append_feed("payments", vec![feed("a"), feed("b"), feed("a")])
            .unwrap();
        assert_eq!(first, appended(&[1, 2], &[2]));
        let second = store
            .append_feed("payments", vec![feed("b"), feed("c"), feed("c"), feed("d")])
            .unwrap();
        assert_eq!(second, appended(&[3, 4], &[0, 2]));
        // Ids are an agency's own: another agency may use the same one.
        let other = store.append_feed("health", vec![feed("a")]).unwrap();
        assert_eq!(other, appended(&[5], &[]));
        // A batch of nothing but duplicates writes nothing and uses no sequence number.
        let repeat = store
            .append_feed("payments", vec![feed("a"), feed("d")])
            .unwrap();
        assert_eq!(repeat, appended(&[], &[0, 1]));
        assert_eq!(store.last_seq(), 5);
        assert_eq!(
            log(&store, 0),
            owned(&[(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "a")])
        );
    }

    #[test]
    fn sequence_numbers_increase_across_feed_internal_and_replies() {
        let store = Store::open_temporary().unwrap();
        assert_eq!(
            store.append_feed("payments", vec![feed("a")]).unwrap().seqs,
            [1]
        );
        assert_eq!(
            store
                .append_internal(&[cycle("fam-1", "2026-03"), cycle("fam-2", "2026-03")])
                .unwrap(),
            [2, 3]
        );
        assert_eq!(
            store
                .append_sms_reply("msg-1", Some(cycle("fam-1", "2026-04")))
                .unwrap(),
            Some(4)
        );
        // The same inbound message again is a repeat and appends nothing.
        assert_eq!(
            store
                .append_sms_reply("msg-1", Some(cycle("fam-1", "2026-04")))
                .unwrap(),
            None
        );
        // A reply that matched nothing is remembered without using a sequence number.
        assert_eq!(store.append_sms_reply("msg-2", None).unwrap(), Some(5));
        assert_eq!(store.append_sms_reply("msg-2", None).unwrap(), None);
        assert_eq!(
            store.append_feed("payments", vec![feed("b")]).unwrap().seqs,
            [5]
        );
        assert_eq!(store.last_seq(), 5);
        let seqs: Vec<u64> = log(&store, 0).into_iter().map(|(seq, _)| seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn read_log_starts_after_the_watermark_and_stops_at_the_limit() {
        let store = Store::open_temporary().unwrap();
        store
            .append_feed("payments", vec![feed("a"), feed("b"), feed("c"), feed("d")])
            .unwrap();
        fn check(store: &Store, after: u64, limit: usize, expected: &[(u64, &str)]) {
            let actual: Vec<(u64, String)> = store
                .read_log(after, limit)
                .unwrap()
                .into_iter()
                .map(|(seq, entry)| match entry {
                    LogEntry::Feed { event, .. } => (seq, event.id),
                    other => panic!("unexpected {other:?}"),
                })
                .collect();
            assert_eq!(actual, owned(expected), "after {after} limit {limit}");
        }
        check(&store, 0, 10, &[(1, "a"), (2, "b"), (3, "c"), (4, "d")]);
        check(&store, 1, 10, &[(2, "b"), (3, "c"), (4, "d")]);
        check(&store, 2, 1, &[(3, "c")]);
        check(&store, 0, 0, &[]);
        check(&store, 4, 10, &[]);
        check(&store, 99, 10, &[]);
        check(&store, u64::MAX, 10, &[]);
    }

    #[test]
    fn set_applied_through_trims_the_log_but_keeps_dedup() {
        let store = Store::open_temporary().unwrap();
        store
            .append_feed("payments", vec![feed("a"), feed("b"), feed("c")])
            .unwrap();
        assert_eq!(store.applied_through().unwrap(), 0);
        store.set_applied_through(2).unwrap();
        assert_eq!(store.applied_through().unwrap(), 2);
        assert_eq!(log(&store, 2), owned(&[(3, "c")]));
        // The append's chunk stays until all of it is applied.
        assert_eq!(
            store
                .db()
                .open_tree("feed")
                .unwrap()
                .scan_prefix(b"C")
                .count(),
            1
        );
        // A resent id is still a duplicate.
        assert_eq!(
            store
                .append_feed("payments", vec![feed("a"), feed("e")])
                .unwrap(),
            appended(&[4], &[0])
        );
        // Applied and packed: the log is empty, the ids are in their buckets.
        store.pack_feed_ids(100).unwrap();
        store.set_applied_through(4).unwrap();
        assert_eq!(log(&store, 0), []);
        assert_eq!(store.last_seq(), 4);
        assert_eq!(
            store.append_feed("payments", vec![feed("b")]).unwrap(),
            appended(&[], &[0])
        );
    }

    #[test]
    fn packed_ids_stay_duplicates_before_and_after_the_id_filter_is_filled() {
        let directory = tempfile::tempdir().unwrap();
        {
            let store = with_a_and_b_packed(directory.path());
            assert!(store.append_sms_reply("in-1", None).unwrap().is_some());
            store.flush().unwrap();
        }
        let store = Store::open(directory.path()).unwrap();
        let duplicates = |ids: &[&str]| {
            store
                .append_feed("payments", ids.iter().map(|id| feed(id)).collect())
                .unwrap()
                .duplicates
        };
        // Not filled yet: every lookup reads its bucket.
        assert_eq!(duplicates(&["a"]), [0]);
        assert!(store.fill_filter(Filter::Ids).unwrap());
        // Read into the filter from the buckets.
        assert_eq!(duplicates(&["b", "c"]), [0]);
        assert_eq!(store.append_sms_reply("in-1", None).unwrap(), None);
        // Marked as they are packed, and as a reply's id goes into its bucket.
        store.pack_feed_ids(100).unwrap();
        assert_eq!(duplicates(&["c", "d"]), [0]);
        assert!(store.append_sms_reply("in-2", None).unwrap().is_some());
        assert_eq!(store.append_sms_reply("in-2", None).unwrap(), None);
    }

    #[test]
    fn saved_key_filters_are_read_back_by_the_next_opening_only() {
        let directory = tempfile::tempdir().unwrap();
        let (asked, other) = (phone("+77011234567"), phone("+77019876543"));
        let duplicates = |store: &Store, ids: &[&str]| {
            store
                .append_feed("payments", ids.iter().map(|id| feed(id)).collect())
                .unwrap()
                .duplicates
        };
        {
            let store = with_a_and_b_packed(directory.path());
            let commit = FamilyCommit {
                requests_opened: vec![(asked.clone(), request("fam-1", 1234))],
                ..FamilyCommit::default()
            };
            store
                .commit_families(&[commit], Counted::default())
                .unwrap();
            assert_eq!(store.save_key_filters().unwrap(), [], "neither is filled");
            assert!(Filter::ALL
                .iter()
                .all(|which| store.fill_filter(*which).unwrap()));
            assert_eq!(store.save_key_filters().unwrap(), Filter::ALL);
        }
        {
            let store = Store::open(directory.path()).unwrap();
            assert_eq!(store.take_saved_key_filters().unwrap(), Filter::ALL);
            assert!(Filter::ALL
                .iter()
                .all(|which| store.key_filter(*which).is_filled()));
            // What the trees hold is found through the filters read back.
            assert_eq!(
                store.open_requests(&asked).unwrap(),
                [request("fam-1", 1234)]
            );
            assert_eq!(store.open_requests(&other).unwrap(), []);
            assert_eq!(duplicates(&store, &["a", "c", "b"]), [0, 2]);
            store.pack_feed_ids(100).unwrap();
            assert_eq!(duplicates(&store, &["c"]), [0]);
        }
        {
            // Taken by the opening before: a crash after it fills from the trees.
            let store = Store::open(directory.path()).unwrap();
            assert_eq!(store.take_saved_key_filters().unwrap(), []);
            assert!(
                !store.key_filter(Filter::Phones).is_filled()
                    && !store.key_filter(Filter::Ids).is_filled()
            );
            assert!(store.fill_filter(Filter::Phones).unwrap());
            assert_eq!(store.save_key_filters().unwrap(), [Filter::Phones]);
            // A load moves the applied watermark: what it wrote is in no saved filter.
            store.reserve_seqs(1);
            store.set_applied_through(store.last_seq()).unwrap();
        }
        {
            let store = Store::open(directory.path()).unwrap();
            assert_eq!(store.take_saved_key_filters().unwrap(), []);
            assert!(!store.key_filter(Filter::Phones).is_filled());
            assert!(Filter::ALL
                .iter()
                .all(|which| store.fill_filter(*which).unwrap()));
            assert_eq!(store.save_key_filters().unwrap(), Filter::ALL);
            // A packing pass by something that did not take them (a release
            // before saved filters) writes ids the saved id filter lacks.
            assert!(duplicates(&store, &["z"]).is_empty());
            store.pack_feed_ids(100).unwrap();
        }
        let store = Store::open(directory.path()).unwrap();
        assert_eq!(store.take_saved_key_filters().unwrap(), []);
        assert_eq!(duplicates(&store, &["z"]), [0]);
        let saved = |store: &Store| store.trees.meta.scan_prefix(META_KEY_FILTER_PREFIX).count();
        assert_eq!(saved(&store), 0, "taken, read or not");
        // A crowded phones' filter is left to be filled from the tree.
        assert!(Filter::ALL
            .iter()
            .all(|which| store.fill_filter(*which).unwrap()));
        store.phone_filter.crowd();
        assert_eq!(store.save_key_filters().unwrap(), [Filter::Ids]);
        assert_eq!(saved(&store), 1);
    }

    #[test]
    fn reopening_keeps_sequence_numbers_monotonic() {
        let directory = tempfile::tempdir().unwrap();
        {
            let store = Store::open(directory.path()).unwrap();
            store
                .append_feed("payments", vec![feed("a"), feed("b")])
                .unwrap();
            store.append_internal(&[cycle("fam-1", "2026-03")]).unwrap();
            store.flush().unwrap();
        }
        {
            let store = Store::open(directory.path()).unwrap();
            assert_eq!(store.last_seq(), 3);
            assert_eq!(
                store
                    .append_feed("payments", vec![feed("b"), feed("c")])
                    .unwrap(),
                appended(&[4], &[0])
            );
            // Everything applied and packed: the log is empty, only the
            // watermark remembers.
            store.pack_feed_ids(100).unwrap();
            store.set_applied_through(4).unwrap();
            assert_eq!(log(&store, 0), []);
            store.flush().unwrap();
        }
        {
            let store = Store::open(directory.path()).unwrap();
            assert_eq!(store.last_seq(), 4);
            assert_eq!(store.applied_through().unwrap(), 4);
            assert_eq!(
                store.append_internal(&[cycle("fam-1", "2026-04")]).unwrap(),
                [5]
            );
            assert_eq!(
                store.append_feed("payments", vec![feed("a")]).unwrap(),
                appended(&[], &[0])
            );
            store.flush().unwrap();
        }
        let store = Store::open(directory.path()).unwrap();
        assert_eq!(store.last_seq(), 5);
        assert_eq!(log(&store, 4), owned(&[(5, "cycle 2026-04")]));
    }

    fn record(family: &str) -> FamilyRecord {
        let mut record = FamilyRecord::new(family_id(family));
        record.applied_seq = 7;
        record.next_entitlement_number = 2;
        record
    }

    fn sms(reference: &str) -> SmsOrder {
        SmsOrder {
            reference: reference.to_owned(),
            to: phone("+77011234567"),
            text: "offer".to_owned(),
            family_id: Some(family_id("fam-1")),
            created_at: at(9),
        }
    }

    fn payment(reference_id: &str) -> PaymentOrder {
        let iban = Iban::parse("KZ86125KZT5004100100").unwrap();
        PaymentOrder {
            reference_id: reference_id.to_owned(),
            family_id: family_id("fam-1"),
            entitlement_id: "fam-1-large_family-1".to_owned(),
            payee_fa: format!("{}@{}", iban.as_str(), iban.bank_code()),
            amount: Money::from_tiyn(6_933_475),
            purpose: "large_family 2026-03".to_owned(),
            note: "dfm fam-1-large_family-1 2026-03".to_owned(),
            created_at: at(9),
        }
    }

    fn timer(family: &str, hour: u32, kind: TimerKind) -> TimerRecord {
        TimerRecord {
            due_at: at(hour),
            family_id: family_id(family),
            entitlement_id: format!("{family}-large_family-1"),
            kind,
        }
    }

    fn request(family: &str, code: u16) -> OpenRequest {
        OpenRequest {
            family_id: family_id(family),
            entitlement_id: format!("{family}-large_family-1"),
            code,
        }
    }

    fn counters(entries: &[(&str, i64)]) -> BTreeMap<String, i64> {
        entries
            .iter()
            .map(|(name, value)| ((*name).to_owned(), *value))
            .collect()
    }

    fn counted(seq: u64, whole: bool) -> Counted {
        Counted { seq, whole }
    }

    fn counting_commit(family: &str, delta: i64) -> FamilyCommit {
        let mut commit = FamilyCommit {
            record: Some(EncodedFamily::of(&record(family))),
            ..FamilyCommit::default()
        };
        commit.count("families", delta);
        commit
    }

    #[test]
    fn a_replayed_batch_is_written_again_but_counted_once() {
        let store = Store::open_temporary().unwrap();
        let batch = [counting_commit("fam-1", 1), counting_commit("fam-2", 1)];
        store.commit_families(&batch, counted(10, true)).unwrap();
        assert_eq!(store.counted_through(), 10);
        // The crash came before the watermark moved: the same batch comes again.
        store.commit_families(&batch, counted(10, true)).unwrap();
        assert_eq!(store.stats().unwrap(), counters(&[("families", 2)]));
        store
            .commit_families(&[counting_commit("fam-3", 1)], counted(11, true))
            .unwrap();
        assert_eq!(store.stats().unwrap(), counters(&[("families", 3)]));
    }

    #[test]
    fn a_commit_made_while_routing_an_entry_leaves_the_rest_of_it_to_count() {
        let store = Store::open_temporary().unwrap();
        // A member leaves fam-1 (committed while their move at seq 5 is routed),
        // then joins fam-2 in the batch that ends at the same entry.
        store
            .commit_families(&[counting_commit("fam-1", -1)], counted(5, false))
            .unwrap();
        store
            .commit_families(&[counting_commit("fam-2", 1)], counted(5, true))
            .unwrap();
        store
            .commit_families(&[counting_commit("fam-2", 1)], counted(5, true))
            .unwrap();
        assert_eq!(store.stats().unwrap(), counters(&[("families", 0)]));
        assert_eq!(store.counted_through(), 5);
    }

    #[test]
    fn counters_survive_reopening_and_the_old_layout_is_folded_in() {
        let directory = tempfile::tempdir().unwrap();
        {
            let store = Store::open(directory.path()).unwrap();
            store
                .commit_families(&[counting_commit("fam-1", 2)], counted(3, true))
                .unwrap();
            // A store written before counters were one record: a key per counter.
            let stats = store.db().open_tree("stats").unwrap();
            stats.insert("families", &5i64.to_be_bytes()[..]).unwrap();
            stats.insert("level:A", &1i64.to_be_bytes()[..]).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(directory.path()).unwrap();
        assert_eq!(
            store.stats().unwrap(),
            counters(&[("families", 7), ("level:A", 1)])
        );
        assert_eq!(store.counted_through(), 3);
        assert_eq!(store.db().open_tree("stats").unwrap().len(), 1);
    }

    /// The ids still kept as keys of their own in `feed` (stores before `feed_ids`).
    fn legacy_keys(store: &Store) -> usize {
        let feed = store.db().open_tree("feed").unwrap();
        feed.scan_prefix(b"D").count() + feed.scan_prefix(b"S").count()
    }

    /// How many ids the buckets of `feed_ids` hold.
    fn packed_ids(store: &Store) -> usize {
        let buckets = store.db().open_tree("feed_ids").unwrap();
        buckets
            .iter()
            .map(|item| feed_ids::count(&item.unwrap().1).unwrap())
            .sum()
    }

    #[test]
    fn packed_ids_stay_duplicates_across_a_restart() {
        let directory = tempfile::tempdir().unwrap();
        {
            let store = Store::open(directory.path()).unwrap();
            store
                .append_feed("payments", vec![feed("a"), feed("b"), feed("c")])
                .unwrap();
            // SMS ids go straight to their buckets.
            assert_eq!(store.append_sms_reply("msg-1", None).unwrap(), Some(4));
            assert_eq!((store.unpacked_feed_ids(), packed_ids(&store)), (3, 1));
            assert_eq!(store.pack_feed_ids(100).unwrap(), 3);
            assert_eq!((store.unpacked_feed_ids(), packed_ids(&store)), (0, 4));
            assert_eq!(
                store
                    .append_feed("payments", vec![feed("b"), feed("d")])
                    .unwrap(),
                // A reply without an entry takes no sequence number of its own.
                appended(&[4], &[0])
            );
            store.flush().unwrap();
        }
        let store = Store::open(directory.path()).unwrap();
        // A duplicate whether packed (a, b, c, msg-1) or not yet (d, read back
        // from the log).
        assert_eq!(store.unpacked_feed_ids(), 1);
        assert_eq!(
            store
                .append_feed("payments", vec![feed("a"), feed("c"), feed("d"), feed("e")])
                .unwrap(),
            appended(&[5], &[0, 1, 2])
        );
        assert_eq!(store.append_sms_reply("msg-1", None).unwrap(), None);
        assert_eq!(store.feed_event_seq("payments", "b").unwrap(), Some(2));
        assert_eq!(store.feed_event_seq("payments", "d").unwrap(), Some(4));
        assert_eq!(store.feed_event_seq("payments", "z").unwrap(), None);
        assert_eq!(store.pack_feed_ids(100).unwrap(), 2);
        assert_eq!(packed_ids(&store), 6);
    }

    #[test]
    fn the_log_keeps_applied_chunks_until_their_ids_are_packed() {
        let store = Store::open_temporary().unwrap();
        store
            .append_feed("payments", vec![feed("a"), feed("b")])
            .unwrap();
        let chunks = || {
            store
                .db()
                .open_tree("feed")
                .unwrap()
                .scan_prefix(b"C")
                .count()
        };
        store.set_applied_through(2).unwrap();
        assert_eq!(chunks(), 1, "applied, but its ids wait in it");
        store.pack_feed_ids(100).unwrap();
        assert_eq!(chunks(), 0, "packed and applied");
        // Packed first, applied after.
        store.append_feed("payments", vec![feed("c")]).unwrap();
        store.pack_feed_ids(100).unwrap();
        assert_eq!(chunks(), 1, "packed, not applied");
        store.set_applied_through(3).unwrap();
        assert_eq!(chunks(), 0);
        assert_eq!(
            store
                .append_feed("payments", vec![feed("a"), feed("c")])
                .unwrap(),
            appended(&[], &[0, 1])
        );
    }

    #[test]
    fn a_pass_torn_by_a_crash_packs_its_ids_again_once() {
        let directory = tempfile::tempdir().unwrap();
        {
            let store = with_a_and_b_packed(directory.path());
            // The crash came after the buckets and before the mark that the
            // log's chunks are packed: take the mark away again.
            let meta = store.db().open_tree("meta").unwrap();
            meta.remove(META_IDS_PACKED_THROUGH).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(directory.path()).unwrap();
        assert_eq!(store.unpacked_feed_ids(), 2, "read back from the log");
        assert_eq!(
            store
                .append_feed("payments", vec![feed("a"), feed("b")])
                .unwrap(),
            appended(&[], &[0, 1])
        );
        assert_eq!(store.pack_feed_ids(100).unwrap(), 2);
        assert_eq!(packed_ids(&store), 2, "a once, b once");
        assert_eq!(store.feed_event_seq("payments", "a").unwrap(), Some(1));
    }

    #[test]
    fn ids_kept_as_stores_before_buckets_kept_them_stay_duplicates_and_get_packed() {
        let directory = tempfile::tempdir().unwrap();
        {
            let store = Store::open(directory.path()).unwrap();
            let feed_tree = store.db().open_tree("feed").unwrap();
            feed_tree
                .insert(dedup_key("payments", "old"), &7u64.to_be_bytes()[..])
                .unwrap();
            feed_tree
                .insert(b"Smsg-old", &8u64.to_be_bytes()[..])
                .unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(directory.path()).unwrap();
        assert_eq!(store.feed_event_seq("payments", "old").unwrap(), Some(7));
        assert_eq!(store.append_sms_reply("msg-old", None).unwrap(), None);
        store.append_feed("payments", vec![feed("new")]).unwrap();
        // Passes of at most one old id: the new id and one old, then the other
        // old one, then none (and lookups stop reading old keys).
        assert_eq!(store.pack_feed_ids(1).unwrap(), 2);
        assert_eq!(legacy_keys(&store), 1);
        assert_eq!(store.pack_feed_ids(1).unwrap(), 1);
        assert_eq!(store.pack_feed_ids(1).unwrap(), 0);
        assert!(!store.legacy_feed_ids_left());
        assert_eq!(legacy_keys(&store), 0);
        assert_eq!(
            store
                .append_feed("payments", vec![feed("old"), feed("new")])
                .unwrap(),
            appended(&[], &[0, 1])
        );
        assert_eq!(store.append_sms_reply("msg-old", None).unwrap(), None);
        assert_eq!(store.feed_event_seq("payments", "old").unwrap(), Some(7));
    }

    #[test]
    fn a_damaged_bucket_of_ids_is_reported_not_read_as_new() {
        let store = Store::open_temporary().unwrap();
        store.append_feed("payments", vec![feed("a")]).unwrap();
        store.pack_feed_ids(100).unwrap();
        let buckets = store.db().open_tree("feed_ids").unwrap();
        let (key, value) = buckets.iter().next().unwrap().unwrap();
        buckets.insert(key, &value[..value.len() - 1]).unwrap();
        let error = store.append_feed("payments", vec![feed("a")]).unwrap_err();
        assert!(error.to_string().contains("feed_ids"), "{error}");
    }

    #[test]
    fn ids_come_back_from_the_log_when_the_store_opens() {
        let directory = tempfile::tempdir().unwrap();
        {
            let store = Store::open(directory.path()).unwrap();
            store.append_feed("payments", vec![feed("a")]).unwrap();
            store
                .append_feed("payments", vec![feed("b"), feed("c")])
                .unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(directory.path()).unwrap();
        // The agency never had its 200 and sends the request again: the events
        // are in the log once, so the retry is a duplicate.
        assert_eq!(
            store
                .append_feed("payments", vec![feed("b"), feed("c"), feed("d")])
                .unwrap(),
            appended(&[4], &[0, 1])
        );
        assert_eq!(
            log(&store, 0),
            owned(&[(1, "a"), (2, "b"), (3, "c"), (4, "d")])
        );
    }

    #[test]
    fn a_store_is_opened_once_its_lock_is_released() {
        let directory = tempfile::tempdir().unwrap();
        let held = Store::open(directory.path()).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        let store = Store::open(directory.path());
        releaser.join().unwrap();
        assert!(store.is_ok(), "{:?}", store.err());
    }

    #[test]
    fn a_log_written_one_entry_per_key_is_read_after_an_upgrade() {
        let directory = tempfile::tempdir().unwrap();
        {
            let store = Store::open(directory.path()).unwrap();
            let feed_tree = store.db().open_tree("feed").unwrap();
            for (seq, id) in [(7u64, "a"), (8, "b")] {
                let mut key = vec![b'L'];
                key.extend_from_slice(&seq.to_be_bytes());
                feed_tree.insert(key, encode(&feed(id))).unwrap();
            }
            store.flush().unwrap();
        }
        let store = Store::open(directory.path()).unwrap();
        assert_eq!(log(&store, 0), owned(&[(7, "a"), (8, "b")]));
        assert_eq!(store.last_seq(), 8);
        assert_eq!(
            store.append_internal(&[cycle("fam-1", "2026-03")]).unwrap(),
            [9]
        );
    }

    /// Every family in the scoring table, as a scan reads it, in id order.
    fn table_projections(table: &ScoringTable) -> Vec<ScoringProjection> {
        let mut all: Vec<ScoringProjection> = table
            .scan(
                2,
                crate::compact::IncomeNeed::Read,
                Vec::new,
                |seen: &mut Vec<ScoringProjection>, record, outcome| {
                    seen.push(ScoringProjection {
                        inputs: record.clone(),
                        outcome: outcome.cloned(),
                    });
                },
            )
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        all.sort_by(|a, b| a.inputs.family_id.cmp(&b.inputs.family_id));
        all
    }

    #[test]
    fn every_family_write_puts_its_scoring_projection_into_the_table() {
        let store = Store::open_temporary().unwrap();
        let table = store.enable_scoring_table();
        let mut first = record("fam-1");
        first.members.push(Member {
            role: Role::Head,
            facts: CitizenFacts {
                phone: Some(phone("+77011234567")),
                ..CitizenFacts::new(iin())
            },
        });
        store
            .commit_families(
                &[FamilyCommit {
                    record: Some(EncodedFamily::of(&first)),
                    ..FamilyCommit::default()
                }],
                counted(1, true),
            )
            .unwrap();
        store
            .bulk_write(
                &[FamilyCommit {
                    record: Some(EncodedFamily::of(&record("fam-2"))),
                    ..FamilyCommit::default()
                }],
                &[],
                &[],
            )
            .unwrap();
        let written = table_projections(&table);
        assert_eq!(
            written,
            vec![
                first.scoring_projection(),
                record("fam-2").scoring_projection()
            ]
        );
        assert_eq!(written[0].inputs.members[0].facts.phone, None);
    }

    #[test]
    fn a_saved_scoring_table_is_loaded_once_and_only_while_nothing_was_applied() {
        let directory = tempfile::tempdir().unwrap();
        let expected = {
            let store = Store::open(directory.path()).unwrap();
            let commits: Vec<_> = (0..500)
                .map(|n| counting_commit(&format!("fam-{n}"), 1))
                .collect();
            store.commit_families(&commits, counted(1, true)).unwrap();
            store.set_applied_through(1).unwrap();
            assert!(
                !store.save_scoring_table().unwrap(),
                "not enabled: nothing saved"
            );
            assert_eq!(store.build_scoring_table(2).unwrap(), 500);
            assert!(store.save_scoring_table().unwrap());
            table_projections(&store.enable_scoring_table())
        };
        {
            let store = Store::open(directory.path()).unwrap();
            assert_eq!(load_saved(&store).unwrap(), Some(500));
            assert!(store.complete_scoring_table().is_some());
            assert_eq!(table_projections(&store.enable_scoring_table()), expected);
            // Taken: a crash after this start finds no saved table.
            assert_eq!(load_saved(&store).unwrap(), None);
        }
        {
            let store = Store::open(directory.path()).unwrap();
            assert_eq!(load_saved(&store).unwrap(), None);
            assert!(store.complete_scoring_table().is_none());
            // Saved again, then something is applied before the next start
            // (a bulk load, a build that did not save): the saved table is old.
            assert_eq!(store.build_scoring_table(2).unwrap(), 500);
            assert!(store.save_scoring_table().unwrap());
            store.set_applied_through(2).unwrap();
        }
        {
            let store = Store::open(directory.path()).unwrap();
            assert_eq!(load_saved(&store).unwrap(), None);
            assert_eq!(store.build_scoring_table(2).unwrap(), 500);
            assert!(store.save_scoring_table().unwrap());
        }
        {
            // Taken at start, read while the service already writes: a family
            // written in between keeps its newer form.
            let store = Store::open(directory.path()).unwrap();
            let saved = store.take_saved_scoring_table().unwrap().unwrap();
            let table = store.enable_scoring_table();
            let mut newer = FamilyRecord {
                social_contract: true,
                ..record("fam-3")
            };
            newer.applied_seq = 9;
            store
                .commit_family(&FamilyCommit {
                    record: Some(EncodedFamily::of(&newer)),
                    ..FamilyCommit::default()
                })
                .unwrap();
            assert_eq!(saved.load_into(&table).unwrap(), 500);
            table.set_built();
            let projections = table_projections(&table);
            assert_eq!(projections.len(), 500);
            let third = projections
                .iter()
                .find(|p| p.inputs.family_id.as_str() == "fam-3")
                .unwrap();
            assert!(third.inputs.social_contract, "the newer form stays");
            assert!(store.save_scoring_table().unwrap());
        }
        // A file cut short is an error (the service then builds from the records).
        let file = directory.path().join(SNAPSHOT_FILE);
        let length = std::fs::metadata(&file).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(length - 10)
            .unwrap();
        let store = Store::open(directory.path()).unwrap();
        assert!(load_saved(&store).is_err());
        assert!(store.complete_scoring_table().is_none());
    }

    #[test]
    fn an_abandoned_build_leaves_the_table_unbuilt_until_allowed_again() {
        let store = Store::open_temporary().unwrap();
        store.commit_family(&counting_commit("fam-1", 1)).unwrap();
        let table = store.enable_scoring_table();
        table.abandon_build();
        store.build_scoring_table(2).unwrap();
        assert!(store.complete_scoring_table().is_none());
        table.allow_build();
        assert_eq!(store.build_scoring_table(2).unwrap(), 1);
        assert!(store.complete_scoring_table().is_some());
    }

    #[test]
    fn a_store_of_an_earlier_version_loses_its_scoring_tree_on_opening() {
        let directory = tempfile::tempdir().unwrap();
        {
            let store = Store::open(directory.path()).unwrap();
            store.commit_family(&counting_commit("fam-1", 1)).unwrap();
            let old = store.db().open_tree("scoring").unwrap();
            old.insert("fam-1", &b"an old projection"[..]).unwrap();
            store
                .trees
                .meta
                .insert("scoring_complete", &[][..])
                .unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(directory.path()).unwrap();
        assert!(!store
            .db()
            .tree_names()
            .iter()
            .any(|name| name.as_ref() == b"scoring"));
        assert!(!store.trees.meta.contains_key("scoring_complete").unwrap());
        assert_eq!(store.family_count(), 1);
    }

    /// Each family in the scoring table: its social contract, as a scan reads it.
    fn table_contracts(table: &ScoringTable) -> BTreeMap<String, bool> {
        table
            .scan(
                2,
                crate::compact::IncomeNeed::Read,
                Vec::new,
                |seen: &mut Vec<(String, bool)>, record, _| {
                    seen.push((record.family_id.to_string(), record.social_contract));
                },
            )
            .unwrap()
            .into_iter()
            .flatten()
            .collect()
    }

    #[test]
    fn the_scoring_table_holds_the_stored_families_and_every_later_write() {
        let store = Store::open_temporary().unwrap();
        let commit = |id: &str, social_contract: bool| FamilyCommit {
            record: Some(EncodedFamily::of(&FamilyRecord {
                social_contract,
                ..record(id)
            })),
            ..FamilyCommit::default()
        };
        let stored: Vec<_> = (0..3_000)
            .map(|n| commit(&format!("fam-{n}"), false))
            .collect();
        store.commit_families(&stored, counted(1, true)).unwrap();
        assert!(store.complete_scoring_table().is_none(), "not enabled");
        let table = store.enable_scoring_table();
        // Written after the table was enabled, before the build reads it.
        store.commit_family(&commit("fam-7", true)).unwrap();
        assert!(store.complete_scoring_table().is_none(), "not built");
        assert_eq!(store.build_scoring_table(2).unwrap(), 3_000);
        assert!(store.complete_scoring_table().is_some());
        store
            .commit_families(
                &[commit("fam-8", true), commit("new", true)],
                counted(2, true),
            )
            .unwrap();
        let contracts = table_contracts(&table);
        assert_eq!(contracts.len(), 3_001);
        let signed: Vec<_> = contracts
            .iter()
            .filter(|(_, s)| **s)
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(signed, ["fam-7", "fam-8", "new"]);
        // What the table reads is the stored record's projection.
        let projections = table_projections(&table);
        assert_eq!(projections.len(), 3_001);
        for projection in &projections {
            let id = projection.inputs.family_id.as_str();
            let stored = store.family(&projection.inputs.family_id).unwrap().unwrap();
            assert_eq!(projection, &stored.scoring_projection(), "{id}");
        }
    }

    #[test]
    fn within_a_batch_the_last_write_of_a_key_wins() {
        let store = Store::open_temporary().unwrap();
        let reminder = timer("fam-1", 10, TimerKind::Reminder);
        store
            .commit_family(&FamilyCommit {
                timers_put: vec![reminder.clone()],
                ..FamilyCommit::default()
            })
            .unwrap();
        let taker = Iin::parse("900415300509").unwrap();
        store.put_orphan(&CitizenFacts::new(taker)).unwrap();
        let batch = [
            // The reminder is moved to the same due time: removed, then put back.
            FamilyCommit {
                record: Some(EncodedFamily::of(&record("fam-1"))),
                timers_removed: vec![reminder.clone()],
                timers_put: vec![reminder.clone()],
                orphans_taken: vec![taker],
                ..FamilyCommit::default()
            },
            // A later commit of the batch hands the citizen's facts back.
            FamilyCommit {
                record: Some(EncodedFamily::of(&record("fam-2"))),
                orphans_put: vec![CitizenFacts::new(taker)],
                ..FamilyCommit::default()
            },
        ];
        store.commit_families(&batch, counted(8, true)).unwrap();
        assert_eq!(
            store.due_timers(at(23), 10).unwrap(),
            std::slice::from_ref(&reminder)
        );
        assert!(store.orphan(&taker).unwrap().is_some());
    }

    #[test]
    fn commit_family_writes_the_record_and_every_side_table() {
        let store = Store::open_temporary().unwrap();
        let phone = phone("+77011234567");
        let orphan = CitizenFacts::new(iin());
        store.put_orphan(&orphan).unwrap();
        let mut leaving = CitizenFacts::new(Iin::parse("900415300509").unwrap());
        leaving.applied_seq = 7;
        let mut commit = FamilyCommit {
            record: Some(EncodedFamily::of(&record("fam-1"))),
            orphans_taken: vec![iin()],
            orphans_put: vec![leaving.clone()],
            sms: vec![sms("fam-1-large_family-1-offer-1")],
            payments: vec![payment("fam-1-large_family-1-2026-03-1")],
            timers_put: vec![
                timer("fam-1", 11, TimerKind::Expiry),
                timer("fam-1", 10, TimerKind::Reminder),
            ],
            requests_opened: vec![(phone.clone(), request("fam-1", 4321))],
            monthly: Some(true),
            ..FamilyCommit::default()
        };
        commit.count(counter::FAMILIES, 1);
        commit.count(counter::level(Level::C), 1);
        commit.count(counter::state(EntitlementState::Offered), 1);
        commit.count(counter::state(EntitlementState::Offered), 1);
        commit.count("zero", 0);
        store.commit_family(&commit).unwrap();

        assert_eq!(
            store.family(&family_id("fam-1")).unwrap(),
            Some(record("fam-1"))
        );
        assert_eq!(store.family_count(), 1);
        assert_eq!(store.orphan(&iin()).unwrap(), None);
        assert_eq!(store.orphan(&leaving.iin).unwrap(), Some(leaving));
        assert_eq!(
            store.sms_outbox().unwrap(),
            [sms("fam-1-large_family-1-offer-1")]
        );
        assert_eq!(
            store.payment_outbox().unwrap(),
            [payment("fam-1-large_family-1-2026-03-1")]
        );
        assert_eq!(
            store
                .payment_order("fam-1-large_family-1-2026-03-1")
                .unwrap(),
            Some(payment("fam-1-large_family-1-2026-03-1"))
        );
        assert_eq!(store.payment_order("nothing").unwrap(), None);
        assert_eq!(store.timer_count(), 2);
        assert_eq!(
            store.due_timers(at(23), 10).unwrap(),
            [
                timer("fam-1", 10, TimerKind::Reminder),
                timer("fam-1", 11, TimerKind::Expiry)
            ]
        );
        assert_eq!(
            store.open_requests(&phone).unwrap(),
            [request("fam-1", 4321)]
        );
        let monthly: Vec<FamilyId> = store.monthly_families().map(Result::unwrap).collect();
        assert_eq!(monthly, [family_id("fam-1")]);
        assert_eq!(
            store.stats().unwrap(),
            counters(&[("families", 1), ("level:C", 1), ("state:offered", 2)])
        );

        // The next commit settles, cancels, closes and moves the counters on.
        let mut commit = FamilyCommit {
            record: Some(EncodedFamily::of(&record("fam-1"))),
            payments_settled: vec!["fam-1-large_family-1-2026-03-1".to_owned()],
            timers_removed: vec![
                timer("fam-1", 10, TimerKind::Reminder),
                timer("fam-1", 11, TimerKind::Expiry),
            ],
            requests_closed: vec![(phone.clone(), request("fam-1", 4321))],
            monthly: Some(false),
            ..FamilyCommit::default()
        };
        commit.count(counter::state(EntitlementState::Offered), -2);
        commit.count(counter::state(EntitlementState::Active), 1);
        store.commit_family(&commit).unwrap();
        assert_eq!(store.payment_outbox().unwrap(), []);
        assert_eq!(store.timer_count(), 0);
        assert_eq!(store.open_requests(&phone).unwrap(), []);
        assert_eq!(store.monthly_families().count(), 0);
        assert_eq!(
            store.stats().unwrap(),
            counters(&[
                ("families", 1),
                ("level:C", 1),
                ("state:active", 1),
                ("state:offered", 0)
            ])
        );
        // The SMS outbox is emptied by the notifier, not by the family.
        assert_eq!(store.sms_outbox().unwrap().len(), 1);
        store.remove_sms("fam-1-large_family-1-offer-1").unwrap();
        assert_eq!(store.sms_outbox().unwrap(), []);
    }

    /// A batch large enough to be written on several threads (each side
    /// table on one, the records on several) writes and removes every key.
    #[test]
    fn a_large_batch_is_written_whole() {
        let store = Store::open_temporary().unwrap();
        let table = store.enable_scoring_table();
        let families: Vec<String> = (0..1_000).map(|n| format!("fam-{n:04}")).collect();
        let phone = |n: usize| phone(&format!("+7701{n:07}"));
        let opened: Vec<FamilyCommit> = families
            .iter()
            .enumerate()
            .map(|(n, family)| FamilyCommit {
                record: Some(EncodedFamily::of(&record(family))),
                sms: vec![sms(&format!("{family}-large_family-1-offer-1"))],
                timers_put: vec![
                    timer(family, 10, TimerKind::Reminder),
                    timer(family, 11, TimerKind::Expiry),
                ],
                requests_opened: vec![(phone(n), request(family, 4321))],
                monthly: Some(true),
                ..FamilyCommit::default()
            })
            .collect();
        assert!(
            families.len() / WRITES_PER_THREAD_MIN >= FAMILY_WRITE_THREADS,
            "the records take every thread"
        );
        store.commit_families(&opened, counted(1, true)).unwrap();
        assert_eq!(store.family_count(), 1_000);
        assert_eq!(store.sms_outbox().unwrap().len(), 1_000);
        assert_eq!(store.timer_count(), 2_000);
        assert_eq!(store.monthly_families().count(), 1_000);
        assert_eq!(table.size().0, 1_000);
        for (n, family) in families.iter().enumerate() {
            assert_eq!(
                store.family(&family_id(family)).unwrap(),
                Some(record(family))
            );
            assert_eq!(
                store.open_requests(&phone(n)).unwrap(),
                [request(family, 4321)]
            );
        }

        let closed: Vec<FamilyCommit> = families
            .iter()
            .enumerate()
            .map(|(n, family)| FamilyCommit {
                record: Some(EncodedFamily::of(&record(family))),
                timers_removed: vec![
                    timer(family, 10, TimerKind::Reminder),
                    timer(family, 11, TimerKind::Expiry),
                ],
                requests_closed: vec![(phone(n), request(family, 4321))],
                monthly: Some(false),
                ..FamilyCommit::default()
            })
            .collect();
        store.commit_families(&closed, counted(2, true)).unwrap();
        assert_eq!(store.timer_count(), 0);
        assert_eq!(store.monthly_families().count(), 0);
        for n in 0..families.len() {
            assert_eq!(store.open_requests(&phone(n)).unwrap(), []);
        }
    }

    #[test]
    fn a_commit_without_a_record_leaves_the_monthly_index_alone() {
        let store = Store::open_temporary().unwrap();
        store
            .commit_family(&FamilyCommit {
                record: Some(EncodedFamily::of(&record("fam-1"))),
                monthly: Some(true),
                ..FamilyCommit::default()
            })
            .unwrap();
        store
            .commit_family(&FamilyCommit {
                monthly: Some(false),
                sms: vec![sms("help-1")],
                ..FamilyCommit::default()
            })
            .unwrap();
        assert_eq!(store.monthly_families().count(), 1);
        assert_eq!(store.sms_outbox().unwrap(), [sms("help-1")]);
    }

    #[test]
    fn a_payment_settled_in_its_own_commit_never_reaches_the_outbox() {
        let store = Store::open_temporary().unwrap();
        store
            .commit_family(&FamilyCommit {
                payments: vec![payment("ref-1")],
                payments_settled: vec!["ref-1".to_owned()],
                ..FamilyCommit::default()
            })
            .unwrap();
        assert_eq!(store.payment_outbox().unwrap(), []);
    }

    #[test]
    fn due_timers_come_in_time_order_and_go_when_removed() {
        let store = Store::open_temporary().unwrap();
        let timers = [
            timer("fam-b", 12, TimerKind::Expiry),
            timer("fam-a", 10, TimerKind::Reminder),
            timer("fam-c", 14, TimerKind::Reminder),
            timer("fam-a", 12, TimerKind::Expiry),
            timer("fam-a", 12, TimerKind::Reminder),
        ];
        store
            .commit_family(&FamilyCommit {
                timers_put: timers.to_vec(),
                ..FamilyCommit::default()
            })
            .unwrap();
        fn check(store: &Store, now: DateTime<Utc>, limit: usize, expected: &[&str]) {
            let actual: Vec<String> = store
                .due_timers(now, limit)
                .unwrap()
                .into_iter()
                .map(|timer| {
                    format!(
                        "{} {} {:?}",
                        timer.due_at.format("%H:%M"),
                        timer.family_id,
                        timer.kind
                    )
                })
                .collect();
            assert_eq!(actual, expected, "now {now} limit {limit}");
        }
        check(&store, at(9), 10, &[]);
        check(&store, at(10) - Duration::milliseconds(1), 10, &[]);
        check(&store, at(10), 10, &["10:00 fam-a Reminder"]);
        // Same due time: by family, then by entitlement and kind (E before R).
        check(
            &store,
            at(12),
            10,
            &[
                "10:00 fam-a Reminder",
                "12:00 fam-a Expiry",
                "12:00 fam-a Reminder",
                "12:00 fam-b Expiry",
            ],
        );
        check(
            &store,
            at(12),
            2,
            &["10:00 fam-a Reminder", "12:00 fam-a Expiry"],
        );
        let due = store.due_timers(at(12), 2).unwrap();
        store.remove_timers(&due).unwrap();
        assert_eq!(store.timer_count(), 3);
        check(
            &store,
            at(23),
            10,
            &[
                "12:00 fam-a Reminder",
                "12:00 fam-b Expiry",
                "14:00 fam-c Reminder",
            ],
        );
        // Removing what is not there is no error.
        store.remove_timers(&due).unwrap();
        assert_eq!(store.timer_count(), 3);
    }

    #[test]
    fn open_requests_are_read_back_by_phone() {
        let store = Store::open_temporary().unwrap();
        let first = phone("+77011234567");
        let second = phone("+77011234568");
        let mut other_entitlement = request("fam-1", 9999);
        other_entitlement.entitlement_id = "fam-1-tsa-2".to_owned();
        store
            .commit_family(&FamilyCommit {
                requests_opened: vec![
                    (first.clone(), request("fam-2", 1000)),
                    (first.clone(), request("fam-1", 4321)),
                    (first.clone(), other_entitlement.clone()),
                    (second.clone(), request("fam-3", 65535)),
                ],
                ..FamilyCommit::default()
            })
            .unwrap();
        assert_eq!(
            store.open_requests(&first).unwrap(),
            [
                request("fam-1", 4321),
                other_entitlement,
                request("fam-2", 1000)
            ]
        );
        assert_eq!(
            store.open_requests(&second).unwrap(),
            [request("fam-3", 65535)]
        );
        assert_eq!(store.open_requests(&phone("+77000000000")).unwrap(), []);
    }

    #[test]
    fn open_requests_are_found_before_and_after_the_phone_filter_is_filled() {
        let store = Store::open_temporary().unwrap();
        let (before, after) = (phone("+77011234567"), phone("+77019876543"));
        let open = |phone: &Phone, request: OpenRequest| {
            let commit = FamilyCommit {
                requests_opened: vec![(phone.clone(), request)],
                ..FamilyCommit::default()
            };
            store
                .commit_families(&[commit], Counted::default())
                .unwrap();
        };
        open(&before, request("fam-1", 1234));
        assert_eq!(
            store.open_requests(&before).unwrap(),
            [request("fam-1", 1234)]
        );
        assert!(store.fill_filter(Filter::Phones).unwrap());
        // Read into the filter from the tree.
        assert_eq!(
            store.open_requests(&before).unwrap(),
            [request("fam-1", 1234)]
        );
        assert_eq!(store.open_requests(&after).unwrap(), []);
        // Marked as it is written.
        open(&after, request("fam-2", 4321));
        assert_eq!(
            store.open_requests(&after).unwrap(),
            [request("fam-2", 4321)]
        );
        store
            .commit_family(&FamilyCommit {
                requests_opened: vec![(before.clone(), request("fam-3", 5555))],
                ..FamilyCommit::default()
            })
            .unwrap();
        assert_eq!(store.open_requests(&before).unwrap().len(), 2);
    }

    #[test]
    fn a_bad_phone_request_key_is_corrupt_not_a_panic() {
        let store = Store::open_temporary().unwrap();
        let tree = store.db().open_tree("phone_requests").unwrap();
        tree.insert(b"+77011234567\0no-separator", &4321u64.to_be_bytes()[..])
            .unwrap();
        match store.open_requests(&phone("+77011234567")) {
            Err(StoreError::Corrupt { tree, .. }) => assert_eq!(tree, "phone_requests"),
            other => panic!("expected corrupt, got {other:?}"),
        }
        tree.clear().unwrap();
        tree.insert(b"+77011234567\0fam-1\0e-1", &70_000u64.to_be_bytes()[..])
            .unwrap();
        match store.open_requests(&phone("+77011234567")) {
            Err(StoreError::Corrupt { tree, reason, .. }) => {
                assert_eq!(
                    (tree, reason.as_str()),
                    ("phone_requests", "code out of range")
                );
            }
            other => panic!("expected corrupt, got {other:?}"),
        }
    }

    fn audit_entry(action: &str) -> AuditEntry {
        AuditEntry {
            at: at(9),
            operator: "op-1".to_owned(),
            role: "operator".to_owned(),
            remote_addr: "127.0.0.1:1".to_owned(),
            action: action.to_owned(),
            target: "fam-1".to_owned(),
        }
    }

    #[test]
    fn the_audit_log_only_grows() {
        let directory = tempfile::tempdir().unwrap();
        {
            let store = Store::open(directory.path()).unwrap();
            assert_eq!(store.audit(&audit_entry("read")).unwrap(), 1);
            assert_eq!(store.audit(&audit_entry("reoffer")).unwrap(), 2);
            assert_eq!(store.audit(&audit_entry("read")).unwrap(), 3);
            let actions: Vec<(u64, String)> = store
                .audit_after(1, 10)
                .unwrap()
                .into_iter()
                .map(|(seq, entry)| (seq, entry.action))
                .collect();
            assert_eq!(actions, owned(&[(2, "reoffer"), (3, "read")]));
            assert_eq!(store.audit_after(0, 1).unwrap().len(), 1);
            assert_eq!(store.audit_after(3, 10).unwrap(), []);
            store.flush().unwrap();
        }
        let store = Store::open(directory.path()).unwrap();
        // After a restart the sequence goes on; nothing is overwritten.
        assert_eq!(store.audit(&audit_entry("review")).unwrap(), 4);
        let all = store.audit_after(0, 10).unwrap();
        let seqs: Vec<u64> = all.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(all[0].1, audit_entry("read"));
    }

    #[test]
    fn orphans_the_citizen_index_quarantine_and_counters() {
        let store = Store::open_temporary().unwrap();
        let mut facts = CitizenFacts::new(iin());
        facts.social_wallet = true;
        store.put_orphan(&facts).unwrap();
        assert_eq!(store.orphan(&iin()).unwrap(), Some(facts));

        assert_eq!(store.family_of(&iin()).unwrap(), None);
        store
            .set_family_of(&iin(), Some(&family_id("fam-1")))
            .unwrap();
        assert_eq!(store.family_of(&iin()).unwrap(), Some(family_id("fam-1")));
        assert_eq!(store.citizen_count().unwrap(), 1);
        store.set_family_of(&iin(), None).unwrap();
        assert_eq!(store.family_of(&iin()).unwrap(), None);
        assert_eq!(store.citizen_count().unwrap(), 0);

        let record = QuarantineRecord {
            seq: 12,
            family_id: family_id("fam-1"),
            reason: "panicked twice".to_owned(),
            at: at(9),
        };
        store.quarantine(&record).unwrap();
        assert_eq!(store.quarantined().unwrap(), [record]);

        store
            .add_counters(&counters(&[("families", 2), ("citizens", 5)]))
            .unwrap();
        store.add_counters(&counters(&[("families", -1)])).unwrap();
        assert_eq!(
            store.stats().unwrap(),
            counters(&[("citizens", 5), ("families", 1)])
        );
    }

    #[test]
    fn an_index_of_one_key_per_citizen_is_moved_into_buckets_on_opening() {
        let directory = tempfile::tempdir().unwrap();
        let born = chrono::NaiveDate::from_ymd_opt(1984, 3, 9).unwrap();
        let iins: Vec<Iin> = (0..250)
            .filter_map(|serial| Iin::from_parts(born, crate::ids::Sex::Male, serial))
            .collect();
        {
            let store = Store::open(directory.path()).unwrap();
            let old = store.db().open_tree("citizen_family").unwrap();
            for (n, iin) in iins.iter().enumerate() {
                let family = format!("fam-{}", n % 7);
                old.insert(iin.as_str().as_bytes(), family.as_bytes())
                    .unwrap();
            }
            store.flush().unwrap();
        }
        let store = Store::open(directory.path()).unwrap();
        for (n, iin) in iins.iter().enumerate() {
            let family = family_id(&format!("fam-{}", n % 7));
            assert_eq!(store.family_of(iin).unwrap(), Some(family));
        }
        assert_eq!(store.citizen_count().unwrap(), iins.len());
        assert!(!store
            .db()
            .tree_names()
            .iter()
            .any(|name| name == b"citizen_family"));
    }

    #[test]
    fn families_after_pages_in_id_order() {
        let store = Store::open_temporary().unwrap();
        for family in ["fam-3", "fam-1", "fam-2"] {
            store
                .commit_family(&FamilyCommit {
                    record: Some(EncodedFamily::of(&record(family))),
                    ..FamilyCommit::default()
                })
                .unwrap();
        }
        let page = |after: Option<&str>, limit: usize| -> Vec<String> {
            store
                .families_after(after, limit)
                .map(|record| record.unwrap().family_id.to_string())
                .collect()
        };
        assert_eq!(page(None, 10), ["fam-1", "fam-2", "fam-3"]);
        assert_eq!(page(None, 2), ["fam-1", "fam-2"]);
        assert_eq!(page(Some("fam-2"), 10), ["fam-3"]);
        assert_eq!(page(Some("fam-3"), 10), Vec::<String>::new());
    }

    /// Writes `bytes` as the stored value of family `fam-1` and renders what reading it gives.
    fn read_corrupt_family(bytes: &[u8]) -> String {
        let store = Store::open_temporary().unwrap();
        store
            .db()
            .open_tree("families")
            .unwrap()
            .insert(b"fam-1", bytes)
            .unwrap();
        let direct = match store.family(&family_id("fam-1")) {
            Err(StoreError::Corrupt { tree, key, reason }) => {
                format!("corrupt {tree} {key}: {reason}")
            }
            other => panic!("expected corrupt, got {other:?}"),
        };
        // Listing the families meets the same value and says the same.
        let listed = store.families_after(None, 10).collect::<Vec<_>>();
        assert_eq!(listed.len(), 1);
        match &listed[0] {
            Err(StoreError::Corrupt { tree, key, .. }) => {
                assert_eq!((*tree, key.as_str()), ("families", "fam-1"));
            }
            other => panic!("expected corrupt, got {other:?}"),
        }
        direct
    }

    #[test]
    fn a_corrupt_family_is_an_error_never_a_panic() {
        fn check(bytes: &[u8], expected: &str) {
            let actual = read_corrupt_family(bytes);
            assert!(
                actual.starts_with(expected),
                "bytes {bytes:?}: {actual:?} does not start with {expected:?}"
            );
        }
        let good = encode(&record("fam-1"));
        check(b"\x01garbage", "corrupt families fam-1: bincode");
        check(
            b"garbage",
            "corrupt families fam-1: unknown format version 103",
        );
        check(&[], "corrupt families fam-1: empty value");
        check(&good[..good.len() - 1], "corrupt families fam-1: bincode");
        check(
            &[good.as_slice(), &[0, 0]].concat(),
            "corrupt families fam-1: 2 trailing bytes",
        );
        let mut future = good.clone();
        future[0] = 9;
        check(&future, "corrupt families fam-1: unknown format version 9");
        let mut old = good;
        old[0] = 0;
        check(&old, "corrupt families fam-1: unknown format version 0");
    }
}
