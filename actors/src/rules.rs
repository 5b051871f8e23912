//! The catalogue: the yearly constants (MCI, subsistence minimum), the poverty line, the
//! well-being scoring configuration and the benefit programs, read from `config/programs.toml`
//! and validated into typed [`Rules`].
//!
//! Every number that scoring and eligibility use lives in the catalogue, never in code: adding a
//! program of an existing kind (a regional top-up, say) is a TOML change only. This module owns
//! the types and their validation; it reads one file in [`Rules::load`] and does no other IO.
//! It never decides anything about a family: `scoring` and `eligibility` do.
//!
//! # Parsing
//! The file is parsed into a TOML table and then walked key by key, so that every problem names
//! its key path (`program[3] (large_family).amounts_mci: expected at least 1 entry`), and every
//! key that is not known at its place is refused, as `deny_unknown_fields` would. Money and
//! rates are decimal strings, never TOML numbers (those would be floats).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::RangeInclusive;
use std::path::Path;

use serde::de::DeserializeOwned;
use storage::ids::Region;
use storage::money::{Money, Rate};
use storage::record::{
    Attainment, Award, Criterion, DisabilityGroup, Enrollment, Fraction, Level, Tenure, Utility,
};

/// The longest program or indicator code: codes travel in payment purposes and entitlement ids.
pub const CODE_LENGTH_MAX: usize = 40;
/// The longest rules version string.
pub const VERSION_LENGTH_MAX: usize = 32;
/// The most programs a catalogue may hold; each is decided on every evaluation.
pub const PROGRAMS_MAX: usize = 64;
/// The most indicators one criterion may hold; bounds the score's common denominator.
pub const INDICATORS_PER_CRITERION_MAX: usize = 20;
/// The largest multiple of the MCI or of the subsistence minimum a program may pay. Far above
/// any real benefit; it exists so that a typo cannot overflow the money arithmetic.
pub const MULTIPLE_MAX: Rate = Rate::from_ten_thousandths(1_000 * 10_000);
/// Ages in the catalogue, in years.
const AGE_RANGE: RangeInclusive<u32> = 0..=150;
/// Month counts in the catalogue (windows, durations, lookbacks).
const MONTHS_RANGE: RangeInclusive<u32> = 1..=120;
/// The largest amount for the yearly constants and regional medians, KZT.
const CONSTANT_KZT_MAX: u64 = 100_000_000;

/// Why a catalogue cannot be used. Every message names the file, the key and the problem, in one
/// line, so that `dfm` can print it as the reason it exits.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: line {line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}: {key}: {problem}")]
    Invalid {
        file: String,
        key: String,
        problem: String,
    },
    #[error("{file}: year {year} not in [years]")]
    UnknownYear { file: String, year: i32 },
}

/// The validated catalogue for one year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Printed into every evaluation, so each decision names the rules that made it.
    pub version: String,
    /// The year the constants below are for.
    pub year: i32,
    /// The monthly calculation index of `year`.
    pub mci: Money,
    pub subsistence_minimum: Money,
    pub poverty: PovertyRules,
    /// Regional median per-capita monthly income. Invariant: every [`Region`] is present.
    pub regions: BTreeMap<Region, Money>,
    pub scoring: ScoringRules,
    /// In catalogue order, which is the order of the decisions. Invariant: codes are unique.
    pub programs: Vec<ProgramRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PovertyRules {
    pub median_share: Rate,
    pub subsistence_floor_share: Rate,
    /// The first year the median share applies; before it, the line is the floor alone.
    pub median_rule_from: i32,
    /// Full months before the month of evaluation that per-capita income averages over.
    pub income_months: u32,
}

/// The poverty line of one family, and what it was found from: the words
/// ([`PovertyLine::basis`]) are written only when asked for, as a scan of
/// every family asks for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PovertyLine {
    pub amount: Money,
    /// The subsistence floor: `floor_share` of `subsistence_minimum`.
    floor: Money,
    floor_share: Rate,
    subsistence_minimum: Money,
    found: LineFrom,
}

/// How a poverty line was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineFrom {
    /// The year is before the median rule's first year: the floor alone.
    BeforeMedianRule { year: i32 },
    /// The family's region is unknown: the floor.
    NoRegion,
    /// `share` of the region's `median`, or the floor when that is lower.
    Median {
        region: Region,
        median: Money,
        share: Rate,
        from_median: Money,
    },
}

impl PovertyLine {
    /// How the line was found, in words: "35% of the regional median
    /// 150000.00 KZT in KZ-35 (52500.00 KZT), not below 70% of the
    /// subsistence minimum …".
    pub fn basis(&self) -> String {
        let floor_words = format!(
            "{} of the subsistence minimum {} KZT ({} KZT)",
            percent(self.floor_share),
            self.subsistence_minimum,
            self.floor
        );
        match self.found {
            LineFrom::BeforeMedianRule { year } => {
                format!("{floor_words}; in {year} the regional median does not apply")
            }
            LineFrom::NoRegion => {
                format!("{floor_words}; the family's region is unknown, so the floor applies")
            }
            LineFrom::Median {
                region,
                median,
                share,
                from_median,
            } => {
                let median_words = format!(
                    "{} of the regional median {median} KZT in {region} ({from_median} KZT)",
                    percent(share)
                );
                if from_median >= self.floor {
                    format!("{median_words}, not below {floor_words}")
                } else {
                    format!("{floor_words}, as {median_words} is lower")
                }
            }
        }
    }
}

/// A constant of the catalogue that scoring or the programs read, beside
/// their own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constant {
    Year,
    Mci,
    SubsistenceMinimum,
    /// `[poverty]`: the line's shares and first year, and the income months.
    Poverty,
    /// The regional medians.
    Regions,
}

impl Constant {
    pub const ALL: [Constant; 5] = [
        Constant::Year,
        Constant::Mci,
        Constant::SubsistenceMinimum,
        Constant::Poverty,
        Constant::Regions,
    ];

