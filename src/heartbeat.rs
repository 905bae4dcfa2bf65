//! Heartbeat (push) workers: the thread of a worker that is checked by the reports it sends to
//! `/push/NAME`, not by requests. The web layer authenticates a report and hands it to the
//! worker's `Inbox` (a small queue beside its `Waker`); the worker's own thread sleeps until its
//! deadline (the last report plus period and grace), is woken by a report through the `Waker`
//! (no polling), and records it. So the streaks and alerts stay owned by that one thread, as a
//! pulled worker's do.
//!
//! Semantics (see the README's "Heartbeat workers"):
//! - a success or failure report is one check: it goes into the history, uptime and streaks;
//!   a `start` report only begins timing a run (the next success records its duration as the
//!   check's latency);
//! - each deadline missed is one failed check (`no report for 1d1h`); the next one is due a
//!   period later;
//! - a worker that never reported is pending until `period + grace` after it started; after a
//!   restart of the pinger, the saved last report counts, but a report is given at least `grace`
//!   from the restart (none could arrive while the pinger was down);
//! - while paused, reports are answered but ignored, as Healthchecks does; resuming starts the
//!   clock again from the resume.

use crate::alert::Streaks;
use crate::config::Target;
use crate::shutdown::{Thread, Wake, Waker};
use crate::state::{CheckRecord, ReportKind, State};
use crate::streak::Streak;
use crate::timefmt::{from_unix_millis, unix_millis};
use crate::worker::{Plan, PlanCell, Settings};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// Reports a worker may send at once (the bucket's size) and how fast the bucket refills.
pub const BURST: f64 = 10.0;
pub const PER_SECOND: f64 = 1.0;
/// Reports waiting for the worker's thread; past this (a thread that is slow to wake) a report
/// is answered like one past the rate limit.
const QUEUE_MAX: usize = 32;

/// One report, as the web layer received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub kind: ReportKind,
    /// The exit status it carried (`/push/NAME/CODE`), for the error text of a failure.
    pub exit_code: Option<i64>,
    /// The first 10 KB of a POST body, if any.
    pub message: Option<Arc<str>>,
    pub at: SystemTime,
    pub received: Instant,
}

impl Report {
    pub fn new(kind: ReportKind, exit_code: Option<i64>, message: Option<Arc<str>>) -> Report {
        Report {
            kind,
            exit_code,
            message,
            at: SystemTime::now(),
            received: Instant::now(),
        }
    }

    /// Why the report is a failed check (`None` for a success or a start).
    fn error(&self) -> Option<String> {
        match (self.kind, self.exit_code) {
            (ReportKind::Failure, Some(code)) => Some(format!("exit status {code}")),
            (ReportKind::Failure, None) => Some("reported failure".to_string()),
            _ => None,
        }
    }
}

/// What became of a report that carried the right token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Accepted,
    /// The worker is paused: the report was ignored.
    Paused,
    /// Past the rate limit: try again after this long.
    TooMany(Duration),
}

/// A token bucket: `BURST` reports at once, then `PER_SECOND`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(now: Instant) -> Bucket {
        Bucket { tokens: BURST, at: now }
    }

    /// Takes one token, or says how long until there is one.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * PER_SECOND;
        self.tokens = (self.tokens + refill).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / PER_SECOND))
        }
    }
}

#[derive(Debug)]
struct Mailbox {
    token: Arc<str>,
    bucket: Bucket,
    queue: VecDeque<Report>,
}

/// Where the web layer leaves a push worker's reports; its thread takes them.
#[derive(Debug)]
pub struct Inbox {
    mailbox: Mutex<Mailbox>,
    waker: Arc<Waker>,
}

