//! Maintenance windows: during one checks run but failures alert nobody and do not count against
//! uptime; an outage still on when it ends alerts at once; shown in /status, /metrics and the
//! page; windows added and removed by a reload; the state file across a restart; `check` output.
//!
//! The tests compute one-off windows from the clock ("now" plus or minus a little), so they are
//! inside a window from start-up without waiting for a time of day.

use crate::common::{Action, FakeServer, Pinger, SEC, run, status, temp_dir};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// RFC 3339 with milliseconds, as a window's `start` takes it.
fn rfc3339_ms(t: SystemTime) -> String {
    let nanos = t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i128;
    let d = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.millisecond()
    )
}

/// A one-off window from `from` for `len`, as JSON.
pub fn window(from: SystemTime, len: Duration) -> String {
    format!(
        r#"{{"start": "{}", "duration": "{}ms"}}"#,
        rfc3339_ms(from),
        len.as_millis()
    )
}

/// The instant a wall-clock time falls on (for comparing with `Seen::at`).
fn instant_of(t: SystemTime) -> Instant {
    let now = SystemTime::now();
    match t.duration_since(now) {
        Ok(ahead) => Instant::now() + ahead,
        Err(e) => Instant::now() - e.duration(),
    }
}

fn hook() -> FakeServer {
    FakeServer::always(Action::Respond {
        status: 204,
        body: vec![],
    })
}

#[test]
fn an_outage_in_a_window_alerts_when_it_ends_and_not_before() {
    let down = FakeServer::always(status(503));
    let h = hook();
    // On from before start-up until 4 s from now; every check after the first is an hour away,
    // so an alert after the window can only come from the window's end.
    let end = SystemTime::now() + 4 * SEC;
    let cfg = format!(
        r#"{{"self_ping": false, "defaults": {{"interval": "1h", "retries": 0}},
            "maintenance": [{}],
            "workers": [{{"name": "down", "url": "{}"}}],
            "alerts": {{"type": "json", "webhook_url": "{}", "failure_threshold": 1}}}}"#,
        window(SystemTime::now() - SEC, 5 * SEC),
        down.url("/"),
        h.url("/hook")
    );
    let p = Pinger::start(&cfg, &[]);
    let w = p.wait_worker("down", 15 * SEC, |w| w["checks"] == 1);
    let until = &rfc3339_ms(end)[..19];
    assert!(
        SystemTime::now() < end,
        "the machine was too slow to see the window: rerun"
    );
    assert_eq!(w["state"], "maintenance", "{w:#}");
    assert_eq!(w["maintenance_until"].as_str(), Some(format!("{until}Z").as_str()));
    assert_eq!(w["last_check"]["ok"], false, "checks go on during a window");
    assert_eq!(
        w["uptime_percent"]["24h"],
        serde_json::Value::Null,
        "the failure is not counted"
    );
    assert_eq!(
        p.status()["status"],
        "ok",
        "a worker in maintenance does not make the fleet degraded"
    );
    p.wait_metric("pinger_maintenance", "down", 1.0);
    let page = p.get("/").body;
    assert!(page.contains("pill maintenance"), "{page}");
    assert!(page.contains(&format!("until <time datetime=\"{until}Z\"")), "{page}");
    let filtered: serde_json::Value = serde_json::from_str(&p.get("/status?state=maintenance").body).unwrap();
    assert_eq!(filtered["workers"].as_array().unwrap().len(), 1);

    let alerts = h.wait_for(1, 20 * SEC);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].at >= instant_of(end), "no alert before the window ends");
    let body: serde_json::Value = serde_json::from_str(&alerts[0].body).unwrap();
    assert_eq!(
        (body["worker"].as_str(), body["state"].as_str()),
        (Some("down"), Some("down"))
    );
    assert_eq!(body["error"], "status 503");
    let w = p.worker("down");
    assert_eq!(w["checks"], 1, "at once, without another check");
    assert_eq!(w["state"], "down");
    assert!(w.get("maintenance_until").is_none(), "{w:#}");
    p.wait_metric("pinger_maintenance", "down", 0.0);
    assert_eq!(down.count(), 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(h.count(), 1, "one alert");
}

