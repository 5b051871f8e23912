//! Feed events as the agencies send them, validated into typed values, and the
//! entries of the durable feed log that carries every input of a family.
//!
//! Parsing is strict and explains itself: a bad event is rejected with a reason an
//! integrator can act on ("data.iin: IIN check digit is 3, expected 7"). This module
//! never applies an event; the pure applier in `actors` does.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::ids::{FamilyId, Iban, Iin, Locality, Month, Phone, Region, Sex};
use crate::money::Money;
use crate::record::{
    Attainment, Award, DisabilityGroup, EmploymentStatus, Enrollment, IncomeSource, PayoutChoice,
    Role, Tenure, Utility,
};

/// The longest event id an agency may use.
pub const EVENT_ID_LENGTH_MAX: usize = 128;
/// The longest full name accepted, in characters.
pub const FULL_NAME_LENGTH_MAX: usize = 200;

/// The typed payload of one feed event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventData {
    CitizenRegistered {
        iin: Iin,
        full_name: String,
        #[serde(with = "crate::codec::date")]
        birth_date: NaiveDate,
        sex: Sex,
    },
    CitizenDied {
        iin: Iin,
        #[serde(with = "crate::codec::date")]
        date: NaiveDate,
    },
    MemberAdded {
        family_id: FamilyId,
        iin: Iin,
        role: Role,
    },
    MemberRemoved {
        family_id: FamilyId,
        iin: Iin,
    },
    AddressChanged {
        family_id: FamilyId,
        region: Region,
        locality: Locality,
    },
    ContactChanged {
        iin: Iin,
        phone: Phone,
    },
    IncomeReported {
        iin: Iin,
        month: Month,
        amount: Money,
        source: IncomeSource,
    },
    EmploymentChanged {
        iin: Iin,
        status: EmploymentStatus,
    },
    DebtChanged {
        iin: Iin,
        non_mortgage_debt: bool,
    },
    InsuranceChanged {
        iin: Iin,
        insured: bool,
    },
    DisabilityAssessed {
        iin: Iin,
        group: DisabilityGroup,
        #[serde(with = "crate::codec::date::option")]
        until: Option<NaiveDate>,
    },
    DisabilityEnded {
        iin: Iin,
        #[serde(with = "crate::codec::date")]
        date: NaiveDate,
    },
    HousingChanged {
        family_id: FamilyId,
        tenure: Tenure,
        /// Tenths of a square metre.
        area_decimetres: u32,
        utilities: BTreeSet<Utility>,
    },
    EducationChanged {
        iin: Iin,
        enrolled: Enrollment,
        attainment: Attainment,
    },
    AwardGranted {
        iin: Iin,
        award: Award,
    },
    SocialContractChanged {
        family_id: FamilyId,
        signed: bool,
    },
    PayoutAccountChanged {
        iin: Iin,
        iban: Iban,
    },
    SocialWalletOpened {
        iin: Iin,
    },
}

/// Who an event is about: a family directly, or a citizen (routed to their family
/// through the citizen index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject<'a> {
    Family(&'a FamilyId),
    Citizen(&'a Iin),
}

impl EventData {
    pub fn subject(&self) -> Subject<'_> {
        use EventData::*;
        match self {
            MemberAdded { family_id, .. }
            | MemberRemoved { family_id, .. }
            | AddressChanged { family_id, .. }
            | HousingChanged { family_id, .. }
            | SocialContractChanged { family_id, .. } => Subject::Family(family_id),
            CitizenRegistered { iin, .. }
            | CitizenDied { iin, .. }
            | ContactChanged { iin, .. }
            | IncomeReported { iin, .. }
            | EmploymentChanged { iin, .. }
            | DebtChanged { iin, .. }
            | InsuranceChanged { iin, .. }
            | DisabilityAssessed { iin, .. }
            | DisabilityEnded { iin, .. }
            | EducationChanged { iin, .. }
            | AwardGranted { iin, .. }
            | PayoutAccountChanged { iin, .. }
            | SocialWalletOpened { iin, .. } => Subject::Citizen(iin),
        }
    }

    /// The contract's name of the event type.
    pub fn type_name(&self) -> &'static str {
        use EventData::*;
        match self {
            CitizenRegistered { .. } => "citizen.registered",
            CitizenDied { .. } => "citizen.died",
            MemberAdded { .. } => "family.member_added",
            MemberRemoved { .. } => "family.member_removed",
            AddressChanged { .. } => "family.address_changed",
            ContactChanged { .. } => "citizen.contact_changed",
            IncomeReported { .. } => "income.reported",
            EmploymentChanged { .. } => "employment.changed",
            DebtChanged { .. } => "debt.changed",
            InsuranceChanged { .. } => "insurance.changed",
            DisabilityAssessed { .. } => "disability.assessed",
            DisabilityEnded { .. } => "disability.ended",
            HousingChanged { .. } => "housing.changed",
            EducationChanged { .. } => "education.changed",
            AwardGranted { .. } => "award.granted",
            SocialContractChanged { .. } => "social_contract.changed",
            PayoutAccountChanged { .. } => "payout.account_changed",
            SocialWalletOpened { .. } => "social_wallet.opened",
        }
    }
}

