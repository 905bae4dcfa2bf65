//! Hand-made snapshots for the renderers' unit tests.

use crate::state::{CertInfo, CheckRecord, Counters, Health, Snapshot, TargetView};
use std::time::{Duration, UNIX_EPOCH};

pub const START: u64 = 1_795_860_000; // 2026-11-28T10:00:00Z

pub fn rec(i: u64, ok: bool) -> CheckRecord {
    CheckRecord {
        at_ms: (START + 3000 + i * 60) * 1000,
        ok,
        status: Some(if ok { 200 } else { 503 }),
        latency_ms: 100 + i * 10,
        duration_ms: 100 + i * 10,
        attempts: 1,
        error: (!ok).then(|| "status 503".to_string()),
    }
}

fn view(name: &str, health: Health, history: Vec<CheckRecord>) -> TargetView {
    let successes = history.iter().filter(|r| r.ok).count() as u64;
    let checks = history.len() as u64;
    TargetView {
        name: name.to_string(),
        url: format!("https://{name}.hf.space/health"),
        interval: Duration::from_secs(300),
        is_self: name == "self",
        restarts_enabled: false,
        health,
        maintenance_until_ms: None,
        counters: Counters {
            paused: health == Health::Paused,
            paused_config: None,
            checks,
            successes,
            skipped: 0,
            attempts: checks,
            consecutive_failures: history.iter().rev().take_while(|r| !r.ok).count() as u32,
            restarts: 0,
            last_restart_at_ms: None,
            push: Default::default(),
        },
        last: history.last().cloned(),
        next_check_at_ms: Some((START + 3900) * 1000),
        uptime: if checks == 0 {
            [None; 3]
        } else {
            [Some(successes as f64 / checks as f64); 3]
        },
        tls: None,
        history,
        push: None,
    }
}

/// Three workers (up, down with a restart, pending) and an up self-ping, one hour after start.
pub fn snapshot() -> Snapshot {
    let mut db = view("db", Health::Down, vec![rec(0, true), rec(1, false), rec(2, false)]);
    db.restarts_enabled = true;
    db.counters.restarts = 1;
    db.counters.last_restart_at_ms = Some((START + 3100) * 1000);
    // db's certificate is unverified (tls.insecure) and expires in 2 days and an hour.
    db.tls = Some(CertInfo {
        expires_at: (START + 3600 + 2 * 86_400 + 3600) as i64,
        verified: false,
    });
    let mut api = view("api", Health::Up, vec![rec(0, true), rec(1, true), rec(2, true)]);
    api.tls = Some(CertInfo {
        expires_at: (START + 3600 + 42 * 86_400) as i64,
        verified: true,
    });
    let mut new = view("new", Health::Pending, vec![]);
    new.next_check_at_ms = None;
    Snapshot {
        version: env!("CARGO_PKG_VERSION"),
        started_at: UNIX_EPOCH + Duration::from_secs(START),
        now: UNIX_EPOCH + Duration::from_secs(START + 3600),
        workers: vec![api, db, new],
        self_ping: Some(view("self", Health::Up, vec![rec(0, true)])),
        persistence_error: None,
        saves: Default::default(),
        config_error: None,
        reloads: (0, 0),
    }
}

/// `n` workers with full bars, the config's longest names (64 characters) when `long_names`:
/// every `down_every`-th down with an error, every 7th up only after retries, the last pending.
pub fn fleet(n: usize, down_every: usize, long_names: bool) -> Snapshot {
    let workers = (0..n)
        .map(|i| {
            let name = if long_names {
                format!("{i:04}-{}", "x".repeat(59))
            } else {
                format!("space-{i:04}")
            };
            let down = down_every > 0 && i % down_every == 0;
            let history: Vec<CheckRecord> = (0..30)
                .map(|k| {
                    let mut r = rec(k, !(down && k >= 28));
                    // The newest 11 minutes before `now`, as a 1-minute worker would have them.
                    r.at_ms -= 1_800_000;
                    if !r.ok {
                        r.error = Some("connect: connection refused (os error 111)".into());
                        r.status = None;
                    }
                    if i % 7 == 3 && k == 29 {
                        r.attempts = 3;
                    }
                    r
                })
                .collect();
            if i + 1 == n {
                return view(&name, Health::Pending, vec![]);
            }
            view(&name, if down { Health::Down } else { Health::Up }, history)
        })
        .collect();
    Snapshot { workers, ..snapshot() }
}
