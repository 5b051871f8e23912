//! A family's scoring projection: what scoring reads of it, and its current
//! outcome without the words. The scoring table keeps it in memory for every
//! family in a compact form ([`crate::compact`]), so that a what-if or a
//! re-score reads about a hundred bytes per family, not the whole record.

use crate::record::{AwardDecision, CitizenFacts, FamilyRecord, Level, Member, Registration};

/// What scoring reads of one family, and its current outcome without the words.
/// It holds no names, phones or accounts: scoring reads none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The code's number in this process's register
    /// ([`crate::compact::code_number`]): scans compare it, not the text.
    pub code_number: u32,
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
            outcome: self.stored_outcome(),
        }
    }

    /// This record's stored outcome, without the words.
    pub fn stored_outcome(&self) -> Option<Outcome> {
        self.evaluation.as_ref().map(|evaluation| Outcome {
            level: evaluation.level,
            programs: evaluation
                .programs
                .iter()
                .map(|decision| DecisionSummary {
                    code: decision.code.clone(),
                    code_number: crate::compact::code_number(&decision.code),
                    eligible: decision.eligible,
                    award: decision.award.clone(),
                    more_awards: decision.more_awards.clone(),
                })
                .collect(),
        })
    }
}
