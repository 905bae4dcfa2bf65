//! Prometheus metrics, webhook alerts and Hugging Face Space restarts.

use crate::common::{Action, FakeServer, Pinger, SEC, ok, status};
use prometheus_parse::{Scrape, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn scrape(p: &Pinger) -> Scrape {
    let r = p.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    Scrape::parse(r.body.lines().map(|l| Ok(l.to_string()))).expect("valid exposition format")
}

fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn metrics_match_a_known_scenario() {
    let up = FakeServer::always(ok());
    let down = FakeServer::always(status(503));
    let me = FakeServer::always(ok());
    let cfg = format!(
        r#"{{"self_ping": {{"url": "{}", "interval": "1h"}}, "defaults": {{"interval": "1h", "backoff": "10ms"}},
            "workers": [{{"name": "up", "url": "{}", "retries": 0}}, {{"name": "down", "url": "{}", "retries": 2}}]}}"#,
        me.url("/health"),
        up.url("/"),
        down.url("/")
    );
    let p = Pinger::start(&cfg, &[]);
    for name in ["up", "down", "self"] {
        p.wait_worker(name, 12 * SEC, |w| w["checks"] == 1);
    }
    let s = scrape(&p);
    let w = |name: &'static str| [("worker", name)];
    assert_eq!(value(&s, "pinger_up", &w("up")), Some(1.0));
    assert_eq!(value(&s, "pinger_up", &w("down")), Some(0.0));
    assert_eq!(value(&s, "pinger_up", &w("self")), Some(1.0));
    assert_eq!(value(&s, "pinger_http_status_code", &w("down")), Some(503.0));
    assert_eq!(value(&s, "pinger_attempts_total", &w("down")), Some(3.0));
    assert_eq!(value(&s, "pinger_attempts_total", &w("up")), Some(1.0));
    assert_eq!(
        value(&s, "pinger_checks_total", &[("worker", "down"), ("result", "failure")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "pinger_checks_total", &[("worker", "down"), ("result", "success")]),
        Some(0.0)
    );
    assert_eq!(
        value(&s, "pinger_checks_total", &[("worker", "up"), ("result", "success")]),
        Some(1.0)
    );
    assert_eq!(value(&s, "pinger_skipped_total", &w("up")), Some(0.0));
    assert_eq!(value(&s, "pinger_restarts_total", &w("up")), Some(0.0));
    assert_eq!(
        value(&s, "pinger_uptime_ratio", &[("worker", "up"), ("window", "30d")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "pinger_uptime_ratio", &[("worker", "down"), ("window", "24h")]),
        Some(0.0)
    );
    let duration = value(&s, "pinger_check_duration_seconds", &w("down")).unwrap();
    assert!(
        (0.03..5.0).contains(&duration),
        "two 10/20 ms backoffs at least: {duration}"
    );
    let last = value(&s, "pinger_last_check_timestamp_seconds", &w("up")).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - 60.0..now + 1.0).contains(&last));
    assert_eq!(
        value(&s, "pinger_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        Some(1.0)
    );
    let start = value(&s, "process_start_time_seconds", &[]).unwrap();
    assert!((now - 60.0..now).contains(&start));
    for name in ["pinger_up", "pinger_checks_total", "pinger_uptime_ratio"] {
        assert!(s.docs.contains_key(name), "HELP for {name}");
    }
}

#[test]
fn metrics_leave_pending_workers_out_of_pinger_up() {
    let hang = FakeServer::always(Action::Hang);
    let cfg = format!(
        r#"{{"self_ping": false, "workers": [{{"name": "slow", "url": "{}", "interval": "1h"}}]}}"#,
        hang.url("/")
    );
    let p = Pinger::start(&cfg, &[]);
    let s = scrape(&p);
    assert_eq!(value(&s, "pinger_up", &[("worker", "slow")]), None);
    assert_eq!(
        value(&s, "pinger_checks_total", &[("worker", "slow"), ("result", "success")]),
        Some(0.0)
    );
}

