//! The HTTP face: routing (a pure function from request to `Reply`) and the tiny_http loop.
//! Handlers copy what they need out of the state (`snapshot`) and render after the lock is gone.

pub mod badge;
pub mod cache;
pub mod guard;
pub mod html;
pub mod json;
pub mod metrics;
pub mod push;
pub mod send;
pub mod server;
pub mod site;
pub mod stream;
#[cfg(test)]
pub mod testdata;
pub mod wire;

use crate::state::State;
use cache::{Cache, Key, Rendered};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// History entries `/status` returns when `?history=` is not given.
pub const DEFAULT_STATUS_HISTORY: usize = 20;

/// A response body: static text, bytes shared with the cache, bytes of its own, or a `/status`
/// document written to the connection as it is produced (`stream.rs`).
#[derive(Debug, Clone)]
pub enum Body {
    Static(&'static [u8]),
    Shared(Arc<[u8]>),
    Owned(Vec<u8>),
    Stream(StatusQuery),
}

impl AsRef<[u8]> for Body {
    /// The bytes; none for a stream, which has none until it is written.
    fn as_ref(&self) -> &[u8] {
        match self {
            Body::Static(b) => b,
            Body::Shared(b) => b,
            Body::Owned(b) => b,
            Body::Stream(_) => b"",
        }
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        self.as_ref() == other.as_ref()
    }
}

impl Eq for Body {}

/// What to send back; turned into a tiny_http response by the server loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Body,
    pub allow: Option<&'static str>,
    pub etag: Option<String>,
    /// The body is gzip-compressed (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// The answer depends on `Accept-Encoding` (`Vary: Accept-Encoding`).
    pub vary: bool,
    /// Seconds after which a refused request may be tried again (`Retry-After`).
    pub retry_after: Option<u32>,
    /// The connection ends after this answer (`Connection: close`): the request's body was left
    /// unread, so nothing after it on the connection can be read as a request.
    pub close: bool,
}

impl Reply {
    fn new(status: u16, content_type: &'static str, body: Body) -> Reply {
        Reply {
            status,
            content_type,
            body,
            allow: None,
            etag: None,
            gzip: false,
            vary: false,
            retry_after: None,
            close: false,
        }
    }

    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply::new(status, "application/json", Body::Owned(body.into()))
    }

    pub fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, serde_json::json!({ "error": message }).to_string())
    }

    /// 503 for a request that found too many large responses under way; worth a retry soon.
    pub fn busy() -> Reply {
        Reply {
            retry_after: Some(1),
            ..Reply::error(503, "too many large responses under way; try again in a second")
        }
    }
}

/// What the admin endpoints ask of the running workers (the fleet; a fake in tests).
pub trait Control: Send + Sync {
    /// `None`: no such worker; `Some(false)`: it is paused, so no check was asked for.
    fn check_now(&self, name: &str) -> Option<bool>;
    /// False when there is no such worker.
    fn set_paused(&self, name: &str, paused: bool) -> bool;
    /// Deliveries per alert channel (none without channels).
    fn alert_counts(&self) -> Arc<crate::alert::Counts>;
    /// Where the reports of the push worker `name` go (`None`: no such push worker here).
    fn push_inbox(&self, _name: &str) -> Option<Arc<crate::heartbeat::Inbox>> {
        None
    }
    /// True while the fleet has not started yet (the remote copy is being read): admin calls
    /// and `/metrics` get 503 rather than a 404 for a worker that will be there in a moment or
    /// counters that are not restored yet.
    fn starting(&self) -> bool {
        false
    }
}

impl Control for crate::fleet::Fleet {
    fn check_now(&self, name: &str) -> Option<bool> {
        crate::fleet::Fleet::check_now(self, name)
    }

    fn set_paused(&self, name: &str, paused: bool) -> bool {
        crate::fleet::Fleet::set_paused(self, name, paused)
    }

    fn alert_counts(&self) -> Arc<crate::alert::Counts> {
        crate::fleet::Fleet::alert_counts(self)
    }

