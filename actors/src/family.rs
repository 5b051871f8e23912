//! The family actor: one per active family. It holds the family's record, applies
//! its inputs in log order, re-evaluates score and eligibility, runs the
//! entitlement machine and returns everything to write; the dispatcher writes it
//! with its batch before it hands SMS to the notifier and payments to the bank
//! gateway.
//!
//! [`process`] is the whole decision, free of actix; the actor around it adds the
//! store, the clock and the outgoing messages. A panic inside a handler is caught:
//! the actor answers `Panicked` and stops, and the dispatcher re-activates the
//! family from sled and retries from the log.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use storage::event::{EventData, FeedEvent, LogEntry, OperatorAction};
use storage::ids::{FamilyId, Iin, Month, Phone};
use storage::record::{
    AwardDecision, CitizenFacts, Entitlement, EntitlementState, FamilyRecord, PaymentStatus,
    PayoutChoice, Review, Role,
};
use storage::store::{
    counter, EncodedFamily, FamilyCommit, OpenRequest, PaymentOrder, SmsOrder, TimerRecord,
};
use storage::Store;

use crate::apply;
use crate::bank::BankGateway;
use crate::clock::Clock;
use crate::entitlement::{self, Command, Notice, Recipient, Settings};
use crate::metrics::Metrics;
use crate::notifier::Notifier;
use crate::rules::Rules;
use crate::scoring;
use crate::texts::{self, BenefitNames};

/// Messages a family's mailbox holds before senders wait.
pub const FAMILY_MAILBOX_CAPACITY: usize = 16;

/// One input for a family, as the dispatcher routed it.
#[derive(Debug, Clone)]
pub enum FamilyInput {
    /// A family event, or a citizen event for a member.
    Feed(FeedEvent),
    /// A citizen joins, bringing the facts kept while in no family.
    Attach {
        iin: Iin,
        role: Role,
        orphan: Option<CitizenFacts>,
    },
    /// A citizen leaves; their facts go back to the orphan store.
    Detach { iin: Iin },
    /// SMS replies, timers, payment outcomes, cycles, operator actions.
    Internal(LogEntry),
}

/// A family's inputs of one batch, in log order; shared so that a retry needs
/// no copy.
pub type Inputs = Arc<[(u64, FamilyInput)]>;

/// Everything a family actor needs from the service.
pub struct FamilyEnvironment {
    pub store: Arc<Store>,
    pub rules: Arc<std::sync::RwLock<Arc<Rules>>>,
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub notifier: Addr<Notifier>,
    pub bank: Addr<BankGateway>,
    /// When false (offline `dfm load`), SMS and payments stay in their outboxes
    /// for `dfm serve` to send.
    pub outbound: bool,
}

impl FamilyEnvironment {
    pub fn rules(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What the pure step produced: the new record and what to write and send.
pub struct Outcome {
    pub record: FamilyRecord,
    pub commit: FamilyCommit,
    /// Inputs that changed nothing, with the reason (for metrics and logs).
    pub ignored: Vec<(u64, String)>,
    pub applied: usize,
}

fn recipient_of(record: &FamilyRecord, iin: &Iin) -> Recipient {
    let facts = record.member(iin).map(|member| &member.facts);
    Recipient {
        iin: *iin,
        phone: facts.and_then(|facts| facts.phone.clone()),
        iban: facts.and_then(|facts| facts.iban.clone()),
    }
}

/// Picks the 4-digit code for a new request: derived from the entitlement id
/// (so a replay picks the same one), moved on past codes already in use.
pub fn pick_code(entitlement_id: &str, taken: &BTreeSet<u16>) -> u16 {
    // FNV-1a: stable across builds and platforms, unlike the std hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in entitlement_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let mut code = 1000 + u16::try_from(hash % 9000).expect("below 9000");
    for _ in 0..9000 {
        if !taken.contains(&code) {
            return code;
        }
        code = if code == 9999 { 1000 } else { code + 1 };
    }
    code
}

/// A snapshot of the counters one family contributes to the stats.
fn contribution(record: &FamilyRecord, today: chrono::NaiveDate) -> BTreeMap<String, i64> {
    let mut counters = BTreeMap::new();
    counters.insert(counter::FAMILIES.to_owned(), 1);
    let living = record
        .members
        .iter()
        .filter(|member| member.facts.is_alive_on(today))
        .count();
    counters.insert(counter::CITIZENS.to_owned(), living as i64);
    if let Some(evaluation) = &record.evaluation {
        let region = record.address.map(|address| address.region);
        *counters
            .entry(counter::level(evaluation.level))
            .or_insert(0) += 1;
        *counters
            .entry(counter::region_level(region, evaluation.level))
            .or_insert(0) += 1;
    }
    for entitlement in &record.entitlements {
        *counters
            .entry(counter::state(entitlement.state))
            .or_insert(0) += 1;
        for payment in &entitlement.payments {
            if payment.status == PaymentStatus::Succeeded {
                let tiyn = i64::try_from(payment.amount.tiyn()).expect("amounts fit in i64");
                *counters
                    .entry(counter::PAID_TOTAL_TIYN.to_owned())
                    .or_insert(0) += tiyn;
                *counters
                    .entry(counter::program_paid(&entitlement.program))
                    .or_insert(0) += tiyn;
                *counters
                    .entry(counter::PAYMENTS_SUCCEEDED.to_owned())
                    .or_insert(0) += 1;
            }
        }
    }
    if let Some(review) = &record.review {
        counters.insert(counter::review(review.verdict), 1);
    }
    counters
}

fn difference(
    before: &BTreeMap<String, i64>,
    after: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    let mut delta = BTreeMap::new();
    for (name, value) in after {
        let old = before.get(name).copied().unwrap_or(0);
        if *value != old {
            delta.insert(name.clone(), value - old);
        }
    }
    for (name, value) in before {
        if !after.contains_key(name) {
            delta.insert(name.clone(), -value);
        }
    }
    delta
}

struct Step<'a> {
    rules: &'a Rules,
    settings: &'a Settings,
    now: DateTime<Utc>,
    reply_code: &'a ReplyCode<'a>,
}

/// Picks the reply code of a new request to a phone, given the entitlement id
/// and the codes the family's own offers hold: [`pick_code`] past the codes of
/// the phone's other requests ([`storage::store::Store::pick_reply_code`]).
pub type ReplyCode<'a> = dyn Fn(&Phone, &str, &BTreeSet<u16>) -> u16 + 'a;

/// The [`ReplyCode`] of `store`: the phone's requests, written or picked.
pub fn reply_code_of(store: &Store) -> impl Fn(&Phone, &str, &BTreeSet<u16>) -> u16 + '_ {
    move |phone, entitlement_id, own| {
        let pick = |taken: &BTreeSet<u16>| pick_code(entitlement_id, &(taken | own));
        store
            .pick_reply_code(phone, entitlement_id, pick)
            .unwrap_or_else(|error| {
                tracing::error!(%error, "could not read a phone's open requests; the code may repeat one");
                pick_code(entitlement_id, own)
            })
    }
}

