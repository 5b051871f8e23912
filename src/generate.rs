//! `dfm generate`: a synthetic, realistic population of Kazakhstan streamed as agency feed events.
//!
//! This module owns the synthetic population: who lives in a family, how old they are, what they
//! earn, how they live, and the feed events (CONTRACT.md, "Public port: agency feeds") that tell
//! the service so. `dfm generate` writes it to a file, `dfm load` and `dfm demo` replay it.
//!
//! It never holds the population: it streams family by family, so six million families take the
//! same memory as six. It never touches the store, the clock or the network: `today` and `seed`
//! come in, events go out through a sink, and the same options always give the same bytes.
//!
//! # Determinism and independence
//! Everything random about family `i` is drawn from its own ChaCha8 stream (the key is derived
//! from the seed, the stream number is `i`), so a family's composition, ages, incomes and facts do
//! not depend on the families before it. Three things are numbered across the whole population and
//! so are carried from family to family: event ids (a counter per agency), IIN serial numbers (a
//! counter per birth date and sex, which is what makes every IIN unique), and phone numbers (a
//! bijection of the citizen's ordinal, which makes every phone unique). Hence the output for `N`
//! families is an exact prefix of the output for `N + k` families.
//!
//! # Identifiers
//! IIN check digits and IBAN MOD-97 check digits are computed here by small private helpers
//! (DOMAIN.md, "Identifiers") so that the generator depends only on external crates.

use std::collections::BTreeMap;
use std::io::{self, Write};

use chrono::{Datelike, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateOptions {
    /// How many families; their ids are `F00000000`, `F00000001`, ….
    pub families: u64,
    /// The same seed always gives the same bytes.
    pub seed: u64,
    /// The date the population is "as of": ages, births this year, the reported income months and
    /// every `occurred_at` (never later than this date's midnight, UTC) are relative to it.
    pub today: NaiveDate,
}

/// One feed event and the agency that sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedLine {
    /// The agency name as in the feed URL and the config (`population`, `income`, …).
    pub agency: &'static str,
    /// One event object on one line, without a trailing newline:
    /// `{"id":"pop-000000017","type":"citizen.registered","occurred_at":"…","data":{…}}`.
    pub json: String,
}

/// What a run produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateSummary {
    pub families: u64,
    /// Citizens registered (one `citizen.registered` each).
    pub citizens: u64,
    /// All events, over every agency.
    pub events: u64,
    /// Events per agency; every agency is present, with 0 if it sent nothing.
    pub by_agency: BTreeMap<&'static str, u64>,
}

/// Streams the population as feed events, one [`FeedLine`] per event, in natural order within
/// each family: citizens registered, members added, then the facts agency by agency, and a death
/// last. An error from the sink stops the run and is returned as is.
pub fn generate(
    options: &GenerateOptions,
    sink: &mut dyn FnMut(FeedLine) -> io::Result<()>,
) -> io::Result<GenerateSummary> {
    run(options, &mut LineSink { sink })
}

/// Writes the population as NDJSON: each line is the event object with an extra top-level field
/// `"agency"` naming its source (the feed API takes the agency from the URL; `dfm load` and
/// `dfm demo` read it from this field). Output is buffered here and written in blocks of about
/// 64 KiB, so `out` needs no buffering of its own; it is flushed at the end.
pub fn write_ndjson(options: &GenerateOptions, out: &mut dyn Write) -> io::Result<GenerateSummary> {
    run(options, &mut NdjsonSink { out })
}

/// The block size of [`write_ndjson`]'s writes: a few hundred events a call.
const OUTPUT_BUFFER_BYTES: usize = 1 << 16;

/// Where finished events go. The event writer appends each event to `buffer`; the sink takes it
/// and decides when to clear the buffer, so that NDJSON output accumulates events in place and
/// is written in blocks without a copy per event.
trait EventSink {
    /// Whether each event carries the top-level `"agency"` field.
    const WITH_AGENCY: bool;

    /// `buffer` ends with one finished event, which starts at `event_start`.
    fn event(
        &mut self,
        agency: &'static str,
        buffer: &mut Vec<u8>,
        event_start: usize,
    ) -> io::Result<()>;

    /// No more events: write out whatever is left.
    fn end(&mut self, buffer: &mut Vec<u8>) -> io::Result<()>;
}

/// Hands each event to the caller of [`generate`] as a [`FeedLine`].
struct LineSink<'a> {
    sink: &'a mut dyn FnMut(FeedLine) -> io::Result<()>,
}

impl EventSink for LineSink<'_> {
    const WITH_AGENCY: bool = false;

    fn event(
        &mut self,
        agency: &'static str,
        buffer: &mut Vec<u8>,
        event_start: usize,
    ) -> io::Result<()> {
        let json =
            String::from_utf8(buffer[event_start..].to_vec()).expect("the generator writes ASCII");
        buffer.clear();
        (self.sink)(FeedLine { agency, json })
    }

    fn end(&mut self, _buffer: &mut Vec<u8>) -> io::Result<()> {
        Ok(())
    }
}

/// Accumulates NDJSON lines and writes them in blocks.
struct NdjsonSink<'a> {
    out: &'a mut dyn Write,
}

impl EventSink for NdjsonSink<'_> {
    const WITH_AGENCY: bool = true;

    fn event(
        &mut self,
        _agency: &'static str,
        buffer: &mut Vec<u8>,
        _event_start: usize,
    ) -> io::Result<()> {
        buffer.push(b'\n');
        if buffer.len() >= OUTPUT_BUFFER_BYTES {
            self.out.write_all(buffer)?;
            buffer.clear();
        }
        Ok(())
    }

    fn end(&mut self, buffer: &mut Vec<u8>) -> io::Result<()> {
        self.out.write_all(buffer)?;
        buffer.clear();
        self.out.flush()
    }
}

fn run<S: EventSink>(options: &GenerateOptions, sink: &mut S) -> io::Result<GenerateSummary> {
    let mut generator = Generator::new(options, S::WITH_AGENCY)?;
    for index in 0..options.families {
        generator.family(index, sink)?;
    }
    sink.end(&mut generator.writer.buffer)?;
    Ok(generator.summary(options.families))
}

// ---------------------------------------------------------------------------------------------
// Tables: regions, names, banks, phone prefixes.
// ---------------------------------------------------------------------------------------------

/// A region as the generator sees it.
struct RegionProfile {
    /// ISO 3166-2:KZ.
    code: &'static str,
    /// Share of the population in tenths of a percent (approximate 2024 census shares).
    population_share_permille: u32,
    /// Share of families living in towns, in percent.
    urban_percent: u32,
    /// Wages against the national level, in percent (oil regions and the two big cities higher).
    wage_level_percent: u32,
    /// Share of families with Russian names, in percent (high in the north, low in the south).
    russian_names_percent: u32,
}

const REGIONS: [RegionProfile; 20] = [
    region("KZ-10", 31, 55, 91, 15),    // Abai
    region("KZ-11", 38, 50, 91, 35),    // Akmola
    region("KZ-15", 46, 70, 97, 10),    // Aktobe
    region("KZ-19", 75, 30, 91, 10),    // Almaty region
    region("KZ-23", 35, 55, 133, 3),    // Atyrau
    region("KZ-27", 34, 50, 97, 15),    // West Kazakhstan
    region("KZ-31", 60, 40, 85, 5),     // Jambyl
    region("KZ-33", 35, 45, 85, 10),    // Jetisu
    region("KZ-35", 56, 80, 100, 35),   // Karaganda
    region("KZ-39", 42, 55, 91, 40),    // Kostanay
    region("KZ-43", 40, 45, 91, 3),     // Kyzylorda
    region("KZ-47", 38, 45, 121, 3),    // Mangystau
    region("KZ-55", 37, 70, 97, 35),    // Pavlodar
    region("KZ-59", 27, 45, 88, 45),    // North Kazakhstan
    region("KZ-61", 107, 20, 82, 3),    // Turkistan
    region("KZ-62", 11, 75, 106, 10),   // Ulytau
    region("KZ-63", 37, 65, 97, 35),    // East Kazakhstan
    region("KZ-71", 75, 100, 118, 12),  // Astana
    region("KZ-75", 110, 100, 118, 20), // Almaty
    region("KZ-79", 60, 100, 88, 3),    // Shymkent
];

const fn region(
    code: &'static str,
    population_share_permille: u32,
    urban_percent: u32,
    wage_level_percent: u32,
    russian_names_percent: u32,
) -> RegionProfile {
    RegionProfile {
        code,
        population_share_permille,
        urban_percent,
        wage_level_percent,
        russian_names_percent,
    }
}

#[rustfmt::skip]
const KAZAKH_MALE_NAMES: &[&str] = &[
    "Nurlan", "Yerlan", "Askar", "Daniyar", "Arman", "Serik", "Bauyrzhan", "Aibek", "Timur",
    "Alikhan", "Nursultan", "Dias", "Sanzhar", "Almas", "Marat", "Ruslan", "Yerzhan", "Kairat",
    "Azamat", "Aslan", "Zhanibek", "Olzhas", "Rustam", "Nurzhan", "Yersultan", "Alibek", "Madi",
    "Temirlan", "Amir", "Bekzat",
];
#[rustfmt::skip]
const KAZAKH_FEMALE_NAMES: &[&str] = &[
    "Aigerim", "Aruzhan", "Dana", "Ainur", "Gulnara", "Saule", "Zhanar", "Madina", "Aliya", "Asel",
    "Dinara", "Aizhan", "Kamila", "Ayaulym", "Tomiris", "Gulmira", "Raushan", "Botagoz", "Akmaral",
    "Zarina", "Symbat", "Inkar", "Laura", "Moldir", "Zhansaya", "Dilnaz", "Aisha", "Nazerke",
    "Ulzhan", "Bibigul",
];
#[rustfmt::skip]
const RUSSIAN_MALE_NAMES: &[&str] = &[
    "Dmitry", "Sergey", "Alexander", "Andrey", "Ivan", "Vladimir", "Maxim", "Alexey", "Nikolay",
    "Pavel", "Mikhail", "Yevgeny", "Artyom", "Igor", "Viktor", "Oleg",
];
#[rustfmt::skip]
const RUSSIAN_FEMALE_NAMES: &[&str] = &[
    "Elena", "Olga", "Natalya", "Svetlana", "Irina", "Anna", "Mariya", "Tatyana", "Yekaterina",
    "Yulia", "Anastasia", "Galina", "Lyudmila", "Viktoria", "Darya", "Oksana",
];
/// (male form, female form).
const KAZAKH_SURNAMES: &[(&str, &str)] = &[
    ("Akhmetov", "Akhmetova"),
    ("Nurpeisov", "Nurpeisova"),
    ("Zhakupov", "Zhakupova"),
    ("Abenov", "Abenova"),
    ("Kassymov", "Kassymova"),
    ("Tokayev", "Tokayeva"),
    ("Omarov", "Omarova"),
    ("Iskakov", "Iskakova"),
    ("Suleimenov", "Suleimenova"),
    ("Bekov", "Bekova"),
    ("Ospanov", "Ospanova"),
    ("Mukhametov", "Mukhametova"),
    ("Sadykov", "Sadykova"),
    ("Zhumabayev", "Zhumabayeva"),
    ("Baimukhanov", "Baimukhanova"),
    ("Karimov", "Karimova"),
    ("Dzhaksybekov", "Dzhaksybekova"),
    ("Serikbayev", "Serikbayeva"),
    ("Yessenov", "Yessenova"),
    ("Tulegenov", "Tulegenova"),
    ("Nurlanuly", "Nurlankyzy"),
    ("Serikuly", "Serikkyzy"),
    ("Amanzholov", "Amanzholova"),
    ("Kenzhebekov", "Kenzhebekova"),
];
const RUSSIAN_SURNAMES: &[(&str, &str)] = &[
    ("Ivanov", "Ivanova"),
    ("Petrov", "Petrova"),
    ("Smirnov", "Smirnova"),
    ("Kuznetsov", "Kuznetsova"),
    ("Popov", "Popova"),
    ("Volkov", "Volkova"),
    ("Sokolov", "Sokolova"),
    ("Mikhailov", "Mikhailova"),
    ("Fedorov", "Fedorova"),
    ("Morozov", "Morozova"),
    ("Pavlov", "Pavlova"),
    ("Lebedev", "Lebedeva"),
    ("Kovalenko", "Kovalenko"),
    ("Novikov", "Novikova"),
];

