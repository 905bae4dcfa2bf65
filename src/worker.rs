//! One thread per target: sleep until the next deadline, check (with retries), hand the result
//! to the shared state, then decide alerts and restarts from streak counters this thread owns.
//! A reload hands the thread new settings through its `PlanCell` (read once per loop, never held
//! across a check's I/O), and a new schedule when the target itself changed.

use crate::alert::{Alerter, CertWarnings, DegradedStreaks, Streaks};
use crate::config::Target;
use crate::maintenance;
use crate::probe::{self, Outcome};
use crate::restart::{Cooldown, RestartJob, Restarter};
use crate::schedule;
use crate::shutdown::{Thread, Wake, Waker};
use crate::state::{CheckRecord, Record, State};
use crate::streak::{ChannelStreak, Streak, Thresholds};
use crate::timefmt::{from_unix_millis, rfc3339, unix_millis};
use crate::tls::connector::PeerCapture;
use crate::tls::expiry::{CertInfo, Watch};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Worker threads keep only a small stack: a check's deepest path (rustls handshake) fits well
/// inside it, and a thousand workers must not reserve 2 MiB each.
pub const STACK_SIZE: usize = 256 * 1024;

/// What a worker's alerting carries from one check to the next: its streak, its slow-check
/// streak and its certificate warnings on each channel that speaks for it.
#[derive(Debug, Default)]
pub struct Alerting {
    pub streaks: Streaks,
    pub degraded: DegradedStreaks,
    pub cert_warnings: CertWarnings,
}

impl Alerting {
    /// Resumed from what the state saved for the target, by channel name, so that a restart,
    /// the next `once` run or a reload that kept a channel goes on where it stopped. A channel
    /// with no saved streak resumes its down streak from `failures`.
    pub fn resumed(alerter: Option<&Alerter>, target: &Target, failures: u32, saved: &Record) -> Alerting {
        let Some(a) = alerter else {
            return Alerting::default();
        };
        Alerting {
            streaks: a.streaks(target, failures, &saved.streaks),
            degraded: a.degraded_streaks(target, &saved.degraded),
            cert_warnings: a.cert_warnings(target, &saved.cert_warned),
        }
    }

    /// Hands the streaks to the state, which saves them.
    fn save(&self, alerter: &Alerter, state: &State, slot: usize) {
        let degraded = alerter.saved_degraded(&self.degraded);
        state.set_streaks(slot, alerter.saved_streaks(&self.streaks), degraded);
    }
}

/// Everything a finished check leaves behind, the same in the service and in `once`: the result
/// goes into the state, the certificate read during the check (if any) too, each alert channel
/// counts the result and queues an alert on a transition (never blocking), and the channels'
/// streaks go back into the state so that a restart, or the next `once` run, continues them.
#[allow(clippy::too_many_arguments)]
pub fn take_result(
    state: &State,
    slot: usize,
    target: &Target,
    alerter: Option<&Alerter>,
    alerting: &mut Alerting,
    outcome: &Outcome,
    cert: Option<CertInfo>,
    now: SystemTime,
) {
    state.record_check(slot, record_of(outcome, now));
    if let Some(info) = cert {
        state.set_cert(slot, info);
    }
    let Some(alerter) = alerter else { return };
    let now_ms = i64::try_from(unix_millis(now)).unwrap_or(i64::MAX);
    // Planned work: no alert inside a maintenance window; its end tells what is still down
    // (`Worker::window_changes`).
    if maintenance::active_until(&target.maintenance, now_ms).is_none() {
        let why = outcome.error.as_deref();
        alerter.observe(&mut alerting.streaks, target, outcome.ok, why, now);
        if outcome.ok {
            // Failed checks count for neither side of the degraded alert: down is its own.
            alerter.observe_degraded(&mut alerting.degraded, target, outcome.degraded(), why, now);
        }
    }
    if let Some(info) = cert {
        if alerter.observe_cert(&mut alerting.cert_warnings, target, info, now) {
            // Kept in the state file: a restart does not send the same warning again.
            state.set_cert_warned(slot, alerter.warned_by_name(&alerting.cert_warnings));
        }
    }
    alerting.save(alerter, state, slot);
}

