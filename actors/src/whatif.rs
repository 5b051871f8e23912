//! What-if: what a catalogue or scoring change would do, before it is made.
//! Pure: it compares each family's current evaluation with the one the proposed
//! rules give and accumulates eligibility, monthly cost by program and region,
//! the families that would gain or lose each benefit, and the level shifts.
//! Nothing is written; the caller feeds it records and merges the partial results
//! of its threads.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use storage::money::Money;
use storage::record::{Evaluation, FamilyRecord, Level};

use crate::rules::Rules;

/// Family ids kept per program as examples of who would gain or lose.
pub const SAMPLE_SIZE: usize = 10;

#[derive(Debug, Default, Clone, Serialize)]
pub struct RegionFigures {
    pub eligible: u64,
    pub monthly_cost_tiyn: u64,
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

#[derive(Debug, Default, Clone, Serialize)]
pub struct WhatIf {
    pub families: u64,
    pub programs: BTreeMap<String, ProgramFigures>,
    pub levels_now: BTreeMap<String, u64>,
    pub levels_whatif: BTreeMap<String, u64>,
    /// `"A->C"` → count, for families whose level would change.
    pub level_shifts: BTreeMap<String, u64>,
}

/// Whether the family is eligible for the program, and what all of its awards
/// (one per person for per-person benefits) cost.
fn monthly(evaluation: &Evaluation, code: &str) -> Option<(bool, Money)> {
    let decision = evaluation
        .programs
        .iter()
        .find(|p| p.code == code && p.eligible)?;
    let first = decision.award.as_ref()?;
    let total = decision.awards().map(|award| award.amount).sum();
    Some((first.one_off, total))
}

fn level_name(level: Level) -> String {
    level.as_str().to_owned()
}

impl WhatIf {
    /// Adds one family: its current evaluation against the proposed rules'.
    pub fn add(&mut self, record: &FamilyRecord, proposed: &Rules, now: DateTime<Utc>) {
        let whatif = crate::scoring::evaluate(record, proposed, now);
        let current = record.evaluation.as_ref();
        self.families += 1;
        let region = record
            .address
            .map_or_else(|| "unknown".to_owned(), |a| a.region.code().to_owned());
        if let Some(current) = current {
            *self
                .levels_now
                .entry(level_name(current.level))
                .or_insert(0) += 1;
            if current.level != whatif.level {
                *self
                    .level_shifts
                    .entry(format!(
                        "{}->{}",
                        current.level.as_str(),
                        whatif.level.as_str()
                    ))
                    .or_insert(0) += 1;
            }
        }
        *self
            .levels_whatif
            .entry(level_name(whatif.level))
            .or_insert(0) += 1;
        let mut codes: Vec<&str> = whatif.programs.iter().map(|p| p.code.as_str()).collect();
        if let Some(current) = current {
            codes.extend(current.programs.iter().map(|p| p.code.as_str()));
        }
        codes.sort_unstable();
        codes.dedup();
        for code in codes {
            let before = current.and_then(|c| monthly(c, code));
            let after = monthly(&whatif, code);
            let figures = self.programs.entry(code.to_owned()).or_default();
            if let Some((one_off, amount)) = before {
                figures.eligible_now += 1;
                if !one_off {
                    figures.monthly_cost_now_tiyn += amount.tiyn();
                }
            }
            if let Some((one_off, amount)) = after {
                figures.eligible_whatif += 1;
                let region_figures = figures.by_region_whatif.entry(region.clone()).or_default();
                region_figures.eligible += 1;
                if one_off {
                    figures.one_off_cost_whatif_tiyn += amount.tiyn();
                } else {
                    figures.monthly_cost_whatif_tiyn += amount.tiyn();
                    region_figures.monthly_cost_tiyn += amount.tiyn();
                }
            }
            match (before.is_some(), after.is_some()) {
                (false, true) => {
                    figures.gain += 1;
                    if figures.sample_gain.len() < SAMPLE_SIZE {
                        figures.sample_gain.push(record.family_id.to_string());
                    }
                }
                (true, false) => {
                    figures.lose += 1;
                    if figures.sample_lose.len() < SAMPLE_SIZE {
                        figures.sample_lose.push(record.family_id.to_string());
                    }
                }
                _ => {}
            }
        }
    }

    /// Merges another thread's partial result.
    pub fn merge(&mut self, other: WhatIf) {
        self.families += other.families;
        for (level, count) in other.levels_now {
            *self.levels_now.entry(level).or_insert(0) += count;
        }
        for (level, count) in other.levels_whatif {
            *self.levels_whatif.entry(level).or_insert(0) += count;
        }
        for (shift, count) in other.level_shifts {
            *self.level_shifts.entry(shift).or_insert(0) += count;
        }
        for (code, theirs) in other.programs {
            let ours = self.programs.entry(code).or_default();
            ours.eligible_now += theirs.eligible_now;
            ours.eligible_whatif += theirs.eligible_whatif;
            ours.gain += theirs.gain;
            ours.lose += theirs.lose;
            ours.monthly_cost_now_tiyn += theirs.monthly_cost_now_tiyn;
            ours.monthly_cost_whatif_tiyn += theirs.monthly_cost_whatif_tiyn;
            ours.one_off_cost_whatif_tiyn += theirs.one_off_cost_whatif_tiyn;
            for (region, figures) in theirs.by_region_whatif {
                let mine = ours.by_region_whatif.entry(region).or_default();
                mine.eligible += figures.eligible;
                mine.monthly_cost_tiyn += figures.monthly_cost_tiyn;
            }
            for id in theirs.sample_gain {
                if ours.sample_gain.len() < SAMPLE_SIZE {
                    ours.sample_gain.push(id);
                }
            }
            for id in theirs.sample_lose {
                if ours.sample_lose.len() < SAMPLE_SIZE {
                    ours.sample_lose.push(id);
                }
            }
        }
    }
}

/// Whether the proposed rules change what matters for this family: its level,
/// or any program's eligibility, recipient or amount. A family for which this is
/// false keeps its stored evaluation after a rules change and its actor is
/// never woken.
pub fn outcome_changes(record: &FamilyRecord, proposed: &Rules, now: DateTime<Utc>) -> bool {
    let Some(current) = &record.evaluation else {
        return true;
    };
    let next = crate::scoring::evaluate(record, proposed, now);
    if next.level != current.level || next.programs.len() != current.programs.len() {
        return true;
    }
    next.programs
        .iter()
        .zip(&current.programs)
        .any(|(a, b)| a.code != b.code || a.eligible != b.eligible || a.award != b.award)
}
