//! A family's scoring projection: what scoring reads of it, and its current
//! outcome without the words, kept beside its record (the store's `scoring`
//! tree) so that a what-if or a re-score reads a few hundred bytes per family,
//! not the whole record.
//!
//! The projection is stored in a wire form of its own: numbers where the record
//! keeps text (months, dates, times, amounts, IINs, regions), because decoding
//! that text was most of a scan's time. The record's own encoding is unchanged.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{FamilyId, Iin, Locality, Month, Region, Sex};
use crate::money::Money;
use crate::record::{
    Address, Attainment, Award, AwardDecision, CitizenFacts, Disability, DisabilityGroup,
    Education, Employment, EmploymentStatus, Enrollment, FamilyRecord, Housing, IncomeSource,
    Level, Member, Registration, Role,
};

/// What scoring reads of one family, and its current outcome without the words.
/// It holds no names, phones or accounts: scoring reads none of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Wire", into = "Wire")]
pub struct ScoringProjection {
    /// The record with its members' facts (names, phones and accounts left out),
    /// address, housing and social contract; every other field is empty.
    pub inputs: FamilyRecord,
    pub outcome: Option<Outcome>,
}

/// An evaluation's level and program decisions, without the words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub level: Level,
    pub programs: Vec<DecisionSummary>,
}

/// A program decision without its reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionSummary {
    pub code: String,
    pub eligible: bool,
    pub award: Option<AwardDecision>,
    pub more_awards: Vec<AwardDecision>,
}

impl FamilyRecord {
    /// This record's [`ScoringProjection`].
    pub fn scoring_projection(&self) -> ScoringProjection {
        let members = self
            .members
            .iter()
            .map(|member| Member {
                role: member.role,
                facts: CitizenFacts {
                    registration: member.facts.registration.as_ref().map(|r| Registration {
                        full_name: String::new(),
                        birth_date: r.birth_date,
                        sex: r.sex,
                    }),
                    phone: None,
                    iban: None,
                    social_wallet: false,
                    applied_seq: 0,
                    ..member.facts.clone()
                },
            })
            .collect();
        ScoringProjection {
            inputs: FamilyRecord {
                members,
                address: self.address,
                housing: self.housing.clone(),
                social_contract: self.social_contract,
                ..FamilyRecord::new(self.family_id.clone())
            },
            outcome: self.evaluation.as_ref().map(|evaluation| Outcome {
                level: evaluation.level,
                programs: evaluation
                    .programs
                    .iter()
                    .map(|decision| DecisionSummary {
                        code: decision.code.clone(),
                        eligible: decision.eligible,
                        award: decision.award.clone(),
                        more_awards: decision.more_awards.clone(),
                    })
                    .collect(),
            }),
        }
    }
}

// ----- the wire form -----

#[derive(Serialize, Deserialize)]
struct Wire {
    family_id: String,
    members: Vec<WireMember>,
    /// `(Region as u8, urban)`.
    address: Option<(u8, bool)>,
    housing: Option<Housing>,
    social_contract: bool,
    outcome: Option<WireOutcome>,
}

#[derive(Serialize, Deserialize)]
struct WireMember {
    role: Role,
    iin: [u8; 12],
    /// Days from the common era, and male.
    registration: Option<(i32, bool)>,
    died_on: Option<i32>,
    /// Month index (`year × 12 + month − 1`), then amounts in tiyn by source.
    incomes: Vec<(u32, Vec<(IncomeSource, u64)>)>,
    /// Status, since (seconds, nanoseconds), previous status.
    employment: Option<(EmploymentStatus, i64, u32, Option<EmploymentStatus>)>,
    non_mortgage_debt: bool,
    insured: Option<bool>,
    disability: Option<(DisabilityGroup, Option<i32>)>,
    education: Option<(Enrollment, Attainment)>,
    awards: Vec<Award>,
}

#[derive(Serialize, Deserialize)]
struct WireOutcome {
    level: Level,
    programs: Vec<WireDecision>,
}

#[derive(Serialize, Deserialize)]
struct WireAward {
    recipient: [u8; 12],
    amount: u64,
    occasion: Option<u32>,
    one_off: bool,
    last_month: Option<u32>,
}

