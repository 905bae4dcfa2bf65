//! Format 1, what master-pinger 0.1 wrote: every check of the history as an object, the last
//! check again beside it, and up to 720 hourly uptime buckets (about 36 KB per target). Read
//! only, and migrated into the compact record with nothing lost: counters and history as they
//! were, every hourly bucket counted into the hour and day rings.

use crate::state::{CheckRecord, Counters, History, PushCounts, Record, Tally, Uptime};
use serde::Deserialize;

/// One target as 0.1 saved it (its `url_hash` beside the flattened record).
#[derive(Deserialize, Default)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(default)]
pub struct Target {
    pub url_hash: String,
    // The record's `Counters`, field by field (see format 2's `Target` for why not flattened).
    pub checks: u64,
    pub successes: u64,
    pub skipped: u64,
    pub attempts: u64,
    pub consecutive_failures: u32,
    pub restarts: u64,
    pub last_restart_at_ms: Option<u64>,
    pub paused: bool,
    pub paused_config: Option<bool>,
    pub push: PushCounts,
    pub last: Option<Check>,
    pub history: Vec<Check>,
    pub buckets: Vec<Bucket>,
}

#[derive(Deserialize, Clone)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct Check {
    pub at_ms: u64,
    pub ok: bool,
    pub status: Option<u16>,
    pub latency_ms: u64,
    #[serde(default)]
    pub duration_ms: u64,
    pub attempts: u32,
    #[serde(default)]
    #[cfg_attr(test, serde(skip_serializing_if = "Option::is_none"))]
    pub error: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct Bucket {
    pub hour: u64,
    pub ok: u32,
    pub total: u32,
}

impl From<Check> for CheckRecord {
    fn from(c: Check) -> CheckRecord {
        CheckRecord {
            at_ms: c.at_ms,
            ok: c.ok,
            status: c.status,
            latency_ms: c.latency_ms,
            duration_ms: c.duration_ms,
            attempts: c.attempts,
            error: c.error,
        }
    }
}

impl Target {
    pub fn counters(&self) -> Counters {
        Counters {
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
        }
    }

    pub fn into_record(self, cap: usize) -> Record {
        let counters = self.counters();
        let mut history = History::default();
        let checks = if self.history.is_empty() {
            // 0.1 kept the last check beside the history; alone, it is the history.
            self.last.into_iter().collect()
        } else {
            self.history
        };
        for c in checks {
            history.push(&c.into(), cap);
        }
        let mut buckets = self.buckets;
        buckets.sort_by_key(|b| b.hour);
        let mut uptime = Uptime::default();
        for b in buckets {
            uptime.add_hour(
                b.hour,
                Tally {
                    ok: b.ok.min(b.total),
                    total: b.total,
                },
            );
        }
        Record {
            counters,
            history,
            uptime,
            streaks: Vec::new(),
            degraded: Vec::new(),
            cert_warned: Vec::new(),
        }
    }
}