/// What a check and its aftermath need; replaced as a whole by a reload.
pub struct Settings {
    pub target: Target,
    pub thresholds: Thresholds,
    pub alerter: Option<Arc<Alerter>>,
    pub restarter: Option<Arc<Restarter>>,
    pub restart_cooldown: Duration,
    /// The target's own agent (its trust settings and proxy).
    pub agent: ureq::Agent,
    /// For an https target: where its check's handshake leaves the server's certificate.
    pub capture: Option<Arc<PeerCapture>>,
    /// How often to read that certificate.
    pub cert_every: Duration,
}

/// The settings a worker runs on and the schedule it follows.
#[derive(Clone)]
pub struct Plan {
    pub settings: Arc<Settings>,
    /// When check 0 of this schedule is due.
    pub first: Instant,
    /// Bumped when the schedule starts over (the target changed), not when only settings did.
    pub schedule: u64,
}

/// Where the fleet puts a worker's new plan; the thread copies it out at the top of each loop.
pub struct PlanCell(Mutex<Plan>);

impl PlanCell {
    pub fn new(plan: Plan) -> PlanCell {
        PlanCell(Mutex::new(plan))
    }

    pub fn get(&self) -> Plan {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, plan: Plan) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = plan;
    }
}

/// What a worker's thread keeps from one check to the next.
struct Run {
    plan: Plan,
    /// When check 0 of the current schedule was due, and the next check's number.
    first: Instant,
    pending: u64,
    /// The streak that decides Space restarts.
    streak: Streak,
    /// The streaks and certificate warnings on each alert channel.
    alerting: Alerting,
    /// When to read the server's certificate next (https targets).
    cert: Option<(Arc<PeerCapture>, Watch)>,
    was_ok: Option<bool>,
    /// The last check's error text, for an alert sent when a maintenance window ends.
    last_error: Option<String>,
    /// The end (Unix ms) of the maintenance window this thread last saw on.
    in_window: Option<i64>,
}

/// What a worker thread needs; every field is owned or shared.
pub struct Worker {
    /// The target's id in the state.
    pub slot: usize,
    pub state: Arc<State>,
    pub waker: Arc<Waker>,
    pub plan: Arc<PlanCell>,
}

/// Runs a check, turning a panic into a failed outcome so the worker carries on.
pub fn guarded(check: impl FnOnce() -> Outcome) -> Outcome {
    let start = Instant::now();
    catch_unwind(AssertUnwindSafe(check)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        log::error!("a check panicked: {msg}");
        Outcome {
            ok: false,
            status: None,
            latency: start.elapsed(),
            duration: start.elapsed(),
            attempts: 1,
            error: Some("internal error: the check panicked".to_string()),
        }
    })
}

/// The record a finished check leaves in the shared state.
pub fn record_of(outcome: &Outcome, at: SystemTime) -> CheckRecord {
    CheckRecord {
        at_ms: unix_millis(at),
        ok: outcome.ok,
        status: outcome.status,
        latency_ms: u64::try_from(outcome.latency.as_millis()).unwrap_or(u64::MAX),
        duration_ms: u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
        attempts: outcome.attempts,
        error: outcome.error.clone(),
    }
}

fn system_time_of(deadline: Instant) -> SystemTime {
    let now = Instant::now();
    let sys = SystemTime::now();
    if deadline >= now {
        sys + (deadline - now)
    } else {
        sys - (now - deadline)
    }
}

/// Starts a worker's thread, named after its target (`w-NAME` pulled, `p-NAME` push), on the
/// small stack: the one way either kind of worker starts.
pub fn start(prefix: &str, plan: &PlanCell, run: impl FnOnce() + Send + 'static) -> std::io::Result<Thread> {
    let name = format!("{prefix}-{}", plan.get().settings.target.name);
    crate::shutdown::spawn(name, STACK_SIZE, run)
}

/// What a worker does after a sleep.
enum Step {
    Check,
    /// Back to sleep (a new schedule, a resume, a maintenance boundary).
    Sleep,
    Stop,
}

impl Worker {
    pub fn spawn(self) -> std::io::Result<Thread> {
        let plan = Arc::clone(&self.plan);
        start("w", &plan, move || self.run())
    }

