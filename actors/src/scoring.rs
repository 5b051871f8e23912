//! Well-being scoring: the Alkire–Foster score of a family, its level, and the deprivations that
//! make it up, each with its facts in words (IINs masked); and [`evaluate`], which joins the
//! scores with the program decisions into the [`Evaluation`] the family record keeps.
//!
//! Pure: no IO, no clock. The day of evaluation is a parameter; [`evaluate`] takes `now` and
//! reads the day in Kazakhstan from it. No floating point anywhere: weights and scores are exact
//! fractions over one common denominator, money is integer tiyn.
//!
//! # The score
//! Each criterion's weight (1/5 by default) is split evenly over its indicators; the score is the
//! sum of the weights of the deprived indicators, over the common denominator of the catalogue
//! (5 × lcm of the indicator counts with equal weights: 15 for the 15 default indicators), even
//! when the score is 0 (`0/15`). `criteria` holds each criterion's share of the score over the
//! same denominator, so the five add up to the score. The level follows from the catalogue's
//! cut-offs, compared exactly.
//!
//! # Whom and what it looks at
//! Only members alive on the day (`is_alive_on`); ages are completed years on the day, from the
//! registered birth date (or the IIN's). Missing data never deprives — an unknown fact is not a
//! bad fact: insurance not reported, no housing record, no education record, an employment status
//! never reported by someone without salary or business income — with one exception: income.
//! The income agency reports every income the state knows of, so a month without a report is a
//! month without income. A family with no region gets the poverty line's subsistence floor, and
//! its explanation says so.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use storage::ids::Month;
use storage::ids::Sex;
use storage::money::Money;
use storage::record::{
    CitizenFacts, Criterion, Deprivation, DisabilityGroup, EmploymentStatus, Enrollment,
    Evaluation, FamilyRecord, Fraction, IncomeSource, Level, ProgramDecision, Role, Tenure,
    Utility,
};

use crate::eligibility::Words;
use crate::rules::{IndicatorRule, IndicatorTest, PovertyLine, Rules};

/// Kazakhstan's offset from UTC: one time zone, UTC+5, for the whole country since 1 March 2024.
pub const KAZAKHSTAN_UTC_OFFSET_SECONDS: i32 = 5 * 3600;

/// The calendar day in Kazakhstan at `now`: birthdays, months and deadlines are local.
pub fn local_date(now: DateTime<Utc>) -> NaiveDate {
    let offset =
        FixedOffset::east_opt(KAZAKHSTAN_UTC_OFFSET_SECONDS).expect("+05:00 is a valid offset");
    now.with_timezone(&offset).date_naive()
}

/// The scoring half of an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scores {
    /// The sum of the deprived indicators' weights, over the catalogue's common denominator.
    pub score: Fraction,
    pub level: Level,
    /// Every criterion, with its share of `score` (same denominator; they add up to `score`).
    pub criteria: BTreeMap<Criterion, Fraction>,
    /// The deprived indicators, in catalogue order.
    pub deprivations: Vec<Deprivation>,
}

/// The household's level, for scans: the weights of the indicators that
/// deprive it, summed, with their facts counted, not written
/// ([`evaluate_scores`] keeps the rest).
pub(crate) fn level_of(household: &Household<'_>, rules: &Rules) -> Level {
    let scoring = &rules.scoring;
    let numerator = (scoring.indicators.iter())
        .filter(|indicator| {
            !deprivation_facts(indicator, household, rules, Words::Skipped).is_empty()
        })
        .map(|indicator| indicator.weight.numerator)
        .sum();
    scoring.level_of(Fraction {
        numerator,
        denominator: scoring.denominator,
    })
}

/// Scores the family on `today`.
pub fn evaluate_scores(record: &FamilyRecord, rules: &Rules, today: NaiveDate) -> Scores {
    let household = Household::new(record, today);
    let scoring = &rules.scoring;
    let denominator = scoring.denominator;
    let mut criteria: BTreeMap<Criterion, Fraction> = Criterion::ALL
        .into_iter()
        .map(|criterion| {
            (
                criterion,
                Fraction {
                    numerator: 0,
                    denominator,
                },
            )
        })
        .collect();
    let mut deprivations = Vec::new();
    for indicator in &scoring.indicators {
        assert_eq!(
            indicator.weight.denominator, denominator,
            "weights share one denominator"
        );
        let facts = deprivation_facts(indicator, &household, rules, Words::Written);
        if facts.is_empty() {
            continue;
        }
        let share = criteria
            .get_mut(&indicator.criterion)
            .expect("every criterion is present");
        share.numerator += indicator.weight.numerator;
        deprivations.push(Deprivation {
            criterion: indicator.criterion,
            indicator: indicator.code.clone(),
            weight: indicator.weight,
            facts,
        });
    }
    let numerator = criteria.values().map(|share| share.numerator).sum();
    assert!(numerator <= denominator, "a score never exceeds 1");
    let score = Fraction {
        numerator,
        denominator,
    };
    Scores {
        score,
        level: scoring.level_of(score),
        criteria,
        deprivations,
    }
}

/// The whole evaluation at `now`, as a family's record keeps it: scores, program decisions,
/// and the rules version that made them. The decisions' reasons are not written: they were
/// half of a stored record, and [`explain_programs`] writes them again for a reader.
pub fn evaluate(record: &FamilyRecord, rules: &Rules, now: DateTime<Utc>) -> Evaluation {
    let today = local_date(now);
    let scores = evaluate_scores(record, rules, today);
    Evaluation {
        rules_version: rules.version.clone(),
        evaluated_at: now,
        score: scores.score,
        level: scores.level,
        criteria: scores.criteria,
        deprivations: scores.deprivations,
        programs: crate::eligibility::decide_programs(record, rules, today, Words::Skipped),
    }
}