/// The event types of the contract and the agency that sends each by default.
pub const EVENT_TYPES: [(&str, &str); 18] = [
    ("citizen.registered", "population"),
    ("citizen.died", "population"),
    ("family.member_added", "population"),
    ("family.member_removed", "population"),
    ("family.address_changed", "population"),
    ("citizen.contact_changed", "population"),
    ("income.reported", "income"),
    ("employment.changed", "income"),
    ("debt.changed", "income"),
    ("insurance.changed", "health"),
    ("disability.assessed", "health"),
    ("disability.ended", "health"),
    ("housing.changed", "housing"),
    ("education.changed", "education"),
    ("award.granted", "social"),
    ("social_contract.changed", "social"),
    ("payout.account_changed", "payments"),
    ("social_wallet.opened", "payments"),
];

/// The event types an agency of this name may send under the contract.
pub fn default_types_for(agency: &str) -> Vec<&'static str> {
    EVENT_TYPES
        .iter()
        .filter(|(_, owner)| *owner == agency)
        .map(|(name, _)| *name)
        .collect()
}

/// One validated feed event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEvent {
    pub id: String,
    #[serde(with = "crate::codec::time")]
    pub occurred_at: DateTime<Utc>,
    pub data: EventData,
}

/// Why an event was rejected, in words for the integrator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EventError(pub String);

fn error(message: impl Into<String>) -> EventError {
    EventError(message.into())
}

/// The envelope of one event, read in one pass over its text: the small fields
/// as JSON values (so that a wrong type gets its own reason) and `data` as the
/// raw text, parsed once into the type's fields.
#[derive(Deserialize)]
struct Envelope<'a> {
    id: Option<serde_json::Value>,
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
    occurred_at: Option<serde_json::Value>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    agency: Option<serde_json::Value>,
}

/// One event as it arrived, validated. What could be read of a refused event is
/// kept to name it.
#[derive(Debug)]
pub struct ParsedEvent {
    /// The event's id, when it has a readable one.
    pub id: Option<String>,
    /// The contract type the event claims, when it is one (never free text).
    pub claimed_type: Option<&'static str>,
    /// The `agency` field, which only bulk-load lines carry.
    pub agency: Option<serde_json::Value>,
    /// The text is not JSON at all (as opposed to JSON that is not a valid event).
    pub not_json: bool,
    pub event: Result<FeedEvent, EventError>,
}

/// Validates one event from its JSON text, in one pass: no intermediate JSON tree.
pub fn parse_event_text(text: &str) -> ParsedEvent {
    let mut parsed = ParsedEvent {
        id: None,
        claimed_type: None,
        agency: None,
        not_json: false,
        event: Err(error("an event must be a JSON object")),
    };
    if !text.trim_start().starts_with('{') {
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
            parsed.not_json = true;
            parsed.event = Err(error(format!("not JSON: {e}")));
        }
        return parsed;
    }
    let envelope: Envelope<'_> = match serde_json::from_str(text) {
        Ok(envelope) => envelope,
        Err(e) => {
            parsed.not_json = e.is_syntax() || e.is_eof();
            parsed.event = Err(if parsed.not_json {
                error(format!("not JSON: {e}"))
            } else {
                error(format!("malformed event: {e}"))
            });
            return parsed;
        }
    };
    parsed.id = match &envelope.id {
        Some(serde_json::Value::String(id)) => Some(id.clone()),
        _ => None,
    };
    parsed.claimed_type = match &envelope.kind {
        Some(serde_json::Value::String(kind)) => EVENT_TYPES
            .iter()
            .find(|(name, _)| name == kind)
            .map(|(name, _)| *name),
        _ => None,
    };
    parsed.agency = envelope.agency.clone();
    parsed.event = validate(envelope);
    parsed
}

