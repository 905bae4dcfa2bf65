//! Configuration: the JSON file, environment variables and flags merged into one validated
//! `Config`. Parsing walks a `serde_json::Value` by hand rather than deriving, so that one pass
//! reports *every* problem with its source and field path (`workers[2].interval`), rejects unknown
//! fields, and tracks which strings came from `${VAR}` (those are secrets).

use crate::{duration, target_url};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The process environment as a plain map, so loading is a pure function of its inputs.
pub type Env = BTreeMap<String, String>;

pub const DEFAULT_PORT: u16 = 7860;
pub const SELF_NAME: &str = "self";

/// One problem in the configuration, located by source and field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub source: String,
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(f, "{}: {}: {}", self.source, self.field, self.message)
        }
    }
}

/// Which HTTP statuses count as success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(pub Vec<(u16, u16)>);

impl StatusSet {
    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
    }
}

impl Default for StatusSet {
    fn default() -> Self {
        StatusSet(vec![(200, 399)])
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|&(lo, hi)| if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// One thing to ping: a configured worker or the self-ping.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    /// The URL as requested, secrets included. Never display it: use `display_url`.
    pub url: String,
    pub display_url: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub expect_status: StatusSet,
    pub expect_body: Option<String>,
    /// The expected body text came from `${VAR}`, so error messages must not quote it.
    pub expect_body_secret: bool,
    pub space_id: Option<String>,
    pub restart_token: Option<String>,
    /// `"paused": true`: the worker starts paused.
    pub paused: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertFormat {
    Discord,
    Slack,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alerts {
    pub webhook_url: Option<String>,
    pub format: AlertFormat,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub send_on_resolved: bool,
    /// Timeout of one delivery attempt, and the base of the backoff between the 3 retries.
    pub timeout: Duration,
    pub retry_backoff: Duration,
}

/// Everything the service needs, validated and complete: no `Option` stands for a default.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: String,
    pub listen: String,
    pub workers: Vec<Target>,
    pub self_ping: Option<Target>,
    pub alerts: Alerts,
    pub state_file: Option<PathBuf>,
    pub save_interval: Duration,
    pub history: usize,
    pub restart_cooldown: Duration,
    pub hf_api_url: String,
    pub hf_token: Option<String>,
    pub admin_token: Option<String>,
    pub log_level: log::LevelFilter,
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// How often the configuration file is looked at for changes; `None`: not watched.
    pub watch_config: Option<Duration>,
    pub warnings: Vec<String>,
}

/// What the command line contributes to the configuration.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
}

/// The configuration file the flags or environment name, else `./pinger.json` if it exists.
pub fn file_path(flags: &Flags, env: &Env) -> Option<PathBuf> {
    match (&flags.config, env.get("PINGER_CONFIG")) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(p)) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            let default = PathBuf::from("pinger.json");
            default.exists().then_some(default)
        }
    }
}

/// Reads the file named by the flags or environment (if any) and builds the `Config`.
pub fn load(flags: &Flags, env: &Env) -> Result<Config, Vec<ConfigError>> {
    let file = match file_path(flags, env) {
        None => None,
        Some(path) => {
            let source = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(text) => Some((source, text)),
                Err(e) => {
                    return Err(vec![ConfigError {
                        source,
                        field: String::new(),
                        message: format!("cannot read the configuration file: {e}"),
                    }]);
                }
            }
        }
    };
    build(file.as_ref().map(|(s, t)| (s.as_str(), t.as_str())), flags, env)
}

const TOP_FIELDS: &[&str] = &[
    "listen",
    "defaults",
    "self_ping",
    "workers",
    "alerts",
    "state_file",
    "save_interval",
    "history",
    "restart_cooldown",
    "hf_api_url",
    "header_timeout",
    "max_connections",
    "watch_config",
];
const CHECK_FIELDS: &[&str] = &[
    "interval",
    "interval_minutes",
    "interval_seconds",
    "timeout",
    "retries",
    "backoff",
    "method",
    "headers",
    "expect_status",
    "expect_body",
];
const WORKER_ONLY_FIELDS: &[&str] = &["name", "url", "space_id", "restart_token", "paused"];
const SELF_PING_FIELDS: &[&str] = &[
    "url",
    "interval",
    "interval_minutes",
    "interval_seconds",
    "timeout",
    "retries",
    "backoff",
];
const ALERT_FIELDS: &[&str] = &[
    "webhook_url",
    "format",
    "failure_threshold",
    "success_threshold",
    "send_on_resolved",
    "timeout",
    "retry_backoff",
];
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Check settings that a worker inherits from `defaults` unless it sets its own.
#[derive(Debug, Clone)]
struct CheckDefaults {
    interval: Duration,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    method: String,
    headers: Vec<(String, String)>,
    expect_status: StatusSet,
    expect_body: Option<(String, bool)>,
}

