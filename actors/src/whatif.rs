//! What a catalogue or scoring change would do, before it is made (what-if), and
//! which families it changes once it is made (re-score).
//!
//! A [`Proposal`] compares the proposed rules with the rules in force and
//! re-decides only what differs: the level only when the scoring or a constant
//! it reads changes ([`Constant::read_by_scoring`]), and only the programs whose
//! rule changes or a constant their kind reads ([`crate::rules::ProgramKind::reads`]).
//! The rest comes from the family's stored outcome. Callers feed it each family's
//! scoring inputs and stored outcome ([`storage::projection::ScoringProjection`],
//! as the scoring table reads them), and merge the tallies of their threads.
//! Decisions are made without words ([`crate::eligibility`]'s `Words::Skipped`).
//! Nothing is written.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use storage::compact::{code_number, known_code_number, IncomeNeed};
use storage::ids::{FamilyId, Region};
use storage::money::Money;
use storage::projection::{DecisionSummary, Outcome};
use storage::record::{AwardDecision, FamilyRecord, Level, ProgramDecision};

use crate::rules::{Constant, Rules};
use crate::scoring::{level_of, Household};

/// Family ids kept per program as examples of who would gain or lose: the
/// first in id order, in whatever order the families were seen.
pub const SAMPLE_SIZE: usize = 10;

/// Keeps `id` in `sample` if it is among the [`SAMPLE_SIZE`] smallest seen.
fn keep_sample(sample: &mut Vec<FamilyId>, id: &FamilyId) {
    if sample.len() == SAMPLE_SIZE && sample.last().is_some_and(|last| id >= last) {
        return;
    }
    if let Err(at) = sample.binary_search(id) {
        sample.insert(at, id.clone());
        sample.truncate(SAMPLE_SIZE);
    }
}

/// A program's outcome for one family when it is eligible: whether the benefit
/// is paid once, and what all of its awards (one per person for per-person
/// benefits) cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Benefit {
    pub one_off: bool,
    pub amount: Money,
}

fn benefit(
    eligible: bool,
    award: Option<&AwardDecision>,
    more: &[AwardDecision],
) -> Option<Benefit> {
    let first = award.filter(|_| eligible)?;
    Some(Benefit {
        one_off: first.one_off,
        amount: std::iter::once(first).chain(more).map(|a| a.amount).sum(),
    })
}

/// The benefit a decision awards, if it is eligible.
pub fn benefit_of(decision: &ProgramDecision) -> Option<Benefit> {
    benefit(
        decision.eligible,
        decision.award.as_ref(),
        &decision.more_awards,
    )
}

/// The benefit a stored decision awards, if it is eligible.
fn stored_benefit(decision: &DecisionSummary) -> Option<Benefit> {
    benefit(
        decision.eligible,
        decision.award.as_ref(),
        &decision.more_awards,
    )
}

/// Proposed rules, with what they change against the rules in force.
#[derive(Debug)]
pub struct Proposal<'r> {
    rules: &'r Rules,
    /// The level must be scored again.
    rescore: bool,
    /// Per proposed program, in catalogue order: decided again (its rule or a
    /// constant its kind reads changed), or read from the stored outcome.
    redecide: Vec<bool>,
    /// Per proposed program, its code's number ([`storage::compact::code_number`]),
    /// or `u32::MAX` for a code no stored outcome can hold.
    numbers: Vec<u32>,
}

