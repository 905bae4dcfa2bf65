//! Hugging Face Space restarts: a worker whose Space stays down asks for a restart, and one
//! thread of its own POSTs `{api}/api/spaces/{id}/restart` (a slow Hub API never delays a ping)
//! and counts each request in the state.

use crate::alert::Request;
use crate::alert::queue::{self, Queue};
use crate::shutdown::Waker;
use crate::state::State;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const RESTART_TIMEOUT: Duration = Duration::from_secs(30);

/// A request to restart one Space.
pub struct RestartJob {
    pub slot: usize,
    pub worker: String,
    pub space_id: String,
    /// A Hugging Face token: a secret, sent only in the `Authorization` header.
    pub token: String,
}

/// The Hub API call for `job`, as a value (see `crate::alert::Request`).
pub fn request(api: &str, job: &RestartJob) -> Request {
    Request {
        method: "POST",
        url: format!("{api}/api/spaces/{}/restart", job.space_id),
        headers: vec![("Authorization".into(), format!("Bearer {}", job.token))],
        body: String::new(),
    }
}

/// The workers' way to ask for restarts: queues jobs for the restart thread and never blocks.
pub struct Restarter {
    queue: Arc<Queue<RestartJob>>,
}

impl Restarter {
    /// Starts the restart thread against the Hub API at `api`.
    pub fn start(
        api: String,
        agent: ureq::Agent,
        state: Arc<State>,
        waker: Arc<Waker>,
    ) -> std::io::Result<Arc<Restarter>> {
        let queue = queue::start("restarts", "restart", waker, move |job: RestartJob, _: &Waker| {
            state.record_restart(job.slot, SystemTime::now());
            match queue::send(&agent, &request(&api, &job), RESTART_TIMEOUT) {
                // The worker's name says which Space; `space_id` may have come from `${VAR}`.
                Ok(()) => log::warn!("{}: restart of its Space requested", job.worker),
                Err(queue::Failure::Status(code, _)) => {
                    log::error!("{}: restart of its Space refused: status {code}", job.worker)
                }
                Err(queue::Failure::Transport(why)) => {
                    log::error!("{}: restart of its Space failed: {why}", job.worker)
                }
            }
        })?;
        Ok(Arc::new(Restarter { queue }))
    }

    /// The restart thread, to be joined once it is stopped.
    pub fn thread(&self) -> Option<crate::shutdown::Thread> {
        self.queue.take_thread()
    }

    pub fn send(&self, job: RestartJob) {
        self.queue.push(job);
    }
}

/// At most one restart per cooldown, measured on the monotonic clock: a wall clock stepped back
/// (or forward) neither blocks restarts nor lets two through early.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cooldown {
    last: Option<Instant>,
}

impl Cooldown {
    /// Resumes from the last restart the state file remembers (wall clock, `saved`), as seen at
    /// `now_wall` and `now`. A saved time in the future (the clock was stepped back) counts as
    /// now: the wait is then at most one cooldown.
    pub fn resumed(saved: Option<SystemTime>, now_wall: SystemTime, now: Instant) -> Cooldown {
        let last = saved.and_then(|at| now.checked_sub(now_wall.duration_since(at).unwrap_or_default()));
        Cooldown { last }
    }

    /// True, and the cooldown starts again from `now`, when `every` has passed since the last
    /// restart (or there was none).
    pub fn take(&mut self, now: Instant, every: Duration) -> bool {
        let cooled = self.last.is_none_or(|t| now.saturating_duration_since(t) >= every);
        if cooled {
            self.last = Some(now);
        }
        cooled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_restart_per_cooldown_on_the_monotonic_clock() {
        let every = Duration::from_secs(1800);
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut c = Cooldown::default();
        assert!(c.take(t0, every), "the first restart goes at once");
        assert!(!c.take(t0 + ms(1), every));
        assert!(!c.take(t0 + every - ms(1), every), "not inside the cooldown");
        assert!(c.take(t0 + every, every), "again a cooldown later");
        assert!(!c.take(t0 + every + ms(1), every));
        assert!(c.take(t0 + every * 2 + ms(5), every), "and again");
    }

    #[test]
    fn a_saved_restart_resumes_whatever_the_wall_clock_did() {
        let every = Duration::from_secs(1800);
        let (wall, now) = (SystemTime::now(), Instant::now());
        let ten_min = Duration::from_secs(600);
        let mut c = Cooldown::resumed(Some(wall - ten_min), wall, now);
        assert!(!c.take(now + every - ten_min - Duration::from_millis(1), every));
        assert!(
            c.take(now + every - ten_min, every),
            "the rest of the cooldown, no more"
        );
        // The clock was stepped back a day after the restart was saved.
        let mut c = Cooldown::resumed(Some(wall + Duration::from_secs(86_400)), wall, now);
        assert!(!c.take(now, every));
        assert!(
            c.take(now + every, every),
            "blocked for one cooldown at most, not a day"
        );
        assert!(Cooldown::resumed(None, wall, now).take(now, every), "never restarted");
    }

    #[test]
    fn the_hub_call_names_the_space_and_carries_the_token() {
        let job = RestartJob {
            slot: 0,
            worker: "db".into(),
            space_id: "you/db".into(),
            token: "hf_abc".into(),
        };
        let r = request("https://huggingface.co", &job);
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "https://huggingface.co/api/spaces/you/db/restart");
        assert_eq!(r.header("authorization"), Some("Bearer hf_abc"));
        assert!(r.body.is_empty());
    }
}
