//! Identifiers: the validated newtypes for every key and code that crosses the feed API or lands
//! in the store — IIN, IBAN, phone number, region, locality, family id and calendar month.
//!
//! Each type can only hold a valid value: it is built by `parse` (or `FromStr`, or serde, which
//! all go through the same check), so code that holds an [`Iin`] never re-validates it. All of
//! them serialize as plain strings, and deserializing a bad string fails with the same
//! [`IdError`] that `parse` gives.
//!
//! Personal data stays out of logs: `Debug` of [`Iin`], [`Iban`] and [`Phone`] prints the masked
//! form, and no [`IdError`] message repeats a whole IIN, IBAN or phone number. `Display` prints
//! the full value, because the gateways and the store need it.
//!
//! This module never does IO and knows nothing of families, benefits or storage layout.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// Why a string is not a valid identifier. The messages are meant for the agency that sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("IIN must be 12 digits, got {found} characters")]
    IinLength { found: usize },
    #[error("IIN must be 12 digits, got {found:?} at position {position}")]
    IinNotDigit { position: usize, found: char },
    #[error("IIN century/sex digit {digit} is not 1-6")]
    IinCenturySex { digit: char },
    #[error("IIN birth date {yymmdd} is not a date")]
    IinBirthDate { yymmdd: String },
    #[error("IIN can never be issued (check digit is 10 with both weight sets)")]
    IinNeverIssued,
    #[error("IIN check digit is {found}, expected {expected}")]
    IinCheckDigit { found: u8, expected: u8 },
    #[error("IBAN must be 20 characters starting with KZ")]
    IbanShape,
    #[error("IBAN must be written in uppercase")]
    IbanLowercase,
    #[error("IBAN must be KZ, 2 check digits, a 3-digit bank code and 13 letters A-Z or digits")]
    IbanLayout,
    #[error("IBAN check failed (MOD-97 gives {remainder}, expected 1)")]
    IbanCheck { remainder: u32 },
    #[error("phone must be +7 followed by 10 digits")]
    Phone,
    #[error("unknown region code {code}")]
    UnknownRegion { code: String },
    #[error("sex must be male or female")]
    Sex,
    #[error("locality must be urban or rural")]
    Locality,
    #[error("family id must be 1-64 characters of A-Z a-z 0-9 - _ .")]
    FamilyId,
    #[error("month must be YYYY-MM")]
    Month,
}

/// Cuts untrusted input that an error message repeats, so a megabyte of garbage in a feed does
/// not become a megabyte of error message.
fn excerpt(input: &str) -> String {
    const LIMIT_CHARS: usize = 24;
    if input.chars().count() <= LIMIT_CHARS {
        input.to_owned()
    } else {
        let mut cut: String = input.chars().take(LIMIT_CHARS).collect();
        cut.push('…');
        cut
    }
}

/// Implements `FromStr` and serde (as a string) on top of an inherent `parse` and `as_str`.
macro_rules! string_conversions {
    ($type:ty) => {
        impl FromStr for $type {
            type Err = IdError;
            fn from_str(input: &str) -> Result<Self, IdError> {
                <$type>::parse(input)
            }
        }
        // As `try_from = "String", into = "String"` would, without making a
        // String on either way (a family record holds dozens of these).
        impl Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                // The parse error leaves the deserializer as try_from's did, so
                // that it reads the same (JSON adds no position to it).
                struct Text;
                impl serde::de::Visitor<'_> for Text {
                    type Value = Result<$type, IdError>;
                    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                        formatter.write_str("a string")
                    }
                    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                        Ok(<$type>::parse(text))
                    }
                }
                deserializer
                    .deserialize_str(Text)?
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// IIN

/// The first weight set of the IIN check digit.
const IIN_WEIGHTS_FIRST: [u32; 11] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
/// The second weight set, used when the first gives 10.
const IIN_WEIGHTS_SECOND: [u32; 11] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2];

/// The check digit of the first 11 digits (as numbers 0-9), or `None` when both weight sets
/// give 10 and the IIN can never be issued.
fn iin_check_digit(digits: &[u8; 11]) -> Option<u8> {
    let weighted = |weights: &[u32; 11]| -> u32 {
        let sum: u32 = digits
            .iter()
            .zip(weights)
            .map(|(&digit, &weight)| u32::from(digit) * weight)
            .sum();
        sum % 11
    };
    let first = weighted(&IIN_WEIGHTS_FIRST);
    let check = if first == 10 {
        weighted(&IIN_WEIGHTS_SECOND)
    } else {
        first
    };
    // `check` is below 11, so the conversion never fails.
    (check != 10).then(|| u8::try_from(check).expect("check digit below 11"))
}

/// The first year of the century that a century/sex digit (1-6) stands for.
fn century_start(century_sex_digit: u8) -> Option<i32> {
    match century_sex_digit {
        1 | 2 => Some(1800),
        3 | 4 => Some(1900),
        5 | 6 => Some(2000),
        _ => None,
    }
}

/// A Kazakhstan individual identification number: `YYMMDD`, a century/sex digit, a 4-digit
/// serial and a check digit.
///
/// Invariant: 12 ASCII digits, century/sex digit 1-6, a real birth date, a correct check digit.
/// `Debug` prints the masked form (`0612******12`) so that a stray `{:?}` never leaks an IIN.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Iin([u8; 12]);