/// Why a stored projection cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("scoring projection: {0}")]
pub struct WireError(&'static str);

fn iin_bytes(iin: &Iin) -> [u8; 12] {
    let mut bytes = [0; 12];
    bytes.copy_from_slice(iin.as_str().as_bytes());
    bytes
}

fn iin(bytes: &[u8; 12]) -> Result<Iin, WireError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| Iin::parse(text).ok())
        .ok_or(WireError("an IIN"))
}

fn day_number(day: NaiveDate) -> i32 {
    chrono::Datelike::num_days_from_ce(&day)
}

fn day(number: i32) -> Result<NaiveDate, WireError> {
    NaiveDate::from_num_days_from_ce_opt(number).ok_or(WireError("a date"))
}

fn month_number(month: Month) -> u32 {
    // Years are 0-9999: never negative.
    month.year().unsigned_abs() * 12 + month.month() - 1
}

fn month(number: u32) -> Result<Month, WireError> {
    i32::try_from(number / 12)
        .ok()
        .and_then(|year| Month::new(year, number % 12 + 1))
        .ok_or(WireError("a month"))
}

impl From<&AwardDecision> for WireAward {
    fn from(award: &AwardDecision) -> Self {
        WireAward {
            recipient: iin_bytes(&award.recipient),
            amount: award.amount.tiyn(),
            occasion: award.occasion.map(month_number),
            one_off: award.one_off,
            last_month: award.last_month.map(month_number),
        }
    }
}

impl TryFrom<WireAward> for AwardDecision {
    type Error = WireError;
    fn try_from(award: WireAward) -> Result<Self, WireError> {
        Ok(AwardDecision {
            recipient: iin(&award.recipient)?,
            amount: Money::from_tiyn(award.amount),
            occasion: award.occasion.map(month).transpose()?,
            one_off: award.one_off,
            last_month: award.last_month.map(month).transpose()?,
        })
    }
}

impl From<&Member> for WireMember {
    fn from(member: &Member) -> Self {
        let facts = &member.facts;
        WireMember {
            role: member.role,
            iin: iin_bytes(&facts.iin),
            registration: facts
                .registration
                .as_ref()
                .map(|r| (day_number(r.birth_date), r.sex == Sex::Male)),
            died_on: facts.died_on.map(day_number),
            incomes: facts
                .incomes
                .iter()
                .map(|(month, by_source)| {
                    let amounts = by_source.iter().map(|(s, m)| (*s, m.tiyn())).collect();
                    (month_number(*month), amounts)
                })
                .collect(),
            employment: facts.employment.map(|e| {
                (
                    e.status,
                    e.since.timestamp(),
                    e.since.timestamp_subsec_nanos(),
                    e.previous,
                )
            }),
            non_mortgage_debt: facts.non_mortgage_debt,
            insured: facts.insured,
            disability: facts.disability.map(|d| (d.group, d.until.map(day_number))),
            education: facts.education.map(|e| (e.enrolled, e.attainment)),
            awards: facts.awards.iter().copied().collect(),
        }
    }
}

impl TryFrom<WireMember> for Member {
    type Error = WireError;
    fn try_from(wire: WireMember) -> Result<Self, WireError> {
        let mut incomes = BTreeMap::new();
        for (number, amounts) in wire.incomes {
            let by_source = amounts
                .into_iter()
                .map(|(source, tiyn)| (source, Money::from_tiyn(tiyn)))
                .collect();
            incomes.insert(month(number)?, by_source);
        }
        let employment = match wire.employment {
            Some((status, seconds, nanos, previous)) => Some(Employment {
                status,
                since: DateTime::<Utc>::from_timestamp(seconds, nanos)
                    .ok_or(WireError("a time"))?,
                previous,
            }),
            None => None,
        };
        let registration = match wire.registration {
            Some((birth, male)) => Some(Registration {
                full_name: String::new(),
                birth_date: day(birth)?,
                sex: if male { Sex::Male } else { Sex::Female },
            }),
            None => None,
        };
        let disability = match wire.disability {
            Some((group, until)) => Some(Disability {
                group,
                until: until.map(day).transpose()?,
            }),
            None => None,
        };
        Ok(Member {
            role: wire.role,
            facts: CitizenFacts {
                registration,
                died_on: wire.died_on.map(day).transpose()?,
                incomes,
                employment,
                non_mortgage_debt: wire.non_mortgage_debt,
                insured: wire.insured,
                disability,
                education: wire.education.map(|(enrolled, attainment)| Education {
                    enrolled,
                    attainment,
                }),
                awards: wire.awards.into_iter().collect(),
                ..CitizenFacts::new(iin(&wire.iin)?)
            },
        })
    }
}

