//! `/metrics`: Prometheus text exposition format 0.0.4 rendered from a snapshot.

use crate::state::{Health, SavePlace, Saves, Snapshot, TargetView, WINDOWS};
use crate::timefmt::unix_millis;
use std::fmt::Write;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value: backslash, double quote and newline.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    /// Lines `labels value` for one target; empty when the series is absent for it.
    sample: fn(&TargetView) -> Vec<(String, f64)>,
}

fn last_f(w: &TargetView, f: impl Fn(&crate::state::CheckRecord) -> f64) -> Vec<(String, f64)> {
    w.last.as_ref().map(|r| vec![(String::new(), f(r))]).unwrap_or_default()
}

const FAMILIES: &[Family] = &[
    Family {
        name: "pinger_up",
        kind: "gauge",
        help: "1 if the last check succeeded, else 0 (absent while pending or paused).",
        sample: |w| match (w.health, &w.last) {
            (Health::Pending | Health::Paused, _) | (_, None) => vec![],
            (_, Some(last)) => vec![(String::new(), f64::from(u8::from(last.ok)))],
        },
    },
    Family {
        name: "pinger_degraded",
        kind: "gauge",
        help: "1 while the last check succeeded slower than expect_latency, else 0.",
        sample: |w| {
            vec![(
                String::new(),
                f64::from(u8::from(w.last.as_ref().is_some_and(|r| r.degraded()))),
            )]
        },
    },
    Family {
        name: "pinger_maintenance",
        kind: "gauge",
        help: "1 inside a maintenance window, else 0.",
        sample: |w| vec![(String::new(), f64::from(u8::from(w.maintenance_until_ms.is_some())))],
    },
    Family {
        name: "pinger_paused",
        kind: "gauge",
        help: "1 while the worker is paused, else 0.",
        sample: |w| vec![(String::new(), f64::from(u8::from(w.counters.paused)))],
    },
    Family {
        name: "pinger_check_duration_seconds",
        kind: "gauge",
        help: "Duration of the last check, retries included.",
        sample: |w| last_f(w, |r| r.duration_ms as f64 / 1000.0),
    },
    Family {
        name: "pinger_http_status_code",
        kind: "gauge",
        help: "Final HTTP status of the last check (0 when no response).",
        sample: |w| last_f(w, |r| f64::from(r.status.unwrap_or(0))),
    },
    Family {
        name: "pinger_last_check_timestamp_seconds",
        kind: "gauge",
        help: "Unix time the last check finished.",
        sample: |w| last_f(w, |r| r.at_ms as f64 / 1000.0),
    },
    Family {
        name: "pinger_checks_total",
        kind: "counter",
        help: "Checks by result.",
        sample: |w| {
            vec![
                (",result=\"success\"".to_string(), w.counters.successes as f64),
                (
                    ",result=\"failure\"".to_string(),
                    (w.counters.checks - w.counters.successes.min(w.counters.checks)) as f64,
                ),
            ]
        },
    },
    Family {
        name: "pinger_push_reports_total",
        kind: "counter",
        help: "Heartbeat reports by result (success, failure or start).",
        sample: |w| {
            w.push.as_ref().map_or_else(Vec::new, |p| {
                crate::state::ReportKind::ALL
                    .iter()
                    .map(|k| (format!(",result=\"{}\"", k.as_str()), p.counts.count(*k) as f64))
                    .collect()
            })
        },
    },
    Family {
        name: "pinger_last_push_timestamp_seconds",
        kind: "gauge",
        help: "Unix time of a heartbeat worker's last report.",
        sample: |w| {
            w.push
                .as_ref()
                .and_then(|p| p.counts.last_report_at_ms)
                .map(|ms| vec![(String::new(), ms as f64 / 1000.0)])
                .unwrap_or_default()
        },
    },
    Family {
        name: "pinger_attempts_total",
        kind: "counter",
        help: "HTTP attempts, retries included.",
        sample: |w| vec![(String::new(), w.counters.attempts as f64)],
    },
    Family {
        name: "pinger_skipped_total",
        kind: "counter",
        help: "Deadlines skipped because a check overran its slot.",
        sample: |w| vec![(String::new(), w.counters.skipped as f64)],
    },
    Family {
        name: "pinger_restarts_total",
        kind: "counter",
        help: "Hugging Face Space restarts requested.",
        sample: |w| vec![(String::new(), w.counters.restarts as f64)],
    },
    Family {
        name: "pinger_tls_cert_expiry_timestamp_seconds",
        kind: "gauge",
        help: "Unix time the leaf certificate expires (https targets, once read).",
        sample: |w| w.tls.iter().map(|c| (String::new(), c.expires_at as f64)).collect(),
    },
    Family {
        name: "pinger_uptime_ratio",
        kind: "gauge",
        help: "Share of successful checks over the window (0..1).",
        sample: |w| {
            WINDOWS
                .iter()
                .zip(w.uptime)
                .filter_map(|((name, _), v)| v.map(|v| (format!(",window=\"{name}\""), v)))
                .collect()
        },
    },
];