/// (bank code, weight): the IBAN's digits 5–7.
const BANKS: [(&str, u32); 5] = [
    ("722", 40),
    ("601", 25),
    ("998", 15),
    ("125", 10),
    ("914", 10),
];

/// Kazakh mobile operator codes; a phone is `+7`, one of these, and 7 digits.
const PHONE_PREFIXES: [&str; 12] = [
    "700", "701", "702", "705", "707", "708", "747", "771", "775", "776", "777", "778",
];
/// How many distinct phones the numbering can give before it repeats.
const PHONE_SPACE: u64 = 12 * 10_000_000;
/// Multiplier of the phone bijection: 48271·1009, both prime, so coprime to [`PHONE_SPACE`]
/// (2⁹·3·5⁷).
const PHONE_STRIDE: u64 = 48_271 * 1_009;

// ---------------------------------------------------------------------------------------------
// The money and time parameters of the distributions; the shares of kinds of families, statuses
// and facts stand beside the code that draws them.
// ---------------------------------------------------------------------------------------------

/// Median monthly salary, KZT, before the regional wage level and the rural discount.
const SALARY_MEDIAN_TENGE: f64 = 325_000.0;
/// Log-normal spread of salaries (σ of ln).
const SALARY_SIGMA: f64 = 0.5;
/// The minimum monthly wage, KZT; only part-timers earn less.
const MINIMUM_WAGE_TENGE: f64 = 85_000.0;
/// Median monthly business income of the self-employed, KZT.
const BUSINESS_MEDIAN_TENGE: f64 = 200_000.0;
const BUSINESS_SIGMA: f64 = 0.7;
/// Median monthly pension, KZT.
const PENSION_MEDIAN_TENGE: f64 = 108_000.0;
const PENSION_SIGMA: f64 = 0.2;
/// Rural wages against town wages, in percent.
const RURAL_WAGE_PERCENT: f64 = 85.0;
/// Per-capita monthly income below which a family counts as poor when the generator decides who
/// has a social contract: 35% of a ~130,000 KZT regional median, in tiyn.
const POVERTY_LINE_TIYN: i64 = 4_550_000;
/// How far back a family's records start: its registrations fall 30–180 days before today.
const HISTORY_DAYS_MIN: i64 = 30;
const HISTORY_DAYS_MAX: i64 = 180;
/// Months of `income.reported` per earner: the complete months before today's month.
const REPORTED_MONTHS: usize = 3;

// ---------------------------------------------------------------------------------------------
// The generator.
// ---------------------------------------------------------------------------------------------

const SECONDS_PER_DAY: i64 = 86_400;
const DAYS_PER_YEAR: f64 = 365.25;
/// Oldest age the generator gives anyone, in years; bounds the IIN serial table.
const AGE_YEARS_MAX: i64 = 100;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Agency {
    Population,
    Income,
    Health,
    Housing,
    Education,
    Social,
    Payments,
}

impl Agency {
    const ALL: [Agency; 7] = [
        Agency::Population,
        Agency::Income,
        Agency::Health,
        Agency::Housing,
        Agency::Education,
        Agency::Social,
        Agency::Payments,
    ];

