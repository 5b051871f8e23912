//! Money and rates: amounts in integer tiyn (1 KZT = 100 tiyn) and the decimal multipliers that
//! benefits are defined by (5.76 MCI, 1.61 × the subsistence minimum, 45%).
//!
//! Both are exact: they are parsed from decimal strings digit by digit, printed back the same
//! way, and multiplied in `u128` with one round-half-up at the end. No floating point is used
//! anywhere, not even to parse. Both serialize as decimal strings (`"16446.25"`, `"5.76"`), in
//! JSON and TOML alike, because a JSON or TOML number would be read as a float.
//!
//! Overflow of `u64` tiyn (about 184 quadrillion KZT) is a programmer error: the operators and
//! [`Money::mul_ratio`] assert it never happens; the `checked_*` methods are there for input that
//! the world controls.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Tiyn in one tenge.
const TIYN_PER_KZT: u64 = 100;
/// A rate's unit: rates are held in ten-thousandths.
const RATE_SCALE: u64 = 10_000;

/// What a decimal string was meant to be, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Amount,
    Rate,
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quantity::Amount => "amount",
            Quantity::Rate => "rate",
        })
    }
}

/// Why a string is not a valid amount or rate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("{quantity} is empty")]
    Empty { quantity: Quantity },
    #[error("{quantity} must not be negative")]
    Negative { quantity: Quantity },
    #[error("{quantity} must be written without a sign")]
    PlusSign { quantity: Quantity },
    #[error("{quantity} must be written without an exponent")]
    Exponent { quantity: Quantity },
    #[error("{quantity} must have digits on both sides of the decimal point")]
    MissingDigits { quantity: Quantity },
    #[error("{quantity} has {found} decimals, at most {allowed} allowed")]
    TooManyDecimals {
        quantity: Quantity,
        found: usize,
        allowed: usize,
    },
    #[error("{quantity} must be digits and an optional decimal point, found {found:?}")]
    InvalidCharacter { quantity: Quantity, found: char },
    #[error("{quantity} is too large")]
    Overflow { quantity: Quantity },
}

/// Parses a non-negative decimal with at most `decimals` digits after the point into an integer
/// count of 10^-`decimals` units: `parse_decimal("16446.2", 2)` is 1644620.
fn parse_decimal(input: &str, decimals: usize, quantity: Quantity) -> Result<u64, MoneyError> {
    if input.is_empty() {
        return Err(MoneyError::Empty { quantity });
    }
    if let Some(found) = input.chars().find(|c| !c.is_ascii_digit() && *c != '.') {
        return Err(match found {
            '-' => MoneyError::Negative { quantity },
            '+' => MoneyError::PlusSign { quantity },
            'e' | 'E' => MoneyError::Exponent { quantity },
            _ => MoneyError::InvalidCharacter { quantity, found },
        });
    }
    let (whole, fraction) = match input.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (input, ""),
    };
    if whole.is_empty() || (input.contains('.') && fraction.is_empty()) {
        return Err(MoneyError::MissingDigits { quantity });
    }
    if fraction.contains('.') {
        return Err(MoneyError::InvalidCharacter {
            quantity,
            found: '.',
        });
    }
    if fraction.len() > decimals {
        return Err(MoneyError::TooManyDecimals {
            quantity,
            found: fraction.len(),
            allowed: decimals,
        });
    }
    // Every character is now an ASCII digit: append the fraction, pad it to `decimals`, and
    // accumulate with checked arithmetic so that any length of input is safe.
    let padding = std::iter::repeat_n(b'0', decimals - fraction.len());
    whole
        .bytes()
        .chain(fraction.bytes())
        .chain(padding)
        .try_fold(0u64, |value, digit| {
            value
                .checked_mul(10)
                .and_then(|value| value.checked_add(u64::from(digit - b'0')))
                .ok_or(MoneyError::Overflow { quantity })
        })
}