/// Applies a batch of inputs to a family, pure but for `reply_code` (a read of
/// the phone index, which reserves the code it picks until the commit is
/// written). Inputs at or below the record's `applied_seq` are skipped.
pub fn process(
    existing: Option<FamilyRecord>,
    family_id: &FamilyId,
    inputs: &[(u64, FamilyInput)],
    rules: &Rules,
    settings: &Settings,
    now: DateTime<Utc>,
    reply_code: &ReplyCode<'_>,
) -> Outcome {
    let today = crate::scoring::local_date(now);
    let is_new = existing.is_none();
    let mut record = existing.unwrap_or_else(|| FamilyRecord::new(family_id.clone()));
    let before = if is_new {
        BTreeMap::new()
    } else {
        contribution(&record, today)
    };
    let step = Step {
        rules,
        settings,
        now,
        reply_code,
    };
    let mut commit = FamilyCommit::default();
    let mut commands: Vec<(String, Command)> = Vec::new();
    let mut ignored = Vec::new();
    let mut applied = 0;
    for (seq, input) in inputs {
        if *seq <= record.applied_seq {
            continue;
        }
        applied += 1;
        record.applied_seq = *seq;
        match input {
            FamilyInput::Feed(event) => {
                if let Err(error) = apply::apply_to_family(&mut record, event) {
                    ignored.push((*seq, error.to_string()));
                    continue;
                }
                account_changes(&mut record, event, &step, &mut commands);
            }
            FamilyInput::Attach { iin, role, orphan } => {
                apply::attach(&mut record, *iin, *role, orphan.clone());
                commit.orphans_taken.push(*iin);
            }
            FamilyInput::Detach { iin } => match apply::detach(&mut record, iin) {
                Some(mut facts) => {
                    facts.applied_seq = *seq;
                    commit.orphans_put.push(facts);
                }
                None => ignored.push((*seq, "not a member".to_owned())),
            },
            FamilyInput::Internal(entry) => {
                if let Err(reason) = internal(&mut record, entry, &step, &mut commands) {
                    ignored.push((*seq, reason));
                }
            }
        }
    }
    if applied > 0 || record.evaluation.is_none() {
        reevaluate(&mut record, &step, &mut commands);
    }
    let after = contribution(&record, today);
    commit.counters = difference(&before, &after);
    let had_monthly = record
        .entitlements
        .iter()
        .any(|e| !e.one_off && e.state == EntitlementState::Active);
    execute(&mut commit, &record, commands, &step);
    commit.monthly = Some(had_monthly);
    commit.record = Some(EncodedFamily::of(&record));
    Outcome {
        record,
        commit,
        ignored,
        applied,
    }
}

/// A new account or wallet retries the payments that failed for that person.
fn account_changes(
    record: &mut FamilyRecord,
    event: &FeedEvent,
    step: &Step<'_>,
    commands: &mut Vec<(String, Command)>,
) {
    let (iin, prefer) = match &event.data {
        EventData::PayoutAccountChanged { iin, .. } => (iin, PayoutChoice::BankAccount),
        EventData::SocialWalletOpened { iin } => (iin, PayoutChoice::SocialWallet),
        _ => return,
    };
    let recipient = recipient_of(record, iin);
    for entitlement in record
        .entitlements
        .iter_mut()
        .filter(|e| &e.recipient == iin && e.state == EntitlementState::PaymentFailed)
    {
        let id = entitlement.id.clone();
        for command in entitlement::on_account(entitlement, prefer, &recipient, step.now) {
            commands.push((id.clone(), command));
        }
    }
}

fn internal(
    record: &mut FamilyRecord,
    entry: &LogEntry,
    step: &Step<'_>,
    commands: &mut Vec<(String, Command)>,
) -> Result<(), String> {
    let find = |record: &FamilyRecord, id: &str| -> Result<usize, String> {
        record
            .entitlements
            .iter()
            .position(|e| e.id == id)
            .ok_or_else(|| format!("no entitlement {id}"))
    };
    match entry {
        LogEntry::Feed { .. } => Err("feed entries arrive as Feed inputs".to_owned()),
        LogEntry::SmsReply {
            entitlement_id,
            answer,
            received_at,
            ..
        } => {
            let index = find(record, entitlement_id)?;
            let recipient = recipient_of(record, &record.entitlements[index].recipient);
            let entitlement = &mut record.entitlements[index];
            let produced = entitlement::on_reply(
                entitlement,
                *answer,
                &recipient,
                step.settings,
                *received_at,
            );
            let id = entitlement.id.clone();
            commands.extend(produced.into_iter().map(|c| (id.clone(), c)));
            Ok(())
        }
        LogEntry::TimerFired {
            entitlement_id,
            kind,
            ..
        } => {
            let index = find(record, entitlement_id)?;
            let recipient = recipient_of(record, &record.entitlements[index].recipient);
            let entitlement = &mut record.entitlements[index];
            let produced = entitlement::on_timer(entitlement, *kind, &recipient, step.settings);
            let id = entitlement.id.clone();
            commands.extend(produced.into_iter().map(|c| (id.clone(), c)));
            Ok(())
        }
        LogEntry::PaymentOutcome {
            reference_id,
            succeeded,
            reason,
            ..
        } => {
            let index = record
                .entitlements
                .iter()
                .position(|e| e.payments.iter().any(|p| &p.reference_id == reference_id));
            let Some(index) = index else {
                // Unknown here: still drop it from the outbox.
                commands.push((
                    String::new(),
                    Command::Settle {
                        reference_id: reference_id.clone(),
                    },
                ));
                return Err(format!("no payment {reference_id}"));
            };
            let recipient = recipient_of(record, &record.entitlements[index].recipient);
            let entitlement = &mut record.entitlements[index];
            let produced = entitlement::on_payment_outcome(
                entitlement,
                reference_id,
                *succeeded,
                reason.clone(),
                &recipient,
                step.now,
            );
            let id = entitlement.id.clone();
            commands.extend(produced.into_iter().map(|c| (id.clone(), c)));
            Ok(())
        }
        LogEntry::CycleDue { month, .. } => {
            for index in 0..record.entitlements.len() {
                let recipient = recipient_of(record, &record.entitlements[index].recipient);
                let entitlement = &mut record.entitlements[index];
                let produced = entitlement::on_cycle(entitlement, *month, &recipient, step.now);
                let id = entitlement.id.clone();
                commands.extend(produced.into_iter().map(|c| (id.clone(), c)));
            }
            Ok(())
        }
        LogEntry::Operator {
            operator,
            action,
            at,
            ..
        } => match action {
            OperatorAction::Reevaluate => {
                record.push_history(*at, format!("re-evaluated by operator {operator}"));
                Ok(())
            }
            OperatorAction::Reoffer { entitlement_id } => {
                let index = find(record, entitlement_id)?;
                let recipient = recipient_of(record, &record.entitlements[index].recipient);
                let entitlement = &mut record.entitlements[index];
                let produced =
                    entitlement::reoffer(entitlement, &recipient, step.settings, step.now)?;
                let id = entitlement.id.clone();
                commands.extend(produced.into_iter().map(|c| (id.clone(), c)));
                record.push_history(
                    *at,
                    format!("entitlement {entitlement_id} re-offered by operator {operator}"),
                );
                Ok(())
            }
            OperatorAction::Review { verdict, note } => {
                record.review = Some(Review {
                    verdict: *verdict,
                    by: operator.clone(),
                    at: *at,
                    note: note.clone(),
                });
                record.push_history(
                    *at,
                    format!("marked {verdict:?} by operator {operator}").to_lowercase(),
                );
                Ok(())
            }
        },
    }
}

