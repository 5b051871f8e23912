//! The compact form of a family's scoring projection: what scoring reads of
//! the family and its current outcome, in about a hundred bytes, for the
//! [`crate::scoring_table::ScoringTable`] that what-ifs and re-scores scan in
//! memory.
//!
//! Written to disk only when a clean stop saves the scoring table, stamped with
//! [`FORMAT`]: a release that changes this form changes that number, and its
//! first start rebuilds the table from the family records.
//!
//! [`Scratch::decode`] reads a family into buffers it keeps from one family to
//! the next, so that scanning millions allocates nothing once it has seen a few
//! shapes of family. Program codes are numbered by a process-wide register
//! ([`code_number`]): catalogues have a handful of codes, so the register stays
//! a few hundred bytes.
//!
//! Layout (integers as LEB128 varints unless said otherwise; counts too):
//! ```text
//! family  = flags:u8 [region:u8] [tenure:u8 area utilities:u8] members member* [outcome]
//! member  = bits:u8 more:u8 iin [birth] [died] [employment] [disability] [education] incomes
//! iin     = the 12 digits as a number; birth only when not the IIN's own date
//! birth, died, until = days from the common era (zigzag)
//! employment = status:u8 previous:u8 (0 none, 1 + status) seconds(zigzag) nanos
//! incomes = length [months (month-step sources:u8 amount-step(zigzag)*)*]   steps from the month before
//!           length: of the rest, in bytes; 0 for none (a scan that needs no incomes steps over them)
//! outcome = level:u8 decisions (flags:u8 [code-number] [award] [more award*])*
//! award   = iin amount [occasion month-number] [last month-number] (presence in flags)
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{OnceLock, RwLock};

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::ids::{FamilyId, Iin, Locality, Month, Region, Sex};
use crate::money::Money;
use crate::projection::{DecisionSummary, Outcome};
use crate::record::{
    Address, Attainment, Award, AwardDecision, CitizenFacts, Disability, DisabilityGroup,
    Education, Employment, EmploymentStatus, Enrollment, FamilyRecord, Housing, IncomeSource,
    Level, Member, Registration, Role, Tenure, Utility,
};

/// The version of this form; see the module docs.
pub const FORMAT: u8 = 2;

/// Why compact bytes cannot be read: they were not made by [`encode`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("compact scoring form: {0}")]
pub struct CompactError(pub(crate) &'static str);

// ----- the enums, by their position in these lists -----

const ROLES: [Role; 5] = [
    Role::Head,
    Role::Spouse,
    Role::Child,
    Role::Parent,
    Role::Other,
];
const SOURCES: [IncomeSource; 5] = [
    IncomeSource::Salary,
    IncomeSource::Business,
    IncomeSource::Pension,
    IncomeSource::Benefit,
    IncomeSource::Other,
];
const STATUSES: [EmploymentStatus; 6] = [
    EmploymentStatus::Employed,
    EmploymentStatus::SelfEmployed,
    EmploymentStatus::Unemployed,
    EmploymentStatus::Student,
    EmploymentStatus::Retired,
    EmploymentStatus::Caregiver,
];
const GROUPS: [DisabilityGroup; 4] = [
    DisabilityGroup::One,
    DisabilityGroup::Two,
    DisabilityGroup::Three,
    DisabilityGroup::Child,
];
const TENURES: [Tenure; 4] = [Tenure::Owned, Tenure::Rented, Tenure::Social, Tenure::None];
const UTILITIES: [Utility; 4] = [
    Utility::Water,
    Utility::Heating,
    Utility::Sewerage,
    Utility::Gas,
];
const ENROLLMENTS: [Enrollment; 5] = [
    Enrollment::None,
    Enrollment::Preschool,
    Enrollment::School,
    Enrollment::College,
    Enrollment::University,
];
const ATTAINMENTS: [Attainment; 5] = [
    Attainment::None,
    Attainment::Primary,
    Attainment::Secondary,
    Attainment::Vocational,
    Attainment::Higher,
];
const AWARDS: [Award; 3] = [Award::KumisAlka, Award::AltynAlka, Award::MotherHeroine];

fn position<T: PartialEq>(list: &[T], value: &T) -> u8 {
    let index = list
        .iter()
        .position(|item| item == value)
        .expect("every variant is in its list");
    index as u8
}

fn nth<T: Copy>(list: &[T], index: u8, what: &'static str) -> Result<T, CompactError> {
    list.get(usize::from(index))
        .copied()
        .ok_or(CompactError(what))
}

fn mask<T: PartialEq>(list: &[T], values: impl IntoIterator<Item = T>) -> u8 {
    values
        .into_iter()
        .fold(0, |mask, value| mask | 1 << position(list, &value))
}

// ----- program codes -----

#[derive(Default)]
struct Codes {
    names: Vec<&'static str>,
    numbers: HashMap<&'static str, u32>,
}

fn codes() -> &'static RwLock<Codes> {
    static CODES: OnceLock<RwLock<Codes>> = OnceLock::new();
    CODES.get_or_init(Default::default)
}

