//! The consent-then-payout state machine of one entitlement, pure:
//! `(entitlement, input, now) -> commands`. The family actor executes the commands
//! (the SMS outbox, the phone index, timers, the payment outbox) in the same
//! commit that stores the new state.
//!
//! Invariants, asserted here and property-tested below:
//! - nothing is paid without consent;
//! - one period of one entitlement has at most one payment that is pending or
//!   succeeded, so it is never paid twice; a new attempt (a new reference) exists
//!   only after the previous one was rejected;
//! - references are derived from the entitlement, the period and the attempt, so
//!   replaying the same inputs after a crash gives the same references.

use chrono::{DateTime, Duration, Utc};
use storage::event::{ReplyAnswer, TimerKind};
use storage::ids::{Iban, Iin, Month, Phone};
use storage::money::Money;
use storage::record::{
    AwardDecision, Entitlement, EntitlementState, Payment, PaymentStatus, PayoutChoice,
};

/// What the machine needs to know about the recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub iin: Iin,
    pub phone: Option<Phone>,
    pub iban: Option<Iban>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub reply_window: Duration,
    pub reminder_after: Duration,
}

/// The SMS the machine asks for; the actor renders the words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Notice {
    Offer,
    Reminder,
    Ended,
    PaymentFailed,
    AccountNeeded,
    Paid,
}