/// Re-scores the family and reconciles its entitlements with the decisions.
fn reevaluate(record: &mut FamilyRecord, step: &Step<'_>, commands: &mut Vec<(String, Command)>) {
    let evaluation = scoring::evaluate(record, step.rules, step.now);
    let previous = record.evaluation.take();
    if previous.as_ref().map(|e| e.level) != Some(evaluation.level) {
        let what = match &previous {
            Some(previous) => format!(
                "level {} -> {} (score {})",
                previous.level.as_str(),
                evaluation.level.as_str(),
                evaluation.score.to_decimal_string()
            ),
            None => format!(
                "level {} (score {})",
                evaluation.level.as_str(),
                evaluation.score.to_decimal_string()
            ),
        };
        record.push_history(step.now, what);
    }
    for decision in &evaluation.programs {
        let was = previous
            .as_ref()
            .and_then(|p| p.programs.iter().find(|d| d.code == decision.code))
            .is_some_and(|d| d.eligible);
        if was != decision.eligible {
            let what = if decision.eligible {
                format!("eligible for {}", decision.code)
            } else {
                format!("no longer eligible for {}", decision.code)
            };
            if previous.is_some() || decision.eligible {
                record.push_history(step.now, what);
            }
        }
    }
    let living: BTreeSet<Iin> = record
        .members
        .iter()
        .filter(|m| m.facts.is_alive_on(crate::scoring::local_date(step.now)))
        .map(|m| m.facts.iin)
        .collect();
    for decision in &evaluation.programs {
        let awards: Vec<&AwardDecision> = if decision.eligible {
            decision.awards().collect()
        } else {
            Vec::new()
        };
        // Open entitlements of this program that today's decision no longer covers.
        for index in 0..record.entitlements.len() {
            let entitlement = &record.entitlements[index];
            if entitlement.program != decision.code || !entitlement.state.is_open() {
                continue;
            }
            let matching = awards.iter().copied().find(|award| {
                award.recipient == entitlement.recipient
                    && (!entitlement.one_off || award.occasion == entitlement.occasion)
            });
            let covered = matching.is_some() && living.contains(&entitlement.recipient);
            let recipient = recipient_of(record, &entitlement.recipient);
            let entitlement = &mut record.entitlements[index];
            let produced = entitlement::on_eligibility(
                entitlement,
                if covered { matching } else { None },
                &recipient,
                step.settings,
                step.now,
            );
            let id = entitlement.id.clone();
            commands.extend(produced.into_iter().map(|c| (id.clone(), c)));
        }
        for award in awards {
            let known = record.entitlements.iter().any(|e| {
                e.program == decision.code
                    && e.recipient == award.recipient
                    && if e.one_off {
                        e.occasion == award.occasion
                    } else {
                        e.state.is_open()
                            || matches!(
                                e.state,
                                EntitlementState::Declined | EntitlementState::Expired
                            )
                    }
            });
            if known {
                continue;
            }
            // The last month any earlier entitlement of this program and recipient
            // paid (or is paying): a new one starts after it, and is not offered at
            // all when its term is already covered.
            let covered_through = record
                .entitlements
                .iter()
                .filter(|e| {
                    e.program == decision.code && e.recipient == award.recipient && !e.one_off
                })
                .flat_map(|e| e.payments.iter())
                .filter(|p| p.status != storage::record::PaymentStatus::Rejected)
                .map(|p| p.period)
                .max();
            if !award.one_off
                && award
                    .last_month
                    .zip(covered_through)
                    .is_some_and(|(last, covered)| covered >= last)
            {
                continue;
            }
            let id = format!(
                "{}-{}-{}",
                record.family_id, decision.code, record.next_entitlement_number
            );
            record.next_entitlement_number += 1;
            let recipient = recipient_of(record, &award.recipient);
            let own: BTreeSet<u16> = record
                .entitlements
                .iter()
                .filter(|e| e.state == EntitlementState::Offered)
                .map(|e| e.code)
                .collect();
            let code = match &recipient.phone {
                Some(phone) => (step.reply_code)(phone, &id, &own),
                None => pick_code(&id, &own),
            };
            let mut entitlement =
                entitlement::create(id.clone(), &decision.code, award, code, step.now);
            if !award.one_off {
                entitlement.not_before = covered_through.map(Month::next);
            }
            let produced =
                entitlement::offer(&mut entitlement, &recipient, step.settings, step.now);
            commands.extend(produced.into_iter().map(|c| (id.clone(), c)));
            record.entitlements.push(entitlement);
        }
    }
    record.evaluation = Some(evaluation);
}

fn names_of(rules: &Rules, program: &str) -> BenefitNames {
    rules
        .programs
        .iter()
        .find(|p| p.code == program)
        .map_or_else(
            || BenefitNames {
                kazakh: program.to_owned(),
                russian: program.to_owned(),
            },
            |p| BenefitNames {
                kazakh: p.name_kk.clone(),
                russian: p.name_ru.clone(),
            },
        )
}

