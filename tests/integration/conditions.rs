//! Conditions beyond the status code (expect_json, expect_header, expect_body_absent,
//! expect_latency and the `degraded` state), against fake targets; across a reload and a restart.

use crate::common::{Action, FakeServer, Pinger, SEC, run, temp_dir, typed};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

/// A JSON target answering `{"status": STATUS}` after `delay` ms (the test may change both).
struct Json {
    server: FakeServer,
    delay_ms: Arc<AtomicU64>,
}

fn json_target(status: &'static str, delay_ms: u64) -> Json {
    let delay = Arc::new(AtomicU64::new(delay_ms));
    let d = Arc::clone(&delay);
    let server = FakeServer::start(move |_, _| {
        thread::sleep(Duration::from_millis(d.load(Ordering::SeqCst)));
        typed("application/json", &format!(r#"{{"status": "{status}", "n": 3}}"#))
    });
    Json {
        server,
        delay_ms: delay,
    }
}

fn error_of(w: &serde_json::Value) -> String {
    w["last_check"]["error"].as_str().unwrap_or("").to_string()
}

#[test]
fn each_condition_passes_or_fails_with_its_own_error_text() {
    let up = json_target("UP", 0);
    let loading = json_target("loading", 0);
    let html = FakeServer::always(typed("text/html; charset=utf-8", "<h1>Application Error</h1>"));
    let worker = |name: &str, url: String, fields: &str| format!(r#"{{"name": "{name}", "url": "{url}", {fields}}}"#);
    let workers = [
        worker(
            "json-ok",
            up.server.url("/"),
            r#""expect_json": [{"pointer": "/status", "equals": "UP"}, {"pointer": "/n", "one_of": [1, 3]},
                               {"pointer": "/gone", "exists": false}, {"pointer": "/status", "not_equals": "DOWN"}],
               "expect_header": {"Content-Type": "APPLICATION/json"}, "expect_body_absent": "Application Error""#,
        ),
        worker(
            "json-bad",
            loading.server.url("/"),
            r#""expect_json": [{"pointer": "/status", "equals": "UP"}]"#,
        ),
        worker(
            "one-of-bad",
            loading.server.url("/"),
            r#""expect_json": [{"pointer": "/n", "one_of": [1, 2]}]"#,
        ),
        worker(
            "missing",
            loading.server.url("/"),
            r#""expect_json": [{"pointer": "/ready", "exists": true}]"#,
        ),
        worker(
            "header-bad",
            html.url("/"),
            r#""expect_header": {"content-type": "application/json"}"#,
        ),
        worker(
            "absent-bad",
            html.url("/"),
            r#""expect_body_absent": "Application Error""#,
        ),
        worker(
            "not-json",
            html.url("/"),
            r#""expect_json": [{"pointer": "/status", "exists": true}]"#,
        ),
    ];
    let cfg = format!(
        r#"{{"self_ping": false, "defaults": {{"interval": "1h", "retries": 0}}, "workers": [{}]}}"#,
        workers.join(", ")
    );
    let p = Pinger::start(&cfg, &[]);
    let expected = [
        ("json-ok", "up", ""),
        ("json-bad", "down", r#"/status is "loading", expected "UP""#),
        ("one-of-bad", "down", "/n is 3, expected one of [1,2]"),
        ("missing", "down", "/ready is missing"),
        ("header-bad", "down", r#"content-type is "text/html; charset=utf-8""#),
        ("absent-bad", "down", r#"body contains "Application Error""#),
        ("not-json", "down", "body is not JSON (line 1 column 1)"),
    ];
    for (name, state, error) in expected {
        let w = p.wait_worker(name, 15 * SEC, |w| w["checks"] == 1);
        assert_eq!(
            (w["state"].as_str(), error_of(&w).as_str()),
            (Some(state), error),
            "{name}: {w:#}"
        );
        // A status code that was fine: the condition is what failed.
        assert_eq!(w["last_check"]["status_code"], 200, "{name}");
    }
}

#[test]
fn a_slow_success_is_degraded_everywhere_it_is_shown() {
    let slow = json_target("UP", 300);
    let fast = json_target("UP", 0);
    let cfg = format!(
        r#"{{"self_ping": false, "defaults": {{"interval": "1h", "retries": 0, "expect_latency": "100ms"}},
            "workers": [{{"name": "slow", "url": "{}"}}, {{"name": "fast", "url": "{}"}}]}}"#,
        slow.server.url("/"),
        fast.server.url("/")
    );
    let p = Pinger::start(&cfg, &[]);
    let w = p.wait_worker("slow", 15 * SEC, |w| w["checks"] == 1);
    assert_eq!(w["state"], "degraded", "{w:#}");
    assert_eq!(w["last_check"]["ok"], true, "a slow success is still a success");
    let error = error_of(&w);
    assert!(
        error.starts_with("latency 0.") && error.ends_with(" s over 0.1 s"),
        "{error}"
    );
    assert_eq!(w["uptime_percent"]["24h"], 100.0, "degraded is up for uptime");
    let f = p.wait_worker("fast", 15 * SEC, |w| w["checks"] == 1);
    assert_eq!(f["state"], "up");
    let s = p.status();
    assert_eq!(s["status"], "ok", "a degraded worker does not make the fleet degraded");
    let only: serde_json::Value = serde_json::from_str(&p.get("/status?state=degraded").body).unwrap();
    let names: Vec<&str> = only["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert_eq!(names, ["slow"]);
    p.wait_metric("pinger_degraded", "slow", 1.0);
    p.wait_metric("pinger_degraded", "fast", 0.0);
    p.wait_metric("pinger_up", "slow", 1.0);
    let page = p.get("/").body;
    assert!(page.contains("<span class=\"pill degraded\">degraded</span>"), "{page}");
    assert!(page.contains("over 0.1 s"), "the reason is on the page");
}

#[test]
fn degraded_alerts_go_only_to_channels_that_ask_for_them() {
    let target = json_target("UP", 300);
    let asks = FakeServer::always(Action::Respond {
        status: 204,
        body: vec![],
    });
    let quiet = FakeServer::always(Action::Respond {
        status: 204,
        body: vec![],
    });
    let cfg = format!(
        r#"{{"self_ping": false,
            "workers": [{{"name": "w", "url": "{}", "interval": "1s", "retries": 0, "expect_latency": "150ms"}}],
            "alerts": [{{"name": "asks", "type": "json", "webhook_url": "{}", "degraded": true,
                         "failure_threshold": 2, "success_threshold": 2}},
                       {{"name": "quiet", "type": "json", "webhook_url": "{}", "failure_threshold": 1}}]}}"#,
        target.server.url("/"),
        asks.url("/hook"),
        quiet.url("/hook")
    );
    let p = Pinger::start(&cfg, &[]);
    let first = asks.wait_for(1, 20 * SEC);
    let degraded: serde_json::Value = serde_json::from_str(&first[0].body).unwrap();
    assert_eq!(degraded["state"], "degraded", "{degraded}");
    assert!(
        degraded["error"].as_str().unwrap().starts_with("latency "),
        "{degraded}"
    );
    let checks_then = p.worker("w")["checks"].as_u64().unwrap();
    assert!(checks_then >= 2, "after failure_threshold slow checks, not before");
    target.delay_ms.store(0, Ordering::SeqCst);
    let both = asks.wait_for(2, 20 * SEC);
    assert_eq!(both.len(), 2);
    let resolved: serde_json::Value = serde_json::from_str(&both[1].body).unwrap();
    assert_eq!(resolved["state"], "degraded_resolved", "{resolved}");
    p.wait_worker("w", 10 * SEC, |w| w["state"] == "up");
    assert_eq!(quiet.count(), 0, "a channel without degraded: true hears nothing of it");
    assert_eq!(asks.count(), 2, "one message each way");
}

#[test]
fn a_changed_condition_applies_on_reload_and_the_state_file_keeps_degraded() {
    let target = json_target("loading", 100);
    let dir = temp_dir("conditions-restart");
    let state = dir.join("state.json");
    let cfg = |fields: &str| {
        format!(
            r#"{{"self_ping": false, "state_file": "{}", "watch_config": false,
                "workers": [{{"name": "other", "url": "{}", "interval": "1h"}},
                            {{"name": "a", "url": "{}", "interval": "1s", "retries": 0, {fields}}}]}}"#,
            state.display(),
            target.server.url("/other"),
            target.server.url("/a")
        )
    };
    let mut p = Pinger::start_in(dir.clone(), &cfg(r#""expect_body_absent": "loading""#), &[]);
    let w = p.wait_worker("a", 15 * SEC, |w| w["checks"].as_u64() >= Some(1));
    assert_eq!(
        (w["state"].as_str(), error_of(&w).as_str()),
        (Some("down"), r#"body contains "loading""#)
    );
    p.rewrite_config(&cfg(
        r#""expect_json": [{"pointer": "/status", "equals": "loading"}], "expect_latency": "20ms""#,
    ));
    p.signal("HUP");
    let w = p.wait_worker("a", 15 * SEC, |w| w["state"] == "degraded");
    assert!(error_of(&w).ends_with("over 0.02 s"), "{w:#}");
    assert!(p.log().contains("1 changed"), "{}", p.log());
    p.signal("TERM");
    assert_eq!(p.wait_exit(10 * SEC), Some(0));
    drop(p);

    // The target now takes a minute, so no check finishes: what /status shows comes from the
    // state file.
    target.delay_ms.store(60_000, Ordering::SeqCst);
    let p = Pinger::start_in(dir, &cfg(r#""expect_latency": "20ms""#), &[]);
    let w = p.worker("a");
    assert_eq!(w["state"], "degraded", "{w:#}");
    assert!(error_of(&w).ends_with("over 0.02 s"), "{w:#}");
    p.wait_metric("pinger_degraded", "a", 1.0);
}

/// A channel that asks for degraded alerts (`failure_threshold` 2), for one slow worker "w" whose
/// checks run hourly: each process, or each `once` run, makes exactly one check.
fn slow_fleet_config(target: &Json, hook: &FakeServer, state_file: &str) -> String {
    format!(
        r#"{{"self_ping": false, "state_file": "{state_file}", "watch_config": false,
            "workers": [{{"name": "w", "url": "{}", "interval": "1h", "retries": 0, "expect_latency": "50ms"}}],
            "alerts": [{{"name": "asks", "type": "json", "webhook_url": "{}", "degraded": true,
                         "failure_threshold": 2, "success_threshold": 1}}]}}"#,
        target.server.url("/"),
        hook.url("/hook")
    )
}

fn states_sent(hook: &FakeServer) -> Vec<String> {
    hook.seen()
        .iter()
        .map(|r| serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["state"].to_string())
        .collect()
}

#[test]
fn once_counts_slow_checks_across_runs_and_announces_degraded_on_the_threshold() {
    let target = json_target("UP", 200);
    let hook = FakeServer::always(Action::Respond {
        status: 204,
        body: vec![],
    });
    let dir = temp_dir("once-degraded");
    std::fs::write(dir.join("pinger.json"), slow_fleet_config(&target, &hook, "state.json")).unwrap();
    // slow, slow (the threshold: degraded), slow, fast (resolved).
    let mut sent_after = Vec::new();
    for delay in [200, 200, 200, 0] {
        target.delay_ms.store(delay, Ordering::SeqCst);
        let (code, _, err) = run(&dir, &["once", "--state-file", "state.json"], &[]);
        assert_eq!(code, 0, "degraded is up: {err}");
        sent_after.push(hook.count());
    }
    assert_eq!(sent_after, [0, 1, 1, 2], "{:?}", states_sent(&hook));
    assert_eq!(states_sent(&hook), [r#""degraded""#, r#""degraded_resolved""#]);
    let state = std::fs::read_to_string(dir.join("state.json")).unwrap();
    assert!(
        state.contains("\"degraded\""),
        "the slow-check streaks are saved: {state}"
    );
}

#[test]
fn a_slow_check_streak_survives_a_restart_of_the_service() {
    let target = json_target("UP", 200);
    let hook = FakeServer::always(Action::Respond {
        status: 204,
        body: vec![],
    });
    let dir = temp_dir("degraded-restart");
    let state = dir.join("state.json");
    let cfg = slow_fleet_config(&target, &hook, &state.display().to_string());
    let mut p = Pinger::start_in(dir.clone(), &cfg, &[]);
    p.wait_worker("w", 15 * SEC, |w| w["checks"].as_u64() >= Some(1));
    p.signal("TERM");
    assert_eq!(p.wait_exit(10 * SEC), Some(0));
    drop(p);
    assert_eq!(hook.count(), 0, "one slow check is under the threshold");

    // The second slow check, in the next process, reaches the threshold of two.
    let p = Pinger::start_in(dir, &cfg, &[]);
    assert_eq!(
        hook.wait_for(1, 20 * SEC).len(),
        1,
        "no degraded alert after the restart"
    );
    assert_eq!(states_sent(&hook), [r#""degraded""#]);
    assert_eq!(
        p.worker("w")["checks"],
        2,
        "announced on the restarted process's first check"
    );
}
