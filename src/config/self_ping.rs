//! The self-ping: the pinger visiting its own public URL so its host does not put it to sleep.
//! Its URL comes from `self_ping.url`, else `PINGER_SELF_URL`, else the host's own variables
//! (`SPACE_HOST` on Hugging Face, `RENDER_EXTERNAL_URL` on Render); `"self_ping": false` turns
//! it off. It takes the timing settings of `defaults`, never a worker's headers or expectations.
//!
//! It takes the check settings listed in `check::TIMING` (a new one there, such as `tls`, reaches
//! the self-ping with no change here).

use super::Target;
use super::check::{self, TIMING};
use super::ctx::{Ctx, env_var, show};
use super::limits::{SELF_NAME, SELF_PING_INTERVAL};
use crate::target_url;
use serde_json::Value;

/// What the configuration says about the self-ping.
pub struct SelfPing {
    pub target: Option<Target>,
    /// Turned off on purpose (`"self_ping": false`), as opposed to having no URL.
    pub off: bool,
}

pub fn parse(ctx: &mut Ctx, v: Option<&Value>, defaults: &Target) -> SelfPing {
    let mut settings = Target {
        interval: SELF_PING_INTERVAL,
        timeout: defaults.timeout,
        retries: defaults.retries,
        backoff: defaults.backoff,
        tls: defaults.tls.clone(),
        ..check::builtin()
    };
    let mut url = None;
    match v {
        None => {}
        Some(Value::Bool(false)) => {
            return SelfPing {
                target: None,
                off: true,
            };
        }
        Some(v) if !v.is_object() => {
            ctx.err("self_ping", format!("expected an object or false, got {}", show(v)));
        }
        Some(v) => {
            let fields: Vec<&str> = ["url"].iter().chain(TIMING).copied().collect();
            if let Some(obj) = ctx.object(v, "self_ping", &fields) {
                settings = check::parse(ctx, obj, "self_ping", &settings);
                url = obj.get("url").and_then(|u| ctx.url(u, "self_ping.url"));
            }
        }
    }
    let url = url.or_else(|| url_from_env(ctx));
    SelfPing {
        target: url.map(|(url, secrets)| check::named(&settings, SELF_NAME.to_string(), url, &secrets)),
        off: false,
    }
}

/// `PINGER_SELF_URL`, else the URL the host advertises for this app.
fn url_from_env(ctx: &mut Ctx) -> Option<(String, Vec<String>)> {
    let env = ctx.env;
    let (var, url) = if let Some(u) = env_var(env, "PINGER_SELF_URL") {
        ("PINGER_SELF_URL", u.clone())
    } else if let Some(h) = env_var(env, "SPACE_HOST") {
        ("SPACE_HOST", format!("https://{}/health", h.trim_end_matches('/')))
    } else {
        let u = env_var(env, "RENDER_EXTERNAL_URL")?;
        ("RENDER_EXTERNAL_URL", format!("{}/health", u.trim_end_matches('/')))
    };
    match target_url::parse(&url) {
        Ok(_) => Some((url, Vec::new())),
        Err(m) => {
            ctx.err_in(var, m);
            None
        }
    }
}