/// The number of a program code in this process's register, given on first
/// sight. Codes come from catalogues: a handful, each registered once.
pub fn code_number(code: &str) -> u32 {
    if let Some(number) = known_code_number(code) {
        return number;
    }
    let mut codes = codes().write().unwrap_or_else(|e| e.into_inner());
    if let Some(number) = codes.numbers.get(code) {
        return *number;
    }
    let name: &'static str = Box::leak(code.to_owned().into_boxed_str());
    let number = u32::try_from(codes.names.len()).expect("fewer than 4 billion program codes");
    codes.names.push(name);
    codes.numbers.insert(name, number);
    number
}

/// The number of a program code if it has one: a code no catalogue nor stored
/// outcome has named has none (and gets none from a what-if that names it).
pub fn known_code_number(code: &str) -> Option<u32> {
    codes()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .numbers
        .get(code)
        .copied()
}

/// The register's codes, in number order: saved with a table, so that another
/// process can read the numbers in it.
pub fn registered_codes() -> Vec<String> {
    let codes = codes().read().unwrap_or_else(|e| e.into_inner());
    codes.names.iter().map(|name| (*name).to_owned()).collect()
}

/// Registers `codes` in order; true when each got the number that is its
/// position, as in the process that saved them: a saved table can then be
/// read as it is (always so in a process that has registered nothing else).
pub fn register_in_order(codes: &[String]) -> bool {
    codes
        .iter()
        .enumerate()
        .all(|(index, code)| usize::try_from(code_number(code)).ok() == Some(index))
}

// ----- writing -----

/// Appends `value` as a LEB128 varint.
pub(crate) fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The varint at the start of `bytes` ([`put`]) and how many bytes it took;
/// `None` when the bytes end first or it is longer than a `u64`.
pub(crate) fn read_number(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (index, byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, index + 1));
        }
    }
    None
}

