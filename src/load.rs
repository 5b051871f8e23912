//! `dfm load`: the offline bulk path for a national initial load.
//!
//! It validates every line exactly like the feed API, then applies the events
//! without the log and without actors: it keeps a window of families in memory,
//! routes events the way the dispatcher does (citizen index, orphan facts,
//! membership moves), runs the same pure `process` step once per family per
//! window on every core, and writes each window with one sled batch per tree
//! (the citizen index every [`LOAD_INDEX_CITIZENS`] entries, and at the end).
//! SMS and payments decided during the load stay in their outboxes for `serve`.
//! Nothing is flushed before the end.
//!
//! Ids are not remembered for the feed API's duplicate check: every fact is a
//! set, so an event sent again later changes nothing.

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;
use std::time::{Duration, Instant};

use actors::entitlement::Settings;
use actors::family::{self, FamilyInput};
use actors::rules::Rules;
use anyhow::Context as _;
use storage::event::{self, EventData, FeedEvent, Subject};
use storage::ids::{FamilyId, Iin};
use storage::record::CitizenFacts;
use storage::store::{FamilyCommit, Filter};
use storage::Store;

use crate::config::Config;

/// Events parsed ahead of the loader, per chunk.
pub const LOAD_CHUNK_EVENTS: usize = 20_000;
/// Parsed chunks waiting for the loader.
pub const LOAD_CHANNEL_CHUNKS: usize = 4;
/// Families held in memory before a window is written.
pub const LOAD_WINDOW_FAMILIES: usize = 20_000;
/// Orphan entries held before a window is written.
pub const LOAD_WINDOW_CITIZENS: usize = 400_000;
/// Citizen-index entries held across windows before they are written (about
/// 80 bytes each). The index is packed in buckets, and each write of an entry
/// rewrites its whole bucket: written with each window of 20,000 families, a
/// national load rewrote every bucket once per citizen in it.
pub const LOAD_INDEX_CITIZENS: usize = 2_000_000;

/// What a bulk load did.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub accepted: usize,
    pub rejected: usize,
    pub families: usize,
    pub elapsed: Duration,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "loaded {} events ({} rejected); {} families in the store; {:.1}s, {:.0} events/s",
            self.accepted,
            self.rejected,
            self.families,
            seconds,
            self.accepted as f64 / seconds
        )
    }
}

/// One line of a bulk-load file: the event, and its agency from the `agency`
/// field or, without one, the contract's agency for its type.
pub fn load_line(line: &str, config: &Config) -> Result<(String, FeedEvent), String> {
    let line = event::parse_event_text(line);
    let parsed = line.event.map_err(|e| e.to_string());
    let agency = match line.agency {
        Some(serde_json::Value::String(agency)) => agency,
        Some(_) => return Err("agency must be a string".to_owned()),
        // Without one, the contract's agency for the type (every valid type has one).
        None => {
            let type_name = parsed.as_ref()?.data.type_name();
            event::EVENT_TYPES
                .iter()
                .find(|(name, _)| *name == type_name)
                .map(|(_, agency)| (*agency).to_owned())
                .ok_or_else(|| format!("unknown event type {type_name:?}"))?
        }
    };
    let parsed = parsed?;
    let type_name = parsed.data.type_name();
    let allowed = config
        .credentials
        .agencies
        .iter()
        .find(|a| a.name == agency)
        .map(|a| a.types.contains(type_name))
        .unwrap_or_else(|| event::default_types_for(&agency).contains(&type_name));
    if !allowed {
        return Err(format!("agency {agency} may not send {type_name}"));
    }
    Ok((agency, parsed))
}

/// Reads and validates the file on its own thread, sending chunks in file order;
/// returns how many lines were rejected.
fn parse_file(
    file: std::fs::File,
    config: &Config,
    sender: &std::sync::mpsc::SyncSender<Vec<FeedEvent>>,
) -> anyhow::Result<usize> {
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut chunk = Vec::with_capacity(LOAD_CHUNK_EVENTS);
    let mut rejected = 0usize;
    for (index, line) in reader.lines().enumerate() {
        let line = line.context("reading the events file")?;
        if line.trim().is_empty() {
            continue;
        }
        match load_line(&line, config) {
            Ok((_, event)) => chunk.push(event),
            Err(reason) => {
                rejected += 1;
                if rejected <= 20 {
                    eprintln!("dfm: line {}: rejected: {reason}", index + 1);
                }
            }
        }
        if chunk.len() >= LOAD_CHUNK_EVENTS {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(LOAD_CHUNK_EVENTS));
            sender
                .send(full)
                .map_err(|_| anyhow::anyhow!("the loader stopped"))?;
        }
    }
    if !chunk.is_empty() {
        sender
            .send(chunk)
            .map_err(|_| anyhow::anyhow!("the loader stopped"))?;
    }
    Ok(rejected)
}

