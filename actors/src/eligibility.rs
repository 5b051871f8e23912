//! Program rules: for each program of the catalogue, in catalogue order, whether the family is
//! eligible on a given day, why (in words a person can read, IINs masked), and when it is, who
//! gets how much.
//!
//! Pure: no IO, no clock; the day is a parameter. Amounts are integer tiyn computed with
//! [`Money`] and [`Rate`], rounding half up, never through floating point. Every number comes
//! from the catalogue ([`Rules`]); this module holds the logic of the nine kinds only.
//!
//! # Choices the law leaves open (also written beside the values in `config/programs.toml`)
//! - One decision per program per family. Benefits paid per person (disability, job loss)
//!   carry one award per eligible member (`more_awards` after the first, by IIN order). The
//!   others award one person: awarded mothers (the highest award), childcare and the
//!   disabled-child benefit (for the youngest child; twins under 1.5 are one allowance here).
//! - Children are members with role `child`. A child's order counts every child in the record
//!   born before it (a deceased child too: order is of births; twins by IIN order). Children
//!   who have left the family are not in the record and cannot be counted.
//! - The mother is the living female head or spouse; else a living female `parent`; else a
//!   living head or spouse of either sex (a widowed father). The carer is the mother if she is
//!   a caregiver; else a living head, spouse or parent who is a caregiver; else the mother.
//!   The head is the living head; else the mother.
//! - Ages are completed years on the day; "under 1.5" is "18 months not yet reached", with
//!   months added as the calendar does (31 Aug + 18 months = 28/29 Feb).

use chrono::{Months, NaiveDate};
use storage::ids::{Iin, Month, Sex};
use storage::money::{Money, Rate};
use storage::record::{
    Award, AwardDecision, CitizenFacts, DisabilityGroup, EmploymentStatus, Enrollment,
    FamilyRecord, IncomeSource, ProgramDecision, Role,
};

use crate::rules::{
    AwardRule, BirthRule, ChildcareRule, DisabilityRule, DisabledChildParentRule, JobLossRule,
    LargeFamilyRule, ProgramParams, ProgramRule, Rules, SurvivorRule, TsaRule,
};
use crate::scoring::{
    count, group_name, income_in, local_date, month_range, months_ahead, months_back, plural,
    saturating_sum, status_name, valid_disability, Household, Person,
};

/// Decides every program of the catalogue for the family on `today`, in catalogue order.
pub fn decide_programs(
    record: &FamilyRecord,
    rules: &Rules,
    today: NaiveDate,
    words: Words,
) -> Vec<ProgramDecision> {
    let household = Household::new(record, today);
    rules
        .programs
        .iter()
        .map(|program| decide(program, &household, rules, words))
        .collect()
}

/// Whether a decision's reasons are written out. A what-if or a re-score scan
/// reads only the eligibility and the awards, and words are most of a
/// decision's cost; a stored evaluation keeps none (they were half of a
/// family's record) and a reader has them written again
/// ([`crate::scoring::explain_programs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Words {
    Written,
    /// Reasons are counted, not written: the decision's `reasons` are empty.
    Skipped,
}

pub(crate) fn decide(
    program: &ProgramRule,
    household: &Household<'_>,
    rules: &Rules,
    words: Words,
) -> ProgramDecision {
    let (reasons, award, more_awards) = decided(program, household, rules, words);
    ProgramDecision {
        code: program.code.clone(),
        eligible: award.is_some(),
        reasons: reasons.list,
        award,
        more_awards,
    }
}

/// A decision's awards alone, as [`decide`] makes them without words: the
/// family is eligible when there is a first award. For scans, which would
/// otherwise copy the program's code into every decision and drop it.
pub(crate) fn decide_awards(
    program: &ProgramRule,
    household: &Household<'_>,
    rules: &Rules,
) -> (Option<AwardDecision>, Vec<AwardDecision>) {
    let (_, award, more_awards) = decided(program, household, rules, Words::Skipped);
    (award, more_awards)
}

fn decided(
    program: &ProgramRule,
    household: &Household<'_>,
    rules: &Rules,
    words: Words,
) -> (Reasons, Option<AwardDecision>, Vec<AwardDecision>) {
    let context = Context {
        household,
        rules,
        program,
        words,
    };
    let outcome = match &program.params {
        ProgramParams::Birth(rule) => birth(rule, &context),
        ProgramParams::Childcare(rule) => childcare(rule, &context),
        ProgramParams::LargeFamily(rule) => large_family(rule, &context),
        ProgramParams::Award(rule) => award(rule, &context),
        ProgramParams::DisabledChildParent(rule) => disabled_child_parent(rule, &context),
        ProgramParams::Disability(rule) => disability(rule, &context),
        ProgramParams::Survivor(rule) => survivor(rule, &context),
        ProgramParams::JobLoss(rule) => job_loss(rule, &context),
        ProgramParams::Tsa(rule) => tsa(rule, &context),
    };
    let Outcome {
        mut reasons,
        mut award,
        mut more_awards,
    } = outcome;
    more_awards.retain(|extra| extra.amount > Money::ZERO);
    assert!(!reasons.is_empty(), "every decision has a reason");
    // A tiny salary (one tiyn × 45%) can round to nothing; nothing is not an award.
    if award
        .as_ref()
        .is_some_and(|award| award.amount == Money::ZERO)
    {
        reasons.pop(); // "paid to …", which `Context::award` always adds last.
        reasons.say(|| "the amount rounds to 0.00 KZT, so there is nothing to award".to_owned());
        award = None;
    }
    if award.is_none() {
        more_awards.clear();
    }
    (reasons, award, more_awards)
}

struct Context<'h, 'a> {
    household: &'h Household<'a>,
    rules: &'h Rules,
    program: &'h ProgramRule,
    words: Words,
}

impl Context<'_, '_> {
    /// No reasons yet.
    fn reasons(&self) -> Reasons {
        Reasons {
            words: self.words == Words::Written,
            list: Vec::new(),
            count: 0,
        }
    }

    /// Reasons that start with `words`.
    fn because(&self, words: impl FnOnce() -> String) -> Reasons {
        let mut reasons = self.reasons();
        reasons.say(words);
        reasons
    }

    /// A refusal for one reason.
    fn refused(&self, words: impl FnOnce() -> String) -> Outcome {
        refused(self.because(words))
    }

    fn today(&self) -> NaiveDate {
        self.household.today
    }

    fn this_month(&self) -> Month {
        Month::of(self.household.today)
    }

    /// An eligible outcome paying `amount` to `recipient`.
    fn award(
        &self,
        mut reasons: Reasons,
        recipient: Recipient<'_>,
        amount: Money,
        occasion: Option<Month>,
        last_month: Option<Month>,
    ) -> Outcome {
        reasons.say(|| {
            format!(
                "paid to {}, {}",
                recipient.role_words,
                recipient.person.name()
            )
        });
        Outcome {
            reasons,
            award: Some(AwardDecision {
                recipient: recipient.person.facts.iin,
                amount,
                occasion,
                one_off: self.program.one_off(),
                last_month,
            }),
            more_awards: Vec::new(),
        }
    }
}

/// Who receives an award, and in what capacity ("the mother").
struct Recipient<'a> {
    person: Person<'a>,
    role_words: &'static str,
}

/// A decision's reasons, in the order a reader needs them. With
/// [`Words::Skipped`] they are only counted: whether there is one can decide
/// the outcome (TSA's refusals), and every decision has one.
struct Reasons {
    words: bool,
    list: Vec<String>,
    count: usize,
}

impl Reasons {
    fn say(&mut self, words: impl FnOnce() -> String) {
        self.insert(self.count, words);
    }

    fn insert(&mut self, at: usize, words: impl FnOnce() -> String) {
        if self.words {
            self.list.insert(at, words());
        }
        self.count += 1;
    }

    fn pop(&mut self) {
        self.list.pop();
        self.count = self.count.saturating_sub(1);
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }
}

struct Outcome {
    reasons: Reasons,
    award: Option<AwardDecision>,
    /// Further recipients of a benefit paid per person.
    more_awards: Vec<AwardDecision>,
}

fn refused(reasons: Reasons) -> Outcome {
    Outcome {
        reasons,
        award: None,
        more_awards: Vec::new(),
    }
}

fn no_recipient(mut reasons: Reasons, whom: &str) -> Outcome {
    reasons.say(|| format!("nobody in the family can receive it: there is no living {whom}"));
    refused(reasons)
}

// ---------------------------------------------------------------------------------------------
// Family roles

fn is_parent_role(person: &Person<'_>) -> bool {
    matches!(person.role, Role::Head | Role::Spouse)
}

/// The mother: the living female head or spouse, else a living female `parent`; failing both,
/// the remaining parent (a living head or spouse of either sex).
fn mother<'a>(household: &Household<'a>) -> Option<Recipient<'a>> {
    let living = &household.living;
    let female = |person: &&Person<'_>| person.facts.sex() == Sex::Female;
    let as_mother = |person: &Person<'a>| Recipient {
        person: *person,
        role_words: "the mother",
    };
    living
        .iter()
        .filter(|person| is_parent_role(person))
        .find(female)
        .or_else(|| {
            living
                .iter()
                .filter(|person| person.role == Role::Parent)
                .find(female)
        })
        .map(as_mother)
        .or_else(|| {
            living
                .iter()
                .find(|person| is_parent_role(person))
                .map(|person| Recipient {
                    person: *person,
                    role_words: "the remaining parent",
                })
        })
}

fn is_caregiver(person: &Person<'_>) -> bool {
    person.status() == Some(EmploymentStatus::Caregiver)
}

fn carer<'a>(household: &Household<'a>) -> Option<Recipient<'a>> {
    let mother = mother(household);
    if let Some(mother) = mother
        .as_ref()
        .filter(|mother| is_caregiver(&mother.person))
    {
        return Some(Recipient {
            person: mother.person,
            role_words: "the caring parent",
        });
    }
    let caregiver = household.living.iter().find(|person| {
        (is_parent_role(person) || person.role == Role::Parent) && is_caregiver(person)
    });
    if let Some(caregiver) = caregiver {
        return Some(Recipient {
            person: *caregiver,
            role_words: "the caring parent",
        });
    }
    mother
}

