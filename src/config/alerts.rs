//! The `alerts` section and `PINGER_WEBHOOK_URL`: the channels that hear about state changes.
//!
//! `alerts` is one channel object (the original form, still accepted as it was) or a list of
//! them. Each channel has a `type` (`format` is its old name; without either it is told from the
//! webhook URL), a unique `name`, its own thresholds, the `workers` it speaks for and the
//! fields of its type. A new channel type is one entry in `TYPES` and one arm in `kind`.

use super::channel::{gotify, ntfy, pushover, telegram, webhook};
use super::ctx::{Ctx, env_var, kind, show};
use super::limits::{
    ALERT_RETRY_BACKOFF, ALERT_TIMEOUT, CERT_EXPIRY_DAYS, CERT_EXPIRY_MAX_DAYS, FAILURE_THRESHOLD, NAME_MAX_CHARS,
    SEND_ON_RESOLVED, SUCCESS_THRESHOLD,
};
use crate::streak::Thresholds;
use serde_json::{Map, Value};
use std::fmt;
use std::time::Duration;

/// Fields every channel takes.
const COMMON: &[&str] = &[
    "type",
    "format",
    "name",
    "failure_threshold",
    "success_threshold",
    "send_on_resolved",
    "degraded",
    "timeout",
    "retry_backoff",
    "workers",
    "cert_expiry_days",
];

/// Each type and its own fields.
const TYPES: &[(&str, &[&str])] = &[
    ("discord", &["webhook_url"]),
    ("slack", &["webhook_url"]),
    ("json", &["webhook_url"]),
    ("webhook", &["url", "method", "headers", "body"]),
    ("telegram", &["bot_token", "chat_id", "api_url"]),
    ("ntfy", &["url", "token"]),
    ("gotify", &["url", "token"]),
    ("pushover", &["user_key", "app_token", "api_url"]),
];

const WEBHOOK_METHODS: &[&str] = &["POST", "PUT", "PATCH"];

/// Where a channel sends, with its credentials. Every string in here is a secret.
#[derive(Clone, PartialEq)]
pub enum Kind {
    Discord { webhook_url: String },
    Slack { webhook_url: String },
    Json { webhook_url: String },
    Webhook(webhook::Settings),
    Telegram(telegram::Settings),
    Ntfy(ntfy::Settings),
    Gotify(gotify::Settings),
    Pushover(pushover::Settings),
}

impl Kind {
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Discord { .. } => "discord",
            Kind::Slack { .. } => "slack",
            Kind::Json { .. } => "json",
            Kind::Webhook(_) => "webhook",
            Kind::Telegram(_) => "telegram",
            Kind::Ntfy(_) => "ntfy",
            Kind::Gotify(_) => "gotify",
            Kind::Pushover(_) => "pushover",
        }
    }
}

/// One alert channel, validated and complete.
#[derive(Clone, PartialEq)]
pub struct Channel {
    pub name: String,
    /// Where it was configured (`alerts[2]`, `alerts` or `PINGER_WEBHOOK_URL`), for messages.
    pub field: String,
    pub kind: Kind,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub send_on_resolved: bool,
    /// `degraded: true`: also tell when a worker becomes degraded (slower than `expect_latency`)
    /// and when it stops being so.
    pub degraded: bool,
    /// Timeout of one delivery attempt.
    pub timeout: Duration,
    /// The base of the backoff between the 3 retries.
    pub retry_backoff: Duration,
    /// The workers this channel speaks for; `None` is all of them.
    pub workers: Option<Vec<String>>,
    /// Days-left thresholds for certificate warnings, largest first; empty turns them off.
    pub cert_expiry_days: Vec<u32>,
}

