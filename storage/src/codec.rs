//! How values are laid out on disk: one format-version byte, then bincode 2.0.1
//! (standard configuration, serde). Changing a stored type's shape means a new
//! version byte and a migration that reads the old one; decoding never panics.
//!
//! # Formats
//! - **2** (written since the tenth session): amounts, months, dates and times in
//!   binary — tiyn as a number, a month as months since year 0, a date as days
//!   since 1 January of year 1, a time as seconds and nanoseconds since 1970.
//! - **1**: the same values as the text they have in JSON (`"16446.25"`,
//!   `"2026-03"`, RFC 3339). Formatting and parsing that text was about half of
//!   encoding and decoding a family record (profile of a re-score,
//!   BENCHMARKS.md). Still read: a record of format 1 is written in format 2
//!   the next time it changes.
//!
//! The types choose their form through [`binary_form`]: binary for bincode
//! (which is not human-readable) unless a value of format 1 is being decoded;
//! JSON is human-readable and keeps the text. `DateTime<Utc>` and `NaiveDate`
//! are chrono's, so stored fields of those types name [`time`], [`date`] and
//! their `Option` forms in `#[serde(with = ...)]`.

use std::cell::Cell;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The version byte in front of every value written now.
pub const FORMAT_VERSION: u8 = 2;
/// The oldest version byte still read.
pub const FORMAT_VERSION_OLDEST: u8 = 1;

thread_local! {
    /// Set while a value of format 1 is decoded on this thread.
    static FORMAT_1: Cell<bool> = const { Cell::new(false) };
}

/// Whether a value takes its binary form: in a stored value of the current
/// format, never in JSON (`human_readable`) nor in a value of format 1.
pub fn binary_form(human_readable: bool) -> bool {
    !human_readable && !FORMAT_1.with(Cell::get)
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a value with its format-version byte.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![FORMAT_VERSION];
    // Encoding into a Vec can only fail for types serde cannot describe, which
    // would be a programmer error in a stored type, never bad input.
    bincode::serde::encode_into_std_write(value, &mut bytes, config())
        .expect("stored types always encode");
    bytes
}

/// Why a stored value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty value")]
    Empty,
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    #[error("bincode: {0}")]
    Bincode(String),
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// The largest value decoding will allocate for. A corrupt length prefix must
/// give an error, not an allocation that aborts the process.
pub const DECODE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Decodes a value written by [`encode`], in the current format or an older one.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    match version {
        FORMAT_VERSION => decode_body(body),
        FORMAT_VERSION_OLDEST => in_format_1(|| decode_body(body)),
        other => Err(DecodeError::UnknownVersion(other)),
    }
}

fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let limited = config().with_limit::<DECODE_BYTES_MAX>();
    let (value, read) = bincode::serde::decode_from_slice(body, limited)
        .map_err(|e| DecodeError::Bincode(e.to_string()))?;
    if read != body.len() {
        return Err(DecodeError::Trailing(body.len() - read));
    }
    Ok(value)
}

/// Runs `work` with this thread reading and writing format 1.
fn in_format_1<R>(work: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            FORMAT_1.with(|format_1| format_1.set(self.0));
        }
    }
    let _reset = Reset(FORMAT_1.with(|format_1| format_1.replace(true)));
    work()
}

/// `#[serde(with = "crate::codec::time")]`: a `DateTime<Utc>` as seconds and
/// nanoseconds since 1970 in binary, as chrono's RFC 3339 text otherwise.
pub mod time {
    use chrono::{DateTime, Utc};
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if super::binary_form(serializer.is_human_readable()) {
            (time.timestamp(), time.timestamp_subsec_nanos()).serialize(serializer)
        } else {
            time.serialize(serializer)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        if super::binary_form(deserializer.is_human_readable()) {
            let (seconds, nanos) = <(i64, u32)>::deserialize(deserializer)?;
            DateTime::from_timestamp(seconds, nanos)
                .ok_or_else(|| D::Error::custom("time out of range"))
        } else {
            DateTime::<Utc>::deserialize(deserializer)
        }
    }

    /// The same for `Option<DateTime<Utc>>`.
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        #[derive(serde::Serialize, serde::Deserialize)]
        struct Time(#[serde(with = "super")] DateTime<Utc>);

        pub fn serialize<S: Serializer>(
            time: &Option<DateTime<Utc>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            serde::Serialize::serialize(&time.map(Time), serializer)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            Ok(Option::<Time>::deserialize(deserializer)?.map(|time| time.0))
        }
    }
}

