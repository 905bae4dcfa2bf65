//! Wall-clock helpers: RFC 3339 UTC timestamps and "3 min ago" phrases, without a date crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

pub fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

pub fn from_unix_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// `2026-11-28T10:55:00Z` (whole seconds, UTC).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = unix_secs(t);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2026-11-28T10:55:00.123Z` (milliseconds, truncated, UTC): the log's timestamps.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().subsec_millis();
    let mut s = rfc3339(t);
    s.pop();
    s.push_str(&format!(".{ms:03}Z"));
    s
}

/// `Sat, 28 Nov 2026 10:55:00 GMT`: the HTTP `Date` format (IMF-fixdate, RFC 9110).
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = unix_secs(t);
    let days = secs / 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let rem = secs % 86_400;
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m as usize).clamp(1, 12) - 1],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
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

/// "just now", "42 s ago", "3 min ago", "5 h ago", "2 d ago"; "in 3 min" for the future.
pub fn relative(t: SystemTime, now: SystemTime) -> String {
    let (secs, future) = match t.duration_since(now) {
        Ok(ahead) if !ahead.is_zero() => (ahead.as_secs(), true),
        Ok(_) => (0, false),
        Err(e) => (e.duration().as_secs(), false),
    };
    if secs < 2 {
        return if future { "now" } else { "just now" }.to_string();
    }
    let amount = match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86_399 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_timestamps_have_milliseconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_860_000_007);
        assert_eq!(rfc3339_millis(t), "2026-11-28T10:00:00.007Z");
        let t = UNIX_EPOCH + Duration::from_nanos(951_825_599_999_999_999);
        assert_eq!(rfc3339_millis(t), "2000-02-29T11:59:59.999Z");
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_860_000);
        assert_eq!(http_date(t), "Sat, 28 Nov 2026 10:00:00 GMT");
        let leap = UNIX_EPOCH + Duration::from_secs(951_825_599); // 2000-02-29 11:59:59
        assert_eq!(http_date(leap), "Tue, 29 Feb 2000 11:59:59 GMT");
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(at(1_795_863_300)), "2026-11-28T10:55:00Z");
        assert_eq!(rfc3339(at(4_107_542_399)), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339(at(1_704_067_199)), "2023-12-31T23:59:59Z");
    }

    #[test]
    fn relative_phrases() {
        let now = at(1_000_000);
        assert_eq!(relative(at(1_000_000), now), "just now");
        assert_eq!(relative(at(999_958), now), "42 s ago");
        assert_eq!(relative(at(1_000_000 - 180), now), "3 min ago");
        assert_eq!(relative(at(1_000_000 - 7200), now), "2 h ago");
        assert_eq!(relative(at(1_000_000 - 3 * 86_400), now), "3 d ago");
        assert_eq!(relative(at(1_000_000 + 300), now), "in 5 min");
    }
}