fn put_signed(out: &mut Vec<u8>, value: i64) {
    put(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_day(out: &mut Vec<u8>, day: NaiveDate) {
    put_signed(out, i64::from(day.num_days_from_ce()));
}

fn month_number(month: Month) -> u64 {
    // Years are 0-9999: never negative.
    u64::from(month.year().unsigned_abs()) * 12 + u64::from(month.month() - 1)
}

fn put_award(out: &mut Vec<u8>, award: &AwardDecision) {
    put(out, award.recipient.number());
    put(out, award.amount.tiyn());
    if let Some(occasion) = award.occasion {
        put(out, month_number(occasion));
    }
    if let Some(last) = award.last_month {
        put(out, month_number(last));
    }
}

fn award_flags(award: &AwardDecision) -> u8 {
    u8::from(award.occasion.is_some())
        | u8::from(award.one_off) << 1
        | u8::from(award.last_month.is_some()) << 2
}

/// Appends the compact form of `record`'s scoring inputs and stored outcome to
/// `out`. Names, phones and accounts are not part of it.
pub fn encode(record: &FamilyRecord, out: &mut Vec<u8>) {
    let outcome = record.evaluation.as_ref();
    let flags = u8::from(record.address.is_some())
        | u8::from(
            record
                .address
                .is_some_and(|a| a.locality == Locality::Urban),
        ) << 1
        | u8::from(record.housing.is_some()) << 2
        | u8::from(record.social_contract) << 3
        | u8::from(outcome.is_some()) << 4;
    out.push(flags);
    if let Some(address) = record.address {
        out.push(position(&Region::ALL, &address.region));
    }
    if let Some(housing) = &record.housing {
        out.push(position(&TENURES, &housing.tenure));
        put(out, u64::from(housing.area_decimetres));
        out.push(mask(&UTILITIES, housing.utilities.iter().copied()));
    }
    put(out, record.members.len() as u64);
    // Each member's incomes are written here first, to know their length.
    let mut incomes = Vec::new();
    for member in &record.members {
        encode_member(member, out, &mut incomes);
    }
    if let Some(evaluation) = outcome {
        out.push(evaluation.level as u8);
        put(out, evaluation.programs.len() as u64);
        // Codes are mostly numbered in catalogue order: a flag says "the
        // number after the last one".
        let mut last_code = None;
        for decision in &evaluation.programs {
            let (award, more_awards) = (decision.award.as_ref(), &decision.more_awards);
            let number = code_number(&decision.code);
            let next = last_code.is_some_and(|last: u32| last.checked_add(1) == Some(number));
            last_code = Some(number);
            out.push(
                u8::from(decision.eligible)
                    | u8::from(award.is_some()) << 1
                    | award.map_or(0, award_flags) << 2
                    | u8::from(!more_awards.is_empty()) << 5
                    | u8::from(next) << 6,
            );
            if !next {
                put(out, u64::from(number));
            }
            if let Some(award) = award {
                put_award(out, award);
            }
            if !more_awards.is_empty() {
                put(out, more_awards.len() as u64);
                for extra in more_awards {
                    out.push(award_flags(extra));
                    put_award(out, extra);
                }
            }
        }
    }
}

fn encode_member(member: &Member, out: &mut Vec<u8>, incomes: &mut Vec<u8>) {
    let facts = &member.facts;
    let registration = facts.registration.as_ref();
    out.push(
        position(&ROLES, &member.role)
            | u8::from(registration.is_some()) << 3
            | u8::from(registration.is_some_and(|r| r.sex == Sex::Male)) << 4
            | u8::from(facts.died_on.is_some()) << 5
            | u8::from(facts.employment.is_some()) << 6
            | u8::from(facts.non_mortgage_debt) << 7,
    );
    let insured = match facts.insured {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    };
    // Registered birth dates are mostly the IIN's own.
    let birth_in_iin = registration.is_some_and(|r| r.birth_date == facts.iin.birth_date());
    out.push(
        insured
            | u8::from(facts.disability.is_some()) << 2
            | u8::from(facts.education.is_some()) << 3
            | mask(&AWARDS, facts.awards.iter().copied()) << 4
            | u8::from(birth_in_iin) << 7,
    );
    put(out, facts.iin.number());
    if let Some(registration) = registration.filter(|_| !birth_in_iin) {
        put_day(out, registration.birth_date);
    }
    if let Some(died) = facts.died_on {
        put_day(out, died);
    }
    if let Some(employment) = facts.employment {
        out.push(position(&STATUSES, &employment.status));
        out.push(
            employment
                .previous
                .map_or(0, |previous| 1 + position(&STATUSES, &previous)),
        );
        put_signed(out, employment.since.timestamp());
        put(out, u64::from(employment.since.timestamp_subsec_nanos()));
    }
    if let Some(disability) = facts.disability {
        out.push(position(&GROUPS, &disability.group) | u8::from(disability.until.is_some()) << 4);
        if let Some(until) = disability.until {
            put_day(out, until);
        }
    }
    if let Some(education) = facts.education {
        out.push(
            position(&ENROLLMENTS, &education.enrolled)
                | position(&ATTAINMENTS, &education.attainment) << 4,
        );
    }
    incomes.clear();
    encode_incomes(&facts.incomes, incomes);
    put(out, incomes.len() as u64);
    out.extend_from_slice(incomes);
}

/// A member's incomes, nothing for none: months after the first as the step
/// from the one before; amounts as the change from the source's amount the
/// month before (mostly none).
fn encode_incomes(incomes: &Incomes, out: &mut Vec<u8>) {
    if incomes.is_empty() {
        return;
    }
    put(out, incomes.len() as u64);
    let (mut previous_month, mut previous) = (0, [0u64; 5]);
    for (month, by_source) in incomes {
        put(out, month_number(*month) - previous_month);
        previous_month = month_number(*month);
        out.push(mask(&SOURCES, by_source.keys().copied()));
        for (source, amount) in by_source {
            let last = &mut previous[usize::from(position(&SOURCES, source))];
            put_signed(out, amount.tiyn().wrapping_sub(*last) as i64);
            *last = amount.tiyn();
        }
    }
}

// ----- reading -----

fn month_of(number: u64) -> Result<Month, CompactError> {
    i32::try_from(number / 12)
        .ok()
        .and_then(|year| Month::new(year, (number % 12) as u32 + 1))
        .ok_or(CompactError("a month"))
}

struct Reader<'b> {
    bytes: &'b [u8],
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, CompactError> {
        let (first, rest) = self
            .bytes
            .split_first()
            .ok_or(CompactError("the bytes end early"))?;
        self.bytes = rest;
        Ok(*first)
    }

    fn number(&mut self) -> Result<u64, CompactError> {
        let (value, used) = read_number(self.bytes).ok_or(CompactError("a number"))?;
        self.bytes = &self.bytes[used..];
        Ok(value)
    }

    /// How many items follow: each takes at least a byte, so never more than
    /// the bytes left (damaged bytes cannot make a reader allocate wildly).
    fn count(&mut self) -> Result<usize, CompactError> {
        usize::try_from(self.number()?)
            .ok()
            .filter(|count| *count <= self.bytes.len())
            .ok_or(CompactError("a count"))
    }

    fn signed(&mut self) -> Result<i64, CompactError> {
        let value = self.number()?;
        Ok((value >> 1) as i64 ^ -((value & 1) as i64))
    }

    fn day(&mut self) -> Result<NaiveDate, CompactError> {
        i32::try_from(self.signed()?)
            .ok()
            .and_then(NaiveDate::from_num_days_from_ce_opt)
            .ok_or(CompactError("a date"))
    }

    fn month(&mut self) -> Result<Month, CompactError> {
        month_of(self.number()?)
    }

    fn iin(&mut self) -> Result<Iin, CompactError> {
        Iin::from_number(self.number()?).ok_or(CompactError("an IIN"))
    }

    fn award(&mut self, flags: u8) -> Result<AwardDecision, CompactError> {
        Ok(AwardDecision {
            recipient: self.iin()?,
            amount: Money::from_tiyn(self.number()?),
            occasion: if flags & 1 != 0 {
                Some(self.month()?)
            } else {
                None
            },
            one_off: flags & 2 != 0,
            last_month: if flags & 4 != 0 {
                Some(self.month()?)
            } else {
                None
            },
        })
    }
}

/// Sets of a small enum's values, one made per mask and kept: a scan swaps
/// them in and out of the families it reads instead of building sets.
struct SetsByMask<T: 'static> {
    /// The values, by their bit in a mask.
    list: &'static [T],
    sets: Vec<Option<BTreeSet<T>>>,
}

