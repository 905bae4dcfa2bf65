//! The service's own top-level settings: where it listens, how it guards its HTTP server, where it
//! keeps history, how it restarts Spaces, the admin token and the log level. Each is read from the
//! flag, variable or file field that can set it, in that order of precedence.
//!
//! A new top-level setting (such as `watch_config`) is added here: a field of `Settings`, its name
//! in `FIELDS`, and one line in `parse`; its default and bounds go in limits.rs. Code after loading
//! reads it as `cfg.settings.NAME`.

use super::CaFile;
use super::ctx::{Ctx, env_var, show};
use super::limits::{
    CERT_CHECK_INTERVAL, DEFAULT_HF_API_URL, DEFAULT_PORT, HEADER_TIMEOUT, HISTORY, MAX_CONNECTIONS, RESTART_COOLDOWN,
    SAVE_INTERVAL, WATCH_CONFIG,
};
use super::proxy::Proxies;
use super::{Flags, redacted};
use crate::target_url;
use serde_json::{Map, Value};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The top-level file fields this module reads.
pub const FIELDS: &[&str] = &[
    "listen",
    "state_file",
    "save_interval",
    "history",
    "restart_cooldown",
    "hf_api_url",
    "header_timeout",
    "max_connections",
    "watch_config",
    "cert_check_interval",
    "state_url",
    "remote_save_interval",
    "remote_timeout",
    "s3_path_style",
];

#[derive(Clone)]
pub struct Settings {
    pub listen: String,
    pub state_file: Option<PathBuf>,
    pub save_interval: Duration,
    pub history: usize,
    pub restart_cooldown: Duration,
    pub hf_api_url: String,
    /// A secret: never display it.
    pub admin_token: Option<String>,
    pub log_level: log::LevelFilter,
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// How often the configuration file is looked at for changes; `None`: not watched.
    pub watch_config: Option<Duration>,
    /// How often a worker reads its server's certificate (for its expiry).
    pub cert_check_interval: Duration,
    /// `SSL_CERT_FILE`: trusted for checks, alerts and restarts.
    pub ssl_cert_file: Option<CaFile>,
    /// Outbound proxies from the environment; their credentials never show in `Debug`.
    pub proxies: Proxies,
    /// `state_url` and the remote stores' settings (keys and tokens: secrets).
    pub remote: super::Remote,
    /// Values `${VAR}` put into `listen`, `state_file` and `state_url`: secrets, so `scrub` hides them
    /// wherever those two are shown (`check`, logs, `persistence_error`).
    pub secrets: Vec<String>,
}

impl Settings {
    /// `text` (the listen address or the state file's path, or a message holding one) with
    /// every value that came from `${VAR}` replaced by `REDACTED`.
    pub fn scrub(&self, text: &str) -> String {
        self.secrets
            .iter()
            .filter(|s| !s.is_empty())
            .fold(text.to_string(), |t, s| t.replace(s.as_str(), "REDACTED"))
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("state_file", &self.state_file)
            .field("save_interval", &self.save_interval)
            .field("history", &self.history)
            .field("restart_cooldown", &self.restart_cooldown)
            .field("hf_api_url", &target_url::redact(&self.hf_api_url, &[]))
            .field("admin_token", &redacted(&self.admin_token))
            .field("log_level", &self.log_level)
            .field("header_timeout", &self.header_timeout)
            .field("max_connections", &self.max_connections)
            .field("watch_config", &self.watch_config)
            .field("cert_check_interval", &self.cert_check_interval)
            .field("ssl_cert_file", &self.ssl_cert_file)
            .field("proxies", &self.proxies)
            .field("remote", &self.remote)
            .finish()
    }
}