/// The program decisions of `evaluation` with their reasons in words, decided again from the
/// record on the evaluation's day under `rules`, the catalogue the evaluation names. The
/// record's scoring inputs are those the evaluation read (every applied change evaluates the
/// family again), so the decisions come out the same; `None` when they do not, or when
/// `rules` is another version: then the words cannot be trusted to be the decision's.
/// Decisions stored with their words (by releases before words were dropped) are given as
/// stored.
pub fn explain_programs(
    record: &FamilyRecord,
    rules: &Rules,
    evaluation: &Evaluation,
) -> Option<Vec<ProgramDecision>> {
    if evaluation
        .programs
        .iter()
        .all(|decision| !decision.reasons.is_empty())
    {
        return Some(evaluation.programs.clone());
    }
    if rules.version != evaluation.rules_version {
        return None;
    }
    let today = local_date(evaluation.evaluated_at);
    let written = crate::eligibility::decide_programs(record, rules, today, Words::Written);
    let same = written.len() == evaluation.programs.len()
        && written.iter().zip(&evaluation.programs).all(|(w, s)| {
            (&w.code, w.eligible, &w.award, &w.more_awards)
                == (&s.code, s.eligible, &s.award, &s.more_awards)
        });
    same.then_some(written)
}

/// A family's per-capita income against its poverty line: the scoring's income indicator and
/// TSA both use it, so they can never disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomeAssessment {
    pub living_members: u32,
    /// The months averaged: the catalogue's `income_months` full months before today's month.
    pub first_month: Month,
    pub last_month: Month,
    /// All reported income of the living members over those months.
    pub total_income: Money,
    /// `total_income / (months × living_members)`, rounded half up to the tiyn.
    pub per_capita: Money,
    pub poverty_line: PovertyLine,
}

impl IncomeAssessment {
    pub fn is_below_line(&self) -> bool {
        self.per_capita < self.poverty_line.amount
    }

    /// "per-capita income 12000.00 KZT a month (2026-08 to 2026-10, 3 living members)".
    pub fn describe_per_capita(&self) -> String {
        format!(
            "per-capita income {} KZT a month ({} to {}, {} living member{})",
            self.per_capita,
            self.first_month,
            self.last_month,
            self.living_members,
            plural(self.living_members)
        )
    }

    /// "poverty line 52500.00 KZT (35% of the regional median …)".
    pub fn describe_line(&self) -> String {
        format!(
            "poverty line {} KZT ({})",
            self.poverty_line.amount,
            self.poverty_line.basis()
        )
    }
}

/// The income assessment on `today`, or `None` when nobody in the family is alive.
pub fn assess_income(
    record: &FamilyRecord,
    rules: &Rules,
    today: NaiveDate,
) -> Option<IncomeAssessment> {
    let household = Household::new(record, today);
    household.income_assessment(rules)
}

// ---------------------------------------------------------------------------------------------
// The facts of a family on one day, shared with `eligibility`.

/// A living member on the day of evaluation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Person<'a> {
    pub role: Role,
    pub facts: &'a CitizenFacts,
    /// Completed years on the day.
    pub age: u32,
}

impl Person<'_> {
    /// `member 0612******12`.
    pub fn name(&self) -> String {
        format!("member {}", self.facts.iin.masked())
    }

    pub fn status(&self) -> Option<EmploymentStatus> {
        self.facts.employment.map(|employment| employment.status)
    }
}

/// A family seen on one day: its living members, with ages.
pub(crate) struct Household<'a> {
    pub record: &'a FamilyRecord,
    pub today: NaiveDate,
    /// Living members, in record order.
    pub living: Vec<Person<'a>>,
}