impl Default for CheckDefaults {
    fn default() -> Self {
        CheckDefaults {
            interval: Duration::from_secs(300),
            timeout: Duration::from_secs(120),
            retries: 3,
            backoff: Duration::from_secs(5),
            method: "GET".to_string(),
            headers: Vec::new(),
            expect_status: StatusSet::default(),
            expect_body: None,
        }
    }
}

/// Collects problems for one source while walking its JSON.
struct Ctx<'a> {
    source: String,
    env: &'a Env,
    errors: &'a mut Vec<ConfigError>,
    /// Values substituted from `${VAR}` so far: secrets, scrubbed from every message.
    secrets: Vec<String>,
}

impl Ctx<'_> {
    fn err(&mut self, field: &str, message: impl Into<String>) {
        let mut message = message.into();
        // A value that came from the environment may be quoted by a validation message
        // ("expected a duration, got ..."); it is a secret, so it never reaches the terminal.
        for secret in self.secrets.iter().filter(|s| !s.is_empty()) {
            message = message.replace(secret.as_str(), "REDACTED");
        }
        self.errors.push(ConfigError {
            source: self.source.clone(),
            field: field.to_string(),
            message,
        });
    }

    fn object<'v>(&mut self, v: &'v Value, field: &str, allowed: &[&str]) -> Option<&'v Map<String, Value>> {
        let Some(obj) = v.as_object() else {
            self.err(field, format!("expected an object, got {}", kind(v)));
            return None;
        };
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                self.err(
                    &join(field, key),
                    format!("unknown field {key:?} (expected one of: {})", allowed.join(", ")),
                );
            }
        }
        Some(obj)
    }

    /// A string value with `${VAR}` expanded; the second item says whether anything was expanded.
    fn string(&mut self, v: &Value, field: &str) -> Option<(String, Vec<String>)> {
        let Some(s) = v.as_str() else {
            self.err(field, format!("expected a string, got {}", kind(v)));
            return None;
        };
        match expand(s, self.env) {
            Ok(x) => {
                self.secrets.extend(x.1.iter().cloned());
                Some(x)
            }
            Err(message) => {
                self.err(field, message);
                None
            }
        }
    }

    fn duration(&mut self, v: &Value, field: &str) -> Option<Duration> {
        let (s, _) = self.string(v, field)?;
        duration::parse(&s).map_err(|m| self.err(field, m)).ok()
    }

    fn uint(&mut self, v: &Value, field: &str, lo: u64, hi: u64) -> Option<u64> {
        match v.as_u64() {
            Some(n) if (lo..=hi).contains(&n) => Some(n),
            _ => {
                self.err(
                    field,
                    format!("expected a whole number from {lo} to {hi}, got {}", show(v)),
                );
                None
            }
        }
    }

    fn bool(&mut self, v: &Value, field: &str) -> Option<bool> {
        v.as_bool().or_else(|| {
            self.err(field, format!("expected true or false, got {}", show(v)));
            None
        })
    }

    fn limited(&mut self, d: Duration, field: &str, lo: Duration, hi: Duration) -> Option<Duration> {
        if d < lo || d > hi {
            self.err(
                field,
                format!(
                    "expected a duration from {} to {}, got {}",
                    duration::format(lo),
                    duration::format(hi),
                    duration::format(d)
                ),
            );
            return None;
        }
        Some(d)
    }

    /// `interval`, `interval_minutes` or `interval_seconds`: exactly one form, at least 1s.
    fn interval(&mut self, obj: &Map<String, Value>, field: &str) -> Option<Duration> {
        let forms: Vec<&str> = ["interval", "interval_minutes", "interval_seconds"]
            .into_iter()
            .filter(|k| obj.contains_key(*k))
            .collect();
        if forms.len() > 1 {
            self.err(
                field,
                format!("give only one of {} (they set the same value)", forms.join(", ")),
            );
            return None;
        }
        let key = *forms.first()?;
        let path = join(field, key);
        let v = &obj[key];
        let d = if key == "interval" {
            self.duration(v, &path)?
        } else {
            let scale = if key == "interval_minutes" { 60.0 } else { 1.0 };
            match v.as_f64() {
                Some(n) if n.is_finite() && n >= 0.0 && n * scale <= 365.0 * 86_400.0 => {
                    Duration::from_millis((n * scale * 1000.0).round() as u64)
                }
                _ => {
                    self.err(&path, format!("expected a positive number, got {}", show(v)));
                    return None;
                }
            }
        };
        self.limited(d, &path, Duration::from_secs(1), Duration::from_secs(365 * 86_400))
    }

    /// Fields shared by `defaults` and each worker, layered over `base`.
    fn check_fields(&mut self, obj: &Map<String, Value>, field: &str, base: &CheckDefaults) -> CheckDefaults {
        let mut out = base.clone();
        if let Some(d) = self.interval(obj, field) {
            out.interval = d;
        }
        if let Some(v) = obj.get("timeout") {
            let path = join(field, "timeout");
            if let Some(d) = self.duration(v, &path) {
                if let Some(d) = self.limited(d, &path, Duration::from_millis(100), Duration::from_secs(600)) {
                    out.timeout = d;
                }
            }
        }
        if let Some(v) = obj.get("retries") {
            if let Some(n) = self.uint(v, &join(field, "retries"), 0, 10) {
                out.retries = n as u32;
            }
        }
        if let Some(v) = obj.get("backoff") {
            let path = join(field, "backoff");
            if let Some(d) = self.duration(v, &path) {
                if let Some(d) = self.limited(d, &path, Duration::ZERO, Duration::from_secs(600)) {
                    out.backoff = d;
                }
            }
        }
        if let Some(v) = obj.get("method") {
            let path = join(field, "method");
            if let Some((m, _)) = self.string(v, &path) {
                let upper = m.to_ascii_uppercase();
                if METHODS.contains(&upper.as_str()) {
                    out.method = upper;
                } else {
                    self.err(&path, format!("expected one of {}, got {m:?}", METHODS.join(", ")));
                }
            }
        }
        if let Some(v) = obj.get("headers") {
            out.headers = self.headers(v, &join(field, "headers"));
        }
        if let Some(v) = obj.get("expect_status") {
            if let Some(s) = self.status_set(v, &join(field, "expect_status")) {
                out.expect_status = s;
            }
        }
        if let Some(v) = obj.get("expect_body") {
            let path = join(field, "expect_body");
            if let Some((s, secrets)) = self.string(v, &path) {
                if s.is_empty() {
                    self.err(&path, "expected a non-empty string");
                } else if s.len() > 64 * 1024 {
                    self.err(&path, "expected at most 64 KiB of text");
                } else {
                    out.expect_body = Some((s, !secrets.is_empty()));
                }
            }
        }
        out
    }

    fn headers(&mut self, v: &Value, field: &str) -> Vec<(String, String)> {
        let Some(obj) = v.as_object() else {
            self.err(
                field,
                format!("expected an object of header names to values, got {}", kind(v)),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, value) in obj {
            let path = join(field, name);
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !valid_name {
                self.err(&path, "is not a valid HTTP header name");
                continue;
            }
            if let Some((value, _)) = self.string(value, &path) {
                // The value is a secret: the message never quotes it.
                if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                    self.err(
                        &path,
                        "the value contains a line break or NUL, which HTTP does not allow",
                    );
                } else {
                    out.push((name.clone(), value));
                }
            }
        }
        out
    }

    fn status_set(&mut self, v: &Value, field: &str) -> Option<StatusSet> {
        let expected = "expected a status code, a range string like \"200-399\", or a list of those";
        let items: Vec<&Value> = match v {
            Value::Array(a) if !a.is_empty() => a.iter().collect(),
            Value::Array(_) => {
                self.err(field, format!("{expected}, got an empty list"));
                return None;
            }
            other => vec![other],
        };
        let mut ranges = Vec::new();
        for item in items {
            let range = match item {
                Value::Number(n) => n.as_u64().map(|c| (c, c)),
                Value::String(s) => match s.split_once('-') {
                    Some((a, b)) => a.trim().parse().ok().zip(b.trim().parse().ok()),
                    None => s.trim().parse().ok().map(|c| (c, c)),
                },
                _ => None,
            };
            match range {
                Some((lo, hi)) if (100..=599).contains(&lo) && (lo..=599).contains(&hi) => {
                    ranges.push((lo as u16, hi as u16));
                }
                _ => {
                    self.err(field, format!("{expected} (codes 100-599), got {}", show(item)));
                    return None;
                }
            }
        }
        Some(StatusSet(ranges))
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value for an error message; strings are quoted, long values shortened.
fn show(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 60 {
        let cut = (0..=57).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// Replaces each `${VAR}` with the variable's value. Returns the text and the values substituted
/// (secrets, to be kept out of anything displayed).
pub fn expand(text: &str, env: &Env) -> Result<(String, Vec<String>), String> {
    let mut out = String::with_capacity(text.len());
    let mut secrets = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated \"${\" (write ${NAME} to use an environment variable)".to_string())?;
        let name = &after[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("\"${{{name}}}\" is not a valid environment variable reference"));
        }
        let value = env
            .get(name)
            .ok_or_else(|| format!("environment variable {name} is not set (used as ${{{name}}})"))?;
        out.push_str(value);
        secrets.push(value.clone());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((out, secrets))
}

/// The default name for a worker: the first label of its host (`your-space.hf.space` ->
/// `your-space`), or the whole address for an IP; reduced to the allowed characters.
pub fn derive_name(url: &str) -> String {
    let host = target_url::parse(url).map(|p| p.host).unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let base = if bare.parse::<std::net::IpAddr>().is_ok() {
        bare.to_string()
    } else {
        bare.split('.').next().unwrap_or("").to_string()
    };
    let mut name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        name = "worker".to_string();
    }
    name
}

pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Appends `-2`, `-3`, ... until the name is free, staying within 64 characters.
fn unique_name(base: &str, taken: &HashSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_string();
    }
    (2..)
        .map(|n| {
            let suffix = format!("-{n}");
            let keep = base.len().min(64 - suffix.len());
            format!("{}{suffix}", &base[..keep])
        })
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or_else(|| base.to_string())
}

struct RawWorker {
    name: Option<String>,
    url: String,
    url_secrets: Vec<String>,
    check: CheckDefaults,
    space_id: Option<String>,
    restart_token: Option<String>,
    paused: bool,
}

fn parse_workers(ctx: &mut Ctx, v: &Value, prefix: &str, defaults: &CheckDefaults) -> Vec<RawWorker> {
    let Some(list) = v.as_array() else {
        ctx.err(prefix, format!("expected a list of workers, got {}", kind(v)));
        return Vec::new();
    };
    let allowed: Vec<&str> = WORKER_ONLY_FIELDS.iter().chain(CHECK_FIELDS).copied().collect();
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (i, item) in list.iter().enumerate() {
        let field = format!("{prefix}[{i}]");
        let Some(obj) = ctx.object(item, &field, &allowed) else {
            continue;
        };
        let check = ctx.check_fields(obj, &field, defaults);
        let name = obj.get("name").and_then(|v| {
            let path = join(&field, "name");
            let (n, _) = ctx.string(v, &path)?;
            if !valid_name(&n) {
                ctx.err(&path, format!("expected 1-64 characters of A-Za-z0-9._-, got {n:?}"));
                None
            } else if n == SELF_NAME {
                ctx.err(&path, "\"self\" is reserved for the self-ping; choose another name");
                None
            } else if !names.insert(n.clone()) {
                ctx.err(
                    &path,
                    format!("the name {n:?} is used by another worker; names must be unique"),
                );
                None
            } else {
                Some(n)
            }
        });
        let url = match obj.get("url") {
            None => {
                ctx.err(&field, "missing field \"url\"");
                None
            }
            Some(v) => url_field(ctx, v, &join(&field, "url")),
        };
        let space_id = obj.get("space_id").and_then(|v| {
            let path = join(&field, "space_id");
            let (s, _) = ctx.string(v, &path)?;
            let ok = s.split('/').count() == 2 && s.split('/').all(|p| valid_name(p) && !p.is_empty());
            if !ok {
                ctx.err(&path, format!("expected \"owner/space\", got {s:?}"));
            }
            ok.then_some(s)
        });
        let restart_token = obj
            .get("restart_token")
            .and_then(|v| ctx.string(v, &join(&field, "restart_token")))
            .map(|(s, _)| s)
            .filter(|s| !s.is_empty());
        let paused = obj
            .get("paused")
            .and_then(|v| ctx.bool(v, &join(&field, "paused")))
            .unwrap_or(false);
        if let Some((url, url_secrets)) = url {
            out.push(RawWorker {
                paused,
                name,
                url,
                url_secrets,
                check,
                space_id,
                restart_token,
            });
        }
    }
    out
}