/// The exposition text for `s` and the alert channels' `(name, sent, failed)` counts.
pub fn render(s: &Snapshot, alerts: &[(String, u64, u64)]) -> String {
    let mut out = String::with_capacity(256 + s.workers.len() * 900);
    worker_families(&mut out, s);
    alert_family(&mut out, alerts);
    reload_family(&mut out, s.reloads);
    save_families(&mut out, &s.saves);
    process_families(&mut out, s);
    out
}

/// Every `FAMILIES` entry, a sample per worker (the self-ping last).
fn worker_families(out: &mut String, s: &Snapshot) {
    let targets: Vec<&TargetView> = s.workers.iter().chain(s.self_ping.iter()).collect();
    for f in FAMILIES {
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {}", f.name, f.help, f.name, f.kind);
        for w in &targets {
            let worker = label(&w.name);
            for (extra, value) in (f.sample)(w) {
                let _ = writeln!(out, "{}{{worker=\"{worker}\"{extra}}} {}", f.name, number(value));
            }
        }
    }
}

/// `pinger_alerts_total`, absent when no channel is configured.
fn alert_family(out: &mut String, alerts: &[(String, u64, u64)]) {
    if alerts.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP pinger_alerts_total Alert deliveries per channel (failed: after the retries).\n# TYPE pinger_alerts_total counter"
    );
    for (channel, sent, failed) in alerts {
        let channel = label(channel);
        let _ = writeln!(
            out,
            "pinger_alerts_total{{channel=\"{channel}\",result=\"sent\"}} {sent}"
        );
        let _ = writeln!(
            out,
            "pinger_alerts_total{{channel=\"{channel}\",result=\"failed\"}} {failed}"
        );
    }
}

fn reload_family(out: &mut String, (succeeded, failed): (u64, u64)) {
    let _ = writeln!(
        out,
        "# HELP pinger_config_reloads_total Configuration reloads by result.\n# TYPE pinger_config_reloads_total counter"
    );
    let _ = writeln!(out, "pinger_config_reloads_total{{result=\"success\"}} {succeeded}");
    let _ = writeln!(out, "pinger_config_reloads_total{{result=\"failure\"}} {failed}");
}