impl Channel {
    pub fn speaks_for(&self, worker: &str) -> bool {
        self.workers.as_ref().is_none_or(|w| w.iter().any(|n| n == worker))
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The kind holds only secrets (URLs, tokens, keys, header values): show its type.
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("field", &self.field)
            .field("type", &self.kind.type_name())
            .field("failure_threshold", &self.failure_threshold)
            .field("success_threshold", &self.success_threshold)
            .field("send_on_resolved", &self.send_on_resolved)
            .field("degraded", &self.degraded)
            .field("timeout", &self.timeout)
            .field("retry_backoff", &self.retry_backoff)
            .field("workers", &self.workers)
            .field("cert_expiry_days", &self.cert_expiry_days)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct Alerts {
    pub channels: Vec<Channel>,
    /// When a worker counts as down for Space restarts: the single object's threshold (it may
    /// name no channel at all), or the lowest of a list's channels.
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            channels: Vec::new(),
            failure_threshold: FAILURE_THRESHOLD.default as u32,
            success_threshold: SUCCESS_THRESHOLD.default as u32,
        }
    }
}

impl From<&Alerts> for Thresholds {
    fn from(a: &Alerts) -> Thresholds {
        Thresholds {
            failure: a.failure_threshold,
            success: a.success_threshold,
        }
    }
}

/// What one object said before its type's fields were checked.
struct Common {
    failure_threshold: u32,
    success_threshold: u32,
    send_on_resolved: bool,
    degraded: bool,
    timeout: Duration,
    retry_backoff: Duration,
    workers: Option<Vec<String>>,
    cert_expiry_days: Vec<u32>,
    name: Option<String>,
}

pub fn parse(ctx: &mut Ctx, v: Option<&Value>) -> Alerts {
    let env_url = env_var(ctx.env, "PINGER_WEBHOOK_URL").cloned();
    if env_url.as_deref().is_some_and(|u| crate::target_url::parse(u).is_err()) {
        ctx.err_in("PINGER_WEBHOOK_URL", NOT_A_URL);
    }
    let env_url = env_url.filter(|u| crate::target_url::parse(u).is_ok());
    let mut alerts = Alerts::default();
    let mut named: Vec<(Option<String>, Channel)> = Vec::new();
    match v {
        None | Some(Value::Null) => {
            if let Some(u) = env_url {
                named.push((
                    None,
                    webhook_channel(guess_type(&u), u, &defaults(), "PINGER_WEBHOOK_URL"),
                ));
            }
        }
        Some(Value::Array(list)) => {
            for (i, item) in list.iter().enumerate() {
                if let Some((name, ch)) = channel(ctx, item, &format!("alerts[{i}]"), None, None) {
                    named.push((name, ch));
                }
            }
            // A list from the file plus a webhook from the environment: both are heard.
            if let Some(u) = env_url {
                named.push((
                    None,
                    webhook_channel(guess_type(&u), u, &defaults(), "PINGER_WEBHOOK_URL"),
                ));
            }
            if let Some(min) = named.iter().map(|(_, c)| c.failure_threshold).min() {
                alerts.failure_threshold = min;
            }
            if let Some(min) = named.iter().map(|(_, c)| c.success_threshold).min() {
                alerts.success_threshold = min;
            }
        }
        Some(item) => {
            // The original form: thresholds alone are valid (they time Space restarts).
            let mut thresholds = (alerts.failure_threshold, alerts.success_threshold);
            if let Some((name, ch)) = channel(ctx, item, "alerts", env_url, Some(&mut thresholds)) {
                named.push((name, ch));
            }
            (alerts.failure_threshold, alerts.success_threshold) = thresholds;
        }
    }
    alerts.channels = unique_names(ctx, named);
    alerts
}

const NOT_A_URL: &str = "expected an http or https URL with a host (value not shown: it is a secret)";

fn defaults() -> Common {
    Common {
        failure_threshold: FAILURE_THRESHOLD.default as u32,
        success_threshold: SUCCESS_THRESHOLD.default as u32,
        send_on_resolved: SEND_ON_RESOLVED,
        degraded: false,
        timeout: ALERT_TIMEOUT.default,
        retry_backoff: ALERT_RETRY_BACKOFF.default,
        workers: None,
        cert_expiry_days: CERT_EXPIRY_DAYS.to_vec(),
        name: None,
    }
}

fn webhook_channel(type_name: &str, url: String, c: &Common, field: &str) -> Channel {
    finish(chat_kind(type_name, url), c, field)
}

