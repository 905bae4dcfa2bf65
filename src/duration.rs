//! Human durations ("1h30m", "250ms") in both directions. Config, logs, errors and the page all
//! speak this one format, so a value a user wrote reads back the same way. One exception reads
//! better than a round trip: a part-second past a whole second is shown as a decimal (`2.5s`, not
//! `2s500ms`), which `parse` does not accept (configuration durations stay integer+unit parts).

use std::time::Duration;

const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses integer+unit parts (`ms`, `s`, `m`, `h`, `d`), e.g. `"1h30m"`, `"90s"`, `"0s"`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let expected = "expected a duration such as \"90s\", \"5m\", \"1h30m\" or \"250ms\"";
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("{expected}, got an empty string"));
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("{expected}, got {text:?}"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{expected}, got {text:?} (number too large)"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        let Some(&(_, millis)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(if unit.is_empty() {
                format!("{expected}, got {text:?} (a number needs a unit)")
            } else {
                format!("{expected}, got {text:?} (unknown unit {unit:?})")
            });
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(millis)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("{expected}, got {text:?} (too large)"))?;
    }
    Ok(Duration::from_millis(total))
}

/// Prints a duration largest units first, as `parse` reads it (`90s` -> "1m30s"), except that
/// milliseconds after a whole second are a decimal of the seconds: 2500ms -> "2.5s",
/// 60500ms -> "1m0.5s"; under a second it stays "250ms". Rounds down to the millisecond.
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms < 1000 {
        return format!("{ms}{}", if ms == 0 { "s" } else { "ms" });
    }
    let mut out = String::new();
    for (name, unit) in &UNITS[..3] {
        if ms >= *unit {
            out.push_str(&format!("{}{name}", ms / unit));
            ms %= unit;
        }
    }
    let (secs, frac) = (ms / 1000, ms % 1000);
    if frac > 0 {
        let decimals = format!("{frac:03}");
        out.push_str(&format!("{secs}.{}s", decimals.trim_end_matches('0')));
    } else if secs > 0 {
        out.push_str(&format!("{secs}s"));
    }
    out
}

/// Seconds-first form for messages such as "timeout after 60s" (`1500ms`, `250ms`, `120s`).
pub fn format_secs(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_compound_parts() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_bad_text_with_reason() {
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("5").unwrap_err().contains("needs a unit"));
        assert!(parse("5x").unwrap_err().contains("unknown unit \"x\""));
        assert!(parse("m5").is_err());
        assert!(parse("-5s").is_err());
        assert!(parse("1.5s").is_err());
        assert!(parse("99999999999999999999d").unwrap_err().contains("too large"));
        assert!(parse("999999999999999d").unwrap_err().contains("too large"));
    }

    #[test]
    fn formats_round_trip() {
        for text in ["1h30m", "90ms", "5m", "1d2h3m4s", "0s", "10s", "1d", "2d1s", "999ms"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_micros(1500)), "1ms");
        assert_eq!(format_secs(Duration::from_secs(60)), "60s");
    }

    #[test]
    fn part_seconds_after_a_whole_second_are_a_decimal() {
        let ms = Duration::from_millis;
        assert_eq!(format(ms(2500)), "2.5s");
        assert_eq!(format(ms(1250)), "1.25s");
        assert_eq!(format(ms(1005)), "1.005s");
        assert_eq!(format(ms(60_500)), "1m0.5s");
        assert_eq!(format(ms(3_600_000 + 30_100)), "1h30.1s");
        assert_eq!(format(parse("1d2h3m4s5ms").unwrap()), "1d2h3m4.005s");
        assert_eq!(format(ms(1000)), "1s");
        assert_eq!(format(ms(500)), "500ms");
        assert_eq!(format_secs(Duration::from_millis(250)), "250ms");
    }
}
