//! Hugging Face Space restarts: a worker whose Space stays down asks for a restart, and one
//! thread of its own POSTs `{api}/api/spaces/{id}/restart` (a slow Hub API never delays a ping)
//! and counts each request in the state.

use crate::alert::Request;
use crate::alert::queue::{self, Queue};
use crate::shutdown::Waker;
use crate::state::State;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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

    pub fn send(&self, job: RestartJob) {
        self.queue.push(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
