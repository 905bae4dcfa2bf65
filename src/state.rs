//! The shared state: per-target history rings, counters and hourly uptime buckets behind one
//! `Mutex`. Worker threads call the `record_*` methods after their I/O is done; readers take a
//! `snapshot()` (a copy) and render it after the lock is released. Nothing here does I/O.

use crate::timefmt::unix_millis;
pub use crate::tls::expiry::CertInfo;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// One finished check (all its attempts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// Unix milliseconds when the check finished.
    pub at_ms: u64,
    pub ok: bool,
    /// Final HTTP status; `None` when no response arrived.
    pub status: Option<u16>,
    /// Latency of the last attempt.
    pub latency_ms: u64,
    /// The whole check, retries and backoff included.
    #[serde(default)]
    pub duration_ms: u64,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Checks that finished within one clock hour: uptime is kept in these, not raw samples, so 30
/// days cost at most 720 small entries per target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub hour: u64,
    pub ok: u32,
    pub total: u32,
}

pub const WINDOWS: [(&str, u64); 3] = [("24h", 24), ("7d", 7 * 24), ("30d", 30 * 24)];
const MAX_HOURS: u64 = 30 * 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Pending,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Pending => "pending",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// What the state remembers about one target. Also the unit persisted to the state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub checks: u64,
    pub successes: u64,
    pub skipped: u64,
    pub attempts: u64,
    pub consecutive_failures: u32,
    pub restarts: u64,
    pub last_restart_at_ms: Option<u64>,
    pub last: Option<CheckRecord>,
    pub history: VecDeque<CheckRecord>,
    pub buckets: VecDeque<Bucket>,
}

impl Record {
    fn push(&mut self, rec: CheckRecord, cap: usize) {
        self.checks += 1;
        self.attempts += u64::from(rec.attempts);
        if rec.ok {
            self.successes += 1;
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        }
        add_to_buckets(&mut self.buckets, rec.at_ms / 3_600_000, rec.ok);
        while self.history.len() >= cap {
            self.history.pop_front();
        }
        self.history.push_back(rec.clone());
        self.last = Some(rec);
    }

    pub fn health(&self) -> Health {
        match &self.last {
            None => Health::Pending,
            Some(r) if r.ok => Health::Up,
            Some(_) => Health::Down,
        }
    }

    pub fn trim_history(&mut self, cap: usize) {
        while self.history.len() > cap {
            self.history.pop_front();
        }
    }
}

/// Counts a check in its hour's bucket and forgets buckets older than 30 days.
pub fn add_to_buckets(buckets: &mut VecDeque<Bucket>, hour: u64, ok: bool) {
    match buckets.back_mut() {
        Some(b) if b.hour == hour => {
            b.total += 1;
            b.ok += u32::from(ok);
        }
        // A clock stepped backwards lands in the newest bucket rather than reordering the ring.
        Some(b) if b.hour > hour => {
            b.total += 1;
            b.ok += u32::from(ok);
        }
        _ => buckets.push_back(Bucket {
            hour,
            ok: u32::from(ok),
            total: 1,
        }),
    }
    while buckets.front().is_some_and(|b| b.hour + MAX_HOURS <= hour) {
        buckets.pop_front();
    }
}

/// Share of good checks in the last `hours` clock hours (the current one included), or `None`
/// when there were no checks in that window.
pub fn uptime(buckets: &VecDeque<Bucket>, now_hour: u64, hours: u64) -> Option<f64> {
    let (ok, total) = buckets
        .iter()
        .rev()
        .take_while(|b| b.hour + hours > now_hour)
        .fold((0u64, 0u64), |(ok, total), b| {
            (ok + u64::from(b.ok), total + u64::from(b.total))
        });
    (total > 0).then(|| ok as f64 / total as f64)
}