    /// Whether scoring reads it: all but the MCI, through the poverty line and
    /// the income months.
    pub fn read_by_scoring(self) -> bool {
        self != Constant::Mci
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoringRules {
    /// Each criterion's weight. Invariant: all five present, each above 0, summing to exactly 1.
    pub criteria: BTreeMap<Criterion, Rate>,
    /// The score at which levels B, C, D and E begin, in that order. Invariant: strictly
    /// increasing, within (0, 1].
    pub level_cutoffs: [(Level, Rate); 4],
    /// In catalogue order. Invariant: codes unique, every criterion has at least one.
    pub indicators: Vec<IndicatorRule>,
    /// The common denominator of every indicator weight and so of every score.
    pub denominator: u32,
}

impl ScoringRules {
    /// The level of a score, compared exactly: the score is at or above a cut-off when
    /// `numerator × 10000 ≥ cut-off in ten-thousandths × denominator`.
    pub fn level_of(&self, score: Fraction) -> Level {
        assert!(
            score.denominator > 0,
            "a fraction never has a zero denominator"
        );
        let scaled_score = u64::from(score.numerator) * 10_000;
        self.level_cutoffs
            .iter()
            .rev()
            .find(|(_, cutoff)| {
                scaled_score >= cutoff.ten_thousandths() * u64::from(score.denominator)
            })
            .map_or(Level::A, |(level, _)| *level)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndicatorRule {
    pub code: String,
    pub criterion: Criterion,
    /// The criterion's weight divided by its number of indicators, over
    /// [`ScoringRules::denominator`].
    pub weight: Fraction,
    pub test: IndicatorTest,
}

/// What an indicator checks, with its parameters. Ages are completed years, inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndicatorTest {
    /// Per-capita income under the poverty line.
    IncomeBelowPovertyLine,
    /// Members of working age exist and none of them works.
    NoWorkingAgeEmployed { age_min: u32, age_max: u32 },
    /// A living member has a non-mortgage debt.
    NonMortgageDebt,
    /// A living member is reported uninsured.
    Uninsured,
    /// A living member holds a valid assessment of one of the groups.
    DisabilityGroup { groups: BTreeSet<DisabilityGroup> },
    /// A living member holds a valid group `child`, or is at most `age_max` with any group.
    ChildDisability { age_max: u32 },
    /// The housing tenure is one of these.
    Tenure { tenures: BTreeSet<Tenure> },
    /// Living area per living member under the threshold.
    AreaPerPersonBelow { area_per_person_m2: Rate },
    /// The housing lacks one of these utilities.
    MissingUtilities { utilities: BTreeSet<Utility> },
    /// Children of at most `age_max` and exactly one living head or spouse.
    SingleParent { age_max: u32 },
    /// One living member, of pension age or retired.
    LonePensioner {
        pension_age_male: u32,
        pension_age_female: u32,
    },
    /// More non-earners than earners.
    DependantsExceedEarners,
    /// A member of that age whose reported enrolment is not one of these.
    NotEnrolled {
        age_min: u32,
        age_max: u32,
        enrollments: BTreeSet<Enrollment>,
    },
    /// Adults exist, all with a reported attainment, none of them one of these.
    NoAdultAttainment {
        age_min: u32,
        attainments: BTreeSet<Attainment>,
    },
}

impl IndicatorTest {
    /// The `test` name in the catalogue.
    pub fn name(&self) -> &'static str {
        match self {
            IndicatorTest::IncomeBelowPovertyLine => "income_below_poverty_line",
            IndicatorTest::NoWorkingAgeEmployed { .. } => "no_working_age_employed",
            IndicatorTest::NonMortgageDebt => "non_mortgage_debt",
            IndicatorTest::Uninsured => "uninsured",
            IndicatorTest::DisabilityGroup { .. } => "disability_group",
            IndicatorTest::ChildDisability { .. } => "child_disability",
            IndicatorTest::Tenure { .. } => "tenure",
            IndicatorTest::AreaPerPersonBelow { .. } => "area_per_person_below",
            IndicatorTest::MissingUtilities { .. } => "missing_utilities",
            IndicatorTest::SingleParent { .. } => "single_parent",
            IndicatorTest::LonePensioner { .. } => "lone_pensioner",
            IndicatorTest::DependantsExceedEarners => "dependants_exceed_earners",
            IndicatorTest::NotEnrolled { .. } => "not_enrolled",
            IndicatorTest::NoAdultAttainment { .. } => "no_adult_attainment",
        }
    }
}

/// The nine kinds of program logic; a catalogue may hold several programs of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProgramKind {
    Birth,
    Childcare,
    LargeFamily,
    Award,
    DisabledChildParent,
    Disability,
    Survivor,
    JobLoss,
    Tsa,
}

impl ProgramKind {
    pub const ALL: [ProgramKind; 9] = [
        ProgramKind::Birth,
        ProgramKind::Childcare,
        ProgramKind::LargeFamily,
        ProgramKind::Award,
        ProgramKind::DisabledChildParent,
        ProgramKind::Disability,
        ProgramKind::Survivor,
        ProgramKind::JobLoss,
        ProgramKind::Tsa,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProgramKind::Birth => "birth",
            ProgramKind::Childcare => "childcare",
            ProgramKind::LargeFamily => "large_family",
            ProgramKind::Award => "award",
            ProgramKind::DisabledChildParent => "disabled_child_parent",
            ProgramKind::Disability => "disability",
            ProgramKind::Survivor => "survivor",
            ProgramKind::JobLoss => "job_loss",
            ProgramKind::Tsa => "tsa",
        }
    }

    /// Whether deciding a program of this kind reads the members' incomes. A
    /// what-if or a re-score that decides again only programs that read none
    /// (and scores nobody again) reads families without their incomes
    /// ([`storage::compact::IncomeNeed`]).
    pub fn reads_incomes(self) -> bool {
        match self {
            ProgramKind::Survivor | ProgramKind::JobLoss | ProgramKind::Tsa => true,
            ProgramKind::Birth
            | ProgramKind::Childcare
            | ProgramKind::LargeFamily
            | ProgramKind::Award
            | ProgramKind::DisabledChildParent
            | ProgramKind::Disability => false,
        }
    }

    /// Whether deciding a program of this kind reads `constant`. A what-if or
    /// a re-score decides again a program whose rule is unchanged only when a
    /// constant its kind reads changes. A new year changes every constant, so
    /// every kind reads the year.
    pub fn reads(self, constant: Constant) -> bool {
        match constant {
            Constant::Year => true,
            Constant::Mci => matches!(
                self,
                ProgramKind::Birth
                    | ProgramKind::Childcare
                    | ProgramKind::LargeFamily
                    | ProgramKind::Award
                    | ProgramKind::Tsa
            ),
            // TSA through the poverty line's floor.
            Constant::SubsistenceMinimum => matches!(
                self,
                ProgramKind::DisabledChildParent
                    | ProgramKind::Disability
                    | ProgramKind::Survivor
                    | ProgramKind::Tsa
            ),
            Constant::Poverty | Constant::Regions => self == ProgramKind::Tsa,
        }
    }

