//! Configuration: the JSON file, environment variables and flags merged into one validated
//! `Config`. Parsing walks a `serde_json::Value` by hand rather than deriving, so that one pass
//! reports *every* problem with its source and field path (`workers[2].interval`), rejects unknown
//! fields, and tracks which strings came from `${VAR}` (those are secrets).
//!
//! One module per section, each owning its fields, its parsing and its part of `Config`:
//! - `ctx`: walking one source's JSON and collecting errors; `${VAR}` expansion; the value kinds
//!   (a duration within limits, a bounded count, a URL, ...).
//! - `limits`: every default and bound.
//! - `check`: settings a worker inherits from `defaults` (add `tls` {ca_file, insecure} there,
//!   listed in `check::TIMING` so that it applies to `defaults`, each worker and the self-ping).
//! - `workers`: the worker list, names, restart tokens (add `"paused"`, `"alerts": false` there).
//! - `shard`: `--shard I/N` / `PINGER_SHARD`, and which of the named workers this instance runs.
//!   It is applied in `build`, so a reloaded configuration is sharded like the first one.
//! - `self_ping`, `alerts` (a list of channels replaces its one webhook there), `settings` (the
//!   top-level service settings: add `watch_config` there), `warnings` (hosting advice).
//!
//! `Debug` never shows a secret: `Target`, `Alerts` and `Settings` print `REDACTED` in place of
//! header values, an expected body from `${VAR}`, tokens and the webhook URL, and URLs in their
//! redacted form, so `{:?}` of a `Config` is safe to log. A field added to one of them stays out
//! of its `Debug` until it is listed there.

mod alerts;
pub mod channel;
mod check;
mod conditions;
mod ctx;
pub mod limits;
pub mod proxy;
pub mod push;
pub mod remote;
mod self_ping;
mod settings;
pub mod shard;
pub mod tls;
mod warnings;
mod workers;

pub use alerts::{Alerts, Channel, Kind};
pub use ctx::expand;
pub use limits::{DEFAULT_PORT, SELF_NAME};
pub use push::Push;
pub use remote::{Credentials, HubSettings, Remote, S3Settings, StateUrl};
pub use settings::Settings;
pub use shard::Shard;
pub use tls::{CaFile, TlsSettings};
pub use workers::{derive_name, valid_name};

use ctx::Ctx;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The process environment as a plain map, so loading is a pure function of its inputs.
pub type Env = BTreeMap<String, String>;

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
#[derive(Clone, PartialEq)]
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
    /// The method came from `${VAR}`: a secret, shown redacted.
    pub method_secret: bool,
    /// Values are secrets: never display them.
    pub headers: Vec<(String, String)>,
    pub expect_status: StatusSet,
    /// A status of `expect_status` came from `${VAR}`: the set is a secret, shown redacted.
    pub expect_status_secret: bool,
    pub expect_body: Option<String>,
    /// The expected body text came from `${VAR}`, so error messages must not quote it.
    pub expect_body_secret: bool,
    pub space_id: Option<String>,
    /// The token that restarts `space_id`: the worker's own `restart_token`, else `HF_TOKEN`.
    /// A secret: never display it.
    pub restart_token: Option<String>,
    /// `"paused": true`: the worker starts paused (see fleet.rs for how a reload applies it).
    pub paused: bool,
    /// `tls`: extra trusted CAs, or no verification at all.
    pub tls: TlsSettings,
    /// `false` when the worker was configured with `"alerts": false`: no channel speaks for it.
    pub alerts: bool,
    /// `expect_latency`, `expect_json`, `expect_header`, `expect_body_absent` (config/conditions.rs).
    pub conditions: crate::conditions::Conditions,
    /// The worker's own `maintenance` windows and the top-level ones.
    pub maintenance: Vec<crate::maintenance::Window>,
    /// A heartbeat worker: checked by the reports it sends, not by requests. Its `url` is empty
    /// and its `display_url` the path reports go to; its `interval` is its period.
    pub push: Option<Push>,
}

impl Target {
    pub fn is_push(&self) -> bool {
        self.push.is_some()
    }

    /// The method as it may be shown (`check`, `Debug`).
    pub fn shown_method(&self) -> &str {
        if self.method_secret { REDACTED } else { &self.method }
    }

