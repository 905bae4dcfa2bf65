//! The shared state: per-target counters, history rings and uptime buckets behind one `Mutex`.
//! Worker threads call the `record_*` methods after their I/O is done; readers take a
//! `snapshot()` (a copy in the renderers' shape) and render it after the lock is released. What
//! is kept per target does not grow with age (`history`, `uptime`). Nothing here does I/O.
//! Targets are addressed by an id that is never reused, so a worker removed by a reload whose
//! thread is still finishing a check cannot write into the slot of a worker added after it.

mod history;
pub mod push;
mod uptime;

pub use history::{Copied, History};
pub use push::{PushCounts, PushInfo, PushView, ReportKind};
pub use uptime::{DAYS, HOURS, Ring, Tally, Uptime};

use crate::config::{SELF_NAME, Target};
use crate::maintenance::{self, Window};
use crate::streak::ChannelStreak;
use crate::timefmt::unix_millis;
pub use crate::tls::expiry::{CertInfo, Warned};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// One finished check (all its attempts), as the renderers see it. The state keeps it in a
/// compact form (see `history`) and builds these when a snapshot asks.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRecord {
    /// Unix milliseconds when the check finished.
    pub at_ms: u64,
    pub ok: bool,
    /// Final HTTP status; `None` when no response arrived.
    pub status: Option<u16>,
    /// Latency of the last attempt.
    pub latency_ms: u64,
    /// The whole check, retries and backoff included.
    pub duration_ms: u64,
    pub attempts: u32,
    /// Why the check failed; on a successful check, why it was degraded (`expect_latency`).
    pub error: Option<String>,
}

impl CheckRecord {
    /// A success slower than `expect_latency`: up, but amber.
    pub fn degraded(&self) -> bool {
        self.ok && self.error.is_some()
    }
}

pub const WINDOWS: [(&str, u64); 3] = [("24h", 24), ("7d", 7 * 24), ("30d", 30 * 24)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Pending,
    Up,
    /// Up, but the last check was slower than `expect_latency`.
    Degraded,
    Down,
    /// Inside a maintenance window.
    Maintenance,
    Paused,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Pending => "pending",
            Health::Up => "up",
            Health::Degraded => "degraded",
            Health::Down => "down",
            Health::Maintenance => "maintenance",
            Health::Paused => "paused",
        }
    }
}

/// A target's counters: kept in its `Record`, saved by `persist` under these names (every format
/// writes them beside the target's `url_hash`) and copied into its `TargetView`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub checks: u64,
    pub successes: u64,
    pub skipped: u64,
    pub attempts: u64,
    pub consecutive_failures: u32,
    pub restarts: u64,
    pub last_restart_at_ms: Option<u64>,
    /// Paused by the admin endpoint or the configuration; saved, so it survives restarts.
    pub paused: bool,
    /// The configuration's `paused` when the pause or resume in effect was made (see
    /// `paused_now`). Left out when neither was paused, which reads back the same; files
    /// written by 0.3.0 and earlier have none.
    pub paused_config: Option<bool>,
    /// A heartbeat worker's reports (all zero for a pulled worker, and not saved then).
    pub push: PushCounts,
}

impl Counters {
    pub fn set_paused(&mut self, paused: bool, configured: bool) {
        self.paused = paused;
        self.paused_config = (paused || configured).then_some(configured);
    }

    /// Whether a target whose configuration now says `configured` is paused, given what was
    /// saved: a change of the configured value wins; otherwise the pause or resume in effect
    /// (made by the configuration or the admin endpoint) stands. A file from 0.3.0 or earlier does
    /// not say which configuration its pause was made under: paused there stays paused.
    pub fn paused_now(&self, configured: bool) -> bool {
        match self.paused_config {
            Some(then) if then != configured => configured,
            Some(_) => self.paused,
            None => self.paused || configured,
        }
    }
}

/// What the state remembers about one target: counters, the recent checks and uptime buckets,
/// in a size that does not grow with age (about 2.9 KB with 100 checks of history).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub counters: Counters,
    /// The newest entry is the last check.
    pub history: History,
    pub uptime: Uptime,
    /// The target's streak on each alert channel, by channel name: saved, so a threshold counts
    /// across restarts and `once` runs, and a down alert already sent is not sent again.
    pub streaks: Vec<ChannelStreak>,
    /// The slow-check streak on each channel that announces a degraded worker, by channel name:
    /// saved for the same reasons.
    pub degraded: Vec<ChannelStreak>,
    /// The certificate warnings already sent, by alert channel name; saved, so a restart does
    /// not send one again.
    pub cert_warned: Vec<(String, Warned)>,
}