/// A chat service's webhook (`discord`, `slack`) or a plain JSON one.
fn chat_kind(type_name: &str, url: String) -> Kind {
    match type_name {
        "discord" => Kind::Discord { webhook_url: url },
        "slack" => Kind::Slack { webhook_url: url },
        _ => Kind::Json { webhook_url: url },
    }
}

fn finish(kind: Kind, c: &Common, field: &str) -> Channel {
    Channel {
        name: String::new(),
        field: field.to_string(),
        kind,
        failure_threshold: c.failure_threshold,
        success_threshold: c.success_threshold,
        send_on_resolved: c.send_on_resolved,
        degraded: c.degraded,
        timeout: c.timeout,
        retry_backoff: c.retry_backoff,
        workers: c.workers.clone(),
        cert_expiry_days: c.cert_expiry_days.clone(),
    }
}

/// The type a webhook URL's service expects, when its address says which service it is.
fn guess_type(url: &str) -> &'static str {
    if url.contains("discord.com/api/webhooks") || url.contains("discordapp.com/api/webhooks") {
        "discord"
    } else if url.contains("hooks.slack.com") {
        "slack"
    } else {
        "json"
    }
}

/// One channel object at `path`; `None` when it is invalid (its problems are recorded) or, for
/// the single-object form, when it names no destination. `env_url` (PINGER_WEBHOOK_URL) wins
/// over the object's `webhook_url`; `thresholds` receives the object's thresholds.
fn channel(
    ctx: &mut Ctx,
    v: &Value,
    path: &str,
    env_url: Option<String>,
    thresholds: Option<&mut (u32, u32)>,
) -> Option<(Option<String>, Channel)> {
    let Some(raw) = v.as_object() else {
        ctx.err(path, format!("expected an object, got {}", kind(v)));
        return None;
    };
    let declared = declared_type(ctx, raw, path);
    let obj = ctx.object(v, path, &allowed_fields(declared))?;
    let c = common(ctx, obj, path);
    if let Some(t) = thresholds {
        *t = (c.failure_threshold, c.success_threshold);
    }
    let type_name = resolve_type(ctx, declared, obj, path, env_url.as_deref())?;
    let kind = destination(ctx, &Fields { obj, path, type_name }, env_url)?;
    Some((c.name.clone(), finish(kind, &c, path)))
}

/// The fields a channel object may have: every channel's, and its type's own.
fn allowed_fields(declared: Option<Result<&str, ()>>) -> Vec<&'static str> {
    let own: Vec<&str> = match declared {
        Some(Ok(t)) => TYPES
            .iter()
            .find(|(n, _)| *n == t)
            .map(|(_, f)| f.to_vec())
            .unwrap_or_default(),
        // Unknown type: accept every type's fields, so only the type itself is reported.
        Some(Err(())) => TYPES.iter().flat_map(|(_, f)| f.iter().copied()).collect(),
        None => vec!["webhook_url"],
    };
    COMMON.iter().copied().chain(own).collect()
}

/// The channel's type: the declared one, or the one its webhook URL tells. `None` for an
/// unknown type or no way to tell (both reported), and for the single object with thresholds
/// only, which is no channel, as before.
fn resolve_type(
    ctx: &mut Ctx,
    declared: Option<Result<&'static str, ()>>,
    obj: &Map<String, Value>,
    path: &str,
    env_url: Option<&str>,
) -> Option<&'static str> {
    match declared {
        Some(Ok(t)) => Some(t),
        Some(Err(())) => {
            // Still check the destination, so one run reports every problem.
            if obj.contains_key("webhook_url") {
                Fields {
                    obj,
                    path,
                    type_name: "json",
                }
                .url(ctx, "webhook_url");
            }
            None
        }
        None => match env_url.or_else(|| obj.get("webhook_url").and_then(|v| v.as_str())) {
            Some(u) => Some(guess_type(u)),
            None if path == "alerts" => None,
            None => {
                ctx.err(
                    &format!("{path}.type"),
                    format!("expected a type ({}) or a webhook_url", type_list()),
                );
                None
            }
        },
    }
}

