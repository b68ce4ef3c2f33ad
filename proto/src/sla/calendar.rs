//! When a contract's clock runs: 24×7, or business hours in the customer's local time with
//! holidays and other closures.
//!
//! Local time is a fixed offset from UTC per calendar. A region that changes offset for
//! daylight saving gets one calendar per season from whoever keeps its contracts; SLA
//! targets are counted in hours, and a wrong hour twice a year is a smaller error than a
//! time-zone database compiled into every agent.

use serde::{Deserialize, Serialize};

pub const MINUTE_MS: u64 = 60_000;
pub const HOUR_MS: u64 = 60 * MINUTE_MS;
pub const DAY_MS: u64 = 24 * HOUR_MS;
const DAY_MINUTES: u16 = 24 * 60;

/// A calendar date, as a contract and a person write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

impl Date {
    pub fn new(year: i32, month: u8, day: u8) -> Date {
        Date { year, month, day }
    }

    /// Days since 1970-01-01 (proleptic Gregorian; H. Hinnant's `days_from_civil`).
    pub fn days_since_epoch(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    pub fn from_days_since_epoch(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    /// 0 = Monday … 6 = Sunday.
    pub fn weekday(self) -> usize {
        // 1970-01-01 was a Thursday.
        (self.days_since_epoch() + 3).rem_euclid(7) as usize
    }

    /// Parse `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Date> {
        let mut parts = s.splitn(3, '-');
        let year = parts.next()?.parse().ok()?;
        let month: u8 = parts.next()?.parse().ok()?;
        let day: u8 = parts.next()?.parse().ok()?;
        let d = Date { year, month, day };
        let valid = (1..=12).contains(&month)
            && day >= 1
            && Date::from_days_since_epoch(d.days_since_epoch()) == d;
        valid.then_some(d)
    }
}

/// A local wall-clock moment: a date and minutes after its midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LocalTime {
    pub date: Date,
    pub minute: u16,
}

impl LocalTime {
    pub fn new(date: Date, hour: u16, minute: u16) -> LocalTime {
        LocalTime {
            date,
            minute: hour * 60 + minute,
        }
    }

    /// Minutes since the local epoch (1970-01-01 00:00 local).
    fn local_minutes(self) -> i64 {
        self.date.days_since_epoch() * i64::from(DAY_MINUTES) + i64::from(self.minute)
    }
}

/// A period the clock does not run although the hours say open: a public holiday, a
/// site shutdown, Christmas Eve from 18:00 to the 26th at 08:00.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    pub from: LocalTime,
    /// Exclusive.
    pub to: LocalTime,
}

impl Closure {
    /// Whole local days from `first` to `last`, inclusive.
    pub fn days(first: Date, last: Date) -> Closure {
        Closure {
            from: LocalTime {
                date: first,
                minute: 0,
            },
            to: LocalTime {
                date: Date::from_days_since_epoch(last.days_since_epoch() + 1),
                minute: 0,
            },
        }
    }
}