impl Record {
    /// `uptime`: whether the check counts in the uptime tallies (a failure inside a maintenance
    /// window does not).
    fn push(&mut self, rec: CheckRecord, cap: usize, uptime: bool) {
        let c = &mut self.counters;
        c.checks += 1;
        c.attempts += u64::from(rec.attempts);
        if rec.ok {
            c.successes += 1;
            c.consecutive_failures = 0;
        } else {
            c.consecutive_failures = c.consecutive_failures.saturating_add(1);
        }
        if uptime {
            self.uptime.record(rec.at_ms, rec.ok);
        }
        self.history.push(&rec, cap);
    }

    pub fn last(&self) -> Option<CheckRecord> {
        self.history.last()
    }

    /// Its state at `now_ms` (Unix ms), given what is known of it.
    pub fn health_at(&self, info: &TargetInfo, now_ms: u64) -> Health {
        let last = self.history.last_ok().map(|ok| (ok, self.history.last_has_error()));
        health_of(self.counters.paused, last, info.maintenance_until(now_ms))
    }

    /// This record (made since start-up) after `older` (a saved one that arrived late): counters
    /// add up, the history is the older checks then these, and each uptime bucket holds both.
    /// The pause stays this one's (the fleet acts on it already).
    pub fn merge_older(&mut self, older: Record, cap: usize) {
        let mut history = History::default();
        for rec in older
            .history
            .newest(older.history.len())
            .chain(self.history.newest(self.history.len()))
        {
            history.push(&rec, cap);
        }
        let mut uptime = older.uptime;
        if let Some((newest, tallies)) = self.uptime.hours.oldest_first() {
            for (i, t) in tallies.into_iter().enumerate() {
                if let Some(hour) = (newest + 1 + i as u64).checked_sub(tallies.len() as u64) {
                    uptime.hours.add(hour, t);
                }
            }
        }
        if let Some((newest, tallies)) = self.uptime.days.oldest_first() {
            for (i, t) in tallies.into_iter().enumerate() {
                if let Some(day) = (newest + 1 + i as u64).checked_sub(tallies.len() as u64) {
                    uptime.days.add(day, t);
                }
            }
        }
        let (c, o) = (&mut self.counters, older.counters);
        // A streak of failures since start-up continues the saved one.
        if u64::from(c.consecutive_failures) == c.checks {
            c.consecutive_failures = c.consecutive_failures.saturating_add(o.consecutive_failures);
        }
        c.checks += o.checks;
        c.successes += o.successes;
        c.skipped += o.skipped;
        c.attempts += o.attempts;
        c.restarts += o.restarts;
        c.last_restart_at_ms = c.last_restart_at_ms.max(o.last_restart_at_ms);
        c.push.success += o.push.success;
        c.push.failure += o.push.failure;
        c.push.start += o.push.start;
        c.push.last_report_at_ms = c.push.last_report_at_ms.max(o.push.last_report_at_ms);
        self.history = history;
        self.uptime = uptime;
    }

    /// The counters, uptime and last check, without the rest of the history.
    fn summary(&self) -> Record {
        let mut history = History::default();
        if let Some(last) = self.history.last() {
            history.push(&last, 1);
        }
        Record {
            counters: self.counters.clone(),
            history,
            uptime: self.uptime,
            streaks: self.streaks.clone(),
            degraded: self.degraded.clone(),
            cert_warned: self.cert_warned.clone(),
        }
    }
}

/// The facts about a target that the shared state keeps beside its record.
pub fn target_info(t: &Target) -> TargetInfo {
    TargetInfo {
        name: t.name.clone(),
        display_url: t.display_url.clone(),
        interval: t.interval,
        // Configured workers cannot be named "self" (config rejects it).
        is_self: t.name == SELF_NAME,
        restarts_enabled: t.space_id.is_some(),
        maintenance: t.maintenance.clone(),
        push: t.push.as_ref().map(|p| PushInfo {
            period: p.period,
            grace: p.grace,
        }),
    }
}