/// Where a channel of a known type sends, with its credentials.
fn destination(ctx: &mut Ctx, f: &Fields, env_url: Option<String>) -> Option<Kind> {
    match f.type_name {
        "discord" | "slack" | "json" => {
            let url = match env_url {
                Some(u) => u,
                None => f.url(ctx, "webhook_url")?,
            };
            Some(chat_kind(f.type_name, url))
        }
        "webhook" => webhook_kind(ctx, f),
        "telegram" => telegram_kind(ctx, f),
        "ntfy" => ntfy_kind(ctx, f),
        "gotify" => gotify_kind(ctx, f),
        "pushover" => pushover_kind(ctx, f),
        _ => None,
    }
}

/// One channel object of a known type, read field by field.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: &'a str,
    type_name: &'static str,
}

impl Fields<'_> {
    fn at(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    /// A field the type requires: a non-empty string, never quoted when `secret`.
    fn need(&self, ctx: &mut Ctx, key: &str, secret: bool) -> Option<String> {
        match self.obj.get(key) {
            Some(v) => secret_string(ctx, v, &self.at(key), secret),
            None => {
                ctx.err(&self.at(key), format!("required for type {}", self.type_name));
                None
            }
        }
    }

    /// A required destination URL: a secret, so a bad one is reported without its value.
    fn url(&self, ctx: &mut Ctx, key: &str) -> Option<String> {
        let u = self.need(ctx, key, true)?;
        if crate::target_url::parse(&u).is_err() || ureq::http::Uri::try_from(u.as_str()).is_err() {
            ctx.err(&self.at(key), NOT_A_URL);
            return None;
        }
        Some(u)
    }
}

/// `webhook`: url, method, headers and the body template (its placeholders checked here).
fn webhook_kind(ctx: &mut Ctx, f: &Fields) -> Option<Kind> {
    let url = f.url(ctx, "url")?;
    let method = match f.obj.get("method") {
        None => "POST",
        Some(m) => {
            let m = ctx.text(m, &f.at("method"))?.to_ascii_uppercase();
            let Some(known) = WEBHOOK_METHODS.iter().find(|x| **x == m) else {
                ctx.err(
                    &f.at("method"),
                    format!("expected one of {}, got {m:?}", WEBHOOK_METHODS.join(", ")),
                );
                return None;
            };
            known
        }
    };
    let headers = match f.obj.get("headers") {
        None => Vec::new(),
        Some(h) => super::check::headers(ctx, h, &f.at("headers")),
    };
    let body = match f.obj.get("body") {
        None => webhook::DEFAULT_BODY.to_string(),
        Some(b) => ctx.text(b, &f.at("body"))?,
    };
    if let Some(unknown) = webhook::unknown_placeholders(&body).first() {
        ctx.err(
            &f.at("body"),
            format!(
                "unknown placeholder {{{{{unknown}}}}} (expected {})",
                webhook::PLACEHOLDERS.map(|p| format!("{{{{{p}}}}}")).join(", ")
            ),
        );
        return None;
    }
    Some(Kind::Webhook(webhook::Settings {
        url,
        method,
        headers,
        body,
    }))
}

/// `ntfy`: the topic's URL and an optional access token.
fn ntfy_kind(ctx: &mut Ctx, f: &Fields) -> Option<Kind> {
    let url = f.url(ctx, "url")?;
    let token = match f.obj.get("token") {
        None => None,
        Some(t) => Some(secret_string(ctx, t, &f.at("token"), true)?),
    };
    Some(Kind::Ntfy(ntfy::Settings { url, token }))
}

/// `gotify`: the server's URL and an application token.
fn gotify_kind(ctx: &mut Ctx, f: &Fields) -> Option<Kind> {
    let (url, token) = (f.url(ctx, "url"), f.need(ctx, "token", true));
    Some(Kind::Gotify(gotify::Settings {
        url: url?,
        token: token?,
    }))
}

/// `pushover`: the user key, the application token and the API's base URL.
fn pushover_kind(ctx: &mut Ctx, f: &Fields) -> Option<Kind> {
    let (user_key, app_token) = (f.need(ctx, "user_key", true), f.need(ctx, "app_token", true));
    let api_url = api_url(ctx, f.obj, &f.at("api_url"), pushover::DEFAULT_API_URL)?;
    Some(Kind::Pushover(pushover::Settings {
        user_key: user_key?,
        app_token: app_token?,
        api_url,
    }))
}

