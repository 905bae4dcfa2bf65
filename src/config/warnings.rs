//! Hosting advice: settings that are valid but will not do what the user wants (a port a Space
//! cannot reach, an interval longer than the host's sleep window, a timeout that is not shorter
//! than the interval, a self-ping that never leaves the machine, Spaces that cannot be restarted).
//! Logged at start-up and printed by `check`; never an error.
//!
//! The same advice for many workers is one line (`1000 workers ("a", "b", "c" and 997 more):
//! timeout 2m is not shorter than the interval 10s: ...`), so a large fleet's log stays readable;
//! advice shared by only a few workers stays one line per worker. A new piece of per-worker advice
//! (such as `tls.insecure`) is one more `if` in `advice`; it is grouped like the rest.

use super::ctx::env_var;
use super::limits::{HF_OPEN_PORTS, SLEEP_WINDOWS};
use super::self_ping::SelfPing;
use super::{Env, Shard, Target};
use crate::{duration, target_url};
use std::collections::HashMap;

/// From this many workers sharing one piece of advice on, it is one summary line.
const GROUP_AT: usize = 4;
/// How many worker names a summary line lists before "and N more".
const NAMES_SHOWN: usize = 3;

/// `workers` are this shard's (all of them when `shard` is `None`), out of `configured`.
pub fn collect(
    workers: &[Target],
    configured: usize,
    shard: Option<Shard>,
    self_ping: &SelfPing,
    env: &Env,
) -> Vec<String> {
    let mut warnings = Vec::new();
    match shard {
        _ if !workers.is_empty() => {}
        Some(s) if configured > 0 => warnings.push(format!(
            "shard {s} runs none of the {configured} configured workers: the service will only keep itself awake"
        )),
        _ => warnings.push("no workers configured: the service will only keep itself awake".to_string()),
    }
    let on_hf = env_var(env, "SPACE_HOST").is_some();
    let per_target = workers
        .iter()
        .chain(self_ping.target.iter())
        .flat_map(|t| advice(t, on_hf).into_iter().map(move |a| (t.name.as_str(), a)));
    warnings.extend(group(per_target));
    if let Some(s) = &self_ping.target {
        if target_url::parse(&s.url).is_ok_and(|p| p.is_loopback()) {
            warnings.push(format!(
                "self-ping URL {} is a loopback address: a request that never leaves the machine does not count as a visit for the host's sleep timer",
                s.display_url
            ));
        }
    } else if !self_ping.off {
        warnings.push(
            "self-ping is off: set PINGER_SELF_URL or self_ping.url to the pinger's public /health URL".to_string(),
        );
    }
    // The restart token is resolved by now (the worker's own, else HF_TOKEN), so a Space without
    // one is a Space no token reaches.
    if workers
        .iter()
        .any(|w| w.space_id.is_some() && w.restart_token.is_none())
    {
        warnings.push(
            "some workers name a space_id but HF_TOKEN is not set: those Spaces will not be restarted".to_string(),
        );
    }
    warnings
}

/// The advice for one target, each without the target's name.
fn advice(t: &Target, on_hf: bool) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(parts) = target_url::parse(&t.url) else {
        return out;
    };
    let port = parts.effective_port();
    if on_hf && !HF_OPEN_PORTS.contains(&port) {
        out.push(format!(
            "port {port} is blocked on Hugging Face Spaces (only 80, 443 and 8080 can be reached from a Space)"
        ));
    }
    let window = SLEEP_WINDOWS.iter().find(|(suffix, _, _)| parts.host.ends_with(suffix));
    if let Some((_, host, sleep)) = window {
        if t.interval > *sleep {
            out.push(format!(
                "interval {} is longer than {host} sleep window of {}: the app will fall asleep between pings",
                duration::format(t.interval),
                duration::format(*sleep)
            ));
        }
    }
    if t.tls.insecure && parts.scheme == "https" {
        out.push(
            "tls.insecure is set: the server's certificate is not verified, so anyone in between can answer for it"
                .to_string(),
        );
    }
    if t.timeout >= t.interval {
        out.push(format!(
            "timeout {} is not shorter than the interval {}: a slow check will skip deadlines",
            duration::format(t.timeout),
            duration::format(t.interval)
        ));
    }
    out
}

/// One line per (worker, advice) pair, except that advice shared by `GROUP_AT` or more workers
/// becomes one line naming the first few. Groups keep the order in which they first appear.
fn group<'a>(pairs: impl Iterator<Item = (&'a str, String)>) -> Vec<String> {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (name, text) in pairs {
        let i = *index.entry(text.clone()).or_insert_with(|| {
            groups.push((text, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(name);
    }
    let mut out = Vec::new();
    for (text, names) in groups {
        if names.len() < GROUP_AT {
            out.extend(names.iter().map(|n| format!("worker {n:?}: {text}")));
            continue;
        }
        let shown: Vec<String> = names.iter().take(NAMES_SHOWN).map(|n| format!("{n:?}")).collect();
        out.push(format!(
            "{} workers ({} and {} more): {text}",
            names.len(),
            shown.join(", "),
            names.len() - shown.len()
        ));
    }
    out
}