/// Opening hours: per weekday (Monday first), open intervals in minutes after local
/// midnight, `[start, end)`. A night shift is two intervals on consecutive days.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessHours {
    /// Local time minus UTC, in minutes (+480 for Shanghai, -300 for New York in winter).
    pub utc_offset_min: i32,
    pub week: [Vec<(u16, u16)>; 7],
    #[serde(default)]
    pub closures: Vec<Closure>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Calendar {
    /// 24×7 on-call: every minute counts.
    Always,
    Business(BusinessHours),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("{day}: opening hours must be within 00:00-24:00 and end after they start")]
    BadHours { day: &'static str },
    #[error("{day}: opening hours overlap or are out of order")]
    Overlap { day: &'static str },
    #[error("a closure must end after it starts")]
    BadClosure,
    #[error("the UTC offset must be within -14:00..+14:00")]
    BadOffset,
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

impl BusinessHours {
    /// The same hours Monday to Friday, closed at weekends.
    pub fn weekdays(utc_offset_min: i32, open: (u16, u16), close: (u16, u16)) -> BusinessHours {
        let day = vec![(open.0 * 60 + open.1, close.0 * 60 + close.1)];
        BusinessHours {
            utc_offset_min,
            week: [
                day.clone(),
                day.clone(),
                day.clone(),
                day.clone(),
                day,
                Vec::new(),
                Vec::new(),
            ],
            closures: Vec::new(),
        }
    }

    pub fn validate(&self) -> Result<(), CalendarError> {
        if self.utc_offset_min.abs() > 14 * 60 {
            return Err(CalendarError::BadOffset);
        }
        for (hours, day) in self.week.iter().zip(WEEKDAYS) {
            let mut last_end = 0;
            for &(s, e) in hours {
                if s >= e || e > DAY_MINUTES {
                    return Err(CalendarError::BadHours { day });
                }
                if s < last_end {
                    return Err(CalendarError::Overlap { day });
                }
                last_end = e;
            }
        }
        if self.closures.iter().any(|c| c.to <= c.from) {
            return Err(CalendarError::BadClosure);
        }
        Ok(())
    }

    fn offset_ms(&self) -> i64 {
        i64::from(self.utc_offset_min) * MINUTE_MS as i64
    }

    /// Closures as UTC `[from, to)` ms, sorted and merged.
    fn closed_utc(&self) -> Vec<(i64, i64)> {
        let to_utc = |t: LocalTime| t.local_minutes() * MINUTE_MS as i64 - self.offset_ms();
        let mut v: Vec<(i64, i64)> = self
            .closures
            .iter()
            .map(|c| (to_utc(c.from), to_utc(c.to)))
            .collect();
        v.sort_unstable();
        merge(v)
    }
}

/// Sorted intervals with the overlapping and touching ones joined.
pub(super) fn merge(sorted: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(sorted.len());
    for (a, b) in sorted {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `[a, b)` minus the sorted, disjoint `holes`, appended to `out`.
pub(super) fn subtract(a: i64, b: i64, holes: &[(i64, i64)], out: &mut Vec<(i64, i64)>) {
    let mut start = a;
    let first = holes.partition_point(|h| h.1 <= a);
    for &(ha, hb) in &holes[first..] {
        if ha >= b {
            break;
        }
        if ha > start {
            out.push((start, ha));
        }
        start = start.max(hb);
        if start >= b {
            return;
        }
    }
    if start < b {
        out.push((start, b));
    }
}

impl Calendar {
    pub fn validate(&self) -> Result<(), CalendarError> {
        match self {
            Calendar::Always => Ok(()),
            Calendar::Business(h) => h.validate(),
        }
    }

    /// The open periods within `[from, to)` (UTC ms), in order.
    pub fn open_between(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        if to <= from {
            return Vec::new();
        }
        let hours = match self {
            Calendar::Always => return vec![(from, to)],
            Calendar::Business(h) => h,
        };
        let (from, to) = (from as i64, to as i64);
        let off = hours.offset_ms();
        let closed = hours.closed_utc();
        let first_day = (from + off).div_euclid(DAY_MS as i64);
        let last_day = (to + off - 1).div_euclid(DAY_MS as i64);
        let mut open = Vec::new();
        for day in first_day..=last_day {
            let weekday = Date::from_days_since_epoch(day).weekday();
            let midnight_utc = day * DAY_MS as i64 - off;
            for &(s, e) in &hours.week[weekday] {
                let a = (midnight_utc + i64::from(s) * MINUTE_MS as i64).max(from);
                let b = (midnight_utc + i64::from(e) * MINUTE_MS as i64).min(to);
                if a < b {
                    subtract(a, b, &closed, &mut open);
                }
            }
        }
        open.into_iter()
            .map(|(a, b)| (a as u64, b as u64))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_know_their_weekday() {
        for days in -800_000..800_000i64 {
            if days % 997 != 0 {
                continue;
            }
            let d = Date::from_days_since_epoch(days);
            assert_eq!(d.days_since_epoch(), days, "{d:?}");
        }
        assert_eq!(Date::new(1970, 1, 1).weekday(), 3, "a Thursday");
        assert_eq!(Date::new(2026, 12, 1).weekday(), 1, "a Tuesday");
        assert_eq!(
            Date::new(2024, 2, 29).days_since_epoch() + 1,
            Date::new(2024, 3, 1).days_since_epoch()
        );
        assert_eq!(Date::parse("2026-02-29"), None);
        assert_eq!(Date::parse("2028-02-29"), Some(Date::new(2028, 2, 29)));
        assert_eq!(Date::parse("2026-13-01"), None);
    }

    #[test]
    fn bad_hours_are_refused() {
        let mut h = BusinessHours::weekdays(0, (9, 0), (17, 0));
        assert_eq!(h.validate(), Ok(()));
        h.week[2] = vec![(600, 540)];
        assert_eq!(
            h.validate(),
            Err(CalendarError::BadHours { day: "wednesday" })
        );
        h.week[2] = vec![(540, 720), (700, 1000)];
        assert_eq!(
            h.validate(),
            Err(CalendarError::Overlap { day: "wednesday" })
        );
        h.week[2] = vec![(540, 1441)];
        assert!(h.validate().is_err());
    }
}