impl<T: Copy + Ord> SetsByMask<T> {
    fn new(list: &'static [T]) -> SetsByMask<T> {
        SetsByMask {
            list,
            sets: (0..1 << list.len()).map(|_| None).collect(),
        }
    }

    /// Makes `set` the values of the list that `mask` selects. `held` is the
    /// mask the set was made from, if known: a set made from `mask` is left
    /// alone (comparing sets costs more than a scan's deciding), another is
    /// kept for the next family with its mask.
    fn make(&mut self, set: &mut BTreeSet<T>, held: &mut Option<u8>, mask: u8) {
        // Bits past the list select nothing (damaged bytes may set them).
        let mask = mask & (self.sets.len() - 1) as u8;
        if *held == Some(mask) {
            return;
        }
        let list = self.list;
        let wanted = self.sets[usize::from(mask)].take().unwrap_or_else(|| {
            list.iter()
                .enumerate()
                .filter(|(index, _)| mask & 1 << index != 0)
                .map(|(_, value)| *value)
                .collect()
        });
        let old = std::mem::replace(set, wanted);
        if let Some(old_mask) = *held {
            self.sets[usize::from(old_mask)] = Some(old);
        }
        *held = Some(mask);
    }
}

/// What [`Scratch::decode_for`] reads of the members' incomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomeNeed {
    /// Every family's, as [`encode`] wrote them.
    Read,
    /// None for a family with a stored outcome: its members' incomes are left
    /// empty. For a scan that decides again only what reads no income (no
    /// re-scoring, no income-tested program) and takes the rest from the
    /// stored outcome; a family without one is evaluated whole, so it is read
    /// whole. Incomes are a third of the compact form and most of the work of
    /// reading it.
    OnlyUndecided,
}