impl<'r> Proposal<'r> {
    /// The proposal against `bases`: every catalogue a stored outcome may come
    /// from (the rules in force, and the ones the service runs if they differ).
    /// What differs from any of them is decided again.
    pub fn new(bases: &[&Rules], proposed: &'r Rules) -> Proposal<'r> {
        // Every field by name, so that a new one has to be placed here.
        let Rules {
            version: _,
            year,
            mci,
            subsistence_minimum,
            poverty,
            regions,
            scoring,
            programs,
        } = proposed;
        let changed: Vec<Constant> = Constant::ALL
            .into_iter()
            .filter(|constant| {
                bases.is_empty()
                    || bases.iter().any(|base| match constant {
                        Constant::Year => *year != base.year,
                        Constant::Mci => *mci != base.mci,
                        Constant::SubsistenceMinimum => {
                            *subsistence_minimum != base.subsistence_minimum
                        }
                        Constant::Poverty => *poverty != base.poverty,
                        Constant::Regions => *regions != base.regions,
                    })
            })
            .collect();
        Proposal {
            rules: proposed,
            rescore: changed.iter().any(|constant| constant.read_by_scoring())
                || bases.iter().any(|base| *scoring != base.scoring),
            redecide: programs
                .iter()
                .map(|program| {
                    changed
                        .iter()
                        .any(|constant| program.kind().reads(*constant))
                        || bases
                            .iter()
                            .any(|base| base.program(&program.code) != Some(program))
                })
                .collect(),
            // The bases' codes are registered; a code only a what-if names
            // is not (the register lives as long as the process).
            numbers: programs
                .iter()
                .map(|program| {
                    if bases
                        .iter()
                        .any(|base| base.program(&program.code).is_some())
                    {
                        code_number(&program.code)
                    } else {
                        known_code_number(&program.code).unwrap_or(u32::MAX)
                    }
                })
                .collect(),
        }
    }

    /// What this proposal reads of the families' incomes: nothing of a family
    /// with a stored outcome when it scores nobody again and decides again
    /// only programs that read no income. A stored outcome holds every program
    /// its catalogue has, and the proposal decides again every program one of
    /// `bases` lacks, so what a family's stored outcome lacks is decided again.
    pub fn income_need(&self) -> IncomeNeed {
        let reads = self.rescore
            || (self.rules.programs.iter().zip(&self.redecide))
                .any(|(program, redecide)| *redecide && program.kind().reads_incomes());
        if reads {
            IncomeNeed::Read
        } else {
            IncomeNeed::OnlyUndecided
        }
    }

    /// The level and, per proposed program in catalogue order, the benefit the
    /// proposed rules give the family on `today`. What the proposal leaves alone
    /// is read from `stored`; a family without a stored outcome is evaluated whole.
    pub fn outcome(
        &self,
        record: &FamilyRecord,
        stored: Option<&Outcome>,
        today: NaiveDate,
    ) -> (Level, Vec<Option<Benefit>>) {
        let mut benefits = Vec::new();
        let level = self.outcome_into(record, stored, today, &mut benefits);
        (level, benefits)
    }

    /// [`Proposal::outcome`], with the benefits written into `benefits`.
    pub fn outcome_into(
        &self,
        record: &FamilyRecord,
        stored: Option<&Outcome>,
        today: NaiveDate,
        benefits: &mut Vec<Option<Benefit>>,
    ) -> Level {
        let mut household = None;
        let level = match stored {
            Some(stored) if !self.rescore => stored.level,
            _ => level_of(
                household.get_or_insert_with(|| Household::new(record, today)),
                self.rules,
            ),
        };
        benefits.clear();
        benefits.extend(
            self.rules
                .programs
                .iter()
                .zip(&self.redecide)
                .zip(&self.numbers)
                .enumerate()
                .map(|(index, ((program, redecide), number))| {
                    let kept = stored
                        .filter(|_| !redecide)
                        .and_then(|stored| stored_decision(stored, index, *number));
                    match kept {
                        Some(decision) => stored_benefit(decision),
                        None => {
                            let household =
                                household.get_or_insert_with(|| Household::new(record, today));
                            let (award, more) =
                                crate::eligibility::decide_awards(program, household, self.rules);
                            benefit(award.is_some(), award.as_ref(), &more)
                        }
                    }
                }),
        );
        level
    }

    /// Whether the proposed rules change what matters for the family: its level,
    /// or a program's eligibility, recipients or amounts (or the catalogue's
    /// programs themselves). A family for which this is false keeps its stored
    /// evaluation after a rules change, and its actor is never woken.
    pub fn changes_outcome(
        &self,
        record: &FamilyRecord,
        stored: Option<&Outcome>,
        today: NaiveDate,
    ) -> bool {
        let Some(stored) = stored else {
            return true;
        };
        let programs = &self.rules.programs;
        if stored.programs.len() != programs.len()
            || stored
                .programs
                .iter()
                .zip(programs)
                .any(|(decision, program)| decision.code != program.code)
        {
            return true;
        }
        let mut household = None;
        if self.rescore
            && level_of(
                household.get_or_insert_with(|| Household::new(record, today)),
                self.rules,
            ) != stored.level
        {
            return true;
        }
        programs
            .iter()
            .zip(&self.redecide)
            .zip(&stored.programs)
            .filter(|((_, redecide), _)| **redecide)
            .any(|((program, _), before)| {
                let household = household.get_or_insert_with(|| Household::new(record, today));
                let (award, more_awards) =
                    crate::eligibility::decide_awards(program, household, self.rules);
                award.is_some() != before.eligible
                    || award != before.award
                    || more_awards != before.more_awards
            })
    }
}

/// The stored decision of the program numbered `code_number`, which stored
/// outcomes mostly hold at the index the proposed catalogue gives it.
fn stored_decision(stored: &Outcome, index: usize, code_number: u32) -> Option<&DecisionSummary> {
    match stored.programs.get(index) {
        Some(decision) if decision.code_number == code_number => Some(decision),
        _ => stored
            .programs
            .iter()
            .find(|decision| decision.code_number == code_number),
    }
}

/// Families and monthly cost in one region.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RegionFigures {
    pub eligible: u64,
    pub monthly_cost_tiyn: u64,
}

