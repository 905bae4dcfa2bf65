//! Telling people that a worker went down or came back, through every configured channel.
//!
//! Each worker thread owns one `Streak` per channel that speaks for it (`Alerter::streaks`) and
//! hands every check result to `Alerter::observe`, which only counts and, on a transition,
//! pushes an `Event` onto that channel's bounded queue: no lock is held and no I/O is done on the
//! worker's thread. Each channel has its own queue and sender thread (`queue`), so a hanging
//! service delays nobody else. A provider (`discord`, `slack`, `json`, `webhook`, `telegram`,
//! `ntfy`, `gotify`, `pushover`) turns the event's rendered `message::Notice` into a `Request`
//! value without any I/O; only the queue sends.

mod degraded;
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
use crate::shutdown::{Shutdown, Thread, Waker};
use crate::streak::{ChannelStreak, Streak, Thresholds, Transition};
use crate::timefmt::unix_secs;
use crate::tls::expiry::{CertInfo, Warned, days_left, should_warn};
pub use degraded::DegradedStreaks;
use message::Notice;
use queue::{Failure, Queue};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(test)]
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

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
    channels: Vec<(String, Arc<Tally>)>,
}

/// One channel's deliveries: sent, and failed after the retries.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    failed: AtomicU64,
}

impl Tally {
    fn add(&self, sent: bool) {
        if sent { &self.sent } else { &self.failed }.fetch_add(1, Ordering::Relaxed);
    }
}

