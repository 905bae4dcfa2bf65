//! Telling people that a worker went down or came back, through every configured channel.
//!
//! Each worker thread owns one `Streak` per channel that speaks for it (`Alerter::streaks`) and
//! hands every check result to `Alerter::observe`, which only counts and, on a transition,
//! pushes an `Event` onto that channel's bounded queue: no lock is held and no I/O is done on the
//! worker's thread. Each channel has its own queue and sender thread (`queue`), so a hanging
//! service delays nobody else. A provider (`discord`, `slack`, `json`, `webhook`, `telegram`,
//! `ntfy`, `gotify`, `pushover`) turns the event's rendered `message::Notice` into a `Request`
//! value without any I/O; only the queue sends.

pub mod discord;
pub mod gotify;
pub mod json;
pub mod message;
pub mod ntfy;
pub mod pushover;
pub mod queue;
pub mod slack;
pub mod telegram;
pub mod webhook;

use crate::config::{Channel, Kind, Target};
use crate::net::Net;
use crate::shutdown::Waker;
use crate::state::ChannelStreak;
use crate::timefmt::unix_secs;
use crate::tls::expiry::{CertInfo, Warned, days_left, should_warn};
use crate::worker::{Streak, Thresholds};
use message::Notice;
use queue::{Failure, Queue};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(test)]
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

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
}

