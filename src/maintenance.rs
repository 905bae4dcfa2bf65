//! Maintenance windows: when planned work is on, a worker's failures alert nobody and do not count
//! against its uptime. The window math is here, pure: every function takes "now" as an argument
//! (Unix milliseconds), so tests put themselves inside or outside a window without a clock.
//!
//! A window is one-off (`start` + `duration`) or repeating (`every` day or on some weekdays, `at`
//! a local time in a fixed-offset `timezone`, for `duration`). Fixed offsets only: an IANA zone
//! (`Europe/Paris`) would need a zone database inside the binary, and a scratch image has none.
//! The text forms (`"03:00"`, `"+05:30"`, `"mon,wed"`, RFC 3339) are read here too, so the config
//! layer only walks the JSON and names the field.

use std::time::Duration;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The longest a repeating window may last: a week, so an occurrence that contains "now" started
/// at most 8 local days ago and the search stays a short loop.
pub const MAX_REPEATING: Duration = Duration::from_secs(7 * 86_400);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Starts once, at this Unix time in milliseconds.
    Once { start_ms: i64 },
    /// Starts on the weekdays in `days` (bit 0 Monday .. bit 6 Sunday) at `at_min` minutes after
    /// local midnight, local time being UTC plus `offset_min` minutes.
    Every { days: u8, at_min: u32, offset_min: i32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub when: When,
    pub duration: Duration,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Monday 0 .. Sunday 6 of a day counted from 1970-01-01 (a Thursday).
fn weekday(day: i64) -> u32 {
    (day + 3).rem_euclid(7) as u32
}

impl Window {
    /// The occurrences (start, end) in Unix ms that could touch the time `t`: for a repeating
    /// window, those starting from 8 local days before `t` to 8 after, oldest first.
    fn occurrences(&self, t: i64) -> Vec<(i64, i64)> {
        let len = ms(self.duration);
        match self.when {
            When::Once { start_ms } => vec![(start_ms, start_ms.saturating_add(len))],
            When::Every {
                days,
                at_min,
                offset_min,
            } => {
                let offset = i64::from(offset_min) * MINUTE_MS;
                let local_day = (t + offset).div_euclid(DAY_MS);
                (local_day - 8..=local_day + 8)
                    .filter(|d| days & (1 << weekday(*d)) != 0)
                    .map(|d| {
                        let start = d * DAY_MS + i64::from(at_min) * MINUTE_MS - offset;
                        (start, start + len)
                    })
                    .collect()
            }
        }
    }

    /// The end of the occurrence that contains `now`, if one does.
    fn end_if_active(&self, now: i64) -> Option<i64> {
        self.occurrences(now)
            .into_iter()
            .filter(|(s, e)| *s <= now && now < *e)
            .map(|(_, e)| e)
            .max()
    }

    /// The first occurrence starting after `now`.
    fn next_after(&self, now: i64) -> Option<(i64, i64)> {
        self.occurrences(now).into_iter().find(|(s, _)| *s > now)
    }
}

/// When the maintenance that is on at `now` ends (Unix ms), or `None` outside every window.
/// Windows that overlap or touch run on into each other: the end is where none is on any more.
pub fn active_until(windows: &[Window], now: i64) -> Option<i64> {
    let mut end = windows.iter().filter_map(|w| w.end_if_active(now)).max()?;
    // Each step moves `end` strictly later; a chain longer than the list cannot happen.
    for _ in 0..=windows.len() * 20 {
        match windows.iter().filter_map(|w| w.end_if_active(end)).max() {
            Some(later) if later > end => end = later,
            _ => break,
        }
    }
    Some(end)
}

/// The next window starting after `now`: (start, end) in Unix ms.
pub fn next_window(windows: &[Window], now: i64) -> Option<(i64, i64)> {
    let (start, _) = windows.iter().filter_map(|w| w.next_after(now)).min()?;
    Some((start, active_until(windows, start).unwrap_or(start)))
}

/// When the maintenance state next changes after `now`: the end of the window that is on, else
/// the start of the next one. A worker thread wakes then.
pub fn next_change(windows: &[Window], now: i64) -> Option<i64> {
    active_until(windows, now).or_else(|| next_window(windows, now).map(|(s, _)| s))
}

/// `"03:00"`: minutes after midnight.
pub fn parse_at(s: &str) -> Result<u32, String> {
    let bad = || format!("expected a time of day such as \"03:00\" (00:00 to 23:59), got {s:?}");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let two_digits = |p: &str| {
        (p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse::<u32>().ok())
            .flatten()
    };
    match (two_digits(h), two_digits(m)) {
        (Some(h), Some(m)) if h < 24 && m < 60 => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

/// `"UTC"`, `"Z"`, `"+05:30"`, `"-04:00"`: the offset from UTC in minutes.
pub fn parse_timezone(s: &str) -> Result<i32, String> {
    if s.eq_ignore_ascii_case("utc") || s == "Z" {
        return Ok(0);
    }
    if s.contains('/') || s.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(format!(
            "time zone names such as {s:?} are not built in (a zone database would not fit the \
             binary); give a fixed offset from UTC such as \"+05:30\" or \"-04:00\" \
             (daylight saving time is not followed)"
        ));
    }
    parse_offset(s).ok_or_else(|| format!("expected \"UTC\" or an offset such as \"+05:30\" or \"-04:00\", got {s:?}"))
}

/// `+HH:MM` or `-HH:MM`, up to 14 hours either way.
fn parse_offset(s: &str) -> Option<i32> {
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let minutes = parse_at(s.get(1..)?).ok()?;
    (minutes <= 14 * 60).then_some(sign * minutes as i32)
}

/// `"day"`, `"weekdays"`, `"weekends"` or a list such as `"mon,wed"`: the weekday bits.
pub fn parse_every(s: &str) -> Result<u8, String> {
    let bad = || {
        format!(
            "expected \"day\", \"weekdays\", \"weekends\" or a list of days such as \"mon,wed\" \
             (mon, tue, wed, thu, fri, sat, sun), got {s:?}"
        )
    };
    match s.trim().to_ascii_lowercase().as_str() {
        "day" | "daily" => return Ok(0x7f),
        "weekdays" => return Ok(0x1f),
        "weekends" => return Ok(0x60),
        _ => {}
    }
    let mut days = 0u8;
    for part in s.split(',').map(|p| p.trim().to_ascii_lowercase()) {
        let i = WEEKDAYS.iter().position(|d| *d == part).ok_or_else(bad)?;
        days |= 1 << i;
    }
    Ok(days)
}

/// An RFC 3339 time (`2026-12-24T22:00:00Z`, `2026-12-24T23:00:00+01:00`, fractions of a second
/// allowed) as Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let bad = || format!("expected an RFC 3339 time such as \"2026-12-24T22:00:00Z\", got {s:?}");
    let num = |a: usize, b: usize| -> Result<i64, String> {
        let p = s.get(a..b).ok_or_else(bad)?;
        if p.bytes().all(|c| c.is_ascii_digit()) {
            p.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let (y, mo, d, h, mi, sec) = (
        num(0, 4)?,
        num(5, 7)?,
        num(8, 10)?,
        num(11, 13)?,
        num(14, 16)?,
        num(17, 19)?,
    );
    let mut rest = &s[19..];
    let mut frac_ms = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let first3: String = f[..digits].chars().chain("000".chars()).take(3).collect();
        frac_ms = first3.parse::<i64>().map_err(|_| bad())?;
        rest = &f[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        other => i64::from(parse_offset(other).ok_or_else(bad)?),
    };
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let valid = (1..=12).contains(&mo)
        && d >= 1
        && d <= month_days[(mo.clamp(1, 12) - 1) as usize]
        && h < 24
        && mi < 60
        && sec < 61;
    if !valid {
        return Err(bad());
    }
    let days = days_from_civil(y, mo, d);
    Ok(((days * 24 + h) * 60 + mi - offset_min) * MINUTE_MS + sec.min(59) * 1000 + frac_ms)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// How `check` and the page describe a window: `every mon,wed at 03:00 +05:30 for 30m` or
/// `once from 2026-12-24T22:00:00Z for 2h`.
pub fn describe(w: &Window) -> String {
    let dur = crate::duration::format(w.duration);
    match w.when {
        When::Once { start_ms } => format!("once from {} for {dur}", rfc3339_ms(start_ms)),
        When::Every {
            days,
            at_min,
            offset_min,
        } => {
            let list = match days {
                0x7f => "day".to_string(),
                0x1f => "weekdays".to_string(),
                0x60 => "weekends".to_string(),
                _ => (0..7)
                    .filter(|i| days & (1 << i) != 0)
                    .map(|i| WEEKDAYS[i])
                    .collect::<Vec<_>>()
                    .join(","),
            };
            let zone = if offset_min == 0 {
                "UTC".to_string()
            } else {
                let a = offset_min.unsigned_abs();
                format!("{}{:02}:{:02}", if offset_min < 0 { '-' } else { '+' }, a / 60, a % 60)
            };
            format!("every {list} at {:02}:{:02} {zone} for {dur}", at_min / 60, at_min % 60)
        }
    }
}

/// RFC 3339 (UTC, whole seconds) of a Unix time in ms; times before 1970 show as the epoch.
pub fn rfc3339_ms(t: i64) -> String {
    crate::timefmt::rfc3339(crate::timefmt::from_unix_millis(u64::try_from(t).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    fn every(days: &str, at: &str, tz: &str, dur: u64) -> Window {
        Window {
            when: When::Every {
                days: parse_every(days).unwrap(),
                at_min: parse_at(at).unwrap(),
                offset_min: parse_timezone(tz).unwrap(),
            },
            duration: Duration::from_secs(dur * 60),
        }
    }

    fn once(start: &str, dur_min: u64) -> Window {
        Window {
            when: When::Once { start_ms: t(start) },
            duration: Duration::from_secs(dur_min * 60),
        }
    }

    #[test]
    fn rfc3339_reads_offsets_and_fractions() {
        assert_eq!(t("1970-01-01T00:00:00Z"), 0);
        assert_eq!(t("2026-11-28T10:55:00Z"), 1_795_863_300_000);
        assert_eq!(t("2026-11-28T12:55:00+02:00"), 1_795_863_300_000);
        assert_eq!(t("2026-11-28T10:55:00.25Z"), 1_795_863_300_250);
        assert_eq!(t("2000-02-29T00:00:00Z"), 951_782_400_000);
        for bad in [
            "2026-02-29T00:00:00Z",
            "2026-11-28 10:55",
            "2026-11-28T10:55:00",
            "2026-13-01T00:00:00Z",
            "x",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_forms() {
        assert_eq!(parse_at("03:00"), Ok(180));
        assert_eq!(parse_at("23:59"), Ok(1439));
        assert!(parse_at("24:00").is_err() && parse_at("3:00").is_err() && parse_at("03:60").is_err());
        assert_eq!(parse_timezone("UTC"), Ok(0));
        assert_eq!(parse_timezone("+05:30"), Ok(330));
        assert_eq!(parse_timezone("-04:00"), Ok(-240));
        let iana = parse_timezone("Europe/Paris").unwrap_err();
        assert!(iana.contains("not built in") && iana.contains("+05:30"), "{iana}");
        assert!(parse_timezone("+15:00").is_err() && parse_timezone("0530").is_err());
        assert_eq!(parse_every("day"), Ok(0x7f));
        assert_eq!(parse_every("mon,wed"), Ok(0b101));
        assert_eq!(parse_every("Sun"), Ok(0x40));
        assert!(parse_every("mon,funday").is_err() && parse_every("").is_err());
    }

    #[test]
    fn a_one_off_window_contains_its_start_not_its_end() {
        let w = [once("2026-12-24T22:00:00Z", 120)];
        assert_eq!(active_until(&w, t("2026-12-24T21:59:59Z")), None);
        assert_eq!(
            active_until(&w, t("2026-12-24T22:00:00Z")),
            Some(t("2026-12-25T00:00:00Z"))
        );
        assert_eq!(
            active_until(&w, t("2026-12-24T23:59:59Z")),
            Some(t("2026-12-25T00:00:00Z"))
        );
        assert_eq!(active_until(&w, t("2026-12-25T00:00:00Z")), None);
        assert_eq!(
            next_change(&w, t("2026-12-24T12:00:00Z")),
            Some(t("2026-12-24T22:00:00Z"))
        );
        assert_eq!(
            next_change(&w, t("2026-12-25T00:00:00Z")),
            None,
            "a past one-off never comes back"
        );
    }

    #[test]
    fn daily_window_across_midnight() {
        // 23:30 for 1 hour: on until 00:30 the next day, a day boundary inside the window.
        let w = [every("day", "23:30", "UTC", 60)];
        assert_eq!(
            active_until(&w, t("2026-12-01T00:10:00Z")),
            Some(t("2026-12-01T00:30:00Z"))
        );
        assert_eq!(
            active_until(&w, t("2026-12-01T23:45:00Z")),
            Some(t("2026-12-02T00:30:00Z"))
        );
        assert_eq!(active_until(&w, t("2026-12-01T12:00:00Z")), None);
        assert_eq!(
            next_window(&w, t("2026-12-01T12:00:00Z")),
            Some((t("2026-12-01T23:30:00Z"), t("2026-12-02T00:30:00Z")))
        );
    }

    #[test]
    fn weekdays_are_local_weekdays() {
        // 2026-12-07 is a Monday. "mon at 01:00 +05:30" is Sunday 19:30 UTC.
        let w = [every("mon", "01:00", "+05:30", 30)];
        assert_eq!(
            active_until(&w, t("2026-12-06T19:40:00Z")),
            Some(t("2026-12-06T20:00:00Z"))
        );
        assert_eq!(
            active_until(&w, t("2026-12-07T01:10:00Z")),
            None,
            "Monday 01:10 UTC is not local 01:10"
        );
        assert_eq!(
            next_window(&w, t("2026-12-07T00:00:00Z")).map(|(s, _)| s),
            Some(t("2026-12-13T19:30:00Z")),
            "next local Monday"
        );
        // "-04:00": Wednesday 22:00 local is Thursday 02:00 UTC.
        let w = [every("mon,wed", "22:00", "-04:00", 60)];
        assert_eq!(
            active_until(&w, t("2026-12-10T02:30:00Z")),
            Some(t("2026-12-10T03:00:00Z"))
        );
        assert_eq!(
            active_until(&w, t("2026-12-09T22:30:00Z")),
            None,
            "22:30 UTC Wednesday is 18:30 local"
        );
        assert_eq!(
            next_window(&w, t("2026-12-10T03:00:00Z")).map(|(s, _)| s),
            Some(t("2026-12-15T02:00:00Z")),
            "Wednesday, then Monday: Tuesday 02:00 UTC"
        );
    }

    #[test]
    fn overlapping_windows_run_on() {
        let w = [
            once("2026-12-01T10:00:00Z", 60),
            once("2026-12-01T10:30:00Z", 60),
            once("2026-12-01T11:30:00Z", 30),
        ];
        assert_eq!(
            active_until(&w, t("2026-12-01T10:15:00Z")),
            Some(t("2026-12-01T12:00:00Z"))
        );
        assert_eq!(
            next_window(&w, t("2026-12-01T09:00:00Z")),
            Some((t("2026-12-01T10:00:00Z"), t("2026-12-01T12:00:00Z")))
        );
        assert_eq!(next_window(&[], 0), None);
        assert_eq!(active_until(&[], 0), None);
    }

    #[test]
    fn a_window_longer_than_a_day_repeats_over_itself() {
        let w = [Window {
            duration: MAX_REPEATING,
            ..every("mon", "00:00", "UTC", 0)
        }];
        // Every Monday for 7 days: always on; the end runs on and stops at the search's bound.
        assert!(active_until(&w, t("2026-12-10T00:00:00Z")).is_some());
    }

    #[test]
    fn described_as_written() {
        assert_eq!(
            describe(&every("mon,wed", "03:00", "+05:30", 30)),
            "every mon,wed at 03:00 +05:30 for 30m"
        );
        assert_eq!(
            describe(&every("day", "23:30", "UTC", 60)),
            "every day at 23:30 UTC for 1h"
        );
        assert_eq!(
            describe(&once("2026-12-24T22:00:00Z", 120)),
            "once from 2026-12-24T22:00:00Z for 2h"
        );
    }
}
