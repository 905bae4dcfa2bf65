//! The worker list: from `PINGER_WORKERS` (which replaces the file's list: a JSON list like the
//! file's, or a plain list of URLs separated by spaces, commas or newlines) or the file's
//! `workers`; each worker's own fields over the inherited check settings (check.rs); names
//! checked, derived and made unique; the restart token resolved (the worker's own, else
//! `HF_TOKEN`).
//!
//! A new worker-only field (such as `"paused": true` or `"alerts": false`) is added here: its name
//! in `OWN_FIELDS`, a field of `Target` (mod.rs), and one line in `parse_one` that reads it.
//! Choosing a share of the list (`--shard I/N`, `PINGER_SHARD`) belongs in `parse`, after the
//! names are final, so a worker's name and its share do not depend on the shard.

use super::ctx::{Ctx, env_var, join, kind};
use super::limits::{NAME_MAX_CHARS, SELF_NAME};
use super::{Env, Target, check, push};
use crate::target_url;
use serde_json::Value;
use std::collections::HashSet;

/// Fields a worker has beyond the check settings it shares with `defaults`.
const OWN_FIELDS: &[&str] = &[
    "name",
    "url",
    "space_id",
    "restart_token",
    "alerts",
    "paused",
    "maintenance",
];

/// The configured workers, named, with the check settings of `defaults` under their own.
pub fn parse(ctx: &mut Ctx, file_list: Option<&Value>, defaults: &Target) -> Vec<Target> {
    let env = ctx.env;
    let mut workers = match env_var(env, "PINGER_WORKERS").filter(|s| !s.trim().is_empty()) {
        Some(text) => from_env(&mut ctx.for_source("PINGER_WORKERS"), text, defaults),
        None => file_list.map_or_else(Vec::new, |v| parse_list(ctx, v, defaults)),
    };
    name_the_unnamed(&mut workers);
    resolve_restart_tokens(&mut workers, env);
    workers
}

/// The two forms `PINGER_WORKERS` takes, for error messages.
const BOTH_FORMS: &str = "expected a JSON list of workers such as [{\"url\": \"https://a.hf.space/health\"}], \
or URLs separated by spaces, commas or newlines such as https://a.hf.space/health, https://b.hf.space/health";

/// `PINGER_WORKERS`: JSON when it starts like JSON, else a plain list of URLs, each a worker with
/// the defaults. The value is not quoted in errors: a host's secret often holds tokens.
fn from_env(ctx: &mut Ctx, text: &str, defaults: &Target) -> Vec<Target> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        return match serde_json::from_str::<Value>(text) {
            Ok(v) => parse_list(ctx, &v, defaults),
            Err(e) => {
                ctx.err(
                    "",
                    format!("invalid JSON at line {} column {}: {BOTH_FORMS}", e.line(), e.column()),
                );
                Vec::new()
            }
        };
    }
    let items: Vec<&str> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(bad) = items.iter().position(|s| !s.contains("://")) {
        ctx.err("", format!("item {} is neither JSON nor a URL: {BOTH_FORMS}", bad + 1));
        return Vec::new();
    }
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let (url, secrets) = ctx.url(&Value::String(item.to_string()), &format!("workers[{i}].url"))?;
            Some(check::named(defaults, String::new(), url, &secrets))
        })
        .collect()
}

/// Workers as written; a worker without a `name` gets one in `name_the_unnamed`.
fn parse_list(ctx: &mut Ctx, v: &Value, defaults: &Target) -> Vec<Target> {
    let Some(list) = v.as_array() else {
        ctx.err("workers", format!("expected a list of workers, got {}", kind(v)));
        return Vec::new();
    };
    let mut names = HashSet::new();
    list.iter()
        .enumerate()
        .filter_map(|(i, item)| parse_one(ctx, item, &format!("workers[{i}]"), defaults, &mut names))
        .collect()
}

