//! The consent-then-payout state machine of one entitlement, pure:
//! `(entitlement, input, now) -> commands`. The family actor executes the commands
//! (the SMS outbox, the phone index, timers, the payment outbox) in the same
//! transaction that stores the new state.
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
                let first = Month::of(crate::scoring::local_date(received_at));
                entitlement.first_month = Some(first);
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
        if matches!(
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
    let unpaid: Vec<Month> = unpaid_periods(entitlement);
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

/// Periods that were due and have no pending or successful payment.
fn unpaid_periods(entitlement: &Entitlement) -> Vec<Month> {
    let mut periods: Vec<Month> = Vec::new();
    let due: Vec<Month> = if entitlement.one_off {
        entitlement.occasion.into_iter().collect()
    } else {
        let mut months: Vec<Month> = entitlement.payments.iter().map(|p| p.period).collect();
        if let Some(first) = entitlement.first_month {
            months.push(first);
        }
        months
    };
    for period in due {
        let settled = entitlement
            .payments
            .iter()
            .any(|p| p.period == period && p.status != PaymentStatus::Rejected);
        if !settled && !periods.contains(&period) {
            periods.push(period);
        }
    }
    periods.sort();
    periods
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
            if !entitlement.one_off && award.amount != entitlement.amount {
                match entitlement.state {
                    EntitlementState::Offered | EntitlementState::NoContact => {
                        entitlement.amount = award.amount;
                    }
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