impl<'a> Household<'a> {
    pub fn new(record: &'a FamilyRecord, today: NaiveDate) -> Household<'a> {
        let living = record
            .members
            .iter()
            .filter(|member| member.facts.is_alive_on(today))
            .map(|member| Person {
                role: member.role,
                facts: &member.facts,
                age: age_in_years(member.facts.birth_date(), today),
            })
            .collect();
        Household {
            record,
            today,
            living,
        }
    }

    pub fn size(&self) -> u32 {
        count(self.living.len())
    }

    /// The `months` full months before today's month, oldest first.
    pub fn months_before_today(&self, months: u32) -> (Month, Month) {
        let last = Month::of(self.today).prev();
        (months_back(last, months - 1), last)
    }

    pub fn income_assessment(&self, rules: &Rules) -> Option<IncomeAssessment> {
        let living_members = self.size();
        if living_members == 0 {
            return None;
        }
        let months = rules.poverty.income_months;
        let (first_month, last_month) = self.months_before_today(months);
        let total_income = saturating_sum(self.living.iter().flat_map(|person| {
            month_range(first_month, last_month)
                .map(|month| income_in(person.facts, month, |_| true))
        }));
        let per_capita = total_income.mul_ratio(1, u64::from(months) * u64::from(living_members));
        let region = self.record.address.map(|address| address.region);
        Some(IncomeAssessment {
            living_members,
            first_month,
            last_month,
            total_income,
            per_capita,
            poverty_line: rules.poverty_line(region),
        })
    }

    /// Whether the person works: their reported status says so; with no status reported,
    /// salary or business income in the income months says so; `None` when nothing is known.
    pub fn works(&self, person: &Person<'_>, income_months: u32) -> Option<bool> {
        match person.status() {
            Some(status) => Some(matches!(
                status,
                EmploymentStatus::Employed | EmploymentStatus::SelfEmployed
            )),
            None => {
                let (first, last) = self.months_before_today(income_months);
                let earned = month_range(first, last).any(|month| {
                    income_in(person.facts, month, |source| {
                        matches!(source, IncomeSource::Salary | IncomeSource::Business)
                    }) > Money::ZERO
                });
                earned.then_some(true)
            }
        }
    }
}

/// Completed years from `birth` to `today`; 0 for a birth date after `today`.
pub fn age_in_years(birth: NaiveDate, today: NaiveDate) -> u32 {
    today.years_since(birth).unwrap_or(0)
}

/// The disability group valid on `today`: an assessment whose `until` has passed counts for
/// nothing.
pub fn valid_disability(facts: &CitizenFacts, today: NaiveDate) -> Option<DisabilityGroup> {
    facts
        .disability
        .filter(|disability| disability.until.is_none_or(|until| until >= today))
        .map(|disability| disability.group)
}

/// One person's income in one month from the sources `counted` accepts, saturating: the feed
/// controls the amounts, and an absurd report must not panic the family's actor.
pub(crate) fn income_in(
    facts: &CitizenFacts,
    month: Month,
    counted: impl Fn(IncomeSource) -> bool,
) -> Money {
    facts.incomes.get(&month).map_or(Money::ZERO, |by_source| {
        saturating_sum(
            by_source
                .iter()
                .filter(|(source, _)| counted(**source))
                .map(|(_, amount)| *amount),
        )
    })
}

pub(crate) fn saturating_sum(amounts: impl IntoIterator<Item = Money>) -> Money {
    amounts.into_iter().fold(Money::ZERO, |total, amount| {
        total
            .checked_add(amount)
            .unwrap_or(Money::from_tiyn(u64::MAX))
    })
}

/// `first..=last`, month by month.
pub(crate) fn month_range(first: Month, last: Month) -> impl Iterator<Item = Month> {
    std::iter::successors(Some(first), move |month| {
        (*month < last).then(|| month.next())
    })
    .take_while(move |month| *month <= last)
}

/// `count` months before `month`, stopping at 0000-01: dates come from the feed, and an absurd
/// one must not panic the family's actor.
pub(crate) fn months_back(month: Month, count: u32) -> Month {
    let first = Month::new(0, 1).expect("0000-01 is a month");
    (0..count).fold(
        month,
        |month, _| if month == first { month } else { month.prev() },
    )
}

/// `count` months after `month`, stopping at 9999-12.
pub(crate) fn months_ahead(month: Month, count: u32) -> Month {
    let last = Month::new(9999, 12).expect("9999-12 is a month");
    (0..count).fold(
        month,
        |month, _| if month == last { month } else { month.next() },
    )
}

/// A member count as `u32`: families are far smaller than 4 billion.
pub(crate) fn count(len: usize) -> u32 {
    u32::try_from(len).expect("a family has fewer than 2^32 members")
}

pub(crate) fn plural(count: u32) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

pub(crate) fn group_name(group: DisabilityGroup) -> &'static str {
    match group {
        DisabilityGroup::One => "1",
        DisabilityGroup::Two => "2",
        DisabilityGroup::Three => "3",
        DisabilityGroup::Child => "child",
    }
}

pub(crate) fn status_name(status: EmploymentStatus) -> &'static str {
    match status {
        EmploymentStatus::Employed => "employed",
        EmploymentStatus::SelfEmployed => "self-employed",
        EmploymentStatus::Unemployed => "unemployed",
        EmploymentStatus::Student => "a student",
        EmploymentStatus::Retired => "retired",
        EmploymentStatus::Caregiver => "a caregiver",
    }
}

fn enrollment_name(enrollment: Enrollment) -> &'static str {
    match enrollment {
        Enrollment::None => "not enrolled anywhere",
        Enrollment::Preschool => "in preschool",
        Enrollment::School => "in school",
        Enrollment::College => "in college",
        Enrollment::University => "at university",
    }
}

fn utility_name(utility: Utility) -> &'static str {
    match utility {
        Utility::Water => "water",
        Utility::Heating => "heating",
        Utility::Sewerage => "sewerage",
        Utility::Gas => "gas",
    }
}

fn tenure_name(tenure: Tenure) -> &'static str {
    match tenure {
        Tenure::Owned => "owned",
        Tenure::Rented => "rented",
        Tenure::Social => "social",
        Tenure::None => "none (no housing of its own, rented or social)",
    }
}

fn names<'p>(people: impl IntoIterator<Item = &'p Person<'p>>) -> String {
    people
        .into_iter()
        .map(Person::name)
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// The indicators

/// `format!` when facts are written out; when a scan only counts them, an
/// empty string (which allocates nothing), its arguments never evaluated.
macro_rules! fact {
    ($words:expr, $($arg:tt)*) => {
        if $words == Words::Written {
            format!($($arg)*)
        } else {
            String::new()
        }
    };
}

