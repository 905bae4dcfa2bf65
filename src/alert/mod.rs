//! Telling people that a worker went down or came back. The worker decides *when* (its own streak
//! counters) and hands an `Event` to the `Alerter`; a provider (`discord`, `slack`, `json`) turns
//! the event into a request value without any I/O; `queue` holds the bounded queue and the sender
//! thread, the only place a request is sent. So a slow, failing or hanging webhook never delays a
//! ping, and a new kind of channel is one more pure provider beside the others.

pub mod discord;
pub mod json;
pub mod message;
pub mod queue;
pub mod slack;

use crate::config::{AlertFormat, Alerts};
use crate::shutdown::Waker;
use queue::Queue;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Down,
    Up,
    /// The server's certificate fell under a `cert_expiry_days` threshold.
    CertExpiring {
        days_left: i64,
        expires_at: SystemTime,
    },
}

impl Transition {
    /// The state a transition leads to, as the JSON payload and the log name it.
    pub fn state(self) -> &'static str {
        match self {
            Transition::Down => "down",
            Transition::Up => "up",
            Transition::CertExpiring { .. } => "cert_expiring",
        }
    }
}

/// An alert to deliver: the facts, rendered in the sender thread.
#[derive(Debug, Clone)]
pub struct Event {
    pub worker: String,
    /// Already redacted (the worker's `display_url`).
    pub url: String,
    pub transition: Transition,
    pub error: Option<String>,
    pub at: SystemTime,
    /// When the worker went down (for "down since" / "was down for").
    pub since: Option<SystemTime>,
}

/// What a provider needs to shape a request for one channel.
#[derive(Clone)]
pub struct Settings {
    /// The webhook URL: a secret (it is the credential), so `Debug` never shows it.
    pub url: String,
    /// The public status page, linked from chat messages.
    pub status_page: Option<String>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("url", &"REDACTED")
            .field("status_page", &self.status_page)
            .finish()
    }
}

/// An HTTP request as a plain value: providers build it, `queue::send` sends it. Its URL and
/// header values may hold credentials, so `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    /// A POST of a JSON document.
    pub fn post_json(url: &str, body: &serde_json::Value) -> Request {
        Request {
            method: "POST",
            url: url.to_string(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &"REDACTED")
            .field("headers", &names)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// A provider: a pure function from an event to the request that announces it.
pub type Provider = fn(&Event, &Settings) -> Request;

/// The provider for a configured webhook format.
pub fn provider(format: AlertFormat) -> Provider {
    match format {
        AlertFormat::Discord => discord::request,
        AlertFormat::Slack => slack::request,
        AlertFormat::Json => json::request,
    }
}

/// The workers' way to alert: queues events for the channel's sender thread and never blocks.
pub struct Alerter {
    queue: Arc<Queue<Event>>,
    send_on_resolved: bool,
}

impl Alerter {
    /// Starts the webhook sender thread. The webhook URL lives only inside that thread.
    pub fn start(
        cfg: &Alerts,
        webhook: String,
        status_page: Option<String>,
        agent: ureq::Agent,
        waker: Arc<Waker>,
    ) -> std::io::Result<Arc<Alerter>> {
        let settings = Settings {
            url: webhook,
            status_page,
        };
        let request = provider(cfg.format);
        let delivery = queue::Delivery {
            agent,
            timeout: cfg.timeout,
            backoff: cfg.retry_backoff,
        };
        let queue = queue::start("alerts", "alert", waker, move |event: Event, waker: &Waker| {
            let what = format!("alert for {} ({})", event.worker, event.transition.state());
            delivery.deliver(&request(&event, &settings), waker, &what);
        })?;
        Ok(Arc::new(Alerter {
            queue,
            send_on_resolved: cfg.send_on_resolved,
        }))
    }

    /// Queues `event`; a recovery is dropped here when the channel does not announce them.
    pub fn send(&self, event: Event) {
        if event.transition == Transition::Up && !self.send_on_resolved {
            return;
        }
        self.queue.push(event);
    }
}

/// "5m" for a worker that was down from `since` until `at`, in whole seconds.
pub(crate) fn down_for(event: &Event) -> Option<String> {
    let since = event.since?;
    let d = event.at.duration_since(since).ok()?;
    Some(crate::duration::format(Duration::from_secs(d.as_secs())))
}

/// A down and an up event for the providers' tests.
#[cfg(test)]
pub(crate) mod testdata {
    use super::*;
    use std::time::UNIX_EPOCH;

    pub fn event(t: Transition) -> Event {
        Event {
            worker: "rag".into(),
            url: "https://rag.hf.space/health".into(),
            transition: t,
            error: (t == Transition::Down).then(|| "status 503".to_string()),
            at: UNIX_EPOCH + Duration::from_secs(1_795_863_300),
            since: Some(UNIX_EPOCH + Duration::from_secs(1_795_863_000)),
        }
    }

    /// A certificate warning with `days` left, expiring 2026-12-04T10:00:00Z.
    pub fn cert_expiring(days: i64) -> Transition {
        Transition::CertExpiring {
            days_left: days,
            expires_at: UNIX_EPOCH + Duration::from_secs(1_796_378_400),
        }
    }

    pub fn settings(status_page: Option<&str>) -> Settings {
        Settings {
            url: "https://hooks.example/T0/secret-path".into(),
            status_page: status_page.map(String::from),
        }
    }

    /// The request's body as JSON, after checking what every provider sends.
    pub fn body_of(r: &Request) -> serde_json::Value {
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "https://hooks.example/T0/secret-path");
        assert_eq!(r.header("content-type"), Some("application/json"));
        serde_json::from_str(&r.body).expect("a JSON body")
    }
}

#[cfg(test)]
mod tests {
    use super::testdata::*;
    use super::*;

    #[test]
    fn debug_output_hides_the_webhook_url_and_header_values() {
        let s = settings(None);
        let mut r = provider(AlertFormat::Json)(&event(Transition::Down), &s);
        r.headers.push(("Authorization".into(), "Bearer hf_secret".into()));
        let shown = format!("{s:?} {r:?}");
        assert!(
            !shown.contains("secret-path") && !shown.contains("hf_secret"),
            "{shown}"
        );
        assert!(shown.contains("Authorization"), "{shown}");
    }

    #[test]
    fn each_format_has_its_provider() {
        let s = settings(None);
        let e = event(Transition::Down);
        assert!(body_of(&provider(AlertFormat::Json)(&e, &s)).get("state").is_some());
        assert!(
            body_of(&provider(AlertFormat::Discord)(&e, &s))
                .get("content")
                .is_some()
        );
        assert!(body_of(&provider(AlertFormat::Slack)(&e, &s)).get("text").is_some());
    }

    #[test]
    fn recoveries_are_dropped_when_not_announced() {
        let cfg = Alerts {
            send_on_resolved: false,
            ..Alerts::default()
        };
        let waker = Arc::new(Waker::default());
        waker.stop();
        let a = Alerter::start(&cfg, "http://127.0.0.1:9/".into(), None, crate::probe::agent(), waker).expect("start");
        a.send(event(Transition::Up));
        assert_eq!(a.queue.len(), 0);
        a.send(event(Transition::Down));
        assert_eq!(a.queue.len(), 1);
    }
}