fn head<'a>(household: &Household<'a>) -> Option<Recipient<'a>> {
    match household
        .living
        .iter()
        .find(|person| person.role == Role::Head)
    {
        Some(head) => Some(Recipient {
            person: *head,
            role_words: "the head of the family",
        }),
        None => mother(household),
    }
}

/// The family's children (role `child`, the deceased too), in birth order: by birth date, twins
/// by IIN.
fn children_in_birth_order(record: &FamilyRecord) -> Vec<&CitizenFacts> {
    let mut children: Vec<&CitizenFacts> = record
        .members
        .iter()
        .filter(|member| member.role == Role::Child)
        .map(|member| &member.facts)
        .collect();
    children.sort_by_key(|facts| (facts.birth_date(), facts.iin));
    children
}

/// A child's order among the family's children, from 1.
fn birth_order(record: &FamilyRecord, child: &Iin) -> u32 {
    let position = children_in_birth_order(record)
        .iter()
        .position(|facts| &facts.iin == child)
        .expect("the child is one of the family's children");
    count(position) + 1
}

/// The entry for the n-th child (from 1); the last entry serves every later child.
fn by_order(amounts: &[Rate], order: u32) -> Rate {
    let index = usize::try_from(order - 1)
        .unwrap_or(usize::MAX)
        .min(amounts.len() - 1);
    amounts[index]
}

