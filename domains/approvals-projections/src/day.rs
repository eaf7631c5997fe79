//! UTC days, which the daily totals are partitioned by.

use std::fmt;

use scylla::value::CqlDate;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A day of the UTC calendar, as days since 1970-01-01 (negative before).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcDay(i32);

impl UtcDay {
    /// The day `days` after 1970-01-01.
    pub const fn from_days_since_epoch(days: i32) -> Self {
        Self(days)
    }

    /// The day of an instant given in microseconds since the Unix epoch (an envelope's
    /// `recorded_at`).
    pub fn of_micros(micros: i64) -> Self {
        // |i64::MIN / MICROS_PER_DAY| is about 107 million days: it fits an i32.
        Self(i32::try_from(micros.div_euclid(MICROS_PER_DAY)).unwrap_or(i32::MIN))
    }

    /// The day `year-month-day`, if it is one.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Self> {
        // Howard Hinnant's days_from_civil.
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        let year = i64::from(year) - i64::from(month <= 2);
        let era = year.div_euclid(400);
        let year_of_era = year - era * 400;
        let month = i64::from(month);
        let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        i32::try_from(era * 146_097 + day_of_era - 719_468).ok().map(Self)
    }

    /// Days since 1970-01-01.
    pub const fn days_since_epoch(self) -> i32 {
        self.0
    }

    /// `(year, month, day)` of the UTC calendar.
    pub fn ymd(self) -> (i32, u32, u32) {
        // Howard Hinnant's civil_from_days.
        let days = i64::from(self.0) + 719_468;
        let era = days.div_euclid(146_097);
        let day_of_era = days - era * 146_097;
        let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        // In range by construction: an i32 of days spans about ±5.8 million years.
        (year as i32, month as u32, day as u32)
    }

    /// The CQL `date` of the day.
    pub(crate) fn to_cql(self) -> CqlDate {
        // CQL counts days from 2^31 days before the epoch.
        CqlDate(self.0.wrapping_add(i32::MIN) as u32)
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl fmt::Display for UtcDay {
    /// `YYYY-MM-DD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = self.ymd();
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}