/// The facts that deprive the family by `indicator`, in words (each empty
/// with [`Words::Skipped`]); none when it is not deprived.
fn deprivation_facts(
    indicator: &IndicatorRule,
    household: &Household<'_>,
    rules: &Rules,
    words: Words,
) -> Vec<String> {
    let today = household.today;
    let living = &household.living;
    let income_months = rules.poverty.income_months;
    match &indicator.test {
        IndicatorTest::IncomeBelowPovertyLine => household
            .income_assessment(rules)
            .filter(IncomeAssessment::is_below_line)
            .map(|income| {
                vec![fact!(
                    words,
                    "{} is below the {}",
                    income.describe_per_capita(),
                    income.describe_line()
                )]
            })
            .unwrap_or_default(),

        IndicatorTest::NoWorkingAgeEmployed { age_min, age_max } => {
            let working_age: Vec<&Person<'_>> = living
                .iter()
                .filter(|person| (*age_min..=*age_max).contains(&person.age))
                .collect();
            let works: Vec<Option<bool>> = working_age
                .iter()
                .map(|person| household.works(person, income_months))
                .collect();
            if working_age.is_empty() || works.iter().any(|works| *works != Some(false)) {
                return Vec::new();
            }
            working_age
                .iter()
                .map(|person| {
                    let status = person.status().map_or("without work", status_name);
                    fact!(
                        words,
                        "{}, aged {}, is {status}: no member aged {age_min}–{age_max} works",
                        person.name(),
                        person.age
                    )
                })
                .collect()
        }

        IndicatorTest::NonMortgageDebt => living
            .iter()
            .filter(|person| person.facts.non_mortgage_debt)
            .map(|person| fact!(words, "{} has a non-mortgage debt", person.name()))
            .collect(),

        IndicatorTest::Uninsured => living
            .iter()
            .filter(|person| person.facts.insured == Some(false))
            .map(|person| fact!(words, "{} has no health insurance", person.name()))
            .collect(),

        IndicatorTest::DisabilityGroup { groups } => living
            .iter()
            .filter_map(|person| {
                let group =
                    valid_disability(person.facts, today).filter(|group| groups.contains(group))?;
                Some(fact!(
                    words,
                    "{} has disability group {}{}",
                    person.name(),
                    group_name(group),
                    until_words(person)
                ))
            })
            .collect(),

        IndicatorTest::ChildDisability { age_max } => living
            .iter()
            .filter_map(|person| {
                let group = valid_disability(person.facts, today)
                    .filter(|group| *group == DisabilityGroup::Child || person.age <= *age_max)?;
                Some(fact!(
                    words,
                    "{}, aged {}, is a child with disability group {}{}",
                    person.name(),
                    person.age,
                    group_name(group),
                    until_words(person)
                ))
            })
            .collect(),

        IndicatorTest::Tenure { tenures } => match &household.record.housing {
            Some(housing) if tenures.contains(&housing.tenure) => {
                vec![fact!(
                    words,
                    "the family's housing tenure is {}",
                    tenure_name(housing.tenure)
                )]
            }
            _ => Vec::new(),
        },

        IndicatorTest::AreaPerPersonBelow { area_per_person_m2 } => {
            let (Some(housing), members @ 1..) = (&household.record.housing, household.size())
            else {
                return Vec::new();
            };
            // area_decimetres / 10 / members < threshold / 10000, in integers.
            let crowded = u64::from(housing.area_decimetres) * 1_000
                < area_per_person_m2.ten_thousandths() * u64::from(members);
            if !crowded {
                return Vec::new();
            }
            let per_person = housing.area_decimetres / members;
            vec![fact!(words,
                "{}.{} m² for {members} living member{}: {}.{} m² a person, under {area_per_person_m2} m²",
                housing.area_decimetres / 10,
                housing.area_decimetres % 10,
                plural(members),
                per_person / 10,
                per_person % 10
            )]
        }

        IndicatorTest::MissingUtilities { utilities } => {
            let Some(housing) = &household.record.housing else {
                return Vec::new();
            };
            let missing: Vec<&str> = utilities
                .iter()
                .filter(|utility| !housing.utilities.contains(utility))
                .map(|utility| utility_name(*utility))
                .collect();
            if missing.is_empty() {
                return Vec::new();
            }
            vec![fact!(
                words,
                "the family's housing has no {}",
                missing.join(", no ")
            )]
        }

        IndicatorTest::SingleParent { age_max } => {
            let children = count(
                living
                    .iter()
                    .filter(|person| person.role == Role::Child && person.age <= *age_max)
                    .count(),
            );
            let parents: Vec<&Person<'_>> = living
                .iter()
                .filter(|person| matches!(person.role, Role::Head | Role::Spouse))
                .collect();
            if children == 0 || parents.len() != 1 {
                return Vec::new();
            }
            vec![fact!(words,
                "{} is the only living head or spouse, raising {children} child{} aged {age_max} or under",
                parents[0].name(),
                if children == 1 { "" } else { "ren" }
            )]
        }

        IndicatorTest::LonePensioner {
            pension_age_male,
            pension_age_female,
        } => {
            let [person] = living.as_slice() else {
                return Vec::new();
            };
            let pension_age = match person.facts.sex() {
                Sex::Male => *pension_age_male,
                Sex::Female => *pension_age_female,
            };
            if person.age >= pension_age {
                vec![fact!(
                    words,
                    "{}, aged {}, of pension age ({pension_age}), lives alone",
                    person.name(),
                    person.age
                )]
            } else if person.status() == Some(EmploymentStatus::Retired) {
                vec![fact!(
                    words,
                    "{}, aged {}, retired, lives alone",
                    person.name(),
                    person.age
                )]
            } else {
                Vec::new()
            }
        }

        IndicatorTest::DependantsExceedEarners => {
            let (first, last) = household.months_before_today(income_months);
            let (earners, dependants): (Vec<&Person<'_>>, Vec<&Person<'_>>) =
                living.iter().partition(|person| {
                    household.works(person, income_months) == Some(true)
                        || month_range(first, last).any(|month| {
                            income_in(person.facts, month, |source| {
                                source == IncomeSource::Pension
                            }) > Money::ZERO
                        })
                });
            if dependants.len() <= earners.len() {
                return Vec::new();
            }
            let earner_words = if earners.is_empty() {
                "no earner".to_owned()
            } else {
                fact!(words, "earners: {}", names(earners.iter().copied()))
            };
            vec![fact!(
                words,
                "{} dependants and {} earner{} ({earner_words}; dependants: {})",
                dependants.len(),
                earners.len(),
                plural(count(earners.len())),
                names(dependants.iter().copied())
            )]
        }

        IndicatorTest::NotEnrolled {
            age_min,
            age_max,
            enrollments,
        } => living
            .iter()
            .filter(|person| (*age_min..=*age_max).contains(&person.age))
            .filter_map(|person| {
                let enrolled = person.facts.education?.enrolled;
                (!enrollments.contains(&enrolled)).then(|| {
                    fact!(
                        words,
                        "{}, aged {}, is {} (expected: {})",
                        person.name(),
                        person.age,
                        enrollment_name(enrolled),
                        enrollments
                            .iter()
                            .map(|e| enrollment_name(*e))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )
                })
            })
            .collect(),

        IndicatorTest::NoAdultAttainment {
            age_min,
            attainments,
        } => {
            let adults: Vec<&Person<'_>> = living
                .iter()
                .filter(|person| person.age >= *age_min)
                .collect();
            let known = adults.iter().all(|person| person.facts.education.is_some());
            let any_attained = adults.iter().any(|person| {
                person
                    .facts
                    .education
                    .is_some_and(|education| attainments.contains(&education.attainment))
            });
            if adults.is_empty() || !known || any_attained {
                return Vec::new();
            }
            vec![fact!(
                words,
                "no member aged {age_min} or over has completed secondary education or more ({})",
                names(adults.iter().copied())
            )]
        }
    }
}