impl Iin {
    pub fn parse(input: &str) -> Result<Iin, IdError> {
        let found = input.chars().count();
        if found != 12 {
            return Err(IdError::IinLength { found });
        }
        if let Some((position, found)) =
            input.chars().enumerate().find(|(_, c)| !c.is_ascii_digit())
        {
            return Err(IdError::IinNotDigit {
                position: position + 1,
                found,
            });
        }
        let ascii: [u8; 12] = input
            .as_bytes()
            .try_into()
            .expect("12 ASCII digits are 12 bytes");
        let iin = Iin(ascii);
        let digits = iin.digits();

        if century_start(digits[6]).is_none() {
            return Err(IdError::IinCenturySex {
                digit: char::from(ascii[6]),
            });
        }
        if iin.try_birth_date().is_none() {
            return Err(IdError::IinBirthDate {
                yymmdd: input[..6].to_owned(),
            });
        }
        let first_eleven: [u8; 11] = digits[..11].try_into().expect("12 digits have 11 first");
        match iin_check_digit(&first_eleven) {
            None => Err(IdError::IinNeverIssued),
            Some(expected) if expected != digits[11] => Err(IdError::IinCheckDigit {
                found: digits[11],
                expected,
            }),
            Some(_) => Ok(iin),
        }
    }

    /// Builds the IIN of a person born on `birth_date` with that `sex` and 4-digit `serial`, or
    /// `None` when those 11 digits give no check digit (never issued; try another serial).
    /// For the synthetic data generator and tests.
    ///
    /// # Panics
    /// If `serial` exceeds 9999 or the birth year is outside 1800-2099 (the IIN cannot say it).
    pub fn from_parts(birth_date: NaiveDate, sex: Sex, serial: u32) -> Option<Iin> {
        let first_eleven = iin_first_eleven(birth_date, sex, serial);
        let check = iin_check_digit(&first_eleven)?;
        let mut ascii = [0u8; 12];
        for (slot, digit) in ascii
            .iter_mut()
            .zip(first_eleven.iter().chain([check].iter()))
        {
            *slot = b'0' + digit;
        }
        Some(Iin(ascii))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("an IIN is ASCII digits")
    }

    pub fn birth_date(&self) -> NaiveDate {
        self.try_birth_date()
            .expect("a parsed IIN has a valid birth date")
    }

    pub fn sex(&self) -> Sex {
        if self.digits()[6] % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// The form for logs and for viewers: the first 4 and the last 2 digits, `0612******12`.
    pub fn masked(&self) -> String {
        let full = self.as_str();
        format!("{}******{}", &full[..4], &full[10..])
    }

    fn digits(&self) -> [u8; 12] {
        self.0.map(|ascii| ascii - b'0')
    }

    /// The twelve digits as one number, for the compact scoring form.
    pub(crate) fn number(&self) -> u64 {
        self.0
            .iter()
            .fold(0, |number, ascii| number * 10 + u64::from(ascii - b'0'))
    }

    /// The IIN that [`Iin::number`] gave `number`, without checking it again:
    /// only for numbers taken from an IIN (`None` above twelve digits).
    pub(crate) fn from_number(mut number: u64) -> Option<Iin> {
        if number >= 1_000_000_000_000 {
            return None;
        }
        let mut ascii = [b'0'; 12];
        for slot in ascii.iter_mut().rev() {
            *slot = b'0' + (number % 10) as u8;
            number /= 10;
        }
        Some(Iin(ascii))
    }

    fn try_birth_date(&self) -> Option<NaiveDate> {
        let digits = self.digits();
        let pair = |at: usize| u32::from(digits[at]) * 10 + u32::from(digits[at + 1]);
        let year_in_century = i32::try_from(pair(0)).expect("two digits fit in i32");
        let year = century_start(digits[6])? + year_in_century;
        NaiveDate::from_ymd_opt(year, pair(2), pair(4))
    }
}

/// The first 11 digits (as numbers) of the IIN for these parts; see [`Iin::from_parts`].
fn iin_first_eleven(birth_date: NaiveDate, sex: Sex, serial: u32) -> [u8; 11] {
    assert!(serial <= 9999, "IIN serial {serial} has more than 4 digits");
    let year = birth_date.year();
    let (century_base, century_sex_digit) = match (year, sex) {
        (1800..=1899, Sex::Male) => (1800, 1),
        (1800..=1899, Sex::Female) => (1800, 2),
        (1900..=1999, Sex::Male) => (1900, 3),
        (1900..=1999, Sex::Female) => (1900, 4),
        (2000..=2099, Sex::Male) => (2000, 5),
        (2000..=2099, Sex::Female) => (2000, 6),
        _ => panic!("IIN birth year {year} is outside 1800-2099"),
    };
    let year_in_century = u32::try_from(year - century_base).expect("0-99 after the match");
    let text = format!(
        "{year_in_century:02}{:02}{:02}{century_sex_digit}{serial:04}",
        birth_date.month(),
        birth_date.day()
    );
    let mut digits = [0u8; 11];
    for (slot, ascii) in digits.iter_mut().zip(text.bytes()) {
        *slot = ascii - b'0';
    }
    digits
}

impl fmt::Display for Iin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Iin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

string_conversions!(Iin);

// ---------------------------------------------------------------------------------------------
// Sex

/// Sex as registered, and as the IIN's century/sex digit encodes it (odd = male).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sex {
    Male,
    Female,
}

impl Sex {
    pub fn parse(input: &str) -> Result<Sex, IdError> {
        match input {
            "male" => Ok(Sex::Male),
            "female" => Ok(Sex::Female),
            _ => Err(IdError::Sex),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
        }
    }
}

impl fmt::Display for Sex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

string_conversions!(Sex);

// ---------------------------------------------------------------------------------------------
// IBAN

/// The length of every Kazakhstan IBAN.
const IBAN_LENGTH: usize = 20;

