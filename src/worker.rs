//! One thread per target: sleep until the next deadline, check (with retries), hand the result
//! to the shared state, then decide alerts and restarts from streak counters this thread owns.

use crate::alert::{Alerter, Transition};
use crate::config::{Alerts, Target};
use crate::probe::{self, Outcome};
use crate::restart::{RestartJob, Restarter};
use crate::schedule;
use crate::shutdown::{Wake, Waker};
use crate::state::{CheckRecord, State};
use crate::timefmt::{from_unix_millis, rfc3339, unix_millis};
use crate::tls::connector::PeerCapture;
use crate::tls::expiry::{CertInfo, Watch};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Worker threads keep only a small stack: a check's deepest path (rustls handshake) fits well
/// inside it, and a thousand workers must not reserve 2 MiB each.
pub const STACK_SIZE: usize = 256 * 1024;

/// When a streak turns into a transition: each alert channel has its own, and the worker's own
/// (for Space restarts) comes from the `alerts` section. Channel settings stay with the channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive failed checks before a worker is down.
    pub failure: u32,
    /// Consecutive good checks before a down worker is up again.
    pub success: u32,
}

impl From<&Alerts> for Thresholds {
    fn from(a: &Alerts) -> Thresholds {
        Thresholds {
            failure: a.failure_threshold,
            success: a.success_threshold,
        }
    }
}

/// Alert-level state decided from consecutive results, owned by the worker's thread (no lock).
#[derive(Debug, Clone, Default)]
pub struct Streak {
    fails: u32,
    oks: u32,
    /// `Some(true)` once the alert state is down, `Some(false)` once up, `None` before either.
    down: Option<bool>,
    first_failure: Option<SystemTime>,
    pub down_since: Option<SystemTime>,
}

impl Streak {
    /// Resumes from saved counters: a target already past the threshold stays down, so that its
    /// recovery after a restart of the pinger is still announced.
    pub fn resume(consecutive_failures: u32, failure_threshold: u32) -> Streak {
        let down = consecutive_failures >= failure_threshold && consecutive_failures > 0;
        Streak {
            fails: consecutive_failures,
            down: down.then_some(true),
            ..Streak::default()
        }
    }

    pub fn observe(&mut self, ok: bool, at: SystemTime, cfg: &Thresholds) -> Option<Transition> {
        if ok {
            self.fails = 0;
            self.oks = self.oks.saturating_add(1);
            if self.oks >= cfg.success && self.down != Some(false) {
                let was_down = self.down == Some(true);
                self.down = Some(false);
                return was_down.then_some(Transition::Up);
            }
        } else {
            self.oks = 0;
            self.fails = self.fails.saturating_add(1);
            if self.fails == 1 {
                self.first_failure = Some(at);
            }
            if self.fails >= cfg.failure && self.down != Some(true) {
                self.down = Some(true);
                // "Down since" the streak began, not since the threshold was reached.
                self.down_since = self.first_failure.or(Some(at));
                return Some(Transition::Down);
            }
        }
        None
    }

    pub fn is_down(&self) -> bool {
        self.down == Some(true)
    }
}

/// What a worker thread needs; every field is owned or shared read-only.
pub struct Worker {
    pub slot: usize,
    pub target: Target,
    pub state: Arc<State>,
    pub agent: ureq::Agent,
    pub waker: Arc<Waker>,
    /// When the first check is due.
    pub first: Instant,
    pub thresholds: Thresholds,
    pub alerter: Option<Arc<Alerter>>,
    pub restarter: Option<Arc<Restarter>>,
    pub restart_cooldown: Duration,
    /// For an https target: where its check's handshake leaves the server's certificate, and
    /// when to ask for it.
    pub cert: Option<(Arc<PeerCapture>, Watch)>,
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

impl Worker {
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name(format!("w-{}", self.target.name))
            .stack_size(STACK_SIZE)
            .spawn(move || self.run())
    }

    fn run(mut self) {
        let mut cert = self.cert.take();
        let t = &self.target;
        let saved = self.state.record_of(self.slot).unwrap_or_default();
        let mut streak = Streak::resume(saved.consecutive_failures, self.thresholds.failure);
        let mut alert_streaks = self
            .alerter
            .as_ref()
            .map(|a| a.streaks(t, saved.consecutive_failures))
            .unwrap_or_default();
        let mut cert_warnings = self.alerter.as_ref().map(|a| a.cert_warnings(t)).unwrap_or_default();
        let mut last_restart = saved.last_restart_at_ms.map(from_unix_millis);
        let mut was_ok = saved.last().map(|r| r.ok);
        let mut pending: u64 = 0;
        let stack = crate::os::current_stack();
        loop {
            let deadline = self.first + schedule::offset_of(t.interval, pending);
            self.state.set_next_check(self.slot, system_time_of(deadline));
            match self.waker.sleep_until(deadline, true) {
                Wake::Stop => return,
                Wake::Deadline => {
                    log::debug!(
                        "{}: check {pending} started {:.3} ms after its deadline",
                        t.name,
                        deadline.elapsed().as_secs_f64() * 1000.0
                    );
                    pending += 1;
                }
                Wake::CheckNow => log::info!("{}: check requested", t.name),
            }
            if let Some((capture, watch)) = &cert {
                if watch.due(Instant::now()) {
                    capture.request();
                }
            }
            let outcome = self.check_once();
            if self.waker.is_stopped() {
                // Shutting down: an abandoned check is not a result.
                return;
            }
            let now = SystemTime::now();
            self.log_outcome(&outcome, was_ok);
            was_ok = Some(outcome.ok);
            self.state.record_check(self.slot, record_of(&outcome, now));
            streak.observe(outcome.ok, now, &self.thresholds);
            if let Some(alerter) = &self.alerter {
                alerter.observe(&mut alert_streaks, t, outcome.ok, outcome.error.as_deref(), now);
            }
            if let Some(info) = cert.as_mut().and_then(|(c, w)| self.read_cert(c, w)) {
                if let Some(alerter) = &self.alerter {
                    alerter.observe_cert(&mut cert_warnings, t, info, now);
                }
            }
            if streak.is_down() && !outcome.ok {
                self.maybe_restart(&mut last_restart, now);
            }
            let (next, skipped) = schedule::advance(pending, self.first.elapsed(), t.interval);
            if skipped > 0 {
                log::warn!("{}: check overran its slot; skipped {skipped} deadline(s)", t.name);
                self.state.record_skipped(self.slot, skipped);
            }
            pending = next;
            if let Some(stack) = &stack {
                crate::os::release_stack_below_here(stack);
            }
        }
    }