/// A copy of one target's state, made under the lock for rendering after it.
#[derive(Debug, Clone)]
pub struct TargetView {
    pub name: String,
    pub url: String,
    pub interval: Duration,
    pub is_self: bool,
    pub restarts_enabled: bool,
    pub health: Health,
    pub checks: u64,
    pub successes: u64,
    pub skipped: u64,
    pub attempts: u64,
    pub consecutive_failures: u32,
    pub restarts: u64,
    pub last_restart_at_ms: Option<u64>,
    pub last: Option<CheckRecord>,
    pub next_check_at_ms: Option<u64>,
    pub uptime: [Option<f64>; 3],
    /// The server's certificate, once read (https targets only).
    pub tls: Option<CertInfo>,
    /// The newest `history` checks asked for, oldest first.
    pub history: Vec<CheckRecord>,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub version: &'static str,
    pub started_at: SystemTime,
    pub now: SystemTime,
    pub workers: Vec<TargetView>,
    pub self_ping: Option<TargetView>,
    pub persistence_error: Option<String>,
}

impl Snapshot {
    /// `ok` when every worker is up or pending, `down` when all are down, else `degraded`.
    pub fn overall(&self) -> &'static str {
        let down = self.down_count();
        if down == 0 {
            "ok"
        } else if down == self.workers.len() {
            "down"
        } else {
            "degraded"
        }
    }

    pub fn down_count(&self) -> usize {
        self.workers.iter().filter(|w| w.health == Health::Down).count()
    }

    pub fn find(&self, name: &str) -> Option<&TargetView> {
        self.workers
            .iter()
            .chain(self.self_ping.iter())
            .find(|w| w.name == name)
    }
}

/// Facts about a target that never change while running; kept outside the lock.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    pub name: String,
    pub display_url: String,
    pub interval: Duration,
    pub is_self: bool,
    pub restarts_enabled: bool,
}

#[cfg(test)]
impl TargetInfo {
    /// A plain worker checked every minute: the unit tests' one fixture.
    pub fn test(name: &str) -> TargetInfo {
        TargetInfo {
            name: name.into(),
            display_url: format!("http://{name}/"),
            interval: Duration::from_secs(60),
            is_self: false,
            restarts_enabled: false,
        }
    }
}

struct Slot {
    record: Record,
    next_check_at_ms: Option<u64>,
    cert: Option<CertInfo>,
}

struct Inner {
    slots: Vec<Slot>,
    persistence_error: Option<String>,
}

/// Targets are addressed by slot index: configured workers first, then the self-ping (if any).
pub struct State {
    pub started_at: SystemTime,
    history_cap: usize,
    infos: Vec<TargetInfo>,
    inner: Mutex<Inner>,
}

impl State {
    pub fn new(infos: Vec<TargetInfo>, history_cap: usize, started_at: SystemTime) -> State {
        let slots = infos
            .iter()
            .map(|_| Slot {
                record: Record::default(),
                next_check_at_ms: None,
                cert: None,
            })
            .collect();
        State {
            started_at,
            history_cap,
            infos,
            inner: Mutex::new(Inner {
                slots,
                persistence_error: None,
            }),
        }
    }