/// A target's state: paused wins, then a maintenance window that is on, then its last check
/// (`(ok, has an error text)`; a success with one was slower than `expect_latency`).
fn health_of(paused: bool, last: Option<(bool, bool)>, maintenance_until_ms: Option<u64>) -> Health {
    match (paused, maintenance_until_ms, last) {
        (true, _, _) => Health::Paused,
        (_, Some(_), _) => Health::Maintenance,
        (_, _, None) => Health::Pending,
        (_, _, Some((true, true))) => Health::Degraded,
        (_, _, Some((true, false))) => Health::Up,
        (_, _, Some((false, _))) => Health::Down,
    }
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
    /// When the maintenance window that is on ends (Unix ms).
    pub maintenance_until_ms: Option<u64>,
    pub counters: Counters,
    pub last: Option<CheckRecord>,
    pub next_check_at_ms: Option<u64>,
    pub uptime: [Option<f64>; 3],
    /// The server's certificate, once read (https targets only).
    pub tls: Option<CertInfo>,
    /// The newest `history` checks asked for, oldest first.
    pub history: Vec<CheckRecord>,
    /// A heartbeat worker's reports; `None` for a pulled worker.
    pub push: Option<PushView>,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub version: &'static str,
    pub started_at: SystemTime,
    pub now: SystemTime,
    pub workers: Vec<TargetView>,
    pub self_ping: Option<TargetView>,
    pub persistence_error: Option<String>,
    /// State saves so far, by place (`SavePlace` as the index).
    pub saves: [Saves; 2],
    /// Why the last reload failed (the previous configuration is still running).
    pub config_error: Option<String>,
    /// Configuration reloads so far: (succeeded, failed).
    pub reloads: (u64, u64),
}

/// `ok` when every worker is up, pending or paused, `down` when all are down, else `degraded`.
pub fn overall(down: usize, workers: usize) -> &'static str {
    if down == 0 {
        "ok"
    } else if down == workers {
        "down"
    } else {
        "degraded"
    }
}

/// The fleet at a glance, for the top of `/status` (read before its targets, one at a time).
#[derive(Debug, Clone)]
pub struct Overview {
    pub started_at: SystemTime,
    /// `overall()` of the configured workers (the self-ping not counted).
    pub status: &'static str,
    /// The configured workers in order, then the self-ping's id.
    pub workers: Vec<usize>,
    pub self_ping: Option<usize>,
    pub persistence_error: Option<String>,
    pub config_error: Option<String>,
}

impl Snapshot {
    pub fn overall(&self) -> &'static str {
        overall(self.down_count(), self.workers.len())
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

/// Facts about a target shown beside its record; a reload may replace them.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    pub name: String,
    pub display_url: String,
    pub interval: Duration,
    pub is_self: bool,
    pub restarts_enabled: bool,
    /// The target's maintenance windows (the worker's own and the top-level ones).
    pub maintenance: Vec<Window>,
    /// A heartbeat worker's period and grace; `None` for a pulled worker.
    pub push: Option<PushInfo>,
}

impl TargetInfo {
    /// When the maintenance window that is on at `at_ms` ends.
    fn maintenance_until(&self, at_ms: u64) -> Option<u64> {
        if self.maintenance.is_empty() {
            return None;
        }
        let until = maintenance::active_until(&self.maintenance, i64::try_from(at_ms).unwrap_or(i64::MAX))?;
        u64::try_from(until).ok()
    }
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
            maintenance: Vec::new(),
            push: None,
        }
    }
}

/// Where a state save goes: the `place` label of `pinger_state_saves_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavePlace {
    File = 0,
    Remote = 1,
}

impl SavePlace {
    pub const ALL: [SavePlace; 2] = [SavePlace::File, SavePlace::Remote];

    pub fn label(self) -> &'static str {
        match self {
            SavePlace::File => "file",
            SavePlace::Remote => "remote",
        }
    }
}

/// State saves to one place so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Saves {
    pub succeeded: u64,
    pub failed: u64,
    /// When the last good save ended.
    pub last_ok: Option<SystemTime>,
}

struct Slot {
    id: usize,
    /// Shared with the copies readers take, so a copy clones no string under the lock.
    info: Arc<TargetInfo>,
    record: Record,
    next_check_at_ms: Option<u64>,
    cert: Option<CertInfo>,
    /// A heartbeat worker's last message (kept in memory only: up to 10 KB each).
    message: Option<Arc<str>>,
}

impl Slot {
    fn push_check(&mut self, rec: CheckRecord, cap: usize) {
        // Planned work: a failure inside a maintenance window does not count against uptime.
        let counts = rec.ok || self.info.maintenance_until(rec.at_ms).is_none();
        self.record.push(rec, cap, counts);
    }
}