fn parse_one(
    ctx: &mut Ctx,
    item: &Value,
    field: &str,
    defaults: &Target,
    names: &mut HashSet<String>,
) -> Option<Target> {
    let allowed: Vec<&str> = OWN_FIELDS
        .iter()
        .chain(push::FIELDS)
        .copied()
        .chain(check::fields())
        .collect();
    let obj = ctx.object(item, field, &allowed)?;
    let name = obj.get("name").and_then(|v| name(ctx, v, &join(field, "name"), names));
    let paused = obj.get("paused").and_then(|v| ctx.bool(v, &join(field, "paused")));
    let alerts = alerts(ctx, obj.get("alerts"), field);
    let maintenance = obj
        .get("maintenance")
        .map(|v| super::conditions::maintenance(ctx, v, &join(field, "maintenance")))
        .unwrap_or_default();
    if obj.contains_key("push") {
        let base = Target {
            paused: paused.unwrap_or(false),
            alerts,
            maintenance,
            ..check::builtin()
        };
        return push::parse(ctx, obj, field, name, base);
    }
    if obj.contains_key("token") {
        ctx.err(
            &join(field, "token"),
            "only a push worker takes a \"token\" (add \"push\": {\"period\": ..., \"grace\": ...} and remove \"url\")",
        );
    }
    let check = check::parse(ctx, obj, field, defaults);
    let url = match obj.get("url") {
        None => {
            ctx.err(field, "missing field \"url\"");
            None
        }
        Some(v) => ctx.url(v, &join(field, "url")),
    };
    let space_id = obj
        .get("space_id")
        .and_then(|v| space_id(ctx, v, &join(field, "space_id")));
    let restart_token = obj
        .get("restart_token")
        .and_then(|v| ctx.text(v, &join(field, "restart_token")))
        .filter(|s| !s.is_empty());
    let (url, url_secrets) = url?;
    let mut target = check::named(&check, name.unwrap_or_default(), url, &url_secrets);
    target.space_id = space_id;
    target.restart_token = restart_token;
    target.paused = paused.unwrap_or(false);
    target.alerts = alerts;
    target.maintenance = maintenance;
    Some(target)
}

/// `"alerts": false` (never alert for this worker) or `true` (the default).
fn alerts(ctx: &mut Ctx, v: Option<&Value>, field: &str) -> bool {
    match v {
        Some(v) if v.as_bool() == Some(false) => false,
        Some(v) if v.as_bool() == Some(true) => true,
        Some(v) => {
            ctx.err(
                &join(field, "alerts"),
                format!("expected false (never alert for this worker) or true, got {}", kind(v)),
            );
            true
        }
        None => true,
    }
}

fn name(ctx: &mut Ctx, v: &Value, path: &str, names: &mut HashSet<String>) -> Option<String> {
    let (n, from_env) = ctx.string(v, path)?;
    if !from_env.is_empty() {
        ctx.err(
            path,
            "expected a literal name, not ${VAR}: a name is shown on the page, in /status and \
             in /metrics, and a value from ${VAR} is a secret",
        );
        None
    } else if !valid_name(&n) {
        ctx.err(
            path,
            format!("expected 1-{NAME_MAX_CHARS} characters of A-Za-z0-9._-, got {n:?}"),
        );
        None
    } else if n == SELF_NAME {
        ctx.err(path, "\"self\" is reserved for the self-ping; choose another name");
        None
    } else if !names.insert(n.clone()) {
        ctx.err(
            path,
            format!("the name {n:?} is used by another worker; names must be unique"),
        );
        None
    } else {
        Some(n)
    }
}

fn space_id(ctx: &mut Ctx, v: &Value, path: &str) -> Option<String> {
    let s = ctx.text(v, path)?;
    let ok = s.split('/').count() == 2 && s.split('/').all(|p| valid_name(p) && !p.is_empty());
    if !ok {
        ctx.err(path, format!("expected \"owner/space\", got {s:?}"));
    }
    ok.then_some(s)
}

/// Explicit names are unique already; a derived one avoids every other name, in list order.
fn name_the_unnamed(workers: &mut [Target]) {
    let mut taken: HashSet<String> = HashSet::from([SELF_NAME.to_string()]);
    taken.extend(workers.iter().filter(|w| !w.name.is_empty()).map(|w| w.name.clone()));
    for w in workers.iter_mut().filter(|w| w.name.is_empty()) {
        // From the shown URL: a host that came from `${VAR}` is a secret, not a name.
        w.name = unique_name(&derive_name(&w.display_url), &taken);
        taken.insert(w.name.clone());
    }
}

/// A Space is restarted with the worker's own `restart_token`, else `HF_TOKEN`.
fn resolve_restart_tokens(workers: &mut [Target], env: &Env) {
    let hf_token = env_var(env, "HF_TOKEN");
    for w in workers.iter_mut().filter(|w| w.restart_token.is_none() && !w.is_push()) {
        w.restart_token = hf_token.cloned();
    }
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
    let name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(NAME_MAX_CHARS)
        .collect();
    if name.is_empty() { "worker".to_string() } else { name }
}

pub fn valid_name(name: &str) -> bool {
    (1..=NAME_MAX_CHARS).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Appends `-2`, `-3`, ... until the name is free, staying within the name length limit.
pub fn unique_name(base: &str, taken: &HashSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_string();
    }
    (2..)
        .map(|n| {
            let suffix = format!("-{n}");
            let keep = base.len().min(NAME_MAX_CHARS - suffix.len());
            format!("{}{suffix}", &base[..keep])
        })
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or_else(|| base.to_string())
}