    fn run(self) {
        let (mut run, mut cooldown) = self.resume();
        let stack = crate::os::current_stack();
        loop {
            match self.sleep(&mut run) {
                Step::Stop => return,
                Step::Sleep => continue,
                Step::Check => {}
            }
            let s = Arc::clone(&run.plan.settings);
            if let Some((capture, watch)) = &run.cert {
                if watch.due(Instant::now()) {
                    capture.request();
                }
            }
            let outcome = check_once(&s.agent, &s.target, &self.waker);
            if self.waker.is_stopped() {
                // Shutting down or removed: an abandoned check is not a result.
                return;
            }
            if self.waker.is_paused() || !self.adopt(&mut run) {
                // Paused (no results, no alerts) or replaced while it ran: not this plan's result.
                continue;
            }
            self.take(&mut run, &s.target, &outcome, &mut cooldown);
            if let Some(stack) = &stack {
                crate::os::release_stack_below_here(stack);
            }
        }
    }

    /// Where the thread starts from: what the state holds for its target (restored from the state
    /// file, or left by a thread this one replaces).
    fn resume(&self) -> (Run, Cooldown) {
        let saved = self.state.record_of(self.slot).unwrap_or_default();
        let plan = self.plan.get();
        let run = Run {
            first: plan.first,
            pending: 0,
            streak: Streak::resume(saved.counters.consecutive_failures, plan.settings.thresholds.failure),
            alerting: alerting_on(&plan.settings, saved.counters.consecutive_failures, &saved),
            cert: watch_of(&plan.settings),
            was_ok: saved.last().map(|r| r.ok),
            last_error: saved.last().and_then(|r| r.error),
            in_window: None,
            plan,
        };
        let cooldown = Cooldown::resumed(
            saved.counters.last_restart_at_ms.map(from_unix_millis),
            SystemTime::now(),
            Instant::now(),
        );
        (run, cooldown)
    }

    /// Sleeps until the next check is due (or a check-now), noting maintenance windows on the
    /// way.
    fn sleep(&self, run: &mut Run) -> Step {
        self.adopt(run);
        let s = Arc::clone(&run.plan.settings);
        let t = &s.target;
        let deadline = run.first + schedule::offset_of(t.interval, run.pending);
        self.state.set_next_check(self.slot, system_time_of(deadline));
        // A maintenance window's start or end comes first: note it, then sleep on.
        let boundary = self.window_changes(run, SystemTime::now()).filter(|b| *b < deadline);
        match self.waker.sleep_until(boundary.unwrap_or(deadline), true) {
            Wake::Stop => return Step::Stop,
            Wake::Deadline if boundary.is_some() => return Step::Sleep,
            Wake::Reschedule => return Step::Sleep,
            Wake::Resumed => {
                // The next check starts now, and the schedule runs on from it.
                run.first = Instant::now();
                run.pending = 0;
                return Step::Sleep;
            }
            Wake::Deadline => {
                log::debug!(
                    "{}: check {} started {:.3} ms after its deadline",
                    t.name,
                    run.pending,
                    deadline.elapsed().as_secs_f64() * 1000.0
                );
                run.pending += 1;
            }
            Wake::CheckNow => log::info!("{}: check requested", t.name),
        }
        if self.adopt(run) {
            Step::Check
        } else {
            // A new schedule arrived just as this one's deadline came.
            Step::Sleep
        }
    }

    /// Records the outcome of a check of `t`, then alerts, restarts and moves the schedule on.
    /// Settings swapped while the check ran (new alert channels) take this result.
    fn take(&self, run: &mut Run, t: &Target, outcome: &Outcome, cooldown: &mut Cooldown) {
        let s = Arc::clone(&run.plan.settings);
        let now = SystemTime::now();
        self.window_changes(run, now);
        log_outcome(t, outcome, run.was_ok);
        run.was_ok = Some(outcome.ok);
        run.last_error.clone_from(&outcome.error);
        let cert = run.cert.as_mut().and_then(|(c, w)| read_cert(&t.name, c, w));
        take_result(
            &self.state,
            self.slot,
            t,
            s.alerter.as_deref(),
            &mut run.alerting,
            outcome,
            cert,
            now,
        );
        if run.in_window.is_none() {
            // Planned work inside a window: the result is recorded, and nobody is told or
            // restarted (take_result skips the alerts).
            run.streak.observe(outcome.ok, now, &s.thresholds);
        }
        if run.streak.is_down() && !outcome.ok && run.in_window.is_none() {
            self.maybe_restart(&s, cooldown);
        }
        let (next, skipped) = schedule::advance(run.pending, run.first.elapsed(), t.interval);
        if skipped > 0 {
            log::warn!("{}: check overran its slot; skipped {skipped} deadline(s)", t.name);
            self.state.record_skipped(self.slot, skipped);
        }
        run.pending = next;
    }