pub fn parse(ctx: &mut Ctx, top: &Map<String, Value>, flags: &Flags) -> Settings {
    let env = ctx.env;
    let mut secrets = Vec::new();
    let hf_api_url = match top.get("hf_api_url") {
        Some(v) => ctx
            .url(v, "hf_api_url")
            .map(|(u, _)| u.trim_end_matches('/').to_string())
            .unwrap_or_default(),
        None => DEFAULT_HF_API_URL.to_string(),
    };
    let remote = super::remote::parse(ctx, top, &hf_api_url, &mut secrets);
    Settings {
        listen: listen(ctx, top.get("listen"), flags, &mut secrets),
        state_file: match (&flags.state_file, env_var(env, "PINGER_STATE_FILE")) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(p)) => Some(PathBuf::from(p)),
            (None, None) => top
                .get("state_file")
                .and_then(|v| ctx.string(v, "state_file"))
                .map(|(p, from_env)| {
                    secrets.extend(from_env);
                    PathBuf::from(p)
                })
                .filter(|p| !p.as_os_str().is_empty()),
        },
        save_interval: ctx
            .duration_in(top, "", "save_interval", SAVE_INTERVAL)
            .unwrap_or(SAVE_INTERVAL.default),
        history: ctx.count_in(top, "", "history", HISTORY).unwrap_or(HISTORY.default) as usize,
        restart_cooldown: ctx
            .duration_in(top, "", "restart_cooldown", RESTART_COOLDOWN)
            .unwrap_or(RESTART_COOLDOWN.default),
        hf_api_url,
        admin_token: env_var(env, "PINGER_ADMIN_TOKEN").cloned(),
        log_level: log_level(ctx),
        header_timeout: ctx
            .duration_in(top, "", "header_timeout", HEADER_TIMEOUT)
            .unwrap_or(HEADER_TIMEOUT.default),
        max_connections: ctx
            .count_in(top, "", "max_connections", MAX_CONNECTIONS)
            .unwrap_or(MAX_CONNECTIONS.default) as usize,
        watch_config: watch_config(ctx, top.get("watch_config")),
        cert_check_interval: ctx
            .duration_in(top, "", "cert_check_interval", CERT_CHECK_INTERVAL)
            .unwrap_or(CERT_CHECK_INTERVAL.default),
        ssl_cert_file: super::tls::ssl_cert_file(ctx),
        proxies: super::tls::proxies(ctx),
        remote,
        secrets,
    }
}

/// `true` (the default: every 5 s), `false`, or how often to look, such as `"1s"`.
fn watch_config(ctx: &mut Ctx, v: Option<&Value>) -> Option<Duration> {
    match v {
        None | Some(Value::Bool(true)) => Some(WATCH_CONFIG.default),
        Some(Value::Bool(false)) => None,
        Some(v @ Value::String(_)) => ctx.duration(v, "watch_config", WATCH_CONFIG),
        Some(v) => {
            ctx.err(
                "watch_config",
                format!(
                    "expected true, false or how often to look at the file (such as \"5s\"), got {}",
                    show(v)
                ),
            );
            None
        }
    }
}

/// `--listen`, else all interfaces on `PORT`, else the file's `listen`, else the default port.
fn listen(ctx: &mut Ctx, file: Option<&Value>, flags: &Flags, secrets: &mut Vec<String>) -> String {
    let expected = "expected an address such as 0.0.0.0:7860";
    if let Some(l) = &flags.listen {
        if l.parse::<SocketAddr>().is_err() {
            ctx.err_in("--listen", format!("{expected}, got {l:?}"));
        }
        l.clone()
    } else if let Some(p) = env_var(ctx.env, "PORT") {
        match p.trim().parse::<u16>() {
            Ok(port) => format!("0.0.0.0:{port}"),
            Err(_) => {
                ctx.err_in("PORT", format!("expected a port number from 0 to 65535, got {p:?}"));
                String::new()
            }
        }
    } else if let Some(v) = file {
        match ctx.string(v, "listen").map(|(l, from_env)| {
            secrets.extend(from_env);
            l
        }) {
            Some(l) if l.parse::<SocketAddr>().is_ok() => l,
            Some(l) => {
                ctx.err("listen", format!("{expected}, got {l:?}"));
                String::new()
            }
            None => String::new(),
        }
    } else {
        format!("0.0.0.0:{DEFAULT_PORT}")
    }
}

fn log_level(ctx: &mut Ctx) -> log::LevelFilter {
    let Some(s) = ctx.env.get("RUST_LOG").map(|s| s.trim().to_ascii_lowercase()) else {
        return log::LevelFilter::Info;
    };
    if s.is_empty() {
        return log::LevelFilter::Info;
    }
    s.parse().unwrap_or_else(|_| {
        ctx.err_in(
            "RUST_LOG",
            format!("expected one of off, error, warn, info, debug, trace, got {s:?}"),
        );
        log::LevelFilter::Info
    })
}