impl Inbox {
    pub fn new(token: &str, waker: Arc<Waker>) -> Inbox {
        Inbox {
            mailbox: Mutex::new(Mailbox {
                token: Arc::from(token),
                bucket: Bucket::full(Instant::now()),
                queue: VecDeque::new(),
            }),
            waker,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Mailbox> {
        self.mailbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The token a report must carry. A secret: compare it in constant time, never show it.
    pub fn token(&self) -> Arc<str> {
        Arc::clone(&self.lock().token)
    }

    pub fn set_token(&self, token: &str) {
        self.lock().token = Arc::from(token);
    }

    /// Hands an authenticated report to the worker's thread and wakes it.
    pub fn deliver(&self, report: Report) -> Delivery {
        if self.waker.is_paused() {
            return Delivery::Paused;
        }
        let mut mailbox = self.lock();
        if let Err(wait) = mailbox.bucket.take(report.received) {
            return Delivery::TooMany(wait);
        }
        if mailbox.queue.len() >= QUEUE_MAX {
            return Delivery::TooMany(Duration::from_secs(1));
        }
        mailbox.queue.push_back(report);
        drop(mailbox);
        self.waker.check_now();
        Delivery::Accepted
    }

    fn take_all(&self) -> Vec<Report> {
        self.lock().queue.drain(..).collect()
    }

    /// Moves the reports queued here into `to`, oldest first, and wakes its worker: reports
    /// taken while the service was starting, before the worker's thread ran.
    pub fn hand_over(&self, to: &Inbox) {
        let reports = self.take_all();
        if reports.is_empty() {
            return;
        }
        let mut mailbox = to.lock();
        let room = QUEUE_MAX.saturating_sub(mailbox.queue.len());
        mailbox.queue.extend(reports.into_iter().take(room));
        drop(mailbox);
        to.waker.check_now();
    }
}

/// The inboxes of the running push workers, by name: what `/push/NAME` looks names up in. The
/// fleet keeps it in step with its members, so an added worker's endpoint answers at once and a
/// removed one's (or another shard's) is unknown.
#[derive(Debug, Default)]
pub struct Board(RwLock<HashMap<String, Arc<Inbox>>>);

impl Board {
    pub fn get(&self, name: &str) -> Option<Arc<Inbox>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    pub fn insert(&self, name: &str, inbox: Arc<Inbox>) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), inbox);
    }

    pub fn remove(&self, name: &str) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).remove(name);
    }
}

/// A push worker's thread: what it needs, owned or shared.
pub struct Beat {
    pub slot: usize,
    pub state: Arc<State>,
    pub waker: Arc<Waker>,
    pub plan: Arc<PlanCell>,
    pub inbox: Arc<Inbox>,
}

/// What the thread keeps from one wake-up to the next.
struct Run {
    plan: Plan,
    /// The last report (success or failure), or when the clock last started (start, resume).
    base: SystemTime,
    /// Deadlines missed since `base`.
    missed: u32,
    /// When the run a `start` report announced began.
    run_started: Option<Instant>,
    streak: Streak,
    alert_streaks: Streaks,
    was_ok: Option<bool>,
    /// The last failure's text, for the alert when a maintenance window ends on it.
    last_error: Option<String>,
    /// The end of the maintenance window it is in (Unix ms).
    in_window: Option<i64>,
}

impl Run {
    /// When the next report is due: `period + grace` after the last, then every `period`.
    fn due(&self) -> SystemTime {
        let (period, allowance) = timing(&self.plan.settings.target);
        self.base + allowance + period * self.missed
    }
}

/// A push worker's period, and its period plus grace.
fn timing(t: &Target) -> (Duration, Duration) {
    t.push
        .as_ref()
        .map_or((t.interval, t.interval), |p| (p.period, p.allowance()))
}

fn instant_of(at: SystemTime) -> Instant {
    let now = Instant::now();
    match at.duration_since(SystemTime::now()) {
        Ok(ahead) => now + ahead,
        Err(e) => now.checked_sub(e.duration()).unwrap_or(now),
    }
}

/// Where the clock starts at start-up: the saved last report, held back so that a report gets
/// at least `grace` after the start; or the start, for a worker that never reported.
fn first_base(last_report: Option<SystemTime>, target: &Target, started: SystemTime) -> SystemTime {
    let Some(last) = last_report else {
        return started;
    };
    let (period, _) = timing(target);
    // base + period + grace >= started + grace
    let earliest = started.checked_sub(period).unwrap_or(started);
    last.max(earliest)
}

impl Beat {
    pub fn spawn(self) -> std::io::Result<Thread> {
        let plan = Arc::clone(&self.plan);
        crate::worker::start("p", &plan, move || self.run())
    }

