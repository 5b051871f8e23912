//! Dates of the years people are born and live in, by table: a what-if or a
//! re-score scan makes tens of millions of dates from the compact forms' day
//! numbers and from IINs, and chrono's constructors compute and check each
//! one. Outside the table's years each function is chrono's own; inside, each
//! gives what chrono gives (tested against it).

use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

/// The table's first year and how many it holds: 1800–2099, the IIN's
/// centuries.
const FIRST_YEAR: i32 = 1800;
const YEARS: usize = 300;

/// Days from the common era of 1970-01-01, as chrono counts them.
const UNIX_EPOCH_DAY: i64 = 719_163;

struct Table {
    /// [`NaiveDate::num_days_from_ce`] of the first day.
    first_day: i32,
    /// Every day from 1800-01-01 to 2099-12-31.
    dates: Vec<NaiveDate>,
    /// Where each month starts in `dates`, by `(year - FIRST_YEAR) * 12 +
    /// month - 1`, and one past the last.
    month_starts: Vec<u32>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let first = NaiveDate::from_ymd_opt(FIRST_YEAR, 1, 1).expect("a date");
        let end = NaiveDate::from_ymd_opt(FIRST_YEAR + YEARS as i32, 1, 1).expect("a date");
        let dates: Vec<NaiveDate> = first.iter_days().take_while(|day| *day < end).collect();
        let mut month_starts: Vec<u32> = dates
            .iter()
            .enumerate()
            .filter(|(_, day)| chrono::Datelike::day(*day) == 1)
            .map(|(index, _)| u32::try_from(index).expect("the table is small"))
            .collect();
        month_starts.push(u32::try_from(dates.len()).expect("the table is small"));
        Table {
            first_day: chrono::Datelike::num_days_from_ce(&first),
            dates,
            month_starts,
        }
    })
}

/// [`NaiveDate::from_ymd_opt`].
pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    let table = table();
    let month_index = usize::try_from(year.wrapping_sub(FIRST_YEAR))
        .ok()
        .filter(|years| *years < YEARS && (1..=12).contains(&month) && day >= 1)
        .map(|years| years * 12 + month as usize - 1);
    let Some(month_index) = month_index else {
        return NaiveDate::from_ymd_opt(year, month, day);
    };
    let start = table.month_starts[month_index];
    let length = table.month_starts[month_index + 1] - start;
    (day <= length).then(|| table.dates[(start + day - 1) as usize])
}

/// [`NaiveDate::from_num_days_from_ce_opt`].
pub fn from_days_from_ce(days: i32) -> Option<NaiveDate> {
    let table = table();
    match usize::try_from(days.wrapping_sub(table.first_day)) {
        Ok(index) if days >= table.first_day && index < table.dates.len() => {
            Some(table.dates[index])
        }
        _ => NaiveDate::from_num_days_from_ce_opt(days),
    }
}

/// [`DateTime::from_timestamp`].
pub fn from_timestamp(seconds: i64, nanos: u32) -> Option<DateTime<Utc>> {
    let days = i32::try_from(seconds.div_euclid(86_400) + UNIX_EPOCH_DAY).ok()?;
    let seconds = u32::try_from(seconds.rem_euclid(86_400)).ok()?;
    let date = from_days_from_ce(days)?;
    let time = NaiveTime::from_num_seconds_from_midnight_opt(seconds, nanos)?;
    Some(date.and_time(time).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn dates_are_chronos(year in 1700i32..2200, month in 0u32..14, day in 0u32..33) {
            prop_assert_eq!(from_ymd(year, month, day), NaiveDate::from_ymd_opt(year, month, day));
        }

        #[test]
        fn day_numbers_are_chronos(days in 600_000i32..800_000) {
            prop_assert_eq!(from_days_from_ce(days), NaiveDate::from_num_days_from_ce_opt(days));
        }

        #[test]
        fn timestamps_are_chronos(seconds in -7_000_000_000i64..7_000_000_000, nanos in 0u32..2_100_000_000) {
            prop_assert_eq!(from_timestamp(seconds, nanos), DateTime::from_timestamp(seconds, nanos));
        }
    }

    #[test]
    fn the_edges_and_far_dates_are_chronos() {
        for days in [
            i32::MIN,
            -1,
            0,
            1,
            657_072,
            657_073,
            766_644,
            766_645,
            i32::MAX,
        ] {
            assert_eq!(
                from_days_from_ce(days),
                NaiveDate::from_num_days_from_ce_opt(days)
            );
        }
        for (year, month, day) in [
            (1799, 12, 31),
            (1800, 1, 1),
            (2099, 12, 31),
            (2100, 1, 1),
            (1900, 2, 29),
            (2000, 2, 29),
            (i32::MIN, 1, 1),
        ] {
            assert_eq!(
                from_ymd(year, month, day),
                NaiveDate::from_ymd_opt(year, month, day)
            );
        }
        for (seconds, nanos) in [
            (i64::MIN, 0),
            (i64::MAX, 0),
            (86_399, 1_999_999_999),
            (86_398, 1_500_000_000),
        ] {
            assert_eq!(
                from_timestamp(seconds, nanos),
                DateTime::from_timestamp(seconds, nanos)
            );
        }
    }
}