/// `telegram`: the bot token, the chat (a number or `@channel`) and the API's base URL.
fn telegram_kind(ctx: &mut Ctx, f: &Fields) -> Option<Kind> {
    let bot_token = f.need(ctx, "bot_token", true);
    let chat_id = match f.obj.get("chat_id") {
        Some(Value::Number(n)) if n.is_i64() => Some(n.to_string()),
        Some(v @ Value::String(_)) => secret_string(ctx, v, &f.at("chat_id"), false),
        Some(v) => {
            ctx.err(
                &f.at("chat_id"),
                format!("expected a chat id (a number or \"@channel\"), got {}", kind(v)),
            );
            None
        }
        None => f.need(ctx, "chat_id", false),
    };
    let api_url = api_url(ctx, f.obj, &f.at("api_url"), telegram::DEFAULT_API_URL)?;
    Some(Kind::Telegram(telegram::Settings {
        bot_token: bot_token?,
        chat_id: chat_id?,
        api_url,
    }))
}

/// `type` (or its old name `format`): `Ok` a known type, `Err` an unknown one (reported).
fn declared_type(ctx: &mut Ctx, obj: &Map<String, Value>, path: &str) -> Option<Result<&'static str, ()>> {
    let (key, v) = match (obj.get("type"), obj.get("format")) {
        (Some(t), Some(_)) => {
            ctx.err(
                &format!("{path}.format"),
                "give either type or its old name format, not both",
            );
            ("type", t)
        }
        (Some(t), None) => ("type", t),
        (None, Some(f)) => ("format", f),
        (None, None) => return None,
    };
    let field = format!("{path}.{key}");
    let Some(name) = ctx.text(v, &field) else {
        return Some(Err(()));
    };
    match TYPES.iter().find(|(n, _)| *n == name) {
        Some((n, _)) => Some(Ok(n)),
        None => {
            ctx.err(&field, format!("expected one of {}, got {name:?}", type_list()));
            Some(Err(()))
        }
    }
}