/// The in-memory window of a bulk load.
struct Window<'a> {
    store: &'a Store,
    rules: &'a Rules,
    settings: Settings,
    now: chrono::DateTime<chrono::Utc>,
    /// Citizen → family changes not yet written (None: in no family).
    index: HashMap<Iin, Option<FamilyId>>,
    /// Facts of citizens in no family, not yet written.
    orphans: HashMap<Iin, CitizenFacts>,
    /// Orphans taken into a family in this window (deleted when written).
    taken: BTreeSet<Iin>,
    order: Vec<FamilyId>,
    pending: HashMap<FamilyId, Vec<(u64, FamilyInput)>>,
}

impl Window<'_> {
    fn family_of(&self, iin: &Iin) -> anyhow::Result<Option<FamilyId>> {
        match self.index.get(iin) {
            Some(family) => Ok(family.clone()),
            None => Ok(self.store.family_of(iin)?),
        }
    }

    fn take_orphan(&mut self, iin: &Iin) -> anyhow::Result<Option<CitizenFacts>> {
        if let Some(facts) = self.orphans.remove(iin) {
            self.taken.insert(*iin);
            return Ok(Some(facts));
        }
        if self.taken.contains(iin) {
            return Ok(None);
        }
        let stored = self.store.orphan(iin)?;
        self.taken.insert(*iin);
        Ok(stored)
    }

    fn push(&mut self, family_id: FamilyId, seq: u64, input: FamilyInput) {
        let inputs = self.pending.entry(family_id.clone()).or_insert_with(|| {
            self.order.push(family_id);
            Vec::new()
        });
        inputs.push((seq, input));
    }

    fn route(&mut self, seq: u64, event: FeedEvent) -> anyhow::Result<()> {
        match &event.data {
            EventData::MemberAdded {
                family_id,
                iin,
                role,
            } => {
                let current = self.family_of(iin)?;
                if let Some(previous) = current.clone().filter(|g| g != family_id) {
                    self.detach_now(&previous, *iin, seq)?;
                }
                let orphan = if current.as_ref() == Some(family_id) {
                    None
                } else {
                    self.take_orphan(iin)?
                };
                self.index.insert(*iin, Some(family_id.clone()));
                self.push(
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
                    self.detach_now(family_id, *iin, seq)?;
                    self.index.insert(*iin, None);
                }
            }
            _ => match event.data.subject() {
                Subject::Family(family_id) => {
                    let family_id = family_id.clone();
                    self.push(family_id, seq, FamilyInput::Feed(event));
                }
                Subject::Citizen(iin) => {
                    let iin = *iin;
                    match self.family_of(&iin)? {
                        Some(family_id) => self.push(family_id, seq, FamilyInput::Feed(event)),
                        None => {
                            let mut facts = match self.orphans.remove(&iin) {
                                Some(facts) => facts,
                                None if self.taken.contains(&iin) => CitizenFacts::new(iin),
                                None => self
                                    .store
                                    .orphan(&iin)?
                                    .unwrap_or_else(|| CitizenFacts::new(iin)),
                            };
                            self.taken.remove(&iin);
                            let _ = actors::apply::apply_to_citizen(&mut facts, &event);
                            facts.applied_seq = seq;
                            self.orphans.insert(iin, facts);
                        }
                    }
                }
            },
        }
        Ok(())
    }

    /// A member leaves: the family is brought up to date and written now, so
    /// that the citizen's facts are in the orphan window for what follows.
    fn detach_now(&mut self, family_id: &FamilyId, iin: Iin, seq: u64) -> anyhow::Result<()> {
        self.push(family_id.clone(), seq, FamilyInput::Detach { iin });
        let inputs = self.pending.remove(family_id).unwrap_or_default();
        self.order.retain(|id| id != family_id);
        let commit = self.process_one(family_id, &inputs)?;
        for facts in &commit.orphans_put {
            self.orphans.insert(facts.iin, facts.clone());
            self.taken.remove(&facts.iin);
        }
        self.store
            .bulk_write(std::slice::from_ref(&commit), &[], &[])?;
        Ok(())
    }

    fn process_one(
        &self,
        family_id: &FamilyId,
        inputs: &[(u64, FamilyInput)],
    ) -> anyhow::Result<FamilyCommit> {
        let existing = self.store.family(family_id)?;
        let outcome = family::process(
            existing,
            family_id,
            inputs,
            self.rules,
            &self.settings,
            self.now,
            &family::reply_code_of(self.store),
        );
        Ok(outcome.commit)
    }

    fn is_full(&self) -> bool {
        self.pending.len() >= LOAD_WINDOW_FAMILIES
            || self.orphans.len() >= LOAD_WINDOW_CITIZENS
            || self.index.len() >= LOAD_INDEX_CITIZENS
    }

    /// Processes every pending family on all cores and writes the window; the
    /// citizen index too when it is full or `last`.
    fn write(&mut self, last: bool) -> anyhow::Result<()> {
        let order = std::mem::take(&mut self.order);
        let mut pending = std::mem::take(&mut self.pending);
        let work: Vec<(FamilyId, Vec<(u64, FamilyInput)>)> = order
            .into_iter()
            .filter_map(|id| pending.remove(&id).map(|inputs| (id, inputs)))
            .collect();
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(1);
        let per_thread = work.len().div_ceil(threads).max(1);
        let this = &*self;
        let commits: Vec<FamilyCommit> = std::thread::scope(|scope| {
            let handles: Vec<_> = work
                .chunks(per_thread)
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|(family_id, inputs)| this.process_one(family_id, inputs))
                            .collect::<anyhow::Result<Vec<_>>>()
                    })
                })
                .collect();
            let mut commits = Vec::new();
            for handle in handles {
                let part = handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("a load worker panicked"))??;
                commits.extend(part);
            }
            Ok::<_, anyhow::Error>(commits)
        })?;
        let index: Vec<(Iin, Option<FamilyId>)> = if last || self.index.len() >= LOAD_INDEX_CITIZENS
        {
            self.index.drain().collect()
        } else {
            Vec::new()
        };
        let orphans: Vec<CitizenFacts> = self.orphans.drain().map(|(_, facts)| facts).collect();
        self.store.bulk_write(&commits, &index, &orphans)?;
        self.taken.clear();
        Ok(())
    }
}