fn url_field(ctx: &mut Ctx, v: &Value, path: &str) -> Option<(String, Vec<String>)> {
    let (url, secrets) = ctx.string(v, path)?;
    match target_url::parse(&url) {
        Ok(_) if url.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) => {
            ctx.err(path, "the URL contains spaces or control characters");
            None
        }
        // The HTTP client takes only what RFC 3986 allows; say so now rather than at every check.
        Ok(_) if ureq::http::Uri::try_from(url.as_str()).is_err() => {
            ctx.err(
                path,
                "the URL has characters that must be percent-encoded (such as < > \" { } | ^ `)",
            );
            None
        }
        Ok(_) => Some((url, secrets)),
        Err(m) if secrets.is_empty() => {
            ctx.err(path, m);
            None
        }
        Err(_) => {
            ctx.err(
                path,
                "expected an http or https URL with a host (value not shown: it uses ${...})",
            );
            None
        }
    }
}

fn make_target(name: String, raw_url: String, url_secrets: &[String], c: CheckDefaults) -> Target {
    let (expect_body, expect_body_secret) = match c.expect_body {
        Some((s, secret)) => (Some(s), secret),
        None => (None, false),
    };
    Target {
        name,
        display_url: target_url::redact(&raw_url, url_secrets),
        url: raw_url,
        interval: c.interval,
        timeout: c.timeout,
        retries: c.retries,
        backoff: c.backoff,
        method: c.method,
        headers: c.headers,
        expect_status: c.expect_status,
        expect_body,
        expect_body_secret,
        space_id: None,
        restart_token: None,
        paused: false,
    }
}