    pub fn parse(text: &str) -> Option<ProgramKind> {
        ProgramKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

impl fmt::Display for ProgramKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramRule {
    /// Unique in the catalogue; matches `^[a-z][a-z0-9_]*$`.
    pub code: String,
    pub name_en: String,
    pub name_ru: String,
    pub name_kk: String,
    pub params: ProgramParams,
}

impl ProgramRule {
    pub fn kind(&self) -> ProgramKind {
        match self.params {
            ProgramParams::Birth(_) => ProgramKind::Birth,
            ProgramParams::Childcare(_) => ProgramKind::Childcare,
            ProgramParams::LargeFamily(_) => ProgramKind::LargeFamily,
            ProgramParams::Award(_) => ProgramKind::Award,
            ProgramParams::DisabledChildParent(_) => ProgramKind::DisabledChildParent,
            ProgramParams::Disability(_) => ProgramKind::Disability,
            ProgramParams::Survivor(_) => ProgramKind::Survivor,
            ProgramParams::JobLoss(_) => ProgramKind::JobLoss,
            ProgramParams::Tsa(_) => ProgramKind::Tsa,
        }
    }

    /// One-off (paid once per occasion) rather than monthly. Only the birth kind is.
    pub fn one_off(&self) -> bool {
        self.kind() == ProgramKind::Birth
    }

    /// The duration in months of a monthly benefit that has one.
    pub fn months(&self) -> Option<u32> {
        match &self.params {
            ProgramParams::JobLoss(rule) => Some(rule.months),
            ProgramParams::Tsa(rule) => Some(rule.months),
            _ => None,
        }
    }
}

/// The kind of a program with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramParams {
    Birth(BirthRule),
    Childcare(ChildcareRule),
    LargeFamily(LargeFamilyRule),
    Award(AwardRule),
    DisabledChildParent(DisabledChildParentRule),
    Disability(DisabilityRule),
    Survivor(SurvivorRule),
    JobLoss(JobLossRule),
    Tsa(TsaRule),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirthRule {
    /// MCI multiples by the child's order: entry n for the n-th child, the last entry also for
    /// every later child. Invariant: not empty.
    pub amounts_mci: Vec<Rate>,
    /// A child born within this many months before the evaluation gives rise to the allowance.
    pub window_months: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildcareRule {
    /// MCI multiples by the child's order, as in [`BirthRule::amounts_mci`].
    pub amounts_mci: Vec<Rate>,
    /// The age, in months, at which the allowance stops.
    pub age_limit_months: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeFamilyRule {
    pub min_children: u32,
    pub minor_age_max: u32,
    /// Students (college or university) count as children up to this age.
    pub student_age_max: u32,
    /// MCI multiples for `min_children`, `min_children + 1`, … children. Invariant: not empty.
    pub amounts_mci: Vec<Rate>,
    /// For more children than `amounts_mci` covers: this many MCI for each child.
    pub per_child_mci: Rate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwardRule {
    /// MCI multiples by award. Invariant: not empty.
    pub award_mci: BTreeMap<Award, Rate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisabledChildParentRule {
    pub subsistence_multiple: Rate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisabilityRule {
    /// Subsistence-minimum multiples by group. Invariant: not empty, never group `child`.
    pub group_subsistence_multiples: BTreeMap<DisabilityGroup, Rate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurvivorRule {
    /// Subsistence-minimum multiple for each living minor child.
    pub subsistence_multiple: Rate,
    /// Months before the month of death in which salary or business income makes an earner.
    pub lookback_months: u32,
    pub minor_age_max: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLossRule {
    /// The share of the average monthly salary paid.
    pub salary_share: Rate,
    /// Full months before the month of the loss whose salary is averaged.
    pub lookback_months: u32,
    /// Months paid, from the month of the loss.
    pub months: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsaRule {
    pub child_supplement_mci: Rate,
    pub child_age_min: u32,
    pub child_age_max: u32,
    /// Members at least this old are adults whose non-mortgage debt refuses TSA.
    pub adult_age_min: u32,
    pub working_age_min: u32,
    pub working_age_max: u32,
    /// The assignment period ("a quarter"): the last month is the month of evaluation plus
    /// `months - 1`.
    pub months: u32,
}

impl Rules {
    /// Reads and validates the catalogue at `path`, with the constants of `year`.
    pub fn load(path: &Path, year: i32) -> Result<Rules, RulesError> {
        Rules::load_with_text(path, year).map(|(rules, _)| rules)
    }

    /// [`Rules::load`], with the text it read.
    pub fn load_with_text(path: &Path, year: i32) -> Result<(Rules, String), RulesError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            file: file.clone(),
            source,
        })?;
        Ok((parse(&text, year, &file)?, text))
    }

    /// Validates a catalogue given as text (errors name the file `catalogue`).
    pub fn from_toml_str(text: &str, year: i32) -> Result<Rules, RulesError> {
        parse(text, year, "catalogue")
    }

    pub fn program(&self, code: &str) -> Option<&ProgramRule> {
        self.programs.iter().find(|program| program.code == code)
    }

    /// The poverty line for a family in `region` (`None`: unknown), and how it was found.
    pub fn poverty_line(&self, region: Option<Region>) -> PovertyLine {
        let poverty = &self.poverty;
        let floor = poverty
            .subsistence_floor_share
            .apply(self.subsistence_minimum);
        let found = match region {
            _ if self.year < poverty.median_rule_from => {
                LineFrom::BeforeMedianRule { year: self.year }
            }
            None => LineFrom::NoRegion,
            Some(region) => {
                let median = self.regions[&region];
                LineFrom::Median {
                    region,
                    median,
                    share: poverty.median_share,
                    from_median: poverty.median_share.apply(median),
                }
            }
        };
        let amount = match found {
            LineFrom::Median { from_median, .. } => from_median.max(floor),
            LineFrom::BeforeMedianRule { .. } | LineFrom::NoRegion => floor,
        };
        PovertyLine {
            amount,
            floor,
            floor_share: poverty.subsistence_floor_share,
            subsistence_minimum: self.subsistence_minimum,
            found,
        }
    }
}

/// A rate as a percentage: `0.35` is `35%`, `0.455` is `45.5%`.
pub fn percent(rate: Rate) -> String {
    let hundredths = rate.ten_thousandths();
    let whole = hundredths / 100;
    let fraction = hundredths % 100;
    if fraction == 0 {
        format!("{whole}%")
    } else {
        let digits = format!("{fraction:02}");
        format!("{whole}.{}%", digits.trim_end_matches('0'))
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

fn parse(text: &str, year: i32, file: &str) -> Result<Rules, RulesError> {
    let table: toml::Table = text.parse().map_err(|error: toml::de::Error| {
        let line = error
            .span()
            .map_or(1, |span| text[..span.start].matches('\n').count() + 1);
        RulesError::Syntax {
            file: file.to_owned(),
            line,
            message: error.message().trim().replace('\n', ": "),
        }
    })?;
    let mut root = Fields {
        file,
        path: String::new(),
        table,
        hint: String::new(),
    };

    let version = root.string("version")?;
    if version.len() > VERSION_LENGTH_MAX
        || version.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(root.invalid(
            "version",
            format!("must be 1-{VERSION_LENGTH_MAX} characters without spaces"),
        ));
    }
    let (mci, subsistence_minimum) = parse_years(root.table_of("years")?, year)?;
    let poverty = parse_poverty(root.table_of("poverty")?)?;
    let regions = parse_regions(root.table_of("regions")?)?;
    let scoring = parse_scoring(root.table_of("scoring")?)?;
    let programs = parse_programs(&mut root)?;
    root.finish()?;

    Ok(Rules {
        version,
        year,
        mci,
        subsistence_minimum,
        poverty,
        regions,
        scoring,
        programs,
    })
}

fn parse_years(mut years: Fields<'_>, year: i32) -> Result<(Money, Money), RulesError> {
    let mut chosen = None;
    let keys: Vec<String> = years.table.keys().cloned().collect();
    for key in keys {
        let parsed_year: Option<i32> = key.parse().ok().filter(|y| (1900..=9999).contains(y));
        let Some(parsed_year) = parsed_year else {
            return Err(years.invalid(&key, "not a year".to_owned()));
        };
        let mut constants = years.table_of(&key)?;
        let mci = constants.money("mci")?;
        let subsistence_minimum = constants.money("subsistence_minimum")?;
        constants.finish()?;
        if parsed_year == year {
            chosen = Some((mci, subsistence_minimum));
        }
    }
    chosen.ok_or_else(|| RulesError::UnknownYear {
        file: years.file.to_owned(),
        year,
    })
}

fn parse_poverty(mut poverty: Fields<'_>) -> Result<PovertyRules, RulesError> {
    let median_share = poverty.share("median_share")?;
    let subsistence_floor_share = poverty.share("subsistence_floor_share")?;
    let median_rule_from = poverty.integer("median_rule_from", 1900..=9999)?;
    let income_months = poverty.months("income_months")?;
    poverty.finish()?;
    Ok(PovertyRules {
        median_share,
        subsistence_floor_share,
        median_rule_from: i32::try_from(median_rule_from).expect("at most 9999"),
        income_months,
    })
}

fn parse_regions(mut regions: Fields<'_>) -> Result<BTreeMap<Region, Money>, RulesError> {
    let mut medians = BTreeMap::new();
    let keys: Vec<String> = regions.table.keys().cloned().collect();
    for key in keys {
        let region =
            Region::parse(&key).map_err(|error| regions.invalid(&key, error.to_string()))?;
        medians.insert(region, regions.money(&key)?);
    }
    if let Some(missing) = Region::ALL
        .into_iter()
        .find(|region| !medians.contains_key(region))
    {
        return Err(regions.invalid(
            missing.code(),
            format!("missing from the median-income table ({})", missing.name()),
        ));
    }
    regions.finish()?;
    Ok(medians)
}

fn parse_scoring(mut scoring: Fields<'_>) -> Result<ScoringRules, RulesError> {
    let mut weights = scoring.table_of("criteria")?;
    let mut criteria = BTreeMap::new();
    for criterion in Criterion::ALL {
        let weight = weights.rate(criterion.as_str())?;
        if weight == Rate::ZERO || weight > Rate::ONE {
            return Err(weights.invalid(
                criterion.as_str(),
                format!("weight {weight} is not in (0, 1]"),
            ));
        }
        criteria.insert(criterion, weight);
    }
    weights.finish()?;
    let total: u64 = criteria
        .values()
        .map(|weight| weight.ten_thousandths())
        .sum();
    if total != Rate::ONE.ten_thousandths() {
        return Err(weights.invalid_here(format!(
            "weights add up to {}, must add up to exactly 1",
            Rate::from_ten_thousandths(total)
        )));
    }

    let level_cutoffs = parse_levels(scoring.table_of("levels")?)?;

    let mut indicators = Vec::new();
    for (index, value) in scoring.array_of("indicator")?.into_iter().enumerate() {
        let path = format!("scoring.indicator[{index}]");
        indicators.push(parse_indicator(Fields::from_value(
            scoring.file,
            path,
            value,
        )?)?);
    }
    scoring.finish()?;
    let denominator = assign_weights(&criteria, &mut indicators, scoring.file)?;

    Ok(ScoringRules {
        criteria,
        level_cutoffs,
        indicators,
        denominator,
    })
}

fn parse_levels(mut levels: Fields<'_>) -> Result<[(Level, Rate); 4], RulesError> {
    let cutoffs = [Level::B, Level::C, Level::D, Level::E]
        .map(|level| levels.rate(level.as_str()).map(|cutoff| (level, cutoff)));
    let [b, c, d, e] = cutoffs;
    let cutoffs = [b?, c?, d?, e?];
    levels.finish()?;
    if cutoffs[0].1 == Rate::ZERO {
        return Err(levels.invalid("B", "must be above 0 (A begins at 0)".to_owned()));
    }
    if cutoffs.windows(2).any(|pair| pair[0].1 >= pair[1].1) {
        return Err(levels.invalid_here("cut-offs must increase (B < C < D < E)".to_owned()));
    }
    if cutoffs[3].1 > Rate::ONE {
        return Err(levels.invalid("E", "must be at most 1".to_owned()));
    }
    Ok(cutoffs)
}

fn parse_indicator(mut fields: Fields<'_>) -> Result<IndicatorRule, RulesError> {
    let code = fields.code()?;
    fields.path = format!("{} ({code})", fields.path);
    let criterion = fields.parsed::<Criterion>("criterion")?;
    let test_name = fields.string("test")?;
    fields.hint = format!(" for test {test_name}");
    let test = match test_name.as_str() {
        "income_below_poverty_line" => IndicatorTest::IncomeBelowPovertyLine,
        "no_working_age_employed" => {
            let (age_min, age_max) = fields.age_range("age_min", "age_max")?;
            IndicatorTest::NoWorkingAgeEmployed { age_min, age_max }
        }
        "non_mortgage_debt" => IndicatorTest::NonMortgageDebt,
        "uninsured" => IndicatorTest::Uninsured,
        "disability_group" => IndicatorTest::DisabilityGroup {
            groups: fields.set("groups")?,
        },
        "child_disability" => IndicatorTest::ChildDisability {
            age_max: fields.age("age_max")?,
        },
        "tenure" => IndicatorTest::Tenure {
            tenures: fields.set("tenures")?,
        },
        "area_per_person_below" => {
            let area_per_person_m2 = fields.rate("area_per_person_m2")?;
            if area_per_person_m2 == Rate::ZERO || area_per_person_m2 > MULTIPLE_MAX {
                return Err(fields.invalid("area_per_person_m2", "must be in (0, 1000]".to_owned()));
            }
            IndicatorTest::AreaPerPersonBelow { area_per_person_m2 }
        }
        "missing_utilities" => IndicatorTest::MissingUtilities {
            utilities: fields.set("utilities")?,
        },
        "single_parent" => IndicatorTest::SingleParent {
            age_max: fields.age("age_max")?,
        },
        "lone_pensioner" => IndicatorTest::LonePensioner {
            pension_age_male: fields.age("pension_age_male")?,
            pension_age_female: fields.age("pension_age_female")?,
        },
        "dependants_exceed_earners" => IndicatorTest::DependantsExceedEarners,
        "not_enrolled" => {
            let (age_min, age_max) = fields.age_range("age_min", "age_max")?;
            IndicatorTest::NotEnrolled {
                age_min,
                age_max,
                enrollments: fields.set("enrollments")?,
            }
        }
        "no_adult_attainment" => IndicatorTest::NoAdultAttainment {
            age_min: fields.age("age_min")?,
            attainments: fields.set("attainments")?,
        },
        other => return Err(fields.invalid("test", format!("unknown test {other:?}"))),
    };
    fields.finish()?;
    Ok(IndicatorRule {
        code,
        criterion,
        weight: Fraction::ZERO,
        test,
    })
}

/// Checks the indicators as a whole and gives each its weight: the criterion's weight split
/// evenly over the criterion's indicators, all over one common denominator. Returns it.
fn assign_weights(
    criteria: &BTreeMap<Criterion, Rate>,
    indicators: &mut [IndicatorRule],
    file: &str,
) -> Result<u32, RulesError> {
    let invalid = |key: String, problem: String| RulesError::Invalid {
        file: file.to_owned(),
        key,
        problem,
    };
    let mut seen = BTreeSet::new();
    for (index, indicator) in indicators.iter().enumerate() {
        if !seen.insert(indicator.code.as_str()) {
            return Err(invalid(
                format!("scoring.indicator[{index}] ({})", indicator.code),
                "duplicate indicator code".to_owned(),
            ));
        }
    }
    // (numerator, denominator) of one indicator's weight, per criterion, in lowest terms.
    let mut per_indicator = BTreeMap::new();
    for (&criterion, weight) in criteria {
        let count = indicators
            .iter()
            .filter(|indicator| indicator.criterion == criterion)
            .count();
        if count == 0 {
            return Err(invalid(
                "scoring.indicator".to_owned(),
                format!("criterion {} has no indicator", criterion.as_str()),
            ));
        }
        if count > INDICATORS_PER_CRITERION_MAX {
            return Err(invalid(
                "scoring.indicator".to_owned(),
                format!(
                    "criterion {} has {count} indicators, at most {INDICATORS_PER_CRITERION_MAX}",
                    criterion.as_str()
                ),
            ));
        }
        let count = u64::try_from(count).expect("at most 20");
        let numerator = weight.ten_thousandths();
        let denominator = Rate::ONE.ten_thousandths() * count;
        let divisor = greatest_common_divisor(numerator, denominator);
        per_indicator.insert(criterion, (numerator / divisor, denominator / divisor));
    }
    let common = per_indicator
        .values()
        .try_fold(1u64, |common, &(_, denominator)| {
            least_common_multiple(common, denominator)
        })
        .and_then(|common| u32::try_from(common).ok())
        .ok_or_else(|| {
            invalid(
                "scoring.criteria".to_owned(),
                "the weights need a common denominator above 4294967295; use simpler weights"
                    .to_owned(),
            )
        })?;
    for indicator in indicators.iter_mut() {
        let (numerator, denominator) = per_indicator[&indicator.criterion];
        let numerator = numerator * (u64::from(common) / denominator);
        indicator.weight = Fraction {
            numerator: u32::try_from(numerator)
                .expect("a weight is at most 1, so below the denominator"),
            denominator: common,
        };
    }
    Ok(common)
}

fn greatest_common_divisor(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn least_common_multiple(a: u64, b: u64) -> Option<u64> {
    (a / greatest_common_divisor(a, b)).checked_mul(b)
}

fn parse_programs(root: &mut Fields<'_>) -> Result<Vec<ProgramRule>, RulesError> {
    let values = root.array_of("program")?;
    if values.is_empty() {
        return Err(root.invalid("program", "the catalogue holds no program".to_owned()));
    }
    if values.len() > PROGRAMS_MAX {
        return Err(root.invalid(
            "program",
            format!("{} programs, at most {PROGRAMS_MAX}", values.len()),
        ));
    }
    let mut programs: Vec<ProgramRule> = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        let fields = Fields::from_value(root.file, format!("program[{index}]"), value)?;
        let program = parse_program(fields)?;
        if programs.iter().any(|earlier| earlier.code == program.code) {
            return Err(root.invalid(
                &format!("program[{index}] ({})", program.code),
                "duplicate program code".to_owned(),
            ));
        }
        programs.push(program);
    }
    Ok(programs)
}

fn parse_program(mut fields: Fields<'_>) -> Result<ProgramRule, RulesError> {
    let code = fields.code()?;
    fields.path = format!("{} ({code})", fields.path);
    let kind_name = fields.string("kind")?;
    let kind = ProgramKind::parse(&kind_name).ok_or_else(|| {
        let known: Vec<&str> = ProgramKind::ALL.iter().map(|kind| kind.as_str()).collect();
        fields.invalid(
            "kind",
            format!(
                "unknown program kind {kind_name:?}, expected one of {}",
                known.join(", ")
            ),
        )
    })?;
    fields.hint = format!(" for kind {kind}");
    let name_en = fields.string("name_en")?;
    let name_ru = fields.string("name_ru")?;
    let name_kk = fields.string("name_kk")?;

    let one_off = fields.optional_bool("one_off")?.unwrap_or(false);
    match (kind, one_off) {
        (ProgramKind::Birth, false) => {
            return Err(fields.invalid(
                "one_off",
                "kind birth is one-off: set one_off = true".to_owned(),
            ));
        }
        (ProgramKind::Birth, true) | (_, false) => {}
        (_, true) => return Err(fields.invalid("one_off", format!("kind {kind} is monthly"))),
    }

    let params = match kind {
        ProgramKind::Birth => ProgramParams::Birth(BirthRule {
            amounts_mci: fields.multiples("amounts_mci")?,
            window_months: fields.months("window_months")?,
        }),
        ProgramKind::Childcare => ProgramParams::Childcare(ChildcareRule {
            amounts_mci: fields.multiples("amounts_mci")?,
            age_limit_months: fields.months("age_limit_months")?,
        }),
        ProgramKind::LargeFamily => {
            let min_children = fields.integer("min_children", 1..=100)?;
            let minor_age_max = fields.age("minor_age_max")?;
            let student_age_max = fields.age("student_age_max")?;
            if student_age_max < minor_age_max {
                return Err(fields.invalid(
                    "student_age_max",
                    "must not be below minor_age_max".to_owned(),
                ));
            }
            ProgramParams::LargeFamily(LargeFamilyRule {
                min_children,
                minor_age_max,
                student_age_max,
                amounts_mci: fields.multiples("amounts_mci")?,
                per_child_mci: fields.multiple("per_child_mci")?,
            })
        }
        ProgramKind::Award => {
            let award_mci = fields.multiple_table::<Award>("award_mci")?;
            ProgramParams::Award(AwardRule { award_mci })
        }
        ProgramKind::DisabledChildParent => {
            ProgramParams::DisabledChildParent(DisabledChildParentRule {
                subsistence_multiple: fields.multiple("subsistence_multiple")?,
            })
        }
        ProgramKind::Disability => {
            let key = "group_subsistence_multiples";
            let group_subsistence_multiples = fields.multiple_table::<DisabilityGroup>(key)?;
            if group_subsistence_multiples.contains_key(&DisabilityGroup::Child) {
                return Err(fields.invalid(
                    key,
                    "group child belongs to kind disabled_child_parent, not disability".to_owned(),
                ));
            }
            ProgramParams::Disability(DisabilityRule {
                group_subsistence_multiples,
            })
        }
        ProgramKind::Survivor => ProgramParams::Survivor(SurvivorRule {
            subsistence_multiple: fields.multiple("subsistence_multiple")?,
            lookback_months: fields.months("lookback_months")?,
            minor_age_max: fields.age("minor_age_max")?,
        }),
        ProgramKind::JobLoss => ProgramParams::JobLoss(JobLossRule {
            salary_share: fields.share("salary_share")?,
            lookback_months: fields.months("lookback_months")?,
            months: fields.months("months")?,
        }),
        ProgramKind::Tsa => {
            let child_supplement_mci = fields.multiple("child_supplement_mci")?;
            let (child_age_min, child_age_max) =
                fields.age_range("child_age_min", "child_age_max")?;
            let adult_age_min = fields.age("adult_age_min")?;
            let (working_age_min, working_age_max) =
                fields.age_range("working_age_min", "working_age_max")?;
            ProgramParams::Tsa(TsaRule {
                child_supplement_mci,
                child_age_min,
                child_age_max,
                adult_age_min,
                working_age_min,
                working_age_max,
                months: fields.months("months")?,
            })
        }
    };
    fields.finish()?;
    Ok(ProgramRule {
        code,
        name_en,
        name_ru,
        name_kk,
        params,
    })
}

/// One TOML table being read: each reader takes its key out, and [`Fields::finish`] refuses
/// whatever is left, which is how unknown keys are refused everywhere.
struct Fields<'a> {
    file: &'a str,
    /// The key path of this table, `program[3] (large_family)`; empty at the root.
    path: String,
    table: toml::Table,
    /// Said after "unknown key" (` for kind tsa`), so a key of another kind is recognisable.
    hint: String,
}

impl<'a> Fields<'a> {
    fn from_value(
        file: &'a str,
        path: String,
        value: toml::Value,
    ) -> Result<Fields<'a>, RulesError> {
        match value {
            toml::Value::Table(table) => Ok(Fields {
                file,
                path,
                table,
                hint: String::new(),
            }),
            other => Err(RulesError::Invalid {
                file: file.to_owned(),
                key: path,
                problem: format!("expected a table, found {}", other.type_str()),
            }),
        }
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn invalid(&self, key: &str, problem: String) -> RulesError {
        RulesError::Invalid {
            file: self.file.to_owned(),
            key: self.key_path(key),
            problem,
        }
    }

    /// A problem with this table as a whole.
    fn invalid_here(&self, problem: String) -> RulesError {
        RulesError::Invalid {
            file: self.file.to_owned(),
            key: self.path.clone(),
            problem,
        }
    }

    fn required(&mut self, key: &str) -> Result<toml::Value, RulesError> {
        self.table
            .remove(key)
            .ok_or_else(|| self.invalid(key, "missing key".to_owned()))
    }

    fn table_of(&mut self, key: &str) -> Result<Fields<'a>, RulesError> {
        let value = self.required(key)?;
        Fields::from_value(self.file, self.key_path(key), value)
    }

    fn array_of(&mut self, key: &str) -> Result<Vec<toml::Value>, RulesError> {
        match self.required(key)? {
            toml::Value::Array(items) => Ok(items),
            other => Err(self.invalid(
                key,
                format!("expected an array of tables, found {}", other.type_str()),
            )),
        }
    }

    fn string(&mut self, key: &str) -> Result<String, RulesError> {
        match self.required(key)? {
            toml::Value::String(text) if !text.trim().is_empty() => Ok(text),
            toml::Value::String(_) => Err(self.invalid(key, "must not be empty".to_owned())),
            other => Err(self.invalid(
                key,
                format!("expected a string, found {}", other.type_str()),
            )),
        }
    }

    /// A program or indicator code.
    fn code(&mut self) -> Result<String, RulesError> {
        let code = self.string("code")?;
        let mut characters = code.chars();
        let well_formed = characters
            .next()
            .is_some_and(|first| first.is_ascii_lowercase())
            && characters.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !well_formed || code.len() > CODE_LENGTH_MAX {
            return Err(self.invalid(
                "code",
                format!("{code:?} must match ^[a-z][a-z0-9_]*$ and have at most {CODE_LENGTH_MAX} characters"),
            ));
        }
        Ok(code)
    }

    /// A string naming a value of a catalogue enum (criterion, award, group, …).
    fn parsed<T: DeserializeOwned>(&mut self, key: &str) -> Result<T, RulesError> {
        let value = self.required(key)?;
        value
            .try_into()
            .map_err(|error: toml::de::Error| self.invalid(key, error.message().to_owned()))
    }

    fn set<T: DeserializeOwned + Ord>(&mut self, key: &str) -> Result<BTreeSet<T>, RulesError> {
        let items: Vec<T> = self.parsed(key)?;
        if items.is_empty() {
            return Err(self.invalid(key, "expected at least 1 entry".to_owned()));
        }
        Ok(items.into_iter().collect())
    }

    fn optional_bool(&mut self, key: &str) -> Result<Option<bool>, RulesError> {
        match self.table.remove(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(flag)) => Ok(Some(flag)),
            Some(other) => Err(self.invalid(
                key,
                format!("expected true or false, found {}", other.type_str()),
            )),
        }
    }

    fn integer(&mut self, key: &str, range: RangeInclusive<u32>) -> Result<u32, RulesError> {
        match self.required(key)? {
            toml::Value::Integer(number) => u32::try_from(number)
                .ok()
                .filter(|number| range.contains(number))
                .ok_or_else(|| {
                    self.invalid(
                        key,
                        format!("{number} is not in {}..={}", range.start(), range.end()),
                    )
                }),
            other => Err(self.invalid(
                key,
                format!("expected an integer, found {}", other.type_str()),
            )),
        }
    }

    fn age(&mut self, key: &str) -> Result<u32, RulesError> {
        self.integer(key, AGE_RANGE)
    }

    fn age_range(&mut self, min_key: &str, max_key: &str) -> Result<(u32, u32), RulesError> {
        let min = self.age(min_key)?;
        let max = self.age(max_key)?;
        if max < min {
            return Err(self.invalid(max_key, format!("{max} is below {min_key} {min}")));
        }
        Ok((min, max))
    }

    fn months(&mut self, key: &str) -> Result<u32, RulesError> {
        self.integer(key, MONTHS_RANGE)
    }

    /// A decimal string: money and rates are never TOML numbers, which would be floats.
    fn decimal(&mut self, key: &str) -> Result<String, RulesError> {
        match self.required(key)? {
            toml::Value::String(text) => Ok(text),
            toml::Value::Integer(number) => Err(self.invalid(
                key,
                format!("write decimals as strings: \"{number}\", not {number}"),
            )),
            toml::Value::Float(number) => Err(self.invalid(
                key,
                format!("write decimals as strings: \"{number}\", not {number}"),
            )),
            other => Err(self.invalid(
                key,
                format!("expected a decimal string, found {}", other.type_str()),
            )),
        }
    }

    fn money(&mut self, key: &str) -> Result<Money, RulesError> {
        let text = self.decimal(key)?;
        let amount = Money::parse(&text).map_err(|error| self.invalid(key, error.to_string()))?;
        if amount == Money::ZERO || amount > Money::from_kzt(CONSTANT_KZT_MAX) {
            return Err(self.invalid(key, format!("{amount} is not in (0, {CONSTANT_KZT_MAX}]")));
        }
        Ok(amount)
    }

    fn rate(&mut self, key: &str) -> Result<Rate, RulesError> {
        let text = self.decimal(key)?;
        Rate::parse(&text).map_err(|error| self.invalid(key, error.to_string()))
    }

    /// A share of something: in (0, 1].
    fn share(&mut self, key: &str) -> Result<Rate, RulesError> {
        let share = self.rate(key)?;
        if share == Rate::ZERO || share > Rate::ONE {
            return Err(self.invalid(key, format!("{share} is not in (0, 1]")));
        }
        Ok(share)
    }

    /// A multiple of the MCI or of the subsistence minimum: in (0, 1000].
    fn multiple(&mut self, key: &str) -> Result<Rate, RulesError> {
        let multiple = self.rate(key)?;
        check_multiple(multiple).map_err(|problem| self.invalid(key, problem))
    }

    fn multiples(&mut self, key: &str) -> Result<Vec<Rate>, RulesError> {
        let items = match self.required(key)? {
            toml::Value::Array(items) => items,
            other => {
                return Err(self.invalid(
                    key,
                    format!("expected an array, found {}", other.type_str()),
                ))
            }
        };
        if items.is_empty() {
            return Err(self.invalid(key, "expected at least 1 entry".to_owned()));
        }
        let mut multiples = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            let toml::Value::String(text) = item else {
                return Err(
                    self.invalid(&item_key, "write decimals as strings, \"5.76\"".to_owned())
                );
            };
            let multiple =
                Rate::parse(&text).map_err(|error| self.invalid(&item_key, error.to_string()))?;
            multiples.push(
                check_multiple(multiple).map_err(|problem| self.invalid(&item_key, problem))?,
            );
        }
        Ok(multiples)
    }

    fn multiple_table<K: DeserializeOwned + Ord>(
        &mut self,
        key: &str,
    ) -> Result<BTreeMap<K, Rate>, RulesError> {
        let mut entries = self.table_of(key)?;
        let mut multiples = BTreeMap::new();
        let names: Vec<String> = entries.table.keys().cloned().collect();
        for name in names {
            let parsed: K = toml::Value::String(name.clone()).try_into().map_err(
                |error: toml::de::Error| entries.invalid(&name, error.message().to_owned()),
            )?;
            multiples.insert(parsed, entries.multiple(&name)?);
        }
        entries.finish()?;
        if multiples.is_empty() {
            return Err(self.invalid(key, "expected at least 1 entry".to_owned()));
        }
        Ok(multiples)
    }

    fn finish(&self) -> Result<(), RulesError> {
        match self.table.keys().next() {
            None => Ok(()),
            Some(key) => Err(self.invalid(key, format!("unknown key{}", self.hint))),
        }
    }
}

fn check_multiple(multiple: Rate) -> Result<Rate, String> {
    if multiple == Rate::ZERO || multiple > MULTIPLE_MAX {
        Err(format!("{multiple} is not in (0, {MULTIPLE_MAX}]"))
    } else {
        Ok(multiple)
    }
}

/// How many parsed catalogues [`ParsedCatalogues`] keeps.
pub const PARSED_CATALOGUES_KEPT: usize = 4;

/// Catalogues parsed from their text, the last few kept. A family's reasons
/// are written again under the catalogue that decided it, which after a
/// reload is an older one for every family the reload did not change, and
/// parsing a catalogue costs more than reading the family. Keyed by year and
/// text: a text that replaced another under the same version is parsed anew.
#[derive(Default)]
pub struct ParsedCatalogues {
    kept: std::sync::Mutex<std::collections::VecDeque<(i32, String, std::sync::Arc<Rules>)>>,
}

impl ParsedCatalogues {
    /// [`Rules::from_toml_str`], parsed once while it is among the last
    /// [`PARSED_CATALOGUES_KEPT`] parsed (a text that fails is not kept).
    pub fn parse(&self, text: &str, year: i32) -> Result<std::sync::Arc<Rules>, RulesError> {
        let kept = |kept: &std::collections::VecDeque<(i32, String, std::sync::Arc<Rules>)>| {
            kept.iter()
                .find(|(kept_year, kept_text, _)| *kept_year == year && kept_text == text)
                .map(|(_, _, rules)| rules.clone())
        };
        if let Some(rules) = kept(&self.kept.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(rules);
        }
        let rules = std::sync::Arc::new(Rules::from_toml_str(text, year)?);
        let mut all = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(parsed_meanwhile) = kept(&all) {
            return Ok(parsed_meanwhile);
        }
        if all.len() == PARSED_CATALOGUES_KEPT {
            all.pop_front();
        }
        all.push_back((year, text.to_owned(), rules.clone()));
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalogue_is_parsed_once_while_it_is_kept() {
        let catalogues = ParsedCatalogues::default();
        let text = shipped_text();
        let first = catalogues.parse(&text, 2026).unwrap();
        assert!(std::sync::Arc::ptr_eq(
            &first,
            &catalogues.parse(&text, 2026).unwrap()
        ));
        // Another year or text is another catalogue.
        let other_year = catalogues.parse(&text, 2025).unwrap();
        assert!(!std::sync::Arc::ptr_eq(&first, &other_year));
        assert_eq!(other_year.year, 2025);
        let renamed = text.replacen("version = \"", "version = \"x", 1);
        assert_ne!(renamed, text);
        let other_text = catalogues.parse(&renamed, 2026).unwrap();
        assert_ne!(other_text.version, first.version);
        // A text that fails is an error each time, and is not kept.
        assert!(catalogues.parse("nonsense = [", 2026).is_err());
        // Past the limit, the first parsed goes.
        for version in 0..PARSED_CATALOGUES_KEPT {
            let text = text.replacen("version = \"", &format!("version = \"{version}"), 1);
            catalogues.parse(&text, 2026).unwrap();
        }
        assert!(!std::sync::Arc::ptr_eq(
            &first,
            &catalogues.parse(&text, 2026).unwrap()
        ));
    }

    /// The shipped catalogue's text.
    fn shipped_text() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/programs.toml");
        std::fs::read_to_string(path).expect("config/programs.toml is readable")
    }

    #[test]
    fn shipped_catalogue_loads_with_the_contract_codes() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/programs.toml");
        let rules = Rules::load(&path, 2026).expect("the shipped catalogue loads");
        let codes: Vec<&str> = rules
            .programs
            .iter()
            .map(|program| program.code.as_str())
            .collect();
        assert_eq!(
            codes,
            [
                "birth_allowance",
                "childcare_allowance",
                "large_family",
                "awarded_mother",
                "disabled_child_parent",
                "disability",
                "survivor",
                "job_loss",
                "tsa"
            ]
        );
        let kinds: Vec<ProgramKind> = rules.programs.iter().map(ProgramRule::kind).collect();
        assert_eq!(kinds, ProgramKind::ALL);
        assert_eq!(rules.version, "2026.1");
        assert_eq!(rules.regions.len(), 20);
        assert_eq!(rules.scoring.indicators.len(), 15);
        assert_eq!(rules.scoring.denominator, 15);
        assert!(rules
            .scoring
            .indicators
            .iter()
            .all(|indicator| indicator.weight
                == Fraction {
                    numerator: 1,
                    denominator: 15
                }));
        assert!(rules.program("birth_allowance").unwrap().one_off());
        assert_eq!(rules.program("job_loss").unwrap().months(), Some(6));
        assert_eq!(rules.program("tsa").unwrap().months(), Some(3));
    }

    #[test]
    fn yearly_constants_are_the_law() {
        fn check(year: i32, mci: &str, subsistence_minimum: &str) {
            let rules = Rules::from_toml_str(&shipped_text(), year).unwrap();
            assert_eq!(rules.mci, Money::parse(mci).unwrap(), "MCI {year}");
            assert_eq!(
                rules.subsistence_minimum,
                Money::parse(subsistence_minimum).unwrap(),
                "SM {year}"
            );
        }
        check(2023, "3450", "40567");
        check(2024, "3692", "43407");
        check(2025, "3932", "46228");
        check(2026, "4325", "50851");
    }

    #[test]
    fn poverty_lines() {
        fn check(year: i32, region: Option<Region>, amount: &str, basis_contains: &str) {
            let rules = Rules::from_toml_str(&shipped_text(), year).unwrap();
            let line = rules.poverty_line(region);
            assert_eq!(line.amount.to_string(), amount, "{year} {region:?}");
            assert!(
                line.basis().contains(basis_contains),
                "{:?} lacks {basis_contains:?}",
                line.basis()
            );
        }
        // 35% × 150000 = 52500 > 70% × 50851 = 35595.70.
        check(
            2026,
            Some(Region::Karaganda),
            "52500.00",
            "35% of the regional median 150000.00 KZT in KZ-35",
        );
        // 35% × 90000 = 31500 < 35595.70: the floor.
        check(
            2026,
            Some(Region::Turkistan),
            "35595.70",
            "as 35% of the regional median 90000.00 KZT",
        );
        check(2026, None, "35595.70", "region is unknown");
        // 2024: before the median rule, 70% × 43407 = 30384.90.
        check(
            2024,
            Some(Region::Astana),
            "30384.90",
            "in 2024 the regional median does not apply",
        );
    }

    #[test]
    fn level_cut_offs_are_exact() {
        let rules = Rules::from_toml_str(&shipped_text(), 2026).unwrap();
        let check = |numerator: u32, denominator: u32, expected: Level| {
            let level = rules.scoring.level_of(Fraction {
                numerator,
                denominator,
            });
            assert_eq!(level, expected, "{numerator}/{denominator}");
        };
        check(0, 15, Level::A);
        check(999, 10_000, Level::A);
        check(1, 10, Level::B);
        check(1_999, 10_000, Level::B);
        check(2, 10, Level::C);
        check(3, 15, Level::C);
        check(3_299, 10_000, Level::C);
        check(33, 100, Level::D);
        check(5, 15, Level::D);
        check(4_999, 10_000, Level::D);
        check(1, 2, Level::E);
        check(15, 15, Level::E);
    }

    #[test]
    fn percentages() {
        let check =
            |rate: &str, expected: &str| assert_eq!(percent(Rate::parse(rate).unwrap()), expected);
        check("0.35", "35%");
        check("0.7", "70%");
        check("0.455", "45.5%");
        check("0.0035", "0.35%");
        check("1", "100%");
    }

    /// Replaces `from` (which must occur in the shipped catalogue) by `to` and expects the
    /// load to fail with exactly `expected`.
    fn check_error(from: &str, to: &str, year: i32, expected: &str) {
        let text = shipped_text();
        assert!(text.contains(from), "the catalogue has no {from:?}");
        let error = Rules::from_toml_str(&text.replacen(from, to, 1), year).unwrap_err();
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn bad_catalogues_name_the_key() {
        check_error(
            "version = \"2026.1\"",
            "",
            2026,
            "catalogue: version: missing key",
        );
        check_error(
            "version = \"2026.1\"",
            "version = \"2026 1\"",
            2026,
            "catalogue: version: must be 1-32 characters without spaces",
        );
        check_error(
            "[years.2026]",
            "[years.2027]",
            2026,
            "catalogue: year 2026 not in [years]",
        );
        check_error(
            "[years.2023]",
            "[years.20x3]",
            2026,
            "catalogue: years.20x3: not a year",
        );
        check_error(
            "mci = \"4325\"",
            "mci = 4325",
            2026,
            "catalogue: years.2026.mci: write decimals as strings: \"4325\", not 4325",
        );
        check_error(
            "mci = \"4325\"",
            "mci = \"4325.001\"",
            2026,
            "catalogue: years.2026.mci: amount has 3 decimals, at most 2 allowed",
        );
        check_error(
            "mci = \"4325\"",
            "mci = \"4325\"\nmcii = \"1\"",
            2026,
            "catalogue: years.2026.mcii: unknown key",
        );
        check_error(
            "median_share = \"0.35\"",
            "median_share = \"1.35\"",
            2026,
            "catalogue: poverty.median_share: 1.35 is not in (0, 1]",
        );
        check_error(
            "income_months = 3",
            "income_months = 0",
            2026,
            "catalogue: poverty.income_months: 0 is not in 1..=120",
        );
        check_error(
            "\"KZ-62\" = \"160000\"   # Ulytau Region\n",
            "",
            2026,
            "catalogue: regions.KZ-62: missing from the median-income table (Ulytau Region)",
        );
        check_error(
            "\"KZ-62\" = \"160000\"",
            "\"KZ-62\" = \"160000\"\n\"KZ-99\" = \"1\"",
            2026,
            "catalogue: regions.KZ-99: unknown region code KZ-99",
        );
        check_error(
            "economic = \"0.2\"",
            "economic = \"0.3\"",
            2026,
            "catalogue: scoring.criteria: weights add up to 1.1, must add up to exactly 1",
        );
        check_error(
            "economic = \"0.2\"",
            "economic = \"0\"",
            2026,
            "catalogue: scoring.criteria.economic: weight 0 is not in (0, 1]",
        );
        check_error(
            "C = \"0.20\"",
            "C = \"0.05\"",
            2026,
            "catalogue: scoring.levels: cut-offs must increase (B < C < D < E)",
        );
        check_error(
            "E = \"0.50\"",
            "E = \"1.5\"",
            2026,
            "catalogue: scoring.levels.E: must be at most 1",
        );
        check_error(
            "B = \"0.10\"",
            "B = \"0\"",
            2026,
            "catalogue: scoring.levels.B: must be above 0 (A begins at 0)",
        );
        check_error("area_per_person_m2 = \"15\"", "area_per_person_m2 = \"15\"\nage_max = 3", 2026,
            "catalogue: scoring.indicator[7] (overcrowding).age_max: unknown key for test area_per_person_below");
        check_error(
            "test = \"uninsured\"",
            "test = \"insured\"",
            2026,
            "catalogue: scoring.indicator[3] (uninsured_member).test: unknown test \"insured\"",
        );
        check_error(
            "code = \"overcrowding\"",
            "code = \"missing_utilities\"",
            2026,
            "catalogue: scoring.indicator[8] (missing_utilities): duplicate indicator code",
        );
        check_error("criterion = \"health\"\ntest = \"uninsured\"", "criterion = \"wealth\"\ntest = \"uninsured\"", 2026,
            "catalogue: scoring.indicator[3] (uninsured_member).criterion: unknown variant `wealth`, expected one of `economic`, `health`, `housing`, `social`, `education`");
        check_error("groups = [\"1\", \"2\"]", "groups = [\"1\", \"4\"]", 2026,
            "catalogue: scoring.indicator[4] (severe_disability).groups: unknown variant `4`, expected one of `1`, `2`, `3`, `child`");
        check_error(
            "age_min = 6\nage_max = 17",
            "age_min = 17\nage_max = 6",
            2026,
            "catalogue: scoring.indicator[12] (child_not_in_school).age_max: 6 is below age_min 17",
        );
    }

    #[test]
    fn bad_programs_name_the_key() {
        check_error(
            "amounts_mci = [\"16.03\", \"20.04\", \"24.05\", \"28.06\"]",
            "amounts_mci = []",
            2026,
            "catalogue: program[2] (large_family).amounts_mci: expected at least 1 entry",
        );
        check_error("amounts_mci = [\"16.03\", \"20.04\", \"24.05\", \"28.06\"]",
            "amounts_mci = [\"16.03\", \"20.04\", 24.05, \"28.06\"]", 2026,
            "catalogue: program[2] (large_family).amounts_mci[2]: write decimals as strings, \"5.76\"");
        check_error("kind = \"tsa\"", "kind = \"charity\"", 2026,
            "catalogue: program[8] (tsa).kind: unknown program kind \"charity\", expected one of birth, childcare, large_family, award, disabled_child_parent, disability, survivor, job_loss, tsa");
        check_error(
            "code = \"job_loss\"",
            "code = \"survivor\"",
            2026,
            "catalogue: program[7] (survivor): duplicate program code",
        );
        check_error("code = \"job_loss\"", "code = \"Job-Loss\"", 2026,
            "catalogue: program[7].code: \"Job-Loss\" must match ^[a-z][a-z0-9_]*$ and have at most 40 characters");
        check_error("code = \"job_loss\"", "code = \"9job\"", 2026,
            "catalogue: program[7].code: \"9job\" must match ^[a-z][a-z0-9_]*$ and have at most 40 characters");
        check_error(
            "salary_share = \"0.45\"",
            "salary_share = \"0.45\"\nper_child_mci = \"4\"",
            2026,
            "catalogue: program[7] (job_loss).per_child_mci: unknown key for kind job_loss",
        );
        check_error(
            "salary_share = \"0.45\"",
            "",
            2026,
            "catalogue: program[7] (job_loss).salary_share: missing key",
        );
        check_error(
            "salary_share = \"0.45\"",
            "salary_share = \"45\"",
            2026,
            "catalogue: program[7] (job_loss).salary_share: 45 is not in (0, 1]",
        );
        check_error("one_off = true\n", "", 2026,
            "catalogue: program[0] (birth_allowance).one_off: kind birth is one-off: set one_off = true");
        check_error(
            "age_limit_months = 18",
            "age_limit_months = 18\none_off = true",
            2026,
            "catalogue: program[1] (childcare_allowance).one_off: kind childcare is monthly",
        );
        check_error("subsistence_multiple = \"1.61\"", "subsistence_multiple = \"-1.61\"", 2026,
            "catalogue: program[4] (disabled_child_parent).subsistence_multiple: rate must not be negative");
        check_error(
            "per_child_mci = \"4\"",
            "per_child_mci = \"0\"",
            2026,
            "catalogue: program[2] (large_family).per_child_mci: 0 is not in (0, 1000]",
        );
        check_error("kumis_alka = \"6.40\"", "kumis_alka = \"6.40\", silver = \"1\"", 2026,
            "catalogue: program[3] (awarded_mother).award_mci.silver: unknown variant `silver`, expected one of `kumis_alka`, `altyn_alka`, `mother_heroine`");
        check_error("\"3\" = \"0.80\"", "\"3\" = \"0.80\", child = \"1\"", 2026,
            "catalogue: program[5] (disability).group_subsistence_multiples: group child belongs to kind disabled_child_parent, not disability");
        check_error(
            "[[program]]\ncode = \"birth_allowance\"",
            "[program]\ncode = \"birth_allowance\"",
            2026,
            "catalogue: line 251: invalid table header: duplicate key `program` in document root",
        );
    }

    /// Like [`check_error`], for edits that are not one replacement.
    fn check_edited(edit: impl FnOnce(String) -> String, expected: &str) {
        let error = Rules::from_toml_str(&edit(shipped_text()), 2026).unwrap_err();
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn bad_structure_names_the_key() {
        check_edited(
            |text| text + "\nextra = 1\n",
            "catalogue: program[8] (tsa).extra: unknown key for kind tsa",
        );
        check_edited(
            |text| format!("extra = 1\n{text}"),
            "catalogue: extra: unknown key",
        );
        check_edited(
            |text| text.replace("criterion = \"education\"", "criterion = \"social\""),
            "catalogue: scoring.indicator: criterion education has no indicator",
        );
        check_edited(
            |text| text[..text.find("[[program]]").unwrap()].to_owned(),
            "catalogue: program: missing key",
        );
        check_edited(
            |text| text.replacen("[scoring.levels]", "[scoring.levels]\nF = \"0.9\"", 1),
            "catalogue: scoring.levels.F: unknown key",
        );
        check_edited(
            |text| text.replacen("version = \"2026.1\"", "version = 2026", 1),
            "catalogue: version: expected a string, found integer",
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let error = Rules::from_toml_str("version = \"1\"\nyears = [", 2026).unwrap_err();
        assert!(
            matches!(error, RulesError::Syntax { line: 2, .. }),
            "{error}"
        );
        assert!(!error.to_string().contains('\n'), "one line: {error}");
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let error = Rules::load(Path::new("/nonexistent/programs.toml"), 2026).unwrap_err();
        assert!(matches!(error, RulesError::Read { .. }));
        assert!(
            error
                .to_string()
                .starts_with("/nonexistent/programs.toml: cannot read: "),
            "{error}"
        );
    }

    #[test]
    fn weights_need_not_be_equal() {
        // Economic 0.4, the rest 0.15: economic indicators weigh 0.4/3 = 2/15, the others
        // 0.15/3 = 1/20; the common denominator is lcm(15, 20) = 60.
        let text = shipped_text()
            .replacen("economic = \"0.2\"", "economic = \"0.4\"", 1)
            .replacen("health = \"0.2\"", "health = \"0.15\"", 1)
            .replacen("housing = \"0.2\"", "housing = \"0.15\"", 1)
            .replacen("social = \"0.2\"", "social = \"0.15\"", 1)
            .replacen("education = \"0.2\"", "education = \"0.15\"", 1);
        let rules = Rules::from_toml_str(&text, 2026).unwrap();
        assert_eq!(rules.scoring.denominator, 60);
        let weight = |code: &str| {
            rules
                .scoring
                .indicators
                .iter()
                .find(|indicator| indicator.code == code)
                .unwrap()
                .weight
        };
        assert_eq!(
            weight("non_mortgage_debt"),
            Fraction {
                numerator: 8,
                denominator: 60
            }
        );
        assert_eq!(
            weight("overcrowding"),
            Fraction {
                numerator: 3,
                denominator: 60
            }
        );
        let total: u32 = rules
            .scoring
            .indicators
            .iter()
            .map(|indicator| indicator.weight.numerator)
            .sum();
        assert_eq!(total, 60, "the weights add up to exactly 1");
    }
}