/// Turns the machine's commands into the commit's side-table writes.
fn execute(
    commit: &mut FamilyCommit,
    record: &FamilyRecord,
    commands: Vec<(String, Command)>,
    step: &Step<'_>,
) {
    let family_id = &record.family_id;
    for (entitlement_id, command) in commands {
        let entitlement: Option<&Entitlement> =
            record.entitlements.iter().find(|e| e.id == entitlement_id);
        match command {
            Command::Sms {
                to,
                notice,
                reference,
            } => {
                let Some(entitlement) = entitlement else {
                    continue;
                };
                let amount = match notice {
                    Notice::PaymentFailed | Notice::AccountNeeded | Notice::Paid => entitlement
                        .payments
                        .last()
                        .map_or(entitlement.amount, |p| p.amount),
                    _ => entitlement.amount,
                };
                let text = texts::render(
                    notice,
                    &names_of(step.rules, &entitlement.program),
                    amount,
                    entitlement.code,
                    entitlement.one_off,
                );
                commit.sms.push(SmsOrder {
                    reference,
                    to,
                    text,
                    family_id: Some(family_id.clone()),
                    created_at: step.now,
                });
            }
            Command::OpenRequest { phone, code } => commit.requests_opened.push((
                phone,
                OpenRequest {
                    family_id: family_id.clone(),
                    entitlement_id,
                    code,
                },
            )),
            Command::CloseRequest { phone, code } => commit.requests_closed.push((
                phone,
                OpenRequest {
                    family_id: family_id.clone(),
                    entitlement_id,
                    code,
                },
            )),
            Command::SetTimer { kind, due_at } => commit.timers_put.push(TimerRecord {
                due_at,
                family_id: family_id.clone(),
                entitlement_id,
                kind,
            }),
            Command::CancelTimer { kind, due_at } => commit.timers_removed.push(TimerRecord {
                due_at,
                family_id: family_id.clone(),
                entitlement_id,
                kind,
            }),
            Command::Pay(payment) => {
                let Some(entitlement) = entitlement else {
                    continue;
                };
                commit.payments.push(PaymentOrder {
                    reference_id: payment.reference_id.clone(),
                    family_id: family_id.clone(),
                    entitlement_id: entitlement.id.clone(),
                    payee_fa: payment.payee_fa.clone(),
                    amount: payment.amount,
                    purpose: format!("{} {}", entitlement.program, payment.period),
                    note: format!("dfm {} {}", entitlement.id, payment.period),
                    created_at: step.now,
                });
            }
            Command::Settle { reference_id } => commit.payments_settled.push(reference_id),
        }
    }
    // A payment settled in the same batch that created it never reaches the outbox.
    let settled: BTreeSet<&String> = commit.payments_settled.iter().collect();
    commit
        .payments
        .retain(|order| !settled.contains(&order.reference_id));
}

// ----- the actor -----

#[derive(Debug, Clone, thiserror::Error)]
pub enum FamilyError {
    #[error("the family actor panicked: {0}")]
    Panicked(String),
    #[error("store: {0}")]
    Store(String),
}

/// Apply inputs in order; answers with what to write (the dispatcher writes it).
#[derive(Message)]
#[rtype(result = "Result<FamilyCommit, FamilyError>")]
pub struct Apply {
    /// Shared, so that the dispatcher keeps them for a retry without a copy.
    pub inputs: Inputs,
}

/// The family's current record, for operators.
#[derive(Message)]
#[rtype(result = "Option<FamilyRecord>")]
pub struct GetRecord;

pub struct FamilyActor {
    family_id: FamilyId,
    record: Option<FamilyRecord>,
    environment: Arc<FamilyEnvironment>,
}

impl FamilyActor {
    pub fn new(
        family_id: FamilyId,
        record: Option<FamilyRecord>,
        environment: Arc<FamilyEnvironment>,
    ) -> FamilyActor {
        FamilyActor {
            family_id,
            record,
            environment,
        }
    }
}

impl Actor for FamilyActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(FAMILY_MAILBOX_CAPACITY);
    }
}

/// Test-only fault injection: an event whose id starts with
/// `failpoint-panic` panics the handler every time; `failpoint-panic-once` only
/// the first time in this process. Compiled into debug builds only.
#[cfg(debug_assertions)]
fn failpoint(inputs: &[(u64, FamilyInput)]) {
    use std::sync::Mutex;
    static FIRED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    for (_, input) in inputs {
        if let FamilyInput::Feed(event) = input {
            if event.id.starts_with("failpoint-panic-once") {
                let mut fired = FIRED.lock().unwrap_or_else(|e| e.into_inner());
                if fired.insert(event.id.clone()) {
                    panic!("failpoint: panic once on {}", event.id);
                }
            } else if event.id.starts_with("failpoint-panic") {
                panic!("failpoint: panic on {}", event.id);
            }
        }
    }
}

#[cfg(not(debug_assertions))]
fn failpoint(_inputs: &[(u64, FamilyInput)]) {}

impl Handler<Apply> for FamilyActor {
    type Result = Result<FamilyCommit, FamilyError>;

    fn handle(&mut self, message: Apply, ctx: &mut Context<Self>) -> Self::Result {
        let span = tracing::debug_span!("family", family_id = %self.family_id, inputs = message.inputs.len());
        let _entered = span.enter();
        let environment = self.environment.clone();
        let started = std::time::Instant::now();
        // Taken, not copied: after a panic the actor stops and is activated
        // again from the store.
        let existing = self.record.take();
        let family_id = self.family_id.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            failpoint(&message.inputs);
            let rules = environment.rules();
            let reply_code = reply_code_of(&environment.store);
            process(
                existing,
                &family_id,
                &message.inputs,
                &rules,
                &environment.settings,
                environment.clock.now(),
                &reply_code,
            )
        }));
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "unknown panic".to_owned());
                tracing::error!(family_id = %self.family_id, %reason, "family handler panicked; stopping the actor");
                ctx.stop();
                return Err(FamilyError::Panicked(reason));
            }
        };
        for (seq, reason) in &outcome.ignored {
            tracing::debug!(family_id = %self.family_id, seq, %reason, "input changed nothing");
            environment.metrics.inc("dfm_inputs_ignored_total", &[]);
        }
        if outcome.applied > 0 {
            environment.metrics.inc("dfm_reevaluations_total", &[]);
        }
        environment
            .metrics
            .observe("dfm_family_process_seconds", &[], started.elapsed());
        // The new state is kept at once; the dispatcher writes every family of the
        // batch in one commit, and if that fails it stops these actors so
        // that they are re-activated from what is on disk.
        self.record = Some(outcome.record);
        Ok(outcome.commit)
    }
}

impl Handler<GetRecord> for FamilyActor {
    type Result = Option<FamilyRecord>;