/// A target whose health the test switches, and a pinger alerting on it to a fake webhook.
fn flip_scenario(format: &str) -> (Arc<AtomicBool>, FakeServer, FakeServer, Pinger) {
    let healthy = Arc::new(AtomicBool::new(false));
    let h = Arc::clone(&healthy);
    let target = FakeServer::start(move |_, _| if h.load(Ordering::SeqCst) { ok() } else { status(502) });
    let hook = FakeServer::always(Action::Respond {
        status: 204,
        body: vec![],
    });
    let cfg = format!(
        r#"{{"self_ping": false, "workers": [{{"name": "flip", "url": "{}?key=hidden", "interval": "1s", "retries": 0}}],
            "alerts": {{"webhook_url": "{}", "format": "{format}", "failure_threshold": 2, "success_threshold": 2}}}}"#,
        target.url("/"),
        hook.url("/hook/secret-path")
    );
    let p = Pinger::start(&cfg, &[]);
    (healthy, target, hook, p)
}

fn run_flip(format: &str) -> Vec<serde_json::Value> {
    let (healthy, _target, hook, p) = flip_scenario(format);
    p.wait_worker("flip", 10 * SEC, |w| w["checks"].as_u64() >= Some(4));
    // Alerts go out on a thread of their own: wait for the delivery rather than assume it.
    hook.wait_for(1, 10 * SEC);
    assert_eq!(hook.count(), 1, "exactly one down alert after the threshold");
    healthy.store(true, Ordering::SeqCst);
    p.wait_worker("flip", 10 * SEC, |w| w["successes"].as_u64() >= Some(4));
    hook.wait_for(2, 10 * SEC);
    let seen = hook.seen();
    assert_eq!(seen.len(), 2, "exactly one up alert on recovery");
    assert!(
        seen.iter()
            .all(|s| s.method == "POST" && s.head.to_ascii_lowercase().contains("content-type: application/json"))
    );
    assert!(
        !p.log().contains("secret-path") && !p.log().contains("hidden"),
        "webhook URL and query are secrets"
    );
    seen.iter()
        .map(|s| serde_json::from_str(&s.body).expect("JSON payload"))
        .collect()
}

#[test]
fn json_alerts_down_then_up() {
    let bodies = run_flip("json");
    assert_eq!(bodies[0]["worker"], "flip");
    assert_eq!(bodies[0]["state"], "down");
    assert_eq!(bodies[0]["error"], "status 502");
    assert!(bodies[0]["url"].as_str().unwrap().ends_with("/?key=REDACTED"));
    assert!(bodies[0]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(bodies[1]["state"], "up");
    assert_eq!(bodies[1]["error"], serde_json::Value::Null);
}

#[test]
fn discord_alerts_down_then_up() {
    let bodies = run_flip("discord");
    let down = bodies[0]["content"].as_str().unwrap();
    assert!(down.contains("**flip** is DOWN: status 502"), "{down}");
    let up = bodies[1]["content"].as_str().unwrap();
    assert!(up.contains("**flip** is back UP after "), "{up}");
}

#[test]
fn slack_alerts_down_then_up() {
    let bodies = run_flip("slack");
    assert!(bodies[0]["text"].as_str().unwrap().contains("*flip* is DOWN"));
    assert!(bodies[1]["text"].as_str().unwrap().contains("*flip* is back UP after "));
}

#[test]
fn a_hanging_webhook_never_delays_pings() {
    let target = FakeServer::always(status(500));
    let hook = FakeServer::always(Action::Hang);
    let cfg = format!(
        r#"{{"self_ping": false, "workers": [{{"name": "t", "url": "{}", "interval": "1s", "retries": 0}}],
            "alerts": {{"webhook_url": "{}", "failure_threshold": 1, "timeout": "30s"}}}}"#,
        target.url("/"),
        hook.url("/")
    );
    let _p = Pinger::start(&cfg, &[]);
    // The first failed check sends the alert, whose delivery then hangs for its 30 s timeout.
    assert_eq!(hook.wait_for(1, 10 * SEC).len(), 1, "the alert went out");
    let before = target.count();
    // A check held up by the hanging delivery would wait for that timeout. On its 1 s schedule
    // the worker checks 4 more times long before; the deadline leaves a loaded machine room and
    // still ends before the delivery's timeout would let a held-up check through.
    let seen = target.wait_for(before + 4, 20 * SEC);
    assert!(
        seen.len() >= before + 4,
        "{} checks while the alert hung, wanted 4",
        seen.len() - before
    );
    assert_eq!(hook.count(), 1, "the alert still hangs");
}

