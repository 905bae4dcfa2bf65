//! Telling people: webhook alerts and Hugging Face Space restarts. Each runs on its own thread fed
//! by a bounded queue, so a slow, failing or hanging webhook never delays a ping. The worker
//! decides *when* (its own streak counters); this module only delivers.

use crate::config::{AlertFormat, Alerts};
use crate::probe;
use crate::shutdown::Waker;
use crate::state::State;
use crate::timefmt;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

const QUEUE_CAP: usize = 100;
const DELIVERY_RETRIES: u32 = 3;
const RESTART_TIMEOUT: Duration = Duration::from_secs(30);

/// A bounded FIFO shared by producers (workers) and one consumer thread.
pub struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    cv: Condvar,
    what: &'static str,
}

impl<T> Queue<T> {
    pub fn new(what: &'static str) -> Queue<T> {
        Queue {
            items: Mutex::new(VecDeque::new()),
            cv: Condvar::new(),
            what,
        }
    }

    /// Adds an item; when full, the oldest is dropped (newer news matters more).
    pub fn push(&self, item: T) {
        let mut q = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= QUEUE_CAP {
            q.pop_front();
            log::warn!("{} queue full ({QUEUE_CAP}): dropped the oldest entry", self.what);
        }
        q.push_back(item);
        self.cv.notify_one();
    }

    /// Waits for the next item, or `None` after `stop` is set on the waker.
    pub fn pop(&self, waker: &Waker) -> Option<T> {
        let mut q = self.items.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if waker.is_stopped() {
                return None;
            }
            if let Some(item) = q.pop_front() {
                return Some(item);
            }
            // Bounded wait so a stop is noticed without the waker knowing about this condvar.
            q = self
                .cv
                .wait_timeout(q, Duration::from_millis(200))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Down,
    Up,
}

/// An alert to deliver: the facts, rendered in the sender thread.
#[derive(Debug, Clone)]
pub struct Event {
    pub worker: String,
    pub url: String,
    pub transition: Transition,
    pub error: Option<String>,
    pub at: SystemTime,
    /// When the worker went down (for "down since" / "was down for").
    pub since: Option<SystemTime>,
}

/// The JSON body POSTed to the webhook for `event` in `format`.
pub fn payload(format: AlertFormat, event: &Event, status_page: Option<&str>) -> serde_json::Value {
    let state = match event.transition {
        Transition::Down => "down",
        Transition::Up => "up",
    };
    if format == AlertFormat::Json {
        return serde_json::json!({
            "worker": event.worker,
            "url": event.url,
            "state": state,
            "error": event.error,
            "at": timefmt::rfc3339(event.at),
        });
    }
    let bold = |s: &str| {
        if format == AlertFormat::Slack {
            format!("*{s}*")
        } else {
            format!("**{s}**")
        }
    };
    let mut text = match event.transition {
        Transition::Down => format!(
            "🔴 {} is DOWN: {} ({}, since {})",
            bold(&event.worker),
            event.error.as_deref().unwrap_or("check failed"),
            event.url,
            timefmt::rfc3339(event.since.unwrap_or(event.at)),
        ),
        Transition::Up => {
            let was = event
                .since
                .and_then(|s| event.at.duration_since(s).ok())
                .map(|d| {
                    format!(
                        " after {} down",
                        crate::duration::format(Duration::from_secs(d.as_secs()))
                    )
                })
                .unwrap_or_default();
            format!("🟢 {} is UP again{was} ({})", bold(&event.worker), event.url)
        }
    };
    if let Some(page) = status_page {
        text.push_str(&format!("\nStatus: {page}"));
    }
    match format {
        AlertFormat::Slack => serde_json::json!({ "text": text }),
        _ => serde_json::json!({ "content": text }),
    }
}

/// The public status page, told from the self-ping URL (`https://me.hf.space/health` -> `https://me.hf.space/`).
pub fn status_page_from(self_url: &str) -> String {
    let base = self_url.split('?').next().unwrap_or(self_url);
    let base = base
        .strip_suffix("/healthz")
        .or_else(|| base.strip_suffix("/health"))
        .unwrap_or(base);
    format!("{}/", base.trim_end_matches('/'))
}

pub struct Alerter {
    queue: Queue<Event>,
}

impl Alerter {
    pub fn send(&self, event: Event) {
        self.queue.push(event);
    }
}

/// Starts the webhook sender thread. The webhook URL lives only inside that thread.
pub fn start_alerter(
    cfg: &Alerts,
    webhook: String,
    status_page: Option<String>,
    agent: ureq::Agent,
    waker: Arc<Waker>,
) -> std::io::Result<Arc<Alerter>> {
    let alerter = Arc::new(Alerter {
        queue: Queue::new("alert"),
    });
    let a = Arc::clone(&alerter);
    let (format, timeout, backoff) = (cfg.format, cfg.timeout, cfg.retry_backoff);
    std::thread::Builder::new()
        .name("alerts".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            while let Some(event) = a.queue.pop(&waker) {
                let body = payload(format, &event, status_page.as_deref()).to_string();
                let what = format!(
                    "alert for {} ({})",
                    event.worker,
                    if event.transition == Transition::Down {
                        "down"
                    } else {
                        "up"
                    }
                );
                deliver(&agent, &webhook, &body, timeout, backoff, &waker, &what);
            }
        })?;
    Ok(alerter)
}