/// ISO 7064 MOD-97-10 of an IBAN: the first four characters moved to the end, letters read as
/// 10-35. A valid IBAN gives 1. Expects uppercase ASCII letters and digits only.
fn iban_mod97(iban: &str) -> u32 {
    let rearranged = iban.bytes().skip(4).chain(iban.bytes().take(4));
    rearranged.fold(0u32, |remainder, byte| {
        let value = u32::from(match byte {
            b'0'..=b'9' => byte - b'0',
            b'A'..=b'Z' => byte - b'A' + 10,
            _ => unreachable!("iban_mod97 is given uppercase letters and digits only"),
        });
        if value < 10 {
            (remainder * 10 + value) % 97
        } else {
            (remainder * 100 + value) % 97
        }
    })
}

/// A Kazakhstan IBAN: `KZ`, 2 check digits, a 3-digit bank code and a 13-character account.
///
/// Invariant: exactly that layout, uppercase, and ISO 7064 MOD-97 gives 1.
/// `Debug` masks all but the last 4 characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Iban(String);

impl Iban {
    /// Parses an IBAN, ignoring surrounding whitespace. Lowercase is refused rather than
    /// uppercased, so that the stored value is exactly what the agency sent.
    pub fn parse(input: &str) -> Result<Iban, IdError> {
        let iban = input.trim();
        if iban.chars().count() != IBAN_LENGTH
            || !iban.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("KZ"))
        {
            return Err(IdError::IbanShape);
        }
        if iban.bytes().any(|byte| byte.is_ascii_lowercase()) {
            return Err(IdError::IbanLowercase);
        }
        if !iban_layout_is_valid(iban) {
            return Err(IdError::IbanLayout);
        }
        match iban_mod97(iban) {
            1 => Ok(Iban(iban.to_owned())),
            remainder => Err(IdError::IbanCheck { remainder }),
        }
    }

    /// Builds a valid IBAN from a 3-digit bank code and a 13-character account, computing the
    /// check digits. For the synthetic data generator and tests.
    ///
    /// # Panics
    /// If the bank code is not 3 digits or the account not 13 uppercase letters or digits.
    pub fn from_parts(bank_code: &str, account: &str) -> Iban {
        let unchecked = format!("KZ00{bank_code}{account}");
        assert!(
            unchecked.len() == IBAN_LENGTH && iban_layout_is_valid(&unchecked),
            "IBAN parts must be a 3-digit bank code and 13 uppercase letters or digits"
        );
        let check = 98 - iban_mod97(&unchecked);
        let iban = Iban(format!("KZ{check:02}{bank_code}{account}"));
        debug_assert_eq!(iban_mod97(iban.as_str()), 1);
        iban
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The bank code: characters 5-7, as the bank's financial address `KZ…@<bank code>` uses it.
    pub fn bank_code(&self) -> &str {
        &self.0[4..7]
    }

    /// All but the last 4 characters replaced by `*`.
    pub fn masked(&self) -> String {
        format!(
            "{}{}",
            "*".repeat(IBAN_LENGTH - 4),
            &self.0[IBAN_LENGTH - 4..]
        )
    }
}

/// Whether a 20-byte string is `KZ`, 2 digits, 3 digits and 13 uppercase letters or digits.
fn iban_layout_is_valid(iban: &str) -> bool {
    let bytes = iban.as_bytes();
    bytes.len() == IBAN_LENGTH
        && bytes.starts_with(b"KZ")
        && bytes[2..7].iter().all(u8::is_ascii_digit)
        && bytes[7..]
            .iter()
            .all(|&byte| byte.is_ascii_digit() || byte.is_ascii_uppercase())
}

impl fmt::Display for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

string_conversions!(Iban);

// ---------------------------------------------------------------------------------------------
// Phone

/// A Kazakhstan phone number in E.164: `+7` and 10 digits.
///
/// `Debug` prints the masked form (`+7701*****67`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

impl Phone {
    pub fn parse(input: &str) -> Result<Phone, IdError> {
        match input.strip_prefix("+7") {
            Some(rest) if rest.len() == 10 && rest.bytes().all(|byte| byte.is_ascii_digit()) => {
                Ok(Phone(input.to_owned()))
            }
            _ => Err(IdError::Phone),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `+7`, the first 3 digits, and the last 2: `+7701*****67`.
    pub fn masked(&self) -> String {
        format!("{}*****{}", &self.0[..5], &self.0[10..])
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

string_conversions!(Phone);

// ---------------------------------------------------------------------------------------------
// Region

/// The 20 first-level divisions of Kazakhstan, by ISO 3166-2:KZ code. The variants are declared
/// in code order, so `Ord` (and a `BTreeMap` keyed by region) sorts by code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    Abai,
    Akmola,
    Aktobe,
    AlmatyRegion,
    Atyrau,
    WestKazakhstan,
    Jambyl,
    Jetisu,
    Karaganda,
    Kostanay,
    Kyzylorda,
    Mangystau,
    Pavlodar,
    NorthKazakhstan,
    Turkistan,
    Ulytau,
    EastKazakhstan,
    Astana,
    AlmatyCity,
    Shymkent,
}

impl Region {
    /// Every region, in code order.
    pub const ALL: [Region; 20] = [
        Region::Abai,
        Region::Akmola,
        Region::Aktobe,
        Region::AlmatyRegion,
        Region::Atyrau,
        Region::WestKazakhstan,
        Region::Jambyl,
        Region::Jetisu,
        Region::Karaganda,
        Region::Kostanay,
        Region::Kyzylorda,
        Region::Mangystau,
        Region::Pavlodar,
        Region::NorthKazakhstan,
        Region::Turkistan,
        Region::Ulytau,
        Region::EastKazakhstan,
        Region::Astana,
        Region::AlmatyCity,
        Region::Shymkent,
    ];

    /// The ISO 3166-2:KZ code, `KZ-35`.
    pub fn code(self) -> &'static str {
        self.code_and_name().0
    }

    /// The English name, `Karaganda Region` (or `Astana` for a city of republican significance).
    pub fn name(self) -> &'static str {
        self.code_and_name().1
    }

    pub fn parse(input: &str) -> Result<Region, IdError> {
        Region::ALL
            .into_iter()
            .find(|region| region.code() == input)
            .ok_or_else(|| IdError::UnknownRegion {
                code: excerpt(input),
            })
    }

    /// The same as [`Region::code`]; named for the shared string conversions.
    pub fn as_str(&self) -> &'static str {
        self.code()
    }

