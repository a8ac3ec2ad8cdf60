//! UTC timestamps in repozo's file-name form, and where "now" comes from.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC time to the second, printed as repozo names files:
/// `YYYY-MM-DD-HH-MM-SS`. Ordering is chronological (fields compare in
/// order), which for four-digit years is also the order of the strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// Year, e.g. 2026.
    pub year: u32,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    /// 0–23.
    pub hour: u32,
    /// 0–59.
    pub minute: u32,
    /// 0–59 (60 is accepted when parsed, as a leap second).
    pub second: u32,
}

impl Stamp {
    /// The stamp of `secs` seconds after the Unix epoch (UTC).
    pub fn from_unix(secs: u64) -> Self {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        Stamp {
            year: year as u32,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    /// Seconds since the Unix epoch (the inverse of [`Stamp::from_unix`]).
    pub fn to_unix(&self) -> u64 {
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        (days * 86_400) as u64
            + u64::from(self.hour) * 3600
            + u64::from(self.minute) * 60
            + u64::from(self.second)
    }

    /// The stamp `secs` seconds later.
    pub fn plus_seconds(&self, secs: u64) -> Self {
        Stamp::from_unix(self.to_unix() + secs)
    }

    /// The ISO 8601 week `(week-year, week)` the stamp's day falls in:
    /// weeks start on Monday, and week 1 is the one holding the year's
    /// first Thursday (so 2021-01-03 is in 2020's week 53).
    pub fn iso_week(&self) -> (i64, u32) {
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        // 1970-01-01 was a Thursday: Monday = 0.
        let weekday = (days + 3).rem_euclid(7);
        let thursday = days - weekday + 3;
        let (year, _, _) = civil_from_days(thursday);
        let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
        (year, week as u32)
    }

    /// Parses exactly `YYYY-MM-DD-HH-MM-SS` with calendar-valid fields.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 19 || ![4, 7, 10, 13, 16].iter().all(|&i| b[i] == b'-') {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let t = &s[r];
            t.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| t.parse().ok())?
        };
        let st = Stamp {
            year: num(0..4)?,
            month: num(5..7)?,
            day: num(8..10)?,
            hour: num(11..13)?,
            minute: num(14..16)?,
            second: num(17..19)?,
        };
        let valid = (1..=12).contains(&st.month)
            && st.day >= 1
            && st.day <= days_in_month(st.year, st.month)
            && st.hour < 24
            && st.minute < 60
            && st.second <= 60;
        valid.then_some(st)
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}-{:02}-{:02}-{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Days in `month` of `year` (proleptic Gregorian).
pub fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

/// Converts days since 1970-01-01 into (year, month, day); Howard
/// Hinnant's `civil_from_days`, which is exact for the proleptic Gregorian
/// calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Converts (year, month, day) into days since 1970-01-01; the inverse of
/// `civil_from_days` (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Checks a `-D` date: `yyyy-mm-dd[-hh[-mm[-ss]]]` with calendar-valid
/// fields. The date is still *used* as repozo uses it, as a string compared
/// with file stamps (so a partial date means "before that period").
pub fn validate_date(date: &str) -> bool {
    let parts: Vec<&str> = date.split('-').collect();
    if !(3..=6).contains(&parts.len()) {
        return false;
    }
    let widths = [4, 2, 2, 2, 2, 2];
    if parts
        .iter()
        .zip(widths)
        .any(|(p, w)| p.len() != w || !p.bytes().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    // Complete the missing fields with their smallest values and check
    // the calendar.
    let fill = ["0000", "01", "01", "00", "00", "00"];
    let full: Vec<&str> = (0..6).map(|i| *parts.get(i).unwrap_or(&fill[i])).collect();
    Stamp::parse(&full.join("-")).is_some()
}

/// Where operations get the current UTC time.
pub trait Clock {
    /// The current time, to the second.
    fn now(&self) -> Stamp;

    /// Waits, up to `max_wait`, until the time is later than `after`;
    /// returns the new time, or `None` if it did not get there.
    fn wait_past(&self, after: Stamp, max_wait: std::time::Duration) -> Option<Stamp> {
        let start = std::time::Instant::now();
        loop {
            let now = self.now();
            if now > after {
                return Some(now);
            }
            if start.elapsed() >= max_wait {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Stamp {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Stamp::from_unix(secs)
    }
}

/// A clock stopped at one stamp: for tests, and for the test-only
/// `REPOZO_TEST_NOW` override (the equivalent of repozo's `test_now`).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub Stamp);

impl Clock for FixedClock {
    fn now(&self) -> Stamp {
        self.0
    }

    /// A stopped clock never gets past anything: returns at once.
    fn wait_past(&self, after: Stamp, _: std::time::Duration) -> Option<Stamp> {
        (self.0 > after).then_some(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_weeks_start_on_monday_and_week_one_holds_the_first_thursday() {
        let week = |s: &str| Stamp::parse(s).unwrap().iso_week();
        assert_eq!(week("2021-01-03-23-59-59"), (2020, 53));
        assert_eq!(week("2021-01-04-00-00-00"), (2021, 1));
        assert_eq!(week("2024-12-30-12-00-00"), (2025, 1));
        assert_eq!(week("2026-11-26-03-00-00"), (2026, 48));
        assert_eq!(week("2026-11-29-03-00-00"), (2026, 48));
        assert_eq!(week("2026-11-30-03-00-00"), (2026, 49));
        assert_eq!(week("1970-01-01-00-00-00"), (1970, 1));
    }

    #[test]
    fn unix_seconds_convert_to_utc_stamps() {
        assert_eq!(Stamp::from_unix(0).to_string(), "1970-01-01-00-00-00");
        assert_eq!(
            Stamp::from_unix(1_795_000_000).to_string(),
            "2026-11-18-11-06-40"
        );
        assert_eq!(
            Stamp::from_unix(951_782_400).to_string(),
            "2000-02-29-00-00-00"
        );
    }

    #[test]
    fn stamps_convert_back_to_unix_seconds() {
        for secs in [0u64, 951_782_400, 1_795_000_000, 4_102_444_799] {
            assert_eq!(Stamp::from_unix(secs).to_unix(), secs);
        }
        let s = Stamp::parse("2026-12-31-23-59-59").unwrap();
        assert_eq!(s.plus_seconds(1).to_string(), "2027-01-01-00-00-00");
    }

    #[test]
    fn dates_are_validated_with_partial_forms_allowed() {
        for ok in [
            "2026-11-26",
            "2026-11-26-03",
            "2026-11-26-03-04",
            "2024-02-29-23-59-59",
        ] {
            assert!(validate_date(ok), "{ok}");
        }
        for bad in [
            "2026",
            "2026-11",
            "26-11-2026",
            "2026-02-30",
            "2026-11-26-24",
            "garbage",
            "9",
            "2026-11-26-3",
            "2026-11-26-03-04-05-06",
            "",
        ] {
            assert!(!validate_date(bad), "{bad}");
        }
    }

    #[test]
    fn parsing_rejects_impossible_dates() {
        assert!(Stamp::parse("2026-02-29-00-00-00").is_none());
        assert!(Stamp::parse("2024-02-29-23-59-59").is_some());
        assert!(Stamp::parse("2026-13-01-00-00-00").is_none());
        assert!(Stamp::parse("2026-1-01-00-00-000").is_none());
    }
}