/// A family read from its compact form into buffers kept from one family to
/// the next: after a few families, reading one allocates nothing.
pub struct Scratch {
    /// A family's scoring inputs by its number of members (the last one for
    /// every larger family), so that reading a family of another size moves
    /// no member. Their ids are placeholders: the table keeps ids beside the
    /// compact forms. Only `decode_for` changes them, or their masks would
    /// not hold.
    shapes: Vec<Shape>,
    /// The shape the last family was read into.
    current: usize,
    outcome: Outcome,
    has_outcome: bool,
    awards: SetsByMask<Award>,
    utilities: SetsByMask<Utility>,
    /// Decisions of earlier, longer outcomes, kept with their buffers.
    spare_decisions: Vec<DecisionSummary>,
    rows: Vec<IncomeRow>,
    /// The register's names, copied when a number is not among them yet:
    /// the register's lock is not taken per family.
    code_names: Vec<&'static str>,
    /// Income maps of members read before, by shape, for members of that shape.
    income_maps: Vec<Incomes>,
}

/// Families of more members than this share one record, which grows and
/// shrinks with them.
pub(crate) const SHAPES: usize = 16;

/// A record kept for families of one size, with the masks its buffers were
/// made from ([`SetsByMask::make`]).
struct Shape {
    record: FamilyRecord,
    /// By member.
    award_masks: Vec<Option<u8>>,
    utilities_mask: Option<u8>,
}

impl Shape {
    fn new() -> Shape {
        Shape {
            record: FamilyRecord::new(FamilyId::parse("scratch").expect("a valid family id")),
            award_masks: Vec::new(),
            utilities_mask: None,
        }
    }

    /// Gives the record `members` members, new ones blank.
    fn resize(&mut self, members: usize) {
        self.record.members.truncate(members);
        self.award_masks.truncate(members);
        while self.record.members.len() < members {
            let facts = CitizenFacts::new(Iin::from_number(0).expect("zero fits"));
            let role = Role::Other;
            self.record.members.push(Member { role, facts });
            self.award_masks.push(None);
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            shapes: vec![Shape::new()],
            current: 0,
            outcome: Outcome {
                level: Level::A,
                programs: Vec::new(),
            },
            has_outcome: false,
            awards: SetsByMask::new(&AWARDS),
            utilities: SetsByMask::new(&UTILITIES),
            spare_decisions: Vec::new(),
            rows: Vec::new(),
            code_names: Vec::new(),
            income_maps: Vec::new(),
        }
    }
}