    fn run(self) {
        let saved = self.state.record_of(self.slot).unwrap_or_default();
        let plan = self.plan.get();
        let last_report = saved.counters.push.last_report_at_ms.map(from_unix_millis);
        let mut run = Run {
            base: first_base(last_report, &plan.settings.target, SystemTime::now()),
            missed: 0,
            run_started: None,
            streak: Streak::resume(saved.counters.consecutive_failures, plan.settings.thresholds.failure),
            alert_streaks: crate::worker::streaks_on(
                &plan.settings,
                saved.counters.consecutive_failures,
                &saved.streaks,
            ),
            was_ok: saved.last().map(|r| r.ok),
            last_error: saved.last().and_then(|r| r.error),
            in_window: None,
            plan,
        };
        loop {
            self.adopt(&mut run);
            let due = run.due();
            self.state.set_next_check(self.slot, due);
            // A maintenance window's start or end comes first: note it, then sleep on.
            let boundary = self.window_changes(&mut run, SystemTime::now()).filter(|b| *b < due);
            match self.waker.sleep_until(instant_of(boundary.unwrap_or(due)), true) {
                Wake::Stop => return,
                Wake::Deadline if boundary.is_some() => {}
                Wake::Reschedule => {}
                Wake::Resumed => {
                    // Reports were ignored while paused: the clock starts again now.
                    self.inbox.take_all();
                    run.base = SystemTime::now();
                    run.missed = 0;
                    run.run_started = None;
                }
                Wake::CheckNow => {
                    for report in self.inbox.take_all() {
                        if self.waker.is_paused() {
                            break;
                        }
                        self.record(&mut run, &report);
                    }
                }
                Wake::Deadline => self.missed(&mut run, due),
            }
        }
    }

    /// Takes up new settings from a reload (a new period or grace applies from the last report).
    fn adopt(&self, run: &mut Run) {
        let next = self.plan.get();
        if Arc::ptr_eq(&next.settings, &run.plan.settings) && next.schedule == run.plan.schedule {
            return;
        }
        let same_alerter = match (&next.settings.alerter, &run.plan.settings.alerter) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
        if !same_alerter || next.schedule != run.plan.schedule {
            let failures = self
                .state
                .record_of(self.slot)
                .map_or(0, |r| r.counters.consecutive_failures);
            run.alert_streaks = crate::worker::streaks_on(&next.settings, failures, &[]);
        }
        if next.schedule != run.plan.schedule {
            run.missed = 0;
        }
        run.plan = next;
    }

    fn record(&self, run: &mut Run, report: &Report) {
        let s = Arc::clone(&run.plan.settings);
        let t = &s.target;
        let check = match report.kind {
            ReportKind::Start => {
                run.run_started = Some(report.received);
                log::debug!("{}: run started", t.name);
                None
            }
            ReportKind::Success | ReportKind::Failure => {
                let took = run
                    .run_started
                    .take()
                    .map_or(Duration::ZERO, |s| report.received.saturating_duration_since(s));
                let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
                run.base = report.at;
                run.missed = 0;
                Some(CheckRecord {
                    at_ms: unix_millis(report.at),
                    ok: report.kind == ReportKind::Success,
                    status: None,
                    latency_ms: ms,
                    duration_ms: ms,
                    // No HTTP attempt: `pinger_attempts_total` stays 0 for a push worker.
                    attempts: 0,
                    error: report.error(),
                })
            }
        };
        self.state
            .record_report(self.slot, report.kind, check.clone(), report.message.clone(), report.at);
        if let Some(check) = check {
            self.observe(run, &s, check.ok, check.error.as_deref(), report.at);
        }
    }

    /// A deadline passed with no report: one failed check.
    fn missed(&self, run: &mut Run, due: SystemTime) {
        let s = Arc::clone(&run.plan.settings);
        let (_, allowance) = timing(&s.target);
        let error = format!("no report for {}", crate::duration::format(allowance));
        let now = SystemTime::now();
        self.state.record_check(
            self.slot,
            CheckRecord {
                at_ms: unix_millis(now),
                ok: false,
                status: None,
                latency_ms: 0,
                duration_ms: 0,
                attempts: 0,
                error: Some(error.clone()),
            },
        );
        run.missed += 1;
        // After a long sleep of the whole machine, the deadlines missed meanwhile count as one.
        let (period, _) = timing(&s.target);
        while run.due() <= now && !period.is_zero() {
            run.missed += 1;
        }
        let late = now.duration_since(due).unwrap_or_default();
        log::debug!("{}: deadline passed ({} ms late)", s.target.name, late.as_millis());
        self.observe(run, &s, false, Some(&error), now);
    }