/// The tally's slot for a family without an address.
const UNKNOWN_REGION: usize = Region::ALL.len();

#[derive(Debug, Default, Clone)]
struct ProgramTally {
    code: String,
    /// The code's number, as [`DecisionSummary::code_number`].
    code_number: u32,
    eligible_now: u64,
    eligible_whatif: u64,
    gain: u64,
    lose: u64,
    monthly_cost_now_tiyn: u64,
    monthly_cost_whatif_tiyn: u64,
    one_off_cost_whatif_tiyn: u64,
    /// By `Region as usize`, then [`UNKNOWN_REGION`].
    by_region_whatif: [RegionFigures; Region::ALL.len() + 1],
    sample_gain: Vec<FamilyId>,
    sample_lose: Vec<FamilyId>,
}

/// A what-if's running counts over the families one thread has seen, kept in
/// arrays (no map lookups per family); [`WhatIfTally::report`] names them.
#[derive(Debug, Clone)]
pub struct WhatIfTally {
    families: u64,
    /// The proposed programs first, in catalogue order, then any other program
    /// a stored outcome names.
    programs: Vec<ProgramTally>,
    proposed_programs: usize,
    levels_now: [u64; 5],
    levels_whatif: [u64; 5],
    /// `[now][whatif]`.
    level_shifts: [[u64; 5]; 5],
    /// The family being added: its stored benefit by slot of `programs`, and
    /// its proposed one by proposed program.
    before: Vec<Option<Benefit>>,
    after: Vec<Option<Benefit>>,
}

impl WhatIfTally {
    pub fn new(proposal: &Proposal<'_>) -> WhatIfTally {
        WhatIfTally {
            families: 0,
            programs: proposal
                .rules
                .programs
                .iter()
                .zip(&proposal.numbers)
                .map(|(program, number)| ProgramTally {
                    code: program.code.clone(),
                    code_number: *number,
                    ..ProgramTally::default()
                })
                .collect(),
            proposed_programs: proposal.rules.programs.len(),
            levels_now: [0; 5],
            levels_whatif: [0; 5],
            level_shifts: [[0; 5]; 5],
            before: Vec::new(),
            after: Vec::new(),
        }
    }

    fn slot(&mut self, code: &str, code_number: u32) -> usize {
        match self.programs.iter().position(|p| p.code == code) {
            Some(slot) => slot,
            None => {
                self.programs.push(ProgramTally {
                    code: code.to_owned(),
                    code_number,
                    ..ProgramTally::default()
                });
                self.programs.len() - 1
            }
        }
    }