impl Notice {
    pub fn as_str(self) -> &'static str {
        match self {
            Notice::Offer => "offer",
            Notice::Reminder => "reminder",
            Notice::Ended => "ended",
            Notice::PaymentFailed => "payment-failed",
            Notice::AccountNeeded => "account-needed",
            Notice::Paid => "paid",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `reference` is unique per message and stable across replays.
    Sms {
        to: Phone,
        notice: Notice,
        reference: String,
    },
    OpenRequest {
        phone: Phone,
        code: u16,
    },
    CloseRequest {
        phone: Phone,
        code: u16,
    },
    SetTimer {
        kind: TimerKind,
        due_at: DateTime<Utc>,
    },
    CancelTimer {
        kind: TimerKind,
        due_at: DateTime<Utc>,
    },
    /// Put this payment in the outbox; the bank gateway sends it.
    Pay(Payment),
    /// The bank's answer for this reference is recorded; drop it from the outbox.
    Settle {
        reference_id: String,
    },
}

/// A new entitlement for an eligible family. `code` must differ from the codes of
/// the phone's other open requests.
pub fn create(
    id: String,
    program: &str,
    award: &AwardDecision,
    code: u16,
    now: DateTime<Utc>,
) -> Entitlement {
    Entitlement {
        id,
        program: program.to_owned(),
        recipient: award.recipient,
        state: EntitlementState::NoContact,
        amount: award.amount,
        next_amount: None,
        one_off: award.one_off,
        occasion: award.occasion,
        last_month: award.last_month,
        code,
        created_at: now,
        offered_at: None,
        offers: 0,
        reminded: false,
        answered_at: None,
        payout: None,
        first_month: None,
        not_before: None,
        payments: Vec::new(),
        reason: "eligible; no phone on file yet".to_owned(),
    }
}

/// Offers the entitlement by SMS, or leaves it `no_contact` without a phone.
pub fn offer(
    entitlement: &mut Entitlement,
    recipient: &Recipient,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Vec<Command> {
    let Some(phone) = recipient.phone.clone() else {
        entitlement.state = EntitlementState::NoContact;
        entitlement.reason = "eligible; no phone on file".to_owned();
        return Vec::new();
    };
    entitlement.offers += 1;
    entitlement.state = EntitlementState::Offered;
    entitlement.offered_at = Some(now);
    entitlement.reminded = false;
    entitlement.reason = "offered by SMS; waiting for the answer".to_owned();
    vec![
        Command::Sms {
            to: phone.clone(),
            notice: Notice::Offer,
            reference: format!("{}-offer-{}", entitlement.id, entitlement.offers),
        },
        Command::OpenRequest {
            phone,
            code: entitlement.code,
        },
        Command::SetTimer {
            kind: TimerKind::Reminder,
            due_at: now + settings.reminder_after,
        },
        Command::SetTimer {
            kind: TimerKind::Expiry,
            due_at: now + settings.reply_window,
        },
    ]
}

fn close_offer(
    entitlement: &Entitlement,
    recipient: &Recipient,
    settings: &Settings,
) -> Vec<Command> {
    let mut commands = Vec::new();
    if let Some(offered_at) = entitlement.offered_at {
        if let Some(phone) = &recipient.phone {
            commands.push(Command::CloseRequest {
                phone: phone.clone(),
                code: entitlement.code,
            });
        }
        commands.push(Command::CancelTimer {
            kind: TimerKind::Reminder,
            due_at: offered_at + settings.reminder_after,
        });
        commands.push(Command::CancelTimer {
            kind: TimerKind::Expiry,
            due_at: offered_at + settings.reply_window,
        });
    }
    commands
}

/// The recipient answered the SMS.
pub fn on_reply(
    entitlement: &mut Entitlement,
    answer: ReplyAnswer,
    recipient: &Recipient,
    settings: &Settings,
    received_at: DateTime<Utc>,
) -> Vec<Command> {
    if entitlement.state != EntitlementState::Offered {
        return Vec::new();
    }
    let mut commands = close_offer(entitlement, recipient, settings);
    entitlement.answered_at = Some(received_at);
    match answer {
        ReplyAnswer::Refuse => {
            entitlement.state = EntitlementState::Declined;
            entitlement.reason = "the recipient refused by SMS".to_owned();
        }
        ReplyAnswer::Consent(choice) => {
            entitlement.state = EntitlementState::Consented;
            entitlement.payout = Some(choice);
            entitlement.reason = "the recipient consented by SMS".to_owned();
            let period = if entitlement.one_off {
                entitlement
                    .occasion
                    .unwrap_or_else(|| Month::of(crate::scoring::local_date(received_at)))
            } else {
                let consented_in = Month::of(crate::scoring::local_date(received_at));
                let first = entitlement
                    .not_before
                    .map_or(consented_in, |floor| floor.max(consented_in));
                entitlement.first_month = Some(first);
                if entitlement.last_month.is_some_and(|last| last < first) {
                    // Every month of the term was already paid.
                    entitlement.state = EntitlementState::Ended;
                    entitlement.reason =
                        "every month of the term was already paid by an earlier offer".to_owned();
                    return commands;
                }
                if first > consented_in {
                    // The first payable month has not come yet: the monthly
                    // cycle pays it.
                    entitlement.state = EntitlementState::Active;
                    entitlement.reason =
                        format!("consented; paid from {first} by the monthly cycle");
                    return commands;
                }
                first
            };
            commands.extend(pay(entitlement, period, recipient, received_at));
        }
    }
    commands
}

/// A reminder or expiry timer fired.
pub fn on_timer(
    entitlement: &mut Entitlement,
    kind: TimerKind,
    recipient: &Recipient,
    settings: &Settings,
) -> Vec<Command> {
    if entitlement.state != EntitlementState::Offered {
        return Vec::new();
    }
    match kind {
        TimerKind::Reminder => {
            if entitlement.reminded {
                return Vec::new();
            }
            entitlement.reminded = true;
            match &recipient.phone {
                Some(phone) => vec![Command::Sms {
                    to: phone.clone(),
                    notice: Notice::Reminder,
                    reference: format!("{}-reminder-{}", entitlement.id, entitlement.offers),
                }],
                None => Vec::new(),
            }
        }
        TimerKind::Expiry => {
            let commands = close_offer(entitlement, recipient, settings);
            entitlement.state = EntitlementState::Expired;
            entitlement.reason = "no answer within the reply window".to_owned();
            commands
        }
    }
}

fn payee_for(choice: PayoutChoice, recipient: &Recipient) -> Option<String> {
    match choice {
        PayoutChoice::SocialWallet => Some(format!("{}@social-wallet", recipient.iin)),
        PayoutChoice::BankAccount => recipient
            .iban
            .as_ref()
            .map(|iban| format!("{}@{}", iban.as_str(), iban.bank_code())),
    }
}

/// The amount for one period, taking a changed monthly amount into account.
fn amount_for(entitlement: &mut Entitlement, period: Month) -> Money {
    if let Some((from, amount)) = entitlement.next_amount {
        if period >= from {
            entitlement.amount = amount;
            entitlement.next_amount = None;
        }
    }
    entitlement.amount
}

/// Starts the payment of one period: a new payment in the outbox, or
/// `payment_failed` waiting for an account when there is nowhere to pay.
fn pay(
    entitlement: &mut Entitlement,
    period: Month,
    recipient: &Recipient,
    now: DateTime<Utc>,
) -> Vec<Command> {
    let blocking = entitlement
        .payments
        .iter()
        .find(|payment| payment.period == period && payment.status != PaymentStatus::Rejected);
    if blocking.is_some() {
        // Already paid or in flight: paying again could pay twice.
        return Vec::new();
    }
    assert!(
        entitlement.payout.is_some(),
        "a payment is only ever started after consent"
    );
    let choice = entitlement.payout.unwrap_or(PayoutChoice::BankAccount);
    let Some(payee_fa) = payee_for(choice, recipient) else {
        entitlement.state = EntitlementState::PaymentFailed;
        entitlement.reason = "no bank account on file; waiting for one".to_owned();
        return notify(entitlement, recipient, Notice::AccountNeeded, period, now);
    };
    let attempt = entitlement
        .payments
        .iter()
        .filter(|payment| payment.period == period)
        .count() as u32
        + 1;
    let amount = amount_for(entitlement, period);
    let payment = Payment {
        period,
        attempt,
        reference_id: format!("{}-{}-{}", entitlement.id, period, attempt),
        amount,
        payee_fa,
        status: PaymentStatus::Pending,
        status_reason: None,
    };
    entitlement.payments.push(payment.clone());
    vec![Command::Pay(payment)]
}

fn notify(
    entitlement: &Entitlement,
    recipient: &Recipient,
    notice: Notice,
    period: Month,
    now: DateTime<Utc>,
) -> Vec<Command> {
    let _ = now;
    match &recipient.phone {
        Some(phone) => vec![Command::Sms {
            to: phone.clone(),
            notice,
            reference: format!(
                "{}-{}-{}-{}",
                entitlement.id,
                notice.as_str(),
                period,
                entitlement.payments.len()
            ),
        }],
        None => Vec::new(),
    }
}

/// The bank's final answer for one of this entitlement's payments.
pub fn on_payment_outcome(
    entitlement: &mut Entitlement,
    reference_id: &str,
    succeeded: bool,
    reason: Option<String>,
    recipient: &Recipient,
    now: DateTime<Utc>,
) -> Vec<Command> {
    let mut commands = vec![Command::Settle {
        reference_id: reference_id.to_owned(),
    }];
    let Some(payment) = entitlement
        .payments
        .iter_mut()
        .find(|payment| payment.reference_id == reference_id)
    else {
        return commands;
    };
    if payment.status != PaymentStatus::Pending {
        return commands;
    }
    let period = payment.period;
    if succeeded {
        payment.status = PaymentStatus::Succeeded;
        let still_failed = entitlement.state == EntitlementState::PaymentFailed
            && !unpaid_periods(entitlement, now).is_empty();
        if still_failed {
            // Another period was rejected and is still unpaid: the entitlement
            // keeps waiting for an account.
            entitlement.reason =
                format!("paid for {period}; an earlier period is still waiting for a new account");
        } else if matches!(
            entitlement.state,
            EntitlementState::Consented | EntitlementState::PaymentFailed
        ) {
            if entitlement.one_off {
                entitlement.state = EntitlementState::Paid;
                entitlement.reason = format!("paid for {period}");
            } else {
                entitlement.state = EntitlementState::Active;
                entitlement.reason = format!("being paid monthly; last paid {period}");
            }
        } else if entitlement.state == EntitlementState::Active {
            entitlement.reason = format!("being paid monthly; last paid {period}");
        }
    } else {
        payment.status = PaymentStatus::Rejected;
        payment.status_reason = reason.clone();
        if entitlement.state.is_open() {
            entitlement.state = EntitlementState::PaymentFailed;
            entitlement.reason = format!(
                "the bank rejected the payment for {period} ({}); waiting for a new account",
                reason.as_deref().unwrap_or("no reason given")
            );
            commands.extend(notify(
                entitlement,
                recipient,
                Notice::PaymentFailed,
                period,
                now,
            ));
        }
    }
    commands
}

/// A new bank account or a social wallet arrived: retry what failed.
pub fn on_account(
    entitlement: &mut Entitlement,
    prefer: PayoutChoice,
    recipient: &Recipient,
    now: DateTime<Utc>,
) -> Vec<Command> {
    if entitlement.state != EntitlementState::PaymentFailed {
        return Vec::new();
    }
    entitlement.payout = Some(prefer);
    let unpaid: Vec<Month> = unpaid_periods(entitlement, now);
    entitlement.state = EntitlementState::Consented;
    let mut commands = Vec::new();
    for period in unpaid {
        commands.extend(pay(entitlement, period, recipient, now));
    }
    if commands.is_empty() && entitlement.state == EntitlementState::Consented {
        // Nothing was left to pay: back to where the entitlement stood.
        entitlement.state = if entitlement.one_off {
            EntitlementState::Paid
        } else {
            EntitlementState::Active
        };
    }
    commands
}

/// Periods that were due by `now` and have no pending or successful payment: a
/// one-off's occasion; a monthly benefit's months from the first through this
/// month (or its last month), including months whose cycle ran while it waited
/// for an account.
fn unpaid_periods(entitlement: &Entitlement, now: DateTime<Utc>) -> Vec<Month> {
    let mut due: Vec<Month> = entitlement.payments.iter().map(|p| p.period).collect();
    if entitlement.one_off {
        due.extend(entitlement.occasion);
    } else if let Some(first) = entitlement.first_month {
        let mut last = Month::of(crate::scoring::local_date(now));
        if let Some(term) = entitlement.last_month {
            last = last.min(term);
        }
        let mut month = first;
        while month <= last {
            due.push(month);
            month = month.next();
        }
    }
    due.sort();
    due.dedup();
    due.retain(|period| {
        !entitlement
            .payments
            .iter()
            .any(|p| p.period == *period && p.status != PaymentStatus::Rejected)
    });
    due
}

/// The monthly cycle for `month` reached this entitlement.
pub fn on_cycle(
    entitlement: &mut Entitlement,
    month: Month,
    recipient: &Recipient,
    now: DateTime<Utc>,
) -> Vec<Command> {
    if entitlement.one_off || entitlement.state != EntitlementState::Active {
        return Vec::new();
    }
    let Some(first) = entitlement.first_month else {
        return Vec::new();
    };
    if month < first {
        return Vec::new();
    }
    if let Some(last) = entitlement.last_month {
        if month > last {
            entitlement.state = EntitlementState::Ended;
            entitlement.reason = format!("the benefit's term ended with {last}");
            return Vec::new();
        }
    }
    pay(entitlement, month, recipient, now)
}

/// Eligibility was re-evaluated: `award` is today's decision for this program and
/// recipient, `None` when the family is no longer eligible.
pub fn on_eligibility(
    entitlement: &mut Entitlement,
    award: Option<&AwardDecision>,
    recipient: &Recipient,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Vec<Command> {
    let today = Month::of(crate::scoring::local_date(now));
    match award {
        None => match entitlement.state {
            EntitlementState::Offered | EntitlementState::NoContact => {
                let commands = close_offer(entitlement, recipient, settings);
                entitlement.state = EntitlementState::Withdrawn;
                entitlement.reason = "eligibility lost before an answer".to_owned();
                commands
            }
            EntitlementState::Consented
            | EntitlementState::Active
            | EntitlementState::PaymentFailed
                if !entitlement.one_off =>
            {
                entitlement.state = EntitlementState::Ended;
                entitlement.reason = "eligibility lost".to_owned();
                notify(entitlement, recipient, Notice::Ended, today, now)
            }
            _ => Vec::new(),
        },
        Some(award) => {
            let mut commands = Vec::new();
            if !entitlement.one_off {
                match entitlement.state {
                    EntitlementState::Offered | EntitlementState::NoContact => {
                        entitlement.amount = award.amount;
                        entitlement.next_amount = None;
                    }
                    // A change applies from the next period; a change back
                    // cancels it.
                    _ if award.amount == entitlement.amount => entitlement.next_amount = None,
                    _ => entitlement.next_amount = Some((today.next(), award.amount)),
                }
            }
            entitlement.last_month = award.last_month;
            if entitlement.state == EntitlementState::NoContact && recipient.phone.is_some() {
                commands.extend(offer(entitlement, recipient, settings, now));
            }
            commands
        }
    }
}

/// An operator re-offers an expired or `no_contact` entitlement.
pub fn reoffer(
    entitlement: &mut Entitlement,
    recipient: &Recipient,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Vec<Command>, String> {
    match entitlement.state {
        EntitlementState::Expired | EntitlementState::NoContact => {
            Ok(offer(entitlement, recipient, settings, now))
        }
        other => Err(format!(
            "only expired or no_contact entitlements can be re-offered; this one is {}",
            other.as_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use chrono::{NaiveDate, TimeZone};
    use proptest::prelude::*;

    use super::*;

    const CODE: u16 = 4321;

    fn settings() -> Settings {
        Settings {
            reply_window: Duration::hours(72),
            reminder_after: Duration::hours(48),
        }
    }

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 9, 0, 0).unwrap()
    }

    fn iin() -> Iin {
        Iin::parse("061211600012").unwrap()
    }

    fn phone() -> Phone {
        Phone::parse("+77011234567").unwrap()
    }

    fn iban() -> Iban {
        Iban::parse("KZ86125KZT5004100100").unwrap()
    }

    fn month(text: &str) -> Month {
        Month::parse(text).unwrap()
    }

    /// One entitlement, its recipient, today's award and the clock: what the family actor
    /// holds and feeds the machine with.
    #[derive(Debug, Clone, PartialEq)]
    struct World {
        entitlement: Entitlement,
        recipient: Recipient,
        award: AwardDecision,
        now: DateTime<Utc>,
    }

    impl World {
        /// `setup` is words: `monthly` or `one-off` (occasion 2026-02), `phone`, `iban`,
        /// `last=<month>`, `amount=<KZT>` (100 when not given). The entitlement is created,
        /// not yet offered.
        fn new(setup: &str) -> World {
            let mut one_off = None;
            let mut recipient = Recipient {
                iin: iin(),
                phone: None,
                iban: None,
            };
            let mut amount = Money::from_kzt(100);
            let mut last_month = None;
            for word in setup.split_whitespace() {
                match word.split_once('=') {
                    None if word == "monthly" => one_off = Some(false),
                    None if word == "one-off" => one_off = Some(true),
                    None if word == "phone" => recipient.phone = Some(phone()),
                    None if word == "iban" => recipient.iban = Some(iban()),
                    Some(("last", value)) => last_month = Some(month(value)),
                    Some(("amount", value)) => amount = Money::parse(value).unwrap(),
                    _ => panic!("unknown setup word {word:?}"),
                }
            }
            let one_off = one_off.expect("setup says monthly or one-off");
            let award = AwardDecision {
                recipient: iin(),
                amount,
                occasion: one_off.then(|| month("2026-02")),
                one_off,
                last_month,
            };
            let entitlement = create("e-1".to_owned(), "program", &award, CODE, start());
            World {
                entitlement,
                recipient,
                award,
                now: start(),
            }
        }

        /// Runs one scripted step; see [`check`] for the words.
        fn step(&mut self, line: &str) -> Result<Vec<Command>, String> {
            let words: Vec<&str> = line.split_whitespace().collect();
            let settings = settings();
            let e = &mut self.entitlement;
            let r = &self.recipient;
            let now = self.now;
            let choice = |word: &str| match word {
                "bank" => PayoutChoice::BankAccount,
                "wallet" => PayoutChoice::SocialWallet,
                other => panic!("unknown payout {other:?}"),
            };
            Ok(match words.as_slice() {
                ["offer"] => offer(e, r, &settings, now),
                ["reoffer"] => reoffer(e, r, &settings, now)?,
                ["reply", "refuse"] => on_reply(e, ReplyAnswer::Refuse, r, &settings, now),
                ["reply", payout] => {
                    on_reply(e, ReplyAnswer::Consent(choice(payout)), r, &settings, now)
                }
                ["reminder"] => on_timer(e, TimerKind::Reminder, r, &settings),
                ["expiry"] => on_timer(e, TimerKind::Expiry, r, &settings),
                ["ok", reference] => on_payment_outcome(e, reference, true, None, r, now),
                ["reject", reference] => on_payment_outcome(
                    e,
                    reference,
                    false,
                    Some("AC04 closed account".to_owned()),
                    r,
                    now,
                ),
                ["account", payout] => {
                    let payout = choice(payout);
                    if payout == PayoutChoice::BankAccount {
                        self.recipient.iban = Some(iban());
                    }
                    on_account(e, payout, &self.recipient, now)
                }
                ["phone"] => {
                    self.recipient.phone = Some(phone());
                    Vec::new()
                }
                ["eligible"] => on_eligibility(e, Some(&self.award), r, &settings, now),
                ["eligible", amount] => {
                    self.award.amount = Money::parse(amount).unwrap();
                    on_eligibility(e, Some(&self.award), r, &settings, now)
                }
                ["ineligible"] => on_eligibility(e, None, r, &settings, now),
                ["cycle", period] => on_cycle(e, month(period), r, now),
                ["at", day] => {
                    let day: NaiveDate = day.parse().unwrap();
                    self.now = Utc.from_utc_datetime(&day.and_hms_opt(9, 0, 0).unwrap());
                    Vec::new()
                }
                [hours] if hours.starts_with('+') && hours.ends_with('h') => {
                    self.now += Duration::hours(hours[1..hours.len() - 1].parse().unwrap());
                    Vec::new()
                }
                _ => panic!("unknown step {line:?}"),
            })
        }
    }

    fn render_command(command: &Command) -> String {
        let when = |at: &DateTime<Utc>| at.format("%m-%d %H:%M").to_string();
        let kind = |kind: &TimerKind| match kind {
            TimerKind::Reminder => "reminder",
            TimerKind::Expiry => "expiry",
        };
        match command {
            Command::Sms {
                to,
                notice,
                reference,
            } => {
                assert_eq!(to, &phone());
                format!("sms {} {reference}", notice.as_str())
            }
            Command::OpenRequest { phone: to, code } => {
                assert_eq!(to, &phone());
                format!("open {code}")
            }
            Command::CloseRequest { phone: to, code } => {
                assert_eq!(to, &phone());
                format!("close {code}")
            }
            Command::SetTimer { kind: k, due_at } => format!("set {} {}", kind(k), when(due_at)),
            Command::CancelTimer { kind: k, due_at } => {
                format!("cancel {} {}", kind(k), when(due_at))
            }
            Command::Pay(payment) => {
                assert_eq!(payment.status, PaymentStatus::Pending);
                format!(
                    "pay {} {} to {}",
                    payment.reference_id, payment.amount, payment.payee_fa
                )
            }
            Command::Settle { reference_id } => format!("settle {reference_id}"),
        }
    }

    /// Runs `script` (one step a line) on a world made from `setup` and compares the
    /// transcript with `expected`: a line per step, `<step> -> <state> | <commands>`.
    ///
    /// `{OFFER}` and the like in `expected` are expanded (see [`expand`]).
    ///
    /// Steps: `offer`, `reoffer`, `reply bank|wallet|refuse`, `reminder`, `expiry` (timers),
    /// `ok <ref>` and `reject <ref>` (the bank's answer), `account bank|wallet` (a new account
    /// arrives; `bank` puts the IBAN on file), `phone` (a phone arrives), `eligible [<KZT>]`
    /// and `ineligible` (a re-evaluation), `cycle <month>`, `at <day>` and `+<n>h` (the clock).
    fn check(setup: &str, script: &str, expected: &str) {
        let mut world = World::new(setup);
        let mut transcript = Vec::new();
        for line in script
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
        {
            let rendered = match world.step(line) {
                Ok(commands) => {
                    let commands: Vec<String> = commands.iter().map(render_command).collect();
                    format!(
                        "{line} -> {} | {}",
                        world.entitlement.state.as_str(),
                        commands.join("; ")
                    )
                }
                Err(error) => format!("{line} -> error: {error}"),
            };
            transcript.push(rendered.trim_end().to_owned());
        }
        let expected = expand(expected);
        let expected: Vec<&str> = expected
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect();
        assert_eq!(
            transcript,
            expected,
            "setup {setup:?}\nactual:\n{}\n",
            transcript.join("\n")
        );
    }

    const OFFER: &str = "sms offer e-1-offer-1; open 4321; set reminder 03-12 09:00; \
                         set expiry 03-13 09:00";
    const CLOSE: &str = "close 4321; cancel reminder 03-12 09:00; cancel expiry 03-13 09:00";
    const BANK: &str = "KZ86125KZT5004100100@125";
    const WALLET: &str = "061211600012@social-wallet";

    /// `{OFFER}`, `{CLOSE}`, `{BANK}` and `{WALLET}` in an expected transcript (see
    /// [`check`]) stand for the constants above.
    fn expand(expected: &str) -> String {
        expected
            .replace("{OFFER}", OFFER)
            .replace("{CLOSE}", CLOSE)
            .replace("{BANK}", BANK)
            .replace("{WALLET}", WALLET)
    }

    #[test]
    fn offer_with_and_without_a_phone() {
        check("monthly phone", "offer", "offer -> offered | {OFFER}");
        check(
            "monthly",
            "offer
             eligible
             phone
             eligible",
            "offer -> no_contact |
             eligible -> no_contact |
             phone -> no_contact |
             eligible -> offered | {OFFER}",
        );
    }

    #[test]
    fn replies_consent_to_the_bank_or_the_wallet_or_refuse() {
        check(
            "monthly phone iban",
            "offer
             +5h
             reply bank",
            "offer -> offered | {OFFER}
             +5h -> offered |
             reply bank -> consented | {CLOSE}; pay e-1-2026-03-1 100.00 to {BANK}",
        );
        check(
            "monthly phone",
            "offer
             reply wallet",
            "offer -> offered | {OFFER}
             reply wallet -> consented | {CLOSE}; pay e-1-2026-03-1 100.00 to {WALLET}",
        );
        check(
            "one-off phone iban",
            "offer
             reply refuse
             reply bank
             expiry",
            "offer -> offered | {OFFER}
             reply refuse -> declined | {CLOSE}
             reply bank -> declined |
             expiry -> declined |",
        );
        // A one-off benefit pays for the month of its fact, not of the answer.
        check(
            "one-off phone",
            "offer
             at 2026-03-12
             reply wallet",
            "offer -> offered | {OFFER}
             at 2026-03-12 -> offered |
             reply wallet -> consented | {CLOSE}; pay e-1-2026-02-1 100.00 to {WALLET}",
        );
        // Bank chosen, no account on file: nothing to pay into yet.
        check(
            "monthly phone",
            "offer
             reply bank",
            "offer -> offered | {OFFER}
             reply bank -> payment_failed | {CLOSE}; sms account-needed e-1-account-needed-2026-03-0",
        );
        // An answer before any offer, or a second answer, changes nothing.
        check(
            "monthly phone",
            "reply wallet
             offer
             reply wallet
             reply refuse",
            "reply wallet -> no_contact |
             offer -> offered | {OFFER}
             reply wallet -> consented | {CLOSE}; pay e-1-2026-03-1 100.00 to {WALLET}
             reply refuse -> consented |",
        );
    }

    #[test]
    fn the_reminder_goes_once_and_the_offer_expires() {
        check(
            "monthly phone",
            "offer
             +48h
             reminder
             reminder
             +24h
             expiry
             reply wallet
             reminder
             expiry",
            "offer -> offered | {OFFER}
             +48h -> offered |
             reminder -> offered | sms reminder e-1-reminder-1
             reminder -> offered |
             +24h -> offered |
             expiry -> expired | {CLOSE}
             reply wallet -> expired |
             reminder -> expired |
             expiry -> expired |",
        );
    }

    #[test]
    fn payment_outcomes() {
        check(
            "one-off phone iban",
            "offer
             reply bank
             ok e-1-2026-02-1
             ok e-1-2026-02-1
             reject e-1-2026-02-1",
            "offer -> offered | {OFFER}
             reply bank -> consented | {CLOSE}; pay e-1-2026-02-1 100.00 to {BANK}
             ok e-1-2026-02-1 -> paid | settle e-1-2026-02-1
             ok e-1-2026-02-1 -> paid | settle e-1-2026-02-1
             reject e-1-2026-02-1 -> paid | settle e-1-2026-02-1",
        );
        check(
            "monthly phone",
            "offer
             reply wallet
             ok e-1-2026-03-1
             ok unknown-reference",
            "offer -> offered | {OFFER}
             reply wallet -> consented | {CLOSE}; pay e-1-2026-03-1 100.00 to {WALLET}
             ok e-1-2026-03-1 -> active | settle e-1-2026-03-1
             ok unknown-reference -> active | settle unknown-reference",
        );
        // Rejected, the bank answers twice, a new account: attempt 2, a new reference.
        check(
            "one-off phone iban",
            "offer
             reply bank
             reject e-1-2026-02-1
             reject e-1-2026-02-1
             ok e-1-2026-02-1
             account bank
             ok e-1-2026-02-2",
            "offer -> offered | {OFFER}
             reply bank -> consented | {CLOSE}; pay e-1-2026-02-1 100.00 to {BANK}
             reject e-1-2026-02-1 -> payment_failed | settle e-1-2026-02-1; sms payment-failed e-1-payment-failed-2026-02-1
             reject e-1-2026-02-1 -> payment_failed | settle e-1-2026-02-1
             ok e-1-2026-02-1 -> payment_failed | settle e-1-2026-02-1
             account bank -> consented | pay e-1-2026-02-2 100.00 to {BANK}
             ok e-1-2026-02-2 -> paid | settle e-1-2026-02-2",
        );
        // Bank chosen without an account; the account arrives; then a wallet instead.
        check(
            "monthly phone",
            "offer
             reply bank
             account bank
             reject e-1-2026-03-1
             account wallet
             ok e-1-2026-03-2
             account bank",
            "offer -> offered | {OFFER}
             reply bank -> payment_failed | {CLOSE}; sms account-needed e-1-account-needed-2026-03-0
             account bank -> consented | pay e-1-2026-03-1 100.00 to {BANK}
             reject e-1-2026-03-1 -> payment_failed | settle e-1-2026-03-1; sms payment-failed e-1-payment-failed-2026-03-1
             account wallet -> consented | pay e-1-2026-03-2 100.00 to {WALLET}
             ok e-1-2026-03-2 -> active | settle e-1-2026-03-2
             account bank -> active |",
        );
    }

    #[test]
    fn the_cycle_pays_each_month_once_until_the_last() {
        check(
            "monthly phone last=2026-05",
            "offer
             reply wallet
             cycle 2026-04
             ok e-1-2026-03-1
             cycle 2026-02
             cycle 2026-03
             cycle 2026-04
             cycle 2026-04
             ok e-1-2026-04-1
             cycle 2026-04
             cycle 2026-05
             reject e-1-2026-05-1
             cycle 2026-06
             account wallet
             ok e-1-2026-05-2
             cycle 2026-06
             cycle 2026-07",
            "offer -> offered | {OFFER}
             reply wallet -> consented | {CLOSE}; pay e-1-2026-03-1 100.00 to {WALLET}
             cycle 2026-04 -> consented |
             ok e-1-2026-03-1 -> active | settle e-1-2026-03-1
             cycle 2026-02 -> active |
             cycle 2026-03 -> active |
             cycle 2026-04 -> active | pay e-1-2026-04-1 100.00 to {WALLET}
             cycle 2026-04 -> active |
             ok e-1-2026-04-1 -> active | settle e-1-2026-04-1
             cycle 2026-04 -> active |
             cycle 2026-05 -> active | pay e-1-2026-05-1 100.00 to {WALLET}
             reject e-1-2026-05-1 -> payment_failed | settle e-1-2026-05-1; sms payment-failed e-1-payment-failed-2026-05-3
             cycle 2026-06 -> payment_failed |
             account wallet -> consented | pay e-1-2026-05-2 100.00 to {WALLET}
             ok e-1-2026-05-2 -> active | settle e-1-2026-05-2
             cycle 2026-06 -> ended |
             cycle 2026-07 -> ended |",
        );
        // A one-off benefit has no cycle.
        check(
            "one-off phone",
            "offer
             reply wallet
             ok e-1-2026-02-1
             cycle 2026-03",
            "offer -> offered | {OFFER}
             reply wallet -> consented | {CLOSE}; pay e-1-2026-02-1 100.00 to {WALLET}
             ok e-1-2026-02-1 -> paid | settle e-1-2026-02-1
             cycle 2026-03 -> paid |",
        );
    }

    #[test]
    fn losing_eligibility() {
        // Before an answer: withdrawn, the request closed and its timers cancelled.
        check(
            "monthly phone",
            "offer
             +1h
             ineligible
             reply wallet
             expiry",
            "offer -> offered | {OFFER}
             +1h -> offered |
             ineligible -> withdrawn | {CLOSE}
             reply wallet -> withdrawn |
             expiry -> withdrawn |",
        );
        // Never offered: nothing to close.
        check(
            "monthly",
            "offer
             ineligible
             phone
             eligible",
            "offer -> no_contact |
             ineligible -> withdrawn |
             phone -> withdrawn |
             eligible -> withdrawn |",
        );
        // After consent, monthly: ended, and the recipient is told.
        check(
            "monthly phone",
            "offer
             reply wallet
             ok e-1-2026-03-1
             at 2026-04-20
             ineligible
             cycle 2026-05",
            "offer -> offered | {OFFER}
             reply wallet -> consented | {CLOSE}; pay e-1-2026-03-1 100.00 to {WALLET}
             ok e-1-2026-03-1 -> active | settle e-1-2026-03-1
             at 2026-04-20 -> active |
             ineligible -> ended | sms ended e-1-ended-2026-04-1
             cycle 2026-05 -> ended |",
        );
        // A payment in flight when eligibility ends is still recorded.
        check(
            "monthly phone",
            "offer
             reply wallet
             ineligible
             ok e-1-2026-03-1",
            "offer -> offered | {OFFER}
             reply wallet -> consented | {CLOSE}; pay e-1-2026-03-1 100.00 to {WALLET}
             ineligible -> ended | sms ended e-1-ended-2026-03-1
             ok e-1-2026-03-1 -> ended | settle e-1-2026-03-1",
        );
        // A one-off benefit is owed for its fact: losing eligibility later changes nothing.
        check(
            "one-off phone",
            "offer
             reply wallet
             ineligible
             ok e-1-2026-02-1",
            "offer -> offered | {OFFER}
             reply wallet -> consented | {CLOSE}; pay e-1-2026-02-1 100.00 to {WALLET}
             ineligible -> consented |
             ok e-1-2026-02-1 -> paid | settle e-1-2026-02-1",
        );
    }

    #[test]
    fn a_changed_amount_applies_from_the_next_month() {
        check(
            "monthly phone",
            "offer
             eligible 120
             reply wallet
             ok e-1-2026-03-1
             eligible 150
             cycle 2026-03
             cycle 2026-04
             cycle 2026-05",
            "offer -> offered | {OFFER}
             eligible 120 -> offered |
             reply wallet -> consented | {CLOSE}; pay e-1-2026-03-1 120.00 to {WALLET}
             ok e-1-2026-03-1 -> active | settle e-1-2026-03-1
             eligible 150 -> active |
             cycle 2026-03 -> active |
             cycle 2026-04 -> active | pay e-1-2026-04-1 150.00 to {WALLET}
             cycle 2026-05 -> active | pay e-1-2026-05-1 150.00 to {WALLET}",
        );
        // A one-off sum is fixed by its fact.
        check(
            "one-off phone",
            "offer
             eligible 120
             reply wallet",
            "offer -> offered | {OFFER}
             eligible 120 -> offered |
             reply wallet -> consented | {CLOSE}; pay e-1-2026-02-1 100.00 to {WALLET}",
        );
    }

    #[test]
    fn a_changed_amount_is_recorded_for_the_next_month() {
        let mut world = World::new("monthly phone");
        for line in ["offer", "reply wallet", "ok e-1-2026-03-1", "eligible 150"] {
            world.step(line).unwrap();
        }
        assert_eq!(world.entitlement.amount, Money::from_kzt(100));
        assert_eq!(
            world.entitlement.next_amount,
            Some((month("2026-04"), Money::from_kzt(150)))
        );
        world.step("cycle 2026-04").unwrap();
        assert_eq!(world.entitlement.amount, Money::from_kzt(150));
        assert_eq!(world.entitlement.next_amount, None);
    }

    #[test]
    fn reoffer_only_from_expired_or_no_contact() {
        check(
            "monthly phone",
            "reoffer
             expiry
             reoffer
             +72h
             expiry
             reoffer
             +1h
             reply wallet
             reoffer",
            "reoffer -> offered | {OFFER}
             expiry -> expired | {CLOSE}
             reoffer -> offered | sms offer e-1-offer-2; open 4321; set reminder 03-12 09:00; set expiry 03-13 09:00
             +72h -> offered |
             expiry -> expired | close 4321; cancel reminder 03-12 09:00; cancel expiry 03-13 09:00
             reoffer -> offered | sms offer e-1-offer-3; open 4321; set reminder 03-15 09:00; set expiry 03-16 09:00
             +1h -> offered |
             reply wallet -> consented | close 4321; cancel reminder 03-15 09:00; cancel expiry 03-16 09:00; pay e-1-2026-03-1 100.00 to {WALLET}
             reoffer -> error: only expired or no_contact entitlements can be re-offered; this one is consented",
        );
        // A re-offer sends a new reminder too.
        check(
            "one-off phone",
            "offer
             reminder
             expiry
             reoffer
             reminder",
            "offer -> offered | {OFFER}
             reminder -> offered | sms reminder e-1-reminder-1
             expiry -> expired | {CLOSE}
             reoffer -> offered | sms offer e-1-offer-2; open 4321; set reminder 03-12 09:00; set expiry 03-13 09:00
             reminder -> offered | sms reminder e-1-reminder-2",
        );
        for (script, state) in [
            ("offer\nreoffer", "offered"),
            ("offer\nreply refuse\nreoffer", "declined"),
            ("offer\nineligible\nreoffer", "withdrawn"),
            ("offer\nreply bank\nreoffer", "payment_failed"),
        ] {
            let mut world = World::new("monthly phone");
            let mut lines = script.lines();
            let last = lines.next_back().unwrap();
            for line in lines {
                world.step(line).unwrap();
            }
            assert_eq!(
                world.step(last),
                Err(format!(
                    "only expired or no_contact entitlements can be re-offered; this one is {state}"
                ))
            );
        }
    }

    // ----- the property test -----

    /// One input in a random run. Picks are indexes taken modulo what exists.
    #[derive(Debug, Clone)]
    enum Input {
        /// A re-evaluation: eligible with this monthly amount in tiyn, or not eligible.
        Eligibility(Option<u64>),
        PhoneArrives,
        Reply(ReplyAnswer),
        Timer(TimerKind),
        /// The bank answers for one of the payments made so far (possibly again).
        Outcome {
            pick: usize,
            succeeded: bool,
        },
        Account(PayoutChoice),
        /// The cycle for 2026-03 plus this many months.
        Cycle(u32),
        Reoffer,
        Advance {
            hours: i64,
        },
        /// The process dies and restarts from the state before one of the earlier inputs,
        /// `back` inputs ago, and replays the rest of the log.
        Crash {
            back: usize,
        },
    }

    fn input() -> impl Strategy<Value = Input> {
        let payout = prop_oneof![
            Just(PayoutChoice::BankAccount),
            Just(PayoutChoice::SocialWallet)
        ];
        let answer = prop_oneof![
            1 => Just(ReplyAnswer::Refuse),
            2 => Just(ReplyAnswer::Consent(PayoutChoice::BankAccount)),
            2 => Just(ReplyAnswer::Consent(PayoutChoice::SocialWallet)),
        ];
        // Weighted so that most runs get past the offer into payments, rejections,
        // retries and cycles, where the invariants have something to say.
        prop_oneof![
            3 => proptest::option::weighted(0.9, 1u64..=3_000_000).prop_map(Input::Eligibility),
            2 => Just(Input::PhoneArrives),
            6 => answer.prop_map(Input::Reply),
            2 => Just(Input::Timer(TimerKind::Reminder)),
            1 => Just(Input::Timer(TimerKind::Expiry)),
            10 => (any::<usize>(), proptest::bool::weighted(0.6))
                .prop_map(|(pick, succeeded)| Input::Outcome { pick, succeeded }),
            3 => payout.prop_map(Input::Account),
            6 => (0u32..6).prop_map(Input::Cycle),
            2 => Just(Input::Reoffer),
            3 => (0i64..400).prop_map(|hours| Input::Advance { hours }),
            2 => any::<usize>().prop_map(|back| Input::Crash { back }),
        ]
    }

    /// How a run starts: one-off or monthly, what is on file, the amount, the last month.
    #[derive(Debug, Clone)]
    struct Start {
        one_off: bool,
        phone: bool,
        iban: bool,
        amount_tiyn: u64,
        last_month_offset: Option<u32>,
    }

    fn start_of_run() -> impl Strategy<Value = Start> {
        (
            any::<bool>(),
            proptest::bool::weighted(0.85),
            any::<bool>(),
            1u64..=3_000_000,
            proptest::option::of(0u32..6),
        )
            .prop_map(
                |(one_off, phone, iban, amount_tiyn, last_month_offset)| Start {
                    one_off,
                    phone,
                    iban,
                    amount_tiyn,
                    last_month_offset,
                },
            )
    }

    fn plus_months(offset: u32) -> Month {
        (0..offset).fold(month("2026-03"), |month, _| month.next())
    }

    impl World {
        fn at_start(setup: &Start) -> World {
            let award = AwardDecision {
                recipient: iin(),
                amount: Money::from_tiyn(setup.amount_tiyn),
                occasion: setup.one_off.then(|| month("2026-02")),
                one_off: setup.one_off,
                last_month: setup.last_month_offset.map(plus_months),
            };
            let recipient = Recipient {
                iin: iin(),
                phone: setup.phone.then(phone),
                iban: setup.iban.then(iban),
            };
            let mut entitlement =
                create("f-1-program-1".to_owned(), "program", &award, CODE, start());
            // As the family does: a new entitlement is offered at once.
            offer(&mut entitlement, &recipient, &settings(), start());
            World {
                entitlement,
                recipient,
                award,
                now: start(),
            }
        }

        /// Applies one input as the family actor would. `Crash` is handled by the run.
        fn apply(&mut self, input: &Input) -> Vec<Command> {
            let settings = settings();
            let now = self.now;
            let open = self.entitlement.state.is_open();
            let e = &mut self.entitlement;
            match input {
                Input::Eligibility(amount) => {
                    if let Some(tiyn) = amount {
                        self.award.amount = Money::from_tiyn(*tiyn);
                    }
                    // The family reconciles open entitlements only.
                    if !open {
                        return Vec::new();
                    }
                    let award = amount.map(|_| &self.award);
                    on_eligibility(e, award, &self.recipient, &settings, now)
                }
                Input::PhoneArrives => {
                    self.recipient.phone = Some(phone());
                    Vec::new()
                }
                Input::Reply(answer) => on_reply(e, *answer, &self.recipient, &settings, now),
                Input::Timer(kind) => on_timer(e, *kind, &self.recipient, &settings),
                Input::Outcome { pick, succeeded } => {
                    let reference = match e.payments.len() {
                        0 => "unknown-reference".to_owned(),
                        count => e.payments[pick % count].reference_id.clone(),
                    };
                    let reason = (!succeeded).then(|| "AC04".to_owned());
                    on_payment_outcome(e, &reference, *succeeded, reason, &self.recipient, now)
                }
                Input::Account(choice) => {
                    if *choice == PayoutChoice::BankAccount {
                        self.recipient.iban = Some(iban());
                    }
                    on_account(e, *choice, &self.recipient, now)
                }
                Input::Cycle(offset) => on_cycle(e, plus_months(*offset), &self.recipient, now),
                Input::Reoffer => reoffer(e, &self.recipient, &settings, now).unwrap_or_default(),
                Input::Advance { hours } => {
                    self.now += Duration::hours(*hours);
                    Vec::new()
                }
                Input::Crash { .. } => unreachable!("the run handles crashes"),
            }
        }

        /// Whether a payment could be made today with the chosen payout.
        fn can_pay(&self) -> bool {
            match self.entitlement.payout {
                Some(PayoutChoice::SocialWallet) => true,
                Some(PayoutChoice::BankAccount) => self.recipient.iban.is_some(),
                None => false,
            }
        }

        /// The cooperative world: the bank answers every pending payment with success, and
        /// where a payment failed the recipient's account (re)arrives if there is one.
        fn settle_everything(&mut self) {
            for _ in 0..20 {
                let pending: Vec<String> = self
                    .entitlement
                    .payments
                    .iter()
                    .filter(|p| p.status == PaymentStatus::Pending)
                    .map(|p| p.reference_id.clone())
                    .collect();
                for reference in &pending {
                    on_payment_outcome(
                        &mut self.entitlement,
                        reference,
                        true,
                        None,
                        &self.recipient,
                        self.now,
                    );
                }
                let retry =
                    self.entitlement.state == EntitlementState::PaymentFailed && self.can_pay();
                if retry {
                    let choice = self.entitlement.payout.expect("can_pay needs a choice");
                    on_account(&mut self.entitlement, choice, &self.recipient, self.now);
                }
                if pending.is_empty() && !retry {
                    return;
                }
            }
            panic!("settling did not converge: {:#?}", self.entitlement);
        }
    }

    /// What a run has seen so far, to check the invariants against.
    #[derive(Default)]
    struct Seen {
        consented: bool,
        references: BTreeSet<String>,
        sms_references: BTreeMap<String, Notice>,
    }

    /// The invariants after one input that produced `commands`.
    fn check_step(
        input: &Input,
        before: &World,
        after: &World,
        commands: &[Command],
        seen: &mut Seen,
    ) {
        if matches!(input, Input::Reply(ReplyAnswer::Consent(_)))
            && before.entitlement.state == EntitlementState::Offered
        {
            seen.consented = true;
        }
        let mut new_payments = after.entitlement.payments[before.entitlement.payments.len()..]
            .iter()
            .map(|p| p.reference_id.clone())
            .collect::<Vec<_>>()
            .into_iter();
        for command in commands {
            match command {
                Command::Pay(payment) => {
                    // (a) nothing is paid without a consent given to an offer.
                    assert!(seen.consented, "paid without consent: {payment:?}");
                    // (c) a reference is one payment, never reused.
                    assert!(
                        seen.references.insert(payment.reference_id.clone()),
                        "reference {} reused",
                        payment.reference_id
                    );
                    assert_eq!(new_payments.next(), Some(payment.reference_id.clone()));
                    assert_eq!(payment.status, PaymentStatus::Pending);
                    // (d) never nothing, for a positive award.
                    assert!(payment.amount > Money::ZERO, "zero payment {payment:?}");
                    assert!(payment.attempt >= 1);
                    assert_eq!(
                        payment.reference_id,
                        format!(
                            "{}-{}-{}",
                            after.entitlement.id, payment.period, payment.attempt
                        )
                    );
                }
                Command::Sms {
                    notice, reference, ..
                } => {
                    // A repeated reference is the same message (the gateway sends it
                    // once); only the request for an account may be repeated.
                    if let Some(previous) = seen.sms_references.insert(reference.clone(), *notice) {
                        assert_eq!(previous, *notice, "reference {reference} of two notices");
                        assert_eq!(*notice, Notice::AccountNeeded, "SMS {reference} repeated");
                    }
                }
                _ => {}
            }
        }
        assert_eq!(new_payments.next(), None, "a payment without a Pay command");
        check_state(after);
    }

    /// Invariants of one state, whatever led to it.
    fn check_state(world: &World) {
        let entitlement = &world.entitlement;
        let mut periods: BTreeMap<Month, (usize, usize)> = BTreeMap::new();
        let mut references = BTreeSet::new();
        for payment in &entitlement.payments {
            assert!(references.insert(&payment.reference_id));
            let (succeeded, live) = periods.entry(payment.period).or_default();
            match payment.status {
                PaymentStatus::Succeeded => {
                    *succeeded += 1;
                    *live += 1;
                }
                PaymentStatus::Pending => *live += 1,
                PaymentStatus::Rejected => {}
            }
            assert!(payment.amount > Money::ZERO);
            if entitlement.one_off {
                assert_eq!(Some(payment.period), entitlement.occasion);
            }
        }
        // (b) one period: at most one success, at most one pending-or-succeeded.
        for (period, (succeeded, live)) in periods {
            assert!(succeeded <= 1, "{period} paid {succeeded} times");
            assert!(live <= 1, "{period} has {live} live payments");
        }
        let any_success = entitlement
            .payments
            .iter()
            .any(|p| p.status == PaymentStatus::Succeeded);
        match entitlement.state {
            EntitlementState::Paid => assert!(entitlement.one_off && any_success),
            EntitlementState::Active => assert!(!entitlement.one_off && any_success),
            EntitlementState::Offered => {
                assert!(entitlement.payments.is_empty() && entitlement.payout.is_none());
            }
            _ => {}
        }
        if !entitlement.payments.is_empty() {
            assert!(entitlement.payout.is_some());
        }
    }

    fn run(start: &Start, inputs: &[Input]) {
        let mut world = World::at_start(start);
        check_state(&world);
        let mut seen = Seen::default();
        // The log so far: each input with the state before it and what it produced.
        let mut log: Vec<(Input, World, Vec<Command>)> = Vec::new();
        for input in inputs {
            if let Input::Crash { back } = input {
                if log.is_empty() {
                    continue;
                }
                let from = log.len() - 1 - back % log.len();
                let mut replayed = log[from].1.clone();
                for (input, before, commands) in &log[from..] {
                    assert_eq!(&replayed, before, "replay diverged before {input:?}");
                    assert_eq!(
                        &replayed.apply(input),
                        commands,
                        "replay of {input:?} produced other commands"
                    );
                }
                assert_eq!(replayed, world, "replay ended elsewhere");
                world = replayed;
                continue;
            }
            let before = world.clone();
            let commands = world.apply(input);
            check_step(input, &before, &world, &commands, &mut seen);
            log.push((input.clone(), before, commands));
        }
        // (e) liveness: after a consent, a cooperative bank ends the story.
        if seen.consented && world.entitlement.state != EntitlementState::Ended {
            let mut settled = world.clone();
            settled.settle_everything();
            check_state(&settled);
            let state = settled.entitlement.state;
            let done = if settled.entitlement.one_off {
                EntitlementState::Paid
            } else {
                EntitlementState::Active
            };
            let waiting_for_an_account = state == EntitlementState::PaymentFailed
                && settled.entitlement.payout == Some(PayoutChoice::BankAccount)
                && settled.recipient.iban.is_none();
            assert!(
                state == done || waiting_for_an_account,
                "after consent and a cooperative bank: {:#?}",
                settled.entitlement
            );
        }
        if !seen.consented {
            assert!(world.entitlement.payments.is_empty());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn the_machine_keeps_its_invariants(
            start in start_of_run(),
            inputs in proptest::collection::vec(input(), 0..40),
        ) {
            run(&start, &inputs);
        }
    }

    #[test]
    fn a_replay_gives_the_same_references() {
        let start = Start {
            one_off: false,
            phone: true,
            iban: false,
            amount_tiyn: 6_933_475,
            last_month_offset: None,
        };
        let inputs = [
            Input::Reply(ReplyAnswer::Consent(PayoutChoice::BankAccount)),
            Input::Account(PayoutChoice::BankAccount),
            Input::Outcome {
                pick: 0,
                succeeded: false,
            },
            Input::Account(PayoutChoice::SocialWallet),
            Input::Outcome {
                pick: 1,
                succeeded: true,
            },
            Input::Cycle(1),
            Input::Crash { back: 5 },
            Input::Crash { back: 0 },
            Input::Outcome {
                pick: 2,
                succeeded: true,
            },
        ];
        run(&start, &inputs);
    }
}

#[cfg(test)]
mod regressions {
    use super::*;
    use chrono::TimeZone;

    fn monthly(amount: u64) -> AwardDecision {
        AwardDecision {
            recipient: "061211600012".parse().unwrap(),
            amount: Money::from_kzt(amount),
            occasion: None,
            one_off: false,
            last_month: None,
        }
    }

    fn recipient() -> Recipient {
        Recipient {
            iin: "061211600012".parse().unwrap(),
            phone: Some("+77011234567".parse().unwrap()),
            iban: None,
        }
    }

    fn settings() -> Settings {
        Settings {
            reply_window: Duration::hours(72),
            reminder_after: Duration::hours(48),
        }
    }

    fn consented_in_march() -> (Entitlement, DateTime<Utc>) {
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 9, 0, 0).unwrap();
        let mut entitlement = create("e-1".to_owned(), "tsa", &monthly(100), 1234, now);
        offer(&mut entitlement, &recipient(), &settings(), now);
        on_reply(
            &mut entitlement,
            ReplyAnswer::Consent(PayoutChoice::SocialWallet),
            &recipient(),
            &settings(),
            now,
        );
        on_payment_outcome(
            &mut entitlement,
            "e-1-2026-03-1",
            true,
            None,
            &recipient(),
            now,
        );
        assert_eq!(entitlement.state, EntitlementState::Active);
        (entitlement, now)
    }

    #[test]
    fn a_rejected_month_stays_owed_when_a_later_month_succeeds() {
        let (mut entitlement, _) = consented_in_march();
        let may = Utc.with_ymd_and_hms(2026, 5, 10, 9, 0, 0).unwrap();
        on_cycle(
            &mut entitlement,
            "2026-04".parse().unwrap(),
            &recipient(),
            may,
        );
        on_cycle(
            &mut entitlement,
            "2026-05".parse().unwrap(),
            &recipient(),
            may,
        );
        on_payment_outcome(
            &mut entitlement,
            "e-1-2026-04-1",
            false,
            Some("rjct".into()),
            &recipient(),
            may,
        );
        on_payment_outcome(
            &mut entitlement,
            "e-1-2026-05-1",
            true,
            None,
            &recipient(),
            may,
        );
        assert_eq!(entitlement.state, EntitlementState::PaymentFailed);
        let commands = on_account(
            &mut entitlement,
            PayoutChoice::SocialWallet,
            &recipient(),
            may,
        );
        let paid: Vec<String> = commands
            .iter()
            .filter_map(|c| match c {
                Command::Pay(payment) => Some(payment.reference_id.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(paid, vec!["e-1-2026-04-2".to_owned()]);
    }

    #[test]
    fn a_change_of_amount_and_back_cancels_the_change() {
        let (mut entitlement, now) = consented_in_march();
        on_eligibility(
            &mut entitlement,
            Some(&monthly(150)),
            &recipient(),
            &settings(),
            now,
        );
        assert!(entitlement.next_amount.is_some());
        on_eligibility(
            &mut entitlement,
            Some(&monthly(100)),
            &recipient(),
            &settings(),
            now,
        );
        let commands = on_cycle(
            &mut entitlement,
            "2026-04".parse().unwrap(),
            &recipient(),
            now,
        );
        let Some(Command::Pay(payment)) = commands.first() else {
            panic!("the cycle pays April: {commands:?}")
        };
        assert_eq!(payment.amount, Money::from_kzt(100));
    }
}
