//! The family actor: one per active family. It holds the family's record, applies
//! its inputs in log order, re-evaluates score and eligibility, runs the
//! entitlement machine and writes everything in one transaction before it hands
//! SMS to the notifier and payments to the bank gateway.
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
use storage::ids::{FamilyId, Iin, Phone};
use storage::record::{
    CitizenFacts, Entitlement, EntitlementState, FamilyRecord, PaymentStatus, PayoutChoice, Review,
    Role,
};
use storage::store::{counter, FamilyCommit, OpenRequest, PaymentOrder, SmsOrder, TimerRecord};
use storage::Store;

use crate::apply;
use crate::bank::{BankGateway, Disburse};
use crate::clock::Clock;
use crate::entitlement::{self, Command, Notice, Recipient, Settings};
use crate::metrics::Metrics;
use crate::notifier::{Notifier, SendSms};
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
    taken_codes: &'a dyn Fn(&Phone) -> BTreeSet<u16>,
}

/// Applies a batch of inputs to a family, pure but for `taken_codes` (a read of
/// the phone index). Inputs at or below the record's `applied_seq` are skipped.
pub fn process(
    existing: Option<FamilyRecord>,
    family_id: &FamilyId,
    inputs: &[(u64, FamilyInput)],
    rules: &Rules,
    settings: &Settings,
    now: DateTime<Utc>,
    taken_codes: &dyn Fn(&Phone) -> BTreeSet<u16>,
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
        taken_codes,
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
    commit.record = Some(record.clone());
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
        let award = decision.award.as_ref().filter(|_| decision.eligible);
        // Open entitlements of this program that today's decision no longer covers.
        for index in 0..record.entitlements.len() {
            let entitlement = &record.entitlements[index];
            if entitlement.program != decision.code || !entitlement.state.is_open() {
                continue;
            }
            let covered = award.is_some_and(|award| {
                award.recipient == entitlement.recipient
                    && (!entitlement.one_off || award.occasion == entitlement.occasion)
            }) && living.contains(&entitlement.recipient);
            let recipient = recipient_of(record, &entitlement.recipient);
            let entitlement = &mut record.entitlements[index];
            let produced = entitlement::on_eligibility(
                entitlement,
                if covered { award } else { None },
                &recipient,
                step.settings,
                step.now,
            );
            let id = entitlement.id.clone();
            commands.extend(produced.into_iter().map(|c| (id.clone(), c)));
        }
        let Some(award) = award else { continue };
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
        let id = format!(
            "{}-{}-{}",
            record.family_id, decision.code, record.next_entitlement_number
        );
        record.next_entitlement_number += 1;
        let recipient = recipient_of(record, &award.recipient);
        let mut taken = recipient
            .phone
            .as_ref()
            .map(|phone| (step.taken_codes)(phone))
            .unwrap_or_default();
        taken.extend(
            record
                .entitlements
                .iter()
                .filter(|e| e.state == EntitlementState::Offered)
                .map(|e| e.code),
        );
        let code = pick_code(&id, &taken);
        let mut entitlement =
            entitlement::create(id.clone(), &decision.code, award, code, step.now);
        let produced = entitlement::offer(&mut entitlement, &recipient, step.settings, step.now);
        commands.extend(produced.into_iter().map(|c| (id.clone(), c)));
        record.entitlements.push(entitlement);
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

/// Turns the machine's commands into the transaction's side-table writes.
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

/// Apply inputs in order; answers once they are written (not yet flushed).
#[derive(Message)]
#[rtype(result = "Result<usize, FamilyError>")]
pub struct Apply {
    pub inputs: Vec<(u64, FamilyInput)>,
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
    type Result = ResponseActFuture<Self, Result<usize, FamilyError>>;

    fn handle(&mut self, message: Apply, ctx: &mut Context<Self>) -> Self::Result {
        let span = tracing::debug_span!("family", family_id = %self.family_id, inputs = message.inputs.len());
        let _entered = span.enter();
        let environment = self.environment.clone();
        let existing = self.record.clone();
        let family_id = self.family_id.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            failpoint(&message.inputs);
            let rules = environment.rules();
            let store = environment.store.clone();
            let taken = move |phone: &Phone| -> BTreeSet<u16> {
                store
                    .open_requests(phone)
                    .map(|requests| requests.into_iter().map(|r| r.code).collect())
                    .unwrap_or_default()
            };
            process(
                existing,
                &family_id,
                &message.inputs,
                &rules,
                &environment.settings,
                environment.clock.now(),
                &taken,
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
                return Box::pin(fut::ready(Err(FamilyError::Panicked(reason))));
            }
        };
        for (seq, reason) in &outcome.ignored {
            tracing::debug!(family_id = %self.family_id, seq, %reason, "input changed nothing");
            environment.metrics.inc("dfm_inputs_ignored_total", &[]);
        }
        if outcome.applied > 0 {
            environment.metrics.inc("dfm_reevaluations_total", &[]);
        }
        if let Err(error) = environment.store.commit_family(&outcome.commit) {
            tracing::error!(family_id = %self.family_id, %error, "could not write the family");
            return Box::pin(fut::ready(Err(FamilyError::Store(error.to_string()))));
        }
        let applied = outcome.applied;
        self.record = Some(outcome.record);
        let sms = outcome.commit.sms;
        let payments = outcome.commit.payments;
        let notifier = environment.notifier.clone();
        let bank = environment.bank.clone();
        let (sms, payments) = if environment.outbound {
            (sms, payments)
        } else {
            (Vec::new(), Vec::new())
        };
        Box::pin(
            async move {
                // Bounded mailboxes: waiting here slows the dispatcher down instead
                // of growing a queue without limit.
                for order in sms {
                    let _ = notifier.send(SendSms(order)).await;
                }
                for order in payments {
                    let _ = bank.send(Disburse(order)).await;
                }
                Ok(applied)
            }
            .into_actor(self),
        )
    }
}

impl Handler<GetRecord> for FamilyActor {
    type Result = Option<FamilyRecord>;

    fn handle(&mut self, _: GetRecord, _: &mut Context<Self>) -> Self::Result {
        self.record.clone()
    }
}