/// The counter, not a count of the tree: that would read every family.
fn families_stored(store: &storage::Store) -> anyhow::Result<u64> {
    Ok(store
        .stats()?
        .get(storage::store::counter::FAMILIES)
        .copied()
        .unwrap_or(0)
        .try_into()
        .unwrap_or(0))
}

/// Loads an NDJSON file of feed events into the store at `config.storage_path`.
pub fn load_file(config: &Config, file: std::fs::File) -> anyhow::Result<LoadReport> {
    let started = Instant::now();
    let (rules, store) = config.open_rules_and_store()?;
    if store.last_seq() != store.applied_through()? {
        anyhow::bail!(
            "the store has accepted events not yet applied; run `dfm serve` until they are, then load"
        );
    }
    // Into an empty store, the load also fills the scoring table and saves it
    // at the end: the first start reads it instead of every record.
    let table = (config.scoring_table && families_stored(&store)? == 0)
        .then(|| store.enable_scoring_table());
    // Offers to phones with no open request then read no request. Both
    // filters are saved at the end, for the first start; into an empty store
    // filling them reads nothing.
    let saved = store
        .take_saved_key_filters()
        .context("reading the key filters the last clean stop saved")?;
    for which in Filter::ALL
        .into_iter()
        .filter(|which| !saved.contains(which))
    {
        store
            .fill_filter(which)
            .with_context(|| format!("reading {}", which.what()))?;
    }
    store.set_load_running(true)?;
    let settings = config.consent_settings()?;
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<FeedEvent>>(LOAD_CHANNEL_CHUNKS);
    let parser_config = config.clone();
    let parser = std::thread::spawn(move || parse_file(file, &parser_config, &sender));
    let mut window = Window {
        store: &store,
        rules: &rules,
        settings,
        now: chrono::Utc::now(),
        index: HashMap::new(),
        orphans: HashMap::new(),
        taken: BTreeSet::new(),
        order: Vec::new(),
        pending: HashMap::new(),
    };
    let mut accepted = 0usize;
    for chunk in receiver {
        let first = store.reserve_seqs(chunk.len() as u64);
        for (offset, event) in chunk.into_iter().enumerate() {
            window.route(first + offset as u64, event)?;
            accepted += 1;
        }
        if window.is_full() {
            window.write(false)?;
        }
    }
    let rejected = parser
        .join()
        .map_err(|_| anyhow::anyhow!("the reader thread panicked"))??;
    window.write(true)?;
    store.set_applied_through(store.last_seq())?;
    store.set_load_running(false)?;
    store.flush()?;
    let families = families_stored(&store)?;
    store.save_key_filters()?;
    if let Some(table) = table {
        table.set_built();
        store.save_scoring_table()?;
    }
    drop(window);
    // Else `serve` would replay the whole load (34 s at 6 million families).
    crate::service::close_with_snapshot(store, &config.storage_path)?;
    Ok(LoadReport {
        accepted,
        rejected,
        families: usize::try_from(families).unwrap_or(0),
        elapsed: started.elapsed(),
    })
}