    /// Takes up the plan the fleet set last. False when its schedule starts over (the target
    /// changed): the caller goes back to wait for the new schedule's first deadline.
    fn adopt(&self, run: &mut Run) -> bool {
        let next = self.plan.get();
        let rescheduled = next.schedule != run.plan.schedule;
        if !rescheduled && Arc::ptr_eq(&next.settings, &run.plan.settings) {
            return true;
        }
        let new_url = next.settings.target.url != run.plan.settings.target.url;
        if rescheduled {
            run.first = next.first;
            run.pending = 0;
            if new_url {
                // A new URL is a new target: its history starts fresh, and so do its streaks.
                run.streak = Streak::default();
                run.was_ok = None;
            }
        }
        let same_alerter = match (&next.settings.alerter, &run.plan.settings.alerter) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
        if rescheduled {
            // New settings for this worker: its streak on each channel starts from its current
            // run of failures, as after a restart of the pinger.
            let mut record = self.state.record_of(self.slot).unwrap_or_default();
            let failures = if new_url {
                0
            } else {
                record.counters.consecutive_failures
            };
            record.streaks.clear();
            record.degraded.clear();
            run.alerting = alerting_on(&next.settings, failures, &record);
        } else if !same_alerter {
            // The channels changed. Each channel's streak and certificate warnings are in the
            // state by channel name, so a channel that the reload kept goes on where it was.
            let record = self.state.record_of(self.slot).unwrap_or_default();
            run.alerting = alerting_on(&next.settings, record.counters.consecutive_failures, &record);
        }
        let same_capture = match (&next.settings.capture, &run.plan.settings.capture) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
        if !same_capture {
            // A new agent (new URL or trust settings): read its server's certificate afresh.
            run.cert = watch_of(&next.settings);
        }
        run.plan = next;
        !rescheduled
    }

    /// Notes a maintenance window starting or ending at `now`, and returns when the next change
    /// is due. When a window ends on a failing worker, its channels are told at once: the outage
    /// outlasted the planned work, so no further threshold of checks is waited for.
    fn window_changes(&self, run: &mut Run, now: SystemTime) -> Option<Instant> {
        let s = Arc::clone(&run.plan.settings);
        let t = &s.target;
        let now_ms = i64::try_from(unix_millis(now)).unwrap_or(i64::MAX);
        let active = maintenance::active_until(&t.maintenance, now_ms);
        match (run.in_window, active) {
            (None, Some(end)) => log::info!("{}: maintenance until {}", t.name, maintenance::rfc3339_ms(end)),
            (Some(_), None) => {
                log::info!("{}: maintenance over", t.name);
                if run.was_ok == Some(false) {
                    let (streak, streaks) = (&mut run.streak, &mut run.alerting.streaks);
                    if let Some(alerter) = outage_outlasted_window(&s, streak, streaks, run.last_error.as_deref(), now)
                    {
                        run.alerting.save(alerter, &self.state, self.slot);
                    }
                }
            }
            _ => {}
        }
        run.in_window = active;
        let next = maintenance::next_change(&t.maintenance, now_ms)?;
        let wait = u64::try_from(next.saturating_sub(now_ms)).unwrap_or(0);
        // Just past the boundary: a window's end is not part of it.
        Some(Instant::now() + Duration::from_millis(wait + 1))
    }

    fn maybe_restart(&self, s: &Settings, cooldown: &mut Cooldown) {
        let (Some(space_id), Some(token), Some(restarter)) =
            (&s.target.space_id, &s.target.restart_token, &s.restarter)
        else {
            return;
        };
        if !cooldown.take(Instant::now(), s.restart_cooldown) {
            return;
        }
        restarter.send(RestartJob {
            slot: self.slot,
            worker: s.target.name.clone(),
            space_id: space_id.clone(),
            token: token.clone(),
        });
    }
}