/// `value × numerator / denominator`, rounded half up, or `None` if it does not fit in `u64`.
fn checked_ratio(value: u64, numerator: u64, denominator: u64) -> Option<u64> {
    assert!(denominator > 0, "ratio with a zero denominator");
    let denominator = u128::from(denominator);
    // Adding half the denominator before the floor division rounds half up; the sum cannot
    // overflow, since u64::MAX² + u64::MAX / 2 < u128::MAX.
    let product = u128::from(value) * u128::from(numerator) + denominator / 2;
    u64::try_from(product / denominator).ok()
}

/// An amount of money in tiyn (1 KZT = 100 tiyn). Never negative.
///
/// Prints and serializes as KZT with exactly two decimals, `"16446.25"`.
/// Stored values of the current format hold the tiyn as a number
/// ([`crate::codec::binary_form`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Money(u64);

impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if crate::codec::binary_form(serializer.is_human_readable()) {
            serializer.serialize_u64(self.0)
        } else {
            serializer.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        if crate::codec::binary_form(deserializer.is_human_readable()) {
            u64::deserialize(deserializer).map(Money)
        } else {
            Money::try_from(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
        }
    }
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_tiyn(tiyn: u64) -> Money {
        Money(tiyn)
    }

    pub const fn tiyn(self) -> u64 {
        self.0
    }

    /// Whole tenge.
    ///
    /// # Panics
    /// If the amount does not fit in `u64` tiyn.
    pub const fn from_kzt(kzt: u64) -> Money {
        match kzt.checked_mul(TIYN_PER_KZT) {
            Some(tiyn) => Money(tiyn),
            None => panic!("KZT amount overflows u64 tiyn"),
        }
    }

    /// Parses KZT with up to two decimals: `"16446.25"`, `"16446.2"`, `"16446"`. No sign, no
    /// exponent, no whitespace, no thousands separator.
    pub fn parse(input: &str) -> Result<Money, MoneyError> {
        parse_decimal(input, 2, Quantity::Amount).map(Money)
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// `None` if `other` is larger: amounts are never negative.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    /// `self - other`, or zero if `other` is larger (e.g. income above the poverty line).
    pub fn saturating_sub(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0))
    }

    pub fn checked_mul(self, factor: u64) -> Option<Money> {
        self.0.checked_mul(factor).map(Money)
    }

    /// The sum, or `None` on overflow.
    pub fn checked_sum(amounts: impl IntoIterator<Item = Money>) -> Option<Money> {
        amounts
            .into_iter()
            .try_fold(Money::ZERO, Money::checked_add)
    }

    /// `self × numerator / denominator` rounded half up to the tiyn, or `None` if the result
    /// does not fit.
    ///
    /// # Panics
    /// If `denominator` is zero.
    pub fn checked_mul_ratio(self, numerator: u64, denominator: u64) -> Option<Money> {
        checked_ratio(self.0, numerator, denominator).map(Money)
    }

    /// `self × numerator / denominator` rounded half up to the tiyn, exact (computed in `u128`):
    /// a per-capita share, a 45% replacement rate, a part-month.
    ///
    /// # Panics
    /// If `denominator` is zero or the result does not fit in `u64` tiyn.
    pub fn mul_ratio(self, numerator: u64, denominator: u64) -> Money {
        self.checked_mul_ratio(numerator, denominator)
            .unwrap_or_else(|| panic!("{self} × {numerator} / {denominator} overflows u64 tiyn"))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / TIYN_PER_KZT, self.0 % TIYN_PER_KZT)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(input: &str) -> Result<Money, MoneyError> {
        Money::parse(input)
    }
}

impl TryFrom<String> for Money {
    type Error = MoneyError;
    fn try_from(input: String) -> Result<Money, MoneyError> {
        Money::parse(&input)
    }
}

impl From<Money> for String {
    fn from(money: Money) -> String {
        money.to_string()
    }
}

impl Add for Money {
    type Output = Money;
    /// # Panics
    /// On overflow of `u64` tiyn.
    fn add(self, other: Money) -> Money {
        self.checked_add(other)
            .unwrap_or_else(|| panic!("{self} + {other} overflows u64 tiyn"))
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, other: Money) {
        *self = *self + other;
    }
}