    fn push_inbox(&self, name: &str) -> Option<Arc<crate::heartbeat::Inbox>> {
        self.board().get(name)
    }
}

/// For tests that serve no admin endpoint: knows no worker.
#[cfg(test)]
pub struct NoFleet;

#[cfg(test)]
impl Control for NoFleet {
    fn check_now(&self, _: &str) -> Option<bool> {
        None
    }

    fn set_paused(&self, _: &str, _: bool) -> bool {
        false
    }

    fn alert_counts(&self) -> Arc<crate::alert::Counts> {
        Arc::default()
    }
}

/// The parts of a request that routing looks at, borrowed from it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub authorization: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub accept_encoding: Option<&'a str>,
}

impl<'a> Request<'a> {
    pub fn new(method: &'a str, url: &'a str) -> Request<'a> {
        Request {
            method,
            url,
            ..Request::default()
        }
    }
}

/// What the handlers need: the state, the running workers, the admin token and the rendered
/// bodies.
pub struct App {
    pub state: Arc<State>,
    pub fleet: Arc<dyn Control>,
    pub admin_token: Option<String>,
    pub cache: Cache,
}

const GET: &str = "GET, HEAD";

/// Compares secrets in time that depends only on their lengths, not on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

pub fn route(app: &App, req: &Request) -> Reply {
    let (method, url) = (req.method, req.url);
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let is_get = method == "GET" || method == "HEAD";
    let wrong_method = |allow: &'static str| Reply {
        allow: Some(allow),
        ..Reply::error(405, &format!("method {method} is not allowed here; use {allow}"))
    };
    if let Some(rest) = path.strip_prefix("/api/workers/") {
        let (name, action) = rest.rsplit_once('/').unwrap_or((rest, ""));
        return match action {
            "check" | "pause" | "resume" if !name.contains('/') && !name.is_empty() => {
                admin(app, method, name, action, req.authorization)
            }
            _ => Reply::error(404, "not found"),
        };
    }
    let known = matches!(path, "/" | "/health" | "/healthz" | "/status" | "/metrics")
        || (path.starts_with("/badge/") && path.ends_with(".svg"));
    if !known {
        return Reply::error(404, "not found");
    }
    if !is_get {
        return wrong_method(GET);
    }
    match path {
        "/health" => Reply::new(200, "application/json", Body::Static(br#"{"status":"alive"}"#)),
        "/healthz" => Reply::new(200, "text/plain; charset=utf-8", Body::Static(b"ok")),
        "/" => {
            let version = app.state.version();
            if let Some(r) = not_modified(req, version, &Key::Page) {
                return r;
            }
            let r = cached(app, req, &Key::Page, version, || {
                Some(html::render(&app.state.snapshot(html::BAR_CELLS, SystemTime::now())).into_bytes())
            });
            r.map_or_else(
                || Reply::error(500, "no page"),
                |r| conditional(req, &r, "text/html; charset=utf-8", true),
            )
        }
        "/metrics" => {
            // Counters not restored yet would read as a reset to Prometheus, and their return as
            // a burst of checks and failures: no scrape until they are.
            if app.fleet.starting() {
                return starting();
            }
            let counts = app.fleet.alert_counts().snapshot();
            // Deliveries are counted outside the state: they change the body too. Both only
            // grow, so their sum changes whenever either does.
            let version = app.state.version() + counts.iter().map(|(_, sent, failed)| sent + failed).sum::<u64>();
            let r = cached(app, req, &Key::Metrics, version, || {
                Some(metrics::render(&app.state.snapshot(0, SystemTime::now()), &counts).into_bytes())
            });
            r.map_or_else(
                || Reply::error(500, "no metrics"),
                |r| conditional(req, &r, metrics::CONTENT_TYPE, false),
            )
        }
        "/status" => match status_query(query) {
            Ok(q) => status(app, req, q),
            Err(m) => Reply::error(400, &m),
        },
        _ => {
            let name = &path["/badge/".len()..path.len() - ".svg".len()];
            let snap = app.state.snapshot(0, SystemTime::now());
            match snap.find(name) {
                Some(w) => Reply::new(200, "image/svg+xml", Body::Owned(badge::render(w).into_bytes())),
                None => Reply::error(404, &format!("no worker named {:?}", html::escape(name))),
            }
        }
    }
}

/// The cached body for `key`, rendered when it is stale (`None` when `render` declines).
/// `version` must be read before `render` reads the state: a change made while rendering makes
/// the next request render again.
fn cached(
    app: &App,
    req: &Request,
    key: &Key,
    version: u64,
    render: impl FnOnce() -> Option<Vec<u8>>,
) -> Option<Arc<Rendered>> {
    let gzip = req.accept_encoding.is_some_and(accepts_gzip);
    app.cache.get(key, version, Instant::now(), gzip, render)
}

/// 304 for a client that holds the body of `key` at the state's current `version`, without any
/// render: the tag says which version a body shows.
fn not_modified(req: &Request, version: u64, key: &Key) -> Option<Reply> {
    let given = req.if_none_match?;
    let tag = cache::tag(version, key);
    cache::tag_matches(&tag, given).then(|| {
        let gzip = req.accept_encoding.is_some_and(accepts_gzip) && given.contains(".gz\"");
        Reply {
            etag: Some(cache::quote(&tag, gzip)),
            vary: true,
            ..Reply::new(304, "application/json", Body::Static(b""))
        }
    })
}

/// Turns a cached body into the reply this request wants: 304 when the client has it, gzip when
/// the client takes it.
fn conditional(req: &Request, r: &Rendered, content_type: &'static str, with_etag: bool) -> Reply {
    let gzip = if req.accept_encoding.is_some_and(accepts_gzip) {
        r.gzip()
    } else {
        None
    };
    let etag = with_etag.then(|| r.etag(gzip.is_some()));
    let vary = r.body.len() >= cache::GZIP_MIN;
    if with_etag && req.if_none_match.is_some_and(|v| r.matches(v)) {
        return Reply {
            etag,
            vary,
            ..Reply::new(304, content_type, Body::Static(b""))
        };
    }
    Reply {
        etag,
        vary,
        gzip: gzip.is_some(),
        ..Reply::new(
            200,
            content_type,
            Body::Shared(gzip.unwrap_or_else(|| Arc::clone(&r.body))),
        )
    }
}

/// True when an `Accept-Encoding` value allows gzip (`gzip`, `x-gzip` or `*`, without `q=0`).
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f64>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        !refused && (coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") || coding == "*")
    })
}