    /// Adds one family: its stored outcome against the proposal's.
    pub fn add(
        &mut self,
        proposal: &Proposal<'_>,
        record: &FamilyRecord,
        stored: Option<&Outcome>,
        today: NaiveDate,
    ) {
        let level = proposal.outcome_into(record, stored, today, &mut self.after);
        self.families += 1;
        self.levels_whatif[level as usize] += 1;
        self.before.clear();
        if let Some(stored) = stored {
            self.levels_now[stored.level as usize] += 1;
            self.level_shifts[stored.level as usize][level as usize] += 1;
            for (index, decision) in stored.programs.iter().enumerate() {
                // Stored outcomes are mostly in the proposed catalogue's order.
                let slot = match self.programs.get(index) {
                    Some(tally) if tally.code_number == decision.code_number => index,
                    _ => self.slot(&decision.code, decision.code_number),
                };
                if self.before.len() <= slot {
                    self.before.resize(slot + 1, None);
                }
                self.before[slot] = stored_benefit(decision);
            }
        }
        let region = record
            .address
            .map_or(UNKNOWN_REGION, |address| address.region as usize);
        let proposed_programs = self.proposed_programs;
        for (slot, tally) in self.programs.iter_mut().enumerate() {
            let before = self.before.get(slot).copied().flatten();
            let after = if slot < proposed_programs {
                self.after[slot]
            } else {
                None
            };
            if let Some(before) = before {
                tally.eligible_now += 1;
                if !before.one_off {
                    tally.monthly_cost_now_tiyn += before.amount.tiyn();
                }
            }
            if let Some(after) = after {
                tally.eligible_whatif += 1;
                let in_region = &mut tally.by_region_whatif[region];
                in_region.eligible += 1;
                if after.one_off {
                    tally.one_off_cost_whatif_tiyn += after.amount.tiyn();
                } else {
                    tally.monthly_cost_whatif_tiyn += after.amount.tiyn();
                    in_region.monthly_cost_tiyn += after.amount.tiyn();
                }
            }
            match (before.is_some(), after.is_some()) {
                (false, true) => {
                    tally.gain += 1;
                    keep_sample(&mut tally.sample_gain, &record.family_id);
                }
                (true, false) => {
                    tally.lose += 1;
                    keep_sample(&mut tally.sample_lose, &record.family_id);
                }
                _ => {}
            }
        }
    }

    /// Merges another thread's tally.
    pub fn merge(&mut self, other: WhatIfTally) {
        self.families += other.families;
        for (ours, theirs) in self.levels_now.iter_mut().zip(other.levels_now) {
            *ours += theirs;
        }
        for (ours, theirs) in self.levels_whatif.iter_mut().zip(other.levels_whatif) {
            *ours += theirs;
        }
        for (ours, theirs) in self.level_shifts.iter_mut().zip(other.level_shifts) {
            for (ours, theirs) in ours.iter_mut().zip(theirs) {
                *ours += theirs;
            }
        }
        for theirs in other.programs {
            let slot = self.slot(&theirs.code, theirs.code_number);
            let ours = &mut self.programs[slot];
            ours.eligible_now += theirs.eligible_now;
            ours.eligible_whatif += theirs.eligible_whatif;
            ours.gain += theirs.gain;
            ours.lose += theirs.lose;
            ours.monthly_cost_now_tiyn += theirs.monthly_cost_now_tiyn;
            ours.monthly_cost_whatif_tiyn += theirs.monthly_cost_whatif_tiyn;
            ours.one_off_cost_whatif_tiyn += theirs.one_off_cost_whatif_tiyn;
            for (mine, figures) in ours
                .by_region_whatif
                .iter_mut()
                .zip(theirs.by_region_whatif)
            {
                mine.eligible += figures.eligible;
                mine.monthly_cost_tiyn += figures.monthly_cost_tiyn;
            }
            for (ours, theirs) in [
                (&mut ours.sample_gain, theirs.sample_gain),
                (&mut ours.sample_lose, theirs.sample_lose),
            ] {
                ours.extend(theirs);
                ours.sort_unstable();
                ours.truncate(SAMPLE_SIZE);
            }
        }
    }