struct Inner {
    /// Configured workers first, in configuration order, then the self-ping (if any).
    slots: Vec<Slot>,
    next_id: usize,
    /// Why the last save to each place failed (`SavePlace` as the index).
    persistence_errors: [Option<String>; 2],
    saves: [Saves; 2],
    config_error: Option<String>,
    reloads: (u64, u64),
}

impl Inner {
    /// Every place's save problem, in one text for the page and `/status`.
    fn persistence_error(&self) -> Option<String> {
        let errors: Vec<&str> = self.persistence_errors.iter().flatten().map(String::as_str).collect();
        (!errors.is_empty()).then(|| errors.join("; "))
    }

    fn slot(&mut self, id: usize) -> Option<&mut Slot> {
        // Until a reload removes a target, ids equal positions: try that before searching.
        match self.slots.get(id) {
            Some(s) if s.id == id => self.slots.get_mut(id),
            _ => self.slots.iter_mut().find(|s| s.id == id),
        }
    }
}

/// Targets are addressed by id; at start-up the ids are 0, 1, ... in the order given.
pub struct State {
    pub started_at: SystemTime,
    history_cap: usize,
    inner: Mutex<Inner>,
    /// Bumped on every change, so the web cache can tell a stale body without taking the lock.
    version: AtomicU64,
}

impl State {
    pub fn new(infos: Vec<TargetInfo>, history_cap: usize, started_at: SystemTime) -> State {
        let next_id = infos.len();
        let slots = infos
            .into_iter()
            .enumerate()
            .map(|(id, info)| Slot {
                id,
                info: Arc::new(info),
                record: Record::default(),
                next_check_at_ms: None,
                cert: None,
                message: None,
            })
            .collect();
        State {
            started_at,
            history_cap,
            inner: Mutex::new(Inner {
                slots,
                next_id,
                persistence_errors: [None, None],
                saves: [Saves::default(); 2],
                config_error: None,
                reloads: (0, 0),
            }),
            version: AtomicU64::new(0),
        }
    }

    /// Adds a target (a reload) with the record it starts from; returns its new id.
    pub fn add(&self, info: TargetInfo, mut record: Record) -> usize {
        record.history.trim(self.history_cap);
        let mut inner = self.change();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.slots.push(Slot {
            id,
            info: Arc::new(info),
            record,
            next_check_at_ms: None,
            cert: None,
            message: None,
        });
        id
    }

    /// Removes a target (a reload).
    pub fn remove(&self, id: usize) {
        self.change().slots.retain(|s| s.id != id);
    }

    /// Replaces what is shown about a target whose settings changed (its record stays).
    pub fn set_info(&self, id: usize, info: TargetInfo) {
        if let Some(s) = self.change().slot(id) {
            if s.info.display_url != info.display_url {
                // Another server: its certificate is read again at its first check.
                s.cert = None;
            }
            s.info = Arc::new(info);
        }
    }

    /// Puts the targets in this order (the configuration's, self-ping last); others go after.
    pub fn arrange(&self, ids: &[usize]) {
        let mut inner = self.change();
        let rank = |id: usize| ids.iter().position(|x| *x == id).unwrap_or(usize::MAX);
        inner.slots.sort_by_key(|s| rank(s.id));
    }

    /// Pauses or resumes a target while its configuration says `configured`.
    pub fn set_paused(&self, id: usize, paused: bool, configured: bool) {
        if let Some(s) = self.change().slot(id) {
            s.record.counters.set_paused(paused, configured);
        }
    }

    /// Records the outcome of a reload: `Err` keeps the message for `/status` and the page.
    pub fn record_reload(&self, result: Result<(), String>) {
        let mut inner = self.change();
        match result {
            Ok(()) => {
                inner.reloads.0 += 1;
                inner.config_error = None;
            }
            Err(e) => {
                inner.reloads.1 += 1;
                inner.config_error = Some(e);
            }
        }
    }