impl Counts {
    /// `(channel, sent, failed)` for each channel, in configuration order.
    pub fn snapshot(&self) -> Vec<(String, u64, u64)> {
        self.channels
            .iter()
            .map(|(n, t)| {
                (
                    n.clone(),
                    t.sent.load(Ordering::Relaxed),
                    t.failed.load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

/// One running channel: when to speak, where to queue, and its sender thread's waker.
struct Running {
    /// Never reused: a worker's streaks name the channel they count for by it.
    id: u64,
    /// The settings and status page it was started with: a reload that changes neither keeps
    /// this channel, its queue and its thread.
    channel: Channel,
    page: Option<String>,
    thresholds: Thresholds,
    queue: Arc<Queue<Event>>,
    waker: Arc<Waker>,
    tally: Arc<Tally>,
}

impl Running {
    fn speaks_for(&self, target: &Target) -> bool {
        target.alerts && self.channel.workers.as_ref().is_none_or(|w| w.contains(&target.name))
    }

    /// Stops its thread; what it had queued is handed back.
    fn stop(&self, shutdown: &Shutdown) -> Vec<Event> {
        self.waker.stop();
        shutdown.forget(&self.waker);
        self.queue.drain()
    }
}

/// A worker's streak on each channel that speaks for it (by channel id), owned by the worker's
/// thread.
#[derive(Debug, Default)]
pub struct Streaks(Vec<(u64, Streak)>);

/// What a worker has warned each of its channels about its server's certificate (by channel
/// id), owned by the worker's thread.
#[derive(Debug, Default)]
pub struct CertWarnings(Vec<(u64, Warned)>);

/// The channels' front door: workers hand it check results and it never blocks.
pub struct Alerter {
    channels: Vec<Arc<Running>>,
    counts: Arc<Counts>,
}

static NEXT_CHANNEL_ID: AtomicU64 = AtomicU64::new(0);

impl Alerter {
    /// Starts one sender thread per channel, each stopped by a waker of `shutdown`'s. Each
    /// channel's secrets live only in its thread.
    pub fn start(
        channels: &[Channel],
        status_page: Option<String>,
        net: &Net,
        shutdown: &Shutdown,
    ) -> std::io::Result<Arc<Alerter>> {
        Alerter::replace(None, channels, status_page, net, shutdown)
    }

    /// The channels of a reloaded configuration. A channel whose settings and status page did
    /// not change is kept as it runs (queue, thread, counts); a changed one starts again with
    /// the alerts its predecessor had queued; a removed one stops, and its queued alerts are
    /// logged as dropped. `rebuild`: every channel starts again (the trusted certificates
    /// changed). On an error nothing of `self` has changed.
    pub fn reload(
        &self,
        channels: &[Channel],
        status_page: Option<String>,
        net: &Net,
        shutdown: &Shutdown,
        rebuild: bool,
        retired: &mut Vec<Thread>,
    ) -> std::io::Result<Arc<Alerter>> {
        let old = (!rebuild).then_some(self);
        let new = Alerter::replace(old, channels, status_page, net, shutdown)?;
        for r in &self.channels {
            if new.channels.iter().any(|n| Arc::ptr_eq(n, r)) {
                continue;
            }
            let queued = r.stop(shutdown);
            retired.extend(r.queue.take_thread());
            let name = &r.channel.name;
            match new.channels.iter().find(|n| n.channel.name == *name) {
                Some(next) => queued.into_iter().for_each(|e| next.queue.push(e)),
                None if queued.is_empty() => {}
                None => log::warn!(
                    "alert channel {name} removed by the reload: {} queued alert(s) dropped",
                    queued.len()
                ),
            }
        }
        Ok(new)
    }

    fn replace(
        old: Option<&Alerter>,
        channels: &[Channel],
        page: Option<String>,
        net: &Net,
        shutdown: &Shutdown,
    ) -> std::io::Result<Arc<Alerter>> {
        let mut running: Vec<Arc<Running>> = Vec::with_capacity(channels.len());
        let mut started: Vec<Arc<Running>> = Vec::new();
        for ch in channels {
            let kept = old.and_then(|o| o.channels.iter().find(|r| r.channel == *ch && r.page == page));
            let r = match kept {
                Some(r) => Arc::clone(r),
                None => match start_channel(ch, page.clone(), net, shutdown) {
                    Ok(r) => {
                        // The channel's totals carry over, so `pinger_alerts_total` never falls.
                        if let Some(was) = old.and_then(|o| o.channels.iter().find(|r| r.channel.name == ch.name)) {
                            r.tally
                                .sent
                                .fetch_add(was.tally.sent.load(Ordering::Relaxed), Ordering::Relaxed);
                            r.tally
                                .failed
                                .fetch_add(was.tally.failed.load(Ordering::Relaxed), Ordering::Relaxed);
                        }
                        started.push(Arc::clone(&r));
                        r
                    }
                    Err(e) => {
                        for r in &started {
                            r.stop(shutdown);
                        }
                        return Err(e);
                    }
                },
            };
            running.push(r);
        }
        let counts = Counts {
            channels: running
                .iter()
                .map(|r| (r.channel.name.clone(), Arc::clone(&r.tally)))
                .collect(),
        };
        Ok(Arc::new(Alerter {
            channels: running,
            counts: Arc::new(counts),
        }))
    }

    /// Stops every channel (the configuration has none left), logging what was still queued;
    /// their threads go to `retired`.
    pub fn stop(&self, shutdown: &Shutdown, retired: &mut Vec<Thread>) {
        for r in &self.channels {
            let queued = r.stop(shutdown);
            retired.extend(r.queue.take_thread());
            if !queued.is_empty() {
                log::warn!(
                    "alert channel {} removed by the reload: {} queued alert(s) dropped",
                    r.channel.name,
                    queued.len()
                );
            }
        }
    }

    /// The channels' sender threads, to be joined once they are stopped.
    pub fn threads(&self) -> Vec<Thread> {
        self.channels.iter().filter_map(|r| r.queue.take_thread()).collect()
    }

    pub fn counts(&self) -> Arc<Counts> {
        Arc::clone(&self.counts)
    }

    /// The streaks of `target` on the channels that speak for it (none with `"alerts": false`):
    /// the one `saved` for a channel of the same name (the state keeps them, so a reload and a
    /// restart carry them on), else resumed from its run of failures, so a recovery after a
    /// restart is still announced.
    pub fn streaks(&self, target: &Target, consecutive_failures: u32, saved: &[ChannelStreak]) -> Streaks {
        Streaks(
            self.speaking_for(target)
                .map(|c| {
                    let streak = match saved.iter().find(|s| s.channel == c.channel.name) {
                        Some(s) => Streak::from_saved(s),
                        None => Streak::resume(consecutive_failures, c.thresholds.failure),
                    };
                    (c.id, streak)
                })
                .collect(),
        )
    }

    /// The streaks as the state keeps them, by channel name.
    pub fn saved_streaks(&self, streaks: &Streaks) -> Vec<ChannelStreak> {
        self.saved_by_name(&streaks.0)
    }

    /// Streaks held by channel id, as the state keeps them: by channel name.
    fn saved_by_name(&self, streaks: &[(u64, Streak)]) -> Vec<ChannelStreak> {
        streaks
            .iter()
            .filter_map(|(id, s)| Some(s.saved(&self.channel(*id)?.channel.name)))
            .collect()
    }

    /// Waits until every queued alert has been handed to its channel (delivered, or given up
    /// after its retries), or until `deadline`; true when all were.
    pub fn wait_delivered(&self, deadline: std::time::Instant) -> bool {
        self.channels.iter().all(|c| c.queue.wait_idle(deadline))
    }

    /// The certificate-warning state of `target` on the channels that speak for it, from what
    /// was warned before (`saved`, by channel name: kept in the state file).
    pub fn cert_warnings(&self, target: &Target, saved: &[(String, Warned)]) -> CertWarnings {
        CertWarnings(
            self.speaking_for(target)
                .map(|c| {
                    let w = saved.iter().find(|(n, _)| *n == c.channel.name).map(|(_, w)| w.clone());
                    (c.id, w.unwrap_or_default())
                })
                .collect(),
        )
    }

    /// What `warnings` says was warned, by channel name, for the state file.
    pub fn warned_by_name(&self, warnings: &CertWarnings) -> Vec<(String, Warned)> {
        warnings
            .0
            .iter()
            .filter_map(|(id, w)| {
                let c = self.channel(*id)?;
                w.warned().then(|| (c.channel.name.clone(), w.clone()))
            })
            .collect()
    }

    fn channel(&self, id: u64) -> Option<&Running> {
        self.channels.iter().find(|c| c.id == id).map(|c| &**c)
    }

    /// The channels that speak for `target` (none with `"alerts": false`).
    fn speaking_for<'a>(&'a self, target: &'a Target) -> impl Iterator<Item = &'a Running> {
        self.channels.iter().map(|c| &**c).filter(move |c| c.speaks_for(target))
    }

    /// Takes one reading of the server's certificate and queues a warning on each channel whose
    /// `cert_expiry_days` it newly fell under (see `tls::expiry::should_warn`). Never blocks.
    /// True when a warning was queued (what was warned changed).
    pub fn observe_cert(&self, warnings: &mut CertWarnings, target: &Target, cert: CertInfo, at: SystemTime) -> bool {
        let days_left = days_left(cert.expires_at, unix_secs(at) as i64);
        let mut warned = false;
        for (id, w) in &mut warnings.0 {
            let Some(ch) = self.channel(*id) else { continue };
            if !should_warn(&ch.channel.cert_expiry_days, cert.expires_at, days_left, w) {
                continue;
            }
            warned = true;
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
        warned
    }

    /// A failing worker's maintenance window has ended: down at once on every channel where it
    /// is not down yet, whatever the channel's threshold.
    pub fn observe_now(&self, streaks: &mut Streaks, target: &Target, error: Option<&str>, at: SystemTime) {
        for (id, streak) in &mut streaks.0 {
            let Some(ch) = self.channel(*id) else { continue };
            let at_once = Thresholds {
                failure: 1,
                success: ch.thresholds.success,
            };
            if streak.observe(false, at, &at_once) != Some(Transition::Down) {
                continue;
            }
            ch.queue.push(Event {
                worker: target.name.clone(),
                url: target.display_url.clone(),
                transition: Transition::Down,
                error: error.map(str::to_string),
                at,
                since: streak.down_since,
            });
        }
    }

    /// Counts one check result on each of the worker's channels and queues an event on each
    /// channel whose threshold it crossed. Only arithmetic and queue pushes: never blocks.
    pub fn observe(&self, streaks: &mut Streaks, target: &Target, ok: bool, error: Option<&str>, at: SystemTime) {
        for (id, streak) in &mut streaks.0 {
            let Some(ch) = self.channel(*id) else { continue };
            let Some(transition) = streak.observe(ok, at, &ch.thresholds) else {
                continue;
            };
            if transition == Transition::Up && !ch.channel.send_on_resolved {
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

/// Starts one channel's queue and sender thread.
fn start_channel(ch: &Channel, page: Option<String>, net: &Net, shutdown: &Shutdown) -> std::io::Result<Arc<Running>> {
    let id = NEXT_CHANNEL_ID.fetch_add(1, Ordering::Relaxed);
    let (kind, name, link) = (ch.kind.clone(), ch.name.clone(), page.clone());
    let where_to = format!("via {name} ({})", shown(&kind));
    let delivery = queue::Delivery {
        agent: net.agent_for(base_url(&ch.kind)),
        timeout: ch.timeout,
        backoff: ch.retry_backoff,
    };
    let tally = Arc::new(Tally::default());
    let counted = Arc::clone(&tally);
    let waker = shutdown.waker();
    let started = queue::start(
        &format!("alert-{id}"),
        format!("alert channel {name}"),
        Arc::clone(&waker),
        move |event: Event, waker: &Waker| {
            let notice = Notice::new(&event, link.as_deref());
            let what = format!("alert for {} ({}) {where_to}", event.worker, event.transition.state());
            let sent = delivery.deliver(&request(&kind, &notice), waker, &what, |f| describe(&kind, f));
            counted.add(sent);
        },
    );
    let queue = match started {
        Ok(q) => q,
        Err(e) => {
            shutdown.forget(&waker);
            return Err(e);
        }
    };
    Ok(Arc::new(Running {
        id,
        channel: ch.clone(),
        page,
        thresholds: Thresholds {
            failure: ch.failure_threshold,
            success: ch.success_threshold,
        },
        queue,
        waker,
        tally,
    }))
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
            degraded: false,
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
        let tg = Kind::Telegram(crate::config::channel::telegram::Settings {
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
        let tg = Kind::Telegram(crate::config::channel::telegram::Settings {
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

    /// A shutdown already triggered: channels start with their thread stopped, so what they
    /// queue stays in their queue for the test to count.
    fn stopped() -> Shutdown {
        let sd = Shutdown::default();
        sd.trigger();
        sd
    }

    fn test_net() -> Net {
        Net::new(None, crate::config::proxy::Proxies::default())
    }

    #[test]
    fn cert_warnings_follow_each_channels_thresholds() {
        let sd = stopped();
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
        let a = Alerter::start(&channels, None, &test_net(), &sd).expect("start");
        let len = |i: usize| a.channels[i].queue.len();
        let t = target("a", true);
        let mut w = a.cert_warnings(&t, &[]);
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
        assert!(
            a.cert_warnings(&target("a", false), &[]).0.is_empty(),
            "\"alerts\": false"
        );
        let e = a.channels[0].queue.drain().into_iter().next();
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
        let sd = stopped();
        let channels = [
            channel("fast", 1, None),
            channel("slow", 3, None),
            channel("only-b", 1, Some(&["b"])),
        ];
        let a = Alerter::start(&channels, None, &test_net(), &sd).expect("start");
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
        let sd = stopped();
        let mut quiet = channel("quiet", 2, None);
        quiet.send_on_resolved = false;
        let a = Alerter::start(&[quiet, channel("loud", 2, None)], None, &test_net(), &sd).expect("start");
        let t = target("a", true);
        let mut s = a.streaks(&t, 2, &[]);
        a.observe(&mut s, &t, true, None, SystemTime::now());
        assert_eq!((a.channels[0].queue.len(), a.channels[1].queue.len()), (0, 1));
    }

    #[test]
    fn a_reload_keeps_unchanged_channels_moves_a_changed_ones_queue_and_drops_a_removed_ones() {
        let sd = stopped();
        let net = test_net();
        let (keep, change, gone) = (
            channel("keep", 2, None),
            channel("change", 1, None),
            channel("gone", 1, None),
        );
        let a = Alerter::start(&[keep.clone(), change.clone(), gone], None, &net, &sd).expect("start");
        let t = target("a", true);
        let mut s = a.streaks(&t, 0, &[]);
        a.observe(&mut s, &t, false, Some("status 503"), SystemTime::now());
        let queued = |a: &Alerter, name: &str| {
            a.channels
                .iter()
                .find(|c| c.channel.name == name)
                .map(|c| c.queue.len())
        };
        assert_eq!(
            (queued(&a, "keep"), queued(&a, "change"), queued(&a, "gone")),
            (Some(0), Some(1), Some(1))
        );
        a.channels[0].tally.add(true);
        a.channels[1].tally.add(false);

        let mut changed = change.clone();
        changed.timeout = Duration::from_secs(2);
        let b = a
            .reload(
                &[changed, keep, channel("new", 1, None)],
                None,
                &net,
                &sd,
                false,
                &mut Vec::new(),
            )
            .expect("reload");
        assert!(
            Arc::ptr_eq(&a.channels[0], &b.channels[1]),
            "keep runs on: same queue and thread"
        );
        assert!(!Arc::ptr_eq(&a.channels[1], &b.channels[0]));
        assert_eq!(
            queued(&b, "change"),
            Some(1),
            "the changed channel's queued alert moved over"
        );
        assert_eq!(queued(&b, "gone"), None);
        assert_eq!(a.channels[2].queue.len(), 0, "gone's queue was dropped");
        assert_eq!(
            b.counts().snapshot(),
            [("change".into(), 0, 1), ("keep".into(), 1, 0), ("new".into(), 0, 0)],
            "totals carry over, in the new order"
        );

        // keep's streak counted one failure of two before the reload and goes on from there
        // (a worker finds it in the state, by channel name).
        let mut s = b.streaks(&t, 0, &a.saved_streaks(&s));
        b.observe(&mut s, &t, false, Some("status 503"), SystemTime::now());
        assert_eq!(
            queued(&b, "keep"),
            Some(1),
            "down at its second failure, across the reload"
        );

        let c = b
            .reload(&[channel("keep", 2, None)], None, &net, &sd, true, &mut Vec::new())
            .expect("rebuild");
        assert!(
            !Arc::ptr_eq(&b.channels[1], &c.channels[0]),
            "rebuild starts every channel again"
        );
        assert_eq!(queued(&c, "keep"), Some(1), "with its queue");
    }
}