impl Transition {
    /// The state a transition leads to, as the JSON payload and the log name it.
    pub fn state(self) -> &'static str {
        match self {
            Transition::Down => "down",
            Transition::Up => "up",
            Transition::CertExpiring { .. } => "cert_expiring",
            Transition::Test => "test",
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

/// The request that announces `n` on a channel of `kind`.
pub fn request(kind: &Kind, n: &Notice) -> Request {
    match kind {
        Kind::Discord { webhook_url } => discord::request(n, webhook_url),
        Kind::Slack { webhook_url } => slack::request(n, webhook_url),
        Kind::Json { webhook_url } => json::request(n, webhook_url),
        Kind::Webhook(s) => webhook::request(n, s),
        Kind::Telegram(s) => telegram::request(n, s),
        Kind::Ntfy(s) => ntfy::request(n, s),
        Kind::Gotify(s) => gotify::request(n, s),
        Kind::Pushover(s) => pushover::request(n, s),
    }
}

/// Where a channel's requests go, without its secrets: the only form a log line shows.
pub fn shown(kind: &Kind) -> String {
    match kind {
        Kind::Discord { webhook_url } | Kind::Slack { webhook_url } | Kind::Json { webhook_url } => {
            shown_host(webhook_url)
        }
        Kind::Webhook(s) => webhook::shown(s),
        Kind::Telegram(s) => telegram::shown(s),
        Kind::Ntfy(s) => ntfy::shown(s),
        Kind::Gotify(s) => gotify::shown(s),
        Kind::Pushover(s) => pushover::shown(s),
    }
}

/// The base URL a channel's requests go to (for choosing its proxy). A secret, like the rest.
pub fn base_url(kind: &Kind) -> &str {
    match kind {
        Kind::Discord { webhook_url } | Kind::Slack { webhook_url } | Kind::Json { webhook_url } => webhook_url,
        Kind::Webhook(s) => &s.url,
        Kind::Telegram(s) => &s.api_url,
        Kind::Ntfy(s) => &s.url,
        Kind::Gotify(s) => &s.url,
        Kind::Pushover(s) => &s.api_url,
    }
}

/// Why a delivery failed, in words: the status, with the service's own explanation when its
/// API documents an error body (`status 400: Bad Request: chat not found`).
pub fn describe(kind: &Kind, failure: &Failure) -> String {
    let Failure::Status(code, Some(body)) = failure else {
        return failure.to_string();
    };
    let why = match kind {
        Kind::Telegram(s) => telegram::explain_error(body, s),
        Kind::Ntfy(s) => ntfy::explain_error(body, s),
        Kind::Gotify(s) => gotify::explain_error(body, s),
        Kind::Pushover(s) => pushover::explain_error(body, s),
        // A generic webhook's body could echo anything, secrets included.
        _ => None,
    };
    match why {
        Some(why) => format!("status {code}: {why}"),
        None => format!("status {code}"),
    }
}

/// Deliveries per channel, for `pinger_alerts_total{channel,result}`.
#[derive(Default)]
pub struct Counts {
    channels: Vec<(String, AtomicU64, AtomicU64)>,
}

impl Counts {
    pub fn new(names: impl IntoIterator<Item = String>) -> Counts {
        Counts {
            channels: names
                .into_iter()
                .map(|n| (n, AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
        }
    }

    fn add(&self, channel: usize, sent: bool) {
        if let Some((_, ok, failed)) = self.channels.get(channel) {
            if sent { ok } else { failed }.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds the totals `old` counted for channels of the same names (the channels a reload
    /// started again), so `pinger_alerts_total` does not fall back to zero.
    pub fn carry_from(&self, old: &Counts) {
        for (name, ok, failed) in &self.channels {
            if let Some((_, was_ok, was_failed)) = old.channels.iter().find(|(n, _, _)| n == name) {
                ok.fetch_add(was_ok.load(Ordering::Relaxed), Ordering::Relaxed);
                failed.fetch_add(was_failed.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }

    /// `(channel, sent, failed)` for each channel, in configuration order.
    pub fn snapshot(&self) -> Vec<(String, u64, u64)> {
        self.channels
            .iter()
            .map(|(n, ok, failed)| (n.clone(), ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed)))
            .collect()
    }
}

/// One running channel as the workers see it: when to speak and where to queue.
struct Running {
    name: String,
    thresholds: Thresholds,
    cert_expiry_days: Vec<u32>,
    send_on_resolved: bool,
    workers: Option<Vec<String>>,
    queue: Arc<Queue<Event>>,
}

/// A worker's streak on each channel that speaks for it, owned by the worker's thread.
#[derive(Debug, Default)]
pub struct Streaks(Vec<(usize, Streak)>);

/// What a worker has warned each of its channels about its server's certificate, owned by the
/// worker's thread.
#[derive(Debug, Default)]
pub struct CertWarnings(Vec<(usize, Warned)>);

/// The channels' front door: workers hand it check results and it never blocks.
pub struct Alerter {
    channels: Vec<Running>,
    counts: Arc<Counts>,
}

impl Alerter {
    /// Starts one sender thread per channel. Each channel's secrets live only in its thread.
    pub fn start(
        channels: &[Channel],
        status_page: Option<String>,
        net: &Net,
        waker: Arc<Waker>,
    ) -> std::io::Result<Arc<Alerter>> {
        let counts = Arc::new(Counts::new(channels.iter().map(|c| c.name.clone())));
        let mut running = Vec::with_capacity(channels.len());
        for (i, ch) in channels.iter().enumerate() {
            let (kind, name, page) = (ch.kind.clone(), ch.name.clone(), status_page.clone());
            let where_to = format!("via {name} ({})", shown(&kind));
            let delivery = queue::Delivery {
                agent: net.agent_for(base_url(&ch.kind)),
                timeout: ch.timeout,
                backoff: ch.retry_backoff,
            };
            let counts = Arc::clone(&counts);
            let queue = queue::start(
                &format!("alert-{i}"),
                format!("alert channel {name}"),
                Arc::clone(&waker),
                move |event: Event, waker: &Waker| {
                    let notice = Notice::new(&event, page.as_deref());
                    let what = format!("alert for {} ({}) {where_to}", event.worker, event.transition.state());
                    let sent = delivery.deliver(&request(&kind, &notice), waker, &what, |f| describe(&kind, f));
                    counts.add(i, sent);
                },
            )?;
            running.push(Running {
                name: ch.name.clone(),
                thresholds: Thresholds {
                    failure: ch.failure_threshold,
                    success: ch.success_threshold,
                },
                cert_expiry_days: ch.cert_expiry_days.clone(),
                send_on_resolved: ch.send_on_resolved,
                workers: ch.workers.clone(),
                queue,
            });
        }
        Ok(Arc::new(Alerter {
            channels: running,
            counts,
        }))
    }

    pub fn counts(&self) -> Arc<Counts> {
        Arc::clone(&self.counts)
    }

    /// The streaks of `target` on the channels that speak for it (none with `"alerts": false`):
    /// the one `saved` for a channel of the same name, else resumed from its run of failures, so
    /// a recovery after a restart is still announced.
    pub fn streaks(&self, target: &Target, consecutive_failures: u32, saved: &[ChannelStreak]) -> Streaks {
        Streaks(
            self.speaking_for(target)
                .map(|(i, c)| {
                    let streak = match saved.iter().find(|s| s.channel == c.name) {
                        Some(s) => Streak::from_saved(s),
                        None => Streak::resume(consecutive_failures, c.thresholds.failure),
                    };
                    (i, streak)
                })
                .collect(),
        )
    }

    /// The streaks as the state keeps them, by channel name.
    pub fn saved_streaks(&self, streaks: &Streaks) -> Vec<ChannelStreak> {
        streaks
            .0
            .iter()
            .filter_map(|(i, s)| Some(s.saved(&self.channels.get(*i)?.name)))
            .collect()
    }

    /// Waits until every queued alert has been handed to its channel (delivered, or given up
    /// after its retries), or until `deadline`; true when all were.
    pub fn wait_delivered(&self, deadline: std::time::Instant) -> bool {
        self.channels.iter().all(|c| c.queue.wait_idle(deadline))
    }

    /// The certificate-warning state of `target` on the channels that speak for it.
    pub fn cert_warnings(&self, target: &Target) -> CertWarnings {
        CertWarnings(self.speaking_for(target).map(|(i, _)| (i, Warned::default())).collect())
    }

    /// The channels that speak for `target` (none with `"alerts": false`), with their index.
    fn speaking_for<'a>(&'a self, target: &'a Target) -> impl Iterator<Item = (usize, &'a Running)> {
        self.channels
            .iter()
            .enumerate()
            .filter(move |(_, c)| target.alerts && c.workers.as_ref().is_none_or(|w| w.contains(&target.name)))
    }

    /// Takes one reading of the server's certificate and queues a warning on each channel whose
    /// `cert_expiry_days` it newly fell under (see `tls::expiry::should_warn`). Never blocks.
    pub fn observe_cert(&self, warnings: &mut CertWarnings, target: &Target, cert: CertInfo, at: SystemTime) {
        let days_left = days_left(cert.expires_at, unix_secs(at) as i64);
        for (i, warned) in &mut warnings.0 {
            let Some(ch) = self.channels.get(*i) else { continue };
            if !should_warn(&ch.cert_expiry_days, cert.expires_at, days_left, warned) {
                continue;
            }
            ch.queue.push(Event {
                worker: target.name.clone(),
                url: target.display_url.clone(),
                transition: Transition::CertExpiring {
                    days_left,
                    expires_at: UNIX_EPOCH + std::time::Duration::from_secs(cert.expires_at.max(0) as u64),
                },
                error: None,
                at,
                since: None,
            });
        }
    }

    /// Counts one check result on each of the worker's channels and queues an event on each
    /// channel whose threshold it crossed. Only arithmetic and queue pushes: never blocks.
    pub fn observe(&self, streaks: &mut Streaks, target: &Target, ok: bool, error: Option<&str>, at: SystemTime) {
        for (i, streak) in &mut streaks.0 {
            let Some(ch) = self.channels.get(*i) else { continue };
            let Some(transition) = streak.observe(ok, at, &ch.thresholds) else {
                continue;
            };
            if transition == Transition::Up && !ch.send_on_resolved {
                continue;
            }
            ch.queue.push(Event {
                worker: target.name.clone(),
                url: target.display_url.clone(),
                transition,
                error: error.map(str::to_string),
                at,
                since: streak.down_since,
            });
        }
    }
}

/// The result of `notify-test` on one channel.
pub fn test_channel(ch: &Channel, agent: &ureq::Agent) -> Result<(), String> {
    let now = SystemTime::now();
    let event = Event {
        worker: "master-pinger".into(),
        url: String::new(),
        transition: Transition::Test,
        error: None,
        at: now,
        since: None,
    };
    let req = request(&ch.kind, &Notice::new(&event, None));
    queue::send(agent, &req, ch.timeout).map_err(|f| describe(&ch.kind, &f))
}

/// `https://host[:port]/...`: scheme and host of `url`, nothing that could be a secret.
pub fn shown_host(url: &str) -> String {
    match crate::target_url::parse(url) {
        Ok(p) => match p.port {
            Some(port) => format!("{}://{}:{port}/...", p.scheme, p.host),
            None => format!("{}://{}/...", p.scheme, p.host),
        },
        Err(_) => "(invalid URL)".to_string(),
    }
}

/// A base URL joined with a path, without doubling the slash (`https://x/` + `/message`).
pub fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// A provider's own explanation of a refusal, from the JSON error body its API documents, made
/// safe to print: one line, at most 200 characters, and never quoting a secret of the channel.
pub fn explain(text: Option<&str>, secrets: &[&str]) -> Option<String> {
    let mut t: String = text?.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.is_empty() {
        return None;
    }
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        t = t.replace(s, "REDACTED");
    }
    if t.chars().count() > 200 {
        t = t.chars().take(199).collect::<String>() + "…";
    }
    Some(t)
}

/// Events, notices and a channel for the providers' and the alerter's tests.
#[cfg(test)]
pub(crate) mod testdata {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// A webhook URL whose path is its credential.
    pub const HOOK: &str = "https://hooks.example/T0/secret-path";

    /// The SPEC's example: `rag` down with status 503 since 10:50, now 10:55.
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

    pub fn notice(t: Transition) -> Notice {
        Notice::new(&event(t), None)
    }

    /// A json channel to `HOOK` with these thresholds.
    pub fn channel(name: &str, failure: u32, workers: Option<&[&str]>) -> Channel {
        Channel {
            name: name.into(),
            field: "alerts".into(),
            kind: Kind::Json {
                webhook_url: HOOK.into(),
            },
            failure_threshold: failure,
            success_threshold: 1,
            send_on_resolved: true,
            timeout: Duration::from_secs(1),
            retry_backoff: Duration::ZERO,
            workers: workers.map(|w| w.iter().map(|s| s.to_string()).collect()),
            cert_expiry_days: vec![14, 7, 3, 1],
        }
    }

    /// The request's body as JSON, after checking what every webhook provider sends.
    pub fn body_of(r: &Request) -> serde_json::Value {
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, HOOK);
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
        let mut r = json::request(&notice(Transition::Down), HOOK);
        r.headers.push(("Authorization".into(), "Bearer hf_secret".into()));
        let shown = format!("{r:?} {:?}", channel("c", 1, None));
        assert!(
            !shown.contains("secret-path") && !shown.contains("hf_secret"),
            "{shown}"
        );
        assert!(shown.contains("Authorization"), "{shown}");
    }

    #[test]
    fn each_kind_has_its_provider() {
        let n = notice(Transition::Down);
        let hook = |k: fn(String) -> Kind| body_of(&request(&k(HOOK.into()), &n));
        assert!(hook(|u| Kind::Json { webhook_url: u }).get("state").is_some());
        assert!(hook(|u| Kind::Discord { webhook_url: u }).get("content").is_some());
        assert!(hook(|u| Kind::Slack { webhook_url: u }).get("text").is_some());
        let tg = Kind::Telegram(telegram::Settings {
            bot_token: "1:x".into(),
            chat_id: "5".into(),
            api_url: "https://api.telegram.org".into(),
        });
        assert!(request(&tg, &n).url.ends_with("/bot1:x/sendMessage"));
        assert_eq!(shown(&tg), "https://api.telegram.org/botREDACTED/sendMessage");
        assert_eq!(
            shown(&Kind::Json {
                webhook_url: HOOK.into()
            }),
            "https://hooks.example/..."
        );
    }

    #[test]
    fn refusals_are_described_in_the_services_words_when_documented() {
        let tg = Kind::Telegram(telegram::Settings {
            bot_token: "1:x".into(),
            chat_id: "5".into(),
            api_url: "https://api.telegram.org".into(),
        });
        let body = r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#;
        let refused = Failure::Status(400, Some(body.into()));
        assert_eq!(describe(&tg, &refused), "status 400: Bad Request: chat not found");
        let json = Kind::Json {
            webhook_url: HOOK.into(),
        };
        assert_eq!(describe(&json, &refused), "status 400", "a webhook's body is not shown");
        assert_eq!(describe(&tg, &Failure::Status(502, None)), "status 502");
        assert_eq!(
            describe(&tg, &Failure::Transport("connection refused".into())),
            "connection refused"
        );
    }

    fn test_net() -> Net {
        Net::new(None, crate::proxy::Proxies::default())
    }

    #[test]
    fn cert_warnings_follow_each_channels_thresholds() {
        let waker = Arc::new(Waker::default());
        waker.stop();
        let mut off = channel("off", 1, None);
        off.cert_expiry_days = Vec::new();
        let mut early = channel("early", 1, None);
        early.cert_expiry_days = vec![30];
        let channels = [
            channel("default", 1, None),
            off,
            early,
            channel("only-b", 1, Some(&["b"])),
        ];
        let a = Alerter::start(&channels, None, &test_net(), waker).expect("start");
        let len = |i: usize| a.channels[i].queue.len();
        let t = target("a", true);
        let mut w = a.cert_warnings(&t);
        assert_eq!(w.0.len(), 3, "only-b does not speak for a");
        let now = SystemTime::now();
        let cert = |days: i64| CertInfo {
            expires_at: unix_secs(now) as i64 + days * 86_400 + 3600,
            verified: true,
        };
        a.observe_cert(&mut w, &t, cert(20), now);
        assert_eq!((len(0), len(1), len(2)), (0, 0, 1), "20 days: only the 30-day channel");
        a.observe_cert(&mut w, &t, cert(20), now);
        a.observe_cert(&mut w, &t, cert(5), now);
        assert_eq!(
            (len(0), len(1), len(2)),
            (1, 0, 1),
            "5 days: under 14 and 7 at once, one warning"
        );
        a.observe_cert(&mut w, &t, cert(5), now);
        assert_eq!((len(0), len(1), len(2)), (1, 0, 1));
        assert!(a.cert_warnings(&target("a", false)).0.is_empty(), "\"alerts\": false");
        let e = a.channels[0].queue.pop(&Waker::default());
        assert!(matches!(
            e.map(|e| e.transition),
            Some(Transition::CertExpiring { days_left: 5, .. })
        ));
    }

    fn target(name: &str, alerts: bool) -> Target {
        let mut t = crate::config::build(
            Some((
                "t.json",
                &format!(r#"{{"workers": [{{"name": "{name}", "url": "https://x.example/"}}]}}"#),
            )),
            &Default::default(),
            &Default::default(),
        )
        .expect("valid")
        .workers
        .remove(0);
        t.alerts = alerts;
        t
    }

    #[test]
    fn each_channel_keeps_its_own_streak_and_workers() {
        let waker = Arc::new(Waker::default());
        waker.stop();
        let channels = [
            channel("fast", 1, None),
            channel("slow", 3, None),
            channel("only-b", 1, Some(&["b"])),
        ];
        let a = Alerter::start(&channels, None, &test_net(), waker).expect("start");
        let len = |i: usize| a.channels[i].queue.len();
        let t = target("a", true);
        let mut s = a.streaks(&t, 0, &[]);
        assert_eq!(s.0.len(), 2, "only-b does not speak for a");
        let now = SystemTime::now();
        a.observe(&mut s, &t, false, Some("status 503"), now);
        assert_eq!((len(0), len(1)), (1, 0));
        a.observe(&mut s, &t, false, Some("status 503"), now);
        a.observe(&mut s, &t, false, Some("status 503"), now);
        assert_eq!((len(0), len(1)), (1, 1));
        a.observe(&mut s, &t, true, None, now);
        assert_eq!((len(0), len(1), len(2)), (2, 2, 0));
        assert!(a.streaks(&target("a", false), 0, &[]).0.is_empty(), "\"alerts\": false");
        assert_eq!(a.streaks(&target("b", true), 0, &[]).0.len(), 3);
    }

    #[test]
    fn recoveries_are_dropped_when_not_announced_and_resumed_streaks_recover() {
        let waker = Arc::new(Waker::default());
        waker.stop();
        let mut quiet = channel("quiet", 2, None);
        quiet.send_on_resolved = false;
        let a = Alerter::start(&[quiet, channel("loud", 2, None)], None, &test_net(), waker).expect("start");
        let t = target("a", true);
        let mut s = a.streaks(&t, 2, &[]);
        a.observe(&mut s, &t, true, None, SystemTime::now());
        assert_eq!((a.channels[0].queue.len(), a.channels[1].queue.len()), (0, 1));
    }
}