/// The `/status` query: `history`, and the `worker` and `state` filters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatusQuery {
    pub history: usize,
    pub worker: Option<String>,
    pub state: Option<&'static str>,
}

/// The states `?state=` accepts.
pub const STATES: [&str; 6] = ["down", "up", "pending", "paused", "degraded", "maintenance"];

fn status_query(query: &str) -> Result<StatusQuery, String> {
    let mut q = StatusQuery {
        history: DEFAULT_STATUS_HISTORY,
        worker: None,
        state: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "history" => {
                q.history = v
                    .parse()
                    .map_err(|_| "history must be a whole number (the count of recent checks to return)".to_string())?;
            }
            "worker" => q.worker = Some(percent_decode(v)),
            "state" => {
                let v = percent_decode(v);
                q.state = Some(STATES.into_iter().find(|s| *s == v).ok_or_else(|| {
                    format!("state must be one of {}; got {:?}", STATES.join(", "), html::escape(&v))
                })?);
            }
            _ => {}
        }
    }
    Ok(q)
}

/// Decodes `%XX` escapes and `+`; a malformed escape is kept as it was.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|&b| (b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                // Two hex digits make at most 255.
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
            (b'+', _, _) => out.push(b' '),
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl StatusQuery {
    pub fn filter(&self) -> json::Filter<'_> {
        json::Filter {
            worker: self.worker.as_deref(),
            state: self.state,
        }
    }
}

