//! The check settings a worker inherits from `defaults` unless it sets its own (interval, timeout,
//! retries, backoff, method, headers, expected status and body), and the `Target` they become.
//! The self-ping reads the subset of them it allows.
//!
//! The settings are layered as a `Target` without a name or URL: built-in (`builtin`), then
//! `defaults`, then the worker's own fields; `named` completes it.
//!
//! A new inherited setting (such as `tls` {ca_file, insecure}) is added here: its name in `TIMING`
//! or `REQUEST` (`TIMING` reaches the self-ping too), its default in `builtin` (the field itself
//! in `Target`, mod.rs), and one `if let` in `parse`.

use super::TlsSettings;
use super::ctx::{Ctx, each_header, join, show};
use super::limits::{self, DEFAULT_METHOD, DEFAULT_STATUS, EXPECT_BODY_MAX_BYTES, INTERVAL, METHODS, STATUS_CODES};
use super::{StatusSet, Target};
use crate::target_url;
use serde_json::{Map, Value};
use std::time::Duration;

/// Timing fields: `defaults`, each worker and the self-ping take these.
pub const TIMING: &[&str] = &[
    "interval",
    "interval_minutes",
    "interval_seconds",
    "timeout",
    "retries",
    "backoff",
    "tls",
];
/// What a check sends and expects: `defaults` and each worker take these, the self-ping does not.
const REQUEST: &[&str] = &["method", "headers", "expect_status", "expect_body"];

/// The fields of `defaults`; a worker takes these and its own (see workers.rs).
pub fn fields() -> Vec<&'static str> {
    TIMING
        .iter()
        .chain(REQUEST)
        .chain(super::conditions::FIELDS)
        .copied()
        .collect()
}

const INTERVAL_FORMS: [&str; 3] = ["interval", "interval_minutes", "interval_seconds"];

/// The built-in check settings: a target with no name or URL yet, which `defaults`, then a
/// worker's own fields, are layered over (see `parse`), and which `named` completes.
pub fn builtin() -> Target {
    Target {
        name: String::new(),
        url: String::new(),
        display_url: String::new(),
        interval: INTERVAL.default,
        timeout: limits::TIMEOUT.default,
        retries: limits::RETRIES.default as u32,
        backoff: limits::BACKOFF.default,
        method: DEFAULT_METHOD.to_string(),
        headers: Vec::new(),
        expect_status: StatusSet::default(),
        expect_body: None,
        expect_body_secret: false,
        method_secret: false,
        expect_status_secret: false,
        space_id: None,
        restart_token: None,
        paused: false,
        tls: TlsSettings::default(),
        alerts: true,
        conditions: crate::conditions::Conditions::default(),
        maintenance: Vec::new(),
        push: None,
    }
}

impl Default for StatusSet {
    fn default() -> Self {
        StatusSet(vec![DEFAULT_STATUS])
    }
}

/// The check settings `settings` given a name and a URL (`url_secrets`: the `${VAR}` values in it).
pub fn named(settings: &Target, name: String, url: String, url_secrets: &[String]) -> Target {
    Target {
        name,
        display_url: target_url::redact(&url, url_secrets),
        url,
        ..settings.clone()
    }
}

/// Reads the check fields present in `obj` (at `field`), layered over `base`.
pub fn parse(ctx: &mut Ctx, obj: &Map<String, Value>, field: &str, base: &Target) -> Target {
    let mut out = base.clone();
    let at = |key: &str| join(field, key);
    if let Some(d) = interval(ctx, obj, field) {
        out.interval = d;
    }
    out.timeout = ctx
        .duration_in(obj, field, "timeout", limits::TIMEOUT)
        .unwrap_or(out.timeout);
    out.retries = ctx
        .count_in(obj, field, "retries", limits::RETRIES)
        .map_or(out.retries, |n| n as u32);
    out.backoff = ctx
        .duration_in(obj, field, "backoff", limits::BACKOFF)
        .unwrap_or(out.backoff);
    if let Some((m, secret)) = obj.get("method").and_then(|v| method(ctx, v, &at("method"))) {
        out.method = m;
        out.method_secret = secret;
    }
    if let Some(v) = obj.get("headers") {
        out.headers = headers(ctx, v, &at("headers"));
    }
    if let Some((s, secret)) = obj
        .get("expect_status")
        .and_then(|v| status_set(ctx, v, &at("expect_status")))
    {
        out.expect_status = s;
        out.expect_status_secret = secret;
    }
    if let Some((text, secret)) = obj
        .get("expect_body")
        .and_then(|v| expect_body(ctx, v, &at("expect_body")))
    {
        out.expect_body = Some(text);
        out.expect_body_secret = secret;
    }
    if let Some(v) = obj.get("tls") {
        out.tls = super::tls::parse(ctx, v, &at("tls"), &out.tls);
    }
    super::conditions::parse(ctx, obj, field, &mut out);
    out
}