    fn handle(&mut self, _: GetRecord, _: &mut Context<Self>) -> Self::Result {
        self.record.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::{Duration, NaiveDate, TimeZone};
    use proptest::prelude::*;
    use storage::event::{parse_event, ReplyAnswer, TimerKind};
    use storage::ids::Sex;
    use storage::money::Money;
    use storage::record::Level;

    use super::*;

    pub(super) fn rules() -> Rules {
        Rules::load(
            Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../config/programs.toml"
            )),
            2026,
        )
        .expect("the shipped catalogue loads")
    }

    pub(super) fn settings() -> Settings {
        Settings {
            reply_window: chrono::Duration::hours(72),
            reminder_after: chrono::Duration::hours(48),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 9, 0, 0).unwrap()
    }

    fn family_id() -> FamilyId {
        FamilyId::parse("fam-1").unwrap()
    }

    fn phone() -> Phone {
        Phone::parse("+77011234567").unwrap()
    }

    /// The first IIN with a check digit for this birth day and sex.
    pub(super) fn iin(birth: &str, sex: Sex) -> Iin {
        let birth: NaiveDate = birth.parse().unwrap();
        (1..100)
            .find_map(|serial| Iin::from_parts(birth, sex, serial))
            .expect("some serial has a check digit")
    }

    fn head() -> Iin {
        iin("1985-02-02", Sex::Female)
    }

    fn children() -> [Iin; 4] {
        [
            iin("2010-05-01", Sex::Male),
            iin("2012-06-02", Sex::Female),
            iin("2015-07-03", Sex::Male),
            iin("2018-08-04", Sex::Female),
        ]
    }

    fn event(id: &str, kind: &str, data: serde_json::Value) -> FamilyInput {
        FamilyInput::Feed(
            parse_event(serde_json::json!({
                "id": id,
                "type": kind,
                "occurred_at": "2026-03-01T08:00:00Z",
                "data": data,
            }))
            .expect("a valid event"),
        )
    }

    /// A working mother with a phone, four children of school age, in Karaganda: eligible
    /// for the large-family benefit and nothing else.
    fn large_family() -> Vec<(u64, FamilyInput)> {
        let mut inputs = vec![FamilyInput::Attach {
            iin: head(),
            role: Role::Head,
            orphan: None,
        }];
        for child in children() {
            inputs.push(FamilyInput::Attach {
                iin: child,
                role: Role::Child,
                orphan: None,
            });
        }
        let head = head().to_string();
        inputs.push(event(
            "address-1",
            "family.address_changed",
            serde_json::json!({"family_id": "fam-1", "region": "KZ-35", "locality": "urban"}),
        ));
        inputs.push(event(
            "employment-1",
            "employment.changed",
            serde_json::json!({"iin": head, "status": "employed"}),
        ));
        for (index, month) in ["2025-12", "2026-01", "2026-02"].into_iter().enumerate() {
            inputs.push(event(
                &format!("income-{index}"),
                "income.reported",
                serde_json::json!({
                    "iin": head, "month": month, "amount": "900000", "source": "salary"
                }),
            ));
        }
        inputs.push(event(
            "contact-1",
            "citizen.contact_changed",
            serde_json::json!({"iin": head, "phone": "+77011234567"}),
        ));
        inputs
            .into_iter()
            .enumerate()
            .map(|(index, input)| (u64::try_from(index).unwrap() + 1, input))
            .collect()
    }

    pub(super) fn no_codes_taken(_: &Phone, entitlement_id: &str, own: &BTreeSet<u16>) -> u16 {
        pick_code(entitlement_id, own)
    }

    fn run(existing: Option<FamilyRecord>, inputs: &[(u64, FamilyInput)]) -> Outcome {
        process(
            existing,
            &family_id(),
            inputs,
            &rules(),
            &settings(),
            now(),
            &no_codes_taken,
        )
    }

    fn large_family_entitlement(record: &FamilyRecord) -> &Entitlement {
        let mut found = record
            .entitlements
            .iter()
            .filter(|e| e.program == "large_family");
        let entitlement = found.next().expect("a large_family entitlement");
        assert!(found.next().is_none(), "one large_family entitlement");
        entitlement
    }

    #[test]
    fn four_children_and_a_phone_get_the_large_family_benefit_offered() {
        let inputs = large_family();
        let outcome = run(None, &inputs);
        assert_eq!(outcome.applied, inputs.len());
        assert_eq!(outcome.ignored, []);
        let record = &outcome.record;
        assert_eq!(record.applied_seq, 11);
        assert_eq!(record.members.len(), 5);
        let entitlement = large_family_entitlement(record);
        let id = "fam-1-large_family-1";
        assert_eq!(entitlement.id, id);
        assert_eq!(entitlement.state, EntitlementState::Offered);
        assert_eq!(entitlement.recipient, head());
        // 16.03 MCI × 4325 KZT.
        assert_eq!(entitlement.amount, Money::parse("69329.75").unwrap());
        assert!(!entitlement.one_off);
        assert_eq!(entitlement.offers, 1);
        assert_eq!(entitlement.offered_at, Some(now()));
        assert_eq!(entitlement.code, pick_code(id, &BTreeSet::new()));
        // Nothing else is offered to this family.
        let programs: Vec<&str> = record
            .entitlements
            .iter()
            .map(|e| e.program.as_str())
            .collect();
        assert_eq!(programs, ["large_family"]);

        let commit = &outcome.commit;
        assert_eq!(commit.record, Some(EncodedFamily::of(record)));
        let sms: Vec<(&str, &Phone)> = commit
            .sms
            .iter()
            .map(|order| (order.reference.as_str(), &order.to))
            .collect();
        assert_eq!(sms, [("fam-1-large_family-1-offer-1", &phone())]);
        assert_eq!(commit.sms[0].family_id, Some(family_id()));
        assert!(
            commit.sms[0].text.contains(&entitlement.code.to_string()),
            "the offer quotes the code: {}",
            commit.sms[0].text
        );
        assert_eq!(
            commit.requests_opened,
            [(
                phone(),
                OpenRequest {
                    family_id: family_id(),
                    entitlement_id: id.to_owned(),
                    code: entitlement.code,
                }
            )]
        );
        let timer = |kind, after: Duration| TimerRecord {
            due_at: now() + after,
            family_id: family_id(),
            entitlement_id: id.to_owned(),
            kind,
        };
        assert_eq!(
            commit.timers_put,
            [
                timer(TimerKind::Reminder, Duration::hours(48)),
                timer(TimerKind::Expiry, Duration::hours(72)),
            ]
        );
        assert_eq!(commit.timers_removed, []);
        assert_eq!(commit.requests_closed, []);
        assert_eq!(commit.payments, []);
        assert_eq!(commit.payments_settled, Vec::<String>::new());
        let mut taken: Vec<Iin> = commit.orphans_taken.clone();
        taken.sort();
        let mut members: Vec<Iin> = record.members.iter().map(|m| m.facts.iin).collect();
        members.sort();
        assert_eq!(taken, members);
        assert_eq!(commit.monthly, Some(false));

        let level = record.evaluation.as_ref().expect("evaluated").level;
        let mut expected = BTreeMap::new();
        expected.insert(counter::FAMILIES.to_owned(), 1);
        expected.insert(counter::CITIZENS.to_owned(), 5);
        expected.insert(counter::level(level), 1);
        expected.insert(
            counter::region_level(Some(storage::ids::Region::Karaganda), level),
            1,
        );
        expected.insert(counter::state(EntitlementState::Offered), 1);
        assert_eq!(commit.counters, expected);
    }

    #[test]
    fn replaying_applied_inputs_changes_nothing() {
        let inputs = large_family();
        let first = run(None, &inputs);
        let again = run(Some(first.record.clone()), &inputs);
        assert_eq!(again.applied, 0);
        assert_eq!(again.ignored, []);
        assert_eq!(again.record, first.record);
        let commit = &again.commit;
        assert_eq!(commit.record, Some(EncodedFamily::of(&first.record)));
        assert!(commit.counters.is_empty(), "{:?}", commit.counters);
        assert!(commit.sms.is_empty());
        assert!(commit.payments.is_empty());
        assert!(commit.timers_put.is_empty());
        assert!(commit.timers_removed.is_empty());
        assert!(commit.requests_opened.is_empty());
        assert!(commit.requests_closed.is_empty());
        assert!(commit.orphans_taken.is_empty());
        assert!(commit.orphans_put.is_empty());
        assert_eq!(commit.monthly, Some(false));

        // A prefix replayed onto the full record is skipped too.
        let prefix = run(Some(first.record.clone()), &inputs[..3]);
        assert_eq!(prefix.applied, 0);
        assert_eq!(prefix.record, first.record);
    }

    #[test]
    fn a_replayed_batch_with_a_new_input_applies_only_the_new_one() {
        let inputs = large_family();
        let first = run(None, &inputs);
        let id = "fam-1-large_family-1".to_owned();
        let code = large_family_entitlement(&first.record).code;
        let mut batch = inputs.clone();
        batch.push((
            12,
            FamilyInput::Internal(LogEntry::SmsReply {
                family_id: family_id(),
                entitlement_id: id.clone(),
                answer: ReplyAnswer::Consent(PayoutChoice::SocialWallet),
                received_at: now() + Duration::hours(1),
            }),
        ));
        let second = run(Some(first.record.clone()), &batch);
        assert_eq!(second.applied, 1);
        assert_eq!(second.record.applied_seq, 12);
        let entitlement = large_family_entitlement(&second.record);
        assert_eq!(entitlement.state, EntitlementState::Consented);
        let commit = &second.commit;
        let reference = "fam-1-large_family-1-2026-03-1";
        let orders: Vec<(&str, &str, &str, Money)> = commit
            .payments
            .iter()
            .map(|order| {
                (
                    order.reference_id.as_str(),
                    order.payee_fa.as_str(),
                    order.purpose.as_str(),
                    order.amount,
                )
            })
            .collect();
        let payee = format!("{}@social-wallet", head());
        assert_eq!(
            orders,
            [(
                reference,
                payee.as_str(),
                "large_family 2026-03",
                Money::parse("69329.75").unwrap()
            )]
        );
        assert_eq!(
            commit.requests_closed,
            [(
                phone(),
                OpenRequest {
                    family_id: family_id(),
                    entitlement_id: id.clone(),
                    code,
                }
            )]
        );
        let removed: Vec<TimerKind> = commit.timers_removed.iter().map(|t| t.kind).collect();
        assert_eq!(removed, [TimerKind::Reminder, TimerKind::Expiry]);
        assert!(commit.timers_put.is_empty() && commit.sms.is_empty());
        let mut expected = BTreeMap::new();
        expected.insert(counter::state(EntitlementState::Offered), -1);
        expected.insert(counter::state(EntitlementState::Consented), 1);
        assert_eq!(commit.counters, expected);
        assert_eq!(commit.monthly, Some(false));

        // The bank's success makes it active and puts the family in the monthly cycle;
        // the same answer replayed later is skipped by its sequence number.
        let outcome = (
            13,
            FamilyInput::Internal(LogEntry::PaymentOutcome {
                family_id: family_id(),
                reference_id: reference.to_owned(),
                succeeded: true,
                reason: None,
            }),
        );
        let third = run(Some(second.record.clone()), std::slice::from_ref(&outcome));
        assert_eq!(
            large_family_entitlement(&third.record).state,
            EntitlementState::Active
        );
        assert_eq!(third.commit.payments_settled, [reference.to_owned()]);
        assert_eq!(third.commit.monthly, Some(true));
        assert_eq!(
            third.commit.counters.get(counter::PAID_TOTAL_TIYN),
            Some(&6_932_975)
        );
        let replayed = run(Some(third.record.clone()), &[outcome]);
        assert_eq!(replayed.applied, 0);
        assert_eq!(replayed.record, third.record);
        assert!(replayed.commit.payments_settled.is_empty());
    }

    fn offer_large_family(family: &str, store: &Store) -> Outcome {
        process(
            None,
            &FamilyId::parse(family).unwrap(),
            &large_family(),
            &rules(),
            &settings(),
            now(),
            &reply_code_of(store),
        )
    }

    #[test]
    fn the_new_request_avoids_codes_the_phone_already_uses() {
        let store = Store::open_temporary().unwrap();
        let id = "fam-1-large_family-1";
        let natural = pick_code(id, &BTreeSet::new());
        let other = OpenRequest {
            family_id: FamilyId::parse("fam-9").unwrap(),
            entitlement_id: "fam-9-tsa-1".to_owned(),
            code: natural,
        };
        store
            .commit_family(&FamilyCommit {
                requests_opened: vec![(phone(), other)],
                ..FamilyCommit::default()
            })
            .unwrap();
        let outcome = offer_large_family("fam-1", &store);
        let entitlement = large_family_entitlement(&outcome.record);
        assert_ne!(entitlement.code, natural);
        assert_eq!(
            entitlement.code,
            pick_code(id, &[natural].into_iter().collect())
        );
        assert_eq!(outcome.commit.requests_opened[0].1.code, entitlement.code);
    }

    /// Two families that share a phone and whose entitlement ids pick the same
    /// code are applied before either is written (one batch, or one batch
    /// while the last one's commit is under way): their codes still differ.
    #[test]
    fn families_sharing_a_phone_get_different_codes_before_either_is_written() {
        let store = Store::open_temporary().unwrap();
        let natural = pick_code("fam-1-large_family-1", &BTreeSet::new());
        let twin = (2..1_000_000)
            .map(|n| format!("fam-{n}"))
            .find(|family| {
                pick_code(&format!("{family}-large_family-1"), &BTreeSet::new()) == natural
            })
            .expect("some family id hashes to the same code");
        let first = offer_large_family("fam-1", &store);
        let second = offer_large_family(&twin, &store);
        let code = |outcome: &Outcome| outcome.commit.requests_opened[0].1.code;
        assert_eq!(code(&first), natural);
        assert_ne!(code(&second), natural);
        assert_eq!(store.reserved_reply_codes(), 2);
        // A retry of the first picks its own code again.
        assert_eq!(code(&offer_large_family("fam-1", &store)), natural);
        // Written, the requests are in the tree and their reservations go.
        store.commit_family(&first.commit).unwrap();
        assert_eq!(store.reserved_reply_codes(), 1);
        store.commit_family(&second.commit).unwrap();
        assert_eq!(store.reserved_reply_codes(), 0);
        let mut codes: Vec<u16> = store
            .open_requests(&phone())
            .unwrap()
            .iter()
            .map(|request| request.code)
            .collect();
        codes.sort_unstable();
        let mut expected = vec![code(&first), code(&second)];
        expected.sort_unstable();
        assert_eq!(codes, expected);
    }

    #[test]
    fn without_a_phone_the_benefit_waits_for_one() {
        let mut inputs = large_family();
        inputs.pop();
        let outcome = run(None, &inputs);
        let entitlement = large_family_entitlement(&outcome.record);
        assert_eq!(entitlement.state, EntitlementState::NoContact);
        assert!(outcome.commit.sms.is_empty());
        assert!(outcome.commit.requests_opened.is_empty());
        assert!(outcome.commit.timers_put.is_empty());
        assert_eq!(
            outcome
                .commit
                .counters
                .get(&counter::state(EntitlementState::NoContact)),
            Some(&1)
        );
        // The phone arrives: the same entitlement is offered, no second one is made.
        let contact = (
            20,
            event(
                "contact-1",
                "citizen.contact_changed",
                serde_json::json!({"iin": head().to_string(), "phone": "+77011234567"}),
            ),
        );
        let later = run(Some(outcome.record.clone()), &[contact]);
        let entitlement = large_family_entitlement(&later.record);
        assert_eq!(entitlement.id, "fam-1-large_family-1");
        assert_eq!(entitlement.state, EntitlementState::Offered);
        assert_eq!(later.commit.sms.len(), 1);
        let mut expected = BTreeMap::new();
        expected.insert(counter::state(EntitlementState::NoContact), -1);
        expected.insert(counter::state(EntitlementState::Offered), 1);
        assert_eq!(later.commit.counters, expected);
    }

    #[test]
    fn an_input_for_someone_else_is_ignored_with_a_reason() {
        let stranger = iin("1990-01-01", Sex::Male).to_string();
        let inputs = [(
            1,
            event(
                "contact-9",
                "citizen.contact_changed",
                serde_json::json!({"iin": stranger, "phone": "+77011234567"}),
            ),
        )];
        let outcome = run(None, &inputs);
        assert_eq!(outcome.applied, 1);
        assert_eq!(outcome.ignored.len(), 1);
        assert_eq!(outcome.ignored[0].0, 1);
        assert!(
            outcome.ignored[0].1.contains("is not a member"),
            "{:?}",
            outcome.ignored
        );
        assert_eq!(outcome.record.applied_seq, 1);
    }

    #[test]
    fn pick_code_is_stable_and_moves_past_taken_codes() {
        fn taken(codes: &[u16]) -> BTreeSet<u16> {
            codes.iter().copied().collect()
        }
        let id = "fam-1-large_family-1";
        let natural = pick_code(id, &taken(&[]));
        assert!((1000..=9999).contains(&natural));
        assert_eq!(pick_code(id, &taken(&[])), natural, "deterministic");
        // Pinned: the FNV-1a hash must not change between builds, or a replay after an
        // upgrade would pick another code than the SMS already sent quoted.
        // The offset basis alone (0x811c9dc5 % 9000 = 7261), and FNV-1a("a") = 0xe40c292c.
        assert_eq!(pick_code("", &taken(&[])), 8261);
        assert_eq!(pick_code("a", &taken(&[])), 4220);
        assert_eq!(natural, 4538);
        let next = |code: u16| if code == 9999 { 1000 } else { code + 1 };
        assert_eq!(pick_code(id, &taken(&[natural])), next(natural));
        assert_eq!(
            pick_code(id, &taken(&[natural, next(natural)])),
            next(next(natural))
        );
        // Codes taken elsewhere do not matter.
        assert_eq!(pick_code(id, &taken(&[next(natural)])), natural);
        // The only free code is found, wherever it is.
        let all_but =
            |free: u16| -> BTreeSet<u16> { (1000..=9999).filter(|c| *c != free).collect() };
        for free in [1000, 1234, 9999, natural] {
            assert_eq!(pick_code(id, &all_but(free)), free);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn pick_code_never_returns_a_taken_code(
            id in "[a-z0-9_-]{1,40}",
            taken in proptest::collection::btree_set(1000u16..=9999, 0..200),
            dense_from in 1000u16..=9999,
            dense_count in 0u16..300,
        ) {
            // Some random codes, and a run of consecutive ones to walk past (wrapping).
            let mut taken = taken;
            for step in 0..dense_count {
                taken.insert(1000 + (dense_from - 1000 + step) % 9000);
            }
            let code = pick_code(&id, &taken);
            prop_assert!((1000..=9999).contains(&code));
            prop_assert!(!taken.contains(&code));
            prop_assert_eq!(pick_code(&id, &taken), code);
        }
    }

    #[test]
    fn the_family_is_scored() {
        let outcome = run(None, &large_family());
        let evaluation = outcome.record.evaluation.expect("evaluated");
        assert!(Level::ALL.contains(&evaluation.level));
        assert_eq!(evaluation.evaluated_at, now());
        assert!(outcome
            .record
            .history
            .iter()
            .any(|entry| entry.what == "eligible for large_family"));
    }
}