/// `/status`: from the cache when it is small and read often (`?history=0` of the whole fleet or
/// of one state), else streamed (`stream.rs`), which costs one worker's share of memory however
/// large the fleet or the history asked for.
fn status(app: &App, req: &Request, mut q: StatusQuery) -> Reply {
    if let Some(name) = &q.worker {
        if app.state.slot_of(name).is_none() {
            return Reply::error(404, &format!("no worker named {:?}", html::escape(name)));
        }
    }
    // Asking for more than the configured history returns the same body: one variant.
    q.history = q.history.min(app.state.history_cap());
    let key = Key::Status {
        history: q.history,
        worker: q.worker.clone(),
        state: q.state,
    };
    let version = app.state.version();
    if let Some(r) = not_modified(req, version, &key) {
        return r;
    }
    // One worker's document is small but there are as many as workers: caching them would only
    // push the often-read bodies out.
    let too_large_at = app.cache.status_too_large_at.load(std::sync::atomic::Ordering::Relaxed);
    let targets = app.state.len();
    if q.history == 0 && q.worker.is_none() && (too_large_at == 0 || targets < too_large_at) {
        let r = cached(app, req, &key, version, || {
            let mut out = stream::Capped::new(cache::MAX_STATUS_BODY);
            match json::write_status(&mut out, &*app.state, 0, &q.filter(), SystemTime::now()) {
                Ok(()) => Some(out.into_inner()),
                Err(_) => {
                    app.cache
                        .status_too_large_at
                        .store(targets.max(1), std::sync::atomic::Ordering::Relaxed);
                    None
                }
            }
        });
        if let Some(r) = r {
            return conditional(req, &r, "application/json", true);
        }
    }
    let gzip = req.accept_encoding.is_some_and(accepts_gzip);
    Reply {
        etag: Some(cache::quote(&cache::tag(version, &key), gzip)),
        gzip,
        vary: true,
        ..Reply::new(200, "application/json", Body::Stream(q))
    }
}

/// 503 while the fleet starts (the remote copy is still being read), with a hint to retry.
pub fn starting() -> Reply {
    Reply {
        retry_after: Some(STARTING_RETRY_SECS),
        ..Reply::error(503, "starting: the saved state is still being read; try again shortly")
    }
}

/// `Retry-After` while starting: a start-up read that waits on a slow store.
const STARTING_RETRY_SECS: u32 = 5;

