//! Format 2: one target in about 3 KB at steady state (100 checks, 30 days of uptime).
//!
//! ```text
//! "api": {"url_hash": "9f0c...", "checks": 8640, "successes": 8639, "skipped": 0,
//!         "attempts": 8641, "consecutive_failures": 0, "restarts": 0,
//!         "errors": ["status 503"],
//!         "history": [[1795860000123, 1, 200, 143, 0, 1, 0], [10004, 0, 503, 88, 5032, 2, 1]],
//!         "hours": {"newest": 498850, "total": [360, ...], "failed": [0, ...]},
//!         "days": {"newest": 20785, "total": [8640, ...], "failed": [1, ...]},
//!         "streaks": [{"channel": "ops", "fails": 3, "down": true, "since_ms": 1795860000123}],
//!         "cert_warned": {"ops": [1797000000, 7]}}
//! ```
//!
//! A history row is `[at, ok, status, latency_ms, waited_ms, attempts, error]`, oldest first:
//! `at` is Unix milliseconds in the first row and the difference from the row before in the
//! others; `ok` is 0 or 1; `status` 0 means no response; `waited_ms` is the check's duration
//! minus the last attempt's latency (0 for a check of one attempt, so it costs one byte);
//! `error` 0 means none, else the 1-based index in `errors`. `hours` holds the 24 hourly buckets ending with hour `newest` (hours since
//! the epoch), `days` the 30 daily ones, oldest first. `streaks` is the target's streak on each
//! alert channel, by name (absent before 0.3: resumed from `consecutive_failures`).

use crate::state::{CheckRecord, Counters, DAYS, HOURS, History, PushCounts, Record, Ring, Tally, Uptime};
use crate::streak::ChannelStreak;
use crate::tls::expiry::Warned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

type Row = (i64, u8, u16, u64, i64, u32, u16);

#[derive(Serialize, Deserialize)]
pub struct Target {
    pub url_hash: String,
    // The record's `Counters`, field by field beside `url_hash` (the struct literals below make
    // a new counter a compile error here until it is saved too). Not `#[serde(flatten)]`: that
    // reads each whole target into an intermediate tree first, and cost KiBs of binary.
    #[serde(default)]
    checks: u64,
    #[serde(default)]
    successes: u64,
    #[serde(default)]
    skipped: u64,
    #[serde(default)]
    attempts: u64,
    #[serde(default)]
    consecutive_failures: u32,
    #[serde(default)]
    restarts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_restart_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    paused: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    paused_config: Option<bool>,
    #[serde(default, skip_serializing_if = "PushCounts::is_empty")]
    push: PushCounts,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
    #[serde(default)]
    history: Vec<Row>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hours: Option<SavedRing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    days: Option<SavedRing>,
    /// Each alert channel's streak (added in 0.3; absent in older files, which resume streaks
    /// from `consecutive_failures`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    streaks: Vec<ChannelStreak>,
    /// Each channel's slow-check streak, for the degraded alert (added in 0.3.1; absent in older
    /// files, which start those streaks afresh).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    degraded: Vec<ChannelStreak>,
    /// Certificate warnings sent: channel name -> [notAfter, lowest threshold warned] (added in
    /// 0.3; older files load with none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    cert_warned: BTreeMap<String, (i64, u32)>,
}

#[derive(Serialize, Deserialize)]
struct SavedRing {
    newest: u64,
    total: Vec<u32>,
    failed: Vec<u32>,
}

impl SavedRing {
    fn of<const N: usize>(ring: &Ring<N>) -> Option<SavedRing> {
        let (newest, tallies) = ring.oldest_first()?;
        Some(SavedRing {
            newest,
            total: tallies.iter().map(|t| t.total).collect(),
            failed: tallies.iter().map(|t| t.total - t.ok.min(t.total)).collect(),
        })
    }

    fn ring<const N: usize>(&self, field: &str) -> Result<Ring<N>, String> {
        if self.total.len() != N || self.failed.len() != N {
            return Err(format!("{field}: expected {N} totals and {N} failure counts"));
        }
        let mut tallies = [Tally::default(); N];
        for (i, (t, (&total, &failed))) in tallies.iter_mut().zip(self.total.iter().zip(&self.failed)).enumerate() {
            if failed > total {
                return Err(format!("{field}: bucket {i} has more failures than checks"));
            }
            *t = Tally {
                ok: total - failed,
                total,
            };
        }
        Ok(Ring::from_oldest_first(self.newest, tallies))
    }
}