#[cfg(test)]
mod childcare_term {
    use chrono::TimeZone;
    use storage::event::{parse_event, ReplyAnswer};
    use storage::ids::Sex;

    use super::tests::{iin, rules, settings};
    use super::*;

    fn step(record: Option<FamilyRecord>, seq: u64, input: FamilyInput) -> Outcome {
        let rules = rules();
        let settings = settings();
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 9, 0, 0).unwrap();
        process(
            record,
            &"fam-care".parse().unwrap(),
            &[(seq, input)],
            &rules,
            &settings,
            now,
            &super::tests::no_codes_taken,
        )
    }

    fn childcare(record: &FamilyRecord) -> Vec<&Entitlement> {
        record
            .entitlements
            .iter()
            .filter(|e| e.program == "childcare_allowance")
            .collect()
    }

    /// The child turns 18 months on 25 March: March is the last month. After
    /// March is paid and the April cycle ends the term, a re-evaluation the same
    /// day must not offer (and pay) March again.
    #[test]
    fn a_finished_term_is_not_offered_and_paid_again() {
        let mother = iin("1990-01-15", Sex::Female);
        let baby = iin("2024-09-25", Sex::Male);
        let feed = |id: &str, kind: &str, data: serde_json::Value| {
            FamilyInput::Feed(
                parse_event(serde_json::json!({"id": id, "type": kind, "occurred_at": "2026-03-01T08:00:00Z", "data": data}))
                    .unwrap(),
            )
        };
        let mut record = None;
        let inputs = vec![
            FamilyInput::Attach {
                iin: mother,
                role: Role::Head,
                orphan: None,
            },
            FamilyInput::Attach {
                iin: baby,
                role: Role::Child,
                orphan: None,
            },
            feed(
                "c",
                "citizen.contact_changed",
                serde_json::json!({"iin": mother.to_string(), "phone": "+77011234567"}),
            ),
        ];
        for (index, input) in inputs.into_iter().enumerate() {
            record = Some(step(record, index as u64 + 1, input).record);
        }
        let offered = childcare(record.as_ref().unwrap());
        assert_eq!(
            offered.len(),
            1,
            "{:?}",
            record.as_ref().unwrap().entitlements
        );
        assert_eq!(offered[0].last_month, Some("2026-03".parse().unwrap()));
        let id = offered[0].id.clone();
        let at = Utc.with_ymd_and_hms(2026, 3, 10, 10, 0, 0).unwrap();
        let family_id: FamilyId = "fam-care".parse().unwrap();
        let reply = FamilyInput::Internal(LogEntry::SmsReply {
            family_id: family_id.clone(),
            entitlement_id: id.clone(),
            answer: ReplyAnswer::Consent(PayoutChoice::SocialWallet),
            received_at: at,
        });
        let outcome = step(record, 10, reply);
        assert_eq!(outcome.commit.payments.len(), 1);
        let reference = outcome.commit.payments[0].reference_id.clone();
        let paid = FamilyInput::Internal(LogEntry::PaymentOutcome {
            family_id: family_id.clone(),
            reference_id: reference,
            succeeded: true,
            reason: None,
        });
        let outcome = step(Some(outcome.record), 11, paid);
        let cycle = FamilyInput::Internal(LogEntry::CycleDue {
            family_id: family_id.clone(),
            month: "2026-04".parse().unwrap(),
        });
        let outcome = step(Some(outcome.record), 12, cycle);
        assert_eq!(childcare(&outcome.record)[0].state, EntitlementState::Ended);
        let again = FamilyInput::Internal(LogEntry::Operator {
            family_id,
            operator: "test".to_owned(),
            action: OperatorAction::Reevaluate,
            at,
        });
        let outcome = step(Some(outcome.record), 13, again);
        assert_eq!(
            childcare(&outcome.record).len(),
            1,
            "no second childcare entitlement"
        );
        assert!(outcome.commit.sms.is_empty());
    }
}

