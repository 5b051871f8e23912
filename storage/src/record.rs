//! The persisted shapes of dfm: a citizen's facts, a family's record with its
//! evaluation and entitlements, and the small enums the feed speaks in.
//!
//! This module owns data only. It never decides anything: scoring, eligibility and
//! the entitlement state machine live in the `actors` crate and write their results
//! here. Stored types never use `skip_serializing_if` or untagged enums, because
//! bincode is not self-describing.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{FamilyId, Iban, Iin, Locality, Month, Phone, Region, Sex};
use crate::money::Money;

/// How many months of reported income a citizen keeps; older months are dropped
/// when a newer one arrives. TSA and job loss look back at most 12 months.
pub const INCOME_MONTHS_KEPT: usize = 24;
/// How many level or eligibility changes a family keeps in its history.
pub const HISTORY_ENTRIES_KEPT: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Head,
    Spouse,
    Child,
    Parent,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncomeSource {
    Salary,
    Business,
    Pension,
    Benefit,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmploymentStatus {
    Employed,
    SelfEmployed,
    Unemployed,
    Student,
    Retired,
    Caregiver,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DisabilityGroup {
    #[serde(rename = "1")]
    One,
    #[serde(rename = "2")]
    Two,
    #[serde(rename = "3")]
    Three,
    #[serde(rename = "child")]
    Child,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tenure {
    Owned,
    Rented,
    Social,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Utility {
    Water,
    Heating,
    Sewerage,
    Gas,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enrollment {
    None,
    Preschool,
    School,
    College,
    University,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attainment {
    None,
    Primary,
    Secondary,
    Vocational,
    Higher,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Award {
    KumisAlka,
    AltynAlka,
    MotherHeroine,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub full_name: String,
    #[serde(with = "crate::codec::date")]
    pub birth_date: NaiveDate,
    pub sex: Sex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Employment {
    pub status: EmploymentStatus,
    /// When the agency says the status began (the event's `occurred_at`).
    #[serde(with = "crate::codec::time")]
    pub since: DateTime<Utc>,
    /// The status before this one, so that a job loss can be told from a
    /// citizen who was never employed.
    pub previous: Option<EmploymentStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disability {
    pub group: DisabilityGroup,
    /// Last day the assessment is valid; `None` is indefinite.
    #[serde(with = "crate::codec::date::option")]
    pub until: Option<NaiveDate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Education {
    pub enrolled: Enrollment,
    pub attainment: Attainment,
}

/// Everything the agencies have said about one person. Kept with the family the
/// person belongs to, or on its own (in the store's orphan tree) until they join one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CitizenFacts {
    pub iin: Iin,
    pub registration: Option<Registration>,
    #[serde(with = "crate::codec::date::option")]
    pub died_on: Option<NaiveDate>,
    pub phone: Option<Phone>,
    /// Reported income by month and source; at most [`INCOME_MONTHS_KEPT`] months.
    pub incomes: BTreeMap<Month, BTreeMap<IncomeSource, Money>>,
    pub employment: Option<Employment>,
    pub non_mortgage_debt: bool,
    pub insured: Option<bool>,
    pub disability: Option<Disability>,
    pub education: Option<Education>,
    pub awards: BTreeSet<Award>,
    pub iban: Option<Iban>,
    pub social_wallet: bool,
    /// Sequence number of the last feed-log entry applied to these facts while they
    /// were on their own (orphan records only); makes replay idempotent.
    pub applied_seq: u64,
}

impl CitizenFacts {
    pub fn new(iin: Iin) -> Self {
        CitizenFacts {
            iin,
            registration: None,
            died_on: None,
            phone: None,
            incomes: BTreeMap::new(),
            employment: None,
            non_mortgage_debt: false,
            insured: None,
            disability: None,
            education: None,
            awards: BTreeSet::new(),
            iban: None,
            social_wallet: false,
            applied_seq: 0,
        }
    }

    /// The registered birth date, or the one the IIN encodes.
    pub fn birth_date(&self) -> NaiveDate {
        self.registration
            .as_ref()
            .map_or_else(|| self.iin.birth_date(), |r| r.birth_date)
    }

    pub fn sex(&self) -> Sex {
        self.registration
            .as_ref()
            .map_or_else(|| self.iin.sex(), |r| r.sex)
    }

    pub fn is_alive_on(&self, day: NaiveDate) -> bool {
        self.died_on.is_none_or(|died| died > day)
    }

    /// Total income reported for one month, over all sources.
    pub fn income_in(&self, month: Month) -> Money {
        self.incomes
            .get(&month)
            .map_or(Money::ZERO, |by_source| by_source.values().copied().sum())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub role: Role,
    pub facts: CitizenFacts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub region: Region,
    pub locality: Locality,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Housing {
    pub tenure: Tenure,
    /// Living area in tenths of a square metre (545 = 54.5 m²).
    pub area_decimetres: u32,
    pub utilities: BTreeSet<Utility>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    A,
    B,
    C,
    D,
    E,
}

impl Level {
    pub const ALL: [Level; 5] = [Level::A, Level::B, Level::C, Level::D, Level::E];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::A => "A",
            Level::B => "B",
            Level::C => "C",
            Level::D => "D",
            Level::E => "E",
        }
    }

    pub fn parse(text: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|level| level.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    Economic,
    Health,
    Housing,
    Social,
    Education,
}

impl Criterion {
    pub const ALL: [Criterion; 5] = [
        Criterion::Economic,
        Criterion::Health,
        Criterion::Housing,
        Criterion::Social,
        Criterion::Education,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Criterion::Economic => "economic",
            Criterion::Health => "health",
            Criterion::Housing => "housing",
            Criterion::Social => "social",
            Criterion::Education => "education",
        }
    }
}

/// An exact fraction, for scores and weights: 1/15 stays 1/15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fraction {
    pub numerator: u32,
    pub denominator: u32,
}

impl Fraction {
    pub const ZERO: Fraction = Fraction {
        numerator: 0,
        denominator: 1,
    };

    /// The value rounded half up to four decimals, for display ("0.2667").
    pub fn to_decimal_string(self) -> String {
        assert!(
            self.denominator > 0,
            "a fraction never has a zero denominator"
        );
        let scaled = (u64::from(self.numerator) * 10_000 * 2 + u64::from(self.denominator))
            / (2 * u64::from(self.denominator));
        format!("{}.{:04}", scaled / 10_000, scaled % 10_000)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deprivation {
    pub criterion: Criterion,
    pub indicator: String,
    pub weight: Fraction,
    /// The facts that made the indicator deprived, in words, IINs masked.
    pub facts: Vec<String>,
}

/// What a program rule decided for the family at one evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramDecision {
    pub code: String,
    pub eligible: bool,
    pub reasons: Vec<String>,
    /// Present when eligible: who gets how much.
    pub award: Option<AwardDecision>,
    /// Further recipients of a benefit paid per person (disability, job loss):
    /// each is an entitlement of its own.
    pub more_awards: Vec<AwardDecision>,
}

impl ProgramDecision {
    /// Every award of the decision, the first one first.
    pub fn awards(&self) -> impl Iterator<Item = &AwardDecision> {
        self.award.iter().chain(self.more_awards.iter())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwardDecision {
    pub recipient: Iin,
    /// The one-off sum, or the monthly amount.
    pub amount: Money,
    /// For a one-off benefit, the month of the fact that gives rise to it (it is
    /// part of the benefit's identity: a second birth is a second allowance).
    pub occasion: Option<Month>,
    pub one_off: bool,
    /// For a monthly benefit with a limited duration, the last month payable.
    pub last_month: Option<Month>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub rules_version: String,
    #[serde(with = "crate::codec::time")]
    pub evaluated_at: DateTime<Utc>,
    pub score: Fraction,
    pub level: Level,
    pub criteria: BTreeMap<Criterion, Fraction>,
    pub deprivations: Vec<Deprivation>,
    pub programs: Vec<ProgramDecision>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntitlementState {
    Offered,
    NoContact,
    Consented,
    Declined,
    Expired,
    Active,
    Paid,
    PaymentFailed,
    Ended,
    Withdrawn,
}

impl EntitlementState {
    pub const ALL: [EntitlementState; 10] = [
        EntitlementState::Offered,
        EntitlementState::NoContact,
        EntitlementState::Consented,
        EntitlementState::Declined,
        EntitlementState::Expired,
        EntitlementState::Active,
        EntitlementState::Paid,
        EntitlementState::PaymentFailed,
        EntitlementState::Ended,
        EntitlementState::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntitlementState::Offered => "offered",
            EntitlementState::NoContact => "no_contact",
            EntitlementState::Consented => "consented",
            EntitlementState::Declined => "declined",
            EntitlementState::Expired => "expired",
            EntitlementState::Active => "active",
            EntitlementState::Paid => "paid",
            EntitlementState::PaymentFailed => "payment_failed",
            EntitlementState::Ended => "ended",
            EntitlementState::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(text: &str) -> Option<EntitlementState> {
        EntitlementState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
    }

    /// States in which the entitlement is still alive: eligibility is tracked and
    /// losing it changes the state.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            EntitlementState::Offered
                | EntitlementState::NoContact
                | EntitlementState::Consented
                | EntitlementState::Active
                | EntitlementState::PaymentFailed
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutChoice {
    BankAccount,
    SocialWallet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Durable in the outbox, outcome not yet known.
    Pending,
    Succeeded,
    Rejected,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Rejected => "rejected",
        }
    }
}

/// One payment of one period. Its `reference_id` is derived from the entitlement,
/// the period and the attempt number, so a replay after a crash rebuilds the same
/// reference and the bank sees a retry, never a new payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub period: Month,
    pub attempt: u32,
    pub reference_id: String,
    pub amount: Money,
    pub payee_fa: String,
    pub status: PaymentStatus,
    pub status_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entitlement {
    /// `<family_id>-<program>-<n>`: carries no personal data, so it may be logged.
    pub id: String,
    pub program: String,
    pub recipient: Iin,
    pub state: EntitlementState,
    /// The one-off sum or the current monthly amount.
    pub amount: Money,
    /// A changed monthly amount and the first period it applies to.
    pub next_amount: Option<(Month, Money)>,
    pub one_off: bool,
    /// One-off: the month of the fact. Monthly: unused.
    pub occasion: Option<Month>,
    /// Monthly with a limited duration: the last payable month.
    pub last_month: Option<Month>,
    /// The 4-digit code the recipient may quote in the reply.
    pub code: u16,
    #[serde(with = "crate::codec::time")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::codec::time::option")]
    pub offered_at: Option<DateTime<Utc>>,
    /// How many times it was offered (an operator may re-offer); part of the SMS
    /// references, so that each offer is a new message and a replay is not.
    pub offers: u32,
    pub reminded: bool,
    #[serde(with = "crate::codec::time::option")]
    pub answered_at: Option<DateTime<Utc>>,
    pub payout: Option<PayoutChoice>,
    /// The first month a monthly benefit pays for (the month of consent, or
    /// `not_before` if later).
    pub first_month: Option<Month>,
    /// The first month this entitlement may pay: the month after the last one
    /// an earlier entitlement of the same program and recipient paid, so that a
    /// benefit offered again never pays a month twice.
    pub not_before: Option<Month>,
    pub payments: Vec<Payment>,
    /// Why the entitlement is in its state, in words.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    #[serde(with = "crate::codec::time")]
    pub at: DateTime<Utc>,
    pub what: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewVerdict {
    Verified,
    Disputed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub verdict: ReviewVerdict,
    pub by: String,
    #[serde(with = "crate::codec::time")]
    pub at: DateTime<Utc>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyRecord {
    pub family_id: FamilyId,
    pub members: Vec<Member>,
    pub address: Option<Address>,
    pub housing: Option<Housing>,
    pub social_contract: bool,
    /// Sequence number of the last feed-log entry applied; entries at or below it
    /// are skipped on replay, which makes application exactly-once.
    pub applied_seq: u64,
    pub evaluation: Option<Evaluation>,
    pub entitlements: Vec<Entitlement>,
    /// Level and eligibility changes, newest last, at most [`HISTORY_ENTRIES_KEPT`].
    pub history: Vec<HistoryEntry>,
    pub review: Option<Review>,
    pub next_entitlement_number: u32,
}

impl FamilyRecord {
    pub fn new(family_id: FamilyId) -> Self {
        FamilyRecord {
            family_id,
            members: Vec::new(),
            address: None,
            housing: None,
            social_contract: false,
            applied_seq: 0,
            evaluation: None,
            entitlements: Vec::new(),
            history: Vec::new(),
            review: None,
            next_entitlement_number: 1,
        }
    }

    pub fn member(&self, iin: &Iin) -> Option<&Member> {
        self.members.iter().find(|member| &member.facts.iin == iin)
    }

    pub fn member_mut(&mut self, iin: &Iin) -> Option<&mut Member> {
        self.members
            .iter_mut()
            .find(|member| &member.facts.iin == iin)
    }

    pub fn push_history(&mut self, at: DateTime<Utc>, what: String) {
        self.history.push(HistoryEntry { at, what });
        if self.history.len() > HISTORY_ENTRIES_KEPT {
            let excess = self.history.len() - HISTORY_ENTRIES_KEPT;
            self.history.drain(..excess);
        }
    }
}