    /// Changes so far. A reader that saw version `v` before taking a snapshot knows the snapshot
    /// holds every change up to `v` (perhaps more).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The lock for a change: the version is bumped before the guard is handed out, so a reader
    /// that sees the new version takes its snapshot after (or while) the change is made, never
    /// caching an older body under a newer version.
    fn change(&self) -> MutexGuard<'_, Inner> {
        let guard = self.lock();
        self.version.fetch_add(1, Ordering::AcqRel);
        guard
    }

    /// A poisoned lock only means some thread panicked mid-update of plain counters; the data is
    /// still the best we have, so keep serving it rather than cascading the panic.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn slot_of(&self, name: &str) -> Option<usize> {
        self.lock().slots.iter().find(|s| s.info.name == name).map(|s| s.id)
    }

    pub fn record_check(&self, slot: usize, rec: CheckRecord) {
        let cap = self.history_cap;
        if let Some(s) = self.change().slot(slot) {
            s.push_check(rec, cap);
        }
    }

    /// A heartbeat report (recorded by the worker's own thread): counted, and its message kept
    /// when it brought one. A success or failure is recorded as a check too (`check`).
    pub fn record_report(
        &self,
        slot: usize,
        kind: ReportKind,
        check: Option<CheckRecord>,
        message: Option<Arc<str>>,
        at: SystemTime,
    ) {
        let cap = self.history_cap;
        if let Some(s) = self.change().slot(slot) {
            s.record.counters.push.add(kind, unix_millis(at));
            if message.is_some() {
                s.message = message;
            }
            if let Some(rec) = check {
                s.push_check(rec, cap);
            }
        }
    }

    pub fn record_skipped(&self, slot: usize, n: u64) {
        if let Some(s) = self.change().slot(slot) {
            s.record.counters.skipped += n;
        }
    }

    pub fn set_next_check(&self, slot: usize, at: SystemTime) {
        if let Some(s) = self.change().slot(slot) {
            s.next_check_at_ms = Some(unix_millis(at));
        }
    }

    pub fn record_restart(&self, slot: usize, at: SystemTime) {
        if let Some(s) = self.change().slot(slot) {
            s.record.counters.restarts += 1;
            s.record.counters.last_restart_at_ms = Some(unix_millis(at));
        }
    }

    /// A worker's alert streaks (`degraded`: its slow-check ones) after a check.
    pub fn set_streaks(&self, slot: usize, streaks: Vec<ChannelStreak>, degraded: Vec<ChannelStreak>) {
        if let Some(s) = self.change().slot(slot) {
            s.record.streaks = streaks;
            s.record.degraded = degraded;
        }
    }

    pub fn set_cert(&self, slot: usize, cert: CertInfo) {
        if let Some(s) = self.change().slot(slot) {
            s.cert = Some(cert);
        }
    }

    /// What the worker's alert channels warned about its certificate (after a warning).
    pub fn set_cert_warned(&self, slot: usize, warned: Vec<(String, Warned)>) {
        if let Some(s) = self.change().slot(slot) {
            s.record.cert_warned = warned;
        }
    }

    /// Why saving the state file failed (`None`: it works again).
    pub fn set_persistence_error(&self, error: Option<String>) {
        self.set_save_error(SavePlace::File, error);
    }

    /// Why saving to `place` failed; `/status` and the page show every place's problem.
    pub fn set_save_error(&self, place: SavePlace, error: Option<String>) {
        self.change().persistence_errors[place as usize] = error;
    }

    /// Counts a save to `place` (the time of a good one is kept for its gauge).
    pub fn record_save(&self, place: SavePlace, ok: bool, at: SystemTime) {
        let mut inner = self.change();
        let saves = &mut inner.saves[place as usize];
        if ok {
            saves.succeeded += 1;
            saves.last_ok = Some(at);
        } else {
            saves.failed += 1;
        }
    }

    /// One target's counters, uptime and last check, e.g. for a worker thread to seed its own
    /// streaks.
    pub fn record_of(&self, slot: usize) -> Option<Record> {
        self.lock().slot(slot).map(|s| s.record.summary())
    }

    /// How many targets there are, the self-ping included.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn history_cap(&self) -> usize {
        self.history_cap
    }

    /// The ids of the targets now, in order.
    pub fn ids(&self) -> Vec<usize> {
        self.lock().slots.iter().map(|s| s.id).collect()
    }

    /// A copy of one target's record and its name, for the state file. A save copies one target
    /// at a time (about 3 KB), so it holds the lock briefly and never doubles the state's memory.
    /// `None` when a reload removed it meanwhile.
    pub fn export_one(&self, id: usize) -> Option<(String, Record)> {
        let mut inner = self.lock();
        let s = inner.slot(id)?;
        Some((s.info.name.clone(), s.record.clone()))
    }

    /// Puts back a saved record (already matched to a current target by the caller).
    pub fn import(&self, slot: usize, mut record: Record) {
        record.history.trim(self.history_cap);
        if let Some(s) = self.change().slot(slot) {
            s.record = record;
        }
    }

    /// Puts a saved record that arrived late before what was recorded since (`Record::merge_older`).
    pub fn merge_older(&self, slot: usize, older: Record) {
        let cap = self.history_cap;
        if let Some(s) = self.change().slot(slot) {
            s.record.merge_older(older, cap);
        }
    }

    /// Every target with its newest `history_limit` checks. The lock is held only to copy
    /// plain values and compact history entries (see `Copy`); names, texts and uptime ratios are
    /// made after it is released.
    pub fn snapshot(&self, history_limit: usize, now: SystemTime) -> Snapshot {
        let now_ms = unix_millis(now);
        let limit = history_limit.min(self.history_cap);
        let mut buf = Copied::default();
        let (copies, persistence_error, saves, config_error, reloads) = {
            let inner = self.lock();
            buf.reserve(inner.slots.len() * limit.max(1));
            let copies: Vec<Copy> = inner.slots.iter().map(|s| Copy::of(s, limit, &mut buf)).collect();
            (
                copies,
                inner.persistence_error(),
                inner.saves,
                inner.config_error.clone(),
                inner.reloads,
            )
        };
        let mut views: Vec<TargetView> = copies.into_iter().map(|c| c.view(&buf, now_ms)).collect();
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
            saves,
            config_error,
            reloads,
        }
    }

    /// The top of `/status`: the overall state, the targets' ids in order and the errors shown.
    pub fn overview(&self) -> Overview {
        let now_ms = unix_millis(SystemTime::now());
        let inner = self.lock();
        let mut workers = Vec::with_capacity(inner.slots.len());
        let (mut down, mut self_ping) = (0, None);
        for s in &inner.slots {
            if s.info.is_self {
                self_ping = Some(s.id);
                continue;
            }
            workers.push(s.id);
            down += usize::from(s.record.health_at(&s.info, now_ms) == Health::Down);
        }
        Overview {
            started_at: self.started_at,
            status: overall(down, workers.len()),
            workers,
            self_ping,
            persistence_error: inner.persistence_error(),
            config_error: inner.config_error.clone(),
        }
    }

    /// One target with its newest `history_limit` checks, copied like `snapshot` does; `buf` is
    /// reused across calls so that the copy allocates nothing under the lock once it is warm.
    /// `None` when a reload removed it.
    pub fn view(&self, id: usize, history_limit: usize, now: SystemTime, buf: &mut Copied) -> Option<TargetView> {
        let limit = history_limit.min(self.history_cap);
        buf.clear();
        buf.reserve(limit.max(1));
        let copy = Copy::of(self.lock().slot(id)?, limit, buf);
        Some(copy.view(buf, unix_millis(now)))
    }
}

