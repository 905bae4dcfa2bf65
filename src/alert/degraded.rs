//! The degraded alert: on a channel with `degraded: true`, a worker whose successful checks are
//! slower than its `expect_latency` is announced as degraded, and again when it is fast again.
//!
//! The rule, with the channel's own thresholds: `failure_threshold` consecutive slow successes
//! make it degraded, then `success_threshold` consecutive fast successes end it (announced when
//! `send_on_resolved`). Failed checks do not count either way: being down is the down alert's.

use super::{Alerter, Event, Transition};
use crate::config::Target;
use crate::streak::{ChannelStreak, Streak};
use std::time::SystemTime;

/// A worker's slow-check streak on each channel that announces it, owned by the worker's thread.
#[derive(Debug, Default)]
pub struct DegradedStreaks(Vec<(u64, Streak)>);

impl Alerter {
    /// The degraded streaks of `target` on the channels with `degraded: true` that speak for it,
    /// each resumed from the one `saved` for a channel of the same name (a restart, the next
    /// `once` run, or a reload that kept the channel), else starting afresh.
    pub fn degraded_streaks(&self, target: &Target, saved: &[ChannelStreak]) -> DegradedStreaks {
        if target.conditions.latency.is_none() {
            return DegradedStreaks::default();
        }
        DegradedStreaks(
            self.speaking_for(target)
                .filter(|c| c.channel.degraded)
                .map(|c| {
                    let streak = saved
                        .iter()
                        .find(|s| s.channel == c.channel.name)
                        .map_or_else(Streak::default, Streak::from_saved);
                    (c.id, streak)
                })
                .collect(),
        )
    }

    /// The degraded streaks as the state keeps them, by channel name.
    pub fn saved_degraded(&self, streaks: &DegradedStreaks) -> Vec<ChannelStreak> {
        self.saved_by_name(&streaks.0)
    }

    /// Counts one successful check (`slow`: over `expect_latency`, with `why` its text) on each
    /// channel and queues a transition where a threshold was crossed. Never blocks.
    pub fn observe_degraded(
        &self,
        streaks: &mut DegradedStreaks,
        target: &Target,
        slow: bool,
        why: Option<&str>,
        at: SystemTime,
    ) {
        for (id, streak) in &mut streaks.0 {
            let Some(ch) = self.channel(*id) else { continue };
            let transition = match streak.observe(!slow, at, &ch.thresholds) {
                Some(Transition::Down) => Transition::Degraded,
                Some(Transition::Up) if ch.channel.send_on_resolved => Transition::DegradedResolved,
                _ => continue,
            };
            ch.queue.push(Event {
                worker: target.name.clone(),
                url: target.display_url.clone(),
                transition,
                error: why.map(str::to_string),
                at,
                since: streak.down_since,
            });
        }
    }
}