#[cfg(test)]
mod per_person {
    use chrono::TimeZone;
    use storage::event::parse_event;
    use storage::ids::Sex;

    use super::tests::{iin, rules, settings};
    use super::*;

    /// Two members with a disability: two entitlements, one to each of them.
    #[test]
    fn each_member_with_a_disability_gets_an_entitlement() {
        let rules = rules();
        let settings = settings();
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 9, 0, 0).unwrap();
        let head = iin("1970-04-04", Sex::Male);
        let spouse = iin("1972-05-05", Sex::Female);
        let feed = |id: &str, kind: &str, data: serde_json::Value| {
            FamilyInput::Feed(
                parse_event(serde_json::json!({"id": id, "type": kind, "occurred_at": "2026-03-01T08:00:00Z", "data": data}))
                    .unwrap(),
            )
        };
        let inputs: Vec<(u64, FamilyInput)> = vec![
            FamilyInput::Attach {
                iin: head,
                role: Role::Head,
                orphan: None,
            },
            FamilyInput::Attach {
                iin: spouse,
                role: Role::Spouse,
                orphan: None,
            },
            feed(
                "d1",
                "disability.assessed",
                serde_json::json!({"iin": head.to_string(), "group": "2", "until": null}),
            ),
            feed(
                "d2",
                "disability.assessed",
                serde_json::json!({"iin": spouse.to_string(), "group": "3", "until": null}),
            ),
            feed(
                "p1",
                "citizen.contact_changed",
                serde_json::json!({"iin": head.to_string(), "phone": "+77011230001"}),
            ),
            feed(
                "p2",
                "citizen.contact_changed",
                serde_json::json!({"iin": spouse.to_string(), "phone": "+77011230002"}),
            ),
        ]
        .into_iter()
        .enumerate()
        .map(|(index, input)| (index as u64 + 1, input))
        .collect();
        let outcome = process(
            None,
            &"fam-two".parse().unwrap(),
            &inputs,
            &rules,
            &settings,
            now,
            &super::tests::no_codes_taken,
        );
        let disability: Vec<&Entitlement> = outcome
            .record
            .entitlements
            .iter()
            .filter(|e| e.program == "disability")
            .collect();
        assert_eq!(disability.len(), 2);
        let recipients: BTreeSet<Iin> = disability.iter().map(|e| e.recipient).collect();
        assert_eq!(recipients, BTreeSet::from([head, spouse]));
        assert!(disability
            .iter()
            .all(|e| e.state == EntitlementState::Offered));
        // 1.20 and 0.80 × 50,851.
        let mut amounts: Vec<String> = disability.iter().map(|e| e.amount.to_string()).collect();
        amounts.sort();
        assert_eq!(amounts, vec!["40680.80", "61021.20"]);
    }
}