fn until_words(person: &Person<'_>) -> String {
    match person
        .facts
        .disability
        .and_then(|disability| disability.until)
    {
        Some(until) => format!(" (valid until {until})"),
        None => " (indefinite)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use storage::ids::Region;
    use storage::record::{Attainment, Award, Disability, Education, Housing};

    use super::*;
    use crate::eligibility::fixtures::{self, rules_2026, today, FamilyBuilder};

    /// A family that is deprived by nothing: two working, insured, educated parents with a
    /// school child and a preschool child in an owned, roomy flat with every utility.
    fn well_off() -> FamilyBuilder {
        fixtures::well_off_family()
    }

    /// Scores the family and expects exactly the `expected` indicators deprived, each with a
    /// fact containing `fact`.
    fn check(family: FamilyBuilder, expected: &[&str], fact: &str) {
        let record = family.build();
        let scores = evaluate_scores(&record, &rules_2026(), today());
        let deprived: Vec<&str> = scores
            .deprivations
            .iter()
            .map(|d| d.indicator.as_str())
            .collect();
        assert_eq!(
            deprived, expected,
            "deprivations: {:#?}",
            scores.deprivations
        );
        let facts: Vec<&String> = scores.deprivations.iter().flat_map(|d| &d.facts).collect();
        assert!(
            facts.iter().any(|text| text.contains(fact)),
            "no fact contains {fact:?}: {facts:#?}"
        );
        let count = u32::try_from(expected.len()).unwrap();
        assert_eq!(
            scores.score,
            Fraction {
                numerator: count,
                denominator: 15
            }
        );
    }

    #[test]
    fn the_baseline_is_deprived_by_nothing() {
        let scores = evaluate_scores(&well_off().build(), &rules_2026(), today());
        assert_eq!(scores.deprivations, []);
        assert_eq!(
            scores.score,
            Fraction {
                numerator: 0,
                denominator: 15
            }
        );
        assert_eq!(scores.level, Level::A);
        assert_eq!(scores.criteria.len(), 5);
    }

    #[test]
    fn economic_indicators() {
        // Two earners of 60000 a month for four members: 30000 per capita, under Karaganda's
        // 52500.
        check(
            well_off().each_adult(|facts| fixtures::salary(facts, "60000")),
            &["income_below_poverty_line"],
            "per-capita income 30000.00 KZT a month (2026-08 to 2026-10, 4 living members) is below the poverty line 52500.00 KZT",
        );
        check(
            well_off().each_adult(|facts| {
                fixtures::employment(facts, EmploymentStatus::Unemployed, None);
                facts.incomes.clear();
                fixtures::income(facts, IncomeSource::Benefit, "300000");
            }),
            &["no_working_age_employed", "dependants_exceed_earners"],
            "is unemployed: no member aged 18–62 works",
        );
        check(
            well_off().member_facts(0, |facts| facts.non_mortgage_debt = true),
            &["non_mortgage_debt"],
            "has a non-mortgage debt",
        );
    }

    #[test]
    fn unknown_employment_deprives_only_without_earnings() {
        // No status reported but a salary: works. No status and no earnings: unknown, so
        // the family is not deprived by it either.
        check(
            well_off()
                .each_adult(|facts| facts.employment = None)
                .member_facts(0, |facts| facts.non_mortgage_debt = true),
            &["non_mortgage_debt"],
            "non-mortgage debt",
        );
        let record = well_off()
            .each_adult(|facts| {
                facts.employment = None;
                facts.incomes.clear();
                fixtures::income(facts, IncomeSource::Benefit, "300000");
            })
            .build();
        let scores = evaluate_scores(&record, &rules_2026(), today());
        let deprived: Vec<&str> = scores
            .deprivations
            .iter()
            .map(|d| d.indicator.as_str())
            .collect();
        assert_eq!(deprived, ["dependants_exceed_earners"]);
    }

    #[test]
    fn health_indicators() {
        check(
            well_off().member_facts(1, |facts| facts.insured = Some(false)),
            &["uninsured_member"],
            "has no health insurance",
        );
        check(
            well_off().member_facts(1, |facts| {
                facts.disability = Some(Disability {
                    group: DisabilityGroup::Two,
                    until: None,
                });
            }),
            &["severe_disability"],
            "has disability group 2 (indefinite)",
        );
        check(
            well_off().member_facts(2, |facts| {
                facts.disability = Some(Disability {
                    group: DisabilityGroup::Child,
                    until: Some(fixtures::day("2027-01-31")),
                });
            }),
            &["child_disability"],
            "is a child with disability group child (valid until 2027-01-31)",
        );
    }

    #[test]
    fn missing_or_expired_health_facts_do_not_deprive() {
        check_nothing(well_off().member_facts(1, |facts| facts.insured = None));
        check_nothing(well_off().member_facts(1, |facts| {
            facts.disability = Some(Disability {
                group: DisabilityGroup::One,
                until: Some(fixtures::day("2026-11-14")),
            });
        }));
        // Group 3 is not severe; an adult's group 3 is no child's disability.
        check_nothing(well_off().member_facts(0, |facts| {
            facts.disability = Some(Disability {
                group: DisabilityGroup::Three,
                until: None,
            });
        }));
        // Valid on its last day.
        check(
            well_off().member_facts(1, |facts| {
                facts.disability = Some(Disability {
                    group: DisabilityGroup::One,
                    until: Some(today()),
                });
            }),
            &["severe_disability"],
            "group 1 (valid until 2026-11-15)",
        );
    }

    fn check_nothing(family: FamilyBuilder) {
        let scores = evaluate_scores(&family.build(), &rules_2026(), today());
        assert_eq!(scores.deprivations, [], "expected no deprivation");
    }

    #[test]
    fn housing_indicators() {
        check(
            well_off().housing(
                Tenure::Rented,
                1_000,
                &[Utility::Water, Utility::Heating, Utility::Sewerage],
            ),
            &["no_own_or_social_housing"],
            "housing tenure is rented",
        );
        // 59.9 m² for 4 is 14.975 m² a person: under 15.
        check(
            well_off().housing(
                Tenure::Owned,
                599,
                &[Utility::Water, Utility::Heating, Utility::Sewerage],
            ),
            &["overcrowding"],
            "59.9 m² for 4 living members: 14.9 m² a person, under 15 m²",
        );
        check(
            well_off().housing(Tenure::Social, 1_000, &[Utility::Water, Utility::Gas]),
            &["missing_utilities"],
            "has no heating, no sewerage",
        );
        // Exactly 15 m² a person is not crowded; social housing is not deprived; no housing
        // record is unknown.
        check_nothing(well_off().housing(
            Tenure::Social,
            600,
            &[Utility::Water, Utility::Heating, Utility::Sewerage],
        ));
        check_nothing(well_off().no_housing());
    }

    #[test]
    fn social_indicators() {
        // The spouse dies: one head with two children, one earner for two dependants.
        check(
            well_off().member_facts(1, |facts| facts.died_on = Some(fixtures::day("2026-01-10"))),
            &["single_parent", "dependants_exceed_earners"],
            "is the only living head or spouse, raising 2 children aged 17 or under",
        );
        check(
            FamilyBuilder::new().member(Role::Head, "1950-03-01", Sex::Male, |facts| {
                fixtures::insured_and_educated(facts);
                fixtures::income(facts, IncomeSource::Pension, "200000");
                fixtures::employment(facts, EmploymentStatus::Retired, None);
            }),
            &["lone_pensioner"],
            "aged 76, of pension age (63), lives alone",
        );
        // A woman reaches pension age at 61: on her 61st birthday, not the day before.
        let woman_born = |birth: &str| {
            FamilyBuilder::new().member(Role::Head, birth, Sex::Female, |facts| {
                fixtures::insured_and_educated(facts);
                fixtures::income(facts, IncomeSource::Pension, "200000");
            })
        };
        check(
            woman_born("1965-11-15"),
            &["lone_pensioner"],
            "aged 61, of pension age (61), lives alone",
        );
        check_nothing(woman_born("1965-11-16"));
        check(
            well_off().member_facts(1, |facts| {
                fixtures::employment(facts, EmploymentStatus::Caregiver, None);
                facts.incomes.clear();
            }),
            &["dependants_exceed_earners"],
            "3 dependants and 1 earner",
        );
    }

    #[test]
    fn a_lone_person_below_pension_age_is_no_lone_pensioner() {
        check_nothing(
            FamilyBuilder::new().member(Role::Head, "1966-03-01", Sex::Male, |facts| {
                fixtures::insured_and_educated(facts);
                fixtures::employment(facts, EmploymentStatus::Employed, None);
                fixtures::income(facts, IncomeSource::Salary, "300000");
            }),
        );
    }

    #[test]
    fn education_indicators() {
        check(
            well_off().member_facts(2, |facts| {
                facts.education = Some(Education {
                    enrolled: Enrollment::None,
                    attainment: Attainment::None,
                });
            }),
            &["child_not_in_school"],
            "aged 9, is not enrolled anywhere (expected: in school or in college or at university)",
        );
        check(
            well_off().member_facts(3, |facts| {
                facts.education = Some(Education {
                    enrolled: Enrollment::None,
                    attainment: Attainment::None,
                });
            }),
            &["child_not_in_preschool"],
            "aged 4, is not enrolled anywhere (expected: in preschool or in school)",
        );
        check(
            well_off().each_adult(|facts| {
                facts.education = Some(Education {
                    enrolled: Enrollment::None,
                    attainment: Attainment::Primary,
                });
            }),
            &["no_adult_secondary_education"],
            "no member aged 18 or over has completed secondary education",
        );
        // One adult's education unknown: nobody can say no adult has it.
        check_nothing(
            well_off()
                .each_adult(|facts| {
                    facts.education = Some(Education {
                        enrolled: Enrollment::None,
                        attainment: Attainment::Primary,
                    });
                })
                .member_facts(0, |facts| facts.education = None),
        );
        check_nothing(well_off().member_facts(2, |facts| facts.education = None));
    }

    #[test]
    fn every_default_indicator_at_once() {
        let record = FamilyBuilder::new()
            .member(Role::Head, "1990-05-01", Sex::Female, |facts| {
                fixtures::employment(facts, EmploymentStatus::Unemployed, None);
                facts.insured = Some(false);
                facts.non_mortgage_debt = true;
                facts.disability = Some(Disability {
                    group: DisabilityGroup::One,
                    until: None,
                });
                facts.education = Some(Education {
                    enrolled: Enrollment::None,
                    attainment: Attainment::Primary,
                });
            })
            .member(Role::Child, "2016-02-01", Sex::Male, |facts| {
                facts.disability = Some(Disability {
                    group: DisabilityGroup::Child,
                    until: None,
                });
                facts.education = Some(Education {
                    enrolled: Enrollment::None,
                    attainment: Attainment::None,
                });
            })
            .member(Role::Child, "2022-02-01", Sex::Female, |facts| {
                facts.education = Some(Education {
                    enrolled: Enrollment::None,
                    attainment: Attainment::None,
                });
            })
            .housing(Tenure::None, 200, &[])
            .build();
        let scores = evaluate_scores(&record, &rules_2026(), today());
        // 14 of 15: the lone-pensioner indicator cannot hold with children.
        assert_eq!(
            scores.score,
            Fraction {
                numerator: 14,
                denominator: 15
            }
        );
        assert_eq!(scores.level, Level::E);
        let full = Fraction {
            numerator: 3,
            denominator: 15,
        };
        assert_eq!(scores.criteria[&Criterion::Economic], full);
        assert_eq!(
            scores.criteria[&Criterion::Social],
            Fraction {
                numerator: 2,
                denominator: 15
            }
        );
        assert!(scores.deprivations.iter().all(|d| d.weight
            == Fraction {
                numerator: 1,
                denominator: 15
            }));
    }

    #[test]
    fn levels_follow_the_number_of_deprivations() {
        // 1/15 = 0.067: A; 2/15 = 0.133: B; 3/15 = 0.2 (exactly C's cut-off): C; 5/15 =
        // 0.333: D; 8/15 = 0.533: E.
        fn check(deprivations: usize, expected: Level) {
            let setters: [fn(&mut CitizenFacts); 3] = [
                |facts| facts.non_mortgage_debt = true,
                |facts| facts.insured = Some(false),
                |facts| {
                    facts.disability = Some(Disability {
                        group: DisabilityGroup::One,
                        until: None,
                    })
                },
            ];
            let mut family = well_off();
            for setter in setters.iter().take(deprivations.min(3)) {
                family = family.member_facts(0, *setter);
            }
            if deprivations > 3 {
                family = family.housing(Tenure::Rented, 100, &[]);
            }
            if deprivations > 6 {
                family = family.each_adult(|facts| {
                    facts.education = Some(Education {
                        enrolled: Enrollment::None,
                        attainment: Attainment::None,
                    });
                });
            }
            if deprivations > 7 {
                family = family.member_facts(3, |facts| {
                    facts.education = Some(Education {
                        enrolled: Enrollment::None,
                        attainment: Attainment::None,
                    });
                });
            }
            let scores = evaluate_scores(&family.build(), &rules_2026(), today());
            assert_eq!(
                scores.deprivations.len(),
                deprivations,
                "{:#?}",
                scores.deprivations
            );
            assert_eq!(scores.level, expected, "{deprivations} deprivations");
        }
        check(0, Level::A);
        check(1, Level::A);
        check(2, Level::B);
        check(3, Level::C);
        check(6, Level::D);
        check(7, Level::D);
        check(8, Level::E);
    }

    #[test]
    fn an_unknown_region_uses_the_floor_and_says_so() {
        let record = well_off()
            .no_address()
            .each_adult(|facts| fixtures::salary(facts, "60000"))
            .build();
        let scores = evaluate_scores(&record, &rules_2026(), today());
        let facts = &scores.deprivations[0].facts[0];
        assert!(facts.contains("poverty line 35595.70 KZT"), "{facts}");
        assert!(facts.contains("the family's region is unknown"), "{facts}");
    }

    #[test]
    fn income_averages_the_full_months_before_today() {
        // Income in the current month (2026-11) and in 2026-07 is outside the window.
        let record = FamilyBuilder::new()
            .region(Region::Astana)
            .member(Role::Head, "1980-01-01", Sex::Female, |facts| {
                fixtures::income_at(facts, "2026-07", IncomeSource::Salary, "900000");
                fixtures::income_at(facts, "2026-08", IncomeSource::Salary, "100000");
                fixtures::income_at(facts, "2026-09", IncomeSource::Salary, "100000");
                fixtures::income_at(facts, "2026-10", IncomeSource::Salary, "100001");
                fixtures::income_at(facts, "2026-11", IncomeSource::Salary, "900000");
            })
            .member(Role::Child, "2015-01-01", Sex::Male, |_| {})
            .build();
        let income = assess_income(&record, &rules_2026(), today()).unwrap();
        assert_eq!(income.total_income, Money::from_kzt(300_001));
        // 300001 / 6 = 50000.1666…: 50000.17.
        assert_eq!(income.per_capita.to_string(), "50000.17");
        assert_eq!(income.poverty_line.amount.to_string(), "77000.00");
        assert!(income.is_below_line());
    }

    #[test]
    fn the_dead_are_not_counted() {
        let record = well_off()
            .member_facts(3, |facts| facts.died_on = Some(fixtures::day("2026-11-15")))
            .build();
        let income = assess_income(&record, &rules_2026(), today()).unwrap();
        assert_eq!(income.living_members, 3);
        // Dying tomorrow: still alive today.
        let record = well_off()
            .member_facts(3, |facts| facts.died_on = Some(fixtures::day("2026-11-16")))
            .build();
        assert_eq!(
            assess_income(&record, &rules_2026(), today())
                .unwrap()
                .living_members,
            4
        );
    }

    #[test]
    fn evaluate_carries_the_version_and_the_programs() {
        let record = well_off().member_facts(1, |facts| {
            facts.awards.insert(Award::KumisAlka);
        });
        let now = Utc.with_ymd_and_hms(2026, 11, 15, 6, 0, 0).unwrap();
        let evaluation = evaluate(&record.build(), &rules_2026(), now);
        assert_eq!(evaluation.rules_version, "2026.1");
        assert_eq!(evaluation.evaluated_at, now);
        assert_eq!(evaluation.programs.len(), 9);
        assert_eq!(evaluation.level, Level::A);
        let award = evaluation
            .programs
            .iter()
            .find(|program| program.code == "awarded_mother")
            .unwrap();
        assert!(award.eligible);
    }

    /// A record keeps its decisions without words; a reader has them written again, and only
    /// under the catalogue that made them.
    #[test]
    fn stored_decisions_keep_no_words_and_are_explained_again() {
        let mut record = well_off()
            .member_facts(1, |facts| {
                facts.awards.insert(Award::KumisAlka);
            })
            .build();
        let now = Utc.with_ymd_and_hms(2026, 11, 15, 6, 0, 0).unwrap();
        let rules = rules_2026();
        let evaluation = evaluate(&record, &rules, now);
        assert!(evaluation.programs.iter().all(|p| p.reasons.is_empty()));
        let explained = explain_programs(&record, &rules, &evaluation).unwrap();
        assert_eq!(
            explained,
            crate::eligibility::decide_programs(&record, &rules, local_date(now), Words::Written)
        );
        assert!(explained.iter().all(|p| !p.reasons.is_empty()));
        let award = explained
            .iter()
            .find(|p| p.code == "awarded_mother")
            .unwrap();
        assert!(award.eligible && award.reasons.len() >= 2, "{award:?}");

        // Another catalogue version does not explain this evaluation.
        let mut other = rules_2026();
        other.version = "2026.2".to_owned();
        assert_eq!(explain_programs(&record, &other, &evaluation), None);
        // Nor do facts that no longer give the stored decisions.
        record.members[1].facts.awards.clear();
        assert_eq!(explain_programs(&record, &rules, &evaluation), None);
        // Decisions stored with their words are given as stored.
        let mut worded = evaluation.clone();
        worded.programs = explained.clone();
        assert_eq!(explain_programs(&record, &other, &worded), Some(explained));
    }

    #[test]
    fn an_empty_family_scores_nothing() {
        let scores = evaluate_scores(&FamilyBuilder::new().build(), &rules_2026(), today());
        assert_eq!(
            scores.score,
            Fraction {
                numerator: 0,
                denominator: 15
            }
        );
        assert_eq!(scores.level, Level::A);
        assert_eq!(scores.deprivations, []);
        assert_eq!(
            assess_income(&FamilyBuilder::new().build(), &rules_2026(), today()),
            None
        );
    }

    #[test]
    fn criteria_add_up_to_the_score() {
        let record = well_off()
            .member_facts(0, |facts| facts.non_mortgage_debt = true)
            .member_facts(1, |facts| facts.insured = Some(false))
            .housing(Tenure::Rented, 300, &[])
            .build();
        let scores = evaluate_scores(&record, &rules_2026(), today());
        let expected = [
            (Criterion::Economic, 1),
            (Criterion::Health, 1),
            (Criterion::Housing, 3),
            (Criterion::Social, 0),
            (Criterion::Education, 0),
        ];
        for (criterion, numerator) in expected {
            assert_eq!(
                scores.criteria[&criterion],
                Fraction {
                    numerator,
                    denominator: 15
                },
                "{criterion:?}"
            );
        }
        let total: u32 = scores.criteria.values().map(|share| share.numerator).sum();
        assert_eq!(
            scores.score,
            Fraction {
                numerator: total,
                denominator: 15
            }
        );
        // 5/15 = 0.333… ≥ 0.33: D.
        assert_eq!(scores.level, Level::D);
        assert_eq!(scores.score.to_decimal_string(), "0.3333");
    }

    #[test]
    fn ages_are_completed_years() {
        let check = |birth: &str, expected: u32| {
            assert_eq!(
                age_in_years(fixtures::day(birth), today()),
                expected,
                "{birth}"
            )
        };
        check("2008-11-15", 18);
        check("2008-11-16", 17);
        check("2026-11-15", 0);
        check("2027-01-01", 0);
    }

    #[test]
    fn the_local_day_is_kazakhstan_time() {
        let check =
            |utc: DateTime<Utc>, expected: &str| assert_eq!(local_date(utc).to_string(), expected);
        check(
            Utc.with_ymd_and_hms(2026, 11, 14, 18, 59, 59).unwrap(),
            "2026-11-14",
        );
        check(
            Utc.with_ymd_and_hms(2026, 11, 14, 19, 0, 0).unwrap(),
            "2026-11-15",
        );
    }

    #[test]
    fn housing_fixture_is_what_it_says() {
        let record = well_off().build();
        assert_eq!(
            record.housing,
            Some(Housing {
                tenure: Tenure::Owned,
                area_decimetres: 1_000,
                utilities: [
                    Utility::Water,
                    Utility::Heating,
                    Utility::Sewerage,
                    Utility::Gas
                ]
                .into_iter()
                .collect(),
            })
        );
    }
}