/// A family record's projection, encoded (with the format-version byte), made
/// straight from the record: what every family commit writes.
pub fn encode_projection(record: &FamilyRecord) -> Vec<u8> {
    let outcome = record.evaluation.as_ref().map(|evaluation| WireOutcome {
        level: evaluation.level,
        programs: evaluation
            .programs
            .iter()
            .map(|d| wire_decision(&d.code, d.eligible, d.award.as_ref(), &d.more_awards))
            .collect(),
    });
    crate::codec::encode(&Wire::of(record, outcome))
}

type WireDecision = (String, bool, Option<WireAward>, Vec<WireAward>);

fn wire_decision(
    code: &str,
    eligible: bool,
    award: Option<&AwardDecision>,
    more_awards: &[AwardDecision],
) -> WireDecision {
    (
        code.to_owned(),
        eligible,
        award.map(WireAward::from),
        more_awards.iter().map(WireAward::from).collect(),
    )
}

impl Wire {
    /// The wire form of a record's scoring inputs (whatever else it holds is
    /// left out) with `outcome`.
    fn of(record: &FamilyRecord, outcome: Option<WireOutcome>) -> Wire {
        Wire {
            family_id: record.family_id.as_str().to_owned(),
            members: record.members.iter().map(WireMember::from).collect(),
            address: record.address.map(|a| {
                let region = Region::ALL.iter().position(|r| *r == a.region);
                // Every region is in `Region::ALL`.
                (region.unwrap_or(0) as u8, a.locality == Locality::Urban)
            }),
            housing: record.housing.clone(),
            social_contract: record.social_contract,
            outcome,
        }
    }
}

impl From<ScoringProjection> for Wire {
    fn from(projection: ScoringProjection) -> Self {
        let outcome = projection.outcome.map(|outcome| WireOutcome {
            level: outcome.level,
            programs: outcome
                .programs
                .iter()
                .map(|d| wire_decision(&d.code, d.eligible, d.award.as_ref(), &d.more_awards))
                .collect(),
        });
        Wire::of(&projection.inputs, outcome)
    }
}

impl TryFrom<Wire> for ScoringProjection {
    type Error = WireError;
    fn try_from(wire: Wire) -> Result<Self, WireError> {
        let family_id = FamilyId::parse(&wire.family_id).map_err(|_| WireError("a family id"))?;
        let address = match wire.address {
            Some((region, urban)) => Some(Address {
                region: *Region::ALL
                    .get(usize::from(region))
                    .ok_or(WireError("a region"))?,
                locality: if urban {
                    Locality::Urban
                } else {
                    Locality::Rural
                },
            }),
            None => None,
        };
        let outcome = match wire.outcome {
            Some(outcome) => {
                let mut programs = Vec::with_capacity(outcome.programs.len());
                for (code, eligible, award, more_awards) in outcome.programs {
                    programs.push(DecisionSummary {
                        code,
                        eligible,
                        award: award.map(AwardDecision::try_from).transpose()?,
                        more_awards: more_awards
                            .into_iter()
                            .map(AwardDecision::try_from)
                            .collect::<Result<_, _>>()?,
                    });
                }
                Some(Outcome {
                    level: outcome.level,
                    programs,
                })
            }
            None => None,
        };
        Ok(ScoringProjection {
            inputs: FamilyRecord {
                members: wire
                    .members
                    .into_iter()
                    .map(Member::try_from)
                    .collect::<Result<_, _>>()?,
                address,
                housing: wire.housing,
                social_contract: wire.social_contract,
                ..FamilyRecord::new(family_id)
            },
            outcome,
        })
    }
}