fn type_list() -> String {
    TYPES
        .iter()
        .map(|(n, _)| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The fields every channel takes, with their defaults.
fn common(ctx: &mut Ctx, obj: &Map<String, Value>, path: &str) -> Common {
    let mut c = defaults();
    let get = |key: &str| obj.get(key).map(|v| (v, format!("{path}.{key}")));
    c.failure_threshold = ctx
        .count_in(obj, path, "failure_threshold", FAILURE_THRESHOLD)
        .map_or(c.failure_threshold, |n| n as u32);
    c.success_threshold = ctx
        .count_in(obj, path, "success_threshold", SUCCESS_THRESHOLD)
        .map_or(c.success_threshold, |n| n as u32);
    if let Some(b) = get("send_on_resolved").and_then(|(v, p)| ctx.bool(v, &p)) {
        c.send_on_resolved = b;
    }
    if let Some(b) = get("degraded").and_then(|(v, p)| ctx.bool(v, &p)) {
        c.degraded = b;
    }
    c.timeout = ctx
        .duration_in(obj, path, "timeout", ALERT_TIMEOUT)
        .unwrap_or(c.timeout);
    c.retry_backoff = ctx
        .duration_in(obj, path, "retry_backoff", ALERT_RETRY_BACKOFF)
        .unwrap_or(c.retry_backoff);
    if let Some((v, p)) = get("workers") {
        c.workers = names(ctx, v, &p);
    }
    if let Some((v, p)) = get("cert_expiry_days") {
        if let Some(days) = days(ctx, v, &p) {
            c.cert_expiry_days = days;
        }
    }
    if let Some((v, p)) = get("name") {
        c.name = ctx.string(v, &p).and_then(|(n, from_env)| {
            if from_env.is_empty() {
                return Some(n);
            }
            ctx.err(
                &p,
                "expected a literal name, not ${VAR}: a channel's name is shown in logs, \
                 notify-test and /metrics, and a value from ${VAR} is a secret",
            );
            None
        });
        c.name = c.name.take().filter(|n| {
            let ok = !n.is_empty()
                && n.chars().count() <= NAME_MAX_CHARS
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok {
                ctx.err(
                    &p,
                    format!("expected 1 to {NAME_MAX_CHARS} characters of A-Za-z0-9._-, got {n:?}"),
                );
            }
            ok
        });
    }
    c
}

/// A list of worker names (checked against the workers once they are known).
fn names(ctx: &mut Ctx, v: &Value, path: &str) -> Option<Vec<String>> {
    let Some(list) = v.as_array() else {
        ctx.err(path, format!("expected a list of worker names, got {}", kind(v)));
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        out.push(ctx.text(item, &format!("{path}[{i}]"))?);
    }
    Some(out)
}

/// `cert_expiry_days`: whole days, largest first, each once.
fn days(ctx: &mut Ctx, v: &Value, path: &str) -> Option<Vec<u32>> {
    let Some(list) = v.as_array() else {
        ctx.err(
            path,
            format!("expected a list of days such as [14, 7, 3, 1], got {}", kind(v)),
        );
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        match item.as_u64() {
            Some(d) if (1..=CERT_EXPIRY_MAX_DAYS).contains(&d) => out.push(d as u32),
            _ => {
                ctx.err(
                    &format!("{path}[{i}]"),
                    format!(
                        "expected a whole number of days from 1 to {CERT_EXPIRY_MAX_DAYS}, got {}",
                        show(item)
                    ),
                );
                return None;
            }
        }
    }
    out.sort_unstable_by(|a, b| b.cmp(a));
    out.dedup();
    Some(out)
}

/// A string whose value is never quoted in an error when `secret`.
fn secret_string(ctx: &mut Ctx, v: &Value, path: &str, secret: bool) -> Option<String> {
    if secret && !v.is_string() {
        ctx.err(
            path,
            format!("expected a string, got {} (value not shown: it is a secret)", kind(v)),
        );
        return None;
    }
    let s = ctx.text(v, path)?;
    if s.trim().is_empty() {
        ctx.err(path, "expected a non-empty string");
        return None;
    }
    Some(s)
}

/// An API base URL (not a secret); `default` when absent.
fn api_url(ctx: &mut Ctx, obj: &Map<String, Value>, path: &str, default: &str) -> Option<String> {
    match obj.get("api_url") {
        None => Some(default.to_string()),
        Some(v) => ctx.url(v, path).map(|(u, _)| u),
    }
}

/// Gives every channel its name: the one it asked for (unique, or an error), else its type made
/// unique with `-2`, `-3`, ...
fn unique_names(ctx: &mut Ctx, named: Vec<(Option<String>, Channel)>) -> Vec<Channel> {
    let mut taken: Vec<String> = Vec::new();
    for (name, ch) in &named {
        if let Some(n) = name {
            if taken.contains(n) {
                ctx.err(
                    &format!("{}.name", ch.field),
                    format!("{n:?} is already the name of another channel"),
                );
            }
            taken.push(n.clone());
        }
    }
    named
        .into_iter()
        .map(|(name, mut ch)| {
            ch.name = name.unwrap_or_else(|| {
                let base = ch.kind.type_name();
                let n = (1..)
                    .map(|k| {
                        if k == 1 {
                            base.to_string()
                        } else {
                            format!("{base}-{k}")
                        }
                    })
                    .find(|n| !taken.contains(n))
                    .unwrap_or_default();
                taken.push(n.clone());
                n
            });
            ch
        })
        .collect()
}

/// Every worker a channel names must exist (a typo would silence it); called once the workers
/// are known.
pub fn check_workers(ctx: &mut Ctx, alerts: &Alerts, workers: &[String]) {
    for ch in &alerts.channels {
        for (j, name) in ch.workers.iter().flatten().enumerate() {
            if !workers.contains(name) {
                let path = format!("{}.workers[{j}]", ch.field);
                let known = if workers.is_empty() {
                    "there are no workers".to_string()
                } else {
                    format!("workers are: {}", workers.join(", "))
                };
                ctx.err(&path, format!("no worker is named {name:?} ({known})"));
            }
        }
    }
}