/// Validates one event already parsed as a JSON value (tests and tools build
/// events with `json!`).
pub fn parse_event(value: serde_json::Value) -> Result<FeedEvent, EventError> {
    parse_event_text(&value.to_string()).event
}

fn validate(envelope: Envelope<'_>) -> Result<FeedEvent, EventError> {
    let id = match envelope.id {
        Some(serde_json::Value::String(id)) => id,
        Some(_) => return Err(error("id must be a string")),
        None => return Err(error("missing field id")),
    };
    if id.is_empty() || id.len() > EVENT_ID_LENGTH_MAX || id.chars().any(char::is_control) {
        return Err(error(format!(
            "id must be 1-{EVENT_ID_LENGTH_MAX} printable characters"
        )));
    }
    let kind = match envelope.kind {
        Some(serde_json::Value::String(kind)) => kind,
        Some(_) => return Err(error("type must be a string")),
        None => return Err(error("missing field type")),
    };
    let occurred_at = match envelope.occurred_at {
        Some(serde_json::Value::String(text)) => DateTime::parse_from_rfc3339(&text)
            .map_err(|e| error(format!("occurred_at is not an RFC 3339 time: {e}")))?
            .with_timezone(&Utc),
        Some(_) => return Err(error("occurred_at must be an RFC 3339 string")),
        None => return Err(error("missing field occurred_at")),
    };
    let data = match envelope.data {
        Some(data) if data.get().starts_with('{') => data,
        Some(_) => return Err(error("data must be an object")),
        None => return Err(error("missing field data")),
    };
    let data = parse_data(&kind, data)?;
    Ok(FeedEvent {
        id,
        occurred_at,
        data,
    })
}