impl Sub for Money {
    type Output = Money;
    /// # Panics
    /// If `other` is larger: amounts are never negative. Use [`Money::saturating_sub`] or
    /// [`Money::checked_sub`] where that can happen.
    fn sub(self, other: Money) -> Money {
        self.checked_sub(other)
            .unwrap_or_else(|| panic!("{self} - {other} is negative"))
    }
}

impl SubAssign for Money {
    fn sub_assign(&mut self, other: Money) {
        *self = *self - other;
    }
}

impl Sum for Money {
    /// # Panics
    /// On overflow of `u64` tiyn.
    fn sum<I: Iterator<Item = Money>>(amounts: I) -> Money {
        amounts.fold(Money::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Money> for Money {
    fn sum<I: Iterator<Item = &'a Money>>(amounts: I) -> Money {
        amounts.copied().sum()
    }
}

/// A non-negative decimal multiplier with up to four decimals: `5.76` (MCI), `1.61`
/// (subsistence minima), `0.45` (45%), `0.0035`.
///
/// Held in ten-thousandths, so it is exact. Prints and serializes as the shortest decimal
/// string that says it (`"5.76"`, `"1.5"`, `"2"`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Rate {
    ten_thousandths: u64,
}

impl Rate {
    pub const ZERO: Rate = Rate { ten_thousandths: 0 };
    pub const ONE: Rate = Rate {
        ten_thousandths: RATE_SCALE,
    };

    pub const fn from_ten_thousandths(ten_thousandths: u64) -> Rate {
        Rate { ten_thousandths }
    }

    pub const fn ten_thousandths(self) -> u64 {
        self.ten_thousandths
    }

    /// Parses a decimal with up to four decimals: `"5.76"`, `"1.5"`, `"16.03"`, `"0.0035"`, `"4"`.
    pub fn parse(input: &str) -> Result<Rate, MoneyError> {
        parse_decimal(input, 4, Quantity::Rate).map(Rate::from_ten_thousandths)
    }