    fn name(self) -> &'static str {
        match self {
            Agency::Population => "population",
            Agency::Income => "income",
            Agency::Health => "health",
            Agency::Housing => "housing",
            Agency::Education => "education",
            Agency::Social => "social",
            Agency::Payments => "payments",
        }
    }

    fn id_prefix(self) -> &'static str {
        match self {
            Agency::Population => "pop-",
            Agency::Income => "inc-",
            Agency::Health => "hea-",
            Agency::Housing => "hou-",
            Agency::Education => "edu-",
            Agency::Social => "soc-",
            Agency::Payments => "pay-",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sex {
    Male,
    Female,
}

impl Sex {
    fn as_str(self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Head,
    Spouse,
    Child,
    Parent,
    Other,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Head => "head",
            Role::Spouse => "spouse",
            Role::Child => "child",
            Role::Parent => "parent",
            Role::Other => "other",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Employment {
    Employed,
    SelfEmployed,
    Unemployed,
    Student,
    Retired,
    Caregiver,
}

impl Employment {
    fn as_str(self) -> &'static str {
        match self {
            Employment::Employed => "employed",
            Employment::SelfEmployed => "self_employed",
            Employment::Unemployed => "unemployed",
            Employment::Student => "student",
            Employment::Retired => "retired",
            Employment::Caregiver => "caregiver",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum IncomeSource {
    Salary,
    Business,
    Pension,
    Other,
}

impl IncomeSource {
    fn as_str(self) -> &'static str {
        match self {
            IncomeSource::Salary => "salary",
            IncomeSource::Business => "business",
            IncomeSource::Pension => "pension",
            IncomeSource::Other => "other",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Disability {
    Group1,
    Group2,
    Group3,
    Child,
}

impl Disability {
    fn as_str(self) -> &'static str {
        match self {
            Disability::Group1 => "1",
            Disability::Group2 => "2",
            Disability::Group3 => "3",
            Disability::Child => "child",
        }
    }
}

/// One member of the family being generated. Lives only while its family is generated.
#[derive(Clone, Copy, Debug)]
struct Person {
    role: Role,
    sex: Sex,
    /// Age today, in days; `birth_day = today - age_days`.
    age_days: i64,
    /// Birth date, days since 1970-01-01.
    birth_day: i64,
    given_name: &'static str,
    surname: &'static str,
    iin: [u8; 12],
    /// `occurred_at` of `citizen.registered`, seconds since the epoch.
    registered_at: i64,
    /// `occurred_at` of `family.member_added`; every fact about the person comes after it.
    added_at: i64,
    employment: Option<Employment>,
    /// Source and monthly amount in tiyn (before month-to-month variation).
    income: Option<(IncomeSource, i64)>,
    disability: Option<Disability>,
    /// Set for the spouse who dies: the time of death.
    died_at: Option<i64>,
}

impl Person {
    fn new(role: Role, sex: Sex, age_days: i64) -> Person {
        Person {
            role,
            sex,
            age_days: age_days.max(1),
            birth_day: 0,
            given_name: "",
            surname: "",
            iin: [b'0'; 12],
            registered_at: 0,
            added_at: 0,
            employment: None,
            income: None,
            disability: None,
            died_at: None,
        }
    }

    fn age_years(&self) -> f64 {
        self.age_days as f64 / DAYS_PER_YEAR
    }

    fn is_adult(&self) -> bool {
        self.age_days >= years(18.0)
    }

    fn is_minor(&self) -> bool {
        !self.is_adult()
    }
}

/// A span of years in whole days (truncated: ages are drawn, not measured).
fn years(value: f64) -> i64 {
    (value * DAYS_PER_YEAR) as i64
}

/// The state carried from family to family: the id counters, the IIN serial table and the phone
/// numbering (see the module docs), plus the buffers reused for every family and event.
struct Generator {
    key: [u8; 32],
    today_day: i64,
    /// Today 00:00:00 UTC; no event occurs after it.
    now: i64,
    /// Days since 1 January of today's year (0 on 1 January).
    days_into_year: i64,
    /// The reported months, oldest first: (year, month, first day of the next month).
    reported_months: [(i64, u32, i64); REPORTED_MONTHS],
    /// Oldest birth date the serial table covers.
    serial_table_first_day: i64,
    /// Last serial issued per (birth date, sex): index `(day - first_day) * 2 + sex`.
    serial_table: Vec<u16>,
    phone_offset: u64,
    phones_issued: u64,
    citizens: u64,
    region_total_permille: u32,
    members: Vec<Person>,
    /// `F` and the family index padded to 8 digits.
    family_id: Vec<u8>,
    writer: EventWriter,
}

impl Generator {
    fn new(options: &GenerateOptions, with_agency: bool) -> io::Result<Generator> {
        let today = options.today;
        // IIN century digits cover 1800–2099; a century of ages before 1950 would leave it.
        if !(1950..=2099).contains(&today.year()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("generate: today {today} is outside 1950-01-01..=2099-12-31"),
            ));
        }
        let today_day = days_from_civil(i64::from(today.year()), today.month(), today.day());
        let year_start = days_from_civil(i64::from(today.year()), 1, 1);

        let mut reported_months = [(0, 0, 0); REPORTED_MONTHS];
        let today_month_index = i64::from(today.year()) * 12 + i64::from(today.month0());
        for (slot, back) in reported_months
            .iter_mut()
            .zip((1..=REPORTED_MONTHS as i64).rev())
        {
            let index = today_month_index - back;
            let (year, month0) = (index.div_euclid(12), index.rem_euclid(12));
            let month = u32::try_from(month0 + 1).expect("a month is 1..=12");
            let next = index + 1;
            let next_month = u32::try_from(next.rem_euclid(12) + 1).expect("a month is 1..=12");
            *slot = (
                year,
                month,
                days_from_civil(next.div_euclid(12), next_month, 1),
            );
        }

        // The key: the seed and a tag, so that other users of the same seed draw other numbers.
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&options.seed.to_le_bytes());
        key[8..24].copy_from_slice(b"dfm-generate-v1\0");

        // Serials start at a seeded offset below 4000 per (date, sex), so they do not all begin
        // at 0001; that leaves ≥ 5900 serials per birth date and sex, ten times the busiest day
        // of a 20-million population.
        let serial_table_first_day = today_day - years((AGE_YEARS_MAX + 2) as f64);
        let slots = usize::try_from((today_day - serial_table_first_day + 1) * 2)
            .expect("the serial table is small");
        let mut mixer = options.seed ^ 0x5EED_0F11_1111;
        let serial_table = (0..slots)
            .map(|_| u16::try_from(splitmix64(&mut mixer) % 4000).expect("below 4000"))
            .collect();

        let mut mixer = options.seed ^ 0x0FF1CE;
        let phone_offset = splitmix64(&mut mixer) % PHONE_SPACE;

        Ok(Generator {
            key,
            today_day,
            now: today_day * SECONDS_PER_DAY,
            days_into_year: today_day - year_start,
            reported_months,
            serial_table_first_day,
            serial_table,
            phone_offset,
            phones_issued: 0,
            citizens: 0,
            region_total_permille: REGIONS.iter().map(|r| r.population_share_permille).sum(),
            members: Vec::with_capacity(16),
            family_id: Vec::with_capacity(16),
            writer: EventWriter::new(today_day, with_agency),
        })
    }

    fn summary(&self, families: u64) -> GenerateSummary {
        GenerateSummary {
            families,
            citizens: self.citizens,
            events: self.writer.events,
            by_agency: Agency::ALL
                .iter()
                .map(|agency| (agency.name(), self.writer.by_agency[agency.index()]))
                .collect(),
        }
    }

    /// Generates family `index` and streams its events.
    fn family<S: EventSink>(&mut self, index: u64, sink: &mut S) -> io::Result<()> {
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_stream(index);

        self.family_id.clear();
        self.family_id.push(b'F');
        push_padded(&mut self.family_id, index, 8);

        let region = self.pick_region(&mut rng);
        let urban = rng.gen_range(0..100) < region.urban_percent;
        let russian = rng.gen_range(0..100) < region.russian_names_percent;

        self.members.clear();
        compose(&mut rng, &mut self.members, russian, self.days_into_year);
        self.name_members(&mut rng, russian);
        for position in 0..self.members.len() {
            self.issue_iin(position);
        }
        let base = self.now
            - rng.gen_range(HISTORY_DAYS_MIN * SECONDS_PER_DAY..HISTORY_DAYS_MAX * SECONDS_PER_DAY);
        self.schedule(&mut rng, base);
        self.decide_circumstances(&mut rng, region, urban);

        let facts = FamilyFacts {
            region,
            urban,
            base,
        };
        self.emit(&mut rng, &facts, sink)
    }

    fn pick_region(&self, rng: &mut ChaCha8Rng) -> &'static RegionProfile {
        let mut draw = rng.gen_range(0..self.region_total_permille);
        for region in &REGIONS {
            if draw < region.population_share_permille {
                return region;
            }
            draw -= region.population_share_permille;
        }
        unreachable!("the draw is below the sum of the shares")
    }

    fn name_members(&mut self, rng: &mut ChaCha8Rng, russian: bool) {
        let (surnames, male_names, female_names) = if russian {
            (RUSSIAN_SURNAMES, RUSSIAN_MALE_NAMES, RUSSIAN_FEMALE_NAMES)
        } else {
            (KAZAKH_SURNAMES, KAZAKH_MALE_NAMES, KAZAKH_FEMALE_NAMES)
        };
        let family_surname = surnames[rng.gen_range(0..surnames.len())];
        for position in 0..self.members.len() {
            let (role, sex) = (self.members[position].role, self.members[position].sex);
            let (male, female) = match role {
                // A wife keeps her own surname in three cases of ten; so does "other" kin.
                Role::Spouse | Role::Other if rng.gen_bool(0.3) => {
                    surnames[rng.gen_range(0..surnames.len())]
                }
                _ => family_surname,
            };
            let (surname, names) = match sex {
                Sex::Male => (male, male_names),
                Sex::Female => (female, female_names),
            };
            // Nobody shares a given name with someone already in the family (the lists are long
            // enough that a few redraws suffice; the rare eighth-time clash is let be).
            let mut given_name = names[rng.gen_range(0..names.len())];
            for _ in 0..8 {
                if !self.members[..position]
                    .iter()
                    .any(|p| p.given_name == given_name)
                {
                    break;
                }
                given_name = names[rng.gen_range(0..names.len())];
            }
            let person = &mut self.members[position];
            person.birth_day = self.today_day - person.age_days;
            person.surname = surname;
            person.given_name = given_name;
        }
    }

    /// Gives member `position` the next free IIN for their birth date and sex. In the unlikely
    /// case that a date's serials are exhausted, the birth date moves one day earlier.
    fn issue_iin(&mut self, position: usize) {
        let person = &mut self.members[position];
        loop {
            let day = person.birth_day;
            assert!(
                day >= self.serial_table_first_day,
                "birth date below the serial table"
            );
            let slot = usize::try_from((day - self.serial_table_first_day) * 2)
                .expect("non-negative")
                + usize::from(person.sex == Sex::Female);
            let (year, month, day_of_month) = civil_from_days(day);
            let mut serial = u32::from(self.serial_table[slot]);
            while serial < 9999 {
                serial += 1;
                if let Some(iin) = make_iin(year, month, day_of_month, person.sex, serial) {
                    self.serial_table[slot] = u16::try_from(serial).expect("below 10000");
                    person.iin = iin;
                    self.citizens += 1;
                    return;
                }
            }
            self.serial_table[slot] = 9999;
            person.birth_day -= 1;
            person.age_days += 1;
        }
    }

    /// Registration times: the family's records start at `base`; a baby born since is registered
    /// within a day of birth. Members are added a minute after registration.
    fn schedule(&mut self, rng: &mut ChaCha8Rng, base: i64) {
        let now = self.now;
        for (position, person) in self.members.iter_mut().enumerate() {
            let birth = person.birth_day * SECONDS_PER_DAY;
            let step = i64::try_from(position).expect("a family is small") * 7;
            let registered = (base + step).max(birth + rng.gen_range(3_600..72_000));
            person.registered_at = registered.min(now);
            person.added_at = (person.registered_at + 60).min(now);
        }
    }

    /// Disability, employment, income and death, which later facts depend on.
    fn decide_circumstances(&mut self, rng: &mut ChaCha8Rng, region: &RegionProfile, urban: bool) {
        let members = &mut self.members;

        for person in members.iter_mut() {
            let age = person.age_years();
            // About 3% overall, rising with age (2.9% of adults 18–39 … 7% of pensioners).
            let chance = if age < 18.0 {
                0.012
            } else if age < 40.0 {
                0.02
            } else if age < 63.0 {
                0.04
            } else {
                0.07
            };
            if rng.gen_bool(chance) {
                person.disability = Some(if age < 18.0 {
                    Disability::Child
                } else {
                    match rng.gen_range(0..100) {
                        0..=14 => Disability::Group1,
                        15..=54 => Disability::Group2,
                        _ => Disability::Group3,
                    }
                });
            }
        }

        // The mother of a baby under 1.5, or of a disabled child, often stays at home.
        let youngest_child_days = members
            .iter()
            .filter(|p| p.role == Role::Child)
            .map(|p| p.age_days)
            .min();
        let has_infant = youngest_child_days.is_some_and(|days| days < 548);
        let has_dependants = youngest_child_days.is_some_and(|days| days < years(7.0))
            || members
                .iter()
                .any(|p| p.disability.is_some() || p.age_days >= years(75.0));
        let has_disabled_child = members
            .iter()
            .any(|p| p.role == Role::Child && p.disability == Some(Disability::Child));

        // A death: the spouse of a couple with minors, an earner, so that the loss-of-breadwinner
        // benefit applies. About 1.7% of such families, which is ~0.3% of all people.
        let has_minor_child = members
            .iter()
            .any(|p| p.role == Role::Child && p.is_minor());
        let spouse = members.iter().position(|p| p.role == Role::Spouse);
        let death = match spouse {
            Some(position) if has_minor_child && rng.gen_bool(0.017) => Some(position),
            _ => None,
        };

        let wage_level = f64::from(region.wage_level_percent) / 100.0
            * if urban {
                1.0
            } else {
                RURAL_WAGE_PERCENT / 100.0
            };

        for (position, person) in members.iter_mut().enumerate() {
            if !person.is_adult() {
                continue;
            }
            let age = person.age_years();
            // Grown children living with their parents study more often than young spouses.
            let study_chance = if matches!(person.role, Role::Child | Role::Other) {
                0.55
            } else {
                0.12
            };
            let is_parent_of_children =
                matches!(person.role, Role::Head | Role::Spouse) && youngest_child_days.is_some();
            let status = if death == Some(position) {
                Employment::Employed
            } else if age >= 63.0 {
                if rng.gen_bool(0.92) {
                    Employment::Retired
                } else {
                    Employment::Employed
                }
            } else if person.sex == Sex::Female && age >= 61.0 && rng.gen_bool(0.5) {
                Employment::Retired
            } else if age < 23.0 && rng.gen_bool(study_chance) {
                Employment::Student
            } else if person.sex == Sex::Female
                && is_parent_of_children
                && ((has_infant && rng.gen_bool(0.5)) || (has_disabled_child && rng.gen_bool(0.4)))
            {
                Employment::Caregiver
            } else if matches!(person.disability, Some(Disability::Group1))
                || (matches!(person.disability, Some(Disability::Group2)) && rng.gen_bool(0.5))
            {
                Employment::Unemployed
            } else {
                let draw = rng.gen_range(0..100);
                let status = match person.sex {
                    Sex::Female => match draw {
                        0..=71 => Employment::Employed,
                        72..=88 => Employment::SelfEmployed,
                        89..=93 => Employment::Unemployed,
                        _ => Employment::Caregiver,
                    },
                    Sex::Male => match draw {
                        0..=73 => Employment::Employed,
                        74..=93 => Employment::SelfEmployed,
                        94..=98 => Employment::Unemployed,
                        _ => Employment::Caregiver,
                    },
                };
                // A carer needs someone to care for: children, a disabled or an old member.
                if status == Employment::Caregiver && !has_dependants {
                    Employment::Employed
                } else {
                    status
                }
            };
            person.employment = Some(status);
            person.income = match status {
                Employment::Employed => {
                    // One employee in thirty works part-time, below the minimum wage.
                    let tenge = if death != Some(position) && rng.gen_bool(0.035) {
                        rng.gen_range(45_000.0..MINIMUM_WAGE_TENGE)
                    } else {
                        (SALARY_MEDIAN_TENGE * wage_level * (SALARY_SIGMA * normal(rng)).exp())
                            .max(MINIMUM_WAGE_TENGE)
                    };
                    Some((IncomeSource::Salary, whole_tenge_in_tiyn(tenge)))
                }
                // One in fifteen of the self-employed declares nothing.
                Employment::SelfEmployed if rng.gen_bool(0.933) => {
                    let tenge =
                        (BUSINESS_MEDIAN_TENGE * wage_level * (BUSINESS_SIGMA * normal(rng)).exp())
                            .max(50_000.0);
                    Some((IncomeSource::Business, whole_tenge_in_tiyn(tenge)))
                }
                Employment::Retired => {
                    let tenge = (PENSION_MEDIAN_TENGE * (PENSION_SIGMA * normal(rng)).exp())
                        .clamp(80_000.0, 400_000.0);
                    Some((IncomeSource::Pension, tiyn(tenge)))
                }
                // A stipend.
                Employment::Student if rng.gen_bool(0.4) => Some((
                    IncomeSource::Other,
                    whole_tenge_in_tiyn(rng.gen_range(45_000.0..65_000.0)),
                )),
                _ => None,
            };
        }

        if let Some(position) = death {
            let person = &mut members[position];
            let earliest = person.added_at + SECONDS_PER_DAY;
            let latest = self.now - 3_600;
            person.died_at = Some(if earliest < latest {
                rng.gen_range(earliest..latest)
            } else {
                latest.max(person.added_at)
            });
        }
    }

    fn emit<S: EventSink>(
        &mut self,
        rng: &mut ChaCha8Rng,
        facts: &FamilyFacts,
        sink: &mut S,
    ) -> io::Result<()> {
        let Generator {
            now,
            today_day,
            reported_months,
            phone_offset,
            phones_issued,
            members,
            family_id,
            writer,
            ..
        } = self;
        let now = *now;
        let today_day = *today_day;
        let family_id = family_id.as_slice();
        let w = writer;

        // Population: register everyone, add them to the family, the address, the contacts.
        for person in members.iter() {
            w.start(
                Agency::Population,
                "citizen.registered",
                person.registered_at,
            );
            w.key("iin");
            w.iin(&person.iin);
            w.key("full_name");
            w.open_string();
            w.raw(person.given_name);
            w.raw(" ");
            w.raw(person.surname);
            w.close_string();
            w.key("birth_date");
            w.date(person.birth_day);
            w.key("sex");
            w.string(person.sex.as_str());
            w.finish(sink)?;
        }
        for person in members.iter() {
            w.start(Agency::Population, "family.member_added", person.added_at);
            w.key("family_id");
            w.iin(family_id);
            w.key("iin");
            w.iin(&person.iin);
            w.key("role");
            w.string(person.role.as_str());
            w.finish(sink)?;
        }
        let last_added = members
            .iter()
            .map(|p| p.added_at)
            .max()
            .unwrap_or(facts.base);
        w.start(
            Agency::Population,
            "family.address_changed",
            (last_added + 30).min(now),
        );
        w.key("family_id");
        w.iin(family_id);
        w.key("region");
        w.string(facts.region.code);
        w.key("locality");
        w.string(if facts.urban { "urban" } else { "rural" });
        w.finish(sink)?;
        for person in members.iter().filter(|p| p.is_adult()) {
            let chance = if person.age_years() >= 80.0 {
                0.55
            } else {
                0.87
            };
            if !rng.gen_bool(chance) {
                continue;
            }
            w.start(
                Agency::Population,
                "citizen.contact_changed",
                after(rng, person.added_at, now),
            );
            w.key("iin");
            w.iin(&person.iin);
            w.key("phone");
            w.phone(*phone_offset, *phones_issued);
            *phones_issued += 1;
            w.finish(sink)?;
        }

        // Income: employment, three months of income, debts.
        let mut family_income_tiyn: i64 = 0;
        for person in members.iter() {
            let Some(status) = person.employment else {
                continue;
            };
            w.start(
                Agency::Income,
                "employment.changed",
                after(rng, person.added_at, now),
            );
            w.key("iin");
            w.iin(&person.iin);
            w.key("status");
            w.string(status.as_str());
            w.finish(sink)?;

            if let Some((source, monthly)) = person.income {
                if person.died_at.is_none() {
                    family_income_tiyn += monthly;
                }
                for &(year, month, next_month_day) in reported_months.iter() {
                    if person
                        .died_at
                        .is_some_and(|died| died < next_month_day * SECONDS_PER_DAY)
                    {
                        continue;
                    }
                    let amount = match source {
                        // Salaries are steady, with an occasional bonus month.
                        IncomeSource::Salary if rng.gen_bool(0.85) => monthly,
                        IncomeSource::Salary => {
                            round_to_tenge(monthly * rng.gen_range(100..140) / 100)
                        }
                        IncomeSource::Pension => monthly,
                        IncomeSource::Business => {
                            round_to_tenge(monthly * rng.gen_range(70..135) / 100)
                        }
                        IncomeSource::Other => monthly,
                    };
                    // Reported in the first ten days of the next month, never after today.
                    let start = next_month_day * SECONDS_PER_DAY;
                    let span = (now - start).min(10 * SECONDS_PER_DAY);
                    let at = if span > 0 {
                        start + rng.gen_range(0..span)
                    } else {
                        start.min(now)
                    };
                    w.start(Agency::Income, "income.reported", at);
                    w.key("iin");
                    w.iin(&person.iin);
                    w.key("month");
                    w.month(year, month);
                    w.key("amount");
                    w.money(amount);
                    w.key("source");
                    w.string(source.as_str());
                    w.finish(sink)?;
                }
            }

            // About 20% of adults carry a consumer loan (fewer pensioners); the bureau reports
            // every debtor and, for a quarter of the others, that they have none.
            let debt_chance = if status == Employment::Retired {
                0.10
            } else {
                0.22
            };
            let has_debt = rng.gen_bool(debt_chance);
            if has_debt || rng.gen_bool(0.25) {
                w.start(
                    Agency::Income,
                    "debt.changed",
                    after(rng, person.added_at, now),
                );
                w.key("iin");
                w.iin(&person.iin);
                w.key("non_mortgage_debt");
                w.raw(if has_debt { "true" } else { "false" });
                w.finish(sink)?;
            }
        }
        let living = i64::try_from(members.iter().filter(|p| p.died_at.is_none()).count())
            .expect("a family is small")
            .max(1);
        let poor = family_income_tiyn < POVERTY_LINE_TIYN * living;

        // Health: insurance for everyone (the uninsured are mostly outside formal work), then
        // disability assessments.
        for person in members.iter() {
            let uninsured_chance = match person.employment {
                None => 0.06,
                Some(Employment::Employed) => 0.05,
                Some(Employment::SelfEmployed) => 0.30,
                Some(Employment::Unemployed) => 0.45,
                Some(Employment::Student) => 0.08,
                Some(Employment::Retired) => 0.02,
                Some(Employment::Caregiver) => 0.12,
            };
            let insured = !rng.gen_bool(uninsured_chance);
            w.start(
                Agency::Health,
                "insurance.changed",
                after(rng, person.added_at, now),
            );
            w.key("iin");
            w.iin(&person.iin);
            w.key("insured");
            w.raw(if insured { "true" } else { "false" });
            w.finish(sink)?;
        }
        for person in members.iter() {
            let Some(group) = person.disability else {
                continue;
            };
            // Group 1 is mostly for life; other groups are reassessed in one to three years; a
            // child's, at the latest when they turn 18.
            let until = match group {
                Disability::Group1 if rng.gen_bool(0.7) => None,
                _ if rng.gen_bool(0.15) => None,
                Disability::Child => Some(
                    (today_day + rng.gen_range(180..1_100)).min(person.birth_day + years(18.0)),
                ),
                _ => Some(today_day + rng.gen_range(180..1_100)),
            };
            w.start(
                Agency::Health,
                "disability.assessed",
                after(rng, person.added_at, now),
            );
            w.key("iin");
            w.iin(&person.iin);
            w.key("group");
            w.string(group.as_str());
            w.key("until");
            match until {
                Some(day) => w.date(day),
                None => w.raw("null"),
            }
            w.finish(sink)?;
        }

        // Housing: one record for the family.
        let size = i64::try_from(members.len()).expect("a family is small");
        w.start(
            Agency::Housing,
            "housing.changed",
            after(rng, facts.base, now),
        );
        w.key("family_id");
        w.iin(family_id);
        let tenure = match (facts.urban, rng.gen_range(0..100)) {
            (true, 0..=69) | (false, 0..=84) => "owned",
            (true, 70..=89) | (false, 85..=89) => "rented",
            (true, 90..=93) | (false, 90..=91) => "social",
            _ => "none",
        };
        w.key("tenure");
        w.string(tenure);
        // Area in tenths of a square metre: flats in town, larger houses in villages; families
        // without housing of their own live in a room or with relatives.
        let (fixed, per_person, low, high) = match (tenure, facts.urban) {
            ("none", _) => (120, 80, 60, 120),
            ("social", _) => (300, 90, 80, 120),
            (_, true) => (280, 130, 75, 135),
            (_, false) => (450, 150, 70, 150),
        };
        let area_tenths = (fixed + per_person * size) * rng.gen_range(low..=high) / 100;
        w.key("area_m2");
        if rng.gen_bool(0.5) {
            w.integer(area_tenths / 10);
        } else {
            w.integer(area_tenths / 10);
            w.raw(".");
            w.integer(area_tenths % 10);
        }
        w.key("utilities");
        w.raw("[");
        let chances: [(&str, f64); 4] = if facts.urban {
            [
                ("water", 0.99),
                ("heating", 0.97),
                ("sewerage", 0.96),
                ("gas", 0.55),
            ]
        } else {
            [
                ("water", 0.82),
                ("heating", 0.60),
                ("sewerage", 0.32),
                ("gas", 0.45),
            ]
        };
        let mut first = true;
        for (utility, chance) in chances {
            if rng.gen_bool(chance) {
                if !first {
                    w.raw(",");
                }
                first = false;
                w.string(utility);
            }
        }
        w.raw("]");
        w.finish(sink)?;

        // Education: enrolment of everyone from three, and attainment.
        for person in members.iter() {
            let age = person.age_years();
            if age < 3.0 {
                continue;
            }
            let student = person.employment == Some(Employment::Student);
            let draw = rng.gen_range(0..1000);
            let (enrolled, attainment) = if age < 6.0 {
                (if draw < 850 { "preschool" } else { "none" }, "none")
            } else if age < 7.0 {
                (
                    match draw {
                        0..=699 => "school",
                        700..=949 => "preschool",
                        _ => "none",
                    },
                    "none",
                )
            } else if age < 18.0 {
                let attainment = if age < 11.0 { "none" } else { "primary" };
                let enrolled = match draw {
                    0..=14 => "none",
                    15..=159 if age >= 15.0 => "college",
                    _ => "school",
                };
                (enrolled, attainment)
            } else if student {
                (
                    if draw < 600 { "university" } else { "college" },
                    if draw < 800 {
                        "secondary"
                    } else {
                        "vocational"
                    },
                )
            } else {
                let attainment = if age < 23.0 {
                    match draw {
                        0..=29 => "primary",
                        30..=649 => "secondary",
                        650..=899 => "vocational",
                        _ => "higher",
                    }
                } else if age < 65.0 {
                    match draw {
                        0..=9 => "none",
                        10..=39 => "primary",
                        40..=319 => "secondary",
                        320..=679 => "vocational",
                        _ => "higher",
                    }
                } else {
                    match draw {
                        0..=29 => "none",
                        30..=149 => "primary",
                        150..=499 => "secondary",
                        500..=799 => "vocational",
                        _ => "higher",
                    }
                };
                let enrolled = if age < 36.0 && rng.gen_bool(0.03) {
                    "university"
                } else {
                    "none"
                };
                (enrolled, attainment)
            };
            w.start(
                Agency::Education,
                "education.changed",
                after(rng, person.added_at, now),
            );
            w.key("iin");
            w.iin(&person.iin);
            w.key("enrolled");
            w.string(enrolled);
            w.key("attainment");
            w.string(attainment);
            w.finish(sink)?;
        }

        // Social: awards to mothers of five or more, and to some older women who raised large
        // families that have left home; social contracts for some poor families.
        let children = members.iter().filter(|p| p.role == Role::Child).count();
        for person in members.iter() {
            if person.sex != Sex::Female {
                continue;
            }
            let award = if matches!(person.role, Role::Head | Role::Spouse) && children >= 5 {
                let draw = rng.gen_range(0..100);
                match children {
                    5 => (draw < 45).then_some("kumis_alka"),
                    6 => match draw {
                        0..=54 => Some("kumis_alka"),
                        55..=84 => Some("altyn_alka"),
                        _ => None,
                    },
                    _ => match draw {
                        0..=59 => Some("altyn_alka"),
                        60..=89 => Some("mother_heroine"),
                        _ => None,
                    },
                }
            } else if person.age_years() >= 55.0 && rng.gen_bool(0.04) {
                Some(if rng.gen_bool(0.6) {
                    "kumis_alka"
                } else {
                    "altyn_alka"
                })
            } else {
                None
            };
            if let Some(award) = award {
                w.start(
                    Agency::Social,
                    "award.granted",
                    after(rng, person.added_at, now),
                );
                w.key("iin");
                w.iin(&person.iin);
                w.key("award");
                w.string(award);
                w.finish(sink)?;
            }
        }
        if poor {
            let draw = rng.gen_range(0..100);
            if draw < 55 {
                w.start(
                    Agency::Social,
                    "social_contract.changed",
                    after(rng, facts.base, now),
                );
                w.key("family_id");
                w.iin(family_id);
                w.key("signed");
                w.raw(if draw < 45 { "true" } else { "false" });
                w.finish(sink)?;
            }
        }

        // Payments: a bank account for ~80% of adults, a social wallet for ~5% (more in poor
        // families, whose benefits are protected from seizure there).
        for person in members.iter().filter(|p| p.is_adult()) {
            if rng.gen_bool(0.80) {
                let bank = pick_weighted(rng, &BANKS);
                let mut account = [b'0'; 13];
                let form = rng.gen_range(0..10);
                let digits_from = match form {
                    0..=3 => {
                        account[..3].copy_from_slice(b"KZT");
                        3
                    }
                    4..=6 => {
                        account[0] = b'S';
                        1
                    }
                    _ => 0,
                };
                for digit in account[digits_from..].iter_mut() {
                    *digit = b'0' + rng.gen_range(0..10u8);
                }
                let check = iban_check_digits(bank.as_bytes(), &account);
                w.start(
                    Agency::Payments,
                    "payout.account_changed",
                    after(rng, person.added_at, now),
                );
                w.key("iin");
                w.iin(&person.iin);
                w.key("iban");
                w.open_string();
                w.raw("KZ");
                w.push_digits(u64::from(check), 2);
                w.raw(bank);
                w.ascii(&account);
                w.close_string();
                w.finish(sink)?;
            }
            let wallet_chance = if poor { 0.12 } else { 0.04 };
            if rng.gen_bool(wallet_chance) {
                w.start(
                    Agency::Payments,
                    "social_wallet.opened",
                    after(rng, person.added_at, now),
                );
                w.key("iin");
                w.iin(&person.iin);
                w.finish(sink)?;
            }
        }

        // Last, a death.
        for person in members.iter() {
            if let Some(died_at) = person.died_at {
                w.start(Agency::Population, "citizen.died", died_at);
                w.key("iin");
                w.iin(&person.iin);
                w.key("date");
                w.date(died_at.div_euclid(SECONDS_PER_DAY));
                w.finish(sink)?;
            }
        }
        Ok(())
    }
}

/// The family-level draws that [`Generator::emit`] needs.
struct FamilyFacts {
    region: &'static RegionProfile,
    urban: bool,
    /// When the family's records start.
    base: i64,
}

/// A time after `earliest` and no later than `now`.
fn after(rng: &mut ChaCha8Rng, earliest: i64, now: i64) -> i64 {
    let from = earliest + 60;
    if from < now {
        rng.gen_range(from..=now)
    } else {
        now
    }
}

// ---------------------------------------------------------------------------------------------
// Family composition.
// ---------------------------------------------------------------------------------------------

/// Pushes the members of one family: its type, then ages and sexes consistent with it. The
/// shares give about 3.2 people a family:
///
/// | type | share | size |
/// |---|---|---|
/// | single adult 18–62 | 11% | 1 |
/// | lone pensioner 63–92 (70% women) | 10% | 1 |
/// | couple without children (young, or children left home) | 15% | 2 |
/// | couple with 1–7 children | 45% | ~4.3 |
/// | single parent (88% mothers) with 1–4 children | 9% | ~2.6 |
/// | three generations: a couple, 1–4 children, 1–2 parents | 10% | ~5.5 |
///
/// and 3% of families with a head also house an "other" relative.
fn compose(rng: &mut ChaCha8Rng, members: &mut Vec<Person>, russian: bool, days_into_year: i64) {
    let draw = rng.gen_range(0..100);
    match draw {
        0..=10 => {
            let sex = if rng.gen_bool(0.5) {
                Sex::Male
            } else {
                Sex::Female
            };
            let age = rng.gen_range(18.0..62.0);
            members.push(Person::new(
                Role::Head,
                sex,
                years(age) + rng.gen_range(0..365),
            ));
        }
        11..=20 => {
            let sex = if rng.gen_bool(0.7) {
                Sex::Female
            } else {
                Sex::Male
            };
            let age = 63.0 + 29.0 * rng.gen::<f64>().powf(1.3);
            members.push(Person::new(
                Role::Head,
                sex,
                years(age) + rng.gen_range(0..365),
            ));
        }
        21..=35 => {
            let wife_age = if rng.gen_bool(0.4) {
                rng.gen_range(19.0..35.0)
            } else {
                rng.gen_range(45.0..78.0)
            };
            push_couple(rng, members, years(wife_age));
        }
        36..=80 => {
            let count = child_count(rng, russian);
            let (mother_age, children) = children_ages(rng, count, days_into_year);
            push_couple(rng, members, mother_age);
            members.extend(
                children
                    .iter()
                    .take(count)
                    .map(|&(sex, days)| Person::new(Role::Child, sex, days)),
            );
        }
        81..=89 => {
            let count = match rng.gen_range(0..100) {
                0..=54 => 1,
                55..=84 => 2,
                85..=95 => 3,
                _ => 4,
            };
            let (mother_age, children) = children_ages(rng, count, days_into_year);
            if rng.gen_bool(0.88) {
                members.push(Person::new(Role::Head, Sex::Female, mother_age));
            } else {
                let father_age = mother_age + years(rng.gen_range(0.0..6.0));
                members.push(Person::new(Role::Head, Sex::Male, father_age));
            }
            members.extend(
                children
                    .iter()
                    .take(count)
                    .map(|&(sex, days)| Person::new(Role::Child, sex, days)),
            );
        }
        _ => {
            let count = match rng.gen_range(0..100) {
                0..=29 => 1,
                30..=64 => 2,
                65..=89 => 3,
                _ => 4,
            };
            let (mother_age, children) = children_ages(rng, count, days_into_year);
            push_couple(rng, members, mother_age);
            let oldest = members
                .iter()
                .map(|p| p.age_days)
                .max()
                .unwrap_or(mother_age);
            let parent_age = (oldest + years(rng.gen_range(21.0..33.0))).min(years(97.0));
            if rng.gen_bool(0.4) {
                members.push(Person::new(Role::Parent, Sex::Male, parent_age));
                let other = (parent_age - years(rng.gen_range(0.0..6.0))).max(years(45.0));
                members.push(Person::new(Role::Parent, Sex::Female, other));
            } else {
                let sex = if rng.gen_bool(0.7) {
                    Sex::Female
                } else {
                    Sex::Male
                };
                members.push(Person::new(Role::Parent, sex, parent_age));
            }
            members.extend(
                children
                    .iter()
                    .take(count)
                    .map(|&(sex, days)| Person::new(Role::Child, sex, days)),
            );
        }
    }
    if members.len() > 1 && rng.gen_bool(0.03) {
        let sex = if rng.gen_bool(0.5) {
            Sex::Male
        } else {
            Sex::Female
        };
        members.push(Person::new(
            Role::Other,
            sex,
            years(rng.gen_range(18.0..41.0)),
        ));
    }
}

/// Head and spouse; the husband heads the family in 85% of couples and is a few years older.
fn push_couple(rng: &mut ChaCha8Rng, members: &mut Vec<Person>, wife_age_days: i64) {
    let husband_age_days = (wife_age_days + years(rng.gen_range(-1.0..7.0))).max(years(18.0) + 30);
    let wife = (Sex::Female, wife_age_days.max(years(18.0) + 30));
    let husband = (Sex::Male, husband_age_days);
    let (head, spouse) = if rng.gen_bool(0.85) {
        (husband, wife)
    } else {
        (wife, husband)
    };
    members.push(Person::new(Role::Head, head.0, head.1));
    members.push(Person::new(Role::Spouse, spouse.0, spouse.1));
}

/// Children in a couple's family: 1–7, more in Kazakh families than in Russian ones.
fn child_count(rng: &mut ChaCha8Rng, russian: bool) -> usize {
    let draw = rng.gen_range(0..1000);
    if russian {
        match draw {
            0..=449 => 1,
            450..=849 => 2,
            850..=969 => 3,
            _ => 4,
        }
    } else {
        match draw {
            0..=279 => 1,
            280..=609 => 2,
            610..=819 => 3,
            820..=919 => 4,
            920..=964 => 5,
            965..=989 => 6,
            _ => 7,
        }
    }
}

/// The most children [`children_ages`] makes.
const CHILDREN_MAX: usize = 7;

/// Ages of `count` children, youngest first, and their mother's age, all in days.
///
/// The youngest child is born this year in 7% of families with children (so the birth allowance
/// applies), is under 1.5 in another 7% (the childcare allowance), and otherwise is 1.5–17.
/// Older siblings follow at 1–5 years (2% twins); the mother had her first child at 19–31 and her
/// last by 45.
fn children_ages(
    rng: &mut ChaCha8Rng,
    count: usize,
    days_into_year: i64,
) -> (i64, [(Sex, i64); CHILDREN_MAX]) {
    assert!((1..=CHILDREN_MAX).contains(&count), "1..=7 children");
    let draw = rng.gen_range(0..100);
    let youngest = if draw < 7 && days_into_year >= 1 {
        rng.gen_range(1..=days_into_year)
    } else if draw < 14 {
        rng.gen_range(1..548)
    } else {
        rng.gen_range(548..=years(17.0))
    };
    let first_birth_age = years(rng.gen_range(19.0..31.0));
    let gaps = i64::try_from(count - 1).expect("at most 6 gaps");
    let room = (years(45.0) - first_birth_age).max(0);
    let widest_gap = if gaps == 0 {
        0
    } else {
        (room / gaps).clamp(330, 1_800)
    };

    let mut children = [(Sex::Male, 0); CHILDREN_MAX];
    let mut age = youngest;
    for (position, child) in children.iter_mut().take(count).enumerate() {
        if position > 0 {
            age += if rng.gen_bool(0.02) {
                0
            } else {
                rng.gen_range(330..=widest_gap)
            };
        }
        let sex = if rng.gen_bool(0.512) {
            Sex::Male
        } else {
            Sex::Female
        };
        *child = (sex, age);
    }
    let oldest = age;
    (oldest + first_birth_age, children)
}

fn pick_weighted<T: Copy>(rng: &mut ChaCha8Rng, table: &[(T, u32)]) -> T {
    let total: u32 = table.iter().map(|&(_, weight)| weight).sum();
    let mut draw = rng.gen_range(0..total);
    for &(value, weight) in table {
        if draw < weight {
            return value;
        }
        draw -= weight;
    }
    unreachable!("the draw is below the total weight")
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Synthetic amounts are drawn from float distributions and turned into integer tiyn once, here;
/// every amount the output carries is exact from then on.
fn tiyn(tenge: f64) -> i64 {
    (tenge * 100.0).round() as i64
}

fn whole_tenge_in_tiyn(tenge: f64) -> i64 {
    tenge.round() as i64 * 100
}

fn round_to_tenge(tiyn: i64) -> i64 {
    (tiyn + 50) / 100 * 100
}

/// SplitMix64: spreads a seed into the serial table's starting offsets and the phone offset.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------------------------
// Identifiers.
// ---------------------------------------------------------------------------------------------

/// The IIN for a birth date, sex and serial, or `None` for a serial whose check digit is never
/// issued (DOMAIN.md: both weightings give 10).
fn make_iin(year: i64, month: u32, day: u32, sex: Sex, serial: u32) -> Option<[u8; 12]> {
    assert!((1..=9999).contains(&serial), "a serial has four digits");
    let century = match year {
        1800..=1899 => 1,
        1900..=1999 => 3,
        2000..=2099 => 5,
        _ => panic!("no IIN century digit for {year}"),
    } + u8::from(sex == Sex::Female);
    let year_in_century = u8::try_from(year.rem_euclid(100)).expect("below 100");
    let month = u8::try_from(month).expect("a month is small");
    let day = u8::try_from(day).expect("a day is small");
    let serial = u16::try_from(serial).expect("four digits");
    let mut digits = [0u8; 12];
    digits[0] = year_in_century / 10;
    digits[1] = year_in_century % 10;
    digits[2] = month / 10;
    digits[3] = month % 10;
    digits[4] = day / 10;
    digits[5] = day % 10;
    digits[6] = century;
    for (position, divisor) in [1000u16, 100, 10, 1].into_iter().enumerate() {
        digits[7 + position] = u8::try_from(serial / divisor % 10).expect("a digit");
    }
    digits[11] = iin_check_digit(&digits[..11])?;
    Some(digits.map(|digit| b'0' + digit))
}

/// DOMAIN.md: Σ dᵢ·i (i = 1..11) mod 11; if that is 10, the weights 3,4,5,6,7,8,9,10,11,1,2;
/// if that is 10 again, `None`. `digits` are values 0–9.
fn iin_check_digit(digits: &[u8]) -> Option<u8> {
    const SECOND_WEIGHTS: [u32; 11] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2];
    let first: u32 = digits
        .iter()
        .zip(1u32..)
        .map(|(&digit, weight)| u32::from(digit) * weight)
        .sum::<u32>()
        % 11;
    if first != 10 {
        return Some(u8::try_from(first).expect("below 11"));
    }
    let second: u32 = digits
        .iter()
        .zip(SECOND_WEIGHTS)
        .map(|(&digit, weight)| u32::from(digit) * weight)
        .sum::<u32>()
        % 11;
    (second != 10).then(|| u8::try_from(second).expect("below 11"))
}

/// ISO 7064 MOD-97 check digits of a Kazakh IBAN `KZ??` + bank code + account: the BBAN is
/// moved in front of `KZ00`, letters count as 10–35, and the check is 98 − (that mod 97).
fn iban_check_digits(bank_code: &[u8], account: &[u8]) -> u32 {
    let mut remainder = 0u32;
    for &character in bank_code.iter().chain(account).chain(b"KZ00") {
        remainder = match character {
            b'0'..=b'9' => (remainder * 10 + u32::from(character - b'0')) % 97,
            b'A'..=b'Z' => (remainder * 100 + u32::from(character - b'A') + 10) % 97,
            _ => panic!("an IBAN holds digits and capital letters"),
        };
    }
    98 - remainder
}

// ---------------------------------------------------------------------------------------------
// Calendar arithmetic (days since 1970-01-01, proleptic Gregorian; H. Hinnant's algorithms),
// done by hand because it runs for every event.
// ---------------------------------------------------------------------------------------------

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = u32::try_from(day_of_year - (153 * month_index + 2) / 5 + 1).expect("1..=31");
    let month = u32::try_from(if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    })
    .expect("1..=12");
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

// ---------------------------------------------------------------------------------------------
// JSON: written by hand into one reused buffer. Every string the generator writes comes from its
// own tables (ASCII, no quote, no backslash, no control character), so nothing needs escaping;
// a debug assertion keeps it so. The tests parse every line with serde_json.
// ---------------------------------------------------------------------------------------------

struct EventWriter {
    /// The event being written; always ASCII.
    buffer: Vec<u8>,
    agency: Agency,
    /// Events so far per agency; the next id of an agency is its count plus one.
    by_agency: [u64; 7],
    events: u64,
    first_field: bool,
    /// `YYYY-MM-DD` of every day from `recent_first_day` to today: every `occurred_at` falls in
    /// this window, and formatting its date by table instead of by calendar arithmetic saves a
    /// tenth of the run.
    recent_dates: Vec<[u8; 10]>,
    recent_first_day: i64,
    /// Whether events begin with `"agency":"…",` (NDJSON for `dfm load`).
    with_agency: bool,
    /// Where the event being written starts in `buffer`.
    event_start: usize,
}

impl EventWriter {
    fn new(today_day: i64, with_agency: bool) -> EventWriter {
        let recent_first_day = today_day - HISTORY_DAYS_MAX - 2;
        EventWriter {
            buffer: Vec::with_capacity(OUTPUT_BUFFER_BYTES + 1024),
            agency: Agency::Population,
            by_agency: [0; 7],
            events: 0,
            first_field: true,
            recent_dates: (recent_first_day..=today_day).map(format_date).collect(),
            recent_first_day,
            with_agency,
            event_start: 0,
        }
    }

    /// Begins `{"id":"…","type":"…","occurred_at":"…","data":{`.
    #[inline(always)]
    fn start(&mut self, agency: Agency, event_type: &str, occurred_at: i64) {
        self.agency = agency;
        self.first_field = true;
        self.event_start = self.buffer.len();
        if self.with_agency {
            self.buffer.extend_from_slice(b"{\"agency\":\"");
            self.buffer.extend_from_slice(agency.name().as_bytes());
            self.buffer.extend_from_slice(b"\",\"id\":\"");
        } else {
            self.buffer.extend_from_slice(b"{\"id\":\"");
        }
        self.buffer.extend_from_slice(agency.id_prefix().as_bytes());
        push_padded(&mut self.buffer, self.by_agency[agency.index()] + 1, 9);
        self.buffer.extend_from_slice(b"\",\"type\":\"");
        self.buffer.extend_from_slice(event_type.as_bytes());
        self.buffer.extend_from_slice(b"\",\"occurred_at\":\"");
        let day = occurred_at.div_euclid(SECONDS_PER_DAY);
        self.push_date(day);
        self.buffer.push(b'T');
        let time = format_time_of_day(occurred_at.rem_euclid(SECONDS_PER_DAY));
        self.buffer.extend_from_slice(&time);
        self.buffer.extend_from_slice(b"Z\",\"data\":{");
    }

    /// Ends the event and hands it to the sink.
    fn finish<S: EventSink>(&mut self, sink: &mut S) -> io::Result<()> {
        self.buffer.extend_from_slice(b"}}");
        self.by_agency[self.agency.index()] += 1;
        self.events += 1;
        sink.event(self.agency.name(), &mut self.buffer, self.event_start)
    }

    #[inline(always)]
    fn key(&mut self, name: &str) {
        if !self.first_field {
            self.buffer.push(b',');
        }
        self.first_field = false;
        self.buffer.push(b'"');
        self.buffer.extend_from_slice(name.as_bytes());
        self.buffer.extend_from_slice(b"\":");
    }

    #[inline(always)]
    fn raw(&mut self, text: &str) {
        debug_assert!(
            text.bytes()
                .all(|b| b.is_ascii() && !b.is_ascii_control() && b != b'"' && b != b'\\'),
            "generated text needs no JSON escaping: {text}"
        );
        self.buffer.extend_from_slice(text.as_bytes());
    }

    #[inline(always)]
    fn ascii(&mut self, bytes: &[u8]) {
        debug_assert!(bytes.iter().all(u8::is_ascii_alphanumeric));
        self.buffer.extend_from_slice(bytes);
    }

    #[inline(always)]
    fn open_string(&mut self) {
        self.buffer.push(b'"');
    }

    #[inline(always)]
    fn close_string(&mut self) {
        self.buffer.push(b'"');
    }

    #[inline(always)]
    fn string(&mut self, text: &str) {
        self.open_string();
        self.raw(text);
        self.close_string();
    }

    /// An IIN or a family id: a quoted string of ASCII letters and digits.
    #[inline(always)]
    fn iin(&mut self, iin: &[u8]) {
        self.open_string();
        self.ascii(iin);
        self.close_string();
    }

    fn integer(&mut self, value: i64) {
        if value < 0 {
            self.buffer.push(b'-');
        }
        push_padded(&mut self.buffer, value.unsigned_abs(), 1);
    }

    fn push_digits(&mut self, value: u64, width: usize) {
        push_padded(&mut self.buffer, value, width);
    }

    #[inline(always)]
    fn push_date(&mut self, day: i64) {
        let recent = usize::try_from(day - self.recent_first_day)
            .ok()
            .and_then(|offset| self.recent_dates.get(offset));
        let text = match recent {
            Some(text) => *text,
            None => format_date(day),
        };
        self.buffer.extend_from_slice(&text);
    }

    #[inline(always)]
    fn date(&mut self, day: i64) {
        self.open_string();
        self.push_date(day);
        self.close_string();
    }

    fn month(&mut self, year: i64, month: u32) {
        self.open_string();
        push_padded(
            &mut self.buffer,
            u64::try_from(year).expect("a year after 0"),
            4,
        );
        self.buffer.push(b'-');
        push_padded(&mut self.buffer, u64::from(month), 2);
        self.close_string();
    }

    /// A decimal string with two decimals, `"250000.00"`.
    fn money(&mut self, tiyn: i64) {
        assert!(tiyn >= 0, "generated amounts are never negative");
        let tiyn = tiyn.unsigned_abs();
        self.open_string();
        push_padded(&mut self.buffer, tiyn / 100, 1);
        self.buffer.push(b'.');
        push_padded(&mut self.buffer, tiyn % 100, 2);
        self.close_string();
    }

    /// `"+77XXXXXXXXX"`: the citizen's phone ordinal mapped through a bijection of
    /// [0, PHONE_SPACE), so phones are unique for the first 120 million and look random.
    fn phone(&mut self, offset: u64, ordinal: u64) {
        let number = (ordinal % PHONE_SPACE * PHONE_STRIDE + offset) % PHONE_SPACE;
        let prefix = usize::try_from(number / 10_000_000).expect("below 12");
        self.open_string();
        self.buffer.extend_from_slice(b"+7");
        self.buffer
            .extend_from_slice(PHONE_PREFIXES[prefix].as_bytes());
        push_padded(&mut self.buffer, number % 10_000_000, 7);
        self.close_string();
    }
}

/// Appends `value` in decimal, zero-padded to at least `width` (at most 20) digits, with one
/// copy: pushing digit by digit was a third of the generator's time.
#[inline(always)]
fn push_padded(buffer: &mut Vec<u8>, mut value: u64, width: usize) {
    debug_assert!(width <= 20);
    let mut digits = [b'0'; 20];
    let mut position = digits.len();
    loop {
        position -= 1;
        digits[position] = b'0' + u8::try_from(value % 10).expect("a digit");
        value /= 10;
        if value == 0 {
            break;
        }
    }
    let start = position.min(digits.len() - width);
    buffer.extend_from_slice(&digits[start..]);
}

/// `YYYY-MM-DD`.
fn format_date(day: i64) -> [u8; 10] {
    let (year, month, day_of_month) = civil_from_days(day);
    let year = u32::try_from(year).expect("a year after 0");
    let mut text = *b"0000-00-00";
    for (position, divisor) in [1000, 100, 10, 1].into_iter().enumerate() {
        text[position] = b'0' + u8::try_from(year / divisor % 10).expect("a digit");
    }
    text[5] = b'0' + u8::try_from(month / 10).expect("a digit");
    text[6] = b'0' + u8::try_from(month % 10).expect("a digit");
    text[8] = b'0' + u8::try_from(day_of_month / 10).expect("a digit");
    text[9] = b'0' + u8::try_from(day_of_month % 10).expect("a digit");
    text
}

/// `HH:MM:SS` of a second of the day.
fn format_time_of_day(second_of_day: i64) -> [u8; 8] {
    let second = u8::try_from(second_of_day % 60).expect("below 60");
    let minute = u8::try_from(second_of_day / 60 % 60).expect("below 60");
    let hour = u8::try_from(second_of_day / 3_600).expect("below 24");
    [
        b'0' + hour / 10,
        b'0' + hour % 10,
        b':',
        b'0' + minute / 10,
        b'0' + minute % 10,
        b':',
        b'0' + second / 10,
        b'0' + second % 10,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::{BTreeSet, HashMap, HashSet};
    use std::sync::OnceLock;

    const TODAY: (i32, u32, u32) = (2026, 11, 2);

    fn options(families: u64, seed: u64) -> GenerateOptions {
        GenerateOptions {
            families,
            seed,
            today: NaiveDate::from_ymd_opt(TODAY.0, TODAY.1, TODAY.2).unwrap(),
        }
    }

    fn ndjson(options: &GenerateOptions) -> (Vec<u8>, GenerateSummary) {
        let mut out = Vec::new();
        let summary = write_ndjson(options, &mut out).unwrap();
        (out, summary)
    }

    /// DOMAIN.md's check, written independently of the generator's.
    fn iin_is_valid(iin: &str) -> bool {
        let digits: Vec<u32> = iin.chars().filter_map(|c| c.to_digit(10)).collect();
        if digits.len() != 12 || iin.len() != 12 {
            return false;
        }
        let mut check = (0..11).map(|i| digits[i] * (i as u32 + 1)).sum::<u32>() % 11;
        if check == 10 {
            let weights = [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2];
            check = (0..11).map(|i| digits[i] * weights[i]).sum::<u32>() % 11;
            if check == 10 {
                return false;
            }
        }
        check == digits[11]
    }

    /// ISO 7064 MOD-97 over the rearranged IBAN, written independently of the generator's.
    fn iban_is_valid(iban: &str) -> bool {
        if iban.len() != 20 || !iban.starts_with("KZ") {
            return false;
        }
        let rearranged = format!("{}{}", &iban[4..], &iban[..4]);
        let mut remainder: u64 = 0;
        for c in rearranged.chars() {
            let value = match c.to_digit(36) {
                Some(v) => v as u64,
                None => return false,
            };
            remainder = if value < 10 {
                (remainder * 10 + value) % 97
            } else {
                (remainder * 100 + value) % 97
            };
        }
        remainder == 1
    }

    /// Whether an IIN agrees with a birth date and sex.
    fn iin_agrees(iin: &str, birth_date: NaiveDate, sex: &str) -> bool {
        let century_digit = iin.as_bytes()[6] - b'0';
        let male = century_digit % 2 == 1;
        let century_start = match century_digit {
            1 | 2 => 1800,
            3 | 4 => 1900,
            5 | 6 => 2000,
            _ => return false,
        };
        let year: i32 = century_start + iin[0..2].parse::<i32>().unwrap();
        let month: u32 = iin[2..4].parse().unwrap();
        let day: u32 = iin[4..6].parse().unwrap();
        NaiveDate::from_ymd_opt(year, month, day) == Some(birth_date) && male == (sex == "male")
    }

    /// Everything the tests observe about one population, gathered in one pass over it.
    #[derive(Default)]
    struct Observed {
        families: u64,
        lines: u64,
        regions: BTreeSet<String>,
        members: u64,
        /// Problems found, by kind; each test asserts its kinds are empty.
        problems: BTreeMap<&'static str, Vec<String>>,
        births_this_year: u64,
        infants_under_18_months: u64,
        families_with_4_minors: u64,
        poor_families: u64,
        deaths: u64,
        by_type: BTreeMap<String, u64>,
        uninsured: u64,
        insured_reports: u64,
        disabled: u64,
        adults: u64,
        adults_with_contact: u64,
        adults_with_account: u64,
        salaries: Vec<i64>,
    }

    impl Observed {
        fn problem(&mut self, kind: &'static str, message: String) {
            let list = self.problems.entry(kind).or_default();
            if list.len() < 5 {
                list.push(message);
            }
        }

        fn problems(&self, kind: &str) -> Vec<String> {
            self.problems.get(kind).cloned().unwrap_or_default()
        }
    }

    fn parse_tiyn(amount: &str) -> Option<i64> {
        let (whole, fraction) = amount.split_once('.')?;
        if fraction.len() != 2 || whole.is_empty() {
            return None;
        }
        Some(whole.parse::<i64>().ok()? * 100 + fraction.parse::<i64>().ok()?)
    }

    fn observe(bytes: &[u8], today: NaiveDate) -> Observed {
        let mut seen = Observed::default();
        let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
        let mut citizens: HashMap<String, (NaiveDate, bool)> = HashMap::new(); // birth, adult
        let mut iin_family: HashMap<String, String> = HashMap::new();
        let mut added: HashSet<String> = HashSet::new();
        let mut family_members: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut income: HashMap<String, i64> = HashMap::new();
        let mut contacts: HashSet<String> = HashSet::new();
        let mut accounts: HashSet<String> = HashSet::new();
        let latest = today.and_hms_opt(0, 0, 0).unwrap().and_utc();
        let earliest = latest - chrono::Duration::days(HISTORY_DAYS_MAX + 1);

        for (number, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            seen.lines += 1;
            let event: Value = match serde_json::from_slice(line) {
                Ok(event) => event,
                Err(error) => {
                    seen.problem("json", format!("line {number}: {error}"));
                    continue;
                }
            };
            let field = |name: &str| event.get(name).and_then(Value::as_str).map(str::to_owned);
            let (Some(agency), Some(id), Some(kind), Some(occurred_at), Some(data)) = (
                field("agency"),
                field("id"),
                field("type"),
                field("occurred_at"),
                event.get("data").filter(|d| d.is_object()),
            ) else {
                seen.problem("json", format!("line {number}: missing a top-level field"));
                continue;
            };
            match chrono::DateTime::parse_from_rfc3339(&occurred_at) {
                Ok(at) if at >= earliest && at <= latest && occurred_at.ends_with('Z') => {}
                _ => seen.problem("time", format!("line {number}: occurred_at {occurred_at}")),
            }
            if !ids.entry(agency.clone()).or_default().insert(id.clone()) {
                seen.problem("ids", format!("line {number}: {agency} repeats {id}"));
            }
            let prefix = &agency[..3];
            if !id.starts_with(prefix) {
                seen.problem("ids", format!("line {number}: {id} is not from {agency}"));
            }
            *seen.by_type.entry(kind.clone()).or_default() += 1;
            let text = |name: &str| {
                data.get(name)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            let iin = text("iin");
            if data.get("iin").is_some() && !iin_is_valid(&iin) {
                seen.problem("iin", format!("line {number}: invalid IIN {iin}"));
            }
            match kind.as_str() {
                "citizen.registered" => {
                    let birth = NaiveDate::parse_from_str(&text("birth_date"), "%Y-%m-%d").unwrap();
                    let sex = text("sex");
                    if !iin_agrees(&iin, birth, &sex) {
                        seen.problem("iin", format!("{iin} disagrees with {birth} {sex}"));
                    }
                    if text("full_name").split(' ').count() != 2 {
                        seen.problem("json", format!("odd name {}", text("full_name")));
                    }
                    let adult = birth.years_since(today).is_none()
                        && today.years_since(birth).unwrap_or(0) >= 18;
                    if citizens.insert(iin.clone(), (birth, adult)).is_some() {
                        seen.problem("iin", format!("{iin} registered twice"));
                    }
                    if birth.year() == today.year() {
                        seen.births_this_year += 1;
                    }
                    if (today - birth).num_days() < 548 {
                        seen.infants_under_18_months += 1;
                    }
                    if adult {
                        seen.adults += 1;
                    }
                }
                "family.member_added" => {
                    let family = text("family_id");
                    if !citizens.contains_key(&iin) {
                        seen.problem("order", format!("{iin} added before registration"));
                    }
                    if !["head", "spouse", "child", "parent", "other"]
                        .contains(&text("role").as_str())
                    {
                        seen.problem("json", format!("role {}", text("role")));
                    }
                    seen.members += 1;
                    added.insert(iin.clone());
                    iin_family.insert(iin.clone(), family.clone());
                    family_members.entry(family).or_default().push(iin.clone());
                }
                "family.address_changed" => {
                    seen.families += 1;
                    seen.regions.insert(text("region"));
                }
                "citizen.contact_changed" => {
                    let phone = text("phone");
                    if phone.len() != 12 || !phone.starts_with("+77") {
                        seen.problem("json", format!("phone {phone}"));
                    }
                    contacts.insert(iin.clone());
                }
                "citizen.died" => {
                    seen.deaths += 1;
                    if !added.contains(&iin) {
                        seen.problem("order", format!("{iin} died before being added"));
                    }
                }
                "income.reported" => {
                    let amount = text("amount");
                    match parse_tiyn(&amount) {
                        Some(tiyn) => {
                            *income.entry(iin.clone()).or_default() += tiyn;
                            if text("source") == "salary" && text("month") == "2026-10" {
                                seen.salaries.push(tiyn);
                            }
                        }
                        None => seen.problem("money", format!("amount {amount}")),
                    }
                }
                "insurance.changed" => {
                    seen.insured_reports += 1;
                    if data.get("insured") == Some(&Value::Bool(false)) {
                        seen.uninsured += 1;
                    }
                }
                "disability.assessed" => seen.disabled += 1,
                "housing.changed" if !data.get("area_m2").is_some_and(Value::is_number) => {
                    seen.problem("json", format!("area {:?}", data.get("area_m2")));
                }
                "payout.account_changed" => {
                    let iban = text("iban");
                    if !iban_is_valid(&iban) {
                        seen.problem("iban", format!("invalid IBAN {iban}"));
                    }
                    accounts.insert(iin.clone());
                }
                _ => {}
            }
        }

        for (iin, (_, adult)) in &citizens {
            if *adult && contacts.contains(iin) {
                seen.adults_with_contact += 1;
            }
            if *adult && accounts.contains(iin) {
                seen.adults_with_account += 1;
            }
            if !iin_family.contains_key(iin) {
                seen.problem("order", format!("{iin} in no family"));
            }
        }
        for members in family_members.values() {
            let minors = members
                .iter()
                .filter(|iin| today.years_since(citizens[*iin].0).unwrap_or(0) < 18)
                .count();
            if minors >= 4 {
                seen.families_with_4_minors += 1;
            }
            let total: i64 = members
                .iter()
                .map(|iin| income.get(iin).copied().unwrap_or(0))
                .sum();
            let monthly_per_capita = total / 3 / members.len() as i64;
            if monthly_per_capita < POVERTY_LINE_TIYN {
                seen.poor_families += 1;
            }
        }
        seen
    }

    /// One population of 20,000 families, observed once for all the tests that read it.
    fn observed() -> &'static Observed {
        static OBSERVED: OnceLock<Observed> = OnceLock::new();
        OBSERVED.get_or_init(|| {
            let options = options(20_000, 7);
            let (bytes, summary) = ndjson(&options);
            let seen = observe(&bytes, options.today);
            assert_eq!(seen.lines, summary.events);
            assert_eq!(seen.families, summary.families);
            assert_eq!(summary.by_agency.values().sum::<u64>(), summary.events);
            seen
        })
    }

    #[test]
    fn same_seed_gives_same_bytes_and_another_seed_others() {
        let (first, _) = ndjson(&options(300, 42));
        let (second, _) = ndjson(&options(300, 42));
        let (other, _) = ndjson(&options(300, 43));
        assert!(!first.is_empty());
        assert_eq!(first, second);
        assert_ne!(first, other);
    }

    #[test]
    fn a_smaller_population_is_a_prefix_of_a_larger_one() {
        let (small, small_summary) = ndjson(&options(150, 9));
        let (large, _) = ndjson(&options(400, 9));
        assert_eq!(small, large[..small.len()]);
        assert_eq!(small_summary.families, 150);
    }

    #[test]
    fn generate_and_write_ndjson_agree() {
        let options = options(200, 5);
        let mut lines = Vec::new();
        let summary = generate(&options, &mut |line| {
            lines.push(line);
            Ok(())
        })
        .unwrap();
        let (bytes, ndjson_summary) = ndjson(&options);
        assert_eq!(summary, ndjson_summary);
        let text = String::from_utf8(bytes).unwrap();
        for (line, written) in lines.iter().zip(text.lines()) {
            let expected = format!("{{\"agency\":\"{}\",{}", line.agency, &line.json[1..]);
            assert_eq!(expected, written);
        }
        assert_eq!(lines.len(), text.lines().count());
    }

    #[test]
    fn a_sink_error_stops_the_run() {
        let mut calls = 0;
        let result = generate(&options(10, 1), &mut |_| {
            calls += 1;
            if calls == 3 {
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"))
            } else {
                Ok(())
            }
        });
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(calls, 3);
    }

    #[test]
    fn every_line_is_an_event_with_agency_id_type_time_and_data() {
        let seen = observed();
        assert_eq!(seen.problems("json"), Vec::<String>::new());
        assert_eq!(seen.problems("time"), Vec::<String>::new());
        assert_eq!(seen.problems("money"), Vec::<String>::new());
    }

    #[test]
    fn event_ids_are_unique_per_agency() {
        assert_eq!(observed().problems("ids"), Vec::<String>::new());
    }

    #[test]
    fn every_iin_is_valid_unique_and_agrees_with_birth_date_and_sex() {
        assert_eq!(observed().problems("iin"), Vec::<String>::new());
    }

    #[test]
    fn every_iban_passes_mod_97() {
        let seen = observed();
        assert_eq!(seen.problems("iban"), Vec::<String>::new());
        assert!(seen.by_type["payout.account_changed"] > 0);
    }

    #[test]
    fn events_come_in_natural_order() {
        assert_eq!(observed().problems("order"), Vec::<String>::new());
    }

    #[test]
    fn all_twenty_regions_are_present() {
        let seen = observed();
        assert_eq!(seen.families, 20_000);
        let expected: BTreeSet<String> = REGIONS.iter().map(|r| r.code.to_owned()).collect();
        assert_eq!(seen.regions, expected);
    }

    #[test]
    fn families_average_about_three_point_two_people() {
        let seen = observed();
        let mean = seen.members as f64 / seen.families as f64;
        assert!((3.0..=3.4).contains(&mean), "mean family size {mean}");
    }

    #[test]
    fn some_children_are_born_this_year_and_some_are_under_eighteen_months() {
        let seen = observed();
        assert!(
            seen.births_this_year > 100,
            "{} births this year",
            seen.births_this_year
        );
        assert!(seen.infants_under_18_months > seen.births_this_year);
    }

    #[test]
    fn a_few_percent_of_families_have_four_or_more_minors() {
        let seen = observed();
        let share = seen.families_with_4_minors as f64 / seen.families as f64;
        assert!(
            (0.01..=0.08).contains(&share),
            "share with 4+ minors {share}"
        );
    }

    #[test]
    fn a_few_percent_of_families_are_below_the_poverty_line() {
        let seen = observed();
        let share = seen.poor_families as f64 / seen.families as f64;
        assert!((0.04..=0.10).contains(&share), "poor share {share}");
    }

    #[test]
    fn shares_of_facts_are_realistic() {
        let seen = observed();
        let uninsured = seen.uninsured as f64 / seen.insured_reports as f64;
        assert!((0.06..=0.14).contains(&uninsured), "uninsured {uninsured}");
        let disabled = seen.disabled as f64 / seen.members as f64;
        assert!((0.02..=0.045).contains(&disabled), "disabled {disabled}");
        let contact = seen.adults_with_contact as f64 / seen.adults as f64;
        assert!((0.78..=0.90).contains(&contact), "with a phone {contact}");
        let account = seen.adults_with_account as f64 / seen.adults as f64;
        assert!(
            (0.75..=0.85).contains(&account),
            "with an account {account}"
        );
        let deaths = seen.deaths as f64 / seen.members as f64;
        assert!((0.001..=0.006).contains(&deaths), "deaths {deaths}");
        let mut salaries = seen.salaries.clone();
        salaries.sort_unstable();
        let median = salaries[salaries.len() / 2] / 100;
        assert!(
            (250_000..=350_000).contains(&median),
            "median salary {median}"
        );
        for kind in [
            "citizen.contact_changed",
            "employment.changed",
            "debt.changed",
            "disability.assessed",
            "education.changed",
            "award.granted",
            "social_contract.changed",
            "social_wallet.opened",
            "citizen.died",
        ] {
            assert!(
                seen.by_type.get(kind).copied().unwrap_or(0) > 0,
                "no {kind}"
            );
        }
    }

    #[test]
    fn the_domain_examples_pass_the_generators_own_checks() {
        let digits: Vec<u8> = "06121160001".bytes().map(|b| b - b'0').collect();
        assert_eq!(iin_check_digit(&digits), Some(2));
        assert_eq!(iban_check_digits(b"125", b"KZT5004100100"), 86);
        assert_eq!(iban_check_digits(b"722", b"S000054326792"), 45);
        assert!(iin_is_valid("061211600012"));
        assert!(iban_is_valid("KZ86125KZT5004100100"));
        assert!(!iban_is_valid("KZ87125KZT5004100100"));
    }

    #[test]
    fn calendar_arithmetic_matches_chrono() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for offset in (-60_000i64..60_000).step_by(97) {
            let date = epoch + chrono::Duration::days(offset);
            assert_eq!(
                civil_from_days(offset),
                (i64::from(date.year()), date.month(), date.day())
            );
            assert_eq!(
                days_from_civil(i64::from(date.year()), date.month(), date.day()),
                offset
            );
        }
    }

    #[test]
    fn a_birth_date_whose_serials_are_used_up_moves_a_day_earlier() {
        let options = options(1, 3);
        let mut generator = Generator::new(&options, false).unwrap();
        let mut person = Person::new(Role::Head, Sex::Female, years(30.0));
        person.birth_day = generator.today_day - person.age_days;
        let birth_day = person.birth_day;
        generator.members.push(person);
        let slot = usize::try_from((birth_day - generator.serial_table_first_day) * 2).unwrap() + 1;
        generator.serial_table[slot] = 9999;

        generator.issue_iin(0);

        let person = generator.members[0];
        assert_eq!(person.birth_day, birth_day - 1);
        let iin = std::str::from_utf8(&person.iin).unwrap();
        assert!(iin_is_valid(iin), "{iin}");
        let (year, month, day) = civil_from_days(person.birth_day);
        let date = NaiveDate::from_ymd_opt(i32::try_from(year).unwrap(), month, day).unwrap();
        assert!(iin_agrees(iin, date, "female"), "{iin} {date}");
    }

    #[test]
    fn a_date_outside_the_iin_centuries_is_refused() {
        let mut options = options(1, 1);
        options.today = NaiveDate::from_ymd_opt(2101, 1, 1).unwrap();
        let error = write_ndjson(&options, &mut Vec::new()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }
}
