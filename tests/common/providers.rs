//! Fake alert services on 127.0.0.1. Each checks what the real API checks (method, path, auth,
//! content type, required fields and their values) and answers the way that API does, including
//! its error body on a 4xx, so the pinger's requests and its reading of refusals are both tested.

use super::{Action, FakeServer, Seen};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fake API: every request is in `server.seen()`, the ones it accepted in `accepted()`.
pub struct FakeApi {
    pub server: FakeServer,
    accepted: Arc<Mutex<Vec<Seen>>>,
}

type Verdict = Result<Value, (u16, Value)>;

impl FakeApi {
    fn start(check: impl Fn(&Seen) -> Verdict + Send + Sync + 'static) -> FakeApi {
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let acc = Arc::clone(&accepted);
        let server = FakeServer::start(move |_, seen| {
            let (status, body) = match check(seen) {
                Ok(body) => {
                    acc.lock().unwrap().push(seen.clone());
                    (200, body)
                }
                Err(refusal) => refusal,
            };
            Action::Respond {
                status,
                body: body.to_string().into_bytes(),
            }
        });
        FakeApi { server, accepted }
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    pub fn accepted(&self) -> Vec<Seen> {
        self.accepted.lock().unwrap().clone()
    }

    /// Waits until `n` requests were accepted (or the time is up); returns the accepted ones.
    pub fn wait_accepted(&self, n: usize, within: Duration) -> Vec<Seen> {
        let end = Instant::now() + within;
        while self.accepted().len() < n && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.accepted()
    }
}

/// The value of request header `name` (case-insensitive).
pub fn header(seen: &Seen, name: &str) -> Option<String> {
    seen.head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn json_body(seen: &Seen) -> Option<Value> {
    let ct = header(seen, "content-type").unwrap_or_default();
    if !ct.starts_with("application/json") {
        return None;
    }
    serde_json::from_str(&seen.body).ok()
}

/// The Telegram Bot API's sendMessage (https://core.telegram.org/bots/api#sendmessage).
pub fn telegram(bot_token: &str, chat_id: i64) -> FakeApi {
    let path = format!("/bot{bot_token}/sendMessage");
    FakeApi::start(move |s| {
        let err = |code: u16, d: &str| Err((code, json!({"ok": false, "error_code": code, "description": d})));
        if !s.path.starts_with("/bot") {
            return err(404, "Not Found");
        }
        if s.path != path {
            return err(401, "Unauthorized");
        }
        if s.method != "POST" && s.method != "GET" {
            return err(405, "Method Not Allowed");
        }
        let Some(body) = json_body(s) else {
            return err(400, "Bad Request: message text is empty");
        };
        if body["chat_id"] != json!(chat_id) && body["chat_id"] != json!(chat_id.to_string()) {
            return err(400, "Bad Request: chat not found");
        }
        match body["text"].as_str() {
            Some(t) if !t.trim().is_empty() => {}
            _ => return err(400, "Bad Request: message text is empty"),
        }
        if body.get("parse_mode").is_some() {
            return err(400, "Bad Request: unexpected parse_mode for a plain-text alert");
        }
        Ok(json!({"ok": true, "result": {"message_id": 1, "chat": {"id": chat_id}, "text": body["text"]}}))
    })
}

/// An ntfy server's publish endpoint (https://docs.ntfy.sh/publish/); `token` protects the topic.
pub fn ntfy(topic: &str, token: Option<&str>) -> FakeApi {
    let (topic, path) = (topic.to_string(), format!("/{topic}"));
    let token = token.map(|t| format!("Bearer {t}"));
    FakeApi::start(move |s| {
        let err = |http: u16, code: u32, e: &str| {
            Err((
                http,
                json!({"code": code, "http": http, "error": e, "link": "https://ntfy.sh/docs/publish/"}),
            ))
        };
        if s.method != "POST" && s.method != "PUT" {
            return err(405, 40501, "method not allowed");
        }
        if s.path != path {
            return err(404, 40401, "page not found");
        }
        if token.is_some() && header(s, "authorization") != token {
            return err(401, 40101, "unauthorized");
        }
        let priority = header(s, "priority").unwrap_or_else(|| "default".into());
        if ![
            "min", "low", "default", "high", "max", "urgent", "1", "2", "3", "4", "5",
        ]
        .contains(&priority.as_str())
        {
            return err(400, 40007, "invalid priority");
        }
        if s.body.is_empty() {
            return err(400, 40010, "message is empty");
        }
        Ok(
            json!({"id": "sPs71M8A2T", "time": 1, "event": "message", "topic": topic,
                  "title": header(s, "title"), "message": s.body, "priority": priority}),
        )
    })
}

/// A Gotify server's POST /message (https://gotify.net/docs/pushmsg).
pub fn gotify(app_token: &str) -> FakeApi {
    let token = app_token.to_string();
    FakeApi::start(move |s| {
        let err =
            |code: u16, e: &str, d: &str| Err((code, json!({"error": e, "errorCode": code, "errorDescription": d})));
        if s.path.split('?').next() != Some("/message") {
            return err(404, "Not Found", "page not found");
        }
        if s.method != "POST" {
            return err(405, "Method Not Allowed", "method not allowed");
        }
        let query_token = s.path.split_once("?token=").map(|(_, t)| t.to_string());
        if header(s, "x-gotify-key").or(query_token).as_deref() != Some(token.as_str()) {
            return err(
                401,
                "Unauthorized",
                "you need to provide a valid access token or user credentials to access this api",
            );
        }
        let Some(body) = json_body(s) else {
            return err(400, "Bad Request", "invalid JSON body");
        };
        if body["message"].as_str().is_none_or(str::is_empty) {
            return err(400, "Bad Request", "Field 'message' is required");
        }
        if body.get("priority").is_some_and(|p| !p.is_i64()) {
            return err(400, "Bad Request", "Field 'priority' must be an integer");
        }
        Ok(
            json!({"id": 25, "appid": 5, "message": body["message"], "title": body["title"],
                  "priority": body["priority"], "date": "2026-11-28T10:55:00Z"}),
        )
    })
}

/// Pushover's POST /1/messages.json (https://pushover.net/api).
pub fn pushover(app_token: &str, user_key: &str) -> FakeApi {
    let (token, user) = (app_token.to_string(), user_key.to_string());
    FakeApi::start(move |s| {
        let request = "5042853c-402d-4a18-abcb-168734a801de";
        let err = |code: u16, field: &str, e: &str| {
            let mut v = json!({"errors": [e], "status": 0, "request": request});
            v[field] = json!("invalid");
            Err((code, v))
        };
        if s.path != "/1/messages.json" {
            return err(404, "path", "not found");
        }
        if s.method != "POST" {
            return err(405, "method", "method not allowed");
        }
        let Some(body) = json_body(s) else {
            return err(400, "message", "message cannot be blank");
        };
        if body["token"] != json!(token) {
            return err(400, "token", "application token is invalid");
        }
        if body["user"] != json!(user) {
            return err(
                400,
                "user",
                "user identifier is not a valid user, group, or subscribed user key",
            );
        }
        match body["message"].as_str() {
            Some(m) if !m.is_empty() && m.chars().count() <= 1024 => {}
            _ => {
                return err(
                    400,
                    "message",
                    "message cannot be blank and must be at most 1024 characters",
                );
            }
        }
        if body["title"].as_str().is_some_and(|t| t.chars().count() > 250) {
            return err(400, "title", "title is too long");
        }
        if !body
            .get("priority")
            .is_none_or(|p| p.as_i64().is_some_and(|p| (-2..=1).contains(&p)))
        {
            return err(400, "priority", "priority is invalid (2 needs retry and expire)");
        }
        Ok(json!({"status": 1, "request": request}))
    })
}

/// A generic webhook that accepts anything and records it (the `webhook`, `json`, `discord` and
/// `slack` types are checked by their tests from what it saw).
pub fn any_webhook() -> FakeApi {
    FakeApi::start(|_| Ok(json!({})))
}