    /// The accepted statuses as they may be shown (`check`, `Debug`).
    pub fn shown_expect_status(&self) -> String {
        if self.expect_status_secret {
            REDACTED.to_string()
        } else {
            self.expect_status.to_string()
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(n, _)| (n.as_str(), REDACTED)).collect();
        let expect_body = match &self.expect_body {
            Some(_) if self.expect_body_secret => Some(REDACTED),
            other => other.as_deref(),
        };
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("url", &self.display_url)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("method", &self.shown_method())
            .field("headers", &headers)
            .field("expect_status", &self.shown_expect_status())
            .field("expect_body", &expect_body)
            // It may come from `${VAR}`; restart log lines name the worker instead.
            .field("space_id", &redacted(&self.space_id))
            .field("restart_token", &redacted(&self.restart_token))
            .field("paused", &self.paused)
            .field("tls", &self.tls)
            .field("alerts", &self.alerts)
            .field("conditions", &self.conditions)
            .field("maintenance", &self.maintenance)
            .field("push", &self.push)
            .finish()
    }
}

const REDACTED: &str = "REDACTED";

/// What `Debug` shows for an optional secret: whether it is set, never its value.
fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| REDACTED)
}

/// Everything the service needs, validated and complete: no `Option` stands for a default.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: String,
    pub workers: Vec<Target>,
    pub self_ping: Option<Target>,
    pub alerts: Alerts,
    pub settings: Settings,
    pub warnings: Vec<String>,
    /// The share of the workers this instance runs (`None`: all of them).
    pub shard: Option<Shard>,
    /// How many workers the configuration lists, this shard's and the others'.
    pub configured_workers: usize,
}

/// What the command line contributes to the configuration.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    /// `--shard I/N`, as written (validated by `load`).
    pub shard: Option<String>,
    /// `--state-file PATH` (`once`): wins over `PINGER_STATE_FILE` and the file's `state_file`.
    pub state_file: Option<PathBuf>,
}

/// The configuration file: `--config`, else `PINGER_CONFIG`, else `./pinger.json` if it exists.
pub fn file_path(flags: &Flags, env: &Env) -> Option<PathBuf> {
    match (&flags.config, ctx::env_var(env, "PINGER_CONFIG")) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(p)) => Some(PathBuf::from(p)),
        _ => Some(PathBuf::from("pinger.json")).filter(|p| p.exists()),
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

/// Top-level file fields read here rather than by `settings`.
const SECTIONS: &[&str] = &["defaults", "self_ping", "workers", "alerts", "maintenance"];

/// Builds the configuration from an optional file `(source, text)`, the flags and the environment.
pub fn build(file: Option<(&str, &str)>, flags: &Flags, env: &Env) -> Result<Config, Vec<ConfigError>> {
    let source = file.map_or("built-in defaults", |(s, _)| s).to_string();
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
    let mut errors = Vec::new();
    let mut ctx = Ctx::new(source.clone(), env, &mut errors);
    let top_fields: Vec<&str> = SECTIONS.iter().chain(settings::FIELDS).copied().collect();
    let empty = Map::new();
    let top = parsed
        .as_ref()
        .and_then(|v| ctx.object(v, "", &top_fields))
        .unwrap_or(&empty);

    let defaults = match top
        .get("defaults")
        .and_then(|v| ctx.object(v, "defaults", &check::fields()))
    {
        Some(obj) => check::parse(&mut ctx, obj, "defaults", &check::builtin()),
        None => check::builtin(),
    };
    let mut workers = workers::parse(&mut ctx, top.get("workers"), &defaults);
    if let Some(v) = top.get("maintenance") {
        // Every worker's, after its own: the self-ping keeps the host awake and has none.
        let every = conditions::maintenance(&mut ctx, v, "maintenance");
        for w in &mut workers {
            w.maintenance.extend_from_slice(&every);
        }
    }
    let self_ping = self_ping::parse(&mut ctx, top.get("self_ping"), &defaults);
    let alerts = alerts::parse(&mut ctx, top.get("alerts"));
    // Checked against every configured worker, not only this shard's: all shards share one
    // configuration, so a channel may name a worker another shard runs.
    let names: Vec<String> = workers
        .iter()
        .chain(&self_ping.target)
        .map(|w| w.name.clone())
        .collect();
    alerts::check_workers(&mut ctx, &alerts, &names);
    let configured_workers = workers.len();
    let shard = shard::select(&mut ctx, flags);
    let workers = shard::keep(workers, shard);
    let settings = settings::parse(&mut ctx, top, flags);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut warnings = warnings::collect(&workers, configured_workers, shard, &self_ping, env);
    if let Some(url) = &settings.remote.state_url {
        warnings.extend(remote::warnings(&settings.remote, &settings.scrub(&url.to_string())));
    }
    Ok(Config {
        source,
        warnings,
        workers,
        self_ping: self_ping.target,
        alerts,
        settings,
        shard,
        configured_workers,
    })
}

#[cfg(test)]
mod tests;