/// Builds the configuration from an optional file `(source, text)`, the flags and the environment.
pub fn build(file: Option<(&str, &str)>, flags: &Flags, env: &Env) -> Result<Config, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let source = file.map_or("built-in defaults", |(s, _)| s).to_string();
    let empty = Map::new();
    let parsed: Option<Value> = match file {
        None => None,
        Some((src, text)) => match serde_json::from_str::<Value>(text) {
            Ok(v) => Some(v),
            Err(e) => {
                return Err(vec![ConfigError {
                    source: src.to_string(),
                    field: String::new(),
                    message: format!("invalid JSON: {e}"),
                }]);
            }
        },
    };
    let mut ctx = Ctx {
        source: source.clone(),
        env,
        errors: &mut errors,
        secrets: Vec::new(),
    };
    let top = match &parsed {
        Some(v) => ctx.object(v, "", TOP_FIELDS).unwrap_or(&empty),
        None => &empty,
    };

    let defaults = match top.get("defaults") {
        Some(v) => match ctx.object(v, "defaults", CHECK_FIELDS) {
            Some(obj) => ctx.check_fields(obj, "defaults", &CheckDefaults::default()),
            None => CheckDefaults::default(),
        },
        None => CheckDefaults::default(),
    };

    // Workers: PINGER_WORKERS replaces the file's list.
    let mut raw_workers = match env.get("PINGER_WORKERS").filter(|s| !s.trim().is_empty()) {
        Some(text) => {
            let mut env_ctx = Ctx {
                source: "PINGER_WORKERS".to_string(),
                env,
                errors: ctx.errors,
                secrets: Vec::new(),
            };
            match serde_json::from_str::<Value>(text) {
                Ok(v) => parse_workers(&mut env_ctx, &v, "workers", &defaults),
                Err(e) => {
                    env_ctx.err(
                        "",
                        format!(
                            "invalid JSON at line {} column {}: expected a JSON list of workers",
                            e.line(),
                            e.column()
                        ),
                    );
                    Vec::new()
                }
            }
        }
        None => match top.get("workers") {
            Some(v) => parse_workers(&mut ctx, v, "workers", &defaults),
            None => Vec::new(),
        },
    };

    // Names: explicit ones must be unique; derived ones avoid every other name.
    let mut taken: HashSet<String> = HashSet::from([SELF_NAME.to_string()]);
    taken.extend(raw_workers.iter().filter_map(|w| w.name.clone()));
    let mut workers = Vec::new();
    for w in raw_workers.drain(..) {
        let name = match w.name {
            Some(n) => n,
            None => {
                let n = unique_name(&derive_name(&w.url), &taken);
                taken.insert(n.clone());
                n
            }
        };
        let mut t = make_target(name, w.url, &w.url_secrets, w.check);
        t.space_id = w.space_id;
        t.restart_token = w.restart_token;
        t.paused = w.paused;
        workers.push(t);
    }

    // Self-ping: the file's url wins over PINGER_SELF_URL, which wins over the host's variables.
    let mut self_cfg = CheckDefaults {
        interval: Duration::from_secs(240),
        ..defaults.clone()
    };
    self_cfg.headers.clear();
    self_cfg.expect_body = None;
    self_cfg.method = "GET".to_string();
    self_cfg.expect_status = StatusSet::default();
    let mut self_url: Option<(String, Vec<String>)> = None;
    let mut self_off = false;
    match top.get("self_ping") {
        None => {}
        Some(Value::Bool(false)) => self_off = true,
        Some(v) if !v.is_object() => {
            ctx.err("self_ping", format!("expected an object or false, got {}", show(v)));
        }
        Some(v) => {
            if let Some(obj) = ctx.object(v, "self_ping", SELF_PING_FIELDS) {
                self_cfg = ctx.check_fields(obj, "self_ping", &self_cfg);
                if let Some(u) = obj.get("url") {
                    self_url = url_field(&mut ctx, u, "self_ping.url");
                }
            }
        }
    }
    let self_ping = if self_off {
        None
    } else {
        let from_env = if self_url.is_some() {
            None
        } else if let Some(u) = env.get("PINGER_SELF_URL").filter(|s| !s.is_empty()) {
            Some(("PINGER_SELF_URL", u.clone()))
        } else if let Some(h) = env.get("SPACE_HOST").filter(|s| !s.is_empty()) {
            Some(("SPACE_HOST", format!("https://{}/health", h.trim_end_matches('/'))))
        } else {
            env.get("RENDER_EXTERNAL_URL")
                .filter(|s| !s.is_empty())
                .map(|u| ("RENDER_EXTERNAL_URL", format!("{}/health", u.trim_end_matches('/'))))
        };
        if let Some((var, url)) = from_env {
            match target_url::parse(&url) {
                Ok(_) => self_url = Some((url, Vec::new())),
                Err(m) => ctx.errors.push(ConfigError {
                    source: var.to_string(),
                    field: String::new(),
                    message: m,
                }),
            }
        }
        self_url.map(|(url, secrets)| make_target(SELF_NAME.to_string(), url, &secrets, self_cfg))
    };

    let alerts = parse_alerts(&mut ctx, top.get("alerts"), env);

    let listen = if let Some(l) = &flags.listen {
        if l.parse::<std::net::SocketAddr>().is_err() {
            ctx.errors.push(ConfigError {
                source: "--listen".to_string(),
                field: String::new(),
                message: format!("expected an address such as 0.0.0.0:7860, got {l:?}"),
            });
        }
        l.clone()
    } else if let Some(p) = env.get("PORT").filter(|s| !s.is_empty()) {
        match p.trim().parse::<u16>() {
            Ok(port) => format!("0.0.0.0:{port}"),
            Err(_) => {
                ctx.errors.push(ConfigError {
                    source: "PORT".to_string(),
                    field: String::new(),
                    message: format!("expected a port number from 0 to 65535, got {p:?}"),
                });
                String::new()
            }
        }
    } else if let Some(v) = top.get("listen") {
        match ctx.string(v, "listen") {
            Some((l, _)) if l.parse::<std::net::SocketAddr>().is_ok() => l,
            Some((l, _)) => {
                ctx.err("listen", format!("expected an address such as 0.0.0.0:7860, got {l:?}"));
                String::new()
            }
            None => String::new(),
        }
    } else {
        format!("0.0.0.0:{DEFAULT_PORT}")
    };

    let state_file = match env.get("PINGER_STATE_FILE").filter(|s| !s.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => top
            .get("state_file")
            .and_then(|v| ctx.string(v, "state_file"))
            .map(|(s, _)| PathBuf::from(s))
            .filter(|p| !p.as_os_str().is_empty()),
    };
    let save_interval = top
        .get("save_interval")
        .and_then(|v| {
            let d = ctx.duration(v, "save_interval")?;
            ctx.limited(d, "save_interval", Duration::from_millis(10), Duration::from_secs(3600))
        })
        .unwrap_or(Duration::from_secs(60));
    let history = top
        .get("history")
        .and_then(|v| ctx.uint(v, "history", 10, 10_000))
        .map_or(100, |n| n as usize);
    let restart_cooldown = top
        .get("restart_cooldown")
        .and_then(|v| {
            let d = ctx.duration(v, "restart_cooldown")?;
            ctx.limited(d, "restart_cooldown", Duration::ZERO, Duration::from_secs(7 * 86_400))
        })
        .unwrap_or(Duration::from_secs(1800));
    let hf_api_url = match top.get("hf_api_url") {
        Some(v) => url_field(&mut ctx, v, "hf_api_url")
            .map(|(u, _)| u.trim_end_matches('/').to_string())
            .unwrap_or_default(),
        None => "https://huggingface.co".to_string(),
    };
    let header_timeout = top
        .get("header_timeout")
        .and_then(|v| {
            let d = ctx.duration(v, "header_timeout")?;
            ctx.limited(
                d,
                "header_timeout",
                Duration::from_millis(100),
                Duration::from_secs(600),
            )
        })
        .unwrap_or(Duration::from_secs(10));
    let max_connections = top
        .get("max_connections")
        .and_then(|v| ctx.uint(v, "max_connections", 1, 1_000_000))
        .map_or(1024, |n| n as usize);

    let watch_config = match top.get("watch_config") {
        None | Some(Value::Bool(true)) => Some(Duration::from_secs(5)),
        Some(Value::Bool(false)) => None,
        Some(v @ Value::String(_)) => ctx
            .duration(v, "watch_config")
            .and_then(|d| ctx.limited(d, "watch_config", Duration::from_millis(10), Duration::from_secs(3600))),
        Some(v) => {
            ctx.err(
                "watch_config",
                format!(
                    "expected true, false or a duration such as \"5s\" (how often to look), got {}",
                    show(v)
                ),
            );
            None
        }
    };

    let log_level = match env.get("RUST_LOG").map(|s| s.trim().to_ascii_lowercase()) {
        None => log::LevelFilter::Info,
        Some(s) if s.is_empty() => log::LevelFilter::Info,
        Some(s) => match s.parse::<log::LevelFilter>() {
            Ok(l) => l,
            Err(_) => {
                ctx.errors.push(ConfigError {
                    source: "RUST_LOG".to_string(),
                    field: String::new(),
                    message: format!("expected one of off, error, warn, info, debug, trace, got {s:?}"),
                });
                log::LevelFilter::Info
            }
        },
    };

    if !errors.is_empty() {
        return Err(errors);
    }

    // Things that work but will not do what the user wants.
    if workers.is_empty() {
        warnings.push("no workers configured: the service will only keep itself awake".to_string());
    }
    let on_hf = env.get("SPACE_HOST").is_some_and(|s| !s.is_empty());
    for t in workers.iter().chain(self_ping.iter()) {
        let Ok(parts) = target_url::parse(&t.url) else { continue };
        let port = parts.effective_port();
        if on_hf && ![80, 443, 8080].contains(&port) {
            warnings.push(format!(
                "worker {:?}: port {port} is blocked on Hugging Face Spaces (only 80, 443 and 8080 can be reached from a Space)",
                t.name
            ));
        }
        let window = if parts.host.ends_with(".hf.space") {
            Some(("Hugging Face Spaces", Duration::from_secs(48 * 3600)))
        } else if parts.host.ends_with(".onrender.com") {
            Some(("Render", Duration::from_secs(15 * 60)))
        } else {
            None
        };
        if let Some((host, sleep)) = window {
            if t.interval > sleep {
                warnings.push(format!(
                    "worker {:?}: interval {} is longer than {host}' sleep window of {}: the app will fall asleep between pings",
                    t.name,
                    duration::format(t.interval),
                    duration::format(sleep)
                ));
            }
        }
        if t.timeout >= t.interval {
            warnings.push(format!(
                "worker {:?}: timeout {} is not shorter than the interval {}: a slow check will skip deadlines",
                t.name,
                duration::format(t.timeout),
                duration::format(t.interval)
            ));
        }
    }
    if let Some(s) = &self_ping {
        if target_url::parse(&s.url).is_ok_and(|p| p.is_loopback()) {
            warnings.push(format!(
                "self-ping URL {} is a loopback address: a request that never leaves the machine does not count as a visit for the host's sleep timer",
                s.display_url
            ));
        }
    } else if !self_off {
        warnings.push(
            "self-ping is off: set PINGER_SELF_URL or self_ping.url to the pinger's public /health URL".to_string(),
        );
    }
    if workers.iter().any(|w| w.space_id.is_some())
        && env.get("HF_TOKEN").is_none_or(|s| s.is_empty())
        && workers
            .iter()
            .any(|w| w.space_id.is_some() && w.restart_token.is_none())
    {
        warnings.push(
            "some workers name a space_id but HF_TOKEN is not set: those Spaces will not be restarted".to_string(),
        );
    }

    Ok(Config {
        source,
        listen,
        workers,
        self_ping,
        alerts,
        state_file,
        save_interval,
        history,
        restart_cooldown,
        hf_api_url,
        hf_token: env.get("HF_TOKEN").filter(|s| !s.is_empty()).cloned(),
        admin_token: env.get("PINGER_ADMIN_TOKEN").filter(|s| !s.is_empty()).cloned(),
        log_level,
        header_timeout,
        max_connections,
        watch_config,
        warnings,
    })
}