/// POSTs `body` with up to 3 retries after the first try; gives up with a log line.
fn deliver(
    agent: &ureq::Agent,
    url: &str,
    body: &str,
    timeout: Duration,
    backoff: Duration,
    waker: &Waker,
    what: &str,
) {
    let tries = DELIVERY_RETRIES + 1;
    for attempt in 1..=tries {
        let result = agent
            .post(url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("Content-Type", "application/json")
            .send(body);
        let error = match result {
            Ok(resp) if resp.status().is_success() => {
                log::info!("{what} delivered");
                return;
            }
            Ok(resp) => format!("status {}", resp.status().as_u16()),
            Err(e) => probe::describe(&e, timeout),
        };
        if attempt == tries {
            log::error!("{what}: webhook failed after {tries} attempts ({error}); dropped");
            return;
        }
        log::warn!("{what}: webhook attempt {attempt} of {tries} failed ({error}); retrying");
        if !waker.sleep(probe::backoff_delay(backoff, attempt)) {
            return;
        }
    }
}

/// A request to restart one Space.
pub struct RestartJob {
    pub slot: usize,
    pub worker: String,
    pub space_id: String,
    pub token: String,
}

pub struct Restarter {
    queue: Queue<RestartJob>,
}

impl Restarter {
    pub fn send(&self, job: RestartJob) {
        self.queue.push(job);
    }
}

/// Starts the thread that POSTs `{api}/api/spaces/{id}/restart` and counts each request.
pub fn start_restarter(
    api: String,
    agent: ureq::Agent,
    state: Arc<State>,
    waker: Arc<Waker>,
) -> std::io::Result<Arc<Restarter>> {
    let r = Arc::new(Restarter {
        queue: Queue::new("restart"),
    });
    let q = Arc::clone(&r);
    std::thread::Builder::new()
        .name("restarts".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            while let Some(job) = q.queue.pop(&waker) {
                let url = format!("{api}/api/spaces/{}/restart", job.space_id);
                state.record_restart(job.slot, SystemTime::now());
                let result = agent
                    .post(&url)
                    .config()
                    .timeout_global(Some(RESTART_TIMEOUT))
                    .build()
                    .header("Authorization", &format!("Bearer {}", job.token))
                    .send_empty();
                match result {
                    Ok(resp) if resp.status().is_success() => {
                        log::warn!("{}: restart of Space {} requested", job.worker, job.space_id);
                    }
                    Ok(resp) => log::error!(
                        "{}: restart of Space {} refused: status {}",
                        job.worker,
                        job.space_id,
                        resp.status().as_u16()
                    ),
                    Err(e) => log::error!(
                        "{}: restart of Space {} failed: {}",
                        job.worker,
                        job.space_id,
                        probe::describe(&e, RESTART_TIMEOUT)
                    ),
                }
            }
        })?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn event(t: Transition) -> Event {
        Event {
            worker: "rag".into(),
            url: "https://rag.hf.space/health".into(),
            transition: t,
            error: (t == Transition::Down).then(|| "status 503".to_string()),
            at: UNIX_EPOCH + Duration::from_secs(1_795_863_300),
            since: Some(UNIX_EPOCH + Duration::from_secs(1_795_863_000)),
        }
    }

    #[test]
    fn json_payload_has_the_spec_fields() {
        let v = payload(AlertFormat::Json, &event(Transition::Down), None);
        assert_eq!(v["worker"], "rag");
        assert_eq!(v["url"], "https://rag.hf.space/health");
        assert_eq!(v["state"], "down");
        assert_eq!(v["error"], "status 503");
        assert_eq!(v["at"], "2026-11-28T10:55:00Z");
        assert_eq!(
            payload(AlertFormat::Json, &event(Transition::Up), None)["error"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn chat_payloads_read_at_a_glance() {
        let d = payload(
            AlertFormat::Discord,
            &event(Transition::Down),
            Some("https://me.hf.space/"),
        );
        let text = d["content"].as_str().unwrap();
        assert!(text.contains("**rag** is DOWN: status 503"), "{text}");
        assert!(text.contains("since 2026-11-28T10:50:00Z"), "{text}");
        assert!(text.contains("Status: https://me.hf.space/"), "{text}");
        let s = payload(AlertFormat::Slack, &event(Transition::Up), None);
        let text = s["text"].as_str().unwrap();
        assert!(text.contains("*rag* is UP again after 5m down"), "{text}");
    }

    #[test]
    fn status_page_from_self_url() {
        assert_eq!(status_page_from("https://me.hf.space/health"), "https://me.hf.space/");
        assert_eq!(status_page_from("https://x.onrender.com"), "https://x.onrender.com/");
    }

    #[test]
    fn full_queue_drops_the_oldest() {
        let q = Queue::new("test");
        for i in 0..QUEUE_CAP + 5 {
            q.push(i);
        }
        let w = Waker::default();
        assert_eq!(q.pop(&w), Some(5));
        w.stop();
        assert_eq!(q.pop(&w), None);
    }
}