fn admin(app: &App, method: &str, name: &str, action: &str, authorization: Option<&str>) -> Reply {
    let Some(token) = &app.admin_token else {
        return Reply::error(404, "not found (admin endpoints are off: set PINGER_ADMIN_TOKEN)");
    };
    if method != "POST" {
        return Reply {
            allow: Some("POST"),
            ..Reply::error(405, &format!("method {method} is not allowed here; use POST"))
        };
    }
    let given = authorization.and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("");
    if !constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
        return Reply::error(401, "missing or wrong bearer token");
    }
    if app.fleet.starting() {
        return starting();
    }
    let unknown = || Reply::error(404, "no worker by that name");
    if action != "check" {
        if !app.fleet.set_paused(name, action == "pause") {
            return unknown();
        }
        let snap = app.state.snapshot(DEFAULT_STATUS_HISTORY, SystemTime::now());
        return match snap.find(name) {
            Some(w) => Reply::json(200, json::render_worker(w, snap.now)),
            None => unknown(),
        };
    }
    match app.fleet.check_now(name) {
        Some(true) => Reply::json(
            202,
            serde_json::json!({ "status": "accepted", "worker": name }).to_string(),
        ),
        Some(false) => Reply::error(409, "the worker is paused; resume it first"),
        None => unknown(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::TargetInfo;
    use std::sync::Mutex;

    /// Remembers what was asked of it; knows the worker "api".
    #[derive(Default)]
    struct FakeFleet {
        asked: Mutex<Vec<String>>,
        paused: Mutex<bool>,
    }

    impl Control for FakeFleet {
        fn check_now(&self, name: &str) -> Option<bool> {
            (name == "api").then(|| {
                self.asked.lock().unwrap().push(format!("check {name}"));
                !*self.paused.lock().unwrap()
            })
        }

        fn set_paused(&self, name: &str, paused: bool) -> bool {
            if name == "api" {
                *self.paused.lock().unwrap() = paused;
            }
            name == "api"
        }
        fn alert_counts(&self) -> Arc<crate::alert::Counts> {
            Arc::default()
        }
    }

    fn app(token: Option<&str>) -> App {
        app_with(token, Arc::new(FakeFleet::default()))
    }

    fn app_with(token: Option<&str>, fleet: Arc<FakeFleet>) -> App {
        let infos = vec![TargetInfo::test("api")];
        App {
            state: Arc::new(State::new(infos, 100, SystemTime::now())),
            fleet,
            admin_token: token.map(String::from),
            cache: Cache::default(),
        }
    }

    fn call(app: &App, method: &str, url: &str, authorization: Option<&str>) -> Reply {
        route(
            app,
            &Request {
                authorization,
                ..Request::new(method, url)
            },
        )
    }

    #[test]
    fn known_paths_and_methods() {
        let a = app(None);
        assert_eq!(call(&a, "GET", "/health", None).body.as_ref(), br#"{"status":"alive"}"#);
        assert_eq!(call(&a, "HEAD", "/healthz", None).body.as_ref(), b"ok");
        assert_eq!(call(&a, "GET", "/nope", None).status, 404);
        let r = call(&a, "POST", "/status", None);
        assert_eq!((r.status, r.allow), (405, Some("GET, HEAD")));
        assert!(String::from_utf8_lossy(r.body.as_ref()).contains("\"error\""));
        assert_eq!(call(&a, "GET", "/badge/api.svg", None).status, 200);
        assert_eq!(call(&a, "GET", "/badge/zzz.svg", None).status, 404);
        assert_eq!(call(&a, "GET", "/status?history=x", None).status, 400);
        assert_eq!(call(&a, "GET", "/status?history=0", None).status, 200);
    }

    #[test]
    fn admin_endpoint_auth() {
        assert_eq!(
            call(&app(None), "POST", "/api/workers/api/check", Some("Bearer t")).status,
            404
        );
        let fleet = Arc::new(FakeFleet::default());
        let a = app_with(Some("s3cret"), Arc::clone(&fleet));
        assert_eq!(call(&a, "POST", "/api/workers/api/check", None).status, 401);
        assert_eq!(
            call(&a, "POST", "/api/workers/api/check", Some("Bearer wrong")).status,
            401
        );
        assert_eq!(
            call(&a, "POST", "/api/workers/api/check", Some("Bearer s3cre")).status,
            401
        );
        assert_eq!(
            call(&a, "POST", "/api/workers/zzz/check", Some("Bearer s3cret")).status,
            404
        );
        assert_eq!(
            call(&a, "GET", "/api/workers/api/check", Some("Bearer s3cret")).status,
            405
        );
        assert_eq!(
            call(&a, "POST", "/api/workers/api/check", Some("Bearer s3cret")).status,
            202
        );
        assert_eq!(*fleet.asked.lock().unwrap(), ["check api"]);
    }

    #[test]
    fn pause_and_resume_follow_the_check_rules() {
        let ok = Some("Bearer s3cret");
        for action in ["pause", "resume"] {
            let path = format!("/api/workers/api/{action}");
            assert_eq!(call(&app(None), "POST", &path, ok).status, 404, "admin off");
            let a = app(Some("s3cret"));
            assert_eq!(call(&a, "POST", &path, None).status, 401);
            assert_eq!(call(&a, "POST", &path, Some("Bearer nope")).status, 401);
            assert_eq!(call(&a, "GET", &path, ok).status, 405);
            assert_eq!(call(&a, "POST", &format!("/api/workers/zzz/{action}"), ok).status, 404);
        }
        let fleet = Arc::new(FakeFleet::default());
        let a = app_with(Some("s3cret"), Arc::clone(&fleet));
        let r = call(&a, "POST", "/api/workers/api/pause", ok);
        assert_eq!(r.status, 200);
        let doc: serde_json::Value = serde_json::from_slice(r.body.as_ref()).unwrap();
        assert_eq!(doc["name"], "api");
        assert!(*fleet.paused.lock().unwrap());
        assert_eq!(call(&a, "POST", "/api/workers/api/check", ok).status, 409);
        assert_eq!(call(&a, "POST", "/api/workers/api/resume", ok).status, 200);
        assert!(!*fleet.paused.lock().unwrap());
        assert_eq!(call(&a, "POST", "/api/workers/api/stop", ok).status, 404);
        assert_eq!(call(&a, "POST", "/api/workers//pause", ok).status, 404);
    }

    /// The body a client would read, gzip decoded: a stream written out, else the bytes.
    fn read(app: &App, r: &Reply) -> Vec<u8> {
        use std::io::Read;
        let (wire, gzip) = match &r.body {
            Body::Stream(_) => {
                // HTTP/1.0: no chunks to take apart.
                let all = stream::write_body(app, r.clone(), (1, 0), Vec::new(), SystemTime::now()).unwrap();
                let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                let head = String::from_utf8_lossy(&all[..end]).to_string();
                (all[end..].to_vec(), head.contains("Content-Encoding: gzip"))
            }
            b => (b.as_ref().to_vec(), r.gzip),
        };
        if !gzip {
            return wire;
        }
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&wire[..]).read_to_end(&mut back).unwrap();
        back
    }

    fn json(app: &App, r: &Reply) -> serde_json::Value {
        serde_json::from_slice(&read(app, r)).unwrap()
    }

    fn with<'a>(app: &App, url: &'a str, f: impl FnOnce(&mut Request<'a>)) -> Reply {
        let mut req = Request::new("GET", url);
        f(&mut req);
        route(app, &req)
    }

    fn check(ok: bool) -> crate::state::CheckRecord {
        crate::state::CheckRecord {
            at_ms: crate::timefmt::unix_millis(SystemTime::now()),
            ok,
            status: Some(if ok { 200 } else { 503 }),
            latency_ms: 5,
            duration_ms: 5,
            attempts: 1,
            error: (!ok).then(|| "status 503".into()),
        }
    }

    #[test]
    fn etag_304_and_the_same_bytes_until_a_change() {
        let a = app(None);
        for url in ["/", "/status?history=0", "/status?history=0&state=up"] {
            let first = call(&a, "GET", url, None);
            let tag = first.etag.clone().expect("an ETag");
            let again = call(&a, "GET", url, None);
            assert_eq!((&again.etag, &again.body), (&first.etag, &first.body), "{url}");
            let (Body::Shared(x), Body::Shared(y)) = (&first.body, &again.body) else {
                panic!("{url}: not served from the cache")
            };
            assert!(Arc::ptr_eq(x, y), "{url}: the same bytes, not a copy");
            let not_modified = with(&a, url, |r| r.if_none_match = Some(&tag));
            assert_eq!(not_modified.status, 304, "{url}");
            assert!(not_modified.body.as_ref().is_empty());
            assert_eq!(not_modified.etag.as_deref(), Some(tag.as_str()));
            assert_eq!(with(&a, url, |r| r.if_none_match = Some("\"nope\"")).status, 200);
        }
        assert_eq!(
            call(&a, "GET", "/metrics", None).etag,
            None,
            "only /status and / carry one"
        );
    }

    #[test]
    fn large_status_bodies_are_streamed_and_small_ones_cached() {
        let a = app(None);
        a.state.record_check(0, check(false));
        for url in [
            "/status",
            "/status?history=5",
            "/status?worker=api&history=0",
            "/status?history=0&worker=api&state=down",
        ] {
            let r = call(&a, "GET", url, None);
            assert!(matches!(r.body, Body::Stream(_)), "{url}: streamed");
            assert_eq!((r.status, r.vary, r.gzip), (200, true, false), "{url}");
            assert_eq!(json(&a, &r)["workers"][0]["state"], "down", "{url}");
        }
        for url in ["/status?history=0", "/status?history=0&state=down", "/", "/metrics"] {
            assert!(
                matches!(call(&a, "GET", url, None).body, Body::Shared(_)),
                "{url}: cached"
            );
        }
    }

    #[test]
    fn a_stream_gzipped_decodes_to_the_plain_body() {
        let a = app(None);
        for i in 0..30 {
            a.state.record_check(0, check(i % 3 != 0));
        }
        let plain = call(&a, "GET", "/status?history=30", None);
        let z = with(&a, "/status?history=30", |r| r.accept_encoding = Some("gzip"));
        assert!(z.gzip && z.vary && !plain.gzip);
        assert_ne!(z.etag, plain.etag, "each encoding has its own tag");
        let (p, back) = (json(&a, &plain), json(&a, &z));
        let without_time = |mut v: serde_json::Value| {
            v["uptime_seconds"] = serde_json::Value::Null;
            v
        };
        assert_eq!(without_time(back), without_time(p.clone()));
        assert_eq!(p["workers"][0]["history"].as_array().unwrap().len(), 30);
        assert_eq!(p, json(&a, &plain), "the same document twice");
    }

    #[test]
    fn a_small_stream_is_sent_as_it_is_and_a_large_one_in_chunks() {
        let a = app(None);
        a.state.record_check(0, check(true));
        let wire = |url: &str| {
            let r = with(&a, url, |r| r.accept_encoding = Some("gzip"));
            let all = stream::write_body(&a, r, (1, 1), Vec::new(), SystemTime::now()).unwrap();
            String::from_utf8_lossy(&all).into_owned()
        };
        let small = wire("/status?worker=api&history=1");
        let (head, body) = small.split_once("\r\n\r\n").unwrap();
        assert!(head.ends_with(&format!("\r\nContent-Length: {}", body.len())), "{head}");
        assert!(body.len() < cache::GZIP_MIN && body.starts_with('{'), "{body}");
        for absent in ["Content-Encoding", "Transfer-Encoding", "Vary", ".gz"] {
            assert!(!head.contains(absent), "{absent} in {head}");
        }
        for _ in 0..20 {
            a.state.record_check(0, check(false));
        }
        let large = wire("/status?worker=api&history=20");
        let (head, _) = large.split_once("\r\n\r\n").unwrap();
        for present in [
            "Content-Encoding: gzip",
            "Transfer-Encoding: chunked",
            "Vary: Accept-Encoding",
            ".gz\"",
        ] {
            assert!(head.contains(present), "{present} in {head}");
        }
        assert!(!head.contains("Content-Length"));
        assert!(large.ends_with("\r\n0\r\n\r\n"));
    }

    #[test]
    fn a_304_needs_no_render() {
        let a = app(None);
        for url in ["/status", "/status?history=0", "/"] {
            let r = with(&a, url, |r| r.accept_encoding = Some("gzip"));
            let tag = r.etag.clone().unwrap();
            let version = a.state.version();
            // The tag names the state's version and the variant: no body needed to compare.
            let not_modified = with(&a, url, |r| r.if_none_match = Some(&tag));
            assert_eq!(not_modified.status, 304, "{url}");
            assert_eq!(not_modified.body.as_ref(), b"");
            assert_eq!(a.state.version(), version);
        }
        let tag = call(&a, "GET", "/status", None).etag.unwrap();
        a.state.record_check(0, check(true));
        let changed = with(&a, "/status", |r| r.if_none_match = Some(&tag));
        assert_eq!(changed.status, 200, "a stream shows the state now");
        // Nothing rendered: a fresh app answers a tag of its current version with a 304 at once.
        let fresh = app(None);
        let key = Key::Page;
        let tag = cache::quote(&cache::tag(fresh.state.version(), &key), false);
        assert_eq!(with(&fresh, "/", |r| r.if_none_match = Some(&tag)).status, 304);
        assert_eq!(
            fresh
                .cache
                .status_too_large_at
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }

    #[test]
    fn a_change_renders_again_after_a_second() {
        let a = app(None);
        let before = call(&a, "GET", "/status?history=0", None);
        a.state.record_check(0, check(false));
        let soon = call(&a, "GET", "/status?history=0", None);
        assert_eq!(soon.etag, before.etag, "at most one render a second");
        std::thread::sleep(cache::MIN_AGE);
        let after = call(&a, "GET", "/status?history=0", None);
        assert_ne!(after.etag, before.etag);
        let v: serde_json::Value = serde_json::from_slice(after.body.as_ref()).unwrap();
        assert_eq!(v["workers"][0]["state"], "down");
        let streamed = call(&a, "GET", "/status", None);
        assert_eq!(
            json(&a, &streamed)["workers"][0]["state"],
            "down",
            "a stream is always current"
        );
    }

    #[test]
    fn gzip_when_asked_and_the_body_is_large() {
        use std::io::Read;
        let a = app(None);
        let plain = call(&a, "GET", "/", None);
        assert!(plain.body.as_ref().len() > cache::GZIP_MIN);
        assert!(!plain.gzip && plain.vary);
        let z = with(&a, "/", |r| r.accept_encoding = Some("deflate, gzip;q=0.8, br"));
        assert!(z.gzip && z.vary);
        assert!(z.body.as_ref().len() < plain.body.as_ref().len() / 2);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(z.body.as_ref())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, plain.body.as_ref());
        assert_ne!(z.etag, plain.etag, "each encoding has its own tag");
        let tag = z.etag.clone().unwrap();
        let not_modified = with(&a, "/", |r| {
            r.accept_encoding = Some("gzip");
            r.if_none_match = Some(&tag);
        });
        assert_eq!(not_modified.status, 304);
        let small = with(&a, "/status?history=0&state=up", |r| r.accept_encoding = Some("gzip"));
        assert!(small.body.as_ref().len() < cache::GZIP_MIN && !small.gzip && !small.vary);
        assert!(call(&a, "GET", "/metrics", None).body.as_ref().len() > cache::GZIP_MIN);
        assert!(with(&a, "/metrics", |r| r.accept_encoding = Some("gzip")).gzip);
    }

    #[test]
    fn accept_encoding_forms() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("gzip, deflate, br"));
        assert!(accepts_gzip("br;q=1.0, GZIP;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(accepts_gzip("x-gzip"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("deflate, br"));
        assert!(!accepts_gzip(""));
        assert!(!accepts_gzip("gzipper"));
    }

    #[test]
    fn status_filters() {
        let a = app(None);
        a.state.record_check(0, check(true));
        let names = |url: &str| {
            let r = call(&a, "GET", url, None);
            assert_eq!(r.status, 200, "{url}");
            let v = json(&a, &r);
            v["workers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("/status?worker=api"), ["api"]);
        assert_eq!(names("/status?worker=%61pi&history=0"), ["api"], "percent-decoded");
        assert_eq!(names("/status?state=up"), ["api"]);
        assert!(names("/status?state=down").is_empty());
        assert!(names("/status?state=paused&worker=api").is_empty());
        let r = call(&a, "GET", "/status?worker=zzz", None);
        assert_eq!(r.status, 404);
        assert!(String::from_utf8_lossy(r.body.as_ref()).contains("no worker named"));
        let r = call(&a, "GET", "/status?state=sideways", None);
        assert_eq!(r.status, 400);
        assert!(String::from_utf8_lossy(r.body.as_ref()).contains("down, up, pending, paused"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Db+c"), "a-b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