/// A maintenance window ended with the target down (`last_error` its last failure's text): one
/// failure with a threshold of one, so every streak not down yet is down now and alerts. The
/// alerter, if any, whose streaks the caller saves.
pub fn outage_outlasted_window<'a>(
    s: &'a Settings,
    streak: &mut Streak,
    streaks: &mut Streaks,
    last_error: Option<&str>,
    now: SystemTime,
) -> Option<&'a Alerter> {
    let at_once = Thresholds {
        failure: 1,
        success: s.thresholds.success,
    };
    streak.observe(false, now, &at_once);
    let alerter = s.alerter.as_deref()?;
    alerter.observe_now(streaks, &s.target, last_error, now);
    Some(alerter)
}

/// The check in a frame of its own: its deep stack use (HTTP, DNS, TLS) stays below the loop's
/// frame, where `release_stack_below_here` can hand it back after each check. A check costs
/// about 94k user-space instructions (callgrind); two thirds of its CPU is the kernel's: a fresh
/// loopback connection per check (none is reused, on purpose) and waking this thread. A cache in
/// front of musl's allocator that removed 4 of the 5 `mmap`/`munmap` pairs per check halved user
/// time but did not move the total beyond noise, so it was not kept.
#[inline(never)]
fn check_once(agent: &ureq::Agent, target: &Target, waker: &Waker) -> Outcome {
    guarded(|| probe::check(agent, target, waker))
}

fn log_outcome(target: &Target, o: &Outcome, was_ok: Option<bool>) {
    let name = &target.name;
    let status = o.status.map_or("-".to_string(), |s| s.to_string());
    let attempts = if o.attempts == 1 {
        "1 attempt".to_string()
    } else {
        format!("{} attempts", o.attempts)
    };
    if o.ok {
        log::info!("{name}: up, status {status}, {} ms, {attempts}", o.latency.as_millis());
    } else {
        log::info!(
            "{name}: failed, {}, status {status}, {} ms, {attempts}",
            o.error.as_deref().unwrap_or("error"),
            o.latency.as_millis()
        );
    }
    match (was_ok, o.ok) {
        (Some(true) | None, false) => log::warn!(
            "{name} ({}) is down: {}",
            target.display_url,
            o.error.as_deref().unwrap_or("error")
        ),
        (Some(false), true) => log::warn!("{name} ({}) is up again", target.display_url),
        _ => {}
    }
}

/// The certificate of this check's handshake, if one was asked for and completed.
pub fn read_cert(name: &str, capture: &PeerCapture, watch: &mut Watch) -> Option<CertInfo> {
    let leaf = capture.take()?;
    match watch.read(&leaf, Instant::now()) {
        Err(e) => {
            log::warn!("{name}: cannot read the expiry of the server's certificate: {e}");
            None
        }
        Ok(info) => {
            log::debug!(
                "{name}: TLS certificate expires {}",
                rfc3339(UNIX_EPOCH + Duration::from_secs(info.expires_at.max(0) as u64))
            );
            Some(info)
        }
    }
}

/// When an https target's certificate is read: at its first check, then every `cert_every`.
fn watch_of(s: &Settings) -> Option<(Arc<PeerCapture>, Watch)> {
    let capture = s.capture.as_ref()?;
    Some((Arc::clone(capture), Watch::new(s.cert_every, !s.target.tls.insecure)))
}

/// The worker's alerting under settings `s`, resumed from `saved`.
fn alerting_on(s: &Settings, failures: u32, saved: &Record) -> Alerting {
    Alerting::resumed(s.alerter.as_deref(), &s.target, failures, saved)
}

/// The worker's streaks on the channels that speak for it: those saved for a channel of the same
/// name, else resumed from its run of failures.
pub fn streaks_on(s: &Settings, consecutive_failures: u32, saved: &[ChannelStreak]) -> Streaks {
    s.alerter
        .as_ref()
        .map(|a| a.streaks(&s.target, consecutive_failures, saved))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_check_is_a_failed_outcome() {
        let o = guarded(|| panic!("boom"));
        assert!(!o.ok);
        assert_eq!(o.error.as_deref(), Some("internal error: the check panicked"));
    }
}