pub(crate) fn ordinal(number: u32) -> String {
    let suffix = match (number % 10, number % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{number}{suffix}")
}

/// The day a person born on `birth` reaches `months` months of age (the calendar's month
/// arithmetic: the last day of a shorter month).
fn day_reaching(birth: NaiveDate, months: u32) -> NaiveDate {
    birth
        .checked_add_months(Months::new(months))
        .unwrap_or(NaiveDate::MAX)
}

/// Completed months of age on `today`.
fn age_in_months(birth: NaiveDate, today: NaiveDate) -> u32 {
    let mut months = 0;
    while day_reaching(birth, months + 1) <= today {
        months += 1;
    }
    months
}

fn age_words(birth: NaiveDate, today: NaiveDate) -> String {
    let months = age_in_months(birth, today);
    let (years, months) = (months / 12, months % 12);
    match years {
        0 => format!("{months} month{} old", plural(months)),
        _ => format!(
            "{years} year{} {months} month{} old",
            plural(years),
            plural(months)
        ),
    }
}

/// A multiple as the law writes it: whole numbers bare (`38`), others with at least two
/// decimals (`8.90`, `0.45`, `1.50`).
fn multiple_words(multiple: Rate) -> String {
    let text = multiple.to_string();
    match text.split_once('.') {
        Some((_, decimals)) if decimals.len() == 1 => format!("{text}0"),
        _ => text,
    }
}

/// "16.03 MCI × 4325.00 KZT = 69329.75 KZT".
fn mci_words(multiple: Rate, rules: &Rules, amount: Money) -> String {
    format!(
        "{} MCI × {} KZT = {amount} KZT",
        multiple_words(multiple),
        rules.mci
    )
}

/// "1.61 × the subsistence minimum 50851.00 KZT = 81870.11 KZT".
fn subsistence_words(multiple: Rate, rules: &Rules, amount: Money) -> String {
    format!(
        "{} × the subsistence minimum {} KZT = {amount} KZT",
        multiple_words(multiple),
        rules.subsistence_minimum
    )
}

fn member_name(facts: &CitizenFacts) -> String {
    format!("member {}", facts.iin.masked())
}

// ---------------------------------------------------------------------------------------------
// The nine kinds

fn birth(rule: &BirthRule, context: &Context<'_, '_>) -> Outcome {
    let record = context.household.record;
    let today = context.today();
    let children = children_in_birth_order(record);
    let in_window = |facts: &&CitizenFacts| {
        let born = facts.birth_date();
        born <= today && today < day_reaching(born, rule.window_months)
    };
    let Some(newborn) = children.iter().copied().rfind(in_window) else {
        return context.refused(|| {
            let youngest = children
                .iter()
                .rfind(|facts| facts.birth_date() <= today)
                .map(|facts| {
                    format!(
                        " (the youngest, {}, was born on {})",
                        member_name(facts),
                        facts.birth_date()
                    )
                })
                .unwrap_or_default();
            format!(
                "no child born within the last {} months{youngest}",
                rule.window_months
            )
        });
    };
    let born = newborn.birth_date();
    let order = birth_order(record, &newborn.iin);
    let multiple = by_order(&rule.amounts_mci, order);
    let amount = multiple.apply(context.rules.mci);
    let mut reasons = context.because(|| {
        format!(
            "{}, the family's {} child, was born on {born}, within the last {} months",
            member_name(newborn),
            ordinal(order),
            rule.window_months
        )
    });
    reasons.say(|| {
        format!(
            "{} child: {}, one-off",
            ordinal(order),
            mci_words(multiple, context.rules, amount)
        )
    });
    let mut others = children
        .iter()
        .filter(|facts| in_window(facts) && facts.iin != newborn.iin)
        .peekable();
    if others.peek().is_some() {
        reasons.say(|| {
            format!(
                "also born in the window: {} (one birth is decided at a time: the most recent)",
                others
                    .map(|facts| member_name(facts))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    }
    match mother(context.household) {
        Some(recipient) => context.award(reasons, recipient, amount, Some(Month::of(born)), None),
        None => no_recipient(reasons, "mother, parent, head or spouse"),
    }
}

fn childcare(rule: &ChildcareRule, context: &Context<'_, '_>) -> Outcome {
    let household = context.household;
    let today = context.today();
    let mut young: Vec<&Person<'_>> = household
        .living
        .iter()
        .filter(|person| person.role == Role::Child)
        .filter(|person| {
            let born = person.facts.birth_date();
            born <= today && today < day_reaching(born, rule.age_limit_months)
        })
        .collect();
    young.sort_by_key(|person| (person.facts.birth_date(), person.facts.iin));
    let Some(child) = young.pop() else {
        return context.refused(|| {
            let youngest = household
                .living
                .iter()
                .filter(|person| person.role == Role::Child && person.facts.birth_date() <= today)
                .max_by_key(|person| (person.facts.birth_date(), person.facts.iin))
                .map(|person| {
                    let born = person.facts.birth_date();
                    format!(
                        " (the youngest, {}, reached {} months on {})",
                        person.name(),
                        rule.age_limit_months,
                        day_reaching(born, rule.age_limit_months)
                    )
                })
                .unwrap_or_default();
            format!(
                "no child under {} months of age{youngest}",
                rule.age_limit_months
            )
        });
    };
    let born = child.facts.birth_date();
    let order = birth_order(household.record, &child.facts.iin);
    let multiple = by_order(&rule.amounts_mci, order);
    let amount = multiple.apply(context.rules.mci);
    let turns = day_reaching(born, rule.age_limit_months);
    let last_month = Month::of(turns);
    let mut reasons = context.because(|| {
        format!(
            "{}, the family's {} child, is {} (under {} months; reaches them on {turns})",
            child.name(),
            ordinal(order),
            age_words(born, today),
            rule.age_limit_months
        )
    });
    reasons.say(|| {
        format!(
            "{} child: {} a month, to {last_month}",
            ordinal(order),
            mci_words(multiple, context.rules, amount)
        )
    });
    if !young.is_empty() {
        reasons.say(|| {
            format!(
                "also under {} months: {} (one child is decided at a time: the youngest)",
                rule.age_limit_months,
                young
                    .iter()
                    .map(|person| person.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    }
    match carer(household) {
        Some(recipient) => context.award(reasons, recipient, amount, None, Some(last_month)),
        None => no_recipient(reasons, "mother or caring parent"),
    }
}

fn large_family(rule: &LargeFamilyRule, context: &Context<'_, '_>) -> Outcome {
    let household = context.household;
    let mut minors = 0;
    let mut students = 0;
    for person in household
        .living
        .iter()
        .filter(|person| person.role == Role::Child)
    {
        let studying = person.facts.education.is_some_and(|education| {
            matches!(
                education.enrolled,
                Enrollment::College | Enrollment::University
            )
        });
        if person.age <= rule.minor_age_max {
            minors += 1;
        } else if person.age <= rule.student_age_max && studying {
            students += 1;
        }
    }
    let children: u32 = minors + students;
    let who = || {
        if students == 0 {
            format!(
                "{children} child{} under {}",
                if children == 1 { "" } else { "ren" },
                rule.minor_age_max + 1
            )
        } else {
            format!(
                "{children} children under {} or students under {} ({students} of them student{})",
                rule.minor_age_max + 1,
                rule.student_age_max + 1,
                plural(students)
            )
        }
    };
    if children < rule.min_children {
        return context.refused(|| format!("{} ({} required)", who(), rule.min_children));
    }
    let mut reasons = context.because(|| {
        format!(
            "{} live in the family ({}+ required)",
            who(),
            rule.min_children
        )
    });
    let index = usize::try_from(children - rule.min_children).unwrap_or(usize::MAX);
    let amount = match rule.amounts_mci.get(index) {
        Some(multiple) => {
            let amount = multiple.apply(context.rules.mci);
            reasons.say(|| {
                format!(
                    "{children} children: {} a month",
                    mci_words(*multiple, context.rules, amount)
                )
            });
            amount
        }
        None => {
            let per_child = rule.per_child_mci.apply(context.rules.mci);
            let amount = per_child
                .checked_mul(u64::from(children))
                .expect("a family's benefit fits in u64 tiyn");
            reasons.say(|| {
                format!(
                "{children} children: {} MCI × {} KZT × {children} children = {amount} KZT a month",
                multiple_words(rule.per_child_mci),
                context.rules.mci
            )
            });
            amount
        }
    };
    match head(household) {
        Some(recipient) => context.award(reasons, recipient, amount, None, None),
        None => no_recipient(reasons, "head, mother or parent"),
    }
}

fn award_name(award: Award) -> &'static str {
    match award {
        Award::KumisAlka => "Kumis alka",
        Award::AltynAlka => "Altyn alka",
        Award::MotherHeroine => "Mother Heroine",
    }
}

fn award(rule: &AwardRule, context: &Context<'_, '_>) -> Outcome {
    let household = context.household;
    // Each awarded member's best award that this program pays for.
    let mut awarded: Vec<(&Person<'_>, Award, Rate)> = household
        .living
        .iter()
        .filter_map(|person| {
            let best = person
                .facts
                .awards
                .iter()
                .filter_map(|award| {
                    rule.award_mci
                        .get(award)
                        .map(|multiple| (*award, *multiple))
                })
                .max_by_key(|(_, multiple)| *multiple)?;
            Some((person, best.0, best.1))
        })
        .collect();
    // The highest amount first, then IIN order.
    awarded.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.facts.iin.cmp(&b.0.facts.iin)));
    let Some(&(person, award, multiple)) = awarded.first() else {
        return context.refused(|| {
            let names: Vec<&str> = rule
                .award_mci
                .keys()
                .map(|award| award_name(*award))
                .collect();
            format!("no living member holds {}", names.join(", "))
        });
    };
    let amount = multiple.apply(context.rules.mci);
    let mut reasons = context.because(|| {
        format!(
            "{} holds {}: {} a month",
            person.name(),
            award_name(award),
            mci_words(multiple, context.rules, amount)
        )
    });
    if person.facts.awards.len() > 1 {
        reasons.say(|| "of several awards, the highest counts".to_owned());
    }
    for (other, other_award, _) in &awarded[1..] {
        reasons.say(|| {
            format!(
                "{} also holds {}; one award is decided per family",
                other.name(),
                award_name(*other_award)
            )
        });
    }
    context.award(
        reasons,
        Recipient {
            person: *person,
            role_words: "the awarded mother",
        },
        amount,
        None,
        None,
    )
}

fn disabled_child_parent(rule: &DisabledChildParentRule, context: &Context<'_, '_>) -> Outcome {
    let household = context.household;
    let today = context.today();
    let mut children: Vec<&Person<'_>> = household
        .living
        .iter()
        .filter(|person| valid_disability(person.facts, today) == Some(DisabilityGroup::Child))
        .collect();
    children.sort_by_key(|person| person.facts.iin);
    let Some(child) = children.first() else {
        let mut reasons =
            context.because(|| "no living member has a valid disability group child".to_owned());
        expired_assessments(&mut reasons, household, |group| {
            group == DisabilityGroup::Child
        });
        return refused(reasons);
    };
    let amount = rule
        .subsistence_multiple
        .apply(context.rules.subsistence_minimum);
    let mut reasons = context.because(|| {
        format!(
            "{} has disability group child{}",
            child.name(),
            validity_words(child.facts)
        )
    });
    reasons.say(|| {
        format!(
            "{} a month",
            subsistence_words(rule.subsistence_multiple, context.rules, amount)
        )
    });
    for other in &children[1..] {
        reasons.say(|| {
            format!(
                "{} also has disability group child; one award is decided per family",
                other.name()
            )
        });
    }
    match carer(household) {
        Some(recipient) => context.award(reasons, recipient, amount, None, None),
        None => no_recipient(reasons, "mother or caring parent"),
    }
}

fn validity_words(facts: &CitizenFacts) -> String {
    match facts.disability.and_then(|disability| disability.until) {
        Some(until) => format!(" (valid until {until})"),
        None => " (indefinite)".to_owned(),
    }
}

/// "member X's group 2 assessment ended on 2026-10-31" for the living members whose assessment
/// of a group `counts` has passed.
fn expired_assessments(
    reasons: &mut Reasons,
    household: &Household<'_>,
    counts: impl Fn(DisabilityGroup) -> bool,
) {
    for person in &household.living {
        let Some(disability) = person.facts.disability else {
            continue;
        };
        let Some(until) = disability.until.filter(|until| *until < household.today) else {
            continue;
        };
        if counts(disability.group) {
            reasons.say(|| {
                format!(
                    "{}'s group {} assessment ended on {until} and no longer counts",
                    person.name(),
                    group_name(disability.group)
                )
            });
        }
    }
}

fn disability(rule: &DisabilityRule, context: &Context<'_, '_>) -> Outcome {
    let household = context.household;
    let today = context.today();
    let mut disabled: Vec<(&Person<'_>, DisabilityGroup, Rate)> = household
        .living
        .iter()
        .filter_map(|person| {
            let group = valid_disability(person.facts, today)?;
            rule.group_subsistence_multiples
                .get(&group)
                .map(|multiple| (person, group, *multiple))
        })
        .collect();
    disabled.sort_by_key(|(person, _, _)| person.facts.iin);
    let Some(&(person, group, multiple)) = disabled.first() else {
        let mut reasons = context.because(|| {
            let groups: Vec<&str> = rule
                .group_subsistence_multiples
                .keys()
                .map(|group| group_name(*group))
                .collect();
            format!(
                "no living member has a valid disability group {}",
                groups.join(", ")
            )
        });
        expired_assessments(&mut reasons, household, |group| {
            rule.group_subsistence_multiples.contains_key(&group)
        });
        return refused(reasons);
    };
    let amount = multiple.apply(context.rules.subsistence_minimum);
    let mut reasons = context.because(|| {
        format!(
            "{} has disability group {}{}",
            person.name(),
            group_name(group),
            validity_words(person.facts)
        )
    });
    reasons.say(|| {
        format!(
            "group {}: {} a month",
            group_name(group),
            subsistence_words(multiple, context.rules, amount)
        )
    });
    let mut more_awards = Vec::new();
    for (other, other_group, other_multiple) in &disabled[1..] {
        let other_amount = other_multiple.apply(context.rules.subsistence_minimum);
        reasons.say(|| {
            format!(
                "{} also has disability group {}{}: {} a month, paid to that member",
                other.name(),
                group_name(*other_group),
                validity_words(other.facts),
                subsistence_words(*other_multiple, context.rules, other_amount)
            )
        });
        more_awards.push(AwardDecision {
            recipient: other.facts.iin,
            amount: other_amount,
            occasion: None,
            one_off: context.program.one_off(),
            last_month: None,
        });
    }
    let mut outcome = context.award(
        reasons,
        Recipient {
            person: *person,
            role_words: "the person with the disability",
        },
        amount,
        None,
        None,
    );
    outcome.more_awards = more_awards;
    outcome
}

fn survivor(rule: &SurvivorRule, context: &Context<'_, '_>) -> Outcome {
    let household = context.household;
    let today = context.today();
    let record = household.record;
    let mut deceased: Vec<(&storage::record::Member, NaiveDate)> = record
        .members
        .iter()
        .filter(|member| matches!(member.role, Role::Head | Role::Spouse))
        .filter_map(|member| {
            member
                .facts
                .died_on
                .filter(|died| *died <= today)
                .map(|died| (member, died))
        })
        .collect();
    if deceased.is_empty() {
        return context.refused(|| "no head or spouse of the family has died".to_owned());
    }
    let earned = |facts: &CitizenFacts, died: NaiveDate| -> Option<String> {
        let status = facts.employment.map(|employment| employment.status);
        if let Some(status @ (EmploymentStatus::Employed | EmploymentStatus::SelfEmployed)) = status
        {
            return Some(format!("was {} at death", status_name(status)));
        }
        let death_month = Month::of(died);
        let first = months_back(death_month, rule.lookback_months);
        let earnings = saturating_sum(month_range(first, death_month).map(|month| {
            income_in(facts, month, |source| {
                matches!(source, IncomeSource::Salary | IncomeSource::Business)
            })
        }));
        (earnings > Money::ZERO).then(|| {
            format!(
                "earned {earnings} KZT of salary or business income from {first} to {death_month}"
            )
        })
    };
    // The most recent death of an earner decides.
    deceased.sort_by_key(|(member, died)| (*died, member.facts.iin));
    let earner = deceased.iter().rev().find_map(|(member, died)| {
        earned(&member.facts, *died).map(|words| (*member, *died, words))
    });
    let Some((earner, died, earned_words)) = earner else {
        let mut reasons = context.reasons();
        for (member, died) in &deceased {
            reasons.say(|| {
                format!(
                    "{} died on {died} but was no earner (not employed, no salary or business income in the {} months before)",
                    member_name(&member.facts),
                    rule.lookback_months
                )
            });
        }
        return refused(reasons);
    };
    let minors = count(
        household
            .living
            .iter()
            .filter(|person| person.role == Role::Child && person.age <= rule.minor_age_max)
            .count(),
    );
    let mut reasons = context.because(|| {
        format!(
            "{} died on {died} and {earned_words}",
            member_name(&earner.facts)
        )
    });
    if minors == 0 {
        reasons.say(|| {
            format!(
                "no living child aged {} or under depends on them",
                rule.minor_age_max
            )
        });
        return refused(reasons);
    }
    let per_minor = rule
        .subsistence_multiple
        .apply(context.rules.subsistence_minimum);
    let amount = per_minor
        .checked_mul(u64::from(minors))
        .expect("a family's benefit fits in u64 tiyn");
    reasons.say(|| format!(
        "{minors} living child{} aged {} or under: {} × the subsistence minimum {} KZT × {minors} = {amount} KZT a month",
        if minors == 1 { "" } else { "ren" },
        rule.minor_age_max,
        multiple_words(rule.subsistence_multiple),
        context.rules.subsistence_minimum
    ));
    // The caring adult: the surviving partner, else a living head or spouse, else a living
    // parent, else any other living adult (older than the minor age).
    let living = &household.living;
    let partner_role = if earner.role == Role::Head {
        Role::Spouse
    } else {
        Role::Head
    };
    let recipient = living
        .iter()
        .find(|person| person.role == partner_role)
        .or_else(|| living.iter().find(|person| is_parent_role(person)))
        .or_else(|| living.iter().find(|person| person.role == Role::Parent))
        .or_else(|| living.iter().find(|person| person.age > rule.minor_age_max));
    match recipient {
        Some(person) => context.award(
            reasons,
            Recipient {
                person: *person,
                role_words: "the caring adult",
            },
            amount,
            None,
            None,
        ),
        None => no_recipient(reasons, "adult to care for the children"),
    }
}

fn job_loss(rule: &JobLossRule, context: &Context<'_, '_>) -> Outcome {
    let household = context.household;
    let this_month = context.this_month();
    let mut lost: Vec<(&Person<'_>, Month)> = household
        .living
        .iter()
        .filter_map(|person| {
            let employment = person.facts.employment?;
            let was_working = matches!(
                employment.previous,
                Some(EmploymentStatus::Employed | EmploymentStatus::SelfEmployed)
            );
            (employment.status == EmploymentStatus::Unemployed && was_working)
                .then(|| (person, Month::of(local_date(employment.since))))
        })
        .collect();
    lost.sort_by_key(|(person, _)| person.facts.iin);
    if lost.is_empty() {
        return context.refused(|| {
            "no member is unemployed after being employed or self-employed".to_owned()
        });
    }
    let mut reasons = context.reasons();
    let mut chosen: Option<(Person<'_>, Money, Month)> = None;
    let mut more_awards: Vec<AwardDecision> = Vec::new();
    for (person, loss_month) in lost {
        let last_month = months_ahead(loss_month, rule.months - 1);
        if loss_month > this_month {
            reasons.say(|| {
                format!(
                    "{} is reported to lose a job in {loss_month}, a month still to come",
                    person.name()
                )
            });
            continue;
        }
        if last_month < this_month {
            reasons.say(|| {
                format!(
                    "{} lost a job in {loss_month}; the {} months of benefit ran to {last_month}",
                    person.name(),
                    rule.months
                )
            });
            continue;
        }
        let first = months_back(loss_month, rule.lookback_months);
        let before = loss_month.prev();
        let salaries: Vec<Money> = month_range(first, before)
            .map(|month| income_in(person.facts, month, |source| source == IncomeSource::Salary))
            .filter(|salary| *salary > Money::ZERO)
            .collect();
        if salaries.is_empty() {
            reasons.say(|| {
                format!(
                    "{} lost a job in {loss_month} but had no salary from {first} to {before}",
                    person.name()
                )
            });
            continue;
        }
        let salary_months = count(salaries.len());
        let total = saturating_sum(salaries);
        // One rounding: total × share / months.
        let amount = total.mul_ratio(
            rule.salary_share.ten_thousandths(),
            u64::from(salary_months) * 10_000,
        );
        let lost = || {
            format!(
            "{} lost a job in {loss_month} after being {}; paid for {} months, {loss_month} to {last_month}",
            person.name(),
            person.facts.employment.and_then(|e| e.previous).map_or("employed", status_name),
            rule.months
        )
        };
        let salary = || {
            format!(
            "salary of {total} KZT over {salary_months} month{} with salary from {first} to {before}: \
             {} of the average = {amount} KZT a month",
            plural(salary_months),
            crate::rules::percent(rule.salary_share)
        )
        };
        if chosen.is_none() {
            reasons.insert(0, lost);
            reasons.insert(1, salary);
        } else {
            reasons.say(|| {
                format!(
                    "{} also lost a job in {loss_month}, paid to that member: {}",
                    person.name(),
                    salary()
                )
            });
        }
        if chosen.is_none() {
            chosen = Some((*person, amount, last_month));
        } else {
            // Paid per person: a second member who lost a job has an award of
            // their own.
            more_awards.push(AwardDecision {
                recipient: person.facts.iin,
                amount,
                occasion: None,
                one_off: context.program.one_off(),
                last_month: Some(last_month),
            });
        }
    }
    match chosen {
        Some((person, amount, last_month)) => {
            let mut outcome = context.award(
                reasons,
                Recipient {
                    person,
                    role_words: "the person who lost the job",
                },
                amount,
                None,
                Some(last_month),
            );
            outcome.more_awards = more_awards;
            outcome
        }
        None => refused(reasons),
    }
}

/// Whether a member is able-bodied for TSA: of working age, without a valid group 1 or 2, not
/// a caregiver and not a student (by employment or by college/university enrolment).
fn is_able_bodied(person: &Person<'_>, rule: &TsaRule, today: NaiveDate) -> bool {
    let severe = matches!(
        valid_disability(person.facts, today),
        Some(DisabilityGroup::One | DisabilityGroup::Two)
    );
    let status = person.status();
    let studying = status == Some(EmploymentStatus::Student)
        || person.facts.education.is_some_and(|education| {
            matches!(
                education.enrolled,
                Enrollment::College | Enrollment::University
            )
        });
    (rule.working_age_min..=rule.working_age_max).contains(&person.age)
        && !severe
        && status != Some(EmploymentStatus::Caregiver)
        && !studying
}

/// The TSA amount for a family: `(line − per-capita) × size + supplement × children`; zero at
/// or above the line.
pub fn tsa_amount(
    per_capita: Money,
    poverty_line: Money,
    family_size: u32,
    supplement: Money,
    children: u32,
) -> Money {
    if per_capita >= poverty_line {
        return Money::ZERO;
    }
    let gap = poverty_line.saturating_sub(per_capita);
    let base = gap
        .checked_mul(u64::from(family_size))
        .expect("a family's TSA fits in u64 tiyn");
    let supplements = supplement
        .checked_mul(u64::from(children))
        .expect("a family's TSA fits in u64 tiyn");
    base + supplements
}

fn tsa(rule: &TsaRule, context: &Context<'_, '_>) -> Outcome {
    let household = context.household;
    let today = context.today();
    let Some(income) = household.income_assessment(context.rules) else {
        return context.refused(|| "no living member".to_owned());
    };
    let mut reasons = context.reasons();
    let mut refusals = context.reasons();
    let comparison = || {
        format!(
            "{}, against the {}",
            income.describe_per_capita(),
            income.describe_line()
        )
    };
    if income.is_below_line() {
        reasons.say(|| format!("{}: below it", comparison()));
    } else {
        refusals.say(|| format!("{}: not below it", comparison()));
    }
    for person in household
        .living
        .iter()
        .filter(|person| person.age >= rule.adult_age_min)
    {
        if person.facts.non_mortgage_debt {
            refusals.say(|| {
                format!(
                    "{} has a non-mortgage debt: TSA is refused to a family with one",
                    person.name()
                )
            });
        }
    }
    let able_bodied: Vec<&Person<'_>> = household
        .living
        .iter()
        .filter(|person| is_able_bodied(person, rule, today))
        .collect();
    if !able_bodied.is_empty() {
        let names = || {
            able_bodied
                .iter()
                .map(|person| person.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if household.record.social_contract {
            reasons.say(|| {
                format!(
                    "able-bodied members ({}) and a signed social contract",
                    names()
                )
            });
        } else {
            refusals.say(|| {
                format!(
                    "able-bodied members ({}) but no signed social contract, which TSA then requires",
                    names()
                )
            });
        }
    }
    if !refusals.is_empty() {
        return refused(refusals);
    }
    let size = income.living_members;
    let children = count(
        household
            .living
            .iter()
            .filter(|person| (rule.child_age_min..=rule.child_age_max).contains(&person.age))
            .count(),
    );
    let supplement = rule.child_supplement_mci.apply(context.rules.mci);
    let amount = tsa_amount(
        income.per_capita,
        income.poverty_line.amount,
        size,
        supplement,
        children,
    );
    let gap = income.poverty_line.amount - income.per_capita;
    reasons.say(|| {
        format!(
            "({} − {}) KZT × {size} member{} = {} KZT",
            income.poverty_line.amount,
            income.per_capita,
            plural(size),
            gap.checked_mul(u64::from(size)).expect("fits")
        )
    });
    if children > 0 {
        reasons.say(|| {
            format!(
                "plus {} MCI × {} KZT × {children} child{} aged {}–{} = {} KZT",
                multiple_words(rule.child_supplement_mci),
                context.rules.mci,
                if children == 1 { "" } else { "ren" },
                rule.child_age_min,
                rule.child_age_max,
                supplement.checked_mul(u64::from(children)).expect("fits")
            )
        });
    }
    let last_month = months_ahead(context.this_month(), rule.months - 1);
    reasons.say(|| format!("{amount} KZT a month, assigned to {last_month}"));
    match head(household) {
        Some(recipient) => context.award(reasons, recipient, amount, None, Some(last_month)),
        None => no_recipient(reasons, "head, mother or parent"),
    }
}

// ---------------------------------------------------------------------------------------------
// Test families

#[cfg(test)]
pub(crate) mod fixtures {
    //! A builder of test families with valid IINs, the shipped catalogue, and a fixed day.

    use std::collections::BTreeSet;
    use std::sync::OnceLock;

    use chrono::{NaiveDate, TimeZone, Utc};
    use storage::ids::{FamilyId, Iin, Locality, Month, Region, Sex};
    use storage::money::Money;
    use storage::record::{
        Address, Attainment, CitizenFacts, Education, Employment, EmploymentStatus, Enrollment,
        FamilyRecord, Housing, IncomeSource, Member, Registration, Role, Tenure, Utility,
    };

    use crate::rules::Rules;

    pub fn catalogue_text() -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/programs.toml");
        std::fs::read_to_string(path).expect("config/programs.toml is readable")
    }

    /// The shipped catalogue for 2026: MCI 4325, subsistence minimum 50851.
    pub fn rules_2026() -> Rules {
        static RULES: OnceLock<Rules> = OnceLock::new();
        RULES
            .get_or_init(|| {
                Rules::from_toml_str(&catalogue_text(), 2026).expect("the shipped catalogue loads")
            })
            .clone()
    }

    /// The day every test evaluates on.
    pub fn today() -> NaiveDate {
        day("2026-11-15")
    }

    pub fn day(text: &str) -> NaiveDate {
        text.parse().expect("a YYYY-MM-DD date")
    }

    pub fn month(text: &str) -> Month {
        Month::parse(text).expect("a YYYY-MM month")
    }

    pub fn money(text: &str) -> Money {
        Money::parse(text).expect("an amount")
    }

    #[derive(Clone)]
    pub struct FamilyBuilder {
        record: FamilyRecord,
        next_serial: u32,
    }

    impl FamilyBuilder {
        /// An empty family in urban Karaganda (poverty line 52500.00 in 2026) in an owned flat
        /// of 100 m² with every utility, without a social contract.
        pub fn new() -> FamilyBuilder {
            let mut record = FamilyRecord::new(FamilyId::parse("fam-1").unwrap());
            record.address = Some(Address {
                region: Region::Karaganda,
                locality: Locality::Urban,
            });
            record.housing = Some(Housing {
                tenure: Tenure::Owned,
                area_decimetres: 1_000,
                utilities: [
                    Utility::Water,
                    Utility::Heating,
                    Utility::Sewerage,
                    Utility::Gas,
                ]
                .into_iter()
                .collect(),
            });
            FamilyBuilder {
                record,
                next_serial: 1,
            }
        }

        /// Adds a member born on `birth` (YYYY-MM-DD) with a fresh valid IIN, then lets `set`
        /// fill in the facts.
        pub fn member(
            mut self,
            role: Role,
            birth: &str,
            sex: Sex,
            set: impl FnOnce(&mut CitizenFacts),
        ) -> Self {
            let birth_date = day(birth);
            let iin = loop {
                let serial = self.next_serial;
                self.next_serial += 1;
                if let Some(iin) = Iin::from_parts(birth_date, sex, serial) {
                    break iin;
                }
            };
            let mut facts = CitizenFacts::new(iin);
            facts.registration = Some(Registration {
                full_name: format!("Person {serial}", serial = self.next_serial),
                birth_date,
                sex,
            });
            set(&mut facts);
            self.record.members.push(Member { role, facts });
            self
        }

        pub fn member_facts(mut self, index: usize, set: impl FnOnce(&mut CitizenFacts)) -> Self {
            set(&mut self.record.members[index].facts);
            self
        }

        /// Applies `set` to every head and spouse.
        pub fn each_adult(mut self, set: impl Fn(&mut CitizenFacts)) -> Self {
            for member in &mut self.record.members {
                if matches!(member.role, Role::Head | Role::Spouse) {
                    set(&mut member.facts);
                }
            }
            self
        }

        pub fn housing(
            mut self,
            tenure: Tenure,
            area_decimetres: u32,
            utilities: &[Utility],
        ) -> Self {
            self.record.housing = Some(Housing {
                tenure,
                area_decimetres,
                utilities: utilities.iter().copied().collect::<BTreeSet<_>>(),
            });
            self
        }

        pub fn no_housing(mut self) -> Self {
            self.record.housing = None;
            self
        }

        pub fn region(mut self, region: Region) -> Self {
            self.record.address = Some(Address {
                region,
                locality: Locality::Urban,
            });
            self
        }

        pub fn no_address(mut self) -> Self {
            self.record.address = None;
            self
        }

        pub fn social_contract(mut self, signed: bool) -> Self {
            self.record.social_contract = signed;
            self
        }

        pub fn build(self) -> FamilyRecord {
            self.record
        }
    }

    /// Two working, insured parents with secondary education or more, earning 400000 a month
    /// each; a boy of 9 in school and a girl of 4 in preschool. Deprived by nothing, eligible
    /// for nothing.
    pub fn well_off_family() -> FamilyBuilder {
        FamilyBuilder::new()
            .member(Role::Head, "1988-04-10", Sex::Male, |facts| {
                employed_adult(facts, Attainment::Higher);
            })
            .member(Role::Spouse, "1990-06-20", Sex::Female, |facts| {
                employed_adult(facts, Attainment::Secondary);
            })
            .member(Role::Child, "2017-03-05", Sex::Male, |facts| {
                facts.insured = Some(true);
                facts.education = Some(Education {
                    enrolled: Enrollment::School,
                    attainment: Attainment::Primary,
                });
            })
            .member(Role::Child, "2022-05-12", Sex::Female, |facts| {
                facts.insured = Some(true);
                facts.education = Some(Education {
                    enrolled: Enrollment::Preschool,
                    attainment: Attainment::None,
                });
            })
    }

    fn employed_adult(facts: &mut CitizenFacts, attainment: Attainment) {
        facts.insured = Some(true);
        facts.education = Some(Education {
            enrolled: Enrollment::None,
            attainment,
        });
        employment(facts, EmploymentStatus::Employed, None);
        salary(facts, "400000");
    }

    pub fn insured_and_educated(facts: &mut CitizenFacts) {
        facts.insured = Some(true);
        facts.education = Some(Education {
            enrolled: Enrollment::None,
            attainment: Attainment::Secondary,
        });
    }

    /// Sets the status, reported on 2020-01-01.
    pub fn employment(
        facts: &mut CitizenFacts,
        status: EmploymentStatus,
        previous: Option<EmploymentStatus>,
    ) {
        employment_since(facts, status, previous, "2020-01-01");
    }

    pub fn employment_since(
        facts: &mut CitizenFacts,
        status: EmploymentStatus,
        previous: Option<EmploymentStatus>,
        since: &str,
    ) {
        let since = day(since).and_hms_opt(9, 0, 0).unwrap();
        facts.employment = Some(Employment {
            status,
            since: Utc.from_utc_datetime(&since),
            previous,
        });
    }

    /// The same income from `source` in each of the 12 months before the test day's month
    /// (2025-11 to 2026-10).
    pub fn income(facts: &mut CitizenFacts, source: IncomeSource, amount: &str) {
        let mut month = month("2025-11");
        for _ in 0..12 {
            facts
                .incomes
                .entry(month)
                .or_default()
                .insert(source, money(amount));
            month = month.next();
        }
    }

    pub fn income_at(facts: &mut CitizenFacts, at: &str, source: IncomeSource, amount: &str) {
        facts
            .incomes
            .entry(month(at))
            .or_default()
            .insert(source, money(amount));
    }

    /// Replaces all income by this salary in each of the 12 months before the test day's month.
    pub fn salary(facts: &mut CitizenFacts, amount: &str) {
        facts.incomes.clear();
        income(facts, IncomeSource::Salary, amount);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use storage::ids::Region;
    use storage::record::{Attainment, Disability, Education};

    use super::fixtures::{self, day, money, rules_2026, today, FamilyBuilder};
    use super::*;

    /// The program's decision in words, checked against the same decision
    /// without them (what a what-if or a re-score scan reads).
    fn decision(record: &FamilyRecord, rules: &Rules, code: &str) -> ProgramDecision {
        let written = decide_programs(record, rules, today(), Words::Written)
            .into_iter()
            .find(|decision| decision.code == code)
            .unwrap_or_else(|| panic!("no decision for {code}"));
        let program = rules
            .program(code)
            .expect("the program is in the catalogue");
        let household = Household::new(record, today());
        let skipped = decide(program, &household, rules, Words::Skipped);
        assert!(skipped.reasons.is_empty(), "{code}: words were written");
        assert_eq!(
            (skipped.eligible, &skipped.award, &skipped.more_awards),
            (written.eligible, &written.award, &written.more_awards),
            "{code}: the decision depends on its words"
        );
        // Scans decide kinds that read no income on families read without them.
        if !program.kind().reads_incomes() {
            let mut without = record.clone();
            for member in &mut without.members {
                member.facts.incomes.clear();
            }
            let blind = decide(
                program,
                &Household::new(&without, today()),
                rules,
                Words::Skipped,
            );
            assert_eq!(
                (blind.eligible, &blind.award, &blind.more_awards),
                (written.eligible, &written.award, &written.more_awards),
                "{code}: the decision reads incomes, which ProgramKind::reads_incomes denies"
            );
        }
        written
    }

    /// A decision in one line: `refused`, or `<amount> to member <index>` with `one-off <month>`
    /// or `monthly` and `to <last month>` when it has one.
    fn render(record: &FamilyRecord, decision: &ProgramDecision) -> String {
        let Some(award) = &decision.award else {
            assert!(!decision.eligible);
            return "refused".to_owned();
        };
        assert!(decision.eligible);
        let index = record
            .members
            .iter()
            .position(|member| member.facts.iin == award.recipient)
            .unwrap();
        let mut text = format!("{} to member {index}", award.amount);
        match (award.one_off, award.occasion) {
            (true, Some(occasion)) => text.push_str(&format!(", one-off {occasion}")),
            (false, None) => text.push_str(", monthly"),
            other => panic!("inconsistent one-off and occasion {other:?}"),
        }
        if let Some(last_month) = award.last_month {
            text.push_str(&format!(" to {last_month}"));
        }
        text
    }

    /// Decides `code` for the family and expects the rendered decision, and a reason that
    /// contains `reason`.
    fn check(family: FamilyBuilder, code: &str, expected: &str, reason: &str) {
        let record = family.build();
        let decision = decision(&record, &rules_2026(), code);
        assert_eq!(
            render(&record, &decision),
            expected,
            "{code}: {:#?}",
            decision.reasons
        );
        assert!(
            decision.reasons.iter().any(|text| text.contains(reason)),
            "{code}: no reason contains {reason:?}: {:#?}",
            decision.reasons
        );
    }

    /// A mother (member 0, head) and a father (member 1, spouse), both working, and children
    /// born on the given days (members 2, 3, …).
    fn parents_with_children(births: &[&str]) -> FamilyBuilder {
        let mut family = FamilyBuilder::new()
            .member(Role::Head, "1985-02-02", Sex::Female, |facts| {
                fixtures::employment(facts, EmploymentStatus::Employed, None);
                fixtures::salary(facts, "500000");
            })
            .member(Role::Spouse, "1984-03-03", Sex::Male, |facts| {
                fixtures::employment(facts, EmploymentStatus::Employed, None);
                fixtures::salary(facts, "500000");
            });
        for (index, birth) in births.iter().enumerate() {
            let sex = if index % 2 == 0 {
                Sex::Male
            } else {
                Sex::Female
            };
            family = family.member(Role::Child, birth, sex, |_| {});
        }
        family
    }

    #[test]
    fn decisions_follow_the_catalogue() {
        let record = fixtures::well_off_family().build();
        let decisions = decide_programs(&record, &rules_2026(), today(), Words::Written);
        let codes: Vec<&str> = decisions
            .iter()
            .map(|decision| decision.code.as_str())
            .collect();
        let rules = rules_2026();
        let expected: Vec<&str> = rules
            .programs
            .iter()
            .map(|program| program.code.as_str())
            .collect();
        assert_eq!(codes, expected);
        assert!(decisions
            .iter()
            .all(|decision| !decision.eligible && !decision.reasons.is_empty()));
    }

    #[test]
    fn birth_allowance() {
        // 38 MCI × 4325 = 164350.00; 63 MCI × 4325 = 272475.00. To the mother (member 0).
        check(
            parents_with_children(&["2015-01-01", "2018-01-01", "2026-10-01"]),
            "birth_allowance",
            "164350.00 to member 0, one-off 2026-10",
            "the family's 3rd child, was born on 2026-10-01",
        );
        check(
            parents_with_children(&["2015-01-01", "2018-01-01", "2020-01-01", "2026-10-01"]),
            "birth_allowance",
            "272475.00 to member 0, one-off 2026-10",
            "4th child: 63 MCI × 4325.00 KZT = 272475.00 KZT, one-off",
        );
        check(
            parents_with_children(&[
                "2015-01-01",
                "2016-01-01",
                "2017-01-01",
                "2018-01-01",
                "2026-10-01",
            ]),
            "birth_allowance",
            "272475.00 to member 0, one-off 2026-10",
            "5th child",
        );
        // The window: born 12 months ago less a day is in; 12 months ago to the day is out.
        check(
            parents_with_children(&["2025-11-16"]),
            "birth_allowance",
            "164350.00 to member 0, one-off 2025-11",
            "1st child",
        );
        check(
            parents_with_children(&["2025-11-15"]),
            "birth_allowance",
            "refused",
            "no child born within the last 12 months (the youngest, member ",
        );
        check(
            parents_with_children(&[]),
            "birth_allowance",
            "refused",
            "no child born within the last 12 months",
        );
    }

    #[test]
    fn birth_allowance_goes_to_the_mother_and_takes_the_most_recent_birth() {
        // The mother is the spouse here (member 1); twins are the 2nd and 3rd child.
        let family = FamilyBuilder::new()
            .member(Role::Head, "1984-03-03", Sex::Male, |_| {})
            .member(Role::Spouse, "1985-02-02", Sex::Female, |_| {})
            .member(Role::Child, "2020-01-01", Sex::Male, |_| {})
            .member(Role::Child, "2026-09-09", Sex::Male, |_| {})
            .member(Role::Child, "2026-09-09", Sex::Female, |_| {});
        check(
            family,
            "birth_allowance",
            "164350.00 to member 1, one-off 2026-09",
            "also born in the window: member ",
        );
        // A widowed father receives it.
        let family = FamilyBuilder::new()
            .member(Role::Head, "1984-03-03", Sex::Male, |_| {})
            .member(Role::Spouse, "1985-02-02", Sex::Female, |facts| {
                facts.died_on = Some(day("2026-10-02"))
            })
            .member(Role::Child, "2026-10-01", Sex::Male, |_| {});
        check(
            family,
            "birth_allowance",
            "164350.00 to member 0, one-off 2026-10",
            "paid to the remaining parent, member ",
        );
    }

    #[test]
    fn birth_order_counts_a_deceased_child() {
        let family =
            parents_with_children(&["2015-01-01", "2018-01-01", "2020-01-01", "2026-10-01"])
                .member_facts(2, |facts| facts.died_on = Some(day("2019-06-01")));
        check(
            family,
            "birth_allowance",
            "272475.00 to member 0, one-off 2026-10",
            "the family's 4th child",
        );
    }

    #[test]
    fn reasons_never_name_a_full_iin() {
        let record =
            parents_with_children(&["2010-01-01", "2012-01-01", "2014-01-01", "2026-10-01"])
                .member_facts(0, |facts| {
                    facts.awards.insert(Award::AltynAlka);
                    facts.non_mortgage_debt = true;
                    facts.insured = Some(false);
                    facts.disability = Some(Disability {
                        group: DisabilityGroup::Two,
                        until: None,
                    });
                })
                .member_facts(1, |facts| {
                    fixtures::employment_since(
                        facts,
                        EmploymentStatus::Unemployed,
                        Some(EmploymentStatus::Employed),
                        "2026-10-01",
                    );
                })
                .member_facts(2, |facts| {
                    facts.disability = Some(Disability {
                        group: DisabilityGroup::Child,
                        until: None,
                    })
                })
                .build();
        let evaluation = crate::scoring::evaluate(
            &record,
            &rules_2026(),
            day("2026-11-15").and_hms_opt(6, 0, 0).unwrap().and_utc(),
        );
        let programs = crate::scoring::explain_programs(&record, &rules_2026(), &evaluation)
            .expect("the same catalogue explains its decisions");
        let texts: Vec<&String> = evaluation
            .deprivations
            .iter()
            .flat_map(|deprivation| &deprivation.facts)
            .chain(programs.iter().flat_map(|decision| &decision.reasons))
            .collect();
        assert!(programs.iter().filter(|decision| decision.eligible).count() >= 5);
        for member in &record.members {
            let iin = member.facts.iin.to_string();
            assert!(
                texts.iter().all(|text| !text.contains(&iin)),
                "a text names {}",
                member.facts.iin.masked()
            );
        }
        assert!(texts
            .iter()
            .any(|text| text.contains(&record.members[0].facts.iin.masked())));
    }

    #[test]
    fn childcare_allowance() {
        // 1 year 5 months (born 2025-06-16): in; reaches 18 months on 2026-12-16, paid to 2026-12.
        check(
            parents_with_children(&["2025-06-16"]),
            "childcare_allowance",
            "24912.00 to member 0, monthly to 2026-12",
            "is 1 year 4 months old (under 18 months; reaches them on 2026-12-16)",
        );
        check(
            parents_with_children(&["2025-05-16"]),
            "childcare_allowance",
            "24912.00 to member 0, monthly to 2026-11",
            "is 1 year 5 months old",
        );
        // 1 year 6 months to the day: out.
        check(
            parents_with_children(&["2025-05-15"]),
            "childcare_allowance",
            "refused",
            "no child under 18 months of age (the youngest, member ",
        );
        // By order: 5.76 / 6.81 / 7.85 / 8.90 MCI.
        check(
            parents_with_children(&["2020-01-01", "2026-01-01"]),
            "childcare_allowance",
            "29453.25 to member 0, monthly to 2027-07",
            "2nd child: 6.81 MCI",
        );
        check(
            parents_with_children(&["2019-01-01", "2020-01-01", "2026-01-01"]),
            "childcare_allowance",
            "33951.25 to member 0, monthly to 2027-07",
            "3rd child: 7.85 MCI × 4325.00 KZT = 33951.25 KZT a month",
        );
        check(
            parents_with_children(&[
                "2016-01-01",
                "2019-01-01",
                "2020-01-01",
                "2021-01-01",
                "2026-01-01",
            ]),
            "childcare_allowance",
            "38492.50 to member 0, monthly to 2027-07",
            "5th child: 8.90 MCI",
        );
    }

    #[test]
    fn childcare_goes_to_the_caring_parent() {
        // The father (member 1) is the caregiver, the mother works.
        let family = parents_with_children(&["2026-03-01"]).member_facts(1, |facts| {
            fixtures::employment(
                facts,
                EmploymentStatus::Caregiver,
                Some(EmploymentStatus::Employed),
            );
        });
        check(
            family,
            "childcare_allowance",
            "24912.00 to member 1, monthly to 2027-09",
            "paid to the caring parent, member ",
        );
    }

    #[test]
    fn large_family() {
        let four = ["2010-01-01", "2012-01-01", "2014-01-01", "2016-01-01"];
        check(
            parents_with_children(&four[..3]),
            "large_family",
            "refused",
            "3 children under 18 (4 required)",
        );
        // 16.03 × 4325 = 69329.75, to the head (member 0).
        check(
            parents_with_children(&four),
            "large_family",
            "69329.75 to member 0, monthly",
            "4 children under 18 live in the family (4+ required)",
        );
        check(
            parents_with_children(&[
                "2010-01-01",
                "2012-01-01",
                "2014-01-01",
                "2016-01-01",
                "2018-01-01",
            ]),
            "large_family",
            "86673.00 to member 0, monthly",
            "5 children: 20.04 MCI",
        );
        check(
            parents_with_children(&[
                "2010-01-01",
                "2011-01-01",
                "2012-01-01",
                "2013-01-01",
                "2014-01-01",
                "2015-01-01",
                "2016-01-01",
            ]),
            "large_family",
            "121359.50 to member 0, monthly",
            "7 children: 28.06 MCI × 4325.00 KZT = 121359.50 KZT a month",
        );
        // 8 children: 4 MCI each, 4 × 4325 × 8 = 138400.00.
        check(
            parents_with_children(&[
                "2010-01-01",
                "2011-01-01",
                "2012-01-01",
                "2013-01-01",
                "2014-01-01",
                "2015-01-01",
                "2016-01-01",
                "2017-01-01",
            ]),
            "large_family",
            "138400.00 to member 0, monthly",
            "8 children: 4 MCI × 4325.00 KZT × 8 children = 138400.00 KZT a month",
        );
    }

    #[test]
    fn large_family_counts_students_under_23_only() {
        let studying = |facts: &mut CitizenFacts| {
            facts.education = Some(Education {
                enrolled: Enrollment::University,
                attainment: Attainment::Secondary,
            });
        };
        // A 22-year-old student counts; an 18-year-old who does not study does not.
        let family = parents_with_children(&["2012-01-01", "2014-01-01", "2016-01-01"]).member(
            Role::Child,
            "2004-01-01",
            Sex::Female,
            studying,
        );
        check(
            family,
            "large_family",
            "69329.75 to member 0, monthly",
            "(1 of them student)",
        );
        let family = parents_with_children(&["2012-01-01", "2014-01-01", "2016-01-01"]).member(
            Role::Child,
            "2003-11-15",
            Sex::Female,
            studying,
        );
        check(
            family,
            "large_family",
            "refused",
            "3 children under 18 (4 required)",
        );
        let family =
            parents_with_children(&["2012-01-01", "2014-01-01", "2016-01-01", "2008-11-15"]);
        check(
            family,
            "large_family",
            "refused",
            "3 children under 18 (4 required)",
        );
    }

    #[test]
    fn awarded_mother() {
        let awarded = |awards: &'static [Award]| {
            fixtures::well_off_family()
                .member_facts(1, move |facts| facts.awards.extend(awards.iter().copied()))
        };
        // 6.40 × 4325 = 27680.00; 7.40 × 4325 = 32005.00.
        check(
            awarded(&[Award::KumisAlka]),
            "awarded_mother",
            "27680.00 to member 1, monthly",
            "holds Kumis alka: 6.40 MCI",
        );
        check(
            awarded(&[Award::AltynAlka]),
            "awarded_mother",
            "32005.00 to member 1, monthly",
            "holds Altyn alka",
        );
        check(
            awarded(&[Award::KumisAlka, Award::MotherHeroine]),
            "awarded_mother",
            "32005.00 to member 1, monthly",
            "of several awards, the highest counts",
        );
        check(
            fixtures::well_off_family(),
            "awarded_mother",
            "refused",
            "no living member holds Kumis alka, Altyn alka, Mother Heroine",
        );
        let dead = awarded(&[Award::AltynAlka])
            .member_facts(1, |facts| facts.died_on = Some(day("2026-01-01")));
        check(dead, "awarded_mother", "refused", "no living member holds");
    }

    #[test]
    fn disabled_child_parent() {
        let with_child = |until: Option<&str>| {
            let until = until.map(day);
            fixtures::well_off_family().member_facts(2, move |facts| {
                facts.disability = Some(Disability {
                    group: DisabilityGroup::Child,
                    until,
                });
            })
        };
        // 1.61 × 50851 = 81870.11, to the mother (member 1, the spouse).
        check(
            with_child(None),
            "disabled_child_parent",
            "81870.11 to member 1, monthly",
            "1.61 × the subsistence minimum 50851.00 KZT = 81870.11 KZT",
        );
        check(
            with_child(Some("2026-11-15")),
            "disabled_child_parent",
            "81870.11 to member 1, monthly",
            "(valid until 2026-11-15)",
        );
        check(
            with_child(Some("2026-11-14")),
            "disabled_child_parent",
            "refused",
            "assessment ended on 2026-11-14 and no longer counts",
        );
    }

    #[test]
    fn disability() {
        let with_group = |index: usize, group: DisabilityGroup, until: Option<&str>| {
            let until = until.map(day);
            fixtures::well_off_family().member_facts(index, move |facts| {
                facts.disability = Some(Disability { group, until });
            })
        };
        // × 50851: 1.50 = 76276.50, 1.20 = 61021.20, 0.80 = 40680.80. To the person.
        check(
            with_group(0, DisabilityGroup::One, None),
            "disability",
            "76276.50 to member 0, monthly",
            "group 1: 1.50 × the subsistence minimum",
        );
        check(
            with_group(1, DisabilityGroup::Two, None),
            "disability",
            "61021.20 to member 1, monthly",
            "has disability group 2 (indefinite)",
        );
        check(
            with_group(1, DisabilityGroup::Three, Some("2027-01-01")),
            "disability",
            "40680.80 to member 1, monthly",
            "= 40680.80 KZT a month",
        );
        check(
            with_group(1, DisabilityGroup::Three, Some("2026-11-14")),
            "disability",
            "refused",
            "group 3 assessment ended on 2026-11-14",
        );
        check(
            with_group(2, DisabilityGroup::Child, None),
            "disability",
            "refused",
            "no living member has a valid disability group 1, 2, 3",
        );
    }

    #[test]
    fn disability_is_paid_to_each_member_with_a_group() {
        // The head (born 1988) comes before the spouse (1990) in IIN order.
        let family = fixtures::well_off_family()
            .member_facts(0, |facts| {
                facts.disability = Some(Disability {
                    group: DisabilityGroup::Three,
                    until: None,
                })
            })
            .member_facts(1, |facts| {
                facts.disability = Some(Disability {
                    group: DisabilityGroup::One,
                    until: None,
                })
            });
        check(
            family.clone(),
            "disability",
            "40680.80 to member 0, monthly",
            "also has disability group 1 (indefinite): 1.50",
        );
        let record = family.build();
        let decision = decision(&record, &fixtures::rules_2026(), "disability");
        let amounts: Vec<String> = decision.awards().map(|a| a.amount.to_string()).collect();
        assert_eq!(amounts, vec!["40680.80", "76276.50"]);
        assert_eq!(
            decision.more_awards[0].recipient,
            record.members[1].facts.iin
        );
    }

    /// A widow (member 1) with two children of 9 and 4; the head (member 0) died on
    /// 2026-05-10 after `set_head` describes his work.
    fn widowed(set_head: impl FnOnce(&mut CitizenFacts)) -> FamilyBuilder {
        fixtures::well_off_family().member_facts(0, |facts| {
            facts.employment = None;
            facts.incomes.clear();
            set_head(facts);
            facts.died_on = Some(day("2026-05-10"));
        })
    }

    #[test]
    fn survivor() {
        // 0.80 × 50851 = 40680.80 per child, × 2 = 81361.60, to the widow.
        check(
            widowed(|facts| fixtures::employment(facts, EmploymentStatus::Employed, None)),
            "survivor",
            "81361.60 to member 1, monthly",
            "was employed at death",
        );
        check(
            widowed(|facts| fixtures::income_at(facts, "2025-05", IncomeSource::Salary, "1")),
            "survivor",
            "81361.60 to member 1, monthly",
            "earned 1.00 KZT of salary or business income from 2025-05 to 2026-05",
        );
        check(
            widowed(|facts| fixtures::income_at(facts, "2025-04", IncomeSource::Salary, "300000")),
            "survivor",
            "refused",
            "died on 2026-05-10 but was no earner",
        );
        check(
            fixtures::well_off_family(),
            "survivor",
            "refused",
            "no head or spouse of the family has died",
        );
        // The children are grown up.
        let grown = widowed(|facts| fixtures::employment(facts, EmploymentStatus::Employed, None))
            .member_facts(2, |facts| facts.died_on = Some(day("2026-06-01")))
            .member_facts(3, |facts| facts.died_on = Some(day("2026-06-01")));
        check(
            grown,
            "survivor",
            "refused",
            "no living child aged 17 or under depends on them",
        );
    }

    /// The spouse (member 1) lost her job on `since` after 12 months of salary.
    fn lost_job(since: &str, previous: Option<EmploymentStatus>) -> FamilyBuilder {
        let since = since.to_owned();
        fixtures::well_off_family().member_facts(1, move |facts| {
            fixtures::employment_since(facts, EmploymentStatus::Unemployed, previous, &since);
            facts.incomes.clear();
            let mut month = Month::of(day(&since));
            for _ in 0..12 {
                month = month.prev();
                fixtures::income_at(facts, &month.to_string(), IncomeSource::Salary, "300000");
            }
        })
    }

    #[test]
    fn job_loss() {
        // 45% × 300000 = 135000.00, for 2026-06 to 2026-11: today (2026-11-15) is inside.
        check(
            lost_job("2026-06-01", Some(EmploymentStatus::Employed)),
            "job_loss",
            "135000.00 to member 1, monthly to 2026-11",
            "lost a job in 2026-06 after being employed; paid for 6 months, 2026-06 to 2026-11",
        );
        check(
            lost_job("2026-11-02", Some(EmploymentStatus::SelfEmployed)),
            "job_loss",
            "135000.00 to member 1, monthly to 2027-04",
            "salary of 3600000.00 KZT over 12 months with salary from 2025-11 to 2026-10: 45% of the average = 135000.00 KZT a month",
        );
        // 2026-05 + 6 months ran to 2026-10: outside.
        check(
            lost_job("2026-05-31", Some(EmploymentStatus::Employed)),
            "job_loss",
            "refused",
            "the 6 months of benefit ran to 2026-10",
        );
        check(
            lost_job("2026-06-01", None),
            "job_loss",
            "refused",
            "no member is unemployed after being employed",
        );
        check(
            lost_job("2026-06-01", Some(EmploymentStatus::Student)),
            "job_loss",
            "refused",
            "no member is unemployed after being employed",
        );
    }

    #[test]
    fn an_award_that_rounds_to_nothing_is_no_award() {
        // One tiyn of salary: 45% of 0.01 is 0.0045, which rounds to 0.00.
        let family = fixtures::well_off_family().member_facts(1, |facts| {
            fixtures::employment_since(
                facts,
                EmploymentStatus::Unemployed,
                Some(EmploymentStatus::Employed),
                "2026-09-10",
            );
            facts.incomes.clear();
            fixtures::income_at(facts, "2026-08", IncomeSource::Salary, "0.01");
        });
        check(
            family,
            "job_loss",
            "refused",
            "the amount rounds to 0.00 KZT",
        );
    }

    #[test]
    fn job_loss_averages_the_months_with_salary() {
        // Salary in 3 of the 12 months: (100000 + 100000 + 100001) / 3 × 45% = 45000.15.
        let family = fixtures::well_off_family().member_facts(1, |facts| {
            fixtures::employment_since(
                facts,
                EmploymentStatus::Unemployed,
                Some(EmploymentStatus::Employed),
                "2026-09-10",
            );
            facts.incomes.clear();
            fixtures::income_at(facts, "2025-09", IncomeSource::Salary, "100000");
            fixtures::income_at(facts, "2026-01", IncomeSource::Salary, "100000");
            fixtures::income_at(facts, "2026-08", IncomeSource::Salary, "100001");
            fixtures::income_at(facts, "2026-08", IncomeSource::Business, "900000");
            fixtures::income_at(facts, "2025-08", IncomeSource::Salary, "900000");
            fixtures::income_at(facts, "2026-09", IncomeSource::Salary, "900000");
        });
        check(
            family,
            "job_loss",
            "45000.15 to member 1, monthly to 2027-02",
            "over 3 months with salary from 2025-09 to 2026-08",
        );
        let no_salary = fixtures::well_off_family().member_facts(1, |facts| {
            fixtures::employment_since(
                facts,
                EmploymentStatus::Unemployed,
                Some(EmploymentStatus::Employed),
                "2026-09-10",
            );
            facts.incomes.clear();
        });
        check(
            no_salary,
            "job_loss",
            "refused",
            "lost a job in 2026-09 but had no salary from 2025-09 to 2026-08",
        );
    }

    /// A mother of 40 (member 0, head) living alone in Karaganda (line 52500.00) whose income
    /// is `monthly` in each of the three months before today, with a social contract.
    fn single_earner(monthly: &str) -> FamilyBuilder {
        FamilyBuilder::new().social_contract(true).member(
            Role::Head,
            "1986-01-01",
            Sex::Female,
            |facts| {
                fixtures::employment(facts, EmploymentStatus::Employed, None);
                for at in ["2026-08", "2026-09", "2026-10"] {
                    fixtures::income_at(facts, at, IncomeSource::Salary, monthly);
                }
            },
        )
    }

    #[test]
    fn tsa_at_the_poverty_line() {
        check(
            single_earner("52499.99"),
            "tsa",
            "0.01 to member 0, monthly to 2027-01",
            "per-capita income 52499.99 KZT a month",
        );
        check(
            single_earner("52500.00"),
            "tsa",
            "refused",
            "poverty line 52500.00 KZT (35% of the regional median 150000.00 KZT in KZ-35",
        );
        check(
            single_earner("0"),
            "tsa",
            "52500.00 to member 0, monthly to 2027-01",
            "(52500.00 − 0.00) KZT × 1 member = 52500.00 KZT",
        );
    }

    #[test]
    fn tsa_amounts() {
        // A mother without income and children of 9 and 3 in Turkistan (the floor 35595.70):
        // 35595.70 × 3 + 1.5 × 4325 × 1 = 106787.10 + 6487.50 = 113274.60.
        let family = FamilyBuilder::new()
            .region(Region::Turkistan)
            .social_contract(true)
            .member(Role::Head, "1990-01-01", Sex::Female, |_| {})
            .member(Role::Child, "2017-01-01", Sex::Male, |_| {})
            .member(Role::Child, "2023-01-01", Sex::Female, |_| {});
        check(
            family,
            "tsa",
            "113274.60 to member 0, monthly to 2027-01",
            "plus 1.50 MCI × 4325.00 KZT × 1 child aged 1–6 = 6487.50 KZT",
        );
        // Ages 1 and 6 count, 0 and 7 do not: 2 children.
        let family = FamilyBuilder::new()
            .region(Region::Turkistan)
            .social_contract(true)
            .member(Role::Head, "1990-01-01", Sex::Female, |_| {})
            .member(Role::Child, "2025-11-15", Sex::Male, |_| {})
            .member(Role::Child, "2025-11-16", Sex::Male, |_| {})
            .member(Role::Child, "2019-11-16", Sex::Female, |_| {})
            .member(Role::Child, "2019-11-15", Sex::Female, |_| {});
        // 35595.70 × 5 + 6487.50 × 2 = 177978.50 + 12975.00 = 190953.50.
        check(
            family,
            "tsa",
            "190953.50 to member 0, monthly to 2027-01",
            "× 2 children aged 1–6 = 12975.00 KZT",
        );
    }

    #[test]
    fn tsa_refusals_and_the_social_contract() {
        check(
            single_earner("1000").member_facts(0, |facts| facts.non_mortgage_debt = true),
            "tsa",
            "refused",
            "has a non-mortgage debt: TSA is refused to a family with one",
        );
        check(
            single_earner("1000").social_contract(false),
            "tsa",
            "refused",
            "but no signed social contract",
        );
        check(
            single_earner("1000"),
            "tsa",
            "51500.00 to member 0, monthly to 2027-01",
            "and a signed social contract",
        );
        // Nobody able-bodied: a caregiver, a person with group 2, a pensioner of 63.
        let no_contract_needed = FamilyBuilder::new()
            .member(Role::Head, "1990-01-01", Sex::Female, |facts| {
                fixtures::employment(facts, EmploymentStatus::Caregiver, None);
            })
            .member(Role::Spouse, "1988-01-01", Sex::Male, |facts| {
                facts.disability = Some(Disability {
                    group: DisabilityGroup::Two,
                    until: None,
                });
            })
            .member(Role::Parent, "1963-01-01", Sex::Male, |_| {});
        check(
            no_contract_needed,
            "tsa",
            "157500.00 to member 0, monthly to 2027-01",
            "(52500.00 − 0.00) KZT × 3 members",
        );
        // Group 3 does not exempt.
        let group_three =
            FamilyBuilder::new().member(Role::Head, "1990-01-01", Sex::Male, |facts| {
                facts.disability = Some(Disability {
                    group: DisabilityGroup::Three,
                    until: None,
                });
            });
        check(
            group_three,
            "tsa",
            "refused",
            "but no signed social contract",
        );
        // A minor's debt is not an adult's.
        let minor_debt = FamilyBuilder::new()
            .member(Role::Head, "1960-01-01", Sex::Female, |_| {})
            .member(Role::Child, "2010-01-01", Sex::Male, |facts| {
                facts.non_mortgage_debt = true
            });
        check(
            minor_debt,
            "tsa",
            "105000.00 to member 0, monthly to 2027-01",
            "below it",
        );
    }

    #[test]
    fn an_empty_family_is_refused_everything_with_reasons() {
        let record = FamilyBuilder::new().build();
        for decision in decide_programs(&record, &rules_2026(), today(), Words::Written) {
            assert!(!decision.eligible, "{}", decision.code);
            assert!(!decision.reasons.is_empty(), "{}", decision.code);
        }
    }

    #[test]
    fn recipients_when_the_head_is_gone() {
        // The head (member 0, the mother here) has died: the large-family benefit goes to the
        // father as the remaining parent, and a survivor benefit to him as well.
        let family =
            parents_with_children(&["2010-01-01", "2012-01-01", "2014-01-01", "2016-01-01"])
                .member_facts(0, |facts| facts.died_on = Some(day("2026-09-01")));
        check(
            family,
            "large_family",
            "69329.75 to member 1, monthly",
            "paid to the remaining parent, member ",
        );
        let family =
            parents_with_children(&["2010-01-01", "2012-01-01", "2014-01-01", "2016-01-01"])
                .member_facts(0, |facts| facts.died_on = Some(day("2026-09-01")));
        // 0.80 × 50851 × 4 = 162723.20.
        check(
            family,
            "survivor",
            "162723.20 to member 1, monthly",
            "4 living children aged 17 or under",
        );
    }

    #[test]
    fn childcare_decides_the_youngest_and_names_the_other() {
        let family = parents_with_children(&["2025-08-01", "2026-08-01"]);
        check(
            family,
            "childcare_allowance",
            "29453.25 to member 0, monthly to 2028-02",
            "also under 18 months: member ",
        );
    }

    #[test]
    fn job_loss_is_paid_to_each_member_who_lost_a_job() {
        let family =
            lost_job("2026-06-01", Some(EmploymentStatus::Employed)).member_facts(0, |facts| {
                fixtures::employment_since(
                    facts,
                    EmploymentStatus::Unemployed,
                    Some(EmploymentStatus::Employed),
                    "2026-10-01",
                );
                fixtures::salary(facts, "200000");
            });
        // The head (born 1988) comes first in IIN order: 45% × 200000 = 90000.00.
        check(
            family.clone(),
            "job_loss",
            "90000.00 to member 0, monthly to 2027-03",
            "also lost a job in 2026-06, paid to that member",
        );
        let record = family.build();
        let decision = decision(&record, &fixtures::rules_2026(), "job_loss");
        let amounts: Vec<String> = decision.awards().map(|a| a.amount.to_string()).collect();
        assert_eq!(amounts, vec!["90000.00", "135000.00"]);
        assert_eq!(
            decision.more_awards[0].last_month,
            Some("2026-11".parse().unwrap())
        );
    }

    #[test]
    fn tsa_without_a_region_uses_the_floor() {
        // Line 35595.70; income 30000: (35595.70 − 30000.00) × 1 = 5595.70.
        check(
            single_earner("30000").no_address(),
            "tsa",
            "5595.70 to member 0, monthly to 2027-01",
            "the family's region is unknown, so the floor applies",
        );
    }

    #[test]
    fn a_second_program_of_a_kind_is_a_catalogue_change_only() {
        let text = fixtures::catalogue_text()
            + r#"
[[program]]
code = "large_family_astana_top_up"
kind = "large_family"
name_en = "Astana large-family top-up"
name_ru = "Доплата многодетным семьям Астаны"
name_kk = "Астана көп балалы отбасыларына үстемеақы"
min_children = 4
minor_age_max = 17
student_age_max = 22
amounts_mci = ["2", "2.5"]
per_child_mci = "0.5"
"#;
        let rules = Rules::from_toml_str(&text, 2026).unwrap();
        assert_eq!(rules.programs.len(), 10);
        let family =
            parents_with_children(&["2010-01-01", "2012-01-01", "2014-01-01", "2016-01-01"])
                .build();
        let decisions = decide_programs(&family, &rules, today(), Words::Written);
        assert_eq!(decisions.len(), 10);
        let top_up = &decisions[9];
        assert_eq!(top_up.code, "large_family_astana_top_up");
        assert_eq!(render(&family, top_up), "8650.00 to member 0, monthly");
        assert_eq!(
            render(&family, &decisions[2]),
            "69329.75 to member 0, monthly"
        );
    }

    #[test]
    fn earlier_years_use_their_own_constants() {
        // 2024: MCI 3692, 16.03 × 3692 = 59182.76.
        let rules = Rules::from_toml_str(&fixtures::catalogue_text(), 2024).unwrap();
        let family =
            parents_with_children(&["2010-01-01", "2012-01-01", "2014-01-01", "2016-01-01"])
                .build();
        assert_eq!(
            render(&family, &decision(&family, &rules, "large_family")),
            "59182.76 to member 0, monthly"
        );
    }

    #[test]
    fn ordinals() {
        let check = |number: u32, expected: &str| assert_eq!(ordinal(number), expected);
        check(1, "1st");
        check(2, "2nd");
        check(3, "3rd");
        check(4, "4th");
        check(11, "11th");
        check(12, "12th");
        check(13, "13th");
        check(21, "21st");
        check(112, "112th");
    }

    #[test]
    fn ages_in_months_follow_the_calendar() {
        let check = |birth: &str, on: &str, expected: u32| {
            assert_eq!(
                age_in_months(day(birth), day(on)),
                expected,
                "{birth} on {on}"
            )
        };
        check("2025-05-15", "2026-11-15", 18);
        check("2025-05-15", "2026-11-14", 17);
        check("2024-08-31", "2026-02-28", 18);
        check("2024-08-31", "2026-02-27", 17);
        check("2026-11-15", "2026-11-15", 0);
    }

    proptest! {
        #[test]
        fn tsa_never_grows_with_income(low in 0u64..20_000_000, extra in 0u64..20_000_000, size in 1u32..12, children in 0u32..6) {
            let line = money("52500.00");
            let supplement = money("6487.50");
            let poorer = tsa_amount(Money::from_tiyn(low), line, size, supplement, children);
            let richer = tsa_amount(Money::from_tiyn(low + extra), line, size, supplement, children);
            prop_assert!(richer <= poorer);
        }

        #[test]
        fn tsa_decisions_never_grow_with_income(low in 0u64..8_000_000, extra in 0u64..8_000_000) {
            let amount = |tiyn: u64| {
                let monthly = Money::from_tiyn(tiyn).to_string();
                let record = single_earner(&monthly).member(Role::Child, "2022-01-01", Sex::Male, |_| {}).build();
                decision(&record, &rules_2026(), "tsa").award.map_or(Money::ZERO, |award| award.amount)
            };
            prop_assert!(amount(low + extra) <= amount(low));
        }
    }
}