fn fields<T: serde::de::DeserializeOwned>(data: &RawValue) -> Result<T, EventError> {
    serde_json::from_str(data.get()).map_err(|e| error(format!("data: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisteredData {
    iin: Iin,
    full_name: String,
    birth_date: NaiveDate,
    sex: Sex,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IinDate {
    iin: Iin,
    date: NaiveDate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberData {
    family_id: FamilyId,
    iin: Iin,
    role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemovedData {
    family_id: FamilyId,
    iin: Iin,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressData {
    family_id: FamilyId,
    region: Region,
    locality: Locality,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactData {
    iin: Iin,
    phone: Phone,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncomeData {
    iin: Iin,
    month: Month,
    amount: Money,
    source: IncomeSource,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmploymentData {
    iin: Iin,
    status: EmploymentStatus,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DebtData {
    iin: Iin,
    non_mortgage_debt: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InsuranceData {
    iin: Iin,
    insured: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisabilityData {
    iin: Iin,
    group: DisabilityGroup,
    until: Option<NaiveDate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HousingData {
    family_id: FamilyId,
    tenure: Tenure,
    area_m2: serde_json::Number,
    utilities: Vec<Utility>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EducationData {
    iin: Iin,
    enrolled: Enrollment,
    attainment: Attainment,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AwardData {
    iin: Iin,
    award: Award,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContractData {
    family_id: FamilyId,
    signed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountData {
    iin: Iin,
    iban: Iban,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IinOnly {
    iin: Iin,
}

/// The largest living area accepted, in square metres; more is a data error.
pub const AREA_M2_MAX: u32 = 10_000;

/// Parses `54.5` or `54` square metres into tenths, without floating point.
fn parse_area(number: &serde_json::Number) -> Result<u32, EventError> {
    let text = number.to_string();
    let bad = || {
        error(format!("data.area_m2 must be a number of square metres with at most one decimal from 0 to {AREA_M2_MAX}, got {text}"))
    };
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction.trim_end_matches('0')),
        None => (text.as_str(), ""),
    };
    if fraction.len() > 1 || whole.starts_with('-') || text.contains(['e', 'E']) {
        return Err(bad());
    }
    let whole: u32 = whole.parse().map_err(|_| bad())?;
    let tenth: u32 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| bad())?
    };
    if whole > AREA_M2_MAX {
        return Err(bad());
    }
    Ok(whole * 10 + tenth)
}

fn parse_data(kind: &str, data: &RawValue) -> Result<EventData, EventError> {
    Ok(match kind {
        "citizen.registered" => {
            let d: RegisteredData = fields(data)?;
            let name_length = d.full_name.chars().count();
            if d.full_name.trim().is_empty() || name_length > FULL_NAME_LENGTH_MAX {
                return Err(error(format!(
                    "data.full_name must be 1-{FULL_NAME_LENGTH_MAX} characters"
                )));
            }
            if d.iin.birth_date() != d.birth_date {
                return Err(error(format!(
                    "data.birth_date {} disagrees with the birth date {} encoded in the IIN",
                    d.birth_date,
                    d.iin.birth_date()
                )));
            }
            if d.iin.sex() != d.sex {
                return Err(error(
                    "data.sex disagrees with the sex encoded in the IIN".to_owned(),
                ));
            }
            EventData::CitizenRegistered {
                iin: d.iin,
                full_name: d.full_name,
                birth_date: d.birth_date,
                sex: d.sex,
            }
        }
        "citizen.died" => {
            let d: IinDate = fields(data)?;
            EventData::CitizenDied {
                iin: d.iin,
                date: d.date,
            }
        }
        "family.member_added" => {
            let d: MemberData = fields(data)?;
            EventData::MemberAdded {
                family_id: d.family_id,
                iin: d.iin,
                role: d.role,
            }
        }
        "family.member_removed" => {
            let d: RemovedData = fields(data)?;
            EventData::MemberRemoved {
                family_id: d.family_id,
                iin: d.iin,
            }
        }
        "family.address_changed" => {
            let d: AddressData = fields(data)?;
            EventData::AddressChanged {
                family_id: d.family_id,
                region: d.region,
                locality: d.locality,
            }
        }
        "citizen.contact_changed" => {
            let d: ContactData = fields(data)?;
            EventData::ContactChanged {
                iin: d.iin,
                phone: d.phone,
            }
        }
        "income.reported" => {
            let d: IncomeData = fields(data)?;
            EventData::IncomeReported {
                iin: d.iin,
                month: d.month,
                amount: d.amount,
                source: d.source,
            }
        }
        "employment.changed" => {
            let d: EmploymentData = fields(data)?;
            EventData::EmploymentChanged {
                iin: d.iin,
                status: d.status,
            }
        }
        "debt.changed" => {
            let d: DebtData = fields(data)?;
            EventData::DebtChanged {
                iin: d.iin,
                non_mortgage_debt: d.non_mortgage_debt,
            }
        }
        "insurance.changed" => {
            let d: InsuranceData = fields(data)?;
            EventData::InsuranceChanged {
                iin: d.iin,
                insured: d.insured,
            }
        }
        "disability.assessed" => {
            let d: DisabilityData = fields(data)?;
            EventData::DisabilityAssessed {
                iin: d.iin,
                group: d.group,
                until: d.until,
            }
        }
        "disability.ended" => {
            let d: IinDate = fields(data)?;
            EventData::DisabilityEnded {
                iin: d.iin,
                date: d.date,
            }
        }
        "housing.changed" => {
            let d: HousingData = fields(data)?;
            EventData::HousingChanged {
                family_id: d.family_id,
                tenure: d.tenure,
                area_decimetres: parse_area(&d.area_m2)?,
                utilities: d.utilities.into_iter().collect(),
            }
        }
        "education.changed" => {
            let d: EducationData = fields(data)?;
            EventData::EducationChanged {
                iin: d.iin,
                enrolled: d.enrolled,
                attainment: d.attainment,
            }
        }
        "award.granted" => {
            let d: AwardData = fields(data)?;
            EventData::AwardGranted {
                iin: d.iin,
                award: d.award,
            }
        }
        "social_contract.changed" => {
            let d: ContractData = fields(data)?;
            EventData::SocialContractChanged {
                family_id: d.family_id,
                signed: d.signed,
            }
        }
        "payout.account_changed" => {
            let d: AccountData = fields(data)?;
            EventData::PayoutAccountChanged {
                iin: d.iin,
                iban: d.iban,
            }
        }
        "social_wallet.opened" => {
            let d: IinOnly = fields(data)?;
            EventData::SocialWalletOpened { iin: d.iin }
        }
        other => return Err(error(format!("unknown event type {other:?}"))),
    })
}

/// What a citizen's SMS reply said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplyAnswer {
    Consent(PayoutChoice),
    Refuse,
}

/// Timers that an entitlement can be waiting on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TimerKind {
    Reminder,
    Expiry,
}

/// An operator's action on a family, carried through the log like any input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperatorAction {
    Reevaluate,
    Reoffer {
        entitlement_id: String,
    },
    Review {
        verdict: crate::record::ReviewVerdict,
        note: String,
    },
}

/// One entry of the durable feed log. Every input that changes a family goes
/// through the log, so a crash at any point is repaired by replaying it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogEntry {
    Feed {
        agency: String,
        event: FeedEvent,
    },
    /// A reply matched to one open request of one family.
    SmsReply {
        family_id: FamilyId,
        entitlement_id: String,
        answer: ReplyAnswer,
        #[serde(with = "crate::codec::time")]
        received_at: DateTime<Utc>,
    },
    TimerFired {
        family_id: FamilyId,
        entitlement_id: String,
        kind: TimerKind,
        #[serde(with = "crate::codec::time")]
        due_at: DateTime<Utc>,
    },
    /// The bank's final word on one payment.
    PaymentOutcome {
        family_id: FamilyId,
        reference_id: String,
        succeeded: bool,
        reason: Option<String>,
    },
    /// The monthly cycle reaching one family.
    CycleDue {
        family_id: FamilyId,
        month: Month,
    },
    Operator {
        family_id: FamilyId,
        operator: String,
        action: OperatorAction,
        #[serde(with = "crate::codec::time")]
        at: DateTime<Utc>,
    },
}

impl LogEntry {
    /// The family this entry is for, when it names one directly.
    pub fn family_id(&self) -> Option<&FamilyId> {
        match self {
            LogEntry::Feed { .. } => None,
            LogEntry::SmsReply { family_id, .. }
            | LogEntry::TimerFired { family_id, .. }
            | LogEntry::PaymentOutcome { family_id, .. }
            | LogEntry::CycleDue { family_id, .. }
            | LogEntry::Operator { family_id, .. } => Some(family_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_parsing_names_what_it_can_of_a_refused_event() {
        let good = r#"{"id":"e-1","type":"citizen.died","occurred_at":"2026-10-01T10:00:00Z","data":{"iin":"900105300019","date":"2026-10-01"},"note":"ignored"}"#;
        let parsed = parse_event_text(good);
        assert_eq!(parsed.id.as_deref(), Some("e-1"));
        assert_eq!(parsed.claimed_type, Some("citizen.died"));
        assert!(!parsed.not_json);
        let event = parsed.event.expect("a valid event");
        assert_eq!(event.data.type_name(), "citizen.died");

        let not_json = parse_event_text("this is not json");
        assert!(not_json.not_json);
        assert!(not_json.id.is_none());
        assert!(not_json.event.unwrap_err().0.starts_with("not JSON"));

        let cut_short = parse_event_text(r#"{"id":"e-2","type":"#);
        assert!(cut_short.not_json);

        let array = parse_event_text("[1, 2]");
        assert!(!array.not_json);
        assert_eq!(array.event.unwrap_err().0, "an event must be a JSON object");

        let bad_data = parse_event_text(
            r#"{"id":"e-3","type":"citizen.died","occurred_at":"2026-10-01T10:00:00Z","data":{"iin":"900105300019"}}"#,
        );
        assert_eq!(bad_data.id.as_deref(), Some("e-3"));
        assert_eq!(bad_data.claimed_type, Some("citizen.died"));
        assert!(bad_data
            .event
            .unwrap_err()
            .0
            .contains("missing field `date`"));

        let data_not_object = parse_event_text(
            r#"{"id":"e-4","type":"citizen.died","occurred_at":"2026-10-01T10:00:00Z","data":[1]}"#,
        );
        assert_eq!(
            data_not_object.event.unwrap_err().0,
            "data must be an object"
        );

        let free_text_type = parse_event_text(
            r#"{"id":"e-5","type":"citizen.teleported","occurred_at":"2026-10-01T10:00:00Z","data":{}}"#,
        );
        assert_eq!(free_text_type.claimed_type, None);
        assert!(free_text_type
            .event
            .unwrap_err()
            .0
            .contains("unknown event type"));

        let number_id = parse_event_text(
            r#"{"id":7,"type":"citizen.died","occurred_at":"2026-10-01T10:00:00Z","data":{}}"#,
        );
        assert!(number_id.id.is_none());
        assert_eq!(number_id.event.unwrap_err().0, "id must be a string");
    }
}