fn parse_alerts(ctx: &mut Ctx, v: Option<&Value>, env: &Env) -> Alerts {
    let mut a = Alerts {
        webhook_url: None,
        format: AlertFormat::Json,
        failure_threshold: 3,
        success_threshold: 1,
        send_on_resolved: true,
        timeout: Duration::from_secs(10),
        retry_backoff: Duration::from_secs(2),
    };
    let mut format = None;
    if let Some(obj) = v.and_then(|v| ctx.object(v, "alerts", ALERT_FIELDS)) {
        if let Some(v) = obj.get("webhook_url") {
            if let Some((u, _)) = ctx.string(v, "alerts.webhook_url") {
                // The webhook URL is a secret: the message never quotes it.
                if target_url::parse(&u).is_ok() {
                    a.webhook_url = Some(u).filter(|s| !s.is_empty());
                } else {
                    ctx.err(
                        "alerts.webhook_url",
                        "expected an http or https URL with a host (value not shown: it is a secret)",
                    );
                }
            }
        }
        if let Some(v) = obj.get("format") {
            if let Some((f, _)) = ctx.string(v, "alerts.format") {
                match f.as_str() {
                    "discord" => format = Some(AlertFormat::Discord),
                    "slack" => format = Some(AlertFormat::Slack),
                    "json" => format = Some(AlertFormat::Json),
                    _ => ctx.err(
                        "alerts.format",
                        format!("expected \"discord\", \"slack\" or \"json\", got {f:?}"),
                    ),
                }
            }
        }
        if let Some(n) = obj
            .get("failure_threshold")
            .and_then(|v| ctx.uint(v, "alerts.failure_threshold", 1, 1000))
        {
            a.failure_threshold = n as u32;
        }
        if let Some(n) = obj
            .get("success_threshold")
            .and_then(|v| ctx.uint(v, "alerts.success_threshold", 1, 1000))
        {
            a.success_threshold = n as u32;
        }
        if let Some(b) = obj
            .get("send_on_resolved")
            .and_then(|v| ctx.bool(v, "alerts.send_on_resolved"))
        {
            a.send_on_resolved = b;
        }
        if let Some(d) = obj.get("timeout").and_then(|v| {
            let d = ctx.duration(v, "alerts.timeout")?;
            ctx.limited(
                d,
                "alerts.timeout",
                Duration::from_millis(100),
                Duration::from_secs(120),
            )
        }) {
            a.timeout = d;
        }
        if let Some(d) = obj.get("retry_backoff").and_then(|v| {
            let d = ctx.duration(v, "alerts.retry_backoff")?;
            ctx.limited(d, "alerts.retry_backoff", Duration::ZERO, Duration::from_secs(600))
        }) {
            a.retry_backoff = d;
        }
    }
    if let Some(u) = env.get("PINGER_WEBHOOK_URL").filter(|s| !s.is_empty()) {
        if target_url::parse(u).is_ok() {
            a.webhook_url = Some(u.clone());
        } else {
            ctx.errors.push(ConfigError {
                source: "PINGER_WEBHOOK_URL".to_string(),
                field: String::new(),
                message: "expected an http or https URL with a host (value not shown: it is a secret)".to_string(),
            });
        }
    }
    a.format = format.unwrap_or(match &a.webhook_url {
        Some(u) if u.contains("discord.com/api/webhooks") || u.contains("discordapp.com/api/webhooks") => {
            AlertFormat::Discord
        }
        Some(u) if u.contains("hooks.slack.com") => AlertFormat::Slack,
        _ => AlertFormat::Json,
    });
    a
}

#[cfg(test)]
mod tests;