    /// Notes a maintenance window's start or end (an outage still on when one ends alerts
    /// then, as for a pulled worker); the next start or end, just past it.
    fn window_changes(&self, run: &mut Run, now: SystemTime) -> Option<SystemTime> {
        let s = Arc::clone(&run.plan.settings);
        let now_ms = i64::try_from(unix_millis(now)).unwrap_or(i64::MAX);
        let active = crate::maintenance::active_until(&s.target.maintenance, now_ms);
        if run.in_window.is_some() && active.is_none() && run.was_ok == Some(false) {
            let (streak, streaks) = (&mut run.streak, &mut run.alert_streaks);
            let last_error = run.last_error.as_deref();
            if let Some(alerter) = crate::worker::outage_outlasted_window(&s, streak, streaks, last_error, now) {
                let saved = alerter.saved_streaks(&run.alert_streaks);
                self.state.set_streaks(self.slot, saved, Vec::new());
            }
        }
        run.in_window = active;
        let next = crate::maintenance::next_change(&s.target.maintenance, now_ms)?;
        Some(from_unix_millis(u64::try_from(next).unwrap_or(0) + 1))
    }

    fn observe(&self, run: &mut Run, s: &Settings, ok: bool, error: Option<&str>, at: SystemTime) {
        let t = &s.target;
        match (run.was_ok, ok) {
            (Some(true) | None, false) => log::warn!("{} is down: {}", t.name, error.unwrap_or("error")),
            (Some(false), true) => log::warn!("{} is up again", t.name),
            _ => log::debug!(
                "{}: {}",
                t.name,
                if ok {
                    "reported success"
                } else {
                    error.unwrap_or("error")
                }
            ),
        }
        run.was_ok = Some(ok);
        run.last_error = error.map(str::to_string);
        run.streak.observe(ok, at, &s.thresholds);
        // Planned work: no alert inside a maintenance window.
        let at_ms = i64::try_from(crate::timefmt::unix_millis(at)).unwrap_or(i64::MAX);
        let planned = crate::maintenance::active_until(&t.maintenance, at_ms).is_some();
        if let (Some(alerter), false) = (&s.alerter, planned) {
            alerter.observe(&mut run.alert_streaks, t, ok, error, at);
            self.state
                .set_streaks(self.slot, alerter.saved_streaks(&run.alert_streaks), Vec::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_lets_a_burst_through_then_one_a_second() {
        let t0 = Instant::now();
        let mut b = Bucket::full(t0);
        for _ in 0..10 {
            assert_eq!(b.take(t0), Ok(()));
        }
        let wait = b.take(t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(b.take(t0 + Duration::from_millis(1000)), Ok(()));
        assert!(b.take(t0 + Duration::from_millis(1500)).is_err());
        // A long quiet spell refills the bucket to its size, not beyond.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..12).filter(|_| b.take(later).is_ok()).count(), 10);
    }

    #[test]
    fn a_restart_gives_a_report_at_least_grace() {
        let cfg = crate::config::build(
            Some((
                "t.json",
                r#"{"self_ping": false, "workers": [{"name": "a", "push": {"period": "1h", "grace": "10m"}, "token": "t"}]}"#,
            )),
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
        let t = &cfg.workers[0];
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(first_base(None, t, start), start, "never reported: from the start");
        let recent = start - Duration::from_secs(600);
        assert_eq!(first_base(Some(recent), t, start), recent, "on time: from the report");
        let old = start - Duration::from_secs(86_400);
        assert_eq!(
            first_base(Some(old), t, start) + Duration::from_secs(4200),
            start + Duration::from_secs(600),
            "late while the pinger was down: due grace after the start"
        );
    }

    #[test]
    fn a_failure_report_says_why() {
        let r = |kind, code| Report::new(kind, code, None).error();
        assert_eq!(r(ReportKind::Failure, Some(3)), Some("exit status 3".into()));
        assert_eq!(r(ReportKind::Failure, None), Some("reported failure".into()));
        assert_eq!(r(ReportKind::Success, Some(0)), None);
        assert_eq!(r(ReportKind::Start, None), None);
    }
}