    /// A poisoned lock only means some thread panicked mid-update of plain counters; the data is
    /// still the best we have, so keep serving it rather than cascading the panic.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn slot_of(&self, name: &str) -> Option<usize> {
        self.infos.iter().position(|i| i.name == name)
    }

    pub fn record_check(&self, slot: usize, rec: CheckRecord) {
        let cap = self.history_cap;
        if let Some(s) = self.lock().slots.get_mut(slot) {
            s.record.push(rec, cap);
        }
    }

    pub fn record_skipped(&self, slot: usize, n: u64) {
        if let Some(s) = self.lock().slots.get_mut(slot) {
            s.record.skipped += n;
        }
    }

    pub fn set_next_check(&self, slot: usize, at: SystemTime) {
        if let Some(s) = self.lock().slots.get_mut(slot) {
            s.next_check_at_ms = Some(unix_millis(at));
        }
    }

    pub fn record_restart(&self, slot: usize, at: SystemTime) {
        if let Some(s) = self.lock().slots.get_mut(slot) {
            s.record.restarts += 1;
            s.record.last_restart_at_ms = Some(unix_millis(at));
        }
    }

    pub fn set_cert(&self, slot: usize, cert: CertInfo) {
        if let Some(s) = self.lock().slots.get_mut(slot) {
            s.cert = Some(cert);
        }
    }

    pub fn set_persistence_error(&self, error: Option<String>) {
        self.lock().persistence_error = error;
    }

    /// One target's record, e.g. for a worker thread to seed its own streak counters.
    pub fn record_of(&self, slot: usize) -> Option<Record> {
        self.lock().slots.get(slot).map(|s| Record {
            history: VecDeque::new(),
            ..s.record.clone()
        })
    }

    /// Every target's record by name, for the state file.
    pub fn export(&self) -> Vec<(String, Record)> {
        let records: Vec<Record> = self.lock().slots.iter().map(|s| s.record.clone()).collect();
        self.infos.iter().map(|i| i.name.clone()).zip(records).collect()
    }

    /// Puts back saved records (already matched to current targets by the caller).
    pub fn import(&self, slot: usize, mut record: Record) {
        record.trim_history(self.history_cap);
        if let Some(s) = self.lock().slots.get_mut(slot) {
            s.record = record;
        }
    }

    pub fn snapshot(&self, history_limit: usize, now: SystemTime) -> Snapshot {
        let now_hour = unix_millis(now) / 3_600_000;
        let limit = history_limit.min(self.history_cap);
        let inner = self.lock();
        let mut views: Vec<TargetView> = self
            .infos
            .iter()
            .zip(&inner.slots)
            .map(|(info, slot)| {
                let r = &slot.record;
                let skip = r.history.len().saturating_sub(limit);
                TargetView {
                    name: info.name.clone(),
                    url: info.display_url.clone(),
                    interval: info.interval,
                    is_self: info.is_self,
                    restarts_enabled: info.restarts_enabled,
                    health: r.health(),
                    checks: r.checks,
                    successes: r.successes,
                    skipped: r.skipped,
                    attempts: r.attempts,
                    consecutive_failures: r.consecutive_failures,
                    restarts: r.restarts,
                    last_restart_at_ms: r.last_restart_at_ms,
                    last: r.last.clone(),
                    next_check_at_ms: slot.next_check_at_ms,
                    uptime: WINDOWS.map(|(_, hours)| uptime(&r.buckets, now_hour, hours)),
                    tls: slot.cert,
                    history: r.history.iter().skip(skip).cloned().collect(),
                }
            })
            .collect();
        let persistence_error = inner.persistence_error.clone();
        drop(inner);
        let self_ping = match views.last() {
            Some(v) if v.is_self => views.pop(),
            _ => None,
        };
        Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            started_at: self.started_at,
            now,
            workers: views,
            self_ping,
            persistence_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const HOUR: u64 = 3_600_000;

    fn rec(at_ms: u64, ok: bool) -> CheckRecord {
        CheckRecord {
            at_ms,
            ok,
            status: Some(if ok { 200 } else { 503 }),
            latency_ms: 5,
            duration_ms: 5,
            attempts: 1,
            error: None,
        }
    }

    #[test]
    fn buckets_merge_by_hour_and_expire_after_30_days() {
        let mut b = VecDeque::new();
        add_to_buckets(&mut b, 10, true);
        add_to_buckets(&mut b, 10, false);
        add_to_buckets(&mut b, 11, true);
        assert_eq!(b.len(), 2);
        assert_eq!(
            b[0],
            Bucket {
                hour: 10,
                ok: 1,
                total: 2
            }
        );
        add_to_buckets(&mut b, 10 + 720, true);
        assert_eq!(b.front().map(|x| x.hour), Some(11), "the bucket 30 days old is dropped");
    }

    #[test]
    fn uptime_windows_cross_day_boundaries() {
        let mut b = VecDeque::new();
        // 23:00 on day 0 fails, 00:00 and 01:00 on day 1 succeed; 8 days earlier one failure.
        let day1 = 24 * 1000;
        add_to_buckets(&mut b, day1 - 8 * 24, false);
        add_to_buckets(&mut b, day1 - 1, false);
        add_to_buckets(&mut b, day1, true);
        add_to_buckets(&mut b, day1 + 1, true);
        let now = day1 + 1;
        assert_eq!(uptime(&b, now, 24), Some(2.0 / 3.0));
        assert_eq!(uptime(&b, now, 2), Some(1.0), "only 00:00 and 01:00");
        assert_eq!(uptime(&b, now, 7 * 24), Some(2.0 / 3.0));
        assert_eq!(uptime(&b, now, 30 * 24), Some(0.5));
        assert_eq!(uptime(&b, now + 100, 24), None, "nothing in the last day");
        assert_eq!(uptime(&VecDeque::new(), now, 24), None);
    }

    #[test]
    fn history_is_capped_oldest_first() {
        let mut r = Record::default();
        for i in 0..15 {
            r.push(rec(i * 1000, i % 5 != 0), 10);
        }
        assert_eq!(r.history.len(), 10);
        assert_eq!(r.history.front().map(|x| x.at_ms), Some(5000));
        assert_eq!(r.history.back().map(|x| x.at_ms), Some(14_000));
        assert_eq!((r.checks, r.successes, r.consecutive_failures), (15, 12, 0));
    }

    #[test]
    fn consecutive_failures_and_health() {
        let mut r = Record::default();
        assert_eq!(r.health(), Health::Pending);
        r.push(rec(0, false), 10);
        r.push(rec(1, false), 10);
        assert_eq!((r.health(), r.consecutive_failures), (Health::Down, 2));
        r.push(rec(2, true), 10);
        assert_eq!((r.health(), r.consecutive_failures), (Health::Up, 0));
    }

    #[test]
    fn snapshot_limits_history_and_splits_self() {
        let mut infos = vec![TargetInfo::test("a"), TargetInfo::test("b")];
        infos.push(TargetInfo {
            is_self: true,
            ..TargetInfo::test("self")
        });
        let s = State::new(infos, 50, UNIX_EPOCH);
        for i in 0..30 {
            s.record_check(0, rec(HOUR + i, true));
        }
        s.record_check(1, rec(HOUR, false));
        let now = UNIX_EPOCH + Duration::from_millis(HOUR + 100);
        let snap = s.snapshot(20, now);
        assert_eq!(snap.workers.len(), 2);
        assert_eq!(snap.self_ping.as_ref().map(|w| w.name.as_str()), Some("self"));
        assert_eq!(snap.workers[0].history.len(), 20);
        assert_eq!(snap.workers[0].history[0].at_ms, HOUR + 10);
        assert_eq!(snap.overall(), "degraded");
        assert_eq!(snap.workers[0].uptime[0], Some(1.0));
        assert!(s.snapshot(0, now).workers[0].history.is_empty());
        assert_eq!(s.snapshot(1000, now).workers[0].history.len(), 30);
    }

    #[test]
    fn overall_status_rules() {
        let s = State::new(vec![TargetInfo::test("a"), TargetInfo::test("b")], 10, UNIX_EPOCH);
        let now = UNIX_EPOCH + Duration::from_secs(10);
        assert_eq!(s.snapshot(0, now).overall(), "ok", "pending counts as ok");
        s.record_check(0, rec(1, false));
        assert_eq!(s.snapshot(0, now).overall(), "degraded");
        s.record_check(1, rec(1, false));
        assert_eq!(s.snapshot(0, now).overall(), "down");
    }
}
