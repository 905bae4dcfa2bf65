//! The HTTP face: routing (a pure function from request to `Reply`) and the tiny_http loop.
//! Handlers copy what they need out of the state (`snapshot`) and render after the lock is gone.

pub mod badge;
pub mod guard;
pub mod html;
pub mod json;
pub mod metrics;
pub mod server;
#[cfg(test)]
pub mod testdata;

use crate::shutdown::Waker;
use crate::state::State;
use std::sync::Arc;
use std::time::SystemTime;

/// History entries `/status` returns when `?history=` is not given.
pub const DEFAULT_STATUS_HISTORY: usize = 20;

/// What to send back; turned into a tiny_http response by the server loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub allow: Option<&'static str>,
}

impl Reply {
    fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            allow: None,
        }
    }

    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply::new(status, "application/json", body)
    }

    pub fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, serde_json::json!({ "error": message }).to_string())
    }
}

/// What the handlers need: the state, a way to wake each worker, and the admin token.
pub struct App {
    pub state: Arc<State>,
    /// Indexed like the state's slots.
    pub wakers: Vec<Arc<Waker>>,
    pub admin_token: Option<String>,
    /// Deliveries per alert channel (none without channels).
    pub alert_counts: Arc<crate::alert::Counts>,
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

pub fn route(app: &App, method: &str, url: &str, authorization: Option<&str>) -> Reply {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let is_get = method == "GET" || method == "HEAD";
    let wrong_method = |allow: &'static str| Reply {
        allow: Some(allow),
        ..Reply::error(405, &format!("method {method} is not allowed here; use {allow}"))
    };
    if let Some(rest) = path.strip_prefix("/api/workers/") {
        return match rest.strip_suffix("/check") {
            Some(name) if !name.contains('/') => admin_check(app, method, name, authorization),
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
        "/health" => Reply::json(200, r#"{"status":"alive"}"#),
        "/healthz" => Reply::new(200, "text/plain; charset=utf-8", "ok"),
        "/" => Reply::new(
            200,
            "text/html; charset=utf-8",
            html::render(&app.state.snapshot(html::BAR_CELLS, SystemTime::now())),
        ),
        "/metrics" => Reply::new(
            200,
            metrics::CONTENT_TYPE,
            metrics::render(&app.state.snapshot(0, SystemTime::now()), &app.alert_counts.snapshot()),
        ),
        "/status" => match history_param(query) {
            Ok(n) => Reply::json(200, json::render(&app.state.snapshot(n, SystemTime::now()))),
            Err(m) => Reply::error(400, &m),
        },
        _ => {
            let name = &path["/badge/".len()..path.len() - ".svg".len()];
            let snap = app.state.snapshot(0, SystemTime::now());
            match snap.find(name) {
                Some(w) => Reply::new(200, "image/svg+xml", badge::render(w)),
                None => Reply::error(404, &format!("no worker named {:?}", html::escape(name))),
            }
        }
    }
}

fn history_param(query: &str) -> Result<usize, String> {
    let mut n = DEFAULT_STATUS_HISTORY;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "history" {
            n = v
                .parse()
                .map_err(|_| "history must be a whole number (the count of recent checks to return)".to_string())?;
        }
    }
    Ok(n)
}

fn admin_check(app: &App, method: &str, name: &str, authorization: Option<&str>) -> Reply {
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
    match app.state.slot_of(name).and_then(|slot| app.wakers.get(slot)) {
        Some(waker) => {
            waker.check_now();
            Reply::json(
                202,
                serde_json::json!({ "status": "accepted", "worker": name }).to_string(),
            )
        }
        None => Reply::error(404, "no worker by that name"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::TargetInfo;
    use std::time::Duration;

    fn app(token: Option<&str>) -> App {
        let infos = vec![TargetInfo::test("api")];
        App {
            state: Arc::new(State::new(infos, 100, SystemTime::now())),
            wakers: vec![Arc::new(Waker::default())],
            alert_counts: Default::default(),
            admin_token: token.map(String::from),
        }
    }

    #[test]
    fn known_paths_and_methods() {
        let a = app(None);
        assert_eq!(route(&a, "GET", "/health", None).body, br#"{"status":"alive"}"#);
        assert_eq!(route(&a, "HEAD", "/healthz", None).body, b"ok");
        assert_eq!(route(&a, "GET", "/nope", None).status, 404);
        let r = route(&a, "POST", "/status", None);
        assert_eq!((r.status, r.allow), (405, Some("GET, HEAD")));
        assert!(String::from_utf8_lossy(&r.body).contains("\"error\""));
        assert_eq!(route(&a, "GET", "/badge/api.svg", None).status, 200);
        assert_eq!(route(&a, "GET", "/badge/zzz.svg", None).status, 404);
        assert_eq!(route(&a, "GET", "/status?history=x", None).status, 400);
        assert_eq!(route(&a, "GET", "/status?history=0", None).status, 200);
    }

    #[test]
    fn admin_endpoint_auth() {
        assert_eq!(
            route(&app(None), "POST", "/api/workers/api/check", Some("Bearer t")).status,
            404
        );
        let a = app(Some("s3cret"));
        assert_eq!(route(&a, "POST", "/api/workers/api/check", None).status, 401);
        assert_eq!(
            route(&a, "POST", "/api/workers/api/check", Some("Bearer wrong")).status,
            401
        );
        assert_eq!(
            route(&a, "POST", "/api/workers/api/check", Some("Bearer s3cre")).status,
            401
        );
        assert_eq!(
            route(&a, "POST", "/api/workers/zzz/check", Some("Bearer s3cret")).status,
            404
        );
        assert_eq!(
            route(&a, "GET", "/api/workers/api/check", Some("Bearer s3cret")).status,
            405
        );
        assert_eq!(
            route(&a, "POST", "/api/workers/api/check", Some("Bearer s3cret")).status,
            202
        );
        assert_eq!(
            a.wakers[0].sleep_until(std::time::Instant::now() + Duration::from_secs(5), true),
            crate::shutdown::Wake::CheckNow
        );
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
