//! The streak rule that workers (for Space restarts) and alert channels share: when consecutive
//! results turn into a transition. Pure and owned by one thread each, so it needs no lock.

use crate::timefmt::{from_unix_millis, unix_millis};
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Down,
    Up,
    /// The server's certificate fell under one of the channel's `cert_expiry_days`.
    CertExpiring {
        days_left: i64,
        expires_at: SystemTime,
    },
    /// `notify-test`: no worker changed, the channel is being tried.
    Test,
    /// Successful checks went slower than `expect_latency` (channels with `degraded: true`).
    Degraded,
    /// They are fast again.
    DegradedResolved,
}

impl Transition {
    /// The state a transition leads to, as the JSON payload and the log name it.
    pub fn state(self) -> &'static str {
        match self {
            Transition::Down => "down",
            Transition::Up => "up",
            Transition::CertExpiring { .. } => "cert_expiring",
            Transition::Test => "test",
            Transition::Degraded => "degraded",
            Transition::DegradedResolved => "degraded_resolved",
        }
    }
}

/// When a streak turns into a transition: each alert channel has its own, and the worker's own
/// (for Space restarts) comes from the `alerts` section. Channel settings stay with the channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive failed checks before a worker is down.
    pub failure: u32,
    /// Consecutive good checks before a down worker is up again.
    pub success: u32,
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

    /// The streak as the state keeps it for `channel`.
    pub fn saved(&self, channel: &str) -> ChannelStreak {
        let since = if self.down == Some(true) {
            self.down_since
        } else {
            self.first_failure.filter(|_| self.fails > 0)
        };
        ChannelStreak {
            channel: channel.to_string(),
            fails: self.fails,
            oks: self.oks,
            down: self.down,
            since_ms: since.map(unix_millis),
        }
    }

    /// Resumes a saved streak exactly where it stopped.
    pub fn from_saved(saved: &ChannelStreak) -> Streak {
        let since = saved.since_ms.map(from_unix_millis);
        Streak {
            fails: saved.fails,
            oks: saved.oks,
            down: saved.down,
            first_failure: since.filter(|_| saved.fails > 0),
            down_since: since.filter(|_| saved.down == Some(true)),
        }
    }
}

/// One alert channel's streak for one target, as the state keeps and the state file saves it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ChannelStreak {
    pub channel: String,
    /// Consecutive failed and good checks (one of them is 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub fails: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub oks: u32,
    /// Whether the channel was last told down (`true`) or up (`false`); absent before either.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down: Option<bool>,
    /// Unix milliseconds of the first failure of the current run of failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    fn a_saved_streak_resumes_exactly_one_check_per_run() {
        use Transition::*;
        let cfg = thresholds(2, 2);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut saved = ChannelStreak::default();
        let mut got = Vec::new();
        for (i, ok) in [true, false, false, false, true, true, true].into_iter().enumerate() {
            let mut s = Streak::from_saved(&saved);
            got.push(s.observe(ok, t0 + Duration::from_secs(300 * i as u64), &cfg));
            saved = s.saved("ops");
        }
        assert_eq!(got, [None, None, Some(Down), None, None, Some(Up), None]);
        // Down since the first failure, two runs before the alert.
        let mut s = Streak::from_saved(&ChannelStreak::default());
        s.observe(false, t0, &cfg);
        let mut s = Streak::from_saved(&s.saved("ops"));
        s.observe(false, t0 + Duration::from_secs(300), &cfg);
        assert_eq!(s.down_since, Some(t0));
        assert_eq!(Streak::from_saved(&s.saved("ops")).down_since, Some(t0));
    }
}
