//! `check`: validates the configuration and prints what `run` would do with it.

use super::EXIT_OK;
use crate::config::{self, Config, Target};
use crate::{conditions, duration, maintenance, probe, schedule, timefmt};
use std::time::SystemTime;

/// Prints the schedule, then the configuration's warnings.
pub fn run(cfg: &Config) -> u8 {
    print!("{}", describe_schedule(cfg));
    for w in &cfg.warnings {
        eprintln!("warning: {w}");
    }
    EXIT_OK
}

/// `off`, or each channel as `name (type)`; never a destination (they carry credentials).
fn describe_channels(channels: &[config::Channel]) -> String {
    if channels.is_empty() {
        return "off".to_string();
    }
    let list: Vec<String> = channels
        .iter()
        .map(|c| format!("{} ({})", c.name, c.kind.type_name()))
        .collect();
    format!("{} channel(s): {}", channels.len(), list.join(", "))
}

/// What `check` prints: each target's schedule and check settings.
/// What `check` says of a worker's conditions and maintenance windows, and its next window.
fn conditions_lines(t: &Target, now: SystemTime) -> Vec<String> {
    let c = &t.conditions;
    let mut parts: Vec<String> = Vec::new();
    if let Some(l) = c.latency {
        parts.push(format!("degraded when slower than {}", duration::format(l)));
    }
    for j in &c.json {
        use conditions::JsonTest as T;
        parts.push(match &j.test {
            T::Equals(v) => format!("JSON {} equals {v}", j.pointer),
            T::NotEquals(v) => format!("JSON {} not equal to {v}", j.pointer),
            T::Exists(true) => format!("JSON {} exists", j.pointer),
            T::Exists(false) => format!("JSON {} absent", j.pointer),
            T::OneOf(list) => format!("JSON {} one of {}", j.pointer, serde_json::Value::from(list.clone())),
        });
    }
    for (name, want) in &c.headers {
        parts.push(format!("header {name} contains {want:?}"));
    }
    if let Some(text) = &c.body_absent {
        parts.push(format!("body must not contain {text:?}"));
    }
    let mut lines = Vec::new();
    if !parts.is_empty() {
        lines.push(format!("conditions: {}", parts.join("; ")));
    }
    if !t.maintenance.is_empty() {
        let windows: Vec<String> = t.maintenance.iter().map(maintenance::describe).collect();
        lines.push(format!("maintenance: {}", windows.join("; ")));
        let now_ms = i64::try_from(timefmt::unix_millis(now)).unwrap_or(i64::MAX);
        let next = match maintenance::active_until(&t.maintenance, now_ms) {
            Some(end) => format!("now, until {}", maintenance::rfc3339_ms(end)),
            None => match maintenance::next_window(&t.maintenance, now_ms) {
                Some((start, end)) => format!("{} to {}", maintenance::rfc3339_ms(start), maintenance::rfc3339_ms(end)),
                None => "none to come".to_string(),
            },
        };
        lines.push(format!("next maintenance window: {next}"));
    }
    lines
}

pub fn describe_schedule(cfg: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "configuration: {} (ok)", cfg.source);
    let _ = writeln!(out, "listen: {}", cfg.settings.scrub(&cfg.settings.listen));
    let targets: Vec<&Target> = cfg.workers.iter().chain(cfg.self_ping.iter()).collect();
    match cfg.shard {
        Some(shard) => {
            let _ = writeln!(
                out,
                "shard: {shard} (the workers whose name hashes to {} modulo {}; the self-ping is not sharded)",
                shard.index - 1,
                shard.count
            );
            let _ = writeln!(
                out,
                "workers: {} of {} configured",
                cfg.workers.len(),
                cfg.configured_workers
            );
        }
        None => {
            let _ = writeln!(out, "workers: {}", cfg.workers.len());
        }
    }
    for (i, t) in targets.iter().enumerate() {
        if let Some(push) = &t.push {
            let _ = writeln!(out, "{}", config::push::describe(&t.name, push, t.paused));
            // A heartbeat has no conditions, but it may have maintenance windows.
            for line in conditions_lines(t, SystemTime::now()) {
                let _ = writeln!(out, "    {line}");
            }
            continue;
        }
        let first = schedule::stagger(i, targets.len(), t.interval);
        let delays: Vec<String> = (1..=t.retries)
            .map(|a| duration::format(probe::backoff_delay(t.backoff, a)))
            .collect();
        let _ = writeln!(
            out,
            "  {}  {} {}\n    every {}, first check {} after start; timeout {}; {} retr{}{}; expect status {}{}",
            t.name,
            t.shown_method(),
            t.display_url,
            duration::format(t.interval),
            duration::format(first),
            duration::format(t.timeout),
            t.retries,
            if t.retries == 1 { "y" } else { "ies" },
            if delays.is_empty() {
                String::new()
            } else {
                format!(" (waits {})", delays.join(", "))
            },
            t.shown_expect_status(),
            t.expect_body
                .as_ref()
                .map_or(String::new(), |_| ", body must contain the expected text".to_string()),
        );
        if let Some(line) = tls_line(t) {
            let _ = writeln!(out, "    {line}");
        }
        for line in conditions_lines(t, SystemTime::now()) {
            let _ = writeln!(out, "    {line}");
        }
        if t.paused {
            let _ = writeln!(
                out,
                "    starts paused (\"paused\": true): not checked until POST /api/workers/{}/resume",
                t.name
            );
        }
    }
    let _ = writeln!(
        out,
        "reload: on SIGHUP{}",
        match cfg.settings.watch_config {
            Some(every) if cfg.source != "built-in defaults" => {
                format!(
                    ", and when the file changes (looked at every {})",
                    duration::format(every)
                )
            }
            _ => String::new(),
        }
    );
    for line in cfg.settings.proxies.describe() {
        let _ = writeln!(out, "{line}");
    }
    if cfg.self_ping.is_none() {
        let _ = writeln!(out, "self-ping: off");
    }
    let _ = writeln!(
        out,
        "alerts: {}; state file: {}; history: {} checks",
        describe_channels(&cfg.alerts.channels),
        cfg.settings
            .state_file
            .as_ref()
            .map_or("none (memory only)".to_string(), |p| {
                cfg.settings.scrub(&p.display().to_string())
            }),
        cfg.settings.history
    );
    if let Some(url) = &cfg.settings.remote.state_url {
        let shown = cfg.settings.scrub(&url.to_string());
        if let Some(line) = crate::config::remote::describe(&cfg.settings.remote, &shown) {
            let _ = writeln!(out, "{line}");
        }
        if cfg.settings.state_file.is_some() {
            let _ = writeln!(
                out,
                "  (at start-up the state file wins when it exists; the remote copy is the fallback)"
            );
        }
    }
    out
}

/// How an https target's certificate is checked, for `check`.
fn tls_line(t: &Target) -> Option<String> {
    if !t.url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")) {
        return None;
    }
    Some(match (&t.tls.ca_file, t.tls.insecure) {
        (_, true) => "tls: certificate NOT verified (tls.insecure)".to_string(),
        (Some(f), false) => format!(
            "tls: bundled roots, SSL_CERT_FILE if set, and {} ({} certificate(s))",
            f.path.display(),
            f.certs.len()
        ),
        (None, false) => "tls: bundled roots, and SSL_CERT_FILE if set".to_string(),
    })
}
