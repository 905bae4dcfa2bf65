//! The `alerts` section and `PINGER_WEBHOOK_URL`: where state changes are sent, in which format,
//! and after how many failed or successful checks.
//!
//! Today `alerts` is one webhook object. A list of channels (each with type, name, thresholds,
//! workers and cert_expiry_days) goes here too: `parse` would accept an object (one channel) or a
//! list, read each with the field list of its type, and `Alerts` would become that list; mod.rs
//! only calls `parse`.

use super::ctx::{Ctx, env_var};
use super::limits::{
    ALERT_RETRY_BACKOFF, ALERT_TIMEOUT, CERT_EXPIRY_DAY_MAX, CERT_EXPIRY_DAYS, FAILURE_THRESHOLD, SEND_ON_RESOLVED,
    SUCCESS_THRESHOLD,
};
use crate::target_url;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

const FIELDS: &[&str] = &[
    "webhook_url",
    "format",
    "failure_threshold",
    "success_threshold",
    "send_on_resolved",
    "timeout",
    "retry_backoff",
    "cert_expiry_days",
];

const NOT_A_URL: &str = "expected an http or https URL with a host (value not shown: it is a secret)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertFormat {
    Discord,
    Slack,
    Json,
}

#[derive(Clone)]
pub struct Alerts {
    /// A secret (it carries the channel's credentials): never display it.
    pub webhook_url: Option<String>,
    pub format: AlertFormat,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub send_on_resolved: bool,
    /// Timeout of one delivery attempt, and the base of the backoff between the 3 retries.
    pub timeout: Duration,
    pub retry_backoff: Duration,
    /// Warn when a certificate's days left first fall under one of these; empty: never.
    pub cert_expiry_days: Vec<u32>,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            webhook_url: None,
            format: AlertFormat::Json,
            failure_threshold: FAILURE_THRESHOLD.default as u32,
            success_threshold: SUCCESS_THRESHOLD.default as u32,
            send_on_resolved: SEND_ON_RESOLVED,
            timeout: ALERT_TIMEOUT.default,
            retry_backoff: ALERT_RETRY_BACKOFF.default,
            cert_expiry_days: CERT_EXPIRY_DAYS.to_vec(),
        }
    }
}

impl fmt::Debug for Alerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alerts")
            .field("webhook_url", &super::redacted(&self.webhook_url))
            .field("format", &self.format)
            .field("failure_threshold", &self.failure_threshold)
            .field("success_threshold", &self.success_threshold)
            .field("send_on_resolved", &self.send_on_resolved)
            .field("timeout", &self.timeout)
            .field("retry_backoff", &self.retry_backoff)
            .field("cert_expiry_days", &self.cert_expiry_days)
            .finish()
    }
}

pub fn parse(ctx: &mut Ctx, v: Option<&Value>) -> Alerts {
    let mut a = Alerts::default();
    let mut format = None;
    if let Some(obj) = v.and_then(|v| ctx.object(v, "alerts", FIELDS)) {
        if let Some(u) = obj.get("webhook_url").and_then(|v| ctx.text(v, "alerts.webhook_url")) {
            // The webhook URL is a secret: the message never quotes it.
            if target_url::parse(&u).is_ok() {
                a.webhook_url = Some(u).filter(|s| !s.is_empty());
            } else {
                ctx.err("alerts.webhook_url", NOT_A_URL);
            }
        }
        if let Some(f) = obj.get("format").and_then(|v| ctx.text(v, "alerts.format")) {
            format = parse_format(&f);
            if format.is_none() {
                ctx.err(
                    "alerts.format",
                    format!("expected \"discord\", \"slack\" or \"json\", got {f:?}"),
                );
            }
        }
        let f = "alerts";
        a.failure_threshold = ctx
            .count_in(obj, f, "failure_threshold", FAILURE_THRESHOLD)
            .map_or(a.failure_threshold, |n| n as u32);
        a.success_threshold = ctx
            .count_in(obj, f, "success_threshold", SUCCESS_THRESHOLD)
            .map_or(a.success_threshold, |n| n as u32);
        if let Some(b) = obj
            .get("send_on_resolved")
            .and_then(|v| ctx.bool(v, "alerts.send_on_resolved"))
        {
            a.send_on_resolved = b;
        }
        a.timeout = ctx.duration_in(obj, f, "timeout", ALERT_TIMEOUT).unwrap_or(a.timeout);
        if let Some(days) = obj
            .get("cert_expiry_days")
            .and_then(|v| cert_expiry_days(ctx, v, "alerts.cert_expiry_days"))
        {
            a.cert_expiry_days = days;
        }
        a.retry_backoff = ctx
            .duration_in(obj, f, "retry_backoff", ALERT_RETRY_BACKOFF)
            .unwrap_or(a.retry_backoff);
    }
    if let Some(u) = env_var(ctx.env, "PINGER_WEBHOOK_URL") {
        if target_url::parse(u).is_ok() {
            a.webhook_url = Some(u.clone());
        } else {
            ctx.err_in("PINGER_WEBHOOK_URL", NOT_A_URL);
        }
    }
    a.format = format.unwrap_or_else(|| guess_format(a.webhook_url.as_deref()));
    a
}

fn parse_format(name: &str) -> Option<AlertFormat> {
    match name {
        "discord" => Some(AlertFormat::Discord),
        "slack" => Some(AlertFormat::Slack),
        "json" => Some(AlertFormat::Json),
        _ => None,
    }
}

/// The format a webhook URL's service expects, when its address says which service it is.
fn guess_format(url: Option<&str>) -> AlertFormat {
    match url {
        Some(u) if u.contains("discord.com/api/webhooks") || u.contains("discordapp.com/api/webhooks") => {
            AlertFormat::Discord
        }
        Some(u) if u.contains("hooks.slack.com") => AlertFormat::Slack,
        _ => AlertFormat::Json,
    }
}

/// A list of whole numbers of days (`[14, 7, 3, 1]`); `[]` turns certificate warnings off.
fn cert_expiry_days(ctx: &mut Ctx, v: &Value, field: &str) -> Option<Vec<u32>> {
    let expected =
        format!("expected a list of whole numbers of days from 1 to {CERT_EXPIRY_DAY_MAX}, such as [14, 7, 3, 1]");
    let Some(items) = v.as_array() else {
        ctx.err(field, format!("{expected}, got {}", super::ctx::show(v)));
        return None;
    };
    let mut days = Vec::new();
    for item in items {
        match item.as_u64() {
            Some(d) if (1..=CERT_EXPIRY_DAY_MAX).contains(&d) => days.push(d as u32),
            _ => {
                ctx.err(field, format!("{expected}, got {}", super::ctx::show(item)));
                return None;
            }
        }
    }
    Some(days)
}