impl Scratch {
    /// The scoring inputs of the family last read; its id is a placeholder
    /// until [`Scratch::set_family_id`].
    pub fn record(&self) -> &FamilyRecord {
        &self.shapes[self.current].record
    }

    /// Gives the family last read its id.
    pub fn set_family_id(&mut self, id: &[u8]) {
        self.shapes[self.current]
            .record
            .family_id
            .set_from_bytes(id);
    }

    /// The stored outcome of the family last read.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.has_outcome.then_some(&self.outcome)
    }

    /// Reads a family that [`encode`] wrote.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<(), CompactError> {
        self.decode_for(bytes, IncomeNeed::Read)
    }

    /// Reads a family that [`encode`] wrote, its incomes as `need` says.
    pub fn decode_for(&mut self, bytes: &[u8], need: IncomeNeed) -> Result<(), CompactError> {
        let mut reader = Reader { bytes };
        let flags = reader.byte()?;
        let read_incomes = need == IncomeNeed::Read || flags & 16 == 0;
        let address = if flags & 1 != 0 {
            Some(Address {
                region: nth(&Region::ALL, reader.byte()?, "a region")?,
                locality: if flags & 2 != 0 {
                    Locality::Urban
                } else {
                    Locality::Rural
                },
            })
        } else {
            None
        };
        let housing = if flags & 4 != 0 {
            let tenure = nth(&TENURES, reader.byte()?, "a tenure")?;
            let area_decimetres =
                u32::try_from(reader.number()?).map_err(|_| CompactError("an area"))?;
            Some((tenure, area_decimetres, reader.byte()?))
        } else {
            None
        };
        let members = reader.count()?;
        let slot = members.min(SHAPES);
        if self.shapes.len() <= slot {
            self.shapes.resize_with(slot + 1, Shape::new);
        }
        self.current = slot;
        let shape = &mut self.shapes[slot];
        shape.resize(members);
        let record = &mut shape.record;
        record.address = address;
        match housing {
            Some((tenure, area_decimetres, utilities)) => {
                if record.housing.is_none() {
                    shape.utilities_mask = None;
                }
                let housing = record.housing.get_or_insert_with(|| Housing {
                    tenure,
                    area_decimetres,
                    utilities: BTreeSet::new(),
                });
                housing.tenure = tenure;
                housing.area_decimetres = area_decimetres;
                self.utilities
                    .make(&mut housing.utilities, &mut shape.utilities_mask, utilities);
            }
            None => record.housing = None,
        }
        record.social_contract = flags & 8 != 0;
        for (member, awards_mask) in record.members.iter_mut().zip(&mut shape.award_masks) {
            decode_member(&mut reader, member, awards_mask, &mut self.awards)?;
            let length = reader.count()?;
            let (incomes, rest) = reader.bytes.split_at(length);
            reader.bytes = rest;
            if read_incomes {
                decode_incomes(
                    Reader { bytes: incomes },
                    &mut member.facts.incomes,
                    &mut self.rows,
                    &mut self.income_maps,
                )?;
            } else {
                keep_income_map(
                    &mut self.income_maps,
                    std::mem::take(&mut member.facts.incomes),
                );
            }
        }
        self.has_outcome = flags & 16 != 0;
        if self.has_outcome {
            self.outcome.level = nth(&Level::ALL, reader.byte()?, "a level")?;
            let programs = reader.count()?;
            let decisions = &mut self.outcome.programs;
            while decisions.len() > programs {
                self.spare_decisions.extend(decisions.pop());
            }
            while decisions.len() < programs {
                decisions.push(self.spare_decisions.pop().unwrap_or(DecisionSummary {
                    code: String::new(),
                    code_number: u32::MAX,
                    eligible: false,
                    award: None,
                    more_awards: Vec::new(),
                }));
            }
            let mut last_code: Option<u32> = None;
            for decision in decisions.iter_mut() {
                let flags = reader.byte()?;
                let number = if flags & 64 != 0 {
                    last_code
                        .and_then(|last| last.checked_add(1))
                        .ok_or(CompactError("a code"))?
                } else {
                    u32::try_from(reader.number()?).map_err(|_| CompactError("a code"))?
                };
                last_code = Some(number);
                if decision.code_number != number {
                    let index = usize::try_from(number).unwrap_or(usize::MAX);
                    if index >= self.code_names.len() {
                        let codes = codes().read().unwrap_or_else(|e| e.into_inner());
                        self.code_names.clone_from(&codes.names);
                    }
                    let code = self
                        .code_names
                        .get(index)
                        .ok_or(CompactError("a program code"))?;
                    decision.code.clear();
                    decision.code.push_str(code);
                    decision.code_number = number;
                }
                decision.eligible = flags & 1 != 0;
                decision.award = if flags & 2 != 0 {
                    Some(reader.award(flags >> 2)?)
                } else {
                    None
                };
                let more = if flags & 32 != 0 { reader.count()? } else { 0 };
                decision.more_awards.clear();
                for _ in 0..more {
                    let flags = reader.byte()?;
                    decision.more_awards.push(reader.award(flags)?);
                }
            }
        }
        if !reader.bytes.is_empty() {
            return Err(CompactError("bytes are left over"));
        }
        Ok(())
    }
}