    /// The tally with its names, for the answer.
    pub fn report(self) -> WhatIf {
        let named = |counts: [u64; 5]| -> BTreeMap<String, u64> {
            Level::ALL
                .into_iter()
                .zip(counts)
                .filter(|(_, count)| *count > 0)
                .map(|(level, count)| (level.as_str().to_owned(), count))
                .collect()
        };
        let mut level_shifts = BTreeMap::new();
        for now in Level::ALL {
            for whatif in Level::ALL {
                let count = self.level_shifts[now as usize][whatif as usize];
                if now != whatif && count > 0 {
                    level_shifts.insert(format!("{}->{}", now.as_str(), whatif.as_str()), count);
                }
            }
        }
        let programs = self
            .programs
            .into_iter()
            .map(|tally| {
                let by_region_whatif = tally
                    .by_region_whatif
                    .into_iter()
                    .enumerate()
                    .filter(|(_, figures)| figures.eligible > 0)
                    .map(|(slot, figures)| {
                        let name = Region::ALL
                            .get(slot)
                            .map_or("unknown", |region| region.code());
                        (name.to_owned(), figures)
                    })
                    .collect();
                let figures = ProgramFigures {
                    eligible_now: tally.eligible_now,
                    eligible_whatif: tally.eligible_whatif,
                    gain: tally.gain,
                    lose: tally.lose,
                    monthly_cost_now_tiyn: tally.monthly_cost_now_tiyn,
                    monthly_cost_whatif_tiyn: tally.monthly_cost_whatif_tiyn,
                    one_off_cost_whatif_tiyn: tally.one_off_cost_whatif_tiyn,
                    by_region_whatif,
                    sample_gain: tally.sample_gain.iter().map(ToString::to_string).collect(),
                    sample_lose: tally.sample_lose.iter().map(ToString::to_string).collect(),
                };
                (tally.code, figures)
            })
            .collect();
        WhatIf {
            families: self.families,
            programs,
            levels_now: named(self.levels_now),
            levels_whatif: named(self.levels_whatif),
            level_shifts,
        }
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ProgramFigures {
    pub eligible_now: u64,
    pub eligible_whatif: u64,
    pub gain: u64,
    pub lose: u64,
    pub monthly_cost_now_tiyn: u64,
    pub monthly_cost_whatif_tiyn: u64,
    pub one_off_cost_whatif_tiyn: u64,
    pub by_region_whatif: BTreeMap<String, RegionFigures>,
    pub sample_gain: Vec<String>,
    pub sample_lose: Vec<String>,
}

/// A what-if's answer.
#[derive(Debug, Default, Clone, Serialize)]
pub struct WhatIf {
    pub families: u64,
    pub programs: BTreeMap<String, ProgramFigures>,
    pub levels_now: BTreeMap<String, u64>,
    pub levels_whatif: BTreeMap<String, u64>,
    /// `"A->C"` → count, for families whose level would change.
    pub level_shifts: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use storage::money::{Money, Rate};

    use super::*;

    /// A proposal that changes one constant scores again only if scoring
    /// reads it, and decides again only the programs whose kind reads it.
    /// (That the kept decisions are right is checked against evaluating whole
    /// in `dfm`'s admin tests.)
    #[test]
    fn a_changed_constant_is_decided_again_only_where_it_is_read() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/programs.toml");
        let current = Rules::load(&path, 2026).unwrap();
        let decided_again = |change: &dyn Fn(&mut Rules)| {
            let mut proposed = current.clone();
            change(&mut proposed);
            let proposal = Proposal::new(&[&current], &proposed);
            let codes: Vec<&str> = (current.programs.iter().zip(&proposal.redecide))
                .filter(|(_, redecide)| **redecide)
                .map(|(program, _)| program.code.as_str())
                .collect();
            (proposal.rescore, codes)
        };
        let money = |text| Money::parse(text).unwrap();
        assert_eq!(
            decided_again(&|rules| rules.poverty.median_share = Rate::parse("0.385").unwrap()),
            (true, vec!["tsa"])
        );
        assert_eq!(
            decided_again(&|rules| {
                rules.regions.insert(Region::Turkistan, money("95000"));
            }),
            (true, vec!["tsa"])
        );
        assert_eq!(
            decided_again(&|rules| rules.mci = money("4500")),
            (
                false,
                vec![
                    "birth_allowance",
                    "childcare_allowance",
                    "large_family",
                    "awarded_mother",
                    "tsa"
                ]
            )
        );
        assert_eq!(
            decided_again(&|rules| rules.subsistence_minimum = money("52000")),
            (
                true,
                vec!["disabled_child_parent", "disability", "survivor", "tsa"]
            )
        );
        assert_eq!(decided_again(&|_| {}), (false, vec![]));
        let (rescore, all) = decided_again(&|rules| rules.year = 2025);
        assert!(rescore);
        assert_eq!(all.len(), current.programs.len());
    }
}