    /// The check in a frame of its own: its deep stack use (HTTP, DNS, TLS) stays below the
    /// loop's frame, where `release_stack_below_here` can hand it back after each check.
    #[inline(never)]
    fn check_once(&self) -> Outcome {
        guarded(|| probe::check(&self.agent, &self.target, &self.waker))
    }

    /// Takes in the certificate of this check's handshake, if one was asked for and completed.
    fn read_cert(&self, capture: &PeerCapture, watch: &mut Watch) -> Option<CertInfo> {
        let leaf = capture.take()?;
        let name = &self.target.name;
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
                self.state.set_cert(self.slot, info);
                Some(info)
            }
        }
    }

    fn log_outcome(&self, o: &Outcome, was_ok: Option<bool>) {
        let name = &self.target.name;
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
                self.target.display_url,
                o.error.as_deref().unwrap_or("error")
            ),
            (Some(false), true) => log::warn!("{name} ({}) is up again", self.target.display_url),
            _ => {}
        }
    }

    fn maybe_restart(&self, last_restart: &mut Option<SystemTime>, now: SystemTime) {
        let (Some(space_id), Some(token), Some(restarter)) =
            (&self.target.space_id, &self.target.restart_token, &self.restarter)
        else {
            return;
        };
        let cooled = last_restart.is_none_or(|t| now.duration_since(t).unwrap_or_default() >= self.restart_cooldown);
        if !cooled {
            return;
        }
        *last_restart = Some(now);
        restarter.send(RestartJob {
            slot: self.slot,
            worker: self.target.name.clone(),
            space_id: space_id.clone(),
            token: token.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thresholds(failure: u32, success: u32) -> Thresholds {
        Thresholds { failure, success }
    }

    fn run(streak: &mut Streak, cfg: &Thresholds, results: &[bool]) -> Vec<Option<Transition>> {
        results
            .iter()
            .map(|ok| streak.observe(*ok, SystemTime::now(), cfg))
            .collect()
    }

    #[test]
    fn down_after_threshold_then_up_once() {
        let cfg = thresholds(3, 2);
        let mut s = Streak::default();
        let got = run(&mut s, &cfg, &[true, false, false, false, false, true, true, true]);
        use Transition::*;
        assert_eq!(got, [None, None, None, Some(Down), None, None, Some(Up), None]);
    }

    #[test]
    fn never_up_without_a_down_before() {
        let cfg = thresholds(2, 1);
        let mut s = Streak::default();
        assert!(
            run(&mut s, &cfg, &[true, false, true, true])
                .iter()
                .all(Option::is_none)
        );
    }

    #[test]
    fn flapping_below_threshold_is_quiet() {
        let cfg = thresholds(3, 1);
        let mut s = Streak::default();
        assert!(
            run(&mut s, &cfg, &[false, false, true, false, false, true])
                .iter()
                .all(Option::is_none)
        );
    }

    #[test]
    fn down_since_is_the_first_failure_of_the_streak() {
        let cfg = thresholds(3, 1);
        let mut s = Streak::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        s.observe(false, t0, &cfg);
        s.observe(false, t0 + Duration::from_secs(60), &cfg);
        assert_eq!(
            s.observe(false, t0 + Duration::from_secs(120), &cfg),
            Some(Transition::Down)
        );
        assert_eq!(s.down_since, Some(t0));
    }

    #[test]
    fn resumed_down_streak_announces_recovery() {
        let cfg = thresholds(3, 1);
        let mut s = Streak::resume(5, 3);
        assert_eq!(s.observe(true, SystemTime::now(), &cfg), Some(Transition::Up));
    }

    #[test]
    fn a_streak_resumed_exactly_at_the_threshold_is_down() {
        use Transition::*;
        let cfg = thresholds(3, 1);
        let mut s = Streak::resume(3, 3);
        assert!(s.is_down());
        assert_eq!(run(&mut s, &cfg, &[false, true]), [None, Some(Up)], "no second down");
        let mut s = Streak::resume(3, 3);
        assert_eq!(run(&mut s, &cfg, &[true]), [Some(Up)], "the recovery is announced");
        let mut s = Streak::resume(2, 3);
        assert!(!s.is_down());
        assert_eq!(run(&mut s, &cfg, &[false, true]), [Some(Down), Some(Up)]);
        assert!(!Streak::resume(0, 0).is_down(), "no failures, never down");
    }

    #[test]
    fn a_panicking_check_is_a_failed_outcome() {
        let o = guarded(|| panic!("boom"));
        assert!(!o.ok);
        assert_eq!(o.error.as_deref(), Some("internal error: the check panicked"));
    }
}