/// `#[serde(with = "crate::codec::date")]`: a `NaiveDate` as days since
/// 1 January of year 1 in binary, as chrono's `YYYY-MM-DD` otherwise.
pub mod date {
    use chrono::{Datelike, NaiveDate};
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(date: &NaiveDate, serializer: S) -> Result<S::Ok, S::Error> {
        if super::binary_form(serializer.is_human_readable()) {
            date.num_days_from_ce().serialize(serializer)
        } else {
            date.serialize(serializer)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<NaiveDate, D::Error> {
        if super::binary_form(deserializer.is_human_readable()) {
            NaiveDate::from_num_days_from_ce_opt(i32::deserialize(deserializer)?)
                .ok_or_else(|| D::Error::custom("date out of range"))
        } else {
            NaiveDate::deserialize(deserializer)
        }
    }

    /// The same for `Option<NaiveDate>`.
    pub mod option {
        use chrono::NaiveDate;
        use serde::{Deserialize, Deserializer, Serializer};

        #[derive(serde::Serialize, serde::Deserialize)]
        struct Date(#[serde(with = "super")] NaiveDate);

        pub fn serialize<S: Serializer>(
            date: &Option<NaiveDate>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            serde::Serialize::serialize(&date.map(Date), serializer)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<NaiveDate>, D::Error> {
            Ok(Option::<Date>::deserialize(deserializer)?.map(|date| date.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use chrono::{DateTime, NaiveDate, TimeZone, Utc};
    use proptest::collection::{btree_map, btree_set, vec};
    use proptest::prelude::*;

    use super::*;
    use crate::event::{EventData, FeedEvent, LogEntry, OperatorAction, ReplyAnswer, TimerKind};
    use crate::ids::{FamilyId, Iban, Iin, Locality, Month, Phone, Region, Sex};
    use crate::money::Money;
    use crate::record::{
        Address, Attainment, Award, AwardDecision, CitizenFacts, Criterion, Deprivation,
        Disability, DisabilityGroup, Education, Employment, EmploymentStatus, Enrollment,
        Entitlement, EntitlementState, Evaluation, FamilyRecord, Fraction, HistoryEntry, Housing,
        IncomeSource, Level, Member, Payment, PaymentStatus, PayoutChoice, ProgramDecision,
        Registration, Review, ReviewVerdict, Role, Tenure, Utility,
    };

    // ----- strategies, built from simple values -----

    fn time() -> impl Strategy<Value = DateTime<Utc>> {
        // 1970 to 2096, with nanoseconds, so that sub-second precision is covered too.
        (0i64..4_000_000_000, 0u32..1_000_000_000)
            .prop_map(|(seconds, nanos)| Utc.timestamp_opt(seconds, nanos).unwrap())
    }

    fn date() -> impl Strategy<Value = NaiveDate> {
        (1900i32..2090, 1u32..=12, 1u32..=28)
            .prop_map(|(year, month, day)| NaiveDate::from_ymd_opt(year, month, day).unwrap())
    }

    fn month() -> impl Strategy<Value = Month> {
        (2000i32..2040, 1u32..=12).prop_map(|(year, month)| Month::new(year, month).unwrap())
    }

    fn sex() -> impl Strategy<Value = Sex> {
        prop_oneof![Just(Sex::Male), Just(Sex::Female)]
    }

    fn iin() -> impl Strategy<Value = Iin> {
        (date(), sex(), 0u32..10_000)
            .prop_filter_map("serial without a check digit", |(birth, sex, serial)| {
                Iin::from_parts(birth, sex, serial)
            })
    }

    fn phone() -> impl Strategy<Value = Phone> {
        "\\+7[0-9]{10}".prop_map(|text| Phone::parse(&text).unwrap())
    }

    fn iban() -> impl Strategy<Value = Iban> {
        ("[0-9]{3}", "[A-Z0-9]{13}").prop_map(|(bank, account)| Iban::from_parts(&bank, &account))
    }

    fn money() -> impl Strategy<Value = Money> {
        any::<u64>().prop_map(Money::from_tiyn)
    }

    fn family_id() -> impl Strategy<Value = FamilyId> {
        "[A-Za-z0-9._-]{1,64}".prop_map(|text| FamilyId::parse(&text).unwrap())
    }

    fn text() -> impl Strategy<Value = String> {
        // Any Unicode, including the empty string and multi-byte characters.
        ".{0,12}"
    }

    fn fraction() -> impl Strategy<Value = Fraction> {
        (any::<u32>(), 1u32..).prop_map(|(numerator, denominator)| Fraction {
            numerator,
            denominator,
        })
    }

    fn income_source() -> impl Strategy<Value = IncomeSource> {
        prop_oneof![
            Just(IncomeSource::Salary),
            Just(IncomeSource::Business),
            Just(IncomeSource::Pension),
            Just(IncomeSource::Benefit),
            Just(IncomeSource::Other),
        ]
    }

    fn employment_status() -> impl Strategy<Value = EmploymentStatus> {
        prop_oneof![
            Just(EmploymentStatus::Employed),
            Just(EmploymentStatus::SelfEmployed),
            Just(EmploymentStatus::Unemployed),
            Just(EmploymentStatus::Student),
            Just(EmploymentStatus::Retired),
            Just(EmploymentStatus::Caregiver),
        ]
    }

    fn citizen_facts() -> impl Strategy<Value = CitizenFacts> {
        let identity = (
            iin(),
            proptest::option::of((text(), date(), sex())),
            proptest::option::of(date()),
            proptest::option::of(phone()),
        );
        let incomes = btree_map(month(), btree_map(income_source(), money(), 0..3), 0..4);
        let status = (
            proptest::option::of((
                employment_status(),
                time(),
                proptest::option::of(employment_status()),
            )),
            any::<bool>(),
            proptest::option::of(any::<bool>()),
            proptest::option::of((0usize..4, proptest::option::of(date()))),
            proptest::option::of((0usize..5, 0usize..5)),
        );
        let payout = (
            btree_set(0usize..3, 0..3),
            proptest::option::of(iban()),
            any::<bool>(),
            any::<u64>(),
        );
        (identity, incomes, status, payout).prop_map(
            |(
                (iin, registration, died_on, phone),
                incomes,
                (employment, debt, insured, disability, education),
                (awards, iban, social_wallet, applied_seq),
            )| {
                let groups = [
                    DisabilityGroup::One,
                    DisabilityGroup::Two,
                    DisabilityGroup::Three,
                    DisabilityGroup::Child,
                ];
                let enrollments = [
                    Enrollment::None,
                    Enrollment::Preschool,
                    Enrollment::School,
                    Enrollment::College,
                    Enrollment::University,
                ];
                let attainments = [
                    Attainment::None,
                    Attainment::Primary,
                    Attainment::Secondary,
                    Attainment::Vocational,
                    Attainment::Higher,
                ];
                let all_awards = [Award::KumisAlka, Award::AltynAlka, Award::MotherHeroine];
                CitizenFacts {
                    iin,
                    registration: registration.map(|(full_name, birth_date, sex)| Registration {
                        full_name,
                        birth_date,
                        sex,
                    }),
                    died_on,
                    phone,
                    incomes,
                    employment: employment.map(|(status, since, previous)| Employment {
                        status,
                        since,
                        previous,
                    }),
                    non_mortgage_debt: debt,
                    insured,
                    disability: disability.map(|(group, until)| Disability {
                        group: groups[group],
                        until,
                    }),
                    education: education.map(|(enrolled, attainment)| Education {
                        enrolled: enrollments[enrolled],
                        attainment: attainments[attainment],
                    }),
                    awards: awards.into_iter().map(|index| all_awards[index]).collect(),
                    iban,
                    social_wallet,
                    applied_seq,
                }
            },
        )
    }

    fn payment() -> impl Strategy<Value = Payment> {
        (
            month(),
            1u32..5,
            "[a-z0-9-]{1,40}",
            money(),
            text(),
            0usize..3,
            proptest::option::of(text()),
        )
            .prop_map(
                |(period, attempt, reference_id, amount, payee_fa, status, status_reason)| {
                    Payment {
                        period,
                        attempt,
                        reference_id,
                        amount,
                        payee_fa,
                        status: [
                            PaymentStatus::Pending,
                            PaymentStatus::Succeeded,
                            PaymentStatus::Rejected,
                        ][status],
                        status_reason,
                    }
                },
            )
    }

    fn entitlement() -> impl Strategy<Value = Entitlement> {
        let identity = (
            text(),
            text(),
            iin(),
            0usize..EntitlementState::ALL.len(),
            money(),
            proptest::option::of((month(), money())),
            any::<bool>(),
        );
        let offer = (
            proptest::option::of(month()),
            proptest::option::of(month()),
            any::<u16>(),
            time(),
            proptest::option::of(time()),
            any::<u32>(),
            any::<bool>(),
        );
        let answer = (
            proptest::option::of(time()),
            proptest::option::of(prop_oneof![
                Just(PayoutChoice::BankAccount),
                Just(PayoutChoice::SocialWallet)
            ]),
            proptest::option::of(month()),
            vec(payment(), 0..4),
            text(),
        );
        (identity, offer, answer).prop_map(
            |(
                (id, program, recipient, state, amount, next_amount, one_off),
                (occasion, last_month, code, created_at, offered_at, offers, reminded),
                (answered_at, payout, first_month, payments, reason),
            )| Entitlement {
                id,
                program,
                recipient,
                state: EntitlementState::ALL[state],
                amount,
                next_amount,
                one_off,
                occasion,
                last_month,
                code,
                created_at,
                offered_at,
                offers,
                reminded,
                answered_at,
                payout,
                first_month,
                not_before: first_month,
                payments,
                reason,
            },
        )
    }

    fn evaluation() -> impl Strategy<Value = Evaluation> {
        let decision = (
            text(),
            any::<bool>(),
            vec(text(), 0..3),
            proptest::option::of((
                iin(),
                money(),
                proptest::option::of(month()),
                any::<bool>(),
                proptest::option::of(month()),
            )),
        )
            .prop_map(|(code, eligible, reasons, award)| ProgramDecision {
                code,
                eligible,
                reasons,
                more_awards: Vec::new(),
                award: award.map(|(recipient, amount, occasion, one_off, last_month)| {
                    AwardDecision {
                        recipient,
                        amount,
                        occasion,
                        one_off,
                        last_month,
                    }
                }),
            });
        let deprivation = (0usize..5, text(), fraction(), vec(text(), 0..3)).prop_map(
            |(criterion, indicator, weight, facts)| Deprivation {
                criterion: Criterion::ALL[criterion],
                indicator,
                weight,
                facts,
            },
        );
        (
            text(),
            time(),
            fraction(),
            0usize..5,
            btree_map(0usize..5, fraction(), 0..5),
            vec(deprivation, 0..3),
            vec(decision, 0..3),
        )
            .prop_map(
                |(rules_version, evaluated_at, score, level, criteria, deprivations, programs)| {
                    Evaluation {
                        rules_version,
                        evaluated_at,
                        score,
                        level: Level::ALL[level],
                        criteria: criteria
                            .into_iter()
                            .map(|(criterion, weight)| (Criterion::ALL[criterion], weight))
                            .collect(),
                        deprivations,
                        programs,
                    }
                },
            )
    }

    fn family_record() -> impl Strategy<Value = FamilyRecord> {
        let roles = [
            Role::Head,
            Role::Spouse,
            Role::Child,
            Role::Parent,
            Role::Other,
        ];
        let member = (0usize..5, citizen_facts()).prop_map(move |(role, facts)| Member {
            role: roles[role],
            facts,
        });
        let place = (
            proptest::option::of((0usize..Region::ALL.len(), any::<bool>())),
            proptest::option::of((0usize..4, any::<u32>(), btree_set(0usize..4, 0..4))),
            any::<bool>(),
            any::<u64>(),
        );
        let review =
            proptest::option::of((any::<bool>(), text(), time(), text())).prop_map(|review| {
                review.map(|(verified, by, at, note)| Review {
                    verdict: if verified {
                        ReviewVerdict::Verified
                    } else {
                        ReviewVerdict::Disputed
                    },
                    by,
                    at,
                    note,
                })
            });
        (
            family_id(),
            vec(member, 0..4),
            place,
            proptest::option::of(evaluation()),
            vec(entitlement(), 0..3),
            vec((time(), text()), 0..3),
            review,
            any::<u32>(),
        )
            .prop_map(
                |(
                    family_id,
                    members,
                    (address, housing, social_contract, applied_seq),
                    evaluation,
                    entitlements,
                    history,
                    review,
                    next_entitlement_number,
                )| {
                    let tenures = [Tenure::Owned, Tenure::Rented, Tenure::Social, Tenure::None];
                    let utilities = [
                        Utility::Water,
                        Utility::Heating,
                        Utility::Sewerage,
                        Utility::Gas,
                    ];
                    FamilyRecord {
                        family_id,
                        members,
                        address: address.map(|(region, urban)| Address {
                            region: Region::ALL[region],
                            locality: if urban {
                                Locality::Urban
                            } else {
                                Locality::Rural
                            },
                        }),
                        housing: housing.map(|(tenure, area_decimetres, present)| Housing {
                            tenure: tenures[tenure],
                            area_decimetres,
                            utilities: present.into_iter().map(|index| utilities[index]).collect(),
                        }),
                        social_contract,
                        applied_seq,
                        evaluation,
                        entitlements,
                        history: history
                            .into_iter()
                            .map(|(at, what)| HistoryEntry { at, what })
                            .collect(),
                        review,
                        next_entitlement_number,
                    }
                },
            )
    }

    fn event_data() -> impl Strategy<Value = EventData> {
        prop_oneof![
            (iin(), text(), date(), sex()).prop_map(|(iin, full_name, birth_date, sex)| {
                EventData::CitizenRegistered {
                    iin,
                    full_name,
                    birth_date,
                    sex,
                }
            }),
            (iin(), phone()).prop_map(|(iin, phone)| EventData::ContactChanged { iin, phone }),
            (iin(), month(), money(), income_source()).prop_map(|(iin, month, amount, source)| {
                EventData::IncomeReported {
                    iin,
                    month,
                    amount,
                    source,
                }
            }),
            (family_id(), iin(), 0usize..5).prop_map(|(family_id, iin, role)| {
                EventData::MemberAdded {
                    family_id,
                    iin,
                    role: [
                        Role::Head,
                        Role::Spouse,
                        Role::Child,
                        Role::Parent,
                        Role::Other,
                    ][role],
                }
            }),
            (family_id(), any::<u32>(), btree_set(0usize..4, 0..4)).prop_map(
                |(family_id, area_decimetres, utilities)| EventData::HousingChanged {
                    family_id,
                    tenure: Tenure::Rented,
                    area_decimetres,
                    utilities: utilities
                        .into_iter()
                        .map(|index| {
                            [
                                Utility::Water,
                                Utility::Heating,
                                Utility::Sewerage,
                                Utility::Gas,
                            ][index]
                        })
                        .collect::<BTreeSet<_>>(),
                }
            ),
            (iin(), proptest::option::of(date())).prop_map(|(iin, until)| {
                EventData::DisabilityAssessed {
                    iin,
                    group: DisabilityGroup::Child,
                    until,
                }
            }),
            (iin(), iban()).prop_map(|(iin, iban)| EventData::PayoutAccountChanged { iin, iban }),
            iin().prop_map(|iin| EventData::SocialWalletOpened { iin }),
        ]
    }

    fn log_entry() -> impl Strategy<Value = LogEntry> {
        let choice = prop_oneof![
            Just(ReplyAnswer::Refuse),
            Just(ReplyAnswer::Consent(PayoutChoice::BankAccount)),
            Just(ReplyAnswer::Consent(PayoutChoice::SocialWallet)),
        ];
        let action = prop_oneof![
            Just(OperatorAction::Reevaluate),
            text().prop_map(|entitlement_id| OperatorAction::Reoffer { entitlement_id }),
            (any::<bool>(), text()).prop_map(|(verified, note)| OperatorAction::Review {
                verdict: if verified {
                    ReviewVerdict::Verified
                } else {
                    ReviewVerdict::Disputed
                },
                note,
            }),
        ];
        prop_oneof![
            (text(), text(), time(), event_data()).prop_map(|(agency, id, occurred_at, data)| {
                LogEntry::Feed {
                    agency,
                    event: FeedEvent {
                        id,
                        occurred_at,
                        data,
                    },
                }
            }),
            (family_id(), text(), choice, time()).prop_map(
                |(family_id, entitlement_id, answer, received_at)| LogEntry::SmsReply {
                    family_id,
                    entitlement_id,
                    answer,
                    received_at,
                }
            ),
            (family_id(), text(), any::<bool>(), time()).prop_map(
                |(family_id, entitlement_id, reminder, due_at)| LogEntry::TimerFired {
                    family_id,
                    entitlement_id,
                    kind: if reminder {
                        TimerKind::Reminder
                    } else {
                        TimerKind::Expiry
                    },
                    due_at,
                }
            ),
            (
                family_id(),
                text(),
                any::<bool>(),
                proptest::option::of(text())
            )
                .prop_map(|(family_id, reference_id, succeeded, reason)| {
                    LogEntry::PaymentOutcome {
                        family_id,
                        reference_id,
                        succeeded,
                        reason,
                    }
                }),
            (family_id(), month())
                .prop_map(|(family_id, month)| LogEntry::CycleDue { family_id, month }),
            (family_id(), text(), action, time()).prop_map(|(family_id, operator, action, at)| {
                LogEntry::Operator {
                    family_id,
                    operator,
                    action,
                    at,
                }
            }),
        ]
    }

    // ----- format 1 -----

    /// What the code before format 2 wrote: the text forms, version byte 1.
    fn encode_format_1<T: Serialize>(value: &T) -> Vec<u8> {
        let mut bytes = in_format_1(|| encode(value));
        bytes[0] = FORMAT_VERSION_OLDEST;
        bytes
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
            .collect()
    }

    /// Three family records and six log entries as the code before format 2
    /// wrote them (proptest's deterministic samples of this module's strategies).
    const FORMAT_1_FIXTURE: &str = include_str!("fixtures/format-1.hex");

    fn check_format_1<T>(bytes: &[u8]) -> T
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let value: T = decode(bytes).unwrap();
        assert_eq!(encode_format_1(&value), bytes, "the old encoder, exactly");
        let current = encode(&value);
        assert_eq!(decode::<T>(&current).as_ref(), Ok(&value));
        assert!(
            current.len() < bytes.len(),
            "{} against {}",
            current.len(),
            bytes.len()
        );
        value
    }

    #[test]
    fn records_and_entries_of_format_1_are_read() {
        let lines: Vec<Vec<u8>> = FORMAT_1_FIXTURE.lines().map(unhex).collect();
        assert_eq!(lines.len(), 9);
        let records: Vec<FamilyRecord> = lines[..3]
            .iter()
            .map(|bytes| check_format_1(bytes))
            .collect();
        assert!(records.iter().any(|record| !record.members.is_empty()));
        for bytes in &lines[3..] {
            check_format_1::<LogEntry>(bytes);
        }
        assert!(
            !FORMAT_1.with(Cell::get),
            "the thread is back to the current format"
        );
    }

    // ----- round trips -----

    /// Encodes, decodes, and checks the value came back equal; then checks that strict
    /// prefixes of the bytes are refused (never a panic, never a wrong value): every one of
    /// the first 64, then about 64 spread over the rest, to keep large records fast.
    fn check_round_trip<T>(value: &T)
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let bytes = encode(value);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<T>(&bytes).as_ref(), Ok(value));
        assert_eq!(decode::<T>(&bytes[..0]), Err(DecodeError::Empty));
        let step = (bytes.len() / 64).max(1);
        let lengths = (1..bytes.len().min(64)).chain((64..bytes.len()).step_by(step));
        for length in lengths.chain([bytes.len() - 1]) {
            match decode::<T>(&bytes[..length]) {
                Err(DecodeError::Bincode(_)) => {}
                other => panic!("prefix of {length}/{} bytes gave {other:?}", bytes.len()),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn citizen_facts_round_trip(facts in citizen_facts()) {
            check_round_trip(&facts);
        }

        #[test]
        fn values_of_format_1_are_read(record in family_record(), entry in log_entry()) {
            prop_assert_eq!(decode::<FamilyRecord>(&encode_format_1(&record)), Ok(record));
            prop_assert_eq!(decode::<LogEntry>(&encode_format_1(&entry)), Ok(entry));
        }

        #[test]
        fn family_record_round_trips(record in family_record()) {
            check_round_trip(&record);
        }

        #[test]
        fn the_scoring_projection_holds_the_inputs_and_no_contacts(record in family_record()) {
            let projection = record.scoring_projection();
            prop_assert_eq!(&projection.inputs.family_id, &record.family_id);
            prop_assert_eq!(projection.inputs.members.len(), record.members.len());
            for (kept, member) in projection.inputs.members.iter().zip(&record.members) {
                prop_assert_eq!(kept.facts.iin, member.facts.iin);
                prop_assert_eq!(kept.facts.birth_date(), member.facts.birth_date());
                prop_assert_eq!(&kept.facts.incomes, &member.facts.incomes);
                prop_assert!(kept.facts.registration.as_ref().is_none_or(|r| r.full_name.is_empty()));
                prop_assert!(kept.facts.phone.is_none() && kept.facts.iban.is_none());
            }
            prop_assert!(projection.inputs.evaluation.is_none() && projection.inputs.entitlements.is_empty());
            let outcome = projection.outcome.as_ref();
            prop_assert_eq!(outcome.map(|o| o.level), record.evaluation.as_ref().map(|e| e.level));
            if let (Some(outcome), Some(evaluation)) = (outcome, &record.evaluation) {
                prop_assert_eq!(outcome.programs.len(), evaluation.programs.len());
                for (summary, decision) in outcome.programs.iter().zip(&evaluation.programs) {
                    prop_assert_eq!(&summary.code, &decision.code);
                    prop_assert_eq!(summary.eligible, decision.eligible);
                    prop_assert_eq!(&summary.award, &decision.award);
                    prop_assert_eq!(&summary.more_awards, &decision.more_awards);
                }
            }
        }

        #[test]
        fn the_compact_form_reads_back_as_the_projection(
            records in vec(family_record(), 1..6),
        ) {
            // One scratch for all, as a scan reads them: what a family leaves
            // in the buffers must not show in the next.
            let mut scratch = crate::compact::Scratch::default();
            // Registered birth dates are mostly the IIN's, which the compact
            // form does not write twice: both kinds.
            let iin_births = records.iter().map(|record| {
                let mut record = record.clone();
                for member in &mut record.members {
                    let born = member.facts.iin.birth_date();
                    if let Some(registration) = &mut member.facts.registration {
                        registration.birth_date = born;
                    }
                }
                record
            });
            // Incomes in two months only: members then share months with
            // other sources, which must not share an income map's shape.
            let two_months = records.iter().map(|record| {
                let mut record = record.clone();
                for member in &mut record.members {
                    let incomes = std::mem::take(&mut member.facts.incomes);
                    member.facts.incomes = incomes
                        .into_iter()
                        .enumerate()
                        .map(|(index, (_, by_source))| {
                            (Month::new(2026, 9 + index as u32 % 2).unwrap(), by_source)
                        })
                        .collect();
                }
                record
            });
            // More members than the scratch keeps a record for each size of,
            // and a different number each time: the shared record grows and shrinks.
            let crowded = records.iter().filter(|record| !record.members.is_empty()).map(|record| {
                let mut record = record.clone();
                let wanted = crate::compact::SHAPES + 1 + record.members.len();
                record.members = record.members.iter().cycle().take(wanted).cloned().collect();
                record
            });
            let records: Vec<_> = records
                .iter()
                .cloned()
                .chain(iin_births)
                .chain(crowded)
                .chain(two_months)
                .collect();
            for record in &records {
                let mut bytes = Vec::new();
                crate::compact::encode(record, &mut bytes);
                let projection = record.scoring_projection();
                let mut inputs = projection.inputs.clone();
                inputs.family_id = scratch.record().family_id.clone();
                // Twice: the second read finds every buffer in this family's shape.
                for _ in 0..2 {
                    scratch.decode(&bytes).unwrap();
                    prop_assert_eq!(scratch.record(), &inputs);
                    prop_assert_eq!(scratch.outcome(), projection.outcome.as_ref());
                }
                // Without incomes where there is a stored outcome, then whole again.
                let only_undecided = crate::compact::IncomeNeed::OnlyUndecided;
                let mut blind = inputs.clone();
                if projection.outcome.is_some() {
                    for member in &mut blind.members {
                        member.facts.incomes.clear();
                    }
                }
                scratch.decode_for(&bytes, only_undecided).unwrap();
                prop_assert_eq!(scratch.record(), &blind);
                prop_assert_eq!(scratch.outcome(), projection.outcome.as_ref());
                scratch.decode(&bytes).unwrap();
                prop_assert_eq!(scratch.record(), &inputs);
                for length in 0..bytes.len() {
                    prop_assert!(scratch.decode(&bytes[..length]).is_err());
                    prop_assert!(scratch.decode_for(&bytes[..length], only_undecided).is_err());
                }
            }
        }

        #[test]
        fn log_entry_round_trips(entry in log_entry()) {
            check_round_trip(&entry);
        }

        #[test]
        fn trailing_bytes_are_counted(
            entry in log_entry(),
            extra in vec(any::<u8>(), 1..16),
        ) {
            let mut bytes = encode(&entry);
            bytes.extend_from_slice(&extra);
            prop_assert_eq!(decode::<LogEntry>(&bytes), Err(DecodeError::Trailing(extra.len())));
        }

        #[test]
        fn any_version_but_the_current_one_is_refused(
            version in any::<u8>().prop_filter("not read", |v| *v != FORMAT_VERSION && *v != FORMAT_VERSION_OLDEST),
            entry in log_entry(),
        ) {
            let mut bytes = encode(&entry);
            bytes[0] = version;
            prop_assert_eq!(
                decode::<LogEntry>(&bytes),
                Err(DecodeError::UnknownVersion(version))
            );
        }
    }

    // ----- decode errors, table-driven -----

    /// Decodes `bytes` as a `CitizenFacts` and renders the outcome as the error's variant.
    fn check(bytes: &[u8], expected: &str) {
        let actual = match decode::<CitizenFacts>(bytes) {
            Ok(_) => "ok".to_owned(),
            Err(DecodeError::Empty) => "empty".to_owned(),
            Err(DecodeError::UnknownVersion(version)) => format!("unknown version {version}"),
            Err(DecodeError::Bincode(_)) => "bincode".to_owned(),
            Err(DecodeError::Trailing(count)) => format!("{count} trailing"),
        };
        assert_eq!(actual, expected, "bytes {bytes:?}");
    }

    #[test]
    fn decode_errors() {
        let facts = CitizenFacts::new(Iin::parse("061211600012").unwrap());
        let good = encode(&facts);
        let with = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = good.clone();
            edit(&mut bytes);
            bytes
        };
        check(&good, "ok");
        check(&[], "empty");
        check(&[FORMAT_VERSION], "bincode");
        check(&[0], "unknown version 0");
        check(&with(&|b| b[0] = 3), "unknown version 3");
        check(&with(&|b| b[0] = 255), "unknown version 255");
        check(&with(&|b| b.truncate(b.len() - 1)), "bincode");
        check(&with(&|b| b.truncate(2)), "bincode");
        check(&with(&|b| b.push(0)), "1 trailing");
        check(&with(&|b| b.extend_from_slice(&[1, 2, 3])), "3 trailing");
        // The IIN is stored as a string; a wrong check digit is refused by its own check.
        check(
            &with(&|b| {
                let at = b.windows(12).position(|w| w == b"061211600012").unwrap();
                b[at + 11] = b'3';
            }),
            "bincode",
        );
        // A value of another type does not read as these facts.
        check(&encode(&"not facts"), "bincode");
    }

    #[test]
    fn the_error_says_what_went_wrong() {
        assert_eq!(DecodeError::Empty.to_string(), "empty value");
        assert_eq!(
            DecodeError::UnknownVersion(7).to_string(),
            "unknown format version 7"
        );
        assert_eq!(DecodeError::Trailing(3).to_string(), "3 trailing bytes");
    }

    #[test]
    fn the_layout_is_the_version_byte_then_bincode() {
        // Pinned: a change in the byte layout needs a new version byte and a migration.
        assert_eq!(encode(&7u64), vec![FORMAT_VERSION, 7]);
        assert_eq!(encode(&"ab"), vec![FORMAT_VERSION, 2, b'a', b'b']);
        // A month as months since year 0 (24,314: varint 251 + u16), an amount in
        // tiyn (1,644,625: varint 252 + u32).
        assert_eq!(
            encode(&Month::new(2026, 3).unwrap()),
            [FORMAT_VERSION, 251, 0xFA, 0x5E]
        );
        assert_eq!(
            encode(&Money::from_tiyn(1_644_625)),
            [FORMAT_VERSION, 252, 0x51, 0x18, 0x19, 0x00]
        );
        // Format 1 held their text.
        let month_1 = [&[FORMAT_VERSION_OLDEST, 7][..], b"2026-03"].concat();
        assert_eq!(decode::<Month>(&month_1), Ok(Month::new(2026, 3).unwrap()));
        assert_eq!(encode_format_1(&Month::new(2026, 3).unwrap()), month_1);
        assert_eq!(decode::<u64>(&[FORMAT_VERSION, 7]), Ok(7));
        let mut map = BTreeMap::new();
        map.insert(1u8, 2u8);
        assert_eq!(decode::<BTreeMap<u8, u8>>(&encode(&map)), Ok(map));
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;
    use crate::record::FamilyRecord;

    #[test]
    fn a_corrupt_length_is_an_error_not_an_abort() {
        let garbage = [1u8, 253, 0, 0, 0, 0, 0, 0, 0, 0x10];
        assert!(decode::<FamilyRecord>(&garbage).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut versioned = vec![FORMAT_VERSION];
            versioned.extend(bytes);
            let _ = decode::<FamilyRecord>(&versioned);
            let _ = decode::<crate::event::LogEntry>(&versioned);
        }
    }
}