/// `interval`, `interval_minutes` or `interval_seconds`: exactly one form, within `INTERVAL`.
fn interval(ctx: &mut Ctx, obj: &Map<String, Value>, field: &str) -> Option<Duration> {
    let forms: Vec<&str> = INTERVAL_FORMS.into_iter().filter(|k| obj.contains_key(*k)).collect();
    if forms.len() > 1 {
        ctx.err(
            field,
            format!("give only one of {} (they set the same value)", forms.join(", ")),
        );
        return None;
    }
    let key = *forms.first()?;
    let path = join(field, key);
    let v = &obj[key];
    if key == "interval" {
        return ctx.duration(v, &path, INTERVAL);
    }
    let scale = if key == "interval_minutes" { 60.0 } else { 1.0 };
    let d = match v.as_f64() {
        Some(n) if n.is_finite() && n >= 0.0 && n * scale <= INTERVAL.max.as_secs_f64() => {
            Duration::from_millis((n * scale * 1000.0).round() as u64)
        }
        _ => {
            ctx.err(&path, format!("expected a positive number, got {}", show(v)));
            return None;
        }
    };
    ctx.within(d, &path, INTERVAL)
}

/// The method, and whether it came from `${VAR}` (then it is a secret, shown redacted).
fn method(ctx: &mut Ctx, v: &Value, path: &str) -> Option<(String, bool)> {
    let (m, secrets) = ctx.string(v, path)?;
    let secret = !secrets.is_empty();
    let upper = m.to_ascii_uppercase();
    if METHODS.contains(&upper.as_str()) {
        Some((upper, secret))
    } else {
        let got = if secret {
            "a value from ${...}".to_string()
        } else {
            format!("{m:?}")
        };
        ctx.err(path, format!("expected one of {}, got {got}", METHODS.join(", ")));
        None
    }
}

fn expect_body(ctx: &mut Ctx, v: &Value, path: &str) -> Option<(String, bool)> {
    let (s, secrets) = ctx.string(v, path)?;
    if s.is_empty() {
        ctx.err(path, "expected a non-empty string");
        None
    } else if s.len() > EXPECT_BODY_MAX_BYTES {
        ctx.err(
            path,
            format!("expected at most {} KiB of text", EXPECT_BODY_MAX_BYTES / 1024),
        );
        None
    } else {
        Some((s, !secrets.is_empty()))
    }
}

/// Request headers (`headers` of a worker or `defaults`, and of a `webhook` alert channel).
pub(super) fn headers(ctx: &mut Ctx, v: &Value, field: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    each_header(ctx, v, field, "values", |ctx, path, name, value| {
        let Some(value) = ctx.text(value, &path) else {
            return;
        };
        // The value is a secret: the message never quotes it.
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            ctx.err(
                &path,
                "the value contains a line break or NUL, which HTTP does not allow",
            );
        } else {
            out.push((name.clone(), value));
        }
    });
    out
}

/// The statuses that count as success, and whether any of them came from `${VAR}` (then the
/// whole set is a secret, shown redacted).
fn status_set(ctx: &mut Ctx, v: &Value, field: &str) -> Option<(StatusSet, bool)> {
    let expected = "expected a status code, a range string like \"200-399\", or a list of those";
    let items: Vec<&Value> = match v {
        Value::Array(a) if !a.is_empty() => a.iter().collect(),
        Value::Array(_) => {
            ctx.err(field, format!("{expected}, got an empty list"));
            return None;
        }
        other => vec![other],
    };
    let (lo_code, hi_code) = STATUS_CODES;
    let mut ranges = Vec::new();
    let mut secret = false;
    for item in items {
        let (range, shown) = match item {
            Value::Number(n) => (n.as_u64().map(|c| (c, c)), show(item)),
            Value::String(_) => {
                let (s, secrets) = ctx.string(item, field)?;
                secret |= !secrets.is_empty();
                let range = match s.split_once('-') {
                    Some((a, b)) => a.trim().parse().ok().zip(b.trim().parse().ok()),
                    None => s.trim().parse().ok().map(|c| (c, c)),
                };
                let shown = if secrets.is_empty() {
                    show(item)
                } else {
                    "a value from ${...}".to_string()
                };
                (range, shown)
            }
            _ => (None, show(item)),
        };
        match range {
            Some((lo, hi)) if (lo_code..=hi_code).contains(&lo) && (lo..=hi_code).contains(&hi) => {
                ranges.push((lo as u16, hi as u16));
            }
            _ => {
                ctx.err(field, format!("{expected} (codes {lo_code}-{hi_code}), got {shown}"));
                return None;
            }
        }
    }
    Some((StatusSet(ranges), secret))
}