#[test]
fn windows_added_and_removed_by_a_reload_and_kept_over_a_restart() {
    let down = FakeServer::always(status(503));
    let h = hook();
    let dir = temp_dir("maintenance-reload");
    let state = dir.join("state.json");
    // A threshold no test reaches: every alert here comes from a window's end.
    let cfg = |windows: &str| {
        format!(
            r#"{{"self_ping": false, "state_file": "{}", "watch_config": false,
                "workers": [{{"name": "calm", "url": "{}", "interval": "1h"}},
                            {{"name": "w", "url": "{}", "interval": "1s", "retries": 0, "maintenance": [{windows}]}}],
                "alerts": {{"type": "json", "webhook_url": "{}", "failure_threshold": 1000}}}}"#,
            state.display(),
            down.url("/calm"),
            down.url("/w"),
            h.url("/hook")
        )
    };
    let long = window(SystemTime::now() - SEC, Duration::from_secs(3600));
    let mut p = Pinger::start_in(dir.clone(), &cfg(&long), &[]);
    let w = p.wait_worker("w", 15 * SEC, |w| w["checks"].as_u64() >= Some(2));
    assert_eq!(w["state"], "maintenance");
    assert_eq!(w["uptime_percent"]["24h"], serde_json::Value::Null);

    // Removed: the window is over, and the outage is announced at once.
    p.rewrite_config(&cfg(""));
    p.signal("HUP");
    let alerts = h.wait_for(1, 15 * SEC);
    let body: serde_json::Value = serde_json::from_str(&alerts[0].body).unwrap();
    assert_eq!(
        (body["worker"].as_str(), body["state"].as_str()),
        (Some("w"), Some("down"))
    );
    let w = p.wait_worker("w", 15 * SEC, |w| w["state"] == "down");
    p.wait_metric("pinger_maintenance", "w", 0.0);
    let checks = w["checks"].as_u64().unwrap();
    p.wait_worker("w", 15 * SEC, |w| w["checks"].as_u64() > Some(checks));
    assert_eq!(
        p.worker("w")["uptime_percent"]["24h"],
        0.0,
        "outside a window a failure counts"
    );

    // Added again: maintenance at once, and no second alert.
    p.rewrite_config(&cfg(&long));
    p.signal("HUP");
    p.wait_worker("w", 15 * SEC, |w| w["state"] == "maintenance");
    p.wait_metric("pinger_maintenance", "w", 1.0);
    p.signal("TERM");
    assert_eq!(p.wait_exit(10 * SEC), Some(0));
    drop(p);

    // A restart inside the window: still in maintenance, the history kept.
    let p = Pinger::start_in(dir, &cfg(&long), &[]);
    let w = p.worker("w");
    assert_eq!(w["state"], "maintenance", "{w:#}");
    assert!(w["checks"].as_u64() > Some(checks), "{w:#}");
    assert_eq!(h.count(), 1, "{:?}", h.seen());
}

#[test]
fn check_prints_each_workers_next_window_and_refuses_zone_names() {
    let dir = temp_dir("maintenance-check");
    std::fs::write(
        dir.join("pinger.json"),
        r#"{"self_ping": false, "maintenance": [{"every": "mon,wed", "at": "03:00", "duration": "30m", "timezone": "+05:30"}],
            "workers": [{"name": "a", "url": "https://a.example/", "expect_latency": "2s",
                         "expect_json": [{"pointer": "/status", "equals": "UP"}]},
                        {"name": "b", "url": "https://b.example/", "maintenance": [{"start": "2020-01-01T00:00:00Z", "duration": "1h"}]}]}"#,
    )
    .unwrap();
    let (code, out, err) = run(&dir, &["check"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("maintenance: every mon,wed at 03:00 +05:30 for 30m\n"),
        "{out}"
    );
    assert!(
        out.contains("conditions: degraded when slower than 2s; JSON /status equals \"UP\""),
        "{out}"
    );
    assert!(
        out.contains("maintenance: once from 2020-01-01T00:00:00Z for 1h; every mon,wed at 03:00 +05:30 for 30m"),
        "{out}"
    );
    let next: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("next maintenance window: "))
        .collect();
    assert_eq!(next.len(), 2, "{out}");
    assert!(
        next.iter()
            .all(|l| l.contains(":30:00Z to ") || l.contains("now, until")),
        "{out}"
    );

    std::fs::write(
        dir.join("pinger.json"),
        r#"{"workers": [{"url": "https://a.example/", "maintenance": [{"every": "day", "at": "03:00", "duration": "1h", "timezone": "Europe/Paris"}]}]}"#,
    )
    .unwrap();
    let (code, _, err) = run(&dir, &["check"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("workers[0].maintenance[0].timezone: time zone names such as \"Europe/Paris\" are not built in"),
        "{err}"
    );
}