/// `pinger_state_saves_total` and `pinger_last_state_save_timestamp_seconds`, by place.
fn save_families(out: &mut String, saves: &[Saves; 2]) {
    let _ = writeln!(
        out,
        "# HELP pinger_state_saves_total State saves by place and result.\n# TYPE pinger_state_saves_total counter"
    );
    for place in SavePlace::ALL {
        let saves = &saves[place as usize];
        for (result, n) in [("success", saves.succeeded), ("failure", saves.failed)] {
            let _ = writeln!(
                out,
                "pinger_state_saves_total{{place=\"{}\",result=\"{result}\"}} {n}",
                place.label()
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP pinger_last_state_save_timestamp_seconds Unix time of the last good state save.\n\
# TYPE pinger_last_state_save_timestamp_seconds gauge"
    );
    for place in SavePlace::ALL {
        if let Some(at) = saves[place as usize].last_ok {
            let _ = writeln!(
                out,
                "pinger_last_state_save_timestamp_seconds{{place=\"{}\"}} {}",
                place.label(),
                number(unix_millis(at) as f64 / 1000.0)
            );
        }
    }
}

/// `pinger_build_info` and `process_start_time_seconds`.
fn process_families(out: &mut String, s: &Snapshot) {
    let _ = writeln!(
        out,
        "# HELP pinger_build_info Build information; always 1.\n# TYPE pinger_build_info gauge\npinger_build_info{{version=\"{}\"}} 1",
        label(s.version)
    );
    let _ = writeln!(
        out,
        "# HELP process_start_time_seconds Unix time the process started.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {}",
        number(unix_millis(s.started_at) as f64 / 1000.0)
    );
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::testdata::snapshot;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let text = render(&snapshot(), &[]);
        assert!(!text.contains("pinger_alerts_total"), "no channels, no family");
        let with = render(&snapshot(), &[("tg".into(), 2, 1), ("a\"b".into(), 0, 0)]);
        assert!(with.contains("# TYPE pinger_alerts_total counter\n"), "{with}");
        assert!(
            with.contains("pinger_alerts_total{channel=\"tg\",result=\"sent\"} 2\n"),
            "{with}"
        );
        assert!(
            with.contains("pinger_alerts_total{channel=\"tg\",result=\"failed\"} 1\n"),
            "{with}"
        );
        assert!(
            with.contains("pinger_alerts_total{channel=\"a\\\"b\",result=\"sent\"} 0\n"),
            "{with}"
        );
        for name in [
            "pinger_up",
            "pinger_checks_total",
            "pinger_uptime_ratio",
            "pinger_build_info",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
        }
        assert!(text.contains("pinger_up{worker=\"api\"} 1\n"));
        assert!(text.contains("pinger_up{worker=\"db\"} 0\n"));
        assert!(!text.contains("pinger_up{worker=\"new\"}"), "absent while pending");
        assert!(text.contains("pinger_checks_total{worker=\"db\",result=\"failure\"} 2\n"));
        assert!(text.contains("pinger_http_status_code{worker=\"db\"} 503\n"));
        assert!(text.contains("pinger_uptime_ratio{worker=\"api\",window=\"24h\"} 1\n"));
        assert!(text.contains("pinger_up{worker=\"self\"} 1\n"));
        assert!(text.contains("process_start_time_seconds 1795860000\n"));
        assert!(text.contains("pinger_tls_cert_expiry_timestamp_seconds{worker=\"api\"} 1799492400\n"));
        assert!(!text.contains("pinger_tls_cert_expiry_timestamp_seconds{worker=\"new\"}"));
    }

    #[test]
    fn state_saves_by_place() {
        let mut s = snapshot();
        s.saves[SavePlace::Remote as usize] = crate::state::Saves {
            succeeded: 4,
            failed: 2,
            last_ok: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_863_600)),
        };
        let text = render(&s, &[]);
        assert!(text.contains("# TYPE pinger_state_saves_total counter\n"), "{text}");
        assert!(text.contains("pinger_state_saves_total{place=\"remote\",result=\"success\"} 4\n"));
        assert!(text.contains("pinger_state_saves_total{place=\"remote\",result=\"failure\"} 2\n"));
        assert!(text.contains("pinger_state_saves_total{place=\"file\",result=\"success\"} 0\n"));
        assert!(text.contains("pinger_last_state_save_timestamp_seconds{place=\"remote\"} 1795863600\n"));
        assert!(!text.contains("pinger_last_state_save_timestamp_seconds{place=\"file\"}"));
    }

    #[test]
    fn a_paused_worker_has_pinger_paused_and_no_pinger_up() {
        let mut s = snapshot();
        s.workers[0].health = Health::Paused;
        s.workers[0].counters.paused = true;
        s.reloads = (3, 1);
        let text = render(&s, &[]);
        assert!(text.contains("pinger_paused{worker=\"api\"} 1\n"));
        assert!(text.contains("pinger_paused{worker=\"db\"} 0\n"));
        assert!(!text.contains("pinger_up{worker=\"api\"}"));
        assert!(text.contains("pinger_config_reloads_total{result=\"success\"} 3\n"));
        assert!(text.contains("pinger_config_reloads_total{result=\"failure\"} 1\n"));
        assert!(text.contains("# TYPE pinger_config_reloads_total counter"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