/// Reads a member up to its incomes; `awards_mask` is the mask its awards
/// were made from ([`SetsByMask::make`]).
fn decode_member(
    reader: &mut Reader<'_>,
    member: &mut Member,
    awards_mask: &mut Option<u8>,
    awards: &mut SetsByMask<Award>,
) -> Result<(), CompactError> {
    let bits = reader.byte()?;
    let more = reader.byte()?;
    member.role = nth(&ROLES, bits & 7, "a role")?;
    let facts = &mut member.facts;
    facts.iin = reader.iin()?;
    if bits & 8 != 0 {
        let birth_date = if more & 128 != 0 {
            facts.iin.birth_date()
        } else {
            reader.day()?
        };
        let sex = if bits & 16 != 0 {
            Sex::Male
        } else {
            Sex::Female
        };
        let registration = facts.registration.get_or_insert_with(|| Registration {
            full_name: String::new(),
            birth_date,
            sex,
        });
        registration.birth_date = birth_date;
        registration.sex = sex;
    } else {
        facts.registration = None;
    }
    facts.died_on = if bits & 32 != 0 {
        Some(reader.day()?)
    } else {
        None
    };
    facts.employment = if bits & 64 != 0 {
        let status = nth(&STATUSES, reader.byte()?, "a status")?;
        let previous = match reader.byte()? {
            0 => None,
            number => Some(nth(&STATUSES, number - 1, "a status")?),
        };
        let seconds = reader.signed()?;
        let nanos = u32::try_from(reader.number()?).map_err(|_| CompactError("a time"))?;
        Some(Employment {
            status,
            since: DateTime::<Utc>::from_timestamp(seconds, nanos).ok_or(CompactError("a time"))?,
            previous,
        })
    } else {
        None
    };
    facts.non_mortgage_debt = bits & 128 != 0;
    facts.insured = match more & 3 {
        0 => None,
        1 => Some(false),
        _ => Some(true),
    };
    facts.disability = if more & 4 != 0 {
        let byte = reader.byte()?;
        Some(Disability {
            group: nth(&GROUPS, byte & 15, "a disability group")?,
            until: if byte & 16 != 0 {
                Some(reader.day()?)
            } else {
                None
            },
        })
    } else {
        None
    };
    facts.education = if more & 8 != 0 {
        let byte = reader.byte()?;
        Some(Education {
            enrolled: nth(&ENROLLMENTS, byte & 15, "an enrolment")?,
            attainment: nth(&ATTAINMENTS, byte >> 4, "an attainment")?,
        })
    } else {
        None
    };
    awards.make(&mut facts.awards, awards_mask, more >> 4);
    Ok(())
}