    /// `base × self`, rounded half up to the tiyn.
    ///
    /// # Panics
    /// If the result does not fit in `u64` tiyn.
    pub fn apply(self, base: Money) -> Money {
        base.mul_ratio(self.ten_thousandths, RATE_SCALE)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.ten_thousandths / RATE_SCALE;
        let fraction = self.ten_thousandths % RATE_SCALE;
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{fraction:04}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rate({self})")
    }
}

impl FromStr for Rate {
    type Err = MoneyError;
    fn from_str(input: &str) -> Result<Rate, MoneyError> {
        Rate::parse(input)
    }
}

impl TryFrom<String> for Rate {
    type Error = MoneyError;
    fn try_from(input: String) -> Result<Rate, MoneyError> {
        Rate::parse(&input)
    }
}

impl From<Rate> for String {
    fn from(rate: Rate) -> String {
        rate.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Renders a parse result as text, so each table row reads as input → outcome.
    fn render<T: fmt::Display + fmt::Debug>(result: Result<T, MoneyError>) -> String {
        match result {
            Ok(value) => format!("{value} {value:?}"),
            Err(error) => format!("error: {error}"),
        }
    }

    #[test]
    fn money_parse_and_print() {
        fn check(input: &str, expected: &str) {
            assert_eq!(render(Money::parse(input)), expected, "input {input:?}");
        }
        check("16446.25", "16446.25 Money(16446.25)");
        check("16446.2", "16446.20 Money(16446.20)");
        check("16446", "16446.00 Money(16446.00)");
        check("0", "0.00 Money(0.00)");
        check("0.01", "0.01 Money(0.01)");
        check("007.5", "7.50 Money(7.50)");
        check(
            "184467440737095516.15",
            "184467440737095516.15 Money(184467440737095516.15)",
        );
        check("184467440737095516.16", "error: amount is too large");
        check(
            "99999999999999999999999999999",
            "error: amount is too large",
        );
        check("", "error: amount is empty");
        check("-1", "error: amount must not be negative");
        check("-0.00", "error: amount must not be negative");
        check("+1", "error: amount must be written without a sign");
        check("1e3", "error: amount must be written without an exponent");
        check("1E3", "error: amount must be written without an exponent");
        check("1.234", "error: amount has 3 decimals, at most 2 allowed");
        check(
            "1.",
            "error: amount must have digits on both sides of the decimal point",
        );
        check(
            ".5",
            "error: amount must have digits on both sides of the decimal point",
        );
        check(
            ".",
            "error: amount must have digits on both sides of the decimal point",
        );
        check(
            "1.2.3",
            "error: amount must be digits and an optional decimal point, found '.'",
        );
        check(
            "1,5",
            "error: amount must be digits and an optional decimal point, found ','",
        );
        check(
            " 1",
            "error: amount must be digits and an optional decimal point, found ' '",
        );
        check(
            "16 446",
            "error: amount must be digits and an optional decimal point, found ' '",
        );
        check(
            "NaN",
            "error: amount must be digits and an optional decimal point, found 'N'",
        );
        check(
            "١",
            "error: amount must be digits and an optional decimal point, found '١'",
        );
    }

    #[test]
    fn money_constructors() {
        assert_eq!(Money::from_kzt(4325).tiyn(), 432_500);
        assert_eq!(Money::from_tiyn(1_644_625).to_string(), "16446.25");
        assert_eq!(Money::default(), Money::ZERO);
        assert_eq!("12.30".parse::<Money>(), Ok(Money::from_tiyn(1230)));
    }

    #[test]
    fn money_arithmetic() {
        let (a, b) = (Money::from_tiyn(150), Money::from_tiyn(70));
        assert_eq!(a + b, Money::from_tiyn(220));
        assert_eq!(a - b, Money::from_tiyn(80));
        assert_eq!(b.checked_sub(a), None);
        assert_eq!(b.saturating_sub(a), Money::ZERO);
        assert_eq!(a.checked_mul(3), Some(Money::from_tiyn(450)));
        assert_eq!(Money::from_tiyn(u64::MAX).checked_mul(2), None);
        assert_eq!(
            Money::from_tiyn(u64::MAX).checked_add(Money::from_tiyn(1)),
            None
        );
        assert_eq!([a, b, a].into_iter().sum::<Money>(), Money::from_tiyn(370));
        assert_eq!([a, b].iter().sum::<Money>(), Money::from_tiyn(220));
        assert_eq!(Money::checked_sum([a, b]), Some(Money::from_tiyn(220)));
        assert_eq!(Money::checked_sum([Money::from_tiyn(u64::MAX), a]), None);
        assert_eq!(Money::checked_sum([]), Some(Money::ZERO));
        let mut total = Money::ZERO;
        total += a;
        total -= b;
        assert_eq!(total, Money::from_tiyn(80));
    }

    #[test]
    #[should_panic(expected = "overflows u64 tiyn")]
    fn money_sum_asserts_no_overflow() {
        let _: Money = [Money::from_tiyn(u64::MAX), Money::from_tiyn(1)]
            .into_iter()
            .sum();
    }

    #[test]
    #[should_panic(expected = "is negative")]
    fn money_sub_asserts_not_negative() {
        let _ = Money::from_tiyn(1) - Money::from_tiyn(2);
    }

    #[test]
    fn money_mul_ratio() {
        fn check(tiyn: u64, numerator: u64, denominator: u64, expected: &str) {
            let actual = Money::from_tiyn(tiyn).mul_ratio(numerator, denominator);
            assert_eq!(
                actual.to_string(),
                expected,
                "{tiyn} × {numerator} / {denominator}"
            );
        }
        check(100, 1, 3, "0.33"); // 33.33… tiyn
        check(200, 1, 3, "0.67"); // 66.67 tiyn
        check(1, 1, 2, "0.01"); // exactly half a tiyn rounds up
        check(3, 1, 2, "0.02"); // 1.5 tiyn → 2
        check(5, 1, 2, "0.03"); // 2.5 tiyn → 3, half up, not to even
        check(149, 1, 100, "0.01"); // 1.49 tiyn → 1
        check(150, 1, 100, "0.02"); // 1.5 tiyn → 2
        check(5_085_100, 45, 100, "22882.95"); // 45% of the 2026 subsistence minimum
        check(0, 7, 9, "0.00");
        check(123_456, 0, 5, "0.00");
        check(u64::MAX, u64::MAX, u64::MAX, "184467440737095516.15"); // the u128 product holds
        assert_eq!(Money::from_tiyn(u64::MAX).checked_mul_ratio(2, 1), None);
    }

    #[test]
    #[should_panic(expected = "zero denominator")]
    fn money_mul_ratio_asserts_a_denominator() {
        Money::from_tiyn(1).mul_ratio(1, 0);
    }

    #[test]
    fn rate_parse_print_and_apply() {
        fn check(input: &str, base_tiyn: u64, expected: &str) {
            let actual = match Rate::parse(input) {
                Ok(rate) => format!(
                    "{rate} {rate:?} → {}",
                    rate.apply(Money::from_tiyn(base_tiyn))
                ),
                Err(error) => format!("error: {error}"),
            };
            assert_eq!(actual, expected, "input {input:?}");
        }
        // The 2026 MCI is 4,325 KZT; the subsistence minimum 50,851 KZT.
        check("5.76", 432_500, "5.76 Rate(5.76) → 24912.00");
        check("16.03", 432_500, "16.03 Rate(16.03) → 69329.75");
        check("1.61", 5_085_100, "1.61 Rate(1.61) → 81870.11");
        check("1.5", 432_500, "1.5 Rate(1.5) → 6487.50");
        check("0.45", 1_000_001, "0.45 Rate(0.45) → 4500.00"); // 450000.45 tiyn → 450000
        check("0.35", 10, "0.35 Rate(0.35) → 0.04"); // 3.5 tiyn → 4: half up
        check("0.0035", 1_000, "0.0035 Rate(0.0035) → 0.04"); // 3.5 tiyn → 4
        check("0.0035", 1_428, "0.0035 Rate(0.0035) → 0.05"); // 4.998 tiyn → 5
        check("0.5", 1, "0.5 Rate(0.5) → 0.01"); // 0.5 tiyn → 1
        check("0.4999", 1, "0.4999 Rate(0.4999) → 0.00"); // just under half
        check("4", 432_500, "4 Rate(4) → 17300.00");
        check("4.00", 1, "4 Rate(4) → 0.04");
        check("0", 432_500, "0 Rate(0) → 0.00");
        check(
            "0.00001",
            1,
            "error: rate has 5 decimals, at most 4 allowed",
        );
        check("-0.5", 1, "error: rate must not be negative");
        check(
            "5.76e0",
            1,
            "error: rate must be written without an exponent",
        );
        check("", 1, "error: rate is empty");
        check("99999999999999999999", 1, "error: rate is too large");
    }

    /// Whether `result` is `value × numerator / denominator` rounded half up, reasoned from the
    /// definition rather than from the implementation's trick: with `exact = value × numerator`
    /// and `near = result × denominator`, either `near ≤ exact` and the remainder is below half a
    /// denominator, or `near > exact` by at most half a denominator. Every step fits in `u128`.
    fn is_rounded_half_up(value: u64, numerator: u64, denominator: u64, result: u64) -> bool {
        let exact = u128::from(value) * u128::from(numerator);
        let near = u128::from(result) * u128::from(denominator);
        let denominator = u128::from(denominator);
        if near <= exact {
            (exact - near)
                .checked_mul(2)
                .is_some_and(|twice_below| twice_below < denominator)
        } else {
            (near - exact)
                .checked_mul(2)
                .is_some_and(|twice_above| twice_above <= denominator)
        }
    }

    proptest! {
        #[test]
        fn money_display_parse_round_trips(tiyn: u64) {
            let money = Money::from_tiyn(tiyn);
            prop_assert_eq!(Money::parse(&money.to_string()), Ok(money));
        }

        #[test]
        fn money_parse_matches_integer_reading(kzt in 0u64..1_000_000_000, tiyn in 0u64..100) {
            prop_assert_eq!(Money::parse(&format!("{kzt}.{tiyn:02}")), Ok(Money::from_tiyn(kzt * 100 + tiyn)));
            if tiyn % 10 == 0 {
                prop_assert_eq!(Money::parse(&format!("{kzt}.{}", tiyn / 10)), Ok(Money::from_tiyn(kzt * 100 + tiyn)));
            }
        }

        #[test]
        fn money_mul_ratio_rounds_half_up(value in 0u64..1 << 40, numerator in 0u64..1 << 20, denominator in 1u64..1 << 20) {
            let result = Money::from_tiyn(value).mul_ratio(numerator, denominator);
            prop_assert!(is_rounded_half_up(value, numerator, denominator, result.tiyn()), "{}", result);
        }

        #[test]
        fn money_mul_ratio_rounds_half_up_anywhere(value: u64, numerator: u64, denominator in 1u64..) {
            if let Some(result) = Money::from_tiyn(value).checked_mul_ratio(numerator, denominator) {
                prop_assert!(is_rounded_half_up(value, numerator, denominator, result.tiyn()), "{}", result);
            }
        }

        #[test]
        fn money_checked_add_commutes(a: u64, b: u64) {
            let (a, b) = (Money::from_tiyn(a), Money::from_tiyn(b));
            prop_assert_eq!(a.checked_add(b), b.checked_add(a));
            if let Some(sum) = a.checked_add(b) {
                prop_assert_eq!(sum.checked_sub(b), Some(a));
            }
        }

        #[test]
        fn rate_display_parse_round_trips(ten_thousandths in 0u64..1 << 40) {
            let rate = Rate::from_ten_thousandths(ten_thousandths);
            prop_assert_eq!(Rate::parse(&rate.to_string()), Ok(rate));
        }

        #[test]
        fn rate_apply_rounds_half_up(ten_thousandths in 0u64..1_000_000, base in 0u64..1 << 40) {
            let result = Rate::from_ten_thousandths(ten_thousandths).apply(Money::from_tiyn(base));
            prop_assert!(is_rounded_half_up(base, ten_thousandths, 10_000, result.tiyn()), "{}", result);
        }
    }

    #[test]
    fn serde_as_decimal_strings() {
        /// `json` is the value's JSON; it must come back as `value`, through bincode too.
        fn check<T>(json: &str, expected: Result<T, &str>)
        where
            T: Serialize + serde::de::DeserializeOwned + PartialEq + fmt::Debug,
        {
            let parsed = serde_json::from_str::<T>(json).map_err(|error| error.to_string());
            match (parsed, expected) {
                (Ok(value), Ok(expected)) => {
                    assert_eq!(value, expected, "json {json}");
                    assert_eq!(serde_json::to_string(&value).unwrap(), json, "back to json");
                    let config = bincode::config::standard();
                    let encoded = bincode::serde::encode_to_vec(value, config).unwrap();
                    let (decoded, _): (T, usize) =
                        bincode::serde::decode_from_slice(&encoded, config).unwrap();
                    assert_eq!(decoded, expected, "bincode round trip of {json}");
                }
                (Err(error), Err(expected)) => {
                    assert!(error.starts_with(expected), "json {json}: {error}");
                }
                (parsed, expected) => panic!("json {json}: got {parsed:?}, expected {expected:?}"),
            }
        }
        check(r#""16446.25""#, Ok(Money::from_tiyn(1_644_625)));
        check(r#""0.00""#, Ok(Money::ZERO));
        check::<Money>(r#""-5.00""#, Err("amount must not be negative"));
        check::<Money>(
            r#""5.001""#,
            Err("amount has 3 decimals, at most 2 allowed"),
        );
        // A JSON number would be a float on the way in, so it is refused.
        check::<Money>(
            "16446.25",
            Err("invalid type: floating point `16446.25`, expected a string"),
        );
        check(r#""5.76""#, Ok(Rate::parse("5.76").unwrap()));
        check(r#""0.0035""#, Ok(Rate::from_ten_thousandths(35)));
        check::<Rate>(
            "5.76",
            Err("invalid type: floating point `5.76`, expected a string"),
        );
        check::<Rate>(
            r#""5.76.1""#,
            Err("rate must be digits and an optional decimal point, found '.'"),
        );
    }
}