/// One target as copied under the lock: plain values, a shared `TargetInfo` and its newest
/// checks as 24-byte entries in a `Copied` buffer.
struct Copy {
    info: Arc<TargetInfo>,
    counters: Counters,
    uptime: Uptime,
    next_check_at_ms: Option<u64>,
    cert: Option<CertInfo>,
    /// The copied entries in the buffer; the last one is the last check.
    entries: std::ops::Range<usize>,
    /// How many of them are the history asked for.
    history: usize,
    message: Option<Arc<str>>,
}

impl Copy {
    fn of(slot: &Slot, limit: usize, buf: &mut Copied) -> Copy {
        let r = &slot.record;
        // The last check is shown even when no history is asked for.
        let entries = r.history.copy_newest(limit.max(1), buf);
        Copy {
            info: Arc::clone(&slot.info),
            counters: r.counters.clone(),
            uptime: r.uptime,
            next_check_at_ms: slot.next_check_at_ms.filter(|_| !r.counters.paused),
            cert: slot.cert,
            history: limit.min(entries.len()),
            entries,
            message: slot.message.clone(),
        }
    }

    fn view(self, buf: &Copied, now_ms: u64) -> TargetView {
        let info = &self.info;
        let last = buf
            .record(self.entries.end.wrapping_sub(1))
            .filter(|_| !self.entries.is_empty());
        let maintenance_until_ms = info.maintenance_until(now_ms);
        let health = health_of(
            self.counters.paused,
            last.as_ref().map(|c| (c.ok, c.error.is_some())),
            maintenance_until_ms,
        );
        let push = self.counters.push;
        TargetView {
            name: info.name.clone(),
            url: info.display_url.clone(),
            interval: info.interval,
            is_self: info.is_self,
            restarts_enabled: info.restarts_enabled,
            health,
            maintenance_until_ms,
            counters: self.counters,
            last,
            next_check_at_ms: self.next_check_at_ms,
            uptime: self.uptime.ratios(now_ms),
            tls: self.cert,
            history: buf.records(self.entries.end - self.history..self.entries.end).collect(),
            push: info.push.map(|info| PushView {
                info,
                counts: push,
                message: self.message,
            }),
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
    fn history_is_capped_oldest_first() {
        let mut r = Record::default();
        for i in 0..15 {
            r.push(rec(i * 1000, i % 5 != 0), 10, true);
        }
        assert_eq!(r.history.len(), 10);
        assert_eq!(r.history.newest(10).next().map(|x| x.at_ms), Some(5000));
        assert_eq!(r.last().map(|x| x.at_ms), Some(14_000));
        assert_eq!(
            (r.counters.checks, r.counters.successes, r.counters.consecutive_failures),
            (15, 12, 0)
        );
    }

    #[test]
    fn consecutive_failures_and_health() {
        let mut r = Record::default();
        assert_eq!(r.health_at(&TargetInfo::test("a"), 0), Health::Pending);
        r.push(rec(0, false), 10, true);
        r.push(rec(1, false), 10, true);
        assert_eq!(
            (r.health_at(&TargetInfo::test("a"), 0), r.counters.consecutive_failures),
            (Health::Down, 2)
        );
        r.push(rec(2, true), 10, true);
        assert_eq!(
            (r.health_at(&TargetInfo::test("a"), 0), r.counters.consecutive_failures),
            (Health::Up, 0)
        );
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
    fn ids_survive_removals_and_are_never_reused() {
        let s = State::new(
            vec![TargetInfo::test("a"), TargetInfo::test("b"), TargetInfo::test("c")],
            10,
            UNIX_EPOCH,
        );
        assert_eq!(s.slot_of("b"), Some(1));
        s.remove(1);
        s.record_check(1, rec(1, true));
        let d = s.add(TargetInfo::test("d"), Record::default());
        assert_eq!(d, 3, "a new id, never a removed one");
        s.record_check(2, rec(1, false));
        assert_eq!(
            s.record_of(2).unwrap().counters.checks,
            1,
            "c is found after the removal"
        );
        assert_eq!(s.record_of(1), None, "a removed id writes nowhere");
        s.arrange(&[d, 0, 2]);
        let names: Vec<String> = s
            .ids()
            .into_iter()
            .filter_map(|id| s.export_one(id))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["d", "a", "c"]);
    }

    #[test]
    fn a_change_of_the_configured_pause_wins_and_otherwise_the_last_pause_or_resume_stands() {
        let saved = |paused, configured| {
            let mut c = Counters::default();
            c.set_paused(paused, configured);
            c
        };
        // (paused, under configured value) -> paused with the configuration saying false, true.
        for ((paused, configured), want) in [
            ((false, false), [false, true]),
            ((true, true), [false, true]),
            // Paused through the API, then resumed through the API.
            ((true, false), [true, true]),
            ((false, true), [false, false]),
        ] {
            let c = saved(paused, configured);
            assert_eq!(
                [c.paused_now(false), c.paused_now(true)],
                want,
                "paused {paused} under configured {configured}"
            );
        }
        assert_eq!(saved(false, false).paused_config, None, "nothing to remember");
        let old = Counters {
            paused: true,
            ..Counters::default()
        };
        assert!(old.paused_now(false), "a pause from an older file stays");
        assert!(Counters::default().paused_now(true));
    }

    #[test]
    fn a_paused_target_shows_paused_and_no_next_check() {
        let s = State::new(vec![TargetInfo::test("a"), TargetInfo::test("b")], 10, UNIX_EPOCH);
        s.record_check(0, rec(1, false));
        s.set_next_check(0, UNIX_EPOCH + Duration::from_secs(5));
        s.set_paused(0, true, false);
        let now = UNIX_EPOCH + Duration::from_secs(10);
        let snap = s.snapshot(0, now);
        assert_eq!(snap.workers[0].health, Health::Paused);
        assert!(snap.workers[0].counters.paused);
        assert_eq!(snap.workers[0].next_check_at_ms, None);
        assert_eq!(snap.overall(), "ok", "a paused worker is not down");
        s.set_paused(0, false, false);
        assert_eq!(s.snapshot(0, now).workers[0].health, Health::Down);
    }

    #[test]
    fn a_failed_reload_is_kept_until_a_good_one() {
        let s = State::new(vec![], 10, UNIX_EPOCH);
        s.record_reload(Err("bad".into()));
        let snap = s.snapshot(0, UNIX_EPOCH);
        assert_eq!((snap.config_error.as_deref(), snap.reloads), (Some("bad"), (0, 1)));
        s.record_reload(Ok(()));
        let snap = s.snapshot(0, UNIX_EPOCH);
        assert_eq!((snap.config_error, snap.reloads), (None, (1, 1)));
    }

    #[test]
    fn a_late_saved_record_goes_before_what_was_recorded_since() {
        const HOUR: u64 = 3_600_000;
        let mut older = Record::default();
        for (i, ok) in [true, true, false, false].into_iter().enumerate() {
            older.push(rec(i as u64 * HOUR, ok), 100, true);
        }
        older.counters.restarts = 1;
        let mut newer = Record::default();
        newer.push(rec(10 * HOUR, false), 100, true);
        newer.push(rec(10 * HOUR + 1, true), 100, true);
        let mut merged = newer.clone();
        merged.merge_older(older.clone(), 100);
        assert_eq!(
            (
                merged.counters.checks,
                merged.counters.successes,
                merged.counters.restarts
            ),
            (6, 3, 1)
        );
        let at: Vec<u64> = merged.history.newest(10).map(|r| r.at_ms).collect();
        assert_eq!(at, [0, HOUR, 2 * HOUR, 3 * HOUR, 10 * HOUR, 10 * HOUR + 1]);
        assert_eq!(merged.counters.consecutive_failures, 0, "the newest check succeeded");
        // Both halves count in the day's uptime: 3 good checks of 6.
        assert_eq!(merged.uptime.ratios(10 * HOUR + 2)[1], Some(0.5));
        // A failing streak since start-up continues the saved one.
        let mut failing = Record::default();
        failing.push(rec(10 * HOUR, false), 100, true);
        failing.merge_older(older, 3);
        assert_eq!(failing.counters.consecutive_failures, 3);
        assert_eq!(failing.history.len(), 3, "the cap holds");
    }

    #[test]
    fn each_place_keeps_its_own_save_error_and_counts() {
        let s = State::new(vec![TargetInfo::test("a")], 10, UNIX_EPOCH);
        s.set_persistence_error(Some("cannot write /data/s.json".into()));
        s.set_save_error(SavePlace::Remote, Some("s3://b/k: store down".into()));
        s.record_save(SavePlace::Remote, false, UNIX_EPOCH);
        s.record_save(SavePlace::File, true, UNIX_EPOCH + Duration::from_secs(7));
        let snap = s.snapshot(10, UNIX_EPOCH);
        assert_eq!(
            snap.persistence_error.as_deref(),
            Some("cannot write /data/s.json; s3://b/k: store down")
        );
        assert_eq!(snap.saves[SavePlace::Remote as usize].failed, 1);
        assert_eq!(
            snap.saves[SavePlace::File as usize].last_ok,
            Some(UNIX_EPOCH + Duration::from_secs(7))
        );
        // A good file save clears only the file's problem.
        s.set_persistence_error(None);
        assert_eq!(
            s.snapshot(10, UNIX_EPOCH).persistence_error.as_deref(),
            Some("s3://b/k: store down")
        );
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

    #[test]
    fn a_failure_inside_a_maintenance_window_is_left_out_of_uptime() {
        use crate::maintenance::{When, Window};
        let info = TargetInfo {
            maintenance: vec![Window {
                when: When::Once { start_ms: HOUR as i64 },
                duration: Duration::from_millis(HOUR),
            }],
            ..TargetInfo::test("a")
        };
        let s = State::new(vec![info], 10, UNIX_EPOCH);
        s.record_check(0, rec(HOUR + 1, false));
        let inside = UNIX_EPOCH + Duration::from_millis(HOUR + 2);
        let w = &s.snapshot(10, inside).workers[0];
        assert_eq!(
            (w.health, w.uptime[0], w.counters.checks),
            (Health::Maintenance, None, 1)
        );
        assert_eq!(w.maintenance_until_ms, Some(2 * HOUR));
        s.record_check(0, rec(HOUR + 3, true));
        assert_eq!(
            s.snapshot(0, inside).workers[0].uptime[0],
            Some(1.0),
            "a success counts"
        );
        s.record_check(0, rec(2 * HOUR, false));
        let after = UNIX_EPOCH + Duration::from_millis(2 * HOUR + 1);
        let w = &s.snapshot(0, after).workers[0];
        assert_eq!(
            (w.health, w.uptime[0]),
            (Health::Down, Some(0.5)),
            "after the window it counts"
        );
        assert_eq!(w.maintenance_until_ms, None);
    }
}