impl Target {
    pub fn from_record(url_hash: String, r: &Record) -> Target {
        let mut errors: Vec<String> = Vec::new();
        let mut prev = 0u64;
        let history = r
            .history
            .newest(usize::MAX)
            .map(|c| {
                let error = match c.error {
                    None => 0,
                    Some(e) => match errors.iter().position(|x| *x == e) {
                        Some(i) => i + 1,
                        None => {
                            errors.push(e);
                            errors.len()
                        }
                    },
                };
                // A clock stepped backwards gives a negative difference; wrapping arithmetic
                // makes any u64 round-trip.
                let delta = c.at_ms.wrapping_sub(prev) as i64;
                prev = c.at_ms;
                (
                    delta,
                    u8::from(c.ok),
                    c.status.unwrap_or(0),
                    c.latency_ms,
                    c.duration_ms.wrapping_sub(c.latency_ms) as i64,
                    c.attempts,
                    u16::try_from(error).unwrap_or(0),
                )
            })
            .collect();
        let Counters {
            checks,
            successes,
            skipped,
            attempts,
            consecutive_failures,
            restarts,
            last_restart_at_ms,
            paused,
            paused_config,
            push,
        } = r.counters.clone();
        Target {
            url_hash,
            checks,
            successes,
            skipped,
            attempts,
            consecutive_failures,
            restarts,
            last_restart_at_ms,
            paused,
            paused_config,
            push,
            errors,
            history,
            hours: SavedRing::of(&r.uptime.hours),
            days: SavedRing::of(&r.uptime.days),
            streaks: r.streaks.clone(),
            degraded: r.degraded.clone(),
            cert_warned: r
                .cert_warned
                .iter()
                .filter_map(|(channel, w)| Some((channel.clone(), w.saved()?)))
                .collect(),
        }
    }

    /// The record this describes, or what is wrong with it.
    pub fn into_record(self, cap: usize) -> Result<Record, String> {
        let mut history = History::default();
        let mut at = 0u64;
        for (i, &(delta, ok, status, latency_ms, waited_ms, attempts, error)) in self.history.iter().enumerate() {
            at = at.wrapping_add(delta as u64);
            if ok > 1 {
                return Err(format!("history[{i}]: ok must be 0 or 1, not {ok}"));
            }
            let error = match usize::from(error) {
                0 => None,
                n => Some(self.errors.get(n - 1).cloned().ok_or_else(|| {
                    format!(
                        "history[{i}]: error {n} is not in errors (which has {})",
                        self.errors.len()
                    )
                })?),
            };
            let check = CheckRecord {
                at_ms: at,
                ok: ok == 1,
                status: (status != 0).then_some(status),
                latency_ms,
                duration_ms: latency_ms.wrapping_add(waited_ms as u64),
                attempts,
                error,
            };
            history.push(&check, cap);
        }
        let uptime = Uptime {
            hours: self
                .hours
                .map(|r| r.ring::<HOURS>("hours"))
                .transpose()?
                .unwrap_or_default(),
            days: self
                .days
                .map(|r| r.ring::<DAYS>("days"))
                .transpose()?
                .unwrap_or_default(),
        };
        let cert_warned = self
            .cert_warned
            .into_iter()
            .map(|(channel, (newest, below))| (channel, Warned::restored(newest, below)))
            .collect();
        Ok(Record {
            counters: Counters {
                checks: self.checks,
                successes: self.successes,
                skipped: self.skipped,
                attempts: self.attempts,
                consecutive_failures: self.consecutive_failures,
                restarts: self.restarts,
                last_restart_at_ms: self.last_restart_at_ms,
                paused: self.paused,
                paused_config: self.paused_config,
                push: self.push,
            },
            history,
            uptime,
            streaks: self.streaks,
            degraded: self.degraded,
            cert_warned,
        })
    }
}