/// One month of a member's incomes as read: the sources' mask and amounts.
type IncomeRow = (Month, u8, [u64; 5]);

type Incomes = BTreeMap<Month, BTreeMap<IncomeSource, Money>>;

/// Income maps kept for later members; more shapes than this are rare.
const INCOME_MAPS_KEPT: usize = 16;

fn same_shape(incomes: &Incomes, rows: &[IncomeRow]) -> bool {
    incomes.len() == rows.len()
        && incomes.iter().zip(rows).all(|((month, by_source), row)| {
            *month == row.0 && mask(&SOURCES, by_source.keys().copied()) == row.1
        })
}

/// Keeps a member's income map for a later member of its shape.
fn keep_income_map(kept: &mut Vec<Incomes>, map: Incomes) {
    if !map.is_empty() {
        if kept.len() == INCOME_MAPS_KEPT {
            kept.swap_remove(0);
        }
        kept.push(map);
    }
}

/// Reads a member's incomes into `incomes`. Its maps' nodes are kept when the
/// months and sources are those of the member read before there; otherwise a
/// map of that shape kept from an earlier member is taken from `kept`, where
/// this one goes. Members mostly share a few shapes (the same recent months of
/// salary, or none), so reading allocates nothing once those are kept. `rows`
/// is a buffer kept between calls. `reader` holds the incomes' bytes alone.
fn decode_incomes(
    mut reader: Reader<'_>,
    incomes: &mut Incomes,
    rows: &mut Vec<IncomeRow>,
    kept: &mut Vec<Incomes>,
) -> Result<(), CompactError> {
    rows.clear();
    let (mut month_number, mut previous) = (0u64, [0u64; 5]);
    let months = if reader.bytes.is_empty() {
        0
    } else {
        reader.count()?
    };
    for _ in 0..months {
        month_number = month_number
            .checked_add(reader.number()?)
            .ok_or(CompactError("a month"))?;
        let month = month_of(month_number)?;
        let sources = reader.byte()?;
        let mut amounts = [0; 5];
        for (index, amount) in amounts.iter_mut().enumerate() {
            if sources & 1 << index != 0 {
                previous[index] = previous[index].wrapping_add(reader.signed()? as u64);
                *amount = previous[index];
            }
        }
        rows.push((month, sources, amounts));
    }
    if !reader.bytes.is_empty() {
        return Err(CompactError("an income's bytes are left over"));
    }
    if !same_shape(incomes, rows) {
        let taken = match kept.iter().position(|map| same_shape(map, rows)) {
            Some(index) => kept.swap_remove(index),
            None if rows.is_empty() => Incomes::new(),
            None => rows
                .iter()
                .map(|(month, sources, _)| {
                    let by_source = SOURCES
                        .iter()
                        .enumerate()
                        .filter(|(index, _)| sources & 1 << index != 0)
                        .map(|(_, source)| (*source, Money::ZERO))
                        .collect();
                    (*month, by_source)
                })
                .collect(),
        };
        keep_income_map(kept, std::mem::replace(incomes, taken));
    }
    for ((_, by_source), (_, _, amounts)) in incomes.iter_mut().zip(rows.iter()) {
        for (source, amount) in by_source.iter_mut() {
            *amount = Money::from_tiyn(amounts[usize::from(position(&SOURCES, source))]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_place() {
        for (index, role) in ROLES.iter().enumerate() {
            assert_eq!(usize::from(position(&ROLES, role)), index);
        }
        assert_eq!(Region::ALL.len(), 20);
    }
}
