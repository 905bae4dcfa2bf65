//! State files of a fleet that has run for 30 days, in the format master-pinger 0.1 wrote
//! (format 1: every check an object, `last` beside the history, 720 hourly buckets).

use master_pinger::persist::url_hash;
use std::fmt::Write;

pub const HOUR_MS: u64 = 3_600_000;

/// Failed checks in `hour` of target `i` (of 360, one every 10 s).
pub fn failed_in_hour(i: usize, hour: u64) -> u64 {
    (hour + i as u64) % 13 % 4
}

/// Check `k` of target `i`'s history: mostly up, every seventh a failure.
pub fn check_ok(i: usize, k: u64) -> bool {
    (k + i as u64) % 7 != 0
}

/// A format-1 file for `(name, url)` targets that were checked every 10 s for 30 days up to
/// `now_ms`: 100 checks of history and 720 hourly buckets each.
pub fn state_file_0_1(targets: &[(String, String)], now_ms: u64) -> String {
    let now_hour = now_ms / HOUR_MS;
    let mut out = String::from(r#"{"version":1,"saved_at":"2026-11-28T00:00:00Z","workers":{"#);
    for (i, (name, url)) in targets.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let check = |k: u64| {
            let ok = check_ok(i, k);
            let at = now_ms - (100 - k) * 10_000;
            let latency = 40 + (k * 37 + i as u64) % 900;
            if ok {
                format!(
                    r#"{{"at_ms":{at},"ok":true,"status":200,"latency_ms":{latency},"duration_ms":{latency},"attempts":1}}"#
                )
            } else {
                format!(
                    r#"{{"at_ms":{at},"ok":false,"status":503,"latency_ms":{latency},"duration_ms":{},"attempts":4,"error":"status 503"}}"#,
                    latency + 35_000
                )
            }
        };
        let history: Vec<String> = (0..100).map(check).collect();
        let buckets: Vec<String> = (now_hour - 719..=now_hour)
            .map(|h| format!(r#"{{"hour":{h},"ok":{},"total":360}}"#, 360 - failed_in_hour(i, h)))
            .collect();
        let _ = write!(
            out,
            r#""{name}":{{"url_hash":"{}","checks":259200,"successes":258000,"skipped":{i},"attempts":262000,"consecutive_failures":{},"restarts":1,"last_restart_at_ms":{},"last":{},"history":[{}],"buckets":[{}]}}"#,
            url_hash(url),
            u8::from(!check_ok(i, 99)),
            now_ms - 86_400_000,
            check(99),
            history.join(","),
            buckets.join(","),
        );
    }
    out.push_str("}}");
    out
}