    fn code_and_name(self) -> (&'static str, &'static str) {
        match self {
            Region::Abai => ("KZ-10", "Abai Region"),
            Region::Akmola => ("KZ-11", "Akmola Region"),
            Region::Aktobe => ("KZ-15", "Aktobe Region"),
            Region::AlmatyRegion => ("KZ-19", "Almaty Region"),
            Region::Atyrau => ("KZ-23", "Atyrau Region"),
            Region::WestKazakhstan => ("KZ-27", "West Kazakhstan Region"),
            Region::Jambyl => ("KZ-31", "Jambyl Region"),
            Region::Jetisu => ("KZ-33", "Jetisu Region"),
            Region::Karaganda => ("KZ-35", "Karaganda Region"),
            Region::Kostanay => ("KZ-39", "Kostanay Region"),
            Region::Kyzylorda => ("KZ-43", "Kyzylorda Region"),
            Region::Mangystau => ("KZ-47", "Mangystau Region"),
            Region::Pavlodar => ("KZ-55", "Pavlodar Region"),
            Region::NorthKazakhstan => ("KZ-59", "North Kazakhstan Region"),
            Region::Turkistan => ("KZ-61", "Turkistan Region"),
            Region::Ulytau => ("KZ-62", "Ulytau Region"),
            Region::EastKazakhstan => ("KZ-63", "East Kazakhstan Region"),
            Region::Astana => ("KZ-71", "Astana"),
            Region::AlmatyCity => ("KZ-75", "Almaty"),
            Region::Shymkent => ("KZ-79", "Shymkent"),
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

string_conversions!(Region);

// ---------------------------------------------------------------------------------------------
// Locality

/// Whether a family lives in a town or in the countryside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Locality {
    Urban,
    Rural,
}

impl Locality {
    pub fn parse(input: &str) -> Result<Locality, IdError> {
        match input {
            "urban" => Ok(Locality::Urban),
            "rural" => Ok(Locality::Rural),
            _ => Err(IdError::Locality),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Locality::Urban => "urban",
            Locality::Rural => "rural",
        }
    }
}

impl fmt::Display for Locality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

string_conversions!(Locality);

// ---------------------------------------------------------------------------------------------
// FamilyId

/// The longest family id, in characters.
pub const FAMILY_ID_LENGTH_MAX: usize = 64;

/// The population agency's id of a family. Not personal data, so it prints in full.
///
/// Invariant: 1-64 characters of `A-Z a-z 0-9 - _ .` — safe in a URL path and a sled key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FamilyId(String);

impl FamilyId {
    pub fn parse(input: &str) -> Result<FamilyId, IdError> {
        let allowed = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.');
        if (1..=FAMILY_ID_LENGTH_MAX).contains(&input.len()) && input.bytes().all(allowed) {
            Ok(FamilyId(input.to_owned()))
        } else {
            Err(IdError::FamilyId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Becomes the family id whose bytes these are, keeping this one's buffer:
    /// only for the bytes of a family id (a scan of the scoring table).
    pub(crate) fn set_from_bytes(&mut self, id: &[u8]) {
        self.0.clear();
        self.0.push_str(std::str::from_utf8(id).unwrap_or_default());
    }
}

impl fmt::Display for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_conversions!(FamilyId);

// ---------------------------------------------------------------------------------------------
// Month

/// A calendar month, `YYYY-MM`: the period of a monthly payment and of reported income.
///
/// Invariant: year 0-9999 (so it always prints as 4 digits), month 1-12. Ordered by time.
///
/// Stored values of the current format hold the month as months since January
/// of year 0 ([`crate::codec::binary_form`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Month {
    // Field order matters: the derived `Ord` compares the year first.
    year: i32,
    month: u32,
}

impl Month {
    /// `None` unless the year is 0-9999 and the month 1-12.
    pub fn new(year: i32, month: u32) -> Option<Month> {
        ((0..=9999).contains(&year) && (1..=12).contains(&month)).then_some(Month { year, month })
    }

    pub fn parse(input: &str) -> Result<Month, IdError> {
        let bytes = input.as_bytes();
        let layout_ok = bytes.len() == 7
            && bytes[4] == b'-'
            && bytes[..4].iter().chain(&bytes[5..]).all(u8::is_ascii_digit);
        if !layout_ok {
            return Err(IdError::Month);
        }
        let year = input[..4].parse().map_err(|_| IdError::Month)?;
        let month = input[5..].parse().map_err(|_| IdError::Month)?;
        Month::new(year, month).ok_or(IdError::Month)
    }

    /// The month that `date` falls in.
    ///
    /// # Panics
    /// If the date's year is outside 0-9999.
    pub fn of(date: NaiveDate) -> Month {
        Month::new(date.year(), date.month())
            .unwrap_or_else(|| panic!("year {} is outside 0-9999", date.year()))
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u32 {
        self.month
    }

    /// The following month.
    ///
    /// # Panics
    /// After 9999-12.
    pub fn next(self) -> Month {
        let (year, month) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        Month::new(year, month).expect("no month after 9999-12")
    }

    /// The month before.
    ///
    /// # Panics
    /// Before 0000-01.
    pub fn prev(self) -> Month {
        let (year, month) = if self.month == 1 {
            (self.year - 1, 12)
        } else {
            (self.year, self.month - 1)
        };
        Month::new(year, month).expect("no month before 0000-01")
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
            .expect("years 0-9999 are in chrono's range")
    }

    /// How many months `later` is after `self`: 1 from 2026-12 to 2027-01, negative when
    /// `later` is in fact earlier.
    pub fn months_between(self, later: Month) -> i32 {
        let month_index = |m: Month| m.year * 12 + i32::try_from(m.month).expect("month is 1-12");
        month_index(later) - month_index(self)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl fmt::Debug for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Month({self})")
    }
}

impl FromStr for Month {
    type Err = IdError;
    fn from_str(input: &str) -> Result<Month, IdError> {
        Month::parse(input)
    }
}

impl Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if crate::codec::binary_form(serializer.is_human_readable()) {
            let index = self.year * 12 + i32::try_from(self.month - 1).expect("month is 1-12");
            serializer.serialize_u32(u32::try_from(index).expect("year 0-9999"))
        } else {
            serializer.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for Month {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Month, D::Error> {
        if crate::codec::binary_form(deserializer.is_human_readable()) {
            let index = u32::deserialize(deserializer)?;
            i32::try_from(index / 12)
                .ok()
                .and_then(|year| Month::new(year, index % 12 + 1))
                .ok_or_else(|| serde::de::Error::custom(IdError::Month))
        } else {
            Month::try_from(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
        }
    }
}

impl TryFrom<String> for Month {
    type Error = IdError;
    fn try_from(input: String) -> Result<Month, IdError> {
        Month::parse(&input)
    }
}

impl From<Month> for String {
    fn from(month: Month) -> String {
        month.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Days;
    use proptest::prelude::*;
    use serde::de::DeserializeOwned;

    /// Renders a parse result as text, so each table row reads as input → outcome.
    fn render<T, E: fmt::Display>(result: Result<T, E>, ok: impl FnOnce(T) -> String) -> String {
        match result {
            Ok(value) => ok(value),
            Err(error) => format!("error: {error}"),
        }
    }

    #[test]
    fn iin_parse() {
        fn check(input: &str, expected: &str) {
            let actual = render(Iin::parse(input), |iin| {
                format!("{} {} {}", iin.birth_date(), iin.sex(), iin.masked())
            });
            assert_eq!(actual, expected, "input {input:?}");
        }
        // DOMAIN.md's example. Its first weight pass gives 10, the second gives 2.
        check("061211600012", "2006-12-11 female 0612******12");
        // Another IIN whose check digit needs the second weight set (87 → 10, then 9).
        check("900415300509", "1990-04-15 male 9004******09");
        // Each century/sex digit: 1/2 the 1800s, 3/4 the 1900s, 5/6 the 2000s; odd is male.
        check("850314100010", "1885-03-14 male 8503******10");
        check("991231200017", "1899-12-31 female 9912******17");
        check("500228300014", "1950-02-28 male 5002******14");
        check("840229400016", "1984-02-29 female 8402******16");
        check("000101500011", "2000-01-01 male 0001******11");
        check("240715600015", "2024-07-15 female 2407******15");

        check(
            "06121160001",
            "error: IIN must be 12 digits, got 11 characters",
        );
        check(
            "0612116000123",
            "error: IIN must be 12 digits, got 13 characters",
        );
        check("", "error: IIN must be 12 digits, got 0 characters");
        check(
            "06121160001a",
            "error: IIN must be 12 digits, got 'a' at position 12",
        );
        check(
            " 61211600012",
            "error: IIN must be 12 digits, got ' ' at position 1",
        );
        // A non-ASCII digit is one character, not several bytes.
        check(
            "06121160001٣",
            "error: IIN must be 12 digits, got '٣' at position 12",
        );
        check("061211000012", "error: IIN century/sex digit 0 is not 1-6");
        check("061211700012", "error: IIN century/sex digit 7 is not 1-6");
        check("991332300015", "error: IIN birth date 991332 is not a date");
        // 29 February exists in 2000 but not in 1900.
        check("000229300001", "error: IIN birth date 000229 is not a date");
        check("061211600013", "error: IIN check digit is 3, expected 2");
        check("850314100019", "error: IIN check digit is 9, expected 0");
        check(
            "900415300560",
            "error: IIN can never be issued (check digit is 10 with both weight sets)",
        );
    }

    #[test]
    fn iin_prints_in_full_but_debugs_masked() {
        let iin = Iin::parse("061211600012").unwrap();
        assert_eq!(iin.to_string(), "061211600012");
        assert_eq!(iin.as_str(), "061211600012");
        assert_eq!(format!("{iin:?}"), "0612******12");
        assert_eq!(format!("{:?}", Some(iin)), "Some(0612******12)");
        assert_eq!("061211600012".parse::<Iin>(), Ok(iin));
    }

    #[test]
    fn iin_from_parts() {
        let date = NaiveDate::from_ymd_opt(2006, 12, 11).unwrap();
        assert_eq!(
            Iin::from_parts(date, Sex::Female, 1).map(|iin| iin.to_string()),
            Some("061211600012".to_owned())
        );
        let date = NaiveDate::from_ymd_opt(1990, 4, 15).unwrap();
        assert_eq!(Iin::from_parts(date, Sex::Male, 56), None);
    }

    #[test]
    #[should_panic(expected = "outside 1800-2099")]
    fn iin_from_parts_refuses_a_year_it_cannot_encode() {
        Iin::from_parts(NaiveDate::from_ymd_opt(2100, 1, 1).unwrap(), Sex::Male, 1);
    }

    /// Days from 1800-01-01 to 2099-12-31, the dates an IIN can hold.
    const IIN_DAYS: u64 = 109_573;

    proptest! {
        #[test]
        fn iin_from_parts_round_trips(days in 0..IIN_DAYS, male: bool, serial in 0u32..=9999) {
            let date = NaiveDate::from_ymd_opt(1800, 1, 1).unwrap() + Days::new(days);
            let sex = if male { Sex::Male } else { Sex::Female };
            match Iin::from_parts(date, sex, serial) {
                Some(iin) => {
                    prop_assert_eq!(Iin::parse(iin.as_str()), Ok(iin));
                    prop_assert_eq!(Iin::from_number(iin.number()), Some(iin));
                    prop_assert_eq!(iin.birth_date(), date);
                    prop_assert_eq!(iin.sex(), sex);
                    prop_assert_eq!(&iin.as_str()[7..11], format!("{serial:04}"));
                }
                None => {
                    let first_eleven: String =
                        iin_first_eleven(date, sex, serial).iter().map(|d| char::from(b'0' + d)).collect();
                    for check_digit in '0'..='9' {
                        let candidate = format!("{first_eleven}{check_digit}");
                        prop_assert_eq!(Iin::parse(&candidate), Err(IdError::IinNeverIssued));
                    }
                }
            }
        }
    }

    #[test]
    fn iban_parse() {
        fn check(input: &str, expected: &str) {
            let actual = render(Iban::parse(input), |iban| {
                format!("{} bank {} {iban:?}", iban, iban.bank_code())
            });
            assert_eq!(actual, expected, "input {input:?}");
        }
        check(
            "KZ86125KZT5004100100",
            "KZ86125KZT5004100100 bank 125 ****************0100",
        );
        check(
            "KZ45722S000054326792",
            "KZ45722S000054326792 bank 722 ****************6792",
        );
        check(
            " KZ86125KZT5004100100\n",
            "KZ86125KZT5004100100 bank 125 ****************0100",
        );
        check(
            "KZ87125KZT5004100100",
            "error: IBAN check failed (MOD-97 gives 2, expected 1)",
        );
        check(
            "KZ00125KZT5004100100",
            "error: IBAN check failed (MOD-97 gives 12, expected 1)",
        );
        check(
            "KZ86125KZT5004100101",
            "error: IBAN check failed (MOD-97 gives 28, expected 1)",
        );
        check(
            "KZ86125KZT500410010",
            "error: IBAN must be 20 characters starting with KZ",
        );
        check(
            "KZ86125KZT50041001000",
            "error: IBAN must be 20 characters starting with KZ",
        );
        check(
            "DE86125KZT5004100100",
            "error: IBAN must be 20 characters starting with KZ",
        );
        check("", "error: IBAN must be 20 characters starting with KZ");
        check(
            "kz86125kzt5004100100",
            "error: IBAN must be written in uppercase",
        );
        check(
            "KZ86125kzt5004100100",
            "error: IBAN must be written in uppercase",
        );
        check("KZ8612AKZT5004100100", "error: IBAN must be KZ, 2 check digits, a 3-digit bank code and 13 letters A-Z or digits");
        check("KZ86125KZT50041001-0", "error: IBAN must be KZ, 2 check digits, a 3-digit bank code and 13 letters A-Z or digits");
        check("KZ86125KZT50041001ü0", "error: IBAN must be KZ, 2 check digits, a 3-digit bank code and 13 letters A-Z or digits");
    }

    #[test]
    fn iban_from_parts_matches_domain_examples() {
        assert_eq!(
            Iban::from_parts("125", "KZT5004100100").as_str(),
            "KZ86125KZT5004100100"
        );
        assert_eq!(
            Iban::from_parts("722", "S000054326792").as_str(),
            "KZ45722S000054326792"
        );
    }

    #[test]
    #[should_panic(expected = "IBAN parts")]
    fn iban_from_parts_refuses_a_short_account() {
        Iban::from_parts("125", "KZT500410010");
    }

    proptest! {
        #[test]
        fn iban_from_parts_round_trips(bank_code in "[0-9]{3}", account in "[0-9A-Z]{13}") {
            let iban = Iban::from_parts(&bank_code, &account);
            prop_assert_eq!(Iban::parse(iban.as_str()), Ok(iban.clone()));
            prop_assert_eq!(iban.bank_code(), bank_code.as_str());
            prop_assert_eq!(&iban.as_str()[7..], account.as_str());
        }

        /// MOD-97 catches every change of one digit.
        #[test]
        fn iban_check_catches_a_changed_digit(
            bank_code in "[0-9]{3}", account in "[0-9]{13}", position in 2usize..20, delta in 1u8..10,
        ) {
            let iban = Iban::from_parts(&bank_code, &account);
            let mut bytes = iban.as_str().as_bytes().to_vec();
            bytes[position] = b'0' + (bytes[position] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(matches!(Iban::parse(&changed), Err(IdError::IbanCheck { .. })), "{}", changed);
        }
    }

    #[test]
    fn phone_parse() {
        fn check(input: &str, expected: &str) {
            let actual = render(Phone::parse(input), |phone| format!("{phone} {phone:?}"));
            assert_eq!(actual, expected, "input {input:?}");
        }
        check("+77011234567", "+77011234567 +7701*****67");
        check("+77470000099", "+77470000099 +7747*****99");
        check(
            "87011234567",
            "error: phone must be +7 followed by 10 digits",
        );
        check(
            "+7701123456",
            "error: phone must be +7 followed by 10 digits",
        );
        check(
            "+770112345678",
            "error: phone must be +7 followed by 10 digits",
        );
        check(
            "+7701123456a",
            "error: phone must be +7 followed by 10 digits",
        );
        check(
            "+17011234567",
            "error: phone must be +7 followed by 10 digits",
        );
        check(
            " +77011234567",
            "error: phone must be +7 followed by 10 digits",
        );
        check(
            "+7 701 123 45 67",
            "error: phone must be +7 followed by 10 digits",
        );
        check("", "error: phone must be +7 followed by 10 digits");
    }

    #[test]
    fn region_parse() {
        fn check(input: &str, expected: &str) {
            let actual = render(Region::parse(input), |region| {
                format!("{region} {}", region.name())
            });
            assert_eq!(actual, expected, "input {input:?}");
        }
        check("KZ-35", "KZ-35 Karaganda Region");
        check("KZ-71", "KZ-71 Astana");
        check("KZ-75", "KZ-75 Almaty");
        check("KZ-19", "KZ-19 Almaty Region");
        check("KZ-63", "KZ-63 East Kazakhstan Region");
        check("KZ-99", "error: unknown region code KZ-99");
        check("kz-35", "error: unknown region code kz-35");
        check("KZ-35 ", "error: unknown region code KZ-35 ");
        check("", "error: unknown region code ");
        check(
            &"X".repeat(1000),
            &format!("error: unknown region code {}…", "X".repeat(24)),
        );
    }

    #[test]
    fn every_region_round_trips_in_code_order() {
        let codes: Vec<&str> = Region::ALL.iter().map(|region| region.code()).collect();
        assert_eq!(
            codes,
            [
                "KZ-10", "KZ-11", "KZ-15", "KZ-19", "KZ-23", "KZ-27", "KZ-31", "KZ-33", "KZ-35",
                "KZ-39", "KZ-43", "KZ-47", "KZ-55", "KZ-59", "KZ-61", "KZ-62", "KZ-63", "KZ-71",
                "KZ-75", "KZ-79",
            ]
        );
        for region in Region::ALL {
            assert_eq!(Region::parse(region.code()), Ok(region));
            assert_eq!(region.code().parse::<Region>(), Ok(region));
            check_serde(region, region.code());
        }
        let mut sorted = Region::ALL;
        sorted.sort();
        assert_eq!(sorted, Region::ALL, "Ord follows the code");
        let names: std::collections::BTreeSet<&str> =
            Region::ALL.iter().map(|region| region.name()).collect();
        assert_eq!(names.len(), 20, "names are distinct");
    }

    #[test]
    fn sex_and_locality_parse() {
        fn check(input: &str, expected: &str) {
            let sex = render(Sex::parse(input), |sex| format!("{sex:?}"));
            let locality = render(Locality::parse(input), |locality| format!("{locality:?}"));
            assert_eq!(format!("{sex} / {locality}"), expected, "input {input:?}");
        }
        check("male", "Male / error: locality must be urban or rural");
        check("female", "Female / error: locality must be urban or rural");
        check("urban", "error: sex must be male or female / Urban");
        check("rural", "error: sex must be male or female / Rural");
        check(
            "Male",
            "error: sex must be male or female / error: locality must be urban or rural",
        );
        check(
            "",
            "error: sex must be male or female / error: locality must be urban or rural",
        );
    }

    #[test]
    fn family_id_parse() {
        fn check(input: &str, expected: &str) {
            let actual = render(FamilyId::parse(input), |id| format!("{id} {id:?}"));
            assert_eq!(actual, expected, "input {input:?}");
        }
        check("fam-000017", r#"fam-000017 FamilyId("fam-000017")"#);
        check("A.Z_0-9", r#"A.Z_0-9 FamilyId("A.Z_0-9")"#);
        check("x", r#"x FamilyId("x")"#);
        check(
            &"a".repeat(64),
            &format!(r#"{0} FamilyId("{0}")"#, "a".repeat(64)),
        );
        check(
            &"a".repeat(65),
            "error: family id must be 1-64 characters of A-Z a-z 0-9 - _ .",
        );
        check(
            "",
            "error: family id must be 1-64 characters of A-Z a-z 0-9 - _ .",
        );
        check(
            "fam 1",
            "error: family id must be 1-64 characters of A-Z a-z 0-9 - _ .",
        );
        check(
            "fam/1",
            "error: family id must be 1-64 characters of A-Z a-z 0-9 - _ .",
        );
        check(
            "семья",
            "error: family id must be 1-64 characters of A-Z a-z 0-9 - _ .",
        );
    }

    #[test]
    fn month_parse() {
        fn check(input: &str, expected: &str) {
            let actual = render(Month::parse(input), |month| {
                format!(
                    "{month} year {} month {} first day {}",
                    month.year(),
                    month.month(),
                    month.first_day()
                )
            });
            assert_eq!(actual, expected, "input {input:?}");
        }
        check("2026-11", "2026-11 year 2026 month 11 first day 2026-11-01");
        check("2026-01", "2026-01 year 2026 month 1 first day 2026-01-01");
        check("0000-01", "0000-01 year 0 month 1 first day 0000-01-01");
        check("9999-12", "9999-12 year 9999 month 12 first day 9999-12-01");
        check("2026-13", "error: month must be YYYY-MM");
        check("2026-00", "error: month must be YYYY-MM");
        check("2026-1", "error: month must be YYYY-MM");
        check("26-11", "error: month must be YYYY-MM");
        check("2026/11", "error: month must be YYYY-MM");
        check("+026-11", "error: month must be YYYY-MM");
        check("2026-11-01", "error: month must be YYYY-MM");
        check("２０２６-11", "error: month must be YYYY-MM");
        check("", "error: month must be YYYY-MM");
    }

    #[test]
    fn month_arithmetic() {
        fn check(from: &str, to: &str, expected_months_between: i32) {
            let (from, to) = (Month::parse(from).unwrap(), Month::parse(to).unwrap());
            assert_eq!(
                from.months_between(to),
                expected_months_between,
                "{from} → {to}"
            );
            assert_eq!(
                to.months_between(from),
                -expected_months_between,
                "{to} → {from}"
            );
            assert_eq!(
                from.cmp(&to),
                expected_months_between.cmp(&0).reverse(),
                "{from} vs {to}"
            );
        }
        check("2026-11", "2026-11", 0);
        check("2026-11", "2026-12", 1);
        check("2026-12", "2027-01", 1);
        check("2025-01", "2026-12", 23);
        check("2026-05", "2026-02", -3);
        check("1999-12", "2000-01", 1);

        let december = Month::new(2026, 12).unwrap();
        assert_eq!(december.next(), Month::new(2027, 1).unwrap());
        assert_eq!(december.next().prev(), december);
        assert_eq!(
            Month::new(2026, 5).unwrap().next(),
            Month::new(2026, 6).unwrap()
        );
        assert_eq!(
            Month::new(2026, 5).unwrap().prev(),
            Month::new(2026, 4).unwrap()
        );
        assert_eq!(
            Month::of(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            Month::new(2024, 2).unwrap()
        );
        assert_eq!(Month::new(2026, 0), None);
        assert_eq!(Month::new(2026, 13), None);
        assert_eq!(Month::new(10_000, 1), None);
        assert_eq!(Month::new(-1, 1), None);
        assert_eq!(format!("{december:?}"), "Month(2026-12)");
    }

    proptest! {
        #[test]
        fn month_next_and_prev_agree(year in 1i32..9999, month in 1u32..=12) {
            let m = Month::new(year, month).unwrap();
            prop_assert_eq!(m.next().prev(), m);
            prop_assert_eq!(m.months_between(m.next()), 1);
            prop_assert!(m < m.next());
            prop_assert_eq!(Month::parse(&m.to_string()), Ok(m));
            prop_assert_eq!(Month::of(m.first_day()), m);
        }
    }

    /// Asserts that `value` is the JSON string `"text"` and comes back from it, through JSON and
    /// through bincode (the store's format).
    fn check_serde<T>(value: T, text: &str)
    where
        T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
    {
        let json = serde_json::to_string(&value).unwrap();
        assert_eq!(json, format!("\"{text}\""), "{value:?} is a JSON string");
        assert_eq!(
            serde_json::from_str::<T>(&json).unwrap(),
            value,
            "JSON round trip of {json}"
        );
        let config = bincode::config::standard();
        let encoded = bincode::serde::encode_to_vec(&value, config).unwrap();
        let (decoded, _): (T, usize) = bincode::serde::decode_from_slice(&encoded, config).unwrap();
        assert_eq!(decoded, value, "bincode round trip of {text}");
    }

    /// Asserts that deserializing the JSON string `"text"` as `T` fails with `expected`.
    fn check_serde_rejects<T: DeserializeOwned + fmt::Debug>(text: &str, expected: &str) {
        let json = serde_json::to_string(text).unwrap();
        let error = serde_json::from_str::<T>(&json).unwrap_err().to_string();
        assert_eq!(error, expected, "input {json}");
        let config = bincode::config::standard();
        let encoded = bincode::serde::encode_to_vec(text, config).unwrap();
        assert!(
            bincode::serde::decode_from_slice::<T, _>(&encoded, config).is_err(),
            "bincode {text:?}"
        );
    }

    #[test]
    fn serde_as_strings() {
        check_serde(Iin::parse("061211600012").unwrap(), "061211600012");
        check_serde(Sex::Male, "male");
        check_serde(Sex::Female, "female");
        check_serde(
            Iban::parse("KZ45722S000054326792").unwrap(),
            "KZ45722S000054326792",
        );
        check_serde(Phone::parse("+77011234567").unwrap(), "+77011234567");
        check_serde(Region::Karaganda, "KZ-35");
        check_serde(Locality::Urban, "urban");
        check_serde(Locality::Rural, "rural");
        check_serde(FamilyId::parse("fam-1").unwrap(), "fam-1");
        check_serde(Month::new(2026, 11).unwrap(), "2026-11");

        check_serde_rejects::<Iin>("061211600013", "IIN check digit is 3, expected 2");
        check_serde_rejects::<Iin>("0612116000", "IIN must be 12 digits, got 10 characters");
        check_serde_rejects::<Sex>("M", "sex must be male or female");
        check_serde_rejects::<Iban>(
            "KZ87125KZT5004100100",
            "IBAN check failed (MOD-97 gives 2, expected 1)",
        );
        check_serde_rejects::<Phone>("87011234567", "phone must be +7 followed by 10 digits");
        check_serde_rejects::<Region>("KZ-99", "unknown region code KZ-99");
        check_serde_rejects::<Locality>("town", "locality must be urban or rural");
        check_serde_rejects::<FamilyId>(
            "",
            "family id must be 1-64 characters of A-Z a-z 0-9 - _ .",
        );
        // Stored as a number (crate::codec), so only JSON has text to refuse.
        let error = serde_json::from_str::<Month>("\"2026-13\"").unwrap_err();
        assert_eq!(error.to_string(), "month must be YYYY-MM");
        let thirteenth = crate::codec::encode(&(2026u32 * 12 + 12 + 12 * 10_000));
        assert!(
            crate::codec::decode::<Month>(&thirteenth).is_err(),
            "year 12026"
        );
    }
}