#[test]
fn a_failing_webhook_is_retried_3_times_then_dropped() {
    let target = FakeServer::always(status(500));
    let hook = FakeServer::always(status(500));
    let cfg = format!(
        r#"{{"self_ping": false, "workers": [{{"name": "t", "url": "{}", "interval": "1h", "retries": 0}}],
            "alerts": {{"webhook_url": "{}", "failure_threshold": 1, "retry_backoff": "200ms"}}}}"#,
        target.url("/"),
        hook.url("/")
    );
    let p = Pinger::start(&cfg, &[]);
    let seen = hook.wait_for(4, 12 * SEC);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(hook.count(), 4, "1 try + 3 retries");
    let gaps: Vec<u128> = seen
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at).as_millis())
        .collect();
    // The waits are 200, 400 and 800 ms. A sleep is never shorter than asked, so these lower
    // bounds hold however loaded the machine is; a constant backoff fails the last two.
    for (gap, want) in gaps.iter().zip([200, 400, 800]) {
        assert!(
            *gap >= want,
            "backoff doubles: gaps {gaps:?}, wanted at least 200/400/800"
        );
    }
    let end = Instant::now() + 10 * SEC;
    while !p.log().contains("failed after 4 attempts") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        p.log().contains(&format!(
            "alert for t (down) via json (http://127.0.0.1:{}/...): failed after 4 attempts (status 500); dropped",
            hook.port
        )),
        "{}",
        p.log()
    );
}

#[test]
fn a_stuck_space_is_restarted_once_per_cooldown() {
    let target = FakeServer::always(status(503));
    let hf = FakeServer::always(ok());
    let cfg = format!(
        r#"{{"self_ping": false, "hf_api_url": "{}", "restart_cooldown": "1h",
            "workers": [{{"name": "space", "url": "{}", "interval": "1s", "retries": 0, "space_id": "you/your-space"}}],
            "alerts": {{"failure_threshold": 2}}}}"#,
        hf.url(""),
        target.url("/")
    );
    let p = Pinger::start(&cfg, &[("HF_TOKEN", "hf_secret_token")]);
    let reqs = hf.wait_for(1, 10 * SEC);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/api/spaces/you/your-space/restart");
    assert!(reqs[0].head.contains("Bearer hf_secret_token"), "{}", reqs[0].head);
    assert!(target.count() >= 2, "not before the threshold");
    let w = p.wait_worker("space", 10 * SEC, |w| w["checks"].as_u64() >= Some(5));
    assert_eq!(hf.count(), 1, "no second restart inside the cooldown");
    assert_eq!(w["restarts"], 1);
    assert!(w["last_restart_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        value(&scrape(&p), "pinger_restarts_total", &[("worker", "space")]),
        Some(1.0)
    );
    assert!(p.get("/").body.contains("Restarts"));
    assert!(!p.log().contains("hf_secret_token"));
}

#[test]
fn the_worker_restart_token_wins_over_hf_token() {
    let target = FakeServer::always(status(503));
    let hf = FakeServer::always(ok());
    let cfg = format!(
        r#"{{"self_ping": false, "hf_api_url": "{}",
            "workers": [{{"name": "space", "url": "{}", "interval": "1h", "retries": 0, "space_id": "${{SPACE}}", "restart_token": "${{MY_TOKEN}}"}}],
            "alerts": {{"failure_threshold": 1}}}}"#,
        hf.url(""),
        target.url("/")
    );
    let env = [
        ("HF_TOKEN", "global"),
        ("MY_TOKEN", "per-worker"),
        ("SPACE", "zz-owner/zz-space"),
    ];
    let p = Pinger::start(&cfg, &env);
    let reqs = hf.wait_for(1, 10 * SEC);
    assert!(reqs[0].head.contains("Bearer per-worker"), "{}", reqs[0].head);
    assert_eq!(reqs[0].path, "/api/spaces/zz-owner/zz-space/restart");
    // A space_id from ${VAR} is a secret: the restart's log line names the worker instead.
    let deadline = std::time::Instant::now() + 10 * SEC;
    while !p.log().contains("space: restart of its Space requested") && std::time::Instant::now() < deadline {
        std::thread::sleep(SEC / 20);
    }
    let log = p.log();
    assert!(log.contains("space: restart of its Space requested"), "{log}");
    for shown in [log, p.get("/").body, p.get("/status").body, p.get("/metrics").body] {
        assert!(!shown.contains("zz-owner"), "{shown}");
    }
}
